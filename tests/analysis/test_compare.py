"""Comparison baselines and measurements (reluflow.analysis.compare)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from reluflow import Params, Trajectory, TwoPointData, gradient_descent, gradient_flow, init_network
from reluflow.analysis.compare import (
    MethodRun,
    boundary_distance,
    compare_methods,
    convergence_order,
    output_error,
    sliding_neurons,
    solve_ivp_flow,
)

DATA = TwoPointData(delta=0.3, p=0.8)


@pytest.fixture(scope="module")
def sliding_run() -> Trajectory:
    """Main regime, κ = 1e-2, m = 20 to t = 40: negative neurons slide on x+, positive on x-."""
    return gradient_flow(init_network(20, 2, 1e-2, seed=0), DATA, 40.0,
                         times=np.linspace(0.0, 40.0, 81))


def test_solve_ivp_matches_the_closed_form_of_one_neuron_active_on_both_points() -> None:
    # a = |b|, b along mu, active on both points: with f small the flow is linear
    # only approximately, so compare with the engine (which is exact on this smooth piece)
    mu = DATA.weights[0] * DATA.x_plus - DATA.weights[1] * DATA.x_minus
    b = 0.3 * mu / np.linalg.norm(mu)
    params = Params(np.array([0.3]), b[None, :])
    times = np.linspace(0.0, 2.0, 11)
    ivp = solve_ivp_flow(params, DATA, 2.0, times=times, rtol=1e-11, atol=1e-13)
    ref = gradient_flow(params, DATA, 2.0, times=times, rtol=1e-12)
    assert output_error(ivp, ref) < 1e-8
    assert ivp.invariant_drift < 1e-8
    assert np.all(ivp.pattern == 1)
    assert ivp.f[-1, 0] > ivp.f[0, 0]  # it did move
    assert ivp.info["method"] == "solve_ivp:RK45"
    assert ivp.info["nfev"] > 0 and ivp.info["wall_time"] >= 0.0


def test_solve_ivp_records_sign_patterns_and_their_changes() -> None:
    params = init_network(6, 2, 0.1, seed=3)
    times = np.linspace(0.0, 5.0, 21)
    tr = solve_ivp_flow(params, DATA, 5.0, times=times, rtol=1e-3, method="RK23",
                        neurons=[1, 4])
    pre = np.einsum("tkd,nd->tkn", tr.B, DATA.X)
    assert set(np.unique(tr.pattern)) <= {-1, 1}
    assert np.array_equal(tr.pattern == 1, pre > 0)
    assert tr.a.shape == (21, 2) and list(tr.neurons) == [1, 4]
    flips = int(np.sum(tr.pattern[1:] != tr.pattern[:-1]))
    assert tr.events.size == flips
    assert set(tr.events["neuron"]) <= {1, 4}
    # the loss follows the flow downhill (up to the solver's tolerance)
    assert np.all(np.diff(tr.loss) <= 1e-3)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"method": "BDF"}, "method must be one of"),
        ({"rtol": 0.5}, r"rtol must lie in \[1e-13, 1e-1\]"),
        ({"rtol": 1e-15}, "rtol must lie"),
        ({"atol": 0.0}, "atol"),
        ({"atol": -1.0}, "atol"),
        ({"loss": "hinge"}, "loss"),
        ({"times": [0.0, 3.0, 2.0]}, "times"),
    ],
)
def test_solve_ivp_rejects_bad_input(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        solve_ivp_flow(init_network(3, 2, 0.1, seed=0), DATA, 3.0, **kw)  # type: ignore[arg-type]


def test_solve_ivp_rejects_bad_horizon_and_shapes() -> None:
    with pytest.raises(ValueError, match="t_max"):
        solve_ivp_flow(init_network(3, 2, 0.1), DATA, -1.0)
    with pytest.raises(ValueError, match=r"d = data\.d"):
        solve_ivp_flow(init_network(3, 3, 0.1), DATA, 1.0)


def test_output_error_is_the_max_abs_difference(sliding_run: Trajectory) -> None:
    assert output_error(sliding_run, sliding_run) == 0.0
    f = sliding_run.f.copy()
    f[7, 1] += 0.25
    f[3, 0] -= 0.1
    other = replace(sliding_run, f=f)
    assert output_error(other, sliding_run) == pytest.approx(0.25, abs=1e-15)
    f[2, 0] = np.nan
    assert output_error(replace(sliding_run, f=f), sliding_run) == math.inf


def test_output_error_needs_a_common_grid(sliding_run: Trajectory) -> None:
    short = gradient_flow(init_network(20, 2, 1e-2, seed=0), DATA, 40.0,
                          times=np.linspace(0.0, 40.0, 41))
    with pytest.raises(ValueError, match="same times"):
        output_error(short, sliding_run)
    with pytest.raises(ValueError, match=r"reference must be a reluflow\.Trajectory"):
        output_error(sliding_run, "run")  # type: ignore[arg-type]


def test_sliding_neurons_are_held_and_sit_exactly_on_their_boundary(
    sliding_run: Trajectory,
) -> None:
    for i in (0, 1):
        ks = sliding_neurons(sliding_run, i)
        assert ks.size > 0, f"no neuron slides on point {i} in this run"
        counts = [(sliding_run.pattern[:, k, i] == 0).sum() for k in ks]
        assert counts == sorted(counts, reverse=True)
        for k in ks:
            held = sliding_run.pattern[:, k, i] == 0
            dist = boundary_distance(sliding_run, int(k), i)
            assert np.all(np.abs(dist[held]) <= 1e-12)
            assert np.all(np.abs(dist[~held & (sliding_run.pattern[:, k, i] == 1)]) > 0)
    both = set(sliding_neurons(sliding_run).tolist())
    assert both == set(sliding_neurons(sliding_run, 0).tolist()) | set(
        sliding_neurons(sliding_run, 1).tolist())


def test_boundary_distance_values_and_errors(sliding_run: Trajectory) -> None:
    tr = replace(sliding_run, B=np.zeros_like(sliding_run.B))
    tr.B[:, 0, :] = [3.0, 4.0]
    # x+ = e1: 3/5; x- = (cos .3, sin .3): (3 cos .3 + 4 sin .3)/5
    assert boundary_distance(tr, 0, 0) == pytest.approx(np.full(tr.t.size, 0.6))
    assert boundary_distance(tr, 0, 1)[0] == pytest.approx(
        (3 * math.cos(0.3) + 4 * math.sin(0.3)) / 5)
    assert np.all(boundary_distance(tr, 1, 0) == 0.0)  # b = 0
    with pytest.raises(ValueError, match="neuron must be one of the recorded neurons"):
        boundary_distance(tr, 99, 0)
    with pytest.raises(ValueError, match=r"index must be a data point index in \[0, 1\]"):
        boundary_distance(tr, 0, 2)
    with pytest.raises(ValueError, match="traj must be"):
        sliding_neurons("run")  # type: ignore[arg-type]


def test_convergence_order_recovers_a_power_law() -> None:
    h = np.array([0.1, 0.05, 0.02, 0.01])
    assert convergence_order(h, 3.0 * h**1) == pytest.approx(1.0, abs=1e-12)
    assert convergence_order(h, 0.5 * h**2) == pytest.approx(2.0, abs=1e-12)
    for steps, errs, match in [
        ([0.1], [1.0], "at least two distinct"),
        ([0.1, 0.1], [1.0, 2.0], "at least two distinct"),
        ([0.1, -0.1], [1.0, 2.0], "> 0"),
        ([0.1, 0.2], [0.0, 2.0], "> 0"),
        ([0.1, 0.2], [1.0], "equal length"),
    ]:
        with pytest.raises(ValueError, match=match):
            convergence_order(steps, errs)


def test_compare_methods_ranks_the_methods_and_gd_is_first_order() -> None:
    params = init_network(10, 2, 1e-2, seed=1)
    times = np.linspace(0.0, 20.0, 41)
    rows, ref = compare_methods(
        params, DATA, 20.0, times, engine_rtols=(1e-5, 1e-8), gd_lrs=(0.1, 0.05, 0.025),
        ivp_rtols=(1e-3,), reference_rtol=1e-11)
    assert [r.method for r in rows] == ["engine"] * 2 + ["gradient descent"] * 3 + [
        "solve_ivp RK45"]
    assert all(isinstance(r, MethodRun) and r.wall_time >= 0 for r in rows)
    eng, gd, ivp = rows[:2], rows[2:5], rows[5]
    # engine error tracks its tolerance; the tight run beats every baseline by far
    assert eng[1].error < eng[0].error
    assert eng[1].error < 1e-6 < gd[-1].error
    assert all(r.drift < 1e-12 for r in eng)
    # gradient descent: errors and invariant drift shrink like lr
    q = convergence_order([r.step for r in gd], [r.error for r in gd])
    assert 0.8 < q < 1.2
    assert gd[0].drift > gd[1].drift > gd[2].drift > 0
    assert [r.work for r in gd] == [200, 400, 800]
    assert ivp.work > 0 and ivp.error > eng[1].error
    assert ref.info["rtol"] == 1e-11
    # the reference can be passed in and is reused as is
    rows2, ref2 = compare_methods(params, DATA, 20.0, times, engine_rtols=(1e-8,), gd_lrs=(),
                                  ivp_rtols=(), reference=ref)
    assert ref2 is ref and rows2[0].error == pytest.approx(eng[1].error, rel=1e-6)
    assert rows2[0].to_dict()["method"] == "engine"


def test_compare_methods_rejects_bad_input() -> None:
    params = init_network(4, 2, 0.1, seed=0)
    with pytest.raises(ValueError, match="times must be given"):
        compare_methods(params, DATA, 1.0, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gd_lrs"):
        compare_methods(params, DATA, 1.0, [0.0, 1.0], gd_lrs=(0.1, -1.0))
    with pytest.raises(ValueError, match="ivp_method must be one of"):
        compare_methods(params, DATA, 1.0, [0.0, 1.0], ivp_method="LSODA")
    ref = gradient_descent(params, DATA, 0.1, 1.0, times=[0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="reference must be recorded at `times`"):
        compare_methods(params, DATA, 1.0, [0.0, 1.0], reference=ref)
