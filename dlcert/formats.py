"""Weights from other frameworks' files: safetensors and PyTorch ``state_dict`` (SPEC §6).

Optional extras: ``pip install 'dlcert[safetensors]'`` and ``pip install 'dlcert[torch]'``. The
packages are imported only when such a file is read; without them the file is one
:class:`~dlcert.errors.InputError` line saying what to install.

Loading never executes code from a file:

- ``.safetensors`` is a JSON header plus raw bytes, read with ``safetensors.safe_open(...,
  framework="np")`` (the numpy API behind ``safetensors.numpy.load_file``). numpy has no
  bfloat16, so ``BF16`` tensors are read as raw 16-bit words from the offsets of the (already
  validated) header and widened exactly to float32.
- ``.pt``, ``.pth``, ``.bin`` go through ``torch.load(path, map_location="cpu",
  weights_only=True)``, whose unpickler refuses every global outside a small allowlist of
  tensor types, so a pickle that would run code is rejected, not run.

Tensor names, mapped to ``W1..WN`` (input to output):

- ``W1..WN`` as in an ``.npz``; or
- the parameter names of a stack of bias-free ``nn.Linear`` layers ending in ``.weight``
  (``0.weight``, ``layers.0.weight``, ``fc1.weight``; a single layer may be just ``weight``).
  A Linear weight has shape ``(out, in)``, which is already ``(d_i, d_{i-1})``: no transpose.
  Order: a ``state_dict`` keeps insertion order, which is module registration order (forward
  order for ``nn.Sequential``), and that order is used. A safetensors file does not keep order,
  so the names are sorted naturally (``layers.2`` before ``layers.10``), and any two names must
  first differ in a number (``fc1``/``fc2``, ``0.0``/``1``); names that differ in text
  (``encoder.weight``/``head.weight``) give no order and are an error asking for ``W1..WN``.

Rejected with one line: any ``bias`` (dlcert certifies bias-free networks), other entries
(buffers, data arrays: data comes from ``--data``), non-tensor or nested entries (a training
checkpoint with optimizer state: save ``model.state_dict()``), dtypes that are not real numbers.

Precision: float16 weights keep their dtype (epsilon ``2**-10``); bfloat16 weights become exact
float32 copies and :attr:`ForeignWeights.eps` records bfloat16's epsilon ``2**-7``.
"""

from __future__ import annotations

import importlib
import itertools
import json
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dlcert import checkpoints
from dlcert.errors import InputError
from dlcert.validation import check_input_file, exception_summary, layer_index

__all__ = [
    "BFLOAT16_EPS",
    "SAFETENSORS_SUFFIXES",
    "TORCH_SUFFIXES",
    "ForeignWeights",
    "format_of",
    "read_weights",
]

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = checkpoints.CHECKPOINT_SUFFIXES  # .pt, .pth, .bin, .ckpt
BFLOAT16_EPS = 2.0**-7
"""Machine epsilon of bfloat16 (8 significand bits); numpy has no bfloat16 to ask."""

_DIGITS = re.compile(r"([0-9]+)", re.ASCII)
_HINT = "expected W1..WN or the '.weight' parameters of bias-free nn.Linear layers"
# safetensors dtype names numpy reads directly (complex and bool are read, then refused by
# validation with its usual message).
_NUMPY_DTYPES = frozenset(
    {"F64", "F32", "F16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL", "C64"}
)


@dataclass(frozen=True)
class ForeignWeights:
    """The weights of a safetensors or PyTorch file, as plain arrays.

    arrays : ``W1..WN`` -> the tensor as stored (bfloat16 widened to float32), not validated.
    names : ``W_i`` -> the tensor's name in the file (e.g. ``fc1.weight``).
    eps : epsilon of the coarsest dtype numpy cannot see (``BFLOAT16_EPS``), else 0.0.
    kind : ``"safetensors"`` or ``"PyTorch"``, for messages.
    """

    arrays: dict[str, np.ndarray]
    names: dict[str, str]
    eps: float
    kind: str


def format_of(path: Path) -> str | None:
    """``"safetensors"``, ``"PyTorch"`` or ``None`` (not a foreign format), by suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "PyTorch"
    return None


def _one_line(text: object, limit: int = 160) -> str:
    out = " ".join(str(text).split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _show(name: str) -> str:
    return repr(_one_line(name if name.isprintable() else repr(name), 60))


def _import(module: str, path: Path, package: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say in one line what to install."""
    try:
        with warnings.catch_warnings():  # torch's import-time warnings are not dlcert's output
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            f"{path}: reading {path.suffix.lower()} files needs {package}: "
            f"pip install 'dlcert[{extra}]'"
        ) from exc


def _check_file(path: Path, kind: str) -> None:
    if check_input_file(path, f"a {kind} file") == 0:
        raise InputError(f"{path}: is empty (0 bytes); expected a {kind} file")


def read_weights(path: Path) -> ForeignWeights:
    """Read the weights of a ``.safetensors`` / ``.pt`` / ``.pth`` / ``.bin`` file (module doc)."""
    path = Path(path)
    kind = format_of(path)
    if kind is None:
        raise InputError(f"{path}: not a safetensors or PyTorch file (by its suffix)")
    _check_file(path, kind)
    if kind == "safetensors":
        tensors, eps = _read_safetensors(path)
        return _to_layers(tensors, eps, path, kind, ordered=False)
    tensors, eps = _read_torch(path)
    return _to_layers(tensors, eps, path, kind, ordered=True)


# ---------------------------------------------------------------------------------------------
# safetensors


def _read_safetensors(path: Path) -> tuple[list[tuple[str, np.ndarray]], float]:
    st = _import("safetensors", path, "safetensors", "safetensors")
    out: list[tuple[str, np.ndarray]] = []
    eps = 0.0
    try:
        with st.safe_open(str(path), framework="np") as f:
            for name in f.keys():
                dtype = str(f.get_slice(name).get_dtype())
                if dtype in _NUMPY_DTYPES:
                    out.append((name, f.get_tensor(name)))
                elif dtype == "BF16":
                    out.append((name, _read_bf16(path, name)))
                    eps = BFLOAT16_EPS
                else:
                    raise InputError(
                        f"{path}: tensor {_show(name)} has dtype {dtype}, which dlcert cannot "
                        "read; expected F64, F32, F16, BF16 or an integer type"
                    )
    except InputError:
        raise
    except Exception as exc:  # SafetensorError, OSError and whatever a damaged file raises
        raise InputError(
            f"{path}: not a readable safetensors file ({exception_summary(exc)}); "
            "the file is corrupt or truncated"
        ) from exc
    return out, eps


def _read_bf16(path: Path, name: str) -> np.ndarray:
    """A ``BF16`` tensor as float32 (exact: bfloat16 is the top half of a float32).

    Called only after ``safe_open`` validated the header (offsets within the file, sizes
    matching shapes), so the header is read here only to find the bytes.
    """
    with path.open("rb") as fp:
        size = int.from_bytes(fp.read(8), "little")
        header = json.loads(fp.read(size))
        start, end = header[name]["data_offsets"]
        shape = tuple(int(n) for n in header[name]["shape"])
        fp.seek(8 + size + int(start))
        raw = fp.read(int(end) - int(start))
    words = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return words.view(np.float32).reshape(shape)


# ---------------------------------------------------------------------------------------------
# PyTorch


def _refused(exc: Exception) -> str:
    """The line of a weights_only refusal that names what was refused."""
    for line in str(exc).splitlines():
        if "GLOBAL" in line or "Unsupported" in line:
            return _one_line(line.replace("WeightsUnpickler error:", ""), 120)
    return _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)


def _torch_problem(exc: BaseException) -> str:
    """A damaged PyTorch file's error without the bytes torch quotes from it (pickle's "invalid
    load key, 'r'" is the file's first byte)."""
    if "load key" in str(exc):
        return f"{type(exc).__name__}: not a pickle or zip archive torch wrote"
    return exception_summary(exc)


def _read_torch(path: Path) -> tuple[list[tuple[str, np.ndarray]], float]:
    torch = _import("torch", path, "PyTorch", "torch")
    try:
        with warnings.catch_warnings():  # one line per error: torch's own warnings stay quiet
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{path}: torch.load(weights_only=True) refused it: it holds Python objects other "
            f"than tensors ({_refused(exc)}); dlcert never runs code from a file: save "
            f"model.state_dict() instead: {checkpoints.SAVE_STATE_DICT}"
        ) from exc
    except Exception as exc:  # RuntimeError, EOFError, KeyError, ...: torch.load's damaged files
        raise InputError(
            f"{path}: not a readable PyTorch file ({_torch_problem(exc)}); "
            "the file is corrupt or truncated"
        ) from exc
    obj, _ = checkpoints.unwrap(obj, str(path), checkpoints.selected_key())  # training-loop dicts
    if not isinstance(obj, Mapping):
        raise InputError(
            f"{path}: holds a {type(obj).__name__}, not a state_dict; save model.state_dict() "
            "with torch.save"
        )
    out: list[tuple[str, np.ndarray]] = []
    eps = 0.0
    for name, value in obj.items():
        if not isinstance(name, str):
            raise InputError(f"{path}: has a key {_one_line(repr(name), 40)} that is not a name; "
                             "expected a state_dict")
        if not isinstance(value, torch.Tensor):
            what = "a nested dict" if isinstance(value, Mapping) else f"a {type(value).__name__}"
            raise InputError(
                f"{path}: entry {_show(name)} is {what}, not a tensor: this looks like a training "
                "checkpoint (optimizer state, epoch, ...); save model.state_dict() instead"
            )
        array, tensor_eps = _tensor_to_numpy(torch, value, name, path)
        eps = max(eps, tensor_eps)
        out.append((name, array))
    return out, eps


def _tensor_to_numpy(torch: Any, t: Any, name: str, path: Path) -> tuple[np.ndarray, float]:
    if t.layout != torch.strided or t.is_quantized:
        raise InputError(
            f"{path}: tensor {_show(name)} is {t.layout} / quantized ({t.dtype}); expected a "
            "dense real tensor"
        )
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.to(torch.float32).numpy(), BFLOAT16_EPS
    if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
        raise InputError(
            f"{path}: tensor {_show(name)} has dtype {t.dtype}, which dlcert cannot read; "
            "expected float16/32/64, bfloat16 or an integer type"
        )
    try:
        return t.numpy(), 0.0
    except (TypeError, RuntimeError) as exc:
        raise InputError(
            f"{path}: tensor {_show(name)} (dtype {t.dtype}) has no numpy form "
            f"({_one_line(exc, 80)}); expected a real tensor"
        ) from exc


# ---------------------------------------------------------------------------------------------
# names -> W1..WN


def _natural_key(name: str) -> tuple[str | tuple[int, str], ...]:
    """``"layers.10.weight"`` -> ``("layers.", (2, "10"), ".weight")``; strings at even positions.

    A number is compared as (digit count, digits) without leading zeros: numeric order without
    converting (a name with thousands of digits costs no more than its length).
    """
    parts = _DIGITS.split(name)
    return tuple(
        (len(p.lstrip("0")), p.lstrip("0")) if i % 2 else p for i, p in enumerate(parts)
    )


def _numeric_order(names: Sequence[str], path: Path) -> list[str]:
    """Names sorted naturally, when every neighbouring pair first differs in a number."""
    ordered = sorted(names, key=_natural_key)
    for a, b in itertools.pairwise(ordered):
        ka, kb = _natural_key(a), _natural_key(b)
        first = next((i for i, (x, y) in enumerate(zip(ka, kb, strict=False)) if x != y), None)
        if first is None or first % 2 == 0:  # differ first in text (or a prefix): no order
            raise InputError(
                f"{path}: cannot order the layers: a safetensors file keeps no order and "
                f"{_show(a)} and {_show(b)} differ in text, not a layer number; name the "
                "tensors W1..WN (input to output) or number them (layers.0.weight, "
                "layers.1.weight, ...)"
            )
    return ordered


def _to_layers(
    tensors: Sequence[tuple[str, np.ndarray]], eps: float, path: Path, kind: str, *, ordered: bool
) -> ForeignWeights:
    names = [name for name, _ in tensors]
    biases = [n for n in names if n == "bias" or n.endswith(".bias")]
    if biases:
        raise InputError(
            f"{path}: has {_show(biases[0])}: biases are not supported: dlcert certifies "
            "bias-free (deep linear) networks (nn.Linear(..., bias=False))"
        )
    numbered = [n for n in names if layer_index(n) is not None]
    params = [n for n in names if n == "weight" or n.endswith(".weight")]
    known = set(numbered) | set(params)  # sets: 100k names must not cost 100k^2 comparisons
    other = [n for n in names if n not in known]
    if other:
        more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
        raise InputError(
            f"{path}: tensor {_show(other[0])}{more} is not a layer weight; {_HINT} "
            "(data comes from --data DATA.npz)"
        )
    if not names:
        raise InputError(f"{path}: holds no tensors; {_HINT}")
    arrays = dict(tensors)
    if numbered and params:
        raise InputError(
            f"{path}: mixes W1..WN names ({_show(numbered[0])}) with parameter names "
            f"({_show(params[0])}); use one naming"
        )
    if numbered:  # W1..WN: numbered already; io checks gaps and duplicates as for an .npz
        return ForeignWeights(arrays=arrays, names={n: n for n in numbered}, eps=eps, kind=kind)
    order = params if ordered else _numeric_order(params, path)
    keys = [f"W{i}" for i in range(1, len(order) + 1)]
    return ForeignWeights(
        arrays={k: arrays[n] for k, n in zip(keys, order, strict=True)},
        names=dict(zip(keys, order, strict=True)),
        eps=eps,
        kind=kind,
    )
