"""Second-order channels: where a missing direction can be routed at order 2 (docs/strictness.md).

At a critical point, for layers ``l1 < l2`` let ``G = A_l2^T E B_l1^T`` (the residual seen
between the two layers) and ``M = W_(l2-1)...W_(l1+1)``. Along ``V`` moving only these two layers
by rank-one matrices ``a z q^T`` (layer l1) and ``b p y^T`` (layer l2), the t^2 coefficient of
``L(W + tV) - L(W)`` is

    1/2 ||a P_1 + b P_2||^2 + a b (y^T M z)(p^T G q),
    P_1 = A_l1 z q^T B_l1 S,   P_2 = A_l2 p y^T B_l2 S.

If one side is a *dead end* (``A_l1 z = 0``, so ``P_1 = 0``; or ``y^T B_l2 S = 0``, so ``P_2 = 0``)
while ``(y^T M z)(p^T G q) != 0``, this 2x2 form is indefinite: the point is a strict saddle,
with an explicit order-2 direction. A *channel* is such a pair: ``G != 0`` and
``M null(A_l1) != 0`` or ``null((B_l2 S)^T)^T M != 0``. Its strength (scale-free) is
``sigma_max(G) / (||A_l2|| ||E|| ||B_l1||)`` (the coupling) times ``sigma_max(M N) / ||M||`` (the
reach). A channel is absent only when one of its two factors is at rounding level: near the
boundary of its orbit (a component shrunk to 1e-5 by a change of basis) a genuine channel has
coupling and reach 1e-5 each, and their product 1e-10 sat below the noise of a point 1e-10 from
critical; the *weaker factor* (the largest over pairs of the smaller factor) is what absence reads.

This module measures the channels and builds their directions; nothing here decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from dlcert.budget import check_deadline
from dlcert.certificate import Channel, MissingDirection
from dlcert.objective import PointCache
from dlcert.optimum import Whitening
from dlcert.products import chain, null_space


def _norm2(a: np.ndarray) -> float:
    return float(np.linalg.norm(a, 2)) if a.size and np.any(a) else 0.0


def _top(a: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return float(s[0]), u[:, 0], vt[0]


def channel_pairs(n: int, limit: int = 4096) -> list[tuple[int, int]]:
    """All pairs ``l1 < l2`` (at most ``limit``, adjacent pairs first)."""
    pairs = [(a, a + gap) for gap in range(1, n) for a in range(1, n - gap + 1)]
    return pairs[:limit]


#: Missing directions reported per channel search (largest s_l first).
MISSING_SHOWN = 8


def strongest_channel(
    cache: PointCache, wh: Whitening, rtol: float, *, deadline: float = math.inf,
    learned: Sequence[int] | None = None, norms: tuple[list[float], list[float], list[float]] | None = None,
) -> tuple[Channel, list[tuple[np.ndarray, ...]]]:
    """The strongest channel and the order-2 directions (one per channel found, unit norm).

    With the learned set ``learned`` (1-based), the channel also records, per missing direction
    ``l`` (not in S, ``s_l`` beyond rounding; the largest :data:`MISSING_SHOWN`), which layers
    its input and output directions reach and the strongest channel carrying it alone: the
    inputs of the criterion, so a reader can follow it (``G = -sum_l s_l (A^T u_l)(B S v_l)^T``).
    ``norms``: the spectral norms ``(||A_j||, ||B_j S||, ||B_j||)`` when already computed.

    Raises :class:`dlcert.budget.OutOfTime` when ``deadline`` passes: a partial search would
    understate the strength, so there is no partial answer.
    """
    W = cache.weights
    n = len(W)
    e_norm = _norm2(cache.E)
    best = Channel(0.0, None, None)
    weaker = 0.0
    directions: list[tuple[np.ndarray, ...]] = []
    if n < 2 or e_norm == 0.0:
        return best, directions
    check_deadline(deadline)
    nz: dict[int, np.ndarray] = {}
    ny: dict[int, np.ndarray] = {}
    for layer in range(1, n + 1):
        check_deadline(deadline)
        nz[layer] = null_space(cache.A[layer - 1], rtol)
        ny[layer] = null_space((cache.B[layer - 1] @ wh.S).T, rtol)
    routes = _Routes(cache, wh, rtol, learned, e_norm, norms)
    best = replace(best, input_dead_ends=tuple(k for k, v in nz.items() if v.shape[1]),
                   output_dead_ends=tuple(k for k, v in ny.items() if v.shape[1]))
    for l1, l2 in channel_pairs(n):
        check_deadline(deadline)
        A2, B1 = cache.A[l2 - 1], cache.B[l1 - 1]
        G = A2.T @ cache.E @ B1.T
        scale_g = _norm2(A2) * e_norm * _norm2(B1)
        if scale_g == 0.0 or not np.any(G):
            continue
        sg, p, q = _top(G)
        g_rel = sg / scale_g
        M = chain(W, l1 + 1, l2 - 1)
        m_norm = _norm2(M)
        if m_norm == 0.0:
            continue
        for dead_end in ("input", "output"):
            if dead_end == "input":
                N = nz[l1]
                if N.shape[1] == 0:
                    continue
                sk, a_vec, b_vec = _top(M @ N)
                z, y = N @ b_vec, a_vec
            else:
                N = ny[l2]
                if N.shape[1] == 0:
                    continue
                sk, a_vec, b_vec = _top(N.T @ M)
                y, z = N @ a_vec, b_vec
            strength = g_rel * sk / m_norm
            routes.offer(l1, l2, dead_end, sk / m_norm)
            if strength > best.strength:
                best = replace(best, strength=strength, layers=(l1, l2), dead_end=dead_end)
            weaker = max(weaker, min(g_rel, sk / m_norm))
            V = _direction(cache, wh, l1, l2, z, q, p, y, sg * float(y @ M @ z))
            if V is not None:
                directions.append(V)
    return replace(best, weaker_factor=weaker, missing=routes.result()), directions


class _Routes:
    """Per missing direction ``l``: ``||A_j^T u_l|| / ||A_j||`` and ``||B_i S v_l|| / ||B_i S||``
    for every layer, and the strongest pair offered (coupling times reach)."""

    def __init__(self, cache: PointCache, wh: Whitening, rtol: float, learned: Sequence[int] | None,
                 e_norm: float, norms: tuple[list[float], list[float], list[float]] | None) -> None:
        self.cache, self.rtol, self.e_norm = cache, rtol, e_norm
        self.ls: list[int] = []
        if learned is not None and wh.s.size:
            held = set(learned)
            floor = rtol * float(wh.s[0])
            self.ls = [k for k in range(1, wh.s.size + 1)
                       if k not in held and wh.s[k - 1] > floor][:MISSING_SHOWN]
        self.s = {k: float(wh.s[k - 1]) for k in self.ls}
        n = len(cache.weights)
        self.out: dict[int, list[float]] = {}
        self.inp: dict[int, list[float]] = {}
        self.best: dict[int, tuple[float, tuple[int, int] | None, str | None]] = {
            k: (0.0, None, None) for k in self.ls}
        if not self.ls:
            self.a_norm = self.bs_norm = self.b_norm = [0.0] * n
            return
        if norms is None:
            norms = ([_norm2(a) for a in cache.A], [_norm2(b @ wh.S) for b in cache.B],
                     [_norm2(b) for b in cache.B])
        a_norm, bs_norm, self.b_norm = norms
        ks = np.array(self.ls) - 1
        U, SV = wh.U[:, ks], wh.S @ wh.Vt[ks].T  # u_l and S v_l as columns
        none = np.zeros(ks.size)
        out = np.array([np.linalg.norm(cache.A[j].T @ U, axis=0) / a_norm[j] if a_norm[j] else none
                        for j in range(n)])
        inp = np.array([np.linalg.norm(cache.B[i] @ SV, axis=0) / bs_norm[i] if bs_norm[i] else none
                        for i in range(n)])
        for c, k in enumerate(self.ls):
            self.out[k] = [float(x) for x in out[:, c]]
            self.inp[k] = [float(x) for x in inp[:, c]]
        self.a_norm, self.bs_norm = a_norm, bs_norm

    def offer(self, l1: int, l2: int, dead_end: str, reach: float) -> None:
        scale = self.a_norm[l2 - 1] * self.e_norm * self.b_norm[l1 - 1]
        if not scale > 0:
            return
        for k in self.ls:
            coupling = (self.s[k] * self.out[k][l2 - 1] * self.a_norm[l2 - 1]
                        * self.inp[k][l1 - 1] * self.bs_norm[l1 - 1]) / scale
            if coupling * reach > self.best[k][0]:
                self.best[k] = (coupling * reach, (l1, l2), dead_end)

    def result(self) -> tuple[MissingDirection, ...]:
        def reached(values: list[float]) -> list[int]:
            return [i + 1 for i, x in enumerate(values) if x > self.rtol]

        return tuple(
            MissingDirection(k, self.s[k], reached(self.inp[k]), reached(self.out[k]), *self.best[k])
            for k in self.ls
        )


def _direction(
    cache: PointCache, wh: Whitening, l1: int, l2: int,
    z: np.ndarray, q: np.ndarray, p: np.ndarray, y: np.ndarray, coupling: float,
) -> tuple[np.ndarray, ...] | None:
    """The unit direction ``(a z q^T, b p y^T)`` minimising the 2x2 t^2 form."""
    W = cache.weights
    V1, V2 = np.outer(z, q), np.outer(p, y)
    P1 = cache.A[l1 - 1] @ V1 @ cache.B[l1 - 1] @ wh.S
    P2 = cache.A[l2 - 1] @ V2 @ cache.B[l2 - 1] @ wh.S
    n1, n2 = float(np.linalg.norm(V1)), float(np.linalg.norm(V2))
    if n1 == 0.0 or n2 == 0.0:
        return None
    P1, P2, c = P1 / n1, P2 / n2, coupling / (n1 * n2)
    form = 0.5 * np.array([[np.vdot(P1, P1), np.vdot(P1, P2) + c], [np.vdot(P1, P2) + c, np.vdot(P2, P2)]])
    lam, vec = np.linalg.eigh(form)
    if not lam[0] < 0:
        return None
    a, b = vec[:, 0]
    out = [np.zeros_like(w) for w in W]
    out[l1 - 1] = a * V1 / n1
    out[l2 - 1] = out[l2 - 1] + b * V2 / n2
    return tuple(out)
