"""The named behaviours read off a run, and the reader's table."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from reluflow import Trajectory, TwoPointData, gradient_flow, init_network
from reluflow.analysis.behaviours import (
    BEHAVIOURS,
    Behaviour,
    behaviour_table,
    behaviours,
    direction_change,
)
from reluflow.analysis.general_phases import detect_phases_general
from reluflow.analysis.geometry import mu
from reluflow.analysis.patterns import pattern_changes


@cache
def long_run() -> Trajectory:
    times = np.concatenate([[0.0], np.linspace(0.5, 150.0, 300), np.geomspace(160, 1e30, 60)])
    return gradient_flow(init_network(60, 2, 1e-6, seed=0), TwoPointData(0.3, 0.7), 1e30,
                         times=times)


def _behaviours(traj: Trajectory) -> list[Behaviour]:
    rate = float(np.linalg.norm(mu(traj.data)))
    return behaviours(traj, detect_phases_general(traj), pattern_changes(traj), rate)


def test_a_two_point_run_shows_every_behaviour_in_order() -> None:
    out = _behaviours(long_run())
    assert [b.name for b in out] == list(BEHAVIOURS)
    assert all(b.observed for b in out), [b.evidence for b in out if not b.observed]
    times = [b.time for b in out]
    assert all(t is not None for t in times[:5]) and times[5] is None  # a limit, not a moment
    # condensation, plateau entry and its exit come in this order
    assert times[0] < times[1] < times[2]  # type: ignore[operator]
    for b in out:
        assert "nan" not in b.evidence and "inf" not in b.evidence


def test_a_run_stopped_at_the_saddle_shows_only_condensation() -> None:
    traj = gradient_flow(init_network(30, 2, 1e-6, seed=0), TwoPointData(0.3, 0.7), 20.0,
                         times=np.linspace(0, 20, 81))
    out = _behaviours(traj)
    observed = {b.name: b.observed for b in out}
    assert observed["initial condensation"]
    for name in ("saddle to plateau", "plateau escape", "directional convergence"):
        assert not observed[name]
    for b in out:
        if not b.observed:
            assert b.time is None and b.evidence.startswith("no")
        assert "nan" not in b.evidence


def test_a_short_plateau_is_not_counted() -> None:
    """The same run judged with a huge leading rate: its plateau is shorter than 1/rate."""
    traj = long_run()
    out = behaviours(traj, detect_phases_general(traj), pattern_changes(traj), 1e-3)
    assert not out[1].observed and "e-folding" in out[1].evidence
    assert not out[2].observed


def test_direction_change() -> None:
    traj = long_run()
    assert direction_change(traj) < 1e-2
    assert direction_change(traj, 25.0) > direction_change(traj, 1.0)
    with pytest.raises(ValueError, match="decades must be"):
        direction_change(traj, 0.0)
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        direction_change("x")  # type: ignore[arg-type]


def test_table_is_github_markdown_with_one_row_per_behaviour() -> None:
    cols = {"a": _behaviours(long_run()),
            "b": [Behaviour(n, False, None, "no: x|y") for n in BEHAVIOURS]}
    lines = behaviour_table(cols).splitlines()
    assert lines[0] == "| behaviour | a | b |" and lines[1] == "|---|---|---|"
    assert len(lines) == 2 + len(BEHAVIOURS)
    for line, name in zip(lines[2:], BEHAVIOURS, strict=True):
        assert line.startswith(f"| {name} | yes") and line.endswith("no: x/y |")
        assert line.count("|") == 4
    one = {"x|y": cols["b"]}  # a setting's name is escaped, a cell's | reads /
    assert behaviour_table(one).splitlines()[:3] == [
        "| behaviour | x\\|y |", "|---|---|", "| initial condensation | no: x/y |"]


def test_table_and_behaviours_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one setting"):
        behaviour_table({})
    with pytest.raises(ValueError, match="in order"):
        behaviour_table({"a": [Behaviour("x", True, 1.0, "e")]})
    traj = long_run()
    rep, pc = detect_phases_general(traj), pattern_changes(traj)
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        behaviours(None, rep, pc, 0.4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="report must be a PhaseReport"):
        behaviours(traj, None, pc, 0.4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="changes must be a PatternChanges"):
        behaviours(traj, rep, None, 0.4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate must be"):
        behaviours(traj, rep, pc, 0.0)
    with pytest.raises(ValueError, match="rise must be"):
        behaviours(traj, rep, pc, 0.4, rise=-1.0)
    with pytest.raises(ValueError, match="dir_tol must be"):
        behaviours(traj, rep, pc, 0.4, dir_tol=0.0)
