"""``landscape --loss logistic --trials 8`` and the fixed-rank second-order test: wall times.

Run: ``.venv/bin/python benchmarks/convex_landscape.py``. Prints the load average, then

1. the wall time of ``dlcert landscape DATA --widths 8,6,4,1 --loss logistic --trials 8`` as a
   subprocess (generated data, m = 2000; interpreter start included) and of the same work
   in-process (``dlcert.beyond.landscape_beyond``), with the verdict counts;
2. the fixed-rank test (``dlcert.convex.fixed_rank_test``) at moderate sizes: its seconds, the
   tangent dimension, and the ratio to one HVP pass and to one value pass of f over the data
   measured in the same run (the machine is shared: ratios, not absolute times, carry over).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dlcert.beyond import landscape_beyond
from dlcert.convex import _chain, certify_convex, fixed_rank_test
from dlcert.losses import CrossEntropy, DataObjective, Square


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def landscape_case(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    m, dx = 2000, 8
    X = rng.normal(size=(dx, m))
    p = 1 / (1 + np.exp(-(rng.normal(size=dx) @ X)))
    Y = (rng.random(m) < p).astype(float)[None, :]
    data = tmp / "logistic.npz"
    np.savez(data, X=X, Y=Y)
    cmd = [sys.executable, "-m", "dlcert", "landscape", str(data), "--widths", "8,6,4,1", "--loss",
           "logistic", "--trials", "8", "-f", "json", "-q"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    import json

    counts = json.loads(out.stdout)["trials"]["counts"]
    t0 = time.perf_counter()
    result = landscape_beyond(data, [8, 6, 4, 1], None, "logistic", 8, 0)
    inproc = time.perf_counter() - t0
    assert result.trials is not None
    print(f"landscape --loss logistic --trials 8 (m = {m}, widths 8,6,4,1): subprocess {wall:.2f} s, "
          f"in-process {inproc:.2f} s; counts {counts}; load {_load()}")


def fixed_rank_case(name: str, obj: DataObjective, ws: list[np.ndarray], k: int,
                    basis: np.ndarray | None = None) -> None:
    R = _chain(ws, 1, len(ws), ws[0].shape[1])
    G, scale = obj.gradient(R)
    D = np.random.default_rng(1).normal(size=R.shape)
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        obj.hvp(R, D)
    hvp = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        obj.value(R)
    val = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    test, _ = fixed_rank_test(ws, obj, R, G, scale, k, basis=basis)
    sec = time.perf_counter() - t0
    t0 = time.perf_counter()
    cert = certify_convex(ws, obj, loss_name=name)
    whole = time.perf_counter() - t0
    print(f"fixed-rank {name}: m = {obj.m}, dx = {R.shape[1]}, dy = {R.shape[0]}, k = {k}, dimension "
          f"{test.dimension} ({test.method}): {sec:.2f} s = {sec / hvp:.0f} HVP passes = "
          f"{sec / val:.0f} value passes (one HVP {hvp * 1e3:.2f} ms, one value {val * 1e3:.2f} ms); "
          f"whole check {whole:.2f} s -> "
          f"{cert.rule}; load {_load()}")


def square_truncation(m: int, dx: int, dy: int, k: int, seed: int) -> tuple[DataObjective, list[np.ndarray]]:
    """Whitened X: the top-k truncation of Y X^T / m is a rank-constrained minimum (3 layers)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(m, dx)))
    X = np.sqrt(m) * Q.T
    Y = rng.normal(size=(dy, m))
    U, s, Vt = np.linalg.svd(Y @ X.T / m)
    W1 = np.sqrt(s[:k])[:, None] * Vt[:k]
    W3 = U[:, :k] * np.sqrt(s[:k])
    return DataObjective(Square(), X, Y), [W1, np.eye(k), W3]


def cross_entropy_trained(m: int, dx: int, dy: int, k: int,
                          seed: int) -> tuple[DataObjective, list[np.ndarray]]:
    from dlcert.trials import polish_convex, random_start, train_convex

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(dx, m))
    lab = np.argmax(rng.normal(size=(dy, dx)) @ X + rng.gumbel(size=(dy, m)), axis=0)
    obj = DataObjective(CrossEntropy(), X, np.eye(dy)[:, lab])
    ws, *_ = train_convex(obj, random_start(rng, [dx, k, dy], float(np.sqrt(m) / np.linalg.norm(X))))
    ws, _ = polish_convex(obj, ws)
    return obj, ws


def main() -> None:
    print(f"load average at start: {_load()}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        landscape_case(Path(tmp))
    obj, ws = square_truncation(20000, 100, 20, 5, 2)
    fixed_rank_case("square", obj, ws, 5)
    obj, ws = cross_entropy_trained(20000, 50, 10, 3, 3)
    dy = 10
    basis = np.linalg.svd(np.eye(dy) - 1.0 / dy)[0][:, : dy - 1]
    fixed_rank_case("cross-entropy", obj, ws, 3, basis=basis)


if __name__ == "__main__":
    main()
