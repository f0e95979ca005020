"""Stream a large .npy pair through ``dlcert stats`` and measure peak memory (not run by pytest).

Usage::

    python benchmarks/stream_stats.py [--gb 2.0] [--dx 200] [--dy 10] [--dir /tmp/dlcert-bench]

Writes X.npy (m, dx) and Y.npy (m, dy), float64, block by block through ``open_memmap`` in a
child process, then runs ``python -m dlcert stats X.npy Y.npy -o S.npz`` in another child and
reads that child's own peak resident set size (``os.wait4``) and wall time. Finally a third
child checks the result against statistics summed over a different chunking.

The driver itself never touches the data: on Linux ``ru_maxrss`` survives fork + exec, so a
child forked from a process that had the data mapped would report the parent's peak.
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

ROOT = Path(__file__).resolve().parent.parent


def write_pair(d: Path, m: int, dx: int, dy: int, block: int = 200_000) -> None:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((dy, dx))
    X = np.lib.format.open_memmap(d / "X.npy", mode="w+", dtype=np.float64, shape=(m, dx))
    Y = np.lib.format.open_memmap(d / "Y.npy", mode="w+", dtype=np.float64, shape=(m, dy))
    for a in range(0, m, block):
        b = min(m, a + block)
        x = rng.standard_normal((b - a, dx))
        X[a:b] = x
        Y[a:b] = x @ A.T + 0.1 * rng.standard_normal((b - a, dy))
        X.flush()
        Y.flush()
    del X, Y


def reference(d: Path, block: int = 100_000) -> tuple[np.ndarray, float, int]:
    X = np.load(d / "X.npy", mmap_mode="r")
    Y = np.load(d / "Y.npy", mmap_mode="r")
    Sxx = np.zeros((X.shape[1], X.shape[1]))
    syy = 0.0
    for a in range(0, X.shape[0], block):
        x = np.asarray(X[a : a + block])
        y = np.asarray(Y[a : a + block])
        Sxx += x.T @ x
        syy += float(np.sum(y * y))
    return Sxx, syy, X.shape[0]


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one child process, from its own rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return time.perf_counter() - t0, int(usage.ru_maxrss)


def check(d: Path) -> None:
    S = np.load(d / "S.npz")
    Sxx, syy, m_ref = reference(d)
    err = float(np.max(np.abs(S["Sxx"] - Sxx)) / np.max(np.abs(Sxx)))
    print(f"check: m {int(S['m'])} == {m_ref}; max |Sxx - Sxx_ref| / max|Sxx| = {err:.2e}; "
          f"syy rel. diff {abs(float(S['syy']) - syy) / syy:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--dx", type=int, default=200)
    ap.add_argument("--dy", type=int, default=10)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/dlcert-bench"))
    ap.add_argument("--keep", action="store_true", help="keep the data files")
    ap.add_argument("--write", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    d: Path = args.dir
    d.mkdir(parents=True, exist_ok=True)
    if args.write:
        write_pair(d, args.write, args.dx, args.dy)
        return
    if args.check:
        check(d)
        return
    m = int(args.gb * 1e9 / (8 * (args.dx + args.dy)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    me = [sys.executable, str(Path(__file__).resolve())]
    t0 = time.perf_counter()
    subprocess.run([*me, "--write", str(m), "--dx", str(args.dx), "--dy", str(args.dy), "--dir", str(d)],
                   check=True, env=env)
    size = (d / "X.npy").stat().st_size + (d / "Y.npy").stat().st_size
    print(f"wrote X.npy + Y.npy: m = {m}, dx = {args.dx}, dy = {args.dy}, {size / 1e9:.3f} GB "
          f"in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    wall, peak_kb = measured([sys.executable, "-m", "dlcert", "stats", str(d / "X.npy"),
                              str(d / "Y.npy"), "-o", str(d / "S.npz")], env)
    _, base_kb = measured([sys.executable, "-c", "import dlcert.cli"], env)
    print(f"dlcert stats: {wall:.1f} s, {size / 1e9 / wall:.2f} GB/s, peak RSS {peak_kb / 1024:.0f} MiB "
          f"({peak_kb * 1024 / size:.1%} of the data); importing dlcert.cli alone: "
          f"{base_kb / 1024:.0f} MiB")
    subprocess.run([*me, "--check", "--dir", str(d)], check=True, env=env)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    if not args.keep:
        for name in ("X.npy", "Y.npy", "S.npz"):
            (d / name).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
