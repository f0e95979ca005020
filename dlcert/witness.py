"""Escape witnesses for saddles (SPEC §4): a nearby point with a certified lower loss.

Along a line ``W + tV`` the product ``R(t) = prod_i (W_i + t V_i)`` is a matrix polynomial of
degree <= N, so ``L(W + tV) - L(W) = sum_q a_q t^q`` is a polynomial of degree <= 2N whose
coefficients are computed exactly from the statistics. A witness is a direction V
(``||V||_F = 1``) whose lowest non-zero coefficient ``a_q`` is negative, and a step t within
a radius where the decrease, evaluated stably, beats a bound on its rounding error.

Directions come from the structure the rank rule reveals:

* *misplaced* (strict saddle, S not a top set): rotate a learned direction u_i towards a
  missing larger one u_j through W_N and W_1: ``R(t) = (I + t u_j u_i^T) R (I + t S v_i v_j^T S^{-1})``;
  the loss changes by ``t^2 s_i (s_i - s_j) + t^4 s_i^2 / 2`` (order 2).
* *chain* (any saddle): move layers ``l_1 < ... < l_q`` by rank-one ``z_m y_m^T`` with
  ``A_{l_m} z_m = 0`` (m < q) and ``y_m^T B_{l_m} S = 0`` (m > 1), so every term of R(t) of order
  below q vanishes except through gapped pairs, and the order-q term routes the direction of
  ``A_{l_q}^T E B_{l_1}^T`` through the rank-deficient layers. q = 2 gives negative curvature,
  q >= 3 the higher-order escape of a non-strict saddle.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlcert.budget import activate, check_deadline, deactivate
from dlcert.certificate import Witness
from dlcert.objective import PointCache, frobenius
from dlcert.optimum import Whitening
from dlcert.products import Weights, chain, null_space, product
from dlcert.roundoff import PointBounds, decrease_bound, rank_one_coefficients
from dlcert.statistics import Statistics

#: A coefficient counts as non-zero when it exceeds this multiple of its forward error bound
#: (the bound itself is already a worst case: gamma = 4 * (sum of widths + dx dy) * eps).
SAFETY = 2.0

#: Largest number of layers for which every subset of moving layers is tried.
EXHAUSTIVE_LAYERS = 8

#: Beyond ``EXHAUSTIVE_LAYERS``, at most this many linked layer sets (:func:`linked_layer_sets`),
#: found by visiting at most ``LINKED_VISITS`` partial sets.
LINKED_SETS = 512
LINKED_VISITS = 50_000


@dataclass(frozen=True)
class Direction:
    """A unit direction ``V`` (``||V||_F = 1``) and the layers it moves (1-based)."""

    V: tuple[np.ndarray, ...]
    layers: tuple[int, ...]
    kind: str  # "misplaced" or "chain"


def product_polynomial(weights: Weights, V: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Coefficients ``C_0..C_N`` of ``R(t) = prod_i (W_i + t V_i)`` (``C_0 = R``)."""
    coeffs = [np.eye(weights[0].shape[1])]
    for W, D in zip(weights, V, strict=True):
        moving = bool(np.any(D))
        new = [W @ c for c in coeffs] + ([np.zeros((W.shape[0], coeffs[0].shape[1]))] if moving else [])
        if moving:
            for q, c in enumerate(coeffs):
                new[q + 1] = new[q + 1] + D @ c
        coeffs = new
    return coeffs


def loss_polynomial(
    weights: Weights, V: Sequence[np.ndarray], stats: Statistics, E: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``a_1..a_{2N}`` of ``L(W + tV) - L(W)`` and a rounding bound for each.

    ``a_q = <E, C_q> + 1/2 sum_{i+j=q, i,j>=1} <C_i Sxx, C_j>`` (index 0 of the result is t^1).
    The bound is a forward error bound: the same recurrences run on absolute values give
    elementwise magnitudes ``|C|_q`` of every coefficient, and each computed quantity is off by
    at most ``gamma`` times its magnitude (``gamma`` = a few eps times the inner dimensions).
    """
    C = product_polynomial(weights, V)
    Cabs = product_polynomial([np.abs(w) for w in weights], [np.abs(v) for v in V])
    deg = len(C) - 1
    CS = [c @ stats.Sxx for c in C]
    absS = np.abs(stats.Sxx)
    CabsS = [c @ absS for c in Cabs]
    gamma = polynomial_gamma(weights, stats)
    # |E| is bounded by |R| |Sxx| + |Syx|; its rounding error by gamma times that.
    E_abs = Cabs[0] @ absS + np.abs(stats.Syx)
    a = np.zeros(2 * deg)
    bound = np.zeros(2 * deg)
    for q in range(1, deg + 1):
        a[q - 1] += float(np.vdot(E, C[q]))
        bound[q - 1] += gamma * float(np.vdot(E_abs, Cabs[q]))
    for i in range(1, deg + 1):
        for j in range(1, deg + 1):
            a[i + j - 1] += 0.5 * float(np.vdot(CS[i], C[j]))
            bound[i + j - 1] += 0.5 * gamma * float(np.vdot(CabsS[i], Cabs[j]))
    return a, bound


#: Widths from which rank-one directions are evaluated in factored form (below it the dense
#: products are cheap, and the small cases keep their dense arithmetic bit for bit).
FACTORED_MIN_WIDTH = 256

#: Relative residual below which a layer of a direction counts as the rank-one ``z y^T``.
RANK_ONE_RTOL = 1e-13


def rank_one_factors(V: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray] | None] | None:
    """``(z_i, y_i)`` with ``V_i = z_i y_i^T`` for every non-zero layer (``None`` for zero layers),
    or ``None`` when a layer is not rank one to :data:`RANK_ONE_RTOL` (O(d^2) per layer)."""
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for v in V:
        if not np.any(v):
            out.append(None)
            continue
        j = int(np.argmax(np.sum(v * v, axis=0)))
        z = v[:, j]
        i = int(np.argmax(np.abs(z)))
        y = v[i, :] / z[i]
        err = v - np.outer(z, y)
        if not float(np.sqrt(np.vdot(err, err))) <= RANK_ONE_RTOL * float(np.sqrt(np.vdot(v, v))):
            return None
        out.append((np.ascontiguousarray(z), np.ascontiguousarray(y)))
    return out


def _vec_down(v: np.ndarray, weights: Weights, i: int) -> np.ndarray:
    """``v^T W_{i-1} ... W_1`` (0-based ``i``; the row vector through the layers below ``i``)."""
    for w in reversed(weights[:i]):
        v = v @ w
    return v


def _factored_coefficients(
    weights: Weights, factors: Sequence[tuple[np.ndarray, np.ndarray] | None]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(P_q, Q_q)`` with ``C_q = P_q Q_q^T`` for q = 0..deg (``q = 0`` left empty: C_0 = R).

    ``C_(q+1) <- W_i C_(q+1) + z_i (y_i^T C_q)`` through each moving layer: every term is rank
    one, so the factors have at most one column per moving layer and each step costs
    matrix-vector products only.
    """
    dy, dx = weights[-1].shape[0], weights[0].shape[1]
    deg = sum(1 for f in factors if f is not None)
    P: list[list[np.ndarray]] = [[] for _ in range(deg + 1)]
    Q: list[list[np.ndarray]] = [[] for _ in range(deg + 1)]
    moved = 0
    for i, (w, f) in enumerate(zip(weights, factors, strict=True)):
        new: list[tuple[int, np.ndarray, np.ndarray]] = []
        if f is not None:
            z, y = f
            # z (y^T C_q), with C_q the coefficient below layer i (before W_i multiplies it).
            new.append((1, z, _vec_down(y, weights, i)))
            for q in range(1, moved + 1):
                if P[q]:
                    new.append((q + 1, z, np.column_stack(Q[q]) @ (y @ np.column_stack(P[q]))))
            moved += 1
        P = [[w @ p for p in ps] for ps in P]
        for q, p, qq in new:
            P[q].append(p)
            Q[q].append(qq)
    return [(np.column_stack(P[q]), np.column_stack(Q[q])) if P[q] else (np.zeros((dy, 0)), np.zeros((dx, 0)))
            for q in range(deg + 1)]


def factored_polynomial(
    weights: Weights, factors: Sequence[tuple[np.ndarray, np.ndarray] | None],
    stats: Statistics, E: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`loss_polynomial` for a direction whose moving layers are rank one, ``V_i = z_i y_i^T``.

    ``C_q = P_q Q_q^T`` (:func:`_factored_coefficients`): O(d^2) per layer and coefficient
    instead of the dense O(d^3). The same recurrences on absolute values give the magnitudes
    ``|C|_q = P'_q Q'_q^T`` of the forward error bound, and ``|E| <= |R| |Sxx| + |Syx|`` enters
    through row vectors pushed through ``|W_N| ... |W_1|``: coefficients and bounds are the same
    quantities as in the dense form (only the order of the sums differs, within the same gamma).
    """
    absW = [np.abs(w) for w in weights]
    mats = _factored_coefficients(weights, factors)
    amats = _factored_coefficients(
        absW, [None if f is None else (np.abs(f[0]), np.abs(f[1])) for f in factors])
    deg = len(mats) - 1
    Sxx = np.asarray(stats.Sxx)
    absS = np.abs(Sxx)
    absSyx = np.abs(stats.Syx)
    gamma = polynomial_gamma(weights, stats)
    SQ = [Sxx @ Qm for _, Qm in mats]
    aSQ = [absS @ Qm for _, Qm in amats]
    a = np.zeros(2 * deg)
    bound = np.zeros(2 * deg)
    for q in range(1, deg + 1):
        Pm, Qm = mats[q]
        a[q - 1] += float(np.sum((E.T @ Pm) * Qm))
        Pam, Qam = amats[q]
        # <|R| |Sxx| + |Syx|, P' Q'^T> with |R| = |W_N| ... |W_1| applied to the columns of P'.
        top = Pam.T
        for wa in reversed(absW):
            top = top @ wa
        e_abs = float(np.sum(top * aSQ[q].T)) + float(np.sum((absSyx.T @ Pam) * Qam))
        bound[q - 1] += gamma * e_abs
    for i in range(1, deg + 1):
        for j in range(1, deg + 1):
            a[i + j - 1] += 0.5 * float(np.sum((mats[i][0].T @ mats[j][0]) * (mats[i][1].T @ SQ[j])))
            bound[i + j - 1] += 0.5 * gamma * float(
                np.sum((amats[i][0].T @ amats[j][0]) * (amats[i][1].T @ aSQ[j])))
    return a, bound


def factored_curvature_scale(
    weights: Weights, factors: Sequence[tuple[np.ndarray, np.ndarray] | None],
    stats: Statistics, E: np.ndarray,
) -> float:
    """:func:`curvature_scale` from the factored coefficients (``||P Q^T||_F^2 = <P^T P, Q^T Q>``)."""
    mats = _factored_coefficients(weights, factors)
    gn = 0.0
    if len(mats) > 1:
        P1, Q1 = mats[1]
        gn = 0.5 * float(np.sum((P1.T @ P1) * (Q1.T @ (stats.Sxx @ Q1))))
    en = 0.0
    if len(mats) > 2:
        P2, Q2 = mats[2]
        en = float(np.linalg.norm(E)) * math.sqrt(max(float(np.sum((P2.T @ P2) * (Q2.T @ Q2))), 0.0))
    return gn + en


def polynomial_gamma(weights: Weights, stats: Statistics) -> float:
    """Relative rounding of each coefficient of :func:`loss_polynomial` (its bound / magnitude):
    the chain's inner dimensions plus the ``dy * dx`` terms of the final inner products."""
    dims = sum(w.shape[0] + w.shape[1] for w in weights) + stats.dx + stats.dy + stats.dx * stats.dy
    return 4.0 * dims * float(np.finfo(np.float64).eps)


def leading_order(a: np.ndarray, bound: np.ndarray) -> int | None:
    """Lowest q >= 2 whose coefficient exceeds its rounding bound (``None`` if none does).

    The first-order coefficient is ``<grad L, V>``: at a point already judged critical it is
    bounded by the gradient norm, and the step's sign is chosen so it cannot raise the loss.
    """
    for q in range(1, a.size):
        if abs(a[q]) > SAFETY * bound[q]:
            return q + 1
    return None


def best_step(a: np.ndarray, radius: float) -> float:
    """The t in ``[-radius, radius]`` minimising ``sum_q a_q t^q``."""
    poly = np.concatenate([a[::-1], [0.0]])  # highest power first, constant 0
    deriv = np.polyder(poly)
    candidates = [-radius, radius]
    if deriv.size > 1 and np.any(deriv):
        for root in np.roots(deriv):
            if abs(root.imag) < 1e-12 * max(1.0, abs(root.real)) and abs(root.real) <= radius:
                candidates.append(float(root.real))
    values = [float(np.polyval(poly, t)) for t in candidates]
    return candidates[int(np.argmin(values))]


def misplaced_direction(
    weights: Weights, wh: Whitening, i: int, j: int
) -> Direction | None:
    """Rotate learned direction ``i`` towards missing direction ``j`` (1-based; needs N >= 2)."""
    n = len(weights)
    if n < 2:
        return None
    ui, uj = wh.U[:, i - 1], wh.U[:, j - 1]
    vi, vj = wh.Vt[i - 1], wh.Vt[j - 1]
    V = [np.zeros_like(w) for w in weights]
    V[n - 1] = np.outer(uj, ui @ weights[n - 1])
    V[0] = np.outer(weights[0] @ (wh.S @ vi), vj @ wh.S_pinv)
    return _normalised(V, (1, n), "misplaced")


class NullSpaces:
    """Lazily computed null spaces ``null(A_l)`` and ``null((B_l S)^T)`` per layer."""

    def __init__(self, cache: PointCache, wh: Whitening, rtol: float) -> None:
        self._cache, self._wh, self._rtol = cache, wh, rtol
        self._above: dict[int, np.ndarray] = {}
        self._below: dict[int, np.ndarray] = {}

    def above(self, layer: int) -> np.ndarray:
        """Basis of ``{z : A_layer z = 0}``."""
        if layer not in self._above:
            self._above[layer] = null_space(self._cache.A[layer - 1], self._rtol)
        return self._above[layer]

    def below(self, layer: int) -> np.ndarray:
        """Basis of ``{y : y^T B_layer S = 0}``."""
        if layer not in self._below:
            self._below[layer] = null_space((self._cache.B[layer - 1] @ self._wh.S).T, self._rtol)
        return self._below[layer]


def chain_direction(
    cache: PointCache, nulls: NullSpaces, layers: Sequence[int], rtol: float
) -> Direction | None:
    """The rank-one chain direction through ``layers`` (1-based, increasing), or None.

    Each link from layer ``lo`` to the next moving layer ``hi`` carries ``y_hi^T M z_lo != 0``
    through the fixed layers ``M`` between them, with ``z_lo`` in ``null(A_lo)`` and ``y_hi`` in
    ``null((B_hi S)^T)`` so that the lower-order products vanish. When no such pair exists the link
    is taken free (``M``'s top singular pair): the lower-order products then need not vanish, but
    their first-order terms can still be orthogonal to the residual and their squares come at
    twice their order (e.g. a last layer that writes only into directions carrying no target).
    The exact loss polynomial (:func:`evaluate`) decides what the direction is worth either way.
    """
    W = cache.weights
    q = len(layers)
    z: list[np.ndarray | None] = [None] * q
    y: list[np.ndarray | None] = [None] * q
    for m in range(q - 1):
        lo, hi = layers[m], layers[m + 1]
        Nz = nulls.above(lo)
        Ny = nulls.below(hi)
        M = chain(W, lo + 1, hi - 1)
        floor = rtol * max(1.0, float(np.linalg.norm(M, 2)))
        K = Ny.T @ M @ Nz if Nz.shape[1] and Ny.shape[1] else np.zeros((0, 0))
        uu, ss, vv = np.linalg.svd(K) if K.size else (None, np.zeros(0), None)
        if ss.size and ss[0] > floor and uu is not None and vv is not None:
            z[m] = Nz @ vv[0]
            y[m + 1] = Ny @ uu[:, 0]
            continue
        uu, ss, vv = np.linalg.svd(M)  # a free link
        if not ss.size or ss[0] <= floor:
            return None
        z[m] = vv[0]
        y[m + 1] = uu[:, 0]
    first, last = layers[0], layers[-1]
    G = cache.A[last - 1].T @ cache.E @ cache.B[first - 1].T
    if not np.any(G):
        return None
    uu, ss, vv = np.linalg.svd(G)
    z[q - 1] = -uu[:, 0]
    y[0] = vv[0]
    V = [np.zeros_like(w) for w in W]
    for m, layer in enumerate(layers):
        zm, ym = z[m], y[m]
        assert zm is not None and ym is not None
        V[layer - 1] = np.outer(zm, ym)
    return _normalised(V, tuple(layers), "chain")


def _normalised(V: list[np.ndarray], layers: tuple[int, ...], kind: str) -> Direction | None:
    norm = math.sqrt(sum(float(np.vdot(v, v)) for v in V))
    if norm == 0.0 or not math.isfinite(norm):
        return None
    return Direction(tuple(v / norm for v in V), layers, kind)


def candidate_layer_sets(n: int, orders: Sequence[int]) -> list[tuple[int, ...]]:
    """Moving-layer sets to try: all subsets of the given sizes for small N, windows beyond."""
    out: list[tuple[int, ...]] = []
    for q in orders:
        if q > n:
            continue
        if n <= EXHAUSTIVE_LAYERS:
            out.extend(itertools.combinations(range(1, n + 1), q))
        else:
            out.extend(tuple(range(s, s + q)) for s in range(1, n - q + 2))
            out.extend((a, b) for a, b in itertools.combinations(range(1, n + 1), 2) if q == 2)
    return list(dict.fromkeys(out))


class LinkRatios:
    """How non-zero each fixed stretch and each end coupling is, relative to its rounding scale:
    ``||W_(hi-1)...W_(lo+1)||_F / prod ||W||_F`` and ``||A_g^T E B_f^T||_F / (||A_g|| ||E|| ||B_f||)``
    (Frobenius norms), computed once per search for :func:`linked_layer_sets` (O(N^2) products)."""

    def __init__(self, cache: PointCache, deadline: float = math.inf) -> None:
        W = cache.weights
        self.n = n = len(W)
        norms = [frobenius(w) for w in W]
        self.link = [[0.0] * (n + 2) for _ in range(n + 2)]
        for lo in range(1, n + 1):
            check_deadline(deadline)
            M: np.ndarray | None = None
            scale = 1.0
            self.link[lo][lo + 1] = math.inf  # adjacent layers: the identity between them
            for hi in range(lo + 2, n + 1):
                w = W[hi - 2]  # W_(hi-1) joins the fixed stretch
                M = w if M is None else w @ M
                scale *= norms[hi - 2]
                self.link[lo][hi] = frobenius(M) / scale if scale > 0 else 0.0
        e_norm = frobenius(cache.E)
        a_norm = [frobenius(a) for a in cache.A]
        b_norm = [frobenius(b) for b in cache.B]
        self.ends: dict[tuple[int, int], float] = {}
        for g in range(2, n + 1):
            check_deadline(deadline)
            left = cache.A[g - 1].T @ cache.E
            for f in range(1, g):
                scale = a_norm[g - 1] * e_norm * b_norm[f - 1]
                self.ends[(f, g)] = frobenius(left @ cache.B[f - 1].T) / scale if scale > 0 else 0.0


def linked_layer_sets(ratios: LinkRatios, rtol: float, limit: int = LINKED_SETS) -> list[tuple[int, ...]]:
    """Moving-layer sets ``l_1 < ... < l_q`` (``q >= 2``) whose chain can carry a direction, shortest
    first: every fixed stretch between consecutive moving layers is non-zero within rounding
    (its :class:`LinkRatios` ratio above ``rtol``) and so is the residual seen between the ends
    (``A_(l_q)^T E B_(l_1)^T``). For deep networks, where the subsets are too many to try, this
    finds the escapes whose moving layers are not contiguous (a non-strict saddle of depth 10 with
    zero product whose escape moves layers 2, 4, 5 and 10 was missed by windows)."""
    n = ratios.n
    out: list[tuple[int, ...]] = []
    visits = [0]

    def extend(path: list[int], q: int) -> None:
        visits[0] += 1
        if len(out) >= limit or visits[0] > LINKED_VISITS:
            return
        if len(path) == q:
            if ratios.ends[(path[0], path[-1])] > rtol:
                out.append(tuple(path))
            return
        for hi in range(path[-1] + 1, n + 1 - (q - len(path) - 1)):
            if ratios.link[path[-1]][hi] > rtol:
                extend([*path, hi], q)

    for q in range(2, n + 1):
        for first in range(1, n + 1):
            extend([first], q)
    return out


def evaluate(
    weights: Weights,
    direction: Direction,
    stats: Statistics,
    cache: PointCache,
    radius: float,
    *,
    deadline: float = math.inf,
) -> Witness | None:
    """Turn a direction into a witness: exact polynomial, best step, stable decrease.

    When the a-priori float64 bounds decide nothing (ill-conditioned layers), the coefficients
    of a rank-one direction are recomputed with the a-posteriori bounds of
    :mod:`dlcert.roundoff` (raises :class:`dlcert.budget.OutOfTime` first if ``deadline`` has
    passed). Every bound used is rigorous (``docs/tolerances.md``).
    """
    wide = max(max(w.shape) for w in weights) >= FACTORED_MIN_WIDTH
    factors = rank_one_factors(direction.V) if wide else None
    if factors is not None:
        a, bound = factored_polynomial(weights, factors, stats, cache.E)
    else:
        a, bound = loss_polynomial(weights, direction.V, stats, cache.E)
    q = leading_order(a, bound)
    if q is None or a[q - 1] >= 0:
        # The a-priori bound runs on |W| chains; the a-posteriori one (dlcert.roundoff) is built
        # from the computed products and holds at any width (rank-one directions).
        check_deadline(deadline)
        active = activate(deadline)
        try:
            tight = _tight_coefficients(weights, direction, stats)
        finally:
            deactivate(active)
        if tight is not None:
            q_t = leading_order(*tight)
            if q_t is not None and tight[0][q_t - 1] < 0:
                a, bound, q = tight[0], tight[1], q_t
    if q is None or a[q - 1] >= 0:
        return None
    t = best_step(a, radius)
    if t == 0.0:
        return None
    check_deadline(deadline)
    point = tuple(w + t * v for w, v in zip(weights, direction.V, strict=True))
    active = activate(deadline)
    try:
        decrease, rounding = stable_decrease(weights, point, stats, cache.E)
    finally:
        deactivate(active)
    if not decrease > rounding:
        return None
    return Witness(
        kind="negative_curvature" if q == 2 else "higher_order",
        radius=abs(t),
        loss_decrease=decrease,
        rounding_bound=rounding,
        order=q,
        coefficient=float(a[q - 1]),
        layers_moved=list(direction.layers),
        point=point,
        coefficient_scale=(
            None if q != 2
            else factored_curvature_scale(weights, factors, stats, cache.E) if factors is not None
            else curvature_scale(weights, direction.V, stats, cache.E)
        ),
    )


def curvature_scale(weights: Weights, V: Sequence[np.ndarray], stats: Statistics, E: np.ndarray) -> float:
    """``1/2 ||C_1 S||^2 + ||E|| ||C_2||``: the size of the two terms of the t^2 coefficient.

    ``C_1``, ``C_2`` are the first and second-order changes of the product along V (signed
    products, so a change of basis between layers does not inflate them as absolute values do).
    """
    C = product_polynomial(weights, V)
    gn = 0.5 * float(np.vdot(C[1] @ stats.Sxx, C[1])) if len(C) > 1 else 0.0
    en = float(np.linalg.norm(E)) * float(np.linalg.norm(C[2])) if len(C) > 2 else 0.0
    return gn + en


def stable_decrease(
    weights: Weights, point: Weights, stats: Statistics, E: np.ndarray
) -> tuple[float, float]:
    """``L(W) - L(W')`` via ``R' - R = sum_i W'_N..W'_{i+1} (W'_i - W_i) W_{i-1}..W_1``.

    Returns the decrease and a rigorous bound on its rounding error. Below
    :data:`FACTORED_MIN_WIDTH` the a-priori bound comes first (the same sum on absolute values
    gives the magnitudes every rounding error is proportional to); when it swamps the decrease
    (under an ill-conditioned change of basis between layers its |W| chains overestimate by
    orders of magnitude), and always from that width on, the a-posteriori bound of
    :func:`dlcert.roundoff.decrease_bound` is used: built from the computed products, it works
    at any width (``docs/tolerances.md``, "Witness rounding bounds").
    """
    finite = all(np.isfinite(p).all() for p in point)
    if max(max(w.shape) for w in weights) >= FACTORED_MIN_WIDTH and finite:
        return decrease_bound(point_bounds(weights, stats), point)
    decrease, bound = _decrease_in(np.float64, weights, point, stats, E)
    if not decrease > bound and finite:
        decrease, bound = decrease_bound(point_bounds(weights, stats), point)
    return decrease, bound


#: The point's shared bound data, kept while a witness search runs (:func:`find_witness`; the
#: point's arrays are held, so their ids stay unique) and released when it ends.
_MEMO: list[tuple[tuple[int, ...], tuple[object, ...], PointBounds]] = []
_SEARCHES = [0]


def point_bounds(weights: Weights, stats: Statistics) -> PointBounds:
    """:class:`dlcert.roundoff.PointBounds` of the point, computed once per witness search."""
    key = (*(id(w) for w in weights), id(stats))
    for k, _, pb in _MEMO:
        if k == key:
            return pb
    pb = PointBounds(weights, stats)
    if _SEARCHES[0] > 0:
        _MEMO[:] = [(key, (*weights, stats), pb)]
    return pb


def _tight_coefficients(
    weights: Weights, direction: Direction, stats: Statistics
) -> tuple[np.ndarray, np.ndarray] | None:
    """The coefficients with the a-posteriori bounds of :func:`dlcert.roundoff.rank_one_coefficients`
    (``None`` unless every moving layer of the direction is rank one)."""
    factors = rank_one_factors(direction.V)
    if factors is None or not all(np.isfinite(w).all() for w in weights):
        return None
    return rank_one_coefficients(point_bounds(weights, stats), factors)


def _decrease_in(
    dtype: type, weights: Weights, point: Weights, stats: Statistics, E: np.ndarray | None
) -> tuple[float, float]:
    """The decrease and its forward error bound, computed in ``dtype`` throughout."""
    ws: list[np.ndarray] = [np.asarray(w, dtype=dtype) for w in weights]
    ps: list[np.ndarray] = [np.asarray(p, dtype=dtype) for p in point]
    Sxx: np.ndarray = np.asarray(stats.Sxx, dtype=dtype)
    Syx: np.ndarray = np.asarray(stats.Syx, dtype=dtype)
    if E is None:
        E = product(ws) @ Sxx - Syx
    dR = _telescoped_change(ws, ps)
    dR_abs = _telescoped_change([np.abs(w) for w in ws], [np.abs(p) for p in ps],
                                deltas=[np.abs(p - w) for p, w in zip(ps, ws, strict=True)])
    change = np.vdot(E, dR) + 0.5 * np.vdot(dR @ Sxx, dR)
    # the chain's inner dimensions plus the dy * dx terms of the two inner products
    dims = sum(w.shape[0] + w.shape[1] for w in weights) + stats.dx + stats.dy + stats.dx * stats.dy
    gamma = 8.0 * dims * float(np.finfo(dtype).eps)
    absS = np.abs(Sxx)
    E_abs = product([np.abs(w) for w in ws]) @ absS + np.abs(Syx)
    scale = np.vdot(E_abs, dR_abs) + np.vdot(dR_abs @ absS, dR_abs)
    return float(-change), float(gamma * scale)


def _telescoped_change(
    weights: Weights, point: Weights, deltas: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """``sum_i P_N..P_{i+1} D_i W_{i-1}..W_1`` with ``D_i = P_i - W_i`` unless given."""
    n = len(weights)
    dtype = weights[0].dtype
    dR = np.zeros((weights[-1].shape[0], weights[0].shape[1]), dtype=dtype)
    above = np.eye(weights[-1].shape[0], dtype=dtype)
    below = [np.eye(weights[0].shape[1], dtype=dtype)]
    for w in weights[:-1]:
        below.append(w @ below[-1])
    for i in range(n - 1, -1, -1):
        delta = deltas[i] if deltas is not None else point[i] - weights[i]
        if np.any(delta):
            dR = dR + above @ delta @ below[i]
        above = above @ point[i]
    return dR


def default_radius(weights: Weights) -> float:
    """Search radius: 10% of ``||W||_F``, at least 1 (so all-zero weights still get one)."""
    norm = math.sqrt(sum(float(np.vdot(w, w)) for w in weights))
    return max(1.0, 0.1 * norm)


#: Factors by which the null-space cutoff is coarsened when the chains at the products' own
#: cutoff give no witness of the preferred order (never beyond ``MAX_NULL_RTOL``).
COARSER_NULL_SPACES = (1e3, 1e6)
MAX_NULL_RTOL = 1e-6


def find_witness(
    weights: Weights,
    stats: Statistics,
    wh: Whitening,
    cache: PointCache,
    rtol: float,
    *,
    index_set: Sequence[int] | None = None,
    orders: Sequence[int] | None = None,
    radius: float | None = None,
    min_preferred_order: int = 2,
    extra: Sequence[Direction] = (),
    deadline: float = math.inf,
) -> tuple[Witness | None, Direction | None]:
    """Search structured directions; return the best witness (lowest order, then largest decrease).

    Witnesses of order ``>= min_preferred_order`` rank first (a non-strict saddle's witness
    should show its higher-order escape even when rounding leaves a tiny t^2 coefficient).
    Also returns the best order-2 direction (for the Hessian's Rayleigh quotient), if any.
    Raises :class:`dlcert.budget.OutOfTime` when ``deadline`` passes before every direction was
    tried (the ranking is over all of them, so a partial search has no answer).
    """
    _SEARCHES[0] += 1
    try:
        return _search(weights, stats, wh, cache, rtol, index_set, orders, radius,
                       min_preferred_order, extra, deadline)
    finally:
        _SEARCHES[0] -= 1
        if not _SEARCHES[0]:
            _MEMO.clear()


def _search(
    weights: Weights, stats: Statistics, wh: Whitening, cache: PointCache, rtol: float,
    index_set: Sequence[int] | None, orders: Sequence[int] | None, radius: float | None,
    min_preferred_order: int, extra: Sequence[Direction], deadline: float,
) -> tuple[Witness | None, Direction | None]:
    n = len(weights)
    rad = radius if radius is not None else default_radius(weights)
    directions: list[Direction] = list(extra)
    if index_set is not None:
        missing = [j for j in range(1, wh.s.size + 1) if j not in index_set and wh.s[j - 1] > 0]
        learned = sorted(index_set)
        if missing and learned and min(missing) < max(learned):
            d = misplaced_direction(weights, wh, max(learned), min(missing))
            if d is not None:
                directions.append(d)
    best: Witness | None = None
    curvature: tuple[float, Direction] | None = None
    # Dead ends are null spaces judged at the products' rounding scale; a change of basis between
    # layers blurs them (a dead end of an exact point read as rank at cutoff 1e-13 under condition
    # 1e4), so when no witness of the preferred order is found the chains are rebuilt at coarser
    # cutoffs. Any direction is safe to try: its loss polynomial and decrease are checked exactly.
    ratios: LinkRatios | None = None
    for cutoff in [rtol, *(rtol * f for f in COARSER_NULL_SPACES if rtol * f <= MAX_NULL_RTOL)]:
        if best is not None and best.order >= min_preferred_order:
            break
        nulls = NullSpaces(cache, wh, cutoff)
        batches = [candidate_layer_sets(n, orders or range(2, n + 1))]
        if n > EXHAUSTIVE_LAYERS and orders is None:
            ratios = ratios or LinkRatios(cache, deadline)
            batches.append(linked_layer_sets(ratios, cutoff))
        tried: set[tuple[int, ...]] = set()
        for batch in batches:
            if best is not None and best.order >= min_preferred_order:
                break  # linked sets only when windows and pairs found nothing preferred
            for layers in batch:
                check_deadline(deadline)
                if layers in tried:
                    continue
                tried.add(layers)
                d = chain_direction(cache, nulls, layers, cutoff)
                if d is not None:
                    directions.append(d)
            for d in directions:
                check_deadline(deadline)
                w = evaluate(weights, d, stats, cache, rad, deadline=deadline)
                if w is None:
                    continue
                if w.order == 2 and (curvature is None or w.coefficient < curvature[0]):
                    curvature = (w.coefficient, d)
                if best is None or _rank(w, min_preferred_order) < _rank(best, min_preferred_order):
                    best = w
            directions = []
    return best, (curvature[1] if curvature else None)


def _rank(w: Witness, min_preferred_order: int) -> tuple[bool, int, float]:
    """Lower ranks first: preferred order, then lowest order, then (order 2) the most negative
    curvature of a unit direction (what a strictness threshold judges), else the largest decrease."""
    return (w.order < min_preferred_order, w.order, w.coefficient if w.order == 2 else -w.loss_decrease)
