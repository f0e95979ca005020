"""Weights stored in half precision (issue 10): the precision of the weights and of the data are
told apart, and rounding a constructed critical point to bfloat16/float16 never yields a wrong
certificate.

The class of every point is known from its construction (``constructions.construct``: the
learned index set S is the top set or not), and strict versus non-strict from the exact float64
point's own certificate (whose verdicts ``test_exact_inertia`` checks against exact inertia).
"""

from __future__ import annotations

import numpy as np
import pytest
from constructions import construct, random_data

import dlcert
from dlcert.statistics import Statistics

torch = pytest.importorskip("torch")

SHAPES = [[5, 3, 2, 4], [4, 4, 4, 3], [3, 5, 5, 3], [6, 4, 3, 3, 2], [4, 3, 4]]


@pytest.mark.parametrize("seed", range(10))
def test_rounding_a_critical_point_to_half_precision_never_misleads(seed: int) -> None:
    rng = np.random.default_rng(seed)
    widths = SHAPES[seed % len(SHAPES)]
    X, Y = random_data(rng, widths[0], widths[-1], 60)
    stats = Statistics.from_data(X, Y)
    k = min(widths)
    for S in (tuple(range(1, k + 1)), tuple(range(2, k + 1)), tuple(range(1, k)), ()):
        point = construct(rng, stats, widths, list(S))
        if point is None:
            continue
        top = S == tuple(range(1, k + 1))
        exact = dlcert.check(point.weights, X, Y).verdict.value
        for dtype in (torch.bfloat16, torch.float16):
            cert = dlcert.check([torch.from_numpy(w).to(dtype) for w in point.weights],
                                X.astype(np.float32), Y.astype(np.float32))
            v = cert.verdict.value
            assert cert.tolerances.gtol <= 1e-2 and cert.tolerances.ftol <= 1e-4
            assert v != "not_critical", (S, dtype, cert.reasons[0])  # rounding explains the gradient
            if v == "global_minimum":
                assert top, (S, dtype, cert.reasons[0])
            if v.endswith("saddle"):
                assert not top and v == exact, (S, dtype, v, exact, cert.reasons[0])
