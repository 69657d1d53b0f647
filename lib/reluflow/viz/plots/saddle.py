r"""Figures of the Phase-II chapter: growth out of the saddle, rotation, the plateau.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring); every function returns
a :class:`~reluflow.viz.plots.panels.Panels` book figure, drawn from the measurements of
:mod:`reluflow.analysis.saddle`.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D

from reluflow.analysis.measure import neuron_mass
from reluflow.analysis.saddle import EscapeSweep, Saddle, boundary_angle, driving_angle
from reluflow.analysis.theory import plateau_level
from reluflow.engine.data import TwoPointData
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.style import PALETTE, styled

__all__ = ["escape_figure", "plateau_figure", "rotation_figure"]


def _group_colors(leader: int) -> tuple[str, str]:
    lead = PALETTE["positive" if leader > 0 else "negative"]
    foll = PALETTE["negative" if leader > 0 else "positive"]
    return lead, foll


def _escape_line(ax: object, t_escape: float | None) -> None:
    if t_escape is not None:
        ax.axvline(t_escape, color=PALETTE["reference"], ls="--", lw=1.0)  # type: ignore[attr-defined]


@styled
def escape_figure(traj: Trajectory, s: Saddle, sweep: EscapeSweep,
                  t_escape: float | None) -> Panels:
    r"""(a) the two groups' masses with the slope :math:`2\lambda`; (b) :math:`t_\mathrm{esc}`
    against :math:`\log(1/\kappa)`."""
    mass = neuron_mass(traj)
    sgn = np.sign(traj.a[0])
    lead_c, foll_c = _group_colors(s.leader)
    fig1, ax = panel(3.4)
    for sign, col, lab in ((s.leader, lead_c, "leaders"), (-s.leader, foll_c, "followers")):
        m = mass[:, sgn == sign].sum(axis=1)
        ax.semilogy(traj.t, m / m[0], color=col, lw=1.8, label=lab)
    if math.isfinite(s.growth):
        ta, tb = s.growth_window
        tt = np.linspace(ta, tb, 20)
        m = mass[:, sgn == s.leader].sum(axis=1)
        m_a = float(np.interp(ta, traj.t, m) / m[0])
        ax.semilogy(tt, m_a * np.exp(2 * sweep.rate * (tt - ta)), color=PALETTE["theory"],
                    ls=":", lw=2.2, label=r"slope $2\lambda$")
    _escape_line(ax, t_escape)
    ax.set_xlabel("time $t$")
    ax.set_ylabel("group mass / initial mass")
    ax.set_title("(a) growth out of the saddle", loc="left")
    ax.legend(loc="upper left")
    fig2, ax2 = panel(3.4)
    x = sweep.log_inv_kappa
    ax2.plot(x, sweep.t_escape, "o", color=PALETTE["loss"], label=r"measured $t_\mathrm{esc}$")
    xx = np.linspace(x.min(), x.max(), 50)
    ax2.plot(xx, sweep.intercept + sweep.slope * xx, color=PALETTE["loss"], lw=0.8)
    if np.all(np.isfinite(sweep.t_predicted)):
        ax2.plot(x, sweep.t_predicted, "x", ms=9, color=PALETTE["theory"],
                 label="item 1 with $O(1)$ term")
    else:
        ax2.plot(xx, sweep.t_escape.mean() + (xx - x.mean()) / sweep.rate,
                 color=PALETTE["theory"], ls="--", label=r"slope $1/\lambda$")
    ax2.set_xlabel(r"$\log(1/\kappa)$")
    ax2.set_ylabel(r"escape time $t_\mathrm{esc}$")
    ax2.set_title(r"(b) escape time against $\kappa$", loc="left")
    ax2.legend(loc="upper left")
    return Panels([fig1, fig2], alt="Masses of the two groups against time, and the saddle-"
                                    "escape time against log(1/kappa).")


@styled
def rotation_figure(traj: Trajectory, data: TwoPointData, s: Saddle,
                    t_escape: float | None) -> Panels:
    r"""(a) the leaders' mean direction against :math:`\pm\mu(t)`; (b) their held mass."""
    lead_c, _ = _group_colors(s.leader)
    mu_t = driving_angle(traj, data)
    if s.leader < 0:
        mu_t = np.angle(-np.exp(1j * mu_t))
    fig1, ax = panel(3.4)
    ax.plot(traj.t, np.degrees(s.mean_leader), color=lead_c, lw=2.0, label="leaders' mean")
    ax.plot(traj.t, np.degrees(mu_t), color=PALETTE["mu"], ls="--", lw=1.4,
            label=r"$\pm\mu(t)$")
    ax.axhline(math.degrees(boundary_angle(data, s.awaited)), color=PALETTE["reference"],
               ls=":", label="boundary direction")
    _escape_line(ax, t_escape)
    ax.set_xlabel("time $t$")
    ax.set_ylabel("angle from $x_+$ (degrees)")
    ax.set_title(r"(a) the leaders follow $\mu(t)$", loc="left")
    ax.legend(loc="best")
    fig2, ax2 = panel(3.4)
    ax2.plot(traj.t, s.held_fraction, color=PALETTE["sliding"], lw=2.0,
             label="leaders' mass held")
    for ts in s.slide_times:
        ax2.axvline(ts, color=PALETTE["sliding"], lw=0.5, alpha=0.5)
    _escape_line(ax2, t_escape)
    ax2.set_ylim(-0.03, 1.05)
    ax2.set_xlabel("time $t$")
    ax2.set_ylabel("fraction of the leaders' mass")
    ax2.set_title("(b) caught on the boundary", loc="left")
    ax2.legend(loc="center left")
    return Panels([fig1, fig2], alt="The leaders' mean direction against the driving vector, "
                                    "and the fraction of their mass sliding on a boundary.")


@styled
def plateau_figure(traj: Trajectory, data: TwoPointData, s: Saddle,
                   t_escape: float | None) -> Panels:
    r"""(a) the loss, the plateau level and the Ei law; (b) the outputs on the two points."""
    fig1, ax = panel(3.4)
    ax.plot(traj.t, traj.loss, color=PALETTE["loss"], lw=2.0, label="loss $L$")
    level = plateau_level(data, traj.loss_name)
    ax.axhline(level, color=PALETTE["reference"], ls=":", label=f"level {level:.3g}")
    if s.plateau is not None:
        j0, j1 = s.plateau
        w = data.weights[1 - s.awaited]
        ax.plot(traj.t[j0:j1 + 1], (1 - w) + w * np.exp(-s.plateau_margin),
                color=PALETTE["theory"], ls="--", lw=2.0, label="Ei law (item 3)")
    _escape_line(ax, t_escape)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("time $t$")
    ax.set_ylabel("loss $L$")
    ax.set_title("(a) saddle, then plateau", loc="left")
    ax.legend(loc="lower left")
    fig2, ax2 = panel(3.4)
    ax2.plot(traj.t, traj.f[:, 0], color=PALETTE["positive"], lw=2.0, label="$f(x_+)$")
    ax2.plot(traj.t, traj.f[:, 1], color=PALETTE["negative"], lw=2.0, label="$f(x_-)$")
    ax2.axhline(0.0, color=PALETTE["reference"], lw=0.8)
    _escape_line(ax2, t_escape)
    ax2.set_xlabel("time $t$")
    ax2.set_ylabel("network output")
    ax2.set_title("(b) outputs on the two points", loc="left")
    ax2.legend(handles=[Line2D([], [], color=PALETTE["positive"], lw=2, label="$f(x_+)$"),
                        Line2D([], [], color=PALETTE["negative"], lw=2, label="$f(x_-)$")],
               loc="upper left")
    return Panels([fig1, fig2], alt="The loss with the plateau level and the Ei law, and the "
                                    "outputs on the two points, over Phase II.")
