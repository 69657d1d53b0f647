r"""Shared checks and selections of the figure functions.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "alive_mask",
    "as_time",
    "check_data",
    "check_traj",
    "neuron_signs",
    "positive_times",
    "sample_neurons",
    "time_index",
]

Array = NDArray[np.float64]


def sample_neurons(m: int, max_neurons: int = 300, seed: int = 0) -> NDArray[np.int64]:
    """Sorted indices of at most ``max_neurons`` of ``m`` neurons, drawn without replacement.

    Uses ``numpy.random.default_rng(seed)``; all indices when ``m <= max_neurons``.
    """
    mm = v.int_at_least("m", m, 0)
    mx = v.int_at_least("max_neurons", max_neurons, 1)
    sd = v.int_at_least("seed", seed, 0)
    if mm <= mx:
        return np.arange(mm, dtype=np.int64)
    rng = np.random.default_rng(sd)
    return np.sort(rng.choice(mm, size=mx, replace=False)).astype(np.int64)


def check_traj(traj: Any) -> Trajectory:
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if traj.t.size == 0:
        raise ValueError("traj must hold at least one recorded time")
    return traj


def check_data(traj: Trajectory, data: Dataset | None) -> Dataset:
    if data is None:
        return traj.data
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    if data.d != traj.B.shape[-1]:
        raise ValueError(
            f"data.d = {data.d} does not match the trajectory's d = {traj.B.shape[-1]}"
        )
    return data


def positive_times(traj: Trajectory) -> NDArray[np.bool_]:
    mask = traj.t > 0
    if not np.any(mask):
        raise ValueError("traj must hold at least one recorded time t > 0 for a log-time axis")
    return mask


def time_index(traj: Trajectory, index: int) -> int:
    T = traj.t.size
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise ValueError(f"index must be an integer in [-{T}, {T - 1}], got {index!r}")
    if not -T <= int(index) < T:
        raise ValueError(f"index must be an integer in [-{T}, {T - 1}], got {index!r}")
    return int(index) % T


def neuron_signs(traj: Trajectory, index: int = -1) -> NDArray[np.int64]:
    """Sign of a_k of each recorded neuron at recorded time ``index``.

    Balanced runs never change sign; unbalanced ones can (through a_k = 0).  Where a_k is
    exactly 0 the sign at the final time, else at the initial time, is used.
    """
    s = np.sign(traj.a[index]).astype(np.int64)
    for j in (-1, 0):
        zero = s == 0
        if not np.any(zero):
            break
        s[zero] = np.sign(traj.a[j, zero]).astype(np.int64)
    return s


def alive_mask(traj: Trajectory, index: int) -> NDArray[np.bool_]:
    """Active (pattern +1) on at least one data point at recorded time ``index``."""
    return np.any(traj.pattern[index] > 0, axis=-1)


def as_time(name: str, value: Any) -> float | None:
    if value is None:
        return None
    x = v.real_scalar(name, value)
    if x < 0:
        raise ValueError(f"{name} must be a time >= 0 or None, got {value!r}")
    return x
