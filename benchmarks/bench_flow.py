r"""Benchmark of the exact gradient-flow engine against the loops a reader would write.

Setting (issue 2, section 5): :math:`\Delta = 0.3`, :math:`p = 0.7`, :math:`\kappa = 10^{-6}`,
balanced initialisation with seed 0, exponential loss, :math:`m \in \{10^2, 10^4, 10^6\}`,
horizon :math:`t = 10^4`.  Compared, all on the same initial parameters:

* ``gradient_flow`` (the engine, ``rtol = 1e-9``);
* ``gradient_descent`` (numpy, :math:`\theta_{k+1} = \theta_k - \eta\nabla L(\theta_k)`,
  :math:`\eta = 10^{-3}`);
* the same descent loop written with PyTorch autograd (``bench_torch.py``, run in the separate
  environment ``benchmarks/.venv-torch``);
* scipy's RK45 (the stepper of ``solve_ivp(method="RK45")``) on the flat parameter vector,
  :math:`\dot\theta = -\nabla L(\theta)` with :math:`\sigma'(0) = 0`, stepped in a loop with a
  wall-time cap because it chatters on sliding boundaries.

Accuracy is the error :math:`\max_i |f_{\text{method}}(x_i, t) - f_{\text{ref}}(x_i, t)|` at
:math:`t = 25, 50, 100, 1000` against the engine at ``rtol = 1e-12``.  The descent loops cost
the same per step, so their time to :math:`t = 10^4` is measured over a shorter horizon and
scaled linearly (the table says which).  Every timed run happens in a fresh (spawned) process
so that its peak resident memory can be read from ``resource.getrusage``.

Writes ``benchmarks/RESULTS.md`` (and the raw numbers to ``benchmarks/results.json``) and prints
the table.  ``--quick`` is a reduced run (smaller m and horizons) to check the script.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import io
import json
import math
import multiprocessing as mp
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

HERE = Path(__file__).resolve().parent
TORCH_PY = HERE / ".venv-torch" / "bin" / "python"
DELTA, P, KAPPA, SEED, LR = 0.3, 0.7, 1e-6, 0, 1e-3
T_MAX = 1e4
ERR_TIMES = (25.0, 50.0, 100.0, 1000.0)
REC_TIMES = (0.0, *ERR_TIMES, T_MAX)

Result = dict[str, Any]


# --------------------------------------------------------------------------- helpers
def _data() -> Any:
    from reluflow import TwoPointData

    return TwoPointData(delta=DELTA, p=P)


def _params(m: int) -> Any:
    from reluflow import init_network

    return init_network(m, 2, KAPPA, seed=SEED)


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    """Current resident set size, in MiB, from /proc (falls back to the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _rss_mb()


def _f_at(times: NDArray[np.float64], f: NDArray[np.float64]) -> dict[str, list[float]]:
    """``{"25.0": [f(x+), f(x-)], ...}`` for the recorded times (JSON-friendly keys)."""
    return {repr(float(t)): [float(v) for v in row] for t, row in zip(times, f, strict=True)}


def _in_worker(fn: Callable[..., Result], *args: Any) -> Result:
    """Run ``fn(*args)`` in a fresh spawned process (clean peak RSS); return its dict."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        out: Result = pool.apply(fn, args)
    return out


# --------------------------------------------------------------------------- workers
def engine_worker(m: int, t_max: float, rtol: float, times: list[float] | None,
                  record: int | None) -> Result:
    """Time ``gradient_flow`` on the benchmark setting (runs inside a fresh process).

    ``record`` neurons are recorded (``None``: all), at ``times`` (``None``: default grid).
    Returns wall and CPU seconds, ``f`` at the recorded times, the invariant drift, the
    current RSS before the run (after imports and initialisation) and the peak RSS.
    """
    from reluflow import gradient_flow

    data, params = _data(), _params(m)
    neurons = None if record is None else np.arange(min(record, m))
    rss0 = _current_rss_mb()
    c0, w0 = time.process_time(), time.perf_counter()
    tr = gradient_flow(params, data, t_max, times=times, rtol=rtol, neurons=neurons)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    rss_peak = _rss_mb()  # before the diagnostics below allocate (T, m) arrays
    # The library's drift divides by the neuron's current size a_k^2 + |b_k|^2, which blows
    # up rounding when a neuron passes near 0; also give it divided by the larger of the
    # current and the initial size (rounding then stays at its own level).
    c0 = params.a[tr.neurons] ** 2 - np.sum(params.B[tr.neurons] ** 2, axis=-1)
    c = tr.a**2 - np.sum(tr.B**2, axis=-1)
    size = tr.a**2 + np.sum(tr.B**2, axis=-1)
    size0 = params.a[tr.neurons] ** 2 + np.sum(params.B[tr.neurons] ** 2, axis=-1)
    rel_cur = np.abs(c - c0) / np.where(size > 0, size, np.inf)
    jt, jk = np.unravel_index(int(np.argmax(rel_cur)), rel_cur.shape)
    extra = {"drift_max_scale": float(np.max(np.abs(c - c0) / np.maximum(size, size0))),
             "worst_neuron": int(tr.neurons[jk]), "worst_t": float(tr.t[jt]),
             "worst_size_ratio": float(np.sqrt(size[jt, jk] / size0[jk]))}
    return {**extra, "wall": wall, "cpu": cpu, "f": _f_at(tr.t, tr.f),
            "drift": tr.invariant_drift,
            "rss_before": rss0, "rss_peak": rss_peak, "steps": tr.info.get("steps"),
            "rejected": tr.info.get("rejected_steps"), "t_end": float(tr.t[-1]),
            "events": int(tr.events.size), "recorded_neurons": int(tr.neurons.size),
            "recorded_times": int(tr.t.size)}


def gd_worker(m: int, t_max: float) -> Result:
    """Time numpy ``gradient_descent`` (lr = 1e-3, no event log) to ``t_max``."""
    from reluflow import gradient_descent

    data, params = _data(), _params(m)
    times = sorted({t for t in REC_TIMES if t <= t_max} | {t_max})
    c0, w0 = time.process_time(), time.perf_counter()
    tr = gradient_descent(params, data, LR, t_max, times=times, record_events=False,
                          neurons=np.arange(min(100, m)))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "t_max": t_max, "steps": tr.info["steps"],
            "f": _f_at(tr.t, tr.f), "rss_peak": _rss_mb()}


def rk45_worker(m: int, t_max: float, rtol: float, cap: float) -> Result:
    r"""Step scipy's RK45 on :math:`\dot\theta = -\nabla L(\theta)` until ``t_max`` or ``cap`` s.

    The state is :math:`\theta = (a, \operatorname{vec} B)`; the field is
    :math:`\dot a_k = \sum_i r_i\sigma(b_k^\top x_i)`,
    :math:`\dot b_k = a_k \sum_i r_i 1[b_k^\top x_i > 0]\,x_i` with
    :math:`r_i = -\partial L/\partial f(x_i)` (``residual_weights``), i.e. :math:`\sigma'(0)=0`.
    ``atol = rtol * kappa`` so that the initial scale is resolved.  ``f`` at the record times
    comes from the stepper's dense output, as in ``solve_ivp(t_eval=...)``.
    """
    from scipy.integrate import RK45

    from reluflow.engine.network import residual_weights

    data, params = _data(), _params(m)
    X = data.X
    d = X.shape[1]

    def rhs(_t: float, y: NDArray[np.float64]) -> NDArray[np.float64]:
        a, B = y[:m], y[m:].reshape(m, d)
        pre = B @ X.T
        act = pre > 0
        relu = np.where(act, pre, 0.0)
        r = residual_weights(a @ relu, data, "exp")
        return np.concatenate([relu @ r, (a[:, None] * ((act * r) @ X)).ravel()])

    def f_of(y: NDArray[np.float64]) -> list[float]:
        a, B = y[:m], y[m:].reshape(m, d)
        return [float(v) for v in a @ np.maximum(B @ X.T, 0.0)]

    y0 = np.concatenate([params.a, params.B.ravel()])
    rec = [t for t in REC_TIMES if 0 < t <= t_max]
    out: dict[str, list[float]] = {repr(0.0): f_of(y0)}
    c0, w0 = time.process_time(), time.perf_counter()
    solver = RK45(rhs, 0.0, y0, t_bound=t_max, rtol=rtol, atol=rtol * KAPPA)
    status, j = "capped", 0
    while True:
        if solver.status == "finished":
            status = "finished"
            break
        if time.perf_counter() - w0 > cap:
            break
        msg = solver.step()
        if solver.status == "failed":
            status = f"failed: {msg}"
            break
        if j < len(rec) and rec[j] <= solver.t:
            dense = solver.dense_output()
            while j < len(rec) and rec[j] <= solver.t:
                out[repr(rec[j])] = f_of(dense(rec[j]))
                j += 1
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "t_reached": float(solver.t), "status": status,
            "nfev": int(solver.nfev), "f": out, "rtol": rtol, "cap": cap,
            "rss_peak": _rss_mb()}


def torch_run(m: int, t_max: float, threads: int = 1) -> Result:
    """Run ``bench_torch.py`` in the torch environment on this setting's initial state."""
    if not TORCH_PY.exists():
        return {"skipped": f"{TORCH_PY} missing (make bench creates it)"}
    data, params = _data(), _params(m)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.npz"
        np.savez(path, a=params.a, B=params.B, X=data.X, y=data.y, w=data.weights,
                 times=np.array(REC_TIMES))
        proc = subprocess.run(
            [str(TORCH_PY), str(HERE / "bench_torch.py"), str(path), "--lr", repr(LR),
             "--t-max", repr(t_max), "--threads", str(threads)],
            capture_output=True, text=True, check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"bench_torch.py failed ({proc.returncode}): {proc.stderr[-2000:]}")
    raw = json.loads(proc.stdout)
    return {"wall": raw["wall"], "cpu": raw["cpu"], "t_max": t_max, "steps": raw["steps"],
            "f": _f_at(np.array(raw["t_rec"]), np.array(raw["f_rec"])),
            "torch": raw["torch"], "threads": raw["threads"]}


def profile_engine(m: int, t_max: float, top: int = 25) -> Result:
    """cProfile one engine run (same call as the timed one); the top functions as text."""
    from reluflow import gradient_flow

    data, params = _data(), _params(m)
    prof = cProfile.Profile()
    w0 = time.perf_counter()
    prof.enable()
    gradient_flow(params, data, t_max, times=list(REC_TIMES), neurons=np.arange(100))
    prof.disable()
    wall = time.perf_counter() - w0
    st = pstats.Stats(prof)
    return {"wall": wall, "table": _profile_table(st), "text": _profile_text(st, top)}


def _profile_table(st: pstats.Stats, top: int = 12) -> list[list[Any]]:
    """Rows ``[function, calls, self s, self %, cumulative s]`` by self time."""
    raw = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    return [[f"{Path(k[0]).name}:{k[1]}({k[2]})", int(v[1]), float(v[2]),
             100.0 * v[2] / total, float(v[3])] for k, v in rows]


def _profile_text(st: pstats.Stats, top: int) -> str:
    buf = io.StringIO()
    st.stream = buf  # type: ignore[attr-defined]
    st.strip_dirs().sort_stats("tottime").print_stats(top)
    buf.write("\n---- sorted by cumulative time ----\n")
    st.sort_stats("cumulative").print_stats(top)
    lines = [ln.rstrip() for ln in buf.getvalue().splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith(("   Random listing", "Ordered by"))]
    return "\n".join(keep)


# --------------------------------------------------------------------------- analysis
def _errors(res: Result, ref: Result) -> dict[str, float]:
    """``max_i |f - f_ref|`` at each error time present in both."""
    out = {}
    for t in ERR_TIMES:
        k = repr(t)
        if k in res.get("f", {}) and k in ref["f"]:
            out[k] = float(np.max(np.abs(np.subtract(res["f"][k], ref["f"][k]))))
    return out


def _fmt(x: float | None, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return format(x, spec)


def _git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"


def _flow_hash() -> str:
    """sha256 (first 12 hex) of the engine source, to tie the timings to one version."""
    import hashlib

    import reluflow.engine.flow

    return hashlib.sha256(Path(reluflow.engine.flow.__file__).read_bytes()).hexdigest()[:12]


def _machine() -> dict[str, str]:
    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for ln in out.splitlines():
            if ln.startswith("Model name:"):
                model = ln.split(":", 1)[1].strip()
    except OSError:
        pass
    import scipy

    info = {"cpu": model, "commit": _git_head(), "flow_py_sha256": _flow_hash(),
            "cores": str(os.cpu_count()), "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__,
            "memory_GiB": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f}",
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    return info


# --------------------------------------------------------------------------- the run
def run(cfg: argparse.Namespace) -> Result:
    """Run every measurement; return the raw results (also written as JSON)."""
    R: Result = {"config": {k: v for k, v in vars(cfg).items() if k != "func"},
                 "machine": _machine(), "load_start": os.getloadavg(), "m": {}}
    for m in cfg.ms:
        say = lambda s, m=m: print(f"[m={m:.0e}] {s}", flush=True)  # noqa: E731
        res: Result = {}
        say("reference (engine, rtol=1e-12)")
        if m <= cfg.ref_max_m:
            res["ref"] = _in_worker(engine_worker, m, cfg.t_max, 1e-12, list(REC_TIMES), 100)
        reps = cfg.repeats if m <= 10**4 else 1
        say(f"engine x{reps}")
        runs = [_in_worker(engine_worker, m, cfg.t_max, 1e-9, list(REC_TIMES), 100)
                for _ in range(reps)]
        res["engine"] = eng = _median_of(runs)
        eng["rss_peak"] = max(r["rss_peak"] for r in runs)
        h = cfg.gd_horizon[cfg.ms.index(m)]
        say(f"numpy gradient descent to t={h:g}")
        short = h / LR <= 1000  # cheap enough to repeat
        res["gd"] = _median_of([_in_worker(gd_worker, m, h)
                                for _ in range(cfg.repeats if short else 1)])
        if not cfg.no_torch:
            ht = cfg.torch_horizon[cfg.ms.index(m)]
            say(f"torch gradient descent to t={ht:g}")
            short = ht / LR <= 1000
            res["torch"] = _median_of([torch_run(m, ht)
                                       for _ in range(cfg.repeats if short else 1)])
        res["rk45"] = []
        for rt in cfg.rk45_rtols:
            if m > cfg.rk45_max_m and rt != cfg.rk45_rtols[0]:
                continue
            say(f"RK45 rtol={rt:g}, cap {cfg.rk45_cap:g} s")
            res["rk45"].append(_in_worker(rk45_worker, m, cfg.t_max, rt, cfg.rk45_cap))
        R["m"][str(m)] = res
        _save(R, cfg)
    print(f"[long] engine m={cfg.long_m:.0e} to t={cfg.long_t:g}, all neurons recorded",
          flush=True)
    R["long"] = _in_worker(engine_worker, cfg.long_m, cfg.long_t, 1e-9, None, None)
    R["load_end"] = os.getloadavg()
    R["flow_py_sha256_end"] = _flow_hash()
    _save(R, cfg)
    big = str(max(cfg.ms))
    if R["m"][big]["engine"]["wall"] > cfg.target_big_s and not cfg.no_profile:
        if cfg.profile_stats is None:
            print(f"[profile] engine m={big} (missed {cfg.target_big_s:g} s)", flush=True)
            R["profile"] = _in_worker(profile_engine, int(big), cfg.t_max)
            R["profile"]["source"] = "this run"
            _save(R, cfg)
    return R


def _median_of(runs: list[Result]) -> Result:
    """First run's outputs with wall/CPU times replaced by the medians over ``runs``."""
    out = dict(runs[0])
    if "skipped" in out:
        return out
    out["walls"] = [r["wall"] for r in runs]
    out["cpus"] = [r["cpu"] for r in runs]
    out["wall"] = statistics.median(out["walls"])
    out["cpu"] = statistics.median(out["cpus"])
    return out


def _save(R: Result, cfg: argparse.Namespace) -> None:
    Path(cfg.json).write_text(json.dumps(R, indent=1, default=str))


# --------------------------------------------------------------------------- report
def render(R: Result) -> str:
    """The Markdown report: machine, main table, ratios, targets, memory, profile."""
    cfg = R["config"]
    t_max = cfg["t_max"]
    mach = R["machine"]
    L: list[str] = []
    L.append("# Engine benchmark (issue 2, section 5)\n")
    L.append(f"Generated by `benchmarks/bench_flow.py{' --quick' if cfg['quick'] else ''}` "
             f"(`make bench`) on {mach['date']} at commit {mach.get('commit', '?')} "
             f"(engine source `lib/reluflow/flow.py` sha256 {mach.get('flow_py_sha256', '?')}"
             + ("" if R.get("flow_py_sha256_end", mach.get("flow_py_sha256"))
                == mach.get("flow_py_sha256") else ", **changed during the run**")
             + "). Every number below was computed in that run; "
             "the raw numbers are in `benchmarks/results.json`.\n")
    L.append(f"**Setting.** Δ = {DELTA}, p = {P}, κ = {KAPPA:g}, balanced initialisation "
             f"(seed {SEED}), exponential loss, d = 2, horizon t = {t_max:g}. Gradient descent "
             f"(numpy `gradient_descent` and the PyTorch-autograd loop) at lr = {LR:g}; "
             "scipy RK45 on the flat parameter vector (σ'(0) = 0) with atol = rtol·κ. "
             "Error = max over the two points of |f(xᵢ, t) − f_ref(xᵢ, t)| against "
             "`gradient_flow(rtol=1e-12)`; the engine itself runs at its default rtol = 1e-9.\n")
    L.append(f"**Machine.** {mach['cpu']}, {mach['cores']} cores, {mach['memory_GiB']} GiB, "
             f"Python {mach['python']}, numpy {mach['numpy']}, scipy {mach['scipy']}"
             + _torch_version(R) + ". The 2 cores are **shared** with other engineers' "
             f"jobs: load average {R['load_start'][0]:.1f} at the start and "
             f"{R.get('load_end', [float('nan')])[0]:.1f} at the end of the run, so wall times "
             "are several times what an idle machine gives. Every timing is therefore given as "
             "wall (CPU) seconds, CPU being the process time of the timed process (all its "
             "threads); speed-ups are given on both. Each timed run is a fresh process. Engine "
             f"times at m ≤ 1e4 and the short descent runs (≤ 1000 steps) are the median of "
             f"{cfg['repeats']} runs; the long descent runs are one run each, their rate an "
             "average over all their steps. The PyTorch loop runs with one intra-op thread (a "
             "second thread only spin-waits for a busy core here).\n")

    L.append("## Wall time and accuracy\n")
    hdr = ("| m | method | ran to t | wall (CPU) s | s per unit t | time to t = "
           f"{t_max:g} (s) | " + " | ".join(f"err t={t:g}" for t in ERR_TIMES) + " |")
    L.append(hdr)
    L.append("|" + "---|" * (6 + len(ERR_TIMES)))
    for mk, res in R["m"].items():
        m = int(mk)
        ref = res.get("ref")
        eng = res["engine"]
        errs = _errors(eng, ref) if ref else {}
        L.append(_row(m, "engine (rtol 1e-9)", _fmt(t_max, "g"),
                      _wc(eng), "–", f"{_wc(eng)} (measured)", errs, ref is not None))
        for key, name in (("gd", "numpy GD, lr 1e-3"), ("torch", "torch GD, lr 1e-3")):
            r = res.get(key)
            if r is None or "skipped" in r:
                L.append(f"| {m:.0e} | {name} | not run | | | | " + " | ".join(
                    ["" for _ in ERR_TIMES]) + " |")
                continue
            sc = t_max / r["t_max"]
            note = "measured" if sc <= 1 else f"scaled ×{sc:g}"
            rate = {"wall": r["wall"] / r["t_max"], "cpu": r["cpu"] / r["t_max"]}
            full = {"wall": r["wall"] * sc, "cpu": r["cpu"] * sc}
            L.append(_row(m, name, _fmt(r["t_max"], "g"), _wc(r), _wc(rate),
                          f"{_wc(full)} ({note})", _errors(r, ref) if ref else {},
                          ref is not None))
        for r in res.get("rk45", []):
            reached = r["t_reached"]
            label = f"RK45 rtol {r['rtol']:g}"
            if r["status"] == "finished":
                ran, tt = _fmt(reached, "g"), f"{_wc(r)} (measured)"
            else:
                ran = f"{reached:.3g} ({r['status']} at {r['cap']:g} s wall)"
                tt = "– (see note)"
            rate = ({"wall": r["wall"] / reached, "cpu": r["cpu"] / reached}
                    if reached > 0 else None)
            L.append(_row(m, label, ran, _wc(r), "–" if rate is None else _wc(rate), tt,
                          _errors(r, ref) if ref else {}, ref is not None))
    L.append("")
    L.append("`–` = not reached by that run (the descent loops were run to the horizon in "
             "'ran to t' only; their time to the full horizon is that run's rate times the "
             "horizon, since a step costs the same all along). RK45 was stopped at its wall-time "
             "cap: its step size collapses on the sliding boundaries, so its rate near the cap "
             "says nothing about reaching t = 1e4 and no estimate is given. "
             "Errors are not measured at m = 1e6 unless the rtol = 1e-12 reference was run "
             f"(`--ref-max-m`, here {cfg['ref_max_m']:.0e}).\n")

    agree = []
    for mk, res in R["m"].items():
        g, tt = res.get("gd"), res.get("torch")
        if g and tt and "f" in tt:
            ks = [k for k in tt["f"] if k in g["f"]]
            if ks:
                dev = max(float(np.max(np.abs(np.subtract(g["f"][k], tt["f"][k])))) for k in ks)
                agree.append(f"{dev:.1e} at m = {int(mk):.0e} (t ≤ {max(map(float, ks)):g})")
    if agree:
        L.append("Check: the PyTorch loop and numpy `gradient_descent` take the same steps from "
                 "the same initial state; the largest difference of their f(xᵢ) at the common "
                 "record times is " + ", ".join(agree) + ".\n")
    L.append("## Ratios (same run)\n")
    L.append("| m | engine speed-up vs numpy GD | vs torch GD | vs RK45 (time to its last t) "
             "| error ratio numpy GD / engine | torch GD / engine | RK45 / engine |")
    L.append("|---|---|---|---|---|---|---|")
    for mk, res in R["m"].items():
        L.append(f"| {int(mk):.0e} | " + " | ".join(_ratios(res, t_max)) + " |")
    L.append("")
    L.append("Speed-up = (time the loop needs to reach t = 1e4, scaled as above) / engine "
             "time to t = 1e4, on wall time (on CPU time in brackets). For RK45 the ratio is "
             "the time RK45 spent reaching only its "
             "last t over the engine's time for the whole horizon (a lower bound). Error ratio = "
             "largest error of the method over the times it reached / largest engine error over "
             "the same times.\n")

    L.append("## Targets\n")
    L.extend(_targets(R))
    L.append("")
    L.append("## Memory (engine, peak RSS of the worker process)\n")
    L.append("| m | recorded | RSS after init (MiB) | peak RSS (MiB) | added by the run (MiB) "
             "| added per neuron (bytes) |")
    L.append("|---|---|---|---|---|---|")
    for mk, res in R["m"].items():
        e = res["engine"]
        add = e["rss_peak"] - e["rss_before"]
        L.append(f"| {int(mk):.0e} | {e['recorded_neurons']} neurons × {e['recorded_times']} "
                 f"times | {e['rss_before']:.0f} | {e['rss_peak']:.0f} | {add:.0f} | "
                 f"{add * 2**20 / int(mk):.3g} |")
    lg = R["long"]
    L.append(f"| {cfg['long_m']:.0e} (t = {cfg['long_t']:g}) | {lg['recorded_neurons']} "
             f"neurons × {lg['recorded_times']} times | {lg['rss_before']:.0f} | "
             f"{lg['rss_peak']:.0f} | {lg['rss_peak'] - lg['rss_before']:.0f} | "
             f"{(lg['rss_peak'] - lg['rss_before']) * 2**20 / cfg['long_m']:.3g} |")
    L.append("")
    L.append("The baseline (interpreter, numpy, scipy, reluflow, the initial parameters) is the "
             "'after init' column. At m = 100 the added memory is dominated by fixed costs; "
             "from 1e4 to 1e6 the memory added per neuron is what shows whether memory is O(m) "
             "(a constant per neuron) plus what is recorded.\n")
    if "profile" in R:
        pr = R["profile"]
        L.append(f"## Profile of the engine at m = {max(cfg['ms']):.0e} (target missed)\n")
        src = ("this run" if pr["source"] == "this run" else
               "a separate cProfile run of the same `gradient_flow` call (same m, κ, seed, "
               f"horizon, record times and neurons), stats file `{pr['source']}`")
        wall = f", {pr['wall']:.0f} s under cProfile" if pr.get("wall") else ""
        L.append(f"Source: {src}{wall}. Times are under load, as above.\n")
        if pr.get("table"):
            L.append("Where the time goes (self time, i.e. excluding callees; % of the profiled "
                     "total):\n")
            L.append("| function | calls | self time (s) | % | cumulative (s) |")
            L.append("|---|---|---|---|---|")
            for fn, nc, tt, pc, ct in pr["table"]:
                L.append(f"| `{fn}` | {nc} | {tt:.3g} | {pc:.1f} | {ct:.3g} |")
            L.append("")
        if cfg.get("profile_notes"):
            L.append(Path(cfg["profile_notes"]).read_text().strip() + "\n")
        L.append("```text")
        L.append(pr["text"])
        L.append("```\n")
    return "\n".join(L)


def _wc(r: Result) -> str:
    """``"wall (CPU)"`` seconds."""
    return f"{r['wall']:.3g} ({r['cpu']:.3g})"


def _torch_version(R: Result) -> str:
    for res in R["m"].values():
        t = res.get("torch")
        if t and "torch" in t:
            return f", torch {t['torch']} (CPU, float64)"
    return ""


def _row(m: int, name: str, ran: str, wall: str, rate: str, tt: str,
         errs: dict[str, float], have_ref: bool) -> str:
    cells = [(_fmt(errs[repr(t)], ".2e") if repr(t) in errs else ("–" if have_ref else "n/m"))
             for t in ERR_TIMES]
    return f"| {m:.0e} | {name} | {ran} | {wall} | {rate} | {tt} | " + " | ".join(cells) + " |"


def _max_common(res: Result, eng: Result, ref: Result | None) -> tuple[float, float] | None:
    if ref is None:
        return None
    e1, e0 = _errors(res, ref), _errors(eng, ref)
    keys = [k for k in e1 if k in e0]
    if not keys:
        return None
    return max(e1[k] for k in keys), max(e0[k] for k in keys)


def _speedup(res: Result, key: str, t_max: float) -> tuple[float, float] | None:
    """(wall, CPU) speed-up of the engine over a descent loop scaled to ``t_max``."""
    r = res.get(key)
    if r is None or "skipped" in r:
        return None
    e = res["engine"]
    sc = t_max / r["t_max"]
    return r["wall"] * sc / e["wall"], r["cpu"] * sc / e["cpu"]


def _ratios(res: Result, t_max: float) -> list[str]:
    eng, ref = res["engine"], res.get("ref")
    cells = []
    for key in ("gd", "torch"):
        s = _speedup(res, key, t_max)
        cells.append("–" if s is None else f"{s[0]:.3g}× ({s[1]:.3g}×)")
    rk = res.get("rk45", [])
    cells.append(", ".join(
        (f"≥ {r['wall'] / eng['wall']:.3g}× ({r['cpu'] / eng['cpu']:.3g}×)"
         if r["wall"] >= eng["wall"] else "no bound (capped before the engine's time)")
        + f" [rtol {r['rtol']:g}, t = {r['t_reached']:.3g}]" for r in rk) or "–")
    for key in ("gd", "torch"):
        r = res.get(key)
        mc = None if r is None or "skipped" in r else _max_common(r, eng, ref)
        cells.append("–" if mc is None else _ratio_txt(*mc))
    txt = []
    for r in rk:
        mc = _max_common(r, eng, ref)
        if mc is not None:
            txt.append(f"{_ratio_txt(*mc)} (rtol {r['rtol']:g})")
    cells.append(", ".join(txt) or "–")
    return cells


def _ratio_txt(num: float, den: float) -> str:
    if den == 0:
        return f"{num:.2e} / 0"
    return f"{num / den:.3g}×"


def _targets(R: Result) -> list[str]:
    cfg = R["config"]
    t_max = cfg["t_max"]
    out = []
    mid = R["m"].get(str(10**4))
    if mid is not None:
        eng, ref = mid["engine"], mid.get("ref")
        for key, name in (("gd", "numpy GD"), ("torch", "torch GD")):
            s = _speedup(mid, key, t_max)
            r = mid.get(key)
            mc = None if r is None or "skipped" in r else _max_common(r, eng, ref)
            if s is None or mc is None:
                out.append(f"- m = 1e4, t = {t_max:g}, engine vs {name}: not measured.")
                continue
            acc = mc[0] / mc[1] if mc[1] > 0 else math.inf
            ok = min(s) >= 1000 and acc >= 10
            out.append(f"- m = 1e4 to t = {t_max:g}: engine ≥ 1000× faster and ≥ 10× more "
                       f"accurate than {name} — **{'met' if ok else 'missed'}**: "
                       f"{s[0]:.3g}× faster on wall time ({s[1]:.3g}× on CPU time; engine "
                       f"{_wc(eng)} s vs {name} {s[0] * eng['wall']:.3g} "
                       f"({s[1] * eng['cpu']:.3g}) s scaled), error {mc[1]:.2e} vs "
                       f"{mc[0]:.2e} ({acc:.3g}× smaller) over t ∈ {{25, 50, 100}}.")
    else:
        out.append("- m = 1e4 target: m = 1e4 not in this run.")
    big = max(cfg["ms"])
    e = R["m"][str(big)]["engine"]
    if big == 10**6:
        ok = e["wall"] < cfg["target_big_s"]
        out.append(f"- m = 1e6 to t = {t_max:g} in under {cfg['target_big_s']:g} s — "
                   f"**{'met' if ok else 'missed'}**: {e['wall']:.3g} s wall "
                   f"({e['cpu']:.3g} s CPU), {e['steps']} steps, {e['rejected']} rejected.")
    else:
        out.append(f"- m = 1e6 target: not run (largest m here {big:.0e}; "
                   f"{e['wall']:.3g} s wall).")
    lg = R["long"]
    if cfg["long_m"] == 10**4 and cfg["long_t"] >= 1e30:
        ok = lg["wall"] < 10 and lg["drift"] <= 1e-9
        rr = lg.get("rerun")
        again = (f" (this run was redone on {rr['date']}, engine sha256 "
                 f"{rr['flow_py_sha256']}, load {rr['load']:.1f})") if rr else ""
        out.append(f"- m = 1e4 to t = 1e30 in under 10 s with invariant drift ≤ 1e-9 — "
                   f"**{'met' if ok else 'missed'}**: {lg['wall']:.3g} s wall "
                   f"({lg['cpu']:.3g} s CPU), reached t = {lg['t_end']:.3g}, "
                   f"`Trajectory.invariant_drift` {lg['drift']:.2e} over all "
                   f"{lg['recorded_neurons']} neurons and {lg['recorded_times']} times{again}.")
        if "drift_max_scale" in lg:
            out.append(f"  That drift is max |c_k(t) − c_k(0)| / (a_k² + ‖b_k‖²) at the *current* "
                       f"size, c_k = a_k² − ‖b_k‖². Its worst case is neuron "
                       f"{lg['worst_neuron']} at t = {lg['worst_t']:.3g}, whose norm is then "
                       f"{lg['worst_size_ratio']:.2g} × its initial norm (it passes close to "
                       f"the origin), so rounding is divided by a tiny number. Divided instead by "
                       f"max(current size, initial size) the largest drift is "
                       f"{lg['drift_max_scale']:.2e}: the invariant is kept to rounding; the "
                       f"miss is the metric's normalisation, which the lead may want to change.")
    else:
        out.append(f"- m = 1e4 to t = 1e30: reduced run (m = {cfg['long_m']:.0e}, "
                   f"t = {cfg['long_t']:g}): {lg['wall']:.3g} s, drift {lg['drift']:.2e}.")
    ms = [int(k) for k in R["m"]]
    per = {m: (R["m"][str(m)]["engine"]["rss_peak"] - R["m"][str(m)]["engine"]["rss_before"])
           * 2**20 / m for m in ms if m >= 10**4}
    if len(per) >= 2:
        lo, hi = min(per), max(per)
        grow = per[hi] / per[lo] if per[lo] > 0 else math.inf
        out.append(f"- Memory O(m) plus what is recorded — **{'met' if grow <= 2 else 'missed'}**:"
                   f" {per[lo]:.3g} bytes per neuron added at m = {lo:.0e}, {per[hi]:.3g} at "
                   f"m = {hi:.0e} (ratio {grow:.2f}; O(m) means this stays bounded).")
    return out


# --------------------------------------------------------------------------- CLI
def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` swaps in a reduced run."""
    ap = argparse.ArgumentParser(description="Benchmark gradient_flow vs GD, torch and RK45.")
    ap.add_argument("--quick", action="store_true",
                    help="reduced run: m = 100, 1000; short horizons; 10 s RK45 cap")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--json", type=Path, default=None,
                    help="raw results (default: results.json next to --out)")
    ap.add_argument("--render-only", type=Path, default=None,
                    help="re-render the report from an existing raw-results JSON")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rk45-cap", type=float, default=60.0, help="wall-time cap per RK45 run (s)")
    ap.add_argument("--ref-max-m", type=int, default=10**4,
                    help="largest m with an rtol = 1e-12 reference run")
    ap.add_argument("--redo-long", type=Path, default=None,
                    help="load this raw-results JSON, rerun only the long (t = 1e30) run, "
                         "and write the report")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile-stats", type=Path, default=None,
                    help="use this cProfile stats file instead of profiling again")
    ap.add_argument("--profile-notes", type=Path, default=None,
                    help="Markdown file with a hand-written reading of the profile")
    a = ap.parse_args(argv)
    if a.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {a.repeats}")
    if not (math.isfinite(a.rk45_cap) and a.rk45_cap > 0):
        ap.error(f"--rk45-cap must be finite and > 0, got {a.rk45_cap}")
    if a.profile_stats is not None and not a.profile_stats.is_file():
        ap.error(f"--profile-stats: no such file {a.profile_stats}")
    if a.profile_notes is not None and not a.profile_notes.is_file():
        ap.error(f"--profile-notes: no such file {a.profile_notes}")
    a.t_max = T_MAX
    a.target_big_s = 60.0
    a.rk45_rtols = [1e-6, 1e-9]
    a.rk45_max_m = 10**4  # above this only the loosest rtol
    if a.quick:
        a.ms = [100, 1000]
        a.gd_horizon = [100.0, 1.0]
        a.torch_horizon = [25.0, 1.0]
        a.rk45_cap = min(a.rk45_cap, 10.0)
        a.long_m, a.long_t = 1000, 1e30
        a.repeats = min(a.repeats, 2)
    else:
        a.ms = [100, 10**4, 10**6]
        # numpy GD: m=100 to t=1000 (1e6 steps); m=1e4 to t=100; m=1e6 a short horizon.
        a.gd_horizon = [1000.0, 100.0, 0.02]
        # torch: its per-step overhead is larger; same horizons would not fit the session.
        a.torch_horizon = [100.0, 25.0, 0.02]
        a.long_m, a.long_t = 10**4, 1e30
    if a.json is None:
        a.json = a.out.with_name("results.json")
    for opt, path in (("--out", a.out), ("--json", a.json)):
        if not path.parent.is_dir():
            ap.error(f"{opt}: directory {path.parent} does not exist")
    if a.redo_long is not None and not a.redo_long.is_file():
        ap.error(f"--redo-long: no such file {a.redo_long}")
    if a.render_only is not None and not a.render_only.is_file():
        ap.error(f"--render-only: no such file {a.render_only}")
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or re-render), write the report, print it."""
    cfg = parse(argv)
    if cfg.redo_long is not None:
        R = json.loads(cfg.redo_long.read_text())
        print(f"[long] engine m={cfg.long_m:.0e} to t={cfg.long_t:g} (rerun)", flush=True)
        R["long"] = _in_worker(engine_worker, cfg.long_m, cfg.long_t, 1e-9, None, None)
        R["long"]["rerun"] = {"date": _machine()["date"], "flow_py_sha256": _flow_hash(),
                              "load": os.getloadavg()[0]}
    elif cfg.render_only is not None:
        R = json.loads(cfg.render_only.read_text())
    else:
        R = run(cfg)
    if cfg.profile_notes is not None:
        R["config"]["profile_notes"] = str(cfg.profile_notes)
    if cfg.profile_stats is not None and "text" not in R.get("profile", {}):
        st = pstats.Stats(str(cfg.profile_stats))
        R["profile"] = {"source": str(cfg.profile_stats), "wall": None,
                        "table": _profile_table(st), "text": _profile_text(st, 25)}
    _save(R, cfg)
    text = render(R)
    tmp = cfg.out.with_suffix(".md.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(cfg.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
