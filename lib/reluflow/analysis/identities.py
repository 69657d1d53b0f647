r"""The exact identities of the flow, measured on recorded runs (the setting chapter).

For the (Filippov) gradient flow of the two-layer ReLU network, every neuron keeps
:math:`a_k^2 - \lVert b_k\rVert^2`, the loss never increases, the component of
:math:`b_k` orthogonal to the data span never moves, a neuron inactive on every point
never moves, and a sliding neuron stays exactly on its boundary.  :func:`identity_errors`
measures how far a run is from each statement (zero for the exact flow, up to rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reluflow.analysis.geometry import span_basis
from reluflow.engine.trajectory import Trajectory

__all__ = ["IdentityErrors", "identity_errors"]


@dataclass(frozen=True)
class IdentityErrors:
    r"""How far a run is from the exact identities (see :func:`identity_errors`).

    Attributes
    ----------
    balance : float
        :attr:`reluflow.Trajectory.invariant_drift`, the largest relative change of
        :math:`a_k^2 - \lVert b_k\rVert^2`.
    loss_increase : float
        Largest relative increase of the loss between two recorded times (negative when
        it always decreases).
    orthogonal : float
        Largest change of a coordinate of :math:`b_k` orthogonal to the data span, relative
        to the largest initial coordinate (0 when :math:`d` equals the span's dimension).
        The coordinates are the axes along which every data point is exactly 0 when there
        are such axes (as for :class:`~reluflow.TwoPointData`: the flow leaves them
        untouched), else the projection on the orthogonal complement of the span (then
        rounding of order :math:`10^{-16}\lVert b_k\rVert` enters).
    dead_moved : float
        Largest change of the parameters of the neurons inactive on every point at
        :math:`t = 0`.
    n_dead : int
        Number of such neurons.
    held_distance : float
        Largest :math:`|b_k^\top x_i|/\lVert b_k\rVert` over the recorded samples where
        neuron :math:`k` is held on :math:`b^\top x_i = 0`.
    n_held : int
        Number of those (neuron, point, time) samples.
    """

    balance: float
    loss_increase: float
    orthogonal: float
    dead_moved: float
    n_dead: int
    held_distance: float
    n_held: int


def identity_errors(traj: Trajectory) -> IdentityErrors:
    """Measure the identities on a run recorded from :math:`t = 0` (all neurons)."""
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if traj.t.size < 2 or traj.t[0] != 0.0:
        raise ValueError("traj must start at t = 0 and hold at least two recorded times")
    X = traj.data.X
    B = traj.B
    axes = np.all(X == 0.0, axis=0)
    if axes.any():
        perp = B[:, :, axes]
    else:
        Q = span_basis(X)
        perp = B - np.einsum("tkd,de,fe->tkf", B, Q, Q)
    scale = float(np.max(np.abs(B[0]))) or 1.0
    dead = np.all(traj.pattern[0] == -1, axis=1)
    moved = 0.0
    if dead.any():
        moved = float(max(np.max(np.abs(traj.a[:, dead] - traj.a[0, dead])),
                          np.max(np.abs(B[:, dead] - B[0, dead]))))
    pre = np.einsum("tkd,nd->tkn", B, X) / np.maximum(np.linalg.norm(B, axis=2),
                                                      1e-300)[:, :, None]
    held = traj.pattern == 0
    rel = np.diff(traj.loss) / traj.loss[:-1]
    return IdentityErrors(
        balance=float(traj.invariant_drift),
        loss_increase=float(np.max(rel)) if rel.size else -math.inf,
        orthogonal=float(np.max(np.abs(perp - perp[0]))) / scale,
        dead_moved=moved, n_dead=int(dead.sum()),
        held_distance=float(np.max(np.abs(pre[held]), initial=0.0)), n_held=int(held.sum()),
    )
