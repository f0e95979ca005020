"""Sufficient statistics in one streaming pass over data files (``dlcert stats``; SPEC §1).

Sources, summed in the order given (disjoint sample sets add: ``Statistics.__add__``):

* ``.npy`` files, taken in pairs ``X.npy Y.npy``. They are memory-mapped
  (``np.load(path, mmap_mode="r", allow_pickle=False)``) and read ``chunk_size`` samples at a
  time; the mapping is re-opened for every chunk and dropped after it, so pages already summed
  leave the process and resident memory stays about one chunk (plus numpy) whatever the file
  size. Both layouts, C or Fortran order.
* ``.npz`` files holding ``X, Y`` (read whole, one file at a time: a zip member cannot be
  memory-mapped — use ``.npy`` pairs for data larger than memory) or statistics ``Sxx, Syx, syy, m``.

Each chunk is converted to float64 and added as ``Sxx += X_c X_c^T``, ``Syx += Y_c X_c^T``,
``syy += ||Y_c||^2``; the result equals the whole-array statistics up to rounding (summation
order). Progress is reported in bytes of input read, through a callback; nothing prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcert.datasets import Dims, layout_from_shapes, statistics_from_arrays
from dlcert.errors import InputError
from dlcert.io import Layout, read_npz
from dlcert.statistics import Statistics

#: ``(bytes read, bytes in total)``.
Progress = Callable[[int, int], None]

#: Default chunk: as many samples as fit in this many bytes of float64 X and Y.
CHUNK_BYTES = 32 * 2**20

_FLOAT64_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class NpyPair:
    """A memory-mappable ``X.npy``, ``Y.npy`` pair with its layout and dimensions."""

    x: Path
    y: Path
    layout: Layout
    dx: int
    dy: int
    m: int
    eps: float

    @property
    def nbytes(self) -> int:
        return self.x.stat().st_size + self.y.stat().st_size


def _open_npy(path: Path, name: str) -> np.ndarray:
    """Memory-map one ``.npy`` (never unpickles); dtype and rank checked, nothing read yet."""
    source = str(path)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
        text = " ".join(str(exc).split())[:160]
        raise InputError(f"{source}: not a readable .npy array ({type(exc).__name__}: {text})") from exc
    if not isinstance(a, np.ndarray) or isinstance(a, np.lib.npyio.NpzFile):  # pragma: no cover
        raise InputError(f"{source}: expected a single .npy array")
    if a.dtype.kind not in "iuf" or a.dtype.fields is not None:
        raise InputError(
            f"{source}: {name} has dtype {a.dtype} (shape {a.shape}); "
            "expected real numbers (float or integer)"
        )
    if a.ndim not in (1, 2):
        raise InputError(f"{source}: {name} has shape {a.shape} ({a.ndim}-d); expected a 2-d array")
    return a


def _eps(dtype: np.dtype) -> float:
    return max(float(np.finfo(dtype).eps), _FLOAT64_EPS) if dtype.kind == "f" else _FLOAT64_EPS


def open_pair(x: Path, y: Path, dims: Dims, layout: Layout | str | None) -> NpyPair:
    """Read the headers of an ``.npy`` pair and fix its layout (and check ``dims`` if known)."""
    X, Y = _open_npy(x, "X"), _open_npy(y, "Y")
    source = f"{x} + {y}"
    if dims is not None and layout is None:
        cands = []
        for lay in (Layout.COLUMNS, Layout.ROWS):
            try:
                got = layout_from_shapes(X.shape, Y.shape, lay, source)
            except InputError:
                continue
            if got[1:3] == dims:
                cands.append(got)
        if len(cands) == 1:
            lay, dx, dy, m = cands[0]
        elif not cands:
            raise InputError(
                f"{source}: X has shape {X.shape} and Y has shape {Y.shape}, which do not give "
                f"dx = {dims[0]}, dy = {dims[1]} in either layout"
            )
        else:
            raise InputError(
                f"{source}: cannot tell the data layout: X {X.shape}, Y {Y.shape} fit both (d, m) and "
                "(m, d); pass --layout columns|rows"
            )
    else:
        lay, dx, dy, m = layout_from_shapes(X.shape, Y.shape, layout, source)
        if dims is not None and (dx, dy) != dims:
            raise InputError(
                f"{source}: gives dx = {dx}, dy = {dy} in layout {lay.value} but earlier data "
                f"has dx = {dims[0]}, dy = {dims[1]}"
            )
    eps = max(_eps(X.dtype), _eps(Y.dtype))
    del X, Y
    return NpyPair(x, y, lay, dx, dy, m, eps)


def _chunk(path: Path, lay: Layout, a: int, b: int, name: str) -> np.ndarray:
    """Samples ``a:b`` of one ``.npy`` as a float64 ``(d, b-a)`` copy; the mapping is dropped."""
    mm = np.load(path, mmap_mode="r", allow_pickle=False)
    if mm.ndim == 1:
        part = mm[a:b].reshape(1, -1)
    elif lay is Layout.COLUMNS:
        part = mm[:, a:b]
    else:
        part = mm[a:b].T
    out = np.array(part, dtype=np.float64, order="C", copy=True)
    del part, mm
    if not math.isfinite(float(out.sum())) and not np.all(np.isfinite(out)):
        bad = np.argwhere(~np.isfinite(out))[0]
        raise InputError(
            f"{path}: {name} has a non-finite value at feature {int(bad[0])}, sample {a + int(bad[1])}; "
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
    Sxx = np.zeros((pair.dx, pair.dx))
    Syx = np.zeros((pair.dy, pair.dx))
    syy = 0.0
    for a in range(0, pair.m, cs):
        b = min(pair.m, a + cs)
        Xc = _chunk(pair.x, pair.layout, a, b, "X")
        Yc = _chunk(pair.y, pair.layout, a, b, "Y")
        Sxx += Xc @ Xc.T
        Syx += Yc @ Xc.T
        syy += float(np.vdot(Yc, Yc))
        if on_chunk is not None:
            on_chunk(b - a)
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
        for p in g if isinstance(g, tuple) else (g,):
            if not p.is_file():
                raise InputError(f"{p}: no such file")
        sizes.append(sum(p.stat().st_size for p in g) if isinstance(g, tuple) else g.stat().st_size)
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
            arrays = read_npz(g)
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
        total = part if total is None else total + part
    assert total is not None
    return total
