r"""DoGE (spec 5.5): domain weights from the alignment of per-domain train gradients with a validation gradient.

Each step: a stratified train batch (allocated exactly) and a validation batch of ``val_batch`` sequences
(exactly allocated over the domains, drawn from the validation split). With :math:`g_i` the gradient of
domain ``i``'s mean train loss, clipped to norm ``clip``, :math:`v_j` the gradient of domain ``j``'s mean
validation loss and :math:`g_{val} = \sum_j (n_j/N) v_j` the gradient of the validation batch's mean loss:

* scores :math:`s_i = \mathrm{lr}_t\langle g_i, g_{val}\rangle / (\mathrm{mean}_i\|g_i\| + 10^{-6})`, clipped to
  :math:`[0, 5\,\mathrm{lr}_t]` (:func:`~jaxlaws.train.methods.rules.doge_scores`);
* :math:`\log w \mathrel{+}= s/\mu`, :math:`w = \mathrm{softmax}(\log w)`;
* the model steps (through the usual clipped AdamW) along :math:`\sum_i w_i g_i`; :math:`\sum_t w_t`
  accumulates and its average is the final static mixture.

Recorded: ``doge_M`` with :math:`M_{ij} = \langle g_i, v_j\rangle` (rows = train domain, columns = validation
domain, the original's orientation; the LMO reading is :math:`A = M^\top`, spec 13.11) for the last
``record`` steps before the break. The original switched to ``s = M.mean(0)`` in those steps (a transposed
and rescaled score); here the scores never change with the recording, which is just a ring buffer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train.methods.base import Policy, Record, StepContext, sample_mixture
from jaxlaws.train.methods.rules import doge_scores
from jaxlaws.train.step import per_group_loss_grads

__all__ = ["DoGE", "DoGEState"]


class DoGEState(NamedTuple):
    log_w: jax.Array
    w_sum: jax.Array
    n: jax.Array
    m_hist: jax.Array    # (record, m, m)
    m_steps: jax.Array   # (record,)


def _tree_dot(a: Any, b: Any) -> jax.Array:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@dataclasses.dataclass(frozen=True)
class DoGE(Policy):
    mu: float = 0.01
    val_batch: int = 2
    clip: float = 1.0
    record: int = 4

    name = "doge"

    def __post_init__(self) -> None:
        if not self.mu > 0:
            raise ValueError(f"doge: mu must be > 0, got {self.mu}")
        if self.val_batch < 1 or self.record < 1:
            raise ValueError(f"doge: val_batch and record must be >= 1, got {self.val_batch}, {self.record}")
        if not self.clip > 0:
            raise ValueError(f"doge: clip must be > 0, got {self.clip}")

    @classmethod
    def defaults(cls, m: int) -> dict:
        return dict(mu=0.1 if m >= 7 else 0.01, val_batch=2 if m == 2 else 4)

    def init(self, key: jax.Array, extra: Any = None) -> DoGEState:
        m = self.m
        return DoGEState(jnp.zeros(m, jnp.float32), jnp.zeros(m, jnp.float32), jnp.zeros((), jnp.int32),
                         jnp.zeros((self.record, m, m), jnp.float32), jnp.full((self.record,), -1, jnp.int32))

    def mixture(self, state: DoGEState) -> tuple[jax.Array, Any]:
        return jnp.full((self.m,), 1.0 / self.m, jnp.float32), True

    def current(self, state: DoGEState) -> jax.Array:
        return jax.nn.softmax(state.log_w)

    def gradient(self, state: DoGEState, ctx: StepContext):
        m = self.m
        tl, tc, g = per_group_loss_grads(ctx.params, self.model, ctx.inputs, ctx.group_ids, m)
        norms = jnp.sqrt(jax.vmap(lambda t: _tree_dot(t, t))(g))
        scale = jnp.minimum(1.0, self.clip / jnp.maximum(norms, 1e-12))
        g = jax.tree_util.tree_map(lambda x: x * scale.reshape((m,) + (1,) * (x.ndim - 1)), g)
        norms = norms * scale
        vin, vid = sample_mixture(ctx.key, ctx.data.val, jnp.full((m,), 1.0 / m), True, self.val_batch,
                                  self.seq_len)
        _, vc, v = per_group_loss_grads(ctx.params, self.model, vin, vid, m)
        frac = vc / vc.sum()
        g_val = jax.tree_util.tree_map(lambda x: jnp.tensordot(frac, x, 1), v)
        dots = jax.vmap(lambda gi: _tree_dot(gi, g_val))(g)
        s = doge_scores(dots, norms, self.lr(ctx.step))
        log_w = state.log_w + s / self.mu
        w = jax.nn.softmax(log_w)
        grads = jax.tree_util.tree_map(lambda x: jnp.tensordot(w, x, 1), g)
        M = jax.vmap(lambda gi: jax.vmap(lambda vj: _tree_dot(gi, vj))(v))(g)
        new = DoGEState(log_w - log_w.max(), state.w_sum + w, state.n + 1,
                        jnp.concatenate([state.m_hist[1:], M[None]]),
                        jnp.concatenate([state.m_steps[1:], ctx.step[None].astype(jnp.int32) + 1]))
        loss = (tl * tc).sum() / jnp.maximum(tc.sum(), 1.0)
        return loss, grads, new

    def records(self, state: DoGEState, upto: int) -> list[Record]:
        steps = np.asarray(state.m_steps)
        return [("doge_M", int(s), 0, np.asarray(state.m_hist[k], np.float64))
                for k, s in enumerate(steps) if 0 <= s <= upto]

    def outputs(self, state: DoGEState) -> dict:
        n = max(int(state.n), 1)
        return {"avg_weights": (np.asarray(state.w_sum, np.float64) / n).tolist(),
                "final_weights": np.asarray(jax.nn.softmax(state.log_w), np.float64).tolist(),
                "updates": int(state.n)}
