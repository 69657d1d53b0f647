"""Checks every engine run must pass, whatever the data and start."""

from __future__ import annotations

import numpy as np

from reluflow import Params, Trajectory


def check_run(tr: Trajectory, params: Params, rtol: float = 1e-9) -> None:
    """Loss non-increasing, invariant conserved, recorded patterns consistent with b.x.

    * :math:`L` never increases (to the rounding of the loss itself);
    * :math:`c_k = a_k^2 - \\lVert b_k\\rVert^2` differs from its initial value by at most
      1e-9 of :math:`\\max(a_k^2 + \\lVert b_k\\rVert^2)` over the initial and current state
      (conserved to rounding: the engine restores it after every step);
    * pattern +1 means :math:`b_k^\\top x_i > 0`, -1 means :math:`\\le 0`, 0 (held) means
      :math:`= 0`, each to ``rtol`` times :math:`\\lVert z_k\\rVert\\lVert x_i\\rVert`,
      :math:`\\lVert z_k\\rVert^2 = a_k^2 + \\lVert b_k\\rVert^2` (the engine controls each
      neuron's error relative to that size, so a neuron with :math:`|a_k|` much larger than
      :math:`\\lVert b_k\\rVert` has :math:`b_k` only to ``rtol`` of :math:`|a_k|`).
    """
    loss = tr.loss
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(tr.f))
    assert np.all(np.diff(loss) <= 1e-12 * np.abs(loss[:-1]) + 1e-300), "loss increased"
    a0, B0 = params.a[tr.neurons], params.B[tr.neurons]
    c0 = a0**2 - np.einsum("kd,kd->k", B0, B0)
    s0 = a0**2 + np.einsum("kd,kd->k", B0, B0)
    c = tr.a**2 - np.einsum("tkd,tkd->tk", tr.B, tr.B)
    s = tr.a**2 + np.einsum("tkd,tkd->tk", tr.B, tr.B)
    size = np.maximum(np.maximum(s, s0), 1e-300)
    assert np.all(np.abs(c - c0) <= 1e-9 * size), "invariant drifted"
    X = tr.data.X
    pre = np.einsum("tkd,nd->tkn", tr.B, X)
    size = np.sqrt(tr.a**2 + np.einsum("tkd,tkd->tk", tr.B, tr.B))
    tol = rtol * size[:, :, None] * np.linalg.norm(X, axis=1)
    p = tr.pattern
    assert not np.any((p == 1) & (pre < -tol)), "pattern +1 where b.x < 0"
    assert not np.any((p == -1) & (pre > tol)), "pattern -1 where b.x > 0"
    assert not np.any((p == 0) & (np.abs(pre) > tol)), "held off its boundary"
    ev = tr.events
    assert np.all(np.diff(ev["t"]) >= 0)
    assert np.all((ev["t"] >= 0) & (ev["t"] <= tr.t[-1] * (1 + 1e-12) + 1e-300))
