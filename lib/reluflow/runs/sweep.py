r"""Parameter sweeps: a grid of runs, one result file per configuration, resumable.

A *configuration* is a flat dict of run parameters (see :data:`FIELDS`).  A *grid* is a list
of configurations, usually the Cartesian product of the lists in a TOML spec file.  For each
configuration :func:`run` calls ``run_fn(config)`` (default :func:`run_config`: exact gradient
flow from a random small initialization, then ``reluflow.analysis.phases.detect_phases``) on any
:class:`concurrent.futures.Executor` (default: a local process pool sized to the cores) or on a
Dask cluster (a ``dask.distributed.Client``), and writes the flat JSON result to

``OUT/results/<hash>.json``

where ``<hash>`` is :func:`config_hash`, the first 16 hex digits of the SHA-256 of the
canonical JSON of the *normalised* configuration (defaults filled in, numbers as floats or
ints), so the same run always gets the same name, whatever the order of the fields.

Spec format (TOML)
------------------
::

    # examples/sweep_small.toml
    [grid]              # every value a non-empty list; the grid is their Cartesian product
    delta = [0.2, 0.3]  # angle between x+ and x-, each in (0, pi)
    p = [0.7]           # weight of x+, each in (0, 1)
    kappa = [1e-4, 1e-6]  # initialization scale, each > 0
    m = [100]           # width, integers >= 1
    seed = [0, 1]       # integers >= 0
    t_max = [1e4]       # final time, each > 0

    [fixed]             # optional; every value a scalar
    d = 2               # input dimension, integer >= 2        (default 2)
    loss = "exp"        # "exp" or "logistic"                   (default "exp")
    balanced = true     # balanced initialization a_k = ±|b_k|  (default true)
    kappa_a = 1e-4      # output scale, > 0, only with balanced = false (default: kappa)
    rtol = 1e-9         # integrator tolerance, in [1e-14, 1e-3] (default 1e-9)

Any field may go in either table (a list in ``[grid]``, a scalar in ``[fixed]``), but not in
both.  ``delta, p, kappa, m, seed, t_max`` are required.  Unknown tables or fields, values of
the wrong type and values out of range raise :class:`SpecError` (a ``ValueError``) naming the
field and its allowed range; nothing is run or written in that case.

Robustness
----------
* Each result file is written atomically (temporary file in the same directory, then
  :func:`os.replace`); a reader never sees half a file.  Results are written by the
  coordinating process as they arrive, so workers need no shared file system.
* Re-running a sweep skips every configuration whose ``<hash>.json`` exists: an interrupted
  sweep (Ctrl-C, a killed worker, a killed coordinator) resumes with nothing lost (every
  finished result is on disk) and nothing duplicated (one file per hash).
* A configuration whose ``run_fn`` raises is recorded as ``<hash>.error.json`` with its
  traceback, and the sweep goes on.  Failures are deterministic in this package, so a re-run
  does **not** retry them unless ``retry_failed=True`` (CLI: ``--retry-failed``); a later
  success removes the error file.
* At the end ``OUT/results.csv`` is rebuilt from the result files of the grid, sorted by the
  configuration values, so its content does not depend on the order in which runs finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import platform
import tempfile
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reluflow.analysis.phases import PHASE_TIMES
from reluflow.engine import checks as v

__all__ = [
    "FIELDS",
    "PHASE_TIMES",
    "SpecError",
    "SweepInterrupted",
    "SweepResult",
    "collect",
    "config_hash",
    "expand_grid",
    "load_spec",
    "normalize_config",
    "parse_spec",
    "run",
    "run_config",
    "simulate",
    "summarize",
]


#: Required configuration fields, in the order used for sorting and for CSV columns.
REQUIRED = ("delta", "p", "kappa", "m", "seed", "t_max")

#: Optional configuration fields and their defaults.
DEFAULTS: dict[str, Any] = {
    "d": 2,
    "loss": "exp",
    "balanced": True,
    "kappa_a": None,
    "rtol": 1e-9,
}

#: Every configuration field with a description of its allowed range.
FIELDS: dict[str, str] = {
    "delta": "a number in the open interval (0, pi)",
    "p": "a number in the open interval (0, 1)",
    "kappa": "a finite number > 0",
    "m": "an integer >= 1",
    "seed": "an integer >= 0",
    "t_max": "a finite number > 0",
    "d": "an integer >= 2",
    "loss": "one of 'exp', 'logistic'",
    "balanced": "true or false",
    "kappa_a": "a finite number > 0 (only with balanced = false)",
    "rtol": "a number in the closed interval [1e-14, 1e-3]",
}

_CONFIG_ORDER = (*REQUIRED, *DEFAULTS)


class SpecError(ValueError):
    """A bad sweep spec or configuration; the message names the field and its allowed range."""


class SweepInterrupted(RuntimeError):
    """The sweep stopped early (a worker died or the user interrupted); re-run to resume.

    Attributes
    ----------
    result : SweepResult
        What was on disk when the sweep stopped (``results.csv`` is written for it).
    """

    def __init__(self, message: str, result: SweepResult) -> None:
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------- configs
def _check_field(name: str, value: Any) -> Any:
    """Validate one field value and return it normalised (float/int/str/bool/None)."""
    try:
        if name == "delta":
            return v.open_interval("delta", value, 0.0, math.pi, "(0, pi)")
        if name == "p":
            return v.open_interval("p", value, 0.0, 1.0)
        if name in ("kappa", "t_max"):
            return v.positive_finite(name, value)
        if name == "kappa_a":
            return None if value is None else v.positive_finite(name, value)
        if name == "rtol":  # the range gradient_flow accepts
            r = v.real_scalar("rtol", value)
            if not 1e-14 <= r <= 1e-3:
                raise ValueError(f"rtol must lie in [1e-14, 1e-3], got {value!r}")
            return r
        if name in ("m", "seed", "d"):
            lo = {"m": 1, "seed": 0, "d": 2}[name]
            if isinstance(value, float):  # 1e2 is fine, 2.5 is not
                if not value.is_integer():
                    raise ValueError(name)
                value = int(value)
            return v.int_at_least(name, value, lo)
        if name == "loss":
            return v.loss_name(value)
        if name == "balanced":
            if not isinstance(value, bool):
                raise ValueError(name)
            return value
    except ValueError:
        raise SpecError(f"{name} must be {FIELDS[name]}, got {value!r}") from None
    raise SpecError(f"unknown field {name!r}; allowed fields: {', '.join(FIELDS)}")


def normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    r"""Validate a configuration and fill in defaults.

    Parameters
    ----------
    config : mapping
        Field name to value; see :data:`FIELDS` for names and allowed ranges.

    Returns
    -------
    dict
        All fields of :data:`FIELDS` in a fixed order, values normalised (so equal runs give
        equal dicts and equal :func:`config_hash`).

    Raises
    ------
    SpecError
        Unknown field, missing required field, value out of range, or ``kappa_a`` given
        with ``balanced = true``.
    """
    if not isinstance(config, Mapping):
        raise SpecError(f"a configuration must be a mapping of fields, got {type(config).__name__}")
    unknown = [k for k in config if k not in FIELDS]
    if unknown:
        raise SpecError(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(FIELDS)}")
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise SpecError(f"missing required field {missing[0]!r} ({FIELDS[missing[0]]})")
    out = {k: _check_field(k, config.get(k, DEFAULTS.get(k))) for k in _CONFIG_ORDER}
    if out["balanced"] and out["kappa_a"] is not None:
        raise SpecError("kappa_a is only allowed with balanced = false")
    return out


def config_hash(config: Mapping[str, Any]) -> str:
    """The 16-hex-digit name of a configuration: SHA-256 of its canonical normalised JSON."""
    canon = json.dumps(normalize_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def expand_grid(grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None
                ) -> list[dict[str, Any]]:
    """The Cartesian product of the lists in ``grid``, each joined with ``fixed``.

    Every configuration is validated (:func:`normalize_config`); duplicates (after
    normalisation) are dropped, keeping the first.  Errors name the field as
    ``grid.<name>[<index>]`` or ``fixed.<name>``.
    """
    fixed = dict(fixed or {})
    for tab, content in (("grid", grid), ("fixed", fixed)):
        for k in content:
            if k not in FIELDS:
                raise SpecError(f"{tab}.{k}: unknown field; allowed fields: {', '.join(FIELDS)}")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise SpecError(f"{both[0]}: given in both [grid] and [fixed]; put it in one of them")
    for k, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise SpecError(f"grid.{k} must be a non-empty list of values, each {FIELDS[k]}")
        for i, val in enumerate(values):
            try:
                _check_field(k, val)
            except SpecError as exc:
                raise SpecError(f"grid.{k}[{i}]: {exc}") from None
    for k, val in fixed.items():
        if isinstance(val, list | dict):
            raise SpecError(f"fixed.{k} must be a single value, {FIELDS[k]}")
        try:
            _check_field(k, val)
        except SpecError as exc:
            raise SpecError(f"fixed.{k}: {exc}") from None
    keys = list(grid)
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        cfg = normalize_config({**fixed, **dict(zip(keys, combo, strict=True))})
        h = config_hash(cfg)
        if h not in seen:
            seen.add(h)
            configs.append(cfg)
    return configs


def parse_spec(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Turn a parsed spec (``{"grid": {...}, "fixed": {...}}``) into a list of configurations."""
    extra = [k for k in spec if k not in ("grid", "fixed")]
    if extra:
        raise SpecError(f"{extra[0]}: unknown table; a spec has only [grid] and [fixed]")
    grid = spec.get("grid")
    if not isinstance(grid, Mapping) or not grid:
        raise SpecError("grid: the spec needs a non-empty [grid] table of lists")
    fixed = spec.get("fixed", {})
    if not isinstance(fixed, Mapping):
        raise SpecError("fixed: must be a table of single values")
    return expand_grid(grid, fixed)


def load_spec(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a TOML spec file (format: see the module docstring) and expand its grid.

    Raises
    ------
    SpecError
        Missing or unreadable file, invalid TOML, or any invalid field.
    """
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"spec: no such file {str(p)!r}") from None
    except OSError as exc:
        raise SpecError(f"spec: cannot read {str(p)!r} ({exc.strerror})") from None
    try:
        spec = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"spec: {str(p)!r} is not valid TOML ({exc})") from None
    return parse_spec(spec)


# --------------------------------------------------------------------------- one run
def _num(x: Any) -> float | None:
    """A JSON-safe float (``None`` for missing or non-finite values)."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def summarize(traj: Any, report: Any) -> dict[str, Any]:
    r"""Flat JSON-able numbers of a finished run.

    ``final_loss`` is :math:`L(\theta(t_{\max}))`, ``normalized_margin`` is
    :math:`\min_i y_i f(x_i)/\lVert\theta\rVert^2` at :math:`t_{\max}`, ``invariant_drift`` is
    :attr:`reluflow.Trajectory.invariant_drift` (the largest relative change of
    :math:`a_k^2-\lVert b_k\rVert^2`, zero for the exact flow up to round-off), then the
    phase times of ``report`` (``None`` when a phase was not reached).
    """
    out: dict[str, Any] = {
        "t_final": _num(traj.t[-1]),
        "final_loss": _num(traj.loss[-1]),
        "normalized_margin": _num(traj.normalized_margin()[-1]),
        "invariant_drift": _num(traj.invariant_drift),
        "n_events": len(traj.events),
    }
    for name in PHASE_TIMES:
        out[name] = _num(getattr(report, name, None))
    return out


def simulate(config: Mapping[str, Any]) -> tuple[Any, Any, Any, float]:
    """Run one configuration: returns ``(trajectory, data, phase report, wall seconds)``.

    Builds :class:`~reluflow.TwoPointData` ``(delta, p, d)``, draws
    :func:`~reluflow.init_network` ``(m, d, kappa, seed, balanced, kappa_a)``, integrates
    :func:`~reluflow.gradient_flow` to ``t_max`` and runs
    ``reluflow.analysis.phases.detect_phases`` on the result.
    """
    from reluflow.analysis.phases import detect_phases
    from reluflow.engine.data import TwoPointData
    from reluflow.engine.flow import gradient_flow
    from reluflow.engine.network import init_network

    cfg = normalize_config(config)
    t0 = time.perf_counter()
    data = TwoPointData(cfg["delta"], cfg["p"], d=cfg["d"])
    params = init_network(cfg["m"], cfg["d"], cfg["kappa"], seed=cfg["seed"],
                          balanced=cfg["balanced"], kappa_a=cfg["kappa_a"])
    traj = gradient_flow(params, data, cfg["t_max"], loss=cfg["loss"], rtol=cfg["rtol"])
    report = detect_phases(traj, data)
    return traj, data, report, time.perf_counter() - t0


def run_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The default ``run_fn`` of a sweep: :func:`simulate` then :func:`summarize`.

    Returns the flat summary plus ``wall_time`` (seconds, the only field that differs between
    two runs of the same configuration).
    """
    traj, _data, report, wall = simulate(config)
    return {**summarize(traj, report), "wall_time": wall}


# --------------------------------------------------------------------------- files
def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same directory, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _guarded(run_fn: Callable[[dict[str, Any]], Mapping[str, Any]], config: dict[str, Any]
             ) -> dict[str, Any]:
    """Run ``run_fn(config)`` on a worker; an ``Exception`` becomes an error record.

    ``BaseException`` (``KeyboardInterrupt``, ``SystemExit``) and a killed process are not
    caught: those are interruptions, not results, and the configuration stays to do.
    """
    t0 = time.perf_counter()
    try:
        res = dict(run_fn(config))
    except Exception as exc:
        return {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "wall_time": time.perf_counter() - t0,
            "host": platform.node(),
        }
    res.setdefault("wall_time", time.perf_counter() - t0)
    res["status"] = "ok"
    res["host"] = platform.node()  # the machine that ran it (differs on a cluster)
    return res


def _record(config: dict[str, Any], h: str, res: Mapping[str, Any]) -> dict[str, Any]:
    """The stored record: hash, configuration, results, package version.

    Result keys that would shadow the configuration, ``hash`` or ``version`` are dropped:
    the configuration a file is named after is always the one it records.
    """
    from reluflow import __version__

    reserved = {*config, "hash", "version"}
    kept = {k: val for k, val in res.items() if k not in reserved}
    return {"hash": h, **config, **kept, "version": __version__}


def collect(out: str | os.PathLike[str], configs: Iterable[Mapping[str, Any]] | None = None
            ) -> list[dict[str, Any]]:
    """Read the result records under ``out/results`` (``ok`` and ``error`` ones).

    Parameters
    ----------
    out : path
        The sweep's output directory.
    configs : iterable of mapping, optional
        Restrict to these configurations (default: every result file present).

    Returns
    -------
    list of dict
        One record per configuration (a success wins over a stale error file), sorted by
        the configuration fields then the hash.
    """
    rdir = Path(out) / "results"
    wanted = None if configs is None else {config_hash(c) for c in configs}
    recs: dict[str, dict[str, Any]] = {}
    if rdir.is_dir():
        for path in sorted(rdir.glob("*.json")):
            if path.name.startswith("."):
                continue
            h = path.name.split(".")[0]
            if wanted is not None and h not in wanted:
                continue
            rec = _read_json(path)
            if rec is None:
                continue
            if h in recs and recs[h].get("status") == "ok":
                continue
            recs[h] = rec

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        fields = tuple((r.get(k) is None, str(type(r.get(k))), r.get(k) or 0)
                       for k in _CONFIG_ORDER)
        return (*fields, r.get("hash", ""))

    return sorted(recs.values(), key=key)


def _csv_columns(records: Sequence[Mapping[str, Any]]) -> list[str]:
    first = ["hash", *_CONFIG_ORDER, "status"]
    rest: list[str] = []
    for r in records:
        for k in r:
            if k not in first and k not in rest and k not in ("traceback",) \
                    and not isinstance(r[k], dict | list):
                rest.append(k)
    tail = [k for k in ("wall_time", "version", "host", "error") if k in rest]
    return first + [k for k in rest if k not in tail] + tail


def write_csv(path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]]) -> Path:
    """Write records as CSV atomically (empty cells for ``None``); returns the path."""
    path = Path(path)
    cols = _csv_columns(records)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    _atomic_write_text(path, buf.getvalue())
    return path


# --------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """What a sweep left on disk.

    Attributes
    ----------
    out : Path
        Output directory.
    records : list of dict
        The records of the grid's configurations found on disk (sorted, as in the CSV).
    n_total : int
        Number of configurations in the grid.
    n_run, n_skipped : int
        Configurations computed in this call / skipped because already done.
    wall_time : float
        Seconds spent in :func:`run`.
    csv_path : Path
        ``out/results.csv``.
    """

    out: Path
    records: list[dict[str, Any]]
    n_total: int
    n_run: int = 0
    n_skipped: int = 0
    wall_time: float = 0.0
    csv_path: Path = field(default_factory=Path)

    @property
    def n_ok(self) -> int:
        """Configurations with a successful result on disk."""
        return sum(r.get("status") == "ok" for r in self.records)

    @property
    def n_failed(self) -> int:
        """Configurations recorded as failed (``<hash>.error.json``)."""
        return sum(r.get("status") == "error" for r in self.records)

    @property
    def complete(self) -> bool:
        """Every configuration of the grid has a record (ok or error)."""
        return len(self.records) == self.n_total


def prepare_out(out: str | os.PathLike[str], subdir: str | None = "results"
                ) -> tuple[Path, list[Path]]:
    """Create ``out`` (and ``out/subdir``) and check that it is writable.

    Returns the directory to write to (``out/subdir``, or ``out`` when ``subdir`` is None)
    and the directories this call created (to remove on a later failure).  Raises
    :class:`SpecError` naming ``out`` if it cannot be used.
    """
    outp = Path(out)
    created: list[Path] = []
    rdir = outp if subdir is None else outp / subdir
    try:
        for d in dict.fromkeys((outp, rdir)):
            if not d.exists():
                d.mkdir()
                created.append(d)
            elif not d.is_dir():
                raise SpecError(f"out: {str(d)!r} exists and is not a directory")
        with tempfile.TemporaryFile(dir=rdir):
            pass
    except OSError as exc:
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise SpecError(f"out: cannot write to {str(outp)!r} ({exc.strerror or exc}); "
                        "it must be a writable directory") from None
    return rdir, created


def _default_executor(workers: int | None) -> cf.ProcessPoolExecutor:
    n = workers or os.cpu_count() or 1
    # "spawn": a clean interpreter per worker, safe even when the parent runs threads.
    return cf.ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))


def _as_executor(executor: Any) -> tuple[cf.Executor, bool]:
    """Accept a concurrent.futures Executor or a dask.distributed Client."""
    if isinstance(executor, cf.Executor):
        return executor, False
    get = getattr(executor, "get_executor", None)
    if callable(get) and type(executor).__module__.startswith("distributed"):
        return get(pure=False), True
    raise ValueError("executor must be a concurrent.futures.Executor or a "
                     f"dask.distributed.Client, got {type(executor).__name__}")


def _kill_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Terminate the worker processes of a pool this module created (on Ctrl-C)."""
    procs = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        with contextlib.suppress(Exception):
            proc.terminate()


def run(
    grid: Iterable[Mapping[str, Any]],
    run_fn: Callable[[dict[str, Any]], Mapping[str, Any]] = run_config,
    executor: Any = None,
    out: str | os.PathLike[str] = "sweep_out",
    *,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
) -> SweepResult:
    """Run every configuration of ``grid`` not yet done, writing one result file each.

    Parameters
    ----------
    grid : iterable of mapping
        Configurations (see :func:`normalize_config`; e.g. from :func:`load_spec`).
    run_fn : callable
        ``run_fn(config) -> dict`` of JSON-able results; must be picklable (a module-level
        function).  Default :func:`run_config`.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where to run.  Default: a local ``spawn`` process pool with ``workers`` processes
        (default: the number of cores), shut down at the end.  An executor passed in is left
        running.  A Dask ``Client`` is used through ``client.get_executor()``.
    out : path
        Output directory; results go to ``out/results/<hash>.json`` (failures to
        ``<hash>.error.json``), the table to ``out/results.csv``.
    workers : int, optional
        Size of the default pool, ``>= 1``.
    retry_failed : bool
        Also re-run configurations recorded as failed.
    progress : bool, optional
        Show a tqdm progress bar on stderr (default: only when stderr is a terminal).

    Returns
    -------
    SweepResult

    Raises
    ------
    SpecError
        Bad configuration, bad ``workers`` or unusable ``out`` (nothing is written).
    SweepInterrupted
        A worker process died (``BrokenProcessPool``) or the user pressed Ctrl-C.  Every
        result finished before that is on disk and in ``results.csv``; re-run to resume.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, c in enumerate(grid):
        try:
            cfg = normalize_config(c)
        except SpecError as exc:
            raise SpecError(f"grid[{i}]: {exc}") from None
        h = config_hash(cfg)
        if h not in seen:
            seen.add(h)
            configs.append(cfg)
    if workers is not None:
        try:
            workers = v.int_at_least("workers", workers, 1)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
    given = None if executor is None else _as_executor(executor)[0]
    rdir, _ = prepare_out(out)
    outp = Path(out)

    todo: list[tuple[str, dict[str, Any]]] = []
    n_skipped = 0
    for cfg in configs:
        h = config_hash(cfg)
        if (rdir / f"{h}.json").exists() or (
            not retry_failed and (rdir / f"{h}.error.json").exists()
        ):
            n_skipped += 1
        else:
            todo.append((h, cfg))

    interrupted: str | None = None
    lost: list[str] = []
    n_run = 0
    own = None
    if todo:
        if given is None:
            own = _default_executor(workers)
            ex: cf.Executor = own
        else:
            ex = given
        futures: dict[cf.Future[dict[str, Any]], tuple[str, dict[str, Any]]] = {}
        bar = tqdm(total=len(todo), desc="sweep", unit="run",
                   disable=(not progress) if progress is not None else None, leave=False)
        try:
            for h, cfg in todo:
                futures[ex.submit(_guarded, run_fn, cfg)] = (h, cfg)
            for fut in cf.as_completed(futures):
                h, cfg = futures[fut]
                try:
                    res = fut.result()
                except cf.process.BrokenProcessPool:
                    interrupted = ("a worker process died (BrokenProcessPool); results "
                                   "finished before are kept, re-run the sweep to resume")
                    break
                except cf.CancelledError:
                    continue
                except Exception as exc:
                    # Not raised by run_fn (``_guarded`` records those): the infrastructure
                    # lost the task (a Dask worker killed too often, a pickling failure...).
                    # Nothing is recorded, so a re-run retries it.
                    lost.append(f"{h}: {type(exc).__name__}: {exc}")
                    bar.update(1)
                    continue
                rec = _record(cfg, h, res)
                if rec.get("status") == "ok":
                    _atomic_write_text(rdir / f"{h}.json", json.dumps(rec, indent=1) + "\n")
                    (rdir / f"{h}.error.json").unlink(missing_ok=True)
                else:
                    _atomic_write_text(rdir / f"{h}.error.json",
                                       json.dumps(rec, indent=1) + "\n")
                n_run += 1
                bar.update(1)
        except KeyboardInterrupt:
            interrupted = "interrupted by the user (Ctrl-C); re-run the sweep to resume"
            if own is not None:
                _kill_workers(own)
        finally:
            bar.close()
            for fut in futures:
                fut.cancel()
            if own is not None:
                own.shutdown(wait=True, cancel_futures=True)

    records = collect(outp, configs)
    csv_path = write_csv(outp / "results.csv", records)
    result = SweepResult(out=outp, records=records, n_total=len(configs), n_run=n_run,
                         n_skipped=n_skipped, wall_time=time.perf_counter() - t0,
                         csv_path=csv_path)
    if interrupted is None and lost:
        interrupted = (f"{len(lost)} configuration(s) were lost by the executor (first: "
                       f"{lost[0]}); re-run the sweep to retry them")
    if interrupted is not None:
        raise SweepInterrupted(
            f"sweep stopped after {len(records)} of {len(configs)} configurations: "
            f"{interrupted}", result)
    return result
