"""`dlcert recheck`: a saved witness is confirmed, and a forged or useless one is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcert.cli import app
from dlcert.io import save_weights


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        n = sum(1 for k in f.files if k.startswith("W"))
        return [f[f"W{i}"] for i in range(1, n + 1)]


@pytest.mark.parametrize("name", ["strict_saddle", "non_strict_saddle"])
def test_saved_witness_is_confirmed(runner: CliRunner, samples_dir: Path, tmp_path: Path, name: str) -> None:
    point = samples_dir / f"{name}.npz"
    out = tmp_path / "w.npz"
    assert runner.invoke(app, ["check", str(point), "--witness", str(out)]).exit_code == 3
    result = runner.invoke(app, ["recheck", str(out), "--against", str(point), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "dlcert.recheck/1" and report["confirmed"] is True
    assert report["decrease"] > report["rounding_bound"] > 0
    assert report["witness_loss"] < report["loss"]
    assert report["distance"] <= report["claimed_radius"] * (1 + 1e-12)


def test_the_point_itself_is_not_a_witness(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    point = samples_dir / "strict_saddle.npz"
    fake = tmp_path / "same.npz"
    save_weights(fake, _weights(point))
    result = runner.invoke(app, ["recheck", str(fake), "--against", str(point), "-f", "json"])
    assert result.exit_code == 5
    report = json.loads(result.stdout)
    assert report["confirmed"] is False and report["decrease"] == 0.0


def test_a_worse_point_is_refuted(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    point = samples_dir / "global_full_rank.npz"
    rng = np.random.default_rng(0)
    worse = [w + 1e-3 * rng.standard_normal(w.shape) for w in _weights(point)]
    fake = tmp_path / "worse.npz"
    save_weights(fake, worse, {"radius": 1.0, "order": 2})
    result = runner.invoke(app, ["recheck", str(fake), "--against", str(point)])
    assert result.exit_code == 5
    assert "NOT CONFIRMED" in result.stdout


def test_radius_claim_is_checked(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    point = samples_dir / "strict_saddle.npz"
    out = tmp_path / "w.npz"
    runner.invoke(app, ["check", str(point), "--witness", str(out)])
    with np.load(out, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    forged = tmp_path / "forged.npz"
    save_weights(forged, [arrays["W1"], arrays["W2"]], {"radius": 0.5 * float(arrays["meta_radius"])})
    result = runner.invoke(app, ["recheck", str(forged), "--against", str(point), "-f", "json"])
    assert result.exit_code == 5
    assert any("claimed radius" in r for r in json.loads(result.stdout)["reasons"])


def test_mismatched_widths_are_an_input_error(runner: CliRunner, samples_dir: Path) -> None:
    result = runner.invoke(app, ["recheck", str(samples_dir / "strict_saddle.npz"),
                                 "--against", str(samples_dir / "non_strict_saddle.npz")])
    assert result.exit_code == 2
    assert "widths" in result.stderr and len(result.stderr.strip().splitlines()) == 1
