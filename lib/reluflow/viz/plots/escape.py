r"""Figures of the Phase-III chapter: the release of the followers, the plateau length.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring); every function returns
a :class:`~reluflow.viz.plots.panels.Panels` book figure, drawn from the measurements of
:mod:`reluflow.analysis.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from reluflow.analysis.escape import Escape, SlopeRow
from reluflow.analysis.phases import PhaseReport
from reluflow.analysis.saddle import loss_terms
from reluflow.analysis.theory import plateau_level
from reluflow.engine.data import TwoPointData
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.style import PALETTE, series_style, styled

__all__ = ["release_figure", "slopes_figure"]

_POINT = ("$x_+$", "$x_-$")


def _marks(ax: Axes, e: Escape, report: PhaseReport) -> None:
    if e.t_release is not None:
        ax.axvline(e.t_release, color=PALETTE["sliding"], ls="--", lw=1.2)
    if report.t_plateau_escape is not None:
        ax.axvline(report.t_plateau_escape, color=PALETTE["reference"], ls="-.", lw=1.2)


@styled
def release_figure(traj: Trajectory, data: TwoPointData, e: Escape, report: PhaseReport,
                   horizon: float) -> Panels:
    r"""(a) the loss; (b) the two loss terms of the release condition; (c) the followers'
    mass; (d) their direction against :math:`\operatorname{sign}(a)\mu(t)`."""
    sel = traj.t <= horizon
    t = traj.t[sel]
    w, ell = e.awaited, 1 - e.awaited
    fol_c = PALETTE["negative" if e.leader > 0 else "positive"]
    fa, ax = panel(3.3)
    ax.plot(t, traj.loss[sel], color=PALETTE["loss"], lw=1.8, label="loss $L$")
    ax.axhline(plateau_level(data, traj.loss_name), color=PALETTE["reference"], ls=":",
               label="plateau level")
    ax.set_ylabel("loss $L$")
    ax.set_title("(a) saddle, plateau, escape", loc="left")
    ax.legend(handles=[Line2D([], [], color=PALETTE["loss"], label="loss $L$"),
                       Line2D([], [], color=PALETTE["sliding"], ls="--", label="release"),
                       Line2D([], [], color=PALETTE["reference"], ls="-.",
                              label="plateau escape")], loc="upper right")
    fb, bx = panel(3.3)
    terms = loss_terms(traj, data)[sel]
    bx.semilogy(t, terms[:, ell], color=PALETTE["positive" if ell == 0 else "negative"], lw=1.8,
                label=f"$L$ of {_POINT[ell]}")
    bx.semilogy(t, terms[:, w] * math.cos(data.delta), color=fol_c, lw=1.8, ls="--",
                label=rf"$\cos\Delta\cdot L$ of {_POINT[w]}")
    bx.set_ylabel("loss term")
    bx.set_title("(b) the release condition", loc="left")
    bx.legend(loc="lower left")
    fc, cx = panel(3.3)
    cx.semilogy(t, e.follower_mass[sel], color=fol_c, lw=1.8, label="followers' mass")
    if e.slide_window is not None:
        ta, tb = e.slide_window
        tt = np.linspace(ta, tb, 30)
        m0 = float(np.interp(ta, traj.t, e.follower_mass))
        cx.semilogy(tt, m0 * np.exp(2 * e.slide_rate * (tt - ta)), color=PALETTE["theory"],
                    ls=":", lw=2.2, label=r"sliding, $2w_w\sin\Delta$")
    cx.set_ylabel("mass (log scale)")
    cx.set_title("(c) slow growth, then fast", loc="left")
    cx.legend(loc="upper left")
    fd, dx = panel(3.3)
    dx.plot(t, np.degrees(e.follower_mean[sel]), color=fol_c, lw=1.8, label="followers' mean")
    dx.plot(t, np.degrees(e.target[sel]), color=PALETTE["mu"], ls="--", lw=1.4,
            label=r"$\mathrm{sign}(a)\,\mu(t)$")
    dx.axhline(math.degrees(0.0 if w == 0 else data.delta), color=PALETTE["reference"],
               ls=":", label=f"{_POINT[w]}")
    dx.set_ylabel("angle from $x_+$ (degrees)")
    dx.set_title("(d) turning to the awaited point", loc="left")
    dx.legend(loc="best")
    for x in (ax, bx, cx, dx):
        _marks(x, e, report)
        x.set_xlabel("time $t$")
        x.set_xlim(0, t[-1])
    return Panels([fa, fb, fc, fd], alt="The loss, the two loss terms of the release "
                                        "condition, the followers' mass and their direction, "
                                        "from the saddle to the end of the plateau.")


@styled
def slopes_figure(rows: Sequence[SlopeRow], kappas: Sequence[float]) -> Panels:
    r""":math:`T_\mathrm{III}` against :math:`\log(1/\kappa)` for each :math:`(\Delta, p)`,
    with both estimates (their :math:`O(1)` constants fitted, they are not predicted)."""
    ell = np.log(1.0 / np.asarray(kappas, dtype=np.float64))
    fig, ax = panel(3.8)
    shown = [r for r in rows if math.isfinite(r.measured)]
    for i, r in enumerate(shown):
        st = series_style(i, len(shown))
        t3 = np.array([np.nan if x is None else x for x in r.times])
        ax.plot(ell, t3, st["marker"], color=st["color"], ms=7,
                label=f"Δ = {r.delta:g}, p = {r.p:g}")
        if r.derived:
            ct = np.array(r.corrected_times)
            ax.plot(ell, ct + np.nanmean(t3 - ct), "-", color=PALETTE["theory"], lw=1.2)
            ax.plot(ell, r.leading * ell + np.nanmean(t3 - r.leading * ell), ":",
                    color=st["color"], lw=1.2)
    ax.set_xlabel(r"$\log(1/\kappa)$")
    ax.set_ylabel(r"plateau escape $T_\mathrm{III}$")
    ax.legend(loc="upper left", ncol=1)
    ax.plot([], [], "-", color=PALETTE["theory"], label="corrected")
    return Panels([fig], alt="Plateau-escape times against log(1/kappa) for several angles "
                             "and weights, with the corrected and the leading estimates.")
