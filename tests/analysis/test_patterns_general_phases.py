"""Pattern changes per point and phase detection on any data (reluflow.analysis.patterns,
reluflow.analysis.general_phases), on exact-flow and gradient-descent runs."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from reluflow import (
    Dataset,
    Trajectory,
    TwoPointData,
    detect_phases,
    gradient_descent,
    gradient_flow,
    init_network,
)
from reluflow.analysis import general_phases as gp
from reluflow.analysis import measure as ms
from reluflow.analysis import patterns as pt
from reluflow.analysis import theory as th
from reluflow.analysis.behaviours import behaviours
from reluflow.engine.datasets import ClusterData
from reluflow.engine.trajectory import make_events


@cache
def two_point_run(delta: float, p: float, seed: int = 0) -> Trajectory:
    data = TwoPointData(delta, p)
    times = np.concatenate([[0.0], np.linspace(0.5, 150.0, 300), np.geomspace(160, 1e30, 60)])
    return gradient_flow(init_network(80, 2, 1e-6, seed=seed), data, 1e30, times=times)


@cache
def cluster_run() -> Trajectory:
    data = ClusterData(0.3, 0.7, 0.03, n=3, seed=0)
    times = np.concatenate([[0.0], np.linspace(0.5, 150.0, 300), np.geomspace(160, 1e30, 60)])
    return gradient_flow(init_network(40, 2, 1e-6, seed=1), data, 1e30, times=times)



# --------------------------------------------------------------------------- pattern changes
def test_classify_events_tracks_each_pair() -> None:
    ev = make_events([(0.5, 1, 0, "activate"), (1.0, 1, 0, "deactivate"),
                      (1.5, 1, 1, "deactivate"), (2.0, 1, 0, "activate"),
                      (2.5, 3, 1, "slide-end"), (3.0, 1, 1, "activate")])
    assert pt.classify_events(ev).tolist() == [
        "activation", "deactivation", "deactivation", "reactivation", "", "reactivation"]
    assert pt.classify_events(make_events([])).size == 0


def test_classify_events_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="structured array"):
        pt.classify_events(np.zeros(3))
    ev = make_events([(1.0, 0, 0, "activate"), (2.0, 0, 0, "deactivate")])[::-1]
    with pytest.raises(ValueError, match="sorted by time"):
        pt.classify_events(ev)


@pytest.mark.parametrize("which", ["two_point", "clusters"])
def test_counts_close_the_books_on_every_pair(which: str) -> None:
    """initial activity + activations + reactivations - deactivations = final activity."""
    traj = two_point_run(0.3, 0.7) if which == "two_point" else cluster_run()
    pc = pt.pattern_changes(traj)
    labels = pt.classify_events(traj.events)
    n = traj.data.n
    up = np.zeros((traj.m, n), dtype=int)
    for lab, k, i in zip(labels, traj.events["neuron"], traj.events["index"], strict=True):
        up[k, i] += {"deactivation": -1, "reactivation": 1, "activation": 1, "": 0}[lab]
    start = (traj.pattern[0] == 1).astype(int)
    end = (traj.pattern[-1] == 1).astype(int)
    assert np.array_equal(start + up, end)
    for kind in pt.CHANGE_KINDS:
        c = pc.counts[kind]
        assert c.shape == (traj.t.size, n) and np.all(np.diff(c, axis=0) >= 0)
        assert int(c[-1].sum()) == int(np.sum(labels == kind))
        assert np.array_equal(pc.per_point(kind), c[-1])
        assert np.array_equal(pc.total(kind), c.sum(axis=1))
        assert np.array_equal(pc.total(kind, 1) + pc.total(kind, -1), pc.total(kind))


def test_counts_on_a_coarser_grid_and_for_gradient_descent() -> None:
    traj = two_point_run(0.3, 0.7)
    grid = np.array([1.0, 40.0, 1e30])
    pc = pt.pattern_changes(traj, grid)
    for kind in pt.CHANGE_KINDS:
        lab = pt.classify_events(traj.events) == kind
        for j, tj in enumerate(grid):
            assert int(pc.counts[kind][j].sum()) == int(np.sum(lab & (traj.events["t"] <= tj)))
    gd = gradient_descent(init_network(20, 2, 1e-3, seed=0), traj.data, 0.05, 60.0)
    pg = pt.pattern_changes(gd)
    assert int(pg.total("deactivation")[-1]) == int(np.sum(gd.events["kind"] == "deactivate"))


@pytest.mark.parametrize("which", ["two_point", "clusters"])
def test_first_event_times_are_the_exact_times_behind_the_grid_ones(which: str) -> None:
    traj = two_point_run(0.3, 0.7) if which == "two_point" else cluster_run()
    pc = pt.pattern_changes(traj)
    labels = pt.classify_events(traj.events)
    for kind in pt.CHANGE_KINDS:
        exact = pt.first_event_times(traj, kind)
        grid = pc.first_times(kind)
        assert np.array_equal(np.isfinite(exact), np.isfinite(grid))
        for i in np.flatnonzero(np.isfinite(exact)):
            sel = (labels == kind) & (traj.events["index"] == i)
            assert exact[i] == traj.events["t"][sel].min()
            # the grid time is the first recorded time at or after the event
            assert grid[i] == traj.t[np.searchsorted(traj.t, exact[i], side="left")]
    with pytest.raises(ValueError, match="kind must be one of"):
        pt.first_event_times(traj, "death")
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        pt.first_event_times("run", "activation")  # type: ignore[arg-type]


def test_longest_hold() -> None:
    traj = two_point_run(0.3, 0.7)
    hold = pt.longest_hold(traj)
    assert hold is not None
    k, i, t0, t1 = hold
    col = int(np.flatnonzero(traj.neurons == k)[0])
    inside = (traj.t >= t0) & (traj.t <= t1)
    assert np.all(traj.pattern[inside, col, i] == 0) and t1 > t0
    # no other pair is held over more consecutive samples
    held = (traj.pattern == 0).astype(int)
    longest = 0
    for kk in range(traj.m):
        for ii in range(traj.data.n):
            run = best = 0
            for h in held[:, kk, ii]:
                run = run + 1 if h else 0
                best = max(best, run)
            longest = max(longest, best)
    assert int(inside.sum()) == longest
    gd = gradient_descent(init_network(5, 2, 1e-3, seed=0), traj.data, 0.1, 5.0)
    assert pt.longest_hold(gd) is None  # descent never sits exactly on a boundary
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        pt.longest_hold(None)  # type: ignore[arg-type]


def test_pattern_changes_refuses_bad_input() -> None:
    traj = two_point_run(0.3, 0.7)
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        pt.pattern_changes("run")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strictly increasing"):
        pt.pattern_changes(traj, [2.0, 1.0])
    pc = pt.pattern_changes(traj)
    with pytest.raises(ValueError, match="kind must be one of"):
        pc.total("death")
    with pytest.raises(ValueError, match="label must be"):
        pc.total("deactivation", 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        pc.per_point("death")


# --------------------------------------------------------------------------- general phases
@pytest.mark.parametrize(("delta", "p"), [(0.3, 0.7), (0.5, 0.3)])
def test_general_detection_reproduces_the_two_point_times(delta: float, p: float) -> None:
    traj = two_point_run(delta, p)
    data = traj.data
    two = detect_phases(traj, data)
    gen = gp.detect_phases_general(traj, data)
    assert gen.regime == "general"
    assert gen.values["leading_class"] == (1 if th.regime(data) == "main" else -1)
    for key in ("t_escape", "t_plateau", "t_plateau_escape", "t_phase4"):
        a, b = getattr(two, key), getattr(gen, key)
        assert a is not None and b is not None, key
        assert math.isclose(a, b, rel_tol=1e-9), (key, a, b)
    assert math.isclose(two.values["plateau_loss"], gen.values["plateau_loss"], rel_tol=1e-9)
    # end of Phase I: about the group's own mean instead of mu; within two samples
    dt = float(np.max(np.diff(traj.t[traj.t <= 150])))
    assert two.t_condensed is not None and gen.t_condensed is not None
    assert abs(two.t_condensed - gen.t_condensed) <= 2 * dt
    assert two.t_reactivation is not None and gen.t_reactivation is not None
    assert abs(two.t_reactivation - gen.t_reactivation) <= 2 * dt
    assert gen.values["n_eff_min"] >= 1.0 and gen.values["n_eff_final"] > gen.values["n_eff_min"]
    assert gen.values["final_margin"] == float(traj.normalized_margin()[-1])


def test_general_detection_on_clusters_orders_the_phases() -> None:
    traj = cluster_run()
    rep = gp.detect_phases_general(traj)
    times = [rep.t_condensed, rep.t_escape, rep.t_plateau, rep.t_plateau_escape, rep.t_phase4]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    assert math.isclose(rep.values["plateau_duration"], times[3] - times[2])  # type: ignore[operator]
    assert 0.3 <= rep.values["plateau_loss"] <= 0.5


def test_no_plateau_when_both_classes_are_fitted_together() -> None:
    """p = 1/2 at a wide angle: two groups, equal rates, each fits its own point."""
    data = TwoPointData(1.2, 0.5)
    times = np.concatenate([[0.0], np.linspace(0.5, 300.0, 600), np.geomspace(310, 1e4, 30)])
    traj = gradient_flow(init_network(30, 2, 1e-6, seed=0), data, 1e4, times=times)
    rep = gp.detect_phases_general(traj)
    assert rep.t_escape is not None and rep.t_plateau is not None
    # the loss never stays flat after the leader leaves the waiting point
    assert rep.values["plateau_flat"] <= float(np.max(np.diff(times[:600])))


def test_waiting_class_fitted_while_still_fed_means_no_plateau() -> None:
    """A hand-made record: the leader (a > 0) stays active on x- while x- gets fitted."""
    data = TwoPointData(0.3, 0.5)
    t = np.linspace(0.0, 10.0, 101)
    f = np.stack([0.3 * t, -0.2 * t], axis=1)
    loss = 0.5 * np.exp(-f[:, 0]) + 0.5 * np.exp(f[:, 1])
    T = t.size
    a = np.tile([1.0, -1.0], (T, 1)) * (1 + t)[:, None]
    B = np.tile(np.array([[1.0, 0.05], [0.2, 1.0]]), (T, 1, 1)) * (1 + t)[:, None, None]
    traj = Trajectory(t=t, loss=loss, f=f, a=a, B=B, pattern=np.ones((T, 2, 2), dtype=np.int8),
                      events=make_events([]), drift=np.zeros(T), neurons=np.arange(2),
                      data=data)
    rep = gp.detect_phases_general(traj)
    fitted = math.log(2.0) / 0.2  # the waiting class margin 0.2 t reaches log 2
    assert rep.values["leading_class"] == 1
    assert rep.t_plateau == pytest.approx(fitted, abs=0.1)
    assert rep.t_plateau_escape == rep.t_plateau
    assert rep.values["plateau_duration"] == 0.0 and rep.values["plateau_flat"] == 0.0
    assert math.isnan(rep.values["plateau_loss"])
    beh = behaviours(traj, rep, pt.pattern_changes(traj), 0.3)
    assert not beh[1].observed and "before the leader group stops feeding it" in beh[1].evidence
    assert not beh[2].observed


def test_series_helpers() -> None:
    traj = two_point_run(0.3, 0.7)
    R = gp.class_residuals(traj)
    assert math.isclose(float(R[1][0]), 1.0, rel_tol=1e-6) and R[-1][-1] < 1e-20
    q = traj.f * traj.data.y[None, :]
    assert np.allclose(R[1], np.exp(-q[:, 0])) and np.allclose(R[-1], np.exp(-q[:, 1]))
    neff = ms.effective_directions_series(traj)
    for j in (0, 50, -1):
        assert neff[j] == ms.effective_directions(traj, j)
    s = gp.group_share(traj, 1, -1)
    assert np.all((s >= 0) & (s <= 1))
    spread = gp.group_spread(traj, 1)
    assert np.all(spread[np.isfinite(spread)] >= 0)
    assert spread[-1] < 1e-6  # positive group on one direction at the end


def test_a_run_that_never_escapes_reports_none() -> None:
    data = TwoPointData(0.3, 0.7)
    traj = gradient_flow(init_network(20, 2, 1e-6, seed=0), data, 5.0)
    rep = gp.detect_phases_general(traj)
    assert rep.t_escape is None and rep.t_plateau is None and rep.t_phase4 is None
    assert math.isnan(rep.values["plateau_loss"]) and math.isnan(rep.values["plateau_duration"])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"spread_tol": 0.0}, "spread_tol must lie in"),
        ({"drop": 1.0}, "drop must lie in"),
        ({"phase4_margin": -1.0}, "phase4_margin must be"),
        ({"direction_tol": 4.0}, "tol must lie in"),
        ({"data": TwoPointData(0.4, 0.7)}, "data must be the data set"),
        ({"data": "x"}, "data must be a reluflow.Dataset"),
    ],
)
def test_general_detection_refuses_bad_input(kw: dict[str, object], match: str) -> None:
    traj = two_point_run(0.3, 0.7)
    with pytest.raises(ValueError, match=match):
        gp.detect_phases_general(traj, **kw)  # type: ignore[arg-type]


def test_general_detection_needs_both_labels_and_a_trajectory() -> None:
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        gp.detect_phases_general(None)  # type: ignore[arg-type]
    one = Dataset([[1.0, 0.0], [0.8, 0.6]], [1, 1])
    traj = gradient_flow(init_network(4, 2, 1e-3, seed=0), one, 1.0)
    with pytest.raises(ValueError, match="both labels"):
        gp.detect_phases_general(traj)
    with pytest.raises(ValueError, match="sign and label must be"):
        gp.group_share(two_point_run(0.3, 0.7), 0, 1)
    with pytest.raises(ValueError, match="sign must be"):
        gp.group_spread(two_point_run(0.3, 0.7), 2)
