"""Tests of reluflow.analysis.geometry: the data plane, mu, regions, regimes and roles."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reluflow as rf
from reluflow.analysis import geometry as geo


@pytest.fixture(scope="module")
def data() -> rf.TwoPointData:
    return rf.TwoPointData(0.3, 0.7)


@pytest.fixture(scope="module")
def traj3() -> rf.Trajectory:
    """A short gradient-descent run in d = 3 (the plane is span{e1, e2})."""
    data = rf.TwoPointData(0.4, 0.65, d=3)
    params = rf.init_network(10, 3, 1e-2, seed=5)
    return rf.gradient_descent(params, data, 1e-2, 5.0, record_events=False)


def test_plane_coords_of_reference_vectors(data: rf.TwoPointData) -> None:
    xp, xm = data.x_plus, data.x_minus
    x_plus_perp = (xm - math.cos(data.delta) * xp) / math.sin(data.delta)
    B = np.stack([xp, xm, -xp, 2.5 * x_plus_perp])
    ang, nrm = geo.plane_coords(B, data)
    np.testing.assert_allclose(ang, [0.0, data.delta, math.pi, math.pi / 2], atol=1e-12)
    np.testing.assert_allclose(nrm, [1.0, 1.0, 1.0, 2.5], rtol=1e-12)


def test_plane_coords_projects_out_the_frozen_directions(traj3: rf.Trajectory) -> None:
    data = traj3.data
    B = traj3.B[-1]
    ang, nrm = geo.plane_coords(B, data)
    np.testing.assert_allclose(ang, np.arctan2(B[:, 1], B[:, 0]), atol=1e-12)
    np.testing.assert_allclose(nrm, np.hypot(B[:, 0], B[:, 1]), rtol=1e-12)
    assert geo.plane_coords(traj3.B, data)[0].shape == traj3.B.shape[:2]


def test_reference_angles_match_the_vectors(data: rf.TwoPointData) -> None:
    p = data.p
    xp, xm = data.x_plus, data.x_minus
    mu = p * xp - (1 - p) * xm
    ref = geo.reference_angles(data)
    assert ref["mu"] == pytest.approx(float(geo.plane_coords(mu, data)[0]), abs=1e-12)
    # x_-^perp is orthogonal to x_- and on the side of x_+
    th = ref["x-perp"]
    v = math.cos(th) * xp + math.sin(th) * (xm - math.cos(data.delta) * xp) / math.sin(data.delta)
    assert v @ xm == pytest.approx(0.0, abs=1e-12)
    assert v @ xp == pytest.approx(math.sin(data.delta), abs=1e-12)
    assert ref["x-"] == pytest.approx(data.delta)
    assert ref["x+perp"] == pytest.approx(math.pi / 2)


def test_plane_basis_needs_both_labels_and_non_parallel_points() -> None:
    with pytest.raises(ValueError, match="label"):
        geo.plane_basis(rf.Dataset([[1.0, 0.0], [0.0, 1.0]], [1, 1]))
    with pytest.raises(ValueError, match="parallel"):
        geo.plane_basis(rf.Dataset([[1.0, 0.0], [2.0, 0.0]], [1, -1]))
    with pytest.raises(ValueError, match="data must be"):
        geo.plane_basis("not data")  # type: ignore[arg-type]


def test_plane_coords_rejects_wrong_dimension(data: rf.TwoPointData) -> None:
    with pytest.raises(ValueError, match="B must have shape"):
        geo.plane_coords(np.ones((4, 3)), data)


@pytest.mark.parametrize(("delta", "p"), [(0.3, 0.7), (0.5, 0.3), (0.3, 0.52), (0.3, 0.45),
                                          (1.2, 0.9)])
def test_roles_follow_the_regime(delta: float, p: float) -> None:
    d = rf.TwoPointData(delta, p)
    r = geo.roles(d)
    reg = geo.regime(d)
    assert r.leader in (1, -1) and r.awaited == (1 if r.leader > 0 else 0)
    if reg == "main":
        assert r.target == pytest.approx(geo.mu_angle(d))
    elif reg == "mirror":
        assert math.cos(r.target - geo.mu_angle(d)) == pytest.approx(-1.0)
    else:  # both groups slide; the leader is the heavier class's group
        assert r.leader == (1 if p >= 0.5 else -1)
        ref = geo.reference_angles(d)
        assert r.target == pytest.approx(ref["x-perp"] if p >= 0.5 else ref["x+perp"])


def test_effective_data_is_the_mirrored_main_regime() -> None:
    main = rf.TwoPointData(0.3, 0.7)
    assert geo.effective_data(main) is main
    mirror = geo.effective_data(rf.TwoPointData(0.3, 0.25))
    assert mirror is not None and geo.regime(mirror) == "main"
    assert mirror.p == pytest.approx(0.75)
    assert geo.effective_data(rf.TwoPointData(0.3, 0.5)) is None  # mu active on x+ only


def test_plane_angles_agree_with_plane_coords(data: rf.TwoPointData) -> None:
    rng = np.random.default_rng(0)
    B = rng.normal(size=(50, 2))
    np.testing.assert_array_equal(geo.plane_angles(B, data), geo.plane_coords(B, data)[0])
    with pytest.raises(ValueError, match="TwoPointData"):
        geo.plane_angles(B, rf.Dataset(B[:2], [1, -1]))


def test_span_basis_is_orthonormal_and_spans_the_rows() -> None:
    X = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    Q = geo.span_basis(X)
    assert Q.shape == (3, 2)
    np.testing.assert_allclose(Q.T @ Q, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(X @ Q @ Q.T, X, atol=1e-12)
