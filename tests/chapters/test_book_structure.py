"""Static checks of the book's sources: TOC <-> notebooks, the notebook conventions, config.

Fast (no execution).  The conventions a chapter notebook must follow:

* it is listed in ``_toc.yml`` (and every TOC entry exists);
* it is committed without outputs and uses the ``python3`` kernel;
* its first code cell is tagged ``parameters`` and assigns ``FAST = fast_default()`` and
  ``SEED``, and every parameter assigned there is validated somewhere in the notebook by a
  ``check_*("NAME", ...)`` call (``reluflow.book``);
* every glue key its text pastes is glued by one of its code cells.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml
from booktools import (
    BOOK,
    ROOT,
    assigned_names,
    book_notebooks,
    checked_names,
    code_cells,
    glue_references,
    read_notebook,
    source,
    toc_entries,
)

NOTEBOOKS = book_notebooks()
NB_IDS = [p.stem for p in NOTEBOOKS]


def test_toc_entries_exist_and_are_unique() -> None:
    entries = toc_entries()
    assert entries[0] == "book/intro"
    assert len(entries) == len(set(entries)), f"duplicate TOC entries: {entries}"
    for entry in entries:
        found = [p for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb") if p.is_file()]
        assert len(found) == 1, f"TOC entry {entry!r} must match exactly one .md or .ipynb"


def test_every_notebook_is_in_the_toc() -> None:
    entries = set(toc_entries())
    missing = [p.name for p in NOTEBOOKS if f"book/{p.stem}" not in entries]
    assert not missing, f"add these notebooks to _toc.yml: {missing}"


def test_book_pages_live_in_book_folder() -> None:
    # only_build_toc_files skips anything else, so a page elsewhere would silently vanish.
    for entry in toc_entries():
        assert entry.startswith("book/"), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_is_valid_and_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernelspec name must be 'python3'"
    )
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: code cell {i} has outputs; clear them"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution_count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_first_code_cell_is_parameters_with_fast_and_seed(path: Path) -> None:
    nb = read_notebook(path)
    cells = code_cells(nb)
    assert cells, f"{path.name} has no code cell"
    first = cells[0]
    tags = first.get("metadata", {}).get("tags", [])
    assert "parameters" in tags, f"{path.name}: first code cell must be tagged 'parameters'"
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in cells) == 1
    names = assigned_names(source(first))
    assert "SEED" in names, f"{path.name}: parameters cell must assign SEED"
    fast = names.get("FAST")
    assert isinstance(fast, ast.Call) and ast.unparse(fast.func).endswith("fast_default"), (
        f"{path.name}: parameters cell must assign FAST = fast_default() "
        "(reads RELUFLOW_FAST, so the book build and papermill -p FAST True both work)"
    )
    assert len(names) >= 3, f"{path.name}: the chapter's physical parameters belong here too"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_every_parameter_is_validated(path: Path) -> None:
    nb = read_notebook(path)
    cells = code_cells(nb)
    params = set(assigned_names(source(cells[0])))
    checked: set[str] = set()
    for cell in cells[1:]:
        checked |= checked_names(source(cell))
    unchecked = sorted(params - checked)
    assert not unchecked, (
        f"{path.name}: validate {unchecked} with reluflow.book.check_* "
        '(e.g. check_param("DELTA", DELTA, 0, math.pi / 2))'
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_glue_references_are_glued(path: Path) -> None:
    nb = read_notebook(path)
    code = "\n".join(source(c) for c in code_cells(nb))
    for key in sorted(glue_references(nb)):
        # the key is glued literally or is one CheckList.finish glues
        assert re.search(rf"""["']{re.escape(key)}["']""", code) or key in (
            "checks_passed", "checks_count"
        ), f"{path.name}: text pastes {{glue}}`{key}` but no code cell glues {key!r}"


def test_api_page_documents_every_public_module() -> None:
    api = (BOOK / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"automodule::\s+(reluflow(?:\.\w+)*)", api))
    # committed modules only: a colleague's uncommitted work in progress is not yet public
    listed = subprocess.run(
        ["git", "ls-files", "lib/reluflow/**.py"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.split()
    tracked = {
        ".".join(Path(p).relative_to("lib").with_suffix("").parts)
        for p in listed if not Path(p).stem.startswith("_")
    }
    assert "reluflow.engine.data" in tracked
    missing = sorted(tracked - documented)
    assert not missing, f"add an automodule section to book/api.md for {missing}"


def test_config_keeps_the_strict_pipeline() -> None:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["execute_notebooks"] == "force"
    sphinx_cfg = cfg["sphinx"]["config"]
    assert sphinx_cfg["nb_execution_raise_on_error"] is True
    assert sphinx_cfg["intersphinx_mapping"] == {}
    assert cfg["sphinx"]["local_extensions"] == {"reluflow_sphinx": "book/_ext"}
    for bib in cfg["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"jupyter-book build \. --all .*-W -n --keep-going", makefile)
