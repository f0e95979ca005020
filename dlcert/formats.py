"""Weights saved by other tools: safetensors files and PyTorch ``state_dict`` files (SPEC §6).

Both are optional extras (``pip install 'dlcert[safetensors]'`` / ``'dlcert[torch]'``) and
neither executes code from the file: safetensors is a plain header plus raw bytes, and
``torch.load(..., weights_only=True)`` refuses anything but tensors and containers.

Names. Arrays named ``W1..WN`` are taken as they are (data arrays may sit beside them). Otherwise
the weights are the ``*.weight`` entries of a bias-free ``nn.Linear`` stack (``0.weight``,
``layers.2.weight``, ``fc1.weight``, ...), whose shape ``(out, in)`` is already
``(d_i, d_{i-1})``; they are put in order by the numbers in their names (natural order), which
for ``nn.Sequential`` and numbered attributes is the order of the layers. Biases are refused:
dlcert certifies linear networks without bias.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dlcert.errors import InputError

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
_LAYER_KEY = re.compile(r"W[0-9]+")


def is_foreign(path: Path) -> bool:
    """Whether ``path`` is read by this module rather than as ``.npz``."""
    return path.suffix.lower() in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES


def optional_import(module: str, extra: str, source: str) -> ModuleType:
    """Import an optional dependency or fail with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"{source}: reading this format needs the '{extra}' extra: "
            f"pip install 'dlcert[{extra}]'"
        ) from None


def read_foreign(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a safetensors or PyTorch file, weights renamed ``W1..WN``."""
    source = str(path)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        arrays = _read_safetensors(path, source)
    else:
        arrays = _read_torch(path, source)
    return layer_names(arrays, source)


def _read_safetensors(path: Path, source: str) -> dict[str, np.ndarray]:
    st = optional_import("safetensors.numpy", "safetensors", source)
    try:
        loaded = st.load_file(str(path))
    except Exception as exc:  # the library's own parse errors: truncated, bad header, bf16
        raise InputError(f"{source}: not a readable safetensors file ({_one_line(exc)})") from None
    return dict(loaded)


def _read_torch(path: Path, source: str) -> dict[str, np.ndarray]:
    torch = optional_import("torch", "torch", source)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # includes the refusal of pickled code under weights_only
        raise InputError(
            f"{source}: not a loadable PyTorch state_dict with weights_only=True "
            f"({_one_line(exc)})"
        ) from None
    if not isinstance(obj, dict):
        raise InputError(
            f"{source}: holds a {type(obj).__name__}, expected a state_dict "
            "(save model.state_dict())"
        )
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(
                f"{source}: entry {str(key)!r} is a {type(value).__name__}, not a tensor; this looks "
                "like a training checkpoint: save model.state_dict() instead"
            )
        if value.dtype == torch.bfloat16:
            raise InputError(
                f"{source}: {key} is bfloat16; convert the model to float32 first "
                "(dlcert does not follow bfloat16 precision)"
            )
        out[str(key)] = value.detach().cpu().numpy()
    return out


def layer_names(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Rename the ``*.weight`` entries of a Linear stack to ``W1..WN`` (natural order)."""
    if any(_LAYER_KEY.fullmatch(k) for k in arrays):
        return arrays
    biases = [k for k in arrays if k == "bias" or k.endswith(".bias")]
    if biases:
        raise InputError(
            f"{source}: has biases ({', '.join(biases[:3])}); dlcert certifies bias-free "
            "(deep linear) networks"
        )
    weights = [k for k in arrays if k == "weight" or k.endswith(".weight")]
    if not weights:
        raise InputError(
            f"{source}: no weights: expected arrays W1..WN or the '*.weight' entries of "
            f"nn.Linear layers, found {', '.join(sorted(arrays)[:6]) or 'nothing'}"
        )
    numbered = [k for k in weights if re.search(r"[0-9]", k)]
    if len(weights) > 1 and len(numbered) != len(weights):
        raise InputError(
            f"{source}: cannot order the layers {', '.join(weights[:4])} (names without numbers); "
            "name the arrays W1..WN"
        )
    ordered = sorted(weights, key=_natural_key)
    out = {k: v for k, v in arrays.items() if k not in weights}
    for i, key in enumerate(ordered, start=1):
        out[f"W{i}"] = arrays[key]
    return out


def _natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", name)]


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
