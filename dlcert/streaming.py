"""Sufficient statistics in one streaming pass over data files (``dlcert stats``; SPEC §1).

Sources, summed in the order given (disjoint sample sets add: ``Statistics.__add__``):

* ``.npy`` files, taken in pairs ``X.npy Y.npy``. Only their headers are parsed up front
  (never unpickling; the header must match the file's size); then ``chunk_size`` samples at a
  time are read with ``os.pread`` (one read when the samples are contiguous in the file, one
  per feature otherwise), so resident memory stays about one chunk whatever the file size.
  Nothing is memory-mapped: a file truncated while it is read gives a short read and one
  error line, not a ``SIGBUS`` that kills the process. Both layouts, C or Fortran order.
* ``.npz`` files holding ``X, Y``, read in chunks as well (:mod:`dlcert.npz_chunks`: a stored
  member in place with ``os.preadv``, a compressed one as a stream), or statistics
  ``Sxx, Syx, syy, m``.

Each chunk is converted to float64 and added as ``Sxx += X_c X_c^T``, ``Syx += Y_c X_c^T``,
``syy += ||Y_c||^2``; the result equals the whole-array statistics up to rounding (summation
order). Progress is reported in bytes of input read, through a callback; nothing prints.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcert.datasets import Dims, layout_from_shapes, statistics_from_arrays
from dlcert.errors import InputError
from dlcert.io import Layout, read_npz_data
from dlcert.resources import CHUNK_BYTES, guard_statistics, npy_file_header
from dlcert.statistics import Statistics
from dlcert.validation import check_input_file, check_statistics_range, open_input, precision_of

#: ``(bytes read, bytes in total)``.
Progress = Callable[[int, int], None]

__all__ = [
    "CHUNK_BYTES",
    "NpyFile",
    "NpyPair",
    "Progress",
    "open_pair",
    "pair_statistics",
    "stream_statistics",
]



@dataclass(frozen=True)
class NpyFile:
    """An ``.npy`` file's header: where its data starts and how it is laid out."""

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int


@dataclass(frozen=True)
class NpyPair:
    """An ``.npy`` pair ``X.npy``, ``Y.npy`` with its layout and dimensions."""

    x: Path
    y: Path
    layout: Layout
    dx: int
    dy: int
    m: int
    eps: float
    x_file: NpyFile | None = None
    y_file: NpyFile | None = None

    @property
    def nbytes(self) -> int:
        return self.x.stat().st_size + self.y.stat().st_size


def _open_npy(path: Path, name: str) -> NpyFile:
    """Read and check one ``.npy`` header (regular file, size, real dtype, 1-d or 2-d)."""
    source = str(path)
    shape, dtype, fortran, offset = npy_file_header(path)
    if dtype.kind not in "iuf" or dtype.fields is not None:
        raise InputError(
            f"{source}: {name} has dtype {dtype} (shape {shape}); "
            "expected real numbers (float or integer)"
        )
    if len(shape) not in (1, 2):
        raise InputError(f"{source}: {name} has shape {shape} ({len(shape)}-d); expected a 2-d array")
    return NpyFile(path, shape, dtype, fortran, offset)


def open_pair(x: Path, y: Path, dims: Dims, layout: Layout | str | None) -> NpyPair:
    """Read the headers of an ``.npy`` pair and fix its layout (and check ``dims`` if known)."""
    X, Y = _open_npy(x, "X"), _open_npy(y, "Y")
    source = f"{x} + {y}"
    lay, dx, dy, m = layout_from_shapes(X.shape, Y.shape, layout, source, dims, "earlier data")
    eps = precision_of(np.empty(0, X.dtype), np.empty(0, Y.dtype))
    return NpyPair(x, y, lay, dx, dy, m, eps, X, Y)


def _pread_into(fd: int, buf: np.ndarray, offset: int, path: Path) -> None:
    """Fill ``buf`` (C-contiguous) from the file at ``offset``, straight into its memory."""
    view = memoryview(buf.view(np.uint8).reshape(-1))  # type: ignore[arg-type]
    done = 0
    while done < len(view):
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [view[done:]], offset + done)
        else:  # pragma: no cover - platforms without preadv: one copy more
            part = os.pread(fd, len(view) - done, offset + done)
            view[done : done + len(part)] = part
            got = len(part)
        if got == 0:
            raise InputError(
                f"{path}: ended after {offset + done} bytes while being read (truncated or "
                "changed during the pass); expected its header's size"
            )
        done += got


def _read_samples(f: NpyFile, lay: Layout, a: int, b: int) -> np.ndarray:
    """Samples ``a:b`` of one ``.npy`` file as a ``(d, b - a)`` array, read with ``pread``."""
    if len(f.shape) == 1:
        d, per_sample_contiguous = 1, True
    else:
        d = f.shape[0] if lay is Layout.COLUMNS else f.shape[1]
        # samples are rows of the stored matrix in layout rows (C order) or columns (F order)
        per_sample_contiguous = (lay is Layout.ROWS) != f.fortran
    item = f.dtype.itemsize
    n = b - a
    with open_input(f.path, "an .npy array") as fp:
        fd = fp.fileno()
        if per_sample_contiguous:  # sample j is d consecutive values
            rows = np.empty((n, d), dtype=f.dtype)
            _pread_into(fd, rows, f.offset + a * d * item, f.path)
            return rows.T
        m = f.shape[1] if lay is Layout.COLUMNS else f.shape[0]
        out = np.empty((d, n), dtype=f.dtype)
        for i in range(d):  # feature i is m consecutive values; take a:b of them
            _pread_into(fd, out[i], f.offset + (i * m + a) * item, f.path)
        return out


def _chunk(f: NpyFile, lay: Layout, a: int, b: int, name: str) -> np.ndarray:
    """Samples ``a:b`` of one ``.npy`` as a float64 ``(d, b-a)`` copy, checked finite."""
    out = np.array(_read_samples(f, lay, a, b), dtype=np.float64, order="C", copy=True)
    if not math.isfinite(float(out.sum())) and not np.all(np.isfinite(out)):
        bad = np.argwhere(~np.isfinite(out))[0]
        raise InputError(
            f"{f.path}: {name} has a non-finite value at feature {int(bad[0])}, sample {a + int(bad[1])}; "
            "expected finite numbers"
        )
    return out


def pair_statistics(
    pair: NpyPair, chunk_size: int | None = None, on_chunk: Callable[[int], None] | None = None
) -> Statistics:
    """Stream one pair ``chunk_size`` samples at a time; ``on_chunk(samples)`` after each chunk."""
    cs = chunk_size if chunk_size is not None else max(1, CHUNK_BYTES // (8 * (pair.dx + pair.dy)))
    if cs < 1:
        raise InputError(f"chunk size must be >= 1 sample, got {cs}")
    cs = min(cs, max(pair.m, 1))
    source = f"{pair.x} + {pair.y}"
    guard_statistics(pair.dx, pair.dy, cs, source)
    xf = pair.x_file if pair.x_file is not None else _open_npy(pair.x, "X")
    yf = pair.y_file if pair.y_file is not None else _open_npy(pair.y, "Y")
    Sxx = np.zeros((pair.dx, pair.dx))
    Syx = np.zeros((pair.dy, pair.dx))
    syy = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for a in range(0, pair.m, cs):
            b = min(pair.m, a + cs)
            Xc = _chunk(xf, pair.layout, a, b, "X")
            Yc = _chunk(yf, pair.layout, a, b, "Y")
            Sxx += Xc @ Xc.T
            Syx += Yc @ Xc.T
            syy += float(np.vdot(Yc, Yc))
            if on_chunk is not None:
                on_chunk(b - a)
    check_statistics_range(Sxx, Syx, syy, source)
    return Statistics(Sxx=Sxx, Syx=Syx, syy=syy, m=pair.m, eps=pair.eps)


def _ticker(
    progress: Progress | None, start: int, size: int, m: int, total_bytes: int
) -> Callable[[int], None] | None:
    """Turn per-chunk sample counts of one source into byte progress."""
    if progress is None:
        return None
    seen = 0

    def tick(n: int) -> None:
        nonlocal seen
        seen += n
        progress(start + (size * seen) // m, total_bytes)

    return tick


def _sources(paths: Sequence[Path]) -> list[Path | tuple[Path, Path]]:
    """Group paths: each ``.npz`` alone, ``.npy`` files in consecutive (X, Y) pairs."""
    out: list[Path | tuple[Path, Path]] = []
    pending: Path | None = None
    for p in map(Path, paths):
        suffix = p.suffix.lower()
        if suffix == ".npy":
            if pending is None:
                pending = p
            else:
                out.append((pending, p))
                pending = None
        elif suffix == ".npz":
            if pending is not None:
                raise InputError(f"{pending}: an .npy X file must be followed by its .npy Y file, got {p}")
            out.append(p)
        else:
            raise InputError(f"{p}: expected .npz (X, Y or statistics) or an .npy X/Y pair")
    if pending is not None:
        raise InputError(f"{pending}: an .npy X file needs its .npy Y file after it")
    if not out:
        raise InputError("no data files given")
    return out


def stream_statistics(
    paths: Sequence[Path],
    *,
    layout: Layout | str | None = None,
    dims: Dims = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> Statistics:
    """Sum the statistics of every source (module docstring); dimensions must agree."""
    if chunk_size is not None and chunk_size < 1:
        raise InputError(f"chunk size must be >= 1 sample, got {chunk_size}")
    groups = _sources(paths)
    sizes = []
    for g in groups:
        members = g if isinstance(g, tuple) else (g,)
        kinds = ("an .npy array",) * 2 if isinstance(g, tuple) else ("an .npz archive",)
        sizes.append(sum(check_input_file(p, k) for p, k in zip(members, kinds, strict=False)))
    total_bytes = sum(sizes)
    done = 0
    if progress is not None:
        progress(0, total_bytes)
    total: Statistics | None = None
    for g, size in zip(groups, sizes, strict=True):
        if isinstance(g, tuple):
            pair = open_pair(g[0], g[1], dims, layout)
            part = pair_statistics(pair, chunk_size, _ticker(progress, done, size, pair.m, total_bytes))
            done += size
        else:
            arrays = read_npz_data(g)  # X, Y read in chunks (dlcert.npz_chunks)
            try:  # dimensions from the file itself, so a mismatch is named as one
                part = statistics_from_arrays(arrays, None, layout, str(g))
            except InputError:
                if dims is None:
                    raise
                part = statistics_from_arrays(arrays, dims, layout, str(g))
            done += size
        if progress is not None:
            progress(done, total_bytes)
        if total is not None and (part.dx, part.dy) != (total.dx, total.dy):
            raise InputError(
                f"{g if not isinstance(g, tuple) else g[0]}: has dx = {part.dx}, dy = {part.dy} but "
                f"earlier data has dx = {total.dx}, dy = {total.dy}"
            )
        dims = (part.dx, part.dy)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
            total = part if total is None else total + part
    assert total is not None
    first, last = Path(paths[0]), Path(paths[-1])
    check_statistics_range(
        total.Sxx, total.Syx, total.syy, str(first) if first == last else f"{first} ... {last}"
    )
    return total
