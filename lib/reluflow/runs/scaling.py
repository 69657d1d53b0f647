r"""Scaling studies: phase times over :math:`(\Delta, p)`, :math:`\kappa`, width, init, loss.

The chapter ``book/scaling.ipynb`` runs several grids of exact gradient-flow runs through
:func:`reluflow.runs.sweep.run` with the ``run_fn`` of this module, :func:`run_dense`.  It differs
from :func:`reluflow.runs.sweep.run_config` in one respect that matters for phase *times*: it
records the trajectory on a dense linear grid over the first three phases (the horizon of
:func:`horizon`), then on a log grid up to ``t_max``, so that
:func:`reluflow.analysis.phases.detect_phases` reads the times to a fraction of a time unit; and it
adds a few measurements and predictions to the summary (:func:`measured_regime`, the
saddle-escape prediction from the actual initialization).

Caching.  A sweep writes one file per configuration, named by the configuration hash
(:func:`reluflow.runs.sweep.config_hash`), and skips configurations already on disk.  The
results also depend on the code, so :func:`cache_dir` puts every sweep in a folder named
after :func:`source_fingerprint`, the hash of the package's source files: any change to
the engine, the phase detection or this module starts from an empty cache, and fast and
full runs live in different folders.  Deleting the folder (``make clean`` removes
``_build``) only costs the time to recompute.

All quantitative predictions used here come from :mod:`reluflow.analysis.theory` and are **this
book's derivation**; the four-phase picture is the paper's (Wang & Ma, NeurIPS 2023).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis import theory as th
from reluflow.engine import checks as v
from reluflow.runs import sweep as sw

__all__ = [
    "N_LIN",
    "N_LOG",
    "cache_dir",
    "fit_line",
    "horizon",
    "invariant_drift_total",
    "loss_scale",
    "measured_regime",
    "plateau_escape_slope_prediction",
    "plateau_exit_loss",
    "recording_times",
    "regime_map",
    "run_dense",
    "run_grid",
    "source_fingerprint",
]

Array = NDArray[np.float64]

#: Recorded times on the linear part of the grid (over the first three phases).
N_LIN = 240
#: Recorded times on the logarithmic tail (from the horizon to ``t_max``).
N_LOG = 30

_PACKAGE = Path(__file__).resolve().parent


def loss_scale(loss: str) -> float:
    r"""Time-scale factor of a loss near :math:`f = 0`: 1 for ``exp``, 2 for ``logistic``.

    With :math:`f\approx 0` the residual weights are :math:`w_i y_i\,(-\ell'(0))`, i.e.
    :math:`w_i y_i` for :math:`\ell(z) = e^{-z}` and :math:`w_i y_i/2` for
    :math:`\ell(z) = \log(1+e^{-z})`, so the logistic flow near the origin is the
    exponential one slowed down by a factor 2 (this book's derivation).
    """
    return {"exp": 1.0, "logistic": 2.0}[v.loss_name(loss)]


def horizon(delta: float, p: float, kappa: float, loss: str = "exp",
            kappa_a: float | None = None) -> float:
    r"""End of the dense recording: past the plateau escape with room to spare.

    With :math:`\ell = \log(1/\max(\kappa, \kappa_a))` and the loss factor
    :math:`c` = :func:`loss_scale`:

    * main regime: :math:`c\,(1.5\,T_\mathrm{III}(\ell) + 30)`, with :math:`T_\mathrm{III}`
      = :func:`reluflow.analysis.theory.plateau_escape_time` (``"book"``);
    * mirror regime: the same for the mirrored data :math:`(\Delta, 1-p)`;
    * intermediate regime: :math:`c\,(2\ell/(\min(p, 1-p)\sin\Delta) + 30)`, twice the
      growth time of the slower sliding group.

    Parameters
    ----------
    delta : float
        :math:`\Delta\in(0, \pi/2)`.
    p : float
        :math:`p\in(0, 1)`.
    kappa : float
        Initialization scale in (0, 1).
    loss : {"exp", "logistic"}
    kappa_a : float, optional
        Output-weight scale of an unbalanced initialization, in (0, 1).

    Returns
    -------
    float
        The horizon (gradient-flow time units).
    """
    from reluflow.engine.data import TwoPointData

    k = v.open_interval("kappa", kappa, 0.0, 1.0)
    if kappa_a is not None:
        k = max(k, v.open_interval("kappa_a", kappa_a, 0.0, 1.0))
    data = TwoPointData(v.open_interval("delta", delta, 0.0, 0.5 * math.pi, "(0, pi/2)"), p)
    reg = th.regime(data)
    c = loss_scale(loss)
    if reg in ("main", "mirror"):
        eff = data if reg == "main" else TwoPointData(data.delta, 1.0 - data.p)
        return c * (1.5 * th.plateau_escape_time(eff, k, "book") + 30.0)
    w = min(data.p, 1.0 - data.p) * math.sin(data.delta)
    return c * (2.0 * math.log(1.0 / k) / w + 30.0)


def recording_times(config: Mapping[str, Any], n_lin: int = N_LIN, n_log: int = N_LOG
                    ) -> Array:
    r"""Recording grid of a configuration: ``0``, a linear grid to the horizon, a log tail.

    The linear part has ``n_lin`` steps over :math:`[0, \min(H, t_{\max})]` with
    :math:`H` = :func:`horizon`; if :math:`t_{\max} > 1.01H`, ``n_log`` log-spaced times
    follow from :math:`1.01H` to :math:`t_{\max}`.
    """
    cfg = sw.normalize_config(config)
    nl = v.int_at_least("n_lin", n_lin, 2)
    ng = v.int_at_least("n_log", n_log, 1)
    h = min(horizon(cfg["delta"], cfg["p"], cfg["kappa"], cfg["loss"], cfg["kappa_a"]),
            cfg["t_max"])
    grid = np.linspace(0.0, h, nl + 1)
    if cfg["t_max"] > 1.01 * h:
        grid = np.concatenate([grid, np.geomspace(1.01 * h, cfg["t_max"], ng)])
    return np.asarray(grid, dtype=np.float64)


def measured_regime(traj: Any, data: Any, t_escape: float | None) -> tuple[str, int, float]:
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


def _flow(params: Any, data: Any, times: Array, loss: str, rtol: float) -> tuple[Any, int]:
    """Exact flow; retried on a grid scaled by 1 + eps if the engine refuses a grid."""
    from reluflow.engine.flow import gradient_flow

    jitters = (0.0, 1e-3, -1e-3, 2e-3)
    for attempt, eps in enumerate(jitters):
        tt = times * (1.0 + eps)
        try:
            return gradient_flow(params, data, float(tt[-1]), times=tt, loss=loss,
                                 rtol=rtol), attempt
        except RuntimeError:
            if attempt == len(jitters) - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def run_dense(config: Mapping[str, Any]) -> dict[str, Any]:
    r"""``run_fn`` for :func:`reluflow.runs.sweep.run`: one exact run on the dense grid, summarised.

    Builds the data and the initialization of the configuration as
    :func:`reluflow.runs.sweep.simulate` does (:math:`\Delta < \pi/2` required), integrates
    :func:`reluflow.gradient_flow` on :func:`recording_times`, runs
    :func:`reluflow.analysis.phases.detect_phases`, and returns
    :func:`reluflow.runs.sweep.summarize`
    plus: ``invariant_drift_total`` (:func:`invariant_drift_total`),
    ``regime`` (:func:`reluflow.analysis.theory.regime`), ``regime_measured``, ``leader`` and
    ``leader_both`` (:func:`measured_regime`), ``plateau_loss``, ``n_eff_final``,
    ``horizon``, ``retries`` (engine retries with a jittered grid), and
    ``t_escape_pred_params``: :func:`reluflow.analysis.theory.saddle_escape_time` from the actual
    initial parameters (main regime, balanced exponential-loss runs; else ``None``).
    """
    from reluflow.analysis.phases import detect_phases
    from reluflow.engine.data import TwoPointData
    from reluflow.engine.network import init_network

    cfg = sw.normalize_config(config)
    if not cfg["delta"] < 0.5 * math.pi:
        raise ValueError(f"delta must lie in (0, pi/2) for the scaling study, got {cfg['delta']}")
    data = TwoPointData(cfg["delta"], cfg["p"], d=cfg["d"])
    params = init_network(cfg["m"], cfg["d"], cfg["kappa"], seed=cfg["seed"],
                          balanced=cfg["balanced"], kappa_a=cfg["kappa_a"])
    times = recording_times(cfg)
    traj, retries = _flow(params, data, times, cfg["loss"], cfg["rtol"])
    report = detect_phases(traj, data)
    out = sw.summarize(traj, report)
    label, sign, both = measured_regime(traj, data, report.t_escape)
    pred = None
    if (th.regime(data) == "main" and cfg["balanced"] and cfg["loss"] == "exp"
            and cfg["d"] == 2):
        try:
            pred = th.saddle_escape_time(data, params=params)
        except ValueError:  # no condensing neuron in this draw
            pred = None
    out.update({
        "invariant_drift_total": invariant_drift_total(traj),
        "regime": th.regime(data),
        "regime_measured": label,
        "leader": sign,
        "leader_both": sw._num(both),
        "plateau_loss": sw._num(report.values.get("plateau_loss")),
        "n_eff_final": sw._num(report.values.get("n_eff_final")),
        "horizon": float(times[min(N_LIN, times.size - 1)]),
        "retries": retries,
        "t_escape_pred_params": sw._num(pred),
    })
    return out


def invariant_drift_total(traj: Any) -> float:
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


def source_fingerprint(package_dir: str | os.PathLike[str] | None = None) -> str:
    """First 12 hex digits of the SHA-256 of every ``*.py`` file of the package (sorted).

    Cached results are only valid for the code that produced them: a cache folder named
    after this fingerprint is never read by a different version of the engine or of the
    phase detection.
    """
    root = _PACKAGE if package_dir is None else Path(package_dir)
    if not root.is_dir():
        raise ValueError(f"package_dir must be an existing directory, got {str(root)!r}")
    h = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


def cache_dir(root: str | os.PathLike[str], name: str, fast: bool) -> Path:
    """Folder of one sweep: ``root/<fast|full>/<source_fingerprint()>/<name>``.

    Parameters
    ----------
    root : path
        Cache root (created when the sweep runs, not here).
    name : str
        Name of the grid: letters, digits, ``_`` and ``-``.
    fast : bool
        Reduced-size grids go to ``fast``, full ones to ``full``: they never mix.
    """
    if not (isinstance(name, str) and name and all(c.isalnum() or c in "_-" for c in name)):
        raise ValueError(f"name must be a non-empty string of letters, digits, '_' or '-', "
                         f"got {name!r}")
    if not isinstance(fast, bool | np.bool_):
        raise ValueError(f"fast must be a boolean (True or False), got {fast!r}")
    return Path(root) / ("fast" if fast else "full") / source_fingerprint() / name


def run_grid(configs: Sequence[Mapping[str, Any]], out: str | os.PathLike[str],
             workers: int = 2) -> list[dict[str, Any]]:
    """Run (or read from ``out``) every configuration with :func:`run_dense`.

    A thin wrapper of :func:`reluflow.runs.sweep.run` with a local ``spawn`` process pool of
    ``workers`` processes (only when something is left to compute).  Returns the records
    in the order of ``configs``.

    Raises
    ------
    RuntimeError
        If a configuration failed (its ``<hash>.error.json`` names the error).
    """
    w = v.int_at_least("workers", workers, 1)
    todo = list(configs)
    if not todo:
        raise ValueError("configs must hold at least one configuration")
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out: cannot create the parent folder of {str(out)!r} "
                         f"({exc.strerror or exc})") from None
    ex: cf.Executor | None = None
    if w == 1:
        ex = _InlineExecutor()
    res = sw.run(todo, run_fn=run_dense, executor=ex, out=out, workers=w, progress=False)
    by_hash = {r["hash"]: r for r in res.records}
    recs = [by_hash.get(sw.config_hash(c)) for c in todo]
    bad = [r for r in recs if r is None or r.get("status") != "ok"]
    if bad:
        first = bad[0]
        msg = "missing" if first is None else first.get("error", "unknown error")
        raise RuntimeError(f"{len(bad)} of {len(todo)} runs failed in {str(out)!r}: {msg}")
    return [dict(r) for r in recs if r is not None]


class _InlineExecutor(cf.Executor):
    """Run submitted calls at once in this process (one worker, no pool start-up)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # handed to the caller through the future
            fut.set_exception(exc)
        return fut


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


# --------------------------------------------------------------------------- predictions
def _effective(data: Any) -> Any:
    """The main-regime data set equivalent to ``data`` (mirror: ``(delta, 1 - p)``), or None."""
    from reluflow.engine.data import TwoPointData

    reg = th.regime(data)
    if reg == "main":
        return data
    if reg == "mirror":
        return TwoPointData(data.delta, 1.0 - data.p, d=data.d)
    return None


def regime_map(deltas: ArrayLike, ps: ArrayLike) -> NDArray[np.int64]:
    r"""Regime of each :math:`(\Delta, p)` of a grid, as an index into ``theory.REGIMES``.

    Parameters
    ----------
    deltas : array_like, shape (nd,)
        Angles in :math:`(0, \pi/2)`.
    ps : array_like, shape (np,)
        Weights in :math:`(0, 1)`.

    Returns
    -------
    ndarray of int, shape (np, nd)
        ``out[i, j]`` = index of :func:`reluflow.analysis.theory.regime` ``(deltas[j], ps[i])``
        (0 main :math:`p\cos\Delta > 1-p`, 1 intermediate, 2 mirror
        :math:`p \le (1-p)\cos\Delta`).
    """
    da = np.asarray(deltas, dtype=np.float64).ravel()
    pa = np.asarray(ps, dtype=np.float64).ravel()
    out = np.empty((pa.size, da.size), dtype=np.int64)
    for i, p in enumerate(pa):
        for j, dl in enumerate(da):
            out[i, j] = th.REGIMES.index(th.regime(float(dl), float(p)))
    return out


def plateau_escape_slope_prediction(data: Any, kappas: ArrayLike) -> tuple[float, str]:
    r"""Predicted slope of the plateau-escape time in :math:`\log(1/\kappa)`, and its source.

    * main regime: least-squares slope of :func:`reluflow.analysis.theory.plateau_escape_time`
      (``"book"``) over ``kappas`` (the book's formula is not exactly linear);
    * mirror regime: the same for the mirrored data :math:`(\Delta, 1-p)`;
    * intermediate regime (this book's leading-order estimate): both groups slide from the
      start; the slower one, of weight :math:`w = \min(p, 1-p)`, grows at rate
      :math:`w\sin\Delta` while its point is unfitted, so
      :math:`T_\mathrm{III} \approx \log(1/\kappa)/(w\sin\Delta)`: slope
      :math:`1/(\min(p, 1-p)\sin\Delta)`.

    Returns
    -------
    tuple
        ``(slope, source)`` with ``source`` ``"book formula"`` or
        ``"intermediate estimate"``.
    """
    from reluflow.engine.data import TwoPointData

    if not isinstance(data, TwoPointData):
        raise ValueError(f"data must be a reluflow.TwoPointData, got {type(data).__name__}")
    ks = np.asarray(kappas, dtype=np.float64).ravel()
    if ks.size < 2 or not np.all((ks > 0) & (ks < 1)) or np.unique(ks).size < 2:
        raise ValueError("kappas must hold at least two distinct values in (0, 1)")
    eff = _effective(data)
    if eff is None:
        return 1.0 / (min(data.p, 1.0 - data.p) * math.sin(data.delta)), "intermediate estimate"
    ell = np.log(1.0 / ks)
    t3 = [th.plateau_escape_time(eff, float(k), "book") for k in ks]
    return float(np.polyfit(ell, t3, 1)[0]), "book formula"


def plateau_exit_loss(data: Any, kappa: float) -> float | None:
    r"""Predicted loss at the end of the plateau (main and mirror regimes; else ``None``).

    :math:`L \approx (1 - w) + w\,e^{-g}` with :math:`w` the leader's weight (:math:`p` in
    the main regime) and :math:`g` = :func:`reluflow.analysis.theory.plateau_exit_output` (this
    book's derivation, exponential loss).
    """
    eff = _effective(data)
    if eff is None:
        return None
    g = th.plateau_exit_output(eff, kappa)
    return float((1.0 - eff.p) + eff.p * math.exp(-g))
