r"""Phase III on recorded runs: sliding growth, reactivation, rotation, the plateau length.

What the Phase-III chapter measures and compares with :mod:`reluflow.analysis.theory`
(this book's derivation).  Roles come from :func:`reluflow.analysis.geometry.roles`: the
*followers* (negative neurons in the main regime) are held on the boundary of the leaders'
point :math:`x_\ell` and active on the awaited point :math:`x_w` only; they are released
(reactivation) when the field on the active side of that boundary points away from it,

.. math:: L_\ell < L_w\cos\Delta \qquad (L_i = w_i e^{-y_i f(x_i)}),

which involves the outputs only, so every held follower leaves at the same instant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.geometry import effective_data, plane_angles, regime, roles
from reluflow.analysis.measure import check_trajectory, fit_line, neuron_mass, wrap_angle
from reluflow.analysis.phases import PhaseReport, detect_phases
from reluflow.analysis.saddle import loss_terms
from reluflow.analysis.text import markdown_table, math_number
from reluflow.analysis.theory import (
    condensation_rate,
    leading_slope,
    plateau_escape_time,
    plateau_exit_output,
    reactivation_threshold,
)
from reluflow.engine.data import TwoPointData
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import init_network
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "Escape",
    "SlopeRow",
    "dense_horizon",
    "describe",
    "exit_loss",
    "length_sentence",
    "measure_escape",
    "reactivation_output",
    "release_sentence",
    "slope_sentence",
    "slope_sweep",
    "slope_table",
    "tracking_bound",
]

Array = NDArray[np.float64]


def dense_horizon(data: TwoPointData, kappa: float) -> float:
    r"""End of the dense recording of a Phase-III run: past the plateau escape with room.

    :math:`1.5\,T_\mathrm{III} + 30` with this book's corrected estimate
    (:func:`reluflow.analysis.theory.plateau_escape_time`, on the main-regime data of the
    regime), or, in the intermediate regime, twice the time the slower sliding group needs
    to grow from :math:`\kappa` to :math:`O(1)`, :math:`2\log(1/\kappa)/(\min(p,1-p)\sin\Delta)`.
    """
    eff = effective_data(data)
    if eff is not None:
        return 1.5 * plateau_escape_time(eff, kappa, "corrected") + 30.0
    return 2.0 * math.log(1.0 / kappa) / (min(data.p, 1 - data.p) * math.sin(data.delta)) + 30.0


@dataclass(frozen=True)
class Escape:
    r"""Phase-III measurements of one run (see :func:`measure_escape`).

    Attributes
    ----------
    regime : str
    leader, awaited : int
        Sign of the leading group; index of the awaited point :math:`x_w`.
    gap : ndarray
        :math:`\log L_\ell - \log(L_w\cos\Delta)` at each recorded time (negative: the
        reactivation condition holds).
    t_condition : float or None
        First time the condition holds, interpolated between samples.
    release_times : ndarray
        Times at which the engine releases a held follower from the leaders' boundary.
    step : float
        Recording step of the dense part of the run.
    slide_window : tuple of float or None
        Window in which the released followers all slide (before the release).
    slide_ratio : float
        Measured log-growth of their :math:`\sum\lVert b_k\rVert^2` over that window divided
        by :math:`\int 2L_w\sin\Delta\,dt` (``nan`` without a window).
    slide_rate : float
        Fitted growth rate of :math:`\lVert b_k\rVert` there (half the mass rate).
    follower_mean, target : ndarray
        The followers' mass-weighted mean angle and the angle of
        :math:`\operatorname{sign}(a)\,\mu(t)` at each recorded time.
    follower_mass : ndarray
        The followers' total mass at each recorded time.
    """

    regime: str
    leader: int
    awaited: int
    gap: Array
    t_condition: float | None
    release_times: Array
    step: float
    slide_window: tuple[float, float] | None
    slide_ratio: float
    slide_rate: float
    follower_mean: Array
    target: Array
    follower_mass: Array

    @property
    def t_release(self) -> float | None:
        """First release of a held follower (``None``: never released)."""
        return float(self.release_times.min()) if self.release_times.size else None


def _condition_time(t: Array, gap: Array) -> float | None:
    below = np.flatnonzero(gap < 0)
    if not below.size or below[0] == 0:
        return None
    j = int(below[0])
    return float(t[j - 1] + (t[j] - t[j - 1]) * gap[j - 1] / (gap[j - 1] - gap[j]))


def _slide_growth(traj: Trajectory, data: TwoPointData, fol: NDArray[np.bool_], terms: Array,
                  w: int, t_rel: float | None, j_end: int) -> tuple[tuple[float, float] | None,
                                                                     float, float]:
    """Window of the held followers before the release; measured/predicted growth; rate."""
    t = traj.t
    jb = int(np.searchsorted(t, t_rel) - 1) if t_rel is not None else j_end
    if jb <= 0:
        return None, math.nan, math.nan
    held = fol & (traj.pattern[jb, :, 1 - w] == 0) & (traj.pattern[jb, :, w] == 1)
    if not held.any():
        return None, math.nan, math.nan
    all_held = np.all(traj.pattern[:, held, 1 - w] == 0, axis=1)
    ja = jb
    while ja > 0 and all_held[ja - 1]:
        ja -= 1
    ja = max(ja, int(np.searchsorted(t, 0.1 * t[jb])))  # skip the first instants
    if jb - ja < 5:
        return None, math.nan, math.nan
    sq = np.einsum("tkd,tkd->t", traj.B[:, held], traj.B[:, held])
    measured = math.log(sq[jb] / sq[ja])
    predicted = float(np.trapezoid(2 * terms[ja:jb + 1, w] * math.sin(data.delta), t[ja:jb + 1]))
    rate = float(np.polyfit(t[ja:jb + 1], np.log(sq[ja:jb + 1]), 1)[0]) / 2
    return (float(t[ja]), float(t[jb])), measured / predicted, rate


def measure_escape(traj: Trajectory, data: TwoPointData, dense_end: float) -> Escape:
    r"""Measure Phase III on a run recorded on a linear grid up to ``dense_end``.

    Parameters
    ----------
    traj : Trajectory
        All neurons recorded; linear grid on :math:`[0, \text{dense\_end}]` (a log tail after
        it is allowed).
    data : TwoPointData
        The run's data.
    dense_end : float
        End of the linear part of the recording.
    """
    traj, d = check_trajectory(traj, data)
    assert isinstance(d, TwoPointData)
    r = roles(d)
    w, lead_pt = r.awaited, 1 - r.awaited
    t = traj.t
    terms = loss_terms(traj, d)
    gap = np.log(terms[:, lead_pt]) - np.log(terms[:, w] * math.cos(d.delta))
    fol = np.sign(traj.a[0]) == -r.leader
    ev = traj.events
    idx = np.flatnonzero(fol)
    rel = ev[(ev["kind"] == "slide-end") & (ev["index"] == lead_pt)
             & np.isin(ev["neuron"], traj.neurons[idx])]
    j_end = int(np.searchsorted(t, dense_end, side="right")) - 1
    step = float(t[1] - t[0]) if t.size > 1 else 0.0
    t_rel = float(rel["t"].min()) if rel.size else None
    window, ratio, rate = _slide_growth(traj, d, fol, terms, w, t_rel, j_end)
    mass = neuron_mass(traj)
    alive = np.any(traj.pattern == 1, axis=2)
    wf = np.where(fol[None, :] & alive, mass, 0.0)
    mean = np.angle(np.sum(wf * np.exp(1j * plane_angles(traj.B, d)), axis=1))
    drive = ((terms * d.y[None, :]) @ d.X) * (-r.leader)
    return Escape(regime(d), r.leader, w, gap, _condition_time(t, gap),
                  np.asarray(rel["t"], dtype=np.float64), step, window, ratio, rate, mean,
                  plane_angles(drive, d), np.sum(np.where(fol[None, :], mass, 0.0), axis=1))


def tracking_bound(e: Escape, traj: Trajectory, data: TwoPointData, t_end: float) -> float:
    r"""Bound (rad) on the angle between the released followers and their target at ``t_end``.

    After the release a follower's direction relaxes towards the direction of
    :math:`\operatorname{sign}(a)\mu(t)` at the rate :math:`\lVert\mu(t)\rVert` (item 3)
    while that target turns at the angular speed :math:`\omega(t)`: the angle between them
    is at most the angle at the release damped by :math:`e^{-\int\lVert\mu\rVert dt}`, plus
    the tracking lag :math:`\omega/\lVert\mu\rVert`, taken at its largest over the second
    half of :math:`[t_\mathrm{release}, t_\mathrm{end}]`.  ``nan`` without a release
    before ``t_end``.
    """
    t_rel = e.t_release
    if t_rel is None or not t_rel < t_end:
        return math.nan
    sel = np.flatnonzero((traj.t >= t_rel) & (traj.t <= t_end))
    if sel.size < 3:
        return math.nan
    t = traj.t[sel]
    drive = (loss_terms(traj, data)[sel] * data.y[None, :]) @ data.X
    speed = np.linalg.norm(drive, axis=1)
    lag = np.abs(np.gradient(np.unwrap(e.target[sel]), t)) / speed
    start = abs(float(wrap_angle(e.follower_mean[sel[0]] - e.target[sel[0]])))
    damp = math.exp(-float(np.trapezoid(speed, t)))
    return start * damp + float(lag[sel.size // 2:].max())


def exit_loss(data: TwoPointData, kappa: float) -> float | None:
    r"""Predicted loss at the end of the plateau, :math:`(1-w_\ell) + w_\ell e^{-g}`.

    :math:`g` = :func:`reluflow.analysis.theory.plateau_exit_output` of the main-regime data
    of the regime; ``None`` in the intermediate regime (not derived).
    """
    eff = effective_data(data)
    if eff is None:
        return None
    g = plateau_exit_output(eff, kappa)
    return (1.0 - eff.p) + eff.p * math.exp(-g)


@dataclass(frozen=True)
class SlopeRow:
    r"""Plateau-escape slopes for one :math:`(\Delta, p)` (see :func:`slope_sweep`).

    ``measured`` and ``length`` are the fitted slopes of :math:`T_\mathrm{III}` and of
    :math:`T_\mathrm{III} - t_\mathrm{esc}` in :math:`\log(1/\kappa)` (``nan`` when a run
    did not escape the plateau); ``leading`` and ``corrected`` the two estimates (the
    corrected one fitted to its own values at the same :math:`\kappa`), ``inv_mu`` =
    :math:`1/\lVert\mu\rVert`; the estimates are ``nan`` in the intermediate regime.
    ``times`` and ``corrected_times`` hold :math:`T_\mathrm{III}` per :math:`\kappa`.
    """

    delta: float
    p: float
    regime: str
    measured: float
    length: float
    leading: float
    corrected: float
    inv_mu: float
    times: tuple[float | None, ...]
    corrected_times: tuple[float, ...]

    @property
    def derived(self) -> bool:
        """The estimates exist (main or mirror regime) and every run escaped."""
        return math.isfinite(self.corrected) and math.isfinite(self.measured)


def slope_sweep(pairs: Sequence[tuple[float, float]], kappas: Sequence[float], m: int,
                seed: int, n_times: int = 161) -> list[SlopeRow]:
    r"""Fit the plateau-escape time in :math:`\log(1/\kappa)` for each :math:`(\Delta, p)`.

    Every run starts from the same directions (``seed``), goes to :func:`dense_horizon`
    and is recorded on ``n_times`` equally spaced times.
    """
    ell = np.log(1.0 / np.asarray(kappas, dtype=np.float64))
    rows = []
    for delta, p in pairs:
        d = TwoPointData(delta, p)
        t3: list[float | None] = []
        te: list[float | None] = []
        for k in kappas:
            h = dense_horizon(d, k)
            tr = gradient_flow(init_network(m, 2, k, seed=seed), d, h,
                               times=np.linspace(0.0, h, n_times))
            rep = detect_phases(tr, d)
            t3.append(rep.t_plateau_escape)
            te.append(rep.t_escape)
        ok = all(x is not None for x in t3 + te)
        length = [None if a is None or b is None else a - b for a, b in zip(t3, te, strict=True)]
        eff = effective_data(d)
        corr_t = tuple(plateau_escape_time(eff, k, "corrected") for k in kappas) if eff else ()
        rows.append(SlopeRow(
            delta, p, regime(d), fit_line(ell, t3)[0] if ok else math.nan,
            fit_line(ell, length)[0] if ok else math.nan,
            leading_slope(eff) if eff else math.nan,
            fit_line(ell, corr_t)[0] if eff else math.nan,
            1.0 / condensation_rate(eff) if eff else math.nan, tuple(t3), corr_t))
    return rows


def describe(e: Escape, report: PhaseReport, horizon: float) -> str:
    """What the run shows about Phase III, in words (Markdown), for any parameters."""
    out = []
    if e.t_release is None:
        cond = ("is never met" if e.t_condition is None else
                f"is met at $t$ = {math_number(e.t_condition, '.4g')}")
        out.append(f"In this run the followers are never released: the condition {cond} "
                   f"within the recorded window ($t \\le$ {math_number(horizon, '.4g')}).")
    else:
        out.append(f"In this run the condition is met at $t$ = "
                   f"{math_number(e.t_condition, '.4g') if e.t_condition else 'the start'}, "
                   f"and the exact integrator releases {e.release_times.size} followers at "
                   f"$t$ = {math_number(e.t_release, '.4g')} (recording step "
                   f"{math_number(e.step, '.2g')}).")
    if report.t_plateau_escape is None:
        out.append("The loss does not leave the plateau within the window.")
    else:
        out.append(f"The loss leaves the plateau at $T_\\mathrm{{III}}$ = "
                   f"{math_number(report.t_plateau_escape, '.4g')}.")
    if e.slide_window is None:
        out.append("No stretch of at least five samples has every released follower held, "
                   "so the sliding growth is not measured.")
    return " ".join(out)


def reactivation_output(data: TwoPointData) -> float | None:
    r"""Predicted leaders' margin at the release, :math:`g_0 = \log\frac{w_\ell}{w_w\cos\Delta}`.

    :func:`reluflow.analysis.theory.reactivation_threshold` of the main-regime data of the
    regime (with :math:`f(x_w) = 0`); ``None`` in the intermediate regime.
    """
    eff = effective_data(data)
    return None if eff is None else reactivation_threshold(eff)


def _pct(x: float, ref: float) -> str:
    return math_number(100 * (x - ref) / ref, "+.1f") + " %"


def slope_table(rows: Sequence[SlopeRow]) -> str:
    r"""The measured and estimated slopes as a Markdown table (words where nothing applies).

    Columns: :math:`\Delta`, :math:`p`, regime, the measured slope of :math:`T_\mathrm{III}`,
    the leading and the corrected estimates with their errors, and the measured and
    predicted slopes of the plateau length.
    """
    names = {"main": "main", "mirror": "mirror", "mu-plus-only": "intermediate"}
    table = []
    for r in rows:
        meas = math_number(r.measured, ".3f") if math.isfinite(r.measured) else "not reached"
        length = math_number(r.length, ".3f") if math.isfinite(r.length) else "not reached"
        if r.derived:
            est = [f"{math_number(r.leading, '.3f')} ({_pct(r.leading, r.measured)})",
                   f"{math_number(r.corrected, '.3f')} ({_pct(r.corrected, r.measured)})",
                   f"{length} ({math_number(r.corrected - r.inv_mu, '.3f')})"]
        else:
            est = ["not derived", "not derived", f"{length} (not derived)"]
        table.append([f"{r.delta:g}", f"{r.p:g}", names[r.regime], meas, *est])
    return markdown_table(["$\\Delta$", "$p$", "regime", "measured", "leading $s_0$",
                           "corrected", "plateau length (predicted)"], table, "rrlrrrr")


def slope_sentence(rows: Sequence[SlopeRow]) -> str:
    """How far each estimate is from the measured slopes, over the rows where both exist."""
    ok = [r for r in rows if r.derived]
    if not ok:
        return ("None of these $(\\Delta, p)$ lies in the main or mirror regime, where the "
                "estimates are derived, so only the measured slopes are shown.")
    lead = max(abs(r.leading - r.measured) / r.measured for r in ok)
    corr = max(abs(r.corrected - r.measured) / r.measured for r in ok)
    under = all(r.leading < r.measured for r in ok)
    return (f"Over the {len(ok)} pairs with a prediction the leading estimate is off by up to "
            f"{100 * lead:.2g} %{' (always below)' if under else ''}, the corrected one by up "
            f"to {100 * corr:.2g} %.")


def length_sentence(row: SlopeRow) -> str:
    """The plateau-length slope of one row against its prediction, in words."""
    if not math.isfinite(row.length):
        return "The runs do not leave the plateau in their window, so nothing is measured."
    if not row.derived:
        return (f"The measured slope is {math_number(row.length, '.3g')}; outside the main and "
                "mirror regimes the estimate is not derived.")
    pred = row.corrected - row.inv_mu
    return (f"Predicted slope {math_number(pred, '.3g')}, measured "
            f"{math_number(row.length, '.3g')}: the plateau lengthens by that many time units "
            "per factor $e$ in $1/\\kappa$, much faster than at $p = 0.7$, because the "
            "followers' rate $1-p$ and the leaders' rate $\\lVert\\mu\\rVert$ are both small.")


def release_sentence(g0: float | None, margin: float | None) -> str:
    """The predicted and measured leaders' margin at the release, in words."""
    if g0 is None:
        return ("In the intermediate regime the leaders slide from the start and the release "
                "threshold is not derived.")
    if margin is None:
        return (f"Predicted $g_0$ = {math_number(g0, '.4f')}; in this run no follower is "
                "released within the window, so there is nothing to compare.")
    return (f"Predicted $g_0$ = {math_number(g0, '.4f')}; the leaders' margin at the first "
            f"release event is {math_number(margin, '.4f')}: the awaited point's output is "
            "still close to 0 there, as item 2 assumes.")
