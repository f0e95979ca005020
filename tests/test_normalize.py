"""Exact rescaling (``dlcert.normalize``): powers of two only, so the copy is the same point."""

from __future__ import annotations

import numpy as np

from dlcert import Statistics
from dlcert.normalize import UNIT_EXPONENT_MIN, normalize, unit_exponents


def _net(rng: np.random.Generator, widths: list[int]) -> list[np.ndarray]:
    return [rng.standard_normal((widths[i + 1], widths[i])) for i in range(len(widths) - 1)]


def _scale_units(ws: list[np.ndarray], exps: list[np.ndarray]) -> list[np.ndarray]:
    out = [w.copy() for w in ws]
    for h, e in enumerate(exps):
        out[h] = np.ldexp(out[h], e[:, None])
        out[h + 1] = np.ldexp(out[h + 1], -e[None, :])
    return out


def _stats(dx: int, dy: int) -> Statistics:
    return Statistics(Sxx=np.eye(dx), Syx=np.ones((dy, dx)), syy=float(dx * dy + 1), m=10)


def test_units_rescaled_by_powers_of_two_are_undone_exactly() -> None:
    rng = np.random.default_rng(0)
    widths = [3, 4, 5, 4, 2]
    ws = _net(rng, widths)
    exps = [rng.integers(-30, 31, size=d) for d in widths[1:-1]]
    moved = _scale_units(ws, exps)
    units = unit_exponents(moved)
    assert units and max(max(abs(x) for x in u) for u in units) >= UNIT_EXPONENT_MIN
    nws, _, norm = normalize(moved, _stats(3, 2))
    # the copy maps back bit for bit, and its product is the stored one times a power of two
    assert all(np.array_equal(a, b) for a, b in zip(norm.to_stored(nws), moved, strict=True))
    prod = lambda w: np.linalg.multi_dot(w[::-1])  # noqa: E731
    np.testing.assert_array_equal(prod(list(nws)), np.ldexp(prod(moved), sum(norm.layer_exponents)))
    # the balanced copy is as well balanced as the unscaled network (units within a factor 4)
    for h in range(len(nws) - 1):
        rows = np.linalg.norm(nws[h], axis=1)
        shift = norm.layer_exponents[h] - norm.layer_exponents[h + 1]
        cols = np.linalg.norm(nws[h + 1], axis=0) * 2.0**shift
        assert np.all(np.abs(np.log2(rows / cols)) <= 2.0)


def test_a_balanced_network_is_left_alone() -> None:
    ws = _net(np.random.default_rng(1), [3, 4, 4, 2])
    assert unit_exponents(ws) == ()
    assert normalize(ws, _stats(3, 2))[2].unit_exponents == ()


def test_rounding_noise_on_one_side_is_not_scaled_up() -> None:
    """A unit whose incoming weights are rounding noise (1e-84) and whose outgoing weights are a
    genuine small part (1e-5): its contribution to the product is at rounding level, so it is not
    balanced (that would scale the noise up by 2^157 and the genuine part down below rounding);
    its larger side, relative to its layer, is brought to the size of the other units."""
    W1 = np.array([[1.65, 0.0], [1.8e-84, 0.0]])
    W2 = np.array([[1.63, -3.3e-24], [-2.5e-29, -1.2e-05], [-1.3e-33, -6.5e-10]])
    W3 = np.array([[1.6, -6.3e-18, 1.4e-21], [5.9e-23, 1.5e-05, -4.9e-10]])
    units = unit_exponents([W1, W2, W3])
    assert units and units[0][1] < 0  # the unit's column grows, its noise row shrinks
    assert all(abs(e) < 60 for u in units for e in u)


def test_no_rescaling_that_would_leave_the_normal_range() -> None:
    """An entry that would underflow to a subnormal (inexact) keeps the stored scaling."""
    tiny = np.finfo(np.float64).tiny
    W1, W2 = np.array([[1e300, 4 * tiny]]), np.array([[1e-300]])
    assert unit_exponents([W1, W2]) == ()
    # without the tiny entry the same unit is balanced (and norms of 1e+-300 do not overflow)
    assert unit_exponents([np.array([[1e300, 0.0]]), W2]) == ((-997,),)


def test_certificate_reports_stored_units_and_the_rescaling() -> None:
    """With units rescaled, gradient norms are still the stored point's (computed directly here),
    the exponents are in the evidence, and the report says the copy was rebalanced."""
    from dlcert import certify
    from dlcert.objective import gradient
    from dlcert.render import Format, renderer_for

    rng = np.random.default_rng(3)
    ws = _scale_units(_net(rng, [3, 4, 2]), [np.array([15, -12, 0, 3])])
    stats = _stats(3, 2)
    cert = certify(ws, stats)
    assert cert.evidence["normalization"]["unit_exponents"]
    direct = [float(np.linalg.norm(g)) for g in gradient(ws, stats)]
    np.testing.assert_allclose(cert.layer_gradient_norms, direct, rtol=1e-12)
    assert "hidden units rescaled" in renderer_for(Format.TEXT, width=140).render(cert)
