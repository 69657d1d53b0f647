"""Tests of the shared figure layer: ``reluflow.viz.plots`` and ``reluflow.viz.animation``."""

from __future__ import annotations

import math
import re
from io import BytesIO
from types import SimpleNamespace

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.projections.polar import PolarAxes

import reluflow as rf
from reluflow import animation, plots
from reluflow.analysis import geometry as geo


@pytest.fixture(scope="module")
def data() -> rf.TwoPointData:
    return rf.TwoPointData(0.3, 0.7)


@pytest.fixture(scope="module")
def traj(data: rf.TwoPointData) -> rf.Trajectory:
    """A small run through all four phases (kappa = 1e-3, gradient descent up to t = 200)."""
    params = rf.init_network(24, 2, 1e-3, seed=2)
    return rf.gradient_descent(params, data, 2e-2, 200.0, record_events=False)


@pytest.fixture(scope="module")
def traj3() -> rf.Trajectory:
    """A short gradient-descent run in d = 3 (the plane is span{e1, e2})."""
    data = rf.TwoPointData(0.4, 0.65, d=3)
    params = rf.init_network(10, 3, 1e-2, seed=5)
    return rf.gradient_descent(params, data, 1e-2, 5.0, record_events=False)


REPORT = {
    "t_condensed": 3.0,
    "t_escape": 20.0,
    "t_plateau": 30.0,
    "t_reactivation": 40.0,
    "t_plateau_escape": 60.0,
    "t_phase4": 100.0,
}


def _png_pixels(fig: Figure) -> np.ndarray:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    buf.seek(0)
    return np.asarray(mpimg.imread(buf, format="png"))


def _assert_white_opaque(fig: Figure) -> None:
    assert fig.patch.get_facecolor() == (1.0, 1.0, 1.0, 1.0)
    px = _png_pixels(fig)
    assert px.shape[2] == 4
    assert np.all(px[..., 3] == 1.0)  # opaque everywhere
    assert np.allclose(px[0, 0, :3], 1.0) and np.allclose(px[-1, -1, :3], 1.0)


def test_sample_neurons_is_seeded_and_bounded() -> None:
    a = plots.sample_neurons(1000, 300, seed=4)
    b = plots.sample_neurons(1000, 300, seed=4)
    assert a.size == 300 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, plots.sample_neurons(1000, 300, seed=5))
    assert np.array_equal(plots.sample_neurons(7, 300), np.arange(7))
    with pytest.raises(ValueError, match="max_neurons"):
        plots.sample_neurons(10, 0)


# ------------------------------------------------------------------ phases
def test_phase_intervals_from_report_fields() -> None:
    for rep in (REPORT, SimpleNamespace(**REPORT)):
        iv, mk = plots.phase_intervals(rep, t_end=1e4)
        assert iv == {"I": (0.0, 3.0), "II": (3.0, 30.0), "III": (30.0, 100.0),
                      "IV": (100.0, 1e4)}
        assert mk == {"t_escape": 20.0, "t_reactivation": 40.0, "t_plateau_escape": 60.0}


def test_phase_intervals_drop_phases_with_missing_boundaries() -> None:
    rep = dict(REPORT, t_plateau=None, t_reactivation=None)
    iv, mk = plots.phase_intervals(rep, t_end=1e4)
    assert set(iv) == {"I", "IV"}
    assert "t_reactivation" not in mk
    assert plots.phase_intervals(None) == ({}, {})


def test_phase_intervals_from_phase_dict() -> None:
    iv, mk = plots.phase_intervals({"I": (0, 2), "III": (5, math.inf)}, t_end=50.0)
    assert iv == {"I": (0.0, 2.0), "III": (5.0, 50.0)} and mk == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"I": (3, 1)},
        {"II": 5.0},
        {"I": (-1, 2)},
        {"t_condensed": "soon"},
        {"t_condensed": -2.0},
        {"bogus": 1.0},
        object(),
    ],
)
def test_phase_intervals_reject_bad_input(bad: object) -> None:
    with pytest.raises(ValueError, match=r"phase_times|t_condensed"):
        plots.phase_intervals(bad)


# ------------------------------------------------------------------ figures
def test_overview_figure_is_labelled_white_and_shaded(
    traj: rf.Trajectory, data: rf.TwoPointData
) -> None:
    fig = plots.overview_figure(traj, data, REPORT)
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 4
    assert sum(isinstance(ax, PolarAxes) for ax in axes) == 1
    for ax in axes:
        assert ax.get_xlabel().strip()
        assert ax.get_title(loc="left").strip()
        if not isinstance(ax, PolarAxes):
            assert ax.get_ylabel().strip()
            assert ax.get_xscale() == "log"
    # the four phase bands are drawn on the loss panel (t_end = 200 > t_phase4)
    loss_ax = axes[0]
    assert len(loss_ax.patches) == 4
    assert [t.get_text() for t in loss_ax.texts] == ["I", "II", "III", "IV"]
    _assert_white_opaque(fig)


def test_overview_without_report_has_no_shading(traj: rf.Trajectory) -> None:
    fig = plots.overview_figure(traj)
    assert len(fig.axes[0].patches) == 0
    assert "Δ = 0.3" in fig.get_suptitle()


def test_overview_rejects_bad_report_before_drawing(traj: rf.Trajectory) -> None:
    with pytest.raises(ValueError, match="phase_times"):
        plots.overview_figure(traj, report={"I": (2, 1)})


def test_book_figure_renders_itself_as_png(traj: rf.Trajectory) -> None:
    fig = plots.overview_figure(traj)
    png = fig._repr_png_()  # type: ignore[attr-defined]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_polar_directions_draws_every_neuron_with_its_sign(
    traj: rf.Trajectory, data: rf.TwoPointData
) -> None:
    with plots.style():
        fig = plots.new_figure((5, 5))
        ax = fig.add_subplot(projection="polar")
        plots.polar_directions(ax, traj, -1, data)
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert offsets.shape[0] == traj.m
    ang, nrm = geo.plane_coords(traj.B[-1], data)
    np.testing.assert_allclose(np.sort(offsets[:, 0]), np.sort(ang))
    np.testing.assert_allclose(np.sort(offsets[:, 1]), np.sort(np.log10(nrm)))
    pos = np.array(to_rgba(plots.PALETTE["positive"]))
    n_pos = sum(
        c.get_offsets().shape[0] for c in ax.collections
        if np.allclose(c.get_edgecolor()[0][:3], pos[:3])
    )
    assert n_pos == int(np.sum(traj.a[-1] > 0))
    labels = {t.get_text() for t in ax.texts}
    assert {"$x_+$", "$x_-$", r"$\mu$", r"$x_-^\perp$", r"$x_+^\perp$"} <= labels
    assert ax.get_xlabel().startswith("angle from")
    _assert_white_opaque(fig)


def test_polar_directions_input_errors(traj: rf.Trajectory) -> None:
    fig = plots.new_figure()
    flat = fig.add_subplot(1, 2, 1)
    pol = fig.add_subplot(1, 2, 2, projection="polar")
    with pytest.raises(ValueError, match="polar"):
        plots.polar_directions(flat, traj, 0)
    with pytest.raises(ValueError, match="index"):
        plots.polar_directions(pol, traj, traj.t.size)
    with pytest.raises(ValueError, match="radius"):
        plots.polar_directions(pol, traj, 0, radius="sqrt")
    with pytest.raises(ValueError, match="traj"):
        plots.polar_directions(pol, "traj", 0)  # type: ignore[arg-type]


def test_direction_time_map_one_line_per_neuron(traj: rf.Trajectory) -> None:
    fig = plots.new_figure()
    ax = fig.add_subplot()
    plots.direction_time_map(ax, traj, max_neurons=10, seed=1)
    # 10 neuron lines + 5 horizontal reference lines
    assert len(ax.lines) == 10 + 5
    assert "degrees" in ax.get_ylabel() and "time" in ax.get_xlabel()


def test_other_panels_are_labelled(traj: rf.Trajectory, traj3: rf.Trajectory) -> None:
    with plots.style():
        fig = plots.new_figure((12, 8), layout="constrained")
        axs = [fig.add_subplot(2, 3, i + 1) for i in range(5)]
        fate_ax = fig.add_subplot(2, 3, 6, projection="polar")
        plots.loss_panel(axs[0], traj, REPORT)
        plots.outputs_panel(axs[1], traj3)
        plots.norms_panel(axs[2], traj, phase_times=REPORT)
        plots.margin_panel(axs[3], traj)
        plots.direction_time_map(axs[4], traj3)
        plots.fate_map(fate_ax, traj)
    for ax in axs:
        assert ax.get_xlabel() and ax.get_ylabel()
    # the plateau line 1 - p sits on the loss panel
    assert any(np.allclose(ln.get_ydata(), 0.3) for ln in axs[0].lines)
    # the margin target sin(Delta)/4 sits on the margin panel
    assert any(np.allclose(ln.get_ydata(), math.sin(0.3) / 4) for ln in axs[3].lines)
    assert fate_ax.get_legend() is not None
    _assert_white_opaque(fig)


def test_final_state_labels_follow_the_pattern(traj: rf.Trajectory) -> None:
    labels = plots.final_state_labels(traj)
    pat = traj.pattern[-1]
    dead = ~np.any(pat > 0, axis=1)
    assert np.array_equal(np.char.startswith(labels, "dead"), dead)
    both = np.all(pat > 0, axis=1)
    assert np.array_equal(np.char.startswith(labels, "active on both"), both)
    assert np.array_equal(np.char.endswith(labels, "(sliding)"), np.any(pat == 0, axis=1))


def test_fate_map_rejects_wrong_label_count(traj: rf.Trajectory) -> None:
    ax = plots.new_figure().add_subplot(projection="polar")
    with pytest.raises(ValueError, match="labels"):
        plots.fate_map(ax, traj, labels=["x"] * (traj.m + 1))


def test_panels_need_a_positive_time(data: rf.TwoPointData) -> None:
    params = rf.init_network(3, 2, 1e-2, seed=0)
    tr = rf.gradient_descent(params, data, 1e-2, 1.0, times=[0.0], record_events=False)
    ax = plots.new_figure().add_subplot()
    with pytest.raises(ValueError, match="t > 0"):
        plots.loss_panel(ax, tr)


def test_caption_names_the_panels(traj: rf.Trajectory) -> None:
    cap = plots.overview_caption(traj)
    for part in ("(a)", "(b)", "(c)", "(d)", "1-p"):
        assert part in cap


# ------------------------------------------------------------------ animation
def test_frame_indices_log_spaced_with_ends() -> None:
    t = np.concatenate([[0.0], np.geomspace(1e-2, 1e6, 200)])
    idx = animation.frame_indices(t, 20)
    assert idx[0] == 0 and idx[-1] == t.size - 1 and idx.size == 20
    assert np.all(np.diff(idx) > 0)
    steps = np.diff(np.log10(t[idx[1:]]))
    assert np.allclose(steps, steps.mean(), rtol=0.1)
    assert animation.frame_indices(np.array([0.0, 1.0, 2.0]), 50).size == 3
    with pytest.raises(ValueError, match="frames"):
        animation.frame_indices(t, 1)


def test_animation_html_has_frames_and_controls(traj: rf.Trajectory) -> None:
    html = animation.animation_html(traj, frames=5, dpi=40, max_neurons=8)
    assert "<script" in html and 'class="anim-buttons"' in html
    assert re.search(r"anim\w+\.play_animation\(\)", html)
    assert html.count("data:image/png;base64") == 5
    assert len(html) < 500_000
    # no request to another machine: no CDN stylesheet, every icon drawn inline
    assert "https://" not in html and "<i class=" not in html
    assert html.count("<svg ") == len(animation.PLAYER_ICONS)
    with pytest.raises(ValueError, match="fa-rocket"):
        animation.offline_player('<i class="fa fa-rocket"></i>')


def test_direction_animation_frames_show_time(traj: rf.Trajectory) -> None:
    anim = animation.direction_animation(traj, frames=4, dpi=40)
    titles = []
    for j in range(4):
        anim._func(j)  # type: ignore[attr-defined]
        titles.append(anim._fig.axes[0].get_title())  # type: ignore[attr-defined]
    anim._draw_was_started = True  # type: ignore[attr-defined]  # no "never rendered" warning
    assert titles[0].startswith("t = 0") and titles[-1].startswith(f"t = {traj.t[-1]:.3g} ")
    assert len(set(titles)) == 4


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"frames": 1}, "frames"), ({"frames": 1000}, "frames"), ({"fps": 0}, "fps"),
     ({"dpi": 5}, "dpi"), ({"radius": "x"}, "radius"), ({"max_neurons": 0}, "max_neurons")],
)
def test_animation_bad_values(traj: rf.Trajectory, kw: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        animation.direction_animation(traj, **kw)  # type: ignore[arg-type]


def test_animation_html_size_limit(traj: rf.Trajectory) -> None:
    with pytest.raises(ValueError, match="embed_limit_mb"):
        animation.animation_html(traj, frames=3, dpi=40, embed_limit_mb=0.001)
    with pytest.raises(ValueError, match="default_mode"):
        animation.animation_html(traj, default_mode="bounce")


def test_animation_time_window(traj: rf.Trajectory) -> None:
    anim = animation.direction_animation(traj, frames=4, dpi=40, t_window=(1.0, 50.0))
    anim._draw_was_started = True  # type: ignore[attr-defined]  # no "never rendered" warning
    anim._func(0)  # type: ignore[attr-defined]
    first = anim._fig.axes[0].get_title()  # type: ignore[attr-defined]
    anim._func(3)  # type: ignore[attr-defined]
    last = anim._fig.axes[0].get_title()  # type: ignore[attr-defined]
    t_first = float(first.split()[2])
    t_last = float(last.split()[2])
    assert 1.0 <= t_first < 1.1 and 45.0 < t_last <= 50.0
    for bad in ((5.0, 1.0), (-1.0, 2.0), ("a", 2.0), (1e6, 1e7)):
        with pytest.raises(ValueError, match="t_window"):
            animation.direction_animation(traj, t_window=bad)  # type: ignore[arg-type]


def test_group_series_panel(traj: rf.Trajectory) -> None:
    ang, _ = geo.plane_coords(traj.B, traj.data)
    pos = np.std(ang[:, traj.a[-1] > 0], axis=1)
    neg = np.std(ang[:, traj.a[-1] < 0], axis=1)
    ax = plots.new_figure().add_subplot()
    plots.group_series_panel(ax, traj.t, positive=pos, negative=neg,
                             ylabel="angular spread (rad)", phase_times=REPORT)
    assert len(ax.lines) == 2 and ax.get_ylabel() == "angular spread (rad)"
    assert len(ax.patches) == 4
    assert ax.lines[0].get_color() == plots.PALETTE["positive"]
    with pytest.raises(ValueError, match="negative must have the shape"):
        plots.group_series_panel(ax, traj.t, negative=neg[:-1], ylabel="x")
    with pytest.raises(ValueError, match="ylabel"):
        plots.group_series_panel(ax, traj.t, positive=pos, ylabel=" ")
    with pytest.raises(ValueError, match="at least one"):
        plots.group_series_panel(ax, traj.t, ylabel="x")


def test_margin_panel_ymin(traj: rf.Trajectory) -> None:
    ax = plots.new_figure().add_subplot()
    plots.margin_panel(ax, traj, ymin=0.0)
    assert ax.get_ylim()[0] == 0.0
    with pytest.raises(ValueError, match="ymin"):
        plots.margin_panel(ax, traj, ymin="low")  # type: ignore[arg-type]


def test_phase_numerals_do_not_collide() -> None:
    ax = plots.new_figure().add_subplot()
    ax.set_xscale("log")
    ax.set_xlim(1e-2, 1e15)
    # II and III are each ~1/34 of the axis wide: too narrow for a 10-pt numeral
    plots.shade_phases(ax, {"I": (0, 1), "II": (1, 3), "III": (3, 9), "IV": (9, 1e15)})
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.texts] == ["I", "IV"]
    assert all(t.get_fontsize() >= plots.MIN_FONT_PT for t in ax.texts)
    # wider bands, close together: every numeral that fits, none overlapping
    ax = plots.new_figure().add_subplot()
    ax.set_xlim(0, 100)
    plots.shade_phases(ax, {"I": (0, 5), "II": (5, 9), "III": (9, 40), "IV": (40, 100)})
    assert [t.get_text() for t in ax.texts] == ["I", "III", "IV"]


def test_polar_colours_follow_the_sign_at_the_drawn_time(traj: rf.Trajectory) -> None:
    """Unbalanced runs can change the sign of a_k; each view uses the sign at its time."""
    from dataclasses import replace

    a = traj.a.copy()
    a[: traj.t.size // 2, 0] *= -1.0  # neuron 0 flips sign half-way
    flipped = replace(traj, a=a)
    pos = np.array(to_rgba(plots.PALETTE["positive"]))[:3]

    def n_positive(index: int) -> int:
        ax = plots.new_figure().add_subplot(projection="polar")
        plots.polar_directions(ax, flipped, index)
        return sum(c.get_offsets().shape[0] for c in ax.collections
                   if np.allclose(c.get_edgecolor()[0][:3], pos))

    assert n_positive(0) == int(np.sum(a[0] > 0))
    assert n_positive(-1) == int(np.sum(a[-1] > 0))
    assert n_positive(0) != n_positive(-1)
