"""The landscape: ladder values hit by constructed critical points, exact counts, classes, trials.

The ladder's values are checked against points built independently (tests/constructions.py),
their loss computed from raw data (tests/oracles.py), and their kind judged by ``certify`` and,
for strictness, by the explicit Kronecker Hessian.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from io import StringIO

import numpy as np
import pytest
import yaml
from constructions import construct, random_data
from oracles import kron_hessian, raw_loss
from rich.console import Console

from dlcert import certify
from dlcert.errors import InputError
from dlcert.landscape import (
    GLOBAL,
    LANDSCAPE_SCHEMA,
    NON_STRICT_POSSIBLE,
    STRICT,
    balanced_optimum,
    best_index_sets,
    ladder_count,
    map_landscape,
)
from dlcert.objective import loss
from dlcert.render.landscape_text import LandscapeView
from dlcert.render.theme import THEME
from dlcert.statistics import Statistics
from dlcert.trials import polish, random_start, relative_gradient, run_trials

ARCHS = [
    [3, 2, 3],
    [4, 3, 2],
    [3, 3, 3, 3],
    [4, 2, 3, 3],
    [5, 3, 2, 4],
    [3, 4, 2, 4, 3],
    [2, 3, 3, 3, 2, 2],
    [4, 1, 4],
]
ids = lambda w: "-".join(map(str, w))  # noqa: E731

VERDICT_OF = {GLOBAL: "global_minimum", STRICT: "strict_saddle", NON_STRICT_POSSIBLE: "non_strict_saddle"}


def data_for(widths: list[int], m: int = 40) -> tuple[np.ndarray, np.ndarray, Statistics]:
    rng = np.random.default_rng(sum(widths) * 1000 + len(widths))
    X, Y = random_data(rng, widths[0], widths[-1], m)
    return X, Y, Statistics.from_data(X, Y)


@pytest.mark.parametrize("widths", ARCHS, ids=ids)
def test_lowest_value_is_certified_global_on_balanced_optimum(widths: list[int]) -> None:
    X, Y, stats = data_for(widths)
    ls = map_landscape(stats, widths, rows=3)
    W = balanced_optimum(stats, widths)
    assert [w.shape for w in W] == [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
    for a, b in itertools.pairwise(W):  # balanced: W_{i+1}^T W_{i+1} = W_i W_i^T
        np.testing.assert_allclose(b.T @ b, a @ a.T, atol=1e-10 * np.linalg.norm(a) ** 2)
    cert = certify(W, stats)
    assert cert.verdict.value == "global_minimum", cert.reasons
    assert ls.critical_values[0].classes == [GLOBAL]
    assert ls.critical_values[0].value == pytest.approx(cert.loss, rel=1e-10)
    assert ls.critical_values[0].value == pytest.approx(raw_loss(W, X, Y), rel=1e-10)
    assert ls.optimal_loss == pytest.approx(cert.optimal_loss, rel=1e-12)


@pytest.mark.parametrize("widths", ARCHS[:7], ids=ids)
def test_every_listed_value_is_hit_by_a_constructed_critical_point(widths: list[int]) -> None:
    X, Y, stats = data_for(widths)
    ls = map_landscape(stats, widths, rows=8)
    n_layers = len(widths) - 1
    rng = np.random.default_rng(7)
    assert len(ls.critical_values) == min(8, ls.critical_value_count)
    values = [row.value for row in ls.critical_values]
    assert values == sorted(values)
    for row in ls.critical_values:
        # the plainest point at this value: signal only (no junk), so every layer has rank |I|
        built = construct(rng, stats, widths, row.index_set, junk=[False] * n_layers)
        assert built is not None
        assert raw_loss(built.weights, X, Y) == pytest.approx(row.value, rel=1e-10)
        cert = certify(built.weights, stats)
        assert cert.loss == pytest.approx(row.value, rel=1e-10)
        assert cert.verdict.value in {VERDICT_OF[c] for c in row.classes}, (row, cert.reasons)
        if NON_STRICT_POSSIBLE in row.classes:
            # signal-only points are tightened: the non-strict class is really attained ...
            assert cert.verdict.value == "non_strict_saddle"
            lam = np.linalg.eigvalsh(kron_hessian(built.weights, stats.Sxx, stats.Syx))
            assert lam[0] >= -1e-8 * np.max(np.abs(lam))
        if row.classes == [STRICT]:
            lam = np.linalg.eigvalsh(kron_hessian(built.weights, stats.Sxx, stats.Syx))
            assert lam[0] < -1e-8 * np.max(np.abs(lam))


def test_strict_class_of_a_top_set_is_attained_too() -> None:
    """{1..r}, r < k', N >= 3 lists both classes: junk below the signal makes it strict."""
    widths = [3, 3, 3, 3]
    X, Y, stats = data_for(widths)
    ls = map_landscape(stats, widths, rows=20)
    row = next(r for r in ls.critical_values if r.index_set == [1])
    assert row.classes == [STRICT, NON_STRICT_POSSIBLE]
    rng = np.random.default_rng(3)
    kinds = set()
    for pattern in itertools.product([False, True], repeat=3):
        built = construct(rng, stats, widths, [1], junk=pattern)
        if built is None:
            continue
        assert raw_loss(built.weights, X, Y) == pytest.approx(row.value, rel=1e-10)
        lam = np.linalg.eigvalsh(kron_hessian(built.weights, stats.Sxx, stats.Syx))
        kinds.add(STRICT if lam[0] < -1e-8 * np.max(np.abs(lam)) else NON_STRICT_POSSIBLE)
    assert kinds == {STRICT, NON_STRICT_POSSIBLE}


def test_two_layers_never_list_non_strict() -> None:
    _, _, stats = data_for([4, 3, 4])
    ls = map_landscape(stats, [4, 3, 4], rows=100)
    assert ls.critical_value_count == 1 + 4 + 6 + 4
    assert all(NON_STRICT_POSSIBLE not in r.classes for r in ls.critical_values)
    assert sum(GLOBAL in r.classes for r in ls.critical_values) == 1


def brute_force(w: list[float], k_eff: int) -> list[tuple[float, tuple[int, ...]]]:
    out = []
    for j in range(k_eff + 1):
        for c in itertools.combinations(range(len(w)), j):
            out.append((sum(w) - sum(w[i] for i in c), c))
    return sorted(out)


@pytest.mark.parametrize(("n", "k_eff"), [(1, 1), (3, 1), (4, 2), (6, 3), (7, 7), (8, 4), (9, 2)])
def test_best_first_enumeration_matches_brute_force(n: int, k_eff: int) -> None:
    rng = np.random.default_rng(n * 10 + k_eff)
    w = sorted((rng.random(n) * 5) ** 2, reverse=True)
    brute = brute_force(w, k_eff)
    assert ladder_count(n, k_eff, 3) == len(brute)
    got = best_index_sets(w, k_eff, 10**6)
    assert len(got) == len(brute)
    assert len(set(got)) == len(got)  # each set exactly once
    assert set(got) == {c for _, c in brute}
    got_values = [sum(w) - sum(w[i] for i in c) for c in got]
    np.testing.assert_allclose(got_values, [v for v, _ in brute], rtol=1e-12, atol=1e-12)
    for rows in (1, 3, 10):
        part = best_index_sets(w, k_eff, rows)
        np.testing.assert_allclose([sum(w) - sum(w[i] for i in c) for c in part],
                                   [v for v, _ in brute[:rows]], rtol=1e-12, atol=1e-12)


def test_count_over_random_widths_matches_brute_force_ladder() -> None:
    """map_landscape's count and full ladder equal brute force over the nonzero s_i."""
    for widths in ([4, 2, 3], [3, 3, 3], [5, 2, 2, 4], [2, 5, 2]):
        _, _, stats = data_for(widths)
        ls = map_landscape(stats, widths, rows=10**4)
        s2 = [s * s for s in ls.singular_values]
        brute = brute_force(s2, min(min(widths), len(s2)))
        assert ls.critical_value_count == len(brute) == len(ls.critical_values)
        np.testing.assert_allclose([r.value for r in ls.critical_values],
                                   [ls.ols_loss + 0.5 * v for v, _ in brute], rtol=1e-12)


def test_count_is_exact_and_enumeration_is_lazy() -> None:
    rng = np.random.default_rng(1)
    X, Y = random_data(rng, 80, 80, 200)
    stats = Statistics.from_data(X, Y)
    widths = [80, 40, 40, 80]
    t0 = time.perf_counter()
    ls = map_landscape(stats, widths, rows=10)
    # Listing 6.6e23 sets would never return; the bound is loose (not a timing test).
    assert time.perf_counter() - t0 < 60.0
    assert ls.critical_value_count == sum(math.comb(80, j) for j in range(41))  # ~6.6e23
    assert len(ls.critical_values) == 10
    out = json.loads(json.dumps(ls.to_dict(), allow_nan=False))
    assert out["critical_value_count"] == ls.critical_value_count


def test_rank_deficient_sigma_and_ties() -> None:
    # Sxx = I, Syx = diag(3, 3, 1) padded: s = (3, 3, 1); k = 1 -> two top sets {1}, {2}
    stats = Statistics(Sxx=np.eye(3), Syx=np.diag([3.0, 3.0, 1.0]), syy=25.0, m=10)
    ls = map_landscape(stats, [3, 1, 3], rows=10)
    assert ls.critical_value_count == 4
    globals_ = [r for r in ls.critical_values if r.classes == [GLOBAL]]
    assert sorted(tuple(r.index_set) for r in globals_) == [(1,), (2,)]
    assert all(r.gap == 0.0 for r in globals_)
    # rank Sigma = 1 < k = 2: k' = 1 and only {} and {1} remain
    stats = Statistics(Sxx=np.eye(3), Syx=np.outer([1.0, 2.0, 0.0], [0.0, 1.0, 1.0]), syy=20.0, m=5)
    ls = map_landscape(stats, [3, 2, 3], rows=10)
    assert (ls.k, ls.k_effective, ls.sigma_rank) == (2, 1, 1)
    assert ls.critical_value_count == 2
    assert [r.index_set for r in ls.critical_values] == [[1], []]
    assert ls.critical_values[1].classes == [STRICT]  # N = 2
    assert any("rank Sigma" in n for n in ls.notes)
    W = balanced_optimum(stats, [3, 2, 3])
    assert loss(W, stats) == pytest.approx(ls.optimal_loss, rel=1e-12)


def test_single_layer_has_one_critical_value() -> None:
    _, _, stats = data_for([4, 3])
    ls = map_landscape(stats, [4, 3])
    assert ls.critical_value_count == 1
    assert [r.classes for r in ls.critical_values] == [[GLOBAL]]
    assert certify(balanced_optimum(stats, [4, 3]), stats).verdict.value == "global_minimum"


@pytest.mark.parametrize(
    ("widths", "match"),
    [([3], "at least two"), ([3, 0, 3], "positive"), ([4, 2, 3], "dx = 3"), ([3, 2, 2], "dy = 3")],
)
def test_bad_widths(widths: list[int], match: str) -> None:
    _, _, stats = data_for([3, 2, 3])
    with pytest.raises(InputError, match=match):
        map_landscape(stats, widths)


def test_zero_targets_rejected() -> None:
    stats = Statistics(Sxx=np.eye(2), Syx=np.zeros((2, 2)), syy=0.0, m=3)
    with pytest.raises(InputError, match="syy = 0"):
        map_landscape(stats, [2, 1, 2])


def test_to_dict_contract_is_json_and_yaml_safe() -> None:
    _, _, stats = data_for([5, 3, 2, 4])
    ls = map_landscape(stats, [5, 3, 2, 4], rows=4)
    d = ls.to_dict()
    for key in ("schema", "widths", "k", "bottleneck_layers", "optimal_loss", "ols_loss",
                "singular_values", "critical_value_count", "critical_values", "assumptions",
                "theorems"):
        assert key in d
    assert d["schema"] == LANDSCAPE_SCHEMA
    assert set(d["critical_values"][0]) >= {"value", "index_set", "classes"}
    assert {t["id"] for t in d["theorems"]} >= {"yun2018.thm2.2", "achour2021", "zhang2019.cor1"}
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert yaml.safe_load(yaml.safe_dump(d)) == d


def test_invariant_under_rescaling() -> None:
    _, _, stats = data_for([4, 2, 3])
    a = map_landscape(stats, [4, 2, 3], rows=5)
    b = map_landscape(stats.scaled(cx=1e3, cy=1e-2), [4, 2, 3], rows=5)
    assert [r.index_set for r in a.critical_values] == [r.index_set for r in b.critical_values]
    assert [r.classes for r in a.critical_values] == [r.classes for r in b.critical_values]
    np.testing.assert_allclose([r.relative_gap for r in a.critical_values],
                               [r.relative_gap for r in b.critical_values], rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------- trials


@pytest.mark.parametrize("widths", [[4, 2, 3], [3, 3, 3, 3]], ids=ids)
def test_trials_reach_certified_global_minima(widths: list[int]) -> None:
    _, _, stats = data_for(widths)
    calls: list[tuple[int, int]] = []
    summary = run_trials(stats, widths, 4, seed=3, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 4) for i in range(1, 5)]
    assert sum(summary.counts.values()) == 4
    assert set(summary.counts) == {"global_minimum", "strict_saddle", "non_strict_saddle",
                                   "not_critical", "inconclusive"}
    assert summary.counts["global_minimum"] >= 3
    ls = map_landscape(stats, widths)
    for rec in summary.records:
        if rec.verdict == "global_minimum":
            assert rec.loss == pytest.approx(ls.optimal_loss, rel=1e-9)
    again = run_trials(stats, widths, 4, seed=3)
    assert [r.loss for r in again.records] == [r.loss for r in summary.records]
    d = dataclasses.replace(ls, trials=summary).to_dict()
    assert d["trials"]["counts"] == summary.counts
    json.dumps(d, allow_nan=False)


def test_polish_reduces_the_gradient_below_the_line_search_floor() -> None:
    _, _, stats = data_for([5, 3, 2, 4])
    rng = np.random.default_rng(0)
    ls = map_landscape(stats, [5, 3, 2, 4])
    W = balanced_optimum(stats, [5, 3, 2, 4])
    noisy = [w + 1e-5 * rng.standard_normal(w.shape) for w in W]
    before = relative_gradient(noisy, stats)
    out, kept = polish(stats, noisy)
    assert kept >= 1
    assert relative_gradient(out, stats) < 1e-3 * before
    assert loss(out, stats) == pytest.approx(ls.optimal_loss, rel=1e-12)
    start = random_start(rng, [5, 3, 2, 4], 2.0)
    assert [w.shape for w in start] == [(3, 5), (2, 3), (4, 2)]


# ---------------------------------------------------------------- rich view


def test_rich_view_shows_numbers() -> None:
    _, _, stats = data_for([5, 3, 2, 4])
    ls = map_landscape(stats, [5, 3, 2, 4], rows=4)
    buf = StringIO()
    Console(file=buf, width=100, color_system=None, theme=THEME).print(LandscapeView(ls))
    text = buf.getvalue()
    assert f"lowest 4 of {ls.critical_value_count}" in text
    assert "non_strict_saddle_possible" in text
    assert "yun2018.thm2.2" in text
    assert f"{ls.optimal_loss:.10g}" in text
    assert f"{ls.singular_values[0]:.6g}" in text
