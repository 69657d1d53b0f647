r"""The book's figure style: one palette for phases, groups and fates; fonts; white figures.

Part of :mod:`reluflow.viz.plots` (conventions in its docstring).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure

__all__ = [
    "DEAD_COLOR",
    "FATE_COLORS",
    "PALETTE",
    "PHASES",
    "PHASE_COLORS",
    "PHASE_NAMES",
    "REFERENCE_LABELS",
    "TIME_LABEL",
    "BookFigure",
    "new_figure",
    "reference_colors",
    "style",
]


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


#: Labels (mathtext) of the reference directions of
#: :func:`reluflow.analysis.geometry.reference_angles`.
REFERENCE_LABELS: dict[str, str] = {
    "x+": "$x_+$",
    "x-": "$x_-$",
    "mu": r"$\mu$",
    "x-perp": r"$x_-^\perp$",
    "x+perp": r"$x_+^\perp$",
}


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
