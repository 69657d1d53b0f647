r"""Figures of the setting chapter: the exact identities, the early phases, snapshots.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring); every function returns
a :class:`~reluflow.viz.plots.panels.Panels` book figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from reluflow.analysis.phases import PhaseReport
from reluflow.engine.data import TwoPointData
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.polar import polar_directions, radial_limits
from reluflow.viz.plots.style import PALETTE, styled
from reluflow.viz.plots.timeline import shade_phases

__all__ = ["early_figure", "identities_figure", "snapshot_times", "snapshots_figure"]


@styled
def identities_figure(runs: Sequence[tuple[str, Trajectory]]) -> Panels:
    r"""(a) the relative drift of :math:`a_k^2 - \lVert b_k\rVert^2` of each run against
    time; (b) the relative change of the loss between recorded times (first run)."""
    fa, ax = panel(3.4)
    for i, (label, tr) in enumerate(runs):
        pos = tr.t > 0
        ax.loglog(tr.t[pos], np.maximum(tr.drift[pos], 1e-18), lw=1.6, ls="-" if i == 0 else "--",
                  color=PALETTE["loss"] if i == 0 else PALETTE["reference"], label=label)
    ax.axhline(np.finfo(float).eps, color=PALETTE["theory"], lw=1.0, ls=":",
               label="machine epsilon")
    ax.set_xlabel("time $t$")
    ax.set_ylabel(r"drift of $a_k^2-\|b_k\|^2$")
    ax.set_title("(a) balance (item 1)", loc="left")
    ax.legend(loc="upper left")
    fb, bx = panel(3.4)
    tr = runs[0][1]
    change = np.diff(tr.loss) / tr.loss[:-1]
    keep = tr.t[1:] > 0
    bx.semilogx(tr.t[1:][keep], change[keep], ".", ms=3, color=PALETTE["loss"])
    bx.axhline(0.0, color=PALETTE["reference"], lw=0.8)
    bx.set_yscale("symlog", linthresh=1e-12)
    bx.set_xlabel("time $t$")
    bx.set_ylabel("relative change of $L$")
    bx.set_title("(b) the loss decreases (item 2)", loc="left")
    return Panels([fa, fb], alt="The drift of every neuron's balance over thirty decades of "
                                "time, and the relative change of the loss between samples.")


@styled
def early_figure(traj: Trajectory, data: TwoPointData, report: PhaseReport,
                 t_show: float) -> Panels:
    """(a) the loss and (b) the outputs on a linear time axis up to ``t_show``."""
    sel = traj.t <= t_show
    fa, ax = panel(3.4)
    ax.plot(traj.t[sel], traj.loss[sel], color=PALETTE["loss"], lw=1.8, label="loss $L$")
    ax.axhline(1 - data.p, color=PALETTE["reference"], lw=1.2, ls=":", label="$1-p$")
    fb, bx = panel(3.4)
    bx.plot(traj.t[sel], traj.f[sel, 0], color=PALETTE["positive"], lw=1.8, label="$f(x_+)$")
    bx.plot(traj.t[sel], traj.f[sel, 1], color=PALETTE["negative"], lw=1.8, label="$f(x_-)$")
    bx.axhline(0.0, color=PALETTE["reference"], lw=0.8)
    for x, title in ((ax, "(a) loss"), (bx, "(b) outputs")):
        x.set_xlim(0.0, t_show)
        shade_phases(x, report, t_end=float(traj.t[-1]), markers=False)
        x.set_xlabel("time $t$ (linear)")
        x.set_title(title, loc="left")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("loss $L$")
    ax.legend(loc="lower left")
    bx.set_ylabel("network output")
    bx.legend(loc="lower left")
    return Panels([fa, fb], alt="The loss and the outputs on the two points over the first "
                                "three phases, on a linear time axis, phases shaded.")


def snapshot_times(traj: Trajectory, report: PhaseReport) -> list[tuple[int, str]]:
    """Recorded indices and labels of the snapshots: start, end of Phase I, plateau, end."""
    out = [(0, "initialization")]
    if report.t_condensed is not None:
        out.append((int(np.searchsorted(traj.t, report.t_condensed)), "end of Phase I"))
    if report.t_plateau is not None and report.t_plateau_escape is not None:
        t = math.sqrt(report.t_plateau * report.t_plateau_escape)
        out.append((int(np.searchsorted(traj.t, t)), "on the plateau"))
    out.append((traj.t.size - 1, "end of the run"))
    return [(min(j, traj.t.size - 1), lab) for j, lab in out]


@styled
def snapshots_figure(traj: Trajectory, data: TwoPointData, report: PhaseReport,
                     seed: int = 0) -> Panels:
    r"""The neuron directions at the times of :func:`snapshot_times`, on one radial scale."""
    norms = np.linalg.norm(traj.B, axis=2)
    r = np.log10(np.maximum(norms, norms[norms > 0].min()))
    rlim = radial_limits(r, "log")
    figs = []
    letters = "abcd"
    for q, (j, label) in enumerate(snapshot_times(traj, report)):
        fig, ax = panel(4.6, polar=True)
        polar_directions(ax, traj, j, data, max_neurons=150, seed=seed, legend=q == 0,
                         rlim=rlim)
        ax.set_title(f"({letters[q]}) {label}, t = {traj.t[j]:.3g}", pad=14)
        figs.append(fig)
    return Panels(figs, alt="Polar snapshots of the neuron directions at the start, at the "
                            "end of Phase I, on the plateau and at the end of the run.")
