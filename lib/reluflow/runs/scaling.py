r"""Grids of exact runs recorded densely over the first three phases (scaling, explorers).

The chapters' grids run through :func:`reluflow.runs.sweep.run` with :func:`run_dense`.
It differs from the sweep's default run in one respect that matters for phase *times*: the
trajectory is recorded on a dense linear grid over the first three phases (the horizon of
:func:`reluflow.analysis.theory.horizon`), then on a log grid up to ``t_max``
(:func:`~reluflow.runs.config.recording_times`, the ``"dense"`` grid of
:class:`~reluflow.runs.config.RunConfig`),
so that :func:`reluflow.analysis.phases.detect_phases` reads the times to a fraction of a
time unit; and the summary adds a few measurements and predictions
(:func:`reluflow.analysis.measure.measured_regime`, the saddle-escape prediction from the
actual initialization).  :func:`run_grid` reads finished runs from a cache folder
(:func:`reluflow.runs.cache.cache_dir`) and computes the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.measure import invariant_drift_total, measured_regime
from reluflow.analysis.theory import horizon, regime, saddle_escape_time
from reluflow.engine import checks as v
from reluflow.runs import sweep as sw
from reluflow.runs.config import (
    ConfigError,
    ConfigLike,
    Run,
    RunConfig,
    finite_or_none,
    simulate,
)

__all__ = ["dense_summary", "run_dense", "run_grid"]

Array = NDArray[np.float64]

def run_dense(config: Mapping[str, Any]) -> dict[str, Any]:
    r"""``run_fn`` for :func:`reluflow.runs.sweep.run`: one exact run on the dense grid, summarised.

    :func:`~reluflow.runs.config.simulate` of the configuration with ``grid="dense"``
    (:math:`\Delta < \pi/2` required), then :func:`dense_summary`.
    """
    cfg = RunConfig.from_mapping(config).replace(grid="dense")
    if not cfg.delta < 0.5 * np.pi:
        raise ConfigError(f"delta must lie in (0, pi/2) for a dense grid, got {cfg.delta}")
    return dense_summary(simulate(cfg))


def dense_summary(run: Run) -> dict[str, Any]:
    r"""The summary of a densely recorded run (:func:`run_dense`, the explorers' runs).

    :meth:`~reluflow.runs.config.Run.summary` plus: ``invariant_drift_total``, ``regime``
    (:func:`reluflow.analysis.theory.regime`), ``regime_measured``, ``leader`` and
    ``leader_both`` (:func:`reluflow.analysis.measure.measured_regime`), ``plateau_loss``,
    ``n_eff_final``, ``horizon`` (:math:`\min(H, t_{\max})`, the end of the linear part of
    the dense grid, :math:`H` = :func:`reluflow.analysis.theory.horizon`), and
    ``t_escape_pred_params``: :func:`reluflow.analysis.theory.saddle_escape_time` from the
    actual initial parameters (main regime, balanced exponential-loss runs in ``d = 2``;
    else ``None``).
    """
    cfg, traj, data, report = run.config, run.trajectory, run.data, run.report
    out = run.summary()
    label, sign, both = measured_regime(traj, data, report.t_escape)
    h = horizon(cfg.delta, cfg.p, cfg.kappa, cfg.loss, cfg.kappa_a)
    out.update({
        "invariant_drift_total": invariant_drift_total(traj),
        "regime": regime(data),
        "regime_measured": label,
        "leader": sign,
        "leader_both": finite_or_none(both),
        "plateau_loss": finite_or_none(report.values.get("plateau_loss")),
        "n_eff_final": finite_or_none(report.values.get("n_eff_final")),
        "horizon": float(min(h, cfg.t_max)),
        "t_escape_pred_params": finite_or_none(_escape_prediction(cfg, data)),
    })
    return out


def _escape_prediction(cfg: RunConfig, data: Any) -> float | None:
    """Saddle-escape time predicted from the run's own initial weights, where derived."""
    if not (regime(data) == "main" and cfg.balanced and cfg.loss == "exp" and cfg.d == 2):
        return None
    try:
        return saddle_escape_time(data, params=cfg.params())
    except ValueError:  # no condensing neuron in this draw
        return None


def run_grid(configs: Sequence[ConfigLike], out: str | os.PathLike[str],
             workers: int = 2, *, run_fn: sw.RunFn = run_dense,
             grid: str = "dense") -> list[dict[str, Any]]:
    """Run (or read from ``out``) every configuration with ``run_fn`` (default :func:`run_dense`).

    A thin wrapper of :func:`reluflow.runs.sweep.run` with a local ``spawn`` process pool of
    ``workers`` processes (only when something is left to compute).  Every configuration
    is recorded on the recording ``grid`` (a :data:`~reluflow.runs.config.GRIDS` name,
    part of its hash); ``run_fn`` must be a module-level function.  Returns the records
    in the order of ``configs``.

    Raises
    ------
    RuntimeError
        If a configuration failed (its ``<hash>.error.json`` names the error).
    """
    w = v.int_at_least("workers", workers, 1)
    todo = [RunConfig.from_mapping(c).replace(grid=grid) for c in configs]
    if not todo:
        raise ValueError("configs must hold at least one configuration")
    try:
        Path(out, "results").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out: cannot create {str(out)!r} "
                         f"({exc.strerror or exc})") from None
    ex: cf.Executor | None = None
    if w == 1:
        ex = _InlineExecutor()
    res = sw.run(todo, run_fn=run_fn, executor=ex, out=out, workers=w, progress=False)
    by_hash = {r["hash"]: r for r in res.records}
    recs = [by_hash.get(sw.config_hash(c)) for c in todo]
    bad = [r for r in recs if r is None or r.get("status") != "ok"]
    if bad:
        first = bad[0]
        msg = "missing" if first is None else first.get("error", "unknown error")
        raise RuntimeError(f"{len(bad)} of {len(todo)} runs failed in {str(out)!r}: {msg}")
    return [dict(r) for r in recs if r is not None]


class _InlineExecutor(cf.Executor):
    """Run submitted calls at once in this process (one worker, no pool start-up)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # handed to the caller through the future
            fut.set_exception(exc)
        return fut
