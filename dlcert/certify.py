"""Certification: statistics and weights in, a :class:`~dlcert.certificate.Certificate` out.

1. First order: the scale-free gradient norm against ``gtol`` (SPEC §2) -> ``not_critical``.
2. Value: the stable gap ``L(W) - L*`` against ``ftol * syy/2`` (SPEC §3), cross-checked with
   Yun et al. 2018 Thm 2.1/2.2 where they apply -> ``global_minimum``.
3. Otherwise a saddle (no spurious local minima: Zhang 2019 Cor 1; Kawaguchi 2016 Thm 2.3):
   strict or non-strict by the rank rule (after Achour et al. 2021), confirmed by the Hessian
   and by an escape witness (SPEC §4).
Any disagreement between independent routes, or a number too close to its tolerance, gives
``inconclusive`` with the reason. Nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dlcert.assumptions import measure_assumptions
from dlcert.certificate import (
    Certificate,
    HessianSpectrum,
    RankRule,
    TheoremCheck,
    Verdict,
    Witness,
)
from dlcert.errors import InputError
from dlcert.hessian import DEFAULT_TIME_BUDGET, DENSE_LIMIT, spectrum
from dlcert.objective import (
    PointCache,
    frobenius,
    gradient,
    loss_of_product,
    relative_gradient_norms,
    unflatten,
)
from dlcert.optimum import ols_loss, optimal_loss, rank_excess, whiten
from dlcert.products import numerical_rank, widths_of
from dlcert.statistics import Statistics, eps_of
from dlcert.strictness import near_tie, rank_rule
from dlcert.theorems import measure_point, theorem_table
from dlcert.tolerances import default_tolerances
from dlcert.witness import Direction, default_radius, evaluate, find_witness

#: Relative eigenvalue cutoff of Sxx for whitening: the statistics are float64 sums.
SXX_RTOL = 1e3 * float(np.finfo(np.float64).eps)

NO_HESSIAN = HessianSpectrum(None, None, "none", False)


def certify(
    weights: Sequence[np.ndarray],
    stats: Statistics,
    *,
    gtol: float | None = None,
    ftol: float | None = None,
    eps: float | None = None,
    dense_limit: int = DENSE_LIMIT,
    time_budget: float = DEFAULT_TIME_BUDGET,
    n_extremes: int = 0,
    radius: float | None = None,
    seed: int = 0,
) -> Certificate:
    """Certify the point ``weights`` (``W_1..W_N``, input to output) for the data ``stats``.

    Floating-point overflow and invalid operations are not warned about: every quantity a
    decision rests on is checked for finiteness, and a non-finite one decides nothing.
    """
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        return _certify(weights, stats, gtol=gtol, ftol=ftol, eps=eps, dense_limit=dense_limit,
                        time_budget=time_budget, n_extremes=n_extremes, radius=radius, seed=seed)


def _certify(
    weights: Sequence[np.ndarray],
    stats: Statistics,
    *,
    gtol: float | None,
    ftol: float | None,
    eps: float | None,
    dense_limit: int,
    time_budget: float,
    n_extremes: int,
    radius: float | None,
    seed: int,
) -> Certificate:
    ws = tuple(np.asarray(w, dtype=np.float64) for w in weights)
    widths = widths_of(ws)
    if widths[0] != stats.dx or widths[-1] != stats.dy:
        raise InputError(
            f"weights map {widths[0]} -> {widths[-1]} but the data has dx = {stats.dx}, "
            f"dy = {stats.dy}"
        )
    stats.require_targets()
    if eps is None:
        eps = max(stats.eps, eps_of(*weights))
    tol = default_tolerances(eps, widths, gtol, ftol)
    wh = whiten(stats, SXX_RTOL)
    assumptions = measure_assumptions(stats, wh, widths, tol.rank_rtol)
    k = assumptions.k
    cache = PointCache.at(ws, stats)
    grads = gradient(ws, stats, cache)
    if not all(np.isfinite(g).all() for g in grads) or not np.isfinite(cache.E).all():
        biggest = max(float(np.max(np.abs(w))) for w in ws)
        raise InputError(
            f"the products of the weights overflow float64 (largest |entry| {biggest:.3g}); "
            "rescale the layers: W_i -> a W_i, W_(i+1) -> W_(i+1) / a changes no verdict"
        )
    gnorms = [frobenius(g) for g in grads]
    rel = relative_gradient_norms(cache, grads, stats)
    half_syy = 0.5 * stats.syy
    loss = loss_of_product(cache.R, stats)
    gap = rank_excess(cache.R, wh, k)
    prank = numerical_rank(cache.R, tol.rank_rtol)
    reasons: list[str] = []
    critical = max(rel) <= tol.gtol

    common = dict(
        loss=loss,
        optimal_loss=optimal_loss(stats, wh, k),
        ols_loss=ols_loss(stats, wh),
        gap=gap,
        relative_gap=gap / half_syy,
        gradient_norm=math.hypot(*gnorms),
        relative_gradient_norm=max(rel),
        layer_gradient_norms=gnorms,
        layer_relative_gradient_norms=rel,
        widths=widths,
        k=k,
        bottleneck_layers=assumptions.bottleneck_layers,
        product_rank=prank.rank,
        product_singular_values=[float(x) for x in prank.singular_values],
        rank_gap=prank.gap,
        singular_values=[float(x) for x in wh.s],
        tolerances=tol,
        m=stats.m,
    )

    if not critical:
        worst = int(np.argmax(rel)) + 1
        if max(rel) <= 10 * tol.gtol:
            reasons.append(
                f"relative gradient norm {max(rel):.3e} is within a factor 10 of gtol {tol.gtol:.1e}: "
                "if the weights were trained or stored at lower precision, pass a larger --gtol"
            )
        pt = measure_point(ws, cache, wh, assumptions, tol, prank.rank, False, None)
        return Certificate(
            verdict=Verdict.NOT_CRITICAL,
            message=(
                f"not a critical point: relative gradient norm {max(rel):.3e} > gtol {tol.gtol:.1e} "
                f"(largest at W{worst})"
            ),
            rank_rule=_no_rule("not evaluated: the point is not critical"),
            hessian=NO_HESSIAN,
            theorems=theorem_table(assumptions, tol, pt),
            witness=None,
            reasons=reasons,
            **common,  # type: ignore[arg-type]
        )

    rule = rank_rule(ws, stats, wh, tol)
    pt = measure_point(ws, cache, wh, assumptions, tol, prank.rank, True, rule)
    theorems = theorem_table(assumptions, tol, pt)
    rel_gap = gap / half_syy
    global_by_gap = rel_gap <= tol.ftol

    witness: Witness | None = None
    curvature_dir: Direction | None = None
    if not global_by_gap or rule.decision in ("strict_saddle", "non_strict_saddle"):
        witness, curvature_dir = find_witness(
            ws, stats, wh, cache, tol.rank_rtol, index_set=rule.index_set, radius=radius,
            min_preferred_order=3 if rule.decision == "non_strict_saddle" else 2,
        )
    spec, vmin = spectrum(
        stats, cache,
        direction=curvature_dir.V if curvature_dir else None,
        dense_limit=dense_limit, time_budget=time_budget, n_extremes=n_extremes,
        rtol=max(1e-8, tol.hessian_rtol), seed=seed,
    )
    h_scale = max(abs(spec.max_eigenvalue or 0.0), abs(spec.min_eigenvalue or 0.0))
    h_thr = -tol.hessian_rtol * h_scale
    reliable_min = spec.converged and spec.min_eigenvalue is not None
    eig_negative = reliable_min and spec.min_eigenvalue is not None and spec.min_eigenvalue < h_thr
    # Without a structured order-2 witness, try the eigenvector of lambda_min: the exact loss
    # polynomial along it decides (its rounding bound, not the eigen-solver, certifies it).
    # Not against a non-strict rank rule, whose witness must show the higher-order escape.
    if (
        (witness is None or witness.order > 2)
        and rule.decision != "non_strict_saddle"
        and vmin is not None
        and spec.min_eigenvalue is not None
        and spec.min_eigenvalue < 0
    ):
        eig_witness = _eigen_witness(ws, vmin, stats, cache, radius)
        if eig_witness is not None and eig_witness.order == 2:
            witness = eig_witness
    neg_certified = (witness is not None and witness.order == 2) or eig_negative
    # Negative curvature beyond the Hessian tolerance is evidence on its own; below it, only
    # when the rank rule independently says strict (rounding the stored weights can create it).
    strong_t2 = eig_negative or (
        witness is not None and witness.order == 2 and 2.0 * witness.coefficient < h_thr
    )
    psd_measured = reliable_min and not eig_negative
    yun = _yun_route(theorems)

    verdict: Verdict
    if global_by_gap:
        if near_tie(wh, k, stats, tol.ftol):
            verdict = Verdict.INCONCLUSIVE
            reasons.append(
                f"s_k = {wh.s[k - 1]:.6g} and s_(k+1) = {wh.s[k]:.6g} are tied within ftol: "
                "another critical value lies within the tolerance of L*"
            )
        elif yun is not None and yun.holds is False:
            verdict = Verdict.INCONCLUSIVE
            reasons.append(f"gap {rel_gap:.3e} <= ftol certifies global but {yun.id} says saddle")
        elif rule.decision in ("strict_saddle", "non_strict_saddle"):
            verdict = Verdict.INCONCLUSIVE
            reasons.append(f"gap certifies global but the rank rule says {rule.decision}")
        elif eig_negative:
            verdict = Verdict.INCONCLUSIVE
            reasons.append(
                f"gap certifies global but the Hessian has lambda_min = {spec.min_eigenvalue:.3e} "
                f"< {h_thr:.3e}"
            )
        else:
            verdict = Verdict.GLOBAL_MINIMUM
            witness = None
    else:
        if yun is not None and yun.holds is True:
            verdict = Verdict.INCONCLUSIVE
            reasons.append(f"gap {rel_gap:.3e} > ftol but {yun.id} says global")
        elif rule.decision == "global_minimum":
            verdict = Verdict.INCONCLUSIVE
            reasons.append("the rank rule says global but the gap exceeds ftol")
        elif rule.decision == "strict_saddle":
            if neg_certified and witness is not None and witness.order == 2:
                verdict = Verdict.STRICT_SADDLE
            elif psd_measured:
                verdict = Verdict.INCONCLUSIVE
                reasons.append(
                    f"rank rule says strict but the Hessian's lambda_min = {spec.min_eigenvalue:.3e}"
                    f" >= {h_thr:.3e}"
                )
            else:
                verdict = Verdict.INCONCLUSIVE
                reasons.append("rank rule says strict but no negative-curvature direction was confirmed")
        elif rule.decision == "non_strict_saddle":
            iv = next(t for t in theorems if t.id == "kawaguchi2016.thm2.3.iv")
            # Against the rank rule, curvature along a structured direction is evidence only
            # beyond the Hessian tolerance: below it, rounding the stored weights to their
            # precision can create it (and whether the search meets it depends on the scaling).
            weak_t2 = (witness is not None and witness.order == 2 and not eig_negative
                       and 2.0 * witness.coefficient >= h_thr)
            if neg_certified and not weak_t2:
                verdict = Verdict.INCONCLUSIVE
                reasons.append("rank rule says non-strict but a negative-curvature direction exists")
            elif iv.applies and iv.holds:
                verdict = Verdict.INCONCLUSIVE
                reasons.append("rank rule says non-strict but Kawaguchi 2016 Thm 2.3(iv) says strict")
            elif witness is None:
                verdict = Verdict.INCONCLUSIVE
                reasons.append("rank rule says non-strict but no higher-order escape witness was found")
            else:
                verdict = Verdict.NON_STRICT_SADDLE
                if weak_t2 and witness is not None:
                    reasons.append(
                        f"the escape direction's curvature {2.0 * witness.coefficient:.3e} is within "
                        f"the Hessian tolerance (>= {h_thr:.3e}): rounding-level, not negative curvature"
                    )
                if not psd_measured:
                    reasons.append(
                        "the Hessian's lambda_min did not converge; non-strictness rests on the rank rule"
                    )
        else:
            if strong_t2 and witness is not None and witness.order == 2:
                verdict = Verdict.STRICT_SADDLE
                reasons.append(f"rank rule undecided ({rule.reason}); strictness from the Hessian")
            else:
                verdict = Verdict.INCONCLUSIVE
                reasons.append(f"rank rule undecided: {rule.reason}")
                if witness is not None:
                    reasons.append(
                        f"a saddle (order-{witness.order} escape found) but strictness is undecided"
                    )

    if not global_by_gap:
        reasons.extend(_kawaguchi_iv_against_hessian(theorems, neg_certified, spec, h_thr))
        if verdict is Verdict.NON_STRICT_SADDLE and psd_measured and spec.method != "dense":
            reasons.append(
                f"lambda_min = {spec.min_eigenvalue:.3e} is the smallest eigenvalue {spec.method} "
                "found; an iterative solver cannot prove that none is smaller, so non-strictness "
                "rests on the rank rule"
            )

    return Certificate(
        verdict=verdict,
        message=_message(verdict, rel_gap, tol.ftol, rule.decision, witness, spec),
        rank_rule=rule,
        hessian=spec,
        theorems=theorems,
        witness=witness,
        reasons=reasons,
        **common,  # type: ignore[arg-type]
    )


def _kawaguchi_iv_against_hessian(
    theorems: list[TheoremCheck], neg_certified: bool, spec: HessianSpectrum, h_thr: float
) -> list[str]:
    """Kawaguchi 2016 Thm 2.3(iv): where its rank condition holds, a saddle has negative curvature.

    Returns a reason when the Hessian does not show it (nothing when it does or when the
    theorem does not apply).
    """
    iv = next((t for t in theorems if t.id == "kawaguchi2016.thm2.3.iv"), None)
    if iv is None or not iv.applies or not iv.holds or neg_certified:
        return []
    lam = "not computed" if spec.min_eigenvalue is None else f"{spec.min_eigenvalue:.3e}"
    return [
        "Kawaguchi 2016 Thm 2.3(iv): rank(W_{N-1}...W_2) equals the smallest hidden width, so "
        f"this saddle must have a negative Hessian eigenvalue, but none was shown (lambda_min = "
        f"{lam} against {h_thr:.3e}, {spec.method}, converged: {spec.converged})"
    ]


def _no_rule(reason: str) -> RankRule:
    return RankRule(None, None, None, None, None, None, reason)


def _yun_route(theorems: list[TheoremCheck]) -> TheoremCheck | None:
    """Yun et al. 2018 Thm 2.1 or 2.2, whichever applies with a decided condition."""
    for t in theorems:
        if t.id in ("yun2018.thm2.1", "yun2018.thm2.2") and t.applies and t.holds is not None:
            return t
    return None


def _eigen_witness(
    ws: tuple[np.ndarray, ...],
    vmin: np.ndarray,
    stats: Statistics,
    cache: PointCache,
    radius: float | None,
) -> Witness | None:
    """A negative-curvature witness along the eigenvector of lambda_min."""
    V = unflatten(vmin / np.linalg.norm(vmin), [w.shape for w in ws])
    moved = tuple(i + 1 for i, v in enumerate(V) if np.any(v))
    direction = Direction(tuple(V), moved, "eigenvector")
    return evaluate(ws, direction, stats, cache, radius if radius is not None else default_radius(ws))


def _message(
    verdict: Verdict,
    rel_gap: float,
    ftol: float,
    rule: str | None,
    witness: Witness | None,
    spec: HessianSpectrum,
) -> str:
    if verdict is Verdict.GLOBAL_MINIMUM:
        return f"certified global minimum: relative gap {rel_gap:.3e} <= ftol {ftol:.1e}"
    if verdict is Verdict.STRICT_SADDLE and witness is not None:
        return (
            f"strict saddle: relative gap {rel_gap:.3e} > ftol {ftol:.1e}; curvature "
            f"v^T H v = {2.0 * witness.coefficient:.3e} along a unit direction v; loss drops by "
            f"{witness.loss_decrease:.3e} within radius {witness.radius:.3g}"
        )
    if verdict is Verdict.NON_STRICT_SADDLE and witness is not None:
        return (
            f"non-strict saddle: relative gap {rel_gap:.3e} > ftol {ftol:.1e}; Hessian has no "
            f"negative eigenvalue (rank rule: {rule}); loss drops like t^{witness.order} "
            f"(coefficient {witness.coefficient:.3e}) by {witness.loss_decrease:.3e} within "
            f"radius {witness.radius:.3g}"
        )
    return "inconclusive: the measurements cannot decide (see reasons)"
