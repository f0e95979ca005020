"""The Hessian operator and its spectrum (SPEC §4).

Oracles independent of the code under test: central differences of the gradient (for the
HVP), the readable recurrence :func:`dlcert.objective.hvp` (for the batched engine), the scalar
chains of SPEC §4 (closed-form eigenvalues) and dense ``eigvalsh`` (for the iterative path).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from dlcert.hessian import HVPEngine, dense_hessian, gn_preconditioner, spectrum
from dlcert.objective import PointCache, flatten, gradient, hvp, unflatten
from dlcert.optimum import whiten
from dlcert.statistics import Statistics
from dlcert.witness import find_witness
from tests.constructions import construct, random_data


def scalar_stats() -> Statistics:
    """x = y = 1: L = 1/2 (w_N ... w_1 - 1)^2."""
    return Statistics(Sxx=np.ones((1, 1)), Syx=np.ones((1, 1)), syy=1.0, m=1)


def scalar_weights(values: list[float]) -> list[np.ndarray]:
    return [np.array([[v]]) for v in values]


def random_point(rng: np.random.Generator, widths: list[int]) -> tuple[Statistics, list[np.ndarray]]:
    X, Y = random_data(rng, widths[0], widths[-1], 3 * widths[0] + 4)
    stats = Statistics.from_data(X, Y)
    W = [rng.standard_normal((widths[i + 1], widths[i])) / np.sqrt(widths[i])
         for i in range(len(widths) - 1)]
    return stats, W


def hard_basis_point(
    rng: np.random.Generator, widths: list[int], index_set: tuple[int, ...]
) -> tuple[Statistics, list[np.ndarray]]:
    """A constructed critical point, then a fully random change of basis in every hidden layer."""
    X, Y = random_data(rng, widths[0], widths[-1], 2 * widths[0])
    stats = Statistics.from_data(X, Y)
    c = construct(rng, stats, widths, index_set)
    assert c is not None
    n = len(widths) - 1
    G = [np.eye(widths[0])] + [rng.standard_normal((widths[i], widths[i])) / np.sqrt(widths[i])
                               for i in range(1, n)] + [np.eye(widths[-1])]
    return stats, [G[i + 1] @ c.weights[i] @ np.linalg.inv(G[i]) for i in range(n)]


WIDTHS = [[3, 2], [4, 3, 2], [5, 2, 4, 3], [3, 4, 1, 5, 2], [6, 5, 4, 3, 2, 1]]


@pytest.mark.parametrize("widths", WIDTHS, ids=lambda w: "-".join(map(str, w)))
def test_engine_matches_readable_hvp_in_blocks(widths: list[int]) -> None:
    rng = np.random.default_rng(len(widths))
    stats, W = random_point(rng, widths)
    cache = PointCache.at(W, stats)
    eng = HVPEngine(stats, cache)
    k = 3
    V = [rng.standard_normal((k, *w.shape)) for w in W]
    out = eng.apply(V)
    for j in range(k):
        ref = hvp([v[j] for v in V], stats, cache)
        for a, b in zip(out, ref, strict=True):
            np.testing.assert_allclose(a[j], b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
    flat = np.column_stack([flatten([v[j] for v in V]) for j in range(k)])
    np.testing.assert_allclose(eng.matmat(flat)[:, 1], flatten([o[1] for o in out]), rtol=1e-14)
    assert eng.count == k


@pytest.mark.parametrize("widths", WIDTHS, ids=lambda w: "-".join(map(str, w)))
def test_dense_hessian_matches_gradient_differences(widths: list[int]) -> None:
    """Column j of H is d(grad)/d(theta_j): central differences, error O(h^2)."""
    rng = np.random.default_rng(10 + len(widths))
    stats, W = random_point(rng, widths)
    H = dense_hessian(stats, PointCache.at(W, stats))
    shapes = [w.shape for w in W]
    theta = flatten(W)
    h = 1e-5
    cols = rng.choice(theta.size, size=min(6, theta.size), replace=False)
    for j in cols:
        e = np.zeros_like(theta)
        e[j] = h
        gp = flatten(gradient(unflatten(theta + e, shapes), stats))
        gm = flatten(gradient(unflatten(theta - e, shapes), stats))
        fd = (gp - gm) / (2 * h)
        np.testing.assert_allclose(H[:, j], fd, rtol=0, atol=1e-6 * np.abs(H).max())
    np.testing.assert_array_equal(H, H.T)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.0], [-1.0, 1.0]),
        ([2.0, 0.0, 0.0], [-2.0, 0.0, 2.0]),
        ([1.0, 1.0, 1.0], [0.0, 0.0, 3.0]),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_scalar_chain_eigenvalues(values: list[float], expected: list[float]) -> None:
    """SPEC §4 oracles, L = 1/2 (w_N ... w_1 - 1)^2."""
    stats = scalar_stats()
    cache = PointCache.at(scalar_weights(values), stats)
    lam = np.linalg.eigvalsh(dense_hessian(stats, cache))
    np.testing.assert_allclose(lam, expected, atol=1e-14)
    spec, _ = spectrum(stats, cache, n_extremes=len(values))
    assert spec.method == "dense" and spec.converged
    np.testing.assert_allclose(spec.extremes, expected, atol=1e-14)
    assert spec.min_eigenvalue == pytest.approx(expected[0], abs=1e-14)
    assert spec.max_eigenvalue == pytest.approx(expected[-1], abs=1e-14)


@pytest.mark.parametrize("n_layers", [3, 4])
def test_exactly_zero_operator_is_safe_on_the_iterative_path(n_layers: int) -> None:
    """All-zero weights, N >= 3: H = 0 exactly; ARPACK would fail, we must not."""
    rng = np.random.default_rng(0)
    widths = [40] + [30] * (n_layers - 1) + [20]
    X, Y = random_data(rng, widths[0], widths[-1], 100)
    stats = Statistics.from_data(X, Y)
    W = [np.zeros((widths[i + 1], widths[i])) for i in range(n_layers)]
    spec, vec = spectrum(stats, PointCache.at(W, stats), dense_limit=0, n_extremes=2)
    assert spec.min_eigenvalue == 0.0 and spec.max_eigenvalue == 0.0
    assert spec.converged and spec.residual == 0.0 and spec.extremes == [0.0, 0.0]
    assert vec is None


def test_zero_detection_does_not_fire_on_a_nonzero_operator() -> None:
    """N = 2 at zero weights: H != 0 (eigenvalues +-s_i) though the point has zero products."""
    rng = np.random.default_rng(1)
    X, Y = random_data(rng, 40, 30, 100)
    stats = Statistics.from_data(X, Y)
    W = [np.zeros((35, 40)), np.zeros((30, 35))]
    cache = PointCache.at(W, stats)
    spec, _ = spectrum(stats, cache, dense_limit=0, time_budget=30)
    s1 = whiten(stats, 1e-13).s[0]
    assert spec.converged
    # At W = 0 the Hessian is [[0, -Syx^T...]]: its extremes are -+ the largest singular value of Syx.
    sv = np.linalg.svd(stats.Syx, compute_uv=False)[0]
    assert spec.min_eigenvalue == pytest.approx(-sv, rel=1e-8)
    assert spec.max_eigenvalue == pytest.approx(sv, rel=1e-6)
    assert s1 > 0


CASES = [
    ([8, 6, 5, 4], (2,), False),
    ([12, 6, 6, 5], (1, 3), False),
    ([30, 20, 20, 10], (1, 2, 4), False),
    ([30, 20, 20, 10], (1, 2, 4), True),
    ([20, 9, 7, 8, 6], (1, 2, 5), True),
    ([25, 15, 25, 10], (2,), True),
]


@pytest.mark.parametrize(("widths", "index_set", "hard"), CASES)
def test_iterative_lambda_min_matches_dense(
    widths: list[int], index_set: tuple[int, ...], hard: bool
) -> None:
    rng = np.random.default_rng(sum(widths))
    if hard:
        stats, W = hard_basis_point(rng, widths, index_set)
    else:
        X, Y = random_data(rng, widths[0], widths[-1], 2 * widths[0])
        stats = Statistics.from_data(X, Y)
        c = construct(rng, stats, widths, index_set)
        assert c is not None
        W = c.weights
    cache = PointCache.at(W, stats)
    _, d = find_witness(W, stats, whiten(stats, 1e-13), cache, 1e-10, index_set=list(index_set))
    dense, _ = spectrum(stats, cache, direction=d.V if d else None, n_extremes=3)
    it, vec = spectrum(stats, cache, direction=d.V if d else None, dense_limit=0,
                       time_budget=60, n_extremes=3)
    assert dense.method == "dense" and it.method == "lobpcg"
    assert dense.min_eigenvalue is not None and it.min_eigenvalue is not None
    assert dense.min_eigenvalue < 0  # a strict saddle: S is not a top set
    assert it.converged, it
    assert it.residual is not None and it.residual <= 1e-8
    assert it.min_eigenvalue == pytest.approx(dense.min_eigenvalue, rel=1e-6)
    assert it.max_eigenvalue == pytest.approx(dense.max_eigenvalue, rel=1e-5)
    lmax = abs(dense.max_eigenvalue or 1.0)
    np.testing.assert_allclose(it.extremes, dense.extremes, rtol=1e-5, atol=1e-8 * lmax)
    assert len(it.extreme_residuals) == 3 and max(it.extreme_residuals) <= 1e-8
    # The eigenvector is a certificate on its own: its Rayleigh quotient bounds lambda_min.
    assert vec is not None
    hv = HVPEngine(stats, cache).matmat(vec)
    assert float(vec @ hv / (vec @ vec)) == pytest.approx(it.min_eigenvalue, rel=1e-8)
    if d is not None and it.direction_curvature is not None:
        assert it.min_eigenvalue <= it.direction_curvature + 1e-9 * abs(it.max_eigenvalue or 1)


@pytest.mark.parametrize("budget", [0.0, 0.05])
def test_converged_is_never_faked(budget: float) -> None:
    """An impossible residual target or no time: the flag must say so, with the residual shown
    whenever an iteration ran (a zero budget may stop the solver before its first one)."""
    rng = np.random.default_rng(5)
    stats, W = hard_basis_point(rng, [30, 20, 20, 10], (1, 2, 4))
    cache = PointCache.at(W, stats)
    spec, _ = spectrum(stats, cache, dense_limit=0, time_budget=budget, rtol=1e-30)
    assert not spec.converged
    assert (spec.iterations == 0 and spec.residual is None) or (
        spec.residual is not None and spec.residual > 1e-30
    )
    long, _ = spectrum(stats, cache, dense_limit=0, time_budget=30.0, rtol=1e-30)
    assert not long.converged and long.iterations > 0
    assert long.residual is not None and long.residual > 1e-30
    spec2, _ = spectrum(stats, cache, dense_limit=0, time_budget=budget)
    assert spec2.converged == (spec2.residual is not None and spec2.residual <= 1e-8)


def test_time_budget_is_honoured() -> None:
    rng = np.random.default_rng(6)
    stats, W = hard_basis_point(rng, [150, 100, 100, 40], (1, 2, 4))
    cache = PointCache.at(W, stats)
    spec, _ = spectrum(stats, cache, dense_limit=0, time_budget=1.0, rtol=1e-30)
    # rtol = 1e-30 is unattainable: returning at all means the budget stopped the solver.
    # The bound on seconds is loose on purpose (a loaded CI machine): this is not a timing test.
    assert not spec.converged
    assert spec.seconds < 1.0 + 30.0


def test_a_past_deadline_stops_before_any_iteration() -> None:
    """The deadline is shared with the rest of the check: if it has passed, nothing is computed
    (not even one product) and nothing is claimed."""
    rng = np.random.default_rng(7)
    widths = [30, 20, 20, 10]
    X, Y = random_data(rng, widths[0], widths[-1], 2 * widths[0])
    stats = Statistics.from_data(X, Y)
    c = construct(rng, stats, widths, (1, 2, 4))
    assert c is not None
    cache = PointCache.at(c.weights, stats)
    _, d = find_witness(c.weights, stats, whiten(stats, 1e-13), cache, 1e-10, index_set=[1, 2, 4])
    assert d is not None
    for limit in (0, 10**6):
        spec, vec = spectrum(stats, cache, direction=d.V, dense_limit=limit,
                             deadline=time.perf_counter() - 1.0)
        assert not spec.converged and spec.iterations == 0 and spec.hvp_count == 0
        assert spec.min_eigenvalue is None and spec.min_eigenvalue_error is None and vec is None
    # With time, the same call converges (the test above is not vacuous).
    spec, _ = spectrum(stats, cache, direction=d.V, dense_limit=0, deadline=time.perf_counter() + 60.0)
    assert spec.converged and spec.min_eigenvalue is not None and spec.min_eigenvalue < 0


def test_lobpcg_seeds_every_structured_direction() -> None:
    """Seeds from several structured directions give the dense lambda_min (residual-checked)."""
    rng = np.random.default_rng(8)
    stats, W = hard_basis_point(rng, [30, 20, 20, 10], (1, 2, 4))
    cache = PointCache.at(W, stats)
    _, d = find_witness(W, stats, whiten(stats, 1e-13), cache, 1e-10, index_set=[1, 2, 4])
    dirs = [d.V] if d is not None else []
    dirs.append(tuple(np.random.default_rng(1).standard_normal(w.shape) for w in W))
    dense, _ = spectrum(stats, cache)
    it, _ = spectrum(stats, cache, directions=dirs, dense_limit=0, time_budget=60)
    assert it.converged and dense.min_eigenvalue is not None
    assert it.min_eigenvalue == pytest.approx(dense.min_eigenvalue, rel=1e-6)


def test_gn_preconditioner_is_spd_and_inverts_the_gauss_newton_block() -> None:
    rng = np.random.default_rng(7)
    stats, W = random_point(rng, [5, 4, 3, 2])
    cache = PointCache.at(W, stats)
    shift = 0.3
    M = gn_preconditioner(stats, cache, shift)
    n = M.shape[0]
    P = M.matmat(np.eye(n))
    np.testing.assert_allclose(P, P.T, atol=1e-12 * np.abs(P).max())
    assert np.linalg.eigvalsh(0.5 * (P + P.T))[0] > 0
    # Layer 2's block: V -> A^T A V (B Sxx B^T) + shift V, inverted by the preconditioner.
    i = 1
    Vi = rng.standard_normal(W[i].shape)
    K = cache.A[i].T @ cache.A[i] @ Vi @ (cache.B[i] @ stats.Sxx @ cache.B[i].T) + shift * Vi
    full = [np.zeros_like(w) for w in W]
    full[i] = K
    back = unflatten(M.matvec(flatten(full)), [w.shape for w in W])
    np.testing.assert_allclose(back[i], Vi, rtol=1e-8, atol=1e-10)
