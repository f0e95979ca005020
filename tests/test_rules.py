"""The rule table of ``dlcert.rules``: every rule reached by a hand-built Evidence.

Evidence is built by hand (no numerics), so each test states exactly which recorded numbers
lead to which verdict and reason code; ``test_every_rule_is_reached`` fails when a rule is
added without a case here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dlcert import Evidence, Verdict, decide
from dlcert.rules import RULES, notes


def saddle_evidence() -> Evidence:
    """A clean strict saddle: critical, at a critical value well above L*, order-2 witness."""
    return Evidence(
        depth=3, all_layers_nonzero=True, relative_gradient=1e-15, gtol=1.5e-7, gtol_requested=1.5e-7,
        gradient_floor=1e-15, gtol_ceiling=1e-3, relative_gap=0.3, value_error=1e-15, ftol=1.8e-11,
        learned_set=(1,), top_set=False, misplaced=False, critical_excess=1e-16,
        critical_value_above_optimum=0.3, tie_at_k=False, rank_rule="strict_saddle", rank_rule_reason="",
        yun_id="yun2018.thm2.1", yun_holds=False, kawaguchi_iv=False, hessian_method="dense",
        lambda_min=-1.0, lambda_min_error=1e-14, lambda_max=5.0, curvature_threshold=1e-6,
        solver_failure=False, witness_order=2, witness_curvature=-1.0,
    )


def global_evidence() -> Evidence:
    return replace(saddle_evidence(), relative_gap=1e-16, learned_set=(1, 2), top_set=True,
                   critical_excess=1e-16, critical_value_above_optimum=0.0, rank_rule="global_minimum",
                   yun_holds=True, lambda_min=-1e-15, witness_order=None, witness_curvature=None)


def non_strict_evidence() -> Evidence:
    return replace(saddle_evidence(), rank_rule="non_strict_saddle", witness_order=3, witness_curvature=None,
                   lambda_min=-1e-15, yun_holds=False)


S, G, NS = saddle_evidence, global_evidence, non_strict_evidence

CASES: list[tuple[str, Any, dict[str, Any], Verdict]] = [
    # A measurement the time budget cut short decides nothing, whatever else was recorded.
    ("inconclusive.time_budget", G, {"complete": False}, Verdict.INCONCLUSIVE),
    ("inconclusive.time_budget", S, {"complete": False, "relative_gradient": 1e-3}, Verdict.INCONCLUSIVE),
    ("not_critical.gradient", S, {"relative_gradient": 1e-3}, Verdict.NOT_CRITICAL),
    ("not_critical.gradient", S, {"relative_gradient": float("nan")}, Verdict.NOT_CRITICAL),
    # gtol_ceiling 1e-3 caps the applied gtol; rounding could explain rho up to the floor 1e-2.
    ("inconclusive.precision_floor", S,
     {"relative_gradient": 5e-3, "gtol": 1e-3, "gradient_floor": 1e-2}, Verdict.INCONCLUSIVE),
    ("not_critical.gradient", S,
     {"relative_gradient": 2e-2, "gtol": 1e-3, "gradient_floor": 1e-2}, Verdict.NOT_CRITICAL),
    # the value floor 1e-2 is capped at ftol 1e-4: a gap between the two is undecided; beyond the
    # floor rounding cannot explain it
    ("inconclusive.value_floor", G,
     {"relative_gap": 1e-3, "ftol": 1e-4, "value_floor": 1e-2, "ftol_requested": 1e-11},
     Verdict.INCONCLUSIVE),
    ("inconclusive.value_floor", S, {"value_floor": 1.0, "ftol": 1e-4}, Verdict.INCONCLUSIVE),
    ("global.gap", G,
     {"relative_gap": 1e-5, "ftol": 1e-4, "value_floor": 1e-2, "ftol_requested": 1e-11},
     Verdict.GLOBAL_MINIMUM),
    # a floor below the ceiling is simply the applied gtol: such a point is critical
    ("strict.negative_curvature", S,
     {"relative_gradient": 5e-4, "gtol": 1e-3, "gradient_floor": 1e-3}, Verdict.STRICT_SADDLE),
    ("inconclusive.gap_within_error", G, {"relative_gap": 1e-11, "value_error": 1e-10}, Verdict.INCONCLUSIVE),
    ("inconclusive.tie_at_optimum", G, {"tie_at_k": True, "top_set": False}, Verdict.INCONCLUSIVE),
    ("inconclusive.yun_disagrees", G, {"yun_holds": False}, Verdict.INCONCLUSIVE),
    ("inconclusive.rank_rule_disagrees", G, {"rank_rule": "strict_saddle", "yun_holds": None},
     Verdict.INCONCLUSIVE),
    ("inconclusive.negative_curvature_at_minimum", G, {"witness_order": 2, "witness_curvature": -1.0},
     Verdict.INCONCLUSIVE),
    ("inconclusive.negative_curvature_at_minimum", G, {"lambda_min": -1.0}, Verdict.INCONCLUSIVE),
    ("global.gap", G, {}, Verdict.GLOBAL_MINIMUM),
    ("global.gap", G, {"tie_at_k": True, "top_set": True}, Verdict.GLOBAL_MINIMUM),
    ("inconclusive.no_learned_set", S, {"learned_set": None, "critical_excess": None}, Verdict.INCONCLUSIVE),
    ("not_critical.between_critical_values", S, {"critical_excess": 1e-6}, Verdict.NOT_CRITICAL),
    ("inconclusive.critical_value_near_optimum", S,
     {"critical_value_above_optimum": 1e-12, "relative_gap": 1e-9}, Verdict.INCONCLUSIVE),
    ("inconclusive.yun_disagrees", S, {"yun_holds": True}, Verdict.INCONCLUSIVE),
    ("inconclusive.rank_rule_disagrees", S, {"rank_rule": "global_minimum"}, Verdict.INCONCLUSIVE),
    ("inconclusive.strictness_conflict", NS, {"witness_order": 2, "witness_curvature": -1.0},
     Verdict.INCONCLUSIVE),
    ("inconclusive.strictness_conflict", S, {"channel_strength": 0.0, "channel_noise": 1e-15},
     Verdict.INCONCLUSIVE),
    # Beyond the per-direction threshold but within the whole-Hessian one: the proof wins (the
    # per-direction threshold is relative to the terms of a coefficient that may cancel).
    ("non_strict.tightened", NS,
     {"witness_order": 2, "witness_curvature": -1e-3, "witness_threshold": 1e-6, "curvature_threshold": 1e-2},
     Verdict.NON_STRICT_SADDLE),
    # ... but a second-order channel beyond rounding contradicts tightened ranks (a change of basis
    # of condition 1e6 made the rank rule read "tightened" at a strict saddle: test_exact_inertia).
    ("inconclusive.strictness_conflict", NS, {"channel_strength": 1e-2, "channel_noise": 1e-4},
     Verdict.INCONCLUSIVE),
    ("non_strict.tightened", NS, {"channel_strength": 1e-4, "channel_noise": 1e-4},
     Verdict.NON_STRICT_SADDLE),
    # an order-2 witness below the whole-Hessian threshold (inflated by lambda_max under a change
    # of basis) but beyond its own, with a channel 100 x its noise: strict (c1_strict_mid_G6)
    ("strict.channel", S,
     {"rank_rule": "strict_saddle", "witness_curvature": -281.0, "witness_threshold": 0.023,
      "curvature_threshold": 2.7e7, "channel_strength": 0.39, "channel_noise": 1.3e-6},
     Verdict.STRICT_SADDLE),
    ("inconclusive.strictness_undecided", S,
     {"rank_rule": "strict_saddle", "witness_curvature": -281.0, "witness_threshold": 0.023,
      "curvature_threshold": 2.7e7, "channel_strength": 0.39, "channel_noise": 1e-2},
     Verdict.INCONCLUSIVE),
    ("inconclusive.strictness_undecided", S,
     {"rank_rule": "strict_saddle", "witness_curvature": -0.01, "witness_threshold": 0.023,
      "curvature_threshold": 2.7e7, "channel_strength": 0.39, "channel_noise": 1.3e-6},
     Verdict.INCONCLUSIVE),
    ("strict.negative_curvature", S, {}, Verdict.STRICT_SADDLE),
    ("strict.negative_curvature", S, {"rank_rule": None}, Verdict.STRICT_SADDLE),
    ("strict.misplaced_set", S, {"misplaced": True, "witness_curvature": -1e-9}, Verdict.STRICT_SADDLE),
    ("inconclusive.kawaguchi_iv_conflict", NS, {"kawaguchi_iv": True}, Verdict.INCONCLUSIVE),
    ("inconclusive.no_escape_witness", NS, {"witness_order": None}, Verdict.INCONCLUSIVE),
    ("non_strict.tightened", NS, {}, Verdict.NON_STRICT_SADDLE),
    ("non_strict.no_channel", S,
     {"rank_rule": "strict_saddle", "witness_order": 3, "witness_curvature": None, "channel_strength": 1e-16,
      "channel_weaker_factor": 1e-15, "channel_noise": 1e-15, "lambda_min": -1e-16},
     Verdict.NON_STRICT_SADDLE),
    # Near the boundary of its orbit a strict saddle's channel has coupling and reach 7e-6 each:
    # their product 5e-11 is within 10 x the noise 1.2e-10 of a point 1e-10 from critical, the
    # weaker factor is not (a balanced representative of an exact strict saddle read non-strict).
    ("inconclusive.strictness_undecided", S,
     {"rank_rule": "strict_saddle", "witness_order": 2, "witness_curvature": -1.3e-10,
      "witness_threshold": 9.9e-10, "curvature_threshold": 3e-8, "channel_strength": 5e-11,
      "channel_weaker_factor": 7e-6, "channel_noise": 1.2e-10, "lambda_min": -1.8e-10}, Verdict.INCONCLUSIVE),
    ("non_strict.no_channel", S,
     {"rank_rule": "strict_saddle", "witness_order": 3, "witness_curvature": None, "channel_strength": 1e-16,
      "channel_noise": 1e-15, "lambda_min": -1e-16}, Verdict.NON_STRICT_SADDLE),
    # An ill-conditioned gauge shrinks channel strengths: above the noise ceiling, no proof.
    ("inconclusive.strictness_undecided", S,
     {"rank_rule": "strict_saddle", "witness_order": 3, "witness_curvature": None, "channel_strength": 1e-7,
      "channel_noise": 1e-6, "lambda_min": -1e-16}, Verdict.INCONCLUSIVE),
    ("inconclusive.no_channel_witness", S,
     {"witness_order": None, "witness_curvature": None, "channel_strength": 1e-16, "channel_noise": 1e-15,
      "lambda_min": -1e-16}, Verdict.INCONCLUSIVE),
    # A channel above rounding but no confirmed order-2 witness: undecided, not non-strict.
    ("inconclusive.strictness_undecided", S,
     {"witness_order": 3, "witness_curvature": None, "channel_strength": 1e-3, "channel_noise": 1e-15,
      "lambda_min": -1e-16}, Verdict.INCONCLUSIVE),
    # A misplaced learned set is never non-strict by the channel rule.
    ("inconclusive.strictness_undecided", S,
     {"misplaced": True, "witness_order": 3, "witness_curvature": None, "channel_strength": 0.0,
      "channel_noise": 1e-15, "lambda_min": -1e-16}, Verdict.INCONCLUSIVE),
    # The per-direction threshold decides an order-2 witness when it is recorded.
    ("inconclusive.strictness_undecided", S, {"witness_threshold": 2.0}, Verdict.INCONCLUSIVE),
    ("inconclusive.strictness_undecided", S, {"witness_threshold": 1e-9, "curvature_threshold": 5.0},
     Verdict.INCONCLUSIVE),
    ("non_strict.tightened", NS, {"witness_order": 2, "witness_curvature": -1e-9}, Verdict.NON_STRICT_SADDLE),
    # A weak order-2 curvature (within the threshold) is not proof of strictness.
    ("inconclusive.strictness_undecided", S, {"witness_curvature": -1e-9}, Verdict.INCONCLUSIVE),
    ("inconclusive.strictness_undecided", S, {"witness_order": 3, "witness_curvature": None},
     Verdict.INCONCLUSIVE),
    # An iterative solver's claim decides nothing: a failed solver's lambda_min is ignored.
    ("inconclusive.strictness_undecided", S,
     {"witness_order": None, "witness_curvature": None, "lambda_min": -1.0, "solver_failure": True},
     Verdict.INCONCLUSIVE),
]


@pytest.mark.parametrize(("code", "base", "changes", "verdict"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule(code: str, base: Any, changes: dict[str, Any], verdict: Verdict) -> None:
    got, reason = decide(replace(base(), **changes))
    assert (got, reason.code) == (verdict, code), reason.message
    assert reason.message


def test_every_rule_is_reached() -> None:
    assert {r.code for r in RULES} == {c[0] for c in CASES}


def test_rule_codes_are_stable_and_prefixed_by_their_verdict() -> None:
    prefix = {Verdict.GLOBAL_MINIMUM: "global.", Verdict.STRICT_SADDLE: "strict.",
              Verdict.NON_STRICT_SADDLE: "non_strict.", Verdict.NOT_CRITICAL: "not_critical.",
              Verdict.INCONCLUSIVE: "inconclusive."}
    for rule in RULES:
        assert rule.code.startswith(prefix[rule.verdict]), rule.code


def test_decide_imports_no_numpy() -> None:
    import dlcert.rules as module

    source = open(module.__file__).read()
    assert "import numpy" not in source and "from numpy" not in source


def test_notes() -> None:
    ev = replace(saddle_evidence(), solver_failure=True, lambda_min=1e-3)
    assert any(r.code == "note.solver_failure" for r in notes(ev))
    ev = replace(saddle_evidence(), gradient_floor=1e-5, gtol=1e-5, relative_gradient=1e-6)
    assert any(r.code == "note.precision_floor" for r in notes(ev))
    # Kawaguchi Thm 2.3(iv) is about critical points: no note on a point that is not critical
    ev = replace(saddle_evidence(), kawaguchi_iv=True, witness_order=None, witness_curvature=None,
                 lambda_min=None, lambda_min_error=None)
    assert any(r.code == "note.kawaguchi_iv" for r in notes(ev))
    assert not any(r.code == "note.kawaguchi_iv" for r in notes(replace(ev, relative_gradient=0.5)))
    vanishing = replace(saddle_evidence(), vanishing_layers=(1,))
    assert any(r.code == "note.vanishing_product" for r in notes(vanishing))
    ev = replace(non_strict_evidence(), witness_order=2, witness_curvature=-1e-9)
    assert any(r.code == "note.rounding_curvature" for r in notes(ev))
    assert notes(saddle_evidence()) == []


def test_docs_list_every_rule() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "verdicts.md").read_text()
    assert [r.code for r in RULES if f"`{r.code}`" not in text] == []
