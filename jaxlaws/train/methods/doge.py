r"""DoGE in jaxlaws' trainer: :func:`jaxlaws.mixing.doge` through :func:`jaxlaws.mixing.doge_step`.

Each step: a stratified train batch (allocated exactly, allocation ties at random) and a validation batch of
``val_batch`` windows drawn at random from the validation split, each window's group with probability
proportional to that group's share of the split's tokens (the original samples the pooled validation set
with replacement). The train and validation gradients are clipped to norm 1 as in the original.
Recorded: ``doge_M`` with :math:`M_{ij} = \langle g_i, v_j\rangle` (rows = train domain, columns = validation
domain, the original's orientation; the LMO reading is :math:`A = M^\top`) for the last ``record`` steps
before the break. ``M`` needs ``m`` more backward passes (the per-domain validation gradients), so it is
computed only on the last ``record`` updates of each segment of the loop (``StepContext.left <= record``, a
``lax.cond``): every boundary (the break, checkpoints, the end) is a segment's end, so the ring holds exactly
the last ``record`` steps before any boundary, as an every-step computation would; the weights never depend
on it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws import mixing
from jaxlaws.mixing.doge import DOGE_DEFAULTS, DoGEState
from jaxlaws.train.methods.base import Policy, Record, StepContext, sample_mixture
from jaxlaws.train.methods.doremi import weight_outputs

__all__ = ["DoGE", "DoGEState"]


@dataclasses.dataclass(frozen=True)
class DoGE(Policy):
    """:func:`jaxlaws.mixing.doge` as a policy of the trainer.

    Attributes:
      mu, val_batch, clip, record: as :func:`jaxlaws.mixing.doge` (``None``: the original's values for m = 2, 3, 7).
      m, model, optim, batch_size, seq_len: as every :class:`~jaxlaws.train.methods.base.Policy`.
    """

    mu: float | None = None
    val_batch: int | None = None
    clip: float = 1.0
    record: int = 4

    name = "doge"

    def __post_init__(self) -> None:
        self.mixer  # noqa: B018

    @functools.cached_property
    def mixer(self) -> mixing.Mixer:
        return mixing.doge(self.m, mu=self.mu, val_batch=self.val_batch, clip=self.clip, record=self.record)

    @classmethod
    def defaults(cls, m: int) -> dict:
        return dict(DOGE_DEFAULTS.get(m, {}))

    def validation_batch(self, ctx: StepContext) -> tuple[jax.Array, jax.Array]:
        """``val_batch`` windows of the validation split, each group drawn with probability proportional to
        its tokens there (the original's random draw from its pooled validation set)."""
        val = ctx.data.val
        p_val = val.lengths.astype(jnp.float32) / val.lengths.sum()
        return sample_mixture(ctx.key, val, p_val, False, self.mixer.hparams["val_batch"], self.seq_len)

    def gradient(self, state: DoGEState, ctx: StepContext):
        vin, vid = self.validation_batch(ctx)
        record = jnp.asarray(ctx.left) <= self.record  # the last `record` updates before a boundary
        return mixing.doge_step(
            self.mixer, state, self.loss_fn, ctx.params, ctx.inputs, ctx.group_ids, vin, vid, self.lr(ctx.step), record
        )

    def records(self, state: DoGEState, upto: int) -> list[Record]:
        steps = np.asarray(state.m_steps)
        return [
            ("doge_M", int(s), 0, np.asarray(state.m_hist[k], np.float64))
            for k, s in enumerate(steps)
            if 0 <= s <= upto
        ]

    def outputs(self, state: DoGEState) -> dict:
        return weight_outputs(state)
