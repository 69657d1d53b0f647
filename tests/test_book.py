"""Unit tests for reluflow.book (the notebooks' shared helpers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from IPython.core.formatters import format_display_data

from reluflow.book import (
    FAST_ENV,
    GLUE_METADATA_KEY,
    CheckList,
    GluedNumber,
    check_choice,
    check_flag,
    check_param,
    check_seed,
    fast_default,
    glue_number,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), (" TRUE ", True), ("yes", True), ("on", True),
     ("0", False), ("false", False), ("", False), ("No", False), ("off", False)],
)
def test_fast_default_reads_env(raw: str, expected: bool) -> None:
    assert fast_default({FAST_ENV: raw}) is expected


def test_fast_default_unset_is_full_mode() -> None:
    assert fast_default({}) is False


def test_fast_default_uses_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAST_ENV, "1")
    assert fast_default() is True
    monkeypatch.delenv(FAST_ENV)
    assert fast_default() is False


@pytest.mark.parametrize("raw", ["2", "fast", "tru", "-1"])
def test_fast_default_rejects_other_values(raw: str) -> None:
    with pytest.raises(ValueError, match=rf"{FAST_ENV} must be one of .*got '{raw}'"):
        fast_default({FAST_ENV: raw})


def test_check_flag() -> None:
    assert check_flag("FAST", True) is True
    assert check_flag("FAST", np.bool_(False)) is False
    for bad in (1, 0, "True", None, 1.0):
        with pytest.raises(ValueError, match=r"FAST must be a boolean \(True or False\)"):
            check_flag("FAST", bad)


def test_check_param_intervals() -> None:
    assert check_param("DELTA", 0.3, 0, math.pi / 2) == 0.3
    assert check_param("P", 1, 0, 1, inclusive="right") == 1.0
    assert check_param("P", 0, 0, 1, inclusive="left") == 0.0
    assert check_param("P", 0, 0, 1, inclusive="both") == 0.0
    assert check_param("KAPPA", 1e-300, 0) == 1e-300
    with pytest.raises(ValueError, match=r"DELTA must be a finite real number in \(0, 1.5708\)"):
        check_param("DELTA", 1.6, 0, math.pi / 2)
    with pytest.raises(ValueError, match=r"P must be a finite real number in \(0, 1\], got 0"):
        check_param("P", 0, 0, 1, inclusive="right")
    with pytest.raises(ValueError, match=r"P must be a finite real number in \[0, 1\), got 1"):
        check_param("P", 1, 0, 1, inclusive="left")
    with pytest.raises(ValueError, match=r"KAPPA must be a finite real number in \(0, inf\)"):
        check_param("KAPPA", 0.0, 0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, True, [0.3]])
def test_check_param_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^DELTA must be a finite real number"):
        check_param("DELTA", bad, 0, 1)


def test_check_param_rejects_strings() -> None:
    msg = r"DELTA must be a finite real number in \(0, 1\), got the string .0\.3."
    with pytest.raises(ValueError, match=msg):
        check_param("DELTA", "0.3", 0, 1)


def test_check_param_integer() -> None:
    assert check_param("M", 64, 1, inclusive="left", integer=True) == 64
    assert isinstance(check_param("M", 64.0, 1, inclusive="left", integer=True), int)
    with pytest.raises(ValueError, match=r"M must be an integer in \[1, inf\), got 2.5"):
        check_param("M", 2.5, 1, inclusive="left", integer=True)
    with pytest.raises(ValueError, match=r"M must be an integer in \[1, inf\), got 0"):
        check_param("M", 0, 1, inclusive="left", integer=True)


def test_check_param_rejects_bad_bounds_and_inclusive() -> None:
    with pytest.raises(ValueError, match="bounds must satisfy lo <= hi"):
        check_param("X", 0.5, 1, 0)
    with pytest.raises(ValueError, match="inclusive must be one of"):
        check_param("X", 0.5, 0, 1, inclusive="open")  # type: ignore[arg-type]


def test_check_seed_and_choice() -> None:
    assert check_seed("SEED", 0) == 0
    assert check_seed("SEED", np.int64(7)) == 7
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match=r"SEED must be an integer >= 0"):
            check_seed("SEED", bad)
    assert check_choice("LOSS", "exp", ("exp", "logistic")) == "exp"
    with pytest.raises(ValueError, match=r"LOSS must be one of \('exp', 'logistic'\), got 'l2'"):
        check_choice("LOSS", "l2", ("exp", "logistic"))


def test_glued_number_bundle_has_text_and_exact_value() -> None:
    # format_display_data is what myst_nb.glue calls on the glued object.
    data, meta = format_display_data(GluedNumber(0.1234567891, ".3g"))
    assert data == {"text/plain": "0.123"}
    assert meta[GLUE_METADATA_KEY] == {"value": 0.1234567891, "fmt": ".3g"}
    assert str(GluedNumber(12.0, "g")) == "12"


def test_glue_number_validates(capsys: pytest.CaptureFixture[str]) -> None:
    out = glue_number("escape_slope", np.float64(2.5), ".2f")
    assert isinstance(out, GluedNumber)
    assert str(out) == "2.50"
    capsys.readouterr()  # outside a kernel, IPython's display prints the bundle
    with pytest.raises(ValueError, match="escape_slope must be a finite real number"):
        glue_number("escape_slope", math.nan)
    with pytest.raises(ValueError, match="name must be an identifier"):
        glue_number("2nd", 1.0)
    with pytest.raises(ValueError, match="name must be an identifier"):
        glue_number("a-b", 1.0)
    with pytest.raises(ValueError, match="fmt must be a format spec"):
        glue_number("x", 1.0, "d")


def test_checklist_passes_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    checks = CheckList()
    assert checks.close("slope", 1.04, 1.0, rtol=0.05)
    assert checks.close("offset", -1e-13, 0.0, atol=1e-12)
    assert checks.at_most("loss increase", 0.0, 1e-12)
    assert checks.at_least("margin", 0.2, 0.1)
    assert checks.that("monotone", True, "all steps")
    checks.finish(glue=False)
    out = capsys.readouterr().out
    assert out.count("PASS") == 5
    assert "slope" in out and "tol 0.05" in out


def test_checklist_collects_every_failure(capsys: pytest.CaptureFixture[str]) -> None:
    checks = CheckList()
    assert not checks.close("slope", 1.2, 1.0, rtol=0.05)
    assert checks.at_most("ok", 0.0, 1.0)
    assert not checks.at_least("margin", math.nan, 0.1)  # NaN never passes
    assert not checks.that("flag", False, "why")
    with pytest.raises(AssertionError, match=r"3 of 4 checks failed:\n  slope: .*\n  margin"):
        checks.finish(glue=False)
    assert "FAIL" in capsys.readouterr().out


def test_checklist_rejects_empty_and_bad_tolerances() -> None:
    with pytest.raises(AssertionError, match="no checks were recorded"):
        CheckList().finish(glue=False)
    checks = CheckList()
    with pytest.raises(ValueError, match="rtol and atol must be >= 0 and not both 0"):
        checks.close("x", 1.0, 1.0)
    with pytest.raises(ValueError, match="rtol and atol"):
        checks.close("x", 1.0, 1.0, rtol=-0.1)
    with pytest.raises(ValueError, match="check name must be a non-empty string"):
        checks.that("", True)
