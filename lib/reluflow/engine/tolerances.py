r"""Named tolerances of the exact gradient-flow engine, in one frozen dataclass.

Every threshold the event-driven integrator :func:`reluflow.gradient_flow` uses is a field
of :class:`Tolerances`; none is a bare number in the step code.  Only ``rtol`` is a user
choice (the ``rtol`` argument of :func:`~reluflow.gradient_flow`); the others follow from
float64 rounding or from the explicit integrator (DOP853) and are documented with the
argument that fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RTOL_RANGE", "T_MIN", "Tolerances"]

#: Allowed range of the local error tolerance ``rtol``.
RTOL_RANGE = (1e-14, 1e-3)

#: Smallest accepted horizon ``t_max``: below it the default recording grid
#: (:func:`~reluflow.engine.trajectory.default_times`, from ``t_max / 100``) and the first
#: integration step are not representable as normal float64 numbers.
T_MIN = 1e-300

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Tolerances:
    r"""Thresholds of one :func:`~reluflow.gradient_flow` run.

    Attributes
    ----------
    rtol : float
        Local error of the integrator per neuron, relative to the neuron's size
        (max norm over neurons and components), in :data:`RTOL_RANGE`.
    boundary : float
        A point is *on* neuron k's boundary when
        :math:`|\beta_k^\top \tilde x_i| \le` ``boundary``
        :math:`\lVert\beta_k\rVert\lVert\tilde x_i\rVert`: a few hundred roundings of
        the products, so rounding never creates an event and a located event is never
        lost to rounding.
    batch_share : float
        Share of ``rtol`` that the deferred effect of the events inside one step may use
        (the rest is the integrator's): events change a neuron's field at once, but the
        coupling through the outputs :math:`f(x_i)` sees them only at the step end.
    max_passes : int
        Events one neuron may have inside one step; a neuron reaching it has the step cut
        at its last event (the bound only stops a zero-time cycle of events at a corner
        where several boundaries meet).
    frozen_share : float
        Share of ``rtol`` by which a catch-up may move a neuron off its motion when it
        freezes the residuals at their step-start values (the outputs are negligible
        early in a run from a small start: :func:`~reluflow.engine.stepper.frozen_fields`
        bounds the effect); the integrator's own error is ``rtol``.
    cut_growth : float
        After a step cut short by its events (``batch_share``), the next step is tried
        no longer than ``cut_growth`` times the length the events allowed: the next
        cluster of events is usually as close, and every neuron's first event is
        located over the whole step tried, so a much longer try is wasted work.
    cut_aim : float
        A step whose deferred events exceed ``batch_share`` is cut where the error model
        gives ``cut_aim`` of that budget, not all of it.  The model is derived again at
        the new end from the exact motion there and is usually revised up by a few per
        cent; a cut to the whole budget would then be cut again, by a hair, many times
        over (up to 24 cuts of one step measured on random data).
    stiff_hlambda : float
        DOP853's stability bound along the negative real axis (Hairer's value 6.1): a
        step with :math:`h\lambda` above it is limited by stability, not accuracy.
    stiff_steps : int
        Stability-limited steps that mark the flow as stiff (Hairer: 15), counted until
        ``stiff_calm`` consecutive steps are not.
    stiff_calm : int
        Consecutive steps within the stability bound that reset the count of
        stability-limited ones (Hairer: 6).
    stiff_budget : int
        A stiff run stops (with its reason in ``Trajectory.info``) when reaching
        ``t_max`` at the current step length in :math:`t` would take more steps than
        this: near a non-zero-loss stationary point the flow relaxes at a fixed rate in
        :math:`t`, i.e. ever faster in :math:`\tau = \log(1+t)`, and an explicit
        integrator would need a number of steps proportional to :math:`t`.
    rounding_field : float
        A neuron's field :math:`v_k` is at the rounding level of its terms when
        :math:`\lVert v_k\rVert \le` ``rounding_field``
        :math:`\sum_i |r_i|\,\lVert\tilde x_i\rVert` over its active points.
    stall_steps : int
        Consecutive steps without progress in time after which the run raises instead
        of looping.
    resolved_slack : float
        A neuron's motion after an event is accurate to the integration error (about
        ``rtol`` times its size, more on a propagator applied from the step start), and
        just after a release its normal velocity to the released boundary vanishes, so
        the side it departs to is decided at that error level.  A neuron just resolved
        on a boundary switches back only if its motion crosses it by more than
        ``rtol`` of its size, and a neuron on the other side of a point than its state
        says by no more than that is on that boundary too.  Each time a neuron
        nevertheless comes back at the same instant, that margin grows by the factor
        ``resolved_slack`` (:meth:`slack`), so a decision taken at the error level
        cannot switch back and forth for ever.

    Examples
    --------
    >>> tol = Tolerances(rtol=1e-8)
    >>> tol.batch
    5e-09
    >>> Tolerances(rtol=0.1)
    Traceback (most recent call last):
    ...
    ValueError: rtol must lie in [1e-14, 0.001], got 0.1
    """

    rtol: float = 1e-9
    boundary: float = 256 * _EPS
    batch_share: float = 0.5
    max_passes: int = 32
    cut_growth: float = 1.5
    cut_aim: float = 0.95
    frozen_share: float = 0.01
    stiff_hlambda: float = 6.1
    stiff_steps: int = 15
    stiff_calm: int = 6
    stiff_budget: int = 20_000
    rounding_field: float = 64 * _EPS
    stall_steps: int = 200
    resolved_slack: float = 10.0

    def __post_init__(self) -> None:
        lo, hi = RTOL_RANGE
        if not lo <= self.rtol <= hi:
            raise ValueError(f"rtol must lie in [{lo:g}, {hi:g}], got {self.rtol!r}")
        if not self.cut_growth > 1:
            raise ValueError(f"cut_growth must be > 1, got {self.cut_growth!r}")
        if not 0 < self.cut_aim <= 1:
            raise ValueError(f"cut_aim must lie in (0, 1], got {self.cut_aim!r}")
        if not 0 <= self.frozen_share < 1:
            raise ValueError(f"frozen_share must lie in [0, 1), got {self.frozen_share!r}")
        if not 0 < self.batch_share < 1:
            raise ValueError(f"batch_share must lie in (0, 1), got {self.batch_share!r}")
        for name in ("max_passes", "stiff_steps", "stiff_calm", "stiff_budget",
                     "stall_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be an integer >= 1")

    @property
    def solver_rtol(self) -> float:
        """``rtol`` for scipy's solvers, which floor it at 100 machine epsilons."""
        return max(self.rtol, 100 * _EPS)

    def slack(self, stuck: np.ndarray) -> np.ndarray:
        r"""Relative margin of a move that counts after an event, per neuron.

        ``rtol * resolved_slack ** stuck`` (at most 0.1), ``stuck`` the neuron's events
        at the same instant before this one.

        >>> Tolerances(rtol=1e-6).slack(np.array([0, 1, 2]))
        array([1.e-06, 1.e-05, 1.e-04])
        """
        k = np.minimum(np.asarray(stuck, dtype=np.float64), 8.0)
        return np.asarray(np.minimum(self.rtol * self.resolved_slack**k, 0.1))

    @property
    def batch(self) -> float:
        """Error budget of the deferred events of one step: ``batch_share * rtol``."""
        return self.batch_share * self.rtol
