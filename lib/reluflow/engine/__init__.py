"""The engine layer: data, network, trajectories and the integrators of the gradient flow.

* :mod:`~reluflow.engine.data`: data sets (:class:`~reluflow.engine.data.Dataset`, the
  two-point setting :class:`~reluflow.engine.data.TwoPointData`);
* :mod:`~reluflow.engine.network`: parameters, initialization, outputs, losses, gradients;
* :mod:`~reluflow.engine.trajectory`: the recorded result of a run;
* :mod:`~reluflow.engine.flow`: the exact event-driven gradient flow
  (:mod:`~reluflow.engine.groups`: the linear fields of activation states);
* :mod:`~reluflow.engine.descent`: plain gradient descent;
* :mod:`~reluflow.engine.reference`: :func:`scipy.integrate.solve_ivp` on the flat vector;
* :mod:`~reluflow.engine.checks`: argument validation shared by every layer.

The engine imports nothing from the other layers and nothing from matplotlib.
"""
