r"""DoReMi (spec 5.4): a proxy trained on the excess-loss-weighted objective; its averaged weights are the mixture.

A *reference* model (a stratified run trained by jaxlaws, passed as ``extra`` = its parameters) is fixed.
Each step the proxy sees a stratified batch (allocated exactly, so every domain is present when the batch
holds at least ``m`` sequences) and

1. measures per-domain mean losses of the proxy and the reference on that domain's sequences, the excess
   :math:`e_i = L_i(\theta) - L_i(\mathrm{ref})` (a domain absent from the batch keeps its last score);
2. :math:`w' \propto w\odot\exp(\mu\max(e, 0))`, :math:`w \leftarrow (1-c)w' + c/m`
   (:func:`~jaxlaws.train.methods.rules.doremi_update`, ``mu`` the step size, ``c = smoothing``);
3. accumulates :math:`\sum_t w_t` and steps the model on :math:`\sum_i w_i L_i(\theta)` (one backward pass).

The final static mixture is the average weight :math:`\frac1T\sum_t w_t` (``outputs()["avg_weights"]``).
No gradient-accumulation bug (spec 13.10): every step has its own batch and one optimiser update.

LMO reading: :math:`A^t = \mathrm{diag}(L^t(\theta) - L(\mathrm{ref}))`. Recorded: ``doremi_excess`` =
:math:`\mathrm{diag}(e)` (unclipped) of the last ``record`` steps before the break (a ring buffer in the
state, so nothing branches inside the loop).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train.methods.base import Policy, Record, StepContext
from jaxlaws.train.methods.rules import doremi_update
from jaxlaws.train.model import per_sample_loss
from jaxlaws.train.step import group_means

__all__ = ["DoReMi", "DoReMiState"]


class DoReMiState(NamedTuple):
    w: jax.Array          # (m,) current domain weights
    w_sum: jax.Array      # (m,) sum of the weights over steps
    n: jax.Array          # steps so far
    prev_e: jax.Array     # (m,) last excess loss per domain
    ref: Any              # the reference model's parameters
    e_hist: jax.Array     # (record, m) ring of the last excess vectors (oldest first)
    e_steps: jax.Array    # (record,) the step each was measured at (-1: empty)


@dataclasses.dataclass(frozen=True)
class DoReMi(Policy):
    mu: float = 0.01
    smoothing: float = 1e-3
    record: int = 5

    name = "doremi"

    def __post_init__(self) -> None:
        if not self.mu > 0:
            raise ValueError(f"doremi: mu (the step size) must be > 0, got {self.mu}")
        if not 0 <= self.smoothing <= 1:
            raise ValueError(f"doremi: smoothing must be in [0, 1], got {self.smoothing}")
        if self.record < 1:
            raise ValueError(f"doremi: record must be >= 1, got {self.record}")

    @classmethod
    def defaults(cls, m: int) -> dict:
        return dict(mu=0.01, smoothing=1e-3)

    def prepare_extra(self, extra: Any) -> Any:
        if extra is None:
            raise ValueError("doremi: the policy needs the reference model's parameters (extra=params)")
        from jaxlaws.train.model import init_params
        want = jax.eval_shape(lambda: init_params(self.model, jax.random.key(0)))
        if jax.tree_util.tree_structure(want) != jax.tree_util.tree_structure(extra) or any(
                np.shape(a) != b.shape for a, b in zip(jax.tree_util.tree_leaves(extra), jax.tree_util.tree_leaves(want))):
            raise ValueError("doremi: the reference parameters do not match the model configuration")
        return extra

    def init(self, key: jax.Array, extra: Any = None) -> DoReMiState:
        m = self.m
        u = jnp.full((m,), 1.0 / m, jnp.float32)
        return DoReMiState(u, jnp.zeros(m, jnp.float32), jnp.zeros((), jnp.int32), jnp.zeros(m, jnp.float32),
                           extra, jnp.zeros((self.record, m), jnp.float32),
                           jnp.full((self.record,), -1, jnp.int32))

    def mixture(self, state: DoReMiState) -> tuple[jax.Array, Any]:
        return jnp.full((self.m,), 1.0 / self.m, jnp.float32), True   # stratified, exactly allocated

    def current(self, state: DoReMiState) -> jax.Array:
        return state.w

    def gradient(self, state: DoReMiState, ctx: StepContext):
        m = self.m
        ref_loss = jax.lax.stop_gradient(per_sample_loss(state.ref, self.model, ctx.inputs))
        l_ref, _ = group_means(ref_loss, ctx.group_ids, m)

        def objective(params):
            per = per_sample_loss(params, self.model, ctx.inputs)
            l_proxy, counts = group_means(jax.lax.stop_gradient(per), ctx.group_ids, m)
            w, e = doremi_update(state.w, l_proxy - l_ref, state.prev_e, counts > 0, self.mu, self.smoothing)
            coef = w[ctx.group_ids] / jnp.maximum(counts[ctx.group_ids], 1.0)  # sum_i w_i mean_{n in i} l_n
            return per @ coef, (w, e, per.mean())

        (_, (w, e, mean_loss)), grads = jax.value_and_grad(objective, has_aux=True)(ctx.params)
        new = state._replace(w=w, w_sum=state.w_sum + w, n=state.n + 1, prev_e=e,
                             e_hist=jnp.concatenate([state.e_hist[1:], e[None]]),
                             e_steps=jnp.concatenate([state.e_steps[1:], ctx.step[None].astype(jnp.int32) + 1]))
        return mean_loss, grads, new

    def records(self, state: DoReMiState, upto: int) -> list[Record]:
        steps = np.asarray(state.e_steps)
        return [("doremi_excess", int(s), 0, np.diag(np.asarray(state.e_hist[k], np.float64)))
                for k, s in enumerate(steps) if 0 <= s <= upto]

    def outputs(self, state: DoReMiState) -> dict:
        n = max(int(state.n), 1)
        return {"avg_weights": (np.asarray(state.w_sum, np.float64) / n).tolist(),
                "final_weights": np.asarray(state.w, np.float64).tolist(), "updates": int(state.n)}
