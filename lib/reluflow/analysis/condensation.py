r"""Phase I on a recorded run: fates, condensation and sliding rates, sizes, simplification.

What the Phase-I chapter measures and compares with :mod:`reluflow.analysis.theory`
(this book's derivation; conventions in :mod:`reluflow.analysis.geometry`):

* the *fate* of every neuron read off the run (:func:`reluflow.analysis.measure.simulated_fate`)
  against the one predicted from its initial direction (:func:`reluflow.analysis.theory.fate`),
  outside the band of initial angles too close to a fate boundary to be decided before
  the output matters, of width :math:`e^{-\lVert\mu\rVert t_\mathrm{esc}}` (a neuron at
  angle :math:`\delta` from the unstable boundary leaves it like :math:`\delta
  e^{\lVert\mu\rVert t}`);
* the rate at which directions close in on :math:`\pm\mu` against :math:`\lVert\mu\rVert`,
  and the growth rates of sliding neurons against :math:`w\sin\Delta`;
* the sizes against the Phase-I bound :math:`e^{\rho t}`;
* the simplification: the mass fraction :math:`\nu` of the second direction (the sliding
  followers) at the saddle escape against the rate-gap prediction

  .. math:: \frac{\hat\nu}{1-\hat\nu} = \frac{M_f(t_\mathrm{I})}{M_\ell(t_\mathrm{I})}\,
            e^{-2(\lambda - s)(t_\mathrm{esc} - t_\mathrm{I})},

  with :math:`M_\ell, M_f` the leader's and the followers' masses at the end of Phase I,
  :math:`\lambda` the leader's growth rate and :math:`s` the followers' sliding rate, so
  that the effective number of directions at the escape is :math:`e^{H(\nu)}`,
  :math:`H(q) = -q\log q - (1-q)\log(1-q)`, which tends to 1 as :math:`\kappa\to 0`
  because :math:`t_\mathrm{esc} - t_\mathrm{I}\approx\log(1/\kappa)/\lambda`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.geometry import plane_angles, roles
from reluflow.analysis.measure import (
    check_trajectory,
    condensation_rates,
    effective_directions,
    neuron_mass,
    simulated_fate,
    sliding_growth_rates,
    wrap_angle,
)
from reluflow.analysis.phases import PhaseReport
from reluflow.analysis.text import math_number
from reluflow.analysis.theory import (
    condensation_rate,
    escape_rate,
    fate,
    fate_boundary_distance,
    phase1_growth_bound,
    regime,
    sliding_rates,
)
from reluflow.engine.data import TwoPointData
from reluflow.engine.network import Params
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "Condensation",
    "binary_entropy",
    "compare_scales",
    "describe",
    "measure_condensation",
    "scale_independence",
]

Array = NDArray[np.float64]


def binary_entropy(q: float) -> float:
    r""":math:`H(q) = -q\log q - (1-q)\log(1-q)` (0 at :math:`q \in \{0, 1\}`).

    >>> round(math.exp(binary_entropy(0.5)), 6)
    2.0
    """
    qq = float(q)
    if not 0.0 <= qq <= 1.0:
        raise ValueError(f"q must lie in [0, 1], got {q!r}")
    if qq in (0.0, 1.0):
        return 0.0
    return -(qq * math.log(qq) + (1 - qq) * math.log(1 - qq))


@dataclass(frozen=True)
class Condensation:
    r"""Phase-I measurements of one run (see :func:`measure_condensation`).

    Times are ``None`` when the run does not reach them; rates and errors are ``nan``
    when no neuron qualifies (the chapter says so in words).

    Attributes
    ----------
    regime : str
        :func:`reluflow.analysis.theory.regime` of the data.
    leader : int
        Sign of the group that grows first (:func:`reluflow.analysis.geometry.roles`).
    t_condensed, t_escape : float or None
        End of Phase I and saddle escape (:func:`reluflow.detect_phases`).
    settled : bool
        Phase I ends before the escape: the proposition's assumption :math:`|f|\ll 1`.
    predicted, simulated : ndarray of str
        Fates (labels of :data:`reluflow.analysis.theory.phase1.FATES`).
    band : float
        Width (rad) of the undecided band, :math:`e^{-\lVert\mu\rVert t}` at the escape
        (or at the end of the run without one).
    decided : ndarray of bool
        Neurons farther than ``10 * band`` from a fate boundary (or dead from the start).
    rates : ndarray
        Fitted condensation rate of each neuron (``nan`` where not fitted).
    rate_error : float
        :math:`\max_k |\hat\lambda_k/\lVert\mu\rVert - 1|` over the fitted neurons.
    slide_error : float
        Largest relative deviation of a sliding neuron's growth rate from its prediction.
    n_eff : ndarray
        Effective number of directions at each recorded time.
    j_escape : int
        Recorded index of the escape (the last index without one).
    second_fraction, second_predicted : float
        Measured mass fraction :math:`q` of the followers at the escape and the rate-gap
        prediction :math:`\hat\nu` (``nan`` without an escape or without followers).
    size_ratio : float
        :math:`\max_{k,\,t\le t_\mathrm{I}} \lVert\theta_k(t)\rVert/
        (\lVert\theta_k(0)\rVert e^{\rho t})` (at most 1 by the Phase-I bound).
    """

    regime: str
    leader: int
    t_condensed: float | None
    t_escape: float | None
    settled: bool
    predicted: NDArray[np.str_]
    simulated: NDArray[np.str_]
    band: float
    decided: NDArray[np.bool_]
    rates: Array
    rate_error: float
    slide_error: float
    n_eff: Array
    j_escape: int
    second_fraction: float
    second_predicted: float
    size_ratio: float
    leader_spread: float

    @property
    def leader_condensed(self) -> bool:
        """The leaders lie within 0.025 rad (RMS) of one direction at the escape.

        Then :func:`reluflow.analysis.measure.effective_directions` (tolerance 0.05 rad)
        sees the leaders as one direction and the followers as a second one.
        """
        return bool(self.leader_spread <= 0.025)

    @property
    def two_direction_n_eff(self) -> float:
        r""":math:`e^{H(\nu)}`: the effective number of directions of two directions with
        mass shares :math:`1-\nu` and :math:`\nu` (``nan`` without :math:`\nu`)."""
        if not math.isfinite(self.second_fraction):
            return math.nan
        return math.exp(binary_entropy(self.second_fraction))

    @property
    def agreement(self) -> float:
        """Fraction of all neurons whose simulated fate is the predicted one."""
        return float(np.mean(self.predicted == self.simulated))

    @property
    def decided_agreement(self) -> float:
        """The same fraction over the decided neurons (``nan`` if there is none)."""
        if not self.decided.any():
            return math.nan
        return float(np.mean(self.predicted[self.decided] == self.simulated[self.decided]))

    def count(self, label: str, which: str = "simulated") -> int:
        """Number of neurons with fate ``label`` (``which``: simulated or predicted)."""
        arr = self.simulated if which == "simulated" else self.predicted
        return int(np.sum(arr == label))


def _time_index(traj: Trajectory, t: float | None) -> int:
    if t is None:
        return traj.t.size - 1
    return min(int(np.searchsorted(traj.t, t)), traj.t.size - 1)


def _second_fraction(traj: Trajectory, data: TwoPointData, lead: int, t_i: float | None,
                     t_esc: float | None) -> tuple[float, float]:
    """Measured and rate-gap-predicted followers' mass fraction at the escape."""
    if t_i is None or t_esc is None or not t_i < t_esc:
        return math.nan, math.nan
    mass = neuron_mass(traj)
    alive = np.any(traj.pattern == 1, axis=2)
    sgn = np.sign(traj.a[0])
    ml = np.sum(np.where((sgn == lead) & alive, mass, 0.0), axis=1)
    mf = np.sum(np.where((sgn == -lead) & alive, mass, 0.0), axis=1)
    ji, je = _time_index(traj, t_i), _time_index(traj, t_esc)
    if not (ml[ji] > 0 and mf[ji] > 0 and ml[je] + mf[je] > 0):
        return math.nan, math.nan
    lam = escape_rate(data)
    s = sliding_rates(data)["negative" if lead > 0 else "positive"]
    ratio = mf[ji] / ml[ji] * math.exp(-2.0 * (lam - s) * (traj.t[je] - traj.t[ji]))
    return float(mf[je] / (ml[je] + mf[je])), float(ratio / (1.0 + ratio))


def _leader_spread(traj: Trajectory, data: TwoPointData, lead: int, j: int) -> float:
    """Mass-weighted RMS angle (rad) of the alive leaders about their mean at index ``j``."""
    mass = neuron_mass(traj)[j]
    sel = (np.sign(traj.a[0]) == lead) & np.any(traj.pattern[j] == 1, axis=1)
    if not sel.any():
        return math.nan
    phi = plane_angles(traj.B[j, sel], data)
    w = mass[sel] / mass[sel].sum()
    mean = float(np.angle(np.sum(w * np.exp(1j * phi))))
    return float(np.sqrt(np.sum(w * wrap_angle(phi - mean) ** 2)))


def _size_ratio(traj: Trajectory, data: TwoPointData, t_i: float | None) -> float:
    """Largest size relative to the Phase-I bound up to ``t_i`` (``nan`` without it)."""
    if t_i is None:
        return math.nan
    j = _time_index(traj, t_i)
    size = np.sqrt(neuron_mass(traj)[: j + 1])
    rho = phase1_growth_bound(data)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = size / size[0] * np.exp(-rho * traj.t[: j + 1, None])
    return float(np.nanmax(ratio))


def measure_condensation(traj: Trajectory, data: TwoPointData, params: Params,
                         report: PhaseReport) -> Condensation:
    r"""Measure Phase I on a run that starts at :math:`t = 0` from ``params``.

    Parameters
    ----------
    traj : Trajectory
        The exact flow from ``params``, recorded densely (e.g. every 0.1 time units) over
        Phase I and, ideally, past the saddle escape; all neurons recorded.
    data : TwoPointData
        The run's data.
    params : Params
        Its initial parameters (for the predicted fates).
    report : PhaseReport
        :func:`reluflow.detect_phases` of the run.

    Returns
    -------
    Condensation
    """
    traj, d = check_trajectory(traj, data)
    assert isinstance(d, TwoPointData)
    if not isinstance(report, PhaseReport):
        raise ValueError(f"report must be a reluflow.PhaseReport, got {type(report).__name__}")
    t_i, t_esc = report.t_condensed, report.t_escape
    lead = roles(d).leader
    pred, sim = fate(d, params), simulated_fate(traj, d)
    band = math.exp(-condensation_rate(d) * (t_esc if t_esc is not None else traj.t[-1]))
    rates = condensation_rates(traj, d)
    fin = np.isfinite(rates)
    rate_err = float(np.max(np.abs(rates[fin] / condensation_rate(d) - 1))) if fin.any() \
        else math.nan
    slide = sliding_growth_rates(traj, d)
    pred_slide = np.where(np.sign(traj.a[0]) > 0, sliding_rates(d)["positive"],
                          sliding_rates(d)["negative"])
    ok = np.isfinite(slide)
    slide_err = float(np.max(np.abs(slide[ok] / pred_slide[ok] - 1))) if ok.any() else math.nan
    j_esc = _time_index(traj, t_esc)
    q, q_hat = _second_fraction(traj, d, lead, t_i, t_esc)
    return Condensation(
        regime=regime(d), leader=lead, t_condensed=t_i, t_escape=t_esc,
        settled=t_i is not None and (t_esc is None or t_i < t_esc),
        predicted=pred, simulated=sim, band=band,
        decided=fate_boundary_distance(d, params) > 10 * band,
        rates=rates, rate_error=rate_err, slide_error=slide_err,
        n_eff=np.array([effective_directions(traj, j) for j in range(traj.t.size)]),
        j_escape=j_esc, second_fraction=q, second_predicted=q_hat,
        size_ratio=_size_ratio(traj, d, t_i), leader_spread=_leader_spread(traj, d, lead, j_esc),
    )


def scale_independence(traj: Trajectory, small: Trajectory, data: TwoPointData,
                       t_end: float) -> tuple[float, float, float]:
    r"""How much Phase I depends on the scale: a run against the same run scaled down.

    ``small`` starts from the same directions with every weight multiplied by a factor
    :math:`c \ll 1`, recorded at the same times.  Up to ``t_end`` the two runs' directions
    may differ only through the outputs (:math:`O(|f|)`), and their sizes grow by the
    same factor.

    Returns
    -------
    tuple
        ``(largest direction difference (rad), largest |f| of the run, relative difference
        of the growth factors ||theta(t_end)|| / ||theta(0)||)``, all up to ``t_end``.
    """
    for name, tr in (("traj", traj), ("small", small)):
        check_trajectory(tr, data)
        if name == "small" and not np.array_equal(tr.t, traj.t):
            raise ValueError("small must be recorded at the same times as traj")
    j = _time_index(traj, t_end)
    phi1 = plane_angles(traj.B[: j + 1], data)
    phi2 = plane_angles(small.B[: j + 1], data)
    dphi = float(np.max(np.abs(wrap_angle(phi1 - phi2))))
    fmax = float(np.max(np.abs(traj.f[: j + 1])))
    growth = [float(np.sqrt(neuron_mass(tr)[j].sum() / neuron_mass(tr)[0].sum()))
              for tr in (traj, small)]
    return dphi, fmax, abs(growth[0] / growth[1] - 1.0)


def _t(x: float) -> str:
    return math_number(x, ".3g")


def describe(m: Condensation, t_max: float) -> str:
    r"""What the run shows about Phase I, in words (Markdown), for any parameters.

    Says when Phase I ended and when the network left the saddle, or that it did not
    within the window and why; whether the proposition's assumption (Phase I over before
    the escape) holds; and, at the escape, how much mass the second direction holds
    against the rate-gap prediction.
    """
    if m.t_condensed is None:
        out = ["In this run the leaders never gather within 0.1 rad of their target before "
               f"$t$ = {_t(t_max)}: Phase I does not end in the window."]
    else:
        out = [f"In this run Phase I ends at $t_\\mathrm{{I}}$ = {_t(m.t_condensed)}."]
    if m.t_escape is None:
        out.append(f"The network is still at the saddle at the end of the window, $t$ = "
                   f"{_t(t_max)} (the escape takes about $\\log(1/\\kappa)/\\lVert\\mu\\rVert$;"
                   " a longer window shows it), so the mass shares at the escape are not "
                   "measured here.")
    elif not m.settled:
        out.append(f"The network leaves the saddle at $t_\\mathrm{{esc}}$ = {_t(m.t_escape)}, "
                   "before the directions have settled: $\\kappa$ is too large for the "
                   "proposition, whose items need $|f| \\ll 1$ until then. Only the fates far "
                   "from a fate boundary are asserted below.")
    else:
        out.append(f"The network leaves the saddle at $t_\\mathrm{{esc}}$ = {_t(m.t_escape)}.")
        if math.isfinite(m.second_fraction):
            q, q_hat = (math_number(x, ".2g") for x in (m.second_fraction, m.second_predicted))
            out.append(f"There the followers hold a share $\\nu$ = {q} of the mass, against "
                       f"$\\hat\\nu$ = {q_hat} from the rate gap (item 4).")
        if not m.leader_condensed:
            spread = math_number(m.leader_spread, ".2g")
            out.append(f"The leaders are still spread over {spread} rad at the escape "
                       " (it comes soon after the end of Phase I), so they count as "
                       "more than one direction.")
    return " ".join(out)


def compare_scales(t_main: float | None, t_small: float | None, kappa: float,
                   kappa_small: float) -> str:
    """One sentence comparing the end of Phase I of a run and of its scaled-down copy."""
    if t_main is None or t_small is None:
        return (f"At $\\kappa$ = {math_number(kappa, '.0e')} Phase I does not end in the "
                "window, so this comparison needs a smaller $\\kappa$.")
    return (f"Measured: $t_\\mathrm{{I}}$ = {math_number(t_main, '.4g')} at $\\kappa$ = "
            f"{math_number(kappa, '.0e')} and {math_number(t_small, '.4g')} at $\\kappa$ = "
            f"{math_number(kappa_small, '.0e')}.")
