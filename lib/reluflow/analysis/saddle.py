r"""Phase II on a recorded run: growth out of the saddle, rotation, deactivation, plateau.

What the Phase-II chapter measures and compares with :mod:`reluflow.analysis.theory`
(this book's derivation).  Roles come from :func:`reluflow.analysis.geometry.roles`: the
*leader* group (positive neurons in the main regime) grows first and fits its point
:math:`x_\ell`; the *awaited* point :math:`x_w` (:math:`x_-` in the main regime) waits.
With the loss terms :math:`L_\pm = w_\pm e^{\mp f(x_\pm)}` the driving vector of a neuron
active on both points is :math:`\mu(t) = L_+x_+ - L_-x_-`
(:math:`\mu(0) = \mu`); the leaders are caught on the boundary :math:`b^\top x_w = 0`
once :math:`\mu(t)` points out of the region active on :math:`x_w`,

.. math:: L_\ell\cos\Delta < L_w .
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.geometry import effective_data, plane_angles, regime, roles
from reluflow.analysis.measure import check_trajectory, neuron_mass, wrap_angle
from reluflow.analysis.phases import PhaseReport, detect_phases
from reluflow.analysis.text import math_number
from reluflow.analysis.theory import escape_rate, plateau_output, saddle_escape_time
from reluflow.engine.data import TwoPointData
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import Params, init_network
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "EscapeSweep",
    "Saddle",
    "boundary_angle",
    "describe",
    "driving_angle",
    "escape_sweep",
    "loss_terms",
    "measure_saddle",
    "mirror_params",
    "plateau_sentence",
    "predicted_escape",
]

Array = NDArray[np.float64]


def loss_terms(traj: Trajectory, data: TwoPointData) -> Array:
    r"""The loss terms :math:`L_i = w_i e^{-y_i f(x_i)}` at every recorded time, shape (T, 2)."""
    return np.asarray(data.weights[None, :] * np.exp(-data.y[None, :] * traj.f))


def driving_angle(traj: Trajectory, data: TwoPointData) -> Array:
    r"""Plane angle of :math:`\mu(t) = \sum_i L_i y_i x_i` at every recorded time (rad)."""
    v = (loss_terms(traj, data) * data.y[None, :]) @ data.X
    return np.asarray(plane_angles(v, data))


def mirror_params(data: TwoPointData, params: Params) -> Params:
    r"""The parameters seen in the mirror: :math:`a_k \to -a_k`, :math:`b_k \to Rb_k`.

    :math:`R` reflects the data plane across the bisector of :math:`x_+` and :math:`x_-`
    (:math:`\varphi \to \Delta - \varphi`), so it exchanges the two points; with the output
    signs flipped, the run on ``data`` is the run of the mirrored parameters on the data
    :math:`(\Delta, 1-p)`, and a mirror-regime run becomes a main-regime one
    (:func:`reluflow.analysis.geometry.effective_data`).  Only for :math:`d = 2`.
    """
    if params.B.shape[1] != 2:
        raise ValueError(f"mirror_params needs d = 2, got d = {params.B.shape[1]}")
    c, s = math.cos(data.delta), math.sin(data.delta)
    R = np.array([[c, s], [s, -c]])
    return Params(-params.a, params.B @ R.T)


def predicted_escape(data: TwoPointData, params: Params, kappa: float,
                     loss: str = "exp") -> float:
    r"""This book's saddle-escape time for this initialization, in any regime, any loss.

    Main regime: :func:`reluflow.analysis.theory.saddle_escape_time` with the exact
    :math:`O(1)` term of ``params``; mirror regime: the same for the run seen in the mirror
    (:func:`mirror_params` on :func:`~reluflow.analysis.geometry.effective_data`);
    intermediate regime, or no neuron that condenses: the leading order
    :math:`c\log(1/\kappa)/\lambda` (:math:`c` = 2 for the logistic loss).

    >>> from reluflow import TwoPointData, init_network
    >>> data = TwoPointData(0.3, 0.7)
    >>> t = predicted_escape(data, init_network(64, 2, 1e-6, seed=0), 1e-6)
    >>> abs(t - saddle_escape_time(data, 1e-6, m=64)) < 1.0  # the expected O(1) term
    True
    """
    eff = effective_data(data)
    if eff is not None and params.B.shape[1] == 2:
        seen = params if regime(data) == "main" else mirror_params(data, params)
        try:
            return saddle_escape_time(eff, params=seen, loss=loss)
        except ValueError:  # no condensing neuron: only the leading order is predicted
            pass
    return saddle_escape_time(data, kappa, loss=loss)


def boundary_angle(data: TwoPointData, awaited: int) -> float:
    r"""Angle of the awaited point's boundary direction, :math:`x_-^\perp` or :math:`x_+^\perp`."""
    return data.delta - 0.5 * math.pi if awaited == 1 else 0.5 * math.pi


@dataclass(frozen=True)
class Saddle:
    r"""Phase-II measurements of one run (see :func:`measure_saddle`).

    Attributes
    ----------
    regime : str
    leader, awaited : int
        Sign of the leading group; index of the awaited point (0: :math:`x_+`, 1: :math:`x_-`).
    growth : float
        Least-squares growth rate of the leaders' mass between the end of Phase I and the
        first drop of the loss by :math:`10^{-3}` (``nan`` with fewer than 5 samples).
    growth_window : tuple of float
        That time window.
    mean_leader : ndarray
        Mass-weighted mean plane angle of the alive leaders at each recorded time.
    held_fraction : ndarray
        Fraction of the alive leaders' mass held on the awaited point's boundary.
    slide_times : ndarray
        Times at which a leader starts to slide on the awaited point's boundary.
    slide_condition : ndarray of bool
        Whether :math:`L_\ell\cos\Delta < L_w` held at each of those times (outputs
        interpolated between recorded samples).
    plateau : tuple of int or None
        Recorded indices ``(j0, j1)`` of the stretch where the whole leading group slides
        and the other group's mass is below :math:`10^{-3}` of it (the setting of item 3).
    plateau_error : float
        Largest relative error of the Ei law on that stretch.
    plateau_margin : ndarray
        The Ei law :math:`g(t)` on that stretch (empty without one).
    leader_on_awaited : float
        Largest output the held leaders give the awaited point on that stretch.
    held_direction_error : float
        Largest angle between the leaders' mean direction and the boundary direction there.
    times : ndarray
        The recorded times of the run.
    """

    regime: str
    leader: int
    awaited: int
    growth: float
    growth_window: tuple[float, float]
    mean_leader: Array
    held_fraction: Array
    slide_times: Array
    slide_condition: NDArray[np.bool_]
    plateau: tuple[int, int] | None
    plateau_error: float
    plateau_margin: Array
    leader_on_awaited: float
    held_direction_error: float
    times: Array


def _masses(traj: Trajectory, lead: int) -> tuple[Array, Array, NDArray[np.bool_]]:
    mass = neuron_mass(traj)
    sgn = np.sign(traj.a[0])
    return (np.sum(np.where(sgn == lead, mass, 0.0), axis=1),
            np.sum(np.where(sgn == -lead, mass, 0.0), axis=1), sgn == lead)


def _growth(traj: Trajectory, t_i: float | None, lead_mass: Array
            ) -> tuple[float, tuple[float, float]]:
    j_a = int(np.searchsorted(traj.t, t_i)) if t_i is not None else 0
    pre = np.flatnonzero(traj.loss >= (1 - 1e-3) * traj.loss[0])
    j_b = int(pre[-1]) if pre.size else 0
    window = (float(traj.t[min(j_a, traj.t.size - 1)]), float(traj.t[j_b]))
    if j_b - j_a < 5:
        return math.nan, window
    coef = np.polyfit(traj.t[j_a:j_b + 1], np.log(lead_mass[j_a:j_b + 1]), 1)
    return float(coef[0]), window


def _slides(traj: Trajectory, data: TwoPointData, lead: int, w: int
            ) -> tuple[Array, NDArray[np.bool_]]:
    ev = traj.events
    sel = (ev["kind"] == "slide-start") & (np.sign(traj.a[0][np.searchsorted(
        traj.neurons, ev["neuron"])]) == lead) & (ev["index"] == w)
    times = np.asarray(ev["t"][sel], dtype=np.float64)
    if not times.size:
        return times, np.zeros(0, dtype=bool)
    f_ev = np.stack([np.interp(times, traj.t, traj.f[:, i]) for i in range(2)], axis=1)
    terms = data.weights * np.exp(-data.y * f_ev)
    return times, np.asarray(terms[:, 1 - w] * math.cos(data.delta) < terms[:, w])


def _plateau(traj: Trajectory, lead_mass: Array, foll_mass: Array, frac_held: Array
             ) -> tuple[int, int] | None:
    full = np.flatnonzero(frac_held >= 1 - 1e-12)
    if not full.size:
        return None
    j0 = j1 = int(full[0])
    while j1 + 1 < traj.t.size and foll_mass[j1 + 1] <= 1e-3 * lead_mass[j1 + 1]:
        j1 += 1
    return (j0, j1) if j1 - j0 >= 5 else None


def measure_saddle(traj: Trajectory, data: TwoPointData, report: PhaseReport) -> Saddle:
    r"""Measure Phase II on a run recorded densely from :math:`t = 0` past the saddle escape.

    Parameters
    ----------
    traj : Trajectory
        All neurons recorded, on a linear grid (e.g. every 0.1 time units).
    data : TwoPointData
        The run's data.
    report : PhaseReport
        :func:`reluflow.detect_phases` of the run.
    """
    traj, d = check_trajectory(traj, data)
    assert isinstance(d, TwoPointData)
    r = roles(d)
    lead_mass, foll_mass, lead = _masses(traj, r.leader)
    alive = np.any(traj.pattern == 1, axis=2)
    mass = neuron_mass(traj)
    wl = np.where(lead & alive, mass, 0.0)
    held = traj.pattern[:, :, r.awaited] == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.sum(np.where(held, wl, 0.0), axis=1) / np.sum(wl, axis=1)
    frac = np.nan_to_num(frac)
    mean = np.angle(np.sum(wl * np.exp(1j * plane_angles(traj.B, d)), axis=1))
    growth, window = _growth(traj, report.t_condensed, lead_mass)
    times, cond = _slides(traj, d, r.leader, r.awaited)
    span = _plateau(traj, lead_mass, foll_mass, frac)
    err = on_w = dang = math.nan
    g_pred = np.zeros(0)
    ell = 1 - r.awaited
    if span is not None and d.y[ell] * traj.f[span[0], ell] > 0:
        j0, j1 = span
        g = d.y[ell] * traj.f[j0:j1 + 1, ell]
        g_pred = plateau_output(d, traj.t[j0:j1 + 1], float(traj.t[j0]), float(g[0]),
                                leader="positive" if r.leader > 0 else "negative")
        err = float(np.max(np.abs(g_pred / g - 1)))
        pre = np.maximum(traj.B[j0:j1 + 1] @ d.X[r.awaited], 0.0)
        on_w = float(np.max(np.abs(np.sum(np.where(lead, traj.a[j0:j1 + 1], 0.0) * pre, axis=1))))
        dang = float(np.max(np.abs(wrap_angle(mean[j0:j1 + 1] - boundary_angle(d, r.awaited)))))
    else:
        span = None
    return Saddle(regime(d), r.leader, r.awaited, growth, window, mean, frac, times, cond,
                  span, err, g_pred, on_w, dang, np.asarray(traj.t))


@dataclass(frozen=True)
class EscapeSweep:
    r"""Saddle-escape times over a sweep of :math:`\kappa` (see :func:`escape_sweep`).

    Attributes
    ----------
    kappas, t_escape : ndarray
        The scales and the measured escape times.
    t_predicted : ndarray
        Prediction with the O(1) term from each initialization
        (:func:`reluflow.analysis.theory.saddle_escape_time` with ``params``, derived for
        the main regime; in the mirror regime from the mirrored run, :func:`mirror_params`;
        ``nan`` in the intermediate regime).
    slope, intercept : float
        Least-squares line :math:`t_\mathrm{esc} = \text{slope}\cdot\log(1/\kappa) +
        \text{intercept}`.
    rate : float
        The predicted growth rate :math:`\lambda` (:func:`reluflow.analysis.theory.escape_rate`).
    """

    kappas: Array
    t_escape: Array
    t_predicted: Array
    slope: float
    intercept: float
    rate: float

    @property
    def log_inv_kappa(self) -> Array:
        return np.asarray(np.log(1.0 / self.kappas))


def escape_sweep(data: TwoPointData, kappas: Array, m: int, seed: int,
                 n_times: int = 301) -> EscapeSweep:
    r"""Run the exact flow from the same directions at each :math:`\kappa`; fit the escape times.

    Each run goes to :math:`1.5\,\log(1/\kappa)/\lambda + 10` (past the leading-order
    escape), recorded on ``n_times`` equally spaced times.

    Raises
    ------
    RuntimeError
        If a run does not leave the saddle in that window.
    """
    ks = np.asarray(kappas, dtype=np.float64)
    if ks.ndim != 1 or ks.size < 2 or np.any(~(ks > 0)) or np.any(ks >= 1):
        raise ValueError(f"kappas must hold at least two scales in (0, 1), got {kappas!r}")
    eff = effective_data(data)
    t_esc, t_pred = [], []
    for kap in ks:
        params = init_network(m, 2, float(kap), seed=seed)
        horizon = 1.5 * saddle_escape_time(data, float(kap)) + 10.0
        tr = gradient_flow(params, data, horizon, times=np.linspace(0.0, horizon, n_times))
        te = detect_phases(tr, data).t_escape
        if te is None:
            raise RuntimeError(f"no saddle escape within t = {horizon:.3g} for kappa = {kap:g}")
        t_esc.append(te)
        t_pred.append(math.nan if eff is None else predicted_escape(data, params, float(kap)))
    slope, icpt = np.polyfit(np.log(1.0 / ks), t_esc, 1)
    return EscapeSweep(ks, np.array(t_esc), np.array(t_pred), float(slope), float(icpt),
                       escape_rate(data))


def describe(s: Saddle, report: PhaseReport, t_max: float) -> str:
    """What the run shows about Phase II, in words (Markdown), for any parameters."""
    pt = ["$x_+$", "$x_-$"][s.awaited]
    out = []
    if report.t_escape is None:
        return (f"In this run the network is still at the saddle at $t$ = {math_number(t_max)}: "
                "the window ends before the escape, so none of the items can be seen (a "
                "longer window, or a larger $\\kappa$, shows them).")
    out.append(f"The loss leaves the saddle at $t_\\mathrm{{esc}}$ = "
               f"{math_number(report.t_escape)}.")
    if s.slide_times.size:
        out.append(f"The leaders start to slide on the boundary of {pt} from $t$ = "
                   f"{math_number(float(s.slide_times.min()), '.4g')}.")
    else:
        out.append(f"No leader reaches the boundary of {pt} before $t$ = {math_number(t_max)}.")
    if report.t_reactivation is not None and report.t_plateau is not None:
        gap = report.t_plateau - report.t_reactivation
        step = float(np.max(np.diff(s.times))) if s.times.size > 1 else 0.0
        when = ("within one recording step of the moment" if abs(gap) <= step
                else "before" if gap > 0 else "after")
        out.append(
            f"The followers are released (reactivation, $t$ = "
            f"{math_number(report.t_reactivation)}) {when} the leaders are switched off on "
            f"{pt} ($t_\\mathrm{{plateau}}$ = {math_number(report.t_plateau)}).")
    if s.plateau is None:
        why = ("both groups slide and grow from the start, so the followers are never "
               "negligible" if s.regime == "mu-plus-only" else
               "the run ends before the whole leading group slides while the followers are "
               "still small")
        out.append(f"Item 3 is not tested on this run: {why}.")
    return " ".join(out)


def plateau_sentence(report: PhaseReport) -> str:
    """One sentence on the measured plateau loss of a run (or why it is not measured)."""
    level = report.values.get("plateau_level_theory")
    loss = report.values.get("plateau_loss")
    if loss is None or not math.isfinite(float(loss)):
        return ("In this run the awaited point's output does not start to move within the "
                "window, so the end of the plateau is not reached.")
    text = f"The run's loss is {math_number(float(loss), '.3f')} at the end of the flat part"
    if level is not None and math.isfinite(float(level)):
        text += (f", above the level {math_number(float(level), '.3g')} by the leaders' "
                 "remaining loss term")
    return text + "."
