"""Loading data *without* weights: statistics for ``dlcert landscape`` and ``dlcert stats``.

``dlcert check`` learns ``dx`` and ``dy`` from the weights (:func:`dlcert.io.load_problem`).
Without weights the dimensions come from the widths the user gives (``d_0`` and ``d_N``), or,
when there are none either, from the data's shapes: X and Y share their sample axis, which
fixes the layout unless both readings fit (then ``--layout`` must say). Both go through the
same entry, :func:`dlcert.io.data_statistics`, and the same memory guard; every failure is one
:class:`InputError` line naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dlcert.io import DataArray, Layout, data_statistics, require_targets
from dlcert.resources import guard_files
from dlcert.statistics import Statistics
from dlcert.validation import layout_from_shapes

__all__ = ["Dims", "layout_from_shapes", "load_statistics", "statistics_from_arrays"]

#: ``(dx, dy)`` when known (from ``--widths`` or from weights), else ``None``.
Dims = tuple[int, int] | None


def statistics_from_arrays(
    arrays: Mapping[str, DataArray], dims: Dims, layout: Layout | str | None, source: str
) -> Statistics:
    """Statistics from a file's arrays: raw ``X, Y`` or ``Sxx, Syx, syy, m`` (weights ignored)."""
    return data_statistics(arrays, source, dims=dims, layout=layout)


def load_statistics(path: Path, dims: Dims = None, layout: Layout | str | None = None) -> Statistics:
    """Statistics of a data file (``.npz`` with ``X, Y`` or ``Sxx, Syx, syy, m``), refused when
    ``Y`` is all zero (nothing to fit).

    ``dims = (d_0, d_N)`` from the widths when known; otherwise inferred (module docstring).
    """
    path = Path(path)
    guard_files([path], raw_in_chunks=True)
    from dlcert.checkpoints import read_data_file  # .npz (X, Y in chunks) or torch.save; x/y as X/Y

    stats = data_statistics(read_data_file(path, chunked=True), str(path), dims=dims, layout=layout)
    require_targets(stats, str(path))
    return stats
