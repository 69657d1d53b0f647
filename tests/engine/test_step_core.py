"""The step core: named tolerances, typed step results, the deferral error model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runchecks import check_run

from reluflow import Dataset, Params, TwoPointData, gradient_flow, init_network
from reluflow.engine import events, stepper
from reluflow.engine.events import Deferral, EventBatch, latest_within
from reluflow.engine.tolerances import RTOL_RANGE, Tolerances


def test_tolerances_are_one_frozen_validated_dataclass() -> None:
    tol = Tolerances(rtol=1e-7)
    assert tol.batch == pytest.approx(0.5e-7)
    assert tol.solver_rtol == max(1e-7, 100 * np.finfo(float).eps)
    assert Tolerances(rtol=RTOL_RANGE[0]).solver_rtol > RTOL_RANGE[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tol.rtol = 1e-3  # type: ignore[misc]
    for bad in ({"rtol": 1e-2}, {"rtol": 0.0}, {"batch_share": 1.0}, {"max_passes": 0},
                {"cut_growth": 1.0}, {"cut_aim": 0.0}, {"cut_aim": 1.5}):
        with pytest.raises(ValueError):
            Tolerances(**bad)  # type: ignore[arg-type]


def test_deferral_model_and_cut() -> None:
    r"""Two neurons: one with a first jump only (linear growth), one whose end value
    exceeds its linear part (a release: quadratic growth).  error(s) is
    :math:`e^s \sum_k (w_k d^2/2 + K_k d^3/3)` and the cut is where it meets the budget."""
    d = Deferral(np.array([0.0, 0.5]), np.array([2.0, 0.0]), np.array([2.0, 0.5]), 1.0)
    K2 = 0.5 / 0.5**2
    expect = math.exp(1.0) * (2.0 * 1.0 / 2 + K2 * 0.5**3 / 3)
    assert d.error(1.0) == pytest.approx(expect, rel=1e-14)
    assert d.error(0.0) == 0.0
    assert d.cut_time(0.0, 1.0, 10 * expect) is None
    budget = expect / 3
    s = d.cut_time(0.0, 1.0, budget)
    assert s is not None and 0.0 < s < 1.0
    assert d.error(s) <= budget < d.error(min(1.0, s + 1e-12))
    s_aim = d.cut_time(0.0, 1.0, budget, 0.9 * budget)  # aimed below the budget
    assert s_aim is not None and s_aim < s
    assert d.error(s_aim) <= 0.9 * budget < d.error(min(1.0, s_aim + 1e-12))
    assert Deferral.empty().error(5.0) == 0.0


@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.floats(-3.0, 3.0))
@settings(max_examples=60, deadline=None)
def test_latest_within_is_the_bisection_answer(seed: int, k: int, log_budget: float) -> None:
    """The grid search of the cut agrees with a plain bisection to one float, on random
    deferral models (a non-decreasing error)."""
    rng = np.random.default_rng(seed)
    tau = np.sort(rng.uniform(0.0, 1.0, k))
    d = Deferral(tau, rng.exponential(size=k), rng.exponential(size=k) * 2, 1.0)
    budget = 10.0**log_budget
    got = latest_within(d.errors, budget, float(tau[0]), 1.0)
    lo, hi = float(tau[0]), 1.0
    if d.error(hi) <= budget:
        lo = hi
    while (mid := 0.5 * (lo + hi)) not in (lo, hi) and lo < hi:
        lo, hi = (lo, mid) if d.error(mid) > budget else (mid, hi)
    assert abs(got - lo) <= 4 * np.spacing(1.0)
    assert d.error(got) <= budget or got == tau[0]


def test_event_batch_keeps_only_what_a_shorter_step_handles() -> None:
    b = EventBatch()
    b.add_records(np.array([0.1, 0.4, 0.9]), np.array([0, 1, 2]), np.array([3, 3, 3]), 0)
    b.add_error(np.array([0.1, 0.4, 0.9]), np.array([1.0, 1.0, 1.0]))
    assert b.size == 3
    b.keep(0.0, 0.5)
    assert b.size == 2 and b.neuron[0].tolist() == [0, 1]
    assert b.deferral_error(0.5, 1.0) == pytest.approx((0.4**2 + 0.1**2) / 2)


def test_step_results_are_typed_and_cuts_never_reintegrate() -> None:
    """Every step of a run with events: a StepResult; a truncated step ends inside the
    integrator's own step (its dense output), never below what the integrator took, and
    proposes a next step at most ``cut_growth`` times as long as it got."""
    seen: list[tuple[float, float, stepper.StepResult]] = []
    real_take = stepper.take_step
    real_int = stepper.integrate_step
    ends: list[float] = []

    def integ(system, s0, s_end, h):  # type: ignore[no-untyped-def]
        st = real_int(system, s0, s_end, h)
        ends.append(st.s1)
        return st

    def take(prob, nrn, s0, s_target, h):  # type: ignore[no-untyped-def]
        res = real_take(prob, nrn, s0, s_target, h)
        seen.append((s0, ends[-1], res))
        return res

    mp = pytest.MonkeyPatch()
    mp.setattr(stepper, "integrate_step", integ)
    mp.setattr("reluflow.engine.flow.take_step", take)
    try:
        rng = np.random.default_rng(1)
        X = rng.standard_normal((12, 3))
        data = Dataset(X, np.sign(X @ rng.standard_normal(3)))
        tr = gradient_flow(init_network(15, 3, 0.1, seed=1), data, 50.0)
    finally:
        mp.undo()
    assert len(seen) == tr.info["steps"]
    assert all(isinstance(r, stepper.StepResult) for _, _, r in seen)
    assert any(r.truncated for _, _, r in seen)
    growth = Tolerances().cut_growth
    for s0, s1, r in seen:
        assert s0 <= r.s <= s1
        assert r.truncated == (r.s < s1)
        if s0 < r.s < s1:  # after a cut, the next try is near what the events allowed
            assert r.h_next <= growth * (r.s - s0)


def test_a_cut_step_is_rarely_cut_again() -> None:
    """The cut aims below the deferral budget (``cut_aim``), so the error model derived
    again at the new end rarely forces a second cut.  Aimed at the whole budget, this run
    cut one step 17 times, each cut by a hair."""
    cuts: list[int] = []
    real_truncate = stepper._Passes.truncate

    def truncate(self, s0, s_cut):  # type: ignore[no-untyped-def]
        cuts[-1] += 1
        return real_truncate(self, s0, s_cut)

    real_take = stepper.take_step

    def take(*args):  # type: ignore[no-untyped-def]
        cuts.append(0)
        return real_take(*args)

    mp = pytest.MonkeyPatch()
    mp.setattr(stepper._Passes, "truncate", truncate)
    mp.setattr("reluflow.engine.flow.take_step", take)
    try:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((30, 5))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        data = Dataset(X, np.sign(X @ rng.standard_normal(5)))
        gradient_flow(init_network(100, 5, 1e-6, seed=0), data, 1e4, rtol=1e-4)
    finally:
        mp.undo()
    assert sum(c > 0 for c in cuts) >= 5  # the run has cut steps
    assert max(cuts) <= 3


def test_info_reports_stop_and_counts() -> None:
    tr = gradient_flow(init_network(30, 2, 1e-4, seed=2), TwoPointData(0.3, 0.7), 1e3)
    info = tr.info
    assert info["stop"] is None and info["steps"] > 0 and info["nfev"] > 16 * info["steps"] - 1
    assert 0 <= info["rejected_steps"] <= info["steps"]
    assert info["event_neurons"] >= 1 and info["cpu_time"] > 0


@pytest.mark.parametrize("params, data", [
    (init_network(2, 2, 1e-1, seed=0), Dataset([[0.0, 0.0], [0.0, 0.0]], [1.0, -1.0])),
    (Params([0.0, 0.0], [[0.0, 0.0], [0.0, 0.0]]), TwoPointData(0.3, 0.7)),
])
def test_degenerate_starts_are_stationary(params: Params, data: Dataset) -> None:
    """Data all at the origin, or all weights zero: nothing can move, and the run says so."""
    tr = gradient_flow(params, data, 100.0)
    assert tr.info["stop"] == {"reason": "stationary", "t": 0.0}
    assert np.all(tr.loss == tr.loss[0]) and tr.t[-1] == 100.0


def test_one_recording_time_and_no_event_records() -> None:
    params = init_network(50, 2, 1e-3, seed=0)
    data = TwoPointData(0.3, 0.7)
    one = gradient_flow(params, data, 100.0, times=[50.0])
    full = gradient_flow(params, data, 100.0, times=[0.0, 50.0, 100.0])
    assert one.t.tolist() == [50.0] and np.allclose(one.f[0], full.f[1], rtol=1e-7)
    quiet = gradient_flow(params, data, 100.0, record_events=False)
    assert quiet.events.size == 0 and quiet.info["event_neurons"] > 0


def test_a_neuron_at_max_passes_ends_the_step_without_a_redo() -> None:
    """With three passes allowed, steps end at a switching neuron's third event while the
    other neurons' passes go on to there (no second run of the passes); the run passes
    every run check and agrees with a run at a hundredth of its rtol with the default
    passes to the bound of ``test_every_rtol_runs_and_converges``."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 3))
    data = Dataset(X, np.sign(X @ rng.standard_normal(3)))
    params = init_network(40, 3, 1e-3, seed=2)
    times = np.linspace(0.0, 200.0, 9)
    rtol = 1e-6
    ref = gradient_flow(params, data, 200.0, times=times, rtol=rtol / 100)
    ends: list[float] = []
    runs: list[float] = []
    real_end, real_passes = stepper._Passes.end_at, stepper.run_passes

    def end_at(self, s0, s_cut):  # type: ignore[no-untyped-def]
        ends.append(s_cut)
        real_end(self, s0, s_cut)

    def passes(step, first, s_end):  # type: ignore[no-untyped-def]
        runs.append(s_end)
        return real_passes(step, first, s_end)

    mp = pytest.MonkeyPatch()
    mp.setattr(stepper._Passes, "end_at", end_at)
    mp.setattr(stepper, "run_passes", passes)
    mp.setattr("reluflow.engine.flow.Tolerances",
               lambda rtol: Tolerances(rtol=rtol, max_passes=3))
    try:
        tr = gradient_flow(params, data, 200.0, times=times, rtol=rtol)
    finally:
        mp.undo()
    assert ends, "no neuron reached max_passes: the test does not test the cut"
    assert len(runs) == tr.info["steps"]  # one run of the passes per step
    check_run(tr, params, rtol=rtol)
    err = np.abs(tr.f - ref.f).max() / np.abs(ref.f).max()
    assert err <= 1000 * rtol + 1e-9, err


@given(st.integers(0, 2**32 - 1), st.sampled_from(["exp", "logistic"]),
       st.sampled_from([1e-8, 1e-5, 1e-3]))
@settings(max_examples=8, deadline=None)
def test_frozen_residual_catch_up_stays_within_its_bound(seed: int, loss: str,
                                                          kappa: float) -> None:
    """Every catch-up of a run is solved twice, with and without frozen residuals: the
    frozen neurons end within ``frozen_share * rtol`` (the bound) plus both solves' own
    errors of each other, on random data from small and larger starts."""
    rtol = 1e-9
    share = Tolerances().frozen_share
    real = stepper.catch_up
    real_frozen = stepper.frozen_fields
    seen = {"frozen": 0}

    def none_frozen(step, act, held, s, s_end):  # type: ignore[no-untyped-def]
        v, _ = real_frozen(step, act, held, s, s_end)
        return v, np.zeros(act.shape[0], dtype=bool)

    def both(step, status, s, z, s_end):  # type: ignore[no-untyped-def]
        seg = real(step, status, s, z, s_end)
        _, frozen = real_frozen(step, (status == 1).astype(float),
                                step.system.prob.held.rows(status), s, s_end)
        if frozen.any():
            seen["frozen"] += int(frozen.sum())
            stepper.frozen_fields = none_frozen
            try:
                ref = real(step, status, s, z, s_end)
            finally:
                stepper.frozen_fields = real_frozen
            end = np.full(z.shape[0], s_end)
            rows = np.ones(z.shape[0], dtype=bool)
            a, _ = stepper._segment_values(seg, rows, end)
            b, _ = stepper._segment_values(ref, rows, end)
            size = np.abs(b).max(axis=1)
            err = np.abs(a - b).max(axis=1)[frozen]
            assert np.all(err <= (share + 20.0) * rtol * size[frozen] + 1e-300)
        return seg

    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(3, 30)), int(rng.integers(2, 6))
    X = rng.standard_normal((n, d))
    data = Dataset(X, np.sign(X @ rng.standard_normal(d)))
    params = init_network(12, d, kappa, seed=seed % 1000)
    mp = pytest.MonkeyPatch()
    mp.setattr(stepper, "catch_up", both)
    try:
        tr = gradient_flow(params, data, 100.0, loss=loss, rtol=rtol)
    finally:
        mp.undo()
    check_run(tr, params)
    if kappa == 1e-8:  # outputs negligible for a while: some catch-ups are frozen
        assert seen["frozen"] > 0


@pytest.mark.parametrize("seed, loss", [(0, "exp"), (1, "logistic"), (2, "exp"),
                                        (3, "logistic")])
def test_calm_held_states_cannot_release(seed: int, loss: str) -> None:
    """Every release search of a run is done twice, with and without the screen of calm
    held states: the same answer bit for bit.  And the Filippov coefficients of every
    state the screen calls calm stay inside (0, 1) on a fine grid of the step."""
    real = events.release_times
    real_calm = events._calm_states
    seen = {"calm": 0, "other": 0}

    def calm_checked(step, act, Kidx, Pinv, s_end):  # type: ignore[no-untyped-def]
        calm = real_calm(step, act, Kidx, Pinv, s_end)
        seen["calm"] += int(calm.sum())
        seen["other"] += int((~calm).sum())
        if calm.any():
            prob = step.system.prob
            t = step.s0 + (s_end - step.s0) * np.linspace(0.0, 1.0, 257)
            r = prob.residual(step.f_at(step.x_of(t)))
            lam = events._lambdas(act[calm], Kidx[calm], Pinv[calm],
                                  np.broadcast_to(r, (int(calm.sum()), *r.shape)), prob.Xr)
            pad = (Kidx[calm] < 0)[:, None, :]
            assert np.all(((lam > 0) & (lam < 1)) | pad)
        return calm

    def both(step, status, s_from, s_end):  # type: ignore[no-untyped-def]
        got = real(step, status, s_from, s_end)
        events._calm_states = lambda st, act, *_: np.zeros(act.shape[0], dtype=bool)
        try:
            ref = real(step, status, s_from, s_end)
        finally:
            events._calm_states = calm_checked
        for g, r in zip(got, ref, strict=True):
            assert np.array_equal(g, r)
        return got

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    data = Dataset(X, np.sign(X @ rng.standard_normal(5)))
    mp = pytest.MonkeyPatch()
    mp.setattr(events, "_calm_states", calm_checked)
    mp.setattr(stepper, "release_times", both)
    try:
        tr = gradient_flow(init_network(40, 5, 1e-6, seed=seed), data, 1e3, loss=loss,
                           rtol=1e-6)
    finally:
        mp.undo()
    check_run(tr, init_network(40, 5, 1e-6, seed=seed))
    assert seen["calm"] > 0 and seen["other"] > 0


def test_release_grid_fields_both_products_agree() -> None:
    """The active fields on the release grid, from the grid's cached terms (many states)
    or from one product per call (few states), are the sums they stand for."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6))
    data = Dataset(X, np.sign(X @ rng.standard_normal(6)))
    seen: list[tuple[int, int]] = []
    real = events._grid_fields

    def checked(step, act, s_end):  # type: ignore[no-untyped-def]
        vA = real(step, act, s_end)
        r = step.residual_grid(s_end, events._RELEASE_GRID)[1]
        want = np.einsum("ri,ti,id->rtd", act, r, step.system.prob.Xr)
        assert np.allclose(vA, want, rtol=1e-12, atol=1e-14 * np.abs(want).max())
        seen.append((act.shape[0], step.system.prob.Xr.shape[1]))
        return vA

    mp = pytest.MonkeyPatch()
    mp.setattr(events, "_grid_fields", checked)
    try:
        gradient_flow(init_network(60, 6, 1e-4, seed=5), data, 1e3, rtol=1e-6)
    finally:
        mp.undo()
    assert any(R > D for R, D in seen) and any(R <= D for R, D in seen)  # both products
