r"""DoReMi in jaxlaws' trainer: :func:`jaxlaws.mixing.doremi` through :func:`jaxlaws.mixing.doremi_step`.

A *reference* model (a stratified run trained by jaxlaws, passed as ``extra`` = its parameters) is fixed;
the state is ``(mixer state, reference params)``. Each step has its own stratified batch and one optimiser
update. Recorded: ``doremi_excess`` = :math:`\mathrm{diag}(e)` (unclipped) of the last ``record`` steps before
the break; outputs: the averaged weights (the final static mixture).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxlaws import mixing
from jaxlaws.mixing.doremi import DOREMI_DEFAULTS
from jaxlaws.train.methods.base import Policy, Record, StepContext

__all__ = ["weight_outputs", "DoReMi", "DoReMiRun"]


class DoReMiRun(NamedTuple):
    mix: mixing.DoReMiState
    ref: Any  # the reference model's parameters


def weight_outputs(state: Any) -> dict:
    """The run outputs of a DoReMi or DoGE state: ``avg_weights`` (the final static mixture) and ``final_weights``."""
    n = max(int(state.n), 1)
    final = state.w if hasattr(state, "w") else jax.nn.softmax(state.log_w)
    return {
        "avg_weights": (np.asarray(state.w_sum, np.float64) / n).tolist(),
        "final_weights": np.asarray(final, np.float64).tolist(),
        "updates": int(state.n),
    }


@dataclasses.dataclass(frozen=True)
class DoReMi(Policy):
    """:func:`jaxlaws.mixing.doremi` as a policy of the trainer (the reference model's parameters are each run's
    ``extras``).

    Attributes:
      mu, smoothing, record: as :func:`jaxlaws.mixing.doremi` (``None``: the original's values for m = 2, 3, 7).
      m, model, optim, batch_size, seq_len: as every :class:`~jaxlaws.train.methods.base.Policy`.
    """

    mu: float | None = None
    smoothing: float | None = None
    record: int = 5

    name = "doremi"

    def __post_init__(self) -> None:
        self.mixer  # noqa: B018

    @functools.cached_property
    def mixer(self) -> mixing.Mixer:
        return mixing.doremi(self.m, mu=self.mu, smoothing=self.smoothing, record=self.record)

    @classmethod
    def defaults(cls, m: int) -> dict:
        return dict(DOREMI_DEFAULTS.get(m, {}))

    def prepare_extra(self, extra: Any) -> Any:
        if extra is None:
            raise ValueError("doremi: the policy needs the reference model's parameters (extra=params)")
        from jaxlaws.train.model import init_params

        want = jax.eval_shape(lambda: init_params(self.model, jax.random.key(0)))
        leaves = zip(jax.tree_util.tree_leaves(extra), jax.tree_util.tree_leaves(want))
        if jax.tree_util.tree_structure(want) != jax.tree_util.tree_structure(extra) or any(
            np.shape(a) != b.shape for a, b in leaves
        ):
            raise ValueError("doremi: the reference parameters do not match the model configuration")
        return extra

    def init(self, key: jax.Array, extra: Any = None) -> DoReMiRun:
        return DoReMiRun(self.mixer.init(key), extra)

    def mixture(self, state: DoReMiRun) -> tuple[jax.Array, Any]:
        return self.mixer.mixture(state.mix)

    def current(self, state: DoReMiRun) -> jax.Array:
        return self.mixer.weights(state.mix)

    def gradient(self, state: DoReMiRun, ctx: StepContext):
        loss, grads, mix = mixing.doremi_step(
            self.mixer, state.mix, self.loss_fn, ctx.params, state.ref, ctx.inputs, ctx.group_ids
        )
        return loss, grads, state._replace(mix=mix)

    def records(self, state: DoReMiRun, upto: int) -> list[Record]:
        steps = np.asarray(state.mix.e_steps)
        return [
            ("doremi_excess", int(s), 0, np.diag(np.asarray(state.mix.e_hist[k], np.float64)))
            for k, s in enumerate(steps)
            if 0 <= s <= upto
        ]

    def outputs(self, state: DoReMiRun) -> dict:
        return weight_outputs(state.mix)
