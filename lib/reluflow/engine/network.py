r"""The two-layer bias-free ReLU network, its loss and its analytic gradient.

.. math::

    f(x;\theta) = \sum_{k=1}^m a_k\,\sigma(b_k^\top x), \qquad \sigma(z) = \max(z, 0),

    L(\theta) = \sum_i w_i\,\ell\big(y_i f(x_i)\big), \qquad
    \ell(z) = e^{-z}\ \text{(``exp``)} \quad\text{or}\quad \log(1 + e^{-z})\ \text{(``logistic``)}.

With the *residual weights* :math:`r_i = -w_i y_i \ell'(y_i f(x_i))` (positive for
label +1, negative for label -1) the gradient is, with the convention
:math:`\sigma'(0) = 0`,

.. math::

    \partial_{a_k} L = -\sum_i r_i\,\sigma(b_k^\top x_i), \qquad
    \nabla_{b_k} L = -a_k \sum_{i:\, b_k^\top x_i > 0} r_i\, x_i .
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, logsumexp

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset

__all__ = [
    "Params",
    "check_params_for",
    "check_run_inputs",
    "gradient",
    "init_network",
    "log_loss",
    "loss_value",
    "margins",
    "network_output",
    "residual_weights",
]

Array = NDArray[np.float64]


@dataclass(frozen=True, init=False, eq=False)
class Params:
    r"""Parameters :math:`\theta = (a, B)` of a width-``m`` network.

    Parameters
    ----------
    a : array_like, shape (m,)
        Output weights :math:`a_k`.
    B : array_like, shape (m, d)
        Input weights, row ``k`` is :math:`b_k`.
    """

    a: Array
    B: Array

    def __init__(self, a: ArrayLike, B: ArrayLike) -> None:
        aa = v.finite_array("a", a, 1)
        BB = v.finite_array("B", B, 2)
        if aa.shape[0] < 1:
            raise ValueError("a must hold at least one neuron (m >= 1)")
        if BB.shape[0] != aa.shape[0]:
            raise ValueError(
                f"B must have shape (m, d) with m = len(a) = {aa.shape[0]}, got {BB.shape}"
            )
        object.__setattr__(self, "a", aa)
        object.__setattr__(self, "B", BB)

    @property
    def m(self) -> int:
        """Width (number of neurons)."""
        return int(self.a.shape[0])

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.B.shape[1])

    def invariant(self) -> Array:
        r"""The conserved quantity :math:`a_k^2 - \lVert b_k\rVert^2` of every neuron."""
        return self.a**2 - np.einsum("kd,kd->k", self.B, self.B)

    def sq_norm(self) -> float:
        r""":math:`\lVert\theta\rVert^2 = \sum_k a_k^2 + \lVert b_k\rVert^2`."""
        return float(self.a @ self.a + np.einsum("kd,kd->", self.B, self.B))


def init_network(
    m: int,
    d: int,
    kappa: float,
    seed: int | np.random.Generator = 0,
    *,
    balanced: bool = True,
    kappa_a: float | None = None,
) -> Params:
    r"""Random small initialization.

    :math:`b_k = \kappa u_k` with :math:`u_k \sim \mathcal N(0, I_d)`.  Balanced:
    :math:`a_k = s_k\lVert b_k\rVert` with random signs :math:`s_k = \pm 1`, so that
    :math:`a_k^2 - \lVert b_k\rVert^2 = 0`.  Unbalanced (``balanced=False``):
    :math:`a_k = \kappa_a g_k`, :math:`g_k \sim \mathcal N(0, 1)`.

    Parameters
    ----------
    m : int
        Width, ``m >= 1``.
    d : int
        Input dimension, ``d >= 2``.
    kappa : float
        Initialization scale of the input weights, finite and > 0.
    seed : int or numpy.random.Generator
        Seed for ``numpy.random.default_rng`` (or a generator to draw from).
    balanced : bool
        Balanced output weights (default) or independent ones.
    kappa_a : float, optional
        Output scale when ``balanced=False`` (defaults to ``kappa``); must be omitted or
        equal to ``None`` when balanced.

    Examples
    --------
    >>> p = init_network(4, 2, 1e-3, seed=1)
    >>> bool(np.allclose(p.invariant(), 0.0, atol=1e-20))
    True
    """
    mm = v.int_at_least("m", m, 1)
    dd = v.int_at_least("d", d, 2)
    kap = v.positive_finite("kappa", kappa)
    if balanced and kappa_a is not None:
        raise ValueError("kappa_a is only allowed with balanced=False")
    ka = kap if kappa_a is None else v.positive_finite("kappa_a", kappa_a)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    B = kap * rng.standard_normal((mm, dd))
    with np.errstate(over="ignore"):
        if balanced:
            signs = rng.choice(np.array([-1.0, 1.0]), size=mm)
            a = signs * np.linalg.norm(B, axis=1)
        else:
            a = ka * rng.standard_normal(mm)
        sq = a**2 + np.einsum("kd,kd->k", B, B)
    if not np.all(np.isfinite(sq)):
        raise ValueError(f"kappa = {kap:g} (or kappa_a) is too large for float64: the squared "
                         "norms of the weights overflow; use kappa <= 1e150")
    return Params(a, B)


def network_output(params: Params, X: ArrayLike) -> Array:
    r"""Network output :math:`f(x_i) = \sum_k a_k \sigma(b_k^\top x_i)` for each row of ``X``."""
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim != 2 or Xa.shape[1] != params.d:
        raise ValueError(f"X must have shape (n, {params.d}), got {Xa.shape}")
    pre = Xa @ params.B.T
    return np.maximum(pre, 0.0) @ params.a


def margins(params: Params, data: Dataset) -> Array:
    """Margins :math:`y_i f(x_i)`."""
    return data.y * network_output(params, data.X)


def residual_weights(f: ArrayLike, data: Dataset, loss: str = "exp") -> Array:
    r"""Residual weights :math:`r_i = -w_i y_i \ell'(y_i f_i)`, so :math:`\dot f`-driving force.

    For ``exp``: :math:`r_i = w_i y_i e^{-y_i f_i}`; for ``logistic``:
    :math:`r_i = w_i y_i / (1 + e^{y_i f_i})`.  Computed without overflow warnings.
    """
    v.loss_name(loss)
    z = data.y * np.asarray(f, dtype=np.float64)
    if loss == "exp":
        with np.errstate(over="ignore"):
            g = np.exp(-z)
    else:
        g = expit(-z)
    return data.weights * data.y * g


def log_loss(f: ArrayLike, data: Dataset, loss: str = "exp") -> float:
    r"""Natural log of the loss, :math:`\log L`, stable for margins of any size."""
    v.loss_name(loss)
    z = data.y * np.asarray(f, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.log(data.weights)
    if loss == "exp":
        terms = logw - z
    else:
        # log(log(1 + e^{-z})), stable on both tails
        big = z > 30  # log(1 + e^{-z}) = e^{-z}(1 - e^{-z}/2 + ...): use its log directly
        zb = np.where(big, z, 30.0)
        sp = np.logaddexp(0.0, -np.where(big, 0.0, z))
        with np.errstate(divide="ignore"):
            terms = logw + np.where(big, -zb + np.log1p(-0.5 * np.exp(-zb)), np.log(sp))
    return float(logsumexp(terms))


def loss_value(f: ArrayLike, data: Dataset, loss: str = "exp") -> float:
    r"""Loss :math:`L = \sum_i w_i \ell(y_i f_i)` from the outputs ``f``.

    Finite and NaN-free for margins :math:`|y_i f_i| \le 10^3` with the logistic loss;
    the exponential loss exceeds the float64 range only for margins below about -709,
    where it returns ``inf`` (use :func:`log_loss` there).
    """
    v.loss_name(loss)
    z = data.y * np.asarray(f, dtype=np.float64)
    if loss == "exp":
        with np.errstate(over="ignore"):
            return float(data.weights @ np.exp(-z))
    return float(data.weights @ np.logaddexp(0.0, -z))


def gradient(params: Params, data: Dataset, loss: str = "exp") -> tuple[Array, Array]:
    r"""Analytic gradient :math:`(\partial_a L, \nabla_B L)` with :math:`\sigma'(0) = 0`.

    Returns
    -------
    grad_a : ndarray, shape (m,)
        :math:`-\sum_i r_i \sigma(b_k^\top x_i)`.
    grad_B : ndarray, shape (m, d)
        :math:`-a_k \sum_i r_i 1[b_k^\top x_i > 0]\, x_i`.
    """
    if params.d != data.d:
        raise ValueError(f"params.B has d = {params.d} columns but data has d = {data.d}")
    pre = data.X @ params.B.T  # (n, m)
    act = np.maximum(pre, 0.0)
    f = act @ params.a
    r = residual_weights(f, data, loss)
    grad_a = -(r @ act)
    grad_B = -params.a[:, None] * (((pre > 0) * r[:, None]).T @ data.X)
    return grad_a, grad_B


def check_params_for(params: Any, data: Any) -> Params:
    """Return ``params`` if it is a :class:`Params` matching the :class:`Dataset` ``data``."""
    if not isinstance(params, Params):
        raise ValueError(f"params must be a reluflow.Params, got {type(params).__name__}")
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    if params.d != data.d:
        raise ValueError(f"params.B must have d = data.d = {data.d} columns, got {params.d}")
    return params


def check_run_inputs(
    params: Any, data: Any, t_max: Any, times: ArrayLike | None, loss: Any
) -> tuple[float, NDArray[np.float64] | None, str]:
    """Validate the common arguments of the integrators; returns ``(t_max, times, loss)``."""
    check_params_for(params, data)
    tm = v.positive_finite("t_max", t_max)
    return tm, v.time_grid(times, tm), v.loss_name(loss)
