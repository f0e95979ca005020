"""Certification: weights and statistics in, a :class:`~dlcert.certificate.Certificate` out.

The flow is validate -> normalize (exact power-of-two rescaling, :mod:`dlcert.normalize`) ->
measure (:mod:`dlcert.evidence`) -> decide (:mod:`dlcert.rules`, one ordered rule table) ->
certificate (values mapped back to the stored units). Nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlcert.budget import deadline_after
from dlcert.certificate import Certificate, HessianSpectrum, Reason, Verdict, Witness, to_builtin
from dlcert.errors import InputError
from dlcert.evidence import measure
from dlcert.hessian import DEFAULT_TIME_BUDGET, DENSE_LIMIT
from dlcert.normalize import Normalization, normalize
from dlcert.objective import PointCache
from dlcert.optimum import ols_loss, optimal_loss
from dlcert.products import widths_of
from dlcert.rules import decide, notes
from dlcert.statistics import Statistics, eps_of
from dlcert.threads import blas_threads, limit_for
from dlcert.tolerances import EPS64, default_tolerances
from dlcert.validation import check_statistics, check_weight_chain


def certify(
    weights: Sequence[Any],
    stats: Statistics,
    *,
    gtol: float | None = None,
    ftol: float | None = None,
    eps: float | None = None,
    weights_eps: float | None = None,
    dense_limit: int = DENSE_LIMIT,
    time_budget: float = DEFAULT_TIME_BUDGET,
    n_extremes: int = 0,
    radius: float | None = None,
    seed: int = 0,
) -> Certificate:
    """Certify the point ``weights`` (``W_1..W_N`` as numpy arrays, input to output) for ``stats``.

    The precision of the data (``stats.eps``) sets the default tolerances; the precision the
    weights were stored in (``weights_eps``, default: their dtypes) sets the floors rounding them
    can cause (``docs/tolerances.md``). ``eps`` overrides both; ``gtol``/``ftol`` override the
    defaults. Raises
    :class:`~dlcert.errors.InputError` on invalid input, with the same one-line messages as the
    command line.
    The check stops its searches ``time_budget`` seconds after this call starts
    (:mod:`dlcert.budget`); an unfinished search yields ``inconclusive``, never a certificate.
    """
    deadline = deadline_after(time_budget)
    raw_eps = eps_of(*[w for w in weights if isinstance(w, np.ndarray)])
    ws = check_weight_chain(list(weights), "weights")
    stats = _checked_statistics(stats, ws)
    for name, value in (("gtol", gtol), ("ftol", ftol), ("eps", eps), ("weights_eps", weights_eps),
                        ("radius", radius)):
        if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
            raise InputError(f"{name} is {value!r}; expected a positive finite number")
    if not stats.syy > 0:
        raise InputError("statistics: Y is identically zero (syy = 0); there is nothing to fit")
    data_eps = eps if eps is not None else max(stats.eps, EPS64)
    w_eps = eps if eps is not None else max(weights_eps or 0.0, raw_eps, EPS64)
    widths = widths_of(ws)
    tol = default_tolerances(data_eps, widths, gtol, ftol, weights_eps=w_eps)
    # Small problems run on one BLAS thread: threads cost more than they save on small matrices,
    # and far more on a shared machine (dlcert.threads).
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"), \
            blas_threads(limit_for(max(widths))):
        nws, nstats, norm = normalize(ws, stats)
        scaled_radius = None if radius is None else _scaled_radius(radius, norm)
        m = measure(nws, nstats, tol, weights_eps=w_eps, dense_limit=dense_limit,
                    time_budget=time_budget, n_extremes=n_extremes, radius=scaled_radius, seed=seed,
                    deadline=deadline)
    ev = m.evidence
    if not all(math.isfinite(x) for x in (ev.relative_gradient, ev.relative_gap, m.loss)) and not (
        ev.relative_gradient == math.inf
    ):
        raise InputError(
            "the loss overflows float64 even after exact rescaling: the product W_N...W_1 X is "
            "beyond 1e308 times the targets Y (not a critical point of any practical meaning)"
        )
    verdict, reason = decide(ev)
    reasons: list[Reason] = [reason, *notes(ev)]
    if m.budget_note is not None:
        reasons.append(Reason("note.time_budget", m.budget_note))
    witness = _stored_witness(m.witness, norm, ws) if verdict in (
        Verdict.STRICT_SADDLE, Verdict.NON_STRICT_SADDLE) else None
    if witness is None and verdict in (Verdict.STRICT_SADDLE, Verdict.NON_STRICT_SADDLE):
        verdict = Verdict.INCONCLUSIVE
        reasons.insert(0, Reason("inconclusive.witness_not_confirmed",
                                 "the escape witness did not confirm a decrease at the stored point"))
    f = 1.0 / norm.loss_factor
    stored_grads = _stored_gradient_norms(m.gradient_norms, norm, m.cache)
    wh, a = m.whitening, m.assumptions
    gap = ev.relative_gap * 0.5 * stats.syy
    cv = m.critical_value
    return Certificate(
        verdict=verdict,
        message=_message(verdict, reasons[0]),
        loss=m.loss * f,
        optimal_loss=optimal_loss(nstats, wh, a.k) * f,
        ols_loss=ols_loss(nstats, wh) * f,
        gap=gap,
        relative_gap=ev.relative_gap,
        gradient_norm=math.hypot(*stored_grads),
        relative_gradient_norm=ev.relative_gradient,
        layer_gradient_norms=stored_grads,
        layer_relative_gradient_norms=m.relative_gradients,
        widths=widths,
        k=a.k,
        bottleneck_layers=a.bottleneck_layers,
        product_rank=m.product_rank.rank,
        product_singular_values=[float(x) * _product_factor(norm) for x in m.product_rank.singular_values],
        rank_gap=m.product_rank.gap,
        singular_values=[float(x) * math.ldexp(1.0, -norm.y_exponent) for x in wh.s],
        rank_rule=m.rank_rule,
        hessian=m.hessian if m.hessian.method != "none" else HessianSpectrum(None, None, "none", False),
        theorems=m.theorems,
        witness=witness,
        reasons=reasons,
        tolerances=m.tolerances,
        m=stats.m,
        critical_value=type(cv)(
            index_set=cv.index_set,
            value=None if cv.value is None else cv.value * f,
            excess=cv.excess, above_optimum=cv.above_optimum, error=cv.error,
        ),
        channel=m.channel,
        rule=reasons[0].code,
        evidence=to_builtin(ev) | {"normalization": to_builtin(norm)},
    )


def _checked_statistics(stats: Statistics, ws: tuple[np.ndarray, ...]) -> Statistics:
    if not isinstance(stats, Statistics):
        raise InputError(f"stats is a {type(stats).__name__}; expected dlcert.Statistics")
    dx, dy = int(ws[0].shape[1]), int(ws[-1].shape[0])
    if stats.dx != dx or stats.dy != dy:
        raise InputError(
            f"weights map {dx} -> {dy} but the data has dx = {stats.dx}, dy = {stats.dy}"
        )
    Sxx, Syx, syy, m = check_statistics(stats.Sxx, stats.Syx, stats.syy, stats.m, dx, dy, "statistics")
    return Statistics(Sxx=Sxx, Syx=Syx, syy=syy, m=m, eps=stats.eps)


def _grad_factor(norm: Normalization, i: int) -> float:
    """dL/dW_i in stored units = normalized gradient * 2^(e_i) / loss_factor."""
    return math.ldexp(1.0, norm.layer_exponents[i]) / norm.loss_factor


def _stored_gradient_norms(norms: Sequence[float], norm: Normalization, cache: PointCache) -> list[float]:
    """``||dL/dW_i||`` in stored units. With hidden units rescaled the factor differs per entry:
    stored ``dL/dW_i[a, b]`` = normalized one times ``2^e[a, b] / loss_factor``."""
    if not norm.unit_exponents:
        return [g * _grad_factor(norm, i) for i, g in enumerate(norms)]
    out = []
    for i, (ate, b) in enumerate(zip(cache.AtE, cache.B, strict=True)):
        with np.errstate(over="ignore"):  # a stored gradient beyond 1e308 is reported as inf
            g = np.ldexp(ate @ b.T, norm.entry_exponents(i, (ate.shape[0], b.shape[0])) - 2 * norm.y_exponent)
        top = float(np.max(np.abs(g), initial=0.0))
        # scaled so that squaring the entries cannot overflow when the norm itself is finite
        out.append(top * float(np.linalg.norm(g / top)) if 0.0 < top < math.inf else top)
    return out


def _product_factor(norm: Normalization) -> float:
    return math.ldexp(1.0, -sum(norm.layer_exponents))


def _scaled_radius(radius: float, norm: Normalization) -> float:
    # A radius in stored units; entries scale differently, so use the smallest factor (conservative).
    low = [e + min([*u, 0]) - max([*v, 0]) for e, u, v in zip(
        norm.layer_exponents, [*norm.unit_exponents, ()], [(), *norm.unit_exponents], strict=False)]
    return radius * math.ldexp(1.0, min(low))


def _stored_witness(w: Witness | None, norm: Normalization, stored: tuple[np.ndarray, ...]) -> Witness | None:
    """The witness mapped back to the stored units (exact power-of-two scaling)."""
    if w is None:
        return None
    point = norm.to_stored(w.point)
    if not all(np.isfinite(p).all() for p in point):
        return None
    distance = math.sqrt(sum(float(np.vdot(p - s, p - s)) for p, s in zip(point, stored, strict=True)))
    f = 1.0 / norm.loss_factor
    return Witness(
        kind=w.kind, radius=distance, loss_decrease=w.loss_decrease * f,
        rounding_bound=w.rounding_bound * f, order=w.order, coefficient=w.coefficient,
        layers_moved=w.layers_moved, point=point,
    )


def _message(verdict: Verdict, reason: Reason) -> str:
    head = {
        Verdict.GLOBAL_MINIMUM: "certified global minimum",
        Verdict.STRICT_SADDLE: "strict saddle",
        Verdict.NON_STRICT_SADDLE: "non-strict saddle",
        Verdict.NOT_CRITICAL: "not a critical point",
        Verdict.INCONCLUSIVE: "inconclusive",
    }[verdict]
    return f"{head}: {reason.message}"
