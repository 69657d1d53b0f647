"""Sweeps of the beyond-two-points chapter: cluster spread, kappa, convergence orders."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from reluflow import TwoPointData, gradient_flow, init_network
from reluflow.analysis.early import cluster_rate, early_alignment
from reluflow.engine.datasets import ClusterData
from reluflow.runs.beyond import (
    ClusterRun,
    EscapeSweep,
    check_cluster_setting,
    cluster_sweep,
    drop_shares,
    escape_sweep,
    escape_time,
    spread_convergence,
)


@cache
def sweep() -> list[ClusterRun]:
    times = np.concatenate([[0.0], np.linspace(0.25, 120.0, 480)])
    return cluster_sweep(0.3, 0.7, [0.0, 0.02, 0.04], init_network(20, 2, 1e-6, seed=1),
                         n=3, seed=0, t_max=120.0, times=times)


@cache
def kappa_sweep(sigma: float) -> EscapeSweep:
    return escape_sweep(ClusterData(0.3, 0.7, sigma, n=3, seed=0), 20, [1e-3, 1e-5, 1e-7],
                        seed=1)


def test_cluster_sweep_runs_every_spread_on_the_same_start() -> None:
    runs = sweep()
    assert [r.sigma for r in runs] == [0.0, 0.02, 0.04]
    for r in runs:
        assert isinstance(r.data, ClusterData) and r.data.sigma == r.sigma
        assert np.array_equal(r.traj.a[0], runs[0].traj.a[0])
        assert r.report.regime == "general" and r.report.t_escape is not None
        assert math.isclose(r.rate, cluster_rate(r.data).rate, rel_tol=1e-9)
    # sigma = 0 is the two-point data set
    two = gradient_flow(init_network(20, 2, 1e-6, seed=1), TwoPointData(0.3, 0.7), 120.0,
                        times=runs[0].traj.t)
    t0, _ = escape_time(runs[0].traj)
    t2, _ = escape_time(two)
    # the same equations: equal to the integrator's tolerance accumulated over its steps
    tol = runs[0].traj.info["steps"] * runs[0].traj.info["rtol"]
    assert t0 is not None and t2 is not None and math.isclose(t0, t2, rel_tol=tol)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sigmas": []}, "non-empty increasing"),
        ({"sigmas": [0.02, 0.01]}, "non-empty increasing"),
        ({"sigmas": [0.2]}, "sigma must lie in"),
        ({"params": "p"}, "params must be a reluflow.Params"),
    ],
)
def test_cluster_sweep_refuses_bad_input(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"delta": 0.3, "p": 0.7, "sigmas": [0.0],
                               "params": init_network(4, 2, 1e-3, seed=0), **kw}
    with pytest.raises(ValueError, match=match):
        cluster_sweep(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_escape_slope_is_one_over_the_leading_rate(sigma: float) -> None:
    sw = kappa_sweep(sigma)
    lo, hi = sw.bounds
    assert sw.t_escape.shape == (3,) and np.all(np.diff(sw.t_escape) > 0)
    assert np.all(sw.t_error > 0) and np.all(np.isfinite(sw.t_error))
    assert math.isclose(lo, 1.0 / cluster_rate(ClusterData(0.3, 0.7, sigma, n=3)).rate,
                        rel_tol=1e-9)
    assert abs(sw.slope - lo) <= sw.slope_error + sw.mixing_tolerance
    assert 0 <= sw.mixing_tolerance <= hi - lo
    assert sw.local_slopes.shape == (2,)
    fit = np.polyfit(np.log(1 / sw.kappas), sw.t_escape, 1)
    assert math.isclose(sw.slope, fit[0]) and math.isclose(sw.intercept, fit[1])


def test_the_pull_of_the_slower_directions_is_measured_and_bounds_the_slopes() -> None:
    sw = kappa_sweep(0.05)
    lo = sw.bounds[0]
    assert sw.shares.shape == (3, len(sw.alignment.directions) + 1)
    assert np.allclose(sw.shares.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # the slower directions' shares shrink as kappa decreases, so the model slope falls
    slower = sw.shares[:, 1:].sum(axis=1)
    assert np.all(np.diff(slower) <= 0)
    assert np.all(np.diff(sw.model_slopes) <= 0) and np.all(sw.model_slopes >= lo * (1 - 1e-12))
    assert math.isclose(sw.mixing_tolerance, sw.model_slopes[0] - lo, rel_tol=1e-12, abs_tol=0)
    # every slope between consecutive scales lies within the pull and the timing errors
    err = (sw.t_error[1:] + sw.t_error[:-1]) / np.diff(np.log(1 / sw.kappas))
    assert np.all(np.abs(sw.local_slopes - lo) <= sw.mixing_tolerance + err)


def test_drop_shares_split_the_loss_drop_by_direction() -> None:
    data = TwoPointData(0.3, 0.7)
    params = init_network(20, 2, 1e-6, seed=0)
    align = early_alignment(data, init_network(20, 2, 1.0, seed=0))
    traj = gradient_flow(params, data, 40.0, times=np.linspace(0.0, 40.0, 161))
    t_esc, _ = escape_time(traj)
    assert t_esc is not None
    phi = drop_shares(traj, align, t_esc)
    assert phi.shape == (len(align.directions) + 1,) and math.isclose(phi.sum(), 1.0)
    # mu's share: the other directions grow at most at (1-p) sin(delta) < |mu|, starting
    # from comparable sizes, so by the escape (about 25 time units) they carry < 1e-3
    assert phi[0] > 0.999
    # read at the last recorded time before t: the same shares between two samples
    assert np.array_equal(drop_shares(traj, align, float(traj.t[100]) + 0.1),
                          drop_shares(traj, align, float(traj.t[100])))
    with pytest.raises(ValueError, match="t must lie in the run"):
        drop_shares(traj, align, 41.0)
    with pytest.raises(ValueError, match="has not started to drop"):
        drop_shares(traj, align, 0.0)
    with pytest.raises(ValueError, match="starts, the run"):
        drop_shares(traj, early_alignment(data, init_network(5, 2, 1.0, seed=0)), 10.0)
    with pytest.raises(ValueError, match="traj must be"):
        drop_shares("x", align, 10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alignment must be"):
        drop_shares(traj, "x", 10.0)  # type: ignore[arg-type]


def test_the_slope_moves_with_the_spread_at_second_order() -> None:
    a, b = kappa_sweep(0.0), kappa_sweep(0.05)
    shift = b.slope - a.slope
    predicted = b.bounds[0] - a.bounds[0]  # 1/lambda_1(sigma) - 1/|mu| ~ sigma^2/(2|mu|)
    assert predicted > 0
    assert abs(shift - predicted) <= (a.slope_error + a.mixing_tolerance
                                      + b.slope_error + b.mixing_tolerance)


def test_escape_time_and_its_error_bound() -> None:
    data = TwoPointData(0.3, 0.7)
    fine = gradient_flow(init_network(20, 2, 1e-6, seed=0), data, 40.0,
                         times=np.linspace(0.0, 40.0, 4001))
    coarse = gradient_flow(init_network(20, 2, 1e-6, seed=0), data, 40.0,
                           times=np.linspace(0.0, 40.0, 161))
    tf, ef = escape_time(fine)
    tc, ec = escape_time(coarse)
    assert tf is not None and tc is not None
    assert abs(tc - tf) <= ec + ef
    never = gradient_flow(init_network(20, 2, 1e-6, seed=0), data, 5.0)
    assert escape_time(never) == (None, pytest.approx(math.nan, nan_ok=True))
    with pytest.raises(ValueError, match="drop must lie in"):
        escape_time(fine, 1.5)
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        escape_time("x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"kappas": [1e-3]}, "at least two decreasing"),
        ({"kappas": [1e-5, 1e-3]}, "at least two decreasing"),
        ({"kappas": [1.5, 1e-3]}, "at least two decreasing"),
        ({"m": 0}, "m must be an integer >= 1"),
        ({"drop": 0.0}, "drop must lie in"),
        ({"n_times": 10}, "n_times must be an integer >= 50"),
    ],
)
def test_escape_sweep_refuses_bad_input(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"data": TwoPointData(0.3, 0.7), "m": 4,
                               "kappas": [1e-3, 1e-5], **kw}
    with pytest.raises(ValueError, match=match):
        escape_sweep(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("q", [1.0, 2.0, 3.0])
def test_spread_convergence_finds_the_order_of_a_regular_expansion(q: float) -> None:
    s = 0.1 * np.array([0.0, 0.125, 0.25, 0.5, 1.0])
    for c in (-3.0, 3.0):
        sc = spread_convergence(s, 2.0 * (1.0 + 0.7 * s**q * (1 + c * s)))
        assert abs(sc.order - q) <= sc.tolerance
        assert sc.local_orders.shape == (3,) and np.array_equal(sc.sigmas, s[1:])
    assert spread_convergence(s, 1.0 + s**q, allowance=0.5).tolerance >= 0.5


def test_spread_convergence_covers_an_irregular_first_order_error() -> None:
    """A first-order error whose coefficient wobbles with the step (like GD's chattering)."""
    h = 0.05 * np.array([0.0, 0.125, 0.25, 0.5, 1.0])
    wobble = np.array([0.0, 1.0, -1.0, 0.5, -0.5])
    sc = spread_convergence(h, 2.0 + 0.3 * h * (1 + 0.002 * wobble))
    assert abs(sc.order - 1.0) <= sc.tolerance
    assert sc.tolerance == pytest.approx(2 * float(np.ptp(sc.local_orders)))


@pytest.mark.parametrize(
    ("sigmas", "values", "kw", "match"),
    [
        ([0.0, 0.1, 0.2], [1.0, 2.0, 3.0], {}, "at least 3 more"),
        ([0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0], {}, "start at 0"),
        ([0.0, 0.1, 0.2, 0.4], [1.0, 2.0, 3.0], {}, "one value per sigma"),
        ([0.0, 0.1, 0.2, 0.4], [0.0, 2.0, 3.0, 4.0], {}, "non-zero"),
        ([0.0, 0.1, 0.2, 0.4], [1.0, 1.0, 3.0, 4.0], {}, "must be positive"),
        ([0.0, 0.1, 0.2, 0.4], [1.0, 2.0, 3.0, 4.0], {"allowance": -1.0}, "allowance"),
    ],
)
def test_spread_convergence_refuses_bad_input(sigmas: list[float], values: list[float],
                                              kw: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        spread_convergence(sigmas, values, **kw)


def test_cluster_sweep_refuses_a_run_the_integrator_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import reluflow.runs.beyond as rb

    real = rb.gradient_flow

    def stopping(*args: object, **kw: object) -> object:
        traj = real(*args, **kw)  # type: ignore[arg-type]
        traj.info["stop"] = {"reason": "stiff", "t": 3.0}
        return traj

    monkeypatch.setattr(rb, "gradient_flow", stopping)
    with pytest.raises(RuntimeError, match=r"sigma = 0.02 stopped before t_max = 5: .*stiff"):
        cluster_sweep(0.3, 0.7, [0.02], init_network(4, 2, 1e-3, seed=0), n=2, t_max=5.0)


def test_summaries_of_a_sweep_and_of_a_run() -> None:
    from reluflow.analysis.early import early_alignment
    from reluflow.analysis.measure import effective_directions_series
    from reluflow.analysis.patterns import first_event_times, pattern_changes
    from reluflow.runs.beyond import summarize_clusters, summarize_run

    times = np.concatenate([[0.0], np.linspace(0.25, 120.0, 480), np.geomspace(130, 1e8, 30)])
    params = init_network(16, 2, 1e-6, seed=1)
    runs = cluster_sweep(0.3, 0.7, [0.0, 0.01, 0.02, 0.04], params, n=3, t_max=1e8, times=times)
    two = gradient_flow(params, TwoPointData(0.3, 0.7), 1e8, times=times)
    slopes = [kappa_sweep(0.0), kappa_sweep(0.05)]
    summ = summarize_clusters(runs, two, slopes)
    assert set(summ.convergence) == {"escape time", "plateau exit", "final margin"}
    assert abs(summ.rate_convergence.order - 2.0) <= summ.rate_convergence.tolerance
    assert summ.zero_error <= runs[0].traj.info["steps"] * runs[0].traj.info["rtol"]
    n = summ.numbers
    assert n["slope0"][0] == slopes[0].slope and n["rate0"][0] == runs[0].rate
    assert n["sigma_max"][0] == 0.04
    for r in runs:  # main regime: the class fitted first is +1
        assert r.report.values["leading_class"] == 1
        first = first_event_times(r.traj, "reactivation")[r.data.y > 0]
        assert np.array_equal(r.first_reactivations(), first[np.isfinite(first)])
    # sigma = 0: the copies of x+ are one point, so one reactivation time
    assert runs[0].first_reactivations().size == 3 and n["react_spread0"][0] == 0.0
    assert n["sigma_min"][0] == 0.01
    assert n["react_last_min"][0] == float(np.max(runs[1].first_reactivations()))
    assert n["react_spread_min"][0] == float(np.ptp(runs[1].first_reactivations()))
    assert all(isinstance(fmt, str) for _, fmt in n.values())
    with pytest.raises(ValueError, match="start at sigma = 0"):
        summarize_clusters(runs[1:], two, slopes)
    traj = runs[-1].traj
    rep, ch = runs[-1].report, pattern_changes(traj)
    neff = effective_directions_series(traj)
    out = summarize_run(traj, rep, ch, neff, early_alignment(runs[-1].data, params))
    assert out["t_escape"][0] == rep.t_escape and out["neff_start"][0] == neff[0]
    assert out["deact"][0] == float(ch.total("deactivation")[-1])
    assert out["lam1"][0] == pytest.approx(runs[-1].rate)


def test_check_cluster_setting_refuses_what_the_two_point_picture_cannot_describe() -> None:
    check_cluster_setting(0.3, 0.7, 0.07, 8, 0)       # apart: passes
    check_cluster_setting(0.5, 0.3, 0.12, 3, 2)       # mirror regime: passes
    with pytest.raises(ValueError, match="main or mirror regime"):
        check_cluster_setting(0.8, 0.55, 0.05, 8, 0)  # p near 1/2: mu active on x+ only
    with pytest.raises(ValueError, match="sigma_max < delta/3"):
        check_cluster_setting(0.3, 0.7, 0.1, 8, 0)
    # 0.08 at n = 8, seed 0 puts a positive point (0.1368 rad) beyond a negative one (0.1322)
    with pytest.raises(ValueError, match="interleaves the clusters drawn with n = 8, seed = 0"):
        check_cluster_setting(0.3, 0.7, 0.08, 8, 0)
    check_cluster_setting(0.3, 0.7, 0.08, 3, 0)       # the same spread with 3 points: apart
    with pytest.raises(ValueError, match="n must be"):
        check_cluster_setting(0.3, 0.7, 0.05, 1, 0)
