r"""The mixers' signals from any per-example loss ``loss_fn(params, batch) -> (B,)``.

``batch`` is whatever the user's ``loss_fn`` takes (a pytree whose leaves have a leading batch axis ``B``)
and ``group_ids`` (B,) the group of each example. Everything here is pure and jit/vmap-safe.

* :func:`group_losses` -- per-group mean losses (held-out losses for Aioli and Skill-It);
* :func:`per_group_grads` -- per-group mean losses, counts and gradients (a leading axis ``m``), by ``m``
  weighted backward passes, vmapped;
* :func:`doremi_step` / :func:`doge_step` -- one step of DoReMi's / DoGE's proxy: the signals, the mixer's
  ``update`` and the gradient the step should apply, ``(loss, grads, state)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxlaws._typing import ArrayLike, PyTree
from jaxlaws.mixing.base import Mixer, group_means
from jaxlaws.mixing.doge import DoGEState, combine, score_matrix
from jaxlaws.mixing.doremi import DoReMiState, weighted_loss

__all__ = ["group_losses", "per_group_grads", "doremi_step", "doge_step"]

LossFn = Callable[[PyTree, PyTree], jax.Array]


def _per_example(loss_fn: LossFn, params: Any, batch: Any, group_ids: jax.Array) -> jax.Array:
    per = loss_fn(params, batch)
    if per.ndim != 1 or per.shape != group_ids.shape:
        raise ValueError(
            f"loss_fn must return one loss per example, shape {group_ids.shape} like group_ids, got {per.shape}"
        )
    return per


def group_losses(
    loss_fn: LossFn, params: PyTree, batch: PyTree, group_ids: jax.Array, m: int
) -> tuple[jax.Array, jax.Array]:
    """Each group's mean loss on ``batch`` (0 where a group is absent) and its number of examples.

    Args:
      loss_fn: ``(params, batch) -> (N,)`` per-example losses, pure.
      params: the model's parameters (a pytree).
      batch: a batch (a pytree with a leading axis ``N``).
      group_ids: ``(N,)`` each example's group.
      m: the number of groups.

    Returns:
      ``(means (m,), counts (m,))``.
    """
    return group_means(_per_example(loss_fn, params, batch, group_ids), group_ids, m)


def per_group_grads(
    loss_fn: LossFn, params: PyTree, batch: PyTree, group_ids: jax.Array, m: int
) -> tuple[jax.Array, jax.Array, PyTree]:
    r"""``(losses (m,), counts (m,), grads)``: :math:`g_j = \nabla_\theta \frac{1}{n_j}\sum_{n: g_n = j}
    \ell_n(\theta)` for each group (zeros for a group absent from the batch), a pytree like ``params`` with a
    leading axis of size ``m``, with each group's mean loss and number of examples.

    Args:
      loss_fn: ``(params, batch) -> (N,)`` per-example losses, pure.
      params: the model's parameters.
      batch: a batch.
      group_ids: ``(N,)`` each example's group.
      m: the number of groups.

    Returns:
      ``(losses (m,), counts (m,), grads)``, ``grads`` like ``params`` with a leading axis ``m``.
    """
    one_hot = jax.nn.one_hot(group_ids, m, dtype=jnp.float32)
    counts = one_hot.sum(0)
    weights = one_hot / jnp.maximum(counts, 1.0)  # [B, m]

    def weighted(w: jax.Array) -> tuple[jax.Array, Any]:
        return jax.value_and_grad(lambda p: _per_example(loss_fn, p, batch, group_ids) @ w)(params)

    losses, grads = jax.vmap(weighted, in_axes=1)(weights)
    return losses, counts, grads


def doremi_step(
    mixer: Mixer,
    state: DoReMiState,
    loss_fn: LossFn,
    params: PyTree,
    ref_params: PyTree,
    batch: PyTree,
    group_ids: jax.Array,
) -> tuple[jax.Array, PyTree, Any]:
    r"""One DoReMi proxy step: ``(mean loss, grads, state)``.

    The proxy's and the reference's per-domain losses on ``batch`` update the weights, and ``grads`` is the
    gradient of :math:`\sum_i w_i L_i(\theta)` with the updated ``w`` (one backward pass).

    Args:
      mixer: a :func:`~jaxlaws.mixing.doremi` mixer.
      state: its state.
      loss_fn: ``(params, batch) -> (N,)`` per-example losses, pure.
      params: the proxy model's parameters.
      ref_params: the reference model's parameters.
      batch: a batch.
      group_ids: ``(N,)`` each example's group.

    Returns:
      ``(mean loss, grads, state)``: ``grads`` like ``params``, the updated state.
    """
    m = mixer.weights(state).shape[0]
    ref, _ = group_means(jax.lax.stop_gradient(_per_example(loss_fn, ref_params, batch, group_ids)), group_ids, m)

    def objective(p: Any) -> tuple[jax.Array, tuple[Any, jax.Array]]:
        per = _per_example(loss_fn, p, batch, group_ids)
        own, counts = group_means(jax.lax.stop_gradient(per), group_ids, m)
        new = mixer.update(state, train_losses=own, ref_losses=ref, counts=counts)
        return weighted_loss(per, group_ids, mixer.weights(new)), (new, per.mean())

    (_, (new, loss)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return loss, grads, new


def doge_step(
    mixer: Mixer,
    state: DoGEState,
    loss_fn: LossFn,
    params: PyTree,
    batch: PyTree,
    group_ids: jax.Array,
    val_batch: PyTree,
    val_group_ids: jax.Array,
    lr: ArrayLike,
    full_matrix: bool | ArrayLike = True,
) -> tuple[jax.Array, PyTree, Any]:
    r"""One DoGE proxy step: ``(mean train loss, grads, state)``.

    Per-domain gradients on ``batch`` (``m`` backward passes), the gradient of the mean loss of ``val_batch``
    (a random draw from the validation data, as the original's; one backward pass), the scores and weights
    (``mixer.update``), and ``grads`` = :math:`\sum_i w_i\,\mathrm{clip}(g_i)`. Where ``full_matrix`` holds,
    the per-domain validation gradients are computed too (``m`` more backward passes) and the state records
    ``M`` (:func:`~jaxlaws.mixing.doge.score_matrix`). ``full_matrix`` may be a traced bool (e.g. "this step
    is one of the last before a checkpoint"): those passes then run under a ``lax.cond``, only on the steps
    that record (a real branch when the predicate is not batched by a ``vmap``). The weights never depend on
    ``full_matrix``.

    Args:
      mixer: a :func:`~jaxlaws.mixing.doge` mixer.
      state: its state.
      loss_fn: ``(params, batch) -> (N,)`` per-example losses, pure.
      params: the proxy model's parameters.
      batch: a training batch.
      group_ids: ``(N,)`` its examples' groups.
      val_batch: a validation batch.
      val_group_ids: its examples' groups.
      lr: the learning rate of this step.
      full_matrix: also compute the per-domain validation gradients and record ``M`` (a bool or a traced bool).

    Returns:
      ``(mean train loss, grads, state)``: ``grads`` like ``params``, the updated state.
    """
    m = mixer.weights(state).shape[0]
    clip = mixer.hparams["clip"]
    tl, tc, g = per_group_grads(loss_fn, params, batch, group_ids, m)
    g_val = jax.grad(lambda p: _per_example(loss_fn, p, val_batch, val_group_ids).mean())(params)
    if full_matrix is False:
        new = mixer.update(state, grads=g, val_grad=g_val, lr=lr)
    else:

        def matrix(_: Any) -> jax.Array:
            _, _, v = per_group_grads(loss_fn, params, val_batch, val_group_ids, m)
            return score_matrix(g, v, clip)

        if full_matrix is True:
            M = matrix(None)
        else:  # the m validation backward passes only on the steps that record M
            zeros = lambda _: jnp.zeros((m, m), jnp.float32)  # noqa: E731
            M = jax.lax.cond(jnp.asarray(full_matrix, bool), matrix, zeros, None)
        new = mixer.update(state, grads=g, val_grad=g_val, lr=lr, matrix=M, record_now=full_matrix)
    grads = combine(g, mixer.weights(new), clip)
    return (tl * tc).sum() / jnp.maximum(tc.sum(), 1.0), grads, new
