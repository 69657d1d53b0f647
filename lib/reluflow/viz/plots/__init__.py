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

Colours are defined once in :data:`~reluflow.viz.plots.style.PALETTE`: neurons with
:math:`a_k > 0` (and the positive point :math:`x_+`) in blue, neurons with :math:`a_k < 0`
(and :math:`x_-`) in vermillion, in every figure.
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
from reluflow.viz.plots.overview import (
    ANNOTATION_LABELS,
    annotated_overview,
    overview_annotations,
    overview_caption,
    overview_figure,
)
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
from reluflow.viz.plots.style import (
    DEAD_COLOR,
    FATE_COLORS,
    PALETTE,
    PHASE_COLORS,
    PHASE_NAMES,
    PHASES,
    REFERENCE_LABELS,
    TIME_LABEL,
    BookFigure,
    new_figure,
    reference_colors,
    style,
)
from reluflow.viz.plots.timeline import (
    EVENT_MARKERS,
    group_series_panel,
    loss_panel,
    margin_panel,
    norms_panel,
    outputs_panel,
    phase_intervals,
    shade_phases,
    time_axis,
)

__all__ = [
    "ANNOTATION_LABELS",
    "DEAD_COLOR",
    "EVENT_MARKERS",
    "FATE_COLORS",
    "PALETTE",
    "PHASES",
    "PHASE_COLORS",
    "PHASE_NAMES",
    "RADIUS_MODES",
    "REFERENCE_LABELS",
    "TIME_LABEL",
    "BookFigure",
    "alive_mask",
    "annotated_overview",
    "as_time",
    "check_data",
    "check_radius_mode",
    "check_traj",
    "direction_time_map",
    "draw_reference_rays",
    "fate_map",
    "final_state_labels",
    "group_series_panel",
    "loss_panel",
    "margin_panel",
    "neuron_signs",
    "new_figure",
    "norms_panel",
    "outputs_panel",
    "overview_annotations",
    "overview_caption",
    "overview_figure",
    "phase_intervals",
    "polar_directions",
    "polar_radius",
    "positive_times",
    "radial_limits",
    "radius_floor",
    "reference_colors",
    "sample_neurons",
    "shade_phases",
    "style",
    "time_axis",
    "time_index",
]
