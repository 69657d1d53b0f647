"""Run every chapter notebook through papermill in FAST mode and check what it glued.

Each ``book/*.ipynb`` is executed with ``FAST=True`` (the session fixture ``fast_runs``,
also rendered by the browser test) and with every extra parameter set listed for it in
:data:`EXTRA_PARAMS`, into temporary folders, two papermill processes at a time.  The
tests assert that

* the notebook ran to its end, so its check cells (which assert the chapter's claims with
  stated tolerances) passed: :meth:`reluflow.book.CheckList.finish` glued
  ``checks_passed`` = 1 and ``checks_count`` >= 1;
* every number it glued with :func:`reluflow.book.glue_number` is finite;
* every glue key its text pastes was glued by this run;

and, with ``SEED=-1``, that the notebook refuses a bad parameter with a ``ValueError``
naming it in the cell right after the parameters, before doing any work.

and that no output a reader sees (printed, displayed or glued text) shows ``nan``, ``inf``,
``None`` or "not measured": what a run did not do is said in words.

Chapter authors: add parameter sets for your notebook to ``EXTRA_PARAMS`` (keys are the
notebook's stem, values lists of dicts; ``FAST=True`` is always added).  Every phase
chapter runs at three parameter sets at least, the default (main regime) and both other
regimes.  Keep each FAST run to a few tens of seconds: the whole module must stay well
under 5 minutes on 2 cores.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from booktools import (
    NotebookRun,
    book_notebooks,
    glue_references,
    glued_numbers,
    glued_outputs,
    run_many,
)

#: Extra parameter sets per notebook (stem -> list of overrides); FAST=True is implied.
EXTRA_PARAMS: dict[str, list[dict[str, Any]]] = {
    # Every phase chapter runs in both non-main regimes (with the FAST default, the main
    # one): the mirror regime, where the roles of the groups are exchanged, and the
    # intermediate one ("mu-plus-only"), where both groups slide from the start.
    # Phase I's mirror set sits near the regime boundary, where the followers' sliding rate
    # comes close to ||mu|| (0.85 of it): the second direction is not negligible there.
    "phase1_condensation": [{"DELTA": 0.5, "P": 0.46, "KAPPA": 1e-5, "SEED": 1},
                            {"DELTA": 0.8, "P": 0.55, "KAPPA": 1e-4, "SEED": 2}],
    "phase2_saddle_to_plateau": [{"DELTA": 0.5, "P": 0.35, "KAPPA": 1e-5, "SEED": 1},
                                 {"DELTA": 0.8, "P": 0.55, "KAPPA": 1e-4, "SEED": 2}],
    "phase3_plateau_escape": [{"DELTA": 0.5, "P": 0.3, "KAPPA": 1e-8, "SEED": 2},
                              {"DELTA": 0.8, "P": 0.55, "KAPPA": 1e-4, "SEED": 2}],
    "phase4_convergence": [{"DELTA": 0.5, "P": 0.3, "KAPPA": 1e-6, "SEED": 1},
                           {"DELTA": 0.8, "P": 0.55, "KAPPA": 1e-4, "SEED": 2}],
    # the mirror regime for the clusters (negative neurons lead), wider clusters, a larger
    # kappa, another seed
    "beyond_two_points": [{"DELTA": 0.5, "P": 0.3, "SIGMA_MAX": 0.12, "KAPPA": 1e-5,
                           "SEED": 2}],
    # outside the main regime (p cos(delta) <= 1 - p), a shorter horizon, another seed
    "setting": [{"DELTA": 0.8, "P": 0.55, "KAPPA": 1e-4, "T_MAX": 1e4, "SEED": 2}],
    "numerics": [{"DELTA": 0.8, "P": 0.55, "KAPPA": 3e-2, "T_MAX": 60.0, "SEED": 1}],
    # the mirror and the intermediate regime for the kappa/width/init/loss grids, other seeds
    "scaling": [{"DELTA": 0.5, "P": 0.3, "KAPPA": 1e-8, "SEED": 2},
                {"DELTA": 1.1, "P": 0.6, "KAPPA": 1e-5, "M": 60, "SEED": 1}],
}

NOTEBOOKS = book_notebooks()
BAD_SEED = {"FAST": True, "SEED": -1}


def _extra_jobs() -> dict[str, tuple[Path, dict[str, Any]]]:
    jobs: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in NOTEBOOKS:
        for i, extra in enumerate(EXTRA_PARAMS.get(path.stem, []), start=1):
            jobs[f"{path.stem}-extra{i}"] = (path, {**extra, "FAST": True})
        jobs[f"{path.stem}-badseed"] = (path, BAD_SEED)
    return jobs


EXTRA_JOBS = _extra_jobs()


@pytest.fixture(scope="module")
def extra_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NotebookRun]:
    """The extra parameter sets and the bad-seed runs, two papermill processes at a time."""
    return run_many(EXTRA_JOBS, tmp_path_factory.mktemp("papermill_extra"))


def test_extra_params_name_existing_notebooks() -> None:
    stems = {p.stem for p in NOTEBOOKS}
    unknown = sorted(set(EXTRA_PARAMS) - stems)
    assert not unknown, f"EXTRA_PARAMS lists notebooks that do not exist: {unknown}"
    for stem, sets in EXTRA_PARAMS.items():
        for params in sets:
            assert "FAST" not in params, f"{stem}: FAST=True is always set; do not list it"


def _check_run(name: str, run: NotebookRun) -> None:
    if not run.ok:
        err = run.error()
        where = f"code cell {err[0]}: {err[1]}: {err[2]}" if err else run.log[-3000:]
        pytest.fail(f"{name} with {run.params} failed in {where}", pytrace=False)
    nb = run.notebook()
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1, "papermill did not inject the parameters after the tagged cell"

    numbers = glued_numbers(nb)
    assert numbers.get("checks_passed") == 1.0, (
        f"{name} must end with CheckList.finish() (glues checks_passed)"
    )
    assert numbers.get("checks_count", 0.0) >= 1.0
    bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
    assert not bad, f"{name} glued non-finite numbers: {bad}"

    missing = sorted(glue_references(nb) - set(glued_outputs(nb)))
    assert not missing, f"{name}: text pastes glue keys this run did not glue: {missing}"

    shown = _shown_text(nb)
    for word in (r"\bnan\b", r"not measured", r"\bNone\b", r"\binf\b"):
        found = re.search(word, shown, re.IGNORECASE)
        assert found is None, (
            f"{name}: an output shows {found.group(0)!r}: say in words what did not happen "
            f"and why ...{shown[max(0, found.start() - 200):found.end() + 100]}...")


def _shown_text(nb: dict[str, Any]) -> str:
    """The text and Markdown a reader sees in the outputs (printed, displayed, glued)."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out.get("text", "")))
            data = out.get("data", {})
            for mime in ("text/markdown", "text/plain"):
                if mime in data and not any(k.startswith("application/papermill.record")
                                            for k in data):
                    val = data[mime]
                    parts.append("".join(val) if isinstance(val, list) else str(val))
            for mime, val in data.items():  # glued values: what {glue} pastes
                if mime.endswith(("/text/markdown", "/text/plain")):
                    parts.append("".join(val) if isinstance(val, list) else str(val))
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS])
def test_notebook_runs_fast_and_glues_checked_numbers(
    stem: str, fast_runs: dict[str, NotebookRun]
) -> None:
    _check_run(stem, fast_runs[stem])


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in EXTRA_JOBS if not n.endswith("-badseed")])
def test_notebook_extra_parameters(name: str, extra_runs: dict[str, NotebookRun]) -> None:
    _check_run(name, extra_runs[name])


@pytest.mark.slow
@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS])
def test_notebook_rejects_a_bad_seed(stem: str, extra_runs: dict[str, NotebookRun]) -> None:
    run = extra_runs[f"{stem}-badseed"]
    assert not run.ok, f"{stem} accepted SEED=-1"
    err = run.error()
    assert err is not None, f"{stem}: papermill failed without a cell error:\n{run.log[-2000:]}"
    cell, ename, evalue = err
    assert ename == "ValueError", f"{stem}: SEED=-1 raised {ename}: {evalue}"
    assert "SEED must be an integer >= 0" in evalue
    # code cells: 0 parameters, 1 injected parameters, 2 validation
    assert cell == 2, (
        f"{stem}: the parameter check must be the first code cell after the parameters "
        f"cell; the error came from code cell {cell}"
    )
