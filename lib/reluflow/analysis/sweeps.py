r"""The scaling chapter's measurements: phase times over grids of runs, against predictions.

The grids are run by :func:`reluflow.runs.scaling.run_grid`; each run's result is the flat
dictionary of :func:`reluflow.runs.scaling.run_dense` (phase times, regimes, plateau loss,
drift, ...).  This module turns lists of such dictionaries into fitted slopes, the
predictions of :mod:`reluflow.analysis.theory` next to them, and Markdown tables, one
definition each, so that the chapter only runs the grids and shows the results.
Slopes are least-squares fits (:func:`reluflow.analysis.measure.fit_line`) in
:math:`\log(1/\kappa)` or :math:`\log m`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reluflow.analysis.geometry import effective_data, regime
from reluflow.analysis.measure import fit_line
from reluflow.analysis.text import markdown_table, math_number
from reluflow.analysis.theory import (
    escape_rate,
    plateau_escape_slope_prediction,
    plateau_exit_loss,
    reactivation_threshold,
)
from reluflow.engine.data import TwoPointData

__all__ = [
    "PHASE_NAMES",
    "REGIME_NAMES",
    "DiagramPoint",
    "Row",
    "diagram_points",
    "diagram_table",
    "ell",
    "kappa_width_table",
    "logistic_pairs",
    "logistic_table",
    "slope_error",
    "slopes",
    "summary_table",
    "unbalanced_groups",
    "unbalanced_table",
]

Result = Mapping[str, Any]

#: Names of the phase times in tables.
PHASE_NAMES = {"t_condensed": "end of Phase I", "t_escape": "saddle escape",
               "t_plateau": "plateau starts", "t_plateau_escape": "plateau escape",
               "t_phase4": "Phase IV starts"}

#: Names of the regimes in tables.
REGIME_NAMES = {"main": "main", "mu-plus-only": "intermediate", "mirror": "mirror"}


def _num(x: Any, fmt: str = ".3g", missing: str = "not reached") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return missing
    return math_number(float(x), fmt)


def ell(result: Result) -> float:
    r""":math:`\log(1/\max(\kappa, \kappa_a))` of a run (:math:`\kappa_a` only if unbalanced)."""
    return math.log(1.0 / max(float(result["kappa"]), float(result.get("kappa_a") or 0.0)))


def slopes(results: Sequence[Result], x: Sequence[float], keys: Sequence[str]
           ) -> dict[str, float]:
    """Fitted slope of each phase time ``key`` against ``x`` (``nan`` if it cannot be fitted)."""
    return {k: fit_line(x, [r.get(k) for r in results])[0] for k in keys}


def slope_error(results: Sequence[Result], x: Sequence[float], key: str) -> float:
    r"""Standard error of the slope fitted by :func:`slopes`, from the fit's residuals.

    .. math:: \mathrm{SE} = \sqrt{\frac{\sum_j r_j^2/(n-2)}{\sum_j (x_j - \bar x)^2}}

    over the runs where ``key`` is set; it measures how much the scatter between the runs
    (different seeds: different draws of the :math:`O(1)` terms) moves the fitted slope.
    ``nan`` with fewer than three points.

    >>> runs = [{"t": 1.0}, {"t": 2.5}, {"t": 3.0}]
    >>> round(slope_error(runs, [0.0, 1.0, 2.0], "t"), 4)
    0.2887
    """
    pts = [(float(xi), float(r[key])) for xi, r in zip(x, results, strict=True)
           if r.get(key) is not None]
    if len(pts) < 3:
        return math.nan
    xs = [p[0] for p in pts]
    s, c, _ = fit_line(xs, [p[1] for p in pts])
    mean = sum(xs) / len(xs)
    sxx = sum((xi - mean) ** 2 for xi in xs)
    rss = sum((y - (s * xi + c)) ** 2 for xi, y in pts)
    return math.sqrt(rss / (len(pts) - 2) / sxx) if sxx > 0 else math.nan


@dataclass(frozen=True)
class DiagramPoint:
    r"""One :math:`(\Delta, p)` of the phase diagram (see :func:`diagram_points`)."""

    delta: float
    p: float
    regime: str
    measured: tuple[str, ...]
    leader: int
    rate: float
    escape_ratio: float
    slope: float
    slope_predicted: float
    source: str
    length_slope: float
    times: dict[str, float | None]
    plateau_loss: float | None
    exit_predicted: float | None
    g0: float

    @property
    def agrees(self) -> bool:
        """The regime read off every run is the closed form's."""
        return all(m == self.regime for m in self.measured)


def diagram_points(results: Sequence[Result], deltas: Sequence[float], ps: Sequence[float],
                   kappas: Sequence[float]) -> list[DiagramPoint]:
    r"""Group the diagram's runs by :math:`(\Delta, p)` and fit their slopes in
    :math:`\log(1/\kappa)`; times and the plateau loss at the smallest :math:`\kappa`."""
    x = [math.log(1.0 / k) for k in kappas]
    out = []
    for dl in deltas:
        for pp in ps:
            rs = sorted((r for r in results if r["delta"] == dl and r["p"] == pp),
                        key=lambda r: -r["kappa"])
            d = TwoPointData(dl, pp)
            lam = escape_rate(d)
            pred, source = plateau_escape_slope_prediction(d, kappas)
            fits = slopes(rs, x, ["t_escape", "t_plateau_escape"])
            length = fit_line(x, [None if r["t_plateau_escape"] is None or r["t_escape"] is None
                                  else r["t_plateau_escape"] - r["t_escape"] for r in rs])[0]
            eff = effective_data(d)
            last = rs[-1]
            out.append(DiagramPoint(
                dl, pp, regime(d), tuple(r["regime_measured"] for r in rs), int(last["leader"]),
                lam, fits["t_escape"] * lam, fits["t_plateau_escape"], pred, source, length,
                {k: last[k] for k in PHASE_NAMES}, last["plateau_loss"],
                plateau_exit_loss(d, kappas[-1]),
                reactivation_threshold(eff) if eff is not None else math.nan))
    return out


def diagram_table(points: Sequence[DiagramPoint]) -> str:
    r"""The phase diagram as a Markdown table: per :math:`(\Delta, p)`, the regime (and the
    leaders' sign), the saddle escape and plateau length at the smaller :math:`\kappa`, the
    escape slope times :math:`\lambda` and the plateau-escape slope with its prediction."""
    table = []
    for q in points:
        t3, te = q.times["t_plateau_escape"], q.times["t_escape"]
        length = None if t3 is None or te is None else t3 - te
        regime_text = f"{REGIME_NAMES[q.regime]} ({'+' if q.leader > 0 else '−'})"
        if not q.agrees:
            regime_text += ", runs disagree"
        table.append([f"{q.delta:g}, {q.p:g}", regime_text, _num(te), _num(length),
                      _num(q.escape_ratio, ".4f"),
                      f"{_num(q.slope, '.3f')} ({_num(q.slope_predicted, '.3f', 'not derived')})"])
    return markdown_table(["$\\Delta$, $p$", "regime", "$t_\\mathrm{esc}$", "plateau",
                           "$\\lambda\\times$ escape slope",
                           "$T_\\mathrm{III}$ slope (predicted)"], table, "llrrrr")


def kappa_width_table(fits_k: Mapping[str, float], fits_m: Mapping[str, float],
                      predicted_k: Mapping[str, float]) -> str:
    r"""Slopes of every phase time in :math:`\log(1/\kappa)` and :math:`\log m`, with the
    predictions (:math:`dT/d\log m = -\frac12 dT/d\log(1/\kappa)`, the :math:`\kappa\sqrt m`
    rule, where the :math:`\kappa` slope is predicted)."""
    table = []
    for key, name in PHASE_NAMES.items():
        pk = predicted_k.get(key)
        pm = None if pk is None else -0.5 * pk
        table.append([name, _num(fits_k[key], ".4f"), _num(pk, ".4f", "–"),
                      _num(fits_m[key], ".4f"), _num(pm, ".4f", "–")])
    return markdown_table(["phase time", "slope in $\\log(1/\\kappa)$", "predicted",
                           "slope in $\\log m$", "predicted"], table, "lrrrr")


def unbalanced_groups(balanced: Sequence[Result], unbalanced: Sequence[Result],
                      ratios: Sequence[float]) -> dict[str, list[Result]]:
    r"""The balanced runs and the unbalanced ones grouped by :math:`\kappa_a/\kappa`."""
    groups: dict[str, list[Result]] = {"balanced": list(balanced)}
    for r in ratios:
        groups[f"$\\kappa_a/\\kappa$ = {r:g}"] = [
            x for x in unbalanced if abs(x["kappa_a"] / x["kappa"] - r) < 1e-6 * r]
    return groups


def unbalanced_table(groups: Mapping[str, Sequence[Result]], rate: float,
                     balanced_slope: float) -> tuple[str, dict[str, tuple[float, float]]]:
    r"""Slopes of :math:`t_\mathrm{esc}` and :math:`T_\mathrm{III}` in
    :math:`\log(1/\max(\kappa,\kappa_a))` per group, as a table and as ``{group: (s, s3)}``."""
    fits, table = {}, []
    for name, rs in groups.items():
        x = [ell(r) for r in rs]
        se = fit_line(x, [r["t_escape"] for r in rs])[0]
        s3 = fit_line(x, [r["t_plateau_escape"] for r in rs])[0]
        fits[name] = (se, s3)
        margin = sum(r["normalized_margin"] for r in rs) / len(rs)
        regimes = ", ".join(sorted({REGIME_NAMES.get(r["regime_measured"], "none")
                                    for r in rs}))
        table.append([name, f"{_num(se, '.4f')} ({_num(1 / rate, '.4f')})",
                      f"{_num(s3, '.4f')} ({_num(balanced_slope, '.4f')})", regimes,
                      _num(margin, ".4f")])
    header = ["initialization", "$t_\\mathrm{esc}$ slope (predicted $1/\\lambda$)",
              "$T_\\mathrm{III}$ slope (balanced)", "regime measured", "margin at $t = 10^6$"]
    return markdown_table(header, table, "lrrlr"), fits


def logistic_pairs(exponential: Sequence[Result], logistic: Sequence[Result], seed: int,
                   rate: float) -> list[dict[str, float]]:
    r"""Pair each logistic run with the exponential run of the same :math:`\kappa` and seed;
    ``pred`` is :math:`2t_\mathrm{esc}^\mathrm{exp} + \log(2\log 2)/\lambda`."""
    out = []
    for r in logistic:
        e = next(x for x in exponential if x["kappa"] == r["kappa"] and x["seed"] == seed)
        out.append({"kappa": r["kappa"], "t_log": r["t_escape"], "t_exp": e["t_escape"],
                    "pred": 2 * e["t_escape"] + math.log(2 * math.log(2)) / rate,
                    "t3_log": r["t_plateau_escape"], "t3_exp": e["t_plateau_escape"],
                    "pl_log": r["plateau_loss"], "pl_exp": e["plateau_loss"],
                    "mg_log": r["normalized_margin"], "mg_exp": e["normalized_margin"]})
    return out


def logistic_table(pairs: Sequence[Mapping[str, float]]) -> str:
    """The exponential and logistic runs side by side (Markdown)."""
    header = ["$\\kappa$", "$t_\\mathrm{esc}$: exp", "logistic (predicted)",
              "$T_\\mathrm{III}$: exp", "logistic", "margin: exp", "logistic"]
    return markdown_table(header, [
        [_num(q["kappa"], ".0e"), _num(q["t_exp"], ".4g"),
         f"{_num(q['t_log'], '.4g')} ({_num(q['pred'], '.4g')})", _num(q["t3_exp"], ".4g"),
         _num(q["t3_log"], ".4g"), _num(q["mg_exp"], ".4f"), _num(q["mg_log"], ".4f")]
        for q in pairs], "rrrrrrr")


@dataclass(frozen=True)
class Row:
    r"""One row of the measured-vs-predicted table: a quantity, its tolerance and why."""

    name: str
    setting: str
    measured: float
    predicted: float
    source: str
    tolerance: float
    why: str
    relative: bool = True

    @property
    def error(self) -> float:
        """Relative (or absolute) difference of the measured and predicted values."""
        diff = abs(self.measured - self.predicted)
        return diff / abs(self.predicted) if self.relative else diff

    @property
    def ok(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.tolerance


def summary_table(rows: Sequence[Row]) -> str:
    """The measured-vs-predicted rows as a Markdown table."""
    table = []
    for r in rows:
        err = (f"{100 * r.error:.2g} %" if r.relative else _num(r.error, ".2g"))
        tol = (f"{100 * r.tolerance:g} %" if r.relative else f"{r.tolerance:g}")
        table.append([f"{r.name} ({r.setting})", _num(r.measured, ".4g"),
                      f"{_num(r.predicted, '.4g')} ({r.source})", err, tol])
    return markdown_table(["quantity", "measured", "predicted (source)", "error", "tolerance"],
                          table, "lrlrr")
