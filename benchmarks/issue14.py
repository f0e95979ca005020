"""Issue 14 in one run: the whole check at 10^6 and 4*10^6 parameters against its budget, import
time, BLAS threads under the machine's load, the HVP against PyTorch double-backward, and
``check`` against ``stats`` on a 2 GB raw ``.npz`` with peak memory (``raw_npz.py`` in a child).

Not a test: ``python benchmarks/issue14.py [--quick] [--only SECTIONS] [--baseline DIR]``
(``--only saddle500,4e6`` runs just those whole checks; sections: import, threads, torch,
raw, saddle1e6, saddle500, 4e6). Prints the machine and
its load average first: the machine is shared, so read the ratios (taken in the same run), not
the absolute times. ``--baseline DIR`` (a copy of an older ``dlcert`` package's parent folder)
also times that tree's ``import dlcert.cli`` (and with ``--baseline-check`` its 10^6 check), for
before/after ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlcert.certification import certify  # noqa: E402
from dlcert.hessian import HVPEngine  # noqa: E402
from dlcert.objective import PointCache  # noqa: E402
from dlcert.recheck import recheck  # noqa: E402
from dlcert.statistics import Statistics  # noqa: E402
from dlcert.threads import blas_threads  # noqa: E402
from tests.constructions import construct, random_data  # noqa: E402


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import scipy

    env = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    return (f"{cpu}, nproc {os.cpu_count()}, python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}, OPENBLAS_NUM_THREADS {env}")


def strict_point(
    widths: list[int], m: int, seed: int, random_basis: bool
) -> tuple[list[np.ndarray], Statistics]:
    rng = np.random.default_rng(seed)
    X, Y = random_data(rng, widths[0], widths[-1], m)
    stats = Statistics.from_data(X, Y)
    del X, Y
    c = construct(rng, stats, widths, (1, 2, 4))
    assert c is not None, "no critical draw"
    W = list(c.weights)
    if random_basis:
        n = len(widths) - 1
        G = [np.eye(widths[0])] + [rng.standard_normal((widths[i], widths[i])) / np.sqrt(widths[i])
                                   for i in range(1, n)] + [np.eye(widths[-1])]
        W = [G[i + 1] @ W[i] @ np.linalg.inv(G[i]) for i in range(n)]
    return W, stats


def whole_check(label: str, widths: list[int], m: int, seed: int, random_basis: bool, budget: float) -> None:
    t = time.perf_counter()
    W, stats = strict_point(widths, m, seed, random_basis)
    build = time.perf_counter() - t
    n = sum(w.size for w in W)
    t, c = time.perf_counter(), time.process_time()
    cert = certify(W, stats, time_budget=budget)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    h = cert.hessian
    w = cert.witness
    print(f"\n[{label}] widths {widths}, {n:,} parameters, m = {m:,} "
          f"(point built in {build:.1f} s; {load()})")
    print(f"  verdict {cert.verdict.value} [{cert.rule}] in {wall:.1f} s against a {budget:g} s budget "
          f"({wall / budget:.2f} of it); process CPU time {cpu:.1f} s (what a quiet machine's wall time "
          "approaches on one BLAS thread)")
    print(f"  hessian {h.method}: lambda_min {h.min_eigenvalue}, converged {h.converged}, "
          f"{h.hvp_count} HVPs, {h.seconds:.1f} s; lambda_max {h.max_eigenvalue}")
    for r in cert.reasons:
        if r.code.startswith("note.time"):
            print(f"  {r.code}: {r.message}")
    if w is not None:
        t = time.perf_counter()
        rc = recheck(W, w.point, stats, claimed_radius=w.radius, order=w.order)
        print(f"  witness order {w.order}, decrease {w.loss_decrease:.3e} > rounding bound "
              f"{w.rounding_bound:.2e} (ratio {w.loss_decrease / w.rounding_bound:.3g}); dlcert recheck "
              f"confirmed {rc.confirmed} (decrease {rc.decrease:.3e}, bound {rc.rounding_bound:.2e}) "
              f"in {time.perf_counter() - t:.1f} s")


def import_time(path: Path, runs: int = 5) -> float:
    code = "import time; t = time.perf_counter(); import dlcert.cli; print(time.perf_counter() - t)"
    env = dict(os.environ, PYTHONPATH=str(path))
    best = min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    cwd=path, check=True).stdout) for _ in range(runs))
    return best


def help_time(runs: int = 3) -> float:
    exe = Path(sys.executable).with_name("dlcert")
    best = np.inf
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([str(exe), "--help"], capture_output=True, check=True)
        best = min(best, time.perf_counter() - t)
    return float(best)


def timed(f, reps: int) -> float:  # type: ignore[no-untyped-def]
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return float(best)


def threads_section() -> None:
    print(f"\n[BLAS threads] same process, interleaved, best of 5 ({load()})")
    rng = np.random.default_rng(3)
    for widths in ([200, 150, 150, 100], [1000, 600, 600, 200]):
        W, stats = strict_point(widths, 2 * widths[0], 3, False)
        eng = HVPEngine(stats, PointCache.at(W, stats))
        v = rng.standard_normal(eng.n)
        t1 = t2 = 0.0
        with blas_threads(1):
            t1 = timed(lambda: eng.matmat(v), 5)  # noqa: B023
        with blas_threads(None):
            t2 = timed(lambda: eng.matmat(v), 5)  # noqa: B023
        print(f"  one HVP, {eng.n:,} parameters: 1 thread {1e3 * t1:.2f} ms, "
              f"default threads {1e3 * t2:.2f} ms (default / 1 = {t2 / t1:.2f})")
    a = rng.standard_normal((500, 500))
    a = a + a.T
    with blas_threads(1):
        e1 = timed(lambda: np.linalg.eigh(a), 5)
    with blas_threads(None):
        e2 = timed(lambda: np.linalg.eigh(a), 5)
    print(f"  eigh(500): 1 thread {1e3 * e1:.1f} ms, default threads {1e3 * e2:.1f} ms "
          f"(default / 1 = {e2 / e1:.2f})")


def torch_section(m: int) -> None:
    try:
        import torch
    except ImportError:
        print("\n[HVP vs torch] torch is not installed: skipped")
        return
    torch.set_num_threads(1)
    widths = [200, 150, 150, 100]
    rng = np.random.default_rng(4)
    X, Y = random_data(rng, widths[0], widths[-1], m)
    stats = Statistics.from_data(X, Y)
    W = [rng.standard_normal((widths[i + 1], widths[i])) / np.sqrt(widths[i]) for i in range(len(widths) - 1)]
    n = sum(w.size for w in W)
    eng = HVPEngine(stats, PointCache.at(W, stats))
    v = rng.standard_normal(n)
    with blas_threads(1):
        ours = eng.matmat(v)
        t_ours = timed(lambda: eng.matmat(v), 5)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    params = [torch.tensor(w, requires_grad=True) for w in W]
    vs, pos = [], 0
    for w in W:
        vs.append(torch.from_numpy(v[pos : pos + w.size].reshape(w.shape).copy()))
        pos += w.size

    def torch_hvp() -> np.ndarray:
        out = Xt
        for p in params:
            out = p @ out
        loss = 0.5 * torch.sum((out - Yt) ** 2)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum(torch.sum(g * d) for g, d in zip(grads, vs, strict=True))
        hv = torch.autograd.grad(dot, params)
        return np.concatenate([h.detach().numpy().ravel() for h in hv])

    theirs = torch_hvp()
    t_torch = timed(torch_hvp, 3)
    err = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    print(f"\n[HVP vs torch {torch.__version__} double-backward] {n:,} parameters, m = {m:,}, "
          f"one thread each ({load()})")
    print(f"  dlcert {1e3 * t_ours:.2f} ms, torch {1e3 * t_torch:.1f} ms: {t_torch / t_ours:,.0f}x; "
          f"relative difference {err:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 4e6 run")
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--baseline-check", action="store_true",
                    help="also run the baseline tree's 10^6 check (slow: minutes on a loaded machine)")
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--only", default="import,threads,torch,raw,saddle1e6,saddle500,4e6",
                    help="comma-separated sections to run")
    args = ap.parse_args()
    only = set(args.only.split(","))
    print(f"machine: {machine()}")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {load()}")
    if "import" in only:
        now = import_time(ROOT)
        line = f"\n[import dlcert.cli] best of 5 fresh interpreters: {now:.3f} s"
        if args.baseline is not None:
            before = import_time(args.baseline)
            line += f" (baseline tree {before:.3f} s, ratio {before / now:.1f}x)"
        print(line + f"; `dlcert --help` {help_time():.3f} s ({load()})")
    if "threads" in only:
        threads_section()
    if "torch" in only:
        torch_section(100_000)
    if "raw" in only:
        # Item 3 (raw .npz at one copy): benchmarks/raw_npz.py in a child, so its 2 GB of data
        # and its children's peak memory stay out of this process.
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "raw_npz.py"), "--reps", "2",
                              "--npy", "--threads", "1"], capture_output=True, text=True)
        print("\n[raw .npz data: check vs stats, peak memory] "
              "benchmarks/raw_npz.py --reps 2 --npy --threads 1\n" + out.stdout + out.stderr[-500:])
    if "saddle1e6" in only:
        whole_check("1e6 strict saddle, constructed", [1000, 600, 600, 200], 2000, 0, False, args.budget)
    if "saddle500" in only:
        whole_check("1e6 strict saddle, uniform widths, random change of basis", [500] * 5, 100_000, 1,
                    True, args.budget)
    if args.baseline is not None and args.baseline_check:
        code = (f"import sys, time; sys.path.insert(0, {str(args.baseline)!r}); sys.argv = ['x']; "
                "import runpy; runpy.run_path('benchmarks/certify_large.py', run_name='__main__')")
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=args.baseline,
                             env=dict(os.environ, PYTHONPATH=str(args.baseline)))
        print(f"\n[baseline tree, 1e6 constructed] ({time.perf_counter() - t:.1f} s with construction)\n"
              + out.stdout + out.stderr[-500:])
    if not args.quick and "4e6" in only:
        whole_check("4e6 parameters, uniform widths, random change of basis", [1000] * 5, 4000, 2, True,
                    args.budget)
    print(f"\nend: {time.strftime('%H:%M:%S UTC', time.gmtime())}, {load()}")


if __name__ == "__main__":
    main()
