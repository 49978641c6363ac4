r"""Dynamic mixing laws: the loss after a short window of training from a checkpoint.

The paper's law is linear in the window's mixture :math:`p^t`,

.. math:: L_i^{t+1}(p) = L_i^t - \sum_j A^t_{ij} p^t_j,

so every law here is linear in its parameters and is solved in closed form (:func:`jaxlaws.lstsq`).
Sign convention: fitted slopes are negative where training on a group lowers the loss.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from jaxlaws.laws.base import Array, Law
from jaxlaws.laws.static import check_groups, mixing_objective, mixture_inputs

__all__ = ["dynamic_two_group", "dynamic_linear", "dynamic_full", "log_ratio", "scaled_method", "method_features"]


def _linear(
    name: str,
    names: tuple[str, ...],
    design,
    x_dim: int,
    x_kind: str,
    n_outputs: int = 1,
    inputs: tuple[str, ...] | None = None,
) -> Law:
    def predict(params: Array, x: Array) -> Array:
        return design(x) @ params

    return Law(
        name,
        names,
        predict,
        x_dim=x_dim,
        x_kind=x_kind,
        n_outputs=n_outputs,
        design=design,
        inputs=mixture_inputs(x_dim) if inputs is None and x_kind == "simplex" else inputs,
        default_objective=mixing_objective(),
    )


def _reduced_linear(name: str, m: int) -> Law:
    """``c + sum_{j<m} t_j p_j`` on the simplex (the last proportion eliminated)."""
    check_groups(m)
    design = lambda x: jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), x[:, : m - 1]], axis=1)  # noqa: E731
    return _linear(f"{name}({m})", ("c",) + tuple(f"t{j + 1}" for j in range(m - 1)), design, m, "simplex")


@functools.cache  # one Law per signature, so compiled fits are reused
def dynamic_two_group() -> Law:
    r"""Two groups: :math:`L_i^{t+1} = k\,p_i + b`, ``x`` the child's own proportion :math:`p_i`, (n, 1).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    return _linear(
        "dynamic_two_group",
        ("k", "b"),
        lambda x: jnp.concatenate([x[:, :1], jnp.ones_like(x[:, :1])], axis=1),
        1,
        "unit",
        inputs=("p",),
    )


@functools.cache  # one Law per signature, so compiled fits are reused
def dynamic_linear(m: int) -> Law:
    r"""Reduced linear law :math:`L^{t+1} = c + \sum_{j<m} t_j p_j`, params ``[c, t_1..t_{m-1}]``, ``x = p``.

    Args:
      m: the number of groups (>= 2).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    return _reduced_linear("dynamic_linear", m)


@functools.cache  # one Law per signature, so compiled fits are reused
def dynamic_full(m: int) -> Law:
    r"""Full law on the loss change, no intercept: :math:`L^{t+1} - L^t = \sum_{j=1}^m a_j p_j`.

    ``y`` is the difference :math:`L^{t+1} - L^t`; params ``[a_1..a_m]`` are the row :math:`-A^t_{i\cdot}`.

    Args:
      m: the number of groups (>= 2).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    check_groups(m)
    return _linear(f"dynamic_full({m})", tuple(f"a{j + 1}" for j in range(m)), lambda x: x, m, "simplex")


@functools.cache  # one Law per signature, so compiled fits are reused
def log_ratio(m: int) -> Law:
    r"""Instruction-tuning law :math:`\log(L^{t+1}/L^t) = c + \sum_{j<m} t_j p_j`; ``y`` is the log ratio.

    Args:
      m: the number of groups (>= 2).

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    return _reduced_linear("log_ratio", m)  # same design as dynamic_linear; only the target differs


@functools.cache  # one Law per signature, so compiled fits are reused
def scaled_method(m: int, intercept: bool = True) -> Law:
    r"""A method's matrix scaled by one scalar shared by all ``m`` outputs (the fit of :math:`\tilde A = bA`).

    ``x`` holds the features :math:`F_{ni} = (A p_n)_i` (see :func:`method_features`), ``y`` is ``(n, m)``:

    * ``intercept=True``: :math:`L_i^{t+1} = c_i + b F_i`, params ``[b, c_1..c_m]``;
    * ``intercept=False``: :math:`L_i^{t+1} - L_i^t = b F_i`, params ``[b]``.

    Args:
      m: the number of groups (>= 2).
      intercept: whether each output has its own intercept :math:`c_i`.

    Returns:
      The :class:`Law` (cached per argument, so compiled fits are reused).
    """
    check_groups(m)

    def design(x: Array) -> Array:
        cols = [x[:, :, None]]
        if intercept:
            cols.append(jnp.broadcast_to(jnp.eye(m, dtype=x.dtype), (x.shape[0], m, m)))
        return jnp.concatenate(cols, axis=2)  # (n, m, P)

    names = ("b",) + (tuple(f"c{i + 1}" for i in range(m)) if intercept else ())
    return _linear(
        f"scaled_method({m}{'' if intercept else ', no intercept'})",
        names,
        design,
        m,
        "free",
        n_outputs=m,
        inputs=tuple(f"F{i + 1}" for i in range(m)),
    )


def method_features(a: Array, p: Array) -> Array:
    r"""Features :math:`F_{ni} = \sum_j A_{ij} p_{nj}` for :func:`scaled_method`: ``a`` (m, m), ``p`` (n, m).

    Args:
      a: ``(m, m)`` a method's matrix :math:`A`.
      p: ``(n, m)`` mixtures.

    Returns:
      ``(n, m)`` features :math:`F = p A^\top`.
    """
    return jnp.asarray(p) @ jnp.asarray(a).T
