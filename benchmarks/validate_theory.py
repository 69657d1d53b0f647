r"""Validate :mod:`reluflow.analysis.theory` against the exact gradient flow.

Writes ``benchmarks/THEORY.md``.

Usage::

    .venv/bin/python benchmarks/validate_theory.py            # full grid (see THEORY.md)
    .venv/bin/python benchmarks/validate_theory.py --quick    # reduced grid, a minute or two

Main grid: kappa in {1e-2, 1e-4, ..., 1e-12}, delta in {0.1, 0.2, 0.3, 0.5},
p in {0.6, 0.7, 0.8}, ``--seeds`` seeds, width ``--m``; every run integrates the exact flow
to t = 1e30 and is analysed with :func:`reluflow.analysis.phases.detect_phases`.  Raw per-run
records go to ``_build/theory/results.json`` (not versioned); the summary tables go to
``--out`` (default ``benchmarks/THEORY.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from reluflow import TwoPointData, gradient_flow, init_network
from reluflow.analysis import measure as ms
from reluflow.analysis import phases as ph
from reluflow.analysis import theory as th

ROOT = Path(__file__).resolve().parent.parent
T_MAX = 1e30
#: Text below this line in THEORY.md is hand-written and kept when the tables are rewritten.
NOTES_MARKER = "<!-- discussion (hand-written, kept on regeneration) -->"


def time_grid(data: TwoPointData, kappa: float, n_lin: int) -> np.ndarray:
    """0, a linear grid over the first three phases, then a log grid to T_MAX."""
    if th.regime(data) == "main":
        horizon = 2.0 * th.plateau_escape_time(data, kappa, "leading") + 20.0
    else:
        lam = min(th.escape_rate(data), (1 - data.p) * math.sin(data.delta),
                  data.p * math.sin(data.delta))
        horizon = 2.0 * math.log(1 / kappa) / lam + 20.0
    lin = np.linspace(horizon / n_lin, horizon, n_lin)
    tail = np.geomspace(horizon * 1.01, T_MAX, 300)
    return np.concatenate([[0.0], lin, tail])


def run_flow(params: Any, data: TwoPointData, times: np.ndarray) -> tuple[Any, int]:
    """Exact flow; if the engine raises, retry with the grid scaled by 1 + eps (counted).

    Some recording grids make the engine fail ("Attempt to step on a failed or finished
    solver"); a relative shift of the grid by ~1e-3 avoids it and changes no measured time
    (times are read off the recorded samples by interpolation).
    """
    jitters = (0.0, 1e-3, -1e-3, 2e-3, -2e-3, 3e-3, -3e-3, 5e-3)
    for attempt, eps in enumerate(jitters):
        tt = times * (1.0 + eps)
        tt[-1] = min(tt[-1], T_MAX * (1 + 5e-3))
        try:
            return gradient_flow(params, data, float(tt[-1]), times=tt), attempt
        except RuntimeError:
            if attempt == len(jitters) - 1:
                raise
    raise AssertionError("unreachable")


def one_run(delta: float, p: float, kappa: float, seed: int, m: int, n_lin: int) -> dict[str, Any]:
    """Simulate one configuration and compare with the theory."""
    data = TwoPointData(delta, p)
    params = init_network(m, 2, kappa, seed=seed)
    t0 = time.perf_counter()
    traj, retries = run_flow(params, data, time_grid(data, kappa, n_lin))
    wall = time.perf_counter() - t0
    rep = ph.detect_phases(traj, data)
    pred = th.fate(data, params)
    sim = ms.simulated_fate(traj, data)
    dist = th.fate_boundary_distance(data, params)
    considered = dist > 1e-6
    mism = (pred != sim) & considered
    rec: dict[str, Any] = {
        "delta": delta, "p": p, "kappa": kappa, "seed": seed, "m": m,
        "regime": th.regime(data), "wall": wall, "retries": retries,
        **{k: v for k, v in rep.to_dict().items() if k.startswith("t_")},
        **rep.to_dict()["values"],
        "fate_considered": int(considered.sum()), "fate_mismatch": int(mism.sum()),
        "fate_mismatch_dist": [float(x) for x in dist[mism]],
        "fate_mismatch_kinds": [f"{a}->{b}" for a, b in zip(pred[mism], sim[mism], strict=True)],
        "mu": th.condensation_rate(data), "escape_rate": th.escape_rate(data),
    }
    if rec["regime"] == "main":
        rec["t_escape_pred"] = th.saddle_escape_time(data, params=params)
        rec["t_escape_pred_mean"] = th.saddle_escape_time(data, kappa, m=m)
    return rec


def fit_slope(x: list[float], y: list[float | None]) -> tuple[float, float, int]:
    """Least-squares slope and intercept of y on x over the points where y is set."""
    pts = [(a, b) for a, b in zip(x, y, strict=True) if b is not None and math.isfinite(b)]
    if len(pts) < 2:
        return math.nan, math.nan, len(pts)
    xa, ya = np.array(pts).T
    s, c = np.polyfit(xa, ya, 1)
    return float(s), float(c), len(pts)


def fmt(x: Any, nd: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "nan"
        return f"{x:.{nd}g}"
    return str(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced grid")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--m", type=int, default=1000)
    ap.add_argument("--n-lin", type=int, default=600, help="linear-grid points per run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "THEORY.md"))
    ap.add_argument("--from-json", default=None, metavar="PATH",
                    help="re-render the tables from a results.json of an earlier run "
                         "(same grid options) instead of simulating")
    args = ap.parse_args(argv)
    if args.quick:
        kappas = [1e-2, 1e-6, 1e-12]
        deltas, ps, seeds = [0.2, 0.5], [0.6, 0.8], [0]
    else:
        kappas = [1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12]
        deltas, ps, seeds = [0.1, 0.2, 0.3, 0.5], [0.6, 0.7, 0.8], list(range(args.seeds))
    others = [(0.3, 0.5), (1.0, 0.6), (1.0, 0.4), (0.3, 0.3), (0.5, 0.4)]
    other_kappas = [1e-4, 1e-8, 1e-12]
    other_seeds = seeds[:2]
    raw = ROOT / "_build" / "theory" / "results.json"
    cmd = "python benchmarks/validate_theory.py" + " ".join([""] + (argv or sys.argv[1:]))
    if args.from_json:
        stored = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        runs = stored["runs"]
        total = stored["total"]
        cmd = f"{stored['cmd']}`, tables re-rendered with `{cmd.strip()}"
    else:
        start = time.perf_counter()
        runs = []
        grid = [(dl, p, k, s) for dl in deltas for p in ps for k in kappas for s in seeds]
        grid += [(dl, p, k, s) for dl, p in others for k in other_kappas for s in other_seeds]
        for i, (dl, p, k, s) in enumerate(grid):
            runs.append(one_run(dl, p, k, s, args.m, args.n_lin))
            if (i + 1) % 10 == 0 or i + 1 == len(grid):
                print(f"[{i + 1}/{len(grid)}] {time.perf_counter() - start:.0f}s", flush=True)
        total = time.perf_counter() - start
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps({"cmd": cmd.strip(), "total": total, "runs": runs}, indent=0)
                       + "\n", encoding="utf-8")
    text = report(runs, kappas, deltas, ps, seeds, args, total, cmd)
    out = Path(args.out)
    if out.is_file():  # keep the hand-written discussion below the marker
        old = out.read_text(encoding="utf-8")
        if NOTES_MARKER in old:
            text += "\n" + NOTES_MARKER + old.split(NOTES_MARKER, 1)[1]
    out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} and {raw} ({total:.0f}s)")
    return 0


def report(runs: list[dict[str, Any]], kappas: list[float], deltas: list[float],
           ps: list[float], seeds: list[int], args: argparse.Namespace, total: float,
           cmd: str) -> str:
    """Render the markdown summary."""
    main_runs = [r for r in runs if (r["delta"], r["p"]) in {(d, p) for d in deltas for p in ps}]
    L: list[str] = []
    L.append("# Theory vs exact gradient flow (generated)\n")
    L.append(f"Command: `{cmd.strip()}` (from the repository root, `.venv/bin/python`).  ")
    L.append(f"Grid: kappa = {kappas}, delta = {deltas}, p = {ps}, seeds = {seeds}, "
             f"m = {args.m}, d = 2, balanced Gaussian init, exponential loss, exact flow to "
             f"t = 1e30 with {args.n_lin} linear + 300 log recording times.  "
             f"{len(runs)} runs in {total:.0f} s on {platform.processor() or platform.machine()}"
             f" (1 process).  Engine retries with a jittered grid: "
             f"{sum(r['retries'] > 0 for r in runs)} runs.\n")
    if not args.quick and len(seeds) < 5:
        L.append(f"Seeds reduced from the 5 of the issue to {len(seeds)}: with 5 seeds the "
                 "grid takes about 30 minutes on this shared 2-core machine (limit ~15).\n")
    L.append("All quantitative predictions are **this book's derivation** "
             "(`reluflow.analysis.theory`); the four-phase picture is the paper's.\n")

    # ---- fate
    L.append("## 1. Fate prediction (`theory.fate` vs `measure.simulated_fate`)\n")
    L.append("Neurons within 1e-6 rad of a fate boundary are excluded (none are, in practice).\n")
    L.append("| kappa | neurons | mismatches | agreement | mismatch kinds (pred->sim) | "
             "max boundary distance of a mismatch (rad) |")
    L.append("|---|---|---|---|---|---|")
    for k in kappas:
        rs = [r for r in main_runs if r["kappa"] == k]
        n = sum(r["fate_considered"] for r in rs)
        bad = sum(r["fate_mismatch"] for r in rs)
        kinds: dict[str, int] = {}
        for r in rs:
            for kd in r["fate_mismatch_kinds"]:
                kinds[kd] = kinds.get(kd, 0) + 1
        dmax = max((x for r in rs for x in r["fate_mismatch_dist"]), default=math.nan)
        L.append(f"| {k:g} | {n} | {bad} | {100 * (1 - bad / max(n, 1)):.3f}% | "
                 f"{', '.join(f'{a}: {b}' for a, b in sorted(kinds.items())) or '-'} | "
                 f"{fmt(dmax, 3)} |")
    n_all = sum(r["fate_considered"] for r in main_runs)
    bad_all = sum(r["fate_mismatch"] for r in main_runs)
    small = [r for r in main_runs if r["kappa"] <= 1e-6]
    n_s = sum(r["fate_considered"] for r in small)
    bad_s = sum(r["fate_mismatch"] for r in small)
    L.append(f"\nOverall agreement: **{100 * (1 - bad_all / max(n_all, 1)):.3f}%** of {n_all} "
             f"neurons; for kappa <= 1e-6: **{100 * (1 - bad_s / max(n_s, 1)):.4f}%** "
             f"of {n_s} (target >= 99.9%).\n")

    # ---- saddle escape
    L.append("## 2. Saddle escape: slope of t_escape in log(1/kappa) vs 1/||mu||\n")
    L.append("t_escape = first time L <= 0.99 L(0).  Slope fitted by least squares over the "
             "kappa grid (all seeds); `pred O(1)` = mean |t_escape - prediction with the exact "
             "O(1) term from the initial parameters| (`theory.saddle_escape_time(data, "
             "params=...)`).\n")
    L.append("| delta | p | 1/‖mu‖ | fitted slope | rel. error | slope (kappa <= 1e-4) | "
             "rel. error | mean abs err of O(1) prediction |")
    L.append("|---|---|---|---|---|---|---|---|")
    errs = []
    errs_small = []
    for dl in deltas:
        for p in ps:
            rs = [r for r in main_runs if r["delta"] == dl and r["p"] == p]
            x = [math.log(1 / r["kappa"]) for r in rs]
            s, _, _ = fit_slope(x, [r["t_escape"] for r in rs])
            rs2 = [r for r in rs if r["kappa"] <= 1e-4]
            s2, _, _ = fit_slope([math.log(1 / r["kappa"]) for r in rs2],
                                 [r["t_escape"] for r in rs2])
            inv = 1 / rs[0]["mu"]
            e = abs(s - inv) / inv
            e2 = abs(s2 - inv) / inv
            errs.append(e)
            errs_small.append(e2)
            o1 = [abs(r["t_escape"] - r["t_escape_pred"]) for r in rs
                  if r["t_escape"] is not None and r["kappa"] <= 1e-4]
            L.append(f"| {dl} | {p} | {inv:.4f} | {s:.4f} | {100 * e:.2f}% | {s2:.4f} | "
                     f"{100 * e2:.2f}% | {fmt(float(np.mean(o1)) if o1 else math.nan, 3)} |")
    L.append(f"\nMax relative slope error: {100 * max(errs):.2f}% (all kappa), "
             f"{100 * max(errs_small):.2f}% (kappa <= 1e-4); target 3%.\n")

    # ---- plateau escape
    L.append("## 3. Plateau escape: slope of t_plateau_escape in log(1/kappa)\n")
    L.append("t_plateau_escape = first time after t_plateau with -f(x-) >= log 2.  "
             "`notes` = (1 - sin Δ)/‖mu‖ + 1/(1-p); `book` = "
             "`theory.plateau_escape_time(..., 'corrected')` fitted over the same kappa points.\n")
    L.append("| delta | p | fitted slope | notes slope | rel. err (notes) | book slope (fit) | "
             "rel. err (book) |")
    L.append("|---|---|---|---|---|---|---|")
    en, eb = [], []
    for dl in deltas:
        for p in ps:
            rs = [r for r in main_runs if r["delta"] == dl and r["p"] == p]
            data = TwoPointData(dl, p)
            x = [math.log(1 / r["kappa"]) for r in rs]
            s, _, _ = fit_slope(x, [r["t_plateau_escape"] for r in rs])
            sn = th.plateau_escape_slope(data, "leading")
            sb, _, _ = fit_slope(
                x, [th.plateau_escape_time(data, r["kappa"], "corrected") for r in rs])
            en.append(abs(s - sn) / s)
            eb.append(abs(s - sb) / s)
            L.append(f"| {dl} | {p} | {s:.4f} | {sn:.4f} | {100 * en[-1]:.2f}% | {sb:.4f} | "
                     f"{100 * eb[-1]:.2f}% |")
    L.append("\nSame fit without kappa = 1e-2 (kappa <= 1e-4), and the local slope between "
             "kappa = 1e-10 and 1e-12 (mean over seeds) against the book's local slope "
             "`theory.plateau_escape_slope(data, 'corrected', kappa=1e-11)`:\n")
    L.append("| delta | p | fitted (kappa <= 1e-4) | err notes | err book | local slope "
             "1e-10..1e-12 | notes | book (local) |")
    L.append("|---|---|---|---|---|---|---|---|")
    en2, eb2 = [], []
    for dl in deltas:
        for p in ps:
            rs = [r for r in main_runs if r["delta"] == dl and r["p"] == p and r["kappa"] <= 1e-4]
            data = TwoPointData(dl, p)
            x = [math.log(1 / r["kappa"]) for r in rs]
            s, _, _ = fit_slope(x, [r["t_plateau_escape"] for r in rs])
            sn = th.plateau_escape_slope(data, "leading")
            sb, _, _ = fit_slope(
                x, [th.plateau_escape_time(data, r["kappa"], "corrected") for r in rs])
            en2.append(abs(s - sn) / s)
            eb2.append(abs(s - sb) / s)
            lo = [r["t_plateau_escape"] for r in rs if r["kappa"] == 1e-10]
            hi = [r["t_plateau_escape"] for r in rs if r["kappa"] == 1e-12]
            loc = (float(np.mean(hi)) - float(np.mean(lo))) / math.log(100.0) if lo and hi \
                else math.nan
            L.append(f"| {dl} | {p} | {s:.4f} | {100 * en2[-1]:.2f}% | {100 * eb2[-1]:.2f}% | "
                     f"{fmt(loc)} | {sn:.4f} | "
                     f"{th.plateau_escape_slope(data, 'corrected', kappa=1e-11):.4f} |")
    L.append(f"\nkappa <= 1e-4: max relative error notes {100 * max(en2):.2f}%, "
             f"book {100 * max(eb2):.2f}%; mean notes {100 * float(np.mean(en2)):.2f}%, "
             f"book {100 * float(np.mean(eb2)):.2f}%.\n")
    L.append(f"\nAll kappa: max relative error: notes {100 * max(en):.2f}%, "
             f"book {100 * max(eb):.2f}%; "
             f"mean: notes {100 * float(np.mean(en)):.2f}%, "
             f"book {100 * float(np.mean(eb)):.2f}%.\n")

    # ---- plateau level, phase order, phase IV, margin
    L.append("## 4. Plateau level, phase order, Phase IV, final margin\n")
    L.append("`plateau_loss` = loss when -f(x-) first reaches 0.01 after t_plateau (end of the "
             "flat part).  `order ok` = fraction of runs with t_condensed < t_escape < "
             "t_plateau < t_plateau_escape < t_phase4.  `alpha` = fitted exponent of "
             "L ∝ (t log t)^-alpha over t >= 1e3 t_phase4; `C` = 4 γ(t) t log t L(t) at "
             "t = 1e30 (theory: 1).  `margin` = normalized margin at t = 1e30 vs sin Δ/4.\n")
    L.append("| kappa | plateau_loss/(1-p) (mean, min..max) | order ok | t_react < t_plateau | "
             "alpha (mean ± sd) | C (mean) | margin/(sin Δ/4) (mean, min..max) | N_eff final |")
    L.append("|---|---|---|---|---|---|---|---|")
    for k in kappas:
        rs = [r for r in main_runs if r["kappa"] == k]
        pl = [r["plateau_loss"] / (1 - r["p"]) for r in rs if r["plateau_loss"] is not None]
        ok = [all(r[a] is not None and r[b] is not None and r[a] < r[b] for a, b in zip(
            ("t_condensed", "t_escape", "t_plateau", "t_plateau_escape"),
            ("t_escape", "t_plateau", "t_plateau_escape", "t_phase4"), strict=True))
            for r in rs]
        rb = [r["t_reactivation"] is not None and r["t_plateau"] is not None
              and r["t_reactivation"] < r["t_plateau"] for r in rs]
        al = [r["phase4_exponent"] for r in rs if r["phase4_exponent"] is not None]
        cc = [r["phase4_constant"] for r in rs if r["phase4_constant"] is not None]
        mg = [r["final_margin"] / r["final_margin_theory"] for r in rs]
        ne = [r["n_eff_final"] for r in rs if r["n_eff_final"] is not None]
        L.append(
            f"| {k:g} | {np.mean(pl):.4f} ({min(pl):.4f}..{max(pl):.4f}) | "
            f"{np.mean(ok):.2f} | {np.mean(rb):.2f} | "
            f"{np.mean(al):.4f} ± {np.std(al):.4f} | {np.mean(cc):.3f} | "
            f"{np.mean(mg):.4f} ({min(mg):.4f}..{max(mg):.4f}) | {np.mean(ne):.2f} |")
    L.append("")
    L.append("Final margin by delta (all kappa, p, seeds): ")
    for dl in deltas:
        mg = [r["final_margin"] / r["final_margin_theory"] for r in main_runs if r["delta"] == dl]
        L.append(f"delta = {dl}: {np.mean(mg):.4f} (min {min(mg):.4f}); ")
    L.append("\n")

    # ---- other regimes
    L.append("## 5. Outside the main regime p cos Δ > 1 - p\n")
    L.append("Same measurements, kappa in {1e-4, 1e-8, 1e-12}.  `escape slope` = fitted slope of "
             "t_escape in log(1/kappa) vs 1/`theory.escape_rate`; `plateau` = plateau_loss vs "
             "`theory.plateau_level`; `naive 2nd slope` = 1/(min(p, 1-p) sin Δ), the growth "
             "time of the slower sliding group (mu-plus-only), or the notes formula with the "
             "classes exchanged (mirror).\n")
    L.append("| delta | p | regime | fate agreement | escape slope | 1/rate | plateau_loss | "
             "plateau_level | t_plateau_escape slope | naive 2nd slope | margin/(sin Δ/4) | "
             "N_eff |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    main_set = {(d, p) for d in deltas for p in ps}
    pairs = sorted({(r["delta"], r["p"]) for r in runs} - main_set)
    for dl, p in pairs:
        rs = [r for r in runs if r["delta"] == dl and r["p"] == p]
        data = TwoPointData(dl, p)
        n = sum(r["fate_considered"] for r in rs)
        bad = sum(r["fate_mismatch"] for r in rs)
        x = [math.log(1 / r["kappa"]) for r in rs]
        s, _, _ = fit_slope(x, [r["t_escape"] for r in rs])
        s3, _, _ = fit_slope(x, [r["t_plateau_escape"] for r in rs])
        pl = [r["plateau_loss"] for r in rs if r["plateau_loss"] is not None]
        mg = [r["final_margin"] / r["final_margin_theory"] for r in rs]
        ne = [r["n_eff_final"] for r in rs if r["n_eff_final"] is not None]
        if rs[0]["regime"] == "mirror":
            naive = th.plateau_escape_slope(TwoPointData(dl, 1 - p), "leading")
        else:
            naive = 1 / (min(p, 1 - p) * math.sin(dl))
        L.append(f"| {dl} | {p} | {rs[0]['regime']} | {100 * (1 - bad / max(n, 1)):.2f}% | "
                 f"{fmt(s)} | {1 / th.escape_rate(data):.4g} | "
                 f"{fmt(float(np.mean(pl)) if pl else math.nan)} | {th.plateau_level(data):.3g} | "
                 f"{fmt(s3)} | {naive:.4g} | {np.mean(mg):.4f} | {np.mean(ne):.2f} |")
    L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
