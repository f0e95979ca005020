"""Certification for a convex loss ``f(R)`` of the end-to-end matrix (Zhang 2019 Thm 1-3).

Measure and decide are kept apart exactly as for the square loss (:mod:`dlcert.rules`): the
:func:`measure` step records a frozen :class:`ConvexEvidence`; :func:`decide` walks the ordered
table :data:`CONVEX_RULES`, each row a stable reason code, a verdict and the theorem id it rests
on. The square-loss table is not touched. Documentation of every rule: ``docs/losses.md``.

Scale-free tolerances. ``relative_f_gradient = ||grad f(R)||_F / sum_j ||g_j|| ||x_j||`` (for
data objectives: the cancellation ratio of the sum the gradient is made of); the layer gradient
``A_i^T grad f(R) B_i^T`` is divided by ``||A_i||_F ||B_i||_F`` times the same denominator.
Both are unchanged by ``X -> cX, W_1 -> W_1/c``, by ``W_i -> aW_i, W_{i+1} -> W_{i+1}/a`` and
by scaling f.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from dlcert.certificate import Reason, Verdict, Witness, to_builtin
from dlcert.errors import InputError
from dlcert.losses import CrossEntropy, DataObjective, FunctionObjective, Objective, Square
from dlcert.validation import check_weight_chain

DENSE_PARAMS = 400  # dense network Hessian (n HVPs + eigh) up to this many parameters
LP_LIMIT = 2_000_000  # attainment LP only when m * dy * dx is at most this
RANK_RTOL = 1e-9
NEAR_STATIONARY = 100.0  # grad f(R) within this factor of gtol is neither stationary nor a saddle's


@dataclass(frozen=True)
class ConvexEvidence:
    """Everything :func:`decide` reads (plain numbers and flags, thresholds included).

    relative_gradient : max over layers of the scale-free network gradient.
    relative_f_gradient : scale-free ``||grad f(R)||``. gtol : the tolerance both are judged by.
    no_bottleneck : ``k = min(dx, dy)`` (Zhang 2019 Thm 3 setting).
    product_rank, k : rank of R (relative cutoff ``rank_rtol``) and the bottleneck width.
    rank_ambiguous : a singular value of R lies near the cutoff.
    attained : the infimum of f is attained (``None``: not checked; not needed when grad f(R) = 0,
        since R is then a minimiser).
    witness_order : order q of the confirmed escape witness (``None``: none confirmed).
    lambda_min : smallest curvature of the network Hessian found: its smallest eigenvalue (dense)
        or the Rayleigh quotient of ARPACK's vector (lanczos; an upper bound on lambda_min).
        ``None``: not computed (only critical points with grad f(R) != 0 get a second-order test).
    curvature_threshold : curvature below ``-curvature_threshold`` counts as negative.
    hessian_zero : the dense network Hessian is exactly zero (every entry 0.0).
    towers : number of towers (``dlcert.towers``; 1 for a chain). With several, ``no_bottleneck``
        is Zhang 2019 Cor 2's condition (some tower without a bottleneck, or b = sum of the towers'
        bottleneck widths >= max(dx, dy)) and ``tower_deficient`` says that some tower's product
        has rank below its bottleneck width (so one of its bottleneck factors is rank-deficient).
    fixed_rank_lambda_min, fixed_rank_error_bound : the second-order test of ``min f(R) s.t.
        rank R <= k`` at R (chain, rank R = k, critical in W, grad f(R) != 0; :func:`fixed_rank_test`):
        the smallest eigenvalue of the Riemannian Hessian of f on the rank-k manifold (dense) or a
        Rayleigh quotient (lanczos; an upper bound), and the rounding bound it is judged against.
        ``None``: not run. fixed_rank_exact : the eigenvalue is from a dense eigendecomposition.
    square_objective : f is the square loss on raw samples (``DataObjective`` of ``Square``): Zhang
        2019 Cor 1 (no spurious local minima) applies.
    """

    relative_gradient: float
    relative_f_gradient: float
    gtol: float
    no_bottleneck: bool
    product_rank: int
    k: int
    rank_ambiguous: bool
    attained: bool | None
    witness_order: int | None
    lambda_min: float | None
    curvature_threshold: float
    hessian_zero: bool
    towers: int = 1
    tower_deficient: bool = False
    fixed_rank_lambda_min: float | None = None
    fixed_rank_error_bound: float | None = None
    fixed_rank_exact: bool = False
    square_objective: bool = False

    @property
    def f_stationary(self) -> bool:
        return self.relative_f_gradient <= self.gtol

    @property
    def fixed_rank_negative(self) -> bool:
        """The fixed-rank Hessian has curvature below minus its error bound (dense or Lanczos)."""
        return (self.fixed_rank_lambda_min is not None and self.fixed_rank_error_bound is not None
                and self.fixed_rank_lambda_min < -self.fixed_rank_error_bound)

    @property
    def fixed_rank_positive(self) -> bool:
        """The dense fixed-rank Hessian's smallest eigenvalue exceeds its error bound."""
        return (self.fixed_rank_exact and self.fixed_rank_lambda_min is not None
                and self.fixed_rank_error_bound is not None
                and self.fixed_rank_lambda_min > self.fixed_rank_error_bound)

    @property
    def saddle_setting(self) -> bool:
        """Critical in W, grad f(R) != 0, and Thm 3 (no bottleneck) or Lemma 1 (rank R < k) applies."""
        return (not self.f_stationary and not self.rank_ambiguous
                and (self.no_bottleneck or self.tower_deficient
                     or (self.towers == 1 and self.product_rank < self.k)))

    @property
    def saddle_theorem(self) -> str:
        if self.towers > 1:
            return "zhang2019.cor2"
        return "zhang2019.thm3" if self.no_bottleneck else "zhang2019.lemma1"


@dataclass(frozen=True)
class ConvexRule:
    """One row: stable code, verdict, the theorem it rests on, condition and message."""

    code: str
    verdict: Verdict
    theorem: Callable[[ConvexEvidence], str | None]
    when: Callable[[ConvexEvidence], bool]
    says: Callable[[ConvexEvidence], str]


def _where(e: ConvexEvidence) -> str:
    if e.towers > 1:
        return (f"({e.towers} towers, Cor 2: "
                + ("b >= max(dx, dy) or a tower without bottleneck)" if e.no_bottleneck
                   else "a tower's product has rank below its bottleneck width)"))
    return "(no bottleneck)" if e.no_bottleneck else f"< k = {e.k}"


def _reduction(e: ConvexEvidence) -> str:
    return "zhang2019.cor2" if e.towers > 1 else "zhang2019.thm1"


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3e}"


def _at_k(e: ConvexEvidence) -> str:
    return f"rank R = k = {e.k} with grad f(R) != 0 (relative {_g(e.relative_f_gradient)})"


def _positive(e: ConvexEvidence) -> str:
    return (f"the Hessian of f on the rank-k manifold is positive definite (lambda_min "
            f"{_g(e.fixed_rank_lambda_min)} > error bound {_g(e.fixed_rank_error_bound)})")


_NO_MIN = "the infimum of f is not attained (e.g. separable data): there is no global minimum to certify"

CONVEX_RULES: tuple[ConvexRule, ...] = (
    ConvexRule("not_critical.infimum_not_attained", Verdict.NOT_CRITICAL, lambda e: None,
               lambda e: e.relative_gradient > e.gtol and e.attained is False,
               lambda e: f"relative gradient norm {_g(e.relative_gradient)} > gtol {e.gtol:.1e}; {_NO_MIN}"),
    ConvexRule("not_critical.gradient", Verdict.NOT_CRITICAL, lambda e: None,
               lambda e: not e.relative_gradient <= e.gtol,
               lambda e: f"relative gradient norm {_g(e.relative_gradient)} > gtol {e.gtol:.1e}"),
    ConvexRule("global.convex_stationary", Verdict.GLOBAL_MINIMUM,
               lambda e: "zhang2019.cor2" if e.towers > 1 else "zhang2019.thm3" if e.no_bottleneck
               else "zhang2019.thm1",
               lambda e: e.f_stationary,
               lambda e: (f"grad f(R) = 0 within tolerance (relative {_g(e.relative_f_gradient)} <= gtol "
                          f"{e.gtol:.1e}): R minimises the convex f over all matrices, so W is a global "
                          "minimum of the network")),
    ConvexRule("inconclusive.near_stationary", Verdict.INCONCLUSIVE, lambda e: None,
               lambda e: e.relative_f_gradient <= NEAR_STATIONARY * e.gtol,
               lambda e: (f"grad f(R) is small but not zero within tolerance (relative "
                          f"{_g(e.relative_f_gradient)}, gtol {e.gtol:.1e}): too close to a minimiser of f "
                          "to call the point a saddle; "
                          "train further or raise --gtol")),
    ConvexRule("inconclusive.rank_ambiguous", Verdict.INCONCLUSIVE, lambda e: None,
               lambda e: e.rank_ambiguous,
               lambda e: "a singular value of R lies near the rank cutoff: rank R is ambiguous"),
    ConvexRule("inconclusive.witness_not_confirmed", Verdict.INCONCLUSIVE, lambda e: e.saddle_theorem,
               lambda e: e.saddle_setting and e.witness_order is None,
               lambda e: (f"critical in W with grad f(R) != 0 (relative {_g(e.relative_f_gradient)}) and "
                          f"rank R = {e.product_rank} {_where(e)}: "
                          "a saddle by the theorem, but no escape witness was confirmed on the data")),
    ConvexRule("strict.negative_curvature", Verdict.STRICT_SADDLE, lambda e: e.saddle_theorem,
               lambda e: (e.saddle_setting and e.lambda_min is not None
                          and e.lambda_min < -e.curvature_threshold),
               lambda e: (f"critical in W with grad f(R) != 0 (relative {_g(e.relative_f_gradient)}), "
                          f"rank R = {e.product_rank} {_where(e)}; "
                          f"Hessian lambda_min {_g(e.lambda_min)} < -{e.curvature_threshold:.1e}; "
                          f"escape witness of order {e.witness_order} confirmed on the data")),
    ConvexRule("non_strict.zero_hessian", Verdict.NON_STRICT_SADDLE, lambda e: e.saddle_theorem,
               lambda e: e.saddle_setting and e.hessian_zero and (e.witness_order or 0) >= 3,
               lambda e: (f"critical in W with grad f(R) != 0, rank R = {e.product_rank}; the Hessian is "
                          f"exactly zero (no negative curvature) and the loss drops like t^{e.witness_order} "
                          "along the escape witness")),
    ConvexRule("inconclusive.strictness_undecided", Verdict.INCONCLUSIVE, lambda e: e.saddle_theorem,
               lambda e: e.saddle_setting,
               lambda e: (f"a saddle (escape witness of order {e.witness_order} confirmed on the data), but "
                          f"strictness is undecided: lambda_min {_g(e.lambda_min)} is not below "
                          f"-{e.curvature_threshold:.1e} and the Hessian is not exactly zero")),
    ConvexRule("strict.fixed_rank_negative_curvature", Verdict.STRICT_SADDLE, lambda e: "zhang2019.thm1",
               lambda e: e.fixed_rank_negative and e.witness_order == 2,
               lambda e: (f"{_at_k(e)}: a critical point of the two-layer problem at the bottleneck "
                          "(Thm 1 reduction); the Hessian of f on the rank-k manifold has curvature "
                          f"{_g(e.fixed_rank_lambda_min)} < -{_g(e.fixed_rank_error_bound)} (its error "
                          "bound); the direction, lifted to layers 1 and N, is an order-2 escape witness "
                          "confirmed on the data")),
    ConvexRule("global.square_rank_constrained_minimum", Verdict.GLOBAL_MINIMUM,
               lambda e: "zhang2019.cor1",
               lambda e: e.fixed_rank_positive and e.square_objective,
               lambda e: (f"{_at_k(e)}: {_positive(e)}, so R is a local minimum of f over "
                          "rank <= k and W a local minimum of the network; for the square loss every "
                          "local minimum is global (Zhang 2019 Cor 1)")),
    ConvexRule("inconclusive.rank_constrained_local_minimum", Verdict.INCONCLUSIVE,
               lambda e: "zhang2019.thm1",
               lambda e: e.fixed_rank_positive,
               lambda e: (f"{_at_k(e)}: {_positive(e)}: R is a local minimum of f over "
                          "rank <= k, so W is a local minimum of the network (not a saddle); not "
                          "certified global: R does not minimise f, and the rank-constrained problem may "
                          "have other, lower local minima")),
    ConvexRule("inconclusive.fixed_rank_undecided", Verdict.INCONCLUSIVE, lambda e: "zhang2019.thm1",
               lambda e: e.fixed_rank_lambda_min is not None,
               lambda e: (f"{_at_k(e)}: the second-order test on the rank-k manifold is undecided: "
                          + ("smallest eigenvalue " if e.fixed_rank_exact else "smallest curvature found ")
                          + f"{_g(e.fixed_rank_lambda_min)}, error bound {_g(e.fixed_rank_error_bound)}"
                          + ("" if e.fixed_rank_exact else " (iterative: positive definiteness not shown)")
                          + ("; negative curvature but no escape witness confirmed on the data"
                             if e.fixed_rank_negative else ""))),
    ConvexRule("strict.bottleneck_negative_curvature", Verdict.STRICT_SADDLE, lambda e: _reduction(e),
               lambda e: (e.lambda_min is not None and e.lambda_min < -e.curvature_threshold
                          and e.witness_order == 2),
               lambda e: (f"rank R = k = {e.k} with grad f(R) != 0 (relative {_g(e.relative_f_gradient)}): a "
                          "critical point of the two-layer problem at the bottleneck (Thm 1 reduction) with "
                          f"negative curvature {_g(e.lambda_min)} < -{e.curvature_threshold:.1e}; order-2 "
                          "escape witness confirmed on the data")),
    ConvexRule("inconclusive.bottleneck_full_rank", Verdict.INCONCLUSIVE, lambda e: _reduction(e),
               lambda e: True,
               lambda e: (f"rank R = k = {e.k} with grad f(R) != 0 (relative {_g(e.relative_f_gradient)}): a "
                          "critical point of the two-layer problem at the bottleneck (Thm 1 reduction); no "
                          f"negative curvature shown (smallest {_g(e.lambda_min)}, threshold "
                          f"{e.curvature_threshold:.1e}): possibly a local minimum of the rank-constrained "
                          "problem (Thm 2: its bottleneck factors are full rank); the fixed-rank "
                          "second-order test was not run (it needs a single chain and, for "
                          "cross-entropy, the centred product E^T R of rank k)")),
)


def decide(e: ConvexEvidence) -> tuple[Verdict, Reason, str | None]:
    """The first rule that holds: verdict, reason and the theorem id it rests on."""
    for rule in CONVEX_RULES:
        if rule.when(e):
            return rule.verdict, Reason(rule.code, rule.says(e)), rule.theorem(e)
    raise AssertionError("the last rule always holds")  # pragma: no cover


def notes(e: ConvexEvidence) -> list[Reason]:
    out: list[Reason] = []
    if e.attained is False and e.relative_gradient <= e.gtol:
        out.append(Reason("note.infimum_not_attained", _NO_MIN))
    if e.attained is None and not e.f_stationary:
        out.append(Reason("note.attainment_unchecked",
                          "whether the infimum of f is attained was not checked (too large for the LP)"))
    return out


# ---------------------------------------------------------------------------------- measuring


def _chain(ws: Sequence[np.ndarray], lo: int, hi: int, n: int) -> np.ndarray:
    """``W_hi ... W_lo`` (1-based, inclusive); identity of size ``n`` when empty."""
    out = np.eye(n)
    for i in range(lo, hi + 1):
        out = ws[i - 1] @ out
    return out


def _products(ws: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Above ``A_i = W_N..W_{i+1}`` and below ``B_i = W_{i-1}..W_1`` for i = 1..N (0-based lists)."""
    n = len(ws)
    d = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    A = [_chain(ws, i + 1, n, d[i]) for i in range(1, n + 1)]
    B = [_chain(ws, 1, i - 1, d[0]) for i in range(1, n + 1)]
    return A, B


def network_gradient(ws: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
    """``dL/dW_i = A_i^T grad f(R) B_i^T``."""
    A, B = _products(ws)
    return [a.T @ G @ b.T for a, b in zip(A, B, strict=True)]


def layer_relative_gradients(ws: Sequence[np.ndarray], G: np.ndarray, scale: float) -> list[float]:
    """``||A_i^T G B_i^T||_F / (||A_i||_F ||B_i||_F scale)`` per layer (the scale-free network gradient)."""
    A, B = _products(ws)
    rels = []
    for a, b in zip(A, B, strict=True):
        gi = float(np.linalg.norm(a.T @ G @ b.T))
        den = float(np.linalg.norm(a) * np.linalg.norm(b)) * scale
        rels.append(gi / den if den > 0 else (0.0 if gi == 0 else math.inf))
    return rels


def network_hvp(ws: Sequence[np.ndarray], obj: Objective, R: np.ndarray, G: np.ndarray,
                V: Sequence[np.ndarray], HdR: np.ndarray | None = None) -> list[np.ndarray]:
    """Hessian of ``L(W) = f(W_N...W_1)`` along V (exact: second derivative of the product).

    ``HdR`` : ``f''(R)[dR]`` when the caller has it (towers: dR summed over all towers)."""
    n = len(ws)
    A, B = _products(ws)
    if HdR is None:
        dR = sum((A[j] @ V[j] @ B[j] for j in range(n)), np.zeros_like(R))
        HdR = obj.hvp(R, dR)
    out = []
    for i in range(n):
        Ai, Bi = A[i], B[i]
        dA = np.zeros_like(Ai)
        for j in range(i + 1, n):  # layer j+1 (0-based j) above layer i+1
            dA += _chain(ws, j + 2, n, ws[j].shape[0]) @ V[j] @ _chain(ws, i + 2, j, ws[i].shape[0])
        dB = np.zeros_like(Bi)
        for j in range(i):
            dB += _chain(ws, j + 2, i, ws[j].shape[0]) @ V[j] @ _chain(ws, 1, j, ws[0].shape[1])
        out.append(Ai.T @ HdR @ Bi.T + dA.T @ G @ Bi.T + Ai.T @ G @ dB.T)
    return out


def infimum_attained(obj: Objective, loss_name: str) -> bool | None:
    """Whether f attains its infimum (logistic / cross-entropy: no recession direction; LP)."""
    if not isinstance(obj, DataObjective):
        return None
    if loss_name in ("square", "huber"):
        return True
    X, Y = obj.X, obj.Y
    dx, m = X.shape
    if loss_name == "logistic":  # as two classes with logits (0, z)
        Y = np.vstack([1.0 - Y, Y])
    dy = Y.shape[0]
    if m * dy * dx > LP_LIMIT:
        return None
    # A direction D (logits Z = D X, for logistic Z = [0; d X]) with, per sample, the target
    # classes' logits >= every logit, and some strictly: f decreases along it forever.
    logistic = loss_name == "logistic"
    nvar = dx if logistic else dy * dx

    def block(c: int) -> slice | None:
        if logistic:
            return slice(0, dx) if c == 1 else None
        return slice(c * dx, (c + 1) * dx)

    parts = []
    for c in range(dy):
        J = np.flatnonzero(Y[c] > 0)
        for c2 in range(dy):
            if c2 == c or J.size == 0:
                continue
            diff = np.zeros((J.size, nvar))
            bc, bc2 = block(c), block(c2)
            if bc is not None:
                diff[:, bc] += X[:, J].T
            if bc2 is not None:
                diff[:, bc2] -= X[:, J].T
            parts.append(diff)  # rows: z_c - z_c2 >= 0
    rows = np.vstack(parts) if parts else np.zeros((0, nvar))
    if rows.shape[0] == 0:
        return True
    res = linprog(-rows.sum(axis=0), A_ub=-rows, b_ub=np.zeros(rows.shape[0]), bounds=(-1.0, 1.0),
                  method="highs")
    if res.status != 0:
        return None
    scale = float(np.sum(np.abs(rows))) or 1.0
    return not (-res.fun > 1e-9 * scale)


@dataclass(frozen=True)
class ConvexMeasurement:
    evidence: ConvexEvidence
    loss: float
    gradient_f_norm: float
    layer_relative_gradients: list[float]
    product_singular_values: list[float]
    lambda_max: float | None
    hessian_method: str
    witness: Witness | None
    fixed_rank: FixedRankTest | None = None


def _routed_witness(ws: tuple[np.ndarray, ...], obj: Objective, R: np.ndarray, G: np.ndarray,
                    radius: float, max_tries: int = 12) -> Witness | None:
    """Route a rank-one descent direction through a block of consecutive layers a+1..b.

    For the block, ``(x, y)`` is the top singular pair of ``-A_b^T grad f(R) B_{a+1}^T`` (the
    layers outside the block carry it unmoved); the block moves as ``W_j + t e_j e_{j-1}^T`` with
    ``e_a = y``, ``e_b = x`` and each inner ``e_j`` (unit) as close as possible to
    ``ker(W_N...W_{j+1})`` and ``range(W_j...W_1)^perp``, so that the lower-order terms of the
    product vanish and R gains ``t^(b-a) A_b x y^T B_{a+1}``: f drops like ``-sigma t^(b-a)``.
    Blocks are tried shortest first (a block of one layer cannot help at a critical point)."""
    n = len(ws)
    A, B = _products(ws)
    tries = 0
    for q in range(2, n + 1):
        for a in range(0, n - q + 1):
            b = a + q
            M = -(A[b - 1].T @ G @ B[a].T)
            U, sv, Vt = np.linalg.svd(M)
            scale = float(np.linalg.norm(A[b - 1]) * np.linalg.norm(G) * np.linalg.norm(B[a]))
            if not sv.size or sv[0] <= 1e-12 * scale:
                continue
            e = {a: Vt[0], b: U[:, 0]}
            for j in range(a + 1, b):
                below = B[j]  # W_j ... W_1, shape (d_j, dx)
                Q, s, _ = np.linalg.svd(below, full_matrices=False)
                keep = int(np.count_nonzero(s > RANK_RTOL * max(float(s[0]) if s.size else 0.0, 1e-300)))
                top = A[j - 1] / max(float(np.linalg.norm(A[j - 1])), 1e-300)
                e[j] = np.linalg.svd(np.vstack([top, Q[:, :keep].T]))[2][-1]
            V = [np.outer(e[i + 1], e[i]) if a <= i < b else np.zeros_like(ws[i]) for i in range(n)]
            for sign in (1.0, -1.0):  # an inner layer that carries the direction may flip its sign
                witness = _confirm(ws, obj, R, [sign * v for v in V], radius, "higher_order", q)
                if witness is not None:
                    return witness
            tries += 1
            if tries >= max_tries:
                return None
    return None


def _confirm(ws: tuple[np.ndarray, ...], obj: Objective, R: np.ndarray, V: Sequence[np.ndarray],
             radius: float, kind: str, fallback_order: int = 0,
             product: Callable[[tuple[np.ndarray, ...]], np.ndarray] | None = None) -> Witness | None:
    """Largest ``t = radius * 2^-s`` (unit V) with a decrease beyond its rounding bound.

    The order is 2 for a negative-curvature direction; otherwise ``log2`` of the ratio of the
    decreases at ``t' `` and ``t'/2`` for the smallest ``t' <= t`` whose decrease is still 100 times
    its rounding bound (where the leading term dominates), ``fallback_order`` if none is."""
    norm = math.sqrt(sum(float(np.sum(v * v)) for v in V))
    if norm == 0.0:
        return None
    V = [v / norm for v in V]

    def at(t: float) -> tuple[tuple[np.ndarray, ...], float, float]:
        point = tuple(w + t * v for w, v in zip(ws, V, strict=True))
        R2 = product(point) if product is not None else _chain(point, 1, len(point), ws[0].shape[1])
        dec, bound = obj.decrease(R, R2)
        return point, dec, bound

    for s in range(0, 40):
        t = radius * 2.0 ** (-s)
        point, dec, bound = at(t)
        if dec > bound and dec > 0:
            break
    else:
        return None
    order = 2 if kind == "negative_curvature" else fallback_order
    if kind != "negative_curvature":
        last = dec
        for k in range(1, 30):
            _, d2, b2 = at(t * 2.0 ** (-k))
            if not (d2 > 100.0 * b2 and d2 > 0 and last > 0):
                break
            order = max(1, round(math.log2(last / d2)))
            last = d2
    layers = [i + 1 for i, v in enumerate(V) if np.any(v)]
    return Witness(kind=kind, radius=t, loss_decrease=dec, rounding_bound=bound, order=order,
                   coefficient=-dec / t**order if order else 0.0, layers_moved=layers, point=point)


# ------------------------------------------------------------------ the fixed-rank second-order test

FIXED_RANK_DENSE = 1500  # dense fixed-rank Hessian (n HVPs + eigh) up to this tangent dimension
FD_HVP_RTOL = 1e-4  # relative error allowed for HVPs by central differences (FunctionObjective without hvp)


@dataclass(frozen=True)
class FixedRankTest:
    """Second-order test of ``min f(R) s.t. rank R <= k`` at a rank-k point R (docs/losses.md).

    method : ``dense`` (every eigenvalue) or ``lanczos`` (ARPACK on the operator; the minimum is
    the Rayleigh quotient of its vector, an upper bound on the smallest eigenvalue).
    dimension : ``k (dx + dy - k)``, the dimension of the rank-k manifold.
    bottleneck_layer : j with ``d_j = k`` (first such); ``A = W_N..W_{j+1}``, ``B = W_j..W_1``.
    min_eigenvalue, max_eigenvalue : of the Riemannian Hessian (coordinates orthonormal in the
    Frobenius inner product). error_bound : its rounding bound (docs/losses.md).
    sigma_min : the k-th singular value of R (the curvature term scales with ``1/sigma_min``).
    riemannian_gradient : ``||P_T grad f(R)||_F`` over the gradient's scale (0 at an exact critical
    point of the rank-constrained problem). network_curvature : ``v^T H_L v`` of the network loss
    along the unit lift ``v`` of the most negative direction (``None`` without one).
    """

    method: str
    dimension: int
    bottleneck_layer: int
    min_eigenvalue: float | None
    max_eigenvalue: float | None
    error_bound: float | None
    sigma_min: float
    riemannian_gradient: float
    network_curvature: float | None = None


def fixed_rank_test(ws: Sequence[np.ndarray], obj: Objective, R: np.ndarray, G: np.ndarray, gscale: float,
                    k: int, dense_limit: int = FIXED_RANK_DENSE, seed: int = 0,
                    basis: np.ndarray | None = None) -> tuple[FixedRankTest, list[np.ndarray] | None]:
    """The Riemannian Hessian of f on the manifold of rank-k matrices at R (rank R = k).

    Tangent vectors ``xi = U M V^T + U_o P V^T + U Q^T V_o^T`` (``R = U S V^T`` thin, ``U_o, V_o``
    orthonormal complements); the quadratic form (Absil/Vandereycken; Vandereycken 2013 Prop 2.3)
    is ``<xi, f''(R)[xi]> + 2 <U_o^T G V_o, P S^-1 Q^T>``. Returns the test and, when a direction
    of negative curvature was found, its lift to the network: layers 1 and N move so that the
    product is exactly ``(A + tX)(B + tY)`` with ``X B + A Y = xi`` (the Thm 1 reduction), so the
    network loss along the lift has second derivative equal to the quadratic form at ``xi``.

    ``basis`` (dy x dy', orthonormal columns): f is invariant under ``R -> R + Z`` for ``Z`` with
    ``basis^T Z = 0`` (cross-entropy: adding one vector to every logit column), so
    ``f(R) = f(E E^T R)`` and the test runs on ``f~(S) = f(E S)`` at ``S = E^T R`` (which must have
    rank k); ``X = E X~`` lifts back."""
    n = len(ws)
    d = [int(ws[0].shape[1])] + [int(w.shape[0]) for w in ws]
    j = next(i for i in range(1, n) if d[i] == k)
    E = np.eye(R.shape[0]) if basis is None else basis
    full_R = R
    R, G = E.T @ R, E.T @ G
    dy, dx = R.shape

    def hvp(D: np.ndarray) -> np.ndarray:
        return E.T @ obj.hvp(full_R, E @ D)

    Uf, s, Vtf = np.linalg.svd(R)
    U, Uo, V, Vo = Uf[:, :k], Uf[:, k:], Vtf[:k].T, Vtf[k:].T
    sig = s[:k]
    Gh = Uo.T @ G @ Vo
    nM, nP, nQ = k * k, (dy - k) * k, (dx - k) * k
    dim = nM + nP + nQ

    def parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (z[:nM].reshape(k, k), z[nM:nM + nP].reshape(dy - k, k), z[nM + nP:].reshape(dx - k, k))

    def op(z: np.ndarray) -> np.ndarray:
        M, P, Q = parts(np.ravel(z))
        H = hvp(U @ M @ V.T + Uo @ P @ V.T + U @ Q.T @ Vo.T)
        return np.concatenate([(U.T @ H @ V).ravel(), (Uo.T @ H @ V + Gh @ Q / sig).ravel(),
                               ((U.T @ H @ Vo).T + Gh.T @ P / sig).ravel()])

    def dense() -> np.ndarray:
        """The matrix, column by column; for built-in data losses many HVPs share one GEMM."""
        if not isinstance(obj, DataObjective):
            return np.array([op(np.eye(1, dim, c)[0]) for c in range(dim)])
        cols = []
        for start in range(0, dim, 64):
            Z = np.eye(dim)[:, start:start + 64]
            b = Z.shape[1]
            Ms = Z[:nM].T.reshape(b, k, k)
            Ps = Z[nM:nM + nP].T.reshape(b, dy - k, k)
            Qs = Z[nM + nP:].T.reshape(b, dx - k, k)
            xis = (U @ Ms @ V.T) + (Uo @ Ps @ V.T) + (U @ np.swapaxes(Qs, 1, 2) @ Vo.T)
            Hs = E.T @ obj.hvp_many(full_R, E @ xis)
            cols.append(np.concatenate([
                (U.T @ Hs @ V).reshape(b, -1),
                (Uo.T @ Hs @ V + Gh @ Qs / sig).reshape(b, -1),
                (np.swapaxes(U.T @ Hs @ Vo, 1, 2) + Gh.T @ Ps / sig).reshape(b, -1)], axis=1))
        return np.concatenate(cols, axis=0)

    PG = G - Uo @ Gh @ Vo.T
    rgrad = float(np.linalg.norm(PG)) / gscale if gscale > 0 else 0.0
    direction: np.ndarray | None
    lmin: float | None
    lmax: float | None
    if dim <= dense_limit:
        K = dense()
        lam, vec = np.linalg.eigh(0.5 * (K + K.T))
        lmin, lmax, direction, method = float(lam[0]), float(lam[-1]), vec[:, 0], "dense"
    else:
        lmin, lmax, direction = _lanczos(op, dim, seed)
        method = "lanczos"
    if lmin is None or lmax is None:
        return FixedRankTest("none", dim, j, None, None, None, float(sig[-1]), rgrad), None
    eps = float(np.finfo(np.float64).eps)
    terms = obj.m if isinstance(obj, DataObjective) else 1
    error = (1e3 * eps * dim * max(abs(lmin), abs(lmax))
             + 8.0 * eps * (terms + dx + 2) * gscale / float(sig[-1]))
    if isinstance(obj, FunctionObjective) and obj.hessian_vector is None:
        error += FD_HVP_RTOL * max(abs(lmin), abs(lmax))  # HVPs by central differences of the gradient
    test = FixedRankTest(method, dim, j, lmin, lmax, error, float(sig[-1]), rgrad)
    if not lmin < -error or direction is None:
        return test, None
    M, P, Q = parts(direction)
    A = E.T @ _chain(ws, j + 1, n, d[j])
    B = _chain(ws, 1, j, d[0])
    X = E @ (U @ M + Uo @ P) @ V.T @ np.linalg.pinv(B)
    Y = np.linalg.pinv(A) @ U @ Q.T @ Vo.T
    C = _chain(ws, j + 1, n - 1, d[j])  # W_{N-1}..W_{j+1}: A = W_N C, C of full column rank k
    D = _chain(ws, 2, j, d[1])  # W_j..W_2: B = D W_1, D of full row rank k
    lift = [np.zeros_like(w) for w in ws]
    lift[0] = np.linalg.pinv(D) @ Y
    lift[-1] = X @ np.linalg.pinv(C)
    norm2 = sum(float(np.sum(v * v)) for v in lift)
    curvature = lmin / norm2 if norm2 > 0 else None
    return replace(test, network_curvature=curvature), lift


def _lanczos(hv: Callable[[np.ndarray], np.ndarray], n: int,
             seed: int) -> tuple[float | None, float | None, np.ndarray | None]:
    """Extreme curvatures by ARPACK on the HVP. The reported minimum is the Rayleigh quotient of
    the returned unit vector: an upper bound on lambda_min whether or not ARPACK converged."""
    op = LinearOperator((n, n), matvec=hv, dtype=np.float64)
    v0 = np.random.default_rng(seed).normal(size=n)
    try:
        top = float(abs(eigsh(op, k=1, which="LM", v0=v0, maxiter=200, tol=1e-4,
                              return_eigenvectors=False)[0]))
    except ArpackNoConvergence as exc:
        top = float(np.max(np.abs(exc.eigenvalues))) if len(exc.eigenvalues) else 0.0
    if top == 0.0:
        return 0.0, 0.0, None
    try:
        _, vecs = eigsh(op, k=1, which="SA", v0=v0, maxiter=500, tol=1e-6)
        v = vecs[:, 0]
    except ArpackNoConvergence as exc:
        if exc.eigenvectors.shape[1] == 0:
            return None, top, None
        v = exc.eigenvectors[:, 0]
    v = v / np.linalg.norm(v)
    return float(v @ hv(v)), top, v


def measure(ws: tuple[np.ndarray, ...], obj: Objective, loss_name: str, gtol: float,
            radius: float = 1.0, dense_params: int = DENSE_PARAMS, seed: int = 0,
            fixed_rank_dense: int = FIXED_RANK_DENSE) -> ConvexMeasurement:
    n = len(ws)
    d = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    k = min(d)
    R = _chain(ws, 1, n, d[0])
    G, scale = obj.gradient(R)
    gnorm = float(np.linalg.norm(G))
    rel_f = gnorm / scale if scale > 0 else (0.0 if gnorm == 0 else math.inf)
    rels = layer_relative_gradients(ws, G, scale)
    rel = max(rels)
    sv = np.linalg.svd(R, compute_uv=False)
    pscale = math.prod(float(np.linalg.norm(w, 2)) for w in ws)
    cutoff = RANK_RTOL * max(float(sv[0]) if sv.size else 0.0, pscale)
    rank = int(np.count_nonzero(sv > cutoff))
    ambiguous = bool(np.any((sv > cutoff / 100) & (sv <= cutoff * 100))) and cutoff > 0
    attained = infimum_attained(obj, loss_name) if rel_f > gtol else None  # stationary: a minimiser
    no_bottleneck = k == min(d[0], d[-1])
    lam_min = lam_max = None
    hessian_zero = False
    method = "none"
    witness: Witness | None = None
    critical_only = rel <= gtol and rel_f > gtol  # critical in W, grad f(R) != 0
    saddle_like = critical_only and (no_bottleneck or rank < k)
    nparams = sum(w.size for w in ws)
    threshold = 0.0
    shapes = [w.shape for w in ws]
    offsets = np.cumsum([0] + [w.size for w in ws])

    def split(v: np.ndarray) -> list[np.ndarray]:
        return [v[offsets[i]:offsets[i + 1]].reshape(shapes[i]) for i in range(n)]

    def hv(v: np.ndarray) -> np.ndarray:
        return np.concatenate([h.ravel() for h in network_hvp(ws, obj, R, G, split(np.ravel(v)))])

    direction: np.ndarray | None = None
    fixed: FixedRankTest | None = None
    fixed_setting = (critical_only and not no_bottleneck and rank == k and not ambiguous
                     and rel_f > NEAR_STATIONARY * gtol)
    basis = None
    if fixed_setting and isinstance(obj, DataObjective) and isinstance(obj.loss, CrossEntropy):
        basis = np.linalg.svd(np.eye(d[-1]) - 1.0 / d[-1])[0][:, : d[-1] - 1]  # the logits' 1^perp
        reduced = np.linalg.svd(basis.T @ R, compute_uv=False)
        fixed_setting = (k < min(d[0], d[-1] - 1)
                         and int(np.count_nonzero(reduced > cutoff)) == k
                         and not bool(np.any((reduced > cutoff / 100) & (reduced <= cutoff * 100))))
    if fixed_setting:  # the second-order test of the rank-constrained problem replaces the network's
        fixed, lift = fixed_rank_test(ws, obj, R, G, scale, k, dense_limit=fixed_rank_dense, seed=seed,
                                      basis=basis)
        for sign in (1.0, -1.0) if lift is not None else ():
            assert lift is not None
            witness = _confirm(ws, obj, R, [sign * v for v in lift], radius, "negative_curvature")
            if witness is not None:
                break
    elif critical_only and nparams <= dense_params:
        hessian_zero, lam, vec = dense_spectrum(hv, nparams)
        lam_min, lam_max = float(lam[0]), float(lam[-1])
        method, direction = "dense", vec[:, 0]
    elif critical_only:
        lam_min, lam_max, direction = _lanczos(hv, nparams, seed)
        method = "lanczos" if lam_min is not None else "none"
    if lam_min is not None and lam_max is not None:
        threshold = 1e3 * float(np.finfo(np.float64).eps) * max(abs(lam_min), abs(lam_max)) * nparams
        if lam_min < -threshold and direction is not None:
            witness = _confirm(ws, obj, R, split(direction), radius, "negative_curvature")
    if saddle_like and witness is None:
        witness = _routed_witness(ws, obj, R, G, radius)
    ev = ConvexEvidence(
        relative_gradient=rel, relative_f_gradient=rel_f, gtol=gtol, no_bottleneck=no_bottleneck,
        product_rank=rank, k=k, rank_ambiguous=ambiguous, attained=attained,
        witness_order=None if witness is None else witness.order,
        lambda_min=lam_min, curvature_threshold=threshold, hessian_zero=hessian_zero,
        fixed_rank_lambda_min=None if fixed is None else fixed.min_eigenvalue,
        fixed_rank_error_bound=None if fixed is None else fixed.error_bound,
        fixed_rank_exact=fixed is not None and fixed.method == "dense",
        square_objective=isinstance(obj, DataObjective) and isinstance(obj.loss, Square),
    )
    return ConvexMeasurement(ev, obj.value(R), gnorm, rels, [float(x) for x in sv], lam_max, method, witness,
                             fixed)


# ------------------------------------------------------------------------------- certificate


@dataclass(frozen=True)
class ConvexCertificate:
    """The result of :func:`certify_convex` (JSON schema ``dlcert.check-convex/1``).

    verdict, rule, theorem : the decision, its reason code and the theorem id it rests on.
    message : one line. loss_name : which f. loss : f(R).
    gradient_f_norm, relative_f_gradient : ``||grad f(R)||_F`` and its scale-free ratio.
    relative_gradient_norm, layer_relative_gradient_norms : network gradient (scale-free).
    widths, k, no_bottleneck, product_rank, product_singular_values : the architecture and R.
    attained : whether inf f is attained (``None``: not checked).
    hessian : dense network Hessian extremes (``method`` ``none`` when not computed).
    witness : escape witness of a saddle. reasons : the deciding reason first, then notes.
    tolerances : gtol and the rank cutoff. evidence : the :class:`ConvexEvidence` as a dict.
    seconds : wall time. theorems : extra theorem rows (``yun2018.cor2.3`` with ``--residual``).
    distance_bound : at a global verdict, ``||grad f(R)||_F / mu`` with ``mu`` the smallest
        eigenvalue of ``f''(R)`` (dy * dx <= 400): a bound on ``||R - R*||_F`` when f is quadratic
        (square loss), a local estimate otherwise (see the note); ``None`` when not computed.
    fixed_rank : the second-order test of the rank-constrained problem (:class:`FixedRankTest`),
        run at a critical point with rank R = k < min(dx, dy) and grad f(R) != 0; else ``None``.
    """

    verdict: Verdict
    rule: str
    theorem: str | None
    message: str
    loss_name: str
    loss: float
    gradient_f_norm: float
    relative_f_gradient: float
    relative_gradient_norm: float
    layer_relative_gradient_norms: list[float]
    widths: list[int]
    k: int
    no_bottleneck: bool
    product_rank: int
    product_singular_values: list[float]
    attained: bool | None
    hessian: dict[str, Any]
    witness: Witness | None
    reasons: list[Reason]
    tolerances: dict[str, float]
    evidence: dict[str, Any]
    seconds: float
    theorems: list[Any] = field(default_factory=list)
    distance_bound: float | None = None
    fixed_rank: FixedRankTest | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": "dlcert.check-convex/1"}
        out.update(to_builtin(self))
        return out

    def render_text(self) -> str:
        lines = [f"{self.verdict.value}: {self.message}",
                 f"loss {self.loss_name}: f(R) = {self.loss:.10g}; "
                 f"||grad f(R)|| = {self.gradient_f_norm:.3e} "
                 f"(relative {self.relative_f_gradient:.3e}); network relative gradient "
                 f"{self.relative_gradient_norm:.3e} (gtol {self.tolerances['gtol']:.1e})",
                 f"widths {self.widths}, k = {self.k}{' (no bottleneck)' if self.no_bottleneck else ''}, "
                 f"rank R = {self.product_rank}; infimum attained: "
                 f"{'not checked' if self.attained is None else self.attained}"]
        if self.hessian.get("method") != "none":
            h = self.hessian
            lines.append(f"Hessian ({h['method']}): lambda_min {h['min_eigenvalue']:.3e}, "
                         f"lambda_max {self.hessian['max_eigenvalue']:.3e}")
        if self.fixed_rank is not None and self.fixed_rank.min_eigenvalue is not None:
            fr = self.fixed_rank
            lines.append(f"fixed-rank Hessian ({fr.method}, dimension {fr.dimension}, bottleneck layer "
                         f"{fr.bottleneck_layer}): lambda_min {fr.min_eigenvalue:.3e}, lambda_max "
                         f"{_g(fr.max_eigenvalue)}, error bound {_g(fr.error_bound)}; sigma_k(R) "
                         f"{fr.sigma_min:.3e}; relative Riemannian gradient {fr.riemannian_gradient:.3e}")
        if self.witness is not None:
            w = self.witness
            lines.append(f"witness ({w.kind}, order {w.order}): loss drops by {w.loss_decrease:.3e} "
                         f"(rounding bound {w.rounding_bound:.1e}) within radius {w.radius:.3e}")
        for t in self.theorems:
            lines.append(f"theorem {t.id}: applies {t.applies}, holds {t.holds}: {t.conclusion}")
        lines += [f"- {r}" for r in self.reasons]
        lines.append(f"theorem: {self.theorem or 'n/a'}; {self.seconds:.3f} s")
        return "\n".join(lines) + "\n"


def check_finite_point(objective: Objective, R: np.ndarray, loss_name: str) -> None:
    """One-line error when the product, f or its gradient overflows float64."""
    ok = bool(np.isfinite(R).all())
    if ok:
        G, scale = objective.gradient(R)
        ok = math.isfinite(objective.value(R)) and bool(np.isfinite(G).all()) and math.isfinite(scale)
    if not ok:
        raise InputError(f"the {loss_name} loss or its gradient is not finite at this point: the product "
                         "W_N...W_1 or its outputs overflow float64")


def default_gtol(eps: float) -> float:
    """1e-6 for float64 input, ``10 sqrt(eps)`` for coarser input (docs/losses.md)."""
    return max(1e-6, 10.0 * math.sqrt(eps)) if eps > 1e-15 else 1e-6


def certify_convex(weights: Sequence[Any], objective: Objective, *, loss_name: str = "custom",
                   gtol: float | None = None, eps: float = float(np.finfo(np.float64).eps),
                   radius: float = 1.0) -> ConvexCertificate:
    """Certify ``weights`` (W_1..W_N) for the network loss ``f(W_N ... W_1)`` with convex ``f``."""
    t0 = time.perf_counter()
    ws = check_weight_chain(list(weights), "weights")
    if gtol is not None and not (0 < gtol < math.inf):
        raise InputError(f"gtol is {gtol!r}; expected a positive finite number")
    tol = gtol if gtol is not None else default_gtol(eps)
    with np.errstate(all="ignore"):
        check_finite_point(objective, _chain(ws, 1, len(ws), int(ws[0].shape[1])), loss_name)
        m = measure(ws, objective, loss_name, tol, radius=radius)
    ev = m.evidence
    verdict, reason, theorem = decide(ev)
    reasons = [reason, *notes(ev)]
    widths = [int(ws[0].shape[1])] + [int(w.shape[0]) for w in ws]
    distance = None
    if verdict == Verdict.GLOBAL_MINIMUM:
        distance, note = _distance_bound(objective, _chain(ws, 1, len(ws), widths[0]), m.gradient_f_norm,
                                         loss_name)
        if note is not None:
            reasons.append(note)
    return ConvexCertificate(
        verdict=verdict, rule=reason.code, theorem=theorem, message=reason.message, loss_name=loss_name,
        loss=m.loss, gradient_f_norm=m.gradient_f_norm, relative_f_gradient=ev.relative_f_gradient,
        relative_gradient_norm=ev.relative_gradient, layer_relative_gradient_norms=m.layer_relative_gradients,
        widths=widths, k=ev.k, no_bottleneck=ev.no_bottleneck, product_rank=ev.product_rank,
        product_singular_values=m.product_singular_values, attained=ev.attained,
        hessian={"min_eigenvalue": ev.lambda_min, "max_eigenvalue": m.lambda_max, "method": m.hessian_method,
                 "exactly_zero": ev.hessian_zero},
        witness=m.witness if verdict in (Verdict.STRICT_SADDLE, Verdict.NON_STRICT_SADDLE,
                                         Verdict.INCONCLUSIVE) else None,
        reasons=reasons, tolerances={"gtol": tol, "rank_rtol": RANK_RTOL},
        evidence=to_builtin(ev), seconds=time.perf_counter() - t0, distance_bound=distance,
        fixed_rank=m.fixed_rank,
    )


def _distance_bound(obj: Objective, R: np.ndarray, gnorm: float,
                    loss_name: str) -> tuple[float | None, Reason | None]:
    """``||grad f(R)|| / lambda_min(f''(R))`` when f'' is positive definite at R (small R only)."""
    n = R.size
    if n > 400 or gnorm == 0.0:
        return (0.0 if gnorm == 0.0 else None), None
    H = np.array([obj.hvp(R, np.eye(1, n, c)[0].reshape(R.shape)).ravel() for c in range(n)])
    lam = np.linalg.eigvalsh(0.5 * (H + H.T))
    mu = float(lam[0])
    if not mu > 1e3 * float(np.finfo(np.float64).eps) * n * float(abs(lam[-1])):
        return None, Reason("note.not_strongly_convex",
                            f"f''(R) is singular (smallest eigenvalue {mu:.3e}): no bound on the distance "
                            "to a minimiser (minimisers may form a set, e.g. logits shifted by a constant)")
    bound = gnorm / mu
    if loss_name == "square":
        return bound, Reason("note.distance_bound",
                             f"||R - R*||_F <= ||grad f(R)||_F / lambda_min(f'') = {bound:.3e} (f quadratic)")
    return bound, Reason("note.distance_bound",
                         f"||R - R*||_F ~ ||grad f(R)||_F / lambda_min(f''(R)) = {bound:.3e}: a local "
                         f"estimate (a bound where f'' >= {mu:.3e} on the segment to the minimiser)")


def dense_spectrum(
    hv: Callable[[np.ndarray], np.ndarray], nparams: int
) -> tuple[bool, np.ndarray, np.ndarray]:
    """The Hessian from ``nparams`` Hessian-vector products of unit vectors (small problems):
    whether it is exactly zero, its eigenvalues (ascending) and eigenvectors."""
    H = np.array([hv(np.eye(1, nparams, c)[0]) for c in range(nparams)])
    H = 0.5 * (H + H.T)
    lam, vec = np.linalg.eigh(H)
    return not np.any(H), lam, vec
