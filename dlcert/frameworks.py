"""Objects from PyTorch, JAX/Flax and numpy turned into plain arrays (the Python API's input).

Nothing here imports torch or JAX unless the object handed in is of that type: the type's
``__module__`` is looked at first (``torch.Tensor`` -> ``"torch"``, a JAX array ->
``"jaxlib..."``/``"jax..."``; a user's ``class Net(nn.Module)`` by its bases), so ``import
dlcert`` never pays for a framework.

Conversions:

- **tensors and arrays** (:func:`to_numpy`): torch tensors of any device and dtype become
  ``t.detach().cpu()`` arrays; bfloat16, which numpy lacks, is widened exactly to float32 and
  its epsilon ``2**-7`` is returned beside the array so tolerances can follow the stored
  precision. JAX arrays go through ``np.asarray`` (bfloat16 the same way). Anything else is
  handed back unchanged, so the project's ``check_*`` validators word the error.
- **weights** (:func:`weights_from`), input to output:

  * a sequence of arrays/tensors ``[W1, ..., WN]``, each ``(d_i, d_{i-1})``;
  * a bias-free ``torch.nn.Module``: its leaf modules must all be ``nn.Linear(bias=False)``
    (``nn.Identity`` and containers are skipped); any other module (a ``ReLU``) or parameter is
    refused in one line naming it; the chain is then *probed*: ``model(x)`` must equal
    ``W_N...W_1 x`` on a random batch, so a forward that is not the chain (a functional
    activation, a skip, another order) is refused too;
  * a ``state_dict`` (``W1..WN`` or ``*.weight`` names, in its order; biases refused). A
    state_dict cannot show the model's activations: it is *taken as* a linear chain and the
    result says so in a note;
  * a Flax parameter tree (``{'params': {'Dense_0': {'kernel': ...}, ...}}``): each
    ``kernel`` is ``(in, out)`` and is transposed; a ``bias`` is refused; layers in the
    tree's insertion order (the order the layers were called in).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlcert.checkpoints import is_state_dict, is_tensor_like, unwrap
from dlcert.errors import InputError

__all__ = ["BFLOAT16_EPS", "LINEAR_NOTE", "Adapted", "framework_of", "to_numpy", "weights_from"]

BFLOAT16_EPS = 2.0**-7
_W_KEY = re.compile(r"W([0-9]+)", re.ASCII)
#: Said whenever weights come without their model (a state_dict, a safetensors file).
LINEAR_NOTE = (
    "the weights came as a state_dict, which cannot show the model's activations: they are "
    "taken as a linear chain W_N...W_1 (bias-free nn.Linear layers, nothing between them)"
)


@dataclass(frozen=True)
class Adapted:
    """Weights taken from a framework object.

    weights : ``W1..WN`` as numpy arrays in their stored dtype (bfloat16 widened to float32),
        not yet validated.
    names : the layers' names in the object (``0.weight``, ``Dense_1.kernel``, ``W3``).
    eps : epsilon numpy cannot see in the arrays (bfloat16's ``2**-7``), else 0.0.
    notes : what was assumed (e.g. a state_dict taken as linear), for the certificate's reader.
    """

    weights: list[np.ndarray]
    names: list[str]
    eps: float = 0.0
    notes: list[str] = field(default_factory=list)


def framework_of(obj: Any) -> str | None:
    """``"torch"``, ``"jax"`` or ``None``, from the modules of the type and its bases.

    The bases count because a user's ``class Net(nn.Module)`` lives in the user's module.
    Nothing is imported.
    """
    for cls in type(obj).__mro__:
        root = str(getattr(cls, "__module__", "")).split(".")[0]
        if root == "torch":
            return "torch"
        if root in ("jax", "jaxlib", "flax"):
            return "jax"
    return None


def to_numpy(obj: Any) -> tuple[Any, float]:
    """``(array, eps)`` for a torch/JAX tensor; other objects are returned as they are.

    ``eps`` is bfloat16's epsilon when the tensor was bfloat16 (widened to float32), else 0.0.
    """
    kind = framework_of(obj)
    if kind == "torch":
        import torch

        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu()
            if t.layout != torch.strided:
                t = t.to_dense()
            if t.dtype == torch.bfloat16:
                return t.to(torch.float32).numpy(), BFLOAT16_EPS
            return t.resolve_conj().resolve_neg().numpy(), 0.0
        return obj, 0.0
    if kind == "jax" and hasattr(obj, "dtype") and hasattr(obj, "shape"):
        if str(obj.dtype) == "bfloat16":
            return np.asarray(obj, dtype=np.float32), BFLOAT16_EPS
        return np.asarray(obj), 0.0
    if isinstance(obj, (list, tuple)) and obj and not any(is_tensor_like(v) for v in obj):
        try:
            return np.asarray(obj), 0.0  # nested lists of numbers
        except (ValueError, TypeError):  # ragged: the validators word the error
            return obj, 0.0
    return obj, 0.0


def weights_from(obj: Any, source: str = "weights", key: str | None = None) -> Adapted:
    """The weights ``W1..WN`` of a module, state_dict, Flax tree or sequence (module doc)."""
    if framework_of(obj) == "torch" and _is_torch_module(obj):
        return _from_module(obj, source)
    if isinstance(obj, Mapping):
        inner, chosen = unwrap(obj, source, key)
        notes = [f"weights taken from the checkpoint entry {chosen!r}"] if chosen else []
        if isinstance(inner, Mapping) and "params" in inner and isinstance(inner["params"], Mapping):
            inner = inner["params"]  # Flax: variables = {'params': ...}
        leaves = _flatten(inner)
        if any(path[-1] == "kernel" for path in leaves):
            return _from_flax(leaves, source, notes)
        if not is_state_dict(inner):
            bad = next((k for k, v in inner.items() if not is_tensor_like(v)), None)
            raise InputError(
                f"{source}: entry {bad!r} is a {type(inner.get(bad)).__name__ if bad else 'nothing'}, "
                "not a tensor; expected a state_dict (W1..WN or '.weight' names), a Flax "
                "parameter tree, a list of arrays or a bias-free nn.Module"
            )
        return _from_state_dict(inner, source, notes)
    if is_tensor_like(obj):
        obj = [obj]
    if isinstance(obj, (list, tuple)):
        return _from_sequence(obj, source)
    raise InputError(
        f"{source} is a {type(obj).__name__}; expected a list of weight matrices, a state_dict, "
        "a Flax parameter tree or a bias-free nn.Module"
    )


def _arrays(values: Sequence[Any]) -> tuple[list[np.ndarray], float]:
    out: list[np.ndarray] = []
    eps = 0.0
    for v in values:
        a, e = to_numpy(v)
        out.append(a)
        eps = max(eps, e)
    return out, eps


def _from_sequence(values: Sequence[Any], source: str) -> Adapted:
    arrays, eps = _arrays(values)
    return Adapted(arrays, [f"W{i}" for i in range(1, len(arrays) + 1)], eps)


def _from_state_dict(sd: Mapping[str, Any], source: str, notes: list[str]) -> Adapted:
    names = list(sd)
    biases = [n for n in names if n == "bias" or n.endswith(".bias")]
    if biases:
        raise InputError(
            f"{source}: has {biases[0]!r}: biases are not supported: dlcert certifies bias-free "
            "(deep linear) networks (nn.Linear(..., bias=False))"
        )
    numbered = {int(m.group(1)): n for n in names if (m := _W_KEY.fullmatch(n))}
    params = [n for n in names if n == "weight" or n.endswith(".weight")]
    other = [n for n in names if n not in params and _W_KEY.fullmatch(n) is None]
    if other or (numbered and params):
        bad = other[0] if other else params[0]
        raise InputError(
            f"{source}: tensor {bad!r} is not a layer weight; expected W1..WN or the '.weight' "
            "parameters of bias-free nn.Linear layers"
        )
    if numbered:
        n = max(numbered)
        missing = [i for i in range(1, n + 1) if i not in numbered]
        if missing or 0 in numbered:
            raise InputError(f"{source}: W{missing[0] if missing else 0} breaks the numbering W1..W{n}")
        order = [numbered[i] for i in range(1, n + 1)]
    else:
        order = params
    arrays, eps = _arrays([sd[n] for n in order])
    return Adapted(arrays, order, eps, [*notes, LINEAR_NOTE])


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in tree.items():
        path = (*prefix, str(k))
        if isinstance(v, Mapping):
            out.update(_flatten(v, path))
        else:
            out[path] = v
    return out


def _from_flax(leaves: Mapping[tuple[str, ...], Any], source: str, notes: list[str]) -> Adapted:
    for path, value in leaves.items():
        name = "/".join(path)
        if path[-1] == "bias":
            raise InputError(
                f"{source}: has {name!r}: biases are not supported: dlcert certifies bias-free "
                "(deep linear) networks (nn.Dense(..., use_bias=False))"
            )
        if path[-1] != "kernel":
            raise InputError(
                f"{source}: {name!r} is not a Dense kernel; expected a tree of bias-free "
                "Dense layers ({'Dense_0': {'kernel': ...}, ...})"
            )
        if not is_tensor_like(value) or len(getattr(value, "shape", ())) != 2:
            shape = getattr(value, "shape", None)
            raise InputError(
                f"{source}: {name!r} is a {type(value).__name__} (shape {shape}); expected a 2-d "
                "kernel (in, out)"
            )
    names = ["/".join(p) for p in leaves]
    arrays, eps = _arrays(list(leaves.values()))
    transposed = [np.ascontiguousarray(a.T) for a in arrays]  # (in, out) -> (out, in)
    note = "Flax Dense kernels are (in, out): transposed to W_i of shape (out, in)"
    return Adapted(transposed, names, eps, [*notes, note])


# ---------------------------------------------------------------------------------------------
# torch.nn.Module


def _is_torch_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _from_module(model: Any, source: str) -> Adapted:
    import torch

    nn = torch.nn
    linears: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        label = f"{source}.{name}" if name else source
        if isinstance(module, nn.Linear):
            if module.bias is not None:
                raise InputError(
                    f"{label} is nn.Linear with a bias: dlcert certifies bias-free (deep linear) "
                    "networks; build it with nn.Linear(..., bias=False)"
                )
            linears.append((name, module))
            continue
        direct = [n for n, _ in module.named_parameters(recurse=False)]
        if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.Identity)) or (
            not direct and len(list(module.children())) > 0
        ):
            if direct:
                raise InputError(
                    f"{label} has its own parameter {direct[0]!r} outside nn.Linear; expected "
                    "a chain of bias-free nn.Linear layers"
                )
            continue
        raise InputError(
            f"{label} is a {type(module).__name__}: dlcert certifies chains of bias-free "
            "nn.Linear layers only (nothing between them)"
        )
    if not linears:
        raise InputError(f"{source} has no nn.Linear layer; expected a chain of bias-free nn.Linear")
    tensors = [m.weight for _, m in linears]
    _probe(model, tensors, source)
    arrays, eps = _arrays(tensors)
    return Adapted(arrays, [f"{n}.weight" for n, _ in linears], eps)


def _probe(model: Any, weights: Sequence[Any], source: str) -> None:
    """Refuse a module whose forward is not ``W_N ... W_1 x`` (module doc)."""
    import torch

    w0 = weights[0]
    for i in range(1, len(weights)):
        if weights[i].shape[1] != weights[i - 1].shape[0]:
            raise InputError(
                f"{source}: its nn.Linear layers do not compose in registration order (layer "
                f"{i + 1} takes {weights[i].shape[1]} inputs, layer {i} gives "
                f"{weights[i - 1].shape[0]}); expected a chain"
            )
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, w0.shape[1], generator=gen, dtype=torch.float64)
    with torch.no_grad():
        try:
            out = model(x.to(dtype=w0.dtype, device=w0.device))
        except Exception as exc:
            raise InputError(
                f"{source}: calling it on a batch of shape (5, {w0.shape[1]}) failed "
                f"({type(exc).__name__}); expected forward(x) = x W1^T ... WN^T"
            ) from exc
        chain = x
        for w in weights:
            chain = chain @ w.detach().cpu().to(torch.float64).T
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(chain.shape):
        raise InputError(
            f"{source}: forward returns {type(out).__name__} {tuple(getattr(out, 'shape', ()))}, not "
            f"the chain's output {tuple(chain.shape)}; expected forward(x) = x W1^T ... WN^T"
        )
    got = out.detach().cpu().to(torch.float64)
    scale = float(torch.linalg.norm(chain)) or 1.0
    err = float(torch.linalg.norm(got - chain)) / scale
    tol = min(0.05, 1e3 * float(torch.finfo(w0.dtype).eps) * len(weights))
    if not err <= tol:
        raise InputError(
            f"{source}: forward is not the chain of its nn.Linear layers: model(x) differs from "
            f"W_N...W_1 x by {err:.2g} (relative, tolerance {tol:.2g}); an activation or a skip "
            "in forward? dlcert certifies linear chains only"
        )
