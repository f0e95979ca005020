"""The exact optimum and the critical values of the deep problem (SPEC §3).

Whitening: ``S = Sxx^{1/2}`` (pseudo-inverse ``S^+`` when Sxx is singular), ``T = Syx S^+`` with
SVD ``T = U diag(s) V^T``. Then ``L(R) = 1/2 ||R S - T||_F^2 + L_ols`` and, for any depth and
widths, ``L* = L_ols + 1/2 sum_{i>k} s_i^2`` attained by ``R* = U_k U_k^T T S^+``
(Yun et al. 2018 Prop 3.1; Lu & Kawaguchi 2017 problem (2); Eckart-Young).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dlcert.statistics import Statistics


@dataclass(frozen=True)
class Whitening:
    """The whitened problem.

    S, S_pinv : ``Sxx^{1/2}`` and its pseudo-inverse.
    T : ``Syx S^+``; U, s, Vt : its full SVD factors (s descending, length min(dy, dx)).
    sxx_eigenvalues : eigenvalues of Sxx, descending; sxx_rank : numerical rank of Sxx.
    noise : the absolute eigenvalue cutoff ``rtol * lambda_max(Sxx)``.
    dropped_signal : ``sum_j min(syy, ||Syx q_j||^2 / noise)`` over the eigenvectors ``q_j`` of Sxx
        below the cutoff: how much ``||T||_F^2`` could have held in directions the statistics
        carry only to rounding (0 when Y does not load on them).
    """

    S: np.ndarray
    S_pinv: np.ndarray
    T: np.ndarray
    U: np.ndarray
    s: np.ndarray
    Vt: np.ndarray
    sxx_eigenvalues: np.ndarray
    sxx_rank: int
    noise: float = 0.0
    dropped_signal: float = 0.0

    @property
    def sxx_condition(self) -> float:
        lam = self.sxx_eigenvalues
        return float(lam[0] / lam[-1]) if lam.size and lam[-1] > 0 else float("inf")


def whiten(stats: Statistics, rtol: float) -> Whitening:
    """Whiten the problem; eigenvalues of Sxx below ``rtol * lambda_max`` count as zero."""
    lam, Q = np.linalg.eigh(stats.Sxx)
    lam, Q = lam[::-1], Q[:, ::-1]
    lam_max = float(lam[0]) if lam.size else 0.0
    keep = lam > rtol * lam_max if lam_max > 0 else np.zeros(lam.shape, bool)
    root = np.sqrt(np.where(keep, lam, 0.0))
    inv_root = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
    S = (Q * root) @ Q.T
    S_pinv = (Q * inv_root) @ Q.T
    T = stats.Syx @ S_pinv
    U, s, Vt = np.linalg.svd(T, full_matrices=True)
    noise = rtol * lam_max
    dropped = 0.0
    if noise > 0 and not np.all(keep):
        load = np.sum((stats.Syx @ Q[:, ~keep]) ** 2, axis=0)
        dropped = float(np.sum(np.minimum(stats.syy, load / noise)))
    return Whitening(
        S=S,
        S_pinv=S_pinv,
        T=T,
        U=U,
        s=s,
        Vt=Vt,
        sxx_eigenvalues=np.clip(lam, 0.0, None),
        sxx_rank=int(np.count_nonzero(keep)),
        noise=noise,
        dropped_signal=dropped,
    )


def ols_loss(stats: Statistics, wh: Whitening) -> float:
    """``L_ols = 1/2 (syy - ||T||_F^2)``: the loss no linear map can remove (clipped at 0)."""
    return max(0.0, 0.5 * (stats.syy - float(np.sum(wh.s**2))))


def optimal_loss(stats: Statistics, wh: Whitening, k: int) -> float:
    """``L* = L_ols + 1/2 sum_{i>k} s_i^2``."""
    return ols_loss(stats, wh) + 0.5 * float(np.sum(wh.s[k:] ** 2))


def critical_value(stats: Statistics, wh: Whitening, index_set: Iterable[int]) -> float:
    """``L_ols + 1/2 sum_{i not in I} s_i^2`` for a 1-based index set I (SPEC §3)."""
    chosen = {i - 1 for i in index_set}
    rest = [wh.s[i] ** 2 for i in range(wh.s.size) if i not in chosen]
    return ols_loss(stats, wh) + 0.5 * float(np.sum(rest))


def rank_excess(R: np.ndarray, wh: Whitening, r: int) -> float:
    """``1/2 ||R S - T||^2 - 1/2 sum_{i>r} s_i^2`` computed stably.

    With ``T_r`` the best rank-r approximation and ``T_{>r} = T - T_r``:
    ``1/2 ||R S - T_r||^2 - <R S, T_{>r}>`` (both terms vanish at the optimum, so no large
    numbers cancel). For r = k this is the optimality gap ``L(W) - L*``.
    """
    RS = R @ wh.S
    Ur = wh.U[:, :r]
    T_r = (Ur * wh.s[:r]) @ wh.Vt[:r]
    T_rest = wh.T - T_r
    D = RS - T_r
    return float(0.5 * np.vdot(D, D) - np.vdot(RS, T_rest))


def set_excess(R: np.ndarray, wh: Whitening, index_set: Iterable[int]) -> float:
    """``L(R) - c_I`` for the critical value ``c_I = L_ols + 1/2 sum_{i not in I} s_i^2``, stably.

    With ``T_I = sum_{i in I} s_i u_i v_i^T``: ``1/2 ||R S - T_I||^2 - <R S, T - T_I>`` (zero at a
    critical point whose learned set is I; :func:`rank_excess` is the top-r case).
    """
    idx = sorted(i - 1 for i in index_set if i <= wh.s.size)  # u_i beyond s have s_i = 0
    RS = R @ wh.S
    T_I = (wh.U[:, idx] * wh.s[idx]) @ wh.Vt[idx]
    D = RS - T_I
    return float(0.5 * np.vdot(D, D) - np.vdot(RS, wh.T - T_I))


def optimal_product(wh: Whitening, k: int) -> np.ndarray:
    """``R* = U_k U_k^T T S^+`` (``U_k U_k^T Syx Sxx^{-1}`` when Sxx is invertible)."""
    Uk = wh.U[:, :k]
    return Uk @ (Uk.T @ wh.T) @ wh.S_pinv


def balanced_factorization(R: np.ndarray, widths: list[int]) -> list[np.ndarray]:
    """Weights ``W_1..W_N`` of the given widths with product ``R`` and equal singular values.

    Requires ``rank(R) <= min(widths)``. Each layer carries ``diag(sigma)^(1/N)``; singular
    values below ``10 max(shape) eps sigma_1`` are rounding noise of a lower-rank R and are
    dropped (their N-th roots would otherwise be far above the noise).
    """
    n = len(widths) - 1
    k = min(widths)
    U, sig, Vt = np.linalg.svd(R, full_matrices=False)
    noise = 10.0 * max(R.shape) * float(np.finfo(np.float64).eps) * (sig[0] if sig.size else 0.0)
    k_eff = min(k, int(np.count_nonzero(sig > noise)))
    root = sig[:k_eff] ** (1.0 / n)
    weights = []
    for i in range(1, n + 1):
        W = np.zeros((widths[i], widths[i - 1]))
        if i == 1 and i == n:
            W = (U[:, :k_eff] * sig[:k_eff]) @ Vt[:k_eff]
        elif i == 1:
            W[:k_eff, :] = root[:, None] * Vt[:k_eff]
        elif i == n:
            W[:, :k_eff] = U[:, :k_eff] * root
        else:
            W[np.arange(k_eff), np.arange(k_eff)] = root
        weights.append(W)
    return weights
