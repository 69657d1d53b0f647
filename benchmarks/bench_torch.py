r"""Gradient descent on the two-layer ReLU network written with PyTorch autograd.

This is the loop most readers would write, timed for ``bench_flow.py``:

.. math:: \theta_{k+1} = \theta_k - \eta\,\nabla L(\theta_k), \qquad
          L(\theta) = \sum_i w_i\,\ell\big(y_i f(x_i;\theta)\big), \qquad
          f(x;\theta) = \sum_k a_k\,\sigma(b_k^\top x),

with :math:`\ell(z) = e^{-z}` and the gradient taken by ``torch.autograd`` (CPU, float64;
autograd uses :math:`\sigma'(0) = 0`, as the flow does away from kinks).

It runs in its own environment (``benchmarks/.venv-torch``, torch 2.13.0 CPU; torch is not a
dependency of reluflow) and does not import reluflow.  Input: a ``.npz`` file with the initial
``a (m,)``, ``B (m, d)``, the data ``X (n, d)``, ``y (n,)``, ``w (n,)`` and the times to
record.  Output: one JSON object on stdout with the wall time and ``f`` at the recorded times.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch


def run(path: str, lr: float, t_max: float, threads: int = 1) -> dict[str, object]:
    r"""Run ``ceil(t_max/lr)`` autograd steps from the state in ``path``; return the timings.

    Parameters
    ----------
    path : str
        ``.npz`` file with ``a``, ``B``, ``X``, ``y``, ``w`` and ``times``.
    lr : float
        Step :math:`\eta > 0`; step ``k`` is time :math:`k\eta`.
    t_max : float
        Horizon, > 0.
    threads : int
        ``torch.set_num_threads`` (>= 1).  One by default: on a shared machine a second
        intra-op thread spin-waits for a busy core and makes every small step slower.

    Returns
    -------
    dict
        ``wall`` and ``cpu`` (seconds of the loop alone), ``steps``, ``t_rec``/``f_rec``
        (the recorded times at or before ``t_max`` and ``f(x_i)`` there), ``torch``,
        ``threads``.
    """
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr}")
    if not (math.isfinite(t_max) and t_max > 0):
        raise ValueError(f"t_max must be finite and > 0, got {t_max}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    z = np.load(path)
    dt = torch.float64
    a = torch.tensor(z["a"], dtype=dt, requires_grad=True)
    B = torch.tensor(z["B"], dtype=dt, requires_grad=True)
    X = torch.tensor(z["X"], dtype=dt)
    y = torch.tensor(z["y"], dtype=dt)
    w = torch.tensor(z["w"], dtype=dt)
    times = np.asarray(z["times"], dtype=float)
    times = times[times <= t_max]
    n_steps = math.ceil(t_max / lr - 1e-9)
    rec_steps = np.minimum(np.rint(times / lr).astype(np.int64), n_steps).tolist()
    f_rec: list[list[float]] = []
    j = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    for step in range(n_steps + 1):
        f = torch.relu(X @ B.T) @ a  # (n,)
        while j < len(rec_steps) and rec_steps[j] == step:
            f_rec.append(f.detach().tolist())
            j += 1
        if step == n_steps:
            break
        loss = (w * torch.exp(-y * f)).sum()
        ga, gB = torch.autograd.grad(loss, (a, B))
        with torch.no_grad():
            a -= lr * ga
            B -= lr * gB
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"wall": wall, "cpu": cpu, "steps": n_steps, "t_rec": times.tolist(), "f_rec": f_rec,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``bench_torch.py STATE.npz --lr LR --t-max T [--threads N]``; JSON out."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("state", help=".npz with a, B, X, y, w, times")
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--t-max", type=float, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        out = run(args.state, args.lr, args.t_max, args.threads)
    except ValueError as exc:
        print(f"bench_torch: {exc}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
