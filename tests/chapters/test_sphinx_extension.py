"""Unit tests for the book's Sphinx extension (book/_ext/reluflow_sphinx.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from booktools import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))

from reluflow_sphinx import (
    MATHJAX_SKIP,
    canonical_name,
    copy_mathjax,
    mathjax_source,
    page_shows_explorer,
    repository_buttons,
)


def test_canonical_name_maps_reexports() -> None:
    assert canonical_name("reluflow.Dataset") == "reluflow.engine.data.Dataset"
    assert (canonical_name("reluflow.Trajectory.save")
            == "reluflow.engine.trajectory.Trajectory.save")
    assert canonical_name("reluflow.engine.data.Dataset") is None  # already canonical
    assert canonical_name("numpy.ndarray") is None  # outside the project
    assert canonical_name("reluflow.no_such_name") is None


def test_buttons_follow_the_repository_url() -> None:
    off = repository_buttons({"repository_url": "", "launch_buttons": {"binderhub_url": "b"}})
    assert off["use_repository_button"] is False and off["use_issues_button"] is False
    assert off["launch_buttons"] == {} and "repository_url" not in off
    on = repository_buttons({"repository_url": "https://example.org/r",
                             "launch_buttons": {"binderhub_url": "b"}})
    assert on["use_repository_button"] is True and on["use_issues_button"] is True
    assert on["launch_buttons"] == {"binderhub_url": "b"}
    assert repository_buttons({})["use_repository_button"] is False


def test_mathjax_is_copied_for_a_relative_path(tmp_path: Path) -> None:
    assert (mathjax_source() / "tex-mml-chtml.js").is_file()
    assert copy_mathjax(tmp_path, "https://cdn.example.org/mathjax/tex-mml-chtml.js") is None
    target = copy_mathjax(tmp_path, "mathjax/tex-mml-chtml.js")
    assert target == tmp_path / "mathjax"
    assert (target / "tex-mml-chtml.js").is_file()
    assert any((target / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert not any((target / name).exists() for name in MATHJAX_SKIP)
    with pytest.raises(RuntimeError, match="mathjax_path must be"):
        copy_mathjax(tmp_path, "mathjax/tex-svg.js")


def test_only_pages_with_an_explorer_load_vega() -> None:
    from reluflow.viz.explorers import Explorer

    html = Explorer("phase2", {"params": []}, "note").html()
    assert page_shows_explorer(f"<p>text</p><div class=\"cell_output\">{html}</div>")
    # the API page quotes the element in Explorer.html's docstring
    assert not page_shows_explorer('<code class="docutils">&lt;div class="reluflow-explorer"'
                                   '&gt;</code>')
    assert not page_shows_explorer("<p>no explorer here</p>")
