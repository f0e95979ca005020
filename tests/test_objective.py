"""Loss, gradient and HVP against independent references (raw data, finite differences, Kronecker Hessian)."""

from __future__ import annotations

import numpy as np
import pytest
from oracles import kron_hessian, raw_loss

from dlcert.hessian import dense_hessian
from dlcert.objective import PointCache, flatten, gradient, hvp, loss, unflatten
from dlcert.statistics import Statistics

ARCHS = [[3, 2], [4, 3, 2], [3, 2, 4, 3], [2, 3, 3, 2, 2], [5, 2, 3, 4, 2, 3]]


def _point(rng: np.random.Generator, widths: list[int]) -> list[np.ndarray]:
    return [rng.standard_normal((widths[i + 1], widths[i])) for i in range(len(widths) - 1)]


@pytest.mark.parametrize("widths", ARCHS)
def test_loss_matches_raw_data(rng: np.random.Generator, widths: list[int]) -> None:
    X = rng.standard_normal((widths[0], 25))
    Y = rng.standard_normal((widths[-1], 25))
    W = _point(rng, widths)
    stats = Statistics.from_data(X, Y)
    assert loss(W, stats) == pytest.approx(raw_loss(W, X, Y), rel=1e-12)


@pytest.mark.parametrize("widths", ARCHS)
def test_gradient_matches_central_differences(rng: np.random.Generator, widths: list[int]) -> None:
    X = rng.standard_normal((widths[0], 20))
    Y = rng.standard_normal((widths[-1], 20))
    stats = Statistics.from_data(X, Y)
    W = _point(rng, widths)
    g = flatten(gradient(W, stats))
    shapes = [w.shape for w in W]
    x0 = flatten(W)
    h = 1e-6
    fd = np.empty_like(x0)
    for j in range(x0.size):
        e = np.zeros_like(x0)
        e[j] = h
        fd[j] = (loss(unflatten(x0 + e, shapes), stats) - loss(unflatten(x0 - e, shapes), stats)) / (2 * h)
    assert np.max(np.abs(g - fd)) <= 1e-6 * max(1.0, np.max(np.abs(g)))


@pytest.mark.parametrize("widths", ARCHS)
def test_hvp_matches_kronecker_hessian(rng: np.random.Generator, widths: list[int]) -> None:
    X = rng.standard_normal((widths[0], 20))
    Y = rng.standard_normal((widths[-1], 20))
    stats = Statistics.from_data(X, Y)
    W = _point(rng, widths)
    H_ref = kron_hessian(W, stats.Sxx, stats.Syx)
    cache = PointCache.at(W, stats)
    shapes = [w.shape for w in W]
    for _ in range(3):
        v = rng.standard_normal(H_ref.shape[0])
        hv = flatten(hvp(unflatten(v, shapes), stats, cache))
        ref = H_ref @ v
        assert np.linalg.norm(hv - ref) <= 1e-10 * np.linalg.norm(ref)
    H = dense_hessian(stats, cache)
    assert np.max(np.abs(H - H_ref)) <= 1e-10 * np.max(np.abs(H_ref))


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ((0.0, 0.0), [-1.0, 1.0]),
        ((0.0, 0.0, 0.0), [0.0, 0.0, 0.0]),
        ((2.0, 0.0, 0.0), [-2.0, 0.0, 2.0]),
        ((1.0, 1.0, 1.0), [0.0, 0.0, 3.0]),
    ],
)
def test_scalar_chain_hessian_oracles(point: tuple[float, ...], expected: list[float]) -> None:
    """SPEC §4 oracles: x = y = 1, L = 1/2 (w_N ... w_1 - 1)^2."""
    stats = Statistics.from_data(np.ones((1, 1)), np.ones((1, 1)))
    W = [np.array([[w]]) for w in point]
    lam = np.linalg.eigvalsh(dense_hessian(stats, PointCache.at(W, stats)))
    assert lam == pytest.approx(expected, abs=1e-12)
