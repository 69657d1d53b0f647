"""Tests of reluflow.runs.workers: time limits, error records, workers dying with the parent."""

from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from reluflow.engine.deadline import check_deadline
from reluflow.runs.workers import WorkerPool, as_executor, guarded_call, process_pool


def sleeping_run(config: dict[str, Any]) -> dict[str, Any]:
    """Python code that never reaches an integrator step (only a signal can stop it)."""
    time.sleep(config["sleep"])
    return {"slept": config["sleep"]}


def stepping_run(config: dict[str, Any]) -> dict[str, Any]:
    """A loop that checks the limit between steps, like the integrators."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < config["sleep"]:
        check_deadline()
        time.sleep(0.01)
    return {"slept": config["sleep"]}


def failing_run(config: dict[str, Any]) -> dict[str, Any]:
    raise ArithmeticError("deliberate")


def test_success_and_failure_records() -> None:
    ok = guarded_call(sleeping_run, {"sleep": 0.0}, time_limit=5.0)
    assert ok["status"] == "ok" and ok["slept"] == 0.0 and ok["host"] and ok["wall_time"] >= 0
    bad = guarded_call(failing_run, {}, time_limit=5.0)
    assert bad["status"] == "error" and bad["error"] == "ArithmeticError: deliberate"
    assert "Traceback" in bad["traceback"]


def test_main_thread_limit_stops_any_code() -> None:
    t0 = time.monotonic()
    rec = guarded_call(sleeping_run, {"sleep": 30.0}, time_limit=0.3)
    assert time.monotonic() - t0 < 10.0
    assert rec["status"] == "error" and "time limit of 0.3 s exceeded" in rec["error"]


def test_thread_limit_stops_a_stepping_run() -> None:
    with cf.ThreadPoolExecutor(1) as ex:
        rec = ex.submit(guarded_call, stepping_run, {"sleep": 30.0}, 0.3).result(timeout=20)
    assert rec["status"] == "error" and "time limit" in rec["error"]


@pytest.mark.slow  # starts processes
def test_process_pool_limit_stops_the_run_and_the_pool_goes_on() -> None:
    with process_pool(1) as pool:
        slow = pool.submit(guarded_call, sleeping_run, {"sleep": 30.0}, 0.5)
        fast = pool.submit(guarded_call, sleeping_run, {"sleep": 0.0}, 5.0)
        assert slow.result(timeout=60)["status"] == "error"
        assert fast.result(timeout=60)["status"] == "ok"


def test_as_executor_accepts_executors_only() -> None:
    with cf.ThreadPoolExecutor(1) as ex:
        assert as_executor(ex) is ex
    with pytest.raises(ValueError, match="executor must be"):
        as_executor(object())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie has exited
        return fh.read().split()[2] != "Z"


@pytest.mark.slow  # starts processes
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_workers_exit_when_the_coordinator_is_killed(tmp_path: Any) -> None:
    script = textwrap.dedent("""
        import sys, time
        from reluflow.runs.workers import process_pool
        from tests_workers_helper import sleeping_pid
        pool = process_pool(2)
        futs = [pool.submit(sleeping_pid, 60.0) for _ in range(2)]
        time.sleep(3.0)
        import multiprocessing
        print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
        time.sleep(60)
    """)
    (tmp_path / "tests_workers_helper.py").write_text(
        "import time\n\ndef sleeping_pid(s):\n    time.sleep(s)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    assert proc.stdout is not None
    pids = [int(x) for x in proc.stdout.readline().split()]
    assert pids and all(_alive(p) for p in pids)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)


@pytest.mark.slow  # starts processes
def test_terminate_stops_only_the_pool_workers() -> None:
    pool = WorkerPool(1)
    fut = pool.submit(sleeping_run, {"sleep": 60.0})
    time.sleep(2.0)
    pool.terminate()
    with pytest.raises(cf.process.BrokenProcessPool):
        fut.result(timeout=30)
    pool.shutdown(wait=True, cancel_futures=True)
