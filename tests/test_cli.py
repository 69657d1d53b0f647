"""End-to-end tests of the ``reluflow`` command line, in temporary directories."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reluflow import Trajectory
from reluflow.analysis.phases import PHASE_TIMES
from reluflow.cli import main
from reluflow.runs import sweep as sw

# The scheduler's HTTP server starts even with dashboard_address=None (it then tries the
# fixed port 8787 and, when another process holds it, leaks a socket: a ResourceWarning,
# an error under filterwarnings=error).  A random port on loopback never collides.
LOOPBACK_ANY_PORT = "127.0.0.1:0"

SIM = ["simulate", "--delta", "0.3", "--p", "0.7", "--kappa", "1e-4", "--m", "20",
       "--seed", "3", "--t-max", "1e3"]
SPEC = """\
[grid]
delta = [0.25, 0.3]
p = [0.7]
kappa = [1e-4]
m = [10]
seed = [0, 1]
t_max = [1e3]
[fixed]
loss = "exp"
"""


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.slow  # starts processes
def test_help_on_every_command() -> None:
    exe = Path(sys.executable).with_name("reluflow")
    runs = [[str(exe), *cmd] for cmd in ([], ["simulate"], ["phases"], ["sweep"])]
    runs.append([sys.executable, "-m", "reluflow"])
    for cmd in runs:
        out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, check=False,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("usage: reluflow")
    sweep_help = subprocess.run([str(exe), "sweep", "--help"], capture_output=True, text=True,
                                check=False, timeout=60).stdout
    assert "[grid]" in sweep_help and "[fixed]" in sweep_help and "--scheduler" in sweep_help


def test_simulate_then_phases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reluflow.analysis.phases import detect_phases

    out = tmp_path / "run"
    assert main([*SIM, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "final_loss" in printed and "wall_time" in printed
    assert sorted(p.name for p in out.iterdir()) == ["overview.png", "summary.json",
                                                     "trajectory.npz"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"] == sw.normalize_config(
        {"delta": 0.3, "p": 0.7, "kappa": 1e-4, "m": 20, "seed": 3, "t_max": 1e3})
    from reluflow import __version__
    assert summary["version"] == __version__
    traj = Trajectory.load(out / "trajectory.npz")
    assert summary["final_loss"] == pytest.approx(float(traj.loss[-1]), rel=1e-12)
    assert summary["normalized_margin"] == pytest.approx(
        float(traj.normalized_margin()[-1]), rel=1e-12)
    assert summary["invariant_drift"] == pytest.approx(traj.invariant_drift, abs=1e-300)
    assert summary["wall_time"] > 0
    assert traj.t[-1] == pytest.approx(1e3)
    assert traj.a.shape[1] == 20
    for name in PHASE_TIMES:
        assert name in summary
        want = getattr(detect_phases(traj, traj.data), name)
        assert summary[name] == (None if want is None or not np.isfinite(want) else want)
    png = (out / "overview.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    # the same run again is bit-for-bit the same trajectory (seeded, deterministic)
    out2 = tmp_path / "run2"
    assert main([*SIM, "--out", str(out2)]) == 0
    capsys.readouterr()
    traj2 = Trajectory.load(out2 / "trajectory.npz")
    np.testing.assert_array_equal(traj.a, traj2.a)
    np.testing.assert_array_equal(traj.loss, traj2.loss)

    assert main(["phases", str(out / "trajectory.npz")]) == 0
    table = capsys.readouterr().out
    assert table.strip() == str(detect_phases(traj, traj.data)).strip()
    assert main(["phases", str(out / "trajectory.npz"), "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert isinstance(as_json, dict) and as_json


def test_simulate_says_when_the_engine_stopped_early(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Two nearly parallel points (delta 1e-3) are stiff for the explicit integrator: the
    engine stops the run ("stiff"), and the printed table says so next to the numbers."""
    out = tmp_path / "stiff"
    args = ["simulate", "--delta", "0.001", "--p", "0.5", "--kappa", "1e-3", "--m", "2",
            "--seed", "0", "--t-max", "1e12", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    stop = summary["engine"]["stop"]
    assert stop["reason"] == "stiff"
    traj = Trajectory.load(out / "trajectory.npz")
    assert traj.t[-1] < stop["t"] < 1e12
    assert f"note: the engine stopped the run at t = {stop['t']:.6g} (stiff:" in printed
    assert f"the trajectory ends at t = {traj.t[-1]:.6g}" in printed


def test_simulate_unbalanced_logistic(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    out = tmp_path / "u"
    args = ["simulate", "--delta", "0.4", "--p", "0.6", "--kappa", "1e-3", "--m", "8",
            "--seed", "0", "--t-max", "1e2", "--d", "3", "--loss", "logistic",
            "--unbalanced", "--kappa-a", "2e-3", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["balanced"] is False
    assert summary["parameters"]["kappa_a"] == 2e-3
    assert summary["parameters"]["d"] == 3 and summary["parameters"]["loss"] == "logistic"
    traj = Trajectory.load(out / "trajectory.npz")
    assert traj.B.shape[-1] == 3 and traj.loss_name == "logistic"


BAD_CLI = [
    (["--delta", "4"], "--delta", "(0, pi)"),
    (["--delta", "abc"], "--delta", "(0, pi)"),
    (["--p", "1"], "--p", "(0, 1)"),
    (["--kappa", "0"], "--kappa", "> 0"),
    (["--m", "2.5"], "--m", ">= 1"),
    (["--m", "0"], "--m", ">= 1"),
    (["--seed", "-1"], "--seed", ">= 0"),
    (["--t-max", "nan"], "--t-max", "> 0"),
    (["--d", "1"], "--d", ">= 2"),
    (["--loss", "mse"], "--loss", "logistic"),
    (["--kappa-a", "1e-3"], "--kappa-a", "--unbalanced"),
    (["--rtol", "1"], "--rtol", "[1e-14, 1e-3]"),
    (["--rtol", "0.01"], "--rtol", "[1e-14, 1e-3]"),
]


@pytest.mark.parametrize(("change", "field", "allowed"), BAD_CLI)
def test_bad_simulate_values_exit_2_and_write_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: list[str], field: str,
        allowed: str) -> None:
    args = list(SIM)
    if change[0] in args:
        i = args.index(change[0])
        args[i:i + 2] = change
    else:
        args += change
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert field in err and allowed in err
    assert _listing(tmp_path) == []


def test_missing_required_and_unwritable_out(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SIM[:-2], "--out", str(tmp_path / "o")]) == 2
    assert "--t-max" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*SIM, "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "writable directory" in err
    assert _listing(tmp_path) == ["file"]


def test_phases_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["phases", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    assert main(["phases", str(junk)]) == 2
    assert "not a reluflow trajectory" in capsys.readouterr().err


def test_sweep_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("p = [0.7]", "p = [0.7, 1.5]"))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "grid.p[1]" in err and "(0, 1)" in err
    assert main(["sweep", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    spec.write_text(SPEC)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "1",
                 "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"),
                 "--scheduler", "localhost"]) == 2
    assert "tcp://" in capsys.readouterr().err
    (tmp_path / "blocker").write_text("x")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "blocker")]) == 2
    assert "--out" in capsys.readouterr().err
    assert _listing(tmp_path) == ["blocker", "spec.toml"]


@pytest.mark.slow  # starts processes
@pytest.mark.timeout(180)
def test_sweep_local_then_dask_scheduler(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "local"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "4 configurations: 4 ok, 0 failed" in printed and "wall time" in printed
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert sorted((float(r["delta"]), int(r["seed"])) for r in rows) == \
        [(float(r["delta"]), int(r["seed"])) for r in rows]
    # resume: nothing to do
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2"]) == 0
    assert "ran 0, skipped 4" in capsys.readouterr().out

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1",
                                  dashboard_address=LOOPBACK_ANY_PORT) as cluster:
        dout = tmp_path / "dask"
        assert main(["sweep", str(spec), "--out", str(dout), "--scheduler",
                     cluster.scheduler_address, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Dask scheduler tcp://127.0.0.1" in printed
    with (dout / "results.csv").open() as fh:
        drows = list(csv.DictReader(fh))
    for r in (*rows, *drows):
        del r["wall_time"], r["host"]
    assert rows == drows


# ----------------------------------------------------------------- output folders, pipes
def test_simulate_replaces_a_previous_run_as_a_whole(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*SIM, "--out", str(out)]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert main([*SIM[:-2], "--t-max", "50", "--out", str(out)]) == 0
    second = json.loads((out / "summary.json").read_text())
    assert first["parameters"]["t_max"] == 1e3 and second["parameters"]["t_max"] == 50.0
    assert Trajectory.load(out / "trajectory.npz").t[-1] == pytest.approx(50.0)
    assert _listing(tmp_path) == ["run", "run/overview.png", "run/summary.json",
                                  "run/trajectory.npz"]
    # a folder holding anything else is refused, untouched
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main([*SIM, "--out", str(out)]) == 2
    assert "holds files other than a previous run's (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_stale_staging_folders_of_killed_runs_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".reluflow-stage-run-999999999"
    stale.mkdir()
    (stale / "trajectory.npz").write_bytes(b"half")
    assert main([*SIM, "--out", str(tmp_path / "run")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.slow  # starts processes
def test_sigterm_during_simulate_leaves_nothing(tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "reluflow", "simulate", "--delta", "0.3", "--p", "0.7",
           "--kappa", "1e-6", "--m", "200000", "--seed", "0", "--t-max", "1e30",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".reluflow-stage-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # starts processes
def test_phases_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([*SIM, "--out", str(out)]) == 0
    cmd = f"{sys.executable} -m reluflow phases {out / 'trajectory.npz'} | head -n 1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("quantity") and proc.stderr == ""
