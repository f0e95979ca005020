"""--polish: the nearest critical point, certified; distance and loss change; the stored verdict kept."""

from __future__ import annotations

import json
import math
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from constructions import construct, random_data
from rich.console import Console
from typer.testing import CliRunner

import dlcert
from dlcert import certify
from dlcert.certificate import Verdict
from dlcert.cli import app
from dlcert.io import read_npz
from dlcert.objective import loss
from dlcert.polishing import polish_point
from dlcert.statistics import Statistics

WIDTHS = [6, 4, 3, 5]


@pytest.fixture
def setting(rng: np.random.Generator) -> tuple[Any, ...]:
    """Data, its statistics, a global minimum (S = {1, 2, 3}) and a strict saddle (S = {1, 3})."""
    X, Y = random_data(rng, WIDTHS[0], WIDTHS[-1], 80)
    stats = Statistics.from_data(X, Y)
    glob = construct(rng, stats, WIDTHS, [1, 2, 3])
    saddle = construct(rng, stats, WIDTHS, [1, 3], junk=[False, False, False])
    assert glob is not None and saddle is not None
    return X, Y, stats, glob.weights, saddle.weights


def certifier(ws, s):  # type: ignore[no-untyped-def]
    return certify(ws, s)


def nudge(weights: list[np.ndarray], size: float, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [w + size * rng.standard_normal(w.shape) for w in weights]


def test_near_a_global_minimum_polish_certifies_it(setting: tuple) -> None:
    _, _, stats, W, _ = setting
    moved = nudge(W, 1e-3)
    assert certify(moved, stats).verdict is Verdict.NOT_CRITICAL
    p = polish_point(moved, stats, certifier)
    assert p.verdict is Verdict.GLOBAL_MINIMUM and p.method == "levenberg-marquardt"
    assert p.certificate.relative_gradient_norm <= p.certificate.tolerances.gtol
    step = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(p.point, moved, strict=True)))
    assert p.distance == pytest.approx(step, rel=1e-12)
    norm = math.sqrt(sum(float(np.sum(w**2)) for w in moved))
    assert p.relative_distance == pytest.approx(p.distance / norm, rel=1e-12)
    # W itself is critical, so the nearest critical point is at most ||moved - W|| away; the
    # polish must not wander along the symmetry directions (min-norm Newton went 20x farther).
    known = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(moved, W, strict=True)))
    assert p.distance <= known
    assert p.loss_before == pytest.approx(loss(moved, stats), rel=1e-12)
    assert p.loss_change == pytest.approx(p.loss_after - p.loss_before)
    assert p.loss_change <= 0  # the optimum is the lowest value
    assert p.relative_loss_change == pytest.approx(p.loss_change / (0.5 * stats.syy))
    assert p.relative_gradient_after < p.relative_gradient_before


def test_near_a_saddle_newton_finds_the_saddle(setting: tuple) -> None:
    """Nearest critical point, whatever its kind: polishing is not training."""
    _, _, stats, _, S = setting
    p = polish_point(nudge(S, 1e-6), stats, certifier)
    assert p.verdict is Verdict.STRICT_SADDLE and p.method == "levenberg-marquardt"
    assert p.loss_after == pytest.approx(loss(S, stats), rel=1e-9)


def test_at_a_critical_point_nothing_moves(setting: tuple) -> None:
    _, _, stats, W, _ = setting
    p = polish_point(W, stats, certifier)
    assert p.verdict is Verdict.GLOBAL_MINIMUM
    assert p.steps == 0 and p.distance == 0.0 and p.loss_change == 0.0


def test_far_from_any_critical_point_lbfgs_takes_over(setting: tuple, rng: np.random.Generator) -> None:
    _, _, stats, _, _ = setting
    start = [rng.standard_normal((WIDTHS[i + 1], WIDTHS[i])) for i in range(3)]
    p = polish_point(start, stats, certifier)
    assert p.method == "lbfgs+newton" and p.lbfgs_iterations > 0
    assert p.verdict is not Verdict.NOT_CRITICAL
    assert p.loss_change < 0


def test_polish_dict_and_api(setting: tuple) -> None:
    X, Y, _, W, _ = setting
    p = dlcert.polish(nudge(W, 1e-3), X.T, Y.T, layout="rows")
    d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    assert d["verdict"] == "global_minimum" and d["check"]["schema"] == "dlcert.check/1"
    assert d["distance"] == pytest.approx(p.distance) and "point" not in d
    assert "from a point certified global minimum" in d["sentence"]
    assert "dlcert-polish" in p._repr_html_() and "GLOBAL MINIMUM" in p._repr_html_()
    buf = StringIO()
    Console(file=buf, width=100, color_system=None).print(p)  # no dlcert theme on this console
    assert "polish: nearest critical point" in buf.getvalue() and "levenberg-marquardt" in buf.getvalue()


def test_cli_polish_keeps_the_stored_verdict_and_saves_the_point(setting: tuple, tmp_path: Path) -> None:
    X, Y, _, W, _ = setting
    moved = nudge(W, 1e-3)
    np.savez(tmp_path / "m.npz", **{f"W{i}": w for i, w in enumerate(moved, 1)})
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    out = tmp_path / "polished.npz"
    runner = CliRunner()
    res = runner.invoke(app, ["check", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"),
                              "--polish-out", str(out), "-f", "json"])
    assert res.exit_code == 4, res.output  # the stored point's own verdict: not critical
    d = json.loads(res.stdout)
    assert d["verdict"] == "not_critical"
    assert d["polish"]["verdict"] == "global_minimum" and d["polish"]["method"] == "levenberg-marquardt"
    assert d["polish"]["relative_distance"] > 0 and d["polish"]["loss_change"] <= 0
    assert d["mse"] == pytest.approx(2 * d["loss"] / (80 * 5))
    saved = read_npz(out)
    assert str(saved["meta_verdict"]) == "global_minimum"
    again = runner.invoke(app, ["check", str(out), "--data", str(tmp_path / "d.npz")])
    assert again.exit_code == 0, again.output
    args = ["check", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"), "--polish"]
    res = runner.invoke(app, args)
    assert res.exit_code == 4
    text = res.stdout
    assert "polish: nearest critical point" in text and "from a point certified global minimum" in text
    assert "MSE = 2 loss / (m dy)" in text


def test_cli_polish_takes_one_file(setting: tuple, tmp_path: Path) -> None:
    X, Y, _, W, _ = setting
    np.savez(tmp_path / "m.npz", X=X, Y=Y, **{f"W{i}": w for i, w in enumerate(W, 1)})
    res = CliRunner().invoke(app, ["check", str(tmp_path / "m.npz"), str(tmp_path / "m.npz"), "--polish"])
    assert res.exit_code == 2 and "--polish takes a single WEIGHTS file" in res.output


def test_version_option() -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"dlcert {dlcert.__version__}\n"
