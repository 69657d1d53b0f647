r"""Early alignment on any data set: the directions small neurons condense on, and their rates.

This book's derivation (the phenomenon, initial condensation, is the paper's; the method
of following the directions of small neurons is that of the literature on early
alignment).  While the network output is negligible, :math:`f \approx 0`, the residual
weights are constant, :math:`r_i = c_\ell w_i y_i` with :math:`c_\ell = -\ell'(0)` (1 for
the exponential loss, 1/2 for the logistic loss).  A neuron of output sign
:math:`s = \operatorname{sign} a_k` whose input weight :math:`b_k` is active on the set
:math:`A` of points, :math:`A = \{i : b_k^\top x_i > 0\}`, then follows the *linear* system

.. math:: \dot b_k = a_k v_A, \qquad \dot a_k = b_k^\top v_A, \qquad
          v_A = \sum_{i\in A} r_i x_i .

For a balanced neuron (:math:`|a_k| = \lVert b_k\rVert`) the unit direction
:math:`u = b_k/\lVert b_k\rVert` and the norm obey

.. math:: \dot u = (I - u u^\top)\, s\, v_{A(u)}, \qquad
          \frac{d}{dt}\log\lVert b_k\rVert = G_s(u) = s\, u^\top v_{A(u)},

a flow on the unit sphere that does not depend on :math:`\lVert b_k\rVert`: the directions
move on a time scale of order one whatever the initialization scale :math:`\kappa`, while
the norms stay of order :math:`\kappa`.  Its stable rest points are the *consistent
directions* (this book's name): a direction :math:`u^*` with active set :math:`A` and a set
:math:`Z` of points on whose boundary :math:`u^{*\top} x_i = 0` it is held (Filippov
sliding), such that

.. math:: u^* = \frac{P_Z\, s\, v_A}{\lVert P_Z\, v_A\rVert}, \qquad
          \lambda = \lVert P_Z\, v_A\rVert ,

with :math:`P_Z` the orthogonal projector onto :math:`\{x_i : i \in Z\}^\perp`, the signs
of :math:`u^{*\top}x_i` consistent with :math:`A` and :math:`Z`, and sliding coefficients
in :math:`[0, 1]` on :math:`Z`.  A neuron there grows like :math:`e^{\lambda t}` (its
contribution to :math:`f`, :math:`a_k\sigma(b_k^\top x)`, like :math:`e^{2\lambda t}`).  On
two-point data this gives back :math:`u^* = \mu/\lVert\mu\rVert`, :math:`\lambda =
\lVert\mu\rVert` for the condensing positive neurons and :math:`u^* = x_+^\perp`,
:math:`\lambda = (1-p)\sin\Delta` for the sliding negative ones.

*Saddle escape.* Linearising the loss, :math:`L(0) - L(t) \approx \sum_k a_k b_k^\top
v_{A_k} \approx \sum_j C_j\kappa^2 e^{2\lambda_j t}` over the consistent directions
:math:`j` reached by the initial neurons (:math:`C_j > 0` from the initial directions,
independent of :math:`\kappa`).  The escape time :math:`t_\mathrm{esc}` (a fixed drop of the
loss) therefore obeys :math:`d t_\mathrm{esc}/d\log(1/\kappa) = 1/\sum_j \phi_j\lambda_j`,
with :math:`\phi_j \ge 0`, :math:`\sum_j\phi_j = 1` the shares of the drop: the slope lies
between :math:`1/\lambda_1` and :math:`1/\lambda_\mathrm{min}` of the populated directions
and tends to :math:`1/\lambda_1` as :math:`\kappa \to 0`, the faster the larger the gap
:math:`\lambda_1 - \lambda_2` (:func:`escape_slope_bounds`).

The rest points are found by following the sphere flow itself from the given starts
(explicit Euler steps, which chatter around sliding boundaries), then solving for the
exact rest point of the active and boundary sets it reached (:func:`early_alignment`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.datasets import ClusterData
from reluflow.engine.network import Params

__all__ = [
    "DEAD",
    "UNRESOLVED",
    "ClusterRate",
    "ConsistentDirection",
    "EarlyAlignment",
    "cluster_rate",
    "early_alignment",
    "early_field",
    "early_growth_rate",
    "escape_slope_bounds",
    "residual_scale",
]

Array = NDArray[np.float64]

#: Index of a start that ends dead (active on no point) in :attr:`EarlyAlignment.labels`.
DEAD = -1
#: Index of a start whose rest point could not be resolved exactly.
UNRESOLVED = -2


def residual_scale(loss: str = "exp") -> float:
    r""":math:`c_\ell = -\ell'(0)`: 1 for ``"exp"``, 1/2 for ``"logistic"``.

    Examples
    --------
    >>> residual_scale("logistic")
    0.5
    """
    return 1.0 if v.loss_name(loss) == "exp" else 0.5


def _data(data: Any) -> Dataset:
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    return data


def early_field(data: Dataset, active: ArrayLike, loss: str = "exp") -> Array:
    r"""The early field :math:`v_A = c_\ell\sum_{i\in A} w_i y_i x_i` of an active set.

    Parameters
    ----------
    data : Dataset
        The data.
    active : array_like of bool, shape (n,) or (k, n)
        Active set(s) :math:`A` as masks over the points.
    loss : {"exp", "logistic"}
        Loss (sets :math:`c_\ell`, :func:`residual_scale`).

    Returns
    -------
    ndarray, shape (d,) or (k, d)

    Examples
    --------
    >>> from reluflow import TwoPointData
    >>> data = TwoPointData(0.3, 0.7)
    >>> bool(np.allclose(early_field(data, [True, True]), 0.7 * data.x_plus - 0.3 * data.x_minus))
    True
    """
    d = _data(data)
    A = np.asarray(active)
    if A.dtype != np.bool_ or A.shape[-1:] != (d.n,) or A.ndim not in (1, 2):
        raise ValueError(f"active must be a boolean mask of shape (n,) or (k, n), n = {d.n}")
    r = residual_scale(loss) * d.weights * d.y
    return np.asarray((A * r) @ d.X, dtype=np.float64)


def early_growth_rate(data: Dataset, directions: ArrayLike, signs: ArrayLike,
                      loss: str = "exp") -> Array:
    r"""Growth rate :math:`G_s(u) = s\,u^\top v_{A(u)}` of balanced neurons along ``directions``.

    :math:`\frac{d}{dt}\log\lVert b\rVert = G_s(u)` while :math:`f \approx 0`; the
    directions are normalised here.

    Examples
    --------
    >>> from reluflow import TwoPointData
    >>> data = TwoPointData(0.3, 0.7)
    >>> mu = 0.7 * data.x_plus - 0.3 * data.x_minus
    >>> bool(np.isclose(early_growth_rate(data, [mu], [1.0])[0], np.linalg.norm(mu)))
    True
    """
    d = _data(data)
    U = v.finite_array("directions", directions, 2)
    s = v.finite_array("signs", signs, 1)
    if U.shape[1] != d.d or s.shape != (U.shape[0],):
        raise ValueError(f"directions must have shape (k, {d.d}) and signs shape (k,)")
    nu = np.linalg.norm(U, axis=1)
    if np.any(nu == 0):
        raise ValueError("directions must be non-zero")
    U = U / nu[:, None]
    A = U @ d.X.T > 0
    return np.asarray(np.sign(s) * np.sum(early_field(d, A, loss) * U, axis=1))


@dataclass(frozen=True)
class ConsistentDirection:
    r"""A rest point of the early sphere flow (see the module docstring).

    Attributes
    ----------
    sign : int
        Output sign :math:`s` of the neurons that sit there.
    direction : ndarray, shape (d,)
        The unit direction :math:`u^*`.
    active : ndarray of bool, shape (n,)
        Active set :math:`A` (:math:`u^{*\top}x_i > 0`).
    boundary : ndarray of bool, shape (n,)
        Points :math:`Z` whose boundary :math:`u^{*\top}x_i = 0` holds the neuron (sliding).
    rate : float
        :math:`\lambda = \lVert P_Z v_A\rVert` (growth rate of :math:`\lVert b\rVert`).
    count : int
        Number of starts that reached it.
    """

    sign: int
    direction: Array
    active: NDArray[np.bool_]
    boundary: NDArray[np.bool_]
    rate: float
    count: int


@dataclass(frozen=True)
class EarlyAlignment:
    """Result of :func:`early_alignment`.

    Attributes
    ----------
    directions : list of ConsistentDirection
        The distinct rest points reached, by decreasing rate.
    labels : ndarray of int, shape (k,)
        For each start, the index into ``directions`` of its rest point, :data:`DEAD` (-1)
        if it ended active on no point, :data:`UNRESOLVED` (-2) if no exact rest point was
        found for it.
    """

    directions: list[ConsistentDirection]
    labels: NDArray[np.int64]

    @property
    def rates(self) -> Array:
        """The rates of :attr:`directions` (decreasing)."""
        return np.array([c.rate for c in self.directions], dtype=np.float64)

    @property
    def leading(self) -> ConsistentDirection:
        """The fastest consistent direction reached by some start."""
        if not self.directions:
            raise ValueError("no start reached a growing direction (every start died)")
        return self.directions[0]


def _starts(data: Dataset, starts: Any, n_starts: int, seed: Any) -> tuple[Array, Array]:
    if isinstance(starts, Params):
        if starts.d != data.d:
            raise ValueError(f"starts (Params) must have d = data.d = {data.d}, got {starts.d}")
        U, s = starts.B.copy(), np.sign(starts.a)
    elif starts is None:
        k = v.int_at_least("n_starts", n_starts, 1)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
            v.int_at_least("seed", seed, 0))
        U = rng.standard_normal((k, data.d))
        s = rng.choice(np.array([-1.0, 1.0]), size=k)
    else:
        raise ValueError(f"starts must be None or a reluflow.Params, got {type(starts).__name__}")
    nu = np.linalg.norm(U, axis=1)
    ok = (nu > 0) & (s != 0)
    U = np.where(ok[:, None], U / np.where(nu > 0, nu, 1.0)[:, None], 0.0)
    return U, np.where(ok, s, 0.0)


def _euler(data: Dataset, U: Array, s: Array, r: Array, h: float, n_steps: int) -> Array:
    X = data.X
    for _ in range(n_steps):
        V = s[:, None] * (((U @ X.T) > 0) * r) @ X
        U = U + h * (V - np.sum(V * U, axis=1)[:, None] * U)
        U /= np.maximum(np.linalg.norm(U, axis=1, keepdims=True), 1e-300)
    return U


def _filippov_ok(X: Array, r: Array, s: float, vA: Array, Z: NDArray[np.bool_]) -> bool:
    """Sliding coefficients lambda in [0, 1] making the field tangent to every boundary in Z."""
    if not np.any(Z):
        return True
    XZ = X[Z]
    K = (XZ @ XZ.T) * (s * r[Z])[None, :]
    rhs = -(XZ @ (s * vA))
    lam, *_ = np.linalg.lstsq(K, rhs, rcond=None)
    scale = float(np.linalg.norm(rhs)) + float(np.linalg.norm(K)) + 1e-300
    if float(np.linalg.norm(K @ lam - rhs)) > 1e-9 * scale:
        return False
    return bool(np.all(lam >= -1e-9) and np.all(lam <= 1.0 + 1e-9))


def _rest_point(data: Dataset, u: Array, s: float, r: Array, eps: float
                ) -> tuple[Array, NDArray[np.bool_], NDArray[np.bool_], float] | None:
    """Exact rest point near ``u`` (active set, boundary set read with tolerance ``eps``)."""
    X = data.X
    nx = np.linalg.norm(X, axis=1)
    for attempt in range(8):
        if attempt:
            eps = eps / 4.0  # a point read as held may be active, very close to its boundary
        c = (X @ u) / np.where(nx > 0, nx, 1.0)
        Z = (np.abs(c) <= eps) & (nx > 0)
        A = (c > eps) & (nx > 0)
        if not np.any(A):
            continue
        vA = (A * r) @ X
        w = s * vA
        if np.any(Z):
            Qz, Rz = np.linalg.qr(X[Z].T)
            Qz = Qz[:, np.abs(Rz.diagonal()) > 1e-12 * float(np.max(nx))]
            w = w - Qz @ (Qz.T @ w)
        nw = float(np.linalg.norm(w))
        if not nw > 1e-12 * float(np.linalg.norm(vA)):
            continue
        u_new = w / nw
        c_new = (X @ u_new) / np.where(nx > 0, nx, 1.0)
        tight = 1e-10
        ok = (np.all(c_new[A] > tight) and np.all(np.abs(c_new[Z]) <= tight)
              and np.all(c_new[~A & ~Z & (nx > 0)] < -tight)
              and _filippov_ok(X, r, s, vA, Z))
        if ok:
            return u_new, A, Z, float(s * u_new @ vA)
    return None


def early_alignment(
    data: Dataset,
    starts: Params | None = None,
    *,
    n_starts: int = 400,
    seed: int | np.random.Generator = 0,
    loss: str = "exp",
    t_end: float | None = None,
) -> EarlyAlignment:
    r"""Follow the early sphere flow from each start to its consistent direction.

    Parameters
    ----------
    data : Dataset
        Any data set.
    starts : Params, optional
        Initial network: each neuron's direction :math:`b_k/\lVert b_k\rVert` with sign
        :math:`\operatorname{sign} a_k` is a start (what its Phase I will do, if it is
        balanced and :math:`\kappa` small).  Default: ``n_starts`` Gaussian directions with
        random signs from ``seed`` (the initialization's distribution).
    n_starts : int
        Number of random starts when ``starts`` is not given, ``>= 1``.
    seed : int or numpy.random.Generator
        Seed of the random starts.
    loss : {"exp", "logistic"}
        Loss (scales the field by :math:`c_\ell`).
    t_end : float, optional
        Length of the followed flow, default :math:`200/\Lambda` with
        :math:`\Lambda = c_\ell\sum_i w_i\lVert x_i\rVert` (an upper bound of every rate);
        Euler steps of :math:`0.05/\Lambda`.

    Returns
    -------
    EarlyAlignment
        The consistent directions reached (exact: solved from the active and boundary sets
        the flow reached, then checked for sign consistency and sliding coefficients in
        [0, 1]) with their rates, and each start's label.

    Examples
    --------
    >>> from reluflow import TwoPointData
    >>> data = TwoPointData(0.3, 0.7)
    >>> res = early_alignment(data, n_starts=50, seed=0)
    >>> mu = 0.7 * data.x_plus - 0.3 * data.x_minus
    >>> bool(np.isclose(res.leading.rate, np.linalg.norm(mu), rtol=1e-12))
    True
    >>> slide = [c for c in res.directions if c.sign < 0][0]   # held on the boundary of x+
    >>> bool(np.isclose(slide.rate, 0.3 * np.sin(0.3), rtol=1e-12)), slide.boundary.tolist()
    (True, [True, False])
    """
    d = _data(data)
    cl = residual_scale(loss)
    r = cl * d.weights * d.y
    Lam = float(np.sum(np.abs(r) * np.linalg.norm(d.X, axis=1)))
    if not Lam > 0:
        raise ValueError("data has no point with positive weight and non-zero input")
    T = 200.0 / Lam if t_end is None else v.positive_finite("t_end", t_end)
    h = 0.05 / Lam
    U0, s = _starts(d, starts, n_starts, seed)
    live = s != 0
    U = U0.copy()
    U[live] = _euler(d, U0[live], s[live], r, h, max(math.ceil(T / h), 1))
    # shrink the chattering around sliding boundaries: a few hundred finer steps
    for fine in (h / 10.0, h / 100.0):
        U[live] = _euler(d, U[live], s[live], r, fine, 200)
    eps = 20.0 * (h / 100.0) * Lam
    labels = np.full(U.shape[0], DEAD, dtype=np.int64)
    found: dict[tuple[int, bytes, bytes], list[Any]] = {}
    X = d.X
    for k in np.flatnonzero(live):
        if not np.any(U[k] @ X.T > eps * np.linalg.norm(X, axis=1)):
            continue  # dead: active on no point
        rp = _rest_point(d, U[k], float(s[k]), r, eps)
        if rp is None:
            labels[k] = UNRESOLVED
            continue
        u, A, Z, lam = rp
        key = (int(s[k]), np.packbits(A).tobytes(), np.packbits(Z).tobytes())
        entry = found.setdefault(key, [u, A, Z, lam, []])
        entry[4].append(k)
    ordered = sorted(found.items(), key=lambda kv: -kv[1][3])
    dirs = []
    for j, ((sg, _, _), (u, A, Z, lam, members)) in enumerate(ordered):
        labels[members] = j
        dirs.append(ConsistentDirection(sign=sg, direction=u, active=A, boundary=Z,
                                        rate=lam, count=len(members)))
    return EarlyAlignment(directions=dirs, labels=labels)


def escape_slope_bounds(alignment: EarlyAlignment) -> tuple[float, float]:
    r"""Bounds :math:`(1/\lambda_1, 1/\lambda_2)` of the escape-time slope in log(1/kappa).

    :math:`\lambda_1` is the fastest rate reached, :math:`\lambda_2` the fastest rate of
    the *other* directions reached (equal to :math:`\lambda_1` when only one direction
    grows).  By the module docstring the slope over any :math:`\kappa` range lies in
    :math:`[1/\lambda_1, 1/\lambda_\mathrm{min}]`; directions far slower than
    :math:`\lambda_2` carry a share :math:`\phi_j \propto e^{-2(\lambda_1-\lambda_j)t}`
    of the drop, so the upper bound used is :math:`1/\lambda_2`, sharp once
    :math:`\kappa^{2(1-\lambda_3/\lambda_1)} \ll 1`.

    Examples
    --------
    >>> from reluflow import TwoPointData
    >>> data = TwoPointData(0.3, 0.7)
    >>> lo, hi = escape_slope_bounds(early_alignment(data, n_starts=50))
    >>> mu = 0.7 * data.x_plus - 0.3 * data.x_minus
    >>> bool(np.isclose(lo, 1 / np.linalg.norm(mu))), bool(np.isclose(hi, 1 / (0.3 * np.sin(0.3))))
    (True, True)
    """
    if not isinstance(alignment, EarlyAlignment):
        raise ValueError(f"alignment must be an EarlyAlignment, got {type(alignment).__name__}")
    rates = alignment.rates
    if rates.size == 0:
        raise ValueError("no start reached a growing direction (every start died)")
    lam2 = float(rates[1]) if rates.size > 1 else float(rates[0])
    return 1.0 / float(rates[0]), 1.0 / lam2


@dataclass(frozen=True)
class ClusterRate:
    r"""The early rate of the all-active direction on two clusters (:func:`cluster_rate`).

    Attributes
    ----------
    rate : float
        :math:`\lVert v\rVert`, :math:`v = \sum_i w_i y_i x_i` (computed from the points).
    expansion : float
        :math:`(1 - \sigma^2/2)\lVert\mu\rVert`, its expansion to second order.
    bound : float
        The bound :math:`B(\sigma)` of :math:`|\text{rate} - \text{expansion}|`.
    """

    rate: float
    expansion: float
    bound: float


def cluster_rate(data: ClusterData, loss: str = "exp") -> ClusterRate:
    r"""Rate :math:`\lVert v\rVert` of a neuron active on every point, expanded in :math:`\sigma`.

    This book's derivation.  Point :math:`j` of cluster :math:`\pm` sits at the angle
    :math:`\phi_j` from its centre :math:`x_\pm` along the unit tangent :math:`e_j`;
    :math:`x_j = \cos\phi_j\,x_\pm + \sin\phi_j\,e_j`.  The offsets are centred
    (:math:`\sum_j \phi_j e_j = 0`) with :math:`\overline{\phi^2} = \sigma^2`
    (:class:`~reluflow.engine.datasets.ClusterData`), so with the Taylor bounds
    :math:`|\cos\phi - 1 + \phi^2/2| \le \phi^4/24` and
    :math:`|\sin\phi - \phi + \phi^3/6| \le \phi^5/120` the cluster mean is
    :math:`\bar x_\pm = (1 - \sigma^2/2)x_\pm + r_\pm` with
    :math:`\lVert r_\pm\rVert \le \overline{\phi^3}/6 + \overline{\phi^4}/24 +
    \overline{\phi^5}/120` (cluster means), hence

    .. math:: v = c_\ell(p\,\bar x_+ - (1-p)\,\bar x_-) = (1 - \sigma^2/2)\,\mu + r,
              \qquad \big|\lVert v\rVert - (1-\sigma^2/2)\lVert\mu\rVert\big| \le
              B = c_\ell\,(p\lVert r_+\rVert_{\max} + (1-p)\lVert r_-\rVert_{\max}),

    with :math:`\mu` the two-point field (:math:`c_\ell` = :func:`residual_scale`).  The
    correction is of second order in :math:`\sigma` with an error of third order: while
    the leading direction is active on every point its rate, hence the slope of the escape
    time, moves by :math:`O(\sigma^2)`.

    Examples
    --------
    >>> cr = cluster_rate(ClusterData(0.3, 0.7, 0.05, n=8, seed=0))
    >>> abs(cr.rate - cr.expansion) <= cr.bound
    True
    """
    if not isinstance(data, ClusterData):
        raise ValueError(f"data must be a reluflow ClusterData, got {type(data).__name__}")
    cl = residual_scale(loss)
    two = data.two_point()
    mu = cl * (two.p * two.x_plus - (1.0 - two.p) * two.x_minus)
    v_all = early_field(data, np.ones(data.n, dtype=bool), loss)
    phi = data.angles_to_centres()
    sg = data.sigma
    bounds = []
    for label in (1.0, -1.0):
        ph = phi[data.y == label]
        bounds.append(float(np.mean(ph**3) / 6 + np.mean(ph**4) / 24 + np.mean(ph**5) / 120))
    # plus rounding: a few ulps of the sums of n unit vectors
    B = cl * (two.p * bounds[0] + (1.0 - two.p) * bounds[1]) + 4 * data.n * float(
        np.finfo(float).eps)
    return ClusterRate(rate=float(np.linalg.norm(v_all)),
                       expansion=(1.0 - 0.5 * sg**2) * float(np.linalg.norm(mu)), bound=B)
