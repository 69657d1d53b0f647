"""Tests of the explorer panel ``reluflow.viz.widgets`` (no browser needed)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

import reluflow as rf
from reluflow.viz import widgets

#: A small, fast configuration.
SMALL = widgets.ExplorerState(kappa=1e-2, delta=0.3, p=0.7, m=8, seed=1, t_max=30.0)



def _gd(params: rf.Params, data: rf.Dataset, t_max: float, *, times: Any, loss: str,
        rtol: float) -> rf.Trajectory:
    return rf.gradient_descent(params, data, 2e-2, t_max, times=times, loss=loss,
                               record_events=False)


def test_launch_note_is_one_line_about_a_live_kernel() -> None:
    assert "\n" not in widgets.LAUNCH_NOTE
    assert "live kernel" in widgets.LAUNCH_NOTE and "Binder" in widgets.LAUNCH_NOTE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kappa", 0.0), ("kappa", 1.0), ("kappa", float("nan")), ("kappa", "small"),
        ("delta", 0.0), ("delta", 1.6), ("p", 0.0), ("p", 1.0),
        ("m", 0), ("m", 2.5), ("m", 5000), ("seed", -1), ("seed", 2**32),
        ("t_max", 0.0), ("t_max", 1e31), ("t_max", float("inf")), ("loss", "hinge"),
    ],
)
def test_state_rejects_out_of_range_values(field: str, value: Any) -> None:
    name = "loss" if field == "loss" else field
    with pytest.raises(ValueError, match=name):
        replace(SMALL, **{field: value})


def test_state_normalises_types() -> None:
    st = replace(SMALL, m=16.0, kappa=np.float32(1e-3))
    assert isinstance(st.m, int) and st.m == 16
    assert isinstance(st.kappa, float)
    assert st.config().data().delta == pytest.approx(0.3)


def test_simulate_returns_trajectory_and_figure() -> None:
    traj, fig = widgets.simulate(SMALL, engine=_gd, report=False)
    assert isinstance(traj, rf.Trajectory) and isinstance(fig, Figure)
    assert traj.t[-1] == pytest.approx(SMALL.t_max)
    assert traj.m == SMALL.m and traj.info["kappa"] == SMALL.kappa
    assert traj.loss[-1] < traj.loss[0]
    assert len(fig.axes) == 4
    # same state, same run (seeded initialization)
    traj2, _ = widgets.simulate(SMALL, engine=_gd, report=False)
    np.testing.assert_array_equal(traj.B, traj2.B)


def test_simulate_rejects_a_non_state() -> None:
    with pytest.raises(ValueError, match="ExplorerState"):
        widgets.simulate({"kappa": 1e-3})  # type: ignore[arg-type]


def test_panel_has_the_controls_and_runs_once_on_creation() -> None:
    panel = widgets.explorer(SMALL, engine=_gd, report=False)
    assert set(panel.controls) == {"kappa", "delta", "p", "m", "seed", "t_max", "t_max_slider",
                                   "loss", "run"}
    assert panel.runs == 1 and panel.last is not None
    assert panel.state() == SMALL
    (out,) = panel.output.outputs
    assert "image/png" in out["data"]
    assert "final loss" in panel.status.value


def test_changing_a_slider_recomputes() -> None:
    panel = widgets.explorer(SMALL, engine=_gd, report=False, run=False)
    assert panel.runs == 0 and panel.last is None
    panel.controls["delta"].value = 0.5
    assert panel.runs == 1
    assert panel.last is not None
    traj, _ = panel.last
    assert isinstance(traj.data, rf.TwoPointData) and traj.data.delta == pytest.approx(0.5)
    panel.controls["m"].value = 4
    assert panel.runs == 2 and panel.last[0].m == 4


def test_observer_respects_auto_and_run_button() -> None:
    panel = widgets.explorer(SMALL, engine=_gd, report=False, run=False, auto=False)
    panel.controls["p"].value = 0.8
    panel._on_change({"name": "value", "new": 0.8})
    assert panel.runs == 0
    panel.controls["run"].click()
    assert panel.runs == 1 and panel.last is not None
    assert panel.last[0].data.p == pytest.approx(0.8)


def test_set_state_recomputes_once() -> None:
    panel = widgets.explorer(SMALL, engine=_gd, report=False, run=False)
    new = replace(SMALL, m=3, seed=7, loss="logistic")
    panel.set_state(new)
    assert panel.runs == 1 and panel.state() == new
    assert panel.last is not None and panel.last[0].loss_name == "logistic"


def test_failed_run_is_reported_in_the_panel() -> None:
    def broken(*args: Any, **kwargs: Any) -> rf.Trajectory:
        raise RuntimeError("integrator exploded")

    panel = widgets.explorer(SMALL, engine=broken, report=False)
    assert panel.runs == 1 and panel.last is None
    assert "integrator exploded" in panel.status.value


def test_explorer_rejects_unknown_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown explorer values"):
        widgets.explorer(run=False, width=3)
    with pytest.raises(ValueError, match="kappa"):
        widgets.explorer(run=False, kappa=-1.0)
    with pytest.raises(ValueError, match="state"):
        widgets.explorer(state="fast", run=False)  # type: ignore[arg-type]


def test_simulate_default_path_exact_flow_with_phases() -> None:
    """The panel's real path: gradient_flow to a large time, phases detected and shaded."""
    st = widgets.ExplorerState(kappa=1e-4, delta=0.3, p=0.7, m=64, seed=0, t_max=1e12)
    traj, fig = widgets.simulate(st)
    assert traj.info.get("method") != "gradient_descent"
    assert traj.t[-1] == pytest.approx(1e12)
    assert np.all(np.diff(traj.loss) <= 1e-12 * traj.loss[:-1])
    loss_ax = fig.axes[0]
    # main regime (p cos(Delta) > 1 - p): all four phases are detected and shaded
    assert len(loss_ax.patches) == 4
    assert {t.get_text() for t in loss_ax.texts} <= {"I", "II", "III", "IV"}


def test_t_max_takes_any_value_in_range_and_the_log_slider_follows() -> None:
    panel = widgets.explorer(SMALL, engine=_gd, report=False, run=False)
    box, slider = panel.controls["t_max"], panel.controls["t_max_slider"]
    lo, hi = rf.runs.config.FIELDS["t_max"].explore
    assert (box.min, box.max) == (lo, hi)
    assert (slider.min, slider.max) == pytest.approx((np.log10(lo), np.log10(hi)))
    box.value = 80.0  # e.g. Phase II's window: not a whole decade
    assert panel.runs == 1 and panel.state().t_max == 80.0 and slider.value == 80.0
    slider.value = 10 ** 1.5  # the slider moves the box, one recomputation
    assert panel.runs == 2 and box.value == pytest.approx(10 ** 1.5)
    assert panel.last is not None and panel.last[0].t[-1] == pytest.approx(10 ** 1.5)
    box.value = 1e40  # clamped to the range by the box, never beyond
    assert box.value == hi


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_a_run_still_at_the_saddle_says_so_and_the_suggested_window_shows_the_escape(
        loss: str) -> None:
    state = widgets.ExplorerState(kappa=1e-6, delta=0.3, p=0.7, m=16, seed=0, t_max=10.0,
                                  loss=loss)
    panel = widgets.explorer(state)
    traj, _ = panel.last
    assert traj.info["t_escape"] is None
    t_esc, window = widgets.escape_window(state)
    assert window >= t_esc > state.t_max
    assert "still at the saddle" in panel.status.value
    assert f"Set t_max to {window:.3g}" in panel.status.value
    assert ("logistic loss halves" in panel.status.value) == (loss == "logistic")
    panel.controls["t_max"].value = window
    traj, fig = panel.last
    measured = traj.info["t_escape"]
    assert measured is not None and measured < window
    assert measured == pytest.approx(t_esc, abs=0.3 * rf.theory.loss_scale(loss))
    assert "still at the saddle" not in panel.status.value
    assert widgets.saddle_message(panel.state(), measured) == ""
    loss_ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in loss_ax.get_lines()}
    level = rf.theory.plateau_level(traj.data, loss)
    (label,) = [k for k in lines if k.startswith("plateau level")]
    assert lines[label].get_ydata()[0] == pytest.approx(level)
    assert ("log 2" in label) == (loss == "logistic")
    (esc,) = [k for k in lines if k.startswith("predicted escape")]
    assert lines[esc].get_xdata()[0] == pytest.approx(t_esc)


@pytest.mark.parametrize(("delta", "p", "label"), [(0.3, 0.7, "$1-p$"), (0.3, 0.3, "$p$"),
                                                   (1.0, 0.6, "$\\min(p, 1-p)$")])
def test_plateau_line_follows_the_regime(delta: float, p: float, label: str) -> None:
    from matplotlib.figure import Figure as F

    ax = F().add_subplot()
    data = rf.TwoPointData(delta, p)
    assert rf.plots.plateau_line(ax, data) == pytest.approx(rf.theory.plateau_level(data))
    assert ax.get_lines()[0].get_label() == f"plateau level {label}"
    assert rf.plots.plateau_line(ax, rf.Dataset([[1.0, 0.0], [0.0, 1.0]], [1, -1])) is None
