"""Strict or non-strict: the partial-product rank rule (after Achour et al. 2021; SPEC §4).

Assume Sxx invertible and Syx of full rank. At a critical point with ``r = rank(R)``,
``R = U_S U_S^T Syx Sxx^{-1}`` for an index set S with |S| = r, and

1. S = {1..k'} (k' = min(k, rank Sigma)) -> global minimum;
2. S not a top-r set -> strict saddle;
3. S = {1..r}, r < k' -> non-strict iff *tightened*: with
   ``j_b = min{b : rank(W_b...W_1 Sxy) = r}`` and ``j_t = max{a : rank(W_N...W_a) = r}``,
   tightened iff ``j_b + 2 <= j_t`` and ``rank(W_{j_t-1}...W_{j_b+1}) = r``.

"Top-r" is judged by value (``rank_excess``), so tied singular values are handled as SPEC §4
asks. A rank near its cutoff, or a near-tie at the cut, leaves the rule undecided.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from dlcert.certificate import RankRule, Tolerances
from dlcert.optimum import Whitening, rank_excess, whiten
from dlcert.products import AMBIGUITY_FACTOR, Weights, chain_rank, numerical_rank
from dlcert.statistics import Statistics

#: Squared singular values closer than this (relative to s_1^2) are an exact tie.
TIE_RTOL = 1e3 * float(np.finfo(np.float64).eps)


def sigma_rank(wh: Whitening, rtol: float) -> int:
    """``rank(Sigma) = rank(T)``: singular values of T above ``rtol * s_1``."""
    if wh.s.size == 0 or wh.s[0] == 0:
        return 0
    return int(np.count_nonzero(wh.s > rtol * wh.s[0]))


def near_tie(wh: Whitening, r: int, stats: Statistics, ftol: float) -> bool:
    """Whether ``s_r`` and ``s_{r+1}`` are tied within ``ftol`` but not exactly.

    Then the critical value with ``r`` swapped for ``r+1`` lies within the tolerance of the
    top-r value, and no measurement at this tolerance can tell the two index sets apart.
    """
    if r <= 0 or r >= wh.s.size:
        return False
    spacing = float(wh.s[r - 1] ** 2 - wh.s[r] ** 2)
    exact = spacing <= TIE_RTOL * float(wh.s[0] ** 2)
    return (not exact) and spacing <= ftol * stats.syy


def learned_index_set(R: np.ndarray, wh: Whitening, r: int) -> list[int]:
    """1-based indices i whose singular direction u_i lies (mostly) in col(R)."""
    if r == 0:
        return []
    Ur = np.linalg.svd(R, full_matrices=False)[0][:, :r]
    weight = np.sum((Ur.T @ wh.U) ** 2, axis=0)
    return [int(i) + 1 for i in np.flatnonzero(weight > 0.5)]


def reduce_to_input_range(
    weights: Weights, stats: Statistics, wh: Whitening
) -> tuple[list[np.ndarray], Statistics, Whitening]:
    """The same problem with inputs restricted to range(X) = range(Sxx)."""
    _, Q = np.linalg.eigh(stats.Sxx)
    Qr = Q[:, ::-1][:, : wh.sxx_rank]
    reduced = Statistics(
        Sxx=Qr.T @ stats.Sxx @ Qr, Syx=stats.Syx @ Qr, syy=stats.syy, m=stats.m, eps=stats.eps
    )
    ws = [weights[0] @ Qr, *weights[1:]]
    return ws, reduced, whiten(reduced, 0.0)


def rank_rule(
    weights: Weights, stats: Statistics, wh: Whitening, tol: Tolerances
) -> RankRule:
    """Apply the rule to a point already judged critical."""
    dx, dy = stats.dx, stats.dy
    n = len(weights)
    widths = [dx] + [int(w.shape[0]) for w in weights]
    k = min(widths)

    def undecided(reason: str, **kw: object) -> RankRule:
        base: dict[str, object] = dict(
            decision=None, index_set=None, top_set=None, j_b=None, j_t=None, tightened=None
        )
        base.update(kw)
        return RankRule(reason=reason, **base)  # type: ignore[arg-type]

    if wh.sxx_rank == 0:
        return undecided("Sxx is zero: the data carries no input")
    if wh.sxx_rank < dx:
        # The loss sees W_1 only through W_1 X: restrict to range(X), where Sxx is invertible.
        # The discarded coordinates W_1 Q_perp are exact null directions of the loss, so
        # strictness is the same in the reduced problem.
        return rank_rule(*reduce_to_input_range(weights, stats, wh), tol)
    syx = numerical_rank(stats.Syx, tol.rank_rtol)
    if syx.rank < min(dx, dy):
        return undecided(f"Syx has rank {syx.rank} < min(dx, dy) = {min(dx, dy)}; the rule assumes full rank")
    k_eff = min(k, sigma_rank(wh, tol.rank_rtol))

    R, rk = chain_rank(list(weights), tol.products_rtol)
    if rk.ambiguous:
        return undecided(_ambiguity("R", rk.singular_values, rk.cutoff))
    r = rk.rank
    index_set = learned_index_set(R, wh, r)
    if near_tie(wh, r, stats, tol.ftol):
        return undecided(
            f"s_{r} = {wh.s[r - 1]:.6g} and s_{r + 1} = {wh.s[r]:.6g} are tied within ftol; "
            "the learned index set cannot be told from the top set",
            index_set=index_set,
        )
    excess = rank_excess(R, wh, r) / (0.5 * stats.syy)
    top = excess <= tol.ftol
    if not top:
        return RankRule("strict_saddle", index_set, False, None, None, None)
    if r >= k_eff:
        return RankRule("global_minimum", index_set, True, None, None, None)

    Sxy = stats.Syx.T
    j_b, ambiguity = _first_of_rank(
        ((b, [Sxy, *weights[:b]], f"W_{b}...W_1 Sxy") for b in range(1, n + 1)),
        r, tol.products_rtol,
    )
    if ambiguity is None:
        j_t, ambiguity = _first_of_rank(
            ((a, list(weights[a - 1 :]), f"W_{n}...W_{a}") for a in range(n, 0, -1)),
            r, tol.products_rtol,
        )
    if ambiguity is not None:
        return undecided(ambiguity, index_set=index_set, top_set=True)
    if j_b is None or j_t is None:  # cannot happen at a critical point; say so rather than guess
        return undecided("partial-product ranks never reach rank(R); the point may not be critical",
                         index_set=index_set, top_set=True)
    tightened = False
    if j_b + 2 <= j_t:
        mid = chain_rank(list(weights[j_b : j_t - 1]), tol.products_rtol)[1]
        if mid.ambiguous:
            return undecided(
                _ambiguity(f"W_{j_t - 1}...W_{j_b + 1}", mid.singular_values, mid.cutoff),
                index_set=index_set, top_set=True, j_b=j_b, j_t=j_t,
            )
        tightened = mid.rank == r
    decision = "non_strict_saddle" if tightened else "strict_saddle"
    return RankRule(decision, index_set, True, j_b, j_t, tightened)


def _first_of_rank(
    candidates: Iterator[tuple[int, list[np.ndarray], str]], r: int, rtol: float
) -> tuple[int | None, str | None]:
    """The first index whose product of factors has rank exactly r, or why a rank was ambiguous."""
    for index, factors, name in candidates:
        nr = chain_rank(factors, rtol)[1]
        if nr.ambiguous:
            return None, _ambiguity(name, nr.singular_values, nr.cutoff)
        if nr.rank == r:
            return index, None
    return None, None


def _ambiguity(name: str, sv: np.ndarray, cutoff: float) -> str:
    near = sv[(sv > cutoff / AMBIGUITY_FACTOR) & (sv <= cutoff * AMBIGUITY_FACTOR)]
    return (
        f"rank of {name} is ambiguous: singular value {float(near[0]):.3g} is within a factor "
        f"{AMBIGUITY_FACTOR:g} of the cutoff {cutoff:.3g}"
    )
