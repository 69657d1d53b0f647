r"""One run of the two-point setting: its configuration, allowed ranges, and :func:`simulate`.

Everything that starts an exact run of the book's setting (the command line, sweeps, the
scaling and explorer grids, the live explorer) builds a :class:`RunConfig` and calls
:func:`simulate`, so there is one list of fields, one statement of each field's allowed
range (:data:`FIELDS`), one hash and one way from a configuration to a trajectory:

.. math::

    x_+ = e_1,\ x_- = (\cos\Delta, \sin\Delta, 0, \dots),\quad
    b_k(0) = \kappa u_k,\ a_k(0) = s_k \lVert b_k(0)\rVert,\quad
    \dot\theta = -\nabla L(\theta)\ \text{on}\ [0, t_{\max}].

Examples
--------
>>> cfg = RunConfig(delta=0.3, p=0.7, kappa=1e-4, m=8, seed=0, t_max=50.0)
>>> cfg.hash() == RunConfig.from_mapping(cfg.to_dict()).hash()
True
>>> run = simulate(cfg)
>>> bool(run.trajectory.loss[-1] < run.trajectory.loss[0])
True
>>> RunConfig(delta=4.0, p=0.7, kappa=1e-4, m=8, seed=0, t_max=50.0)
Traceback (most recent call last):
...
reluflow.runs.config.ConfigError: delta must be a number in the open interval (0, pi), got 4.0
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.phases import PHASE_TIMES, PhaseReport, detect_phases
from reluflow.analysis.theory.phase2 import escape_rate
from reluflow.analysis.theory.scaling import horizon, loss_scale
from reluflow.engine import checks as v
from reluflow.engine.data import TwoPointData
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import Params, init_network
from reluflow.engine.trajectory import Trajectory, default_times

__all__ = [
    "FIELDS",
    "GRIDS",
    "N_EARLY",
    "N_LIN",
    "N_LOG",
    "N_LOG_TIMES",
    "REQUIRED",
    "ConfigError",
    "ConfigLike",
    "Field",
    "Run",
    "RunConfig",
    "early_window",
    "explore_times",
    "finite_or_none",
    "recording_times",
    "simulate",
]

Array = NDArray[np.float64]

#: Recording grids: ``"log"`` (:func:`~reluflow.engine.trajectory.default_times`),
#: ``"dense"`` (a linear grid over the first three phases, then a log tail; see
#: :func:`recording_times`) or ``"explore"`` (the dense grid refined over Phase I and on a
#: log grid from t = 0.01, for the book's static explorers; see :func:`explore_times`).
GRIDS = ("log", "dense", "explore")


class ConfigError(ValueError):
    """A bad run configuration; the message names the field and its allowed range."""


@dataclass(frozen=True)
class Field:
    r"""One configuration field: its kind, allowed range, explorer range and meaning.

    Attributes
    ----------
    name : str
        Field name (the :class:`RunConfig` attribute, the spec key, ``--name`` on the CLI).
    kind : {"real", "int", "choice", "bool", "optional-real"}
        Type of the value.
    low, high : float
        Bounds of the allowed interval (``kind`` real or int).
    closed : tuple of bool
        Whether ``low`` and ``high`` belong to the interval.
    choices : tuple
        Allowed values (``kind == "choice"``).
    explore : tuple of float or None
        The part of the range the book's explorers offer (sliders), inside the allowed one.
    log : bool
        Whether the explorers move the value on a log scale.
    help : str
        What the field means.
    """

    name: str
    kind: str
    help: str
    low: float = -math.inf
    high: float = math.inf
    closed: tuple[bool, bool] = (False, False)
    choices: tuple[Any, ...] = ()
    explore: tuple[float, float] | None = None
    log: bool = False

    def describe(self) -> str:
        """The allowed range in words, as error messages and help texts quote it.

        >>> FIELDS["delta"].describe()
        'a number in the open interval (0, pi)'
        >>> FIELDS["m"].describe()
        'an integer >= 1'
        >>> FIELDS["rtol"].describe()
        'a number in the interval [1e-14, 1e-3]'
        """
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "bool":
            return "true or false"
        lo, hi = _number(self.low), _number(self.high)
        if self.kind == "int":
            return f"an integer in [{lo}, {hi}]" if math.isfinite(self.high) else (
                f"an integer >= {lo}")
        extra = " (only with balanced = false)" if self.kind == "optional-real" else ""
        if self.closed == (False, False):
            if not math.isfinite(self.high):
                return f"a finite number > {lo}{extra}"
            return f"a number in the open interval ({lo}, {hi}){extra}"
        left = "[" if self.closed[0] else "("
        right = "]" if self.closed[1] else ")"
        return f"a number in the interval {left}{lo}, {hi}{right}{extra}"

    def check(self, value: Any) -> Any:
        """Return ``value`` normalised (float, int, str, bool or None), or raise ConfigError."""
        try:
            return self._check(value)
        except ValueError:
            raise ConfigError(f"{self.name} must be {self.describe()}, got {value!r}") from None

    def check_explore(self, value: Any) -> Any:
        """:meth:`check`, and also inside the explorers' range :attr:`explore` (closed).

        >>> FIELDS["kappa"].check_explore(1.0)
        Traceback (most recent call last):
        ...
        reluflow.runs.config.ConfigError: kappa must lie in [1e-12, 0.1] for the explorer, got 1.0
        """
        x = self.check(value)
        if self.explore is not None and not self.explore[0] <= x <= self.explore[1]:
            lo, hi = self.explore
            raise ConfigError(
                f"{self.name} must lie in [{lo:g}, {hi:g}] for the explorer, got {value!r}")
        return x

    def _check(self, value: Any) -> Any:
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(self.name)
            return value
        if self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                raise ValueError(self.name)
            return bool(value)
        if self.kind == "optional-real" and value is None:
            return None
        if self.kind == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # 1e2 is fine, 2.5 is not
            x: float = v.int_at_least(self.name, value, int(self.low))
        else:
            x = v.real_scalar(self.name, value)
        ok_lo = x >= self.low if self.closed[0] else x > self.low
        ok_hi = x <= self.high if self.closed[1] else x < self.high
        if not (ok_lo and ok_hi):
            raise ValueError(self.name)
        return int(x) if self.kind == "int" else float(x)


def _number(x: float) -> str:
    """A bound as error messages print it: ``pi``, ``1e-3`` (not ``0.001``), ``0.5``."""
    if x == math.pi:
        return "pi"
    if x != 0 and math.isfinite(x) and (abs(x) < 1e-2 or abs(x) >= 1e5):
        mant, exp = f"{x:e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return f"{x:g}"


_FIELD_LIST = (
    Field("delta", "real", "angle between x+ and x- (radians)", 0.0, math.pi,
          explore=(0.02, 1.5)),
    Field("p", "real", "weight of x+ (fraction of the samples at x+)", 0.0, 1.0,
          explore=(0.05, 0.95)),
    Field("kappa", "real", "initialization scale", 0.0, math.inf,
          explore=(1e-12, 1e-1), log=True),
    Field("m", "int", "width (number of neurons)", 1, math.inf, (True, False),
          explore=(1, 1000), log=True),
    Field("seed", "int", "seed of the initialization (numpy.random.default_rng)", 0,
          math.inf, (True, False), explore=(0, 2**32 - 1)),
    Field("t_max", "real", "final time (gradient-flow time units)", 0.0, math.inf,
          explore=(1e-1, 1e30), log=True),
    Field("d", "int", "input dimension", 2, math.inf, (True, False)),
    Field("loss", "choice", "loss function", choices=v.LOSSES),
    Field("balanced", "bool", "balanced initialization a_k = ±|b_k|"),
    Field("kappa_a", "optional-real", "output-weight scale of an unbalanced start",
          0.0, math.inf),
    Field("rtol", "real", "tolerance of the exact integrator", *v.RTOL_RANGE, (True, True)),
    Field("grid", "choice", "recording grid: 'log', 'dense' (linear over phases I-III) or "
          "'explore' (dense, refined over phase I and log-spaced)", choices=GRIDS),
)

#: Every configuration field by name, in the order of :class:`RunConfig`.
FIELDS: dict[str, Field] = {f.name: f for f in _FIELD_LIST}

#: Fields without a default: a spec, a CLI call or a :class:`RunConfig` must give them.
REQUIRED = ("delta", "p", "kappa", "m", "seed", "t_max")


@dataclass(frozen=True)
class RunConfig:
    r"""The configuration of one exact run of the two-point setting (validated, hashable).

    Every field is checked against :data:`FIELDS` on construction; an invalid value raises
    :class:`ConfigError` naming the field and its allowed range.  ``kappa_a`` is only
    allowed with ``balanced=False``.
    """

    delta: float
    p: float
    kappa: float
    m: int
    seed: int
    t_max: float
    d: int = 2
    loss: str = "exp"
    balanced: bool = True
    kappa_a: float | None = None
    rtol: float = 1e-9
    grid: str = "log"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, FIELDS[f.name].check(getattr(self, f.name)))
        if self.balanced and self.kappa_a is not None:
            raise ConfigError("kappa_a is only allowed with balanced = false")

    @classmethod
    def from_mapping(cls, config: ConfigLike) -> RunConfig:
        """Build from a mapping of field names (unknown or missing fields raise ConfigError)."""
        if isinstance(config, RunConfig):
            return config
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"a configuration must be a mapping of fields, got {type(config).__name__}")
        unknown = [k for k in config if k not in FIELDS]
        if unknown:
            raise ConfigError(
                f"unknown field {unknown[0]!r}; allowed fields: {', '.join(FIELDS)}")
        missing = [k for k in REQUIRED if k not in config]
        if missing:
            name = missing[0]
            raise ConfigError(f"missing required field {name!r} ({FIELDS[name].describe()})")
        return cls(**dict(config))

    def to_dict(self) -> dict[str, Any]:
        """All fields in a fixed order (plain JSON-able values)."""
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """The 16-hex-digit name of the run: SHA-256 of the canonical JSON of its fields."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def data(self) -> TwoPointData:
        r"""The data set :math:`(x_\pm, p)` in :math:`\mathbb R^d`."""
        return TwoPointData(self.delta, self.p, d=self.d)

    def params(self) -> Params:
        """The initial parameters (:func:`~reluflow.init_network` with this seed)."""
        return init_network(self.m, self.d, self.kappa, seed=self.seed,
                            balanced=self.balanced, kappa_a=self.kappa_a)

    def times(self) -> Array:
        """The recorded times of the run's recording ``grid``."""
        if self.grid == "log":
            return default_times(self.t_max)
        if self.grid == "explore":
            return explore_times(self)
        return recording_times(self)


#: Recorded times on the linear part of the grid (over the first three phases).
N_LIN = 240
#: Recorded times on the logarithmic tail (from the horizon to ``t_max``).
N_LOG = 30


def recording_times(config: ConfigLike, n_lin: int = N_LIN,
                    n_log: int = N_LOG) -> Array:
    r"""Recording grid of a configuration: ``0``, a linear grid to the horizon, a log tail.

    The linear part has ``n_lin`` steps over :math:`[0, \min(H, t_{\max})]` with
    :math:`H` = :func:`reluflow.analysis.theory.horizon`; if :math:`t_{\max} > 1.01H`,
    ``n_log`` log-spaced times follow from :math:`1.01H` to :math:`t_{\max}`.
    """
    cfg = RunConfig.from_mapping(config)
    nl = v.int_at_least("n_lin", n_lin, 2)
    ng = v.int_at_least("n_log", n_log, 1)
    h = min(horizon(cfg.delta, cfg.p, cfg.kappa, cfg.loss, cfg.kappa_a), cfg.t_max)
    grid = np.linspace(0.0, h, nl + 1)
    if cfg.t_max > 1.01 * h:
        grid = np.concatenate([grid, np.geomspace(1.01 * h, cfg.t_max, ng)])
    return np.asarray(grid, dtype=np.float64)


#: Recorded times over Phase I on the ``"explore"`` grid (linear, from 0).
N_EARLY = 160
#: Log-spaced recorded times of the ``"explore"`` grid (from ``t = 0.01`` to ``t_max``).
N_LOG_TIMES = 60


def early_window(config: ConfigLike) -> float:
    r"""Leading-order saddle-escape time :math:`c\log(1/\kappa)/\lambda`; Phase I ends before.

    :math:`\lambda` = :func:`reluflow.analysis.theory.escape_rate`, :math:`c` =
    :func:`reluflow.analysis.theory.loss_scale`, :math:`\kappa` the larger of the two
    scales of an unbalanced start.
    """
    cfg = RunConfig.from_mapping(config)
    k = cfg.kappa if cfg.kappa_a is None else max(cfg.kappa, cfg.kappa_a)
    return loss_scale(cfg.loss) * math.log(1.0 / v.small_kappa(k)) / escape_rate(cfg.data())


def explore_times(config: ConfigLike) -> Array:
    r"""The ``"explore"`` recording grid: the dense grid, refined early and on a log scale.

    The union of :func:`recording_times` (linear to the horizon :math:`H`, then a log
    tail), :data:`N_EARLY` linear steps over :math:`[0, \min(T_1, H, t_{\max})]` with
    :math:`T_1` = :func:`early_window`, and :data:`N_LOG_TIMES` log-spaced times from
    :math:`\min(0.01, t_{\max}/100)` to :math:`t_{\max}`, for curves drawn against
    :math:`\log t`.  Needs :math:`\Delta < \pi/2`.

    >>> t = explore_times(RunConfig(delta=0.3, p=0.7, kappa=1e-6, m=4, seed=0, t_max=1e30))
    >>> bool(t[0] == 0.0 and t[-1] == 1e30 and np.all(np.diff(t) > 0)), t.size > 400
    (True, True)
    """
    cfg = RunConfig.from_mapping(config)
    if not cfg.delta < 0.5 * math.pi:
        raise ConfigError(f"delta must lie in (0, pi/2) for the explore grid, got {cfg.delta}")
    dense = recording_times(cfg)
    h = min(horizon(cfg.delta, cfg.p, cfg.kappa, cfg.loss, cfg.kappa_a), cfg.t_max)
    early = np.linspace(0.0, min(early_window(cfg), h), N_EARLY + 1)
    logs = np.geomspace(min(1e-2, cfg.t_max / 100.0), cfg.t_max, N_LOG_TIMES)
    return np.asarray(np.unique(np.concatenate([dense, early, logs])), dtype=np.float64)


#: What the functions taking a run configuration accept.
ConfigLike = RunConfig | Mapping[str, Any]


@dataclass(frozen=True)
class Run:
    """A finished run: its configuration, data, trajectory, phase report and wall time."""

    config: RunConfig
    data: TwoPointData
    trajectory: Trajectory
    report: PhaseReport
    wall_time: float

    def summary(self) -> dict[str, Any]:
        r"""Flat JSON-able numbers of the run (``None`` for what did not happen).

        ``final_loss`` is :math:`L(\theta(t_{\max}))`, ``normalized_margin`` is
        :math:`\min_i y_i f(x_i)/\lVert\theta\rVert^2` at :math:`t_{\max}`,
        ``invariant_drift`` is :attr:`reluflow.Trajectory.invariant_drift` (the largest
        relative change of :math:`a_k^2-\lVert b_k\rVert^2`, zero for the exact flow up
        to round-off), then the phase times of the report.
        """
        traj = self.trajectory
        out: dict[str, Any] = {
            "t_final": finite_or_none(traj.t[-1]),
            "final_loss": finite_or_none(traj.loss[-1]),
            "normalized_margin": finite_or_none(traj.normalized_margin()[-1]),
            "invariant_drift": finite_or_none(traj.invariant_drift),
            "n_events": len(traj.events),
        }
        for name in PHASE_TIMES:
            out[name] = finite_or_none(getattr(self.report, name, None))
        return out


def finite_or_none(x: Any) -> float | None:
    """A JSON-safe float: ``None`` for missing or non-finite values.

    >>> finite_or_none(2), finite_or_none(float("nan")), finite_or_none(None)
    (2.0, None, None)
    """
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


Engine = Callable[..., Trajectory]


def simulate(config: ConfigLike, *, engine: Engine | None = None) -> Run:
    r"""Run one configuration: data, initialization, exact flow, phase report.

    Parameters
    ----------
    config : RunConfig or mapping
        The run (a mapping is validated with :meth:`RunConfig.from_mapping`).
    engine : callable, optional
        ``engine(params, data, t_max, times=..., loss=..., rtol=...) -> Trajectory``;
        default :func:`reluflow.gradient_flow`, the exact integrator.

    Returns
    -------
    Run
        With :func:`reluflow.detect_phases` of the trajectory and the wall time of the
        whole call (seconds).
    """
    cfg = RunConfig.from_mapping(config)
    flow = gradient_flow if engine is None else engine
    t0 = time.perf_counter()
    data = cfg.data()
    traj = flow(cfg.params(), data, cfg.t_max, times=cfg.times(), loss=cfg.loss, rtol=cfg.rtol)
    report = detect_phases(traj, data)
    return Run(cfg, data, traj, report, time.perf_counter() - t0)
