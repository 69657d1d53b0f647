"""Regressions: the engine never hangs and never lies on any data and any start.

Each test is a case that once failed (silent constant loss on iris, recursion on many
points, base-3 state codes overflowing from 40 points, a cut step retried forever at
kappa = 1, NaN from an overflowing start, cost proportional to t on non-separable data, a
held neuron drifting by rounding times 1 + t, events found again at the entry time of a
state), with a per-test time limit far above its cost so a hang fails instead of blocking.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from runchecks import check_run

from reluflow import (
    Dataset,
    Params,
    TwoPointData,
    gradient_descent,
    gradient_flow,
    init_network,
)
from reluflow.engine import stepper
from reluflow.engine.tolerances import T_MIN


def _binary(name: str, a: int, b: int) -> Dataset:
    """Classes a (+1) and b (-1) of a bundled scikit-learn data set, scaled by the largest norm
    (scikit-learn is a dev extra: the test is skipped without it)."""
    sk_datasets = pytest.importorskip("sklearn.datasets")
    X, y = getattr(sk_datasets, f"load_{name}")(return_X_y=True)
    sel = (y == a) | (y == b)
    X = X[sel] / np.linalg.norm(X[sel], axis=1).max()
    return Dataset(X, np.where(y[sel] == a, 1.0, -1.0))


def _gd_limit(params: Params, data: Dataset, t_max: float, times: np.ndarray,
              lr: float) -> tuple[np.ndarray, float]:
    """Richardson extrapolation 2 GD(lr/2) - GD(lr) of the outputs, and its error scale.

    Descent converges with order one, so the extrapolation is second order; the distance
    between the two descents bounds the first-order error of the finer one.
    """
    g1 = gradient_descent(params, data, lr, t_max, times=times, record_events=False).f
    g2 = gradient_descent(params, data, lr / 2, t_max, times=times, record_events=False).f
    return 2 * g2 - g1, float(np.abs(g2 - g1).max())


@pytest.mark.timeout(300)
def test_iris_runs_and_matches_descent() -> None:
    """Iris setosa/versicolor, m = 40, kappa = 1e-2: the engine once took 0 steps and kept
    L = 1.00017; descent is at 0.849 by t = 20."""
    data = _binary("iris", 0, 1)
    params = init_network(40, 4, 1e-2, seed=3)
    times = np.array([0.0, 5.0, 10.0, 20.0])
    tr = gradient_flow(params, data, 20.0, times=times)
    check_run(tr, params)
    assert tr.info["steps"] > 10 and tr.loss[-1] < 0.9
    lim, spread = _gd_limit(params, data, 20.0, times, 2e-3)
    assert np.abs(tr.f - lim).max() <= 0.2 * spread  # agrees beyond descent's own error


@pytest.mark.timeout(300)
def test_digits_360_points_no_recursion() -> None:
    """Digits 0/1 (n = 360 in R^64, data rank 51): states of 360 points, never recursion."""
    data = _binary("digits", 0, 1)
    assert data.n == 360
    params = init_network(6, 64, 1e-3, seed=0)
    times = np.array([0.0, 1.0, 2.0])
    tr = gradient_flow(params, data, 2.0, times=times)
    check_run(tr, params)
    assert tr.info["data_rank"] == np.linalg.matrix_rank(data.X)
    lim, spread = _gd_limit(params, data, 2.0, times, 2e-3)
    assert np.abs(tr.f - lim).max() <= 0.2 * spread + 1e-12


@pytest.mark.timeout(300)
def test_sixty_random_points_match_descent() -> None:
    """n = 60 separable points in R^5 (RecursionError before; > 40 points per state)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    data = Dataset(X, np.sign(X @ rng.standard_normal(5)))
    params = init_network(30, 5, 1e-2, seed=0)
    times = np.linspace(0.0, 40.0, 9)
    tr = gradient_flow(params, data, 40.0, times=times)
    check_run(tr, params)
    lim, spread = _gd_limit(params, data, 40.0, times, 4e-3)
    assert np.abs(tr.f - lim).max() <= 0.2 * spread


@pytest.mark.timeout(300)
def test_kappa_one_two_points_finishes_to_its_tolerance() -> None:
    """init_network(500, 2, 1.0) to t = 10 never returned (a cut step retried forever);
    the initial loss is e^30 and the first transient takes t ~ 1e-13. The run converges
    with rtol: rtol 1e-8 against 1e-11 differs by a small multiple of 1e-8."""
    data = TwoPointData(0.3, 0.7)
    params = init_network(500, 2, 1.0, seed=0)
    times = np.array([0.0, 0.01, 0.1, 1.0, 10.0])
    ref = gradient_flow(params, data, 10.0, times=times, rtol=1e-11)
    tr = gradient_flow(params, data, 10.0, times=times, rtol=1e-8)
    check_run(tr, params)
    assert ref.loss[0] > 1e12 and ref.loss[-1] < 1e-2
    assert np.abs(tr.f - ref.f).max() <= 100 * 1e-8 * np.abs(ref.f).max()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start", [Params([30.0], [[30.0, 0.0]]),
                                   init_network(3, 2, 1e100, seed=0)])
def test_start_overflowing_float64_raises_naming_params(start: Params) -> None:
    """A loss of e^860 (a NaN field before) or margins of 1e200: refused at once."""
    with pytest.raises(ValueError, match=r"params too large for float64.*kappa"):
        gradient_flow(start, TwoPointData(0.3, 0.7), 10.0)


@pytest.mark.timeout(60)
def test_kappa_too_large_for_float64_raises_naming_kappa() -> None:
    with pytest.raises(ValueError, match=r"kappa = 1e\+160 .* too large for float64"):
        init_network(3, 2, 1e160, seed=0)


@pytest.mark.timeout(60)
def test_t_max_below_the_smallest_step_raises_naming_t_max() -> None:
    params = init_network(3, 2, 1e-3, seed=0)
    with pytest.raises(ValueError, match=r"t_max must be >= 1e-300"):
        gradient_flow(params, TwoPointData(0.3, 0.7), 1e-310)
    tr = gradient_flow(params, TwoPointData(0.3, 0.7), T_MIN)
    assert tr.t[-1] == T_MIN and np.all(np.isfinite(tr.f))


@pytest.mark.timeout(120)
def test_duplicate_points_with_opposite_labels_reach_the_stationary_point() -> None:
    r"""x with label +1 (weight w1) and -1 (w2): f(x) relaxes to
    :math:`\tfrac12\log(w_1/w_2)` and :math:`L \to 2\sqrt{w_1 w_2}`, the minimum of
    :math:`w_1 e^{-f} + w_2 e^{f}`; the engine detects the stationary point and records it
    to t = 1e12 at a cost independent of t."""
    data = Dataset([[1.0, 0.0], [1.0, 0.0]], [1.0, -1.0], weights=[0.6, 0.4])
    params = init_network(20, 2, 1e-3, seed=0)
    tr = gradient_flow(params, data, 1e12)
    check_run(tr, params)
    stop = tr.info["stop"]
    assert stop["reason"] == "stationary" and stop.get("change", 0.0) <= 1e-8
    assert tr.t[-1] == 1e12 and tr.info["steps"] < 3000
    assert tr.loss[-1] == pytest.approx(2 * math.sqrt(0.24), rel=1e-9)
    assert tr.f[-1, 0] == pytest.approx(0.5 * math.log(1.5), rel=1e-7)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("X, y", [
    ([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [1.0, -1.0, 1.0]),     # duplicate + separable
    ([[1.0, 0.0], [2.0, 0.0], [0.6, 0.8]], [1.0, -1.0, -1.0]),    # collinear, same ray
])
def test_non_separable_data_stop_with_a_reason_not_cost_proportional_to_t(X, y) -> None:  # type: ignore[no-untyped-def]
    """Pinned to a non-zero-loss point in one direction and growing in another: the flow is
    stiff in log time; the run ends early, says why, and what it recorded is right."""
    data = Dataset(X, y)
    params = init_network(20, 2, 1e-2, seed=0)
    tr = gradient_flow(params, data, 1e12)
    check_run(tr, params)
    stop = tr.info["stop"]
    assert stop["reason"] == "stiff" and stop["t"] < 1e12
    assert tr.t[-1] <= stop["t"] and tr.t.size == tr.f.shape[0] == tr.pattern.shape[0]
    assert tr.info["steps"] < 3000


@pytest.mark.timeout(120)
def test_neuron_held_on_two_boundaries_to_t_1e20() -> None:
    r"""Held on the boundaries of e1 and e2 (label +1, a < 0) while active on x3, the neuron
    slides along e3; the null directions of its field (e1, e2) get exactly nothing, so at
    t = 1e20 it is still on both boundaries and :math:`a^2 - \lVert b\rVert^2` is kept."""
    X = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.4, math.sqrt(0.75)]])
    data = Dataset(X, [1.0, 1.0, -1.0])
    params = Params([-0.2, 0.1], [[0.0, 0.0, 0.15], [0.05, 0.05, 0.02]])
    tr = gradient_flow(params, data, 1e20)
    check_run(tr, params)
    assert np.all(tr.pattern[:, 0, :2] == 0)  # held on both all along
    nb = np.linalg.norm(tr.B[:, 0], axis=1)
    assert np.all(np.abs(tr.B[:, 0, :2]) <= 1e-14 * nb[:, None])  # rounding of the basis
    assert tr.B[-1, 0, 2] > 1.0  # it grew along e3, fitting x3


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", range(12))
def test_events_after_a_state_change_are_consistent(seed: int) -> None:
    """Two points at a small angle in R^6, unbalanced starts: an event was once located at
    the entry time of a new state and a live neuron frozen as dead (b.x/|b| = +0.06)."""
    rng = np.random.default_rng(seed)
    data = TwoPointData(float(rng.uniform(0.02, 0.3)), float(rng.uniform(0.55, 0.9)), d=6)
    kappa = float(10 ** rng.uniform(-4, -1))
    params = init_network(int(rng.integers(5, 25)), 6, kappa, seed=seed, balanced=False,
                          kappa_a=kappa * float(10 ** rng.uniform(-1, 1)))
    tr = gradient_flow(params, data, float(10 ** rng.uniform(1, 3)))
    check_run(tr, params)


@pytest.mark.timeout(60)
def test_no_progress_raises_instead_of_looping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that never advances (simulated) ends the run with an error, never a hang."""
    real = stepper.take_step

    def stuck(prob, nrn, s0, s_target, h):  # type: ignore[no-untyped-def]
        res = real(prob, nrn, s0, s_target, h)
        return stepper.StepResult(s0, res.h_next, True, res.events, 0, 0.0, 0)

    monkeypatch.setattr("reluflow.engine.flow.take_step", stuck)
    with pytest.raises(RuntimeError, match="no progress in time"):
        gradient_flow(init_network(5, 2, 1e-2, seed=0), TwoPointData(0.3, 0.7), 10.0)


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("error")
def test_overflowing_trial_steps_are_rejected_without_a_warning() -> None:
    """Delta = 0.1, p = 0.5, kappa = 1e-6, m = 100 on the explorers' grid: a too-long trial
    step in tau (the field carries the factor e^tau) overflowed DOP853's stages, and scipy's
    error estimate warned "invalid value encountered in dot" on its way to rejecting it.
    The engine's error norm rejects a non-finite stage itself: no warning, same run."""
    from reluflow.runs.config import RunConfig, explore_times

    cfg = RunConfig(delta=0.1, p=0.5, kappa=1e-6, m=100, seed=0, t_max=1e30)
    params = init_network(100, 2, 1e-6, seed=0)
    tr = gradient_flow(params, TwoPointData(0.1, 0.5), 1e30, times=explore_times(cfg))
    check_run(tr, params)
    assert tr.info["stop"] is None and tr.t[-1] == 1e30
