"""Figures of the beyond-two-points chapter: panels, size, resolution, fonts, colours."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from reluflow import TwoPointData, gradient_descent, gradient_flow, init_network
from reluflow.analysis.general_phases import detect_phases_general
from reluflow.analysis.measure import effective_directions_series
from reluflow.analysis.patterns import longest_hold
from reluflow.engine.datasets import ClusterData
from reluflow.runs.beyond import ClusterRun, cluster_sweep, escape_sweep, spread_convergence
from reluflow.viz import beyond as vb
from reluflow.viz import plots
from reluflow.viz.plots.panels import Panels, min_font_size
from reluflow.viz.plots.style import MIN_FONT_PT, PANEL_WIDTH


@cache
def runs() -> list[ClusterRun]:
    times = np.concatenate([[0.0], np.linspace(0.25, 150.0, 300), np.geomspace(160, 1e12, 40)])
    return cluster_sweep(0.3, 0.7, [0.0, 0.01, 0.02, 0.04], init_network(16, 2, 1e-6, seed=2),
                         n=3, seed=0, t_max=1e12, times=times)


def _readable(fig: Panels) -> None:
    """A book figure: panels of the book's width, every text >= the book's minimum."""
    assert isinstance(fig, Panels)
    for f in fig.figures:
        assert f.get_figwidth() == pytest.approx(PANEL_WIDTH)
        assert min_font_size(f) >= MIN_FONT_PT
        assert f.patch.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert 'class="rf-panels"' in fig._repr_html_()


def test_cluster_figure() -> None:
    rs = runs()
    s = np.array([r.sigma for r in rs])
    fits = {}
    for name, vals in (("margin", [r.report.values["final_margin"] for r in rs]),
                       ("exit", [r.report.t_plateau_escape for r in rs])):
        c = spread_convergence(s, vals)
        fits[name] = (c.sigmas, c.deviations, c.order)
    fig = vb.cluster_figure(rs, fits)
    assert len(fig.figures) == 4
    _readable(fig)
    with pytest.raises(ValueError, match="sigma = 0"):
        vb.cluster_figure(rs[1:], fits)
    with pytest.raises(ValueError, match="at least one quantity"):
        vb.cluster_figure(rs, {})


def test_real_data_figure_on_any_data() -> None:
    run = runs()[-1]
    fig = vb.real_data_figure(run.traj, run.report, effective_directions_series(run.traj),
                              name="clusters")
    assert len(fig.figures) == 4
    assert fig.figures[0].axes[0].get_xscale() == "log"
    _readable(fig)


def test_escape_figure() -> None:
    sw = escape_sweep(ClusterData(0.3, 0.7, 0.02, n=3, seed=0), 12, [1e-3, 1e-5], seed=0)
    fig = vb.escape_figure({"clusters": sw, "again": sw})
    assert len(fig.figures) == 2
    _readable(fig)
    with pytest.raises(ValueError, match="at least one data set"):
        vb.escape_figure({})


def test_flow_vs_descent_figure() -> None:
    data = TwoPointData(0.3, 0.7)
    params = init_network(12, 2, 1e-4, seed=0)
    t = np.linspace(0.0, 60.0, 121)
    flow = gradient_flow(params, data, 60.0, times=t)
    gd = gradient_descent(params, data, 0.05, 60.0, times=t)
    rep = detect_phases_general(flow)
    hold = longest_hold(flow)
    assert hold is not None
    fig = vb.flow_vs_descent_figure(flow, gd, rep, hold)
    assert len(fig.figures) == 4
    _readable(fig)
    # panel (d) is zoomed on the boundary: twice the largest swing inside the held stretch
    k, i, h0, h1 = hold
    held = (t >= h0) & (t <= h1)
    swing = 0.0
    for tr in (flow, gd):
        b = tr.B[:, int(np.flatnonzero(tr.neurons == k)[0])]
        swing = max(swing, float(np.max(np.abs(b[held] @ data.X[i]
                                                / np.linalg.norm(b[held], axis=1)))))
    lo, hi = fig.figures[3].axes[0].get_ylim()
    assert swing > 0 and np.isclose(hi, 2 * swing) and np.isclose(lo, -2 * swing)
    other = gradient_descent(params, data, 0.05, 60.0, times=t[:50] * 0.5)
    with pytest.raises(ValueError, match="same times"):
        vb.flow_vs_descent_figure(flow, other, rep, hold)
    with pytest.raises(ValueError, match="must end after it starts"):
        vb.flow_vs_descent_figure(flow, gd, rep, (hold[0], hold[1], 5.0, 1.0))
    with pytest.raises(ValueError, match="holds no neuron on a boundary"):
        vb.flow_vs_descent_figure(flow, gd, rep, None)
    with pytest.raises(ValueError, match="is not recorded"):
        vb.flow_vs_descent_figure(flow, gd, rep, (999, 0, 1.0, 5.0))


def test_sigma_colors_run_from_black_to_the_positive_colour() -> None:
    cols = vb.sigma_colors(4)
    assert len(cols) == 4 and cols[0] == "#000000"
    assert cols[-1].lower() == plots.PALETTE["positive"].lower()
    assert vb.sigma_colors(1) == ["#000000"]
    with pytest.raises(ValueError, match="k must be"):
        vb.sigma_colors(0)
