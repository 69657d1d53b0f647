r"""Measurements on a recorded :class:`~reluflow.Trajectory` and detection of the four phases.

The four-phase picture (initial condensation; saddle to plateau; plateau escape;
convergence with increasing complexity) is the paper's (Wang & Ma, NeurIPS 2023).  The
*operational definitions* of the phase times below, and their thresholds, are this book's
conventions; each time is defined by one measured quantity crossing one documented level,
is interpolated linearly between the two recorded samples that bracket the crossing, and is
``None`` when the crossing does not happen in the run (never guessed).

Groups.  The *positive* group is the neurons with :math:`a_k > 0`, the *negative* group
those with :math:`a_k < 0`.  The mass of a neuron is :math:`a_k^2 + \lVert b_k\rVert^2`; a
neuron is *alive* when it is active (:math:`b_k^\top x_i > 0`) on at least one point and
*dead* otherwise (it then never moves again).  Directions are those of the projection of
:math:`b_k` onto the data plane (:func:`reluflow.analysis.theory.plane_angles`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis import theory as th
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "PHASE_TIMES",
    "GroupStats",
    "PhaseReport",
    "condensation_rates",
    "detect_phases",
    "effective_directions",
    "group_stats",
    "max_margin_distance",
    "normalized_margin",
    "simulated_fate",
    "sliding_growth_rates",
    "target_angles",
]

Array = NDArray[np.float64]

#: The phase times of a :class:`PhaseReport`, in their expected order.
PHASE_TIMES = (
    "t_condensed",
    "t_escape",
    "t_reactivation",
    "t_plateau",
    "t_plateau_escape",
    "t_phase4",
)


# --------------------------------------------------------------------------- checks
def _check(traj: Any, data: Any, *, two_point: bool = True) -> tuple[Trajectory, Dataset]:
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


def _index(traj: Trajectory, index: int) -> int:
    T = traj.t.size
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise ValueError(f"index must be an integer time index in [-{T}, {T - 1}], got {index!r}")
    if not -T <= int(index) < T:
        raise ValueError(f"index must be an integer time index in [-{T}, {T - 1}], got {index!r}")
    return int(index) % T


def _mass(traj: Trajectory) -> Array:
    return np.asarray(traj.a**2 + np.einsum("tkd,tkd->tk", traj.B, traj.B))


def _wrap(x: Array | float) -> Array:
    return np.asarray(np.angle(np.exp(1j * np.asarray(x, dtype=np.float64))))


# --------------------------------------------------------------------------- group statistics
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
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
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
    spread = float(np.sqrt(np.sum(w * _wrap(phi - mean) ** 2) / tot))
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
    traj, d = _check(traj, data)
    assert isinstance(d, TwoPointData)
    j = _index(traj, index)
    a, B, pat = traj.a[j], traj.B[j], traj.pattern[j]
    M = a**2 + np.einsum("kd,kd->k", B, B)
    phi = th.plane_angles(B, d)
    refs = {
        "mu": th.mu_angle(d),
        "x_minus_perp": d.delta - 0.5 * math.pi,
        "x_plus_perp": 0.5 * math.pi,
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
    t_ = float(tol)
    if not (math.isfinite(t_) and 0 < t_ < math.pi):
        raise ValueError(f"tol must lie in the open interval (0, pi), got {tol!r}")
    j = _index(traj, index)
    Q = th._span_basis(traj.data.X)
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
    cos_tol = math.cos(t_)
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
    traj, d = _check(traj, data, two_point=False)
    j = _index(traj, index)
    if isinstance(d, TwoPointData) and d.delta < 0.5 * math.pi:
        fd = th.final_directions(d)
        dirs = np.stack([fd["positive"], fd["negative"]])
        signs = np.array([1.0, -1.0])
    else:
        res = th.max_margin(d)
        dirs, signs = res.directions, res.signs
    a, B, pat = traj.a[j], traj.B[j], traj.pattern[j]
    alive = np.any(pat == 1, axis=1) & (a != 0)
    if not np.any(alive):
        return math.nan
    Q = th._span_basis(d.X)
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
    traj, d = _check(traj, data)
    assert isinstance(d, TwoPointData)
    if traj.t[0] != 0.0:
        raise ValueError("traj must start at t = 0 (its first recorded time) to read fates")
    ct = float(cond_tol)
    if not (math.isfinite(ct) and 0 < ct < math.pi):
        raise ValueError(f"cond_tol must lie in the open interval (0, pi), got {cond_tol!r}")
    s = np.sign(traj.a[0])
    alive0 = np.any(traj.pattern[0] == 1, axis=1) & (s != 0)
    alive_end = np.any(traj.pattern[-1] == 1, axis=1)
    phi = th.plane_angles(traj.B, d)  # (T, m)
    target = np.where(s > 0, th.mu_angle(d), th.mu_angle(d) + math.pi)
    near = np.abs(_wrap(phi - target[None, :])) <= ct
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
    traj, d = _check(traj, data)
    m = th.mu(d)
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
    traj, d = _check(traj, data)
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
    traj, _ = _check(traj, data)
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


# --------------------------------------------------------------------------- phase detection
def _crossing(t: Array, q: Array, level: float, start: int, up: bool) -> tuple[float, int] | None:
    """First crossing of ``level`` by ``q`` at or after index ``start``, interpolated in t.

    ``up``: first index with ``q >= level``; otherwise first with ``q <= level``.  Returns
    ``(time, index)`` or ``None``.
    """
    for j in range(max(start, 0), t.size):
        qj = q[j]
        if not np.isfinite(qj):
            continue
        if (qj >= level) if up else (qj <= level):
            if j == start or j == 0 or not np.isfinite(q[j - 1]) or q[j - 1] == qj:
                return float(t[j]), j
            q0 = q[j - 1]
            lam = (level - q0) / (qj - q0)
            lam = min(max(float(lam), 0.0), 1.0)
            return float(t[j - 1] + lam * (t[j] - t[j - 1])), j
    return None


def _first_index_at_or_after(t: Array, time: float) -> int:
    return int(np.searchsorted(t, time, side="left"))


@dataclass
class PhaseReport:
    r"""Phase times and the measurements that define them (see :func:`detect_phases`).

    Every time is a float or ``None`` (did not occur in the run).  ``definitions`` maps each
    time to the quantity and level that define it; ``values`` holds other measurements
    (plateau loss, final margin, Phase-IV exponent, ...) next to the predictions of
    :mod:`reluflow.analysis.theory` (keys ending in ``_theory``).
    """

    regime: str
    t_condensed: float | None
    t_escape: float | None
    t_reactivation: float | None
    t_plateau: float | None
    t_plateau_escape: float | None
    t_phase4: float | None
    definitions: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def times(self) -> dict[str, float | None]:
        """The six phase times, in :data:`PHASE_TIMES` order."""
        return {k: getattr(self, k) for k in PHASE_TIMES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: ``regime``, the six times, ``definitions``, ``values`` (NaN -> None)."""
        out: dict[str, Any] = {"regime": self.regime}
        out.update(self.times())
        out["definitions"] = dict(self.definitions)
        out["values"] = _jsonable(dict(self.values))
        json.dumps(out)  # fail loudly here, not in the caller, if something is not JSON-able
        return out

    def __str__(self) -> str:
        rows = [("regime", self.regime, "")]
        for k in PHASE_TIMES:
            t = getattr(self, k)
            rows.append((k, "None" if t is None else f"{t:.6g}", self.definitions.get(k, "")))
        for k, val in self.values.items():
            if isinstance(val, float | np.floating):
                s = "nan" if not math.isfinite(float(val)) else f"{float(val):.6g}"
            else:
                s = str(val)
            rows.append((k, s, ""))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        head = f"{'quantity':<{w0}}  {'value':>{w1}}  definition"
        lines = [head, "-" * len(head)]
        lines += [f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
        return "\n".join(lines)


def _roles(d: TwoPointData) -> tuple[int, float, int]:
    """Leader sign, leader's target angle, index of the point the plateau waits for."""
    reg = th.regime(d)
    am = th.mu_angle(d)
    if reg == "main":
        return 1, am, 1
    if reg == "mirror":
        return -1, am + math.pi, 0
    if d.p >= 0.5:
        return 1, d.delta - 0.5 * math.pi, 1
    return -1, 0.5 * math.pi, 0


def detect_phases(
    traj: Trajectory,
    data: Dataset,
    *,
    spread_tol: float = 0.1,
    drop: float = 0.01,
    phase4_margin: float = 2.0,
) -> PhaseReport:
    r"""Detect the phase times of a run (definitions: this book's conventions).

    Roles: the *leader* group is the one that fits first (positive neurons in the ``"main"``
    regime, negative ones in the ``"mirror"`` regime; in ``"mu-plus-only"`` the group of the
    heavier class), its *target* is :math:`\mu` (resp. :math:`-\mu`; :math:`x_-^\perp` or
    :math:`x_+^\perp` in ``"mu-plus-only"``), the *follower* is the other group, and the
    *waiting point* :math:`x_w` is the other class's point (:math:`x_-` in the main regime).
    With mass fractions taken over a group's mass:

    * ``t_condensed`` (end of Phase I): first time the mass-weighted RMS angle of the alive
      leader neurons about the target is :math:`\le` ``spread_tol`` rad.
    * ``t_escape`` (saddle escape): first time :math:`L(t) \le (1-\text{drop})\,L(0)`.
    * ``t_reactivation``: after ``t_condensed``, the first time the follower's mass fraction
      active on the leader's point rises back to :math:`\ge 1/2` after having been
      :math:`< 1/2` (the followers left their boundary).
    * ``t_plateau`` (entry to the plateau, deactivation on :math:`x_w`): first time
      :math:`\ge` ``t_escape`` at which the leader's mass fraction active on :math:`x_w` is
      :math:`\le 1/2`.
    * ``t_plateau_escape``: first time :math:`\ge` ``t_plateau`` at which the margin of the
      waiting point :math:`y_w f(x_w) \ge \log 2` (its loss term has halved).
    * ``t_phase4`` (start of Phase IV): first time :math:`\ge` ``t_plateau_escape`` at which
      :math:`\min_i y_i f(x_i) \ge` ``phase4_margin``.

    Values: ``plateau_loss`` (the loss at the end of the flat part: first time after
    ``t_plateau`` at which :math:`y_w f(x_w) \ge 0.01`),
    ``final_loss``, ``final_margin`` (normalized), ``n_eff_final``
    (:func:`effective_directions`), ``max_margin_distance``, ``phase4_exponent``
    (:math:`\alpha` of the least-squares fit :math:`\log L = c - \alpha\log(t\log t)` on the
    recorded times :math:`t \ge \max(10^3 t_\mathrm{phase4}, 10^3)`), ``phase4_constant``
    (:math:`4\gamma(t)\,t\log t\,L(t)` at the end, :math:`\to 1` by
    :func:`reluflow.analysis.theory.phase4_loss`), and the corresponding ``*_theory`` predictions.

    The times are only as precise as the recorded grid: pass a dense ``times`` (e.g. linear
    over the first three phases) to :func:`reluflow.gradient_flow`; on a coarse log grid two
    events can fall in the same interval.

    For a general :class:`~reluflow.Dataset` (not two-point) only ``t_escape`` and
    ``t_phase4`` (after ``t_escape``) are defined; the others are ``None``.
    """
    traj, d = _check(traj, data, two_point=False)
    st = float(spread_tol)
    if not (math.isfinite(st) and 0 < st < math.pi):
        raise ValueError(f"spread_tol must lie in the open interval (0, pi), got {spread_tol!r}")
    dr = float(drop)
    if not (math.isfinite(dr) and 0 < dr < 1):
        raise ValueError(f"drop must lie in the open interval (0, 1), got {drop!r}")
    pm = float(phase4_margin)
    if not (math.isfinite(pm) and pm > 0):
        raise ValueError(f"phase4_margin must be a finite number > 0, got {phase4_margin!r}")

    t, L = traj.t, traj.loss
    marg = traj.f * d.y[None, :]
    qmin = np.min(marg, axis=1)
    defs: dict[str, str] = {
        "t_escape": f"L(t) <= (1 - {dr:g}) L(0)",
        "t_phase4": f"min_i y_i f(x_i) >= {pm:g} (after t_plateau_escape)",
    }
    vals: dict[str, Any] = {}
    hit = _crossing(t, L, (1 - dr) * L[0], 0, up=False)
    t_esc = hit[0] if hit else None

    two = isinstance(d, TwoPointData) and d.delta < 0.5 * math.pi
    t_cond = t_react = t_plat = t_pesc = t_p4 = None
    reg = th.regime(d) if isinstance(d, TwoPointData) and two else "general"
    if two:
        assert isinstance(d, TwoPointData)
        sL, target, w = _roles(d)
        lead_pt = 1 - w
        names = {0: "x+", 1: "x-"}
        gname = "positive" if sL > 0 else "negative"
        fname = "negative" if sL > 0 else "positive"
        M = _mass(traj)
        s = np.sign(traj.a)
        alive = np.any(traj.pattern == 1, axis=2)
        lead = s == sL
        foll = s == -sL
        phi = th.plane_angles(traj.B, d)
        wl = np.where(lead & alive, M, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rms = np.sqrt(np.sum(wl * _wrap(phi - target) ** 2, axis=1) / np.sum(wl, axis=1))
            lead_on_w = np.sum(np.where(lead, M, 0.0) * (traj.pattern[:, :, w] == 1), axis=1) / (
                np.sum(np.where(lead, M, 0.0), axis=1))
            wf = np.where(foll & alive, M, 0.0)
            foll_on_l = np.sum(wf * (traj.pattern[:, :, lead_pt] == 1), axis=1) / np.sum(wf, axis=1)
        defs["t_condensed"] = (f"RMS angle of alive {gname} neurons about the target "
                               f"({'mu' if reg != 'mu-plus-only' else 'slide direction'}"
                               f"{'' if sL > 0 else ' negated'}) <= {st:g} rad")
        defs["t_reactivation"] = (f"mass fraction of alive {fname} neurons active on "
                                  f"{names[lead_pt]} back to >= 1/2 (after t_condensed)")
        defs["t_plateau"] = (f"mass fraction of {gname} neurons active on {names[w]} <= 1/2 "
                             "(after t_escape)")
        defs["t_plateau_escape"] = f"margin y f({names[w]}) >= log 2 (after t_plateau)"
        hit = _crossing(t, rms, st, 0, up=False)
        if hit:
            t_cond = hit[0]
            j0 = hit[1]
            below = np.nonzero(np.nan_to_num(foll_on_l[j0:], nan=1.0) < 0.5)[0]
            if below.size:
                hit = _crossing(t, np.nan_to_num(foll_on_l, nan=0.0), 0.5, j0 + int(below[0]),
                                up=True)
                t_react = hit[0] if hit else None
        if t_esc is not None:
            hit = _crossing(t, lead_on_w, 0.5, _first_index_at_or_after(t, t_esc), up=False)
            if hit:
                t_plat = hit[0]
                hit = _crossing(t, marg[:, w], math.log(2.0), hit[1], up=True)
                if hit:
                    t_pesc = hit[0]
                    hit = _crossing(t, qmin, pm, hit[1], up=True)
                    t_p4 = hit[0] if hit else None
        vals["plateau_loss"] = math.nan
        if t_plat is not None:
            hit = _crossing(t, marg[:, w], 0.01, _first_index_at_or_after(t, t_plat), up=True)
            if hit:
                vals["plateau_loss"] = float(np.interp(hit[0], t, L))
        vals["plateau_level_theory"] = th.plateau_level(d)
        vals["final_margin_theory"] = th.final_margin(d)
    elif t_esc is not None:
        hit = _crossing(t, qmin, pm, _first_index_at_or_after(t, t_esc), up=True)
        t_p4 = hit[0] if hit else None
    vals["final_time"] = float(t[-1])
    vals["final_loss"] = float(L[-1])
    vals["final_margin"] = float(traj.normalized_margin()[-1])
    vals["n_eff_final"] = effective_directions(traj, -1)
    vals["max_margin_distance"] = max_margin_distance(traj, d, -1)
    vals["phase4_exponent"] = math.nan
    vals["phase4_constant"] = math.nan
    if t_p4 is not None:
        sel = (t >= max(1e3 * t_p4, 1e3)) & (L > 0) & np.isfinite(L)
        if np.sum(sel) >= 3:
            x = np.log(t[sel] * np.log(t[sel]))
            coef = np.polyfit(x, np.log(L[sel]), 1)
            vals["phase4_exponent"] = float(-coef[0])
            g_end = vals["final_margin"]
            vals["phase4_constant"] = float(4 * g_end * t[-1] * math.log(t[-1]) * L[-1])
    vals["invariant_drift"] = traj.invariant_drift
    return PhaseReport(
        regime=reg, t_condensed=t_cond, t_escape=t_esc, t_reactivation=t_react,
        t_plateau=t_plat, t_plateau_escape=t_pesc, t_phase4=t_p4, definitions=defs,
        values=vals,
    )
