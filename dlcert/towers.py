"""Multi-tower linear networks ``R = sum_t W_{t,N_t} ... W_{t,1}`` (Zhang 2019 Cor 2).

A weights file names the layers ``T1.W1 .. T1.WN1``, ``T2.W1 ..`` (input to output in each
tower); every tower maps dx -> dy. With a convex f of R: ``grad f(R) = 0`` certifies a global
minimum; Cor 2 (b = sum of the towers' bottleneck widths ``b_t``): when some tower has no
bottleneck or ``b >= max(dx, dy)``, every local minimum is global, so a critical point with
``grad f(R) != 0`` is a saddle; the Lemma 1 argument per tower makes it a saddle as well when a
tower's product has rank below ``b_t``. The rule table is :data:`dlcert.convex.CONVEX_RULES`
(``towers > 1`` in the evidence). Also here: :class:`StatisticsObjective` (the square loss from
``Sxx, Syx, syy``) and :class:`ShiftedObjective` (f with the other towers held fixed).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dlcert.certificate import Verdict, Witness, to_builtin
from dlcert.convex import (
    DENSE_PARAMS,
    RANK_RTOL,
    ConvexCertificate,
    ConvexEvidence,
    _chain,
    _confirm,
    _lanczos,
    _products,
    _routed_witness,
    check_finite_point,
    decide,
    default_gtol,
    dense_spectrum,
    infimum_attained,
    network_hvp,
    notes,
)
from dlcert.errors import InputError
from dlcert.losses import Objective
from dlcert.validation import check_weight_chain

TOWER_KEY = re.compile(r"^T(\d+)\.W(\d+)$")


def tower_arrays(arrays: Mapping[str, np.ndarray], source: str) -> list[list[np.ndarray]] | None:
    """The towers of a file's arrays (``None`` when it names no ``T<t>.W<i>``), validated."""
    found: dict[int, dict[int, np.ndarray]] = {}
    for key, value in arrays.items():
        match = TOWER_KEY.match(key)
        if match:
            found.setdefault(int(match[1]), {})[int(match[2])] = value
    if not found:
        return None
    if any(re.fullmatch(r"W\d+", k) for k in arrays):
        raise InputError(f"{source}: mixes a chain (W1..WN) with towers (T1.W1..); keep one")
    towers = []
    for t in range(1, len(found) + 1):
        if t not in found:
            raise InputError(f"{source}: towers must be numbered T1..T{len(found)}; T{t} is missing")
        layers = found[t]
        if sorted(layers) != list(range(1, len(layers) + 1)):
            raise InputError(f"{source}: tower T{t} must have layers W1..W{len(layers)} without gaps")
        chain = [layers[i] for i in range(1, len(layers) + 1)]
        towers.append(list(check_weight_chain(chain, f"{source} T{t}")))
    dx, dy = towers[0][0].shape[1], towers[0][-1].shape[0]
    for t, ws in enumerate(towers, start=1):
        if ws[0].shape[1] != dx or ws[-1].shape[0] != dy:
            raise InputError(f"{source}: tower T{t} maps {ws[0].shape[1]} -> {ws[-1].shape[0]} but T1 maps "
                             f"{dx} -> {dy}")
    return towers


@dataclass(frozen=True)
class StatisticsObjective:
    """The square loss ``1/2 ||R X - Y||^2`` from ``Sxx, Syx, syy`` (no raw data needed)."""

    Sxx: np.ndarray
    Syx: np.ndarray
    syy: float

    def value(self, R: np.ndarray) -> float:
        return 0.5 * float(np.sum((R @ self.Sxx) * R)) - float(np.sum(self.Syx * R)) + 0.5 * self.syy

    def gradient(self, R: np.ndarray) -> tuple[np.ndarray, float]:
        RS = R @ self.Sxx
        return RS - self.Syx, float(np.linalg.norm(RS) + np.linalg.norm(self.Syx))

    def hvp(self, R: np.ndarray, D: np.ndarray) -> np.ndarray:
        return D @ self.Sxx

    def decrease(self, R: np.ndarray, R2: np.ndarray) -> tuple[float, float]:
        D = R2 - R
        G, _ = self.gradient(R)
        DS = D @ self.Sxx
        dec = -(float(np.sum(G * D)) + 0.5 * float(np.sum(DS * D)))
        eps = float(np.finfo(np.float64).eps)
        mag = float(np.sum(np.abs(G) * np.abs(D))) + float(np.sum(np.abs(DS) * np.abs(D)))
        mag += float(np.sum(np.abs(R @ self.Sxx) * np.abs(D))) + float(np.sum(np.abs(self.Syx) * np.abs(D)))
        return dec, 8.0 * eps * (self.Sxx.shape[0] + 2) * mag


@dataclass(frozen=True)
class ShiftedObjective:
    """``R -> f(R + C)``: one tower's view of f with the other towers held fixed."""

    inner: Objective
    C: np.ndarray

    def value(self, R: np.ndarray) -> float:
        return self.inner.value(R + self.C)

    def gradient(self, R: np.ndarray) -> tuple[np.ndarray, float]:
        return self.inner.gradient(R + self.C)

    def hvp(self, R: np.ndarray, D: np.ndarray) -> np.ndarray:
        return self.inner.hvp(R + self.C, D)

    def decrease(self, R: np.ndarray, R2: np.ndarray) -> tuple[float, float]:
        return self.inner.decrease(R + self.C, R2 + self.C)


def certify_towers(towers: Sequence[Sequence[Any]], objective: Objective, *, loss_name: str = "custom",
                   gtol: float | None = None, eps: float = float(np.finfo(np.float64).eps),
                   radius: float = 1.0, dense_params: int = DENSE_PARAMS, seed: int = 0) -> ConvexCertificate:
    """Certify a multi-tower point for ``f(sum_t R_t)`` with convex f (module doc)."""
    t0 = time.perf_counter()
    if not towers:
        raise InputError("towers: none given")
    tws = [check_weight_chain(list(ws), f"tower T{t}") for t, ws in enumerate(towers, start=1)]
    dx, dy = int(tws[0][0].shape[1]), int(tws[0][-1].shape[0])
    for t, ws in enumerate(tws, start=1):
        if ws[0].shape[1] != dx or ws[-1].shape[0] != dy:
            raise InputError(f"tower T{t} maps {ws[0].shape[1]} -> {ws[-1].shape[0]}; T1 maps {dx} -> {dy}")
    tol = gtol if gtol is not None else default_gtol(eps)
    with np.errstate(all="ignore"):
        Rs = [_chain(ws, 1, len(ws), dx) for ws in tws]
        R = sum(Rs, np.zeros((dy, dx)))
        check_finite_point(objective, R, loss_name)
        return _certify_towers(tws, Rs, R, objective, loss_name, tol, radius, dense_params, seed, t0)


def _certify_towers(tws: list[tuple[np.ndarray, ...]], Rs: list[np.ndarray], R: np.ndarray,
                    objective: Objective, loss_name: str, tol: float, radius: float, dense_params: int,
                    seed: int, t0: float) -> ConvexCertificate:
    dx, dy = int(tws[0][0].shape[1]), int(tws[0][-1].shape[0])
    G, scale = objective.gradient(R)
    gnorm = float(np.linalg.norm(G))
    rel_f = gnorm / scale if scale > 0 else (0.0 if gnorm == 0 else math.inf)
    rels: list[float] = []
    bs, ranks, amb = [], [], False
    for ws, Rt in zip(tws, Rs, strict=True):
        A, B = _products(ws)
        for a, b in zip(A, B, strict=True):
            gi = float(np.linalg.norm(a.T @ G @ b.T))
            den = float(np.linalg.norm(a) * np.linalg.norm(b)) * scale
            rels.append(gi / den if den > 0 else (0.0 if gi == 0 else math.inf))
        bs.append(min([dx] + [int(w.shape[0]) for w in ws]))
        sv = np.linalg.svd(Rt, compute_uv=False)
        pscale = math.prod(float(np.linalg.norm(w, 2)) for w in ws)
        cutoff = RANK_RTOL * max(float(sv[0]) if sv.size else 0.0, pscale)
        ranks.append(int(np.count_nonzero(sv > cutoff)))
        amb = amb or (cutoff > 0 and bool(np.any((sv > cutoff / 100) & (sv <= cutoff * 100))))
    rel = max(rels)
    cor2 = any(b >= min(dx, dy) for b in bs) or sum(bs) >= max(dx, dy)
    deficient = any(r < b for r, b in zip(ranks, bs, strict=True))
    attained = infimum_attained(objective, loss_name) if rel_f > tol else None
    critical_only = rel <= tol and rel_f > tol
    flat = [w for ws in tws for w in ws]
    shapes = [w.shape for w in flat]
    offsets = np.cumsum([0] + [w.size for w in flat])
    nparams = int(offsets[-1])
    starts = np.cumsum([0] + [len(ws) for ws in tws])

    def split(v: np.ndarray) -> list[np.ndarray]:
        return [v[offsets[i]:offsets[i + 1]].reshape(shapes[i]) for i in range(len(flat))]

    def hv(v: np.ndarray) -> np.ndarray:
        V = split(np.ravel(v))
        dR = np.zeros_like(R)
        for t, ws in enumerate(tws):
            A, B = _products(ws)
            for j in range(len(ws)):
                dR += A[j] @ V[starts[t] + j] @ B[j]
        HdR = objective.hvp(R, dR)
        out = []
        for t, ws in enumerate(tws):
            out += network_hvp(ws, objective, R, G, V[starts[t]:starts[t + 1]], HdR=HdR)
        return np.concatenate([h.ravel() for h in out])

    def total(point: tuple[np.ndarray, ...]) -> np.ndarray:
        return sum((_chain(point[starts[t]:starts[t + 1]], 1, len(ws), dx) for t, ws in enumerate(tws)),
                   np.zeros((dy, dx)))

    lam_min = lam_max = None
    hessian_zero, method, threshold = False, "none", 0.0
    direction: np.ndarray | None = None
    if critical_only and nparams <= dense_params:
        hessian_zero, lam, vec = dense_spectrum(hv, nparams)
        lam_min, lam_max, method, direction = float(lam[0]), float(lam[-1]), "dense", vec[:, 0]
    elif critical_only:
        lam_min, lam_max, direction = _lanczos(hv, nparams, seed)
        method = "lanczos" if lam_min is not None else "none"
    witness: Witness | None = None
    if lam_min is not None and lam_max is not None:
        threshold = 1e3 * float(np.finfo(np.float64).eps) * max(abs(lam_min), abs(lam_max)) * nparams
        if lam_min < -threshold and direction is not None:
            witness = _confirm(tuple(flat), objective, R, split(direction), radius, "negative_curvature",
                               product=total)
    if critical_only and witness is None and (cor2 or deficient):
        for t, ws in enumerate(tws):  # route through one tower, the others held fixed
            w = _routed_witness(ws, ShiftedObjective(objective, R - Rs[t]), Rs[t], G, radius)
            if w is not None:
                point = tuple(flat[:starts[t]]) + w.point + tuple(flat[starts[t + 1]:])
                witness = replace(w, point=point, layers_moved=[int(starts[t]) + i for i in w.layers_moved])
                break
    ev = ConvexEvidence(
        relative_gradient=rel, relative_f_gradient=rel_f, gtol=tol, no_bottleneck=cor2,
        product_rank=int(np.linalg.matrix_rank(R)) if R.size else 0, k=min(sum(bs), dx, dy),
        rank_ambiguous=amb, attained=attained, witness_order=None if witness is None else witness.order,
        lambda_min=lam_min, curvature_threshold=threshold, hessian_zero=hessian_zero,
        towers=len(tws), tower_deficient=deficient,
    )
    verdict, reason, theorem = decide(ev)
    loss = objective.value(R)
    return ConvexCertificate(
        verdict=verdict, rule=reason.code, theorem=theorem, message=reason.message, loss_name=loss_name,
        loss=loss, gradient_f_norm=gnorm, relative_f_gradient=rel_f, relative_gradient_norm=rel,
        layer_relative_gradient_norms=rels, widths=[dx, dy], k=ev.k, no_bottleneck=cor2,
        product_rank=ev.product_rank,
        product_singular_values=[float(x) for x in np.linalg.svd(R, compute_uv=False)],
        attained=attained,
        hessian={"min_eigenvalue": lam_min, "max_eigenvalue": lam_max, "method": method,
                 "exactly_zero": hessian_zero},
        witness=witness if verdict in (Verdict.STRICT_SADDLE, Verdict.NON_STRICT_SADDLE, Verdict.INCONCLUSIVE)
        else None,
        reasons=[reason, *notes(ev)], tolerances={"gtol": tol, "rank_rtol": RANK_RTOL},
        evidence=to_builtin(ev) | {"tower_bottlenecks": bs, "b": sum(bs), "tower_ranks": ranks,
                                   "tower_widths": [[dx] + [int(w.shape[0]) for w in ws] for ws in tws]},
        seconds=time.perf_counter() - t0,
    )
