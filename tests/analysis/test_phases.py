"""Tests of reluflow.analysis.phases: measurements and phase detection on exact-flow runs."""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest

from reluflow import (
    Dataset,
    PhaseReport,
    Trajectory,
    TwoPointData,
    detect_phases,
    gradient_flow,
    init_network,
)
from reluflow.analysis import measure as ms
from reluflow.analysis import phases as ph
from reluflow.analysis import theory as th
from reluflow.engine.trajectory import EVENT_DTYPE


@cache
def run(delta: float, p: float, kappa: float = 1e-8, seed: int = 0, m: int = 300) -> Trajectory:
    """Exact flow to t = 1e30 with a dense grid over the first three phases (cached)."""
    data = TwoPointData(delta, p)
    horizon = 2 * th.plateau_escape_time(data, kappa, "leading") if th.regime(data) == "main" \
        else 2 * th.plateau_escape_time(TwoPointData(delta, 1 - p), kappa, "leading")
    times = np.concatenate([[0.0], np.linspace(horizon / 400, horizon, 400),
                            np.geomspace(horizon * 1.05, 1e30, 150)])
    return gradient_flow(init_network(m, 2, kappa, seed=seed), data, 1e30, times=times)


MAIN_CONFIGS = [(0.3, 0.7), (0.5, 0.6), (0.2, 0.8)]


@pytest.mark.parametrize(("delta", "p"), MAIN_CONFIGS)
def test_phases_in_order(delta: float, p: float) -> None:
    traj = run(delta, p)
    rep = detect_phases(traj, traj.data)
    assert rep.regime == "main"
    times = [rep.t_condensed, rep.t_escape, rep.t_plateau, rep.t_plateau_escape, rep.t_phase4]
    assert all(t is not None for t in times), rep
    assert times == sorted(times) and len(set(times)) == len(times), rep  # I < II < III < IV
    assert rep.t_reactivation is not None
    assert rep.t_escape < rep.t_reactivation < rep.t_plateau_escape  # type: ignore[operator]


def test_mirror_regime_swaps_roles() -> None:
    traj = run(0.3, 0.3)
    rep = detect_phases(traj, traj.data)
    assert rep.regime == "mirror"
    times = [rep.t_condensed, rep.t_escape, rep.t_plateau, rep.t_plateau_escape, rep.t_phase4]
    assert all(t is not None for t in times) and times == sorted(times), rep
    assert "negative" in rep.definitions["t_condensed"]
    assert rep.values["plateau_loss"] == pytest.approx(0.3, rel=0.1)  # plateau level p


def test_plateau_loss_approaches_one_minus_p() -> None:
    gaps = []
    for kappa in (1e-4, 1e-12):
        traj = run(0.3, 0.7, kappa)
        rep = detect_phases(traj, traj.data)
        gaps.append(rep.values["plateau_loss"] / (1 - 0.7) - 1)
    assert 0 < gaps[1] < gaps[0]
    assert gaps[1] < 0.03


def test_phase_times_none_when_not_reached() -> None:
    data = TwoPointData(0.3, 0.7)
    traj = gradient_flow(init_network(200, 2, 1e-8, seed=0), data, 30.0)
    rep = detect_phases(traj, data)
    assert rep.t_condensed is not None
    assert rep.t_escape is None and rep.t_plateau is None
    assert rep.t_plateau_escape is None and rep.t_phase4 is None
    assert math.isnan(rep.values["phase4_exponent"])


def test_report_dict_and_table() -> None:
    traj = run(0.3, 0.7)
    rep = detect_phases(traj, traj.data)
    dct = rep.to_dict()
    again = json.loads(json.dumps(dct))
    assert again["t_escape"] == pytest.approx(rep.t_escape)
    assert set(ph.PHASE_TIMES) <= set(again) and again["regime"] == "main"
    assert set(again["definitions"]) == set(ph.PHASE_TIMES)
    text = str(rep)
    for name in (*ph.PHASE_TIMES, "regime", "plateau_loss", "final_margin"):
        assert name in text
    assert len(text.splitlines()) == 2 + 1 + len(ph.PHASE_TIMES) + len(rep.values)
    assert isinstance(rep, PhaseReport)


def test_phase4_rate_and_final_margin() -> None:
    traj = run(0.3, 0.7)
    rep = detect_phases(traj, traj.data)
    assert rep.values["phase4_exponent"] == pytest.approx(1.0, abs=0.01)  # L ~ 1/(t log t)
    assert rep.values["phase4_constant"] == pytest.approx(1.0, abs=0.1)
    gamma = ms.normalized_margin(traj)
    assert gamma[-1] == pytest.approx(math.sin(0.3) / 4, rel=0.08)
    assert gamma[-1] < math.sin(0.3) / 4 + 1e-12  # never beyond the max margin
    j4 = traj.at(rep.t_phase4)  # type: ignore[arg-type]
    assert ms.max_margin_distance(traj, traj.data, -1) < ms.max_margin_distance(
        traj, traj.data, j4)


def test_group_stats_condensation_and_sliding() -> None:
    traj = run(0.3, 0.7)
    data = traj.data
    assert isinstance(data, TwoPointData)
    rep = detect_phases(traj, data)
    j = traj.at(0.5 * (rep.t_condensed + rep.t_escape))  # type: ignore[operator]
    g = ms.group_stats(traj, data, j)
    for s in g.values():
        assert sum(s.counts.values()) == s.n and s.alive + s.dead == s.n
    assert g["positive"].spread < 0.1
    assert g["positive"].align_mu > 0.99
    assert g["positive"].mass_active_minus > 0.99  # condensed on mu: active on both points
    # negative survivors hold on x+ (pattern 0) and slide along x+^perp
    assert g["negative"].counts["boundary"] > 0
    assert g["negative"].align_x_plus_perp > 0.99
    # on the plateau the positive group slides on x-^perp, deactivated on x-
    k = traj.at(0.5 * (rep.t_plateau + rep.t_plateau_escape))  # type: ignore[operator]
    gp = ms.group_stats(traj, data, k)["positive"]
    assert gp.align_x_minus_perp > 0.999 and gp.mass_active_minus < 1e-6
    assert gp.counts["boundary"] == gp.alive
    # simplification then increasing complexity
    assert ms.effective_directions(traj, j) < 1.1
    assert ms.effective_directions(traj, -1) > 1.3


def _synthetic(angles: list[float], signs: list[float], masses: list[float]) -> Trajectory:
    data = TwoPointData(0.3, 0.7)
    r = np.sqrt(np.asarray(masses) / 2)
    B = np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)[None]
    a = (np.asarray(signs) * r)[None]
    pre = np.einsum("tkd,nd->tkn", B, data.X)
    pattern = np.where(pre > 0, 1, -1).astype(np.int8)
    f = np.einsum("tk,tkn->tn", a, np.maximum(pre, 0))
    return Trajectory(t=np.zeros(1), loss=np.ones(1), f=f, a=a, B=B, pattern=pattern,
                      events=np.zeros(0, dtype=EVENT_DTYPE), drift=np.zeros(1),
                      neurons=np.arange(len(angles)), data=data)


def test_effective_directions_counts_clusters() -> None:
    one = _synthetic([0.0, 0.01, -0.01], [1, 1, 1], [1, 2, 3])
    assert ms.effective_directions(one) == pytest.approx(1.0)
    two = _synthetic([0.0, 0.01, 1.2, 1.21], [1, 1, -1, -1], [1, 1, 1, 1])
    assert ms.effective_directions(two) == pytest.approx(2.0)
    # same direction, opposite signs: two different functions
    signs = _synthetic([0.2, 0.2], [1, -1], [1, 3])
    q = np.array([0.25, 0.75])
    assert ms.effective_directions(signs) == pytest.approx(math.exp(-np.sum(q * np.log(q))))
    # dead neurons (inactive on both points) do not count
    dead = _synthetic([0.0, math.pi], [1, 1], [1, 100])
    assert ms.effective_directions(dead) == pytest.approx(1.0)


def test_simulated_fate_labels() -> None:
    traj = run(0.3, 0.7)
    data = traj.data
    assert isinstance(data, TwoPointData)
    sim = ms.simulated_fate(traj, data)
    assert set(sim) == {"condense", "slide", "die", "dead"}
    alive_end = np.any(traj.pattern[-1] == 1, axis=1)
    assert np.all(alive_end == np.isin(sim, ["condense", "slide"]))
    assert np.all(traj.a[0][sim == "condense"] > 0) and np.all(traj.a[0][sim == "slide"] < 0)


def test_general_dataset_report() -> None:
    X = np.array([[1.0, 0.0, 0.0], [0.9, 0.3, 0.1], [0.8, 0.1, 0.5]])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ds = Dataset(X, [1, -1, 1])
    traj = gradient_flow(init_network(60, 3, 1e-6, seed=2), ds, 1e12)
    rep = detect_phases(traj, ds)
    assert rep.regime == "general"
    assert rep.t_escape is not None and rep.t_phase4 is not None
    assert rep.t_condensed is None and rep.t_plateau is None
    json.dumps(rep.to_dict())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda t: detect_phases("traj", t.data), "traj must be"),
        (lambda t: detect_phases(t, TwoPointData(0.4, 0.7)), "data must be the data set"),
        (lambda t: detect_phases(t, t.data, spread_tol=0.0), "spread_tol"),
        (lambda t: detect_phases(t, t.data, drop=1.0), "drop"),
        (lambda t: detect_phases(t, t.data, phase4_margin=-1), "phase4_margin"),
        (lambda t: ms.group_stats(t, t.data, 10**6), "index"),
        (lambda t: ms.group_stats(t, t.data, 1.5), "index"),
        (lambda t: ms.effective_directions(t, -1, tol=0), "tol"),
        (lambda t: ms.simulated_fate(t, t.data, cond_tol=-1), "cond_tol"),
        (lambda t: ms.group_stats(t, Dataset(t.data.X, t.data.y, t.data.weights)),
         "TwoPointData"),
    ],
)
def test_invalid_inputs(call: object, match: str) -> None:
    traj = run(0.3, 0.7)
    with pytest.raises(ValueError, match=match):
        call(traj)  # type: ignore[operator]
