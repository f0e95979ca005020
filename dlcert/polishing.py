"""``--polish``: from a stored point to the nearest critical point, and that point certified.

Mini-batch training stops at a relative gradient of about 1e-2, far above any ``gtol`` a
certificate can honestly use, so the stored point is ``not_critical`` -- and stays so: polishing
never changes the stored point's own verdict. It answers a different question: *where is the
critical point this run was heading to, and what is it?*

Method (full batch, on the statistics only, nothing grows with m):

1. ``levenberg-marquardt``: Levenberg-Marquardt on the equation ``grad L(W) = 0``, i.e. steps
   ``d = argmin ||g + H d||^2 + mu ||d||^2`` (LSMR on the Hessian-vector-product operator, damping
   ``mu = (||H|| rho)^2`` with ``rho`` the relative gradient norm, after Yamashita & Fukushima
   2001: quadratic convergence to a solution *set* that satisfies a local error bound), up to
   :data:`LM_STEPS` steps, keeping the point with the smallest ``rho``. The critical points of a
   deep linear network are not isolated (every ``W_i -> G_i W_i G_{i-1}^{-1}`` keeps them
   critical), and this is what makes the damping matter: plain minimum-norm Newton steps
   (``landscape --trials``' polish) move far along the nearly flat symmetry directions -- on
   constructed cases 20x farther than the known critical point the start was made from --
   while these steps land within that distance (measured: about half of it). So ``distance``
   honestly bounds how far the stored point is from a critical point of the class reported.
2. If that point is still not critical (far from any critical point), ``lbfgs+newton``: the
   optimiser behind ``landscape --trials`` (:mod:`dlcert.trials`): L-BFGS-B on the loss from the
   stored point, then its Newton polish. This goes downhill, so it finds a minimum rather than
   the nearest critical point; the report names the method used.

The polished point is certified by the same entry point as ``dlcert check``. Reported beside it:
the distance travelled ``||W' - W||_F``, absolute and relative to ``||W||_F``, and the loss change
``L(W') - L(W)``, absolute and relative to ``syy/2`` (the loss of the zero map).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from dlcert.certificate import Certificate, Verdict, to_builtin
from dlcert.hessian import hessian_operator
from dlcert.objective import PointCache, flatten, frobenius, gradient, loss, unflatten
from dlcert.statistics import Statistics
from dlcert.trials import polish as newton_polish
from dlcert.trials import relative_gradient, train

__all__ = ["LM_STEPS", "NEWTON_STEPS", "Polish", "levenberg_marquardt", "polish_point"]

#: Levenberg-Marquardt steps at most (the best point met is kept).
LM_STEPS = 40
#: Stop after this many steps without a new smallest relative gradient.
LM_PATIENCE = 5
#: Stop when the relative gradient is below this (far below any gtol).
LM_FLOOR = 1e-13
#: Newton steps after L-BFGS-B in the fallback (each kept only while the gradient falls).
NEWTON_STEPS = 12

Certifier = Callable[[Sequence[np.ndarray], Statistics], Certificate]


@dataclass(frozen=True)
class Polish:
    """The polished point and its certificate (``dlcert check --polish``).

    method : ``levenberg-marquardt`` or ``lbfgs+newton`` (module doc).
    certificate : the certificate of the polished point ``W'``.
    distance : ``||W' - W||_F``; relative_distance : ``distance / ||W||_F``.
    loss_before, loss_after : ``L(W)``, ``L(W')`` (``1/2 sum ||.||^2``, as in the certificate).
    loss_change : ``L(W') - L(W)``; relative_loss_change : ``loss_change / (syy/2)``.
    relative_gradient_before, relative_gradient_after : the scale-free gradient norms.
    steps : Levenberg-Marquardt (or, in the fallback, Newton) steps to the polished point.
    lbfgs_iterations : L-BFGS-B iterations (0 if not run).
    seconds : wall time of the polish and its certification.
    point : the weights ``W'`` (not part of :meth:`to_dict`; ``--polish-out`` saves them).
    """

    method: str
    certificate: Certificate
    distance: float
    relative_distance: float
    loss_before: float
    loss_after: float
    loss_change: float
    relative_loss_change: float
    relative_gradient_before: float
    relative_gradient_after: float
    steps: int
    lbfgs_iterations: int
    seconds: float
    point: tuple[np.ndarray, ...] = field(repr=False, compare=False)

    @property
    def verdict(self) -> Verdict:
        return self.certificate.verdict

    def sentence(self) -> str:
        """One line: how far the stored point is from the certified point, and what that is."""
        what = self.verdict.value.replace("_", " ")
        return (
            f"the stored point is {100 * self.relative_distance:.3g}% (||W' - W||_F = "
            f"{self.distance:.3e}) from a point certified {what}; the loss changes by "
            f"{self.loss_change:+.3e} ({100 * self.relative_loss_change:+.3g}% of syy/2)"
        )

    def _repr_html_(self) -> str:
        from dlcert.render.notebook import polish_html

        return polish_html(self)

    def __rich__(self) -> Any:
        from dlcert.render.notebook import polish_rich

        return polish_rich(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe: the numbers, the method and the polished point's full certificate."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("point", "certificate"):
                continue
            out[f.name] = to_builtin(getattr(self, f.name))
        out["verdict"] = self.verdict.value
        out["sentence"] = self.sentence()
        out["check"] = self.certificate.to_dict()
        return out


def _operator_scale(op: object, n: int) -> float:
    """``||H||_2`` roughly: five power iterations from a fixed start (a scale, not a decision)."""
    v = np.random.default_rng(0).standard_normal(n)
    v /= np.linalg.norm(v)
    norm = 0.0
    for _ in range(5):
        v = op.matvec(v)  # type: ignore[attr-defined]
        norm = float(np.linalg.norm(v))
        if not norm > 0 or not math.isfinite(norm):
            return 0.0
        v /= norm
    return norm


def levenberg_marquardt(
    stats: Statistics, weights: Sequence[np.ndarray], steps: int = LM_STEPS
) -> tuple[list[np.ndarray], int]:
    """Levenberg-Marquardt on ``grad L = 0`` (module doc): the best point met and its step count."""
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    shapes = [w.shape for w in ws]
    best, best_rel, best_k = ws, relative_gradient(ws, stats), 0
    rel, stale = best_rel, 0
    for k in range(1, steps + 1):
        if not rel > LM_FLOOR or stale >= LM_PATIENCE:
            break
        cache = PointCache.at(ws, stats)
        g = flatten(gradient(ws, stats, cache))
        op = hessian_operator(stats, cache)
        damp = _operator_scale(op, g.size) * rel
        maxiter = max(100, min(10 * g.size, 5000))
        tol = min(1e-2, max(rel, 1e-15))  # LSMR tolerance tol^2: looser while far from critical
        from scipy.sparse.linalg import lsmr  # lazy: scipy.sparse.linalg is slow to import

        d = lsmr(op, -g, damp=damp, atol=tol * tol, btol=tol * tol, maxiter=maxiter)[0]
        ws = [w + dw for w, dw in zip(ws, unflatten(d, shapes), strict=True)]
        if not all(np.all(np.isfinite(w)) for w in ws):
            break
        rel = relative_gradient(ws, stats)
        if rel < best_rel:
            best, best_rel, best_k, stale = ws, rel, k, 0
        else:
            stale += 1
    return best, best_k


def polish_point(
    weights: Sequence[np.ndarray],
    stats: Statistics,
    certifier: Certifier,
    *,
    steps: int = LM_STEPS,
) -> Polish:
    """Polish ``weights`` to a critical point and certify it with ``certifier`` (module doc).

    ``certifier(weights, stats)`` is the certification entry point with the caller's options
    (tolerances, precision) bound, so the polished point is judged exactly like the stored one.
    """
    start = time.perf_counter()
    w0 = [np.asarray(w, dtype=np.float64) for w in weights]
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        rel0 = relative_gradient(w0, stats)
        loss0 = loss(w0, stats)
        method, nit = "levenberg-marquardt", 0
        point, kept = levenberg_marquardt(stats, w0, steps)
        cert = certifier(point, stats)
        if cert.verdict is Verdict.NOT_CRITICAL:
            method = "lbfgs+newton"
            trained, _ok, nit, _msg = train(stats, w0)
            point, kept = newton_polish(stats, trained, NEWTON_STEPS)
            cert = certifier(point, stats)
        loss1 = loss(point, stats)
        rel1 = relative_gradient(point, stats)
    distance = math.sqrt(sum(frobenius(a - b) ** 2 for a, b in zip(point, w0, strict=True)))
    norm0 = math.sqrt(sum(frobenius(w) ** 2 for w in w0))
    half_syy = 0.5 * stats.syy
    return Polish(
        method=method,
        certificate=cert,
        distance=distance,
        relative_distance=distance / norm0 if norm0 > 0 else math.inf,
        loss_before=loss0,
        loss_after=loss1,
        loss_change=loss1 - loss0,
        relative_loss_change=(loss1 - loss0) / half_syy if half_syy > 0 else math.nan,
        relative_gradient_before=rel0,
        relative_gradient_after=rel1,
        steps=kept,
        lbfgs_iterations=nit,
        seconds=time.perf_counter() - start,
        point=tuple(point),
    )
