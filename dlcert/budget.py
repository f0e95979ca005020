"""The time budget of one check: a deadline shared by every phase that searches.

:func:`dlcert.certification.certify` turns ``time_budget`` seconds into a deadline (a
``time.perf_counter()`` value) when it starts; the channel search, the witness search and the
eigen-solver check it between units of work and stop with :class:`OutOfTime`. An unfinished
search never yields a certificate: its partial results are dropped (no witness, no channel
strength, ``converged: false``), so the rule table answers ``inconclusive`` with the reason.
"""

from __future__ import annotations

import math
import time


class OutOfTime(Exception):
    """The check's deadline has passed (caught by the phase that owns the partial work)."""


def check_deadline(deadline: float) -> None:
    """Raise :class:`OutOfTime` if ``deadline`` (a ``time.perf_counter()`` value) has passed."""
    if deadline < math.inf and time.perf_counter() > deadline:
        raise OutOfTime


def deadline_after(seconds: float) -> float:
    """The deadline ``seconds`` from now (``inf`` for an infinite budget)."""
    return time.perf_counter() + seconds if math.isfinite(seconds) else math.inf
