"""``dlcert landscape --loss ... --trials K``: random starts on a convex loss, certified by the
rule table of ``check --loss``. Oracles: scipy on R directly (no dlcert code), plain numpy losses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.optimize import minimize
from typer.testing import CliRunner

from dlcert.cli import app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _logistic_data(tmp_path: Path, separable: bool = False) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    m, dx = 300, 4
    X = rng.normal(size=(dx, m))
    z = np.array([1.0, -2.0, 0.5, 1.5]) @ X
    y = (z > 0) if separable else (rng.random(m) < 1 / (1 + np.exp(-z)))
    Y = y.astype(float)[None, :]
    path = tmp_path / ("sep.npz" if separable else "logi.npz")
    np.savez(path, X=X, Y=Y)
    return path, X, Y


def _logistic_optimum(X: np.ndarray, Y: np.ndarray) -> float:
    """min_r sum_j log(1 + e^{r x_j}) - y_j r x_j by scipy on r directly (independent of dlcert)."""
    def fg(r: np.ndarray) -> tuple[float, np.ndarray]:
        z = r @ X
        return float(np.sum(np.logaddexp(0, z) - Y[0] * z)), X @ (1 / (1 + np.exp(-z)) - Y[0])
    res = minimize(fg, np.zeros(X.shape[0]), jac=True, method="BFGS", options={"gtol": 1e-10})
    return float(res.fun)


def test_logistic_trials_reach_the_independent_optimum(runner: CliRunner, tmp_path: Path) -> None:
    path, X, Y = _logistic_data(tmp_path)
    res = runner.invoke(app, ["landscape", str(path), "--widths", "4,3,2,1", "--loss", "logistic",
                              "--trials", "3", "--seed", "5", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["schema"] == "dlcert.landscape-convex/1" and report["loss"] == "logistic"
    assert report["no_bottleneck"] is True and report["attained"] is True
    t = report["trials"]
    assert t["n"] == 3 and t["seed"] == 5 and sum(t["counts"].values()) == 3
    assert t["counts"]["global_minimum"] == 3 and t["rules"] == {"global.convex_stationary": 3}
    fstar = _logistic_optimum(X, Y)
    for r in t["records"]:
        assert r["verdict"] == "global_minimum" and r["theorem"] == "zhang2019.thm3"
        assert r["loss"] == pytest.approx(fstar, rel=1e-9)
    # the same seed gives the same records
    again = json.loads(runner.invoke(app, ["landscape", str(path), "--widths", "4,3,2,1", "--loss",
                                           "logistic", "--trials", "3", "--seed", "5", "-f", "json"]).stdout)
    assert again["trials"]["records"] == t["records"]


def test_cross_entropy_bottleneck_trials_go_through_the_fixed_rank_test(runner: CliRunner,
                                                                         tmp_path: Path) -> None:
    rng = np.random.default_rng(22)
    m = 400
    X = rng.normal(size=(5, m))
    lab = np.argmax(rng.normal(size=(4, 5)) @ X + rng.gumbel(size=(4, m)), axis=0)
    path = tmp_path / "ce.npz"
    np.savez(path, X=X.T, Y=np.eye(4)[lab])  # rows layout, inferred
    res = runner.invoke(app, ["landscape", str(path), "--widths", "5,2,4", "--loss", "cross-entropy",
                              "--trials", "2", "-f", "yaml"])
    assert res.exit_code == 0, res.stderr
    report = yaml.safe_load(res.stdout)
    assert report["k"] == 2 and report["no_bottleneck"] is False and report["bottleneck_layers"] == [1]
    for r in report["trials"]["records"]:
        assert r["product_rank"] == 2 and r["relative_f_gradient"] > 1e-3
        assert r["rule"] == "inconclusive.rank_constrained_local_minimum", r
        assert r["verdict"] == "inconclusive" and r["theorem"] == "zhang2019.thm1"
    text = runner.invoke(app, ["landscape", str(path), "--widths", "5,2,4", "--loss", "cross-entropy",
                               "--trials", "2"]).stdout
    assert "rank_constrained_local_minimum" in text and "summary: global_minimum: 0" in text
    assert "inconclusive: 2" in text and "zhang2019.thm1" in text


def test_separable_data_has_no_minimum_to_certify(runner: CliRunner, tmp_path: Path) -> None:
    path, X, Y = _logistic_data(tmp_path, separable=True)
    report = json.loads(runner.invoke(app, ["landscape", str(path), "--widths", "4,2,1", "--loss", "logistic",
                                            "--trials", "1", "-f", "json"]).stdout)
    assert report["attained"] is False and any("not attained" in n for n in report["notes"])
    (record,) = report["trials"]["records"]
    assert record["verdict"] == "not_critical" and record["rule"] == "not_critical.infimum_not_attained"
    # independent: a separating direction exists (plain numpy), so no minimiser of f exists
    assert np.all((2 * Y[0] - 1) * (np.array([1.0, -2.0, 0.5, 1.5]) @ X) > 0)


def test_statistics_and_square_only_options_are_refused(runner: CliRunner, tmp_path: Path) -> None:
    path, X, Y = _logistic_data(tmp_path)
    stats = tmp_path / "stats.npz"
    np.savez(stats, Sxx=X @ X.T, Syx=Y @ X.T, syy=float(np.sum(Y * Y)), m=X.shape[1])
    res = runner.invoke(app, ["landscape", str(stats), "--widths", "4,2,1", "--loss", "logistic",
                              "--trials", "1"])
    assert res.exit_code == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1
    assert "statistics" in res.stderr and "raw samples X and Y" in res.stderr
    for extra in (["--save-optimum", str(tmp_path / "o.npz")], ["--plot", str(tmp_path / "p")]):
        res = runner.invoke(app, ["landscape", str(path), "--widths", "4,2,1", "--loss", "logistic", *extra])
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    res = runner.invoke(app, ["landscape", str(path), "--widths", "4,2,1", "--loss", "hinge"])
    assert res.exit_code == 2 and "expected square, logistic" in res.stderr
    res = runner.invoke(app, ["landscape", str(path), "--widths", "4,2,2", "--loss", "logistic"])
    assert res.exit_code == 2 and "dy = 2" in res.stderr
    res = runner.invoke(app, ["landscape", str(path), "--loss", "logistic"])
    assert res.exit_code == 2 and "no widths" in res.stderr


def test_manifest_and_output_file(runner: CliRunner, tmp_path: Path) -> None:
    path, _, _ = _logistic_data(tmp_path)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"data: {path.name}\nwidths: [4, 2, 1]\n")
    out = tmp_path / "report.json"
    res = runner.invoke(app, ["landscape", str(manifest), "--loss", "huber:0.5", "--trials", "1",
                              "-o", str(out), "-q"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(out.read_text())
    assert report["loss"] == "huber" and report["widths"] == [4, 2, 1]
    assert report["trials"]["records"][0]["verdict"] == "global_minimum"


def test_without_trials_the_report_has_the_theorems(runner: CliRunner, tmp_path: Path) -> None:
    path, _, _ = _logistic_data(tmp_path)
    report = json.loads(runner.invoke(app, ["landscape", str(path), "--widths", "4,1,1", "--loss", "logistic",
                                            "-f", "json"]).stdout)
    assert report["trials"] is None
    assert {t["id"]: t["applies"] for t in report["theorems"]} == {"zhang2019.thm3": True,
                                                                  "zhang2019.thm1": False}


def test_cli_import_stays_lazy() -> None:
    code = ("import sys, dlcert.cli; print(sorted(m for m in ('scipy', 'scipy.optimize', 'dlcert.convex', "
            "'dlcert.beyond') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.strip() == "[]"
