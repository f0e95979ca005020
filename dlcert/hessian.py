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

Budget and scale. The solver stops at the check's deadline (:mod:`dlcert.budget`): the first
LOBPCG slice is two iterations (to time one), later slices fill the time left. The residual
test's scale is the Gauss-Newton blocks' interlacing lower bound on ``lambda_max`` (or the Ritz
values, when larger), so no Lanczos run is spent on a scale; ``lambda_max`` itself is measured
afterwards with the time left, from the top Gauss-Newton direction.

Honesty. ``converged`` means the reported pair has ``||H v - lambda v|| <= rtol * scale``, with
``scale <= |lambda_max|``.
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
from typing import TYPE_CHECKING

import numpy as np

from dlcert.budget import OutOfTime
from dlcert.certificate import HessianSpectrum
from dlcert.objective import PointCache, flatten
from dlcert.statistics import Statistics
from dlcert.threads import blas_threads, limit_for
from dlcert.tolerances import DENSE_EIG_GAMMA, EPS64

if TYPE_CHECKING:  # scipy.sparse.linalg costs ~0.3 s to import: only when a spectrum is computed
    from scipy.sparse.linalg import LinearOperator

#: Seconds one check may spend by default, searches and eigen-solver together (dlcert.budget).
DEFAULT_TIME_BUDGET = 30.0

#: Relative accuracy asked of lambda_max (a scale, not a verdict).
LAMBDA_MAX_RTOL = 1e-4

#: Problems with at most this many parameters get a dense Hessian and ``eigh``.
DENSE_LIMIT = 2000
#: LOBPCG block size (at least; ``n_extremes + 2`` when more extremes are requested).
LOBPCG_BLOCK = 4
#: Columns of the identity pushed through the HVP at once when forming a dense Hessian.
DENSE_BATCH = 64


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
        from scipy.sparse.linalg import LinearOperator

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


class GNFactors:
    """Eigen-decompositions of the Kronecker factors of the Gauss-Newton block diagonal.

    Layer i's Gauss-Newton block is ``V_i -> A_i^T A_i V_i (B_i Sxx B_i^T)``: with
    ``A_i^T A_i = Q diag(a) Q^T`` and ``B_i Sxx B_i^T = P diag(c) P^T`` its eigenvalues are
    ``a c^T``. These diagonal blocks are principal submatrices of the Hessian (its residual part
    has zero diagonal blocks), so by Cauchy interlacing :attr:`lambda_max_lower` =
    ``max_i max(a_i) max(c_i)`` is a lower bound on ``lambda_max(H)``: a scale for the residual
    test that costs no Hessian-vector product (issue 14: ``eigsh(LA)`` just for the scale took
    20-39% of a 10^6 check).
    """

    def __init__(self, stats: Statistics, cache: PointCache) -> None:
        self.factors: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        top = 0.0
        for i, _ in enumerate(cache.weights):
            Ai, Bi = cache.A[i], cache.B[i]
            with blas_threads(limit_for(max(Ai.shape[1], Bi.shape[0]))):
                a, Q = np.linalg.eigh(Ai.T @ Ai)
                c, P = np.linalg.eigh(Bi @ stats.Sxx @ Bi.T)
            a, c = np.maximum(a, 0.0), np.maximum(c, 0.0)
            top = max(top, float(a[-1] * c[-1]) if a.size and c.size else 0.0)
            self.factors.append((a, Q, c, P))
        self.lambda_max_lower = top
        self.shapes = [(int(w.shape[0]), int(w.shape[1])) for w in cache.weights]

    def preconditioner(self, shift: float) -> LinearOperator:
        """SPD ``(K + shift)^{-1}``, K the Gauss-Newton block diagonal: four products per layer,
        ``V -> Q [(Q^T V P) / (a c^T + shift)] P^T``, O(params) memory."""
        from scipy.sparse.linalg import LinearOperator

        if not shift > 0:
            raise ValueError(f"shift must be positive, got {shift}")
        factors = [
            (Q, np.ascontiguousarray(Q.T), P, np.ascontiguousarray(P.T), 1.0 / (np.outer(a, c) + shift))
            for a, Q, c, P in self.factors
        ]
        shapes = self.shapes
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


def gn_preconditioner(stats: Statistics, cache: PointCache, shift: float) -> LinearOperator:
    """SPD preconditioner ``(K + shift)^{-1}``, K the Kronecker-factored Gauss-Newton block diagonal
    (:class:`GNFactors`)."""
    return GNFactors(stats, cache).preconditioner(shift)


def is_zero_operator(engine: HVPEngine, seed: int = 0) -> bool:
    """Whether ``H`` is exactly zero, judged on two seeded Gaussian probes.

    A nonzero row of H meets a Gaussian probe in an exact zero with probability 0, and two
    independent probes guard against an accidental cancellation.
    """
    probes = np.random.default_rng(seed).standard_normal((engine.n, 2))
    return not np.any(engine.matmat(probes))


#: Iterations of the first LOBPCG slice: only long enough to time one iteration, so a small
#: budget is not overrun by a fixed first slice (issue 14).
FIRST_SLICE = 2
#: A converged smallest pair is accepted only after this many iterations (or when LOBPCG's own
#: test passed for the whole block): a seeded structured direction can be an exact eigenvector
#: that is not the smallest one, and a few more block iterations find the lower one.
MIN_ITERATIONS = 10


def spectrum(
    stats: Statistics,
    cache: PointCache,
    *,
    direction: Sequence[np.ndarray] | None = None,
    directions: Sequence[Sequence[np.ndarray]] = (),
    dense_limit: int = DENSE_LIMIT,
    time_budget: float = DEFAULT_TIME_BUDGET,
    deadline: float = math.inf,
    n_extremes: int = 0,
    rtol: float = 1e-8,
    seed: int = 0,
) -> tuple[HessianSpectrum, np.ndarray | None]:
    """Smallest and largest Hessian eigenvalues, and an eigenvector of the smallest.

    Dense ``eigh`` up to ``dense_limit`` parameters. Beyond: an exactly zero operator is
    detected first (ARPACK fails on it); ``lambda_min`` (and ``n_extremes`` smallest) come from
    Gauss-Newton-preconditioned LOBPCG started from ``direction`` and ``directions`` (structured
    negative-curvature directions, when there are any) plus seeded random vectors. The work
    stops at ``min(deadline, start + time_budget)`` (``time.perf_counter()`` values).

    The scale of the residual test is ``max(lambda_max lower bound of the Gauss-Newton blocks,
    |Ritz values|)``, never larger than ``|lambda_max|``, so the test is at least as strict as
    against ``lambda_max`` itself. ``lambda_max`` is measured afterwards (Lanczos from the top
    Gauss-Newton direction) only with the time that is left; otherwise the interlacing lower
    bound is reported with no error bar. ``converged`` is true only when the residual
    ``||H v - lambda v|| <= rtol * scale`` for the smallest pair (and the requested extremes);
    it is never inferred.
    """
    t0 = time.perf_counter()
    stop = min(deadline, t0 + time_budget)
    engine = HVPEngine(stats, cache)
    n = engine.n
    if t0 >= stop:  # nothing left, not even one product (at 4e6 parameters an HVP takes seconds)
        method = "dense" if n <= dense_limit else "lobpcg"
        return HessianSpectrum(None, None, method, False, 0, None, 0.0, None, [], 0), None
    rq: float | None = None
    seeds: list[np.ndarray] = []
    for d in ([direction] if direction is not None else []) + list(directions):
        v = flatten(d)
        nrm = float(np.linalg.norm(v))
        if nrm > 0 and math.isfinite(nrm):
            seeds.append(v / nrm)
    v_dir = seeds[0] if seeds else None
    if v_dir is not None:
        rq = float(v_dir @ engine.matmat(v_dir))
    if n <= dense_limit:
        if time.perf_counter() >= stop:
            return HessianSpectrum(rq, None, "dense", False, 0, None, time.perf_counter() - t0, rq,
                                   [], engine.count), v_dir
        return _dense_spectrum(stats, cache, engine, n_extremes, rq, t0)
    if is_zero_operator(engine, seed):
        zero = HessianSpectrum(0.0, 0.0, "lanczos", True, 1, 0.0, time.perf_counter() - t0, rq,
                               [0.0] * n_extremes, engine.count, [0.0] * n_extremes, 0.0, 0.0)
        return zero, None
    from scipy.sparse.linalg import lobpcg

    def unfinished(
        lam_min: float | None, vec: np.ndarray | None
    ) -> tuple[HessianSpectrum, np.ndarray | None]:
        return HessianSpectrum(lam_min, None, "lobpcg", False, 0, None, time.perf_counter() - t0, rq,
                               [], engine.count), vec

    if time.perf_counter() >= stop:
        return unfinished(rq, v_dir)
    rng = np.random.default_rng(seed)
    op = engine.operator()
    gn = GNFactors(stats, cache)
    lower = gn.lambda_max_lower
    if time.perf_counter() >= stop:
        return unfinished(rq, v_dir)
    # The preconditioner's shift: the scale of the negative eigenvalue sought.
    ref = lower if lower > 0 else float(np.sqrt(np.sum(cache.E * cache.E)))
    ref = ref if ref > 0 else 1.0
    shift = abs(rq) if rq is not None and rq < 0 else 1e-3 * ref
    M = gn.preconditioner(max(shift, 1e-12 * ref))
    want = max(1, n_extremes)
    block = max(LOBPCG_BLOCK, n_extremes + 2, min(len(seeds) + 2, 2 * LOBPCG_BLOCK))
    # Extra seeds widen the block only while LOBPCG keeps iterating (it switches to dense eigh
    # when n < 5 * block).
    block = max(min(block, n // 5 - 1), LOBPCG_BLOCK, n_extremes + 2)
    X = rng.standard_normal((n, block))
    for j, v in enumerate(seeds[: block - 2]):
        X[:, j] = v
    X, _ = np.linalg.qr(X)
    lam = np.full(block, np.nan)
    res = np.full(block, np.inf)
    scale = ref
    iters, slice_iters, converged = 0, FIRST_SLICE, False
    while True:
        t_slice = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-convergence is reported through `converged`
            out = lobpcg(op, X, M=M, tol=rtol * scale, maxiter=slice_iters,
                         largest=False, retResidualNormsHistory=True)
        lam, X = out[0], out[1]
        done = max(1, len(out[2]) - 1) if len(out) > 2 else slice_iters
        iters += done
        order = np.argsort(lam)
        lam, X = lam[order], X[:, order]
        scale = max(lower, float(np.max(np.abs(lam))), abs(rq or 0.0))
        HX = engine.matmat(X)
        res = np.linalg.norm(HX - X * lam, axis=0) / (np.linalg.norm(X, axis=0) * scale)
        if np.all(res[:want] <= rtol) and (iters >= MIN_ITERATIONS or done < slice_iters):
            converged = True
            break
        now = time.perf_counter()
        per_iter = (now - t_slice) / done
        left = stop - now
        if left < 2 * per_iter:
            break
        grow = max(4 * slice_iters, MIN_ITERATIONS - iters)
        slice_iters = int(min(200, grow, max(1, 0.8 * left / per_iter)))
    lam_max, lam_max_err = _lambda_max(engine, gn, stop, rng)
    if lam_max is None:
        lam_max = lower if lower > 0 else None
    elif abs(lam_max) > scale:
        # The test was judged against a smaller scale (stricter); report against the measured one.
        res = res * scale / abs(lam_max)
        scale = abs(lam_max)
    result = HessianSpectrum(
        float(lam[0]), lam_max, "lobpcg", converged, iters, float(res[0]),
        time.perf_counter() - t0, rq, [float(x) for x in lam[:n_extremes]], engine.count,
        [float(r) for r in res[:n_extremes]],
        # ||H v - lambda v|| bounds the distance from lambda to the nearest eigenvalue.
        float(res[0]) * scale if math.isfinite(float(res[0])) else None,
        lam_max_err,
    )
    return result, X[:, 0]


def _lambda_max(
    engine: HVPEngine, gn: GNFactors, stop: float, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """``lambda_max`` to :data:`LAMBDA_MAX_RTOL` by Lanczos started from the top Gauss-Newton
    direction, within the time left (a reported number, not the scale of any test)."""
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

    if time.perf_counter() >= stop:
        return None, None
    v0 = rng.standard_normal(engine.n) * 1e-3
    best, pos = -1.0, 0
    start = 0
    for (a, Q, c, P), (r, cc) in zip(gn.factors, gn.shapes, strict=True):
        if a.size and c.size and a[-1] * c[-1] > best:
            best, start = float(a[-1] * c[-1]), pos
            top = np.outer(Q[:, -1], P[:, -1]).ravel()
        pos += r * cc
    if best > 0:
        v0[start : start + top.size] += top
    engine.deadline = stop
    try:
        val = eigsh(engine.operator(), k=1, which="LA", v0=v0, tol=LAMBDA_MAX_RTOL,
                    maxiter=max(300, engine.n // 10), return_eigenvectors=False)
        lam = float(val[0])
        return lam, LAMBDA_MAX_RTOL * abs(lam)
    except (ArpackNoConvergence, ArpackError, OutOfTime):
        return None, None
    finally:
        engine.deadline = math.inf


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
