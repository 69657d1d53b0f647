r"""Activation groups: the linear vector fields shared by neurons with one activation state.

Work in the data span: :math:`\tilde x_i = Q^\top x_i \in \mathbb R^D` with :math:`Q` an
orthonormal basis of :math:`\operatorname{span}\{x_i\}`, and the neuron state
:math:`z_k = (a_k, \beta_k)`, :math:`\beta_k = Q^\top b_k`.  A neuron's *state* on point
:math:`i` is :math:`s_i = +1` (active, :math:`\beta^\top\tilde x_i > 0`), :math:`-1`
(inactive) or :math:`0` (held on the boundary :math:`\beta^\top \tilde x_i = 0`, sliding).
With residual weights :math:`r_i(t)` shared by all neurons, a neuron in state :math:`s`
follows the *linear* system

.. math::

    \dot a = \beta^\top v_s, \qquad \dot\beta = a\, v_s, \qquad
    v_s = P_H \sum_{i: s_i = +1} r_i \tilde x_i ,

where :math:`H = \{i: s_i = 0\}` and :math:`P_H` projects out
:math:`\operatorname{span}\{\tilde x_j : j\in H\}`.  For :math:`H=\{j\}` this is the
Filippov sliding field: the convex combination
:math:`a(v_A + \lambda_j r_j \tilde x_j)` of the fields on the two sides that is tangent
to the boundary, with

.. math::

    \lambda_H = -\operatorname{diag}(r_H)^{-1} (\tilde X_H \tilde X_H^\top)^{-1}
    \tilde X_H v_A .

Sliding is attracting (both one-sided fields push into the boundary) iff every
:math:`\lambda_j \in (0, 1)` and :math:`a\, r_j < 0`; since :math:`\operatorname{sign} r_j
= y_j`, a held group has the fixed output sign :math:`-y_j`.  All of this depends on the
neuron only through its state, so one propagator :math:`\Phi_s(t)` per state serves all
its neurons, and the field matrix
:math:`G_s = \begin{pmatrix} 0 & v_s^\top \\ v_s & 0 \end{pmatrix}` lies in the Lie algebra
of :math:`O(1, D)`: the propagator conserves :math:`a^2 - \lVert\beta\rVert^2`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
State = tuple[int, ...]


@dataclass(frozen=True)
class GroupTable:
    """Stacked field data for a list of states (the groups integrated in one step)."""

    states: list[State]
    active: Array  # (g, n) 1.0 where s_i = +1
    proj: Array  # (g, D, D) projector P_H
    lam_mat: list[Array | None]  # per group: (|H|, n) map r -> -(XX^T)^-1 X_H v_A (times mask)
    held: list[NDArray[np.int64]]  # per group: indices H


def held_sign(state: State, y: NDArray[np.float64]) -> int:
    """Output sign required to hold on the boundaries of ``state`` (0 if nothing is held)."""
    held = [i for i, s in enumerate(state) if s == 0]
    if not held:
        return 0
    signs = {int(-y[i]) for i in held}
    return signs.pop() if len(signs) == 1 else 2  # 2: no sign can hold these together


def is_dead(state: State) -> bool:
    """A neuron active on no point and held on none has zero field forever."""
    return all(s == -1 for s in state)


def build_table(states: Iterable[State], Xr: Array) -> GroupTable:
    """Precompute masks, projectors and sliding-coefficient maps for ``states``."""
    states = list(states)
    n, D = Xr.shape
    g = len(states)
    active = np.zeros((g, n))
    proj = np.tile(np.eye(D), (g, 1, 1))
    lam_mat: list[Array | None] = []
    held: list[NDArray[np.int64]] = []
    for k, st in enumerate(states):
        s = np.asarray(st)
        active[k] = s == 1
        H = np.flatnonzero(s == 0)
        held.append(H)
        if H.size:
            XH = Xr[H]  # (h, D)
            gram_inv = np.linalg.pinv(XH @ XH.T)
            proj[k] = np.eye(D) - XH.T @ gram_inv @ XH
            # mu = -(X_H X_H^T)^{-1} X_H sum_i A_i r_i x_i  =  M @ r,   M (h, n)
            lam_mat.append(-(gram_inv @ XH @ Xr.T) * active[k][None, :])
        else:
            lam_mat.append(None)
    return GroupTable(states, active, proj, lam_mat, held)


def sliding_lambda(table: GroupTable, k: int, r: Array) -> Array:
    r"""Filippov coefficients :math:`\lambda_H` of group ``k`` for residuals ``r`` (..., n)."""
    M = table.lam_mat[k]
    if M is None:
        return np.zeros((*r.shape[:-1], 0))
    mu = r @ M.T  # (..., h)
    return mu / r[..., table.held[k]]


def lorentz_project(Phi: Array, iterations: int = 3) -> Array:
    r"""Pull propagators back onto :math:`O(1, D)`: :math:`\Phi^\top J \Phi = J`.

    Newton-type iteration :math:`\Phi \leftarrow \Phi\,(I - \tfrac12 J(\Phi^\top J\Phi - J))`,
    quadratically convergent near the group; removes the integrator's drift of the
    invariant :math:`a^2 - \lVert\beta\rVert^2`.
    """
    D1 = Phi.shape[-1]
    Jd = np.ones(D1)
    Jd[1:] = -1.0
    J = np.diag(Jd)
    eye = np.eye(D1)
    for _ in range(iterations):
        E = np.swapaxes(Phi, -1, -2) @ (Jd[:, None] * Phi)
        Phi = Phi @ (eye - 0.5 * (J @ (E - J)))
    return Phi
