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

import numpy as np

from dlcert.certificate import Verdict
from dlcert.certification import certify
from dlcert.errors import InputError
from dlcert.hessian import hessian_operator
from dlcert.landscape import TrialRecord, TrialsSummary, check_widths
from dlcert.objective import PointCache, flatten, gradient, loss, relative_gradient_norms, unflatten
from dlcert.optimum import optimal_product, whiten
from dlcert.statistics import Statistics
from dlcert.tolerances import SXX_RTOL

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
