r"""Plain gradient descent: the baseline a reader would otherwise write.

.. math:: \theta_{k+1} = \theta_k - \eta\,\nabla L(\theta_k), \qquad t_k = k\eta,

vectorised over neurons with numpy (cost :math:`O(nmd)` per step).  As :math:`\eta\to 0`
it converges, with order 1, to the gradient flow, including the Filippov sliding
motion, around which it chatters.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import ArrayLike

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.deadline import check_deadline
from reluflow.engine.network import Params, check_run_inputs, residual_weights
from reluflow.engine.trajectory import Recorder, Trajectory, default_times, make_events

__all__ = ["gradient_descent"]


def gradient_descent(
    params: Params,
    data: Dataset,
    lr: float,
    t_max: float,
    *,
    times: ArrayLike | None = None,
    loss: str = "exp",
    neurons: ArrayLike | None = None,
    record_events: bool = True,
) -> Trajectory:
    r"""Run gradient descent with step ``lr`` up to time ``t_max`` (``ceil(t_max/lr)`` steps).

    Parameters
    ----------
    params : Params
        Initial parameters.
    data : Dataset
        Training data.
    lr : float
        Learning rate :math:`\eta > 0`; step ``k`` is recorded as time :math:`k\eta`.
    t_max : float
        Final time, > 0.
    times : array_like, optional
        Times to record (increasing, in ``[0, t_max]``); each is recorded at the step
        nearest to it.  Default: :func:`~reluflow.engine.trajectory.default_times`.
    loss : {"exp", "logistic"}
        Loss function.
    neurons : array_like of int, optional
        Neurons whose parameters are recorded (default: all).
    record_events : bool
        Record activation changes (memory grows with chattering; turn off for long runs).

    Returns
    -------
    Trajectory
        With ``events`` holding every sign change of :math:`b_k^\top x_i` between steps
        (``activate``/``deactivate``); chattering shows up as many such events.

    Raises
    ------
    ~reluflow.engine.deadline.RunTimeLimitExceeded
        When a time limit set with :func:`~reluflow.engine.deadline.time_limit` passes
        (checked before every step).
    """
    tm, tgrid, loss = check_run_inputs(params, data, t_max, times, loss)
    eta = v.positive_finite("lr", lr)
    rec = v.neuron_subset(neurons, params.m)
    tgrid = default_times(tm) if tgrid is None else tgrid
    n_steps = int(np.ceil(tm / eta - 1e-9))
    rec_steps = np.minimum(np.rint(tgrid / eta).astype(np.int64), n_steps)

    X = data.X
    a = params.a.copy()
    B = params.B.copy()
    T = tgrid.size
    rec_buf = Recorder(tgrid, rec, params.a, params.B, data, loss)
    ev_chunks: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
    start = time.perf_counter()

    pre = B @ X.T  # (m, n)
    act = pre > 0
    j = 0
    for step in range(n_steps + 1):
        check_deadline()
        relu = np.where(act, pre, 0.0)
        f = a @ relu
        while j < T and rec_steps[j] == step:
            rec_buf.record(j, a[rec], B[rec], np.where(act[rec], 1, -1), f)
            j += 1
        if step == n_steps:
            break
        r = residual_weights(f, data, loss)
        grad_a = relu @ r
        grad_B = a[:, None] * ((act * r) @ X)
        a += eta * grad_a
        B += eta * grad_B
        pre = B @ X.T
        new_act = pre > 0
        if record_events:
            ks, iis = np.nonzero(new_act != act)
            if ks.size:
                ev_chunks.append(((step + 1) * eta, ks, iis, new_act[ks, iis]))
        act = new_act

    events = make_events(
        [(tk, int(k), int(i), "activate" if up else "deactivate")
         for tk, ks, iis, ups in ev_chunks for k, i, up in zip(ks, iis, ups, strict=True)]
    )
    return rec_buf.trajectory(events, {"method": "gradient_descent", "lr": eta,
                                       "steps": n_steps,
                                       "wall_time": time.perf_counter() - start})
