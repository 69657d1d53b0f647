r"""Events inside a step: where they are, what they do, and the batch they form.

Inside one step every neuron moves along a polynomial of degree 7 in the step's time
(a *segment*: its own dense output, a propagator applied to it, or a catch-up solve after
an event).  Its events are

* a **crossing**: :math:`s_i \beta^\top\tilde x_i` (positive on the neuron's side of a
  non-held point :math:`i`) reaches zero;
* a **sign change of a** for a held neuron (:math:`\operatorname{sign}(a) = -y_K` is what
  lets it hold);
* a **release**: the Filippov coefficients :math:`\lambda_K(r(\tau))` of its held set
  leave :math:`(0, 1)` (a property of the state, not of the neuron).

:func:`locate` finds the first crossing or sign change on segments (Bernstein bounds rule
out most neurons at once, the rest are deflated at the segment start and root-found);
:func:`release_times` finds the first release of held states on the step's output
polynomial; :func:`process` applies located events: the new state on every boundary the
neuron sits on (:func:`reluflow.engine.groups.resolve`), the recorded event kinds, the
exact projection onto held boundaries, and the size of the jump of
:math:`df/d\tau` that the coupled system only sees at the step end
(:class:`EventBatch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
from numpy.typing import NDArray

from reluflow.engine import dense as dp
from reluflow.engine.coupled import DenseStep, Problem
from reluflow.engine.groups import HeldRows, resolve, unique_states
from reluflow.engine.groups import fields as neuron_fields

__all__ = [
    "CROSS",
    "FLIP",
    "KINDS",
    "RELEASE",
    "Deferral",
    "EventBatch",
    "Found",
    "Located",
    "Segments",
    "as_error",
    "coef_norm",
    "in_step",
    "latest_within",
    "locate",
    "process",
    "release_times",
]

Array = NDArray[np.float64]
Index = NDArray[np.int64]
Status = NDArray[np.int8]

#: Event causes: a crossing of a boundary, a sign change of a held neuron's a, a release.
CROSS, FLIP, RELEASE = 0, 1, 2
#: Recorded kinds (index = code).
KINDS = ("activate", "deactivate", "slide-start", "slide-end")
_ACT, _DEACT, _SSTART, _SEND = range(4)
_RELEASE_GRID = 32
_CHUNK = 4096


@dataclass
class Segments:
    """Polynomial pieces of motion: row ``row[p]`` moves as ``coef[:, p]`` on [lo, hi]."""

    row: Index  # (P,) index of the moving neuron in its batch
    lo: Array  # (P,) tau at u = 0
    hi: Array  # (P,) tau at u = 1
    coef: Array  # (8, P, D1) monomial coefficients in u


@dataclass
class Located:
    """The next event of each of N neurons (time inf: none before the step end)."""

    idx: Index  # neuron
    tau: Array
    z: Array  # (N, D1) state at the event
    status: Status  # (N, n) activation state before the event
    cause: NDArray[np.int8]  # CROSS, FLIP or RELEASE
    point: Index  # boundary crossed or released (-1 for FLIP)
    side: NDArray[np.int8]  # side a release goes to
    count: Index  # events this neuron already had in the step
    zscale: Array  # rounding scale of z (sum of its polynomial's coefficient norms)
    stuck: Index  # its events at this same instant before this one

    def take(self, sel: NDArray[np.bool_] | Index) -> Located:
        return Located(*(getattr(self, f.name)[sel] for f in fields(self)))

    @classmethod
    def concat(cls, parts: list[Located]) -> Located:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in
                     fields(cls)))


def as_error(err: Array | float) -> Array:
    """Non-negative error terms with every overflow (inf, or NaN from inf * 0) as inf.

    A deferred effect beyond float64 is larger than any budget: the step is cut before it.

    >>> as_error(np.array([1.0, np.nan, np.inf])).tolist()
    [1.0, inf, inf]
    """
    e = np.asarray(err, dtype=np.float64)
    return np.where(np.isfinite(e), e, np.inf)


def in_step(tau: Array, s0: float, s_end: float) -> NDArray[np.bool_]:
    """Events a step ending at ``s_end`` handles: before its end, or at its start."""
    return np.asarray((tau < s_end) | (tau <= s0))


@dataclass
class EventBatch:
    """Events of one step: the records (times in tau) and the deferred-error terms."""

    rec_tau: list[Array] = field(default_factory=list)
    neuron: list[Index] = field(default_factory=list)
    point: list[Index] = field(default_factory=list)
    kind: list[NDArray[np.int8]] = field(default_factory=list)
    tau: list[Array] = field(default_factory=list)
    mag: list[Array] = field(default_factory=list)

    def add_records(self, tau: Array, neuron: Index, point: Index, kind: int) -> None:
        if neuron.size:
            self.rec_tau.append(tau)
            self.neuron.append(neuron)
            self.point.append(point)
            self.kind.append(np.full(neuron.size, kind, dtype=np.int8))

    def add_error(self, tau: Array, mag: Array) -> None:
        self.tau.append(tau)
        self.mag.append(mag)

    @property
    def size(self) -> int:
        return int(sum(a.size for a in self.tau))

    def keep(self, s0: float, s_end: float) -> None:
        """Drop everything a step ending at ``s_end`` does not handle (:func:`in_step`)."""
        for k, tau in enumerate(self.rec_tau):
            m = in_step(tau, s0, s_end)
            self.rec_tau[k], self.neuron[k] = tau[m], self.neuron[k][m]
            self.point[k], self.kind[k] = self.point[k][m], self.kind[k][m]
        for k, tau in enumerate(self.tau):
            m = in_step(tau, s0, s_end)
            self.tau[k], self.mag[k] = tau[m], self.mag[k][m]

    def deferral_error(self, s: float, scale: float) -> float:
        r"""Bound on the relative error of deferring each event's :math:`\dot f` jump to ``s``.

        :math:`\text{scale}\sum_e w_e (s - \tau_e)^2 / 2` over events before ``s``, with
        :math:`w_e = \sum_i |r_i|\,\lVert\tilde x_i\rVert\,|J_{e,i}|` (see :func:`process`)
        and scale :math:`= 1 + t` at ``s``: the largest change of any neuron's relative
        velocity, integrated twice over the time the jump is deferred.
        """
        if not self.tau:
            return 0.0
        return float(_batch_errors(np.concatenate(self.tau), np.concatenate(self.mag),
                                   np.array([s]), scale)[0])

    def cut_time(self, s0: float, s_end: float, scale: float, budget: float) -> float:
        """Latest time in (first event, s_end] where the deferral error fits the budget."""
        tau = np.concatenate(self.tau)
        mag = np.concatenate(self.mag)
        return max(latest_within(lambda s: _batch_errors(tau, mag, s, scale), budget,
                                 float(tau.min()), s_end), s0)


def _batch_errors(tau: Array, mag: Array, s: Array, scale: float) -> Array:
    """:meth:`EventBatch.deferral_error` of the events at ``tau`` with weights ``mag``, at
    each of the times ``s`` (G,)."""
    d = np.clip(s[:, None] - tau[None, :], 0.0, None)
    with np.errstate(over="ignore", invalid="ignore"):
        return as_error(scale * np.sum(mag * d * d, axis=1) / 2)  # per row: as for one s


#: Times tried at once per round of :func:`latest_within`.
_SEARCH_GRID = 32


def latest_within(err: Callable[[Array], Array], budget: float, lo: float,
                  hi: float) -> float:
    """Latest time in ``[lo, hi]`` where a non-decreasing error is within ``budget``.

    ``err`` maps times (G,) to errors (G,).  Each round evaluates it on
    ``_SEARCH_GRID`` cells of the bracket at once and keeps the cell where it first
    exceeds the budget, until the bracket is one float wide: the answer of a bisection,
    in a tenth of the calls.  ``lo`` itself is returned when even it exceeds the budget.

    >>> s = latest_within(lambda s: s * s, 2.0, 0.0, 2.0)  # the last float with s^2 <= 2
    >>> bool(s * s <= 2.0 < np.nextafter(s, 3.0) ** 2)
    True
    """
    while True:
        g = lo + (hi - lo) * np.linspace(0.0, 1.0, _SEARCH_GRID + 1)
        g[0], g[-1] = lo, hi  # the ends exactly (hi is known to exceed after a round)
        g = np.unique(np.clip(g, lo, hi))
        if g.size <= 2:
            return lo
        over = np.flatnonzero(err(g) > budget)
        if over.size == 0:
            return hi
        k = int(over[0])
        if k == 0:
            return lo
        lo, hi = float(g[k - 1]), float(g[k])


@dataclass(frozen=True)
class Deferral:
    r"""Error of deferring the events of a step to its end, per neuron with events.

    Neuron k's deferred output change :math:`\delta f_k` grows from its first event
    :math:`\tau_k` as :math:`w_k d + K_k d^2` (:math:`d = s - \tau_k`, weighted by
    :math:`|r_i|\,\lVert\tilde x_i\rVert` and summed over points), :math:`w_k` from the
    first jump and :math:`K_k` from the exact value :math:`w^{end}_k` at the step end.
    Every neuron's relative velocity changes by at most :math:`(1+t)` times that, so the
    error of a step ending at ``s`` is :math:`(1+t)\sum_k (w_k d^2/2 + K_k d^3/3)`.

    Examples
    --------
    >>> d = Deferral(np.array([0.0]), np.array([2.0]), np.array([2.0]), 1.0)
    >>> round(float(d.error(1.0) / np.exp(1.0)), 12)  # w d^2 / 2 with w = 2, d = 1
    1.0
    >>> s = d.cut_time(0.0, 1.0, 0.1)
    >>> bool(abs(d.error(s) - 0.1) < 1e-12)
    True
    """

    tau: Array
    w1: Array
    wend: Array
    s_end: float
    d_end: Array = field(init=False, repr=False, compare=False)
    excess: Array = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # the parts of the model that do not depend on s
        d_end = np.maximum(self.s_end - self.tau, 1e-300)
        object.__setattr__(self, "d_end", d_end)
        object.__setattr__(self, "excess", np.maximum(self.wend - self.w1 * d_end, 0.0))

    @classmethod
    def empty(cls) -> Deferral:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), 0.0)

    def error(self, s: float) -> float:
        return float(self.errors(np.array([s]))[0])

    def errors(self, s: Array) -> Array:
        """The error at each of the times ``s`` (G,)."""
        if self.tau.size == 0:
            return np.zeros(s.shape)
        d = np.clip(s[:, None] - self.tau[None, :], 0.0, None)
        q = np.minimum(d / self.d_end, 1.0)  # K d^3 = excess q^2 d, finite for s <= s_end
        with np.errstate(over="ignore", invalid="ignore"):
            # excess = K d_end^2
            # summed per row (not a matrix product): the same rounding as for one time
            return as_error(np.exp(s) * np.sum(self.w1 * d * d / 2 + self.excess * q * q * d / 3,
                                               axis=1))

    def cut_time(self, s0: float, s_end: float, budget: float,
                 aim: float | None = None) -> float | None:
        """None if the step fits ``budget``, else the latest time where the error is
        within ``aim`` (default ``budget``; a smaller aim leaves room for the model to be
        revised upward at the new end)."""
        if self.error(s_end) <= budget:
            return None
        goal = budget if aim is None else aim
        return max(latest_within(self.errors, goal, float(self.tau.min()), s_end), s0)


# ------------------------------------------------------------------ location
@dataclass
class Found:
    """First crossing or flip of each row on its segments (time inf: none)."""

    tau: Array
    z: Array  # (R, D1) state at the event
    zscale: Array  # (R,) sum of the coefficient norms there: the rounding scale of z
    cause: NDArray[np.int8]
    point: Index


def locate(prob: Problem, seg: Segments, status: Status, start: Array | None = None,
           fresh: NDArray[np.bool_] | None = None, slack: Array | None = None) -> Found:
    """First crossing, or sign change of a held ``a``, of each row along its segments.

    ``status`` (R, n) is each row's state.  ``fresh`` (R, n) marks the points each row
    was just resolved on at time ``start`` (R,): their functions vanish there and are
    always deflated at the start of the segment that begins at ``start``, and they only
    have an event if the row moves back across by more than ``slack`` (R,) of its size
    (:meth:`~reluflow.engine.tolerances.Tolerances.slack`; default ``rtol``).
    """
    R = status.shape[0]
    out = Found(np.full(R, np.inf), np.zeros((R, prob.D1)), np.zeros(R),
                np.zeros(R, dtype=np.int8), np.full(R, -1, dtype=np.int64))
    chunk = max(64, min(_CHUNK, 2**19 // max(prob.Xr.shape[0], 1)))  # (8, chunk, n) floats
    for lo in range(0, seg.row.size, chunk):
        sl = slice(lo, lo + chunk)
        part = Segments(seg.row[sl], seg.lo[sl], seg.hi[sl], seg.coef[:, sl])
        force = None
        if fresh is not None and start is not None:
            force = fresh[part.row] & (part.lo == start[part.row])[:, None]
        srow = None if slack is None else slack[part.row]
        u, c, pt = _first_on_segments(prob, part, status[part.row], force, srow)
        fin = np.flatnonzero(np.isfinite(u))
        t_ev = np.full(u.size, np.inf)
        t_ev[fin] = part.lo[fin] + u[fin] * (part.hi[fin] - part.lo[fin])
        if fin.size == 0:
            continue
        order = fin[np.lexsort((t_ev[fin], part.row[fin]))]
        best = order[np.r_[True, part.row[order][1:] != part.row[order][:-1]]]
        rw = part.row[best]
        better = t_ev[best] < out.tau[rw]
        best, rw = best[better], rw[better]
        out.tau[rw] = t_ev[best]
        out.z[rw] = np.einsum("pkd,pk->kd", part.coef[:, best], u[best][None, :] **
                              np.arange(8)[:, None])
        out.zscale[rw] = coef_norm(part.coef[:, best])
        out.cause[rw], out.point[rw] = c[best], pt[best]
    return out


def _first_on_segments(prob: Problem, seg: Segments, st: Status,
                       force: NDArray[np.bool_] | None,
                       slack: Array | None = None) -> tuple[Array, NDArray[np.int8], Index]:
    r"""Per segment: first event parameter u (inf: none), its cause and point.

    Every event function :math:`s_i\beta(u)^\top\tilde x_i = \sum_p c_{p,i} u^p` comes from
    one matrix product; a pair (segment, point) can only have a root if
    :math:`c_{0,i} - \sum_{p\ge1}|c_{p,i}| < 0` (a lower bound on [0, 1]); only those pairs
    get their Bernstein bound, and only pairs whose bound is negative are root-found.
    """
    P = seg.row.size
    n, D = prob.Xr.shape
    Cb = seg.coef[:, :, 1:]
    zn = coef_norm(Cb)  # bounds |beta(u)| and its rounding
    tol = prob.tol.boundary * zn[:, None] * prob.xnorm[None, :]
    V = (Cb.reshape(8 * P, D) @ prob.Xr.T).reshape(8, P, n)  # every event function
    V *= st.astype(np.float64)  # in place, one cast: a broadcast int8 product is 10x slower
    maybe = (V[0] - np.abs(V[1:]).sum(axis=0) < -tol) & (st != 0)
    if force is not None:
        force = force & (st != 0)
        maybe |= force
    u = np.full(P, np.inf)
    cause = np.zeros(P, dtype=np.int8)
    point = np.full(P, -1, dtype=np.int64)
    flat = np.flatnonzero(maybe)
    p_idx, i_idx = np.divmod(flat, n)
    if p_idx.size:
        polys = np.ascontiguousarray(V.reshape(8, P * n)[:, flat].T)
        tq = tol.ravel()[flat]
        fq = np.zeros(p_idx.size, dtype=bool) if force is None else force.ravel()[flat]
        keep = dp.bernstein_min(polys.T) < -tq
        if fq.any():  # just resolved there: an event only if it moves to the wrong side
            sl = np.full(P, prob.tol.rtol) if slack is None else slack
            keep[fq] = _moves_back(prob, seg, polys[fq], p_idx[fq], i_idx[fq], sl)
        p_idx, i_idx, polys, tq, fq = p_idx[keep], i_idx[keep], polys[keep], tq[keep], fq[keep]
    if p_idx.size:
        roots = dp.first_root(dp.deflate(polys, tq, fq), tq, p_idx)  # first per segment
        order = np.lexsort((roots, p_idx))
        first = order[np.r_[True, p_idx[order][1:] != p_idx[order][:-1]]]
        u[p_idx[first]] = roots[first]
        point[p_idx[first]] = i_idx[first]
    _first_flip(prob, seg, st, u, cause, point)
    return u, cause, point


def coef_norm(coef: Array) -> Array:
    r"""Sum over powers of the coefficients' norms, per row of ``coef`` (K, R, D): (R,).

    :math:`\sum_p \lVert c_{p,r}\rVert` bounds the polynomial's size on [0, 1].

    >>> coef_norm(np.array([[[3.0, 4.0]], [[0.0, 1.0]]]))
    array([6.])
    """
    return np.asarray(np.sqrt(np.einsum("pkd,pkd->pk", coef, coef)).sum(axis=0))


def _moves_back(prob: Problem, seg: Segments, polys: Array, p_idx: Index,
                i_idx: Index, slack: Array) -> NDArray[np.bool_]:
    r"""Pairs just resolved at their segment start that move to the other side after it.

    The function :math:`p(u) - p(0)` (the start value is the resolved boundary) must drop
    below the integration error of the segment: ``slack`` (``rtol``, more for a neuron
    that already came back at this instant) times the neuron's size times
    :math:`\lVert\tilde x_i\rVert`.  A resolved neuron whose motion only grazes its
    boundary within that error (a release, where the normal velocity vanishes, or a
    tangential touch: the side is decided at the error level) goes on in the resolved
    state instead of switching back and forth at one instant.
    """
    zfull = coef_norm(seg.coef)[p_idx]
    tol = slack[p_idx] * zfull * prob.xnorm[i_idx]
    moved = polys - polys[:, :1]
    return np.asarray(dp.bernstein_min(moved.T) < -tol)


def _first_flip(prob: Problem, seg: Segments, st: Status, u: Array, cause: NDArray[np.int8],
                point: Index) -> None:
    """Earlier sign changes of a held neuron's a (updates u, cause, point in place)."""
    hs = held_sign(prob, st)
    hrows = np.flatnonzero(hs != 0)
    if hrows.size == 0:
        return
    C = seg.coef[:, hrows]
    A = C[:, :, 0] * hs[hrows]  # (8, h): positive while the neuron may hold
    ztol = prob.tol.boundary * coef_norm(C)
    fl = np.flatnonzero(dp.bernstein_min(A) < -ztol)
    if fl.size == 0:
        return
    ra = dp.first_root(dp.deflate(A[:, fl].T, ztol[fl]), ztol[fl])
    rows = hrows[fl]
    earlier = ra < u[rows]
    u[rows[earlier]] = ra[earlier]
    cause[rows[earlier]] = FLIP
    point[rows[earlier]] = -1


def held_sign(prob: Problem, st: Status) -> Array:
    """Sign a held neuron's a must keep (-label of its held points; 0 if none held)."""
    held = st == 0
    first = np.argmax(held, axis=1)
    return np.where(held.any(axis=1), -prob.y[first], 0.0)


# ------------------------------------------------------------------ releases
def release_times(step: DenseStep, status: Status, s_from: Array,
                  s_end: float) -> tuple[Array, Index, NDArray[np.int8]]:
    r"""First time in [s_from, s_end) each held state's :math:`\lambda_K` leaves (0, 1).

    The margins :math:`\min_j \min(\lambda_j, 1 - \lambda_j)` are bracketed on a grid of
    the step shared by all rows (the residuals there are computed once) and refined by
    Illinois steps.  Returns per row the time (inf: none), the point whose coefficient
    leaves and the side it leaves to (+1 when :math:`\lambda \to 1`, -1 when
    :math:`\lambda \to 0`).
    """
    prob = step.system.prob
    Q = status.shape[0]
    tau = np.full(Q, np.inf)
    point = np.full(Q, -1, dtype=np.int64)
    side = np.zeros(Q, dtype=np.int8)
    rows = np.flatnonzero(np.any(status == 0, axis=1) & (s_from < s_end))
    if rows.size == 0:
        return tau, point, side
    uniq, inv = unique_states(status[rows])  # members of a group move on together
    Ku, Pu = _padded_held(prob, uniq)
    au = (uniq == 1).astype(np.float64)
    calm = _calm_states(step, au, Ku, Pu, s_end)
    if calm.all():
        return tau, point, side
    if calm.any():  # only the other states can release: keep their rows
        live = np.flatnonzero(~calm)
        renum = np.full(calm.size, -1, dtype=np.int64)
        renum[live] = np.arange(live.size)
        keep = ~calm[inv]
        rows, inv = rows[keep], renum[inv[keep]]
        Ku, Pu, au = Ku[live], Pu[live], au[live]
    Kidx, Pinv, act = Ku[inv], Pu[inv], au[inv]
    g, r_grid = step.residual_grid(s_end, _RELEASE_GRID)
    t_all = np.concatenate([s_from[rows, None], np.broadcast_to(g, (rows.size, g.size))], 1)
    r_start = prob.residual(step.f_at(step.x_of(s_from[rows])))
    marg = np.empty((rows.size, g.size + 1))
    marg[:, 0] = _margins(act, Kidx, Pinv, r_start[:, None, :], prob.Xr)[:, 0]
    marg[:, 1:] = _grid_margins(_grid_fields(step, au, s_end), Ku, Pu, r_grid)[inv]
    marg[:, 1:][g[None, :] <= s_from[rows, None]] = np.inf  # before the row's start
    out = marg <= 0
    sel = np.flatnonzero(out.any(axis=1))
    if sel.size == 0:
        return tau, point, side
    k = np.argmax(out[sel], axis=1)
    prev = np.where(k > 0, _prev_finite(marg[sel], k), 0)
    lo, hi = t_all[sel, prev], t_all[sel, k]
    ev = _row_eval(step, act[sel], Kidx[sel], Pinv[sel])
    hi = _illinois(ev, lo, hi, marg[sel, prev], marg[sel, k], k > 0)
    t_rel = np.where(k == 0, t_all[sel, 0], hi)
    rr = prob.residual(step.f_at(step.x_of(t_rel)))[:, None, :]
    lam = _lambdas(act[sel], Kidx[sel], Pinv[sel], rr, prob.Xr)[:, 0]  # (S, h)
    mj = np.where(Kidx[sel] >= 0, np.minimum(lam, 1 - lam), np.inf)
    j = np.argmin(mj, axis=1)
    tau[rows[sel]] = t_rel
    point[rows[sel]] = Kidx[sel, j]
    side[rows[sel]] = np.where(lam[np.arange(sel.size), j] >= 0.5, 1, -1)
    return tau, point, side


def _calm_states(step: DenseStep, act: Array, Kidx: Index, Pinv: Array,
                 s_end: float) -> NDArray[np.bool_]:
    r"""Held states whose Filippov coefficients cannot leave (0, 1) before ``s_end``.

    With :math:`r_i = \bar r_i(1 + \epsilon_i)`, :math:`|\epsilon_i| \le \delta_i` over
    the step (:meth:`~reluflow.engine.coupled.DenseStep.drift`), and
    :math:`\lambda_j = \mu_j/r_j`, :math:`\mu_j = -\sum_{i\,\text{active}}
    r_i\,p_j^\top\tilde x_i` (:math:`p_j` the row of the pseudo-inverse):
    :math:`|\lambda_j - \bar\lambda_j| \le (E_j + |\bar\mu_j|\delta_j)/(|\bar r_j|(1 -
    \delta_j))` with :math:`E_j = \lVert p_j\rVert\sum_{i\,\text{active}} |\bar r_i|
    \delta_i\lVert\tilde x_i\rVert`.  A state is calm when every :math:`\bar\lambda_j`
    stays that far inside (0, 1), plus the rounding of its :math:`n + D` terms counted
    twice (this bound's and the grid's).  ``act`` (R, n); ``Kidx`` (R, h) held points
    padded with -1; ``Pinv`` (R, h, D) the rows :math:`p_j`.
    """
    prob = step.system.prob
    r0, delta = step.drift(s_end)
    n, D = prob.Xr.shape
    slack = 4 * (n + D) * float(np.finfo(np.float64).eps)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mu = -np.einsum("rhd,rd->rh", Pinv, act @ (r0[:, None] * prob.Xr))
        K0 = np.maximum(Kidx, 0)
        rK, dK = np.abs(r0[K0]), delta[K0]
        lam = mu / r0[K0]
        pn = np.sqrt(np.einsum("rhd,rhd->rh", Pinv, Pinv))
        sums = act @ np.stack([np.abs(r0) * prob.xnorm, np.abs(r0) * delta * prob.xnorm], 1)
        B = (pn * (sums[:, 1:] + slack * sums[:, :1]) + np.abs(mu) * dK) / (rK * (1 - dK))
        inside = (lam - B > slack) & (1 - lam - B > slack) & (dK < 1)
    return np.asarray(np.all(inside | (Kidx < 0), axis=1))


def _prev_finite(marg: Array, k: Index) -> Index:
    """Index of the last finite margin before column ``k`` of each row (0 if none)."""
    cols = np.arange(marg.shape[1])[None, :]
    ok = np.isfinite(marg) & (cols < k[:, None])
    return np.asarray(np.where(ok.any(axis=1), marg.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1),
                               0))


def _row_eval(step: DenseStep, act: Array, Kidx: Index,
              Pinv: Array) -> Callable[[Array], Array]:
    prob = step.system.prob

    def fun(t: Array) -> Array:
        r = prob.residual(step.f_at(step.x_of(t)))[:, None, :]
        return _margins(act, Kidx, Pinv, r, prob.Xr)[:, 0]

    return fun


def _illinois(fun: Callable[[Array], Array], lo: Array, hi: Array, flo: Array, fhi: Array,
              active: NDArray[np.bool_]) -> Array:
    """Vectorised Illinois (regula falsi) refinement of roots bracketed by f(lo) > 0 >= f(hi).

    Returns the right end of each bracket (where f <= 0) once the bracket is a few ulps
    wide.
    """
    lo, hi, flo, fhi = lo.copy(), hi.copy(), flo.copy(), fhi.copy()
    side = np.zeros(lo.size, dtype=np.int8)
    act = active & (hi > lo)
    for _ in range(100):
        if not act.any():
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            x = hi - fhi * (hi - lo) / (fhi - flo)
        mid = 0.5 * (lo + hi)
        bad = ~np.isfinite(x) | (x <= lo) | (x >= hi)
        x = np.where(bad, mid, x)
        fx = np.where(act, fun(np.where(act, x, lo)), 0.0)
        neg = act & (fx <= 0)
        pos = act & ~neg
        hi, fhi = np.where(neg, x, hi), np.where(neg, fx, fhi)
        lo, flo = np.where(pos, x, lo), np.where(pos, fx, flo)
        flo = np.where(neg & (side == -1), 0.5 * flo, flo)  # Illinois: halve the stale end
        fhi = np.where(pos & (side == 1), 0.5 * fhi, fhi)
        side = np.where(neg, -1, np.where(pos, 1, side)).astype(np.int8)
        act &= (hi - lo) > 4 * np.spacing(np.maximum(np.abs(hi), 1e-300))
    return hi


def _padded_held(prob: Problem, status: Status) -> tuple[Index, Array]:
    """Held points (R, h) padded with -1 and the rows of pinv(X_K) (R, h, D)."""
    geos, inv = prob.held.sets(status == 0)  # one cache lookup per held set
    h = max([g.idx.size for g in geos])
    Kidx = np.full((len(geos), h), -1, dtype=np.int64)
    Pinv = np.zeros((len(geos), h, prob.Xr.shape[1]))
    for q, geo in enumerate(geos):
        Kidx[q, : geo.idx.size] = geo.idx
        Pinv[q, : geo.idx.size] = geo.pinv_rows
    return Kidx[inv], Pinv[inv]


def _lambdas(act: Array, Kidx: Index, Pinv: Array, r: Array, Xr: Array) -> Array:
    """Filippov coefficients (R, T, h) of R held states for residuals ``r`` (R, T, n)."""
    T = r.shape[1]
    rK = np.take_along_axis(r, np.maximum(Kidx, 0)[:, None, :].repeat(T, axis=1), axis=2)
    return _lambdas_of((act[:, None, :] * r) @ Xr, rK, Pinv)


def _lambdas_of(vA: Array, rK: Array, Pinv: Array) -> Array:
    r""":math:`\lambda_K = -(\tilde X_K^{+})^\top v_A / r_K`.

    ``vA`` (R, T, D): the active fields :math:`\sum_{i \text{ active}} r_i\tilde x_i`;
    ``rK`` (R, T, h): the residuals of the held points; ``Pinv`` (R, h, D): the rows of
    :math:`(\tilde X_K^{+})^\top`.
    """
    mu = -np.einsum("rtd,rhd->rth", vA, Pinv)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(mu / rK)


def _grid_fields(step: DenseStep, act: Array, s_end: float) -> Array:
    """Active fields (R, T, D) of R states at the times of the step's release grid.

    The grid is shared by all states.  With more states than dimensions they are one
    (R, n) @ (n, T D) product with the grid's cached terms; with few states (the cached
    terms would cost more than they save), one (R T, n) @ (n, D) product.
    """
    Xr = step.system.prob.Xr
    (R, n), D = act.shape, Xr.shape[1]
    if R > D:
        return (act @ step.grid_terms(s_end, _RELEASE_GRID)).reshape(R, -1, D)
    r_grid = step.residual_grid(s_end, _RELEASE_GRID)[1]
    T = r_grid.shape[0]
    return ((act[:, None, :] * r_grid[None, :, :]).reshape(R * T, n) @ Xr).reshape(R, T, D)


def _grid_margins(vA: Array, Kidx: Index, Pinv: Array, r_grid: Array) -> Array:
    """:func:`_margins` of R states with active fields ``vA`` (R, T, D) at the grid's
    times (``r_grid`` (T, n)): (R, T)."""
    rK = r_grid[:, np.maximum(Kidx, 0)].transpose(1, 0, 2)
    return _margin_of(_lambdas_of(vA, rK, Pinv), Kidx)


def _margins(act: Array, Kidx: Index, Pinv: Array, r: Array, Xr: Array) -> Array:
    """Distance of the Filippov coefficients to the ends of (0, 1): (R, T)."""
    return _margin_of(_lambdas(act, Kidx, Pinv, r, Xr), Kidx)


def _margin_of(lam: Array, Kidx: Index) -> Array:
    """Margins (R, T) of Filippov coefficients ``lam`` (R, T, h) (padding: inf)."""
    m = np.where(Kidx[:, None, :] >= 0, np.minimum(lam, 1 - lam), np.inf)
    m = np.where(np.isnan(m), -np.inf, m)
    return np.asarray(m.min(axis=2))


# ------------------------------------------------------------------ processing
def process(step: DenseStep, loc: Located,
            batch: EventBatch) -> tuple[Status, Array, NDArray[np.bool_]]:
    """Apply located events: new states, records, held projection, deferral terms.

    Returns the neurons' new states (N, n), their states (N, D1) after projection onto
    the boundaries they are held on, and the points each was resolved on (N, n).
    """
    prob = step.system.prob
    Xr = prob.Xr
    N = loc.idx.size
    rows = np.arange(N)
    r = prob.residual(step.f_at(step.x_of(loc.tau)))
    z = loc.z
    pre = z[:, 1:] @ Xr.T
    scale = np.maximum(np.linalg.norm(z[:, 1:], axis=1), loc.zscale)
    onb = (np.abs(pre) <= prob.tol.boundary * scale[:, None] * prob.xnorm) | (loc.status == 0)
    # back at an instant it already had an event at: a point on the other side than its
    # state says within the integration error is on that boundary too (else each such
    # point would be an event of its own at this instant, in turn)
    slack = np.where(loc.stuck > 0, prob.tol.slack(loc.stuck), 0.0)
    onb |= (loc.status * pre < 0) & (np.abs(pre) <= (slack * scale)[:, None] * prob.xnorm)
    crossed = loc.cause == CROSS
    onb[rows[crossed], loc.point[crossed]] = True
    E = _padded_rows(onb)
    valid = E >= 0
    rel = loc.cause == RELEASE
    hit = (E == loc.point[:, None]) & rel[:, None]
    pref = np.where(hit, loc.side[:, None], -1).astype(np.int8)
    st_E = np.take_along_axis(loc.status, np.maximum(E, 0), 1)
    v_old = neuron_fields(Xr, (loc.status == 1).astype(np.float64), r,
                          prob.held.rows(loc.status), prob.floor)
    cr = np.flatnonzero(crossed)
    if cr.size:
        arrive = _arrival(z[cr, 0], v_old[cr] @ Xr.T, E[cr], pref[cr])
        pref[cr] = np.where(st_E[cr] != 0, arrive, pref[cr])
    flip = loc.cause == FLIP
    ff = hit | (flip[:, None] & valid & (st_E == 0))
    active0 = ((loc.status == 1) & ~onb).astype(np.float64)
    new_e = resolve(Xr, prob.y, active0, E, z[:, 0], r, ff, pref)
    new = loc.status.copy()
    vr, vc = np.nonzero(valid)
    new[vr, E[vr, vc]] = new_e[vr, vc]
    _record(batch, loc, new, E, valid)
    held_new = prob.held.rows(new)
    z = _project_held(z, held_new)
    v_new = neuron_fields(Xr, (new == 1).astype(np.float64), r, held_new, prob.floor)
    batch.add_error(loc.tau, _jump(prob, z, (loc.status, v_old), (new, v_new), r, loc.tau))
    return new, z, onb


def _padded_rows(mask: NDArray[np.bool_]) -> Index:
    """The columns of each row's True entries in order, padded with -1: (N, max count).

    >>> _padded_rows(np.array([[False, True, True], [True, False, False]])).tolist()
    [[1, 2], [0, -1]]
    """
    r, c = np.nonzero(mask)  # row-major: by row, then column
    counts = np.bincount(r, minlength=mask.shape[0])
    out = np.full((mask.shape[0], int(counts.max(initial=0))), -1, dtype=np.int64)
    out[r, np.arange(r.size) - (np.cumsum(counts) - counts)[r]] = c
    return out


def _arrival(a: Array, vx: Array, E: Index, pref: NDArray[np.int8]) -> NDArray[np.int8]:
    r"""Side each boundary point of E is approached towards under the old state's field.

    The sign of :math:`\tfrac{d}{d\tau}\beta^\top\tilde x_j \propto a\,v^\top\tilde x_j`
    (``vx`` (N, n) = :math:`v^\top\tilde x_i` of the old field; ``pref`` where it is
    zero): the side a point goes on to when its normal velocity in the new state is
    exactly zero, which happens when every point the neuron was active on is on the
    boundary at once (:math:`b = 0` in one dimension), so its field vanishes there; the
    flow then goes on the way it arrived.
    """
    u_E = np.take_along_axis(a[:, None] * vx, np.maximum(E, 0), 1)
    return np.where(u_E > 0, 1, np.where(u_E < 0, -1, pref)).astype(np.int8)


def _record(batch: EventBatch, loc: Located, new: Status, E: Index,
            valid: NDArray[np.bool_]) -> None:
    vr, vc = np.nonzero(valid)
    pts = E[vr, vc]
    old = loc.status[vr, pts]
    nw = new[vr, pts]
    ch = old != nw
    vr, pts, old, nw = vr[ch], pts[ch], old[ch], nw[ch]
    tau, nid = loc.tau[vr], loc.idx[vr]
    for kind, mask in ((_SEND, old == 0), (_DEACT, old == 1), (_ACT, nw == 1),
                       (_SSTART, nw == 0)):
        batch.add_records(tau[mask], nid[mask], pts[mask], kind)


def _project_held(z: Array, held: HeldRows) -> Array:
    """Put held neurons exactly on their boundaries (``held``: their held rows)."""
    if held.rows.size:
        z = z.copy()
        z[:, 1:] = held.project(z[:, 1:])
    return z


def _jump(prob: Problem, z: Array, old: tuple[Status, Array], new: tuple[Status, Array],
          r: Array, tau: Array) -> Array:
    r"""Weights :math:`\sum_i |r_i|\,\lVert\tilde x_i\rVert\,|J_i|` of the events' jumps.

    A neuron's contribution to :math:`f_j` is :math:`a\,\beta^\top\tilde x_j` while active
    on j; its :math:`\tau`-derivative is
    :math:`(1+t)\big((\beta^\top v)(\beta^\top\tilde x_j) + a^2 v^\top\tilde x_j\big)`, and
    :math:`J_j` is its jump at the event.  Deferring it to the step end leaves
    :math:`\delta f_i = J_i (s - \tau_e)`, which changes every neuron's relative velocity
    by at most :math:`(1+t)\sum_i |\partial r_i/\partial f_i|\,\lVert\tilde x_i\rVert\,
    |\delta f_i|` with :math:`|\partial r_i/\partial f_i| \le |r_i|` for both losses: the
    weight is :math:`\sum_i |r_i|\,\lVert\tilde x_i\rVert\,|J_i|`.  ``old`` and ``new`` are
    the states (N, n) before and after the events, each with its fields (N, D).
    """
    Xr = prob.Xr
    out = []
    pre = z[:, 1:] @ Xr.T
    for st, v in (old, new):  # each state with its fields
        act = (st == 1).astype(np.float64)
        adot = np.einsum("nd,nd->n", z[:, 1:], v)
        out.append(act * (adot[:, None] * pre + (z[:, :1] ** 2) * (v @ Xr.T)))
    with np.errstate(over="ignore", invalid="ignore"):  # inf: a jump no step can defer
        J = np.abs(out[1] - out[0]) * np.exp(tau)[:, None]
        return as_error((J * np.abs(r)) @ prob.xnorm)
