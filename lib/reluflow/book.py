r"""Helpers shared by the book's notebooks: run mode, parameters, glue, tables, checks.

Every chapter notebook follows the same conventions (the README's section "The book"
lists them; ``tests/chapters/test_book_structure.py`` checks them):

* its first code cell is tagged ``parameters`` and defines ``FAST = fast_default()``,
  ``SEED`` and its physical parameters, so that both the book build (which reads the
  environment variable ``RELUFLOW_FAST``) and ``papermill -p FAST True`` work;
* the next code cell validates them all with one :func:`check_parameters` call, which
  quotes the allowed range of each from :data:`reluflow.runs.config.FIELDS` (narrowed
  where the chapter needs it) and raises :class:`ValueError` naming the parameter;
* numbers quoted in the text are glued with :func:`glue_number` (typeset as MyST maths
  when they carry an exponent), words with :func:`glue_text`, figures with
  :func:`glue_figure`; tables are Markdown (:func:`markdown_table`), never raw text;
* the text quotes a glued value with ``{eval}`name```: each glue also binds ``name`` in
  the notebook's namespace, so JupyterLab with jupyterlab-myst evaluates the role in the
  kernel and shows the same value, and the book's Sphinx extension makes ``eval`` paste
  the glued output (a figure is a ``figure`` directive without an image whose first
  paragraph is the ``{eval}`` of the glued figure);
* the claims are asserted with a :class:`CheckList`, whose :meth:`CheckList.finish`
  shows one admonition ("N of N checks passed", the table of checks folded) and glues
  ``checks_passed`` and ``checks_count``.

The book build reads the same variable: the book's Sphinx extension
(``book/_ext/reluflow_sphinx.py``) makes the mode part of the build environment, so a
fast and a full build never reuse each other's executed outputs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from reluflow.analysis.text import markdown_table, math_number
from reluflow.engine import checks as v
from reluflow.runs.config import FIELDS, ConfigError, Field

__all__ = [
    "BOOK_RANGES",
    "EXPLORER_PARAMETERS",
    "FAST_ENV",
    "FLAGS",
    "GLUE_METADATA_KEY",
    "PARAMETER_FIELDS",
    "Check",
    "CheckList",
    "GluedNumber",
    "GluedText",
    "animation",
    "check_choice",
    "check_flag",
    "check_param",
    "check_parameters",
    "check_seed",
    "fast_default",
    "glue_figure",
    "glue_measured",
    "glue_number",
    "glue_numbers",
    "glue_text",
    "live_explorer",
    "markdown_table",
    "math_number",
    "phase_sentence",
    "show_markdown",
]

#: Environment variable selecting the fast (smoke-test sized) mode of every notebook.
FAST_ENV = "RELUFLOW_FAST"

#: Output-metadata key under which :func:`glue_number` stores the exact value.
GLUE_METADATA_KEY = "reluflow"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def fast_default(environ: Mapping[str, str] | None = None) -> bool:
    """Default of a notebook's ``FAST`` parameter, read from ``RELUFLOW_FAST``.

    Parameters
    ----------
    environ : mapping, optional
        Environment to read (default :data:`os.environ`).

    Returns
    -------
    bool
        ``True`` for ``1``/``true``/``yes``/``on``, ``False`` when unset, empty or
        ``0``/``false``/``no``/``off`` (case-insensitive, surrounding blanks ignored).

    Raises
    ------
    ValueError
        For any other value, naming the variable and the accepted values.
    """
    env = os.environ if environ is None else environ
    raw = env.get(FAST_ENV, "")
    val = raw.strip().lower()
    if val in _TRUE:
        return True
    if val in _FALSE:
        return False
    raise ValueError(
        f"{FAST_ENV} must be one of {_TRUE + _FALSE[1:]} (or unset), got {raw!r}"
    )


def check_flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is a boolean (``True``/``False``, or ``numpy.bool_``).

    Raises
    ------
    ValueError
        Naming ``name`` when ``value`` is not a boolean (``1`` or ``"True"`` are refused,
        so a mistyped papermill parameter cannot silently select a mode).
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ValueError(f"{name} must be a boolean (True or False), got {value!r}")


Inclusive = Literal["neither", "both", "left", "right"]


def check_param(
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    inclusive: Inclusive = "neither",
    integer: bool = False,
) -> float:
    r"""Validate a numeric notebook parameter against an interval.

    The allowed set is :math:`(lo, hi)`, :math:`[lo, hi]`, :math:`[lo, hi)` or
    :math:`(lo, hi]` for ``inclusive`` = ``"neither"``, ``"both"``, ``"left"``,
    ``"right"``; infinite bounds are always open.

    Parameters
    ----------
    name : str
        Parameter name used in the error message (e.g. ``"DELTA"``).
    value : object
        The value to check; ``bool`` and strings are refused.
    lo, hi : float
        Bounds of the allowed interval.
    inclusive : {"neither", "both", "left", "right"}
        Which bounds belong to the interval.
    integer : bool
        Also require an integral value (returned as ``int``).

    Returns
    -------
    float or int
        The value as ``float`` (or ``int`` when ``integer``).

    Raises
    ------
    ValueError
        Naming ``name``, the allowed range and the offending value.
    """
    if inclusive not in ("neither", "both", "left", "right"):
        raise ValueError(
            f"inclusive must be one of 'neither', 'both', 'left', 'right', got {inclusive!r}"
        )
    lo_f, hi_f = float(lo), float(hi)
    if math.isnan(lo_f) or math.isnan(hi_f) or not lo_f <= hi_f:
        raise ValueError(f"bounds must satisfy lo <= hi, got lo={lo!r}, hi={hi!r}")
    left = inclusive in ("both", "left") and math.isfinite(lo_f)
    right = inclusive in ("both", "right") and math.isfinite(hi_f)
    rng = f"{'[' if left else '('}{lo_f:g}, {hi_f:g}{']' if right else ')'}"
    kind = "an integer" if integer else "a finite real number"
    if isinstance(value, str | bytes):  # papermill -r passes raw strings: refuse, don't parse
        raise ValueError(f"{name} must be {kind} in {rng}, got the string {value!r}")
    x = v.real_scalar(name, value)
    ok_lo = x >= lo_f if left else x > lo_f
    ok_hi = x <= hi_f if right else x < hi_f
    if not (ok_lo and ok_hi) or (integer and not x.is_integer()):
        raise ValueError(f"{name} must be {kind} in {rng}, got {value!r}")
    return int(x) if integer else x


def check_seed(name: str, value: Any) -> int:
    """Validate a random seed: an integer ``>= 0`` (for :func:`numpy.random.default_rng`)."""
    return v.int_at_least(name, value, 0)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)!r}, got {value!r}")
    return value


#: Chapter parameters that set a run field, and the field (its range is quoted from
#: :data:`reluflow.runs.config.FIELDS`).
PARAMETER_FIELDS: dict[str, str] = {
    "SEED": "seed",
    "KAPPA": "kappa",
    "DELTA": "delta",
    "P": "p",
    "M": "m",
    "T_MAX": "t_max",
}

#: Ranges the book narrows for every chapter: the two-point theory needs an acute angle.
BOOK_RANGES: dict[str, tuple[float, float, str]] = {"DELTA": (0.0, 0.5 * math.pi, "open")}

#: Parameters that are booleans (checked with :func:`check_flag`).
FLAGS = ("FAST", "CACHE")

#: A range given to :func:`check_parameters`: ``(lo, hi)`` closed, ``(lo, hi, "open")``
#: or ``(lo, hi, "int")`` (integers in the closed interval).
Range = tuple[float, float] | tuple[float, float, str]


def _bound(x: float) -> str:
    """A bound as the messages print it: ``pi/2``, ``1e-3`` (not ``0.001``), ``0.5``."""
    for frac, text in ((1.0, "pi"), (0.5, "pi/2")):
        if x == frac * math.pi:
            return text
    if x != 0 and math.isfinite(x) and (abs(x) < 1e-2 or abs(x) >= 1e5):
        mant, exp = f"{x:e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return f"{x:g}"


def _range_field(name: str, spec: Range, base: Field | None) -> tuple[Field, str]:
    """The field of a parameter narrowed to ``spec`` and the range in words."""
    if not isinstance(spec, tuple) or len(spec) not in (2, 3) or (
            len(spec) == 3 and spec[2] not in ("int", "open")):
        raise ValueError(f"the range of {name} must be (lo, hi), (lo, hi, 'open') or "
                         f"(lo, hi, 'int'), got {spec!r}")
    lo, hi = float(spec[0]), float(spec[1])
    if math.isnan(lo) or math.isnan(hi) or not lo <= hi:
        raise ValueError(f"the range of {name} must satisfy lo <= hi, got {spec!r}")
    closed = (False, False) if spec[2:] == ("open",) else (True, True)
    kind = "int" if spec[2:] == ("int",) else "real"
    if base is not None:  # inside the run field's own range: open where that one is open
        kind = base.kind if kind == "real" else kind
        closed = (closed[0] and (lo > base.low or base.closed[0]),
                  closed[1] and (hi < base.high or base.closed[1]))
        lo, hi = max(lo, base.low), min(hi, base.high)
    fld = Field(name, kind, name, lo, hi, closed)
    if kind == "int":
        return fld, f"an integer in [{_bound(lo)}, {_bound(hi)}]"
    if closed == (False, False):
        return fld, f"a number in the open interval ({_bound(lo)}, {_bound(hi)})"
    left, right = "[" if closed[0] else "(", "]" if closed[1] else ")"
    return fld, f"a number in the interval {left}{_bound(lo)}, {_bound(hi)}{right}"


def check_parameters(values: Mapping[str, Any], **ranges: Range) -> tuple[Any, ...]:
    r"""Validate a chapter's parameters; return them, normalised, in the order given.

    Every parameter of :data:`PARAMETER_FIELDS` is checked against the range of its run
    field in :data:`reluflow.runs.config.FIELDS` (narrowed by :data:`BOOK_RANGES` and by
    ``ranges``); :data:`FLAGS` must be booleans; any other parameter needs a range in
    ``ranges``.  The first bad value raises, so a notebook stops in its validation cell.

    Parameters
    ----------
    values : mapping
        Parameter name (as in the notebook, e.g. ``"KAPPA"``) to value.
    **ranges : tuple
        ``NAME=(lo, hi)`` (a closed interval, intersected with the field's range) or
        ``NAME=(lo, hi, "int")`` (integers).

    Returns
    -------
    tuple
        The validated values (``float``, ``int`` or ``bool``), in the order of ``values``.

    Raises
    ------
    ValueError
        Naming the parameter, its allowed range and the value, e.g.
        ``KAPPA must be a number in the interval [1e-12, 1e-3], got 0.5``.

    Examples
    --------
    >>> check_parameters({"SEED": 0, "KAPPA": 1e-6, "P": 0.7}, KAPPA=(1e-12, 1e-3))
    (0, 1e-06, 0.7)
    >>> check_parameters({"KAPPA": 0.5}, KAPPA=(1e-12, 1e-3))
    Traceback (most recent call last):
    ...
    ValueError: KAPPA must be a number in the interval [1e-12, 1e-3], got 0.5
    >>> check_parameters({"SEED": -1})
    Traceback (most recent call last):
    ...
    ValueError: SEED must be an integer >= 0, got -1
    >>> check_parameters({"DELTA": 2.0})
    Traceback (most recent call last):
    ...
    ValueError: DELTA must be a number in the open interval (0, pi/2), got 2.0
    """
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty mapping of parameter names to values")
    unknown = sorted(set(ranges) - set(values))
    if unknown:
        raise ValueError(f"ranges given for parameters that are not checked: {unknown}")
    out = []
    for name, value in values.items():
        if name in FLAGS:
            out.append(check_flag(name, value))
            continue
        base = FIELDS[PARAMETER_FIELDS[name]] if name in PARAMETER_FIELDS else None
        spec = ranges.get(name, BOOK_RANGES.get(name))
        if base is None and spec is None:
            raise ValueError(
                f"parameter {name} needs a range: check_parameters(..., {name}=(lo, hi))")
        if spec is None:
            assert base is not None
            fld, words = dataclasses.replace(base, name=name), base.describe()
        else:
            fld, words = _range_field(name, spec, base)
        if isinstance(value, str | bytes):  # papermill -r passes raw strings: refuse
            raise ValueError(f"{name} must be {words}, got the string {value!r}")
        try:
            out.append(fld.check(value))
        except ConfigError:
            raise ValueError(f"{name} must be {words}, got {value!r}") from None
    return tuple(out)


@dataclass(frozen=True)
class GluedNumber:
    """A number as glued into the book: formatted text plus the exact value.

    Its display bundle is :func:`math_number`'s text (what ``{eval}`name``` shows): as
    ``text/plain`` alone when it is plain text (``0.25``, ``−0.5``: shown inline as text in
    the book and in JupyterLab), and as ``text/markdown`` (with ``text/plain`` =
    ``format(value, fmt)``) when an exponent is typeset as maths (``1e-06`` reads
    :math:`10^{-6}`); the output's metadata carries the exact value under
    :data:`GLUE_METADATA_KEY` as ``{"value": value, "fmt": fmt}``, which the notebook
    tests read back at full precision.
    """

    value: float
    fmt: str

    def __str__(self) -> str:
        return format(self.value, self.fmt)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        meta = {GLUE_METADATA_KEY: {"value": self.value, "fmt": self.fmt}}
        text = math_number(self.value, self.fmt)
        if "$" not in text:
            return {"text/plain": text}, meta
        return {"text/plain": str(self), "text/markdown": text}, meta


#: Characters that make a glued text Markdown rather than plain words.
_MARKUP = re.compile(r"[$*_`\[\]|#<>\\{}]")


@dataclass(frozen=True)
class GluedText:
    """Text as glued into the book: ``text/markdown`` when it has markup, else plain.

    The book pastes Markdown as MyST (maths, emphasis) and plain words as text, and
    JupyterLab's ``{eval}`` renders either; plain words stay inline text in both
    (JupyterLab shows a Markdown value as a block of its own).

    >>> sorted(GluedText("main")._repr_mimebundle_()), len(GluedText("$x_+$")._repr_mimebundle_())
    (['text/plain'], 2)
    """

    text: str

    def __str__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if _MARKUP.search(self.text) is None:
            return {"text/plain": self.text}
        return {"text/plain": self.text, "text/markdown": self.text}


def _check_key(name: Any) -> str:
    if not (isinstance(name, str) and name.isidentifier() and name[0].isalpha()):
        raise ValueError(f"name must be an identifier starting with a letter, got {name!r}")
    return name


def _glued_types() -> tuple[type, ...]:
    from reluflow.viz.plots.panels import Panels

    return (GluedNumber, GluedText, Panels)


def _glue(name: str, obj: Any) -> None:
    """``myst_nb.glue(name, obj, display=False)``, and ``name = obj`` in the notebook.

    The binding (in IPython's user namespace, when running in a kernel) is what
    JupyterLab's ``{eval}`name``` reads.  A key that is already a notebook variable of
    another kind is refused, so gluing never overwrites a chapter's own variable.
    """
    from IPython import get_ipython
    from myst_nb import glue

    shell = get_ipython()
    namespace: dict[str, Any] | None = getattr(shell, "user_ns", None)
    if namespace is not None:
        old = namespace.get(name)
        if old is not None and not isinstance(old, _glued_types()):
            raise ValueError(
                f"glue key {name!r} is already a notebook variable ({type(old).__name__}); "
                f"glue under another name (the text shows it with {{eval}}`{name}`)")
    glue(name, obj, display=False)
    if namespace is not None:
        namespace[name] = obj


def glue_number(name: str, value: Any, fmt: str = ".3g") -> GluedNumber:
    r"""Glue a finite number under ``name`` so the book text can quote it.

    Wraps :func:`myst_nb.glue` (imported lazily, ``display=False``) and binds ``name`` in
    the notebook's namespace.  In the text write ``{eval}`name``` (the number formatted
    with ``fmt``, exponents as maths): the book pastes the glued value, JupyterLab
    evaluates ``name`` in the kernel; both show the same text.

    Parameters
    ----------
    name : str
        Glue key: letters, digits and ``_``, starting with a letter.
    value : real
        The computed number; must be finite (``bool`` refused).
    fmt : str
        A :func:`format` spec for real numbers, e.g. ``".3g"``, ``".2f"``, ``".1e"``.

    Returns
    -------
    GluedNumber
        The glued object (its ``str`` is the formatted number).

    Raises
    ------
    ValueError
        If ``name`` is not a valid key, ``value`` is not finite, or ``fmt`` is invalid.
    """
    _check_key(name)
    x = v.real_scalar(name, value)
    try:
        format(x, fmt)
    except (TypeError, ValueError):
        raise ValueError(
            f"fmt must be a format spec for floats (e.g. '.3g'), got {fmt!r}"
        ) from None
    obj = GluedNumber(x, fmt)
    _glue(name, obj)
    return obj


def glue_numbers(values: Mapping[str, Any]) -> None:
    """Glue several numbers: ``{name: value}`` (format ``.3g``) or ``{name: (value, fmt)}``."""
    if not isinstance(values, Mapping):
        raise ValueError(f"values must be a mapping of glue names, got {type(values).__name__}")
    for name, spec in values.items():
        value, fmt = spec if isinstance(spec, tuple) else (spec, ".3g")
        glue_number(name, value, fmt)


def glue_measured(name: str, value: Any, fmt: str = ".3g",
                  words: str = "(not reached in this run)") -> None:
    """Glue a measured number, or ``words`` when the run did not measure it.

    ``value`` is ``None`` or not finite when the event that defines it did not happen in
    the run (a plateau that never came, say): the text then reads the words, never
    ``nan``.  Bound as ``name`` in the notebook like every glued value; quote it with
    ``{eval}`name``` either way.
    """
    if value is not None and not isinstance(value, bool) and math.isfinite(float(value)):
        glue_number(name, value, fmt)
        return
    _check_key(name)
    if not isinstance(words, str) or not words.strip():
        raise ValueError(f"words must be a non-empty string, got {words!r}")
    _glue(name, GluedText(words))


def glue_text(name: str, text: str) -> str:
    """Glue Markdown text (words, a sentence with MyST maths) under ``name``.

    A :class:`GluedText`, bound as ``name`` in the notebook; quote it with
    ``{eval}`name```.  Returns ``text``.
    """
    _check_key(name)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text glued as {name!r} must be a non-empty string, got {text!r}")
    _glue(name, GluedText(text))
    return text


def glue_figure(name: str, figure: Any) -> Any:
    """Glue a book figure (:class:`reluflow.viz.plots.Panels`), bound as ``name`` too.

    In the text, a ``figure`` without an image whose first paragraph is the figure's
    ``{eval}`` (the book's Sphinx extension pastes the glued figure there; JupyterLab
    evaluates it)::

        ```{figure}
        :name: fig-name

        {eval}`name`

        Caption: what to see.
        ```

    and cite it with ``{numref}`fig-name```.
    """
    from reluflow.viz.plots.panels import Panels

    _check_key(name)
    if not isinstance(figure, Panels):
        raise ValueError(f"figure must be a reluflow.plots.Panels, got {type(figure).__name__}")
    _glue(name, figure)
    return figure


#: The chapter parameters the live explorer starts from, and the explorer field of each.
EXPLORER_PARAMETERS: dict[str, str] = {**PARAMETER_FIELDS, "LOSS": "loss"}


def live_explorer(parameters: Mapping[str, Any], **values: Any) -> Any:
    """The live explorer (:func:`reluflow.viz.widgets.explorer`) at the chapter's parameters.

    Its starting values are the chapter's parameters of :data:`EXPLORER_PARAMETERS`
    (``KAPPA``, ``DELTA``, ``P``, ``M``, ``SEED``, ``T_MAX``, ``LOSS``) found in
    ``parameters`` (pass ``globals()``), then ``values`` (explorer fields, e.g.
    ``t_max=...``).  A value outside the explorer's range (``FIELDS[name].explore``) starts
    at the nearest end of it, and the panel says so.  With ``FAST`` true the first figure
    is drawn on the first change (or *Run*), so a quick build does not wait for it.

    >>> panel = live_explorer({"FAST": True, "KAPPA": 1e-6, "M": 5000, "T_MAX": 80.0})
    >>> panel.state().m, panel.state().t_max, panel.runs
    (1000, 80.0, 0)
    >>> panel.note.value
    '<i>Starting values moved into the explorer&#x27;s range: m = 1000 (not 5000).</i>'
    """
    from reluflow.viz.widgets import ExplorerState, explorer

    if not isinstance(parameters, Mapping):
        raise ValueError(f"parameters must be a mapping (e.g. globals()), got "
                         f"{type(parameters).__name__}")
    start = {fld: parameters[name] for name, fld in EXPLORER_PARAMETERS.items()
             if name in parameters}
    unknown = sorted(set(values) - set(EXPLORER_PARAMETERS.values()))
    if unknown:
        raise ValueError(f"unknown explorer values {unknown}; allowed: "
                         f"{sorted(EXPLORER_PARAMETERS.values())}")
    start.update(values)
    moved = []
    for name, value in start.items():
        rng = FIELDS[name].explore if name in FIELDS else None
        if rng is not None and isinstance(value, int | float) and not isinstance(value, bool):
            near = min(max(value, rng[0]), rng[1])
            if near != value:
                near = int(near) if FIELDS[name].kind == "int" else near
                moved.append(f"{name} = {near:g} (not {value:g})")
                start[name] = near
    note = ("Starting values moved into the explorer's range: " + ", ".join(moved) + "."
            if moved else "")
    fast = check_flag("FAST", parameters.get("FAST", False))
    return explorer(ExplorerState(**start), run=not fast, note=note)


def animation(traj: Any, data: Any, *, frames: int, seed: int = 0,
              t_window: tuple[float, float] | None = None, fps: int = 6) -> Any:
    """The polar animation of the neuron directions at the book's size (an HTML display).

    :func:`reluflow.viz.animation.animation_html` with panels of the book's width and
    resolution (its text is as legible as a figure's) and at most 150 neurons drawn.
    """
    from IPython.display import HTML

    from reluflow.viz.animation import animation_html
    from reluflow.viz.plots.style import PANEL_WIDTH

    return HTML(animation_html(traj, data, frames=frames, fps=fps, max_neurons=150, seed=seed,
                               t_window=t_window, dpi=96.0,
                               figsize=(PANEL_WIDTH, PANEL_WIDTH + 0.5)))


_PHASE_WORDS = (
    ("t_condensed", "Phase I ends at $t_\\mathrm{I}$"),
    ("t_escape", "the network leaves the saddle at $t_\\mathrm{esc}$"),
    ("t_reactivation", "the followers are reactivated at $t_\\mathrm{react}$"),
    ("t_plateau", "the plateau starts at $t_\\mathrm{plateau}$"),
    ("t_plateau_escape", "the loss leaves it at $T_\\mathrm{III}$"),
    ("t_phase4", "Phase IV starts at $t_\\mathrm{IV}$"),
)


def phase_sentence(report: Any, t_max: float) -> str:
    """The phase times of a run in words (MyST Markdown), saying which did not occur.

    >>> class R:
    ...     t_condensed, t_escape, t_reactivation = 5.1, 24.3, None
    ...     t_plateau = t_plateau_escape = t_phase4 = None
    >>> text = phase_sentence(R(), 30.0)
    >>> text.startswith("In this run Phase I ends at") and "= 5.1 and the network" in text
    True
    >>> text.endswith("the run ends at $t$ = 30 before the followers are reactivated.")
    True
    """
    times = [getattr(report, key) for key, _ in _PHASE_WORDS]
    last = max((i for i, t in enumerate(times) if t is not None), default=-1)
    done = [f"{words} = {math_number(t)}" for (_, words), t in zip(_PHASE_WORDS, times,
                                                                    strict=True) if t is not None]
    skipped = [words.split(" at ")[0] for i, ((_, words), t) in enumerate(
        zip(_PHASE_WORDS, times, strict=True)) if t is None and i < last]
    text = "In this run "
    if done:
        text += (", ".join(done[:-1]) + " and " + done[-1]) if len(done) > 1 else done[0]
    else:
        text += "no phase boundary is reached"
    if last < len(times) - 1:
        nxt = _PHASE_WORDS[last + 1][1].split(" at ")[0]
        text += f"; the run ends at $t$ = {math_number(t_max)} before {nxt}"
    if skipped:
        text += "; not detected: " + ", ".join(w.split(" ", 1)[1] for w in skipped)
    return text + "."


def show_markdown(text: str) -> None:
    """Display MyST Markdown as a cell output (the book renders it: tables, maths)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    from IPython.display import Markdown, display

    display(Markdown(text))


@dataclass(frozen=True)
class Check:
    """One check of a chapter: its claim, the measured value, the tolerance and why."""

    name: str
    ok: bool
    value: str
    tolerance: str
    why: str = ""


@dataclass
class CheckList:
    r"""Collect a chapter's quantitative checks, then assert them all at once.

    Each check records what is checked, the measured value, the tolerance and the reason
    for that tolerance (``why``: the rate gap, the recording step, ... the argument it
    follows from).  :meth:`finish` shows one admonition, "N of N checks passed", with the
    table folded, raises :class:`AssertionError` listing every failed check, and
    otherwise glues ``checks_passed`` (1) and ``checks_count``.

    Examples
    --------
    >>> checks = CheckList()
    >>> checks.close("slope", 1.02, 1.0, rtol=0.05, why="fit over 4 points")
    True
    >>> checks.at_most("loss increase", 0.0, 1e-12)
    True
    >>> len(checks.rows)
    2
    """

    rows: list[Check] = field(default_factory=list)

    def _add(self, name: str, ok: bool, value: str, tolerance: str, why: str) -> bool:
        if not isinstance(name, str) or not name:
            raise ValueError(f"check name must be a non-empty string, got {name!r}")
        if not isinstance(why, str):
            raise ValueError(f"why must be a string, got {why!r}")
        self.rows.append(Check(name, bool(ok), value, tolerance, why))
        return bool(ok)

    def close(self, name: str, value: float, target: float, *, rtol: float = 0.0,
              atol: float = 0.0, why: str = "") -> bool:
        r"""Check :math:`|value - target| \le atol + rtol\,|target|`."""
        rt = v.real_scalar("rtol", rtol)
        at = v.real_scalar("atol", atol)
        if rt < 0 or at < 0 or rt == at == 0:
            raise ValueError("rtol and atol must be >= 0 and not both 0")
        x, t = float(value), float(target)
        tol = at + rt * abs(t)
        ok = math.isfinite(x) and abs(x - t) <= tol
        return self._add(name, ok, _num(x), f"{_num(t)} ± {_num(tol, '.2g')}", why)

    def at_most(self, name: str, value: float, bound: float, why: str = "") -> bool:
        r"""Check :math:`value \le bound`."""
        x, b = float(value), float(bound)
        return self._add(name, math.isfinite(x) and x <= b, _num(x), f"≤ {_num(b)}", why)

    def at_least(self, name: str, value: float, bound: float, why: str = "") -> bool:
        r"""Check :math:`value \ge bound`."""
        x, b = float(value), float(bound)
        return self._add(name, math.isfinite(x) and x >= b, _num(x), f"≥ {_num(b)}", why)

    def that(self, name: str, condition: bool, detail: str = "", why: str = "") -> bool:
        """Record a yes/no check; ``detail`` is what was measured."""
        return self._add(name, bool(condition), detail or ("yes" if condition else "no"),
                         "holds", why)

    def report(self) -> str:
        """The checks as a plain-text table (one line per check)."""
        width = max((len(r.name) for r in self.rows), default=0)
        return "\n".join(
            f"{'PASS' if r.ok else 'FAIL'}  {r.name:<{width}}  {r.value} (tolerance {r.tolerance})"
            for r in self.rows
        )

    def admonition(self) -> str:
        """The checks as one MyST admonition: the count in the title, the table folded."""
        passed = sum(r.ok for r in self.rows)
        rows = [[r.name, r.value, r.tolerance, r.why or "–", "✓" if r.ok else "✗"]
                for r in self.rows]
        table = markdown_table(["check", "measured", "tolerance", "why this tolerance", ""],
                               rows, "lrrlc")
        kind = "rf-checks-passed" if passed == len(self.rows) else "rf-checks-failed"
        return (f":::{{admonition}} {passed} of {len(self.rows)} checks passed\n"
                f":class: dropdown rf-checks {kind}\n\n{table}\n:::\n")

    def finish(self, *, glue: bool = True) -> None:
        """Show the admonition; raise if any check failed or none ran; glue the summary.

        With ``glue`` (the default) it glues ``checks_passed`` = 1 and ``checks_count``
        = the number of checks; the notebook tests require both.
        """
        if not self.rows:
            raise AssertionError("no checks were recorded")
        show_markdown(self.admonition())
        failed = [r for r in self.rows if not r.ok]
        if failed:
            lines = "\n".join(f"  {r.name}: {r.value} (tolerance {r.tolerance})" for r in failed)
            raise AssertionError(f"{len(failed)} of {len(self.rows)} checks failed:\n{lines}")
        if glue:
            glue_number("checks_passed", 1, "g")
            glue_number("checks_count", len(self.rows), "g")


def _num(x: float, fmt: str = ".4g") -> str:
    """A measured or bound value as table text (MyST maths for exponents, words for NaN)."""
    if math.isnan(x):
        return "not a number"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return math_number(x, fmt)
