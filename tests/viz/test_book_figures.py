"""Book figures: Panels (sizes, fonts, HTML), the diagrams and every chapter's figures."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from matplotlib.figure import Figure

import reluflow as rf
from reluflow import plots
from reluflow.analysis import condensation, convergence, escape, identities, numerics, saddle
from reluflow.analysis.sweeps import DiagramPoint
from reluflow.viz.plots.panels import Panels, min_font_size, panel, panel_png

REGIMES = {"main": (0.3, 0.7), "mirror": (0.5, 0.35), "mu-plus-only": (0.8, 0.55)}


def _check(figure: Panels, n: int) -> None:
    assert isinstance(figure, Panels)
    assert len(figure) == n
    assert all(f.get_figwidth() <= plots.PANEL_WIDTH for f in figure.figures)
    assert min(figure.fonts) >= plots.MIN_FONT_PT
    html = figure._repr_html_()
    assert html.count('class="rf-panel-img"') == n
    assert 'data-min-font-pt="' in html and 'data-width-in="4"' in html


def test_panels_validate_and_render() -> None:
    with plots.style():  # every artist inside the style: fonts are read at creation
        fig, ax = panel(3.0)
        ax.plot([0, 1], [0, 1], label="a line")
        ax.set_title("(a) a line")
        ax.legend()
    figure = Panels([fig], alt="A line.")
    _check(figure, 1)
    assert figure.fonts == [min_font_size(fig)]
    assert figure.html_size() > 1000
    bundle = figure._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    png = panel_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="dpi must be >= 150"):
        panel_png(fig, dpi=100)
    with pytest.raises(ValueError, match="at least one panel"):
        Panels([], alt="x")
    with pytest.raises(ValueError, match="alt must be a non-empty"):
        Panels([fig], alt=" ")
    wide = Figure(figsize=(6.0, 3.0))
    wide.add_subplot().set_title("wide")
    with pytest.raises(ValueError, match="panel 0 is 6 in wide"):
        Panels([wide], alt="x")
    small, sax = panel()
    sax.set_title("tiny", fontsize=7)
    with pytest.raises(ValueError, match="panel 0 has text at 7 pt"):
        Panels([small], alt="x")
    with pytest.raises(ValueError, match="height must lie in"):
        panel(10.0)
    with pytest.raises(ValueError, match="fig must be a matplotlib Figure"):
        min_font_size("fig")  # type: ignore[arg-type]


def test_series_style_and_palette() -> None:
    styles = [plots.series_style(i, 4) for i in range(4)]
    assert len({s["marker"] for s in styles}) == 4
    for n in range(1, 12):  # a series never borrows a colour of the palette but black
        greys = {plots.series_style(i, n)["color"] for i in range(n)} - {"#000000"}
        assert not greys & set(plots.PALETTE.values()), n
    with pytest.raises(ValueError, match="need 0 <= i < n"):
        plots.series_style(4, 4)
    assert set(plots.FATE_COLORS) == set(rf.theory.FATES)
    assert len(set(plots.PHASE_COLORS.values())) == 4
    # a phase band never takes a line colour
    assert not set(plots.PHASE_COLORS.values()) & set(plots.PALETTE.values())


@pytest.mark.parametrize("name", list(REGIMES))
@pytest.mark.parametrize("kind", plots.DIAGRAMS)
def test_intuition_diagrams(name: str, kind: str) -> None:
    _check(plots.intuition_diagram(rf.TwoPointData(*REGIMES[name]), kind), 1)


def test_intuition_diagram_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        plots.intuition_diagram(rf.TwoPointData(0.3, 0.7), "phase5")
    _, ax = panel()
    with pytest.raises(ValueError, match="rays must name reference directions"):
        plots.data_plane(ax, rf.TwoPointData(0.3, 0.7), rays=("y",))
    with pytest.raises(ValueError, match=r"data must be a reluflow\.TwoPointData"):
        plots.data_plane(ax, "data")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def early() -> tuple[rf.Trajectory, rf.TwoPointData, rf.Params, rf.PhaseReport]:
    data = rf.TwoPointData(0.3, 0.7)
    params = rf.init_network(30, 2, 1e-6, seed=0)
    traj = rf.gradient_flow(params, data, 80.0, times=np.linspace(0.0, 80.0, 321))
    return traj, data, params, rf.detect_phases(traj, data)


@pytest.mark.slow
def test_phase1_and_phase2_figures(early: tuple) -> None:
    traj, data, params, report = early
    m = condensation.measure_condensation(traj, data, params, report)
    _check(plots.fate_figure(traj, data, m), 2)
    _check(plots.condensation_figure(traj, data, m, 1e-3), 2)
    _check(plots.simplification_figure(traj, data, report, m), 4)
    s = saddle.measure_saddle(traj, data, report)
    sweep = saddle.escape_sweep(data, np.array([1e-3, 1e-6]), 20, 0, 81)
    _check(plots.escape_figure(traj, s, sweep, report.t_escape), 2)
    _check(plots.rotation_figure(traj, data, s, report.t_escape), 2)
    _check(plots.plateau_figure(traj, data, s, report.t_escape), 2)


def test_phase3_figures(early: tuple) -> None:
    traj, data, _, report = early
    e = escape.measure_escape(traj, data, 80.0)
    _check(plots.release_figure(traj, data, e, report, 80.0), 4)
    rows = escape.slope_sweep([(0.3, 0.7), (0.8, 0.55)], [1e-3, 1e-6], 12, 0, 81)
    _check(plots.slopes_figure(rows, [1e-3, 1e-6]), 1)


@pytest.fixture(scope="module")
def late() -> tuple[rf.Trajectory, rf.TwoPointData, rf.PhaseReport]:
    data = rf.TwoPointData(0.3, 0.7)
    times = np.concatenate([[0.0], np.geomspace(1e-2, 1e30, 150)])
    traj = rf.gradient_flow(rf.init_network(30, 2, 1e-6, seed=0), data, 1e30, times=times)
    return traj, data, rf.detect_phases(traj, data)


@pytest.mark.slow
def test_phase4_setting_and_overview_figures(late: tuple) -> None:
    traj, data, report = late
    c = convergence.measure_convergence(traj, data, report)
    _check(plots.convergence_figure(traj, data, report, c), 4)
    rows = convergence.seed_runs(data, 1e-6, 20, [0, 1], 1e30, 40)
    _check(plots.seeds_figure(rows), 2)
    d4 = rf.gradient_flow(rf.init_network(8, 4, 1e-6, seed=1), rf.TwoPointData(0.3, 0.7, d=4),
                          1e30)
    _check(plots.identities_figure([("d = 2", traj), ("d = 4", d4)]), 2)
    _check(plots.early_figure(traj, data, report, 100.0), 2)
    _check(plots.overview_panels(traj, data, report), 4)
    n = len(plots.snapshot_times(traj, report))
    _check(plots.snapshots_figure(traj, data, report), n)
    assert identities.identity_errors(traj).balance < 1e-9


def test_book_overview_numbers_the_behaviours_at_their_times(late: tuple) -> None:
    traj, data, report = late
    figure = plots.book_overview(traj, data, report)
    _check(figure, 3)
    marks = plots.overview_annotations(report)
    found = {}
    for fig in figure.figures:
        for text in fig.findobj(lambda a: (getattr(a, "get_gid", lambda: None)() or "")
                                .startswith("overview:")):
            found[text.get_gid().split(":", 1)[1]] = text
    lin_end = 1.25 * marks["plateau_escape"]
    expected = {k: t for k, t in marks.items() if k == "complexity" or t <= lin_end}
    assert set(found) == set(expected)
    for key, t in expected.items():
        assert found[key].xy[0] == pytest.approx(t, rel=1e-12)
    order = [k for k in plots.ANNOTATION_LABELS if k != "complexity"]
    for key, mark in found.items():
        assert int(mark.get_text()) == (7 if key == "complexity" else order.index(key) + 1)


def test_scaling_figures() -> None:
    point = DiagramPoint(0.3, 0.7, "main", ("main", "main"), 1, 0.42, 1.0, 5.1, 5.0,
                         "book formula", 2.7, {}, 0.32, 0.31, 0.8)
    _check(plots.diagram_figure([point], 0.3, 0.7), 2)
    runs = [{"kappa": k, "m": 50, "t_condensed": 4.0, "t_escape": math.log(1 / k) / 0.42,
             "t_plateau": None, "t_plateau_escape": 5 * math.log(1 / k), "t_phase4": None,
             "kappa_a": None} for k in (1e-3, 1e-6)]
    wide = [dict(r, m=m, kappa=1e-6) for r in runs for m in (50, 200)]
    _check(plots.kappa_width_figure(runs, wide, {"t_escape": 2.4}, {"t_escape": -1.2,
                                                                     "t_plateau_escape": -2.5}), 2)
    _check(plots.unbalanced_figure({"balanced": runs}, 0.42), 1)


@pytest.mark.slow
def test_numerics_figures(early: tuple) -> None:
    data = early[1]
    small = rf.init_network(10, 2, 1e-2, seed=0)
    times = np.linspace(0.0, 60.0, 121)
    rows, ref = rf.compare.compare_methods(small, data, 60.0, times, engine_rtols=(1e-4, 1e-7),
                                           gd_lrs=(0.1, 0.05), ivp_rtols=(1e-2,))
    acc = numerics.accuracy(rows, 60.0)
    _check(plots.accuracy_figure(rows, acc), 2)
    chat = numerics.chattering(small, data, ref, (0.05, 0.02))
    _check(plots.chattering_figure(chat), 2 if chat is not None else 1)
    _check(plots.chattering_figure(None), 1)
    _check(plots.drift_figure([("engine", "engine", ref)], rf.detect_phases(ref, data), 60.0), 1)
    assert re.search(r"\| engine \| rtol", numerics.methods_table(rows))
