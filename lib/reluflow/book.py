r"""Helpers shared by the book's notebooks: run mode, parameter checks, glue, check cells.

Every chapter notebook follows the same conventions (see ``README.md``):

* its first code cell is tagged ``parameters`` and defines ``FAST = fast_default()``,
  ``SEED`` and its physical parameters, so that both the book build (which reads the
  environment variable ``RELUFLOW_FAST``) and ``papermill -p FAST True`` work;
* the next cell validates them with :func:`check_flag`, :func:`check_param`,
  :func:`check_seed` and :func:`check_choice`, which raise :class:`ValueError` naming the
  parameter and its allowed range;
* numbers quoted in the text are glued with :func:`glue_number`, never typed;
* the last cells assert the chapter's claims with a :class:`CheckList`, whose
  :meth:`CheckList.finish` glues ``checks_passed`` and ``checks_count``.

The book build reads the same variable: its Sphinx extension ``reluflow._sphinxext``
makes the mode part of the build environment, so a fast and a full build never reuse each
other's executed outputs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from reluflow.engine import checks as v

__all__ = [
    "FAST_ENV",
    "GLUE_METADATA_KEY",
    "CheckList",
    "GluedNumber",
    "check_choice",
    "check_flag",
    "check_param",
    "check_seed",
    "fast_default",
    "glue_number",
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


@dataclass(frozen=True)
class GluedNumber:
    """A number as glued into the book: formatted text plus the exact value.

    Its display bundle is ``text/plain`` = ``format(value, fmt)`` (what ``{glue}`name```
    shows in the text); the output's metadata carries the exact value under
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
        return {"text/plain": str(self)}, meta


def glue_number(name: str, value: Any, fmt: str = ".3g") -> GluedNumber:
    r"""Glue a finite number under ``name`` so the book text can quote it.

    Wraps :func:`myst_nb.glue` (imported lazily, ``display=False``).  In the text write
    ``{glue}`name``` for the number formatted with ``fmt``, or ``{glue:text}`name:.2f```
    for another format.

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
    if not (isinstance(name, str) and name.isidentifier() and name[0].isalpha()):
        raise ValueError(f"name must be an identifier starting with a letter, got {name!r}")
    x = v.real_scalar(name, value)
    try:
        format(x, fmt)
    except (TypeError, ValueError):
        raise ValueError(
            f"fmt must be a format spec for floats (e.g. '.3g'), got {fmt!r}"
        ) from None
    from myst_nb import glue

    obj = GluedNumber(x, fmt)
    glue(name, obj, display=False)
    return obj


@dataclass
class CheckList:
    r"""Collect a chapter's quantitative checks, then assert them all at once.

    Each check records a name, the measured value, the target and the tolerance;
    :meth:`finish` prints the table, raises :class:`AssertionError` listing every failed
    check, and otherwise glues ``checks_passed`` (1) and ``checks_count``.

    Examples
    --------
    >>> checks = CheckList()
    >>> checks.close("slope", 1.02, 1.0, rtol=0.05)
    True
    >>> checks.at_most("loss increase", 0.0, 1e-12)
    True
    >>> len(checks.rows)
    2
    """

    rows: list[tuple[str, bool, str]] = field(default_factory=list)

    def _add(self, name: str, ok: bool, detail: str) -> bool:
        if not isinstance(name, str) or not name:
            raise ValueError(f"check name must be a non-empty string, got {name!r}")
        self.rows.append((name, bool(ok), detail))
        return bool(ok)

    def close(
        self, name: str, value: float, target: float, *, rtol: float = 0.0, atol: float = 0.0
    ) -> bool:
        r"""Check :math:`|value - target| \le atol + rtol\,|target|`."""
        rt = v.real_scalar("rtol", rtol)
        at = v.real_scalar("atol", atol)
        if rt < 0 or at < 0 or rt == at == 0:
            raise ValueError("rtol and atol must be >= 0 and not both 0")
        x, t = float(value), float(target)
        tol = at + rt * abs(t)
        ok = math.isfinite(x) and abs(x - t) <= tol
        return self._add(name, ok, f"{x:.6g} vs {t:.6g} (tol {tol:.3g})")

    def at_most(self, name: str, value: float, bound: float) -> bool:
        r"""Check :math:`value \le bound`."""
        x, b = float(value), float(bound)
        return self._add(name, math.isfinite(x) and x <= b, f"{x:.6g} <= {b:.6g}")

    def at_least(self, name: str, value: float, bound: float) -> bool:
        r"""Check :math:`value \ge bound`."""
        x, b = float(value), float(bound)
        return self._add(name, math.isfinite(x) and x >= b, f"{x:.6g} >= {b:.6g}")

    def that(self, name: str, condition: bool, detail: str = "") -> bool:
        """Record a boolean check with an explanatory ``detail``."""
        return self._add(name, bool(condition), detail)

    def report(self) -> str:
        """The checks as a plain-text table (one line per check)."""
        width = max((len(r[0]) for r in self.rows), default=0)
        return "\n".join(
            f"{'PASS' if ok else 'FAIL'}  {name:<{width}}  {detail}"
            for name, ok, detail in self.rows
        )

    def finish(self, *, glue: bool = True) -> None:
        """Print the table; raise if any check failed or none ran; glue the summary.

        With ``glue`` (the default) it glues ``checks_passed`` = 1 and ``checks_count``
        = the number of checks; the notebook tests require both.
        """
        if not self.rows:
            raise AssertionError("no checks were recorded")
        print(self.report())
        failed = [r for r in self.rows if not r[1]]
        if failed:
            lines = "\n".join(f"  {n}: {d}" for n, _, d in failed)
            raise AssertionError(f"{len(failed)} of {len(self.rows)} checks failed:\n{lines}")
        if glue:
            glue_number("checks_passed", 1, "g")
            glue_number("checks_count", len(self.rows), "g")
