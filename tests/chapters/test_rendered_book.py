"""Open every page of the built book in headless Chromium and read it as a reader would.

For each page of the TOC, at desktop width (light and dark colour scheme) and at phone
width, the test fails on

* any console error or uncaught page error, any image that did not load, and any request
  that leaves the machine (MathJax and every figure are served by the book itself);
* an animation (matplotlib ``to_jshtml``) in the executed notebook whose rendered page has
  no working player (a loaded frame, play controls, a slider that "next frame" moves);

and, reading the page (the *reader test*), on

* raw Markdown on the page: pipe-table rows (``| a | b |``, ``|---|``) or a directive
  option shown as text;
* more visible code than the book allows per chapter (80 non-blank lines: code hidden in
  folded cells or folded solutions does not count);
* ``nan``, ``inf`` or "not measured" in the text, and references to internal files
  (developers' notes, absolute paths, profiles);
* an output, table or figure wider than the text column, or a page wider than a phone;
* a book figure whose smallest text is shown below 9 pt (its image carries its width in
  inches and its smallest font; the shown size is that font scaled by the displayed width);

and saves screenshots to ``_build/screenshots/<page>.png``, ``<page>-dark.png`` and
``<page>-phone.png``.

Chromium is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it); ``playwright
install`` is never used.  Without it the test is skipped, except when ``CI`` is set: then a
missing browser is a failure.
"""

from __future__ import annotations

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
SCREENSHOTS = ROOT / "_build" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
MAX_VISIBLE_CODE = 80
MIN_SHOWN_PT = 9.0

#: Raw Markdown that should have been rendered.
RAW_MARKDOWN = re.compile(r"^\s*\|.*\|\s*$|\|\s*:?-{3,}", re.MULTILINE)
#: Words no reader should meet.
BAD_WORDS = re.compile(r"\bnan\b|\binf\b|not measured", re.IGNORECASE)
#: References to files outside the repository or to the developers' brief.
INTERNAL = re.compile(r"notes\.md|project notes|THEORY\.md|s_notes|cProfile|/work/|/tmp/|"
                      r"/home/|/root/|site-packages", re.IGNORECASE)
#: A MyST directive option that ended up in the text.
_LEAKED_OPTION = re.compile(
    r"(?<![\w`]):(?:alt|width|height|scale|align|name|label|class|figwidth|figclass|"
    r"nowrap|enumerated|tags):\s+\S+"
)

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


def _page_has_output(built_html: Path, entry: str, needle: str) -> bool:
    """Whether an HTML output of the executed notebook behind ``entry`` contains ``needle``.

    The notebook is the build's ``jupyter_execute`` copy (a build that executed), or the
    staged papermill run (``conftest.built_book_html``: ``<tmp>/src`` beside ``<tmp>/out``).
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
            if needle in html:
                return True
    return False


def _page_has_animation(built_html: Path, entry: str) -> bool:
    """Whether the executed notebook behind ``entry`` output a jshtml animation."""
    return _page_has_output(built_html, entry, 'class="animation"')


_WAIT_JS = """
async () => {
  if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const imgs = Array.from(document.querySelectorAll('img'));
  for (const img of imgs) { img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); })));
  await document.fonts.ready;  // MathJax's fonts are requested after it typesets
  return imgs.filter(img => !(img.complete && img.naturalWidth > 0))
             .map(img => (img.currentSrc || img.src).slice(0, 80));
}
"""

_ANIMATIONS_JS = """
() => Array.from(document.querySelectorAll('.animation')).map(a => {
  const img = a.querySelector('img');
  const onclick = b => b.getAttribute('onclick') || '';
  const buttons = Array.from(a.querySelectorAll('button'));
  return {frame_ok: !!img && img.complete && img.naturalWidth > 0,
          has_play: buttons.some(b => /play_animation|reverse_animation/.test(onclick(b))),
          has_next: buttons.some(b => /next_frame/.test(onclick(b))),
          has_slider: !!a.querySelector('input[type=range]'),
          visible: a.getBoundingClientRect().height > 0};
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

#: What a reader sees: visible code lines, too-wide elements, shown font sizes.  On a
#: phone a table with many columns may scroll inside its own box (``phone`` = true); on a
#: desktop nothing may.
_READ_JS = """
(phone) => {
  const shown = el => el.getClientRects().length > 0
                      && getComputedStyle(el).visibility !== 'hidden';
  const article = document.querySelector('article');
  const right = article.getBoundingClientRect().right + 1;
  let code = 0;
  for (const pre of document.querySelectorAll('div.cell_input pre')) {
    if (shown(pre)) { code += pre.innerText.split('\\n').filter(l => l.trim()).length; }
  }
  const wide = [];
  for (const el of document.querySelectorAll(
      'div.cell_output, div.cell_output table, figure, .rf-panels, .animation')) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    const scrolls = el.scrollWidth > el.clientWidth + 2 && !(phone && el.tagName === 'TABLE');
    if (r.right > right || scrolls) {
      wide.push(el.tagName + '.' + (el.className || '') + ' ' + Math.round(r.width) + 'px');
    }
  }
  const fonts = Array.from(document.querySelectorAll('img.rf-panel-img')).filter(shown).map(img =>
    Number(img.dataset.minFontPt) * img.clientWidth / (96 * Number(img.dataset.widthIn)));
  return {code, wide, fonts, text: article.innerText,
          page_width: document.documentElement.scrollWidth, view: window.innerWidth};
}
"""


def _router(external: list[str]) -> Any:
    """Route handler: localhost and data URLs pass, anything else is logged and refused."""

    def route(r: Any, _request: Any) -> None:
        url = r.request.url
        if urlparse(url).hostname == "127.0.0.1" or url.startswith("data:"):
            r.continue_()
            return
        external.append(url)
        r.abort()

    return route


#: Longest wait for one page to load and settle (milliseconds).
PAGE_TIMEOUT_MS = 180_000


def _page_name(entry: str) -> str:
    return entry.split("/")[-1]


def _open(context: Any, url: str, where: str, problems: list[str]) -> tuple[Any, list[str]]:
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m, c=console: c.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e, c=console: c.append(f"page error: {e}"))
    response = page.goto(url, wait_until="load")
    if response is None or response.status != 200:
        problems.append(f"{where}: HTTP {response and response.status}")
    # MathJax typeset, every image and every font loaded (_WAIT_JS): what the screenshots
    # and checks need.  Not Playwright's "networkidle": on the API page (about 1450
    # formulas) it fired during the typesetting, was withdrawn when MathJax then requested
    # its fonts, and never fired again (a 180 s timeout, reproduced 5 times of 5, with no
    # request outstanding in Chromium).
    for src in page.evaluate(_WAIT_JS):
        problems.append(f"{where}: image did not load: {src}")
    return page, console


def _check_animations(page: Any, where: str, expected: bool, problems: list[str]) -> None:
    anims = page.evaluate(_ANIMATIONS_JS)
    if expected and not anims:
        problems.append(f"{where}: the notebook made an animation; none shown")
    for i, a in enumerate(anims):
        bad = [k for k, ok in a.items() if not ok]
        if bad:
            problems.append(f"{where}: animation {i} lacks {bad}")
    for i, (before, after, top) in enumerate(page.evaluate(_NEXT_FRAME_JS) if anims else []):
        if top > 0 and after != (before + 1) % (top + 1):
            problems.append(f"{where}: animation {i} 'next frame' moved {before} -> {after}")
    if anims:
        page.reload(wait_until="load")  # screenshot the initial frame
        page.evaluate(_WAIT_JS)


#: Pages that are reference text, not results: docstrings say when a function returns
#: ``nan`` and hold code examples (internal references are still refused there).
REFERENCE_PAGES = ("api", "references")


def _read(page: Any, where: str, name: str, phone: bool, problems: list[str]) -> None:
    """The reader test of one page (see the module docstring)."""
    seen = page.evaluate(_READ_JS, phone)
    text = seen["text"]
    chapter = name not in ("intro", "notation", *REFERENCE_PAGES)
    patterns = [(RAW_MARKDOWN, "raw Markdown table"), (INTERNAL, "internal reference")]
    if name not in REFERENCE_PAGES:  # docstrings hold code examples and say "nan" by design
        patterns += [(BAD_WORDS, "a word"), (_LEAKED_OPTION, "directive option shown as text")]
    for pattern, what in patterns:
        for found in pattern.finditer(text):
            problems.append(f"{where}: {what}: {found.group(0).strip()[:60]!r}")
    if chapter and seen["code"] > MAX_VISIBLE_CODE:
        problems.append(f"{where}: {seen['code']} lines of visible code (> {MAX_VISIBLE_CODE})")
    problems.extend(f"{where}: wider than the text column: {w}" for w in seen["wide"])
    if seen["page_width"] > seen["view"] + 1:
        problems.append(f"{where}: the page is {seen['page_width']} px wide on a "
                        f"{seen['view']} px screen")
    problems.extend(f"{where}: figure text shown at {pt:.1f} pt (< {MIN_SHOWN_PT})"
                    for pt in seen["fonts"] if pt < MIN_SHOWN_PT)


def _visit(context: Any, base: str, entry: str, mode: str, html: Path,
           problems: list[str]) -> None:
    where = f"{entry} [{mode}]"
    page, console = _open(context, f"{base}/{entry}.html", where, problems)
    if mode == "dark" and page.evaluate("document.documentElement.dataset.theme") != "dark":
        problems.append(f"{where}: the theme is not dark")
    if mode == "light":
        _check_animations(page, where, _page_has_animation(html, entry), problems)
    if not page.query_selector("main h1, article h1"):
        problems.append(f"{where}: no page title (h1) rendered")
    if mode != "dark":
        _read(page, where, _page_name(entry), mode == "phone", problems)
    suffix = {"light": "", "dark": "-dark", "phone": "-phone"}[mode]
    page.screenshot(path=str(SCREENSHOTS / f"{_page_name(entry)}{suffix}.png"), full_page=True)
    problems.extend(f"{where}: console error: {m}" for m in console)
    page.close()


def test_every_page_reads_well(book_server: str, built_book_html: Path) -> None:
    sync_playwright = _need_browser()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            for mode, viewport, scheme in (("light", DESKTOP, "light"), ("dark", DESKTOP, "dark"),
                                           ("phone", PHONE, "light")):
                context = browser.new_context(viewport=viewport, color_scheme=scheme)
                # a hang guard, not a speed limit: the API page typesets for a while on a
                # busy machine (30 s, Playwright's default, was exceeded at load 7)
                context.set_default_timeout(PAGE_TIMEOUT_MS)
                external: list[str] = []
                context.route("**/*", _router(external))
                for entry in toc_entries():
                    _visit(context, book_server, entry, mode, built_book_html, problems)
                context.close()
                problems.extend(f"[{mode}] request left the machine: {u}" for u in external)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_screenshot_names_are_unique() -> None:
    names = [_page_name(e) for e in toc_entries()]
    assert len(names) == len(set(names)), f"two TOC pages would share a screenshot: {names}"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in names), names


# ----------------------------------------------------------------- static explorers
#: What a static explorer's output starts with (reluflow.viz.explorers.Explorer.html).
EXPLORER_MARK = 'class="reluflow-explorer"'

_EXPLORER_STATE_JS = """
el => {
  const chart = el.querySelector('.reluflow-explorer-chart svg');
  const slider = el.querySelector('input[type=range]');
  const label = slider ? slider.closest('label') : null;
  const readout = chart ? chart.querySelector('.readout_group') : null;
  let figure = '';
  if (chart) {
    const copy = chart.cloneNode(true);
    const r = copy.querySelector('.readout_group');
    if (r) { r.remove(); }
    figure = copy.innerHTML;
  }
  return {
    drawn: !!chart,
    value: slider ? slider.value : null,
    min: slider ? slider.min : null,
    max: slider ? slider.max : null,
    step: slider ? slider.step : null,
    label: label ? label.innerText.trim() : '',
    readout: readout ? readout.textContent : '',
    figure: figure,
  };
}
"""


def _explorer_state(page: Any, selector: str) -> dict[str, Any]:
    state: dict[str, Any] = page.eval_on_selector(selector, _EXPLORER_STATE_JS)
    return state


def _move_first_slider(page: Any, selector: str, problems: list[str], where: str,
                       shots: tuple[Path, Path]) -> None:
    """Move the explorer's first slider one step with the keyboard; check what changed."""
    page.wait_for_selector(f"{selector} .readout_group text", timeout=30_000)
    before = _explorer_state(page, selector)
    page.locator(selector).screenshot(path=str(shots[0]))
    slider = page.locator(f"{selector} input[type=range]").first
    slider.focus()
    at_max = float(before["value"]) >= float(before["max"]) - 1e-9
    page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([s, r]) => document.querySelector(s + ' .readout_group').textContent !== r",
            arg=[selector, before["readout"]], timeout=10_000)
    except PlaywrightTimeout:
        pass  # reported below: the readout did not change
    after = _explorer_state(page, selector)
    page.locator(selector).screenshot(path=str(shots[1]))
    step = float(before["step"]) * (-1 if at_max else 1)
    if abs(float(after["value"]) - float(before["value"]) - step) > 1e-6 * (1 + abs(step)):
        problems.append(f"{where}: the arrow key moved the slider {before['value']} -> "
                        f"{after['value']} (step {before['step']})")
    if after["value"] not in after["label"] or before["label"] == after["label"]:
        problems.append(f"{where}: slider label {before['label']!r} -> {after['label']!r} "
                        "does not show the new value")
    if after["figure"] == before["figure"]:
        problems.append(f"{where}: the figure did not change when the slider moved")
    if after["readout"] == before["readout"]:
        problems.append(f"{where}: the readout did not change when the slider moved")


def test_explorers_move_with_the_keyboard(book_server: str, built_book_html: Path) -> None:
    """Every page whose notebook made a static explorer: its first slider moves with the
    arrow key, the figure and the readout change, nothing is requested from outside;
    before/after screenshots of each explorer."""
    sync_playwright = _need_browser()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    pages = [e for e in toc_entries() if _page_has_output(built_book_html, e, EXPLORER_MARK)]
    if not pages:
        pytest.skip("no chapter of this build shows a static explorer")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            # tall enough for a whole explorer: an element taller than the window is
            # screenshot under the theme's sticky header
            context = browser.new_context(viewport={"width": DESKTOP["width"], "height": 2400})
            context.set_default_timeout(PAGE_TIMEOUT_MS)  # a hang guard, as above
            external: list[str] = []
            context.route("**/*", _router(external))
            for entry in pages:
                name = _page_name(entry)
                page, console = _open(context, f"{book_server}/{entry}.html", entry, problems)
                ids = page.eval_on_selector_all(".reluflow-explorer", "els => els.map(e => e.id)")
                if not ids:
                    problems.append(f"{entry}: the notebook made an explorer; none shown")
                for k, ident in enumerate(ids):
                    tag = "" if k == 0 else f"-{k}"
                    shots = (SCREENSHOTS / f"{name}-explorer{tag}-before.png",
                             SCREENSHOTS / f"{name}-explorer{tag}-after.png")
                    _move_first_slider(page, f"#{ident}", problems, f"{entry} #{ident}", shots)
                problems.extend(f"{entry}: console error: {m}" for m in console)
                page.close()
            context.close()
            problems.extend(f"request left the machine: {u}" for u in external)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
