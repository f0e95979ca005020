"""Renderers: a result object in, a string out. No I/O here.

Every result (``Certificate``, ``Landscape``, ...) has ``to_dict()``; JSON and YAML renderers
serialise that dict and never go through rich. The text renderer looks up the rich view
registered for the result's type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol


class Format(StrEnum):
    """Output formats of every command."""

    TEXT = "text"
    JSON = "json"
    YAML = "yaml"


class CheckFormat(StrEnum):
    """Output formats of ``dlcert check``: those of :class:`Format` and GitHub annotations."""

    TEXT = "text"
    JSON = "json"
    YAML = "yaml"
    GITHUB = "github"


class ColorMode(StrEnum):
    """``--color``: ``auto`` lets rich decide (a terminal, ``NO_COLOR``, ``FORCE_COLOR``)."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class Reportable(Protocol):
    """What renderers accept: any result with a builtins-only ``to_dict``."""

    def to_dict(self) -> dict[str, Any]: ...


class Renderer(Protocol):
    """``render(result) -> str``; options go in the constructor."""

    def render(self, result: Any) -> str: ...


def renderer_for(
    fmt: Format | CheckFormat, *, color: bool = False, width: int = 100,
    color_system: str | None = None,
) -> Renderer:
    """The renderer of a format (text options are ignored by the machine formats).

    ``github`` renders a :class:`~dlcert.batch.BatchResult` (a single check is a batch of one).
    """
    from dlcert.render.machine import JsonRenderer, YamlRenderer
    from dlcert.render.text import TextRenderer

    if fmt == Format.JSON:
        return JsonRenderer()
    if fmt == Format.YAML:
        return YamlRenderer()
    if fmt == CheckFormat.GITHUB:
        from dlcert.render.github import GithubRenderer

        return GithubRenderer()
    return TextRenderer(color=color, width=width, color_system=color_system)
