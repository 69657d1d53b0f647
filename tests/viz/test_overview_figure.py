"""The overview figures of ``book/_static/make_overview.py``.

Runs the script into a temporary folder and checks that it writes the README's PNG and
the introduction's Panels snippet (the one the book's ``panels-figure`` directive shows),
and that every arrow of the README figure sits at the time
:func:`reluflow.analysis.phases.detect_phases` computes for the script's run (recomputed
here independently of the figure code).
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from matplotlib.text import Annotation

from reluflow.analysis import phases as ph
from reluflow.viz import plots

SCRIPT = Path(__file__).resolve().parents[2] / "book" / "_static" / "make_overview.py"

pytestmark = pytest.mark.slow


def _namespace() -> dict[str, Any]:
    return runpy.run_path(str(SCRIPT))


def test_script_writes_the_png(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "overview.png"
    res = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000
    assert not list(out.parent.glob("*.tmp.png"))
    for key in plots.ANNOTATION_LABELS:  # every behaviour was located and printed
        assert key in res.stdout


def test_arrows_sit_at_the_detected_phase_times() -> None:
    traj, data, report, fig = _namespace()["build_overview"]()
    fresh = ph.detect_phases(traj, data)
    expected = {
        "condensation": fresh.t_condensed,
        "saddle_escape": fresh.t_escape,
        "reactivation": fresh.t_reactivation,
        "deactivation": fresh.t_plateau,
        "plateau_escape": fresh.t_plateau_escape,
        "complexity": fresh.t_phase4,
    }
    assert all(t is not None for t in expected.values()), expected
    assert fresh.t_plateau is not None and fresh.t_plateau_escape is not None
    expected["plateau"] = 0.5 * (fresh.t_plateau + fresh.t_plateau_escape)
    arrows = {a.get_gid().split(":", 1)[1]: a for a in fig.findobj(Annotation)
              if (a.get_gid() or "").startswith("overview:")}
    assert set(arrows) == set(expected)
    for key, t in expected.items():
        assert arrows[key].xy[0] == pytest.approx(t, rel=1e-12), key
    assert report.times() == fresh.times()


def test_book_overview_is_a_panels_snippet(tmp_path: Path) -> None:
    out = tmp_path / "overview.html"
    marks = _namespace()["make_book_overview"](out)
    html = out.read_text(encoding="utf-8")
    assert html.startswith('<div class="rf-panels" style="display:flex')
    assert html.count('class="rf-panel-img"') == 3
    assert 'data-min-font-pt="11"' in html
    assert set(marks) == set(plots.ANNOTATION_LABELS)
    assert not list(tmp_path.glob("*.tmp"))
