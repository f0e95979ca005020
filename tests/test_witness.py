"""Escape witnesses (SPEC §4): every saddle verdict carries one, and plain numpy confirms it.

The re-verification here uses only numpy on the raw X, Y and the saved weights: no dlcert
function computes the numbers it checks.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcert import certify
from dlcert.certificate import Verdict
from dlcert.cli import app
from dlcert.hessian import dense_hessian
from dlcert.io import save_weights
from dlcert.objective import PointCache
from dlcert.statistics import Statistics
from dlcert.witness import loss_polynomial
from tests.constructions import construct, random_data

EPS = float(np.finfo(np.float64).eps)


# ---------------------------------------------------------------- plain-numpy re-verification


def plain_product(mats: list[np.ndarray]) -> np.ndarray:
    out = mats[0]
    for w in mats[1:]:
        out = w @ out
    return out


def plain_change(W: list[np.ndarray], P: list[np.ndarray]) -> np.ndarray:
    """``R' - R = sum_i P_N..P_{i+1} (P_i - W_i) W_{i-1}..W_1`` (telescoping, no cancellation)."""
    n = len(W)
    out = np.zeros((W[-1].shape[0], W[0].shape[1]))
    for i in range(n):
        above = plain_product(P[i + 1:]) if i + 1 < n else np.eye(W[-1].shape[0])
        below = plain_product(W[:i]) if i > 0 else np.eye(W[0].shape[1])
        out += above @ (P[i] - W[i]) @ below
    return out


def verify_plain(X: np.ndarray, Y: np.ndarray, W: list[np.ndarray], P: list[np.ndarray],
                 radius: float) -> float:
    """Check ``||W' - W|| <= radius`` and ``L(W) - L(W') > rounding bound`` with numpy only.

    With ``D = R' - R`` and residual ``Z = R X - Y``:
    ``L(W) - L(W') = -<D X, Z> - 1/2 ||D X||^2``. The rounding bound is the standard forward
    bound: gamma = (sum of inner dimensions + m) * eps times the same expression on absolute
    values, the telescoped change run on |W|, |P|, |P - W|.
    """
    dist = float(np.sqrt(sum(np.sum((p - w) ** 2) for p, w in zip(P, W, strict=True))))
    assert dist <= radius * (1 + 1e-12), (dist, radius)
    D = plain_change(W, P)
    DX = D @ X
    Z = plain_product(W) @ X - Y
    decrease = -float(np.sum(DX * Z)) - 0.5 * float(np.sum(DX * DX))
    absW = [np.abs(w) for w in W]
    n = len(W)
    Dabs = np.zeros_like(D)
    for i in range(n):
        above = plain_product([np.abs(p) for p in P[i + 1:]]) if i + 1 < n else np.eye(W[-1].shape[0])
        below = plain_product(absW[:i]) if i > 0 else np.eye(W[0].shape[1])
        Dabs += above @ np.abs(P[i] - W[i]) @ below
    DXabs = Dabs @ np.abs(X)
    Zabs = plain_product(absW) @ np.abs(X) + np.abs(Y)
    dims = sum(w.shape[0] + w.shape[1] for w in W) + X.shape[1]
    bound = 4 * dims * EPS * (float(np.sum(DXabs * Zabs)) + float(np.sum(DXabs * DXabs)))
    assert decrease > bound, (decrease, bound)
    return decrease


def load_witness(path: Path) -> tuple[list[np.ndarray], dict[str, object]]:
    with np.load(path, allow_pickle=False) as f:
        keys = sorted((k for k in f.files if k[0] == "W" and k[1:].isdigit()), key=lambda k: int(k[1:]))
        mats = [np.array(f[k]) for k in keys]
        meta = {k.removeprefix("meta_"): f[k].item() for k in f.files if k.startswith("meta_")}
    return mats, meta


# ---------------------------------------------------------------- constructed points


def make_point(seed: int, widths: list[int], index_set: tuple[int, ...], basis_change: bool = True
               ) -> tuple[np.ndarray, np.ndarray, Statistics, list[np.ndarray]] | None:
    rng = np.random.default_rng(seed)
    X, Y = random_data(rng, widths[0], widths[-1], 3 * widths[0] + 5)
    stats = Statistics.from_data(X, Y)
    c = construct(rng, stats, widths, list(index_set), basis_change=basis_change)
    if c is None:
        return None
    return X, Y, stats, c.weights


def random_cases(count: int, seed: int) -> list[tuple[int, list[int], tuple[int, ...], bool]]:
    """(seed, widths, index set, basis change) for N = 2..5, with and without a bottleneck."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(count):
        n = 2 + t % 4
        dx = int(rng.integers(2, 7))
        dy = int(rng.integers(2, dx + 1)) if rng.random() < 0.7 else int(rng.integers(2, 7))
        hidden = [int(rng.integers(1, 7)) for _ in range(n - 1)]
        widths = [dx, *hidden, dy]
        k = min(widths)
        r = int(rng.integers(0, k + 1))
        idx = tuple(sorted(int(i) for i in rng.choice(np.arange(1, min(dx, dy) + 1), r, replace=False)))
        out.append((int(rng.integers(1 << 30)), widths, idx, bool(rng.random() < 0.7)))
    return out


CASES = random_cases(240, 2024)


def test_cases_cover_every_depth_and_class() -> None:
    depths = {len(w) - 1 for _, w, _, _ in CASES}
    assert depths == {2, 3, 4, 5}
    assert any(min(w) < min(w[0], w[-1]) for _, w, _, _ in CASES)  # a hidden bottleneck
    assert any(min(w) == min(w[0], w[-1]) for _, w, _, _ in CASES)


def test_verdicts_agree_with_dense_hessian_and_rank_rule_and_carry_witnesses(tmp_path: Path) -> None:
    """Strict/non-strict by the rank rule = by the dense Hessian; every saddle has a witness."""
    seen: dict[str, int] = {}
    for seed, widths, idx, basis in CASES:
        point = make_point(seed, widths, idx, basis)
        if point is None:
            continue
        X, Y, stats, W = point
        cert = certify(W, stats)
        lam = np.linalg.eigvalsh(dense_hessian(stats, PointCache.at(W, stats)))
        thr = -1e-7 * max(abs(lam[0]), abs(lam[-1]))
        if cert.relative_gap <= cert.tolerances.ftol:
            oracle = Verdict.GLOBAL_MINIMUM
        else:
            oracle = Verdict.STRICT_SADDLE if lam[0] < thr else Verdict.NON_STRICT_SADDLE
        case = f"widths={widths} S={idx} seed={seed}"
        assert cert.verdict is oracle, (case, cert.verdict, cert.reasons, lam[0])
        assert cert.rank_rule.decision == oracle.value, case
        assert not any("Thm 2.3(iv)" in r.message for r in cert.reasons), (case, cert.reasons)
        seen[oracle.value] = seen.get(oracle.value, 0) + 1
        if oracle is Verdict.GLOBAL_MINIMUM:
            assert cert.witness is None
            continue
        w = cert.witness
        assert w is not None, case
        assert (w.order == 2) == (oracle is Verdict.STRICT_SADDLE), case
        assert w.coefficient < 0 and w.loss_decrease > w.rounding_bound
        path = tmp_path / "w.npz"
        save_weights(path, w.point, {"radius": w.radius, "order": w.order})
        P, meta = load_witness(path)
        decrease = verify_plain(X, Y, W, P, float(meta["radius"]))  # type: ignore[arg-type]
        assert decrease == pytest.approx(w.loss_decrease, rel=1e-6, abs=1e3 * w.rounding_bound)
    assert min(seen.values()) >= 10 and len(seen) == 3, seen


def test_cli_witness_file_is_rechecked_by_plain_numpy(tmp_path: Path) -> None:
    point = make_point(11, [6, 4, 4, 3], (1, 3))
    assert point is not None
    X, Y, _, W = point
    src = tmp_path / "point.npz"
    np.savez(src, X=X, Y=Y, **{f"W{i + 1}": w for i, w in enumerate(W)})
    out = tmp_path / "witness.npz"
    result = CliRunner().invoke(app, ["check", str(src), "--witness", str(out), "--format", "json"])
    assert result.exit_code == 3, result.output
    P, meta = load_witness(out)
    assert meta["kind"] == "negative_curvature" and meta["order"] == 2
    verify_plain(X, Y, W, P, float(meta["radius"]))  # type: ignore[arg-type]


def test_non_strict_zero_point_witness_via_cli(tmp_path: Path) -> None:
    """All-zero weights, N = 4: non-strict; loss drops like t^4 along the chain."""
    rng = np.random.default_rng(3)
    X, Y = random_data(rng, 4, 3, 30)
    W = [np.zeros((3, 4)), np.zeros((3, 3)), np.zeros((2, 3)), np.zeros((3, 2))]
    src = tmp_path / "zero.npz"
    np.savez(src, X=X, Y=Y, **{f"W{i + 1}": w for i, w in enumerate(W)})
    out = tmp_path / "witness.npz"
    result = CliRunner().invoke(app, ["check", str(src), "--witness", str(out), "--format", "json"])
    assert result.exit_code == 3, result.output
    P, meta = load_witness(out)
    assert meta["kind"] == "higher_order" and meta["order"] == 4
    verify_plain(X, Y, W, P, float(meta["radius"]))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("widths", "index_set", "params"),
    [([120, 60, 60, 40], (1, 2, 4), "1e4"), ([400, 160, 160, 100], (1, 3), "1e5")],
)
def test_large_strict_saddle_witness_rechecked(widths: list[int], index_set: tuple[int, ...],
                                               params: str, tmp_path: Path) -> None:
    """The iterative path (no dense Hessian) still gives a strict verdict and a witness."""
    point = make_point(5, widths, index_set)
    assert point is not None
    X, Y, stats, W = point
    n = sum(w.size for w in W)
    assert 0.7 * float(params) <= n <= 1.5 * float(params)
    cert = certify(W, stats)
    assert cert.hessian.method == "lobpcg"
    assert cert.verdict is Verdict.STRICT_SADDLE, cert.reasons
    assert cert.hessian.converged and cert.hessian.min_eigenvalue is not None
    assert cert.hessian.min_eigenvalue < 0
    w = cert.witness
    assert w is not None and w.order == 2
    path = tmp_path / "w.npz"
    save_weights(path, w.point, {"radius": w.radius})
    P, meta = load_witness(path)
    verify_plain(X, Y, W, P, float(meta["radius"]))  # type: ignore[arg-type]


# ---------------------------------------------------------------- the loss polynomial


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4, 5])
def test_loss_polynomial_matches_fit_of_exact_evaluations(n_layers: int) -> None:
    """a_q against a least-squares fit of L(W + tV) - L(W) evaluated from X, Y directly."""
    rng = np.random.default_rng(n_layers)
    widths = [3] + [int(rng.integers(2, 4)) for _ in range(n_layers - 1)] + [2]
    X, Y = random_data(rng, widths[0], widths[-1], 20)
    stats = Statistics.from_data(X, Y)
    W = [rng.standard_normal((widths[i + 1], widths[i])) * 0.7 for i in range(n_layers)]
    V = [rng.standard_normal(w.shape) * 0.7 for w in W]
    E = plain_product(W) @ stats.Sxx - stats.Syx
    a, bound = loss_polynomial(W, V, stats, E)
    deg = 2 * n_layers
    assert a.shape == (deg,) and bound.shape == (deg,) and np.all(bound >= 0)
    ts = np.linspace(-1, 1, 4 * deg + 1)
    base = 0.5 * np.sum((plain_product(W) @ X - Y) ** 2)
    vals = [0.5 * np.sum((plain_product([w + t * v for w, v in zip(W, V, strict=True)]) @ X - Y) ** 2)
            - base for t in ts]
    fit = np.polynomial.polynomial.polyfit(ts, vals, deg)
    assert abs(fit[0]) < 1e-9 * np.max(np.abs(vals))
    np.testing.assert_allclose(a, fit[1:], rtol=1e-7, atol=1e-8 * np.max(np.abs(fit)))
    # And the closed form at one t, evaluated in plain numpy:
    t = 0.37
    direct = vals[0] * 0 + 0.5 * np.sum(
        (plain_product([w + t * v for w, v in zip(W, V, strict=True)]) @ X - Y) ** 2) - base
    assert np.polyval(np.concatenate([a[::-1], [0.0]]), t) == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize(
    ("n_layers", "expected"),
    [(3, {3: -1.0, 6: 0.5}), (4, {4: -1.0, 8: 0.5}), (2, {2: -1.0, 4: 0.5})],
)
def test_scalar_chain_loss_polynomial(n_layers: int, expected: dict[int, float]) -> None:
    """SPEC §4: at zero, along (1,..,1): L - L(0) = -t^N + t^(2N)/2 (N = 3: 1/2 - t^3 + t^6/2)."""
    stats = Statistics(Sxx=np.ones((1, 1)), Syx=np.ones((1, 1)), syy=1.0, m=1)
    W = [np.zeros((1, 1)) for _ in range(n_layers)]
    V = [np.ones((1, 1)) for _ in range(n_layers)]
    E = -np.ones((1, 1))
    a, _ = loss_polynomial(W, V, stats, E)
    want = np.zeros(2 * n_layers)
    for q, c in expected.items():
        want[q - 1] = c
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize(("n_layers", "verdict", "order"),
                         [(2, Verdict.STRICT_SADDLE, 2), (3, Verdict.NON_STRICT_SADDLE, 3),
                          (4, Verdict.NON_STRICT_SADDLE, 4)])
def test_scalar_chain_zero_point_verdicts(n_layers: int, verdict: Verdict, order: int) -> None:
    stats = Statistics(Sxx=np.ones((1, 1)), Syx=np.ones((1, 1)), syy=1.0, m=1)
    cert = certify([np.zeros((1, 1)) for _ in range(n_layers)], stats)
    assert cert.verdict is verdict
    assert cert.witness is not None and cert.witness.order == order
    X, Y = np.ones((1, 1)), np.ones((1, 1))
    verify_plain(X, Y, [np.zeros((1, 1))] * n_layers, list(cert.witness.point), cert.witness.radius)


def test_kawaguchi_iv_note_when_the_hessian_shows_no_negative_curvature() -> None:
    from dataclasses import replace

    from dlcert.rules import notes
    from tests.test_rules import saddle_evidence

    ev = replace(saddle_evidence(), kawaguchi_iv=True, witness_order=3, witness_curvature=None,
                 lambda_min=1e-14, hessian_method="lobpcg")
    found = [r for r in notes(ev) if r.code == "note.kawaguchi_iv"]
    assert len(found) == 1 and "must have a negative Hessian eigenvalue" in found[0].message
    assert "1.000e-14" in found[0].message
    assert not [r for r in notes(replace(ev, witness_order=2, witness_curvature=-1.0))
                if r.code == "note.kawaguchi_iv"]
    assert not [r for r in notes(replace(ev, kawaguchi_iv=False)) if r.code == "note.kawaguchi_iv"]


def _rank_one_direction(
    rng: np.random.Generator, weights: list[np.ndarray], moving: tuple[int, ...]
) -> list[np.ndarray]:
    return [np.outer(rng.standard_normal(w.shape[0]), rng.standard_normal(w.shape[1])) if i in moving
            else np.zeros_like(w) for i, w in enumerate(weights)]


@pytest.mark.parametrize("moving", [(0,), (1, 2), (0, 3), (0, 1, 2, 3), (2,)])
def test_factored_polynomial_matches_the_dense_one(moving: tuple[int, ...]) -> None:
    """Rank-one directions in O(d^2): the same coefficients (within their bound) and the same
    rounding bounds (the same magnitudes, summed in another order) as the dense products."""
    from dlcert.witness import factored_polynomial, rank_one_factors

    rng = np.random.default_rng(sum(moving) + 3)
    widths = [9, 7, 5, 6, 4]
    X, Y = random_data(rng, widths[0], widths[-1], 30)
    stats = Statistics.from_data(X, Y)
    W = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(len(widths) - 1)]
    cache = PointCache.at(W, stats)
    V = _rank_one_direction(rng, W, moving)
    factors = rank_one_factors(V)
    assert factors is not None
    assert [f is not None for f in factors] == [i in moving for i in range(len(W))]
    a_dense, b_dense = loss_polynomial(W, V, stats, cache.E)
    a_fact, b_fact = factored_polynomial(W, factors, stats, cache.E)
    assert a_fact.shape == a_dense.shape == (2 * len(moving),)
    np.testing.assert_allclose(b_fact, b_dense, rtol=1e-10)
    assert np.all(np.abs(a_fact - a_dense) <= b_dense + 1e-300)
    assert np.any(a_dense != 0)


def test_rank_one_factors_refuses_a_dense_layer() -> None:
    from dlcert.witness import rank_one_factors

    rng = np.random.default_rng(0)
    V = [np.outer(rng.standard_normal(4), rng.standard_normal(3)), rng.standard_normal((5, 4))]
    assert rank_one_factors(V) is None
    assert rank_one_factors([np.zeros((2, 2)), V[0]]) is not None


# ---------------------------------------------------------------- a-posteriori rounding bounds


def _fractions(a: np.ndarray) -> list[list[Fraction]]:
    return [[Fraction(float(v)) for v in row] for row in np.atleast_2d(a)]


def _fmul(A: list[list[Fraction]], B: list[list[Fraction]]) -> list[list[Fraction]]:
    return [[sum((A[i][k] * B[k][j] for k in range(len(B))), Fraction(0)) for j in range(len(B[0]))]
            for i in range(len(A))]


def _fdot(A: list[list[Fraction]], B: list[list[Fraction]]) -> Fraction:
    return sum((A[i][j] * B[i][j] for i in range(len(A)) for j in range(len(A[0]))), Fraction(0))


def _exact_coefficients(W: list[np.ndarray], factors: list, stats: Statistics) -> list[Fraction]:
    """``a_q`` of ``L(W + t V) - L(W)`` for ``V_l = z_l y_l^T`` (not normalised), in exact arithmetic."""
    S, Syx = _fractions(stats.Sxx), _fractions(stats.Syx)
    coeffs = [_fractions(np.eye(W[0].shape[1]))]
    for w, f in zip(W, factors, strict=True):
        wf = _fractions(w)
        new = [_fmul(wf, c) for c in coeffs]
        if f is not None:
            Vf = [[Fraction(float(a)) * Fraction(float(b)) for b in f[1]] for a in f[0]]
            new.append([[Fraction(0)] * len(coeffs[0][0]) for _ in range(len(wf))])
            for q, c in enumerate(coeffs):
                d = _fmul(Vf, c)
                new[q + 1] = [[x + y for x, y in zip(r1, r2, strict=True)]
                              for r1, r2 in zip(new[q + 1], d, strict=True)]
        coeffs = new
    RS = _fmul(coeffs[0], S)
    E = [[x - y for x, y in zip(r1, r2, strict=True)] for r1, r2 in zip(RS, Syx, strict=True)]
    deg = len(coeffs) - 1
    a = [Fraction(0)] * (2 * deg)
    for q in range(1, deg + 1):
        a[q - 1] += _fdot(E, coeffs[q])
        for j in range(1, deg + 1):
            a[q + j - 1] += Fraction(1, 2) * _fdot(_fmul(coeffs[q], S), coeffs[j])
    return a


def _exact_loss(W: list[np.ndarray], stats: Statistics) -> Fraction:
    R = _fractions(W[0])
    for w in W[1:]:
        R = _fmul(_fractions(w), R)
    S, Syx = _fractions(stats.Sxx), _fractions(stats.Syx)
    return Fraction(1, 2) * _fdot(_fmul(R, S), R) - _fdot(Syx, R)


def _bound_case(seed: int) -> tuple[list[np.ndarray], list[np.ndarray], Statistics]:
    """Small random layers (every other case under an ill-conditioned change of basis) and a
    random unit rank-one direction moving a random set of layers."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    widths = [int(rng.integers(2, 6)) for _ in range(n + 1)]
    X, Y = random_data(rng, widths[0], widths[-1], 3 * widths[0] + 3)
    stats = Statistics.from_data(X, Y)
    W = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(n)]
    if seed % 2 == 0:
        G = [np.eye(widths[0])] + [rng.standard_normal((widths[i], widths[i])) * 10.0 ** rng.uniform(-2, 2)
                                   for i in range(1, n)] + [np.eye(widths[-1])]
        W = [G[i + 1] @ W[i] @ np.linalg.inv(G[i]) for i in range(n)]
    moving = {int(i) for i in rng.choice(n, int(rng.integers(1, n + 1)), replace=False)}
    V = _rank_one_direction(rng, W, tuple(moving))
    norm = math.sqrt(sum(float(np.sum(v * v)) for v in V))
    return W, [v / norm for v in V], stats


def test_decrease_bound_contains_the_exact_error_and_is_tight() -> None:
    """``dlcert.roundoff.decrease_bound`` against exact rational arithmetic: the true error of the
    float64 decrease is always within the bound, the bound is within a modest factor of it, and
    far below the a-priori |W|-chain bound."""
    from dlcert.roundoff import PointBounds, decrease_bound
    from dlcert.witness import _decrease_in

    ratios, gains = [], []
    for seed in range(40):
        W, V, stats = _bound_case(seed)
        t = 10.0 ** np.random.default_rng(seed + 99).uniform(-3, 0)
        P = [w + t * v for w, v in zip(W, V, strict=True)]
        exact = _exact_loss(W, stats) - _exact_loss(P, stats)
        decrease, bound = decrease_bound(PointBounds(W, stats), P)
        err = abs(Fraction(decrease) - exact)
        assert err <= Fraction(bound), (seed, float(err), bound)
        if err > 0:
            ratios.append(bound / float(err))
        gains.append(_decrease_in(np.float64, W, P, stats, None)[1] / bound)
    assert len(ratios) >= 30
    assert float(np.median(ratios)) < 1e3, sorted(ratios)
    assert min(gains) > 1.0 and float(np.median(gains)) > 10.0, sorted(gains)


def test_rank_one_coefficient_bounds_contain_the_exact_error() -> None:
    """``dlcert.roundoff.rank_one_coefficients`` against the exact coefficients of the exact
    direction ``z y^T / ||z y^T||`` (the normalisation in 80-digit decimals)."""
    from decimal import Decimal, localcontext

    from dlcert.roundoff import PointBounds, rank_one_coefficients
    from dlcert.witness import rank_one_factors

    ratios = []
    for seed in range(30):
        W, V, stats = _bound_case(seed)
        factors = rank_one_factors(V)
        assert factors is not None
        out = rank_one_coefficients(PointBounds(W, stats), factors)
        assert out is not None
        a, bound = out
        exact = _exact_coefficients(W, factors, stats)
        nrm2 = sum((sum(Fraction(float(v)) ** 2 for v in f[0]) * sum(Fraction(float(v)) ** 2 for v in f[1])
                    for f in factors if f is not None), Fraction(0))
        with localcontext() as ctx:
            ctx.prec = 80
            nrm = (Decimal(nrm2.numerator) / Decimal(nrm2.denominator)).sqrt()
            for q, x in enumerate(exact):
                true = Decimal(x.numerator) / Decimal(x.denominator) / nrm ** (q + 1)
                err = abs(Decimal(float(a[q])) - true)
                assert err <= Decimal(float(bound[q])), (seed, q + 1, a[q], bound[q], float(true))
                if err > 0:
                    ratios.append(float(Decimal(float(bound[q])) / err))
    assert len(ratios) >= 60
    assert float(np.median(ratios)) < 1e3, sorted(ratios)


def test_wide_ill_conditioned_saddle_gets_a_rigorous_order2_witness() -> None:
    """Width 310 (beyond the old long-double limit), random change of basis per layer: the
    a-priori bounds decide nothing, the a-posteriori ones certify an order-2 witness that the
    independent re-check confirms."""
    from dlcert.normalize import normalize
    from dlcert.optimum import whiten
    from dlcert.recheck import recheck
    from dlcert.tolerances import SXX_RTOL
    from dlcert.witness import (
        _decrease_in,
        default_radius,
        evaluate,
        factored_polynomial,
        misplaced_direction,
        rank_one_factors,
    )

    widths = [310] * 5
    rng = np.random.default_rng(3)
    X, Y = random_data(rng, widths[0], widths[-1], 1000)
    raw = Statistics.from_data(X, Y)
    c = construct(rng, raw, widths, (1, 2, 4))
    assert c is not None
    G = [np.eye(310)] + [rng.standard_normal((310, 310)) / np.sqrt(310) for _ in range(3)] + [np.eye(310)]
    W0 = [G[i + 1] @ w @ np.linalg.inv(G[i]) for i, w in enumerate(c.weights)]
    ws, stats, _ = normalize(tuple(W0), raw)
    wh = whiten(stats, SXX_RTOL)
    cache = PointCache.at(ws, stats)
    d = misplaced_direction(ws, wh, 4, 3)
    assert d is not None
    factors = rank_one_factors(d.V)
    assert factors is not None
    a, bound = factored_polynomial(ws, factors, stats, cache.E)
    assert not abs(a[1]) > 2 * bound[1]  # the a-priori bound cannot decide the order
    w = evaluate(ws, d, stats, cache, default_radius(ws))
    assert w is not None and w.order == 2 and w.coefficient < 0
    assert w.loss_decrease > w.rounding_bound
    assert not w.loss_decrease > _decrease_in(np.float64, ws, w.point, stats, cache.E)[1]
    check = recheck(ws, w.point, stats, claimed_radius=w.radius, order=2)
    assert check.confirmed, check.reasons


@pytest.mark.parametrize("extended", [False, True])
def test_gap_bound_contains_the_exact_error(extended: bool) -> None:
    """``dlcert.roundoff.excess_with_bound`` (the value error of the gap and the excess) against
    exact rational arithmetic on the same float64 inputs: ``1/2 ||R S - T_I||^2 - <R S, T - T_I>``
    with ``R`` the exact product of the stored layers, for random points, half of them under an
    ill-conditioned change of basis, and two index sets each."""
    from dlcert.optimum import whiten
    from dlcert.roundoff import excess_with_bound

    ratios = []
    for seed in range(30):
        W, _, stats = _bound_case(seed)
        wh = whiten(stats, 1e-13)
        targets = []
        for r in (1, wh.s.size):
            targets.append((wh.U[:, :r] * wh.s[:r]) @ wh.Vt[:r])
        values, bound = excess_with_bound(W, wh.S, wh.T, targets, extended=extended)
        R = _fractions(W[0])
        for w in W[1:]:
            R = _fmul(_fractions(w), R)
        RS, T = _fmul(R, _fractions(wh.S)), _fractions(wh.T)
        for value, T_I in zip(values, targets, strict=True):
            TI = _fractions(T_I)
            D = [[a - b for a, b in zip(ra, rb, strict=True)] for ra, rb in zip(RS, TI, strict=True)]
            rest = [[a - b for a, b in zip(ra, rb, strict=True)] for ra, rb in zip(T, TI, strict=True)]
            exact = Fraction(1, 2) * _fdot(D, D) - _fdot(RS, rest)
            err = abs(Fraction(value) - exact)
            assert err <= Fraction(bound), (seed, float(err), bound)
            if err > 0:
                ratios.append(bound / float(err))
    assert len(ratios) >= 40 and float(np.median(ratios)) < 1e4, sorted(ratios)


def test_linked_layer_sets_move_every_zero_layer_and_come_shortest_first() -> None:
    """Depth 10 with W_3 = W_7 = 0: a fixed stretch through a zero layer carries nothing, so every
    linked set moves layers 3 and 7; sets come shortest first."""
    from dlcert.objective import PointCache
    from dlcert.witness import LinkRatios, linked_layer_sets

    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((3, 3)) for _ in range(10)]
    ws[2] = np.zeros((3, 3))
    ws[6] = np.zeros((3, 3))
    stats = Statistics(Sxx=np.eye(3), Syx=rng.standard_normal((3, 3)), syy=30.0, m=10)
    sets = linked_layer_sets(LinkRatios(PointCache.at(tuple(ws), stats)), 1e-12)
    assert sets and all(3 in s and 7 in s for s in sets)
    assert [len(s) for s in sets] == sorted(len(s) for s in sets)
    assert sets[0] == (3, 7)
