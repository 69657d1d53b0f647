"""Unit tests for reluflow.book (the notebooks' shared helpers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from IPython.core.formatters import format_display_data

from reluflow.analysis import text
from reluflow.book import (
    FAST_ENV,
    GLUE_METADATA_KEY,
    CheckList,
    GluedNumber,
    GluedText,
    animation,
    check_choice,
    check_flag,
    check_param,
    check_parameters,
    check_seed,
    fast_default,
    glue_figure,
    glue_number,
    glue_numbers,
    glue_text,
    live_explorer,
    markdown_table,
    math_number,
    phase_sentence,
    show_markdown,
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


def test_glued_number_bundle_has_text_markdown_and_exact_value() -> None:
    # format_display_data is what myst_nb.glue calls on the glued object.
    data, meta = format_display_data(GluedNumber(0.1234567891, ".3g"))
    assert data == {"text/plain": "0.123"}  # plain text: inline in the book and in Lab
    data, _ = format_display_data(GluedNumber(-0.5, ".2f"))
    assert data == {"text/plain": "−0.50"}
    assert meta[GLUE_METADATA_KEY] == {"value": 0.1234567891, "fmt": ".3g"}
    assert str(GluedNumber(12.0, "g")) == "12"
    # an exponent is typeset: {glue} pastes the Markdown form (MyST-NB prefers it)
    data, _ = format_display_data(GluedNumber(1e-6, ".0e"))
    assert data == {"text/plain": "1e-06", "text/markdown": "$10^{-6}$"}
    data, _ = format_display_data(GluedNumber(-2.5e30, ".2g"))
    assert data["text/markdown"] == "$-2.5\\times 10^{30}$"


def test_math_number() -> None:
    assert math_number(3.27e8, ".3g") == "$3.27\\times 10^{8}$"
    assert math_number(-0.25, ".2f") == "−0.25"
    assert math_number(12, "g") == "12"
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="must be finite"):
            math_number(bad)


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
    glue_numbers({"a": 1.0, "b": (2.0, ".1f")})
    with pytest.raises(ValueError, match="b must be a finite real number"):
        glue_numbers({"b": (math.nan, ".1f")})
    with pytest.raises(ValueError, match="values must be a mapping"):
        glue_numbers([("a", 1.0)])  # type: ignore[arg-type]


def test_glue_text_and_figure_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert glue_text("regime", "main") == "main"
    for bad in ("", "  ", None):
        with pytest.raises(ValueError, match="must be a non-empty string"):
            glue_text("regime", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"figure must be a reluflow\.plots\.Panels"):
        glue_figure("fig_x", object())
    from reluflow.viz.plots import Panels, panel, style

    with style():
        fig, ax = panel()
        ax.set_title("(a) a panel")
    assert isinstance(glue_figure("fig_x", Panels([fig], alt="A panel.")), Panels)
    show_markdown("| a |\n|---|\n| 1 |")
    with pytest.raises(ValueError, match="text must be a string"):
        show_markdown(3)  # type: ignore[arg-type]
    capsys.readouterr()


def test_check_parameters_quotes_the_fields_and_narrows_them() -> None:
    vals = check_parameters({"FAST": False, "SEED": 3, "KAPPA": 1e-6, "DELTA": 0.3, "P": 0.7,
                             "M": 40.0, "T_MAX": 1e30, "N_SEEDS": 3},
                            KAPPA=(1e-12, 1e-2), N_SEEDS=(2, 20, "int"))
    assert vals == (False, 3, 1e-6, 0.3, 0.7, 40, 1e30, 3)
    assert isinstance(vals[5], int)
    cases = [
        ({"SEED": -1}, {}, "SEED must be an integer >= 0, got -1"),
        ({"SEED": 1.5}, {}, "SEED must be an integer >= 0, got 1.5"),
        ({"M": 0}, {}, "M must be an integer >= 1, got 0"),
        ({"P": 1.0}, {}, r"P must be a number in the open interval \(0, 1\), got 1.0"),
        ({"DELTA": 1.6}, {}, r"DELTA must be a number in the open interval \(0, pi/2\)"),
        ({"KAPPA": 0.5}, {"KAPPA": (1e-12, 1e-3)}, r"KAPPA must be a number in the interval "
                                                   r"\[1e-12, 1e-3\], got 0.5"),
        ({"M": 5001}, {"M": (2, 5000)}, r"M must be an integer in \[2, 5000\], got 5001"),
        ({"N": 2.5}, {"N": (1, 4, "int")}, r"N must be an integer in \[1, 4\]"),
        ({"X": 5.0}, {"X": (0.0, 1.0, "open")}, r"X must be a number in the open interval"),
        ({"FAST": 1}, {}, r"FAST must be a boolean"),
        ({"KAPPA": "1e-6"}, {}, r"KAPPA must be a finite number > 0, got the string"),
        ({"T_MAX": math.inf}, {}, r"T_MAX must be a finite number > 0, got inf"),
    ]
    for values, ranges, message in cases:
        with pytest.raises(ValueError, match=message):
            check_parameters(values, **ranges)
    with pytest.raises(ValueError, match="parameter N needs a range"):
        check_parameters({"N": 3})
    with pytest.raises(ValueError, match="ranges given for parameters that are not checked"):
        check_parameters({"SEED": 0}, KAPPA=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"must be \(lo, hi\)"):
        check_parameters({"N": 3}, N=(1, 2, "float"))
    with pytest.raises(ValueError, match="must satisfy lo <= hi"):
        check_parameters({"N": 3}, N=(4.0, 1.0))
    with pytest.raises(ValueError, match="non-empty mapping"):
        check_parameters({})


def test_checklist_passes_and_shows_one_admonition(capsys: pytest.CaptureFixture[str]) -> None:
    checks = CheckList()
    assert checks.close("slope", 1.04, 1.0, rtol=0.05, why="fit over four points")
    assert checks.close("offset", -1e-13, 0.0, atol=1e-12)
    assert checks.at_most("loss increase", 0.0, 1e-12)
    assert checks.at_least("margin", 0.2, 0.1)
    assert checks.that("monotone", True, "all steps")
    text = checks.admonition()
    assert text.startswith(":::{admonition} 5 of 5 checks passed\n:class: dropdown rf-checks")
    assert "| slope | 1.04 | 1 ± 0.05 | fit over four points | ✓ |" in text
    assert "$10^{-12}$" in text  # exponents as maths
    checks.finish(glue=False)
    assert checks.report().count("PASS") == 5
    capsys.readouterr()


def test_checklist_collects_every_failure(capsys: pytest.CaptureFixture[str]) -> None:
    checks = CheckList()
    assert not checks.close("slope", 1.2, 1.0, rtol=0.05)
    assert checks.at_most("ok", 0.0, 1.0)
    assert not checks.at_least("margin", math.nan, 0.1)  # NaN never passes
    assert not checks.that("flag", False, "why")
    assert "2 of 4 checks passed" not in checks.admonition()
    assert checks.admonition().startswith(":::{admonition} 1 of 4 checks passed")
    assert "not a number" in checks.admonition()  # a NaN is said in words
    with pytest.raises(AssertionError, match=r"3 of 4 checks failed:\n  slope: .*\n  margin"):
        checks.finish(glue=False)
    assert "FAIL" in checks.report()
    capsys.readouterr()


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
    with pytest.raises(ValueError, match="why must be a string"):
        checks.that("x", True, why=3)  # type: ignore[arg-type]


def test_markdown_table_is_the_analysis_layers_one_builder() -> None:
    # re-exported for the chapters; tested in tests/analysis/test_text.py
    assert markdown_table is text.markdown_table
    assert markdown_table(["a"], [["x|y"]], "r") == "| a |\n|---:|\n| x\\|y |"


def test_phase_sentence_says_what_did_not_happen() -> None:
    class Report:
        t_condensed, t_escape, t_reactivation = 5.0, 24.0, None
        t_plateau, t_plateau_escape, t_phase4 = 30.0, None, None

    text = phase_sentence(Report(), 40.0)
    assert "Phase I ends at" in text and "= 30" in text
    assert "the run ends at $t$ = 40 before the loss leaves it" in text
    assert "not detected: followers are reactivated" in text
    Report.t_condensed = Report.t_escape = Report.t_plateau = None
    assert "no phase boundary is reached" in phase_sentence(Report(), 1.0)


def test_animation_is_book_sized() -> None:
    import reluflow as rf

    data = rf.TwoPointData(0.3, 0.7)
    traj = rf.gradient_flow(rf.init_network(8, 2, 1e-3, seed=0), data, 10.0)
    html = animation(traj, data, frames=2).data
    assert 'class="animation"' in html and "data:image/png;base64" in html


def test_glue_measured_glues_words_for_what_a_run_did_not_measure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import myst_nb

    from reluflow.book import glue_measured

    glued: dict[str, object] = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, obj, display=True: glued.update({name: obj}))
    glue_measured("t_plateau", 12.5, ".1f")
    assert str(glued["t_plateau"]) == "12.5"
    for missing in (None, math.nan, math.inf):
        glue_measured("t_plateau", missing)
        bundle = glued["t_plateau"]._repr_mimebundle_()  # type: ignore[attr-defined]
        assert bundle == {"text/plain": "(not reached in this run)"}
    glue_measured("t_plateau", None, words="no plateau")
    assert glued["t_plateau"]._repr_mimebundle_()["text/plain"] == "no plateau"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="words must be a non-empty string"):
        glue_measured("t_plateau", None, words=" ")
    with pytest.raises(ValueError, match="name must be an identifier"):
        glue_measured("2nd", None)


class _Shell:
    """Stands in for the kernel's IPython shell: its user namespace."""

    def __init__(self) -> None:
        self.user_ns: dict[str, object] = {}


def test_glued_values_are_bound_for_eval_in_the_kernel(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import IPython

    shell = _Shell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    number = glue_number("ch_rate", 0.5, ".2f")
    assert shell.user_ns["ch_rate"] is number
    glue_text("ch_words", "the $x_+$ point")
    words = shell.user_ns["ch_words"]
    assert isinstance(words, GluedText) and str(words) == "the $x_+$ point"
    data, _ = format_display_data(words)
    assert data == {"text/plain": "the $x_+$ point", "text/markdown": "the $x_+$ point"}
    assert format_display_data(GluedText("main"))[0] == {"text/plain": "main"}
    from reluflow.book import glue_measured

    glue_measured("ch_missing", None)  # words where the run measured nothing: bound too
    assert str(shell.user_ns["ch_missing"]) == "(not reached in this run)"
    glue_number("ch_rate", 0.75)  # gluing a key again replaces the glued value
    assert str(shell.user_ns["ch_rate"]) == "0.75"
    shell.user_ns["m"] = 200  # a chapter's own variable is never overwritten
    with pytest.raises(ValueError, match="'m' is already a notebook variable"):
        glue_number("m", 1.0)
    assert shell.user_ns["m"] == 200
    capsys.readouterr()


def test_live_explorer_starts_at_the_chapter_parameters() -> None:
    params = {"FAST": True, "SEED": 3, "KAPPA": 1e-6, "DELTA": 0.4, "P": 0.8, "M": 100,
              "T_MAX": 1e30, "N_SEEDS": 6}
    panel = live_explorer(params)
    st = panel.state()
    assert (st.kappa, st.delta, st.p, st.m, st.seed, st.t_max, st.loss) == (
        1e-6, 0.4, 0.8, 100, 3, 1e30, "exp")
    assert panel.runs == 0 and panel.note.value == ""  # FAST: drawn on the first change
    assert live_explorer(params, t_max=80.0, loss="logistic").state().t_max == 80.0
    moved = live_explorer({**params, "KAPPA": 1e-15, "M": 2000})
    assert moved.state().kappa == 1e-12 and moved.state().m == 1000
    assert "kappa = 1e-12 (not 1e-15)" in moved.note.value
    with pytest.raises(ValueError, match="unknown explorer values"):
        live_explorer(params, width=3)
    with pytest.raises(ValueError, match="parameters must be a mapping"):
        live_explorer([("KAPPA", 1e-6)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="FAST must be a boolean"):
        live_explorer({**params, "FAST": 1})
