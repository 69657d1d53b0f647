r"""Multi-panel figures of the chapter "Beyond two points" (clusters, real data, GD vs flow).

Built on :mod:`reluflow.viz.plots`: the same palette
(:data:`~reluflow.viz.plots.style.PALETTE`: positive neurons and class +1 in blue, negative
neurons and class -1 in vermillion; the phase tints
:data:`~reluflow.viz.plots.style.PHASE_COLORS`), the book style, and every figure a
:class:`~reluflow.viz.plots.panels.Panels` of single panels (side by side on a wide
screen, stacked on a phone, every text at least
:data:`~reluflow.viz.plots.style.MIN_FONT_PT` points).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from numpy.typing import NDArray

from reluflow.analysis.general_phases import class_residuals
from reluflow.analysis.patterns import PatternChanges, pattern_changes
from reluflow.analysis.phases import PhaseReport
from reluflow.engine.trajectory import Trajectory
from reluflow.runs.beyond import ClusterRun, EscapeSweep
from reluflow.viz import plots
from reluflow.viz.plots.panels import Panels, panel

__all__ = [
    "cluster_figure",
    "escape_figure",
    "flow_vs_descent_figure",
    "real_data_figure",
    "sigma_colors",
]

Array = NDArray[np.float64]

#: Text alternatives of the figures (for screen readers).
_ALT = {
    "clusters": ("Two clusters at several spreads: the loss over the whole run and around the "
                 "plateau, how far the escape time, the plateau exit and the final margin are from "
                 "their two-point values, and when the negative neurons come back to each positive "
                 "point."),
    "real": ("A run on real data: the loss and each class's part with the phases, the "
             "effective number of directions, the cumulative deactivations and reactivations "
             "per class, and the normalized margin."),
    "escape": ("Saddle-escape time against log(1/kappa) for each data set, with the slopes "
               "1/lambda_1 and 1/lambda_2 of the early dynamics."),
    "descent": ("Gradient descent beside the exact flow: the two losses, their largest output "
                "difference, the pattern changes of each, and one neuron the flow holds on a "
                "boundary."),
}


def _figure(rows: int, cols: int, height: float) -> tuple[list[Figure], NDArray[Any]]:
    """``rows * cols`` book panels of ``height`` inches each, their axes as an array."""
    made = [panel(height) for _ in range(rows * cols)]
    axs = np.empty((rows, cols), dtype=object)
    for j, (_, ax) in enumerate(made):
        axs[j // cols, j % cols] = ax
    return [f for f, _ in made], axs


def _title(ax: Axes, text: str) -> None:
    ax.set_title(text, loc="left")


def sigma_colors(k: int) -> list[str]:
    """``k`` colours from black (the two-point limit) to the palette's positive blue."""
    if k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    out = []
    for j in range(k):
        f = j / max(k - 1, 1)
        out.append(to_hex((0x00 / 255.0 * f, 0x72 / 255.0 * f, 0xB2 / 255.0 * f)))
    return out


def _log_time(ax: Axes, traj: Trajectory) -> NDArray[np.bool_]:
    return np.asarray(plots.time_axis(ax, traj))


def _shade(ax: Axes, report: PhaseReport, t_end: float, numerals: bool = True) -> None:
    """Phase tints (no markers), and the numerals I-IV at 9 pt in bands wide enough."""
    plots.shade_phases(ax, report, t_end=t_end, labels=False, markers=False)
    if not numerals:
        return
    lo, hi = ax.get_xlim()
    span = math.log10(hi) - math.log10(lo)
    intervals, _ = plots.phase_intervals(report, t_end)
    trans = ax.get_xaxis_transform()
    for ph, (t0, t1) in intervals.items():
        a, b = max(t0, lo), min(t1, hi)
        if b > a and (math.log10(b) - math.log10(a)) / span >= 0.06:
            ax.text(math.sqrt(a * b), 0.97, ph, transform=trans, ha="center", va="top",
                    fontweight="bold", color="#444444")


# --------------------------------------------------------------------------- clusters
def cluster_figure(runs: Sequence[ClusterRun], fits: Mapping[str, tuple[Array, Array, float]]
                   ) -> Panels:
    r"""Two clusters at several spreads :math:`\sigma` (:func:`reluflow.runs.beyond.cluster_sweep`).

    Panel (a): the loss over :math:`\log t` for every :math:`\sigma` (black:
    :math:`\sigma = 0`); panel (b): the loss around the plateau, linear time; panel (c): the
    deviation of each measured quantity from its :math:`\sigma = 0` value against
    :math:`\sigma` (log-log), with the fitted power laws; panel (d): when the neurons of the
    other sign come back to each point of the class fitted first (its first reactivation,
    :meth:`~reluflow.runs.beyond.ClusterRun.first_reactivations`) against :math:`\sigma`.

    Parameters
    ----------
    runs : sequence of ClusterRun
        Increasing :math:`\sigma`, the first one :math:`\sigma = 0`.
    fits : mapping
        Label to ``(sigmas, deviations, exponent)`` for panel (c) (increasing sigmas; the
        power law is drawn through the smallest one).
    """
    if not runs or runs[0].sigma != 0.0:
        raise ValueError("runs must start with the two-point limit sigma = 0")
    if not fits:
        raise ValueError("fits must hold at least one quantity")
    cols = sigma_colors(len(runs))
    with plots.style():
        figs, axs = _figure(2, 2, 3.2)
        ax = axs[0, 0]
        for run, c in zip(runs, cols, strict=True):
            pos = _log_time(ax, run.traj)
            ax.plot(run.traj.t[pos], run.traj.loss[pos], color=c, lw=1.4,
                    label=rf"$\sigma = {run.sigma:.3g}$")
        ax.set_yscale("log")
        ax.set_ylabel("loss $L$ (log scale)")
        ax.legend(loc="lower left")
        _title(ax, "(a) loss, every spread")
        ax = axs[0, 1]
        # up to a little after the last plateau exit (Phase IV's start can be far later)
        t_hi = max(r.report.t_plateau_escape or r.report.t_phase4 or r.traj.t[-1] for r in runs)
        for run, c in zip(runs, cols, strict=True):
            sel = run.traj.t <= 1.6 * t_hi
            ax.plot(run.traj.t[sel], run.traj.loss[sel], color=c, lw=1.4)
        ax.set_xlabel("time $t$ (linear)")
        ax.set_ylabel("loss $L$")
        _title(ax, "(b) saddle, plateau and escape")
        ax = axs[1, 0]
        styles = [("o", plots.PALETTE["positive"]), ("s", plots.PALETTE["negative"]),
                  ("^", plots.PALETTE["mu"]), ("D", plots.PALETTE["theory"]),
                  ("v", plots.PALETTE["reference"])]
        for (label, (s, dev, q)), (mk, col) in zip(fits.items(), styles, strict=False):
            ax.loglog(s, dev, mk, ms=5, color=col, label=f"{label}: order {q:.2f}")
            ax.loglog(s, dev[0] * (s / s[0]) ** q, color=col, lw=1.0, ls="--")
        s0 = next(iter(fits.values()))[0]
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(s0, [f"{x:.3g}" for x in s0])
        ax.set_xlabel(r"cluster spread $\sigma$ (rad, log scale)")
        ax.set_ylabel(r"$|X(\sigma) - X(0)|$ (relative, log scale)")
        ax.legend(loc="lower right")
        _title(ax, "(c) convergence to two points")
        ax = axs[1, 1]
        for run, c in zip(runs, cols, strict=True):
            tr = run.first_reactivations()
            ax.plot(np.full(tr.size, run.sigma), tr, "o", color=c, ms=4, alpha=0.8)
        ax.set_xlabel(r"cluster spread $\sigma$ (rad)")
        ax.set_ylabel("first reactivation on a point\nof the class fitted first (time $t$)")
        _title(ax, "(d) reactivations spread out")
    return Panels(figs, alt=_ALT["clusters"])


# --------------------------------------------------------------------------- real data
def real_data_figure(traj: Trajectory, report: PhaseReport, neff: Array,
                     changes: PatternChanges | None = None, *, name: str = "") -> Panels:
    r"""One run on a real data set: phases, directions, pattern changes, margin.

    (a) the loss and the class residuals :math:`R_\pm` over :math:`\log t` with the
    detected phases shaded; (b) the effective number of directions
    :math:`N_\mathrm{eff}(t)`; (c) cumulative deactivations and reactivations on the
    points of each class; (d) the normalized margin.
    """
    ch = pattern_changes(traj) if changes is None else changes
    with plots.style():
        figs, axs = _figure(2, 2, 3.2)
        ax = axs[0, 0]
        pos = _log_time(ax, traj)
        R = class_residuals(traj)
        w = traj.data.weights
        ax.plot(traj.t[pos], traj.loss[pos], color=plots.PALETTE["loss"], lw=1.8, label="loss $L$")
        for c, key in ((1, "positive"), (-1, "negative")):
            share = float(w[traj.data.y == c].sum())
            ax.plot(traj.t[pos], share * R[c][pos], color=plots.PALETTE[key], lw=1.2, ls="--",
                    label=f"class {c:+d} part")
        ax.set_yscale("log")
        ax.set_ylim(bottom=float(np.min(traj.loss[pos & (traj.loss > 0)])) / 3)
        _shade(ax, report, float(traj.t[-1]))
        ax.set_ylabel("loss (log scale)")
        ax.legend(loc="lower left")
        _title(ax, f"(a) {name} loss and phases".replace("  ", " "))
        ax = axs[0, 1]
        _log_time(ax, traj)
        ax.plot(traj.t[pos], neff[pos], color=plots.PALETTE["mu"], lw=1.6)
        ax.set_yscale("log")
        # plain numbers 1, 2, 5, 10, ... (the default labels minor ticks as 6x10^0)
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        _shade(ax, report, float(traj.t[-1]), numerals=False)
        ax.set_ylabel(r"$N_\mathrm{eff}$ (log scale)")
        _title(ax, "(b) effective directions")
        ax = axs[1, 0]
        _log_time(ax, traj)
        for kind, ls in (("deactivation", "-"), ("reactivation", ":")):
            for c, key in ((1, "positive"), (-1, "negative")):
                ax.plot(ch.t[pos], ch.total(kind, c)[pos], color=plots.PALETTE[key], ls=ls,
                        lw=1.5, label=f"{kind}s, class {c:+d}")
        ax.set_ylabel("cumulative count")
        ax.legend(loc="upper left")
        _title(ax, "(c) activation-pattern changes")
        ax = axs[1, 1]
        _log_time(ax, traj)
        gam = traj.normalized_margin()
        ax.plot(traj.t[pos], gam[pos], color=plots.PALETTE["loss"], lw=1.6)
        ax.axhline(0.0, color="#999999", lw=0.8)
        late = gam[pos][gam[pos] > 0]
        if late.size:
            ax.set_ylim(-0.5 * float(late.max()), 1.3 * float(late.max()))
        ax.set_ylabel(r"$\min_i y_i f(x_i)/\|\theta\|^2$")
        _title(ax, "(d) normalized margin")
    return Panels(figs, alt=_ALT["real"])


def escape_figure(sweeps: Mapping[str, EscapeSweep]) -> Panels:
    r"""Escape time against :math:`\log(1/\kappa)` for each data set, with the early rates.

    Measured times (dots), the slope :math:`1/\lambda_1` of the fastest consistent
    direction (solid) and :math:`1/\lambda_2` of the second (dotted), both through the
    smallest :math:`\kappa`.
    """
    if not sweeps:
        raise ValueError("sweeps must hold at least one data set")
    with plots.style():
        figs, axs = _figure(1, len(sweeps), 3.3)
        for ax, (name, sw) in zip(axs[0], sweeps.items(), strict=True):
            ell = np.log(1.0 / sw.kappas)
            ax.plot(ell, sw.t_escape, "o", color=plots.PALETTE["loss"], ms=5,
                    label=f"measured, slope {sw.slope:.3f}")
            lo, hi = sw.bounds
            for slope, ls, lab in ((lo, "-", r"$1/\lambda_1$"), (hi, ":", r"$1/\lambda_2$")):
                ax.plot(ell, sw.t_escape[-1] + slope * (ell - ell[-1]),
                        color=plots.PALETTE["theory"], ls=ls, lw=1.3, label=f"{lab} = {slope:.3f}")
            ax.set_ylim(bottom=0.0)
            ax.set_xlabel(r"$\log(1/\kappa)$")
            ax.set_ylabel(r"escape time $t_\mathrm{esc}$")
            ax.legend(loc="lower right")
            _title(ax, name)
    return Panels(figs, alt=_ALT["escape"])


# --------------------------------------------------------------------------- GD vs flow
def flow_vs_descent_figure(flow: Trajectory, descent: Trajectory, report: PhaseReport,
                           hold: tuple[int, int, float, float] | None) -> Panels:
    r"""Gradient descent beside the exact flow on the same data and initialization.

    (a) both losses (phases of the flow shaded); (b) the largest output difference
    :math:`\max_i|f_\mathrm{GD}(x_i) - f(x_i)|`; (c) cumulative activation-pattern changes
    of each (GD's chattering shows as many changes); (d) one neuron held by the flow on the
    boundary of one point, :math:`b_k^\top x_i/\lVert b_k\rVert` in both runs over the
    held stretch and as long again on each side, the vertical axis zoomed to twice the
    largest swing of either run inside the held stretch (the flow's is rounding, GD's its
    chattering across the boundary).

    Parameters
    ----------
    flow, descent : Trajectory
        The two runs, recorded at the same times.
    report : PhaseReport
        Phases of the flow (shaded).
    hold : tuple
        ``(neuron, point, t_start, t_end)``, e.g.
        :func:`reluflow.analysis.patterns.longest_hold` of ``flow``.
    """
    if flow.t.shape != descent.t.shape or not np.allclose(flow.t, descent.t, rtol=1e-6):
        raise ValueError("flow and descent must be recorded on the same times")
    if hold is None:
        raise ValueError("hold is None: the flow holds no neuron on a boundary, nothing to compare")
    h0, h1 = hold[2], hold[3]
    if not h1 >= h0:
        raise ValueError(f"hold must end after it starts, got {hold!r}")
    with plots.style():
        figs, axs = _figure(2, 2, 3.2)
        t = flow.t
        cg, cf = plots.PALETTE["negative"], plots.PALETTE["loss"]
        ax = axs[0, 0]
        ax.plot(t, flow.loss, color=cf, lw=1.8, label="exact flow")
        ax.plot(t, descent.loss, color=cg, lw=1.2, ls="--",
                label=f"GD, step {descent.info['lr']:g}")
        plots.shade_phases(ax, report, t_end=float(t[-1]), labels=False, markers=False)
        ax.set_xlabel("time $t$ (linear)")
        ax.set_ylabel("loss $L$")
        ax.legend(loc="upper right")
        _title(ax, "(a) loss")
        ax = axs[0, 1]
        err = np.max(np.abs(descent.f - flow.f), axis=1)
        ax.semilogy(t[err > 0], err[err > 0], color=cg, lw=1.4)
        plots.shade_phases(ax, report, t_end=float(t[-1]), labels=False, markers=False)
        ax.set_xlabel("time $t$ (linear)")
        ax.set_ylabel(r"$\max_i |f_\mathrm{GD} - f|$ (log scale)")
        _title(ax, "(b) output difference")
        ax = axs[1, 0]
        for tr, col, lab in ((flow, cf, "exact flow"), (descent, cg, "GD")):
            pc = pattern_changes(tr)
            tot = pc.total("deactivation") + pc.total("reactivation") + pc.total("activation")
            ax.plot(t, np.maximum(tot, 0.5), color=col, lw=1.5, label=lab)
        ax.set_yscale("log")
        ax.set_xlabel("time $t$ (linear)")
        ax.set_ylabel("pattern changes so far")
        ax.legend(loc="lower right")
        _title(ax, "(c) chattering")
        _hold_panel(axs[1, 1], flow, descent, hold)
    return Panels(figs, alt=_ALT["descent"])


def _hold_panel(ax: Axes, flow: Trajectory, descent: Trajectory,
                hold: tuple[int, int, float, float]) -> None:
    neuron, point, h0, h1 = hold
    pad = max(h1 - h0, float(np.min(np.diff(flow.t))))
    sel = (flow.t >= h0 - pad) & (flow.t <= h1 + pad)
    x = flow.data.X[point]
    held = (flow.t >= h0) & (flow.t <= h1)
    swing = 0.0
    for tr, col, lab, lw in ((descent, plots.PALETTE["negative"], "GD", 1.1),
                             (flow, plots.PALETTE["loss"], "exact flow", 1.8)):
        cols = np.flatnonzero(tr.neurons == neuron)
        if cols.size == 0:
            raise ValueError(f"neuron {neuron} is not recorded in both runs")
        b = tr.B[:, int(cols[0])]
        nb = np.linalg.norm(b, axis=1)
        val = (b @ x) / np.where(nb > 0, nb, 1.0)
        swing = max(swing, float(np.max(np.abs(val[held]))))
        ax.plot(tr.t[sel], val[sel], color=col, lw=lw, label=lab)
    ax.axvspan(h0, h1, color=plots.PHASE_COLORS["II"], lw=0, zorder=0)
    if swing > 0:  # zoom on the boundary: GD's swings across it, the flow's exact zero
        ax.set_ylim(-2.0 * swing, 2.0 * swing)
    ax.set_xlabel("time $t$ (linear)")
    ax.set_ylabel(r"$b_k^\top x_i/\|b_k\|$ (zoom on 0)")
    ax.legend(loc="upper right")
    _title(ax, f"(d) neuron {neuron} held on point {point}")
