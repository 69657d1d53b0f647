r"""Phase IV, convergence: loss rate, final margin and directions, the slow manifold.

This book's derivations for the two-point setting (conventions in
:mod:`reluflow.analysis.geometry`); each is checked numerically in the chapter that uses it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.geometry import HALF_PI, regime, two_point, x_minus_perp, x_plus_perp
from reluflow.engine import checks as v
from reluflow.engine.data import TwoPointData

__all__ = [
    "final_directions",
    "final_margin",
    "phase4_angle",
    "phase4_log10_time",
    "phase4_loss",
    "phase4_slow_manifold",
]

Array = NDArray[np.float64]


def phase4_loss(data: TwoPointData, t: ArrayLike, margin: float | None = None) -> Array:
    r"""Phase-IV loss asymptote :math:`L(t) \simeq 1/(4\gamma\, t\log t)` (this book's derivation).

    For the exponential loss and a 2-homogeneous network,
    :math:`\frac{d}{dt}\lVert\theta\rVert^2 = 4\sum_i w_i e^{-q_i}q_i \approx 4 L q` with
    :math:`q = \min_i y_i f(x_i) \approx \gamma\lVert\theta\rVert^2`; then
    :math:`\dot q \approx 4\gamma q L` and :math:`L \approx e^{-q}` (up to the weight), so
    :math:`e^q/q \approx 4\gamma t` and :math:`L \approx 1/(4\gamma t \log t)`: the
    :math:`1/(t\log t)` rate (Lyu & Li 2020).  ``margin`` defaults to :func:`final_margin`.
    """
    d = two_point(data)
    g = final_margin(d) if margin is None else v.positive_finite("margin", margin)
    ta = v.finite_array("t", np.atleast_1d(np.asarray(t, dtype=np.float64)), 1)
    if np.any(ta <= 1.0):
        raise ValueError("t must be > 1 (the asymptote 1/(t log t) needs log t > 0)")
    return np.asarray(1.0 / (4.0 * g * ta * np.log(ta)), dtype=np.float64)


def final_margin(data: TwoPointData) -> float:
    r"""Final normalized margin :math:`\min_i y_i f(x_i)/\lVert\theta\rVert^2 \to \sin\Delta/4`.

    Value of the two-direction solution (positive mass on :math:`x_-^\perp`, negative mass on
    :math:`x_+^\perp`, equal masses, balanced neurons): each point gets margin
    :math:`\sin\Delta\cdot M/2` out of :math:`\lVert\theta\rVert^2 = 2M` (this
    book's derivation).  :func:`~reluflow.analysis.theory.maxmargin.max_margin` confirms it is
    the maximum.
    """
    d = two_point(data)
    return math.sin(d.delta) / 4.0


def final_directions(data: TwoPointData) -> dict[str, Array]:
    r"""Directions of the max-margin solution: ``{"positive": x_-^perp, "negative": x_+^perp}``."""
    d = two_point(data)
    return {"positive": x_minus_perp(d), "negative": x_plus_perp(d)}


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
    both points; :math:`\chi = \varphi - \Delta`) with mass :math:`W_-`.  Balanced neurons give

    .. math:: f(x_+) = W_+\sin\Delta - W_-\cos\varphi, \qquad f(x_-) = -W_-\cos\chi,
              \qquad \lVert\theta\rVert^2 = 2(W_+ + W_-).

    Both margins grow like :math:`\log t` while their difference stays O(1), so to leading
    order they are equal, which fixes the mass ratio and the normalized margin:

    .. math:: R = \frac{W_+}{W_-} = \frac{\cos\chi + \cos\varphi}{\sin\Delta}, \qquad
              \gamma(\varphi) = \frac{\sin\Delta\cos\chi}
              {2(\sin\Delta + \cos\chi + \cos\varphi)} \le \frac{\sin\Delta}{4},

    with equality only at :math:`\varphi = \pi/2` (:math:`x_+^\perp`).  With the loss
    terms :math:`L_\pm = w_\pm e^{\mp f(x_\pm)}` the flow gives
    :math:`\frac{d}{dt}\log W_+ = 2L_+\sin\Delta`,
    :math:`\frac{d}{dt}\log W_- = 2(L_-\cos\chi - L_+\cos\varphi)` and
    :math:`\dot\varphi = L_+\sin\varphi - L_-\sin\chi`; staying on the manifold
    (:math:`\frac{d}{dt}\log R = R'(\varphi)\dot\varphi/R`) fixes
    :math:`\xi = L_+/L_-`:

    .. math:: \xi = \frac{2\cos\chi\,C + S\sin\chi}{2(\sin\Delta + \cos\varphi)\,C + S\sin\varphi},
              \qquad S = \sin\chi + \sin\varphi,\ C = \cos\chi + \cos\varphi,

    hence, with the loss :math:`L = L_+ + L_-` and the *loss clock*
    :math:`\tau = \int L\,dt`,

    .. math:: \frac{d\varphi}{d\tau} = \frac{\xi\sin\varphi - \sin\chi}{1 + \xi} > 0,
              \qquad \frac{d\varphi}{d\log\log t} = \frac{\xi\sin\varphi - \sin\chi}
              {4\gamma(\varphi)(1 + \xi)}

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
        :math:`\xi`; ``rate_loss_clock`` :math:`d\varphi/d\tau`; ``rate_loglog``
        :math:`d\varphi/d\log\log t`.
    """
    d = two_point(data)
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

    d = two_point(data)
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

    d = two_point(data)
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
