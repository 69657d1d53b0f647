"""reluflow.analysis.text.markdown_table: the one builder of the package's Markdown tables."""

from __future__ import annotations

import pytest

from reluflow.analysis.text import markdown_table


def test_header_rule_and_rows_with_each_alignment() -> None:
    table = markdown_table(["a", "b", "c", "d"], [[1, 2.5, None, "x"], ["", "y", "z", "w"]],
                           "lcr-")
    assert table.splitlines() == ["| a | b | c | d |", "|:---|:---:|---:|---|",
                                  "| 1 | 2.5 | None | x |", "|  | y | z | w |"]


def test_default_alignment_is_left_and_no_rows_is_header_and_rule() -> None:
    assert markdown_table(["a", "b"], []) == "| a | b |\n|:---|:---|"


def test_pipes_are_escaped_and_line_breaks_become_spaces_in_header_and_cells() -> None:
    lines = markdown_table(["a|b", "c\nd"], [["$|x|$", "one\ntwo"]], "lr").splitlines()
    assert lines == ["| a\\|b | c d |", "|:---|---:|", "| $\\|x\\|$ | one two |"]
    # every row still has two cells: only the unescaped pipes separate them
    for line in lines:
        assert line.replace("\\|", "").count("|") == 3


@pytest.mark.parametrize("header", [[], ()])
def test_empty_header_is_refused(header: list[str]) -> None:
    with pytest.raises(ValueError, match="header must name at least one column"):
        markdown_table(header, [])


@pytest.mark.parametrize("align", ["x", "lx", "l", "lrr", "", "L"])
def test_bad_align_is_refused_naming_the_letters_and_the_column_count(align: str) -> None:
    with pytest.raises(ValueError, match=r"align must be one of l, c, r, - per column \(2\)"):
        markdown_table(["a", "b"], [], align)


@pytest.mark.parametrize("row", [[1], [1, 2, 3], []])
def test_a_row_of_the_wrong_length_is_refused(row: list[int]) -> None:
    with pytest.raises(ValueError, match="every row must have 2 cells"):
        markdown_table(["a", "b"], [[0, 0], row])
