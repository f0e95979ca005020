"""The verdict, decided by one ordered table of rules over recorded evidence.

:func:`decide` reads only an :class:`Evidence` (plain numbers and flags that
:func:`dlcert.evidence.measure` recorded, thresholds included); it imports no numpy and computes
nothing. Rules are tried in order; the first whose condition holds gives the verdict and its
stable reason code. Documentation of every rule: ``docs/verdicts.md``.

The order encodes SPEC §3-§4 (and ``docs/verdicts.md``):

0. a measurement the time budget cut short decides nothing;
1. first order: a gradient above ``gtol`` is not critical;
2. the value: a verdict names the critical value it rests on. Global when the gap (with its
   error bound) is within ``ftol``; a saddle only at a non-global critical value ``c_S``
   (the learned set S) clearly apart from ``L*``; a loss between critical values is not critical;
3. independent routes (Yun et al. 2018, the rank rule after Achour et al. 2021, the Hessian)
   that contradict the value route make the verdict ``inconclusive``;
4. strictness: strict needs an order-2 witness with curvature beyond the Hessian tolerance;
   non-strict needs the proved criterion (tightened partial-product ranks) and a higher-order
   escape witness. Anything else is ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dlcert.certificate import Reason, Verdict


@dataclass(frozen=True)
class Evidence:
    """Everything the rule table reads. Relative quantities are divided by ``syy/2``.

    depth : N. all_layers_nonzero : every W_i has a non-zero entry.
    relative_gradient : max over layers of the scale-free gradient norm.
    gtol : the gradient tolerance applied: ``max(gtol_requested, min(gradient_floor, gtol_ceiling))``.
    gtol_requested : asked for or derived from the input precision.
    gradient_floor : how far rounding the stored weights can move the relative gradient.
    gtol_ceiling : a precision floor raises gtol up to this, no further; a gradient between the
        applied gtol and the floor is ``inconclusive`` (rounding may explain it, but accepting it
        would accept almost anything).
    relative_gap : ``(L - L*) / (syy/2)``. value_error : error bound of relative gap and excess.
    ftol : tolerance on the gap and on the excess.
    learned_set : S read from the product (``None`` when unreadable). top_set : S is a top set.
    misplaced : S misses a larger s_j than one it holds, by more than ftol in value (then the
        exact point is a strict saddle: Achour et al. 2021, item 2 of the rank rule).
    critical_excess : ``(L - c_S) / (syy/2)``. critical_value_above_optimum : ``(c_S - L*) / (syy/2)``.
    tie_at_k : s_k and s_(k+1) are tied within ftol (not exactly), so c_S near L* is ambiguous.
    rank_rule : decision of the rank rule or ``None``; rank_rule_reason : why undecided.
    yun_id, yun_holds : Yun et al. 2018 Thm 2.1/2.2 when it applies with a decided condition.
    kawaguchi_iv : Kawaguchi 2016 Thm 2.3(iv) applies and holds (every saddle strict).
    hessian_method : ``dense``, ``lobpcg``, ``lanczos`` or ``none``.
    lambda_min, lambda_min_error, lambda_max : measured extremes and the error bound of lambda_min.
    curvature_threshold : curvature below ``-curvature_threshold`` counts as negative.
    solver_failure : the solver reported a lambda_min that cannot be true.
    witness_order : lowest order of the best confirmed escape witness (``None``: none found).
    witness_curvature : ``v^T H v`` along the order-2 witness direction (``None`` otherwise).
    ftol_requested, value_floor : ``ftol`` is the larger of the two, the floor counting up to a
        ceiling (``docs/tolerances.md``); a gap between ``ftol`` and the floor is ``inconclusive``.
    witness_threshold : curvature along the witness below ``-witness_threshold`` is beyond what
        the point's distance from criticality can create (``hessian_rtol`` times the magnitude of
        the terms of that coefficient: invariant under a change of basis between layers).
    channel_strength : strongest second-order channel (``dlcert.channels``; ``None``: not measured).
    channel_noise : channel strengths up to ``10 * channel_noise`` are rounding (no channel).
    channel_weaker_factor : the largest over pairs of the smaller of a channel's two factors
        (``dlcert.channels``); "no channel" needs it at rounding level too (``None``: not measured).
    channel_noise_ceiling : above it (an ill-conditioned change of basis between layers, which
        shrinks channel strengths), the absence of a channel proves nothing.
    complete : every measurement before the searches finished within the time budget (when
        false, the fields after the gradient are placeholders and nothing is certified).
    vanishing_layers : layers whose relative gradient was taken as 0 because the product above or
        below them is zero within the rounding of its factors (``dlcert.evidence``).
    """

    depth: int
    all_layers_nonzero: bool
    relative_gradient: float
    gtol: float
    gtol_requested: float
    gradient_floor: float
    gtol_ceiling: float
    relative_gap: float
    value_error: float
    ftol: float
    learned_set: tuple[int, ...] | None
    top_set: bool | None
    misplaced: bool
    critical_excess: float | None
    critical_value_above_optimum: float | None
    tie_at_k: bool
    rank_rule: str | None
    rank_rule_reason: str
    yun_id: str | None
    yun_holds: bool | None
    kawaguchi_iv: bool
    hessian_method: str
    lambda_min: float | None
    lambda_min_error: float | None
    lambda_max: float | None
    curvature_threshold: float
    solver_failure: bool
    witness_order: int | None
    witness_curvature: float | None
    channel_strength: float | None = None
    channel_noise: float = 0.0
    channel_noise_ceiling: float = 1e-8
    channel_weaker_factor: float | None = None
    witness_threshold: float | None = None
    complete: bool = True
    ftol_requested: float = 0.0
    value_floor: float = 0.0
    vanishing_layers: tuple[int, ...] = ()

    # Derived predicates (pure arithmetic on the fields above).
    @property
    def gap_certainly_within(self) -> bool:
        return self.relative_gap + self.value_error <= self.ftol

    @property
    def gap_certainly_beyond(self) -> bool:
        return self.relative_gap - self.value_error > self.ftol

    @property
    def at_critical_value(self) -> bool:
        return self.critical_excess is not None and abs(self.critical_excess) <= self.ftol + self.value_error

    @property
    def strong_order2(self) -> bool:
        """An order-2 witness whose curvature is beyond the Hessian tolerance (proved negative)."""
        # Both thresholds must be cleared: the per-direction one alone is blind to the curvature
        # that being off-critical creates along dead-end directions (seen under changes of basis).
        threshold = max(self.curvature_threshold, self.witness_threshold or 0.0)
        return (
            self.witness_order == 2
            and self.witness_curvature is not None
            and self.witness_curvature < -threshold
        )

    @property
    def strong_order2_global(self) -> bool:
        """The order-2 witness is beyond the (coarser) whole-Hessian threshold too."""
        return (
            self.witness_order == 2
            and self.witness_curvature is not None
            and self.witness_curvature < -self.curvature_threshold
        )

    @property
    def channel_found(self) -> bool:
        """A second-order channel beyond rounding (10 x its noise and above the noise ceiling, below
        which strengths are rounding-level even on well-conditioned points): at an exact critical
        point a channel proves strictness (docs/strictness.md, section 2), so it contradicts any
        non-strict criterion."""
        return (
            self.channel_strength is not None
            and self.channel_strength > max(10.0 * self.channel_noise, self.channel_noise_ceiling)
        )

    @property
    def channel_proves_strict(self) -> bool:
        """A channel 100 times beyond its noise (section 2 of docs/strictness.md proves strictness
        at an exact critical point from one), confirmed by an order-2 witness at the stored point
        whose curvature clears its own direction's rounding threshold."""
        return (
            self.channel_strength is not None
            and self.channel_strength > max(100.0 * self.channel_noise, self.channel_noise_ceiling)
            and self.witness_order == 2
            and self.witness_curvature is not None
            and self.witness_threshold is not None
            and self.witness_curvature < -self.witness_threshold
        )

    @property
    def proved_non_strict(self) -> bool:
        """Tightened ranks, or no second-order channel."""
        return self.rank_rule == "non_strict_saddle" or self.no_channel

    @property
    def no_channel(self) -> bool:
        """No second-order channel beyond rounding (and S is a top set): every pair has a factor
        at rounding level. The strength alone is not enough: near the boundary of its orbit a
        genuine channel's two factors can each be far above rounding while their product is not."""
        factor = self.channel_strength if self.channel_weaker_factor is None else max(
            self.channel_strength or 0.0, self.channel_weaker_factor)
        return (
            self.channel_strength is not None
            and factor is not None
            and not self.misplaced
            and factor <= 10.0 * self.channel_noise
            and self.channel_noise <= self.channel_noise_ceiling
        )

    @property
    def eigenvalue_negative(self) -> bool:
        """lambda_min plus its error bound is below the negative-curvature threshold."""
        return (
            self.lambda_min is not None
            and self.lambda_min_error is not None
            and not self.solver_failure
            and self.lambda_min + self.lambda_min_error < -self.curvature_threshold
        )


@dataclass(frozen=True)
class Rule:
    """One row of the table: a stable code, the verdict, a condition and its message."""

    code: str
    verdict: Verdict
    when: Callable[[Evidence], bool]
    says: Callable[[Evidence], str]


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3e}"


def _is_saddle_rule(e: Evidence) -> bool:
    return e.rank_rule in ("strict_saddle", "non_strict_saddle")


def _global_by_value(e: Evidence) -> bool:
    return e.gap_certainly_within


def _saddle_by_value(e: Evidence) -> bool:
    return (
        e.gap_certainly_beyond
        and e.at_critical_value
        and e.critical_value_above_optimum is not None
        and e.critical_value_above_optimum > e.ftol + e.value_error
    )


RULES: tuple[Rule, ...] = (
    # 0. The time budget.
    Rule("inconclusive.time_budget", Verdict.INCONCLUSIVE,
         lambda e: not e.complete,
         lambda e: ("the time budget ended before the ranks, the rank rule and the theorem table were "
                    "measured (note.time_budget says where); nothing is certified")),
    # 1. First order.
    Rule("not_critical.gradient", Verdict.NOT_CRITICAL,
         lambda e: not e.relative_gradient <= max(e.gtol, e.gradient_floor),
         lambda e: f"relative gradient norm {_g(e.relative_gradient)} > gtol {e.gtol:.1e}" + (
             f" and above the {e.gradient_floor:.1e} rounding the stored weights can cause"
             if e.gradient_floor > e.gtol else "")),
    Rule("inconclusive.precision_floor", Verdict.INCONCLUSIVE,
         lambda e: e.relative_gradient > e.gtol,
         lambda e: (f"relative gradient norm {_g(e.relative_gradient)} exceeds gtol {e.gtol:.1e}; the "
                    f"stored precision could account for up to {e.gradient_floor:.1e}, above the "
                    f"{e.gtol_ceiling:.0e} beyond which a precision floor proves nothing")),
    # 2. The value.
    Rule("inconclusive.value_floor", Verdict.INCONCLUSIVE,
         lambda e: (e.value_floor > e.ftol and not e.gap_certainly_within
                    and e.relative_gap - e.value_error <= e.value_floor),
         lambda e: (f"relative gap {_g(e.relative_gap)} exceeds ftol {e.ftol:.1e}; rounding the stored "
                    f"weights could account for up to {e.value_floor:.1e}, beyond the most a value "
                    "floor may raise ftol to (a tolerance that large would pass anything)")),
    Rule("inconclusive.gap_within_error", Verdict.INCONCLUSIVE,
         lambda e: not e.gap_certainly_within and not e.gap_certainly_beyond,
         lambda e: (f"relative gap {_g(e.relative_gap)} +- {e.value_error:.1e} straddles ftol {e.ftol:.1e}: "
                    "L* or the loss is not known well enough to decide")),
    Rule("inconclusive.tie_at_optimum", Verdict.INCONCLUSIVE,
         lambda e: _global_by_value(e) and e.tie_at_k and e.top_set is not True,
         lambda e: ("s_k and s_(k+1) are tied within ftol: the critical value of another index set lies "
                    "within the tolerance of L* and the learned set is not the top set")),
    Rule("inconclusive.yun_disagrees", Verdict.INCONCLUSIVE,
         lambda e: _global_by_value(e) and e.yun_holds is False,
         lambda e: f"the gap {_g(e.relative_gap)} <= ftol certifies global but {e.yun_id} says saddle"),
    Rule("inconclusive.rank_rule_disagrees", Verdict.INCONCLUSIVE,
         lambda e: _global_by_value(e) and _is_saddle_rule(e),
         lambda e: f"the gap certifies global but the rank rule says {e.rank_rule}"),
    Rule("inconclusive.negative_curvature_at_minimum", Verdict.INCONCLUSIVE,
         lambda e: _global_by_value(e) and (e.eigenvalue_negative or e.strong_order2),
         lambda e: (f"the gap certifies global but the curvature {_g(e.witness_curvature)} / lambda_min "
                    f"{_g(e.lambda_min)} is below -{e.curvature_threshold:.3e}")),
    Rule("global.gap", Verdict.GLOBAL_MINIMUM,
         _global_by_value,
         lambda e: (f"critical at L*: relative gap {_g(e.relative_gap)} (error <= {e.value_error:.1e}) "
                    f"<= ftol {e.ftol:.1e}")),
    Rule("inconclusive.no_learned_set", Verdict.INCONCLUSIVE,
         lambda e: e.learned_set is None,
         lambda e: "the learned index set S cannot be read from the product: no critical value to match"),
    Rule("not_critical.between_critical_values", Verdict.NOT_CRITICAL,
         lambda e: not e.at_critical_value,
         lambda e: (f"the loss lies between critical values: L - c_S = {_g(e.critical_excess)} (relative) "
                    f"for the learned set S = {list(e.learned_set or ())}, beyond ftol {e.ftol:.1e} + error "
                    f"{e.value_error:.1e}; a small gradient hides a gap in soft directions")),
    Rule("inconclusive.critical_value_near_optimum", Verdict.INCONCLUSIVE,
         lambda e: not _saddle_by_value(e),
         lambda e: (f"the matched critical value is only {_g(e.critical_value_above_optimum)} (relative) above L*, "
                    f"within ftol {e.ftol:.1e} + error {e.value_error:.1e}")),
    # 3. Independent routes against the saddle value.
    Rule("inconclusive.yun_disagrees", Verdict.INCONCLUSIVE,
         lambda e: e.yun_holds is True,
         lambda e: f"the loss sits at a saddle's critical value but {e.yun_id} says global"),
    Rule("inconclusive.rank_rule_disagrees", Verdict.INCONCLUSIVE,
         lambda e: e.rank_rule == "global_minimum",
         lambda e: "the loss sits at a saddle's critical value but the rank rule says global"),
    # 4. Strictness.
    Rule("inconclusive.strictness_conflict", Verdict.INCONCLUSIVE,
         lambda e: ((e.strong_order2_global or e.eigenvalue_negative or e.channel_found)
                    and e.proved_non_strict),
         lambda e: ("a non-strictness criterion (tightened ranks or no second-order channel) holds, yet "
                    + (f"a second-order channel of strength {_g(e.channel_strength)} > 10 x rounding "
                       f"{e.channel_noise:.1e} was measured (strict at a critical point)"
                       if e.channel_found else
                       f"negative curvature {_g(e.witness_curvature)} / lambda_min {_g(e.lambda_min)} "
                       f"beyond -{e.curvature_threshold:.3e} was measured"))),
    Rule("strict.negative_curvature", Verdict.STRICT_SADDLE,
         lambda e: e.strong_order2 and not e.proved_non_strict,
         lambda e: (f"order-2 escape: curvature v^T H v = {_g(e.witness_curvature)} < "
                    f"-{max(e.curvature_threshold, e.witness_threshold or 0.0):.3e} "
                    "along a unit direction")),
    Rule("strict.channel", Verdict.STRICT_SADDLE,
         lambda e: e.channel_proves_strict and not e.proved_non_strict,
         lambda e: (f"second-order channel of strength {_g(e.channel_strength)} > 100 x rounding "
                    f"{e.channel_noise:.1e} (strict at the critical point, docs/strictness.md), "
                    f"confirmed by an order-2 escape with curvature {_g(e.witness_curvature)} < "
                    f"-{e.witness_threshold or 0.0:.3e} along its direction")),
    Rule("strict.misplaced_set", Verdict.STRICT_SADDLE,
         lambda e: e.misplaced and e.witness_order == 2,
         lambda e: (f"the learned set S = {list(e.learned_set or ())} misses a larger singular value than one it "
                    f"holds (a strict saddle after Achour et al. 2021); order-2 escape with curvature "
                    f"{_g(e.witness_curvature)}")),
    Rule("inconclusive.kawaguchi_iv_conflict", Verdict.INCONCLUSIVE,
         lambda e: e.rank_rule == "non_strict_saddle" and e.kawaguchi_iv,
         lambda e: "the rank rule says non-strict but Kawaguchi 2016 Thm 2.3(iv) says every saddle is strict"),
    Rule("inconclusive.no_escape_witness", Verdict.INCONCLUSIVE,
         lambda e: e.rank_rule == "non_strict_saddle" and e.witness_order is None,
         lambda e: "the rank rule says non-strict but no higher-order escape witness was found"),
    Rule("non_strict.tightened", Verdict.NON_STRICT_SADDLE,
         lambda e: e.rank_rule == "non_strict_saddle",
         lambda e: (f"tightened partial-product ranks (after Achour et al. 2021): no negative curvature; "
                    f"the loss drops like t^{e.witness_order} along the escape witness")),
    Rule("inconclusive.no_channel_witness", Verdict.INCONCLUSIVE,
         lambda e: e.no_channel and e.witness_order is None,
         lambda e: "no second-order channel (non-strict) but no higher-order escape witness was found"),
    Rule("non_strict.no_channel", Verdict.NON_STRICT_SADDLE,
         lambda e: e.no_channel,
         lambda e: (f"no second-order channel: the strongest pair of layers carries {_g(e.channel_strength)} "
                    f"<= 10 x rounding {e.channel_noise:.1e}, so no order-2 escape exists (docs/strictness.md); "
                    f"the loss drops like t^{e.witness_order} along the escape witness")),
    Rule("inconclusive.strictness_undecided", Verdict.INCONCLUSIVE,
         lambda e: True,
         lambda e: (f"a saddle, but strictness is undecided: no order-2 witness beyond the curvature "
                    f"threshold {e.curvature_threshold:.3e} and the non-strictness criterion does not hold"
                    + (f" ({e.rank_rule_reason})" if e.rank_rule_reason else ""))),
)


def decide(e: Evidence) -> tuple[Verdict, Reason]:
    """The first rule whose condition holds: its verdict and reason."""
    for rule in RULES:
        if rule.when(e):
            return rule.verdict, Reason(rule.code, rule.says(e))
    raise AssertionError("the last rule always holds")  # pragma: no cover


def notes(e: Evidence) -> list[Reason]:
    """Observations that do not change the verdict but that a reader should see."""
    out: list[Reason] = []
    if e.solver_failure:
        out.append(Reason(
            "note.solver_failure",
            f"the eigen-solver's lambda_min = {_g(e.lambda_min)} cannot be right: at a critical point with "
            "N >= 2 and non-zero weights the symmetry directions have zero curvature; it is reported as "
            "not converged and decides nothing"))
    if e.gradient_floor > e.gtol_requested and e.relative_gradient <= e.gtol:
        out.append(Reason(
            "note.precision_floor",
            f"gtol raised from {e.gtol_requested:.1e} to {e.gtol:.1e}: rounding the stored weights moves the "
            "relative gradient by up to that much (ill-conditioned partial products)"))
    if e.witness_order == 2 and e.proved_non_strict and not e.strong_order2_global:
        out.append(Reason(
            "note.rounding_curvature",
            f"the escape direction's curvature {_g(e.witness_curvature)} is within the curvature threshold "
            f"{e.curvature_threshold:.3e}: rounding-level, not negative curvature"))
    critical = e.relative_gradient <= e.gtol  # Thm 2.3(iv) speaks of critical points only
    if (critical and e.kawaguchi_iv and e.gap_certainly_beyond and not e.strong_order2
            and not e.eigenvalue_negative):
        out.append(Reason(
            "note.kawaguchi_iv",
            "Kawaguchi 2016 Thm 2.3(iv): rank(W_{N-1}...W_2) equals the smallest hidden width, so a saddle "
            f"here must have a negative Hessian eigenvalue, but none was shown (lambda_min = "
            f"{_g(e.lambda_min)}, {e.hessian_method})"))
    if e.vanishing_layers:
        out.append(Reason(
            "note.vanishing_product",
            f"layers {list(e.vanishing_layers)}: the product above or below the layer is zero within the "
            "rounding of its factors, so its gradient A_i^T E (B_i X)^T vanishes; its relative gradient "
            "is taken as 0 (computed, it is a ratio of rounding noise to rounding noise)"))
    if e.value_floor > e.ftol_requested:
        out.append(Reason(
            "note.value_floor",
            f"ftol raised from {e.ftol_requested:.1e} to {e.ftol:.1e}: rounding the stored weights raises the "
            "loss of an exact critical point by about that much"))
    if e.hessian_method in ("lobpcg", "lanczos") and e.witness_order is not None and e.witness_order >= 3:
        out.append(Reason(
            "note.iterative_spectrum",
            f"lambda_min = {_g(e.lambda_min)} comes from {e.hessian_method}: an iterative solver cannot prove "
            "that no smaller eigenvalue exists; no decision rests on it"))
    return out
