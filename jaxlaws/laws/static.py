r"""Static mixing laws: end-of-training loss as a function of the (fixed) mixture.

The paper's log-linear law for group :math:`i` is

.. math:: L_i(p) = c_i + b_i \exp\Big(-\sum_{j=1}^m A_{ij} p_j\Big).

On the simplex it has a flat direction (adding :math:`\delta` to every :math:`A_{ij}` is the same as
multiplying :math:`b_i` by :math:`e^{-\delta}`), so jaxlaws fits the identifiable *reduced* form

.. math:: L_i(p) = e^{\ell} + \exp\Big(b + \sum_{j<m} t_j p_j\Big),

which eliminates :math:`p_m = 1 - \sum_{j<m} p_j`; :func:`reduced_to_paper` and :func:`paper_to_reduced`
convert between the two.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike, KeyLike
from jaxlaws.laws.base import POSITIVE, Array, Law, SingleIndex, as_key, grid

if TYPE_CHECKING:
    from jaxlaws.fitting.objectives import Objective
    from jaxlaws.fitting.regularise import Penalty

__all__ = [
    "DEFAULT_RIDGE",
    "static_two_group",
    "exp_two_group",
    "log_linear_inits",
    "LOG_LINEAR_INDEX",
    "PAPER_INDEX",
    "auto_own",
    "log_linear",
    "mixing_objective",
    "log_linear_paper",
    "reduced_to_paper",
    "paper_to_reduced",
    "mixture_inputs",
    "check_groups",
    "default_ridge",
    "named_columns",
]

DEFAULT_RIDGE = 1e-8  # lam of the default ridge on the exponents t_j (see log_linear's docstring)


def _own(x: Array) -> Array:
    return x[:, 0]


@functools.cache  # one Law per signature, so compiled fits are reused
def static_two_group() -> Law:
    r"""Two groups, own proportion: :math:`L_i = c + \exp(k p_i + b)`; ``x`` is :math:`p_i`, shape (n, 1).

    The default init grid puts ``c`` on a grid below the smallest observed loss (the law is only defined
    for :math:`c < L`), crossed with the original's ``k`` and ``b`` ranges (widened).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """

    def predict(params: Array, x: Array) -> Array:
        c, k, b = params
        return c + jnp.exp(k * _own(x) + b)

    def init_grid(key, x, y) -> np.ndarray:
        lo = float(np.min(y))
        return grid(
            lo * np.array([0.0, 0.3, 0.6, 0.8, 0.9, 0.95]), np.linspace(-4.0, -0.5, 8), np.linspace(-2.0, 0.5, 6)
        )

    return Law(
        "static_two_group",
        ("c", "k", "b"),
        predict,
        x_dim=1,
        x_kind="unit",
        init_grid=init_grid,
        inputs=("p",),
        default_objective=mixing_objective(),
    )


@functools.cache  # one Law per signature, so compiled fits are reused
def exp_two_group() -> Law:
    r"""Stage two of the original m=2 fit: :math:`L_i - c = \exp(k p_i + b)` with ``c`` chosen beforehand.

    Default inits are the original's 121: ``k in linspace(-2.4, -1.6, 11)`` x ``b in linspace(-1, -0.1, 11)``.

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """

    def predict(params: Array, x: Array) -> Array:
        k, b = params
        return jnp.exp(k * _own(x) + b)

    def init_grid(key, x, y) -> np.ndarray:
        return grid(np.linspace(-2.4, -1.6, 11), np.linspace(-1.0, -0.1, 11))

    return Law(
        "exp_two_group",
        ("k", "b"),
        predict,
        x_dim=1,
        x_kind="unit",
        init_grid=init_grid,
        output_range=POSITIVE,
        inputs=("p",),
        default_objective=mixing_objective(),
    )


def log_linear_inits(m: int, key: KeyLike, own: int | None = None, n_random: int = 30) -> np.ndarray:
    r"""The original's 6,000-point grid for :func:`log_linear`.

    From HazyResearch/aioli, the analysis notebooks' static fits.

    ``l in linspace(-2, 1.5, 10)`` x ``b in linspace(-10, 1, 20)`` x ``n_random`` draws of ``t`` with
    :math:`t_j = -U(0,1)` on the group's own index ``own`` (when ``own < m - 1``) and :math:`0.1\,U(0,1)`
    elsewhere. Unlike the original, the draws come from an explicit ``key``.

    Args:
      m: the number of groups.
      key: an int seed or ``jax.random`` key for the draws.
      own: the modelled group's index, or ``None`` (no index started negative).
      n_random: draws of ``t`` per ``(l, b)`` pair.

    Returns:
      ``(200 * n_random, m + 1)`` initial ``[l, b, t_1..t_{m-1}]``.
    """
    u = np.asarray(jax.random.uniform(as_key(key), (n_random, m - 1), dtype=jnp.float32), np.float64)
    t = 0.1 * u
    if own is not None and 0 <= own < m - 1:
        t[:, own] = -u[:, own]
    lb = grid(np.linspace(-2.0, 1.5, 10), np.linspace(-10.0, 1.0, 20))
    lb_rep = np.repeat(lb, n_random, axis=0)
    t_rep = np.tile(t, (len(lb), 1))
    return np.concatenate([lb_rep, t_rep], axis=1)


def _log_linear_predict(params: Array, x: Array) -> Array:
    # One module-level function for every m and every own: the engine's compiled programs are keyed on the
    # predict function, so all groups of a sweep share one program. x[:, :-1] drops p_m (params has m + 1).
    return jnp.exp(params[0]) + jnp.exp(params[1] + x[:, :-1] @ params[2:])


def _log_linear_features(x: Array) -> Array:
    return jnp.concatenate([jnp.ones_like(x[:, :1]), x[:, :-1]], axis=1)  # z = b + t . p_{<m}


def _log_linear_head(h: Array, z: Array, x: Array) -> Array:
    return jnp.exp(h[0]) + jnp.exp(z)


LOG_LINEAR_INDEX = SingleIndex(1, _log_linear_features, _log_linear_head)


def _paper_features(x: Array) -> Array:
    return -x


def _paper_head(h: Array, z: Array, x: Array) -> Array:
    return h[0] + h[1] * jnp.exp(z)


PAPER_INDEX = SingleIndex(2, _paper_features, _paper_head)


def auto_own(x: ArrayLike, y: ArrayLike) -> int | None:
    """The group whose loss ``y`` most likely is: the column of ``x`` with the most negative Pearson
    correlation with ``y`` (training more on a group lowers its own loss most). ``None`` when no column
    correlates negatively (or ``x``/``y`` are constant): then no ``t_j`` is started negative.

    Args:
      x: ``(n, m)`` mixtures.
      y: ``(n,)`` one group's losses.

    Returns:
      The column index, or ``None``.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(len(x), -1).mean(axis=1)
    xc, yc = x - x.mean(axis=0), y - y.mean()
    den = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(den > 0, (xc * yc[:, None]).sum(axis=0) / den, np.nan)
    if not np.any(corr < 0):
        return None
    return int(np.nanargmin(corr))


def log_linear(m: int, own: int | Literal["auto"] | None = "auto") -> Law:
    r"""Reduced static log-linear law for ``m`` groups, params ``[l, b, t_1..t_{m-1}]``:

    .. math:: L(p) = e^{\ell} + \exp\Big(b + \sum_{j<m} t_j p_j\Big),\qquad x = p \in \Delta^m.

    ``own`` only shapes the default init grid (:func:`log_linear_inits`, the original's 6,000 inits, which
    start :math:`t_{own}` negative): the index of the group whose loss is modelled, ``"auto"`` (default:
    chosen per problem from the data by :func:`auto_own`, so ``fit_batched(log_linear(m), xs, ys)`` over
    every group of a sweep gets each problem its own grid) or ``None`` (no index started negative). Every
    ``own`` shares one predict function, so switching ``own`` does not recompile.

    ``FitResult.paper`` gives Aioli's form :math:`c + b\,e^{-\sum_j A_j p_j}` as ``c, b, A1..Am`` with the
    convention :math:`A_m = 0` (the form is only identified up to a common shift of the :math:`A_j`).

    **Default penalty** (``default_penalty``, used unless ``fit(..., penalty=...)`` overrides it): a ridge
    on the exponents, :math:`\tfrac{\lambda}{2} W \sum_{j<m} t_j^2` with :math:`\lambda = 10^{-8}` and
    :math:`W` the total weight of the fitting points (the number of points when unweighted), added to the
    Huber objective on the raw loss. Why: with few runs and some proportions that barely vary, a
    :math:`t_j` is set by one or two points and the unpenalised optimum runs off to :math:`|t_j|` in the
    hundreds, a lower objective that predicts held-out mixtures absurdly (leave-one-mixture-out on the Data
    Mixing Laws RedPajama runs: mean error 6.2 at 160M, 0.30 at 305M, 0.18 at 410M; with this default
    0.028, 0.034 and 0.042, ordinary least squares 0.042, 0.037 and 0.037 -- sane everywhere, but it loses
    to least squares at 410M; ``benchmarks/results/regularised_static.md``). Why so small:
    Aioli's own 9-group fits (``instruction/params.json``) have :math:`|t_j|` up to 80-157, and synthetic
    data drawn from them must still be recovered; :math:`10^{-7}` shrinks them past the noise while
    :math:`10^{-8}` keeps every fit within the noise (``tests/test_fit_recovery.py``). For held-out
    prediction on data like RedPajama a stronger ridge (``jaxlaws.ridge(1e-7)``) does better at 305M-410M;
    choose it with :func:`jaxlaws.cross_validate`. :math:`\lambda` is in units of the loss squared per unit
    :math:`t^2` (the objective's units): rescaling the losses by :math:`s` calls for :math:`s^2\lambda`.
    ``penalty=None`` gives the original's unpenalised fit. No bounds by default.

    Args:
      m: the number of groups (>= 2).
      own: the modelled group's index for the default init grid, ``"auto"`` or ``None`` (above).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    check_groups(m)
    index = isinstance(own, (int, np.integer)) and not isinstance(own, bool)
    if not (own is None or (isinstance(own, str) and own == "auto") or (index and 0 <= own < m)):
        raise ValueError(f"own must be a group index in [0, {m}), 'auto' or None, got {own!r}")
    return _log_linear(int(m), int(own) if index else own)


@functools.cache  # one Law per signature (checked above: True and 1.0 must not hit own=1's entry)
def _log_linear(m: int, own: int | None | str) -> Law:
    index = isinstance(own, int)

    def init_grid(key, x, y) -> np.ndarray:
        return log_linear_inits(m, key, own if index or own is None else auto_own(x, y))

    names = ("l", "b") + tuple(f"t{j + 1}" for j in range(m - 1))
    paper = ("c", "b") + tuple(f"A{j + 1}" for j in range(m))
    return Law(
        f"log_linear({m})",
        names,
        _log_linear_predict,
        x_dim=m,
        x_kind="simplex",
        init_grid=init_grid,
        needs_key=True,
        output_range=POSITIVE,
        exponents=names[2:],
        default_penalty=default_ridge(),
        to_paper=functools.partial(named_columns, paper, reduced_to_paper),
        index=LOG_LINEAR_INDEX,
        inputs=mixture_inputs(m),
        default_objective=mixing_objective(),
    )


def mixing_objective() -> Objective:
    """The mixing laws' objective: the original's summed Huber(0.02) on the raw loss (HazyResearch/aioli
    ``aioli/utils/mixing_law_fitting.py``), robust to the odd diverged run of a sweep. A law that declares no
    objective is fitted by least squares instead."""
    from jaxlaws.fitting.objectives import huber  # here, not at import: jaxlaws.fitting imports the laws

    return huber(0.02)


def default_ridge(lam: float = DEFAULT_RIDGE) -> Penalty:
    """The mixing laws' default penalty: :func:`jaxlaws.ridge` of weight ``lam`` on the law's exponents."""
    from jaxlaws.fitting.regularise import Penalty  # here, not at import: jaxlaws.fitting imports the laws

    return Penalty(lam)


def named_columns(
    names: tuple[str, ...], convert: Callable[[np.ndarray], np.ndarray], params: ArrayLike
) -> dict[str, np.ndarray]:
    """``{name: column}`` of ``convert(params)`` (``[B,] P``), for ``Law.to_paper``."""
    out = np.asarray(convert(params), np.float64)
    return {n: out[..., i] for i, n in enumerate(names)}


@functools.cache  # one Law per signature, so compiled fits are reused
def log_linear_paper(m: int) -> Law:
    r"""The paper's form :math:`L(p) = c + b\,\exp(-\sum_j A_j p_j)`, params ``[c, b, A_1..A_m]``.

    Not identifiable on the simplex (see the module docstring): compare fits by objective and predictions.

    Args:
      m: the number of groups (>= 2).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    check_groups(m)

    def init_grid(key, x, y) -> np.ndarray:
        lo = float(np.min(y))
        base = grid(lo * np.array([0.0, 0.5, 0.8, 0.95]), np.array([0.1, 0.5, 1.0, 3.0]), np.linspace(-1.0, 3.0, 5))
        # A starts as a multiple of the ones vector; the data move it apart.
        return np.concatenate([base[:, :2], np.repeat(base[:, 2:], m, axis=1)], axis=1)

    names = ("c", "b") + tuple(f"A{j + 1}" for j in range(m))
    return Law(
        f"log_linear_paper({m})",
        names,
        PAPER_INDEX.predict,
        x_dim=m,
        x_kind="simplex",
        init_grid=init_grid,
        index=PAPER_INDEX,
        inputs=mixture_inputs(m),
        default_objective=mixing_objective(),
    )


def reduced_to_paper(params: ArrayLike) -> np.ndarray:
    r"""``[l, b, t_1..t_{m-1}] -> [c, b', A_1..A_m]`` with the convention :math:`A_m = 0`.

    :math:`c = e^\ell`, :math:`b' = e^{b}`, :math:`A_j = -t_j`. Works on a leading batch of vectors.

    Args:
      params: ``(..., m + 1)`` :func:`log_linear`'s ``[l, b, t_1..t_{m-1}]``.

    Returns:
      ``(..., m + 2)`` the paper's ``[c, b, A_1..A_m]``.
    """
    params = np.asarray(params)
    c = np.exp(params[..., :1])
    b = np.exp(params[..., 1:2])
    a = -params[..., 2:]
    return np.concatenate([c, b, a, np.zeros_like(c)], axis=-1)


def paper_to_reduced(params: ArrayLike) -> np.ndarray:
    r"""``[c, b, A_1..A_m] -> [l, b', t_1..t_{m-1}]``, exact on the simplex (needs ``c > 0`` and ``b > 0``).

    Using :math:`p_m = 1 - \sum_{j<m} p_j`: :math:`b\,e^{-A\cdot p} = \exp(\log b - A_m + \sum_{j<m}(A_m - A_j)p_j)`.

    Args:
      params: ``(..., m + 2)`` the paper's ``[c, b, A_1..A_m]``.

    Returns:
      ``(..., m + 1)`` :func:`log_linear`'s ``[l, b, t_1..t_{m-1}]``.
    """
    params = np.asarray(params, dtype=np.float64)
    c, b, a = params[..., 0], params[..., 1], params[..., 2:]
    if np.any(c <= 0) or np.any(b <= 0):
        raise ValueError("paper_to_reduced needs c > 0 and b > 0 (the reduced form takes their logs)")
    am = a[..., -1:]
    return np.concatenate([np.log(c)[..., None], (np.log(b) - am[..., 0])[..., None], am - a[..., :-1]], axis=-1)


def mixture_inputs(m: int) -> tuple[str, ...]:
    """The input names of an ``m``-group mixing law: ``p1..pm``, the proportions of the groups in order."""
    return tuple(f"p{j + 1}" for j in range(m))


def check_groups(m: int) -> None:
    """Raise ``ValueError`` unless ``m`` is an integer number of groups ``>= 2`` (a mixing law's ``m``)."""
    if not isinstance(m, (int, np.integer)) or m < 2:
        raise ValueError(f"a mixing law needs m >= 2 groups, got m={m!r}")
