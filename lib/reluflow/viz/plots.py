r"""Figures shared by the book's chapters, the CLI and the widgets.

Every function here draws with the object-oriented matplotlib API on an ``Axes`` it is
given (``*_panel`` and ``*_map`` functions return that ``Axes``) or builds and returns a
fresh :class:`matplotlib.figure.Figure` (never through ``pyplot``, so nothing is left
in a global figure registry and the module is safe under the ``Agg`` backend).  Every
figure has a white opaque background and labelled axes.

Geometry (see ``shared/paper/notes.md``): directions are drawn in the data plane
:math:`\operatorname{span}\{x_+, x_-\}` with the orthonormal basis

.. math::

    u_1 = x_+, \qquad u_2 = \frac{x_- - \cos\Delta\,x_+}{\sin\Delta},

so that the angle of :math:`b_k` is :math:`\operatorname{atan2}(b_k^\top u_2,
b_k^\top u_1)`, measured from :math:`x_+` towards :math:`x_-` (:math:`x_-` sits at
:math:`\Delta`, :math:`x_+^\perp` at :math:`90^\circ`, :math:`x_-^\perp` at
:math:`\Delta - 90^\circ`).  For :math:`d > 2` the component of :math:`b_k` orthogonal
to the data plane is frozen by the flow and is left out.

Colours are defined once in :data:`PALETTE`: neurons with :math:`a_k > 0` (and the
positive point :math:`x_+`) in blue, neurons with :math:`a_k < 0` (and :math:`x_-`) in
vermillion, in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from io import BytesIO
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.projections.polar import PolarAxes
from matplotlib.transforms import blended_transform_factory
from numpy.typing import ArrayLike, NDArray

from reluflow.analysis.phases import PHASE_TIMES
from reluflow.engine import checks as v
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.trajectory import Trajectory

__all__ = [
    "ANNOTATION_LABELS",
    "DEAD_COLOR",
    "FATE_COLORS",
    "PALETTE",
    "PHASES",
    "PHASE_COLORS",
    "REPORT_FIELDS",
    "BookFigure",
    "annotated_overview",
    "direction_time_map",
    "fate_map",
    "final_state_labels",
    "group_series_panel",
    "loss_panel",
    "margin_panel",
    "neuron_subset",
    "new_figure",
    "norms_panel",
    "outputs_panel",
    "overview_annotations",
    "overview_caption",
    "overview_figure",
    "phase_intervals",
    "plane_basis",
    "plane_coords",
    "polar_directions",
    "reference_angles",
    "shade_phases",
    "style",
]

Array = NDArray[np.float64]

#: The single colour palette of the book (Okabe-Ito colour-blind safe hues).
PALETTE: dict[str, str] = {
    "positive": "#0072B2",  # a_k > 0, and the point x_+ (label +1)
    "negative": "#D55E00",  # a_k < 0, and the point x_- (label -1)
    "loss": "#000000",
    "reference": "#555555",
    "mu": "#009E73",
    "theory": "#CC79A7",  # predicted levels ("this book's derivation")
}

#: The four phases, in order.
PHASES = ("I", "II", "III", "IV")

#: Light background tints of the four phases.
PHASE_COLORS: dict[str, str] = {
    "I": "#EDE3F7",
    "II": "#FDF1D3",
    "III": "#DFF2E1",
    "IV": "#E9E9E9",
}

#: Full names of the four phases (the paper's picture).
PHASE_NAMES: dict[str, str] = {
    "I": "initial condensation",
    "II": "saddle to plateau",
    "III": "plateau escape",
    "IV": "convergence",
}

#: Attributes read from a PhaseReport-like object (or keys of its dict).
REPORT_FIELDS = PHASE_TIMES

# Marker lines for the event times inside phases: (label, line style).
_MARKERS: dict[str, tuple[str, Any]] = {
    "t_escape": ("saddle escape", (0, (4, 2))),
    "t_reactivation": ("reactivation", (0, (1, 1.5))),
    "t_plateau_escape": ("plateau escape", (0, (6, 2, 1, 2))),
}

#: Colours of fate / final-state labels (distinct from the two sign colours); labels
#: containing "dead" are always drawn in :data:`DEAD_COLOR`.
FATE_COLORS: tuple[str, ...] = (
    "#009E73", "#CC79A7", "#E6C300", "#8C564B", "#17BECF", "#7B3294", "#BCBD22", "#000000",
)

#: Colour of dead neurons in fate maps.
DEAD_COLOR = "#B0B0B0"

_RC: dict[str, Any] = {
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.labelsize": 10.0,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "axes.grid": False,
    "legend.framealpha": 0.9,
    "mathtext.fontset": "dejavusans",
}

TIME_LABEL = "time $t$ (gradient-flow time, log scale)"


@contextmanager
def style() -> Iterator[None]:
    """Context manager applying the book's rcParams locally (restored on exit).

    Examples
    --------
    >>> with style():
    ...     fig = new_figure((6.0, 4.0))
    ...     ax = fig.add_subplot()
    """
    rc: Any = _RC
    with mpl.rc_context(rc):
        yield


class BookFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that displays itself in Jupyter.

    Figures built without ``pyplot`` are not picked up by the inline backend, so a cell
    ending in ``fig`` would show only its ``repr``; ``_repr_png_`` makes IPython
    (and MyST-NB's ``glue``) render it as a PNG.
    """

    #: Resolution of the notebook rendering.
    repr_dpi: float = 100.0

    def _repr_png_(self) -> bytes:
        buf = BytesIO()
        self.savefig(buf, format="png", dpi=self.repr_dpi, facecolor="white")
        return buf.getvalue()


def new_figure(figsize: tuple[float, float] = (6.4, 4.8), **kw: Any) -> BookFigure:
    """A new white, opaque :class:`BookFigure` (``kw`` go to ``Figure``, e.g. ``layout``).

    Use inside :func:`style` for the book's fonts; not registered with ``pyplot``.
    """
    return _new_figure(figsize, **kw)


def _new_figure(figsize: tuple[float, float], **kw: Any) -> BookFigure:
    fig = BookFigure(figsize=figsize, **kw)
    fig.patch.set_facecolor("white")
    fig.patch.set_alpha(1.0)
    return fig


# --------------------------------------------------------------------------- geometry
def plane_basis(data: Dataset) -> tuple[Array, Array, float, float]:
    r"""Orthonormal basis of the data plane and the two-point geometry.

    Uses the first point with label +1 as :math:`x_+` and the first with label -1 as
    :math:`x_-` (for :class:`~reluflow.engine.data.TwoPointData` these are its two points).

    Returns
    -------
    u1, u2 : ndarray, shape (d,)
        :math:`u_1 = x_+/\lVert x_+\rVert`, :math:`u_2` the unit vector of
        :math:`x_- - (x_-^\top u_1) u_1`.
    delta : float
        Angle :math:`\Delta \in (0, \pi)` between :math:`x_+` and :math:`x_-`.
    p : float
        Relative weight :math:`p = w_+ / (w_+ + w_-)` of :math:`x_+`.
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    pos = np.flatnonzero(data.y > 0)
    neg = np.flatnonzero(data.y < 0)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("data must contain at least one point with label +1 and one with -1")
    ip, im = int(pos[0]), int(neg[0])
    xp, xm = data.X[ip], data.X[im]
    npl = float(np.linalg.norm(xp))
    if npl == 0.0:
        raise ValueError("data: the first positive point must be non-zero")
    u1 = xp / npl
    w = xm - (xm @ u1) * u1
    nw = float(np.linalg.norm(w))
    if nw <= 1e-12 * max(float(np.linalg.norm(xm)), 1.0):
        raise ValueError("data: x_+ and x_- must not be parallel (angle delta in (0, pi))")
    u2 = w / nw
    delta = math.atan2(nw, float(xm @ u1))
    wp, wm = float(data.weights[ip]), float(data.weights[im])
    return u1, u2, delta, wp / (wp + wm)


def plane_coords(B: ArrayLike, data: Dataset) -> tuple[Array, Array]:
    r"""In-plane angle and norm of input weight vectors.

    .. math::

        \phi_k = \operatorname{atan2}(b_k^\top u_2,\ b_k^\top u_1) \in (-\pi, \pi], \qquad
        r_k = \sqrt{(b_k^\top u_1)^2 + (b_k^\top u_2)^2},

    with :math:`(u_1, u_2)` from :func:`plane_basis` (:math:`u_1 = x_+`).

    Parameters
    ----------
    B : array_like, shape (..., d)
        Input weights (for example ``traj.B`` of shape ``(T, m, d)``).
    data : Dataset
        Defines the data plane.

    Returns
    -------
    angle : ndarray, shape (...)
        :math:`\phi_k` in radians, measured from :math:`x_+` towards :math:`x_-`.
    norm : ndarray, shape (...)
        :math:`r_k`, the norm of the projection on the data plane.
    """
    u1, u2, _, _ = plane_basis(data)
    Ba = np.asarray(B, dtype=np.float64)
    if Ba.ndim < 1 or Ba.shape[-1] != data.d:
        raise ValueError(f"B must have shape (..., d) with d = data.d = {data.d}, got {Ba.shape}")
    c1 = Ba @ u1
    c2 = Ba @ u2
    return np.arctan2(c2, c1), np.hypot(c1, c2)


def reference_angles(data: Dataset) -> dict[str, float]:
    r"""Angles (radians, from :math:`x_+`) of the reference directions of the setting.

    :math:`x_+` at 0, :math:`x_-` at :math:`\Delta`,
    :math:`\mu = p x_+ - (1-p) x_-` at
    :math:`\operatorname{atan2}(-(1-p)\sin\Delta,\ p - (1-p)\cos\Delta)`,
    :math:`x_-^\perp` at :math:`\Delta - \pi/2` and :math:`x_+^\perp` at :math:`\pi/2`.
    Keys are matplotlib mathtext labels.
    """
    _, _, delta, p = plane_basis(data)
    mu = math.atan2(-(1.0 - p) * math.sin(delta), p - (1.0 - p) * math.cos(delta))
    return {
        "$x_+$": 0.0,
        "$x_-$": delta,
        r"$\mu$": mu,
        r"$x_-^\perp$": delta - math.pi / 2,
        r"$x_+^\perp$": math.pi / 2,
    }


def _ref_colors() -> dict[str, str]:
    return {
        "$x_+$": PALETTE["positive"],
        "$x_-$": PALETTE["negative"],
        r"$\mu$": PALETTE["mu"],
        r"$x_-^\perp$": PALETTE["reference"],
        r"$x_+^\perp$": PALETTE["reference"],
    }


def neuron_subset(m: int, max_neurons: int = 300, seed: int = 0) -> NDArray[np.int64]:
    """Sorted indices of at most ``max_neurons`` of ``m`` neurons, drawn without replacement.

    Uses ``numpy.random.default_rng(seed)``; all indices when ``m <= max_neurons``.
    """
    mm = v.int_at_least("m", m, 0)
    mx = v.int_at_least("max_neurons", max_neurons, 1)
    sd = v.int_at_least("seed", seed, 0)
    if mm <= mx:
        return np.arange(mm, dtype=np.int64)
    rng = np.random.default_rng(sd)
    return np.sort(rng.choice(mm, size=mx, replace=False)).astype(np.int64)


def _check_traj(traj: Any) -> Trajectory:
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj must be a reluflow.Trajectory, got {type(traj).__name__}")
    if traj.t.size == 0:
        raise ValueError("traj must hold at least one recorded time")
    return traj


def _check_data(traj: Trajectory, data: Dataset | None) -> Dataset:
    if data is None:
        return traj.data
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow.Dataset, got {type(data).__name__}")
    if data.d != traj.B.shape[-1]:
        raise ValueError(
            f"data.d = {data.d} does not match the trajectory's d = {traj.B.shape[-1]}"
        )
    return data


def _positive_times(traj: Trajectory) -> NDArray[np.bool_]:
    mask = traj.t > 0
    if not np.any(mask):
        raise ValueError("traj must hold at least one recorded time t > 0 for a log-time axis")
    return mask


def _time_index(traj: Trajectory, index: int) -> int:
    T = traj.t.size
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise ValueError(f"index must be an integer in [-{T}, {T - 1}], got {index!r}")
    if not -T <= int(index) < T:
        raise ValueError(f"index must be an integer in [-{T}, {T - 1}], got {index!r}")
    return int(index) % T


def _signs(traj: Trajectory, index: int = -1) -> NDArray[np.int64]:
    """Sign of a_k of each recorded neuron at recorded time ``index``.

    Balanced runs never change sign; unbalanced ones can (through a_k = 0).  Where a_k is
    exactly 0 the sign at the final time, else at the initial time, is used.
    """
    s = np.sign(traj.a[index]).astype(np.int64)
    for j in (-1, 0):
        zero = s == 0
        if not np.any(zero):
            break
        s[zero] = np.sign(traj.a[j, zero]).astype(np.int64)
    return s


def _alive(traj: Trajectory, index: int) -> NDArray[np.bool_]:
    """Active (pattern +1) on at least one data point at recorded time ``index``."""
    return np.any(traj.pattern[index] > 0, axis=-1)


# --------------------------------------------------------------------------- phases
def _as_time(name: str, value: Any) -> float | None:
    if value is None:
        return None
    x = v.real_scalar(name, value)
    if x < 0:
        raise ValueError(f"{name} must be a time >= 0 or None, got {value!r}")
    return x


def phase_intervals(
    report: Any, t_end: float = math.inf
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    r"""Turn phase information into intervals and marker times.

    Parameters
    ----------
    report : None, mapping or PhaseReport-like object
        * ``None``: nothing.
        * A mapping ``{"I": (t0, t1), "II": ..., "III": ..., "IV": ...}`` (any subset,
          ``t1`` may be ``math.inf`` for "until the end"; a value ``None`` skips that phase).
        * An object with attributes, or a mapping with keys, :data:`REPORT_FIELDS`
          (floats or ``None``), e.g. ``reluflow.analysis.phases.PhaseReport`` or its ``to_dict()``.
          Then Phase I is :math:`[0, t_\mathrm{condensed}]`, II is
          :math:`[t_\mathrm{condensed}, t_\mathrm{plateau}]`, III is
          :math:`[t_\mathrm{plateau}, t_\mathrm{phase4}]` and IV is
          :math:`[t_\mathrm{phase4}, t_\mathrm{end}]`; a phase with a missing (``None``)
          boundary is left out.  ``t_escape``, ``t_reactivation`` and
          ``t_plateau_escape`` become marker times.
    t_end : float
        End of the time window (the end of Phase IV).

    Returns
    -------
    intervals : dict
        Phase name to ``(t0, t1)`` with ``t0 < t1``.
    markers : dict
        Field name (``"t_escape"``, ...) to time, for the fields that are set.
    """
    if report is None:
        return {}, {}
    if isinstance(report, Mapping):
        keys = set(report)
        if keys and keys <= set(PHASES):
            out: dict[str, tuple[float, float]] = {}
            pair = "must be a pair (t0, t1) with 0 <= t0 < t1, got"
            for ph in PHASES:
                val = report.get(ph)
                if val is None:
                    continue
                try:
                    t0, t1 = val
                except (TypeError, ValueError):
                    raise ValueError(f"phase_times[{ph!r}] {pair} {val!r}") from None
                a = _as_time(f"phase_times[{ph!r}][0]", t0)
                b = v.real_scalar(f"phase_times[{ph!r}][1]", t1) if t1 != math.inf else math.inf
                if a is None or not b > a:
                    raise ValueError(f"phase_times[{ph!r}] {pair} {val!r}")
                out[ph] = (a, min(b, t_end))
            return out, {}
        if not keys & set(REPORT_FIELDS):
            raise ValueError(
                "phase_times must map phase names 'I'..'IV' to (t0, t1) pairs or hold the fields "
                f"{REPORT_FIELDS}; got keys {sorted(map(str, keys))}"
            )
        fields = {k: _as_time(k, report.get(k)) for k in REPORT_FIELDS}
    else:
        if not any(hasattr(report, k) for k in REPORT_FIELDS):
            raise ValueError(
                "phase_times must be None, a dict of phases, or an object with attributes "
                f"{REPORT_FIELDS}; got {type(report).__name__}"
            )
        fields = {k: _as_time(k, getattr(report, k, None)) for k in REPORT_FIELDS}
    bounds: dict[str, tuple[float | None, float | None]] = {
        "I": (0.0, fields["t_condensed"]),
        "II": (fields["t_condensed"], fields["t_plateau"]),
        "III": (fields["t_plateau"], fields["t_phase4"]),
        "IV": (fields["t_phase4"], t_end),
    }
    intervals = {
        ph: (t0, t1) for ph, (t0, t1) in bounds.items()
        if t0 is not None and t1 is not None and t1 > t0
    }
    markers = {k: t for k in _MARKERS if (t := fields[k]) is not None}
    return intervals, markers


def shade_phases(
    ax: Axes,
    report: Any,
    *,
    t_end: float | None = None,
    labels: bool = True,
    markers: bool = True,
) -> Axes:
    """Shade the four phases on a time axis and mark event times.

    Parameters
    ----------
    ax : Axes
        Axes whose x axis is time (linear or log).
    report : None, mapping or PhaseReport-like
        See :func:`phase_intervals`.
    t_end : float, optional
        End of Phase IV (default: the right limit of the x axis).
    labels : bool
        Write the phase numerals I-IV at the top of each band wide enough to hold them.
    markers : bool
        Draw dashed vertical lines (with legend labels) at ``t_escape``,
        ``t_reactivation`` and ``t_plateau_escape``.
    """
    lo, hi = ax.get_xlim()
    end = hi if t_end is None else float(t_end)
    intervals, mk = phase_intervals(report, end)
    log = ax.get_xscale() == "log"
    trans = blended_transform_factory(ax.transData, ax.transAxes)

    def _frac(x: float) -> float:  # position in axes fraction
        if log:
            return (math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        return (x - lo) / (hi - lo)

    last_label = -math.inf
    for ph, (t0, t1) in intervals.items():
        a = max(t0, lo)
        b = min(t1, hi)
        if not b > a:
            continue
        ax.axvspan(a, b, color=PHASE_COLORS[ph], zorder=0, lw=0)
        if labels:
            mid = math.sqrt(a * b) if log else 0.5 * (a + b)
            width = _frac(b) - _frac(a)
            # narrow bands get a smaller numeral; none if too narrow or too close to the last
            if width >= 0.02 and _frac(mid) - last_label >= 0.045:
                ax.text(mid, 0.975, ph, transform=trans, ha="center", va="top",
                        fontsize=9 if width >= 0.035 else 7, fontweight="bold",
                        color="#444444", zorder=1)
                last_label = _frac(mid)
    if markers:
        for key, t in mk.items():
            if lo <= t <= hi:
                lab, ls = _MARKERS[key]
                ax.axvline(t, color="#333333", lw=0.9, ls=ls, zorder=1, label=lab)
    ax.set_xlim(lo, hi)
    return ax


def _time_axis(ax: Axes, traj: Trajectory) -> NDArray[np.bool_]:
    mask = _positive_times(traj)
    tp = traj.t[mask]
    ax.set_xscale("log")
    if tp[-1] > tp[0]:
        ax.set_xlim(tp[0], tp[-1])
    ax.set_xlabel(TIME_LABEL)
    return mask


# --------------------------------------------------------------------------- panels
def loss_panel(
    ax: Axes,
    traj: Trajectory,
    phase_times: Any = None,
    *,
    plateau: bool = True,
    legend: bool = True,
) -> Axes:
    r"""Loss :math:`L(\theta(t))` against :math:`\log t`, with the phases shaded.

    Parameters
    ----------
    ax : Axes
        Target axes.
    traj : Trajectory
        The run (times ``t > 0`` are drawn).
    phase_times : None, mapping or PhaseReport-like
        Phase shading, see :func:`phase_intervals`.
    plateau : bool
        For two-point data, a dotted line at the plateau level :math:`1-p`
        (this book's derivation, notes.md section 3).
    legend : bool
        Draw a legend.
    """
    traj = _check_traj(traj)
    mask = _time_axis(ax, traj)
    loss = traj.loss[mask]
    ax.plot(traj.t[mask], loss, color=PALETTE["loss"], lw=1.8, label=r"loss $L(\theta(t))$")
    if np.all(loss > 0):
        ax.set_yscale("log")
    if plateau and isinstance(traj.data, TwoPointData):
        ax.axhline(1.0 - traj.data.p, color=PALETTE["theory"], lw=1.2, ls=":",
                   label=r"plateau level $1-p$")
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]))
    ax.set_ylabel(r"loss $L$ (log scale)" if ax.get_yscale() == "log" else r"loss $L$")
    if legend:
        ax.legend(loc="lower left")
    return ax


def _point_labels(data: Dataset) -> list[str]:
    if isinstance(data, TwoPointData):
        return ["$f(x_+)$", "$f(x_-)$"]
    return [f"$f(x_{{{i + 1}}})$, $y={int(y):+d}$" for i, y in enumerate(data.y)]


def outputs_panel(
    ax: Axes,
    traj: Trajectory,
    phase_times: Any = None,
    *,
    legend: bool = True,
) -> Axes:
    r"""Network outputs :math:`f(x_i; \theta(t))` against :math:`\log t`.

    Points with label +1 are drawn in the positive colour, label -1 in the negative
    colour (line styles differ when there are more than two points).
    """
    traj = _check_traj(traj)
    mask = _time_axis(ax, traj)
    labels = _point_labels(traj.data)
    styles = ["-", "--", "-.", ":"]
    npos = nneg = 0
    for i in range(traj.f.shape[1]):
        if traj.data.y[i] > 0:
            col, ls = PALETTE["positive"], styles[npos % 4]
            npos += 1
        else:
            col, ls = PALETTE["negative"], styles[nneg % 4]
            nneg += 1
        ax.plot(traj.t[mask], traj.f[mask, i], color=col, ls=ls, lw=1.8, label=labels[i])
    ax.axhline(0.0, color="#999999", lw=0.8, zorder=1)
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    ax.set_ylabel("network output $f(x_i)$ (dimensionless)")
    if legend:  # below the phase numerals
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92))
    return ax


def _draw_reference_rays(ax: PolarAxes, data: Dataset, r0: float, r_max: float) -> None:
    """Rays from ``r0`` to 84% of the way to ``r_max``, labelled at 93%."""
    r1 = r0 + 0.84 * (r_max - r0)
    r_text = r0 + 0.93 * (r_max - r0)
    cols = _ref_colors()
    angles = reference_angles(data)
    # Place labels just outside the disc; nudge labels apart when rays are close.
    order = sorted(angles.items(), key=lambda kv: kv[1])
    placed: list[float] = []
    min_gap = math.radians(11.0)
    for name, th in order:
        ax.plot([th, th], [r0, r1], color=cols[name], lw=1.3,
                ls="-" if name in ("$x_+$", "$x_-$", r"$\mu$") else "--", zorder=2)
        lab_th = th
        if placed and lab_th - placed[-1] < min_gap:
            lab_th = placed[-1] + min_gap
        placed.append(lab_th)
        ax.text(lab_th, r_text, name, color=cols[name], ha="center", va="center",
                fontsize=10, clip_on=False, zorder=5,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})


def _radius(norm: Array, mode: str, floor: float) -> Array:
    if mode == "log":
        return np.log10(np.maximum(norm, floor))
    if mode == "linear":
        return norm
    return np.ones_like(norm)


def _radial_limits(r: Array, mode: str) -> tuple[float, float]:
    if mode == "unit":
        return 0.0, 1.15
    if mode == "linear":
        hi = float(np.max(r)) if r.size else 1.0
        return 0.0, (hi * 1.08 if hi > 0 else 1.0)
    lo = math.floor(float(np.min(r))) if r.size else 0.0
    hi = math.ceil(float(np.max(r))) if r.size else 1.0
    if hi - lo < 1:
        hi = lo + 1
    return lo, hi + 0.15 * (hi - lo)


def _check_polar(ax: Any, name: str = "ax") -> PolarAxes:
    if not isinstance(ax, PolarAxes):
        raise ValueError(
            f"{name} must be a polar Axes (e.g. fig.add_subplot(projection='polar')), "
            f"got {type(ax).__name__}"
        )
    return ax


_RADIUS_MODES = ("log", "linear", "unit")


def _radius_mode(radius: str) -> str:
    if radius not in _RADIUS_MODES:
        raise ValueError(f"radius must be one of {_RADIUS_MODES}, got {radius!r}")
    return radius


def _radius_floor(norms: Array) -> float:
    pos = norms[norms > 0]
    return float(np.min(pos)) if pos.size else 1e-300


def polar_directions(
    ax: Axes,
    traj: Trajectory,
    index: int,
    data: Dataset | None = None,
    *,
    radius: str = "log",
    max_neurons: int = 300,
    seed: int = 0,
    references: bool = True,
    legend: bool = True,
    rlim: tuple[float, float] | None = None,
) -> Axes:
    r"""Neuron directions in the data plane at one recorded time, on a polar axis.

    Each recorded neuron is a point at angle :math:`\phi_k` (from :func:`plane_coords`,
    measured from :math:`x_+`) and radius :math:`\log_{10}\lVert P b_k\rVert`
    (``radius="log"``; :math:`P` projects on the data plane), :math:`\lVert P b_k\rVert`
    (``"linear"``) or 1 (``"unit"``).  Blue: :math:`a_k > 0`; vermillion: :math:`a_k < 0`.
    Filled markers are neurons active on at least one point; hollow markers are
    neurons inactive on both (dead at that time).  Reference rays mark :math:`x_+`,
    :math:`x_-`, :math:`\mu = p x_+ - (1-p) x_-`, :math:`x_-^\perp` and :math:`x_+^\perp`.

    Parameters
    ----------
    ax : PolarAxes
        Created with ``fig.add_subplot(projection="polar")``.
    traj : Trajectory
        The run.
    index : int
        Recorded time index (negative counts from the end).
    data : Dataset, optional
        Defines the plane (default ``traj.data``).
    radius : {"log", "linear", "unit"}
        Radial coordinate.
    max_neurons : int
        Draw at most this many neurons (a random subset, seeded by ``seed``).
    seed : int
        Seed of the subset.
    references : bool
        Draw and label the reference rays.
    legend : bool
        Legend for the marker colours and fills.
    rlim : (float, float), optional
        Radial limits; default from the whole trajectory, so that views at different
        times share one scale.
    """
    traj = _check_traj(traj)
    pax = _check_polar(ax)
    data = _check_data(traj, data)
    mode = _radius_mode(radius)
    idx = _time_index(traj, index)
    sub = neuron_subset(traj.m, max_neurons, seed)
    ang_all, nrm_all = plane_coords(traj.B[:, sub], data)
    floor = _radius_floor(nrm_all)
    r_all = _radius(nrm_all, mode, floor)
    lo, hi = rlim if rlim is not None else _radial_limits(r_all, mode)
    th, r = ang_all[idx], r_all[idx]
    sgn = _signs(traj, idx)[sub]
    alive = _alive(traj, idx)[sub]
    for s, key in ((1, "positive"), (-1, "negative")):
        col = PALETTE[key]
        for live in (True, False):
            sel = (sgn == s) & (alive == live)
            if not np.any(sel):
                continue
            pax.scatter(th[sel], r[sel], s=22 if live else 16,
                        facecolors=col if live else "none", edgecolors=col,
                        linewidths=0.9, alpha=0.85 if live else 0.55, zorder=3)
    pax.set_ylim(lo, hi)
    if references:
        _draw_reference_rays(pax, data, lo, hi)
    pax.set_thetagrids(np.arange(0, 360, 45), fontsize=8, color="#666666")
    pax.tick_params(axis="y", labelsize=7.5, colors="#555555")
    pax.set_rlabel_position(202.5)
    pax.grid(True, color="#dddddd", lw=0.6)
    rlabel = {
        "log": r"radius: $\log_{10}\|Pb_k\|$",
        "linear": r"radius: $\|Pb_k\|$",
        "unit": "radius: none (directions only)",
    }[mode]
    pax.set_xlabel(f"angle from $x_+$ (degrees); {rlabel}", fontsize=8.5, labelpad=6)
    if legend:
        handles = [
            Line2D([], [], ls="", marker="o", ms=5.5, color=PALETTE["positive"], label="$a_k>0$"),
            Line2D([], [], ls="", marker="o", ms=5.5, color=PALETTE["negative"], label="$a_k<0$"),
            Line2D([], [], ls="", marker="o", ms=5.5, mfc="none", color="#555555",
                   label="dead (inactive on both)"),
        ]
        pax.legend(handles=handles, loc="upper left", bbox_to_anchor=(-0.22, 1.12),
                   fontsize=7.5, frameon=True)
    return pax


def direction_time_map(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    max_neurons: int = 300,
    seed: int = 0,
    phase_times: Any = None,
    references: bool = True,
) -> Axes:
    r"""Angle of each neuron in the data plane against :math:`\log t`.

    One line per neuron, :math:`\phi_k(t)` in degrees from :math:`x_+` (unwrapped in
    time), blue for :math:`a_k > 0`, vermillion for :math:`a_k < 0`; neurons dead
    (inactive on both points) at the final time are drawn thin and faint.  Horizontal
    lines mark the reference directions of :func:`reference_angles`.
    """
    traj = _check_traj(traj)
    data = _check_data(traj, data)
    mask = _time_axis(ax, traj)
    sub = neuron_subset(traj.m, max_neurons, seed)
    ang, _ = plane_coords(traj.B[:, sub], data)
    deg = np.degrees(np.unwrap(ang, axis=0))[mask]
    t = traj.t[mask]
    sgn = _signs(traj)[sub]
    alive = _alive(traj, -1)[sub]
    for live in (False, True):
        for s, key in ((1, "positive"), (-1, "negative")):
            sel = (sgn == s) & (alive == live)
            if not np.any(sel):
                continue
            ax.plot(t, deg[:, sel], color=PALETTE[key], lw=1.0 if live else 0.5,
                    alpha=0.75 if live else 0.18, zorder=3 if live else 2)
    if references:
        cols = _ref_colors()
        trans = blended_transform_factory(ax.transAxes, ax.transData)
        placed: list[float] = []
        for name, th in sorted(reference_angles(data).items(), key=lambda kv: kv[1]):
            y = math.degrees(th)
            ax.axhline(y, color=cols[name], lw=0.9, ls="--", zorder=1)
            ly = y if not placed or y - placed[-1] >= 12 else placed[-1] + 12
            placed.append(ly)
            ax.text(1.01, ly, name, transform=trans, color=cols[name], va="center",
                    ha="left", fontsize=9, clip_on=False)
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    lo = min(-180.0, float(np.min(deg)) if deg.size else -180.0)
    hi = max(180.0, float(np.max(deg)) if deg.size else 180.0)
    ax.set_ylim(lo - 5, hi + 5)
    ax.set_yticks(np.arange(45 * math.ceil(lo / 45), hi + 1, 45))
    ax.set_ylabel(r"angle $\phi_k$ from $x_+$ (degrees)")
    ax.legend(handles=[
        Line2D([], [], color=PALETTE["positive"], label="$a_k>0$"),
        Line2D([], [], color=PALETTE["negative"], label="$a_k<0$"),
        Line2D([], [], color="#888888", lw=0.5, alpha=0.5, label="dead at the end"),
    ], loc="lower left", fontsize=7.5)
    return ax


def norms_panel(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    max_neurons: int = 300,
    seed: int = 0,
    phase_times: Any = None,
) -> Axes:
    r"""In-plane norms :math:`\lVert P b_k(t)\rVert` of the neurons against :math:`\log t`.

    Log-log axes, one line per neuron coloured by the sign of :math:`a_k`.  With balanced
    initialization :math:`|a_k| = \lVert b_k\rVert` for all time, so this is also the
    output-weight magnitude (for :math:`d = 2`).
    """
    traj = _check_traj(traj)
    data = _check_data(traj, data)
    mask = _time_axis(ax, traj)
    sub = neuron_subset(traj.m, max_neurons, seed)
    _, nrm = plane_coords(traj.B[:, sub], data)
    nrm = nrm[mask]
    sgn = _signs(traj)[sub]
    for s, key in ((1, "positive"), (-1, "negative")):
        sel = sgn == s
        if np.any(sel):
            ax.plot(traj.t[mask], nrm[:, sel], color=PALETTE[key], lw=0.8, alpha=0.6)
    if np.all(nrm > 0):
        ax.set_yscale("log")
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    ax.set_ylabel(r"in-plane norm $\|Pb_k\|$ (log scale)")
    ax.legend(handles=[
        Line2D([], [], color=PALETTE["positive"], label="$a_k>0$"),
        Line2D([], [], color=PALETTE["negative"], label="$a_k<0$"),
    ], loc="upper left")
    return ax


def margin_panel(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    target: bool = True,
    phase_times: Any = None,
    ymin: float | None = None,
) -> Axes:
    r"""Normalized margin :math:`\min_i y_i f(x_i) / \lVert\theta\rVert^2` against :math:`\log t`.

    Meaningful when all neurons are recorded.  With ``target=True`` and two-point data,
    a dotted line marks :math:`\sin\Delta / 4`, the margin of the two-direction solution
    (this book's derivation, notes.md section 3).  ``ymin`` sets the lower y limit
    (the early margins are very negative and can squash the late approach).
    """
    traj = _check_traj(traj)
    data = _check_data(traj, data)
    lo_y = None if ymin is None else v.real_scalar("ymin", ymin)
    mask = _time_axis(ax, traj)
    gam = traj.normalized_margin()[mask]
    ax.plot(traj.t[mask], gam, color=PALETTE["loss"], lw=1.8, label="normalized margin")
    if target and isinstance(data, TwoPointData):
        ax.axhline(math.sin(data.delta) / 4, color=PALETTE["theory"], ls=":", lw=1.4,
                   label=r"$\sin\Delta/4$ (this book's derivation)")
    ax.axhline(0.0, color="#999999", lw=0.8, zorder=1)
    shade_phases(ax, phase_times, t_end=float(traj.t[-1]), markers=False)
    ax.set_ylabel(r"$\min_i y_i f(x_i)/\|\theta\|^2$ (dimensionless)")
    if lo_y is not None:
        ax.set_ylim(bottom=lo_y)
    ax.legend(loc="lower right")
    return ax


def group_series_panel(
    ax: Axes,
    t: ArrayLike,
    *,
    positive: ArrayLike | None = None,
    negative: ArrayLike | None = None,
    ylabel: str,
    phase_times: Any = None,
    logy: bool = False,
    label: str = "",
) -> Axes:
    r"""Plot a per-group time series (e.g. angular spread) in the sign colours.

    For quantities a chapter computes per group over the recorded times (for instance
    the angular spread of ``reluflow.analysis.phases.group_stats`` at every index):
    ``positive`` (neurons with :math:`a_k > 0`) in blue, ``negative`` in vermillion,
    against :math:`\log t` (times ``t > 0`` only), phases shaded as in
    :func:`shade_phases`.

    Parameters
    ----------
    ax : Axes
        Target axes.
    t : array_like, shape (T,)
        Times, non-decreasing, at least one > 0.
    positive, negative : array_like, shape (T,), optional
        The series of each group (at least one must be given); NaN leaves a gap.
    ylabel : str
        Y-axis label, with units (non-empty).
    phase_times : None, mapping or PhaseReport-like
        See :func:`phase_intervals`.
    logy : bool
        Logarithmic y axis.
    label : str
        Suffix for the legend entries (e.g. ``" spread"``).
    """
    tt = v.finite_array("t", t, 1)
    if not np.any(tt > 0):
        raise ValueError("t must hold at least one time t > 0 for a log-time axis")
    if not isinstance(ylabel, str) or not ylabel.strip():
        raise ValueError("ylabel must be a non-empty string (quantity and units)")
    if positive is None and negative is None:
        raise ValueError("give at least one of positive= or negative=")
    mask = tt > 0
    for name, arr in (("positive", positive), ("negative", negative)):
        if arr is None:
            continue
        y = np.asarray(arr, dtype=np.float64)
        if y.shape != tt.shape:
            raise ValueError(f"{name} must have the shape of t {tt.shape}, got {y.shape}")
        sym = "$a_k>0$" if name == "positive" else "$a_k<0$"
        ax.plot(tt[mask], y[mask], color=PALETTE[name], lw=1.8, label=f"{sym}{label}")
    ax.set_xscale("log")
    tp = tt[mask]
    if tp[-1] > tp[0]:
        ax.set_xlim(tp[0], tp[-1])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel(ylabel)
    shade_phases(ax, phase_times, t_end=float(tt[-1]), markers=False)
    ax.legend(loc="best")
    return ax


def final_state_labels(traj: Trajectory, index: int = -1) -> NDArray[np.str_]:
    r"""Observed activation state of each recorded neuron at a recorded time.

    One of ``"active on both"``, ``"$x_+$ only"``, ``"$x_-$ only"``, ``"dead"`` (inactive on
    both), with ``" (sliding)"`` appended when the neuron is held on a boundary
    (pattern 0).  Only for two-point data (patterns of shape ``(T, m, 2)``).
    """
    traj = _check_traj(traj)
    if traj.pattern.shape[-1] != 2:
        raise ValueError("final_state_labels needs two-point data (pattern with n = 2)")
    idx = _time_index(traj, index)
    pat = traj.pattern[idx]
    ip = int(np.flatnonzero(traj.data.y > 0)[0])
    im = 1 - ip
    on_p, on_m = pat[:, ip] > 0, pat[:, im] > 0
    base = np.where(on_p & on_m, "active on both",
                    np.where(on_p, "$x_+$ only", np.where(on_m, "$x_-$ only", "dead")))
    slide = np.any(pat == 0, axis=1)
    return np.where(slide, np.char.add(base.astype(str), " (sliding)"), base).astype(str)


def fate_map(
    ax: Axes,
    traj: Trajectory,
    data: Dataset | None = None,
    labels: ArrayLike | None = None,
    *,
    references: bool = True,
    title: str | None = None,
) -> Axes:
    r"""Initial directions coloured by fate, on a polar axis.

    Each recorded neuron is drawn at its *initial* in-plane angle :math:`\phi_k(0)`;
    neurons with :math:`a_k > 0` on the outer ring (radius 1, circles), with
    :math:`a_k < 0` on the inner ring (radius 0.7, triangles).  The colour is the label:
    ``labels`` (one string per recorded neuron, e.g. a predicted or simulated fate) or,
    by default, the observed final state from :func:`final_state_labels`; labels
    containing ``"dead"`` are grey (:data:`DEAD_COLOR`), the others take
    :data:`FATE_COLORS` in sorted order.
    """
    traj = _check_traj(traj)
    pax = _check_polar(ax)
    data = _check_data(traj, data)
    if labels is None:
        labs = final_state_labels(traj)
    else:
        labs = np.asarray(labels).astype(str)
        if labs.shape != (traj.m,):
            raise ValueError(f"labels must have one entry per recorded neuron ({traj.m}), "
                             f"got shape {labs.shape}")
    ang0, _ = plane_coords(traj.B[0], data)
    sgn = _signs(traj, 0)
    cats = sorted(set(labs.tolist()), key=lambda c: ("dead" in c, c))
    live = [c for c in cats if "dead" not in c]
    colors = {c: FATE_COLORS[i % len(FATE_COLORS)] for i, c in enumerate(live)}
    colors.update({c: DEAD_COLOR for c in cats if "dead" in c})
    for c in cats:
        for s, rad, mk in ((1, 1.0, "o"), (-1, 0.7, "^")):
            sel = (labs == c) & (sgn == s)
            if np.any(sel):
                pax.scatter(ang0[sel], np.full(int(sel.sum()), rad), s=26, marker=mk,
                            color=colors[c], edgecolors="#333333", linewidths=0.3,
                            zorder=3, alpha=0.9)
    pax.set_ylim(0, 1.2)
    if references:
        _draw_reference_rays(pax, data, 0.0, 1.2)
    pax.set_yticks([0.7, 1.0])
    pax.set_yticklabels([])
    pax.set_thetagrids(np.arange(0, 360, 45), fontsize=8, color="#666666")
    pax.grid(True, color="#dddddd", lw=0.6)
    pax.set_xlabel("initial angle from $x_+$ (degrees)", fontsize=8.5)
    handles = [Line2D([], [], ls="", marker="s", ms=7, color=colors[c], label=c) for c in cats]
    handles += [
        Line2D([], [], ls="", marker="o", ms=5, mfc="white", color="#333333",
               label="$a_k>0$ (outer)"),
        Line2D([], [], ls="", marker="^", ms=5, mfc="white", color="#333333",
               label="$a_k<0$ (inner)"),
    ]
    pax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.12, 0.5), fontsize=8)
    if title is not None:
        pax.set_title(title)
    return pax


# --------------------------------------------------------------------------- figures
def _describe(traj: Trajectory, data: Dataset) -> str:
    parts = []
    if isinstance(data, TwoPointData):
        parts += [f"Δ = {data.delta:.3g} rad", f"p = {data.p:.3g}"]
    parts.append(f"m = {traj.m}")
    kappa = traj.info.get("kappa") if isinstance(traj.info, dict) else None
    if kappa is not None:
        parts.append(f"κ = {float(kappa):.2g}")
    parts.append(f"{traj.loss_name} loss")
    method = traj.info.get("method") if isinstance(traj.info, dict) else None
    if method:
        parts.append(str(method).replace("_", " "))
    return ", ".join(parts)


def overview_figure(
    traj: Trajectory,
    data: Dataset | None = None,
    report: Any = None,
    *,
    max_neurons: int = 300,
    seed: int = 0,
    title: str | None = None,
) -> Figure:
    r"""The four-phase overview: a 2×2 figure.

    (a) loss against :math:`\log t` with the phases shaded; (b) outputs
    :math:`f(x_+)`, :math:`f(x_-)`; (c) each neuron's in-plane angle against
    :math:`\log t`; (d) the neuron directions at the final recorded time (polar).

    Parameters
    ----------
    traj : Trajectory
        The run.
    data : Dataset, optional
        Defines the plane (default ``traj.data``).
    report : None, mapping or PhaseReport-like
        Phase times for the shading (see :func:`phase_intervals`).
    max_neurons, seed : int
        Subset of neurons drawn in (c) and (d).
    title : str, optional
        Figure title (default: the run's parameters).

    Returns
    -------
    Figure
        A new figure (not registered with ``pyplot``); save it with ``fig.savefig``.
    """
    traj = _check_traj(traj)
    data = _check_data(traj, data)
    phase_intervals(report)  # validate before drawing anything
    with style():
        fig = _new_figure((12.0, 9.0), layout="constrained")
        gs = fig.add_gridspec(2, 2, width_ratios=[1.25, 1.0])
        ax_loss = fig.add_subplot(gs[0, 0])
        ax_f = fig.add_subplot(gs[0, 1])
        ax_ang = fig.add_subplot(gs[1, 0])
        ax_pol = fig.add_subplot(gs[1, 1], projection="polar")
        loss_panel(ax_loss, traj, report)
        ax_loss.set_title("(a) loss, phases shaded", loc="left")
        outputs_panel(ax_f, traj, report)
        ax_f.set_title("(b) outputs on the two points", loc="left")
        direction_time_map(ax_ang, traj, data, max_neurons=max_neurons, seed=seed,
                           phase_times=report)
        ax_ang.set_title("(c) neuron directions in time", loc="left")
        polar_directions(ax_pol, traj, -1, data, max_neurons=max_neurons, seed=seed)
        ax_pol.set_title(f"(d) directions at t = {traj.t[-1]:.3g}", loc="left", pad=14)
        fig.suptitle(title if title is not None else _describe(traj, data), fontsize=12)
    return fig


#: The behaviours :func:`annotated_overview` points out, in time order, with their labels.
ANNOTATION_LABELS: dict[str, str] = {
    "condensation": "initial condensation\n(directions collapse onto $\\mu$)",
    "saddle_escape": "saddle escape\n(loss leaves 1)",
    "reactivation": "reactivation\n(negative neurons active on $x_+$ again)",
    "deactivation": "deactivation on $x_-$:\npositive neurons slide on $x_-^\\perp$",
    "plateau": "plateau\n(loss creeps towards $1-p$)",
    "plateau_escape": "plateau escape\n($f(x_-)$ turns negative)",
    "complexity": "increasing complexity\n(a second direction grows)",
}


def overview_annotations(report: Any) -> dict[str, float]:
    r"""Times at which :func:`annotated_overview` points out each behaviour.

    Read off a :class:`reluflow.analysis.phases.PhaseReport` (or any object with its time
    attributes): ``condensation`` = ``t_condensed``, ``saddle_escape`` = ``t_escape``,
    ``reactivation`` = ``t_reactivation``, ``deactivation`` = ``t_plateau`` (the leading
    group is switched off on the waiting point and slides), ``plateau`` = the midpoint
    :math:`(t_\mathrm{plateau} + t_\mathrm{plateau\,escape})/2`, ``plateau_escape`` =
    ``t_plateau_escape`` and ``complexity`` = ``t_phase4``.  Behaviours whose time is
    ``None`` (did not happen in the run) are left out.

    Returns
    -------
    dict
        Keys of :data:`ANNOTATION_LABELS` (in that order) to times.
    """
    fields = ("t_condensed", "t_escape", "t_reactivation", "t_plateau",
              "t_plateau_escape", "t_phase4")
    if not all(hasattr(report, f) for f in fields):
        raise ValueError(
            f"report must be a reluflow.analysis.phases.PhaseReport (attributes {fields}), "
            f"got {type(report).__name__}"
        )
    tm = {f: _as_time(f, getattr(report, f)) for f in fields}
    plateau = None
    if tm["t_plateau"] is not None and tm["t_plateau_escape"] is not None:
        plateau = 0.5 * (tm["t_plateau"] + tm["t_plateau_escape"])
    times = {
        "condensation": tm["t_condensed"],
        "saddle_escape": tm["t_escape"],
        "reactivation": tm["t_reactivation"],
        "deactivation": tm["t_plateau"],
        "plateau": plateau,
        "plateau_escape": tm["t_plateau_escape"],
        "complexity": tm["t_phase4"],
    }
    return {k: t for k in ANNOTATION_LABELS if (t := times[k]) is not None}


def _annotate(ax: Axes, key: str, t: float, y: float, y_text: float) -> None:
    ax.annotate(
        ANNOTATION_LABELS[key], xy=(t, y), xytext=(t, y_text),
        textcoords=("data", "axes fraction"), ha="center", va="center", fontsize=8,
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#888888", "lw": 0.6},
        arrowprops={"arrowstyle": "->", "color": "#333333", "lw": 0.9},
        gid=f"overview:{key}", zorder=6,
    )


def annotated_overview(
    traj: Trajectory,
    data: Dataset | None = None,
    report: Any = None,
    *,
    max_neurons: int = 200,
    seed: int = 0,
) -> Figure:
    r"""One run with the four phases and every named behaviour pointed out on it.

    (a) The loss against linear time over Phases I–III (up to 1.25 times the plateau
    escape), phases shaded, with arrows at the times of :func:`overview_annotations`:
    initial condensation, saddle escape, reactivation, deactivation on :math:`x_-` and
    sliding, plateau, plateau escape.  (b) Each neuron's in-plane angle against
    :math:`\log t` over the whole run.  (c) The effective number of directions
    (:func:`reluflow.analysis.phases.effective_directions`) against :math:`\log t`: it drops to 1
    (simplification) and climbs back towards 2 in Phase IV, where the arrow marks
    increasing complexity at ``t_phase4``.

    Each arrow is a :class:`matplotlib.text.Annotation` with ``gid``
    ``"overview:<key>"`` pointing at ``xy = (time, value)``.

    Parameters
    ----------
    traj : Trajectory
        A run on two-point data recorded densely over the first three phases (all neurons).
    data : Dataset, optional
        Default ``traj.data``.
    report : PhaseReport
        From :func:`reluflow.analysis.phases.detect_phases` on ``traj``.
    max_neurons, seed : int
        Subset drawn in (b).

    Returns
    -------
    Figure
    """
    from reluflow.analysis.phases import effective_directions

    traj = _check_traj(traj)
    data = _check_data(traj, data)
    marks = overview_annotations(report)
    t_end = float(traj.t[-1])
    lin_end = 1.25 * marks.get("plateau_escape", marks.get("deactivation", t_end / 1.25))
    lin_end = min(lin_end, t_end)
    with style():
        fig = _new_figure((12.0, 9.0), layout="constrained")
        gs = fig.add_gridspec(2, 2)
        ax = fig.add_subplot(gs[0, :])
        sel = traj.t <= lin_end
        ax.plot(traj.t[sel], traj.loss[sel], color=PALETTE["loss"], lw=2.0, label="loss $L(t)$")
        if isinstance(data, TwoPointData):
            ax.axhline(1.0 - data.p, color=PALETTE["theory"], ls=":", lw=1.2,
                       label="plateau level $1-p$")
        ax.set_xlim(0.0, lin_end)
        ax.set_ylim(0.0, 1.08)
        shade_phases(ax, report, t_end=t_end, markers=False)
        ax.set_xlabel("time $t$ (gradient-flow time units, linear)")
        ax.set_ylabel("loss $L$ (dimensionless)")
        ax.set_title("(a) Phases I–III: the loss, with the behaviours pointed out", loc="left")
        below = iter([0.10, 0.30, 0.50, 0.20, 0.40])
        above = iter([0.80, 0.64, 0.80, 0.64, 0.80])
        for key, t in marks.items():
            if key == "complexity" or t > lin_end:
                continue
            y = float(np.interp(t, traj.t, traj.loss))
            _annotate(ax, key, t, y, next(below) if y / 1.08 > 0.5 else next(above))
        ax.legend(loc="center right")
        axb = fig.add_subplot(gs[1, 0])
        direction_time_map(axb, traj, data, max_neurons=max_neurons, seed=seed,
                           phase_times=report)
        axb.set_title("(b) neuron directions over the whole run", loc="left")
        axc = fig.add_subplot(gs[1, 1])
        mask = _time_axis(axc, traj)
        idx = np.flatnonzero(mask)
        neff = np.array([effective_directions(traj, int(j)) for j in idx])
        axc.plot(traj.t[idx], neff, color=PALETTE["loss"], lw=1.8)
        axc.set_yscale("log")
        axc.set_ylabel(r"effective number of directions $N_\mathrm{eff}$ (log scale)")
        shade_phases(axc, report, t_end=t_end, markers=False)
        axc.set_title("(c) simplifying, then complicating", loc="left")
        if "complexity" in marks:
            t4 = marks["complexity"]
            y4 = float(np.interp(math.log(t4), np.log(traj.t[idx]), neff))
            _annotate(axc, "complexity", t4, y4, 0.75)
        fig.suptitle(_describe(traj, data), fontsize=12)
    return fig


def overview_caption(traj: Trajectory, data: Dataset | None = None) -> str:
    """A caption for :func:`overview_figure` saying what to look for (Markdown)."""
    traj = _check_traj(traj)
    data = _check_data(traj, data)
    return (
        f"Four-phase overview ({_describe(traj, data)}). "
        "(a) The loss against log time with phases I–IV shaded: a first drop-off from the "
        "saddle at the origin, a plateau near $1-p$, then escape and slow convergence. "
        "(b) $f(x_+)$ (blue) grows first; $f(x_-)$ (vermillion) stays near 0 on the plateau "
        "and turns negative at the escape. "
        "(c) Each neuron's angle from $x_+$: positive neurons (blue) condense onto one "
        "direction early, negative neurons (vermillion) that survive move later; faint lines "
        "are neurons dead at the end. "
        "(d) Directions at the final time (radius $\\log_{10}$ of the in-plane norm), with "
        "the reference rays $x_+$, $x_-$, $\\mu$, $x_-^\\perp$, $x_+^\\perp$."
    )
