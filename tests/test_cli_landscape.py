"""``dlcert landscape``, ``dlcert stats`` and manifests through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from constructions import random_data
from typer.testing import CliRunner

from dlcert.cli import app
from dlcert.render import Format

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    X, Y = random_data(rng, 5, 4, 120)
    np.save(tmp_path / "x.npy", X.T)
    np.save(tmp_path / "y.npy", Y.T)
    np.savez(tmp_path / "raw.npz", X=X, Y=Y)
    return tmp_path


def test_stats_then_landscape_then_check_the_saved_optimum(runner: CliRunner, data_dir: Path) -> None:
    s = data_dir / "s.npz"
    res = runner.invoke(app, ["stats", str(data_dir / "x.npy"), str(data_dir / "y.npy"), "-o", str(s),
                              "--chunk-size", "17"])
    assert res.exit_code == 0, res.stderr
    assert "m = 120" in res.stdout and s.exists()
    opt = data_dir / "opt.npz"
    res = runner.invoke(app, ["landscape", str(s), "--widths", "5,3,2,4", "--rows", "4",
                              "--save-optimum", str(opt), "-f", "json"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["schema"] == "dlcert.landscape/1"
    assert len(report["critical_values"]) == 4
    assert report["critical_values"][0]["classes"] == ["global"]
    raw = json.loads(runner.invoke(app, ["landscape", str(data_dir / "raw.npz"), "--widths", "5,3,2,4",
                                         "-f", "json"]).stdout)
    assert raw["critical_values"][0]["value"] == pytest.approx(report["critical_values"][0]["value"],
                                                               rel=1e-11)
    res = runner.invoke(app, ["check", str(opt), "--data", str(s), "-f", "json"])
    assert res.exit_code == 0, res.stdout
    cert = json.loads(res.stdout)
    assert cert["verdict"] == "global_minimum"
    assert cert["loss"] == pytest.approx(report["optimal_loss"], rel=1e-10)


@pytest.mark.parametrize("fmt", list(Format))
def test_landscape_every_format(runner: CliRunner, data_dir: Path, fmt: Format) -> None:
    res = runner.invoke(app, ["landscape", str(data_dir / "raw.npz"), "--widths", "5,2,2,4", "-f", fmt.value])
    assert res.exit_code == 0, res.stderr
    if fmt is Format.JSON:
        assert json.loads(res.stdout)["k"] == 2
    elif fmt is Format.YAML:
        assert yaml.safe_load(res.stdout)["k"] == 2
    else:
        assert "critical values: lowest 10 of" in res.stdout and "non_strict_saddle_possible" in res.stdout


def test_landscape_trials(runner: CliRunner, data_dir: Path) -> None:
    res = runner.invoke(app, ["landscape", str(data_dir / "raw.npz"), "--widths", "5,3,4", "--trials", "3",
                              "--seed", "2", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    t = json.loads(res.stdout)["trials"]
    assert t["n"] == 3 and sum(t["counts"].values()) == 3 and len(t["records"]) == 3


def test_manifests_for_check_and_landscape(runner: CliRunner, data_dir: Path) -> None:
    (data_dir / "l.yaml").write_text("data: raw.npz\nwidths: [5, 3, 4]\n")
    res = runner.invoke(app, ["landscape", str(data_dir / "l.yaml"), "-f", "json", "--save-optimum",
                              str(data_dir / "o.npz")])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["widths"] == [5, 3, 4]
    (data_dir / "c.yml").write_text("weights: o.npz\ndata: raw.npz\ntolerances: {ftol: 1.0e-9}\n")
    res = runner.invoke(app, ["check", str(data_dir / "c.yml"), "-f", "json"])
    assert res.exit_code == 0, res.stderr
    cert = json.loads(res.stdout)
    assert cert["verdict"] == "global_minimum" and cert["tolerances"]["ftol"] == 1e-9


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["landscape", "{d}/raw.npz", "--widths", "5,3,3"], "dy = 3"),
        (["landscape", "{d}/raw.npz", "--widths", "5;3"], "--widths"),
        (["landscape", "{d}/raw.npz"], "no widths"),
        (["landscape", "{d}/missing.npz", "--widths", "5,4"], "no such file"),
        (["landscape", "{d}/bad.yaml"], "unknown key"),
        (["check", "{d}/bad.yaml"], "unknown key"),
        (["stats", "{d}/x.npy", "-o", "{d}/s.npz"], "needs its .npy Y"),
        (["stats", "{d}/x.npy", "{d}/raw.npz", "-o", "{d}/s.npz"], "must be followed"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runner: CliRunner, data_dir: Path, args: list[str],
                                          match: str) -> None:
    (data_dir / "bad.yaml").write_text("data: raw.npz\nwidth: [5, 4]\n")
    res = runner.invoke(app, [a.format(d=data_dir) for a in args])
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in res.stderr


def test_exit_codes_in_a_subprocess(data_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dlcert", *args], capture_output=True, text=True,
                              env=env, cwd=data_dir, timeout=120)

    ok = run("stats", "x.npy", "y.npy", "-o", "s.npz")
    assert ok.returncode == 0 and ok.stderr == ""
    ok = run("landscape", "s.npz", "--widths", "5,2,4", "-f", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["critical_value_count"] == 11
    bad = run("landscape", "s.npz", "--widths", "5,2,5")
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    bad = run("stats", "nope.npz", "-o", "t.npz")
    assert bad.returncode == 2 and "nope.npz" in bad.stderr and not (data_dir / "t.npz").exists()
