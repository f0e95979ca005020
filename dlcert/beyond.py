"""``dlcert check --loss ... --residual``: loading and routing beyond the square-loss path.

* ``--loss square`` (the default) without ``--residual`` never comes here: the statistics path
  of :mod:`dlcert.certification` is untouched.
* ``--residual``: the file holds ``A_1..A_N``; the layers are ``W_i = I + A_i`` (every A_i square,
  all of one size). The transformation happens at load time; every other check runs on ``W_i``,
  and the theorem table gains ``yun2018.cor2.3`` (:func:`dlcert.theorems.yun_cor23`).
* ``--loss logistic|cross-entropy|huber[:DELTA]``: the raw samples ``X``, ``Y`` are needed (the
  statistics ``Sxx, Syx, syy, m`` determine only the square loss); certification by
  :func:`dlcert.convex.certify_convex`.
* A weights file naming towers ``T1.W1 ..`` (Zhang 2019 Cor 2) goes to
  :func:`dlcert.towers.certify_towers` whatever the loss (``check`` routes it here).
* ``landscape --loss logistic|cross-entropy|huber[:DELTA]``: :func:`landscape_beyond` (raw samples
  only; random starts trained on the loss and certified by :func:`dlcert.convex.certify_convex`).

Nothing here prints; the CLI renders what :func:`check_beyond` returns.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, ConsoleOptions, RenderableType
from rich.text import Text

from dlcert.certificate import TheoremCheck
from dlcert.certification import certify
from dlcert.checkpoints import read_data_file
from dlcert.convex import ConvexCertificate, certify_convex, default_gtol, infimum_attained
from dlcert.errors import InputError
from dlcert.io import Layout, load_problem, read_npz, save_weights, weights_from_arrays
from dlcert.landscape import ConvexLandscape
from dlcert.losses import DataObjective, Objective, parse_loss
from dlcert.manifest import is_manifest, read_manifest
from dlcert.render.report import CheckReport
from dlcert.statistics import eps_of
from dlcert.theorems import yun_cor23
from dlcert.towers import TOWER_KEY, StatisticsObjective, certify_towers, tower_arrays
from dlcert.trials import Progress, run_convex_trials
from dlcert.validation import check_data, check_statistics
from dlcert.writer import write_atomic

STATS_ONLY = ("Sxx", "Syx", "syy", "m")


@dataclass(frozen=True)
class ConvexReport:
    """What ``check --loss`` prints: the convex certificate (JSON: ``dlcert.check-convex/1``)."""

    certificate: ConvexCertificate

    def to_dict(self) -> dict[str, Any]:
        return self.certificate.to_dict()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        yield Text(self.certificate.render_text().rstrip("\n"))

    @property
    def exit_code(self) -> int:
        return int(self.certificate.verdict.exit_code)


def residual_layers(residuals: Sequence[np.ndarray], source: str) -> tuple[np.ndarray, ...]:
    """``I + A_i`` for every i; one-line error unless every A_i is d x d with one d."""
    d = int(residuals[0].shape[1])
    for i, a in enumerate(residuals, start=1):
        if a.shape != (d, d):
            raise InputError(
                f"{source}: --residual needs square layers of one width: A{i} has shape "
                f"{a.shape[0]}x{a.shape[1]}, expected {d}x{d}")
    return tuple(np.eye(d) + a for a in residuals)


def load_raw(weights_path: Path, data_path: Path | None, layout: Layout | None,
             loss_name: str) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray, float]:
    """Weights and raw samples (``X`` (dx, m), ``Y`` (dy, m)) from .npz files, and their precision."""
    source = str(weights_path)
    if weights_path.suffix.lower() != ".npz":
        raise InputError(f"{source}: --loss {loss_name} reads weights from an .npz file (W1..WN)")
    arrays = read_npz(weights_path)
    weights = weights_from_arrays(arrays, source)
    data_source = str(data_path) if data_path is not None else source
    data = read_data_file(data_path) if data_path is not None else arrays
    if "X" not in data or "Y" not in data:
        if any(k in data for k in STATS_ONLY):
            raise InputError(
                f"{data_source}: holds statistics (Sxx, Syx, syy, m), which determine only the square "
                f"loss; --loss {loss_name} needs the raw samples X and Y")
        raise InputError(f"{data_source}: no raw data X, Y; --loss {loss_name} needs them (pass --data)")
    X, Y = check_data(data["X"], data["Y"], int(weights[0].shape[1]), int(weights[-1].shape[0]),
                      layout, data_source)
    eps = eps_of(*[arrays[k] for k in arrays if k.startswith("W")], data["X"], data["Y"])
    return weights, X, Y, eps


def is_towers_file(path: Path) -> bool:
    """Whether an .npz names towers ``T1.W1 ..`` (reads only the member names)."""
    try:  # a name the OS refuses (too long, say) is not a towers file; loading says what is wrong
        if Path(path).suffix.lower() != ".npz" or not Path(path).is_file():
            return False
        with zipfile.ZipFile(path) as zf:
            return any(TOWER_KEY.match(n.removesuffix(".npy")) for n in zf.namelist())
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def check_towers(weights_path: Path, data_path: Path | None, layout: Layout | None, loss: str,
                 gtol: float | None, ftol: float | None, witness_out: Path | None = None) -> ConvexReport:
    """A multi-tower file (``T1.W1 ..``): any --loss; the square loss also from statistics."""
    sample_loss = parse_loss(loss)
    source = str(weights_path)
    if ftol is not None:
        raise InputError("--ftol has no meaning for a multi-tower check (certified through grad f(R))")
    arrays = read_npz(weights_path)
    towers = tower_arrays(arrays, source)
    if towers is None:
        raise InputError(f"{source}: no towers T1.W1..")
    dx, dy = int(towers[0][0].shape[1]), int(towers[0][-1].shape[0])
    data_source = str(data_path) if data_path is not None else source
    data = read_data_file(data_path) if data_path is not None else arrays
    precision = [v for k, v in arrays.items() if TOWER_KEY.match(k)]
    objective: Objective
    if sample_loss.name == "square" and "X" not in data and all(k in data for k in STATS_ONLY):
        Sxx, Syx, syy, _ = check_statistics(data["Sxx"], data["Syx"], data["syy"], data["m"], dx, dy,
                                            data_source)
        objective = StatisticsObjective(Sxx, Syx, float(syy))
        eps = eps_of(*precision, data["Sxx"], data["Syx"])
    else:
        if "X" not in data or "Y" not in data:
            raise InputError(f"{data_source}: no raw data X, Y; --loss {sample_loss.name} with towers needs "
                             "them (the square loss also takes Sxx, Syx, syy, m)")
        X, Y = check_data(data["X"], data["Y"], dx, dy, layout, data_source)
        objective = DataObjective(sample_loss, X, sample_loss.targets(Y, data_source))
        eps = eps_of(*precision, data["X"], data["Y"])
    cert = certify_towers(towers, objective, loss_name=sample_loss.name, gtol=gtol, eps=eps)
    if witness_out is not None and cert.witness is not None:
        sizes = [len(ws) for ws in towers]
        out, i = {}, 0
        for t, n in enumerate(sizes, start=1):
            for j in range(1, n + 1):
                out[f"T{t}.W{j}"] = cert.witness.point[i]
                i += 1
        write_atomic(Path(witness_out), lambda f: np.savez(f, **out), inputs=[weights_path, data_path],  # type: ignore[arg-type]
                     what="the witness")
    return ConvexReport(cert)


def check_beyond(weights_path: Path, data_path: Path | None, layout: Layout | None, loss: str,
                 residual: bool, gtol: float | None, ftol: float | None,
                 witness_out: Path | None = None) -> CheckReport | ConvexReport:
    """Certify one file with a non-square loss and/or residual layers (or towers)."""
    if is_towers_file(weights_path):
        if residual:
            raise InputError(f"{weights_path}: --residual takes a chain W1..WN, not towers")
        return check_towers(weights_path, data_path, layout, loss, gtol, ftol, witness_out)
    sample_loss = parse_loss(loss)
    source = str(weights_path)
    if sample_loss.name == "square":
        problem = load_problem(weights_path, data_path, layout)
        ws = residual_layers(problem.weights, source) if residual else problem.weights
        cert = certify(ws, problem.stats, gtol=gtol, ftol=ftol, weights_eps=problem.weights_eps)
        if residual:
            row = yun_cor23(problem.weights, cert.tolerances.rank_rtol)
            cert = replace(cert, theorems=[*cert.theorems, row])
        if witness_out is not None and cert.witness is not None:
            _save(witness_out, cert.witness.point, source, residual, "square", cert.witness.loss_decrease)
        return CheckReport(cert)
    if ftol is not None:
        raise InputError(f"--ftol has no meaning for --loss {sample_loss.name} (there is no gap to L*)")
    raw_ws, X, Y, eps = load_raw(weights_path, data_path, layout, sample_loss.name)
    ws = residual_layers(raw_ws, source) if residual else raw_ws
    Y = sample_loss.targets(Y, str(data_path or weights_path))
    ccert = certify_convex(ws, DataObjective(sample_loss, X, Y), loss_name=sample_loss.name,
                           gtol=gtol, eps=eps)
    if residual:
        row = yun_cor23(raw_ws, ccert.tolerances["rank_rtol"], square_loss=False)
        ccert = replace(ccert, theorems=[*ccert.theorems, row])
    if witness_out is not None and ccert.witness is not None:
        w = ccert.witness
        _save(witness_out, w.point, source, residual, sample_loss.name, w.loss_decrease)
    return ConvexReport(ccert)


def _save(path: Path, point: tuple[np.ndarray, ...], source: str, residual: bool, loss: str,
          decrease: float) -> None:
    """The witness W' (full layers W_i, also with --residual) with what produced it."""
    save_weights(path, point, {"kind": "escape_witness", "loss": loss, "residual_layers_saved_as_W": residual,
                               "loss_decrease": decrease, "source": source})


def landscape_beyond(data_path: Path, widths: Sequence[int] | None, layout: Layout | None, loss: str,
                     trials: int, seed: int, progress: Progress | None = None) -> ConvexLandscape:
    """``dlcert landscape DATA --loss L``: what the widths say (Zhang 2019) and, with ``trials``,
    random starts trained on L, each end point certified by the rule table of ``check --loss``."""
    sample_loss = parse_loss(loss)
    gtol = None
    source = str(data_path)
    if is_manifest(data_path):
        m = read_manifest(data_path)
        if m.data is None:
            raise InputError(f"{source}: no raw data (data:); --loss {sample_loss.name} needs X and Y, "
                             "statistics determine only the square loss")
        widths = widths if widths is not None else m.widths
        layout = layout if layout is not None else m.layout
        gtol = m.gtol
        data_path, source = m.data, str(m.data)
    if widths is None:
        raise InputError("no widths: pass --widths d0,d1,...,dN (or widths: in the manifest)")
    ws = [int(w) for w in widths]
    if len(ws) < 2 or any(w < 1 for w in ws):
        raise InputError(f"widths {ws}: expected d0,...,dN >= 1 with N >= 1")
    data = read_data_file(data_path)
    if "X" not in data or "Y" not in data:
        if any(k in data for k in STATS_ONLY):
            raise InputError(
                f"{source}: holds statistics (Sxx, Syx, syy, m), which determine only the square loss; "
                f"--loss {sample_loss.name} needs the raw samples X and Y")
        raise InputError(f"{source}: no raw data X, Y; --loss {sample_loss.name} needs them")
    X, Y = check_data(data["X"], data["Y"], ws[0], ws[-1], layout, source)
    Y = sample_loss.targets(Y, source)
    eps = eps_of(data["X"], data["Y"])
    obj = DataObjective(sample_loss, X, Y)
    n = len(ws) - 1
    k = min(ws)
    no_bottleneck = k == min(ws[0], ws[-1])
    attained = infimum_attained(obj, sample_loss.name)
    theorems = [
        TheoremCheck("zhang2019.thm3", no_bottleneck, None,
                     "no bottleneck (k = min(dx, dy)): every local minimum of the network is a global "
                     "minimum of f; a critical point with grad f(R) != 0 is a saddle",
                     {"k": k, "min_dx_dy": min(ws[0], ws[-1])}),
        TheoremCheck("zhang2019.thm1", not no_bottleneck, None,
                     f"bottleneck k = {k}: the network has spurious local minima iff the two-layer "
                     f"problem f(AB) (A {ws[-1]}x{k}, B {k}x{ws[0]}) has; at a spurious local minimum "
                     "rank R = k (Thm 2 / Lemma 1)", {"k": k}),
    ]
    notes = []
    if attained is False:
        notes.append("the infimum of f is not attained (e.g. separable data): there is no global minimum "
                     "to certify; trained end points grow without bound")
    elif attained is None:
        notes.append("whether the infimum of f is attained was not checked (too large for the LP)")
    summary = None
    if trials:
        summary = run_convex_trials(obj, sample_loss.name, ws, trials, seed, progress=progress, gtol=gtol,
                                    eps=eps)
        if gtol is None:
            notes.append(f"gtol {default_gtol(eps):.1e} (default for this precision)")
    return ConvexLandscape(loss=sample_loss.name, widths=ws, n_layers=n, k=k, no_bottleneck=no_bottleneck,
                           bottleneck_layers=[i for i in range(1, n) if ws[i] == k], m=int(X.shape[1]),
                           attained=attained, theorems=theorems, notes=notes, trials=summary)
