"""Static and dynamic (parent -> break -> children) sweeps, many runs per compiled program.

**Protocols** (spec section 4).

* *Static*: every (mixture, seed) trains ``S = optim.total_steps`` steps from scratch; val losses at every
  ``eval_every`` steps and at ``S``, test loss at ``S``.
* *Dynamic*: a parent trains its mixture to the break step ``B`` (val at ``B``), saves its full state (params,
  AdamW moments, schedule position = step; the data-stream position is the step as well) and stops. A child
  restores it, switches to its own mixture and trains ``R`` more steps on the *same* schedule of length ``S``
  (val at ``B + R``, test at ``B + R``). Its batches are ``sample(fold_in(data_key, s), ..., p_child)`` for
  ``s = B .. B+R-1`` -- the stream the original "rolls forward" to -- so a child that keeps its parent's
  mixture reproduces the uninterrupted run exactly.

**Steps** are always the number of updates completed when a loss is measured (``step`` column): the original's
off-by-one checkpoint names (spec section 13.4, ``checkpoint-0`` after one step) are not reproduced.

**Execution.** Runs that start and stop at the same steps are trained ``runs_per_program`` at a time by one
jitted ``jax.vmap`` of the training loop over stacked states, data keys and mixtures; with several local devices
the run axis is sharded over a 1-D mesh. On a CPU, vectorising runs whose activations outgrow the cache is slower
than training them one after another, so at most ``vmap_width`` runs per device are vmapped together and the
rest trained by successive calls of the same compiled program (:func:`default_vmap_width`). Run ``(mixture, seed)`` uses the keys of
:func:`step.run_keys` (seed only), so it gives the same result in any chunk, alone or vmapped (up to float
reassociation).

**Resumption.** The work directory holds ``config.json`` (the configuration hash), ``runs/<run>__seed<s>.json``
(each finished run's loss rows, written atomically) and ``checkpoints/<parent>__seed<s>/`` (orbax). Started
again with the same arguments, a sweep skips finished runs and parents with a complete checkpoint, so a sweep
killed at any moment finishes with the same results. The combined result is written with
``jaxlaws.sweeps.write_sweep`` to ``<work dir>/sweep``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxlaws.sweeps.schema import Sweep, proportion_column
from jaxlaws.train.checkpoint import atomic_write_json, checkpoint_meta, restore_checkpoint, save_checkpoint
from jaxlaws.train.evaluate import EvalSet, make_eval_set, make_evaluate
from jaxlaws.train.model import ModelConfig
from jaxlaws.train.optim import OptimConfig, make_optimizer
from jaxlaws.train.step import (ConstantPolicy, Sampler, TrainData, TrainState, init_state, make_run_until,
                                run_keys)

__all__ = ["TrainConfig", "SweepData", "RunSpec", "prepare_data", "check_mixtures", "static_specs",
           "dynamic_specs", "run_sweep", "static_sweep", "dynamic_sweep", "mixture_tag", "default_vmap_width"]

SIMPLEX_TOL = 1e-4


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes a run's trajectory (model, optimiser, batch) plus evaluation settings."""

    model: ModelConfig
    optim: OptimConfig
    batch_size: int = 8
    seq_len: int | None = None      # default: the model's context
    eval_every: int = 0             # 0: evaluate only at the end (and at a parent's break)
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.seq_len is not None and not 1 <= self.seq_len <= self.model.context:
            raise ValueError(f"TrainConfig.seq_len={self.seq_len} must be in [1, model context "
                             f"{self.model.context}]")
        if self.eval_every < 0:
            raise ValueError(f"TrainConfig.eval_every must be >= 0, got {self.eval_every}")

    @property
    def length(self) -> int:
        return self.model.context if self.seq_len is None else self.seq_len

    def trajectory_dict(self) -> dict:
        return {"model": self.model.to_dict(), "optim": self.optim.to_dict(), "batch_size": self.batch_size,
                "seq_len": self.length}


@dataclasses.dataclass(frozen=True)
class SweepData:
    """Device-ready data of one sweep: group names, train split, val/test evaluation sets, a fingerprint."""

    names: tuple[str, ...]
    train: TrainData
    val: EvalSet
    test: EvalSet
    fingerprint: str
    val_windows: TrainData | None = None   # the val split as sampling windows (DoGE's validation batches)
    probe: EvalSet | None = None           # a fixed subset of val chunks (online methods' held-out signal)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One (run, seed): train from ``start`` to ``stop`` steps on mixture ``p``."""

    run: str
    seed: int
    p: tuple[float, ...]
    kind: str               # "static", "parent" or "child"
    start: int              # 0, or the break step B for a child
    stop: int               # S (static), B (parent), B + R (child)
    parent: str = ""
    break_step: int = -1
    steps_run: int = -1
    method: str = ""        # for a child of a method run: the method's name

    @property
    def key(self) -> str:
        return f"{self.run}__seed{self.seed}"


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def prepare_data(groups: Any, cfg: TrainConfig, max_eval_chunks: int | None = None,
                 probe_chunks: int = 16) -> SweepData:
    """Turn a ``data.TokenGroups`` into :class:`SweepData`, checking that every group can fill a sequence.

    Raises ``ValueError`` naming the group if a training split cannot hold a batch of windows or a val/test
    split has no full evaluation chunk (``data.validate_groups``). ``max_eval_chunks`` caps the evaluation
    chunks per group (evenly spaced, see ``data.eval_chunks``) to make frequent evaluations cheaper.
    ``probe_chunks`` val chunks per group (evenly spaced) form the probe set that online methods evaluate
    inside training (Aioli's LearnParams, Skill-It); the val split is also kept as sampling windows (DoGE).
    """
    from jaxlaws.train import data as D  # the data module is only needed to build a sweep's data

    names = tuple(groups.names)
    D.validate_groups(groups, cfg.length, cfg.batch_size)
    tr = groups.split("train")
    tokens, starts, lengths = np.asarray(tr.tokens), np.asarray(tr.starts), np.asarray(tr.lengths)
    train = TrainData(jnp.asarray(tokens.astype(np.int32)), jnp.asarray(starts), jnp.asarray(lengths))
    evals, fp = {}, [tokens, starts, lengths]
    for split in ("val", "test"):
        x, g = D.eval_chunks(groups, split, cfg.length, max_chunks_per_group=max_eval_chunks)
        evals[split] = make_eval_set(x, g, len(names), cfg.eval_batch_size, names, split)
        fp += [np.asarray(x), np.asarray(g)]
    va = groups.split("val")
    val_windows = TrainData(jnp.asarray(np.asarray(va.tokens).astype(np.int32)), jnp.asarray(va.starts),
                            jnp.asarray(va.lengths))
    px, pg = D.eval_chunks(groups, "val", cfg.length, max_chunks_per_group=probe_chunks)
    probe = make_eval_set(px, pg, len(names), min(cfg.eval_batch_size, len(pg)), names, "val (probe)")
    return SweepData(names, train, evals["val"], evals["test"], _fingerprint(*fp), val_windows, probe)


def check_mixtures(mixtures: Any, m: int, what: str = "mixtures") -> np.ndarray:
    """Validate mixtures ``(n, m)`` (or one ``(m,)``): finite, non-negative, summing to 1 within 1e-4.

    Returns them renormalised to sum exactly to 1 (float64). Raises ``ValueError`` naming the row.
    """
    arr = np.asarray(mixtures, dtype=np.float64)
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != m or arr.shape[0] == 0:
        raise ValueError(f"{what}: expected shape (n, {m}) for {m} groups, got {np.shape(mixtures)}")
    for i, p in enumerate(arr):
        if not np.isfinite(p).all() or (p < 0).any() or abs(p.sum() - 1) > SIMPLEX_TOL:
            raise ValueError(f"{what}[{i}] = {p.tolist()} is not on the simplex (non-negative, sum 1)")
    return arr / arr.sum(1, keepdims=True)


def mixture_tag(p: Sequence[float]) -> str:
    """A readable run-id fragment for a mixture, e.g. ``0.3-0.7``."""
    return "-".join(f"{x:.6g}" for x in p)


def static_specs(mixtures: np.ndarray, seeds: Sequence[int], total_steps: int) -> list[RunSpec]:
    """One static run per (mixture, seed), trained ``total_steps`` steps."""
    return [RunSpec(f"static_{mixture_tag(p)}", int(s), tuple(map(float, p)), "static", 0, total_steps)
            for s in seeds for p in mixtures]


def dynamic_specs(parents: np.ndarray, children: np.ndarray, seeds: Sequence[int], break_step: int,
                  remaining_steps: int, total_steps: int) -> list[RunSpec]:
    """Parents trained to ``break_step`` and, for each, one child per child mixture trained ``remaining_steps``."""
    if not 0 < break_step < total_steps:
        raise ValueError(f"break_step={break_step} must be in (0, total_steps={total_steps}): the parent must "
                         "break before the end of its run")
    if remaining_steps < 1 or break_step + remaining_steps > total_steps:
        raise ValueError(f"remaining_steps={remaining_steps}: a child must train >= 1 step and end by "
                         f"total_steps={total_steps} (break_step + remaining_steps = "
                         f"{break_step + remaining_steps})")
    specs = []
    for s in seeds:
        for pp in parents:
            parent = f"parent_B{break_step}_{mixture_tag(pp)}"
            specs.append(RunSpec(parent, int(s), tuple(map(float, pp)), "parent", 0, break_step,
                                 break_step=break_step))
            for pc in children:
                specs.append(RunSpec(f"child_B{break_step}_R{remaining_steps}_{mixture_tag(pp)}_to_"
                                     f"{mixture_tag(pc)}", int(s), tuple(map(float, pc)), "child",
                                     break_step, break_step + remaining_steps, parent=parent,
                                     break_step=break_step, steps_run=remaining_steps))
    return specs


def _eval_steps(spec: RunSpec, every: int) -> list[int]:
    steps = set(range(every * (spec.start // every + 1), spec.stop, every)) if every else set()
    return sorted(steps | {spec.stop})


def _config_hash(cfg: TrainConfig, data: SweepData) -> str:
    blob = json.dumps({**cfg.trajectory_dict(), "groups": data.names, "data": data.fingerprint},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _rows(spec: RunSpec, names: tuple[str, ...], step: int, split: str, losses: np.ndarray) -> list[dict]:
    base = {"run": spec.run, "seed": spec.seed, "step": step, "split": split, "kind": spec.kind,
            "parent": spec.parent, "break_step": spec.break_step, "steps_run": spec.steps_run, "method": spec.method}
    base.update({proportion_column(g): q for g, q in zip(names, spec.p)})
    return [{**base, "group": g, "loss": float(l)} for g, l in zip(names, losses)]


# On a CPU, vectorising runs multiplies the working set of every layer; once a layer's activations outgrow the
# core's cache (about 2 MiB of float32 on the 2-core development machine, see benchmarks/results/train.md) a
# vmapped run-step gets *slower* than one run's. Runs beyond that width are trained by successive calls.
CPU_VMAP_BYTES = 2 * 2**20


def default_vmap_width(cfg: TrainConfig) -> int | None:
    """How many runs one program vectorises together (``None``: all of them).

    All on accelerators; on CPU devices (per device when the run axis is sharded over several) as many runs
    as keep the widest activation of a layer, ``B * T * max(d_ff, 3 d_model, vocab, heads * T) * 4`` bytes
    per run, within ``CPU_VMAP_BYTES`` (at least one).
    """
    if jax.default_backend() != "cpu":
        return None
    mc = cfg.model
    widest = max(mc.d_ff, 3 * mc.d_model, mc.vocab_size, mc.n_heads * cfg.length)
    return max(1, CPU_VMAP_BYTES // (cfg.batch_size * cfg.length * widest * 4))


class _Programs:
    """The jitted, vmapped training and evaluation programs of one sweep, compiled once per number of runs.

    Training takes the segment length as a traced argument (``step.make_run_until``), so evaluating at
    irregular steps or starting children at any break step does not recompile; the stacked states are
    donated (updated in place).
    """

    def __init__(self, cfg: TrainConfig, m: int, sampler: Sampler, vmap_width: int | None, policy: Any = None):
        self.cfg, self.optimizer = cfg, make_optimizer(cfg.optim)
        self.init = jax.jit(jax.vmap(functools.partial(init_state, cfg.model, self.optimizer)))
        devices = jax.local_devices()
        self.n_dev = len(devices)
        self.mesh = jax.sharding.Mesh(np.array(devices), ("runs",)) if self.n_dev > 1 else None
        self.vmap_width = vmap_width
        if policy is None:  # the static path: its own lean loop
            self.policy = ConstantPolicy()
            run = make_run_until(cfg.model, self.optimizer, m, cfg.batch_size, cfg.length, sampler, self.policy)
        else:  # an online method (jaxlaws.train.methods): data is a MethodData
            from jaxlaws.train.methods.base import make_observe, make_policy_run
            self.policy = policy
            run = make_policy_run(policy, self.optimizer)
            self.observe = jax.jit(jax.vmap(make_observe(policy), in_axes=(0, 0, None)), donate_argnums=(1,))
            self.policy_init = jax.jit(jax.vmap(policy.init))
            self.current = jax.jit(jax.vmap(policy.current))
        # (states, policy_states, data_keys, data, n_steps) -> (states, policy_states)
        self.train = jax.jit(jax.vmap(run, in_axes=(0, 0, 0, None, None)), donate_argnums=(0, 1))
        # (stacked params, eval_set) -> (K, m) per-group losses
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
        """Place stacked per-run arrays along the 1-D device mesh (no-op on one device)."""
        if self.mesh is None:
            return tree
        spec = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("runs"))
        return jax.device_put(tree, spec)

    def replicate(self, tree: Any) -> Any:
        if self.mesh is None:
            return tree
        return jax.device_put(tree, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec()))


@functools.lru_cache(maxsize=16)
def _programs(cfg: TrainConfig, m: int, sampler: Sampler, vmap_width: int | None, policy: Any = None) -> _Programs:
    # Cached so that repeated sweeps with one configuration (resumption, tests) reuse compiled programs.
    return _Programs(cfg, m, sampler, vmap_width, policy)


def _stack(trees: list[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _start_states(chunk: list[RunSpec], progs: _Programs, work: Path, chash: str) -> TrainState:
    """Stacked initial states: fresh from each seed's init key, or each child's restored parent."""
    if chunk[0].kind != "child":
        return progs.init(jnp.stack([run_keys(s.seed)[0] for s in chunk]))
    template = jax.tree_util.tree_map(lambda x: x[0], progs.init(jnp.stack([run_keys(0)[0]])))
    cache: dict[str, TrainState] = {}
    for s in chunk:
        k = f"{s.parent}__seed{s.seed}"
        if k not in cache:
            st = restore_checkpoint(work / "checkpoints" / k, {"train": template}, chash,
                                    what=f"parent checkpoint of child {s.run!r} (seed {s.seed})")["train"]
            if int(st.step) != s.start:
                raise ValueError(f"parent checkpoint {k!r} is at step {int(st.step)}, child {s.run!r} "
                                 f"expects break step {s.start}")
            cache[k] = st
    return _stack([cache[f"{s.parent}__seed{s.seed}"] for s in chunk])


def _train_chunk(chunk: list[RunSpec], progs: _Programs, data: SweepData, work: Path, chash: str,
                 bar: Any) -> list[list[dict]]:
    """Train the runs of ``chunk`` together; returns each run's loss rows (and saves parent checkpoints)."""
    n_real = len(chunk)
    n_pad, size = progs.layout(n_real)
    runs = chunk + [chunk[-1]] * (n_pad - n_real)
    calls = [runs[i:i + size] for i in range(0, n_pad, size)]
    states = [progs.shard(_start_states(c, progs, work, chash)) for c in calls]
    pstates = [progs.shard(jnp.asarray([r.p for r in c], jnp.float32)) for c in calls]
    dkeys = [progs.shard(jnp.stack([run_keys(r.seed)[1] for r in c])) for c in calls]
    train_data, val, test = progs.replicate((data.train, data.val, data.test))

    def evaluate(split: EvalSet) -> np.ndarray:  # (n_pad, m): the only transfer to the host
        return np.concatenate([np.asarray(progs.evaluate(st.params, split)) for st in states])

    rows: list[list[dict]] = [[] for _ in chunk]
    step = chunk[0].start
    for target in _eval_steps(chunk[0], progs.cfg.eval_every):
        n = jnp.int32(target - step)
        for j in range(len(calls)):
            states[j], pstates[j] = progs.train(states[j], pstates[j], dkeys[j], train_data, n)
        bar.update(n_real * (target - step))
        step = target
        losses = evaluate(val)
        for i, spec in enumerate(chunk):
            rows[i] += _rows(spec, data.names, step, "val", losses[i])
    if chunk[0].kind == "parent":
        for i, spec in enumerate(chunk):
            st = jax.tree_util.tree_map(lambda x: x[i % size], states[i // size])
            save_checkpoint(work / "checkpoints" / spec.key, {"train": st},
                            {"config_hash": chash, "run": spec.run, "seed": spec.seed, "step": spec.stop,
                             "p": list(spec.p), "model": progs.cfg.model.to_dict()})
    else:
        losses = evaluate(test)
        for i, spec in enumerate(chunk):
            rows[i] += _rows(spec, data.names, step, "test", losses[i])
    return rows


def run_sweep(specs: Sequence[RunSpec], data: SweepData, cfg: TrainConfig, work_dir: str | Path, *,
              sampler: Sampler | None = None, runs_per_program: int = 8, vmap_width: int | str | None = "auto",
              progress: bool = True, fmt: str = "parquet", write: bool = True,
              _fail_after: int | None = None) -> Sweep:
    """Train every run of ``specs`` (parents before children), resuming from ``work_dir``; return the Sweep.

    ``runs_per_program`` runs with the same (start, stop) are trained by one program, ``vmap_width`` of them
    vectorised together (``"auto"``: :func:`default_vmap_width`; ``None``: all). Finished runs found in
    ``work_dir/runs`` are not recomputed. ``_fail_after`` (tests only) raises after that many runs are saved.
    """
    if runs_per_program < 1:
        raise ValueError(f"runs_per_program must be >= 1, got {runs_per_program}")
    if vmap_width == "auto":
        vmap_width = default_vmap_width(cfg)
    elif vmap_width is not None and (not isinstance(vmap_width, int) or vmap_width < 1):
        raise ValueError(f"vmap_width must be a positive int, None or 'auto', got {vmap_width!r}")
    if sampler is None:
        from jaxlaws.train import data as D
        sampler = D.sample_batch
    m = len(data.names)
    for s in specs:
        check_mixtures(s.p, m, f"run {s.run!r} (seed {s.seed}) mixture")
        if s.stop > cfg.optim.total_steps:
            raise ValueError(f"run {s.run!r} stops at step {s.stop}, beyond total_steps={cfg.optim.total_steps}")
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate (run, seed) in the sweep specification")
    work = Path(work_dir)
    chash = _config_hash(cfg, data)
    cfg_file = work / "config.json"
    if cfg_file.exists():
        old = json.loads(cfg_file.read_text())
        if old["config_hash"] != chash:
            raise ValueError(f"work directory {str(work)!r} holds a sweep with another configuration or data "
                             f"(hash {old['config_hash']} != {chash}); use a new directory")
    else:
        atomic_write_json(cfg_file, {"config_hash": chash, **cfg.trajectory_dict(), "groups": data.names})

    def done(s: RunSpec) -> bool:
        if s.kind == "parent":
            meta = checkpoint_meta(work / "checkpoints" / s.key)
            if meta is None or meta.get("config_hash") != chash:
                return False
        f = work / "runs" / f"{s.key}.json"
        return f.is_file() and json.loads(f.read_text()).get("config_hash") == chash

    todo = [s for s in specs if not done(s)]
    todo.sort(key=lambda s: (s.kind != "parent", s.start, s.stop))  # parents first
    chunks: list[list[RunSpec]] = []
    for s in todo:
        if chunks and len(chunks[-1]) < runs_per_program and (chunks[-1][0].kind == "parent") == (
                s.kind == "parent") and (chunks[-1][0].start, chunks[-1][0].stop) == (s.start, s.stop):
            chunks[-1].append(s)
        else:
            chunks.append([s])

    progs = _programs(cfg, m, sampler, vmap_width)
    from tqdm.auto import tqdm
    written = 0
    with tqdm(total=sum(s.stop - s.start for s in todo), disable=not progress, unit="run-step",
              desc="sweep") as bar:
        for chunk in chunks:
            rows = _train_chunk(chunk, progs, data, work, chash, bar)
            for spec, r in zip(chunk, rows):
                atomic_write_json(work / "runs" / f"{spec.key}.json", {"config_hash": chash, "rows": r})
                written += 1
                if _fail_after is not None and written >= _fail_after:
                    raise RuntimeError(f"test hook: stopping after {written} runs")

    all_rows = []
    for s in specs:
        rec = json.loads((work / "runs" / f"{s.key}.json").read_text())
        all_rows += rec["rows"]
    sweep = Sweep(pd.DataFrame(all_rows), data.names)
    if write:
        from jaxlaws.sweeps.io import write_sweep
        write_sweep(sweep, work / "sweep", fmt, overwrite=True)
    return sweep


def static_sweep(data: SweepData, cfg: TrainConfig, mixtures: Any, seeds: Sequence[int], work_dir: str | Path,
                 **kw: Any) -> Sweep:
    """Static sweep: every mixture (rows of ``mixtures``) x seed trained ``cfg.optim.total_steps`` steps."""
    mix = check_mixtures(mixtures, len(data.names))
    return run_sweep(static_specs(mix, seeds, cfg.optim.total_steps), data, cfg, work_dir, **kw)


def dynamic_sweep(data: SweepData, cfg: TrainConfig, parents: Any, children: Any, seeds: Sequence[int],
                  break_step: int, remaining_steps: int, work_dir: str | Path, **kw: Any) -> Sweep:
    """Dynamic sweep: parents to ``break_step``, then every child mixture for ``remaining_steps`` steps."""
    m = len(data.names)
    specs = dynamic_specs(check_mixtures(parents, m, "parent mixtures"),
                          check_mixtures(children, m, "child mixtures"), seeds, break_step, remaining_steps,
                          cfg.optim.total_steps)
    return run_sweep(specs, data, cfg, work_dir, **kw)
