r"""Activation states: their linear fields, sliding, and how a neuron on boundaries goes on.

Work in the data span: :math:`\tilde x_i = Q^\top x_i \in \mathbb R^D` with :math:`Q` an
orthonormal basis of :math:`\operatorname{span}\{x_i\}`, and the neuron
:math:`z_k = (a_k, \beta_k)`, :math:`\beta_k = Q^\top b_k`.  A neuron's *state* on point
:math:`i` is :math:`s_i = +1` (active, :math:`\beta^\top\tilde x_i > 0`), :math:`-1`
(inactive) or :math:`0` (held on the boundary :math:`\beta^\top \tilde x_i = 0`, sliding).
With residual weights :math:`r_i(t)` shared by all neurons, a neuron in state :math:`s`
follows the *linear* system

.. math::

    \dot a = \beta^\top v_s, \qquad \dot\beta = a\, v_s, \qquad
    v_s = P_K \sum_{i: s_i = +1} r_i \tilde x_i ,

where :math:`K = \{i: s_i = 0\}` is the held set and :math:`P_K = N_K N_K^\top` projects
onto the orthogonal complement of :math:`\operatorname{span}\{\tilde x_j : j\in K\}`
(:math:`N_K` an orthonormal basis of it; when the held points span the data space
:math:`N_K` is empty and the field is exactly zero).  For :math:`K=\{j\}` this is the
Filippov sliding field, the convex combination :math:`a(v_A + \lambda_j r_j \tilde x_j)`
of the fields on the two sides that is tangent to the boundary, with

.. math::

    \lambda_K = -\operatorname{diag}(r_K)^{-1} (\tilde X_K \tilde X_K^\top)^{+}
    \tilde X_K v_A .

Sliding is attracting (both one-sided fields push into the boundary) iff every
:math:`\lambda_j \in (0, 1)` and :math:`a\, r_j < 0`; since
:math:`\operatorname{sign} r_j = y_j`, the held points share one label and :math:`a` has
the sign :math:`-y_j`.  The field matrix
:math:`G_s = \begin{pmatrix} 0 & v_s^\top \ v_s & 0 \end{pmatrix}` lies in the Lie algebra
of :math:`O(1, D)`, so :math:`a^2 - \lVert\beta\rVert^2` is conserved.

:func:`resolve` decides how a neuron sitting on one or several boundaries goes on: which
of them hold it (sliding) and on which side of the others it continues, such that the
resulting field is consistent with every choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from reluflow.engine.data import unit_rows

__all__ = [
    "HeldCache",
    "HeldGeometry",
    "State",
    "correct_invariant",
    "fields",
    "is_dead",
    "lorentz_project",
    "resolve",
    "sliding_lambda",
    "unique_states",
]

Array = NDArray[np.float64]
Status = NDArray[np.int8]
State = tuple[int, ...]

_RANK_RTOL = 1e-12  # singular values below this share of the largest: rank deficient


def unique_states(status: Status) -> tuple[Status, NDArray[np.int64]]:
    """Distinct rows of ``status`` (N, n) and each row's index into them (no overflow).

    Rows are keyed by their base-3 code in int64 while :math:`3^n < 2^{62}` (and counted,
    without sorting, when :math:`3^n` is small), else by their bytes.

    Examples
    --------
    >>> st = np.array([[1, -1], [0, 1], [1, -1]], dtype=np.int8)
    >>> states, inv = unique_states(st)
    >>> bool(np.array_equal(states[inv], st)), states.shape[0]
    (True, 2)
    """
    N, n = status.shape
    if N == 0:
        return status[:0], np.zeros(0, dtype=np.int64)
    if n <= 39:
        code = (status.astype(np.int64) + 1) @ (3 ** np.arange(n, dtype=np.int64))
        if 3**n <= max(4 * N, 1 << 16):
            present = np.flatnonzero(np.bincount(code, minlength=3**n))
            lut = np.zeros(3**n, dtype=np.int64)
            lut[present] = np.arange(present.size)
            inv = lut[code]
            first = np.zeros(present.size, dtype=np.int64)
            first[inv[::-1]] = np.arange(N - 1, -1, -1)
            return status[first], inv
        _, first, inv = np.unique(code, return_index=True, return_inverse=True)
        return status[first], inv.astype(np.int64).ravel()
    first, inv = _unique_bytes(status)
    return status[first], inv


def _unique_bytes(rows: NDArray[np.generic]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First row of each distinct byte pattern of ``rows`` (N, k) and each row's index."""
    view = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * rows.itemsize)))
    _, first, inv = np.unique(view[:, 0], return_index=True, return_inverse=True)
    return first.astype(np.int64), inv.astype(np.int64).ravel()


def is_dead(status: Status) -> NDArray[np.bool_]:
    """Rows active on no point and held on none: zero field forever."""
    return np.all(status == -1, axis=-1)


@dataclass(frozen=True)
class HeldGeometry:
    """What a held set :math:`K` fixes: the span of its points and the sliding map."""

    idx: NDArray[np.int64]  # (h,) held points
    basis: Array  # (D, rank) orthonormal basis of span{x_j : j in K}
    full: bool  # the held points span the data space: the projector P_K is zero
    pinv_rows: Array  # (h, D): mu = -pinv_rows @ v_A,  lambda = mu / r_K
    label: float  # common label of the held points (0.0 if they disagree: never holds)

    @property
    def proj(self) -> Array:
        """:math:`P_K = I - U U^\top` (exactly zero when the held points span the space)."""
        D = self.basis.shape[0]
        if self.full:
            return np.zeros((D, D))
        return np.eye(D) - self.basis @ self.basis.T


@dataclass(frozen=True)
class HeldRows:
    """The rows of a batch of neurons that hold points, with their held-span bases."""

    rows: NDArray[np.int64]  # (N_h,)
    U: Array  # (N_h, D, h) bases, zero-padded to the largest rank
    full: NDArray[np.bool_]  # (N_h,) projector exactly zero

    def project(self, V: Array) -> Array:
        r"""``V`` (N, D) with the held rows replaced by :math:`P_K v = v - U U^\top v`."""
        if self.rows.size == 0:
            return V
        W = V[self.rows]
        W = W - (self.U @ (W[:, None, :] @ self.U).transpose(0, 2, 1))[:, :, 0]  # U (U^T w)
        W[self.full] = 0.0
        out = V.copy()
        out[self.rows] = W
        return out


@dataclass
class HeldCache:
    """Held geometries by held set, computed once per run."""

    Xr: Array
    y: Array
    _cache: dict[bytes, HeldGeometry] = field(default_factory=dict)

    def get(self, held_mask: NDArray[np.bool_]) -> HeldGeometry:
        return self._get(np.packbits(held_mask).tobytes(), held_mask)

    def _get(self, key: bytes, held_mask: NDArray[np.bool_]) -> HeldGeometry:
        geo = self._cache.get(key)
        if geo is None:
            geo = self._build(np.flatnonzero(held_mask))
            self._cache[key] = geo
        return geo

    def _build(self, idx: NDArray[np.int64]) -> HeldGeometry:
        r"""The held span and sliding map of ``idx``, on the points' directions.

        A boundary depends only on its point's direction :math:`u_j`: the span's rank is
        decided on the unit vectors (a point far smaller than the others keeps its
        boundary), and :math:`\mu_j = \tilde\mu_j/\lVert\tilde x_j\rVert` with
        :math:`\tilde\mu = -(U_K^{+})^\top v_A`.
        """
        D = self.Xr.shape[1]
        UK, norms = unit_rows(self.Xr[idx])
        _U, sv, Vt = np.linalg.svd(UK, full_matrices=False)
        rank = int(np.sum(sv > sv[0] * _RANK_RTOL)) if sv.size and sv[0] > 0 else 0
        labels = np.unique(self.y[idx])
        with np.errstate(over="ignore"):
            pinv_rows = np.divide(np.linalg.pinv(UK).T, norms[:, None],
                                  out=np.zeros((idx.size, D)), where=norms[:, None] > 0)
        return HeldGeometry(idx, np.ascontiguousarray(Vt[:rank].T), rank >= D, pinv_rows,
                            float(labels[0]) if labels.size == 1 else 0.0)

    def sets(self, held: NDArray[np.bool_]) -> tuple[list[HeldGeometry], NDArray[np.int64]]:
        """The distinct held sets among the rows of ``held`` (N, n), and each row's index."""
        packed = np.packbits(held, axis=1)  # the sets' keys: n / 8 bytes a row
        first, inv = _unique_bytes(packed)
        raw, w = packed[first].tobytes(), packed.shape[1]  # one bytes object, sliced
        cache = self._cache
        geos = [cache.get(raw[i : i + w]) for i in range(0, len(raw), w)]
        return [g if g is not None else self._get(raw[q * w : (q + 1) * w], held[first[q]])
                for q, g in enumerate(geos)], inv

    def rows(self, status: Status) -> HeldRows:
        """The rows of ``status`` that hold a point, with their geometry."""
        held = status == 0
        rows = np.flatnonzero(held.any(axis=1))
        D = self.Xr.shape[1]
        if rows.size == 0:
            return HeldRows(rows, np.zeros((0, D, 0)), np.zeros(0, dtype=bool))
        geos, inv = self.sets(held[rows])
        h = max([g.basis.shape[1] for g in geos])
        bases = np.zeros((len(geos), D, h))
        for q, g in enumerate(geos):
            bases[q, :, : g.basis.shape[1]] = g.basis
        full = np.array([g.full for g in geos], dtype=bool)
        return HeldRows(rows, bases[inv], full[inv])


def fields(Xr: Array, active: Array, r: Array, held: HeldRows,
           floor: Array | None = None) -> Array:
    r"""Fields :math:`v = P_K \sum_{i \text{ active}} r_i\tilde x_i` of N neurons, (N, D).

    ``active`` (N, n) 0/1, ``r`` (n,) or (N, n); ``held`` (from :meth:`HeldCache.rows`)
    projects the rows with held points.  With ``floor`` (n,), a field no larger than
    :math:`\sum_i |r_i|\,\text{floor}_i` over the active points (the rounding level of its
    terms) is exactly zero: a neuron at a stationary point does not drift by rounding
    multiplied by :math:`1 + t`.
    """
    if r.ndim == 1:  # one residual vector for all: no (N, n) product (active is 0/1)
        v = held.project(active @ (r[:, None] * Xr))
        bound = None if floor is None else active @ (np.abs(r) * floor)
    else:
        Ar = active * r
        v = held.project(Ar @ Xr)
        bound = None if floor is None else np.abs(Ar, out=Ar) @ floor
    if bound is not None:
        with np.errstate(over="ignore"):  # |v|^2 may overflow: then v is not small
            small = np.sqrt(np.einsum("nd,nd->n", v, v)) <= bound
        v[small] = 0.0
    return v


def sliding_lambda(geo: HeldGeometry, vA: Array, r: Array) -> Array:
    r"""Filippov coefficients :math:`\lambda_K` for fields ``vA`` (..., D), residuals (..., n)."""
    mu = -(vA @ geo.pinv_rows.T)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mu / r[..., geo.idx]


def resolve(Xr: Array, y: Array, active0: Array, E: NDArray[np.int64], a: Array, r: Array,
            force_free: NDArray[np.bool_] | None = None,
            prefer: NDArray[np.int8] | None = None) -> NDArray[np.int8]:
    r"""How N neurons on boundaries go on: new state (0 held, +1, -1) on each point of E.

    Parameters
    ----------
    Xr : (n, D) data; y : (n,) labels.
    active0 : (N, n) 0/1 active points *not* in E.
    E : (N, e) the points each neuron is on (padded with -1).
    a : (N,) output weights; r : (N, n) residuals at the neurons' times.
    force_free : (N, e), optional
        Points that may not hold: a sliding just ended there and the neuron leaves to the
        side given in ``prefer`` (the side the Filippov coefficient left (0, 1) towards).
    prefer : (N, e), optional
        Side of a point whose normal velocity is zero, and of the ``force_free`` points
        (+1/-1; default -1, the convention :math:`\sigma'(0) = 0`).

    Returns
    -------
    (N, e) int8 states of the points of E (0 on padding).

    Notes
    -----
    Start by holding every point of E whose label allows it (:math:`a r_j < 0`); release
    the point with the worst Filippov coefficient outside (0, 1) to the side it points to
    (:math:`\lambda \le 0`: inactive, :math:`\ge 1`: active) until the held set slides;
    then put every free point on the side its normal velocity
    :math:`a\,\tilde x_j^\top P_K v_A` under the resulting field leads to.  A free point
    whose side keeps flipping is attracting and is held if it may be.

    Examples
    --------
    A negative neuron on the boundary of :math:`e_1` (label +1) and active on
    :math:`x = (0.6, 0.8)` (label -1): both one-sided fields push into the boundary
    (:math:`\lambda = 0.6`), so it holds; a positive one crosses to the side its field
    points to.

    >>> Xr, y = np.array([[1.0, 0.0], [0.6, 0.8]]), np.array([1.0, -1.0])
    >>> r = np.array([[0.5, -0.5]])
    >>> resolve(Xr, y, np.array([[0.0, 1.0]]), np.array([[0]]), np.array([-1.0]), r)
    array([[0]], dtype=int8)
    >>> resolve(Xr, y, np.array([[0.0, 1.0]]), np.array([[0]]), np.array([1.0]), r)
    array([[-1]], dtype=int8)
    """
    N, e = E.shape
    valid = E >= 0
    Ei = np.where(valid, E, 0)
    XE = Xr[Ei] * valid[..., None]  # (N, e, D)
    UX, nX = unit_rows(Xr)  # directions (the held geometry's) and norms, gathered below
    UE, nE = UX[Ei] * valid[..., None], nX[Ei] * valid
    rE = np.take_along_axis(r, Ei, axis=1) * valid
    yE = y[Ei]
    ff = np.zeros((N, e), dtype=bool) if force_free is None else force_free
    pref = np.full((N, e), -1, dtype=np.int8) if prefer is None else prefer
    vA0 = (active0 * r) @ Xr
    held = valid & (a[:, None] * yE < 0) & ~ff
    side = np.where(valid & ~held, pref, 0).astype(np.int8)
    lam_side = np.zeros((N, e), dtype=np.int8)
    flips = np.zeros((N, e), dtype=np.int64)
    F, lam = np.zeros((N, Xr.shape[1])), np.zeros((N, e))
    stale = np.arange(N)  # rows whose held set or sides changed: their field is redone
    for _ in range(4 * e + 4):
        if stale.size:
            vA = vA0[stale] + np.einsum("ne,ned->nd", (side[stale] == 1) * rE[stale],
                                        XE[stale])
            F[stale], lam[stale] = _held_field(UE[stale], nE[stale], held[stale], vA,
                                               rE[stale])
        bad = held & ~((lam > 0) & (lam < 1))
        if bad.any():
            viol = np.where(bad, np.maximum(-lam, lam - 1.0), -np.inf)
            viol = np.where(np.isnan(viol) & bad, np.inf, viol)
            j = np.argmax(viol, axis=1)
            rows = stale = np.flatnonzero(bad.any(axis=1))
            held[rows, j[rows]] = False
            s = np.where(lam[rows, j[rows]] >= 1, 1, -1).astype(np.int8)
            side[rows, j[rows]] = s
            lam_side[rows, j[rows]] = s
            continue
        u = a[:, None] * np.einsum("ned,nd->ne", XE, F)
        free = valid & ~held & ~ff
        want = np.where(u > 0, 1, np.where(u < 0, -1, np.where(lam_side != 0, lam_side, pref)))
        wrong = free & (side != want)
        if not wrong.any():
            break
        flips += wrong
        rehold = wrong & (flips >= 2) & (a[:, None] * yE < 0)
        held |= rehold
        side = np.where(wrong & ~rehold, want, side).astype(np.int8)
        side[rehold] = 0
        stale = np.flatnonzero(wrong.any(axis=1))
    return np.where(held | ~valid, 0, side).astype(np.int8)


def _held_field(UE: Array, nE: Array, held: NDArray[np.bool_], vA: Array,
                rE: Array) -> tuple[Array, Array]:
    r"""Sliding field :math:`P_K v_A` and the Filippov coefficients of each neuron's held set.

    Solves :math:`G_K c = U_K v_A` (Gram matrix of the held points' directions
    :math:`u_j = \tilde x_j/\lVert\tilde x_j\rVert`, identity on the others; then
    :math:`\lambda_j = -c_j/(\lVert\tilde x_j\rVert r_j)`) by batched LU; rows whose
    system is singular or ill-conditioned (points of the held set linearly dependent) use
    the pseudo-inverse.  ``UE`` (N, e, D): the directions of each neuron's boundary
    points (zero rows on padding), ``nE`` (N, e) their norms.
    """
    F = vA.copy()
    lam = np.zeros(held.shape)
    rows = np.flatnonzero(held.any(axis=1))
    if rows.size == 0:
        return F, lam
    hk = held[rows]
    norms = nE[rows]  # on the directions ``UE``: tiny points keep their boundary
    XK = UE[rows] * hk[..., None]
    G = XK @ np.swapaxes(XK, 1, 2)
    e = held.shape[1]
    G[:, np.arange(e), np.arange(e)] += ~hk
    b = XK @ vA[rows, :, None]
    try:
        c = np.linalg.solve(G, b)[..., 0]
        gn = np.abs(G).sum(axis=(1, 2))
        bad = ~np.all(np.isfinite(c), axis=1) | (
            np.abs(c).sum(axis=1) * gn > 1e8 * (np.abs(b[..., 0]).sum(axis=1) + 1e-300)) | (
            hk.sum(axis=1) > UE.shape[2])  # more held points than dimensions: dependent
    except np.linalg.LinAlgError:
        c = np.zeros(b.shape[:2])
        bad = np.ones(rows.size, dtype=bool)
    if bad.any():
        Gb = G[bad]
        Gb[:, np.arange(e), np.arange(e)] -= ~hk[bad]
        c[bad] = (np.linalg.pinv(Gb) @ b[bad])[..., 0]
    c = np.where(hk, c, 0.0)
    F[rows] = vA[rows] - np.einsum("ri,rid->rd", c, XK)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lam[rows] = np.where(hk, -c / np.where(hk, norms * rE[rows], 1.0), 0.0)
    return F, lam


def lorentz_project(Phi: Array, iterations: int = 3) -> Array:
    r"""Pull propagators back onto :math:`O(1, D)`: :math:`\Phi^\top J \Phi = J`.

    Newton-type iteration :math:`\Phi \leftarrow \Phi\,(I - \tfrac12 J(\Phi^\top J\Phi - J))`,
    quadratically convergent near the group.
    """
    D1 = Phi.shape[-1]
    Jd = np.ones(D1)
    Jd[1:] = -1.0
    J = np.diag(Jd)
    eye = np.eye(D1)
    for _ in range(iterations):
        E = np.swapaxes(Phi, -1, -2) @ (Jd[:, None] * Phi)
        Phi = Phi @ (eye - 0.5 * (J @ (E - J)))
    return Phi


def correct_invariant(Z: Array, c: Array) -> Array:
    r"""Move each row :math:`z = (a, \beta)` to :math:`a^2 - \lVert\beta\rVert^2 = c` exactly.

    The move is :math:`z \leftarrow (a(1+\epsilon), \beta(1-\epsilon))`, :math:`\epsilon`
    from two Newton steps on the quadratic, of the size of the integration error (it keeps
    :math:`\beta` on every boundary it is held on).

    Examples
    --------
    >>> z = correct_invariant(np.array([[1.0, 0.6, 0.3]]), np.array([0.55]))
    >>> float(z[0, 0] ** 2 - z[0, 1] ** 2 - z[0, 2] ** 2)
    0.55
    """
    a = Z[:, 0]
    nb = np.einsum("kd,kd->k", Z[:, 1:], Z[:, 1:])
    N = a * a + nb
    ok = N > 0
    eps = np.zeros_like(a)
    for _ in range(2):
        cur = a * a * (1 + eps) ** 2 - nb * (1 - eps) ** 2
        slope = 2 * (a * a * (1 + eps) + nb * (1 - eps))
        eps = np.where(ok, eps + (c - cur) / np.where(ok, slope, 1.0), 0.0)
    out = Z.copy()
    out[:, 0] *= 1 + eps
    out[:, 1:] *= (1 - eps)[:, None]
    return out
