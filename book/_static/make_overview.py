"""Draw the book's overview figure: one run, all four phases, every named behaviour marked.

Two forms of the same run:

* :func:`make_book_overview` writes ``book/_static/overview.html``, the introduction's
  figure (:func:`reluflow.viz.plots.book_overview`: three panels with the behaviours
  numbered, embedded as a :class:`reluflow.viz.plots.Panels` HTML snippet that the book's
  ``panels-figure`` directive shows).  The book build runs it before reading any page (a
  ``builder-inited`` hook in ``book/_ext/reluflow_sphinx.py``), so the figure is always
  drawn by the current code and is not versioned;
* :func:`make_overview` writes one PNG with the behaviours named in boxes
  (:func:`reluflow.viz.plots.annotated_overview`), the README's picture.  Usage::

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
BOOK_OUT = HERE / "overview.html"

DELTA, P, KAPPA, M, SEED = 0.3, 0.7, 1e-6, 100, 0
T_MAX = 1e30


def _run() -> tuple[Any, Any, Any]:
    """The run of both figures: ``(traj, data, report)``."""
    import reluflow as rf
    from reluflow import phases, theory

    data = rf.TwoPointData(DELTA, P)
    params = rf.init_network(M, 2, KAPPA, seed=SEED)
    horizon = 2.0 * theory.plateau_escape_time(data, KAPPA, "leading") + 20.0
    times = np.concatenate([[0.0], np.linspace(horizon / 800, horizon, 800),
                            np.geomspace(horizon * 1.01, T_MAX, 300)])
    traj = rf.gradient_flow(params, data, T_MAX, times=times)
    traj.info.setdefault("kappa", KAPPA)
    return traj, data, phases.detect_phases(traj, data)


def build_overview() -> tuple[Any, Any, Any, Any]:
    """Run the flow and draw the README figure: returns ``(traj, data, report, fig)``."""
    from reluflow import plots

    traj, data, report = _run()
    return traj, data, report, plots.annotated_overview(traj, data, report, seed=SEED)


def make_book_overview(out: str | Path = BOOK_OUT) -> dict[str, float]:
    """Write the introduction's figure (HTML snippet) to ``out``; return the marked times."""
    from reluflow import plots

    path = Path(out)
    traj, data, report = _run()
    figure = plots.book_overview(traj, data, report, seed=SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(figure._repr_html_(), encoding="utf-8")
    tmp.replace(path)  # never leave a half-written figure behind
    return plots.overview_annotations(report)


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
