"""Train state, the pure train step, and the hook for online mixing methods.

**Train state.** ``TrainState(params, opt_state, step)`` is a pytree; ``step`` counts applied updates. It is the
whole state of a run: the learning-rate schedule position is inside ``opt_state`` and the data-stream position is
``step`` itself, because the batch of update ``s`` is ``sample(fold_in(data_key, s), ..., p_s)``. Restoring a
state therefore continues a run exactly (the parent/child protocol needs nothing else).

**Mixture policies (hook for online methods).** A :class:`MixturePolicy` decides the mixture of every step::

    policy_state = policy.init(key, p0)                       # any pytree (stackable over runs)
    p_s          = policy.mixture(policy_state, step)          # (m,) on the simplex, jit-safe
    policy_state = policy.update(policy_state, signals)        # after each update, jit-safe

``signals`` (:class:`Signals`) carry the step just completed, the batch (inputs and group ids), the new
parameters and the per-group mean training losses of that batch; a method that needs per-group gradients calls
:func:`per_group_grads` on them (e.g. DoGE), one that needs held-out losses evaluates the parameters itself
(Aioli's LearnParams). All three methods run inside the jitted/vmapped training loop, so a policy must be pure.
The static case is :class:`ConstantPolicy` (state = the mixture); static and dynamic sweeps use this lean loop.
The online methods (Aioli, DoReMi, DoGE, Skill-It) live in :mod:`jaxlaws.train.methods`, whose policy loop
(``methods.base.make_policy_run``) also lets a policy replace the gradient (weighted per-group losses,
combined per-group gradients) and observe held-out losses; it leaves this loop, and hence the static path,
unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from jaxlaws.train.model import ModelConfig, Params, init_params, per_sample_loss

__all__ = [
    "TrainState", "Signals", "MixturePolicy", "ConstantPolicy", "TrainData", "Sampler",
    "init_state", "group_means", "make_train_step", "make_run_steps", "make_run_until", "per_group_grads",
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


class Signals(NamedTuple):
    step: jax.Array          # updates completed (after this one)
    inputs: jax.Array        # the batch just trained on [B, T+1]
    group_ids: jax.Array     # [B]
    params: Params           # parameters after the update
    loss: jax.Array          # mean training loss of the batch (before the update)
    group_loss: jax.Array    # (m,) mean training loss per group (0 where the group is absent)
    group_count: jax.Array   # (m,) number of sequences per group in the batch


class MixturePolicy(Protocol):
    """How the mixture evolves during a run (see the module docstring)."""

    def init(self, key: jax.Array, p0: jax.Array) -> Any: ...

    def mixture(self, state: Any, step: jax.Array) -> jax.Array: ...

    def update(self, state: Any, signals: Signals) -> Any: ...


class ConstantPolicy:
    """A static mixture: ``p_s = p0`` for every step."""

    def init(self, key: jax.Array, p0: jax.Array) -> jax.Array:
        del key
        return jnp.asarray(p0, jnp.float32)

    def mixture(self, state: jax.Array, step: jax.Array) -> jax.Array:
        del step
        return state

    def update(self, state: jax.Array, signals: Signals) -> jax.Array:
        del signals
        return state


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


def group_means(values: jax.Array, group_ids: jax.Array, m: int,
                weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Per-group means of ``values`` [N] given ``group_ids`` [N]: returns ``(means (m,), counts (m,))``.

    ``mean_g = sum_{n: g_n = g} w_n v_n / sum_{n: g_n = g} w_n`` (0 where a group has no weight).
    """
    w = jnp.ones_like(values) if weights is None else weights.astype(values.dtype)
    one_hot = jax.nn.one_hot(group_ids, m, dtype=values.dtype) * w[:, None]
    counts = one_hot.sum(0)
    sums = one_hot.T @ values
    return jnp.where(counts > 0, sums / jnp.maximum(counts, 1e-30), 0.0), counts


def per_group_grads(params: Params, model_cfg: ModelConfig, inputs: jax.Array, group_ids: jax.Array,
                    m: int) -> Params:
    """Gradient of each group's mean loss on a batch: a parameter tree with a leading axis of size ``m``.

    ``g_j = grad_theta (1/n_j) sum_{n: g_n = j} l_n(theta)`` (zeros for a group absent from the batch); computed
    as ``m`` weighted backward passes, vmapped.
    """
    return per_group_loss_grads(params, model_cfg, inputs, group_ids, m)[2]


def per_group_loss_grads(params: Params, model_cfg: ModelConfig, inputs: jax.Array, group_ids: jax.Array,
                         m: int) -> tuple[jax.Array, jax.Array, Params]:
    """``(losses (m,), counts (m,), grads)``: each group's mean loss on the batch, its number of sequences and
    the gradients of :func:`per_group_grads` (the losses come with them at no extra cost)."""
    one_hot = jax.nn.one_hot(group_ids, m, dtype=jnp.float32)
    counts = one_hot.sum(0)
    weights = one_hot / jnp.maximum(counts, 1.0)  # [B, m]

    def weighted(w: jax.Array) -> tuple[jax.Array, Params]:
        return jax.value_and_grad(lambda p: per_sample_loss(p, model_cfg, inputs) @ w)(params)

    losses, grads = jax.vmap(weighted, in_axes=1)(weights)
    return losses, counts, grads


def make_train_step(model_cfg: ModelConfig, optimizer: optax.GradientTransformation, m: int
                    ) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, Signals]]:
    """The pure update ``(state, inputs, group_ids) -> (state', signals)``: one AdamW step on the batch mean loss."""

    def train_step(state: TrainState, inputs: jax.Array, group_ids: jax.Array) -> tuple[TrainState, Signals]:
        def loss_fn(p: Params) -> tuple[jax.Array, jax.Array]:
            per = per_sample_loss(p, model_cfg, inputs)
            return per.mean(), per

        (loss, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = TrainState(params, opt_state, state.step + 1)
        g_loss, g_count = group_means(jax.lax.stop_gradient(per), group_ids, m)
        return new, Signals(new.step, inputs, group_ids, params, loss, g_loss, g_count)

    return train_step


def _make_body(model_cfg: ModelConfig, optimizer: optax.GradientTransformation, m: int, batch_size: int,
               seq_len: int, sampler: Sampler, policy: MixturePolicy, data_key: jax.Array, data: TrainData
               ) -> Callable[[tuple[TrainState, Any]], tuple[tuple[TrainState, Any], jax.Array]]:
    """One update of a run: sample the batch of step ``state.step`` under the policy's mixture, train, update."""
    train_step = make_train_step(model_cfg, optimizer, m)

    def body(carry: tuple[TrainState, Any]) -> tuple[tuple[TrainState, Any], jax.Array]:
        st, ps = carry
        p = policy.mixture(ps, st.step)
        inputs, gids = sampler(jax.random.fold_in(data_key, st.step), data.tokens, data.starts, data.lengths, p,
                               batch_size, seq_len)
        st, sig = train_step(st, inputs, gids)
        return (st, policy.update(ps, sig)), sig.loss

    return body


def make_run_steps(model_cfg: ModelConfig, optimizer: optax.GradientTransformation, m: int,
                   batch_size: int, seq_len: int, sampler: Sampler, policy: MixturePolicy | None = None
                   ) -> Callable[..., tuple[TrainState, Any, jax.Array]]:
    """``run(state, policy_state, data_key, data, n_steps) -> (state, policy_state, losses [n_steps])``.

    Trains ``n_steps`` updates of one run with ``lax.scan``; the batch of update ``s`` is
    ``sampler(fold_in(data_key, s), data..., policy.mixture(policy_state, s), batch_size, seq_len)``.
    Pure; ``n_steps`` must be static. ``jax.vmap`` over (state, policy_state, data_key) trains many runs.
    """
    policy = ConstantPolicy() if policy is None else policy

    def run(state: TrainState, policy_state: Any, data_key: jax.Array, data: TrainData,
            n_steps: int) -> tuple[TrainState, Any, jax.Array]:
        body = _make_body(model_cfg, optimizer, m, batch_size, seq_len, sampler, policy, data_key, data)
        (state, policy_state), losses = jax.lax.scan(lambda c, _: body(c), (state, policy_state), None,
                                                     length=n_steps)
        return state, policy_state, losses

    return run


def make_run_until(model_cfg: ModelConfig, optimizer: optax.GradientTransformation, m: int,
                   batch_size: int, seq_len: int, sampler: Sampler, policy: MixturePolicy | None = None
                   ) -> Callable[..., tuple[TrainState, Any]]:
    """``run(state, policy_state, data_key, data, n_steps) -> (state, policy_state)`` with a *traced* ``n_steps``.

    The same updates as :func:`make_run_steps` (the same body) in a ``lax.fori_loop`` whose trip count is a
    traced scalar, so one compiled program serves every segment length (a sweep evaluating at irregular steps,
    or children starting at any break step, compiles once). Vmap it with ``in_axes=None`` for ``n_steps``: a
    trip count shared by all runs keeps the loop predicate unbatched (no per-step select over the states).
    """
    policy = ConstantPolicy() if policy is None else policy

    def run(state: TrainState, policy_state: Any, data_key: jax.Array, data: TrainData,
            n_steps: jax.Array) -> tuple[TrainState, Any]:
        body = _make_body(model_cfg, optimizer, m, batch_size, seq_len, sampler, policy, data_key, data)
        return jax.lax.fori_loop(0, n_steps, lambda _, c: body(c)[0], (state, policy_state))

    return run
