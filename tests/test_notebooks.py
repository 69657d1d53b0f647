"""Run every chapter notebook through papermill in FAST mode and check what it glued.

For each ``book/*.ipynb`` this executes the notebook with ``FAST=True`` (plus every extra
parameter set listed for it in :data:`EXTRA_PARAMS`) into a temporary folder, then asserts
that

* the notebook ran to its end, so its check cells (which assert the chapter's claims with
  stated tolerances) passed: :meth:`reluflow.notebook.CheckList.finish` glued
  ``checks_passed`` = 1 and ``checks_count`` >= 1;
* every number it glued with :func:`reluflow.notebook.glue_number` is finite;
* every glue key its text pastes was glued by this run;

and, with ``SEED=-1``, that the notebook refuses a bad parameter with a ``ValueError``
naming it, before doing any work.

Chapter authors: add parameter sets for your notebook to ``EXTRA_PARAMS`` (keys are the
notebook's stem, values lists of dicts; ``FAST=True`` is always added).  Keep each FAST
run to a few tens of seconds: the whole module must stay well under 5 minutes on 2 cores.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import papermill as pm
import pytest

from booktools import (
    BOOK,
    book_notebooks,
    glue_references,
    glued_numbers,
    glued_outputs,
    read_notebook,
)

#: Extra parameter sets per notebook (stem -> list of overrides); FAST=True is implied.
EXTRA_PARAMS: dict[str, list[dict[str, Any]]] = {
    # a smaller angle, more weight on x+, larger kappa; and the mirror regime (roles swapped)
    "phase1_condensation": [{"DELTA": 0.2, "P": 0.8, "KAPPA": 1e-4, "SEED": 3},
                            {"DELTA": 0.5, "P": 0.35, "KAPPA": 1e-5, "SEED": 1}],
    "phase2_saddle_to_plateau": [{"DELTA": 0.2, "P": 0.8, "KAPPA": 1e-4, "SEED": 3},
                                 {"DELTA": 0.5, "P": 0.35, "KAPPA": 1e-5, "SEED": 1}],
    # mirror regime (p cos(delta) <= 1 - p): the chapter's roles are exchanged
    "phase3_plateau_escape": [{"DELTA": 0.5, "P": 0.3, "KAPPA": 1e-8, "SEED": 2}],
    "phase4_convergence": [{"DELTA": 0.5, "P": 0.8, "KAPPA": 1e-4, "SEED": 3}],
    # outside the main regime (p cos(delta) <= 1 - p), a shorter horizon, another seed
    "setting": [{"DELTA": 0.8, "P": 0.55, "KAPPA": 1e-4, "T_MAX": 1e4, "SEED": 2}],
    "numerics": [{"DELTA": 0.8, "P": 0.55, "KAPPA": 3e-2, "T_MAX": 60.0, "SEED": 1}],
}

#: Per-cell timeout of a papermill run, seconds: a guard against a hung kernel only.
CELL_TIMEOUT = 600

NOTEBOOKS = book_notebooks()


def _cases() -> list[Any]:
    cases = []
    for path in NOTEBOOKS:
        for i, extra in enumerate([{}, *EXTRA_PARAMS.get(path.stem, [])]):
            case_id = path.stem if i == 0 else f"{path.stem}-extra{i}"
            cases.append(pytest.param(path, extra, id=case_id))
    return cases


def _execute(path: Path, out: Path, params: dict[str, Any]) -> dict[str, Any]:
    pm.execute_notebook(
        str(path),
        str(out),
        parameters=params,
        kernel_name="python3",
        cwd=str(BOOK),  # as in the book build: the notebook's own folder
        progress_bar=False,
        log_output=False,
        execution_timeout=CELL_TIMEOUT,
    )
    return read_notebook(out)


def test_extra_params_name_existing_notebooks() -> None:
    stems = {p.stem for p in NOTEBOOKS}
    unknown = sorted(set(EXTRA_PARAMS) - stems)
    assert not unknown, f"EXTRA_PARAMS lists notebooks that do not exist: {unknown}"
    for stem, sets in EXTRA_PARAMS.items():
        for params in sets:
            assert "FAST" not in params, f"{stem}: FAST=True is always set; do not list it"


@pytest.mark.slow
@pytest.mark.parametrize(("path", "extra"), _cases())
def test_notebook_runs_fast_and_glues_checked_numbers(
    path: Path, extra: dict[str, Any], tmp_path: Path
) -> None:
    params = {**extra, "FAST": True}
    nb = _execute(path, tmp_path / path.name, params)

    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1, "papermill did not inject the parameters after the tagged cell"

    numbers = glued_numbers(nb)
    assert numbers.get("checks_passed") == 1.0, (
        f"{path.name} must end with CheckList.finish() (glues checks_passed)"
    )
    assert numbers.get("checks_count", 0.0) >= 1.0
    bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
    assert not bad, f"{path.name} glued non-finite numbers: {bad}"

    glued = set(glued_outputs(nb))
    missing = sorted(glue_references(nb) - glued)
    assert not missing, f"{path.name}: text pastes glue keys this run did not glue: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_rejects_a_bad_seed(path: Path, tmp_path: Path) -> None:
    with pytest.raises(pm.PapermillExecutionError) as info:
        _execute(path, tmp_path / path.name, {"FAST": True, "SEED": -1})
    err = info.value
    assert err.ename == "ValueError", f"{path.name}: SEED=-1 raised {err.ename}: {err.evalue}"
    assert "SEED must be an integer >= 0" in err.evalue
    # it stopped in the validation cell, right after the parameters (+ injected) cells
    nb = read_notebook(tmp_path / path.name)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    failed = [i for i, c in enumerate(code)
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [2], (
        f"{path.name}: the parameter check must be the first code cell after the parameters "
        f"cell; the error came from code cell {failed}"
    )
