r"""Polynomials of a step: DOP853 dense output in monomial form, Bernstein bounds, roots.

scipy's DOP853 dense output on a step :math:`[t_0, t_0 + h]` is, with
:math:`x = (t - t_0)/h \in [0, 1]`,

.. math::

    y(x) = y_0 + x\big(F_0 + (1-x)\big(F_1 + x\big(F_2 + (1-x)\big(F_3 + x\big(F_4
    + (1-x)\big(F_5 + x F_6\big)\big)\big)\big)\big)\big),

a polynomial of degree 7 in :math:`x`.  :func:`monomial` rewrites it as
:math:`y(x) = \sum_{p=0}^{7} c_p x^p` (one fixed :math:`8\times 8` map of
:math:`(y_0, F_0, \dots, F_6)`), so that any linear function of the state, such as the
pre-activation :math:`\beta_k^\top\tilde x_i` of a neuron, is itself a polynomial whose
coefficients are a matrix product away.  On such polynomials this module offers:

* :func:`horner`: values at per-row points;
* :func:`bernstein_min`: the smallest Bernstein coefficient on :math:`[0, 1]`, a lower
  bound of the polynomial there (convex-hull property), which rules out roots at once;
* :func:`shift`: the coefficients on a sub-interval :math:`[x_0, x_0 + w]` (exact Taylor
  shift by Ruffini-Horner);
* :func:`deflate`: the polynomial divided by :math:`u` (or :math:`u^2`) when it vanishes
  at the interval start to rounding, so a root *at* the start (an event just handled)
  is never found again;
* :func:`first_root`: the first point where a polynomial that starts non-negative drops
  below :math:`-\text{tol}`, refined to a root by safeguarded Newton steps.
"""

from __future__ import annotations

from math import comb
from typing import Any

import numpy as np
from numpy.polynomial import polynomial as npoly
from numpy.typing import NDArray

__all__ = [
    "DEGREE",
    "bernstein",
    "bernstein_min",
    "deflate",
    "first_root",
    "horner",
    "monomial",
    "product",
    "shift",
]

Array = NDArray[np.float64]

#: Degree of DOP853's dense output polynomial.
DEGREE = 7

_GRID = 64  # bracketing grid of first_root
#: A polynomial value within this many roundings of its coefficients' size is a root:
#: Horner's rounding error is below :math:`2K\epsilon\sum_p|c_p|` on [0, 1] (K = 8).
_ROOT_ROUNDINGS = 16
_VGRID = np.linspace(0.0, 1.0, _GRID + 1)[None, :] ** np.arange(2 * DEGREE + 1)[:, None]


def _monomial_map() -> Array:
    """The (8, 8) matrix T with c = T @ (y0, F0, ..., F6) (scipy's Horner-like form)."""
    T = np.zeros((DEGREE + 1, DEGREE + 1))
    for j in range(DEGREE + 1):
        e = np.zeros(DEGREE + 1)
        e[j] = 1.0
        acc: NDArray[np.floating[Any]] = np.zeros(1)
        for i, f in enumerate(e[:0:-1]):  # F6, F5, ..., F0 as in Dop853DenseOutput
            acc = npoly.polyadd(acc, [f])
            acc = npoly.polymul(acc, [0.0, 1.0] if i % 2 == 0 else [1.0, -1.0])
        acc = npoly.polyadd(acc, [e[0]])
        T[: acc.size, j] = acc
    return T


_T = _monomial_map()


def _bernstein_map(k: int) -> Array:
    """(k, k) matrix from monomial to Bernstein coefficients of degree k - 1 on [0, 1]."""
    n = k - 1
    M = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            M[i, j] = comb(i, j) / comb(n, j)
    return M


_BERN = {k: _bernstein_map(k) for k in range(1, 2 * DEGREE + 2)}


def monomial(dense: Any) -> Array:
    r"""Monomial coefficients of a DOP853 dense output, shape ``(8, n)``.

    ``dense`` is a :class:`scipy.integrate.DenseOutput` of :class:`scipy.integrate.DOP853`
    (attributes ``y_old`` and ``F``); row ``p`` holds :math:`c_p` with
    :math:`y(x) = \sum_p c_p x^p`, :math:`x = (t - t_{old})/h`.

    Examples
    --------
    >>> from scipy.integrate import solve_ivp
    >>> sol = solve_ivp(lambda t, y: -y, (0.0, 1.0), [1.0], method="DOP853",
    ...                 dense_output=True).sol.interpolants[0]
    >>> c = monomial(sol)
    >>> bool(np.isclose(horner(c[:, 0], np.array(0.5)), sol(sol.t_min + 0.5 * sol.h)[0]))
    True
    """
    return monomial_of(dense.y_old, np.asarray(dense.F))


def monomial_of(y_old: Array, F: Array) -> Array:
    """:func:`monomial` from the dense output's start ``y_old`` (n,) and its ``F`` (7, n)."""
    return np.asarray(_T @ np.vstack([y_old[None, :], F]))


def horner(coef: Array, x: Array | float) -> Array:
    r"""Values :math:`\sum_p c_p x^p`; ``coef`` has the powers on its *first* axis.

    ``coef`` (K, ...) and ``x`` broadcast against ``coef[0]``.

    Examples
    --------
    >>> horner(np.array([1.0, -3.0, 2.0]), np.array([0.0, 0.75, 1.0]))  # 1 - 3x + 2x^2
    array([ 1.   , -0.125,  0.   ])
    """
    out = coef[-1] * np.ones_like(x)
    for c in coef[-2::-1]:
        out = out * x + c
    return np.asarray(out)


def product(ca: Array, cb: Array) -> Array:
    """Coefficients of the product of two polynomials (powers on the first axis)."""
    ka, kb = ca.shape[0], cb.shape[0]
    out = np.zeros((ka + kb - 1, *np.broadcast_shapes(ca.shape[1:], cb.shape[1:])))
    for i in range(ka):
        out[i : i + kb] += ca[i] * cb
    return out


def bernstein(coef: Array) -> Array:
    """Bernstein coefficients on [0, 1] of polynomials with powers on the first axis."""
    k = coef.shape[0]
    return np.asarray((_BERN[k] @ coef.reshape(k, -1)).reshape(coef.shape))


def bernstein_min(coef: Array) -> Array:
    r"""Smallest Bernstein coefficient on :math:`[0, 1]` (powers on the first axis).

    A lower bound of the polynomial on the interval: :math:`p \ge` ``bernstein_min``.

    Examples
    --------
    >>> c = np.array([1.0, -3.0, 2.0])  # min on [0, 1] is -1/8 at x = 3/4
    >>> float(bernstein_min(c[:, None])[0])  # Bernstein coefficients 1, -1/2, 0
    -0.5
    """
    k = coef.shape[0]
    flat = coef.reshape(k, -1)
    return np.asarray((_BERN[k] @ flat).min(axis=0).reshape(coef.shape[1:]))


def shift(coef: Array, x0: Array, w: Array) -> Array:
    r"""Coefficients in :math:`u` of :math:`p(x_0 + w u)`; powers on the *last* axis.

    ``coef`` (P, K), ``x0`` and ``w`` (P,).  Exact Taylor shift (Ruffini-Horner), then
    scaling by :math:`w^p`.

    Examples
    --------
    >>> shift(np.array([[0.0, 0.0, 1.0]]), np.array([1.0]), np.array([2.0]))  # (1 + 2u)^2
    array([[1., 4., 4.]])
    """
    c = np.array(coef, dtype=np.float64, copy=True)
    k = c.shape[1]
    for i in range(k - 1):
        for j in range(k - 2, i - 1, -1):
            c[:, j] += x0 * c[:, j + 1]
    return c * (w[:, None] ** np.arange(k))


def deflate(coef: Array, tol: Array, force: NDArray[np.bool_] | None = None) -> Array:
    r"""Divide by :math:`u` (twice at most) where the polynomial vanishes at :math:`u = 0`.

    ``coef`` (P, K), powers on the last axis.  Where :math:`|c_0| \le` tol, or ``force``
    says the function is zero there (an event was just handled on it), the polynomial is
    replaced by :math:`(p(u) - c_0)/u`, and again if then :math:`|c_1| \le` tol: a function
    that sits on zero at :math:`u = 0` keeps only its behaviour after it, so its sign
    right after the start decides whether there is an event, never rounding at the start.
    """
    c = np.array(coef, dtype=np.float64, copy=True)
    small = np.abs(c[:, 0]) <= tol
    if force is not None:
        small |= force
    for _ in range(2):
        if not small.any():
            break
        c[small, :-1] = c[small, 1:]
        c[small, -1] = 0.0
        small = small & (np.abs(c[:, 0]) <= tol)
    return c


def first_root(coef: Array, tol: Array, group: NDArray[np.int64] | None = None) -> Array:
    r"""First :math:`u \in [0, 1]` where :math:`p` crosses from :math:`\ge 0` to :math:`< 0`.

    ``coef`` (P, K), powers on the last axis; ``tol`` (P,).  A crossing counts only if
    :math:`p` drops below :math:`-\text{tol}` (rounding never makes an event); it is
    bracketed on a grid of 64 cells and refined to the root by Newton steps kept inside
    the bracket, until the bracket is a few ulps wide or :math:`|p|` is within
    ``_ROOT_ROUNDINGS`` roundings of :math:`\sum_p |c_p|` (the evaluation cannot tell it
    from zero; a tangential crossing would otherwise take one Newton step per bit).
    Returns ``inf`` where there is no crossing.

    With ``group`` (P,) (non-negative ints), only the earliest root of each group is
    wanted: a row whose bracket starts after the cell following its group's earliest
    bracket is not refined and returned as ``inf`` (a root in cell :math:`j` lies in
    :math:`[u_{j-1}, u_j]`, so such a row's root is strictly later than the group's
    first one; the earliest root of each group, ties included, is unchanged).

    Examples
    --------
    >>> c = np.array([[0.25, 0.0, -1.0]])     # 1/4 - u^2: root at u = 1/2
    >>> first_root(c, np.zeros(1))
    array([0.5])
    """
    P, k = coef.shape
    grid = np.linspace(0.0, 1.0, _GRID + 1)
    vals = coef @ _VGRID[:k]  # (P, G+1): values on the grid, one matrix product
    neg = vals < -tol[:, None]
    first = np.argmax(neg, axis=1)  # first negative grid value (0 where none: checked)
    out = np.full(P, np.inf)
    rows = np.flatnonzero(neg[np.arange(P), first])
    if rows.size == 0:
        return out
    first = first[rows]
    if group is not None:
        g = group[rows]
        jmin = np.full(int(g.max()) + 1, _GRID + 1)
        np.minimum.at(jmin, g, first)
        near = first <= jmin[g] + 1
        rows, first = rows[near], first[near]
    C = coef[rows].T  # (K, R)
    xb = grid[first]
    xa = grid[np.maximum(first - 1, 0)]
    fa = vals[rows, np.maximum(first - 1, 0)]
    fb = vals[rows, first]
    at_start = (first == 0) | (fa < 0)
    dC = C[1:] * np.arange(1, k)[:, None]
    zero = _ROOT_ROUNDINGS * np.finfo(np.float64).eps * np.abs(C).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(fa - fb > 0, xa + fa * (xb - xa) / (fa - fb), xb)
    x = np.clip(x, xa, xb)
    act = np.flatnonzero(~at_start)
    for _ in range(100):
        if act.size == 0:
            break
        xa_, xb_, x_ = xa[act], xb[act], x[act]
        Ca = C[:, act]
        fx = horner(Ca, x_)
        below = fx < 0
        xb_ = np.where(below, x_, xb_)
        xa_ = np.where(below, xa_, x_)
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = x_ - fx / horner(dC[:, act], x_) if k > 1 else np.full_like(x_, np.nan)
        inside = np.isfinite(xn) & (xn > xa_) & (xn < xb_)
        xn = np.where(inside, xn, 0.5 * (xa_ + xb_))
        at_root = np.abs(fx) <= zero[act]
        xn = np.where(at_root, x_, xn)
        xa[act], xb[act], x[act] = xa_, xb_, xn
        done = (np.abs(xn - x_) <= 4e-16) | (xb_ - xa_ <= 4e-16) | at_root
        act = act[~done]
    out[rows] = np.where(at_start, np.where(first == 0, 0.0, xa), x)
    return out
