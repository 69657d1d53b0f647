r"""Measurements on a recorded :class:`~reluflow.Trajectory`.

Groups.  The *positive* group is the neurons with :math:`a_k > 0`, the *negative* group
those with :math:`a_k < 0`.  The mass of a neuron is :math:`a_k^2 + \lVert b_k\rVert^2`; a
neuron is *alive* when it is active (:math:`b_k^\top x_i > 0`) on at least one point and
*dead* otherwise (it then never moves again).  Directions are those of the projection of
:math:`b_k` onto the data plane (:func:`reluflow.analysis.geometry.plane_angles`).
These measurements are what :func:`reluflow.analysis.phases.detect_phases` and the
chapters compare with the predictions of :mod:`reluflow.analysis.theory`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.geometry import HALF_PI, mu, mu_angle, plane_angles, span_basis
from reluflow.analysis.theory.maxmargin import max_margin
from reluflow.analysis.theory.phase4 import final_directions
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "GroupStats",
    "check_trajectory",
    "condensation_rates",
    "effective_directions",
    "effective_directions_series",
    "fit_line",
    "group_stats",
    "invariant_drift_total",
    "jsonable",
    "max_margin_distance",
    "measured_regime",
    "neuron_mass",
    "normalized_margin",
    "simulated_fate",
    "sliding_growth_rates",
    "target_angles",
    "time_index",
    "wrap_angle",
]

Array = NDArray[np.float64]


def check_trajectory(traj: Any, data: Any, *, two_point: bool = True) -> tuple[Trajectory, Dataset]:
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    if data.X.shape != traj.data.X.shape or not np.allclose(data.X, traj.data.X):
        raise ValueError("data must be the data set the trajectory was trained on (traj.data)")
    if two_point and not isinstance(data, TwoPointData):
        raise ValueError(
            f"data must be a reluflow.TwoPointData for this measurement, got {type(data).__name__}"
        )
    if traj.t.size < 1:
        raise ValueError("traj must hold at least one recorded time")
    return traj, data


def time_index(traj: Trajectory, index: int) -> int:
    T = traj.t.size
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise ValueError(f"index must be an integer time index in [-{T}, {T - 1}], got {index!r}")
    if not -T <= int(index) < T:
        raise ValueError(f"index must be an integer time index in [-{T}, {T - 1}], got {index!r}")
    return int(index) % T


def neuron_mass(traj: Trajectory) -> Array:
    return np.asarray(traj.a**2 + np.einsum("tkd,tkd->tk", traj.B, traj.B))


def wrap_angle(x: Array | float) -> Array:
    return np.asarray(np.angle(np.exp(1j * np.asarray(x, dtype=np.float64))))


@dataclass(frozen=True)
class GroupStats:
    r"""Statistics of one sign group at one recorded time (see :func:`group_stats`).

    Attributes
    ----------
    sign : int
        +1 (:math:`a_k > 0`) or -1 (:math:`a_k < 0`).
    n : int
        Number of neurons in the group.
    counts : dict
        Activation-pattern counts: ``both`` (active on :math:`x_+` and :math:`x_-`),
        ``plus_only``, ``minus_only``, ``none`` (dead) and ``boundary`` (held on
        :math:`b^\top x_i = 0` for some :math:`i`, i.e. sliding; not counted elsewhere).
    alive, dead : int
        Neurons active on at least one point / on none.
    mass : float
        :math:`\sum_k a_k^2 + \lVert b_k\rVert^2` over the group.
    mass_active_plus, mass_active_minus : float
        Fraction of the group's mass active on :math:`x_+` / :math:`x_-` (pattern +1).
    mean_angle : float
        Plane angle of the mass-weighted mean unit direction of the alive neurons (rad).
    spread : float
        Mass-weighted RMS angle of the alive neurons about ``mean_angle`` (rad): the
        condensation index (0 = one direction).
    align_mu, align_x_minus_perp, align_x_plus_perp : float
        Cosine between the mean direction and :math:`\mu`, :math:`x_-^\perp`, :math:`x_+^\perp`.
    """

    sign: int
    n: int
    counts: dict[str, int]
    alive: int
    dead: int
    mass: float
    mass_active_plus: float
    mass_active_minus: float
    mean_angle: float
    spread: float
    align_mu: float
    align_x_minus_perp: float
    align_x_plus_perp: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (NaN becomes ``None``)."""
        return {k: jsonable(v) for k, v in asdict(self).items()}


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        xf = float(x)
        return xf if math.isfinite(xf) else None
    return x


def _mean_dir(phi: Array, w: Array) -> tuple[float, float]:
    """Mass-weighted mean angle and RMS angular spread about it (nan if no weight)."""
    tot = float(w.sum())
    if phi.size == 0 or not tot > 0:
        return math.nan, math.nan
    z = np.sum(w * np.exp(1j * phi)) / tot
    mean = float(np.angle(z))
    spread = float(np.sqrt(np.sum(w * wrap_angle(phi - mean) ** 2) / tot))
    return mean, spread


def group_stats(traj: Trajectory, data: TwoPointData, index: int = -1) -> dict[str, GroupStats]:
    """Statistics of the positive and negative groups at recorded time ``traj.t[index]``.

    Parameters
    ----------
    traj : Trajectory
        A run on ``data`` (statistics cover the recorded neurons).
    data : TwoPointData
        The two-point data set of the run.
    index : int
        Recorded time index (negative counts from the end).

    Returns
    -------
    dict
        ``{"positive": GroupStats, "negative": GroupStats}``.
    """
    traj, d = check_trajectory(traj, data)
    assert isinstance(d, TwoPointData)
    j = time_index(traj, index)
    a, B, pat = traj.a[j], traj.B[j], traj.pattern[j]
    M = a**2 + np.einsum("kd,kd->k", B, B)
    phi = plane_angles(B, d)
    refs = {
        "mu": mu_angle(d),
        "x_minus_perp": d.delta - HALF_PI,
        "x_plus_perp": HALF_PI,
    }
    out: dict[str, GroupStats] = {}
    for name, sgn in (("positive", 1), ("negative", -1)):
        g = (a > 0) if sgn > 0 else (a < 0)
        pg = pat[g]
        bnd = np.any(pg == 0, axis=1)
        ap, am = pg[:, 0] == 1, pg[:, 1] == 1
        counts = {
            "both": int(np.sum(~bnd & ap & am)),
            "plus_only": int(np.sum(~bnd & ap & ~am)),
            "minus_only": int(np.sum(~bnd & ~ap & am)),
            "none": int(np.sum(~bnd & ~ap & ~am)),
            "boundary": int(np.sum(bnd)),
        }
        alive = ap | am
        Mg = M[g]
        tot = float(Mg.sum())
        mean, spread = _mean_dir(phi[g][alive], Mg[alive])
        out[name] = GroupStats(
            sign=sgn, n=int(g.sum()), counts=counts, alive=int(alive.sum()),
            dead=int((~alive).sum()), mass=tot,
            mass_active_plus=float(Mg[ap].sum() / tot) if tot > 0 else math.nan,
            mass_active_minus=float(Mg[am].sum() / tot) if tot > 0 else math.nan,
            mean_angle=mean, spread=spread,
            align_mu=math.cos(mean - refs["mu"]),
            align_x_minus_perp=math.cos(mean - refs["x_minus_perp"]),
            align_x_plus_perp=math.cos(mean - refs["x_plus_perp"]),
        )
    return out


def effective_directions(traj: Trajectory, index: int = -1, tol: float = 0.05) -> float:
    r"""Mass-weighted effective number of neuron directions at ``traj.t[index]``.

    Alive neurons are grouped into clusters: same output sign and unit direction of
    :math:`b_k` (projected on the data span) within angle ``tol`` (rad) of the cluster's
    leader, leaders taken in order of decreasing mass (leader clustering).  With
    :math:`q_c` the clusters' mass fractions,

    .. math:: N_\mathrm{eff} = \exp\Big(-\sum_c q_c \log q_c\Big),

    so :math:`N_\mathrm{eff} = 1` when a single direction carries the network and 2 for two
    equal-mass directions (this book's condensation/complexity index).  Returns ``nan`` if
    no neuron is alive.
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    j = time_index(traj, index)
    return _effective_directions(traj, j, span_basis(traj.data.X), _direction_tol(tol))


def effective_directions_series(traj: Trajectory, tol: float = 0.05) -> Array:
    r""":func:`effective_directions` at every recorded time (``nan`` where none is alive).

    Examples
    --------
    >>> import reluflow as rf
    >>> traj = rf.gradient_flow(rf.init_network(10, 2, 1e-6, seed=0), rf.TwoPointData(0.3, 0.7),
    ...                         100.0)
    >>> neff = effective_directions_series(traj)
    >>> neff.shape == traj.t.shape, bool(neff[0] > neff[-1])
    (True, True)
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    Q = span_basis(traj.data.X)
    tl = _direction_tol(tol)
    return np.array([_effective_directions(traj, j, Q, tl) for j in range(traj.t.size)])


def _direction_tol(tol: Any) -> float:
    t_ = float(tol)
    if not (math.isfinite(t_) and 0 < t_ < math.pi):
        raise ValueError(f"tol must lie in the open interval (0, pi), got {tol!r}")
    return t_


def _effective_directions(traj: Trajectory, j: int, Q: Array, tol: float) -> float:
    a, B, pat = traj.a[j], traj.B[j], traj.pattern[j]
    alive = np.any(pat == 1, axis=1) & (a != 0)
    if not np.any(alive):
        return math.nan
    V = B[alive] @ Q
    nv = np.linalg.norm(V, axis=1)
    ok = nv > 0
    V = V[ok] / nv[ok, None]
    s = np.sign(a[alive][ok])
    M = (a**2 + np.einsum("kd,kd->k", B, B))[alive][ok]
    order = np.argsort(-M, kind="stable")
    cos_tol = math.cos(tol)
    label = np.full(V.shape[0], -1)
    cmass: list[float] = []
    for k in order:
        if label[k] >= 0:
            continue
        c = len(cmass)
        free = label < 0
        near = free & (s == s[k]) & (V @ V[k] >= cos_tol)
        label[near] = c
        cmass.append(float(M[near].sum()))
    q = np.asarray(cmass) / float(np.sum(cmass))
    q = q[q > 0]
    return float(np.exp(-np.sum(q * np.log(q))))


def normalized_margin(traj: Trajectory) -> Array:
    r""":math:`\min_i y_i f(x_i)/\lVert\theta\rVert^2` per recorded time (record all neurons)."""
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    return traj.normalized_margin()


def max_margin_distance(traj: Trajectory, data: Dataset, index: int = -1) -> float:
    r"""Mass-weighted mean angle (rad) between the alive neurons and the max-margin directions.

    Each alive neuron's direction (of :math:`b_k` projected on the data span) is compared
    with the nearest support direction of the same output sign of the max-margin solution:
    :func:`reluflow.analysis.theory.final_directions` for two-point data
    (:math:`x_-^\perp` for positive, :math:`x_+^\perp` for negative neurons), else
    :func:`reluflow.analysis.theory.max_margin`.  ``nan`` if no neuron is alive.
    """
    traj, d = check_trajectory(traj, data, two_point=False)
    j = time_index(traj, index)
    if isinstance(d, TwoPointData) and d.delta < 0.5 * math.pi:
        fd = final_directions(d)
        dirs = np.stack([fd["positive"], fd["negative"]])
        signs = np.array([1.0, -1.0])
    else:
        res = max_margin(d)
        dirs, signs = res.directions, res.signs
    a, B, pat = traj.a[j], traj.B[j], traj.pattern[j]
    alive = np.any(pat == 1, axis=1) & (a != 0)
    if not np.any(alive):
        return math.nan
    Q = span_basis(d.X)
    V = B[alive] @ Q
    V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
    Dq = dirs @ Q
    Dq = Dq / np.linalg.norm(Dq, axis=1, keepdims=True)
    ang = np.arccos(np.clip(V @ Dq.T, -1.0, 1.0))  # (k, K)
    same = np.sign(a[alive])[:, None] == signs[None, :]
    ang = np.where(same, ang, np.inf).min(axis=1)
    M = (a**2 + np.einsum("kd,kd->k", B, B))[alive]
    fin = np.isfinite(ang)
    if not np.any(fin):
        return math.nan
    return float(np.sum(M[fin] * ang[fin]) / np.sum(M[fin]))


def simulated_fate(
    traj: Trajectory, data: TwoPointData, cond_tol: float = 0.1
) -> NDArray[np.str_]:
    r"""Phase-I fate of every recorded neuron, read off the run (labels of ``theory.FATES``).

    * ``"dead"``: inactive on both points at the first recorded time (which must be
      :math:`t = 0`), or :math:`a_k = 0`;
    * ``"die"``: active at :math:`t = 0`, inactive on both points at the last recorded time;
    * ``"condense"``: alive at the end, and at some recorded time active on both points with
      its plane angle within ``cond_tol`` rad of :math:`\operatorname{sign}(a_k)\,\mu`;
    * ``"slide"``: every other neuron alive at the end.

    Compare with :func:`reluflow.analysis.theory.fate` (same labels).
    """
    traj, d = check_trajectory(traj, data)
    assert isinstance(d, TwoPointData)
    if traj.t[0] != 0.0:
        raise ValueError("traj must start at t = 0 (its first recorded time) to read fates")
    ct = float(cond_tol)
    if not (math.isfinite(ct) and 0 < ct < math.pi):
        raise ValueError(f"cond_tol must lie in the open interval (0, pi), got {cond_tol!r}")
    s = np.sign(traj.a[0])
    alive0 = np.any(traj.pattern[0] == 1, axis=1) & (s != 0)
    alive_end = np.any(traj.pattern[-1] == 1, axis=1)
    phi = plane_angles(traj.B, d)  # (T, m)
    target = np.where(s > 0, mu_angle(d), mu_angle(d) + math.pi)
    near = np.abs(wrap_angle(phi - target[None, :])) <= ct
    both = np.all(traj.pattern == 1, axis=2)
    cond = np.any(near & both, axis=0)
    out = np.where(cond, "condense", "slide").astype("<U8")
    out[~alive_end] = "die"
    out[~alive0] = "dead"
    return out


def target_angles(traj: Trajectory, data: TwoPointData) -> Array:
    r"""Angle (rad, in :math:`\mathbb R^d`) between each :math:`b_k(t)` and :math:`s_k\mu`.

    :math:`s_k = \operatorname{sign} a_k(0)`; computed as
    :math:`\psi = \operatorname{atan2}(\lVert b - (b^\top\hat m)\hat m\rVert,\ b^\top\hat m)`
    with :math:`\hat m = s_k\mu/\lVert\mu\rVert`, which stays accurate for tiny angles
    (unlike ``arccos``).  Compare with :func:`reluflow.analysis.theory.condensation_angle`.

    Returns
    -------
    ndarray, shape (T, m_rec)
        ``nan`` where :math:`b_k = 0` or :math:`a_k(0) = 0`.
    """
    traj, d = check_trajectory(traj, data)
    m = mu(d)
    nm = float(np.linalg.norm(m))
    if not nm > 0:
        raise ValueError("data has mu = 0 (p = 1/2 and delta = 0?): no target direction")
    s = np.sign(traj.a[0])
    tgt = s[:, None] * (m / nm)[None, :]  # (m, d)
    B = traj.B
    along = np.einsum("tkd,kd->tk", B, tgt)
    perp = np.linalg.norm(B - along[..., None] * tgt[None], axis=2)
    out = np.arctan2(perp, along)
    bad = (np.linalg.norm(B, axis=2) == 0) | (s == 0)[None, :]
    return np.asarray(np.where(bad, np.nan, out), dtype=np.float64)


def condensation_rates(
    traj: Trajectory,
    data: TwoPointData,
    *,
    f_tol: float = 1e-3,
    min_angle: float = 1e-6,
    min_samples: int = 5,
) -> Array:
    r"""Measured rate at which each neuron closes in on :math:`\operatorname{sign}(a_k)\mu`.

    For every recorded neuron, the least-squares slope :math:`-\hat\lambda_k` of
    :math:`\log\tan(\psi_k/2)` against :math:`t` (:math:`\psi_k` from
    :func:`target_angles`) over the longest run of consecutive recorded times at which
    the neuron is active on both points (pattern +1 on both), the outputs are small
    compared with the angle, :math:`\max_i|f(x_i)| \le` ``f_tol`` :math:`\cdot\,\psi_k`
    (the driving vector :math:`\sum_i r_i y_i x_i` differs from :math:`\mu` by
    :math:`O(|f|)`, which shifts the angle by that much), and :math:`\psi_k \ge`
    ``min_angle`` (below, rounding dominates).  This book's Phase-I derivation
    (:func:`reluflow.analysis.theory.condensation_angle`) predicts
    :math:`\hat\lambda_k = \lVert\mu\rVert` for every balanced neuron.

    Returns
    -------
    ndarray, shape (m_rec,)
        :math:`\hat\lambda_k`, ``nan`` for neurons with fewer than ``min_samples`` such
        consecutive samples.
    """
    traj, d = check_trajectory(traj, data)
    ft = float(f_tol)
    if not (math.isfinite(ft) and ft > 0):
        raise ValueError(f"f_tol must be a finite number > 0, got {f_tol!r}")
    ma = float(min_angle)
    if not (math.isfinite(ma) and 0 < ma < math.pi):
        raise ValueError(f"min_angle must lie in the open interval (0, pi), got {min_angle!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int | np.integer) \
            or min_samples < 2:
        raise ValueError(f"min_samples must be an integer >= 2, got {min_samples!r}")
    assert isinstance(d, TwoPointData)
    psi = target_angles(traj, d)
    fmax = np.max(np.abs(traj.f), axis=1)
    with np.errstate(invalid="ignore"):
        ok = (np.all(traj.pattern == 1, axis=2) & (fmax[:, None] <= ft * psi) & (psi >= ma)
              & np.isfinite(psi))
    out = np.full(traj.m, np.nan)
    for k in range(traj.m):
        a, b = _longest_run(ok[:, k])
        if b - a < min_samples:
            continue
        y = np.log(np.tan(0.5 * psi[a:b, k]))
        out[k] = -float(np.polyfit(traj.t[a:b], y, 1)[0])
    return out


def sliding_growth_rates(
    traj: Trajectory, data: TwoPointData, *, f_tol: float = 1e-3, min_samples: int = 5
) -> Array:
    r"""Measured growth rate of each neuron while it slides on a data boundary, :math:`f\approx 0`.

    For every recorded neuron, the least-squares slope of :math:`\log\lVert b_k\rVert`
    against :math:`t` over the longest run of consecutive recorded times at which it is
    held on a boundary :math:`b_k^\top x_i = 0` (pattern 0 on one point) and
    :math:`\max_i|f(x_i)| \le` ``f_tol``.  This book's Phase-I derivation
    (:func:`reluflow.analysis.theory.sliding_rates`) predicts :math:`(1-p)\sin\Delta` for negative
    neurons held on :math:`x_+^\perp` and :math:`p\sin\Delta` for positive ones held on
    :math:`x_-^\perp`.

    Returns
    -------
    ndarray, shape (m_rec,)
        The slopes; ``nan`` for neurons with fewer than ``min_samples`` such samples.
    """
    traj, _ = check_trajectory(traj, data)
    ft = float(f_tol)
    if not (math.isfinite(ft) and ft > 0):
        raise ValueError(f"f_tol must be a finite number > 0, got {f_tol!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int | np.integer) \
            or min_samples < 2:
        raise ValueError(f"min_samples must be an integer >= 2, got {min_samples!r}")
    small = np.max(np.abs(traj.f), axis=1) <= ft
    ok = np.any(traj.pattern == 0, axis=2) & small[:, None]
    nrm = np.linalg.norm(traj.B, axis=2)
    out = np.full(traj.m, np.nan)
    for k in range(traj.m):
        a, b = _longest_run(ok[:, k])
        if b - a >= min_samples and np.all(nrm[a:b, k] > 0):
            out[k] = float(np.polyfit(traj.t[a:b], np.log(nrm[a:b, k]), 1)[0])
    return out


def _longest_run(col: NDArray[np.bool_]) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True in ``col`` (``(0, 0)`` if none)."""
    if not np.any(col):
        return 0, 0
    edges = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    j = int(np.argmax(ends - starts))
    return int(starts[j]), int(ends[j])


def measured_regime(traj: Trajectory, data: TwoPointData, t_escape: float | None
                    ) -> tuple[str, int, float]:
    r"""The regime read off a run: who leads, and whether the leader condensed on :math:`\pm\mu`.

    At the recorded time closest to the saddle escape ``t_escape`` the *leader* is the
    sign group with the larger mass :math:`\sum_k a_k^2 + \lVert b_k\rVert^2` (it is the one
    that grew exponentially); ``both`` is the fraction of its mass active on both points.
    In the main and mirror regimes the leader has condensed on :math:`\pm\mu`, which is
    active on both points (``both`` close to 1); in the intermediate regime it slides on a
    boundary (``both`` close to 0).  The label is ``"main"`` (leader positive,
    ``both > 1/2``), ``"mirror"`` (leader negative, ``both > 1/2``) or
    ``"mu-plus-only"`` (``both <= 1/2``), the labels of :func:`reluflow.analysis.theory.regime`.

    Returns
    -------
    tuple
        ``(label, leader sign, both)``; ``("none", 0, nan)`` when ``t_escape`` is None.
    """
    if t_escape is None:
        return "none", 0, math.nan
    j = int(np.argmin(np.abs(traj.t - float(t_escape))))
    a, B, pat = traj.a[j], traj.B[j], traj.pattern[j]
    mass = a**2 + np.einsum("kd,kd->k", B, B)
    pos, neg = float(mass[a > 0].sum()), float(mass[a < 0].sum())
    sign = 1 if pos >= neg else -1
    g = (a > 0) if sign > 0 else (a < 0)
    both = np.all(pat[g] == 1, axis=1)
    tot = float(mass[g].sum())
    frac = float(mass[g][both].sum() / tot) if tot > 0 else math.nan
    if not frac > 0.5:
        return "mu-plus-only", sign, frac
    return ("main" if sign > 0 else "mirror"), sign, frac


def invariant_drift_total(traj: Trajectory) -> float:
    r"""Largest change of the invariants relative to the network's total mass.

    .. math:: \max_t \max_k \frac{|c_k(t) - c_k(0)|}{\sum_j a_j(t)^2 + \lVert b_j(t)\rVert^2},
              \qquad c_k = a_k^2 - \lVert b_k\rVert^2,

    over the recorded times and neurons (exactly 0 for the exact flow).  Unlike
    :attr:`reluflow.Trajectory.invariant_drift`, which divides by each neuron's own mass,
    it does not blow up for a neuron whose mass decays towards 0 (the decaying mode
    :math:`a - b^\top\hat\mu` of Phase I), where a round-off error of the size of the
    other weights is a large fraction of the neuron's own mass.
    """
    a, B = np.asarray(traj.a), np.asarray(traj.B)
    nb = np.einsum("tkd,tkd->tk", B, B)
    c = a**2 - nb
    tot = np.sum(a**2 + nb, axis=1)
    dev = np.max(np.abs(c - c[0][None, :]), axis=1) if c.shape[1] else np.zeros(a.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(tot > 0, dev / tot, 0.0)
    return float(np.max(rel)) if rel.size else 0.0


def fit_line(x: ArrayLike, y: Sequence[float | None] | ArrayLike) -> tuple[float, float, int]:
    r"""Least-squares line :math:`y \approx s\,x + c` over the points where ``y`` is finite.

    Returns
    -------
    tuple
        ``(s, c, n)``: slope, intercept and number of points used (``nan`` slope and
        intercept when fewer than two distinct ``x`` remain).
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    raw = np.asarray(y, dtype=object).ravel()
    ya = np.array([math.nan if val is None else float(val) for val in raw], dtype=np.float64)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    if np.unique(xa[ok]).size < 2:
        return math.nan, math.nan, int(ok.sum())
    s, c = np.polyfit(xa[ok], ya[ok], 1)
    return float(s), float(c), int(ok.sum())
