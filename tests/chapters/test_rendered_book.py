"""Open every chapter of the built book in headless Chromium and check what a reader sees.

For each page of the TOC (light and dark colour scheme) the test fails on

* any console error or uncaught page error;
* any request that leaves localhost.  The only exception is the MathJax script Sphinx
  loads from its CDN, which is answered from the MathJax 3.2.2 files of the
  ``django-static-mathjax`` package (the book stays standard for readers, the test
  stays offline);
* any ``<img>`` that did not load (``naturalWidth == 0``);
* an animation (matplotlib ``to_jshtml``) in the executed notebook whose rendered page has
  no ``.animation`` element with a loaded frame, play controls and a frame slider that
  moves when "next frame" is clicked;

and saves full-page screenshots to ``_build/screenshots/<page>.png`` (and
``<page>-dark.png``).

Chromium is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it); ``playwright
install`` is never used.  Without it the test is skipped, except when ``CI`` is set: then a
missing browser is a failure.
"""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from booktools import ROOT, read_notebook, toc_entries

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
SCREENSHOTS = ROOT / "_build" / "screenshots"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _need_browser() -> Any:
    """Return playwright's ``sync_playwright``; skip (or fail under CI) without a browser."""
    in_ci = bool(os.environ.get("CI"))
    problem = None
    if not CHROMIUM.is_file():
        problem = f"{CHROMIUM} not found (apt-get install chromium; .ci/run does it)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - dev extra not installed
        problem = f"playwright is not installed: {exc}"
    if problem:
        if in_ci:
            pytest.fail(f"CI is set and the browser test cannot run: {problem}", pytrace=False)
        pytest.skip(problem)
    return sync_playwright


def _mathjax_root() -> Path:
    import mathjax  # django-static-mathjax (dev extra)

    return (Path(next(iter(mathjax.__path__))) / "static" / "mathjax").resolve()


def _page_has_animation(built_html: Path, entry: str) -> bool:
    """Whether the executed notebook behind ``entry`` output a jshtml animation.

    It is the build's ``jupyter_execute`` copy (a build that executed), or the staged
    papermill run (``conftest.built_book_html``: ``<tmp>/src`` beside ``<tmp>/out``).
    """
    candidates = [
        built_html.parent / "jupyter_execute" / f"{entry}.ipynb",
        built_html.parents[2] / "src" / f"{entry}.ipynb",
    ]
    executed = next((p for p in candidates if p.is_file()), None)
    if executed is None:
        return False
    for cell in read_notebook(executed)["cells"]:
        for out in cell.get("outputs", []):
            html = out.get("data", {}).get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            if 'class="animation"' in html:
                return True
    return False


#: A MyST directive option that ended up in the text (e.g. a multi-line ``:alt:`` ends the
#: option block early and the following ``:width: 100%`` lands in the caption).
_LEAKED_OPTION = re.compile(
    r"(?<![\w`]):(?:alt|width|height|scale|align|name|label|class|figwidth|figclass|"
    r"nowrap|enumerated|tags):\s+\S+"
)

_MATHJAX_DONE_JS = (
    "async () => { if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; } }"
)

_IMAGES_JS = """
async () => {
  const imgs = Array.from(document.querySelectorAll('img'));
  for (const img of imgs) { img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); })));
  return imgs.map(img => ({src: (img.currentSrc || img.src).slice(0, 120),
                           ok: img.complete && img.naturalWidth > 0}));
}
"""

_ANIMATIONS_JS = """
() => Array.from(document.querySelectorAll('.animation')).map(a => {
  const img = a.querySelector('img');
  const slider = a.querySelector('input[type=range]');
  const buttons = Array.from(a.querySelectorAll('button'));
  const onclick = b => b.getAttribute('onclick') || '';
  return {
    frame_ok: !!img && img.complete && img.naturalWidth > 0,
    has_play: buttons.some(b => /play_animation|reverse_animation/.test(onclick(b))),
    has_next: buttons.some(b => /next_frame/.test(onclick(b))),
    has_slider: !!slider,
    visible: a.getBoundingClientRect().height > 0,
  };
})
"""

_NEXT_FRAME_JS = """
() => Array.from(document.querySelectorAll('.animation')).map(a => {
  const slider = a.querySelector('input[type=range]');
  const next = Array.from(a.querySelectorAll('button'))
    .find(b => /next_frame/.test(b.getAttribute('onclick') || ''));
  const before = Number(slider.value);
  next.click();
  return [before, Number(slider.value), Number(slider.max)];
})
"""


def _router(mathjax_root: Path, external: list[str]) -> Any:
    """Route handler: localhost passes, the MathJax CDN is served locally, rest is logged."""

    def route(r: Any, _request: Any) -> None:
        url = r.request.url
        if urlparse(url).hostname == "127.0.0.1" or url.startswith("data:"):
            r.continue_()
            return
        if url.startswith(MATHJAX_CDN):
            local = (mathjax_root / urlparse(url).path.removeprefix("/npm/mathjax@3/")).resolve()
            if mathjax_root in local.parents and local.is_file():
                ctype = mimetypes.guess_type(local.name)[0] or "text/plain"
                r.fulfill(path=str(local), content_type=ctype)
                return
            url += " (no local MathJax file)"
        external.append(url)
        r.abort()

    return route


def _page_name(entry: str) -> str:
    return entry.split("/")[-1]


def test_every_chapter_renders(book_server: str, built_book_html: Path) -> None:
    sync_playwright = _need_browser()
    mathjax_root = _mathjax_root()
    assert (mathjax_root / "es5" / "tex-mml-chtml.js").is_file()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    entries = toc_entries()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    viewport={"width": 1280, "height": 900}, color_scheme=scheme
                )
                external: list[str] = []
                context.route("**/*", _router(mathjax_root, external))
                for entry in entries:
                    name = _page_name(entry)
                    where = f"{entry} [{scheme}]"
                    page = context.new_page()
                    console: list[str] = []
                    page.on(
                        "console",
                        lambda m, c=console: c.append(m.text) if m.type == "error" else None,
                    )
                    page.on("pageerror", lambda e, c=console: c.append(f"page error: {e}"))
                    response = page.goto(f"{book_server}/{entry}.html", wait_until="load")
                    if response is None or response.status != 200:
                        problems.append(f"{where}: HTTP {response and response.status}")
                        page.close()
                        continue
                    # let MathJax finish typesetting before looking and taking the picture
                    page.evaluate(_MATHJAX_DONE_JS)
                    page.wait_for_load_state("networkidle")
                    if scheme == "dark":
                        theme = page.evaluate("document.documentElement.dataset.theme")
                        if theme != "dark":
                            problems.append(f"{where}: theme is {theme!r}, expected dark")

                    for img in page.evaluate(_IMAGES_JS):
                        if not img["ok"]:
                            problems.append(f"{where}: image did not load: {img['src']}")

                    anims = page.evaluate(_ANIMATIONS_JS)
                    if _page_has_animation(built_book_html, entry) and not anims:
                        problems.append(f"{where}: the notebook made an animation; none shown")
                    for i, a in enumerate(anims):
                        bad = [k for k, ok in a.items() if not ok]
                        if bad:
                            problems.append(f"{where}: animation {i} lacks {bad}")
                    if anims and scheme == "light":
                        for i, (before, after, top) in enumerate(page.evaluate(_NEXT_FRAME_JS)):
                            if top > 0 and after != (before + 1) % (top + 1):
                                problems.append(
                                    f"{where}: animation {i} 'next frame' moved the slider "
                                    f"{before} -> {after}"
                                )
                        page.reload(wait_until="load")  # screenshot the initial frame
                        page.evaluate(_MATHJAX_DONE_JS)

                    if not page.query_selector("main h1, article h1"):
                        problems.append(f"{where}: no page title (h1) rendered")
                    if scheme == "light":
                        text = page.inner_text("article")
                        for leak in _LEAKED_OPTION.findall(text):
                            problems.append(f"{where}: directive option shown as text: {leak!r}")
                    suffix = "" if scheme == "light" else "-dark"
                    page.screenshot(path=str(SCREENSHOTS / f"{name}{suffix}.png"), full_page=True)
                    problems.extend(f"{where}: console error: {m}" for m in console)
                    page.close()
                context.close()
                problems.extend(f"[{scheme}] request left localhost: {u}" for u in external)
        finally:
            browser.close()

    assert not problems, "\n".join(problems)


def test_screenshot_names_are_unique() -> None:
    names = [_page_name(e) for e in toc_entries()]
    assert len(names) == len(set(names)), f"two TOC pages would share a screenshot: {names}"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in names), names
