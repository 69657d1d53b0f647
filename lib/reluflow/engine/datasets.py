r"""Data sets beyond two points: two angular clusters, and two classic real data sets.

* :class:`ClusterData`: ``n`` points around each of the two points of the book's setting,
  :math:`x_+ = e_1` (label +1, total weight :math:`p`) and
  :math:`x_- = \cos\Delta\,e_1 + \sin\Delta\,e_2` (label -1, total weight :math:`1-p`),
  spread over the unit sphere with root-mean-square angle :math:`\sigma` to their centre.
  At :math:`\sigma = 0` it is the two-point data set (each point repeated ``n`` times).
* :func:`iris_data` (setosa vs versicolor) and :func:`digits_data` (0 vs 1): the
  scikit-learn bundled copies (no download), rescaled by :func:`binary_subset` so that the
  largest input has norm 1.  scikit-learn is an optional dependency (the ``book`` and
  ``dev`` extras); without it these two functions raise :class:`ImportError` naming it.

Every set is an ordinary :class:`~reluflow.engine.data.Dataset`, so every integrator and
every measurement accepts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog

from reluflow.engine import checks as v
from reluflow.engine.data import Dataset, TwoPointData

__all__ = ["ClusterData", "binary_subset", "digits_data", "iris_data", "linear_margin",
           "sphere_offsets"]

Array = NDArray[np.float64]

#: Class names of the iris data set, in the order of its integer targets.
IRIS_CLASSES = ("setosa", "versicolor", "virginica")


def sphere_offsets(centre: ArrayLike, g: ArrayLike, sigma: float) -> Array:
    r"""Unit vectors at angle about :math:`\sigma\lVert g_j\rVert` from a unit ``centre``.

    Point :math:`j` is the exponential map of the sphere at the centre :math:`c`,

    .. math:: x_j = \cos(\lVert\sigma g_j\rVert)\,c + \sin(\lVert\sigma g_j\rVert)\,
              \frac{g_j}{\lVert g_j\rVert},

    where the rows :math:`g_j` of ``g`` are tangent vectors (orthogonal to :math:`c`), so
    the angle between :math:`x_j` and :math:`c` is exactly :math:`\sigma\lVert g_j\rVert`
    (for :math:`\sigma\lVert g_j\rVert \le \pi`).

    Parameters
    ----------
    centre : array_like, shape (d,)
        Unit vector :math:`c`.
    g : array_like, shape (k, d)
        Tangent vectors, each orthogonal to ``centre`` (checked to 1e-9).
    sigma : float
        Scale, ``>= 0``.

    Examples
    --------
    >>> x = sphere_offsets([1.0, 0.0], [[0.0, 1.0], [0.0, -2.0]], 0.1)
    >>> np.round(np.arctan2(x[:, 1], x[:, 0]), 12)
    array([ 0.1, -0.2])
    """
    c = v.finite_array("centre", centre, 1)
    G = v.finite_array("g", g, 2)
    s = v.real_scalar("sigma", sigma)
    if s < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    if abs(float(np.linalg.norm(c)) - 1.0) > 1e-12:
        raise ValueError("centre must be a unit vector")
    if G.shape[1] != c.size:
        raise ValueError(f"g must have shape (k, {c.size}) to match centre, got {G.shape}")
    if G.size and float(np.max(np.abs(G @ c))) > 1e-9 * max(1.0, float(np.max(np.abs(G)))):
        raise ValueError("g must hold tangent vectors, orthogonal to centre")
    ang = s * np.linalg.norm(G, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(ang[:, None] > 0, G / np.linalg.norm(G, axis=1, keepdims=True), 0.0)
    return np.asarray(np.cos(ang)[:, None] * c[None, :] + np.sin(ang)[:, None] * unit)


@dataclass(frozen=True, init=False, eq=False)
class ClusterData(Dataset):
    r"""Two angular clusters around the two points of the book's setting.

    Cluster :math:`\pm` holds ``n`` unit vectors around :math:`x_\pm`
    (:class:`~reluflow.engine.data.TwoPointData` with the same ``delta``, ``p``, ``d``),
    each of weight :math:`w_\pm/n` (:math:`w_+ = p`, :math:`w_- = 1-p`).  The offsets are
    :func:`sphere_offsets` of tangent vectors :math:`\sigma g_j/\sqrt{d-1}`, with
    :math:`g_j` standard Gaussian in the :math:`d-1` directions orthogonal to the centre,
    centred (the :math:`n` tangent vectors of a cluster sum to zero, ``n >= 2``) and scaled
    so that their mean square norm is exactly :math:`d-1`: the root-mean-square angle of a
    cluster's points to its centre is exactly :math:`\sigma`.  The draws depend on ``seed``
    only, so a sweep over :math:`\sigma` moves the same points continuously away from
    :math:`x_\pm` (at :math:`\sigma = 0` every point sits on its centre).

    Parameters
    ----------
    delta : float
        Angle between the centres, in (0, pi).
    p : float
        Total weight of the positive cluster, in (0, 1).
    sigma : float
        RMS angle (rad) of the points to their centre, in [0, delta / 2).
    n : int, default 10
        Points per cluster, ``n >= 2``.
    d : int, default 2
        Ambient dimension, ``d >= 2`` (for ``d > 2`` the points leave the plane of the
        centres).
    seed : int or numpy.random.Generator
        Seed of ``numpy.random.default_rng`` for the offsets.

    Examples
    --------
    >>> data = ClusterData(delta=0.3, p=0.7, sigma=0.05, n=4, seed=1)
    >>> data.n, data.d, float(data.weights[:4].sum())
    (8, 2, 0.7)
    >>> ang = np.arctan2(data.X[:4, 1], data.X[:4, 0])  # positive cluster, around 0
    >>> round(float(np.sqrt(np.mean(ang**2))), 12)
    0.05
    """

    delta: float = field(default=0.0)
    p: float = field(default=0.5)
    sigma: float = field(default=0.0)

    def __init__(self, delta: float, p: float, sigma: float, n: int = 10, d: int = 2,
                 seed: int | np.random.Generator = 0) -> None:
        base = TwoPointData(delta, p, d)
        sg = v.real_scalar("sigma", sigma)
        if not 0.0 <= sg < 0.5 * base.delta:
            raise ValueError(f"sigma must lie in [0, delta/2) = [0, {0.5 * base.delta:g}), "
                             f"got {sigma!r}")
        nn = v.int_at_least("n", n, 2)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
            v.int_at_least("seed", seed, 0))
        X, w = [], []
        for centre, weight in ((base.x_plus, base.p), (base.x_minus, 1.0 - base.p)):
            g = _tangent_draws(rng, centre, nn)
            X.append(sphere_offsets(centre, g, sg / math.sqrt(base.d - 1)))
            w.append(np.full(nn, weight / nn))
        super().__init__(np.concatenate(X), np.repeat([1.0, -1.0], nn), np.concatenate(w))
        object.__setattr__(self, "delta", base.delta)
        object.__setattr__(self, "p", base.p)
        object.__setattr__(self, "sigma", sg)

    def two_point(self) -> TwoPointData:
        r"""The :math:`\sigma \to 0` limit: :class:`~reluflow.engine.data.TwoPointData`."""
        return TwoPointData(self.delta, self.p, self.d)

    def angles_to_centres(self) -> Array:
        """Angle (rad) of every point to its own cluster's centre, shape (n,)."""
        base = self.two_point()
        c = np.where(self.y[:, None] > 0, base.x_plus[None, :], base.x_minus[None, :])
        cos = np.clip(np.sum(self.X * c, axis=1), -1.0, 1.0)
        return np.asarray(np.arccos(cos))


def linear_margin(data: Dataset) -> float:
    r"""Largest margin of a linear classifier through the origin, in the max norm.

    .. math:: \gamma_\infty = \max_{\lVert w\rVert_\infty \le 1}\ \min_i\ y_i\,w^\top x_i,

    a linear program (``scipy.optimize.linprog``, HiGHS).  :math:`\gamma_\infty > 0` iff
    the two classes are linearly separable by a hyperplane through the origin;
    :math:`\gamma_\infty = 0` otherwise (:math:`w = 0`), up to the solver's feasibility
    tolerance (about :math:`10^{-9}`).  Two clusters whose angular ranges interleave (a
    positive point beyond a negative one) give 0: the cluster sweep of the chapter
    "Beyond two points" needs a positive value.

    Examples
    --------
    >>> linear_margin(TwoPointData(0.3, 0.7)) > 0.1
    True
    >>> bool(ClusterData(0.3, 0.7, 0.08, n=8, seed=0).angles_to_centres().max() > 0.15)
    True
    >>> abs(linear_margin(ClusterData(0.3, 0.7, 0.08, n=8, seed=0))) < 1e-9  # interleaved
    True
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a reluflow Dataset, got {type(data).__name__}")
    n, d = data.X.shape
    # variables (w, gamma): maximize gamma subject to gamma - y_i w.x_i <= 0, |w_j| <= 1
    c = np.zeros(d + 1)
    c[-1] = -1.0
    A = np.hstack([-data.y[:, None] * data.X, np.ones((n, 1))])
    res = linprog(c, A_ub=A, b_ub=np.zeros(n), bounds=[(-1.0, 1.0)] * d + [(None, None)],
                  method="highs")
    if res.status != 0:
        raise RuntimeError(f"the linear program of linear_margin failed: {res.message}")
    return float(-res.fun)


def _tangent_draws(rng: np.random.Generator, centre: Array, n: int) -> Array:
    """``n`` centred Gaussian tangent vectors at ``centre`` with mean square norm ``d - 1``."""
    d = centre.size
    # orthonormal basis of the tangent space: complete `centre` with QR
    M = np.eye(d)
    M[:, 0] = centre
    Q, _ = np.linalg.qr(M)
    T = Q[:, 1:]  # (d, d - 1)
    z = rng.standard_normal((n, d - 1))
    z -= z.mean(axis=0, keepdims=True)
    ms = float(np.mean(np.sum(z**2, axis=1)))
    if ms > 0:
        z *= math.sqrt((d - 1) / ms)
    return np.asarray(z @ T.T)


def binary_subset(X: ArrayLike, target: ArrayLike, positive: Any, negative: Any, *,
                  per_class: int | None = None, seed: int = 0) -> Dataset:
    r"""Two classes of a labelled data set, as a :class:`Dataset` with unit maximum norm.

    Keeps the rows whose target is ``positive`` (label +1) or ``negative`` (label -1)
    (optionally only ``per_class`` of each, drawn without replacement with
    ``numpy.random.default_rng(seed)``, in their original order), divides every kept row by
    the largest norm among them, :math:`x_i \leftarrow x_i/\max_j\lVert x_j\rVert` (the
    network has no bias, so the data are not centred), and weights every point equally.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Inputs.
    target : array_like, shape (N,)
        Class of each row.
    positive, negative : object
        The two classes to keep (distinct, each present).
    per_class : int, optional
        Keep this many rows of each class (``>= 1``, at most the class size); all by default.
    seed : int
        Seed of the subsample.

    Examples
    --------
    >>> ds = binary_subset([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], [0, 1, 2], 0, 2)
    >>> ds.X, ds.y
    (array([[0.6, 0.8],
           [0. , 0.4]]), array([ 1., -1.]))
    """
    Xa = v.finite_array("X", X, 2)
    t = np.asarray(target)
    if t.shape != (Xa.shape[0],):
        raise ValueError(f"target must have shape ({Xa.shape[0]},) to match X, got {t.shape}")
    if positive == negative:
        raise ValueError(f"positive and negative must be different classes, got {positive!r}")
    pos, neg = t == positive, t == negative
    for name, sel, cls in (("positive", pos, positive), ("negative", neg, negative)):
        if not np.any(sel):
            raise ValueError(f"{name} class {cls!r} does not occur in target "
                             f"(classes present: {sorted(set(t.tolist()))})")
    if per_class is not None:
        k = v.int_at_least("per_class", per_class, 1)
        rng = np.random.default_rng(v.int_at_least("seed", seed, 0))
        sub = np.zeros_like(pos)
        for name, sel in (("positive", pos), ("negative", neg)):
            idx = np.flatnonzero(sel)
            if k > idx.size:
                raise ValueError(f"per_class must be at most the {name} class size {idx.size}, "
                                 f"got {per_class!r}")
            sub[np.sort(rng.choice(idx, size=k, replace=False))] = True
        pos, neg = pos & sub, neg & sub
    keep = pos | neg
    Xk = Xa[keep]
    scale = float(np.max(np.linalg.norm(Xk, axis=1)))
    if not scale > 0:
        raise ValueError("the selected rows of X are all zero")
    return Dataset(Xk / scale, np.where(pos[keep], 1.0, -1.0))


def _sklearn_datasets(caller: str) -> ModuleType:
    try:
        import sklearn.datasets as skd
    except ImportError as exc:
        raise ImportError(
            f"reluflow.engine.datasets.{caller} needs the optional package scikit-learn "
            "(its bundled copy of the data set; nothing is downloaded): "
            "pip install scikit-learn, or install reluflow with the 'book' or 'dev' extra"
        ) from exc
    return skd


def iris_data(positive: str = "setosa", negative: str = "versicolor") -> Dataset:
    r"""Two iris species (four features, 50 flowers each), scaled to unit maximum norm.

    Parameters
    ----------
    positive, negative : str
        Two of ``"setosa"``, ``"versicolor"``, ``"virginica"`` (labels +1 and -1).

    Raises
    ------
    ImportError
        If scikit-learn is not installed (the message names it).

    Examples
    --------
    >>> ds = iris_data()
    >>> ds.n, ds.d, round(float(np.max(np.linalg.norm(ds.X, axis=1))), 12)
    (100, 4, 1.0)
    """
    for name, val in (("positive", positive), ("negative", negative)):
        if val not in IRIS_CLASSES:
            raise ValueError(f"{name} must be one of {IRIS_CLASSES}, got {val!r}")
    raw = _sklearn_datasets("iris_data").load_iris()
    names = np.asarray(IRIS_CLASSES)[raw.target]
    return binary_subset(raw.data, names, positive, negative)


def digits_data(positive: int = 0, negative: int = 1, *, per_class: int | None = None,
                seed: int = 0) -> Dataset:
    r"""Two classes of the 8x8 handwritten digits (64 pixel features), unit maximum norm.

    Parameters
    ----------
    positive, negative : int
        Two different digits in 0..9 (labels +1 and -1).
    per_class : int, optional
        Keep only this many images of each digit (drawn with ``seed``, see
        :func:`binary_subset`); all (about 180 each) by default.
    seed : int
        Seed of that subsample.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (the message names it).

    Examples
    --------
    >>> ds = digits_data()
    >>> ds.n, ds.d, int(np.sum(ds.y > 0))
    (360, 64, 178)
    >>> digits_data(per_class=50).n
    100
    """
    pos = v.int_at_least("positive", positive, 0)
    neg = v.int_at_least("negative", negative, 0)
    if pos > 9 or neg > 9:
        raise ValueError(f"positive and negative must be digits in 0..9, got {positive!r}, "
                         f"{negative!r}")
    raw = _sklearn_datasets("digits_data").load_digits()
    return binary_subset(raw.data, raw.target, pos, neg, per_class=per_class, seed=seed)
