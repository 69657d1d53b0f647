r"""The numerics chapter's measurements: accuracy against cost, chattering, width and horizon.

Built on :mod:`reluflow.analysis.compare` (which runs the methods); this module summarises
its rows (fitted orders of gradient descent, the step it would need to match the engine),
follows one sliding neuron under gradient descent (:func:`chattering`), times the engine
and gradient descent over widths (:func:`width_timings`), and turns each into a Markdown
table for the chapter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reluflow.analysis.compare import (
    MethodRun,
    boundary_distance,
    convergence_order,
    sliding_neurons,
)
from reluflow.analysis.text import markdown_table, math_number
from reluflow.engine.data import TwoPointData
from reluflow.engine.descent import gradient_descent
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import Params, init_network
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "Accuracy",
    "Chattering",
    "accuracy",
    "benchmark_summary",
    "chattering",
    "chattering_sentence",
    "methods_table",
    "width_table",
    "width_timings",
]

Array = NDArray[np.float64]


def methods_table(rows: Sequence[MethodRun]) -> str:
    """Every method run of :func:`reluflow.analysis.compare.compare_methods` as a table."""
    header = ["method", "setting", "output error", "wall time (s)", "work",
              "drift of $a_k^2-\\lVert b_k\\rVert^2$"]
    return markdown_table(header, [
        [r.method, r.setting, math_number(r.error, ".2e"), math_number(r.wall_time, ".3f"),
         r.work, math_number(r.drift, ".1e")] for r in rows], "llrrrr")


@dataclass(frozen=True)
class Accuracy:
    r"""What the method runs say about accuracy and cost (see :func:`accuracy`).

    ``order`` and ``drift_order``: fitted exponents of gradient descent's output error and
    invariant drift in the learning rate; ``lr_needed``: the rate the fit says gradient
    descent needs to match the engine's second-tightest error, ``hours``: how long that
    would take at the measured cost per step (an extrapolation, not a run).
    """

    order: float
    drift_order: float
    lr_needed: float
    hours: float


def accuracy(rows: Sequence[MethodRun], t_max: float) -> Accuracy:
    """Fit gradient descent's orders and extrapolate the step it needs (see :class:`Accuracy`)."""
    eng = [r for r in rows if r.method == "engine"]
    gd = [r for r in rows if r.method == "gradient descent"]
    if len(eng) < 2 or len(gd) < 2:
        raise ValueError("rows need at least two engine and two gradient-descent runs")
    q = convergence_order([r.step for r in gd], [r.error for r in gd])
    q_drift = convergence_order([r.step for r in gd], [r.drift for r in gd])
    lr = gd[-1].step * (eng[-2].error / gd[-1].error) ** (1.0 / q)
    per_step = gd[-1].wall_time / gd[-1].work
    return Accuracy(q, q_drift, lr, t_max / lr * per_step / 3600.0)


@dataclass(frozen=True)
class Chattering:
    r"""Gradient descent on a sliding boundary (see :func:`chattering`).

    ``neuron`` and ``point``: the neuron the engine holds longest on
    :math:`b^\top x_i = 0`; ``held``: the recorded stretch of that sliding; ``window``:
    the stretch (inside it) where gradient descent is followed; ``exact_distance``:
    :math:`|b^\top x_i|/\lVert b\rVert` of the engine over the window (``exact_held``:
    held throughout); per learning rate, ``runs`` holds the times and distances of
    gradient descent, ``amplitude`` their largest absolute value and ``flips`` the
    fraction of steps at which the sign changes; ``order`` is the fitted exponent of the
    amplitude in the learning rate.
    """

    neuron: int
    point: int
    held: tuple[float, float]
    window: tuple[float, float]
    exact_t: Array
    exact_distance: Array
    exact_held: bool
    rates: tuple[float, ...]
    runs: tuple[tuple[Array, Array], ...]
    amplitude: Array
    flips: Array
    order: float


def chattering(params: Params, data: TwoPointData, reference: Trajectory,
               rates: Sequence[float]) -> Chattering | None:
    """Follow the longest-sliding neuron of ``reference`` under gradient descent.

    ``None`` when no neuron slides in the reference run (nothing to chatter).
    """
    cands = [(int(k), i, int(np.sum(reference.pattern[:, np.flatnonzero(
        reference.neurons == k)[0], i] == 0))) for i in range(data.n)
             for k in sliding_neurons(reference, i)[:1]]
    if not cands:
        return None
    k, i_pt, _ = max(cands, key=lambda c: c[2])
    col = int(np.flatnonzero(reference.neurons == k)[0])
    held_t = reference.t[reference.pattern[:, col, i_pt] == 0]
    step = float(reference.t[1] - reference.t[0])
    breaks = np.flatnonzero(np.diff(held_t) > 1.01 * step)
    t_s, t_e = float(held_t[0]), float(held_t[breaks[0]] if breaks.size else held_t[-1])
    width = min(2.0, 0.25 * (t_e - t_s))
    w0 = round(2 * (t_s + 0.5 * (t_e - t_s) - 0.5 * width)) / 2  # on the 0.5 grid
    w1 = w0 + width
    runs, amp, flips = [], [], []
    for lr in rates:
        grid = np.arange(round(w0 / lr), round(w1 / lr) + 1) * lr
        tr = gradient_descent(params, data, lr, float(grid[-1]), times=grid, neurons=[k],
                              record_events=False)
        dist = boundary_distance(tr, k, i_pt)
        runs.append((tr.t, dist))
        amp.append(float(np.max(np.abs(dist))))
        flips.append(np.sum(np.sign(dist[1:]) != np.sign(dist[:-1])) / (grid.size - 1))
    exact = gradient_flow(params, data, w1, times=np.linspace(w0, w1, 401), neurons=[k])
    return Chattering(k, i_pt, (t_s, t_e), (w0, w1), exact.t, boundary_distance(exact, k, i_pt),
                      bool(np.all(exact.pattern[:, 0, i_pt] == 0)), tuple(rates), tuple(runs),
                      np.array(amp), np.array(flips, dtype=float),
                      convergence_order(rates, amp))


def chattering_sentence(ch: Chattering | None) -> str:
    """What the chattering experiment shows, in words (Markdown)."""
    if ch is None:
        return ("No neuron slides in the reference run at these parameters, so there is no "
                "boundary to chatter on (the figure says so).")
    pt = "$x_+$" if ch.point == 0 else "$x_-$"
    return (f"The engine holds neuron {ch.neuron} on its boundary $b^\\top x = 0$, $x$ = "
            f"{pt}, from $t$ = {math_number(ch.held[0])} to {math_number(ch.held[1])} on the "
            f"recorded grid, with $|b^\\top x|/\\lVert b\\rVert$ at most "
            f"{math_number(float(np.max(np.abs(ch.exact_distance))), '.1e')} over the window "
            f"from $t$ = {math_number(ch.window[0])}. Gradient descent at $\\eta$ = "
            f"{math_number(ch.rates[-1])} changes sign at a fraction "
            f"{math_number(float(ch.flips[-1]), '.2f')} of its steps, with an amplitude of "
            f"{math_number(float(ch.amplitude[-1]), '.1e')}, proportional to the step "
            f"(fitted exponent {math_number(ch.order, '.3f')}).")


def width_timings(data: TwoPointData, widths: Sequence[int], seed: int
                  ) -> list[dict[str, float]]:
    r"""Wall times of the engine to :math:`t = 10^4` and :math:`10^{30}` from
    :math:`\kappa = 10^{-6}`, and gradient descent's cost per step at :math:`\eta = 10^{-3}`
    (timed over 1000 steps), per width; the engine records 10 neurons."""
    out = []
    for m in widths:
        params = init_network(m, 2, 1e-6, seed=seed)
        rec = np.arange(min(m, 10))
        t0 = time.perf_counter()
        tr4 = gradient_flow(params, data, 1e4, record_events=False, neurons=rec)
        w4 = time.perf_counter() - t0
        t0 = time.perf_counter()
        tr30 = gradient_flow(params, data, 1e30, record_events=False, neurons=rec)
        w30 = time.perf_counter() - t0
        t0 = time.perf_counter()
        gradient_descent(params, data, 1e-3, 1.0, times=[0.0, 1.0], record_events=False)
        per_step = (time.perf_counter() - t0) / 1000
        out.append({"m": m, "wall_1e4": w4, "steps_1e4": tr4.info["steps"], "wall_1e30": w30,
                    "steps_1e30": tr30.info["steps"], "gd_step": per_step,
                    "gd_1e4": per_step * 1e7, "loss_1e30": float(tr30.loss[-1])})
    return out


def width_table(rows: Sequence[dict[str, float]]) -> str:
    """The timings of :func:`width_timings` as a Markdown table."""
    header = ["$m$", "engine to $10^4$ (s, steps)", "engine to $10^{30}$ (s, steps)",
              "GD s/step", "GD to $10^4$ (s, scaled)", "loss at $10^{30}$"]
    return markdown_table(header, [
        [int(r["m"]), f"{r['wall_1e4']:.3f} ({int(r['steps_1e4'])})",
         f"{r['wall_1e30']:.3f} ({int(r['steps_1e30'])})", math_number(r["gd_step"], ".2e"),
         f"{r['gd_1e4']:,.0f}", math_number(r["loss_1e30"], ".2e")] for r in rows], "rrrrrr")


_SECTION = re.compile(r"^## (.+)$", re.MULTILINE)
_RULE_CELL = re.compile(r":?-+:?")


def _align(rule: str) -> str:
    """The :func:`~reluflow.analysis.text.markdown_table` letter of a rule cell."""
    left, right = rule.startswith(":"), rule.endswith(":")
    return "c" if left and right else "l" if left else "r" if right else "-"


def benchmark_summary(results_md: str) -> str:
    r"""The speed and accuracy tables of the repository's benchmark, for the book.

    From the Markdown the benchmark writes, keeps the sections "Wall time and accuracy"
    (the columns width, method, time reached, wall time and time to :math:`t = 10^4`) and
    "Ratios" (the speed-ups); profiles of the engine's internals are left to the
    benchmark's own report.  Cells the benchmark could not measure (``n/m``, empty or
    missing) read "–"; each kept column keeps its alignment.
    """
    parts = _SECTION.split(results_md)
    sections = {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    out = []
    for title, keep in (("Wall time and accuracy", (0, 1, 2, 3, 5)), ("Ratios", (0, 1, 2, 3))):
        body = next((b for name, b in sections.items() if name.startswith(title)), None)
        if body is None:
            continue
        rows = [[c.strip() for c in ln.strip().strip("|").split("|")]
                for ln in body.splitlines() if ln.strip().startswith("|")]
        if len(rows) < 2 or not all(_RULE_CELL.fullmatch(c) for c in rows[1]):
            raise ValueError(f"the benchmark's section {title!r} has no Markdown table "
                             "(a header line, then a rule line such as |---|---:|)")
        kept = [j for j in keep if j < len(rows[0])]
        align = "".join(_align(rows[1][j]) if j < len(rows[1]) else "-" for j in kept)
        table = [["–" if j >= len(r) or r[j] in ("n/m", "") else r[j] for j in kept]
                 for r in (rows[0], *rows[2:])]
        out.append(f"**{title}**\n\n" + markdown_table(table[0], table[1:], align))
    if not out:
        raise ValueError("no 'Wall time and accuracy' or 'Ratios' table in the benchmark text")
    return "\n\n".join(out)

