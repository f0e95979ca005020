"""``dlcert stats --engine dask``: equal to the single-process engine for every format, on a
LocalCluster of worker processes and on the threaded scheduler; failures are one line, exit 2,
and no statistics file."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datafiles import FORMATS, parquet, write
from typer.testing import CliRunner

from dlcert.cli import app
from dlcert.engines import compute_statistics
from dlcert.errors import ClusterError, InputError
from dlcert.statistics import Statistics

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


def rel_diff(a: Statistics, b: Statistics) -> float:
    assert (a.m, a.dx, a.dy) == (b.m, b.dx, b.dy)
    return max(
        float(np.abs(a.Sxx - b.Sxx).max() / np.abs(b.Sxx).max()),
        float(np.abs(a.Syx - b.Syx).max() / np.abs(b.Syx).max()),
        abs(a.syy - b.syy) / b.syy,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One LocalCluster for the module: 2 worker processes, 1 thread each; a task that kills its
    worker fails at once (allowed-failures 0) instead of being retried."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.comm.timeouts.connect": "30s"}):
        c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address="127.0.0.1:0", silence_logs=50)
        try:
            with distributed.Client(c, timeout=60) as client:
                client.wait_for_workers(2, timeout=60)
            yield c
        finally:
            c.close(timeout=30)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 900)) * np.array([[1.0], [2.0], [1e2], [1e-2], [1.0], [5.0]])
    Y = rng.standard_normal((3, 6)) @ X + rng.standard_normal((3, 900))
    return X, Y


@pytest.mark.parametrize("fmt", FORMATS)
def test_dask_equals_single_engine_on_a_local_cluster_and_threads(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], cluster: Any, fmt: str
) -> None:
    X, Y = data
    args, opts = write(fmt, tmp_path, X, Y)
    single = compute_statistics(args, chunk_size=70, **opts)
    assert rel_diff(single, Statistics.from_data(X, Y)) <= 1e-13
    for scheduler in (cluster.scheduler_address, "threads"):
        got = compute_statistics(args, engine="dask", scheduler=scheduler, chunk_size=70, **opts)
        assert got.eps == single.eps
        assert rel_diff(got, single) <= 1e-13, scheduler


def test_scheduler_address_from_the_environment(tmp_path: Path, data: tuple[np.ndarray, np.ndarray],
                                                cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    X, Y = data
    args, opts = write("zarr", tmp_path, X, Y)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    got = compute_statistics(args, engine="dask", **opts)
    assert rel_diff(got, Statistics.from_data(X, Y)) <= 1e-13


@pytest.mark.parametrize("scheduler", ["cluster", "threads"])
def test_corrupt_shard_fails_the_whole_pass_with_its_name(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], cluster: Any, scheduler: str
) -> None:
    X, Y = data
    args, opts = write("parquet_glob", tmp_path, X, Y)
    bad = X.copy()
    bad[2, 10] = np.nan
    parquet(tmp_path / "part-00001.parquet", bad[:, :300], Y[:, :300])
    where = cluster.scheduler_address if scheduler == "cluster" else scheduler
    with pytest.raises(InputError, match=r"part-00001\.parquet \(chunk 0: rows 0:300\): X has 1 non-finite"):
        compute_statistics(args, engine="dask", scheduler=where, **opts)
    (tmp_path / "part-00002.parquet").write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(InputError, match=r"part-00002\.parquet: not a readable Parquet file"):
        compute_statistics(args, engine="dask", scheduler=where, **opts)


def test_cli_dask_stats_then_check_gives_the_same_verdict(
    tmp_path: Path, samples_dir: Path, cluster: Any
) -> None:
    src = np.load(samples_dir / "strict_saddle.npz", allow_pickle=False)
    np.savez(tmp_path / "w.npz", W1=src["W1"], W2=src["W2"])
    X, Y = src["X"], src["Y"]
    np.savez(tmp_path / "raw.npz", X=X, Y=Y)
    args, _ = write("parquet_glob", tmp_path / "data", X, Y)
    runner = CliRunner()
    out = tmp_path / "s.npz"
    cols = ",".join(f"x{i}" for i in range(X.shape[0]))
    res = runner.invoke(app, ["stats", *args, "--x-columns", cols, "--y-columns", "y*", "--engine", "dask",
                              "--scheduler", cluster.scheduler_address, "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    assert f"m = {X.shape[1]}" in res.stdout
    raw = json.loads(runner.invoke(app, ["check", str(tmp_path / "w.npz"), "--data", str(tmp_path / "raw.npz"),
                                         "-f", "json"]).stdout)
    st = json.loads(runner.invoke(app, ["check", str(tmp_path / "w.npz"), "--data", str(out), "-f", "json"]).stdout)
    assert raw["verdict"] == st["verdict"] == "strict_saddle"
    assert st["loss"] == pytest.approx(raw["loss"], rel=1e-12)
    assert st["gap"] == pytest.approx(raw["gap"], rel=1e-10)


def test_cli_merge(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    runner = CliRunner()
    for i, (a, b) in enumerate([(0, 400), (400, 900)]):
        np.savez(tmp_path / f"d{i}.npz", X=X[:, a:b], Y=Y[:, a:b])
        assert runner.invoke(app, ["stats", str(tmp_path / f"d{i}.npz"), "-o", str(tmp_path / f"s{i}.npz")]).exit_code == 0
    res = runner.invoke(app, ["stats", "merge", str(tmp_path / "s0.npz"), str(tmp_path / "s1.npz"),
                              "-o", str(tmp_path / "all.npz")])
    assert res.exit_code == 0, res.stderr
    S = np.load(tmp_path / "all.npz", allow_pickle=False)
    assert int(S["m"]) == 900
    np.testing.assert_allclose(S["Sxx"], X @ X.T, rtol=1e-13, atol=1e-13 * np.abs(X @ X.T).max())
    res = runner.invoke(app, ["stats", "merge", str(tmp_path / "s0.npz"), str(tmp_path / "d1.npz"),
                              "-o", str(tmp_path / "bad.npz")])
    assert res.exit_code == 2 and "holds raw data" in res.stderr and not (tmp_path / "bad.npz").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_scheduler_is_one_line_exit_2_and_no_file(tmp_path: Path,
                                                               data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    args, _ = write("npy_rows", tmp_path, X, Y)
    out = tmp_path / "s.npz"
    res = CliRunner().invoke(app, ["stats", *args, "--engine", "dask", "--scheduler",
                                   f"tcp://127.0.0.1:{_free_port()}", "--connect-timeout", "2", "-o", str(out)])
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot start or reach tcp://127.0.0.1:" in lines[0]
    assert not out.exists()


def test_a_worker_that_dies_is_a_cluster_error(cluster: Any) -> None:
    from dlcert.dask_engine import run_graph

    with distributed.Client(cluster.scheduler_address, timeout=30) as client:
        with pytest.raises(ClusterError, match=r"the Dask computation failed .*KilledWorker"):
            run_graph(dask, client, [dask.delayed(os._exit, pure=False)(3)])
        client.wait_for_workers(2, timeout=60)


def test_default_engine_and_single_refuse_a_scheduler(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    args, _ = write("npy_rows", tmp_path, X, Y)
    with pytest.raises(InputError, match="--scheduler needs --engine dask"):
        compute_statistics(args, scheduler="threads")


def test_local_cluster_when_no_scheduler_is_given(tmp_path: Path, data: tuple[np.ndarray, np.ndarray],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    X, Y = data
    args, opts = write("h5", tmp_path, X, Y)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    out = tmp_path / "s.npz"
    res = CliRunner().invoke(app, ["stats", *args, "--engine", "dask", "--workers", "2", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    S = np.load(out, allow_pickle=False)
    single = compute_statistics(args, **opts)
    assert int(S["m"]) == single.m
    np.testing.assert_allclose(S["Sxx"], single.Sxx, rtol=0, atol=1e-13 * np.abs(single.Sxx).max())


def test_a_scheduler_lost_during_the_pass_is_one_cluster_error() -> None:
    """A scheduler (its own process) killed while a task runs: one ClusterError, no hang."""
    import subprocess
    import sys
    import threading
    import time

    from dlcert.dask_engine import run_graph

    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--no-dashboard"], stderr=subprocess.DEVNULL)
    worker = None
    try:
        with distributed.Client(addr, timeout=60) as client:
            worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                                       "--no-dashboard", "--no-nanny"], stderr=subprocess.DEVNULL)
            client.wait_for_workers(1, timeout=60)

            def kill_when_running() -> None:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not any(client.processing().values()):
                    time.sleep(0.05)
                sched.kill()

            killer = threading.Thread(target=kill_when_running, daemon=True)
            killer.start()
            with pytest.raises(ClusterError, match="lost the connection to the Dask scheduler"):
                run_graph(dask, client, [dask.delayed(time.sleep, pure=False)(60)])
            killer.join(timeout=5)
    finally:
        for p in (worker, sched):
            if p is not None:
                p.kill()
                p.wait(timeout=30)
