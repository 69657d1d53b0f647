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
from booktools import build_book

#: Set to an existing build's ``html`` folder to test it instead of building one.
BOOK_HTML_ENV = "RELUFLOW_BOOK_HTML"


@pytest.fixture(scope="session")
def built_book_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML folder of a built book.

    Uses ``$RELUFLOW_BOOK_HTML`` when set; otherwise runs the strict build
    (``-W -n --keep-going --all``) in FAST mode into a temporary folder, so the test never
    reads or writes the full build in ``_build/``.
    """
    given = os.environ.get(BOOK_HTML_ENV)
    if given:
        html = Path(given).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"{BOOK_HTML_ENV}={given!r} has no index.html")
        return html
    out = tmp_path_factory.mktemp("book")
    proc = build_book(out, fast=True)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr).splitlines()
        pytest.fail("book build (FAST) failed:\n" + "\n".join(log[-80:]), pytrace=False)
    return out / "_build" / "html"


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
