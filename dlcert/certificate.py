"""The certificate: plain, frozen result objects that renderers turn into output.

Nothing here computes or prints. :meth:`Certificate.to_dict` is the single place where numpy
values become Python builtins (and non-finite floats become ``None``), so JSON and YAML output
never see numpy scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum, IntEnum, StrEnum
from typing import Any

import numpy as np

CHECK_SCHEMA = "dlcert.check/1"


class Verdict(StrEnum):
    """The five verdicts of SPEC §7."""

    GLOBAL_MINIMUM = "global_minimum"
    STRICT_SADDLE = "strict_saddle"
    NON_STRICT_SADDLE = "non_strict_saddle"
    NOT_CRITICAL = "not_critical"
    INCONCLUSIVE = "inconclusive"

    @property
    def exit_code(self) -> ExitCode:
        return _VERDICT_EXIT[self]


class ExitCode(IntEnum):
    """Process exit codes (SPEC §7). A CI gate reads these."""

    OK = 0  # certified global minimum; success for commands that give no verdict
    INTERNAL_ERROR = 1  # a bug in dlcert
    INPUT_ERROR = 2  # usage or input error
    SADDLE = 3  # strict or non-strict saddle
    NOT_CRITICAL = 4
    INCONCLUSIVE = 5


_VERDICT_EXIT = {
    Verdict.GLOBAL_MINIMUM: ExitCode.OK,
    Verdict.STRICT_SADDLE: ExitCode.SADDLE,
    Verdict.NON_STRICT_SADDLE: ExitCode.SADDLE,
    Verdict.NOT_CRITICAL: ExitCode.NOT_CRITICAL,
    Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
}


@dataclass(frozen=True)
class Tolerances:
    """Tolerances a certificate was judged with (all relative, see ``dlcert.tolerances``).

    gtol : bound on the relative gradient norm for "critical" (the larger of ``gtol_requested``
        and ``gradient_floor``).
    ftol : bound on ``gap / (syy/2)`` for "global", and on ``|L - c_S| / (syy/2)`` for "at the
        critical value c_S" (each widened by the error bound of the measured quantity).
    rank_rtol : singular values of the data's statistics below ``rank_rtol * sigma_max`` count as
        zero.
    hessian_rtol : curvature below ``-hessian_rtol * |lambda_max|`` counts as negative.
    eps : machine epsilon of the data, which the defaults ``gtol``, ``ftol``, ``rank_rtol`` derive
        from.
    gtol_requested : the gradient tolerance asked for (or its default from ``eps``).
    gradient_floor : how far rounding the stored weights to ``eps`` can move the relative
        gradient of an exact critical point (``eps * kappa``, ``kappa`` the products' scale).
    ftol_requested : the value tolerance asked for (or its default); ``ftol`` is the larger of it
        and ``value_floor``, what rounding the stored weights adds to a critical point's gap.
    weights_eps : machine epsilon of the stored weights (bfloat16 7.8e-3); the two floors derive
        from it.
    product_rank_rtol : singular values of the weights and their products below
        ``product_rank_rtol * max(sigma_max, product scale)`` count as zero (``0``: ``rank_rtol``).
    """

    gtol: float
    ftol: float
    rank_rtol: float
    hessian_rtol: float
    eps: float
    gtol_requested: float = 0.0
    gradient_floor: float = 0.0
    ftol_requested: float = 0.0
    value_floor: float = 0.0
    weights_eps: float = 0.0
    product_rank_rtol: float = 0.0

    @property
    def products_rtol(self) -> float:
        """The rank cutoff for the weights and their products."""
        return self.product_rank_rtol or self.rank_rtol


@dataclass(frozen=True)
class Reason:
    """Why a verdict was given (or not): a stable ``code`` a CI job can branch on, and a message."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


@dataclass(frozen=True)
class CriticalValue:
    """The critical value a verdict rests on (SPEC §4: ``c_S = L_ols + 1/2 sum_{i not in S} s_i^2``).

    index_set : the learned set S (1-based), read from the product's column space.
    value : ``c_S`` (loss units). excess : ``(L - c_S) / (syy/2)``, computed stably.
    above_optimum : ``(c_S - L*) / (syy/2)`` (0 for the global value).
    error : bound on the error of ``excess`` and of the relative gap (statistics held to
        rounding, arithmetic), relative to ``syy/2``.
    """

    index_set: list[int] | None
    value: float | None
    excess: float | None
    above_optimum: float | None
    error: float


@dataclass(frozen=True)
class TheoremCheck:
    """One row of the theorems table (SPEC §5).

    id : stable theorem id, e.g. ``yun2018.thm2.1``.
    applies : whether the theorem's assumptions hold for this data and architecture.
    holds : whether its condition holds at this point (``None`` when not applicable/undecided).
    conclusion : what follows, in one sentence.
    evidence : the measured numbers behind ``applies`` and ``holds``.
    """

    id: str
    applies: bool
    holds: bool | None
    conclusion: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RankRule:
    """Strictness by partial-product ranks (after Achour et al. 2021; SPEC §4).

    decision : ``global_minimum``, ``strict_saddle``, ``non_strict_saddle`` or ``None``
        when the rule does not apply or a rank is ambiguous.
    index_set : the learned index set S (1-based indices of singular values of T).
    top_set : whether S carries the |S| largest singular values.
    j_b, j_t : the O(N) tightness indices (``None`` when not needed).
    tightened : whether three consecutive blocks of rank r exist.
    reason : why the rule could not decide (empty when it did).
    """

    decision: str | None
    index_set: list[int] | None
    top_set: bool | None
    j_b: int | None
    j_t: int | None
    tightened: bool | None
    reason: str = ""


@dataclass(frozen=True)
class MissingDirection:
    """A singular direction ``l`` of T that the learned set S misses, and where it can be routed
    at second order (``dlcert.channels``; docs/strictness.md, section 3).

    index : ``l`` (1-based). s : ``s_l``.
    input_layers : layers ``i`` whose input carries ``v_l`` (``B_i S v_l != 0``).
    output_layers : layers ``j`` whose output ``u_l`` reads (``A_j^T u_l != 0``).
    strength : the strongest channel carrying ``l`` alone (coupling
        ``s_l ||A_l2^T u_l|| ||B_l1 S v_l|| / (||A_l2|| ||E|| ||B_l1||)`` times the pair's reach);
        layers, dead_end : where (``None``: no pair with a dead end carries it).
    """

    index: int
    s: float
    input_layers: list[int]
    output_layers: list[int]
    strength: float
    layers: tuple[int, int] | None
    dead_end: str | None


@dataclass(frozen=True)
class Channel:
    """The strongest second-order channel (``dlcert.channels``; docs/strictness.md).

    strength : scale-free strength (0 when there is none). layers : ``(l1, l2)``, 1-based.
    dead_end : ``"input"`` (``A_l1 z = 0``) or ``"output"`` (``y^T B_l2 S = 0``).
    noise : strengths up to ten times this are rounding.
    weaker_factor : over all pairs, the largest of the smaller of a channel's two factors
        (coupling ``sigma_max(G)/(||A|| ||E|| ||B||)``, reach ``sigma_max(M N)/||M||``); absence of
        every channel needs this at rounding level, not only the strength (their product).
    missing : the criterion's inputs per missing direction (the largest ``MISSING_SHOWN``).
    input_dead_ends, output_dead_ends : layers ``l`` with ``null(A_l) != 0`` (their output has
        directions nothing above reads) and with ``null((B_l S)^T) != 0`` (their input has
        directions no data reaches).
    """

    strength: float
    layers: tuple[int, int] | None
    dead_end: str | None
    noise: float = 0.0
    weaker_factor: float = 0.0
    missing: tuple[MissingDirection, ...] = ()
    input_dead_ends: tuple[int, ...] = ()
    output_dead_ends: tuple[int, ...] = ()


@dataclass(frozen=True)
class HessianSpectrum:
    """Extreme eigenvalues of the Hessian and how they were obtained.

    min_eigenvalue, max_eigenvalue : the extremes (``None`` if not computed).
    method : ``dense``, ``lanczos``, ``lobpcg`` or ``none``.
    converged : whether ``min_eigenvalue`` is a converged eigenvalue (never inferred).
    iterations : solver iterations (Hessian-vector products for ``lanczos``).
    residual : ``||H v - lambda v|| / |lambda_max|`` of the reported minimal pair.
    seconds : wall time spent on the spectrum.
    direction_curvature : Rayleigh quotient of the structured direction (an upper bound on
        ``min_eigenvalue`` that needs no eigen-solver), ``None`` when there is none.
    extremes : further smallest eigenvalues requested with ``--eigs``.
    hvp_count : Hessian-vector products spent (the dense path counts the n columns).
    extreme_residuals : ``||H v - lambda v|| / |lambda_max|`` of each of ``extremes``.
    min_eigenvalue_error, max_eigenvalue_error : bounds on the error of the extremes (dense:
        rounding of H and of ``eigh``; iterative: the residual norm).
    normalized : eigenvalues are those of the exactly rescaled problem (``dlcert.normalize``).
    """

    min_eigenvalue: float | None
    max_eigenvalue: float | None
    method: str
    converged: bool
    iterations: int = 0
    residual: float | None = None
    seconds: float = 0.0
    direction_curvature: float | None = None
    extremes: list[float] = field(default_factory=list)
    hvp_count: int = 0
    extreme_residuals: list[float] = field(default_factory=list)
    min_eigenvalue_error: float | None = None
    max_eigenvalue_error: float | None = None
    normalized: bool = True


@dataclass(frozen=True)
class Witness:
    """A point ``W'`` near ``W`` with lower loss: the re-checkable evidence of a saddle.

    kind : ``negative_curvature`` (order 2) or ``higher_order`` (order >= 3).
    radius : ``||W' - W||_F``.
    loss_decrease : ``L(W) - L(W')`` evaluated stably (> 0).
    rounding_bound : bound on the rounding error of ``loss_decrease``.
    order : the lowest power q of t in ``L(W + tV) - L(W)``.
    coefficient : the coefficient of ``t^q`` (negative), with ``||V||_F = 1``.
    layers_moved : 1-based indices of the layers that move.
    point : the weights ``W'`` (not part of :meth:`Certificate.to_dict`).
    coefficient_scale : the magnitude of the terms the coefficient is summed from (the same sums
        on absolute values): a coefficient small against it is what rounding can create.
    """

    kind: str
    radius: float
    loss_decrease: float
    rounding_bound: float
    order: int
    coefficient: float
    layers_moved: list[int]
    point: tuple[np.ndarray, ...] = field(repr=False, compare=False)
    coefficient_scale: float | None = None


@dataclass(frozen=True)
class Certificate:
    """Everything ``dlcert check`` measured and concluded about one point ``W``.

    verdict : one of :class:`Verdict`.
    message : one-sentence summary of the verdict and the rule that gave it.
    loss : ``L(W)``.
    optimal_loss : ``L*`` for these widths (SPEC §3).
    ols_loss : ``L_ols``, the loss no linear map removes.
    gap, relative_gap : ``L(W) - L*`` computed stably, and ``gap / (syy/2)``.
    gradient_norm : ``sqrt(sum_i ||dL/dW_i||_F^2)``.
    relative_gradient_norm : the scale-free norm of ``dlcert.objective.relative_gradient``.
    layer_gradient_norms, layer_relative_gradient_norms : per layer, input to output.
    widths : ``[d_0, ..., d_N]``; k : bottleneck width; bottleneck_layers : indices with d_i = k.
    product_rank : numerical rank of ``R``; product_singular_values : singular values of ``R``.
    rank_gap : ``sigma_{r+1}(R) / sigma_r(R)``-style separation at the rank cut (0 = clean).
    singular_values : singular values s_i of the whitened target ``T``.
    rank_rule : the strictness rule's result; hessian : the measured spectrum.
    theorems : the SPEC §5 table; witness : escape witness for saddles, else ``None``.
    reasons : why the verdict (first: the rule that decided), then notes; each with a code.
    tolerances : what everything was judged with.
    m : number of samples the statistics came from.
    critical_value : the critical value the verdict rests on.
    channel : the strongest second-order channel (``None`` when not measured).
    rule : the code of the rule of :func:`dlcert.rules.decide` that gave the verdict.
    evidence : every number and threshold the rule table read (re-derive the verdict from it).
    """

    verdict: Verdict
    message: str
    loss: float
    optimal_loss: float
    ols_loss: float
    gap: float
    relative_gap: float
    gradient_norm: float
    relative_gradient_norm: float
    layer_gradient_norms: list[float]
    layer_relative_gradient_norms: list[float]
    widths: list[int]
    k: int
    bottleneck_layers: list[int]
    product_rank: int
    product_singular_values: list[float]
    rank_gap: float
    singular_values: list[float]
    rank_rule: RankRule
    hessian: HessianSpectrum
    theorems: list[TheoremCheck]
    witness: Witness | None
    reasons: list[Reason]
    tolerances: Tolerances
    m: int
    critical_value: CriticalValue | None = None
    channel: Channel | None = None
    rule: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return self.verdict.exit_code

    def passed(self, require: str = "global") -> bool:
        """Whether this verdict passes ``--require`` (docs/ci.md)."""
        from dlcert.api import passed

        return passed(self, require)

    def to_json(self, indent: int | None = 2) -> str:
        """The ``dlcert.check/1`` JSON (plus the loss in MSE units)."""
        from dlcert.api import to_json

        return to_json(self, indent)

    def _repr_html_(self) -> str:
        from dlcert.render.notebook import certificate_html

        return certificate_html(self)

    def __rich__(self) -> Any:
        from dlcert.render.notebook import certificate_rich

        return certificate_rich(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe dict following the ``dlcert.check/1`` contract."""
        out: dict[str, Any] = {"schema": CHECK_SCHEMA}
        for f in fields(self):
            out[f.name] = to_builtin(getattr(self, f.name))
        return out


def to_builtin(value: Any) -> Any:
    """Recursively convert numpy values, enums and dataclasses into JSON/YAML-safe builtins.

    Non-finite floats become ``None``; arrays become nested lists; the witness point is dropped.
    """
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_builtin(getattr(value, f.name))
            for f in fields(value)
            if f.name != "point"
        }
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_builtin(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else None
    return value
