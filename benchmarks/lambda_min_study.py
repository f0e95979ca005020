"""Compare lambda_min solvers on constructed strict saddles with random changes of basis.

Not part of the test run. Usage: ``python benchmarks/lambda_min_study.py [budget_s] [sizes]``
(sizes: comma-separated indices into SIZES). Every method gets the same HVP operator
(:class:`dlcert.hessian.HVPEngine`), the same time budget and the same residual test
``||H v - lambda v|| / lambda_max``; a method that runs out of time reports "no answer".
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh, lobpcg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlcert.hessian import HVPEngine, OutOfTime, spectrum
from dlcert.objective import PointCache, flatten
from dlcert.optimum import whiten
from dlcert.statistics import Statistics
from dlcert.witness import find_witness
from tests.constructions import construct, random_data

SIZES = [[30, 20, 20, 10], [80, 60, 60, 30], [300, 200, 200, 60], [1000, 600, 600, 200]]


def hard_point(widths: list[int], index_set: tuple[int, ...], seed: int = 1):
    """A constructed critical point, then a fully random change of basis in every hidden layer."""
    rng = np.random.default_rng(seed)
    X, Y = random_data(rng, widths[0], widths[-1], 2 * widths[0])
    stats = Statistics.from_data(X, Y)
    c = construct(rng, stats, widths, index_set)
    assert c is not None
    n = len(c.weights)
    G = [np.eye(widths[0])] + [
        rng.standard_normal((widths[i], widths[i])) / np.sqrt(widths[i]) for i in range(1, n)
    ] + [np.eye(widths[-1])]
    W = [G[i + 1] @ c.weights[i] @ np.linalg.inv(G[i]) for i in range(n)]
    return stats, W


def main() -> None:
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    which = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0, 1, 2]
    index_set = (1, 2, 4)
    for j in which:
        study_one(SIZES[j], index_set, budget)


def study_one(widths: list[int], index_set: tuple[int, ...], budget: float) -> None:
    """Run every method on one constructed point."""
    stats, W = hard_point(widths, index_set)
    cache = PointCache.at(W, stats)
    ref = HVPEngine(stats, cache)
    n = ref.n
    wh = whiten(stats, 1e-13)
    _, d = find_witness(W, stats, wh, cache, 1e-10, index_set=list(index_set))
    v0 = flatten(d.V) if d is not None else np.random.default_rng(0).standard_normal(n)
    v0 = v0 / np.linalg.norm(v0)
    rq = float(v0 @ ref.matmat(v0))
    lmax = float(eigsh(ref.operator(), k=1, which="LA", tol=1e-6,
                       v0=np.random.default_rng(0).standard_normal(n),
                       return_eigenvectors=False)[0])
    print(f"\n== widths {widths}  n = {n}  S = {index_set}  lambda_max = {lmax:.4e}  "
          f"RQ(structured) = {rq:.4e}", flush=True)
    if n <= 2000:
        from dlcert.hessian import dense_hessian
        ev = np.linalg.eigvalsh(dense_hessian(stats, cache))
        print(f"   dense oracle: lambda_min = {ev[0]:.6e}", flush=True)

    def resid(lam: float, v: np.ndarray) -> float:
        return float(np.linalg.norm(ref.matmat(v) - lam * v) / np.linalg.norm(v) / abs(lmax))

    rng = np.random.default_rng(0)

    def sa(start: np.ndarray):
        def f(op: LinearOperator):
            lam, vec = eigsh(op, k=1, which="SA", v0=start, tol=1e-8)
            return float(lam[0]), vec[:, 0]
        return f

    def shifted(op: LinearOperator):
        sigma = 1.01 * lmax
        sh = LinearOperator((n, n), matvec=lambda x: sigma * x - op.matvec(x), dtype=np.float64)
        lam, vec = eigsh(sh, k=1, which="LA", v0=v0, tol=1e-8)
        return float(sigma - lam[0]), vec[:, 0]

    def plain_lobpcg(op: LinearOperator):
        X = rng.standard_normal((n, 4))
        X[:, 0] = v0
        best = None
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    lam, X = lobpcg(op, X, tol=1e-8 * lmax, maxiter=20, largest=False)
                except OutOfTime:
                    return best
            o = np.argsort(lam)
            lam, X = lam[o], X[:, o]
            best = (float(lam[0]), X[:, 0].copy())
            if resid(*best) <= 1e-8:
                return best

    for name, fn in [("eigsh SA (random v0)", sa(rng.standard_normal(n))),
                     ("eigsh SA (structured v0)", sa(v0)),
                     ("eigsh LA on 1.01 lmax I - H", shifted),
                     ("LOBPCG, no preconditioner", plain_lobpcg)]:
        eng = HVPEngine(stats, cache)
        t = time.perf_counter()
        eng.deadline = t + budget
        try:
            out = fn(eng.operator())
        except (OutOfTime, ArpackNoConvergence):
            out = None
        dt = time.perf_counter() - t
        if out is None:
            print(f"   {name:34s} no answer in {budget:g} s ({eng.count} HVPs)", flush=True)
        else:
            lam, v = out
            r = resid(lam, v)
            tag = "converged" if r <= 1e-8 else "NOT converged"
            print(f"   {name:34s} lambda_min = {lam: .6e}  res = {r:.1e} ({tag})  "
                  f"HVPs = {eng.count}  {dt:.2f} s", flush=True)
    spec, _ = spectrum(stats, cache, direction=d.V if d else None, dense_limit=0,
                       time_budget=budget)
    print(f"   {'dlcert: GN-preconditioned LOBPCG':34s} lambda_min = {spec.min_eigenvalue: .6e}  "
          f"res = {spec.residual:.1e} ({'converged' if spec.converged else 'NOT converged'})  "
          f"HVPs = {spec.hvp_count}  {spec.seconds:.2f} s (incl. lambda_max)", flush=True)


if __name__ == "__main__":
    main()
