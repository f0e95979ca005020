"""Rigorous a-posteriori rounding bounds for the witness arithmetic, from the float64 products.

The a-priori bounds of :mod:`dlcert.witness` run every recurrence on absolute values
(``|W_N| ... |W_1|``): under a change of basis between layers those chains overestimate the
rounding error by many orders of magnitude (``docs/tolerances.md``, "Witness rounding bounds").
Here every bound is built from the products that were actually computed:

* A chain ``X = M_n ... M_1`` computed as ``X_k = fl(M_k X_(k-1))`` obeys the *exact* identity
  ``X_n - M_n...M_1 = sum_k S_(k+1) l_k`` with ``S_(k+1) = M_n ... M_(k+1)`` (exact) and local
  errors ``|l_k| <= Delta_k = gamma_c |M_k| |X_(k-1)|`` (``gamma_c = c u / (1 - c u)``, ``c`` the
  inner dimension, ``u = 2^-53``): one extra product of absolute values per step.
* The error of a scalar ``<G, X_n>`` is then ``sum_k <S_(k+1)^T G, l_k>``, bounded by
  ``sum_k <|H_k|, Delta_k>`` with ``H_k`` the adjoint computed backwards (``H_k = M_(k+1)^T
  H_(k+1)``), plus the adjoint's own error times ``||Delta_k||_F`` (a product of two rounding
  terms, bounded with norms).
* Norm-wise bounds ``||X_n - M_n...M_1||_F <= sum_k ||S_(k+1)||_2 ||Delta_k||_F`` (spectral
  norms of the computed suffix products, plus their own error) serve only the second-order terms.

Every bound is a sum of non-negative float64 terms; it is multiplied by :data:`SAFETY_FACTOR` to
cover the rounding of that arithmetic itself (relative ``gamma_K`` with ``K`` far below 10^7).
Overflow is excluded by the caller (non-finite values decide nothing); underflow adds at most
:data:`UNDERFLOW` absolutely. The products call :func:`dlcert.budget.check` between steps, so a
search running under an active deadline stops within one product of it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from dlcert.budget import check
from dlcert.statistics import Statistics

#: Unit roundoff of float64 (round to nearest).
U = 2.0**-53

#: Covers the rounding of the bound arithmetic (sums of non-negative terms; see module doc).
SAFETY_FACTOR = 1.01

#: Absolute allowance for gradual underflow in the products (far below any decrease we certify).
UNDERFLOW = 2.0**-900

#: Largest number of moving layers for which the rank-one coefficients are bounded here (the
#: exact assembly runs over pairs of subsets of the moving layers: 4^m terms).
MAX_MOVING = 6


def gamma(k: int, u: float = U) -> float:
    """``gamma_k = k u / (1 - k u)``: the relative error bound of a length-k inner product
    computed with unit roundoff ``u`` (float64's by default)."""
    return k * u / (1.0 - k * u)


#: Unit roundoff of ``np.longdouble`` (2^-64 for x87 extended precision; float64's where
#: longdouble is float64).
U_EXTENDED = float(np.finfo(np.longdouble).eps) / 2.0


def norm_bound(M: np.ndarray) -> float:
    """An upper bound on ``||M||_2`` and on ``|| |M| ||_2``: ``min(||M||_F, sqrt(||M||_1 ||M||_inf))``."""
    if M.size == 0:
        return 0.0
    a = np.abs(M)
    f = math.sqrt(float(np.sum(a * a)))
    o = math.sqrt(float(np.max(np.sum(a, axis=0))) * float(np.max(np.sum(a, axis=1))))
    return min(f, o) * SAFETY_FACTOR


def fro(M: np.ndarray) -> float:
    """An upper bound on ``||M||_F``."""
    return math.sqrt(float(np.sum(M * M))) * SAFETY_FACTOR if M.size else 0.0


def abs_dot(a: np.ndarray, b: np.ndarray) -> float:
    """An upper bound on ``<|a|, |b|>``."""
    return float(np.sum(np.abs(a) * np.abs(b))) * SAFETY_FACTOR


def exact_dot(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``<a, b>`` (elementwise products, then an exactly rounded sum) and its error bound
    ``u <|a|, |b|> + u |result|``."""
    prod = (a * b).ravel()
    s = math.fsum(prod.tolist())
    return s, (U * float(np.sum(np.abs(prod))) * (1 + 2 * U) + U * abs(s)) * SAFETY_FACTOR


class Chain:
    """``X = M_n ... M_1`` computed left to right, with what its error bounds need.

    ``in_err[k]`` bounds the relative error of the stored ``M_k`` itself (``|M_k - M_k*| <=
    in_err |M_k|``: a difference of two stored arrays, say). ``suffix[k]`` (optional) is an
    upper bound on ``||M_n* ... M_(k+2)*||_2`` (the exact product that multiplies step k's error;
    1 for the last step); without it the suffix products are computed when :attr:`rho` is asked.
    """

    def __init__(self, mats: Sequence[np.ndarray], in_err: Sequence[float] | None = None,
                 suffix: Sequence[float] | None = None, extended: bool = False) -> None:
        self.mats = list(mats)
        n = len(self.mats)
        self.in_err = list(in_err) if in_err is not None else [0.0] * n
        self._suffix = list(suffix) if suffix is not None else None
        # extended: the products are formed in np.longdouble (error gamma with its unit roundoff;
        # the bound's own arithmetic stays float64, covered by SAFETY_FACTOR). ``X`` then holds
        # the extended products and :attr:`value` rounds the last one to float64.
        self._u = U_EXTENDED if extended else U
        self.X = [self.mats[0].astype(np.longdouble) if extended else self.mats[0]]
        self.D: list[np.ndarray | None] = [
            self.in_err[0] * np.abs(self.mats[0]) * SAFETY_FACTOR if self.in_err[0] else None]
        for k in range(1, n):
            check()
            M = self.mats[k]
            prev = self.X[-1]
            self.X.append((M.astype(np.longdouble) if extended else M) @ prev)
            coef = gamma(M.shape[1], self._u) + self.in_err[k]
            prev64 = prev.astype(np.float64) if extended else prev
            self.D.append(coef * SAFETY_FACTOR * (np.abs(M) @ np.abs(prev64)))
        self._nb = [norm_bound(m) for m in self.mats]
        # grow[k], prod[k]: over the steps after k, ``prod (1 + gamma_c + 2 in_err) - 1`` and the
        # product of the factors' norm bounds (the crude |M|-chain bounds of second-order terms).
        self._grow = [0.0] * n
        self._prod = [1.0] * n
        g, p = 1.0, 1.0
        for k in range(n - 1, -1, -1):
            self._grow[k], self._prod[k] = g - 1.0, p
            g *= 1.0 + gamma(self.mats[k].shape[1], self._u) + 2.0 * self.in_err[k]
            p *= self._nb[k]
        self._rho: float | None = None

    @property
    def value(self) -> np.ndarray:
        return self.X[-1].astype(np.float64) if self.X[-1].dtype != np.float64 else self.X[-1]

    def suffix_bounds(self) -> list[float]:
        """Upper bounds on the spectral norms of the exact products after each step."""
        if self._suffix is None:
            n = len(self.mats)
            out = [1.0] * n
            S: np.ndarray | None = None
            for k in range(n - 2, -1, -1):
                check()
                S = self.mats[k + 1] if S is None else S @ self.mats[k + 1]
                out[k] = norm_bound(S) + self._grow[k] * self._prod[k] * SAFETY_FACTOR
            self._suffix = out
        return self._suffix

    @property
    def rho(self) -> float:
        """An upper bound on ``||X_n - M_n* ... M_1*||_F``."""
        if self._rho is None:
            sb = self.suffix_bounds()
            self._rho = SAFETY_FACTOR * sum(
                s * fro(d) for s, d in zip(sb, self.D, strict=True) if d is not None)
        return self._rho

    def adj(self, G: np.ndarray) -> float:
        """An upper bound on ``|<G, X_n - M_n* ... M_1*>|`` (``G`` exact, the shape of ``X_n``)."""
        H = G
        gn = fro(G)
        total = 0.0
        for k in range(len(self.mats) - 1, -1, -1):
            d = self.D[k]
            if d is not None:
                total += abs_dot(H, d) + self._grow[k] * self._prod[k] * gn * fro(d)
            if k > 0:
                check()
                H = self.mats[k].T @ H
        return total * SAFETY_FACTOR

    def adj_rank1(self, g: np.ndarray, w: np.ndarray) -> float:
        """:meth:`adj` for ``G = g w^T`` in O(d^2) per step (vectors through the chain)."""
        h = g
        gn = fro(g) * fro(w)
        aw = np.abs(w)
        total = 0.0
        for k in range(len(self.mats) - 1, -1, -1):
            d = self.D[k]
            if d is not None:
                total += float(np.abs(h) @ (d @ aw)) * SAFETY_FACTOR
                total += self._grow[k] * self._prod[k] * gn * fro(d)
            if k > 0:
                h = self.mats[k].T @ h
        return total * SAFETY_FACTOR


class PointBounds:
    """What every bound at one point ``W`` shares: the product chain ``R``, ``E`` and norms."""

    def __init__(self, weights: Sequence[np.ndarray], stats: Statistics) -> None:
        ws = [np.asarray(w, dtype=np.float64) for w in weights]
        self.weights = ws
        n = len(ws)
        self.S = np.asarray(stats.Sxx, dtype=np.float64)
        self.Syx = np.asarray(stats.Syx, dtype=np.float64)
        self.R_chain = Chain(ws)
        nbs = self.R_chain._nb
        # Exact-suffix bounds ||W_n ... W_(k+2)|| (0-based: after layer k) and prefix bounds
        # ||W_k ... W_1|| from the computed products plus their crude error.
        self.suffix = self.R_chain.suffix_bounds()
        self.prefix = []
        g, p = 1.0, 1.0
        for k in range(n):
            if k > 0:
                g *= 1.0 + gamma(ws[k].shape[1])
            p *= nbs[k]
            self.prefix.append(norm_bound(self.R_chain.X[k]) + (g - 1.0) * p * SAFETY_FACTOR)
        R = self.R_chain.value
        self.R = R
        Q = R @ self.S
        self.E = Q - self.Syx
        aS = np.abs(self.S)
        self.absS = aS
        self.epsE = (gamma(self.S.shape[0]) * (np.abs(R) @ aS) + U / (1 - U) * np.abs(self.E)) * SAFETY_FACTOR
        self.nbS = norm_bound(self.S)
        self.nbE = norm_bound(self.E)
        self.rhoR = self.R_chain.rho
        self.rhoE = (self.rhoR * self.nbS + fro(self.epsE)) * SAFETY_FACTOR


def decrease_bound(pb: PointBounds, point: Sequence[np.ndarray]) -> tuple[float, float]:
    """``L(W) - L(W')`` and a rigorous bound on its rounding error (module doc).

    ``R' - R = sum_i P_N..P_(i+1) D_i W_(i-1)..W_1`` with ``D_i = fl(P_i - W_i)`` (each term a
    chain), ``change = <E, dR> + 1/2 <dR Sxx, dR>``. The exact change differs from the one
    evaluated on the computed ``E``, ``dR`` by ``<dE, dR> + <E + dR Sxx, ddR> - <dE, ddR> -
    1/2 <ddR Sxx, ddR>``: the first two terms are bounded through the chains' adjoints, the last
    two by norms.
    """
    ws = pb.weights
    ps = [np.asarray(p, dtype=np.float64) for p in point]
    n = len(ws)
    terms: list[Chain] = []
    for i in range(n):
        D = ps[i] - ws[i]
        if not np.any(D):
            continue
        mats = [*ws[:i], D, *ps[i + 1:]]
        terms.append(Chain(mats, [0.0] * i + [U / (1 - U)] + [0.0] * (n - i - 1)))
    if not terms:
        return 0.0, 0.0
    dR = terms[0].value
    abs_sum = np.abs(dR)
    for c in terms[1:]:
        dR = dR + c.value
        abs_sum = abs_sum + np.abs(c.value)
    sum_err = gamma(len(terms) - 1) * abs_sum * SAFETY_FACTOR
    S, E = pb.S, pb.E
    Gq = dR @ S
    Gq_err = gamma(S.shape[0]) * (np.abs(dR) @ pb.absS) * SAFETY_FACTOR
    first, e1 = exact_dot(E, dR)
    quad, e2 = exact_dot(Gq, dR)
    change = first + 0.5 * quad
    bound = e1 + 0.5 * e2 + 0.5 * abs_dot(Gq_err, dR) + U * abs(change)
    # <dE, dR>: dE = (R^ - R*) S + eps_E.
    bound += pb.R_chain.adj(Gq) + pb.rhoR * fro(Gq_err) + abs_dot(pb.epsE, dR)
    # <E + dR S, ddR>: the terms' chain errors and the sum's rounding.
    G2 = E + Gq
    G2_err = (U / (1 - U) * np.abs(G2) + Gq_err) * SAFETY_FACTOR
    g2e = fro(G2_err)
    for c in terms:
        bound += c.adj(G2) + c.rho * g2e
    bound += abs_dot(np.abs(G2) + G2_err, sum_err)
    rho_dR = sum(c.rho for c in terms) + fro(sum_err)
    bound += pb.rhoE * rho_dR + 0.5 * pb.nbS * rho_dR * rho_dR
    return float(-change), float(bound * SAFETY_FACTOR + UNDERFLOW)


def rank_one_coefficients(
    pb: PointBounds, factors: Sequence[tuple[np.ndarray, np.ndarray] | None]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Coefficients ``a_1..a_2m`` of ``L(W + tV) - L(W)`` for the exact direction ``V_l = z_l y_l^T``
    scaled to unit norm, with rigorous rounding bounds (``None`` beyond :data:`MAX_MOVING` layers).

    ``C_q = sum_T alpha_T p_top(T) r_bot(T)^T`` over increasing sets T of q moving layers, with
    ``p_l = W_N..W_(l+1) z_l``, ``r_l^T = y_l^T W_(l-1)..W_1`` and ``alpha_T`` the product of
    ``mu_(k,l) = y_l^T W_(l-1)..W_(k+1) z_k`` along T. Then ``a_q = sum_T alpha_T p^T E r +
    1/2 sum alpha_T alpha_T' (p.p')(r^T Sxx r')`` is a polynomial with positive coefficients in
    the scalars ``mu``, ``p^T E r``, ``p.p'``, ``r^T Sxx r'``: each is computed from vector chains
    with a rigorous bound ``eps`` (:class:`Chain`), the polynomial is evaluated exactly (fractions)
    and its error is at most ``F(|x| + eps) - F(|x|)`` with ``F`` the same polynomial.
    """
    ws = pb.weights
    n = len(ws)
    moving = [i for i, f in enumerate(factors) if f is not None]
    m = len(moving)
    if m == 0 or m > MAX_MOVING:
        return None
    z = {i: np.asarray(factors[i][0], dtype=np.float64) for i in moving}  # type: ignore[index]
    y = {i: np.asarray(factors[i][1], dtype=np.float64) for i in moving}  # type: ignore[index]
    one = np.ones(1)
    p: dict[int, Chain] = {}
    r: dict[int, Chain] = {}
    for j in moving:
        p[j] = Chain([z[j][:, None], *ws[j + 1:]], suffix=[pb.suffix[k] for k in range(j, n)])
        r[j] = Chain([y[j][:, None], *(w.T for w in reversed(ws[:j]))],
                     suffix=[pb.prefix[j - 1 - i] if i < j else 1.0 for i in range(j + 1)])
    pv = {j: p[j].value[:, 0] for j in moving}
    rv = {j: r[j].value[:, 0] for j in moving}
    S, E = pb.S, pb.E
    x: dict[tuple[str, int, int], tuple[float, float]] = {}
    for a, b in itertools.combinations(moving, 2):
        mid = Chain([z[a][:, None], *ws[a + 1:b]])
        v = mid.value[:, 0]
        val, err = exact_dot(y[b], v)
        x[("mu", a, b)] = (val, err + mid.adj_rank1(y[b], one))
    Sr = {b: S @ rv[b] for b in moving}
    Sr_err = {b: gamma(S.shape[0]) * (pb.absS @ np.abs(rv[b])) * SAFETY_FACTOR for b in moving}
    Er = {b: E @ rv[b] for b in moving}
    Er_err = {b: gamma(E.shape[1]) * (np.abs(E) @ np.abs(rv[b])) * SAFETY_FACTOR for b in moving}
    Ep = {t: E.T @ pv[t] for t in moving}
    Ep_err = {t: gamma(E.shape[0]) * (np.abs(E).T @ np.abs(pv[t])) * SAFETY_FACTOR for t in moving}
    rE, nE = pb.rhoE, pb.nbE
    for b in moving:
        for t in moving:
            if b > t:
                continue
            val, err = exact_dot(pv[t], Er[b])
            rp, rr = p[t].rho, r[b].rho
            nr, npp = fro(rv[b]), fro(pv[t])
            err += abs_dot(pv[t], Er_err[b])
            err += p[t].adj_rank1(Er[b], one) + rp * fro(Er_err[b])
            err += r[b].adj_rank1(Ep[t], one) + rr * fro(Ep_err[t])
            # p^T dE r: the chain of R against p (S r) plus eps_E.
            w = pb.absS @ np.abs(rv[b])
            err += pb.R_chain.adj_rank1(pv[t], w * (1 + gamma(S.shape[0])))
            err += float(np.abs(pv[t]) @ (pb.epsE @ np.abs(rv[b]))) * SAFETY_FACTOR
            err += rp * rE * nr + rp * nE * rr + npp * rE * rr + rp * rE * rr
            x[("pe", t, b)] = (val, err * SAFETY_FACTOR)
    for t, t2 in itertools.combinations_with_replacement(moving, 2):
        val, err = exact_dot(pv[t], pv[t2])
        err += p[t].adj_rank1(pv[t2], one) + p[t2].adj_rank1(pv[t], one) + p[t].rho * p[t2].rho
        x[("pp", t, t2)] = x[("pp", t2, t)] = (val, err * SAFETY_FACTOR)
    for b, b2 in itertools.combinations_with_replacement(moving, 2):
        val, err = exact_dot(rv[b], Sr[b2])
        err += abs_dot(rv[b], Sr_err[b2])
        err += r[b].adj_rank1(Sr[b2], one) + r[b].rho * fro(Sr_err[b2])
        err += r[b2].adj_rank1(Sr[b], one) + r[b2].rho * fro(Sr_err[b])
        err += r[b].rho * r[b2].rho * pb.nbS
        x[("rsr", b, b2)] = x[("rsr", b2, b)] = (val, err * SAFETY_FACTOR)

    def poly(vals: dict[tuple[str, int, int], Fraction]) -> list[Fraction]:
        subsets = [T for q in range(1, m + 1) for T in itertools.combinations(moving, q)]
        alpha = {}
        for T in subsets:
            a = Fraction(1)
            for lo, hi in itertools.pairwise(T):
                a *= vals[("mu", lo, hi)]
            alpha[T] = a
        out = [Fraction(0)] * (2 * m)
        for T in subsets:
            out[len(T) - 1] += alpha[T] * vals[("pe", T[-1], T[0])]
        half = Fraction(1, 2)
        for T in subsets:
            for T2 in subsets:
                out[len(T) + len(T2) - 1] += (half * alpha[T] * alpha[T2] * vals[("pp", T[-1], T2[-1])]
                                              * vals[("rsr", T[0], T2[0])])
        return out

    signed = poly({k: Fraction(v) for k, (v, _) in x.items()})
    mags = poly({k: abs(Fraction(v)) for k, (v, _) in x.items()})
    upper = poly({k: abs(Fraction(v)) + Fraction(e) for k, (v, e) in x.items()})
    # The unit direction: ||V||^2 = sum ||z||^2 ||y||^2, evaluated exactly.
    nrm2 = sum((_sq(z[j]) * _sq(y[j]) for j in moving), Fraction(0))
    s = float(nrm2)
    a_out = np.zeros(2 * m)
    b_out = np.zeros(2 * m)
    for q in range(1, 2 * m + 1):
        scale = s ** (q / 2)
        val = float(signed[q - 1])
        err = float(upper[q - 1] - mags[q - 1]) * (1 + 4 * U)
        a_out[q - 1] = val / scale
        # val has relative error <= u; s, s^(q/2) and the division add (q + 4) u relative.
        b_out[q - 1] = ((err + (q + 6) * U * abs(val)) / scale) * SAFETY_FACTOR
    return a_out, b_out


def _sq(v: np.ndarray) -> Fraction:
    return sum((Fraction(float(a)) ** 2 for a in v.tolist()), Fraction(0))


def excess_with_bound(
    weights: Sequence[np.ndarray], S: np.ndarray, T: np.ndarray, targets: Sequence[np.ndarray],
    extended: bool = False,
) -> tuple[list[float], float]:
    """``f_I = 1/2 ||R S - T_I||^2 - <R S, T - T_I>`` for each ``T_I`` in ``targets`` (the stable
    gap and excess of :mod:`dlcert.optimum`), with ``R = W_N ... W_1`` computed as a :class:`Chain`,
    and one rigorous bound on the error of every ``f_I`` from the rounding of ``R`` and of the
    formula (``S``, ``T``, ``T_I`` taken as given: their own error is the statistics' error).

    With ``eps = R^ - R*`` (bounded by the chain), ``f(R^) - f(R*) = <eps, G> - 1/2 ||eps S||^2``
    and ``G = (R^ S - T) S^T`` for every ``I``: the first term is bounded through the chain's
    adjoint (:meth:`Chain.adj`, plus ``rho ||G_err||`` for ``G``'s own rounding), the second by
    ``rho^2 ||S||^2 / 2``. The formula's own float64 arithmetic adds ``gamma`` times the absolute
    sums of its terms. ``extended``: ``R`` is formed in ``np.longdouble`` (its chain error
    shrinks by the precision ratio) and then rounded to float64, which adds ``u |R|`` to ``eps``.
    """
    chain = Chain([np.asarray(w, dtype=np.float64) for w in weights], extended=extended)
    R = chain.value
    RS = R @ S
    aRS = np.abs(R) @ np.abs(S)
    e_RS = gamma(S.shape[0]) * aRS * SAFETY_FACTOR  # |fl(R S) - R^ S| elementwise
    resid = RS - T
    G = resid @ S.T
    G_err = (gamma(S.shape[0]) * ((np.abs(resid) + e_RS) @ np.abs(S.T)) + e_RS @ np.abs(S.T)
             + U * np.abs(resid) @ np.abs(S.T)) * SAFETY_FACTOR
    rho = chain.rho
    if extended:  # rounding the extended product to float64: |fl(R) - R| <= u |fl(R)| / (1 - u)
        r_err = U / (1 - U) * np.abs(R) * SAFETY_FACTOR
        rho_total = rho + fro(r_err)
        adj = chain.adj(G) + abs_dot(r_err, np.abs(G) + G_err)
    else:
        rho_total, adj = rho, chain.adj(G)
    nbS = norm_bound(S)
    bound_R = adj + rho_total * fro(G_err) + 0.5 * (rho_total * nbS) ** 2
    values: list[float] = []
    bound_f = 0.0
    size = RS.size
    for T_I in targets:
        D = RS - T_I
        rest = T - T_I
        value = 0.5 * float(np.vdot(D, D)) - float(np.vdot(RS, rest))
        values.append(value)
        # fl(R S) enters D and the inner product; then the two dot products and the difference.
        e = (abs_dot(e_RS, np.abs(D) + np.abs(rest) + e_RS)
             + gamma(size) * (0.5 * float(np.vdot(D, D)) + abs_dot(RS, rest))
             + U * (2.0 * float(np.sum(np.abs(D) * np.abs(D))) + abs_dot(RS, rest)) + U * abs(value))
        bound_f = max(bound_f, e * 2.0 * SAFETY_FACTOR)
    return values, float((bound_R + bound_f) * SAFETY_FACTOR + UNDERFLOW)
