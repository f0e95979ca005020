"""An exactly rescaled copy of the problem, so that no decision depends on units.

Criticality, the gap, ranks and the inertia of the Hessian do not change under
``X -> cx X``, ``Y -> cy Y`` and ``W_i -> a_i W_i`` with ``prod a_i = cy / cx`` (SPEC §4,
"invariances"). dlcert certifies the copy with ``lambda_max(Sxx) ~ 1``, ``syy ~ 1`` and layers
of equal norm, and maps results back. Every factor is a power of two, so the copy holds exactly
the same numbers (no rounding), and data at 1e+-150 or weights at 1e+-100 neither overflow nor
underflow in the products.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlcert.objective import frobenius
from dlcert.statistics import Statistics


@dataclass(frozen=True)
class Normalization:
    """Power-of-two exponents of the rescaling (stored value * 2^exponent = normalized value).

    x_exponent : X is multiplied by ``2^x_exponent``. y_exponent : Y by ``2^y_exponent``.
    layer_exponents : ``W_i`` by ``2^layer_exponents[i-1]``; they sum to ``y_exponent - x_exponent``.
    """

    x_exponent: int
    y_exponent: int
    layer_exponents: tuple[int, ...]

    @property
    def loss_factor(self) -> float:
        """Normalized loss = stored loss * ``loss_factor`` (``4^y_exponent``)."""
        return math.ldexp(1.0, 2 * self.y_exponent)

    def to_stored(self, weights: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Map normalized weights back to the stored units (exactly)."""
        return tuple(np.ldexp(w, -e) for w, e in zip(weights, self.layer_exponents, strict=True))


def _exponent_of(x: float) -> int:
    """``e`` with ``2^e`` near ``x`` (x > 0 finite), 0 otherwise."""
    if not (x > 0 and math.isfinite(x)):
        return 0
    return math.frexp(x)[1] - 1


def normalize(
    weights: Sequence[np.ndarray], stats: Statistics
) -> tuple[tuple[np.ndarray, ...], Statistics, Normalization]:
    """The rescaled problem and the exponents that produced it.

    ``2^x ~ 1/sqrt(trace Sxx)``, ``2^y ~ 1/sqrt(syy)``; the layer exponents move the factor
    ``2^(y-x)`` into the layers and equalise their norms (zero layers keep exponent 0).
    """
    trace = float(np.trace(stats.Sxx)) if stats.Sxx.size else 0.0
    ex = -(_exponent_of(trace) // 2)
    ey = -(_exponent_of(stats.syy) // 2)
    logs = [(_exponent_of(frobenius(w)) if np.any(w) else None) for w in weights]
    live = [i for i, e in enumerate(logs) if e is not None]
    exps = [0] * len(weights)
    dead = [i for i, e in enumerate(logs) if e is None]
    need = ey - ex  # the exponents must sum to this for the rescaled problem to be equivalent
    if dead:
        # The product is zero: live layers go to unit norm and zero layers (which stay zero)
        # absorb the rest. The Hessian at the point depends only on the rescaled non-zero
        # layers and data, so it is O(1) whatever the zero layers absorbed.
        for i in live:
            exps[i] = -logs[i]  # type: ignore[operator]
        rest = need - sum(exps)
        base, extra = divmod(rest, len(dead))
        for pos, i in enumerate(dead):
            exps[i] = base + (1 if pos < extra else 0)
    else:
        total = sum(logs[i] for i in live)  # type: ignore[misc]
        base, extra = divmod(total + need, len(live))  # sum of log-norms after scaling
        for pos, i in enumerate(live):
            exps[i] = base + (1 if pos < extra else 0) - logs[i]  # type: ignore[operator]
    norm = Normalization(ex, ey, tuple(exps))
    scaled = tuple(np.ldexp(np.asarray(w, dtype=np.float64), e) for w, e in zip(weights, exps, strict=True))
    new_stats = Statistics(
        Sxx=np.ldexp(stats.Sxx, 2 * ex),
        Syx=np.ldexp(stats.Syx, ex + ey),
        syy=math.ldexp(stats.syy, 2 * ey),
        m=stats.m,
        eps=stats.eps,
    )
    return scaled, new_stats, norm
