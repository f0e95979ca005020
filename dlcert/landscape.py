"""The landscape of a deep linear network from data and widths alone (SPEC §3, §4, §5).

Every critical value is ``L_ols + 1/2 sum_{i not in I} s_i^2`` for an index set I of nonzero
singular values of the whitened target with ``|I| <= k`` (Baldi-Hornik; Kawaguchi 2016;
Achour et al. 2021), and for N >= 2 every such I is attained (a balanced factorisation of
``U_I U_I^T T S^+`` on |I| hidden coordinates is critical). For N = 1 the loss is a convex
quadratic and its only critical value is the optimum.

The ladder counts these sets exactly (``sum_{j<=k'} C(n, j)``, Python ints) and lists the lowest
values by a best-first enumeration that never visits more than ``O(rows * k')`` sets.
Classes of a row (after Achour et al. 2021, SPEC §4), with ``k' = min(k, rank Sigma)``:

* ``global``: I is a top set of size k' (judged by value, so exact ties are global);
* ``strict_saddle``: I is not a top set, or it is a top set {1..r}, r < k', and N = 2;
* ``strict_saddle`` and ``non_strict_saddle_possible``: I = {1..r}, r < k', N >= 3 — which one
  a point at this value is depends on its partial-product ranks ("tightened" or not).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlcert.assumptions import Assumptions, measure_assumptions
from dlcert.certificate import TheoremCheck, Tolerances, to_builtin
from dlcert.errors import InputError
from dlcert.optimum import (
    Whitening,
    balanced_factorization,
    ols_loss,
    optimal_loss,
    optimal_product,
    whiten,
)
from dlcert.statistics import Statistics
from dlcert.strictness import TIE_RTOL, near_tie, sigma_rank
from dlcert.theorems import theorem_table
from dlcert.tolerances import SXX_RTOL, default_tolerances

LANDSCAPE_SCHEMA = "dlcert.landscape/1"

GLOBAL = "global"
STRICT = "strict_saddle"
NON_STRICT_POSSIBLE = "non_strict_saddle_possible"


@dataclass(frozen=True)
class LadderRow:
    """One critical value of the ladder.

    value : ``L_ols + 1/2 sum_{i not in I} s_i^2``.
    index_set : I, 1-based indices of the singular values s_i it keeps (ascending).
    gap, relative_gap : ``value - L*`` computed without cancellation, and ``gap / (syy/2)``.
    classes : which kinds of critical point sit at this value (module docstring).
    """

    value: float
    index_set: list[int]
    gap: float
    relative_gap: float
    classes: list[str]


@dataclass(frozen=True)
class TrialRecord:
    """One random start: where L-BFGS-B stopped and what ``certify`` says about it.

    verdict : the certificate's verdict; converged : the optimiser's success flag.
    loss, relative_gap, relative_gradient_norm : from the certificate (after polishing).
    iterations : L-BFGS-B iterations; message : the optimiser's stop message.
    lbfgs_relative_gradient_norm : where L-BFGS-B stopped, before polishing.
    polish_steps : Newton polishing steps kept (``dlcert.trials.polish``).
    """

    index: int
    verdict: str
    converged: bool
    loss: float
    relative_gap: float
    relative_gradient_norm: float
    iterations: int
    message: str
    lbfgs_relative_gradient_norm: float
    polish_steps: int


@dataclass(frozen=True)
class TrialsSummary:
    """Random-start optimisation summary (``--trials``).

    n, seed : number of starts and the seed of their generator.
    init : how the starts were drawn (see :func:`dlcert.trials.random_start`).
    counts : verdict -> number of end points (every verdict listed, zeros included).
    not_converged : end points where L-BFGS-B reported failure (counted in ``counts`` too).
    records : one :class:`TrialRecord` per start.
    """

    n: int
    seed: int
    init: str
    counts: dict[str, int]
    not_converged: int
    records: list[TrialRecord]


@dataclass(frozen=True)
class Landscape:
    """What the data and the widths alone say about every critical point (``dlcert landscape``).

    widths : ``[d_0, ..., d_N]``; n_layers : N; k : bottleneck width ``min d_i``;
    k_effective : ``k' = min(k, rank Sigma)``; bottleneck_layers : hidden i with ``d_i = k``.
    m : number of samples; optimal_loss : ``L*``; ols_loss : ``L_ols``; half_syy : ``syy/2``
    (the loss of the zero network, and the scale of relative gaps).
    singular_values : s_i of the whitened target ``T`` (descending); sigma_rank : how many are
    nonzero (above ``rank_rtol * s_1``).
    critical_value_count : number of index sets I with ``|I| <= k'`` over the nonzero s_i
    (for N = 1: 1). Distinct sets give distinct values unless sums of s_i^2 coincide.
    critical_values : the lowest ``rows`` of them, ascending (:class:`LadderRow`).
    assumptions : the measured assumptions; theorems : the SPEC §5 table (no point given).
    tolerances : what ties and ranks were judged with; notes : caveats (near ties, unmet
    assumptions); trials : random-start summary or ``None``.
    """

    widths: list[int]
    n_layers: int
    k: int
    k_effective: int
    bottleneck_layers: list[int]
    m: int
    optimal_loss: float
    ols_loss: float
    half_syy: float
    singular_values: list[float]
    sigma_rank: int
    critical_value_count: int
    critical_values: list[LadderRow]
    assumptions: Assumptions
    theorems: list[TheoremCheck]
    tolerances: Tolerances
    notes: list[str] = field(default_factory=list)
    trials: TrialsSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe dict following the ``dlcert.landscape/1`` contract."""
        out: dict[str, Any] = {"schema": LANDSCAPE_SCHEMA}
        for name in self.__dataclass_fields__:
            out[name] = to_builtin(getattr(self, name))
        return out


LANDSCAPE_CONVEX_SCHEMA = "dlcert.landscape-convex/1"


@dataclass(frozen=True)
class ConvexTrialRecord:
    """One random start trained on a convex loss and certified by ``dlcert.convex`` (``--loss``).

    verdict, rule, theorem : the certificate's verdict, reason code and theorem id (the rule
    table of ``check --loss``, docs/losses.md). converged : L-BFGS-B's success flag.
    loss : f(R) at the end point (after polishing). relative_f_gradient, relative_gradient_norm :
    the scale-free gradients of f at R and of the network. product_rank : rank of R.
    iterations, message : L-BFGS-B's. lbfgs_relative_gradient_norm : before polishing.
    polish_steps : Newton steps kept (``dlcert.trials.polish_convex``).
    """

    index: int
    verdict: str
    rule: str
    theorem: str | None
    converged: bool
    loss: float
    relative_f_gradient: float
    relative_gradient_norm: float
    product_rank: int
    iterations: int
    message: str
    lbfgs_relative_gradient_norm: float
    polish_steps: int


@dataclass(frozen=True)
class ConvexTrialsSummary:
    """Random starts on a convex loss: verdict counts (zeros included), reason-code counts, records."""

    n: int
    seed: int
    init: str
    counts: dict[str, int]
    rules: dict[str, int]
    not_converged: int
    records: list[ConvexTrialRecord]


@dataclass(frozen=True)
class ConvexLandscape:
    """``dlcert landscape --loss logistic|cross-entropy|huber[:DELTA]`` (``dlcert.landscape-convex/1``).

    loss : which f. widths, n_layers, k : the architecture and its bottleneck width;
    no_bottleneck : ``k = min(dx, dy)``; bottleneck_layers : hidden i with ``d_i = k``.
    m : samples. attained : whether f attains its infimum (``None``: not checked, too large for
    the LP). theorems : Zhang 2019 rows for these widths (no point given). notes : caveats.
    trials : the random starts, each end point certified by the rule table of ``check --loss``.
    """

    loss: str
    widths: list[int]
    n_layers: int
    k: int
    no_bottleneck: bool
    bottleneck_layers: list[int]
    m: int
    attained: bool | None
    theorems: list[TheoremCheck]
    notes: list[str]
    trials: ConvexTrialsSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe dict following the ``dlcert.landscape-convex/1`` contract."""
        out: dict[str, Any] = {"schema": LANDSCAPE_CONVEX_SCHEMA}
        for name in self.__dataclass_fields__:
            out[name] = to_builtin(getattr(self, name))
        return out


def check_widths(widths: Sequence[int], stats: Statistics) -> list[int]:
    """Validate ``[d_0, ..., d_N]`` against the data (``d_0 = dx``, ``d_N = dy``)."""
    ws = [int(w) for w in widths]
    if len(ws) < 2:
        raise InputError(f"widths {ws}: expected d0,...,dN with N >= 1 (at least two numbers)")
    if any(w < 1 for w in ws):
        raise InputError(f"widths {ws}: every width must be a positive integer")
    if ws[0] != stats.dx or ws[-1] != stats.dy:
        raise InputError(
            f"widths {ws} map {ws[0]} -> {ws[-1]} but the data has dx = {stats.dx}, dy = {stats.dy}"
        )
    return ws


def ladder_count(n_nonzero: int, k_eff: int, n_layers: int) -> int:
    """Number of critical values counted by index set: ``sum_{j=0}^{k'} C(n, j)`` (1 for N = 1)."""
    if n_layers == 1:
        return 1
    return sum(math.comb(n_nonzero, j) for j in range(min(k_eff, n_nonzero) + 1))


def best_index_sets(w: Sequence[float], max_size: int, rows: int) -> list[tuple[int, ...]]:
    """The ``rows`` subsets I of ``range(len(w))`` with ``|I| <= max_size`` of largest ``sum w[I]``.

    ``w`` must be non-negative and sorted descending. Best-first search over a tree in which each
    subset of size j has exactly one parent and no child has a larger sum: a state is a sorted
    index tuple ``c`` and the position ``a`` of its lowest moved element (the root
    ``(0, ..., j-1)`` has none moved, ``a = j-1``). Children: move ``c[a]`` one step right; or,
    when ``c[a]`` has moved, move ``c[a-1]`` (still at its start ``a-1``) to ``a``. Ties are
    broken by size, then lexicographically, so the output is deterministic.
    """
    n = len(w)
    heap: list[tuple[float, int, tuple[int, ...], int]] = []
    for j in range(min(max_size, n) + 1):
        c = tuple(range(j))
        heap.append((-float(sum(w[i] for i in c)), j, c, j - 1))
    heapq.heapify(heap)
    out: list[tuple[int, ...]] = []
    while heap and len(out) < rows:
        neg, j, c, a = heapq.heappop(heap)
        out.append(c)
        if j == 0:
            continue
        limit = c[a + 1] if a + 1 < j else n
        if c[a] + 1 < limit:
            nc = (*c[:a], c[a] + 1, *c[a + 1 :])
            heapq.heappush(heap, (neg + w[c[a]] - w[c[a] + 1], j, nc, a))
        if a > 0 and c[a] > a:
            nc = (*c[: a - 1], a, *c[a:])
            heapq.heappush(heap, (neg + w[a - 1] - w[a], j, nc, a - 1))
    return out


def _deficit(w: np.ndarray, chosen: Sequence[int], r: int) -> float:
    """``sum_{i<r} w_i - sum_{i in chosen} w_i`` (0-based) without cancellation of shared terms."""
    cs = set(chosen)
    return float(sum(w[i] for i in range(r) if i not in cs) - sum(w[i] for i in cs if i >= r))


def classify(w: np.ndarray, chosen: Sequence[int], k_eff: int, n_layers: int, tie: float) -> list[str]:
    """Classes of the critical points with learned set ``chosen`` (0-based; module docstring)."""
    r = len(chosen)
    top = _deficit(w, chosen, r) <= tie
    if top and r == k_eff:
        return [GLOBAL]
    if n_layers == 1:  # cannot happen for a listed row; kept for completeness
        return [GLOBAL]
    if top and n_layers >= 3:
        return [STRICT, NON_STRICT_POSSIBLE]
    return [STRICT]


def map_landscape(
    stats: Statistics,
    widths: Sequence[int],
    *,
    rows: int = 10,
    gtol: float | None = None,
    ftol: float | None = None,
    eps: float | None = None,
) -> Landscape:
    """Map the critical values of the network ``widths`` on the data ``stats``."""
    ws = check_widths(widths, stats)
    if rows < 0:
        raise InputError(f"rows must be >= 0, got {rows}")
    stats.require_targets()
    n_layers = len(ws) - 1
    tol = default_tolerances(eps if eps is not None else stats.eps, ws, gtol, ftol)
    wh = whiten(stats, SXX_RTOL)
    a = measure_assumptions(stats, wh, ws, tol.rank_rtol)
    n_nz = sigma_rank(wh, tol.rank_rtol)
    k_eff = min(a.k, n_nz)
    w = wh.s[:n_nz] ** 2
    tie = TIE_RTOL * float(w[0]) if n_nz else 0.0
    lols = ols_loss(stats, wh)
    lstar = optimal_loss(stats, wh, a.k)
    half = 0.5 * stats.syy

    if n_layers == 1:
        sets: list[tuple[int, ...]] = [tuple(range(k_eff))][: max(rows, 0)]
    else:
        sets = best_index_sets(list(w), k_eff, rows)
    ladder = []
    for c in sets:
        kept = set(c)
        value = lols + 0.5 * float(sum(wh.s[i] ** 2 for i in range(wh.s.size) if i not in kept))
        gap = 0.5 * _deficit(w, c, k_eff)
        ladder.append(
            LadderRow(
                value=value,
                index_set=[i + 1 for i in c],
                gap=gap,
                relative_gap=gap / half,
                classes=classify(w, c, k_eff, n_layers, tie),
            )
        )
    return Landscape(
        widths=ws,
        n_layers=n_layers,
        k=a.k,
        k_effective=k_eff,
        bottleneck_layers=a.bottleneck_layers,
        m=stats.m,
        optimal_loss=lstar,
        ols_loss=lols,
        half_syy=half,
        singular_values=[float(x) for x in wh.s],
        sigma_rank=n_nz,
        critical_value_count=ladder_count(n_nz, k_eff, n_layers),
        critical_values=ladder,
        assumptions=a,
        theorems=theorem_table(a, tol, None),
        tolerances=tol,
        notes=_notes(stats, wh, a, tol, k_eff, n_layers),
    )


def _notes(
    stats: Statistics, wh: Whitening, a: Assumptions, tol: Tolerances, k_eff: int, n_layers: int
) -> list[str]:
    notes = []
    if k_eff < a.k:
        notes.append(
            f"rank Sigma = {k_eff} < k = {a.k}: the optimum uses only {k_eff} directions; "
            "index sets run over the nonzero s_i only"
        )
    if near_tie(wh, k_eff, stats, tol.ftol):
        notes.append(
            f"s_{k_eff} and s_{k_eff + 1} are tied within ftol {tol.ftol:.1e}: a saddle value lies "
            "within the tolerance of L*, so check will say inconclusive near the optimum"
        )
    if not a.sigma_distinct:
        notes.append(
            f"Sigma has tied eigenvalues (smallest relative gap {a.sigma_min_relative_gap:.3e}): "
            "top sets are judged by value"
        )
    if n_layers >= 2 and not a.yun:
        notes.append(
            "Sxx or Syx is rank deficient: the values are exact, but the strict/non-strict classes "
            "rest on the rank rule, which assumes both of full rank"
        )
    if n_layers == 1:
        notes.append("N = 1: the loss is convex; its only critical value is the optimum")
    return notes


def balanced_optimum(stats: Statistics, widths: Sequence[int]) -> list[np.ndarray]:
    """A balanced global minimiser ``W_1..W_N`` of these widths (SPEC §3).

    ``R* = U_k' U_k'^T T S^+`` has rank ``k' = min(k, rank Sigma)``; with its thin SVD
    ``R* = P diag(sigma) Q^T``, ``W_1 = diag(sigma)^(1/N) Q^T``, ``W_i = diag(sigma)^(1/N)`` on
    the first k' hidden coordinates, ``W_N = P diag(sigma)^(1/N)``, so ``W_{i+1}^T W_{i+1} =
    W_i W_i^T`` (balanced) and the product is ``R*``.
    """
    ws = check_widths(widths, stats)
    tol = default_tolerances(stats.eps, ws)
    wh = whiten(stats, SXX_RTOL)
    k_eff = min(min(ws), sigma_rank(wh, tol.rank_rtol))
    return balanced_factorization(optimal_product(wh, k_eff), ws)
