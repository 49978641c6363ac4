r"""DoReMi (Xie et al. 2023; ``trainer/doremi_trainer.py`` of HazyResearch/aioli): domain weights from the
excess loss of a proxy model over a fixed reference model; their average is the final static mixture.

Each step the proxy sees a stratified batch (``mixture`` is uniform and exact) and

1. the per-domain mean losses of the proxy and of the reference on that domain's samples give the excess
   :math:`e_i = L_i(\theta) - L_i(\mathrm{ref})` (a domain absent from the batch keeps its last score);
2. :math:`w' \propto w\odot\exp(\mu\max(e, 0))`, :math:`w \leftarrow (1-c)w' + c/m`
   (:func:`~jaxlaws.mixing.rules.doremi_update`, ``mu`` the step size, ``c = smoothing``);
3. the model steps on :math:`\sum_i w_i L_i(\theta)` with the *new* ``w`` (:func:`weighted_loss`), and
   :math:`\sum_t w_t` accumulates; the final static mixture is :func:`average_weights`.

Signals: ``update(state, train_losses=L (m,), ref_losses=L_ref (m,), counts=n (m,))`` once per step;
:func:`jaxlaws.mixing.signals.doremi_step` computes them from a ``loss_fn`` and takes the step's gradient.
Recorded in the state: the last ``record`` excess vectors (a ring buffer; LMO reading
:math:`A^t = \mathrm{diag}(e^t)`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxlaws.mixing.base import Mixer, never, resolve_hparams
from jaxlaws.mixing.rules import doremi_update

if TYPE_CHECKING:
    from jaxlaws.mixing.doge import DoGEState

__all__ = ["doremi", "DoReMiState", "DOREMI_DEFAULTS", "weighted_loss", "average_weights"]

# The original's settings (scripts/*/doremi/run_proxy.sh): the same for every m.
DOREMI_DEFAULTS = {m: dict(mu=0.01, smoothing=1e-3) for m in (2, 3, 7)}


class DoReMiState(NamedTuple):
    """The state of a :func:`doremi` mixer (a pytree).

    Attributes:
      w: ``(m,)`` the current domain weights.
      w_sum: ``(m,)`` the sum of the weights over the updates.
      n: the updates so far.
      prev_e: ``(m,)`` the last excess loss per domain.
      e_hist: ``(record, m)`` a ring of the last excess vectors (oldest first).
      e_steps: ``(record,)`` the update count after each (-1: empty).
    """

    w: jax.Array  # (m,) current domain weights
    w_sum: jax.Array  # (m,) sum of the weights over steps
    n: jax.Array  # updates so far
    prev_e: jax.Array  # (m,) last excess loss per domain
    e_hist: jax.Array  # (record, m) ring of the last excess vectors (oldest first)
    e_steps: jax.Array  # (record,) the update count after each (-1: empty)


def doremi(m: int, *, mu: float | None = None, smoothing: float | None = None, record: int = 5) -> Mixer:
    """DoReMi's proxy for ``m`` domains (module docstring).

    Args:
      m: the number of domains.
      mu: the exponentiated-gradient step size (default the original's for m in (2, 3, 7)).
      smoothing: ``c``, the weight of the uniform mixture in each update (default the original's for m in
        (2, 3, 7)).
      record: how many of the last excess-loss vectors the state keeps.

    Returns:
      A :class:`~jaxlaws.mixing.Mixer` over :class:`DoReMiState`; ``update(state, train_losses=, ref_losses=,
      counts=)`` takes the proxy's and the reference's ``(m,)`` per-domain losses on a batch and the domains'
      ``(m,)`` counts there (:func:`~jaxlaws.mixing.doremi_step` computes them).
    """
    hp = resolve_hparams("doremi", m, dict(mu=mu, smoothing=smoothing), DOREMI_DEFAULTS)
    mu, smoothing, record = float(hp["mu"]), float(hp["smoothing"]), int(record)
    if not mu > 0:
        raise ValueError(f"doremi: mu (the step size) must be > 0, got {mu}")
    if not 0 <= smoothing <= 1:
        raise ValueError(f"doremi: smoothing must be in [0, 1], got {smoothing}")
    if record < 1:
        raise ValueError(f"doremi: record must be >= 1, got {record}")
    uniform = jnp.full((m,), 1.0 / m, jnp.float32)

    def init(key: jax.Array | None = None) -> DoReMiState:
        return DoReMiState(
            uniform,
            jnp.zeros(m, jnp.float32),
            jnp.zeros((), jnp.int32),
            jnp.zeros(m, jnp.float32),
            jnp.zeros((record, m), jnp.float32),
            jnp.full((record,), -1, jnp.int32),
        )

    @jax.jit
    def update(
        state: DoReMiState, *, train_losses: jax.Array, ref_losses: jax.Array, counts: jax.Array, **_: Any
    ) -> DoReMiState:
        for name, v in (("train_losses", train_losses), ("ref_losses", ref_losses), ("counts", counts)):
            if jnp.shape(v) != (m,):
                raise ValueError(f"doremi: {name} must have shape ({m},), got {jnp.shape(v)}")
        excess = jnp.asarray(train_losses, jnp.float32) - jnp.asarray(ref_losses, jnp.float32)
        w, e = doremi_update(state.w, excess, state.prev_e, jnp.asarray(counts) > 0, mu, smoothing)
        n = state.n + 1
        return DoReMiState(
            w,
            state.w_sum + w,
            n,
            e,
            jnp.concatenate([state.e_hist[1:], e[None]]),
            jnp.concatenate([state.e_steps[1:], n[None]]),
        )

    return Mixer(
        init,
        lambda s: (uniform, True),
        update,
        never,
        lambda s: s.w,
        "doremi",
        dict(mu=mu, smoothing=smoothing, record=record),
    )


def weighted_loss(per_example: jax.Array, group_ids: jax.Array, w: jax.Array) -> jax.Array:
    r""":math:`\sum_i w_i\,\mathrm{mean}_{n \in i}\,\ell_n` (0 for a domain absent from the batch).

    Args:
      per_example: ``(N,)`` per-example losses.
      group_ids: ``(N,)`` their domains.
      w: ``(m,)`` domain weights.

    Returns:
      A scalar.
    """
    m = w.shape[0]
    counts = jax.nn.one_hot(group_ids, m, dtype=per_example.dtype).sum(0)
    coef = w[group_ids] / jnp.maximum(counts[group_ids], 1.0)
    return per_example @ coef


def average_weights(state: DoReMiState | DoGEState) -> jax.Array:
    """The average of the weights over the updates so far (the final static mixture of DoReMi and DoGE).

    Args:
      state: a :class:`DoReMiState` or :class:`~jaxlaws.mixing.DoGEState`.

    Returns:
      ``(m,)`` the average weights.
    """
    return state.w_sum / jnp.maximum(state.n, 1)
