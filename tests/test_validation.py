"""Tests for dlcert.validation: each check_* rejects with one precise line, or converts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlcert.errors import InputError
from dlcert.validation import (
    check_data,
    check_matrix,
    check_statistics,
    check_weight_chain,
    stats_rtol,
)

RNG_SEED = 20240611


def _rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


# ---------------------------------------------------------------- check_matrix


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float32, np.float64, np.longdouble, np.int8, np.int64, np.uint32]
)
def test_check_matrix_converts_real_dtypes_to_float64_copy(dtype: type) -> None:
    a = np.arange(6).reshape(2, 3).astype(dtype)
    out = check_matrix(a, "W1")
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    assert not np.shares_memory(out, a)
    np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3))


def test_check_matrix_returns_c_contiguous_for_fortran_and_views() -> None:
    a = np.asfortranarray(np.arange(12.0).reshape(3, 4))[:, ::2]
    out = check_matrix(a, "W1")
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (np.ones((2, 2), dtype=np.complex128), r"W1 has dtype complex128 \(a complex dtype"),
        (np.ones((2, 2), dtype=np.complex64), r"dtype complex64"),
        (np.array([[1, "a"]], dtype=object), r"dtype object \(an object dtype"),
        (np.array([["a", "b"]]), r"dtype <U1 \(a string dtype"),
        (np.array([[b"a"]]), r"dtype \|S1 \(a string dtype"),
        (np.ones((2, 2), dtype=bool), r"dtype bool \(a boolean dtype"),
        (np.zeros((2, 2), dtype="datetime64[s]"), r"datetime/timedelta"),
        (np.zeros((2, 2), dtype="timedelta64[s]"), r"datetime/timedelta"),
        (np.zeros((2, 2), dtype=[("a", "f8")]), r"structured/void"),
        ([[1.0, 2.0]], r"W1 is a list; expected a numpy array"),
    ],
)
def test_check_matrix_rejects_non_real(value: object, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        check_matrix(value, "W1", "model.npz")


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [
        ((), r"W1 has shape \(\) \(0-d"),
        ((3,), r"W1 has shape \(3,\) \(1-d, dtype float64\); expected a 2-d matrix"),
        ((2, 3, 4), r"W1 has shape \(2, 3, 4\) \(3-d"),
        ((0, 3), r"W1 has shape \(0, 3\) \(zero-size\)"),
        ((3, 0), r"W1 has shape \(3, 0\) \(zero-size\)"),
        ((0, 0), r"zero-size"),
    ],
)
def test_check_matrix_rejects_shapes(shape: tuple[int, ...], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        check_matrix(np.ones(shape), "W1", "model.npz")


@pytest.mark.parametrize("name", ["W1", "W2", "X", "Y", "Sxx", "Syx"])
@pytest.mark.parametrize(
    ("bad", "counts"),
    [(np.nan, "1 NaN, 0 Inf"), (np.inf, "0 NaN, 1 Inf"), (-np.inf, "0 NaN, 1 Inf")],
)
@pytest.mark.parametrize("index", [(0, 0), (1, 2), (2, 3)])
def test_check_matrix_names_non_finite(
    name: str, bad: float, counts: str, index: tuple[int, int]
) -> None:
    a = _rng().standard_normal((3, 4))
    a[index] = bad
    with pytest.raises(InputError) as info:
        check_matrix(a, name, "data.npz")
    msg = str(info.value)
    assert msg.startswith(f"data.npz: {name} has 1 non-finite value(s) ({counts}) among 12")
    assert f"first at index {index}" in msg
    assert "\n" not in msg


def test_check_matrix_counts_several_non_finite_and_reports_first() -> None:
    a = np.ones((3, 3))
    a[2, 2], a[0, 1], a[1, 0] = np.nan, np.inf, np.nan
    with pytest.raises(InputError, match=r"3 non-finite value\(s\) \(2 NaN, 1 Inf\) .*\(0, 1\)"):
        check_matrix(a, "W1")


def test_check_matrix_accepts_values_whose_sum_overflows() -> None:
    a = np.full((2, 2), np.finfo(np.float64).max / 2)
    out = check_matrix(a, "W1")
    np.testing.assert_array_equal(out, a)


def test_check_matrix_longdouble_beyond_float64_range_is_inf() -> None:
    if np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("longdouble is float64 on this platform")
    a = np.ones((2, 2), dtype=np.longdouble)
    a[1, 1] = np.longdouble(np.finfo(np.float64).max) * 10
    with pytest.raises(InputError, match=r"1 Inf\) among 4, first at index \(1, 1\)"):
        check_matrix(a, "W1")


def test_message_without_source_has_no_prefix() -> None:
    with pytest.raises(InputError, match=r"^W3 has shape \(3,\)"):
        check_matrix(np.ones(3), "W3")


# ---------------------------------------------------------------- check_weight_chain


def test_weight_chain_composes_and_converts() -> None:
    ws = [np.ones((3, 4), dtype=np.float32), np.ones((2, 3), dtype=np.int32), np.ones((5, 2))]
    out = check_weight_chain(ws, "m.npz")
    assert [w.shape for w in out] == [(3, 4), (2, 3), (5, 2)]
    assert all(w.dtype == np.float64 for w in out)


@pytest.mark.parametrize(
    ("shapes", "pattern"),
    [
        ([(5, 2), (4, 3)], r"^m\.npz: W2 has 3 columns but W1 has 5 rows"),
        ([(3, 2), (4, 3), (1, 5)], r"W3 has 5 columns but W2 has 4 rows"),
        ([(3, 2), (3, 3), (1, 3), (2, 2)], r"W4 has 2 columns but W3 has 1 rows"),
        ([(2, 3), (3, 2), (2, 3), (4, 4)], r"W2 has 2 columns but W1 has 2 rows|W4 has 4 columns"),
    ],
)
def test_weight_chain_rejects_non_composing(shapes: list[tuple[int, int]], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        check_weight_chain([np.ones(s) for s in shapes], "m.npz")


def test_weight_chain_error_shows_both_shapes() -> None:
    with pytest.raises(InputError, match=r"W2 shape \(4, 3\), W1 shape \(5, 2\)"):
        check_weight_chain([np.ones((5, 2)), np.ones((4, 3))], "m.npz")


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (np.ones(3), r"has shape \(3,\) \(1-d"),
        (np.ones((3, 3, 3)), r"\(3-d"),
        (np.ones((3, 3), dtype=complex), r"dtype complex128"),
        (np.ones((0, 3)), r"zero-size"),
    ],
)
def test_weight_chain_names_bad_layer(position: int, bad: np.ndarray, pattern: str) -> None:
    ws: list[np.ndarray] = [np.ones((3, 3)) for _ in range(3)]
    ws[position] = bad
    with pytest.raises(InputError, match=rf"W{position + 1} {pattern}|W{position + 1} .*{pattern}"):
        check_weight_chain(ws, "m.npz")


def test_weight_chain_empty() -> None:
    with pytest.raises(InputError, match=r"no weight matrices"):
        check_weight_chain([], "m.npz")


# ---------------------------------------------------------------- check_data


def _xy(dx: int, dy: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng()
    return rng.standard_normal((dx, m)), rng.standard_normal((dy, m))


@pytest.mark.parametrize(("dx", "dy", "m"), [(3, 2, 7), (1, 1, 5), (4, 4, 9), (5, 2, 3)])
def test_check_data_infers_both_layouts(dx: int, dy: int, m: int) -> None:
    X, Y = _xy(dx, dy, m)
    Xc, Yc = check_data(X, Y, dx, dy)
    Xr, Yr = check_data(X.T, Y.T, dx, dy)
    for a, b in [(Xc, X), (Yc, Y), (Xr, X), (Yr, Y)]:
        assert a.dtype == np.float64 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_check_data_explicit_layout(layout: str) -> None:
    X, Y = _xy(3, 2, 6)
    Xs, Ys = (X, Y) if layout == "columns" else (X.T, Y.T)
    Xo, Yo = check_data(Xs, Ys, 3, 2, layout)
    np.testing.assert_array_equal(Xo, X)
    np.testing.assert_array_equal(Yo, Y)


def test_check_data_uses_y_to_resolve_square_x() -> None:
    X, Y = _xy(3, 2, 3)  # X is square, Y (2, 3) only fits columns
    Xo, _ = check_data(X, Y, 3, 2)
    np.testing.assert_array_equal(Xo, X)
    Xo, _ = check_data(X.T, Y.T, 3, 2)
    np.testing.assert_array_equal(Xo, X)


@pytest.mark.parametrize(("dx", "dy"), [(3, 3), (1, 3)])
def test_check_data_ambiguous_square_needs_layout(dx: int, dy: int) -> None:
    X, Y = _xy(dx, dy, 3)
    if dx == 1:
        X = X.ravel()  # 1-d X fits both; square Y decides nothing
    with pytest.raises(InputError, match=r"^d\.npz: cannot tell the data layout.*--layout"):
        check_data(X, Y, dx, dy, None, "d.npz")
    Xc, Yc = check_data(X, Y, dx, dy, "columns", "d.npz")
    Xr, Yr = check_data(X, Y, dx, dy, "rows", "d.npz")
    np.testing.assert_array_equal(Yc, Y)
    np.testing.assert_array_equal(Yr, Y.T)
    assert Xc.shape == Xr.shape == (dx, 3)


def test_check_data_symmetric_square_data_is_not_ambiguous() -> None:
    X = np.array([[2.0, 1.0], [1.0, 3.0]])
    Xo, Yo = check_data(X, X.copy(), 2, 2)
    np.testing.assert_array_equal(Xo, X)
    np.testing.assert_array_equal(Yo, X)


def test_check_data_1d_accepted_when_width_one() -> None:
    x = np.arange(5.0)
    y = 2 * np.arange(5.0)
    Xo, Yo = check_data(x, y, 1, 1)
    assert Xo.shape == (1, 5) and Yo.shape == (1, 5)
    Xo, Yo = check_data(x, y.reshape(5, 1), 1, 1)
    assert Yo.shape == (1, 5)
    np.testing.assert_array_equal(Yo[0], y)


@pytest.mark.parametrize(
    ("X", "Y", "dx", "dy", "layout", "pattern"),
    [
        (np.ones(5), np.ones((2, 5)), 3, 2, None, r"X is 1-d with 5 entries .* dx = 3"),
        (np.ones((3, 5)), np.ones(5), 3, 2, None, r"Y is 1-d with 5 entries .* dy = 2"),
        (np.ones((4, 7)), np.ones((2, 7)), 3, 2, None, r"X has shape \(4, 7\) but W1 takes dx = 3"),
        (np.ones((3, 7)), np.ones((4, 7)), 3, 2, None, r"Y has shape \(4, 7\) .* dy = 2"),
        (np.ones((3, 7)), np.ones((2, 8)), 3, 2, None, r"X has 7 samples but Y has 8"),
        (np.ones((7, 3)), np.ones((8, 2)), 3, 2, None, r"X has 7 samples but Y has 8"),
        (
            np.ones((3, 7)),
            np.ones((7, 2)),
            3,
            2,
            None,
            r"which fits only layout columns .*only layout rows",
        ),
        (
            np.ones((3, 7)),
            np.ones((2, 7)),
            3,
            2,
            "rows",
            r"X has shape \(3, 7\) .*expected \(m, 3\) in layout rows$",
        ),
        (
            np.ones((7, 3)),
            np.ones((7, 2)),
            3,
            2,
            "columns",
            r"expected \(3, m\) in layout columns$",
        ),
        (
            np.ones((3, 7)),
            np.ones((7, 2)),
            3,
            2,
            "columns",
            r"Y has shape \(7, 2\) .*\(2, m\) in layout columns$",
        ),
        (
            np.ones((5, 7)),
            np.ones((2, 7)),
            3,
            2,
            None,
            r"expected \(3, m\) in layout columns or \(m, 3\) in layout rows$",
        ),
        (np.ones((3, 7)), np.ones((2, 7)), 3, 2, "diagonal", r"layout 'diagonal' is not one of"),
        (np.ones((3, 0)), np.ones((2, 0)), 3, 2, None, r"X has shape \(3, 0\) \(zero-size\)"),
        (np.ones((3, 2, 1)), np.ones((2, 2)), 3, 2, None, r"X has shape \(3, 2, 1\) \(3-d"),
        (np.ones((3, 4), dtype=complex), np.ones((2, 4)), 3, 2, None, r"X has dtype complex"),
        (np.ones((3, 4)), np.array([["a"] * 4] * 2), 3, 2, None, r"Y has dtype <U1"),
    ],
)
def test_check_data_rejects(
    X: np.ndarray, Y: np.ndarray, dx: int, dy: int, layout: str | None, pattern: str
) -> None:
    with pytest.raises(InputError, match=r"^train\.npz: .*" + pattern):
        check_data(X, Y, dx, dy, layout, "train.npz")


@pytest.mark.parametrize("which", ["X", "Y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_check_data_non_finite_index_is_as_stored(which: str, bad: float) -> None:
    X, Y = _xy(3, 2, 6)
    X, Y = X.T.copy(), Y.T.copy()  # rows layout in the file
    target = X if which == "X" else Y
    target[4, 1] = bad
    with pytest.raises(InputError, match=rf"{which} has 1 non-finite .*first at index \(4, 1\)"):
        check_data(X, Y, 3, 2, None, "d.npz")


# ---------------------------------------------------------------- check_statistics


def _stats(dx: int = 3, dy: int = 2, m: int = 20) -> tuple[np.ndarray, np.ndarray, float, int]:
    X, Y = _xy(dx, dy, m)
    return X @ X.T, Y @ X.T, float(np.sum(Y * Y)), m


def test_check_statistics_accepts_and_symmetrises() -> None:
    Sxx, Syx, syy, m = _stats()
    noisy = Sxx.copy()
    noisy[0, 1] *= 1 + 1e-12
    S, C, s, n = check_statistics(noisy, Syx, np.array(syy), np.array([m]), 3, 2)
    np.testing.assert_array_equal(S, S.T)
    np.testing.assert_allclose(S, Sxx, rtol=1e-11)
    np.testing.assert_array_equal(C, Syx)
    assert (s, n) == (syy, m)
    assert isinstance(s, float) and isinstance(n, int)


def test_check_statistics_accepts_singular_psd_and_zero() -> None:
    X = _rng().standard_normal((4, 2))  # dx = 4 > m = 2: Sxx singular
    Y = _rng().standard_normal((1, 2))
    S, *_ = check_statistics(X @ X.T, Y @ X.T, float(np.sum(Y * Y)), 2, 4, 1)
    assert S.shape == (4, 4)
    check_statistics(np.zeros((2, 2)), np.zeros((1, 2)), 0.0, 1, 2, 1)


def test_check_statistics_float_integral_m_is_accepted() -> None:
    Sxx, Syx, syy, _ = _stats()
    assert check_statistics(Sxx, Syx, syy, np.array(20.0), 3, 2)[3] == 20


def test_stats_rtol_follows_dtype() -> None:
    assert stats_rtol(float(np.finfo(np.float32).eps)) > 1e3 * stats_rtol(
        float(np.finfo(np.float64).eps)
    )


def test_check_statistics_asymmetry_tolerance_follows_stored_dtype() -> None:
    Sxx, Syx, syy, m = _stats()
    skew = Sxx.copy()
    skew[0, 1] += 1e-5 * np.abs(Sxx).max()  # inside sqrt(eps32) = 3.5e-4, outside sqrt(eps64)
    with pytest.raises(InputError, match=r"Sxx is not symmetric"):
        check_statistics(skew, Syx, syy, m, 3, 2)
    check_statistics(skew.astype(np.float32), Syx, syy, m, 3, 2)


def _bad_stats() -> list[tuple[dict[str, object], str]]:
    Sxx, Syx, _, _ = _stats()
    asym = Sxx.copy()
    asym[0, 2] += 0.5 * np.abs(Sxx).max()
    indefinite = np.diag([4.0, 1.0, -1.0])
    neg_diag_free = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # eig -1
    nan_S = Sxx.copy()
    nan_S[1, 1] = np.nan
    return [
        ({"Sxx": Sxx[:2, :2]}, r"Sxx has shape \(2, 2\) but W1 takes dx = 3 .*expected \(3, 3\)"),
        ({"Sxx": np.ones((3, 4))}, r"Sxx has shape \(3, 4\)"),
        ({"Sxx": np.ones(3)}, r"Sxx has shape \(3,\) \(1-d"),
        ({"Syx": Syx.T}, r"Syx has shape \(3, 2\) .*expected \(2, 3\)"),
        ({"Syx": np.ones((2, 4))}, r"Syx has shape \(2, 4\)"),
        ({"Sxx": asym}, r"Sxx is not symmetric: \|Sxx\[0,2\] - Sxx\[2,0\]\|"),
        ({"Sxx": indefinite}, r"Sxx is indefinite: smallest eigenvalue -1 is -0.25 of"),
        ({"Sxx": neg_diag_free}, r"Sxx is indefinite: smallest eigenvalue -1 "),
        ({"Sxx": nan_S}, r"Sxx has 1 non-finite .*first at index \(1, 1\)"),
        ({"Sxx": Sxx.astype(complex)}, r"Sxx has dtype complex128"),
        ({"syy": -1.0}, r"syy is -1; expected >= 0"),
        ({"syy": np.array(np.nan)}, r"syy is nan"),
        ({"syy": np.array([1.0, 2.0])}, r"syy has shape \(2,\); expected a scalar"),
        ({"syy": np.array("3")}, r"syy has dtype <U1"),
        ({"m": 0}, r"m is 0; expected a positive integer"),
        ({"m": np.array(-3)}, r"m is -3"),
        ({"m": np.array(2.5)}, r"m is 2.5 \(dtype float64\)"),
        ({"m": np.array(np.inf)}, r"m is inf"),
        ({"m": np.array(True)}, r"m has dtype bool"),
        ({"m": np.array([[5]])}, r"m has shape \(1, 1\)"),
    ]


@pytest.mark.parametrize(("override", "pattern"), _bad_stats())
def test_check_statistics_rejects(override: dict[str, object], pattern: str) -> None:
    Sxx, Syx, syy, m = _stats()
    args: dict[str, object] = {"Sxx": Sxx, "Syx": Syx, "syy": syy, "m": m, **override}
    with pytest.raises(InputError) as info:
        check_statistics(args["Sxx"], args["Syx"], args["syy"], args["m"], 3, 2, "s.npz")
    msg = str(info.value)
    assert msg.startswith("s.npz: ")
    assert re.search(pattern, msg), msg
    assert "\n" not in msg


def test_check_statistics_tiny_negative_eigenvalue_from_rounding_is_accepted() -> None:
    # rank-deficient Gram matrix with a rounding-sized negative eigenvalue
    v = _rng().standard_normal((3, 1))
    S = v @ v.T
    w, U = np.linalg.eigh(S)
    w[0] = -1e-14 * w[-1]
    S = (U * w) @ U.T
    S = 0.5 * (S + S.T)
    check_statistics(S, v.T, 2.0, 1, 3, 1)  # Y = 1, X = v: syy = 1 >= explained (rounding)


def test_check_statistics_refuses_syy_below_what_x_explains() -> None:
    Sxx, Syx, syy, m = _stats()
    check_statistics(Sxx, Syx, syy, m, 3, 2)
    with pytest.raises(InputError, match=r"s\.npz: syy = .* smaller than the part of Y that X explains"):
        check_statistics(Sxx, Syx, 1e-3 * syy, m, 3, 2, "s.npz")
    with pytest.raises(InputError, match=r"Syx is not zero but Sxx is"):
        check_statistics(np.zeros((3, 3)), Syx, syy, m, 3, 2)


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_check_statistics_accepts_any_finite_scale(scale: float) -> None:
    """Data at 1e+-150 is judged like data at 1 (the certificate rescales exactly); the
    consistency checks work on a rescaled copy and neither overflow nor underflow."""
    Sxx, Syx, syy, m = _stats()
    S, C, y, _ = check_statistics(Sxx * scale**2, Syx * scale**2, syy * scale**2, m, 3, 2)
    assert np.isfinite(S).all() and np.isfinite(C).all() and np.isfinite(y)
    with pytest.raises(InputError, match=r"syy = .* is smaller than the part of Y that X explains"):
        check_statistics(Sxx * scale**2, Syx * scale**2, 1e-3 * syy * scale**2, m, 3, 2)


def test_check_statistics_refuses_overflowed_statistics() -> None:
    Sxx, Syx, syy, m = _stats()
    with pytest.raises(InputError, match=r"Sxx has 9 non-finite value"):
        check_statistics(Sxx * np.inf, Syx, syy, m, 3, 2)


@pytest.mark.parametrize("cond", [1.0, 1e4, 1e8, 1e12])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_check_statistics_accepts_honest_noise_free_data(cond: float, dtype: type) -> None:
    """Y = A X exactly: syy equals what X explains, up to rounding; never refused, however
    ill-conditioned X is (the refusal is only for statistics no data set can have)."""
    rng = _rng()
    U, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    X = (U * np.geomspace(1.0, 1.0 / cond, 6)) @ rng.standard_normal((6, 40))
    Y = rng.standard_normal((3, 6)) @ X
    X, Y = X.astype(dtype), Y.astype(dtype)
    Sxx = (X @ X.T).astype(dtype)
    check_statistics(Sxx, (Y @ X.T).astype(dtype), float(np.sum(Y.astype(np.float64) ** 2)), 40, 6, 3)
