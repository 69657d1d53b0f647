"""Tests of reluflow.viz.explorers: each chapter's static explorer, its sliders and readout.

What a slider position shows is checked without a browser: :meth:`Explorer.svg` renders
the Vega-Lite figure with vl-convert at given slider values, and the readout's text must
be the readout of exactly that grid point (:func:`reluflow.runs.explorers.readouts`).
The browser test (tests/chapters/test_rendered_book.py) moves the sliders with the
keyboard on the built pages.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from reluflow.runs import explorers as ex
from reluflow.viz import explorers as vx

GRID = ex.ExplorerGrid(delta=(0.3, 0.5), p=(0.7, 0.8), kappa=(1e-6, 1e-4), m=6, seed=1,
                       t_max=1e8, name="viz")
START = {"delta": 0.3, "p": 0.7, "kappa": 1e-6}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("viz_cache")


@pytest.fixture(scope="module")
def records(root: Path) -> list[dict[str, Any]]:
    return ex.grid_records(GRID, root, fast=True, workers=1)


def _spec_of(html: str) -> dict[str, Any]:
    call = html[html.index("vegaEmbed("):]
    body = call[call.index("{"):call.rindex(', {"renderer"')]
    spec: dict[str, Any] = json.loads(body.replace("<\\/", "</"))
    return spec


def _texts(svg: str) -> list[str]:
    return [re.sub(r"&[a-z#0-9]+;", "", t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def _split(svg: str) -> tuple[str, list[str]]:
    """(the figure panels' SVG, the readout's texts)."""
    i = svg.index("readout_group")
    return svg[:i], _texts(svg[i:])


def _expected(records: list[dict[str, Any]], chapter: str, point: tuple[float, float, float]
              ) -> list[str]:
    rows = ex.readouts(records, chapter)[point]
    out = []
    for r in rows:
        out.append(r.quantity)
        for val in (r.measured, r.predicted):
            if isinstance(val, float):
                out.append(f"{val:.3g}")
    return out


@pytest.mark.parametrize("chapter", list(ex.CHAPTERS))
def test_html_wraps_one_offline_explorer(records: list[dict[str, Any]], chapter: str) -> None:
    e = vx.explorer(chapter, records, GRID, **START)
    html = e.html()
    assert html.startswith(f'<div class="reluflow-explorer" id="reluflow-explorer-{chapter}">')
    assert html.count("vegaEmbed(") == 1 and e._repr_html_() == html
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls == {e.spec["$schema"]}  # the schema id only: vega-embed never fetches it
    spec = _spec_of(html)
    assert spec == e.spec
    assert f"{len(GRID.configs())} exact runs" in e.note or chapter != "setting"


@pytest.mark.parametrize("chapter", list(ex.CHAPTERS))
def test_sliders_follow_the_grid(records: list[dict[str, Any]], chapter: str) -> None:
    e = vx.explorer(chapter, records, GRID, delta=0.45, p=0.72, kappa=3e-5)
    params = {prm["name"]: prm for prm in e.spec["params"]}
    names = {"delta": "delta", "p": "p", "kappa": "log10_kappa"}
    assert list(params) == [names[a] for a in ex.CHAPTERS[chapter]]
    start = {"delta": 0.5, "p": 0.7, "log10_kappa": -4.0}  # nearest grid point
    for axis in ex.CHAPTERS[chapter]:
        prm = params[names[axis]]
        vals = [math.log10(k) for k in GRID.kappa] if axis == "kappa" else list(
            GRID.axis(axis))
        b = prm["bind"]
        assert b["input"] == "range"
        assert (b["min"], b["max"]) == pytest.approx((vals[0], vals[-1]))
        assert b["step"] == pytest.approx(vals[1] - vals[0])
        # a short decimal (0.1, not 0.0999...98): a range input then reaches every value
        assert repr(b["step"]) == repr(float(f"{b['step']:.10g}"))
        assert prm["value"] == pytest.approx(start[names[axis]])
        assert {"delta": "Δ", "p": "p", "kappa": "κ"}[axis] in b["name"]


@pytest.mark.parametrize("chapter", list(ex.CHAPTERS))
def test_a_slider_move_changes_figure_and_readout(records: list[dict[str, Any]],
                                                  chapter: str) -> None:
    e = vx.explorer(chapter, records, GRID, **START)
    first = e.spec["params"][0]
    name, lo, hi = first["name"], first["bind"]["min"], first["bind"]["max"]
    fig_a, read_a = _split(e.svg(**{name: lo}))
    fig_b, read_b = _split(e.svg(**{name: hi}))
    assert fig_a != fig_b and read_a != read_b
    axis = ex.CHAPTERS[chapter][0]
    for value, texts in ((lo, read_a), (hi, read_b)):
        point = dict(START)
        point[axis] = 10 ** value if axis == "kappa" else value
        key = (point["delta"], point["p"], point["kappa"])
        want = _expected(records, chapter, key)
        missing = [w for w in want if w not in texts]
        assert not missing, f"{chapter} at {key}: readout lacks {missing}"


def test_phase3_readout_is_at_the_chapter_kappa(records: list[dict[str, Any]]) -> None:
    e = vx.explorer("phase3", records, GRID, **START)
    rows = next(d for d in e.spec["datasets"].values() if d and "q" in d[0])
    assert {r["log10_kappa"] for r in rows} == {-6.0}
    assert len(rows) == len(GRID.delta) * len(GRID.p)


def test_bad_arguments(records: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="chapter must be one of"):
        vx.explorer("phase5", records, GRID, **START)
    with pytest.raises(ValueError, match="grid must be an ExplorerGrid"):
        vx.explorer("phase1", records, "grid", **START)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"missing delta=0\.5"):
        vx.explorer("phase1", [r for r in records if r["delta"] != 0.5], GRID, **START)
    e = vx.explorer("phase2", records, GRID, **START)
    with pytest.raises(ValueError, match="unknown slider 'delta'"):
        e.with_values(delta=0.3)
    with pytest.raises(ValueError, match=r"log10_kappa must lie in \[-6.0, -4.0\]"):
        e.with_values(log10_kappa=-8.0)


def test_bundle_is_the_library_for_altairs_schema(tmp_path: Path) -> None:
    import altair as alt

    assert alt.SCHEMA_VERSION.lstrip("v").startswith(vx.vegalite_version() + ".")
    path = vx.write_bundle(tmp_path)
    assert path.name == vx.BUNDLE_NAME
    text = path.read_text(encoding="utf-8")
    assert "window.vegaEmbed=" in text and "window.vegaLite=" in text
    assert not re.search(r"\bimport\s*\(|\bfetch\(\s*[\"']https?:", text[:2000])
    with pytest.raises(ValueError, match="directory must be an existing folder"):
        vx.write_bundle(tmp_path / "nope")


def test_chapter_explorer_uses_the_cached_book_grid(
        records: list[dict[str, Any]], root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "book_grid", lambda fast: GRID)
    monkeypatch.setattr(ex, "simulate", lambda *a, **k: pytest.fail("must read the cache"))
    e = vx.chapter_explorer("phase4", delta=0.5, p=0.8, kappa=1e-4, fast=True, cache=root)
    assert e.spec == vx.explorer("phase4", records, GRID, delta=0.5, p=0.8, kappa=1e-4).spec


def test_plain_text_says_what_it_is(records: list[dict[str, Any]]) -> None:
    e = vx.explorer("phase1", records, GRID, **START)
    text = repr(e)
    assert text.startswith("Static explorer (phase1), drawn in the built book's page: ")
    assert e.note in text and "None" not in text and "{" not in text
