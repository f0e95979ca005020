"""Hessian benchmark: HVP and lambda_min against a dense Hessian, and lambda_min at 10^6 parameters.

Not a test and not timed by the test run: ``make bench`` (or ``python benchmarks/hessian_bench.py``).
Every ratio is measured in the same run on the same point. Points are constructed strict
saddles (learned set S = {1, 2, 4}, a larger direction missing) with random changes of basis
(``tests.constructions.construct``). Times are the best of a few repeats.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlcert.hessian import HVPEngine, dense_hessian, spectrum
from dlcert.objective import PointCache, hvp
from dlcert.optimum import whiten
from dlcert.statistics import Statistics
from dlcert.witness import find_witness
from tests.constructions import construct, random_data

DENSE_SIZES = [[20, 15, 15, 10], [40, 25, 25, 15], [60, 35, 35, 20]]
LARGE_SIZES = [[120, 60, 60, 40], [400, 160, 160, 100], [1000, 600, 600, 200]]
INDEX_SET = (1, 2, 4)


def best(f: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def point(widths: list[int], seed: int = 0):
    rng = np.random.default_rng(seed)
    X, Y = random_data(rng, widths[0], widths[-1], 2 * widths[0])
    stats = Statistics.from_data(X, Y)
    c = construct(rng, stats, widths, INDEX_SET)
    assert c is not None
    cache = PointCache.at(c.weights, stats)
    _, d = find_witness(c.weights, stats, whiten(stats, 1e-13), cache, 1e-10, index_set=list(INDEX_SET))
    return stats, c.weights, cache, (d.V if d is not None else None)


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, nproc = {os.cpu_count()}, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    print("\n## HVP and lambda_min against the dense Hessian (same point, same run)")
    print(f"{'n':>7} {'HVP ms':>8} {'HVP x4 ms/vec':>14} {'readable HVP ms':>16} {'dense H+eigh s':>15} "
          f"{'lobpcg s':>9} {'HVPs':>6} {'dense/HVP':>10} {'dense/lobpcg':>12} {'|dl|/|l|':>9}")
    for widths in DENSE_SIZES:
        stats, W, cache, d = point(widths)
        eng = HVPEngine(stats, cache)
        rng = np.random.default_rng(1)
        v = rng.standard_normal(eng.n)
        V4 = rng.standard_normal((eng.n, 4))
        Vs = [rng.standard_normal(w.shape) for w in W]
        t_hvp = best(lambda eng=eng, v=v: eng.matmat(v), 10)
        t_hvp4 = best(lambda eng=eng, V4=V4: eng.matmat(V4), 10) / 4
        t_read = best(lambda Vs=Vs, stats=stats, cache=cache: hvp(Vs, stats, cache), 10)
        t_dense = best(lambda stats=stats, cache=cache: np.linalg.eigh(dense_hessian(stats, cache)), 2)
        lam_dense = float(np.linalg.eigvalsh(dense_hessian(stats, cache))[0])
        spec, _ = spectrum(stats, cache, direction=d, dense_limit=0, time_budget=60)
        assert spec.min_eigenvalue is not None
        err = abs(spec.min_eigenvalue - lam_dense) / abs(lam_dense)
        print(f"{eng.n:>7} {t_hvp * 1e3:>8.3f} {t_hvp4 * 1e3:>14.3f} {t_read * 1e3:>16.3f} "
              f"{t_dense:>15.3f} {spec.seconds:>9.3f} {spec.hvp_count:>6} {t_dense / t_hvp:>10.0f} "
              f"{t_dense / spec.seconds:>12.1f} {err:>9.1e}")
    print("\n## Without a dense Hessian (iterative only)")
    print(f"{'n':>8} {'HVP ms':>8} {'readable HVP ms':>16} {'lambda_min':>13} {'lambda_max':>11} "
          f"{'residual':>9} {'conv':>5} {'HVPs':>5} {'lambda s':>9} {'wall s':>7}")
    for widths in LARGE_SIZES:
        t0 = time.perf_counter()
        stats, W, cache, d = point(widths)
        eng = HVPEngine(stats, cache)
        rng = np.random.default_rng(1)
        v = rng.standard_normal(eng.n)
        Vs = [rng.standard_normal(w.shape) for w in W]
        t_hvp = best(lambda eng=eng, v=v: eng.matmat(v))
        t_read = best(lambda Vs=Vs, stats=stats, cache=cache: hvp(Vs, stats, cache))
        spec, _ = spectrum(stats, cache, direction=d, dense_limit=0, time_budget=120)
        wall = time.perf_counter() - t0
        print(f"{eng.n:>8} {t_hvp * 1e3:>8.2f} {t_read * 1e3:>16.2f} {spec.min_eigenvalue:>13.6e} "
              f"{spec.max_eigenvalue or float('nan'):>11.4e} {spec.residual:>9.1e} "
              f"{'yes' if spec.converged else 'NO':>5} {spec.hvp_count:>5} {spec.seconds:>9.2f} {wall:>7.2f}")


if __name__ == "__main__":
    main()
