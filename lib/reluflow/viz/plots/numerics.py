r"""Figures of the numerics chapter: accuracy against cost, chattering, invariant drift.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring); every function returns
a :class:`~reluflow.viz.plots.panels.Panels` book figure, drawn from
:mod:`reluflow.analysis.compare` and :mod:`reluflow.analysis.numerics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from numpy.typing import NDArray

from reluflow.analysis.compare import MethodRun
from reluflow.analysis.numerics import Accuracy, Chattering
from reluflow.analysis.phases import PhaseReport
from reluflow.engine.trajectory import Trajectory
from reluflow.viz.plots.panels import Panels, panel
from reluflow.viz.plots.style import METHOD_COLORS, PALETTE, series_style, styled
from reluflow.viz.plots.timeline import shade_phases

__all__ = ["accuracy_figure", "chattering_figure", "drift_figure"]

Array = NDArray[np.float64]


def _color(method: str) -> str:
    return METHOD_COLORS.get(method, METHOD_COLORS["solve_ivp"])


def _power_law(ax: Axes, steps: Array, values: Array, order: float, ylabel: str,
               title: str) -> None:
    r"""The fitted power law :math:`c\,\eta^{q}` through ``values`` (log-log), labelled."""
    c = np.exp(np.mean(np.log(values) - order * np.log(steps)))
    ax.loglog(steps, c * steps**order, ":", color=PALETTE["theory"], lw=1.6,
              label=rf"$\propto\eta^{{{order:.2f}}}$")
    ax.set_xlabel(r"learning rate $\eta$")
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.legend(loc="lower right")


@styled
def accuracy_figure(rows: Sequence[MethodRun], acc: Accuracy) -> Panels:
    """(a) output error against wall time per method; (b) gradient descent's first order."""
    fa, ax = panel(3.6)
    for method, marker in (("engine", "o-"), ("gradient descent", "s-")):
        grp = [r for r in rows if r.method == method]
        ax.loglog([r.wall_time for r in grp], [r.error for r in grp], marker,
                  color=_color(method), label=method)
    ivp = [r for r in rows if r.method.startswith("solve_ivp")]
    if ivp:
        ax.loglog([r.wall_time for r in ivp], [r.error for r in ivp], "^-",
                  color=_color("solve_ivp"), label=ivp[0].method)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel(r"output error $\max|f - f_\mathrm{ref}|$")
    ax.set_title("(a) accuracy against cost", loc="left")
    ax.legend(loc="lower left")
    fb, bx = panel(3.6)
    gd = [r for r in rows if r.method == "gradient descent"]
    h = np.array([r.step for r in gd])
    bx.loglog(h, [r.error for r in gd], "s", color=_color("gradient descent"),
              label="output error")
    bx.loglog(h, [r.drift for r in gd], "D", mfc="none", color=PALETTE["reference"],
              label="invariant drift")
    _power_law(bx, h, np.array([r.error for r in gd]), acc.order, "error, drift",
               "(b) gradient descent: first order")
    return Panels([fa, fb], alt="Output error against wall time for the engine, gradient "
                                "descent and solve_ivp; gradient descent's error and drift "
                                "against its learning rate.")


@styled
def chattering_figure(ch: Chattering | None) -> Panels:
    r"""(a) :math:`b^\top x_i/\lVert b\rVert` of the sliding neuron, exact and under
    gradient descent; (b) the chattering amplitude against the learning rate.

    Without a sliding neuron (``None``) one panel says so in words.
    """
    fa, ax = panel(3.6)
    if ch is None:
        ax.text(0.5, 0.5, "No neuron slides in the\nreference run: nothing\nto chatter on.",
                ha="center", va="center", fontsize=12, transform=ax.transAxes)
        ax.set_axis_off()
        return Panels([fa], alt="No neuron slides in the reference run.")
    w0 = ch.window[0]
    for i, (lr, (t, d)) in enumerate(zip(ch.rates, ch.runs, strict=True)):
        st = series_style(i, len(ch.rates))
        sel = t <= w0 + 0.5
        ax.plot(t[sel], d[sel], ".-", ms=3, lw=0.7, color=st["color"], label=f"GD, η = {lr:g}")
    sel = ch.exact_t <= w0 + 0.5
    ax.plot(ch.exact_t[sel], ch.exact_distance[sel], color=METHOD_COLORS["engine"], lw=2.4,
            label="exact flow")
    ax.axhline(0.0, color=PALETTE["reference"], lw=0.6)
    pt = "x_+" if ch.point == 0 else "x_-"
    ax.set_xlabel("time $t$")
    ax.set_ylabel(rf"$b_k^\top {pt}/\|b_k\|$")
    ax.set_title("(a) on the boundary", loc="left")
    ax.legend(loc="upper right")
    fb, bx = panel(3.6)
    r = np.asarray(ch.rates)
    bx.loglog(r, ch.amplitude, "s", color=_color("gradient descent"), label="GD amplitude")
    _power_law(bx, r, ch.amplitude, ch.order, "chattering amplitude",
               "(b) proportional to the step")
    return Panels([fa, fb], alt="The pre-activation of a sliding neuron under the exact flow "
                                "and under gradient descent, and the amplitude of the "
                                "chattering against the learning rate.")


@styled
def drift_figure(runs: Sequence[tuple[str, str, Trajectory]], report: PhaseReport,
                 t_max: float) -> Panels:
    r"""The relative drift of :math:`a_k^2 - \lVert b_k\rVert^2` against time, per run
    ``(label, method, trajectory)``, phases shaded."""
    fig, ax = panel(3.6)
    styles = {"engine": "-", "gradient descent": "--", "solve_ivp": "-."}
    seen: dict[str, int] = {}
    for label, method, tr in runs:
        n = seen[method] = seen.get(method, 0) + 1
        ax.semilogy(tr.t[1:], np.maximum(tr.drift[1:], 1e-18), styles[method],
                    color=_color(method), lw=1.6 if n == 1 else 1.0, label=label)
    shade_phases(ax, report, t_end=t_max, labels=True, markers=False)
    ax.set_xlabel("time $t$")
    ax.set_ylabel(r"drift of $a_k^2 - \|b_k\|^2$")
    ax.legend(loc="center right")
    return Panels([fig], alt="The drift of every neuron's balance over time for the engine, "
                             "gradient descent and solve_ivp.")
