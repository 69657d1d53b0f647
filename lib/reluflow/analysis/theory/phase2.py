r"""Phase II, saddle to plateau: escape rate and time, plateau output and level.

This book's derivations for the two-point setting (conventions in
:mod:`reluflow.analysis.geometry`); each is checked numerically in the chapter that uses it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import expi

from reluflow.analysis.geometry import HALF_PI, mu, regime, regions_of, two_point
from reluflow.analysis.theory.phase1 import condensation_rate, fate
from reluflow.analysis.theory.scaling import loss_scale
from reluflow.engine import checks as v
from reluflow.engine.data import TwoPointData
from reluflow.engine.network import Params, check_params_for, loss_value

__all__ = [
    "escape_rate",
    "growth_coefficients",
    "loss_at_origin",
    "plateau_level",
    "plateau_output",
    "saddle_escape_time",
]

Array = NDArray[np.float64]


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
    d = two_point(data)
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
    d = two_point(data)
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
    d = two_point(data)
    pr = check_params_for(params, d)
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
    loss: str = "exp",
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
    (``d = 2``, :math:`b_k = \kappa u_k`, :math:`a_k = \pm\lVert b_k\rVert`) its expectation
    is :math:`S = m\kappa^2 H/4` with :math:`H = \frac1{2\pi}\int h(\varphi)^2 d\varphi`
    over the condensing angles (:math:`h` = :math:`c` of a unit neuron), i.e.

    .. math:: t_\mathrm{esc} = \frac{\log(1/\kappa)}{\lVert\mu\rVert}
              + \frac{1}{2\lVert\mu\rVert}\log\frac{4\,\text{drop}}{\lVert\mu\rVert\,m H},

    using :math:`L(0)\approx 1`; equivalently :math:`m\kappa^2 = M_0/4` with the initial
    mass :math:`M_0 = \sum_k a_k^2 + \lVert b_k\rVert^2`.  Ignores the (slower) negative
    group and the nonlinearity of the loss near ``drop``.

    Other losses (``loss="logistic"``).  Near the origin the residual weights are
    :math:`w_iy_i\,(-\ell'(0)) = w_iy_i/c` with :math:`c` =
    :func:`~reluflow.analysis.theory.loss_scale`, so the flow is the exponential one at
    the time :math:`t/c`, and :math:`L(0) - L(t) \approx \lVert\mu\rVert S
    e^{2\lVert\mu\rVert t/c}/c`; with :math:`L(0) = \ell(0)` (:func:`loss_at_origin`)
    every formula above becomes

    .. math:: t_\mathrm{esc} = \frac{c}{2\lVert\mu\rVert}
              \log\frac{c\,\text{drop}\cdot L(0)}{\lVert\mu\rVert\,S},

    i.e. :math:`c` times the exponential loss's time at the drop
    :math:`c\,\ell(0)\,\text{drop}` (the leading order is :math:`c\log(1/\kappa)/\lambda`).

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
    loss : {"exp", "logistic"}
        The loss of the run.

    Examples
    --------
    >>> from reluflow import TwoPointData
    >>> data = TwoPointData(0.3, 0.7)
    >>> exp, logistic = (saddle_escape_time(data, 1e-6, loss=name) for name in v.LOSSES)
    >>> round(logistic / exp, 12)
    2.0
    """
    d = two_point(data)
    dr = v.open_interval("drop", drop, 0.0, 1.0)
    c = loss_scale(loss)
    dr_exp = c * loss_at_origin(loss) * dr  # the drop of the exponential flow at time t / c
    if not dr_exp < 1.0:
        raise ValueError(f"drop must be below 1/(c l(0)) = {1 / (c * loss_at_origin(loss)):.3g} "
                         f"for the {loss} loss, got {drop!r}")
    if params is not None:
        if kappa is not None or m is not None:
            raise ValueError("give either params, or kappa (and optionally m), not both")
        pr = check_params_for(params, d)
        nm = condensation_rate(d)
        S = float(np.sum(growth_coefficients(d, pr) ** 2) / 4)
        if not S > 0:
            raise ValueError("params has no condensing neuron; no escape is predicted")
        f0 = np.maximum(pr.B @ d.X.T, 0.0).T @ pr.a
        L0 = loss_value(f0, d, loss) / loss_at_origin(loss)  # L(0) / l(0), 1 up to O(kappa^2)
        return float(c * math.log(dr_exp * L0 / (nm * S)) / (2 * nm))
    if kappa is None:
        raise ValueError("kappa must be given (a number in (0, 1)) unless params is given")
    k = v.small_kappa(kappa)
    lam = escape_rate(d)
    lead = c * math.log(1.0 / k) / lam
    if m is None:
        return lead
    mm = v.int_at_least("m", m, 1)
    if d.d != 2:
        raise ValueError("the expected O(1) term (kappa, m) is derived for d = 2; pass params")
    if regime(d) != "main":
        raise ValueError("the O(1) term is derived for the main regime p cos(delta) > 1 - p")
    H = _mean_h2(d)
    return lead + c * math.log(4 * dr_exp / (lam * mm * H)) / (2 * lam)


def loss_at_origin(loss: str = "exp") -> float:
    r"""The loss at the saddle, :math:`L(0) = \ell(0)\sum_i w_i = \ell(0)`.

    :math:`\ell(0) = 1` for ``exp`` (:math:`e^{-z}`) and :math:`\log 2` for
    ``logistic`` (:math:`\log(1 + e^{-z})`), read off the engine's
    :func:`~reluflow.engine.network.loss_value` at :math:`f = 0`.

    >>> loss_at_origin("exp"), round(loss_at_origin("logistic"), 6)
    (1.0, 0.693147)
    """
    probe = TwoPointData(0.5, 0.5)
    return loss_value(np.zeros(probe.n), probe, v.loss_name(loss))


def plateau_level(data: TwoPointData, loss: str = "exp") -> float:
    r"""Loss level of the plateau (this book's derivation).

    The leading group fits its own point and stops feeding the other (deactivation), so the
    loss tends to the weight of the point still waiting times the loss at :math:`f = 0`,
    :math:`w_\mathrm{wait}\,\ell(0)` (:func:`loss_at_origin`: :math:`\ell(0) = 1` for the
    exponential loss, :math:`\log 2` for the logistic one), with :math:`w_\mathrm{wait}`
    = :math:`1-p` in the ``"main"`` regime, :math:`p` in the ``"mirror"`` regime, and
    :math:`\min(p, 1-p)` in the ``"mu-plus-only"`` regime (two decoupled sliding groups;
    no plateau when :math:`p = 1/2`).

    >>> from reluflow import TwoPointData
    >>> data = TwoPointData(0.3, 0.7)
    >>> round(plateau_level(data), 12), round(plateau_level(data, "logistic"), 4)
    (0.3, 0.2079)
    """
    d = two_point(data)
    reg = regime(d)
    if reg == "main":
        w = 1.0 - d.p
    elif reg == "mirror":
        w = d.p
    else:
        w = min(d.p, 1.0 - d.p)
    return w * loss_at_origin(loss)
