"""Loading and saving weights, data and statistics (SPEC §6).

A thin I/O layer: it reads files into plain arrays and hands every check to
:mod:`dlcert.validation`. Loading never executes code from a file: ``.npz`` archives are read
with ``np.load(..., allow_pickle=False)``, and an array that would need pickle is an error.
Every failure is one :class:`~dlcert.errors.InputError` line naming the file.

File contents (array names inside an ``.npz``):

- weights: ``W1..WN`` (input to output), ``W_i`` of shape ``(d_i, d_{i-1})``;
- raw data: ``X`` and ``Y`` (layout ``(d, m)`` or ``(m, d)``, see :class:`Layout`);
- statistics: ``Sxx``, ``Syx``, ``syy``, ``m`` (see :class:`dlcert.statistics.Statistics`);
- metadata: any name starting with ``meta_`` (a 0-d array: number, bool or unicode string).

Weights may also come from ``.safetensors`` and PyTorch ``state_dict`` files (``.pt``,
``.pth``, ``.bin``); :func:`load_problem` hands those to :mod:`dlcert.formats` by suffix, and
their data must then come from a separate ``.npz``.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from dlcert import checkpoints, formats
from dlcert.errors import InputError
from dlcert.resources import guard_files, read_member_header
from dlcert.statistics import Statistics
from dlcert.validation import (
    MAX_INDEX_DIGITS,
    Layout,
    check_data,
    check_input_file,
    check_statistics,
    check_statistics_range,
    check_weight_chain,
    claimed_precision,
    describe,
    exception_summary,
    layer_index,
    layout_from_shapes,
    open_input,
    precision_of,
)
from dlcert.writer import write_atomic

__all__ = [
    "DATA_KEYS",
    "META_PREFIX",
    "RAW_KEYS",
    "STATS_KEYS",
    "Layout",
    "Problem",
    "data_statistics",
    "load_problem",
    "load_weights",
    "problem_from",
    "read_metadata",
    "read_npz",
    "read_witness",
    "require_targets",
    "save_statistics",
    "save_weights",
    "weights_from_arrays",
]

RAW_KEYS = ("X", "Y")
STATS_KEYS = ("Sxx", "Syx", "syy", "m")
DATA_KEYS = RAW_KEYS + STATS_KEYS
META_PREFIX = "meta_"

_ALLOWED = "W1..WN, X, Y, Sxx, Syx, syy, m, meta_*"

# What reading a damaged archive or member can raise (zipfile, zlib, numpy.lib.format).
_READ_ERRORS = (
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


@dataclass(frozen=True)
class Problem:
    """Validated weights and data statistics, ready to certify.

    weights : ``W1..WN`` as float64 C-contiguous arrays, ``W_i`` of shape ``(d_i, d_{i-1})``.
    stats : the sufficient statistics of the data; ``stats.eps`` is the data's precision:
        machine epsilon of its coarsest stored floating dtype (integers count as float64; never
        below float64's 2.2e-16 since everything is computed in float64). A statistics file's
        ``meta_eps`` (the precision of the raw data it was computed from) may only tighten what
        the stored dtypes imply (:func:`dlcert.validation.claimed_precision`).
    weights_eps : machine epsilon of the weights' stored dtypes (float16 2**-10; bfloat16,
        widened to float32 on reading, 2**-7). The two precisions enter the tolerances in
        different places (:mod:`dlcert.tolerances`).
    weights_source, data_source : the files the weights and the data came from.
    """

    weights: tuple[np.ndarray, ...]
    stats: Statistics
    weights_eps: float
    weights_source: str
    data_source: str

    @property
    def eps(self) -> float:
        """The coarser of the two precisions (for checks that do not tell them apart)."""
        return max(self.weights_eps, self.stats.eps)


def _one_line(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show_path(path: Path) -> str:
    return _one_line(str(path) if str(path).isprintable() else repr(str(path)), 200)


def _show(key: str) -> str:
    shown = key if key.isprintable() else repr(key)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _sniff(head: bytes, source: str) -> None:
    """Reject what is clearly not an ``.npz`` before handing it to the zip reader (never echoing
    the file's bytes: a message must not leak the content of whatever file was named)."""
    if not head:
        raise InputError(f"{source}: is empty (0 bytes); expected an .npz archive")
    if head.startswith(b"\x93NUMPY"):
        raise InputError(
            f"{source}: is a single .npy array; expected an .npz archive with named arrays "
            f"({_ALLOWED})"
        )
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise InputError(
            f"{source}: is not an .npz archive (an .npz is a zip file, starting with the bytes "
            "PK\\x03\\x04)"
        )


def _check_member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> None:
    """Read a member's .npy header; reject object dtypes and sizes the member cannot hold."""
    key = _show(info.filename.removesuffix(".npy"))
    shape, dtype, header_bytes = read_member_header(zf, info)
    if dtype.hasobject:
        raise InputError(
            f"{source}: array {key} has dtype {dtype} (shape {shape}), which needs pickle to "
            "load; dlcert never unpickles (allow_pickle=False), save real numbers instead"
        )
    count = 1
    for n in shape:
        count *= int(n)
    need = count * dtype.itemsize
    have = info.file_size - header_bytes
    if need != have:
        raise InputError(
            f"{source}: array {key} declares shape {shape} dtype {dtype} ({need} bytes) but "
            f"its member holds {have} bytes; the archive is corrupt or truncated"
        )


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file eagerly into a dict (the file is closed on return).

    Never unpickles. Missing files, directories, non-zip files, corrupt or truncated archives,
    members that are not valid ``.npy`` arrays, duplicate member names and object arrays all
    raise :class:`InputError` naming the file.
    """
    path = Path(path)
    source = _show_path(path)
    guard_files([path])
    out: dict[str, np.ndarray] = {}
    # Open the file ourselves: np.load(path) leaks its handle when the zip is unreadable.
    with open_input(path, "an .npz archive") as fid:
        try:
            _sniff(fid.read(8), source)
            fid.seek(0)
        except OSError as exc:
            raise InputError(f"{source}: cannot read it ({_one_line(exc.strerror or exc)})") from None
        _read_members(fid, source, out)
    return out


def _read_members(fid: IO[bytes], source: str, out: dict[str, np.ndarray]) -> None:
    try:
        with np.load(fid, allow_pickle=False) as npz:
            zf = npz.zip
            seen: set[str] = set()
            for info in zf.infolist():
                name = info.filename
                if name in seen:
                    raise InputError(
                        f"{source}: the archive holds more than one member named {_show(name)}"
                    )
                seen.add(name)
                if info.is_dir():
                    continue
                if not name.endswith(".npy"):
                    raise InputError(
                        f"{source}: member {_show(name)} is not a .npy array; an .npz holds "
                        f"only .npy members ({_ALLOWED})"
                    )
                _check_member_header(zf, info, source)
                value = npz[name]
                if not isinstance(value, np.ndarray):
                    raise InputError(
                        f"{source}: member {_show(name)} is not a valid .npy array "
                        "(no .npy magic); the archive is corrupt"
                    )
                out[name.removesuffix(".npy")] = value
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(
            f"{source}: corrupt or truncated .npz archive ({exception_summary(exc)})"
        ) from exc


def _weight_keys(arrays: Mapping[str, Any], source: str) -> list[str]:
    """Keys of ``W1..WN`` in layer order, after checking names, gaps and duplicates.

    Linear in the number of names: a gap is found without listing the missing indices (names
    ``W1`` and ``W3000000000`` name one missing layer range, not three billion strings).
    """
    by_index: dict[int, str] = {}
    unknown: list[str] = []
    for key in arrays:
        index = layer_index(key)
        if index is None:
            if key not in DATA_KEYS and not key.startswith(META_PREFIX):
                unknown.append(key)
            continue
        if index < 0:
            raise InputError(
                f"{source}: array {_show(key)}: layer index has more than {MAX_INDEX_DIGITS} "
                "digits; expected W1..WN"
            )
        if index == 0:
            raise InputError(f"{source}: array {_show(key)}: layer indices start at 1 (W1 is the input)")
        if index in by_index:
            first, second = sorted((by_index[index], key), key=len)
            raise InputError(
                f"{source}: arrays {_show(first)} and {_show(second)} both name layer {index}; keep one"
            )
        by_index[index] = key
    if unknown:
        shown = ", ".join(repr(_show(k)) for k in sorted(unknown)[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InputError(f"{source}: unknown array(s) {shown}{more}; allowed: {_ALLOWED}")
    if not by_index:
        raise InputError(f"{source}: no weights; expected arrays W1..WN (input to output)")
    n = max(by_index)
    if n != len(by_index):
        first_missing = next(i for i in range(1, len(by_index) + 2) if i not in by_index)
        found = ", ".join(_show(by_index[i]) for i in sorted(by_index)[:8])
        raise InputError(
            f"{source}: W{first_missing} is missing ({n - len(by_index)} of W1..W{n} missing; "
            f"found {found}); expected W1..WN numbered from 1 without gaps"
        )
    return [by_index[i] for i in range(1, n + 1)]


def weights_from_arrays(arrays: Mapping[str, np.ndarray], source: str) -> tuple[np.ndarray, ...]:
    """The validated weights ``W1..WN`` of a file's arrays (float64 copies).

    Data keys (``X``, ``Y``, ``Sxx``, ``Syx``, ``syy``, ``m``) and ``meta_*`` keys are ignored;
    any other name is an error listing what is allowed. ``W1`` and ``W01`` together are an error.
    """
    keys = _weight_keys(arrays, source)
    return check_weight_chain([arrays[k] for k in keys], source)


def _data_arrays(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The data arrays of a data file; weight and ``meta_*`` arrays may sit beside them."""
    unknown = [
        k
        for k in arrays
        if k not in DATA_KEYS and not k.startswith(META_PREFIX) and layer_index(k) is None
    ]
    if unknown:
        shown = ", ".join(repr(_show(k)) for k in sorted(unknown)[:5])
        raise InputError(f"{source}: unknown array(s) {shown}; allowed: {_ALLOWED}")
    return {k: arrays[k] for k in DATA_KEYS if k in arrays}


def data_statistics(
    arrays: Mapping[str, np.ndarray],
    source: str,
    *,
    dims: tuple[int, int] | None = None,
    layout: Layout | str | None = None,
    precision: float = 0.0,
    hint: str = "expected X, Y or Sxx, Syx, syy, m",
) -> Statistics:
    """The statistics of a data file's arrays: raw ``X, Y`` or ``Sxx, Syx, syy, m``.

    The one entry for data, used by every command: ``dims = (dx, dy)`` when the weights or the
    widths fix them, else they come from the shapes (:func:`~dlcert.validation.layout_from_shapes`).
    Weight and ``meta_*`` arrays may sit beside the data; anything else is an error. The
    precision is that of the stored dtypes (:func:`~dlcert.validation.precision_of`), at least
    ``precision`` (the weights'); a statistics file's ``meta_eps`` may only tighten it
    (:func:`~dlcert.validation.claimed_precision`). Statistics that overflow, or that no data set
    can have (``Sxx`` indefinite, ``syy`` below what ``X`` explains), are refused.
    """
    data = _data_arrays(arrays, source)
    raw = [k for k in RAW_KEYS if k in data]
    stat = [k for k in STATS_KEYS if k in data]
    if raw and stat:
        raise InputError(
            f"{source}: holds both raw data ({', '.join(raw)}) and statistics "
            f"({', '.join(stat)}); keep one kind"
        )
    if not raw and not stat:
        raise InputError(f"{source}: no data: found none of X, Y or Sxx, Syx, syy, m; {hint}")
    if raw:
        missing = [k for k in RAW_KEYS if k not in data]
        if missing:
            raise InputError(
                f"{source}: has {', '.join(raw)} but no {', '.join(missing)}; "
                "expected both X and Y"
            )
        X, Y = data["X"], data["Y"]
        if dims is None:
            lay, dx, dy, _ = layout_from_shapes(X.shape, Y.shape, layout, source)
            dims, layout = (dx, dy), lay
        X64, Y64 = check_data(X, Y, dims[0], dims[1], layout, source)
        with np.errstate(over="ignore", invalid="ignore"):
            stats = Statistics.from_data(X64, Y64, eps=precision_of(X, Y, floor=precision))
        check_statistics_range(stats.Sxx, stats.Syx, stats.syy, source)
        return stats
    missing = [k for k in STATS_KEYS if k not in data]
    if missing:
        raise InputError(
            f"{source}: statistics file is missing {', '.join(missing)}; expected "
            "Sxx, Syx, syy and m"
        )
    if dims is None:
        sxx, syx = data["Sxx"], data["Syx"]
        if sxx.ndim != 2 or syx.ndim != 2:
            raise InputError(
                f"{source}: Sxx has shape {sxx.shape} and Syx has shape {syx.shape}; "
                "expected (dx, dx) and (dy, dx)"
            )
        dims = (int(sxx.shape[0]), int(syx.shape[0]))
    Sxx, Syx, syy, m = check_statistics(
        data["Sxx"], data["Syx"], data["syy"], data["m"], dims[0], dims[1], source
    )
    stored = precision_of(data["Sxx"], data["Syx"], data["syy"])
    eps = max(claimed_precision(stored, arrays.get(META_PREFIX + "eps"), source), precision)
    return Statistics(Sxx=Sxx, Syx=Syx, syy=syy, m=m, eps=eps)


def require_targets(stats: Statistics, source: str) -> None:
    """Refuse data whose targets are all zero (every point with ``R X = 0`` is optimal)."""
    if not stats.syy > 0:
        raise InputError(f"{source}: Y is identically zero (syy = 0): there is nothing to fit")


@dataclass(frozen=True)
class WeightsFile:
    """The weights of one file, validated.

    weights : ``W1..WN`` as float64 arrays. precision : epsilon of their stored dtypes
    (:func:`~dlcert.validation.precision_of`, bfloat16 included). arrays : every array of an
    ``.npz`` (its data may sit beside the weights); only the weights for other formats.
    """

    weights: tuple[np.ndarray, ...]
    precision: float
    arrays: Mapping[str, np.ndarray]


def load_weights(path: Path) -> WeightsFile:
    """The one entry for a weights file: ``.npz`` (``W1..WN``), safetensors or PyTorch (by
    suffix), through the memory guard, the regular-file check, the one weight-name rule
    (:func:`~dlcert.validation.layer_index`) and :func:`~dlcert.validation.check_weight_chain`."""
    path = Path(path)
    source = str(path)
    kind = formats.format_of(path)
    floor = 0.0  # precision numpy cannot see in the arrays (bfloat16 widened to float32)
    names: dict[str, str] = {}
    if kind is None:
        arrays = checkpoints.normalise_data_names(read_npz(path))  # x/y beside the weights read as X/Y
    else:
        guard_files([path])
        foreign = formats.read_weights(path)
        arrays, names, floor = foreign.arrays, foreign.names, foreign.eps
    keys = _weight_keys(arrays, source)
    weights = check_weight_chain([arrays[k] for k in keys], source, [names.get(k, k) for k in keys])
    return WeightsFile(weights, precision_of(*[arrays[k] for k in keys], floor=floor), arrays)


def load_problem(
    weights_path: Path,
    data_path: Path | None = None,
    layout: Layout | None = None,
) -> Problem:
    """Load and validate weights and data into a :class:`Problem`.

    ``weights_path`` is an ``.npz``, or a safetensors / PyTorch file (:mod:`dlcert.formats`,
    chosen by suffix), which holds weights only, so ``data_path`` is then required.

    The data comes from ``data_path`` when given, otherwise from the weights file itself
    (:func:`data_statistics`, with ``dx`` = W1's number of columns and ``dy`` = WN's number of
    rows). Both files pass the memory guard first (:func:`dlcert.resources.guard_files`).
    """
    weights_path = Path(weights_path)
    weights_source = str(weights_path)
    guard_files([weights_path, data_path])
    kind = formats.format_of(weights_path)
    if kind is not None and data_path is None:
        check_input_file(weights_path, f"a {kind} file")
        raise InputError(
            f"{weights_source}: a {kind} file holds only weights; pass --data DATA.npz "
            "(X, Y or Sxx, Syx, syy, m)"
        )
    loaded = load_weights(weights_path)
    return problem_from(
        loaded.weights, loaded.precision, weights_source, data_path, layout, loaded.arrays
    )


def problem_from(
    weights: tuple[np.ndarray, ...],
    precision: float,
    weights_source: str,
    data_path: Path | None,
    layout: Layout | None,
    arrays: Mapping[str, np.ndarray] | None = None,
) -> Problem:
    """Validated weights plus their data as a :class:`Problem`: the data of ``data_path``, else
    the data among the weights file's ``arrays`` (:func:`data_statistics`, then
    :func:`require_targets`). Shared by every way of giving weights (a file, manifest layers)."""
    dims = (int(weights[0].shape[1]), int(weights[-1].shape[0]))
    data_file: Mapping[str, np.ndarray]
    if data_path is not None:
        data_source = str(data_path)
        data_file = checkpoints.read_data_file(Path(data_path))  # .npz or torch.save; x/y as X/Y
        hint = "expected X, Y or Sxx, Syx, syy, m"
    elif arrays is not None:
        data_source, data_file = weights_source, arrays
        hint = "pass --data DATA.npz"
    else:
        raise InputError(f"{weights_source}: no data: give data or stats (layers carry no data)")
    stats = data_statistics(data_file, data_source, dims=dims, layout=layout, hint=hint)
    require_targets(stats, data_source)
    return Problem(
        weights=weights,
        stats=stats,
        weights_eps=precision,
        weights_source=weights_source,
        data_source=data_source,
    )


def _meta_array(key: str, value: Any) -> np.ndarray:
    if not key.isidentifier():
        raise InputError(f"metadata key {_show(key)!r} is not an identifier")
    if isinstance(value, (bool, np.bool_)):
        return np.array(bool(value))
    if isinstance(value, (int, np.integer)):
        return np.array(int(value), dtype=np.int64)
    if isinstance(value, (float, np.floating)):
        return np.array(float(value), dtype=np.float64)
    if isinstance(value, str):
        return np.array(value, dtype=np.str_)  # unicode, not object: loads without pickle
    raise InputError(
        f"metadata {key} is a {type(value).__name__}; expected float, int, str or bool"
    )


def _write_npz(
    path: Path, arrays: Mapping[str, np.ndarray], inputs: Sequence[Path | str | None], what: str
) -> None:
    """Write ``arrays`` to exactly ``path`` (no ``.npz`` appended) through the one writer."""
    write_atomic(
        Path(path), lambda f: np.savez(f, allow_pickle=False, **arrays), inputs=inputs, what=what
    )


def save_weights(
    path: Path,
    weights: Sequence[np.ndarray],
    metadata: Mapping[str, float | int | str | bool] | None = None,
    *,
    inputs: Sequence[Path | str | None] = (),
    what: str = "the weights",
) -> None:
    """Write ``W1..WN`` (validated, in their own dtype) and ``meta_<key>`` 0-d arrays.

    The file loads with ``allow_pickle=False``; :func:`read_metadata` reads the metadata back.
    Written by :func:`dlcert.writer.write_atomic`: never over one of ``inputs``, never over
    anything but a regular file, atomically.
    """
    check_weight_chain(weights, str(path))
    arrays: dict[str, np.ndarray] = {f"W{i}": np.asarray(w) for i, w in enumerate(weights, start=1)}
    for key, value in (metadata or {}).items():
        arrays[META_PREFIX + key] = _meta_array(key, value)
    _write_npz(path, arrays, inputs, what)


def read_metadata(arrays: Mapping[str, np.ndarray]) -> dict[str, float | int | str | bool]:
    """The ``meta_*`` entries of a file's arrays as Python values, prefix removed."""
    out: dict[str, float | int | str | bool] = {}
    for key, value in arrays.items():
        if not key.startswith(META_PREFIX):
            continue
        if value.shape != () or value.dtype.kind not in "biufU":
            raise InputError(
                f"metadata {_show(key)} has {describe(value)}; expected a 0-d number, bool or "
                "string"
            )
        out[key.removeprefix(META_PREFIX)] = value.item()
    return out


@dataclass(frozen=True)
class SavedWitness:
    """A witness file (``dlcert check --witness``): the point ``W'`` and what it claims.

    weights : ``W1..WN`` (validated float64). radius : the claimed ``||W' - W||_F`` bound
    (finite, ``>= 0``) or ``None``. order : the claimed order (an integer ``>= 1``) or ``None``.
    """

    weights: tuple[np.ndarray, ...]
    radius: float | None
    order: int | None


def read_witness(path: Path) -> SavedWitness:
    """Read a witness file; its ``meta_radius`` / ``meta_order`` claims are checked (a NaN or
    negative radius would make any distance pass), each failure one line naming the file."""
    path = Path(path)
    source = _show_path(path)
    loaded = load_weights(path)
    weights, meta = loaded.weights, read_metadata(loaded.arrays)
    radius, order = meta.get("radius"), meta.get("order")
    if radius is not None and (
        isinstance(radius, (bool, str)) or not math.isfinite(float(radius)) or float(radius) < 0
    ):
        raise InputError(f"{source}: meta_radius is not a finite number >= 0; expected the witness's radius")
    if order is not None and (
        isinstance(order, (bool, str)) or not math.isfinite(float(order)) or float(order) < 1
        or float(order) != int(float(order))
    ):
        raise InputError(f"{source}: meta_order is not an integer >= 1; expected the witness's order")
    return SavedWitness(
        weights=weights,
        radius=None if radius is None else float(radius),
        order=None if order is None else int(float(order)),
    )


def save_statistics(
    path: Path, stats: Statistics, *, inputs: Sequence[Path | str | None] = ()
) -> None:
    """Write ``Sxx, Syx, syy, m`` and ``meta_eps`` (the precision of the original data; on
    reading it may only tighten the precision the float64 arrays imply). Refuses statistics that
    are not finite; written as :func:`save_weights` is."""
    check_statistics_range(stats.Sxx, stats.Syx, stats.syy, str(path))
    _write_npz(
        path,
        {
            "Sxx": np.asarray(stats.Sxx, dtype=np.float64),
            "Syx": np.asarray(stats.Syx, dtype=np.float64),
            "syy": np.array(stats.syy, dtype=np.float64),
            "m": np.array(stats.m, dtype=np.int64),
            META_PREFIX + "eps": np.array(stats.eps, dtype=np.float64),
        },
        inputs,
        "the statistics",
    )
