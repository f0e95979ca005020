"""Independent oracles: an explicit Kronecker-product Hessian and the loss from raw data.

Nothing here uses dlcert's HVP recurrences: the Hessian is assembled from
``dR = sum_i A_i V_i B_i`` (row-major ``vec(A V B) = (A kron B^T) vec(V)``) and the second
derivative ``<E, A_j V_j (W_{j-1}..W_{i+1}) V_i B_i>`` for i < j.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _chain(ws: Sequence[np.ndarray], lo: int, hi: int, size: int, dtype: type = float) -> np.ndarray:
    """W_hi ... W_lo (0-based, inclusive), identity of ``size`` when empty."""
    out = np.eye(size, dtype=dtype)
    for w in ws[lo : hi + 1]:
        out = w @ out
    return out


def kron_hessian(
    ws: Sequence[np.ndarray], Sxx: np.ndarray, Syx: np.ndarray, dtype: type = float
) -> np.ndarray:
    """The exact Hessian of ``1/2 tr(R Sxx R^T) - <R, Syx> + const`` in row-major vec order.

    ``dtype=object`` with Python-integer inputs keeps every entry an exact integer.
    """
    n = len(ws)
    widths = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    A = [_chain(ws, i + 1, n - 1, widths[i + 1], dtype) for i in range(n)]
    B = [_chain(ws, 0, i - 1, widths[0], dtype) for i in range(n)]
    R = _chain(ws, 0, n - 1, widths[0], dtype)
    E = R @ Sxx - Syx
    J = np.hstack([np.kron(A[i], B[i].T) for i in range(n)])
    dy = widths[-1]
    H = J.T @ np.kron(np.eye(dy, dtype=dtype), Sxx) @ J
    offsets = np.cumsum([0] + [w.size for w in ws])
    for i in range(n):
        for j in range(i + 1, n):
            G = A[j].T @ E @ B[i].T  # d_j x d_{i-1}
            M = _chain(ws, i + 1, j - 1, widths[i + 1], dtype)  # d_{j-1} x d_i
            block = np.einsum("rq,sp->rspq", G, M).reshape(ws[j].size, ws[i].size)
            H[offsets[j] : offsets[j + 1], offsets[i] : offsets[i + 1]] += block
            H[offsets[i] : offsets[i + 1], offsets[j] : offsets[j + 1]] += block.T
    return H


def raw_loss(ws: Sequence[np.ndarray], X: np.ndarray, Y: np.ndarray) -> float:
    """``1/2 ||W_N ... W_1 X - Y||_F^2`` straight from the samples."""
    out = X
    for w in ws:
        out = w @ out
    return float(0.5 * np.sum((out - Y) ** 2))
