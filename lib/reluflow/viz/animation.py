r"""A JavaScript animation of the neuron directions over time (plays without a kernel).

:func:`direction_animation` builds a :class:`matplotlib.animation.FuncAnimation` of the
polar view of :func:`reluflow.viz.plots.polar_directions` at frames spaced evenly in
:math:`\log t`; :func:`animation_html` renders it with ``to_jshtml()`` into a
self-contained HTML snippet (frames embedded as PNG, with play/pause/step controls).
In a notebook::

    from IPython.display import HTML
    HTML(animation_html(traj, data))
"""

from __future__ import annotations

import base64
import re
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
import numpy as np
from matplotlib.animation import FuncAnimation, HTMLWriter
from matplotlib.artist import Artist
from numpy.typing import NDArray

from reluflow.analysis.geometry import plane_coords
from reluflow.engine import checks as v
from reluflow.engine.data import Dataset
from reluflow.engine.trajectory import Trajectory
from reluflow.viz import plots

__all__ = [
    "CDN_FONT_AWESOME",
    "MAX_FRAMES",
    "PLAYER_ICONS",
    "animation_html",
    "direction_animation",
    "drop_cdn_font_awesome",
    "frame_indices",
    "offline_player",
]

#: The stylesheet link matplotlib's jshtml template puts before every animation.
CDN_FONT_AWESOME = re.compile(
    r'<link rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/'
    r'4\.4\.0/css/font-awesome\.min\.css">\s*'
)

#: The player's button icons as SVG paths (16 x 16, drawn in the text colour), by the
#: Font Awesome 4 class matplotlib's template gives each button.
PLAYER_ICONS: dict[str, str] = {
    "fa-minus": "M2 7h12v2H2z",
    "fa-plus": "M7 2h2v5h5v2H9v5H7V9H2V7h5z",
    "fa-play": "M4 2l10 6-10 6z",
    "fa-play fa-flip-horizontal": "M12 2L2 8l10 6z",
    "fa-pause": "M3 2h4v12H3zM9 2h4v12H9z",
    "fa-step-forward": "M2 2l9 6-9 6zM11 2h3v12h-3z",
    "fa-step-backward": "M14 2L5 8l9 6zM2 2h3v12H2z",
    "fa-fast-forward": "M0 2l7 6-7 6zM7 2l7 6-7 6zM14 2h2v12h-2z",
    "fa-fast-backward": "M16 2L9 8l7 6zM9 2L2 8l7 6zM0 2h2v12H0z",
}

_ICON = re.compile(r'<i class="fa ([\w -]+?)"></i>')


def drop_cdn_font_awesome(html: str) -> str:
    """Remove matplotlib's Font Awesome 4.4 CDN ``<link>`` from an HTML output."""
    return CDN_FONT_AWESOME.sub("", html)


def offline_player(html: str) -> str:
    """matplotlib's animation player with no request to another machine.

    The Font Awesome stylesheet link (a CDN) is dropped and every button icon becomes an
    inline SVG of :data:`PLAYER_ICONS`, so the player shows the same buttons in the book,
    in JupyterLab and offline.

    >>> offline_player('<button><i class="fa fa-play"></i></button>')  # doctest: +ELLIPSIS
    '<button><svg ... viewBox="0 0 16 16" ...><path fill="currentColor" d="M4 2l10 6-10 6z"/>...'

    Raises
    ------
    ValueError
        For an icon this module has no drawing of (a newer matplotlib template).
    """

    def svg(found: re.Match[str]) -> str:
        name = found.group(1).strip()
        if name not in PLAYER_ICONS:
            raise ValueError(f"no offline drawing of the player icon {name!r}")
        return ('<svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true">'
                f'<path fill="currentColor" d="{PLAYER_ICONS[name]}"/></svg>')

    return _ICON.sub(svg, drop_cdn_font_awesome(html))

#: Upper bound on the number of frames, to keep the embedded HTML small.
MAX_FRAMES = 120


class _PalettePNGWriter(HTMLWriter):
    """``HTMLWriter`` embedding each frame as a palette PNG (``colors`` colours, no dither).

    The frames are flat-coloured line art, so quantizing to a small palette keeps them
    legible while making the HTML several times smaller than matplotlib's RGBA PNGs.
    Exceeding the size limit raises instead of silently dropping frames.
    """

    def __init__(self, *, fps: int, default_mode: str, embed_limit_mb: float,
                 colors: int = 64) -> None:
        super().__init__(fps=fps, embed_frames=True, default_mode=default_mode,
                         embed_limit=embed_limit_mb)
        self._colors = colors
        self._limit_mb = embed_limit_mb
        self._used_bytes = 0

    def grab_frame(self, **savefig_kwargs: Any) -> None:
        if not self.embed_frames:  # pragma: no cover - we always embed
            super().grab_frame(**savefig_kwargs)
            return
        from PIL import Image

        raw = BytesIO()
        self.fig.savefig(raw, format="png", dpi=self.dpi, **savefig_kwargs)
        raw.seek(0)
        with Image.open(raw) as im:
            pal = im.convert("RGB").quantize(colors=self._colors, dither=Image.Dither.NONE)
        out = BytesIO()
        pal.save(out, format="PNG", optimize=True)
        data = base64.encodebytes(out.getvalue()).decode("ascii")
        self._used_bytes += len(data)
        if self._used_bytes >= self._limit_mb * 1024 * 1024:
            raise ValueError(
                f"the animation exceeds embed_limit_mb = {self._limit_mb:g} MB; "
                "lower frames, dpi or max_neurons, or raise embed_limit_mb"
            )
        frames: list[str] = cast(Any, self)._saved_frames  # list created by HTMLWriter.setup
        frames.append(data)


def frame_indices(t: NDArray[np.float64], frames: int) -> NDArray[np.int64]:
    r"""Indices of at most ``frames`` recorded times, spaced evenly in :math:`\log t`.

    The first recorded time (``t = 0`` included) and the last are always kept; the
    targets :math:`t_j = 10^{\,\ell_0 + j(\ell_1-\ell_0)/(F-2)}` between the first and
    last positive times are mapped to the nearest recorded time (duplicates dropped), so
    fewer than ``frames`` indices are returned when the record is sparse.
    """
    tt = np.asarray(t, dtype=np.float64)
    if tt.ndim != 1 or tt.size == 0:
        raise ValueError("t must be a non-empty 1-d array of recorded times")
    nf = v.int_at_least("frames", frames, 2)
    T = tt.size
    pos = np.flatnonzero(tt > 0)
    if pos.size < 2:
        return np.unique(np.array([0, T - 1], dtype=np.int64))
    lt = np.log10(tt[pos])
    # With t[0] = 0 one frame is kept for t = 0; t[0] > 0 is itself the first log target.
    n_log = nf - 1 if tt[0] <= 0 else nf
    targets = np.linspace(lt[0], lt[-1], n_log)
    nearest = pos[np.abs(lt[None, :] - targets[:, None]).argmin(axis=1)]
    return np.unique(np.concatenate([[0], nearest, [T - 1]])).astype(np.int64)


def _window(
    t: NDArray[np.float64], t_window: tuple[float, float] | None, frames: int
) -> NDArray[np.int64]:
    """Frame indices into ``t`` restricted to ``t_window``."""
    if t_window is None:
        return frame_indices(t, frames)
    try:
        t0, t1 = (v.real_scalar("t_window", x) for x in t_window)
    except (TypeError, ValueError):
        raise ValueError(f"t_window must be a pair (t0, t1) with 0 <= t0 < t1, "
                         f"got {t_window!r}") from None
    if not 0 <= t0 < t1:
        raise ValueError(f"t_window must be a pair (t0, t1) with 0 <= t0 < t1, got {t_window!r}")
    inside = np.flatnonzero((t >= t0) & (t <= t1))
    if inside.size == 0:
        raise ValueError(f"t_window = {t_window!r} contains no recorded time "
                         f"(recorded: {t[0]:g} to {t[-1]:g})")
    return inside[frame_indices(t[inside], frames)]


def direction_animation(
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    frames: int = 48,
    fps: int = 8,
    max_neurons: int = 300,
    seed: int = 0,
    radius: str = "log",
    dpi: float = 72.0,
    figsize: tuple[float, float] = (5.6, 5.6),
    t_window: tuple[float, float] | None = None,
) -> FuncAnimation:
    r"""Animate the neuron directions in the data plane over log time.

    Each frame is the polar view of :func:`reluflow.viz.plots.polar_directions` at one
    recorded time (angle from :math:`x_+`; radius :math:`\log_{10}\lVert P b_k\rVert`
    by default, on one radial scale for the whole run), blue for :math:`a_k > 0`,
    vermillion for :math:`a_k < 0`, hollow when the neuron is inactive on both points;
    the title shows the time :math:`t` and the loss.

    Parameters
    ----------
    traj : Trajectory
        The run (at least one recorded time).
    data : Dataset, optional
        Defines the plane (default ``traj.data``).
    frames : int
        Number of frames, in ``[2, MAX_FRAMES]``; spaced evenly in :math:`\log t`
        (see :func:`frame_indices`).
    fps : int
        Frames per second, integer in ``[1, 60]``.
    max_neurons : int
        At most this many neurons are drawn (random subset seeded by ``seed``).
    seed : int
        Seed of the subset (``numpy.random.default_rng``).
    radius : {"log", "linear", "unit"}
        Radial coordinate (see :func:`reluflow.viz.plots.polar_directions`).
    dpi : float
        Resolution of the frames, in ``[30, 200]``.
    figsize : (float, float)
        Figure size in inches.
    t_window : (float, float), optional
        Only animate recorded times in ``[t0, t1]`` (``0 <= t0 < t1``), e.g. to give
        Phases I-III more frames in a run recorded up to a huge time.

    Returns
    -------
    FuncAnimation
        Over a new :class:`~matplotlib.figure.Figure` (not registered with ``pyplot``).
    """
    traj = plots.check_traj(traj)
    data = plots.check_data(traj, data)
    nf = v.int_at_least("frames", frames, 2)
    if nf > MAX_FRAMES:
        raise ValueError(f"frames must be an integer in [2, {MAX_FRAMES}], got {frames!r}")
    fp = v.int_at_least("fps", fps, 1)
    if fp > 60:
        raise ValueError(f"fps must be an integer in [1, 60], got {fps!r}")
    dp = v.positive_finite("dpi", dpi)
    if not 30 <= dp <= 200:
        raise ValueError(f"dpi must lie in [30, 200], got {dpi!r}")
    mode = plots.check_radius_mode(radius)
    sub = plots.sample_neurons(traj.m, max_neurons, seed)
    idx = _window(traj.t, t_window, nf)

    ang, nrm = plane_coords(traj.B[:, sub], data)
    floor = plots.radius_floor(nrm)
    rad = plots.polar_radius(nrm, mode, floor)
    lo, hi = plots.radial_limits(rad, mode)
    colors = {sg: np.array(mpl.colors.to_rgba(plots.PALETTE[key]))
              for sg, key in ((1, "positive"), (-1, "negative"), (0, "reference"))}

    def _edges(k: int) -> NDArray[np.float64]:
        sg = plots.neuron_signs(traj, k)[sub]
        return np.array([colors[int(x)] for x in sg]).reshape(-1, 4)

    edge = _edges(int(idx[0]))
    clear = np.zeros_like(edge)

    with plots.style():
        fig = plots.new_figure(figsize, layout="constrained")
        fig.set_dpi(dp)
        ax = fig.add_subplot(projection="polar")
        # Draw the first frame with the shared styling, then keep one scatter to update.
        plots.polar_directions(ax, traj, int(idx[0]), data, radius=mode,
                               max_neurons=max_neurons, seed=seed, rlim=(lo, hi))
        for coll in list(ax.collections):
            coll.remove()
        scat = ax.scatter(ang[idx[0]], rad[idx[0]], s=22, facecolors=cast(Any, edge),
                          edgecolors=cast(Any, edge),
                          linewidths=0.9, zorder=3)
        title = ax.set_title("", loc="center", pad=16, fontsize=11)

    def _update(j: int) -> list[Artist]:
        k = int(idx[j])
        scat.set_offsets(np.column_stack([ang[k], rad[k]]))
        alive = plots.alive_mask(traj, k)[sub]
        ek = _edges(k)
        scat.set_edgecolor(cast(Any, ek))
        scat.set_facecolor(cast(Any, np.where(alive[:, None], ek, clear)))
        tk = float(traj.t[k])
        tstr = "0" if tk == 0 else (f"{tk:.3g}" if 1e-3 <= tk < 1e5 else f"{tk:.2e}")
        title.set_text(f"t = {tstr}    loss = {float(traj.loss[k]):.3g}")
        return [scat, title]

    _update(0)
    # Lay the figure out once; the frames only move points and change the title.
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return FuncAnimation(fig, _update, frames=len(idx), interval=1000.0 / fp, blit=False,
                         repeat=True)


def animation_html(
    traj: Trajectory,
    data: Dataset | None = None,
    *,
    frames: int = 48,
    fps: int = 8,
    max_neurons: int = 300,
    seed: int = 0,
    radius: str = "log",
    dpi: float = 72.0,
    default_mode: str = "once",
    embed_limit_mb: float = 30.0,
    t_window: tuple[float, float] | None = None,
    figsize: tuple[float, float] = (5.6, 5.6),
) -> str:
    """Self-contained HTML/JavaScript of :func:`direction_animation`.

    The same player as ``FuncAnimation.to_jshtml()`` (matplotlib's ``HTMLWriter`` with
    embedded frames: play/pause/step buttons, a frame slider and loop modes), with each
    frame stored as a 64-colour palette PNG to keep the page small (about 15-25 kB per
    frame at the defaults), and with no request to another machine
    (:func:`offline_player`: no CDN stylesheet, the icons drawn inline).

    Parameters are those of :func:`direction_animation`, plus ``default_mode``
    (``"loop"``, ``"once"`` or ``"reflect"``) and ``embed_limit_mb``, the size limit of
    the embedded frames in MB for this call (a ``ValueError`` when exceeded).

    Returns
    -------
    str
        An HTML snippet with the frames embedded as base64 PNG and the player controls.
    """
    if default_mode not in ("loop", "once", "reflect"):
        raise ValueError(f"default_mode must be one of ('loop', 'once', 'reflect'), "
                         f"got {default_mode!r}")
    lim = v.positive_finite("embed_limit_mb", embed_limit_mb)
    fp = v.int_at_least("fps", fps, 1)
    anim = direction_animation(traj, data, frames=frames, fps=fp, max_neurons=max_neurons,
                               seed=seed, radius=radius, dpi=dpi, t_window=t_window,
                               figsize=figsize)
    writer = _PalettePNGWriter(fps=fp, default_mode=default_mode, embed_limit_mb=lim)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "animation.html")
        anim.save(str(path), writer=writer)
        return offline_player(path.read_text())
