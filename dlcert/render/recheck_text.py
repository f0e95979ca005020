"""The rich view of a :class:`~dlcert.recheck.WitnessCheck` (``dlcert recheck``)."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dlcert.recheck import WitnessCheck
from dlcert.render.theme import fmt


class RecheckView:
    """Verdict line, then the numbers it rests on."""

    def __init__(self, check: WitnessCheck) -> None:
        self.check = check

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        c = self.check
        style = "verdict.global_minimum" if c.confirmed else "verdict.not_critical"
        head = Text("WITNESS CONFIRMED" if c.confirmed else "WITNESS NOT CONFIRMED", style=style)
        body = [head] + [Text("- " + r) for r in c.reasons]
        yield Panel(Group(*body), title="dlcert recheck", title_align="left", border_style=style)
        tab = Table(header_style="label")
        tab.add_column("quantity")
        tab.add_column("value", justify="right", style="number")
        tab.add_row("L(W)", fmt(c.loss, ".12g"))
        tab.add_row("L(W')", fmt(c.witness_loss, ".12g"))
        tab.add_row("L(W) - L(W'), stable", fmt(c.decrease, ".6e"))
        tab.add_row("rounding-error bound", fmt(c.rounding_bound, ".3e"))
        tab.add_row("||W' - W||_F", fmt(c.distance, ".6g"))
        tab.add_row("claimed radius", fmt(c.claimed_radius, ".6g"))
        tab.add_row("claimed order", fmt(c.order))
        yield tab
