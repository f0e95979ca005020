"""Property tests (hypothesis) on constructed critical points of random architectures.

A draw: depth N = 2..5, input/output widths 1..4, hidden widths with or without a bottleneck
(k < min(dx, dy)), a learned index set S (|S| <= k) of the singular values of the whitened
target, random junk maps and changes of basis (``tests/constructions.py``), storage in float32
or float64, and a consistent rescaling: X -> cX with W_1 -> W_1/c, Y -> c'Y with W_N -> c'W_N,
W_i -> aW_i with W_{i+1} -> W_{i+1}/a. Properties:

1. the verdict does not change under the rescaling;
2. the verdict is never ``global_minimum`` unless S is the top set {1..k'} (k' = min(k, rank
   Sigma)): the oracle known by construction;
3. in float64 the verdict equals the oracle's (global by construction; strict or non-strict by
   the explicit Kronecker Hessian of ``tests/oracles.py``, which shares no code with dlcert).

Scale factors are powers of two for float32 storage (so the stored rescaled point is the exact
image of the original; other factors add float32 rounding, covered by ``test_degenerate.py``)
and arbitrary in float64.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from constructions import construct, random_data
from hypothesis import HealthCheck, assume, event, example, given, note, settings
from hypothesis import strategies as st
from oracles import kron_hessian

from dlcert import certify
from dlcert.certificate import Certificate, Verdict
from dlcert.statistics import Statistics

SETTINGS = settings(
    max_examples=int(os.environ.get("DLCERT_HYPOTHESIS_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class Draw:
    widths: list[int]
    index_set: tuple[int, ...]
    seed: int
    dtype: type
    cx: float
    cy: float
    a: float
    layer: int  # W_layer -> a W_layer, W_{layer+1} -> W_{layer+1} / a (1-based)


@st.composite
def draws(draw: st.DrawFn, dtypes: tuple[type, ...] = (np.float32, np.float64)) -> Draw:
    n = draw(st.integers(2, 5))
    dx, dy = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    n_s = min(dx, dy)
    bottleneck = n_s > 1 and draw(st.booleans())
    hidden = [draw(st.integers(n_s if not bottleneck else 1, 5)) for _ in range(n - 1)]
    if bottleneck:
        j = draw(st.integers(0, n - 2))
        hidden[j] = draw(st.integers(1, n_s - 1))
    widths = [dx, *hidden, dy]
    k = min(widths)
    r = draw(st.integers(0, k))
    index_set = tuple(sorted(draw(st.sets(st.integers(1, n_s), min_size=r, max_size=r))))
    dtype = draw(st.sampled_from(dtypes))
    if dtype is np.float32:
        factor = st.integers(-12, 12).map(lambda e: 2.0**e)
    else:
        factor = st.floats(-4, 4).map(lambda e: 10.0**e)
    return Draw(widths, index_set, draw(st.integers(0, 2**32 - 1)), dtype,
                draw(factor), draw(factor), draw(factor), draw(st.integers(1, n - 1)))


def stored(d: Draw) -> tuple[list[np.ndarray], np.ndarray, np.ndarray] | None:
    """A constructed critical point and its data, as they would be stored in ``d.dtype``."""
    rng = np.random.default_rng(d.seed)
    dx, dy = d.widths[0], d.widths[-1]
    X, Y = random_data(rng, dx, dy, 3 * (dx + dy) + 6)
    X, Y = X.astype(d.dtype), Y.astype(d.dtype)
    point = construct(rng, Statistics.from_data(X, Y), d.widths, d.index_set)
    if point is None:
        return None
    return [w.astype(d.dtype) for w in point.weights], X, Y


def rescaled(d: Draw, W: list[np.ndarray], X: np.ndarray, Y: np.ndarray
             ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    W = [w.copy() for w in W]
    t = d.dtype
    W[0] = (W[0] / t(d.cx)).astype(t)
    W[-1] = (W[-1] * t(d.cy)).astype(t)
    i = d.layer - 1
    W[i] = (W[i] * t(d.a)).astype(t)
    W[i + 1] = (W[i + 1] / t(d.a)).astype(t)
    return W, (X * t(d.cx)).astype(t), (Y * t(d.cy)).astype(t)


def run(W: list[np.ndarray], X: np.ndarray, Y: np.ndarray) -> Certificate:
    stats = Statistics.from_data(X, Y)  # eps follows the stored dtype, as load_problem does
    return certify(W, stats, eps=max(stats.eps, float(np.finfo(W[0].dtype).eps)))


def is_top_set(d: Draw, stats: Statistics) -> bool:
    s = np.linalg.svd(stats.Syx @ np.linalg.pinv(np.linalg.cholesky(stats.Sxx)).T, compute_uv=False)
    rank_sigma = int(np.count_nonzero(s > 1e-10 * s[0]))
    k_eff = min(min(d.widths), rank_sigma)
    return set(d.index_set) == set(range(1, k_eff + 1))


@SETTINGS
@given(draws())
# found by this test: a float32 non-strict saddle read `inconclusive` (a rounding-level t^2
# coefficient along the escape direction) but `non_strict_saddle` after W1 -> W1/64, W2 -> 64 W2
@example(Draw([3, 4, 3, 3, 4], (1,), 12804, np.float32, 1.0, 2.0, 2.0**-6, 1))
# found by this test: a strict saddle read inconclusive after Y -> 1e4 Y, W1 -> 1e-4 W1
@example(Draw([4, 4, 4], (1, 2, 3), 0, np.float64, 1.0, 1e4, 1e-4, 1))
def test_verdict_invariant_and_never_falsely_global(d: Draw) -> None:
    point = stored(d)
    assume(point is not None)
    assert point is not None
    W, X, Y = point
    cert = run(W, X, Y)
    event(f"{np.dtype(d.dtype).name} {cert.verdict.value}")
    note(f"verdict {cert.verdict.value}; reasons {cert.reasons}; rank rule {cert.rank_rule}")
    top = is_top_set(d, Statistics.from_data(X, Y))
    if not top:
        assert cert.verdict is not Verdict.GLOBAL_MINIMUM, cert.message
    W2, X2, Y2 = rescaled(d, W, X, Y)
    cert2 = run(W2, X2, Y2)
    note(f"rescaled: {cert2.verdict.value}; reasons {cert2.reasons}")
    assert cert2.verdict is cert.verdict
    assert cert2.relative_gap == np.float64(cert.relative_gap) or abs(
        cert2.relative_gap - cert.relative_gap
    ) <= max(cert.tolerances.ftol, 1e-6 * abs(cert.relative_gap))


@SETTINGS
@given(draws(dtypes=(np.float64,)))
def test_float64_verdict_matches_oracle(d: Draw) -> None:
    point = stored(d)
    assume(point is not None)
    assert point is not None
    W, X, Y = point
    stats = Statistics.from_data(X, Y)
    cert = certify(W, stats)
    event(cert.verdict.value)
    note(f"verdict {cert.verdict.value}; reasons {cert.reasons}; rank rule {cert.rank_rule}")
    if is_top_set(d, stats):
        expected = Verdict.GLOBAL_MINIMUM
    else:
        lam = np.linalg.eigvalsh(kron_hessian(W, stats.Sxx, stats.Syx))
        negative = lam[0] < -1e-8 * np.max(np.abs(lam))
        expected = Verdict.STRICT_SADDLE if negative else Verdict.NON_STRICT_SADDLE
    assert cert.verdict is expected, cert.reasons


@SETTINGS
@given(draws(dtypes=(np.float64,)), st.sampled_from([1e150, 1e-150]), st.sampled_from([1e150, 1e-150, 1.0]),
       st.sampled_from([1e100, 1e-100]))
def test_verdict_invariant_at_extreme_scales(d: Draw, cx: float, cy: float, a: float) -> None:
    """Data scaled by 1e+-150 and weights rebalanced by 1e+-100: no refusal, no internal error,
    the same verdict (dlcert rescales exactly by powers of two before measuring)."""
    point = stored(d)
    assume(point is not None)
    assert point is not None
    W, X, Y = point
    cert = run(W, X, Y)
    W2 = [w.copy() for w in W]
    W2[0] = W2[0] / cx
    W2[-1] = W2[-1] * cy
    i = d.layer - 1
    W2[i] = W2[i] * a
    W2[i + 1] = W2[i + 1] / a
    assume(all(np.isfinite(w).all() and np.any(w) == np.any(w0) for w, w0 in zip(W2, W, strict=True)))
    cert2 = run(W2, X * cx, Y * cy)
    note(f"{cert.verdict.value} {cert.reasons} -> {cert2.verdict.value} {cert2.reasons}")
    assert cert2.verdict is cert.verdict


@SETTINGS
@given(draws(dtypes=(np.float64,)), st.integers(0, 2**32 - 1))
def test_perturbation_at_stored_precision_never_certifies_a_non_critical_point(d: Draw, seed: int) -> None:
    """Take a point that is not critical; perturb its weights at their own precision: still no certificate."""
    point = stored(d)
    assume(point is not None)
    assert point is not None
    W, X, Y = point
    rng = np.random.default_rng(seed)
    moved = [w + 1e-3 * rng.standard_normal(w.shape) * (np.max(np.abs(w)) + 1.0) for w in W]
    cert = run(moved, X, Y)
    assume(cert.verdict is Verdict.NOT_CRITICAL)
    eps = float(np.finfo(np.float64).eps)
    jiggled = [w * (1 + eps * rng.standard_normal(w.shape)) for w in moved]
    assert run(jiggled, X, Y).verdict in (Verdict.NOT_CRITICAL, Verdict.INCONCLUSIVE)
