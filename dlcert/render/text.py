"""The text renderer: the rich view of a result, rendered to a string."""

from __future__ import annotations

from io import StringIO
from typing import Any

from rich.console import Console

from dlcert.certificate import Certificate
from dlcert.landscape import ConvexLandscape, Landscape
from dlcert.render.check_text import CheckView
from dlcert.render.landscape_text import ConvexLandscapeView, LandscapeView
from dlcert.render.theme import THEME


def view_for(result: Any) -> Any:
    """The rich view class instance for a result object."""
    if isinstance(result, Certificate):
        return CheckView(result)
    if isinstance(result, Landscape):
        return LandscapeView(result)
    if isinstance(result, ConvexLandscape):
        return ConvexLandscapeView(result)
    from dlcert.batch import BatchResult, CheckOutcome
    from dlcert.render.batch_text import BatchView

    if isinstance(result, BatchResult):
        return BatchView(result)
    if isinstance(result, CheckOutcome) and result.certificate is not None:
        return CheckView(result.certificate, exit_note=exit_note(result))
    from dlcert.recheck import WitnessCheck
    from dlcert.render.recheck_text import RecheckView

    if isinstance(result, WitnessCheck):
        return RecheckView(result)
    raise TypeError(f"no text view for {type(result).__name__}")


def exit_note(outcome: Any) -> tuple[int, str]:
    """The exit code a check's process returns, and why when it is not the verdict's own code."""
    code = int(outcome.exit_code)
    cert = outcome.certificate
    if cert is None or code == int(cert.exit_code):
        return code, ""
    return code, f"{cert.verdict.value} passes --require {outcome.requirement.value}"


class TextRenderer:
    """Render a result's rich view; ``color`` (or a rich ``color_system`` name such as
    ``standard``, ``256``, ``truecolor``) emits ANSI styles (for a terminal)."""

    def __init__(self, color: bool = False, width: int = 100, color_system: str | None = None) -> None:
        self.color = color or color_system is not None
        self.width = width
        self.color_system = color_system or ("standard" if color else None)

    def render(self, result: Any) -> str:
        view = result if hasattr(result, "__rich_console__") else view_for(result)
        buf = StringIO()
        console = Console(
            file=buf,
            width=self.width,
            theme=THEME,
            color_system=self.color_system,  # type: ignore[arg-type]
            force_terminal=self.color,
            highlight=False,
        )
        console.print(view)
        return buf.getvalue()
