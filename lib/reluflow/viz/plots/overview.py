r"""Whole-run figures: the overview of one run and the introduction's annotated overview.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.base import as_time, check_data, check_traj
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.polar import direction_time_map, polar_directions
from reluflow.viz.plots.style import PALETTE, new_figure, style, styled
from reluflow.viz.plots.timeline import (
    loss_panel,
    outputs_panel,
    phase_intervals,
    plateau_line,
    shade_phases,
    time_axis,
)

__all__ = [
    "ANNOTATION_LABELS",
    "annotated_overview",
    "book_overview",
    "overview_annotations",
    "overview_caption",
    "overview_figure",
    "overview_panels",
]


def _describe(traj: Trajectory, data: Dataset) -> str:
    parts = []
    if isinstance(data, TwoPointData):
        parts += [f"Δ = {data.delta:.3g} rad", f"p = {data.p:.3g}"]
    parts.append(f"m = {traj.m}")
    kappa = traj.info.get("kappa") if isinstance(traj.info, dict) else None
    if kappa is not None:
        parts.append(f"κ = {float(kappa):.2g}")
    parts.append(f"{traj.loss_name} loss")
    method = traj.info.get("method") if isinstance(traj.info, dict) else None
    if method:
        parts.append(str(method).replace("_", " "))
    return ", ".join(parts)


@styled
def overview_figure(
    traj: Trajectory,
    data: Dataset | None = None,
    report: Any = None,
    *,
    max_neurons: int = 300,
    seed: int = 0,
    title: str | None = None,
) -> Figure:
    r"""The four-phase overview: a 2×2 figure.

    (a) loss against :math:`\log t` with the phases shaded; (b) outputs
    :math:`f(x_+)`, :math:`f(x_-)`; (c) each neuron's in-plane angle against
    :math:`\log t`; (d) the neuron directions at the final recorded time (polar).

    Parameters
    ----------
    traj : Trajectory
        The run.
    data : Dataset, optional
        Defines the plane (default ``traj.data``).
    report : None, mapping or PhaseReport-like
        Phase times for the shading (see :func:`~reluflow.viz.plots.timeline.phase_intervals`).
    max_neurons, seed : int
        Subset of neurons drawn in (c) and (d).
    title : str, optional
        Figure title (default: the run's parameters).

    Returns
    -------
    Figure
        A new figure (not registered with ``pyplot``); save it with ``fig.savefig``.
    """
    traj = check_traj(traj)
    data = check_data(traj, data)
    phase_intervals(report)  # validate before drawing anything
    with style():
        fig = new_figure((12.0, 9.0), layout="constrained")
        gs = fig.add_gridspec(2, 2, width_ratios=[1.25, 1.0])
        ax_loss = fig.add_subplot(gs[0, 0])
        ax_f = fig.add_subplot(gs[0, 1])
        ax_ang = fig.add_subplot(gs[1, 0])
        ax_pol = fig.add_subplot(gs[1, 1], projection="polar")
        loss_panel(ax_loss, traj, report)
        ax_loss.set_title("(a) loss, phases shaded", loc="left")
        outputs_panel(ax_f, traj, report)
        ax_f.set_title("(b) outputs on the two points", loc="left")
        direction_time_map(ax_ang, traj, data, max_neurons=max_neurons, seed=seed,
                           phase_times=report)
        ax_ang.set_title("(c) neuron directions in time", loc="left")
        polar_directions(ax_pol, traj, -1, data, max_neurons=max_neurons, seed=seed)
        ax_pol.set_title(f"(d) directions at t = {traj.t[-1]:.3g}", loc="left", pad=14)
        fig.suptitle(title if title is not None else _describe(traj, data), fontsize=12)
    return fig


#: The behaviours :func:`annotated_overview` points out, in time order, with their labels.
ANNOTATION_LABELS: dict[str, str] = {
    "condensation": "initial condensation\n(directions collapse onto $\\mu$)",
    "saddle_escape": "saddle escape\n(loss leaves 1)",
    "reactivation": "reactivation\n(negative neurons active on $x_+$ again)",
    "deactivation": "deactivation on $x_-$:\npositive neurons slide on $x_-^\\perp$",
    "plateau": "plateau\n(loss creeps towards $1-p$)",
    "plateau_escape": "plateau escape\n($f(x_-)$ turns negative)",
    "complexity": "increasing complexity\n(a second direction grows)",
}


def overview_annotations(report: Any) -> dict[str, float]:
    r"""Times at which :func:`annotated_overview` points out each behaviour.

    Read off a :class:`reluflow.analysis.phases.PhaseReport` (or any object with its time
    attributes): ``condensation`` = ``t_condensed``, ``saddle_escape`` = ``t_escape``,
    ``reactivation`` = ``t_reactivation``, ``deactivation`` = ``t_plateau`` (the leading
    group is switched off on the waiting point and slides), ``plateau`` = the midpoint
    :math:`(t_\mathrm{plateau} + t_\mathrm{plateau\,escape})/2`, ``plateau_escape`` =
    ``t_plateau_escape`` and ``complexity`` = ``t_phase4``.  Behaviours whose time is
    ``None`` (did not happen in the run) are left out.

    Returns
    -------
    dict
        Keys of :data:`ANNOTATION_LABELS` (in that order) to times.
    """
    fields = ("t_condensed", "t_escape", "t_reactivation", "t_plateau",
              "t_plateau_escape", "t_phase4")
    if not all(hasattr(report, f) for f in fields):
        raise ValueError(
            f"report must be a reluflow.analysis.phases.PhaseReport (attributes {fields}), "
            f"got {type(report).__name__}"
        )
    tm = {f: as_time(f, getattr(report, f)) for f in fields}
    plateau = None
    if tm["t_plateau"] is not None and tm["t_plateau_escape"] is not None:
        plateau = 0.5 * (tm["t_plateau"] + tm["t_plateau_escape"])
    times = {
        "condensation": tm["t_condensed"],
        "saddle_escape": tm["t_escape"],
        "reactivation": tm["t_reactivation"],
        "deactivation": tm["t_plateau"],
        "plateau": plateau,
        "plateau_escape": tm["t_plateau_escape"],
        "complexity": tm["t_phase4"],
    }
    return {k: t for k in ANNOTATION_LABELS if (t := times[k]) is not None}


def _annotate(ax: Axes, key: str, t: float, y: float, y_text: float) -> None:
    ax.annotate(
        ANNOTATION_LABELS[key], xy=(t, y), xytext=(t, y_text),
        textcoords=("data", "axes fraction"), ha="center", va="center", fontsize=11,
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#888888", "lw": 0.6},
        arrowprops={"arrowstyle": "->", "color": "#333333", "lw": 0.9},
        gid=f"overview:{key}", zorder=6,
    )


def annotated_overview(
    traj: Trajectory,
    data: Dataset | None = None,
    report: Any = None,
    *,
    max_neurons: int = 200,
    seed: int = 0,
) -> Figure:
    r"""One run with the four phases and every named behaviour pointed out on it.

    (a) The loss against linear time over Phases I–III (up to 1.25 times the plateau
    escape), phases shaded, with arrows at the times of :func:`overview_annotations`:
    initial condensation, saddle escape, reactivation, deactivation on :math:`x_-` and
    sliding, plateau, plateau escape.  (b) Each neuron's in-plane angle against
    :math:`\log t` over the whole run.  (c) The effective number of directions
    (:func:`reluflow.analysis.measure.effective_directions`) against :math:`\log t`: it drops to 1
    (simplification) and climbs back towards 2 in Phase IV, where the arrow marks
    increasing complexity at ``t_phase4``.

    Each arrow is a :class:`matplotlib.text.Annotation` with ``gid``
    ``"overview:<key>"`` pointing at ``xy = (time, value)``.

    Parameters
    ----------
    traj : Trajectory
        A run on two-point data recorded densely over the first three phases (all neurons).
    data : Dataset, optional
        Default ``traj.data``.
    report : PhaseReport
        From :func:`reluflow.analysis.phases.detect_phases` on ``traj``.
    max_neurons, seed : int
        Subset drawn in (b).

    Returns
    -------
    Figure
    """

    traj = check_traj(traj)
    data = check_data(traj, data)
    marks = overview_annotations(report)
    t_end = float(traj.t[-1])
    lin_end = 1.25 * marks.get("plateau_escape", marks.get("deactivation", t_end / 1.25))
    lin_end = min(lin_end, t_end)
    with style():
        fig = new_figure((12.0, 9.0), layout="constrained")
        gs = fig.add_gridspec(2, 2)
        ax = fig.add_subplot(gs[0, :])
        sel = traj.t <= lin_end
        ax.plot(traj.t[sel], traj.loss[sel], color=PALETTE["loss"], lw=2.0, label="loss $L(t)$")
        plateau_line(ax, data, traj.loss_name)
        ax.set_xlim(0.0, lin_end)
        ax.set_ylim(0.0, 1.08)
        shade_phases(ax, report, t_end=t_end, markers=False)
        ax.set_xlabel("time $t$ (gradient-flow time units, linear)")
        ax.set_ylabel("loss $L$ (dimensionless)")
        ax.set_title("(a) Phases I–III: the loss, with the behaviours pointed out", loc="left")
        below = iter([0.10, 0.30, 0.50, 0.20, 0.40])
        above = iter([0.80, 0.64, 0.80, 0.64, 0.80])
        for key, t in marks.items():
            if key == "complexity" or t > lin_end:
                continue
            y = float(np.interp(t, traj.t, traj.loss))
            _annotate(ax, key, t, y, next(below) if y / 1.08 > 0.5 else next(above))
        ax.legend(loc="center right")
        axb = fig.add_subplot(gs[1, 0])
        direction_time_map(axb, traj, data, max_neurons=max_neurons, seed=seed,
                           phase_times=report)
        axb.set_title("(b) neuron directions over the whole run", loc="left")
        axc = fig.add_subplot(gs[1, 1])
        y4 = _neff_panel(axc, traj, report, marks.get("complexity"))
        axc.set_ylabel(r"effective number of directions $N_\mathrm{eff}$ (log scale)")
        axc.set_title("(c) simplifying, then complicating", loc="left")
        if "complexity" in marks:
            t4 = marks["complexity"]
            _annotate(axc, "complexity", t4, y4, 0.75)
        fig.suptitle(_describe(traj, data), fontsize=12)
    return fig


def overview_caption(traj: Trajectory, data: Dataset | None = None) -> str:
    """A caption for :func:`overview_figure` saying what to look for (Markdown)."""
    traj = check_traj(traj)
    data = check_data(traj, data)
    return (
        f"Four-phase overview ({_describe(traj, data)}). "
        "(a) The loss against log time with phases I–IV shaded: a first drop-off from the "
        "saddle at the origin, a plateau near $1-p$, then escape and slow convergence. "
        "(b) $f(x_+)$ (blue) grows first; $f(x_-)$ (vermillion) stays near 0 on the plateau "
        "and turns negative at the escape. "
        "(c) Each neuron's angle from $x_+$: positive neurons (blue) condense onto one "
        "direction early, negative neurons (vermillion) that survive move later; faint lines "
        "are neurons dead at the end. "
        "(d) Directions at the final time (radius $\\log_{10}$ of the in-plane norm), with "
        "the reference rays $x_+$, $x_-$, $\\mu$, $x_-^\\perp$, $x_+^\\perp$."
    )


def _neff_panel(ax: Axes, traj: Trajectory, report: Any, t4: float | None) -> float:
    """The effective number of directions against log time, phases shaded; its value at
    ``t4`` (``nan`` without it)."""
    from reluflow.analysis.measure import effective_directions

    idx = np.flatnonzero(time_axis(ax, traj))
    neff = np.array([effective_directions(traj, int(j)) for j in idx])
    ax.plot(traj.t[idx], neff, color=PALETTE["loss"], lw=1.8)
    ax.set_yscale("log")
    shade_phases(ax, report, t_end=float(traj.t[-1]), markers=False)
    if t4 is None:
        return math.nan
    return float(np.interp(math.log(t4), np.log(traj.t[idx]), neff))


def _numbered(ax: Axes, number: int, key: str, t: float, y: float) -> None:
    """A numbered marker (``gid`` ``overview:<key>``) pointing at ``(t, y)``."""
    ax.annotate(str(number), xy=(t, y), xytext=(0, 16), textcoords="offset points",
                ha="center", va="bottom", fontsize=11, fontweight="bold", gid=f"overview:{key}",
                bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": "#333333", "lw": 0.8},
                arrowprops={"arrowstyle": "-", "color": "#333333", "lw": 0.9}, zorder=6)


@styled
def book_overview(traj: Trajectory, data: Dataset | None = None, report: Any = None, *,
                  max_neurons: int = 150, seed: int = 0) -> Panels:
    r"""The introduction's overview as a book figure: three panels, behaviours numbered.

    (a) The loss against linear time over Phases I-III, phases shaded, with a numbered
    marker at each behaviour of :func:`overview_annotations` except the last (1
    condensation, 2 saddle escape, 3 reactivation, 4 deactivation, 5 plateau, 6 plateau
    escape, in time order); (b) each neuron's in-plane angle against :math:`\log t`;
    (c) the effective number of directions against :math:`\log t`, with marker 7 at the
    start of Phase IV (increasing complexity).  Each marker is an annotation with ``gid``
    ``"overview:<key>"`` whose ``xy`` is ``(time, value)``.
    """

    traj = check_traj(traj)
    data = check_data(traj, data)
    marks = overview_annotations(report)
    t_end = float(traj.t[-1])
    lin_end = min(1.25 * marks.get("plateau_escape", marks.get("deactivation", t_end / 1.25)),
                  t_end)
    fa, ax = panel(3.4)
    sel = traj.t <= lin_end
    ax.plot(traj.t[sel], traj.loss[sel], color=PALETTE["loss"], lw=2.0, label="loss $L$")
    plateau_line(ax, data, traj.loss_name)
    ax.set_xlim(0.0, lin_end)
    ax.set_ylim(0.0, 1.25)
    shade_phases(ax, report, t_end=t_end, markers=False)
    order = [k for k in ANNOTATION_LABELS if k != "complexity"]
    for key, t in marks.items():
        if key != "complexity" and t <= lin_end:
            _numbered(ax, order.index(key) + 1, key, t, float(np.interp(t, traj.t, traj.loss)))
    ax.set_xlabel("time $t$ (linear)")
    ax.set_ylabel("loss $L$")
    ax.set_title("(a) Phases I-III", loc="left")
    ax.legend(loc="lower left")
    fb, bx = panel(3.4)
    direction_time_map(bx, traj, data, max_neurons=max_neurons, seed=seed, phase_times=report)
    bx.set_title("(b) neuron directions", loc="left")
    fc, cx = panel(3.4)
    y4 = _neff_panel(cx, traj, report, marks.get("complexity"))
    cx.set_ylabel(r"$N_\mathrm{eff}$ (log scale)")
    if "complexity" in marks:
        _numbered(cx, 7, "complexity", marks["complexity"], y4)
    cx.set_title("(c) simplifying, then complicating", loc="left")
    return Panels([fa, fb, fc], alt="One exact run through the four phases: the loss with the "
                                    "named behaviours numbered, every neuron's direction over "
                                    "the whole run, and the effective number of directions.")


@styled
def overview_panels(traj: Trajectory, data: Dataset | None = None, report: Any = None, *,
                    max_neurons: int = 150, seed: int = 0) -> Panels:
    r"""The four-phase overview of one run as a book figure (four panels).

    Panel a: the loss against :math:`\log t`, phases shaded and the plateau level marked;
    b: the outputs on the points; c: each neuron's in-plane angle against :math:`\log t`;
    d: the directions at the final time (polar).
    """
    traj = check_traj(traj)
    data = check_data(traj, data)
    phase_intervals(report)  # validate before drawing anything
    fa, ax = panel(3.4)
    loss_panel(ax, traj, report)
    ax.set_title("(a) loss", loc="left")
    fb, bx = panel(3.4)
    outputs_panel(bx, traj, report)
    bx.set_title("(b) outputs", loc="left")
    fc, cx = panel(3.4)
    direction_time_map(cx, traj, data, max_neurons=max_neurons, seed=seed, phase_times=report)
    cx.set_title("(c) directions", loc="left")
    fd, dx = panel(4.4, polar=True)
    polar_directions(dx, traj, -1, data, max_neurons=max_neurons, seed=seed)
    dx.set_title(f"(d) directions at t = {traj.t[-1]:.3g}", pad=14)
    return Panels([fa, fb, fc, fd], alt="The four phases of one run: the loss and the outputs "
                                        "against log time, every neuron's direction, and the "
                                        "directions at the end.")
