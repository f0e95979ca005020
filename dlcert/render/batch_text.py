"""The rich view of a :class:`~dlcert.batch.BatchResult`: one summary table for many checks."""

from __future__ import annotations

from collections.abc import Iterator

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dlcert.batch import SEVERITY, BatchResult
from dlcert.render.theme import fmt


class BatchView:
    """file | verdict | relative gap | relative gradient | exit, then a summary line.

    Gap and gradient cells show ``measured / tolerance``; exit is the check's gate exit code.
    """

    def __init__(self, batch: BatchResult) -> None:
        self.batch = batch

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        b = self.batch
        tab = Table(title=f"dlcert check: {len(b.checks)} files, require {b.requirement.value}",
                    title_justify="left", header_style="label", box=box.SIMPLE_HEAD,
                    pad_edge=False, padding=(0, 1))
        longest = max((len(o.file) for o in b.checks), default=4)
        tab.add_column("file", overflow="fold", min_width=min(60, longest))
        tab.add_column("verdict", no_wrap=True)
        tab.add_column("rel. gap/ftol", no_wrap=True, justify="right", style="number")
        tab.add_column("rel. grad/gtol", no_wrap=True, justify="right", style="number")
        tab.add_column("exit", justify="right", no_wrap=True)
        for o in b.checks:
            c = o.certificate
            mark = "[pass]pass[/]" if o.passed else "[fail]FAIL[/]"
            if c is None:
                verdict = f"[fail]{o.error.kind if o.error else 'error'}[/]"
                gap = grad = "-"
            else:
                v = c.verdict.value
                verdict = f"[verdict.{v}]{v}[/]"
                gap = f"{fmt(c.relative_gap, '.1e')}/{c.tolerances.ftol:.1e}"
                grad = f"{fmt(c.relative_gradient_norm, '.1e')}/{c.tolerances.gtol:.1e}"
            tab.add_row(escape(o.file), verdict, gap, grad, f"{int(o.exit_code)} {mark}")
        yield tab
        n = b.counts
        order = " > ".join(str(int(c)) for c in SEVERITY)
        errors = f"{n['errors']} error" + ("" if n["errors"] == 1 else "s")
        yield Text(
            f"{n['checks']} checks: {n['passed']} passed, {n['failed']} failed, {errors}; "
            f"exit {int(b.exit_code)} (most severe of {order})"
        )
        for o in b.checks:
            if o.error is not None:
                yield Text(f"{o.error.kind}: {o.error.message}", style="fail")
