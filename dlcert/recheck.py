"""Re-checking a saved escape witness (SPEC §4): is ``L(W') < L(W)`` beyond rounding?

This is the check a sceptical reader runs on a saddle verdict: it needs only the two points and
the data's statistics, and repeats none of the search that produced the witness. The decrease
is evaluated stably (``R' - R`` by a telescoping sum, then ``<E, dR> + 1/2 <dR Sxx, dR>``) with
a forward bound on its rounding error (:func:`dlcert.witness.stable_decrease`), on the same
exactly rescaled copy as ``check`` (:mod:`dlcert.normalize`: powers of two, so the decrease is
the same number; some terms of the bound are products of norms, which rescaling hidden units
inflates): a witness of a point whose units are scaled by 2^25 was confirmed by ``check`` and
refused by ``recheck`` (bound 397 against a decrease of 1.55) before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from dlcert.certificate import to_builtin
from dlcert.errors import InputError
from dlcert.normalize import normalize
from dlcert.objective import loss_of_product, residual_correlation
from dlcert.products import product, widths_of
from dlcert.statistics import Statistics
from dlcert.witness import stable_decrease

RECHECK_SCHEMA = "dlcert.recheck/1"

#: Relative slack on the claimed radius (the distance is recomputed in float64).
RADIUS_RTOL = 1e-12


@dataclass(frozen=True)
class WitnessCheck:
    """The re-check of a witness ``W'`` against the point ``W``.

    confirmed : ``decrease > rounding_bound`` and ``distance <= claimed_radius`` (when claimed).
    loss, witness_loss : ``L(W)`` and ``L(W')`` from the statistics (for reading, not deciding).
    decrease : ``L(W) - L(W')`` evaluated stably; rounding_bound : bound on its rounding error.
    distance : ``||W' - W||_F``; claimed_radius : the radius stored with the witness, if any.
    order : the order stored with the witness, if any. reasons : why it is not confirmed.
    """

    confirmed: bool
    loss: float
    witness_loss: float
    decrease: float
    rounding_bound: float
    distance: float
    claimed_radius: float | None
    order: int | None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": RECHECK_SCHEMA}
        for f in fields(self):
            out[f.name] = to_builtin(getattr(self, f.name))
        return out


def _decrease(ws: list[np.ndarray], ps: list[np.ndarray], stats: Statistics) -> tuple[float, float]:
    """``L(W) - L(W')`` and its rounding bound, on the exactly rescaled copy when it is exact."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        nws, nstats, norm = normalize(ws, stats)
        nps = norm.to_normalized(ps)
        if nps is not None:
            d, b = stable_decrease(nws, nps, nstats, residual_correlation(product(nws), nstats))
            if math.isfinite(d) and math.isfinite(b):
                return d / norm.loss_factor, b / norm.loss_factor
    return stable_decrease(ws, ps, stats, residual_correlation(product(ws), stats))


def recheck(
    weights: Sequence[np.ndarray],
    point: Sequence[np.ndarray],
    stats: Statistics,
    *,
    claimed_radius: float | None = None,
    order: int | None = None,
) -> WitnessCheck:
    """Re-check that ``point`` (``W'``) has a lower loss than ``weights`` (``W``)."""
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    ps = [np.asarray(p, dtype=np.float64) for p in point]
    if widths_of(ws) != widths_of(ps):
        raise InputError(
            f"the witness has widths {widths_of(ps)} but the point has widths {widths_of(ws)}"
        )
    R = product(ws)
    decrease, bound = _decrease(ws, ps, stats)
    distance = math.sqrt(sum(float(np.sum((p - w) ** 2)) for p, w in zip(ps, ws, strict=True)))
    reasons = []
    if not decrease > bound:
        reasons.append(
            f"L(W) - L(W') = {decrease:.6e} does not exceed its rounding bound {bound:.3e}"
        )
    if claimed_radius is not None and distance > claimed_radius * (1 + RADIUS_RTOL):
        reasons.append(f"||W' - W|| = {distance:.6g} exceeds the claimed radius {claimed_radius:.6g}")
    return WitnessCheck(
        confirmed=not reasons,
        loss=loss_of_product(R, stats),
        witness_loss=loss_of_product(product(ps), stats),
        decrease=decrease,
        rounding_bound=bound,
        distance=distance,
        claimed_radius=claimed_radius,
        order=order,
        reasons=reasons,
    )
