"""Per-group held-out loss: every chunk of a split, mean over each group's sequences (as the original's evaluation).

``L_g = (1/N_g) sum_{n: g_n = g} l_n`` where ``l_n`` is the mean next-token CE of chunk ``n``
(:func:`jaxlaws.train.model.per_sample_loss`). The chunks are processed in fixed-size batches (the last one
padded with zero weight) inside one jitted ``lax.map``, so evaluation compiles once per split and vmaps over the
stacked parameters of many runs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train.model import ModelConfig, Params, per_sample_loss

__all__ = ["EvalSet", "make_eval_set", "make_evaluate"]


class EvalSet:
    """Chunks of one split, padded to a multiple of ``batch_size``: ``inputs`` [nb, B, T+1], ``group_ids`` and
    ``weights`` [nb, B] (weight 0 marks padding)."""

    def __init__(self, inputs: np.ndarray, group_ids: np.ndarray, batch_size: int):
        inputs, group_ids = np.asarray(inputs), np.asarray(group_ids)
        n = inputs.shape[0]
        if n == 0:
            raise ValueError("evaluation split has no chunks")
        nb = -(-n // batch_size)
        pad = nb * batch_size - n
        w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
        inputs = np.concatenate([inputs, np.repeat(inputs[:1], pad, 0)]).astype(np.int32)
        group_ids = np.concatenate([group_ids, np.repeat(group_ids[:1], pad, 0)]).astype(np.int32)
        self.n = n
        self.inputs = jnp.asarray(inputs.reshape(nb, batch_size, -1))
        self.group_ids = jnp.asarray(group_ids.reshape(nb, batch_size))
        self.weights = jnp.asarray(w.reshape(nb, batch_size))


def make_eval_set(
    inputs: np.ndarray,
    group_ids: np.ndarray,
    m: int,
    batch_size: int = 32,
    names: tuple[str, ...] | None = None,
    split: str = "val",
) -> EvalSet:
    """Wrap ``data.eval_chunks`` output; every group must have at least one chunk."""
    counts = np.bincount(np.asarray(group_ids), minlength=m)
    if (counts == 0).any():
        empty = [names[i] if names else i for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"{split} split: group(s) {empty} have no evaluation chunk (too small for seq_len)")
    return EvalSet(inputs, group_ids, batch_size)


def make_evaluate(model_cfg: ModelConfig, m: int) -> Callable[[Params, EvalSet], jax.Array]:
    """``evaluate(params, eval_set) -> (m,)`` per-group mean loss (pure, jit/vmap-safe over ``params``)."""

    def evaluate(params: Params, es: EvalSet) -> jax.Array:
        def one(batch):
            x, g, w = batch
            l = per_sample_loss(params, model_cfg, x)  # noqa: E741
            oh = jax.nn.one_hot(g, m, dtype=jnp.float32) * w[:, None]
            return oh.T @ l, oh.sum(0)

        sums, counts = jax.lax.map(one, (es.inputs, es.group_ids, es.weights))
        return sums.sum(0) / counts.sum(0)

    return evaluate


def _flatten(es: EvalSet):
    return (es.inputs, es.group_ids, es.weights), es.n


def _unflatten(n, children):
    es = EvalSet.__new__(EvalSet)
    es.inputs, es.group_ids, es.weights = children
    es.n = n
    return es


jax.tree_util.register_pytree_node(EvalSet, _flatten, _unflatten)
