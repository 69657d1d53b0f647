"""The coupled system's integrator: the single-step DOP853 used by catch-ups."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from reluflow.engine import dense as dp
from reluflow.engine.coupled import MaxNormDOP853, dop853_once


@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.floats(-1.0, 1.5),
       st.sampled_from([1e-4, 1e-9, 1e-13]))
@settings(max_examples=80, deadline=None)
def test_dop853_once_is_the_solver_s_first_step_bitwise(seed: int, n: int, log_rate: float,
                                                        rtol: float) -> None:
    """On random time-dependent linear systems: when the solver accepts its first step
    over [0, 1], ``dop853_once`` returns exactly its dense output's coefficients; when
    the solver has to shorten it, ``dop853_once`` returns None."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) * 10.0**log_rate
    B = rng.standard_normal((n, n)) * 10.0**log_rate

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        return (A + np.sin(3 * t) * B) @ y

    y0 = rng.standard_normal(n)
    atol = rtol * np.abs(y0).max() * np.ones(n)
    got = dop853_once(fun, y0, rtol, atol)
    sol = MaxNormDOP853(fun, 0.0, y0, 1.0, rtol=rtol, atol=atol, first_step=1.0)
    sol.step()
    if sol.t == 1.0:
        assert got is not None
        assert np.array_equal(got, dp.monomial(sol.dense_output()))
    else:
        assert got is None
