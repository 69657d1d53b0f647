r"""Figures of the Phase-IV chapter: thirty decades of convergence, and the seeds.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring); every function returns
a :class:`~reluflow.viz.plots.panels.Panels` book figure, drawn from the measurements of
:mod:`reluflow.analysis.convergence`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from reluflow.analysis.convergence import Convergence, SeedRow
from reluflow.analysis.phases import PhaseReport
from reluflow.engine.data import TwoPointData
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.style import PALETTE, TIME_LABEL, series_style, styled
from reluflow.viz.plots.timeline import shade_phases

__all__ = ["convergence_figure", "seeds_figure"]


@styled
def convergence_figure(traj: Trajectory, data: TwoPointData, report: PhaseReport,
                       c: Convergence) -> Panels:
    r"""(a) the loss against :math:`1/(4\gamma t\log t)`; (b) margin and norm against
    :math:`\log(t\log t)`; (c) the two group directions; (d) the normalized margin."""
    t = traj.t
    pos = t > 0
    lead_c = PALETTE["positive" if c.leader > 0 else "negative"]
    fol_c = PALETTE["negative" if c.leader > 0 else "positive"]
    t4 = report.t_phase4
    fa, ax = panel(3.4)
    ax.loglog(t[pos], traj.loss[pos], color=PALETTE["loss"], lw=1.8, label="loss $L$")
    sel = (t >= (t4 if t4 is not None else 10.0)) & (t > 10) & (c.margin > 0)
    ax.loglog(t[sel], 1 / (4 * c.margin[sel] * t[sel] * np.log(t[sel])),
              color=PALETTE["theory"], ls=":", lw=2.2, label=r"$1/(4\gamma\,t\log t)$")
    ax.set_ylabel("loss $L$")
    ax.set_title(r"(a) the loss", loc="left")
    fb, bx = panel(3.4)
    bx.semilogx(t[pos], c.smallest_margin[pos], color=PALETTE["loss"], lw=1.8,
                label=r"$q = \min_i y_if(x_i)$")
    bx.semilogx(t[pos], c.sq_norm[pos] * c.margin[-1], color=PALETTE["reference"], lw=1.2,
                label=r"$\gamma_\mathrm{end}\|\theta\|^2$")
    st = t > math.e
    bx.semilogx(t[st], np.log(t[st] * np.log(t[st])), color=PALETTE["theory"], ls=":", lw=2.2,
                label=r"$\log(t\log t)$")
    bx.set_ylabel("margin, norm")
    bx.set_ylim(bottom=-5)
    bx.set_title(r"(b) margin and $\|\theta\|^2$", loc="left")
    fc, cx = panel(3.4)
    cx.semilogx(t[pos], np.degrees(c.lead_angle[pos]), color=lead_c, lw=1.8, label="leaders")
    cx.semilogx(t[pos], np.degrees(c.fol_angle[pos]), color=fol_c, lw=1.8, label="followers")
    if c.drift is not None:
        cx.semilogx(c.drift.t, np.degrees(c.drift.angle), color=PALETTE["theory"], ls=":",
                    lw=2.4, label="slow manifold")
    for a in (data.delta - math.pi / 2, math.pi / 2):
        cx.axhline(math.degrees(a), color=PALETTE["reference"], lw=0.8, ls="--")
    cx.set_ylabel("mean angle from $x_+$ (deg)")
    cx.set_title("(c) two directions", loc="left")
    fd, dx = panel(3.4)
    dx.semilogx(t[pos], c.margin[pos], color=PALETTE["loss"], lw=1.8, label=r"$\gamma$")
    if c.drift is not None:
        dx.semilogx(c.drift.t, c.drift.margin, color=PALETTE["theory"], ls="--", lw=1.6,
                    label=r"$\gamma(\varphi(t))$")
    dx.axhline(math.sin(data.delta) / 4, color=PALETTE["theory"], ls=":", lw=1.6,
               label=r"$\sin\Delta/4$")
    dx.set_ylim(0.0, math.sin(data.delta) / 4 * 1.2)
    dx.set_ylabel(r"normalized margin $\gamma$")
    dx.set_title(r"(d) towards $\sin\Delta/4$", loc="left")
    for x in (ax, bx, cx, dx):
        shade_phases(x, report, t_end=float(t[-1]), markers=False, labels=x is not cx)
        x.set_xlabel(TIME_LABEL)
    ax.legend(loc="lower left")
    bx.legend(loc="upper left")
    cx.legend(loc="center left")
    dx.legend(loc="lower right")
    return Panels([fa, fb, fc, fd], alt="Loss, margin and norm, the two group directions and the "
                                        "normalized margin over thirty decades of time.")


@styled
def seeds_figure(rows: Sequence[SeedRow]) -> Panels:
    r"""(a) the leaders' mass shares per neuron and their :math:`c_k^2` prediction; (b) the
    relative spread over seeds of group-level and neuron-level quantities."""
    fa, ax = panel(3.4)
    for i, r in enumerate(rows):
        if not r.shares.size:
            continue
        st = series_style(i, len(rows))
        order = np.argsort(-r.shares)
        rank = np.arange(1, order.size + 1)
        ax.semilogy(rank, r.shares[order], st["marker"], color=st["color"], ms=5,
                    label=f"seed {r.seed}")
        if r.predicted_shares.size:
            ax.semilogy(rank, r.predicted_shares[order], "x", color=PALETTE["theory"], ms=5)
    ax.set_xlabel("leader neuron, ranked")
    ax.set_ylabel("share of the leaders' mass")
    ax.set_title(r"(a) per neuron ($\times$: $c_k^2$)", loc="left")
    ax.legend(loc="upper right", ncol=2, handletextpad=0.2, columnspacing=0.6)
    fb, bx = panel(3.4)
    keys = (("lead_fraction", "mass\nshare"), ("fol_angle", "follower\nangle"),
            ("margin", "margin"), ("top_share", "largest\nneuron"))
    spread = [float(np.ptp([getattr(r, k) for r in rows]) /
                    np.mean(np.abs([getattr(r, k) for r in rows]))) for k, _ in keys]
    bx.bar(range(4), np.maximum(spread, 1e-16),
           color=[PALETTE["loss"]] * 3 + [PALETTE["reference"]])
    bx.set_yscale("log")
    bx.set_xticks(range(4), [lab for _, lab in keys])
    bx.set_ylabel("spread over seeds / mean")
    bx.set_title("(b) groups vs one neuron", loc="left")
    return Panels([fa, fb], alt="Mass shares of the leader neurons for several seeds with their "
                                "prediction, and the spread over seeds of group-level and "
                                "neuron-level quantities.")
