"""Shared helpers for the book tests: the TOC, the chapter notebooks, glued values, builds."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
BIN = Path(sys.executable).parent

#: Key that reluflow.book.glue_number puts in a glue output's metadata.
GLUE_METADATA_KEY = "reluflow"

#: `{eval}`key``: the text quotes a glued value (figures included: a ``figure`` directive
#: without an image whose first paragraph is the ``{eval}`` of the glued figure); and the
#: forms the chapters must not use (JupyterLab cannot render them): `{glue}`key``,
#: `{glue:md}`key`` ... and ```{glue:figure} key``.
EVAL_ROLE = re.compile(r"\{eval\}`([^`]+)`")
GLUE_FORMS = re.compile(r"\{glue(?::[a-z]+)?\}")


def toc_entries() -> list[str]:
    """Every ``file`` of ``_toc.yml`` (root first), as written (no extension)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    out = [str(toc["root"])]

    def walk(items: list[dict[str, Any]] | None) -> None:
        for item in items or []:
            if "file" in item:
                out.append(str(item["file"]))
            for key in ("chapters", "sections"):
                walk(item.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return out


def book_notebooks() -> list[Path]:
    """Every ``book/*.ipynb`` (the chapters), sorted by name."""
    return sorted(BOOK.glob("*.ipynb"))


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook as a plain JSON dict."""
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def assigned_names(code: str) -> dict[str, ast.expr]:
    """Top-level ``NAME = value`` assignments of a cell: name -> value expression."""
    out: dict[str, ast.expr] = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.value is not None:
                out[node.target.id] = node.value
    return out


def checked_names(code: str) -> set[str]:
    """Parameter names a cell validates.

    The names given to ``check_parameters(dict(NAME=...))`` or
    ``check_parameters({"NAME": ...})`` (``reluflow.book.check_parameters``), and the first
    (string) argument of the single-parameter ``check_*("NAME", ...)`` helpers.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        fname = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        first = node.args[0]
        if fname == "check_parameters":
            if isinstance(first, ast.Call) and getattr(first.func, "id", "") == "dict":
                names.update(k.arg for k in first.keywords if k.arg)
            elif isinstance(first, ast.Dict):
                names.update(k.value for k in first.keys
                             if isinstance(k, ast.Constant) and isinstance(k.value, str))
        elif fname.startswith("check_") and isinstance(first, ast.Constant):
            if isinstance(first.value, str):
                names.add(first.value)
    return names


#: Tags that keep a code cell's source off the page (removed or folded).
HIDDEN_TAGS = frozenset({"remove-input", "remove-cell", "hide-input", "hide-cell"})


def cell_tags(cell: dict[str, Any]) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def code_lines(cell: dict[str, Any]) -> int:
    """Non-blank source lines of a code cell."""
    return sum(1 for line in source(cell).splitlines() if line.strip())


def visible_code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """Code cells whose source the rendered page shows (no hiding tag)."""
    return [c for c in code_cells(nb) if not cell_tags(c) & HIDDEN_TAGS]


def glue_references(nb: dict[str, Any]) -> set[str]:
    """Glue keys the notebook's markdown cells quote with ``{eval}`` (figures included)."""
    keys: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            keys.update(EVAL_ROLE.findall(source(cell)))
    return keys


def glued_outputs(nb: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every glued output of an executed notebook: key -> output (``scrapbook`` metadata).

    ``myst_nb.glue`` writes a ``display_data`` output whose metadata has
    ``scrapbook = {"name": key, "mime_prefix": ...}``; its data keys carry the prefix
    ``application/papermill.record/`` when glued with ``display=False``.
    """
    out: dict[str, dict[str, Any]] = {}
    for cell in code_cells(nb):
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {})
            if "scrapbook" in meta:
                out[meta["scrapbook"]["name"]] = output
    return out


def glued_numbers(nb: dict[str, Any]) -> dict[str, float]:
    """Exact values of the numbers glued with :func:`reluflow.book.glue_number`."""
    return {
        key: float(out["metadata"][GLUE_METADATA_KEY]["value"])
        for key, out in glued_outputs(nb).items()
        if GLUE_METADATA_KEY in out.get("metadata", {})
    }


@dataclass(frozen=True)
class NotebookRun:
    """One papermill run: the parameters, the executed notebook and how it ended."""

    params: dict[str, Any]
    output: Path
    returncode: int
    log: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def notebook(self) -> dict[str, Any]:
        return read_notebook(self.output)

    def error(self) -> tuple[int, str, str] | None:
        """``(code-cell index, ename, evalue)`` of the first error output, if any."""
        if not self.output.is_file():
            return None
        for i, cell in enumerate(code_cells(self.notebook())):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    return i, str(out.get("ename")), str(out.get("evalue"))
        return None


#: What jupyter_client says when a kernel dies before it answers its first request.
KERNEL_START_FAILED = "Kernel died before replying to kernel_info"

#: Per-cell timeout of a papermill run, seconds: a guard against a hung kernel only.
CELL_TIMEOUT = 600

#: Concurrent papermill runs (each is one kernel, mostly one core).
WORKERS = max(1, min(2, os.cpu_count() or 1))


def run_papermill(path: Path, output: Path, params: dict[str, Any]) -> NotebookRun:
    """Execute ``path`` with papermill (kernel ``python3``, cwd ``book/``) into ``output``."""
    param_file = output.with_suffix(".params.yaml")
    # PyYAML writes and reads back floats exactly (1e-08 as 1.0e-08, which it parses)
    param_file.write_text(yaml.safe_dump(params), encoding="utf-8")
    assert yaml.safe_load(param_file.read_text(encoding="utf-8")) == params
    cmd = [
        str(BIN / "papermill"), str(path), str(output), "-k", "python3", "--cwd", str(BOOK),
        "--no-progress-bar", "--execution-timeout", str(CELL_TIMEOUT), "-f", str(param_file),
    ]
    env = dict(os.environ)
    env.pop("RELUFLOW_FAST", None)  # the parameters decide, not the caller's shell
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode and KERNEL_START_FAILED in proc.stdout + proc.stderr:
        # the kernel never started (no cell ran): a busy machine, not the notebook; once more
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    return NotebookRun(params, output, proc.returncode, proc.stdout + proc.stderr)


def run_many(
    jobs: dict[str, tuple[Path, dict[str, Any]]], out_dir: Path
) -> dict[str, NotebookRun]:
    """Run ``{name: (notebook, params)}`` with :data:`WORKERS` papermill processes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {
            name: pool.submit(run_papermill, path, out_dir / f"{name}.ipynb", params)
            for name, (path, params) in jobs.items()
        }
        return {name: fut.result() for name, fut in futures.items()}


def stage_executed_book(runs: dict[str, NotebookRun], src: Path) -> None:
    """Copy the book's sources to ``src`` with each notebook replaced by its executed run.

    The papermill-injected parameters cell is dropped (the page then reads as in a real
    build) and ``_config.yml`` is set to ``execute_notebooks: "off"``: the strict build of
    ``src`` renders these outputs instead of executing every notebook a second time.
    """
    src.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    for name in ("_toc.yml", *cfg.get("bibtex_bibfiles", [])):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(BOOK, src / "book", ignore=shutil.ignore_patterns("*.ipynb", "_build"))
    cfg["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    for stem, run in runs.items():
        nb = run.notebook()
        nb["cells"] = [
            c for c in nb["cells"] if "injected-parameters" not in c["metadata"].get("tags", [])
        ]
        (src / "book" / f"{stem}.ipynb").write_text(json.dumps(nb, indent=1), encoding="utf-8")


def build_book(
    output_dir: Path, *, fast: bool, source: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run the strict book build (``-W -n --keep-going --all``) of ``source``.

    The HTML lands in ``output_dir/_build/html``.  ``fast`` sets ``RELUFLOW_FAST``.
    """
    env = dict(os.environ)
    env.pop("RELUFLOW_FAST", None)
    if fast:
        env["RELUFLOW_FAST"] = "1"
    cmd = [
        str(BIN / "jupyter-book"), "build", str(source), "--path-output", str(output_dir),
        "--all", "--builder", "html", "-W", "-n", "--keep-going",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
