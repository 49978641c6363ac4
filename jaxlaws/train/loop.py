"""The one training loop of jaxlaws' trainer: static, parent, child and online-method runs alike.

A :class:`Loop` says *how* runs are trained -- the trajectory (:class:`~jaxlaws.train.sweep.TrainConfig`), the
number of groups, the policy (``None``: the constant mixer, each run's state its mixture), the batch sampler and
the vmap width. It is the one small, hashable configuration through which the sweeps
(:func:`jaxlaws.train.sweep.run_sweep`) and the methods (:func:`jaxlaws.train.methods.run.train_policy`,
``method_sweep``, ``compare``) reach the trainer; its compiled programs are cached per ``Loop``.

:class:`Runs` holds the runs trained together (one per seed, stacked over ``calls`` of ``size`` vmapped runs,
the last call padded with copies of the last run) and :func:`train` walks them from ``start`` to ``stop``::

    for b in sorted(evals | observe | checkpoints | marks | {stop}):   # the boundaries after start
        n = b - step; runs advance n updates       # one compiled lax.fori_loop per call (methods.base)
        if b in observe: policy.observe(probe losses at b)
        at(b, runs)                                # the caller's bookkeeping: loss rows, checkpoints

The batch of update ``s`` is drawn with ``fold_in(data_key, s)`` and every state is a pytree, so a run resumed
from a checkpoint at any boundary continues bit for bit; the segment length is a traced argument, so irregular
boundaries do not recompile.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train.evaluate import EvalSet, make_evaluate
from jaxlaws.train.optim import make_optimizer
from jaxlaws.train.step import Sampler, TrainState, init_state, run_keys

if TYPE_CHECKING:
    from jaxlaws.train.methods.base import Policy
    from jaxlaws.train.sweep import SweepData, TrainConfig

__all__ = ["Loop", "Programs", "Runs", "Schedule", "train", "loss_rows", "stack"]

POLICY_KEY = 0xA101  # a method's own randomness: fold_in(init key of its seed, POLICY_KEY)


@dataclasses.dataclass(frozen=True)
class Loop:
    """How runs are trained (hashable; its programs compile once and are cached).

    Attributes:
      cfg: the trajectory (model, optimiser, batch, sequence length) and evaluation settings.
      m: the number of groups.
      policy: a :class:`~jaxlaws.train.methods.base.Policy`; ``None`` is the constant mixer of the sweeps,
        whose per-run state is the run's mixture and whose batches come from ``sampler``.
      sampler: the sweeps' batch sampler (``None``: ``data.sample_batch``; used by the constant mixer only).
      vmap_width: at most this many runs per device are vectorised together (``None``: all); the others are
        trained by successive calls of the same program.
    """

    cfg: TrainConfig
    m: int
    policy: Policy | None = None
    sampler: Sampler | None = None
    vmap_width: int | None = None

    @property
    def programs(self) -> Programs:
        return _programs(self)


class Programs:
    """The jitted, vmapped programs of one :class:`Loop`.

    ``train(states, policy_states, data_keys, data, n_steps)`` runs ``methods.base.make_policy_run`` (states
    donated, ``data`` a ``methods.base.MethodData``); ``observe`` evaluates the probe set and lets the policy
    read it; ``evaluate(params, eval_set)`` gives ``(K, m)`` per-group losses; ``init`` fresh states from init
    keys; ``policy_init(keys, extra)`` and ``current(policy_states)`` the policy's state and mixture.
    """

    def __init__(self, loop: Loop):
        from jaxlaws.train import data as D
        from jaxlaws.train.methods.base import Constant, make_observe, make_policy_run

        cfg, m = loop.cfg, loop.m
        self.cfg, self.optimizer = cfg, make_optimizer(cfg.optim)
        self.init = jax.jit(jax.vmap(functools.partial(init_state, cfg.model, self.optimizer)))
        devices = jax.local_devices()
        self.n_dev = len(devices)
        self.mesh = jax.sharding.Mesh(np.array(devices), ("runs",)) if self.n_dev > 1 else None
        self.vmap_width = loop.vmap_width
        policy, sampler = loop.policy, None
        if policy is None:  # the sweeps: the constant mixer, batches from the sweep's sampler
            policy = Constant(m, cfg.model, cfg.optim, cfg.batch_size, cfg.length)
            sampler = loop.sampler or D.sample_batch
        self.policy = policy
        run = make_policy_run(policy, self.optimizer, sampler)
        self.observe = jax.jit(jax.vmap(make_observe(policy), in_axes=(0, 0, None, None)), donate_argnums=(1,))
        self.policy_init = jax.jit(jax.vmap(policy.init))
        self.current = jax.jit(jax.vmap(policy.current))
        self.train = jax.jit(jax.vmap(run, in_axes=(0, 0, 0, None, None)), donate_argnums=(0, 1))
        self.evaluate = jax.jit(jax.vmap(make_evaluate(cfg.model, m), in_axes=(0, None)))

    def layout(self, n: int) -> tuple[int, int]:
        """``(n_padded, size)``: ``n`` runs are trained in ``n_padded / size`` calls of ``size`` vmapped runs,
        ``size / n_dev`` per device, at most ``vmap_width`` per device when set (the calls are made one after
        another; padding runs are copies of the last run, dropped afterwards)."""
        local = -(-n // self.n_dev)
        calls = 1 if self.vmap_width is None else -(-local // min(self.vmap_width, local))
        size = self.n_dev * -(-local // calls)
        return calls * size, size

    def shard(self, tree: Any) -> Any:
        """Place stacked per-run arrays along the 1-D device mesh; on one device, commit them to it. Committed
        either way, whether fresh or restored from a checkpoint (restored arrays arrive committed): ``jit``
        keys its compiled programs on that, so a resumed run would otherwise compile its programs again."""
        if self.mesh is None:
            return jax.device_put(tree, jax.local_devices()[0])
        return jax.device_put(tree, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("runs")))

    def replicate(self, tree: Any) -> Any:
        if self.mesh is None:
            return jax.device_put(tree, jax.local_devices()[0])
        return jax.device_put(tree, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec()))


@functools.lru_cache(maxsize=16)
def _programs(loop: Loop) -> Programs:
    # Cached so that repeated sweeps with one configuration (resumption, tests) reuse compiled programs.
    return Programs(loop)


def stack(trees: Sequence[Any]) -> Any:
    """Stack pytrees along a new leading (run) axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Where :func:`train` stops between ``start`` and ``stop`` (steps outside ``(start, stop]`` are ignored).

    ``evals``, ``checkpoints`` and ``marks`` are the caller's (it acts on them in ``at``; a mark at ``start``
    calls it before any update); at ``observe`` the policy reads the probe losses first (and at ``start`` too
    when ``start`` is 0).
    """

    start: int
    stop: int
    evals: Collection[int] = ()
    observe: Collection[int] = ()
    checkpoints: Collection[int] = ()
    marks: Collection[int] = ()

    def boundaries(self) -> list[int]:
        every = {*self.evals, *self.observe, *self.checkpoints, *self.marks, self.stop}
        return sorted(b for b in every if self.start < b <= self.stop)


class Runs:
    """Runs trained together through one :class:`Loop`: one per seed, from per-run states or fresh.

    ``states`` / ``policy_states``: one per run (``None``: fresh -- parameters from the seed's init key,
    ``policy.init(fold_in(init key, POLICY_KEY), extra)`` with ``extras[i]``). The stacked, padded trees are
    ``self.states`` / ``self.policy_states`` (one per call); a caller may replace them (a restored group
    checkpoint has the same structure) before :func:`train`.
    """

    def __init__(
        self,
        loop: Loop,
        data: SweepData,
        seeds: Sequence[int],
        states: Sequence[TrainState] | None = None,
        policy_states: Sequence[Any] | None = None,
        extras: Sequence[Any] | None = None,
    ):
        from jaxlaws.train.methods.base import MethodData

        self.loop, self.progs, self.seeds = loop, loop.programs, [int(s) for s in seeds]
        self.n = len(self.seeds)
        n_pad, self.size = self.progs.layout(self.n)

        def pad(xs: Sequence[Any]) -> list[Any]:
            return list(xs) + [xs[-1]] * (n_pad - self.n)

        self.calls = [list(range(i, i + self.size)) for i in range(0, n_pad, self.size)]
        seeds_p = pad(self.seeds)
        init_keys = [run_keys(s)[0] for s in seeds_p]
        if states is None:
            self.states = [self.progs.init(jnp.stack([init_keys[i] for i in c])) for c in self.calls]
        else:
            states = pad(states)
            self.states = [stack([states[i] for i in c]) for c in self.calls]
        if policy_states is None:
            ex = pad(extras) if extras is not None else None
            self.policy_states = [
                self.progs.policy_init(
                    jnp.stack([jax.random.fold_in(init_keys[i], POLICY_KEY) for i in c]),
                    None if ex is None else stack([jax.tree_util.tree_map(jnp.asarray, ex[i]) for i in c]),
                )
                for c in self.calls
            ]
        else:
            ps = pad(policy_states)
            self.policy_states = [stack([jnp.asarray(ps[i]) for i in c]) for c in self.calls]
        self.data_keys = [self.progs.shard(jnp.stack([run_keys(seeds_p[i])[1] for i in c])) for c in self.calls]
        md = MethodData(data.train) if loop.policy is None else MethodData(data.train, data.val_windows, data.probe)
        self.data = self.progs.replicate(md)
        self.val, self.test = self.progs.replicate((data.val, data.test))

    def _per_run(self, arrays: Sequence[Any]) -> np.ndarray:
        return np.concatenate([np.asarray(a) for a in arrays])[: self.n]

    def evaluate(self, split: EvalSet) -> np.ndarray:
        """``(n, m)`` per-group losses of every run on ``split`` (the only transfer to the host)."""
        return self._per_run([self.progs.evaluate(st.params, split) for st in self.states])

    def current(self) -> np.ndarray:
        """``(n, m)``: each run's mixture as its policy reports it."""
        return self._per_run([self.progs.current(ps) for ps in self.policy_states])

    def _one(self, trees: list[Any], i: int) -> Any:
        c, j = divmod(i, self.size)
        return jax.tree_util.tree_map(lambda x: x[j], trees[c])

    def state(self, i: int) -> TrainState:
        """Run ``i``'s train state."""
        return self._one(self.states, i)

    def policy_state(self, i: int) -> Any:
        """Run ``i``'s policy state."""
        return self._one(self.policy_states, i)

    def observe(self, step: int) -> None:
        for k in range(len(self.calls)):
            self.policy_states[k], _ = self.progs.observe(
                self.states[k].params, self.policy_states[k], self.data.probe, jnp.int32(step)
            )

    def advance(self, n_steps: int) -> None:
        """Every run trains ``n_steps`` more updates."""
        n = jnp.int32(n_steps)
        for k in range(len(self.calls)):
            self.states[k], self.policy_states[k] = self.progs.train(
                self.states[k], self.policy_states[k], self.data_keys[k], self.data, n
            )


def _crash_point(step: int) -> None:
    """Called after each boundary's bookkeeping (its checkpoint saved); tests patch it to simulate a kill."""


def train(
    runs: Runs,
    schedule: Schedule,
    at: Callable[[int, Runs], None] | None = None,
    bar: Any = None,
) -> Runs:
    """Train ``runs`` from ``schedule.start`` to ``schedule.stop``, calling ``at(step, runs)`` at every boundary
    (after the policy's observation there) and at ``start`` itself when it is one of ``schedule.marks``;
    ``bar`` (a tqdm bar) counts run-steps.

    Args:
      runs: the :class:`Runs` to train.
      schedule: the :class:`Schedule` (start, stop, evaluations, observations, checkpoints, marks).
      at: the caller's bookkeeping at each boundary (loss rows, checkpoints).
      bar: a tqdm bar counting run-steps.

    Returns:
      ``runs``, trained to ``schedule.stop``.
    """
    runs.states = [runs.progs.shard(s) for s in runs.states]
    runs.policy_states = [runs.progs.shard(p) for p in runs.policy_states]
    step = schedule.start
    if step == 0 and 0 in schedule.observe:
        runs.observe(0)
    if at is not None and step in schedule.marks:
        at(step, runs)
    for b in schedule.boundaries():
        runs.advance(b - step)
        if bar is not None:
            bar.update(runs.n * (b - step))
        step = b
        if b in schedule.observe:
            runs.observe(b)
        if at is not None:
            at(b, runs)
        _crash_point(b)
    return runs


def loss_rows(
    run: str,
    seed: int,
    p: Sequence[float],
    names: Sequence[str],
    step: int,
    split: str,
    losses: np.ndarray,
    **columns: Any,
) -> list[dict]:
    """One loss row per group in the sweep format (``jaxlaws.sweeps.schema``): ``run, seed, step, split, kind,
    parent, break_step, steps_run, method`` (``columns``), ``p_<g>`` and ``group, loss``."""
    from jaxlaws.sweeps.schema import proportion_column

    base = {"run": run, "seed": seed, "step": step, "split": split, **columns}
    base.update({proportion_column(g): q for g, q in zip(names, p)})
    return [{**base, "group": g, "loss": float(v)} for g, v in zip(names, losses, strict=True)]
