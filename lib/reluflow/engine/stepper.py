r"""The step core of the exact engine: one step, with every event inside it.

A step (:func:`take_step`) is

1. one DOP853 step of the coupled :class:`~reluflow.engine.coupled.System` from
   :math:`s_0`, giving every neuron's motion as a polynomial on :math:`[s_0, s_1]` as long
   as its state does not change, and the outputs :math:`f(x_i)` as a polynomial;
2. the first event of every neuron (:func:`first_events`);
3. *passes* (:func:`run_passes`): apply the located events, move each neuron on from its
   event in its new state (with the propagator of that state when the step integrated
   one, else by a *catch-up* solve of its linear system driven by the step's output
   polynomial, :func:`catch_up`), locate its next event, until no neuron has one before
   the step end;
4. the check that the events' jumps of :math:`df/d\tau`, which the coupled system only sees
   at the step end, stay within ``batch_share * rtol``
   (:meth:`~reluflow.engine.events.EventBatch.deferral_error` for the first events,
   :class:`~reluflow.engine.events.Deferral` after the passes); else the step is
   *truncated* at the latest time where they do: the events after it are dropped and
   every neuron is taken at that time on the motion the passes computed (no
   re-integration: nothing can be cut below what the integrator took), and
5. the commit (:func:`commit`): every neuron at the step end, held neurons exactly on
   their boundaries, :math:`a^2 - \lVert\beta\rVert^2` restored to its initial value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from reluflow.engine import dense as dp
from reluflow.engine.coupled import (
    DenseStep,
    MaxNormDOP853,
    Problem,
    System,
    dop853_once,
    integrate_step,
    state_keys,
)
from reluflow.engine.deadline import check_deadline
from reluflow.engine.events import (
    RELEASE,
    Deferral,
    EventBatch,
    Located,
    Segments,
    as_error,
    coef_norm,
    in_step,
    locate,
    process,
    release_times,
)
from reluflow.engine.groups import HeldRows, correct_invariant, fields, is_dead

__all__ = [
    "Blowup",
    "Neurons",
    "StepResult",
    "catch_up",
    "commit",
    "deferral",
    "first_events",
    "frozen_fields",
    "motion_segments",
    "run_passes",
    "take_step",
]

Array = NDArray[np.float64]
Index = NDArray[np.int64]
Status = NDArray[np.int8]


@dataclass
class Neurons:
    """The engine's neurons: state vectors, activation states, invariants, the live ones."""

    Z: Array  # (m, D1)
    status: Status  # (m, n)
    c: Array  # (m,) a^2 - |beta|^2 at the start
    alive: Index

    def drop_dead(self) -> None:
        """Neurons active on no point and held on none never move again."""
        self.alive = self.alive[~is_dead(self.status[self.alive])]


@dataclass(frozen=True)
class StepResult:
    """What one step did."""

    s: float  # where the step ended
    h_next: float  # step length to try next
    truncated: bool  # cut before the integrator's end (events or a cycle)
    events: EventBatch
    located: int  # neuron events located (all passes, last attempt)
    hlambda: float  # the integrator's stiffness estimate h |J|
    nfev: int


@dataclass(frozen=True)
class _Piece:
    """Motion of some neurons from one of their events on, in the state it left them in."""

    idx: Index
    start: Array  # tau of the event the piece starts at
    status: Status
    seg: Segments  # rows index into idx


#: A catch-up solve in which a neuron grows by more than this factor ends the step there:
#: its effect on the outputs (which the step only sees at its end) is far beyond any budget.
_GROWTH = 1e30


class Blowup(Exception):
    """A catch-up solve met a neuron growing by more than ``_GROWTH`` at ``tau``."""

    def __init__(self, tau: float) -> None:
        super().__init__(tau)
        self.tau = tau


@dataclass
class _Passes:
    """Outcome of the passes of one step attempt: every neuron's pieces after its events."""

    s_end: float
    pieces: list[_Piece] = field(default_factory=list)
    batch: EventBatch = field(default_factory=EventBatch)
    located: int = 0
    cut_at: float | None = None
    first_idx: Index = field(default_factory=lambda: np.zeros(0, np.int64))
    first_tau: Array = field(default_factory=lambda: np.zeros(0))
    first_w: Array = field(default_factory=lambda: np.zeros(0))
    idx: list[Index] = field(default_factory=list)  # final states at s_end (see finish)
    z: list[Array] = field(default_factory=list)
    status: list[Status] = field(default_factory=list)

    def finish(self, s0: float) -> None:
        """Each neuron with events: its state at ``s_end`` on its last piece before it."""
        if not self.pieces:
            self.idx, self.z, self.status = [], [], []
            return
        idx = np.concatenate([p.idx for p in self.pieces])
        start = np.concatenate([p.start for p in self.pieces])
        pid = np.concatenate([np.full(p.idx.size, k) for k, p in enumerate(self.pieces)])
        row = np.concatenate([np.arange(p.idx.size) for p in self.pieces])
        ok = np.flatnonzero(in_step(start, s0, self.s_end))
        if ok.size == 0:  # cut at or before every event: no neuron moved on
            self.idx, self.z, self.status = [], [], []
            return
        order = ok[np.lexsort((start[ok], idx[ok]))]
        last = order[np.r_[idx[order][1:] != idx[order][:-1], True]]
        self.idx, self.z, self.status = [], [], []
        for k in np.unique(pid[last]):
            rows = row[last[pid[last] == k]]
            p = self.pieces[k]
            sel = np.zeros(p.idx.size, dtype=bool)
            sel[rows] = True
            z, _ = _segment_values(p.seg, sel, np.full(p.idx.size, self.s_end))
            self.idx.append(p.idx[sel])
            self.z.append(z)
            self.status.append(p.status[sel])

    def end_at(self, s0: float, s_cut: float) -> None:
        """Move the step end back to ``s_cut``: drop the events a step ending there omits.

        The pieces stay: each covers its neuron's motion up to the old end, hence to
        ``s_cut`` (:meth:`finish` evaluates them there).
        """
        self.s_end = s_cut
        self.batch.keep(s0, s_cut)
        keep = in_step(self.first_tau, s0, s_cut)
        self.first_idx, self.first_tau = self.first_idx[keep], self.first_tau[keep]
        self.first_w = self.first_w[keep]

    def truncate(self, s0: float, s_cut: float) -> None:
        """End the step at ``s_cut`` (before its end) without moving any neuron again."""
        self.end_at(s0, s_cut)
        self.finish(s0)


def take_step(prob: Problem, nrn: Neurons, s0: float, s_target: float,
              h: float | None) -> StepResult:
    """One accepted step from ``s0`` toward ``s_target`` with all its events; commits it."""
    system = System.build(prob, nrn.Z, nrn.status, nrn.alive)
    step = integrate_step(system, s0, s_target, h)
    first = first_events(step, nrn)
    res = run_passes(step, first, step.s1)
    for _ in range(64):
        if res.cut_at is not None:  # a neuron blew up in a catch-up: redo to there
            res = run_passes(step, first, res.cut_at)
            continue
        cut = deferral(step, nrn, res).cut_time(step.s0, res.s_end, prob.tol.batch,
                                                prob.tol.cut_aim * prob.tol.batch)
        if cut is None or not cut < res.s_end:
            break
        res.truncate(step.s0, cut)
    commit(step, nrn, res, res.s_end)
    h_next = step.h_next
    if step.s0 < res.s_end < step.s1:  # the events allowed no longer: try a little more
        h_next = min(h_next, prob.tol.cut_growth * (res.s_end - step.s0))
    return StepResult(res.s_end, h_next, res.s_end < step.s1, res.batch, res.located,
                      step.hlambda, step.nfev)


def deferral(step: DenseStep, nrn: Neurons, res: _Passes) -> Deferral:
    r"""The deferred-event error model of a step attempt ending at ``res.s_end``.

    For every neuron with events, :math:`\delta f_k(s)` = its contribution to the outputs
    along its true path minus along the path the coupled system gave it (its step-start
    state all along), computed exactly at the step end from both polynomials; its growth
    from the first event is modelled by the first jump (linear part) and that end value
    (quadratic part: a sliding release changes only the second derivative).
    """
    prob = step.system.prob
    if not res.idx:
        return Deferral.empty()
    idx = np.concatenate(res.idx)
    z_true = np.concatenate(res.z)
    st_true = np.concatenate(res.status)
    x_end = float(step.x_of(res.s_end))
    z_fr = step.frozen_at(idx, nrn.Z[idx], x_end)
    with np.errstate(over="ignore", invalid="ignore"):  # a piece may overflow: inf error
        c_true = (st_true == 1) * z_true[:, :1] * (z_true[:, 1:] @ prob.Xr.T)
        c_fr = (nrn.status[idx] == 1) * z_fr[:, :1] * (z_fr[:, 1:] @ prob.Xr.T)
        r = np.abs(prob.residual(step.f_at(np.array([0.0, x_end])))).max(axis=0)
        wend = as_error(np.abs(c_true - c_fr) @ (r * prob.xnorm))
    order = np.argsort(res.first_idx)
    pos = order[np.searchsorted(res.first_idx[order], idx)]
    return Deferral(res.first_tau[pos], res.first_w[pos], wend, res.s_end)


def _first_cut(step: DenseStep, batch: EventBatch, s_end: float) -> float | None:
    """Cut from the first events' jumps alone (a lower bound of the step's deferral error)."""
    if not batch.size:
        return None
    budget = step.system.prob.tol.batch
    scale = math.exp(s_end)
    if batch.deferral_error(s_end, scale) <= budget:
        return None
    return batch.cut_time(step.s0, s_end, scale, budget)


# ------------------------------------------------------------------ first events
def first_events(step: DenseStep, nrn: Neurons) -> Located:
    r"""The first event of every integrated neuron in [s0, s1] (crossings, flips, releases).

    Direct neurons move along their own dense output; members of a propagated group along
    :math:`\Phi_q(x) z_k`, screened by Bernstein bounds so only candidates are
    root-found.  Releases are a property of the state: all members of a released group
    have an event then.
    """
    sysm = step.system
    prob = sysm.prob
    md = sysm.md
    st_all = np.concatenate([sysm.d_status, sysm.g_status])
    rt, rp, rs = release_times(step, st_all, np.full(st_all.shape[0], step.s0), step.s1)
    idx, st, coef, rel = [], [], [], []
    if md:
        idx.append(sysm.d_idx)
        st.append(sysm.d_status)
        coef.append(step.zd_coef())
        rel.append((rt[:md], rp[:md], rs[:md]))
    C = step.phi_coef()
    for q in range(sysm.gp):
        members = sysm.g_members[q]
        released = bool(np.isfinite(rt[md + q]))
        cand = np.arange(members.size) if released else _group_candidates(
            prob, C[:, q], sysm.g_status[q], nrn.Z[members])
        if cand.size == 0:
            continue
        k = cand.size
        idx.append(members[cand])
        st.append(np.broadcast_to(sysm.g_status[q], (k, prob.Xr.shape[0])))
        coef.append(np.einsum("pij,nj->pni", C[:, q], nrn.Z[members[cand]]))
        rel.append((np.full(k, rt[md + q]), np.full(k, rp[md + q], dtype=np.int64),
                    np.full(k, rs[md + q], dtype=np.int8)))
    if not idx:
        return _empty(prob)
    N = int(sum(i.size for i in idx))
    seg = Segments(np.arange(N), np.full(N, step.s0), np.full(N, step.s1),
                   np.concatenate(coef, axis=1))
    releases = (np.concatenate([r[0] for r in rel]), np.concatenate([r[1] for r in rel]),
                np.concatenate([r[2] for r in rel]))
    loc = _located(step, np.concatenate(idx), np.concatenate(st), seg, releases)
    return loc.take(np.isfinite(loc.tau))


def _located(step: DenseStep, idx: Index, status: Status, seg: Segments,
             releases: tuple[Array, Index, NDArray[np.int8]], start: Array | None = None,
             fresh: NDArray[np.bool_] | None = None, count: Index | None = None,
             stuck: Index | None = None) -> Located:
    """Earliest of crossing/flip (on ``seg``) and release for each row.

    ``stuck``: each row's events at the instant ``start`` so far (they widen the margin
    a move back across a just-resolved boundary needs, :meth:`Tolerances.slack`).
    """
    prob = step.system.prob
    stk = np.zeros(idx.size, np.int64) if stuck is None else stuck
    found = locate(prob, seg, status, start, fresh,
                   None if stuck is None else prob.tol.slack(stk))
    tau, z, cause, point = found.tau, found.z, found.cause, found.point
    zscale = found.zscale
    rt, rp, rs = releases
    side = np.zeros(idx.size, dtype=np.int8)
    rel = rt < tau
    if rel.any():
        tau = np.where(rel, rt, tau)
        cause = np.where(rel, RELEASE, cause).astype(np.int8)
        point = np.where(rel, rp, point)
        side = np.where(rel, rs, side).astype(np.int8)
        z[rel], zscale[rel] = _segment_values(seg, rel, rt)
    cnt = np.zeros(idx.size, np.int64) if count is None else count
    again = np.zeros(idx.size, np.int64) if start is None else np.where(tau == start, stk + 1, 0)
    return Located(idx, tau, z, status, cause, point, side, cnt, zscale, again)


def _segment_values(seg: Segments, rows: NDArray[np.bool_],
                    tau: Array) -> tuple[Array, Array]:
    """State of the selected rows at times ``tau`` and its rounding scale."""
    want = np.flatnonzero(rows)
    sel = np.flatnonzero(rows[seg.row])
    t = tau[seg.row[sel]]
    inside = (seg.lo[sel] <= t) & (t <= seg.hi[sel])
    # per wanted row: the first segment containing its time (else its last one)
    key = np.where(inside, 0, 1)
    order = np.lexsort((-seg.hi[sel] * (key == 1), key, seg.row[sel]))
    first = order[np.r_[True, seg.row[sel][order][1:] != seg.row[sel][order][:-1]]]
    p = sel[first]
    width = seg.hi[p] - seg.lo[p]
    u = np.where(width > 0, (tau[seg.row[p]] - seg.lo[p]) / np.where(width > 0, width, 1.0),
                 0.0)
    vals = dp.horner(seg.coef[:, p], np.clip(u, 0.0, 1.0)[:, None])
    out = np.zeros((want.size, seg.coef.shape[2]))
    where = np.searchsorted(want, seg.row[p])
    out[where] = vals
    scale = np.zeros(want.size)
    scale[where] = coef_norm(seg.coef[:, p])
    return out, scale


def _group_candidates(prob: Problem, C: Array, state: Status, Z0: Array) -> Index:
    r"""Members of a propagated group whose event functions may cross zero in the step.

    With :math:`\Phi(x) = \sum_p C_p x^p` (:math:`C_0 = I`), a member's event function
    :math:`s_i\tilde x_i^\top\Phi_\beta(x) z_k` moves by at most
    :math:`\sum_{p\ge1}\lVert C_{p,\beta}\rVert\lVert z_k\rVert\lVert\tilde x_i\rVert`
    from its start value; members for which that cannot reach zero are event-free, the
    others are bounded by the Bernstein coefficients of their event functions.  Held
    members get the same test for :math:`h_s a(x)`.
    """
    s = state.astype(np.float64)
    zn = np.linalg.norm(Z0, axis=1)
    cn = np.linalg.norm(C, axis=(1, 2))
    tol = prob.tol.boundary * (zn * cn.sum())[:, None] * prob.xnorm[None, :]
    spread_b = np.linalg.norm(C[1:, 1:, :], axis=(1, 2)).sum()
    e0 = s * (Z0[:, 1:] @ prob.Xr.T)
    maybe = np.any((e0 - spread_b * zn[:, None] * prob.xnorm < -tol) & (s != 0), axis=1)
    hold = bool(np.any(state == 0))
    if hold:
        hs = -prob.y[np.argmax(state == 0)]
        spread_a = np.linalg.norm(C[1:, 0, :], axis=1).sum()
        maybe |= hs * Z0[:, 0] - spread_a * zn < prob.tol.boundary * zn * cn.sum()
    rows = np.flatnonzero(maybe)
    if rows.size == 0:
        return rows
    Bc = dp.bernstein(C)  # (8, D1, D1) Bernstein coefficients of Phi
    W = s[None, :, None] * (prob.Xr @ Bc[:, 1:, :])  # (8, n, D1)
    Zc = Z0[rows]
    low = (W @ Zc.T).min(axis=0).T  # (rows, n): lowest Bernstein coefficient
    flag = np.any(low < -tol[rows], axis=1)
    if hold:
        amin = np.min(hs * (Zc @ Bc[:, 0, :].T), axis=1)
        flag |= amin < -prob.tol.boundary * zn[rows] * cn.sum()
    return rows[flag]


def _empty(prob: Problem) -> Located:
    n = prob.Xr.shape[0]
    return Located(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, prob.D1)),
                   np.zeros((0, n), np.int8), np.zeros(0, np.int8), np.zeros(0, np.int64),
                   np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0),
                   np.zeros(0, np.int64))


# ------------------------------------------------------------------ passes
def run_passes(step: DenseStep, first: Located, s_end: float) -> _Passes:
    """Apply events and move the event neurons on, pass by pass, up to ``s_end``.

    The first events alone may already exceed the deferral budget: the step end is then
    moved to the cut before any neuron is moved on (so events after it cost nothing).
    A neuron reaching ``max_passes`` events moves the step end back to its last one
    (``_Passes.end_at``); the passes go on to there.
    """
    prob = step.system.prob
    out = _Passes(s_end=s_end)
    loc = first.take(in_step(first.tau, step.s0, s_end))
    first_pass = True
    while loc.idx.size:
        if first_pass:
            first_pass = False
            loc, new, z, fresh = _first_pass(step, loc, out)
        else:
            new, z, fresh = process(step, loc, out.batch)
        out.located += loc.idx.size
        count = loc.count + 1
        over = count >= prob.tol.max_passes
        if over.any():
            t_bad = float(loc.tau[over].min())
            if t_bad <= step.s0:
                raise _switching(prob, int(loc.idx[over][0]), t_bad, new[over][0])
            # the step ends before that neuron's next switch; the others go on to there
            out.end_at(step.s0, t_bad)
            k = in_step(loc.tau, step.s0, t_bad)
            loc, new, z, fresh, count = loc.take(k), new[k], z[k], fresh[k], count[k]
        dead = is_dead(new)
        if dead.any():  # dead neurons stay where they died
            out.pieces.append(_Piece(loc.idx[dead], loc.tau[dead], new[dead],
                                     _constant(z[dead], loc.tau[dead], out.s_end)))
        keep = ~dead
        try:
            loc = _next_events(step, loc.idx[keep], loc.tau[keep], z[keep], new[keep],
                               fresh[keep], count[keep], loc.stuck[keep], out)
        except Blowup as blow:
            out.cut_at = blow.tau
            return out
    out.finish(step.s0)
    return out


#: First events applied in the first chunk of :func:`_first_pass` (then doubling).
_FIRST_CHUNK = 128


def _first_pass(step: DenseStep, loc: Located,
                out: _Passes) -> tuple[Located, Status, Array, NDArray[np.bool_]]:
    """Apply the first events, in time order and only as far as the step can keep them.

    Their jumps alone may exceed the deferral budget before ``out.s_end``
    (:func:`_first_cut`): the step end then moves to the cut, and the events after it are
    dropped.  They are applied in chunks in time order; once the applied ones exceed the
    budget at the time of the next one, the cut lies before it (later events add nothing
    to the error before their own time) and the rest are never applied.  Returns the
    kept events with what :func:`~reluflow.engine.events.process` gives for them.
    """
    order = np.argsort(loc.tau, kind="stable")
    scale = math.exp(out.s_end)
    budget = step.system.prob.tol.batch
    parts: list[tuple[Index, Status, Array, NDArray[np.bool_]]] = []
    done, size = 0, _FIRST_CHUNK
    while done < order.size:
        rows = order[done : done + size]
        parts.append((rows, *process(step, loc.take(rows), out.batch)))
        done, size = done + rows.size, 2 * size
        if done < order.size and out.batch.deferral_error(
                float(loc.tau[order[done]]), scale) > budget:
            break
    rows = np.concatenate([p[0] for p in parts])
    loc = loc.take(rows)
    new, z, fresh = (np.concatenate([p[k] for p in parts]) for k in (1, 2, 3))
    cut = _first_cut(step, out.batch, out.s_end)
    if cut is not None and cut < out.s_end:
        out.end_at(step.s0, cut)
        keep = in_step(loc.tau, step.s0, cut)
        loc, new, z, fresh = loc.take(keep), new[keep], z[keep], fresh[keep]
    out.first_idx, out.first_tau = loc.idx, loc.tau
    out.first_w = np.concatenate(out.batch.mag)
    return loc, new, z, fresh


def _switching(prob: Problem, k: int, tau: float, status: Status) -> RuntimeError:
    """The error of a neuron switching state at one instant ``max_passes`` times."""
    geo = prob.held.get(status == 0)
    why = "try another rtol"
    if geo.basis.shape[1] < geo.idx.size:
        why = ("the held points are linearly dependent (several on one line through 0): "
               "holding is decided per point, which such data can defeat")
    return RuntimeError(f"gradient_flow: neuron {k} keeps switching state at t = "
                        f"{math.expm1(tau):.6g} without moving (a corner of {geo.idx.size} "
                        f"held boundaries); {why}")


def _constant(z: Array, start: Array, s_end: float) -> Segments:
    coef = np.zeros((8, *z.shape))
    coef[0] = z
    return Segments(np.arange(z.shape[0]), start.copy(), np.full(z.shape[0], s_end), coef)


def _next_events(step: DenseStep, idx: Index, s: Array, z: Array, status: Status,
                 fresh: NDArray[np.bool_], count: Index, stuck: Index,
                 out: _Passes) -> Located:
    """Move neurons on from their events (a piece each); returns their next events."""
    if idx.size == 0:
        return _empty(step.system.prob)
    s_end = out.s_end
    seg = motion_segments(step, status, s, z, s_end)
    out.pieces.append(_Piece(idx, s, status, seg))
    loc = _located(step, idx, status, seg, release_times(step, status, s, s_end), s, fresh,
                   count, stuck)
    return loc.take(np.isfinite(loc.tau) & in_step(loc.tau, step.s0, s_end))


def motion_segments(step: DenseStep, status: Status, s: Array, z: Array,
                    s_end: float) -> Segments:
    """Motion of neurons from ``s`` to ``s_end`` in ``status``: propagator or catch-up."""
    sysm = step.system
    q = np.full(z.shape[0], -1, dtype=np.int64)
    if sysm.gp:
        keys = state_keys(status)
        q = sysm.lookup(keys)
    parts: list[Segments] = []
    rows_p = np.flatnonzero(q >= 0)
    if rows_p.size:
        parts.append(_propagated(step, rows_p, q[rows_p], s[rows_p], z[rows_p], s_end))
    rows_c = np.flatnonzero(q < 0)
    if rows_c.size:
        cs = catch_up(step, status[rows_c], s[rows_c], z[rows_c], s_end)
        parts.append(Segments(rows_c[cs.row], cs.lo, cs.hi, cs.coef))
    if len(parts) == 1:
        return parts[0]
    return Segments(np.concatenate([p.row for p in parts]),
                    np.concatenate([p.lo for p in parts]),
                    np.concatenate([p.hi for p in parts]),
                    np.concatenate([p.coef for p in parts], axis=1))


def _propagated(step: DenseStep, rows: Index, q: Index, s: Array, z: Array,
                s_end: float) -> Segments:
    r"""Segments :math:`z(x) = \Phi_q(x)\Phi_q(x_s)^{-1} z_s` restricted to [s, s_end]."""
    D1 = z.shape[1]
    xs = step.x_of(s)
    C = step.phi_coef()[:, q]  # (8, N, D1, D1)
    w = np.linalg.solve(dp.horner(C, xs[:, None, None]), z[:, :, None])[:, :, 0]
    coef = np.einsum("pnij,nj->pni", C, w)  # (8, N, D1) in x
    width = step.x_of(s_end) - xs
    flat = coef.transpose(1, 2, 0).reshape(-1, 8)
    sh = dp.shift(flat, np.repeat(xs, D1), np.repeat(width, D1))
    coef_u = sh.reshape(rows.size, D1, 8).transpose(2, 0, 1)
    return Segments(rows, s.copy(), np.full(rows.size, s_end), coef_u)


def catch_up(step: DenseStep, status: Status, s: Array, z: Array, s_end: float) -> Segments:
    r"""Solve each neuron's linear system from its event to ``s_end`` (one DOP853 solve).

    Neuron k runs on :math:`\sigma \in [0, 1]`, :math:`\tau = s_k + \sigma(s_{end} - s_k)`,
    with the residuals of the step's output polynomial (or its field frozen at the step
    start, where :func:`frozen_fields` shows that changes nothing to ``rtol``); its error
    is controlled relative to its own size.  Returns one segment per neuron and sub-step.

    Raises
    ------
    Blowup
        When a neuron grows by more than ``_GROWTH`` (1e30): the step is to end at the
        exception's ``tau``, where that neuron is (:func:`run_passes` does so).
    """
    prob = step.system.prob
    N, D1 = z.shape
    L = s_end - s
    act = (status == 1).astype(np.float64)
    held = prob.held.rows(status)
    fixed, frozen = frozen_fields(step, act, held, s, s_end)
    live = np.flatnonzero(~frozen)  # rows whose fields follow the residuals
    held_live = held if live.size == N else prob.held.rows(status[live])

    def rhs(sig: float, yv: Array) -> Array:
        Z = yv.reshape(N, D1)
        tau = s + sig * L
        with np.errstate(over="ignore", invalid="ignore"):
            v = fixed
            if live.size == N:
                r = prob.residual(step.f_at(step.x_of(tau)))
                v = fields(prob.Xr, act, r, held, prob.floor)
            elif live.size:
                r = prob.residual(step.f_at(step.x_of(tau[live])))
                v = fixed.copy()
                v[live] = fields(prob.Xr, act[live], r, held_live, prob.floor)
            dz = np.empty_like(Z)
            dz[:, 0] = np.einsum("kd,kd->k", Z[:, 1:], v)
            dz[:, 1:] = Z[:, :1] * v
            return ((L * np.exp(tau))[:, None] * dz).ravel()

    if not np.any(L > 0):
        coef = np.zeros((8, N, D1))
        coef[0] = z
        return Segments(np.arange(N), s.copy(), s.copy(), coef)
    atol = np.repeat(prob.tol.rtol * np.linalg.norm(z, axis=1), D1)
    limit = _GROWTH * np.abs(z).max(axis=1)
    check_deadline()
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        once = dop853_once(rhs, z.ravel(), prob.tol.solver_rtol, atol)
    if once is not None:  # the usual case: one step (the solver's first, bitwise)
        c = once.reshape(8, N, D1)
        _check_growth(c, limit, s, 1.0, L)
        return Segments(np.arange(N), s + 0.0 * L, s + 1.0 * L, c)
    solver = MaxNormDOP853(rhs, 0.0, z.ravel(), 1.0, rtol=prob.tol.solver_rtol,
                           atol=atol, first_step=1.0)
    rows, lo, hi, coefs = [], [], [], []
    while solver.status == "running":
        check_deadline()
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            msg = solver.step()
            if solver.status == "failed":
                raise FloatingPointError(f"gradient_flow: catch-up solve failed: {msg}")
            c = dp.monomial(solver.dense_output()).reshape(8, N, D1)
        _check_growth(c, limit, s, solver.t, L)
        rows.append(np.arange(N))
        lo.append(s + solver.t_old * L)
        hi.append(s + solver.t * L)
        coefs.append(c)
    return Segments(np.concatenate(rows), np.concatenate(lo), np.concatenate(hi),
                    np.concatenate(coefs, axis=1))


def _check_growth(c: Array, limit: Array, s: Array, sig: float, L: Array) -> None:
    """Raise :class:`Blowup` at the first neuron that grew beyond ``limit`` by ``sig``."""
    grown = ~(np.abs(c).sum(axis=0).max(axis=1) <= limit)  # also catches inf and nan
    if grown.any():  # end the step where the first such neuron is (it is > its event)
        raise Blowup(float(np.min(s[grown] + sig * L[grown])))


def frozen_fields(step: DenseStep, act: Array, held: HeldRows, s: Array,
                  s_end: float) -> tuple[Array, NDArray[np.bool_]]:
    r"""The fields of neurons moving from ``s`` to ``s_end``, and which may be frozen.

    Early in a run from a small start the outputs are negligible and the residuals
    constant: each neuron's field :math:`v_k` is then fixed and its catch-up needs no
    residuals.  Over the step, :math:`f_i(x) = \sum_p c_{p,i} x^p` moves from its start by
    at most :math:`\Delta f_i = \sum_{p\ge1}|c_{p,i}|\,x_{end}^p`, and both losses have
    :math:`|d\log r_i/df_i| \le 1`, so :math:`|r_i/\bar r_i - 1| \le \delta_i =
    e^{\Delta f_i} - 1` with :math:`\bar r` the residuals at the step start.  The fields
    :math:`v_k` of :math:`\bar r` are then off by at most :math:`E_k = \sum_{i\,
    \text{active}}\delta_i|\bar r_i|\lVert\tilde x_i\rVert`, and by Gronwall's lemma
    (:math:`dz/dt = G z`, :math:`G = [[0, v^\top], [v, 0]]` of norm :math:`\lVert
    v\rVert`: the error obeys :math:`\dot e = \bar G e + (\bar G - G) z`, and
    :math:`\lVert z\rVert` changes by at most :math:`e^{\pm\theta}`) neuron k's motion by
    at most :math:`E_k\,\Delta t_k\,e^{2\theta_k}` of its size, with
    :math:`\Delta t_k = e^{s_{end}} - e^{s_k}` and
    :math:`\theta_k = (\lVert \bar v_k\rVert + E_k)\Delta t_k`.
    Returns those fields (N, D) and the neurons for which that is within
    ``frozen_share * rtol`` (N,).
    """
    prob = step.system.prob
    r0, delta = step.drift(s_end)
    budget = prob.tol.frozen_share * prob.tol.rtol
    with np.errstate(over="ignore", invalid="ignore"):
        E = act @ (delta * np.abs(r0) * prob.xnorm)
        dt = np.exp(s_end) - np.exp(s)
        if not np.any(E * dt <= budget):  # exp(2 theta) >= 1: none can be frozen
            return np.zeros((act.shape[0], prob.Xr.shape[1])), np.zeros(act.shape[0], bool)
        v = fields(prob.Xr, act, r0, held, prob.floor)
        theta = (np.sqrt(np.einsum("kd,kd->k", v, v)) + E) * dt
        bound = E * dt * np.exp(2.0 * theta)
    return v, np.asarray(bound <= budget)


# ------------------------------------------------------------------ commit
def commit(step: DenseStep, nrn: Neurons, res: _Passes, s_end: float) -> None:
    r"""Move every integrated neuron to ``s_end``; restore held boundaries and invariants.

    Members of a propagated group without events move by its propagator at the step end
    (Lorentz-projected, so :math:`a^2 - \lVert\beta\rVert^2` is kept to rounding), with
    the projection onto the group's held boundaries folded in.  Direct neurons and neurons
    with events are projected onto their held boundaries and have their invariant
    restored; only neurons with events can have died.
    """
    sysm = step.system
    prob = sysm.prob
    x_end = np.asarray(step.x_of(s_end))
    done = np.zeros(nrn.Z.shape[0], dtype=bool)
    f_idx = np.concatenate(res.idx) if res.idx else np.zeros(0, np.int64)
    done[f_idx] = True
    if sysm.gp:
        Phi = step.phi_at(np.arange(sysm.gp), np.full(sysm.gp, float(x_end)))
        held = prob.held.rows(sysm.g_status)
        for k, q in enumerate(held.rows):  # M = diag(1, P_K) Phi for held groups
            U = held.U[k]
            Phi[q, 1:, :] = 0.0 if held.full[k] else Phi[q, 1:, :] - U @ (U.T @ Phi[q, 1:, :])
        for q, members in enumerate(sysm.g_members):
            keep = members[~done[members]] if f_idx.size else members
            nrn.Z[keep] = nrn.Z[keep] @ Phi[q].T
    fix = f_idx
    if sysm.md:
        zd = dp.horner(step.zd_coef(), x_end)
        keep = ~done[sysm.d_idx]
        nrn.Z[sysm.d_idx[keep]] = zd[keep]
        fix = np.concatenate([sysm.d_idx[keep], f_idx])
    if f_idx.size:
        nrn.Z[f_idx] = np.concatenate(res.z)
        nrn.status[f_idx] = np.concatenate(res.status)
    if fix.size:
        held = prob.held.rows(nrn.status[fix])
        if held.rows.size:
            nrn.Z[fix, 1:] = held.project(nrn.Z[fix, 1:])
        nrn.Z[fix] = correct_invariant(nrn.Z[fix], nrn.c[fix])
    if f_idx.size:
        dead = f_idx[is_dead(nrn.status[f_idx])]
        if dead.size:
            gone = np.zeros(nrn.Z.shape[0], dtype=bool)
            gone[dead] = True
            nrn.alive = nrn.alive[~gone[nrn.alive]]
