"""An exactly rescaled copy of the problem, so that no decision depends on units.

Criticality, the gap, ranks and the inertia of the Hessian do not change under
``X -> cx X``, ``Y -> cy Y`` and ``W_i -> a_i W_i`` with ``prod a_i = cy / cx`` (SPEC §4,
"invariances"), nor under the change of basis ``W_i -> D_i W_i D_(i-1)^-1`` of the hidden
layers (Sylvester's law of inertia), here with diagonal ``D_i``: one factor per hidden unit.
dlcert certifies the copy with ``lambda_max(Sxx) ~ 1``, ``syy ~ 1``, every hidden unit's
incoming and outgoing weights of equal norm and layers of equal norm, and maps results back.
Every factor is a power of two, so the copy holds exactly the same numbers (no rounding), and
data at 1e+-150, weights at 1e+-100 or hidden units rescaled by 2^+-30 neither overflow nor
underflow in the products nor inflate the rounding bounds (which are not invariant under
rescaling units: ``||A|| ||W|| ||B||`` grows with the spread of the units' scales).
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
    unit_exponents : for each hidden layer ``i = 1..N-1``, unit ``j`` is rescaled by
        ``2^unit_exponents[i-1][j]``: row ``j`` of ``W_i`` is multiplied and column ``j`` of
        ``W_(i+1)`` divided by it (the product is unchanged). Empty: none.
    """

    x_exponent: int
    y_exponent: int
    layer_exponents: tuple[int, ...]
    unit_exponents: tuple[tuple[int, ...], ...] = ()

    @property
    def loss_factor(self) -> float:
        """Normalized loss = stored loss * ``loss_factor`` (``4^y_exponent``)."""
        return math.ldexp(1.0, 2 * self.y_exponent)

    def to_normalized(self, weights: Sequence[np.ndarray]) -> tuple[np.ndarray, ...] | None:
        """Map stored weights (e.g. a witness point) into the normalized copy's units, or ``None``
        when an entry would leave the normal float64 range (the map would not be exact)."""
        ws = [np.asarray(w, dtype=np.float64) for w in weights]
        out = tuple(np.ldexp(w, e) for w, e in
                    zip(_scale_units(ws, self.unit_exponents, 1), self.layer_exponents, strict=True))
        return out if all(_exact_copy(w, o) for w, o in zip(ws, out, strict=True)) else None

    def to_stored(self, weights: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Map normalized weights back to the stored units (exactly)."""
        out = tuple(np.ldexp(w, -e) for w, e in zip(weights, self.layer_exponents, strict=True))
        return _scale_units(out, self.unit_exponents, -1)

    def entry_exponents(self, i: int, shape: tuple[int, ...]) -> np.ndarray:
        """``e`` with normalized ``W_i[a, b]`` = stored ``W_i[a, b] * 2^e[a, b]`` (``i`` 0-based)."""
        rows = np.zeros(shape[0], dtype=np.int64)
        cols = np.zeros(shape[1], dtype=np.int64)
        if self.unit_exponents:
            if i < len(self.unit_exponents):
                rows = np.asarray(self.unit_exponents[i], dtype=np.int64)
            if i > 0:
                cols = np.asarray(self.unit_exponents[i - 1], dtype=np.int64)
        return self.layer_exponents[i] + rows[:, None] - cols[None, :]


def _scale_units(
    weights: Sequence[np.ndarray], units: Sequence[Sequence[int]], sign: int
) -> tuple[np.ndarray, ...]:
    """Rows of ``W_i`` times ``2^(sign u_i)``, columns of ``W_(i+1)`` times ``2^(-sign u_i)``."""
    out = list(weights)
    for i, u in enumerate(units):
        e = sign * np.asarray(u, dtype=np.int64)
        if not np.any(e):
            continue
        out[i] = np.ldexp(out[i], e[:, None])
        out[i + 1] = np.ldexp(out[i + 1], -e[None, :])
    return tuple(out)


#: Sweeps of the per-unit balancing (each is O(parameters); it converges in a few).
UNIT_SWEEPS = 30

#: Hidden units are rebalanced only when some unit's factor reaches ``2^UNIT_EXPONENT_MIN``
#: (1024). Below that the stored scaling is kept: a dense change of basis of condition 1e6 leaves
#: units within 2^7 of balance, and there rebalancing moved a strict saddle's channel from
#: strength 0.39 to 8e-9 (the channel strength is not invariant under rescaling units).
UNIT_EXPONENT_MIN = 10

#: A unit whose contribution ``||column|| ||row||`` to the product is at most this times the
#: largest in its layer is not balanced (one of its sides may be rounding noise); its relatively
#: larger side is brought to the size of the balanced units instead.
UNIT_NOISE = 1e-20


def unit_exponents(weights: Sequence[np.ndarray]) -> tuple[tuple[int, ...], ...]:
    """Power-of-two exponents balancing every hidden unit: after rescaling, the norm of its
    incoming row in ``W_i`` and of its outgoing column in ``W_(i+1)`` agree within a factor 2.

    Coordinate descent on ``sum_i ||D_i W_i D_(i-1)^-1||_F^2`` over the log-scales (convex; the
    exact minimiser of one unit's scale is ``sqrt(||column|| / ||row||)``, rounded to a power of
    two), as LAPACK's ``gebal`` balances a matrix. A unit whose row or column is zero (nothing
    reaches it, or nothing reads it) or whose contribution to the product is at rounding level
    has no balancing scale: its relatively larger side is brought to the geometric mean of the
    balanced units' norms in its layer. Returns ``()`` when no unit's
    factor reaches ``2^UNIT_EXPONENT_MIN``, or when a rescaled entry would leave the normal
    float64 range (the copy would not be exact).
    """
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    n = len(ws)
    if n < 2:
        return ()
    exps = [np.zeros(int(w.shape[0]), dtype=np.int64) for w in ws[:-1]]

    def logs(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(x > 0, np.log2(np.where(x > 0, x, 1.0)), -np.inf)

    def norms(h: int) -> tuple[np.ndarray, np.ndarray]:
        return _norms(ws[h], 1), _norms(ws[h + 1], 0)

    for _ in range(UNIT_SWEEPS):
        moved = False
        for h in range(n - 1):
            rows, cols = norms(h)
            # A unit is balanced when its contribution ||column|| ||row|| to the product (which
            # its own scale does not change) is beyond rounding; otherwise a side that is
            # rounding noise would be scaled up to the size of the layer.
            contrib = rows * cols
            live = contrib > UNIT_NOISE * float(np.max(contrib, initial=0.0))
            step = np.zeros_like(exps[h])
            step[live] = np.rint(0.5 * (logs(cols[live]) - logs(rows[live]))).astype(np.int64)
            rest = ~live & ((rows > 0) | (cols > 0))
            if np.any(live) and np.any(rest):
                # The relatively larger side of any other unit goes to the balanced units' size.
                target = float(np.mean(0.5 * (logs(rows[live]) + logs(cols[live]))))
                col_side = logs(cols) - logs(np.max(cols)) > logs(rows) - logs(np.max(rows))
                want = np.where(col_side, logs(cols) - target, target - logs(rows))
                step[rest] = np.rint(want[rest]).astype(np.int64)
            if np.any(step):
                moved = True
                exps[h] += step
                ws[h] = np.ldexp(ws[h], step[:, None])
                ws[h + 1] = np.ldexp(ws[h + 1], -step[None, :])
        if not moved:
            break
    if max(int(np.max(np.abs(e), initial=0)) for e in exps) < UNIT_EXPONENT_MIN:
        return ()
    out = tuple(tuple(int(x) for x in e) for e in exps)
    if not all(_exact_copy(w, s) for w, s in zip(weights, ws, strict=True)):
        return ()
    return out


def _norms(a: np.ndarray, axis: int) -> np.ndarray:
    """Row (``axis=1``) or column (``axis=0``) 2-norms that neither overflow nor underflow."""
    top = np.max(np.abs(a), axis=axis, initial=0.0)
    safe = np.where(top > 0, top, 1.0)
    scaled = a / (safe[:, None] if axis == 1 else safe[None, :])
    return np.asarray(top * np.sqrt(np.sum(scaled * scaled, axis=axis)))


def _exact_copy(stored: np.ndarray, scaled: np.ndarray) -> bool:
    """Every entry stays finite, and a non-zero one stays normal (so scaling by 2^e is exact)."""
    a = np.abs(scaled)
    tiny = np.finfo(np.float64).tiny
    return bool(np.all(np.isfinite(a)) and np.all((a == 0) == (np.asarray(stored) == 0))
                and np.all((a == 0) | (a >= tiny)))


def _exponent_of(x: float) -> int:
    """``e`` with ``2^e`` near ``x`` (x > 0 finite), 0 otherwise."""
    if not (x > 0 and math.isfinite(x)):
        return 0
    return math.frexp(x)[1] - 1


def normalize(
    weights: Sequence[np.ndarray], stats: Statistics
) -> tuple[tuple[np.ndarray, ...], Statistics, Normalization]:
    """The rescaled problem and the exponents that produced it.

    Hidden units are balanced first (:func:`unit_exponents`); then ``2^x ~ 1/sqrt(trace Sxx)``,
    ``2^y ~ 1/sqrt(syy)``, and the layer exponents move the factor ``2^(y-x)`` into the layers
    and equalise their norms (zero layers keep exponent 0).
    """
    units = unit_exponents(weights)
    weights = _scale_units([np.asarray(w, dtype=np.float64) for w in weights], units, 1)
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
    norm = Normalization(ex, ey, tuple(exps), units)
    scaled = tuple(np.ldexp(np.asarray(w, dtype=np.float64), e) for w, e in zip(weights, exps, strict=True))
    new_stats = Statistics(
        Sxx=np.ldexp(stats.Sxx, 2 * ex),
        Syx=np.ldexp(stats.Syx, ex + ey),
        syy=math.ldexp(stats.syy, 2 * ey),
        m=stats.m,
        eps=stats.eps,
    )
    return scaled, new_stats, norm
