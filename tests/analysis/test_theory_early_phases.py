"""Phases I-II helpers: closed forms (reluflow.analysis.theory), measurements
(reluflow.analysis.phases) and the annotated overview figure (reluflow.viz.plots), checked
against the exact flow."""

from __future__ import annotations

import math
from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.text import Annotation
from scipy.integrate import solve_ivp

from reluflow import Params, Trajectory, TwoPointData, gradient_flow, init_network, plots
from reluflow.analysis import measure as ms
from reluflow.analysis import phases as ph
from reluflow.analysis import theory as th


@cache
def _run(delta: float, p: float, kappa: float, seed: int, t_max: float, n: int) -> Trajectory:
    data = TwoPointData(delta, p)
    params = init_network(40, 2, kappa, seed=seed)
    return gradient_flow(params, data, t_max, times=np.linspace(0.0, t_max, n))


def test_condensation_angle_solves_the_angle_ode() -> None:
    data = TwoPointData(0.3, 0.7)
    nm = th.condensation_rate(data)
    psi0 = np.array([0.1, 1.0, 2.5])
    t = np.linspace(0.0, 8.0, 9)
    sol = solve_ivp(lambda _t, y: -nm * np.sin(y), (0.0, 8.0), psi0, t_eval=t,
                    rtol=1e-11, atol=1e-13)
    got = th.condensation_angle(data, psi0[:, None], t[None, :])
    np.testing.assert_allclose(got, sol.y, rtol=1e-7)
    assert np.all(np.diff(got, axis=1) < 0)


def test_growth_bound_and_sliding_rates_values() -> None:
    data = TwoPointData(1.4, 0.55)  # |mu| > max(p, 1 - p) at a wide angle
    nm = th.condensation_rate(data)
    assert nm > 0.55
    assert th.phase1_growth_bound(data) == pytest.approx(nm)
    assert th.phase1_growth_bound(TwoPointData(0.3, 0.7)) == pytest.approx(0.7)
    r = th.sliding_rates(TwoPointData(0.3, 0.7))
    assert r["positive"] == pytest.approx(0.7 * math.sin(0.3))
    assert r["negative"] == pytest.approx(0.3 * math.sin(0.3))


@pytest.mark.parametrize(("delta", "p", "seed"), [(0.3, 0.7, 0), (0.5, 0.35, 1), (1.0, 0.5, 2)])
def test_measured_rates_match_phase1_predictions(delta: float, p: float, seed: int) -> None:
    traj = _run(delta, p, 1e-6, seed, 20.0, 201)
    data = traj.data
    assert isinstance(data, TwoPointData)
    rates = ms.condensation_rates(traj, data)
    fin = np.isfinite(rates)
    assert fin.sum() >= 5
    np.testing.assert_allclose(rates[fin], th.condensation_rate(data), rtol=1e-3)
    slide = ms.sliding_growth_rates(traj, data)
    s = np.sign(traj.a[0])
    pred = th.sliding_rates(data)
    seen = 0
    for sign, key in ((1, "positive"), (-1, "negative")):
        sel = np.isfinite(slide) & (s == sign)
        if sel.any():
            seen += 1
            np.testing.assert_allclose(slide[sel], pred[key], rtol=1e-3)
    assert seen >= 1
    # Phase-I growth bound, while f is negligible
    ab = np.sqrt(traj.a**2 + np.sum(traj.B**2, axis=2))
    early = np.max(np.abs(traj.f), axis=1) < 1e-6
    ratio = ab[early] / ab[0] * np.exp(-th.phase1_growth_bound(data) * traj.t[early, None])
    assert np.max(ratio) <= 1 + 1e-6


def test_target_angles_against_arccos_and_condensation_angle() -> None:
    traj = _run(0.3, 0.7, 1e-6, 0, 20.0, 201)
    data = traj.data
    assert isinstance(data, TwoPointData)
    psi = ms.target_angles(traj, data)
    m = th.mu(data) / th.condensation_rate(data)
    s = np.sign(traj.a[0])
    B0 = traj.B[0]
    ref = np.arccos(np.clip((B0 @ m) * s / np.linalg.norm(B0, axis=1), -1, 1))
    np.testing.assert_allclose(psi[0], ref, atol=1e-12)
    # a neuron active on both points for t <= 3 follows the closed form
    both = np.all(traj.pattern[:31] == 1, axis=(0, 2))
    k = int(np.flatnonzero(both)[0])
    np.testing.assert_allclose(psi[:31, k], th.condensation_angle(data, psi[0, k], traj.t[:31]),
                               rtol=1e-6)


def test_plateau_output_solves_its_ode() -> None:
    data = TwoPointData(0.3, 0.7)
    t = np.linspace(10.0, 40.0, 301)
    g = th.plateau_output(data, t, 10.0, 0.9)
    assert g[0] == pytest.approx(0.9)
    dg = np.gradient(g, t)
    rhs = 2 * 0.7 * math.sin(0.3) * np.exp(-g) * g
    np.testing.assert_allclose(dg[1:-1], rhs[1:-1], rtol=1e-3)
    g_neg = th.plateau_output(data, t, 10.0, 0.9, leader="negative")
    assert np.all(g_neg <= g)  # weight 1 - p < p: slower


def test_plateau_output_matches_exact_flow() -> None:
    data = TwoPointData(0.3, 0.7)
    params = init_network(40, 2, 1e-6, seed=0)
    traj = gradient_flow(params, data, 70.0, times=np.linspace(0.0, 70.0, 351))
    lead = traj.a[0] > 0
    alive = np.any(traj.pattern == 1, axis=2)
    held = traj.pattern[:, :, 1] == 0
    full = np.all(held[:, lead] | ~alive[:, lead], axis=1) & np.any(held[:, lead], axis=1)
    j0 = int(np.flatnonzero(full)[0])
    Mk = traj.a**2 + np.sum(traj.B**2, axis=2)
    small = np.sum(Mk[:, ~lead], axis=1) <= 1e-3 * np.sum(Mk[:, lead], axis=1)
    j1 = j0
    while j1 + 1 < traj.t.size and small[j1 + 1] and full[j1 + 1]:
        j1 += 1
    assert j1 - j0 >= 10
    g = th.plateau_output(data, traj.t[j0:j1 + 1], float(traj.t[j0]), float(traj.f[j0, 0]))
    np.testing.assert_allclose(g, traj.f[j0:j1 + 1, 0], rtol=1e-2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: th.condensation_angle(TwoPointData(0.3, 0.7), [4.0], 1.0), "psi0"),
        (lambda: th.condensation_angle(TwoPointData(0.3, 0.7), [1.0], -1.0), "t must"),
        (lambda: th.plateau_output(TwoPointData(0.3, 0.7), [1.0], 2.0, 0.5), "t must"),
        (lambda: th.plateau_output(TwoPointData(0.3, 0.7), [3.0], 2.0, 0.0), "f0"),
        (lambda: th.plateau_output(TwoPointData(0.3, 0.7), [3.0], 2.0, 1.0, leader="x"),
         "leader"),
        (lambda: th.sliding_rates(TwoPointData(1.6, 0.7)), "delta"),
        (lambda: ms.condensation_rates(_run(0.3, 0.7, 1e-6, 0, 20.0, 201), TwoPointData(0.3, 0.7),
                                       f_tol=0.0), "f_tol"),
        (lambda: ms.condensation_rates(_run(0.3, 0.7, 1e-6, 0, 20.0, 201), TwoPointData(0.3, 0.7),
                                       min_samples=1), "min_samples"),
        (lambda: ms.sliding_growth_rates(_run(0.3, 0.7, 1e-6, 0, 20.0, 201),
                                         TwoPointData(0.3, 0.7), f_tol=-1.0), "f_tol"),
        (lambda: ms.target_angles(_run(0.3, 0.7, 1e-6, 0, 20.0, 201), TwoPointData(0.4, 0.7)),
         "data must be the data set"),
        (lambda: plots.overview_annotations(object()), "report must be"),
    ],
)
def test_invalid_inputs(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def test_overview_annotations_from_report_fields() -> None:
    rep = SimpleNamespace(t_condensed=5.0, t_escape=20.0, t_reactivation=None, t_plateau=40.0,
                          t_plateau_escape=80.0, t_phase4=None)
    marks = plots.overview_annotations(rep)
    assert marks == {"condensation": 5.0, "saddle_escape": 20.0, "deactivation": 40.0,
                     "plateau": 60.0, "plateau_escape": 80.0}
    assert list(marks) == [k for k in plots.ANNOTATION_LABELS if k in marks]


def test_annotated_overview_points_at_detected_times() -> None:
    data = TwoPointData(0.3, 0.7)
    params = init_network(30, 2, 1e-6, seed=0)
    times = np.concatenate([[0.0], np.linspace(0.2, 150.0, 400), np.geomspace(152.0, 1e30, 80)])
    traj = gradient_flow(params, data, 1e30, times=times)
    report = ph.detect_phases(traj, data)
    fig = plots.annotated_overview(traj, data, report)
    got = {a.get_gid().split(":", 1)[1]: float(a.xy[0]) for a in fig.findobj(Annotation)
           if (a.get_gid() or "").startswith("overview:")}
    assert got == plots.overview_annotations(report)
    assert set(got) == set(plots.ANNOTATION_LABELS)  # this run shows every behaviour
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert isinstance(params, Params)
