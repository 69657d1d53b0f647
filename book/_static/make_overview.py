"""Draw the book's overview figure: one run, all four phases, every named behaviour marked.

Writes ``book/_static/overview.png`` (or the path given), which ``book/intro.md`` shows.
The book build runs it before reading any page (a ``builder-inited`` hook in
``reluflow._sphinxext``), so the PNG is always regenerated from the current code and is
not versioned.  Usage::

    .venv/bin/python book/_static/make_overview.py [OUT.png]

The run: :math:`\\Delta = 0.3`, :math:`p = 0.7`, :math:`\\kappa = 10^{-6}`, 100 neurons,
seed 0, exact gradient flow to :math:`t = 10^{30}`, recorded densely (linear grid) over
the first three phases and on a log grid after.  The arrows sit at the times
:func:`reluflow.analysis.phases.detect_phases` computes (:func:`reluflow.viz.plots.overview_annotations`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "overview.png"

DELTA, P, KAPPA, M, SEED = 0.3, 0.7, 1e-6, 100, 0
T_MAX = 1e30


def build_overview() -> tuple[Any, Any, Any, Any]:
    """Run the flow and draw the figure: returns ``(traj, data, report, fig)``."""
    import reluflow as rf
    from reluflow import phases, plots, theory

    data = rf.TwoPointData(DELTA, P)
    params = rf.init_network(M, 2, KAPPA, seed=SEED)
    horizon = 2.0 * theory.plateau_escape_time(data, KAPPA, "leading") + 20.0
    times = np.concatenate([[0.0], np.linspace(horizon / 800, horizon, 800),
                            np.geomspace(horizon * 1.01, T_MAX, 300)])
    traj = rf.gradient_flow(params, data, T_MAX, times=times)
    traj.info.setdefault("kappa", KAPPA)
    report = phases.detect_phases(traj, data)
    fig = plots.annotated_overview(traj, data, report, seed=SEED)
    return traj, data, report, fig


def make_overview(out: str | Path = DEFAULT_OUT) -> dict[str, float]:
    """Write the PNG to ``out``; return the annotated times (behaviour -> t)."""
    from reluflow.viz import plots

    path = Path(out)
    _, _, report, fig = build_overview()
    marks = plots.overview_annotations(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110, facecolor="white")
    tmp.replace(path)  # never leave a half-written PNG behind
    return marks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(DEFAULT_OUT), help="output PNG path")
    args = parser.parse_args(argv)
    marks = make_overview(args.out)
    for key, t in marks.items():
        print(f"{key:15s} t = {t:.6g}" if math.isfinite(t) else key)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
