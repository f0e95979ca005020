"""The Hessian as a ``LinearOperator`` of Hessian-vector products, and its extreme eigenvalues.

The Hessian is never formed unless it is small (``dense_limit`` parameters); beyond that the
eigen-core is ``scipy.sparse.linalg`` on :func:`hessian_operator` (float64, seeded start).
The spectrum *measures* and *confirms*; the verdict comes from the rank rule (SPEC §4).

HVP. :func:`dlcert.objective.hvp` is the readable form of SPEC §4 and the test oracle.
:class:`HVPEngine` computes the same product for a block of k directions at once, with the
recurrences re-associated so that every matrix product has ``dy`` rows on one side
(with ``G_i = dR Sxx B_i^T``, ``F_i = E dB_i^T``; 0-based layers, ``W[i]`` is ``d_{i+1} x d_i``)::

    dA_{i-1} = dA_i W_i + A_i V_i          (dA_N = 0; dR = dA_0 = dA_1 W_1 + A_1 V_1)
    G_1 = dR Sxx,   G_{i+1} = G_i W_i^T
    F_1 = 0,        F_{i+1} = (E B_i^T) V_i^T + F_i W_i^T
    (H V)_i = A_i^T (G_i + F_i) + dA_i^T (E B_i^T)

Seven products of size ``dy x d_i x d_{i-1}`` per layer and one ``dy x dx x dx``, against
products of size ``d_i x d_{i-1} x dx`` in the direct form: 2-4x faster at 10^5-10^6
parameters (``benchmarks/README.md``). Memory is O(params * k).

lambda_min. On constructed strict saddles whose layers carry random changes of basis the
spectrum spans 1e3-1e11 and plain LOBPCG does not converge in minutes; ``eigsh(which='SA')``
needs ~10^3 products at 10^4 parameters and more beyond. We use LOBPCG preconditioned by the
inverse of the Kronecker-factored Gauss-Newton block diagonal,
``V_i -> (A_i^T A_i (x) B_i Sxx B_i^T + delta)^{-1} V_i`` applied through the eigenvectors of
the two factors, shifted by ``delta`` = the curvature of the structured direction (the scale
of the negative eigenvalue sought). The factors transform with the layers under a change of
basis, so the preconditioned problem does not see the basis; measured numbers are in
``benchmarks/README.md``.

Honesty. ``converged`` means the reported pair has ``||H v - lambda v|| <= rtol |lambda_max|``.
A negative ``lambda`` with a small residual proves negative curvature (there is an eigenvalue
within the residual, and the Rayleigh quotient is an upper bound on ``lambda_min``). An
iterative solver cannot prove that no smaller eigenvalue exists: a converged ``lambda_min >= 0``
from LOBPCG is a measurement, and :mod:`dlcert.evidence` says so.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh, lobpcg

from dlcert.certificate import HessianSpectrum
from dlcert.objective import PointCache, flatten
from dlcert.statistics import Statistics
from dlcert.tolerances import DENSE_EIG_GAMMA, EPS64

#: Seconds the iterative eigen-solver may spend by default (about 27 s converge 10^6 parameters).
DEFAULT_TIME_BUDGET = 30.0

#: Relative accuracy asked of lambda_max (a scale, not a verdict).
LAMBDA_MAX_RTOL = 1e-4

#: Problems with at most this many parameters get a dense Hessian and ``eigh``.
DENSE_LIMIT = 2000
#: LOBPCG block size (at least; ``n_extremes + 2`` when more extremes are requested).
LOBPCG_BLOCK = 4
#: Columns of the identity pushed through the HVP at once when forming a dense Hessian.
DENSE_BATCH = 64


class OutOfTime(Exception):
    """Raised by :class:`HVPEngine` when its deadline has passed (caught inside this module)."""


class HVPEngine:
    """Hessian-vector products for blocks of directions at one point, counted.

    ``apply`` takes ``V_i`` of shape ``(k, d_i, d_{i-1})`` and returns ``(H V)_i`` alike;
    ``matmat`` works on flat parameter vectors (columns of an ``(n, k)`` array, layers
    concatenated row-major as in :func:`dlcert.objective.flatten`).
    """

    def __init__(self, stats: Statistics, cache: PointCache) -> None:
        self.W = [np.ascontiguousarray(w, dtype=np.float64) for w in cache.weights]
        self.WT = [np.ascontiguousarray(w.T) for w in self.W]
        self.A = [np.ascontiguousarray(a) for a in cache.A]
        self.AT = [np.ascontiguousarray(a.T) for a in cache.A]
        self.EBt = [np.ascontiguousarray(e) for e in cache.EBt]
        self.Sxx = np.asarray(stats.Sxx, dtype=np.float64)
        self.shapes = [(int(w.shape[0]), int(w.shape[1])) for w in self.W]
        self.n = sum(r * c for r, c in self.shapes)
        self.count = 0  # Hessian-vector products so far (a block of k counts k)
        self.deadline = math.inf  # time.perf_counter() value after which products raise

    def apply(self, V: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``H V`` for a block: each ``V[i]`` has shape ``(k, d_i, d_{i-1})``."""
        W, WT, A, AT, EBt = self.W, self.WT, self.A, self.AT, self.EBt
        n = len(W)
        dA: list[np.ndarray | None] = [None] * n
        acc: np.ndarray | None = None
        for i in range(n - 1, 0, -1):
            term = np.matmul(A[i], V[i])
            acc = term if acc is None else np.matmul(acc, W[i]) + term
            dA[i - 1] = acc
        first = np.matmul(A[0], V[0])
        dR = first if acc is None else np.matmul(acc, W[0]) + first
        G = np.matmul(dR, self.Sxx)
        F: np.ndarray | None = None
        out = []
        for i in range(n):
            h = np.matmul(AT[i], G if F is None else G + F)
            dAi = dA[i]
            if dAi is not None:
                h += np.matmul(dAi.transpose(0, 2, 1), EBt[i])
            out.append(h)
            if i < n - 1:
                step = np.matmul(EBt[i], V[i].transpose(0, 2, 1))
                F = step if F is None else np.matmul(F, WT[i]) + step
                G = np.matmul(G, WT[i])
        return out

    def matmat(self, X: np.ndarray) -> np.ndarray:
        """``H X`` for ``X`` of shape ``(n,)`` or ``(n, k)``."""
        if time.perf_counter() > self.deadline:
            raise OutOfTime
        X = np.asarray(X, dtype=np.float64)
        single = X.ndim == 1
        X2 = X.reshape(self.n, -1)
        k = X2.shape[1]
        self.count += k
        blocks, pos = [], 0
        for r, c in self.shapes:
            blocks.append(X2[pos : pos + r * c].T.reshape(k, r, c))
            pos += r * c
        out = np.empty((self.n, k))
        pos = 0
        for h, (r, c) in zip(self.apply(blocks), self.shapes, strict=True):
            out[pos : pos + r * c] = h.reshape(k, r * c).T
            pos += r * c
        return out.ravel() if single else out

    def operator(self) -> LinearOperator:
        """``H`` as a symmetric float64 ``LinearOperator``."""
        return LinearOperator(
            (self.n, self.n), matvec=self.matmat, matmat=self.matmat, rmatvec=self.matmat,
            dtype=np.float64,
        )


def hessian_operator(stats: Statistics, cache: PointCache) -> LinearOperator:
    """``H`` as a symmetric float64 ``LinearOperator`` (one HVP per matvec)."""
    return HVPEngine(stats, cache).operator()


def dense_hessian(stats: Statistics, cache: PointCache, engine: HVPEngine | None = None) -> np.ndarray:
    """The full Hessian, from HVPs of identity columns in batches, symmetrised. Small problems only."""
    eng = engine or HVPEngine(stats, cache)
    n = eng.n
    H = np.empty((n, n))
    for j in range(0, n, DENSE_BATCH):
        cols = min(DENSE_BATCH, n - j)
        E = np.zeros((n, cols))
        E[np.arange(j, j + cols), np.arange(cols)] = 1.0
        H[:, j : j + cols] = eng.matmat(E)
    return 0.5 * (H + H.T)


def gn_preconditioner(stats: Statistics, cache: PointCache, shift: float) -> LinearOperator:
    """SPD preconditioner ``(K + shift)^{-1}``, K the Kronecker-factored Gauss-Newton block diagonal.

    Layer i's Gauss-Newton block is ``V_i -> A_i^T A_i V_i (B_i Sxx B_i^T)``. With
    ``A_i^T A_i = Q diag(a) Q^T`` and ``B_i Sxx B_i^T = P diag(c) P^T`` its shifted inverse is
    ``V -> Q [(Q^T V P) / (a c^T + shift)] P^T``: four products per layer, O(params) memory.
    """
    if not shift > 0:
        raise ValueError(f"shift must be positive, got {shift}")
    factors = []
    for i, _ in enumerate(cache.weights):
        a, Q = np.linalg.eigh(cache.A[i].T @ cache.A[i])
        Bi = cache.B[i]
        c, P = np.linalg.eigh(Bi @ stats.Sxx @ Bi.T)
        scale = 1.0 / (np.outer(np.maximum(a, 0.0), np.maximum(c, 0.0)) + shift)
        factors.append((Q, np.ascontiguousarray(Q.T), P, np.ascontiguousarray(P.T), scale))
    shapes = [(int(w.shape[0]), int(w.shape[1])) for w in cache.weights]
    n = sum(r * c for r, c in shapes)

    def apply(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        single = X.ndim == 1
        X2 = X.reshape(n, -1)
        k = X2.shape[1]
        out = np.empty((n, k))
        pos = 0
        for (Q, Qt, P, Pt, scale), (r, c) in zip(factors, shapes, strict=True):
            V = X2[pos : pos + r * c].T.reshape(k, r, c)
            Z = np.matmul(Q, np.matmul(np.matmul(np.matmul(Qt, V), P) * scale, Pt))
            out[pos : pos + r * c] = Z.reshape(k, r * c).T
            pos += r * c
        return out.ravel() if single else out

    return LinearOperator((n, n), matvec=apply, matmat=apply, rmatvec=apply, dtype=np.float64)


def is_zero_operator(engine: HVPEngine, seed: int = 0) -> bool:
    """Whether ``H`` is exactly zero, judged on two seeded Gaussian probes.

    A nonzero row of H meets a Gaussian probe in an exact zero with probability 0, and two
    independent probes guard against an accidental cancellation.
    """
    probes = np.random.default_rng(seed).standard_normal((engine.n, 2))
    return not np.any(engine.matmat(probes))


def spectrum(
    stats: Statistics,
    cache: PointCache,
    *,
    direction: Sequence[np.ndarray] | None = None,
    dense_limit: int = DENSE_LIMIT,
    time_budget: float = DEFAULT_TIME_BUDGET,
    n_extremes: int = 0,
    rtol: float = 1e-8,
    seed: int = 0,
) -> tuple[HessianSpectrum, np.ndarray | None]:
    """Smallest and largest Hessian eigenvalues, and an eigenvector of the smallest.

    Dense ``eigh`` up to ``dense_limit`` parameters. Beyond: an exactly zero operator is
    detected first (ARPACK fails on it); ``eigsh(which='LA')`` gives ``lambda_max``;
    ``lambda_min`` (and ``n_extremes`` smallest) come from Gauss-Newton-preconditioned LOBPCG
    started from ``direction`` (a structured negative-curvature direction, when there is one)
    plus seeded random vectors, within ``time_budget`` seconds in all. ``converged`` is true
    only when the residual ``||H v - lambda v|| <= rtol * |lambda_max|`` for the smallest pair
    (and the requested extremes); it is never inferred.
    """
    t0 = time.perf_counter()
    engine = HVPEngine(stats, cache)
    n = engine.n
    rq: float | None = None
    v_dir = None
    if direction is not None:
        v_dir = flatten(direction)
        nrm = float(np.linalg.norm(v_dir))
        if nrm > 0:
            v_dir = v_dir / nrm
            rq = float(v_dir @ engine.matmat(v_dir))
        else:
            v_dir = None
    if n <= dense_limit:
        return _dense_spectrum(stats, cache, engine, n_extremes, rq, t0)
    if is_zero_operator(engine, seed):
        zero = HessianSpectrum(0.0, 0.0, "lanczos", True, 1, 0.0, time.perf_counter() - t0, rq,
                               [0.0] * n_extremes, engine.count, [0.0] * n_extremes, 0.0, 0.0)
        return zero, None
    rng = np.random.default_rng(seed)
    engine.deadline = t0 + time_budget
    op = engine.operator()
    # lambda_max: Lanczos on the top end converges in a few dozen products. It only sets the
    # scale of the residual test and the negativity threshold, so 1e-4 relative is plenty.
    lam_max: float | None
    try:
        lmax_arr = eigsh(op, k=1, which="LA", v0=rng.standard_normal(n), tol=LAMBDA_MAX_RTOL,
                         maxiter=max(300, n // 10), return_eigenvectors=False)
        lam_max = float(lmax_arr[0])
    except (ArpackNoConvergence, ArpackError, OutOfTime):
        lam_max = None
    engine.deadline = math.inf
    if lam_max is None:
        probe = rng.standard_normal(n)
        lam_max_est = abs(float(probe @ engine.matmat(probe) / (probe @ probe)))
    else:
        lam_max_est = abs(lam_max)
    scale = lam_max_est if lam_max_est > 0 else 1.0
    # lambda_min: preconditioned LOBPCG in time slices.
    shift = abs(rq) if rq is not None and rq < 0 else 1e-3 * scale
    M = gn_preconditioner(stats, cache, max(shift, 1e-12 * scale))
    want = max(1, n_extremes)
    block = max(LOBPCG_BLOCK, n_extremes + 2)
    X = rng.standard_normal((n, block))
    if v_dir is not None:
        X[:, 0] = v_dir
    X, _ = np.linalg.qr(X)
    lam = np.full(block, np.nan)
    res = np.full(block, np.inf)
    iters, slice_iters, converged = 0, 10, False
    while True:
        t_slice = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-convergence is reported through `converged`
            lam, X, history = lobpcg(op, X, M=M, tol=rtol * scale, maxiter=slice_iters,
                                     largest=False, retResidualNormsHistory=True)
        iters += max(1, len(history) - 1)
        order = np.argsort(lam)
        lam, X = lam[order], X[:, order]
        HX = engine.matmat(X)
        res = np.linalg.norm(HX - X * lam, axis=0) / (np.linalg.norm(X, axis=0) * scale)
        if np.all(res[:want] <= rtol):
            converged = True
            break
        left = t0 + time_budget - time.perf_counter()
        per_iter = (time.perf_counter() - t_slice) / slice_iters
        if left < 2 * per_iter:
            break
        slice_iters = int(min(200, 2 * slice_iters, max(1, 0.9 * left / per_iter)))
    result = HessianSpectrum(
        float(lam[0]), lam_max, "lobpcg", converged, iters, float(res[0]),
        time.perf_counter() - t0, rq, [float(x) for x in lam[:n_extremes]], engine.count,
        [float(r) for r in res[:n_extremes]],
        # ||H v - lambda v|| bounds the distance from lambda to the nearest eigenvalue.
        float(res[0]) * scale if math.isfinite(float(res[0])) else None,
        LAMBDA_MAX_RTOL * abs(lam_max) if lam_max is not None else None,
    )
    return result, X[:, 0]


def _dense_spectrum(
    stats: Statistics,
    cache: PointCache,
    engine: HVPEngine,
    n_extremes: int,
    rq: float | None,
    t0: float,
) -> tuple[HessianSpectrum, np.ndarray]:
    H = dense_hessian(stats, cache, engine)
    lam, vecs = np.linalg.eigh(H)
    scale = max(abs(lam[0]), abs(lam[-1]), np.finfo(np.float64).tiny)
    res = np.linalg.norm(H @ vecs[:, : max(1, n_extremes)] - vecs[:, : max(1, n_extremes)]
                         * lam[: max(1, n_extremes)], axis=0) / scale
    err = DENSE_EIG_GAMMA * math.sqrt(engine.n) * EPS64 * float(scale)
    dense = HessianSpectrum(
        float(lam[0]), float(lam[-1]), "dense", True, engine.n, float(res[0]),
        time.perf_counter() - t0, rq, [float(x) for x in lam[:n_extremes]], engine.count,
        [float(r) for r in res[:n_extremes]], err, err,
    )
    return dense, vecs[:, 0]
