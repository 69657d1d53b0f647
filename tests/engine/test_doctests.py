"""The Examples sections of the engine's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

MODULES = ["checks", "coupled", "data", "dense", "descent", "events", "flow", "groups",
           "network", "reference", "stepper", "tolerances", "trajectory"]


@pytest.mark.parametrize("name", MODULES)
def test_engine_docstring_examples(name: str) -> None:
    mod = importlib.import_module(f"reluflow.engine.{name}")
    res = doctest.testmod(mod, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
