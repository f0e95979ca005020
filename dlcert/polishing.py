"""``--polish``: from a stored point to the nearest critical point, and that point certified.

Mini-batch training stops at a relative gradient of about 1e-2, far above any ``gtol`` a
certificate can honestly use, so the stored point is ``not_critical`` -- and stays so: polishing
never changes the stored point's own verdict. It answers a different question: *where is the
critical point this run was heading to, and what is it?*

Method (full batch, on the statistics only, nothing grows with m), reusing the optimiser behind
``landscape --trials`` (:mod:`dlcert.trials`):

1. ``newton``: up to :data:`NEWTON_STEPS` minimum-norm Newton steps ``H d = -g`` (MINRES on the
   Hessian-vector-product operator), each kept only while the relative gradient falls. Near a
   critical point this converges to the *nearest* one, whatever its kind.
2. If that point is still not critical (Newton stalls far from a critical point), ``lbfgs+newton``:
   L-BFGS-B on the loss from the stored point, then the Newton steps again. This goes downhill,
   so it finds a nearby minimum rather than the nearest critical point; the report names the
   method used.

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
from dlcert.objective import frobenius, loss
from dlcert.statistics import Statistics
from dlcert.trials import polish as newton_polish
from dlcert.trials import relative_gradient, train

__all__ = ["NEWTON_STEPS", "Polish", "polish_point"]

#: Newton steps per phase (each kept only while the relative gradient norm falls).
NEWTON_STEPS = 12

Certifier = Callable[[Sequence[np.ndarray], Statistics], Certificate]


@dataclass(frozen=True)
class Polish:
    """The polished point and its certificate (``dlcert check --polish``).

    method : ``newton`` or ``lbfgs+newton`` (module doc).
    certificate : the certificate of the polished point ``W'``.
    distance : ``||W' - W||_F``; relative_distance : ``distance / ||W||_F``.
    loss_before, loss_after : ``L(W)``, ``L(W')`` (``1/2 sum ||.||^2``, as in the certificate).
    loss_change : ``L(W') - L(W)``; relative_loss_change : ``loss_change / (syy/2)``.
    relative_gradient_before, relative_gradient_after : the scale-free gradient norms.
    newton_steps : Newton steps kept; lbfgs_iterations : L-BFGS-B iterations (0 if not run).
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
    newton_steps: int
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


def polish_point(
    weights: Sequence[np.ndarray],
    stats: Statistics,
    certifier: Certifier,
    *,
    steps: int = NEWTON_STEPS,
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
        method, nit = "newton", 0
        point, kept = newton_polish(stats, w0, steps)
        cert = certifier(point, stats)
        if cert.verdict is Verdict.NOT_CRITICAL:
            method = "lbfgs+newton"
            trained, _ok, nit, _msg = train(stats, w0)
            point, kept = newton_polish(stats, trained, steps)
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
        newton_steps=kept,
        lbfgs_iterations=nit,
        seconds=time.perf_counter() - start,
        point=tuple(point),
    )
