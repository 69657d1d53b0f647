r"""Phase I, initial condensation: fates of the neurons, condensation and sliding rates.

This book's derivations for the two-point setting (conventions in
:mod:`reluflow.analysis.geometry`); each is checked numerically in the chapter that uses it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.geometry import HALF_PI, mu, mu_angle, plane_angles, regime, two_point
from reluflow.engine.data import TwoPointData
from reluflow.engine.network import Params, check_params_for

__all__ = [
    "FATES",
    "condensation_angle",
    "condensation_rate",
    "fate",
    "fate_boundaries",
    "fate_boundary_distance",
    "phase1_growth_bound",
    "sliding_rates",
]

Array = NDArray[np.float64]


#: Phase-I fates of a neuron (see :func:`fate`).
FATES = ("condense", "slide", "die", "dead")


def fate_boundaries(data: TwoPointData) -> dict[str, tuple[float, float]]:
    r"""Survival intervals of the initial angle, per output sign (this book's derivation).

    With :math:`f\approx 0` (Phase I), following the piecewise-linear fields region by region
    (and the Filippov sliding rule on :math:`b^\top x_\mp = 0`), a neuron survives iff

    * :math:`a_k > 0`: :math:`\varphi \in (-\pi/2,\ \min(\pi/2, \varphi_\mu + \pi))`;
    * :math:`a_k < 0`: :math:`\varphi \in (\max(\Delta - \pi/2, \varphi_\mu),\ \pi/2 + \Delta)`,

    with :math:`\varphi_\mu` the angle of :math:`\mu`.  In the main regime these are
    :math:`(-\pi/2, \pi/2)` and :math:`(\varphi_\mu, \pi/2+\Delta)`.

    Returns
    -------
    dict
        ``{"positive": (lo, hi), "negative": (lo, hi)}`` in radians.
    """
    d = two_point(data)
    am = mu_angle(d)
    return {
        "positive": (-HALF_PI, min(HALF_PI, am + math.pi)),
        "negative": (max(d.delta - HALF_PI, am), HALF_PI + d.delta),
    }


def _initial_plane(data: TwoPointData, params: Params) -> tuple[Array, Array, Array]:
    """Sign of a, plane angle, and dead-from-start mask of each neuron."""
    B = params.B
    s = np.sign(params.a)
    phi = plane_angles(B, data)
    dead0 = ~((B @ data.x_plus > 0) | (B @ data.x_minus > 0)) | (s == 0)
    return s, phi, dead0


def fate(data: TwoPointData, params: Params) -> NDArray[np.str_]:
    r"""Predicted Phase-I fate of every neuron (this book's derivation; labels :data:`FATES`).

    From the initial plane angle :math:`\varphi_k` and :math:`\operatorname{sign} a_k`, with
    the survival intervals of :func:`fate_boundaries`:

    * ``"dead"``: inactive on both points at :math:`t=0` (:math:`b_k^\top x_\pm \le 0`), or
      :math:`a_k = 0`; such a neuron never moves;
    * ``"die"``: active at :math:`t=0` but outside its survival interval: it rotates into the
      dead region and stops;
    * ``"condense"``: a survivor of the group that condenses on :math:`\pm\mu` (positive
      neurons in the ``"main"`` regime, negative ones in the ``"mirror"`` regime);
    * ``"slide"``: a survivor that ends on the boundary of the *other* class's point and
      slides along it: negative neurons on :math:`x_+^\perp`, positive ones on
      :math:`x_-^\perp` (``"mu-plus-only"`` and ``"mirror"`` regimes).

    Assumes small initialization (the fate is settled before :math:`f` is O(1)) and that
    :math:`\operatorname{sign} a_k` never changes, which holds when
    :math:`a_k^2 \ge \lVert b_k\rVert^2` (e.g. balanced init), by conservation of
    :math:`a_k^2 - \lVert b_k\rVert^2`.  Measured deviation: in the main regime the negative
    boundary :math:`\varphi_\mu` is shifted downward by a band of width :math:`O(\kappa)`
    (neurons that have not left the both-region before :math:`\mu(t)` starts rotating
    are rescued); the Phase-I chapter excludes that band from its fate check.

    Parameters
    ----------
    data : TwoPointData
        With :math:`\Delta\in(0, \pi/2)`.
    params : Params
        The initial parameters.

    Returns
    -------
    ndarray of str, shape (m,)
    """
    d = two_point(data)
    pr = check_params_for(params, d)
    s, phi, dead0 = _initial_plane(d, pr)
    bnd = fate_boundaries(d)
    reg = regime(d)
    lo_p, hi_p = bnd["positive"]
    lo_n, hi_n = bnd["negative"]
    surv = np.where(s > 0, (phi > lo_p) & (phi < hi_p), (phi > lo_n) & (phi < hi_n))
    pos_label = "condense" if reg == "main" else "slide"
    neg_label = "condense" if reg == "mirror" else "slide"
    out = np.where(surv, np.where(s > 0, pos_label, neg_label), "die").astype("<U8")
    out[dead0] = "dead"
    return out


def fate_boundary_distance(data: TwoPointData, params: Params) -> Array:
    r"""Angular distance (rad) of each neuron's initial angle to its nearest survival boundary.

    The boundaries are those of :func:`fate_boundaries` for the neuron's sign; ``inf`` for
    neurons that are dead from the start (their fate is read off :math:`t=0` exactly).
    """
    d = two_point(data)
    pr = check_params_for(params, d)
    s, phi, dead0 = _initial_plane(d, pr)
    bnd = fate_boundaries(d)
    lo = np.where(s > 0, bnd["positive"][0], bnd["negative"][0])
    hi = np.where(s > 0, bnd["positive"][1], bnd["negative"][1])

    def circ(x: Array, y: Array) -> Array:
        return np.abs(np.angle(np.exp(1j * (x - y))))

    dist = np.minimum(circ(phi, lo), circ(phi, hi))
    return np.where(dead0, np.inf, dist)


def condensation_rate(data: TwoPointData) -> float:
    r"""Condensation rate :math:`\lVert\mu\rVert` (this book's derivation).

    A balanced neuron active on both points has unit direction :math:`u` obeying
    :math:`\dot u = \operatorname{sign}(a)\,(\mu - (u^\top\mu)u)`, so its angle to
    :math:`\pm\mu` obeys :math:`\dot\psi = -\lVert\mu\rVert\sin\psi`: near the target the
    error decays like :math:`e^{-\lVert\mu\rVert t}`;
    :math:`\lVert\mu\rVert^2 = p^2 + (1-p)^2 - 2p(1-p)\cos\Delta`.
    """
    return float(np.linalg.norm(mu(two_point(data))))


def condensation_angle(data: TwoPointData, psi0: ArrayLike, t: ArrayLike) -> Array:
    r"""Angle to :math:`\operatorname{sign}(a_k)\,\mu` of a neuron active on both points (Phase I).

    This book's derivation.  While :math:`f\approx 0` a neuron active on both points obeys
    :math:`\dot b_k = a_k\mu`, :math:`\dot a_k = b_k^\top\mu`.  For a balanced neuron
    (:math:`|a_k| = \lVert b_k\rVert`) the unit vector :math:`u = b_k/\lVert b_k\rVert`
    follows :math:`\dot u = \operatorname{sign}(a_k)\,(\mu - (u^\top\mu)\,u)`, so the angle
    :math:`\psi` between :math:`b_k` and :math:`\operatorname{sign}(a_k)\mu` (in
    :math:`\mathbb R^d`) obeys :math:`\dot\psi = -\lVert\mu\rVert\sin\psi`, i.e.

    .. math:: \tan\frac{\psi(t)}{2} = \tan\frac{\psi(0)}{2}\,e^{-\lVert\mu\rVert t}.

    Positive neurons close in on :math:`\mu` (condensation, rate :math:`\lVert\mu\rVert`),
    negative ones on :math:`-\mu`, for as long as they stay active on both points.

    Parameters
    ----------
    data : TwoPointData
        The data (any :math:`\Delta`).
    psi0 : array_like
        Initial angles in :math:`[0, \pi)` (rad).
    t : array_like
        Times :math:`\ge 0`, broadcast against ``psi0``.

    Returns
    -------
    ndarray
        :math:`\psi(t)` in radians.
    """
    d = two_point(data, acute=False)
    ps = np.asarray(psi0, dtype=np.float64)
    if not np.all(np.isfinite(ps)) or np.any(ps < 0) or np.any(ps >= math.pi):
        raise ValueError("psi0 must hold angles in [0, pi) (radians)")
    tt = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(tt)) or np.any(tt < 0):
        raise ValueError("t must hold finite times >= 0")
    nm = condensation_rate(d)
    return np.asarray(2.0 * np.arctan(np.tan(0.5 * ps) * np.exp(-nm * tt)), dtype=np.float64)


def phase1_growth_bound(data: TwoPointData) -> float:
    r"""Rate :math:`\rho` bounding the growth of every neuron while :math:`f = 0` (Phase I).

    This book's derivation.  With :math:`f\equiv 0` the residual weights are the sample
    weights, and a neuron with active set :math:`A` follows :math:`\dot b_k = a_k v_A`,
    :math:`\dot a_k = b_k^\top v_A` with :math:`v_A = \sum_{i\in A} w_i y_i x_i`
    (:math:`\mu`, :math:`p\,x_+`, :math:`-(1-p)\,x_-` or 0; sliding uses a convex
    combination of two of them, projected on the boundary, which is no longer).  Hence
    :math:`\frac{d}{dt}(a_k^2 + \lVert b_k\rVert^2) = 4a_k b_k^\top v_A \le
    2\lVert v_A\rVert(a_k^2+\lVert b_k\rVert^2)` and

    .. math:: \lVert(a_k, b_k)(t)\rVert \le \lVert(a_k, b_k)(0)\rVert\,e^{\rho t},\qquad
              \rho = \max(\lVert\mu\rVert,\ p,\ 1-p).

    Every weight stays :math:`O(\kappa)` for :math:`t = O(1)`: Phase I moves directions,
    not sizes.  (For :math:`f\neq 0` the residuals carry an extra factor
    :math:`e^{\max_i|f(x_i)|}`.)
    """
    d = two_point(data, acute=False)
    return float(max(condensation_rate(d), d.p, 1.0 - d.p))


def sliding_rates(data: TwoPointData) -> dict[str, float]:
    r"""Growth rates of neurons sliding on a data boundary while :math:`f\approx 0`.

    This book's derivation.  A negative neuron held on :math:`b^\top x_+ = 0` (direction
    :math:`x_+^\perp`, active on :math:`x_-` only) gets the tangent part of
    :math:`-a\,(-(1-p))\,x_-`, so :math:`\dot a = (1-p)\sin\Delta\,\lVert b\rVert` and
    :math:`\lVert b\rVert` grows at rate :math:`(1-p)\sin\Delta` (balanced); a positive
    neuron held on :math:`b^\top x_- = 0` (direction :math:`x_-^\perp`) grows at rate
    :math:`p\sin\Delta`.  On the boundary the output of the other point is 0 exactly.

    Returns
    -------
    dict
        ``{"positive": p sin(delta), "negative": (1 - p) sin(delta)}``.
    """
    d = two_point(data)
    s = math.sin(d.delta)
    return {"positive": d.p * s, "negative": (1.0 - d.p) * s}
