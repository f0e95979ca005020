"""The notebook API: from a model, tensors or files to a certificate in one call.

::

    import dlcert
    cert = dlcert.check(model, X, Y)             # nn.Module, state_dict, Flax tree, [W1..WN]
    cert                                          # displays itself in a notebook
    dlcert.passed(cert, require="global")         # the CI gate's rule, as a bool
    pol = dlcert.polish(model, X, Y)              # nearest critical point, certified
    dlcert.landscape([64, 32, 10], X, Y)          # L*, the ladder of critical values
    dlcert.load("run/ckpt.pt", data="train.pt")   # files -> Loaded (weights, statistics)

Inputs (:mod:`dlcert.frameworks` does the conversions): numpy arrays, lists of arrays, torch
tensors of any device and dtype, a bias-free ``nn.Module`` chain of ``nn.Linear``, a
``state_dict`` or training-loop checkpoint dict, JAX arrays and Flax parameter trees, a
:class:`Loaded`. Data ``X``, ``Y`` in either layout (``layout="columns"``: ``(d, m)``,
``"rows"``: ``(m, d)``, inferred when the shapes tell), 1-d targets when ``dy = 1``; or
``stats=`` a :class:`~dlcert.statistics.Statistics` or a mapping ``Sxx, Syx, syy, m``. Every
input passes the same ``check_*`` validators as the command line and fails with the same one
line (:class:`~dlcert.errors.InputError`).

Precision: tolerances follow the coarsest *stored* dtype among weights and data (bfloat16 is
widened to float32 but counts as bfloat16), exactly as for files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dlcert.certificate import Certificate, Reason, Verdict
from dlcert.certification import certify as _certify  # THE certification entry point
from dlcert.errors import InputError
from dlcert.frameworks import LINEAR_NOTE, Adapted, to_numpy, weights_from
from dlcert.gate import PASSING
from dlcert.hessian import DEFAULT_TIME_BUDGET
from dlcert.landscape import Landscape, map_landscape
from dlcert.polishing import Polish, polish_point
from dlcert.recheck import WitnessCheck
from dlcert.recheck import recheck as recheck_witness
from dlcert.statistics import Statistics, eps_of
from dlcert.validation import check_data, check_statistics, check_weight_chain

# dlcert.landscape and dlcert.recheck are also submodules: they are imported above, before
# dlcert/__init__.py binds the functions of this module to those names, so a later import of
# the submodule cannot replace dlcert.landscape / dlcert.recheck with a module.

__all__ = [
    "REQUIREMENTS",
    "Loaded",
    "check",
    "landscape",
    "load",
    "loss_summary",
    "passed",
    "polish",
    "recheck",
    "to_dict",
    "to_json",
]

_F64_EPS = float(np.finfo(np.float64).eps)

#: The verdicts each ``require`` passes in ``passed(cert, require=...)``: the CLI gate's own
#: table (``--require``, :mod:`dlcert.gate`).
REQUIREMENTS: dict[str, frozenset[Verdict]] = {r.value: v for r, v in PASSING.items()}


@dataclass(frozen=True)
class Loaded:
    """Weights (and data statistics, when the files hold data) read from files by :func:`load`.

    weights : ``W1..WN`` as validated float64 arrays.
    stats : the data's statistics, or ``None`` when no data came with the weights.
    eps : epsilon of the weights' stored dtypes (the data's precision is ``stats.eps``).
    source : the weights file; notes : what was assumed while reading.
    """

    weights: tuple[np.ndarray, ...]
    stats: Statistics | None
    eps: float
    source: str
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class _Point:
    weights: tuple[np.ndarray, ...]
    eps: float
    notes: list[str]


def _point(obj: Any, key: str | None = None, source: str = "weights") -> _Point:
    if isinstance(obj, Loaded):
        return _Point(obj.weights, obj.eps, list(obj.notes))
    adapted: Adapted = weights_from(obj, source, key)
    ws = check_weight_chain(adapted.weights, "", adapted.names)
    raw = [a for a in adapted.weights if isinstance(a, np.ndarray)]
    eps = max(eps_of(*raw), adapted.eps, _F64_EPS)
    return _Point(ws, eps, adapted.notes)


def _statistics(
    X: Any, Y: Any, stats: Any, dx: int, dy: int, layout: str | None, loaded: Statistics | None
) -> Statistics:
    """Validated statistics from ``X, Y``, ``stats`` or what :func:`load` found (in that order)."""
    if X is not None or Y is not None:
        if stats is not None:
            raise InputError("pass either X and Y or stats=, not both")
        if X is None or Y is None:
            raise InputError(f"{'Y' if Y is None else 'X'} is missing; pass both X and Y")
        (x, ex), (y, ey) = to_numpy(X), to_numpy(Y)
        X64, Y64 = check_data(x, y, dx, dy, layout)
        eps = max(eps_of(*(a for a in (x, y) if isinstance(a, np.ndarray))), ex, ey, _F64_EPS)
        return Statistics.from_data(X64, Y64, eps=eps)
    if stats is None:
        if loaded is not None:
            return loaded
        raise InputError("no data: pass X and Y (or stats=Statistics / a dict Sxx, Syx, syy, m)")
    if isinstance(stats, Statistics):
        parts: Mapping[str, Any] = {"Sxx": stats.Sxx, "Syx": stats.Syx, "syy": stats.syy, "m": stats.m}
        eps = stats.eps
    elif isinstance(stats, Mapping):
        missing = [k for k in ("Sxx", "Syx", "syy", "m") if k not in stats]
        if missing:
            raise InputError(f"stats is missing {', '.join(missing)}; expected Sxx, Syx, syy and m")
        parts = {k: to_numpy(stats[k])[0] for k in ("Sxx", "Syx", "syy", "m")}
        eps = max(eps_of(*(v for v in parts.values() if isinstance(v, np.ndarray))), _F64_EPS)
    else:
        raise InputError(
            f"stats is a {type(stats).__name__}; expected a dlcert.Statistics or a dict with "
            "Sxx, Syx, syy, m"
        )
    Sxx, Syx, syy, m = check_statistics(parts["Sxx"], parts["Syx"], parts["syy"], parts["m"], dx, dy)
    return Statistics(Sxx=Sxx, Syx=Syx, syy=syy, m=m, eps=eps)


def _layout(layout: Any) -> str | None:
    value = getattr(layout, "value", layout)
    return None if value is None else str(value)


def _prepare(
    model_or_weights: Any, X: Any, Y: Any, stats: Any, layout: Any, key: str | None
) -> tuple[_Point, Statistics]:
    point = _point(model_or_weights, key)
    dx, dy = int(point.weights[0].shape[1]), int(point.weights[-1].shape[0])
    loaded = model_or_weights.stats if isinstance(model_or_weights, Loaded) else None
    st = _statistics(X, Y, stats, dx, dy, _layout(layout), loaded)
    return point, st


# ---------------------------------------------------------------------------------------------
# entry points


def check(
    model_or_weights: Any,
    X: Any = None,
    Y: Any = None,
    *,
    stats: Any = None,
    layout: str | None = None,
    gtol: float | None = None,
    ftol: float | None = None,
    key: str | None = None,
    eigs: int = 0,
    time_budget: float = DEFAULT_TIME_BUDGET,
    seed: int = 0,
) -> Certificate:
    """Certify the point ``model_or_weights`` for the data ``X``, ``Y`` (or ``stats``).

    Returns the same :class:`~dlcert.certificate.Certificate` as ``dlcert check``; notes on
    how the input was read (a state_dict taken as linear, a checkpoint entry chosen) are
    appended to its ``reasons``.
    """
    _check_tolerances(gtol, ftol)
    point, st = _prepare(model_or_weights, X, Y, stats, layout, key)
    cert = _certify(point.weights, st, gtol=gtol, ftol=ftol, weights_eps=point.eps, n_extremes=eigs,
                    time_budget=time_budget, seed=seed)
    notes = [Reason("note.input", n) for n in point.notes]
    return replace(cert, reasons=[*cert.reasons, *notes]) if notes else cert


def polish(
    model_or_weights: Any,
    X: Any = None,
    Y: Any = None,
    *,
    stats: Any = None,
    layout: str | None = None,
    gtol: float | None = None,
    ftol: float | None = None,
    key: str | None = None,
    time_budget: float = DEFAULT_TIME_BUDGET,
    seed: int = 0,
) -> Polish:
    """Polish the point to the nearest critical point and certify that (``check --polish``).

    ``result.certificate`` is the polished point's certificate, ``result.point`` its weights,
    ``result.sentence()`` the distance and loss change in words (:mod:`dlcert.polishing`).
    """
    _check_tolerances(gtol, ftol)
    point, st = _prepare(model_or_weights, X, Y, stats, layout, key)

    def certifier(ws: Sequence[np.ndarray], s: Statistics) -> Certificate:
        # The polished point is float64 whatever the stored point's precision was.
        return _certify(ws, s, gtol=gtol, ftol=ftol, time_budget=time_budget, seed=seed)

    return polish_point(point.weights, st, certifier)


def landscape(
    widths_or_model: Any,
    X: Any = None,
    Y: Any = None,
    *,
    stats: Any = None,
    layout: str | None = None,
    rows: int = 10,
    trials: int = 0,
    seed: int = 0,
    gtol: float | None = None,
    ftol: float | None = None,
) -> Landscape:
    """The landscape (``dlcert landscape``) for widths ``[d_0, ..., d_N]`` or a model's widths."""
    from dlcert.trials import run_trials

    _check_tolerances(gtol, ftol)
    if isinstance(widths_or_model, (list, tuple)) and all(
        isinstance(w, (int, np.integer)) and not isinstance(w, bool) for w in widths_or_model
    ):
        widths = [int(w) for w in widths_or_model]
        if len(widths) < 2:
            raise InputError(f"widths {widths}: expected d0,...,dN with N >= 1")
    else:  # only the architecture matters: the landscape is a property of the data
        point = _point(widths_or_model)
        widths = [int(point.weights[0].shape[1]), *(int(w.shape[0]) for w in point.weights)]
    st = _statistics(X, Y, stats, widths[0], widths[-1], _layout(layout), None)
    eps = st.eps
    result = map_landscape(st, widths, rows=rows, gtol=gtol, ftol=ftol, eps=eps)
    if trials:
        result = replace(result, trials=run_trials(st, widths, trials, seed, gtol=gtol, ftol=ftol, eps=eps))
    return result


def recheck(
    witness: Any,
    point: Any,
    X: Any = None,
    Y: Any = None,
    *,
    stats: Any = None,
    layout: str | None = None,
) -> WitnessCheck:
    """Re-check a witness ``W'`` against the point ``W`` (``dlcert recheck``).

    ``witness`` is a :class:`Certificate` (its witness, radius and order), a saved witness file
    (``.npz`` from ``--witness``) or weights.
    """
    from dlcert.io import read_metadata, read_npz, weights_from_arrays

    radius: float | None = None
    order: int | None = None
    if isinstance(witness, Certificate):
        if witness.witness is None:
            raise InputError(f"the certificate carries no witness (verdict {witness.verdict.value})")
        radius, order = witness.witness.radius, witness.witness.order
        w_prime: tuple[np.ndarray, ...] = tuple(witness.witness.point)
    elif isinstance(witness, (str, Path)):
        arrays = read_npz(Path(witness))
        meta = read_metadata(arrays)
        r, o = meta.get("radius"), meta.get("order")
        radius = float(r) if isinstance(r, (int, float)) else None
        order = int(o) if isinstance(o, (int, float)) else None
        w_prime = weights_from_arrays(arrays, str(witness))
    else:
        w_prime = _point(witness, source="witness").weights
    base, st = _prepare(point, X, Y, stats, layout, None)
    return recheck_witness(base.weights, w_prime, st, claimed_radius=radius, order=order)


def load(
    path: str | Path,
    data: str | Path | None = None,
    *,
    key: str | None = None,
    layout: str | None = None,
) -> Loaded:
    """Read weights (and data, when the file holds it or ``data`` is given) as ``dlcert check``.

    ``path``: ``.npz`` (``W1..WN``), ``.safetensors``, a PyTorch file (``.pt``, ``.pth``,
    ``.bin``, ``.ckpt``: a ``state_dict`` or a training-loop dict, ``key`` choosing the entry)
    or a YAML manifest. ``data``: ``.npz`` or a ``torch.save`` file with ``X, Y`` (or ``x, y``)
    or ``Sxx, Syx, syy, m``. Loading never executes code.
    """
    from dlcert import checkpoints, formats
    from dlcert.io import Layout, load_problem, read_npz, weights_from_arrays
    from dlcert.manifest import is_manifest, load_check_input

    p = Path(path)
    lay_value = _layout(layout)
    lay = Layout(lay_value) if lay_value is not None else None
    notes = [LINEAR_NOTE] if formats.format_of(p) is not None else []
    with checkpoints.using_key(key):
        if is_manifest(p):
            problem, _gtol, _ftol = load_check_input(p, Path(data) if data else None, lay, None, None)
            return Loaded(problem.weights, problem.stats, problem.weights_eps, str(p), notes)
        has_data = data is not None or (
            formats.format_of(p) is None and any(k in read_npz(p) for k in ("X", "Sxx", "x"))
        )
        if has_data:
            problem = load_problem(p, Path(data) if data else None, lay)
            return Loaded(problem.weights, problem.stats, problem.weights_eps, str(p), notes)
        if formats.format_of(p) is None:
            arrays = read_npz(p)
            ws = weights_from_arrays(arrays, str(p))
            eps = max(eps_of(*(arrays[k] for k in arrays if k.startswith("W"))), _F64_EPS)
            return Loaded(ws, None, eps, str(p), notes)
        foreign = formats.read_weights(p)
        keys = sorted(foreign.arrays, key=lambda k: int(k[1:]))
        ws = check_weight_chain([foreign.arrays[k] for k in keys], str(p),
                                [foreign.names.get(k, k) for k in keys])
        eps = max(eps_of(*foreign.arrays.values()), foreign.eps, _F64_EPS)
        return Loaded(ws, None, eps, str(p), notes)


# ---------------------------------------------------------------------------------------------
# certificate helpers (the Certificate's methods delegate here)


def passed(cert: Certificate, require: str = "global") -> bool:
    """Whether ``cert`` passes the gate ``require`` (``--require``: :mod:`dlcert.gate`)."""
    value = str(getattr(require, "value", require))
    if value not in REQUIREMENTS:
        raise InputError(f"require {value!r} is not one of {', '.join(REQUIREMENTS)}")
    return cert.verdict in REQUIREMENTS[value]


def loss_summary(cert: Certificate) -> dict[str, Any]:
    """The loss as dlcert reports it and as training printed it (MSE), with the conversion.

    ``loss = 1/2 sum ||W_N...W_1 x - y||^2`` over all m samples; PyTorch's ``nn.MSELoss()``
    (reduction ``mean``) averages over the ``m * dy`` entries, so ``MSE = 2 loss / (m dy)``.
    """
    dy = int(cert.widths[-1]) if cert.widths else 1
    m = int(cert.m)
    scale = 2.0 / (m * dy) if m > 0 and dy > 0 else math.nan
    return {
        "loss": cert.loss,
        "mse": cert.loss * scale,
        "optimal_mse": cert.optimal_loss * scale,
        "conversion": f"MSE = 2 loss / (m dy) = loss / {m * dy / 2:g} (m = {m}, dy = {dy}; "
                      "nn.MSELoss averages over all m*dy entries)",
    }


def to_dict(cert: Certificate) -> dict[str, Any]:
    """The ``dlcert.check/1`` contract as builtins, plus ``mse`` and its ``mse_conversion``."""
    out = cert.to_dict()
    summary = loss_summary(cert)
    mse = summary["mse"]
    out["mse"] = mse if math.isfinite(mse) else None
    out["mse_conversion"] = summary["conversion"]
    return out


def to_json(cert: Certificate, indent: int | None = 2) -> str:
    """Strict JSON of :func:`to_dict` (non-finite numbers are ``null``)."""
    return json.dumps(to_dict(cert), indent=indent, allow_nan=False)


def _check_tolerances(gtol: float | None, ftol: float | None) -> None:
    for name, value in (("gtol", gtol), ("ftol", ftol)):
        if value is not None and not 0 < value < 1:
            raise InputError(f"{name} must be in (0, 1), got {value}")
