"""``dlcert check --loss ... --residual`` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcert.cli import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 300))
    Y = (rng.random(300) < 1 / (1 + np.exp(-np.array([1.0, -2.0, 0.5]) @ X))).astype(float)[None]
    np.savez(tmp_path / "zero.npz", W1=np.zeros((2, 3)), W2=np.zeros((1, 2)), X=X, Y=Y)
    return tmp_path / "zero.npz"


def test_logistic_saddle_json(runner: CliRunner, classifier: Path) -> None:
    result = runner.invoke(app, ["check", str(classifier), "--loss", "logistic", "-f", "json"])
    assert result.exit_code == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "dlcert.check-convex/1"
    assert report["verdict"] == "strict_saddle"
    assert report["theorem"] == "zhang2019.thm3"
    assert report["witness"]["loss_decrease"] > report["witness"]["rounding_bound"]


def test_text_and_witness_file(runner: CliRunner, classifier: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.npz"
    result = runner.invoke(app, ["check", str(classifier), "--loss", "logistic", "--witness", str(out)])
    assert result.exit_code == 3
    assert "strict_saddle" in result.stdout
    with np.load(out, allow_pickle=False) as f:
        assert f["W1"].shape == (2, 3)


def test_statistics_do_not_suffice(runner: CliRunner, tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", W1=np.ones((1, 2)))
    np.savez(tmp_path / "s.npz", Sxx=np.eye(2), Syx=np.ones((1, 2)), syy=np.array(1.0), m=np.array(3))
    result = runner.invoke(app, ["check", str(tmp_path / "w.npz"), "--data", str(tmp_path / "s.npz"),
                                 "--loss", "logistic"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "raw samples X and Y" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--loss", "hinge"], "expected square, logistic"),
    (["--loss", "cross-entropy"], "dy >= 2"),
    (["--loss", "logistic", "--ftol", "1e-3"], "--ftol has no meaning"),
    (["--residual"], "square layers of one width"),
])
def test_bad_input_one_line(runner: CliRunner, classifier: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["check", str(classifier), *args])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_residual_square_adds_cor23(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    # a residual stack at the least-squares solution: (I + A2)(I + A1) = Y X^+
    R = Y @ np.linalg.pinv(X)
    A1 = 0.1 * rng.normal(size=(3, 3))
    A2 = R @ np.linalg.inv(np.eye(3) + A1) - np.eye(3)
    np.savez(tmp_path / "res.npz", W1=A1, W2=A2, X=X, Y=Y)
    result = runner.invoke(app, ["check", str(tmp_path / "res.npz"), "--residual", "-f", "json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report["reasons"]
    row = next(t for t in report["theorems"] if t["id"] == "yun2018.cor2.3")
    smax = max(np.linalg.norm(A1, 2), np.linalg.norm(A2, 2))
    assert row["evidence"]["max_sigma_max"] == pytest.approx(smax)
    assert row["applies"] is bool(smax < 1) and row["evidence"]["product_full_rank"] is True


def test_residual_with_convex_loss(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2, 40))
    Y = np.eye(2)[:, rng.integers(0, 2, 40)]
    np.savez(tmp_path / "res.npz", W1=-np.eye(2), W2=np.zeros((2, 2)), X=X, Y=Y)  # I + A1 = 0
    result = runner.invoke(app, ["check", str(tmp_path / "res.npz"), "--residual", "--loss", "cross-entropy",
                                 "-f", "json"])
    report = json.loads(result.stdout)
    assert report["product_rank"] == 0
    assert report["verdict"] in ("strict_saddle", "not_critical", "inconclusive")
    assert any(t["id"] == "yun2018.cor2.3" and t["applies"] is False for t in report["theorems"])


def test_require_applies_to_convex_checks(runner: CliRunner, classifier: Path) -> None:
    result = runner.invoke(app, ["check", str(classifier), "--loss", "logistic", "--require", "critical"])
    assert result.exit_code == 0, result.stderr  # a saddle is a critical point


def test_overflow_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "big.npz", W1=1e200 * np.ones((2, 3)), W2=1e200 * np.ones((1, 2)),
             X=rng.normal(size=(3, 20)), Y=(rng.random((1, 20)) < 0.5).astype(float))
    result = runner.invoke(app, ["check", str(tmp_path / "big.npz"), "--loss", "logistic"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "overflow" in result.stderr
