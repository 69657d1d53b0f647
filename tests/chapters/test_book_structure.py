"""Static checks of the book's sources: TOC <-> notebooks, the chapter conventions, config.

Fast (no execution).  The conventions a chapter notebook must follow are the README's
section "The book"; each test below names the one it checks.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from booktools import (
    BOOK,
    GLUE_FORMS,
    HIDDEN_TAGS,
    ROOT,
    assigned_names,
    book_notebooks,
    cell_tags,
    checked_names,
    code_cells,
    code_lines,
    glue_references,
    read_notebook,
    source,
    toc_entries,
    visible_code_cells,
)

NOTEBOOKS = book_notebooks()
NB_IDS = [p.stem for p in NOTEBOOKS]

#: Chapters with a phase proposition: intuition diagram, exercises, Explore section.
PHASE_CHAPTERS = ("phase1_condensation", "phase2_saddle_to_plateau", "phase3_plateau_escape",
                  "phase4_convergence")
#: Chapters that keep the live explorer in a section titled "Explore".
EXPLORE_CHAPTERS = ("setting", *PHASE_CHAPTERS)

#: Most non-blank code lines a reader may see in one chapter, and in its whole source.
MAX_VISIBLE_LINES = 80
MAX_CODE_LINES = 150

#: Calls that are plumbing: they belong in hidden cells, never in code a reader sees.
PLUMBING = re.compile(r"\b(glue\w*|CheckList|check_parameters|show_markdown|plots\.)\b|"
                      r"\bbook\.(animation|glue)")

#: Internal references no reader page may carry (files outside the repository, working
#: names of the developers' brief).
INTERNAL = re.compile(r"notes\.md|project notes|THEORY\.md|s_notes|\bnotes\b estimate|"
                      r"/work/|/tmp/|cProfile", re.IGNORECASE)


def _installed_kernel() -> dict[str, str]:
    """The kernelspec of the ``python3`` kernel ``make venv`` installs (ipykernel's)."""
    from ipykernel.kernelspec import get_kernel_dict

    spec = get_kernel_dict()
    return {"display_name": spec["display_name"], "language": spec["language"],
            "name": "python3"}


#: The kernelspec every chapter is saved with: the one `make venv` installs
#: (`ipykernel install --sys-prefix --name python3`), so JupyterLab opens it unmodified.
LAB_KERNEL = _installed_kernel()

def _kernel_language() -> dict[str, Any]:
    """The ``language_info`` the kernel reports (JupyterLab writes it into the notebook)."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


#: The language information every chapter is saved with, the kernel's: JupyterLab writes
#: it into the notebook when the kernel starts, so a notebook without it opens modified.
#: The Python version is compared up to the minor release (the Makefile's python3.11).
LAB_LANGUAGE = _kernel_language()

#: Citations: a Markdown link to a bibliography key (JupyterLab shows the text, the book's
#: extension makes it a citation); a {cite} role would show as an unresolved key in Lab.
CITATION = re.compile(r"\[([^\]]+)\]\(#([\w:-]+)\)")


def _markdown(nb: dict) -> str:
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


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
    assert dict(nb.metadata.get("kernelspec", {})) == LAB_KERNEL, (
        f"{path.name}: kernelspec must be {LAB_KERNEL} (the kernel `make` installs, so "
        "JupyterLab opens the notebook unmodified)"
    )
    language = dict(nb.metadata.get("language_info", {}))
    version = str(language.pop("version", ""))
    expected = {k: v for k, v in LAB_LANGUAGE.items() if k != "version"}
    assert language == expected and version.split(".")[:2] == LAB_LANGUAGE["version"].split(
        ".")[:2], (f"{path.name}: language_info must be the kernel's, {LAB_LANGUAGE} (JupyterLab "
                   "writes it when the kernel starts, so a notebook without it opens modified)")
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
    assert "parameters" in cell_tags(first), f"{path.name}: first code cell must be tagged"
    assert sum("parameters" in cell_tags(c) for c in cells) == 1
    assert not cell_tags(first) & {"remove-input", "remove-cell", "hide-input", "hide-cell"}, (
        f"{path.name}: the parameters cell stays visible (it says what papermill can change)")
    names = assigned_names(source(first))
    assert "SEED" in names, f"{path.name}: parameters cell must assign SEED"
    fast = names.get("FAST")
    assert isinstance(fast, ast.Call) and ast.unparse(fast.func).endswith("fast_default"), (
        f"{path.name}: parameters cell must assign FAST = fast_default() "
        "(reads RELUFLOW_FAST, so the book build and papermill -p FAST True both work)"
    )
    assert len(names) >= 3, f"{path.name}: the chapter's physical parameters belong here too"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_next_cell_validates_every_parameter(path: Path) -> None:
    cells = code_cells(read_notebook(path))
    params = set(assigned_names(source(cells[0])))
    checked = checked_names(source(cells[1]))
    unchecked = sorted(params - checked)
    assert not unchecked, (
        f"{path.name}: the cell after the parameters must validate {unchecked} "
        "(reluflow.book.check_parameters(dict(NAME=NAME, ...)))")
    assert cell_tags(cells[1]) & {"remove-cell", "remove-input", "hide-input"}, (
        f"{path.name}: the validation cell is plumbing: hide or remove it")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_code_budget(path: Path) -> None:
    nb = read_notebook(path)
    visible = sum(code_lines(c) for c in visible_code_cells(nb))
    total = sum(code_lines(c) for c in code_cells(nb))
    assert visible <= MAX_VISIBLE_LINES, f"{path.name}: {visible} visible code lines"
    assert total <= MAX_CODE_LINES, f"{path.name}: {total} code lines in the source"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_visible_code_is_what_a_reader_would_type(path: Path) -> None:
    for cell in visible_code_cells(read_notebook(path)):
        long = [line for line in source(cell).splitlines() if len(line) > 79]
        assert not long, f"{path.name}: visible lines wider than the code box: {long}"
    for cell in visible_code_cells(read_notebook(path))[1:]:  # after the parameters
        found = PLUMBING.search(source(cell))
        assert found is None, (
            f"{path.name}: visible cell calls {found.group(0)!r} (plumbing: glue, checks, "
            f"figures, validation belong in remove-cell/remove-input cells):\n{source(cell)}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_glue_references_are_glued(path: Path) -> None:
    nb = read_notebook(path)
    code = "\n".join(source(c) for c in code_cells(nb))
    prefixes = re.findall(r"""f["'](\w+)\{""", code)  # keys built by f-strings
    for key in sorted(glue_references(nb)):
        # glued literally, by an f-string key with that prefix, or by CheckList.finish
        assert re.search(rf"""["']{re.escape(key)}["']""", code) or key in (
            "checks_passed", "checks_count") or any(key.startswith(p) for p in prefixes), (
            f"{path.name}: text quotes {{eval}}`{key}` but no code cell glues {key!r}")


def _bib_keys() -> set[str]:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    text = "\n".join((ROOT / bib).read_text(encoding="utf-8") for bib in cfg["bibtex_bibfiles"])
    return set(re.findall(r"^@\w+\{([^,\s]+),", text, re.MULTILINE))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_text_reads_the_same_in_jupyterlab(path: Path) -> None:
    """Convention 5: only forms JupyterLab (jupyterlab-myst) renders as the book does."""
    text = _markdown(read_notebook(path))
    glue = GLUE_FORMS.search(text)
    assert glue is None, (
        f"{path.name}: {glue.group(0)} shows the key, not the value, in JupyterLab; quote a "
        "glued value with {eval}`key` (a figure: a figure directive whose first paragraph "
        "is {eval}`fig_key`)")
    cite = re.search(r"\{cite(?::\w+)?\}`[^`]*`", text)
    assert cite is None, (
        f"{path.name}: {cite.group(0)} is an unresolved key in JupyterLab; cite with a link "
        "to the key, [Wang & Ma (2023)](#wang2023multiphase) or [(Wang & Ma, 2023)](#...)")
    keys = _bib_keys()
    for shown, key in CITATION.findall(text):
        if key in keys:
            assert re.search(r"\b(19|20)\d\d\b", shown), (
                f"{path.name}: the citation [{shown}](#{key}) names the year")


def _labels(nb: dict) -> set[str]:
    return set(re.findall(r"^:(?:label|name): ([\w-]+)$", _markdown(nb), re.MULTILINE))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_references_to_other_chapters_are_links(path: Path) -> None:
    """JupyterLab resolves {prf:ref}/{numref}/{ref} only within the notebook: a reference to
    another chapter's label is a link, ``[Plateau escape](#prop-plateau-escape)``, which
    the book resolves across pages and Lab shows as its text."""
    nb = read_notebook(path)
    own = _labels(nb)
    elsewhere = set().union(*(_labels(read_notebook(p)) for p in NOTEBOOKS if p != path))
    for role, label in re.findall(r"\{(prf:ref|numref|ref)\}`(?:[^`<]*<)?([\w-]+)>?`",
                                  _markdown(nb)):
        assert label in own, (
            f"{path.name}: {{{role}}}`{label}` points to "
            f"{'another chapter' if label in elsewhere else 'no label'}; JupyterLab cannot "
            f"resolve it: write [its title](#{label})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_hidden_cells_are_collapsed_in_jupyterlab(path: Path) -> None:
    """Cells the book hides (plumbing) open collapsed in JupyterLab (``source_hidden``)."""
    for i, cell in enumerate(code_cells(read_notebook(path))):
        if cell_tags(cell) & HIDDEN_TAGS:
            assert cell.get("metadata", {}).get("jupyter", {}).get("source_hidden") is True, (
                f"{path.name}: code cell {i} is hidden in the book ({sorted(cell_tags(cell))}) "
                "but not collapsed in JupyterLab: metadata jupyter.source_hidden = true")


#: A glued figure: a ``figure`` without an image, its first paragraph the figure's {eval}.
_FIGURE = re.compile(r"^```\{figure\}\n:name: ([\w-]+)\n\n\{eval\}`(\w+)`\n\n(.+?)\n```",
                     re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_figures_are_numbered_captioned_and_referenced(path: Path) -> None:
    nb = read_notebook(path)
    text = _markdown(nb)
    code = "\n".join(source(c) for c in code_cells(nb))
    glued = set(re.findall(r"glue_figure\(\s*\"(\w+)\"", code))
    figures = {key: (name, caption) for name, key, caption in _FIGURE.findall(text)}
    assert glued, f"{path.name}: a chapter shows at least one figure"
    assert glued == set(figures), (
        f"{path.name}: glued figures {sorted(glued)} and figure directives "
        f"{sorted(figures)} must match (each with :name: and a caption)")
    for key, (name, caption) in figures.items():
        assert len(caption.split()) >= 8, f"{path.name}: figure {key} needs a real caption"
        assert f"{{numref}}`{name}`" in text, f"{path.name}: the text never cites {name}"
    assert "plt.show" not in code and "display(fig" not in code, (
        f"{path.name}: figures are glued book figures, not bare outputs")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_checks_are_one_admonition_with_reasons(path: Path) -> None:
    nb = read_notebook(path)
    cells = [c for c in code_cells(nb) if "CheckList()" in source(c)]
    assert len(cells) == 1, f"{path.name}: one checks cell (CheckList ... finish())"
    cell = cells[0]
    assert "remove-input" in cell_tags(cell), f"{path.name}: the checks cell is remove-input"
    assert ".finish()" in source(cell)
    for node in ast.walk(ast.parse(source(cell))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("close", "at_most", "at_least", "that")):
            assert any(k.arg == "why" for k in node.keywords), (
                f"{path.name}: every check states why its tolerance is what it is: "
                f"{ast.unparse(node)[:120]}")
    assert re.search(r"^## Checks$", _markdown(nb), re.MULTILINE), f"{path.name}: ## Checks"


@pytest.mark.parametrize("stem", PHASE_CHAPTERS)
def test_phase_chapters_teach(stem: str) -> None:
    nb = read_notebook(BOOK / f"{stem}.ipynb")
    text = _markdown(nb)
    code = "\n".join(source(c) for c in code_cells(nb))
    assert "intuition_diagram(" in code, f"{stem}: an intuition diagram"
    first_prop = text.index("{prf:proposition}")
    diagram = re.search(r"^\{eval\}`fig_\w+_plane`$", text, re.MULTILINE)
    assert diagram and diagram.start() < first_prop, f"{stem}: the picture comes first"
    exercises = re.findall(r"^```\{exercise\}\n:label: ([\w-]+)", text, re.MULTILINE)
    assert len(exercises) >= 2, f"{stem}: at least two exercises"
    cells = nb["cells"]
    for label in exercises:
        start = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                     and f"{{solution-start}} {label}\n:class: dropdown" in source(c))
        end = next(i for i, c in enumerate(cells) if i > start and "{solution-end}" in source(c))
        assert any(c["cell_type"] == "code" for c in cells[start:end]), (
            f"{stem}: the solution of {label} is computed by code the notebook runs")


@pytest.mark.parametrize("stem", EXPLORE_CHAPTERS)
def test_explore_section_holds_the_live_explorer(stem: str) -> None:
    nb = read_notebook(BOOK / f"{stem}.ipynb")
    cells = nb["cells"]
    head = next(i for i, c in enumerate(cells)
                if c["cell_type"] == "markdown" and re.search(r"^## Explore$", source(c), re.M))
    nxt = next((i for i, c in enumerate(cells) if i > head and c["cell_type"] == "markdown"
                and re.search(r"^## ", source(c), re.M)), len(cells))
    assert any("book.live_explorer(globals()" in source(c) for c in cells[head:nxt]), (
        f"{stem}: the section Explore holds the live explorer, started at the chapter's "
        "parameters: book.live_explorer(globals(), ...)")


@pytest.mark.parametrize("path", [*NOTEBOOKS, *sorted(BOOK.glob("*.md"))],
                         ids=[*NB_IDS, *(p.name for p in sorted(BOOK.glob("*.md")))])
def test_no_internal_references(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = INTERNAL.search(text)
    assert found is None, f"{path.name}: internal reference {found.group(0)!r}"


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
    assert sphinx_cfg["nb_render_markdown_format"] == "myst"  # tables and maths in outputs
    assert not sphinx_cfg["mathjax_path"].startswith("http")  # served by the book itself
    assert cfg["sphinx"]["local_extensions"] == {"reluflow_sphinx": "book/_ext"}
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]
    for bib in cfg["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"jupyter-book build \. --all .*-W -n --keep-going", makefile)


def test_repository_url_is_the_one_setting_of_the_buttons() -> None:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    html = cfg.get("html", {})
    for key in ("use_repository_button", "use_issues_button"):
        assert key not in html, f"{key} follows repository.url; do not set it in html"
    assert "url" in cfg["repository"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "repository.url" in readme, "the README documents the setting"


@pytest.mark.parametrize("path", sorted((ROOT / "lib" / "reluflow").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT / "lib")))
def test_docstrings_cite_no_file_outside_the_repository(path: Path) -> None:
    """The API page shows the docstrings: no developers' notes, no absolute paths."""
    rel = path.relative_to(ROOT / "lib" / "reluflow").as_posix()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef):
            doc = ast.get_docstring(node) or ""
            for found in re.finditer(r"notes\.md|THEORY\.md|project notes|/work/", doc):
                raise AssertionError(f"{rel}: docstring cites {found.group(0)}")


#: The chapters with a static explorer (reluflow.viz.explorers) and the explorer each shows.
STATIC_EXPLORERS = {"setting": "setting", "phase1_condensation": "phase1",
                    "phase2_saddle_to_plateau": "phase2", "phase3_plateau_escape": "phase3",
                    "phase4_convergence": "phase4"}


@pytest.mark.parametrize("stem", sorted(STATIC_EXPLORERS))
def test_chapter_shows_its_static_explorer(stem: str) -> None:
    nb = read_notebook(BOOK / f"{stem}.ipynb")
    cells = nb["cells"]
    at = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
          and re.search(rf'chapter_explorer\(\s*"{STATIC_EXPLORERS[stem]}"', source(c))]
    assert len(at) == 1, f"{stem}: one chapter_explorer(\"{STATIC_EXPLORERS[stem]}\", ...) cell"
    explore = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
               and source(c).lstrip().startswith("## Explore")]
    assert explore and explore[0] < at[0], f"{stem}: the static explorer belongs in Explore"
    live = [i for i, c in enumerate(cells) if "live_explorer(" in source(c)]
    assert live and at[0] < live[0], f"{stem}: the live explorer stays, after the static one"
