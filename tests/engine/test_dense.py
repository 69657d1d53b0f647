"""Step polynomials: DOP853 dense output in monomial form against scipy's own, roots, bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import DOP853

from reluflow import Dataset, TwoPointData, init_network
from reluflow.engine import dense as dp
from reluflow.engine.coupled import Problem, System, integrate_step
from reluflow.engine.groups import HeldCache
from reluflow.engine.stepper import Neurons
from reluflow.engine.tolerances import Tolerances

EPS = np.finfo(float).eps


def _dop853_steps(fun, y0, t_end):  # type: ignore[no-untyped-def]
    solver = DOP853(fun, 0.0, np.asarray(y0, dtype=float), t_end, rtol=1e-8, atol=1e-10)
    out = []
    while solver.status == "running":
        solver.step()
        out.append(solver.dense_output())
    return out


def test_monomial_form_equals_scipy_dense_output() -> None:
    """c = T (y0, F0..F6) reproduces Dop853DenseOutput at any point of every step."""
    steps = _dop853_steps(lambda t, y: np.array([y[1], -y[0] - 0.1 * y[1] ** 3, np.cos(t)]),
                          [1.0, 0.0, 0.5], 20.0)
    assert len(steps) > 5
    x = np.linspace(0.0, 1.0, 17)
    for sol in steps:
        c = dp.monomial(sol)
        ours = dp.horner(c[:, None, :], x[:, None])  # (17, 3)
        ref = sol(sol.t_old + x * sol.h).T
        scale = np.abs(sol.y_old) + np.abs(np.asarray(sol.F)).sum(axis=0)
        assert np.all(np.abs(ours - ref) <= 64 * EPS * scale)


def _two_group_step():  # type: ignore[no-untyped-def]
    """One engine step with both kinds of rows: a propagated group and direct neurons."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 3))
    y = np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
    data = Dataset(X, y)
    prob = Problem(X, y, data.weights, "exp", Tolerances(rtol=1e-8), HeldCache(X, y))
    B = rng.standard_normal((12, 3)) * 0.3
    B[:6] = np.abs(B[:6]) * np.sign(X[0])  # six neurons with one shared state: propagated
    B[:6] += 0.01 * rng.standard_normal((6, 3))
    Z = np.column_stack([rng.standard_normal(12) * 0.3, B])
    status = np.where(B @ X.T > 0, 1, -1).astype(np.int8)
    status[:6] = status[0]
    nrn = Neurons(Z, status, Z[:, 0] ** 2 - (Z[:, 1:] ** 2).sum(1), np.arange(12))
    system = System.build(prob, Z, status, nrn.alive)
    return system, integrate_step(system, 0.3, 1.5, 0.5), nrn


def test_step_propagators_and_neurons_equal_scipy_dense_output() -> None:
    """phi_at / zd_coef / frozen_at evaluate exactly scipy's DenseOutput of the step."""
    system, step, nrn = _two_group_step()
    assert system.gp >= 1 and system.md >= 1
    D1 = system.prob.D1
    x = np.linspace(0.0, 1.0, 9)
    for xv in x:
        ref = step.dense(step.s0 + xv * step.h)
        Phi_ref, Zd_ref = system.split(ref)
        Phi = step.phi_at(np.arange(system.gp), np.full(system.gp, xv))
        # phi_at is Lorentz-projected: equal to the dense output to the integration error
        assert np.allclose(Phi, Phi_ref, rtol=0, atol=1e-7)
        Zd = dp.horner(step.zd_coef(), xv)
        assert np.allclose(Zd, Zd_ref, rtol=0, atol=64 * EPS * (1 + np.abs(Zd_ref).max()))
        idx = system.d_idx
        assert np.allclose(step.frozen_at(idx, nrn.Z[idx], xv), Zd_ref, atol=1e-14)
    assert step.coef.shape == (8, system.gp * D1 * D1 + system.md * D1)


def test_output_polynomial_is_the_output_of_the_dense_state() -> None:
    """f_coef (degree 14) reproduces f(x_i) computed from the dense state at any x."""
    system, step, _ = _two_group_step()
    prob = system.prob
    for xv in np.linspace(0.0, 1.0, 7):
        Phi, Zd = system.split(step.dense(step.s0 + xv * step.h))
        f = np.zeros(prob.Xr.shape[0])
        for q in range(system.gp):
            w = (Phi[q] @ system.S[q] @ Phi[q].T)[0, 1:]  # sum over members of a_k beta_k
            f += system.g_active[q] * (prob.Xr @ w)
        f += (system.d_active * (Zd[:, 1:] @ prob.Xr.T)).T @ Zd[:, 0]
        assert np.allclose(step.f_at(np.array([xv]))[0], f, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mult", [1, 3, 5])
@pytest.mark.parametrize("root", [0.013, 0.5, 0.77])
def test_first_root_stops_where_the_polynomial_is_rounding(mult: int, root: float) -> None:
    """A crossing of multiplicity 1, 3 or 5 (p = (root - u)^k, tangential for k > 1) is
    returned where Horner cannot tell p from zero, within the distance that implies, in
    at most 20 Newton steps (27-28 for k = 3 and 5 when it refined to a few ulps)."""
    coef = np.zeros(8)
    c = np.polynomial.polynomial.polypow([root, -1.0], mult)
    coef[: c.size] = c
    zero = 16 * np.finfo(float).eps * np.abs(coef).sum()
    calls = []
    real = dp.horner
    mp = pytest.MonkeyPatch()
    mp.setattr(dp, "horner", lambda cf, x: calls.append(1) or real(cf, x))
    try:
        got = dp.first_root(coef[None, :], np.array([0.0]))[0]
    finally:
        mp.undo()
    assert abs(real(coef, got)) <= zero
    assert abs(got - root) <= 1.01 * zero ** (1 / mult)
    assert len(calls) <= 2 * 20  # two Horner evaluations per Newton step


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.floats(-10, 10), min_size=8, max_size=8))
def test_bernstein_minimum_bounds_the_polynomial(c: list[float]) -> None:
    coef = np.array(c)[:, None]
    grid = np.linspace(0, 1, 2001)
    vals = dp.horner(coef, grid[None, :])[0]
    assert dp.bernstein_min(coef)[0] <= vals.min() + 1e-12 * (1 + np.abs(coef).sum())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.floats(-5, 5), min_size=8, max_size=8), st.floats(0, 0.9),
       st.floats(0.01, 1.0))
def test_shift_is_the_polynomial_on_the_subinterval(c: list[float], x0: float,
                                                    w: float) -> None:
    coef = np.array([c])
    sh = dp.shift(coef, np.array([x0]), np.array([w]))
    u = np.linspace(0, 1, 11)
    a = dp.horner(sh.T, u[None, :])[0]
    b = dp.horner(coef.T, (x0 + w * u)[None, :])[0]
    assert np.allclose(a, b, rtol=1e-11, atol=1e-11 * (1 + np.abs(coef).sum()))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1, 1.3), min_size=1, max_size=6), st.floats(0.1, 3))
def test_first_root_finds_the_first_downward_crossing(roots: list[float], lead: float) -> None:
    """p(u) = lead * prod(r_j - u): first crossing from + to - is the smallest root > 0
    of odd multiplicity in (0, 1] -- the grid never steps over it."""
    rts = np.array(roots)
    coef = np.array([lead])
    for r in rts:
        coef = np.polynomial.polynomial.polymul(coef, [r, -1.0])
    pad = np.zeros(8)
    pad[: coef.size] = coef
    tol = np.array([1e-12])
    got = dp.first_root(pad[None, :], tol)[0]
    u = np.linspace(0, 1, 20001)
    vals = dp.horner(pad[:, None], u[None, :])[0]
    below = np.flatnonzero(vals < -tol[0])
    if below.size == 0:
        assert got == np.inf
    else:
        assert np.isfinite(got)
        assert got <= u[below[0]] + 1e-12
        assert abs(dp.horner(pad[:, None], np.array([got]))[0]) <= 1e-9 or got == 0.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 40))
def test_first_root_by_group_keeps_each_group_s_earliest_root(seed: int, groups: int,
                                                             rows: int) -> None:
    """With ``group``, every group's earliest root (and its row, ties included) is the one
    found without it, bit for bit; the rows left out have a strictly later root."""
    rng = np.random.default_rng(seed)
    roots = rng.uniform(-0.2, 1.2, (rows, 3))
    coef = np.zeros((rows, 8))
    for k in range(rows):
        c = np.array([rng.uniform(0.1, 3)])
        for r in roots[k]:
            c = np.polynomial.polynomial.polymul(c, [r, -1.0])
        coef[k, : c.size] = c
    if rows > 1:  # an exact tie between two rows of one group
        coef[1] = coef[0]
    group = rng.integers(0, groups, rows)
    if rows > 1:
        group[1] = group[0]
    tol = np.full(rows, 1e-12)
    full = dp.first_root(coef, tol)
    part = dp.first_root(coef, tol, group)
    found = np.isfinite(part)
    assert np.array_equal(part[found], full[found])
    for q in np.unique(group):
        rows_q = np.flatnonzero(group == q)
        best = rows_q[np.lexsort((full[rows_q],))][0]
        if np.isfinite(full[best]):
            assert found[best]
            later = ~found[rows_q] & (full[rows_q] > full[best])
            assert np.all((part[rows_q] == full[rows_q]) | later)
            tied = rows_q[full[rows_q] == full[best]]
            assert found[tied].all()  # ties are all kept: the caller picks among them
        else:
            assert not found[rows_q].any()


def test_deflate_removes_the_root_at_the_start() -> None:
    """(u - 0)(1/2 - u): deflated, the polynomial starts positive; its event is at 1/2."""
    c = np.array([[1e-18, 0.5, -1.0, 0, 0, 0, 0, 0]])
    tol = np.array([1e-15])
    assert dp.first_root(c, np.array([0.0]))[0] == pytest.approx(0.5, abs=1e-12)
    d = dp.deflate(c, tol)
    assert d[0, 0] == 0.5 and dp.first_root(d, tol)[0] == pytest.approx(0.5, abs=1e-12)
    # moving into the wrong side right away: event at the start itself
    e = dp.deflate(np.array([[-1e-18, -0.5, 0, 0, 0, 0, 0, 0]]), tol)
    assert dp.first_root(e, tol)[0] == 0.0
    # forced deflation even when the start value is not within tol
    f = dp.deflate(np.array([[-3e-15, 1.0, 0, 0, 0, 0, 0, 0]]), tol, np.array([True]))
    assert dp.first_root(f, tol)[0] == np.inf


def test_engine_step_on_two_point_data_has_propagators_only() -> None:
    """Populous states get a propagator; none of the neurons is integrated directly."""
    data = TwoPointData(0.3, 0.7)
    params = init_network(200, 2, 1e-3, seed=0)
    X = data.X
    prob = Problem(X, data.y, data.weights, "exp", Tolerances(), HeldCache(X, data.y))
    Z = np.column_stack([params.a, params.B])
    status = np.where(params.B @ X.T > 0, 1, -1).astype(np.int8)
    alive = np.flatnonzero(np.any(status != -1, axis=1))
    system = System.build(prob, Z, status, alive)
    assert system.md == 0 and system.gp == 3  # (+,+), (+,-), (-,+); (-,-) is dead
    assert sum(mq.size for mq in system.g_members) == alive.size
