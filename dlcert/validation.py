"""Input validation: narrow ``check_*`` functions that validate *and* convert.

Each function takes the raw input, the name it has for the user (``W2``, ``X``, ``Sxx``) and the
file it came from, and either returns a clean float64, C-contiguous *copy* or raises
:class:`~dlcert.errors.InputError` with one line that names the file, the array, what was found
(shape, dtype, counts) and what was expected, e.g. ``model.npz: W2 has 3 columns but W1 has 5
rows``. Later stages only ever see arrays that passed through here.

Accepted element types: real floating (float16/32/64/longdouble) and integer (signed or
unsigned) dtypes. Rejected: ``bool`` (a boolean array is almost always a mask saved by mistake,
and silently reading True as 1.0 would hide that), complex, object, string/bytes, structured/void,
datetime and timedelta.

Tolerances (all relative, all derived from the machine epsilon ``eps`` of the stored dtype):

- :func:`stats_rtol` ``= sqrt(eps)``: how far ``Sxx`` may be from symmetric (relative to its
  largest entry) and how negative its smallest eigenvalue may be (relative to its largest).
  Forming ``X X^T`` in precision ``eps`` perturbs entries by at most about ``m * eps`` relative
  (in practice ``sqrt(m) * eps``), so ``sqrt(eps)`` (1.5e-8 for float64, 3.5e-4 for float32)
  accepts every honestly computed Gram matrix with fewer than ``1/sqrt(eps)`` samples while an
  asymmetric or indefinite matrix from a bug (relative error of order 1) is rejected.
  The same ``sqrt(eps)`` bounds how far ``syy`` may fall below the part of ``Y`` that ``X``
  explains, ``tr(Syx Sxx^+ Syx^T)`` (the Schur complement of the joint Gram matrix of ``X`` and
  ``Y`` is positive semidefinite, so ``syy`` is at least that much): the statistics of one data
  set satisfy it up to rounding; a scaled, edited or mixed-up file does not.
- Magnitude: any finite statistics are accepted. The certificate rescales the problem exactly
  (powers of two, :mod:`dlcert.normalize`) before forming products of the statistics, and the
  consistency checks here work on an exactly rescaled copy, so data at 1e+-150 is judged like
  data at 1; statistics that overflowed (Inf) are refused with a request to rescale the data.

Precision (:func:`precision_of`): the machine epsilon of the coarsest stored floating dtype,
floored at float64's :data:`FLOAT64_EPS` (everything is computed in float64). A file's
``meta_eps`` claim may only *tighten* it (:func:`claimed_precision`): metadata can never make a
gate more lenient than the stored numbers allow.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from collections.abc import Sequence
from enum import StrEnum
from typing import IO, Any

import numpy as np

from dlcert.errors import InputError

__all__ = [
    "FLOAT64_EPS",
    "LAYOUTS",
    "MAX_INDEX_DIGITS",
    "WEIGHT_NAME",
    "Layout",
    "ambiguous_layout",
    "check_data",
    "check_input_file",
    "check_matrix",
    "check_statistics",
    "check_statistics_range",
    "check_weight_chain",
    "claimed_precision",
    "data_layouts",
    "describe",
    "exception_summary",
    "layer_index",
    "layout_from_shapes",
    "nonfinite_error",
    "open_input",
    "precision_of",
    "stats_rtol",
]

LAYOUTS = ("columns", "rows")
"""Data layouts: ``columns`` is ``(d, m)`` (one column per sample), ``rows`` is ``(m, d)``."""


class Layout(StrEnum):
    """How ``X`` and ``Y`` are stored: ``columns`` = ``(d, m)``, ``rows`` = ``(m, d)``."""

    COLUMNS = "columns"
    ROWS = "rows"

FLOAT64_EPS = float(np.finfo(np.float64).eps)
"""Machine epsilon of float64, the floor of every precision (computation is in float64)."""

WEIGHT_NAME = re.compile(r"W([0-9]+)", re.ASCII)
"""A weight's name in a file: ``W`` and the layer number in ASCII digits (``W1`` is the input)."""
MAX_INDEX_DIGITS = 9
"""Most digits a layer index ``W<n>`` may have (after leading zeros)."""

"""Largest magnitude of an entry of ``Sxx``, ``Syx`` or of ``syy`` accepted (module docstring)."""


def precision_of(*arrays: np.ndarray, floor: float = 0.0) -> float:
    """Epsilon of the coarsest floating dtype among ``arrays`` (integers count as float64),
    never below float64's epsilon nor below ``floor`` (precision numpy cannot see, e.g. bfloat16
    widened to float32)."""
    eps = FLOAT64_EPS
    for a in arrays:
        dtype = np.asarray(a).dtype if not isinstance(a, np.ndarray) else a.dtype
        if dtype.kind == "f":
            eps = max(eps, float(np.finfo(dtype).eps))
    return max(eps, floor)


def claimed_precision(stored: float, claim: Any, source: str, name: str = "meta_eps") -> float:
    """The precision to use when a file claims ``claim`` (``None``: no claim) and its stored
    dtypes imply ``stored``: the claim may only tighten, never loosen (a 0-d float in (0, 1),
    else an error that does not echo the value)."""
    if claim is None:
        return stored
    value = np.asarray(claim)
    if value.shape != () or value.dtype.kind != "f" or not 0.0 < float(value) < 1.0:
        raise _fail(source, f"{name} has {describe(value)}; expected a 0-d float in (0, 1)")
    return max(min(stored, float(value)), FLOAT64_EPS)


def stats_rtol(eps: float) -> float:
    """Relative tolerance for the symmetry and semidefiniteness of ``Sxx`` (module docstring)."""
    return math.sqrt(max(eps, FLOAT64_EPS))


def _where(source: str) -> str:
    return f"{_printable(source, 200)}: " if source else ""


def _printable(text: str, limit: int = 60) -> str:
    """``text`` safe for a one-line message: repr() when it has control characters, truncated."""
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def describe(a: Any) -> str:
    """Short description of an input for messages: ``shape (3, 4), dtype float32``."""
    if isinstance(a, np.ndarray):
        return f"shape {a.shape}, dtype {a.dtype}"
    return f"type {type(a).__name__}"


def _fail(source: str, message: str) -> InputError:
    return InputError(_where(source) + message)


def _dtype_problem(dtype: np.dtype[Any]) -> str | None:
    """Why ``dtype`` is not a real numeric type, or ``None`` when it is."""
    kind = dtype.kind
    if dtype.fields is not None or kind == "V":
        return "a structured/void dtype"
    if kind == "b":
        return "a boolean dtype (a mask?)"
    if kind == "c":
        return "a complex dtype"
    if kind == "O":
        return "an object dtype"
    if kind in "US":
        return "a string dtype"
    if kind in "mM":
        return "a datetime/timedelta dtype"
    if kind in "iuf":
        return None
    return f"dtype kind {kind!r}"


def _check_real_array(a: Any, name: str, source: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise _fail(source, f"{name} is a {type(a).__name__}; expected a numpy array")
    problem = _dtype_problem(a.dtype)
    if problem is not None:
        raise _fail(
            source,
            f"{name} has dtype {a.dtype} ({problem}, shape {a.shape}); "
            "expected real numbers (float or integer)",
        )
    return a


def _to_float64(a: np.ndarray) -> np.ndarray:
    return np.array(a, dtype=np.float64, order="C", copy=True)


def _check_finite(a: np.ndarray, name: str, source: str) -> None:
    """Cheap test on the sum first; the element scan only words the error."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = a.sum()
    if np.isfinite(total):
        return
    bad = ~np.isfinite(a)
    if not bad.any():  # the sum overflowed, the entries are fine
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise nonfinite_error(name, source, int(bad.sum()), int(np.isnan(a).sum()), a.size, first)


def nonfinite_error(
    name: str, source: str, n_bad: int, n_nan: int, size: int, first: tuple[int, ...]
) -> InputError:
    """The one wording of non-finite values in an array (whole or read in chunks)."""
    return _fail(
        source,
        f"{name} has {n_bad} non-finite value(s) ({n_nan} NaN, {n_bad - n_nan} Inf) among "
        f"{size}, first at index {first}; expected finite numbers",
    )


def _check_matrix_form(a: Any, name: str, source: str) -> np.ndarray:
    """What :func:`check_matrix` checks without reading a value: real dtype, 2-d, not empty."""
    a = _check_real_array(a, name, source)
    if a.ndim != 2:
        raise _fail(
            source,
            f"{name} has shape {a.shape} ({a.ndim}-d, dtype {a.dtype}); expected a 2-d matrix",
        )
    if a.size == 0:
        raise _fail(
            source, f"{name} has shape {a.shape} (zero-size); expected at least one row and column"
        )
    return a


def check_matrix(a: Any, name: str, source: str = "") -> np.ndarray:
    """Validate one matrix and return it as a float64, C-contiguous copy.

    ``a`` must be a numpy array of a real numeric dtype (see the module docstring), exactly
    2-d, with no zero-size dimension, and finite after conversion to float64 (so a longdouble
    value beyond the float64 range counts as Inf).
    """
    a = _check_matrix_form(a, name, source)
    with np.errstate(over="ignore"):
        out = _to_float64(a)
    _check_finite(out, name, source)
    return out


def check_weight_chain(
    weights: Sequence[Any], source: str = "", names: Sequence[str] | None = None
) -> tuple[np.ndarray, ...]:
    """Validate ``W1..WN`` (input to output) and that their shapes compose.

    ``W_i`` has shape ``(d_i, d_{i-1})``, so ``W_{i+1}.shape[1] == W_i.shape[0]``. ``names``
    (optional, one per layer) are the layers' names in the file, shown beside ``W_i`` in
    messages when they differ from it: ``W2 (fc2.weight)``.
    """
    if len(weights) == 0:
        raise _fail(source, "no weight matrices; expected W1..WN with N >= 1")
    labels = [f"W{i}" for i in range(1, len(weights) + 1)]
    if names is not None:
        labels = [
            label if name == label else f"{label} ({_printable(name)})"
            for label, name in zip(labels, names, strict=True)
        ]
    out = tuple(check_matrix(w, label, source) for w, label in zip(weights, labels, strict=True))
    for i in range(1, len(out)):
        below, above = out[i - 1], out[i]
        if above.shape[1] != below.shape[0]:
            raise _fail(
                source,
                f"{labels[i]} has {above.shape[1]} columns but {labels[i - 1]} has "
                f"{below.shape[0]} rows (W{i + 1} shape {above.shape}, W{i} shape {below.shape}); "
                f"expected W{i + 1}.shape[1] == W{i}.shape[0]",
            )
    return out


def _normalise_layout(layout: Any, source: str) -> str | None:
    if layout is None:
        return None
    value = getattr(layout, "value", layout)
    if value not in LAYOUTS:
        raise _fail(source, f"layout {value!r} is not one of {', '.join(LAYOUTS)}")
    return str(value)


def _as_2d(a: Any, name: str, width: int, width_name: str, source: str) -> tuple[np.ndarray, bool]:
    """Return ``(array as stored, made 2-d; whether it was 1-d)``.

    A 1-d array is one feature row ``(1, m)`` and is accepted only when the width is 1.
    """
    a = _check_real_array(a, name, source)
    if a.ndim == 1:
        if width != 1:
            raise _fail(
                source,
                f"{name} is 1-d with {a.shape[0]} entries but the weights need {width_name} = "
                f"{width} features; expected a 2-d array ({width}, m) or (m, {width})",
            )
        return a.reshape(1, -1), True
    return a, False


def data_layouts(
    X: Any,
    Y: Any,
    dx: int,
    dy: int,
    layout: Any = None,
    source: str = "",
) -> tuple[tuple[str, ...], bool, bool]:
    """The checks of :func:`check_data` that read no value: ``(layouts, x_flat, y_flat)``.

    Dtypes, dimensionality, zero sizes, widths and sample counts, from ``X.shape``/``X.dtype``
    alone (so a reader of large files can run them before reading a chunk). ``layouts`` holds
    the one layout that fits, or both when the shapes fit both (square data: only the values
    can tell whether the two readings agree). ``x_flat``: ``X`` is 1-d (one feature row).
    """
    chosen = _normalise_layout(layout, source)
    X2, x_flat = _as_2d(X, "X", dx, "dx", source)
    Y2, y_flat = _as_2d(Y, "Y", dy, "dy", source)
    # dtype, dimensionality and zero size on the arrays as stored (indices in messages then
    # match the file); finiteness is the caller's, on the values.
    X2 = _check_matrix_form(X2, "X", source)
    Y2 = _check_matrix_form(Y2, "Y", source)
    xs, ys = X.shape, Y.shape  # shapes as stored, for messages
    layouts = (chosen,) if chosen is not None else LAYOUTS

    def fits(a: np.ndarray, flat: bool, width: int, lay: str) -> int | None:
        """Sample count of ``a`` read in layout ``lay``, or None when the width does not fit."""
        if flat:
            return int(a.shape[1])
        rows, cols = a.shape
        if lay == "columns":
            return int(cols) if rows == width else None
        return int(rows) if cols == width else None

    def expected(width: int) -> str:
        forms = {
            "columns": f"({width}, m) in layout columns",
            "rows": f"(m, {width}) in layout rows",
        }
        return " or ".join(forms[lay] for lay in layouts)

    x_m = {lay: fits(X2, x_flat, dx, lay) for lay in LAYOUTS}
    y_m = {lay: fits(Y2, y_flat, dy, lay) for lay in LAYOUTS}
    if all(x_m[lay] is None for lay in layouts):
        raise _fail(
            source, f"X has shape {xs} but W1 takes dx = {dx} inputs; expected {expected(dx)}"
        )
    if all(y_m[lay] is None for lay in layouts):
        raise _fail(
            source,
            f"Y has shape {ys} but the last layer gives dy = {dy} outputs; expected {expected(dy)}",
        )
    shape_ok = [lay for lay in layouts if x_m[lay] is not None and y_m[lay] is not None]
    if not shape_ok:
        x_lay = next(lay for lay in layouts if x_m[lay] is not None)
        y_lay = next(lay for lay in layouts if y_m[lay] is not None)
        raise _fail(
            source,
            f"X has shape {xs}, which fits only layout {x_lay} (dx = {dx}), but Y has "
            f"shape {ys}, which fits only layout {y_lay} (dy = {dy}); "
            "expected both in the same layout",
        )
    possible = tuple(lay for lay in shape_ok if x_m[lay] == y_m[lay])
    if not possible:
        lay = shape_ok[0]
        raise _fail(
            source,
            f"X has {x_m[lay]} samples but Y has {y_m[lay]} (layout {lay}: X shape "
            f"{xs}, Y shape {ys}); expected the same number of samples",
        )
    return possible, x_flat, y_flat


def ambiguous_layout(X: Any, Y: Any, dx: int, dy: int, source: str) -> InputError:
    """The error for square data whose two readings differ (:func:`data_layouts`)."""
    return _fail(
        source,
        f"cannot tell the data layout: X has shape {X.shape} (dx = {dx}) and Y has "
        f"shape {Y.shape} (dy = {dy}), which fit both (d, m) and (m, d); "
        "pass --layout columns|rows",
    )


def check_data(
    X: Any,
    Y: Any,
    dx: int,
    dy: int,
    layout: Any = None,
    source: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate raw samples and return ``X`` (dx, m) and ``Y`` (dy, m) as float64 copies.

    ``layout`` is ``None`` (infer), ``"columns"`` (arrays stored ``(d, m)``) or ``"rows"``
    (stored ``(m, d)``); a :class:`dlcert.io.Layout` member works too. Inference uses both
    ``X`` (against ``dx``, the input width of W1) and ``Y`` (against ``dy``, the output width of
    WN): a layout is possible when both shapes fit it and the sample counts agree. If both
    layouts are possible and read the data differently (square data), the caller must say which.
    A 1-d ``X`` (``Y``) is one feature row and is accepted only when ``dx == 1`` (``dy == 1``).
    Shapes and dtypes are checked first (:func:`data_layouts`), then the values.
    """
    possible, x_flat, y_flat = data_layouts(X, Y, dx, dy, layout, source)
    X64 = check_matrix(X.reshape(1, -1) if x_flat else X, "X", source)
    Y64 = check_matrix(Y.reshape(1, -1) if y_flat else Y, "Y", source)

    def read(a: np.ndarray, flat: bool, lay: str) -> np.ndarray:
        return a if flat or lay == "columns" else np.ascontiguousarray(a.T)

    if len(possible) == 2:
        same = np.array_equal(read(X64, x_flat, "columns"), read(X64, x_flat, "rows")) and (
            np.array_equal(read(Y64, y_flat, "columns"), read(Y64, y_flat, "rows"))
        )
        if not same:
            raise ambiguous_layout(X, Y, dx, dy, source)
    lay = possible[0]
    return read(X64, x_flat, lay), read(Y64, y_flat, lay)


def _check_scalar(a: Any, name: str, source: str) -> np.ndarray:
    """A 0-d or one-element real array (or a Python int/float), returned as a 0-d array."""
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        a = np.asarray(a)
    a = _check_real_array(a, name, source)
    if a.size != 1 or a.ndim > 1:
        raise _fail(source, f"{name} has shape {a.shape}; expected a scalar (0-d or 1 element)")
    return a.reshape(())


def check_statistics(
    Sxx: Any,
    Syx: Any,
    syy: Any,
    m: Any,
    dx: int,
    dy: int,
    source: str = "",
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Validate sufficient statistics and return ``(Sxx, Syx, syy, m)``.

    ``Sxx`` must be ``(dx, dx)``, finite, symmetric within :func:`stats_rtol` of its largest
    entry (the returned copy is exactly symmetric: ``(Sxx + Sxx^T) / 2``) and not clearly
    indefinite (smallest eigenvalue ``>= -stats_rtol * largest``); ``Syx`` must be ``(dy, dx)``
    and finite; ``syy`` a finite scalar ``>= 0``; ``m`` a positive integer (an integer dtype, or
    a float holding an exact integer), 0-d or one element. The tolerance follows the stored
    dtype of ``Sxx``.
    """
    S = check_matrix(Sxx, "Sxx", source)
    if S.shape != (dx, dx):
        raise _fail(
            source, f"Sxx has shape {S.shape} but W1 takes dx = {dx} inputs; expected ({dx}, {dx})"
        )
    C = check_matrix(Syx, "Syx", source)
    if C.shape != (dy, dx):
        raise _fail(
            source,
            f"Syx has shape {C.shape} but the weights map dx = {dx} inputs to dy = {dy} outputs; "
            f"expected ({dy}, {dx})",
        )
    s = _check_scalar(syy, "syy", source)
    with np.errstate(over="ignore"):
        syy_value = float(s)
    if not math.isfinite(syy_value):
        raise _fail(source, f"syy is {syy_value}; expected a finite number >= 0")
    if syy_value < 0:
        raise _fail(source, f"syy is {syy_value:.6g}; expected >= 0 (it is ||Y||_F^2)")
    m_value = _check_count(m, source)
    check_statistics_range(S, C, syy_value, source)

    raw = Sxx if isinstance(Sxx, np.ndarray) else S
    eps = float(np.finfo(raw.dtype).eps) if raw.dtype.kind == "f" else FLOAT64_EPS
    rtol = stats_rtol(eps)
    scale = float(np.max(np.abs(S)))
    asym = float(np.max(np.abs(S - S.T)))
    if asym > rtol * scale:
        i, j = np.unravel_index(int(np.argmax(np.abs(S - S.T))), S.shape)
        raise _fail(
            source,
            f"Sxx is not symmetric: |Sxx[{i},{j}] - Sxx[{j},{i}]| = {asym:.3g} is "
            f"{asym / scale:.3g} of its largest entry {scale:.3g}; expected at most {rtol:.3g}",
        )
    S = 0.5 * (S + S.T)
    _check_psd(S, scale, rtol, source)
    _check_explained(S, C, syy_value, rtol, source)
    return S, C, syy_value, m_value


def check_statistics_range(Sxx: np.ndarray, Syx: np.ndarray, syy: float, source: str = "") -> None:
    """Refuse statistics that are not finite (the data overflowed float64).

    Statistics computed from finite data overflow when the data is huge (``X`` of order
    ``1e160`` gives an infinite ``Sxx``); the message names the statistic, not the weights.
    """
    for name, value in (("Sxx", Sxx), ("Syx", Syx), ("syy", np.asarray(syy))):
        with np.errstate(invalid="ignore"):
            top = float(np.max(np.abs(value))) if value.size else 0.0
        if not math.isfinite(top):
            origin = {"Sxx": "X X^T", "Syx": "Y X^T", "syy": "||Y||_F^2"}[name]
            raise _fail(
                source,
                f"{name} = {origin} is not finite in float64 (the data is too large: it "
                "overflows); rescale the data",
            )


def _check_explained(S: np.ndarray, C: np.ndarray, syy: float, rtol: float, source: str) -> None:
    """Refuse ``syy`` below ``tr(Syx Sxx^+ Syx^T)`` (the part of Y that X explains) beyond
    rounding: no data set has such statistics (module docstring).

    Measured as ``||L^{-1} Syx^T||_F^2`` with ``L`` the Cholesky factor of ``Sxx + delta I``,
    ``delta = rtol * max(diag Sxx)``: one factorisation (a third of an eigendecomposition), and
    a lower bound on what ``X`` explains, so rounding in nearly singular directions can only
    make the test more lenient, never refuse honest statistics.
    """
    if not C.any():
        return
    # An exactly rescaled copy (powers of two) so that huge or tiny data neither overflows nor
    # underflows: S -> 4^ex S, C -> 2^(ex+ey) C, syy -> 4^ey syy keep the comparison unchanged.
    ex = -(math.frexp(float(np.max(np.abs(S))))[1] // 2) if S.any() else 0
    ey = -(math.frexp(syy)[1] // 2) if syy > 0 else -(math.frexp(float(np.max(np.abs(C))))[1] // 2) - ex
    shown_syy = syy
    S, C, syy = np.ldexp(S, 2 * ex), np.ldexp(C, ex + ey), math.ldexp(syy, 2 * ey)
    top = float(np.max(np.diag(S))) if S.size else 0.0
    if not top > 0:
        raise _fail(
            source,
            "Syx is not zero but Sxx is: no data set has these statistics (Syx = Y X^T vanishes "
            "when X X^T does)",
        )
    try:
        L = np.linalg.cholesky(S + rtol * top * np.eye(S.shape[0]))
    except np.linalg.LinAlgError:  # indefinite within rounding (_check_psd accepted it)
        return
    from scipy.linalg import solve_triangular  # lazy: scipy costs ~0.15 s at import

    Z = solve_triangular(L, C.T, lower=True, check_finite=False)
    explained = float(np.sum(Z * Z))
    if explained > syy * (1.0 + rtol) + rtol * explained:
        raise _fail(
            source,
            f"syy = {shown_syy:.6g} is smaller than the part of Y that X explains, "
            f"tr(Syx Sxx^+ Syx^T) >= {math.ldexp(explained, -2 * ey):.6g}: no data set has these statistics "
            "(syy must be at least that, up to rounding)",
        )


def _check_count(m: Any, source: str) -> int:
    a = _check_scalar(m, "m", source)
    value = a.item()
    if a.dtype.kind == "f":
        if not math.isfinite(value) or value != math.floor(value):
            raise _fail(source, f"m is {value!r} (dtype {a.dtype}); expected a positive integer")
        value = int(value)
    if value < 1:
        raise _fail(source, f"m is {value}; expected a positive integer (the number of samples)")
    return int(value)


def _check_psd(S: np.ndarray, scale: float, rtol: float, source: str) -> None:
    """Reject a clearly indefinite ``S``: cheap shifted Cholesky first, eigenvalues to decide."""
    if scale == 0.0:
        return
    diag = np.diag(S)
    if float(diag.min()) >= 0.0:
        shift = rtol * float(diag.max())  # max diagonal <= largest eigenvalue
        try:
            np.linalg.cholesky(S + shift * np.eye(S.shape[0]))
            return  # smallest eigenvalue >= -shift >= -rtol * largest
        except np.linalg.LinAlgError:
            pass
    eigenvalues = np.linalg.eigvalsh(S)
    lo, hi = float(eigenvalues[0]), float(np.max(np.abs(eigenvalues)))
    if lo < -rtol * hi:
        raise _fail(
            source,
            f"Sxx is indefinite: smallest eigenvalue {lo:.3g} is {lo / hi:.3g} of the largest "
            f"|eigenvalue| {hi:.3g}; expected >= -{rtol:.3g} (X X^T is positive semidefinite)",
        )


def layout_from_shapes(
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    layout: Any,
    source: str,
    dims: tuple[int, int] | None = None,
    dims_from: str = "the weights",
) -> tuple[Layout, int, int, int]:
    """``(layout, dx, dy, m)`` of raw data from its shapes (the data's values are not read).

    A 1-d array is one feature. ``columns`` needs ``X.shape[1] == Y.shape[1]`` (the samples),
    ``rows`` needs ``X.shape[0] == Y.shape[0]``; with ``dims = (dx, dy)`` known (from
    ``dims_from``) a reading must also give those. If two readings remain the layout is
    ambiguous (they give different data even when they give the same dimensions).
    :func:`check_data`, which sees the values, also accepts square data both readings agree on.
    """
    for name, shape in (("X", x_shape), ("Y", y_shape)):
        if len(shape) not in (1, 2):
            raise _fail(source, f"{name} has shape {shape}; expected a 2-d array")

    def read(lay: str) -> tuple[int, int, int, int] | None:
        def one(shape: tuple[int, ...]) -> tuple[int, int]:  # (features, samples)
            if len(shape) == 1:
                return 1, shape[0]
            return (shape[0], shape[1]) if lay == "columns" else (shape[1], shape[0])

        (dx, mx), (dy, my) = one(x_shape), one(y_shape)
        return (dx, dy, mx, my) if mx == my else None

    chosen = _normalise_layout(layout, source)
    layouts = [chosen] if chosen is not None else list(LAYOUTS)
    fits = [(lay, r) for lay in layouts if (r := read(lay)) is not None]
    if not fits:
        how = f"layout {layouts[0]}" if chosen is not None else "either layout"
        raise _fail(
            source,
            f"X has shape {x_shape} and Y has shape {y_shape}: they share no sample axis "
            f"in {how}; expected X (dx, m), Y (dy, m) or X (m, dx), Y (m, dy)"
        )
    if dims is not None:
        matching = [(lay, r) for lay, r in fits if (r[0], r[1]) == tuple(dims)]
        if not matching:
            lay, r = fits[0]
            found = (
                f"gives dx = {r[0]}, dy = {r[1]} in layout {lay}"
                if len(fits) == 1
                else "gives other dimensions in either layout"
            )
            raise _fail(
                source,
                f"X has shape {x_shape} and Y has shape {y_shape}, which {found}, but "
                f"{dims_from} has dx = {dims[0]}, dy = {dims[1]}",
            )
        fits = matching
    if len(fits) == 2:
        raise _fail(
            source,
            f"cannot tell the data layout: X has shape {x_shape} and Y has shape "
            f"{y_shape}, which fit both (d, m) and (m, d); pass --layout columns|rows "
            "(or --widths)"
        )
    lay, (dx, dy, m, _) = fits[0]
    if m == 0 or dx == 0 or dy == 0:
        raise _fail(source, f"X has shape {x_shape} and Y has shape {y_shape}: no data")
    return Layout(lay), dx, dy, m


def layer_index(key: str) -> int | None:
    """The layer number of a weight name ``W<digits>`` (ASCII digits only), else ``None``.

    The one test of "is this a weight name", used for ``.npz`` members and for tensors named
    ``W1..WN`` in safetensors / PyTorch files. An index of more than :data:`MAX_INDEX_DIGITS`
    digits is an error (no network has that many layers, and converting thousands of digits is
    slow or refused by Python).
    """
    match = WEIGHT_NAME.fullmatch(key)
    if match is None:
        return None
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > MAX_INDEX_DIGITS:
        return -1
    return int(digits)


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_problem(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    if exc.errno == errno.ENOTDIR:
        return "no such file (a component of the path is not a directory)"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return " ".join(str(exc.strerror or type(exc).__name__).split())


def check_input_file(path: Any, expected: str) -> int:
    """The one test every input file passes before it is opened: it exists and is a regular
    file (a FIFO, ``/dev/stdin`` or a device would block or never end; a directory is no file).

    Returns its size in bytes. ``expected`` says what it should be (``an .npz archive``).
    """
    source = _printable(str(path), 200)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except (OSError, ValueError) as exc:
        reason = _os_reason(exc) if isinstance(exc, OSError) else "not a valid path"
        raise InputError(f"{source}: cannot read it ({reason})") from None
    problem = _file_problem(st.st_mode)
    if problem is not None:
        raise InputError(
            f"{source}: is {problem}, not a regular file; expected {expected}"
        )
    return int(st.st_size)


def open_input(path: Any, expected: str) -> IO[bytes]:
    """Open an input for reading after :func:`check_input_file`, without ever blocking: the
    open is non-blocking and the opened file is checked again (it may have been swapped for a
    FIFO in between)."""
    check_input_file(path, expected)
    source = _printable(str(path), 200)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(f"{source}: cannot read it ({_os_reason(exc)})") from None
    try:
        problem = _file_problem(os.fstat(fd).st_mode)
        if problem is not None:
            raise InputError(f"{source}: is {problem}, not a regular file; expected {expected}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def exception_summary(exc: BaseException, limit: int = 120) -> str:
    """``TypeName: message`` of a library's exception for a one-line error, without any bytes
    the message quotes from the file (numpy and zipfile quote headers; a message must not leak
    what a file holds)."""
    text = " ".join(str(exc).split())
    if "b'" in text or 'b"' in text or "\\x" in text:
        return type(exc).__name__
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
