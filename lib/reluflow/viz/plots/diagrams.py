r"""Explanatory diagrams of the data plane: activation regions, :math:`\mu`, where neurons go.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring).  Each phase chapter
opens with one of these drawings (:func:`intuition_diagram`) before its proposition: the
unit circle of directions :math:`\varphi` in the plane of :math:`x_+` and :math:`x_-`
(measured from :math:`x_+` towards :math:`x_-`), shaded by activation region, with the
reference directions and arrows for the motion the chapter explains.  The drawing is
computed from the data (:math:`\Delta`, :math:`p`, hence :math:`\mu` and the regime), not
from a run: it is the picture the proposition predicts.

Geometry (exact, :func:`reluflow.analysis.geometry.region_bounds`): a direction is active
on :math:`x_+` for :math:`\varphi\in(-90^\circ, 90^\circ)` and on :math:`x_-` for
:math:`\varphi\in(\Delta-90^\circ, \Delta+90^\circ)`, so the wedge active on both points
spans a half-turn minus :math:`\Delta`, :math:`180^\circ-\Delta`.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Wedge

from reluflow.analysis.geometry import reference_angles, regime, region_bounds, roles
from reluflow.engine.data import TwoPointData
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.style import (
    FATE_COLORS,
    PALETTE,
    REFERENCE_LABELS,
    reference_colors,
    styled,
)

__all__ = ["DIAGRAMS", "REGION_FILLS", "data_plane", "intuition_diagram"]

#: Fill of each activation region in the diagrams (blue: x+ only, vermillion: x- only).
REGION_FILLS: dict[str, str] = {
    "both": "#FFFFFF",
    "plus-only": "#DCEBF7",
    "minus-only": "#F9E0D2",
    "none": "#E6E6E6",
}

#: The diagrams :func:`intuition_diagram` draws, one per chapter.
DIAGRAMS = ("regions", "condensation", "saddle", "escape", "convergence")

_REGION_NAMES = {"both": "active on both", "plus-only": "on $x_+$ only",
                 "minus-only": "on $x_-$ only", "none": "dead"}


def _xy(angle: float, r: float) -> tuple[float, float]:
    return r * math.cos(angle), r * math.sin(angle)


def data_plane(ax: Axes, data: TwoPointData, *, rays: tuple[str, ...] = ("x+", "x-", "mu",
               "x-perp", "x+perp"), legend: bool = True) -> Axes:
    r"""Draw the unit circle of directions, its four activation regions and reference rays.

    Parameters
    ----------
    ax : Axes
        Cartesian axes (the aspect is set equal, the frame hidden).
    data : TwoPointData
        :math:`\Delta\in(0, \pi/2)` and :math:`p`.
    rays : tuple of str
        Reference directions to draw, names of
        :data:`reluflow.analysis.geometry.REFERENCES` and ``"-mu"``.
    legend : bool
        A legend of the region fills below the circle.
    """
    if not isinstance(data, TwoPointData):
        raise ValueError(f"data must be a reluflow.TwoPointData, got {type(data).__name__}")
    for name, (lo, hi) in region_bounds(data).items():
        ax.add_patch(Wedge((0, 0), 1.0, math.degrees(lo), math.degrees(hi),
                           facecolor=REGION_FILLS[name], edgecolor="none", zorder=0))
    ax.add_patch(Wedge((0, 0), 1.0, 0, 360, width=None, fill=False,
                       edgecolor="#999999", lw=0.8, zorder=1))
    ang = dict(reference_angles(data))
    ang["-mu"] = ang["mu"] + math.pi
    cols = dict(reference_colors(), **{"-mu": PALETTE["mu"]})
    labels = dict(REFERENCE_LABELS, **{"-mu": r"$-\mu$"})
    for name in rays:
        if name not in ang:
            raise ValueError(f"rays must name reference directions {tuple(ang)}, got {name!r}")
        th = ang[name]
        x, y = _xy(th, 1.0)
        dashed = name.endswith("perp") or name == "-mu"
        ax.plot([0, x], [0, y], color=cols[name], lw=1.6, ls="--" if dashed else "-", zorder=2)
        lx, ly = _xy(th, 1.17)
        ax.text(lx, ly, labels[name], color=cols[name], ha="center", va="center", fontsize=11.5,
                zorder=5)
    ax.set_aspect("equal")
    ax.set_xlim(-1.32, 1.32)
    ax.set_ylim(-1.32, 1.32)
    ax.set_axis_off()
    if legend:
        ax.legend(handles=[Patch(facecolor=REGION_FILLS[k], edgecolor="#999999",
                                 label=_REGION_NAMES[k]) for k in REGION_FILLS],
                  loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    return ax


def _arc(ax: Axes, r: float, a0: float, a1: float, color: str, dashed: bool = False) -> None:
    """An arrow along the circle of radius ``r`` from angle ``a0`` to ``a1`` (radians)."""
    if abs(a1 - a0) < 1e-3:
        return
    th = np.linspace(a0, a1, 60)
    ax.plot(r * np.cos(th), r * np.sin(th), color=color, lw=2.2, ls="--" if dashed else "-",
            zorder=4, solid_capstyle="butt")
    ax.annotate("", xy=_xy(a1, r), xytext=_xy(th[-4], r), zorder=4,
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2.2,
                            "mutation_scale": 14, "shrinkA": 0, "shrinkB": 0})


def _targets(data: TwoPointData) -> dict[str, float]:
    """Angles the drawing needs: mu, -mu, the two boundary directions, x+ and x-."""
    ang = reference_angles(data)
    return {"mu": ang["mu"], "-mu": ang["mu"] + math.pi, "x-perp": ang["x-perp"],
            "x+perp": ang["x+perp"], "x-": ang["x-"], "x+": 0.0}


def _draw_condensation(ax: Axes, data: TwoPointData) -> list[Line2D]:
    """Phase I: survivors condense on the leader's target or slide; the others die."""
    a = _targets(data)
    reg = regime(data)
    d = data.delta
    handles = []
    if reg == "main":  # positive (outer) condense on mu; negative (inner) slide or die
        _arc(ax, 0.92, -0.45 * math.pi, a["mu"] - 0.12, FATE_COLORS["condense"])
        _arc(ax, 0.92, 0.45 * math.pi, a["mu"] + 0.12, FATE_COLORS["condense"])
        _arc(ax, 0.62, a["mu"] + 0.35, a["x+perp"] - 0.05, FATE_COLORS["slide"])
        _arc(ax, 0.62, a["mu"] - 0.15, a["x-perp"] + 0.05, FATE_COLORS["die"])
    elif reg == "mirror":  # negative (inner) condense on -mu; positive (outer) slide or die
        _arc(ax, 0.62, d + 0.45 * math.pi, a["-mu"] + 0.12, FATE_COLORS["condense"])
        _arc(ax, 0.62, d - 0.45 * math.pi, a["-mu"] - 0.12, FATE_COLORS["condense"])
        _arc(ax, 0.92, a["-mu"] - 0.35, a["x-perp"] + 0.05, FATE_COLORS["slide"])
        _arc(ax, 0.92, a["-mu"] + 0.15, a["x+perp"] - 0.05, FATE_COLORS["die"])
    else:  # intermediate: both groups slide on the boundary of the other point
        _arc(ax, 0.92, 0.3 * math.pi, a["x-perp"] + 0.05, FATE_COLORS["slide"])
        _arc(ax, 0.62, d - 0.3 * math.pi, a["x+perp"] - 0.05, FATE_COLORS["slide"])
    for key, text in (("condense", "condense"), ("slide", "slide on a boundary"),
                      ("die", "die (switch off)")):
        if reg == "mu-plus-only" and key != "slide":
            continue
        handles.append(Line2D([], [], color=FATE_COLORS[key], lw=2.0, label=text))
    return handles


def _draw_saddle(ax: Axes, data: TwoPointData) -> list[Line2D]:
    """Phase II: mu(t) turns from mu to the leader's boundary; the leader follows it."""
    a = _targets(data)
    r = roles(data)
    end = a["x-perp"] if r.leader > 0 else a["x+perp"]
    start = r.target
    _arc(ax, 0.92, start, end + (0.04 if r.leader > 0 else -0.04), PALETTE["mu"], dashed=True)
    _arc(ax, 0.7, start, end + (0.06 if r.leader > 0 else -0.06),
         PALETTE["positive" if r.leader > 0 else "negative"])
    return [Line2D([], [], color=PALETTE["mu"], lw=2.0, ls="--",
                   label=r"$\mu(t)$ turns as $f$ grows"),
            Line2D([], [], color=PALETTE["positive" if r.leader > 0 else "negative"], lw=2.0,
                   label="leader follows, then slides")]


def _draw_escape(ax: Axes, data: TwoPointData) -> list[Line2D]:
    """Phase III: followers held on the leader's boundary are released towards their point."""
    a = _targets(data)
    r = roles(data)
    hold = a["x+perp"] if r.leader > 0 else a["x-perp"]
    goal = a["x-"] if r.leader > 0 else a["x+"]
    col = PALETTE["negative" if r.leader > 0 else "positive"]
    _arc(ax, 0.7, hold + (-0.02 if r.leader > 0 else 0.02), goal + (0.1 if r.leader > 0 else -0.1),
         col)
    return [Line2D([], [], color=col, lw=2.0, label="followers released, turn to $x_w$")]


def _draw_convergence(ax: Axes, data: TwoPointData) -> list[Line2D]:
    """Phase IV: the followers drift back towards their boundary very slowly."""
    a = _targets(data)
    r = roles(data)
    col = PALETTE["negative" if r.leader > 0 else "positive"]
    start = a["x-"] + 0.25 if r.leader > 0 else a["x+"] - 0.25
    end = a["x+perp"] if r.leader > 0 else a["x-perp"]
    _arc(ax, 0.7, start, end + (-0.06 if r.leader > 0 else 0.06), col, dashed=True)
    return [Line2D([], [], color=col, lw=2.0, ls="--",
                   label=r"followers drift ($\log\log t$ clock)")]


@styled
def intuition_diagram(data: TwoPointData, kind: str) -> Panels:
    r"""The data-plane diagram of a chapter, as a one-panel book figure.

    Parameters
    ----------
    data : TwoPointData
        The chapter's data (the drawing follows its regime).
    kind : {"regions", "condensation", "saddle", "escape", "convergence"}
        ``"regions"``: the four activation regions and the reference directions (the
        setting); ``"condensation"``: where neurons go while :math:`f\approx 0` (Phase I);
        ``"saddle"``: :math:`\mu(t)` turning towards the leader's boundary (Phase II);
        ``"escape"``: the held followers released towards the waiting point (Phase III);
        ``"convergence"``: the two final directions and the slow drift (Phase IV).

    Returns
    -------
    Panels
        One square panel.
    """
    if kind not in DIAGRAMS:
        raise ValueError(f"kind must be one of {DIAGRAMS}, got {kind!r}")
    fig, ax = panel(4.0)
    rays: tuple[str, ...] = ("x+", "x-", "mu", "x-perp", "x+perp")
    if kind == "condensation" and regime(data) == "mirror":
        rays = ("x+", "x-", "-mu", "x-perp", "x+perp")
    data_plane(ax, data, rays=rays, legend=kind == "regions")
    draw = {"condensation": _draw_condensation, "saddle": _draw_saddle,
            "escape": _draw_escape, "convergence": _draw_convergence}.get(kind)
    if draw is not None:
        ax.legend(handles=draw(ax, data), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                  ncol=1, frameon=False)
    alt = f"Diagram of the data plane ({kind}): activation regions, reference directions"
    return Panels([fig], alt=alt + " and the motion of the neurons.")
