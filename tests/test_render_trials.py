"""The random-starts table: its rows are verdicts and sum to the number of starts."""

from __future__ import annotations

import dataclasses

import numpy as np

from dlcert.landscape import TrialRecord, TrialsSummary, map_landscape
from dlcert.render import Format, renderer_for
from dlcert.statistics import Statistics


def record(i: int, verdict: str, converged: bool) -> TrialRecord:
    return TrialRecord(index=i, verdict=verdict, converged=converged, loss=1.0, relative_gap=0.0,
                       relative_gradient_norm=0.0, iterations=3, message="", lbfgs_relative_gradient_norm=0.0,
                       polish_steps=0)


def test_not_converged_is_a_column_not_a_row(rng: np.random.Generator) -> None:
    X = rng.standard_normal((3, 20))
    stats = Statistics.from_data(X, rng.standard_normal((2, 20)))
    records = [record(0, "global_minimum", True), record(1, "global_minimum", False),
               record(2, "strict_saddle", False), record(3, "global_minimum", True)]
    counts = {"global_minimum": 3, "strict_saddle": 1, "non_strict_saddle": 0, "not_critical": 0,
              "inconclusive": 0}
    summary = TrialsSummary(n=4, seed=0, init="test", counts=counts, not_converged=2, records=records)
    ls = dataclasses.replace(map_landscape(stats, [3, 2, 2]), trials=summary)
    text = renderer_for(Format.TEXT, width=120).render(ls)
    table = text[text.index("random starts: 4"):]
    rows = {}
    for line in table.splitlines():
        words = line.replace("│", " ").split()
        if len(words) == 3 and words[0] in counts and words[1].isdigit():
            rows[words[0]] = (int(words[1]), int(words[2]))
    assert rows == {"global_minimum": (3, 1), "strict_saddle": (1, 1), "non_strict_saddle": (0, 0),
                    "not_critical": (0, 0), "inconclusive": (0, 0)}
    assert sum(c for c, _ in rows.values()) == summary.n
    assert not any("not converged" in ln and "of which" not in ln for ln in table.splitlines()[:8])
    assert "counts sum to the 4 starts; 2 of them stopped without" in " ".join(table.split())
