r"""Geometry of the two-point setting: the data plane, :math:`\mu`, regions, regimes, roles.

One definition of every geometric object the theory, the phase detection, the figures and
the chapters use.

Conventions.  Data :math:`x_+` (label +1, weight :math:`p`) and :math:`x_-` (label -1,
weight :math:`1-p`) at the angle :math:`\Delta` (for :class:`~reluflow.TwoPointData`,
:math:`x_+ = e_1` and :math:`x_- = \cos\Delta\,e_1 + \sin\Delta\,e_2`).  A vector
:math:`b` is described by the angle :math:`\varphi\in(-\pi, \pi]` of its projection onto
the data plane, measured from :math:`x_+` towards :math:`x_-` (:func:`plane_coords`): so
:math:`x_-` is at :math:`\Delta`, :math:`x_-^\perp` at :math:`\Delta - \pi/2`,
:math:`x_+^\perp` at :math:`\pi/2`.  The orthogonal part of :math:`b_k` never moves, so the
angle decides everything.  Near the origin (:math:`f\approx 0`) a neuron active on both
points follows :math:`\dot b_k = a_k\mu`, :math:`\dot a_k = b_k^\top\mu` with

.. math:: \mu = p\,x_+ - (1-p)\,x_- = \sum_i w_i y_i x_i .

Examples
--------
>>> from reluflow import TwoPointData
>>> data = TwoPointData(delta=0.3, p=0.7)
>>> regime(data), round(mu_angle(data), 4)
('main', -0.2113)
>>> roles(data)
Roles(leader=1, target=-0.2112..., awaited=1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset, TwoPointData, span_basis

__all__ = [
    "HALF_PI",
    "REFERENCES",
    "REGIMES",
    "REGIONS",
    "Roles",
    "effective_data",
    "mu",
    "mu_angle",
    "plane_angles",
    "plane_basis",
    "plane_coords",
    "reference_angles",
    "regime",
    "region_bounds",
    "regions_of",
    "roles",
    "span_basis",
    "two_point",
    "x_minus_perp",
    "x_plus_perp",
]

Array = NDArray[np.float64]

HALF_PI = 0.5 * math.pi

#: Regimes of :math:`(\Delta, p)` (see :func:`regime`).
REGIMES = ("main", "mu-plus-only", "mirror")

#: Activation regions of the data plane (see :func:`region_bounds`).
REGIONS = ("both", "plus-only", "minus-only", "none")

#: The reference directions of the data plane, by name (see :func:`reference_angles`).
REFERENCES = ("x+", "x-", "mu", "x-perp", "x+perp")


def two_point(data: Any, *, acute: bool = True) -> TwoPointData:
    """Return ``data`` if it is a :class:`~reluflow.TwoPointData` (acute if asked), else raise.

    Raises
    ------
    ValueError
        Naming ``data`` (not two-point data) or ``data.delta`` (not in :math:`(0, \\pi/2)`).
    """
    if not isinstance(data, TwoPointData):
        raise ValueError(
            f"data must be a reluflow.TwoPointData for this closed form, got {type(data).__name__}"
        )
    if acute and not data.delta < HALF_PI:
        raise ValueError(
            f"data.delta must lie in the open interval (0, pi/2) for this prediction "
            f"(acute angle between x+ and x-), got {data.delta!r}"
        )
    return data


def mu(data: Dataset) -> Array:
    r"""The initial driving vector :math:`\mu = \sum_i w_i y_i x_i`.

    For :class:`~reluflow.TwoPointData` this is :math:`\mu = p\,x_+ - (1-p)\,x_-`: the
    direction :math:`b` moves along, :math:`\dot b_k = a_k\mu`, for a neuron active on
    every point while :math:`f\approx 0`.

    >>> from reluflow import TwoPointData
    >>> mu(TwoPointData(delta=0.5 * math.pi, p=0.5)).round(3).tolist()
    [0.5, -0.5]
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    return np.asarray((data.weights * data.y) @ data.X, dtype=np.float64)


def x_minus_perp(data: TwoPointData) -> Array:
    r"""Unit vector :math:`x_-^\perp` of the data plane, :math:`\perp x_-`, towards :math:`x_+`.

    :math:`x_-^\perp = (\sin\Delta, -\cos\Delta, 0, \dots)`, so
    :math:`\langle x_-^\perp, x_+\rangle = \sin\Delta`; angle :math:`\Delta - \pi/2`.
    """
    d = two_point(data, acute=False)
    out = np.zeros(d.d)
    out[0], out[1] = math.sin(d.delta), -math.cos(d.delta)
    return out


def x_plus_perp(data: TwoPointData) -> Array:
    r"""Unit vector :math:`x_+^\perp = e_2`, :math:`\perp x_+`, on the side of :math:`x_-`.

    :math:`\langle x_+^\perp, x_-\rangle = \sin\Delta`; angle :math:`\pi/2`.
    """
    d = two_point(data, acute=False)
    out = np.zeros(d.d)
    out[1] = 1.0
    return out


def plane_basis(data: Dataset) -> tuple[Array, Array, float, float]:
    r"""Orthonormal basis of the data plane and the two-point geometry of any data set.

    Uses the first point with label +1 as :math:`x_+` and the first with label -1 as
    :math:`x_-` (for :class:`~reluflow.TwoPointData` these are its two points).

    Returns
    -------
    u1, u2 : ndarray, shape (d,)
        :math:`u_1 = x_+/\lVert x_+\rVert`, :math:`u_2` the unit vector of
        :math:`x_- - (x_-^\top u_1) u_1`.
    delta : float
        Angle :math:`\Delta \in (0, \pi)` between :math:`x_+` and :math:`x_-`.
    p : float
        Relative weight :math:`p = w_+ / (w_+ + w_-)` of :math:`x_+`.
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    pos = np.flatnonzero(data.y > 0)
    neg = np.flatnonzero(data.y < 0)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("data must contain at least one point with label +1 and one with -1")
    ip, im = int(pos[0]), int(neg[0])
    xp, xm = data.X[ip], data.X[im]
    npl = float(np.linalg.norm(xp))
    if npl == 0.0:
        raise ValueError("data: the first positive point must be non-zero")
    u1 = xp / npl
    w = xm - (xm @ u1) * u1
    nw = float(np.linalg.norm(w))
    if nw <= 1e-12 * max(float(np.linalg.norm(xm)), 1.0):
        raise ValueError("data: x_+ and x_- must not be parallel (angle delta in (0, pi))")
    u2 = w / nw
    delta = math.atan2(nw, float(xm @ u1))
    wp, wm = float(data.weights[ip]), float(data.weights[im])
    return u1, u2, delta, wp / (wp + wm)


def plane_coords(B: ArrayLike, data: Dataset) -> tuple[Array, Array]:
    r"""In-plane angle and norm of input weight vectors.

    .. math::

        \varphi_k = \operatorname{atan2}(b_k^\top u_2,\ b_k^\top u_1) \in (-\pi, \pi], \qquad
        r_k = \sqrt{(b_k^\top u_1)^2 + (b_k^\top u_2)^2},

    with :math:`(u_1, u_2)` from :func:`plane_basis` (:math:`u_1 = x_+`).

    Parameters
    ----------
    B : array_like, shape (..., d)
        Input weights (for example ``traj.B`` of shape ``(T, m, d)``).
    data : Dataset
        Defines the data plane.

    Returns
    -------
    angle : ndarray, shape (...)
        :math:`\varphi_k` in radians, measured from :math:`x_+` towards :math:`x_-`.
    norm : ndarray, shape (...)
        :math:`r_k`, the norm of the projection on the data plane.
    """
    u1, u2, _, _ = plane_basis(data)
    Ba = np.asarray(B, dtype=np.float64)
    if Ba.ndim < 1 or Ba.shape[-1] != data.d:
        raise ValueError(f"B must have shape (..., d) with d = data.d = {data.d}, got {Ba.shape}")
    c1 = Ba @ u1
    c2 = Ba @ u2
    return np.arctan2(c2, c1), np.hypot(c1, c2)


def plane_angles(B: ArrayLike, data: TwoPointData) -> Array:
    r"""Plane angle :math:`\varphi\in(-\pi, \pi]` of each row (the angle of :func:`plane_coords`).

    >>> from reluflow import TwoPointData
    >>> float(plane_angles([[0.0, 1.0]], TwoPointData(delta=0.3, p=0.7))[0]) == HALF_PI
    True
    """
    return plane_coords(B, two_point(data, acute=False))[0]


def mu_angle(data: TwoPointData) -> float:
    r"""Plane angle of :math:`\mu`.

    :math:`\varphi_\mu = \operatorname{atan2}(-(1-p)\sin\Delta,\ p - (1-p)\cos\Delta)`.
    """
    m = mu(two_point(data, acute=False))
    return float(math.atan2(m[1], m[0]))


def reference_angles(data: Dataset) -> dict[str, float]:
    r"""Angles (radians, from :math:`x_+`) of the reference directions, keyed by :data:`REFERENCES`.

    :math:`x_+` at 0, :math:`x_-` at :math:`\Delta`, :math:`\mu` at
    :math:`\operatorname{atan2}(-(1-p)\sin\Delta,\ p - (1-p)\cos\Delta)`,
    :math:`x_-^\perp` at :math:`\Delta - \pi/2` and :math:`x_+^\perp` at :math:`\pi/2`
    (for any data set, with the geometry of :func:`plane_basis`).
    """
    _, _, delta, p = plane_basis(data)
    angle_mu = math.atan2(-(1.0 - p) * math.sin(delta), p - (1.0 - p) * math.cos(delta))
    return {"x+": 0.0, "x-": delta, "mu": angle_mu, "x-perp": delta - HALF_PI,
            "x+perp": HALF_PI}


def region_bounds(data: TwoPointData) -> dict[str, tuple[float, float]]:
    r"""The four activation regions as open angle intervals ``(lo, hi)`` (radians).

    ``"both"`` :math:`(\Delta-\pi/2, \pi/2)`, ``"plus-only"`` :math:`(-\pi/2, \Delta-\pi/2)`,
    ``"minus-only"`` :math:`(\pi/2, \pi/2+\Delta)`, ``"none"``
    :math:`(\pi/2+\Delta, 3\pi/2)` (wrapping through :math:`\pi`).  Exact geometry.
    """
    D = two_point(data).delta
    return {
        "both": (D - HALF_PI, HALF_PI),
        "plus-only": (-HALF_PI, D - HALF_PI),
        "minus-only": (HALF_PI, HALF_PI + D),
        "none": (HALF_PI + D, 3 * HALF_PI),
    }


def regions_of(B: ArrayLike, data: TwoPointData) -> NDArray[np.str_]:
    """Activation region (one of :data:`REGIONS`) of each row of ``B``.

    Read off the signs of :math:`b^\\top x_+` and :math:`b^\\top x_-` (exact geometry).
    """
    d = two_point(data, acute=False)
    arr = np.asarray(B, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != d.d:
        raise ValueError(f"B must have shape (m, {d.d}), got {arr.shape}")
    on_p = arr @ d.x_plus > 0
    on_m = arr @ d.x_minus > 0
    out = np.full(arr.shape[0], "none", dtype="<U10")
    out[on_p & on_m] = "both"
    out[on_p & ~on_m] = "plus-only"
    out[~on_p & on_m] = "minus-only"
    return out


def regime(delta: float | TwoPointData, p: float | None = None) -> str:
    r"""Regime of :math:`(\Delta, p)`: where :math:`\mu` is active (this book's classification).

    * ``"main"``: :math:`p\cos\Delta > 1-p`: :math:`\mu` is active on both points;
      positive neurons condense on :math:`\mu`, negative ones slide on :math:`x_+^\perp`.
    * ``"mu-plus-only"``: :math:`(1-p)\cos\Delta < p \le (1-p)/\cos\Delta`: :math:`\mu` is
      active on :math:`x_+` only; both groups slide from the start (positive on
      :math:`x_-^\perp`, negative on :math:`x_+^\perp`), no condensation on :math:`\mu`.
    * ``"mirror"``: :math:`p \le (1-p)\cos\Delta`: :math:`\mu` is active on neither point;
      the main regime with the two classes exchanged (negative neurons condense on
      :math:`-\mu`, positive ones slide on :math:`x_-^\perp`).

    (:math:`\mu` active on :math:`x_-` only is impossible for an acute :math:`\Delta`.)

    Parameters
    ----------
    delta : float or TwoPointData
        :math:`\Delta\in(0, \pi/2)`, or a data set (then ``p`` must be omitted).
    p : float, optional
        :math:`p\in(0, 1)`.

    >>> regime(0.3, 0.7), regime(0.3, 0.5), regime(0.3, 0.3)
    ('main', 'mu-plus-only', 'mirror')
    """
    if isinstance(delta, TwoPointData):
        if p is not None:
            raise ValueError("p must be omitted when a TwoPointData is given")
        D, pp = two_point(delta).delta, delta.p
    else:
        D = v.open_interval("delta", delta, 0.0, HALF_PI, "(0, pi/2)")
        if p is None:
            raise ValueError("p must be given (a number in (0, 1)) with a numeric delta")
        pp = v.open_interval("p", p, 0.0, 1.0)
    c = math.cos(D)
    if pp * c > 1.0 - pp:
        return "main"
    if pp > (1.0 - pp) * c:
        return "mu-plus-only"
    return "mirror"


@dataclass(frozen=True)
class Roles:
    r"""The two sign groups' roles in a regime (this book's classification).

    Attributes
    ----------
    leader : int
        Output sign (+1 or -1) of the group that grows first and leaves the saddle.
    target : float
        Plane angle the leader aligns with before the saddle escape: :math:`\mu` (main),
        :math:`\mu + \pi` (mirror), or the boundary it slides on in the intermediate
        regime (:math:`x_-^\perp` when :math:`p \ge 1/2`, else :math:`x_+^\perp`).
    awaited : int
        Index (0 for :math:`x_+`, 1 for :math:`x_-`) of the point the plateau waits for:
        the one the leader does not fit, which the other group fits at the plateau escape.
    """

    leader: int
    target: float
    awaited: int


def roles(data: TwoPointData) -> Roles:
    """The :class:`Roles` of the two sign groups for ``data`` (acute :math:`\\Delta`)."""
    d = two_point(data)
    reg = regime(d)
    angle_mu = mu_angle(d)
    if reg == "main":
        return Roles(1, angle_mu, 1)
    if reg == "mirror":
        return Roles(-1, angle_mu + math.pi, 0)
    if d.p >= 0.5:
        return Roles(1, d.delta - HALF_PI, 1)
    return Roles(-1, HALF_PI, 0)


def effective_data(data: TwoPointData) -> TwoPointData | None:
    r"""The main-regime data set equivalent to ``data``, or ``None`` in the intermediate regime.

    The mirror regime is the main regime with the classes exchanged: its dynamics is that
    of :math:`(\Delta, 1-p)` with the signs of the output weights flipped, so every
    main-regime formula applies to the mirrored data.

    >>> from reluflow import TwoPointData
    >>> effective_data(TwoPointData(delta=0.3, p=0.3)).p
    0.7
    """
    d = two_point(data)
    reg = regime(d)
    if reg == "main":
        return d
    if reg == "mirror":
        return TwoPointData(d.delta, 1.0 - d.p, d=d.d)
    return None
