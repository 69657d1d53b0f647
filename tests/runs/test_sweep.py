"""Tests of reluflow.runs.sweep: spec validation, result files, resume, failures, executors."""

from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import math
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from reluflow.runs import sweep as sw

# The scheduler's HTTP server starts even with dashboard_address=None (it then tries the
# fixed port 8787 and, when another process holds it, leaks a socket: a ResourceWarning,
# an error under filterwarnings=error).  A random port on loopback never collides.
LOOPBACK_ANY_PORT = "127.0.0.1:0"

BASE = {"delta": 0.3, "p": 0.7, "kappa": 1e-4, "m": 10, "seed": 0, "t_max": 1e3}
GRID = {"delta": [0.2, 0.3], "p": [0.7], "kappa": [1e-4, 1e-6], "m": [8], "seed": [0, 1],
        "t_max": [1e2]}


# ----------------------------------------------------------------- module-level run_fns
# (module level so that process pools can pickle them by reference)
def _log_call(logdir: str, config: dict[str, Any]) -> None:
    h = sw.config_hash(config)
    Path(logdir, f"{h}.{os.getpid()}.{time.monotonic_ns()}").touch()


def toy_run(logdir: str, config: dict[str, Any]) -> dict[str, Any]:
    """A cheap deterministic stand-in for a training run; logs each call."""
    _log_call(logdir, config)
    return {"value": config["delta"] * config["kappa"] + config["seed"],
            "log_kappa": math.log10(config["kappa"])}


def failing_run(logdir: str, config: dict[str, Any]) -> dict[str, Any]:
    """Raises for seed == 1 unless the file ``logdir/fixed`` exists."""
    _log_call(logdir, config)
    if config["seed"] == 1 and not Path(logdir, "fixed").exists():
        raise ArithmeticError(f"deliberate failure for delta={config['delta']}")
    return {"value": config["delta"]}


def killing_run(logdir: str, config: dict[str, Any]) -> dict[str, Any]:
    """SIGKILLs its own worker process for one configuration, on the first attempt only."""
    marker = Path(logdir, "killed-once")
    if config["delta"] == 0.3 and config["kappa"] == 1e-6 and config["seed"] == 0 \
            and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return toy_run(logdir, config)


def interrupting_run(logdir: str, config: dict[str, Any]) -> dict[str, Any]:
    """Sends SIGINT (a Ctrl-C) to the process, on the first attempt of one configuration."""
    marker = Path(logdir, "interrupted-once")
    if config["delta"] == 0.2 and config["kappa"] == 1e-6 and config["seed"] == 0 \
            and not marker.exists():
        marker.touch()
        time.sleep(0.5)  # let the coordinator record the results that came before
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    return toy_run(logdir, config)


def shadowing_run(config: dict[str, Any]) -> dict[str, Any]:
    """Returns keys that collide with the configuration and the record's own fields."""
    return {"delta": 99.0, "hash": "bogus", "version": "0", "value": config["seed"]}


def _calls(logdir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in logdir.iterdir():
        if f.name.count(".") == 2:
            h = f.name.split(".")[0]
            out[h] = out.get(h, 0) + 1
    return out


def _assert_complete(out: Path, configs: list[dict[str, Any]]) -> None:
    rdir = out / "results"
    names = sorted(p.name for p in rdir.iterdir())
    assert names == sorted(f"{sw.config_hash(c)}.json" for c in configs)  # no tmp, no dup
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + len(configs)
    assert len(set(rows[1:])) == len(configs)


# ----------------------------------------------------------------- spec and configs
def test_expand_grid_is_the_product_and_normalised() -> None:
    configs = sw.expand_grid(GRID, {"d": 3})
    assert len(configs) == 2 * 1 * 2 * 1 * 2 * 1
    assert all(c["d"] == 3 and c["loss"] == "exp" and c["balanced"] for c in configs)
    assert len({sw.config_hash(c) for c in configs}) == len(configs)
    # duplicates after normalisation are dropped (1e2 == 100.0, m=8 == 8.0)
    dup = sw.expand_grid({**GRID, "t_max": [1e2, 100], "m": [8, 8.0]})
    assert len(dup) == 8


def test_config_hash_ignores_order_and_explicit_defaults() -> None:
    h = sw.config_hash(BASE)
    assert h == sw.config_hash(dict(reversed(list(BASE.items()))))
    assert h == sw.config_hash({**BASE, "d": 2, "loss": "exp", "balanced": True})
    assert h != sw.config_hash({**BASE, "seed": 1})
    assert len(h) == 16 and all(c in "0123456789abcdef" for c in h)


def test_load_spec_example_file() -> None:
    spec = Path(__file__).resolve().parents[2] / "examples" / "sweep_small.toml"
    configs = sw.load_spec(spec)
    assert len(configs) >= 2
    assert all(set(c) == set(sw.FIELDS) for c in configs)


BAD_SPECS = [
    ("[grid]\ndelta=[0.2, 4.0]\n", "grid.delta[1]", "(0, pi)"),
    ("[grid]\ndelta=[0.2]\np=[1.0]\n", "grid.p[0]", "(0, 1)"),
    ("[grid]\nkappa=[-1e-3]\n", "grid.kappa[0]", "> 0"),
    ("[grid]\nm=[2.5]\n", "grid.m[0]", ">= 1"),
    ("[grid]\nm=[0]\n", "grid.m[0]", ">= 1"),
    ("[grid]\nseed=[-1]\n", "grid.seed[0]", ">= 0"),
    ("[grid]\ndelta=[true]\n", "grid.delta[0]", "(0, pi)"),
    ("[grid]\nt_max=[inf]\n", "grid.t_max[0]", "> 0"),
    ("[grid]\ndelta=[]\n", "grid.delta", "non-empty list"),
    ("[grid]\ndelta=0.3\n", "grid.delta", "non-empty list"),
    ("[grid]\ndeltas=[0.3]\n", "grid.deltas", "allowed fields"),
    ("[grid]\ndelta=[0.3]\n[fixed]\nd=1\n", "fixed.d", "integer >= 2"),
    ("[grid]\ndelta=[0.3]\n[fixed]\nloss='mse'\n", "fixed.loss", "logistic"),
    ("[grid]\ndelta=[0.3]\n[fixed]\nd=[2]\n", "fixed.d", "single value"),
    ("[grid]\ndelta=[0.3]\n[fixed]\ndelta=0.2\n", "delta", "both"),
    ("[grid]\ndelta=[0.3]\n[extra]\nx=1\n", "extra", "unknown table"),
    ("[fixed]\ndelta=0.3\n", "grid", "non-empty [grid]"),
    ("[grid]\ndelta=[0.3]\np=[0.7]\nkappa=[1e-3]\nm=[4]\nseed=[0]\n", "t_max", "missing"),
    ("[grid]\ndelta=[0.3]\np=[0.7]\nkappa=[1e-3]\nm=[4]\nseed=[0]\nt_max=[1]\n"
     "[fixed]\nkappa_a=1.0\n", "kappa_a", "balanced = false"),
    ("[grid]\ndelta=[0.3]\np=[0.7]\nkappa=[1e-3]\nm=[4]\nseed=[0]\nt_max=[1]\n"
     "[fixed]\nbalanced='no'\n", "fixed.balanced", "true or false"),
    ("[grid\ndelta=[0.3]\n", "spec", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "field", "allowed"), BAD_SPECS)
def test_bad_specs_name_field_and_range(tmp_path: Path, text: str, field: str,
                                        allowed: str) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    with pytest.raises(sw.SpecError) as err:
        sw.load_spec(spec)
    msg = str(err.value)
    assert field in msg
    assert allowed in msg


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(sw.SpecError, match="no such file"):
        sw.load_spec(tmp_path / "nope.toml")


def test_bad_out_and_workers_write_nothing(tmp_path: Path) -> None:
    configs = sw.expand_grid(GRID)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(sw.SpecError, match="out"):
        sw.run(configs, functools.partial(toy_run, str(tmp_path)), out=blocker / "sub")
    with pytest.raises(sw.SpecError, match="not a directory"):
        sw.run(configs, functools.partial(toy_run, str(tmp_path)), out=blocker)
    with pytest.raises(sw.SpecError, match="workers must be an integer >= 1"):
        sw.run(configs, functools.partial(toy_run, str(tmp_path)), out=tmp_path / "o",
               workers=0)
    with pytest.raises(sw.SpecError, match=r"grid\[1\].*delta"):
        sw.run([BASE, {**BASE, "delta": 9}], out=tmp_path / "o2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ----------------------------------------------------------------- running
def test_thread_pool_sweep_writes_results_and_resumes(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    configs = sw.expand_grid(GRID)
    fn = functools.partial(toy_run, str(logdir))
    with cf.ThreadPoolExecutor(2) as ex:
        res = sw.run(configs, fn, executor=ex, out=tmp_path / "o", progress=False)
    assert res.complete and res.n_ok == 8 and res.n_run == 8 and res.n_skipped == 0
    _assert_complete(tmp_path / "o", configs)
    for c in configs:
        rec = json.loads((tmp_path / "o" / "results" / f"{sw.config_hash(c)}.json").read_text())
        assert rec["status"] == "ok" and rec["hash"] == sw.config_hash(c)
        assert rec["value"] == pytest.approx(c["delta"] * c["kappa"] + c["seed"])
        assert {k: rec[k] for k in sw.FIELDS} == c
    # the CSV is sorted by the configuration, whatever the completion order
    rows = (tmp_path / "o" / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    keyed = [dict(zip(header, r.split(","), strict=True)) for r in rows[1:]]
    order = [(float(r["delta"]), float(r["kappa"]), int(r["seed"])) for r in keyed]
    assert order == sorted(order)
    # re-running does nothing new
    with cf.ThreadPoolExecutor(2) as ex:
        again = sw.run(configs, fn, executor=ex, out=tmp_path / "o", progress=False)
    assert again.n_run == 0 and again.n_skipped == 8
    assert set(_calls(logdir).values()) == {1}
    # growing the grid runs only the new configurations
    bigger = sw.expand_grid({**GRID, "seed": [0, 1, 2]})
    with cf.ThreadPoolExecutor(2) as ex:
        more = sw.run(bigger, fn, executor=ex, out=tmp_path / "o", progress=False)
    assert more.n_run == 4 and more.n_skipped == 8 and more.complete
    assert set(_calls(logdir).values()) == {1}


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    configs = sw.expand_grid(GRID)
    fn = functools.partial(failing_run, str(logdir))
    out = tmp_path / "o"
    with cf.ThreadPoolExecutor(2) as ex:
        res = sw.run(configs, fn, executor=ex, out=out, progress=False)
    assert res.complete and res.n_ok == 4 and res.n_failed == 4
    errs = sorted(out.glob("results/*.error.json"))
    assert len(errs) == 4
    rec = json.loads(errs[0].read_text())
    assert rec["status"] == "error" and rec["seed"] == 1
    assert "ArithmeticError: deliberate failure" in rec["error"]
    assert "Traceback" in rec["traceback"] and "failing_run" in rec["traceback"]
    csv = (out / "results.csv").read_text()
    assert csv.count(",error,") == 4
    # failures are not retried by default ...
    with cf.ThreadPoolExecutor(2) as ex:
        again = sw.run(configs, fn, executor=ex, out=out, progress=False)
    assert again.n_run == 0 and again.n_failed == 4
    # ... but are with retry_failed; a success replaces the error file
    Path(logdir, "fixed").touch()
    with cf.ThreadPoolExecutor(2) as ex:
        fixed = sw.run(configs, fn, executor=ex, out=out, progress=False, retry_failed=True)
    assert fixed.n_run == 4 and fixed.n_ok == 8 and fixed.n_failed == 0
    _assert_complete(out, configs)


def _spawn_pool(n: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))


@pytest.mark.slow  # starts processes
@pytest.mark.timeout(120)
def test_killed_worker_then_resume_is_complete_without_duplicates(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    configs = sw.expand_grid({**GRID, "seed": [0, 1, 2]})
    fn = functools.partial(killing_run, str(logdir))
    out = tmp_path / "o"
    with pytest.raises(sw.SweepInterrupted, match="BrokenProcessPool") as err:
        sw.run(configs, fn, executor=None, out=out, workers=2, progress=False)
    first = err.value.result
    assert (logdir / "killed-once").exists()
    assert not first.complete
    done_before = {p.name for p in (out / "results").iterdir()}
    assert all(n.endswith(".json") and not n.startswith(".") for n in done_before)
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + len(done_before)  # the CSV of the partial sweep is written
    snapshot = {n: (out / "results" / n).read_bytes() for n in done_before}

    res = sw.run(configs, fn, out=out, workers=2, progress=False)
    assert res.complete and res.n_ok == len(configs) and res.n_skipped == len(done_before)
    _assert_complete(out, configs)
    # nothing finished before the kill was recomputed or rewritten
    calls = _calls(logdir)
    for name, content in snapshot.items():
        assert (out / "results" / name).read_bytes() == content
        assert calls[name.split(".")[0]] == 1
    assert set(calls) == {sw.config_hash(c) for c in configs}


@pytest.mark.timeout(60)
def test_ctrl_c_then_resume(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    configs = sw.expand_grid(GRID)
    fn = functools.partial(interrupting_run, str(logdir))
    out = tmp_path / "o"
    # a process started in the background by a non-interactive shell inherits SIGINT as
    # ignored, and Python then installs no KeyboardInterrupt handler: install it here
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with cf.ThreadPoolExecutor(1) as ex:
            with pytest.raises(sw.SweepInterrupted, match="Ctrl-C") as err:
                sw.run(configs, fn, executor=ex, out=out, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not err.value.result.complete
    n_before = len(list((out / "results").iterdir()))
    assert 0 < n_before < len(configs)
    with cf.ThreadPoolExecutor(1) as ex:
        res = sw.run(configs, fn, executor=ex, out=out, progress=False)
    assert res.complete and res.n_skipped == n_before
    _assert_complete(out, configs)


def test_executor_type_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor must be"):
        sw.run([BASE], functools.partial(toy_run, str(tmp_path)), executor=object(),
               out=tmp_path / "o")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- real runs, pool vs Dask
SMALL_REAL = {"delta": [0.3], "p": [0.7], "kappa": [1e-3, 1e-5], "m": [12], "seed": [0, 1],
              "t_max": [1e3]}


def _strip(out: Path) -> dict[str, dict[str, Any]]:
    recs = {}
    for p in sorted((out / "results").glob("*.json")):
        rec = json.loads(p.read_text())
        for k in ("wall_time", "host"):
            rec.pop(k, None)
        recs[p.name] = rec
    return recs


@pytest.mark.slow  # starts processes
@pytest.mark.timeout(180)
def test_process_pool_and_dask_give_identical_results(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    configs = sw.expand_grid(SMALL_REAL)
    local = sw.run(configs, out=tmp_path / "local", workers=2, progress=False)
    assert local.complete and local.n_ok == len(configs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1",
                                  dashboard_address=LOOPBACK_ANY_PORT) as cluster, \
            distributed.Client(cluster) as client:
        dask = sw.run(configs, executor=client, out=tmp_path / "dask", progress=False)
    assert dask.complete and dask.n_ok == len(configs)
    a, b = _strip(tmp_path / "local"), _strip(tmp_path / "dask")
    assert a == b
    rec = next(iter(a.values()))
    assert rec["final_loss"] is not None and 0 < rec["final_loss"] < 1
    assert rec["invariant_drift"] is not None and rec["invariant_drift"] < 1e-6
    ca = (tmp_path / "local" / "results.csv").read_text().splitlines()
    cb = (tmp_path / "dask" / "results.csv").read_text().splitlines()
    wall = ca[0].split(",").index("wall_time")
    host = ca[0].split(",").index("host")

    def drop(rows: list[str]) -> list[list[str]]:
        return [[c for i, c in enumerate(r.split(",")) if i not in (wall, host)] for r in rows]

    assert drop(ca) == drop(cb)


def test_results_cannot_shadow_the_configuration(tmp_path: Path) -> None:
    from reluflow import __version__

    with cf.ThreadPoolExecutor(1) as ex:
        res = sw.run([BASE], shadowing_run, executor=ex, out=tmp_path / "o", progress=False)
    (rec,) = res.records
    assert rec["delta"] == BASE["delta"] and rec["hash"] == sw.config_hash(BASE)
    assert rec["version"] == __version__ and rec["value"] == 0


# ----------------------------------------------------------------- robustness (time, files)
def slow_or_fast_run(config: dict[str, Any]) -> dict[str, Any]:
    """Sleeps far past any test's time limit for seed 1 (Python code, no engine step)."""
    if config["seed"] == 1:
        time.sleep(120.0)
    return {"value": config["seed"]}


@pytest.mark.slow  # starts processes
def test_time_limit_records_a_failure_and_the_sweep_goes_on(tmp_path: Path) -> None:
    configs = sw.expand_grid({**GRID, "delta": [0.3], "kappa": [1e-4]})  # seeds 0 and 1
    t0 = time.monotonic()
    res = sw.run(configs, slow_or_fast_run, out=tmp_path / "o", workers=2, progress=False,
                 time_limit=1.0)
    assert time.monotonic() - t0 < 60.0
    assert res.complete and res.n_ok == 1 and res.n_failed == 1
    err = next(r for r in res.records if r["status"] == "error")
    assert err["seed"] == 1 and "time limit of 1 s exceeded" in err["error"]
    with pytest.raises(sw.SpecError, match="time_limit"):
        sw.run(configs, slow_or_fast_run, out=tmp_path / "p", time_limit=0.0)


def test_spec_sweep_table_sets_the_time_limit(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text("[grid]\ndelta=[0.3]\np=[0.7]\nkappa=[1e-4]\nm=[4]\nseed=[0]\n"
                    "t_max=[10.0]\n[sweep]\ntime_limit = 30\n")
    configs, options = sw.read_spec(spec)
    assert len(configs) == 1 and options == {"time_limit": 30.0}
    spec.write_text(spec.read_text().replace("time_limit = 30", "time_limit = -1"))
    with pytest.raises(sw.SpecError, match=r"sweep\.time_limit must be"):
        sw.read_spec(spec)
    spec.write_text(spec.read_text().replace("time_limit = -1", "retries = 2"))
    with pytest.raises(sw.SpecError, match=r"sweep\.retries: unknown option"):
        sw.read_spec(spec)


@pytest.mark.parametrize("damage", ["", "{\"hash\": \"x\"", "[]", "{\"status\": \"ok\"}"])
def test_empty_or_corrupt_result_files_are_run_again(tmp_path: Path, damage: str) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    configs = sw.expand_grid(GRID)
    fn = functools.partial(toy_run, str(logdir))
    with cf.ThreadPoolExecutor(2) as ex:
        sw.run(configs, fn, executor=ex, out=tmp_path / "o", progress=False)
    victim = tmp_path / "o" / "results" / f"{sw.config_hash(configs[3])}.json"
    victim.write_text(damage)
    with cf.ThreadPoolExecutor(2) as ex:
        again = sw.run(configs, fn, executor=ex, out=tmp_path / "o", progress=False)
    assert again.n_run == 1 and again.n_skipped == 7 and again.complete and again.n_ok == 8
    assert json.loads(victim.read_text())["hash"] == sw.config_hash(configs[3])
    calls = _calls(logdir)
    assert calls[sw.config_hash(configs[3])] == 2 and sum(calls.values()) == 9
