"""Train state, run keys and per-group losses/gradients of jaxlaws' decoder.

``TrainState(params, opt_state, step)`` is a pytree; ``step`` counts applied updates. It is the whole state of
a run: the learning-rate schedule position is inside ``opt_state`` and the data-stream position is ``step``
itself, because the batch of update ``s`` is drawn with ``fold_in(data_key, s)``. Restoring a state therefore
continues a run exactly (the parent/child protocol needs nothing else). The training loop itself -- one for
static, parent/child and online-method runs -- is :mod:`jaxlaws.train.loop` (its compiled step loop
``jaxlaws.train.methods.base.make_policy_run``); the mixing methods are :mod:`jaxlaws.mixing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlaws.mixing import group_means
from jaxlaws.mixing.signals import per_group_grads as _per_group_grads
from jaxlaws.train.model import ModelConfig, Params, init_params, per_sample_loss

__all__ = [
    "TrainState",
    "TrainData",
    "Sampler",
    "init_state",
    "group_means",
    "per_group_grads",
    "per_group_loss_grads",
    "run_keys",
]

# sample(key, tokens, starts, lengths, p, batch_size, seq_len) -> (inputs [B, T+1] int32, group_ids [B] int32)
Sampler = Callable[..., tuple[jax.Array, jax.Array]]


class TrainState(NamedTuple):
    params: Params
    opt_state: optax.OptState
    step: jax.Array  # int32 scalar: updates applied so far


class TrainData(NamedTuple):
    """The training split as device arrays: concatenated tokens and each group's (start, length)."""

    tokens: jax.Array
    starts: jax.Array
    lengths: jax.Array


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(init_key, data_key)`` of a run with training seed ``seed``.

    Every mixture trained with the same seed shares its initial parameters and its data key (as the original,
    where the seed fixed both the model init and the sampler), so sweep points differ only in the mixture.
    """
    key = jax.random.key(int(seed))
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def init_state(model_cfg: ModelConfig, optimizer: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Fresh parameters from ``key``, a fresh optimiser state and step 0."""
    params = init_params(model_cfg, key)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def per_group_grads(params: Params, model_cfg: ModelConfig, inputs: jax.Array, group_ids: jax.Array, m: int) -> Params:
    """Gradient of each group's mean loss on a batch: a parameter tree with a leading axis of size ``m``.

    ``g_j = grad_theta (1/n_j) sum_{n: g_n = j} l_n(theta)`` (zeros for a group absent from the batch); computed
    as ``m`` weighted backward passes, vmapped.
    """
    return per_group_loss_grads(params, model_cfg, inputs, group_ids, m)[2]


def per_group_loss_grads(
    params: Params, model_cfg: ModelConfig, inputs: jax.Array, group_ids: jax.Array, m: int
) -> tuple[jax.Array, jax.Array, Params]:
    """``(losses (m,), counts (m,), grads)``: each group's mean loss on the batch, its number of sequences and
    the gradients of :func:`per_group_grads` (``jaxlaws.mixing.per_group_grads`` on the decoder's loss)."""
    return _per_group_grads(lambda p, x: per_sample_loss(p, model_cfg, x), params, inputs, group_ids, m)
