r"""Predictions behind the scaling study: time scales, regimes and slopes over a grid.

This book's derivations (conventions in :mod:`reluflow.analysis.geometry`), used by the
scaling chapter and by the recording grids of :mod:`reluflow.runs.scaling`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.geometry import REGIMES, effective_data, regime
from reluflow.analysis.theory.phase3 import plateau_escape_time, plateau_exit_output
from reluflow.engine import checks as v
from reluflow.engine.data import TwoPointData

__all__ = [
    "horizon",
    "loss_scale",
    "plateau_escape_slope_prediction",
    "plateau_exit_loss",
    "regime_map",
]


def loss_scale(loss: str) -> float:
    r"""Time-scale factor of a loss near :math:`f = 0`: 1 for ``exp``, 2 for ``logistic``.

    With :math:`f\approx 0` the residual weights are :math:`w_i y_i\,(-\ell'(0))`, i.e.
    :math:`w_i y_i` for :math:`\ell(z) = e^{-z}` and :math:`w_i y_i/2` for
    :math:`\ell(z) = \log(1+e^{-z})`, so the logistic flow near the origin is the
    exponential one slowed down by a factor 2 (this book's derivation).
    """
    return {"exp": 1.0, "logistic": 2.0}[v.loss_name(loss)]


def horizon(delta: float, p: float, kappa: float, loss: str = "exp",
            kappa_a: float | None = None) -> float:
    r"""End of the dense recording: past the plateau escape with room to spare.

    With :math:`\ell = \log(1/\max(\kappa, \kappa_a))` and the loss factor
    :math:`c` = :func:`loss_scale`:

    * main regime: :math:`c\,(1.5\,T_\mathrm{III}(\ell) + 30)`, with :math:`T_\mathrm{III}`
      = :func:`reluflow.analysis.theory.plateau_escape_time` (``"corrected"``);
    * mirror regime: the same for the mirrored data :math:`(\Delta, 1-p)`;
    * intermediate regime: :math:`c\,(2\ell/(\min(p, 1-p)\sin\Delta) + 30)`, twice the
      growth time of the slower sliding group.

    Parameters
    ----------
    delta : float
        :math:`\Delta\in(0, \pi/2)`.
    p : float
        :math:`p\in(0, 1)`.
    kappa : float
        Initialization scale in (0, 1).
    loss : {"exp", "logistic"}
    kappa_a : float, optional
        Output-weight scale of an unbalanced initialization, in (0, 1).

    Returns
    -------
    float
        The horizon (gradient-flow time units).
    """
    k = v.open_interval("kappa", kappa, 0.0, 1.0)
    if kappa_a is not None:
        k = max(k, v.open_interval("kappa_a", kappa_a, 0.0, 1.0))
    data = TwoPointData(v.open_interval("delta", delta, 0.0, 0.5 * math.pi, "(0, pi/2)"), p)
    eff = effective_data(data)
    c = loss_scale(loss)
    if eff is not None:
        return c * (1.5 * plateau_escape_time(eff, k, "corrected") + 30.0)
    w = min(data.p, 1.0 - data.p) * math.sin(data.delta)
    return c * (2.0 * math.log(1.0 / k) / w + 30.0)


def regime_map(deltas: ArrayLike, ps: ArrayLike) -> NDArray[np.int64]:
    r"""Regime of each :math:`(\Delta, p)` of a grid, as an index into ``theory.REGIMES``.

    Parameters
    ----------
    deltas : array_like, shape (nd,)
        Angles in :math:`(0, \pi/2)`.
    ps : array_like, shape (np,)
        Weights in :math:`(0, 1)`.

    Returns
    -------
    ndarray of int, shape (np, nd)
        ``out[i, j]`` = index of :func:`reluflow.analysis.theory.regime` ``(deltas[j], ps[i])``
        (0 main :math:`p\cos\Delta > 1-p`, 1 intermediate, 2 mirror
        :math:`p \le (1-p)\cos\Delta`).
    """
    da = np.asarray(deltas, dtype=np.float64).ravel()
    pa = np.asarray(ps, dtype=np.float64).ravel()
    out = np.empty((pa.size, da.size), dtype=np.int64)
    for i, p in enumerate(pa):
        for j, dl in enumerate(da):
            out[i, j] = REGIMES.index(regime(float(dl), float(p)))
    return out


def plateau_escape_slope_prediction(data: TwoPointData, kappas: ArrayLike) -> tuple[float, str]:
    r"""Predicted slope of the plateau-escape time in :math:`\log(1/\kappa)`, and its source.

    * main regime: least-squares slope of :func:`reluflow.analysis.theory.plateau_escape_time`
      (``"corrected"``) over ``kappas`` (the book's formula is not exactly linear);
    * mirror regime: the same for the mirrored data :math:`(\Delta, 1-p)`;
    * intermediate regime (this book's leading-order estimate): both groups slide from the
      start; the slower one, of weight :math:`w = \min(p, 1-p)`, grows at rate
      :math:`w\sin\Delta` while its point is unfitted, so
      :math:`T_\mathrm{III} \approx \log(1/\kappa)/(w\sin\Delta)`: slope
      :math:`1/(\min(p, 1-p)\sin\Delta)`.

    Returns
    -------
    tuple
        ``(slope, source)`` with ``source`` ``"book formula"`` or
        ``"intermediate estimate"``.
    """
    eff = effective_data(data)
    ks = np.asarray(kappas, dtype=np.float64).ravel()
    if ks.size < 2 or not np.all((ks > 0) & (ks < 1)) or np.unique(ks).size < 2:
        raise ValueError("kappas must hold at least two distinct values in (0, 1)")
    if eff is None:
        return 1.0 / (min(data.p, 1.0 - data.p) * math.sin(data.delta)), "intermediate estimate"
    ell = np.log(1.0 / ks)
    t3 = [plateau_escape_time(eff, float(k), "corrected") for k in ks]
    return float(np.polyfit(ell, t3, 1)[0]), "book formula"


def plateau_exit_loss(data: TwoPointData, kappa: float) -> float | None:
    r"""Predicted loss at the end of the plateau (main and mirror regimes; else ``None``).

    :math:`L \approx (1 - w) + w\,e^{-g}` with :math:`w` the leader's weight (:math:`p` in
    the main regime) and :math:`g` = :func:`reluflow.analysis.theory.plateau_exit_output` (this
    book's derivation, exponential loss).
    """
    eff = effective_data(data)
    if eff is None:
        return None
    g = plateau_exit_output(eff, kappa)
    return float((1.0 - eff.p) + eff.p * math.exp(-g))
