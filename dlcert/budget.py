"""The time budget of one check: a deadline shared by every phase of the measurement.

:func:`dlcert.certification.certify` turns ``time_budget`` seconds into a deadline (a
``time.perf_counter()`` value) when it starts. The channel search, the witness search and the
eigen-solver check it between units of work and stop with :class:`OutOfTime`; an unfinished
search never yields a certificate: its partial results are dropped (no witness, no channel
strength, ``converged: false``), so the rule table answers ``inconclusive`` with the reason.

The work before the searches (ranks of partial products, their rounding scales, the rank rule,
the theorem table) runs with the deadline *active* (:func:`activate`): the rank and norm
helpers call :func:`check` before each decomposition, and when the deadline has passed the
measurement stops there and the check is ``inconclusive.time_budget`` (``dlcert.evidence``).
Outside an active region :func:`check` does nothing, so the same helpers stay usable elsewhere.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar, Token


class OutOfTime(Exception):
    """The check's deadline has passed (caught by the phase that owns the partial work)."""


_ACTIVE: ContextVar[float] = ContextVar("dlcert_active_deadline", default=math.inf)


def check_deadline(deadline: float) -> None:
    """Raise :class:`OutOfTime` if ``deadline`` (a ``time.perf_counter()`` value) has passed."""
    if deadline < math.inf and time.perf_counter() > deadline:
        raise OutOfTime


def deadline_after(seconds: float) -> float:
    """The deadline ``seconds`` from now (``inf`` for an infinite budget)."""
    return time.perf_counter() + seconds if math.isfinite(seconds) else math.inf


def activate(deadline: float) -> Token[float]:
    """Make ``deadline`` the one :func:`check` tests (undo with :func:`deactivate`)."""
    return _ACTIVE.set(deadline)


def deactivate(token: Token[float]) -> None:
    _ACTIVE.reset(token)


def check() -> None:
    """Raise :class:`OutOfTime` if the active deadline has passed (no-op when none is active)."""
    check_deadline(_ACTIVE.get())
