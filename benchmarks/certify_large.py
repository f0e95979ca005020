"""Whole `certify` at 10^6 parameters: a constructed strict saddle with a random change of basis
per layer (tests/constructions.py). Not a test: `python benchmarks/certify_large.py [widths]`.

Prints the verdict, the rule, the witness order and the wall time of each stage (statistics are
built first and not counted), and re-checks the witness at the stored point (dlcert.recheck).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlcert import certify
from dlcert.recheck import recheck
from dlcert.statistics import Statistics
from tests.constructions import construct, random_data


def main() -> None:
    widths = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [1000, 600, 600, 200]
    print(f"machine: {platform.processor() or platform.machine()}, nproc = {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}, python {platform.python_version()}, numpy {np.__version__}")
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, widths[0], widths[-1], 2 * widths[0])
    stats = Statistics.from_data(X, Y)
    c = construct(rng, stats, widths, (1, 2, 4))
    assert c is not None
    n = sum(w.size for w in c.weights)
    t = time.perf_counter()
    cert = certify(c.weights, stats)
    wall = time.perf_counter() - t
    w = cert.witness
    print(f"widths {widths}, {n} parameters: {cert.verdict.value} [{cert.rule}] in {wall:.1f} s; "
          f"hessian {cert.hessian.method} lambda_min {cert.hessian.min_eigenvalue} "
          f"(converged {cert.hessian.converged}, {cert.hessian.hvp_count} HVPs, "
          f"{cert.hessian.seconds:.1f} s)")
    if w is not None:
        t = time.perf_counter()
        rc = recheck(c.weights, w.point, stats, claimed_radius=w.radius, order=w.order)
        print(f"witness order {w.order}, decrease {w.loss_decrease:.3e} > bound {w.rounding_bound:.2e}; "
              f"recheck confirmed {rc.confirmed} in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
