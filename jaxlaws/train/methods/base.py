r"""The policy interface of the online mixing methods and the training loop that runs a policy.

A **policy** decides, inside the compiled training loop, what each step trains on and how its gradient is
formed; its state is a pytree stacked over the runs of a vmapped program (one run per seed)::

    state          = policy.init(key, extra)            # extra: per-run inputs (a graph, reference params)
    p, exact       = policy.mixture(state)              # sampling mixture of the next step (traced)
    loss, g, state = policy.gradient(state, ctx)        # the update direction of one step (StepContext)
    state          = policy.observe(state, losses)      # held-out losses at the steps of observe_steps()

``mixture`` returns the group proportions of the next batch and whether the batch is allocated *exactly*
(``counts = allocate_counts(p, B)`` windows per group, shuffled) or drawn i.i.d. from ``p``. ``gradient``
is the hook for methods that change the objective (DoReMi weights the per-group losses) or combine
per-group gradients (DoGE); the default is the gradient of the batch's mean loss. ``observe`` receives the
per-group losses on a fixed held-out probe set at the steps the policy asked for in ``observe_steps`` (a
static schedule, identical for every seed, so the runs of a program stay in lockstep). ``current`` is the
method's own mixture ``p^t`` (what it reports), ``records`` turns a host copy of the state into the
matrices the analysis reads (``aioli_A``, ``doge_M``, ``doremi_excess``, ``skillit_graph``, ``mixture``).

A policy is a frozen (hashable) dataclass: its configuration is static, so a program compiles once per
configuration. :class:`Constant` is the static mixture (stratified when uniform); through this loop it
trains exactly the batches and updates of ``jaxlaws.train.step`` (the static sweeps keep their own, leaner
loop, so adding policies costs the static path nothing).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlaws.train.evaluate import EvalSet, make_evaluate
from jaxlaws.train.methods.rules import allocate_counts
from jaxlaws.train.model import ModelConfig, Params, per_sample_loss
from jaxlaws.train.optim import OptimConfig
from jaxlaws.train.step import TrainData, TrainState

__all__ = ["MethodData", "StepContext", "Policy", "Constant", "sample_mixture", "make_policy_run",
           "make_observe", "mean_loss_grad", "Record"]


class MethodData(NamedTuple):
    """What a policy's program reads besides the state: the train split, the val split as sampling windows
    (DoGE's validation batches) and the fixed held-out probe set of ``observe``."""

    train: TrainData
    val: TrainData
    probe: EvalSet


class StepContext(NamedTuple):
    params: Params
    inputs: jax.Array        # [B, T+1] the batch of this step
    group_ids: jax.Array     # [B]
    step: jax.Array          # updates applied before this one (batched scalar)
    key: jax.Array           # a key for the policy's own randomness at this step
    data: MethodData


# One recorded matrix: (name, step, index, (m, m) array). Vectors (a mixture) are stored as row 0.
Record = tuple[str, int, int, np.ndarray]


def mean_loss_grad(params: Params, model: ModelConfig, inputs: jax.Array) -> tuple[jax.Array, Params]:
    """The default update direction: the gradient of the batch's mean per-sequence loss."""
    return jax.value_and_grad(lambda p: per_sample_loss(p, model, inputs).mean())(params)


@dataclasses.dataclass(frozen=True)
class Policy:
    """Base class: the fields every policy needs (static) and default hooks (a constant mixture)."""

    m: int
    model: ModelConfig
    optim: OptimConfig
    batch_size: int
    seq_len: int

    name = "policy"

    def prepare_extra(self, extra: Any) -> Any:
        """Check one run's ``extra`` on the host (before any tracing) and return it ready for :meth:`init`."""
        if extra is not None:
            raise ValueError(f"{self.name}: takes no per-run input, got {type(extra).__name__}")
        return None

    def init(self, key: jax.Array, extra: Any = None) -> Any:
        raise NotImplementedError

    def mixture(self, state: Any) -> tuple[jax.Array, Any]:
        raise NotImplementedError

    def current(self, state: Any) -> jax.Array:
        return self.mixture(state)[0]

    def gradient(self, state: Any, ctx: StepContext) -> tuple[jax.Array, Params, Any]:
        loss, grads = mean_loss_grad(ctx.params, self.model, ctx.inputs)
        return loss, grads, state

    def observe(self, state: Any, losses: jax.Array) -> Any:
        return state

    def observe_steps(self) -> tuple[int, ...]:
        return ()

    def records(self, state: Any, upto: int) -> list[Record]:
        """Matrices recorded at or before step ``upto`` from a host copy of one run's ``state``."""
        return []

    def outputs(self, state: Any) -> dict:
        """Run results beyond the losses (e.g. DoReMi's averaged weights), JSON-ready, from a host state."""
        return {}

    def config(self) -> dict:
        """The method's hyper-parameters (part of the run's configuration hash)."""
        skip = {f.name for f in dataclasses.fields(Policy)}
        out = {"method": self.name}
        for f in dataclasses.fields(self):
            if f.name not in skip:
                v = getattr(self, f.name)
                out[f.name] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
        return out

    def lr(self, step: jax.Array) -> jax.Array:
        from jaxlaws.train.optim import lr_schedule
        return lr_schedule(self.optim)(step)


@dataclasses.dataclass(frozen=True)
class Constant(Policy):
    """A static mixture ``p`` for every step (``None``: uniform, i.e. stratified sampling)."""

    p: tuple[float, ...] | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return "stratified" if self.p is None else "static"

    def prepare_extra(self, extra: Any) -> Any:
        """An optional per-run mixture (e.g. each seed's learned weights) overriding ``p``."""
        if extra is None:
            return None
        from jaxlaws.train.data import check_simplex
        return check_simplex(extra, self.m, "per-run mixture").astype(np.float32)

    def init(self, key: jax.Array, extra: Any = None) -> jax.Array:
        if extra is not None:
            return jnp.asarray(extra, jnp.float32)
        p = np.full(self.m, 1.0 / self.m) if self.p is None else np.asarray(self.p, np.float64)
        return jnp.asarray(p / p.sum(), jnp.float32)

    def mixture(self, state: jax.Array) -> tuple[jax.Array, Any]:
        return state, False


def sample_mixture(key: jax.Array, data: TrainData, p: jax.Array, exact: Any, batch_size: int,
                   seq_len: int) -> tuple[jax.Array, jax.Array]:
    """A batch of ``batch_size`` windows whose groups are drawn i.i.d. from ``p`` or, where ``exact`` (a
    traced bool, or ``False``), allocated exactly (:func:`allocate_counts`) and shuffled.

    With ``exact=False`` this draws exactly the batch of ``jaxlaws.train.data.sample_batch`` for the same key.
    """
    from jaxlaws.train.data import _windows, allocated_ids, categorical_ids

    k_group, k_window = jax.random.split(key)
    gids = categorical_ids(k_group, p, batch_size)
    if exact is not False:  # the same ids as sample_allocated_batch for the same key
        gids = jnp.where(exact, allocated_ids(k_group, allocate_counts(p, batch_size), batch_size), gids)
    return _windows(k_window, data.tokens, data.starts, data.lengths, gids, seq_len), gids


def make_policy_run(policy: Policy, optimizer: optax.GradientTransformation):
    """``run(state, policy_state, data_key, data: MethodData, n_steps) -> (state, policy_state)``.

    ``n_steps`` updates under ``policy`` in a ``lax.fori_loop`` with a traced trip count (one program for
    every segment length; vmap with ``in_axes=None`` for ``data`` and ``n_steps``). The batch of update
    ``s`` is drawn with ``fold_in(data_key, s)``, as in the static loop, so a run resumed at any step
    continues identically.
    """

    def body(_: Any, carry: tuple[TrainState, Any], data_key: jax.Array, data: MethodData):
        st, ps = carry
        p, exact = policy.mixture(ps)
        key = jax.random.fold_in(data_key, st.step)
        inputs, gids = sample_mixture(key, data.train, p, exact, policy.batch_size, policy.seq_len)
        ctx = StepContext(st.params, inputs, gids, st.step, jax.random.fold_in(key, 0x5EED), data)
        _, grads, ps = policy.gradient(ps, ctx)
        updates, opt_state = optimizer.update(grads, st.opt_state, st.params)
        return TrainState(optax.apply_updates(st.params, updates), opt_state, st.step + 1), ps

    def run(state: TrainState, policy_state: Any, data_key: jax.Array, data: MethodData,
            n_steps: jax.Array) -> tuple[TrainState, Any]:
        return jax.lax.fori_loop(0, n_steps, lambda i, c: body(i, c, data_key, data), (state, policy_state))

    return run


def make_observe(policy: Policy):
    """``observe(params, policy_state, probe) -> (policy_state, losses (m,))``: probe losses, then the policy."""
    evaluate = make_evaluate(policy.model, policy.m)

    def observe(params: Params, policy_state: Any, probe: EvalSet) -> tuple[Any, jax.Array]:
        losses = evaluate(params, probe)
        return policy.observe(policy_state, losses), losses

    return observe
