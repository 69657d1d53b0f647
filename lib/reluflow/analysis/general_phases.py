r"""The four phases detected on any data set (this book's definitions, beyond two points).

:func:`reluflow.analysis.phases.detect_phases` reads the phases of a two-point run off the
two points.  Here the same quantities are read off the two *classes* of any binary
:class:`~reluflow.Dataset`, so that on two-point data the definitions coincide with the
two-point ones (except the end of Phase I, see below).  Notation: :math:`q_i = y_i f(x_i)`
the margins, :math:`W_c = \sum_{y_i = c} w_i` the weight of class :math:`c = \pm 1`, and

.. math:: R_c(t) = \frac{1}{W_c}\sum_{y_i = c} w_i\, e^{-q_i(t)}

the class's mean residual (1 at the saddle, 0 when fitted), and
:math:`Q_c = -\log R_c` its *class margin* (a soft minimum of the class's margins; for a
single point :math:`Q = q`).

* **Roles.** The *leading class* :math:`\ell` is the class whose :math:`R_c` first falls to
  1/2 (if neither does, the one with the smaller :math:`R_c` at the end), the *waiting
  class* :math:`w` the other one; the *leader group* is the neurons with
  :math:`\operatorname{sign} a_k = \ell` (they raise :math:`\ell f`), the *follower group*
  the others.  The *share* of a neuron on a class is the weight fraction of that class on
  which it is active (:math:`b_k^\top x_i > 0`); group shares are mass-weighted
  (mass :math:`a_k^2 + \lVert b_k\rVert^2`).
* ``t_condensed`` (end of Phase I): first time the mass-weighted RMS angle of the alive
  leader neurons (directions of :math:`b_k` in the data span) about their mass-weighted
  mean direction is :math:`\le` ``spread_tol``.  (The two-point detector measures it about
  :math:`\mu`, which this one does not know.)
* ``t_escape``: first time :math:`L \le (1 - \text{drop})L(0)`.
* ``t_plateau`` (entry to the plateau): first time :math:`\ge t_\mathrm{escape}` at which
  the leader group's share on the waiting class is :math:`\le 1/2` (it has deactivated on
  it).  If the waiting class is fitted first (``t_plateau_escape`` below, searched from
  ``t_escape``, comes earlier), there is no plateau: ``t_plateau`` and
  ``t_plateau_escape`` are both that time and ``plateau_duration`` is 0.
* ``t_reactivation``: after ``t_condensed``, first time the follower group's share on the
  leading class rises back to :math:`\ge 1/2` after having been :math:`< 1/2`.
* ``t_plateau_escape``: first time :math:`\ge t_\mathrm{plateau}` at which
  :math:`Q_w \ge \log 2` (:math:`R_w \le 1/2`: the waiting class's loss has halved).
* ``t_phase4``: first time :math:`\ge t_\mathrm{plateau\ escape}` with
  :math:`\min_i q_i \ge` ``phase4_margin``.

Values: ``leading_class``; ``plateau_loss`` (the loss at the first time after
``t_plateau`` with :math:`Q_w \ge 0.01`, the end of the flat part) and ``plateau_flat``
(that time minus ``t_plateau``: how long the loss stays flat); ``plateau_duration``
(``t_plateau_escape - t_plateau``); ``n_eff_min``, ``t_n_eff_min`` and ``n_eff_final``
(:func:`reluflow.analysis.measure.effective_directions_series`); ``final_loss``,
``final_margin`` (normalized), ``final_time``, ``invariant_drift``.  Every time is
interpolated linearly between the two recorded samples around the crossing
(:func:`reluflow.analysis.phases.first_crossing`) and is ``None`` when the crossing does
not happen in the run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.measure import effective_directions_series
from reluflow.analysis.phases import PhaseReport, first_crossing
from reluflow.engine.data import Dataset
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "class_residuals",
    "detect_phases_general",
    "group_share",
    "group_spread",
]

Array = NDArray[np.float64]


def _traj(traj: Any, data: Any = None) -> Trajectory:
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if traj.t.size < 1:
        raise ValueError("traj must hold at least one recorded time")
    if data is not None:
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
        if data.X.shape != traj.data.X.shape or not np.allclose(data.X, traj.data.X):
            raise ValueError("data must be the data set the trajectory was trained on")
    if not (np.any(traj.data.y > 0) and np.any(traj.data.y < 0)):
        raise ValueError("the run's data must hold both labels +1 and -1")
    return traj


def class_residuals(traj: Trajectory) -> dict[int, Array]:
    r"""Mean residual :math:`R_c(t)` of each class, ``{+1: (T,), -1: (T,)}``.

    Examples
    --------
    >>> import reluflow as rf
    >>> data = rf.TwoPointData(0.3, 0.7)
    >>> traj = rf.gradient_flow(rf.init_network(10, 2, 1e-6, seed=0), data, 1.0)
    >>> round(float(class_residuals(traj)[1][0]), 6)
    1.0
    """
    tr = _traj(traj)
    d = tr.data
    q = tr.f * d.y[None, :]
    out: dict[int, Array] = {}
    for c in (1, -1):
        sel = d.y == c
        w = d.weights[sel]
        with np.errstate(over="ignore"):
            out[c] = np.asarray(np.exp(-q[:, sel]) @ w / w.sum())
    return out


def _mass(traj: Trajectory) -> Array:
    return np.asarray(traj.a**2 + np.einsum("tkd,tkd->tk", traj.B, traj.B))


def group_share(traj: Trajectory, sign: int, label: int) -> Array:
    r"""Mass-weighted share of the neurons of output sign ``sign`` active on class ``label``.

    :math:`\sum_{k} M_k\,s_k / \sum_k M_k` over the neurons with
    :math:`\operatorname{sign} a_k = ` ``sign``, where :math:`s_k` is the weight fraction of
    class ``label`` on which neuron :math:`k` is active; ``nan`` while the group has no mass.
    """
    tr = _traj(traj)
    if sign not in (1, -1) or label not in (1, -1):
        raise ValueError(f"sign and label must be +1 or -1, got {sign!r}, {label!r}")
    d = tr.data
    sel = d.y == label
    w = d.weights[sel] / d.weights[sel].sum()
    share = (tr.pattern[:, :, sel] == 1) @ w  # (T, m)
    M = np.where(np.sign(tr.a) == sign, _mass(tr), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sum(M * share, axis=1) / np.sum(M, axis=1))


def _span_directions(traj: Trajectory) -> Array:
    """Unit directions of the projections of b_k on the data span, (T, m, r)."""
    _, sv, Vt = np.linalg.svd(traj.data.X, full_matrices=False)
    Q = Vt[: int(np.sum(sv > 1e-12 * sv[0]))].T
    V = traj.B @ Q
    nv = np.linalg.norm(V, axis=2, keepdims=True)
    return np.asarray(np.where(nv > 0, V / np.where(nv > 0, nv, 1.0), 0.0))


def group_spread(traj: Trajectory, sign: int) -> Array:
    r"""Mass-weighted RMS angle (rad) of the alive neurons of sign ``sign`` about their mean.

    The mean direction is the normalised mass-weighted sum of the unit directions (in the
    data span); ``nan`` when the group has no alive neuron.  0 means one direction.
    """
    tr = _traj(traj)
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    U = _span_directions(tr)
    alive = np.any(tr.pattern == 1, axis=2) & (np.sign(tr.a) == sign)
    M = np.where(alive, _mass(tr), 0.0)
    mean = np.einsum("tk,tkr->tr", M, U)
    nm = np.linalg.norm(mean, axis=1, keepdims=True)
    mean = np.where(nm > 0, mean / np.where(nm > 0, nm, 1.0), 0.0)
    ang = np.arccos(np.clip(np.einsum("tkr,tr->tk", U, mean), -1.0, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sqrt(np.sum(M * ang**2, axis=1) / np.sum(M, axis=1)))


def _roles(traj: Trajectory) -> tuple[int, dict[int, Array]]:
    R = class_residuals(traj)
    t = traj.t
    hits = {c: first_crossing(t, R[c], 0.5, up=False) for c in (1, -1)}
    if hits[1] is None and hits[-1] is None:
        return (1 if R[1][-1] <= R[-1][-1] else -1), R
    if hits[1] is None or hits[-1] is None:
        return (1 if hits[1] is not None else -1), R
    h1, h2 = hits[1], hits[-1]
    assert h1 is not None and h2 is not None
    if h1[0] == h2[0]:
        w = traj.data.weights
        return (1 if w[traj.data.y > 0].sum() >= w[traj.data.y < 0].sum() else -1), R
    return (1 if h1[0] < h2[0] else -1), R


def _check_levels(spread_tol: Any, drop: Any, phase4_margin: Any) -> tuple[float, float, float]:
    st, dr, pm = float(spread_tol), float(drop), float(phase4_margin)
    if not (math.isfinite(st) and 0 < st < math.pi):
        raise ValueError(f"spread_tol must lie in the open interval (0, pi), got {spread_tol!r}")
    if not (math.isfinite(dr) and 0 < dr < 1):
        raise ValueError(f"drop must lie in the open interval (0, 1), got {drop!r}")
    if not (math.isfinite(pm) and pm > 0):
        raise ValueError(f"phase4_margin must be a finite number > 0, got {phase4_margin!r}")
    return st, dr, pm


def _after(hit: tuple[float, int] | None) -> int | None:
    return None if hit is None else hit[1]


def _plateau(tr: Trajectory, R: dict[int, Array], lead: int, start: int, pm: float,
             times: dict[str, float | None], vals: dict[str, Any]) -> None:
    """Fill ``t_plateau``, ``t_plateau_escape``, ``t_phase4`` and the plateau values."""
    t, L, wait = tr.t, tr.loss, -lead
    share = np.nan_to_num(group_share(tr, lead, wait), nan=1.0)
    with np.errstate(divide="ignore"):
        Qw = -np.log(R[wait])
    pl = first_crossing(t, share, 0.5, start, up=False)
    fitted = first_crossing(t, Qw, math.log(2.0), start, up=True)
    if fitted is not None and (pl is None or fitted[0] < pl[0]):
        # the waiting class is fitted while the leader still feeds it: no plateau
        times["t_plateau"] = times["t_plateau_escape"] = fitted[0]
        vals["plateau_duration"] = vals["plateau_flat"] = 0.0
        pe: tuple[float, int] | None = fitted
    elif pl is not None:
        times["t_plateau"] = pl[0]
        end = first_crossing(t, Qw, 0.01, pl[1], up=True)
        if end:
            vals["plateau_loss"] = float(np.interp(end[0], t, L))
            vals["plateau_flat"] = end[0] - pl[0]
        pe = first_crossing(t, Qw, math.log(2.0), pl[1], up=True)
        times["t_plateau_escape"] = pe[0] if pe else None
        if pe:
            vals["plateau_duration"] = pe[0] - pl[0]
    else:
        return
    if pe:
        qmin = np.min(tr.f * tr.data.y[None, :], axis=1)
        p4 = first_crossing(t, qmin, pm, pe[1], up=True)
        times["t_phase4"] = p4[0] if p4 else None


def detect_phases_general(
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    spread_tol: float = 0.1,
    drop: float = 0.01,
    phase4_margin: float = 2.0,
    direction_tol: float = 0.05,
) -> PhaseReport:
    r"""Detect the phase times of a run on any binary data set (module docstring).

    Parameters
    ----------
    traj : Trajectory
        The run (record all neurons: the group measurements are mass-weighted).
    data : Dataset, optional
        The run's data (checked against ``traj.data`` if given).
    spread_tol : float
        RMS angle (rad) ending Phase I, in (0, pi).
    drop : float
        Loss drop defining the saddle escape, in (0, 1).
    phase4_margin : float
        Smallest margin that starts Phase IV, > 0.
    direction_tol : float
        Angle (rad) of the direction clusters of :math:`N_\mathrm{eff}`, in (0, pi).

    Returns
    -------
    PhaseReport
        With ``regime = "general"``; its ``definitions`` say how each
        time was measured.

    Examples
    --------
    >>> import reluflow as rf
    >>> data = rf.TwoPointData(0.3, 0.7)
    >>> traj = rf.gradient_flow(rf.init_network(30, 2, 1e-6, seed=0), data, 1e4)
    >>> rep = detect_phases_general(traj)
    >>> rep.values["leading_class"], rep.t_escape == rf.detect_phases(traj, data).t_escape
    (1, True)
    """
    tr = _traj(traj, data)
    st, dr, pm = _check_levels(spread_tol, drop, phase4_margin)
    t, L = tr.t, tr.loss
    lead, R = _roles(tr)
    wait = -lead
    name = {1: "class +1", -1: "class -1"}
    defs = {
        "t_condensed": f"RMS angle of the alive sign-{lead:+d} neurons about their mean "
                       f"direction <= {st:g} rad",
        "t_escape": f"L(t) <= (1 - {dr:g}) L(0)",
        "t_plateau": f"mass share of sign-{lead:+d} neurons active on {name[wait]} <= 1/2 "
                     "(after t_escape)",
        "t_reactivation": f"mass share of sign-{wait:+d} neurons active on {name[lead]} back "
                          "to >= 1/2 (after t_condensed)",
        "t_plateau_escape": f"class margin of {name[wait]} >= log 2 (after t_plateau)",
        "t_phase4": f"min_i y_i f(x_i) >= {pm:g} (after t_plateau_escape)",
    }
    times: dict[str, float | None] = dict.fromkeys(defs)
    hit = first_crossing(t, group_spread(tr, lead), st, up=False)
    times["t_condensed"] = hit[0] if hit else None
    if hit:
        foll = np.nan_to_num(group_share(tr, wait, lead), nan=1.0)
        below = np.flatnonzero(foll[hit[1]:] < 0.5)
        if below.size:
            h2 = first_crossing(t, foll, 0.5, hit[1] + int(below[0]), up=True)
            times["t_reactivation"] = h2[0] if h2 else None
    esc = first_crossing(t, L, (1 - dr) * L[0], up=False)
    times["t_escape"] = esc[0] if esc else None
    vals: dict[str, Any] = {"leading_class": lead, "plateau_loss": math.nan,
                            "plateau_duration": math.nan, "plateau_flat": math.nan}
    start = _after(esc)
    if start is not None:
        _plateau(tr, R, lead, start, pm, times, vals)
    neff = effective_directions_series(tr, direction_tol)
    fin = np.isfinite(neff)
    j_min = int(np.nanargmin(np.where(fin, neff, np.inf))) if np.any(fin) else -1
    vals.update(
        n_eff_min=float(neff[j_min]) if j_min >= 0 else math.nan,
        t_n_eff_min=float(t[j_min]) if j_min >= 0 else math.nan,
        n_eff_final=float(neff[-1]), final_time=float(t[-1]), final_loss=float(L[-1]),
        final_margin=float(tr.normalized_margin()[-1]), invariant_drift=tr.invariant_drift,
    )
    return PhaseReport(regime="general", definitions=defs, values=vals, **times)
