r"""Data sets: the paper's two-point setting and general weighted data.

The book's two-point setting (chapter "The setting") puts a fraction :math:`p` of the
samples at :math:`x_+ = e_1` (label +1) and :math:`1-p` at
:math:`x_- = \cos\Delta\, e_1 + \sin\Delta\, e_2` (label -1), so that
:math:`\langle x_+, x_-\rangle = \cos\Delta`.  ``n`` samples with ``n_+ = p n`` are
equivalent to two points with weights :math:`p, 1-p`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reluflow.engine import checks as v

__all__ = ["Dataset", "TwoPointData", "span_basis", "unit_rows"]


@dataclass(frozen=True, init=False, eq=False)
class Dataset:
    r"""Weighted binary-labelled data :math:`\{(x_i, y_i, w_i)\}_{i=1}^n` in :math:`\mathbb{R}^d`.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, one per row; ``d >= 1`` and ``n >= 1``.
    y : array_like, shape (n,)
        Labels, each +1 or -1.
    weights : array_like, shape (n,), optional
        Non-negative sample weights, normalised to :math:`\sum_i w_i = 1`; uniform when
        omitted.  The loss is :math:`L = \sum_i w_i\, \ell(y_i f(x_i))`.

    Examples
    --------
    >>> ds = Dataset([[1.0, 0.0], [0.0, 1.0]], [1, -1], weights=[3, 1])
    >>> ds.weights
    array([0.75, 0.25])
    """

    X: NDArray[np.float64]
    y: NDArray[np.float64]
    weights: NDArray[np.float64]

    def __init__(self, X: ArrayLike, y: ArrayLike, weights: ArrayLike | None = None) -> None:
        Xa = v.finite_array("X", X, 2)
        n, d = Xa.shape
        if n < 1 or d < 1:
            raise ValueError(f"X must have shape (n, d) with n >= 1 and d >= 1, got {Xa.shape}")
        ya = v.finite_array("y", y, 1)
        if ya.shape != (n,):
            raise ValueError(f"y must have shape ({n},) to match X, got {ya.shape}")
        if not np.all(np.isin(ya, (-1.0, 1.0))):
            raise ValueError("y must contain only labels +1 and -1")
        if weights is None:
            wa = np.full(n, 1.0 / n)
        else:
            wa = v.finite_array("weights", weights, 1)
            if wa.shape != (n,):
                raise ValueError(f"weights must have shape ({n},) to match X, got {wa.shape}")
            if np.any(wa < 0) or not wa.sum() > 0:
                raise ValueError("weights must be >= 0 with a positive sum")
            wa = wa / wa.sum()
        for name, arr in (("X", Xa), ("y", ya), ("weights", wa)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def n(self) -> int:
        """Number of data points."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.X.shape[1])


@dataclass(frozen=True, init=False, eq=False)
class TwoPointData(Dataset):
    r"""The two-point data set of the book's setting.

    :math:`x_+ = e_1` with label +1 and weight :math:`p`;
    :math:`x_- = \cos\Delta\,e_1 + \sin\Delta\,e_2` with label -1 and weight :math:`1-p`.

    Parameters
    ----------
    delta : float
        Angle :math:`\Delta` between the two points, in the open interval (0, pi).
    p : float
        Weight of the positive point, in (0, 1).
    d : int, default 2
        Ambient dimension, ``d >= 2``; the data span is always ``span{e1, e2}``.

    Examples
    --------
    >>> data = TwoPointData(delta=0.3, p=0.7)
    >>> float(data.X[0] @ data.X[1]) == float(np.cos(0.3))
    True
    """

    delta: float = field(default=0.0)
    p: float = field(default=0.5)

    def __init__(self, delta: float, p: float, d: int = 2) -> None:
        dl = v.open_interval("delta", delta, 0.0, math.pi, "(0, pi)")
        pp = v.open_interval("p", p, 0.0, 1.0)
        dd = v.int_at_least("d", d, 2)
        X = np.zeros((2, dd))
        X[0, 0] = 1.0
        X[1, 0] = math.cos(dl)
        X[1, 1] = math.sin(dl)
        super().__init__(X, [1.0, -1.0], [pp, 1.0 - pp])
        object.__setattr__(self, "delta", dl)
        object.__setattr__(self, "p", pp)

    @property
    def x_plus(self) -> NDArray[np.float64]:
        """The positive point :math:`x_+`."""
        return self.X[0]

    @property
    def x_minus(self) -> NDArray[np.float64]:
        """The negative point :math:`x_-`."""
        return self.X[1]


def unit_rows(X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Rows as unit vectors and their norms, :math:`x_i = \lVert x_i\rVert u_i`, without
    underflow (each row is scaled by its largest entry first; a zero row stays zero).

    >>> U, norms = unit_rows([[3e-200, 4e-200], [0.0, 0.0]])
    >>> U.tolist(), norms.tolist()
    ([[0.6, 0.8], [0.0, 0.0]], [5e-200, 0.0])
    """
    Xa = np.asarray(X, dtype=np.float64)
    big = np.abs(Xa).max(axis=-1, keepdims=True)
    U = np.divide(Xa, big, out=np.zeros_like(Xa), where=big > 0)
    scaled = np.linalg.norm(U, axis=-1, keepdims=True)
    U /= np.maximum(scaled, 1.0)
    return U, (big * scaled)[..., 0]


def span_basis(X: ArrayLike) -> NDArray[np.float64]:
    r"""Orthonormal basis :math:`Q`, shape (d, D), of the span of the data's directions.

    The rank is decided on the unit vectors :math:`x_i/\lVert x_i\rVert` (singular values
    above :math:`10^{-12}` of the largest), so a point far smaller than the others keeps its
    own direction and every :math:`b^\top x_i = (Q^\top b)^\top (Q^\top x_i)` exactly.  At
    least one column (any unit vector when every point is zero).

    >>> span_basis([[1.0, 0.0, 0.0], [0.0, 1e-200, 0.0]]).shape
    (3, 2)
    """
    U, _ = unit_rows(X)
    _U, sv, Vt = np.linalg.svd(U, full_matrices=False)
    D = max(1, int(np.sum(sv > sv[0] * 1e-12))) if sv.size and sv[0] > 0 else 1
    return np.ascontiguousarray(Vt[:D].T)
