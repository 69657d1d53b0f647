"""reluflow: exact gradient flow of two-layer ReLU networks.

A reproducible companion to Wang & Ma, *Understanding Multi-phase Optimization Dynamics
and Rich Nonlinear Behaviors of ReLU Networks* (NeurIPS 2023).

The package is layered (each layer imports only the layers above it in this list):

* :mod:`reluflow.engine`: data, network, trajectories, the exact flow and the baselines;
* :mod:`reluflow.analysis`: theory of the two-point setting, phase detection, comparisons;
* :mod:`reluflow.viz`: figures, animations, the live explorer;
* :mod:`reluflow.runs`: run configurations, sweeps, caches, the command line;
* :mod:`reluflow.book`: helpers for the book's notebooks.

The subject modules are also reachable as attributes of the package, imported on first
use (so ``import reluflow`` does not import matplotlib): ``from reluflow import theory``
is :mod:`reluflow.analysis.theory`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from reluflow.analysis.phases import PhaseReport, detect_phases
from reluflow.engine.data import Dataset, TwoPointData
from reluflow.engine.descent import gradient_descent
from reluflow.engine.flow import gradient_flow
from reluflow.engine.network import Params, init_network
from reluflow.engine.trajectory import Trajectory

__version__ = "0.1.0"

#: Short names of the subject modules: ``reluflow.<name>`` is imported on first access.
SUBJECTS: dict[str, str] = {
    "geometry": "reluflow.analysis.geometry",
    "theory": "reluflow.analysis.theory",
    "phases": "reluflow.analysis.phases",
    "measure": "reluflow.analysis.measure",
    "condensation": "reluflow.analysis.condensation",
    "saddle": "reluflow.analysis.saddle",
    "escape": "reluflow.analysis.escape",
    "convergence": "reluflow.analysis.convergence",
    "identities": "reluflow.analysis.identities",
    "sweeps": "reluflow.analysis.sweeps",
    "numerics": "reluflow.analysis.numerics",
    "compare": "reluflow.analysis.compare",
    "early": "reluflow.analysis.early",
    "patterns": "reluflow.analysis.patterns",
    "general_phases": "reluflow.analysis.general_phases",
    "behaviours": "reluflow.analysis.behaviours",
    "datasets": "reluflow.engine.datasets",
    "plots": "reluflow.viz.plots",
    "animation": "reluflow.viz.animation",
    "widgets": "reluflow.viz.widgets",
    "config": "reluflow.runs.config",
    "sweep": "reluflow.runs.sweep",
    "scaling": "reluflow.runs.scaling",
    "cache": "reluflow.runs.cache",
    "beyond": "reluflow.runs.beyond",
    "beyond_plots": "reluflow.viz.beyond",
}

__all__ = [
    "Dataset",
    "Params",
    "PhaseReport",
    "Trajectory",
    "TwoPointData",
    "__version__",
    "detect_phases",
    "gradient_descent",
    "gradient_flow",
    "init_network",
]


def __getattr__(name: str) -> ModuleType:
    """Import a subject module on first access (PEP 562)."""
    if name in SUBJECTS:
        module = importlib.import_module(SUBJECTS[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'reluflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *SUBJECTS])
