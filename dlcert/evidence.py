"""Measurement: every number the verdict rests on, with its error bound (SPEC §2-§4).

:func:`measure` runs on the exactly rescaled problem (:mod:`dlcert.normalize`) and returns a
:class:`Measurements` bundle: the frozen :class:`dlcert.rules.Evidence` that the rule table
reads, and the objects the certificate reports (theorems, rank rule, spectrum, witness).
Nothing here decides a verdict or prints.

Error bounds recorded here (``docs/tolerances.md``):

* ``gradient_floor = eps_w * max_i kappa_i``: rounding the stored weights (precision
  ``eps_w``) moves the relative gradient of an exact critical point by at most about this, with
  ``kappa = sum_j ||A_j|| ||W_j|| ||B_j S|| / ||Y||`` (the products' scale over the data).
* ``value_floor = 16 eps_w^2 sum_p H_pp w_p^2 / (3 syy)``: rounding each stored weight ``w_p``
  by a relative ``eps_w`` raises the loss of an exact critical point by about
  ``eps_w^2/6 sum_p H_pp w_p^2`` (``H_pp`` the Hessian's diagonal, the Gauss-Newton diagonal);
  ``ftol`` is raised to it (recorded), as ``gtol`` is to the gradient floor.
* ``value_error``: the error of the relative gap and of ``(L - c_S) / (syy/2)``: the
  statistics' rounding (first order in ``R - R_S*``, by the envelope theorem, plus whatever Y
  could hold in directions of Sxx below its noise) and the arithmetic of the product (an a-priori
  bound from the layers' norms, or, when that exceeds ``ftol / 4``, the rigorous a-posteriori
  bound of :func:`dlcert.roundoff.excess_with_bound` built from the computed products).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from dlcert.assumptions import Assumptions, measure_assumptions
from dlcert.budget import OutOfTime, activate, check, check_deadline, deactivate
from dlcert.certificate import (
    Channel,
    CriticalValue,
    HessianSpectrum,
    RankRule,
    TheoremCheck,
    Tolerances,
    Witness,
)
from dlcert.channels import strongest_channel
from dlcert.hessian import spectrum
from dlcert.objective import (
    PointCache,
    frobenius,
    gradient,
    loss_of_product,
    relative_gradient_norms,
    unflatten,
)
from dlcert.optimum import (
    Whitening,
    critical_value,
    rank_excess,
    set_excess,
    whiten,
)
from dlcert.products import AMBIGUITY_FACTOR, NumericalRank, chain_rank, numerical_rank
from dlcert.roundoff import excess_with_bound
from dlcert.rules import Evidence
from dlcert.statistics import Statistics
from dlcert.strictness import learned_index_set, near_tie, rank_rule
from dlcert.theorems import measure_point, theorem_table
from dlcert.tolerances import (
    CHANNEL_NOISE_CEILING,
    DENSE_EIG_GAMMA,
    EPS64,
    EXTENDED_MAX_WIDTH,
    GAP_GAMMA,
    GTOL_CEILING,
    SXX_RTOL,
    with_gradient_floor,
)
from dlcert.witness import Direction, default_radius, evaluate, find_witness

NO_HESSIAN = HessianSpectrum(None, None, "none", False)


@dataclass(frozen=True)
class Measurements:
    """What :func:`measure` found: the evidence and the reportable objects behind it."""

    evidence: Evidence
    tolerances: Tolerances
    whitening: Whitening
    assumptions: Assumptions
    cache: PointCache
    loss: float
    gradient_norms: list[float]
    relative_gradients: list[float]
    product_rank: NumericalRank
    critical_value: CriticalValue
    rank_rule: RankRule
    hessian: HessianSpectrum
    theorems: list[TheoremCheck]
    witness: Witness | None
    channel: Channel | None
    budget_note: str | None = None


def _norm2(a: np.ndarray) -> float:
    if not (a.size and np.any(a)):
        return 0.0
    check()
    return float(np.linalg.norm(a, 2))


class LayerNorms:
    """Spectral norms ``||A_j||``, ``||B_j||``, ``||B_j S||`` computed once per point (each is an SVD
    of up to d x d: at 4e6 parameters the same norms cost seconds every time they are redone)."""

    def __init__(self, cache: PointCache, S: np.ndarray) -> None:
        self.A = [_norm2(a) for a in cache.A]
        self.BS = [_norm2(b @ S) for b in cache.B]
        self._cache = cache
        self._B: list[float] | None = None

    @property
    def B(self) -> list[float]:
        if self._B is None:
            self._B = [_norm2(b) for b in self._cache.B]
        return self._B


def products_scale(cache: PointCache, S: np.ndarray, norms: LayerNorms | None = None) -> float:
    """``sum_j ||A_j|| ||W_j|| ||B_j S||`` (spectral norms): what rounding of the layers scales with."""
    nm = norms or LayerNorms(cache, S)
    return sum(nm.A[j] * _norm2(w) * nm.BS[j] for j, w in enumerate(cache.weights))


def diagonal_curvature(cache: PointCache, S: np.ndarray) -> float:
    """``sum_p H_pp w_p^2``: the Hessian's diagonal (its Gauss-Newton part; the residual part has
    zero diagonal blocks) weighted by the squared weights, in O(parameters) after the products:
    ``H_(j,ab) = ||A_j[:, a]||^2 ||(B_j S)[b, :]||^2``."""
    total = 0.0
    for A, W, B in zip(cache.A, cache.weights, cache.B, strict=True):
        cols = np.sum(A * A, axis=0)
        rows = np.sum((B @ S) ** 2, axis=1)
        total += float(cols @ (W * W) @ rows)
    return total


def _vanishing_products(
    ws: tuple[np.ndarray, ...], cache: PointCache, stats: Statistics, rel: list[float], rtol: float,
    gtol: float,
) -> tuple[list[float], tuple[int, ...]]:
    """``rho_i`` set to 0 for the layers whose gradient ``A_i^T E (B_i X)^T`` vanishes because
    ``A_i = W_N...W_(i+1)`` or ``B_i X`` is zero within the rounding of its factors (numerical
    rank 0, :func:`dlcert.products.chain_rank`), and the layers (1-based) where that happened.

    ``rho_i`` divides by ``||A_i||``, so when cancellation makes ``A_i`` exactly zero the computed
    ``A_i`` is rounding noise and ``rho_i`` an O(1) ratio of noise to noise: a change of basis of
    condition 100 made an exact strict saddle read ``not_critical`` with ``rho_1 = 0.28``. A cheap
    test in Frobenius norms rules most layers out before the chain's rank is computed: the
    product scale is at most ``prod_j ||W_j||_2 <= prod_j ||W_j||_F``, and ``||A||_2 >=
    ||A||_F / sqrt(min dim)``, so ``||A_i||_F > sqrt(min dim) rtol prod_j ||W_j||_F`` means
    ``A_i`` is not zero within rounding. Only layers with ``rho_i > gtol`` are looked at, and on
    the input side only a ``B_i`` that itself may vanish (not one that is non-zero but zero on
    the data's range)."""
    out = list(rel)
    hits: list[int] = []
    norms = [frobenius(w) for w in ws]

    def may_vanish(P: np.ndarray, factors: float) -> bool:
        return frobenius(P) <= math.sqrt(max(1, min(P.shape))) * rtol * factors

    for i in range(len(ws)):
        if not out[i] > gtol:
            continue
        above = list(ws[i + 1:])
        if above and may_vanish(cache.A[i], math.prod(norms[i + 1:])) \
                and chain_rank(above, rtol)[1].rank == 0:
            out[i], hits = 0.0, [*hits, i + 1]
            continue
        # B_i Sxx B_i^T = (B_i X)(B_i X)^T: B_i X vanishes with B_i Sxx
        if i > 0 and may_vanish(cache.B[i], math.prod(norms[:i])) \
                and chain_rank([stats.Sxx, *ws[:i]], rtol)[1].rank == 0:
            out[i], hits = 0.0, [*hits, i + 1]
    return out, tuple(hits)


def cache_params(cache: PointCache) -> int:
    return sum(int(w.size) for w in cache.weights)


def hessian_scale(cache: PointCache, S: np.ndarray, norms: LayerNorms | None = None) -> float:
    """The magnitude of the terms the Hessian is summed from (its rounding is eps times this):
    ``(sum_j ||A_j|| ||B_j S||)^2 + ||E|| (sum_j ||A_j||) (sum_i ||B_i||)`` (the second term bounds
    the residual terms ``A_j^T E B_i^T`` that couple layers). Unlike ``max |lambda|`` it does not
    vanish when cancellation makes the Hessian itself tiny."""
    nm = norms or LayerNorms(cache, S)
    gn = sum(a * b for a, b in zip(nm.A, nm.BS, strict=True))
    en = _norm2(cache.E) * sum(nm.A) * sum(nm.B)
    return gn * gn + en


def _candidate_ranks(prank: NumericalRank) -> list[int]:
    """``rank(R)``, or every rank the ambiguity band of :func:`dlcert.products.numerical_rank`
    allows (singular values within ``AMBIGUITY_FACTOR`` of the cutoff, either side)."""
    if not prank.ambiguous:
        return [prank.rank]
    sv, cut = prank.singular_values, prank.cutoff
    lo = int(np.count_nonzero(sv > cut * AMBIGUITY_FACTOR))
    hi = int(np.count_nonzero(sv > cut / AMBIGUITY_FACTOR))
    return list(range(lo, hi + 1))


def _learned_set(
    prank: NumericalRank, candidates: list[list[int]], excesses: list[float], within: float
) -> tuple[list[int] | None, float | None]:
    """The learned set S and ``L - c_S``. With an unambiguous rank, the one candidate. With an
    ambiguous rank (a change of basis of condition 1e6 puts the cutoff within a factor 10 of
    genuine singular values), the candidate whose critical value the loss matches (``|L - c_S|
    <= within``) when exactly one does and every other is clearly apart: S is still read from
    col(R), the value only settles its size. Otherwise ``None`` (no critical value to match)."""
    if not prank.ambiguous:
        return (candidates[0], excesses[0]) if candidates else (None, None)
    matches = [i for i, ex in enumerate(excesses) if abs(ex) <= within]
    if len(matches) != 1 or any(abs(ex) <= 2.0 * within for i, ex in enumerate(excesses) if i != matches[0]):
        return None, None
    return candidates[matches[0]], excesses[matches[0]]


def _target(wh: Whitening, index_set: Sequence[int]) -> np.ndarray:
    """``T_I = sum_{i in I} s_i u_i v_i^T`` exactly as :func:`dlcert.optimum.set_excess` builds it."""
    idx = sorted(i - 1 for i in index_set if i <= wh.s.size)
    return (wh.U[:, idx] * wh.s[idx]) @ wh.Vt[idx]


def _statistics_error(R: np.ndarray, wh: Whitening, stats: Statistics, index_set: Sequence[int]) -> float:
    """First-order effect of the statistics' rounding on ``L(R) - c_I`` (loss units).

    By the envelope theorem ``L(R) - c_I`` does not move to first order at ``R = R_I*``; away from
    it, ``|delta| <= n_x (||D|| ||R_I*|| + ||D||^2 / 2) + n_xy ||D||`` with ``D = R - R_I*``,
    ``n_x = SXX_RTOL lambda_max(Sxx)``, ``n_xy = SXX_RTOL sqrt(lambda_max syy)``; plus half of
    what Y could hold in directions of Sxx below the noise (``Whitening.dropped_signal``).
    """
    idx = sorted(i - 1 for i in index_set if i <= wh.s.size)
    R_I = (wh.U[:, idx] @ (wh.U[:, idx].T @ wh.T)) @ wh.S_pinv
    D = R - R_I
    lam_max = float(wh.sxx_eigenvalues[0]) if wh.sxx_eigenvalues.size else 0.0
    n_x = SXX_RTOL * lam_max
    n_xy = SXX_RTOL * math.sqrt(max(lam_max * stats.syy, 0.0))
    dn, rn = frobenius(D), frobenius(R_I)
    return n_x * (dn * rn + 0.5 * dn * dn) + n_xy * dn + 0.5 * wh.dropped_signal


def measure(
    weights: tuple[np.ndarray, ...],
    stats: Statistics,
    tol: Tolerances,
    *,
    weights_eps: float,
    dense_limit: int,
    time_budget: float,
    n_extremes: int,
    radius: float | None,
    seed: int,
    deadline: float = math.inf,
) -> Measurements:
    """Measure everything at ``weights`` (already normalized) for ``stats``.

    ``deadline`` (a ``time.perf_counter()`` value, :mod:`dlcert.budget`) bounds the whole
    measurement. The work before the searches (ranks, rounding scales, rank rule, theorems) stops
    when it passes and leaves only the first-order results (:func:`_cut_short`: the verdict is
    ``inconclusive.time_budget``). A search the deadline cuts short leaves no partial answer (no
    channel strength, no witness; the spectrum ``converged: false``), and
    :attr:`Measurements.budget_note` says which phase ran out.
    """
    partial: dict[str, object] = {}
    outer = activate(math.inf)  # restored however _measure ends
    try:
        return _measure(weights, stats, tol, weights_eps=weights_eps, dense_limit=dense_limit,
                        time_budget=time_budget, n_extremes=n_extremes, radius=radius, seed=seed,
                        deadline=deadline, partial=partial)
    except OutOfTime:
        if "cache" not in partial:
            raise
    finally:
        deactivate(outer)
    return _cut_short(weights, stats, partial, time_budget)


def _cut_short(
    ws: tuple[np.ndarray, ...], stats: Statistics, partial: dict[str, object], time_budget: float
) -> Measurements:
    """The measurements when the deadline passed before the searches: the first-order results,
    the value against ``L*``, and placeholders that decide nothing (``Evidence.complete`` false)."""
    wh = partial["wh"]
    cache = partial["cache"]
    tol = partial["tol"]
    rel = partial["rel"]
    gnorms = partial["gnorms"]
    assert isinstance(wh, Whitening) and isinstance(cache, PointCache) and isinstance(tol, Tolerances)
    assert isinstance(rel, list) and isinstance(gnorms, list)
    widths = [int(ws[0].shape[1])] + [int(w.shape[0]) for w in ws]
    half_syy = 0.5 * stats.syy
    assumptions = measure_assumptions(stats, wh, widths, tol.rank_rtol)
    prank = numerical_rank(cache.R, tol.rank_rtol)
    rel_gap = rank_excess(cache.R, wh, assumptions.k) / half_syy
    nan = math.nan
    evidence = Evidence(
        depth=len(ws), all_layers_nonzero=all(bool(np.any(w)) for w in ws),
        relative_gradient=max(rel), gtol=tol.gtol, gtol_requested=tol.gtol_requested,
        gradient_floor=nan, gtol_ceiling=GTOL_CEILING, relative_gap=rel_gap, value_error=nan,
        ftol=tol.ftol, learned_set=None, top_set=None, misplaced=False, critical_excess=None,
        critical_value_above_optimum=None, tie_at_k=False, rank_rule=None,
        rank_rule_reason="not evaluated: the time budget ended", yun_id=None, yun_holds=None,
        kawaguchi_iv=False, hessian_method="none", lambda_min=None, lambda_min_error=None,
        lambda_max=None, curvature_threshold=nan, solver_failure=False, witness_order=None,
        witness_curvature=None, channel_strength=None, channel_noise=nan,
        channel_noise_ceiling=CHANNEL_NOISE_CEILING, ftol_requested=tol.ftol_requested,
        value_floor=nan, complete=False,
    )
    return Measurements(
        evidence=evidence, tolerances=tol, whitening=wh, assumptions=assumptions, cache=cache,
        loss=loss_of_product(cache.R, stats), gradient_norms=list(gnorms), relative_gradients=list(rel),
        product_rank=prank,
        critical_value=CriticalValue(index_set=None, value=None, excess=None, above_optimum=None, error=nan),
        rank_rule=RankRule(None, None, None, None, None, None, "not evaluated: the time budget ended"),
        hessian=NO_HESSIAN, theorems=[], witness=None, channel=None,
        budget_note=(f"the time budget of {time_budget:g} s ended before the ranks, the rank rule and the "
                     "theorem table were measured: the check stopped there (the rank of R is judged "
                     "against its own largest singular value)"),
    )


def _measure(
    weights: tuple[np.ndarray, ...],
    stats: Statistics,
    tol: Tolerances,
    *,
    weights_eps: float,
    dense_limit: int,
    time_budget: float,
    n_extremes: int,
    radius: float | None,
    seed: int,
    deadline: float = math.inf,
    partial: dict[str, object] | None = None,
) -> Measurements:
    """Measure everything at ``weights`` (already normalized) for ``stats``.

    ``deadline`` (a ``time.perf_counter()`` value, :mod:`dlcert.budget`) bounds the searches:
    channel and witness search, eigen-solver. A search the deadline cuts short leaves no partial
    answer (no channel strength, no witness; the spectrum ``converged: false``), and
    :attr:`Measurements.budget_note` says which phase ran out.
    """
    ws = weights
    n = len(ws)
    widths = [int(ws[0].shape[1])] + [int(w.shape[0]) for w in ws]
    half_syy = 0.5 * stats.syy
    wh = whiten(stats, SXX_RTOL)
    cache = PointCache.at(ws, stats)
    grads = gradient(ws, stats, cache)
    gnorms = [frobenius(g) for g in grads]
    rel = relative_gradient_norms(cache, grads, stats)
    rel, vanishing = _vanishing_products(ws, cache, stats, rel, tol.products_rtol, tol.gtol_requested)
    if partial is not None:
        partial.update(wh=wh, cache=cache, gnorms=gnorms, rel=rel, tol=tol)
    # The work before the searches stops at the deadline (dlcert.budget.check in the rank and
    # norm helpers); measure() turns that into inconclusive.time_budget.
    active = activate(deadline)
    y_norm = math.sqrt(stats.syy)
    layer_norms = LayerNorms(cache, wh.S)
    kappa = products_scale(cache, wh.S, layer_norms) / y_norm if y_norm > 0 else 0.0
    floor = weights_eps * kappa
    value_floor = 16.0 * weights_eps**2 * diagonal_curvature(cache, wh.S) / (3.0 * stats.syy)
    tol = with_gradient_floor(tol, floor, max(rel), value_floor)
    assumptions = measure_assumptions(stats, wh, widths, tol.rank_rtol)
    k = assumptions.k
    loss = loss_of_product(cache.R, stats)
    prank = chain_rank(list(ws), tol.products_rtol)[1]
    critical = max(rel) <= tol.gtol

    # The value: gap to L*, the learned set S and the excess over its critical value c_S.
    gap = rank_excess(cache.R, wh, k)
    # Candidate learned sets: the top-r directions of col(R) for r = rank(R), or, when that rank is
    # ambiguous, for every r the ambiguity allows; the value then picks among them (below).
    candidates = [learned_index_set(cache.R, wh, r) for r in _candidate_ranks(prank)]
    candidates = [c for c, r in zip(candidates, _candidate_ranks(prank), strict=True) if len(c) == r]
    top = list(range(1, k + 1))
    excesses = [set_excess(cache.R, wh, c) for c in candidates]
    arith = GAP_GAMMA * n * EPS64 * kappa * y_norm * math.sqrt(max(2.0 * max(loss, 0.0), 0.0))
    value_err = arith
    if arith > 0.25 * tol.ftol * half_syy:
        # The a-priori bound follows norms of the layers, which a change of basis inflates; the
        # a-posteriori bound follows the products actually computed (dlcert.roundoff).
        sets = [top[: min(k, wh.s.size)], *candidates]
        values, bound = excess_with_bound(ws, wh.S, wh.T, [_target(wh, s) for s in sets],
                                          extended=max(widths) <= EXTENDED_MAX_WIDTH)
        if bound < arith:
            gap, value_err = values[0], bound
            excesses = values[1:]
    stat_err = _statistics_error(cache.R, wh, stats, top[: min(k, wh.s.size)])
    for c in candidates:
        stat_err = max(stat_err, _statistics_error(cache.R, wh, stats, c))
    value_err += stat_err
    learned, excess = _learned_set(prank, candidates, excesses, (tol.ftol * half_syy) + value_err)
    c_value = critical_value(stats, wh, learned) if learned is not None else None
    above = None
    if learned is not None:
        top_sum = float(np.sum(wh.s[:k] ** 2))
        learned_sum = float(np.sum(wh.s[[i - 1 for i in learned if i <= wh.s.size]] ** 2))
        above = (top_sum - learned_sum) / stats.syy
    top_set = None if learned is None else above is not None and above <= 0.0
    misplaced = False
    if learned:
        r = len(learned)
        top_r = float(np.sum(wh.s[: min(r, wh.s.size)] ** 2))
        misplaced = (top_r - float(np.sum(wh.s[[i - 1 for i in learned if i <= wh.s.size]] ** 2))) \
            / stats.syy > tol.ftol
    cv = CriticalValue(
        index_set=learned,
        value=c_value,
        excess=None if excess is None else excess / half_syy,
        above_optimum=above,
        error=value_err / half_syy,
    )

    rule = (
        rank_rule(ws, stats, wh, tol) if critical
        else RankRule(None, None, None, None, None, None, "not evaluated: the point is not critical")
    )
    pt = measure_point(ws, cache, wh, assumptions, tol, prank.rank, critical, rule if critical else None)
    theorems = theorem_table(assumptions, tol, pt)
    # Yun et al.'s conditions read rank(R); an ambiguous rank makes their answer a guess, so it
    # neither confirms nor contradicts the value route then.
    yun = None if prank.ambiguous else next(
        (t for t in theorems if t.id in ("yun2018.thm2.1", "yun2018.thm2.2")
         and t.applies and t.holds is not None), None)
    iv = next(t for t in theorems if t.id == "kawaguchi2016.thm2.3.iv")
    nonzero = all(bool(np.any(w)) for w in ws)
    deactivate(active)

    # Second order: only for a critical point that is not global by value.
    witness: Witness | None = None
    spec = NO_HESSIAN
    threshold = 0.0
    failure = False
    rel_gap = gap / half_syy
    channel: Channel | None = None
    budget_note: str | None = None
    # Second-order evidence is read only at a candidate global minimum (to look for negative
    # curvature) or at a candidate saddle value; when the value route already decides (a gap that
    # straddles ftol, a loss between critical values, a value within error of L*), nothing the
    # Hessian says can change the verdict, so no time is spent on it (docs/verdicts.md).
    err_rel = value_err / half_syy
    global_candidate = rel_gap + err_rel <= tol.ftol
    saddle_candidate = (
        rel_gap - err_rel > tol.ftol
        and cv.excess is not None and abs(cv.excess) <= tol.ftol + err_rel
        and above is not None and above > tol.ftol + err_rel
    )
    decided_before_curvature = global_candidate and (
        (yun is not None and yun.holds is False)
        or rule.decision in ("strict_saddle", "non_strict_saddle")
        or (near_tie(wh, k, stats, tol.ftol) and top_set is not True)
    )
    if critical and (global_candidate or saddle_candidate) and not decided_before_curvature:
        curvature_dir = None
        if rel_gap > tol.ftol or rule.decision in ("strict_saddle", "non_strict_saddle"):
            phase = "the channel search"
            try:
                check_deadline(deadline)
                channel, channel_dirs = strongest_channel(
                    cache, wh, tol.products_rtol, deadline=deadline, learned=learned,
                    norms=(layer_norms.A, layer_norms.BS, layer_norms.B))
                extra = [Direction(V, tuple(i + 1 for i, v in enumerate(V) if np.any(v)), "channel")
                         for V in channel_dirs]
                phase = "the witness search"
                witness, curvature_dir = find_witness(
                    ws, stats, wh, cache, tol.products_rtol, index_set=learned, radius=radius,
                    min_preferred_order=3 if rule.decision == "non_strict_saddle" else 2,
                    extra=extra, deadline=deadline,
                )
            except OutOfTime:
                channel, witness, curvature_dir = None, None, None
                budget_note = (f"the time budget of {time_budget:g} s ended {phase} before it finished: "
                               "its partial results are not used")
        spec, vmin = spectrum(
            stats, cache, direction=curvature_dir.V if curvature_dir else None,
            dense_limit=dense_limit, time_budget=time_budget, deadline=deadline,
            n_extremes=n_extremes, rtol=max(1e-8, tol.hessian_rtol), seed=seed,
        )
        if budget_note is None and not spec.converged and time.perf_counter() > deadline:
            budget_note = (f"the time budget of {time_budget:g} s ended the eigen-solver before "
                           "convergence (converged: false)")
        if witness is None and spec.min_eigenvalue is None and time.perf_counter() > deadline:
            # Out of time with no witness and no eigenvalue: no rule reads the threshold, and its
            # scale costs an SVD per layer (seconds at 4e6 parameters) after the deadline.
            scale = math.nan
        else:
            h_scale = hessian_scale(cache, wh.S, layer_norms)
            scale = max(abs(spec.max_eigenvalue or 0.0), abs(spec.min_eigenvalue or 0.0), h_scale)
        threshold = tol.hessian_rtol * scale
        if spec.method == "dense" and spec.min_eigenvalue_error is not None:
            eig_floor = DENSE_EIG_GAMMA * math.sqrt(cache_params(cache)) * EPS64 * scale
            err = max(spec.min_eigenvalue_error, eig_floor)
            spec = replace(spec, min_eigenvalue_error=err, max_eigenvalue_error=err)
        # At a critical point with N >= 2 and non-zero weights the symmetry directions have zero
        # curvature: lambda_min <= 0. A dense value above its error bound, or any non-negative
        # value from an iterative solver (which may have missed the null space), is a failure.
        iterative = spec.method in ("lobpcg", "lanczos")
        if (
            n >= 2 and nonzero and spec.min_eigenvalue is not None
            and (spec.min_eigenvalue >= 0.0 if iterative
                 else spec.min_eigenvalue > (spec.min_eigenvalue_error or 0.0))
        ):
            failure = True
            spec = replace(spec, converged=False)
        if (
            (witness is None or witness.order > 2
             or _curvature_margin(witness, threshold, tol.hessian_rtol) <= 1.0)
            and rule.decision != "non_strict_saddle"
            and vmin is not None and not failure
            and spec.min_eigenvalue is not None and spec.min_eigenvalue < -threshold
        ):
            try:
                check_deadline(deadline)
                eig = _eigen_witness(ws, vmin, stats, cache, radius, deadline)
            except OutOfTime:
                eig = None
                budget_note = budget_note or (
                    f"the time budget of {time_budget:g} s ended before the eigenvector's escape "
                    "witness was evaluated")
            if eig is not None and eig.order == 2 and (
                witness is None or witness.order > 2
                or _curvature_margin(eig, threshold, tol.hessian_rtol)
                > _curvature_margin(witness, threshold, tol.hessian_rtol)
            ):
                witness = eig

    evidence = Evidence(
        depth=n,
        all_layers_nonzero=nonzero,
        relative_gradient=max(rel),
        gtol=tol.gtol,
        gtol_requested=tol.gtol_requested,
        gradient_floor=floor,
        gtol_ceiling=GTOL_CEILING,
        relative_gap=rel_gap,
        value_error=value_err / half_syy,
        ftol=tol.ftol,
        learned_set=None if learned is None else tuple(learned),
        top_set=top_set,
        misplaced=misplaced,
        critical_excess=cv.excess,
        critical_value_above_optimum=above,
        tie_at_k=near_tie(wh, k, stats, tol.ftol),
        rank_rule=rule.decision,
        rank_rule_reason=rule.reason,
        yun_id=None if yun is None else yun.id,
        yun_holds=None if yun is None else yun.holds,
        kawaguchi_iv=bool(iv.applies and iv.holds),
        hessian_method=spec.method,
        lambda_min=spec.min_eigenvalue,
        lambda_min_error=spec.min_eigenvalue_error,
        lambda_max=spec.max_eigenvalue,
        curvature_threshold=threshold,
        solver_failure=failure,
        witness_order=None if witness is None else witness.order,
        witness_curvature=(2.0 * witness.coefficient if witness is not None and witness.order == 2 else None),
        channel_strength=None if channel is None else channel.strength,
        channel_weaker_factor=None if channel is None else channel.weaker_factor,
        channel_noise=max(max(rel), floor, 100.0 * EPS64),
        channel_noise_ceiling=CHANNEL_NOISE_CEILING,
        ftol_requested=tol.ftol_requested,
        value_floor=value_floor,
        vanishing_layers=vanishing,
        witness_threshold=(
            2.0 * tol.hessian_rtol * witness.coefficient_scale
            if witness is not None and witness.order == 2 and witness.coefficient_scale is not None
            else None
        ),
    )
    return Measurements(
        evidence=evidence, tolerances=tol, whitening=wh, assumptions=assumptions, cache=cache,
        loss=loss, gradient_norms=gnorms, relative_gradients=rel, product_rank=prank,
        critical_value=cv, rank_rule=rule, hessian=spec, theorems=theorems, witness=witness,
        channel=None if channel is None else replace(channel, noise=evidence.channel_noise),
        budget_note=budget_note,
    )


def _curvature_margin(w: Witness, threshold: float, hessian_rtol: float) -> float:
    """How far an order-2 witness's curvature ``2 a_2`` lies beyond the larger of the whole-Hessian
    ``threshold`` and its own direction's (``Evidence.strong_order2``): above 1 it proves strictness."""
    own = 2.0 * hessian_rtol * w.coefficient_scale if w.coefficient_scale is not None else 0.0
    bar = max(threshold, own)
    curvature = -2.0 * w.coefficient
    return curvature / bar if bar > 0 else (math.inf if curvature > 0 else 0.0)


def _eigen_witness(
    ws: tuple[np.ndarray, ...],
    vmin: np.ndarray,
    stats: Statistics,
    cache: PointCache,
    radius: float | None,
    deadline: float = math.inf,
) -> Witness | None:
    """A negative-curvature witness along the eigenvector of lambda_min."""
    V = unflatten(vmin / np.linalg.norm(vmin), [w.shape for w in ws])
    moved = tuple(i + 1 for i, v in enumerate(V) if np.any(v))
    direction = Direction(tuple(V), moved, "eigenvector")
    return evaluate(ws, direction, stats, cache, radius if radius is not None else default_radius(ws),
                    deadline=deadline)

