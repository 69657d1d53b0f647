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


def _mini_book(root: Path, markdown: str) -> None:
    """A one-notebook book using the extension, executed by the build (as ``make book``)."""
    import nbformat

    root.mkdir(parents=True)
    (root / "_config.yml").write_text(
        "title: t\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: force\n"
        "sphinx:\n  local_extensions:\n"
        f"    reluflow_sphinx: {ROOT / 'book' / '_ext'}\n"
        "  config:\n    nb_execution_raise_on_error: true\n"
        "    nb_render_markdown_format: myst\n", encoding="utf-8")
    (root / "_toc.yml").write_text("format: jb-book\nroot: ch\n", encoding="utf-8")
    code = ("from reluflow import book, plots\n"
            "book.glue_number('kappa', 1e-6, '.0e')\n"
            "book.glue_number('rate', 0.43215, '.4f')\n"
            "book.glue_text('words', 'the **positive** group at $x_+$')\n"
            "fig, ax = plots.panel()\n"
            "ax.set_title('(a) a panel')\n"
            "book.glue_figure('fig_line', plots.Panels([fig], alt='A panel.'))")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code, metadata={"tags": ["remove-cell"]}),
                nbformat.v4.new_markdown_cell(markdown)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "ch.ipynb")


@pytest.mark.slow
def test_eval_pastes_glued_values_and_figures(tmp_path: Path) -> None:
    import re

    from booktools import build_book

    _mini_book(tmp_path / "ok", "# C\n\nkappa {eval}`kappa`, rate {eval}`rate`, {eval}`words`."
               "\n\n```{figure}\n:name: fig-line\n\n{eval}`fig_line`\n\nA caption with "
               "{eval}`rate`.\n```\n\nSee {numref}`fig-line`.\n")
    proc = build_book(tmp_path / "ok_out", fast=True, source=tmp_path / "ok")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = (tmp_path / "ok_out" / "_build" / "html" / "ch.html").read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[^\"]+", "", page)
    assert 'kappa <span class="math notranslate nohighlight">\\(10^{-6}\\)</span>' in text
    assert 'rate <span class="output text_plain">0.4321</span>,' in text  # plain: inline
    assert "the <strong>positive</strong> group" in text
    figure = text[text.index('<figure class="align-default" id="fig-line">'):]
    assert figure.index('class="rf-panels"') < figure.index("Fig. 1")
    assert 'A caption with <span class="output text_plain">0.4321</span>.' in figure
    assert '<span class="std std-numref">Fig. 1</span>' in text
    assert "{eval}" not in text
    # a figure with neither an image nor a glued figure fails the strict build
    _mini_book(tmp_path / "bad", "# C\n\n```{figure}\n:name: fig-x\n\nNo value here.\n```\n")
    proc = build_book(tmp_path / "bad_out", fast=True, source=tmp_path / "bad")
    assert proc.returncode != 0
    assert "must start with the paragraph {eval}`key`" in proc.stdout + proc.stderr


def test_citation_kind_follows_the_link_text() -> None:
    from reluflow_sphinx import citation_kind

    assert citation_kind("(Wang & Ma, 2023)") == "p"
    assert citation_kind(" (Filippov, 1988)") == "p"
    assert citation_kind("Wang & Ma (2023)") == "t"


def _citing_book(root: Path, text: str) -> None:
    """A two-page book (no notebook) with the extension, one bibliography entry and a
    proposition (``prop-x``) on the second page."""
    root.mkdir(parents=True)
    (root / "_config.yml").write_text(
        "title: t\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
        "bibtex_bibfiles:\n  - refs.bib\nsphinx:\n  extra_extensions:\n    - sphinx_proof\n"
        f"  local_extensions:\n    reluflow_sphinx: {ROOT / 'book' / '_ext'}\n"
        "  config:\n    bibtex_reference_style: author_year\n", encoding="utf-8")
    (root / "_toc.yml").write_text("format: jb-book\nroot: ch\nchapters:\n- file: other\n",
                                   encoding="utf-8")
    (root / "other.md").write_text("# Other\n\n```{prf:proposition} The X\n:label: prop-x\n\n"
                                   "A statement.\n```\n", encoding="utf-8")
    (root / "refs.bib").write_text(
        "@article{doe2020,\n  author = {Doe, Jane and Roe, Rick},\n  title = {A title},\n"
        "  journal = {J},\n  year = {2020}\n}\n", encoding="utf-8")
    (root / "ch.md").write_text(f"# C\n\n{text}\n\n```{{bibliography}}\n```\n",
                                encoding="utf-8")


@pytest.mark.slow
def test_links_to_keys_and_propositions_are_citations_and_references(tmp_path: Path) -> None:
    import re

    from booktools import build_book

    _citing_book(tmp_path / "ok", "In a sentence [Doe & Roe (2020)](#doe2020) wrote; "
                 "in parentheses [(Doe & Roe, 2020)](#doe2020). By [The X](#prop-x).")
    proc = build_book(tmp_path / "ok_out", fast=True, source=tmp_path / "ok")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = (tmp_path / "ok_out" / "_build" / "html" / "ch.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", page)
    assert "In a sentence Doe and Roe [2020] wrote" in text  # {cite:t}
    assert "in parentheses [Doe and Roe, 2020]." in text  # {cite:p}
    assert 'href="#doe2020"' not in page
    assert page.count('role="doc-backlink"') == 2  # the bibliography lists both citations
    # a link to another page's proposition is sphinx-proof's reference, with the link text
    assert re.search(r'<a class="reference internal" href="other.html#prop-x">The X</a>', page)
    # a link to a key that is neither a label nor in the bibliography fails the strict build
    _citing_book(tmp_path / "bad", "See [Doe (2021)](#doe2021).")
    proc = build_book(tmp_path / "bad_out", fast=True, source=tmp_path / "bad")
    assert proc.returncode != 0
    assert "target not found: 'doe2021'" in proc.stdout + proc.stderr
