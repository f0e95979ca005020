"""Data sources for ``dlcert stats``: where large data lives, read one chunk of samples at a time.

Both engines (single process, :mod:`dlcert.engines`; Dask, :mod:`dlcert.dask_engine`) see the
data only through the objects made here, so both read the same formats with the same checks.

What a command-line input may be (:func:`expand_inputs`):

* ``X.npy Y.npy`` - a pair of ``.npy`` files, read in chunks with ``pread`` (never unpickled).
* ``file.h5`` (or ``.hdf5``) - HDF5 datasets ``/X`` and ``/Y``; ``file.h5:/grp/X file.h5:/grp/Y``
  names them. Needs the extra ``dlcert[hdf5]`` (h5py).
* ``store.zarr`` - Zarr arrays ``X`` and ``Y`` of a group; ``store.zarr:feat store.zarr:target``
  names them. Needs ``dlcert[zarr]``.
* ``part.parquet`` (or ``.pq``) - a table, one row per sample, with the columns given by
  ``--x-columns`` and ``--y-columns`` (comma-separated names or shell patterns such as ``x_*``,
  taken in the table's column order). Needs ``dlcert[parquet]`` (pyarrow).
* ``data.npz`` - ``X, Y`` (read in chunks, :mod:`dlcert.npz_chunks`) or statistics
  ``Sxx, Syx, syy, m``.
* a directory or a glob pattern of shards of any of these, taken in sorted name order, sub-
  directories included; names starting with ``.`` or ``_`` (``_SUCCESS``, ``.crc``) are skipped,
  anything else unknown is an error. ``.npy`` shards pair by name: ``X_0001.npy`` with
  ``Y_0001.npy`` (a lone ``x``/``y`` letter, not inside a word, is what differs).

Two array references in a row (``.npy`` files or ``container:member``) form an ``X, Y`` pair.
The layout (``(d, m)`` or ``(m, d)``) of each pair is inferred from the shapes as for ``.npz``
data (``--layout`` settles square cases); Parquet is always one row per sample. Every source must
give the same ``dx, dy`` as the first one.

Safety: nothing is unpickled or deserialised into objects. ``.npy`` files are opened with
``allow_pickle=False``; HDF5, Zarr and Parquet arrays (columns) whose element type is not a real
number (float or integer) are refused from their metadata, before any element is read - object,
string, compound/structured, boolean, complex, extension and nested types alike.

Every chunk goes through :func:`dlcert.validation.check_matrix` (real dtype, finite, converted to
a float64 ``(d, n)`` copy) with a source that names the file, the member and the chunk (its
sample range); ``.npy`` chunks go through the single-process engine's own reader. A read that
fails inside the storage library (a corrupt, truncated or missing chunk) becomes one
:class:`~dlcert.errors.InputError` line naming the same.

Readers hold only paths and names (never an open file), so they pickle to Dask workers; a worker
opens the file for each chunk it reads.
"""

from __future__ import annotations

import fnmatch
import glob as globlib
import importlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dlcert.datasets import Dims, layout_from_shapes
from dlcert.errors import InputError
from dlcert.io import RAW_KEYS, STATS_KEYS, Layout
from dlcert.resources import npz_member_shapes
from dlcert.statistics import Statistics
from dlcert.streaming import CHUNK_BYTES, _chunk, _open_npy
from dlcert.validation import check_matrix

_FLOAT64_EPS = float(np.finfo(np.float64).eps)

H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
PARQUET_SUFFIXES = (".parquet", ".pq")
_CONTAINER = re.compile(r"^(?P<path>.*?\.(?:h5|hdf5|hdf|zarr))(?::(?P<member>.*))?$", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")
#: A lone x or y letter in a file stem (not inside a word): what tells X and Y shards apart.
_XY_TOKEN = re.compile(r"(?<![A-Za-z])[xXyY](?![A-Za-z])")

#: The extra that provides each optional module.
EXTRAS = {"h5py": "hdf5", "zarr": "zarr", "pyarrow": "parquet", "pyarrow.parquet": "parquet",
          "dask": "dask", "dask.array": "dask", "distributed": "dask"}


def optional(module: str) -> ModuleType:
    """Import an optional dependency, or one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module, module)
        raise InputError(
            f"this needs the optional package {module.split('.')[0]} ({type(exc).__name__}: {exc}); "
            f"install it with: pip install 'dlcert[{extra}]'"
        ) from None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _eps(dtype: np.dtype) -> float:
    return max(float(np.finfo(dtype).eps), _FLOAT64_EPS) if dtype.kind == "f" else _FLOAT64_EPS


def _real_dtype(dtype: Any, where: str) -> np.dtype:
    """The numpy dtype of stored elements, refused unless real numbers (before any read)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InputError(
            f"{where} has element type {dtype}; expected real numbers (float or integer)"
        ) from None
    if dt.kind not in "iuf" or dt.fields is not None or dt.hasobject:
        raise InputError(
            f"{where} has dtype {dt}; expected real numbers (float or integer) - object, string, "
            "boolean, complex and compound types are refused"
        )
    return dt


# ---------------------------------------------------------------------------------------------
# Arrays: one X or Y, read ``(d, n)`` float64 chunks of samples ``a:b``


@dataclass(frozen=True)
class ArrayRef:
    """One stored array: ``kind`` is ``npy``, ``h5`` or ``zarr``; ``member`` is empty for ``npy``."""

    kind: str
    path: Path
    member: str = ""

    @property
    def label(self) -> str:
        return str(self.path) if not self.member else f"{self.path}:{self.member}"

    def meta(self) -> tuple[tuple[int, ...], np.dtype, int | None]:
        """``(shape, dtype, storage chunk along the first axis or None)``, refusing bad dtypes."""
        if self.kind == "npy":
            a = _open_npy(self.path, self.label)
            return tuple(a.shape), a.dtype, None
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        try:
            with self._open() as arr:
                shape, dtype, chunks = tuple(int(s) for s in arr.shape), arr.dtype, _chunks_of(arr)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{self.label}: cannot read the array ({_one_line(exc)})") from None
        dt = _real_dtype(dtype, self.label)
        if len(shape) not in (1, 2):
            raise InputError(f"{self.label} has shape {shape} ({len(shape)}-d); expected a 2-d array")
        return shape, dt, chunks

    def _open(self) -> Any:
        """A context manager yielding an array-like (HDF5 dataset or Zarr array)."""
        if self.kind == "h5":
            return _H5Member(self.path, self.member)
        return _ZarrMember(self.path, self.member)

    def read(self, layout: Layout, a: int, b: int, name: str, chunk: int) -> np.ndarray:
        """Samples ``a:b`` as a validated float64 ``(d, b - a)`` copy."""
        if self.kind == "npy":
            return _chunk(_open_npy(self.path, self.label), layout, a, b, name)
        where = f"{self.label} (chunk {chunk}: samples {a}:{b})"
        try:
            with self._open() as arr:
                _real_dtype(arr.dtype, self.label)  # the file may have changed since meta()
                if len(arr.shape) == 1:
                    part = np.asarray(arr[a:b]).reshape(1, -1)
                elif layout is Layout.COLUMNS:
                    part = np.asarray(arr[:, a:b])
                else:
                    part = np.asarray(arr[a:b, :]).T
        except InputError:
            raise
        except Exception as exc:  # corrupt / truncated / missing chunk, unreadable file
            raise InputError(f"{where}: cannot read {name} ({_one_line(exc)})") from None
        return check_matrix(part, name, where)


def _chunks_of(arr: Any) -> int | None:
    chunks = getattr(arr, "chunks", None)
    if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], int | np.integer):
        return int(chunks[0])
    return None


class _H5Member:
    """``with _H5Member(path, "/X") as ds``: an HDF5 dataset, the file closed on exit."""

    def __init__(self, path: Path, member: str) -> None:
        self.path, self.member = path, member
        self.file: Any = None

    def __enter__(self) -> Any:
        h5py = optional("h5py")
        self.file = h5py.File(self.path, "r")
        try:
            if self.member not in self.file:
                names = ", ".join(sorted(self.file.keys())[:8]) or "none"
                raise InputError(f"{self.path}: no dataset {self.member} (top-level members: {names})")
            obj = self.file[self.member]
            if not isinstance(obj, h5py.Dataset):
                raise InputError(f"{self.path}:{self.member} is a {type(obj).__name__}, not a dataset")
        except BaseException:
            self.file.close()
            raise
        return obj

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


class _ZarrMember:
    """``with _ZarrMember(path, "X") as arr``: a Zarr array of a group, opened read-only."""

    def __init__(self, path: Path, member: str) -> None:
        self.path, self.member = path, member

    def __enter__(self) -> Any:
        zarr = optional("zarr")
        node = zarr.open(store=str(self.path), mode="r")
        if self.member:
            try:
                node = node[self.member]
            except KeyError:
                names = ", ".join(sorted(getattr(node, "array_keys", lambda: [])())[:8]) or "none"
                raise InputError(
                    f"{self.path}: no array {self.member} (arrays: {names})"
                ) from None
        if not hasattr(node, "dtype") or not hasattr(node, "shape"):
            raise InputError(f"{self.label()} is a group, not an array")
        return node

    def label(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def __exit__(self, *exc: object) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Sources: what one engine task reads


@dataclass(frozen=True)
class PairSource:
    """An ``X, Y`` pair of arrays with its layout and dimensions."""

    x: ArrayRef
    y: ArrayRef
    layout: Layout
    dx: int
    dy: int
    m: int
    eps: float
    storage_chunk: int | None = None

    @property
    def label(self) -> str:
        return f"{self.x.label} + {self.y.label}"

    def read_x(self, a: int, b: int, chunk: int) -> np.ndarray:
        return self.x.read(self.layout, a, b, "X", chunk)

    def read_y(self, a: int, b: int, chunk: int) -> np.ndarray:
        return self.y.read(self.layout, a, b, "Y", chunk)

    def boundaries(self, chunk_size: int | None) -> list[tuple[int, int]]:
        cs = _chunk_samples(chunk_size, self.dx, self.dy, self.storage_chunk)
        return [(a, min(self.m, a + cs)) for a in range(0, self.m, cs)]


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet file, one row per sample; X and Y are the named numeric columns."""

    path: Path
    x_columns: tuple[str, ...]
    y_columns: tuple[str, ...]
    row_groups: tuple[int, ...]  # rows per row group
    eps: float

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def dx(self) -> int:
        return len(self.x_columns)

    @property
    def dy(self) -> int:
        return len(self.y_columns)

    @property
    def m(self) -> int:
        return sum(self.row_groups)

    def boundaries(self, chunk_size: int | None) -> list[tuple[int, int]]:
        """Whole row groups, consecutive ones joined while they fit in a chunk."""
        cs = _chunk_samples(chunk_size, self.dx, self.dy, None)
        out: list[tuple[int, int]] = []
        a = b = 0
        for rows in self.row_groups:
            if b > a and b - a + rows > cs:
                out.append((a, b))
                a = b
            b += rows
        if b > a:
            out.append((a, b))
        return out

    def _groups(self, a: int, b: int) -> tuple[list[int], int]:
        """Row groups overlapping samples ``a:b`` and the first row of the first one."""
        start, first = 0, 0
        groups: list[int] = []
        for i, rows in enumerate(self.row_groups):
            if start < b and start + rows > a:
                if not groups:
                    first = start
                groups.append(i)
            start += rows
        return groups, first

    def _read(self, columns: tuple[str, ...], name: str, a: int, b: int, chunk: int) -> np.ndarray:
        where = f"{self.path} (chunk {chunk}: rows {a}:{b})"
        pq = optional("pyarrow.parquet")
        groups, first = self._groups(a, b)
        try:
            table = pq.ParquetFile(self.path).read_row_groups(groups, columns=list(columns))
        except Exception as exc:
            raise InputError(f"{where}: cannot read the {name} columns ({_one_line(exc)})") from None
        cols = []
        for c in columns:
            col = table.column(c)
            _check_arrow_type(col.type, f"{self.path}: column {c!r}")
            if col.null_count:
                raise InputError(
                    f"{where}: column {c!r} has {col.null_count} null value(s); expected numbers"
                )
            cols.append(col.to_numpy()[a - first : b - first])
        part = np.stack(cols) if cols else np.empty((0, b - a))
        return check_matrix(part, name, where)

    def read_x(self, a: int, b: int, chunk: int) -> np.ndarray:
        return self._read(self.x_columns, "X", a, b, chunk)

    def read_y(self, a: int, b: int, chunk: int) -> np.ndarray:
        return self._read(self.y_columns, "Y", a, b, chunk)


@dataclass(frozen=True)
class NpzSource:
    """An ``.npz`` with ``X, Y`` or statistics, one task (``X, Y`` read in chunks by
    :mod:`dlcert.npz_chunks`)."""

    path: Path
    dx: int
    dy: int
    m: int | None  # None for a statistics file (its m is inside)

    @property
    def label(self) -> str:
        return str(self.path)


ChunkedSource = PairSource | ParquetSource
Source = PairSource | ParquetSource | NpzSource


def _chunk_samples(chunk_size: int | None, dx: int, dy: int, storage: int | None) -> int:
    """Samples per chunk: as given, else about :data:`CHUNK_BYTES` of float64 rounded to storage."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise InputError(f"chunk size must be >= 1 sample, got {chunk_size}")
        return chunk_size
    cs = max(1, CHUNK_BYTES // (8 * (dx + dy)))
    if storage and storage > 0:
        cs = max(storage, (cs // storage) * storage)
    return cs


def chunk_statistics(
    source: ChunkedSource, a: int, b: int, chunk: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(X_c X_c^T, Y_c X_c^T, ||Y_c||^2)`` of one chunk: the kernel of the single engine."""
    Xc = source.read_x(a, b, chunk)
    Yc = source.read_y(a, b, chunk)
    _same_samples(Xc, Yc, source.label, a, b)
    return Xc @ Xc.T, Yc @ Xc.T, float(np.vdot(Yc, Yc))


def _same_samples(Xc: np.ndarray, Yc: np.ndarray, label: str, a: int, b: int) -> None:
    if Xc.shape[1] != b - a or Yc.shape[1] != b - a:  # a file changed under us
        raise InputError(
            f"{label} (samples {a}:{b}): read X {Xc.shape} and Y {Yc.shape}; expected {b - a} samples each"
        )


# ---------------------------------------------------------------------------------------------
# Parquet metadata


def _check_arrow_type(t: Any, where: str) -> None:
    pa = optional("pyarrow")
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        raise InputError(
            f"{where} has type {t}; expected real numbers (float or integer) - string, boolean, "
            "decimal, nested, dictionary and extension types are refused"
        )


def _arrow_eps(t: Any) -> float:
    pa = optional("pyarrow")
    if pa.types.is_floating(t):
        return _eps(np.dtype(t.to_pandas_dtype()))
    return _FLOAT64_EPS


def _select(spec: str, names: Sequence[str], option: str, path: Path) -> tuple[str, ...]:
    """Columns named by ``spec`` (comma-separated names or patterns), in the table's order."""
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:
        raise InputError(f"{option} is empty; give column names, e.g. {option} x1,x2 or {option} 'x_*'")
    out: list[str] = []
    for w in wanted:
        if _GLOB_CHARS.search(w):
            hits = [n for n in names if fnmatch.fnmatchcase(n, w)]
        else:
            hits = [w] if w in names else []
        if not hits:
            shown = ", ".join(repr(n) for n in list(names)[:8])
            raise InputError(f"{path}: {option} {w!r} matches no column (columns: {shown}...)")
        out.extend(h for h in hits if h not in out)
    return tuple(out)


def open_parquet(path: Path, x_columns: str | None, y_columns: str | None) -> ParquetSource:
    """Read a Parquet footer: row groups, column types (refused unless numbers)."""
    if x_columns is None or y_columns is None:
        raise InputError(f"{path}: a Parquet input needs --x-columns and --y-columns")
    pq = optional("pyarrow.parquet")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        groups = tuple(int(pf.metadata.row_group(i).num_rows) for i in range(pf.metadata.num_row_groups))
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_one_line(exc)})") from None
    names = list(schema.names)
    xs = _select(x_columns, names, "--x-columns", path)
    ys = _select(y_columns, names, "--y-columns", path)
    both = sorted(set(xs) & set(ys))
    if both:
        shown = ", ".join(map(repr, both))
        raise InputError(f"{path}: column(s) {shown} are in both --x-columns and --y-columns")
    eps = _FLOAT64_EPS
    for c in xs + ys:
        t = schema.field(c).type
        _check_arrow_type(t, f"{path}: column {c!r}")
        eps = max(eps, _arrow_eps(t))
    src = ParquetSource(path, xs, ys, tuple(g for g in groups if g > 0), eps)
    if src.m == 0:
        raise InputError(f"{path}: the table has no rows")
    return src


# ---------------------------------------------------------------------------------------------
# Layout of a pair, given dimensions found so far


def resolve_layout(
    x_shape: tuple[int, ...], y_shape: tuple[int, ...], dims: Dims, layout: Layout | str | None, source: str
) -> tuple[Layout, int, int, int]:
    """``(layout, dx, dy, m)``; with ``dims`` known, the layout that gives them."""
    if dims is not None and layout is None:
        cands = []
        for lay in (Layout.COLUMNS, Layout.ROWS):
            try:
                got = layout_from_shapes(x_shape, y_shape, lay, source)
            except InputError:
                continue
            if got[1:3] == dims:
                cands.append(got)
        if len(cands) == 1:
            return cands[0]
        if not cands:
            raise InputError(
                f"{source}: X has shape {x_shape} and Y has shape {y_shape}, which do not give "
                f"dx = {dims[0]}, dy = {dims[1]} in either layout"
            )
        raise InputError(
            f"{source}: cannot tell the data layout: X {x_shape}, Y {y_shape} fit both (d, m) and "
            "(m, d); pass --layout columns|rows"
        )
    got = layout_from_shapes(x_shape, y_shape, layout, source)
    if dims is not None and got[1:3] != dims:
        raise InputError(
            f"{source}: gives dx = {got[1]}, dy = {got[2]} in layout {got[0].value} but earlier data "
            f"has dx = {dims[0]}, dy = {dims[1]}"
        )
    return got


def open_pair(x: ArrayRef, y: ArrayRef, dims: Dims, layout: Layout | str | None) -> PairSource:
    """Read the metadata of an ``X, Y`` pair and fix its layout."""
    xs, xt, xc = x.meta()
    ys, yt, _ = y.meta()
    lay, dx, dy, m = resolve_layout(xs, ys, dims, layout, f"{x.label} + {y.label}")
    storage = xc if lay is Layout.ROWS or len(xs) == 1 else None
    if lay is Layout.COLUMNS and len(xs) == 2 and x.kind != "npy":
        storage = _second_chunk(x)
    return PairSource(x, y, lay, dx, dy, m, max(_eps(xt), _eps(yt)), storage)


def _second_chunk(x: ArrayRef) -> int | None:
    try:
        with x._open() as arr:
            chunks = getattr(arr, "chunks", None)
            return int(chunks[1]) if isinstance(chunks, tuple) and len(chunks) == 2 else None
    except Exception:  # metadata only: the read reports real problems
        return None


def open_npz(path: Path, dims: Dims, layout: Layout | str | None) -> NpzSource:
    """Dimensions of an ``.npz`` from its ``.npy`` headers (the engines read and check it whole)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    shapes = {name: shape for name, shape, _ in npz_member_shapes(path)}
    if all(k in shapes for k in RAW_KEYS):
        _, dx, dy, m = resolve_layout(shapes["X"], shapes["Y"], dims, layout, str(path))
        return NpzSource(path, dx, dy, m)
    if all(k in shapes for k in STATS_KEYS) and len(shapes["Sxx"]) == 2 and len(shapes["Syx"]) == 2:
        return NpzSource(path, int(shapes["Sxx"][0]), int(shapes["Syx"][0]), None)
    # Anything else: let the loader word the problem (missing arrays, corrupt members, ...).
    from dlcert.datasets import load_statistics

    stats = load_statistics(path, dims, layout)
    return NpzSource(path, stats.dx, stats.dy, None)


# ---------------------------------------------------------------------------------------------
# Expanding command-line inputs


def _kind(path: Path) -> str | None:
    """The format of a path by its name; a directory is a Zarr store or a folder of shards."""
    name = path.name.lower()
    if path.is_dir():  # Spark writes "out.parquet/" as a directory of part files
        return "zarr" if name.endswith(ZARR_SUFFIXES) or _is_zarr_dir(path) else None
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(H5_SUFFIXES):
        return "h5"
    if name.endswith(ZARR_SUFFIXES):
        return "zarr"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _is_zarr_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in ("zarr.json", ".zgroup", ".zarray"))


def _shard_files(directory: Path) -> list[Path]:
    """Data files under ``directory``, sorted by name; sub-directories followed."""
    out: list[Path] = []
    for p in sorted(directory.iterdir(), key=lambda q: q.name):
        if p.name.startswith((".", "_")):
            continue
        kind = _kind(p)
        if kind is not None:
            out.append(p)
        elif p.is_dir():
            out.extend(_shard_files(p))
        else:
            raise InputError(
                f"{directory}: unknown file {p.name}; a shard directory holds .npy, .npz, .parquet, "
                ".h5 or .zarr files (names starting with . or _ are skipped)"
            )
    return out


def _pair_npy_shards(files: list[Path], where: str) -> list[Path]:
    """Order ``.npy`` shards as consecutive X, Y pairs, matched by name."""
    xs: dict[str, Path] = {}
    ys: dict[str, Path] = {}
    for f in files:
        hits = list(_XY_TOKEN.finditer(f.stem))
        if len(hits) != 1:
            raise InputError(
                f"{f}: cannot tell whether this .npy shard holds X or Y; in {where}, name shards "
                "with one lone x or y, e.g. X_0001.npy and Y_0001.npy"
            )
        h = hits[0]
        key = str(f.parent / (f.stem[: h.start()] + "*" + f.stem[h.end() :]))
        (xs if h.group().lower() == "x" else ys)[key] = f
    for key in sorted(set(xs) ^ set(ys)):
        lone = xs.get(key) or ys.get(key)
        raise InputError(f"{lone}: .npy shard without its {'Y' if key in xs else 'X'} partner in {where}")
    out: list[Path] = []
    for key in sorted(xs):
        out += [xs[key], ys[key]]
    return out


def _expand_one(arg: str) -> tuple[list[str], str | None]:
    """Paths for one argument (a directory or glob becomes its shards) and where they came from."""
    path = Path(arg)
    if path.is_dir() and _kind(path) is None:
        files = _shard_files(path)
        where = f"directory {path}"
    elif not path.exists() and _GLOB_CHARS.search(arg) and not _CONTAINER.match(arg):
        files = []
        for hit in sorted(globlib.glob(arg, recursive=True)):
            p = Path(hit)
            if p.is_dir() and _kind(p) is None:
                files.extend(_shard_files(p))
            elif not p.name.startswith((".", "_")):
                files.append(p)
        where = f"pattern {arg}"
        if not files:
            raise InputError(f"{arg}: the pattern matches no file")
    else:
        return [arg], None
    if not files:
        raise InputError(f"{path}: no data files in this directory")
    npy = [f for f in files if _kind(f) == "npy"]
    other = [str(f) for f in files if _kind(f) != "npy"]
    return other + [str(p) for p in _pair_npy_shards(npy, where)], where


def _array_ref(arg: str) -> ArrayRef | None:
    """An array reference: ``X.npy`` or ``container:member``; ``None`` for anything else."""
    if arg.lower().endswith(".npy"):
        return ArrayRef("npy", Path(arg))
    match = _CONTAINER.match(arg)
    if match and match.group("member"):
        path = Path(match.group("path"))
        kind = "h5" if path.name.lower().endswith(H5_SUFFIXES) else "zarr"
        member = match.group("member")
        return ArrayRef(kind, path, member if kind == "zarr" else "/" + member.lstrip("/"))
    return None


def expand_inputs(
    args: Sequence[str | Path],
    *,
    layout: Layout | str | None = None,
    dims: Dims = None,
    x_columns: str | None = None,
    y_columns: str | None = None,
) -> list[Source]:
    """Sources for the command-line inputs (module docstring), all with the same ``dx, dy``."""
    if layout is not None:
        layout = Layout(layout)
    items: list[str] = []
    for arg in args:
        items.extend(_expand_one(str(arg))[0])
    if not items:
        raise InputError("no data files given")
    out: list[Source] = []
    pending: ArrayRef | None = None
    used_parquet = False
    for item in items:
        ref = _array_ref(item)
        if ref is not None:
            if pending is None:
                pending = ref
                continue
            src: Source = open_pair(pending, ref, dims, layout)
            pending = None
        elif pending is not None:
            raise InputError(f"{pending.label}: an X array must be followed by its Y array, got {item}")
        else:
            path = Path(item)
            kind = _kind(path)
            if kind == "npz":
                src = open_npz(path, dims, layout)
            elif kind == "parquet":
                if layout is Layout.COLUMNS:
                    raise InputError(f"{path}: a Parquet table is one row per sample; drop --layout columns")
                src = open_parquet(path, x_columns, y_columns)
                used_parquet = True
            elif kind == "h5":
                src = open_pair(ArrayRef("h5", path, "/X"), ArrayRef("h5", path, "/Y"), dims, layout)
            elif kind == "zarr":
                src = open_pair(ArrayRef("zarr", path, "X"), ArrayRef("zarr", path, "Y"), dims, layout)
            elif not path.exists():
                raise InputError(f"{item}: no such file")
            else:
                raise InputError(
                    f"{item}: unknown data format; expected .npy pairs, .npz, .h5/.hdf5, .zarr, "
                    ".parquet, or a directory or pattern of these"
                )
        if dims is not None and (src.dx, src.dy) != dims:
            raise InputError(
                f"{src.label}: has dx = {src.dx}, dy = {src.dy} but earlier data has "
                f"dx = {dims[0]}, dy = {dims[1]}"
            )
        dims = (src.dx, src.dy)
        out.append(src)
    if pending is not None:
        raise InputError(f"{pending.label}: an X array needs its Y array after it")
    if (x_columns is not None or y_columns is not None) and not used_parquet:
        raise InputError("--x-columns and --y-columns apply to Parquet inputs only")
    return out


def source_statistics(
    source: ChunkedSource, chunk_size: int | None, on_chunk: Callable[[int], None] | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Stream one chunked source in this process, chunk by chunk (the single-process engine)."""
    Sxx = np.zeros((source.dx, source.dx))
    Syx = np.zeros((source.dy, source.dx))
    syy = 0.0
    for i, (a, b) in enumerate(source.boundaries(chunk_size)):
        sxx, syx, s = chunk_statistics(source, a, b, i)
        Sxx += sxx
        Syx += syx
        syy += s
        if on_chunk is not None:
            on_chunk(b - a)
    return Sxx, Syx, syy


def assert_finite_total(stats: Statistics) -> None:
    """A sum of finite chunks can still overflow: say so instead of writing Inf."""
    if not (np.isfinite(stats.Sxx).all() and np.isfinite(stats.Syx).all() and math.isfinite(stats.syy)):
        raise InputError("the statistics overflow float64: the data's values are too large to square and sum")
