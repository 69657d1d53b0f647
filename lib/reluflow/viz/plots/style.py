r"""The book's figure style: one palette for phases, groups, fates and methods; fonts; sizes.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring).  Every colour of the
book is defined here, once, with one meaning:

* the two sign groups (and the two points): :math:`a_k > 0` and :math:`x_+` blue,
  :math:`a_k < 0` and :math:`x_-` vermillion (Okabe-Ito, colour-blind safe);
* :math:`\mu` and the neurons that condense on it: bluish green;
* predictions of this book's derivations: reddish purple (dotted or dashed lines);
* sliding on an activation boundary: orange; neurons that die in Phase I: dark grey;
  neurons dead from the start: light grey;
* measured quantities with no group: black; reference directions: grey;
* the four phases: pale lavender bands, darker from Phase I to III, and a pale grey for
  the long Phase IV, used for nothing else;
* the three regimes of :math:`(\Delta, p)`: pale blue (main: the positive group leads),
  pale vermillion (mirror: the negative group leads), pale orange (intermediate: both
  groups slide);
* integrators (numerics chapter): the exact flow black, gradient descent sky blue,
  ``solve_ivp`` grey;
* series over a parameter (several :math:`(\Delta, p)`, seeds, learning rates): shades of
  grey with distinct markers (:func:`series_style`), so no colour above is reused.

Sizes.  A book panel is :data:`PANEL_WIDTH` inches wide and every text in it is at least
:data:`MIN_FONT_PT` points; panels are laid out side by side on a wide screen and stacked
on a narrow one (:class:`~reluflow.viz.plots.panels.Panels`), so that every text is shown
at :math:`\ge 9` pt in the book's text column (two panels of about 338 CSS pixels side by
side on a desktop, one of about 358 on a phone): :math:`11 \cdot 338/384 \approx 9.7`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import Any, ParamSpec, TypeVar

import matplotlib as mpl
from matplotlib.figure import Figure

__all__ = [
    "DEAD_COLOR",
    "FATE_COLORS",
    "METHOD_COLORS",
    "MIN_FONT_PT",
    "PALETTE",
    "PANEL_DPI",
    "PANEL_WIDTH",
    "PHASES",
    "PHASE_COLORS",
    "PHASE_NAMES",
    "REFERENCE_LABELS",
    "REGIME_COLORS",
    "REGIME_LABELS",
    "TIME_LABEL",
    "BookFigure",
    "new_figure",
    "reference_colors",
    "series_style",
    "style",
    "styled",
]


#: The single colour palette of the book (Okabe-Ito colour-blind safe hues).
PALETTE: dict[str, str] = {
    "positive": "#0072B2",  # a_k > 0, and the point x_+ (label +1)
    "negative": "#D55E00",  # a_k < 0, and the point x_- (label -1)
    "mu": "#009E73",        # the driving vector mu, and the neurons condensing on it
    "theory": "#CC79A7",    # predictions of this book's derivations
    "sliding": "#E69F00",   # neurons held on an activation boundary
    "die": "#4D4D4D",       # neurons switched off on both points during Phase I
    "dead": "#B0B0B0",      # neurons dead from the start
    "loss": "#000000",      # measured quantities that belong to no group
    "reference": "#808080",  # reference directions and levels
}

#: The four phases, in order.
PHASES = ("I", "II", "III", "IV")

#: Background bands of the four phases (a ramp of pale lavender, used for nothing else).
PHASE_COLORS: dict[str, str] = {
    "I": "#F4F1FB",
    "II": "#E7E1F4",
    "III": "#DAD1EE",
    "IV": "#EFEDF3",
}

#: Full names of the four phases (the paper's picture).
PHASE_NAMES: dict[str, str] = {
    "I": "initial condensation",
    "II": "saddle to plateau",
    "III": "plateau escape",
    "IV": "convergence",
}

#: Colour of each Phase-I fate (labels of :data:`reluflow.analysis.theory.phase1.FATES`).
FATE_COLORS: dict[str, str] = {
    "condense": PALETTE["mu"],
    "slide": PALETTE["sliding"],
    "die": PALETTE["die"],
    "dead": PALETTE["dead"],
}

#: Colour of neurons dead from the start.
DEAD_COLOR = PALETTE["dead"]

#: Background tints of the regimes of :math:`(\Delta, p)` (keys of
#: :data:`reluflow.analysis.geometry.REGIMES`).
REGIME_COLORS: dict[str, str] = {
    "main": "#D6E7F5",
    "mu-plus-only": "#FBE8C6",
    "mirror": "#F8DCCB",
}

#: Names of the regimes as the book prints them.
REGIME_LABELS: dict[str, str] = {
    "main": "main",
    "mu-plus-only": "intermediate",
    "mirror": "mirror",
}

#: Colours of the integrators compared in the numerics chapter.
METHOD_COLORS: dict[str, str] = {
    "engine": "#000000",
    "gradient descent": "#56B4E9",
    "solve_ivp": "#777777",
}

#: Width (inches) of one book panel.
PANEL_WIDTH = 4.0

#: Smallest font size (points) of any text in a book panel.
MIN_FONT_PT = 11.0

#: Resolution (dots per inch) of the PNG of a book panel.
PANEL_DPI = 150.0

_RC: dict[str, Any] = {
    "font.size": 11.0,
    "axes.titlesize": 12.0,
    "axes.labelsize": 11.5,
    "legend.fontsize": 11.0,
    "legend.title_fontsize": 11.0,
    "xtick.labelsize": 11.0,
    "ytick.labelsize": 11.0,
    "figure.titlesize": 12.0,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "axes.grid": False,
    "legend.framealpha": 0.9,
    "legend.borderpad": 0.3,
    "legend.handlelength": 1.6,
    "legend.labelspacing": 0.3,
    "mathtext.fontset": "dejavusans",
}

TIME_LABEL = "time $t$ (log scale)"

#: Labels (mathtext) of the reference directions of
#: :func:`reluflow.analysis.geometry.reference_angles`.
REFERENCE_LABELS: dict[str, str] = {
    "x+": "$x_+$",
    "x-": "$x_-$",
    "mu": r"$\mu$",
    "x-perp": r"$x_-^\perp$",
    "x+perp": r"$x_+^\perp$",
}

_SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def styled(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: run a figure function inside :func:`style`.

    Matplotlib reads the font sizes when an artist is created, so every title, label and
    legend a book figure adds must be drawn inside the style, not only its axes.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with style():
            return func(*args, **kwargs)

    return wrapper


class BookFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that displays itself in Jupyter.

    Figures built without ``pyplot`` are not picked up by the inline backend, so a cell
    ending in ``fig`` would show only its ``repr``; ``_repr_png_`` makes IPython
    (and MyST-NB's ``glue``) render it as a PNG at :attr:`repr_dpi`.
    """

    #: Resolution of the notebook rendering (the book's minimum is 150 dpi).
    repr_dpi: float = PANEL_DPI

    def _repr_png_(self) -> bytes:
        buf = BytesIO()
        self.savefig(buf, format="png", dpi=self.repr_dpi, facecolor="white")
        return buf.getvalue()


def new_figure(figsize: tuple[float, float] = (6.4, 4.8), **kw: Any) -> BookFigure:
    """A new white, opaque :class:`BookFigure` (``kw`` go to ``Figure``, e.g. ``layout``).

    Use inside :func:`style` for the book's fonts; not registered with ``pyplot``.
    """
    fig = BookFigure(figsize=figsize, **kw)
    fig.patch.set_facecolor("white")
    fig.patch.set_alpha(1.0)
    return fig


def reference_colors() -> dict[str, str]:
    """Colour of each reference direction of :data:`REFERENCE_LABELS`."""
    return {
        "x+": PALETTE["positive"],
        "x-": PALETTE["negative"],
        "mu": PALETTE["mu"],
        "x-perp": PALETTE["reference"],
        "x+perp": PALETTE["reference"],
    }


def series_style(i: int, n: int) -> dict[str, Any]:
    """Colour (a grey) and marker of member ``i`` of a series of ``n`` parameter values.

    Greys from black (``i = 0``) to mid grey, one marker shape each, so a series never
    borrows a colour of :data:`PALETTE`.

    >>> series_style(0, 3)["color"], series_style(2, 3)["marker"]
    ('#000000', '^')
    """
    if isinstance(i, bool) or isinstance(n, bool) or not (0 <= int(i) < int(n)):
        raise ValueError(f"need 0 <= i < n, got i={i!r}, n={n!r}")
    level = 0 if n == 1 else round(0x99 * int(i) / (int(n) - 1))
    while level and f"#{level:02X}{level:02X}{level:02X}" in PALETTE.values():
        level += 1  # a shade off any grey of the palette
    return {"color": f"#{level:02X}{level:02X}{level:02X}",
            "marker": _SERIES_MARKERS[int(i) % len(_SERIES_MARKERS)]}
