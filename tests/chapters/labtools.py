"""A chapter run in JupyterLab (with jupyterlab-myst) in headless Chromium, and what it shows.

:func:`lab_server` starts JupyterLab with the repository's configuration
(``lab/jupyter_lab_config.py``, what ``make lab`` uses) on a temporary folder and a free
port; :func:`run_all` opens one notebook there, clicks *Run > Run All Cells*, waits until
the kernel has run every cell, saves the notebook and returns a :class:`LabRun`: the
rendered text of every Markdown cell, the evaluated ``{eval}`` expressions (from the
saved cell metadata), the error boxes MyST drew, the requests that left the machine and the
time Run All took.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from booktools import BIN, ROOT, source

LAB_CONFIG = ROOT / "lab" / "jupyter_lab_config.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

#: What a reader must never see in a rendered Markdown cell: a role or directive shown as
#: text, or a box MyST draws for something it cannot render.
RAW_MYST = re.compile(r"\{(?:glue|eval|cite|numref|doc|prf|py|exercise|solution|figure|"
                      r"admonition)(?::[\w-]+)?\}|^\s*(?:```|:::)|^:(?:name|label|class|alt):\s",
                      re.MULTILINE)
ERROR_BOXES = re.compile(r"Unknown Directive|Unknown Role|Invalid (?:directive|role)|"
                         r"^UNRESOLVED .*$", re.IGNORECASE | re.MULTILINE)
#: ``{eval}`expr``` in a Markdown source.
EVAL = re.compile(r"\{eval\}`([^`]+)`")


def lab_missing() -> str | None:
    """Why the JupyterLab test cannot run here (``None`` when it can)."""
    for module in ("jupyterlab", "jupyterlab_myst", "playwright"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (the dev and lab extras; `make venv`)"
    if not (BIN / "jupyter-lab").is_file():
        return f"no jupyter-lab in {BIN}"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} not found (apt-get install chromium; .ci/run does it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def lab_server(root: Path, *, fast: bool = True, timeout: float = 120.0) -> Iterator[str]:
    """JupyterLab serving ``root`` on 127.0.0.1; yields the base URL with its token.

    Jupyter's configuration, runtime and data folders are temporary (inside ``root``'s
    parent), so the user's own settings play no part; the kernels run in FAST mode
    (``RELUFLOW_FAST=1``) unless ``fast`` is false.  The server and its kernels are
    stopped on exit.
    """
    home = root.parent / f".{root.name}-jupyter"
    env = {k: val for k, val in os.environ.items() if k != "RELUFLOW_FAST"}
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "rt"),
               JUPYTER_DATA_DIR=str(home / "data"), RELUFLOW_FAST="1" if fast else "0")
    port, token = _free_port(), secrets.token_hex(16)
    log = (home / "server.log")
    home.mkdir(parents=True, exist_ok=True)
    cmd = [str(BIN / "jupyter-lab"), f"--config={LAB_CONFIG}", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + log.read_text()[-3000:]) from None
                time.sleep(0.5)
        yield f"{base}?token={token}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class LabRun:
    """What one Run All of a notebook in JupyterLab showed."""

    name: str
    markdown: list[str]
    notebook: dict[str, Any]
    seconds: float
    opened_modified: bool = False
    external: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def evaluated(self) -> dict[str, dict[str, Any]]:
        """``{eval}`` expression -> its saved result (``status``, ``data``), every cell."""
        out: dict[str, dict[str, Any]] = {}
        for cell in self.notebook["cells"]:
            for item in cell.get("metadata", {}).get("user_expressions", []):
                out[item["expression"]] = item.get("result", {})
        return out

    def expressions(self) -> set[str]:
        """Every ``{eval}`` expression of the notebook's Markdown cells."""
        return {e for c in self.notebook["cells"] if c["cell_type"] == "markdown"
                for e in EVAL.findall(source(c))}

    def errors(self) -> list[str]:
        """Error outputs of code cells: ``ename: evalue``."""
        return [f"{o.get('ename')}: {o.get('evalue')}" for c in self.notebook["cells"]
                if c["cell_type"] == "code" for o in c.get("outputs", [])
                if o.get("output_type") == "error"]


def _url_with(base: str, path: str) -> str:
    head, _, query = base.partition("?")
    return f"{head}{path}?{query}&reset"


#: Run All has finished: the kernel is idle, no cell is queued or running ("[*]"), and a
#: cell ran (every cell, or up to the one that raised: Run All stops there).
_DONE = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return indicator !== null && indicator.dataset.status === 'idle'
    && !prompts.some(p => p.innerText.includes('*'))
    && prompts.some(p => /\\[\\d+\\]/.test(p.innerText));
}"""


#: The text of each rendered Markdown cell (jupyterlab-myst renders into ``div.myst``, plain
#: JupyterLab into ``.jp-RenderedMarkdown``), with a directive left as a fenced code block
#: written as its fence, and each reference or citation MyST could not resolve (drawn with
#: a warning icon, in its warning colour) written as ``UNRESOLVED <text>``.
_MARKDOWN_TEXT = """els => els.map(cell => {
  const out = cell.querySelector('.myst') || cell.querySelector('.jp-RenderedMarkdown');
  if (out === null) return '';
  const fences = [...out.querySelectorAll('code[class*="language-{"]')]
    .map(c => '```' + c.className + '\\n').join('');
  const unresolved = [...out.querySelectorAll('.text-yellow-600')]
    .map(c => 'UNRESOLVED ' + c.textContent.trim() + '\\n').join('');
  return fences + unresolved + out.textContent;
})"""


def run_all(browser: Any, base: str, path: str, *, screenshot: Path | None = None,
            before: Path | None = None, timeout_s: float = 600.0,
            viewport: dict[str, int] | None = None) -> LabRun:
    """Open ``path`` (relative to the server's root), Run All, save; what it showed.

    ``before`` and ``screenshot``: full-page PNGs of the notebook as opened and after the
    run.  Requests to any host but 127.0.0.1 are recorded and refused.
    """
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 1000})
    external: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:", "about:")) or host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            external.append(url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(_url_with(base, f"/lab/tree/{path}"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)
    page.wait_for_timeout(3000)  # the kernel's language_info arrives: a change would show
    modified = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count() > 0
    if before is not None:
        page.screenshot(path=str(before), full_page=True)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    start = time.monotonic()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_function(_DONE, timeout=timeout_s * 1000, polling=250)
    seconds = time.monotonic() - start
    page.wait_for_timeout(1500)  # the last Markdown cells render their values
    markdown = page.eval_on_selector_all(".jp-MarkdownCell", _MARKDOWN_TEXT)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    page.close()
    context.close()
    return LabRun(path, markdown, {}, seconds, modified, external, console)


def read_saved(run: LabRun, root: Path) -> LabRun:
    """``run`` with the notebook as JupyterLab saved it (outputs, evaluated expressions)."""
    run.notebook = json.loads((root / run.name).read_text(encoding="utf-8"))
    return run


def problems(run: LabRun) -> list[str]:
    """Everything a reader of the run should not meet (empty: it reads well)."""
    out = [f"{run.name}: request left the machine: {u}" for u in run.external]
    if run.opened_modified:
        out.append(f"{run.name}: opens as modified (kernelspec or language_info differ from "
                   "the kernel's)")
    out += [f"{run.name}: cell error {e}" for e in run.errors()]
    cells = sum(c["cell_type"] == "markdown" for c in run.notebook["cells"])
    shown = sum(bool(text.strip()) for text in run.markdown)
    if shown != cells:
        out.append(f"{run.name}: {shown} of {cells} Markdown cells rendered text")
    for i, text in enumerate(run.markdown):
        for pattern, what in ((RAW_MYST, "raw MyST"), (ERROR_BOXES, "an error box")):
            found = pattern.search(text)
            if found:
                out.append(f"{run.name}: Markdown cell {i} shows {what}: {found.group(0)!r}")
    evaluated = run.evaluated()
    for expr in sorted(run.expressions()):
        result = evaluated.get(expr)
        if result is None or result.get("status") != "ok" or not result.get("data"):
            out.append(f"{run.name}: {{eval}}`{expr}` was not evaluated: {result}")
    return out
