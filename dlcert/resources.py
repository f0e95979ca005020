"""The resource guard: refuse a problem that would need more memory than is available.

Before anything heavy runs, dlcert estimates the peak memory of each stage from the shapes
alone and raises :class:`~dlcert.errors.ResourceError` (exit 2, one line) when an estimate
exceeds the memory it may use, instead of letting the process be killed or thrash.

Two checkpoints:

1. :func:`guard_files` reads only the ``.npy`` headers of each ``.npz`` member (shape and
   dtype, no data) and estimates loading: every array as stored plus a float64 copy (raw data
   ``X``, ``Y`` read in chunks counts one chunk, :mod:`dlcert.npz_chunks`). This
   also stops a small compressed archive that declares a huge array (a "zip bomb") before
   ``np.load`` allocates it. Anything it cannot parse is left to the loader, which reports it.
   A safetensors or PyTorch file (:mod:`dlcert.formats`) is not opened: its tensors are about
   its size, so loading is estimated as :data:`FOREIGN_FACTOR` times the file size (tensors as
   read, plus the float64 copy validation makes of float32 weights; float16/bfloat16 files
   need up to about 7 times their size, so this is a guide there, not a bound).
2. :func:`guard_certify` estimates certification from the widths ``d_0..d_N``
   (:func:`certify_estimate`): the weights and their partial products (``A_i``, ``B_i``,
   ``A_i^T E``, ``E B_i^T``), whitening (eigen/singular decompositions of ``dx x dx`` and
   ``dy x dx``), rank-rule chain products and their SVDs (``d_a x d_b``), and the Hessian stage:
   the dense Hessian (about five ``P x P`` float64 arrays) only when ``P <= dense_limit``,
   otherwise the Lanczos basis (20 vectors) and the LOBPCG block (about 12 block-width
   columns of length P). These are estimates of the largest allocations, not bounds on the
   interpreter's footprint.

The budget is :func:`available_memory`: the ``DLCERT_MEMORY_LIMIT`` environment variable when
set (bytes, or with a suffix ``K``, ``M``, ``G``, ``T``, powers of 1024; tests use it to set an
artificial limit), otherwise ``MemAvailable`` of ``/proc/meminfo``, capped by a cgroup memory
limit when one is set, falling back to ``os.sysconf`` available pages.
"""

from __future__ import annotations

import importlib
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from dlcert.errors import InputError, ResourceError
from dlcert.formats import format_of
from dlcert.validation import exception_summary, open_input

ENV_LIMIT = "DLCERT_MEMORY_LIMIT"
_FLOAT = 8  # bytes per float64
FOREIGN_FACTOR = 3
CHUNK_BYTES = 32 * 2**20
"""Default chunk of a pass over raw data: as many samples as fit in this many bytes of float64
``X`` and ``Y`` (:mod:`dlcert.streaming`, :mod:`dlcert.npz_chunks`)."""
_RAW_MEMBERS = frozenset({"X", "Y", "x", "y"})  # read in chunks by dlcert.npz_chunks
"""Loading a safetensors / PyTorch file needs about this many times its size (module doc)."""
_SUFFIX = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_LIMIT_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
_NPY_VERSIONS = ((1, 0), (2, 0), (3, 0))
# numpy's reader of any header version (read_array_header_1_0/2_0 stop at 2.0); private but
# present since numpy 1.17 and still in 2.x.


def _header_reader() -> Callable[..., Any]:
    for name in ("numpy.lib._format_impl", "numpy.lib.format"):
        try:
            reader = getattr(importlib.import_module(name), "_read_array_header", None)
        except ImportError:  # pragma: no cover - depends on the numpy version
            continue
        if reader is not None:
            return reader
    raise ImportError("numpy has no .npy header reader")  # pragma: no cover


_read_array_header = _header_reader()
_CGROUP_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def parse_size(text: str) -> int:
    """``"512M"`` -> 536870912. Suffixes K, M, G, T are powers of 1024; a bare number is bytes."""
    match = _LIMIT_RE.fullmatch(text)
    if match is None:
        raise InputError(
            f"{ENV_LIMIT}={text!r} is not a size; expected bytes or a number with K, M, G or T"
        )
    return int(float(match.group(1)) * _SUFFIX[match.group(2).upper()])


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit() -> int | None:
    for name in _CGROUP_FILES:
        try:
            text = Path(name).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> tuple[int | None, str]:
    """Bytes dlcert may use and where that number came from (``None``: unknown, no guard)."""
    override = os.environ.get(ENV_LIMIT)
    if override is not None and override.strip():
        return parse_size(override), ENV_LIMIT
    avail = _meminfo_available()
    source = "MemAvailable in /proc/meminfo"
    if avail is None:
        avail, source = _sysconf_available(), "os.sysconf available pages"
    cgroup = _cgroup_limit()
    if cgroup is not None and (avail is None or cgroup < avail):
        return cgroup, "the cgroup memory limit"
    return avail, source


def human(n: float) -> str:
    """Bytes for people: ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


@dataclass(frozen=True)
class Estimate:
    """Estimated peak bytes of one stage and the allocation that dominates it."""

    stage: str
    bytes: int
    dominant: str


def require(estimate: Estimate, source: str) -> None:
    """Raise :class:`ResourceError` when ``estimate`` exceeds the available memory."""
    limit, origin = available_memory()
    if limit is None or estimate.bytes <= limit:
        return
    raise ResourceError(
        f"{source}: {estimate.stage} would need about {human(estimate.bytes)} "
        f"({estimate.dominant}) but only {human(limit)} is available ({origin}); refusing "
        f"rather than running out of memory (set {ENV_LIMIT} to change the limit)"
    )


# ---------------------------------------------------------------------------------------------
# Loading


def read_npy_header(fp: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any], bool, int]:
    """``(shape, dtype, fortran_order, header size)`` of an ``.npy`` stream from its header alone.

    Every header version numpy writes (1.0, 2.0 and 3.0) is read; any other version, or a
    damaged header, raises ``ValueError`` (or whatever numpy raises on a malformed header).
    """
    version = np.lib.format.read_magic(fp)
    if version not in _NPY_VERSIONS:
        raise ValueError(f".npy header version {version[0]}.{version[1]} is not one numpy writes")
    shape, fortran, dtype = _read_array_header(fp, version)
    return tuple(int(n) for n in shape), dtype, bool(fortran), fp.tell()


def read_member_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo
) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """``(shape, dtype, header size)`` of an ``.npy`` member of an ``.npz`` from its header alone.

    A damaged header or an unknown version raises (:func:`read_npy_header`).
    """
    with zf.open(info) as fp:
        shape, dtype, _, size = read_npy_header(fp)
        return shape, dtype, size


def npz_member_shapes(path: Path) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """``(name, shape, dtype)`` of each member, from the ``.npy`` headers only.

    Members whose header cannot be read, or whose declared size disagrees with the member's
    uncompressed size in the zip directory, are skipped: they are corrupt and the loader reports
    them. A compressed member that truthfully declares a huge array is counted.
    """
    out: list[tuple[str, tuple[int, ...], np.dtype]] = []
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir() or not info.filename.endswith(".npy"):
                    continue
                try:
                    found = read_member_header(zf, info)
                except Exception:  # a damaged member is the loader's to report
                    continue
                shape, dtype, header = found
                count = int(np.prod(shape, dtype=object)) if shape else 1
                if count * dtype.itemsize != info.file_size - header:
                    continue  # header and payload disagree: corrupt, the loader says so
                out.append((info.filename.removesuffix(".npy"), tuple(shape), dtype))
    except Exception:  # not a readable zip: the loader says why
        return out
    return out


def npy_file_header(path: Path) -> tuple[tuple[int, ...], np.dtype[Any], bool, int]:
    """``(shape, dtype, fortran_order, header size)`` of a single ``.npy`` file, checked against
    the file's size: a header declaring more data than the file holds (a truncated file, or a
    small file declaring a huge array, which ``np.load`` would allocate before reading) is an
    :class:`InputError` naming the file."""
    source = str(path)
    with open_input(path, "an .npy array") as fp:
        if fp.read(4).startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise InputError(f"{source}: is an .npz archive; expected one .npy array")
        fp.seek(0)
        try:
            shape, dtype, fortran, header = read_npy_header(fp)
        except Exception as exc:  # numpy raises several types on a damaged header
            raise InputError(f"{source}: not a readable .npy array ({exception_summary(exc)})") from None
        size = os.fstat(fp.fileno()).st_size
    if dtype.hasobject:
        raise InputError(
            f"{source}: has dtype {dtype} (shape {shape}), which needs pickle to load; dlcert "
            "never unpickles (allow_pickle=False)"
        )
    count = int(np.prod(shape, dtype=object)) if shape else 1
    need = count * dtype.itemsize
    if need != size - header:
        raise InputError(
            f"{source}: declares shape {shape} dtype {dtype} ({need} bytes) but holds "
            f"{size - header} bytes of data; the file is truncated or corrupt"
        )
    return shape, dtype, fortran, header


def _foreign_bytes(path: Path) -> int:
    """Bytes of tensor data a safetensors / PyTorch file holds once read: a PyTorch zip archive
    is measured by its members' uncompressed sizes (a deflated file can be tiny), anything else
    by its size."""
    size = Path(path).stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            return max(size, sum(int(info.file_size) for info in zf.infolist()))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return size


def _npy_shapes(path: Path) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    try:
        with Path(path).open("rb") as fp:
            shape, dtype, _, _ = read_npy_header(fp)
    except Exception:  # the loader reports a damaged file
        return []
    return [(Path(path).name, shape, dtype)]


def load_estimate(paths: Iterable[Path], *, raw_in_chunks: bool = False) -> Estimate:
    """Arrays as stored plus a float64 copy of each (validation converts to float64).

    ``.npz`` members and ``.npy`` files count what their headers declare; safetensors and
    PyTorch files :data:`FOREIGN_FACTOR` times their tensor bytes (:func:`_foreign_bytes`).
    With ``raw_in_chunks`` (the loader reads the raw data ``X``, ``Y`` of an ``.npz`` in chunks,
    :mod:`dlcert.npz_chunks`) those members count one chunk each, as stored and as float64; the
    chunked reader guards its own needs once it knows the layout.
    """
    total = 0
    biggest, dominant = 0, "no arrays"
    for path in paths:
        if format_of(path) is not None:
            try:
                size = FOREIGN_FACTOR * _foreign_bytes(path)
            except OSError:  # the loader says why
                continue
            total += size
            if size > biggest:
                biggest, dominant = size, f"the tensors of {Path(path).name}"
            continue
        is_npy = Path(path).suffix.lower() == ".npy"
        for name, shape, dtype in _npy_shapes(path) if is_npy else npz_member_shapes(path):
            count = int(np.prod(shape, dtype=object)) if shape else 1
            if raw_in_chunks and not is_npy and name in _RAW_MEMBERS:
                count = min(count, CHUNK_BYTES // _FLOAT)
            size = count * (int(dtype.itemsize) + _FLOAT)
            total += size
            if size > biggest:
                where = Path(path).name if is_npy else f"{Path(path).name}:{name}"
                biggest, dominant = size, f"array {where} of shape {shape}"
    return Estimate("loading", total, dominant)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # missing, name too long, ...: the loader says why
        return False


def guard_files(paths: Iterable[Path | None], *, raw_in_chunks: bool = False) -> None:
    """Refuse files whose arrays would not fit in memory once loaded (headers only).

    The one memory guard of every input path (``.npz``, ``.npy``, safetensors, PyTorch); what is
    not a regular file is skipped here and refused by the loader. ``raw_in_chunks``: the caller
    reads ``X``, ``Y`` of an ``.npz`` in chunks (:func:`load_estimate`).
    """
    real = [Path(p) for p in paths if p is not None and _regular(Path(p))]
    if real:
        require(load_estimate(real, raw_in_chunks=raw_in_chunks), str(real[0]))


def stats_estimate(dx: int, dy: int, chunk: int) -> Estimate:
    """Peak bytes of streaming statistics: ``Sxx``, ``Syx`` and their chunk products, plus one
    chunk of ``X`` and ``Y`` as read and as float64."""
    gram = 2 * (dx * dx + dy * dx) * _FLOAT
    chunks = 2 * chunk * (dx + dy) * _FLOAT
    if gram >= chunks:
        return Estimate("statistics", gram + chunks, f"Sxx and Syx ({dx} x {dx} and {dy} x {dx})")
    return Estimate("statistics", gram + chunks, f"a chunk of {chunk} samples")


def guard_statistics(dx: int, dy: int, chunk: int, source: str) -> None:
    """Refuse a streaming pass whose statistics would not fit (:func:`stats_estimate`)."""
    require(stats_estimate(dx, dy, chunk), source)


def landscape_estimate(widths: Sequence[int], *, trials: int, save_optimum: bool,
                       dense_limit: int) -> Estimate:
    """Peak bytes of ``dlcert landscape`` beyond the data: whitening, a balanced optimum (the
    weights and the product's SVD), random-start training (L-BFGS history of 10 pairs and the
    certification of each end point, :func:`certify_estimate`)."""
    d = [int(x) for x in widths]
    dx, dy = d[0], d[-1]
    params = sum(d[i] * d[i - 1] for i in range(1, len(d)))
    stages = [(4 * (dx * dx + dy * dy + dy * dx) * _FLOAT, f"whitening ({dx} x {dx} and {dy} x {dx})")]
    if save_optimum:
        stages.append((4 * params * _FLOAT, f"the balanced optimum ({params} parameters)"))
    if trials:
        cert = certify_estimate(d, dense_limit=dense_limit)
        stages.append((cert.bytes + 30 * params * _FLOAT,
                       f"training from random starts ({params} parameters)"))
    need, dominant = max(stages)
    return Estimate("the landscape", need, dominant)


def guard_landscape(widths: Sequence[int], source: str, *, trials: int, save_optimum: bool,
                    dense_limit: int) -> None:
    """Refuse a landscape whose widths would not fit (:func:`landscape_estimate`)."""
    require(landscape_estimate(widths, trials=trials, save_optimum=save_optimum,
                               dense_limit=dense_limit), source)


# ---------------------------------------------------------------------------------------------
# Certification


def certify_estimate(
    widths: Sequence[int], *, dense_limit: int, n_extremes: int = 0
) -> Estimate:
    """Peak bytes of :func:`dlcert.certification.certify` for widths ``[d_0, ..., d_N]``."""
    d = [int(x) for x in widths]
    n = len(d) - 1
    dx, dy = d[0], d[-1]
    params = sum(d[i] * d[i - 1] for i in range(1, n + 1))
    # weights (float64 copies) + cache: A_i (dy x d_i), B_i (d_{i-1} x dx), A_i^T E, E B_i^T.
    cache = sum(dy * d[i] + d[i - 1] * dx + d[i] * dx + dy * d[i - 1] for i in range(1, n + 1))
    persistent = (2 * params + cache + 3 * dx * dx + 2 * dy * dy + 3 * dy * dx) * _FLOAT
    stages: list[tuple[int, str]] = []
    # whitening: eigh(Sxx) and full SVD of T.
    stages.append((4 * (dx * dx + dy * dy + dy * dx) * _FLOAT, f"whitening ({dx} x {dx} and {dy} x {dx})"))
    # rank rule / witnesses: a chain product d_a x d_b and its full SVD (U, V^T and a copy).
    a, b = max(((d[i], d[j]) for i in range(n + 1) for j in range(n + 1)), key=lambda t: t[0] * t[1])
    stages.append(((3 * a * b + a * a + b * b) * _FLOAT, f"partial-product SVDs ({a} x {b})"))
    # one Hessian-vector product: dA_i, dB_i and the output, about the size of the cache.
    hvp = (cache + params) * _FLOAT
    if params <= dense_limit:
        stages.append((5 * params * params * _FLOAT + hvp,
                       f"dense Hessian ({params} x {params}) and eigh"))
    else:
        block = max(4, n_extremes + 1)
        stages.append(((20 + 12 * block) * params * _FLOAT + hvp,
                       f"Lanczos/LOBPCG vectors of length {params}"))
    extra, dominant = max(stages)
    return Estimate("certification", persistent + extra, dominant)


def guard_certify(widths: Sequence[int], source: str, *, dense_limit: int, n_extremes: int = 0) -> None:
    """Refuse a certification whose estimated peak exceeds the available memory."""
    require(certify_estimate(widths, dense_limit=dense_limit, n_extremes=n_extremes), source)
