"""Figures (``--plot DIR``): what a certificate or a landscape says, drawn from dlcert's own
closed forms. Needs matplotlib (``pip install 'dlcert[plot]'``), imported lazily, Agg backend.

``dlcert check``:

- ``<stem>-witness``: ``L(W + tV) - L(W)`` along the escape witness's unit direction
  ``V = (W' - W) / ||W' - W||_F``, from the exact polynomial of degree 2N
  (:func:`dlcert.witness.loss_polynomial`), with its forward rounding band and the step taken
  marked (saddles only);
- ``<stem>-singular-values``: singular values of the product in whitened coordinates,
  ``sigma_i(R Sxx^{1/2})``, against the whitened target's ``s_i``, the learned set S shaded
  (at a critical point ``R S = U_S U_S^T T``, so the two agree on S and ``sigma_i(R S)`` vanishes
  elsewhere);
- ``<stem>-hessian``: the Hessian spectrum, every eigenvalue when the certificate used the dense
  Hessian (recomputed here with :func:`dlcert.hessian.dense_hessian`), else the extremes the
  certificate measured beside a stochastic Lanczos quadrature density of the HVP operator
  (:func:`slq_nodes`), labelled as an estimate.

``dlcert landscape``: ``<stem>-ladder``, the lowest critical values with ``L_ols`` and ``L*``
marked and each value's classes, and the point's loss when a manifest names weights.

Figures are built from the result objects (and, where the certificate does not carry a number,
from the problem through public library functions); nothing here changes a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlcert.certificate import Certificate
from dlcert.errors import InputError
from dlcert.landscape import GLOBAL, NON_STRICT_POSSIBLE, STRICT, Landscape
from dlcert.statistics import Statistics

if TYPE_CHECKING:
    from dlcert.batch import CheckOutcome, CheckSpec
    from dlcert.io import Problem

INSTALL_HINT = "--plot needs matplotlib: pip install 'dlcert[plot]'"

_COLORS = {
    "global_minimum": "#1a9850",
    "strict_saddle": "#d4a017",
    "non_strict_saddle": "#984ea3",
    "not_critical": "#d73027",
    "inconclusive": "#2c7fb8",
    GLOBAL: "#1a9850",
    STRICT: "#d4a017",
    NON_STRICT_POSSIBLE: "#984ea3",
}


class PlotFormat(StrEnum):
    """Image formats of ``--plot``."""

    PNG = "png"
    SVG = "svg"


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; :class:`InputError` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return plt


# --- check --------------------------------------------------------------------------------


def witness_curve(cert: Certificate, weights: Sequence[np.ndarray], stats: Statistics,
                  points: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``t``, ``L(W + tV) - L(W)``, its rounding band and the step ``t* = ||W' - W||_F``."""
    from dlcert.objective import residual_correlation
    from dlcert.products import product
    from dlcert.witness import loss_polynomial

    w = cert.witness
    if w is None:
        raise ValueError("no witness")
    ws = [np.asarray(x, dtype=np.float64) for x in weights]
    delta = [np.asarray(p, dtype=np.float64) - x for p, x in zip(w.point, ws, strict=True)]
    step = float(np.sqrt(sum(float(np.sum(d * d)) for d in delta)))
    V = [d / step for d in delta] if step > 0 else delta
    a, bound = loss_polynomial(ws, V, stats, residual_correlation(product(ws), stats))
    t = np.linspace(-0.25 * step, 1.25 * step, points)
    powers = np.arange(1, a.size + 1)
    tp = t[:, None] ** powers[None, :]
    return t, tp @ a, np.abs(tp) @ bound, step


def _witness_figure(plt: Any, cert: Certificate, weights: Sequence[np.ndarray], stats: Statistics) -> Any:
    w = cert.witness
    assert w is not None
    t, f, band, step = witness_curve(cert, weights, stats)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.fill_between(t, f - band, f + band, color="0.8", label="rounding-error band (forward bound)")
    ax.plot(t, f, color=_COLORS[cert.verdict.value], lw=2,
            label=f"exact polynomial, leading order t^{w.order} (coefficient {w.coefficient:.3g})")
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.axvline(step, color="k", ls="--", lw=1)
    ax.plot([step], [-w.loss_decrease], "o", color="k",
            label=f"step taken: t = {step:.3g}, decrease {w.loss_decrease:.3e}")
    ax.set_xlabel("t: distance along the unit direction V = (W' - W)/||W' - W||_F (parameter units)")
    ax.set_ylabel("L(W + tV) - L(W)  (loss units)")
    ax.set_title(f"Loss along the escape witness ({w.kind.replace('_', ' ')}, order {w.order}): "
                 f"{cert.verdict.value}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def whitened_product_singular_values(
    weights: Sequence[np.ndarray], stats: Statistics
) -> tuple[np.ndarray, np.ndarray]:
    """``sigma_i(R Sxx^{1/2})`` (the product's singular values where they compare with ``s_i``)
    and ``|u_i^T R Sxx^{1/2} v_i|`` (the product along the target's i-th pair of directions:
    ``s_i`` for i in S and 0 elsewhere at a critical point)."""
    from dlcert.optimum import whiten
    from dlcert.products import product
    from dlcert.tolerances import SXX_RTOL

    R = product([np.asarray(x, dtype=np.float64) for x in weights])
    wh = whiten(stats, SXX_RTOL)
    RS = R @ wh.S
    n = wh.s.size
    along = np.abs(np.einsum("ji,jk,ik->i", wh.U[:, :n], RS, wh.Vt[:n, :]))
    return np.asarray(np.linalg.svd(RS, compute_uv=False)), along


def _singular_values_figure(plt: Any, cert: Certificate, weights: Sequence[np.ndarray],
                            stats: Statistics) -> Any:
    s = np.asarray(cert.singular_values, dtype=np.float64)
    rs, along = whitened_product_singular_values(weights, stats)
    n = max(s.size, rs.size, 1)
    top = float(max(s.max(initial=0.0), rs.max(initial=0.0)))
    floor = top * 1e-17 if top > 0 else 1e-300
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    learned = cert.rank_rule.index_set or []
    for j, i in enumerate(learned):
        ax.axvspan(i - 0.4, i + 0.4, color="#fee08b", alpha=0.6, lw=0,
                   label="learned index set S" if j == 0 else None)
    idx = np.arange(1, n + 1)
    ax.plot(idx[: s.size], np.maximum(s, floor), "o", mfc="none", mec="k", ms=10,
            label="s_i: whitened target T = Syx Sxx^{-1/2}")
    ax.plot(idx[: rs.size], np.maximum(rs, floor), "x", color=_COLORS[cert.verdict.value], ms=9, mew=2,
            label="sigma_i(R Sxx^{1/2}): the product, whitened")
    ax.plot(idx[: along.size], np.maximum(along, floor), "d", color="0.35", ms=5,
            label="|u_i^T R Sxx^{1/2} v_i|: the product along the target's i-th directions")
    ax.axvline(cert.k + 0.5, color="0.4", ls=":", lw=1, label=f"k = {cert.k} (bottleneck width)")
    ax.set_yscale("log")
    ax.set_xticks(idx)
    ax.set_xlabel("index i (descending order)")
    ax.set_ylabel("singular value (units of Y; zeros drawn at the floor)")
    ax.set_title(f"Product vs whitened target singular values: {cert.verdict.value}, "
                 f"rank R = {cert.product_rank}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3, which="both")
    return fig


def dense_eigenvalues(
    cert: Certificate, weights: Sequence[np.ndarray], stats: Statistics
) -> np.ndarray | None:
    """Every Hessian eigenvalue when the certificate's spectrum was dense (else ``None``), in the
    same exactly rescaled coordinates as the certificate's (``dlcert.normalize``)."""
    if cert.hessian.method != "dense":
        return None
    from dlcert.hessian import dense_hessian
    from dlcert.normalize import normalize
    from dlcert.objective import PointCache

    ws, nstats, _ = normalize([np.asarray(x, dtype=np.float64) for x in weights], stats)
    H = dense_hessian(nstats, PointCache.at(ws, nstats))
    return np.asarray(np.linalg.eigvalsh(0.5 * (H + H.T)))


#: Stochastic Lanczos quadrature: probes (Rademacher vectors) and Lanczos steps per probe.
SLQ_PROBES = 4
SLQ_STEPS = 30


def slq_nodes(matmat: Callable[[np.ndarray], np.ndarray], n: int, probes: int = SLQ_PROBES,
              steps: int = SLQ_STEPS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature of a symmetric operator's spectral measure: nodes (Ritz
    values) and weights (summing to 1) such that ``sum_k w_k f(theta_k)`` estimates
    ``tr f(H) / n``. All probes run as one block of ``matmat`` calls (no reorthogonalisation:
    a few ghost copies of converged Ritz values only move weight among equal nodes).

    For each probe ``v`` (``||v|| = 1``) the quadrature is exact for ``v^T H v``:
    ``sum_k U_0k^2 theta_k = v^T H v``.
    """
    rng = np.random.default_rng(seed)
    V = rng.choice([-1.0, 1.0], size=(n, probes)) / np.sqrt(n)
    prev = np.zeros_like(V)
    beta = np.zeros(probes)
    alphas, betas = [], []
    active = np.ones(probes, dtype=bool)
    lengths = np.zeros(probes, dtype=int)
    for _ in range(min(steps, n)):
        W = matmat(V)
        alpha = np.einsum("ij,ij->j", V, W)
        W = W - alpha * V - beta * prev
        nb = np.linalg.norm(W, axis=0)
        alphas.append(alpha)
        betas.append(nb)
        lengths[active] += 1
        scale = max(float(np.max(np.abs(np.array(alphas)))), float(np.max(np.array(betas))), 1e-300)
        active &= nb > 1e-12 * scale
        if not active.any():
            break
        prev, V, beta = V, W / np.where(nb > 0, nb, 1.0), nb
    A, B = np.array(alphas), np.array(betas)
    nodes, weights = [], []
    for p in range(probes):
        m = int(lengths[p])
        T = np.diag(A[:m, p]) + np.diag(B[: m - 1, p], 1) + np.diag(B[: m - 1, p], -1)
        theta, U = np.linalg.eigh(T)
        nodes.append(theta)
        weights.append(U[0] ** 2 / probes)
    return np.concatenate(nodes), np.concatenate(weights)


def _slq_panel(ax: Any, cert: Certificate, weights: Sequence[np.ndarray], stats: Statistics,
               threshold: float) -> None:
    from dlcert.hessian import hessian_operator
    from dlcert.normalize import normalize
    from dlcert.objective import PointCache

    ws, nstats, _ = normalize([np.asarray(x, dtype=np.float64) for x in weights], stats)
    op = hessian_operator(nstats, PointCache.at(ws, nstats))
    n = int(op.shape[0])
    nodes, w = slq_nodes(op.matmat, n)
    lo, hi = float(nodes.min()), float(nodes.max())
    width = max(hi - lo, abs(hi), abs(lo), 1e-300)
    sigma = 0.01 * width
    x = np.linspace(lo - 0.05 * width, hi + 0.05 * width, 600)
    density = n * (w[None, :] * np.exp(-0.5 * ((x[:, None] - nodes[None, :]) / sigma) ** 2)).sum(axis=1)
    density /= sigma * np.sqrt(2 * np.pi)
    ax.plot(x, density, color="0.25", lw=1.5,
            label=f"ESTIMATE: stochastic Lanczos quadrature ({SLQ_PROBES} probes x {SLQ_STEPS} steps)")
    ax.axvline(threshold, color=_COLORS["not_critical"], ls="--", lw=1, label="negative threshold")
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(float(density.max()) * 1e-8, 1e-300))
    ax.set_xlabel("eigenvalue (loss / parameter^2)")
    ax.set_ylabel(f"estimated eigenvalues per unit (n = {n})")
    ax.set_title("spectral density: an estimate, not a certificate", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)


def _hessian_figure(plt: Any, cert: Certificate, weights: Sequence[np.ndarray], stats: Statistics) -> Any:
    h = cert.hessian
    scale = max(abs(h.max_eigenvalue or 0.0), abs(h.min_eigenvalue or 0.0))
    threshold = -cert.tolerances.hessian_rtol * scale
    eig = dense_eigenvalues(cert, weights, stats)
    if eig is None:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
        _slq_panel(ax2, cert, weights, stats, threshold)
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    linthresh = max(scale * 1e-6, 1e-300)
    if eig is not None:
        neg = eig < threshold
        idx = np.arange(1, eig.size + 1)
        ax.plot(idx[~neg], eig[~neg], ".", color="0.3", label=f"eigenvalues ({eig.size}, dense)")
        if neg.any():
            ax.plot(idx[neg], eig[neg], "v", color=_COLORS["not_critical"],
                    label=f"negative ({int(neg.sum())}) below {threshold:.2e}")
        ax.set_xlabel("eigenvalue index (ascending)")
        title = "Hessian spectrum: every eigenvalue (dense)"
    else:
        items = [("lambda_min", h.min_eigenvalue), ("lambda_max", h.max_eigenvalue),
                 ("structured direction v^T H v", h.direction_curvature)]
        items += [(f"smallest #{i + 1}", x) for i, x in enumerate(h.extremes)]
        shown = [(name, x) for name, x in items if x is not None]
        for j, (_, x) in enumerate(shown):
            ax.plot([j + 1], [x], "o", ms=8, color=_COLORS["not_critical"] if x < threshold else "0.3")
        ax.set_xticks(range(1, len(shown) + 1), [name for name, _ in shown], rotation=20, fontsize=8)
        ax.margins(y=0.15)
        ax.set_xlabel(f"computed extremes ({h.method}, converged: {h.converged}); "
                      "the full spectrum was not formed")
        title = f"Hessian spectrum: computed extremes ({h.method})"
    ax.axhline(threshold, color=_COLORS["not_critical"], ls="--", lw=1,
               label=f"negative threshold -{cert.tolerances.hessian_rtol:.1e} |lambda|max")
    ax.axhline(0.0, color="0.5", lw=0.8)
    if scale > 0:
        ax.set_yscale("symlog", linthresh=linthresh)
    else:  # an exactly zero Hessian (e.g. all weights zero, N >= 3): nothing to put on a log scale
        ax.set_ylim(-1.0, 1.0)
        ax.text(0.5, 0.75, "the Hessian is exactly 0 here: every eigenvalue is 0", ha="center",
                transform=ax.transAxes, fontsize=9)
    ax.set_ylabel("eigenvalue of the Hessian (loss / parameter^2)")
    ax.set_title(f"{title}: {cert.verdict.value}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def check_figures(cert: Certificate, weights: Sequence[np.ndarray], stats: Statistics) -> dict[str, Any]:
    """The figures of one certificate, by name (``witness`` only for saddles; ``hessian``
    when the spectrum was measured)."""
    plt = pyplot()
    figs: dict[str, Any] = {}
    if cert.witness is not None:
        figs["witness"] = _witness_figure(plt, cert, weights, stats)
    figs["singular-values"] = _singular_values_figure(plt, cert, weights, stats)
    if cert.hessian.method != "none":
        figs["hessian"] = _hessian_figure(plt, cert, weights, stats)
    return figs


# --- landscape ----------------------------------------------------------------------------


def landscape_figures(ls: Landscape, point_loss: float | None = None) -> dict[str, Any]:
    """The ladder of critical values (``ladder``), with the point's loss when given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    rows = ls.critical_values
    for i, row in enumerate(rows, start=1):
        colors = [_COLORS.get(c, "0.3") for c in row.classes]
        for j, c in enumerate(colors):
            ax.plot([i - 0.35 + 0.7 * j / len(colors), i - 0.35 + 0.7 * (j + 1) / len(colors)],
                    [row.value, row.value], color=c, lw=4, solid_capstyle="butt")
        ax.annotate("{" + ",".join(map(str, row.index_set)) + "}", (i, row.value), textcoords="offset points",
                    xytext=(0, 5), ha="center", fontsize=7)
    ax.axhline(ls.optimal_loss, color=_COLORS[GLOBAL], ls="--", lw=1, label=f"L* = {ls.optimal_loss:.6g}")
    ax.axhline(ls.ols_loss, color="0.4", ls=":", lw=1, label=f"L_ols = {ls.ols_loss:.6g}")
    for cls, name in ((GLOBAL, "global"), (STRICT, "strict saddle"),
                      (NON_STRICT_POSSIBLE, "non-strict saddle possible")):
        if any(cls in r.classes for r in rows):
            ax.plot([], [], color=_COLORS[cls], lw=4, label=name)
    if point_loss is not None:
        ax.axhline(point_loss, color="k", lw=1.5, label=f"the point's loss L(W) = {point_loss:.6g}")
    ax.set_xlabel(f"critical values, lowest first ({len(rows)} of {ls.critical_value_count}); "
                  "label = index set I")
    ax.set_ylabel("loss L = 1/2 ||W_N...W_1 X - Y||_F^2 (loss units)")
    ax.set_title(f"Ladder of critical values, widths {','.join(map(str, ls.widths))} "
                 f"(k = {ls.k})", fontsize=10)
    if rows:
        ax.set_xticks(range(1, len(rows) + 1))
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return {"ladder": fig}


# --- files --------------------------------------------------------------------------------


def save_figures(figs: dict[str, Any], directory: Path, stem: str, fmt: PlotFormat) -> list[Path]:
    """Write each figure as ``DIR/<stem>-<name>.<fmt>`` and close it; returns the paths."""
    plt = pyplot()
    directory = Path(directory)
    out = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, fig in figs.items():
            path = directory / f"{stem}-{name}.{fmt.value}"
            fig.savefig(path, format=fmt.value, dpi=110)
            out.append(path)
    except OSError as exc:
        raise InputError(f"{directory}: cannot write the figures ({exc.strerror or exc})") from exc
    finally:
        for fig in figs.values():
            plt.close(fig)
    return out


def safe_stem(text: str) -> str:
    """A file-name stem from a path or label: letters, digits, ``._-``; the rest ``_``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "point"
    return stem[:80]


@dataclass
class CheckPlotter:
    """``dlcert check --plot DIR``: draws each check's figures right after it is certified
    (while its weights are in memory) and remembers what it wrote or why it could not."""

    directory: Path
    fmt: PlotFormat
    stems: dict[int, str]
    written: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    internal: bool = False  # an error was a bug (exit 1), not a file problem (exit 2)

    @classmethod
    def create(cls, directory: Path, fmt: PlotFormat, specs: Sequence[CheckSpec]) -> CheckPlotter:
        """Check that matplotlib is there (before any work) and name each check's files."""
        pyplot()
        stems: dict[int, str] = {}
        used: set[str] = set()
        for spec in specs:
            base = safe_stem(Path(spec.source).stem)
            if spec.entry is not None:
                base = safe_stem(f"{Path(spec.weights).stem}-{base}")
            stem, n = base, 1
            while stem in used:
                n += 1
                stem = f"{base}-{n}"
            used.add(stem)
            stems[id(spec)] = stem
        return cls(Path(directory), fmt, stems)

    def after(self, spec: CheckSpec, problem: Problem | None, outcome: CheckOutcome) -> None:
        if problem is None or outcome.certificate is None:
            return
        try:
            figs = check_figures(outcome.certificate, problem.weights, problem.stats)
            self.written += save_figures(figs, self.directory, self.stems[id(spec)], self.fmt)
        except InputError as exc:
            self.errors.append(str(exc))
        except Exception as exc:  # a bug while drawing must not hide the verdicts
            self.internal = True
            self.errors.append(
                f"internal error (a bug in dlcert) while drawing {outcome.file}: {type(exc).__name__}: "
                f"{exc} -- please report it"
            )
