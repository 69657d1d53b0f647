r"""A live-kernel explorer panel shared by the book's chapters.

:func:`explorer` returns an ``ipywidgets`` panel with sliders for the initialization
scale :math:`\kappa`, the angle :math:`\Delta`, the weight :math:`p`, the width
:math:`m`, the seed, the time window :math:`t_{\max}` and the loss; every change (or
the *Run* button) re-runs :func:`reluflow.gradient_flow` and redraws
:func:`reluflow.viz.plots.overview_figure`.

The recomputation is separated from the widgets so that it is testable without a
browser: :class:`ExplorerState` holds (and validates) the values and :func:`simulate`
turns a state into ``(trajectory, figure)``.

On a static page (no kernel) the widgets do nothing; chapters print :data:`LAUNCH_NOTE`
next to each panel.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from io import BytesIO
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from reluflow.engine.trajectory import Trajectory
from reluflow.runs.config import FIELDS, RunConfig
from reluflow.runs.config import simulate as simulate_run
from reluflow.viz import plots

__all__ = [
    "LAUNCH_NOTE",
    "M_CHOICES",
    "Explorer",
    "ExplorerState",
    "explorer",
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


def simulate(
    state: ExplorerState, *, engine: Engine | None = None, report: bool = True
) -> tuple[Trajectory, Figure]:
    r"""Run one configuration and draw its overview figure.

    Initializes ``init_network(m, 2, kappa, seed)`` (balanced), integrates
    :math:`\dot\theta = -\nabla L(\theta)` up to ``t_max`` with ``engine`` (default
    :func:`reluflow.gradient_flow`, the exact integrator) on ``TwoPointData(delta, p)``,
    and returns the trajectory and :func:`reluflow.viz.plots.overview_figure` (with the
    phases of ``reluflow.analysis.phases.detect_phases`` shaded when ``report`` is true).

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
    fig = plots.overview_figure(traj, run.data, run.report if report else None)
    return traj, fig


def _figure_png(fig: Figure, dpi: float = 80.0) -> bytes:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


class Explorer(W.VBox):
    """The explorer panel: a ``VBox`` of controls, a status line and an output area.

    Attributes
    ----------
    controls : dict of str to Widget
        ``kappa``, ``delta``, ``p``, ``m``, ``seed``, ``t_max``, ``loss`` and ``run``.
    output : ipywidgets.Output
        Where the figure is drawn.
    status : ipywidgets.HTML
        Run time, final loss, or the error of the last run.
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
            "t_max": W.FloatLogSlider(value=st.t_max, base=10, min=0, max=30, step=1,
                                      description="t_max", readout_format=".0e",
                                      continuous_update=False, style=style, layout=lay),
            "loss": W.Dropdown(options=["exp", "logistic"], value=st.loss, description="loss",
                               style=style, layout=W.Layout(width="200px")),
            "run": W.Button(description="Run", button_style="primary", icon="play"),
        }
        self.auto = W.Checkbox(value=auto, description="re-run on change", indent=False)
        self.status = W.HTML(value="")
        self.output = W.Output()
        for key in ("kappa", "delta", "p", "m", "seed", "t_max", "loss"):
            self.controls[key].observe(self._on_change, names="value")
        self.controls["run"].on_click(lambda _b: self.recompute())
        left = W.VBox([self.controls[k] for k in ("kappa", "delta", "p", "m")])
        right = W.VBox([self.controls[k] for k in ("t_max", "seed", "loss")]
                       + [W.HBox([self.controls["run"], self.auto])])
        super().__init__([W.HBox([left, right]), self.status, self.output])

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
        self.status.value = (
            f"final loss {float(traj.loss[-1]):.3g} at t = {float(traj.t[-1]):.3g}"
            + (f"; computed in {float(wall):.2f} s" if wall is not None else "")
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
    panel = Explorer(st, auto=auto, engine=engine, report=report)
    if run:
        panel.recompute()
    return panel
