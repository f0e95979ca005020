"""Loss, gradient and Hessian-vector product from the sufficient statistics (SPEC §2, §4).

With ``E = R Sxx - Syx``:
``L = 1/2 syy - <R, Syx> + 1/2 <R Sxx, R>``, ``dL/dW_i = A_i^T E B_i^T``
(Kawaguchi 2016 Lemma 4.1; Yun et al. 2018 Lemma 3.2), and along ``V = (V_1..V_N)``
``(H V)_i = A_i^T (dR Sxx) B_i^T + dA_i^T E B_i^T + A_i^T E dB_i^T``.
Nothing here touches X or Y.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlcert.products import Weights, above_products, below_products, product
from dlcert.statistics import Statistics


def residual_correlation(R: np.ndarray, stats: Statistics) -> np.ndarray:
    """``E = R Sxx - Syx`` (dy x dx)."""
    return R @ stats.Sxx - stats.Syx


def loss(weights: Weights, stats: Statistics) -> float:
    """``L(W) = 1/2 ||W_N ... W_1 X - Y||_F^2`` from the statistics."""
    R = product(weights)
    return loss_of_product(R, stats)


def loss_of_product(R: np.ndarray, stats: Statistics) -> float:
    """``1/2 syy - <R, Syx> + 1/2 <R Sxx, R>``."""
    return float(0.5 * stats.syy - np.vdot(R, stats.Syx) + 0.5 * np.vdot(R @ stats.Sxx, R))


@dataclass(frozen=True)
class PointCache:
    """Products at one point, shared by gradient and Hessian-vector products."""

    weights: tuple[np.ndarray, ...]
    A: list[np.ndarray]
    B: list[np.ndarray]
    R: np.ndarray
    E: np.ndarray
    AtE: list[np.ndarray]  # A_i^T E
    EBt: list[np.ndarray]  # E B_i^T

    @classmethod
    def at(cls, weights: Weights, stats: Statistics) -> PointCache:
        ws = tuple(weights)
        A = above_products(ws)
        B = below_products(ws)
        R = A[0] @ ws[0]
        E = residual_correlation(R, stats)
        return cls(
            weights=ws,
            A=A,
            B=B,
            R=R,
            E=E,
            AtE=[a.T @ E for a in A],
            EBt=[E @ b.T for b in B],
        )


def gradient(weights: Weights, stats: Statistics, cache: PointCache | None = None) -> list[np.ndarray]:
    """``[dL/dW_1, ..., dL/dW_N]`` with ``dL/dW_i = A_i^T E B_i^T``."""
    c = cache or PointCache.at(weights, stats)
    return [c.AtE[i] @ c.B[i].T for i in range(len(c.weights))]


def hvp(
    V: Sequence[np.ndarray], stats: Statistics, cache: PointCache
) -> list[np.ndarray]:
    """Hessian-vector product ``H V`` by prefix/suffix recurrences: O(N) matrix products.

    ``dB_{i+1} = V_i B_i + W_i dB_i`` and ``dA_{i-1} = dA_i W_i + A_i V_i``.
    """
    W, A, B = cache.weights, cache.A, cache.B
    n = len(W)
    dB: list[np.ndarray | None] = [None] * n  # dB_1 = 0
    acc: np.ndarray | None = None
    for i in range(n - 1):
        term = V[i] @ B[i]
        acc = term if acc is None else term + W[i] @ acc
        dB[i + 1] = acc
    dR = V[n - 1] @ B[n - 1] if dB[n - 1] is None else V[n - 1] @ B[n - 1] + W[n - 1] @ dB[n - 1]
    dA: list[np.ndarray | None] = [None] * n  # dA_N = 0
    acc = None
    for i in range(n - 1, 0, -1):
        term = A[i] @ V[i]
        acc = term if acc is None else acc @ W[i] + term
        dA[i - 1] = acc
    dRS = dR @ stats.Sxx
    out = []
    for i in range(n):
        hv = A[i].T @ dRS @ B[i].T
        dAi, dBi = dA[i], dB[i]
        if dAi is not None:
            hv = hv + dAi.T @ cache.EBt[i]
        if dBi is not None:
            hv = hv + cache.AtE[i] @ dBi.T
        out.append(hv)
    return out


def flatten(mats: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate matrices (row-major) into one parameter vector."""
    return np.concatenate([np.ravel(m) for m in mats])


def unflatten(vec: np.ndarray, shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Inverse of :func:`flatten` for the given shapes."""
    out, pos = [], 0
    for r, c in shapes:
        out.append(vec[pos : pos + r * c].reshape(r, c))
        pos += r * c
    return out


def frobenius(a: np.ndarray) -> float:
    """``||a||_F`` without underflow or overflow (scaled by the largest entry first)."""
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(a / scale))


def relative_gradient_norms(
    cache: PointCache, grads: Sequence[np.ndarray], stats: Statistics
) -> list[float]:
    """Scale-free gradient norms per layer.

    ``rho_i = ||dL/dW_i||_F / (||A_i||_2 ||B_i X||_2 ||Y||_F)`` with
    ``||B_i X||_2 = sqrt(lambda_max(B_i Sxx B_i^T))``. Since ``dL/dW_i = A_i^T (RX - Y)(B_i X)^T``,
    Cauchy-Schwarz gives ``0 <= rho_i <= ||RX - Y||_F / ||Y||_F``, and rho_i does not change
    under X -> cX, W_1 -> W_1/c; Y -> cY, W_N -> cW_N; or W_i -> aW_i, W_{i+1} -> W_{i+1}/a.
    ``B_i`` is scaled to unit largest entry before it is squared, so tiny or huge weights do not
    underflow or overflow. A vanishing denominator means a zero gradient in exact arithmetic
    (rho_i = 0); a non-zero gradient over a vanishing denominator is reported as ``inf``.
    """
    y_norm = float(np.sqrt(stats.syy))
    out = []
    for i, g in enumerate(grads):
        g_norm = frobenius(g)
        A = cache.A[i]
        a_scale = float(np.max(np.abs(A))) if A.size else 0.0
        a_norm = a_scale * float(np.linalg.norm(A / a_scale, 2)) if a_scale > 0 else 0.0
        B = cache.B[i]
        scale = float(np.max(np.abs(B))) if B.size else 0.0
        bx = 0.0
        if scale > 0:
            Bs = B / scale
            bx = scale * float(np.sqrt(max(0.0, float(np.linalg.eigvalsh(Bs @ stats.Sxx @ Bs.T)[-1]))))
        den = a_norm * bx * y_norm
        if den > 0:
            out.append(g_norm / den)
        else:
            out.append(0.0 if g_norm == 0 else math.inf)
    return out
