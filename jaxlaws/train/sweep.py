"""Static and dynamic (parent -> break -> children) sweeps, many runs per compiled program.

**Protocols** (the Aioli paper's sweeps).

* *Static*: every (mixture, seed) trains ``S = optim.total_steps`` steps from scratch; val losses at every
  ``eval_every`` steps and at ``S``, test loss at ``S``.
* *Dynamic*: a parent trains its mixture to the break step ``B`` (val at ``B``), saves its full state (params,
  AdamW moments, schedule position = step; the data-stream position is the step as well) and stops. A child
  restores it, switches to its own mixture and trains ``R`` more steps on the *same* schedule of length ``S``
  (val at ``B + R``, test at ``B + R``). Its batches are ``sample(fold_in(data_key, s), ..., p_child)`` for
  ``s = B .. B+R-1`` -- the stream the original "rolls forward" to -- so a child that keeps its parent's
  mixture reproduces the uninterrupted run exactly.

**Steps** are always the number of updates completed when a loss is measured (``step`` column): the original's
off-by-one checkpoint names (HazyResearch/aioli trainer, ``checkpoint-0`` after one step) are not reproduced.

**Execution.** Every run trains through the one loop of :mod:`jaxlaws.train.loop` (a static mixture is the
constant mixer, whose per-run state is the mixture). Runs that start and stop at the same steps are trained
``runs_per_program`` at a time by one jitted ``jax.vmap`` of it over stacked states, data keys and mixtures; with
several local devices
the run axis is sharded over a 1-D mesh. On a CPU, vectorising runs whose activations outgrow the cache is slower
than training them one after another, so at most ``vmap_width`` runs per device are vmapped together and the
rest trained by successive calls of the same compiled program (:func:`default_vmap_width`).
Run ``(mixture, seed)`` uses the keys of
:func:`step.run_keys` (seed only), so it gives the same result in any chunk, alone or vmapped (up to float
reassociation).

**Resumption.** The work directory holds ``config.json`` (the configuration hash and the settings it covers),
``runs/<run>__seed<s>.json`` (each finished run's loss rows with a checksum, written atomically),
``checkpoints/<parent>__seed<s>/`` (orbax, with the size and SHA-256 of every state file) and, with
``checkpoint_every``, ``resume/<run>__seed<s>/`` (a running run's state and rows every N steps). Started again
with the same arguments, a sweep skips finished runs and parents with a complete checkpoint and resumes
interrupted runs from their last checkpoint, so a sweep killed at any moment finishes with the same results
(bit for bit when the resumed runs are vectorised together as before). The combined result is written with
``jaxlaws.sweeps.write_sweep`` to ``<work dir>/sweep``.

**Reliability.** Every file read is verified (JSON, checksum, the rows against the run's mixture, name and
evaluation schedule, a checkpoint's state files against its file list); a damaged one raises
``checkpoint.DamagedFileError`` naming it, and ``repair=True`` retrains exactly the runs whose files are damaged.
Everything that changes results (model, optimiser, batch, sequence length, data, evaluation schedule and batch,
a custom sampler) is in the configuration hash; a work directory of another configuration is refused, naming
the settings that differ. The work directory is locked (:func:`work_lock`) while a sweep runs in it. Run names
cannot collide (:func:`mixture_tag`), and seeds that would alias one random key are refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxlaws._typing import ArrayLike
from jaxlaws.distributed import DEFAULT_TIMEOUT_S, agree, cluster, digest, owned, share_outcome, wait_all
from jaxlaws.sweeps.schema import Sweep, proportion_column
from jaxlaws.train.checkpoint import (
    DamagedFileError,
    atomic_write_json,
    checkpoint_meta,
    read_verified_json,
    remove_leftovers,
    restore_checkpoint,
    save_checkpoint,
    verify_checkpoint,
    work_lock,
    write_verified_json,
)
from jaxlaws.train.evaluate import EvalSet, make_eval_set
from jaxlaws.train.loop import Loop, Runs, Schedule, loss_rows, train
from jaxlaws.train.model import ModelConfig
from jaxlaws.train.optim import OptimConfig
from jaxlaws.train.step import Sampler, TrainData, TrainState, run_keys

if TYPE_CHECKING:
    from jaxlaws.train.data import TokenGroups

__all__ = [
    "SEED_LIMIT",
    "TrainConfig",
    "SweepData",
    "RunSpec",
    "prepare_data",
    "check_mixtures",
    "check_seeds",
    "static_specs",
    "dynamic_specs",
    "run_sweep",
    "static_sweep",
    "dynamic_sweep",
    "mixture_tag",
    "default_vmap_width",
    "run_memory_bytes",
    "work_lock",
    "config_hash",
    "fingerprint",
]

log = logging.getLogger(__name__)

SIMPLEX_TOL = 1e-4
TAG_TOL = 1e-12  # a mixture whose 6-digit tag is exact to this gets the plain tag as its run name
SEED_LIMIT = 2**32  # jax.random.key(seed) keeps 32 bits: larger or negative seeds alias smaller ones
JOB_TOKEN = ".jaxlaws-job.json"  # written by process 0 of a multi-process sweep, read back by all
HASH_VERSION = 2  # 2: eval_every, eval_batch_size and a custom sampler are part of the configuration hash


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes a run's trajectory (model, optimiser, batch) plus evaluation settings.

    Attributes:
      model: the decoder's :class:`~jaxlaws.train.model.ModelConfig`.
      optim: the :class:`~jaxlaws.train.optim.OptimConfig`.
      batch_size: sequences per training step.
      seq_len: tokens per sequence; default the model's context.
      eval_every: evaluate the held-out losses every N steps (0: only at the end and at a parent's break).
      eval_batch_size: sequences per evaluation batch.
    """

    model: ModelConfig
    optim: OptimConfig
    batch_size: int = 8
    seq_len: int | None = None  # default: the model's context
    eval_every: int = 0  # 0: evaluate only at the end (and at a parent's break)
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.seq_len is not None and not 1 <= self.seq_len <= self.model.context:
            raise ValueError(f"TrainConfig.seq_len={self.seq_len} must be in [1, model context {self.model.context}]")
        if self.eval_every < 0:
            raise ValueError(f"TrainConfig.eval_every must be >= 0, got {self.eval_every}")

    @property
    def length(self) -> int:
        return self.model.context if self.seq_len is None else self.seq_len

    def trajectory_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "optim": self.optim.to_dict(),
            "batch_size": self.batch_size,
            "seq_len": self.length,
        }


@dataclasses.dataclass(frozen=True)
class SweepData:
    """Device-ready data of one sweep (:func:`prepare_data`).

    Attributes:
      names: the group names, in order.
      train: the training split as sampling windows.
      val, test: the evaluation sets of the held-out splits.
      fingerprint: a hash of the data (part of the configuration hash that guards resumed work).
      val_windows: the val split as sampling windows (DoGE's validation batches).
      probe: a fixed subset of val chunks (the online methods' held-out signal).
    """

    names: tuple[str, ...]
    train: TrainData
    val: EvalSet
    test: EvalSet
    fingerprint: str
    val_windows: TrainData | None = None  # the val split as sampling windows (DoGE's validation batches)
    probe: EvalSet | None = None  # a fixed subset of val chunks (online methods' held-out signal)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One (run, seed): train from ``start`` to ``stop`` steps on mixture ``p``."""

    run: str
    seed: int
    p: tuple[float, ...]
    kind: str  # "static", "parent" or "child"
    start: int  # 0, or the break step B for a child
    stop: int  # S (static), B (parent), B + R (child)
    parent: str = ""
    break_step: int = -1
    steps_run: int = -1
    method: str = ""  # for a child of a method run: the method's name

    @property
    def key(self) -> str:
        return f"{self.run}__seed{self.seed}"


def fingerprint(*arrays: np.ndarray) -> str:
    """A short SHA-256 of arrays (dtype, shape and bytes): the data part of the configuration hash."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def prepare_data(
    groups: TokenGroups, cfg: TrainConfig, max_eval_chunks: int | None = None, probe_chunks: int = 16
) -> SweepData:
    """Turn a ``data.TokenGroups`` into :class:`SweepData`, checking that every group can fill a sequence.

    Raises ``ValueError`` naming the group if a training split cannot hold a batch of windows or a val/test
    split has no full evaluation chunk (``data.validate_groups``).

    Args:
      groups: a :class:`~jaxlaws.train.data.TokenGroups`.
      cfg: the :class:`TrainConfig`.
      max_eval_chunks: the most evaluation chunks per group (evenly spaced, ``data.eval_chunks``), to make frequent
        evaluations cheaper.
      probe_chunks: the val chunks per group (evenly spaced) of the probe set that online methods evaluate inside
        training (Aioli's LearnParams, Skill-It).

    Returns:
      The :class:`SweepData`; the val split is also kept as sampling windows (DoGE).
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
    val_windows = TrainData(
        jnp.asarray(np.asarray(va.tokens).astype(np.int32)), jnp.asarray(va.starts), jnp.asarray(va.lengths)
    )
    px, pg = D.eval_chunks(groups, "val", cfg.length, max_chunks_per_group=probe_chunks)
    probe = make_eval_set(px, pg, len(names), min(cfg.eval_batch_size, len(pg)), names, "val (probe)")
    return SweepData(names, train, evals["val"], evals["test"], fingerprint(*fp), val_windows, probe)


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
    """A readable run-id fragment for a mixture that cannot collide with another mixture's.

    ``0.3-0.7`` (6 significant digits per group) when that is the mixture to within ``TAG_TOL`` (1e-12, far
    below float32, in which training uses it); otherwise the same followed by ``~`` and 8 hex digits of a
    hash of the exact values, e.g. ``0.2-0.8~4a7dbbdc`` for ``(0.2000004, 0.7999996)``.
    """
    short = [f"{float(x):.6g}" for x in p]
    tag = "-".join(short)
    if all(abs(float(t) - float(x)) <= TAG_TOL for t, x in zip(short, p)):
        return tag
    digest = hashlib.sha256(",".join(repr(float(x)) for x in p).encode()).hexdigest()[:8]
    return f"{tag}~{digest}"


def check_seeds(seeds: Sequence[int], what: str = "seeds") -> list[int]:
    """Distinct integer seeds in ``[0, 2^32)`` (``jax.random.key`` keeps 32 bits, so others alias)."""
    out = []
    for s in seeds:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise ValueError(f"{what}: seed {s!r} is not an integer")
        if not 0 <= int(s) < SEED_LIMIT:
            raise ValueError(
                f"{what}: seed {int(s)} is outside [0, 2^32) (jax.random.key keeps 32 bits, so it "
                "would alias another seed)"
            )
        out.append(int(s))
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate seeds in {out}")
    return out


def static_specs(mixtures: np.ndarray, seeds: Sequence[int], total_steps: int) -> list[RunSpec]:
    """One static run per (mixture, seed), trained ``total_steps`` steps."""
    return [
        RunSpec(f"static_{mixture_tag(p)}", int(s), tuple(map(float, p)), "static", 0, total_steps)
        for s in seeds
        for p in mixtures
    ]


def dynamic_specs(
    parents: np.ndarray,
    children: np.ndarray,
    seeds: Sequence[int],
    break_step: int,
    remaining_steps: int,
    total_steps: int,
) -> list[RunSpec]:
    """Parents trained to ``break_step`` and, for each, one child per child mixture trained ``remaining_steps``."""
    if not 0 < break_step < total_steps:
        raise ValueError(
            f"break_step={break_step} must be in (0, total_steps={total_steps}): the parent must "
            "break before the end of its run"
        )
    if remaining_steps < 1 or break_step + remaining_steps > total_steps:
        raise ValueError(
            f"remaining_steps={remaining_steps}: a child must train >= 1 step and end by "
            f"total_steps={total_steps} (break_step + remaining_steps = "
            f"{break_step + remaining_steps})"
        )
    specs = []
    for s in seeds:
        for pp in parents:
            parent = f"parent_B{break_step}_{mixture_tag(pp)}"
            specs.append(RunSpec(parent, int(s), tuple(map(float, pp)), "parent", 0, break_step, break_step=break_step))
            for pc in children:
                specs.append(
                    RunSpec(
                        f"child_B{break_step}_R{remaining_steps}_{mixture_tag(pp)}_to_{mixture_tag(pc)}",
                        int(s),
                        tuple(map(float, pc)),
                        "child",
                        break_step,
                        break_step + remaining_steps,
                        parent=parent,
                        break_step=break_step,
                        steps_run=remaining_steps,
                    )
                )
    return specs


def _eval_steps(spec: RunSpec, every: int) -> list[int]:
    steps = set(range(every * (spec.start // every + 1), spec.stop, every)) if every else set()
    return sorted(steps | {spec.stop})


def _sampler_name(sampler: Any) -> str | None:
    """A stable name of a custom sampler (``None`` for the default ``data.sample_batch``)."""
    if sampler is None:
        return None
    from jaxlaws.train import data as D

    if sampler is D.sample_batch:
        return None
    if isinstance(sampler, functools.partial):
        return (
            f"partial({_sampler_name(sampler.func) or 'data.sample_batch'}, {sampler.args!r}, "
            f"{sorted(sampler.keywords.items())!r})"
        )
    qual = getattr(sampler, "__qualname__", type(sampler).__qualname__)
    return f"{getattr(sampler, '__module__', '?')}.{qual}"


def _config_dict(cfg: TrainConfig, data: SweepData, sampler: Any = None) -> dict:
    """Everything that changes a sweep's results: what :func:`config_hash` hashes and config.json records."""
    d = {
        **cfg.trajectory_dict(),
        "groups": list(data.names),
        "data": data.fingerprint,
        "eval_every": cfg.eval_every,
        "eval_batch_size": cfg.eval_batch_size,
    }
    name = _sampler_name(sampler)
    if name is not None:
        d["sampler"] = name
    return d


def config_hash(cfg: TrainConfig, data: SweepData, sampler: Sampler | None = None) -> str:
    """Hash of :func:`_config_dict`: model, optimiser, batch, sequence length, groups, data fingerprint,
    evaluation schedule and batch size, and a custom ``sampler`` (the default one is left out)."""
    blob = json.dumps(_config_dict(cfg, data, sampler), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _legacy_config_hash(cfg: TrainConfig, data: SweepData) -> str:
    """The hash of jaxlaws before HASH_VERSION 2 (without the evaluation settings), to explain a refusal."""
    blob = json.dumps({**cfg.trajectory_dict(), "groups": data.names, "data": data.fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _flat(d: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


_UNSET = object()


def _config_mismatch(work: Path, old: dict, cur: dict, legacy: str) -> ValueError:
    skip = {"config_hash", "hash_version", "sha256"}
    a = {k: v for k, v in _flat(old) if k not in skip}
    b = {k: v for k, v in _flat(cur) if k not in skip}

    def fmt(x: Any) -> str:
        return "unset" if x is _UNSET else json.dumps(x)

    diffs = [
        f"{k} ({fmt(a.get(k, _UNSET))} -> {fmt(b.get(k, _UNSET))})"
        for k in sorted(set(a) | set(b))
        if a.get(k, _UNSET) != b.get(k, _UNSET)
    ]
    what = "; differs in " + ", ".join(diffs) if diffs else ""
    older = (
        " It was written by an earlier jaxlaws whose configuration hash left out the evaluation settings, "
        "so its runs cannot be checked against them."
        if old.get("config_hash") == legacy
        else ""
    )
    return ValueError(
        f"work directory {str(work)!r} holds a sweep with another configuration or data (hash "
        f"{old.get('config_hash')} != {cur['config_hash']}){what}.{older} Use a new directory."
    )


def _rows(spec: RunSpec, names: tuple[str, ...], step: int, split: str, losses: np.ndarray) -> list[dict]:
    cols = {k: getattr(spec, k) for k in ("kind", "parent", "break_step", "steps_run", "method")}
    return loss_rows(spec.run, spec.seed, spec.p, names, step, split, losses, **cols)


# On a CPU, vectorising runs multiplies the working set of every layer; once a layer's activations outgrow the
# core's cache (about 2 MiB of float32 on the 2-core development machine, see benchmarks/results/train.md) a
# vmapped run-step gets *slower* than one run's. Runs beyond that width are trained by successive calls.
CPU_VMAP_BYTES = 2 * 2**20


ACCEL_MEMORY_FRACTION = 0.6  # of one accelerator's memory for vmapped runs (XLA's temporaries need the rest)


def run_memory_bytes(cfg: TrainConfig) -> int:
    """Estimated device memory of one training run in a vmapped program, in bytes.

    ``16 N`` for float32 parameters, gradients and AdamW's two moments (``N`` parameters), plus the activations
    kept for the backward pass, ``B T L (34 d + 5 h T) s / 2`` with ``s`` bytes per compute element
    (Korthikanti et al. 2022, "Reducing activation recomputation", eq. 2, for ``s = 2``), plus the logits
    ``B T V (4 + s)``.
    """
    from jaxlaws.train.model import init_params

    mc = cfg.model
    n = sum(
        int(x.size)
        for x in jax.tree_util.tree_leaves(jax.eval_shape(functools.partial(init_params, mc), jax.random.key(0)))
    )
    s = 2 if mc.dtype == "bfloat16" else 4
    b, t = cfg.batch_size, cfg.length
    act = b * t * mc.n_layers * (34 * mc.d_model + 5 * mc.n_heads * t) * s // 2
    return 16 * n + act + b * t * mc.vocab_size * (4 + s)


def default_vmap_width(cfg: TrainConfig) -> int | None:
    """How many runs one program vectorises together (``None``: all of them).

    On CPU devices (per device when the run axis is sharded over several) as many runs as keep the widest
    activation of a layer, ``B * T * max(d_ff, 3 d_model, vocab, heads * T) * 4`` bytes per run, within
    ``CPU_VMAP_BYTES`` (at least one). On accelerators as many as fit in ``ACCEL_MEMORY_FRACTION`` of one
    device's memory by :func:`run_memory_bytes` (all of them when the device does not report its memory);
    the other runs of a program are streamed through the same compiled program, one call after another.
    """
    if jax.default_backend() != "cpu":
        stats = getattr(jax.local_devices()[0], "memory_stats", lambda: None)() or {}
        limit = stats.get("bytes_limit")
        return None if not limit else max(1, int(ACCEL_MEMORY_FRACTION * limit) // run_memory_bytes(cfg))
    mc = cfg.model
    widest = max(mc.d_ff, 3 * mc.d_model, mc.vocab_size, mc.n_heads * cfg.length)
    return max(1, CPU_VMAP_BYTES // (cfg.batch_size * cfg.length * widest * 4))


@dataclasses.dataclass
class _Todo:
    """A run to train: from ``start`` (its spec's start, or the step of its resume checkpoint) to its stop."""

    spec: RunSpec
    start: int
    source: str  # "fresh", "parent" (a child restoring its parent) or "resume"
    rows: list[dict]  # rows recorded before ``start`` (from the resume checkpoint)


def _spec_dict(s: RunSpec) -> dict:
    return {**dataclasses.asdict(s), "p": [float(x) for x in s.p]}


def _template(loop: Loop) -> TrainState:
    return jax.tree_util.tree_map(lambda x: x[0], loop.programs.init(jnp.stack([run_keys(0)[0]])))


def _start_states(chunk: list[_Todo], loop: Loop, work: Path, chash: str) -> list[TrainState] | None:
    """Each run's initial state: ``None`` (fresh from each seed's init key), each child's restored parent, or
    each run's own resume checkpoint."""
    source = chunk[0].source
    if source == "fresh":
        return None
    template = _template(loop)
    if source == "resume":
        out = []
        for t in chunk:
            st = restore_checkpoint(
                work / "resume" / t.spec.key,
                {"train": template},
                chash,
                what=f"resume checkpoint of run {t.spec.run!r} (seed {t.spec.seed})",
            )["train"]
            if int(st.step) != t.start:
                raise DamagedFileError(
                    work / "resume" / t.spec.key,
                    f"its state is at step {int(st.step)}, its meta.json says {t.start}",
                    "resume checkpoint",
                )
            out.append(st)
        return out
    cache: dict[str, TrainState] = {}
    for t in chunk:
        s = t.spec
        k = f"{s.parent}__seed{s.seed}"
        if k not in cache:
            st = restore_checkpoint(
                work / "checkpoints" / k,
                {"train": template},
                chash,
                what=f"parent checkpoint of child {s.run!r} (seed {s.seed})",
            )["train"]
            if int(st.step) != s.start:
                raise ValueError(
                    f"parent checkpoint {k!r} is at step {int(st.step)}, child {s.run!r} expects break step {s.start}"
                )
            cache[k] = st
    return [cache[f"{t.spec.parent}__seed{t.spec.seed}"] for t in chunk]


def _train_chunk(
    chunk: list[_Todo],
    loop: Loop,
    data: SweepData,
    work: Path,
    chash: str,
    bar: Any,
    checkpoint_every: int = 0,
) -> list[list[dict]]:
    """Train the runs of ``chunk`` together through the one loop (:func:`jaxlaws.train.loop.train`, constant
    mixer); returns each run's loss rows (and saves parent checkpoints, and every ``checkpoint_every`` steps
    each run's resume checkpoint)."""
    first = chunk[0].spec
    start = chunk[0].start
    mixtures = [np.asarray(t.spec.p, np.float32) for t in chunk]
    runs = Runs(loop, data, [t.spec.seed for t in chunk], _start_states(chunk, loop, work, chash), mixtures)
    n = checkpoint_every
    schedule = Schedule(
        start,
        first.stop,
        evals=_eval_steps(first, loop.cfg.eval_every),
        checkpoints=range(n * (start // n + 1), first.stop, n) if n else (),
    )
    rows: list[list[dict]] = [list(t.rows) for t in chunk]

    def at(step: int, runs: Runs) -> None:
        if step in schedule.evals:
            losses = runs.evaluate(runs.val)
            for i, t in enumerate(chunk):
                rows[i] += _rows(t.spec, data.names, step, "val", losses[i])
        if step in schedule.checkpoints:
            for i, t in enumerate(chunk):
                save_checkpoint(
                    work / "resume" / t.spec.key,
                    {"train": runs.state(i)},
                    {
                        "config_hash": chash,
                        "spec": _spec_dict(t.spec),
                        "step": step,
                        "rows": rows[i],
                        "model": loop.cfg.model.to_dict(),
                    },
                )

    train(runs, schedule, at, bar)
    if first.kind == "parent":
        for i, t in enumerate(chunk):
            spec = t.spec
            save_checkpoint(
                work / "checkpoints" / spec.key,
                {"train": runs.state(i)},
                {
                    "config_hash": chash,
                    "run": spec.run,
                    "seed": spec.seed,
                    "step": spec.stop,
                    "p": list(spec.p),
                    "model": loop.cfg.model.to_dict(),
                },
            )
    else:
        losses = runs.evaluate(runs.test)
        for i, t in enumerate(chunk):
            rows[i] += _rows(t.spec, data.names, first.stop, "test", losses[i])
    return rows


def _check_rows(f: Path, rec: dict, s: RunSpec, names: tuple[str, ...], every: int) -> list[dict]:
    """The rows of a run file, checked against the run: name, seed, kind, mixture, groups, schedule."""
    what = f"run file of {s.run!r} (seed {s.seed}):"
    rows = rec.get("rows")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise DamagedFileError(f, "no loss rows", what)
    try:
        first = rows[0]
        p = [float(first[proportion_column(g)]) for g in names]
        name = (first["run"], first["seed"])
        got = sorted((int(r["step"]), str(r["split"]), str(r["group"])) for r in rows)
        bad = [
            r
            for r in rows
            if (r["run"], r["seed"], r["kind"]) != (s.run, s.seed, s.kind) or not isinstance(r["loss"], float)
        ]
    except (KeyError, TypeError, ValueError) as e:
        raise DamagedFileError(f, f"malformed rows ({type(e).__name__}: {e})", what) from None
    if name != (s.run, s.seed) or max(abs(a - b) for a, b in zip(p, s.p)) > TAG_TOL:
        raise ValueError(
            f"{str(f)!r} holds run {name[0]!r} (seed {name[1]}) with mixture {p}, not run "
            f"{s.run!r} (seed {s.seed}) with mixture {list(s.p)}: run names collide (a work "
            "directory of an older jaxlaws?); use a new directory"
        )
    want = [(t, "val", g) for t in _eval_steps(s, every) for g in names]
    if s.kind != "parent":
        want += [(s.stop, "test", g) for g in names]
    if bad or got != sorted(want):
        raise DamagedFileError(f, "its rows do not match the run's groups and evaluation schedule", what)
    return rows


def run_sweep(
    specs: Sequence[RunSpec],
    data: SweepData,
    cfg: TrainConfig,
    work_dir: str | Path,
    *,
    sampler: Sampler | None = None,
    runs_per_program: int = 8,
    vmap_width: int | str | None = "auto",
    progress: bool = True,
    fmt: str = "parquet",
    write: bool = True,
    checkpoint_every: int = 0,
    repair: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Sweep:
    """Train every run of ``specs`` (parents before children), resuming from ``work_dir``.

    ``runs_per_program`` runs with the same (start, stop) are trained by one program, ``vmap_width`` of them
    vectorised together (``"auto"``: :func:`default_vmap_width`; ``None``: all). Finished runs found in
    ``work_dir/runs`` are not recomputed; every ``checkpoint_every`` steps (0: never) each running run's state
    and rows are saved in ``work_dir/resume``, and a run killed mid-way restarts from there. Every file read
    is verified; a damaged one raises ``DamagedFileError`` naming it unless ``repair``, which retrains exactly
    the runs whose files are damaged. The work directory is locked for the call (:func:`work_lock`,
    re-entrant).

    After ``jaxlaws.distributed.initialize`` (several processes), every process must make the same call; see
    :func:`_run_distributed`. ``timeout_s`` bounds its start-up waits (processes agreeing on the sweep).

    Args:
      specs: the runs (:func:`static_specs`, :func:`dynamic_specs`).
      data: the :class:`SweepData`.
      cfg: the :class:`TrainConfig`.
      work_dir: the resumable work directory.
      sampler: a custom batch sampler (default ``data.sample_batch``).
      runs_per_program: runs trained by one program.
      vmap_width: runs vectorised together (``"auto"``, ``None`` for all, or an int).
      progress: show a progress bar.
      fmt: ``"parquet"`` or ``"csv"`` tables.
      write: write the sweep to ``work_dir/sweep``.
      checkpoint_every: save running runs every N steps (0: never).
      repair: retrain the runs whose files are damaged.
      timeout_s: the multi-process start-up waits' bound.

    Returns:
      The :class:`~jaxlaws.sweeps.Sweep` of every run.
    """
    if runs_per_program < 1:
        raise ValueError(f"runs_per_program must be >= 1, got {runs_per_program}")
    if vmap_width == "auto":
        vmap_width = default_vmap_width(cfg)
    elif vmap_width is not None and (not isinstance(vmap_width, int) or vmap_width < 1):
        raise ValueError(f"vmap_width must be a positive int, None or 'auto', got {vmap_width!r}")
    if not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 0:
        raise ValueError(
            f"checkpoint_every must be an integer >= 0 (0: no mid-run checkpoints), got {checkpoint_every!r}"
        )
    checkpoint_every = int(checkpoint_every)
    m = len(data.names)
    if m < 2:
        raise ValueError(f"a sweep needs at least 2 groups, got {list(data.names)}")
    chash = config_hash(cfg, data, sampler)
    if sampler is None:
        from jaxlaws.train import data as D

        sampler = D.sample_batch
    if not specs:
        raise ValueError("the sweep specification is empty")
    check_seeds(sorted({s.seed for s in specs}))
    for s in specs:
        check_mixtures(s.p, m, f"run {s.run!r} (seed {s.seed}) mixture")
        if s.kind not in ("static", "parent", "child") or not 0 <= s.start < s.stop:
            raise ValueError(f"run {s.run!r}: kind {s.kind!r} from step {s.start} to {s.stop} is not a run")
        if s.kind == "child" and not s.parent:
            raise ValueError(f"child run {s.run!r} names no parent")
        if s.stop > cfg.optim.total_steps:
            raise ValueError(f"run {s.run!r} stops at step {s.stop}, beyond total_steps={cfg.optim.total_steps}")
    seen: set[str] = set()
    for s in specs:
        if s.key in seen:
            raise ValueError(
                f"duplicate run {s.run!r} (seed {s.seed}) in the sweep specification: a mixture or "
                "seed is given twice (or two mixtures differ by less than 1e-12)"
            )
        seen.add(s.key)
    work = Path(work_dir)
    args = (
        specs,
        data,
        cfg,
        work,
        chash,
        sampler,
        runs_per_program,
        vmap_width,
        progress,
        fmt,
        write,
        checkpoint_every,
        repair,
    )
    if cluster().is_multi:
        return _run_distributed(*args, timeout_s=timeout_s)
    with work_lock(work):
        return _run_locked(*args)


class _Scan:
    """What a work directory holds for a sweep: finished runs' rows and the runs left to train."""

    def __init__(self, specs, data, cfg, work, chash, repair, cleanup: bool = True):
        self.specs, self.data, self.cfg, self.work, self.chash = specs, data, cfg, work, chash
        self.repair, self.cleanup = repair, cleanup  # cleanup: may delete stale resume checkpoints

    def _rmtree(self, d: Path) -> None:
        if self.cleanup:
            shutil.rmtree(d, ignore_errors=True)

    def parent_ok(self, s: RunSpec) -> bool:
        ck = self.work / "checkpoints" / s.key
        meta = checkpoint_meta(ck)
        if meta is None or meta.get("config_hash") != self.chash or meta.get("step") != s.stop:
            return False
        verify_checkpoint(ck, meta)
        return True

    def finished_rows(self, s: RunSpec) -> list[dict] | None:
        f = self.work / "runs" / f"{s.key}.json"
        if not f.is_file():
            return None
        rec = read_verified_json(f, f"run file of {s.run!r} (seed {s.seed}):")
        if rec.get("config_hash") != self.chash:
            return None  # left by another configuration: retrained
        return _check_rows(f, rec, s, self.data.names, self.cfg.eval_every)

    def resume_point(self, s: RunSpec) -> _Todo | None:
        rd = self.work / "resume" / s.key
        meta = checkpoint_meta(rd)
        if meta is None:
            return None
        step = meta.get("step")
        if (
            meta.get("config_hash") != self.chash
            or meta.get("spec") != _spec_dict(s)
            or not (isinstance(step, int) and s.start < step < s.stop)
        ):
            self._rmtree(rd)  # left by another configuration or run: useless
            return None
        verify_checkpoint(rd, meta)
        rows = meta.get("rows")
        if not isinstance(rows, list):
            raise DamagedFileError(rd / "meta.json", "no loss rows", "resume checkpoint")
        return _Todo(s, step, "resume", rows)

    def __call__(self) -> tuple[dict[str, list[dict]], list[_Todo]]:
        """``(rows of the finished runs by run key, runs to train)``; damaged files raise (unless repair)."""
        damaged: list[DamagedFileError] = []
        done_rows: dict[str, list[dict]] = {}
        todo: list[_Todo] = []
        for s in self.specs:
            try:
                rows = self.finished_rows(s)
                if rows is not None and (s.kind != "parent" or self.parent_ok(s)):
                    done_rows[s.key] = rows
                    if (self.work / "resume" / s.key).exists():
                        self._rmtree(self.work / "resume" / s.key)  # superseded
                    continue
            except DamagedFileError as e:
                self._damage(damaged, e)
            try:
                t = self.resume_point(s)
            except DamagedFileError as e:
                self._damage(damaged, e)
                self._rmtree(self.work / "resume" / s.key)  # repair: start the run afresh
                t = None
            todo.append(t or _Todo(s, s.start, "parent" if s.kind == "child" else "fresh", []))
        if damaged:
            first = damaged[0]
            more = (
                "; and " + ", ".join(repr(str(e.path)) for e in damaged[1:]) + " are damaged too"
                if len(damaged) > 1
                else ""
            )
            raise DamagedFileError(first.path, first.reason + more, first.what)
        return done_rows, todo

    def _damage(self, damaged: list, e: DamagedFileError) -> None:
        if not self.repair:
            damaged.append(e)
        else:
            log.warning("repair: %s", e)


def _open_work(work: Path, cfg: TrainConfig, data: SweepData, sampler: Any, chash: str, repair: bool) -> None:
    """Clear killed writers' leftovers and check (or write) ``config.json``; call it holding the work lock."""
    for d in (work, work / "runs", work / "checkpoints", work / "resume", work / "final"):
        remove_leftovers(d)  # of killed writers; safe, since this process holds the lock
    cfg_file = work / "config.json"
    cur = {"config_hash": chash, "hash_version": HASH_VERSION, **_config_dict(cfg, data, sampler)}
    old = None
    if cfg_file.exists():
        try:
            old = read_verified_json(cfg_file, "work directory configuration", required=False)
            if not isinstance(old.get("config_hash"), str):
                raise DamagedFileError(cfg_file, "no configuration hash", "work directory configuration")
        except DamagedFileError as e:
            if not repair:
                raise
            log.warning("repair: %s (rewritten)", e)
            old = None
        if old is not None and old["config_hash"] != chash:
            raise _config_mismatch(work, old, cur, _legacy_config_hash(cfg, data))
    if old is None:
        write_verified_json(cfg_file, cur)


def _run_saved(written: int) -> None:
    """Called after each finished run's file is written (``written`` so far); tests patch it to simulate a kill."""


def _chunk_group(t: _Todo) -> tuple:
    return t.spec.kind == "parent", t.source, t.start, t.spec.stop


def _train_todo(
    todo: list[_Todo],
    loop: Loop,
    data: SweepData,
    work: Path,
    chash: str,
    runs_per_program: int,
    progress: bool | str,
    checkpoint_every: int,
) -> dict[str, list[dict]]:
    """Train ``todo`` (parents first), ``runs_per_program`` runs of one (kind, source, start, stop) per program;
    write each finished run's file; return the rows by run key."""
    todo = sorted(todo, key=lambda t: (t.spec.kind != "parent", t.start, t.spec.stop))  # parents first
    chunks: list[list[_Todo]] = []
    for t in todo:
        if chunks and len(chunks[-1]) < runs_per_program and _chunk_group(chunks[-1][0]) == _chunk_group(t):
            chunks[-1].append(t)
        else:
            chunks.append([t])
    for t in todo:
        if t.source == "resume":
            log.info(
                "resuming run %s (seed %d) from step %d (%s)",
                t.spec.run,
                t.spec.seed,
                t.start,
                work / "resume" / t.spec.key,
            )
    from tqdm.auto import tqdm

    out: dict[str, list[dict]] = {}
    written = 0
    with tqdm(
        total=sum(t.spec.stop - t.start for t in todo),
        disable=not progress,
        unit="run-step",
        desc=progress if isinstance(progress, str) else "sweep",
    ) as bar:
        for chunk in chunks:
            rows = _train_chunk(chunk, loop, data, work, chash, bar, checkpoint_every)
            for t, r in zip(chunk, rows):
                write_verified_json(work / "runs" / f"{t.spec.key}.json", {"config_hash": chash, "rows": r})
                out[t.spec.key] = r
                shutil.rmtree(work / "resume" / t.spec.key, ignore_errors=True)  # superseded
                written += 1
                _run_saved(written)
    return out


def _assemble(specs, done_rows: dict, data: SweepData, work: Path, fmt: str, write: bool) -> Sweep:
    sweep = Sweep(pd.DataFrame([r for s in specs for r in done_rows[s.key]]), data.names)
    if write:
        from jaxlaws.sweeps.io import write_sweep

        write_sweep(sweep, work / "sweep", fmt, overwrite=True)
    return sweep


def _run_locked(
    specs,
    data,
    cfg,
    work,
    chash,
    sampler,
    runs_per_program,
    vmap_width,
    progress,
    fmt,
    write,
    checkpoint_every,
    repair,
) -> Sweep:
    _open_work(work, cfg, data, sampler, chash, repair)
    done_rows, todo = _Scan(specs, data, cfg, work, chash, repair)()
    loop = Loop(cfg, len(data.names), sampler=sampler, vmap_width=vmap_width)
    done_rows.update(_train_todo(todo, loop, data, work, chash, runs_per_program, progress, checkpoint_every))
    return _assemble(specs, done_rows, data, work, fmt, write)


def _run_distributed(
    specs,
    data,
    cfg,
    work,
    chash,
    sampler,
    runs_per_program,
    vmap_width,
    progress,
    fmt,
    write,
    checkpoint_every,
    repair,
    *,
    timeout_s: float,
) -> Sweep:
    """The sweep on ``P`` processes sharing ``work`` (a shared file system); each trains on its own devices.

    Runs are independent programs, so each process trains the runs it owns with its local devices (the run axis
    sharded over them as on one host) and no collective runs during training: a global-mesh program would
    keep every process in lockstep, padding each call to the same shape everywhere and stalling all of them on
    the slowest. The steps:

    1. all processes agree on the configuration hash and the run list (different arguments: an error);
    2. process 0 takes the work lock, removes killed writers' leftovers, checks ``config.json`` and writes a
       token that every process must read back (``work`` not shared, or another ``--out``: an error);
    3. every process scans ``work`` alike; they agree on the runs left to train; finished runs are skipped;
    4. the runs left, sorted, are dealt round robin (:func:`jaxlaws.distributed.owned`): static runs and
       parents, then -- once every parent is saved -- children. Each process writes only its runs' files
       (atomically) and resumes its runs from their ``resume/`` checkpoints, whichever process wrote them;
    5. once all are done every process reads the others' run files, and process 0 writes ``sweep/``.

    Which process trains a run never changes its result (its keys depend on its seed only), so a job restarted
    with any number of processes finishes the same sweep.
    """
    c = cluster()
    agree(
        "the sweep configuration",
        {
            "config_hash": chash,
            "specs": [_spec_dict(s) for s in specs],
            "checkpoint_every": checkpoint_every,
            "repair": repair,
            "write": write,
            "fmt": fmt,
        },
        timeout_s,
    )
    with contextlib.ExitStack() as stack:

        def open_work() -> None:
            stack.enter_context(work_lock(work))
            _open_work(work, cfg, data, sampler, chash, repair)
            atomic_write_json(work / JOB_TOKEN, {"token": digest([time.time_ns(), os.getpid(), str(work)])})

        share_outcome("opening the work directory", open_work, timeout_s)
        try:
            token = read_verified_json(work / JOB_TOKEN, "job token", required=False).get("token")
        except (DamagedFileError, FileNotFoundError):
            token = None
        agree(
            f"the work directory {str(work)!r} (each process must see the same one: a shared file system)",
            token,
            timeout_s,
        )
        scan = _Scan(specs, data, cfg, work, chash, repair, cleanup=c.is_main)
        done_rows, todo = scan()
        agree("the runs left to train", sorted((t.spec.key, t.start, t.source) for t in todo), timeout_s)
        loop = Loop(cfg, len(data.names), sampler=sampler, vmap_width=vmap_width)
        desc = f"sweep (process {c.index}/{c.count})" if progress else False
        for phase in ("static runs and parents", "children"):
            items = sorted(
                (t for t in todo if (t.spec.kind == "child") == (phase == "children")),
                key=lambda t: (_chunk_group(t), t.spec.key),
            )
            mine = owned(items, c)
            done_rows.update(
                wait_all(
                    f"training the {phase}",
                    functools.partial(
                        _train_todo,
                        mine,
                        loop,
                        data,
                        work,
                        chash,
                        runs_per_program,
                        desc,
                        checkpoint_every,
                    ),
                )
            )
        for s in specs:  # the other processes' runs, read back and verified
            if s.key not in done_rows:
                rows = scan.finished_rows(s)
                if rows is None:
                    raise ValueError(
                        f"run {s.run!r} (seed {s.seed}) was trained by another process but its run "
                        f"file {str(work / 'runs' / (s.key + '.json'))!r} is missing"
                    )
                done_rows[s.key] = rows
        sweep = _assemble(specs, done_rows, data, work, fmt, write=False)
        if write:
            from jaxlaws.sweeps.io import write_sweep

            share_outcome(
                "writing the sweep", lambda: write_sweep(sweep, work / "sweep", fmt, overwrite=True), timeout_s
            )
        return sweep


def static_sweep(
    data: SweepData, cfg: TrainConfig, mixtures: ArrayLike, seeds: Sequence[int], work_dir: str | Path, **kw: Any
) -> Sweep:
    """Static sweep: every mixture (rows of ``mixtures``) x seed trained ``cfg.optim.total_steps`` steps.

    Args:
      data: the :class:`SweepData`.
      cfg: the :class:`TrainConfig`.
      mixtures: ``(n, m)`` mixtures.
      seeds: the training seeds.
      work_dir: the resumable work directory (the sweep is written to ``work_dir/sweep``).
      **kw: passed to :func:`run_sweep`.

    Returns:
      The :class:`~jaxlaws.sweeps.Sweep` of the runs.
    """
    mix = check_mixtures(mixtures, len(data.names))
    return run_sweep(static_specs(mix, seeds, cfg.optim.total_steps), data, cfg, work_dir, **kw)


def dynamic_sweep(
    data: SweepData,
    cfg: TrainConfig,
    parents: ArrayLike,
    children: ArrayLike,
    seeds: Sequence[int],
    break_step: int,
    remaining_steps: int,
    work_dir: str | Path,
    **kw: Any,
) -> Sweep:
    """Dynamic sweep: parents to ``break_step``, then every child mixture for ``remaining_steps`` steps.

    Args:
      data: the :class:`SweepData`.
      cfg: the :class:`TrainConfig`.
      parents: ``(P, m)`` parent mixtures.
      children: ``(C, m)`` child mixtures.
      seeds: the training seeds.
      break_step: B, where the children branch off.
      remaining_steps: R, the children's steps after B.
      work_dir: the resumable work directory.
      **kw: passed to :func:`run_sweep`.

    Returns:
      The :class:`~jaxlaws.sweeps.Sweep` of the parents and children.
    """
    m = len(data.names)
    specs = dynamic_specs(
        check_mixtures(parents, m, "parent mixtures"),
        check_mixtures(children, m, "child mixtures"),
        seeds,
        break_step,
        remaining_steps,
        cfg.optim.total_steps,
    )
    return run_sweep(specs, data, cfg, work_dir, **kw)
