"""Exact gradient flow (engine under construction in this commit series)."""

from __future__ import annotations

from typing import Any

from reluflow.trajectory import Trajectory


def gradient_flow(*args: Any, **kwargs: Any) -> Trajectory:
    """Exact gradient flow: being written; see issue 2."""
    raise NotImplementedError("gradient_flow is being written")
