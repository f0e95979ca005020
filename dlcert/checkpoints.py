"""Real checkpoints: training-loop dicts, ``.ckpt`` files and data saved with ``torch.save``.

A training loop rarely saves a bare ``state_dict``; it saves something like
``{'epoch': 30, 'model_state_dict': ..., 'optimizer_state_dict': ..., 'loss': 0.06}``, and
PyTorch Lightning's ``.ckpt`` keeps the weights under ``'state_dict'``. :func:`unwrap` finds the
model's ``state_dict`` inside such a dict:

- a dict whose values are all tensors *is* a ``state_dict`` and is taken as it is;
- ``key`` (``--key NAME``; ``a/b`` for a nested entry) names the entry to take;
- otherwise the only entry that is a dict of tensors is taken (an optimizer's ``state_dict``
  holds lists and numbers, so it is never a candidate); with several candidates the choice is
  the user's, and the error lists them.

Data files (``--data train.pt``): a dict with ``X`` and ``Y`` (or ``x`` and ``y``), or the
statistics ``Sxx, Syx, syy, m``, or a pair ``(X, Y)``, read by :func:`read_data_file`, which
also reads ``.npz`` files (lower-case ``x``/``y`` accepted there too). Everything is read with
``torch.load(weights_only=True)`` / ``np.load(allow_pickle=False)``: loading never executes code.
A pickled module (``torch.save(model)``) is refused with :data:`SAVE_STATE_DICT` as the fix.

``--key`` reaches the loader through :func:`selected_key` (a context variable set by the CLI
around a check), so the loading functions keep their signatures.
"""

from __future__ import annotations

import contextvars
import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from dlcert.errors import InputError

if TYPE_CHECKING:
    from dlcert.npz_chunks import NpzMember

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "SAVE_STATE_DICT",
    "is_state_dict",
    "is_tensor_like",
    "normalise_data_names",
    "read_data_file",
    "selected_key",
    "unwrap",
    "using_key",
]

#: Suffixes read with ``torch.load(weights_only=True)`` (``.ckpt``: PyTorch Lightning).
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")

#: The line that saves what dlcert reads, shown whenever a file holds something else.
SAVE_STATE_DICT = 'torch.save(model.state_dict(), "model.pt")'

_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("dlcert_checkpoint_key", default=None)
_FRAMEWORKS = ("torch", "jax", "jaxlib", "numpy")


def selected_key() -> str | None:
    """The ``--key`` in force for the current check (``None``: choose automatically)."""
    return _KEY.get()


@contextmanager
def using_key(key: str | None) -> Iterator[None]:
    """Within the block, checkpoint files are unwrapped with ``key`` (``--key``)."""
    token = _KEY.set(key)
    try:
        yield
    finally:
        _KEY.reset(token)


def is_tensor_like(value: Any) -> bool:
    """A numpy array, or a tensor/array of torch or JAX (checked by type, nothing imported)."""
    if isinstance(value, np.ndarray):
        return True
    root = type(value).__module__.split(".")[0]
    return root in _FRAMEWORKS and hasattr(value, "shape") and hasattr(value, "dtype")


def is_state_dict(value: Any) -> bool:
    """A non-empty mapping from names to tensors (and nothing else)."""
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and is_tensor_like(v) for k, v in value.items())
    )


def _show(name: object) -> str:
    text = " ".join(str(name).split())
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _keys(mapping: Mapping[Any, Any], limit: int = 6) -> str:
    shown = ", ".join(_show(k) for k in list(mapping)[:limit])
    return shown + (f" and {len(mapping) - limit} more" if len(mapping) > limit else "")


def unwrap(obj: Any, source: str, key: str | None = None) -> tuple[Any, str | None]:
    """The ``state_dict`` inside a checkpoint, and the key it was found under (module doc).

    Returns ``obj`` unchanged (key ``None``) when it is a ``state_dict`` already, or when no
    entry is a dict of tensors (the caller's own checks then say what is wrong with it).
    """
    where = f"{source}: " if source else ""
    if key is not None:
        node: Any = obj
        for part in key.split("/"):
            if not isinstance(node, Mapping) or part not in node:
                have = f"; it has {_keys(node)}" if isinstance(node, Mapping) else ""
                raise InputError(f"{where}--key {_show(key)}: no entry {_show(part)}{have}")
            node = node[part]
        if not is_state_dict(node):
            raise InputError(
                f"{where}--key {_show(key)} is a {type(node).__name__}, not a dict of tensors "
                "(a state_dict)"
            )
        return node, key
    if not isinstance(obj, Mapping) or is_state_dict(obj):
        return obj, None
    candidates = [k for k, v in obj.items() if is_state_dict(v)]
    if len(candidates) == 1:
        return obj[candidates[0]], str(candidates[0])
    if len(candidates) > 1:
        raise InputError(
            f"{where}holds {len(candidates)} dicts of tensors ({_keys(dict.fromkeys(candidates))}); "
            f"choose one with --key NAME"
        )
    return obj, None


# ---------------------------------------------------------------------------------------------
# data files


def normalise_data_names(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """``x``/``y`` read as ``X``/``Y`` when the upper-case names are absent (and both are)."""
    out = dict(arrays)
    if "x" in out and "y" in out and "X" not in out and "Y" not in out:
        out["X"] = out.pop("x")
        out["Y"] = out.pop("y")
    return out


@overload
def read_data_file(path: Path, *, chunked: Literal[False] = False) -> dict[str, np.ndarray]: ...
@overload
def read_data_file(path: Path, *, chunked: Literal[True]) -> dict[str, np.ndarray | NpzMember]: ...
def read_data_file(path: Path, *, chunked: bool = False) -> Mapping[str, Any]:
    """The arrays of a data file: ``.npz`` or a ``torch.save`` file (by suffix; module doc).

    ``chunked``: the raw data ``X``, ``Y`` of an ``.npz`` is not loaded but handed on for
    :func:`dlcert.io.data_statistics` to read in chunks (:func:`dlcert.io.read_npz_data`).
    """
    from dlcert.io import read_npz, read_npz_data  # io imports this module: import at call time

    path = Path(path)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        return normalise_data_names(read_npz_data(path) if chunked else read_npz(path))
    obj = _torch_load(path)
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(is_tensor_like(v) for v in obj):
        obj = {"X": obj[0], "Y": obj[1]}
    if not isinstance(obj, Mapping):
        raise InputError(
            f"{path}: holds a {type(obj).__name__}; expected a dict of tensors X and Y (or "
            'Sxx, Syx, syy, m): torch.save({"X": X, "Y": Y}, "train.pt")'
        )
    out: dict[str, np.ndarray] = {}
    for name, value in normalise_data_names(obj).items():
        if not isinstance(name, str):
            raise InputError(f"{path}: has a key {_show(name)} that is not a name")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = np.asarray(value)
            continue
        if not is_tensor_like(value):
            raise InputError(
                f"{path}: entry {_show(name)} is a {type(value).__name__}, not a tensor; "
                "expected X and Y (or Sxx, Syx, syy, m)"
            )
        from dlcert.frameworks import to_numpy

        out[name] = to_numpy(value)[0]
    return out


def _torch_load(path: Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; expected a PyTorch file")
    try:
        import torch
    except ImportError as exc:
        raise InputError(
            f"{path}: reading {path.suffix.lower()} files needs PyTorch: pip install 'dlcert[torch]'"
        ) from exc
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{path}: torch.load(weights_only=True) refused it: it holds Python objects other "
            f"than tensors; dlcert never runs code from a file: save tensors, e.g. "
            f'torch.save({{"X": X, "Y": Y}}, "train.pt")'
        ) from exc
    except Exception as exc:  # damaged files: RuntimeError, EOFError, KeyError, ...
        text = " ".join(str(exc).split())[:120]
        raise InputError(
            f"{path}: not a readable PyTorch file ({type(exc).__name__}: {text}); "
            "the file is corrupt or truncated"
        ) from exc
