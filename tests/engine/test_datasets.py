"""Data sets beyond two points: clusters, the sphere offsets, binary subsets, iris and digits."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from reluflow import Dataset, TwoPointData
from reluflow.engine.datasets import (
    ClusterData,
    binary_subset,
    digits_data,
    iris_data,
    linear_margin,
    sphere_offsets,
)


# --------------------------------------------------------------------------- sphere offsets
def test_sphere_offsets_angle_is_sigma_times_norm_in_any_dimension() -> None:
    rng = np.random.default_rng(0)
    c = rng.standard_normal(5)
    c /= np.linalg.norm(c)
    g = rng.standard_normal((20, 5))
    g -= np.outer(g @ c, c)
    x = sphere_offsets(c, g, 0.3)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-14)
    assert np.allclose(np.arccos(np.clip(x @ c, -1, 1)), 0.3 * np.linalg.norm(g, axis=1),
                       atol=1e-7)
    # the offset lies in the plane of c and g_j, on the side of g_j
    assert np.all(np.einsum("kd,kd->k", x - np.outer(x @ c, c), g) > 0)


def test_sphere_offsets_zero_sigma_and_zero_vector_give_the_centre() -> None:
    c = np.array([0.0, 1.0, 0.0])
    x = sphere_offsets(c, [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], 0.0)
    assert np.array_equal(x, np.tile(c, (2, 1)))
    assert np.array_equal(sphere_offsets(c, [[0.0, 0.0, 0.0]], 0.5), c[None, :])


@pytest.mark.parametrize(
    ("centre", "g", "sigma", "match"),
    [
        ([2.0, 0.0], [[0.0, 1.0]], 0.1, "unit vector"),
        ([1.0, 0.0], [[1.0, 1.0]], 0.1, "tangent"),
        ([1.0, 0.0], [[0.0, 1.0, 0.0]], 0.1, "shape"),
        ([1.0, 0.0], [[0.0, 1.0]], -0.1, "sigma must be >= 0"),
        ([1.0, 0.0], [[0.0, 1.0]], math.nan, "sigma"),
        ([1.0, math.inf], [[0.0, 1.0]], 0.1, "centre"),
    ],
)
def test_sphere_offsets_rejects_bad_input(centre: list[float], g: list[list[float]],
                                          sigma: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sphere_offsets(centre, g, sigma)


# --------------------------------------------------------------------------- clusters
@pytest.mark.parametrize("d", [2, 3, 6])
@pytest.mark.parametrize("n", [2, 7])
def test_clusters_have_rms_angle_sigma_weights_and_labels(d: int, n: int) -> None:
    data = ClusterData(0.4, 0.65, 0.05, n=n, d=d, seed=3)
    assert isinstance(data, Dataset)
    assert data.n == 2 * n and data.d == d
    assert np.allclose(np.linalg.norm(data.X, axis=1), 1.0, atol=1e-14)
    assert np.array_equal(data.y, np.repeat([1.0, -1.0], n))
    assert math.isclose(float(data.weights[:n].sum()), 0.65, rel_tol=1e-12)
    assert np.allclose(data.weights[:n], 0.65 / n) and np.allclose(data.weights[n:], 0.35 / n)
    ang = data.angles_to_centres()
    for sel in (slice(0, n), slice(n, 2 * n)):
        assert math.isclose(float(np.sqrt(np.mean(ang[sel] ** 2))), 0.05, rel_tol=1e-9)


def test_clusters_in_the_plane_are_centred_on_their_points() -> None:
    data = ClusterData(0.3, 0.7, 0.04, n=9, seed=1)
    phi = np.arctan2(data.X[:, 1], data.X[:, 0])
    assert abs(float(phi[:9].mean())) < 1e-15
    assert abs(float(phi[9:].mean()) - 0.3) < 1e-15


def test_clusters_move_continuously_with_sigma_and_reduce_to_two_points() -> None:
    base = TwoPointData(0.3, 0.7, d=3)
    zero = ClusterData(0.3, 0.7, 0.0, n=4, d=3, seed=2)
    assert np.allclose(zero.X, np.repeat(base.X, 4, axis=0), atol=1e-15)
    two = zero.two_point()
    assert isinstance(two, TwoPointData) and (two.delta, two.p, two.d) == (0.3, 0.7, 3)
    d1 = np.linalg.norm(ClusterData(0.3, 0.7, 0.01, n=4, d=3, seed=2).X - zero.X, axis=1)
    d2 = np.linalg.norm(ClusterData(0.3, 0.7, 0.02, n=4, d=3, seed=2).X - zero.X, axis=1)
    # the same draws scaled: chord = 2 sin(angle/2), so doubling sigma doubles it to O(sigma^3)
    assert np.allclose(d2, 2 * d1, rtol=1e-3)


def test_clusters_depend_on_the_seed_only_through_the_draws() -> None:
    a = ClusterData(0.3, 0.7, 0.05, n=5, seed=4)
    b = ClusterData(0.3, 0.7, 0.05, n=5, seed=np.random.default_rng(4))
    c = ClusterData(0.3, 0.7, 0.05, n=5, seed=5)
    assert np.array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sigma": -0.01}, "sigma must lie in"),
        ({"sigma": 0.15}, r"sigma must lie in \[0, delta/2\)"),
        ({"sigma": math.nan}, "sigma"),
        ({"n": 1}, "n must be an integer >= 2"),
        ({"d": 1}, "d must be an integer >= 2"),
        ({"p": 1.0}, "p must lie in"),
        ({"delta": 0.0}, "delta must lie in"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_clusters_reject_bad_parameters(kw: dict[str, float], match: str) -> None:
    args = {"delta": 0.3, "p": 0.7, "sigma": 0.05, **kw}
    with pytest.raises(ValueError, match=match):
        ClusterData(**args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- binary subsets
def test_binary_subset_keeps_two_classes_and_scales_to_unit_max_norm() -> None:
    X = np.array([[1.0, 0.0], [0.0, 4.0], [2.0, 2.0], [5.0, 5.0]])
    out = binary_subset(X, ["a", "b", "a", "c"], "b", "a")
    assert np.array_equal(out.y, [-1.0, 1.0, -1.0])
    assert np.allclose(out.X, X[:3] / 4.0)
    assert np.allclose(out.weights, 1 / 3)
    assert math.isclose(float(np.max(np.linalg.norm(out.X, axis=1))), 1.0)


@pytest.mark.parametrize(
    ("X", "target", "pos", "neg", "match"),
    [
        ([[1.0, 0.0]], [0], 0, 0, "different classes"),
        ([[1.0, 0.0], [0.0, 1.0]], [0, 1], 0, 2, "negative class 2 does not occur"),
        ([[1.0, 0.0], [0.0, 1.0]], [0, 1, 1], 0, 1, "target must have shape"),
        ([[0.0, 0.0], [0.0, 0.0]], [0, 1], 0, 1, "all zero"),
        ([[math.nan, 0.0], [0.0, 1.0]], [0, 1], 0, 1, "finite"),
    ],
)
def test_binary_subset_rejects_bad_input(X: list[list[float]], target: list[int], pos: int,
                                         neg: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        binary_subset(X, target, pos, neg)


# --------------------------------------------------------------------------- real data
def test_iris_setosa_vs_versicolor() -> None:
    data = iris_data()
    assert (data.n, data.d) == (100, 4)
    assert int(np.sum(data.y > 0)) == 50 and int(np.sum(data.y < 0)) == 50
    assert math.isclose(float(np.max(np.linalg.norm(data.X, axis=1))), 1.0, rel_tol=1e-12)
    assert np.all(data.X >= 0)  # measured lengths: every flower lies in the positive orthant
    other = iris_data("virginica", "setosa")
    assert int(np.sum(other.y > 0)) == 50 and other.n == 100


def test_binary_subset_per_class_draws_a_seeded_subsample() -> None:
    X = np.arange(20.0).reshape(10, 2) + 1.0
    t = np.array([0, 1] * 5)
    a = binary_subset(X, t, 0, 1, per_class=3, seed=4)
    b = binary_subset(X, t, 0, 1, per_class=3, seed=4)
    assert a.n == 6 and np.array_equal(a.X, b.X) and int(np.sum(a.y > 0)) == 3
    # every kept row is a row of X of the right class, in the original order, one scale
    scale = float(np.max(np.linalg.norm(a.X, axis=1)))
    idx = [int(np.flatnonzero(np.all(np.isclose(X / np.linalg.norm(X, axis=1)[:, None],
                                                x / np.linalg.norm(x)), axis=1))[0])
           for x in a.X]
    assert idx == sorted(idx)
    assert np.array_equal(np.where(t[idx] == 0, 1.0, -1.0), a.y)
    kept = X[idx]
    assert np.allclose(a.X, kept / float(np.max(np.linalg.norm(kept, axis=1))))
    assert scale == pytest.approx(1.0)
    assert binary_subset(X, t, 0, 1, per_class=5).n == 10
    with pytest.raises(ValueError, match="per_class must be at most the positive class size 5"):
        binary_subset(X, t, 0, 1, per_class=6)
    with pytest.raises(ValueError, match="per_class must be an integer >= 1"):
        binary_subset(X, t, 0, 1, per_class=0)


def test_digits_zero_vs_one() -> None:
    data = digits_data()
    assert (data.n, data.d) == (360, 64)
    assert (int(np.sum(data.y > 0)), int(np.sum(data.y < 0))) == (178, 182)
    assert math.isclose(float(np.max(np.linalg.norm(data.X, axis=1))), 1.0, rel_tol=1e-12)
    assert digits_data(3, 8).n == 357


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (iris_data, ("setosa", "rose"), "negative must be one of"),
        (iris_data, (1, "setosa"), "positive must be one of"),
        (iris_data, ("setosa", "setosa"), "different classes"),
        (digits_data, (0, 10), "digits in 0..9"),
        (digits_data, (-1, 1), "positive must be an integer >= 0"),
        (digits_data, (2, 2), "different classes"),
    ],
)
def test_real_data_rejects_bad_classes(fn: object, args: tuple[object, object],
                                       match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fn(*args)  # type: ignore[operator]


@pytest.mark.parametrize("fn", [iris_data, digits_data])
def test_real_data_names_scikit_learn_when_it_is_missing(
    fn: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="needs the optional package scikit-learn"):
        fn()  # type: ignore[operator]


def test_linear_margin_separates_apart_clusters_from_interleaved_ones() -> None:
    # against a brute-force maximum over a grid of the box [-1, 1]^2 with spacing h: the
    # grid misses the optimum by at most max_i |x_i|_1 h / 2 (min_i y_i w.x_i is Lipschitz)
    two = TwoPointData(0.3, 0.7)
    h = 2.0 / 400
    w = np.stack(np.meshgrid(*[np.linspace(-1, 1, 401)] * 2), axis=-1).reshape(-1, 2)
    brute = float(np.max(np.min((w @ two.X.T) * two.y, axis=1)))
    g = linear_margin(two)
    assert brute - 1e-12 <= g <= brute + np.max(np.abs(two.X).sum(axis=1)) * h / 2
    for sigma, n, seed in [(0.08, 8, 0), (0.07, 8, 0), (0.12, 8, 2), (0.08, 3, 0)]:
        data = ClusterData(0.3 if seed == 0 else 0.5, 0.7, sigma, n=n, seed=seed)
        ang = np.arctan2(data.X[:, 1], data.X[:, 0])
        apart = ang[data.y > 0].max() < ang[data.y < 0].min()  # in the plane: ranges apart
        assert (linear_margin(data) > 1e-9) == apart, (sigma, n, seed)
    # a point and its negative copy: not separable
    flipped = Dataset(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([1.0, -1.0]),
                      np.array([0.5, 0.5]))
    assert abs(linear_margin(flipped)) <= 1e-9
    with pytest.raises(ValueError, match="data must be a reluflow Dataset"):
        linear_margin("x")  # type: ignore[arg-type]
