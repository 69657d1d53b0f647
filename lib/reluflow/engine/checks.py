"""Input validation helpers: every error names the parameter and its allowed range."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Names of the losses: exponential :math:`e^{-z}` and logistic :math:`\log(1 + e^{-z})`.
LOSSES = ("exp", "logistic")

#: Tolerances the exact integrator accepts (closed interval).
RTOL_RANGE = (1e-14, 1e-3)


def positive_finite(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is not finite and > 0."""
    v = real_scalar(name, value)
    if not v > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def real_scalar(name: str, value: Any) -> float:
    """Return ``value`` as a finite float, or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return v


def open_interval(name: str, value: Any, lo: float, hi: float, label: str | None = None) -> float:
    """Return ``value`` as a float in the open interval ``(lo, hi)`` or raise."""
    v = real_scalar(name, value)
    if not lo < v < hi:
        rng = label or f"({lo:g}, {hi:g})"
        raise ValueError(f"{name} must lie in the open interval {rng}, got {value!r}")
    return v


def small_kappa(value: Any, name: str = "kappa") -> float:
    """Return ``value`` if it is a small initialization scale in :math:`(0, 1)`, else raise."""
    k = positive_finite(name, value)
    if not k < 1:
        raise ValueError(f"{name} must lie in the open interval (0, 1) (small init), got {value!r}")
    return k


def int_at_least(name: str, value: Any, lo: int) -> int:
    """Return ``value`` as an int >= ``lo`` or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if int(value) < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def finite_array(name: str, value: ArrayLike, ndim: int) -> NDArray[np.float64]:
    """Return ``value`` as a float64 array of dimension ``ndim`` with finite entries."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real {ndim}-d array, got {value!r}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return arr


def loss_name(value: Any) -> str:
    """Return the loss name if it is one of :data:`LOSSES`, else raise."""
    if value not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {value!r}")
    return str(value)


def time_grid(times: ArrayLike | None, t_max: float) -> NDArray[np.float64] | None:
    """Validate recording times: finite, >= 0, strictly increasing, <= ``t_max``."""
    if times is None:
        return None
    arr = finite_array("times", times, 1)
    if arr.size == 0:
        raise ValueError("times must hold at least one time in [0, t_max]")
    if np.any(arr < 0):
        raise ValueError("times must be >= 0 (allowed range [0, t_max])")
    if np.any(np.diff(arr) <= 0):
        raise ValueError("times must be strictly increasing")
    if arr[-1] > t_max * (1 + 1e-12):
        raise ValueError(f"times must lie in [0, t_max] = [0, {t_max:g}], got max {arr[-1]:g}")
    return arr


def neuron_subset(neurons: ArrayLike | None, m: int) -> NDArray[np.int64]:
    """Validate indices of neurons to record (default: all ``m``)."""
    if neurons is None:
        return np.arange(m, dtype=np.int64)
    idx = np.asarray(neurons)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("neurons must be a 1-d array of integer neuron indices")
    if idx.size and (idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"neurons must be indices in [0, {m - 1}]")
    return idx.astype(np.int64)
