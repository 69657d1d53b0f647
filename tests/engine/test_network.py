"""Model, data and loss: analytic gradient vs finite differences, numerical safety."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reluflow import Dataset, Params, TwoPointData, init_network
from reluflow.engine.network import (
    gradient,
    log_loss,
    loss_value,
    network_output,
    residual_weights,
)


@st.composite
def problems(draw: st.DrawFn) -> tuple[Params, Dataset, str]:
    seed = draw(st.integers(0, 2**31 - 1))
    m = draw(st.integers(1, 6))
    n = draw(st.integers(1, 4))
    d = draw(st.integers(2, 4))
    loss = draw(st.sampled_from(["exp", "logistic"]))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.choice([-1.0, 1.0], size=n)
    w = rng.uniform(0.1, 1.0, size=n)
    params = Params(rng.standard_normal(m), rng.standard_normal((m, d)))
    return params, Dataset(X, y, w), loss


def _flat_loss(theta: np.ndarray, m: int, d: int, data: Dataset, loss: str) -> float:
    p = Params(theta[:m], theta[m:].reshape(m, d))
    return loss_value(network_output(p, data.X), data, loss)


def _fd_error_bound(params: Params, data: Dataset, loss: str, h: float) -> np.ndarray:
    r"""Bound on :math:`|\partial_\theta L - (L(\theta+h e) - L(\theta-h e))/2h|` per
    coordinate, away from kinks (where every output is linear in each coordinate).

    With :math:`s_i = \partial f_i/\partial\theta` (constant on
    :math:`[\theta-h, \theta+h]`) and :math:`g_i = w_i |\ell'(y_i f_i)|`, which also bounds
    the second and third derivatives of :math:`w_i\ell` (exp: equal; logistic:
    :math:`\ell'' = \sigma(z)\sigma(-z) \le |\ell'|` and :math:`|\ell'''| \le \ell''`):

    * truncation :math:`\frac{h^2}{6}\sum_i g_i e^{h|s_i|}|s_i|^3` (Taylor with the third
      derivative on the interval, where :math:`g_i` grows at most by :math:`e^{h|s_i|}`);
    * rounding of the two loss values, each within
      :math:`\delta L = \gamma_{m+d}\sum_i g_i e^{h|s_i|} F_i + \gamma_{n+4} L`
      (:math:`F_i = \sum_k |a_k||b_k^\top x_i|`, the size of the terms summed into
      :math:`f_i`; :math:`\gamma_k = k\epsilon`, plus the loss's own evaluation),
      divided by :math:`h`;
    * rounding of the analytic gradient, :math:`\gamma_{n+d+2}\sum_i g_i|s_i|`.
    """
    eps = float(np.finfo(float).eps)
    X, y, w = data.X, data.y, data.weights
    pre = X @ params.B.T  # (n, m)
    act = pre > 0
    f = np.maximum(pre, 0.0) @ params.a
    z = y * f
    dl = np.exp(-z) if loss == "exp" else 1.0 / (1.0 + np.exp(z))
    g = w * dl
    L = loss_value(f, data, loss)
    m, d, n = params.m, params.d, data.n
    # s_i for every coordinate: a_k -> relu(b_k.x_i); B_kj -> a_k 1[b_k.x_i > 0] x_ij
    S_b = params.a[:, None, None] * act.T[:, None, :] * X.T[None, :, :]  # (m, d, n)
    S = np.abs(np.concatenate([np.maximum(pre, 0.0).T, S_b.reshape(m * d, n)]))
    grow = np.exp(h * S)
    F = np.abs(pre) @ np.abs(params.a)
    trunc = h**2 / 6 * (grow * S**3) @ g
    dL = (m + d) * eps * (grow @ (g * F)) + (n + 4) * eps * L
    ana = (n + d + 2) * eps * (S @ g)
    return np.asarray(trunc + dL / h + ana)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_gradient_matches_central_differences(problem: tuple[Params, Dataset, str]) -> None:
    """Analytic gradient against central differences, to the differences' own error bound
    (:func:`_fd_error_bound`: truncation plus rounding, which grows with the loss; a fixed
    rtol/atol once failed on starts whose loss is ~1e10)."""
    params, data, loss = problem
    pre = data.X @ params.B.T
    h = 1e-6
    # away from kinks: no pre-activation can change sign under a perturbation of size h
    assume(np.min(np.abs(pre)) > 2 * h * np.abs(data.X).max())
    ga, gB = gradient(params, data, loss)
    theta = np.concatenate([params.a, params.B.ravel()])
    num = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        num[k] = (
            _flat_loss(theta + e, params.m, params.d, data, loss)
            - _flat_loss(theta - e, params.m, params.d, data, loss)
        ) / (2 * h)
    ana = np.concatenate([ga, gB.ravel()])
    bound = _fd_error_bound(params, data, loss, h)
    assert np.all(np.abs(ana - num) <= bound), float(np.max(np.abs(ana - num) / bound))


@settings(max_examples=40, deadline=None)
@given(problems())
def test_gradient_in_data_span_and_invariant_rate_zero(
    problem: tuple[Params, Dataset, str],
) -> None:
    """grad_b lies in span{x_i}; d/dt (a_k^2 - |b_k|^2) = -2 a ga + 2 b.gB = 0."""
    params, data, loss = problem
    ga, gB = gradient(params, data, loss)
    # component of each gradient row orthogonal to the data span is zero
    Q, _ = np.linalg.qr(data.X.T)
    resid = gB - (gB @ Q) @ Q.T
    assert np.allclose(resid, 0.0, atol=1e-12 * (1 + np.abs(gB).max()))
    rate = params.a * ga - np.einsum("kd,kd->k", params.B, gB)
    assert np.allclose(rate, 0.0, atol=1e-12 * (1 + np.abs(params.a * ga).max()))


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_losses_are_safe_for_large_margins(loss: str) -> None:
    data = TwoPointData(0.3, 0.7)
    for f in ([1e3, -1e3], [-1e3, 1e3], [0.0, 0.0], [700.0, -700.0], [-700.0, 700.0]):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            ll = log_loss(f, data, loss)
            r = residual_weights(f, data, loss)
        assert math.isfinite(ll)
        assert not np.any(np.isnan(r))
        # margins within the float64 range of e^{-z}: residuals finite as well
        if loss == "logistic" or min(data.y * np.asarray(f)) > -709:
            assert np.all(np.isfinite(r))
    # log-loss is exact where the loss itself is representable
    f = np.array([3.0, -2.0])
    assert log_loss(f, data, loss) == pytest.approx(math.log(loss_value(f, data, loss)), rel=1e-13)
    if loss == "logistic":
        assert math.isfinite(loss_value([-1e3, 1e3], data, loss))
        assert loss_value([1e3, -1e3], data, loss) >= 0.0


def test_exp_loss_values_and_residuals() -> None:
    data = TwoPointData(0.4, 0.6)
    f = np.array([0.5, -0.25])
    assert loss_value(f, data) == pytest.approx(0.6 * math.exp(-0.5) + 0.4 * math.exp(-0.25))
    r = residual_weights(f, data)
    assert r == pytest.approx([0.6 * math.exp(-0.5), -0.4 * math.exp(-0.25)])


def test_two_point_geometry() -> None:
    data = TwoPointData(0.3, 0.7, d=4)
    assert data.X.shape == (2, 4)
    assert float(data.x_plus @ data.x_minus) == pytest.approx(math.cos(0.3), abs=1e-15)
    assert np.allclose(np.linalg.norm(data.X, axis=1), 1.0)
    assert data.weights.sum() == pytest.approx(1.0)
    assert list(data.y) == [1.0, -1.0]


def test_dataset_normalises_weights_and_is_read_only() -> None:
    ds = Dataset([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1, -1, 1], weights=[2, 1, 1])
    assert np.allclose(ds.weights, [0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="read-only"):
        ds.X[0, 0] = 5.0
    uni = Dataset([[1.0, 0.0], [0.0, 1.0]], [1, -1])
    assert np.allclose(uni.weights, [0.5, 0.5])


def test_init_network_balanced_and_unbalanced() -> None:
    p = init_network(1000, 3, 1e-3, seed=4)
    assert np.allclose(p.invariant(), 0.0, atol=1e-18)
    assert set(np.sign(p.a)) == {-1.0, 1.0}
    assert np.mean(np.sum(p.B**2, axis=1)) == pytest.approx(3 * 1e-3**2, rel=0.1)  # E|u|^2 = d
    q = init_network(1000, 3, 1e-3, seed=4, balanced=False, kappa_a=1e-2)
    assert np.std(q.a) == pytest.approx(1e-2, rel=0.1)
    with pytest.raises(ValueError, match="kappa_a"):
        init_network(10, 2, 1e-3, balanced=True, kappa_a=1e-2)
    with pytest.raises(ValueError, match="kappa_a"):
        init_network(10, 2, 1e-3, balanced=False, kappa_a=-1.0)
    # a generator can be passed down instead of a seed
    g1 = init_network(5, 2, 1.0, seed=np.random.default_rng(9))
    g2 = init_network(5, 2, 1.0, seed=9)
    assert np.array_equal(g1.B, g2.B)


def test_dataset_bad_labels_and_weights() -> None:
    with pytest.raises(ValueError, match="labels"):
        Dataset([[1.0, 0.0]], [0.5])
    with pytest.raises(ValueError, match="weights must be >= 0"):
        Dataset([[1.0, 0.0], [0.0, 1.0]], [1, -1], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="X must be a 2-d array"):
        Dataset([1.0, 0.0], [1])
