"""Multi-tower networks (Zhang 2019 Cor 2): dlcert.towers and `check` on a T1.W1.. file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from typer.testing import CliRunner

from dlcert.certificate import Verdict
from dlcert.cli import app
from dlcert.errors import InputError
from dlcert.losses import CrossEntropy, DataObjective, Square
from dlcert.statistics import Statistics
from dlcert.towers import StatisticsObjective, certify_towers, tower_arrays


def _ce(seed: int, m: int = 60) -> DataObjective:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4, m))
    return DataObjective(CrossEntropy(), X, np.eye(3)[:, rng.integers(0, 3, m)])


def _ce_oracle(R: np.ndarray, obj: DataObjective) -> float:
    Z = R @ obj.X
    return float(sum(np.log(np.exp(Z[:, j]).sum()) - Z[:, j] @ obj.Y[:, j] for j in range(Z.shape[1])))


def test_split_optimum_is_global_under_cor2() -> None:
    obj = _ce(0)
    res = minimize(lambda r: obj.value(r.reshape(3, 4)), np.zeros(12),
                   jac=lambda r: obj.gradient(r.reshape(3, 4))[0].ravel(), method="BFGS",
                   options={"gtol": 1e-12})
    R = res.x.reshape(3, 4)
    U, s, Vt = np.linalg.svd(R)
    # two towers 4 -> 2 -> 3 (b = 4 >= max(dx, dy)) carrying two singular directions each
    t1 = [np.diag(s[:2]) @ Vt[:2], U[:, :2]]
    t2 = [np.vstack([s[2] * Vt[2], np.zeros(4)]), np.column_stack([U[:, 2], np.zeros(3)])]
    cert = certify_towers([t1, t2], obj, loss_name="cross-entropy")
    assert cert.verdict == Verdict.GLOBAL_MINIMUM, cert.message
    assert cert.theorem == "zhang2019.cor2"
    assert cert.evidence["b"] == 4


@pytest.mark.parametrize(("hidden", "deficient"), [(2, False), (1, True)])
def test_zero_towers_are_saddles(hidden: int, deficient: bool) -> None:
    obj = _ce(1)
    towers = [[np.zeros((hidden, 4)), np.zeros((3, hidden))] for _ in range(2)]
    cert = certify_towers(towers, obj, loss_name="cross-entropy")
    assert cert.verdict == Verdict.STRICT_SADDLE, cert.message
    assert cert.theorem == "zhang2019.cor2"
    assert cert.evidence["tower_deficient"] is deficient or cert.no_bottleneck
    assert cert.witness is not None
    p = cert.witness.point
    assert _ce_oracle(p[1] @ p[0] + p[3] @ p[2], obj) < _ce_oracle(np.zeros((3, 4)), obj)


def test_full_rank_towers_below_cor2_are_inconclusive_or_strict() -> None:
    # square loss, two width-1 towers (b = 2 < max(dx, dy) = 4) at the second and third
    # Eckart-Young directions of a whitened problem: a critical point with grad f != 0.
    rng = np.random.default_rng(2)
    m = 50
    Q, _ = np.linalg.qr(rng.normal(size=(m, 4)))
    X = np.sqrt(m) * Q.T
    Y = rng.normal(size=(4, m))
    C = Y @ X.T / m
    U = np.linalg.svd(C)[0]
    towers = [[(U[:, i] @ C)[None, :], U[:, i][:, None]] for i in (1, 2)]
    cert = certify_towers(towers, DataObjective(Square(), X, Y), loss_name="square")
    assert not cert.no_bottleneck and cert.evidence["tower_deficient"] is False
    assert cert.rule == "strict.bottleneck_negative_curvature"  # the top direction is missing
    assert cert.witness is not None


def test_statistics_objective_matches_raw_square() -> None:
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(3, 30)), rng.normal(size=(2, 30))
    st = Statistics.from_data(X, Y)
    so, do = StatisticsObjective(st.Sxx, st.Syx, st.syy), DataObjective(Square(), X, Y)
    R, R2 = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    assert so.value(R) == pytest.approx(do.value(R), rel=1e-12)
    np.testing.assert_allclose(so.gradient(R)[0], do.gradient(R)[0], rtol=1e-12)
    assert so.decrease(R, R2)[0] == pytest.approx(do.value(R) - do.value(R2), rel=1e-10)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"T1.W1": np.ones((2, 3)), "W1": np.ones((2, 3))}, "mixes a chain"),
    ({"T2.W1": np.ones((2, 3))}, "T1 is missing"),
    ({"T1.W2": np.ones((2, 3))}, "without gaps"),
    ({"T1.W1": np.ones((2, 3)), "T2.W1": np.ones((2, 4))}, "maps 4 -> 2"),
])
def test_tower_files_rejected(arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InputError, match=message):
        tower_arrays(arrays, "f.npz")


def test_cli_towers(tmp_path: Path) -> None:
    obj = _ce(4)
    np.savez(tmp_path / "t.npz", **{"T1.W1": np.zeros((2, 4)), "T1.W2": np.zeros((3, 2)),
                                    "T2.W1": np.zeros((2, 4)), "T2.W2": np.zeros((3, 2))}, X=obj.X, Y=obj.Y)
    out = tmp_path / "w.npz"
    result = CliRunner().invoke(app, ["check", str(tmp_path / "t.npz"), "--loss", "cross-entropy",
                                      "-f", "json", "--witness", str(out)])
    assert result.exit_code == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["theorem"] == "zhang2019.cor2" and report["evidence"]["b"] == 4
    with np.load(out, allow_pickle=False) as f:
        assert set(f.files) == {"T1.W1", "T1.W2", "T2.W1", "T2.W2"}
    st = Statistics.from_data(obj.X, obj.Y)
    np.savez(tmp_path / "s.npz", Sxx=st.Sxx, Syx=st.Syx, syy=st.syy, m=st.m)
    np.savez(tmp_path / "t2.npz", **{"T1.W1": np.zeros((2, 4)), "T1.W2": np.zeros((3, 2))})
    result = CliRunner().invoke(app, ["check", str(tmp_path / "t2.npz"), "--data", str(tmp_path / "s.npz")])
    assert result.exit_code == 3, result.stderr
