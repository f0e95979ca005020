"""Which engine computes the statistics of ``dlcert stats`` (``--engine single|dask``).

* ``single`` (default): one process, one chunk at a time (:mod:`dlcert.streaming` for ``.npy``
  pairs and ``.npz`` files exactly as before; the other formats of :mod:`dlcert.sources` through
  the same chunk loop).
* ``dask``: a ``dask.array`` blockwise reduction on a ``dask.distributed`` cluster
  (:mod:`dlcert.dask_engine`; the optional extra ``dlcert[dask]``).

Both sum ``X_c X_c^T``, ``Y_c X_c^T`` and ``||Y_c||^2`` over float64 chunks ``c``; they differ
only in the order of the additions, so their results agree to rounding (the tests hold them to
1e-13 relative).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from dlcert.datasets import load_statistics
from dlcert.errors import InputError
from dlcert.io import Layout
from dlcert.sources import NpzSource, Source, assert_finite_total, expand_inputs, source_statistics
from dlcert.statistics import Statistics
from dlcert.streaming import Progress, stream_statistics


class Engine(StrEnum):
    """Where the pass over the data runs."""

    SINGLE = "single"
    DASK = "dask"


def _legacy(inputs: Sequence[str | Path]) -> bool:
    """Only existing ``.npy`` / ``.npz`` files: the original streaming path, unchanged."""
    return all(
        Path(p).suffix.lower() in (".npy", ".npz") and Path(p).is_file() for p in inputs
    ) and bool(inputs)


def npz_statistics(source: NpzSource, layout: Layout | str | None) -> Statistics:
    """An ``.npz`` source, checked by :mod:`dlcert.datasets` (``X, Y`` read in chunks)."""
    return load_statistics(source.path, (source.dx, source.dy), layout)


def single_statistics(
    sources: Sequence[Source],
    *,
    layout: Layout | str | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> Statistics:
    """The single-process engine over any sources: chunk by chunk, source by source."""
    known = sum(s.m or 0 for s in sources)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, max(known, done))

    total: Statistics | None = None
    for s in sources:
        if isinstance(s, NpzSource):
            part = npz_statistics(s, layout)
            tick(s.m or 0)
        else:
            Sxx, Syx, syy = source_statistics(s, chunk_size, tick)
            part = Statistics(Sxx=Sxx, Syx=Syx, syy=syy, m=s.m, eps=s.eps)
        total = part if total is None else total + part
    if total is None:
        raise InputError("no data files given")
    assert_finite_total(total)
    return total


def compute_statistics(
    inputs: Sequence[str | Path],
    *,
    engine: Engine | str = Engine.SINGLE,
    layout: Layout | str | None = None,
    chunk_size: int | None = None,
    x_columns: str | None = None,
    y_columns: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> Statistics:
    """``Sxx, Syx, syy, m`` of every input summed (formats: :mod:`dlcert.sources`)."""
    engine = Engine(engine)
    if chunk_size is not None and chunk_size < 1:
        raise InputError(f"chunk size must be >= 1 sample, got {chunk_size}")
    if engine is Engine.SINGLE and scheduler is not None:
        raise InputError("--scheduler needs --engine dask")
    if engine is Engine.SINGLE and x_columns is None and y_columns is None and _legacy(inputs):
        return stream_statistics([Path(p) for p in inputs], layout=layout, chunk_size=chunk_size,
                                 progress=progress)
    sources = expand_inputs(inputs, layout=layout, x_columns=x_columns, y_columns=y_columns)
    if engine is Engine.SINGLE:
        return single_statistics(sources, layout=layout, chunk_size=chunk_size, progress=progress)
    from dlcert.dask_engine import dask_statistics

    return dask_statistics(sources, layout=layout, chunk_size=chunk_size, scheduler=scheduler,
                           workers=workers, timeout=timeout)
