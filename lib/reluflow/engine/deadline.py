r"""A wall-clock limit on a run, set by the caller and honoured by the integrators.

A sweep gives every configuration a time limit.  Where the run executes in a process's
main thread the limit is a timer signal; in any other thread (a Dask worker, a thread
pool) Python code cannot be interrupted from outside, so the integrators check the limit
themselves between steps (:func:`check_deadline`).  :func:`time_limit` sets it for the
calling thread only.

Examples
--------
>>> with time_limit(60.0):
...     check_deadline()      # plenty of time left: returns quietly
>>> check_deadline()          # no limit set outside the block
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RunTimeLimitExceeded", "check_deadline", "time_limit"]

_local = threading.local()


class RunTimeLimitExceeded(TimeoutError):
    """A run took longer than the time limit set with :func:`time_limit`."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Limit the wall time of the runs started in this thread inside the block.

    ``None`` or ``inf``: no limit.  Nested limits keep the earliest deadline.
    """
    previous = getattr(_local, "deadline", None)
    if seconds is None or not math.isfinite(seconds):
        yield
        return
    if not seconds > 0:
        raise ValueError(f"seconds must be a number > 0 or None, got {seconds!r}")
    deadline = time.monotonic() + seconds
    _local.deadline = deadline if previous is None else min(previous, deadline)
    _local.seconds = seconds
    try:
        yield
    finally:
        _local.deadline = previous


def check_deadline() -> None:
    """Raise :class:`RunTimeLimitExceeded` if this thread's time limit has passed."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise RunTimeLimitExceeded(
            f"time limit of {getattr(_local, 'seconds', math.nan):g} s exceeded")
