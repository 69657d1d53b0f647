"""The chapters' measurement modules, each on a small exact run of the regime it treats."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import reluflow as rf
from reluflow.analysis import (
    condensation,
    convergence,
    escape,
    identities,
    numerics,
    saddle,
    sweeps,
    text,
)

ROOT = Path(__file__).resolve().parents[2]


def _run(delta: float, p: float, kappa: float, t_max: float, n: int, m: int = 40,
         seed: int = 0) -> tuple[rf.Trajectory, rf.TwoPointData, rf.Params, rf.PhaseReport]:
    data = rf.TwoPointData(delta, p)
    params = rf.init_network(m, 2, kappa, seed=seed)
    traj = rf.gradient_flow(params, data, t_max, times=np.linspace(0.0, t_max, n))
    return traj, data, params, rf.detect_phases(traj, data)


@pytest.fixture(scope="module")
def main_run() -> tuple[rf.Trajectory, rf.TwoPointData, rf.Params, rf.PhaseReport]:
    return _run(0.3, 0.7, 1e-6, 120.0, 481)


def test_math_number_and_entropy() -> None:
    assert text.math_number(2.5e-7, ".2g") == "$2.5\\times 10^{-7}$"
    assert condensation.binary_entropy(0.0) == 0.0
    assert condensation.binary_entropy(0.5) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="q must lie in"):
        condensation.binary_entropy(1.5)


def test_condensation_on_the_main_regime(main_run: tuple) -> None:
    traj, data, params, report = main_run
    m = condensation.measure_condensation(traj, data, params, report)
    assert m.settled and m.leader == 1 and m.regime == "main"
    assert m.decided_agreement == 1.0 and m.agreement >= 0.95
    assert m.rate_error < 1e-3 and m.slide_error < 1e-3
    assert m.size_ratio <= 1.0 + 1e-9
    assert abs(math.log2(m.second_fraction / m.second_predicted)) < 1.0  # the rate gap
    assert m.leader_condensed
    assert m.n_eff[m.j_escape] == pytest.approx(m.two_direction_n_eff, abs=1e-3)
    assert sum(m.count(f) for f in rf.theory.FATES) == traj.m
    words = condensation.describe(m, 120.0)
    assert "rate gap" in words and "nan" not in words
    small = rf.gradient_flow(rf.Params(params.a * 1e-3, params.B * 1e-3), data, 120.0,
                             times=traj.t)
    dphi, fmax, dgrowth = condensation.scale_independence(traj, small, data, m.t_condensed)
    assert dphi < 1e-6 and dgrowth < 1e-6 and 0 < fmax < 1e-6
    with pytest.raises(ValueError, match="same times"):
        condensation.scale_independence(traj, rf.gradient_flow(params, data, 10.0), data, 5.0)
    with pytest.raises(ValueError, match=r"report must be a reluflow\.PhaseReport"):
        condensation.measure_condensation(traj, data, params, None)  # type: ignore[arg-type]


def test_condensation_words_when_phase_one_does_not_finish() -> None:
    traj, data, params, report = _run(0.3, 0.7, 1e-2, 10.0, 101, m=20)
    m = condensation.measure_condensation(traj, data, params, report)
    assert not m.settled
    words = condensation.describe(m, 10.0)
    assert "too large" in words or "does not end" in words
    assert "not end" in condensation.compare_scales(None, 3.0, 1e-2, 1e-12)
    assert "Measured" in condensation.compare_scales(3.0, 3.0, 1e-6, 1e-12)
    still = _run(0.3, 0.7, 1e-12, 20.0, 81, m=20)
    m2 = condensation.measure_condensation(still[0], still[1], still[2], still[3])
    assert "still at the saddle" in condensation.describe(m2, 20.0)


def test_saddle_measurements(main_run: tuple) -> None:
    traj, data, _, report = main_run
    s = saddle.measure_saddle(traj, data, report)
    lam = rf.theory.escape_rate(data)
    assert s.growth / (2 * lam) == pytest.approx(1.0, rel=2e-2)
    assert s.slide_times.size and bool(s.slide_condition.all())
    assert s.slide_times.min() > report.t_escape
    assert s.plateau is not None and s.plateau_error < 1e-2
    assert s.leader_on_awaited < 1e-9 and s.held_direction_error < 1e-6
    words = saddle.describe(s, report, 120.0)
    assert "reactivation" in words and "before" in words
    assert saddle.loss_terms(traj, data).shape == (traj.t.size, 2)
    assert saddle.boundary_angle(data, 1) == pytest.approx(data.delta - math.pi / 2)
    assert "level" in saddle.plateau_sentence(report)


def test_mirror_params_map_the_mirror_run_onto_the_main_one() -> None:
    data = rf.TwoPointData(0.5, 0.35)
    params = rf.init_network(10, 2, 1e-3, seed=1)
    run = rf.gradient_flow(params, data, 30.0, times=np.linspace(0, 30, 31))
    seen = rf.gradient_flow(saddle.mirror_params(data, params), rf.geometry.effective_data(data),
                            30.0, times=np.linspace(0, 30, 31))
    np.testing.assert_allclose(run.f[:, 0], -seen.f[:, 1], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(run.loss, seen.loss, rtol=1e-6)
    with pytest.raises(ValueError, match="d = 2"):
        saddle.mirror_params(data, rf.init_network(3, 3, 1e-3, seed=0))


def _escape(data: rf.TwoPointData, kappa: float, loss: str) -> tuple[float, float | None]:
    """The predicted and the measured saddle escape of one run (40 neurons, seed 0)."""
    params = rf.init_network(40, 2, kappa, seed=0)
    t_pred = saddle.predicted_escape(data, params, kappa, loss)
    t_max = 1.5 * t_pred
    run = rf.gradient_flow(params, data, t_max, times=np.linspace(0.0, t_max, 601), loss=loss)
    return t_pred, rf.detect_phases(run, data).t_escape


@pytest.mark.parametrize(("delta", "p", "loss"), [(0.3, 0.7, "exp"), (0.5, 0.35, "exp"),
                                                 (0.3, 0.7, "logistic")])
def test_predicted_escape_main_and_mirror(delta: float, p: float, loss: str) -> None:
    t_pred, t_esc = _escape(rf.TwoPointData(delta, p), 1e-6, loss)
    # the O(1) term of this initialization: 0.3 (a linearised 1 % drop) times c
    assert t_esc == pytest.approx(t_pred, abs=0.3 * rf.theory.loss_scale(loss))


def test_predicted_escape_intermediate_is_the_leading_order() -> None:
    data = rf.TwoPointData(0.8, 0.55)
    (p6, t6), (p12, t12) = _escape(data, 1e-6, "exp"), _escape(data, 1e-12, "exp")
    assert p6 == rf.theory.saddle_escape_time(data, 1e-6)
    assert t6 is not None and t12 is not None and t6 < p6  # escapes within the window
    # no O(1) term is derived here: the slope in log(1/kappa) is what is predicted (3 %)
    assert (t12 - t6) / (p12 - p6) == pytest.approx(1.0, rel=0.03)


@pytest.mark.slow
def test_escape_sweep_slope_and_errors() -> None:
    data = rf.TwoPointData(0.3, 0.7)
    sweep = saddle.escape_sweep(data, np.array([1e-3, 1e-9]), 20, 0, 121)
    assert sweep.slope * sweep.rate == pytest.approx(1.0, rel=3e-2)
    assert np.max(np.abs(sweep.t_escape - sweep.t_predicted)) < 0.3
    with pytest.raises(ValueError, match="at least two scales"):
        saddle.escape_sweep(data, np.array([1e-3]), 10, 0)
    inter = saddle.escape_sweep(rf.TwoPointData(0.8, 0.55), np.array([1e-3, 1e-6]), 20, 0, 81)
    assert np.all(np.isnan(inter.t_predicted))


def test_escape_measurements(main_run: tuple) -> None:
    traj, data, _, report = main_run
    e = escape.measure_escape(traj, data, 120.0)
    assert e.t_release is not None and e.t_condition is not None
    assert abs(e.t_release - e.t_condition) <= 0.5 * e.step
    assert np.ptp(e.release_times) <= e.step
    assert e.slide_ratio == pytest.approx(1.0, rel=1e-3)
    t3 = report.t_plateau_escape
    j = int(np.searchsorted(traj.t, t3))
    angle = abs(float(rf.measure.wrap_angle(e.follower_mean[j] - e.target[j])))
    assert angle <= escape.tracking_bound(e, traj, data, t3)
    assert math.isnan(escape.tracking_bound(e, traj, data, 1.0))
    assert "releases" in escape.describe(e, report, 120.0)
    assert escape.dense_horizon(data, 1e-6) > t3
    assert escape.exit_loss(rf.TwoPointData(0.8, 0.55), 1e-6) is None
    assert escape.reactivation_output(data) == pytest.approx(rf.theory.reactivation_threshold(data))
    assert "not derived" in escape.release_sentence(None, None)
    assert "nothing to compare" in escape.release_sentence(1.0, None)


@pytest.mark.slow
def test_slope_rows_and_their_words() -> None:
    rows = escape.slope_sweep([(0.3, 0.7), (0.8, 0.55)], [1e-3, 1e-7], 16, 0, 121)
    main, inter = rows
    assert main.derived and not inter.derived
    assert main.leading < main.measured
    assert main.corrected == pytest.approx(main.measured, rel=0.08)
    table = escape.slope_table(rows)
    assert table.count("\n") == 3 and "not derived" in table and "nan" not in table
    assert "up to" in escape.slope_sentence(rows)
    assert "None of these" in escape.slope_sentence([inter])
    assert "Predicted slope" in escape.length_sentence(main)
    assert "not derived" in escape.length_sentence(inter)


@pytest.mark.slow
def test_convergence_and_seeds() -> None:
    data = rf.TwoPointData(0.3, 0.7)
    times = np.concatenate([[0.0], np.geomspace(1e-2, 1e30, 150)])
    traj = rf.gradient_flow(rf.init_network(30, 2, 1e-6, seed=0), data, 1e30, times=times)
    report = rf.detect_phases(traj, data)
    c = convergence.measure_convergence(traj, data, report)
    inv_q = 1 / c.smallest_margin[-1]
    assert c.manifold is not None and c.drift is not None
    assert c.lead_fraction == pytest.approx(c.manifold["mass_fraction"], rel=inv_q)
    assert c.mean_margin == pytest.approx(c.manifold["margin"], rel=inv_q)
    assert c.q_slope == pytest.approx(1.0, abs=0.03)
    assert c.drift.predicted == pytest.approx(c.drift.measured, rel=2 / math.log(1e10))
    words = convergence.describe(c, report, data)
    assert "\\times 10^{" in words and "e+" not in words  # a double exponent, typeset
    rows = convergence.seed_runs(data, 1e-6, 20, [0, 1], 1e30, 40)
    assert all(r.fate_agreement == 1.0 and r.share_error < 1e-2 for r in rows)
    assert convergence.seed_table(rows).count("\n") == 3
    inter = rf.TwoPointData(0.8, 0.55)
    traj_i = rf.gradient_flow(rf.init_network(20, 2, 1e-4, seed=2), inter, 1e30, times=times)
    ci = convergence.measure_convergence(traj_i, inter, rf.detect_phases(traj_i, inter))
    assert ci.manifold is None and "not derived" in convergence.describe(
        ci, rf.detect_phases(traj_i, inter), inter)


def test_identities() -> None:
    data4 = rf.TwoPointData(0.3, 0.7, d=4)
    traj = rf.gradient_flow(rf.init_network(12, 4, 1e-4, seed=1), data4, 1e6)
    err = identities.identity_errors(traj)
    assert err.balance < 1e-9 and err.loss_increase < 1e-12 and err.orthogonal == 0.0
    assert err.dead_moved == 0.0 and err.n_dead > 0
    assert err.held_distance < 1e-10
    with pytest.raises(ValueError, match="must start at t = 0"):
        identities.identity_errors(rf.gradient_flow(rf.init_network(4, 2, 1e-3, seed=0),
                                                    rf.TwoPointData(0.3, 0.7), 10.0,
                                                    times=[1.0, 2.0]))
    with pytest.raises(ValueError, match=r"traj must be a reluflow\.Trajectory"):
        identities.identity_errors("traj")  # type: ignore[arg-type]


def _result(delta: float, p: float, kappa: float, slope: float, **kw: object) -> dict:
    ell = math.log(1 / kappa)
    out = {"delta": delta, "p": p, "kappa": kappa, "kappa_a": None, "seed": 0, "m": 40,
           "regime_measured": rf.geometry.regime(rf.TwoPointData(delta, p)), "leader": 1,
           "t_condensed": 4.0, "t_escape": ell / rf.theory.escape_rate(rf.TwoPointData(delta, p)),
           "t_plateau": 30.0, "t_plateau_escape": slope * ell + 5.0, "t_phase4": 100.0,
           "plateau_loss": 0.31, "normalized_margin": 0.07}
    out.update(kw)
    return out


def test_sweep_summaries() -> None:
    kappas = [1e-4, 1e-10]
    results = [_result(0.3, 0.7, k, 5.2) for k in kappas]
    (point,) = sweeps.diagram_points(results, [0.3], [0.7], kappas)
    assert point.agrees and point.escape_ratio == pytest.approx(1.0)
    assert point.slope == pytest.approx(5.2)
    table = sweeps.diagram_table([point])
    assert "main" in table and "nan" not in table
    fits = sweeps.slopes(results, [sweeps.ell(r) for r in results], ["t_plateau_escape"])
    assert fits["t_plateau_escape"] == pytest.approx(5.2)
    assert "–" in sweeps.kappa_width_table({k: 1.0 for k in sweeps.PHASE_NAMES},
                                           {k: -0.5 for k in sweeps.PHASE_NAMES}, {})
    unb = [_result(0.3, 0.7, k, 5.2, kappa_a=100 * k) for k in kappas]
    groups = sweeps.unbalanced_groups(results, unb, [100.0])
    table, fit = sweeps.unbalanced_table(groups, 0.42, 5.2)
    assert len(fit) == 2 and "balanced" in table
    pairs = sweeps.logistic_pairs(results, [_result(0.3, 0.7, 1e-4, 10.0)], 0, 0.42)
    assert pairs[0]["pred"] == pytest.approx(2 * results[0]["t_escape"]
                                             + math.log(2 * math.log(2)) / 0.42)
    assert sweeps.logistic_table(pairs).count("\n") == 2
    row = sweeps.Row("x", "s", 1.01, 1.0, "src", 0.02, "why")
    assert row.ok and not sweeps.Row("x", "s", 1.1, 1.0, "src", 0.02, "why").ok
    assert "1 %" in sweeps.summary_table([row])


def test_numerics_summaries() -> None:
    rows = [rf.compare.MethodRun("engine", f"rtol {r:g}", r, 10 * r, 0.1, 50, 1e-15)
            for r in (1e-4, 1e-7)]
    rows += [rf.compare.MethodRun("gradient descent", f"lr {h:g}", h, 0.1 * h, 1.0 / h,
                                  int(100 / h), h) for h in (0.1, 0.05)]
    acc = numerics.accuracy(rows, 100.0)
    assert acc.order == pytest.approx(1.0) and acc.drift_order == pytest.approx(1.0)
    assert acc.lr_needed == pytest.approx(0.05 * (1e-3 / 5e-3))  # second-tightest engine run
    assert acc.hours == pytest.approx(100.0 / acc.lr_needed * (20.0 / 2000) / 3600)
    with pytest.raises(ValueError, match="at least two engine"):
        numerics.accuracy(rows[:1], 100.0)
    assert numerics.methods_table(rows).count("\n") == 5
    summary = numerics.benchmark_summary((ROOT / "benchmarks" / "RESULTS.md").read_text())
    assert "Wall time and accuracy" in summary and "Ratios" in summary
    assert "Profile" not in summary and "flow.py" not in summary and "n/m" not in summary
    with pytest.raises(ValueError, match="no 'Wall time and accuracy'"):
        numerics.benchmark_summary("# nothing\n")
    # the kept columns keep their alignment; unmeasured or missing cells read "–"
    results = ("## Ratios (same run)\n\n| m | a | b | c | d |\n|:---|---:|:---:|---|---|\n"
               "| 1 | n/m |  | 4 | 5 |\n| 2 | 3 |\n")
    assert numerics.benchmark_summary(results).splitlines() == [
        "**Ratios**", "", "| m | a | b | c |", "|:---|---:|:---:|---|", "| 1 | – | – | 4 |",
        "| 2 | 3 | – | – |"]
    for body in ("no table", "| a | b |\n| 1 | 2 |"):
        with pytest.raises(ValueError, match="section 'Ratios' has no Markdown table"):
            numerics.benchmark_summary(f"## Ratios\n\n{body}\n")
    assert "no boundary" in numerics.chattering_sentence(None)
    table = numerics.width_table(numerics.width_timings(rf.TwoPointData(0.3, 0.7), [5], 0))
    assert table.count("\n") == 2
