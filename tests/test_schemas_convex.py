"""The convex contracts (``dlcert.landscape-convex/1``, the ``fixed_rank`` block of
``dlcert.check-convex/1``) validate against their shipped schemas, and broken reports do not."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from test_schemas import assert_valid, validator
from typer.testing import CliRunner

from dlcert.cli import app
from dlcert.schemas import SchemaName


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_landscape_convex_reports_validate(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 200))
    lab = np.argmax(rng.normal(size=(4, 5)) @ X + rng.gumbel(size=(4, 200)), axis=0)
    np.savez(tmp_path / "ce.npz", X=X, Y=np.eye(4)[:, lab])
    for extra in ([], ["--trials", "2"]):
        res = runner.invoke(app, ["landscape", str(tmp_path / "ce.npz"), "--widths", "5,2,4", "--loss",
                                  "cross-entropy", "-f", "json", *extra])
        assert res.exit_code == 0, res.stderr
        report = json.loads(res.stdout)
        assert report["schema"] == "dlcert.landscape-convex/1"
        assert_valid(report)
    broken = copy.deepcopy(report)
    broken["trials"]["records"][0]["verdict"] = "local_minimum"
    assert list(validator(SchemaName.LANDSCAPE_CONVEX).iter_errors(broken))
    broken = copy.deepcopy(report)
    del broken["trials"]["records"][0]["rule"]
    assert list(validator(SchemaName.LANDSCAPE_CONVEX).iter_errors(broken))


def test_check_convex_fixed_rank_block_validates(runner: CliRunner, tmp_path: Path) -> None:
    from dlcert.beyond import ConvexReport
    from dlcert.convex import certify_convex
    from dlcert.losses import DataObjective, Square

    rng = np.random.default_rng(4)
    m = 30
    Q, _ = np.linalg.qr(rng.normal(size=(m, 4)))
    X = np.sqrt(m) * Q.T
    Y = rng.normal(size=(3, m))
    U, s, Vt = np.linalg.svd(Y @ X.T / m)
    ws = [np.sqrt(s[1]) * Vt[1][None, :], np.sqrt(s[1]) * U[:, 1][:, None]]  # the second triplet: a saddle
    report = ConvexReport(certify_convex(ws, DataObjective(Square(), X, Y), loss_name="square")).to_dict()
    assert report["rule"] == "strict.fixed_rank_negative_curvature"
    assert report["fixed_rank"]["method"] == "dense"
    assert_valid(report)
    broken = copy.deepcopy(report)
    broken["fixed_rank"]["method"] = "guess"
    assert list(validator(SchemaName.CHECK_CONVEX).iter_errors(broken))

