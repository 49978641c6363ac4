r"""The Data Mixing Laws form (Ye et al., 2024): the loss on validation domain :math:`i` of a model trained
on the mixture :math:`r` is

.. math:: L_i(r) = c_i + k_i \exp\Big(\sum_{j=1}^m t_{ij} r_j\Big).

On the simplex (:math:`\sum_j r_j = 1`) :math:`k_i` and a common shift of the :math:`t_{ij}` are one
direction: :math:`k\,e^{t\cdot r} = e^{(t + \log k\,\mathbf 1)\cdot r}`, so no data can tell them apart. As
:func:`~jaxlaws.laws.log_linear` does, jaxlaws fits an identifiable form and converts: :func:`dml` fixes
:math:`k = 1` (the form of the scalebench reference fit, :math:`c + \exp(\sum_j t_j r_j)`), with parameters
``[c, t1..tm]`` named as in the paper. One law models one validation domain; fit all domains with
:func:`jaxlaws.fit_batched` (the :math:`(c_i, t_{ij})` of different :math:`i` do not interact).

Converters (exact on the simplex; each works on a leading batch of vectors):

* :func:`dml_to_paper` / :func:`paper_to_dml`: ``[c, t]`` <-> the paper's ``[c, k, t]`` (``k = 1`` one way,
  :math:`\log k` folded into :math:`t` the other);
* :func:`dml_to_reduced` / :func:`reduced_to_dml`: ``[c, t]`` <-> :func:`~jaxlaws.laws.log_linear`'s reduced
  ``[l, b, t'_1..t'_{m-1}]`` (:math:`c = e^\ell`, so :math:`c > 0` is needed one way). With
  :func:`~jaxlaws.laws.reduced_to_paper` this also reaches Aioli's ``[c, b, A]`` (:math:`A_j = -t_j` up to the
  common shift).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike
from jaxlaws.laws.base import Array, Law, SingleIndex
from jaxlaws.laws.static import check_groups, default_ridge, mixing_objective, mixture_inputs, named_columns

__all__ = [
    "DML_RIDGE",
    "DML_INDEX",
    "dml_inits",
    "dml",
    "dml_to_paper",
    "paper_to_dml",
    "dml_to_reduced",
    "reduced_to_dml",
]

DML_RIDGE = 1e-7  # lam of dml's default ridge on t (see dml's docstring)


def _dml_predict(params: Array, x: Array) -> Array:
    # Module level and independent of m, so every dml(m) shares one compiled program per shape.
    return params[0] + jnp.exp(x @ params[1:])


def _dml_features(x: Array) -> Array:
    return x


def _dml_head(h: Array, z: Array, x: Array) -> Array:
    return h[0] + jnp.exp(z)


DML_INDEX = SingleIndex(1, _dml_features, _dml_head)


def dml_inits(
    x: ArrayLike, y: ArrayLike, n_c: int = 12, spreads: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5)
) -> np.ndarray:
    r"""A deterministic, data-adapted grid for :func:`dml`: ``n_c`` values of :math:`c` below the smallest
    loss, :math:`c = \min y - g\,q` with :math:`g` the range of ``y`` and :math:`q` in
    ``geomspace(0.02, 50, n_c)``; for each, the least-squares :math:`\hat t` of
    :math:`\log(y - c) = t\cdot r` (exact for noiseless data with that :math:`c`), shrunk towards its mean level
    :math:`\bar z` by each factor in ``spreads``: :math:`t = \bar z\mathbf 1 + s(\hat t - \bar z\mathbf 1)`.

    Args:
      x: ``(n, m)`` mixtures of the fitting points.
      y: ``(n,)`` their losses.
      n_c: the number of values of :math:`c`.
      spreads: the shrinkage factors :math:`s`.

    Returns:
      ``(n_c * len(spreads), m + 1)`` initial ``[c, t_1..t_m]``.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(len(x))
    lo = float(np.min(y))
    gap = max(float(np.ptp(y)), 1e-6 * max(1.0, abs(lo)))
    rows = []
    for c in lo - gap * np.geomspace(0.02, 50.0, n_c):
        z = np.log(y - c)
        t_hat = np.linalg.lstsq(x, z, rcond=None)[0]
        level = float(np.mean(z))
        rows += [np.r_[c, level + s * (t_hat - level)] for s in spreads]
    return np.asarray(rows)


@functools.cache  # one Law per m; all share one predict function
def dml(m: int) -> Law:
    r"""Ye et al.'s data mixing law for one validation domain, with :math:`k = 1` (see the module docstring):

    .. math:: L(r) = c + \exp\Big(\sum_{j=1}^m t_j r_j\Big),\qquad x = r \in \Delta^m,

    params ``[c, t1..tm]``. :math:`c` is free (the paper's constant; :func:`~jaxlaws.laws.log_linear` is the
    same family with :math:`c > 0`). Default grid: :func:`dml_inits` (deterministic, no key needed).
    ``FitResult.paper`` gives ``c, k, t1..tm`` with ``k = 1``.

    **Default penalty**: a ridge :math:`\tfrac{\lambda}{2} W \sum_{j=1}^m t_j^2`, :math:`\lambda = 10^{-7}`
    (:math:`W` the total weight of the fitting points; ``penalty=None`` turns it off). Unpenalised, a
    :math:`t_j` that only one or two runs determine runs off to :math:`|t_j| \sim 10^2` and held-out
    predictions explode: leave-one-mixture-out mean error on the Data Mixing Laws RedPajama runs 6.2 at 160M;
    with the default 0.029 (70M-410M: at most 0.033; ordinary least squares 0.035-0.042;
    ``benchmarks/results/regularised_static.md``). With :math:`k = 1` the :math:`t_j` also carry the level
    :math:`\log k` (a common shift), which the ridge pulls gently towards 0 too. Stronger than
    :func:`~jaxlaws.laws.log_linear`'s :math:`10^{-8}`, which must keep Aioli's 9-group fits with
    :math:`|t_j|` up to 157; no reference fits of this form rely on larger :math:`t`.

    Args:
      m: the number of domains (>= 2).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    check_groups(m)
    ts = tuple(f"t{j + 1}" for j in range(m))
    return Law(
        f"dml({m})",
        ("c",) + ts,
        _dml_predict,
        x_dim=m,
        x_kind="simplex",
        init_grid=lambda key, x, y: dml_inits(x, y),
        exponents=ts,
        default_penalty=default_ridge(DML_RIDGE),
        to_paper=functools.partial(named_columns, ("c", "k") + ts, dml_to_paper),
        index=DML_INDEX,
        inputs=mixture_inputs(m),
        default_objective=mixing_objective(),
    )


def dml_to_paper(params: ArrayLike) -> np.ndarray:
    """``[c, t_1..t_m] -> [c, k, t_1..t_m]`` with the convention ``k = 1``.

    Args:
      params: ``(P,)`` or a batch ``(..., P)`` of parameter vectors.

    Returns:
      ``(..., m + 2)`` the paper's ``[c, k, t_1..t_m]``.
    """
    p = np.asarray(params, np.float64)
    return np.concatenate([p[..., :1], np.ones_like(p[..., :1]), p[..., 1:]], axis=-1)


def paper_to_dml(params: ArrayLike) -> np.ndarray:
    r"""The paper's ``[c, k, t_1..t_m] -> [c, t_1 + \log k, .., t_m + \log k]`` (needs ``k > 0``).

    Args:
      params: ``(..., m + 2)`` the paper's ``[c, k, t_1..t_m]``.

    Returns:
      ``(..., m + 1)`` :func:`dml`'s ``[c, t_1..t_m]``.
    """
    p = np.asarray(params, np.float64)
    k = p[..., 1:2]
    if np.any(k <= 0):
        raise ValueError("paper_to_dml needs k > 0 (it folds log k into the t_j)")
    return np.concatenate([p[..., :1], p[..., 2:] + np.log(k)], axis=-1)


def dml_to_reduced(params: ArrayLike) -> np.ndarray:
    r"""``[c, t_1..t_m] -> [l, b, t'_1..t'_{m-1}]`` of :func:`~jaxlaws.laws.log_linear` (needs ``c > 0``):
    with :math:`r_m = 1 - \sum_{j<m} r_j`, :math:`t\cdot r = t_m + \sum_{j<m}(t_j - t_m) r_j`, so
    :math:`\ell = \log c`, :math:`b = t_m`, :math:`t'_j = t_j - t_m`.

    Args:
      params: ``(..., m + 1)`` :func:`dml`'s ``[c, t_1..t_m]``.

    Returns:
      ``(..., m + 1)`` :func:`~jaxlaws.laws.log_linear`'s ``[l, b, t'_1..t'_{m-1}]``.
    """
    p = np.asarray(params, np.float64)
    c, t = p[..., :1], p[..., 1:]
    if t.shape[-1] < 2:
        raise ValueError(f"dml parameters are [c, t1..tm] with m >= 2, got shape {p.shape}")
    if np.any(c <= 0):
        raise ValueError("dml_to_reduced needs c > 0 (the reduced form's constant is exp(l))")
    tm = t[..., -1:]
    return np.concatenate([np.log(c), tm, t[..., :-1] - tm], axis=-1)


def reduced_to_dml(params: ArrayLike) -> np.ndarray:
    r""":func:`~jaxlaws.laws.log_linear`'s ``[l, b, t'_1..t'_{m-1}] -> [c, t_1..t_m]``:
    :math:`c = e^\ell`, :math:`t_j = b + t'_j` (:math:`j < m`), :math:`t_m = b`.

    Args:
      params: ``(..., m + 1)`` :func:`~jaxlaws.laws.log_linear`'s ``[l, b, t'_1..t'_{m-1}]``.

    Returns:
      ``(..., m + 1)`` :func:`dml`'s ``[c, t_1..t_m]``.
    """
    p = np.asarray(params, np.float64)
    b = p[..., 1:2]
    return np.concatenate([np.exp(p[..., :1]), b + p[..., 2:], b], axis=-1)
