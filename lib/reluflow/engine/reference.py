r"""Reference integrator: :func:`scipy.integrate.solve_ivp` on the flat parameter vector.

:func:`solve_ivp_flow` integrates :math:`\dot\theta = -\nabla L(\theta)` with an explicit
adaptive Runge-Kutta method of :func:`scipy.integrate.solve_ivp` (RK45 by default) on
:math:`\theta = (a, \operatorname{vec} B)`, with the right-hand side of
:func:`reluflow.engine.network.gradient` (:math:`\sigma'(0) = 0`).  It knows nothing about
activation boundaries: on a sliding boundary the field is discontinuous and the solver's
error control has to cut its steps.  It is the generic baseline the exact engine is
compared with (:mod:`reluflow.analysis.compare`).
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import solve_ivp

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.network import Params, check_run_inputs, loss_value, residual_weights
from reluflow.engine.trajectory import Trajectory, default_times, make_events, relative_drift

__all__ = ["IVP_METHODS", "solve_ivp_flow"]

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
    a_k\sum_i r_i 1[b_k^\top x_i > 0]\,x_i)_k` (:func:`reluflow.engine.network.gradient`,
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
        :func:`~reluflow.engine.trajectory.default_times`); the solver's dense output is not
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
    tm, tgrid, loss = check_run_inputs(params, data, t_max, times, loss)
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
        # -grad L, as reluflow.engine.network.gradient (sigma'(0) = 0) without re-validating Params
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
