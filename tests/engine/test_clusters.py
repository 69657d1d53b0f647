"""Two angular clusters around the book's two points: runs reach t_max, copies are one point.

The data are built as in the chapter "Beyond two points" (``n`` unit vectors around each of
:math:`x_\\pm`, centred Gaussian tangent offsets scaled to RMS angle ``sigma``), here in
the plane, where a linear classifier through the origin is an angular threshold: the data
are linearly separable exactly when every positive point's angle is below every
negative point's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from runchecks import check_run

from reluflow import Dataset, TwoPointData, gradient_flow, init_network
from reluflow.engine.flow import merge_duplicates

TIMES = np.concatenate([[0.0], np.linspace(0.25, 250.0, 1000),
                        np.geomspace(260.0, 1e30, 150)])


def clusters(delta: float, p: float, sigma: float, n: int, seed: int = 0) -> Dataset:
    """``n`` points at RMS angle ``sigma`` around each of the two points (plane, d = 2)."""
    base = TwoPointData(delta, p)
    rng = np.random.default_rng(seed)
    X, w = [], []
    for centre, weight in ((base.x_plus, base.p), (base.x_minus, 1.0 - base.p)):
        tangent = np.array([-centre[1], centre[0]])
        z = rng.standard_normal(n)
        z -= z.mean()
        z *= 1.0 / math.sqrt(float(np.mean(z**2)))
        ang = sigma * z
        X.append(np.cos(ang)[:, None] * centre + np.sin(ang)[:, None] * tangent)
        w.append(np.full(n, weight / n))
    return Dataset(np.concatenate(X), np.repeat([1.0, -1.0], n), np.concatenate(w))


def _linearly_separable(data: Dataset) -> bool:
    ang = np.arctan2(data.X[:, 1], data.X[:, 0])
    return bool(ang[data.y > 0].max() < ang[data.y < 0].min())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n, m, sigma", [(3, 24, 0.08), (8, 60, 0.07)])
def test_separable_clusters_reach_t_max(n: int, m: int, sigma: float) -> None:
    """Once stopped as "stiff" at t = 5e5 (n = 3) and t = 4.6e3 (n = 8): the late phase's
    stable step in tau stays put (margins equalising), which costs steps ~ log t only."""
    data = clusters(0.3, 0.7, sigma, n)
    assert _linearly_separable(data)
    params = init_network(m, 2, 1e-6, seed=0)
    tr = gradient_flow(params, data, 1e30, times=TIMES)
    check_run(tr, params)
    assert tr.info["stop"] is None and tr.t[-1] == 1e30
    assert tr.loss[-1] < 1e-25 * tr.loss[0]


@pytest.mark.timeout(120)
def test_interleaved_clusters_stop_stiff_with_the_measured_reason() -> None:
    """sigma = 0.08, n = 8: a positive point lies beyond a negative one in angle (not
    linearly separable); two points with opposite labels are held in balance and relax at a
    fixed rate in t, so the step in tau shrinks like 1/t: the run stops and says why."""
    data = clusters(0.3, 0.7, 0.08, 8)
    assert not _linearly_separable(data)
    params = init_network(60, 2, 1e-6, seed=0)
    tr = gradient_flow(params, data, 1e30, times=TIMES)
    check_run(tr, params)
    stop = tr.info["stop"]
    assert stop["reason"] == "stiff" and stop["alpha"] >= 0.5
    assert stop["steps_needed"] > 20_000 and tr.info["steps"] < 5000
    assert tr.t[-1] <= stop["t"] < 1e30


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", [3, 8])
def test_copies_of_a_point_share_every_event_time(n: int) -> None:
    """sigma = 0: every point n times.  The copies once got first reactivations 3.5 time
    units apart; now they are one point to the engine, so their events are identical."""
    data = clusters(0.3, 0.7, 0.0, n)
    params = init_network(24, 2, 1e-6, seed=0)
    tr = gradient_flow(params, data, 1e30, times=TIMES)
    check_run(tr, params)
    ev = tr.events
    assert ev.size
    for c in (0, 1):
        copies = [ev[ev["index"] == c * n + j] for j in range(n)]
        for e in copies[1:]:
            assert np.array_equal(e["t"], copies[0]["t"])
            assert np.array_equal(e["neuron"], copies[0]["neuron"])
            assert np.array_equal(e["kind"], copies[0]["kind"])
        assert np.all(tr.pattern[:, :, c * n:(c + 1) * n] == tr.pattern[:, :, c * n, None])
        assert np.all(tr.f[:, c * n:(c + 1) * n] == tr.f[:, c * n, None])
    two = gradient_flow(params, TwoPointData(0.3, 0.7), 1e30, times=TIMES)
    assert np.allclose(tr.loss, two.loss, rtol=1e-6, atol=0)


def test_merge_duplicates_sums_weights_and_keeps_labels_apart() -> None:
    data = Dataset([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [1, 1, -1, 1],
                   weights=[1, 2, 3, 4])
    merged, inv = merge_duplicates(data)
    assert inv is not None and inv.tolist() == [0, 0, 1, 2]
    assert merged.y.tolist() == [1.0, -1.0, 1.0]
    assert np.allclose(merged.weights, [0.3, 0.3, 0.4], rtol=1e-15)
    same, none = merge_duplicates(TwoPointData(0.3, 0.7))
    assert none is None and same.n == 2
