"""Tests of reluflow.runs.explorers: grid, recording, reduction, cache and readouts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import reluflow as rf
from reluflow.analysis import measure as ms
from reluflow.analysis import theory as th
from reluflow.runs import cache
from reluflow.runs import explorers as ex
from reluflow.runs.config import (
    N_EARLY,
    N_LOG_TIMES,
    ConfigError,
    RunConfig,
    early_window,
    explore_times,
    recording_times,
    simulate,
)

#: A small grid: 2 x 2 x 2 runs of 6 neurons to t = 1e8 (a few seconds inline).
SMALL = ex.ExplorerGrid(delta=(0.3, 0.5), p=(0.7, 0.8), kappa=(1e-6, 1e-4), m=6, seed=1,
                        t_max=1e8, name="small")


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("explorer_cache")


@pytest.fixture(scope="module")
def small_records(small_root: Path) -> list[dict[str, Any]]:
    return ex.grid_records(SMALL, small_root, fast=True, workers=1)


# ----------------------------------------------------------------- the grid
def test_grid_configs_and_nearest() -> None:
    cfgs = SMALL.configs()
    assert len(cfgs) == 8
    assert [(c.delta, c.p, c.kappa) for c in cfgs[:3]] == [
        (0.3, 0.7, 1e-6), (0.3, 0.7, 1e-4), (0.3, 0.8, 1e-6)]
    assert all(c.grid == "explore" and c.m == 6 and c.seed == 1 for c in cfgs)
    assert SMALL.nearest(delta=0.1, p=0.9, kappa=1e-12) == (0.3, 0.8, 1e-6)
    assert SMALL.nearest(delta=0.41, p=0.74, kappa=2e-5) == (0.5, 0.7, 1e-4)
    assert SMALL.axis("kappa") == (1e-6, 1e-4)
    with pytest.raises(ValueError, match="axis must be"):
        SMALL.axis("m")


@pytest.mark.parametrize(("field", "values", "match"), [
    ("delta", (0.1, 0.2, 0.4), "evenly spaced"),
    ("kappa", (1e-8, 1e-6, 1e-3), "log10 values must be evenly spaced"),
    ("p", (0.8, 0.7), "strictly increasing"),
    ("p", (), "non-empty"),
    ("p", (0.5, 0.99), r"p must lie in \[0.05, 0.95\]"),
    ("delta", (1.6,), r"delta must lie in \[0.02, 1.5\] for the explorer"),
    ("delta", (0.0,), r"delta must be a number in the open interval \(0, pi\)"),
    ("kappa", (1e-13,), r"kappa must lie in \[1e-12, 0.1\]"),
])
def test_grid_rejects_bad_axes(field: str, values: tuple[float, ...], match: str) -> None:
    axes: dict[str, Any] = {"delta": (0.3,), "p": (0.7,), "kappa": (1e-6,)}
    axes[field] = values
    with pytest.raises(ValueError, match=match):
        ex.ExplorerGrid(**axes, m=4, seed=0, t_max=10.0)


def test_grid_rejects_bad_run_fields() -> None:
    with pytest.raises(ConfigError, match="m must be"):
        ex.ExplorerGrid(delta=(0.3,), p=(0.7,), kappa=(1e-6,), m=0, seed=0, t_max=10.0)
    with pytest.raises(ConfigError, match="t_max must be"):
        ex.ExplorerGrid(delta=(0.3,), p=(0.7,), kappa=(1e-6,), m=2, seed=0, t_max=-1.0)


def test_book_grids() -> None:
    full, fast = ex.book_grid(False), ex.book_grid(True)
    assert len(full.configs()) == 100 and full.m == 100 and full.t_max == 1e30
    assert len(fast.configs()) < 10
    for g in (full, fast):  # every chapter's default point (delta 0.3, p 0.7 or 0.8, kappa 1e-6)
        assert 0.3 in g.delta and 0.7 in g.p and 1e-6 in g.kappa
    assert 0.8 in full.p
    with pytest.raises(ValueError, match="fast must be a boolean"):
        ex.book_grid(1)  # type: ignore[arg-type]


# ----------------------------------------------------------------- recording grid
@pytest.mark.parametrize(("delta", "p", "kappa", "t_max"), [
    (0.3, 0.7, 1e-6, 1e30), (0.1, 0.5, 1e-10, 1e30), (0.5, 0.9, 1e-4, 50.0),
    (0.3, 0.3, 1e-6, 1e8)])
def test_explore_times_refine_the_dense_grid(delta: float, p: float, kappa: float,
                                             t_max: float) -> None:
    cfg = RunConfig(delta=delta, p=p, kappa=kappa, m=4, seed=0, t_max=t_max)
    t = explore_times(cfg)
    assert t[0] == 0.0 and t[-1] == t_max and np.all(np.diff(t) > 0)
    assert np.all(np.isin(recording_times(cfg), t))
    t1 = min(early_window(cfg), th.horizon(delta, p, kappa), t_max)
    early = t[t <= t1]
    assert early.size >= N_EARLY + 1
    assert np.max(np.diff(early)) <= t1 / N_EARLY * (1 + 1e-12)
    logs = t[t >= min(1e-2, t_max / 100)]
    assert np.max(np.diff(np.log(logs))) <= np.log(t_max / min(1e-2, t_max / 100)) / (
        N_LOG_TIMES - 1) * (1 + 1e-9)
    assert np.array_equal(cfg.replace(grid="explore").times(), t)


def test_early_window_is_the_leading_escape_time() -> None:
    d = rf.TwoPointData(0.3, 0.7)
    cfg = RunConfig(delta=0.3, p=0.7, kappa=1e-6, m=4, seed=0, t_max=1e3)
    assert early_window(cfg) == pytest.approx(th.saddle_escape_time(d, 1e-6))
    assert early_window(cfg.replace(loss="logistic")) == pytest.approx(
        2 * th.saddle_escape_time(d, 1e-6))
    with pytest.raises(ConfigError, match="explore grid"):
        explore_times(cfg.replace(delta=2.0))


# ----------------------------------------------------------------- one reduced run
def test_reduce_run_matches_the_trajectory() -> None:
    cfg = RunConfig(delta=0.3, p=0.7, kappa=1e-6, m=12, seed=3, t_max=1e30, grid="explore")
    run = simulate(cfg)
    red = ex.reduce_run(run)
    traj, data, rep = run.trajectory, run.data, run.report
    T = traj.t.size
    for key in ("t", "L", "margin", "f_plus", "f_minus"):
        assert len(red[key]) == T
    assert np.allclose(red["L"], traj.loss, rtol=10 ** (1 - ex.DIGITS), atol=0)
    assert np.allclose(red["f_plus"], traj.f[:, 0], rtol=10 ** (1 - ex.DIGITS), atol=1e-300)
    idx = red["angle_t"]
    assert idx[0] == 0 and idx == sorted(set(idx)) and len(idx) <= ex.N_ANGLE_TIMES
    phi = np.degrees(ms.wrap_angle(rf.geometry.plane_angles(traj.B[idx], data)))
    assert np.allclose(red["angles"], phi, atol=0.05 + 1e-9)
    assert red["sign"] == [int(s) for s in np.sign(traj.a[0])]
    assert red["fate"] == list(ms.simulated_fate(traj, data))
    assert red["fate_theory"] == list(th.fate(data, cfg.params()))
    rates = ms.condensation_rates(traj, data)
    assert red["condensation_rate"] == pytest.approx(float(np.nanmedian(rates)))
    assert red["phase4_exponent"] == pytest.approx(rep.values["phase4_exponent"])


def test_release_ratio_is_one_to_the_recording_grid() -> None:
    # this book's reactivation condition: the sliding negative neurons leave x+'s boundary
    # when p e^{-f+} = (1-p) e^{f-} cos(delta); all of them leave together, so the measured
    # release time lies within one recording step of that instant and log(ratio) is at most
    # the change of f+ + f- over that step.
    cfg = RunConfig(delta=0.3, p=0.7, kappa=1e-6, m=30, seed=0, t_max=1e4, grid="explore")
    run = simulate(cfg)
    red = ex.reduce_run(run)
    traj, tr = run.trajectory, run.report.t_reactivation
    assert tr is not None
    j = int(np.searchsorted(traj.t, tr))
    s = traj.f[:, 0] + traj.f[:, 1]
    bound = float(np.max(np.abs(np.diff(s[j - 2:j + 3]))))
    fp, fm = (float(np.interp(tr, traj.t, traj.f[:, i])) for i in (0, 1))
    expect = 0.7 * math.exp(-fp) / (0.3 * math.exp(fm) * math.cos(0.3))
    assert red["release_ratio"] == pytest.approx(expect, rel=1e-12)
    assert abs(math.log(red["release_ratio"])) <= bound


# ----------------------------------------------------------------- the cached grid
def test_grid_records_are_cached(small_records: list[dict[str, Any]], small_root: Path,
                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [(r["delta"], r["p"], r["kappa"]) for r in small_records] == [
        (c.delta, c.p, c.kappa) for c in SMALL.configs()]
    assert all(r["status"] == "ok" and r["grid"] == "explore" for r in small_records)
    folder = cache.cache_dir(small_root, "small", True)
    assert len(list((folder / "results").glob("*.json"))) == 8
    assert not list(cache.cache_dir(small_root, "small", False).parent.parent.glob("*"))

    def boom(*_a: Any, **_k: Any) -> None:
        raise AssertionError("simulate must not run for cached configurations")

    # a second call with the same code and mode reads the files: no run is made
    monkeypatch.setattr(ex, "simulate", boom)
    again = ex.grid_records(SMALL, small_root, fast=True, workers=1)
    assert again == small_records
    with pytest.raises(ValueError, match="grid must be an ExplorerGrid"):
        ex.grid_records("small", tmp_path, fast=True)  # type: ignore[arg-type]


# ----------------------------------------------------------------- readouts
def test_readouts_quote_the_theory(small_records: list[dict[str, Any]]) -> None:
    for chapter in ex.CHAPTERS:
        table = ex.readouts(small_records, chapter)
        assert set(table) == {(c.delta, c.p, c.kappa) for c in SMALL.configs()}
        for (d, p, k), rows in table.items():
            data = rf.TwoPointData(d, p)
            by = {r.quantity: r for r in rows}
            assert by["regime"].predicted == th.regime(data)
            rec = next(r for r in small_records if (r["delta"], r["p"], r["kappa"]) == (d, p, k))
            if "plateau loss" in by:
                assert by["plateau loss"].predicted == th.plateau_level(data)
                assert by["plateau loss"].measured == rec["plateau_loss"]
            if "normalized margin γ(t_max); limit" in by:
                assert by["normalized margin γ(t_max); limit"].predicted == math.sin(d) / 4
    rows = ex.readouts(small_records, "phase2")[(0.3, 0.7, 1e-6)]
    mean = next(r for r in rows if r.quantity.endswith("(mean draw)"))
    assert mean.predicted == pytest.approx(th.saddle_escape_time(
        rf.TwoPointData(0.3, 0.7), 1e-6, m=6))
    with pytest.raises(ValueError, match="chapter must be one of"):
        ex.readouts(small_records, "phase5")


def test_phase3_slope_is_the_fit_over_kappa(small_records: list[dict[str, Any]]) -> None:
    slopes = ex.plateau_slopes(small_records)
    for (d, p), s in slopes.items():
        pts = [(math.log(1 / r["kappa"]), r["t_plateau_escape"]) for r in small_records
               if (r["delta"], r["p"]) == (d, p)]
        (x0, y0), (x1, y1) = sorted(pts)
        assert s == pytest.approx((y1 - y0) / (x1 - x0))
        row = next(r for r in ex.readouts(small_records, "phase3")[(d, p, 1e-6)]
                   if r.quantity.startswith("slope"))
        assert row.measured == s
        assert row.predicted == pytest.approx(th.plateau_escape_slope(
            rf.TwoPointData(d, p), "corrected", kappa=1e-6))


def test_plateau_slopes_need_two_kappas() -> None:
    recs = [{"delta": 0.3, "p": 0.7, "kappa": 1e-4, "t_plateau_escape": 50.0},
            {"delta": 0.3, "p": 0.7, "kappa": 1e-6, "t_plateau_escape": None},
            {"delta": 0.3, "p": 0.8, "kappa": 1e-4, "t_plateau_escape": 10.0},
            {"delta": 0.3, "p": 0.8, "kappa": 1e-8, "t_plateau_escape": 10.0 + 3 * math.log(
                1e4)}]
    slopes = ex.plateau_slopes(recs)
    assert slopes[(0.3, 0.7)] is None
    assert slopes[(0.3, 0.8)] == pytest.approx(3.0)
