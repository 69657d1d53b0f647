r"""Sweeps of the chapter "Beyond two points": cluster spread and initialization scale.

* :func:`cluster_sweep`: the same initialization trained on two-cluster data
  (:class:`~reluflow.engine.datasets.ClusterData`) at several spreads :math:`\sigma`,
  :math:`\sigma = 0` (the two-point limit) included, with the measurements of
  :func:`reluflow.analysis.general_phases.detect_phases_general`.
* :func:`escape_sweep`: the saddle-escape time over initialization scales :math:`\kappa`
  for one data set, with the *same* initial directions at every :math:`\kappa`
  (``init_network`` with one seed draws the same Gaussian directions and scales them), so
  the Phase-I direction dynamics is identical and only :math:`\log(1/\kappa)` changes; the
  fitted slope is compared with the early-alignment rates
  (:func:`reluflow.analysis.early.escape_slope_bounds`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.early import EarlyAlignment, early_alignment, escape_slope_bounds
from reluflow.analysis.general_phases import detect_phases_general
from reluflow.analysis.geometry import regime
from reluflow.analysis.patterns import PatternChanges, first_event_times
from reluflow.analysis.phases import PhaseReport, first_crossing
from reluflow.engine import checks as v
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.datasets import ClusterData, linear_margin
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import Params, init_network
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "ClusterRun",
    "ClusterSummary",
    "EscapeSweep",
    "SpreadConvergence",
    "check_cluster_setting",
    "cluster_sweep",
    "drop_shares",
    "escape_sweep",
    "escape_time",
    "spread_convergence",
    "summarize_clusters",
    "summarize_run",
]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class ClusterRun:
    """One spread of :func:`cluster_sweep`: its data, run, phase report and early rate."""

    sigma: float
    data: ClusterData
    traj: Trajectory
    report: PhaseReport
    rate: float

    def first_reactivations(self) -> Array:
        r"""Exact first reactivation time on each point of the class fitted first.

        The neurons of the other sign leave the points of the leading class (the class
        whose neurons escape the saddle first, ``report.values["leading_class"]``: +1 in
        the main regime, -1 in the mirror one) and come back to them in Phase III; one
        time per such point that sees a reactivation
        (:func:`~reluflow.analysis.patterns.first_event_times`).
        """
        lead = self.report.values["leading_class"]
        first = first_event_times(self.traj, "reactivation")[self.data.y == lead]
        return np.asarray(first[np.isfinite(first)])


def check_cluster_setting(delta: float, p: float, sigma_max: float, n: int, seed: int) -> None:
    r"""Refuse a cluster setting the two-point picture of :func:`cluster_sweep` cannot describe.

    Requires (1) :math:`(\Delta, p)` in the main or mirror regime
    (:func:`~reluflow.analysis.geometry.regime`; in ``"mu-plus-only"`` there is no
    second group to wait on a plateau), (2) ``sigma_max < delta / 3`` (the clusters are
    small against their distance), and (3) the clusters drawn at ``sigma_max`` with
    ``n`` and ``seed`` linearly separable through the origin
    (:func:`~reluflow.engine.datasets.linear_margin` :math:`> 10^{-9}`): interleaved
    clusters (a positive point beyond a negative one) hold two opposite points in balance,
    a different mechanism, and the exact flow may stop there as stiff.

    Raises
    ------
    ValueError
        Naming the parameters and the condition that fails.

    Examples
    --------
    >>> check_cluster_setting(0.3, 0.7, 0.07, 8, 0)          # the chapter's default
    >>> check_cluster_setting(0.3, 0.7, 0.08, 8, 0)          # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: sigma_max = 0.08 interleaves the clusters drawn with n = 8, seed = 0 ...
    """
    base = TwoPointData(delta, p)
    if regime(base) == "mu-plus-only" or not sigma_max < base.delta / 3:
        raise ValueError(f"delta and p must be in the main or mirror regime and sigma_max < "
                         f"delta/3 (clusters apart), got delta={delta}, p={p}, "
                         f"sigma_max={sigma_max}")
    if not linear_margin(ClusterData(delta, p, sigma_max, n=n, seed=seed)) > 1e-9:
        raise ValueError(f"sigma_max = {sigma_max} interleaves the clusters drawn with n = {n}, "
                         f"seed = {seed} (a positive point beyond a negative one): they must be "
                         "linearly separable; take a smaller sigma_max")


def cluster_sweep(
    delta: float,
    p: float,
    sigmas: ArrayLike,
    params: Params,
    *,
    n: int = 8,
    seed: int = 0,
    t_max: float = 1e30,
    times: ArrayLike | None = None,
) -> list[ClusterRun]:
    r"""Train ``params`` on :class:`ClusterData` ``(delta, p, sigma, n, d=params.d, seed)``
    for each ``sigma`` (exact flow to ``t_max``) and detect the phases.

    Parameters
    ----------
    delta, p : float
        Cluster centres and weights, as :class:`~reluflow.TwoPointData`.
    sigmas : array_like
        Spreads, each in ``[0, delta/2)``, increasing.
    params : Params
        The initialization, the same for every spread.
    n, seed : int
        Points per cluster and the seed of their draws.
    t_max : float
        Horizon of every run.
    times : array_like, optional
        Recording times (default: the integrator's).

    Returns
    -------
    list of ClusterRun
        In the order of ``sigmas``; ``rate`` is the leading early rate of the data.

    Raises
    ------
    RuntimeError
        If the integrator stops a run before ``t_max`` (``traj.info["stop"]``), naming
        the spread and the integrator's reason.
    """
    s = v.finite_array("sigmas", sigmas, 1)
    if s.size == 0 or np.any(np.diff(s) <= 0):
        raise ValueError("sigmas must be a non-empty increasing array")
    if not isinstance(params, Params):
        raise ValueError(f"params must be a reluflow.Params, got {type(params).__name__}")
    out = []
    for sg in s.tolist():
        data = ClusterData(delta, p, sg, n=n, d=params.d, seed=seed)
        traj = gradient_flow(params, data, t_max, times=times)
        stop = traj.info.get("stop")
        if stop is not None:
            raise RuntimeError(f"the run at sigma = {sg:g} stopped before t_max = {t_max:g}: "
                               f"{stop}")
        rate = early_alignment(data, params).leading.rate
        out.append(ClusterRun(sg, data, traj, detect_phases_general(traj, data), rate))
    return out


@dataclass(frozen=True)
class EscapeSweep:
    r"""Saddle-escape times over :math:`\kappa` (:func:`escape_sweep`).

    Attributes
    ----------
    kappas : ndarray
        The initialization scales (decreasing).
    t_escape : ndarray
        Measured escape times (:math:`L \le (1-\text{drop})L(0)`), located by linear
        interpolation of :math:`\log(L(0) - L)` between samples (exact for the exponential
        growth out of the saddle).
    t_error : ndarray
        Bound of each time's interpolation error, :math:`h|\Delta^2 g|/(8|\Delta g|)` from the
        samples around the crossing (:math:`g = \log(L(0) - L)`, step :math:`h`).
    slope, intercept : float
        Least-squares line :math:`t_\mathrm{esc} = \text{intercept} + \text{slope}\,
        \log(1/\kappa)`.
    slope_error : float
        The largest change of ``slope`` the time errors can cause,
        :math:`\sum_i |c_i|\,\epsilon_i` with :math:`c_i` the least-squares weights.
    alignment : EarlyAlignment
        The early alignment of the initial directions.
    bounds : tuple of float
        :math:`(1/\lambda_1, 1/\lambda_2)` (:func:`~reluflow.analysis.early.escape_slope_bounds`).
    shares : ndarray, shape (n_kappas, n_directions + 1)
        At each :math:`\kappa`, the share :math:`\phi_j` of the loss drop carried by the
        neurons of each consistent direction at the last recorded time before the escape
        (:func:`drop_shares`); the last column is the share of the neurons the early
        alignment left unlabelled (dead or unresolved).
    """

    kappas: Array
    t_escape: Array
    t_error: Array
    slope: float
    slope_error: float
    intercept: float
    alignment: EarlyAlignment
    bounds: tuple[float, float]
    shares: Array

    @property
    def model_slopes(self) -> Array:
        r"""Slope :math:`1/\sum_j \phi_j\lambda_j` at each :math:`\kappa` from the measured shares.

        Out of the saddle the drop is :math:`\sum_j C_j\kappa^2 e^{2\lambda_j t}`, so at
        the escape :math:`dt_\mathrm{esc}/d\log(1/\kappa) = 1/\sum_j\phi_j\lambda_j`
        with :math:`\phi_j` the shares of the drop there.  Unlabelled neurons are given
        the slowest rate found (the largest slope they could cause).
        """
        lam = self.alignment.rates
        rates = np.append(lam, lam.min())
        return np.asarray(1.0 / (self.shares @ rates))

    @property
    def mixing_tolerance(self) -> float:
        r"""Bound of the slower directions' pull on the fitted slope at these :math:`\kappa`.

        The shares of the slower directions shrink like
        :math:`\kappa^{2(1-\lambda_j/\lambda_1)}` as :math:`\kappa` decreases, so the
        slope :math:`1/\sum_j\phi_j\lambda_j` (:attr:`model_slopes`) falls towards
        :math:`1/\lambda_1` and the slope between two scales lies between its values
        there.  The least-squares slope is a positively weighted mean of the slopes between
        consecutive scales, hence it exceeds :math:`1/\lambda_1` by at most
        :math:`\max_\kappa 1/\sum_j\phi_j\lambda_j - 1/\lambda_1`, which is returned
        (0 if negative).
        """
        return float(max(np.max(self.model_slopes) - self.bounds[0], 0.0))

    @property
    def local_slopes(self) -> Array:
        """Slopes between consecutive :math:`\\kappa` (they approach :math:`1/\\lambda_1`)."""
        return np.asarray(np.diff(self.t_escape) / np.diff(np.log(1.0 / self.kappas)))


def escape_sweep(
    data: Dataset,
    m: int,
    kappas: ArrayLike,
    *,
    seed: int = 0,
    loss: str = "exp",
    drop: float = 0.01,
    n_times: int = 400,
) -> EscapeSweep:
    r"""Measure the saddle-escape time at each :math:`\kappa` with the same initial directions.

    Each run is the exact flow from ``init_network(m, data.d, kappa, seed=seed)`` up to
    :math:`1.5\,(\log(1/\kappa) + 10)/\lambda_1` (beyond the predicted escape), recorded
    on ``n_times`` equally spaced times.

    Parameters
    ----------
    data : Dataset
        The data.
    m : int
        Width.
    kappas : array_like
        At least two scales in (0, 1), decreasing.
    seed : int
        Seed of the initial directions.
    loss : {"exp", "logistic"}
        Loss.
    drop : float
        Loss drop defining the escape, in (0, 1).
    n_times : int
        Recorded times per run, ``>= 50``.

    Raises
    ------
    RuntimeError
        If a run does not escape within its horizon (naming :math:`\kappa`).
    """
    k = v.finite_array("kappas", kappas, 1)
    if k.size < 2 or np.any(k <= 0) or np.any(k >= 1) or np.any(np.diff(k) >= 0):
        raise ValueError("kappas must hold at least two decreasing values in (0, 1)")
    mm = v.int_at_least("m", m, 1)
    dr = v.open_interval("drop", drop, 0.0, 1.0)
    nt = v.int_at_least("n_times", n_times, 50)
    align = early_alignment(data, init_network(mm, data.d, 1.0, seed=seed), loss=loss)
    lam = align.leading.rate
    t_esc, t_err, shares = [], [], []
    for kap in k.tolist():
        horizon = 1.5 * (math.log(1.0 / kap) + 10.0) / lam
        traj = gradient_flow(init_network(mm, data.d, kap, seed=seed), data, horizon,
                             times=np.linspace(0.0, horizon, nt), loss=loss)
        te, err = escape_time(traj, dr)
        if te is None:
            raise RuntimeError(f"no saddle escape within t = {horizon:.4g} at kappa = {kap:g}")
        t_esc.append(te)
        t_err.append(err)
        shares.append(drop_shares(traj, align, te))
    ta, ea = np.asarray(t_esc), np.asarray(t_err)
    ell = np.log(1.0 / k)
    slope, icpt = np.polyfit(ell, ta, 1)
    c = (ell - ell.mean()) / np.sum((ell - ell.mean()) ** 2)
    return EscapeSweep(kappas=k, t_escape=ta, t_error=ea, slope=float(slope),
                       slope_error=float(np.sum(np.abs(c) * ea)), intercept=float(icpt),
                       alignment=align, bounds=escape_slope_bounds(align),
                       shares=np.asarray(shares))


def drop_shares(traj: Trajectory, alignment: EarlyAlignment, t: float) -> Array:
    r"""Share of the early loss drop carried by the neurons of each consistent direction.

    While :math:`f \approx 0` the drop is, to first order in :math:`f`,
    :math:`L(0) - L = c_\ell\sum_i w_i y_i\,(f(x_i) - f_0(x_i)) = \sum_k d_k` with
    :math:`d_k = c_\ell\sum_i w_i y_i\,(a_k\sigma(b_k^\top x_i) - a_k^0\sigma(b_k^{0\top}
    x_i))` (superscript 0: the start); the share of direction
    :math:`j` is :math:`\phi_j = \sum_{k:\,\text{label}_k = j} d_k/\sum_k d_k`.  Read at
    the last recorded time :math:`\le t` (earlier, hence a larger share of the slower
    directions).

    Parameters
    ----------
    traj : Trajectory
        A run whose neurons are the starts of ``alignment`` (same width, same directions).
    alignment : EarlyAlignment
        The early alignment of the run's initial directions.
    t : float
        Time at which the shares are read, within the run.

    Returns
    -------
    ndarray, shape (len(alignment.directions) + 1,)
        The shares :math:`\phi_j` (summing to 1), the last one that of the unlabelled
        (dead or unresolved) neurons.

    Examples
    --------
    >>> import reluflow as rf
    >>> data = rf.TwoPointData(0.3, 0.7)
    >>> align = rf.early.early_alignment(data, rf.init_network(20, 2, 1.0, seed=0))
    >>> traj = rf.gradient_flow(rf.init_network(20, 2, 1e-6, seed=0), data, 40.0)
    >>> phi = drop_shares(traj, align, 30.0)
    >>> bool(np.isclose(phi.sum(), 1.0)), bool(phi[0] > 0.99)
    (True, True)
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if not isinstance(alignment, EarlyAlignment):
        raise ValueError(f"alignment must be an EarlyAlignment, got {type(alignment).__name__}")
    if alignment.labels.shape != (traj.m,):
        raise ValueError(f"alignment has {alignment.labels.size} starts, the run {traj.m} neurons")
    tt = v.real_scalar("t", t)
    if not traj.t[0] <= tt <= traj.t[-1]:
        raise ValueError(f"t must lie in the run [{traj.t[0]:g}, {traj.t[-1]:g}], got {t!r}")
    j = int(np.searchsorted(traj.t, tt, side="right")) - 1
    data = traj.data
    r = data.weights * data.y
    d = (traj.a[j] * (np.maximum(traj.B[j] @ data.X.T, 0.0) @ r)
         - traj.a[0] * (np.maximum(traj.B[0] @ data.X.T, 0.0) @ r))
    total = float(np.sum(d))
    if not total > 0:
        raise ValueError(f"the loss has not started to drop at t = {traj.t[j]:g}")
    nd = len(alignment.directions)
    lab = np.where(alignment.labels >= 0, alignment.labels, nd)
    return np.asarray(np.bincount(lab, weights=d, minlength=nd + 1) / total)


def escape_time(traj: Trajectory, drop: float = 0.01) -> tuple[float | None, float]:
    r"""Saddle-escape time :math:`L = (1-\text{drop})L(0)` and a bound of its timing error.

    The time is located by linear interpolation of :math:`g = \log(L(0) - L)` between the
    two recorded samples around :math:`g = \log(\text{drop}\,L(0))` (exact while the loss
    drop grows exponentially, as it does out of the saddle).  The interpolation error is at
    most :math:`h^2\max|g''|/(8|g'|)`, estimated from the samples as
    :math:`h\,|\Delta^2 g|/(8|\Delta g|)` (step :math:`h`, second differences on both
    sides of the crossing).

    Returns
    -------
    tuple
        ``(time, error bound)``; ``(None, nan)`` if the loss never drops that far, and an
        infinite bound when fewer than two samples lie on either side.

    Examples
    --------
    >>> import reluflow as rf
    >>> traj = rf.gradient_flow(rf.init_network(20, 2, 1e-6, seed=0), rf.TwoPointData(0.3, 0.7),
    ...                         60.0, times=np.linspace(0, 60, 241))
    >>> t, err = escape_time(traj)
    >>> abs(t - rf.detect_phases(traj, traj.data).t_escape) < 0.05, err < 1e-3
    (True, True)
    """
    dr = v.open_interval("drop", drop, 0.0, 1.0)
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    drop = dr
    gap = traj.loss[0] - traj.loss
    with np.errstate(divide="ignore"):
        g = np.where(gap > 0, np.log(np.where(gap > 0, gap, 1.0)), -np.inf)
    hit = first_crossing(traj.t, g, math.log(drop * traj.loss[0]), up=True)
    if hit is None:
        return None, math.nan
    j = hit[1]
    if j < 2 or j + 1 >= g.size or not np.all(np.isfinite(g[j - 2: j + 2])):
        return hit[0], math.inf
    h = float(traj.t[j] - traj.t[j - 1])
    d1 = abs(float(g[j] - g[j - 1]))
    d2 = max(abs(float(g[j + 1] - 2 * g[j] + g[j - 1])), abs(float(g[j] - 2 * g[j - 1] + g[j - 2])))
    return hit[0], h * d2 / (8.0 * d1) if d1 > 0 else math.inf


@dataclass(frozen=True)
class SpreadConvergence:
    r"""How a measured quantity approaches its limit value (:func:`spread_convergence`).

    Attributes
    ----------
    sigmas : ndarray
        The positive parameter values (spreads, step sizes), increasing.
    deviations : ndarray
        :math:`|X(\sigma) - X(0)|/|X(0)|`.
    local_orders : ndarray
        :math:`q_j = \log(D_{j+1}/D_j)/\log(\sigma_{j+1}/\sigma_j)` between consecutive
        values.
    order : float
        The local order of the two smallest values, :math:`q_0`.
    tolerance : float
        Twice the range of the local orders, plus the given measurement allowance: how
        far :math:`q_0` may lie from the true order (see :func:`spread_convergence`).
    """

    sigmas: Array
    deviations: Array
    local_orders: Array
    order: float
    tolerance: float


def spread_convergence(sigmas: ArrayLike, values: ArrayLike, *,
                       allowance: float = 0.0) -> SpreadConvergence:
    r"""The order :math:`q` of :math:`X(\sigma) - X(0) = a\sigma^q(1 + c\sigma + \dots)`.

    With values halving, :math:`\sigma_{j+1} = 2\sigma_j`, the local orders are
    :math:`q_j = q + \log_2\frac{1 + 2c\sigma_j}{1 + c\sigma_j} \approx q +
    c\sigma_j/\ln 2`: the error of :math:`q_j` halves with :math:`\sigma`, so
    :math:`|q_0 - q| \approx |q_1 - q_0|`, at most the range of the local orders.  A
    correction that is not smooth in :math:`\sigma` (gradient descent's chattering depends
    on where its steps fall) shows as scatter of the local orders, also within their range.
    :attr:`SpreadConvergence.tolerance` is twice that range (the terms neglected), plus
    ``allowance`` for the measurement error of :math:`q_0`.  Needs at least three positive
    values.

    Parameters
    ----------
    sigmas : array_like
        Increasing values, the first one 0 (the limit), then at least three.
    values : array_like
        The measured quantity at each value; the value at 0 must be non-zero and every
        deviation positive.
    allowance : float
        Measurement error of the finest local order, >= 0.

    Examples
    --------
    >>> s = np.array([0.0, 0.01, 0.02, 0.04])
    >>> sc = spread_convergence(s, 1.0 + 3 * s**2 + 5 * s**3)
    >>> round(sc.order, 3), sc.tolerance > abs(sc.order - 2)
    (2.023, True)
    """
    s = v.finite_array("sigmas", sigmas, 1)
    x = v.finite_array("values", values, 1)
    if s.shape != x.shape or s.size < 4 or s[0] != 0.0 or np.any(np.diff(s) <= 0):
        raise ValueError("sigmas must be increasing, start at 0 and hold at least 3 more "
                         "values, with one value per sigma")
    al = v.real_scalar("allowance", allowance)
    if al < 0:
        raise ValueError(f"allowance must be >= 0, got {allowance!r}")
    if x[0] == 0:
        raise ValueError("the value at sigma = 0 must be non-zero (deviations are relative)")
    dev = np.abs(x[1:] - x[0]) / abs(x[0])
    if np.any(dev <= 0):
        raise ValueError("every deviation from the sigma = 0 value must be positive")
    q = np.diff(np.log(dev)) / np.diff(np.log(s[1:]))
    return SpreadConvergence(sigmas=s[1:], deviations=dev, local_orders=q, order=float(q[0]),
                             tolerance=2.0 * float(np.ptp(q)) + al)


@dataclass(frozen=True)
class ClusterSummary:
    r"""What the chapter reads off a cluster sweep (:func:`summarize_clusters`).

    Attributes
    ----------
    convergence : dict
        :class:`SpreadConvergence` of the escape time, the plateau exit and the final
        margin (keys ``"escape time"``, ``"plateau exit"``, ``"final margin"``).
    rate_convergence : SpreadConvergence
        Of the early rate :math:`\lVert v(\sigma)\rVert`.
    zero_error : float
        Relative difference of the escape times of the :math:`\sigma = 0` run and the
        two-point run.
    numbers : dict
        Name to ``(value, format)`` of every number the chapter quotes (``None`` for one
        the runs did not measure).
    """

    convergence: dict[str, SpreadConvergence]
    rate_convergence: SpreadConvergence
    zero_error: float
    numbers: dict[str, tuple[float | None, str]]


def summarize_clusters(runs: list[ClusterRun], two_point: Trajectory,
                       slopes: list[EscapeSweep]) -> ClusterSummary:
    r"""Convergence orders, the :math:`\sigma = 0` check and the quoted numbers of a sweep.

    Parameters
    ----------
    runs : list of ClusterRun
        :func:`cluster_sweep` output, the first at :math:`\sigma = 0`, then at least three.
    two_point : Trajectory
        The same initialization on the two-point data.
    slopes : list of EscapeSweep
        :func:`escape_sweep` at the smallest and the largest spread.
    """
    if len(runs) < 4 or runs[0].sigma != 0.0 or len(slopes) != 2:
        raise ValueError("runs must start at sigma = 0 and hold 3 more spreads; slopes 2 sweeps")
    sig = np.array([r.sigma for r in runs])
    rates = [r.rate for r in runs]
    esc = [escape_time(r.traj)[0] for r in runs]
    quantities = {"escape time": esc,
                  "plateau exit": [r.report.t_plateau_escape for r in runs],
                  "final margin": [r.report.values["final_margin"] for r in runs]}
    conv = {k: spread_convergence(sig, x) for k, x in quantities.items()}
    rate_conv = spread_convergence(sig, rates)
    t_two = escape_time(two_point)[0]
    if esc[0] is None or t_two is None:
        raise ValueError("the sigma = 0 and two-point runs must both leave the saddle")
    zero = abs(esc[0] - t_two) / t_two
    firsts = [r.first_reactivations() for r in runs]
    spread = [float(np.ptp(f)) if f.size else None for f in firsts]
    last = [float(np.max(f)) if f.size else None for f in firsts]
    v0, v1 = runs[0].report.values, runs[-1].report.values
    numbers: dict[str, tuple[float | None, str]] = {
        "zero_err": (zero, ".1e"), "sigma_max": (runs[-1].sigma, ".3g"),
        "rate0": (rates[0], ".5f"), "rate_max": (rates[-1], ".5f"),
        "slope0": (slopes[0].slope, ".5f"), "slope_max": (slopes[1].slope, ".5f"),
        "slope_pred0": (1.0 / rates[0], ".5f"), "slope_pred_max": (1.0 / rates[-1], ".5f"),
        "order_rate": (rate_conv.order, ".3f"), "tol_rate": (rate_conv.tolerance, ".2g"),
        "order_esc": (conv["escape time"].order, ".2f"),
        "order_pexit": (conv["plateau exit"].order, ".2f"),
        "order_pexit_max": (float(conv["plateau exit"].local_orders[-1]), ".2f"),
        "order_margin": (conv["final margin"].order, ".2f"),
        "order_margin_max": (float(conv["final margin"].local_orders[-1]), ".2f"),
        "margin0": (v0["final_margin"], ".4f"), "margin_max": (v1["final_margin"], ".4f"),
        "plateau0": (v0["plateau_loss"], ".3f"), "plateau_max": (v1["plateau_loss"], ".3f"),
        "react_spread0": (spread[0], ".3g"), "react_spread_max": (spread[-1], ".3g"),
        "sigma_min": (runs[1].sigma, ".3g"), "react_spread_min": (spread[1], ".3g"),
        "react_last0": (last[0], ".4g"), "react_last_min": (last[1], ".4g"),
        "plateau_dur_max": (v1["plateau_duration"], ".3g"),
    }
    return ClusterSummary(conv, rate_conv, zero, numbers)


def summarize_run(traj: Trajectory, report: PhaseReport, changes: PatternChanges,
                  neff: Array, alignment: EarlyAlignment) -> dict[str, tuple[float | None, str]]:
    """The numbers the chapter quotes about one run on real data: name to (value, format).

    ``lam1`` (leading early rate), ``n_dirs`` (consistent directions reached),
    ``t_escape``, ``neff_start``/``neff_min``/``neff_end`` (effective directions),
    ``margin_end`` (normalized margin), ``deact``/``react`` (pattern changes).
    """
    v_ = report.values
    return {
        "lam1": (alignment.leading.rate, ".4f"), "n_dirs": (len(alignment.directions), ".0f"),
        "t_escape": (report.t_escape, ".3g"), "neff_start": (float(neff[0]), ".3g"),
        "neff_min": (v_["n_eff_min"], ".3g"), "neff_end": (v_["n_eff_final"], ".3g"),
        "margin_end": (v_["final_margin"], ".3g"),
        "deact": (float(changes.total("deactivation")[-1]), ".0f"),
        "react": (float(changes.total("reactivation")[-1]), ".0f"),
    }
