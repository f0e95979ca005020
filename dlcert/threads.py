"""BLAS thread limits for the phases that multiply small matrices.

OpenBLAS threads pay off on large GEMMs; on matrices of a few hundred rows they cost more in
start-up and synchronisation than they save, and on a shared (oversubscribed) machine they spin
waiting for each other: one HVP 22-40x slower, ``eigh(500)`` 13x slower with two threads than
with one (issue 14; ``benchmarks/README.md``). :func:`blas_threads` limits the BLAS pool inside
a ``with`` block and restores it afterwards.

threadpoolctl (a dependency of scikit-learn and of this package) does the work; when it is
missing, or the environment variable ``DLCERT_BLAS_THREADS`` is ``keep``, the guard does
nothing. ``DLCERT_BLAS_THREADS=<n>`` overrides every limit (for measurements).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

#: Widths below which every phase of a check runs on one BLAS thread. Measured on the shared
#: 2-core machine at load 4-5 (benchmarks/README.md): the value stage of a 10^5-parameter check
#: (widths 400, 160, 160, 100; spectral norms and SVDs) took 15.7 s with two threads and 0.84 s
#: with one; only GEMMs beyond a few thousand rows gain from a second thread, and only when
#: the machine is quiet.
SMALL_WIDTH = 2048


@lru_cache(maxsize=1)
def _controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return None
    return ThreadpoolController()


def limit_for(width: int) -> int | None:
    """The BLAS thread limit for products whose largest dimension is ``width`` (None: keep)."""
    return 1 if width < SMALL_WIDTH else None


@contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """Run the block with at most ``limit`` BLAS threads (``None``: as configured)."""
    env = os.environ.get("DLCERT_BLAS_THREADS", "").strip().lower()
    if env == "keep":
        limit = None
    elif env.isdigit() and int(env) > 0:
        limit = int(env)
    ctl = _controller() if limit is not None else None
    if ctl is None:
        yield
        return
    with ctl.limit(limits=limit, user_api="blas"):
        yield
