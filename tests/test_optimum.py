"""The exact optimum (SPEC §3) against brute force and raw-data losses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from oracles import raw_loss

from dlcert.objective import loss_of_product
from dlcert.optimum import (
    balanced_factorization,
    critical_value,
    ols_loss,
    optimal_loss,
    optimal_product,
    rank_excess,
    whiten,
)
from dlcert.products import product
from dlcert.statistics import Statistics


@pytest.mark.parametrize(("dx", "dy", "k"), [(4, 3, 1), (4, 3, 2), (4, 3, 3), (3, 5, 2), (6, 6, 4)])
def test_optimal_loss_is_attained_and_not_beaten(rng: np.random.Generator, dx: int, dy: int, k: int) -> None:
    X = rng.standard_normal((dx, 40))
    Y = rng.standard_normal((dy, dx)) @ X + rng.standard_normal((dy, 40))
    stats = Statistics.from_data(X, Y)
    wh = whiten(stats, 1e-13)
    Rstar = optimal_product(wh, k)
    assert np.linalg.matrix_rank(Rstar) == k
    best = optimal_loss(stats, wh, k)
    out = Rstar @ X
    assert 0.5 * np.sum((out - Y) ** 2) == pytest.approx(best, rel=1e-10)
    # No rank-k map does better: random rank-k maps and local perturbations of R*.
    for _ in range(200):
        P = rng.standard_normal((dy, k)) @ rng.standard_normal((k, dx))
        assert loss_of_product(P, stats) >= best - 1e-9 * stats.syy
    for _ in range(50):
        U, s, Vt = np.linalg.svd(Rstar + 1e-3 * rng.standard_normal(Rstar.shape))
        P = (U[:, :k] * s[:k]) @ Vt[:k]
        assert loss_of_product(P, stats) >= best - 1e-12 * stats.syy
    # The OLS loss is the unconstrained optimum.
    beta = np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T
    assert ols_loss(stats, wh) == pytest.approx(0.5 * np.sum((beta @ X - Y) ** 2), rel=1e-10)


def test_stable_gap_matches_difference_of_losses(rng: np.random.Generator) -> None:
    X = rng.standard_normal((5, 50))
    Y = rng.standard_normal((4, 5)) @ X + rng.standard_normal((4, 50))
    stats = Statistics.from_data(X, Y)
    wh = whiten(stats, 1e-13)
    for _ in range(20):
        W = [rng.standard_normal((2, 5)), rng.standard_normal((4, 2))]
        naive = raw_loss(W, X, Y) - optimal_loss(stats, wh, 2)
        assert rank_excess(product(W), wh, 2) == pytest.approx(naive, rel=1e-9)
    # At the optimum the stable gap is at rounding level, far below the naive difference's noise.
    Wopt = balanced_factorization(optimal_product(wh, 2), [5, 2, 4])
    assert abs(rank_excess(product(Wopt), wh, 2)) <= 1e-12 * stats.syy


def test_critical_values_cover_all_index_sets(rng: np.random.Generator) -> None:
    X = rng.standard_normal((3, 30))
    Y = rng.standard_normal((3, 3)) @ X
    stats = Statistics.from_data(X, Y)
    wh = whiten(stats, 1e-13)
    for r in range(4):
        for S in itertools.combinations([1, 2, 3], r):
            idx = [i - 1 for i in S]
            R = wh.U[:, idx] @ wh.U[:, idx].T @ wh.T @ wh.S_pinv
            expected = critical_value(stats, wh, S)
            assert loss_of_product(R, stats) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_singular_sxx_uses_pseudo_inverse(rng: np.random.Generator) -> None:
    Z = rng.standard_normal((2, 40))
    X = rng.standard_normal((4, 2)) @ Z  # rank 2 inputs in 4 dimensions
    Y = rng.standard_normal((3, 2)) @ Z + 0.1 * rng.standard_normal((3, 40))
    stats = Statistics.from_data(X, Y)
    wh = whiten(stats, 1e-12)
    assert wh.sxx_rank == 2
    Rstar = optimal_product(wh, 1)
    assert 0.5 * np.sum((Rstar @ X - Y) ** 2) == pytest.approx(optimal_loss(stats, wh, 1), rel=1e-9)


@pytest.mark.parametrize("widths", [[4, 3, 2], [4, 2, 5, 3, 2], [3, 3], [2, 4, 4, 4, 2]])
def test_balanced_factorization(rng: np.random.Generator, widths: list[int]) -> None:
    k = min(widths)
    R = rng.standard_normal((widths[-1], k)) @ rng.standard_normal((k, widths[0]))
    W = balanced_factorization(R, widths)
    assert [w.shape for w in W] == [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
    assert np.allclose(product(W), R, atol=1e-12 * np.abs(R).max())
    norms = [np.linalg.norm(w, 2) for w in W]
    assert max(norms) == pytest.approx(min(norms), rel=1e-10)
