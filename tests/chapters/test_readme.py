"""The README's example is real: its Python block runs as written."""

from __future__ import annotations

import re

import pytest
from booktools import ROOT


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, "README should hold exactly one Python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 10, "the README promises ten lines"
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "t_escape" in out and "normalized margin" in out
