"""Early alignment on any data: fields, growth rates, consistent directions, slope bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reluflow import Dataset, Params, TwoPointData, gradient_flow, init_network
from reluflow.analysis import theory as th
from reluflow.analysis.early import (
    DEAD,
    UNRESOLVED,
    EarlyAlignment,
    early_alignment,
    early_field,
    early_growth_rate,
    escape_slope_bounds,
    residual_scale,
)
from reluflow.engine.datasets import ClusterData


def test_field_and_rate_scale_with_the_loss() -> None:
    data = TwoPointData(0.3, 0.7)
    assert residual_scale("exp") == 1.0 and residual_scale("logistic") == 0.5
    A = np.array([[True, True], [False, True]])
    v = early_field(data, A)
    assert np.allclose(v[0], th.mu(data))
    assert np.allclose(v[1], -0.3 * data.x_minus)
    assert np.allclose(early_field(data, A, "logistic"), 0.5 * v)
    mu = th.mu(data)
    g = early_growth_rate(data, [3 * mu, th.x_plus_perp(data), -mu], [2.0, -1.0, -1.0])
    assert np.isclose(g[0], np.linalg.norm(mu))
    # x+^perp is active on x- only: a negative neuron there grows at (1-p) sin(delta)
    assert np.isclose(g[1], 0.3 * math.sin(0.3))
    assert g[2] == 0.0  # -mu is active on no point


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d: early_field(d, [1, 0]), "boolean mask"),
        (lambda d: early_field(d, [True]), "boolean mask"),
        (lambda d: early_field("x", [True, True]), "data must be a reluflow.Dataset"),
        (lambda d: early_field(d, [True, True], "hinge"), "loss must be one of"),
        (lambda d: early_growth_rate(d, [[0.0, 0.0]], [1.0]), "non-zero"),
        (lambda d: early_growth_rate(d, [[1.0, 0.0, 0.0]], [1.0]), "shape"),
        (lambda d: early_growth_rate(d, [[1.0, 0.0]], [1.0, 1.0]), "shape"),
        (lambda d: early_alignment(d, "params"), "starts must be None or a reluflow.Params"),
        (lambda d: early_alignment(d, init_network(3, 3, 1.0)), "d = data.d = 2"),
        (lambda d: early_alignment(d, n_starts=0), "n_starts must be an integer >= 1"),
        (lambda d: early_alignment(d, t_end=-1.0), "t_end must be a finite number > 0"),
        (lambda d: early_alignment(d, seed=-2), "seed must be an integer >= 0"),
        (lambda d: escape_slope_bounds([1.0]), "alignment must be an EarlyAlignment"),
    ],
)
def test_bad_input_is_refused(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(TwoPointData(0.3, 0.7))  # type: ignore[operator]


@pytest.mark.parametrize(("delta", "p"), [(0.3, 0.7), (0.5, 0.6), (0.2, 0.8)])
def test_two_point_main_regime_gives_mu_and_the_sliding_direction(delta: float, p: float) -> None:
    data = TwoPointData(delta, p)
    params = init_network(300, 2, 1e-3, seed=1)
    res = early_alignment(data, params)
    assert [c.sign for c in res.directions] == [1, -1]
    lead, slide = res.directions
    mu = th.mu(data)
    assert np.allclose(lead.direction, mu / np.linalg.norm(mu), atol=1e-12)
    assert math.isclose(lead.rate, float(np.linalg.norm(mu)), rel_tol=1e-12)
    assert lead.active.tolist() == [True, True] and not lead.boundary.any()
    assert np.allclose(slide.direction, th.x_plus_perp(data), atol=1e-12)
    assert math.isclose(slide.rate, (1 - p) * math.sin(delta), rel_tol=1e-12)
    assert slide.active.tolist() == [False, True] and slide.boundary.tolist() == [True, False]
    # each start's fate agrees with the closed-form Phase-I fate of the two-point theory
    fate = th.fate(data, params)
    far = th.fate_boundary_distance(data, params) > 1e-3
    expected = np.select([fate == "condense", fate == "slide"], [0, 1], DEAD)
    assert np.array_equal(res.labels[far], expected[far])
    assert sum(c.count for c in res.directions) == int(np.sum(res.labels >= 0))


def test_mirror_regime_is_led_by_the_negative_neurons() -> None:
    data = TwoPointData(0.5, 0.3)
    res = early_alignment(data, n_starts=300, seed=2)
    assert res.leading.sign == -1
    mu = th.mu(data)
    assert np.allclose(res.leading.direction, -mu / np.linalg.norm(mu), atol=1e-12)


def test_logistic_loss_halves_every_rate() -> None:
    data = ClusterData(0.3, 0.7, 0.05, n=4, seed=0)
    a = early_alignment(data, n_starts=200, seed=1)
    b = early_alignment(data, n_starts=200, seed=1, loss="logistic")
    assert np.allclose(b.rates, 0.5 * a.rates, rtol=1e-12)
    assert np.array_equal(a.labels, b.labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_direction_is_a_rest_point_of_the_early_flow(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = np.abs(rng.standard_normal((7, 3))) + 0.2 * rng.standard_normal((7, 3))
    y = np.where(rng.random(7) < 0.5, 1.0, -1.0)
    y[:2] = [1.0, -1.0]
    data = Dataset(X, y, rng.uniform(0.5, 1.5, 7))
    res = early_alignment(data, n_starts=300, seed=seed)
    assert res.directions, "some start must grow"
    r = data.weights * data.y
    for c in res.directions:
        u = c.direction
        assert math.isclose(float(np.linalg.norm(u)), 1.0, rel_tol=1e-12)
        pre = X @ u
        assert np.all(pre[c.active] > 0) and np.all(np.abs(pre[c.boundary]) < 1e-9)
        assert np.all(pre[~c.active & ~c.boundary] < 0)
        vA = (c.active * r) @ X
        # the field, less its components along the held points, is parallel to s u
        XZ = X[c.boundary]
        w = c.sign * vA
        if XZ.size:
            Q, _ = np.linalg.qr(XZ.T)
            w = w - Q @ (Q.T @ w)
        assert np.allclose(w, c.rate * u, atol=1e-12)
        assert c.rate > 0
    assert np.all(np.diff(res.rates) <= 0)
    assert set(np.unique(res.labels)) <= {DEAD, UNRESOLVED, *range(len(res.directions))}


def test_the_exact_flow_condenses_on_the_predicted_directions() -> None:
    """Small kappa: at t = 40 (f still ~1e-6) every neuron sits on its predicted direction."""
    data = ClusterData(0.3, 0.7, 0.04, n=3, seed=0)
    params = init_network(30, 2, 1e-10, seed=4)
    res = early_alignment(data, params)
    traj = gradient_flow(params, data, 40.0, times=[0.0, 40.0])
    assert float(np.max(np.abs(traj.f[-1]))) < 1e-4
    B = traj.B[-1]
    for k in np.flatnonzero(res.labels >= 0):
        c = res.directions[res.labels[k]]
        cos = float(B[k] @ c.direction / np.linalg.norm(B[k]))
        assert cos > math.cos(1e-2), (k, cos)
    dead = res.labels == DEAD
    assert np.all(~np.any(traj.pattern[-1][dead] == 1, axis=1))


def test_slope_bounds_order_and_single_direction() -> None:
    res = early_alignment(TwoPointData(0.3, 0.7), n_starts=200, seed=0)
    lo, hi = escape_slope_bounds(res)
    assert 0 < lo < hi
    one = EarlyAlignment(directions=res.directions[:1], labels=np.zeros(1, dtype=np.int64))
    assert escape_slope_bounds(one) == (lo, lo)
    none = EarlyAlignment(directions=[], labels=np.full(3, DEAD, dtype=np.int64))
    with pytest.raises(ValueError, match="every start died"):
        escape_slope_bounds(none)
    with pytest.raises(ValueError, match="every start died"):
        _ = none.leading


def test_zero_neurons_are_skipped() -> None:
    params = Params([0.0, 1.0], [[1.0, 0.0], [1.0, -0.1]])
    res = early_alignment(TwoPointData(0.3, 0.7), params)
    assert res.labels[0] == DEAD and res.labels[1] == 0
