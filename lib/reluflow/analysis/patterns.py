r"""Activation-pattern changes of a run, counted per data point over time.

A neuron :math:`k` is *active* on point :math:`i` when :math:`b_k^\top x_i > 0`.  Every
change of that state is an event of the trajectory (:attr:`reluflow.Trajectory.events`,
kinds ``activate`` and ``deactivate``; a neuron caught on the boundary
:math:`b_k^\top x_i = 0` from the active side counts as a deactivation, one released from
it to the active side as an activation).  This book's classification of the changes of a
pair :math:`(k, i)`:

* **deactivation**: a ``deactivate`` event (the neuron stops feeding point :math:`i`);
* **reactivation**: an ``activate`` event of a pair that has been active before (at the
  start, or after an earlier activation), i.e. a neuron that comes back to a point it
  had left (the paper's *reactivation*);
* **activation**: an ``activate`` event of a pair never active before.

The state of a pair before its first event is read off that event (an ``activate`` means
it was inactive, a ``deactivate`` that it was active), so every neuron's events count, not
only those of the recorded neurons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.engine import checks as v
from reluflow.engine.trajectory import Trajectory

__all__ = ["CHANGE_KINDS", "PatternChanges", "classify_events", "first_event_times", "longest_hold",
           "pattern_changes"]

#: The three kinds of activation-pattern change, in the order of :func:`classify_events`.
CHANGE_KINDS = ("deactivation", "reactivation", "activation")


def classify_events(events: Any) -> NDArray[np.str_]:
    r"""Label every event ``deactivation``, ``reactivation``, ``activation`` or ``""``.

    Parameters
    ----------
    events : structured ndarray
        Events with fields ``t``, ``neuron``, ``index`` and ``kind`` sorted by time (as in
        :attr:`reluflow.Trajectory.events`).

    Returns
    -------
    ndarray of str, shape (len(events),)
        The label of each event; ``""`` for ``slide-start`` and ``slide-end`` events (not
        changes of activity on their own).

    Examples
    --------
    >>> from reluflow.engine.trajectory import make_events
    >>> ev = make_events([(1.0, 0, 1, "deactivate"), (2.0, 0, 1, "activate"),
    ...                   (3.0, 2, 0, "activate"), (4.0, 2, 0, "slide-start")])
    >>> classify_events(ev).tolist()
    ['deactivation', 'reactivation', 'activation', '']
    """
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not {"t", "neuron", "index", "kind"} <= set(names):
        raise ValueError("events must be a structured array with fields t, neuron, index, kind")
    if events.size and np.any(np.diff(events["t"]) < 0):
        raise ValueError("events must be sorted by time")
    out = np.full(events.size, "", dtype="<U12")
    was_active: set[tuple[int, int]] = set()
    for j, (k, i, kind) in enumerate(zip(events["neuron"].tolist(), events["index"].tolist(),
                                         events["kind"].tolist(), strict=True)):
        key = (k, i)
        if kind == "deactivate":
            out[j] = "deactivation"
            was_active.add(key)
        elif kind == "activate":
            out[j] = "reactivation" if key in was_active else "activation"
            was_active.add(key)
    return out


@dataclass(frozen=True)
class PatternChanges:
    r"""Cumulative activation-pattern changes per point (see :func:`pattern_changes`).

    Attributes
    ----------
    t : ndarray, shape (T,)
        Times at which the counts are given.
    counts : dict
        ``{kind: ndarray of int, shape (T, n)}`` for each kind of :data:`CHANGE_KINDS`:
        the number of such changes on point :math:`i` at times :math:`\le t_j`.
    y : ndarray, shape (n,)
        Labels of the points (to split the counts by class).
    """

    t: NDArray[np.float64]
    counts: dict[str, NDArray[np.int64]]
    y: NDArray[np.float64]

    def total(self, kind: str, label: float | None = None) -> NDArray[np.int64]:
        """Counts of ``kind`` summed over the points (of label ``label`` if given), per time."""
        if kind not in CHANGE_KINDS:
            raise ValueError(f"kind must be one of {CHANGE_KINDS}, got {kind!r}")
        c = self.counts[kind]
        if label is None:
            return np.asarray(c.sum(axis=1))
        if label not in (1, -1, 1.0, -1.0):
            raise ValueError(f"label must be +1, -1 or None, got {label!r}")
        return np.asarray(c[:, self.y == label].sum(axis=1))

    def first_times(self, kind: str) -> NDArray[np.float64]:
        """First time *of the grid* :attr:`t` by which a change of ``kind`` happened on each point.

        ``inf`` where none; the exact event times are :func:`first_event_times`.
        """
        if kind not in CHANGE_KINDS:
            raise ValueError(f"kind must be one of {CHANGE_KINDS}, got {kind!r}")
        c = self.counts[kind]
        have = c[-1] > 0
        out = np.full(c.shape[1], np.inf)
        out[have] = self.t[np.argmax(c[:, have] > 0, axis=0)]
        return out

    def per_point(self, kind: str) -> NDArray[np.int64]:
        """Final count of ``kind`` on every point, shape (n,)."""
        if kind not in CHANGE_KINDS:
            raise ValueError(f"kind must be one of {CHANGE_KINDS}, got {kind!r}")
        return np.asarray(self.counts[kind][-1])


def pattern_changes(traj: Trajectory, times: ArrayLike | None = None) -> PatternChanges:
    r"""Count deactivations, reactivations and activations per point up to each time.

    Parameters
    ----------
    traj : Trajectory
        A run recorded with its events (``record_events=True``; a run recorded without
        them has no events and counts zero everywhere); every neuron's events count.
    times : array_like, optional
        Increasing times at which to give the cumulative counts (default ``traj.t``).

    Returns
    -------
    PatternChanges

    Examples
    --------
    >>> import reluflow as rf
    >>> data = rf.TwoPointData(0.3, 0.7)
    >>> traj = rf.gradient_flow(rf.init_network(20, 2, 1e-6, seed=0), data, 1e3)
    >>> pc = pattern_changes(traj)
    >>> int(pc.total("reactivation")[-1]) > 0    # negative neurons come back to x+ (Phase III)
    True
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    grid = traj.t if times is None else v.finite_array("times", times, 1)
    if grid.size == 0 or np.any(np.diff(grid) <= 0):
        raise ValueError("times must be a non-empty strictly increasing array")
    ev = traj.events
    labels = classify_events(ev)
    n = traj.data.n
    counts: dict[str, NDArray[np.int64]] = {}
    for kind in CHANGE_KINDS:
        sel = labels == kind
        t_ev, i_ev = ev["t"][sel], ev["index"][sel].astype(np.int64)
        if i_ev.size and (i_ev.min() < 0 or i_ev.max() >= n):
            raise ValueError(f"events refer to data points outside [0, {n - 1}]")
        # an event at time t counts from the first grid time >= t on
        slot = np.searchsorted(grid, t_ev, side="left")
        per_slot = np.zeros((grid.size + 1, n), dtype=np.int64)
        np.add.at(per_slot, (slot, i_ev), 1)
        counts[kind] = np.cumsum(per_slot, axis=0)[:-1]
    return PatternChanges(t=np.asarray(grid, dtype=np.float64), counts=counts,
                          y=np.asarray(traj.data.y))


def first_event_times(traj: Trajectory, kind: str) -> NDArray[np.float64]:
    r"""Exact time of the first change of ``kind`` on each data point (``inf`` if none).

    Read off the event times of the run (not rounded to its recording grid, unlike
    :meth:`PatternChanges.first_times`).

    Parameters
    ----------
    traj : Trajectory
        A run recorded with its events.
    kind : {"deactivation", "reactivation", "activation"}
        The kind of change (:func:`classify_events`).

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    >>> import reluflow as rf
    >>> traj = rf.gradient_flow(rf.init_network(20, 2, 1e-6, seed=0), rf.TwoPointData(0.3, 0.7),
    ...                         60.0, times=np.linspace(0, 60, 7))
    >>> exact = first_event_times(traj, "reactivation")
    >>> grid = pattern_changes(traj).first_times("reactivation")
    >>> bool(exact[0] <= grid[0] < exact[0] + 10.0)        # the grid time is the next sample
    True
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if kind not in CHANGE_KINDS:
        raise ValueError(f"kind must be one of {CHANGE_KINDS}, got {kind!r}")
    ev = traj.events
    sel = classify_events(ev) == kind
    idx = ev["index"][sel].astype(np.int64)
    n = traj.data.n
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"events refer to data points outside [0, {n - 1}]")
    out = np.full(n, np.inf)
    np.minimum.at(out, idx, ev["t"][sel].astype(np.float64))
    return out


def longest_hold(traj: Trajectory) -> tuple[int, int, float, float] | None:
    r"""The longest stretch over which one neuron is held on the boundary of one point.

    Held means pattern 0 (:math:`b_k^\top x_i = 0`, Filippov sliding) at consecutive
    recorded times.

    Returns
    -------
    tuple or None
        ``(neuron, point, t_start, t_end)`` with ``neuron`` the index into the full network
        (``traj.neurons``) and the first and last recorded times of the stretch; ``None`` if
        no recorded neuron is ever held.

    Examples
    --------
    >>> import reluflow as rf
    >>> traj = rf.gradient_flow(rf.init_network(20, 2, 1e-6, seed=0), rf.TwoPointData(0.3, 0.7),
    ...                         60.0, times=np.linspace(0, 60, 121))
    >>> k, i, t0, t1 = longest_hold(traj)
    >>> bool(np.all(traj.pattern[(traj.t >= t0) & (traj.t <= t1), k, i] == 0))
    True
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    held = (traj.pattern == 0).reshape(traj.t.size, -1)
    if not np.any(held):
        return None
    pad = np.zeros((1, held.shape[1]), dtype=np.int8)
    edges = np.diff(np.concatenate([pad, held.astype(np.int8), pad]), axis=0)
    best = (-1, 0, 0, 0)  # (length, column, start, stop)
    for col in np.flatnonzero(held.any(axis=0)).tolist():
        starts = np.flatnonzero(edges[:, col] == 1)
        stops = np.flatnonzero(edges[:, col] == -1)
        j = int(np.argmax(stops - starts))
        if stops[j] - starts[j] > best[0]:
            best = (int(stops[j] - starts[j]), int(col), int(starts[j]), int(stops[j]))
    _, col, a, b = best
    k, i = divmod(col, traj.data.n)
    return int(traj.neurons[k]), int(i), float(traj.t[a]), float(traj.t[b - 1])
