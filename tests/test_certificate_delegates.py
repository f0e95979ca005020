"""The Certificate's notebook and gate methods, once the integrator adds them, delegate to
dlcert.render.notebook and dlcert.api (each test skips until its method exists)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dlcert
from dlcert.certificate import Certificate
from dlcert.render.notebook import certificate_html


@pytest.fixture
def cert() -> Certificate:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 30))
    Y = rng.standard_normal((2, 3)) @ X
    return dlcert.check([rng.standard_normal((2, 3)), rng.standard_normal((2, 2))], X, Y)


def need(name: str) -> None:
    if not hasattr(Certificate, name):
        pytest.skip(f"Certificate.{name} is not wired in yet (see dlcert.api / dlcert.render.notebook)")


def test_repr_html(cert: Certificate) -> None:
    need("_repr_html_")
    assert cert._repr_html_() == certificate_html(cert)


def test_rich(cert: Certificate) -> None:
    need("__rich__")
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=100, color_system=None).print(cert)
    assert "MSE =" in buf.getvalue()


def test_passed(cert: Certificate) -> None:
    need("passed")
    for require in ("global", "critical", "any"):
        assert cert.passed(require=require) == dlcert.passed(cert, require)


def test_to_json(cert: Certificate) -> None:
    need("to_json")
    assert json.loads(cert.to_json()) == json.loads(dlcert.to_json(cert))
