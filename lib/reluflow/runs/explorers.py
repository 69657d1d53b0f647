r"""Precomputed grids of exact runs for the book's static explorers, and their readouts.

A static page has no kernel, so its explorers show runs computed when the book is built:
one grid of configurations :math:`(\Delta, p, \kappa)` (:class:`ExplorerGrid`,
:func:`book_grid`), each run to :math:`t_{\max} = 10^{30}` by the exact flow
(:func:`~reluflow.runs.config.simulate`) on the ``"explore"`` recording grid
(:func:`reluflow.runs.config.explore_times`), summarised like the scaling sweeps
(:func:`reluflow.runs.scaling.dense_summary`) and *reduced* to what the figures draw
(:func:`reduce_run`: the loss, outputs and normalized margin over time, every neuron's
direction at about 80 times, the Phase-I fates).  :func:`grid_records` runs the grid
through :func:`reluflow.runs.scaling.run_grid` into a cache folder keyed by run mode and
code (:func:`reluflow.runs.cache.cache_dir`), so a second build with the same code reads
the results instead of recomputing them.

Every chapter's explorer projects the same grid onto the sliders of its phenomenon
(:data:`CHAPTERS`); :func:`readouts` gives, per grid point, the measured phase times and
values next to this book's prediction for them (``None`` where the book derives none).

Examples
--------
>>> g = ExplorerGrid(delta=(0.3,), p=(0.7, 0.8), kappa=(1e-4,), m=4, seed=0, t_max=50.0)
>>> [(c.delta, c.p, c.kappa, c.grid) for c in g.configs()]
[(0.3, 0.7, 0.0001, 'explore'), (0.3, 0.8, 0.0001, 'explore')]
>>> g.nearest(delta=0.25, p=0.74, kappa=3e-4)
(0.3, 0.7, 0.0001)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.geometry import plane_angles, regime, roles
from reluflow.analysis.measure import (
    condensation_rates,
    fit_line,
    neuron_mass,
    simulated_fate,
    wrap_angle,
)
from reluflow.analysis.theory import (
    escape_rate,
    fate,
    final_margin,
    plateau_escape_slope,
    plateau_level,
    saddle_escape_time,
)
from reluflow.engine import checks as v
from reluflow.runs import scaling
from reluflow.runs.cache import cache_dir
from reluflow.runs.config import FIELDS, Run, RunConfig, early_window, finite_or_none, simulate

__all__ = [
    "CHAPTERS",
    "DIGITS",
    "FAST_GRID",
    "FULL_GRID",
    "F_NEAR_SADDLE",
    "N_ANGLE_TIMES",
    "ExplorerGrid",
    "Reading",
    "book_grid",
    "grid_records",
    "plateau_slopes",
    "readouts",
    "reduce_run",
    "run_explorer",
]

Array = NDArray[np.float64]

#: The chapters with an explorer and the grid axes their sliders move, in slider order.
#: The other axes stay at the chapter's value (Phase III shows every kappa at once).
CHAPTERS: dict[str, tuple[str, ...]] = {
    "setting": ("delta", "p", "kappa"),
    "phase1": ("delta", "p"),
    "phase2": ("kappa", "p"),
    "phase3": ("p", "delta"),
    "phase4": ("delta", "p"),
}

#: Times at which every neuron's direction is kept (half over Phase I, half log-spaced).
N_ANGLE_TIMES = 80
#: Significant digits kept in the reduced curves (the figures need no more).
DIGITS = 4


def _axis(name: str, values: Any) -> tuple[float, ...]:
    """Validate one axis: a sorted arithmetic progression (in log10 for kappa) in range."""
    f = FIELDS[name]
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of values, each "
                         f"{f.describe()}, got {values!r}")
    vals = tuple(float(f.check_explore(x)) for x in values)
    c = np.log10(vals) if f.log else np.asarray(vals)
    steps = np.diff(c)
    if np.any(steps <= 0):
        raise ValueError(f"{name} must be strictly increasing, got {list(vals)}")
    if steps.size and not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-9):
        kind = "log10 values" if f.log else "values"
        raise ValueError(f"{name}: the {kind} must be evenly spaced (one slider step), "
                         f"got {list(vals)}")
    return vals


@dataclass(frozen=True)
class ExplorerGrid:
    r"""The product grid :math:`\Delta\times p\times\kappa` of the explorers' runs.

    Each axis is sorted and evenly spaced (in :math:`\log_{10}\kappa` for ``kappa``), so a
    slider with one step moves along it; every value lies in the explorers' range of its
    field (:data:`reluflow.runs.config.FIELDS`; for :math:`\Delta` it lies below
    :math:`\pi/2`, as the ``"explore"`` recording grid needs).  All runs
    share ``m``, ``seed`` and ``t_max`` (balanced, exponential loss, ``d = 2``).
    """

    delta: tuple[float, ...]
    p: tuple[float, ...]
    kappa: tuple[float, ...]
    m: int
    seed: int
    t_max: float
    name: str = "explorers"

    def __post_init__(self) -> None:
        for axis in ("delta", "p", "kappa"):
            object.__setattr__(self, axis, _axis(axis, getattr(self, axis)))
        for fld in ("m", "seed", "t_max"):
            object.__setattr__(self, fld, FIELDS[fld].check(getattr(self, fld)))

    def axis(self, name: str) -> tuple[float, ...]:
        """The values of axis ``name`` (``"delta"``, ``"p"`` or ``"kappa"``)."""
        if name not in ("delta", "p", "kappa"):
            raise ValueError(f"axis must be 'delta', 'p' or 'kappa', got {name!r}")
        vals: tuple[float, ...] = getattr(self, name)
        return vals

    def configs(self) -> list[RunConfig]:
        """Every configuration, ``delta`` slowest, ``kappa`` fastest."""
        return [RunConfig(delta=d, p=p, kappa=k, m=self.m, seed=self.seed, t_max=self.t_max,
                          grid="explore")
                for d in self.delta for p in self.p for k in self.kappa]

    def nearest(self, *, delta: float, p: float, kappa: float) -> tuple[float, float, float]:
        """The grid point nearest to ``(delta, p, kappa)`` (kappa compared in log10)."""
        d = v.real_scalar("delta", delta)
        pp = v.real_scalar("p", p)
        k = v.positive_finite("kappa", kappa)
        nd = min(self.delta, key=lambda x: abs(x - d))
        npp = min(self.p, key=lambda x: abs(x - pp))
        nk = min(self.kappa, key=lambda x: abs(math.log10(x) - math.log10(k)))
        return nd, npp, nk


#: The book's grid: 5 angles x 5 weights x 4 scales, m = 100, to t = 1e30 (100 runs).
FULL_GRID = ExplorerGrid(delta=(0.1, 0.2, 0.3, 0.4, 0.5), p=(0.5, 0.6, 0.7, 0.8, 0.9),
                         kappa=(1e-10, 1e-8, 1e-6, 1e-4), m=100, seed=0, t_max=1e30)
#: The FAST grid (papermill tests, previews): 2 x 2 x 2 runs of 20 neurons.
FAST_GRID = ExplorerGrid(delta=(0.3, 0.5), p=(0.7, 0.8), kappa=(1e-6, 1e-4), m=20, seed=0,
                         t_max=1e30)


def book_grid(fast: bool) -> ExplorerGrid:
    """The book's explorer grid: :data:`FAST_GRID` when ``fast``, else :data:`FULL_GRID`."""
    if not isinstance(fast, bool | np.bool_):
        raise ValueError(f"fast must be a boolean (True or False), got {fast!r}")
    return FAST_GRID if fast else FULL_GRID


def _sig(x: Any) -> list[float | None]:
    """Values rounded to :data:`DIGITS` significant digits (``None`` for non-finite)."""
    out: list[float | None] = []
    for val in np.asarray(x, dtype=np.float64).ravel():
        out.append(float(f"{val:.{DIGITS}g}") if math.isfinite(val) else None)
    return out


def _angle_indices(t: Array, early_end: float) -> list[int]:
    """Indices of the recorded times kept for the neuron directions (no duplicates)."""
    half = N_ANGLE_TIMES // 2
    targets = np.concatenate([np.linspace(0.0, early_end, half),
                              np.geomspace(max(t[1], 1e-2), t[-1], N_ANGLE_TIMES - half)])
    idx = np.clip(np.searchsorted(t, targets), 0, t.size - 1)
    return sorted({int(i) for i in idx})


#: Largest output :math:`\max_i |f(x_i)|` at which the leaders' direction is read: near
#: the saddle, where the Phase-I field (:math:`f \approx 0`) still holds.
F_NEAR_SADDLE = 1e-2


def _leader_direction(run: Run) -> float | None:
    r"""Mass-weighted mean plane angle (deg) of the alive leaders at the end of Phase I.

    Read at the last recorded time after ``t_condensed`` with :math:`\max_i|f(x_i)| \le`
    :data:`F_NEAR_SADDLE`, where this book predicts the direction of the target
    (:func:`reluflow.analysis.geometry.roles`); ``None`` if there is no such time.
    """
    traj, data, tc = run.trajectory, run.data, run.report.t_condensed
    if tc is None:
        return None
    small = np.max(np.abs(traj.f), axis=1) <= F_NEAR_SADDLE
    cand = np.nonzero(small & (traj.t >= tc))[0]
    if cand.size == 0:
        return None
    j = int(cand[-1])
    lead = np.sign(traj.a[j]) == roles(data).leader
    alive = np.any(traj.pattern[j] == 1, axis=1)
    w = np.where(lead & alive, neuron_mass(traj)[j], 0.0)
    if not np.sum(w) > 0:
        return None
    phi = plane_angles(traj.B[j], data)
    return float(np.degrees(np.angle(np.sum(w * np.exp(1j * phi)))))


def _release_ratio(run: Run, t: float) -> float | None:
    r""":math:`p\,e^{-f(x_+)} / ((1-p)\,e^{f(x_-)}\cos\Delta)` at time ``t`` (interpolated).

    This book's reactivation condition (:func:`reluflow.analysis.theory.reactivation_condition`)
    says the negative neurons leave their boundary when it falls below 1.
    """
    traj, d = run.trajectory, run.data
    fp = float(np.interp(t, traj.t, traj.f[:, 0]))
    fm = float(np.interp(t, traj.t, traj.f[:, 1]))
    return finite_or_none(math.exp(math.log(d.p / ((1.0 - d.p) * math.cos(d.delta))) - fp - fm))


def reduce_run(run: Run) -> dict[str, Any]:
    r"""What the explorers draw of one run (JSON-able lists; angles in degrees).

    ``t``, ``L`` (the loss; ``loss`` is the loss function's name), ``margin``
    (:math:`\min_i y_i f(x_i)/\lVert\theta\rVert^2`), ``f_plus``, ``f_minus`` at every
    recorded time (:data:`DIGITS` significant digits);
    ``angle_t`` (indices into ``t``) and ``angles`` (one list per kept time of every
    neuron's plane angle, 0.1 degree); ``sign`` (of :math:`a_k`), ``fate`` and
    ``fate_theory`` (:func:`~reluflow.analysis.measure.simulated_fate`,
    :func:`~reluflow.analysis.theory.fate`); ``condensation_rate`` (median of
    :func:`~reluflow.analysis.measure.condensation_rates`), ``leader_angle``
    (deg: the leaders' mass-weighted mean direction at the last recorded time after
    ``t_condensed`` with :math:`\max_i|f(x_i)|\le` :data:`F_NEAR_SADDLE`, where this book
    predicts the target's direction), ``release_ratio`` (:math:`p\,e^{-f(x_+)} /
    ((1-p)\,e^{f(x_-)}\cos\Delta)` at ``t_reactivation``; this book's reactivation
    condition says 1),
    ``phase4_exponent`` and ``phase4_constant`` (:func:`reluflow.detect_phases`).
    """
    traj, data, rep = run.trajectory, run.data, run.report
    t = traj.t
    cfg = run.config
    idx = _angle_indices(t, min(early_window(cfg), float(t[-1])))
    phi = np.degrees(wrap_angle(plane_angles(traj.B[idx], data)))
    rates = condensation_rates(traj, data)
    tr = rep.t_reactivation
    return {
        "t": _sig(t), "L": _sig(traj.loss), "margin": _sig(traj.normalized_margin()),
        "f_plus": _sig(traj.f[:, 0]), "f_minus": _sig(traj.f[:, 1]),
        "angle_t": idx,
        "angles": [[round(float(x), 1) for x in row] for row in phi],
        "sign": [int(s) for s in np.sign(traj.a[0])],
        "fate": [str(x) for x in simulated_fate(traj, data)],
        "fate_theory": [str(x) for x in fate(data, cfg.params())],
        "condensation_rate": finite_or_none(np.nanmedian(rates)) if np.any(
            np.isfinite(rates)) else None,
        "leader_angle": _leader_direction(run),
        "release_ratio": None if tr is None else _release_ratio(run, tr),
        "phase4_exponent": finite_or_none(rep.values.get("phase4_exponent")),
        "phase4_constant": finite_or_none(rep.values.get("phase4_constant")),
    }


def run_explorer(config: Mapping[str, Any]) -> dict[str, Any]:
    """``run_fn`` of the explorer grid: one exact run on the ``"explore"`` grid, reduced.

    :func:`reluflow.runs.scaling.dense_summary` of the run merged with :func:`reduce_run`.
    """
    cfg = RunConfig.from_mapping(config).replace(grid="explore")
    run = simulate(cfg)
    return {**scaling.dense_summary(run), **reduce_run(run)}


def grid_records(grid: ExplorerGrid, root: str | os.PathLike[str], fast: bool,
                 workers: int = 2) -> list[dict[str, Any]]:
    """The records of every run of ``grid``, computed or read from the cache under ``root``.

    The cache folder is :func:`reluflow.runs.cache.cache_dir` ``(root, grid.name, fast)``:
    results are reused only by the same code, numerical libraries and run mode.  Records
    come in the order of :meth:`ExplorerGrid.configs`.
    """
    if not isinstance(grid, ExplorerGrid):
        raise ValueError(f"grid must be an ExplorerGrid, got {type(grid).__name__}")
    out = cache_dir(root, grid.name, bool(fast))
    return scaling.run_grid(grid.configs(), out, workers=workers, run_fn=run_explorer,
                            grid="explore")


@dataclass(frozen=True)
class Reading:
    """One row of an explorer's readout: a measured value next to this book's prediction.

    ``measured`` is ``None`` when the run never reached the event (by ``t_max``);
    ``predicted`` is ``None`` when the book derives no value for it (at all, or in this
    regime).  Strings are shown as they are (regimes, counts).
    """

    quantity: str
    measured: float | str | None
    predicted: float | str | None


def _predict(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    """A theory value, or ``None`` where the book derives none (the function says so)."""
    try:
        return finite_or_none(fn(*args, **kwargs))
    except ValueError:
        return None


def _setting(rec: Mapping[str, Any], cfg: RunConfig) -> list[Reading]:
    d = cfg.data()
    return [
        Reading("regime", rec["regime_measured"], rec["regime"]),
        Reading("end of condensation t_condensed", rec["t_condensed"], None),
        Reading("saddle escape t_escape", rec["t_escape"], rec["t_escape_pred_params"]),
        Reading("release t_reactivation", rec["t_reactivation"], None),
        Reading("plateau entry t_plateau", rec["t_plateau"], None),
        Reading("plateau escape t_plateau_escape", rec["t_plateau_escape"], None),
        Reading("start of Phase IV t_phase4", rec["t_phase4"], None),
        Reading("plateau loss", rec["plateau_loss"], plateau_level(d)),
        Reading("normalized margin γ(t_max); limit", rec["normalized_margin"], final_margin(d)),
    ]


def _phase1(rec: Mapping[str, Any], cfg: RunConfig) -> list[Reading]:
    d = cfg.data()
    reg = regime(d)
    target = math.degrees(float(wrap_angle(roles(d).target)))
    same = sum(a == b for a, b in zip(rec["fate"], rec["fate_theory"], strict=True))
    rate = None if reg == "mu-plus-only" else escape_rate(d)
    return [
        Reading("regime", rec["regime_measured"], rec["regime"]),
        Reading("end of condensation t_condensed", rec["t_condensed"], None),
        Reading("angle decay rate (median)", rec["condensation_rate"], rate),
        Reading("leaders' direction near the saddle (deg)", rec["leader_angle"], target),
        Reading("neurons whose fate is as predicted", f"{same} of {len(rec['fate'])}",
                f"{len(rec['fate'])} of {len(rec['fate'])}"),
    ]


def _phase2(rec: Mapping[str, Any], cfg: RunConfig) -> list[Reading]:
    d = cfg.data()
    return [
        Reading("regime", rec["regime_measured"], rec["regime"]),
        Reading("saddle escape t_escape (this draw)", rec["t_escape"],
                rec["t_escape_pred_params"]),
        Reading("saddle escape t_escape (mean draw)", rec["t_escape"],
                _predict(saddle_escape_time, d, cfg.kappa, m=cfg.m)),
        Reading("plateau entry t_plateau", rec["t_plateau"], None),
        Reading("plateau loss", rec["plateau_loss"], plateau_level(d)),
    ]


def _phase3(rec: Mapping[str, Any], cfg: RunConfig, slope: float | None) -> list[Reading]:
    d = cfg.data()
    main = regime(d) == "main"
    length = None
    if rec["t_plateau_escape"] is not None and rec["t_plateau"] is not None:
        length = rec["t_plateau_escape"] - rec["t_plateau"]
    return [
        Reading("regime", rec["regime_measured"], rec["regime"]),
        Reading("release t_reactivation", rec["t_reactivation"], None),
        Reading("p·e^−f₊ / ((1−p)·e^f₋·cos Δ) at release", rec["release_ratio"],
                1.0 if main else None),
        Reading("plateau length", length, None),
        Reading("plateau escape t_plateau_escape", rec["t_plateau_escape"], None),
        Reading("slope of t_plateau_escape in log(1/κ)", slope,
                _predict(plateau_escape_slope, d, "corrected", kappa=cfg.kappa)),
    ]


def _phase4(rec: Mapping[str, Any], cfg: RunConfig) -> list[Reading]:
    d = cfg.data()
    return [
        Reading("regime", rec["regime_measured"], rec["regime"]),
        Reading("start of Phase IV t_phase4", rec["t_phase4"], None),
        Reading("normalized margin γ(t_max); limit", rec["normalized_margin"], final_margin(d)),
        Reading("loss exponent α (L ∝ (t log t)^−α)", rec["phase4_exponent"], 1.0),
        Reading("4γ·t·log(t)·L at t_max", rec["phase4_constant"], 1.0),
    ]


def plateau_slopes(records: Iterable[Mapping[str, Any]]
                   ) -> dict[tuple[float, float], float | None]:
    r"""Measured slope of ``t_plateau_escape`` in :math:`\log(1/\kappa)` per :math:`(\Delta, p)`.

    The least-squares line (:func:`reluflow.analysis.measure.fit_line`) through the runs
    of each :math:`(\Delta, p)` that reached the plateau escape; ``None`` with fewer
    than two such :math:`\kappa`.
    """
    groups: dict[tuple[float, float], list[tuple[float, float | None]]] = {}
    for r in records:
        groups.setdefault((r["delta"], r["p"]), []).append(
            (math.log(1.0 / r["kappa"]), r["t_plateau_escape"]))
    out: dict[tuple[float, float], float | None] = {}
    for key, pts in groups.items():
        s, _, n = fit_line([x for x, _ in pts], [y for _, y in pts])
        out[key] = s if n >= 2 and math.isfinite(s) else None
    return out


def readouts(records: Sequence[Mapping[str, Any]], chapter: str
             ) -> dict[tuple[float, float, float], list[Reading]]:
    """The readout of ``chapter`` (a :data:`CHAPTERS` name) at every grid point.

    Keys are ``(delta, p, kappa)`` of the records (from :func:`grid_records`); values the
    rows the explorer shows for that point.
    """
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {', '.join(CHAPTERS)}, got {chapter!r}")
    slopes = plateau_slopes(records) if chapter == "phase3" else {}
    out: dict[tuple[float, float, float], list[Reading]] = {}
    for rec in records:
        cfg = RunConfig.from_mapping({k: rec[k] for k in FIELDS})
        key = (cfg.delta, cfg.p, cfg.kappa)
        if chapter == "phase3":
            out[key] = _phase3(rec, cfg, slopes[(cfg.delta, cfg.p)])
        else:
            out[key] = {"setting": _setting, "phase1": _phase1, "phase2": _phase2,
                        "phase4": _phase4}[chapter](rec, cfg)
    return out
