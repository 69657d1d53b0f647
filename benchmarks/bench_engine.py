"""Time the exact engine alone (no baselines): the quick check of the engine targets.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_engine.py   # m = 1e4, 1e6 to t = 1e4; m = 1e4 to 1e30
    .venv/bin/python benchmarks/bench_engine.py --m 100000 --t-max 1e4

Same setting as ``bench_flow.py`` (Δ = 0.3, p = 0.7, κ = 1e-6, seed 0, 100 recorded neurons
at t = 0, 25, 50, 100, 1000, t_max).  Each case runs in a fresh process; prints wall and CPU
seconds, accepted and cut steps, located events, the invariant drift over the recorded
neurons and the peak RSS.  Wall time depends on what else the machine runs: compare CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = [(10_000, 1e4), (10_000, 1e30), (1_000_000, 1e4)]


def run_one(m: int, t_max: float) -> dict[str, float]:
    import numpy as np

    import reluflow as rf

    data = rf.TwoPointData(0.3, 0.7)
    params = rf.init_network(m, 2, 1e-6, seed=0)
    times = np.array([0.0, 25.0, 50.0, 100.0, 1000.0, t_max])
    wall, cpu = time.perf_counter(), time.process_time()
    traj = rf.gradient_flow(params, data, t_max, times=times, neurons=np.arange(min(m, 100)))
    return {
        "m": m, "t_max": t_max,
        "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
        "steps": traj.info["steps"], "cut_steps": traj.info["rejected_steps"],
        "event_neurons": traj.info["event_neurons"], "drift": traj.invariant_drift,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, help="width (with --t-max: a single case)")
    ap.add_argument("--t-max", type=float, help="horizon")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.m, args.t_max)))
        return 0
    cases = [(args.m, args.t_max)] if args.m and args.t_max else CASES
    print("| m | t_max | wall s | CPU s | steps | cut steps | event neurons | drift"
          " | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, t_max in cases:
        out = subprocess.run([sys.executable, __file__, "--one", "--m", str(m), "--t-max",
                              repr(t_max)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        print(f"| {m:.0e} | {t_max:.0e} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['steps']} | "
              f"{r['cut_steps']} | {r['event_neurons']} | {r['drift']:.1e} | "
              f"{r['peak_rss_mib']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
