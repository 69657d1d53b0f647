r"""Parameter sweeps: a grid of runs, one result file per configuration, resumable.

A *configuration* is a flat dict of run parameters (see
:data:`reluflow.runs.config.FIELDS`).  A *grid* is a list of configurations, usually the
Cartesian product of the lists in a TOML spec file.  For each configuration :func:`run`
calls ``run_fn(config)`` (default :func:`run_config`: exact gradient flow from a random
small initialization, then ``reluflow.analysis.phases.detect_phases``) on any
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
    delta = [0.2, 0.3]
    p = [0.7]
    kappa = [1e-4, 1e-6]
    m = [100]
    seed = [0, 1]
    t_max = [1e4]

    [fixed]             # optional; every value a scalar
    loss = "exp"
    rtol = 1e-9

    [sweep]             # optional
    time_limit = 600    # seconds one configuration may run (default 3600)

The fields, their meaning, defaults and allowed ranges are those of
:class:`~reluflow.runs.config.RunConfig` (listed in :data:`reluflow.runs.config.FIELDS`;
``reluflow sweep --help`` prints them).  Any field may go in either table (a list in
``[grid]``, a scalar in ``[fixed]``), but not in both.  ``delta, p, kappa, m, seed,
t_max`` are required.  Unknown tables or fields, values of the wrong type and values out
of range raise :class:`SpecError` (a ``ValueError``) naming the field and its allowed
range; nothing is run or written in that case.

Robustness
----------
* Each result file is written atomically (temporary file in the same directory, then
  :func:`os.replace`); a reader never sees half a file.  Results are written by the
  coordinating process as they arrive, so workers need no shared file system.
* Re-running a sweep skips every configuration whose ``<hash>.json`` holds a complete
  record: an interrupted sweep (Ctrl-C, a killed worker, a killed coordinator) resumes with
  nothing lost (every finished result is on disk) and nothing duplicated (one file per
  hash).  An empty or damaged result file is removed and its configuration run again.
* The default pool's workers exit as soon as the coordinating process dies, so a killed
  sweep leaves nothing computing (:mod:`reluflow.runs.workers`).
* A configuration whose ``run_fn`` raises, or that runs longer than the time limit
  (``time_limit``; ``[sweep] time_limit`` in a spec), is recorded as ``<hash>.error.json``
  with its traceback, and the sweep goes on.  Failures are deterministic in this package,
  so a re-run does **not** retry them unless ``retry_failed=True`` (CLI:
  ``--retry-failed``); a later success removes the error file.
* At the end ``OUT/results.csv`` is rebuilt from the result files of the grid, sorted by the
  configuration values, so its content does not depend on the order in which runs finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import io
import itertools
import json
import os
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reluflow.engine import checks as v
from reluflow.runs.config import FIELDS, ConfigError, ConfigLike, RunConfig, simulate
from reluflow.runs.workers import TIME_LIMIT, WorkerPool, as_executor, guarded_call, process_pool

__all__ = [
    "SpecError",
    "SweepInterrupted",
    "SweepResult",
    "collect",
    "config_hash",
    "expand_grid",
    "load_spec",
    "normalize_config",
    "parse_spec",
    "read_spec",
    "run",
    "run_config",
    "spec_options",
]


RunFn = Callable[[dict[str, Any]], Mapping[str, Any]]

#: Configuration fields in the order used for sorting and for CSV columns.
_CONFIG_ORDER = tuple(FIELDS)


class SpecError(ConfigError):
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
def _config(config: ConfigLike, where: str = "") -> RunConfig:
    """:meth:`RunConfig.from_mapping` with its error turned into a :class:`SpecError`."""
    try:
        return RunConfig.from_mapping(config)
    except ConfigError as exc:
        raise SpecError(f"{where}{exc}") from None


def normalize_config(config: ConfigLike) -> dict[str, Any]:
    """Validate a configuration (:class:`~reluflow.runs.config.RunConfig`) as a plain dict.

    All fields in a fixed order with defaults filled in, so equal runs give equal dicts
    and equal :func:`config_hash`; raises :class:`SpecError` naming the field.
    """
    return _config(config).to_dict()


def config_hash(config: ConfigLike) -> str:
    """The 16-hex-digit name of a configuration (:meth:`~reluflow.runs.config.RunConfig.hash`)."""
    return _config(config).hash()


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
            raise SpecError(
                f"grid.{k} must be a non-empty list of values, each {FIELDS[k].describe()}")
        for i, val in enumerate(values):
            try:
                FIELDS[k].check(val)
            except ConfigError as exc:
                raise SpecError(f"grid.{k}[{i}]: {exc}") from None
    for k, val in fixed.items():
        if isinstance(val, list | dict):
            raise SpecError(f"fixed.{k} must be a single value, {FIELDS[k].describe()}")
        try:
            FIELDS[k].check(val)
        except ConfigError as exc:
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
    extra = [k for k in spec if k not in ("grid", "fixed", "sweep")]
    if extra:
        raise SpecError(f"{extra[0]}: unknown table; a spec has only [grid], [fixed] and "
                        "[sweep]")
    grid = spec.get("grid")
    if not isinstance(grid, Mapping) or not grid:
        raise SpecError("grid: the spec needs a non-empty [grid] table of lists")
    fixed = spec.get("fixed", {})
    if not isinstance(fixed, Mapping):
        raise SpecError("fixed: must be a table of single values")
    return expand_grid(grid, fixed)


def spec_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[sweep]`` table of a parsed spec, validated: ``{"time_limit": seconds or None}``.

    >>> spec_options({"sweep": {"time_limit": 60}})
    {'time_limit': 60.0}
    >>> spec_options({})["time_limit"] == TIME_LIMIT
    True
    """
    table = spec.get("sweep", {})
    if not isinstance(table, Mapping):
        raise SpecError("sweep: must be a table of options (time_limit)")
    unknown = [k for k in table if k != "time_limit"]
    if unknown:
        raise SpecError(f"sweep.{unknown[0]}: unknown option; allowed: time_limit")
    limit = table.get("time_limit", TIME_LIMIT)
    try:
        return {"time_limit": v.positive_finite("time_limit", limit)}
    except ValueError:
        raise SpecError(f"sweep.time_limit must be a number of seconds > 0, got {limit!r}"
                        ) from None


def read_spec(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read a TOML spec file: its configurations and its options (:func:`spec_options`).

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
    return parse_spec(spec), spec_options(spec)


def load_spec(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a TOML spec file (format: see the module docstring) and expand its grid."""
    return read_spec(path)[0]


# --------------------------------------------------------------------------- one run
def run_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The default ``run_fn`` of a sweep: :func:`~reluflow.runs.config.simulate`, summarised.

    Returns :meth:`Run.summary <reluflow.runs.config.Run.summary>` plus ``wall_time``
    (seconds, the only field that differs between two runs of the same configuration).
    """
    run = simulate(_config(config))
    return {**run.summary(), "wall_time": run.wall_time}


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


def _valid_record(path: Path, h: str, status: str) -> bool:
    """Whether ``path`` holds a complete record of configuration ``h`` with ``status``."""
    rec = _read_json(path)
    return rec is not None and rec.get("hash") == h and rec.get("status") == status


def _plan(configs: Sequence[dict[str, Any]], rdir: Path, retry_failed: bool
          ) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Configurations still to run, and how many are done.

    A result file that is empty, truncated or not the record of its hash (a file damaged
    outside this module: the sweep itself only ever writes complete files) is removed and
    its configuration run again.
    """
    todo: list[tuple[str, dict[str, Any]]] = []
    for cfg in configs:
        h = config_hash(cfg)
        ok, err = rdir / f"{h}.json", rdir / f"{h}.error.json"
        if ok.exists() and not _valid_record(ok, h, "ok"):
            ok.unlink()
        if err.exists() and not _valid_record(err, h, "error"):
            err.unlink()
        if not (ok.exists() or (not retry_failed and err.exists())):
            todo.append((h, cfg))
    return todo, len(configs) - len(todo)


def _store(rdir: Path, h: str, cfg: dict[str, Any], res: Mapping[str, Any]) -> None:
    rec = _record(cfg, h, res)
    if rec.get("status") == "ok":
        _atomic_write_text(rdir / f"{h}.json", json.dumps(rec, indent=1) + "\n")
        (rdir / f"{h}.error.json").unlink(missing_ok=True)
    else:
        _atomic_write_text(rdir / f"{h}.error.json", json.dumps(rec, indent=1) + "\n")


def _execute(todo: Sequence[tuple[str, dict[str, Any]]], run_fn: RunFn, ex: cf.Executor,
             rdir: Path, time_limit: float | None, bar: Any) -> tuple[int, str | None, list[str]]:
    """Submit every configuration, store results as they come: (n_run, interrupted, lost)."""
    futures: dict[cf.Future[dict[str, Any]], tuple[str, dict[str, Any]]] = {}
    lost: list[str] = []
    n_run = 0
    try:
        for h, cfg in todo:
            futures[ex.submit(guarded_call, run_fn, cfg, time_limit)] = (h, cfg)
        for fut in cf.as_completed(futures):
            h, cfg = futures[fut]
            try:
                res = fut.result()
            except cf.process.BrokenProcessPool:
                return n_run, ("a worker process died (BrokenProcessPool); results finished "
                               "before are kept, re-run the sweep to resume"), lost
            except cf.CancelledError:
                continue
            except Exception as exc:
                # Not raised by run_fn (guarded_call records those): the infrastructure lost
                # the task (a Dask worker killed too often, a pickling failure...).  Nothing
                # is recorded, so a re-run retries it.
                lost.append(f"{h}: {type(exc).__name__}: {exc}")
                bar.update(1)
                continue
            _store(rdir, h, cfg, res)
            n_run += 1
            bar.update(1)
    finally:
        for fut in futures:
            fut.cancel()
    return n_run, None, lost


def run(
    grid: Iterable[ConfigLike],
    run_fn: RunFn = run_config,
    executor: Any = None,
    out: str | os.PathLike[str] = "sweep_out",
    *,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
    time_limit: float | None = TIME_LIMIT,
) -> SweepResult:
    """Run every configuration of ``grid`` not yet done, writing one result file each.

    Parameters
    ----------
    grid : iterable of RunConfig or mapping
        Configurations (see :class:`~reluflow.runs.config.RunConfig`; e.g. from
        :func:`load_spec`).
    run_fn : callable
        ``run_fn(config) -> dict`` of JSON-able results; must be picklable (a module-level
        function).  Default :func:`run_config`.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where to run.  Default: a local ``spawn`` process pool with ``workers`` processes
        (default: the number of cores) whose workers die with this process, shut down at
        the end.  An executor passed in is left running.  A Dask ``Client`` is used through
        ``client.get_executor()``.
    out : path
        Output directory; results go to ``out/results/<hash>.json`` (failures to
        ``<hash>.error.json``), the table to ``out/results.csv``.
    workers : int, optional
        Size of the default pool, ``>= 1``.
    retry_failed : bool
        Also re-run configurations recorded as failed.
    progress : bool, optional
        Show a tqdm progress bar on stderr (default: only when stderr is a terminal).
    time_limit : float or None
        Seconds one configuration may run (default :data:`~reluflow.runs.workers.TIME_LIMIT`);
        a configuration that exceeds it is recorded as failed and the sweep goes on.
        ``None``: no limit.

    Returns
    -------
    SweepResult

    Raises
    ------
    SpecError
        Bad configuration, bad ``workers`` or ``time_limit``, or unusable ``out`` (nothing
        is written).
    SweepInterrupted
        A worker process died (``BrokenProcessPool``), the executor lost tasks, or the user
        pressed Ctrl-C.  Every result finished before that is on disk and in
        ``results.csv``; re-run to resume.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    configs = _unique_configs(grid)
    workers, time_limit = _check_options(workers, time_limit)
    given = None if executor is None else as_executor(executor)
    rdir, _ = prepare_out(out)
    todo, n_skipped = _plan(configs, rdir, retry_failed)
    interrupted: str | None = None
    lost: list[str] = []
    n_run = 0
    if todo:
        ex = process_pool(workers) if given is None else given
        bar = tqdm(total=len(todo), desc="sweep", unit="run",
                   disable=(not progress) if progress is not None else None, leave=False)
        try:
            n_run, interrupted, lost = _execute(todo, run_fn, ex, rdir, time_limit, bar)
        except KeyboardInterrupt:
            interrupted = "interrupted by the user (Ctrl-C); re-run the sweep to resume"
            if isinstance(ex, WorkerPool) and given is None:
                ex.terminate()
        finally:
            bar.close()
            if given is None:
                ex.shutdown(wait=True, cancel_futures=True)
    return _finish(Path(out), configs, n_run, n_skipped, t0, interrupted, lost)


def _unique_configs(grid: Iterable[ConfigLike]) -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, c in enumerate(grid):
        cfg = _config(c, f"grid[{i}]: ").to_dict()
        h = config_hash(cfg)
        if h not in seen:
            seen.add(h)
            configs.append(cfg)
    return configs


def _check_options(workers: Any, time_limit: Any) -> tuple[int | None, float | None]:
    try:
        w = None if workers is None else v.int_at_least("workers", workers, 1)
        limit = None if time_limit is None else v.positive_finite("time_limit", time_limit)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return w, limit


def _finish(outp: Path, configs: list[dict[str, Any]], n_run: int, n_skipped: int, t0: float,
            interrupted: str | None, lost: list[str]) -> SweepResult:
    """Rebuild ``results.csv`` and return the result (or raise :class:`SweepInterrupted`)."""
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
