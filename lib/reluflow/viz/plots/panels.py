r"""Book figures made of panels: side by side on a wide screen, stacked on a phone.

A book figure is a :class:`Panels`: a few single-panel matplotlib figures, each
:data:`~reluflow.viz.plots.style.PANEL_WIDTH` inches wide with every text at least
:data:`~reluflow.viz.plots.style.MIN_FONT_PT` points.  Its HTML rendering (what Jupyter
and MyST-NB's ``glue:figure`` show) is a ``<div class="rf-panels">`` of PNG images
(:data:`~reluflow.viz.plots.style.PANEL_DPI` dots per inch, embedded as data URIs, so the
page needs no other file) that wraps: two panels per row in the book's text column,
one per row on a phone. The layout is in the elements' own ``style`` attributes
(:data:`PANEL_STYLES`), so it is the same wherever the HTML is shown (the book,
JupyterLab's outputs and its MyST ``{eval}`` of a figure), with no stylesheet. Each
``<img>`` carries its width in inches and the smallest font size it contains (measured on
the drawn figure, not declared), so a test can check
the size at which a reader sees the text:

.. math:: s_\mathrm{shown} = s_\mathrm{min}\,\frac{w_\mathrm{shown}}{96\,w_\mathrm{in}}
          \quad\text{(points; } w_\mathrm{shown} \text{ in CSS pixels)}.

Examples
--------
>>> fig, ax = panel()
>>> _ = ax.plot([0, 1], [0, 1])
>>> _ = ax.set_title("(a) a line")
>>> figure = Panels([fig], alt="A straight line.")
>>> 'class="rf-panels"' in figure._repr_html_()
True
>>> min_font_size(fig) >= 10.0
True
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from io import BytesIO
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

from reluflow.viz.plots.style import MIN_FONT_PT, PANEL_DPI, PANEL_WIDTH, new_figure, style

__all__ = ["PANEL_STYLES", "Panels", "min_font_size", "panel", "panel_png"]

#: Inline styles of the figure's HTML: a wrapping row of panels, each at most its natural
#: width (4 in = 384 CSS px, so its text never shows below about 9 pt), the image filling
#: its panel.  ``margin`` and ``transform`` are reset because notebook front ends style
#: images inside Markdown (JupyterLab's MyST renderer shifts them down).
PANEL_STYLES: dict[str, str] = {
    "panels": "display:flex;flex-wrap:wrap;justify-content:center;gap:0.75rem;width:100%",
    "panel": "flex:1 1 300px;max-width:{width}px",
    "img": "display:block;width:100%;height:auto;margin:0 auto;transform:none;"
           "background-color:#ffffff",
}


def panel(height: float = 3.0, *, polar: bool = False) -> tuple[Figure, Axes]:
    """A new book panel: a :data:`~reluflow.viz.plots.style.PANEL_WIDTH`-inch figure, one axes.

    Parameters
    ----------
    height : float
        Height in inches, in [1.5, 6].
    polar : bool
        Polar axes (for directions in the data plane).

    Returns
    -------
    (Figure, Axes)
        The figure has ``layout="constrained"`` and the book's font sizes
        (:func:`~reluflow.viz.plots.style.style`).
    """
    h = float(height)
    if not 1.5 <= h <= 6.0:
        raise ValueError(f"height must lie in [1.5, 6] inches, got {height!r}")
    with style():
        fig = new_figure((PANEL_WIDTH, h), layout="constrained")
        ax = fig.add_subplot(projection="polar" if polar else None)
    return fig, ax


def min_font_size(fig: Figure) -> float:
    """Smallest font size (points) of the visible, non-empty texts of a drawn figure.

    Includes titles, axis labels, tick labels, legend entries and annotations (the figure
    is drawn first, so tick labels exist).  ``inf`` for a figure without text.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    fig.canvas.draw()
    texts = list(fig.findobj(Text))
    for ax in fig.axes:  # tick labels are not always among the artist's children
        texts += ax.get_xticklabels(which="both") + ax.get_yticklabels(which="both")
    sizes = [t.get_fontsize() for t in texts
             if t.get_visible() and t.get_text().strip() and _in_figure(t)]
    return float(min(sizes)) if sizes else float("inf")


def _in_figure(text: Text) -> bool:
    """Whether a text's anchor lies inside the figure (ticks outside the limits do not)."""
    fig = text.get_figure(root=True)
    if fig is None:  # pragma: no cover - every text of a drawn figure has one
        return True
    x, y = text.get_window_extent().get_points().mean(axis=0)
    return bool(-1 <= x <= fig.bbox.width + 1 and -1 <= y <= fig.bbox.height + 1)


def panel_png(fig: Figure, dpi: float = PANEL_DPI) -> bytes:
    """The PNG of one panel at ``dpi`` (at least 150) on white."""
    d = float(dpi)
    if not d >= 150.0:
        raise ValueError(f"dpi must be >= 150 for a book figure, got {dpi!r}")
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=d, facecolor="white")
    return buf.getvalue()


class Panels:
    """A book figure: panels that sit side by side and stack on narrow screens.

    Parameters
    ----------
    figures : sequence of Figure
        One figure per panel, each at most
        :data:`~reluflow.viz.plots.style.PANEL_WIDTH` inches wide (make them with
        :func:`panel`), every text at least :data:`~reluflow.viz.plots.style.MIN_FONT_PT`
        points.
    alt : str
        Text alternative describing the whole figure (for screen readers).
    dpi : float
        PNG resolution (>= 150).

    Raises
    ------
    ValueError
        If there is no panel, a panel is too wide or has a text that is too small (the
        limits above), or ``alt`` is empty.
    """

    def __init__(self, figures: Sequence[Figure], *, alt: str, dpi: float = PANEL_DPI) -> None:
        figs = list(figures)
        if not figs:
            raise ValueError("figures must hold at least one panel")
        if not isinstance(alt, str) or not alt.strip():
            raise ValueError("alt must be a non-empty description of the figure")
        self.figures = figs
        self.alt = alt.strip()
        self.dpi = float(dpi)
        self.fonts: list[float] = []
        for i, fig in enumerate(figs):
            width = float(fig.get_figwidth())
            if width > PANEL_WIDTH + 1e-9:
                raise ValueError(f"panel {i} is {width:g} in wide; at most {PANEL_WIDTH:g} in")
            size = min_font_size(fig)
            if size < MIN_FONT_PT:
                raise ValueError(f"panel {i} has text at {size:g} pt; at least {MIN_FONT_PT:g}")
            self.fonts.append(size)
        self._pngs = [panel_png(f, self.dpi) for f in figs]

    def __len__(self) -> int:
        return len(self.figures)

    def __repr__(self) -> str:
        return f"<Panels: {len(self)} panel(s), {self.alt[:60]!r}>"

    def _repr_html_(self) -> str:
        items = []
        for i, (fig, png, font) in enumerate(zip(self.figures, self._pngs, self.fonts,
                                                 strict=True)):
            w_in, h_in = fig.get_figwidth(), fig.get_figheight()
            src = base64.b64encode(png).decode("ascii")
            alt = html.escape(self.alt if len(self) == 1 else f"{self.alt} (panel {i + 1})")
            panel_style = PANEL_STYLES["panel"].format(width=round(96 * w_in))
            items.append(
                f'<div class="rf-panel" style="{panel_style}">'
                f'<img class="rf-panel-img" src="data:image/png;base64,{src}" alt="{alt}" '
                f'width="{round(96 * w_in)}" height="{round(96 * h_in)}" '
                f'style="{PANEL_STYLES["img"]}" '
                f'data-width-in="{w_in:g}" data-min-font-pt="{font:g}"></div>')
        return f'<div class="rf-panels" style="{PANEL_STYLES["panels"]}">{"".join(items)}</div>'

    def html_size(self) -> int:
        """Size of the HTML rendering in bytes (the page weight this figure adds)."""
        return len(self._repr_html_().encode())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self._repr_html_(), "text/plain": repr(self)}
