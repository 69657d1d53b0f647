r"""Phase III, plateau escape: reactivation, the plateau-escape slope and time.

This book's derivations for the two-point setting (conventions in
:mod:`reluflow.analysis.geometry`); each is checked numerically in the chapter that uses it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import expi

from reluflow.analysis.geometry import regime, two_point
from reluflow.analysis.theory.phase1 import condensation_rate
from reluflow.engine import checks as v
from reluflow.engine.data import TwoPointData

__all__ = [
    "SLOPE_FORMULAS",
    "leading_slope",
    "plateau_escape_slope",
    "plateau_escape_time",
    "plateau_exit_output",
    "reactivation_condition",
    "reactivation_threshold",
]

Array = NDArray[np.float64]


def reactivation_threshold(data: TwoPointData) -> float:
    r"""Value of :math:`f(x_+)` at which sliding negative neurons reactivate (at :math:`f(x_-)=0`).

    A negative neuron held on :math:`b^\top x_+ = 0` keeps sliding while the field on the
    side active on both points, :math:`|a|(L_- x_- - L_+ x_+)`, points into the boundary,
    i.e. while :math:`L_+ > L_-\cos\Delta` (loss terms :math:`L_\pm = w_\pm e^{\mp f(x_\pm)}`):

    .. math:: p\,e^{-f(x_+)} < (1-p)\,e^{f(x_-)}\cos\Delta \iff \text{reactivation}

    (this book's derivation), i.e. :math:`f(x_+) > \log\frac{p}{(1-p)\cos\Delta}`
    at :math:`f(x_-) = 0`.  In the main regime this is an O(1) value of :math:`f(x_+)`
    reached just after the saddle escape, i.e. at the *start* of the plateau (measured).
    """
    d = two_point(data)
    return float(math.log(d.p / ((1.0 - d.p) * math.cos(d.delta))))


def reactivation_condition(data: TwoPointData, f: ArrayLike) -> NDArray[np.bool_]:
    r"""Whether :math:`p\,e^{-f_+} < (1-p)\,e^{f_-}\cos\Delta` for outputs ``f`` of shape (..., 2).

    The comparison is done in log form, :math:`\log p - f_+ < \log(1-p) + f_- + \log\cos\Delta`.
    """
    d = two_point(data)
    fa = np.asarray(f, dtype=np.float64)
    if fa.ndim < 1 or fa.shape[-1] != 2:
        raise ValueError(f"f must have shape (..., 2) (outputs on x+ and x-), got {fa.shape}")
    lhs = math.log(d.p) - fa[..., 0]
    rhs = math.log(1.0 - d.p) + fa[..., 1] + math.log(math.cos(d.delta))
    return np.asarray(lhs < rhs)


#: Formulas of :func:`plateau_escape_slope` and :func:`plateau_escape_time`: the
#: leading-order estimate and this book's corrected one.
SLOPE_FORMULAS = ("leading", "corrected")


def leading_slope(data: TwoPointData) -> float:
    r"""Leading-order slope of the plateau-escape time in :math:`\ell = \log(1/\kappa)`.

    The negative sliders grow at rate :math:`(1-p)\sin\Delta` until the saddle escape at
    :math:`t\approx\ell/\lVert\mu\rVert`; then, reactivated and aligned with
    :math:`-\mu(t)\to x_-`, at rate :math:`1-p` until they are O(1):

    .. math:: s_0 = \frac{1-\sin\Delta}{\lVert\mu\rVert} + \frac{1}{1-p}.

    >>> from reluflow import TwoPointData
    >>> round(leading_slope(TwoPointData(delta=0.3, p=0.7)), 3)
    5.0
    """
    d = two_point(data)
    return (1.0 - math.sin(d.delta)) / condensation_rate(d) + 1.0 / (1.0 - d.p)


def _plateau_g(data: TwoPointData, ell: float) -> float:
    r"""Root :math:`g` of :math:`\mathrm{Ei}(g) = \mathrm{Ei}(g_0) + 2p\sin\Delta\,\tau(\ell)`.

    :math:`g_0` = :func:`reactivation_threshold` (clipped to >= 1e-3) and
    :math:`\tau(\ell) = (s_0 - 1/\lVert\mu\rVert)\,\ell` (:func:`leading_slope`).
    """
    tau = (leading_slope(data) - 1.0 / condensation_rate(data)) * ell
    g0 = max(reactivation_threshold(data), 1e-3)
    rhs = float(expi(g0)) + 2.0 * data.p * math.sin(data.delta) * tau
    hi = g0 + 1.0
    while float(expi(hi)) < rhs:
        hi *= 2.0
    return float(brentq(lambda g: float(expi(g)) - rhs, g0, hi, xtol=1e-14))


def _corrected_time(d: TwoPointData, ell: float) -> float:
    r""":math:`s_0\ell + \frac{\cot\Delta}{2(1-p)}\log g(\ell)` (:func:`plateau_escape_slope`)."""
    return leading_slope(d) * ell + math.log(_plateau_g(d, ell)) / (
        2.0 * (1.0 - d.p) * math.tan(d.delta))


def _main_regime(data: TwoPointData, formula: str, what: str) -> TwoPointData:
    d = two_point(data)
    if formula not in SLOPE_FORMULAS:
        raise ValueError(f"formula must be one of {SLOPE_FORMULAS}, got {formula!r}")
    if regime(d) != "main":
        raise ValueError(f"{what} is derived for the main regime p cos(delta) > 1 - p")
    return d


def plateau_escape_slope(
    data: TwoPointData, formula: str = "corrected", kappa: float | None = None
) -> float:
    r"""Slope :math:`dT_\mathrm{III}/d\log(1/\kappa)` of the plateau-escape time (main regime).

    * ``"leading"``: :math:`s_0` of :func:`leading_slope`.
    * ``"corrected"`` (this book's correction, 1-5 % above :math:`s_0`): during the
      plateau the positive group slides on :math:`x_-^\perp`, so
      :math:`\dot f_+ = 2\sin\Delta\, L_+ f_+` with :math:`L_+ = p e^{-f_+}`, i.e.
      :math:`\mathrm{Ei}(f_+) = \mathrm{Ei}(g_0) + 2p\sin\Delta\,\tau` (:math:`\tau` = time
      since reactivation, where :math:`f_+ = g_0` = :func:`reactivation_threshold`), and
      :math:`L_+` decays only like :math:`1/(\tau\log\tau)`.  The reactivated negative group
      grows at :math:`\lVert\mu(t)\rVert \approx (1-p) - L_+\cos\Delta`, so it loses exactly
      :math:`\cos\Delta\int L_+\,d\tau = \tfrac12\cot\Delta\,\log(f_+/g_0)` of
      log-amplitude (:math:`L_+ d\tau = df_+/(2\sin\Delta f_+)`), which costs
      :math:`\cot\Delta\,\log(f_+/g_0)/(2(1-p))` of time.  With the plateau length
      :math:`\tau \approx (s_0 - 1/\lVert\mu\rVert)\,\ell`:

      .. math:: T_\mathrm{III} \approx s_0\,\ell +
                \frac{\cot\Delta}{2(1-p)}\log g(\ell) + O(1), \qquad
                \mathrm{Ei}(g) = \mathrm{Ei}(g_0) + 2p\sin\Delta
                \Big(s_0 - \frac{1}{\lVert\mu\rVert}\Big)\ell .

      Its local slope (returned, by central difference at :math:`\ell = \log(1/\kappa)`)
      exceeds :math:`s_0` by a term that vanishes slowly as :math:`\kappa\to 0` and grows
      as :math:`\Delta\to 0`.  Needs ``kappa``.
    """
    d = _main_regime(data, formula, "plateau_escape_slope")
    if formula == "leading":
        return leading_slope(d)
    if kappa is None:
        raise ValueError("kappa must be given (a number in (0, 1)) for formula='corrected'")
    ell = math.log(1.0 / v.small_kappa(kappa))
    h = 1e-3 * ell
    return (_corrected_time(d, ell + h) - _corrected_time(d, ell - h)) / (2.0 * h)


def plateau_escape_time(data: TwoPointData, kappa: float, formula: str = "corrected") -> float:
    r"""Plateau-escape time up to a :math:`\kappa`-independent O(1) constant (main regime).

    ``"leading"``: :math:`s_0\log(1/\kappa)`; ``"corrected"``: plus
    :math:`\frac{\cot\Delta}{2(1-p)}\log g(\log(1/\kappa))` (see
    :func:`plateau_escape_slope`).  Compare slopes or differences in :math:`\log(1/\kappa)`,
    not absolute values: the O(1) constant is not predicted.
    """
    d = _main_regime(data, formula, "plateau_escape_time")
    ell = math.log(1.0 / v.small_kappa(kappa))
    if formula == "leading":
        return leading_slope(d) * ell
    return _corrected_time(d, ell)


def plateau_exit_output(data: TwoPointData, kappa: float) -> float:
    r"""Predicted :math:`f(x_+)` when the loss leaves the plateau (main regime; this book's).

    The positive group slides on :math:`x_-^\perp` through the plateau, so
    :math:`g = f(x_+)` obeys :math:`\mathrm{Ei}(g) = \mathrm{Ei}(g_0) + 2p\sin\Delta\,\tau`
    (:math:`\tau` = time since the reactivation, where :math:`g = g_0` =
    :func:`reactivation_threshold`).  With the plateau length
    :math:`\tau \approx (s_0 - 1/\lVert\mu\rVert)\log(1/\kappa)` of
    :func:`plateau_escape_slope` this gives the root :math:`g(\ell)` used by the ``"corrected"``
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
    d = two_point(data)
    if regime(d) != "main":
        raise ValueError("plateau_exit_output is derived for the main regime p cos(delta) > 1 - p")
    return _plateau_g(d, math.log(1.0 / v.small_kappa(kappa)))
