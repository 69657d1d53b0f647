# Two commands set everything up on a fresh machine: `make book` and `make test`.
# Both bootstrap .venv from nothing; the stamp makes it idempotent (reinstall only when
# pyproject.toml changes).  `make lab` opens the chapters in JupyterLab.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv test check book lab bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[book,dev,dask,lab]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

test: venv
	$(BIN)/ruff check lib tests benchmarks book/_ext
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The quick loop while editing: ruff, then every test and doctest not marked slow (no
# notebooks, no browser, no process pools); about a minute on the 2-core machine.
check: venv
	$(BIN)/ruff check lib tests benchmarks book/_ext
	$(BIN)/python -m pytest -m "not slow" -q

# Full mode: RELUFLOW_FAST is cleared so every notebook runs at full size; the HTML lands
# in _build/html.  --all re-reads, hence re-executes, every page: Sphinx cannot see changes
# to lib/reluflow, so outputs from an earlier build are never reused.  -W -n --keep-going:
# every warning, unresolved reference and failing notebook cell fails the build.
book: venv
	env -u RELUFLOW_FAST $(BIN)/jupyter-book build . --all --builder html -W -n --keep-going
	@echo "book: _build/html/index.html"

# JupyterLab on the book's notebooks (book/), MyST rendered by jupyterlab-myst (the `lab`
# extra); lab/jupyter_lab_config.py: no request to another machine, no autosave, and
# --allow-root when run as root.  Extra options: `make lab LAB_ARGS="--port 8890"`.
lab: venv
	$(BIN)/jupyter lab --config=lab/jupyter_lab_config.py $(LAB_ARGS)

# The PyTorch baseline runs in its own environment (torch is not a reluflow dependency):
# torch 2.13.0, the CPU wheel.  `make bench BENCH_ARGS=--quick` for a reduced run.
TORCH_VENV := benchmarks/.venv-torch
TORCH_STAMP := $(TORCH_VENV)/.installed-stamp

$(TORCH_STAMP):
	@test -x $(TORCH_VENV)/bin/python || $(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet "torch==2.13.0" numpy
	@touch $(TORCH_STAMP)

bench: venv $(TORCH_STAMP)
	$(BIN)/python benchmarks/bench_flow.py $(BENCH_ARGS)

lint: venv
	$(BIN)/ruff check lib tests benchmarks book/_ext
	$(BIN)/mypy

clean:
	rm -rf _build $(VENV)
