"""Tests of reluflow.runs.config: one run configuration, its ranges, hash and simulate."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reluflow as rf
from reluflow.analysis.theory import horizon
from reluflow.runs.config import (
    FIELDS,
    REQUIRED,
    ConfigError,
    Run,
    RunConfig,
    recording_times,
    simulate,
)

BASE: dict[str, Any] = {"delta": 0.3, "p": 0.7, "kappa": 1e-4, "m": 8, "seed": 0,
                        "t_max": 50.0}


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("delta", 0.0, "open interval (0, pi)"), ("delta", math.pi, "open interval (0, pi)"),
        ("p", 1.0, "open interval (0, 1)"), ("kappa", 0.0, "> 0"),
        ("kappa", float("inf"), "> 0"), ("m", 0, "integer >= 1"), ("m", 2.5, "integer >= 1"),
        ("seed", -1, "integer >= 0"), ("t_max", -1.0, "> 0"), ("d", 1, "integer >= 2"),
        ("loss", "hinge", "one of 'exp', 'logistic'"), ("balanced", 1, "true or false"),
        ("rtol", 1e-2, "[1e-14, 1e-3]"), ("rtol", 1e-15, "[1e-14, 1e-3]"),
        ("grid", "linear", "one of 'log', 'dense'"), ("kappa_a", -1.0, "> 0"),
    ],
)
def test_every_bad_field_is_named_with_its_range(field: str, value: Any, words: str) -> None:
    cfg = {**BASE, field: value}
    if field == "kappa_a":
        cfg["balanced"] = False
    with pytest.raises(ConfigError) as err:
        RunConfig(**cfg)
    assert str(err.value).startswith(f"{field} must be") and words in str(err.value)


def test_mappings_unknown_missing_and_kappa_a() -> None:
    with pytest.raises(ConfigError, match="unknown field 'dleta'"):
        RunConfig.from_mapping({**BASE, "dleta": 0.3})
    for name in REQUIRED:
        cfg = dict(BASE)
        del cfg[name]
        with pytest.raises(ConfigError, match=f"missing required field '{name}'"):
            RunConfig.from_mapping(cfg)
    with pytest.raises(ConfigError, match="kappa_a is only allowed with balanced = false"):
        RunConfig(**BASE, kappa_a=1e-3)
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.from_mapping([("delta", 0.3)])  # type: ignore[arg-type]


def test_values_are_normalised_and_the_hash_is_canonical() -> None:
    a = RunConfig(**{**BASE, "m": 8.0, "seed": np.int64(0), "kappa": np.float32(1e-4)})
    assert isinstance(a.m, int) and isinstance(a.seed, int) and isinstance(a.kappa, float)
    b = RunConfig.from_mapping(dict(reversed(list({**BASE, "kappa": a.kappa}.items()))))
    assert a.hash() == b.hash() and len(a.hash()) == 16
    assert a.hash() != a.replace(seed=1).hash()
    assert RunConfig.from_mapping(a) is a
    assert list(a.to_dict()) == list(FIELDS)


@settings(max_examples=40, deadline=None)
@given(delta=st.floats(1e-6, math.pi - 1e-6), p=st.floats(1e-6, 1 - 1e-6),
       kappa=st.floats(1e-300, 1e300), m=st.integers(1, 10**6), seed=st.integers(0, 2**64))
def test_valid_values_round_trip(delta: float, p: float, kappa: float, m: int,
                                 seed: int) -> None:
    cfg = RunConfig(delta=delta, p=p, kappa=kappa, m=m, seed=seed, t_max=1.0)
    assert RunConfig.from_mapping(cfg.to_dict()) == cfg


def test_describe_is_quoted_by_every_error() -> None:
    for f in FIELDS.values():
        assert f.describe() and f.help
        if f.explore is not None:
            f.check(f.explore[0])  # the explorers' range lies inside the allowed one
            f.check(f.explore[1])
    with pytest.raises(ConfigError, match=r"kappa must lie in \[1e-12, 0.1\] for the explorer"):
        FIELDS["kappa"].check_explore(0.5)


def test_simulate_runs_the_configuration() -> None:
    cfg = RunConfig(**BASE)
    run = simulate(cfg)
    assert isinstance(run, Run) and run.config == cfg
    assert run.trajectory.m == 8 and run.trajectory.t[-1] == pytest.approx(50.0)
    np.testing.assert_array_equal(run.trajectory.B[0], cfg.params().B)
    assert run.data.delta == pytest.approx(0.3)
    assert isinstance(run.report, rf.PhaseReport) and run.wall_time > 0
    s = run.summary()
    assert s["final_loss"] == pytest.approx(float(run.trajectory.loss[-1]))
    again = simulate(dict(BASE))
    np.testing.assert_array_equal(again.trajectory.f, run.trajectory.f)  # seeded


def test_dense_grid_records_the_first_phases_linearly() -> None:
    cfg = RunConfig(**{**BASE, "t_max": 1e6}, grid="dense")
    t = cfg.times()
    lin = t[: np.searchsorted(t, 0.5 * t[-1])]
    assert np.allclose(np.diff(lin[:50]), lin[1] - lin[0])
    assert t[-1] == pytest.approx(1e6)


def test_recording_times_dense_then_log() -> None:
    cfg = {**BASE, "t_max": 1e6}
    t = recording_times(cfg, n_lin=50, n_log=10)
    h = horizon(0.3, 0.7, 1e-4)
    assert t[0] == 0.0 and t.size == 61
    assert np.allclose(np.diff(t[:51]), h / 50)
    assert t[-1] == pytest.approx(1e6)
    assert np.all(np.diff(t) > 0)
    short = recording_times({**BASE, "t_max": 10.0}, n_lin=20)
    assert short.size == 21 and short[-1] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="n_lin"):
        recording_times(cfg, n_lin=1)
    with pytest.raises(ConfigError, match="kappa"):
        recording_times({**BASE, "kappa": -1.0})
