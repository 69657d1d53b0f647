"""Activation states: keys, held geometry, fields, how a neuron on boundaries goes on."""

from __future__ import annotations

import numpy as np
import pytest

from reluflow.engine.groups import (
    HeldCache,
    correct_invariant,
    fields,
    is_dead,
    lorentz_project,
    resolve,
    unique_states,
)

EPS = np.finfo(float).eps


def test_unique_states_key_any_number_of_points() -> None:
    """Rows differing only at point 99 (beyond any int64 base-3 code) stay distinct."""
    rng = np.random.default_rng(0)
    base = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=100)
    rows = np.tile(base, (6, 1))
    rows[1::2, 99] = -rows[1::2, 99] if base[99] != 0 else 1
    states, inv = unique_states(rows)
    assert states.shape == (2, 100)
    assert np.array_equal(states[inv], rows)
    assert unique_states(rows[:0])[0].shape == (0, 100)


def test_dead_rows() -> None:
    st = np.array([[-1, -1], [-1, 0], [1, -1]], dtype=np.int8)
    assert is_dead(st).tolist() == [True, False, False]


def test_held_projector_is_exactly_zero_on_a_full_rank_held_set() -> None:
    """Held on points spanning the data space: the field is exactly zero, not rounding."""
    rng = np.random.default_rng(1)
    Xr = rng.standard_normal((4, 3))
    y = np.ones(4)
    cache = HeldCache(Xr, y)
    geo = cache.get(np.array([True, True, True, False]))
    assert np.array_equal(geo.proj, np.zeros((3, 3)))
    st = np.array([[0, 0, 0, 1]], dtype=np.int8)
    v = fields(Xr, (st == 1).astype(float), rng.random(4), cache.rows(st))
    assert np.array_equal(v, np.zeros((1, 3)))


def test_held_projector_is_the_orthogonal_projector_of_the_complement() -> None:
    rng = np.random.default_rng(2)
    Xr = rng.standard_normal((5, 4))
    cache = HeldCache(Xr, np.ones(5))
    geo = cache.get(np.array([True, False, True, False, False]))
    P = geo.proj
    st = np.array([[0, 1, 0, -1, 1], [1, 1, -1, -1, 1]], dtype=np.int8)
    V = rng.standard_normal((2, 4))
    assert np.allclose(cache.rows(st).project(V), np.vstack([P @ V[0], V[1]]), atol=1e-15)
    assert np.allclose(P @ P, P, atol=1e-14) and np.allclose(P, P.T, atol=1e-15)
    assert np.allclose(P @ Xr[[0, 2]].T, 0.0, atol=1e-14)
    assert np.linalg.matrix_rank(P) == 2


def test_field_at_the_rounding_level_of_its_terms_is_zero() -> None:
    """Two copies of a point with opposite residuals: the field cancels to exactly zero."""
    Xr = np.array([[0.3, 0.4], [0.3, 0.4]])
    r = np.array([0.7, -0.7 * (1 + 2 * EPS)])
    none = HeldCache(Xr, np.ones(2)).rows(np.ones((1, 2), dtype=np.int8))
    v = fields(Xr, np.ones((1, 2)), r, none, 64 * EPS * np.linalg.norm(Xr, axis=1))
    assert np.array_equal(v, np.zeros((1, 2)))
    v2 = fields(Xr, np.ones((1, 2)), np.array([0.7, -0.6]), none,
                64 * EPS * np.linalg.norm(Xr, axis=1))
    assert np.allclose(v2, 0.1 * Xr[0])


def _one_boundary(a: float, r: np.ndarray, Xr: np.ndarray, y: np.ndarray,
                  active0: np.ndarray) -> int:
    """State resolve gives a neuron on the boundary of point 0 only."""
    out = resolve(Xr, y, active0[None, :].astype(float), np.array([[0]]), np.array([a]),
                  r[None, :])
    return int(out[0, 0])


def test_resolve_one_boundary_follows_the_filippov_rule() -> None:
    r"""On one boundary: hold iff both one-sided fields push in, else the side they lead to.

    Normal velocities (times a) of the inactive/active sides:
    :math:`u_- = a\,x_0^\top v_A`, :math:`u_+ = u_- + a r_0 |x_0|^2`.
    """
    Xr = np.array([[1.0, 0.0], [0.6, 0.8]])
    y = np.array([1.0, -1.0])
    act = np.array([False, True])
    for a in (-1.0, 1.0):
        for r0 in (0.5, 2.0):
            for r1 in (-0.5, -2.0, 0.5):
                r = np.array([r0, r1])
                u_minus = a * (Xr[0] @ (r1 * Xr[1]))
                u_plus = u_minus + a * r0
                got = _one_boundary(a, r, Xr, y, act)
                if u_minus > 0 > u_plus:
                    assert got == 0, (a, r)
                elif u_plus > 0 and u_minus > 0:
                    assert got == 1, (a, r)
                elif u_minus < 0 and u_plus < 0:
                    assert got == -1, (a, r)
                else:  # repelling: both sides lead away; the convention is inactive
                    assert got == -1, (a, r)


def test_resolve_releases_forced_points_to_their_side() -> None:
    Xr = np.array([[1.0, 0.0], [0.6, 0.8]])
    y = np.array([1.0, -1.0])
    r = np.array([[0.5, -0.5]])
    out = resolve(Xr, y, np.array([[0.0, 1.0]]), np.array([[0]]), np.array([-1.0]), r,
                  force_free=np.array([[True]]), prefer=np.array([[1]], dtype=np.int8))
    assert out[0, 0] == 1


def test_resolve_two_boundaries_holds_where_the_sliding_is_attracting() -> None:
    r"""Held on e1 and e2 (label +1, a < 0), active on x3 with components in (0, 1):
    :math:`\lambda_j = -r_3 x_{3j}/r_j \in (0, 1)`: both hold."""
    Xr = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.3, 0.4, np.sqrt(0.75)]])
    y = np.array([1.0, 1.0, -1.0])
    r = np.array([[1.0, 1.0, -1.0]])
    out = resolve(Xr, y, np.array([[0.0, 0.0, 1.0]]), np.array([[0, 1]]), np.array([-1.0]), r)
    assert out.tolist() == [[0, 0]]
    # a residual on x3 twice larger than on e2 pushes lambda_2 beyond 1: e2 is released
    r2 = np.array([[1.0, 0.3, -1.0]])
    out2 = resolve(Xr, y, np.array([[0.0, 0.0, 1.0]]), np.array([[0, 1]]), np.array([-1.0]), r2)
    assert out2[0, 0] == 0 and out2[0, 1] == 1


def test_lorentz_projection_and_invariant_correction() -> None:
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 3, 3)) * 1e-4
    G = np.zeros((5, 3, 3))
    G[:, 0, 1:] = rng.standard_normal((5, 2))
    G[:, 1:, 0] = G[:, 0, 1:]
    from scipy.linalg import expm

    Phi = np.stack([expm(g) for g in G]) + A
    Pp = lorentz_project(Phi)
    J = np.diag([1.0, -1.0, -1.0])
    assert np.allclose(np.swapaxes(Pp, 1, 2) @ J @ Pp, J, atol=1e-13)
    Z = rng.standard_normal((50, 4))
    c = Z[:, 0] ** 2 - (Z[:, 1:] ** 2).sum(1)
    Zp = Z * (1 + 1e-6 * rng.standard_normal((50, 1)))
    Zc = correct_invariant(Zp, c)
    cc = Zc[:, 0] ** 2 - (Zc[:, 1:] ** 2).sum(1)
    size = Zc[:, 0] ** 2 + (Zc[:, 1:] ** 2).sum(1)
    assert np.all(np.abs(cc - c) <= 8 * EPS * size)
    assert np.allclose(Zc, Zp, rtol=1e-5)
    # the move keeps beta's direction, so a held neuron stays on its boundary
    ratio = Zc[:, 1:] / Zp[:, 1:]
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-14)


@pytest.mark.parametrize("dup", [1.0, 2.0])
def test_resolve_on_coinciding_boundaries(dup: float) -> None:
    """Two points on one ray (duplicate or collinear) are on the same boundary: the held set
    is rank deficient and the pseudo-inverse splits the coefficients; labels that differ
    can never hold."""
    Xr = np.array([[1.0, 0.0], [dup, 0.0], [0.6, 0.8]])
    y = np.array([1.0, 1.0, -1.0])
    r = np.array([[0.5, 0.5, -0.5]])
    out = resolve(Xr, y, np.array([[0.0, 0.0, 1.0]]), np.array([[0, 1]]), np.array([-1.0]), r)
    assert out[0, 0] == out[0, 1]
    y2 = np.array([1.0, -1.0, -1.0])
    r2 = np.array([[0.5, -0.5, -0.5]])
    out2 = resolve(Xr, y2, np.array([[0.0, 0.0, 1.0]]), np.array([[0, 1]]), np.array([-1.0]),
                   r2)
    assert out2[0, 1] != 0  # a < 0 can only hold label +1 points (a r_j < 0)
