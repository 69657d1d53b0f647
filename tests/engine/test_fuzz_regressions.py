"""Minimal reproducers of gradient_flow failures on valid input, found by fuzzing.

Each test states the correct behaviour; its docstring says how the engine failed before
the fix (a hang is caught by a time limit far above the cost of a healthy run).  The
cases still marked ``xfail(strict=True, raises=...)`` are known limitations, with the
exception they raise today; when one is fixed the strict marker turns it red and is to
be removed.  Every case takes well under 10 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runchecks import check_run

from reluflow import Dataset, Params, TwoPointData, gradient_flow, init_network
from reluflow.engine.datasets import linear_margin
from reluflow.engine.deadline import time_limit


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rtol", [1e-6, 1e-9, 1e-12])
def test_single_shrinking_neuron_on_one_point(rtol: float) -> None:
    """One neuron with a > 0 active on one point labelled -1: f -> 0, r -> -1, so
    (a, b) shrinks like e^{-t} to zero, a fixed point.  Was: at t ~ 708 it reached the
    float64 underflow and DOP853 stopped with "Required step size is less than spacing
    between numbers"; it is now set to zero below 1e-200 and the run reaches t_max."""
    params = Params([1e-3], [[1e-3, 0.0]])
    data = Dataset([[1.0, 0.0]], [-1.0])
    tr = gradient_flow(params, data, 1e4, rtol=rtol)
    check_run(tr, params)
    assert tr.t[-1] == 1e4


@pytest.mark.timeout(60)
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="stiff for an explicit integrator: the documented 'stiff' stop")
@pytest.mark.parametrize("delta, m", [(1e-3, 2), (1e-2, 300)])
def test_separable_two_points_at_a_small_angle_reach_t_max(delta: float, m: int) -> None:
    """The book's data at a small angle: stopped "stiff" at t ~ 2e4 (delta 1e-3, m = 2,
    loss 0.85, alpha = 22) and t ~ 1.4e3 (delta 1e-2, m = 300, loss 0.71, alpha = 10);
    delta 1e-2 with m = 2 or 10 reaches t = 1e12 with loss 4e-12.  Every step there is
    limited by DOP853's stability (h lambda ~ 6.4) at a fixed step in t, with no event:
    a fast relaxation in t beside the slow separation of two nearly parallel points, which
    an explicit method cannot take in log time (an implicit one would)."""
    data = TwoPointData(delta, 0.5)
    assert linear_margin(data) > 0
    params = init_network(m, 2, 1e-3, seed=0)
    tr = gradient_flow(params, data, 1e12)
    check_run(tr, params)
    assert tr.info["stop"] is None, tr.info["stop"]


@pytest.mark.timeout(60)
def test_iris_two_points_four_neurons_rtol_1e3_logistic_finishes() -> None:
    """Two iris points (versicolor/virginica rows 67 and 51 of the binary subset), four
    neurons, rtol 1e-3, logistic loss, t_max 1e12: every step from t = 503.72 is cut
    (no event located) after ~1e-9 in tau, shrinking; the stall check only catches steps
    of length zero, so the run never ended (a switching cycle at a boundary decided at the
    integration error).  A healthy run takes 0.4 s (rtol 1e-4: 256 steps)."""
    a = [2.0283226400161043e-06, 9.6175773618922975e-07, -3.8115873936562853e-07,
         8.8032852445108876e-07]
    B = [[1.7134461112585535e-06, -1.5332993690200983e-06, 4.2268765685716471e-06,
          -3.0000042461734160e-06],
         [4.8881093845828069e-06, -4.9080573808044793e-06, -1.9654531133675142e-06,
          -1.9838566757336519e-06],
         [-1.5270987249050236e-08, -2.2320692834936159e-06, 1.9383051668077133e-06,
          3.4201801626972286e-07],
         [4.2892600525090254e-06, -6.1979643979366093e-06, 8.1512541896832121e-07,
          7.4521142262021748e-06]]
    X = [[0.44099426711179107, 0.2159971920547548, 0.2969961390752878, 0.0899988300228145],
         [0.5219932141323241, 0.24299684106159916, 0.4589940331163539, 0.17099777704334754]]
    params, data = Params(a, B), Dataset(X, [1.0, -1.0])
    with time_limit(8.0):
        tr = gradient_flow(params, data, 1e12, rtol=1e-3, loss="logistic")
    check_run(tr, params, rtol=1e-3)


@pytest.mark.timeout(60)
def test_four_non_separable_points_two_neurons_rtol_1e3() -> None:
    """Random labels on 4 points in the plane, 2 neurons, rtol 1e-3 (shrunk from a fuzz
    case with 59 points and 10 neurons).  Was: "catch-up solve overflowed at t = 196.942",
    after numpy overflow warnings in the event location: a neuron switched into a
    fast-growing state late in a long step; the step now ends where its catch-up grows by
    a factor 1e30."""
    params = Params([0.00291966255042109, -0.0024516132992922],
                    [[-0.00249821857367508, -0.00151107027185245],
                     [0.00241639610732876, -0.00041405026476604]])
    X = [[0.8197314261340548, 1.1114490015620326], [1.4077926606520177, -2.481563791771917],
         [-0.43664431090961947, -2.9608195690190042],
         [-0.06057437732394922, 2.3278246059493317]]
    data = Dataset(X, [-1.0, 1.0, -1.0, 1.0])
    tr = gradient_flow(params, data, 1e3, rtol=1e-3)
    check_run(tr, params, rtol=1e-3)


@pytest.mark.timeout(60)
def test_points_with_tiny_norms_at_the_start() -> None:
    """Two points of norm 1e-138 and 1e-130 next to a unit point.  Was: the data rank was
    cut to 1 (singular values below 1e-12 of the largest), the start state classified with
    the full b.x but events used the projection: "neuron 0 keeps switching state at t = 0
    without moving".  The rank is now decided on the points' directions."""
    params = Params([0.00575029540899396],
                    [[-0.00445031382655514, -0.00113366912782587, 0.00019688348019055,
                      0.00345494360876003]])
    X = [[9.2775506790460562e-03, 8.5313153492108917e-01, 5.2096394161019532e-01,
          2.6020813180090425e-02],
         [-5.9902826580502022e-138, 4.1469342235054907e-138, 2.0468687584910901e-138,
          1.9564952919769829e-138],
         [-5.9208310657699768e-132, -8.4403855249140564e-131, 1.4658232018702798e-130,
          5.7252956682410000e-131]]
    data = Dataset(X, [1.0, 1.0, 1.0])
    tr = gradient_flow(params, data, 1e-3, rtol=3e-4)
    check_run(tr, params, rtol=3e-4)


@pytest.mark.timeout(60)
def test_small_point_pattern_follows_its_own_sign() -> None:
    """x2 = 1e-13 (1, 1) next to e1.  Was: the rank cut dropped e2, so the engine saw
    x2 ~ 1e-13 e1 and reported point 2 active while b.x2 = -2e-15 (angle cosine -0.45)."""
    params = Params([0.01], [[0.01, -0.03]])
    data = Dataset([[1.0, 0.0], [1e-13, 1e-13]], [1.0, 1.0])
    tr = gradient_flow(params, data, 1e-3)
    check_run(tr, params)


@pytest.mark.timeout(60)
def test_near_duplicate_points_with_opposite_labels() -> None:
    """Three points in R^3, the third a copy of the first moved by 1e-13 with the opposite
    label.  Was: "neuron 6 keeps switching state at t = 848.789 ... (a corner of 1 held
    boundaries)"."""
    X = [[0.1257302210933933, -0.1321048632913019, 0.6404226504432821],
         [0.10490011715303971, -0.535669373161111, 0.36159505490948474],
         [0.1257302210933279, -0.13210486329131485, 0.6404226504433604]]
    data = Dataset(X, [-1.0, -1.0, 1.0])
    params = init_network(20, 3, 1e-2, seed=1)
    tr = gradient_flow(params, data, 1e4)
    check_run(tr, params)


def _saved_case(name: str) -> tuple[Params, Dataset, float, float]:
    """A fuzz case saved with its exact data and start (tests/data/fuzz_cases.npz)."""
    f = np.load(Path(__file__).parents[1] / "data" / "fuzz_cases.npz")
    rtol, t_max = (float(v) for v in f[f"{name}_conf"])
    return (Params(f[f"{name}_a"], f[f"{name}_B"]),
            Dataset(f[f"{name}_X"], f[f"{name}_y"], f[f"{name}_w"]), rtol, t_max)


@pytest.mark.timeout(60)
def test_digits_large_start_step_cut_before_every_event() -> None:
    """Digits 7 against 8 (26 points in R^64), 30 neurons at kappa = 2.7, rtol 1e-5, exp
    loss, t_max 1e20.  Was: overflow warnings (a Filippov coefficient with a vanishing
    residual, an event's deferred jump beyond float64), then an IndexError when the
    deferral cut a step at its first event, before every neuron's next piece."""
    params, data, rtol, t_max = _saved_case("s124")
    tr = gradient_flow(params, data, t_max, rtol=rtol)
    check_run(tr, params, rtol=rtol)
    assert tr.t[-1] == t_max


@pytest.mark.timeout(60)
def test_many_points_on_one_boundary_hold_consistently() -> None:
    """37 points on at most three rays in R^4 (rank 3), 30 unbalanced neurons, rtol 1e-12,
    logistic loss.  Was: "neuron 14 keeps switching state at t = 26.4" between holding
    eight of its fifteen boundary points and releasing them: with more held points than
    dimensions the Filippov coefficients are not unique, and the event resolution (a
    Gram solve) and the release test (the pseudo-inverse) took different solutions."""
    params, data, rtol, t_max = _saved_case("s221")
    tr = gradient_flow(params, data, t_max, rtol=rtol, loss="logistic")
    check_run(tr, params, rtol=max(rtol, 1e-9))
    assert tr.t[-1] == t_max


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, loss", [("s316", "exp"), ("s402", "logistic")])
def test_loose_rtol_patterns_agree_to_the_neurons_size(name: str, loss: str) -> None:
    """80 separable points in R^4 with 300 neurons at rtol 3e-4 (to t = 1e8), and 7 iris
    points with 300 unbalanced neurons at rtol 1e-4 (to t = 100): every recorded pattern
    agrees with sign(b.x) to rtol of the neuron's size.  (Measured: the worst disagreement
    is 0.74 and 0.59 rtol of |z| |x|; against |b| |x| alone it was 1.04 and 1.06 rtol, which
    the engine, controlling errors relative to |z|, does not promise.)"""
    params, data, rtol, t_max = _saved_case(name)
    tr = gradient_flow(params, data, t_max, rtol=rtol, loss=loss)
    check_run(tr, params, rtol=rtol)
    assert tr.t[-1] == t_max


@pytest.mark.timeout(60)
def test_sliding_neuron_at_a_non_zero_loss_stops_as_stationary() -> None:
    """75 points in R^7 with duplicates of either label (non-separable), one neuron,
    rtol 3e-4, logistic loss, t_max 1e30.  Was: the loss constant to seven digits from
    t ~ 1e3, yet a release of the neuron's held point and its capture again every ~68 in t
    (on the steps DOP853 took beyond its stability bound, h lambda ~ 10, whose interpolant
    located them), and no stiffness stop (the stiff count was reset by every step the
    step-size controller took below the bound): cost growing like t, > 60 s to t = 1e5.
    Now steps stay within the bound and the run stops as stationary."""
    params, data, rtol, t_max = _saved_case("s328")
    with time_limit(50):
        tr = gradient_flow(params, data, t_max, rtol=rtol, loss="logistic")
    check_run(tr, params, rtol=rtol)
    assert tr.info["stop"]["reason"] == "stationary"
    assert tr.t[-1] == t_max and tr.info["steps"] < 3000


@pytest.mark.timeout(60)
@pytest.mark.parametrize("t_max", [1e20, 1e30])
def test_large_unbalanced_start_on_random_labels_in_one_dimension(t_max: float) -> None:
    """21 points on a line with random labels, 300 neurons with |a| ~ 2.3 and |b| ~ 0.4
    (initial loss 6e16), rtol 1e-4, exp loss.  Was: "the integrator failed" at t = 0.23
    (t_max 1e30) or 4.7 (t_max 1e20): a step accepted with h lambda = 12.7, beyond
    DOP853's stability bound, whose interpolant at the step's first event put the
    outputs at -17 instead of -0.08 (loss 20.7 -> 8.8e13)."""
    params, data, rtol, _ = _saved_case("s392")
    with time_limit(50):
        tr = gradient_flow(params, data, t_max, rtol=rtol)
    check_run(tr, params, rtol=rtol)
    assert tr.t[-1] == t_max and np.all(np.isfinite(tr.loss))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("loss", ["exp", "logistic"])
@pytest.mark.parametrize("b0, y, far", [(-0.1, [-1.0, 1.0], 0), (0.1, [1.0, -1.0], 1)])
def test_neuron_crossing_b_zero_in_one_dimension_goes_on(b0: float, y: list[float],
                                                         far: int, loss: str) -> None:
    """x = +1 and x = -1, one neuron with a < 0 active on one of them, whose field drives
    b through 0, where it is on both points' boundary at once; on the far side the other
    point's field drives it on.  Was: at b = 0 the points were resolved inactive (its
    field is zero there, and a zero normal velocity went to the inactive side), a dead
    neuron, while gradient descent drives it across (fuzz: 0.6 % to 87 % off descent's
    lr -> 0 limit at t = 10).  Now a point whose normal velocity vanishes goes on to the
    side the neuron arrived moving towards."""
    from reluflow import gradient_descent

    params = Params([-0.25], [[b0]])
    data = Dataset([[1.0], [-1.0]], y)
    times = np.array([1.0, 3.0, 10.0])
    tr = gradient_flow(params, data, 10.0, times=times, rtol=1e-10, loss=loss)
    check_run(tr, params, rtol=1e-10)
    assert tr.pattern[-1, 0, far] == 1 and tr.pattern[-1, 0, 1 - far] == -1
    # descent at lr and lr / 2: its error is first order in lr, so the flow lies within
    # the two runs' distance of the extrapolated limit 2 g2 - g1
    g1, g2 = (gradient_descent(params, data, lr, 10.0, times=times, loss=loss,
                               record_events=False).f for lr in (2e-3, 1e-3))
    spread = float(np.abs(g2 - g1).max())
    assert np.abs(tr.f - (2 * g2 - g1)).max() <= spread


@pytest.mark.timeout(60)
def test_neurons_held_on_a_tiny_point_stay_on_its_boundary() -> None:
    """8 points in R^5, five of norms 1e-148 to 1e-21 beside three of norm ~1, 100
    neurons, rtol 3e-4, logistic loss.  Was: 198 recorded states "held" on a tiny
    point (norm 6e-116) while b.x/|x| was up to 690 rtol of the neuron's size off its boundary: the
    held span's rank was decided on the raw points (singular values below 1e-12 of the
    largest dropped), so the projection never enforced a tiny point's boundary.  Now the
    span and the sliding map are computed on the points' directions."""
    params, data, rtol, t_max = _saved_case("s158")
    tr = gradient_flow(params, data, t_max, rtol=rtol, loss="logistic")
    check_run(tr, params, rtol=rtol)
    assert np.any(tr.pattern == 0) and tr.t[-1] == t_max


@pytest.mark.timeout(60)
def test_release_far_out_in_t_stops_for_resolution() -> None:
    """56 weighted points in R^10, three neurons, rtol 1e-7, exp loss, t_max 1e30: one
    point is left at margin 0 (residual of order its weight) while the loss on the others
    goes to zero; at t = 5.2e21 a neuron held on three boundaries is released into a
    motion at a rate of order one in t, far below the float64 spacing of log(1 + t) there
    (steps of ~4e8 in t).  Was: FloatingPointError "the integrator failed ... spacing";
    now the run stops with the reason "resolution" and keeps what it recorded."""
    params, data, rtol, t_max = _saved_case("s278")
    tr = gradient_flow(params, data, t_max, rtol=rtol)
    check_run(tr, params, rtol=rtol)
    stop = tr.info["stop"]
    assert stop["reason"] == "resolution" and stop["dt"] > 1e-15 * stop["t"]
    assert tr.t[-1] <= stop["t"] < t_max


@pytest.mark.timeout(60)
def test_points_on_one_ray_with_both_labels_raise_a_clear_error() -> None:
    """51 points on three rays in R^3 (positive multiples, random labels), 100 neurons,
    rtol 1e-9: a neuron reaching one ray's boundary holds its +1 points and cycles between
    holding two of them (the held points are dependent, and holding is decided per point
    while such a boundary is held by the ray's summed residual).  A documented limit: the
    run must raise, naming the cause, not return a wrong trajectory."""
    params, data, rtol, t_max = _saved_case("s313")
    with pytest.raises(RuntimeError, match=r"keeps switching state .* linearly dependent"):
        gradient_flow(params, data, t_max, rtol=rtol)
