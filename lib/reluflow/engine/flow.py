r"""The exact gradient-flow engine.

Gradient flow :math:`\dot\theta = -\nabla L(\theta)` of
:math:`f(x) = \sum_k a_k\sigma(b_k^\top x)` is integrated *exactly* in the sense of
ordinary differential equations with discontinuous right-hand side:

* **Reduction.** :math:`\nabla_{b_k} L \in \operatorname{span}\{x_i\}`, so only
  :math:`z_k = (a_k, Q^\top b_k) \in \mathbb R^{1+D}` moves (:math:`D` = rank of the
  data); the component of :math:`b_k` orthogonal to the data is frozen.
* **Linear pieces.** Given the residual weights :math:`r_i(t)`, every neuron with
  activation state :math:`s` obeys the same linear ODE :math:`\dot z = G_s(r(t)) z`
  (:mod:`reluflow.engine.groups`).  One DOP853 solve per step integrates a propagator
  for each state that many neurons share and every other neuron directly
  (:mod:`reluflow.engine.coupled`), in :math:`\tau = \log(1 + t)`, where the late phases
  are smooth, so :math:`t = 10^{30}` is :math:`\tau\approx 69`.
* **Events.** Every sign change of :math:`b_k^\top x_i` is located on the step's dense
  output (a polynomial), the neuron switches state at that instant and moves on in its
  new state within the same step; the coupled outputs see the switch at the step end,
  which is allowed while the deferred error stays below ``rtol`` and otherwise cuts the
  step (:mod:`reluflow.engine.stepper`, :mod:`reluflow.engine.events`).
* **Filippov sliding.** A neuron reaching boundaries where the one-sided fields push into
  them is held there with the tangent convex combination of the fields; it is released
  when a Filippov coefficient leaves :math:`(0, 1)` (located like an event).
* **Invariant.** :math:`a_k^2 - \lVert b_k\rVert^2` is restored to its initial value after
  every step (a move of the size of the integration error), so it is conserved to
  rounding.
* **Stops.** A run at a stationary point (every field at the rounding level of its terms)
  records that state to the end; a run whose stable step length in :math:`\tau` shrinks
  like a power of :math:`1/t` (a relaxation at a fixed rate in :math:`t`, which would
  cost steps proportional to a power of :math:`t`) ends early when the rest would exceed
  the step budget; both say so in ``Trajectory.info["stop"]``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from reluflow.engine import checks as v
from reluflow.engine.coupled import Problem, Unresolvable
from reluflow.engine.data import Dataset, span_basis
from reluflow.engine.deadline import check_deadline
from reluflow.engine.events import KINDS
from reluflow.engine.groups import HeldCache, correct_invariant, fields, resolve
from reluflow.engine.network import Params, check_run_inputs, log_loss
from reluflow.engine.stepper import Neurons, StepResult, take_step
from reluflow.engine.tolerances import RTOL_RANGE, T_MIN, Tolerances
from reluflow.engine.trajectory import EVENT_DTYPE, Recorder, Trajectory, default_times

__all__ = ["gradient_flow", "merge_duplicates"]

Array = NDArray[np.float64]

_BIG = 1e300  # largest size of any product the field forms (float64 max is 1.8e308)
#: A neuron smaller than this (and than 1e-100 of its start) is set to zero, a fixed point of
#: the flow: a neuron with a^2 = |b|^2 can shrink like e^(-c t), which reaches float64's
#: subnormal range (1e-308) within a step or two of tau past this size.
_VANISH = 1e-200


def gradient_flow(
    params: Params,
    data: Dataset,
    t_max: float,
    *,
    times: ArrayLike | None = None,
    loss: str = "exp",
    rtol: float = 1e-9,
    neurons: ArrayLike | None = None,
    record_events: bool = True,
) -> Trajectory:
    r"""Integrate the gradient flow :math:`\dot\theta = -\nabla L(\theta)` exactly.

    Parameters
    ----------
    params : Params
        Initial parameters :math:`\theta(0) = (a, B)`.
    data : Dataset
        Training data (any :class:`~reluflow.Dataset`; :class:`~reluflow.TwoPointData`
        for the book's setting).
    t_max : float
        Final time, in ``[1e-300, inf)`` (``1e30`` is routine).
    times : array_like, optional
        Increasing times in ``[0, t_max]`` to record; default
        :func:`~reluflow.engine.trajectory.default_times`.
    loss : {"exp", "logistic"}
        :math:`\ell(z) = e^{-z}` or :math:`\log(1 + e^{-z})`.
    rtol : float
        Local error tolerance per neuron, relative to its size, in ``[1e-14, 1e-3]``.
    neurons : array_like of int, optional
        Neurons whose parameters are recorded (default: all).
    record_events : bool
        Keep the list of activation events.

    Returns
    -------
    Trajectory
        States at the recorded times, every event with its exact time, and the invariant
        drift.  Event kinds: ``activate`` (a point becomes active, also on release from a
        boundary to the active side), ``deactivate`` (stops being active, also when a
        neuron is caught on the boundary from the active side), ``slide-start``,
        ``slide-end``.  ``info["stop"]`` is ``None`` for a run to ``t_max``; otherwise a
        dict with ``reason`` (``"stationary"``: the fields fell to the rounding level of
        their terms at ``t``, and the state there is recorded at every later time;
        ``"stiff"``: the flow relaxes at a fixed rate in :math:`t` in some direction
        (typically pinned to a non-zero-loss balance of some points, as on data that
        are not linearly separable) while it moves in others, so the explicit step
        length in :math:`\tau` shrinks like :math:`(1+t)^{-\alpha}`, ``alpha >= 1/2``
        (measured, in the dict), and reaching ``t_max`` would cost ``steps_needed``
        steps, more than the budget; the dict also gives ``t``, the step ``dt`` in
        :math:`t` and the ``loss`` there; the trajectory then ends at the last recorded
        time before ``t``.  A late phase whose stable step in :math:`\tau` stays put
        or shrinks slower than :math:`(1+t)^{-1/2}` never stops; ``"resolution"``: at
        ``t`` the flow changes within less than ``dt``, the smallest step float64
        resolves in :math:`\tau = \log(1+t)` there, as after a release far out in
        :math:`t` with a point's residual still of order one; ``loss`` as for stiff).

    Raises
    ------
    ~reluflow.engine.deadline.RunTimeLimitExceeded
        When a time limit set with :func:`~reluflow.engine.deadline.time_limit` passes
        (checked before every step and every sub-step of a catch-up solve).
    ValueError
        Bad arguments, or a start too large for float64 (the loss or the field
        overflows: ``params`` must be scaled down).

    Examples
    --------
    >>> from reluflow import TwoPointData, init_network
    >>> data = TwoPointData(delta=0.3, p=0.7)
    >>> traj = gradient_flow(init_network(20, 2, 1e-4, seed=0), data, 100.0)
    >>> bool(np.all(np.diff(traj.loss) <= 1e-12))
    True
    """
    tm, tgrid, loss = check_run_inputs(params, data, t_max, times, loss)
    if tm < T_MIN:
        raise ValueError(f"t_max must be >= {T_MIN:g} (smaller horizons are not "
                         f"representable as a float64 step), got {t_max!r}")
    rt = v.real_scalar("rtol", rtol)
    if not RTOL_RANGE[0] <= rt <= RTOL_RANGE[1]:
        raise ValueError(f"rtol must lie in [{RTOL_RANGE[0]:g}, {RTOL_RANGE[1]:g}], "
                         f"got {rtol!r}")
    rec = v.neuron_subset(neurons, params.m)
    tgrid = default_times(tm) if tgrid is None else tgrid
    merged, inv = merge_duplicates(data)
    # The engine's products are small (n x D, m x D): BLAS threads only contend with each
    # other (on a shared 2-core machine digits 0 vs 1 took 4x the CPU with two threads).
    with threadpool_limits(1, user_api="blas"):
        run = _Run.start(params, merged, loss, Tolerances(rtol=rt), tgrid, rec, tm)
        run.keep_events = bool(record_events)
        run.loop()
        traj = run.finish(record_events)
    return traj if inv is None else _expand(traj, data, inv)


def merge_duplicates(data: Dataset) -> tuple[Dataset, NDArray[np.int64] | None]:
    r"""Points repeated with the same label, merged into one point with their total weight.

    Every neuron sees the copies of a point through the same :math:`b_k^\top x_i`, so they
    switch at the same instant; the loss :math:`\sum_i w_i\ell(y_i f(x_i))` and the
    field only see the sum of their weights.  Merging them makes their events one event
    (identical times, not times equal to rounding) and the run cheaper.

    Returns
    -------
    merged : Dataset
        The distinct (point, label) pairs in the order of their first occurrence (``data``
        itself if there are no repeats).
    inverse : ndarray of int or None
        ``merged`` index of every point of ``data`` (``None`` if nothing was merged).

    Examples
    --------
    >>> data = Dataset([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [1, -1, 1])
    >>> merged, inv = merge_duplicates(data)
    >>> merged.X.tolist(), merged.weights.round(4).tolist(), inv.tolist()
    ([[1.0, 0.0], [0.0, 1.0]], [0.6667, 0.3333], [0, 1, 0])
    """
    key = np.column_stack([data.X, data.y])
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    if first.size == data.n:
        return data, None
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    inverse = rank[inv.ravel()]
    keep = np.sort(first)
    w = np.bincount(inverse, weights=data.weights, minlength=keep.size)
    return Dataset(data.X[keep], data.y[keep], w), inverse


def _expand(traj: Trajectory, data: Dataset, inv: NDArray[np.int64]) -> Trajectory:
    """A run on merged points, reported on the original points (copies share everything)."""
    traj.f = traj.f[:, inv]
    traj.pattern = traj.pattern[:, :, inv]
    traj.data = data
    ev = traj.events
    if ev.size:
        counts = np.bincount(inv)
        order = np.argsort(inv, kind="stable")
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rep = counts[ev["index"]]
        out = np.repeat(ev, rep)
        within = np.arange(out.size) - np.repeat(np.cumsum(rep) - rep, rep)
        out["index"] = order[np.repeat(start[ev["index"]], rep) + within]
        traj.events = out
    return traj


def _check_scale(params: Params, data: Dataset, loss: str) -> None:
    """Refuse starts whose loss or field overflows float64 (never a NaN later)."""
    sq = params.a**2 + np.einsum("kd,kd->k", params.B, params.B)
    if not np.all(np.isfinite(sq)) or sq.max() > _BIG:
        raise ValueError("params too large for float64: a_k^2 + |b_k|^2 overflows "
                         f"(largest {sq.max():.3g}); scale the initial weights (kappa) down")
    pre = data.X @ params.B.T
    f = np.maximum(pre, 0.0) @ params.a
    logL = log_loss(f, data, loss)
    field_log = logL + 0.5 * math.log(max(float(sq.max()), 1e-300)) + math.log(
        max(float(np.linalg.norm(data.X, axis=1).sum()), 1e-300))
    if not (np.all(np.isfinite(f)) and logL < 700 and field_log < math.log(_BIG)):
        raise ValueError(
            f"params too large for float64: the initial loss is e^{logL:.4g} (margins down "
            f"to {float(np.min(data.y * f)):.4g}) and the gradient field overflows; the "
            "flow from this start moves on time scales below float64 resolution. Scale "
            "the initial weights (kappa) down")


@dataclass
class _StiffCount:
    r"""Hairer's stiffness test of DOP853: is the integrator limited by stability?

    A step with :math:`h\lambda` above ``stiff_hlambda`` counts; ``stiff_calm``
    consecutive steps below it reset the count; the flow is stiff once the count reaches
    ``stiff_steps``.  Near a stationary point the step-size controller oscillates about
    the stability bound (it asks for steps above and below it in turn), so a count
    reset by every step below the bound would never reach ``stiff_steps``.

    Examples
    --------
    >>> test = _StiffCount(Tolerances(rtol=1e-6))
    >>> [test.update(h) for h in [9.0, 4.0] * 15][-3:]  # one step in two above the bound
    [False, True, True]
    """

    tol: Tolerances
    count: int = 0
    calm: int = 0

    def update(self, hlambda: float) -> bool:
        """Count one step; True while the flow is stiff."""
        if hlambda > self.tol.stiff_hlambda:
            self.count += 1
            self.calm = 0
        else:
            self.calm += 1
            if self.calm >= self.tol.stiff_calm:
                self.count = 0
        return self.count >= self.tol.stiff_steps


@dataclass
class _Run:
    """One run of the engine: problem, neurons, recorder and counters."""

    prob: Problem
    nrn: Neurons
    Q: Array
    B_perp: Array
    rec: NDArray[np.int64]
    recorder: Recorder
    s_rec: Array
    t_max: float
    wall0: float
    cpu0: float
    events: list[tuple[Array, NDArray[np.int64], NDArray[np.int64], NDArray[np.int8]]] = \
        field(default_factory=list)
    j: int = 0
    steps: int = 0
    truncated: int = 0
    located: int = 0
    nfev: int = 0
    stop: dict[str, Any] | None = None
    snap: tuple[float, Array, int, float] | None = None
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=15))
    keep_events: bool = True
    size0: Array = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def start(cls, params: Params, data: Dataset, loss: str, tol: Tolerances, tgrid: Array,
              rec: NDArray[np.int64], t_max: float) -> _Run:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        _check_scale(params, data, loss)
        X = data.X
        Q = span_basis(X)
        Xr = X @ Q
        beta = params.B @ Q
        Z = np.column_stack([params.a, beta])
        c = Z[:, 0] ** 2 - np.einsum("kd,kd->k", Z[:, 1:], Z[:, 1:])
        prob = Problem(Xr, data.y.astype(np.float64), data.weights, loss, tol,
                       HeldCache(Xr, data.y.astype(np.float64)))
        nrn = Neurons(Z, np.zeros((params.m, data.n), dtype=np.int8), c,
                      np.arange(params.m, dtype=np.int64))
        _classify_start(prob, nrn, params.B @ X.T, params, X)
        nrn.drop_dead()
        run = cls(prob, nrn, Q, params.B - beta @ Q.T, rec,
                  Recorder(tgrid, rec, params.a, params.B, data, loss), np.log1p(tgrid),
                  t_max, wall0, cpu0)
        run.size0 = np.abs(Z).max(axis=1)
        run.vanish(0.0)
        return run

    def record(self) -> None:
        Zr = self.nrn.Z[self.rec]
        self.recorder.record(self.j, Zr[:, 0], self.B_perp[self.rec] + Zr[:, 1:] @ self.Q.T,
                             self.nrn.status[self.rec],
                             self.prob.outputs(self.nrn.Z, self.nrn.status))
        self.j += 1

    def loop(self) -> None:
        """Step to every recording time; stop early only for a stated reason."""
        T = self.s_rec.size
        s, h = 0.0, None
        stall = 0
        stiff = _StiffCount(self.prob.tol)
        while self.j < T and self.s_rec[self.j] <= s:
            self.record()
        check = True  # test for a stationary point (at the start and on stiff steps)
        while self.j < T:
            check_deadline()
            s_target = float(self.s_rec[self.j])
            if self.nrn.alive.size == 0 or (check and self._stationary()):
                self.stop = {"reason": "stationary", "t": math.expm1(s)}
                while self.j < T:
                    self.record()
                return
            try:
                res = take_step(self.prob, self.nrn, s, s_target, h)
            except Unresolvable:
                self.stop = {"reason": "resolution", "t": math.expm1(s), "loss": self._loss(),
                             "dt": math.exp(s) * 10 * float(np.spacing(s))}  # scipy's floor
                return
            check = res.hlambda > self.prob.tol.stiff_hlambda
            self._count(res)
            stall = stall + 1 if res.s <= s else 0
            if stall > self.prob.tol.stall_steps:
                raise RuntimeError(f"gradient_flow: no progress in time for {stall} steps "
                                   f"at t = {math.expm1(s):.6g}")
            s, h = res.s, res.h_next
            self.vanish(s)
            self.recent.append(h)
            if stiff.update(res.hlambda) and self._too_stiff(s, h) and \
                    self._stiff_stop(s):
                while self.stop is not None and self.stop["reason"] == "stationary" and \
                        self.j < T:
                    self.record()
                return
            if s >= s_target:
                s = s_target
                self.record()

    def vanish(self, s: float) -> None:
        r"""Set neurons shrunk to below ``_VANISH`` (and 1e-100 of their start) to zero.

        Zero is a fixed point of every neuron's field (:math:`\dot z = G z`), and their
        outputs are below float64's range; they leave their active and held points
        (``deactivate`` and ``slide-end`` events at ``t``) and never move again.
        """
        nrn = self.nrn
        live = nrn.alive
        size = np.abs(nrn.Z[live]).max(axis=1) if live.size else np.zeros(0)
        small = (size < _VANISH) & (size < 1e-100 * self.size0[live])
        if not small.any():
            return
        gone = live[small]
        k, i = np.nonzero(nrn.status[gone] >= 0)
        if self.keep_events and k.size:
            kind = np.where(nrn.status[gone[k], i] == 1, KINDS.index("deactivate"),
                            KINDS.index("slide-end")).astype(np.int8)
            self.events.append((np.full(k.size, math.expm1(s)), gone[k], i, kind))
        nrn.Z[gone] = 0.0
        nrn.status[gone] = -1
        nrn.alive = live[~small]

    def _count(self, res: StepResult) -> None:
        self.steps += 1
        self.truncated += int(res.truncated)
        self.located += res.located
        self.nfev += res.nfev
        b = res.events
        if b.rec_tau and self.keep_events:
            self.events.append((np.expm1(np.concatenate(b.rec_tau)), np.concatenate(b.neuron),
                                np.concatenate(b.point), np.concatenate(b.kind)))

    def _stiff_stop(self, s: float) -> bool:
        r"""Decide, once the flow is stiff, between going on, stopping, and a stationary point.

        The first stiff decision takes a snapshot; after a factor :math:`e` in
        :math:`1+t` (or 300 steps and a factor 1.1) the state is compared with it.  If
        no neuron moved by more than ``10 rtol`` (relative) the flow sits at a
        stationary point (``stop`` reason "stationary", the state is recorded at every
        later time).  Otherwise the step length :math:`h` in :math:`\tau` (mean of the
        last ``stiff_steps`` steps) is fitted as :math:`h \propto (1+t)^{-\alpha}`
        between the snapshot and now: the run stops (reason "stiff") only if
        :math:`\alpha \ge 1/2` (a relaxation at a fixed rate in :math:`t` gives
        :math:`\alpha = 1`; a late phase whose rate grows like :math:`\log t` in
        :math:`\tau` gives :math:`\alpha \approx 0`) and the remaining steps at that
        law, :math:`(e^{\alpha(\tau_{max}-\tau)} - 1)/(\alpha h)`, exceed
        ``stiff_budget``.  Else a new snapshot is taken and the run goes on.
        """
        h = float(np.mean(self.recent))
        if self.snap is None:
            self.snap = (s, self.nrn.Z.copy(), self.steps, h)
            return False
        s_snap, Z_snap, k_snap, h_snap = self.snap
        if s < s_snap + 1.0 and (self.steps - k_snap < 300 or s < s_snap + 0.1):
            return False
        live = self.nrn.alive
        dz = np.linalg.norm(self.nrn.Z[live] - Z_snap[live], axis=1)
        size = np.maximum(np.linalg.norm(self.nrn.Z[live], axis=1), 1e-300)
        change = float(np.max(dz / size)) if live.size else 0.0
        t = math.expm1(s)
        if change <= 10 * self.prob.tol.rtol:
            self.stop = {"reason": "stationary", "t": t, "since": math.expm1(s_snap),
                         "change": change}
            return True
        alpha = math.log(h_snap / h) / (s - s_snap) if s > s_snap else 0.0
        rest = math.log1p(self.t_max) - s
        cost = rest / h if alpha <= 0 else math.expm1(min(alpha * rest, 700.0)) / (alpha * h)
        if alpha < 0.5 or cost <= self.prob.tol.stiff_budget:
            self.snap = None
            return False
        self.stop = {"reason": "stiff", "t": t, "dt": h * math.exp(s), "loss": self._loss(),
                     "change": change, "alpha": alpha, "steps_needed": cost}
        return True

    def _too_stiff(self, s: float, h: float) -> bool:
        r"""Would the rest of the run at this step length in tau exceed the step budget?

        The steps are taken in :math:`\tau`: a stability-limited step length that stays
        put in :math:`\tau` costs steps proportional to :math:`\log t_{max}`; only a
        step length shrinking like a power of :math:`1/t` (a fixed rate in :math:`t`)
        can exceed the budget, which :meth:`_stiff_stop` then measures.
        """
        return (math.log1p(self.t_max) - s) / h > self.prob.tol.stiff_budget

    def _loss(self) -> float:
        f = self.prob.outputs(self.nrn.Z, self.nrn.status)
        return float(np.sum(self.prob.w * np.exp(-self.prob.y * f))) if \
            self.prob.loss == "exp" else float(np.sum(self.prob.w * np.logaddexp(
                0.0, -self.prob.y * f)))

    def _stationary(self) -> bool:
        """Every live neuron's field at the rounding level of its terms (hence zero)."""
        prob, nrn = self.prob, self.nrn
        st = nrn.status[nrn.alive]
        r = prob.residual(prob.outputs(nrn.Z, nrn.status))
        act = (st == 1).astype(np.float64)
        v = fields(prob.Xr, act, r, prob.held.rows(st), prob.floor)
        return not bool(np.any(v))

    def finish(self, record_events: bool) -> Trajectory:
        events = np.zeros(0, dtype=EVENT_DTYPE)
        if record_events and self.events:
            t, k, i, kind = (np.concatenate(x) for x in zip(*self.events, strict=True))
            events = np.zeros(t.size, dtype=EVENT_DTYPE)
            events["t"], events["neuron"], events["index"] = t, k, i
            events["kind"] = np.asarray(KINDS)[kind]
            events = events[np.lexsort((events["neuron"], events["t"]))]
        info = {"method": "gradient_flow", "rtol": self.prob.tol.rtol, "steps": self.steps,
                "rejected_steps": self.truncated, "event_neurons": self.located,
                "nfev": self.nfev, "data_rank": int(self.prob.Xr.shape[1]),
                "stop": self.stop, "wall_time": time.perf_counter() - self.wall0,
                "cpu_time": time.process_time() - self.cpu0}
        traj = self.recorder.trajectory(events, info)
        if self.j < self.s_rec.size:  # stopped early (stiff): keep what was recorded
            for name in ("t", "loss", "f", "a", "B", "pattern", "drift"):
                setattr(traj, name, getattr(traj, name)[: self.j])
            traj.events = traj.events[traj.events["t"] <= traj.t[-1]]  # and what it shows
        return traj


def _classify_start(prob: Problem, nrn: Neurons, pre: Array, params: Params,
                    X: Array) -> None:
    """Initial states; neurons born on a boundary are classified by the flow there."""
    on = np.abs(pre) <= 4 * np.finfo(float).eps * np.outer(
        np.linalg.norm(params.B, axis=1), np.linalg.norm(X, axis=1))
    nrn.status[:] = np.where(pre > 0, 1, -1)
    born = np.flatnonzero(on.any(axis=1))
    if born.size == 0:
        return
    r0 = prob.residual(prob.outputs(nrn.Z, np.where(on, -1, nrn.status).astype(np.int8)))
    onb = on[born]
    e = int(onb.sum(axis=1).max())
    order = np.argsort(~onb, axis=1, kind="stable")[:, :e]
    valid = np.take_along_axis(onb, order, axis=1)
    E = np.where(valid, order, -1)
    active0 = ((nrn.status[born] == 1) & ~onb).astype(np.float64)
    new_e = resolve(prob.Xr, prob.y, active0, E, nrn.Z[born, 0],
                    np.broadcast_to(r0, (born.size, r0.size)))
    vr, vc = np.nonzero(valid)
    nrn.status[born[vr], E[vr, vc]] = new_e[vr, vc]
    held = prob.held.rows(nrn.status[born])
    if held.rows.size:  # held from the start: exactly on their boundaries
        k = born[held.rows]
        nrn.Z[born, 1:] = held.project(nrn.Z[born, 1:])
        nrn.Z[k] = correct_invariant(nrn.Z[k], nrn.c[k])
