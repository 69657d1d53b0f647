"""The exact gradient-flow engine: identities, closed forms, convergence of GD, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expi

from reluflow import (
    Dataset,
    Params,
    Trajectory,
    TwoPointData,
    gradient_descent,
    gradient_flow,
    init_network,
)

DATA = TwoPointData(delta=0.3, p=0.7)


@pytest.fixture(scope="module")
def four_phase_run() -> Trajectory:
    """Δ = 0.3, p = 0.7, κ = 1e-6, m = 100 to t = 1e4: all four phases."""
    return gradient_flow(init_network(100, 2, 1e-6, seed=0), DATA, 1e4)


def test_invariant_and_monotone_loss_over_four_phases(four_phase_run: Trajectory) -> None:
    tr = four_phase_run
    assert tr.invariant_drift < 1e-9
    # the loss never increases (to rounding of the loss itself)
    assert np.all(np.diff(tr.loss) <= 1e-13 * tr.loss[:-1])
    # the run really covers the four phases: plateau near 1 - p and then convergence
    assert tr.loss[0] == pytest.approx(1.0, abs=1e-9)
    assert tr.loss[-1] < 1e-3
    kinds = set(tr.events["kind"])
    assert {"activate", "deactivate", "slide-start", "slide-end"} <= kinds


def test_recorded_pattern_matches_signs(four_phase_run: Trajectory) -> None:
    tr = four_phase_run
    pre = np.einsum("tkd,nd->tkn", tr.B, tr.data.X)
    norm = np.linalg.norm(tr.B, axis=2)[:, :, None]
    held = tr.pattern == 0
    assert np.all(pre[tr.pattern == 1] > 0)
    assert np.all(pre[tr.pattern == -1] <= 1e-12 * norm.repeat(2, axis=2)[tr.pattern == -1])
    assert np.all(np.abs(pre[held]) <= 1e-10 * norm.repeat(2, axis=2)[held])
    assert held.any()  # sliding happens in this run


def test_events_are_ordered_and_consistent(four_phase_run: Trajectory) -> None:
    ev = four_phase_run.events
    assert np.all(np.diff(ev["t"]) >= 0)
    assert set(np.unique(ev["index"])) <= {0, 1}
    assert np.all((ev["neuron"] >= 0) & (ev["neuron"] < 100))


def test_outputs_match_network_output(four_phase_run: Trajectory) -> None:
    tr = four_phase_run
    for j in (0, len(tr.t) // 2, len(tr.t) - 1):
        f = np.maximum(tr.B[j] @ tr.data.X.T, 0.0).T @ tr.a[j]
        assert np.allclose(tr.f[j], f, rtol=1e-12, atol=1e-14)


def _ei_solution(g0: float, rate: float, t: float) -> float:
    """Solve Ei(g) = Ei(g0) + rate * t for g (the ODE g' = rate * g * exp(-g) up to sign)."""
    target = expi(g0) + rate * t
    return brentq(lambda g: expi(g) - target, g0, 50.0, xtol=1e-15, rtol=1e-15)


def test_single_neuron_on_one_point_closed_form() -> None:
    """One balanced neuron along x, one point y=+1: f' = 2 f e^{-f}, so Ei(f) = Ei(f0) + 2t."""
    data = Dataset([[1.0, 0.0]], [1.0])
    u0 = 0.3
    params = Params([u0], [[u0, 0.0]])
    times = np.array([0.0, 0.5, 1.0, 2.0, 5.0])
    tr = gradient_flow(params, data, 5.0, times=times, rtol=1e-12)
    exact = [_ei_solution(u0**2, 2.0, t) for t in times]
    assert np.allclose(tr.f[:, 0], exact, rtol=1e-8, atol=0)


def test_sliding_neuron_closed_form() -> None:
    r"""A negative neuron born on the boundary b.x+ = 0 slides along x+^perp.

    Its field is the projection of the x- field: with b = u e2, a = -u and
    g = u^2 sin(Delta) = -f(x-): g' = 2 (1-p) sin(Delta) g e^{-g}.
    """
    delta, p = 0.3, 0.7
    data = TwoPointData(delta, p)
    u0 = 0.2
    params = Params([-u0], [[0.0, u0]])
    times = np.array([0.0, 1.0, 3.0, 10.0])
    tr = gradient_flow(params, data, 10.0, times=times, rtol=1e-12)
    rate = 2 * (1 - p) * math.sin(delta)
    exact = [_ei_solution(u0**2 * math.sin(delta), rate, t) for t in times]
    assert np.allclose(-tr.f[:, 1], exact, rtol=1e-8, atol=0)
    assert np.all(tr.pattern[:, 0, 0] == 0)  # held on the boundary of x+ throughout
    assert np.allclose(tr.B[:, 0, 0], 0.0, atol=1e-15)
    assert np.all(tr.f[:, 0] == 0.0)


def test_gradient_descent_converges_with_order_one() -> None:
    params = init_network(20, 2, 1e-2, seed=3)
    t_end = 40.0
    times = np.array([0.0, t_end])
    ref = gradient_flow(params, DATA, t_end, times=times, rtol=1e-12)
    lrs = np.array([4e-3, 2e-3, 1e-3])
    errs = []
    for lr in lrs:
        gd = gradient_descent(params, DATA, lr, t_end, times=times, record_events=False)
        errs.append(np.max(np.abs(gd.f[-1] - ref.f[-1])))
    order = np.polyfit(np.log(lrs), np.log(errs), 1)[0]
    assert 0.8 < order < 1.2, (errs, order)
    assert errs[-1] < errs[0]


def test_higher_dimension_gives_same_in_plane_trajectory() -> None:
    p2 = init_network(30, 2, 1e-3, seed=5)
    rng = np.random.default_rng(11)
    extra = 1e-3 * rng.standard_normal((30, 3))
    p5 = Params(p2.a, np.hstack([p2.B, extra]))
    times = np.geomspace(1e-2, 200.0, 30)
    t2 = gradient_flow(p2, TwoPointData(0.3, 0.7, d=2), 200.0, times=times)
    t5 = gradient_flow(p5, TwoPointData(0.3, 0.7, d=5), 200.0, times=times)
    assert np.allclose(t5.B[:, :, :2], t2.B, rtol=1e-7, atol=1e-12)
    assert np.allclose(t5.a, t2.a, rtol=1e-7, atol=1e-12)
    assert np.array_equal(t5.B[:, :, 2:], np.broadcast_to(extra, t5.B[:, :, 2:].shape))
    assert t5.invariant_drift < 1e-9


def test_same_seed_same_trajectory_bit_for_bit() -> None:
    runs = [gradient_flow(init_network(40, 2, 1e-4, seed=7), DATA, 1e3) for _ in range(2)]
    for name in ("t", "loss", "f", "a", "B", "pattern", "drift"):
        assert np.array_equal(getattr(runs[0], name), getattr(runs[1], name)), name
    assert np.array_equal(runs[0].events, runs[1].events)


def test_reaches_astronomical_time_with_margin_growth() -> None:
    params = init_network(50, 2, 1e-4, seed=1)
    tr = gradient_flow(params, DATA, 1e30)
    assert tr.t[-1] == 1e30
    assert tr.invariant_drift < 1e-9
    assert np.all(np.diff(tr.loss) <= 1e-13 * tr.loss[:-1])
    nm = tr.normalized_margin()
    assert nm[-1] > nm[tr.at(1e4)] > 0


def test_logistic_loss_decreases() -> None:
    tr = gradient_flow(init_network(30, 2, 1e-4, seed=2), DATA, 1e4, loss="logistic")
    assert np.all(np.diff(tr.loss) <= 1e-13 * tr.loss[:-1])
    assert tr.loss[-1] < 0.1 * tr.loss[0]


def test_save_load_roundtrip(tmp_path, four_phase_run: Trajectory) -> None:  # type: ignore[no-untyped-def]
    path = four_phase_run.save(tmp_path / "run.npz")
    back = Trajectory.load(path)
    for name in ("t", "loss", "f", "a", "B", "pattern", "drift", "neurons"):
        assert np.array_equal(getattr(back, name), getattr(four_phase_run, name)), name
    assert np.array_equal(back.events, four_phase_run.events)
    assert isinstance(back.data, TwoPointData) and back.data.delta == 0.3
    assert back.info == four_phase_run.info


def test_dead_neurons_never_move() -> None:
    # both neurons inactive on both points: zero gradient forever
    params = Params([0.5, -0.5], [[-1.0, -1.0], [-0.2, -2.0]])
    tr = gradient_flow(params, DATA, 1e6)
    assert np.array_equal(tr.a, np.broadcast_to(params.a, tr.a.shape))
    assert np.all(tr.loss == 1.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: init_network(10, 2, 0.0), "kappa"),
        (lambda: init_network(10, 2, float("nan")), "kappa"),
        (lambda: init_network(10, 2, float("inf")), "kappa"),
        (lambda: init_network(0, 2, 1e-3), "m must be an integer >= 1"),
        (lambda: init_network(10, 1, 1e-3), "d must be an integer >= 2"),
        (lambda: TwoPointData(0.0, 0.7), r"delta must lie in the open interval \(0, pi\)"),
        (lambda: TwoPointData(3.2, 0.7), "delta"),
        (lambda: TwoPointData(0.3, 1.0), r"p must lie in the open interval \(0, 1\)"),
        (lambda: TwoPointData(0.3, 0.7, d=1), "d must be an integer >= 2"),
        (lambda: Params([1.0, np.nan], [[1.0, 0.0], [0.0, 1.0]]), "a must contain only finite"),
        (lambda: Params([1.0], [[1.0, 0.0], [0.0, 1.0]]), "B must have shape"),
        (lambda: Dataset([[1.0, np.inf]], [1.0]), "X must contain only finite"),
        (lambda: Dataset([[1.0, 0.0]], [1.0, -1.0]), "y must have shape"),
        (lambda: gradient_flow(init_network(3, 2, 1e-3), DATA, 0.0), "t_max"),
        (lambda: gradient_flow(init_network(3, 2, 1e-3), DATA, -1.0), "t_max"),
        (lambda: gradient_flow(init_network(3, 2, 1e-3), DATA, 10.0, times=[0, 5, 2]),
         "strictly increasing"),
        (lambda: gradient_flow(init_network(3, 2, 1e-3), DATA, 10.0, times=[-1.0, 2.0]),
         ">= 0"),
        (lambda: gradient_flow(init_network(3, 2, 1e-3), DATA, 10.0, times=[1.0, 20.0]),
         r"\[0, t_max\]"),
        (lambda: gradient_flow(init_network(3, 2, 1e-3), DATA, 10.0, loss="hinge"), "loss"),
        (lambda: gradient_flow(init_network(3, 3, 1e-3), DATA, 10.0), "d = data.d"),
        (lambda: gradient_flow(init_network(3, 2, 1e-3), DATA, 10.0, rtol=0.1), "rtol"),
        (lambda: gradient_descent(init_network(3, 2, 1e-3), DATA, 0.0, 10.0), "lr"),
        (lambda: gradient_descent(init_network(3, 2, 1e-3), DATA, 1e-2, 10.0, loss="x"), "loss"),
    ],
)
def test_bad_input_raises_clear_error(call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def _random_problem(seed: int, balanced: bool) -> tuple[Params, Dataset]:
    rng = np.random.default_rng(seed)
    n, d = 3, 4
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.array([1.0, -1.0, 1.0])
    params = init_network(30, d, 0.05, seed=seed, balanced=balanced,
                          kappa_a=None if balanced else 0.08)
    return params, Dataset(X, y)


@pytest.mark.parametrize(
    ("seed", "balanced", "loss"), [(2, True, "exp"), (3, False, "logistic"), (7, True, "logistic")]
)
def test_general_data_gradient_descent_converges_to_engine(
    seed: int, balanced: bool, loss: str
) -> None:
    """Any data set: 3 points in R^4 (data rank 3, corners where boundaries meet)."""
    params, data = _random_problem(seed, balanced)
    times = np.array([0.0, 10.0, 30.0, 60.0])
    ref = gradient_flow(params, data, 60.0, times=times, rtol=1e-11, loss=loss)
    assert ref.info["data_rank"] == 3
    assert ref.invariant_drift < 1e-9
    assert np.all(np.diff(ref.loss) <= 1e-13 * ref.loss[:-1])
    lrs = np.array([4e-3, 2e-3, 1e-3])
    errs = [
        np.abs(gradient_descent(params, data, lr, 60.0, times=times, loss=loss,
                                record_events=False).f - ref.f).max()
        for lr in lrs
    ]
    order = np.polyfit(np.log(lrs), np.log(errs), 1)[0]
    assert 0.8 < order < 1.5, (errs, order)  # first order in lr, down to the engine's value
    assert errs[-1] < 1e-3


def test_error_scales_with_rtol_through_group_releases() -> None:
    """Held groups released mid-run (κ = 1e-2): the error against rtol = 1e-12 tracks rtol.

    Regression: a release found by root finding right at a step end used to be missed when
    the re-integrated step put the crossing a hair past its end, so the group stayed held
    until the next recording time.
    """
    data = TwoPointData(0.3, 0.8)
    params = init_network(30, 2, 1e-2, seed=0)
    times = np.linspace(0.0, 100.0, 201)
    ref = gradient_flow(params, data, 100.0, times=times, rtol=1e-12)
    assert np.any(ref.events["kind"] == "slide-end")
    for rtol in (1e-7, 1e-9):
        tr = gradient_flow(params, data, 100.0, times=times, rtol=rtol)
        assert np.abs(tr.f - ref.f).max() <= 100 * rtol
