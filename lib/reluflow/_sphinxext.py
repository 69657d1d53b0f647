"""Sphinx extension used by the book build (``_config.yml``: ``sphinx.extra_extensions``).

Two small jobs:

* the run mode is part of the build environment: the configuration value
  ``reluflow_fast`` defaults to :func:`reluflow.notebook.fast_default` (the environment
  variable ``RELUFLOW_FAST`` when the build starts) and is registered with
  ``rebuild="env"``, so a build in the other mode re-reads, hence re-executes, every page
  instead of reusing the previous mode's outputs;
* references to re-exported names such as ``reluflow.Dataset`` resolve to the object's
  documented home (``reluflow.data.Dataset``), so docstrings can name objects the way
  users import them while ``-n`` (nitpicky) still checks them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from reluflow.notebook import fast_default

__all__ = ["canonical_name", "setup"]


def canonical_name(target: str) -> str | None:
    """Return the documented dotted name of ``target`` if it differs, else ``None``.

    ``reluflow.Dataset`` becomes ``reluflow.data.Dataset`` (from the object's
    ``__module__`` and ``__qualname__``); attributes after the object are kept, so
    ``reluflow.Trajectory.save`` becomes ``reluflow.trajectory.Trajectory.save``.
    Names outside ``reluflow`` or that do not import give ``None``.
    """
    parts = target.split(".")
    if parts[0] != "reluflow":
        return None
    module: ModuleType | None = None
    i = len(parts)
    while i > 0:
        try:
            module = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            i -= 1
    rest = parts[i:]
    if module is None or not rest:
        return None
    head = getattr(module, rest[0], None)
    mod = getattr(head, "__module__", None)
    qual = getattr(head, "__qualname__", None)
    if not isinstance(mod, str) or not isinstance(qual, str):
        return None
    canonical = ".".join([mod, qual, *rest[1:]])
    return None if canonical == target else canonical


def _resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """``missing-reference`` handler: retry a ``py`` reference under its canonical name."""
    if node.get("refdomain") != "py":
        return None
    canonical = canonical_name(node.get("reftarget", ""))
    if canonical is None:
        return None
    retry = node.deepcopy()
    retry["reftarget"] = canonical
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], canonical, retry, contnode
    )


def setup(app: Any) -> dict[str, Any]:
    """Register ``reluflow_fast`` (``rebuild="env"``) and the re-export resolver."""
    app.add_config_value("reluflow_fast", fast_default(), "env", types=[bool])
    app.connect("missing-reference", _resolve_reexport)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
