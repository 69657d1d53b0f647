r"""Numbers in the book's generated sentences: MyST Markdown with maths for exponents.

The chapters' generated text (what a run shows, in words) and the glued numbers use
:func:`math_number`, so ``1e-06`` reads :math:`10^{-6}` on the page, never as raw text.
"""

from __future__ import annotations

import math
import re

__all__ = ["math_number"]

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
