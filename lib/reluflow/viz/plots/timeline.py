r"""Panels over time: the loss and outputs with the phases shaded, norms, margins, group series.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.geometry import HALF_PI, plane_coords, regime
from reluflow.analysis.phases import PHASE_TIMES
from reluflow.analysis.theory.phase2 import plateau_level
from reluflow.engine import checks as v
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.base import (
    as_time,
    check_data,
    check_traj,
    neuron_signs,
    positive_times,
    sample_neurons,
)
from reluflow.viz.plots.style import PALETTE, PHASE_COLORS, PHASES, TIME_LABEL

__all__ = [
    "EVENT_MARKERS",
    "group_series_panel",
    "loss_panel",
    "margin_panel",
    "norms_panel",
    "outputs_panel",
    "phase_intervals",
    "plateau_label",
    "plateau_line",
    "shade_phases",
    "time_axis",
]


# Marker lines for the event times inside phases: (label, line style).
EVENT_MARKERS: dict[str, tuple[str, Any]] = {
    "t_escape": ("saddle escape", (0, (4, 2))),
    "t_reactivation": ("reactivation", (0, (1, 1.5))),
    "t_plateau_escape": ("plateau escape", (0, (6, 2, 1, 2))),
}


def phase_intervals(
    report: Any, t_end: float = math.inf
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    r"""Turn phase information into intervals and marker times.

    Parameters
    ----------
    report : None, mapping or PhaseReport-like object
        * ``None``: nothing.
        * A mapping ``{"I": (t0, t1), "II": ..., "III": ..., "IV": ...}`` (any subset,
          ``t1`` may be ``math.inf`` for "until the end"; a value ``None`` skips that phase).
        * An object with attributes, or a mapping with keys,
          :data:`~reluflow.analysis.phases.PHASE_TIMES`
          (floats or ``None``), e.g. ``reluflow.analysis.phases.PhaseReport`` or its ``to_dict()``.
          Then Phase I is :math:`[0, t_\mathrm{condensed}]`, II is
          :math:`[t_\mathrm{condensed}, t_\mathrm{plateau}]`, III is
          :math:`[t_\mathrm{plateau}, t_\mathrm{phase4}]` and IV is
          :math:`[t_\mathrm{phase4}, t_\mathrm{end}]`; a phase with a missing (``None``)
          boundary is left out.  ``t_escape``, ``t_reactivation`` and
          ``t_plateau_escape`` become marker times.
    t_end : float
        End of the time window (the end of Phase IV).

    Returns
    -------
    intervals : dict
        Phase name to ``(t0, t1)`` with ``t0 < t1``.
    markers : dict
        Field name (``"t_escape"``, ...) to time, for the fields that are set.
    """
    if report is None:
        return {}, {}
    if isinstance(report, Mapping):
        keys = set(report)
        if keys and keys <= set(PHASES):
            out: dict[str, tuple[float, float]] = {}
            pair = "must be a pair (t0, t1) with 0 <= t0 < t1, got"
            for ph in PHASES:
                val = report.get(ph)
                if val is None:
                    continue
                try:
                    t0, t1 = val
                except (TypeError, ValueError):
                    raise ValueError(f"phase_times[{ph!r}] {pair} {val!r}") from None
                a = as_time(f"phase_times[{ph!r}][0]", t0)
                b = v.real_scalar(f"phase_times[{ph!r}][1]", t1) if t1 != math.inf else math.inf
                if a is None or not b > a:
                    raise ValueError(f"phase_times[{ph!r}] {pair} {val!r}")
                out[ph] = (a, min(b, t_end))
            return out, {}
        if not keys & set(PHASE_TIMES):
            raise ValueError(
                "phase_times must map phase names 'I'..'IV' to (t0, t1) pairs or hold the fields "
                f"{PHASE_TIMES}; got keys {sorted(map(str, keys))}"
            )
        fields = {k: as_time(k, report.get(k)) for k in PHASE_TIMES}
    else:
        if not any(hasattr(report, k) for k in PHASE_TIMES):
            raise ValueError(
                "phase_times must be None, a dict of phases, or an object with attributes "
                f"{PHASE_TIMES}; got {type(report).__name__}"
            )
        fields = {k: as_time(k, getattr(report, k, None)) for k in PHASE_TIMES}
    bounds: dict[str, tuple[float | None, float | None]] = {
        "I": (0.0, fields["t_condensed"]),
        "II": (fields["t_condensed"], fields["t_plateau"]),
        "III": (fields["t_plateau"], fields["t_phase4"]),
        "IV": (fields["t_phase4"], t_end),
    }
    intervals = {
        ph: (t0, t1) for ph, (t0, t1) in bounds.items()
        if t0 is not None and t1 is not None and t1 > t0
    }
    markers = {k: t for k in EVENT_MARKERS if (t := fields[k]) is not None}
    return intervals, markers


def shade_phases(
    ax: Axes,
    report: Any,
    *,
    t_end: float | None = None,
    labels: bool = True,
    markers: bool = True,
) -> Axes:
    """Shade the four phases on a time axis and mark event times.

    Parameters
    ----------
    ax : Axes
        Axes whose x axis is time (linear or log).
    report : None, mapping or PhaseReport-like
        See :func:`phase_intervals`.
    t_end : float, optional
        End of Phase IV (default: the right limit of the x axis).
    labels : bool
        Write the phase numerals I-IV at the top of each band wide enough to hold them.
    markers : bool
        Draw dashed vertical lines (with legend labels) at ``t_escape``,
        ``t_reactivation`` and ``t_plateau_escape``.
    """
    lo, hi = ax.get_xlim()
    end = hi if t_end is None else float(t_end)
    intervals, mk = phase_intervals(report, end)
    log = ax.get_xscale() == "log"
    trans = blended_transform_factory(ax.transData, ax.transAxes)

    def _frac(x: float) -> float:  # position in axes fraction
        if log:
            return (math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        return (x - lo) / (hi - lo)

    last_label = -math.inf
    for ph, (t0, t1) in intervals.items():
        a = max(t0, lo)
        b = min(t1, hi)
        if not b > a:
            continue
        ax.axvspan(a, b, color=PHASE_COLORS[ph], zorder=0, lw=0)
        if labels:
            mid = math.sqrt(a * b) if log else 0.5 * (a + b)
            width = _frac(b) - _frac(a)
            # no numeral on a band too narrow for it or too close to the last one
            if width >= 0.035 and _frac(mid) - last_label >= 0.06:
                ax.text(mid, 0.975, ph, transform=trans, ha="center", va="top",
                        fontsize=11, fontweight="bold", color="#444444", zorder=1)
                last_label = _frac(mid)
    if markers:
        for key, t in mk.items():
            if lo <= t <= hi:
                lab, ls = EVENT_MARKERS[key]
                ax.axvline(t, color="#333333", lw=0.9, ls=ls, zorder=1, label=lab)
    ax.set_xlim(lo, hi)
    return ax


def time_axis(ax: Axes, traj: Trajectory) -> NDArray[np.bool_]:
    mask = positive_times(traj)
    tp = traj.t[mask]
    ax.set_xscale("log")
    if tp[-1] > tp[0]:
        ax.set_xlim(tp[0], tp[-1])
    ax.set_xlabel(TIME_LABEL)
    return mask


#: The weight of the awaited point in each regime, as the plateau's label writes it.
_WAIT_WEIGHT = {"main": "1-p", "mirror": "p", "mu-plus-only": r"\min(p, 1-p)"}


def plateau_label(data: TwoPointData, loss: str = "exp") -> str:
    r"""The plateau level in symbols, for the regime of ``data`` and the ``loss``.

    >>> plateau_label(TwoPointData(0.3, 0.3)), plateau_label(TwoPointData(0.3, 0.7), "logistic")
    ('plateau level $p$', 'plateau level $(1-p)\\log 2$')
    """
    w = _WAIT_WEIGHT[regime(data)]
    return f"plateau level ${w}$" if v.loss_name(loss) == "exp" else (
        f"plateau level $({w})\\log 2$")


def plateau_line(ax: Axes, data: Dataset, loss: str = "exp") -> float | None:
    r"""A dotted line at this book's plateau level for ``data`` and ``loss``; the level.

    :func:`reluflow.analysis.theory.plateau_level`: the awaited point's weight (by regime)
    times :math:`\ell(0)`.  Nothing is drawn (``None``) for data that are not two points
    at an acute angle, where no plateau is predicted.
    """
    if not isinstance(data, TwoPointData) or not data.delta < HALF_PI:
        return None
    level = plateau_level(data, loss)
    ax.axhline(level, color=PALETTE["theory"], lw=1.2, ls=":", label=plateau_label(data, loss))
    return level


def loss_panel(
    ax: Axes,
    traj: Trajectory,
    phase_times: Any = None,
    *,
    plateau: bool = True,
    legend: bool = True,
) -> Axes:
    r"""Loss :math:`L(\theta(t))` against :math:`\log t`, with the phases shaded.

    Parameters
    ----------
    ax : Axes
        Target axes.
    traj : Trajectory
        The run (times ``t > 0`` are drawn).
    phase_times : None, mapping or PhaseReport-like
        Phase shading, see :func:`phase_intervals`.
    plateau : bool
        For two-point data, a dotted line at the plateau level of the run's regime and
        loss (:func:`plateau_line`; this book's derivation, Phase II).
    legend : bool
        Draw a legend.
    """
    traj = check_traj(traj)
    mask = time_axis(ax, traj)
    loss = traj.loss[mask]
    ax.plot(traj.t[mask], loss, color=PALETTE["loss"], lw=1.8, label=r"loss $L(\theta(t))$")
    if np.all(loss > 0):
        ax.set_yscale("log")
    if plateau:
        plateau_line(ax, traj.data, traj.loss_name)
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]))
    ax.set_ylabel(r"loss $L$ (log scale)" if ax.get_yscale() == "log" else r"loss $L$")
    if legend:
        ax.legend(loc="lower left")
    return ax


def _point_labels(data: Dataset) -> list[str]:
    if isinstance(data, TwoPointData):
        return ["$f(x_+)$", "$f(x_-)$"]
    return [f"$f(x_{{{i + 1}}})$, $y={int(y):+d}$" for i, y in enumerate(data.y)]


def outputs_panel(
    ax: Axes,
    traj: Trajectory,
    phase_times: Any = None,
    *,
    legend: bool = True,
) -> Axes:
    r"""Network outputs :math:`f(x_i; \theta(t))` against :math:`\log t`.

    Points with label +1 are drawn in the positive colour, label -1 in the negative
    colour (line styles differ when there are more than two points).
    """
    traj = check_traj(traj)
    mask = time_axis(ax, traj)
    labels = _point_labels(traj.data)
    styles = ["-", "--", "-.", ":"]
    npos = nneg = 0
    for i in range(traj.f.shape[1]):
        if traj.data.y[i] > 0:
            col, ls = PALETTE["positive"], styles[npos % 4]
            npos += 1
        else:
            col, ls = PALETTE["negative"], styles[nneg % 4]
            nneg += 1
        ax.plot(traj.t[mask], traj.f[mask, i], color=col, ls=ls, lw=1.8, label=labels[i])
    ax.axhline(0.0, color="#999999", lw=0.8, zorder=1)
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    ax.set_ylabel("network output $f(x_i)$ (dimensionless)")
    if legend:  # below the phase numerals
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92))
    return ax


def norms_panel(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    max_neurons: int = 300,
    seed: int = 0,
    phase_times: Any = None,
) -> Axes:
    r"""In-plane norms :math:`\lVert P b_k(t)\rVert` of the neurons against :math:`\log t`.

    Log-log axes, one line per neuron coloured by the sign of :math:`a_k`.  With balanced
    initialization :math:`|a_k| = \lVert b_k\rVert` for all time, so this is also the
    output-weight magnitude (for :math:`d = 2`).
    """
    traj = check_traj(traj)
    data = check_data(traj, data)
    mask = time_axis(ax, traj)
    sub = sample_neurons(traj.m, max_neurons, seed)
    _, nrm = plane_coords(traj.B[:, sub], data)
    nrm = nrm[mask]
    sgn = neuron_signs(traj)[sub]
    for s, key in ((1, "positive"), (-1, "negative")):
        sel = sgn == s
        if np.any(sel):
            ax.plot(traj.t[mask], nrm[:, sel], color=PALETTE[key], lw=0.8, alpha=0.6)
    if np.all(nrm > 0):
        ax.set_yscale("log")
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    ax.set_ylabel(r"in-plane norm $\|Pb_k\|$ (log scale)")
    ax.legend(handles=[
        Line2D([], [], color=PALETTE["positive"], label="$a_k>0$"),
        Line2D([], [], color=PALETTE["negative"], label="$a_k<0$"),
    ], loc="upper left")
    return ax


def margin_panel(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    target: bool = True,
    phase_times: Any = None,
    ymin: float | None = None,
) -> Axes:
    r"""Normalized margin :math:`\min_i y_i f(x_i) / \lVert\theta\rVert^2` against :math:`\log t`.

    Meaningful when all neurons are recorded.  With ``target=True`` and two-point data,
    a dotted line marks :math:`\sin\Delta / 4`, the margin of the two-direction solution
    (this book's derivation, Phase II).  ``ymin`` sets the lower y limit
    (the early margins are very negative and can squash the late approach).
    """
    traj = check_traj(traj)
    data = check_data(traj, data)
    lo_y = None if ymin is None else v.real_scalar("ymin", ymin)
    mask = time_axis(ax, traj)
    gam = traj.normalized_margin()[mask]
    ax.plot(traj.t[mask], gam, color=PALETTE["loss"], lw=1.8, label="normalized margin")
    if target and isinstance(data, TwoPointData):
        ax.axhline(math.sin(data.delta) / 4, color=PALETTE["theory"], ls=":", lw=1.4,
                   label=r"$\sin\Delta/4$ (this book's derivation)")
    ax.axhline(0.0, color="#999999", lw=0.8, zorder=1)
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    ax.set_ylabel(r"$\min_i y_i f(x_i)/\|\theta\|^2$ (dimensionless)")
    if lo_y is not None:
        ax.set_ylim(bottom=lo_y)
    ax.legend(loc="lower right")
    return ax


def group_series_panel(
    ax: Axes,
    t: ArrayLike,
    *,
    positive: ArrayLike | None = None,
    negative: ArrayLike | None = None,
    ylabel: str,
    phase_times: Any = None,
    logy: bool = False,
    label: str = "",
) -> Axes:
    r"""Plot a per-group time series (e.g. angular spread) in the sign colours.

    For quantities a chapter computes per group over the recorded times (for instance
    the angular spread of ``reluflow.analysis.measure.group_stats`` at every index):
    ``positive`` (neurons with :math:`a_k > 0`) in blue, ``negative`` in vermillion,
    against :math:`\log t` (times ``t > 0`` only), phases shaded as in
    :func:`shade_phases`.

    Parameters
    ----------
    ax : Axes
        Target axes.
    t : array_like, shape (T,)
        Times, non-decreasing, at least one > 0.
    positive, negative : array_like, shape (T,), optional
        The series of each group (at least one must be given); NaN leaves a gap.
    ylabel : str
        Y-axis label, with units (non-empty).
    phase_times : None, mapping or PhaseReport-like
        See :func:`phase_intervals`.
    logy : bool
        Logarithmic y axis.
    label : str
        Suffix for the legend entries (e.g. ``" spread"``).
    """
    tt = v.finite_array("t", t, 1)
    if not np.any(tt > 0):
        raise ValueError("t must hold at least one time t > 0 for a log-time axis")
    if not isinstance(ylabel, str) or not ylabel.strip():
        raise ValueError("ylabel must be a non-empty string (quantity and units)")
    if positive is None and negative is None:
        raise ValueError("give at least one of positive= or negative=")
    mask = tt > 0
    for name, arr in (("positive", positive), ("negative", negative)):
        if arr is None:
            continue
        y = np.asarray(arr, dtype=np.float64)
        if y.shape != tt.shape:
            raise ValueError(f"{name} must have the shape of t {tt.shape}, got {y.shape}")
        sym = "$a_k>0$" if name == "positive" else "$a_k<0$"
        ax.plot(tt[mask], y[mask], color=PALETTE[name], lw=1.8, label=f"{sym}{label}")
    ax.set_xscale("log")
    tp = tt[mask]
    if tp[-1] > tp[0]:
        ax.set_xlim(tp[0], tp[-1])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel(ylabel)
    shade_phases(ax, phase_times, t_end=float(tt[-1]), markers=False)
    ax.legend(loc="best")
    return ax
