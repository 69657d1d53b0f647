r"""The paper's named behaviours, read off one run: observed or not, when, and the evidence.

The behaviours are the paper's (Wang & Ma, NeurIPS 2023); the criteria that decide from
measurements whether a run shows each of them are this book's conventions, stated here
and used by :func:`behaviours` for every data set alike:

* **initial condensation**: the leader group (see
  :mod:`reluflow.analysis.general_phases`) is on one direction, RMS spread at most the
  detector's ``spread_tol``, *before* the saddle escape (``t_condensed < t_escape``);
* **saddle to plateau**: a plateau is entered (``t_plateau`` exists) and the loss stays
  flat on it (the waiting class's margin below 0.01) for at least one e-folding time of the
  leading early mode, ``plateau_flat`` :math:`\ge 1/\lambda_1`
  (:mod:`reluflow.analysis.early`): the waiting class is left alone for longer than the
  escape itself takes;
* **plateau escape**: the plateau above is left (``t_plateau_escape`` exists);
* **deactivation / reactivation**: some neuron stops being active on a point
  (deactivation) and some neuron comes back to a point it had left (reactivation),
  counted by :func:`reluflow.analysis.patterns.pattern_changes`;
* **increasing complexity**: the effective number of directions rises again after its
  minimum, :math:`N_\mathrm{eff}(t_\mathrm{end}) \ge (1 + \text{rise})\,\min_t N_\mathrm{eff}`
  with ``rise`` = 0.1;
* **directional convergence**: the normalized margin is positive at the end and the unit
  parameter vector :math:`\theta/\lVert\theta\rVert` moves by at most ``dir_tol`` over the
  last decade of the run (:math:`t_\mathrm{end}/10` to :math:`t_\mathrm{end}`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reluflow.analysis.patterns import PatternChanges
from reluflow.analysis.phases import PhaseReport
from reluflow.analysis.text import markdown_table
from reluflow.engine import checks as v
from reluflow.engine.trajectory import Trajectory

__all__ = ["BEHAVIOURS", "Behaviour", "behaviour_table", "behaviours", "direction_change"]

#: The paper's named behaviours, in the order of the phases.
BEHAVIOURS = (
    "initial condensation",
    "saddle to plateau",
    "plateau escape",
    "deactivation / reactivation",
    "increasing complexity",
    "directional convergence",
)


@dataclass(frozen=True)
class Behaviour:
    """One named behaviour in one run.

    Attributes
    ----------
    name : str
        One of :data:`BEHAVIOURS`.
    observed : bool
        Whether the run meets the criterion of the module docstring.
    time : float or None
        When it happens (``None`` if not observed, or for directional convergence, which is
        a limit rather than a moment).
    evidence : str
        The measured figure that decides it, in words and MyST maths.
    """

    name: str
    observed: bool
    time: float | None
    evidence: str


def direction_change(traj: Trajectory, decades: float = 1.0) -> float:
    r"""Distance between :math:`\theta/\lVert\theta\rVert` at :math:`t_\mathrm{end}` and at
    :math:`t_\mathrm{end}/10^{\text{decades}}` (recorded neurons; nearest recorded times).

    Examples
    --------
    >>> import reluflow as rf
    >>> traj = rf.gradient_flow(rf.init_network(10, 2, 1e-6, seed=0),
    ...                         rf.TwoPointData(0.3, 0.7), 1e30)
    >>> direction_change(traj) < 1e-2
    True
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    dec = v.positive_finite("decades", decades)
    j1 = traj.t.size - 1
    j0 = traj.at(float(traj.t[-1]) / 10.0**dec)
    vecs = []
    for j in (j0, j1):
        vec = np.concatenate([traj.a[j], traj.B[j].ravel()])
        nv = float(np.linalg.norm(vec))
        if not nv > 0:
            raise ValueError("theta is zero at a compared time")
        vecs.append(vec / nv)
    return float(np.linalg.norm(vecs[1] - vecs[0]))


def _fmt(x: float) -> str:
    """A number for MyST text: 3 significant digits, powers of ten in LaTeX."""
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    mant, exp = f"{x:.2e}".split("e")
    return rf"{mant} \times 10^{{{int(exp)}}}"


def _condensation(rep: PhaseReport) -> Behaviour:
    tc, te = rep.t_condensed, rep.t_escape
    name = BEHAVIOURS[0]
    if tc is None:
        return Behaviour(name, False, None, "no: the leader group never gathers on one "
                         "direction within the spread tolerance")
    if te is not None and tc >= te:
        return Behaviour(name, False, None, f"no: the leader group gathers only at "
                         f"$t = {_fmt(tc)}$, after the escape at ${_fmt(te)}$")
    when = f"before the escape at $t = {_fmt(te)}$" if te is not None else "no escape yet"
    return Behaviour(name, True, tc, f"one direction, {when}")


def _plateau(rep: PhaseReport, rate: float) -> tuple[Behaviour, Behaviour]:
    tp, tpe = rep.t_plateau, rep.t_plateau_escape
    dur = rep.values.get("plateau_duration", math.nan)
    flat = rep.values.get("plateau_flat", math.nan)
    names = BEHAVIOURS[1], BEHAVIOURS[2]
    none = Behaviour(names[1], False, None, "no plateau to escape")
    if tp is None:
        return Behaviour(names[0], False, None, "no: the leader group never leaves the "
                         "waiting class"), none
    if dur == 0.0:
        return Behaviour(names[0], False, None, f"no: the waiting class is fitted at "
                         f"$t = {_fmt(tp)}$, before the leader group stops feeding it"), none
    if not math.isfinite(flat):
        return Behaviour(names[0], False, None, "no: the waiting class does not move "
                         "within the run"), none
    units = flat * rate
    if units < 1.0:
        return Behaviour(names[0], False, None, f"no: the loss stays flat for "
                         f"${_fmt(flat)}$ only, {units:.2f} e-folding times of the leading "
                         "mode"), none
    lvl = rep.values["plateau_loss"]
    b1 = Behaviour(names[0], True, tp, f"flat for ${_fmt(flat)}$ ({units:.1f} e-folding "
                   f"times) at loss {lvl:.3g}")
    if tpe is None or not math.isfinite(dur):
        return b1, Behaviour(names[1], False, None, "no: the run ends on the plateau")
    return b1, Behaviour(names[1], True, tpe, "the waiting class's loss halves")


def _switching(changes: PatternChanges) -> Behaviour:
    n_de = int(changes.total("deactivation")[-1])
    n_re = int(changes.total("reactivation")[-1])
    points = int(np.sum(changes.per_point("reactivation") > 0))
    name = BEHAVIOURS[3]
    if n_de == 0 or n_re == 0:
        return Behaviour(name, False, None, f"no: {n_de} deactivations, {n_re} reactivations")
    first = int(np.argmax(changes.total("reactivation") > 0))
    return Behaviour(name, True, float(changes.t[first]),
                     f"{n_de} off, {n_re} back on ({points} of {changes.y.size} points)")


def _complexity(rep: PhaseReport, rise: float) -> Behaviour:
    lo, fin = rep.values.get("n_eff_min", math.nan), rep.values.get("n_eff_final", math.nan)
    t_lo = rep.values.get("t_n_eff_min", math.nan)
    name = BEHAVIOURS[4]
    if not (math.isfinite(lo) and math.isfinite(fin)):
        return Behaviour(name, False, None, "no: no neuron alive to count directions")
    txt = f"$N_\\mathrm{{eff}}$ {lo:.2f}, then {fin:.2f} at the end"
    if fin >= (1.0 + rise) * lo:
        return Behaviour(name, True, t_lo, txt)
    return Behaviour(name, False, None, "no: " + txt)


def _direction(traj: Trajectory, gamma: float, dir_tol: float) -> Behaviour:
    name = BEHAVIOURS[5]
    change = direction_change(traj)
    txt = f"margin {gamma:.3g}; the direction moves ${_fmt(change)}$ in the last decade"
    ok = gamma > 0 and change <= dir_tol
    return Behaviour(name, ok, None, txt if ok else "no: " + txt)


def behaviours(traj: Trajectory, report: PhaseReport, changes: PatternChanges, rate: float,
               *, rise: float = 0.1, dir_tol: float = 1e-2) -> list[Behaviour]:
    r"""The six :data:`BEHAVIOURS` of one run, decided by the criteria of the module docstring.

    Parameters
    ----------
    traj : Trajectory
        The run (all neurons recorded).
    report : PhaseReport
        :func:`reluflow.analysis.general_phases.detect_phases_general` of the run.
    changes : PatternChanges
        :func:`reluflow.analysis.patterns.pattern_changes` of the run.
    rate : float
        The leading early rate :math:`\lambda_1` of the data (> 0).
    rise : float
        Relative rise of :math:`N_\mathrm{eff}` that counts as increasing complexity, > 0.
    dir_tol : float
        Largest move of :math:`\theta/\lVert\theta\rVert` over the last decade, > 0.
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if not isinstance(report, PhaseReport):
        raise ValueError(f"report must be a PhaseReport, got {type(report).__name__}")
    if not isinstance(changes, PatternChanges):
        raise ValueError(f"changes must be a PatternChanges, got {type(changes).__name__}")
    lam = v.positive_finite("rate", rate)
    rs = v.positive_finite("rise", rise)
    dt = v.positive_finite("dir_tol", dir_tol)
    plat, esc = _plateau(report, lam)
    gamma = float(report.values.get("final_margin", traj.normalized_margin()[-1]))
    return [_condensation(report), plat, esc, _switching(changes), _complexity(report, rs),
            _direction(traj, gamma, dt)]


def behaviour_table(columns: Mapping[str, Sequence[Behaviour]]) -> str:
    """A GitHub-flavoured Markdown table: one row per behaviour, one column per setting.

    Each cell is "yes" or "no", the time when observed, and the evidence.

    Examples
    --------
    >>> b = [Behaviour(name, True, 1.0, "x") for name in BEHAVIOURS]
    >>> row = behaviour_table({"run": b}).splitlines()[2]
    >>> row.strip("|").split("|")
    [' initial condensation ', ' yes, $t = 1$: x ']
    """
    if not columns:
        raise ValueError("columns must hold at least one setting")
    for key, col in columns.items():
        if [b.name for b in col] != list(BEHAVIOURS):
            raise ValueError(f"column {key!r} must list the behaviours {BEHAVIOURS} in order")
    rows = []
    for i, name in enumerate(BEHAVIOURS):
        cells = []
        for col in columns.values():
            b: Any = col[i]
            if b.observed:
                when = f", $t = {_fmt(b.time)}$" if b.time is not None else ""
                cells.append(f"yes{when}: {b.evidence}")
            else:
                cells.append(b.evidence)
        rows.append([name, *(c.replace("|", "/") for c in cells)])
    return markdown_table(["behaviour", *columns], rows, "-" * (1 + len(columns)))
