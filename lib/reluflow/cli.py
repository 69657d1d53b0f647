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
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from reluflow.runs import sweep as sw

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _field(name: str) -> Any:
    """An argparse ``type`` that checks a value with the same ranges as the API."""

    def conv(text: str) -> Any:
        val: Any = text
        if name not in ("loss", "balanced"):
            try:
                val = int(text)
            except ValueError:
                try:
                    val = float(text)
                except ValueError:
                    raise argparse.ArgumentTypeError(
                        f"{name} must be {sw.FIELDS[name]}, got {text!r}") from None
        try:
            return sw._check_field(name, val)
        except sw.SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    conv.__name__ = name
    return conv


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"workers must be an integer >= 1, got {text!r}")
    return n


SWEEP_EPILOG = """\
spec format (TOML): the grid is the Cartesian product of the lists in [grid];
[fixed] holds single values shared by every configuration.

  [grid]
  delta = [0.2, 0.3]     # each in (0, pi)
  p = [0.7]              # each in (0, 1)
  kappa = [1e-4, 1e-6]   # each > 0
  m = [100]              # integers >= 1
  seed = [0, 1]          # integers >= 0
  t_max = [1e4]          # each > 0
  [fixed]
  d = 2                  # integer >= 2 (default 2)
  loss = "exp"           # "exp" or "logistic" (default "exp")
  balanced = true        # default true; false allows kappa_a > 0
  rtol = 1e-9            # in [1e-14, 1e-3] (default 1e-9)

Any field may go in either table (not both); delta, p, kappa, m, seed, t_max are
required.  Results: DIR/results/<hash>.json (one per configuration, written
atomically; failures as <hash>.error.json with the traceback), table DIR/results.csv.
Re-running the same command skips finished configurations (resume after Ctrl-C or a
killed worker); --retry-failed also re-runs the failed ones.
"""


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
    sim.add_argument("--delta", type=_field("delta"), required=True,
                     help="angle between x+ and x-, in (0, pi)")
    sim.add_argument("--p", type=_field("p"), required=True, help="weight of x+, in (0, 1)")
    sim.add_argument("--kappa", type=_field("kappa"), required=True,
                     help="initialization scale, > 0")
    sim.add_argument("--m", type=_field("m"), required=True, help="width, integer >= 1")
    sim.add_argument("--seed", type=_field("seed"), required=True, help="integer >= 0")
    sim.add_argument("--t-max", type=_field("t_max"), required=True,
                     help="final time, > 0 (the exact flow reaches 1e30)")
    sim.add_argument("--d", type=_field("d"), default=2, help="input dimension >= 2 (default 2)")
    sim.add_argument("--loss", choices=("exp", "logistic"), default="exp",
                     help="loss (default exp)")
    sim.add_argument("--unbalanced", action="store_true",
                     help="output weights a_k = kappa_a * N(0,1) instead of ±|b_k|")
    sim.add_argument("--kappa-a", type=_field("kappa_a"), default=None,
                     help="output scale > 0 with --unbalanced (default: kappa)")
    sim.add_argument("--rtol", type=_field("rtol"), default=1e-9,
                     help="integrator tolerance in (0, 0.1) (default 1e-9)")
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
        epilog=SWEEP_EPILOG)
    swp.add_argument("spec", metavar="SPEC.toml", help="sweep specification (format below)")
    swp.add_argument("--out", required=True, metavar="DIR", help="output directory")
    swp.add_argument("--workers", type=_workers, default=None,
                     help="local process-pool size, integer >= 1 (default: number of cores)")
    swp.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="run on a Dask cluster, e.g. tcp://127.0.0.1:8786 (needs the "
                     "'dask' extra; workers must be able to import reluflow)")
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
    """``reluflow simulate``: run, then write the three files atomically."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.kappa_a is not None and not args.unbalanced:
        raise UsageError("--kappa-a: only allowed together with --unbalanced")
    config = sw.normalize_config({
        "delta": args.delta, "p": args.p, "kappa": args.kappa, "m": args.m,
        "seed": args.seed, "t_max": args.t_max, "d": args.d, "loss": args.loss,
        "balanced": not args.unbalanced, "kappa_a": args.kappa_a, "rtol": args.rtol,
    })
    try:
        out, created = sw.prepare_out(args.out, subdir=None)
    except sw.SpecError as exc:
        raise UsageError(f"--{exc}") from None
    stage = Path(tempfile.mkdtemp(prefix=".reluflow-simulate-", dir=out))
    try:
        traj, data, report, wall = sw.simulate(config)
        from reluflow import __version__
        from reluflow.viz.plots import overview_figure

        fig = overview_figure(traj, data, report)
        fig.patch.set_facecolor("white")
        fig.savefig(stage / "overview.png", dpi=120, facecolor="white")
        traj.save(stage / "trajectory.npz")
        summary = {
            "parameters": config,
            "version": __version__,
            **sw.summarize(traj, report),
            "phases": report.to_dict(),
            "wall_time": wall,
            "engine": traj.info,
        }
        text = json.dumps(_finite_json(json.loads(json.dumps(summary, default=_json_default))),
                          indent=1)
        (stage / "summary.json").write_text(text + "\n", encoding="utf-8")
        for name in ("trajectory.npz", "overview.png", "summary.json"):
            os.replace(stage / name, out / name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    shutil.rmtree(stage, ignore_errors=True)

    s = sw.summarize(traj, report)
    print(f"reluflow simulate: delta={config['delta']:g} p={config['p']:g} "
          f"kappa={config['kappa']:g} m={config['m']} seed={config['seed']} "
          f"t_max={config['t_max']:g} d={config['d']} loss={config['loss']} "
          f"balanced={config['balanced']}")
    rows = [[k, s[k]] for k in (*sw.PHASE_TIMES, "final_loss", "normalized_margin",
                                "invariant_drift", "n_events")] + [["wall_time [s]", wall]]
    print(_table(rows, ["quantity", "value"]))
    print(f"regime: {getattr(report, 'regime', '-')}; phase times are gradient-flow times "
          f"('-': not reached); full report: reluflow phases {out / 'trajectory.npz'}")
    print(f"wrote {out / 'trajectory.npz'}, {out / 'summary.json'}, {out / 'overview.png'}")
    return EXIT_OK


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
        grid = sw.load_spec(args.spec)
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
            res = sw.run(grid, executor=client, out=args.out, workers=args.workers,
                         retry_failed=args.retry_failed, progress=args.progress)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reluflow`` console script; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = next((a for a in argv if a in ("simulate", "phases", "sweep")), None)
    prog = f"reluflow {cmd}" if cmd else "reluflow"
    try:
        args = parser.parse_args(argv)
        handler = {"simulate": cmd_simulate, "phases": cmd_phases, "sweep": cmd_sweep}
        return handler[args.command](args)
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
