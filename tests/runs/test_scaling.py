"""Tests of reluflow.runs.scaling: grids, dense runs, measured regimes, caching, predictions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import reluflow as rf
from reluflow.analysis import measure as ms
from reluflow.analysis import theory as th
from reluflow.runs import cache
from reluflow.runs import scaling as sc
from reluflow.runs import sweep as sw
from reluflow.runs.config import recording_times

BASE = {"delta": 0.3, "p": 0.7, "kappa": 1e-4, "m": 20, "seed": 0, "t_max": 1e4}


# ----------------------------------------------------------------- horizon and grid
def test_loss_scale_and_bad_loss() -> None:
    assert th.loss_scale("exp") == 1.0
    assert th.loss_scale("logistic") == 2.0
    with pytest.raises(ValueError, match="loss"):
        th.loss_scale("hinge")


@pytest.mark.parametrize(("delta", "p"), [(0.3, 0.7), (0.3, 0.3), (1.1, 0.5)])
def test_horizon_is_past_the_predicted_plateau_escape(delta: float, p: float) -> None:
    data = rf.TwoPointData(delta, p)
    h = th.horizon(delta, p, 1e-6)
    reg = th.regime(data)
    if reg in ("main", "mirror"):
        eff = data if reg == "main" else rf.TwoPointData(delta, 1 - p)
        assert h > 1.4 * th.plateau_escape_time(eff, 1e-6, "corrected")
    else:
        assert h > math.log(1e6) / (min(p, 1 - p) * math.sin(delta))
    assert th.horizon(delta, p, 1e-6, "logistic") == pytest.approx(2 * h)
    # the larger of the two scales sets the horizon
    assert th.horizon(delta, p, 1e-9, kappa_a=1e-6) == pytest.approx(h)


@pytest.mark.parametrize(("kw", "name"), [({"delta": 1.6}, "delta"), ({"p": 1.0}, "p"),
                                          ({"kappa": 0.0}, "kappa"), ({"kappa_a": 2.0}, "kappa_a")])
def test_horizon_rejects_bad_input(kw: dict[str, float], name: str) -> None:
    args = {"delta": 0.3, "p": 0.7, "kappa": 1e-4, **kw}
    with pytest.raises(ValueError, match=name):
        th.horizon(**args)


# ----------------------------------------------------------------- one dense run
@pytest.fixture(scope="module")
def main_run() -> dict[str, object]:
    return sc.run_dense({**BASE, "t_max": 1e5})


def test_run_dense_summary(main_run: dict[str, object]) -> None:
    r = main_run
    assert r["regime"] == "main" and r["regime_measured"] == "main" and r["leader"] == 1
    assert isinstance(r["leader_both"], float) and r["leader_both"] > 0.9
    for key in ("t_condensed", "t_escape", "t_plateau", "t_plateau_escape"):
        assert isinstance(r[key], float)
    assert r["t_condensed"] < r["t_escape"] < r["t_plateau"] < r["t_plateau_escape"]
    # the exact O(1) prediction of the saddle escape, from the same initialization
    assert isinstance(r["t_escape_pred_params"], float)
    assert abs(r["t_escape"] - r["t_escape_pred_params"]) < 0.3
    assert r["invariant_drift"] < 1e-8
    assert 0.0 <= r["invariant_drift_total"] <= r["invariant_drift"] + 1e-15
    json.dumps(r)  # a sweep stores it as JSON


def test_run_dense_times_match_detect_phases_on_the_same_grid(
        main_run: dict[str, object]) -> None:
    cfg = {**BASE, "t_max": 1e5}
    data = rf.TwoPointData(0.3, 0.7)
    params = rf.init_network(20, 2, 1e-4, seed=0)
    times = recording_times(cfg)
    traj = rf.gradient_flow(params, data, float(times[-1]), times=times)
    rep = rf.detect_phases(traj, data)
    assert main_run["t_plateau_escape"] == pytest.approx(rep.t_plateau_escape, rel=1e-9)
    label, sign, both = ms.measured_regime(traj, data, rep.t_escape)
    assert (label, sign) == ("main", 1) and both == pytest.approx(main_run["leader_both"])


@pytest.mark.parametrize(("delta", "p", "label", "sign"),
                         [(0.3, 0.3, "mirror", -1), (1.1, 0.6, "mu-plus-only", 1)])
def test_measured_regime_other_regimes(delta: float, p: float, label: str, sign: int) -> None:
    r = sc.run_dense({**BASE, "delta": delta, "p": p, "kappa": 1e-5, "t_max": 1e3})
    assert r["regime"] == label
    assert (r["regime_measured"], r["leader"]) == (label, sign)
    assert r["t_escape_pred_params"] is None  # only derived for the main regime


def test_measured_regime_without_escape() -> None:
    data = rf.TwoPointData(0.3, 0.7)
    traj = rf.gradient_flow(rf.init_network(5, 2, 1e-6, seed=0), data, 1.0)
    assert ms.measured_regime(traj, data, None)[:2] == ("none", 0)


def test_run_dense_refuses_obtuse_angle() -> None:
    with pytest.raises(ValueError, match="delta"):
        sc.run_dense({**BASE, "delta": 2.0})


# ----------------------------------------------------------------- sweeps and caching
def test_source_fingerprint_tracks_the_code(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    f1 = cache.source_fingerprint(tmp_path)
    assert f1 == cache.source_fingerprint(tmp_path) and len(f1) == 12
    (tmp_path / "a.py").write_text("x = 2\n")
    assert cache.source_fingerprint(tmp_path) != f1
    with pytest.raises(ValueError, match="package_dir"):
        cache.source_fingerprint(tmp_path / "missing")


def test_cache_dir_separates_modes_and_code(tmp_path: Path) -> None:
    fast = cache.cache_dir(tmp_path, "grid-1", True)
    full = cache.cache_dir(tmp_path, "grid-1", False)
    assert fast != full
    assert fast.parent.name == cache.source_fingerprint() and fast.name == "grid-1"
    assert not fast.exists()  # nothing is created before a sweep runs
    for bad in ("", "a/b", "../x"):
        with pytest.raises(ValueError, match="name"):
            cache.cache_dir(tmp_path, bad, True)
    with pytest.raises(ValueError, match="fast"):
        cache.cache_dir(tmp_path, "g", 1)  # type: ignore[arg-type]


def test_run_grid_writes_reads_and_keeps_order(tmp_path: Path) -> None:
    grid = [{**BASE, "kappa": 1e-3, "t_max": 200.0}, {**BASE, "kappa": 1e-2, "t_max": 200.0}]
    out = tmp_path / "deep" / "er" / "g"
    recs = sc.run_grid(grid, out, workers=1)
    assert [r["kappa"] for r in recs] == [1e-3, 1e-2]
    files = sorted((out / "results").glob("*.json"))
    assert [f.stem for f in files] == sorted(sw.config_hash({**c, "grid": "dense"}) for c in grid)
    assert (out / "results.csv").is_file()
    # a second call reads the cache: same records, the files are not rewritten
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = sc.run_grid(list(reversed(grid)), out, workers=1)
    assert [r["kappa"] for r in again] == [1e-2, 1e-3]
    assert again[1] == recs[0]
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_run_grid_reports_failures(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="1 of 1 runs failed"):
        sc.run_grid([{**BASE, "delta": 2.0}], tmp_path / "bad", workers=1)
    assert list((tmp_path / "bad" / "results").glob("*.error.json"))
    with pytest.raises(ValueError, match="configs"):
        sc.run_grid([], tmp_path / "empty")
    with pytest.raises(ValueError, match="workers"):
        sc.run_grid([BASE], tmp_path / "w", workers=0)


# ----------------------------------------------------------------- predictions, fits
def test_fit_line() -> None:
    s, c, n = ms.fit_line([1, 2, 3, 4], [3.0, None, 7.0, float("nan")])
    assert (s, c, n) == (pytest.approx(2.0), pytest.approx(1.0), 2)
    s, _, n = ms.fit_line([1, 1], [1.0, 2.0])
    assert math.isnan(s) and n == 2
    with pytest.raises(ValueError, match="same length"):
        ms.fit_line([1, 2], [1.0])


def test_regime_map_matches_theory() -> None:
    deltas, ps = [0.3, 1.1], [0.3, 0.5, 0.8]
    codes = th.regime_map(deltas, ps)
    assert codes.shape == (3, 2)
    for i, p in enumerate(ps):
        for j, dl in enumerate(deltas):
            assert th.REGIMES[codes[i, j]] == th.regime(dl, p)
    assert th.REGIMES[codes[1, 1]] == "mu-plus-only"


def test_plateau_escape_slope_prediction() -> None:
    ks = [1e-4, 1e-8]
    main = rf.TwoPointData(0.3, 0.7)
    s, src = th.plateau_escape_slope_prediction(main, ks)
    assert src == "book formula"
    t = [th.plateau_escape_time(main, k, "corrected") for k in ks]
    assert s == pytest.approx((t[1] - t[0]) / math.log(1e4))
    mirror = rf.TwoPointData(0.3, 0.3)
    assert th.plateau_escape_slope_prediction(mirror, ks)[0] == pytest.approx(s)
    inter = rf.TwoPointData(1.1, 0.6)
    s_i, src_i = th.plateau_escape_slope_prediction(inter, ks)
    assert src_i == "intermediate estimate"
    assert s_i == pytest.approx(1 / (0.4 * math.sin(1.1)))
    with pytest.raises(ValueError, match="kappas"):
        th.plateau_escape_slope_prediction(main, [1e-4])
    with pytest.raises(ValueError, match="data"):
        th.plateau_escape_slope_prediction("data", ks)  # type: ignore[arg-type]


def test_plateau_exit_loss() -> None:
    main = rf.TwoPointData(0.3, 0.7)
    g = th.plateau_exit_output(main, 1e-8)
    assert th.plateau_exit_loss(main, 1e-8) == pytest.approx(0.3 + 0.7 * math.exp(-g))
    assert th.plateau_exit_loss(rf.TwoPointData(0.3, 0.3), 1e-8) == pytest.approx(
        th.plateau_exit_loss(main, 1e-8))
    assert th.plateau_exit_loss(rf.TwoPointData(1.1, 0.6), 1e-8) is None


def test_invariant_drift_total_measures_against_total_mass() -> None:
    data = rf.TwoPointData(0.3, 0.7)
    traj = rf.gradient_flow(rf.init_network(10, 2, 1e-3, seed=1), data, 50.0)
    assert ms.invariant_drift_total(traj) < 1e-9
    # perturb one neuron's output weight at the last time: 1e-3 of the total mass
    tot = float(np.sum(traj.a[-1] ** 2 + np.sum(traj.B[-1] ** 2, axis=1)))
    a = traj.a[-1, 0]
    traj.a[-1, 0] = math.copysign(math.sqrt(a**2 + 1e-3 * tot), a)
    assert ms.invariant_drift_total(traj) == pytest.approx(1e-3 / (1 + 1e-3), rel=1e-6)
