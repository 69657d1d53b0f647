r"""The book's generated text: numbers with maths for exponents, and Markdown tables.

The chapters' generated text (what a run shows, in words) and the glued numbers use
:func:`math_number`, so ``1e-06`` reads :math:`10^{-6}` on the page, never as raw text;
every table the package shows is built by :func:`markdown_table` (the one place that
escapes cells and writes the alignment row).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["markdown_table", "math_number"]

_EXP = re.compile(r"([+-]?)(\d+(?:\.\d*)?)e([+-]?\d+)")


def math_number(value: float, fmt: str = ".3g") -> str:
    r"""``format(value, fmt)`` as MyST Markdown: an exponent becomes maths.

    A negative number gets a true minus sign; a non-finite value raises (say in words
    what did not happen instead).

    >>> math_number(1.5e-6, ".2g"), math_number(1e-6, ".0e"), math_number(0.25, ".2f")
    ('$1.5\\times 10^{-6}$', '$10^{-6}$', '0.25')
    >>> math_number(-3.2e8, ".2g"), math_number(-0.5), math_number(-1e-9, ".3f")
    ('$-3.2\\times 10^{8}$', '−0.5', '0.000')
    """
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"value must be finite to be printed as a number, got {value!r}")
    text = format(x, fmt)
    if text.startswith("-") and _rounds_to_zero(text):
        text = text[1:]  # a value that rounds to zero is printed without a sign
    match = _EXP.fullmatch(text)
    if match is None:
        return "−" + text[1:] if text.startswith("-") else text
    sign = "-" if match.group(1) == "-" else ""
    mant, exp = match.group(2), int(match.group(3))
    if float(mant) == 1.0:
        return f"${sign}10^{{{exp}}}$"
    return f"${sign}{mant}\\times 10^{{{exp}}}$"


def _rounds_to_zero(text: str) -> bool:
    try:
        return float(text.replace(",", "")) == 0.0
    except ValueError:
        return False


_RULE = {"l": ":---", "c": ":---:", "r": "---:", "-": "---"}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]],
                   align: str | None = None) -> str:
    r"""A Markdown (GFM / MyST) table; cells are ``str``-ed and ``|`` is escaped.

    A cell's ``|`` becomes ``\|`` and a line break a space, so every cell stays one cell
    of one row.

    Parameters
    ----------
    header : sequence of str
        Column titles, at least one.
    rows : sequence of sequences
        One sequence per row, as long as ``header``.
    align : str, optional
        One letter per column: ``l``, ``c`` or ``r`` (rule ``:---``, ``:---:``, ``---:``),
        or ``-`` for no alignment (rule ``---``, the renderer's default).  Default: all
        ``l``.

    Returns
    -------
    str
        The header line, the rule line and one line per row, joined by newlines.

    Raises
    ------
    ValueError
        If ``header`` is empty, ``align`` has the wrong length or another letter, or a row
        has the wrong number of cells.

    Examples
    --------
    The lines, and the cells of the rule:

    >>> head, rule, row = markdown_table(["a", "b"], [[1, "x|y"]], "lr").splitlines()
    >>> head, row
    ('| a | b |', '| 1 | x\\|y |')
    >>> rule.split("|")
    ['', ':---', '---:', '']
    >>> head, rule, row = markdown_table(["a", "b"], [["one\nline", None]], "-c").splitlines()
    >>> row, rule.split("|")
    ('| one line | None |', ['', '---', ':---:', ''])
    """
    cols = [str(h) for h in header]
    if not cols:
        raise ValueError("header must name at least one column")
    al = "l" * len(cols) if align is None else align
    if len(al) != len(cols) or set(al) - set(_RULE):
        raise ValueError(f"align must be one of l, c, r, - per column ({len(cols)}), "
                         f"got {align!r}")

    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in cols) + " |",
             "|" + "|".join(_RULE[a] for a in al) + "|"]
    for row in rows:
        if len(row) != len(cols):
            raise ValueError(f"every row must have {len(cols)} cells, got {len(row)}: {row!r}")
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(lines)
