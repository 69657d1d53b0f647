r"""The :class:`Trajectory` record shared by every integrator, and its ``.npz`` format."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset, TwoPointData

__all__ = [
    "EVENT_DTYPE",
    "EVENT_KINDS",
    "Recorder",
    "Trajectory",
    "default_times",
    "make_events",
]

Array = NDArray[np.float64]

#: The kinds of events an integrator records.
EVENT_KINDS = ("activate", "deactivate", "slide-start", "slide-end")

#: Structured dtype of :attr:`Trajectory.events`: time, neuron index, data index, kind.
EVENT_DTYPE = np.dtype([("t", "f8"), ("neuron", "i8"), ("index", "i8"), ("kind", "U11")])


def make_events(rows: list[tuple[float, int, int, str]]) -> NDArray[Any]:
    """Pack ``(t, neuron, index, kind)`` rows into a structured array sorted by time."""
    ev = np.array(rows, dtype=EVENT_DTYPE) if rows else np.zeros(0, dtype=EVENT_DTYPE)
    return ev[np.argsort(ev["t"], kind="stable")]


def default_times(t_max: float, num: int = 241) -> Array:
    r"""Default recording grid: ``0`` then ``num - 1`` log-spaced times up to ``t_max``.

    The grid is uniform in :math:`\log_{10} t` from :math:`\min(10^{-2}, t_{\max}/100)`.
    """
    t_max = v.positive_finite("t_max", t_max)
    lo = min(1e-2, t_max / 100.0)
    return np.concatenate([[0.0], np.geomspace(lo, t_max, num - 1)])


@dataclass(eq=False)
class Trajectory:
    r"""A recorded training run.

    Attributes
    ----------
    t : ndarray, shape (T,)
        Recorded times.
    loss : ndarray, shape (T,)
        Loss :math:`L(\theta(t))`.
    f : ndarray, shape (T, n)
        Network output on each data point.
    a : ndarray, shape (T, m_rec)
        Output weights of the recorded neurons (indexed by time first).
    B : ndarray, shape (T, m_rec, d)
        Input weights of the recorded neurons.
    pattern : ndarray of int8, shape (T, m_rec, n)
        Activation state of each recorded neuron on each point: +1 active
        (:math:`b_k^\top x_i > 0`), -1 inactive, 0 held on the boundary
        :math:`b_k^\top x_i = 0` (sliding).
    events : structured ndarray
        Activation changes, fields ``t``, ``neuron``, ``index`` (data point) and ``kind``
        (one of :data:`EVENT_KINDS`).
    drift : ndarray, shape (T,)
        :math:`\max_k |c_k(t) - c_k(0)| / (a_k^2 + \lVert b_k\rVert^2)(t)` with
        :math:`c_k = a_k^2 - \lVert b_k\rVert^2` over the recorded neurons.
    neurons : ndarray of int, shape (m_rec,)
        Indices (into the full network) of the recorded neurons.
    data : Dataset
        The data the run was trained on.
    loss_name : str
        ``"exp"`` or ``"logistic"``.
    info : dict
        Method, tolerances, step counts, wall time and the like (JSON-serialisable).
    """

    t: Array
    loss: Array
    f: Array
    a: Array
    B: Array
    pattern: NDArray[np.int8]
    events: NDArray[Any]
    drift: Array
    neurons: NDArray[np.int64]
    data: Dataset
    loss_name: str = "exp"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def invariant_drift(self) -> float:
        r"""Largest relative drift of :math:`a_k^2 - \lVert b_k\rVert^2` over the run."""
        return float(np.max(self.drift)) if self.drift.size else 0.0

    @property
    def m(self) -> int:
        """Number of recorded neurons."""
        return int(self.a.shape[1])

    def at(self, time: float) -> int:
        """Index of the recorded time closest to ``time``."""
        return int(np.argmin(np.abs(self.t - time)))

    def sq_norm(self) -> Array:
        r""":math:`\lVert\theta(t)\rVert^2` over the recorded neurons, per recorded time."""
        return np.sum(self.a**2, axis=1) + np.einsum("tkd,tkd->t", self.B, self.B)

    def normalized_margin(self) -> Array:
        r""":math:`\min_i y_i f(x_i) / \lVert\theta\rVert^2` per recorded time (all neurons)."""
        marg = np.min(self.f * self.data.y[None, :], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return marg / self.sq_norm()

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the trajectory to ``path`` (``.npz``) atomically; returns the path."""
        path = Path(path)
        meta: dict[str, Any] = {"loss_name": self.loss_name, "info": self.info}
        if isinstance(self.data, TwoPointData):
            meta["two_point"] = {"delta": self.data.delta, "p": self.data.p, "d": self.data.d}
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent if str(path.parent) else ".")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(
                    fh, t=self.t, loss=self.loss, f=self.f, a=self.a, B=self.B,
                    pattern=self.pattern, events=self.events, drift=self.drift,
                    neurons=self.neurons, X=self.data.X, y=self.data.y,
                    weights=self.data.weights, meta=np.array(json.dumps(meta)),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trajectory:
        """Read a trajectory written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trajectory file at {path}")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            tp = meta.get("two_point")
            data: Dataset
            if tp is not None:
                data = TwoPointData(tp["delta"], tp["p"], d=tp["d"])
            else:
                data = Dataset(z["X"], z["y"], z["weights"])
            return cls(
                t=z["t"], loss=z["loss"], f=z["f"], a=z["a"], B=z["B"],
                pattern=z["pattern"], events=z["events"], drift=z["drift"],
                neurons=z["neurons"], data=data, loss_name=meta["loss_name"],
                info=meta["info"],
            )


def relative_drift(a0: ArrayLike, B0: ArrayLike, a: ArrayLike, B: ArrayLike) -> float:
    r"""``max_k |c_k - c_k(0)| / (a_k^2 + |b_k|^2)`` between two parameter states."""
    a0, B0, a, B = (np.asarray(x, dtype=np.float64) for x in (a0, B0, a, B))
    c0 = a0**2 - np.einsum("kd,kd->k", B0, B0)
    nb = np.einsum("kd,kd->k", B, B)
    c = a**2 - nb
    den = a**2 + nb
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(den > 0, np.abs(c - c0) / den, 0.0)
    return float(np.max(rel)) if rel.size else 0.0


class Recorder:
    r"""Buffers an integrator fills at its recording times, and the :class:`Trajectory` they make.

    Parameters
    ----------
    times : ndarray, shape (T,)
        The recording times.
    neurons : ndarray of int
        Indices of the recorded neurons.
    params_a0, params_B0 : ndarray
        Initial output and input weights of *all* neurons (for the invariant drift).
    data : Dataset
        The training data.
    loss : str
        Loss name.
    """

    def __init__(self, times: Array, neurons: NDArray[np.int64], params_a0: Array,
                 params_B0: Array, data: Dataset, loss: str) -> None:
        T, k = times.size, neurons.size
        self.times, self.neurons, self.data, self.loss = times, neurons, data, loss
        self.a0, self.B0 = params_a0[neurons], params_B0[neurons]
        self.a = np.empty((T, k))
        self.B = np.empty((T, k, data.d))
        self.pattern = np.empty((T, k, data.n), dtype=np.int8)
        self.f = np.empty((T, data.n))
        self.loss_values = np.empty(T)
        self.drift = np.empty(T)

    def record(self, j: int, a: Array, B: Array, pattern: ArrayLike, f: Array) -> None:
        """Store time ``j``: recorded neurons' ``a``, ``B``, ``pattern``; outputs ``f``."""
        from reluflow.engine.network import loss_value

        self.a[j], self.B[j], self.pattern[j], self.f[j] = a, B, pattern, f
        self.loss_values[j] = loss_value(f, self.data, self.loss)
        self.drift[j] = relative_drift(self.a0, self.B0, a, B)

    def trajectory(self, events: NDArray[Any], info: dict[str, Any]) -> Trajectory:
        """The finished record."""
        return Trajectory(
            t=self.times.copy(), loss=self.loss_values, f=self.f, a=self.a, B=self.B,
            pattern=self.pattern, events=events, drift=self.drift, neurons=self.neurons,
            data=self.data, loss_name=self.loss, info=info,
        )
