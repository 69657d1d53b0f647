r"""Closed-form predictions for the two-point problem and a numerical max-margin solver.

One module per phase (:mod:`~reluflow.analysis.theory.phase1` ...
:mod:`~reluflow.analysis.theory.phase4`), the max-margin problem
(:mod:`~reluflow.analysis.theory.maxmargin`) and the scaling predictions
(:mod:`~reluflow.analysis.theory.scaling`); the geometry they share is
:mod:`reluflow.analysis.geometry`.  This package re-exports all of them, so
``reluflow.theory.regime`` or ``reluflow.theory.fate`` work as one namespace.

Everything here is evaluated from the data (and, where stated, the initial parameters)
alone, never from a simulated trajectory, so that it can be *compared* with one.

Provenance.  The paper (Wang & Ma, NeurIPS 2023) is the source of the phenomena: the four
phases, initial condensation, saddle-to-plateau dynamics, plateau escape, deactivation and
reactivation, increasing complexity.  Every *quantitative* statement below (rates, times,
levels, boundaries, the margin :math:`\sin\Delta/4`) is **this book's derivation** for the
two-point setting and is checked numerically, in the chapter that states it and over a grid
of parameters by the repository's ``benchmarks/validate_theory.py``.

Conventions.  Data :math:`x_+ = e_1` (label +1, weight :math:`p`) and
:math:`x_- = \cos\Delta\,e_1 + \sin\Delta\,e_2` (label -1, weight :math:`1-p`),
:math:`\Delta\in(0, \pi/2)`.  A neuron :math:`(a_k, b_k)` is described by the angle
:math:`\varphi_k\in(-\pi, \pi]` of the projection of :math:`b_k` onto the data plane
:math:`\operatorname{span}\{e_1, e_2\}`, measured from :math:`x_+` (so :math:`x_-` is at
:math:`\Delta`, :math:`x_-^\perp` at :math:`\Delta - \pi/2` and :math:`x_+^\perp` at
:math:`\pi/2`), and by the sign of :math:`a_k`.  Its activation region is

* ``"both"``: :math:`\varphi\in(\Delta - \pi/2, \pi/2)` (active on both points),
* ``"plus-only"``: :math:`\varphi\in(-\pi/2, \Delta - \pi/2)`,
* ``"minus-only"``: :math:`\varphi\in(\pi/2, \pi/2 + \Delta)`,
* ``"none"``: the rest (dead: zero gradient forever).

Near the origin (:math:`f\approx 0`) the residual weights are :math:`r = (p, -(1-p))` and a
neuron active on both points follows :math:`\dot b_k = a_k\mu`, :math:`\dot a_k = b_k^\top\mu`
with

.. math:: \mu = p\,x_+ - (1-p)\,x_- = \sum_i w_i y_i x_i .
"""

from reluflow.analysis.geometry import (
    HALF_PI,
    REGIMES,
    REGIONS,
    effective_data,
    mu,
    mu_angle,
    plane_angles,
    regime,
    region_bounds,
    regions_of,
    roles,
    x_minus_perp,
    x_plus_perp,
)
from reluflow.analysis.theory.maxmargin import MaxMarginResult, max_margin
from reluflow.analysis.theory.phase1 import (
    FATES,
    condensation_angle,
    condensation_rate,
    fate,
    fate_boundaries,
    fate_boundary_distance,
    phase1_growth_bound,
    sliding_rates,
)
from reluflow.analysis.theory.phase2 import (
    escape_rate,
    growth_coefficients,
    loss_at_origin,
    plateau_level,
    plateau_output,
    saddle_escape_time,
)
from reluflow.analysis.theory.phase3 import (
    SLOPE_FORMULAS,
    leading_slope,
    plateau_escape_slope,
    plateau_escape_time,
    plateau_exit_output,
    reactivation_condition,
    reactivation_threshold,
)
from reluflow.analysis.theory.phase4 import (
    final_directions,
    final_margin,
    phase4_angle,
    phase4_log10_time,
    phase4_loss,
    phase4_slow_manifold,
)
from reluflow.analysis.theory.scaling import (
    horizon,
    loss_scale,
    plateau_escape_slope_prediction,
    plateau_exit_loss,
    regime_map,
)

__all__ = [
    "FATES",
    "HALF_PI",
    "REGIMES",
    "REGIONS",
    "SLOPE_FORMULAS",
    "MaxMarginResult",
    "condensation_angle",
    "condensation_rate",
    "effective_data",
    "escape_rate",
    "fate",
    "fate_boundaries",
    "fate_boundary_distance",
    "final_directions",
    "final_margin",
    "growth_coefficients",
    "horizon",
    "leading_slope",
    "loss_at_origin",
    "loss_scale",
    "max_margin",
    "mu",
    "mu_angle",
    "phase1_growth_bound",
    "phase4_angle",
    "phase4_log10_time",
    "phase4_loss",
    "phase4_slow_manifold",
    "plane_angles",
    "plateau_escape_slope",
    "plateau_escape_slope_prediction",
    "plateau_escape_time",
    "plateau_exit_loss",
    "plateau_exit_output",
    "plateau_level",
    "plateau_output",
    "reactivation_condition",
    "reactivation_threshold",
    "regime",
    "regime_map",
    "region_bounds",
    "regions_of",
    "roles",
    "saddle_escape_time",
    "sliding_rates",
    "x_minus_perp",
    "x_plus_perp",
]
