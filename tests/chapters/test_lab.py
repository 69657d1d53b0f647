"""The chapters in JupyterLab: run as a reader would, the MyST text reads well.

Two chapters (the setting, with the book's overview, and Phase II, with propositions,
figures and exercises) are copied to a temporary folder and opened in JupyterLab with
jupyterlab-myst, configured as ``make lab`` configures it (``lab/jupyter_lab_config.py``),
in headless Chromium; *Run > Run All Cells* runs them in FAST mode.  The test fails when

* a notebook opens as modified (its kernelspec or language information differ from the
  kernel's: the structure test's :data:`~test_book_structure.LAB_KERNEL` and
  :data:`~test_book_structure.LAB_LANGUAGE`; the copies carry this interpreter's Python
  version, the one field a Python of another patch release would change);
* a rendered Markdown cell shows a role or directive as text (``{eval}``, ``{glue}``,
  ``{cite``, a directive fence), a box MyST draws for what it cannot render ("Unknown
  Directive") or a reference or citation it could not resolve (warning icon), or a
  Markdown cell rendered nothing;
* an ``{eval}`` expression was not evaluated to a value (read from the cell metadata
  JupyterLab saves);
* a cell raised, or a request left the machine.

Screenshots after the run go to ``_build/screenshots/lab-<chapter>.png``.  Without
JupyterLab, jupyterlab-myst, playwright or Chromium the test is skipped, except under
``CI``, where it fails (``make test`` installs everything it needs: the dev extra).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest
from booktools import BOOK, ROOT
from labtools import CHROMIUM, CHROMIUM_ARGS, lab_missing, lab_server, problems, read_saved, run_all

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: The chapters run in JupyterLab (two: the test stays a small share of `make test`).
LAB_CHAPTERS = ("setting", "phase2_saddle_to_plateau")
SCREENSHOTS = ROOT / "_build" / "screenshots"


def test_chapters_read_well_in_jupyterlab(tmp_path: Path) -> None:
    missing = lab_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the JupyterLab test cannot run: {missing}",
                        pytrace=False)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    root = tmp_path / "repo"
    (root / "book").mkdir(parents=True)
    for stem in LAB_CHAPTERS:
        nb = json.loads((BOOK / f"{stem}.ipynb").read_text(encoding="utf-8"))
        nb["metadata"]["language_info"]["version"] = platform.python_version()
        (root / "book" / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    found: list[str] = []
    with lab_server(root) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            for stem in LAB_CHAPTERS:
                run = run_all(browser, base, f"book/{stem}.ipynb",
                              screenshot=SCREENSHOTS / f"lab-{stem}.png")
                run = read_saved(run, root)
                assert run.expressions(), f"{stem}: no {{eval}} in the text: nothing tested"
                found += problems(run)
        finally:
            browser.close()
    assert not found, "\n".join(found)
