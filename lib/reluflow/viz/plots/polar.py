r"""Neuron directions in the data plane: polar snapshots, direction-time maps, fate maps.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.projections.polar import PolarAxes
from matplotlib.transforms import blended_transform_factory
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.geometry import plane_coords, reference_angles
from reluflow.engine.data import Dataset
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.base import (
    alive_mask,
    check_data,
    check_traj,
    neuron_signs,
    sample_neurons,
    time_index,
)
from reluflow.viz.plots.style import (
    DEAD_COLOR,
    FATE_COLORS,
    PALETTE,
    REFERENCE_LABELS,
    reference_colors,
)
from reluflow.viz.plots.timeline import shade_phases, time_axis

__all__ = [
    "RADIUS_MODES",
    "check_radius_mode",
    "direction_time_map",
    "draw_reference_rays",
    "fate_map",
    "final_state_labels",
    "polar_directions",
    "polar_radius",
    "radial_limits",
    "radius_floor",
]

Array = NDArray[np.float64]


def draw_reference_rays(ax: PolarAxes, data: Dataset, r0: float, r_max: float) -> None:
    """Rays from ``r0`` to 84% of the way to ``r_max``, labelled at 93%."""
    r1 = r0 + 0.84 * (r_max - r0)
    r_text = r0 + 0.93 * (r_max - r0)
    cols = reference_colors()
    angles = reference_angles(data)
    # Place labels just outside the disc; nudge labels apart when rays are close.
    order = sorted(angles.items(), key=lambda kv: kv[1])
    placed: list[float] = []
    min_gap = math.radians(11.0)
    for name, th in order:
        ax.plot([th, th], [r0, r1], color=cols[name], lw=1.3,
                ls="-" if name in ("x+", "x-", "mu") else "--", zorder=2)
        lab_th = th
        if placed and lab_th - placed[-1] < min_gap:
            lab_th = placed[-1] + min_gap
        placed.append(lab_th)
        ax.text(lab_th, r_text, REFERENCE_LABELS[name], color=cols[name], ha="center",
                va="center",
                fontsize=11, clip_on=False, zorder=5,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})


def polar_radius(norm: Array, mode: str, floor: float) -> Array:
    """Radius of a neuron of plane norm ``norm``: its log10 (above ``floor``), itself, or 1."""
    if mode == "log":
        return np.log10(np.maximum(norm, floor))
    if mode == "linear":
        return norm
    return np.ones_like(norm)


def radial_limits(r: Array, mode: str) -> tuple[float, float]:
    """Radial axis limits that show every radius ``r`` of a :data:`RADIUS_MODES` mode."""
    if mode == "unit":
        return 0.0, 1.15
    if mode == "linear":
        hi = float(np.max(r)) if r.size else 1.0
        return 0.0, (hi * 1.08 if hi > 0 else 1.0)
    lo = math.floor(float(np.min(r))) if r.size else 0.0
    hi = math.ceil(float(np.max(r))) if r.size else 1.0
    if hi - lo < 1:
        hi = lo + 1
    return lo, hi + 0.15 * (hi - lo)


def _check_polar(ax: Any, name: str = "ax") -> PolarAxes:
    if not isinstance(ax, PolarAxes):
        raise ValueError(
            f"{name} must be a polar Axes (e.g. fig.add_subplot(projection='polar')), "
            f"got {type(ax).__name__}"
        )
    return ax


#: Radial scales of the polar figures.
RADIUS_MODES = ("log", "linear", "unit")


def check_radius_mode(radius: str) -> str:
    """Return ``radius`` if it is one of :data:`RADIUS_MODES`, else raise ``ValueError``."""
    if radius not in RADIUS_MODES:
        raise ValueError(f"radius must be one of {RADIUS_MODES}, got {radius!r}")
    return radius


def radius_floor(norms: Array) -> float:
    """Smallest positive norm (the floor of the log radius), or 1e-300 if there is none."""
    pos = norms[norms > 0]
    return float(np.min(pos)) if pos.size else 1e-300


def polar_directions(
    ax: Axes,
    traj: Trajectory,
    index: int,
    data: Dataset | None = None,
    *,
    radius: str = "log",
    max_neurons: int = 300,
    seed: int = 0,
    references: bool = True,
    legend: bool = True,
    rlim: tuple[float, float] | None = None,
) -> Axes:
    r"""Neuron directions in the data plane at one recorded time, on a polar axis.

    Each recorded neuron is a point at angle :math:`\phi_k` (from
    :func:`~reluflow.analysis.geometry.plane_coords`, measured from :math:`x_+`) and radius
    :math:`\log_{10}\lVert P b_k\rVert`
    (``radius="log"``; :math:`P` projects on the data plane), :math:`\lVert P b_k\rVert`
    (``"linear"``) or 1 (``"unit"``).  Blue: :math:`a_k > 0`; vermillion: :math:`a_k < 0`.
    Filled markers are neurons active on at least one point; hollow markers are
    neurons inactive on both (dead at that time).  Reference rays mark :math:`x_+`,
    :math:`x_-`, :math:`\mu = p x_+ - (1-p) x_-`, :math:`x_-^\perp` and :math:`x_+^\perp`.

    Parameters
    ----------
    ax : PolarAxes
        Created with ``fig.add_subplot(projection="polar")``.
    traj : Trajectory
        The run.
    index : int
        Recorded time index (negative counts from the end).
    data : Dataset, optional
        Defines the plane (default ``traj.data``).
    radius : {"log", "linear", "unit"}
        Radial coordinate.
    max_neurons : int
        Draw at most this many neurons (a random subset, seeded by ``seed``).
    seed : int
        Seed of the subset.
    references : bool
        Draw and label the reference rays.
    legend : bool
        Legend for the marker colours and fills.
    rlim : (float, float), optional
        Radial limits; default from the whole trajectory, so that views at different
        times share one scale.
    """
    traj = check_traj(traj)
    pax = _check_polar(ax)
    data = check_data(traj, data)
    mode = check_radius_mode(radius)
    idx = time_index(traj, index)
    sub = sample_neurons(traj.m, max_neurons, seed)
    ang_all, nrm_all = plane_coords(traj.B[:, sub], data)
    floor = radius_floor(nrm_all)
    r_all = polar_radius(nrm_all, mode, floor)
    lo, hi = rlim if rlim is not None else radial_limits(r_all, mode)
    th, r = ang_all[idx], r_all[idx]
    sgn = neuron_signs(traj, idx)[sub]
    alive = alive_mask(traj, idx)[sub]
    for s, key in ((1, "positive"), (-1, "negative")):
        col = PALETTE[key]
        for live in (True, False):
            sel = (sgn == s) & (alive == live)
            if not np.any(sel):
                continue
            pax.scatter(th[sel], r[sel], s=22 if live else 16,
                        facecolors=col if live else "none", edgecolors=col,
                        linewidths=0.9, alpha=0.85 if live else 0.55, zorder=3)
    pax.set_ylim(lo, hi)
    if references:
        draw_reference_rays(pax, data, lo, hi)
    pax.set_thetagrids(np.arange(0, 360, 45), fontsize=11, color="#666666")
    pax.tick_params(axis="y", labelsize=11, colors="#555555")
    pax.set_rlabel_position(202.5)
    pax.grid(True, color="#dddddd", lw=0.6)
    rlabel = {
        "log": r"radius: $\log_{10}\|Pb_k\|$",
        "linear": r"radius: $\|Pb_k\|$",
        "unit": "radius: none (directions only)",
    }[mode]
    pax.set_xlabel(f"angle from $x_+$ (degrees)\n{rlabel}", fontsize=11, labelpad=6)
    if legend:
        handles = [
            Line2D([], [], ls="", marker="o", ms=5.5, color=PALETTE["positive"], label="$a_k>0$"),
            Line2D([], [], ls="", marker="o", ms=5.5, color=PALETTE["negative"], label="$a_k<0$"),
            Line2D([], [], ls="", marker="o", ms=5.5, mfc="none", color="#555555",
                   label="dead (inactive on both)"),
        ]
        pax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2,
                   fontsize=11, frameon=False)
    return pax


def direction_time_map(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    max_neurons: int = 300,
    seed: int = 0,
    phase_times: Any = None,
    references: bool = True,
) -> Axes:
    r"""Angle of each neuron in the data plane against :math:`\log t`.

    One line per neuron, :math:`\phi_k(t)` in degrees from :math:`x_+` (unwrapped in
    time), blue for :math:`a_k > 0`, vermillion for :math:`a_k < 0`; neurons dead
    (inactive on both points) at the final time are drawn thin and faint.  Horizontal
    lines mark the reference directions of :func:`~reluflow.analysis.geometry.reference_angles`.
    """
    traj = check_traj(traj)
    data = check_data(traj, data)
    mask = time_axis(ax, traj)
    sub = sample_neurons(traj.m, max_neurons, seed)
    ang, _ = plane_coords(traj.B[:, sub], data)
    deg = np.degrees(np.unwrap(ang, axis=0))[mask]
    t = traj.t[mask]
    sgn = neuron_signs(traj)[sub]
    alive = alive_mask(traj, -1)[sub]
    for live in (False, True):
        for s, key in ((1, "positive"), (-1, "negative")):
            sel = (sgn == s) & (alive == live)
            if not np.any(sel):
                continue
            ax.plot(t, deg[:, sel], color=PALETTE[key], lw=1.0 if live else 0.5,
                    alpha=0.75 if live else 0.18, zorder=3 if live else 2)
    if references:
        cols = reference_colors()
        trans = blended_transform_factory(ax.transAxes, ax.transData)
        placed: list[float] = []
        for name, th in sorted(reference_angles(data).items(), key=lambda kv: kv[1]):
            y = math.degrees(th)
            ax.axhline(y, color=cols[name], lw=0.9, ls="--", zorder=1)
            ly = y if not placed or y - placed[-1] >= 12 else placed[-1] + 12
            placed.append(ly)
            ax.text(1.01, ly, REFERENCE_LABELS[name], transform=trans, color=cols[name],
                    va="center", ha="left", fontsize=11, clip_on=False)
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    lo = min(-180.0, float(np.min(deg)) if deg.size else -180.0)
    hi = max(180.0, float(np.max(deg)) if deg.size else 180.0)
    ax.set_ylim(lo - 5, hi + 5)
    ax.set_yticks(np.arange(45 * math.ceil(lo / 45), hi + 1, 45))
    ax.set_ylabel(r"angle $\phi_k$ from $x_+$ (degrees)")
    ax.legend(handles=[
        Line2D([], [], color=PALETTE["positive"], label="$a_k>0$"),
        Line2D([], [], color=PALETTE["negative"], label="$a_k<0$"),
        Line2D([], [], color="#888888", lw=0.5, alpha=0.5, label="dead at the end"),
    ], loc="lower left", fontsize=11)
    return ax


def final_state_labels(traj: Trajectory, index: int = -1) -> NDArray[np.str_]:
    r"""Observed activation state of each recorded neuron at a recorded time.

    One of ``"active on both"``, ``"$x_+$ only"``, ``"$x_-$ only"``, ``"dead"`` (inactive on
    both), with ``" (sliding)"`` appended when the neuron is held on a boundary
    (pattern 0).  Only for two-point data (patterns of shape ``(T, m, 2)``).
    """
    traj = check_traj(traj)
    if traj.pattern.shape[-1] != 2:
        raise ValueError("final_state_labels needs two-point data (pattern with n = 2)")
    idx = time_index(traj, index)
    pat = traj.pattern[idx]
    ip = int(np.flatnonzero(traj.data.y > 0)[0])
    im = 1 - ip
    on_p, on_m = pat[:, ip] > 0, pat[:, im] > 0
    base = np.where(on_p & on_m, "active on both",
                    np.where(on_p, "$x_+$ only", np.where(on_m, "$x_-$ only", "dead")))
    slide = np.any(pat == 0, axis=1)
    return np.where(slide, np.char.add(base.astype(str), " (sliding)"), base).astype(str)


def fate_map(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    labels: ArrayLike | None = None,
    *,
    references: bool = True,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    r"""Initial directions coloured by fate, on a polar axis.

    Each recorded neuron is drawn at its *initial* in-plane angle :math:`\phi_k(0)`;
    neurons with :math:`a_k > 0` on the outer ring (radius 1, circles), with
    :math:`a_k < 0` on the inner ring (radius 0.7, triangles).  The colour is the label:
    ``labels`` (one string per recorded neuron, e.g. a predicted or simulated fate) or,
    by default, the observed final state from :func:`final_state_labels`; labels
    that are Phase-I fates take their colour in :data:`~reluflow.viz.plots.style.FATE_COLORS`,
    labels containing ``"dead"`` are grey, and other labels (observed final states) take the
    sliding colour when they contain ``"sliding"`` and the reference grey otherwise.
    """
    traj = check_traj(traj)
    pax = _check_polar(ax)
    data = check_data(traj, data)
    if labels is None:
        labs = final_state_labels(traj)
    else:
        labs = np.asarray(labels).astype(str)
        if labs.shape != (traj.m,):
            raise ValueError(f"labels must have one entry per recorded neuron ({traj.m}), "
                             f"got shape {labs.shape}")
    ang0, _ = plane_coords(traj.B[0], data)
    sgn = neuron_signs(traj, 0)
    cats = sorted(set(labs.tolist()), key=lambda c: ("dead" in c, c))
    colors = {c: FATE_COLORS.get(c, DEAD_COLOR if "dead" in c else
                                 PALETTE["sliding"] if "sliding" in c else PALETTE["reference"])
              for c in cats}
    for c in cats:
        for s, rad, mk in ((1, 1.0, "o"), (-1, 0.7, "^")):
            sel = (labs == c) & (sgn == s)
            if np.any(sel):
                pax.scatter(ang0[sel], np.full(int(sel.sum()), rad), s=26, marker=mk,
                            color=colors[c], edgecolors="#333333", linewidths=0.3,
                            zorder=3, alpha=0.9)
    pax.set_ylim(0, 1.2)
    if references:
        draw_reference_rays(pax, data, 0.0, 1.2)
    pax.set_yticks([0.7, 1.0])
    pax.set_yticklabels([])
    pax.set_thetagrids(np.arange(0, 360, 45), fontsize=11, color="#666666")
    pax.grid(True, color="#dddddd", lw=0.6)
    pax.set_xlabel("initial angle from $x_+$ (degrees)", fontsize=11)
    handles = [Line2D([], [], ls="", marker="s", ms=7, color=colors[c], label=c) for c in cats]
    handles += [
        Line2D([], [], ls="", marker="o", ms=5, mfc="white", color="#333333",
               label="$a_k>0$ (outer)"),
        Line2D([], [], ls="", marker="^", ms=5, mfc="white", color="#333333",
               label="$a_k<0$ (inner)"),
    ]
    if legend:
        pax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                   fontsize=11, frameon=False)
    if title is not None:
        pax.set_title(title)
    return pax
