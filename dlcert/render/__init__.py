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


class Reportable(Protocol):
    """What renderers accept: any result with a builtins-only ``to_dict``."""

    def to_dict(self) -> dict[str, Any]: ...


class Renderer(Protocol):
    """``render(result) -> str``; options go in the constructor."""

    def render(self, result: Any) -> str: ...


def renderer_for(fmt: Format, *, color: bool = False, width: int = 100) -> Renderer:
    """The renderer of a format (text options are ignored by the machine formats)."""
    from dlcert.render.machine import JsonRenderer, YamlRenderer
    from dlcert.render.text import TextRenderer

    if fmt is Format.JSON:
        return JsonRenderer()
    if fmt is Format.YAML:
        return YamlRenderer()
    return TextRenderer(color=color, width=width)
