r"""Baselines and measurements for comparing integrators of the gradient flow.

The exact engine :func:`reluflow.gradient_flow` is compared with two generic baselines on
the same problem:

* **gradient descent** (:func:`reluflow.gradient_descent`), the explicit Euler scheme
  :math:`\theta_{j+1} = \theta_j - \eta\nabla L(\theta_j)` with :math:`\sigma'(0) = 0`;
* **an adaptive Runge-Kutta solver** (:func:`solve_ivp_flow`): :func:`scipy.integrate.solve_ivp`
  (RK45 by default) on the flat parameter vector :math:`\theta = (a, \operatorname{vec} B)`
  with the right-hand side :math:`-\nabla L(\theta)` of :func:`reluflow.network.gradient`
  (:math:`\sigma'(0) = 0`), which knows nothing about activation boundaries: on a sliding
  boundary the field is discontinuous and the solver's error control has to cut its steps.

Measurements on recorded trajectories (all on a common grid of recorded times):

* :func:`output_error`: :math:`\max_{j,i} |f_j(x_i) - f^\mathrm{ref}_j(x_i)|`;
* :func:`boundary_distance`: the normalised pre-activation
  :math:`b_k(t)^\top x_i / \lVert b_k(t)\rVert` of one neuron on one point, which is exactly 0
  while the engine holds the neuron on the boundary and oscillates for gradient descent;
* :func:`sliding_neurons`: neurons held on a boundary (pattern 0) in an engine run;
* :func:`convergence_order`: the least-squares slope of :math:`\log(\text{error})` against
  :math:`\log(\text{step})`;
* :func:`compare_methods`: error, wall time, work and invariant drift of every method in
  one table (:class:`MethodRun` rows) against a reference engine run at a tight tolerance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import solve_ivp

from reluflow import _validate as v
from reluflow.data import Dataset
from reluflow.descent import gradient_descent
from reluflow.flow import gradient_flow
from reluflow.network import Params, loss_value, residual_weights
from reluflow.trajectory import Trajectory, default_times, make_events, relative_drift

__all__ = [
    "IVP_METHODS",
    "MethodRun",
    "boundary_distance",
    "compare_methods",
    "convergence_order",
    "output_error",
    "sliding_neurons",
    "solve_ivp_flow",
]

Array = NDArray[np.float64]

#: The explicit :func:`scipy.integrate.solve_ivp` methods :func:`solve_ivp_flow` accepts.
IVP_METHODS = ("RK45", "RK23", "DOP853")


def _flat(a: Array, B: Array) -> Array:
    return np.concatenate([a, B.ravel()])


def solve_ivp_flow(
    params: Params,
    data: Dataset,
    t_max: float,
    *,
    times: ArrayLike | None = None,
    loss: str = "exp",
    method: str = "RK45",
    rtol: float = 1e-6,
    atol: float | None = None,
    neurons: ArrayLike | None = None,
) -> Trajectory:
    r"""Integrate :math:`\dot\theta = -\nabla L(\theta)` with :func:`scipy.integrate.solve_ivp`.

    The state is the flat vector :math:`\theta = (a_1..a_m, \operatorname{vec} B)` and the
    right-hand side is :math:`(\sum_i r_i\sigma(b_k^\top x_i),\;
    a_k\sum_i r_i 1[b_k^\top x_i > 0]\,x_i)_k` (:func:`reluflow.network.gradient`,
    :math:`\sigma'(0) = 0`, residual weights :math:`r_i`), evaluated pointwise: the solver
    sees a discontinuous field at activation boundaries and no events.

    Parameters
    ----------
    params : Params
        Initial parameters.
    data : Dataset
        Training data.
    t_max : float
        Final time, > 0.
    times : array_like, optional
        Increasing times in ``[0, t_max]`` to record (default
        :func:`~reluflow.trajectory.default_times`); the solver's dense output is not
        used, the recorded times are hit exactly (``t_eval``).
    loss : {"exp", "logistic"}
        Loss function.
    method : {"RK45", "RK23", "DOP853"}
        Explicit Runge-Kutta method of :func:`~scipy.integrate.solve_ivp`.
    rtol : float
        Relative tolerance, in ``[1e-13, 1e-1]``.
    atol : float, optional
        Absolute tolerance, > 0; default :math:`\mathrm{rtol}\,
        \max_{k,j}(|a_k|, \lvert B_{kj}\rvert)` at :math:`t = 0` (the initialization
        scale: a smaller ``atol`` makes the solver resolve the chattering of tiny
        neurons on their boundaries, at a cost that grows without bound).
    neurons : array_like of int, optional
        Neurons whose parameters are recorded (default: all).

    Returns
    -------
    Trajectory
        ``pattern`` is +1/-1 from the sign of :math:`b_k^\top x_i` (never 0: the solver
        has no notion of sliding); ``events`` lists the sign changes between consecutive
        recorded times (at the later time); ``info`` holds ``method``, ``rtol``,
        ``atol``, ``nfev`` (right-hand-side evaluations) and ``wall_time``.

    Raises
    ------
    ValueError
        On a bad argument, naming it and its allowed range or values.
    RuntimeError
        If the solver fails.
    """
    tm, tgrid, loss = v.run_inputs(params, data, t_max, times, loss)
    if method not in IVP_METHODS:
        raise ValueError(f"method must be one of {IVP_METHODS!r}, got {method!r}")
    rt = v.real_scalar("rtol", rtol)
    if not 1e-13 <= rt <= 1e-1:
        raise ValueError(f"rtol must lie in [1e-13, 1e-1], got {rtol!r}")
    y0 = _flat(params.a, params.B)
    if atol is None:
        scale = float(np.max(np.abs(y0))) if y0.size else 1.0
        at = rt * (scale if scale > 0 else 1.0)
    else:
        at = v.positive_finite("atol", atol)
    rec = v.neuron_subset(neurons, params.m)
    tgrid = default_times(tm) if tgrid is None else tgrid
    m, d = params.m, params.d

    X = data.X
    out = np.empty(m + m * d)

    def rhs(_t: float, y: Array) -> Array:
        # -grad L, as reluflow.network.gradient (sigma'(0) = 0) without re-validating Params
        a = y[:m]
        B = y[m:].reshape(m, d)
        with np.errstate(over="ignore", invalid="ignore"):  # rejected trial stages may blow up
            pre = B @ X.T  # (m, n)
            f = a @ np.maximum(pre, 0.0)
            r = residual_weights(f, data, loss)
            out[:m] = np.maximum(pre, 0.0) @ r
            out[m:] = (a[:, None] * (((pre > 0) * r) @ X)).ravel()
        return out.copy()

    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # norms of rejected trial steps
        sol = solve_ivp(rhs, (0.0, tm), y0, method=method, t_eval=tgrid, rtol=rt, atol=at)
    wall = time.perf_counter() - start
    if sol.status != 0 or not np.all(np.isfinite(sol.y)):
        raise RuntimeError(f"solve_ivp_flow: {method} failed: {sol.message}")

    Y = sol.y.T  # (T, m + m d)
    A = Y[:, :m]
    Bs = Y[:, m:].reshape(-1, m, d)
    pre = np.einsum("tkd,nd->tkn", Bs, data.X)
    f = np.einsum("tk,tkn->tn", A, np.maximum(pre, 0.0))
    pat = np.where(pre > 0, 1, -1).astype(np.int8)
    drift = np.array([relative_drift(params.a[rec], params.B[rec], A[j, rec], Bs[j, rec])
                      for j in range(tgrid.size)])
    rows: list[tuple[float, int, int, str]] = []
    flips = np.argwhere(pat[1:, rec] != pat[:-1, rec])
    for j, kk, i in flips:
        rows.append((float(tgrid[j + 1]), int(rec[kk]), int(i),
                     "activate" if pat[j + 1, rec[kk], i] == 1 else "deactivate"))
    return Trajectory(
        t=tgrid.copy(), loss=np.array([loss_value(fj, data, loss) for fj in f]), f=f,
        a=A[:, rec].copy(), B=Bs[:, rec].copy(), pattern=pat[:, rec].copy(),
        events=make_events(rows), drift=drift, neurons=rec, data=data, loss_name=loss,
        info={"method": f"solve_ivp:{method}", "rtol": rt, "atol": at,
              "nfev": int(sol.nfev), "wall_time": wall},
    )


def _same_grid(traj: Trajectory, ref: Trajectory) -> None:
    for name, tr in (("traj", traj), ("reference", ref)):
        if not isinstance(tr, Trajectory):
            raise ValueError(f"{name} must be a reluflow.Trajectory, got {type(tr).__name__}")
    if traj.t.shape != ref.t.shape or not np.allclose(traj.t, ref.t, rtol=1e-12, atol=0.0):
        raise ValueError("traj and reference must be recorded at the same times")
    if traj.f.shape != ref.f.shape:
        raise ValueError(
            f"traj and reference must have outputs of the same shape, got {traj.f.shape} "
            f"and {ref.f.shape}")


def output_error(traj: Trajectory, reference: Trajectory) -> float:
    r"""Largest output error :math:`\max_{j,i}|f(x_i; \theta(t_j)) - f^\mathrm{ref}(x_i; t_j)|`.

    Parameters
    ----------
    traj, reference : Trajectory
        Two runs recorded at the same times on the same data.

    Returns
    -------
    float
        The maximum absolute difference of the recorded outputs (``inf`` if ``traj``
        holds a non-finite output).

    Raises
    ------
    ValueError
        If the trajectories are not recorded on the same grid.
    """
    _same_grid(traj, reference)
    diff = np.abs(traj.f - reference.f)
    return float(np.max(diff)) if np.all(np.isfinite(diff)) else math.inf


def _column(traj: Trajectory, neuron: Any) -> int:
    k = v.int_at_least("neuron", neuron, 0)
    hit = np.flatnonzero(traj.neurons == k)
    if hit.size == 0:
        raise ValueError(f"neuron must be one of the recorded neurons of traj, got {neuron!r}")
    return int(hit[0])


def boundary_distance(traj: Trajectory, neuron: int, index: int) -> Array:
    r"""Normalised pre-activation :math:`b_k(t_j)^\top x_i / \lVert b_k(t_j)\rVert` per time.

    Parameters
    ----------
    traj : Trajectory
        A run that recorded neuron ``neuron``.
    neuron : int
        Index of the neuron in the network (an entry of ``traj.neurons``).
    index : int
        Data point :math:`i`, in ``[0, n - 1]``.

    Returns
    -------
    ndarray, shape (T,)
        The signed distance of :math:`b_k/\lVert b_k\rVert` to the boundary
        :math:`b^\top x_i = 0` (for unit :math:`x_i`); 0 where :math:`b_k = 0`.
    """
    col = _column(traj, neuron)
    i = v.int_at_least("index", index, 0)
    if i >= traj.data.n:
        raise ValueError(
            f"index must be a data point index in [0, {traj.data.n - 1}], got {index!r}")
    b = traj.B[:, col, :]
    nb = np.linalg.norm(b, axis=1)
    pre = b @ traj.data.X[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nb > 0, pre / np.where(nb > 0, nb, 1.0), 0.0)


def sliding_neurons(traj: Trajectory, index: int | None = None) -> NDArray[np.int64]:
    """Network indices of neurons held on a boundary (pattern 0) at some recorded time.

    Parameters
    ----------
    traj : Trajectory
        An engine run (:func:`reluflow.gradient_flow`); other integrators never record 0.
    index : int, optional
        Only boundaries :math:`b^\\top x_i = 0` of this data point (default: any point).

    Returns
    -------
    ndarray of int
        Neuron indices, sorted by decreasing number of recorded times spent held
        (ties by index).
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    held = traj.pattern == 0
    if index is not None:
        i = v.int_at_least("index", index, 0)
        if i >= traj.data.n:
            raise ValueError(
                f"index must be a data point index in [0, {traj.data.n - 1}], got {index!r}")
        counts = held[:, :, i].sum(axis=0)
    else:
        counts = held.any(axis=2).sum(axis=0)
    cols = np.flatnonzero(counts > 0)
    order = np.lexsort((traj.neurons[cols], -counts[cols]))
    return traj.neurons[cols[order]].astype(np.int64)


def convergence_order(steps: ArrayLike, errors: ArrayLike) -> float:
    r"""Empirical order: the least-squares slope of :math:`\log e` against :math:`\log h`.

    Parameters
    ----------
    steps : array_like, shape (k,)
        Step sizes (or tolerances) :math:`h > 0`, at least two distinct values.
    errors : array_like, shape (k,)
        Errors :math:`e > 0` at those steps.

    Returns
    -------
    float
        :math:`q` in :math:`e \approx C h^q`.
    """
    h = v.finite_array("steps", steps, 1)
    e = v.finite_array("errors", errors, 1)
    if e.shape != h.shape:
        raise ValueError(f"steps and errors must be 1-d of equal length, got {h.shape}, {e.shape}")
    if np.any(h <= 0) or np.any(e <= 0):
        raise ValueError("steps and errors must be > 0")
    if np.unique(h).size < 2:
        raise ValueError("steps must hold at least two distinct values")
    return float(np.polyfit(np.log(h), np.log(e), 1)[0])


@dataclass(frozen=True)
class MethodRun:
    """One row of :func:`compare_methods`.

    Attributes
    ----------
    method : str
        ``"engine"``, ``"gradient descent"`` or ``"solve_ivp RK45"`` (etc.).
    setting : str
        ``"rtol=1e-06"`` or ``"lr=0.01"``.
    step : float
        The tolerance (engine, solve_ivp) or learning rate (gradient descent).
    error : float
        :func:`output_error` against the reference run.
    wall_time : float
        Seconds of wall time of the call (measured around it here).
    work : int
        Engine steps, gradient-descent steps, or solve_ivp right-hand-side evaluations.
    drift : float
        :attr:`~reluflow.Trajectory.invariant_drift` of the run.
    """

    method: str
    setting: str
    step: float
    error: float
    wall_time: float
    work: int
    drift: float

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict."""
        return asdict(self)


def _floats(name: str, values: Sequence[float]) -> list[float]:
    return [v.positive_finite(name, x) for x in values]


def compare_methods(
    params: Params,
    data: Dataset,
    t_max: float,
    times: ArrayLike,
    *,
    engine_rtols: Sequence[float] = (1e-4, 1e-6, 1e-9),
    gd_lrs: Sequence[float] = (1e-1, 3e-2, 1e-2),
    ivp_rtols: Sequence[float] = (1e-3, 1e-6),
    ivp_method: str = "RK45",
    reference_rtol: float = 1e-12,
    loss: str = "exp",
    reference: Trajectory | None = None,
) -> tuple[list[MethodRun], Trajectory]:
    r"""Run the engine, gradient descent and ``solve_ivp`` on one problem and score them.

    Each run records the same ``times``; its error is :func:`output_error` against a
    reference engine run at ``reference_rtol`` (computed here unless ``reference`` is
    given).  Wall times are measured with ``time.perf_counter`` around each call and
    depend on the machine and its load; they are reported, never asserted.

    Parameters
    ----------
    params, data, t_max, times, loss
        The problem (as for :func:`reluflow.gradient_flow`); ``times`` is required.
    engine_rtols : sequence of float
        Tolerances of the engine runs.
    gd_lrs : sequence of float
        Learning rates of the gradient-descent runs (each costs ``t_max / lr`` steps).
    ivp_rtols : sequence of float
        Tolerances of the :func:`solve_ivp_flow` runs.
    ivp_method : str
        Method of the :func:`solve_ivp_flow` runs (see :data:`IVP_METHODS`).
    reference_rtol : float
        Tolerance of the reference engine run.
    reference : Trajectory, optional
        A reference run recorded at ``times`` (skips computing it).

    Returns
    -------
    rows : list of MethodRun
        Engine rows, then gradient descent, then solve_ivp, each in the given order.
    reference : Trajectory
        The reference run.
    """
    tm, tgrid, loss = v.run_inputs(params, data, t_max, times, loss)
    if tgrid is None:
        raise ValueError("times must be given (the runs are compared on a common grid)")
    e_rt = _floats("engine_rtols", engine_rtols)
    lrs = _floats("gd_lrs", gd_lrs)
    i_rt = _floats("ivp_rtols", ivp_rtols)
    if ivp_method not in IVP_METHODS:
        raise ValueError(f"ivp_method must be one of {IVP_METHODS!r}, got {ivp_method!r}")
    if reference is None:
        reference = gradient_flow(params, data, tm, times=tgrid, loss=loss, rtol=reference_rtol,
                                  record_events=False)
    else:
        if not isinstance(reference, Trajectory):
            raise ValueError(
                f"reference must be a reluflow.Trajectory, got {type(reference).__name__}")
        if reference.t.shape != tgrid.shape or not np.allclose(reference.t, tgrid):
            raise ValueError("reference must be recorded at `times`")

    rows: list[MethodRun] = []

    def timed(fn: Any, *args: Any, **kw: Any) -> tuple[Trajectory, float]:
        t0 = time.perf_counter()
        tr = fn(*args, **kw)
        return tr, time.perf_counter() - t0

    for rt in e_rt:
        tr, w = timed(gradient_flow, params, data, tm, times=tgrid, loss=loss, rtol=rt,
                      record_events=False)
        rows.append(MethodRun("engine", f"rtol={rt:.0e}", rt, output_error(tr, reference), w,
                              int(tr.info["steps"]), tr.invariant_drift))
    for lr in lrs:
        tr, w = timed(gradient_descent, params, data, lr, tm, times=tgrid, loss=loss,
                      record_events=False)
        rows.append(MethodRun("gradient descent", f"lr={lr:g}", lr, output_error(tr, reference),
                              w, int(tr.info["steps"]), tr.invariant_drift))
    for rt in i_rt:
        tr, w = timed(solve_ivp_flow, params, data, tm, times=tgrid, loss=loss,
                      method=ivp_method, rtol=rt)
        rows.append(MethodRun(f"solve_ivp {ivp_method}", f"rtol={rt:.0e}", rt,
                              output_error(tr, reference), w, int(tr.info["nfev"]),
                              tr.invariant_drift))
    return rows, reference
