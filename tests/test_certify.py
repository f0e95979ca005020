"""Verdicts on constructed critical points whose class is known independently.

Global or not is known by construction (the learned index set is or is not the top set);
strict or non-strict comes from the smallest eigenvalue of the explicit Kronecker Hessian
(tests/oracles.py), which shares no code with dlcert's HVP, rank rule or witnesses.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from constructions import construct, random_data
from oracles import kron_hessian, raw_loss

from dlcert import certify
from dlcert.certificate import Verdict
from dlcert.errors import InputError
from dlcert.optimum import balanced_factorization, optimal_product, whiten
from dlcert.statistics import Statistics

ARCHS = [
    [3, 2, 3],  # bottleneck k = 2 < min(dx, dy)
    [4, 3, 2],  # k = min(dx, dy)
    [3, 3, 3, 3],
    [4, 2, 3, 3],
    [3, 4, 2, 4, 3],
    [2, 3, 3, 3, 2, 2],
    [5, 3, 4, 2],
    [3, 2, 2, 2, 2, 3],
]


def oracle(stats: Statistics, W: list[np.ndarray], index_set: tuple[int, ...], k_eff: int) -> Verdict:
    if set(index_set) == set(range(1, k_eff + 1)):
        return Verdict.GLOBAL_MINIMUM
    lam = np.linalg.eigvalsh(kron_hessian(W, stats.Sxx, stats.Syx))
    if lam[0] < -1e-8 * np.max(np.abs(lam)):
        return Verdict.STRICT_SADDLE
    return Verdict.NON_STRICT_SADDLE


@pytest.mark.parametrize("widths", ARCHS, ids=lambda w: "-".join(map(str, w)))
def test_constructed_critical_points(widths: list[int]) -> None:
    rng = np.random.default_rng(sum(widths) * 1000 + len(widths))
    X, Y = random_data(rng, widths[0], widths[-1], 40)
    stats = Statistics.from_data(X, Y)
    k = min(widths)
    n_s = min(widths[0], widths[-1])
    seen: set[Verdict] = set()
    for r in range(k + 1):
        for S in itertools.combinations(range(1, n_s + 1), r):
            for _ in range(2):
                c = construct(rng, stats, widths, S)
                assert c is not None, f"no critical draw for S={S}"
                expected = oracle(stats, c.weights, S, min(k, n_s))
                cert = certify(c.weights, stats)
                assert cert.verdict is expected, (S, c.junk, cert.reasons, cert.rank_rule)
                seen.add(expected)
                if expected in (Verdict.STRICT_SADDLE, Verdict.NON_STRICT_SADDLE):
                    w = cert.witness
                    assert w is not None
                    assert (w.order == 2) == (expected is Verdict.STRICT_SADDLE)
                    # Re-check the witness from the raw samples.
                    assert raw_loss(w.point, X, Y) < raw_loss(c.weights, X, Y)
                    dist = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(w.point, c.weights, strict=True)))
                    assert dist <= w.radius * (1 + 1e-12)
                else:
                    assert cert.witness is None
                    assert cert.relative_gap <= cert.tolerances.ftol
    assert Verdict.GLOBAL_MINIMUM in seen and Verdict.STRICT_SADDLE in seen


@pytest.mark.parametrize(
    ("point", "verdict", "order"),
    [
        ((0.0, 0.0), Verdict.STRICT_SADDLE, 2),
        ((0.0, 0.0, 0.0), Verdict.NON_STRICT_SADDLE, 3),
        ((2.0, 0.0, 0.0), Verdict.STRICT_SADDLE, 2),
        ((1.0, 1.0, 1.0), Verdict.GLOBAL_MINIMUM, None),
        ((0.0, 0.0, 0.0, 0.0), Verdict.NON_STRICT_SADDLE, 4),
        ((0.0, 3.0, 0.0), Verdict.STRICT_SADDLE, 2),  # "two zero layers" is not enough
        ((0.0, 0.0, 3.0), Verdict.STRICT_SADDLE, 2),
        ((0.5, 2.0), Verdict.GLOBAL_MINIMUM, None),
        ((1.0, 2.0), Verdict.NOT_CRITICAL, None),
    ],
)
def test_scalar_oracles(point: tuple[float, ...], verdict: Verdict, order: int | None) -> None:
    stats = Statistics.from_data(np.ones((1, 1)), np.ones((1, 1)))
    cert = certify([np.array([[w]]) for w in point], stats)
    assert cert.verdict is verdict
    if order is not None:
        assert cert.witness is not None and cert.witness.order == order


def test_scalar_non_strict_witness_follows_the_polynomial() -> None:
    """N = 3 at zero: along (1,1,1)/sqrt(3) the loss is 1/2 - t^3/3^1.5 + t^6/54."""
    stats = Statistics.from_data(np.ones((1, 1)), np.ones((1, 1)))
    cert = certify([np.zeros((1, 1))] * 3, stats)
    w = cert.witness
    assert w is not None
    assert w.coefficient == pytest.approx(-(3**-1.5), rel=1e-12)
    t = w.radius
    assert w.loss_decrease == pytest.approx(t**3 / 3**1.5 - t**6 / 54, rel=1e-12)


@pytest.mark.parametrize("widths", [[4, 3, 2], [5, 2, 3, 4], [3, 4, 4, 3]])
@pytest.mark.parametrize("S", [(1,), (2,), ()])
def test_verdict_invariant_under_consistent_rescaling(widths: list[int], S: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    X, Y = random_data(rng, widths[0], widths[-1], 30)
    stats = Statistics.from_data(X, Y)
    c = construct(rng, stats, widths, S)
    assert c is not None
    base = certify(c.weights, stats)
    for cx, cy, a in [(1e3, 1.0, 1.0), (1.0, 1e-3, 1.0), (1.0, 1.0, 1e2), (1e-2, 1e4, 1e-3)]:
        W = [w.copy() for w in c.weights]
        W[0] = W[0] / cx
        W[-1] = W[-1] * cy
        W[0] = W[0] * a
        W[1] = W[1] / a
        cert = certify(W, stats.scaled(cx, cy))
        assert cert.verdict is base.verdict
        assert cert.relative_gap == pytest.approx(base.relative_gap, rel=1e-6, abs=1e-12)
        assert cert.relative_gradient_norm <= cert.tolerances.gtol


@pytest.mark.parametrize("widths", [[6, 4, 2], [8, 3, 5, 4], [5, 5, 5, 5]])
def test_float32_optimum_certifies_global(widths: list[int]) -> None:
    rng = np.random.default_rng(3)
    X, Y = random_data(rng, widths[0], widths[-1], 200)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    stats64 = Statistics.from_data(X32.astype(np.float64), Y32.astype(np.float64))
    W = balanced_factorization(optimal_product(whiten(stats64, 1e-13), min(widths)), widths)
    W32 = [w.astype(np.float32) for w in W]
    stats = Statistics.from_data(X32, Y32)
    assert stats.eps == pytest.approx(float(np.finfo(np.float32).eps))
    cert = certify(W32, stats)
    assert cert.verdict is Verdict.GLOBAL_MINIMUM, (cert.relative_gradient_norm, cert.relative_gap)
    assert cert.tolerances.eps == pytest.approx(float(np.finfo(np.float32).eps))


def test_random_point_is_not_critical(rng: np.random.Generator) -> None:
    X, Y = random_data(rng, 4, 3, 30)
    stats = Statistics.from_data(X, Y)
    W = [rng.standard_normal((3, 4)), rng.standard_normal((3, 3))]
    cert = certify(W, stats)
    assert cert.verdict is Verdict.NOT_CRITICAL
    assert cert.relative_gradient_norm > cert.tolerances.gtol
    assert cert.hessian.method == "none"


def test_single_layer_is_convex(rng: np.random.Generator) -> None:
    X, Y = random_data(rng, 4, 3, 30)
    stats = Statistics.from_data(X, Y)
    wh = whiten(stats, 1e-13)
    cert = certify([optimal_product(wh, 3)], stats)
    assert cert.verdict is Verdict.GLOBAL_MINIMUM


def test_user_tolerances_are_recorded(small_problem: tuple) -> None:
    _, _, stats = small_problem
    W = balanced_factorization(optimal_product(whiten(stats, 1e-13), 2), [4, 2, 3])
    cert = certify(W, stats, gtol=1e-5, ftol=1e-8)
    assert cert.tolerances.gtol == 1e-5 and cert.tolerances.ftol == 1e-8
    assert cert.verdict is Verdict.GLOBAL_MINIMUM


@pytest.mark.parametrize("widths", [[6, 3, 3], [6, 2, 3, 3], [5, 3, 3, 3, 2]])
def test_fewer_samples_than_inputs(widths: list[int]) -> None:
    """Sxx singular (m = 3 < dx): the rank rule runs on range(X); verdicts still match the oracle."""
    rng = np.random.default_rng(sum(widths))
    X = rng.standard_normal((widths[0], 3))
    Y = rng.standard_normal((widths[-1], 3))
    stats = Statistics.from_data(X, Y)
    wh = whiten(stats, 1e-13)
    n_s = int(np.sum(wh.s > 1e-10 * wh.s[0]))
    k_eff = min(min(widths), n_s)
    for r in range(k_eff + 1):
        for S in itertools.combinations(range(1, n_s + 1), r):
            c = construct(rng, stats, widths, S)
            assert c is not None
            assert certify(c.weights, stats).verdict is oracle(stats, c.weights, S, k_eff)


@pytest.mark.parametrize("widths", [[6, 5, 5, 4], [5, 4, 6, 4, 5], [8, 3, 6, 6, 4]])
def test_fully_random_changes_of_basis(widths: list[int]) -> None:
    """Hidden layers rotated by G = randn/sqrt(d) (condition 1e1-1e3 each): same verdicts."""
    rng = np.random.default_rng(len(widths) * 100 + widths[1])
    X, Y = random_data(rng, widths[0], widths[-1], 60)
    stats = Statistics.from_data(X, Y)
    n = len(widths) - 1
    k_eff = min(min(widths), widths[0], widths[-1])
    for r in range(k_eff + 1):
        for S in list(itertools.combinations(range(1, min(widths[0], widths[-1]) + 1), r))[:4]:
            c = construct(rng, stats, widths, S, basis_change=False)
            assert c is not None
            G = [np.eye(widths[0])] + [
                rng.standard_normal((widths[i], widths[i])) / np.sqrt(widths[i]) for i in range(1, n)
            ] + [np.eye(widths[-1])]
            W = [G[i + 1] @ c.weights[i] @ np.linalg.inv(G[i]) for i in range(n)]
            cert = certify(W, stats)
            assert cert.verdict is oracle(stats, W, S, k_eff), (S, cert.reasons)
            if cert.witness is not None:
                assert raw_loss(cert.witness.point, X, Y) < raw_loss(W, X, Y)


def test_tiny_weights_are_not_critical_and_huge_ones_refused(rng: np.random.Generator) -> None:
    """No underflow to a false 'critical'; a product 1e400 times the targets overflows any rescaling."""
    X, Y = random_data(rng, 5, 2, 30)
    stats = Statistics.from_data(X, Y)
    W = [rng.standard_normal((3, 5)), rng.standard_normal((2, 3))]
    tiny = certify([1e-200 * w for w in W], stats)
    assert tiny.verdict is Verdict.NOT_CRITICAL
    assert tiny.gradient_norm > 0
    with pytest.raises(InputError, match="overflow"):
        certify([1e200 * w for w in W], stats)


@pytest.mark.parametrize(("weights", "stats_kw", "match"), [
    ([np.eye(2) * (1 + 1j)], {}, "complex"),
    ([np.eye(2, dtype=bool)], {}, "boolean"),
    ([np.array([[np.nan, 0.0], [0.0, 1.0]])], {}, "NaN"),
    ([[[1.0, 0.0], [0.0, 1.0]]], {}, "expected a numpy array"),
    ([np.eye(2)], {"Sxx": -np.eye(2)}, "indefinite"),
    ([np.eye(3)], {}, "data has dx = 2"),
])
def test_library_entry_validates_like_the_cli(weights: list, stats_kw: dict, match: str) -> None:
    """``dlcert.certify`` runs the same check_* validators as the command line: one-line errors."""
    kw = {"Sxx": np.eye(2), "Syx": np.eye(2), "syy": 3.0, "m": 5} | stats_kw
    with pytest.raises(InputError, match=match):
        certify(weights, Statistics(**kw))


def test_library_entry_refuses_what_is_not_statistics() -> None:
    with pytest.raises(InputError, match=r"expected dlcert\.Statistics"):
        certify([np.eye(2)], "stats.npz")  # type: ignore[arg-type]
