"""Partial products of the weight matrices and their numerical ranks (SPEC §1).

``R = W_N ... W_1``; above-products ``A_i = W_N ... W_{i+1}`` (identity for i = N);
below-products ``B_i = W_{i-1} ... W_1`` (identity for i = 1). Layers are 1-based in every
name and message, 0-based in Python lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlcert.budget import check

Weights = Sequence[np.ndarray]

#: A singular value within this factor of the rank cut (either side) makes a rank ambiguous.
AMBIGUITY_FACTOR = 10.0


def widths_of(weights: Weights) -> list[int]:
    """``[d_0, ..., d_N]`` of a composable chain."""
    return [int(weights[0].shape[1])] + [int(w.shape[0]) for w in weights]


def product(weights: Weights) -> np.ndarray:
    """``R = W_N ... W_1``."""
    out = weights[0]
    for w in weights[1:]:
        out = w @ out
    return out


def chain(weights: Weights, lo: int, hi: int) -> np.ndarray:
    """``W_hi ... W_lo`` (1-based, inclusive); the identity of size ``d_{lo-1}`` when hi < lo."""
    if hi < lo:
        return np.eye(widths_of(weights)[lo - 1])
    out = weights[lo - 1]
    for w in weights[lo:hi]:
        out = w @ out
    return out


def above_products(weights: Weights) -> list[np.ndarray]:
    """``[A_1, ..., A_N]`` with ``A_i = W_N ... W_{i+1}`` (``A_N = I``)."""
    n = len(weights)
    out: list[np.ndarray] = [np.empty((0, 0))] * n
    acc = np.eye(weights[-1].shape[0])
    out[n - 1] = acc
    for i in range(n - 1, 0, -1):
        acc = acc @ weights[i]
        out[i - 1] = acc
    return out


def below_products(weights: Weights) -> list[np.ndarray]:
    """``[B_1, ..., B_N]`` with ``B_i = W_{i-1} ... W_1`` (``B_1 = I``)."""
    acc = np.eye(weights[0].shape[1])
    out = [acc]
    for w in weights[:-1]:
        acc = w @ acc
        out.append(acc)
    return out


@dataclass(frozen=True)
class NumericalRank:
    """Rank of a matrix judged against a relative singular-value cutoff.

    rank : number of singular values above ``cutoff``.
    singular_values : all singular values, descending.
    cutoff : absolute cutoff ``rtol * sigma_max``.
    gap : ``sigma_{r+1} / sigma_r`` (0 when the cut is clean, 1 when there is no gap).
    ambiguous : a singular value lies within ``AMBIGUITY_FACTOR`` of the cutoff.
    """

    rank: int
    singular_values: np.ndarray
    cutoff: float
    gap: float
    ambiguous: bool


def numerical_rank(a: np.ndarray, rtol: float, scale: float = 0.0) -> NumericalRank:
    """Numerical rank: singular values above ``rtol * max(sigma_max, scale)`` count.

    ``scale`` is the magnitude the rounding errors of ``a`` are proportional to when ``a`` is a
    product whose factors are much larger than it (:func:`product_scale`); an all-zero matrix
    has rank 0.
    """
    if a.size == 0:
        return NumericalRank(0, np.zeros(0), 0.0, 0.0, False)
    check()
    sv = np.linalg.svd(a, compute_uv=False)
    smax = float(sv[0]) if sv.size else 0.0
    if smax == 0.0:
        return NumericalRank(0, sv, 0.0, 0.0, False)
    cutoff = rtol * max(smax, scale)
    rank = int(np.count_nonzero(sv > cutoff))
    above = float(sv[rank - 1]) if rank > 0 else smax
    below = float(sv[rank]) if rank < sv.size else 0.0
    gap = below / above if above > 0 else 0.0
    ambiguous = bool(
        np.any((sv > cutoff / AMBIGUITY_FACTOR) & (sv <= cutoff * AMBIGUITY_FACTOR))
    )
    return NumericalRank(rank, sv, cutoff, gap, ambiguous)


def product_scale(factors: Sequence[np.ndarray]) -> float:
    """``max_j ||M_k..M_(j+1)||_2 ||M_j||_2 ||M_(j-1)..M_1||_2`` for ``P = M_k ... M_1``.

    Rounding ``M_j`` (storage or arithmetic) moves ``P`` by about eps times this; it equals
    ``||P||_2`` up to the factors' conditioning, and is far larger when a change of basis between
    the factors is ill-conditioned (a gauge ``W_i -> G_i W_i G_(i-1)^-1``). Factors are given in
    the order they apply (``factors[0]`` first).
    """
    k = len(factors)
    if k == 0:
        return 0.0
    below = [np.eye(factors[0].shape[1])]
    for m in factors[:-1]:
        below.append(m @ below[-1])
    best = 0.0
    above = np.eye(factors[-1].shape[0])
    for j in range(k - 1, -1, -1):
        term = _norm2(above) * _norm2(factors[j]) * _norm2(below[j])
        best = max(best, term)
        above = above @ factors[j]
    return best


def chain_rank(factors: Sequence[np.ndarray], rtol: float) -> tuple[np.ndarray, NumericalRank]:
    """The product ``M_k ... M_1`` of ``factors`` (``factors[0]`` first) and its numerical rank,
    judged against the scale its rounding errors are proportional to (:func:`product_scale`)."""
    out = factors[0]
    for m in factors[1:]:
        out = m @ out
    scale = product_scale(factors) if len(factors) > 1 else 0.0
    return out, numerical_rank(out, rtol, scale)


def _norm2(a: np.ndarray) -> float:
    if a.size == 0 or not np.any(a):
        return 0.0
    check()
    return float(np.linalg.norm(a, 2))


def null_space(a: np.ndarray, rtol: float) -> np.ndarray:
    """Orthonormal basis (columns) of the numerical null space of ``a`` (right null space)."""
    n = a.shape[1]
    if a.size == 0 or not np.any(a):
        return np.eye(n)
    check()
    _, sv, vt = np.linalg.svd(a, full_matrices=True)
    rank = int(np.count_nonzero(sv > rtol * sv[0]))
    return np.ascontiguousarray(vt[rank:].T)
