"""Tests of reluflow.engine.deadline: a per-thread wall-time limit."""

from __future__ import annotations

import threading
import time

import pytest

from reluflow.engine.deadline import RunTimeLimitExceeded, check_deadline, time_limit


def test_limit_applies_inside_the_block_only() -> None:
    with time_limit(0.05):
        check_deadline()
        time.sleep(0.1)
        with pytest.raises(RunTimeLimitExceeded, match=r"time limit of 0\.05 s exceeded"):
            check_deadline()
    check_deadline()  # restored


def test_nested_limits_keep_the_earliest_and_none_means_no_limit() -> None:
    with time_limit(0.05), time_limit(100.0):
        time.sleep(0.1)
        with pytest.raises(RunTimeLimitExceeded):
            check_deadline()
    with time_limit(None):
        check_deadline()
    with pytest.raises(ValueError, match="seconds must be"), time_limit(-1.0):
        pass


def test_limit_is_per_thread() -> None:
    seen: list[bool] = []

    def other() -> None:
        time.sleep(0.1)
        try:
            check_deadline()
            seen.append(True)
        except RunTimeLimitExceeded:
            seen.append(False)

    with time_limit(0.01):
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert seen == [True]


@pytest.mark.parametrize("run", ["flow", "descent"])
def test_integrators_check_the_limit_before_every_step(run: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A time-limited run stops within one step: the limit is checked before each step
    (counted here), and a passed limit raises at the first check."""
    from reluflow import TwoPointData, gradient_descent, gradient_flow, init_network
    from reluflow.engine import descent, flow

    params, data = init_network(10, 2, 1e-3, seed=0), TwoPointData(0.3, 0.7)
    go = (lambda: gradient_flow(params, data, 1e4)) if run == "flow" else \
        (lambda: gradient_descent(params, data, 0.05, 20.0))
    calls = [0]

    def counting() -> None:
        calls[0] += 1
        check_deadline()

    monkeypatch.setattr(flow if run == "flow" else descent, "check_deadline", counting)
    tr = go()
    assert calls[0] >= tr.info["steps"] > 0
    with time_limit(1e-9):
        time.sleep(1e-3)
        with pytest.raises(RunTimeLimitExceeded, match="time limit"):
            go()
    assert calls[0] >= tr.info["steps"] + 1
