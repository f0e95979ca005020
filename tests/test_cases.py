"""The independent cases (tests/data/cases, copied from the project's shared cases): each point was
built and classified without dlcert (exact complex-step Hessians, mpmath losses, exact rational
inertia). A verdict outside a case's ``acceptable`` list fails the test: a false certificate is
the worst defect dlcert can ship, and an error on a valid file the next.

Needless ``inconclusive`` (an exactly critical point whose class the oracle proved) is allowed only
for the cases listed in ``KNOWN_INCONCLUSIVE``, each with its cause; a case that starts being
decided correctly must be removed from the list (the test says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dlcert import Verdict, certify
from dlcert.io import load_problem

CASES = Path(__file__).parent / "data" / "cases"
EXACT = {"global_minimum", "strict_saddle", "non_strict_saddle"}

#: Cases whose class is proved but which dlcert cannot decide yet, with the cause.
KNOWN_INCONCLUSIVE: dict[str, str] = {}
# (c1_strict_mid_G6, a change of basis of condition 1e6 between every pair of layers, was here
# until strict.channel: its channel stands 3e5 times above its rounding noise.)


NAMES = sorted(p.stem for p in CASES.glob("*.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_case(name: str) -> None:
    info = json.loads((CASES / f"{name}.json").read_text())
    problem = load_problem(CASES / f"{name}.npz", None, "columns")
    cert = certify(problem.weights, problem.stats, eps=problem.eps)
    v = cert.verdict.value
    assert v in info["acceptable"], (name, v, info["truth"], [str(r) for r in cert.reasons])
    needless = v == Verdict.INCONCLUSIVE.value and info["truth"] in EXACT
    if needless:
        assert name in KNOWN_INCONCLUSIVE, (name, [str(r) for r in cert.reasons])
    elif name in KNOWN_INCONCLUSIVE:
        pytest.fail(f"{name} is now decided ({v}): remove it from KNOWN_INCONCLUSIVE")


def test_known_inconclusive_are_cases() -> None:
    assert set(KNOWN_INCONCLUSIVE) <= set(NAMES)
    assert len(NAMES) >= 90


def test_missing_directions_show_why_a_channel_is_absent_or_present() -> None:
    """The criterion's inputs per missing direction (docs/strictness.md, section 3): in a
    different-missing-direction case each direction reaches an input and an output but no pair
    with a dead end carries it (every per-direction strength at rounding, non-strict); in a
    strict case one direction is carried by a pair far above rounding."""
    from dlcert.render import Format, renderer_for

    p = load_problem(CASES / "c2_N4_in2_out3_diffJ.npz", None, "columns")
    cert = certify(p.weights, p.stats, eps=p.eps)
    ch = cert.channel
    assert cert.verdict is Verdict.NON_STRICT_SADDLE and ch is not None
    assert [d.index for d in ch.missing] == [2, 3, 4]
    assert all(d.input_layers and d.output_layers for d in ch.missing)
    assert all(d.strength <= 10 * ch.noise for d in ch.missing)
    assert ch.input_dead_ends and ch.output_dead_ends
    text = renderer_for(Format.TEXT, width=140).render(cert)
    assert "missing directions" in text and "is rounding" in text

    p = load_problem(CASES / "c1_strict_mid_G0.npz", None, "columns")
    cert = certify(p.weights, p.stats, eps=p.eps)
    ch = cert.channel
    assert cert.verdict is Verdict.STRICT_SADDLE and ch is not None
    carried = [d for d in ch.missing if d.strength > 100 * ch.noise]
    assert carried and carried[0].layers is not None
    first = carried[0]
    assert first.layers[0] in first.input_layers and first.layers[1] in first.output_layers


def _quadratic_form_and_live_projection(name: str) -> tuple[Any, Any, Any]:
    """``V -> V^T H V`` at a case's point and ``V -> P V Pi`` (the live part of a direction:
    ``P_i`` onto ``row(A_i)``, ``Pi_i`` onto ``col(B_i S)``; docs/strictness.md, section 3)."""
    import numpy as np

    from dlcert.objective import PointCache, hvp
    from dlcert.optimum import whiten
    from dlcert.products import null_space

    p = load_problem(CASES / f"{name}.npz", None, "columns")
    ws = tuple(np.asarray(w, dtype=np.float64) for w in p.weights)
    cache = PointCache.at(ws, p.stats)
    S = whiten(p.stats, 1e-14).S

    def off_null(a: Any) -> Any:
        """The projector onto the complement of ``null(a)``."""
        N = null_space(a, 1e-10)
        return np.eye(a.shape[1]) - N @ N.T

    P = [off_null(a) for a in cache.A]
    Pi = [off_null((b @ S).T) for b in cache.B]

    def form(V: list[Any]) -> float:
        return float(sum(np.vdot(v, h) for v, h in zip(V, hvp(V, p.stats, cache), strict=True)))

    def live(V: list[Any]) -> list[Any]:
        return [P[i] @ v @ Pi[i] for i, v in enumerate(V)]

    return form, live, ws


@pytest.mark.parametrize(("name", "channel"), [("c2_N4_in2_out3_diffJ", False), ("cL_ns_diffJ_G1", False),
                                               ("c1_strict_mid_G0", True)])
def test_without_a_channel_only_the_live_part_of_a_direction_counts(name: str, channel: bool) -> None:
    """The proved reduction of docs/strictness.md, section 3: with no channel, ``Q(V) = Q(P V Pi)``
    for every direction; with a channel it fails for some (the dead parts carry the escape)."""
    import numpy as np

    form, live, ws = _quadratic_form_and_live_projection(name)
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(20):
        V = [rng.standard_normal(w.shape) for w in ws]
        dead = [v - lv for v, lv in zip(V, live(V), strict=True)]
        assert sum(float(np.vdot(d, d)) for d in dead) > 0.01 * sum(float(np.vdot(v, v)) for v in V)
        scale = max(abs(form(V)), 1.0)
        gaps.append(abs(form(V) - form(live(V))) / scale)
    if channel:
        assert max(gaps) > 1e-3
    else:
        assert max(gaps) < 1e-10
