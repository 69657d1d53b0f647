r"""The coupled system of one step: propagators for populous states, neurons for the rest.

All neurons interact only through the outputs :math:`f(x_i)` (hence the residuals
:math:`r_i`).  Given those, a neuron in state :math:`s` obeys the linear system
:math:`dz/d\tau = (1+t)\,G_s(r)\,z` of :mod:`reluflow.engine.groups`, in
:math:`\tau = \log(1+t)`.  One step integrates, with one DOP853 solve:

* for every state held by at least ``D + 1`` neurons, its propagator
  :math:`\Phi_s \in \mathbb R^{(1+D)\times(1+D)}` (:math:`\Phi_s(\tau_0) = I`), closed
  through the second moment :math:`S_s = \sum_{k\in s} z_k z_k^\top`:
  :math:`f_s(x_i) = [\Phi_s S_s \Phi_s^\top]_{0,1:}\tilde x_i`;
* every other neuron directly, :math:`z_k \in \mathbb R^{1+D}`.

A propagator costs :math:`(1+D)^2` numbers however many neurons share it, a direct
neuron :math:`1+D`: the split keeps the system small both when a few states carry many
neurons (two points) and when almost every neuron has its own state (general data).
The error of a step is measured per component relative to the neuron's (or the
propagator's) own size, in the max norm (:class:`MaxNormDOP853`), so ``rtol`` bounds
every neuron's local error, not an average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.integrate import DOP853
from scipy.special import expit

from reluflow.engine import dense as dp
from reluflow.engine.data import unit_rows
from reluflow.engine.groups import HeldCache, HeldRows, fields, lorentz_project, unique_states
from reluflow.engine.tolerances import Tolerances

__all__ = ["DenseStep", "MaxNormDOP853", "Problem", "System", "Unresolvable", "dop853_once",
           "initial_step", "integrate_step"]

Array = NDArray[np.float64]
Status = NDArray[np.int8]

_CHUNK = 8192  # neurons per block in O(m n) passes (bounds temporary memory)
_POWERS15 = np.arange(15)  # powers of the output polynomial (degree 14)


@dataclass(frozen=True)
class Problem:
    """The fixed data of a run, in the data span."""

    Xr: Array  # (n, D)
    y: Array  # (n,)
    w: Array  # (n,) weights
    loss: str
    tol: Tolerances
    held: HeldCache
    xnorm: Array = field(init=False)
    floor: Array = field(init=False)  # rounding level of a field term, per point
    wy: Array = field(init=False)  # w * y

    def __post_init__(self) -> None:
        object.__setattr__(self, "xnorm", unit_rows(self.Xr)[1])  # no underflow
        object.__setattr__(self, "floor", self.tol.rounding_field * self.xnorm)
        object.__setattr__(self, "wy", self.w * self.y)

    @property
    def D1(self) -> int:
        return int(self.Xr.shape[1]) + 1

    def residual(self, f: Array) -> Array:
        r"""Residual weights :math:`r_i = w_i y_i (-\ell')(y_i f_i)` for outputs (..., n)."""
        g = np.negative(self.y * f)  # in place from here: one temporary
        with np.errstate(over="ignore", invalid="ignore"):
            if self.loss == "exp":
                np.exp(g, out=g)
            else:
                expit(g, out=g)
        g *= self.wy
        return g

    def outputs(self, Z: Array, status: Status) -> Array:
        r""":math:`f(x_i) = \sum_k a_k \beta_k^\top\tilde x_i` over neurons active on i."""
        f = np.zeros(self.Xr.shape[0])
        for lo in range(0, Z.shape[0], _CHUNK):
            Zc, Sc = Z[lo : lo + _CHUNK], status[lo : lo + _CHUNK]
            f += ((Sc == 1) * (Zc[:, 1:] @ self.Xr.T)).T @ Zc[:, 0]
        return f


class MaxNormDOP853(DOP853):
    r"""DOP853 whose error norm is the max over components (not the RMS).

    Per component it is Hairer's combined estimate
    :math:`h\,e_5^2/\sqrt{e_5^2 + 0.01 e_3^2}`; a non-finite stage rejects the step.
    After each step ``hlambda`` estimates :math:`h\lVert J\rVert` from the last two
    stages (Hairer's stiffness test).

    Examples
    --------
    >>> sol = MaxNormDOP853(lambda t, y: -y, 0.0, np.array([1.0, 2.0]), 1.0, rtol=1e-10,
    ...                     atol=1e-12)
    >>> while sol.status == "running":
    ...     _ = sol.step()
    >>> bool(np.allclose(sol.y, [np.exp(-1), 2 * np.exp(-1)], rtol=1e-9))
    True
    """

    hlambda = 0.0

    def _estimate_error_norm(self, K: Array, h: float, scale: Array) -> float:
        return _max_error_norm(K, h, scale)

    def _step_impl(self) -> tuple[bool, str | None]:
        ok, msg = super()._step_impl()
        if ok:
            h = self.h_previous
            y11 = self.y_old + h * (self.K[:11].T @ self.A[11, :11])
            den = np.linalg.norm(self.y - y11)
            num = np.linalg.norm(self.K[12] - self.K[11])
            self.hlambda = float(abs(h) * num / den) if den > 0 else 0.0
        return ok, msg


def _max_error_norm(K: Array, h: float, scale: Array) -> float:
    """:class:`MaxNormDOP853`'s error norm of a step with stages ``K`` (13, n)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err5 = np.abs(K.T @ DOP853.E5) / scale
        err3 = np.abs(K.T @ DOP853.E3) / scale
        if not (np.all(np.isfinite(err5)) and np.all(np.isfinite(err3))):
            return math.inf  # an overflowing stage: reject, the step shrinks
        # e5^2 / sqrt(e5^2 + 0.01 e3^2) without squaring (no overflow for huge stages)
        ratio = err3 / np.where(err5 > 0, err5, 1.0)
        e = np.where(err5 > 0, err5 / np.sqrt(1.0 + 0.01 * ratio * ratio), 0.0)
    out = float(abs(h) * np.max(e)) if e.size else 0.0
    return out if math.isfinite(out) else math.inf


def dop853_once(fun: Any, y0: Array, rtol: float, atol: Array) -> Array | None:
    r"""One :class:`MaxNormDOP853` step over :math:`\sigma \in [0, 1]`, with its dense output.

    Returns the monomial coefficients (8, n) of the step's interpolant when the step
    meets the tolerances (error norm below 1), else None: the caller then lets the
    solver shorten its steps.  The stages, the acceptance test and the interpolant are
    scipy's own operations, so the numbers are bitwise those of
    ``MaxNormDOP853(fun, 0, y0, 1, rtol=rtol, atol=atol, first_step=1)`` whose first
    step is accepted, without the solver's per-step bookkeeping (a catch-up is usually
    one step).

    Examples
    --------
    >>> c = dop853_once(lambda t, y: -y, np.array([1.0]), 1e-6, np.array([1e-6]))
    >>> bool(abs(dp.horner(c[:, 0], 1.0) - np.exp(-1.0)) < 1e-6)
    True
    >>> dop853_once(lambda t, y: -40 * y, np.array([1.0]), 1e-6, np.array([1e-6])) is None
    True
    """
    S = DOP853
    K = np.empty((S.n_stages + 1 + S.C_EXTRA.size, y0.size))
    K[0] = f0 = fun(0.0, y0)
    for s, (a, c) in enumerate(zip(S.A[1:], S.C[1:], strict=True), start=1):
        K[s] = fun(c, y0 + np.dot(K[:s].T, a[:s]) * 1.0)
    y1 = y0 + 1.0 * np.dot(K[: S.n_stages].T, S.B)
    K[S.n_stages] = f1 = fun(1.0, y1)
    scale = atol + np.maximum(np.abs(y0), np.abs(y1)) * rtol
    if not _max_error_norm(K[: S.n_stages + 1], 1.0, scale) < 1:
        return None
    for s, (a, c) in enumerate(zip(S.A_EXTRA, S.C_EXTRA, strict=True), start=S.n_stages + 1):
        K[s] = fun(0.0 + c * 1.0, y0 + np.dot(K[:s].T, a[:s]) * 1.0)
    F = np.empty((7, y0.size))
    dy = y1 - y0
    F[0] = dy
    F[1] = 1.0 * f0 - dy
    F[2] = 2 * dy - 1.0 * (f1 + f0)
    F[3:] = 1.0 * np.dot(S.D, K)
    return dp.monomial_of(y0, F)


@dataclass
class System:
    """The neurons integrated in one step, split into propagated groups and direct ones."""

    prob: Problem
    g_status: Status  # (gp, n) states with propagators
    g_members: list[NDArray[np.int64]]
    S: Array  # (gp, D1, D1) second moments at the step start
    d_idx: NDArray[np.int64]  # direct neurons
    d_status: Status  # (md, n)
    Zd0: Array  # (md, D1)
    direct_pos: NDArray[np.int64]  # (m,) index in d_idx, -1 if propagated or not live
    group_of: NDArray[np.int64]  # (m,) propagated group, -1 if direct or not live
    g_keys: NDArray[Any] = field(init=False)
    _gh: HeldRows = field(init=False)
    _dh: HeldRows = field(init=False)

    def __post_init__(self) -> None:
        self.g_keys = state_keys(self.g_status)
        self._key_order = np.argsort(self.g_keys)
        self._gh = self.prob.held.rows(self.g_status)
        self._dh = self.prob.held.rows(self.d_status)
        self.g_active = (self.g_status == 1).astype(np.float64)
        self.d_active = (self.d_status == 1).astype(np.float64)

    @classmethod
    def build(cls, prob: Problem, Z: Array, status: Status,
              alive: NDArray[np.int64]) -> System:
        """Split the live neurons by state; populous states get a propagator."""
        states, inv = unique_states(status[alive])
        counts = np.bincount(inv, minlength=states.shape[0])
        prop = counts > prob.D1
        members = _members(alive, inv, counts, np.flatnonzero(prop))
        S = np.stack([Z[mq].T @ Z[mq] for mq in members]) if members else \
            np.zeros((0, prob.D1, prob.D1))
        d_idx = alive[~prop[inv]]
        m = Z.shape[0]
        direct_pos = np.full(m, -1, dtype=np.int64)
        direct_pos[d_idx] = np.arange(d_idx.size)
        group_of = np.full(m, -1, dtype=np.int64)
        for q, mq in enumerate(members):
            group_of[mq] = q
        return cls(prob, states[prop], members, S, d_idx, status[d_idx], Z[d_idx].copy(),
                   direct_pos, group_of)

    def lookup(self, keys: NDArray[Any]) -> NDArray[np.int64]:
        """Propagated group of each state key (-1: the state has no propagator)."""
        q = np.full(keys.size, -1, dtype=np.int64)
        if self.gp:
            sk = self.g_keys[self._key_order]
            pos = np.minimum(np.searchsorted(sk, keys), self.gp - 1)
            hit = sk[pos] == keys
            q[hit] = self._key_order[pos[hit]]
        return q

    @property
    def gp(self) -> int:
        return int(self.g_status.shape[0])

    @property
    def md(self) -> int:
        return int(self.d_idx.size)

    def y0(self) -> Array:
        D1 = self.prob.D1
        return np.concatenate([np.tile(np.eye(D1), (self.gp, 1, 1)).ravel(), self.Zd0.ravel()])

    def atol(self) -> Array:
        """Absolute tolerances: ``rtol`` for propagators, ``rtol * |z_k|`` for direct neurons."""
        rt = self.prob.tol.rtol
        D1 = self.prob.D1
        nz = np.linalg.norm(self.Zd0, axis=1)
        return np.concatenate([np.full(self.gp * D1 * D1, rt), np.repeat(rt * nz, D1)])

    def split(self, yv: Array) -> tuple[Array, Array]:
        D1 = self.prob.D1
        k = self.gp * D1 * D1
        return yv[:k].reshape(self.gp, D1, D1), yv[k:].reshape(self.md, D1)

    def rhs(self, s: float, yv: Array) -> Array:
        """Right-hand side in tau: (1+t) (G Phi for propagators, G z for neurons)."""
        Xr = self.prob.Xr
        Phi, Zd = self.split(yv)
        with np.errstate(over="ignore", invalid="ignore"):
            f = np.zeros(Xr.shape[0])
            if self.gp:
                wv = np.einsum("gi,gij,gkj->gk", Phi[:, 0, :], self.S, Phi)[:, 1:]
                f += np.sum(self.g_active * (wv @ Xr.T), axis=0)
            if self.md:
                f += (self.d_active * (Zd[:, 1:] @ Xr.T)).T @ Zd[:, 0]
            r = self.prob.residual(f)
            out = np.empty_like(yv)
            dPhi, dZ = self.split(out)
            if self.gp:
                V = fields(Xr, self.g_active, r, self._gh, self.prob.floor)
                dPhi[:, 0, :] = np.einsum("gd,gdj->gj", V, Phi[:, 1:, :])
                dPhi[:, 1:, :] = V[:, :, None] * Phi[:, None, 0, :]
            if self.md:
                Vd = fields(Xr, self.d_active, r, self._dh, self.prob.floor)
                dZ[:, 0] = np.einsum("kd,kd->k", Zd[:, 1:], Vd)
                dZ[:, 1:] = Zd[:, :1] * Vd
            return math.exp(s) * out

    def direct_fields(self, r: Array) -> Array:
        """Fields of the direct neurons for residuals ``r`` (n,): (md, D)."""
        return fields(self.prob.Xr, self.d_active, r, self._dh, self.prob.floor)

    def group_fields(self, r: Array) -> Array:
        """Fields of the propagated states for residuals ``r`` (n,): (gp, D)."""
        return fields(self.prob.Xr, self.g_active, r, self._gh, self.prob.floor)


def _members(alive: NDArray[np.int64], inv: NDArray[np.int64], counts: NDArray[np.int64],
             groups: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Neurons of each of ``groups`` (a scan per group when few, else one sort)."""
    if groups.size <= 16:
        return [alive[inv == q] for q in groups]
    order = np.argsort(inv, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [alive[order[bounds[q] : bounds[q + 1]]] for q in groups]


def state_keys(status: Status) -> NDArray[Any]:
    """One comparable bytes key per row of ``status`` (for lookups of whole states)."""
    n = status.shape[1]
    return np.ascontiguousarray((status + 2).astype(np.uint8)).view(f"S{n}")[:, 0]


@dataclass
class DenseStep:
    r"""One accepted DOP853 step of a :class:`System` and its dense polynomials.

    ``coef`` (8, ny) are the monomial coefficients of the state in
    :math:`x = (\tau - s_0)/h`.
    """

    system: System
    s0: float
    s1: float
    coef: Array
    h_next: float
    hlambda: float
    nfev: int
    dense: Any = None  # scipy's own DenseOutput of the step (the reference for coef)
    _f: Array | None = None
    _grids: dict[tuple[float, int], tuple[Array, Array]] = field(default_factory=dict)
    _terms: dict[tuple[float, int], Array] = field(default_factory=dict)
    _drifts: dict[float, tuple[Array, Array]] = field(default_factory=dict)

    @property
    def h(self) -> float:
        return self.s1 - self.s0

    def x_of(self, s: Array | float) -> Array:
        return np.asarray((np.asarray(s) - self.s0) / self.h)

    def phi_coef(self) -> Array:
        """(8, gp, D1, D1) coefficients of the propagators."""
        D1 = self.system.prob.D1
        k = self.system.gp * D1 * D1
        return self.coef[:, :k].reshape(8, self.system.gp, D1, D1)

    def zd_coef(self) -> Array:
        """(8, md, D1) coefficients of the direct neurons."""
        D1 = self.system.prob.D1
        k = self.system.gp * D1 * D1
        return self.coef[:, k:].reshape(8, self.system.md, D1)

    def phi_at(self, q: NDArray[np.int64], x: Array) -> Array:
        """Propagator of group ``q[u]`` at ``x[u]``, Lorentz-projected: (N, D1, D1)."""
        C = self.phi_coef()[:, q]  # (8, N, D1, D1)
        return lorentz_project(dp.horner(C, x[:, None, None]))

    def f_coef(self) -> Array:
        """(15, n) coefficients of the outputs f(x_i) implied by the dense output."""
        if self._f is None:
            self._f = _output_poly(self)
        return self._f

    def drift(self, s_end: float) -> tuple[Array, Array]:
        r"""Residuals :math:`\bar r` at the step start, and bounds :math:`\delta_i` with
        :math:`|r_i/\bar r_i - 1| \le \delta_i` up to ``s_end`` (cached per ``s_end``).

        Over the step :math:`f_i(x) = \sum_p c_{p,i} x^p` moves from its start by at most
        :math:`\Delta f_i = \sum_{p\ge1}|c_{p,i}|\,x_{end}^p`, and both losses have
        :math:`|d\log r_i/df_i| \le 1`: :math:`\delta_i = e^{\Delta f_i} - 1`.
        """
        key = float(s_end)
        if key not in self._drifts:
            C = self.f_coef()
            x_end = float(self.x_of(s_end))
            with np.errstate(over="ignore", invalid="ignore"):
                delta = np.expm1(np.abs(C[1:]).T @ (x_end ** np.arange(1, C.shape[0])))
                self._drifts[key] = (self.system.prob.residual(C[0]), delta)
        return self._drifts[key]

    def residual_grid(self, s_end: float, cells: int) -> tuple[Array, Array]:
        """Times ``s0 + (s_end - s0) k / cells`` (k = 0..cells) and the residuals there.

        Cached per ``(s_end, cells)``: every pass of a step asks for the same grid.
        """
        key = (float(s_end), int(cells))
        if key not in self._grids:
            g = self.s0 + (s_end - self.s0) * np.linspace(0.0, 1.0, cells + 1)
            self._grids[key] = (g, self.system.prob.residual(self.f_at(self.x_of(g))))
        return self._grids[key]

    def grid_terms(self, s_end: float, cells: int) -> Array:
        r"""The grid's terms :math:`r_i(s_k)\tilde x_i` as an (n, T D) matrix (cached):
        the active fields of many states at every grid time are one product
        ``active @ terms``."""
        key = (float(s_end), int(cells))
        if key not in self._terms:
            r = self.residual_grid(s_end, cells)[1]
            Xr = self.system.prob.Xr
            self._terms[key] = (r.T[:, :, None] * Xr[:, None, :]).reshape(Xr.shape[0], -1)
        return self._terms[key]

    def f_at(self, x: Array) -> Array:
        """Outputs at points ``x`` (N,): (N, n), as one matrix product (powers x coefficients)."""
        xa = np.asarray(x, dtype=np.float64)
        V = xa[:, None] ** _POWERS15[None, :]
        return np.asarray(V @ self.f_coef())

    def frozen_at(self, idx: NDArray[np.int64], Z0: Array, x: float) -> Array:
        """Where neurons ``idx`` (starting at ``Z0``) are at ``x`` if no event moved them.

        The coupled system moves every neuron in its step-start state all along the step.
        """
        sysm = self.system
        out = np.empty_like(Z0)
        pos = sysm.direct_pos[idx]
        d = pos >= 0
        if d.any():
            out[d] = dp.horner(self.zd_coef()[:, pos[d]], x)
        g = ~d
        if g.any():  # one propagator per group, not per neuron
            groups, inv = np.unique(sysm.group_of[idx[g]], return_inverse=True)
            Phi = self.phi_at(groups, np.full(groups.size, x))
            out[g] = np.einsum("nij,nj->ni", Phi[inv.ravel()], Z0[g])
        return out


def _output_poly(step: DenseStep) -> Array:
    """Coefficients of f = sum over groups and direct neurons (products of degree-7 parts)."""
    sysm = step.system
    Xr = sysm.prob.Xr
    out = np.zeros((15, Xr.shape[0]))
    if sysm.gp:
        C = step.phi_coef()  # (8, g, D1, D1)
        B = np.einsum("pgi,gij->pgj", C[:, :, 0, :], sysm.S)
        W = np.zeros((15, sysm.gp, sysm.prob.D1))
        for i in range(8):
            W[i : i + 8] += np.einsum("gj,pgkj->pgk", B[i], C)
        out += np.einsum("pgd,nd,gn->pn", W[:, :, 1:], Xr, sysm.g_active)
    if sysm.md:
        Cz = step.zd_coef()
        for lo in range(0, sysm.md, _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            P = (Cz[:, sl, 1:] @ Xr.T) * sysm.d_active[sl]  # (8, k, n)
            M = np.einsum("ik,jkn->ijn", Cz[:, sl, 0], P)
            for i in range(8):
                out[i : i + 8] += M[i]
    return out


def initial_step(system: System, s0: float, s_end: float) -> float:
    r"""First step length in :math:`\tau`: Hairer's rule (as scipy's), in the max norm.

    :math:`h_0 = 0.01\,d_0/d_1`, :math:`d_0 = \max|y_0|/\text{sc}`,
    :math:`d_1 = \max|y'_0|/\text{sc}`; then :math:`h_1 = (0.01/\max(d_1, d_2))^{1/8}` with
    :math:`d_2` the change of :math:`y'` over :math:`h_0`; the step is
    :math:`\min(100 h_0, h_1, s_{end} - s_0)`.  The max norm does not overflow where
    scipy's root-mean-square does (a large start: fields near float64's range), which
    would give a zero first step.
    """
    rt = system.prob.tol.solver_rtol
    y0 = system.y0()
    scale = system.atol() + rt * np.abs(y0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f0 = system.rhs(s0, y0)
        d0 = float(np.max(np.abs(y0) / scale, initial=0.0))
        d1 = float(np.max(np.abs(f0) / scale, initial=0.0))
        h0 = 0.01 * d0 / d1 if d0 >= 1e-5 and 1e-5 <= d1 < math.inf else 1e-6
        h0 = min(h0, s_end - s0)
        f1 = system.rhs(s0 + h0, y0 + h0 * f0)
        d2 = float(np.max(np.abs(f1 - f0) / scale, initial=0.0)) / h0
        big = max(d1, d2)
        h1 = max(1e-6, 1e-3 * h0) if big <= 1e-15 else (0.01 / big) ** (1.0 / 8.0)
    h = min(100 * h0, h1, s_end - s0)
    return h if math.isfinite(h) and h > 0 else min(max(h0, 1e-6), s_end - s0)


class Unresolvable(FloatingPointError):
    r"""The flow at :math:`\tau` = ``tau`` needs steps below float64's spacing of
    :math:`\tau` there: it changes within :math:`\Delta t \approx 10^{-15}(1+t)`."""

    def __init__(self, tau: float) -> None:
        super().__init__(f"gradient_flow: the flow at t = {math.expm1(tau):.6g} changes on a "
                         "time scale below the float64 resolution of log(1 + t) there")
        self.tau = tau


def integrate_step(system: System, s0: float, s_end: float, h: float | None) -> DenseStep:
    r"""One accepted DOP853 step from ``s0`` toward ``s_end`` (first try ``h``).

    A step whose dense output is not finite (an extra stage of the interpolant
    overflowing after a violent step) is taken again four times shorter.  A step beyond
    DOP853's stability bound (:math:`h\lambda >` ``stiff_hlambda``) is taken again at the
    bound, and the next step is proposed no longer than the bound: beyond it the error
    estimate no longer controls the error (nor the interpolant, which locates the
    events).  The step's ``hlambda`` is the stiffness at the length the integrator asked
    for, so a stability-limited flow still counts as stiff.
    """
    prob = system.prob
    bound = prob.tol.stiff_hlambda
    if not h:
        h = initial_step(system, s0, s_end)
    asked = 0.0  # h lambda of the longest step the integrator asked for
    for _ in range(60):
        first = min(h, s_end - s0)
        solver = MaxNormDOP853(system.rhs, s0, system.y0(), s_end, rtol=prob.tol.solver_rtol,
                               atol=system.atol(), first_step=first)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            msg = solver.step()
            if solver.status == "failed":
                if "spacing" in str(msg):
                    raise Unresolvable(s0)
                raise FloatingPointError(
                    f"gradient_flow: the integrator failed at t = {math.expm1(s0):.6g}: {msg}")
            taken = float(solver.t) - s0
            hl = solver.hlambda
            shorter = taken * bound / hl if bound < hl < math.inf else 0.0
            if asked == 0.0 and s0 + shorter > s0:  # once: again at the bound
                asked = hl
                h = shorter
                continue
            dense = solver.dense_output()
            coef = dp.monomial(dense)
        if np.all(np.isfinite(coef)):
            h_next = float(solver.h_abs)
            lam = hl / taken if taken > 0 else 0.0  # |J| per unit of tau
            if 0.0 < lam < math.inf:
                asked = max(asked, lam * h_next)
                h_next = min(h_next, bound / lam)
            return DenseStep(system, s0, float(solver.t), coef, h_next, max(hl, asked),
                             int(solver.nfev), dense)
        h = 0.25 * (float(solver.t) - s0)
    raise FloatingPointError(f"gradient_flow: no finite step at t = {math.expm1(s0):.6g}")
