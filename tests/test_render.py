"""Renderers on one fixed certificate: parse the output, check a few substrings of the text."""

from __future__ import annotations

import json
import math
from io import StringIO

import numpy as np
import pytest
import yaml
from rich.console import Console

from dlcert import certify
from dlcert.certificate import Certificate, to_builtin
from dlcert.render import Format, renderer_for
from dlcert.render.check_text import CheckView
from dlcert.render.theme import THEME
from dlcert.statistics import Statistics


@pytest.fixture(scope="module")
def cert() -> Certificate:
    stats = Statistics.from_data(np.ones((1, 1)), np.ones((1, 1)))
    return certify([np.zeros((1, 1))] * 3, stats)


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_renders(cert: Certificate, fmt: Format) -> None:
    out = renderer_for(fmt).render(cert)
    if fmt is Format.JSON:
        assert json.loads(out)["verdict"] == "non_strict_saddle"
    elif fmt is Format.YAML:
        assert yaml.safe_load(out)["witness"]["order"] == 3
    else:
        assert "NON STRICT SADDLE" in out


def test_to_dict_is_builtin_only(cert: Certificate) -> None:
    def walk(x: object) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        else:
            assert x is None or type(x) in (bool, int, float, str), type(x)
            if isinstance(x, float):
                assert math.isfinite(x)

    d = cert.to_dict()
    walk(d)
    assert "point" not in d["witness"]


def test_non_finite_and_numpy_values_become_builtins() -> None:
    out = to_builtin({"a": np.float32(1.5), "b": np.int64(3), "c": np.bool_(True), "d": float("inf"),
                      "e": np.array([1.0, np.nan])})
    assert out == {"a": 1.5, "b": 3, "c": True, "d": None, "e": [1.0, None]}
    json.dumps(out, allow_nan=False)
    yaml.safe_dump(out)


def test_rich_view_without_colour(cert: Certificate) -> None:
    buf = StringIO()
    Console(file=buf, width=100, color_system=None, theme=THEME).print(CheckView(cert))
    text = buf.getvalue()
    assert "escape witness" in text and "rank rule" in text and "achour2021" in text
    assert "\x1b[" not in text
