r"""Static explorers: precomputed exact runs with sliders that work without a kernel.

A chapter's explorer is a `Vega-Lite <https://vega.github.io/vega-lite/>`_ figure built
with `Altair <https://altair-viz.github.io/>`_ from the records of
:func:`reluflow.runs.explorers.grid_records`: every grid point's reduced run is in the
figure's data, and the sliders (Vega's own bindings: native ``<input type="range">``
elements labelled with the parameter and its current value, moved by the arrow keys)
select which point the panels and the readout show.  All interactivity is Vega's; the page
only calls ``vegaEmbed`` once per explorer.  The library's JavaScript (Vega, Vega-Lite
and Vega-Embed, from the ``vl-convert-python`` package) is written once into the built
book by :func:`write_bundle`; nothing is loaded from the network.

:func:`explorer` assembles the figure of a chapter (:data:`reluflow.runs.explorers.CHAPTERS`);
:meth:`Explorer.html` is the HTML that the notebook displays, wrapped in an element of class
``reluflow-explorer``; :meth:`Explorer.svg` renders the figure at given slider values in
Python (no browser), which is how the tests check what each slider position shows.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reluflow.analysis.geometry import mu_angle
from reluflow.analysis.theory import fate_boundaries, final_margin, plateau_escape_slope
from reluflow.engine.data import TwoPointData
from reluflow.runs.config import FIELDS, RunConfig, early_window
from reluflow.runs.explorers import CHAPTERS, ExplorerGrid, Reading, readouts
from reluflow.viz.plots.style import (
    FATE_COLORS,
    PALETTE,
    PHASE_COLORS,
    PHASES,
    REGIME_LABELS,
)
from reluflow.viz.plots.timeline import phase_intervals

__all__ = [
    "BUNDLE_NAME",
    "Explorer",
    "bundle",
    "chapter_explorer",
    "explorer",
    "vegalite_version",
    "write_bundle",
]

#: File name of the JavaScript bundle (Vega, Vega-Lite, Vega-Embed) in the book's ``_static``.
BUNDLE_NAME = "reluflow-vega.js"

#: Slider labels and the parameter names the figure's data uses (kappa moves in log10).
_SLIDER = {
    "delta": ("delta", "Δ (rad)"),
    "p": ("p", "p (weight of x+)"),
    "kappa": ("log10_kappa", "log₁₀ κ"),
}

#: Panel size (pixels; panels are stacked, so the explorer fits the text column) and fonts.
_W, _H = 420, 200
_CONFIG: dict[str, Any] = {
    "background": "white",
    "font": "DejaVu Sans, Verdana, sans-serif",
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "titleFontWeight": "normal"},
    "legend": {"labelFontSize": 11, "titleFontSize": 11},
    "title": {"fontSize": 13, "fontWeight": "normal", "anchor": "start", "frame": "group"},
    "view": {"stroke": "#BBBBBB"},
}

#: Colours of an ordered parameter (κ, Δ): viridis without its palest, yellow end.
_SEQUENTIAL = {"name": "viridis", "extent": [0.0, 0.8]}

#: Phase-I fates in the order of :data:`reluflow.analysis.theory.FATES`.
_FATE_ORDER = ("condense", "slide", "die", "dead")


def _fate_colors() -> list[str]:
    """The book's colour of each fate (:data:`reluflow.viz.plots.style.FATE_COLORS`)."""
    return [FATE_COLORS[f] for f in _FATE_ORDER]


def _alt() -> Any:
    try:
        import altair as alt
    except ImportError as exc:  # pragma: no cover - the book extra is installed for tests
        raise ImportError("the static explorers need altair and vl-convert-python "
                          "(pip install 'reluflow[book]')") from exc
    return alt


def vegalite_version() -> str:
    """The Vega-Lite ``major.minor`` of Altair's schema, which the bundle must match.

    Raises
    ------
    RuntimeError
        If the installed ``vl-convert-python`` does not carry that Vega-Lite version.
    """
    from importlib.metadata import version

    import vl_convert as vlc

    alt = _alt()
    mm = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    if mm not in vlc.get_vegalite_versions():
        raise RuntimeError(f"vl-convert-python {version('vl-convert-python')} has no "
                           f"Vega-Lite {mm} "
                           f"(Altair {alt.__version__}'s schema); install matching versions")
    return mm


def bundle() -> str:
    """The JavaScript of Vega, Vega-Lite and Vega-Embed as one file (``window.vegaEmbed``).

    From ``vl_convert.javascript_bundle`` for :func:`vegalite_version`.
    """
    import vl_convert as vlc

    # The stub marks ``snippet`` as required; without one the library returns the standard
    # bundle (an empty snippet would give an empty file).
    text: str = vlc.javascript_bundle(vl_version=vegalite_version())  # type: ignore[call-arg]
    return text


def write_bundle(directory: str | Path) -> Path:
    """Write :func:`bundle` to ``directory / BUNDLE_NAME`` (the folder must exist)."""
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"directory must be an existing folder, got {str(d)!r}")
    path = d / BUNDLE_NAME
    path.write_text(bundle(), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- data
def _sig(x: float | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _fmt(x: float | str | None, missing: str) -> str:
    if x is None:
        return missing
    if isinstance(x, str):
        return REGIME_LABELS.get(x, x)
    return f"{x:.3g}"


def _point(rec: Mapping[str, Any]) -> dict[str, float]:
    return {"delta": float(rec["delta"]), "p": float(rec["p"]),
            "log10_kappa": round(math.log10(float(rec["kappa"])), 6)}


def _thin(t: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Indices of the recorded times nearest to ``targets`` (sorted, unique)."""
    j = np.clip(np.searchsorted(t, targets), 1, t.size - 1)
    left = np.abs(t[j - 1] - targets) <= np.abs(t[j] - targets)
    return np.unique(np.where(left, j - 1, j))


def _log_idx(t: np.ndarray, lo: float = 1e-2, n: int = 140,
             hi: float | None = None) -> np.ndarray:
    top = t[-1] if hi is None else min(hi, t[-1])
    return _thin(t, np.geomspace(max(lo, t[1]), top, n))


def _lin_idx(t: np.ndarray, hi: float, n: int = 160) -> np.ndarray:
    return _thin(t, np.linspace(0.0, min(hi, t[-1]), n))


def _series(rec: Mapping[str, Any], key: str, idx: np.ndarray) -> list[float | None]:
    vals = rec[key]
    return [None if vals[i] is None else vals[i] for i in idx]


def _readout_rows(records: Sequence[Mapping[str, Any]], chapter: str,
                  keep: Any = None) -> list[dict[str, Any]]:
    """One data row per grid point with the readout's three columns as lists."""
    table = readouts(records, chapter)
    rows = []
    for rec in records:
        if keep is not None and not keep(rec):
            continue
        rd: list[Reading] = table[(rec["delta"], rec["p"], rec["kappa"])]
        rows.append({**_point(rec), "q": [r.quantity for r in rd],
                     "meas": [_fmt(r.measured, "not reached") for r in rd],
                     "pred": [_fmt(r.predicted, "—") for r in rd]})
    return rows


# ----------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class _Ctx:
    """What every chapter's panels share: the sliders and how a row is selected."""

    chapter: str
    grid: ExplorerGrid
    start: dict[str, float]
    fixed: dict[str, float] = field(default_factory=dict)
    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def data(self, rows: list[dict[str, Any]]) -> Any:
        """A reference to ``rows`` as a named dataset (the values go to ``datasets``).

        Altair copies a chart's inline data each time charts are combined; with named
        data it copies only the name, and the values appear once in the specification.
        """
        for name, known in self.datasets.items():
            if known is rows:
                return _alt().NamedData(name=name)
        name = f"d{len(self.datasets)}"
        self.datasets[name] = rows
        return _alt().NamedData(name=name)

    def sliders(self) -> tuple[str, ...]:
        return CHAPTERS[self.chapter]

    def test(self, only: Sequence[str] | None = None) -> str:
        """Vega expression: the datum is at the sliders' grid point (half a step)."""
        parts = []
        for ax in (self.sliders() if only is None else only):
            name = _SLIDER[ax][0]
            parts.append(f"abs(datum.{name} - {name}) < {0.5 * _step(self.grid, ax):.6g}")
        return " && ".join(parts)

    def keep(self, rec: Mapping[str, Any]) -> bool:
        """Whether a record lies on the chapter's slice (the non-slider axes fixed)."""
        return all(math.isclose(float(rec[k]), val, rel_tol=1e-9)
                   for k, val in self.fixed.items())


def _step(grid: ExplorerGrid, axis: str) -> float:
    vals = np.asarray(grid.axis(axis))
    c = np.log10(vals) if axis == "kappa" else vals
    # 0.8 - 0.7 is 0.0999...98 in binary; a browser's range input then has no second
    # value, so the step is rounded to the grid's own decimals
    return float(f"{c[1] - c[0]:.10g}") if c.size > 1 else 1.0


def _params(ctx: _Ctx) -> list[Any]:
    alt = _alt()
    out = []
    for ax in ctx.sliders():
        name, label = _SLIDER[ax]
        vals = np.asarray(ctx.grid.axis(ax))
        c = np.round(np.log10(vals), 6) if ax == "kappa" else vals
        step = _step(ctx.grid, ax)
        start = ctx.start[ax] if ax != "kappa" else round(math.log10(ctx.start[ax]), 6)
        out.append(alt.param(name=name, value=float(start), bind=alt.binding_range(
            min=float(c[0]), max=float(c[-1]) if c.size > 1 else float(c[0]) + step,
            step=step, name=f"{label} ")))
    return out


def _readout(ctx: _Ctx, rows: list[dict[str, Any]]) -> Any:
    """The readout table: quantity, measured value, this book's prediction."""
    alt = _alt()
    base = (alt.Chart(ctx.data(rows))
            .transform_filter(ctx.test())
            .transform_flatten(["q", "meas", "pred"])
            .transform_window(row="row_number()"))
    y = alt.Y("row:O", axis=None)
    cols = [("q", 0, "left", "quantity"), ("meas", 370, "right", "measured"),
            ("pred", 520, "right", "this book's prediction")]
    heads = {fld: [{"h": head}] for fld, _, _, head in cols}
    layers = []
    for fld, x, align, _ in cols:
        layers.append(base.mark_text(align=align, fontSize=12, color="#222222")
                      .encode(x=alt.value(x), y=y, text=f"{fld}:N"))
        layers.append(alt.Chart(ctx.data(heads[fld]))
                      .mark_text(align=align, fontSize=12, fontWeight="bold", dy=-14, y=0)
                      .encode(x=alt.value(x), text="h:N"))
    return alt.layer(*layers).properties(
        name="readout", width=520, height=18 * len(rows[0]["q"]) if rows else 20,
        title="Readout at the selected grid point", view=alt.ViewBackground(stroke=None))


def _ref_rules(ctx: _Ctx, rows: list[dict[str, Any]], test: str, y: str, color: str,
               dash: Sequence[int] = (6, 3)) -> Any:
    alt = _alt()
    return (alt.Chart(ctx.data(rows)).transform_filter(test)
            .mark_rule(clip=True, color=color, strokeDash=list(dash), strokeWidth=1.5)
            .encode(y=alt.Y(f"{y}:Q")))


def _assemble(ctx: _Ctx, panels: Sequence[Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    alt = _alt()
    own = {ch: "independent" for ch in ("color", "shape", "opacity", "strokeWidth")}
    chart = alt.vconcat(*panels, _readout(ctx, rows), spacing=28).resolve_scale(
        **own).add_params(*_params(ctx))
    spec: dict[str, Any] = chart.to_dict()
    spec["config"] = {**spec.get("config", {}), **_CONFIG}
    spec["datasets"] = dict(ctx.datasets)
    return spec


# ----------------------------------------------------------------------------- chapters
def _time_x(title: str, domain: Sequence[float], log: bool) -> Any:
    alt = _alt()
    if not log:
        return alt.X("t:Q", scale=alt.Scale(domain=list(domain), nice=False), title=title,
                     axis=alt.Axis(tickCount=6))
    lo, hi = math.log10(domain[0]), math.log10(domain[1])
    if hi - lo < 8:
        return alt.X("t:Q", scale=alt.Scale(type="log", domain=list(domain)), title=title)
    ticks = [10.0 ** k for k in range(math.ceil(lo / 5) * 5, math.floor(hi) + 1, 5)]
    return alt.X("t:Q", scale=alt.Scale(type="log", domain=list(domain)), title=title,
                 axis=alt.Axis(values=ticks,
                               labelExpr="replace(format(datum.value, '.0e'), 'e+', 'e')"))


def _phase_rows(rec: Mapping[str, Any], lo: float) -> dict[str, list[Any]]:
    intervals, _ = phase_intervals({k: rec[k] for k in (
        "t_condensed", "t_escape", "t_reactivation", "t_plateau", "t_plateau_escape",
        "t_phase4")}, t_end=float(rec["t_final"]))
    names = [ph for ph in PHASES if ph in intervals]
    return {"ph": names, "t0": [max(intervals[n][0], lo) for n in names],
            "t1": [intervals[n][1] for n in names]}


def _setting(ctx: _Ctx, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    alt = _alt()
    curves: list[dict[str, Any]] = []
    shades, lines, refs = [], [], []
    lo, pmin = 1e-2, 1.0
    for rec in records:
        t = np.asarray(rec["t"], dtype=float)
        idx = _log_idx(t, lo, n=100)
        key = _point(rec)
        loss = _series(rec, "L", idx)
        pmin = min([pmin, *(x for x in loss if x is not None and x > 0)])
        curves.append({**key, "t": _series(rec, "t", idx), "L": loss})
        shades.append({**key, **_phase_rows(rec, lo)})
        lines += _neuron_rows(rec, key, log_from=lo, n_neurons=12, n_early=15, n_late=20)
        refs.append({**key, **_references(rec)})
    sel = ctx.test()
    y_loss = alt.Y("L:Q", title="loss L", scale=alt.Scale(
        type="log", domain=[10 ** math.floor(math.log10(pmin)), 2.0]))
    x = _time_x("time t (log scale)", [lo, float(ctx.grid.t_max)], log=True)
    shade = (alt.Chart(ctx.data(shades)).transform_filter(sel)
             .transform_flatten(["ph", "t0", "t1"])
             .mark_rect(opacity=0.9)
             .encode(x=alt.X("t0:Q", scale=alt.Scale(type="log", domain=[lo, ctx.grid.t_max])),
                     x2="t1:Q", color=alt.Color("ph:N", title="phase", scale=alt.Scale(
                         domain=list(PHASES), range=[PHASE_COLORS[p] for p in PHASES]))))
    loss = (alt.Chart(ctx.data(curves)).transform_filter(sel)
            .transform_flatten(["t", "L"]).transform_filter("datum.L > 0")
            .mark_line(clip=True, color=PALETTE["loss"], strokeWidth=2).encode(x=x, y=y_loss))
    panel_a = alt.layer(shade, loss).properties(
        width=_W, height=_H, title="(a) loss, phases shaded")
    panel_b = _angle_panel(ctx, lines, refs, x, "(b) neuron directions")
    return _assemble(ctx, [panel_a, panel_b], _readout_rows(records, "setting"))


def _neuron_rows(rec: Mapping[str, Any], key: Mapping[str, float], *,
                 log_from: float | None = None, t_hi: float | None = None,
                 n_neurons: int = 100, n_early: int | None = None,
                 n_late: int | None = None) -> list[dict[str, Any]]:
    r"""One row per neuron alive at t = 0 (the first ``n_neurons``): its angle over time.

    ``lt`` is :math:`\log_{10} t` (2 decimals) when ``log_from`` is given (times
    :math:`\ge` ``log_from``), else ``t`` (3 significant digits, times :math:`\le`
    ``t_hi``); ``a`` the plane angle in whole degrees; ``s`` the sign of :math:`a_k`.
    ``n_early`` and ``n_late`` thin the linear Phase-I part and the log-spaced part of the
    kept times (:func:`reluflow.runs.explorers.reduce_run`) to about that many each.
    """
    t = np.asarray(rec["t"], dtype=float)
    times = t[np.asarray(rec["angle_t"], dtype=int)]
    ang = np.asarray(rec["angles"], dtype=float)
    use = np.ones(times.size, dtype=bool)
    if log_from is not None:
        use &= times >= log_from
    if t_hi is not None:
        use &= times <= t_hi
    cols = np.nonzero(use)[0]
    half = int(np.searchsorted(times[cols], _early_end(rec), side="right"))
    early, late = cols[:half], cols[half:]
    if n_early is not None and early.size > n_early:
        early = early[:: -(-early.size // n_early)]
    if n_late is not None and late.size > n_late:
        late = late[::-1][:: -(-late.size // n_late)][::-1]  # keep the last time
    cols = np.concatenate([early, late])
    tvals: list[float | None]
    if log_from is not None:
        tkey, tvals = "lt", [round(math.log10(x), 2) for x in times[cols]]
    else:
        tkey, tvals = "t", [_sig(float(x), 3) for x in times[cols]]
    alive = [k for k, f in enumerate(rec["fate"]) if f != "dead"][:n_neurons]
    return [{**key, "k": k, "s": 1 if rec["sign"][k] > 0 else -1, tkey: tvals,
             "a": [round(float(x)) for x in ang[cols, k]]} for k in alive]


def _early_end(rec: Mapping[str, Any]) -> float:
    """End of the linear Phase-I part of a record's kept neuron times (the early window)."""
    return early_window(RunConfig.from_mapping({k: rec[k] for k in FIELDS}))


def _references(rec: Mapping[str, Any]) -> dict[str, Any]:
    d = TwoPointData(float(rec["delta"]), float(rec["p"]))
    return {"mu": round(math.degrees(mu_angle(d)), 2),
            "xm_perp": round(math.degrees(d.delta) - 90.0, 2), "xp_perp": 90.0}


def _angle_panel(ctx: _Ctx, lines: list[dict[str, Any]], refs: list[dict[str, Any]],
                 x: Any, title: str) -> Any:
    alt = _alt()
    sel = ctx.test()
    sign = alt.Color("s:N", title="neuron", scale=alt.Scale(
        domain=[1, -1], range=[PALETTE["positive"], PALETTE["negative"]]),
        legend=alt.Legend(labelExpr="datum.value == 1 ? 'a_k > 0' : 'a_k < 0'"))
    log = bool(lines) and "lt" in lines[0]
    base = alt.Chart(ctx.data(lines)).transform_filter(sel)
    if log:
        base = base.transform_flatten(["lt", "a"]).transform_calculate(t="pow(10, datum.lt)")
    else:
        base = base.transform_flatten(["t", "a"])
    neurons = (base.mark_line(clip=True, strokeWidth=1, opacity=0.7)
               .encode(x=x, y=alt.Y("a:Q", title="direction in the data plane (deg)",
                                    scale=alt.Scale(domain=[-180, 180]),
                                    axis=alt.Axis(values=list(range(-180, 181, 45)))),
                       detail="k:N", color=sign))
    mu_rule = _ref_rules(ctx, refs, sel, "mu", PALETTE["mu"])
    perp = [_ref_rules(ctx, refs, sel, k, PALETTE["reference"], (2, 3)) for k in ("xm_perp",
                                                                            "xp_perp")]
    return alt.layer(neurons, mu_rule, *perp).properties(
        width=_W, height=_H, title=f"{title} (green: μ; grey dotted: x−⊥, x+⊥)")


def _phase1(ctx: _Ctx, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    alt = _alt()
    recs = [r for r in records if ctx.keep(r)]
    lines, refs, fates, bounds = [], [], [], []
    for rec in recs:
        key = _point(rec)
        hi = 3.0 * rec["t_condensed"] if rec["t_condensed"] else rec["horizon"]
        hi = min(hi, rec["t_escape"] or hi)
        lines += _neuron_rows(rec, key, t_hi=hi)
        refs.append({**key, **_references(rec)})
        fates.append({**key, **_fate_rows(rec)})
        bounds.append({**key, **_bound_rows(rec)})
    sel = ctx.test()
    x = alt.X("t:Q", title="time t (Phase I window)", axis=alt.Axis(tickCount=6))
    panel_a = _angle_panel(ctx, lines, refs, x, "(a) directions in Phase I")
    yq = alt.Y("y:Q", title=None, scale=alt.Scale(domain=[-0.7, 1.7]), axis=alt.Axis(
        values=[0, 1], grid=False,
        labelExpr="datum.value == 1 ? 'positive a_k' : 'negative a_k'"))
    xq = alt.X("lo:Q", title="initial direction (deg)", scale=alt.Scale(domain=[-180, 180]),
               axis=alt.Axis(values=list(range(-180, 181, 45))))
    band = (alt.Chart(ctx.data(bounds)).transform_filter(sel)
            .transform_flatten(["g", "lo", "hi"])
            .transform_calculate(y="datum.g - 0.45", y2="datum.g + 0.45")
            .mark_rect(opacity=0.25, color=PALETTE["theory"])
            .encode(x=xq, x2="hi:Q", y=yq, y2="y2:Q"))
    pts = (alt.Chart(ctx.data(fates)).transform_filter(sel)
           .transform_flatten(["g", "phi0", "fate", "ok", "j"])
           .transform_calculate(y="datum.g + datum.j")
           .mark_point(filled=True, size=40, opacity=0.85)
           .encode(x="phi0:Q", y=yq,
                   color=alt.Color("fate:N", title="fate (measured)", scale=alt.Scale(
                       domain=list(_FATE_ORDER), range=_fate_colors())),
                   shape=alt.Shape("ok:N", title="as predicted?", scale=alt.Scale(
                       domain=["yes", "no"], range=["circle", "cross"]))))
    panel_b = alt.layer(band, pts).properties(
        width=_W, height=_H, title="(b) fate map (band: predicted survivors)")
    return _assemble(ctx, [panel_a, panel_b], _readout_rows(recs, "phase1"))


def _fate_rows(rec: Mapping[str, Any]) -> dict[str, list[Any]]:
    t = np.asarray(rec["t"], dtype=float)
    first = int(np.asarray(rec["angle_t"])[0])
    assert t[first] == 0.0
    phi0 = rec["angles"][0]
    return {"g": [1 if s > 0 else 0 for s in rec["sign"]],
            "j": [round(0.35 * ((k % 7) / 3.0 - 1.0), 3) for k in range(len(phi0))],
            "phi0": list(phi0), "fate": list(rec["fate"]),
            "ok": ["yes" if a == b else "no" for a, b in zip(rec["fate"], rec["fate_theory"],
                                                             strict=True)]}


def _bound_rows(rec: Mapping[str, Any]) -> dict[str, list[Any]]:
    b = fate_boundaries(TwoPointData(float(rec["delta"]), float(rec["p"])))
    return {"g": [1, 0],
            "lo": [round(math.degrees(b[g][0]), 2) for g in ("positive", "negative")],
            "hi": [round(math.degrees(b[g][1]), 2) for g in ("positive", "negative")]}


def _phase2(ctx: _Ctx, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    alt = _alt()
    recs = [r for r in records if ctx.keep(r)]
    t_hi = max(min(1.3 * (r["t_plateau"] or r["t_escape"] or r["horizon"]), r["horizon"])
               for r in recs)
    curves, marks = [], []
    for rec in recs:
        t = np.asarray(rec["t"], dtype=float)
        idx = _lin_idx(t, t_hi)
        curves.append({**_point(rec), "t": _series(rec, "t", idx),
                       "L": _series(rec, "L", idx), "fp": _series(rec, "f_plus", idx),
                       "fm": _series(rec, "f_minus", idx)})
        marks.append({**_point(rec), "esc": _sig(rec["t_escape"]),
                      "esc_pred": _sig(rec["t_escape_pred_params"]),
                      "level": 1.0 - float(rec["p"]) if rec["regime"] == "main" else None})
    sel = ctx.test()
    x = _time_x("time t", [0.0, t_hi], log=False)
    loss = (alt.Chart(ctx.data(curves)).transform_filter(sel)
            .transform_flatten(["t", "L"])
            .mark_line(clip=True, color=PALETTE["loss"], strokeWidth=2)
            .encode(x=x, y=alt.Y("L:Q", title="loss L", scale=alt.Scale(domain=[0, 1.05]))))
    mk = alt.Chart(ctx.data(marks)).transform_filter(sel)
    esc = mk.mark_rule(clip=True, color=PALETTE["loss"], strokeWidth=1.5).encode(x="esc:Q")
    theory = {"clip": True, "color": PALETTE["theory"], "strokeWidth": 2}
    pred = mk.mark_rule(strokeDash=[6, 3], **theory).encode(x="esc_pred:Q")
    level = mk.mark_rule(strokeDash=[2, 2], **theory).encode(y="level:Q")
    panel_a = alt.layer(loss, esc, pred, level).properties(
        width=_W, height=_H, title="(a) loss; escape measured (black), predicted (pink)")
    outs = (alt.Chart(ctx.data(curves)).transform_filter(sel)
            .transform_flatten(["t", "fp", "fm"])
            .transform_fold(["fp", "fm"], as_=["point", "f"])
            .transform_calculate(point="datum.point == 'fp' ? 'f(x+)' : 'f(x−)'")
            .mark_line(clip=True, strokeWidth=2)
            .encode(x=x, y=alt.Y("f:Q", title="output"), color=alt.Color(
                "point:N", title=None, scale=alt.Scale(
                    domain=["f(x+)", "f(x−)"],
                    range=[PALETTE["positive"], PALETTE["negative"]]))))
    panel_b = alt.layer(outs, esc, pred).properties(
        width=_W, height=_H, title="(b) outputs on the two points")
    return _assemble(ctx, [panel_a, panel_b], _readout_rows(recs, "phase2"))


def _phase3(ctx: _Ctx, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    alt = _alt()
    t_hi = max(2.0 * (r["t_phase4"] or r["horizon"]) for r in records)
    curves, points, fits = [], [], []
    for rec in records:
        t = np.asarray(rec["t"], dtype=float)
        idx = _log_idx(t, 1.0, 120, hi=t_hi)
        curves.append({**_point(rec), "kap": f"1e{round(math.log10(rec['kappa']))}",
                       "t": _series(rec, "t", idx), "L": _series(rec, "L", idx)})
        ell = math.log(1.0 / float(rec["kappa"]))
        points.append({**_point(rec), "ell": [ell, ell],
                       "when": [_sig(rec["t_plateau_escape"]), _sig(rec["t_reactivation"])],
                       "what": ["plateau escape", "release"]})
    for (d, p), line in _slope_lines(ctx, records).items():
        fits.append({"delta": d, "p": p, **line})
    sel = ctx.test(("p", "delta"))
    x = _time_x("time t (log scale)", [1.0, t_hi], log=True)
    loss = (alt.Chart(ctx.data(curves)).transform_filter(sel)
            .transform_flatten(["t", "L"]).transform_filter("datum.L > 0")
            .mark_line(clip=True, strokeWidth=2)
            .encode(x=x, y=alt.Y("L:Q", title="loss L", scale=alt.Scale(type="log")),
                    color=alt.Color("kap:N", title="κ", scale=alt.Scale(scheme=_SEQUENTIAL),
                                    sort=[f"1e{round(math.log10(k))}"
                                          for k in ctx.grid.kappa])))
    panel_a = loss.properties(width=_W, height=_H, title="(a) loss for every κ")
    ells = [math.log(1.0 / k) for k in ctx.grid.kappa]
    pts = (alt.Chart(ctx.data(points)).transform_filter(sel)
           .transform_flatten(["ell", "when", "what"]).transform_filter("datum.when != null")
           .mark_point(filled=True, size=70)
           .encode(x=alt.X("ell:Q", title="log(1/κ)", scale=alt.Scale(
                       domain=[0.9 * min(ells), 1.05 * max(ells)])),
                   y=alt.Y("when:Q", title="time t"),
                   color=alt.Color("what:N", title=None, scale=alt.Scale(
                       domain=["plateau escape", "release"],
                       range=[PALETTE["loss"], PALETTE["negative"]]))))
    fit = (alt.Chart(ctx.data(fits or [{"delta": -1.0, "p": -1.0}]))
           .transform_filter(sel)
           .mark_rule(clip=True, color=PALETTE["theory"], strokeDash=[6, 3], strokeWidth=2)
           .encode(x="x0:Q", x2="x1:Q", y="y0:Q", y2="y1:Q"))
    panel_b = alt.layer(pts, fit).properties(
        width=_W, height=_H, title="(b) escape and release times; predicted slope (pink)")
    at_kappa = ctx.start["kappa"]
    rows = _readout_rows(records, "phase3",
                         keep=lambda r: math.isclose(r["kappa"], at_kappa, rel_tol=1e-9))
    return _assemble(ctx, [panel_a, panel_b], rows)


def _slope_lines(ctx: _Ctx, records: Sequence[Mapping[str, Any]]
                 ) -> dict[tuple[float, float], dict[str, float]]:
    """Per (Δ, p): the predicted slope's line through the measured points' centroid.

    The book predicts the slope of the plateau-escape time in log(1/κ), not its O(1)
    constant, so the line is anchored at the mean of the measured points.
    """
    out: dict[tuple[float, float], dict[str, float]] = {}
    groups: dict[tuple[float, float], list[tuple[float, float]]] = {}
    for r in records:
        if r["t_plateau_escape"] is not None:
            groups.setdefault((r["delta"], r["p"]), []).append(
                (math.log(1.0 / r["kappa"]), float(r["t_plateau_escape"])))
    for (d, p), pts in groups.items():
        data = TwoPointData(d, p)
        try:
            s = plateau_escape_slope(data, "corrected", kappa=ctx.fixed.get(
                "kappa", ctx.grid.kappa[len(ctx.grid.kappa) // 2]))
        except ValueError:  # not derived outside the main regime
            continue
        xs, ys = np.array([q[0] for q in pts]), np.array([q[1] for q in pts])
        x0, x1 = float(xs.min()), float(xs.max())
        xm, ym = float(xs.mean()), float(ys.mean())
        out[(d, p)] = {"x0": x0, "x1": x1, "y0": ym + s * (x0 - xm), "y1": ym + s * (x1 - xm)}
    return out


def _phase4(ctx: _Ctx, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    alt = _alt()
    recs = [r for r in records if ctx.keep(r)]
    curves, limits, ratios = [], [], []
    for rec in recs:
        t = np.asarray(rec["t"], dtype=float)
        idx = _log_idx(t, 1.0, 120)
        lim = final_margin(TwoPointData(float(rec["delta"]), float(rec["p"])))
        curves.append({**_point(rec), "t": _series(rec, "t", idx),
                       "g": _series(rec, "margin", idx)})
        limits.append({**_point(rec), "lim": _sig(lim)})
        ratios.append({**_point(rec), **_rate_ratio(rec, idx)})
    on_p = ctx.test(("p",))
    sel = ctx.test()
    here = ctx.test(("delta",))
    x = _time_x("time t (log scale)", [1.0, float(ctx.grid.t_max)], log=True)
    color = alt.Color("delta:O", title="Δ", scale=alt.Scale(scheme=_SEQUENTIAL))
    width = alt.condition(here, alt.value(3.0), alt.value(1.0))
    opacity = alt.condition(here, alt.value(1.0), alt.value(0.35))
    marg = (alt.Chart(ctx.data(curves)).transform_filter(on_p)
            .transform_flatten(["t", "g"]).transform_filter("datum.g > 0")
            .mark_line(clip=True).encode(x=x, y=alt.Y("g:Q", title="normalized margin γ(t)"),
                                color=color, strokeWidth=width, opacity=opacity,
                                detail="delta:O"))
    lim = (alt.Chart(ctx.data(limits)).transform_filter(on_p)
           .mark_rule(clip=True, strokeDash=[6, 3]).encode(y="lim:Q", color=color, opacity=opacity,
                                                strokeWidth=width))
    panel_a = alt.layer(marg, lim).properties(
        width=_W, height=_H, title="(a) margin; dashed: its limit sin Δ / 4")
    rat = (alt.Chart(ctx.data(ratios)).transform_filter(sel)
           .transform_flatten(["t", "r"]).mark_line(clip=True, color=PALETTE["loss"], strokeWidth=2)
           .encode(x=x, y=alt.Y("r:Q", title="4 γ(t) t log(t) L(t)",
                                scale=alt.Scale(domain=[0.5, 2.0], clamp=True))))
    one = (alt.Chart(ctx.data([{"y": 1.0}]))
           .mark_rule(clip=True, color=PALETTE["theory"], strokeDash=[6, 3], strokeWidth=2)
           .encode(y="y:Q"))
    panel_b = alt.layer(rat, one).properties(
        width=_W, height=_H, title="(b) loss against the rate 1/(4γ t log t)")
    return _assemble(ctx, [panel_a, panel_b], _readout_rows(recs, "phase4"))


def _rate_ratio(rec: Mapping[str, Any], idx: np.ndarray) -> dict[str, list[Any]]:
    r""":math:`4\gamma(t)\,t\log t\,L(t)` after the start of Phase IV (:math:`\to 1`)."""
    t0 = rec["t_phase4"]
    ts, rs = [], []
    if t0 is not None:
        for i in idx:
            t, g, L = rec["t"][i], rec["margin"][i], rec["L"][i]
            if t > max(t0, math.e) and g is not None and L is not None and g > 0:
                ts.append(t)
                rs.append(_sig(4.0 * g * t * math.log(t) * L))
    return {"t": ts, "r": rs}


_BUILDERS = {"setting": _setting, "phase1": _phase1, "phase2": _phase2, "phase3": _phase3,
             "phase4": _phase4}


# ----------------------------------------------------------------------------- the object
_CSS = """<style>
.reluflow-explorer { background: #ffffff; color: #222222; border: 1px solid #cccccc;
  border-radius: 6px; padding: 0.6em 0.8em; margin: 1em 0; overflow-x: auto; }
.reluflow-explorer .vega-bindings { display: flex; flex-wrap: wrap; gap: 0.4em 1.6em;
  margin-bottom: 0.5em; font-size: 0.95em; }
.reluflow-explorer .vega-bind label { display: inline-flex; align-items: center;
  gap: 0.5em; }
.reluflow-explorer .vega-bind input[type=range] { width: 10em; }
.reluflow-explorer-note { font-size: 0.9em; margin: 0 0 0.5em 0; }
</style>"""

_JS_STRING = re.compile(r"</", re.IGNORECASE)


@dataclass(frozen=True)
class Explorer:
    """A chapter's static explorer: its Vega-Lite specification and its HTML.

    Attributes
    ----------
    chapter : str
        A :data:`reluflow.runs.explorers.CHAPTERS` name.
    spec : dict
        The Vega-Lite specification (data included).
    note : str
        One sentence above the sliders: the grid and what the sliders move.
    """

    chapter: str
    spec: dict[str, Any]
    note: str

    @property
    def element_id(self) -> str:
        """The ``id`` of the wrapping element (one explorer per chapter page)."""
        return f"reluflow-explorer-{self.chapter}"

    def html(self) -> str:
        """The element the page shows: ``<div class="reluflow-explorer">`` with the figure.

        It holds the sliders' container, the chart's container (with a fallback sentence,
        replaced when Vega draws) and one ``vegaEmbed`` call; the page must load
        :data:`BUNDLE_NAME` first (the book's Sphinx extension does, as a module).
        """
        spec = _JS_STRING.sub(r"<\\/", json.dumps(self.spec, separators=(",", ":")))
        sel = f"#{self.element_id}"
        opts = json.dumps({"renderer": "svg", "actions": False,
                           "bind": f"{sel} .reluflow-explorer-controls"})
        return (
            f'<div class="reluflow-explorer" id="{self.element_id}">{_CSS}'
            f'<p class="reluflow-explorer-note">{html.escape(self.note)}</p>'
            '<div class="reluflow-explorer-controls"></div>'
            '<div class="reluflow-explorer-chart"><em>This explorer is drawn in the web '
            "page of the built book (by its copy of Vega); with a live kernel, use the "
            "interactive panel of this section instead.</em></div>"
            f'<script type="module">vegaEmbed(document.querySelector("{sel} '
            f'.reluflow-explorer-chart"), {spec}, {opts});</script></div>'
        )

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        """What a plain-text front end shows: which explorer, and where it is drawn."""
        return (f"Static explorer ({self.chapter}), drawn in the built book's page: "
                f"{self.note}")

    def with_values(self, **values: float) -> dict[str, Any]:
        """The specification with the sliders moved to ``values`` (parameter name: value).

        Names are those of the data: ``delta``, ``p``, ``log10_kappa``.
        """
        spec = json.loads(json.dumps(self.spec))
        names = {prm["name"] for prm in spec.get("params", [])}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown slider {unknown[0]!r}; this explorer has "
                             f"{', '.join(sorted(names))}")
        for prm in spec["params"]:
            if prm["name"] in values:
                b = prm["bind"]
                val = float(values[prm["name"]])
                if not b["min"] - 1e-9 <= val <= b["max"] + 1e-9:
                    raise ValueError(f"{prm['name']} must lie in [{b['min']}, {b['max']}], "
                                     f"got {val}")
                prm["value"] = val
        return spec

    def svg(self, **values: float) -> str:
        """The figure as SVG with the sliders at ``values`` (``vl_convert``, no browser)."""
        import vl_convert as vlc

        out: str = vlc.vegalite_to_svg(self.with_values(**values),
                                       vl_version=vegalite_version())
        return out


def explorer(chapter: str, records: Sequence[Mapping[str, Any]], grid: ExplorerGrid, *,
             delta: float, p: float, kappa: float) -> Explorer:
    r"""The static explorer of ``chapter`` over the runs of ``grid``.

    Parameters
    ----------
    chapter : str
        One of :data:`reluflow.runs.explorers.CHAPTERS`; its sliders move the axes listed
        there, the other axes stay at the grid point nearest to the chapter's values.
    records : sequence of mapping
        :func:`reluflow.runs.explorers.grid_records` of ``grid`` (one per configuration).
    grid : ExplorerGrid
    delta, p, kappa : float
        The chapter's parameters: the sliders start at the nearest grid point.

    Returns
    -------
    Explorer
    """
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {', '.join(CHAPTERS)}, got {chapter!r}")
    if not isinstance(grid, ExplorerGrid):
        raise ValueError(f"grid must be an ExplorerGrid, got {type(grid).__name__}")
    want = {(c.delta, c.p, c.kappa) for c in grid.configs()}
    have = {(r.get("delta"), r.get("p"), r.get("kappa")) for r in records}
    if want - have:
        d, pp, k = sorted(want - have)[0]
        raise ValueError(f"records must hold every run of the grid; missing delta={d}, "
                         f"p={pp}, kappa={k}")
    recs = [r for r in records if (r.get("delta"), r.get("p"), r.get("kappa")) in want]
    nd, npp, nk = grid.nearest(delta=delta, p=p, kappa=kappa)
    start = {"delta": nd, "p": npp, "kappa": nk}
    fixed = {k: val for k, val in start.items() if k not in CHAPTERS[chapter]}
    if chapter == "phase3":
        fixed = {}
    ctx = _Ctx(chapter, grid, start, fixed)
    spec = _BUILDERS[chapter](ctx, recs)
    return Explorer(chapter, spec, _note(ctx, recs))


def _note(ctx: _Ctx, records: Sequence[Mapping[str, Any]]) -> str:
    g = ctx.grid
    names = {"delta": "Δ", "p": "p", "kappa": "κ"}
    moving = ", ".join(names[a] for a in ctx.sliders())
    held = ", ".join(f"{names[k]} = {val:g}".replace("e-0", "e-") for k, val in ctx.fixed.items())
    t_max = f"{g.t_max:g}".replace("e+", "e")
    return (f"{len(records)} exact runs precomputed when the book was built (m = {g.m}, "
            f"seed {g.seed}, to t = {t_max}); the sliders move {moving} over the grid"
            + (f" at {held}" if held else "") + " (arrow keys move a focused slider).")


def chapter_explorer(chapter: str, *, delta: float, p: float, kappa: float, fast: bool,
                     cache: str | Path, workers: int = 2) -> Explorer:
    """The explorer of a book chapter: the book's grid, computed or read from ``cache``.

    :func:`reluflow.runs.explorers.book_grid` ``(fast)`` run by
    :func:`reluflow.runs.explorers.grid_records` (cached under ``cache`` by run mode and
    code, ``workers`` processes for what is left to compute), then :func:`explorer`.
    """
    from reluflow.runs.explorers import book_grid, grid_records

    grid = book_grid(fast)
    records = grid_records(grid, cache, bool(fast), workers=workers)
    return explorer(chapter, records, grid, delta=delta, p=p, kappa=kappa)
