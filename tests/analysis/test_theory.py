"""Tests of reluflow.analysis.theory: closed forms, fates vs the exact flow, max margin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reluflow import Dataset, Params, TwoPointData, gradient_flow, init_network
from reluflow.analysis import measure as ms
from reluflow.analysis import phases as ph
from reluflow.analysis import theory as th
from reluflow.engine.network import network_output


# --------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(("delta", "p"), [(0.3, 0.7), (0.1, 0.6), (1.2, 0.4)])
def test_geometry_vectors(delta: float, p: float) -> None:
    d = TwoPointData(delta, p, d=3)
    m = th.mu(d)
    np.testing.assert_allclose(m, p * d.x_plus - (1 - p) * d.x_minus, atol=1e-15)
    xm, xp = th.x_minus_perp(d), th.x_plus_perp(d)
    assert abs(xm @ d.x_minus) < 1e-15 and abs(xp @ d.x_plus) < 1e-15
    assert xm @ d.x_plus == pytest.approx(math.sin(delta))
    assert xp @ d.x_minus == pytest.approx(math.sin(delta))
    assert np.linalg.norm(xm) == pytest.approx(1.0) and np.linalg.norm(xp) == pytest.approx(1.0)
    assert th.mu_angle(d) == pytest.approx(math.atan2(m[1], m[0]))
    assert th.condensation_rate(TwoPointData(delta, p)) == pytest.approx(
        math.sqrt(p**2 + (1 - p) ** 2 - 2 * p * (1 - p) * math.cos(delta)))


def test_mu_general_dataset() -> None:
    ds = Dataset([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1, -1, 1], weights=[1, 2, 1])
    np.testing.assert_allclose(th.mu(ds), [0.5, -0.25])


def test_regions_match_angle_intervals() -> None:
    d = TwoPointData(0.4, 0.7)
    phi = np.linspace(-math.pi, math.pi, 2001)[:-1] + 1e-4
    B = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    got = th.regions_of(B, d)
    bounds = th.region_bounds(d)
    for name, (lo, hi) in bounds.items():
        inside = (_wrap(phi - lo) > 0) & (_wrap(phi - lo) < hi - lo)
        assert np.all(got[inside] == name), name
    np.testing.assert_allclose(th.plane_angles(B, d), _wrap(phi), atol=1e-12)


def _wrap(x: np.ndarray) -> np.ndarray:
    return np.mod(x + math.pi, 2 * math.pi) - math.pi


def test_regime_classification() -> None:
    assert th.regime(0.3, 0.7) == "main"
    assert th.regime(TwoPointData(0.3, 0.7)) == "main"
    assert th.regime(1.0, 0.6) == "mu-plus-only"  # 0.6 cos 1 = 0.32 < 0.4 < 0.6
    assert th.regime(0.3, 0.3) == "mirror"
    # regime boundaries follow the sign of mu . x_- and mu . x_+
    for delta in (0.1, 0.5, 1.0, 1.4):
        for p in np.linspace(0.05, 0.95, 19):
            d = TwoPointData(delta, float(p))
            m = th.mu(d)
            r = th.regime(d)
            assert (r == "main") == (m @ d.x_minus > 0)
            assert (r == "mirror") == (m @ d.x_plus <= 0)


# --------------------------------------------------------------------------- fate
def _neuron(angle: float, sign: float, r: float = 1e-6) -> tuple[float, list[float]]:
    return sign * r, [r * math.cos(angle), r * math.sin(angle)]


def test_fate_rules_main_regime() -> None:
    d = TwoPointData(0.3, 0.7)
    am = th.mu_angle(d)
    cases = [
        (0.0, +1, "condense"), (-1.5, +1, "condense"), (1.5, +1, "condense"),
        (math.pi / 2 + 0.1, +1, "die"), (math.pi, +1, "dead"),
        (math.pi / 2 + 0.1, -1, "slide"), (1.0, -1, "slide"), (am + 0.05, -1, "slide"),
        (am - 0.05, -1, "die"), (-1.5, -1, "die"), (-2.0, -1, "dead"),
    ]
    rows = [_neuron(a, s) for a, s, _ in cases]
    params = Params([r[0] for r in rows], [r[1] for r in rows])
    got = th.fate(d, params)
    assert list(got) == [c[2] for c in cases]
    assert set(got) <= set(th.FATES)


def test_fate_boundaries_other_regimes() -> None:
    d = TwoPointData(1.0, 0.6)  # mu-plus-only: both groups slide, boundary at delta - pi/2
    b = th.fate_boundaries(d)
    assert b["positive"] == (-math.pi / 2, math.pi / 2)
    assert b["negative"][0] == pytest.approx(1.0 - math.pi / 2)
    d = TwoPointData(0.3, 0.3)  # mirror: positive upper boundary at the angle of -mu
    b = th.fate_boundaries(d)
    assert b["positive"][1] == pytest.approx(th.mu_angle(d) + math.pi)


#: Configurations for the simulated fate: main regime, mirror and mu-plus-only.
FATE_CONFIGS = [(0.3, 0.7, 0, 2), (0.5, 0.6, 1, 2), (0.2, 0.8, 2, 2), (0.3, 0.3, 3, 2),
                (1.0, 0.6, 4, 2), (0.3, 0.7, 5, 4)]


@pytest.mark.parametrize(("delta", "p", "seed", "dim"), FATE_CONFIGS)
def test_fate_matches_exact_flow(delta: float, p: float, seed: int, dim: int) -> None:
    data = TwoPointData(delta, p, d=dim)
    params = init_network(300, dim, 1e-8, seed=seed)
    traj = gradient_flow(params, data, 1e4)
    pred = th.fate(data, params)
    sim = ms.simulated_fate(traj, data)
    far = th.fate_boundary_distance(data, params) > 1e-6
    assert far.sum() >= 290
    bad = np.nonzero(far & (pred != sim))[0]
    assert bad.size == 0, list(zip(pred[bad], sim[bad], strict=True))
    # each predicted fate occurs, so the comparison is not vacuous
    expected = {"die", "dead", "slide"} | ({"condense"} if th.regime(data) != "mu-plus-only"
                                           else set())
    assert set(pred) == expected


def test_fate_boundary_distance() -> None:
    d = TwoPointData(0.3, 0.7)
    am = th.mu_angle(d)
    rows = [_neuron(am + 1e-3, -1), _neuron(0.2, +1), _neuron(math.pi, +1)]
    params = Params([r[0] for r in rows], [r[1] for r in rows])
    dist = th.fate_boundary_distance(d, params)
    assert dist[0] == pytest.approx(1e-3, rel=1e-6)
    assert dist[1] == pytest.approx(math.pi / 2 - 0.2)
    assert dist[2] == math.inf


# --------------------------------------------------------------------------- rates and times
def test_growth_coefficients_predict_linear_loss_drop() -> None:
    """L(0) - L(t) = ||mu|| e^{2||mu|| t} sum c_k^2 / 4 while f is tiny."""
    data = TwoPointData(0.3, 0.7)
    params = init_network(400, 2, 1e-6, seed=5)
    nm = th.condensation_rate(data)
    c = th.growth_coefficients(data, params)
    assert np.all(c[th.fate(data, params) != "condense"] == 0)
    t = np.array([0.0, 12.0, 15.0])
    traj = gradient_flow(params, data, 15.0, times=t)
    drop = traj.loss[0] - traj.loss[1:]
    pred = nm * np.exp(2 * nm * t[1:]) * np.sum(c**2) / 4
    np.testing.assert_allclose(drop, pred, rtol=0.02)


def test_saddle_escape_time_and_slope() -> None:
    data = TwoPointData(0.3, 0.7)
    nm = th.condensation_rate(data)
    t_esc = {}
    for kappa in (1e-6, 1e-12):
        params = init_network(300, 2, kappa, seed=0)
        times = np.concatenate([[0.0], np.linspace(1.0, 80.0, 400)])
        traj = gradient_flow(params, data, 80.0, times=times)
        rep = ph.detect_phases(traj, data)
        assert rep.t_escape is not None
        t_esc[kappa] = rep.t_escape
        # the O(1) term from the actual initialization
        assert rep.t_escape == pytest.approx(th.saddle_escape_time(data, params=params), abs=0.3)
        # the expected value for Gaussian init (random fluctuation of sum c^2 ~ 1/sqrt(m))
        assert rep.t_escape == pytest.approx(th.saddle_escape_time(data, kappa, m=300), abs=0.6)
    slope = (t_esc[1e-12] - t_esc[1e-6]) / math.log(1e6)
    assert slope == pytest.approx(1 / nm, rel=0.03)
    assert th.saddle_escape_time(data, 1e-6) == pytest.approx(math.log(1e6) / nm)


def test_logistic_loss_escape_time_and_plateau_level() -> None:
    """The logistic flow near the origin is the exponential one at half speed (c = 2)."""
    data = TwoPointData(0.3, 0.7)
    level = th.plateau_level(data, "logistic")
    assert level == pytest.approx(0.3 * math.log(2.0))
    gaps = []
    for kappa in (1e-6, 1e-12):
        params = init_network(300, 2, kappa, seed=0)
        t_max = 1.2 * th.horizon(0.3, 0.7, kappa, "logistic")
        times = np.concatenate([[0.0], np.linspace(0.5, t_max, 1200)])
        traj = gradient_flow(params, data, t_max, times=times, loss="logistic")
        rep = ph.detect_phases(traj, data)
        assert rep.t_escape is not None and rep.t_plateau_escape is not None
        # the exponential loss's tolerances (0.3 and 0.6, see above) stretched by c = 2
        assert rep.t_escape == pytest.approx(
            th.saddle_escape_time(data, params=params, loss="logistic"), abs=0.6)
        assert rep.t_escape == pytest.approx(
            th.saddle_escape_time(data, kappa, m=300, loss="logistic"), abs=1.2)
        gaps.append(rep.values["plateau_loss"] - level)
    # the loss creeps down to the level from above, closer for a longer plateau
    assert 0.0 < gaps[1] < gaps[0]
    for name, level_exp in (("main", 0.3), ("mirror", 0.3), ("intermediate", 0.4)):
        d = {"main": TwoPointData(0.3, 0.7), "mirror": TwoPointData(0.3, 0.3),
             "intermediate": TwoPointData(1.0, 0.6)}[name]
        assert th.plateau_level(d) == pytest.approx(level_exp)
        assert th.plateau_level(d, "logistic") == pytest.approx(level_exp * math.log(2.0))
    assert th.loss_at_origin("exp") == 1.0
    with pytest.raises(ValueError, match="loss"):
        th.plateau_level(data, "hinge")
    with pytest.raises(ValueError, match="drop must be below"):
        th.saddle_escape_time(data, 1e-6, drop=0.9, loss="logistic")


def test_escape_rate_regimes() -> None:
    assert th.escape_rate(TwoPointData(0.3, 0.7)) == pytest.approx(
        th.condensation_rate(TwoPointData(0.3, 0.7)))
    assert th.escape_rate(TwoPointData(1.0, 0.6)) == pytest.approx(0.6 * math.sin(1.0))


def test_plateau_level_and_reactivation() -> None:
    d = TwoPointData(0.3, 0.7)
    assert th.plateau_level(d) == pytest.approx(0.3)
    assert th.plateau_level(TwoPointData(0.3, 0.3)) == pytest.approx(0.3)
    assert th.plateau_level(TwoPointData(1.0, 0.6)) == pytest.approx(0.4)
    thr = th.reactivation_threshold(d)
    assert thr == pytest.approx(math.log(0.7 / (0.3 * math.cos(0.3))))
    got = th.reactivation_condition(d, [[thr - 1e-9, 0.0], [thr + 1e-9, 0.0], [thr, 0.5]])
    assert list(got) == [False, True, True]


def test_plateau_escape_formulas() -> None:
    d = TwoPointData(0.3, 0.7)
    nm = th.condensation_rate(d)
    s_notes = (1 - math.sin(0.3)) / nm + 1 / 0.3
    assert th.plateau_escape_slope(d, "leading") == pytest.approx(s_notes)
    assert th.plateau_escape_time(d, 1e-6, "leading") == pytest.approx(s_notes * math.log(1e6))
    # the book's correction is positive and vanishes slowly as kappa -> 0
    s1 = th.plateau_escape_slope(d, "corrected", kappa=1e-4)
    s2 = th.plateau_escape_slope(d, "corrected", kappa=1e-30)
    s3 = th.plateau_escape_slope(d, "corrected", kappa=1e-300)
    assert s1 > s2 > s3 > s_notes
    # the slope is the derivative of the time
    ell = math.log(1e8)
    num = (th.plateau_escape_time(d, math.exp(-(ell + 0.01)))
           - th.plateau_escape_time(d, math.exp(-(ell - 0.01)))) / 0.02
    assert th.plateau_escape_slope(d, "corrected", kappa=1e-8) == pytest.approx(num, rel=1e-6)


def test_phase4_loss_and_final_margin() -> None:
    d = TwoPointData(0.3, 0.7)
    assert th.final_margin(d) == pytest.approx(math.sin(0.3) / 4)
    t = np.array([10.0, 1e5, 1e20])
    L = th.phase4_loss(d, t)
    np.testing.assert_allclose(L * 4 * th.final_margin(d) * t * np.log(t), 1.0)
    dirs = th.final_directions(d)
    assert th.plane_angles(dirs["positive"], d) == pytest.approx(0.3 - math.pi / 2)
    assert th.plane_angles(dirs["negative"], d) == pytest.approx(math.pi / 2)


# --------------------------------------------------------------------------- max margin
@pytest.mark.parametrize("delta", [0.1, 0.3, 0.5, 1.0, 1.4])
def test_max_margin_two_points(delta: float) -> None:
    d = TwoPointData(delta, 0.7)
    res = th.max_margin(d, m_dirs=360)
    assert res.margin == pytest.approx(math.sin(delta) / 4, rel=1e-9)
    ang = th.plane_angles(res.directions, d)
    pos = res.signs > 0
    np.testing.assert_allclose(ang[pos], delta - math.pi / 2, atol=1e-6)
    np.testing.assert_allclose(ang[~pos], math.pi / 2, atol=1e-6)
    assert res.masses[pos].sum() == pytest.approx(0.5, abs=1e-6)
    _check_realized(res, d)


def _check_realized(res: th.MaxMarginResult, d: Dataset) -> None:
    f = network_output(res.params, d.X)
    assert res.params.sq_norm() == pytest.approx(1.0)
    assert float(np.min(d.y * f)) == pytest.approx(res.margin, rel=1e-9)


def test_max_margin_general_data_beats_grid_and_is_realized() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ds = Dataset(X, [1, 1, -1, -1, 1])
    res = th.max_margin(ds, m_dirs=400, seed=1)
    assert res.margin >= res.lp_margin > 0
    _check_realized(res, ds)
    # a random network never beats it
    for k in range(200):
        P = init_network(6, 3, 1.0, seed=k)
        marg = float(np.min(ds.y * network_output(P, ds.X))) / P.sq_norm()
        assert marg <= res.margin + 1e-9


# --------------------------------------------------------------------------- invalid input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: th.regime(0.0, 0.5), "delta"),
        (lambda: th.regime(2.0, 0.5), "delta"),
        (lambda: th.regime(0.3, 1.5), "p"),
        (lambda: th.regime(0.3), "p must be given"),
        (lambda: th.regime(TwoPointData(0.3, 0.7), 0.5), "p must be omitted"),
        (lambda: th.fate(Dataset([[1.0, 0.0]], [1]), init_network(3, 2, 1e-3)), "TwoPointData"),
        (lambda: th.fate(TwoPointData(2.0, 0.7), init_network(3, 2, 1e-3)), "delta"),
        (lambda: th.fate(TwoPointData(0.3, 0.7), init_network(3, 3, 1e-3)), "params.B"),
        (lambda: th.fate(TwoPointData(0.3, 0.7), "not params"), "params"),
        (lambda: th.saddle_escape_time(TwoPointData(0.3, 0.7), 2.0), "kappa"),
        (lambda: th.saddle_escape_time(TwoPointData(0.3, 0.7), 1e-3, drop=1.5), "drop"),
        (lambda: th.saddle_escape_time(TwoPointData(0.3, 0.7), 1e-3, m=0), "m must"),
        (lambda: th.saddle_escape_time(TwoPointData(0.3, 0.7)), "kappa must be given"),
        (lambda: th.saddle_escape_time(TwoPointData(0.3, 0.7), 1e-3,
                                       params=init_network(3, 2, 1e-3)), "either params"),
        (lambda: th.saddle_escape_time(TwoPointData(1.0, 0.6), 1e-3, m=10), "main regime"),
        (lambda: th.plateau_escape_slope(TwoPointData(0.3, 0.7), "other"), "formula"),
        (lambda: th.plateau_escape_slope(TwoPointData(0.3, 0.7), "corrected"), "kappa"),
        (lambda: th.plateau_escape_slope(TwoPointData(0.3, 0.3), "leading"), "main regime"),
        (lambda: th.phase4_loss(TwoPointData(0.3, 0.7), [0.5]), "t must be > 1"),
        (lambda: th.max_margin(TwoPointData(0.3, 0.7), m_dirs=3), "m_dirs"),
        (lambda: th.max_margin(Dataset([[1.0, 0.0], [0.0, 1.0]], [1, 1])), "both labels"),
        (lambda: th.plane_angles(np.ones((2, 3)), TwoPointData(0.3, 0.7)),
         r"B must have shape \(\.\.\., d\)"),
        (lambda: th.reactivation_condition(TwoPointData(0.3, 0.7), [1.0]), "shape"),
    ],
)
def test_invalid_inputs(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
