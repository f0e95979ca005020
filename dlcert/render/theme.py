"""Named styles of the rich report (one place to change the look)."""

from __future__ import annotations

from rich.theme import Theme

THEME = Theme(
    {
        "verdict.global_minimum": "bold green",
        "verdict.strict_saddle": "bold yellow",
        "verdict.non_strict_saddle": "bold magenta",
        "verdict.not_critical": "bold red",
        "verdict.inconclusive": "bold cyan",
        "pass": "green",
        "fail": "red",
        "na": "dim",
        "label": "bold",
        "muted": "dim",
        "number": "cyan",
    }
)


def fmt(x: float | int | None, spec: str = ".4g") -> str:
    """A number for people: ``-`` for missing, fixed significant digits otherwise."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    return format(x, spec)


def tick(value: bool | None) -> str:
    """Markup for a yes / no / not-applicable cell."""
    if value is None:
        return "[na]-[/]"
    return "[pass]yes[/]" if value else "[fail]no[/]"
