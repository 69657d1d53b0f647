r"""The exact gradient-flow engine.

Gradient flow :math:`\dot\theta = -\nabla L(\theta)` of
:math:`f(x) = \sum_k a_k\sigma(b_k^\top x)` is integrated *exactly* in the sense of
ordinary differential equations with discontinuous right-hand side:

* **Reduction.** :math:`\nabla_{b_k} L \in \operatorname{span}\{x_i\}`, so only
  :math:`z_k = (a_k, Q^\top b_k) \in \mathbb R^{1+D}` moves (:math:`D` = rank of the
  data); the component of :math:`b_k` orthogonal to the data is frozen.
* **Shared propagators.** Given the residual weights :math:`r_i(t)` (functions of the
  :math:`n` outputs :math:`f(x_i)`), every neuron with activation state :math:`s` obeys the
  same linear ODE :math:`\dot z = G_s(r(t)) z` (see :mod:`reluflow.engine.groups`), so
  :math:`z_k(t) = \Phi_s(t, t_0) z_k(t_0)`.  The integrated system is the handful of
  :math:`(1+D)\times(1+D)` propagators, closed through
  :math:`f(x_i) = \sum_s [\Phi_s S_s \Phi_s^\top]_{0,1:}\tilde x_i` with the second moments
  :math:`S_s = \sum_{k\in s} z_k z_k^\top`.  Its cost per step does not depend on the
  width :math:`m`; applying the propagators and watching for events is :math:`O(m)`
  vectorised work.
* **Events.** Every sign change of :math:`b_k^\top x_i` is located (vectorised root
  finding on the step's dense output) and the neuron switches to its new state at that
  instant; a batch of events inside one step is accepted only while the error of
  deferring their effect on :math:`f` stays below the tolerance, else the step is cut.
* **Filippov sliding.** A neuron reaching a boundary where both one-sided fields push
  into it is held there with the tangent convex combination of the fields; the whole
  held group is released when a Filippov coefficient leaves :math:`(0, 1)`.
* **Only live states are integrated.** Propagators of the states that hold neurons at a
  step's start form the coupled system; a state a neuron enters during the step gets its
  propagator from a separate linear solve that starts at the entry, so an empty state
  whose field is large (a residual that never decays) never limits the step size.
* **Horizon.** The integration variable is :math:`\tau = \log(1 + t)`, in which the
  Phase IV dynamics is smooth, so :math:`t = 10^{30}` is :math:`\tau\approx 69`.
* **Invariant.** Each step's propagators are projected onto the Lorentz group
  :math:`O(1, D)` they belong to, so :math:`a_k^2 - \lVert b_k\rVert^2` is conserved to
  rounding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import DOP853, solve_ivp
from scipy.optimize import brentq

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.groups import (
    GroupTable,
    State,
    build_table,
    held_sign,
    is_dead,
    lorentz_project,
    sliding_lambda,
)
from reluflow.engine.network import Params, check_run_inputs, residual_weights
from reluflow.engine.trajectory import EVENT_DTYPE, Recorder, Trajectory, default_times

__all__ = ["gradient_flow"]

Array = NDArray[np.float64]

_MAX_PASSES = 8  # events one neuron may have inside one step before the step is cut


@dataclass
class _Step:
    """One integrated step of the propagator system, with its dense output.

    The coupled system holds the propagators of the *live* groups (those with neurons at
    the step start).  A state that a neuron enters during the step gets its propagator
    from a separate linear solve that starts at the entry time (``extras``): an empty
    group never constrains the step size, even where its field is large.
    """

    s0: float
    s1: float
    table: GroupTable
    gidx: dict[State, int]
    S: Array
    sol: Any  # scipy DenseOutput of the live groups' propagators
    h_next: float
    extras: dict[int, tuple[float, Any]] = field(default_factory=dict)

    @property
    def g_live(self) -> int:
        return int(self.S.shape[0])

    def _extra(self, q: int, s: Array) -> Array:
        s_start, sol = self.extras[q]
        D1 = self.S.shape[-1]
        y = np.asarray(sol(np.clip(s, s_start, self.s1)))
        return y.T.reshape(-1, D1, D1)

    def phi(self, s: Array | float) -> Array:
        """Propagators at times ``s`` (scalar -> (g, D1, D1); array -> (N, g, D1, D1))."""
        g = self.g_live
        D1 = self.S.shape[-1]
        sv = np.atleast_1d(np.asarray(s, dtype=np.float64))
        y = np.asarray(self.sol(sv)).T.reshape(-1, g, D1, D1)
        if self.extras:
            parts = [y] + [self._extra(q, sv)[:, None] for q in sorted(self.extras)]
            y = np.concatenate(parts, axis=1)
        return y[0] if np.ndim(s) == 0 else y

    def phi_of(self, s: Array, grp: NDArray[np.int64]) -> Array:
        """Propagator of group ``grp[u]`` at time ``s[u]`` for each u: (N, D1, D1).

        Evaluates the DOP853 dense-output polynomial only on the rows of the groups
        asked for (same formula as :class:`scipy.integrate.DenseOutput` there).
        """
        D1 = self.S.shape[-1]
        k = D1 * D1
        sol = self.sol
        out = np.empty((s.size, k))
        x = ((s - sol.t_old) / sol.h)[:, None]
        for q in np.unique(grp):
            sel = grp == q
            if q >= self.g_live:
                out[sel] = self._extra(int(q), s[sel]).reshape(-1, k)
                continue
            cols = slice(q * k, (q + 1) * k)
            xq = x[sel]
            y = np.zeros((xq.shape[0], k))
            for i, f in enumerate(reversed(sol.F)):
                y += f[cols]
                y *= xq if i % 2 == 0 else 1 - xq
            out[sel] = y + sol.y_old[cols]
        return out.reshape(s.size, D1, D1)


@dataclass
class _Engine:
    data: Dataset
    loss: str
    rtol: float
    Xr: Array
    y: Array
    Z: Array  # (m, D1)
    status: NDArray[np.int8]  # (m, n)
    alive: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    events: list[tuple[Array, NDArray[np.int64], int, str]] = field(default_factory=list)
    n_steps: int = 0
    n_rejected: int = 0
    n_event_neurons: int = 0

    # ------------------------------------------------------------ fields
    def outputs(self, Z: Array, status: NDArray[np.int8]) -> Array:
        """f(x_i) = sum_k a_k (beta_k . x_i) over neurons active on i."""
        pre = Z[:, 1:] @ self.Xr.T
        return (Z[:, :1] * np.where(status == 1, pre, 0.0)).sum(axis=0)

    def rhs_factory(self, table: GroupTable, S: Array) -> Any:
        Xr = self.Xr
        act = table.active
        P = table.proj
        data, loss = self.data, self.loss
        D1 = S.shape[-1]
        g = len(table.states)

        def fun(s: float, yv: Array) -> Array:
            Phi = yv.reshape(g, D1, D1)
            w = np.einsum("gi,gij,gkj->gk", Phi[:, 0, :], S, Phi)[:, 1:]
            f = np.einsum("gd,nd,gn->n", w, Xr, act)
            r = residual_weights(f, data, loss)
            V = np.einsum("gde,ne,gn,n->gd", P, Xr, act, r)
            dPhi = np.empty_like(Phi)
            dPhi[:, 0, :] = np.einsum("gd,gdj->gj", V, Phi[:, 1:, :])
            dPhi[:, 1:, :] = V[:, :, None] * Phi[:, None, 0, :]
            return (math.expm1(s) + 1.0) * dPhi.ravel()

        return fun

    def f_dense(self, step: _Step, s: Array) -> Array:
        """Outputs f at times ``s`` (N,) from the dense propagators: (N, n)."""
        g = step.g_live
        Phi = step.phi(s)[:, :g]  # (N, g, D1, D1)
        w = np.einsum("Ngi,gij,Ngkj->Ngk", Phi[:, :, 0, :], step.S, Phi)[:, :, 1:]
        return np.einsum("Ngd,nd,gn->Nn", w, self.Xr, step.table.active[:g])

    def add_extra(self, step: _Step, state: State, s_start: float) -> float | None:
        """Give ``step`` the propagator of ``state`` from ``s_start`` to its end.

        Solves :math:`d\\Phi/d\\tau = (1+t) G_s(r(\\tau)) \\Phi`, :math:`\\Phi(s_{start}) = I`,
        with the residuals of the step's dense output.  Returns ``None``, or a time at
        which to cut the step when the state's field would grow the propagator by more
        than :math:`e^{40}` before the step ends (it then joins the coupled system).
        """
        table = build_table([state], self.Xr)
        D1 = self.Z.shape[1]
        s1 = step.s1

        def rate(sv: float) -> float:
            r = residual_weights(self.f_dense(step, np.array([sv]))[0], self.data, self.loss)
            vq = table.proj[0] @ ((table.active[0] * r) @ self.Xr)
            return float((math.expm1(sv) + 1.0) * np.linalg.norm(vq))

        lam = max(rate(s_start), rate(s1), 1e-300)
        if lam * (s1 - s_start) > 40.0:
            return s_start + 40.0 / lam
        act, P = table.active[0], table.proj[0]

        def fun(sv: float, yv: Array) -> Array:
            Phi = yv.reshape(D1, D1)
            r = residual_weights(self.f_dense(step, np.array([sv]))[0], self.data, self.loss)
            vq = P @ ((act * r) @ self.Xr)
            G = np.zeros((D1, D1))
            G[0, 1:] = vq
            G[1:, 0] = vq
            return (math.expm1(sv) + 1.0) * (G @ Phi).ravel()

        if s1 - s_start <= 0:
            sol = _ConstantIdentity(D1)
        else:
            res = solve_ivp(fun, (s_start, s1), np.eye(D1).ravel(), method="DOP853",
                            rtol=self.rtol, atol=self.rtol, dense_output=True)
            if not res.success:
                raise RuntimeError(f"gradient_flow: propagator of {state} failed: {res.message}")
            sol = res.sol
        q = len(step.table.states)
        step.table = build_table([*step.table.states, state], self.Xr)
        step.gidx[state] = q
        step.extras[q] = (s_start, sol)
        return None

    # ------------------------------------------------------------ states
    def classify(self, state: State, i: int, a: Array, r: Array,
                 old_side: Array) -> NDArray[np.int8]:
        """New value of coordinate ``i`` for neurons of ``state`` meeting boundary ``i``.

        ``a`` (N,) output weights, ``r`` (N, n) residuals at the meeting times,
        ``old_side`` (N,) the side they come from (+1, -1), or 0 for neurons born on it.
        Returns 0 (held: attracting sliding), else the side the flow carries them to.
        """
        cand = (*state[:i], 0, *state[i + 1:])
        out = np.zeros(a.shape[0], dtype=np.int8)
        hs = held_sign(cand, self.y)
        can_hold = hs in (-1, 1) and any(c == 1 for c in cand)
        if can_hold:
            tab = build_table([cand], self.Xr)
            lam = sliding_lambda(tab, 0, r)
            ok = np.all((lam > 0) & (lam < 1), axis=1) & (np.sign(a) == hs)
        else:
            ok = np.zeros(a.shape[0], dtype=bool)
        # not held: the flow continues across (events), or for neurons born on the
        # boundary goes where the inactive-side field points (convention sigma'(0) = 0)
        rest = (*state[:i], -1, *state[i + 1:])
        act = np.asarray(rest) == 1
        xi = self.Xr[i]
        normal_in = a * ((r * act) @ (self.Xr @ xi))  # a x_i . v_rest
        side = np.where(old_side != 0, -old_side, np.where(normal_in > 0, 1, -1))
        out[:] = np.where(ok, 0, side)
        return out

    # ------------------------------------------------------------ stepping
    def integrate(self, s0: float, s_end: float, h: float | None, groups: list[State],
                  S: Array) -> _Step:
        table = build_table(groups, self.Xr)
        g = len(groups)
        D1 = self.Z.shape[1]
        y0 = np.tile(np.eye(D1), (g, 1, 1)).ravel()
        first = min(h, s_end - s0) if h else None
        solver = DOP853(self.rhs_factory(table, S), s0, y0, s_end, rtol=self.rtol,
                        atol=self.rtol, first_step=first)
        while True:
            msg = solver.step()
            if solver.status == "failed":
                raise RuntimeError(f"gradient_flow: integrator failed at s={s0}: {msg}")
            if solver.t > s0:
                break
        return _Step(s0, float(solver.t), table, {st: k for k, st in enumerate(groups)},
                     S, solver.dense_output(), float(solver.h_abs))


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
        Final time, > 0 (``1e30`` is routine).
    times : array_like, optional
        Increasing times in ``[0, t_max]`` to record; default
        :func:`~reluflow.engine.trajectory.default_times`.
    loss : {"exp", "logistic"}
        :math:`\ell(z) = e^{-z}` or :math:`\log(1 + e^{-z})`.
    rtol : float
        Local error tolerance of the propagators, in ``(0, 1e-3]`` (>= 1e-14).
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
        ``slide-end``.

    Examples
    --------
    >>> from reluflow import TwoPointData, init_network
    >>> data = TwoPointData(delta=0.3, p=0.7)
    >>> traj = gradient_flow(init_network(20, 2, 1e-4, seed=0), data, 100.0)
    >>> bool(np.all(np.diff(traj.loss) <= 1e-12))
    True
    """
    tm, tgrid, loss = check_run_inputs(params, data, t_max, times, loss)
    rt = v.real_scalar("rtol", rtol)
    if not 1e-14 <= rt <= 1e-3:
        raise ValueError(f"rtol must lie in [1e-14, 1e-3], got {rtol!r}")
    rec = v.neuron_subset(neurons, params.m)
    tgrid = default_times(tm) if tgrid is None else tgrid
    start = time.perf_counter()

    # ---- reduction to the data span
    X = data.X
    _U, sv, Vt = np.linalg.svd(X, full_matrices=False)
    D = int(np.sum(sv > sv[0] * 1e-12))
    Q = Vt[:D].T  # (d, D) orthonormal basis of the data span
    Xr = X @ Q
    beta = params.B @ Q
    B_perp = params.B - beta @ Q.T
    Z = np.column_stack([params.a, beta])
    eng = _Engine(data=data, loss=loss, rtol=rt, Xr=Xr, y=data.y.astype(np.float64), Z=Z,
                  status=np.zeros((params.m, data.n), dtype=np.int8),
                  alive=np.arange(params.m, dtype=np.int64))

    # ---- initial states (neurons born on a boundary are classified by the flow there)
    pre = params.B @ X.T  # in the original coordinates, where exact zeros are exact
    on_boundary = np.abs(pre) <= 4 * np.finfo(float).eps * np.outer(
        np.linalg.norm(params.B, axis=1), np.linalg.norm(X, axis=1))
    eng.status[:] = np.where(pre > 0, 1, -1)
    born = np.argwhere(on_boundary)
    if born.size:
        f0 = eng.outputs(Z, eng.status)
        r0 = residual_weights(f0, data, loss)
        for k, i in born:
            st = tuple(int(x) for x in eng.status[k])
            new = eng.classify(st, int(i), Z[k : k + 1, 0], r0[None, :], np.zeros(1))
            eng.status[k, i] = new[0]
        for k in np.unique(born[:, 0]):
            H = np.flatnonzero(eng.status[k] == 0)
            if H.size:  # held from the start: put it exactly on its boundaries
                XH = Xr[H]
                b = Z[k, 1:]
                Z[k, 1:] = b - XH.T @ np.linalg.lstsq(XH @ XH.T, XH @ b, rcond=None)[0]

    s_rec = np.log1p(tgrid)
    T = tgrid.size
    rec_buf = Recorder(tgrid, rec, params.a, params.B, data, loss)

    def record(j: int) -> None:
        Zr = eng.Z[rec]
        rec_buf.record(j, Zr[:, 0], B_perp[rec] + Zr[:, 1:] @ Q.T, eng.status[rec],
                       eng.outputs(eng.Z, eng.status))

    s = 0.0
    h: float | None = None
    j = 0
    while j < T and s_rec[j] <= s:
        record(j)
        j += 1
    while j < T:
        s_target = s_rec[j]
        s, h = _advance(eng, s, s_target, h)
        if s >= s_target:
            s = s_target
            record(j)
            j += 1

    events = np.zeros(0, dtype=EVENT_DTYPE)
    if record_events and eng.events:
        events = np.zeros(sum(ks.size for _, ks, _, _ in eng.events), dtype=EVENT_DTYPE)
        pos = 0
        for te, ks, i, kind in eng.events:
            sl = slice(pos, pos + ks.size)
            events["t"][sl], events["neuron"][sl] = te, ks
            events["index"][sl], events["kind"][sl] = i, kind
            pos += ks.size
        events = events[np.lexsort((events["neuron"], events["t"]))]
    return rec_buf.trajectory(
        events, {"method": "gradient_flow", "rtol": rt, "steps": eng.n_steps,
                 "rejected_steps": eng.n_rejected, "event_neurons": eng.n_event_neurons,
                 "data_rank": D, "wall_time": time.perf_counter() - start})


class _ConstantIdentity:
    """Dense output of a propagator over an empty interval: the identity."""

    def __init__(self, D1: int) -> None:
        self.eye = np.eye(D1).ravel()

    def __call__(self, s: Array) -> Array:
        return np.repeat(self.eye[:, None], np.size(s), axis=1)


def _states_and_groups(status: NDArray[np.int8]) -> tuple[list[State], NDArray[np.int64]]:
    """Live (non-dead) states present and each neuron's index into them (-1: dead)."""
    n = status.shape[1]
    codes = _encode(status)
    if n <= 12:
        counts = np.bincount(codes, minlength=3**n)
        present = np.flatnonzero(counts)
    else:
        present = np.unique(codes)
    states = [_decode(int(c), n) for c in present]
    live = [st for st in states if not is_dead(st)]
    lut = {c: q for q, c in enumerate(int(_encode(np.asarray([st], dtype=np.int8))[0])
                                      for st in live)}
    gid = np.full(status.shape[0], -1, dtype=np.int64)
    if n <= 12:
        table = np.full(3**n, -1, dtype=np.int64)
        for c, q in lut.items():
            table[c] = q
        gid = table[codes]
    else:
        for c, q in lut.items():
            gid[codes == c] = q
    return live, gid


def _encode(status: NDArray[np.int8]) -> NDArray[np.int64]:
    """Integer code of each neuron's state (base 3, digit = state + 1)."""
    n = status.shape[1]
    weights = 3 ** np.arange(n, dtype=np.int64)
    return (status.astype(np.int64) + 1) @ weights


def _decode(code: int, n: int) -> State:
    out = []
    for _ in range(n):
        out.append(code % 3 - 1)
        code //= 3
    return tuple(out)


def _groups_now(eng: _Engine) -> tuple[list[State], list[NDArray[np.int64]], Array]:
    """Live states, the neurons of each and their second moments.

    Dead neurons (active on no point, held on none) never move again: they are dropped
    from :attr:`_Engine.alive` for good, so later steps cost nothing for them.
    """
    live_states, gid = _states_and_groups(eng.status[eng.alive])
    eng.alive = eng.alive[gid >= 0]
    gid = gid[gid >= 0]
    members = [eng.alive[gid == q] for q in range(len(live_states))]
    D1 = eng.Z.shape[1]
    S = np.zeros((len(live_states), D1, D1))
    for q, idx in enumerate(members):
        S[q] = eng.Z[idx].T @ eng.Z[idx]
    return live_states, members, S


def _advance(eng: _Engine, s0: float, s_target: float, h: float | None) -> tuple[float, float]:
    """Take one accepted step from ``s0`` toward ``s_target``; returns (s_new, next h)."""
    live_states, members, S = _groups_now(eng)
    # held groups whose sliding condition fails here are released before stepping
    tab_live = build_table(live_states, eng.Xr)
    f0 = np.einsum("gd,nd,gn->n", S[: len(live_states), 0, 1:], eng.Xr, tab_live.active)
    r0 = residual_weights(f0, eng.data, eng.loss)
    if _release_groups(eng, s0, r0, live_states, members, eps=0.0):
        live_states, members, S = _groups_now(eng)
    if not live_states:  # every neuron is dead: nothing moves any more
        return s_target, h or 1.0
    groups = list(live_states)

    s_end = s_target
    h_try = h
    event_cut = False
    release_cut = False  # the step was cut where a held group's sliding ends
    while True:
        step = eng.integrate(s0, s_end, h_try, groups, S)
        cut = _group_release_time(eng, step, live_states)
        if cut is not None and cut <= s0:
            # the sliding condition already fails at the step start (to rounding):
            # release those groups here and take the step again without them
            r_start = residual_weights(eng.f_dense(step, np.array([s0]))[0], eng.data,
                                       eng.loss)
            if _release_groups(eng, s0, r_start, live_states, members,
                               eps=max(1e-9, _release_margin(eng, step, r_start))):
                return _advance(eng, s0, s_target, h)
            cut = None
        if cut is not None and cut < step.s1 - 1e-15 * max(1.0, step.s1):
            eng.n_rejected += 1
            s_end = cut
            h_try = cut - s0
            release_cut = True
            continue
        result = _apply_step(eng, step, live_states, members)
        while isinstance(result, tuple):  # a state reached but not integrated: solve it
            new_state, s_entry = result
            cut_at = eng.add_extra(step, new_state, s_entry)
            if cut_at is not None:
                result = cut_at
                break
            result = _apply_step(eng, step, live_states, members)
        if result is None:
            break
        eng.n_rejected += 1  # batch error too large (or a fast new state): cut the step
        s_end = max(float(result), s0 + 1e-12 * max(1.0, s0))
        h_try = s_end - s0
        event_cut = True
    eng.n_steps += 1
    if cut is not None or (release_cut and step.s1 >= s_end):
        # a held group reaches the end of its sliding exactly here
        r1 = residual_weights(eng.f_dense(step, np.array([step.s1]))[0], eng.data, eng.loss)
        live_states, members, _ = _groups_now(eng)
        _release_groups(eng, step.s1, r1, live_states, members,
                        eps=max(1e-9, _release_margin(eng, step, r1)))
    if event_cut:  # events limit the step here: propose about the same length next
        return step.s1, min(step.h_next, 1.5 * (step.s1 - s0))
    clamped = step.s1 >= s_end and h_try is not None and step.h_next < (h or 0.0)
    return step.s1, (h if clamped and h else step.h_next)


def _group_release_time(eng: _Engine, step: _Step, live_states: list[State]) -> float | None:
    """Earliest time in the step where a held group's Filippov coefficient leaves (0, 1)."""
    held_groups = [q for q, st in enumerate(live_states) if 0 in st]
    if not held_groups:
        return None

    def margin(sv: Array) -> Array:
        r = residual_weights(eng.f_dense(step, sv), eng.data, eng.loss)
        cols = []
        for q in held_groups:
            lam = sliding_lambda(step.table, q, r)
            cols.append(np.minimum(lam, 1.0 - lam).min(axis=1))
        return np.stack(cols, axis=1)  # (N, groups)

    nodes = step.s0 + (step.s1 - step.s0) * np.linspace(0.0, 1.0, 9)[1:]
    mvals = margin(nodes)
    bad = np.argwhere(mvals <= 0)
    if bad.size == 0:
        return None
    first = int(bad[:, 0].min())
    lo = step.s0 if first == 0 else float(nodes[first - 1])
    hi = float(nodes[first])
    best = hi
    for c in np.unique(bad[bad[:, 0] == first, 1]):
        def fc(x: float, c: int = int(c)) -> float:
            return float(margin(np.array([x]))[0, c])

        best = min(best, brentq(fc, lo, hi, xtol=1e-15, rtol=1e-15) if fc(lo) > 0 else lo)
    return best


def _release_groups(eng: _Engine, s_rel: float, r: Array, live: list[State],
                    members_of: list[NDArray[np.int64]], eps: float = 1e-9) -> bool:
    """Release held neurons whose Filippov coefficient is within ``eps`` of leaving (0, 1).

    Returns whether any neuron was released.
    """
    t_rel = math.expm1(s_rel)
    released = False
    for q, st in enumerate(live):
        if 0 not in st:
            continue
        tab = build_table([st], eng.Xr)
        lam = sliding_lambda(tab, 0, r[None, :])[0]
        if np.all((lam > eps) & (lam < 1.0 - eps)):
            continue
        members = members_of[q]
        t_arr = np.full(members.size, t_rel)
        for idx, i in enumerate(tab.held[0]):
            if lam[idx] <= eps:
                eng.status[members, i] = -1
                eng.events.append((t_arr, members, int(i), "slide-end"))
                released = True
            elif lam[idx] >= 1.0 - eps:
                eng.status[members, i] = 1
                eng.events.append((t_arr, members, int(i), "slide-end"))
                eng.events.append((t_arr, members, int(i), "activate"))
                released = True
    return released


def _release_margin(eng: _Engine, step: _Step, r: Array) -> float:
    """Smallest distance of a held group's Filippov coefficients to the ends of (0, 1)."""
    out = np.inf
    for q, st in enumerate(step.table.states[: step.g_live]):
        if 0 in st and step.S[q].any():
            lam = sliding_lambda(step.table, q, r[None, :])[0]
            out = min(out, float(np.minimum(lam, 1.0 - lam).min()))
    return out if np.isfinite(out) else 0.0


def _check(eng: _Engine, z1: Array, zm: Array, st: NDArray[np.int8]) -> tuple[Array, Array]:
    """Flags of boundaries crossed (N, n) and of held neurons whose a changed sign (N,)."""
    Xr = eng.Xr
    tol = 1e-13 * (np.linalg.norm(z1[:, 1:], axis=1) + np.linalg.norm(zm[:, 1:], axis=1))
    h1 = (z1[:, 1:] @ Xr.T) * st
    hm = (zm[:, 1:] @ Xr.T) * st
    wrong = (st != 0) & ((h1 < -tol[:, None]) | (hm < -tol[:, None]))
    hs = _held_signs(eng, st)
    aflip = (hs != 0) & ((z1[:, 0] * hs <= 0) | (zm[:, 0] * hs <= 0))
    return wrong, aflip


def _held_signs(eng: _Engine, st: NDArray[np.int8]) -> NDArray[np.int64]:
    """Required output sign of each row's held state (0 when nothing is held)."""
    held = st == 0
    if not held.any():
        return np.zeros(st.shape[0], dtype=np.int64)
    # all held points of a valid state share a label y; sign = -y
    lab = np.where(held, -eng.y[None, :], 0.0)
    return np.sign(lab.sum(axis=1)).astype(np.int64)


def _apply_step(eng: _Engine, step: _Step, live_states: list[State],
                members: list[NDArray[np.int64]]) -> float | tuple[State, float] | None:
    """Move every live neuron to the step end, handling its events.

    Returns ``None`` when the step is accepted (committed to ``eng``), the time at which
    it must be cut (batch error too large), or a state some neuron reaches that was not
    integrated in this step (the step is then redone with it).
    """
    Xr = eng.Xr
    s0, s1 = step.s0, step.s1
    smid = 0.5 * (s0 + s1)
    phi1 = lorentz_project(step.phi(s1))
    phim = step.phi(smid)
    newZ = eng.Z.copy()
    newstatus = eng.status.copy()

    # pass 0: whole groups at once
    ev_idx, ev_g, ev_wrong, ev_aflip = [], [], [], []
    for q, idx in enumerate(members):
        st_q = np.asarray(live_states[q], dtype=np.int8)
        Zq = eng.Z[idx]
        z1 = Zq @ phi1[q].T
        zm = Zq @ phim[q].T
        wrong, aflip = _check(eng, z1, zm, np.broadcast_to(st_q, (idx.size, st_q.size)))
        ev = np.any(wrong, axis=1) | aflip
        if step.table.held[q].size:
            z1[:, 1:] = z1[:, 1:] @ step.table.proj[q].T  # stay exactly on the boundary
        newZ[idx[~ev]] = z1[~ev]
        if ev.any():
            ev_idx.append(idx[ev])
            ev_g.append(np.full(int(ev.sum()), q, dtype=np.int64))
            ev_wrong.append(wrong[ev])
            ev_aflip.append(aflip[ev])
    if not ev_idx:
        eng.Z, eng.status = newZ, newstatus
        return None

    # event neurons: each carries (start time, state there, group, inverse propagator)
    todo = np.concatenate(ev_idx)
    cur_g = np.concatenate(ev_g)
    wrong = np.concatenate(ev_wrong)
    aflip = np.concatenate(ev_aflip)
    N = todo.size
    cur_s = np.full(N, s0)
    cur_z = eng.Z[todo].copy()
    cur_inv = np.broadcast_to(np.eye(Xr.shape[1] + 1), (N, Xr.shape[1] + 1, Xr.shape[1] + 1))
    cur_st = newstatus[todo].copy()
    pending: list[tuple[Array, NDArray[np.int64], int, str]] = []
    err_tau: list[Array] = []
    err_mag: list[Array] = []

    for _ in range(_MAX_PASSES):
        tau, which = _locate(eng, step, cur_s, cur_z, cur_g, cur_inv, cur_st, wrong, aflip)
        eng.n_event_neurons += tau.size
        rows = np.arange(tau.size)
        Pt = lorentz_project(step.phi(tau)[rows, cur_g])
        zt = np.einsum("nij,njk,nk->ni", Pt, cur_inv, cur_z)
        r_t = residual_weights(eng.f_dense(step, tau), eng.data, eng.loss)
        # size of the deferred change of f: |a * d/ds (beta . x_i)| at the event
        hdot = np.zeros(tau.size)
        for gq in np.unique(cur_g):
            sel = np.flatnonzero((cur_g == gq) & (which >= 0))
            if sel.size:
                vq = np.einsum("de,ne,n,Nn->Nd", step.table.proj[gq], Xr,
                               step.table.active[gq], r_t[sel])
                hdot[sel] = (np.expm1(tau[sel]) + 1.0) * zt[sel, 0] * np.einsum(
                    "nd,nd->n", vq, Xr[which[sel]])
        err_tau.append(tau)
        err_mag.append(np.abs(zt[:, 0] * hdot))
        # new states and event kinds
        st_new = cur_st.copy()
        flip = np.flatnonzero(which < 0)  # held neurons whose a changed sign
        for hh in range(Xr.shape[0]):
            sel = flip[cur_st[flip, hh] == 0]
            st_new[sel, hh] = -1
            pending.append((tau[sel], todo[sel], hh, "slide-end"))
        codes_old = _encode(cur_st)
        for i in range(Xr.shape[0]):
            on_i = which == i
            for code in np.unique(codes_old[on_i]):
                sel = np.flatnonzero(on_i & (codes_old == code))
                st = _decode(int(code), Xr.shape[0])
                newv = eng.classify(st, i, zt[sel, 0], r_t[sel], np.full(sel.size, st[i]))
                st_new[sel, i] = newv
                old = st[i]
                if old == 1:
                    pending.append((tau[sel[newv != 1]], todo[sel[newv != 1]], i, "deactivate"))
                if old == -1:
                    pending.append((tau[sel[newv == 1]], todo[sel[newv == 1]], i, "activate"))
                if old == 0:
                    pending.append((tau[sel], todo[sel], i, "slide-end"))
                    pending.append((tau[sel[newv == 1]], todo[sel[newv == 1]], i, "activate"))
                pending.append((tau[sel[newv == 0]], todo[sel[newv == 0]], i, "slide-start"))
        # group of each neuron's new state (-1: dead); a state not integrated cuts the step
        codes_new = _encode(st_new)
        lut = {int(_encode(np.asarray([k], dtype=np.int8))[0]): q for k, q in step.gidx.items()}
        new_g = np.full(tau.size, -2, dtype=np.int64)
        for code in np.unique(codes_new):
            sel = codes_new == code
            if is_dead(_decode(int(code), Xr.shape[0])):
                new_g[sel] = -1
            elif int(code) in lut:
                new_g[sel] = lut[int(code)]
            else:  # not integrated in this step: solve its propagator from the entry
                return _decode(int(code), Xr.shape[0]), float(tau[sel].min())
        # held neurons sit exactly on their boundaries from now on
        held_rows = np.flatnonzero((new_g >= 0) & np.any(st_new == 0, axis=1))
        if held_rows.size:
            zt[held_rows, 1:] = np.einsum("nde,ne->nd", step.table.proj[new_g[held_rows]],
                                          zt[held_rows, 1:])
        # neurons that died are final
        dead = new_g < 0
        newZ[todo[dead]] = zt[dead]
        newstatus[todo[dead]] = st_new[dead]
        keep = ~dead
        todo, cur_s, cur_z, cur_g, cur_st = (todo[keep], tau[keep], zt[keep], new_g[keep],
                                             st_new[keep])
        if todo.size == 0:
            break
        rows = np.arange(todo.size)
        cur_inv = np.asarray(np.linalg.inv(lorentz_project(step.phi(cur_s)[rows, cur_g])),
                             dtype=np.float64)
        z1 = np.einsum("nij,njk,nk->ni", phi1[cur_g], cur_inv, cur_z)
        zm_s = 0.5 * (cur_s + s1)
        zm = np.einsum("nij,njk,nk->ni", step.phi(zm_s)[rows, cur_g], cur_inv, cur_z)
        wrong, aflip = _check(eng, z1, zm, cur_st)
        ev = np.any(wrong, axis=1) | aflip
        fin = ~ev
        for w in np.flatnonzero(fin & np.any(cur_st == 0, axis=1)):
            z1[w, 1:] = z1[w, 1:] @ step.table.proj[cur_g[w]].T
        newZ[todo[fin]] = z1[fin]
        newstatus[todo[fin]] = cur_st[fin]
        todo, cur_s, cur_z, cur_g, cur_st, cur_inv = (todo[ev], cur_s[ev], cur_z[ev],
                                                      cur_g[ev], cur_st[ev], cur_inv[ev])
        wrong, aflip = wrong[ev], aflip[ev]
        if todo.size == 0:
            break
    else:
        return s0 + 0.5 * (s1 - s0)  # a neuron keeps switching inside this step: cut it

    # batch error of deferring each event's effect on f to the step end
    taus = np.concatenate(err_tau)
    mags = np.concatenate(err_mag)
    r1 = float(np.abs(residual_weights(eng.f_dense(step, np.array([s1]))[0], eng.data,
                                       eng.loss)).max())
    scale = (math.expm1(s1) + 1.0) * r1 * float(np.abs(Xr).max()) ** 2

    def err(sx: float) -> float:
        mask = taus < sx
        return float(scale * np.sum(mags[mask] * (sx - taus[mask]) ** 2) / 2)

    tol = 0.5 * eng.rtol
    if err(s1) > tol:
        lo, hi = float(taus.min()), s1
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if err(mid) > tol else (mid, hi)
        return lo if lo > s0 else s0 + 0.5 * (s1 - s0)

    eng.Z, eng.status = newZ, newstatus
    eng.events.extend((np.expm1(tau_ev), ks, i, kind) for tau_ev, ks, i, kind in pending
                      if ks.size)
    return None


_CHEB = 0.5 - 0.5 * np.cos(np.pi * (np.arange(8) + 0.5) / 8)  # nodes on [0, 1]
_VINV = np.linalg.inv(np.vander(_CHEB, 8, increasing=True))


def _locate(eng: _Engine, step: _Step, cur_s: Array, cur_z: Array, cur_g: NDArray[np.int64],
            cur_inv: Array, cur_st: NDArray[np.int8], wrong: NDArray[Any],
            aflip: NDArray[Any]) -> tuple[Array, NDArray[np.int64]]:
    """Earliest event time of each flagged neuron and its boundary (-1: sign change of a).

    The DOP853 dense output is a polynomial of degree 7 in :math:`x = (s - s_0)/h`, so
    each event function (``s_i (beta . x_i)`` for a non-held point, ``s a`` for a held
    neuron; positive before the event) is too: its coefficients come from 8 Chebyshev
    samples.  The first sign change is bracketed on a 64-point grid from the neuron's
    current time and refined by safeguarded Newton iterations on the polynomial.
    """
    Xr = eng.Xr
    N = cur_s.size
    n = Xr.shape[0]
    h = step.s1 - step.s0
    hs = _held_signs(eng, cur_st).astype(np.float64)
    W = np.zeros((N, n + 1, Xr.shape[1] + 1))
    W[:, :n, 1:] = cur_st[:, :, None] * Xr[None, :, :]
    W[:, n, 0] = hs
    cand = np.column_stack([wrong, aflip])
    vals = np.empty((8, N, n + 1))
    for j, xj in enumerate(_CHEB):
        sj = np.full(N, step.s0 + xj * h)
        z = np.einsum("nij,njk,nk->ni", step.phi_of(sj, cur_g), cur_inv, cur_z)
        vals[j] = np.einsum("nci,ni->nc", W, z)
    coef = np.einsum("kj,jnc->nck", _VINV, vals)  # (N, n+1, 8), increasing powers
    u, c = np.nonzero(cand)
    C = coef[u, c]  # (P, 8)
    x0 = np.clip((cur_s[u] - step.s0) / h, 0.0, 1.0)
    tol = 1e-13 * np.linalg.norm(cur_z[u, 1:], axis=1) + 1e-300

    def poly(xv: Array) -> Array:
        out = np.zeros_like(xv)
        for k in range(7, -1, -1):
            out = out * xv + C[:, k : k + 1] if xv.ndim == 2 else out * xv + C[:, k]
        return out

    G = 64
    grid = x0[:, None] + (1.0 - x0)[:, None] * (np.arange(G + 1) / G)[None, :]
    pg = poly(grid)
    neg = pg < -tol[:, None]
    has = neg.any(axis=1)
    first = np.where(has, np.argmax(neg, axis=1), G)
    xb = grid[np.arange(u.size), first]
    xa = grid[np.arange(u.size), np.maximum(first - 1, 0)]
    fa = poly(xa)
    fb = poly(xb)
    dC = C[:, 1:] * np.arange(1, 8)[None, :]
    x = np.where(fa - fb > 0, xa + fa * (xb - xa) / np.where(fa - fb > 0, fa - fb, 1.0), xb)
    for _ in range(50):
        fx = poly(x)
        dfx = np.zeros_like(x)
        for k in range(6, -1, -1):
            dfx = dfx * x + dC[:, k]
        # keep the bracket [xa, xb] with f(xa) >= 0 > f(xb)
        below = fx < 0
        xb = np.where(below, x, xb)
        xa = np.where(below, xa, x)
        xn = x - fx / np.where(dfx != 0, dfx, np.inf)
        bad = ~((xn > xa) & (xn < xb))
        xn = np.where(bad, 0.5 * (xa + xb), xn)
        if np.all(np.abs(xn - x) <= 1e-16 * np.maximum(1.0, np.abs(x))):
            x = xn
            break
        x = xn
    # no sign change on the grid (a tolerance-level flag): event at the end of the step
    x = np.where(has, np.maximum(x, x0), 1.0)
    s_ev = step.s0 + x * h
    order = np.lexsort((s_ev, u))
    firsts = order[np.r_[True, u[order][1:] != u[order][:-1]]]
    tau = np.full(N, step.s1)
    which = np.full(N, -1, dtype=np.int64)
    tau[u[firsts]] = np.minimum(s_ev[firsts], step.s1)
    which[u[firsts]] = c[firsts]
    which = np.where(which == n, -1, which)
    return tau, which
