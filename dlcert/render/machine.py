"""Machine-readable renderers: JSON and YAML of ``result.to_dict()``."""

from __future__ import annotations

import json
from typing import Any

import yaml


class JsonRenderer:
    """Strict JSON (``allow_nan=False``: non-finite numbers are already ``null``)."""

    def __init__(self, indent: int = 2) -> None:
        self.indent = indent

    def render(self, result: Any) -> str:
        return json.dumps(result.to_dict(), indent=self.indent, allow_nan=False) + "\n"


class YamlRenderer:
    """YAML via ``yaml.safe_dump`` (builtins only, key order kept)."""

    def render(self, result: Any) -> str:
        return str(yaml.safe_dump(result.to_dict(), sort_keys=False, allow_unicode=True))
