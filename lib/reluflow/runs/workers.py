r"""Where the runs of a sweep execute: process pools, Dask, and a time limit per run.

* :func:`process_pool` is the default executor of :func:`reluflow.runs.sweep.run`: a
  ``spawn`` process pool whose workers exit as soon as the process that created them
  dies (a watchdog thread in every worker), so a killed sweep leaves no orphan computing.
* :func:`as_executor` accepts any :class:`concurrent.futures.Executor` or a
  ``dask.distributed.Client``.
* :func:`guarded_call` runs one configuration on a worker with a time limit and turns an
  exception or an exceeded limit into an error record (the sweep goes on).  The
  integrators check the limit between steps in any thread
  (:mod:`reluflow.engine.deadline`); in a process's main thread (the process pools) a
  ``SIGALRM`` timer also stops code that never reaches an integrator step.

Examples
--------
>>> rec = guarded_call(abs, -2.0, time_limit=10.0)   # any picklable callable
>>> rec["status"], rec["value"] if "value" in rec else None
('error', None)
>>> guarded_call(lambda c: {"x": c}, 3, time_limit=10.0)["x"]
3
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import multiprocessing
import os
import platform
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from reluflow.engine.deadline import RunTimeLimitExceeded, time_limit

__all__ = [
    "TIME_LIMIT",
    "WorkerPool",
    "as_executor",
    "guarded_call",
    "process_pool",
]

#: Default time limit of one configuration (seconds): generous for the book's runs (a few
#: seconds each), it only stops a run that would never end.
TIME_LIMIT = 3600.0

RunFn = Callable[[Any], Mapping[str, Any]]


# --------------------------------------------------------------------------- pools
def _watch_parent(parent: int) -> None:
    """Pool-worker initializer: exit at once when the creating process is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="reluflow-parent-watch", daemon=True).start()


class WorkerPool(cf.ProcessPoolExecutor):
    """A ``spawn`` process pool whose workers die with the process that created them.

    :meth:`terminate` stops the workers at once (Ctrl-C), using the list of child
    processes the pool started, taken from :func:`multiprocessing.active_children`.
    """

    def __init__(self, workers: int) -> None:
        self._before = {p.pid for p in multiprocessing.active_children()}
        # "spawn": a clean interpreter per worker, safe even when the parent runs threads.
        super().__init__(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=_watch_parent, initargs=(os.getpid(),))

    def terminate(self) -> None:
        """Terminate every worker process this pool started."""
        for proc in multiprocessing.active_children():
            if proc.pid not in self._before:
                with contextlib.suppress(Exception):
                    proc.terminate()


def process_pool(workers: int | None) -> WorkerPool:
    """The default executor: a :class:`WorkerPool` of ``workers`` processes (default: cores)."""
    return WorkerPool(workers or os.cpu_count() or 1)


def as_executor(executor: Any) -> cf.Executor:
    """Accept a :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``."""
    if isinstance(executor, cf.Executor):
        return executor
    get = getattr(executor, "get_executor", None)
    if callable(get) and type(executor).__module__.startswith("distributed"):
        return get(pure=False)
    raise ValueError("executor must be a concurrent.futures.Executor or a "
                     f"dask.distributed.Client, got {type(executor).__name__}")


# --------------------------------------------------------------------------- one call
@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`RunTimeLimitExceeded` in this (main) thread after ``seconds``."""

    def fire(signum: int, frame: Any) -> None:
        raise RunTimeLimitExceeded(f"time limit of {seconds:g} s exceeded")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, old)


def _call(run_fn: RunFn, config: Any, seconds: float | None) -> dict[str, Any]:
    if seconds is None or not math.isfinite(seconds):
        return dict(run_fn(config))
    with time_limit(seconds):  # honoured by the integrators between steps, in any thread
        if threading.current_thread() is threading.main_thread() and hasattr(signal,
                                                                             "setitimer"):
            with _alarm(seconds):  # also stops code that never reaches an integrator step
                return dict(run_fn(config))
        return dict(run_fn(config))


def guarded_call(run_fn: RunFn, config: Any, time_limit: float | None = TIME_LIMIT
                 ) -> dict[str, Any]:
    """Run ``run_fn(config)`` on a worker; an exception or a timeout becomes an error record.

    Returns ``run_fn``'s dict plus ``status = "ok"``, ``wall_time`` and ``host``; or
    ``{"status": "error", "error", "traceback", "wall_time", "host"}``.
    ``BaseException`` (``KeyboardInterrupt``, ``SystemExit``) and a killed process are not
    caught: those are interruptions, not results, and the configuration stays to do.
    """
    t0 = time.perf_counter()
    try:
        res = _call(run_fn, config, time_limit)
    except Exception as exc:
        return {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "wall_time": time.perf_counter() - t0,
            "host": platform.node(),
        }
    res.setdefault("wall_time", time.perf_counter() - t0)
    res["status"] = "ok"
    res["host"] = platform.node()  # the machine that ran it (differs on a cluster)
    return res
