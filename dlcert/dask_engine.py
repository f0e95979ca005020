"""``dlcert stats --engine dask``: the statistics as ``dask.array`` blockwise reductions.

Each chunked source (:mod:`dlcert.sources`) becomes two lazy ``dask.array`` s, ``X`` of shape
``(dx, m)`` and ``Y`` of shape ``(dy, m)``, one block per chunk of samples; a block is read by a
worker, through the same reader and checks as the single-process engine, and converted to
float64 there. Nothing reads the data on the client and X is never materialised: ::

    Sxx = X @ X.T      # blockwise X_c X_c^T, then a tree sum over the chunks c
    Syx = Y @ X.T
    syy = (Y * Y).sum()

computed in one graph (each block is read once). ``.npz`` sources are one task each
(:func:`dlcert.engines.npz_statistics` on a worker). The result is summed on the client.

Where it runs (``scheduler``):

* an address ``tcp://HOST:PORT`` (or the environment variable ``DASK_SCHEDULER_ADDRESS``): an
  existing ``dask.distributed`` cluster. Its workers must have dlcert (and the extras of the
  formats read) installed and see the input files under the same paths.
* ``threads`` or ``synchronous``: dask's local schedulers in this process, no cluster.
* nothing: a ``LocalCluster`` of this machine's cores (``workers`` processes, one thread each),
  started for this pass and closed after it.

Failures: an input error in a block (NaN, bad dtype, corrupt shard) is raised on the client as
the same :class:`~dlcert.errors.InputError`, naming the file, member and chunk; a scheduler that
cannot be reached, a worker that dies, a lost connection or a worker without dlcert is one
:class:`~dlcert.errors.ClusterError`. Either way nothing is returned, so no statistics file is
written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from dlcert.errors import ClusterError, DlcertError, InputError
from dlcert.io import Layout
from dlcert.sources import ChunkedSource, NpzSource, Source, _one_line, assert_finite_total, optional
from dlcert.statistics import Statistics

#: Schedulers that run in this process (no cluster).
LOCAL_SCHEDULERS = ("threads", "synchronous")
#: Seconds to wait for a scheduler to answer (or a LocalCluster to start).
CONNECT_TIMEOUT = 30


class Blocks:
    """A lazily read ``(d, m)`` float64 array for ``dask.array.from_array``: one block per chunk.

    Holds only the source (paths and names), so it pickles to workers; ``self[:, a:b]`` reads
    samples ``a:b`` there, validated.
    """

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, source: ChunkedSource, which: str, bounds: Sequence[tuple[int, int]]) -> None:
        self.source = source
        self.which = which
        self.index = {a: i for i, (a, _) in enumerate(bounds)}
        d = source.dx if which == "X" else source.dy
        self.shape = (d, source.m)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        a, b, _ = cols.indices(self.shape[1])
        chunk = self.index.get(a, -1)
        read = self.source.read_x if self.which == "X" else self.source.read_y
        out = read(a, b, chunk)
        if out.shape != (self.shape[0], b - a):
            raise InputError(
                f"{self.source.label} (chunk {chunk}: samples {a}:{b}): read {self.which} of shape "
                f"{out.shape}; expected {(self.shape[0], b - a)} (did a file change during the pass?)"
            )
        return out[rows]


def _arrays(sources: Sequence[ChunkedSource], chunk_size: int | None) -> tuple[Any, Any]:
    """``X`` and ``Y`` of all chunked sources as dask arrays, concatenated along the samples."""
    da = optional("dask.array")
    base = optional("dask.base")
    xs: list[Any] = []
    ys: list[Any] = []
    for s in sources:
        bounds = s.boundaries(chunk_size)
        sizes = tuple(b - a for a, b in bounds)
        for which, d, out in (("X", s.dx, xs), ("Y", s.dy, ys)):
            token = base.tokenize(repr(s), which, sizes, _stamp(s))
            out.append(da.from_array(
                Blocks(s, which, bounds), chunks=((d,), sizes), name=f"dlcert-read-{which}-{token}",
                asarray=False, fancy=False, lock=False, inline_array=False,
                meta=np.empty((0, 0), dtype=np.float64),
            ))
    X = xs[0] if len(xs) == 1 else da.concatenate(xs, axis=1)
    Y = ys[0] if len(ys) == 1 else da.concatenate(ys, axis=1)
    return X, Y


def _stamp(source: ChunkedSource) -> tuple[int, ...]:
    """Sizes and times of the files, so a changed file is not taken from a cache."""
    paths = [source.path] if not hasattr(source, "x") else [source.x.path, source.y.path]  # type: ignore[union-attr]
    out: list[int] = []
    for p in paths:
        try:
            st = os.stat(p)
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out += [-1, -1]
    return tuple(out)


def _cluster_errors() -> tuple[type[BaseException], ...]:
    """What a dead worker or a lost connection raises on the client."""
    errors: list[type[BaseException]] = [
        OSError, TimeoutError, asyncio.TimeoutError, asyncio.CancelledError,
        concurrent.futures.CancelledError, ImportError, EOFError,
    ]
    for module, name in (("distributed", "KilledWorker"), ("distributed.scheduler", "KilledWorker"),
                         ("distributed.comm.core", "CommClosedError"),
                         ("distributed.client", "FutureCancelledError"),
                         ("distributed.core", "CommClosedError")):
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:
            continue
        cls = getattr(mod, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            errors.append(cls)
    return tuple(errors)


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep distributed's log lines off stderr: the CLI reports one line.

    After a failure the levels stay raised: a client that lost its scheduler goes on logging
    from its event-loop thread after the error has reached the caller.
    """
    try:  # importing distributed configures its loggers: do it first, then override
        import distributed  # noqa: F401
    except ImportError:
        pass
    names = ["distributed", "dask", "tornado"]
    names += [n for n in logging.root.manager.loggerDict if n.startswith(("distributed.", "dask."))]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(distributed|dask)(\..*)?$")
        yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


@contextmanager
def connect(
    scheduler: str | None = None, workers: int | None = None, timeout: float = CONNECT_TIMEOUT
) -> Iterator[Any]:
    """A ``distributed.Client`` (or a local scheduler's name) for the duration of one pass."""
    if scheduler in LOCAL_SCHEDULERS:
        optional("dask.array")
        yield scheduler
        return
    distributed = optional("distributed")
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    cluster = None
    failures: tuple[type[BaseException], ...] = (ValueError, RuntimeError, *_cluster_errors())
    try:
        if address is None:
            n = workers or os.cpu_count() or 1
            cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                silence_logs=logging.CRITICAL,
            )
        client = distributed.Client(cluster if cluster is not None else address, timeout=timeout)
    except DlcertError:
        raise
    except failures as exc:
        if cluster is not None:
            cluster.close()
        target = address or "a LocalCluster"
        raise ClusterError(f"cannot start or reach {target} ({_one_line(exc)})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def dask_statistics(
    sources: Sequence[Source],
    *,
    layout: Layout | str | None = None,
    chunk_size: int | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> Statistics:
    """Statistics of every source on Dask (module docstring); ``scheduler`` may be a Client."""
    dask = optional("dask")
    from dlcert.engines import npz_statistics

    chunked = [s for s in sources if not isinstance(s, NpzSource)]
    npz = [s for s in sources if isinstance(s, NpzSource)]
    if not sources:
        raise InputError("no data files given")
    graph: list[Any] = []
    if chunked:
        X, Y = _arrays(chunked, chunk_size)
        graph = [X @ X.T, Y @ X.T, (Y * Y).sum()]
    graph += [dask.delayed(npz_statistics, pure=True)(s, layout) for s in npz]
    with _quiet():
        if scheduler is None or isinstance(scheduler, str):
            with connect(scheduler, workers, timeout) as client:
                results = run_graph(dask, client, graph)
        else:
            results = run_graph(dask, scheduler, graph)
    total: Statistics | None = None
    if chunked:
        Sxx, Syx, syy = results[:3]
        eps = max(s.eps for s in chunked)
        total = Statistics(Sxx=np.asarray(Sxx, dtype=np.float64), Syx=np.asarray(Syx, dtype=np.float64),
                           syy=float(syy), m=sum(s.m for s in chunked), eps=eps)
        results = results[3:]
    for part in results:
        total = part if total is None else total + part
    assert total is not None
    assert_finite_total(total)
    return total


def run_graph(dask: Any, client: Any, graph: list[Any]) -> list[Any]:
    """Compute the graph on ``client`` (or a local scheduler's name); cluster failures become one
    :class:`ClusterError`."""
    try:
        if isinstance(client, str):
            return list(dask.compute(*graph, scheduler=client))
        futures = client.compute(graph)
        return list(client.gather(futures))
    except DlcertError:
        raise
    except MemoryError:
        raise ClusterError("a Dask worker ran out of memory; try a smaller --chunk-size") from None
    except _cluster_errors() as exc:
        if isinstance(exc, ImportError):
            raise ClusterError(
                f"a Dask worker cannot import what the pass needs ({_one_line(exc)}); install dlcert "
                "with the extras of your formats on every worker"
            ) from None
        if "connection-lost" in str(exc) or "CommClosed" in type(exc).__name__:
            raise ClusterError(
                "lost the connection to the Dask scheduler during the pass; no statistics written"
            ) from None
        raise ClusterError(f"the Dask computation failed ({_one_line(exc)}); no statistics written") from None
