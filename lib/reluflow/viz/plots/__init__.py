r"""Figures shared by the book's chapters, the CLI and the widgets.

Every function here draws with the object-oriented matplotlib API on an ``Axes`` it is
given (``*_panel`` and ``*_map`` functions return that ``Axes``) or builds and returns a
fresh :class:`matplotlib.figure.Figure` (never through ``pyplot``, so nothing is left
in a global figure registry and the module is safe under the ``Agg`` backend).  Every
figure has a white opaque background and labelled axes.

Geometry (:mod:`reluflow.analysis.geometry`): directions are drawn in the data plane
:math:`\operatorname{span}\{x_+, x_-\}` with the orthonormal basis

.. math::

    u_1 = x_+, \qquad u_2 = \frac{x_- - \cos\Delta\,x_+}{\sin\Delta},

so that the angle of :math:`b_k` is :math:`\operatorname{atan2}(b_k^\top u_2,
b_k^\top u_1)`, measured from :math:`x_+` towards :math:`x_-` (:math:`x_-` sits at
:math:`\Delta`, :math:`x_+^\perp` at :math:`90^\circ`, :math:`x_-^\perp` at
:math:`\Delta - 90^\circ`).  For :math:`d > 2` the component of :math:`b_k` orthogonal
to the data plane is frozen by the flow and is left out.

Colours are defined once in :mod:`~reluflow.viz.plots.style` (one meaning per colour: the
two sign groups, :math:`\mu`, predictions, sliding, the fates, the phases, the regimes).
Book figures are :class:`~reluflow.viz.plots.panels.Panels`: panels of
:data:`~reluflow.viz.plots.style.PANEL_WIDTH` inches with text of at least
:data:`~reluflow.viz.plots.style.MIN_FONT_PT` points, side by side on a wide screen and
stacked on a phone; one subject module per chapter draws them (``diagrams``,
``condensation``, ...).
"""

from __future__ import annotations

from reluflow.viz.plots.base import (
    alive_mask,
    as_time,
    check_data,
    check_traj,
    neuron_signs,
    positive_times,
    sample_neurons,
    time_index,
)
from reluflow.viz.plots.condensation import (
    condensation_figure,
    fate_figure,
    simplification_figure,
)
from reluflow.viz.plots.convergence import convergence_figure, seeds_figure
from reluflow.viz.plots.diagrams import DIAGRAMS, REGION_FILLS, data_plane, intuition_diagram
from reluflow.viz.plots.escape import release_figure, slopes_figure
from reluflow.viz.plots.numerics import accuracy_figure, chattering_figure, drift_figure
from reluflow.viz.plots.overview import (
    ANNOTATION_LABELS,
    annotated_overview,
    book_overview,
    overview_annotations,
    overview_caption,
    overview_figure,
    overview_panels,
)
from reluflow.viz.plots.panels import Panels, min_font_size, panel, panel_png
from reluflow.viz.plots.polar import (
    RADIUS_MODES,
    check_radius_mode,
    direction_time_map,
    draw_reference_rays,
    fate_map,
    final_state_labels,
    polar_directions,
    polar_radius,
    radial_limits,
    radius_floor,
)
from reluflow.viz.plots.saddle import escape_figure, plateau_figure, rotation_figure
from reluflow.viz.plots.setting import (
    early_figure,
    identities_figure,
    snapshot_times,
    snapshots_figure,
)
from reluflow.viz.plots.style import (
    DEAD_COLOR,
    FATE_COLORS,
    METHOD_COLORS,
    MIN_FONT_PT,
    PALETTE,
    PANEL_DPI,
    PANEL_WIDTH,
    PHASE_COLORS,
    PHASE_NAMES,
    PHASES,
    REFERENCE_LABELS,
    REGIME_COLORS,
    REGIME_LABELS,
    TIME_LABEL,
    BookFigure,
    new_figure,
    reference_colors,
    series_style,
    style,
)
from reluflow.viz.plots.sweeps import diagram_figure, kappa_width_figure, unbalanced_figure
from reluflow.viz.plots.timeline import (
    EVENT_MARKERS,
    group_series_panel,
    loss_panel,
    margin_panel,
    norms_panel,
    outputs_panel,
    phase_intervals,
    plateau_label,
    plateau_line,
    shade_phases,
    time_axis,
)

__all__ = [
    "ANNOTATION_LABELS",
    "DEAD_COLOR",
    "DIAGRAMS",
    "EVENT_MARKERS",
    "FATE_COLORS",
    "METHOD_COLORS",
    "MIN_FONT_PT",
    "PALETTE",
    "PANEL_DPI",
    "PANEL_WIDTH",
    "PHASES",
    "PHASE_COLORS",
    "PHASE_NAMES",
    "RADIUS_MODES",
    "REFERENCE_LABELS",
    "REGIME_COLORS",
    "REGIME_LABELS",
    "REGION_FILLS",
    "TIME_LABEL",
    "BookFigure",
    "Panels",
    "accuracy_figure",
    "alive_mask",
    "annotated_overview",
    "as_time",
    "book_overview",
    "chattering_figure",
    "check_data",
    "check_radius_mode",
    "check_traj",
    "condensation_figure",
    "convergence_figure",
    "data_plane",
    "diagram_figure",
    "direction_time_map",
    "draw_reference_rays",
    "drift_figure",
    "early_figure",
    "escape_figure",
    "fate_figure",
    "fate_map",
    "final_state_labels",
    "group_series_panel",
    "identities_figure",
    "intuition_diagram",
    "kappa_width_figure",
    "loss_panel",
    "margin_panel",
    "min_font_size",
    "neuron_signs",
    "new_figure",
    "norms_panel",
    "outputs_panel",
    "overview_annotations",
    "overview_caption",
    "overview_figure",
    "overview_panels",
    "panel",
    "panel_png",
    "phase_intervals",
    "plateau_figure",
    "plateau_label",
    "plateau_line",
    "polar_directions",
    "polar_radius",
    "positive_times",
    "radial_limits",
    "radius_floor",
    "reference_colors",
    "release_figure",
    "rotation_figure",
    "sample_neurons",
    "seeds_figure",
    "series_style",
    "shade_phases",
    "simplification_figure",
    "slopes_figure",
    "snapshot_times",
    "snapshots_figure",
    "style",
    "time_axis",
    "time_index",
    "unbalanced_figure",
]
