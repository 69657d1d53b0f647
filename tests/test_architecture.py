"""The package's layers, as the README's "Architecture" section states them.

Every ``import`` in ``lib/reluflow`` (module level and inside functions) is read with
:mod:`ast` and checked against the rule: a layer imports only itself and the layers before
it in :data:`LAYERS`; the engine imports no plotting or widget library; nothing imports a
private name (``_x``) from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "reluflow"

#: The layers in order: each may import itself and the layers before it.
LAYERS = ("engine", "analysis", "runs", "viz", "front")
#: Modules of the package root and their layer ("front": the command line and the book
#: helpers, which may use everything).
ROOT_MODULES = {"__init__": "analysis", "__main__": "front", "cli": "front", "book": "front"}
#: Third-party modules the engine may not import.
NOT_IN_ENGINE = ("matplotlib", "ipywidgets", "IPython", "plotly", "bokeh", "altair", "vl_convert")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(module: str) -> str | None:
    """Layer of a ``reluflow`` module name; ``None`` for the bare package ``reluflow``."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    if parts[1] in LAYERS:
        return parts[1]
    return ROOT_MODULES.get(parts[1], "front")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every import statement in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def _layer_of_file(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else ROOT_MODULES.get(Path(rel[0]).stem, "front")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_lower_layers(path: Path) -> None:
    own = _layer_of_file(path)
    allowed = LAYERS[: LAYERS.index(own) + 1]
    for line, module, names in _imports(path):
        if module.split(".")[0] != "reluflow":
            if own == "engine":
                assert module.split(".")[0] not in NOT_IN_ENGINE, (
                    f"{path.name}:{line}: the engine imports {module}")
            continue
        targets = [module] if module != "reluflow" else [
            f"reluflow.{n}" for n in names if n != "__version__"]
        for target in targets:
            layer = _layer(target)
            assert layer is None or layer in allowed, (
                f"{path.relative_to(PACKAGE)}:{line}: layer {own!r} imports {target} "
                f"(layer {layer!r}); allowed: {allowed}")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_across_modules(path: Path) -> None:
    for line, module, names in _imports(path):
        if module.split(".")[0] != "reluflow":
            continue
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        private += [p for p in module.split(".") if p.startswith("_")]
        assert not private, f"{path.relative_to(PACKAGE)}:{line}: imports private {private}"


def test_every_module_is_in_a_layer() -> None:
    for path in _modules():
        assert _layer_of_file(path) in LAYERS, path


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (module level and inside functions)."""
    root = PACKAGE.parent
    mods = {}
    for path in _modules():
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for _line, module, names in _imports(path):
            if not module.startswith("reluflow"):
                continue
            for n in names or [""]:
                cand = f"{module}.{n}" if n else module
                target = cand if cand in mods else module
                if target in mods and not target.startswith(m + "."):
                    graph[m].add(target)  # a package re-exporting its children is no cycle
    return graph


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for w in sorted(graph[u]):
            assert state.get(w) != 1, "import cycle: " + " -> ".join([*stack[stack.index(w):], w])
            if w not in state:
                visit(w, stack)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
