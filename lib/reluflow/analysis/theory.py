r"""Closed-form predictions for the two-point problem and a numerical max-margin solver.

Everything here is evaluated from the data (and, where stated, the initial parameters)
alone, never from a simulated trajectory, so that it can be *compared* with one.

Provenance.  The paper (Wang & Ma, NeurIPS 2023) is the source of the phenomena: the four
phases, initial condensation, saddle-to-plateau dynamics, plateau escape, deactivation and
reactivation, increasing complexity.  Every *quantitative* statement below (rates, times,
levels, boundaries, the margin :math:`\sin\Delta/4`) is **this book's derivation** for the
setting of ``shared/paper/notes.md`` and is checked numerically in
``benchmarks/validate_theory.py`` (results in ``benchmarks/THEORY.md``).

Conventions.  Data :math:`x_+ = e_1` (label +1, weight :math:`p`) and
:math:`x_- = \cos\Delta\,e_1 + \sin\Delta\,e_2` (label -1, weight :math:`1-p`),
:math:`\Delta\in(0, \pi/2)`.  A neuron :math:`(a_k, b_k)` is described by the angle
:math:`\varphi_k\in(-\pi, \pi]` of the projection of :math:`b_k` onto the data plane
:math:`\operatorname{span}\{e_1, e_2\}`, measured from :math:`x_+` (so :math:`x_-` is at
:math:`\Delta`, :math:`x_-^\perp` at :math:`\Delta - \pi/2` and :math:`x_+^\perp` at
:math:`\pi/2`), and by the sign of :math:`a_k`.  Its activation region is

* ``"both"``: :math:`\varphi\in(\Delta - \pi/2, \pi/2)` (active on both points),
* ``"plus-only"``: :math:`\varphi\in(-\pi/2, \Delta - \pi/2)`,
* ``"minus-only"``: :math:`\varphi\in(\pi/2, \pi/2 + \Delta)`,
* ``"none"``: the rest (dead: zero gradient forever).

Near the origin (:math:`f\approx 0`) the residual weights are :math:`r = (p, -(1-p))` and a
neuron active on both points follows :math:`\dot b_k = a_k\mu`, :math:`\dot a_k = b_k^\top\mu`
with

.. math:: \mu = p\,x_+ - (1-p)\,x_- = \sum_i w_i y_i x_i .
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq, linprog, minimize
from scipy.special import expi

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.network import Params

__all__ = [
    "FATES",
    "REGIMES",
    "REGIONS",
    "MaxMarginResult",
    "condensation_angle",
    "condensation_rate",
    "escape_rate",
    "fate",
    "fate_boundaries",
    "fate_boundary_distance",
    "final_directions",
    "final_margin",
    "growth_coefficients",
    "max_margin",
    "mu",
    "mu_angle",
    "phase1_growth_bound",
    "phase4_angle",
    "phase4_log10_time",
    "phase4_loss",
    "phase4_slow_manifold",
    "plane_angles",
    "plateau_escape_slope",
    "plateau_escape_time",
    "plateau_exit_output",
    "plateau_level",
    "plateau_output",
    "reactivation_condition",
    "reactivation_threshold",
    "regime",
    "region_bounds",
    "regions_of",
    "saddle_escape_time",
    "sliding_rates",
    "x_minus_perp",
    "x_plus_perp",
]

Array = NDArray[np.float64]

#: Phase-I fates of a neuron (see :func:`fate`).
FATES = ("condense", "slide", "die", "dead")

#: Regimes of :math:`(\Delta, p)` (see :func:`regime`).
REGIMES = ("main", "mu-plus-only", "mirror")

#: Activation regions of the data plane (see :func:`region_bounds`).
REGIONS = ("both", "plus-only", "minus-only", "none")

HALF_PI = 0.5 * math.pi


# --------------------------------------------------------------------------- checks
def _two_point(data: Any, *, acute: bool = True) -> TwoPointData:
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


def _params_for(params: Any, data: Dataset) -> Params:
    if not isinstance(params, Params):
        raise ValueError(f"params must be a reluflow.Params, got {type(params).__name__}")
    if params.d != data.d:
        raise ValueError(f"params.B must have d = data.d = {data.d} columns, got {params.d}")
    return params


def _kappa(kappa: Any) -> float:
    k = v.positive_finite("kappa", kappa)
    if not k < 1:
        raise ValueError(f"kappa must lie in the open interval (0, 1) (small init), got {kappa!r}")
    return k


# --------------------------------------------------------------------------- geometry
def mu(data: Dataset) -> Array:
    r"""The initial driving vector :math:`\mu = \sum_i w_i y_i x_i`.

    For :class:`~reluflow.TwoPointData` this is :math:`\mu = p\,x_+ - (1-p)\,x_-` (this
    book's notation, notes.md Sec. 3): the direction :math:`b` moves along,
    :math:`\dot b_k = a_k\mu`, for a neuron active on every point while :math:`f\approx 0`.

    Parameters
    ----------
    data : Dataset
        Any weighted data set.

    Returns
    -------
    ndarray, shape (d,)
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    return np.asarray((data.weights * data.y) @ data.X, dtype=np.float64)


def x_minus_perp(data: TwoPointData) -> Array:
    r"""Unit vector :math:`x_-^\perp` of the data plane, :math:`\perp x_-`, towards :math:`x_+`.

    :math:`x_-^\perp = (\sin\Delta, -\cos\Delta, 0, \dots)`, so
    :math:`\langle x_-^\perp, x_+\rangle = \sin\Delta` (notes.md Sec. 3); angle
    :math:`\Delta - \pi/2`.
    """
    d = _two_point(data, acute=False)
    out = np.zeros(d.d)
    out[0], out[1] = math.sin(d.delta), -math.cos(d.delta)
    return out


def x_plus_perp(data: TwoPointData) -> Array:
    r"""Unit vector :math:`x_+^\perp = e_2`, :math:`\perp x_+`, on the side of :math:`x_-`.

    :math:`\langle x_+^\perp, x_-\rangle = \sin\Delta`; angle :math:`\pi/2`.
    """
    d = _two_point(data, acute=False)
    out = np.zeros(d.d)
    out[1] = 1.0
    return out


def plane_angles(B: ArrayLike, data: TwoPointData) -> Array:
    r"""Plane angle :math:`\varphi = \operatorname{atan2}(b_2, b_1)\in(-\pi, \pi]` of each row.

    The projection onto the data plane :math:`\operatorname{span}\{e_1, e_2\}` decides the
    activation pattern and its motion (the orthogonal part of :math:`b_k` is frozen).

    Parameters
    ----------
    B : array_like, shape (..., d)
        Input weights (or any vectors of the ambient space).
    data : TwoPointData
        Fixes the plane and ``d``.
    """
    d = _two_point(data, acute=False)
    arr = np.asarray(B, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != d.d:
        raise ValueError(f"B must have last dimension d = {d.d}, got shape {arr.shape}")
    return np.arctan2(arr[..., 1], arr[..., 0])


def mu_angle(data: TwoPointData) -> float:
    r"""Plane angle of :math:`\mu`.

    :math:`\varphi_\mu = \operatorname{atan2}(-(1-p)\sin\Delta,\ p - (1-p)\cos\Delta)`.
    """
    m = mu(_two_point(data, acute=False))
    return float(math.atan2(m[1], m[0]))


def region_bounds(data: TwoPointData) -> dict[str, tuple[float, float]]:
    r"""The four activation regions as open angle intervals ``(lo, hi)`` (radians).

    ``"both"`` :math:`(\Delta-\pi/2, \pi/2)`, ``"plus-only"`` :math:`(-\pi/2, \Delta-\pi/2)`,
    ``"minus-only"`` :math:`(\pi/2, \pi/2+\Delta)`, ``"none"``
    :math:`(\pi/2+\Delta, 3\pi/2)` (wrapping through :math:`\pi`).  Exact geometry.
    """
    d = _two_point(data)
    D = d.delta
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
    d = _two_point(data, acute=False)
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

    * ``"main"``: :math:`p\cos\Delta > 1-p` (notes.md): :math:`\mu` is active on both points;
      positive neurons condense on :math:`\mu`, negative ones slide on :math:`x_+^\perp`.
    * ``"mu-plus-only"``: :math:`(1-p)\cos\Delta < p \le (1-p)/\cos\Delta`: :math:`\mu` is active
      on :math:`x_+` only; both groups slide from the start (positive on :math:`x_-^\perp`,
      negative on :math:`x_+^\perp`), no condensation on :math:`\mu`.
    * ``"mirror"``: :math:`p \le (1-p)\cos\Delta`: :math:`\mu` is active on neither point; the
      main regime with the two classes exchanged (negative neurons condense on
      :math:`-\mu`, positive ones slide on :math:`x_-^\perp`).

    (:math:`\mu` active on :math:`x_-` only is impossible for an acute :math:`\Delta`.)

    Parameters
    ----------
    delta : float or TwoPointData
        :math:`\Delta\in(0, \pi/2)`, or a data set (then ``p`` must be omitted).
    p : float, optional
        :math:`p\in(0, 1)`.
    """
    if isinstance(delta, TwoPointData):
        if p is not None:
            raise ValueError("p must be omitted when a TwoPointData is given")
        D, pp = _two_point(delta).delta, delta.p
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


# --------------------------------------------------------------------------- fate
def fate_boundaries(data: TwoPointData) -> dict[str, tuple[float, float]]:
    r"""Survival intervals of the initial angle, per output sign (this book's derivation).

    With :math:`f\approx 0` (Phase I), following the piecewise-linear fields region by region
    (and the Filippov sliding rule on :math:`b^\top x_\mp = 0`), a neuron survives iff

    * :math:`a_k > 0`: :math:`\varphi \in (-\pi/2,\ \min(\pi/2, \varphi_\mu + \pi))`;
    * :math:`a_k < 0`: :math:`\varphi \in (\max(\Delta - \pi/2, \varphi_\mu),\ \pi/2 + \Delta)`,

    with :math:`\varphi_\mu` the angle of :math:`\mu`.  In the main regime these are
    :math:`(-\pi/2, \pi/2)` and :math:`(\varphi_\mu, \pi/2+\Delta)` as in notes.md.

    Returns
    -------
    dict
        ``{"positive": (lo, hi), "negative": (lo, hi)}`` in radians.
    """
    d = _two_point(data)
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
    are rescued); see ``benchmarks/THEORY.md``.

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
    d = _two_point(data)
    pr = _params_for(params, d)
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
    d = _two_point(data)
    pr = _params_for(params, d)
    s, phi, dead0 = _initial_plane(d, pr)
    bnd = fate_boundaries(d)
    lo = np.where(s > 0, bnd["positive"][0], bnd["negative"][0])
    hi = np.where(s > 0, bnd["positive"][1], bnd["negative"][1])

    def circ(x: Array, y: Array) -> Array:
        return np.abs(np.angle(np.exp(1j * (x - y))))

    dist = np.minimum(circ(phi, lo), circ(phi, hi))
    return np.where(dead0, np.inf, dist)


# --------------------------------------------------------------------------- rates and times
def condensation_rate(data: TwoPointData) -> float:
    r"""Condensation rate :math:`\lVert\mu\rVert` (this book's derivation).

    A balanced neuron active on both points has unit direction :math:`u` obeying
    :math:`\dot u = \operatorname{sign}(a)\,(\mu - (u^\top\mu)u)`, so its angle to
    :math:`\pm\mu` obeys :math:`\dot\psi = -\lVert\mu\rVert\sin\psi`: near the target the
    error decays like :math:`e^{-\lVert\mu\rVert t}`;
    :math:`\lVert\mu\rVert^2 = p^2 + (1-p)^2 - 2p(1-p)\cos\Delta`.
    """
    return float(np.linalg.norm(mu(_two_point(data))))


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
    d = _two_point(data, acute=False)
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
    d = _two_point(data, acute=False)
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
    d = _two_point(data)
    s = math.sin(d.delta)
    return {"positive": d.p * s, "negative": (1.0 - d.p) * s}


def plateau_output(data: TwoPointData, t: ArrayLike, t0: float, f0: float,
                   *, leader: str = "positive") -> Array:
    r"""Output of the leading point while the leading group slides (the plateau; this book's).

    When every alive neuron of the leading group is held on the other point's boundary
    (positive neurons on :math:`x_-^\perp` in the main regime) and the other group is still
    negligible, the margin :math:`g = y_\ell f(x_\ell)` of the leading point obeys
    :math:`\dot g = 2\sin\Delta\,w_\ell e^{-g}\,g` (each balanced slider grows at rate
    :math:`w_\ell e^{-g}\sin\Delta`, and :math:`g = \sin\Delta\sum a_k^2`), while the
    waiting point keeps :math:`f = 0` exactly.  Separating variables,

    .. math:: \mathrm{Ei}(g(t)) = \mathrm{Ei}(g_0) + 2 w_\ell\sin\Delta\,(t - t_0),

    so the loss :math:`L = w_\ell e^{-g} + (1 - w_\ell)` creeps down to the plateau level
    :math:`1-w_\ell` only like :math:`1/(t\log t)`.

    Parameters
    ----------
    data : TwoPointData
    t : array_like
        Times :math:`\ge t_0`.
    t0 : float
        Start of the sliding stage.
    f0 : float
        :math:`g(t_0) > 0`.
    leader : {"positive", "negative"}
        The sliding group: ``"positive"`` (:math:`w_\ell = p`, :math:`g = f(x_+)`) in the
        main regime, ``"negative"`` (:math:`w_\ell = 1-p`, :math:`g = -f(x_-)`) in the
        mirror regime.

    Returns
    -------
    ndarray
        :math:`g(t)`, same shape as ``t``.
    """
    d = _two_point(data)
    if leader not in ("positive", "negative"):
        raise ValueError(f"leader must be one of ('positive', 'negative'), got {leader!r}")
    g0 = v.positive_finite("f0", f0)
    s0 = v.real_scalar("t0", t0)
    tt = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(tt)) or np.any(tt < s0):
        raise ValueError("t must hold finite times >= t0")
    w = d.p if leader == "positive" else 1.0 - d.p
    c = 2.0 * w * math.sin(d.delta)
    e0 = float(expi(g0))
    out = np.empty(tt.shape)
    for idx, ti in np.ndenumerate(tt):
        rhs = e0 + c * (float(ti) - s0)
        if rhs <= e0:
            out[idx] = g0
            continue
        hi = g0 + 1.0
        while float(expi(hi)) < rhs:
            hi *= 2.0
        out[idx] = brentq(lambda g, r=rhs: float(expi(g)) - r, g0, hi, xtol=1e-13)
    return out


def escape_rate(data: TwoPointData) -> float:
    r"""Growth rate :math:`\lambda` of the leading group's amplitude (this book's derivation).

    The output of the leading group grows like :math:`e^{2\lambda t}`:
    :math:`\lambda = \lVert\mu\rVert` in the ``"main"`` and ``"mirror"`` regimes
    (condensed group, :math:`\dot a = \lVert\mu\rVert a`), and
    :math:`\lambda = \max(p, 1-p)\sin\Delta` in the ``"mu-plus-only"`` regime (a neuron
    sliding on :math:`x_\mp^\perp` grows at rate :math:`w_\pm\sin\Delta`).
    """
    d = _two_point(data)
    if regime(d) == "mu-plus-only":
        return max(d.p, 1.0 - d.p) * math.sin(d.delta)
    return condensation_rate(d)


def growth_coefficients(data: TwoPointData, params: Params) -> Array:
    r"""Amplitudes :math:`c_k` of the condensing neurons in Phase I (this book's derivation).

    With :math:`f\approx 0`, a positive neuron active on both points obeys the *linear*
    system :math:`\dot b = a\mu`, :math:`\dot a = b^\top\mu`: with
    :math:`\beta = b^\top\hat\mu`, :math:`\frac{d}{dt}(a+\beta) = \lVert\mu\rVert(a+\beta)`
    and :math:`b - \beta\hat\mu` is constant, so for large :math:`t`

    .. math:: a_k(t) \simeq \beta_k(t) \simeq \tfrac12 c_k e^{\lVert\mu\rVert t}, \qquad
              c_k = a_k(0) + b_k(0)^\top\hat\mu .

    A positive neuron that starts in the ``"plus-only"`` region first follows
    :math:`\dot b = p\,a\,x_+`, :math:`\dot a = p\,b^\top x_+` (exactly solvable): with
    :math:`\beta_+ = b^\top x_+`, :math:`D = a_0^2 - \beta_{+,0}^2`, it reaches the
    both-region at :math:`\beta_+^* = -b_2\tan\Delta` after
    :math:`e^{pt^*} = u = (\beta_+^* + \sqrt{\beta_+^{*2} + D})/(a_0 + \beta_{+,0})`, with
    :math:`a^* = \tfrac12[(a_0+\beta_{+,0})u + (a_0-\beta_{+,0})/u]`; then
    :math:`c_k = (a^* + b^{*\top}\hat\mu)\,u^{-\lVert\mu\rVert/p}`.

    Returns ``0`` for every neuron whose predicted fate is not ``"condense"`` (only the
    ``"main"`` regime is covered; other regimes raise ``ValueError``).
    """
    d = _two_point(data)
    pr = _params_for(params, d)
    if regime(d) != "main":
        raise ValueError("growth_coefficients needs the main regime p cos(delta) > 1 - p")
    mh = mu(d) / condensation_rate(d)
    nm = condensation_rate(d)
    labels = fate(d, pr)
    cond = labels == "condense"
    a0 = pr.a
    beta_p = pr.B @ d.x_plus
    b2 = pr.B[:, 1]
    reg = regions_of(pr.B, d)
    c = np.where(cond, a0 + pr.B @ mh, 0.0)
    po = cond & (reg == "plus-only")
    if np.any(po):
        a_ = a0[po]
        bp = beta_p[po]
        bstar = -b2[po] * math.tan(d.delta)
        D = a_**2 - bp**2
        u = (bstar + np.sqrt(np.maximum(bstar**2 + D, 0.0))) / (a_ + bp)
        astar = 0.5 * ((a_ + bp) * u + (a_ - bp) / u)
        Bstar = pr.B[po].copy()
        Bstar[:, 0] = bstar
        cstar = astar + Bstar @ mh
        c[po] = cstar * u ** (-nm / d.p)
    return np.asarray(c, dtype=np.float64)


def _mean_h2(data: TwoPointData, n_quad: int = 20001) -> float:
    r""":math:`H = \frac{1}{2\pi}\int h(\varphi)^2\,1[\mathrm{condense}]\,d\varphi` (d = 2)."""
    phi = np.linspace(-HALF_PI, HALF_PI, n_quad)[1:-1]
    B = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    h = growth_coefficients(data, Params(np.ones(phi.size), B))
    return float(np.trapezoid(h**2, phi) / (2 * math.pi))


def saddle_escape_time(
    data: TwoPointData,
    kappa: float | None = None,
    *,
    params: Params | None = None,
    m: int | None = None,
    drop: float = 0.01,
) -> float:
    r"""Predicted saddle-escape time (this book's derivation).

    Definition matched by :func:`reluflow.analysis.phases.detect_phases`: the first time the loss
    has dropped by the fraction ``drop`` of its initial value, :math:`L(t) = (1-\text{drop})L(0)`.

    Leading order (any regime): :math:`t_\mathrm{esc} \approx \log(1/\kappa)/\lambda` with
    :math:`\lambda` = :func:`escape_rate` (:math:`\lVert\mu\rVert` in the main regime).

    With the O(1) term (main regime, balanced Gaussian init): linearising the loss,
    :math:`L(0) - L(t) \approx \sum_k a_k b_k^\top\mu \approx \lVert\mu\rVert
    e^{2\lVert\mu\rVert t}\sum_k c_k^2/4` (:func:`growth_coefficients`), hence

    .. math:: t_\mathrm{esc} = \frac{1}{2\lVert\mu\rVert}
              \log\frac{\text{drop}\cdot L(0)}{\lVert\mu\rVert\,S},\qquad S = \sum_k c_k^2/4 .

    Given ``params`` the sum is exact for that initialization.  Given ``kappa`` and ``m``
    (``d = 2``, :math:`b_k = \kappa g_k`, :math:`a_k = \pm\lVert b_k\rVert`) its expectation
    is :math:`S = m\kappa^2 H/4` with :math:`H = \frac1{2\pi}\int h(\varphi)^2 d\varphi`
    over the condensing angles (:math:`h` = :math:`c` of a unit neuron), i.e.

    .. math:: t_\mathrm{esc} = \frac{\log(1/\kappa)}{\lVert\mu\rVert}
              + \frac{1}{2\lVert\mu\rVert}\log\frac{4\,\text{drop}}{\lVert\mu\rVert\,m H},

    using :math:`L(0)\approx 1`; equivalently :math:`m\kappa^2 = M_0/4` with the initial
    mass :math:`M_0 = \sum_k a_k^2 + \lVert b_k\rVert^2`.  Ignores the (slower) negative
    group and the nonlinearity of the loss near ``drop``.

    Parameters
    ----------
    data : TwoPointData
    kappa : float, optional
        Initialization scale in (0, 1); alone, gives the leading order only.
    params : Params, optional
        The actual initialization (main regime): exact O(1) term.
    m : int, optional
        Width, with ``kappa`` and ``d = 2``: expected O(1) term.
    drop : float
        Loss-drop fraction in (0, 1) defining the escape.
    """
    d = _two_point(data)
    dr = v.open_interval("drop", drop, 0.0, 1.0)
    if params is not None:
        if kappa is not None or m is not None:
            raise ValueError("give either params, or kappa (and optionally m), not both")
        pr = _params_for(params, d)
        nm = condensation_rate(d)
        c = growth_coefficients(d, pr)
        S = float(np.sum(c**2) / 4)
        if not S > 0:
            raise ValueError("params has no condensing neuron; no escape is predicted")
        pre = pr.B @ d.X.T
        f0 = np.maximum(pre, 0.0).T @ pr.a
        L0 = float(d.weights @ np.exp(-d.y * f0))
        return float(math.log(dr * L0 / (nm * S)) / (2 * nm))
    if kappa is None:
        raise ValueError("kappa must be given (a number in (0, 1)) unless params is given")
    k = _kappa(kappa)
    lam = escape_rate(d)
    lead = math.log(1.0 / k) / lam
    if m is None:
        return lead
    mm = v.int_at_least("m", m, 1)
    if d.d != 2:
        raise ValueError("the expected O(1) term (kappa, m) is derived for d = 2; pass params")
    if regime(d) != "main":
        raise ValueError("the O(1) term is derived for the main regime p cos(delta) > 1 - p")
    H = _mean_h2(d)
    return lead + math.log(4 * dr / (lam * mm * H)) / (2 * lam)


def plateau_level(data: TwoPointData) -> float:
    r"""Loss level of the plateau (this book's derivation).

    The leading group fits its own point and stops feeding the other (deactivation), so the
    loss tends to the weight of the point still waiting: :math:`1-p` in the ``"main"``
    regime (notes.md), :math:`p` in the ``"mirror"`` regime, and
    :math:`\min(p, 1-p)` in the ``"mu-plus-only"`` regime (two decoupled sliding groups;
    no plateau when :math:`p = 1/2`).
    """
    d = _two_point(data)
    reg = regime(d)
    if reg == "main":
        return 1.0 - d.p
    if reg == "mirror":
        return d.p
    return min(d.p, 1.0 - d.p)


def reactivation_threshold(data: TwoPointData) -> float:
    r"""Value of :math:`f(x_+)` at which sliding negative neurons reactivate (at :math:`f(x_-)=0`).

    A negative neuron held on :math:`b^\top x_+ = 0` keeps sliding while the field on the
    both-side, :math:`-|a|(r_+ x_+ + r_- x_-)`, points into the boundary, i.e. while
    :math:`r_+ > |r_-|\cos\Delta`:

    .. math:: p\,e^{-f(x_+)} < (1-p)\,e^{f(x_-)}\cos\Delta \iff \text{reactivation}

    (notes.md; derived in this book), i.e. :math:`f(x_+) > \log\frac{p}{(1-p)\cos\Delta}`
    at :math:`f(x_-) = 0`.  In the main regime this is an O(1) value of :math:`f(x_+)`
    reached just after the saddle escape, i.e. at the *start* of the plateau (measured).
    """
    d = _two_point(data)
    return float(math.log(d.p / ((1.0 - d.p) * math.cos(d.delta))))


def reactivation_condition(data: TwoPointData, f: ArrayLike) -> NDArray[np.bool_]:
    r"""Whether :math:`p\,e^{-f_+} < (1-p)\,e^{f_-}\cos\Delta` for outputs ``f`` of shape (..., 2).

    The comparison is done in log form, :math:`\log p - f_+ < \log(1-p) + f_- + \log\cos\Delta`.
    """
    d = _two_point(data)
    fa = np.asarray(f, dtype=np.float64)
    if fa.ndim < 1 or fa.shape[-1] != 2:
        raise ValueError(f"f must have shape (..., 2) (outputs on x+ and x-), got {fa.shape}")
    lhs = math.log(d.p) - fa[..., 0]
    rhs = math.log(1.0 - d.p) + fa[..., 1] + math.log(math.cos(d.delta))
    return np.asarray(lhs < rhs)


#: Formulas of :func:`plateau_escape_slope` and :func:`plateau_escape_time`.
_SLOPE_FORMULAS = ("notes", "book")


def _plateau_g(data: TwoPointData, ell: float) -> float:
    r"""Root :math:`g` of :math:`\mathrm{Ei}(g) = \mathrm{Ei}(g_0) + 2p\sin\Delta\,\tau(\ell)`.

    :math:`g_0` = :func:`reactivation_threshold` (clipped to >= 1e-3) and
    :math:`\tau(\ell) = (s_\mathrm{notes} - 1/\lVert\mu\rVert)\,\ell`.
    """
    nm = condensation_rate(data)
    s_notes = (1.0 - math.sin(data.delta)) / nm + 1.0 / (1.0 - data.p)
    g0 = max(reactivation_threshold(data), 1e-3)
    rhs = float(expi(g0)) + 2.0 * data.p * math.sin(data.delta) * (s_notes - 1.0 / nm) * ell
    hi = g0 + 1.0
    while float(expi(hi)) < rhs:
        hi *= 2.0
    return float(brentq(lambda g: float(expi(g)) - rhs, g0, hi, xtol=1e-14))


def plateau_escape_slope(
    data: TwoPointData, formula: str = "book", kappa: float | None = None
) -> float:
    r"""Slope :math:`dT_\mathrm{III}/d\log(1/\kappa)` of the plateau-escape time (main regime).

    * ``"notes"`` (first estimate, notes.md; re-derived here): the negative sliders grow at
      rate :math:`(1-p)\sin\Delta` until :math:`t_\mathrm{esc}\approx\ell/\lVert\mu\rVert`
      (:math:`\ell = \log(1/\kappa)`), then, reactivated and aligned with
      :math:`-\mu(t)\to x_-`, at rate :math:`1-p`, until they are O(1):

      .. math:: s_\mathrm{notes} = \frac{1-\sin\Delta}{\lVert\mu\rVert} + \frac{1}{1-p}.

    * ``"book"`` (this book's correction, measured in ``benchmarks/THEORY.md``): during the
      plateau the positive group slides on :math:`x_-^\perp`, so
      :math:`\dot f_+ = 2\sin\Delta\, r_+ f_+` with :math:`r_+ = p e^{-f_+}`, i.e.
      :math:`\mathrm{Ei}(f_+) = \mathrm{Ei}(g_0) + 2p\sin\Delta\,\tau` (:math:`\tau` = time
      since reactivation, where :math:`f_+ = g_0` = :func:`reactivation_threshold`), and
      :math:`r_+` decays only like :math:`1/(\tau\log\tau)`.  The reactivated negative group
      grows at :math:`\lVert\mu(t)\rVert \approx (1-p) - r_+\cos\Delta`, so it loses exactly
      :math:`\cos\Delta\int r_+\,d\tau = \tfrac12\cot\Delta\,\log(f_+/g_0)` of
      log-amplitude (:math:`r_+ d\tau = df_+/(2\sin\Delta f_+)`), which costs
      :math:`\cot\Delta\,\log(f_+/g_0)/(2(1-p))` of time.  With the plateau length
      :math:`\tau \approx (s_\mathrm{notes} - 1/\lVert\mu\rVert)\,\ell`:

      .. math:: T_\mathrm{III} \approx s_\mathrm{notes}\,\ell +
                \frac{\cot\Delta}{2(1-p)}\log g(\ell) + O(1), \qquad
                \mathrm{Ei}(g) = \mathrm{Ei}(g_0) + 2p\sin\Delta
                \Big(s_\mathrm{notes} - \frac{1}{\lVert\mu\rVert}\Big)\ell .

      Its local slope (returned, by central difference at :math:`\ell = \log(1/\kappa)`)
      exceeds :math:`s_\mathrm{notes}` by a term that vanishes slowly as
      :math:`\kappa\to 0` and grows as :math:`\Delta\to 0`.  Needs ``kappa``.
    """
    d = _two_point(data)
    if formula not in _SLOPE_FORMULAS:
        raise ValueError(f"formula must be one of {_SLOPE_FORMULAS}, got {formula!r}")
    if regime(d) != "main":
        raise ValueError("plateau_escape_slope is derived for the main regime p cos(delta) > 1 - p")
    nm = condensation_rate(d)
    s_notes = (1.0 - math.sin(d.delta)) / nm + 1.0 / (1.0 - d.p)
    if formula == "notes":
        return s_notes
    if kappa is None:
        raise ValueError("kappa must be given (a number in (0, 1)) for formula='book'")
    ell = math.log(1.0 / _kappa(kappa))
    h = 1e-3 * ell
    return (_t3_book(d, ell + h) - _t3_book(d, ell - h)) / (2.0 * h)


def _t3_book(d: TwoPointData, ell: float) -> float:
    nm = condensation_rate(d)
    s_notes = (1.0 - math.sin(d.delta)) / nm + 1.0 / (1.0 - d.p)
    return s_notes * ell + math.log(_plateau_g(d, ell)) / (2.0 * (1.0 - d.p) * math.tan(d.delta))


def plateau_escape_time(data: TwoPointData, kappa: float, formula: str = "book") -> float:
    r"""Plateau-escape time up to a :math:`\kappa`-independent O(1) constant (main regime).

    ``"notes"``: :math:`s_\mathrm{notes}\log(1/\kappa)`; ``"book"``: plus
    :math:`\frac{\cot\Delta}{2(1-p)}\log g(\log(1/\kappa))` (see
    :func:`plateau_escape_slope`).  Compare slopes or differences in :math:`\log(1/\kappa)`,
    not absolute values: the O(1) constant is not predicted.
    """
    d = _two_point(data)
    ell = math.log(1.0 / _kappa(kappa))
    s_notes = plateau_escape_slope(d, "notes")
    if formula == "notes":
        return s_notes * ell
    if formula not in _SLOPE_FORMULAS:
        raise ValueError(f"formula must be one of {_SLOPE_FORMULAS}, got {formula!r}")
    return _t3_book(d, ell)


def phase4_loss(data: TwoPointData, t: ArrayLike, margin: float | None = None) -> Array:
    r"""Phase-IV loss asymptote :math:`L(t) \simeq 1/(4\gamma\, t\log t)` (this book's derivation).

    For the exponential loss and a 2-homogeneous network,
    :math:`\frac{d}{dt}\lVert\theta\rVert^2 = 4\sum_i w_i e^{-q_i}q_i \approx 4 L q` with
    :math:`q = \min_i y_i f(x_i) \approx \gamma\lVert\theta\rVert^2`; then
    :math:`\dot q \approx 4\gamma q L` and :math:`L \approx e^{-q}` (up to the weight), so
    :math:`e^q/q \approx 4\gamma t` and :math:`L \approx 1/(4\gamma t \log t)`: the
    :math:`1/(t\log t)` rate (Lyu & Li 2020).  ``margin`` defaults to :func:`final_margin`.
    """
    d = _two_point(data)
    g = final_margin(d) if margin is None else v.positive_finite("margin", margin)
    ta = v.finite_array("t", np.atleast_1d(np.asarray(t, dtype=np.float64)), 1)
    if np.any(ta <= 1.0):
        raise ValueError("t must be > 1 (the asymptote 1/(t log t) needs log t > 0)")
    return np.asarray(1.0 / (4.0 * g * ta * np.log(ta)), dtype=np.float64)


def final_margin(data: TwoPointData) -> float:
    r"""Final normalized margin :math:`\min_i y_i f(x_i)/\lVert\theta\rVert^2 \to \sin\Delta/4`.

    Value of the two-direction solution (positive mass on :math:`x_-^\perp`, negative mass on
    :math:`x_+^\perp`, equal masses, balanced neurons): each point gets margin
    :math:`\sin\Delta\cdot M/2` out of :math:`\lVert\theta\rVert^2 = 2M` (notes.md; this
    book's derivation).  :func:`max_margin` confirms it is the maximum.
    """
    d = _two_point(data)
    return math.sin(d.delta) / 4.0


def final_directions(data: TwoPointData) -> dict[str, Array]:
    r"""Directions of the max-margin solution: ``{"positive": x_-^perp, "negative": x_+^perp}``."""
    d = _two_point(data)
    return {"positive": x_minus_perp(d), "negative": x_plus_perp(d)}


# --------------------------------------------------------------------------- max margin
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


def _span_basis(X: Array) -> Array:
    """Orthonormal basis (d, r) of the row span of X."""
    _, sv, Vt = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(sv > 1e-12 * max(sv.max(), 1e-300)))
    return np.asarray(Vt[:r].T, dtype=np.float64)


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
    Q = _span_basis(data.X)
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


# --------------------------------------------------------------------------- Phases III-IV
def plateau_exit_output(data: TwoPointData, kappa: float) -> float:
    r"""Predicted :math:`f(x_+)` when the loss leaves the plateau (main regime; this book's).

    The positive group slides on :math:`x_-^\perp` through the plateau, so
    :math:`g = f(x_+)` obeys :math:`\mathrm{Ei}(g) = \mathrm{Ei}(g_0) + 2p\sin\Delta\,\tau`
    (:math:`\tau` = time since the reactivation, where :math:`g = g_0` =
    :func:`reactivation_threshold`).  With the plateau length
    :math:`\tau \approx (s_\mathrm{notes} - 1/\lVert\mu\rVert)\log(1/\kappa)` of
    :func:`plateau_escape_slope` this gives the root :math:`g(\ell)` used by the ``"book"``
    formula there; the loss at the end of the plateau is then about
    :math:`(1-p) + p\,e^{-g}`.  Leading order in :math:`\log(1/\kappa)` (the O(1) part
    of :math:`\tau` is not predicted).

    Parameters
    ----------
    data : TwoPointData
        In the main regime :math:`p\cos\Delta > 1-p`.
    kappa : float
        Initialization scale in (0, 1).

    Returns
    -------
    float
        :math:`g(\log(1/\kappa))`.
    """
    d = _two_point(data)
    if regime(d) != "main":
        raise ValueError("plateau_exit_output is derived for the main regime p cos(delta) > 1 - p")
    return _plateau_g(d, math.log(1.0 / _kappa(kappa)))


def _phase4_angle_arg(d: TwoPointData, phi: ArrayLike) -> Array:
    ph = np.asarray(phi, dtype=np.float64)
    if not np.all(np.isfinite(ph)) or np.any(ph < d.delta - 1e-12) or np.any(ph > HALF_PI + 1e-12):
        raise ValueError(f"phi must lie in [delta, pi/2] = [{d.delta:g}, {HALF_PI:g}] (rad), "
                         f"got values in [{np.min(ph):g}, {np.max(ph):g}]")
    return np.clip(ph, d.delta, HALF_PI)


def phase4_slow_manifold(data: TwoPointData, phi: ArrayLike) -> dict[str, Array]:
    r"""The Phase-IV slow manifold, parametrized by the negative group's angle (this book's).

    Late in training (main regime) the positive group sits on :math:`x_-^\perp` (active on
    :math:`x_+` only) with mass :math:`W_+ = \sum_{a_k>0}\lVert b_k\rVert^2`, and the
    negative group has condensed on one angle :math:`\varphi\in[\Delta, \pi/2]` (active on
    both points; :math:`\psi = \varphi - \Delta`) with mass :math:`W_-`.  Balanced neurons give

    .. math:: f(x_+) = W_+\sin\Delta - W_-\cos\varphi, \qquad f(x_-) = -W_-\cos\psi,
              \qquad \lVert\theta\rVert^2 = 2(W_+ + W_-).

    Both margins grow like :math:`\log t` while their difference stays O(1), so to leading
    order they are equal, which fixes the mass ratio and the normalized margin:

    .. math:: R = \frac{W_+}{W_-} = \frac{\cos\psi + \cos\varphi}{\sin\Delta}, \qquad
              \gamma(\varphi) = \frac{\sin\Delta\cos\psi}
              {2(\sin\Delta + \cos\psi + \cos\varphi)} \le \frac{\sin\Delta}{4},

    with equality only at :math:`\varphi = \pi/2` (:math:`x_+^\perp`).  With the loss
    terms :math:`\rho_\pm = w_\pm e^{\mp f(x_\pm)}` the flow gives
    :math:`\frac{d}{dt}\log W_+ = 2\rho_+\sin\Delta`,
    :math:`\frac{d}{dt}\log W_- = 2(\rho_-\cos\psi - \rho_+\cos\varphi)` and
    :math:`\dot\varphi = \rho_+\sin\varphi - \rho_-\sin\psi`; staying on the manifold
    (:math:`\frac{d}{dt}\log R = R'(\varphi)\dot\varphi/R`) fixes
    :math:`x = \rho_+/\rho_-`:

    .. math:: x = \frac{2\cos\psi\,C + S\sin\psi}{2(\sin\Delta + \cos\varphi)\,C + S\sin\varphi},
              \qquad S = \sin\psi + \sin\varphi,\ C = \cos\psi + \cos\varphi,

    hence, with the loss :math:`L = \rho_+ + \rho_-` and the *loss clock*
    :math:`\tau = \int L\,dt`,

    .. math:: \frac{d\varphi}{d\tau} = \frac{x\sin\varphi - \sin\psi}{1 + x} > 0,
              \qquad \frac{d\varphi}{d\log\log t} = \frac{x\sin\varphi - \sin\psi}
              {4\gamma(\varphi)(1 + x)}

    (the second with :math:`L \simeq 1/(4\gamma t\log t)`, :func:`phase4_loss`).

    Parameters
    ----------
    data : TwoPointData
        Main regime.
    phi : array_like
        Angles of the negative group in :math:`[\Delta, \pi/2]` (rad).

    Returns
    -------
    dict of ndarray
        ``mass_fraction`` :math:`W_+/(W_+ + W_-) = R/(1+R)`; ``margin`` :math:`\gamma`;
        ``n_eff`` :math:`\exp(-\sum_g q_g\log q_g)` over the two group mass fractions
        (the index of :func:`reluflow.analysis.phases.effective_directions`); ``loss_ratio``
        :math:`x`; ``rate_loss_clock`` :math:`d\varphi/d\tau`; ``rate_loglog``
        :math:`d\varphi/d\log\log t`.
    """
    d = _two_point(data)
    if regime(d) != "main":
        raise ValueError("phase4_slow_manifold is derived for the main regime p cos(delta) > 1 - p")
    ph = _phase4_angle_arg(d, phi)
    sD = math.sin(d.delta)
    psi = ph - d.delta
    C = np.cos(psi) + np.cos(ph)
    S = np.sin(psi) + np.sin(ph)
    R = C / sD
    q = R / (1.0 + R)
    gam = sD * np.cos(psi) / (2.0 * (sD + C))
    x = (2.0 * np.cos(psi) * C + S * np.sin(psi)) / (2.0 * (sD + np.cos(ph)) * C + S * np.sin(ph))
    rate = (x * np.sin(ph) - np.sin(psi)) / (1.0 + x)
    n_eff = np.exp(-(q * np.log(q) + (1.0 - q) * np.log(1.0 - q)))
    return {"mass_fraction": q, "margin": gam, "n_eff": n_eff, "loss_ratio": x,
            "rate_loss_clock": rate, "rate_loglog": rate / (4.0 * gam)}


_CLOCKS = ("loss", "loglog")


def phase4_angle(data: TwoPointData, phi0: float, elapsed: ArrayLike,
                 clock: str = "loss") -> Array:
    r"""Angle of the negative group along the Phase-IV slow manifold (this book's derivation).

    Integrates :math:`d\varphi/ds` of :func:`phase4_slow_manifold` from
    :math:`\varphi(0) = \varphi_0` (``scipy.integrate.solve_ivp``, rtol 1e-10).  The clock
    ``s`` is the loss clock :math:`\tau = \int L\,dt` (``clock="loss"``, exact on the
    manifold) or :math:`\log\log t` (``"loglog"``, using the asymptote
    :math:`L\simeq 1/(4\gamma t\log t)`).  The angle reaches :math:`\pi/2` at a finite
    clock value (the rate is positive there) and stays there: the neurons then slide on
    :math:`x_+^\perp`, the max-margin direction.

    Parameters
    ----------
    data : TwoPointData
        Main regime.
    phi0 : float
        Starting angle in :math:`[\Delta, \pi/2]` (rad).
    elapsed : array_like
        Clock increments :math:`s - s_0 \ge 0`.
    clock : {"loss", "loglog"}

    Returns
    -------
    ndarray
        :math:`\varphi` at each increment (same shape as ``elapsed``).
    """
    from scipy.integrate import solve_ivp

    d = _two_point(data)
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be one of {_CLOCKS}, got {clock!r}")
    p0 = float(_phase4_angle_arg(d, v.real_scalar("phi0", phi0)))
    s = np.asarray(elapsed, dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("elapsed must hold finite clock increments >= 0")
    key = "rate_loss_clock" if clock == "loss" else "rate_loglog"
    out = np.full(s.shape, p0)
    s_max = float(np.max(s)) if s.size else 0.0
    if s_max == 0.0 or p0 >= HALF_PI:
        return out

    def rhs(_s: float, y: Array) -> list[float]:
        return [float(phase4_slow_manifold(d, min(float(y[0]), HALF_PI))[key])]

    def reach(_s: float, y: Array) -> float:
        return float(y[0]) - HALF_PI

    setattr(reach, "terminal", True)  # noqa: B010 - solve_ivp reads event attributes
    sol = solve_ivp(rhs, (0.0, s_max), [p0], rtol=1e-10, atol=1e-12, dense_output=True,
                    events=reach)
    s_end = float(sol.t[-1])
    inside = s <= s_end
    out[inside] = np.minimum(sol.sol(s[inside])[0], HALF_PI)
    out[~inside] = HALF_PI
    return out


def phase4_log10_time(data: TwoPointData, phi0: float, t0: float, phi1: float) -> float:
    r""":math:`\log_{10} t` at which the negative group reaches angle ``phi1`` (this book's).

    From :math:`\varphi(t_0) = \varphi_0` along the slow manifold in the ``"loglog"`` clock
    of :func:`phase4_angle`: :math:`\log\log t_1 = \log\log t_0 + \int_{\varphi_0}^{\varphi_1}
    d\varphi / (d\varphi/d\log\log t)`.  Returned as :math:`\log_{10} t_1` because
    :math:`t_1` is astronomically large (it overflows a float for angles near
    :math:`\pi/2`).

    Parameters
    ----------
    data : TwoPointData
        Main regime.
    phi0, phi1 : float
        Start and target angles, :math:`\Delta \le \varphi_0 \le \varphi_1 \le \pi/2`.
    t0 : float
        Time :math:`> e` at which the angle is ``phi0``.
    """
    from scipy.integrate import quad

    d = _two_point(data)
    a = float(_phase4_angle_arg(d, v.real_scalar("phi0", phi0)))
    b = float(_phase4_angle_arg(d, v.real_scalar("phi1", phi1)))
    if b < a:
        raise ValueError(f"phi1 must be >= phi0 = {a!r}, got {phi1!r}")
    t_0 = v.positive_finite("t0", t0)
    if not t_0 > math.e:
        raise ValueError(f"t0 must be a finite time > e (so that log log t0 > 0), got {t0!r}")
    integral, _ = quad(lambda x: 1.0 / float(phase4_slow_manifold(d, x)["rate_loglog"]), a, b,
                       epsabs=1e-12, epsrel=1e-10)
    loglog1 = math.log(math.log(t_0)) + integral
    return float(math.exp(loglog1) / math.log(10.0))
