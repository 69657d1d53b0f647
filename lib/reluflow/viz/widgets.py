r"""A live-kernel explorer panel shared by the book's chapters.

:func:`explorer` returns an ``ipywidgets`` panel with sliders for the initialization
scale :math:`\kappa`, the angle :math:`\Delta`, the weight :math:`p`, the width
:math:`m`, the seed, the time window :math:`t_{\max}` (a log slider and a box that
takes any value in range) and the loss; every change (or the *Run* button) re-runs
:func:`reluflow.gradient_flow` and redraws :func:`reluflow.viz.plots.overview_figure`,
whose plateau line follows the regime and the loss, with this book's predicted saddle
escape (:func:`reluflow.analysis.saddle.predicted_escape`) marked.  When the run is still
at the saddle at :math:`t_{\max}`, the status line says so and suggests the window that
shows the escape (:func:`escape_window`).

The recomputation is separated from the widgets so that it is testable without a
browser: :class:`ExplorerState` holds (and validates) the values and :func:`simulate`
turns a state into ``(trajectory, figure)``.

On a static page (no kernel) the widgets do nothing; chapters print :data:`LAUNCH_NOTE`
next to each panel.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from io import BytesIO
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from reluflow.analysis.saddle import predicted_escape
from reluflow.analysis.text import math_number
from reluflow.analysis.theory import escape_rate, loss_scale
from reluflow.engine.trajectory import Trajectory
from reluflow.runs.config import FIELDS, Run, RunConfig
from reluflow.runs.config import simulate as simulate_run
from reluflow.viz import plots
from reluflow.viz.plots.style import PALETTE

__all__ = [
    "LAUNCH_NOTE",
    "M_CHOICES",
    "Explorer",
    "ExplorerState",
    "escape_window",
    "explorer",
    "saddle_message",
    "simulate",
]

#: One-line Markdown note for static builds of pages that contain a panel.
LAUNCH_NOTE = (
    "*Interactive explorer (sliders for κ, Δ, p, m, seed and the time window): it runs "
    "only in a live kernel, so the static page does not show it. Launch this page on "
    "Binder or Colab with the rocket button above to use it.*"
)

#: Widths offered by the *m* slider (roughly log-spaced).
M_CHOICES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)

@dataclass(frozen=True)
class ExplorerState:
    r"""The values of the explorer panel (validated on construction).

    Each value must lie in the explorers' range of its field, ``FIELDS[name].explore``
    (:data:`reluflow.runs.config.FIELDS`); :meth:`config` is the run they describe.

    Attributes
    ----------
    kappa, delta, p, m, seed, t_max, loss
        As in :class:`~reluflow.runs.config.RunConfig`.
    """

    kappa: float = 1e-4
    delta: float = 0.3
    p: float = 0.7
    m: int = 64
    seed: int = 0
    t_max: float = 1e6
    loss: str = "exp"

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, FIELDS[f.name].check_explore(getattr(self, f.name)))

    def config(self) -> RunConfig:
        """The run of these values (``d = 2``, balanced, default tolerance)."""
        return RunConfig(delta=self.delta, p=self.p, kappa=self.kappa, m=self.m,
                         seed=self.seed, t_max=self.t_max, loss=self.loss)


def _explore_max(name: str) -> int:
    rng = FIELDS[name].explore
    assert rng is not None
    return int(rng[1])


Engine = Callable[..., Trajectory]


def escape_window(state: ExplorerState) -> tuple[float, float]:
    r"""This book's saddle-escape time of a state's run, and a window that shows the escape.

    The time is :func:`reluflow.analysis.saddle.predicted_escape` for the state's
    initialization and loss.  The escape is where the loss has dropped by 1 %; the
    leaders' output then still grows like :math:`e^{2\lambda t/c}` (rate
    :func:`~reluflow.analysis.theory.escape_rate`, :math:`c` =
    :func:`~reluflow.analysis.theory.loss_scale`) until it is :math:`O(1)`, a factor of
    about 100, i.e. :math:`c\log(100)/(2\lambda) \approx 2.3\,c/\lambda` later.  The
    window adds :math:`3c/\lambda` (a factor :math:`e^6 \approx 400`) and is rounded up
    to two significant digits:

    .. math:: t_{\max} = \lceil t_\mathrm{esc} + 3c/\lambda \rceil_{2\,\text{digits}} .

    >>> t_esc, window = escape_window(ExplorerState(kappa=1e-6, t_max=80.0, loss="logistic"))
    >>> round(t_esc), window
    (50, 64.0)
    """
    run = state.config()
    t_esc = predicted_escape(run.data(), run.params(), state.kappa, state.loss)
    wait = 3.0 * loss_scale(state.loss) / escape_rate(run.data())
    return t_esc, _round_up(t_esc + wait)


def _round_up(x: float) -> float:
    """``x`` rounded up to two significant digits (``61.3`` -> ``62``, ``1234`` -> ``1300``)."""
    scale = 10.0 ** (math.floor(math.log10(x)) - 1)
    return float(math.ceil(x / scale - 1e-9) * scale)


def saddle_message(state: ExplorerState, t_escape: float | None) -> str:
    """The status note on the saddle escape: empty when the run left the saddle.

    Otherwise it says that the run is still at the saddle at ``t_max``, when this book
    predicts the escape (:func:`escape_window`), why (the logistic loss halves the speed
    near the saddle), and the ``t_max`` that shows it.
    """
    if t_escape is not None:
        return ""
    t_esc, window = escape_window(state)
    why = (" (the logistic loss halves the speed of the flow near the saddle)"
           if state.loss == "logistic" else "")
    return (f"The run is still at the saddle at t_max = {state.t_max:.3g}: this book "
            f"predicts the escape at t ≈ {t_esc:.3g}{why}. Set t_max to {window:.3g} or "
            "more to see it.")


def simulate(
    state: ExplorerState, *, engine: Engine | None = None, report: bool = True
) -> tuple[Trajectory, Figure]:
    r"""Run one configuration and draw its overview figure.

    Initializes ``init_network(m, 2, kappa, seed)`` (balanced), integrates
    :math:`\dot\theta = -\nabla L(\theta)` up to ``t_max`` with ``engine`` (default
    :func:`reluflow.gradient_flow`, the exact integrator) on ``TwoPointData(delta, p)``,
    and returns the trajectory and :func:`reluflow.viz.plots.overview_figure` (with the
    phases of ``reluflow.analysis.phases.detect_phases`` shaded when ``report`` is true).
    The loss panel marks the plateau level of the run's regime and loss and, when it falls
    in the window, this book's predicted saddle escape (:func:`escape_window`); the
    trajectory's ``info["t_escape"]`` is the measured escape (``None``: still at the
    saddle).

    Parameters
    ----------
    state : ExplorerState
        The configuration.
    engine : callable, optional
        ``engine(params, data, t_max, loss=...) -> Trajectory``.
    report : bool
        Detect and shade the phases.
    """
    if not isinstance(state, ExplorerState):
        raise ValueError(f"state must be an ExplorerState, got {type(state).__name__}")
    run = simulate_run(state.config(), engine=engine)
    traj = run.trajectory
    traj.info.setdefault("kappa", state.kappa)
    traj.info.setdefault("seed", state.seed)
    traj.info["t_escape"] = run.report.t_escape
    fig = plots.overview_figure(traj, run.data, run.report if report else None)
    _mark_predicted_escape(fig.axes[0], state, run)
    return traj, fig


def _mark_predicted_escape(ax: Any, state: ExplorerState, run: Run) -> None:
    """A vertical line at the predicted saddle escape on the loss panel (if in the window)."""
    t_esc, _ = escape_window(state)
    if 0.0 < t_esc <= float(run.trajectory.t[-1]):
        ax.axvline(t_esc, color=PALETTE["theory"], lw=1.2, ls="--",
                   label=f"predicted escape, t = {math_number(t_esc)}")
        ax.legend(loc="lower left")


def _figure_png(fig: Figure, dpi: float = 80.0) -> bytes:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


class Explorer(W.VBox):
    """The explorer panel: a ``VBox`` of controls, a status line and an output area.

    Attributes
    ----------
    controls : dict of str to Widget
        ``kappa``, ``delta``, ``p``, ``m``, ``seed``, ``t_max`` (a box that takes any
        value in range), ``t_max_slider`` (a log slider linked to it), ``loss`` and
        ``run``.
    output : ipywidgets.Output
        Where the figure is drawn.
    status : ipywidgets.HTML
        Run time, final loss and :func:`saddle_message`, or the error of the last run.
    note : ipywidgets.HTML
        A fixed note given at construction (e.g. a starting value moved into range).
    last : tuple of (Trajectory, Figure) or None
        The result of the last successful run.
    runs : int
        Number of recomputations so far.
    """

    def __init__(
        self,
        state: ExplorerState | None = None,
        *,
        auto: bool = True,
        engine: Engine | None = None,
        report: bool = True,
        note: str = "",
    ) -> None:
        st = ExplorerState() if state is None else state
        if not isinstance(st, ExplorerState):
            raise ValueError(f"state must be an ExplorerState, got {type(st).__name__}")
        self._engine = engine
        self._report = report
        self.last: tuple[Trajectory, Figure] | None = None
        self.runs = 0
        style = {"description_width": "70px"}
        lay = W.Layout(width="330px")
        t_lo, t_hi = FIELDS["t_max"].explore or (0.0, 0.0)
        m_opts = sorted(set(M_CHOICES) | {st.m})
        self.controls: dict[str, W.Widget] = {
            "kappa": W.FloatLogSlider(value=st.kappa, base=10, min=-12, max=-1, step=0.5,
                                      description="κ (init)", readout_format=".1e",
                                      continuous_update=False, style=style, layout=lay),
            "delta": W.FloatSlider(value=st.delta, min=0.02, max=1.5, step=0.01,
                                   description="Δ (rad)", readout_format=".2f",
                                   continuous_update=False, style=style, layout=lay),
            "p": W.FloatSlider(value=st.p, min=0.05, max=0.95, step=0.01, description="p",
                               readout_format=".2f", continuous_update=False, style=style,
                               layout=lay),
            "m": W.SelectionSlider(options=m_opts, value=st.m, description="m (width)",
                                   continuous_update=False, style=style, layout=lay),
            "seed": W.BoundedIntText(value=st.seed, min=0, max=_explore_max("seed"),
                                     description="seed", style=style,
                                     layout=W.Layout(width="200px")),
            "t_max": W.BoundedFloatText(value=st.t_max, min=t_lo, max=t_hi, description="t_max",
                                        style=style, layout=W.Layout(width="200px")),
            "t_max_slider": W.FloatLogSlider(value=st.t_max, base=10, min=math.log10(t_lo),
                                             max=math.log10(t_hi), step=0.01,
                                             description="log scale", readout_format=".3g",
                                             continuous_update=False, style=style, layout=lay),
            "loss": W.Dropdown(options=["exp", "logistic"], value=st.loss, description="loss",
                               style=style, layout=W.Layout(width="200px")),
            "run": W.Button(description="Run", button_style="primary", icon="play"),
        }
        self.auto = W.Checkbox(value=auto, description="re-run on change", indent=False)
        self.status = W.HTML(value="")
        self.note = W.HTML(value=f"<i>{html.escape(note)}</i>" if note else "")
        self.output = W.Output()
        for key in ("kappa", "delta", "p", "m", "seed", "t_max", "loss"):
            self.controls[key].observe(self._on_change, names="value")
        self.controls["run"].on_click(lambda _b: self.recompute())
        # the box holds t_max (any value in range); the log slider moves it in 1/100 decades
        self._t_link = W.link((self.controls["t_max_slider"], "value"),
                              (self.controls["t_max"], "value"))
        left = W.VBox([self.controls[k] for k in ("kappa", "delta", "p", "m")])
        right = W.VBox([self.controls[k] for k in ("t_max", "t_max_slider", "seed", "loss")]
                       + [W.HBox([self.controls["run"], self.auto])])
        super().__init__([W.HBox([left, right]), self.note, self.status, self.output])

    def state(self) -> ExplorerState:
        """The current widget values as a validated :class:`ExplorerState`."""
        c = self.controls
        return ExplorerState(kappa=c["kappa"].value, delta=c["delta"].value, p=c["p"].value,
                             m=int(c["m"].value), seed=int(c["seed"].value),
                             t_max=c["t_max"].value, loss=c["loss"].value)

    def set_state(self, state: ExplorerState) -> None:
        """Set every widget from ``state`` (one recomputation at most, if ``auto``)."""
        if not isinstance(state, ExplorerState):
            raise ValueError(f"state must be an ExplorerState, got {type(state).__name__}")
        auto = self.auto.value
        self.auto.value = False
        try:
            for f in fields(ExplorerState):
                w = self.controls[f.name]
                if f.name == "m" and state.m not in w.options:
                    w.options = sorted({*w.options, state.m})
                w.value = getattr(state, f.name)
        finally:
            self.auto.value = auto
        if auto:
            self.recompute()

    def _on_change(self, change: dict[str, Any]) -> None:
        if self.auto.value:
            self.recompute()

    def recompute(self) -> tuple[Trajectory, Figure] | None:
        """Re-run :func:`simulate` with the current values and redraw the output.

        Returns the ``(trajectory, figure)`` pair, or ``None`` when the values are invalid
        or the run failed (the error is shown in :attr:`status`).
        """
        from IPython.display import Image

        self.runs += 1
        try:
            st = self.state()
            self.status.value = "<i>running…</i>"
            traj, fig = simulate(st, engine=self._engine, report=self._report)
        except Exception as exc:  # shown to the reader; the panel stays usable
            msg = f"error: {type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:#b00'>{html.escape(msg)}</span>"
            return None
        self.last = (traj, fig)
        wall = traj.info.get("wall_time")
        note = saddle_message(st, traj.info.get("t_escape"))
        self.status.value = (
            f"final loss {float(traj.loss[-1]):.3g} at t = {float(traj.t[-1]):.3g}"
            + (f"; computed in {float(wall):.2f} s" if wall is not None else "")
            + (f"<br><b>{html.escape(note)}</b>" if note else "")
        )
        # Replace the output's content directly (works from any thread, and without a
        # front end, which keeps this testable).
        self.output.outputs = ()
        self.output.append_display_data(Image(data=_figure_png(fig), format="png"))
        return traj, fig


def explorer(
    state: ExplorerState | None = None,
    *,
    auto: bool = True,
    run: bool = True,
    engine: Engine | None = None,
    report: bool = True,
    note: str = "",
    **values: Any,
) -> Explorer:
    """Build the explorer panel (and, with ``run=True``, draw the first figure).

    Parameters
    ----------
    state : ExplorerState, optional
        Initial values (default :class:`ExplorerState` ()).
    auto : bool
        Re-run on every change (sliders update on release); otherwise only on *Run*.
    run : bool
        Compute the initial figure right away.
    engine : callable, optional
        Integrator for :func:`simulate` (default :func:`reluflow.gradient_flow`).
    report : bool
        Shade the detected phases.
    note : str
        A line shown above the status (plain text).
    **values
        Overrides of the state's fields, e.g. ``explorer(kappa=1e-6, t_max=1e12)``.

    Returns
    -------
    Explorer
        An ``ipywidgets.VBox``; display it as the last expression of a cell.
    """
    st = ExplorerState() if state is None else state
    if not isinstance(st, ExplorerState):
        raise ValueError(f"state must be an ExplorerState, got {type(st).__name__}")
    names = {f.name for f in fields(ExplorerState)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown explorer values {sorted(unknown)}; allowed: {sorted(names)}")
    st = replace(st, **values) if values else st
    panel = Explorer(st, auto=auto, engine=engine, report=report, note=note)
    if run:
        panel.recompute()
    return panel
