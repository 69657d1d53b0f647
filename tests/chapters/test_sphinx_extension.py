"""Unit tests for the book's Sphinx extension (book/_ext/reluflow_sphinx.py)."""

from __future__ import annotations

import sys

from booktools import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))

from reluflow_sphinx import canonical_name


def test_canonical_name_maps_reexports() -> None:
    assert canonical_name("reluflow.Dataset") == "reluflow.engine.data.Dataset"
    assert (canonical_name("reluflow.Trajectory.save")
            == "reluflow.engine.trajectory.Trajectory.save")
    assert canonical_name("reluflow.engine.data.Dataset") is None  # already canonical
    assert canonical_name("numpy.ndarray") is None  # outside the project
    assert canonical_name("reluflow.no_such_name") is None
