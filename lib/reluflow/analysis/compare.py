r"""Baselines and measurements for comparing integrators of the gradient flow.

The exact engine :func:`reluflow.gradient_flow` is compared with two generic baselines on
the same problem:

* **gradient descent** (:func:`reluflow.gradient_descent`), the explicit Euler scheme
  :math:`\theta_{j+1} = \theta_j - \eta\nabla L(\theta_j)` with :math:`\sigma'(0) = 0`;
* **an adaptive Runge-Kutta solver**
  (:func:`~reluflow.engine.reference.solve_ivp_flow`): :func:`scipy.integrate.solve_ivp`
  (RK45 by default) on the flat parameter vector :math:`\theta = (a, \operatorname{vec} B)`
  with the right-hand side :math:`-\nabla L(\theta)` of :func:`reluflow.engine.network.gradient`
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

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.descent import gradient_descent
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import Params, check_run_inputs
from reluflow.engine.reference import IVP_METHODS, solve_ivp_flow
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "MethodRun",
    "boundary_distance",
    "compare_methods",
    "convergence_order",
    "output_error",
    "sliding_neurons",
]

Array = NDArray[np.float64]

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
        Tolerances of the :func:`~reluflow.engine.reference.solve_ivp_flow` runs.
    ivp_method : str
        Method of the :func:`~reluflow.engine.reference.solve_ivp_flow` runs (see
        :data:`~reluflow.engine.reference.IVP_METHODS`).
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
    tm, tgrid, loss = check_run_inputs(params, data, t_max, times, loss)
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
