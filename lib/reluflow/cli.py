r"""The ``reluflow`` command line (also ``python -m reluflow``).

Commands
--------
``reluflow simulate --delta D --p P --kappa K --m M --seed S --t-max T --out DIR``
    One exact gradient-flow run from a random small initialization; writes
    ``DIR/trajectory.npz``, ``DIR/summary.json`` and ``DIR/overview.png`` and prints a table.
``reluflow phases DIR/trajectory.npz``
    The phase report (``reluflow.analysis.phases.detect_phases``) of a saved run.
``reluflow sweep SPEC.toml --out DIR [--workers N] [--scheduler ADDRESS]``
    A resumable parameter sweep (format of the spec: :mod:`reluflow.runs.sweep`).

Exit codes: 0 success; 1 the run failed, a configuration of a sweep failed or a sweep was
interrupted (re-run it to resume); 2 bad input (bad value, bad spec, missing file,
unwritable output directory) with one message naming the field and its allowed range, and
nothing written; 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from reluflow.runs import sweep as sw
from reluflow.runs.config import FIELDS, REQUIRED, ConfigError, RunConfig, simulate

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _field(name: str) -> Any:
    """An argparse ``type`` that checks a value against :data:`FIELDS` (the API's ranges)."""
    spec = FIELDS[name]

    def conv(text: str) -> Any:
        val: Any = text
        if spec.kind not in ("choice", "bool"):
            try:
                val = int(text)
            except ValueError:
                try:
                    val = float(text)
                except ValueError:
                    raise argparse.ArgumentTypeError(
                        f"{name} must be {spec.describe()}, got {text!r}") from None
        try:
            return spec.check(val)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    conv.__name__ = name
    return conv


def _help(name: str, default: str = "") -> str:
    """``--name`` help: the field's meaning and allowed range from :data:`FIELDS`."""
    spec = FIELDS[name]
    return f"{spec.help}; {spec.describe()}" + (f" (default {default})" if default else "")


def _seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"time-limit must be a number of seconds > 0, "
                                         f"got {text!r}")
    return x


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"workers must be an integer >= 1, got {text!r}")
    return n


def _sweep_epilog() -> str:
    """The ``reluflow sweep --help`` epilog: the spec format and every field's range."""
    lines = [f"  {f.name:<9} {f.help}; {f.describe()}" for f in FIELDS.values()]
    return (
        "spec format (TOML): the grid is the Cartesian product of the lists in [grid];\n"
        "[fixed] holds single values shared by every configuration.\n\n"
        "  [grid]\n  delta = [0.2, 0.3]\n  p = [0.7]\n  kappa = [1e-4, 1e-6]\n"
        "  m = [100]\n  seed = [0, 1]\n  t_max = [1e4]\n  [fixed]\n  loss = \"exp\"\n\n"
        "fields (any field may go in either table, not both; delta, p, kappa, m, seed,\n"
        "t_max are required):\n" + "\n".join(lines) + "\n\n"
        "Results: DIR/results/<hash>.json (one per configuration, written atomically;\n"
        "failures as <hash>.error.json with the traceback), table DIR/results.csv.\n"
        "Re-running the same command skips finished configurations (resume after Ctrl-C\n"
        "or a killed worker); --retry-failed also re-runs the failed ones.\n"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``reluflow`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="reluflow", description="Exact gradient flow of two-layer ReLU "
                     "networks on two data points (Wang & Ma, NeurIPS 2023 companion).",
                     formatter_class=fmt)
    from reluflow import __version__
    parser.add_argument("--version", action="version", version=f"reluflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sim = sub.add_parser(
        "simulate", formatter_class=fmt, help="one run: trajectory, summary and overview figure",
        description="Train a width-m bias-free ReLU network by exact gradient flow on the "
        "two-point data (x+ = e1 with weight p, x- at angle delta with weight 1-p) from "
        "a random small initialization of scale kappa, detect the four phases, and write "
        "DIR/trajectory.npz, DIR/summary.json and DIR/overview.png.")
    for name in REQUIRED:
        sim.add_argument(f"--{name.replace('_', '-')}", type=_field(name), required=True,
                         help=_help(name))
    sim.add_argument("--d", type=_field("d"), default=2, help=_help("d", "2"))
    sim.add_argument("--loss", type=_field("loss"), default="exp", help=_help("loss", "exp"))
    sim.add_argument("--unbalanced", action="store_true",
                     help="output weights a_k = kappa_a * N(0,1) instead of ±|b_k|")
    sim.add_argument("--kappa-a", type=_field("kappa_a"), default=None,
                     help=_help("kappa_a", "kappa"))
    sim.add_argument("--rtol", type=_field("rtol"), default=1e-9, help=_help("rtol", "1e-9"))
    sim.add_argument("--grid", type=_field("grid"), default="log", help=_help("grid", "log"))
    sim.add_argument("--out", required=True, metavar="DIR", help="output directory")

    ph = sub.add_parser("phases", formatter_class=fmt, help="phase report of a saved run",
                        description="Print the phase report (detect_phases) of a trajectory "
                        "saved by `reluflow simulate` (DIR/trajectory.npz).")
    ph.add_argument("trajectory", metavar="TRAJECTORY.npz", help="a saved trajectory")
    ph.add_argument("--json", action="store_true", help="print the report as JSON")

    swp = sub.add_parser(
        "sweep", formatter_class=fmt, help="a resumable parameter sweep from a TOML spec",
        description="Run every configuration of the grid in SPEC (process pool by default, "
        "or a Dask cluster with --scheduler), one result file per configuration.",
        epilog=_sweep_epilog())
    swp.add_argument("spec", metavar="SPEC.toml", help="sweep specification (format below)")
    swp.add_argument("--out", required=True, metavar="DIR", help="output directory")
    swp.add_argument("--workers", type=_workers, default=None,
                     help="local process-pool size, integer >= 1 (default: number of cores)")
    swp.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="run on a Dask cluster, e.g. tcp://127.0.0.1:8786 (needs the "
                     "'dask' extra; workers must be able to import reluflow)")
    swp.add_argument("--time-limit", type=_seconds, default=None, metavar="SECONDS",
                     help="seconds one configuration may run before it is recorded as "
                     "failed (default: the spec's [sweep] time_limit, else 3600)")
    swp.add_argument("--retry-failed", action="store_true",
                     help="also re-run configurations recorded as failed")
    swp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="tqdm progress bar on stderr (default: when stderr is a terminal)")
    return parser


# --------------------------------------------------------------------------- helpers
def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool) or isinstance(x, int | str):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.4g}"
    return str(x)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _finite_json(obj: Any) -> Any:
    """Replace non-finite floats by ``None`` so the JSON is strict."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _finite_json(val) for k, val in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_json(x) for x in obj]
    return obj


# --------------------------------------------------------------------------- commands
def cmd_simulate(args: argparse.Namespace) -> int:
    """``reluflow simulate``: run, then put the three files in place as one folder."""
    if args.kappa_a is not None and not args.unbalanced:
        raise UsageError("--kappa-a: only allowed together with --unbalanced")
    fields = {name: getattr(args, name) for name in FIELDS if name != "balanced"}
    try:
        config = RunConfig(**fields, balanced=not args.unbalanced)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    _check_run_folder(out)
    stage = _new_stage(out)
    try:
        run = simulate(config)
        _write_run(run, stage)
        _swap_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _print_run(run, out)
    return EXIT_OK


#: The files ``reluflow simulate`` writes: a folder holding only these is a previous run.
RUN_FILES = ("trajectory.npz", "summary.json", "overview.png")
_STAGE = ".reluflow-stage-"


def _check_run_folder(out: Path) -> None:
    """``--out`` must be new, empty or a previous run's folder (it is replaced whole)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {str(out)!r} exists and is not a directory")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES)
        if other:
            raise UsageError(f"--out: {str(out)!r} holds files other than a previous run's "
                             f"({', '.join(other[:3])}); choose a new or empty folder")
    parent = out.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"--out: cannot create {str(out)!r}: it must be a writable directory "
                         "(its parent folder is missing or not writable)")


def _new_stage(out: Path) -> Path:
    """A fresh staging folder beside ``out``; stale ones of killed runs are removed first."""
    parent = out.resolve().parent
    for old in parent.glob(f"{_STAGE}{out.name}-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    stage = parent / f"{_STAGE}{out.name}-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    return stage


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap_into_place(stage: Path, out: Path) -> None:
    """Replace ``out`` by ``stage`` with renames: readers see the old run or the new one."""
    if not out.exists():
        os.rename(stage, out)
        return
    old = stage.with_name(stage.name + "-old")
    os.rename(out, old)
    try:
        os.rename(stage, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_run(run: Any, stage: Path) -> None:
    """Write ``overview.png``, ``trajectory.npz`` and ``summary.json`` of a run into ``stage``."""
    from reluflow import __version__
    from reluflow.viz.plots import overview_figure

    # drawn without pyplot (Agg canvas): no GUI backend, no process-wide setting
    fig = overview_figure(run.trajectory, run.data, run.report)
    fig.patch.set_facecolor("white")
    fig.savefig(stage / "overview.png", dpi=150, facecolor="white")
    run.trajectory.save(stage / "trajectory.npz")
    summary = {
        "parameters": run.config.to_dict(),
        "version": __version__,
        **run.summary(),
        "phases": run.report.to_dict(),
        "wall_time": run.wall_time,
        "engine": run.trajectory.info,
    }
    text = json.dumps(_finite_json(json.loads(json.dumps(summary, default=_json_default))),
                      indent=1)
    (stage / "summary.json").write_text(text + "\n", encoding="utf-8")


#: What each early stop of the engine (``Trajectory.info["stop"]``) means, for the printed run.
_STOPS = {
    "stationary": "a stationary point, the state is the same at every later time",
    "stiff": "the flow relaxes at a fixed rate in t, too many steps for the explicit "
             "integrator to reach t_max",
    "resolution": "the flow changes faster than float64 resolves log(1 + t) at that t",
}


def _print_run(run: Any, out: Path) -> None:
    """The table ``reluflow simulate`` prints after a run."""
    from reluflow.analysis.phases import PHASE_TIMES

    c, s = run.config, run.summary()
    print(f"reluflow simulate: delta={c.delta:g} p={c.p:g} kappa={c.kappa:g} m={c.m} "
          f"seed={c.seed} t_max={c.t_max:g} d={c.d} loss={c.loss} balanced={c.balanced}")
    rows = [[k, s[k]] for k in (*PHASE_TIMES, "final_loss", "normalized_margin",
                                "invariant_drift", "n_events")]
    print(_table([*rows, ["wall_time [s]", run.wall_time]], ["quantity", "value"]))
    print(f"regime: {getattr(run.report, 'regime', '-')}; phase times are gradient-flow "
          f"times ('-': not reached); full report: reluflow phases {out / 'trajectory.npz'}")
    stop = run.trajectory.info.get("stop")
    if stop:
        print(f"note: the engine stopped the run at t = {stop['t']:.6g} ({stop['reason']}: "
              f"{_STOPS.get(stop['reason'], '')}); the trajectory ends at "
              f"t = {run.trajectory.t[-1]:.6g}, see \"engine\" in summary.json")
    print(f"wrote {out / 'trajectory.npz'}, {out / 'summary.json'}, {out / 'overview.png'}")


def cmd_phases(args: argparse.Namespace) -> int:
    """``reluflow phases``: load a trajectory and print its phase report."""
    from reluflow.engine.trajectory import Trajectory

    path = Path(args.trajectory)
    if not path.is_file():
        raise UsageError(f"TRAJECTORY: no such file {str(path)!r} (expected a .npz written "
                         "by `reluflow simulate`)")
    try:
        traj = Trajectory.load(path)
    except Exception as exc:
        raise UsageError(f"TRAJECTORY: {str(path)!r} is not a reluflow trajectory file "
                         f"({type(exc).__name__}: {exc})") from None
    from reluflow.analysis.phases import detect_phases

    report = detect_phases(traj, traj.data)
    if args.json:
        print(json.dumps(_finite_json(report.to_dict()), indent=1, default=_json_default))
    else:
        print(str(report))
    return EXIT_OK


SWEEP_COLUMNS = ("hash", "delta", "p", "kappa", "m", "seed", "t_max", "status", "t_escape",
                 "t_plateau_escape", "final_loss", "normalized_margin", "wall_time")


def cmd_sweep(args: argparse.Namespace) -> int:
    """``reluflow sweep``: run or resume a sweep and print its table."""
    if args.scheduler is not None and args.workers is not None:
        raise UsageError("--workers: sets the local pool size; not allowed with --scheduler")
    try:
        grid, options = sw.read_spec(args.spec)
    except sw.SpecError as exc:
        raise UsageError(str(exc)) from None
    client = None
    if args.scheduler is not None:
        if "://" not in args.scheduler:
            raise UsageError(f"--scheduler: must be an address like tcp://HOST:PORT, "
                             f"got {args.scheduler!r}")
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--scheduler: needs dask.distributed "
                             "(pip install 'reluflow[dask]')") from None
        try:
            client = Client(args.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"--scheduler: cannot connect to {args.scheduler!r} "
                             f"({type(exc).__name__}: {exc})") from None
    code = EXIT_OK
    try:
        try:
            limit = options["time_limit"] if args.time_limit is None else args.time_limit
            res = sw.run(grid, executor=client, out=args.out, workers=args.workers,
                         retry_failed=args.retry_failed, progress=args.progress,
                         time_limit=limit)
        except sw.SweepInterrupted as exc:
            res = exc.result
            code = EXIT_FAIL
            print(f"reluflow sweep: {exc}", file=sys.stderr)
        except sw.SpecError as exc:
            raise UsageError(f"--{exc}" if str(exc).startswith("out") else str(exc)) from None
    finally:
        if client is not None:
            client.close()
    rows = [[(r.get(c) if c != "hash" else str(r.get(c))[:8]) for c in SWEEP_COLUMNS]
            for r in res.records]
    print(_table(rows, SWEEP_COLUMNS))
    where = f"Dask scheduler {args.scheduler}" if client is not None else "local process pool"
    print(f"{res.n_total} configurations: {res.n_ok} ok, {res.n_failed} failed, "
          f"{res.n_total - len(res.records)} to do; ran {res.n_run}, skipped {res.n_skipped} "
          f"already done; wall time {res.wall_time:.2f} s on the {where}")
    print(f"table: {res.csv_path}")
    if res.n_failed and code == EXIT_OK:
        print("reluflow sweep: some configurations failed; tracebacks in "
              f"{Path(args.out) / 'results'}/<hash>.error.json", file=sys.stderr)
        code = EXIT_FAIL
    return code


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises ``SystemExit`` in the main thread, so staged files are cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reluflow`` console script; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = next((a for a in argv if a in ("simulate", "phases", "sweep")), None)
    prog = f"reluflow {cmd}" if cmd else "reluflow"
    try:
        args = parser.parse_args(argv)
        handler = {"simulate": cmd_simulate, "phases": cmd_phases, "sweep": cmd_sweep}
        with _terminate_as_exit():
            return handler[args.command](args)
    except BrokenPipeError:
        # the reader of our output went away (`reluflow phases F | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except Exception as exc:
        print(f"{prog}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
