r"""jaxlaws' trainer as a client of :mod:`jaxlaws.mixing`: policies and the compiled step loop of every run.

A **policy** binds a :class:`jaxlaws.mixing.Mixer` to jaxlaws' decoder and data; its state is a pytree
stacked over the runs of a vmapped program (one run per seed)::

    state          = policy.init(key, extra)            # extra: per-run inputs (a graph, reference params)
    p, exact       = policy.mixture(state)              # sampling mixture of the next step (traced)
    loss, g, state = policy.gradient(state, ctx)        # the update direction of one step (StepContext)
    state          = policy.observe(state, losses, s)   # held-out losses at the steps of observe_steps()

``mixture``, ``observe`` and ``current`` are the mixer's ``mixture``, ``update(step=s, losses=...)`` and
``weights``; ``gradient`` is the hook for methods that change the objective (DoReMi: ``mixing.doremi_step``)
or combine per-group gradients (DoGE: ``mixing.doge_step``); the default is the gradient of the batch's mean
loss. ``observe`` receives the per-group losses on a fixed held-out probe set at the steps the mixer observes
(``observe_steps``, a static schedule identical for every seed, so the runs of a program stay in lockstep).
``records`` turns a host copy of the state into the matrices the analysis reads (``aioli_A``, ``doge_M``,
``doremi_excess``, ``skillit_graph``, ``mixture``).

A policy is a frozen (hashable) dataclass: its configuration is static, so a program compiles once per
configuration. :class:`Constant` is the static mixture (the constant mixer); the static and dynamic sweeps
train through the same loop (:func:`make_policy_run`, driven by :func:`jaxlaws.train.loop.train`) with it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlaws import mixing
from jaxlaws.train.evaluate import EvalSet, make_evaluate
from jaxlaws.train.model import ModelConfig, Params, per_sample_loss
from jaxlaws.train.optim import OptimConfig
from jaxlaws.train.step import TrainData, TrainState

__all__ = [
    "MethodData",
    "StepContext",
    "Policy",
    "Constant",
    "sample_mixture",
    "make_policy_run",
    "make_observe",
    "mean_loss_grad",
    "Record",
]


class MethodData(NamedTuple):
    """What a policy's program reads besides the state.

    Attributes:
      train: the train split as sampling windows.
      val: the val split as sampling windows (DoGE's validation batches).
      probe: the fixed held-out probe set of ``observe`` (``None`` for a static run).
    """

    train: TrainData
    val: TrainData | None = None
    probe: EvalSet | None = None


class StepContext(NamedTuple):
    """What a policy's step sees.

    Attributes:
      params: the model's parameters.
      inputs: ``(B, T + 1)`` the batch of this step.
      group_ids: ``(B,)`` each sequence's group.
      step: the updates applied before this one (a batched scalar).
      key: a key for the policy's own randomness at this step.
      data: the :class:`MethodData`.
      left: the updates left in this call of the loop, this one included (1: the last update before a
        boundary of :func:`jaxlaws.train.loop.train`); shared by the runs of a program, so a ``lax.cond`` on
        it stays a branch under ``vmap``.
    """

    params: Params
    inputs: jax.Array  # [B, T+1] the batch of this step
    group_ids: jax.Array  # [B]
    step: jax.Array  # updates applied before this one (batched scalar)
    key: jax.Array  # a key for the policy's own randomness at this step
    data: MethodData
    left: jax.Array | int = 1


# One recorded matrix: (name, step, index, (m, m) array). Vectors (a mixture) are stored as row 0.
Record = tuple[str, int, int, np.ndarray]


def mean_loss_grad(params: Params, model: ModelConfig, inputs: jax.Array) -> tuple[jax.Array, Params]:
    """The default update direction: the gradient of the batch's mean per-sequence loss."""
    return jax.value_and_grad(lambda p: per_sample_loss(p, model, inputs).mean())(params)


@dataclasses.dataclass(frozen=True)
class Policy:
    """Base class of the trainer's policies: the fields every policy needs (static) and default hooks; subclasses
    build ``mixer`` (a :class:`jaxlaws.mixing.Mixer`).

    Attributes:
      m: the number of groups.
      model: the decoder's :class:`~jaxlaws.train.model.ModelConfig`.
      optim: the :class:`~jaxlaws.train.optim.OptimConfig`.
      batch_size: sequences per training step.
      seq_len: tokens per sequence.
    """

    m: int
    model: ModelConfig
    optim: OptimConfig
    batch_size: int
    seq_len: int

    name = "policy"

    @functools.cached_property
    def mixer(self) -> mixing.Mixer:
        raise NotImplementedError

    def loss_fn(self, params: Params, inputs: jax.Array) -> jax.Array:
        """The per-sequence loss of jaxlaws' decoder, as :mod:`jaxlaws.mixing.signals` takes it."""
        return per_sample_loss(params, self.model, inputs)

    def prepare_extra(self, extra: Any) -> Any:
        """Check one run's ``extra`` on the host (before any tracing) and return it ready for :meth:`init`."""
        if extra is not None:
            raise ValueError(f"{self.name}: takes no per-run input, got {type(extra).__name__}")
        return None

    def init(self, key: jax.Array, extra: Any = None) -> Any:
        return self.mixer.init(key)

    def mixture(self, state: Any) -> tuple[jax.Array, Any]:
        return self.mixer.mixture(state)

    def current(self, state: Any) -> jax.Array:
        return self.mixer.weights(state)

    def gradient(self, state: Any, ctx: StepContext) -> tuple[jax.Array, Params, Any]:
        loss, grads = mean_loss_grad(ctx.params, self.model, ctx.inputs)
        return loss, grads, state

    def observe(self, state: Any, losses: jax.Array, step: Any) -> Any:
        return self.mixer.update(state, step=step, losses=losses)

    def observe_steps(self) -> tuple[int, ...]:
        """The steps at which the mixer reads held-out losses (host side, from its traced predicate)."""
        flags = np.asarray(self.mixer.observes(jnp.arange(self.optim.total_steps)))
        return tuple(int(s) for s in np.flatnonzero(np.broadcast_to(flags, (self.optim.total_steps,))))

    def records(self, state: Any, upto: int) -> list[Record]:
        """Matrices recorded at or before step ``upto`` from a host copy of one run's ``state``."""
        return []

    def outputs(self, state: Any) -> dict:
        """Run results beyond the losses (e.g. DoReMi's averaged weights), JSON-ready, from a host state."""
        return {}

    def config(self) -> dict:
        """The method's hyper-parameters as its mixer resolved them (part of the run's configuration hash)."""
        return {"method": self.name, **self.mixer.hparams}

    def lr(self, step: jax.Array) -> jax.Array:
        from jaxlaws.train.optim import lr_schedule

        return lr_schedule(self.optim)(step)


@dataclasses.dataclass(frozen=True)
class Constant(Policy):
    """A static mixture ``p`` for every step; batches are drawn i.i.d. from it.

    Attributes:
      p: the mixture (``None``: uniform).
      m, model, optim, batch_size, seq_len: as every :class:`~jaxlaws.train.methods.base.Policy`.
    """

    p: tuple[float, ...] | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return "stratified" if self.p is None else "static"

    @functools.cached_property
    def mixer(self) -> mixing.Mixer:
        return mixing.constant(np.full(self.m, 1.0 / self.m) if self.p is None else self.p)

    def config(self) -> dict:
        return {"method": self.name, "p": self.p}

    def prepare_extra(self, extra: Any) -> Any:
        """An optional per-run mixture (e.g. each seed's learned weights) overriding ``p``."""
        if extra is None:
            return None
        from jaxlaws.train.data import check_simplex

        return check_simplex(extra, self.m, "per-run mixture").astype(np.float32)

    def init(self, key: jax.Array, extra: Any = None) -> jax.Array:
        return self.mixer.init(key) if extra is None else jnp.asarray(extra, jnp.float32)


def sample_mixture(
    key: jax.Array,
    data: TrainData,
    p: jax.Array,
    exact: Any,
    batch_size: int,
    seq_len: int,
    sampler: Callable | None = None,
) -> tuple[jax.Array, jax.Array]:
    """A batch of ``batch_size`` windows whose groups are ``mixing.sample_groups(k_group, p, B, exact)``.

    ``sampler`` (the static sweeps' ``sampler(key, tokens, starts, lengths, p, B, T)``) replaces the draw when
    ``exact`` is the constant ``False``. With ``exact=False`` this draws exactly the batch of
    ``jaxlaws.train.data.sample_batch`` for the same key.
    """
    from jaxlaws.train.data import gather_windows

    if exact is False and sampler is not None:
        return sampler(key, data.tokens, data.starts, data.lengths, p, batch_size, seq_len)
    k_group, k_window = jax.random.split(key)
    gids = mixing.sample_groups(k_group, p, batch_size, exact)
    return gather_windows(k_window, data.tokens, data.starts, data.lengths, gids, seq_len), gids


def make_policy_run(policy: Policy, optimizer: optax.GradientTransformation, sampler: Callable | None = None):
    """``run(state, policy_state, data_key, data: MethodData, n_steps) -> (state, policy_state)``.

    The training loop of every jaxlaws run (static, parent, child, every method): ``n_steps`` updates under
    ``policy`` in a ``lax.fori_loop`` with a traced trip count (one program for every segment length; vmap
    with ``in_axes=None`` for ``data`` and ``n_steps``). The batch of update ``s`` is drawn with
    ``fold_in(data_key, s)``, so a run resumed at any step continues identically. Each step's
    ``StepContext.left`` counts the updates left in the call (``n_steps - i``), so a policy can do work only on
    the last steps before a boundary (DoGE's matrix ``M``).
    """

    def body(i: jax.Array, carry: tuple[TrainState, Any], data_key: jax.Array, data: MethodData, n: jax.Array):
        st, ps = carry
        p, exact = policy.mixture(ps)
        key = jax.random.fold_in(data_key, st.step)
        inputs, gids = sample_mixture(key, data.train, p, exact, policy.batch_size, policy.seq_len, sampler)
        ctx = StepContext(st.params, inputs, gids, st.step, jax.random.fold_in(key, 0x5EED), data, n - i)
        _, grads, ps = policy.gradient(ps, ctx)
        updates, opt_state = optimizer.update(grads, st.opt_state, st.params)
        return TrainState(optax.apply_updates(st.params, updates), opt_state, st.step + 1), ps

    def run(
        state: TrainState, policy_state: Any, data_key: jax.Array, data: MethodData, n_steps: jax.Array
    ) -> tuple[TrainState, Any]:
        return jax.lax.fori_loop(0, n_steps, lambda i, c: body(i, c, data_key, data, n_steps), (state, policy_state))

    return run


def make_observe(policy: Policy):
    """``observe(params, policy_state, probe, step) -> (policy_state, losses (m,))``: probe losses at
    ``step`` (shared by the runs), then the policy's observation."""
    evaluate = make_evaluate(policy.model, policy.m)

    def observe(params: Params, policy_state: Any, probe: EvalSet, step: Any) -> tuple[Any, jax.Array]:
        losses = evaluate(params, probe)
        return policy.observe(policy_state, losses, step), losses

    return observe
