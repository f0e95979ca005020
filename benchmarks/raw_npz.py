"""`dlcert check` on a raw-data ``.npz`` against `dlcert stats` alone, time and peak memory
(issue 14, item 3). Not a test: ``python benchmarks/raw_npz.py [options]``.

Writes ``data.npz`` with ``X`` (m, dx) and ``Y`` (m, dy), float64, one row per sample (m = 10^6,
dx = 200, dy = 50: 2.0 GB; stored members, and with ``--deflated`` a deflated copy), and
weights ``W.npz`` of widths 200, 200, 100, 50 (65,000 parameters, random: not a critical
point, so certification is short and the check is mostly reading the data). Everything is
written member by member through ``zipfile`` in a child process, a few MB at a time, so the
driver never holds the data: on Linux ``ru_maxrss`` survives fork + exec, and each measured
child's peak RSS (``os.wait4``) is then its own.

Then, in fresh child processes, interleaved ``--reps`` times: ``python -m dlcert stats
data.npz -o S.npz`` and ``python -m dlcert check W.npz --data data.npz --format json`` (and the
check on the statistics file, which is the certification alone). ``--baseline DIR`` runs the
same commands with another tree on ``PYTHONPATH`` (e.g. ``/work/main`` before the change), and
compares its statistics and verdicts with this tree's. The machine and its load average are
printed: it is shared, so read the ratios (same run), not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DIR = Path("/tmp")  # where the children run (set to --dir)


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def machine(threads: str | None = None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = threads or os.environ.get("OPENBLAS_NUM_THREADS", "default")
    return (f"{cpu}, nproc {os.cpu_count()}, {platform.platform()}, python {platform.python_version()}, "
            f"numpy {np.__version__}, OPENBLAS_NUM_THREADS {env}")


def _member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...], blocks: object) -> None:
    """Write one float64 C-order .npy member from an iterator of row blocks."""
    with zf.open(name + ".npy", "w", force_zip64=True) as fp:
        np.lib.format.write_array_header_1_0(
            fp, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float64)), "fortran_order": False,
                 "shape": shape})
        for block in blocks:  # type: ignore[attr-defined]
            fp.write(np.ascontiguousarray(block, dtype=np.float64).tobytes())


def write_data(path: Path, m: int, dx: int, dy: int, compression: int, block: int = 50_000,
               columns: bool = False) -> None:
    """``X`` (m, dx) and ``Y = X A^T + noise`` (m, dy), written block by block (same seed); with
    ``columns``, ``X`` (dx, m) and ``Y`` (dy, m) in C order, independent rows, one feature at a
    time (a feature-major file: the chunked reader takes column blocks, one read per feature)."""
    A = np.random.default_rng(0).standard_normal((dy, dx)) / np.sqrt(dx)

    def rows(which: str):  # type: ignore[no-untyped-def]
        for i, a in enumerate(range(0, m, block)):
            rng = np.random.default_rng([1, i])
            x = rng.standard_normal((min(m, a + block) - a, dx))
            yield x if which == "X" else x @ A.T + 0.1 * rng.standard_normal((x.shape[0], dy))

    def features(d: int, seed: int):  # type: ignore[no-untyped-def]
        for i in range(d):
            yield np.random.default_rng([seed, i]).standard_normal(m)

    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=compression, compresslevel=1 if compression else None,
                         allowZip64=True) as zf:
        if columns:
            _member(zf, "X", (dx, m), features(dx, 3))
            _member(zf, "Y", (dy, m), features(dy, 4))
        else:
            _member(zf, "X", (m, dx), rows("X"))
            _member(zf, "Y", (m, dy), rows("Y"))
    tmp.replace(path)


def write_npy(d: Path, m: int, dx: int, dy: int, block: int = 50_000) -> None:
    """The same ``X`` and ``Y`` as :func:`write_data`, as an ``.npy`` pair."""
    A = np.random.default_rng(0).standard_normal((dy, dx)) / np.sqrt(dx)
    X = np.lib.format.open_memmap(d / "X.npy", mode="w+", dtype=np.float64, shape=(m, dx))
    Y = np.lib.format.open_memmap(d / "Y.npy", mode="w+", dtype=np.float64, shape=(m, dy))
    for i, a in enumerate(range(0, m, block)):
        rng = np.random.default_rng([1, i])
        x = rng.standard_normal((min(m, a + block) - a, dx))
        X[a : a + x.shape[0]] = x
        Y[a : a + x.shape[0]] = x @ A.T + 0.1 * rng.standard_normal((x.shape[0], dy))
    X.flush()
    Y.flush()
    del X, Y


def write_weights(path: Path, widths: list[int]) -> None:
    rng = np.random.default_rng(2)
    np.savez(path, **{f"W{i}": rng.standard_normal((widths[i], widths[i - 1])) / np.sqrt(widths[i - 1])
                      for i in range(1, len(widths))})


def measured(cmd: list[str], env: dict[str, str], out: Path | None = None) -> tuple[float, int, int]:
    """Wall time, peak RSS (KiB) and exit code of one child, from its own rusage. The child runs
    in the data folder: ``python -m`` puts the working directory first on ``sys.path``, so only
    ``PYTHONPATH`` chooses the tree."""
    t0 = time.perf_counter()
    with open(out if out is not None else os.devnull, "wb") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.PIPE, cwd=DIR)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if code not in (0, 3, 4, 5):  # verdict exit codes (a random point: 4, not critical)
        raise SystemExit(f"{' '.join(cmd)} failed with exit {code}: {err.strip()[-500:]}")
    return wall, int(usage.ru_maxrss), code


def run_tree(
    tree: Path, label: str, d: Path, data: Path, reps: int, env0: dict[str, str]
) -> dict[str, object]:
    env = {**env0, "PYTHONPATH": str(tree)}
    py = [sys.executable, "-m", "dlcert"]
    stats_out = d / f"S-{label}-{data.stem}.npz"
    check_out = d / f"check-{label}-{data.stem}.json"
    times: dict[str, list[float]] = {"stats": [], "check": [], "check_stats": []}
    rss: dict[str, int] = {"stats": 0, "check": 0, "check_stats": 0}
    for _ in range(reps):
        for kind in ("stats", "check"):
            if kind == "stats":
                cmd = [*py, "stats", str(data), "-o", str(stats_out)]
                stats_out.unlink(missing_ok=True)
                wall, peak, _ = measured(cmd, env)
            else:
                cmd = [*py, "check", str(d / "W.npz"), "--data", str(data), "--format", "json"]
                wall, peak, _ = measured(cmd, env, check_out)
            times[kind].append(wall)
            rss[kind] = max(rss[kind], peak)
    wall, peak, _ = measured([*py, "check", str(d / "W.npz"), "--data", str(stats_out), "--format", "json"],
                             env, d / f"check-{label}-stats.json")
    times["check_stats"].append(wall)
    rss["check_stats"] = peak
    verdict = json.loads(check_out.read_text())
    return {"times": times, "rss": rss, "stats_file": stats_out, "verdict": verdict}


def verdict_of(report: object) -> str:
    if isinstance(report, dict):
        if "verdict" in report:
            return str(report["verdict"])
        for v in report.values():
            found = verdict_of(v)
            if found:
                return found
    if isinstance(report, list):
        for v in report:
            found = verdict_of(v)
            if found:
                return found
    return ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=1_000_000)
    ap.add_argument("--widths", default="200,200,100,50")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/dlcert-raw-npz"))
    ap.add_argument("--deflated", action="store_true", help="also a deflated copy of the data")
    ap.add_argument("--columns", action="store_true",
                    help="store X (dx, m), Y (dy, m) in C order (feature-major), not a row per sample "
                    "(other values; --npy then times a pair of the row data, of the same size)")
    ap.add_argument("--npy", action="store_true",
                    help="also time `dlcert stats X.npy Y.npy` on the same data as an .npy pair")
    ap.add_argument("--baseline", type=Path, default=None, help="another tree to run the same commands with")
    ap.add_argument("--threads", default=None, help="OPENBLAS_NUM_THREADS for the children")
    ap.add_argument("--keep", action="store_true", help="keep the data files")
    ap.add_argument("--write", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    global DIR
    d: Path = args.dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    DIR = d
    if args.write == "npy":
        write_npy(d, args.m, widths[0], widths[-1])
        return
    if args.write is not None:
        write_data(d / f"{args.write}.npz", args.m, widths[0], widths[-1],
                   zipfile.ZIP_DEFLATED if args.write.startswith("deflated") else zipfile.ZIP_STORED,
                   columns=args.write.endswith("-columns"))
        return
    env0 = dict(os.environ)
    if args.threads is not None:
        env0["OPENBLAS_NUM_THREADS"] = env0["OMP_NUM_THREADS"] = args.threads
    print(f"machine: {machine(args.threads)} (children)")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {load()}")
    params = sum(widths[i] * widths[i - 1] for i in range(1, len(widths)))
    kinds = ["stored"] + (["deflated"] if args.deflated else [])
    if args.columns:
        kinds = [k + "-columns" for k in kinds]
    me = [sys.executable, str(Path(__file__).resolve()), "--m", str(args.m), "--widths", args.widths,
          "--dir", str(d)]
    write_weights(d / "W.npz", widths)
    for kind in kinds:
        if not (d / f"{kind}.npz").exists():
            t0 = time.perf_counter()
            subprocess.run([*me, "--write", kind], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            print(f"wrote {kind}.npz in {time.perf_counter() - t0:.1f} s")
    if args.npy and not (d / "X.npy").exists():
        subprocess.run([*me, "--write", "npy"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    trees = [(ROOT, "this")] + ([(args.baseline.resolve(), "baseline")] if args.baseline else [])
    for kind in kinds:
        data = d / f"{kind}.npz"
        nbytes = 8 * args.m * (widths[0] + widths[-1])
        shapes = ((widths[0], args.m), (widths[-1], args.m)) if args.columns else (
            (args.m, widths[0]), (args.m, widths[-1]))
        print(f"\n[{kind}] {data.name}: X {shapes[0]} and Y {shapes[1]} "
              "float64, "
              f"{nbytes / 1e9:.3f} GB of arrays, file {data.stat().st_size / 1e9:.3f} GB; weights {widths}, "
              f"{params:,} parameters; {args.reps} interleaved reps")
        results = {}
        for tree, label in trees:
            print(f"  {label} tree ({tree}), {load()} before")
            r = run_tree(tree, label, d, data, args.reps, env0)
            results[label] = r
            t, rss = r["times"], r["rss"]
            assert isinstance(t, dict) and isinstance(rss, dict)
            st, ch = statistics.median(t["stats"]), statistics.median(t["check"])
            print(f"    stats alone: {', '.join(f'{x:.1f}' for x in t['stats'])} s (median {st:.1f} s), "
                  f"peak RSS {rss['stats'] / 2**20:.2f} GiB ({rss['stats'] * 1024 / nbytes:.2f}x the data)")
            print(f"    check --data {data.name}: {', '.join(f'{x:.1f}' for x in t['check'])} s "
                  f"(median {ch:.1f} s), peak RSS {rss['check'] / 2**20:.2f} GiB "
                  f"({rss['check'] * 1024 / nbytes:.2f}x the data)")
            print(f"    check / stats = {ch / st:.2f}; check on the statistics file (certification "
                  f"alone): {t['check_stats'][0]:.1f} s, {rss['check_stats'] / 2**20:.2f} GiB; "
                  f"verdict {verdict_of(r['verdict'])}; {load()} after")
        if args.npy:
            walls = []
            for _ in range(args.reps):
                wall, peak, _ = measured([sys.executable, "-m", "dlcert", "stats", str(d / "X.npy"),
                                          str(d / "Y.npy"), "-o", str(d / "S-npy.npz")],
                                         {**env0, "PYTHONPATH": str(ROOT)})
                walls.append(wall)
            this = results["this"]["times"]
            assert isinstance(this, dict)
            print(f"  reference: `dlcert stats X.npy Y.npy` (same data, .npy pair, this tree): "
                  f"{', '.join(f'{x:.1f}' for x in walls)} s, peak RSS {peak / 2**20:.2f} GiB; "
                  f"check on {data.name} / stats on the .npy pair = "
                  f"{statistics.median(this['check']) / statistics.median(walls):.2f} ({load()})")
        if "baseline" in results:
            a = np.load(results["this"]["stats_file"])  # type: ignore[arg-type]
            b = np.load(results["baseline"]["stats_file"])  # type: ignore[arg-type]
            rel = float(np.max(np.abs(a["Sxx"] - b["Sxx"])) / np.max(np.abs(b["Sxx"])))
            rel_yx = float(np.max(np.abs(a["Syx"] - b["Syx"])) / np.max(np.abs(b["Syx"])))
            rel_yy = abs(float(a["syy"]) - float(b["syy"])) / float(b["syy"])
            same = verdict_of(results["this"]["verdict"]) == verdict_of(results["baseline"]["verdict"])
            print(f"  this vs baseline: Sxx max rel. diff {rel:.1e}, Syx {rel_yx:.1e}, syy {rel_yy:.1e}, "
                  f"eps {float(a['meta_eps'])} vs {float(b['meta_eps'])}, m {int(a['m'])} vs {int(b['m'])}; "
                  f"same verdict: {same}")
    print(f"\nend: {time.strftime('%H:%M:%S UTC', time.gmtime())}, {load()}")
    if not args.keep:
        for p in d.iterdir():
            p.unlink()


if __name__ == "__main__":
    main()
