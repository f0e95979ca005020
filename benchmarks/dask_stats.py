"""Both engines of ``dlcert stats`` on the same large X/Y pair (not run by pytest).

Usage::

    python benchmarks/dask_stats.py [--gb 2.0] [--dx 200] [--dy 10] [--workers N]
                                    [--formats npy,zarr,h5,parquet] [--dir /tmp/dlcert-dask-bench]

For each format it writes the data once (float64, rows layout: one row per sample) and then, in
fresh child processes (the driver never maps the data, so ``ru_maxrss`` is honest):

1. ``dlcert stats ... -o S.npz`` (single-process engine): wall time and peak RSS;
2. ``dlcert stats ... --engine dask -o S.npz`` (a LocalCluster of ``--workers`` processes started
   by the command): wall time end to end and the client's peak RSS;
3. a child that starts the same LocalCluster itself and times its parts: cluster start-up, the
   first task (workers import dlcert and the format's reader), a read-only pass (``X.sum()``,
   ``Y.sum()`` over the same blocks), the statistics pass, shutdown; and each worker's own peak
   RSS (``getrusage`` inside the worker);
4. a child that times the single engine's chunk loop split into reading (I/O, float64 copy,
   checks) and the GEMMs.

Finally the two statistics files are compared with each other (max relative difference).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve()


def write(d: Path, fmt: str, m: int, dx: int, dy: int, block: int = 100_000) -> list[str]:
    """Write the pair in ``fmt`` (same values for every format); return the dlcert inputs."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((dy, dx))

    def blocks() -> Any:
        r = np.random.default_rng(1)
        for a in range(0, m, block):
            n = min(m, a + block) - a
            x = r.standard_normal((n, dx))
            yield a, x, x @ A.T + 0.1 * r.standard_normal((n, dy))

    if fmt == "npy":
        X = np.lib.format.open_memmap(d / "X.npy", mode="w+", dtype=np.float64, shape=(m, dx))
        Y = np.lib.format.open_memmap(d / "Y.npy", mode="w+", dtype=np.float64, shape=(m, dy))
        for a, x, y in blocks():
            X[a : a + len(x)] = x
            Y[a : a + len(y)] = y
        X.flush()
        Y.flush()
        return [str(d / "X.npy"), str(d / "Y.npy")]
    if fmt == "h5":
        import h5py

        with h5py.File(d / "data.h5", "w") as f:
            X = f.create_dataset("X", shape=(m, dx), dtype="f8", chunks=(min(m, 20_000), dx))
            Y = f.create_dataset("Y", shape=(m, dy), dtype="f8", chunks=(min(m, 20_000), dy))
            for a, x, y in blocks():
                X[a : a + len(x)] = x
                Y[a : a + len(y)] = y
        return [str(d / "data.h5")]
    if fmt == "zarr":
        import zarr

        g = zarr.open_group(str(d / "data.zarr"), mode="w")
        X = g.create_array("X", shape=(m, dx), dtype="f8", chunks=(min(m, 20_000), dx))
        Y = g.create_array("Y", shape=(m, dy), dtype="f8", chunks=(min(m, 20_000), dy))
        for a, x, y in blocks():
            X[a : a + len(x)] = x
            Y[a : a + len(y)] = y
        return [str(d / "data.zarr")]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = [f"x{i}" for i in range(dx)] + [f"y{i}" for i in range(dy)]
        schema = pa.schema([(n, pa.float64()) for n in names])
        with pq.ParquetWriter(d / "data.parquet", schema) as w:
            for _, x, y in blocks():
                cols = [pa.array(x[:, i]) for i in range(dx)] + [pa.array(y[:, i]) for i in range(dy)]
                w.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=20_000)
        return [str(d / "data.parquet")]
    raise SystemExit(f"unknown format {fmt}")


def extra(fmt: str) -> list[str]:
    return ["--x-columns", "x*", "--y-columns", "y*"] if fmt == "parquet" else []


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one child process, from its own rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd} failed with {code}")
    return time.perf_counter() - t0, int(usage.ru_maxrss)


def dask_parts(inputs: list[str], fmt: str, workers: int) -> dict[str, Any]:
    """(child) Start a LocalCluster and time its parts; workers report their own peak RSS."""
    import logging

    import dask
    import distributed

    from dlcert.dask_engine import _arrays, dask_statistics
    from dlcert.sources import expand_inputs

    kw = {"x_columns": "x*", "y_columns": "y*"} if fmt == "parquet" else {}
    sources = expand_inputs(inputs, **kw)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster)
    client.wait_for_workers(workers)
    out["cluster_start_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.run(lambda: __import__("dlcert.sources") and __import__("dlcert.dask_engine"))
    out["worker_import_dlcert_s"] = time.perf_counter() - t0
    X, Y = _arrays(sources, None)  # type: ignore[arg-type]
    out["blocks"] = int(X.numblocks[1])
    t0 = time.perf_counter()
    dask.compute(X.sum(), Y.sum(), scheduler=client)
    out["read_only_pass_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dask_statistics(sources, scheduler=client)
    out["statistics_pass_s"] = time.perf_counter() - t0
    rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    out["worker_peak_rss_mib"] = sorted(round(v / 1024) for v in rss.values())
    t0 = time.perf_counter()
    client.close()
    cluster.close()
    out["shutdown_s"] = time.perf_counter() - t0
    out["driver_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def single_parts(inputs: list[str], fmt: str) -> dict[str, Any]:
    """(child) The single engine's chunk loop, timed: reading + checks vs the GEMMs."""
    from dlcert.sources import expand_inputs

    kw = {"x_columns": "x*", "y_columns": "y*"} if fmt == "parquet" else {}
    (src,) = expand_inputs(inputs, **kw)  # type: ignore[arg-type]
    read = gemm = 0.0
    Sxx = np.zeros((src.dx, src.dx))
    Syx = np.zeros((src.dy, src.dx))
    bounds = src.boundaries(None)  # type: ignore[union-attr]
    for i, (a, b) in enumerate(bounds):
        t0 = time.perf_counter()
        Xc = src.read_x(a, b, i)  # type: ignore[union-attr]
        Yc = src.read_y(a, b, i)  # type: ignore[union-attr]
        t1 = time.perf_counter()
        Sxx += Xc @ Xc.T
        Syx += Yc @ Xc.T
        float(np.vdot(Yc, Yc))
        gemm += time.perf_counter() - t1
        read += t1 - t0
    return {"chunks": len(bounds), "read_s": read, "gemm_s": gemm}


def compare(a: Path, b: Path) -> float:
    A, B = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
    assert int(A["m"]) == int(B["m"])
    return max(float(np.abs(A[k] - B[k]).max() / np.abs(B[k]).max()) for k in ("Sxx", "Syx", "syy"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--dx", type=int, default=200)
    ap.add_argument("--dy", type=int, default=10)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--formats", default="npy")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/dlcert-dask-bench"))
    ap.add_argument("--keep", action="store_true", help="keep the data files")
    ap.add_argument("--no-parts", action="store_true", help="only the end-to-end runs (steps 1-2)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", default="", help=argparse.SUPPRESS)
    ap.add_argument("--fmt", default="", help=argparse.SUPPRESS)
    ap.add_argument("--m", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    d: Path = args.dir
    if args.child == "write":
        print(json.dumps(write(d, args.fmt, args.m, args.dx, args.dy)))
        return
    if args.child == "dask":
        print(json.dumps(dask_parts(json.loads(args.inputs), args.fmt, args.workers)))
        return
    if args.child == "single":
        print(json.dumps(single_parts(json.loads(args.inputs), args.fmt)))
        return
    d.mkdir(parents=True, exist_ok=True)
    m = int(args.gb * 1e9 / (8 * (args.dx + args.dy)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    me = [sys.executable, str(BENCH), "--dir", str(d), "--dx", str(args.dx), "--dy", str(args.dy)]

    def child(*extra_args: str, env: dict[str, str] = env) -> Any:
        out = subprocess.run([*me, *extra_args], env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}; m = {m}, dx = {args.dx}, dy = {args.dy}, workers = {args.workers}")
    for fmt in args.formats.split(","):
        t0 = time.perf_counter()
        inputs = child("--child", "write", "--fmt", fmt, "--m", str(m))
        files = [f for p in inputs for f in ([Path(p)] if Path(p).is_file() else Path(p).rglob("*"))]
        size = sum(f.stat().st_size for f in files if f.is_file())
        print(f"\n[{fmt}] load average before: {os.getloadavg()[0]:.2f}; wrote {size / 1e9:.3f} GB "
              f"in {time.perf_counter() - t0:.1f} s")
        dl = [sys.executable, "-m", "dlcert", "stats", *inputs, *extra(fmt)]
        w1, r1 = measured([*dl, "-o", str(d / "S1.npz")], env)
        w2, r2 = measured([*dl, "--engine", "dask", "--workers", str(args.workers),
                           "-o", str(d / "S2.npz")], env)
        # Dask's nanny starts workers with OMP/MKL/OPENBLAS_NUM_THREADS=1; the same for one process:
        one = {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        w3, r3 = measured([*dl, "-o", str(d / "S3.npz")], one)
        print(f"  single engine: {w1:.1f} s ({size / 1e9 / w1:.2f} GB/s), peak RSS {r1 / 1024:.0f} MiB; "
              f"with single-threaded BLAS (as Dask's workers): {w3:.1f} s, peak RSS {r3 / 1024:.0f} MiB")
        print(f"  dask engine (LocalCluster of {args.workers}, end to end): {w2:.1f} s "
              f"({size / 1e9 / w2:.2f} GB/s), client peak RSS {r2 / 1024:.0f} MiB; "
              f"ratio dask/single = {w2 / w1:.2f}")
        diff = compare(d / "S1.npz", d / "S2.npz")
        print(f"  max relative difference of the two statistics files: {diff:.1e}")
        if args.no_parts:
            if not args.keep:
                subprocess.run(["rm", "-rf", *inputs, str(d / "S1.npz"), str(d / "S2.npz"),
                                str(d / "S3.npz")], check=True)
            continue
        parts = child("--child", "dask", "--inputs", json.dumps(inputs), "--fmt", fmt,
                      "--workers", str(args.workers))
        print(f"  dask parts: LocalCluster start {parts['cluster_start_s']:.2f} s, workers import dlcert "
              f"{parts['worker_import_dlcert_s']:.2f} s, read-only pass {parts['read_only_pass_s']:.2f} s, "
              f"statistics pass {parts['statistics_pass_s']:.2f} s ({parts['blocks']} blocks), shutdown "
              f"{parts['shutdown_s']:.2f} s; worker peak RSS {parts['worker_peak_rss_mib']} MiB, driver "
              f"{parts['driver_peak_rss_mib']} MiB")
        for label, e in (("BLAS threads as installed", env), ("single-threaded BLAS", one)):
            split = child("--child", "single", "--inputs", json.dumps(inputs), "--fmt", fmt, env=e)
            print(f"  single parts, {label} ({split['chunks']} chunks): reading + checks "
                  f"{split['read_s']:.2f} s, GEMMs {split['gemm_s']:.2f} s")
        if not args.keep:
            subprocess.run(["rm", "-rf", *inputs, str(d / "S1.npz"), str(d / "S2.npz"),
                            str(d / "S3.npz")], check=True)


if __name__ == "__main__":
    main()
