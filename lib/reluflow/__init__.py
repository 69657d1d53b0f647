"""reluflow: exact gradient flow of two-layer ReLU networks.

A reproducible companion to Wang & Ma, *Understanding Multi-phase Optimization Dynamics
and Rich Nonlinear Behaviors of ReLU Networks* (NeurIPS 2023).
"""

from reluflow.data import Dataset, TwoPointData
from reluflow.descent import gradient_descent
from reluflow.flow import gradient_flow
from reluflow.network import Params, init_network
from reluflow.phases import PhaseReport, detect_phases
from reluflow.trajectory import Trajectory

__version__ = "0.1.0"

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
