r"""The max-margin problem of a width-unbounded bias-free ReLU network, solved numerically.

This book's derivations for the two-point setting (conventions in
:mod:`reluflow.analysis.geometry`); each is checked numerically in the chapter that uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog, minimize

from reluflow.analysis.geometry import HALF_PI, span_basis
from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.network import Params

__all__ = [
    "MaxMarginResult",
    "max_margin",
]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class MaxMarginResult:
    r"""Solution of the max-margin problem of :func:`max_margin`.

    Attributes
    ----------
    margin : float
        :math:`\gamma^* = \max_\theta \min_i y_i f(x_i;\theta)/\lVert\theta\rVert^2`.
    directions : ndarray, shape (K, d)
        Unit input directions of the support neurons.
    signs : ndarray, shape (K,)
        Output signs :math:`\pm 1`.
    masses : ndarray, shape (K,)
        Fractions :math:`\lVert b_k\rVert^2/\sum_j\lVert b_j\rVert^2` (sum to 1).
    params : Params
        A balanced network realizing the margin, with :math:`\lVert\theta\rVert^2 = 1`.
    lp_margin : float
        The margin of the grid linear program before the local refinement.
    """

    margin: float
    directions: Array
    signs: Array
    masses: Array
    params: Params
    lp_margin: float


def _candidate_dirs(Xr: Array, m_dirs: int, rng: np.random.Generator) -> Array:
    """Unit directions in the data span (coordinates in the span basis)."""
    r = Xr.shape[1]
    if r == 1:
        return np.array([[1.0], [-1.0]])
    if r == 2:
        ang = np.linspace(-math.pi, math.pi, m_dirs, endpoint=False)
        extra = []
        for x in Xr:
            a0 = math.atan2(x[1], x[0])
            extra += [a0, a0 + math.pi, a0 + HALF_PI, a0 - HALF_PI]
        ang = np.concatenate([ang, extra])
        return np.stack([np.cos(ang), np.sin(ang)], axis=1)
    G = rng.standard_normal((m_dirs, r))
    G = np.concatenate([G, Xr, -Xr])
    return G / np.linalg.norm(G, axis=1, keepdims=True)


def _features(U: Array, Xr: Array, y: Array) -> Array:
    """(n, K) matrix y_i sigma(u_k . x_i)."""
    return np.asarray(y[:, None] * np.maximum(Xr @ U.T, 0.0), dtype=np.float64)


def max_margin(
    data: Dataset,
    m_dirs: int = 720,
    *,
    seed: int | np.random.Generator = 0,
    refine: bool = True,
) -> MaxMarginResult:
    r"""Max-margin (KKT) network of the two-layer ReLU model, solved numerically.

    Problem (infinite width; the limit direction of gradient flow is a KKT point of it,
    Lyu & Li 2020):

    .. math:: \gamma^* = \max_\theta \frac{\min_i y_i f(x_i;\theta)}{\lVert\theta\rVert^2} .

    At the optimum every neuron is balanced (:math:`|a_k| = \lVert b_k\rVert`, AM-GM) and its
    direction lies in the data span (the orthogonal part only adds norm), so with
    :math:`w_k = \lVert b_k\rVert^2` and unit directions :math:`u_k`,
    :math:`f(x) = \sum_k s_k w_k\sigma(u_k^\top x)` and :math:`\lVert\theta\rVert^2 = 2\sum_k w_k`:

    .. math::

        \gamma^* = \tfrac12 \max_{w\in\Delta_K,\ s,\ u}\ \min_i\
                    y_i\sum_k s_k w_k\sigma(u_k^\top x_i),

    a linear program (``scipy.optimize.linprog``) for directions fixed on a grid of the data
    span (for a 2-d span: ``m_dirs`` equally spaced angles plus every :math:`\pm x_i` and
    :math:`\pm x_i^\perp`; otherwise ``m_dirs`` random directions from ``seed``), followed by
    a local refinement of the support directions and weights (``scipy.optimize.minimize``,
    SLSQP), kept only if it improves the margin.  On :class:`~reluflow.TwoPointData` it
    gives :math:`\sin\Delta/4` (this book's claim, checked in the tests).

    Parameters
    ----------
    data : Dataset
        Small data set (``n`` up to a few dozen) with both labels present.
    m_dirs : int
        Grid size, ``>= 8``.
    seed : int or numpy.random.Generator
        For the random directions when the data span has dimension > 2.
    refine : bool
        Run the local refinement.
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    K0 = v.int_at_least("m_dirs", m_dirs, 8)
    if not (np.any(data.y > 0) and np.any(data.y < 0)):
        raise ValueError("data must contain both labels +1 and -1 for a max-margin problem")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    Q = span_basis(data.X)
    Xr = data.X @ Q
    y = data.y
    U = _candidate_dirs(Xr, K0, rng)
    F = _features(U, Xr, y)  # (n, K)
    Fs = np.concatenate([F, -F], axis=1)  # signs +1 then -1
    K = U.shape[0]
    n = data.n
    # variables (w_1..w_2K, t); maximize t <=> minimize -t
    c = np.zeros(2 * K + 1)
    c[-1] = -1.0
    A_ub = np.concatenate([-Fs, np.ones((n, 1))], axis=1)  # t - Fs w <= 0
    b_ub = np.zeros(n)
    A_eq = np.concatenate([np.ones((1, 2 * K)), np.zeros((1, 1))], axis=1)
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0],
                  bounds=[(0, None)] * (2 * K) + [(None, None)], method="highs")
    if not res.success:  # pragma: no cover - HiGHS on a feasible bounded LP
        raise RuntimeError(f"max-margin linear program failed: {res.message}")
    w = np.asarray(res.x[:-1])
    keep = w > 1e-9
    signs = np.concatenate([np.ones(K), -np.ones(K)])[keep]
    dirs = np.concatenate([U, U])[keep]
    masses = w[keep] / w[keep].sum()
    lp_t = float(np.min(_features(dirs, Xr, y) @ (signs * masses)))
    best_t = lp_t
    if refine and dirs.shape[0] > 0:
        best_t, dirs, masses = _refine(Xr, y, dirs, signs, masses, best_t)
    D = dirs @ Q.T
    sq = 0.5 * masses  # ||b_k||^2 with sum ||theta||^2 = 1
    Bm = D * np.sqrt(sq)[:, None]
    am = signs * np.sqrt(sq)
    return MaxMarginResult(
        margin=0.5 * best_t, directions=np.asarray(D), signs=np.asarray(signs),
        masses=np.asarray(masses), params=Params(am, Bm), lp_margin=0.5 * lp_t,
    )


def _refine(
    Xr: Array, y: Array, dirs: Array, signs: Array, masses: Array, t0: float
) -> tuple[float, Array, Array]:
    """SLSQP polish of (directions, weights, t); returns the better of start and result."""
    K, r = dirs.shape

    def unpack(z: Array) -> tuple[Array, Array, float]:
        Uz = z[: K * r].reshape(K, r)
        Uz = Uz / np.maximum(np.linalg.norm(Uz, axis=1, keepdims=True), 1e-300)
        return Uz, z[K * r: K * r + K], float(z[-1])

    def cons(z: Array) -> Array:
        Uz, wz, tz = unpack(z)
        return np.asarray(_features(Uz, Xr, y) @ (signs * wz) - tz)

    z0 = np.concatenate([dirs.ravel(), masses, [t0]])
    res = minimize(
        lambda z: -z[-1], z0, method="SLSQP",
        constraints=[{"type": "ineq", "fun": cons},
                     {"type": "eq", "fun": lambda z: np.sum(z[K * r: K * r + K]) - 1.0}],
        bounds=[(None, None)] * (K * r) + [(0.0, 1.0)] * K + [(None, None)],
        options={"maxiter": 200, "ftol": 1e-12},
    )
    Uz, wz, _ = unpack(np.asarray(res.x))
    wz = np.maximum(wz, 0.0)
    if wz.sum() > 0:
        wz = wz / wz.sum()
        t_new = float(np.min(_features(Uz, Xr, y) @ (signs * wz)))
        if t_new > t0:
            return t_new, Uz, wz
    return t0, dirs, masses
