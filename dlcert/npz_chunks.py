"""Raw data ``X, Y`` of an ``.npz`` read in chunks of samples: statistics at one chunk of memory.

:func:`dlcert.io.read_npz_data` does not load the members ``X`` and ``Y`` (or ``x``, ``y``); it
checks their ``.npy`` headers against the zip directory and hands on an :class:`NpzMember` (the
member's place, shape and dtype). :func:`chunked_statistics` then forms ``Sxx = X X^T``,
``Syx = Y X^T`` and ``syy = ||Y||^2`` chunk by chunk, never holding a float64 copy or a
transpose of a whole array:

* a *stored* (uncompressed) member is read with ``os.preadv`` at its data offset in the file,
  like an ``.npy`` file (:mod:`dlcert.streaming`): one read per chunk when the samples are
  contiguous (layout rows in C order, layout columns in Fortran order), one per feature
  otherwise (a column block of a ``(d, m)`` array). The member's CRC-32 is checked over the
  bytes as they are read (then one CRC per feature, combined in file order at the end,
  :func:`crc32_combine`), so a damaged member is refused as ``zipfile`` would refuse it.
* a *compressed* member (deflate, or any method ``zipfile`` reads) is decompressed as a stream,
  chunk by chunk when its samples are contiguous; when they are not (a deflated ``(d, m)``
  array in C order), a stream cannot deliver column blocks, so the member is decompressed once
  into an array of its stored dtype (one copy of the data, never a float64 one) and read from
  there. ``zipfile`` checks the CRC at the end of the stream.

Validation is that of :func:`dlcert.validation.check_data`, split in two: the shapes, dtypes and
layout from the headers alone (:func:`~dlcert.validation.data_layouts`), then each chunk's values
(finite after conversion to float64). A non-finite value is reported with the same line as for a
whole array (its count over the whole array and the first index as stored), after the pass.
Square data whose layout only the values can settle is read whole (the layout check compares
the two readings). Every failure is one :class:`~dlcert.errors.InputError` line naming the file.

Statistics equal those of the whole arrays up to the order of the float64 summations.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from dlcert.errors import InputError
from dlcert.resources import CHUNK_BYTES, Estimate, human, read_npy_header, require
from dlcert.statistics import Statistics
from dlcert.validation import (
    check_data,
    data_layouts,
    exception_summary,
    nonfinite_error,
    open_input,
    precision_of,
)

__all__ = [
    "RAW_NAMES",
    "READ_ERRORS",
    "NpzMember",
    "chunked_statistics",
    "crc32_combine",
    "member_header",
]

#: Members read in chunks (``x``/``y`` are read as ``X``/``Y``, :mod:`dlcert.checkpoints`).
RAW_NAMES = frozenset({"X", "Y", "x", "y"})

#: What reading a damaged archive or member can raise (zipfile, zlib, numpy.lib.format).
READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # unsupported zip compression method
    RuntimeError,  # encrypted member
    OverflowError,
    MemoryError,
    SyntaxError,  # a malformed .npy header goes through ast.literal_eval
    TypeError,
)

_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field
_MAX_PIECE = 1 << 22  # largest single read from a zip stream (zipfile copies it a few times)


@dataclass(frozen=True)
class NpzMember:
    """An ``.npy`` member of an ``.npz`` whose header has been checked, not yet read.

    ``shape``, ``dtype`` and ``fortran`` come from its ``.npy`` header; ``header`` is that
    header's size in bytes; ``info`` the member's zip directory entry.
    """

    path: Path
    source: str
    name: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool
    header: int

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        count = 1
        for n in self.shape:
            count *= n
        return count * self.dtype.itemsize

    @property
    def stored(self) -> bool:
        """Uncompressed and not encrypted: readable in place at its data offset."""
        return self.info.compress_type == zipfile.ZIP_STORED and not self.info.flag_bits & 0x1

    def placeholder(self) -> np.ndarray:
        """An array of this shape and dtype that holds no data (all strides 0), for the checks
        that read only shapes and dtypes."""
        return np.broadcast_to(np.zeros((), dtype=self.dtype), self.shape)

    def load(self) -> np.ndarray:
        """The whole array (``zipfile`` checks the CRC); only for square data of unknown layout."""
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self.info) as fp:
                return np.lib.format.read_array(fp, allow_pickle=False)
        except READ_ERRORS as exc:
            raise _corrupt(self.source, exc) from exc


def member_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo
) -> tuple[tuple[int, ...], np.dtype[Any], bool, int]:
    """``(shape, dtype, fortran_order, header size)`` of a member's ``.npy`` header."""
    with zf.open(info) as fp:
        return read_npy_header(fp)


def _corrupt(source: str, exc: BaseException | str) -> InputError:
    why = exc if isinstance(exc, str) else exception_summary(exc)
    return InputError(f"{source}: corrupt or truncated .npz archive ({why})")


# ---------------------------------------------------------------------------------------------
# CRC-32 of bytes read out of order (zlib's crc32_combine, which Python's zlib does not expose)

_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """``a * b`` modulo the CRC-32 polynomial (bit-reflected, as zlib)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> list[int]:
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multmodp(table[-1], table[-1]))
    return table


_X2N = _x2n_table()


def _x8nmodp(n: int) -> int:
    """``x^(8 n)`` modulo the polynomial: shifting a CRC past ``n`` bytes."""
    p = 1 << 31  # x^0
    k = 3
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc1 = crc32(A)``, ``crc2 = crc32(B)`` and ``len2 = len(B)``."""
    return _multmodp(_x8nmodp(len2), crc1) ^ crc2


# ---------------------------------------------------------------------------------------------
# Readers: samples a:b of one array as a (d, b - a) array of its stored dtype (maybe a view)


class _Reader:
    """Samples of one array in order of ``a``; :meth:`finish` after the last chunk."""

    d: int
    m: int

    def read(self, a: int, b: int) -> np.ndarray:
        raise NotImplementedError

    def finish(self) -> None:
        """Everything read: check what can only be checked at the end (the CRC)."""


def _geometry(shape: tuple[int, ...], fortran: bool, lay: str) -> tuple[int, int, bool]:
    """``(d, m, contiguous)``: features, samples, and whether one sample's values are adjacent."""
    if len(shape) == 1:
        return 1, shape[0], True
    rows, cols = shape
    if lay == "columns":
        return rows, cols, fortran
    return cols, rows, not fortran


class _ArrayReader(_Reader):
    """An array in memory (an ``.npz`` member decompressed whole, or an array given as such)."""

    def __init__(self, a: np.ndarray, lay: str) -> None:
        self.a = a.reshape(1, -1) if a.ndim == 1 else a
        self.columns = a.ndim == 1 or lay == "columns"
        self.d, self.m = (self.a.shape[0], self.a.shape[1]) if self.columns else (
            self.a.shape[1], self.a.shape[0])

    def read(self, a: int, b: int) -> np.ndarray:
        return self.a[:, a:b] if self.columns else self.a[a:b, :].T


class _StoredReader(_Reader):
    """A stored member read in place with ``os.preadv``; the CRC-32 taken over what is read."""

    def __init__(self, member: NpzMember, lay: str, fp: IO[bytes]) -> None:
        self.member, self.fd = member, fp.fileno()
        self.d, self.m, self.contiguous = _geometry(member.shape, member.fortran, lay)
        info, source = member.info, member.source
        size = os.fstat(self.fd).st_size
        local = os.pread(self.fd, _LOCAL_HEADER, info.header_offset)
        if len(local) < _LOCAL_HEADER or local[:4] != b"PK\x03\x04":
            raise _corrupt(source, f"bad local header of member {member.name}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + _LOCAL_HEADER + name_len + extra_len
        if info.compress_size != info.file_size or start + info.compress_size > size:
            raise _corrupt(source, f"member {member.name} ends past the end of the file")
        self.offset = start + member.header  # first data byte
        head = os.pread(self.fd, member.header, start)
        if len(head) != member.header:
            raise _corrupt(source, f"member {member.name} ends past the end of the file")
        self.crc = zlib.crc32(head)
        self.item = member.dtype.itemsize
        # samples not contiguous: the CRC of each feature's values so far (a feature's segments
        # are read in file order, so each continues its own CRC; features combine at the end)
        self.features = [0] * self.d if not self.contiguous else []
        self.next = 0

    def _pread(self, buf: np.ndarray, offset: int, crc: int = 0) -> int:
        """Fill ``buf`` from the file at ``offset``; the CRC-32 of its bytes, continuing ``crc``."""
        view = memoryview(buf.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        done = 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got == 0:
                raise _corrupt(
                    self.member.source,
                    f"member {self.member.name} ended after {offset + done} bytes of the file "
                    "while being read (truncated or changed during the pass)",
                )
            done += got
        return zlib.crc32(view, crc)

    def read(self, a: int, b: int) -> np.ndarray:
        if a != self.next:  # pragma: no cover - the pass reads chunks in order
            raise ValueError("chunks of a stored member are read in order")
        self.next = b
        n = b - a
        if self.contiguous:  # samples a:b are n * d consecutive values, in file order
            rows = np.empty((n, self.d), dtype=self.member.dtype)
            self.crc = self._pread(rows, self.offset + a * self.d * self.item, self.crc)
            return rows.T
        out = np.empty((self.d, n), dtype=self.member.dtype)
        for i in range(self.d):  # feature i is m consecutive values; take a:b of them
            self.features[i] = self._pread(out[i], self.offset + (i * self.m + a) * self.item,
                                           self.features[i])
        return out

    def finish(self) -> None:
        crc = self.crc
        if not self.contiguous:
            shift = _x8nmodp(self.m * self.item)  # past one feature's values
            for feature in self.features:
                crc = _multmodp(shift, crc) ^ feature
        if crc != self.member.info.CRC:
            raise _corrupt(self.member.source, f"Bad CRC-32 for member {self.member.name}")


class _StreamReader(_Reader):
    """A compressed member, decompressed by ``zipfile`` as a stream (which checks the CRC)."""

    def __init__(self, member: NpzMember, lay: str, stack: ExitStack) -> None:
        self.member = member
        self.d, self.m, self.contiguous = _geometry(member.shape, member.fortran, lay)
        zf = stack.enter_context(zipfile.ZipFile(member.path))
        self.fp = stack.enter_context(zf.open(member.info))
        self.fp.read(member.header)  # the .npy header, already parsed
        self.whole: _ArrayReader | None = None
        if not self.contiguous:
            shape = member.shape if not member.fortran else member.shape[::-1]
            buf = np.empty(shape, dtype=member.dtype)
            self._fill(buf)
            self.finish()
            self.whole = _ArrayReader(buf.T if member.fortran else buf, lay)

    def _fill(self, buf: np.ndarray) -> None:
        view = memoryview(buf.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        done = 0
        while done < len(view):
            part = self.fp.read(min(len(view) - done, _MAX_PIECE))
            if not part:
                raise _corrupt(self.member.source, f"member {self.member.name} ended early")
            view[done : done + len(part)] = part
            done += len(part)

    def read(self, a: int, b: int) -> np.ndarray:
        if self.whole is not None:
            return self.whole.read(a, b)
        rows = np.empty((b - a, self.d), dtype=self.member.dtype)
        self._fill(rows)
        return rows.T

    def finish(self) -> None:
        if self.fp.read(1):  # reaching the end makes zipfile check the CRC
            raise _corrupt(self.member.source, f"member {self.member.name} is longer than its header says")


# ---------------------------------------------------------------------------------------------
# The pass


@dataclass
class _Bad:
    """Non-finite values of one array, over the whole pass."""

    count: int = 0
    nan: int = 0
    first: tuple[int, int] | None = None


def _scan(c: np.ndarray, a: int, columns: bool, bad: _Bad) -> bool:
    """Record the non-finite values of chunk ``c`` (``(d, n)`` float64, samples from ``a``) with
    their indices in the array as stored (made 2-d); whether there were any."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(c.sum()):
            return False
    mask = ~np.isfinite(c)
    if not mask.any():  # the sum overflowed, the entries are fine
        return False
    bad.count += int(mask.sum())
    bad.nan += int(np.isnan(c).sum())
    f, j = np.nonzero(mask)
    r, k = (f, j + a) if columns else (j + a, f)
    pick = int(np.lexsort((k, r))[0])
    here = (int(r[pick]), int(k[pick]))
    bad.first = here if bad.first is None else min(bad.first, here)
    return True


def _reader(a: np.ndarray | NpzMember, lay: str, stack: ExitStack) -> _Reader:
    if isinstance(a, np.ndarray):
        return _ArrayReader(a, lay)
    if a.stored:
        return _StoredReader(a, lay, stack.enter_context(open_input(a.path, "an .npz archive")))
    return _StreamReader(a, lay, stack)


def _view(a: np.ndarray | NpzMember) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.placeholder()


def chunked_statistics(
    X: np.ndarray | NpzMember,
    Y: np.ndarray | NpzMember,
    dx: int,
    dy: int,
    layout: Any,
    source: str,
    *,
    precision: float = 0.0,
    chunk_size: int | None = None,
) -> Statistics:
    """``Sxx, Syx, syy, m`` of raw data, checked as :func:`~dlcert.validation.check_data` checks
    it, read ``chunk_size`` samples at a time (default: about :data:`CHUNK_BYTES` of float64).

    ``eps`` is :func:`~dlcert.validation.precision_of` the stored dtypes (at least
    ``precision``), as for arrays read whole. The range of the result is the caller's to check.
    """
    Xv, Yv = _view(X), _view(Y)
    layouts, x_flat, y_flat = data_layouts(Xv, Yv, dx, dy, layout, source)
    eps = precision_of(Xv, Yv, floor=precision)
    if len(layouts) == 2:  # square data: only the values tell whether the readings agree
        Xa = X if isinstance(X, np.ndarray) else X.load()
        Ya = Y if isinstance(Y, np.ndarray) else Y.load()
        X64, Y64 = check_data(Xa, Ya, dx, dy, layout, source)
        with np.errstate(over="ignore", invalid="ignore"):
            return Statistics.from_data(X64, Y64, eps=eps)
    lay = layouts[0]
    cs = chunk_size if chunk_size is not None else max(1, CHUNK_BYTES // (8 * (dx + dy)))
    m = (Xv.shape[1] if lay == "columns" else Xv.shape[0]) if not x_flat else Xv.shape[0]
    cs = max(1, min(cs, m))
    _guard(X, Y, dx, dy, cs, lay, source)
    Sxx = np.zeros((dx, dx))
    Syx = np.zeros((dy, dx))
    syy = 0.0
    bad_x, bad_y = _Bad(), _Bad()
    x_cols, y_cols = x_flat or lay == "columns", y_flat or lay == "columns"
    with ExitStack() as stack:
        try:
            xr, yr = _reader(X, lay, stack), _reader(Y, lay, stack)
            for a, b in _chunks(m, cs):
                with np.errstate(over="ignore", invalid="ignore"):
                    Xc = xr.read(a, b).astype(np.float64, copy=False)
                    Yc = yr.read(a, b).astype(np.float64, copy=False)
                if bad_x.count or bad_y.count:  # failed: only count what is left
                    _scan(Xc, a, x_cols, bad_x)
                    _scan(Yc, a, y_cols, bad_y)
                    continue
                with np.errstate(over="ignore", invalid="ignore"):
                    gram = Xc @ Xc.T
                    yy = float(np.einsum("ij,ij->", Yc, Yc))  # as Statistics.from_data
                # A non-finite value makes its row's sum of squares non-finite, so finite
                # diagonals and ||Y_c||^2 prove the chunk finite; otherwise look (an overflow
                # of finite values is not an error here: the range check refuses it later).
                if not (np.isfinite(np.diagonal(gram)).all() and np.isfinite(yy)):
                    if _scan(Xc, a, x_cols, bad_x) | _scan(Yc, a, y_cols, bad_y):
                        continue
                with np.errstate(over="ignore", invalid="ignore"):
                    Sxx += gram
                    Syx += Yc @ Xc.T
                    syy += yy
            xr.finish()
            yr.finish()
        except InputError:
            raise
        except READ_ERRORS as exc:
            raise _corrupt(source, exc) from exc
    for name, bad, v, flat_ in (("X", bad_x, Xv, x_flat), ("Y", bad_y, Yv, y_flat)):
        if bad.count:
            assert bad.first is not None
            first = (0, bad.first[1]) if flat_ else bad.first
            raise nonfinite_error(name, source, bad.count, bad.nan, int(v.size), first)
    return Statistics(Sxx=Sxx, Syx=Syx, syy=syy, m=int(m), eps=eps)


def _chunks(m: int, cs: int) -> Iterator[tuple[int, int]]:
    for a in range(0, m, cs):
        yield a, min(m, a + cs)


def _guard(
    X: np.ndarray | NpzMember, Y: np.ndarray | NpzMember, dx: int, dy: int, cs: int, lay: str,
    source: str,
) -> None:
    """Refuse a pass that would not fit: statistics, a chunk as float64 and as stored, and the
    stored bytes of a compressed member whose samples are not contiguous (decompressed whole)."""
    need = (2 * (dx * dx + dy * dx) + cs * (dx + dy)) * 8
    dominant = f"Sxx, Syx and chunks of {cs} samples"
    for a, d in ((X, dx), (Y, dy)):
        if isinstance(a, NpzMember):
            need += cs * d * a.dtype.itemsize
            if not a.stored and not _geometry(a.shape, a.fortran, lay)[2]:
                need += a.nbytes
                dominant = (f"member {a.name} ({human(a.nbytes)}), compressed with its samples "
                            "not contiguous, decompressed whole")
    require(Estimate("reading the data in chunks", need, dominant), source)
