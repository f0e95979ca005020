"""Loading data *without* weights: statistics for ``dlcert landscape`` and ``dlcert stats``.

``dlcert check`` learns ``dx`` and ``dy`` from the weights (:func:`dlcert.io.load_problem`).
Without weights the dimensions come from the widths the user gives (``d_0`` and ``d_N``), or,
when there are none either, from the data's shapes: X and Y share their sample axis, which
fixes the layout unless both readings fit (then ``--layout`` must say). All array checks are
those of :mod:`dlcert.validation`; every failure is one :class:`InputError` line naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dlcert.errors import InputError
from dlcert.io import DATA_KEYS, META_PREFIX, RAW_KEYS, STATS_KEYS, Layout
from dlcert.statistics import Statistics, eps_of
from dlcert.validation import check_data, check_statistics, describe

_FLOAT64_EPS = float(np.finfo(np.float64).eps)

#: ``(dx, dy)`` when known (from ``--widths`` or from weights), else ``None``.
Dims = tuple[int, int] | None


def layout_from_shapes(
    x_shape: tuple[int, ...], y_shape: tuple[int, ...], layout: Layout | str | None, source: str
) -> tuple[Layout, int, int, int]:
    """``(layout, dx, dy, m)`` of raw data from the shapes alone (no widths known).

    A 1-d array is one feature. ``columns`` needs ``X.shape[1] == Y.shape[1]`` (the samples),
    ``rows`` needs ``X.shape[0] == Y.shape[0]``; if both hold the layout is ambiguous (the two
    readings give different data even when they give the same dimensions).
    """
    for name, shape in (("X", x_shape), ("Y", y_shape)):
        if len(shape) not in (1, 2):
            raise InputError(f"{source}: {name} has shape {shape}; expected a 2-d array")

    def read(lay: Layout) -> tuple[int, int, int, int] | None:
        def one(shape: tuple[int, ...]) -> tuple[int, int]:  # (features, samples)
            if len(shape) == 1:
                return 1, shape[0]
            return (shape[0], shape[1]) if lay is Layout.COLUMNS else (shape[1], shape[0])

        (dx, mx), (dy, my) = one(x_shape), one(y_shape)
        return (dx, dy, mx, my) if mx == my else None

    layouts = [Layout(layout)] if layout is not None else [Layout.COLUMNS, Layout.ROWS]
    fits = [(lay, r) for lay in layouts if (r := read(lay)) is not None]
    if not fits:
        how = f"layout {layouts[0].value}" if layout is not None else "either layout"
        raise InputError(
            f"{source}: X has shape {x_shape} and Y has shape {y_shape}: they share no sample axis "
            f"in {how}; expected X (dx, m), Y (dy, m) or X (m, dx), Y (m, dy)"
        )
    if len(fits) == 2:
        raise InputError(
            f"{source}: cannot tell the data layout: X has shape {x_shape} and Y has shape "
            f"{y_shape}, which fit both (d, m) and (m, d); pass --layout columns|rows "
            "(or --widths)"
        )
    lay, (dx, dy, m, _) = fits[0]
    if m == 0 or dx == 0 or dy == 0:
        raise InputError(f"{source}: X has shape {x_shape} and Y has shape {y_shape}: no data")
    return lay, dx, dy, m


def _meta_eps(arrays: Mapping[str, np.ndarray], source: str) -> float | None:
    value = arrays.get(META_PREFIX + "eps")
    if value is None:
        return None
    if value.shape != () or value.dtype.kind != "f" or not 0.0 < float(value) < 1.0:
        raise InputError(f"{source}: meta_eps has {describe(value)}; expected a 0-d float in (0, 1)")
    return float(value)


def statistics_from_arrays(
    arrays: Mapping[str, np.ndarray], dims: Dims, layout: Layout | str | None, source: str
) -> Statistics:
    """Statistics from a file's arrays: raw ``X, Y`` or ``Sxx, Syx, syy, m`` (weights ignored)."""
    unknown = sorted(
        k for k in arrays
        if k not in DATA_KEYS and not k.startswith(META_PREFIX) and not (k[:1] == "W" and k[1:].isdigit())
    )
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:5])
        raise InputError(
            f"{source}: unknown array(s) {shown}; allowed: X, Y or Sxx, Syx, syy, m (and W1..WN, meta_*)"
        )
    raw = [k for k in RAW_KEYS if k in arrays]
    stat = [k for k in STATS_KEYS if k in arrays]
    if raw and stat:
        raise InputError(
            f"{source}: holds both raw data ({', '.join(raw)}) and statistics ({', '.join(stat)}); "
            "keep one kind"
        )
    if not raw and not stat:
        raise InputError(f"{source}: no data: found none of X, Y or Sxx, Syx, syy, m")
    if raw:
        missing = [k for k in RAW_KEYS if k not in arrays]
        if missing:
            raise InputError(f"{source}: has {', '.join(raw)} but no {', '.join(missing)}; expected both")
        X, Y = arrays["X"], arrays["Y"]
        if dims is None:
            lay, dx, dy, _ = layout_from_shapes(X.shape, Y.shape, layout, source)
            dims, layout = (dx, dy), lay
        X64, Y64 = check_data(X, Y, dims[0], dims[1], layout, source)
        return Statistics.from_data(X64, Y64, eps=max(eps_of(X, Y), _FLOAT64_EPS))
    missing = [k for k in STATS_KEYS if k not in arrays]
    if missing:
        raise InputError(
            f"{source}: statistics file is missing {', '.join(missing)}; expected Sxx, Syx, syy, m"
        )
    if dims is None:
        sxx, syx = arrays["Sxx"], arrays["Syx"]
        if sxx.ndim != 2 or syx.ndim != 2:
            raise InputError(
                f"{source}: Sxx has shape {sxx.shape} and Syx has shape {syx.shape}; "
                "expected (dx, dx) and (dy, dx)"
            )
        dims = (int(sxx.shape[0]), int(syx.shape[0]))
    Sxx, Syx, syy, m = check_statistics(
        arrays["Sxx"], arrays["Syx"], arrays["syy"], arrays["m"], dims[0], dims[1], source
    )
    eps = max(eps_of(arrays["Sxx"], arrays["Syx"], arrays["syy"]), _FLOAT64_EPS)
    recorded = _meta_eps(arrays, source)
    if recorded is not None:
        eps = max(eps, recorded)
    return Statistics(Sxx=Sxx, Syx=Syx, syy=syy, m=m, eps=eps)


def load_statistics(path: Path, dims: Dims = None, layout: Layout | str | None = None) -> Statistics:
    """Statistics of a data file (``.npz`` with ``X, Y`` or ``Sxx, Syx, syy, m``).

    ``dims = (d_0, d_N)`` from the widths when known; otherwise inferred (module docstring).
    """
    path = Path(path)
    from dlcert.checkpoints import read_data_file  # .npz or torch.save; x/y read as X/Y

    return statistics_from_arrays(read_data_file(path), dims, layout, str(path))
