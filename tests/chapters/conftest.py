"""Fixtures for the book tests: a strict FAST build of the book, served on localhost."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is on sys.path (pytest's default rootdir-relative import mode): share booktools.
from booktools import NotebookRun, book_notebooks, build_book, run_many, stage_executed_book

#: Set to an existing build's ``html`` folder to test it instead of building one.
BOOK_HTML_ENV = "RELUFLOW_BOOK_HTML"


@pytest.fixture(scope="session")
def fast_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NotebookRun]:
    """Every ``book/*.ipynb`` run once through papermill with ``FAST=True`` (stem -> run).

    Shared by the notebook tests (which assert on the glued values) and the browser test
    (which renders these executed notebooks), so each notebook executes once per session.
    """
    jobs = {p.stem: (p, {"FAST": True}) for p in book_notebooks()}
    return run_many(jobs, tmp_path_factory.mktemp("papermill_fast"))


@pytest.fixture(scope="session")
def built_book_html(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The HTML folder of a built book.

    Uses ``$RELUFLOW_BOOK_HTML`` when set.  Otherwise it stages the book's sources with
    the FAST papermill runs of :func:`fast_runs` in place of the notebooks and runs the
    strict build (``-W -n --keep-going --all``, execution off) into a temporary folder, so
    the test never reads or writes the full build in ``_build/``.  ``make book`` is what
    exercises execution inside the build.
    """
    given = os.environ.get(BOOK_HTML_ENV)
    if given:
        html = Path(given).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"{BOOK_HTML_ENV}={given!r} has no index.html")
        return html
    # looked up lazily: with RELUFLOW_BOOK_HTML no papermill run is needed
    runs: dict[str, NotebookRun] = request.getfixturevalue("fast_runs")
    failed = sorted(name for name, run in runs.items() if not run.ok)
    if failed:
        pytest.fail(f"cannot build the book: papermill failed for {failed} "
                    "(see tests/test_notebooks.py)", pytrace=False)
    work = tmp_path_factory.mktemp("book")
    stage_executed_book(runs, work / "src")
    proc = build_book(work / "out", fast=True, source=work / "src")
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr).splitlines()
        pytest.fail("book build (FAST) failed:\n" + "\n".join(log[-80:]), pytrace=False)
    return work / "out" / "_build" / "html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def book_server(built_book_html: Path) -> Iterator[str]:
    """Serve the built book on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(built_book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
