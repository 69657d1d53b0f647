r"""Phase IV on recorded runs: loss and norm, two directions, the slow manifold, seeds.

What the Phase-IV chapter measures and compares with :mod:`reluflow.analysis.theory`
(this book's derivation).  In the main regime the leaders (positive neurons) slide on
:math:`x_-^\perp` and the followers (negative neurons) share one direction
:math:`\varphi\in(\Delta, \pi/2)`; the mirror regime is the main regime of the data
:math:`(\Delta, 1-p)` seen in a mirror (:func:`reluflow.analysis.saddle.mirror_params`),
so angles are mapped by :math:`\varphi \mapsto \Delta - \varphi` before the formulas of
:func:`reluflow.analysis.theory.phase4_slow_manifold` apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.geometry import effective_data, plane_angles, regime, roles
from reluflow.analysis.measure import (
    check_trajectory,
    effective_directions,
    group_stats,
    neuron_mass,
    simulated_fate,
    wrap_angle,
)
from reluflow.analysis.phases import PhaseReport
from reluflow.analysis.saddle import mirror_params
from reluflow.analysis.text import markdown_table, math_number
from reluflow.analysis.theory import (
    fate,
    fate_boundary_distance,
    growth_coefficients,
    phase4_angle,
    phase4_log10_time,
    phase4_slow_manifold,
)
from reluflow.engine.data import TwoPointData
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import init_network
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "Convergence",
    "Drift",
    "SeedRow",
    "describe",
    "measure_convergence",
    "seed_runs",
    "seed_table",
]

Array = NDArray[np.float64]


def _group(traj: Trajectory, data: TwoPointData, sign: int) -> tuple[Array, Array, Array]:
    """Mass-weighted mean angle, RMS spread about it and total mass of one sign group."""
    mass = neuron_mass(traj)
    alive = np.any(traj.pattern == 1, axis=2)
    sel = (np.sign(traj.a[0]) == sign)[None, :]
    w = np.where(sel & alive, mass, 0.0)
    phi = plane_angles(traj.B, data)
    ang = np.angle(np.sum(w * np.exp(1j * phi), axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.sum(w * wrap_angle(phi - ang[:, None]) ** 2, axis=1) / np.sum(w, axis=1)
    spread = np.sqrt(var)
    return ang, spread, np.sum(np.where(sel, mass, 0.0), axis=1)


@dataclass(frozen=True)
class Drift:
    r"""The followers' drift from :math:`t = 10^{10}` against the slow manifold.

    ``t`` the recorded times from :math:`10^{10}`; ``angle`` and ``margin`` the manifold's
    prediction there (run's angles); ``measured`` and ``predicted`` the turn of the
    followers to the end; ``log10_close`` the :math:`\log_{10} t` at which the manifold
    brings them within 0.01 rad of their max-margin direction.
    """

    t: Array
    angle: Array
    margin: Array
    measured: float
    predicted: float
    log10_close: float


@dataclass(frozen=True)
class Convergence:
    r"""Phase-IV measurements of one run (see :func:`measure_convergence`).

    Attributes
    ----------
    regime : str
    leader : int
    smallest_margin, margin, sq_norm : ndarray
        :math:`q = \min_i y_i f(x_i)`, :math:`\gamma = q/\lVert\theta\rVert^2` and
        :math:`\lVert\theta\rVert^2` at each recorded time.
    lead_angle, lead_spread, lead_mass, fol_angle, fol_spread, fol_mass : ndarray
        Mean angle, spread and mass of the leaders and of the followers.
    late : ndarray of bool
        The late window :math:`t \ge \max(10^3 t_\mathrm{IV}, 10^3)`.
    q_slope : float
        Slope of :math:`q` in :math:`\log(t\log t)` over the late window (``nan`` with
        fewer than three samples).
    manifold : dict or None
        :func:`reluflow.analysis.theory.phase4_slow_manifold` at the followers' final
        angle (main and mirror regimes).
    drift : Drift or None
        The drift from :math:`t = 10^{10}` (main and mirror regimes, runs past
        :math:`10^{15}` that reach Phase IV well before :math:`10^{10}`).
    n_eff : float
        Effective number of directions at the end.
    mean_margin : float
        Mean of the two normalized margins at the end, :math:`(f(x_+) - f(x_-))/
        (2\lVert\theta\rVert^2)` (equal to either one at the manifold's leading order).
    """

    regime: str
    leader: int
    smallest_margin: Array
    margin: Array
    sq_norm: Array
    lead_angle: Array
    lead_spread: Array
    lead_mass: Array
    fol_angle: Array
    fol_spread: Array
    fol_mass: Array
    late: NDArray[np.bool_]
    q_slope: float
    manifold: dict[str, float] | None
    drift: Drift | None
    n_eff: float
    mean_margin: float

    @property
    def lead_fraction(self) -> float:
        """The leaders' share of the mass at the end."""
        return float(self.lead_mass[-1] / (self.lead_mass[-1] + self.fol_mass[-1]))


def _to_eff(reg: str, delta: float, phi: Array | float) -> Array:
    return np.asarray(phi if reg == "main" else delta - np.asarray(phi))


def _drift(traj: Trajectory, d: TwoPointData, eff: TwoPointData, fol_angle: Array,
           report: PhaseReport) -> Drift | None:
    t, reg = traj.t, regime(d)
    t4 = report.t_phase4
    j10 = int(np.searchsorted(t, 1e10))
    if t[-1] < 1e15 or t4 is None or j10 >= t.size or not t[j10] > 1e3 * t4:
        return None
    tt, ll = t[j10:], traj.loss[j10:]
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (ll[1:] * tt[1:] + ll[:-1] * tt[:-1])
                                             * np.diff(np.log(tt)))])
    start = float(np.clip(_to_eff(reg, d.delta, fol_angle[j10]), d.delta, 0.5 * math.pi))
    pred = phase4_angle(eff, start, tau)
    end = float(np.clip(_to_eff(reg, d.delta, fol_angle[-1]), d.delta, 0.5 * math.pi))
    return Drift(tt, np.asarray(_to_eff(reg, d.delta, pred)),
                 np.asarray(phase4_slow_manifold(eff, pred)["margin"]),
                 float(fol_angle[-1] - fol_angle[j10]),
                 float(_to_eff(reg, d.delta, pred[-1]) - fol_angle[j10]),
                 phase4_log10_time(eff, end, float(t[-1]), 0.5 * math.pi - 0.01))


def measure_convergence(traj: Trajectory, data: TwoPointData, report: PhaseReport
                        ) -> Convergence:
    r"""Measure Phase IV on a run recorded on a logarithmic grid to a large time (all neurons)."""
    traj, d = check_trajectory(traj, data)
    assert isinstance(d, TwoPointData)
    r, reg, eff = roles(d), regime(d), effective_data(d)
    t = traj.t
    q = np.min(traj.f * d.y[None, :], axis=1)
    lead, fol = _group(traj, d, r.leader), _group(traj, d, -r.leader)
    t4 = report.t_phase4
    late = t >= max(1e3 * (t4 if t4 is not None else 1e3), 1e3)
    q_slope = math.nan
    if np.sum(late) >= 3:
        q_slope = float(np.polyfit(np.log(t[late] * np.log(t[late])), q[late], 1)[0])
    manifold = None
    if eff is not None:
        phi = float(np.clip(_to_eff(reg, d.delta, fol[0][-1]), d.delta, 0.5 * math.pi))
        manifold = {k: float(v) for k, v in phase4_slow_manifold(eff, phi).items()}
    sq = traj.sq_norm()
    c = Convergence(reg, r.leader, q, traj.normalized_margin(), sq, *lead, *fol, late,
                    q_slope, manifold,
                    _drift(traj, d, eff, fol[0], report) if eff is not None else None,
                    effective_directions(traj, -1),
                    0.5 * float(traj.f[-1, 0] - traj.f[-1, 1]) / float(sq[-1]))
    return c


@dataclass(frozen=True)
class SeedRow:
    r"""The end of one run of the seed experiment (see :func:`seed_runs`)."""

    seed: int
    n_lead: int
    n_fol: int
    top_share: float
    lead_fraction: float
    lead_angle: float
    fol_angle: float
    margin: float
    fate_agreement: float
    share_error: float
    shares: Array
    predicted_shares: Array


def seed_runs(data: TwoPointData, kappa: float, m: int, seeds: Sequence[int], t_max: float,
              n_times: int = 100) -> list[SeedRow]:
    r"""Run the exact flow from several seeds to ``t_max``; what depends on the seed.

    For each seed: the survivors of each group, the largest neuron's share of the leaders'
    mass and its prediction :math:`c_k^2/\sum_j c_j^2` from the Phase-I growth
    coefficients (:func:`reluflow.analysis.theory.growth_coefficients`), the group-level
    quantities (mass fraction, angles, margin) and the Phase-I fate agreement for neurons
    farther than :math:`10^{-3}` rad from a fate boundary.  Predictions use the main-regime
    data of the regime (``nan`` in the intermediate regime).
    """
    r, reg, eff = roles(data), regime(data), effective_data(data)
    times = np.concatenate([[0.0], np.geomspace(1e-2, t_max, n_times)])
    rows = []
    for s in seeds:
        prm = init_network(m, 2, kappa, seed=int(s))
        tr = gradient_flow(prm, data, t_max, times=times)
        g = group_stats(tr, data, -1)
        lg, fg = (g["positive"], g["negative"]) if r.leader > 0 else (g["negative"], g["positive"])
        mass = neuron_mass(tr)[-1]
        alive = np.any(tr.pattern[-1] == 1, axis=1)
        lead_k = alive & (np.sign(tr.a[0]) == r.leader)
        share = mass[lead_k] / mass[lead_k].sum() if lead_k.any() else np.zeros(0)
        agree = err = math.nan
        pred = np.zeros(0)
        if eff is not None:
            seen = prm if reg == "main" else mirror_params(data, prm)
            far = fate_boundary_distance(eff, seen) > 1e-3
            agree = float(np.mean((fate(eff, seen) == simulated_fate(tr, data))[far]))
            c2 = growth_coefficients(eff, seen)[lead_k] ** 2
            pred = c2 / c2.sum()
            err = float(np.max(np.abs(share - pred))) if share.size else math.nan
        rows.append(SeedRow(int(s), lg.alive, fg.alive,
                            float(share.max()) if share.size else math.nan,
                            lg.mass / (lg.mass + fg.mass), lg.mean_angle, fg.mean_angle,
                            float(tr.normalized_margin()[-1]), agree, err, share, pred))
    return rows


def seed_table(rows: Sequence[SeedRow]) -> str:
    """The seed experiment as a Markdown table."""
    header = ["seed", "alive: leaders, followers", "largest leader share", "leaders' mass share",
              "followers' angle", "margin $\\gamma$"]
    return markdown_table(header, [
        [r.seed, f"{r.n_lead}, {r.n_fol}", math_number(r.top_share, ".4f"),
         math_number(r.lead_fraction, ".5f"), math_number(r.fol_angle, ".5f"),
         math_number(r.margin, ".5f")] for r in rows], "rrrrrr")


def describe(c: Convergence, report: PhaseReport, data: TwoPointData) -> str:
    """What the run shows about Phase IV, in words (Markdown), for any parameters."""
    limit = math.sin(data.delta) / 4
    out = []
    if report.t_phase4 is None:
        return ("In this run the loss does not reach Phase IV (smallest margin 2) within the "
                "window, so nothing of the proposition can be seen; a longer run shows it.")
    out.append(f"Phase IV starts at $t_\\mathrm{{IV}}$ = {math_number(report.t_phase4)}. At the "
               f"end, $t$ = {math_number(float(report.values['final_time']), '.0e')}, the "
               f"normalized margin is {math_number(float(c.margin[-1]), '.5f')}, "
               f"{100 * float(c.margin[-1]) / limit:.2f} % of "
               f"$\\sin\\Delta/4$ = {math_number(limit, '.5f')}.")
    if c.manifold is None:
        out.append("Outside the main and mirror regimes the slow manifold is not derived: the "
                   f"run ends with the leaders at {math_number(float(c.lead_angle[-1]), '.4f')} "
                   f"rad and the followers at {math_number(float(c.fol_angle[-1]), '.4f')} rad, "
                   f"the leaders holding {math_number(c.lead_fraction, '.4f')} of the mass.")
    if c.drift is not None:
        out.append(f"From $t = 10^{{10}}$ to the end the followers turned by "
                   f"{math_number(c.drift.measured, '.4f')} rad, against "
                   f"{math_number(c.drift.predicted, '.4f')} on the slow manifold; on the same "
                   "manifold they would come within 0.01 rad of their max-margin direction "
                   f"only at $t \\approx 10^{{{math_number(c.drift.log10_close).strip('$')}}}$.")
    elif c.manifold is not None:
        out.append("The run is too short to measure the slow drift (it needs $t > 10^{15}$ "
                   "and Phase IV well before $10^{10}$).")
    return " ".join(out)
