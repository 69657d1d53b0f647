r"""Detection of the four phases of a recorded run.

The four-phase picture (initial condensation; saddle to plateau; plateau escape;
convergence with increasing complexity) is the paper's (Wang & Ma, NeurIPS 2023).  The
*operational definitions* of the phase times below, and their thresholds, are this book's
conventions; each time is defined by one measured quantity crossing one documented level,
is interpolated linearly between the two recorded samples that bracket the crossing, and is
``None`` when the crossing does not happen in the run (never guessed).  The measurements
themselves live in :mod:`reluflow.analysis.measure`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.geometry import Roles, plane_angles, regime, roles
from reluflow.analysis.measure import (
    check_trajectory,
    effective_directions,
    jsonable,
    max_margin_distance,
    neuron_mass,
    wrap_angle,
)
from reluflow.analysis.theory.phase2 import plateau_level
from reluflow.analysis.theory.phase4 import final_margin
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.trajectory import Trajectory

__all__ = ["PHASE_TIMES", "PhaseReport", "detect_phases", "first_crossing"]

Array = NDArray[np.float64]


#: The phase times of a :class:`PhaseReport`, in their expected order.
PHASE_TIMES = (
    "t_condensed",
    "t_escape",
    "t_reactivation",
    "t_plateau",
    "t_plateau_escape",
    "t_phase4",
)


def _crossing(t: Array, q: Array, level: float, start: int, up: bool) -> tuple[float, int] | None:
    """First crossing of ``level`` by ``q`` at or after index ``start``, interpolated in t.

    ``up``: first index with ``q >= level``; otherwise first with ``q <= level``.  Returns
    ``(time, index)`` or ``None``.
    """
    for j in range(max(start, 0), t.size):
        qj = q[j]
        if not np.isfinite(qj):
            continue
        if (qj >= level) if up else (qj <= level):
            if j == start or j == 0 or not np.isfinite(q[j - 1]) or q[j - 1] == qj:
                return float(t[j]), j
            q0 = q[j - 1]
            lam = (level - q0) / (qj - q0)
            lam = min(max(float(lam), 0.0), 1.0)
            return float(t[j - 1] + lam * (t[j] - t[j - 1])), j
    return None


def first_crossing(
    t: Array, q: Array, level: float, start: int = 0, *, up: bool
) -> tuple[float, int] | None:
    r"""First crossing of ``level`` by the recorded series ``q``, interpolated linearly in ``t``.

    The rule every phase time of this module uses: the first index :math:`j \ge` ``start``
    with :math:`q_j \ge` ``level`` (``up``) or :math:`q_j \le` ``level``, then linear
    interpolation between samples :math:`j-1` and :math:`j` (non-finite samples skipped).

    Returns
    -------
    tuple or None
        ``(time, j)``, or ``None`` if ``q`` never crosses.

    Examples
    --------
    >>> first_crossing(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.6, 0.2]), 0.5, up=False)
    (1.25, 2)
    """
    return _crossing(np.asarray(t, dtype=np.float64), np.asarray(q, dtype=np.float64),
                     float(level), int(start), bool(up))


def _first_index_at_or_after(t: Array, time: float) -> int:
    return int(np.searchsorted(t, time, side="left"))


@dataclass
class PhaseReport:
    r"""Phase times and the measurements that define them (see :func:`detect_phases`).

    Every time is a float or ``None`` (did not occur in the run).  ``definitions`` maps each
    time to the quantity and level that define it; ``values`` holds other measurements
    (plateau loss, final margin, Phase-IV exponent, ...) next to the predictions of
    :mod:`reluflow.analysis.theory` (keys ending in ``_theory``).
    """

    regime: str
    t_condensed: float | None
    t_escape: float | None
    t_reactivation: float | None
    t_plateau: float | None
    t_plateau_escape: float | None
    t_phase4: float | None
    definitions: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def times(self) -> dict[str, float | None]:
        """The six phase times, in :data:`PHASE_TIMES` order."""
        return {k: getattr(self, k) for k in PHASE_TIMES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: ``regime``, the six times, ``definitions``, ``values`` (NaN -> None)."""
        out: dict[str, Any] = {"regime": self.regime}
        out.update(self.times())
        out["definitions"] = dict(self.definitions)
        out["values"] = jsonable(dict(self.values))
        json.dumps(out)  # fail loudly here, not in the caller, if something is not JSON-able
        return out

    def __str__(self) -> str:
        rows = [("regime", self.regime, "")]
        for k in PHASE_TIMES:
            t = getattr(self, k)
            rows.append((k, "None" if t is None else f"{t:.6g}", self.definitions.get(k, "")))
        for k, val in self.values.items():
            if isinstance(val, float | np.floating):
                s = "nan" if not math.isfinite(float(val)) else f"{float(val):.6g}"
            else:
                s = str(val)
            rows.append((k, s, ""))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        head = f"{'quantity':<{w0}}  {'value':>{w1}}  definition"
        lines = [head, "-" * len(head)]
        lines += [f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
        return "\n".join(lines)




def detect_phases(
    traj: Trajectory,
    data: Dataset,
    *,
    spread_tol: float = 0.1,
    drop: float = 0.01,
    phase4_margin: float = 2.0,
) -> PhaseReport:
    r"""Detect the phase times of a run (definitions: this book's conventions).

    Roles: the *leader* group is the one that fits first (positive neurons in the ``"main"``
    regime, negative ones in the ``"mirror"`` regime; in ``"mu-plus-only"`` the group of the
    heavier class), its *target* is :math:`\mu` (resp. :math:`-\mu`; :math:`x_-^\perp` or
    :math:`x_+^\perp` in ``"mu-plus-only"``), the *follower* is the other group, and the
    *waiting point* :math:`x_w` is the other class's point (:math:`x_-` in the main regime).
    With mass fractions taken over a group's mass:

    * ``t_condensed`` (end of Phase I): first time the mass-weighted RMS angle of the alive
      leader neurons about the target is :math:`\le` ``spread_tol`` rad.
    * ``t_escape`` (saddle escape): first time :math:`L(t) \le (1-\text{drop})\,L(0)`.
    * ``t_reactivation``: after ``t_condensed``, the first time the follower's mass fraction
      active on the leader's point rises back to :math:`\ge 1/2` after having been
      :math:`< 1/2` (the followers left their boundary).
    * ``t_plateau`` (entry to the plateau, deactivation on :math:`x_w`): first time
      :math:`\ge` ``t_escape`` at which the leader's mass fraction active on :math:`x_w` is
      :math:`\le 1/2`.
    * ``t_plateau_escape``: first time :math:`\ge` ``t_plateau`` at which the margin of the
      waiting point :math:`y_w f(x_w) \ge \log 2` (its loss term has halved).
    * ``t_phase4`` (start of Phase IV): first time :math:`\ge` ``t_plateau_escape`` at which
      :math:`\min_i y_i f(x_i) \ge` ``phase4_margin``.

    Values: ``plateau_loss`` (the loss at the end of the flat part: first time after
    ``t_plateau`` at which :math:`y_w f(x_w) \ge 0.01`),
    ``final_loss``, ``final_margin`` (normalized), ``n_eff_final``
    (:func:`~reluflow.analysis.measure.effective_directions`), ``max_margin_distance``,
    ``phase4_exponent``
    (:math:`\alpha` of the least-squares fit :math:`\log L = c - \alpha\log(t\log t)` on the
    recorded times :math:`t \ge \max(10^3 t_\mathrm{phase4}, 10^3)`), ``phase4_constant``
    (:math:`4\gamma(t)\,t\log t\,L(t)` at the end, :math:`\to 1` by
    :func:`reluflow.analysis.theory.phase4_loss`), and the corresponding ``*_theory`` predictions.

    The times are only as precise as the recorded grid: pass a dense ``times`` (e.g. linear
    over the first three phases) to :func:`reluflow.gradient_flow`; on a coarse log grid two
    events can fall in the same interval.

    For a general :class:`~reluflow.Dataset` (not two-point) only ``t_escape`` and
    ``t_phase4`` (after ``t_escape``) are defined; the others are ``None``.
    """
    traj, d = check_trajectory(traj, data, two_point=False)
    st, dr, pm = _options(spread_tol, drop, phase4_margin)
    t, L = traj.t, traj.loss
    qmin = np.min(traj.f * d.y[None, :], axis=1)
    defs: dict[str, str] = {
        "t_escape": f"L(t) <= (1 - {dr:g}) L(0)",
        "t_phase4": f"min_i y_i f(x_i) >= {pm:g} (after t_plateau_escape)",
    }
    hit = _crossing(t, L, (1 - dr) * L[0], 0, up=False)
    t_esc = hit[0] if hit else None
    times: dict[str, float | None] = dict.fromkeys(PHASE_TIMES)
    times["t_escape"] = t_esc
    vals: dict[str, Any] = {}
    if isinstance(d, TwoPointData) and d.delta < 0.5 * math.pi:
        reg = regime(d)
        times.update(_two_point_times(traj, d, st, pm, t_esc, defs, vals))
        vals["plateau_level_theory"] = plateau_level(d)
        vals["final_margin_theory"] = final_margin(d)
    else:
        reg = "general"
        if t_esc is not None:
            hit = _crossing(t, qmin, pm, _first_index_at_or_after(t, t_esc), up=True)
            times["t_phase4"] = hit[0] if hit else None
    vals.update(_final_values(traj, d, times["t_phase4"]))
    return PhaseReport(regime=reg, **times, definitions=defs, values=vals)


def _options(spread_tol: Any, drop: Any, phase4_margin: Any) -> tuple[float, float, float]:
    st = float(spread_tol)
    if not (math.isfinite(st) and 0 < st < math.pi):
        raise ValueError(f"spread_tol must lie in the open interval (0, pi), got {spread_tol!r}")
    dr = float(drop)
    if not (math.isfinite(dr) and 0 < dr < 1):
        raise ValueError(f"drop must lie in the open interval (0, 1), got {drop!r}")
    pm = float(phase4_margin)
    if not (math.isfinite(pm) and pm > 0):
        raise ValueError(f"phase4_margin must be a finite number > 0, got {phase4_margin!r}")
    return st, dr, pm


def _group_series(traj: Trajectory, d: TwoPointData, r: Roles) -> dict[str, Array]:
    """The three measured series the two-point times are read from.

    ``rms``: mass-weighted RMS angle of the alive leaders about the target; ``lead_on_w``:
    leaders' mass fraction active on the awaited point; ``foll_on_l``: alive followers'
    mass fraction active on the leader's point.
    """
    M = neuron_mass(traj)
    s = np.sign(traj.a)
    alive = np.any(traj.pattern == 1, axis=2)
    lead, foll = s == r.leader, s == -r.leader
    phi = plane_angles(traj.B, d)
    wl = np.where(lead & alive, M, 0.0)
    wf = np.where(foll & alive, M, 0.0)
    ml = np.where(lead, M, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.sum(wl * wrap_angle(phi - r.target) ** 2, axis=1) / np.sum(wl, axis=1))
        lead_on_w = np.sum(ml * (traj.pattern[:, :, r.awaited] == 1), axis=1) / np.sum(ml, axis=1)
        foll_on_l = np.sum(wf * (traj.pattern[:, :, 1 - r.awaited] == 1), axis=1) / np.sum(
            wf, axis=1)
    return {"rms": rms, "lead_on_w": lead_on_w, "foll_on_l": foll_on_l}


def _two_point_definitions(d: TwoPointData, r: Roles, st: float) -> dict[str, str]:
    names = {0: "x+", 1: "x-"}
    w, lead_pt = r.awaited, 1 - r.awaited
    gname = "positive" if r.leader > 0 else "negative"
    fname = "negative" if r.leader > 0 else "positive"
    target = "mu" if regime(d) != "mu-plus-only" else "slide direction"
    return {
        "t_condensed": (f"RMS angle of alive {gname} neurons about the target "
                        f"({target}{'' if r.leader > 0 else ' negated'}) <= {st:g} rad"),
        "t_reactivation": (f"mass fraction of alive {fname} neurons active on "
                           f"{names[lead_pt]} back to >= 1/2 (after t_condensed)"),
        "t_plateau": (f"mass fraction of {gname} neurons active on {names[w]} <= 1/2 "
                      "(after t_escape)"),
        "t_plateau_escape": f"margin y f({names[w]}) >= log 2 (after t_plateau)",
    }


def _two_point_times(traj: Trajectory, d: TwoPointData, st: float, pm: float,
                     t_esc: float | None, defs: dict[str, str], vals: dict[str, Any]
                     ) -> dict[str, float | None]:
    """The times of the two-point phases (adds their definitions and the plateau loss)."""
    r = roles(d)
    defs.update(_two_point_definitions(d, r, st))
    ser = _group_series(traj, d, r)
    t, w = traj.t, r.awaited
    marg_w = traj.f[:, w] * d.y[w]
    qmin = np.min(traj.f * d.y[None, :], axis=1)
    out: dict[str, float | None] = {}
    hit = _crossing(t, ser["rms"], st, 0, up=False)
    if hit:
        out["t_condensed"] = hit[0]
        fol = ser["foll_on_l"]
        below = np.nonzero(np.nan_to_num(fol[hit[1]:], nan=1.0) < 0.5)[0]
        if below.size:
            hit = _crossing(t, np.nan_to_num(fol, nan=0.0), 0.5, hit[1] + int(below[0]), up=True)
            out["t_reactivation"] = hit[0] if hit else None
    vals["plateau_loss"] = math.nan
    if t_esc is None:
        return out
    hit = _crossing(t, ser["lead_on_w"], 0.5, _first_index_at_or_after(t, t_esc), up=False)
    if hit is None:
        return out
    out["t_plateau"] = hit[0]
    flat_end = _crossing(t, marg_w, 0.01, _first_index_at_or_after(t, hit[0]), up=True)
    if flat_end:
        vals["plateau_loss"] = float(np.interp(flat_end[0], t, traj.loss))
    hit = _crossing(t, marg_w, math.log(2.0), hit[1], up=True)
    if hit:
        out["t_plateau_escape"] = hit[0]
        hit = _crossing(t, qmin, pm, hit[1], up=True)
        out["t_phase4"] = hit[0] if hit else None
    return out


def _final_values(traj: Trajectory, d: Dataset, t_p4: float | None) -> dict[str, Any]:
    """End-of-run values and the Phase-IV fit :math:`\\log L = c - \alpha\\log(t\\log t)`."""
    t, L = traj.t, traj.loss
    vals: dict[str, Any] = {
        "final_time": float(t[-1]),
        "final_loss": float(L[-1]),
        "final_margin": float(traj.normalized_margin()[-1]),
        "n_eff_final": effective_directions(traj, -1),
        "max_margin_distance": max_margin_distance(traj, d, -1),
        "phase4_exponent": math.nan,
        "phase4_constant": math.nan,
    }
    if t_p4 is not None:
        sel = (t >= max(1e3 * t_p4, 1e3)) & (L > 0) & np.isfinite(L)
        if np.sum(sel) >= 3:
            coef = np.polyfit(np.log(t[sel] * np.log(t[sel])), np.log(L[sel]), 1)
            vals["phase4_exponent"] = float(-coef[0])
            g_end = vals["final_margin"]
            vals["phase4_constant"] = float(4 * g_end * t[-1] * math.log(t[-1]) * L[-1])
    vals["invariant_drift"] = traj.invariant_drift
    return vals
