r"""Figures of the scaling chapter: the phase diagram, phase times against :math:`\kappa`,
the width and the initialization.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring); every function returns
a :class:`~reluflow.viz.plots.panels.Panels` book figure, drawn from the grids of
:mod:`reluflow.analysis.sweeps`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap

from reluflow.analysis.geometry import REGIMES
from reluflow.analysis.sweeps import PHASE_NAMES, DiagramPoint, ell
from reluflow.analysis.theory import regime_map
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.style import PALETTE, REGIME_COLORS, REGIME_LABELS, series_style, styled

__all__ = ["diagram_figure", "kappa_width_figure", "unbalanced_figure"]

_EDGE = {"main": PALETTE["positive"], "mu-plus-only": PALETTE["sliding"],
         "mirror": PALETTE["negative"]}


@styled
def diagram_figure(points: Sequence[DiagramPoint], delta: float, p: float) -> Panels:
    r"""(a) the regimes of :math:`(\Delta, p)` with the simulated points; (b) measured
    against predicted slopes of :math:`T_\mathrm{III}` and of the plateau length."""
    fa, ax = panel(3.8)
    dg = np.linspace(0.01, math.pi / 2 - 0.01, 300)
    pg = np.linspace(0.01, 0.99, 300)
    cmap = ListedColormap([REGIME_COLORS[r] for r in REGIMES])
    ax.pcolormesh(dg, pg, regime_map(dg, pg), cmap=cmap, vmin=-0.5, vmax=2.5, shading="auto")
    ax.plot(dg, 1 / (1 + np.cos(dg)), color=PALETTE["positive"], lw=1.4)
    ax.plot(dg, np.cos(dg) / (1 + np.cos(dg)), color=PALETTE["negative"], lw=1.4)
    for q in points:
        ax.plot(q.delta, q.p, "o" if q.agrees else "X", ms=8, mfc=_EDGE[q.measured[-1]],
                mec="black")
    ax.plot(delta, p, "*", ms=14, mfc="white", mec="black")
    for r, (x, y) in {"main": (0.08, 0.9), "mu-plus-only": (1.0, 0.52),
                      "mirror": (0.08, 0.06)}.items():
        ax.text(x, y, REGIME_LABELS[r], color=_EDGE[r], fontsize=11, weight="bold")
    ax.set_xlim(0, math.pi / 2)
    ax.set_ylim(0, 1)
    ax.set_xlabel(r"angle $\Delta$ (rad)")
    ax.set_ylabel(r"weight $p$ of $x_+$")
    ax.set_title("(a) regimes", loc="left")
    fb, bx = panel(3.8)
    vals = [v for q in points for v in (q.slope, q.slope_predicted) if math.isfinite(v)]
    hi = 1.05 * max(vals) if vals else 1.0
    bx.plot([0, hi], [0, hi], color=PALETTE["reference"], lw=1, label="equal")
    for r in REGIMES:
        qs = [q for q in points if q.regime == r and math.isfinite(q.slope)]
        if qs:
            bx.plot([q.slope_predicted for q in qs], [q.slope for q in qs], "o", ms=7,
                    color=_EDGE[r], label=REGIME_LABELS[r])
            bx.plot([q.slope_predicted - 1 / q.rate for q in qs], [q.length_slope for q in qs],
                    "s", ms=6, mfc="none", color=_EDGE[r])
    bx.plot([], [], "s", mfc="none", color=PALETTE["reference"], label="plateau length")
    bx.set_xlim(0, hi)
    bx.set_ylim(0, hi)
    bx.set_xlabel(r"predicted slope in $\log(1/\kappa)$")
    bx.set_ylabel(r"measured slope")
    bx.set_title(r"(b) $T_\mathrm{III}$ slopes", loc="left")
    bx.legend(loc="upper left")
    return Panels([fa, fb], alt="The regimes of (Delta, p) with the simulated grid points, "
                                "and the measured against the predicted slopes of the "
                                "plateau-escape time.")


@styled
def kappa_width_figure(kappa_runs: Sequence[Mapping[str, Any]],
                       width_runs: Sequence[Mapping[str, Any]],
                       predicted: Mapping[str, float], width_slopes: Mapping[str, float]
                       ) -> Panels:
    r"""Phase times against (a) :math:`\log(1/\kappa)` and (b) the width :math:`m`, with
    the predicted slopes (intercepts fitted through the runs' means)."""
    keys = list(PHASE_NAMES)
    fa, ax = panel(3.8)
    x = np.array([math.log(1 / r["kappa"]) for r in kappa_runs])
    xx = np.linspace(0, x.max() * 1.03, 20)
    for i, key in enumerate(keys):
        st = series_style(i, len(keys))
        y = np.array([np.nan if r[key] is None else r[key] for r in kappa_runs], dtype=float)
        ax.plot(x, y, st["marker"], color=st["color"], ms=6, label=PHASE_NAMES[key])
        if key in predicted and np.isfinite(y).any():
            c = np.nanmean(y - predicted[key] * x)
            ax.plot(xx, c + predicted[key] * xx, color=PALETTE["theory"], lw=1.2, ls="--")
    ax.set_xlabel(r"$\log(1/\kappa)$")
    ax.set_ylabel("phase time")
    ax.set_title(r"(a) against $\kappa$", loc="left")
    ax.legend(loc="upper left")
    fb, bx = panel(3.8)
    lm = np.array([math.log(r["m"]) for r in width_runs])
    mm = np.linspace(lm.min(), lm.max(), 20)
    for i, key in enumerate(("t_escape", "t_plateau_escape")):
        st = series_style(2 * i + 1, 4)
        y = np.array([np.nan if r[key] is None else r[key] for r in width_runs], dtype=float)
        bx.plot(np.exp(lm), y, st["marker"], color=st["color"], ms=6, label=PHASE_NAMES[key])
        slope = width_slopes[key]
        if math.isfinite(slope) and np.isfinite(y).any():
            c = np.nanmean(y - slope * lm)
            bx.plot(np.exp(mm), c + slope * mm, color=PALETTE["theory"], lw=1.2, ls="--")
    bx.plot([], [], color=PALETTE["theory"], ls="--", label="predicted slope")
    bx.set_xscale("log")
    bx.set_xlabel("width $m$")
    bx.set_ylabel("phase time")
    bx.set_title("(b) against the width", loc="left")
    bx.legend(loc="upper right")
    return Panels([fa, fb], alt="Phase times against log(1/kappa) and against the width, with "
                                "the predicted slopes.")


@styled
def unbalanced_figure(groups: Mapping[str, Sequence[Mapping[str, Any]]], rate: float) -> Panels:
    r"""Saddle and plateau escape against :math:`\log(1/\max(\kappa,\kappa_a))`, balanced
    and unbalanced; dashed: the slope :math:`1/\lambda` through the balanced runs."""
    fig, ax = panel(3.8)
    for i, (name, rs) in enumerate(groups.items()):
        st = series_style(i, len(groups))
        x = np.array([ell(r) for r in rs])
        ax.plot(x, [r["t_escape"] for r in rs], st["marker"], color=st["color"], ms=7,
                label=name)
        ax.plot(x, [r["t_plateau_escape"] for r in rs], st["marker"], color=st["color"], ms=7,
                mfc="none")
    bal = groups["balanced"]
    xx = np.linspace(0, max(ell(r) for rs in groups.values() for r in rs) * 1.03, 20)
    c = float(np.mean([r["t_escape"] - ell(r) / rate for r in bal]))
    ax.plot(xx, xx / rate + c, color=PALETTE["theory"], ls="--", lw=1.2,
            label=r"slope $1/\lambda$")
    ax.set_xlabel(r"$\log(1/\max(\kappa, \kappa_a))$")
    ax.set_ylabel("phase time")
    ax.legend(loc="upper left")
    return Panels([fig], alt="Saddle-escape (filled) and plateau-escape (hollow) times of "
                             "balanced and unbalanced runs against the effective scale.")
