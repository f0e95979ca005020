"""The command line as a user and a CI job see it: exit codes, stdout, stderr, formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dlcert.cli import app
from dlcert.render import Format

EXPECTED = {
    "global_full_rank": ("global_minimum", 0),
    "global_bottleneck": ("global_minimum", 0),
    "strict_saddle": ("strict_saddle", 3),
    "non_strict_saddle": ("non_strict_saddle", 3),
    "not_critical": ("not_critical", 4),
    "global_float32_rows": ("global_minimum", 0),
}

CHECK_KEYS = {
    "schema", "verdict", "loss", "optimal_loss", "gap", "relative_gap", "gradient_norm",
    "relative_gradient_norm", "widths", "k", "bottleneck_layers", "product_rank",
    "product_singular_values", "hessian", "theorems", "witness", "reasons",
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlcert", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_samples_json_through_subprocess(samples_dir: Path, name: str) -> None:
    verdict, code = EXPECTED[name]
    proc = run_cli("check", str(samples_dir / f"{name}.npz"), "--format", "json")
    assert proc.returncode == code, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == verdict
    assert CHECK_KEYS <= set(data)
    assert data["schema"] == "dlcert.check/1"
    assert {"min_eigenvalue", "method", "converged"} <= set(data["hessian"])
    for th in data["theorems"]:
        assert {"id", "applies", "holds", "conclusion"} <= set(th)
    if verdict.endswith("saddle"):
        assert {"kind", "radius", "loss_decrease", "order"} <= set(data["witness"])
    assert proc.stderr == ""


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_format(runner: CliRunner, samples_dir: Path, fmt: Format, name: str) -> None:
    verdict, code = EXPECTED[name]
    result = runner.invoke(app, ["check", str(samples_dir / f"{name}.npz"), "-f", fmt.value])
    assert result.exit_code == code
    if fmt is Format.JSON:
        assert json.loads(result.stdout)["verdict"] == verdict
    elif fmt is Format.YAML:
        assert yaml.safe_load(result.stdout)["verdict"] == verdict
    else:
        assert verdict.replace("_", " ").upper() in result.stdout
        assert "ftol" in result.stdout and "gtol" in result.stdout


def test_witness_file_round_trip(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.npz"
    result = runner.invoke(app, ["check", str(samples_dir / "non_strict_saddle.npz"), "--witness", str(out), "-f", "json"])
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    saved = np.load(out, allow_pickle=False)
    src = np.load(samples_dir / "non_strict_saddle.npz", allow_pickle=False)
    W = [src[f"W{i}"] for i in (1, 2, 3)]
    Wp = [saved[f"W{i}"] for i in (1, 2, 3)]
    X, Y = src["X"], src["Y"]

    def raw(ws: list[np.ndarray]) -> float:
        out_ = X
        for w in ws:
            out_ = w @ out_
        return float(0.5 * np.sum((out_ - Y) ** 2))

    assert raw(Wp) < raw(W)
    dist = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(Wp, W, strict=True)))
    assert dist <= report["witness"]["radius"] * (1 + 1e-12)
    assert int(saved["meta_order"]) == report["witness"]["order"] >= 3
    # dlcert itself agrees that W' has a lower loss.
    again = runner.invoke(app, ["check", str(out), "--data", str(samples_dir / "non_strict_saddle.npz"), "-f", "json"])
    assert json.loads(again.stdout)["loss"] < report["loss"]


def test_no_witness_for_global_is_a_note(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.npz"
    result = runner.invoke(app, ["check", str(samples_dir / "global_full_rank.npz"), "--witness", str(out), "-f", "json"])
    assert result.exit_code == 0
    assert not out.exists()
    assert "no witness" in result.stderr


def test_data_option_and_stats_file(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    src = np.load(samples_dir / "strict_saddle.npz", allow_pickle=False)
    np.savez(tmp_path / "w.npz", W1=src["W1"], W2=src["W2"])
    X, Y = src["X"], src["Y"]
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    np.savez(tmp_path / "s.npz", Sxx=X @ X.T, Syx=Y @ X.T, syy=np.sum(Y * Y), m=X.shape[1])
    raw = json.loads(runner.invoke(app, ["check", str(tmp_path / "w.npz"), "--data", str(tmp_path / "d.npz"), "-f", "json"]).stdout)
    st = json.loads(runner.invoke(app, ["check", str(tmp_path / "w.npz"), "--data", str(tmp_path / "s.npz"), "-f", "json"]).stdout)
    assert raw["verdict"] == st["verdict"] == "strict_saddle"
    assert raw["loss"] == pytest.approx(st["loss"], rel=1e-12)
    assert raw["gap"] == pytest.approx(st["gap"], rel=1e-10)


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda p: p.write_text("not an npz"), "w.npz"),
        (lambda p: np.savez(p, W1=np.ones((2, 3)), W2=np.ones((4, 5)), X=np.ones((3, 4)), Y=np.ones((4, 4))), "W2"),
        (lambda p: np.savez(p, W1=np.full((2, 3), np.nan), X=np.ones((3, 4)), Y=np.ones((2, 4))), "NaN"),
        (lambda p: np.savez(p, W1=np.ones((2, 3)) * 1j, X=np.ones((3, 4)), Y=np.ones((2, 4))), "complex"),
        (lambda p: np.savez(p, W1=np.ones((2, 3))), "no data"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, setup: object, needle: str) -> None:
    path = tmp_path / "w.npz"
    setup(path)  # type: ignore[operator]
    proc = run_cli("check", str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert needle in lines[0] and "w.npz" in lines[0]


def test_missing_file_and_bad_option(tmp_path: Path) -> None:
    proc = run_cli("check", str(tmp_path / "nope.npz"))
    assert proc.returncode == 2 and "nope.npz" in proc.stderr
    proc = run_cli("check", str(tmp_path / "nope.npz"), "--gtol", "5")
    assert proc.returncode == 2


def test_help_lists_exit_codes() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "Exit codes" in proc.stdout
