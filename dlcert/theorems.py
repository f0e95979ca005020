"""The theorems table of SPEC §5: for each, whether it applies, whether its condition holds,
and what follows — with the measured numbers.

Stable ids: ``kawaguchi2016.thm2.3``, ``kawaguchi2016.thm2.3.iv``, ``kawaguchi2016.cor2.4``,
``lu_kawaguchi2017.thm2.3``, ``yun2018.thm2.1``, ``yun2018.thm2.2``, ``yun2018.prop3.6``,
``zhang2019.cor1``, ``zhang2019.thm2``, ``achour2021``; with ``--residual`` also ``yun2018.cor2.3``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlcert.assumptions import Assumptions
from dlcert.certificate import RankRule, TheoremCheck, Tolerances
from dlcert.objective import PointCache
from dlcert.optimum import Whitening
from dlcert.products import Weights, chain_rank, numerical_rank


@dataclass(frozen=True)
class PointFacts:
    """Point-dependent numbers the theorem conditions need.

    product_rank : rank(R). hidden_rank : rank(W_{N-1}...W_2) (``None`` for N < 3).
    min_hidden_width : smallest hidden width (``None`` for N = 1).
    p : the bottleneck index used for Yun's conditions (``None`` without a hidden bottleneck).
    top_rank : rank(W_N...W_{p+1}); subspace_sine : sine of the largest principal angle between
        col(W_N...W_{p+1}) and col(U_k).
    ape, ebp : ``||A_p E|| / (||A_p|| ||E||)`` and ``||E B_{p+1}^T|| / ...`` (Prop 3.6), relative.
    bottleneck_factor_ranks : (rank W_p, rank W_{p+1}).
    critical : the point passed the gradient test. rule : the rank rule's result.
    """

    product_rank: int
    hidden_rank: int | None
    min_hidden_width: int | None
    p: int | None
    top_rank: int | None
    subspace_sine: float | None
    ape: float | None
    ebp: float | None
    bottleneck_factor_ranks: tuple[int, int] | None
    critical: bool
    rule: RankRule | None


def measure_point(
    weights: Weights,
    cache: PointCache,
    wh: Whitening,
    a: Assumptions,
    tol: Tolerances,
    product_rank: int,
    critical: bool,
    rule: RankRule | None,
) -> PointFacts:
    """Measure the point-dependent conditions."""
    n = len(weights)
    rtol = tol.products_rtol
    hidden_rank = chain_rank(list(weights[1 : n - 1]), rtol)[1].rank if n >= 3 else None
    min_hidden = min(a.widths[1:-1]) if n >= 2 else None
    p = a.bottleneck_layers[0] if a.bottleneck_layers else None
    top_rank = sine = ape = ebp = None
    factor_ranks = None
    if p is not None:
        Ap = cache.A[p - 1]  # W_N ... W_{p+1}
        nr = chain_rank(list(weights[p:]), rtol)[1] if p < n else chain_rank([Ap], rtol)[1]
        top_rank = nr.rank
        if nr.rank > 0:
            Q = np.linalg.svd(Ap, full_matrices=False)[0][:, : nr.rank]
            Uk = wh.U[:, : a.k]
            resid = Q - Uk @ (Uk.T @ Q)
            sine = float(np.linalg.norm(resid, 2)) if nr.rank <= a.k else 1.0
        E = cache.E
        e_norm = float(np.linalg.norm(E))
        ap_norm = float(np.linalg.norm(Ap))
        Bp1 = cache.B[p]  # B_{p+1} = W_p ... W_1
        bp_norm = float(np.linalg.norm(Bp1))
        ape = _ratio(float(np.linalg.norm(Ap.T @ E)), ap_norm * e_norm)
        ebp = _ratio(float(np.linalg.norm(E @ Bp1.T)), bp_norm * e_norm)
        factor_ranks = (
            numerical_rank(weights[p - 1], rtol).rank,
            numerical_rank(weights[p], rtol).rank,
        )
    return PointFacts(
        product_rank, hidden_rank, min_hidden, p, top_rank, sine, ape, ebp, factor_ranks,
        critical, rule,
    )


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def theorem_table(
    a: Assumptions, tol: Tolerances, point: PointFacts | None = None
) -> list[TheoremCheck]:
    """Every SPEC §5 theorem for these assumptions (and this point, when given)."""
    rows = [
        _kawaguchi_thm23(a),
        _kawaguchi_iv(a, point),
        _kawaguchi_cor24(a),
        _lu_kawaguchi(a),
        _yun21(a, point),
        _yun22(a, tol, point),
        _yun_prop36(a, tol, point),
        TheoremCheck(
            "zhang2019.cor1", True, True,
            "square loss: no spurious local minima; a critical point that is not global is a saddle",
            {},
        ),
        _zhang_thm2(a, point),
        _achour(a, point),
    ]
    return rows


def _base_evidence(a: Assumptions) -> dict[str, object]:
    return {
        "sxx_rank": a.sxx_rank,
        "dx": a.dx,
        "sxx_condition": a.sxx_condition if math.isfinite(a.sxx_condition) else None,
        "syx_rank": a.syx_rank,
        "dy": a.dy,
    }


def _kawaguchi_thm23(a: Assumptions) -> TheoremCheck:
    ev = _base_evidence(a) | {
        "dy_le_dx": a.dy_le_dx,
        "sigma_min_relative_gap": a.sigma_min_relative_gap,
    }
    applies = a.kawaguchi
    concl = (
        "every local minimum is global; every other critical point is a saddle"
        if applies
        else "assumptions not met (needs Sxx, Syx full rank, dy <= dx, distinct eigenvalues of Sigma)"
    )
    return TheoremCheck("kawaguchi2016.thm2.3", applies, applies if applies else None, concl, ev)


def _kawaguchi_iv(a: Assumptions, pt: PointFacts | None) -> TheoremCheck:
    applies = a.kawaguchi and a.n_layers >= 2
    ev: dict[str, object] = {"min_hidden_width": pt.min_hidden_width if pt else None}
    holds: bool | None = None
    if pt is not None and a.n_layers >= 2:
        hidden_rank = pt.hidden_rank if pt.hidden_rank is not None else a.widths[1]
        ev["rank_W_{N-1}..W_2"] = hidden_rank
        holds = hidden_rank == pt.min_hidden_width
    if not applies:
        concl = "assumptions of Thm 2.3 not met" if a.n_layers >= 2 else "no hidden layer"
    elif holds:
        concl = "rank(W_{N-1}...W_2) equals the smallest hidden width: every saddle here is strict"
    elif holds is False:
        concl = "rank condition fails: a saddle here may be non-strict"
    else:
        concl = "if rank(W_{N-1}...W_2) equals the smallest hidden width, every saddle is strict"
    return TheoremCheck("kawaguchi2016.thm2.3.iv", applies, holds if applies else None, concl, ev)


def _kawaguchi_cor24(a: Assumptions) -> TheoremCheck:
    n = a.n_layers
    concl = (
        "N = 2: no bad (non-strict) saddles" if n == 2
        else "N >= 3: bad (non-strict) saddles exist, e.g. all weights zero" if n >= 3
        else "N = 1: the loss is convex"
    )
    return TheoremCheck("kawaguchi2016.cor2.4", a.kawaguchi, n >= 3 if a.kawaguchi else None,
                        concl, {"N": n})


def _lu_kawaguchi(a: Assumptions) -> TheoremCheck:
    applies = a.x_full_row_rank and a.y_full_row_rank is True
    ev = _base_evidence(a) | {"y_full_row_rank": a.y_full_row_rank}
    if applies:
        concl = "every local minimum is global (via the rank-constrained shallow problem)"
    elif a.y_full_row_rank is None and a.x_full_row_rank:
        concl = "rank(Y) cannot be read from the statistics (rank Syx < dy); not verified"
    else:
        concl = "assumptions not met (needs X and Y of full row rank)"
    return TheoremCheck("lu_kawaguchi2017.thm2.3", applies, True if applies else None, concl, ev)


def _yun21(a: Assumptions, pt: PointFacts | None) -> TheoremCheck:
    applies = a.yun and a.k == min(a.dx, a.dy)
    ev = _base_evidence(a) | {"k": a.k}
    holds: bool | None = None
    if applies and pt is not None:
        ev["product_rank"] = pt.product_rank
        holds = pt.product_rank == a.k
    if not applies:
        concl = (
            "not applicable: k < min(dx, dy)" if a.k < min(a.dx, a.dy)
            else "assumptions not met (needs Sxx, Syx full rank)"
        )
    elif pt is None or not pt.critical:
        concl = "a critical point is global iff rank(R) = k, else a saddle"
    else:
        concl = "global minimum (rank(R) = k)" if holds else "saddle (rank(R) < k)"
    return TheoremCheck("yun2018.thm2.1", applies, holds, concl, ev)


def _yun22(a: Assumptions, tol: Tolerances, pt: PointFacts | None) -> TheoremCheck:
    gap_ok = a.k_gap is not None and a.k_gap > tol.ftol
    applies = a.yun and a.k < min(a.dx, a.dy) and gap_ok
    ev = _base_evidence(a) | {"k": a.k, "k_gap": a.k_gap}
    holds: bool | None = None
    if applies and pt is not None:
        ev |= {"product_rank": pt.product_rank, "p": pt.p, "subspace_sine": pt.subspace_sine,
               "angle_tolerance": math.sqrt(tol.gtol)}
        holds = (
            pt.product_rank == a.k
            and pt.subspace_sine is not None
            and pt.subspace_sine <= math.sqrt(tol.gtol)
        )
    if not applies:
        if a.k >= min(a.dx, a.dy):
            concl = "not applicable: k = min(dx, dy)"
        elif not gap_ok:
            concl = f"s_k and s_(k+1) are not separated (relative gap {a.k_gap}) beyond ftol"
        else:
            concl = "assumptions not met (needs Sxx, Syx full rank)"
    elif pt is None or not pt.critical:
        concl = "a critical point is global iff rank(R) = k and col(W_N...W_{p+1}) = col(U_k)"
    else:
        concl = "global minimum (rank and column-space conditions hold)" if holds else "saddle"
    return TheoremCheck("yun2018.thm2.2", applies, holds, concl, ev)


def _yun_prop36(a: Assumptions, tol: Tolerances, pt: PointFacts | None) -> TheoremCheck:
    applies = bool(
        a.yun and a.k < min(a.dx, a.dy) and pt is not None and pt.p is not None
        and pt.product_rank == a.k
    )
    ev: dict[str, object] = {}
    holds: bool | None = None
    if pt is not None:
        ev = {"product_rank": pt.product_rank, "k": a.k, "p": pt.p,
              "relative_norm_A_p_E": pt.ape, "relative_norm_E_B_p+1": pt.ebp, "gtol": tol.gtol}
    if applies and pt is not None and pt.ape is not None and pt.ebp is not None:
        holds = pt.ape <= tol.gtol and pt.ebp <= tol.gtol
    concl = (
        ("critical: A_p E = 0 and E B_{p+1} = 0" if holds else "not critical by Prop 3.6")
        if applies else "applies when rank(R) = k < min(dx, dy)"
    )
    return TheoremCheck("yun2018.prop3.6", applies, holds, concl, ev)


def _zhang_thm2(a: Assumptions, pt: PointFacts | None) -> TheoremCheck:
    applies = a.k < min(a.dx, a.dy)
    ev: dict[str, object] = {"k": a.k, "bottleneck_layers": a.bottleneck_layers}
    holds: bool | None = None
    if applies and pt is not None and pt.bottleneck_factor_ranks is not None:
        ev["bottleneck_factor_ranks"] = list(pt.bottleneck_factor_ranks)
        holds = all(r == a.k for r in pt.bottleneck_factor_ranks)
    concl = (
        "a spurious local minimum would need full-rank factors at the bottleneck (none exist: Cor 1)"
        if applies else "no bottleneck narrower than min(dx, dy)"
    )
    return TheoremCheck("zhang2019.thm2", applies, holds, concl, ev)


def _achour(a: Assumptions, pt: PointFacts | None) -> TheoremCheck:
    applies = a.yun
    ev: dict[str, object] = {}
    holds: bool | None = None
    concl = "global / strict saddle / non-strict saddle by partial-product ranks"
    if pt is not None and pt.rule is not None:
        r = pt.rule
        ev = {"index_set": r.index_set, "top_set": r.top_set, "j_b": r.j_b, "j_t": r.j_t,
              "tightened": r.tightened}
        holds = r.decision is not None
        concl = f"rank rule: {r.decision}" if r.decision else f"rank rule undecided: {r.reason}"
    elif not applies:
        concl = "assumptions not met (needs Sxx invertible, Syx full rank)"
    return TheoremCheck("achour2021", applies, holds if applies else None, concl, ev)


def yun_cor23(residuals: Sequence[np.ndarray], rank_rtol: float, square_loss: bool = True) -> TheoremCheck:
    """``yun2018.cor2.3`` (Hardt & Ma 2017 Thm 2.2 without det R > 0) for layers ``I + A_i``.

    applies : square loss, every width equal to d (checked at load) and ``max_i sigma_max(A_i) < 1``.
    holds : ``rank(R) = d`` for ``R = (I + A_N)...(I + A_1)`` (relative cutoff ``rank_rtol``).
    With both, Thm 2.1 (k = d = min(dx, dy)) makes every critical point a global minimum.
    """
    d = int(residuals[0].shape[0])
    smax = max((float(np.linalg.norm(a, 2)) for a in residuals), default=0.0)
    R = np.eye(d)
    for a in residuals:
        R = (np.eye(d) + a) @ R
    rank = numerical_rank(R, rank_rtol).rank
    applies = square_loss and smax < 1.0
    if applies:
        concl = ("sigma_max(A_i) < 1 for all i: the product is full rank and every critical point is a "
                 "global minimum (with Thm 2.1's data assumptions)")
    elif not square_loss:
        concl = "stated for the square loss: not applied to this loss"
    else:
        concl = f"max sigma_max(A_i) = {smax:.3g} >= 1: the corollary does not apply"
    return TheoremCheck("yun2018.cor2.3", applies, (rank == d) if applies else None, concl,
                        {"max_sigma_max": smax, "product_rank": rank, "d": d, "product_full_rank": rank == d})
