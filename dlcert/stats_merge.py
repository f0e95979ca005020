"""``dlcert stats merge a.npz b.npz -o all.npz``: statistics of disjoint shards, summed.

Statistics of disjoint sample sets add (``Sxx``, ``Syx``, ``syy`` and ``m`` alike), so shard
statistics computed anywhere (Spark, a cluster job, ``dlcert stats`` per shard) combine into the
statistics of the whole. Each file is read and checked by :mod:`dlcert.datasets` (shapes,
symmetry and semidefiniteness of ``Sxx``, finite values, ``m >= 1``), and the files must agree:

* shapes: every file has the ``dx, dy`` of the first; otherwise the error names both files;
* precision: every file records the same precision (``meta_eps``, or the dtype of its arrays):
  statistics of float32 data summed with those of float64 data would carry float32's error
  under a float64 label. ``allow_mixed_precision=True`` sums them anyway and records the
  coarsest precision, which is what ``dlcert stats`` does when it streams mixed files;
* no file twice: the same path given twice would count its samples twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dlcert.datasets import load_statistics
from dlcert.errors import InputError
from dlcert.resources import npz_member_shapes
from dlcert.sources import assert_finite_total
from dlcert.statistics import Statistics


def merge_statistics(paths: Sequence[Path], *, allow_mixed_precision: bool = False) -> Statistics:
    """The sum of the statistics in ``paths`` (module docstring)."""
    if not paths:
        raise InputError("stats merge: no statistics files given")
    seen: dict[Path, Path] = {}
    total: Statistics | None = None
    first: Path | None = None
    for raw in paths:
        path = Path(raw)
        key = path.resolve()
        if key in seen:
            raise InputError(f"{path}: given twice (also as {seen[key]}); its samples would count twice")
        seen[key] = path
        if _holds_raw_data(path):
            raise InputError(
                f"{path}: holds raw data X, Y, not statistics; compute them first with "
                f"`dlcert stats {path} -o {path.stem}-stats.npz` (or pass it to dlcert stats directly)"
            )
        part = load_statistics(path)
        if total is None or first is None:
            total, first = part, path
            continue
        if (part.dx, part.dy) != (total.dx, total.dy):
            raise InputError(
                f"{path}: has dx = {part.dx}, dy = {part.dy} but {first} has dx = {total.dx}, "
                f"dy = {total.dy}; shards of one data set share their dimensions"
            )
        if part.eps != total.eps and not allow_mixed_precision:
            raise InputError(
                f"{path}: records precision eps = {part.eps:.3g} but {first} records eps = "
                f"{total.eps:.3g}; pass --allow-mixed-precision to sum them at the coarser one"
            )
        total = total + part
    assert total is not None
    assert_finite_total(total)
    return total


def _holds_raw_data(path: Path) -> bool:
    """``X`` among the members (headers only; a damaged file is :func:`load_statistics`' to word)."""
    return "X" in {name for name, _, _ in npz_member_shapes(path)}
