"""Tests of the Phase III-IV closed forms of reluflow.analysis.theory (plateau exit, slow manifold).

These back chapters 3 and 4 of the book; the predictions are this book's derivations and
are compared here with the exact flow on small networks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expi

from reluflow import Params, TwoPointData, gradient_flow, init_network
from reluflow.analysis import measure as ms
from reluflow.analysis import theory as th
from reluflow.engine.network import network_output


def test_plateau_exit_output_solves_the_ei_equation() -> None:
    d = TwoPointData(0.3, 0.7)
    nm = th.condensation_rate(d)
    s_notes = th.plateau_escape_slope(d, "leading")
    for kappa in (1e-3, 1e-6, 1e-12):
        g = th.plateau_exit_output(d, kappa)
        ell = math.log(1 / kappa)
        rhs = expi(th.reactivation_threshold(d)) + 2 * d.p * math.sin(d.delta) * (
            s_notes - 1 / nm) * ell
        assert expi(g) == pytest.approx(rhs, rel=1e-10)
    # smaller kappa: longer plateau, larger f(x+) at its end
    gs = [th.plateau_exit_output(d, k) for k in (1e-3, 1e-6, 1e-9, 1e-12)]
    assert np.all(np.diff(gs) > 0)


def test_plateau_exit_output_rejects_other_regimes_and_bad_kappa() -> None:
    with pytest.raises(ValueError, match="main regime"):
        th.plateau_exit_output(TwoPointData(0.3, 0.3), 1e-6)
    with pytest.raises(ValueError, match="kappa"):
        th.plateau_exit_output(TwoPointData(0.3, 0.7), 2.0)


@pytest.mark.parametrize(("delta", "p"), [(0.3, 0.7), (0.1, 0.6), (0.6, 0.85)])
def test_slow_manifold_limits_and_monotonicity(delta: float, p: float) -> None:
    d = TwoPointData(delta, p)
    phi = np.linspace(delta, math.pi / 2, 401)
    sm = th.phase4_slow_manifold(d, phi)
    # at x_+^perp: equal masses, margin sin(delta)/4, two effective directions
    assert sm["mass_fraction"][-1] == pytest.approx(0.5, abs=1e-12)
    assert sm["margin"][-1] == pytest.approx(math.sin(delta) / 4, rel=1e-12)
    assert sm["n_eff"][-1] == pytest.approx(2.0, rel=1e-12)
    # the margin rises monotonically to its maximum, and the angle always moves up
    assert np.all(np.diff(sm["margin"]) > 0)
    assert np.all(sm["rate_loss_clock"] > 0) and np.all(sm["rate_loglog"] > 0)
    assert sm["margin"][-1] == pytest.approx(th.max_margin(d).margin, abs=1e-6)


def test_slow_manifold_balances_the_two_margins() -> None:
    """A network built on the manifold has equal normalized margins, equal to gamma."""
    d = TwoPointData(0.4, 0.75)
    for phi in (0.5, 1.0, 1.4):
        sm = th.phase4_slow_manifold(d, phi)
        q = float(sm["mass_fraction"])
        wp, wm = q, 1 - q  # ||b||^2 of one positive and one negative neuron
        up = th.x_minus_perp(d)
        um = np.array([math.cos(phi), math.sin(phi)])
        params = Params(np.array([math.sqrt(wp), -math.sqrt(wm)]),
                        np.stack([math.sqrt(wp) * up, math.sqrt(wm) * um]))
        f = network_output(params, d.X)
        margins = d.y * f / params.sq_norm()
        np.testing.assert_allclose(margins, float(sm["margin"]), rtol=1e-12)


def test_slow_manifold_rejects_bad_input() -> None:
    d = TwoPointData(0.3, 0.7)
    with pytest.raises(ValueError, match=r"phi must lie in \[delta, pi/2\]"):
        th.phase4_slow_manifold(d, 0.1)
    with pytest.raises(ValueError, match="main regime"):
        th.phase4_slow_manifold(TwoPointData(0.3, 0.3), 1.0)
    with pytest.raises(ValueError, match="clock must be one of"):
        th.phase4_angle(d, 1.0, [0.0, 1.0], clock="wall")
    with pytest.raises(ValueError, match="elapsed"):
        th.phase4_angle(d, 1.0, [-1.0])
    with pytest.raises(ValueError, match="t0 must be"):
        th.phase4_log10_time(d, 1.0, 2.0, 1.2)
    with pytest.raises(ValueError, match="phi1 must be >= phi0"):
        th.phase4_log10_time(d, 1.2, 1e10, 1.0)


def test_phase4_angle_reaches_x_plus_perp_and_stays() -> None:
    d = TwoPointData(0.3, 0.7)
    s = np.array([0.0, 1.0, 10.0, 1e3])
    phi = th.phase4_angle(d, 1.0, s)
    assert phi[0] == 1.0
    assert np.all(np.diff(phi) >= 0)
    assert phi[-1] == math.pi / 2
    # the loglog clock and the log10 time of the same path agree
    t0 = 1e10
    lt = th.phase4_log10_time(d, 1.0, t0, 1.2)
    u = math.log(lt * math.log(10.0)) - math.log(math.log(t0))
    assert th.phase4_angle(d, 1.0, [u], clock="loglog")[0] == pytest.approx(1.2, abs=1e-7)


def test_phase4_angle_follows_the_exact_flow() -> None:
    """The negative group's angle from t = 1e6 to 1e24 follows the loss-clock prediction."""
    d = TwoPointData(0.3, 0.7)
    params = init_network(30, 2, 1e-4, seed=1)
    times = np.concatenate([[0.0], np.geomspace(1.0, 1e24, 241)])
    traj = gradient_flow(params, d, 1e24, times=times)
    j0 = int(np.searchsorted(traj.t, 1e6))
    ang = np.array([ms.group_stats(traj, d, j)["negative"].mean_angle
                    for j in range(j0, traj.t.size)])
    t, L = traj.t[j0:], traj.loss[j0:]
    lt = np.log(t)
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (L[1:] * t[1:] + L[:-1] * t[:-1]) * np.diff(lt))])
    pred = th.phase4_angle(d, ang[0], tau)
    advance, pred_adv = ang[-1] - ang[0], pred[-1] - ang[0]
    assert advance > 0.05  # it does move, slowly
    assert pred_adv == pytest.approx(advance, rel=0.06)
    # mass split and margin at the end sit on the manifold
    sm = th.phase4_slow_manifold(d, ang[-1])
    gs = ms.group_stats(traj, d, -1)
    frac = gs["positive"].mass / (gs["positive"].mass + gs["negative"].mass)
    assert frac == pytest.approx(float(sm["mass_fraction"]), rel=5e-3)
    assert traj.normalized_margin()[-1] == pytest.approx(float(sm["margin"]), rel=0.02)
