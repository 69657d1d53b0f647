r"""Figures of the Phase-I chapter: fates, condensation rates, simplification.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring); every function returns
a :class:`~reluflow.viz.plots.panels.Panels` book figure, drawn from the measurements of
:func:`reluflow.analysis.condensation.measure_condensation`.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D

from reluflow.analysis.condensation import Condensation
from reluflow.analysis.measure import target_angles
from reluflow.analysis.phases import PhaseReport
from reluflow.analysis.theory import (
    condensation_angle,
    condensation_rate,
    phase1_growth_bound,
    plane_angles,
)
from reluflow.engine.data import TwoPointData
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.polar import direction_time_map, fate_map
from reluflow.viz.plots.style import FATE_COLORS, PALETTE, styled
from reluflow.viz.plots.timeline import shade_phases

__all__ = ["condensation_figure", "fate_figure", "simplification_figure"]

_SIGN = {1: ("positive", "$a_k>0$"), -1: ("negative", "$a_k<0$")}


@styled
def fate_figure(traj: Trajectory, data: TwoPointData, m: Condensation) -> Panels:
    """(a) the fates the proposition predicts from the initial directions; (b) the run's."""
    panels = []
    for lab, title in ((m.predicted, "(a) predicted fate"),
                       (m.simulated, f"(b) fate in the run (to t = {traj.t[-1]:.3g})")):
        fig, ax = panel(4.4, polar=True)
        fate_map(ax, traj, data, lab, legend=False)
        ax.set_title(title, pad=14)
        ax.legend(handles=[Line2D([], [], ls="", marker="s", ms=8, color=FATE_COLORS[f],
                                  label=f) for f in FATE_COLORS],
                  loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False,
                  handletextpad=0.2, columnspacing=0.8)
        panels.append(fig)
    return Panels(panels, alt="Initial neuron directions on two rings (outer: positive, "
                              "inner: negative neurons), coloured by predicted and simulated fate.")


@styled
def condensation_figure(traj: Trajectory, data: TwoPointData, m: Condensation,
                        tolerance: float, max_lines: int = 25) -> Panels:
    r"""(a) angles to :math:`\pm\mu` against time with the prediction; (b) fitted rates.

    ``tolerance`` is the relative band drawn around :math:`\lVert\mu\rVert` in (b).
    """
    psi = target_angles(traj, data)
    sgn = np.sign(traj.a[0])
    lead = (sgn == m.leader) & (m.simulated == "condense") & np.all(traj.pattern[0] == 1, axis=1)
    show = np.flatnonzero(lead)[:max_lines]
    t_end = m.t_escape if m.t_escape is not None else float(traj.t[-1])
    sel = traj.t <= t_end
    fig1, ax = panel(3.3)
    col = PALETTE[_SIGN[m.leader][0]]
    for k in show:
        ax.semilogy(traj.t[sel], np.degrees(psi[sel, k]), color=col, lw=1.2, alpha=0.7)
        ax.semilogy(traj.t[sel], np.degrees(condensation_angle(data, psi[0, k], traj.t[sel])),
                    color=PALETTE["theory"], lw=1.0, ls=":")
    ax.set_xlabel("time $t$")
    ax.set_ylabel(r"angle $\psi_k$ to $\pm\mu$ (degrees)")
    ax.set_title("(a) condensing neurons", loc="left")
    ax.legend(handles=[Line2D([], [], color=col, label="run"),
                       Line2D([], [], color=PALETTE["theory"], ls=":", label="item 1")],
              loc="lower left")
    fig2, ax2 = panel(3.3)
    fin = np.isfinite(m.rates)
    phi0 = np.degrees(plane_angles(traj.B[0], data))
    nm = condensation_rate(data)
    for s in (1, -1):
        ok = fin & (sgn == s)
        if ok.any():
            ax2.plot(phi0[ok], (m.rates[ok] / nm - 1) * 1e3, "o", ms=4,
                     color=PALETTE[_SIGN[s][0]], label=_SIGN[s][1])
    ax2.axhspan(-tolerance * 1e3, tolerance * 1e3, color=PALETTE["theory"], alpha=0.15,
                label="tolerance")
    ax2.axhline(0.0, color=PALETTE["theory"], ls="--", lw=1.0)
    lim = 1.3 * max(tolerance, m.rate_error if math.isfinite(m.rate_error) else 0.0) * 1e3
    ax2.set_ylim(-lim, lim)
    ax2.set_xlabel("initial angle from $x_+$ (degrees)")
    ax2.set_ylabel(r"$10^3\,(\hat\lambda_k/\|\mu\| - 1)$")
    ax2.set_title(r"(b) fitted rate per neuron", loc="left")
    ax2.legend(loc="upper left", ncol=3, handletextpad=0.2, columnspacing=0.8)
    return Panels([fig1, fig2], alt="Angles of condensing neurons to mu against time, and the "
                                    "fitted condensation rate of each neuron relative to |mu|.")


@styled
def simplification_figure(traj: Trajectory, data: TwoPointData, report: PhaseReport,
                          m: Condensation, seed: int = 0) -> Panels:
    r"""(a) directions, (b) alive and sliding counts, (c) sizes, (d) :math:`N_\mathrm{eff}`."""
    t = traj.t
    fa, axa = panel(3.4)
    direction_time_map(axa, traj, data, max_neurons=120, seed=seed, phase_times=report)
    axa.set_xscale("linear")
    axa.set_xlim(0, t[-1])
    axa.set_xlabel("time $t$")
    axa.set_title("(a) neuron directions", loc="left")
    fb, axb = panel(3.4)
    sgn = np.sign(traj.a[0])
    alive = np.any(traj.pattern == 1, axis=2)
    held = np.any(traj.pattern == 0, axis=2)
    for s in (1, -1):
        g = sgn == s
        axb.plot(t, alive[:, g].sum(axis=1), color=PALETTE[_SIGN[s][0]], lw=1.8,
                 label=f"{_SIGN[s][1]} alive")
        axb.plot(t, (alive & held)[:, g].sum(axis=1), color=PALETTE[_SIGN[s][0]], lw=1.4,
                 ls="--", label="sliding")
    axb.set_xlabel("time $t$")
    axb.set_ylabel("number of neurons")
    axb.set_title("(b) deactivation, sliding", loc="left")
    axb.legend(loc="center right", ncol=2, handlelength=1.2, columnspacing=0.6)
    fc, axc = panel(3.4)
    kappa = float(np.median(np.linalg.norm(traj.B[0], axis=1)))
    nrm = np.linalg.norm(traj.B, axis=2) / kappa
    for s in (1, -1):
        g = (sgn == s) & alive[-1]
        if g.any():
            axc.semilogy(t, nrm[:, g], color=PALETTE[_SIGN[s][0]], lw=0.7, alpha=0.5)
    axc.semilogy(t, np.exp(phase1_growth_bound(data) * t) * np.max(nrm[0]),
                 color=PALETTE["theory"], ls=":", lw=1.6, label=r"bound $e^{\rho t}$")
    axc.set_xlabel("time $t$")
    axc.set_ylabel(r"$\|b_k\|$ / median $\|b_k(0)\|$")
    axc.set_title("(c) sizes of survivors", loc="left")
    axc.legend(loc="upper left")
    fd, axd = panel(3.4)
    axd.semilogy(t, m.n_eff, color=PALETTE["loss"], lw=1.8)
    axd.axhline(1.0, color=PALETTE["reference"], ls=":")
    shade_phases(axd, report, t_end=float(t[-1]), markers=False)
    axd.set_xlabel("time $t$")
    axd.set_ylabel(r"$N_\mathrm{eff}$ (log scale)")
    axd.set_title("(d) simplification", loc="left")
    for ax in (axb, axc, axd):
        if m.t_escape is not None:
            ax.axvline(m.t_escape, color=PALETTE["reference"], ls="--", lw=1.0)
    return Panels([fa, fb, fc, fd], alt="Neuron directions, counts of alive and sliding neurons, "
                                        "sizes against the Phase-I bound, and the effective "
                                        "number of directions, over Phase I.")
