"""Random-start training on the statistics-based loss, each end point certified (``--trials``).

Each start is optimised by scipy's L-BFGS-B on ``L(W) / (syy/2)`` and its gradient
(``dlcert.objective``; the scaling only makes the optimiser's tolerances relative). A line
search on function values stalls at a relative gradient of about ``sqrt(eps)`` (1e-8): below
that, loss differences drown in rounding. So the end point is then *polished* by up to
:data:`POLISH_STEPS` Newton steps on the gradient (minimum-norm steps from MINRES on the
Hessian-vector-product operator, kept only while the relative gradient norm falls), which needs
no function values. The polished point is judged by :func:`dlcert.certification.certify` exactly as
``dlcert check`` would judge it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from dlcert.certificate import Verdict
from dlcert.certification import certify
from dlcert.errors import InputError
from dlcert.hessian import hessian_operator
from dlcert.landscape import (
    ConvexTrialRecord,
    ConvexTrialsSummary,
    TrialRecord,
    TrialsSummary,
    check_widths,
)
from dlcert.objective import PointCache, flatten, gradient, loss, relative_gradient_norms, unflatten
from dlcert.optimum import optimal_product, whiten
from dlcert.statistics import Statistics
from dlcert.tolerances import SXX_RTOL

if TYPE_CHECKING:
    from dlcert.losses import DataObjective

#: Progress callback: ``(starts finished, starts in total)``.
Progress = Callable[[int, int], None]

INIT_DOC = (
    "W_i entries i.i.d. N(0, alpha^(2/N) / d_(i-1)), alpha = ||R*||_2 (spectral norm of the "
    "optimal product; 1 if R* = 0)"
)

#: L-BFGS-B settings: relative loss change and projected-gradient tolerances, iteration cap.
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000, "maxcor": 20}

#: Newton polishing steps after L-BFGS-B (each kept only if the gradient falls).
POLISH_STEPS = 6


def random_start(rng: np.random.Generator, widths: Sequence[int], alpha: float) -> list[np.ndarray]:
    """A random point whose product has the scale of the answer (see :data:`INIT_DOC`).

    With ``W_i ~ N(0, c^2 / d_{i-1})`` and ``c = alpha^(1/N)``, ``E ||R x||^2 = alpha^2 ||x||^2``:
    the start lives in the problem's units, so rescaling X or Y does not change the run's shape.
    """
    n = len(widths) - 1
    c = alpha ** (1.0 / n) if alpha > 0 else 1.0
    return [c * rng.standard_normal((widths[i], widths[i - 1])) / np.sqrt(widths[i - 1])
            for i in range(1, n + 1)]


def train(stats: Statistics, start: Sequence[np.ndarray]) -> tuple[list[np.ndarray], bool, int, str]:
    """L-BFGS-B from ``start``; returns the end point, success flag, iterations and message."""
    shapes = [w.shape for w in start]
    scale = 0.5 * stats.syy

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        ws = unflatten(v, shapes)
        return loss(ws, stats) / scale, flatten(gradient(ws, stats)) / scale

    from scipy.optimize import minimize  # lazy: 0.25 s of import time (issue 14)

    res = minimize(fun, flatten(start), jac=True, method="L-BFGS-B", options=LBFGS_OPTIONS)
    return unflatten(np.asarray(res.x, dtype=np.float64), shapes), bool(res.success), int(res.nit), str(
        res.message
    )


def relative_gradient(weights: Sequence[np.ndarray], stats: Statistics) -> float:
    """The largest scale-free layer gradient norm (``dlcert.objective.relative_gradient_norms``)."""
    cache = PointCache.at(weights, stats)
    return max(relative_gradient_norms(cache, gradient(weights, stats, cache), stats))


def polish(
    stats: Statistics, weights: Sequence[np.ndarray], steps: int = POLISH_STEPS
) -> tuple[list[np.ndarray], int]:
    """Newton steps ``H d = -g`` (MINRES, minimum-norm for the singular symmetric H) from ``weights``.

    Returns the point with the smallest relative gradient norm met and the number of steps kept.
    Converges to the nearby critical point, whatever its kind; it never looks at the loss.
    """
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    shapes = [w.shape for w in ws]
    best = relative_gradient(ws, stats)
    kept = 0
    for _ in range(steps):
        if best == 0.0:
            break
        cache = PointCache.at(ws, stats)
        g = flatten(gradient(ws, stats, cache))
        from scipy.sparse.linalg import minres

        d, _info = minres(hessian_operator(stats, cache), -g, rtol=1e-14, maxiter=10 * g.size)
        trial = [w + dw for w, dw in zip(ws, unflatten(d, shapes), strict=True)]
        if not all(np.all(np.isfinite(w)) for w in trial):
            break
        rel = relative_gradient(trial, stats)
        if not rel < best:
            break
        ws, best, kept = trial, rel, kept + 1
    return ws, kept


def run_trials(
    stats: Statistics,
    widths: Sequence[int],
    n: int,
    seed: int = 0,
    *,
    progress: Progress | None = None,
    gtol: float | None = None,
    ftol: float | None = None,
    eps: float | None = None,
    time_budget: float = 5.0,
) -> TrialsSummary:
    """Optimise from ``n`` random starts (seeded), certify each end point, count the verdicts."""
    ws = check_widths(widths, stats)
    if n < 0:
        raise InputError(f"trials must be >= 0, got {n}")
    stats.require_targets()
    wh = whiten(stats, SXX_RTOL)
    alpha = float(np.linalg.norm(optimal_product(wh, min(ws)), 2))
    rng = np.random.default_rng(seed)
    records: list[TrialRecord] = []
    for i in range(n):
        end, ok, nit, message = train(stats, random_start(rng, ws, alpha))
        lbfgs_rel = relative_gradient(end, stats)
        end, kept = polish(stats, end)
        cert = certify(end, stats, gtol=gtol, ftol=ftol, eps=eps, time_budget=time_budget, seed=seed + i)
        records.append(
            TrialRecord(
                index=i,
                verdict=cert.verdict.value,
                converged=ok,
                loss=cert.loss,
                relative_gap=cert.relative_gap,
                relative_gradient_norm=cert.relative_gradient_norm,
                iterations=nit,
                message=message,
                lbfgs_relative_gradient_norm=lbfgs_rel,
                polish_steps=kept,
            )
        )
        if progress is not None:
            progress(i + 1, n)
    counts = {v.value: sum(r.verdict == v.value for r in records) for v in Verdict}
    return TrialsSummary(
        n=n,
        seed=seed,
        init=INIT_DOC,
        counts=counts,
        not_converged=sum(not r.converged for r in records),
        records=records,
    )


# ------------------------------------------------------------------ convex losses (``--loss``)

CONVEX_INIT_DOC = (
    "W_i entries i.i.d. N(0, alpha^(2/N) / d_(i-1)), alpha = sqrt(m) / ||X||_F (network outputs "
    "of unit RMS size at the start)"
)

#: L-BFGS-B settings for a convex loss (lower iteration cap: on separable data f has no minimiser
#: and the iterates only grow).
CONVEX_LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 3000, "maxcor": 20}


def _convex_layers(obj: DataObjective, ws: Sequence[np.ndarray]) -> tuple[float, list[np.ndarray], float]:
    """f(R), the layer gradients ``A_i^T grad f(R) B_i^T`` and the largest relative layer gradient."""
    from dlcert.convex import layer_relative_gradients, network_gradient

    R = ws[0]
    for w in ws[1:]:
        R = w @ R
    G, scale = obj.gradient(R)
    return obj.value(R), network_gradient(ws, G), max(layer_relative_gradients(ws, G, scale))


def train_convex(obj: DataObjective, start: Sequence[np.ndarray]) -> tuple[list[np.ndarray], bool, int, str]:
    """L-BFGS-B on ``f(W_N...W_1) / f(0)`` from ``start`` (the division only makes tolerances relative)."""
    shapes = [w.shape for w in start]
    f0 = obj.value(np.zeros((shapes[-1][0], shapes[0][1])))
    scale = f0 if f0 > 0 and np.isfinite(f0) else 1.0

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        value, grads, _ = _convex_layers(obj, unflatten(v, shapes))
        return value / scale, flatten(grads) / scale

    from scipy.optimize import minimize  # lazy (issue 14)

    with np.errstate(over="ignore"):
        res = minimize(fun, flatten(start), jac=True, method="L-BFGS-B", options=CONVEX_LBFGS_OPTIONS)
    return unflatten(np.asarray(res.x, dtype=np.float64), shapes), bool(res.success), int(res.nit), str(
        res.message
    )


def polish_convex(obj: DataObjective, weights: Sequence[np.ndarray],
                  steps: int = POLISH_STEPS) -> tuple[list[np.ndarray], int]:
    """Newton steps on the network gradient (MINRES on the exact network HVP), kept while the
    relative gradient falls; as :func:`polish`, it never looks at the loss."""
    from scipy.sparse.linalg import LinearOperator, minres

    from dlcert.convex import network_hvp

    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    shapes = [w.shape for w in ws]
    _, grads, best = _convex_layers(obj, ws)
    kept = 0
    for _ in range(steps):
        if best == 0.0 or not np.isfinite(best):
            break
        R = ws[0]
        for w in ws[1:]:
            R = w @ R
        G, _ = obj.gradient(R)
        at = list(ws)

        def hv(v: np.ndarray, at: list[np.ndarray] = at, R: np.ndarray = R, G: np.ndarray = G) -> np.ndarray:
            return flatten(network_hvp(at, obj, R, G, unflatten(np.ravel(v), shapes)))

        g = flatten(grads)
        op = LinearOperator((g.size, g.size), matvec=hv, dtype=np.float64)
        d, _info = minres(op, -g, rtol=1e-14, maxiter=10 * g.size)
        trial = [w + dw for w, dw in zip(ws, unflatten(d, shapes), strict=True)]
        if not all(np.all(np.isfinite(w)) for w in trial):
            break
        with np.errstate(over="ignore"):
            _, trial_grads, rel = _convex_layers(obj, trial)
        if not rel < best:
            break
        ws, grads, best, kept = trial, trial_grads, rel, kept + 1
    return ws, kept


def run_convex_trials(
    obj: DataObjective,
    loss_name: str,
    widths: Sequence[int],
    n: int,
    seed: int = 0,
    *,
    progress: Progress | None = None,
    gtol: float | None = None,
    eps: float = float(np.finfo(np.float64).eps),
) -> ConvexTrialsSummary:
    """``n`` seeded random starts trained on the convex loss; each end point certified by
    :func:`dlcert.convex.certify_convex` (the rule table of ``check --loss``)."""
    from dlcert.convex import certify_convex

    if n < 0:
        raise InputError(f"trials must be >= 0, got {n}")
    xnorm = float(np.linalg.norm(obj.X))
    alpha = float(np.sqrt(obj.m)) / xnorm if xnorm > 0 else 1.0
    rng = np.random.default_rng(seed)
    records: list[ConvexTrialRecord] = []
    for i in range(n):
        end, ok, nit, message = train_convex(obj, random_start(rng, widths, alpha))
        with np.errstate(over="ignore"):
            _, _, lbfgs_rel = _convex_layers(obj, end)
        end, kept = polish_convex(obj, end)
        cert = certify_convex(end, obj, loss_name=loss_name, gtol=gtol, eps=eps)
        records.append(ConvexTrialRecord(
            index=i, verdict=cert.verdict.value, rule=cert.rule, theorem=cert.theorem, converged=ok,
            loss=cert.loss, relative_f_gradient=cert.relative_f_gradient,
            relative_gradient_norm=cert.relative_gradient_norm, product_rank=cert.product_rank,
            iterations=nit, message=message, lbfgs_relative_gradient_norm=lbfgs_rel, polish_steps=kept))
        if progress is not None:
            progress(i + 1, n)
    counts = {v.value: sum(r.verdict == v.value for r in records) for v in Verdict}
    rules: dict[str, int] = {}
    for r in records:
        rules[r.rule] = rules.get(r.rule, 0) + 1
    return ConvexTrialsSummary(n=n, seed=seed, init=CONVEX_INIT_DOC, counts=counts, rules=rules,
                               not_converged=sum(not r.converged for r in records), records=records)
