"""Train a policy's runs (one per seed, vmapped), resumably; break them for the method-analysis children.

:func:`train_policy` trains the runs ``run`` x ``seeds`` of one policy from step 0 to ``stop``:

* the runs train through the one loop of every jaxlaws run (:func:`jaxlaws.train.loop.train`, configured by
  a :class:`~jaxlaws.train.loop.Loop` holding the policy): the host walks a static schedule of boundaries (the
  policy's ``observe_steps``, the evaluation steps, the break step ``B``, the resume checkpoints and ``stop``);
  between two boundaries one compiled, vmapped program trains the segment (``base.make_policy_run``), and at
  a boundary a second one evaluates the probe set and lets the policy observe it (``base.make_observe``) --
  the losses never leave the device;
* at every ``eval_every`` step, at ``B`` and at ``stop`` the full validation split is evaluated into loss rows
  (``kind="method"``, the ``p_<g>`` columns hold the method's own mixture ``policy.current``), the test split at
  ``stop``;
* at ``B`` each seed's train state is saved as ``checkpoints/<run>__seed<s>`` -- the layout the children of
  ``jaxlaws.train.sweep`` restore -- together with the matrices recorded so far;
* every ``checkpoint_every`` steps the whole group (train *and* policy states, rows so far) is saved under
  ``resume/<run>``; a killed run restarts from there and ends bit-identical to an uninterrupted one, because
  a batch is a pure function of (seed, step) and the policy state is part of the checkpoint;
* when a run ends, ``runs/<run>__seed<s>.json`` holds its rows, recorded matrices and outputs, and (with
  ``save_final``) ``final/<run>__seed<s>`` its final parameters (a DoReMi reference model is read from there).

A run whose ``runs/`` file exists with the same run hash (configuration, data, policy hyper-parameters,
per-seed inputs, schedule) is not retrained. Run files and resume checkpoints carry ``format``
(:data:`RUN_FORMAT`); those of an earlier jaxlaws, which lack it, are refused with a message rather than
silently trained again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train.checkpoint import (
    DamagedFileError,
    checkpoint_meta,
    read_verified_json,
    restore_checkpoint,
    save_checkpoint,
    work_lock,
    write_verified_json,
)
from jaxlaws.train.loop import Loop, Runs, Schedule, loss_rows, train
from jaxlaws.train.methods.base import Policy
from jaxlaws.train.sweep import SweepData, TrainConfig, config_hash, fingerprint

__all__ = ["train_policy", "load_final_params", "run_hash", "RUN_FORMAT"]

RUN_FORMAT = 2  # 2: trained through jaxlaws.train.loop (run files and resume checkpoints carry "format")


def run_hash(cfg: TrainConfig, data: SweepData, policy: Policy, extras: Any, stop: int, break_step: int | None) -> str:
    blob = json.dumps(
        {
            "sweep": config_hash(cfg, data),
            "policy": policy.config(),
            "stop": stop,
            "break": break_step,
            "probe": data.probe.n,
            "extras": fingerprint(*map(np.asarray, jax.tree_util.tree_leaves(extras))) if extras is not None else None,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _records(policy: Policy, pstate_host: Any, upto: int) -> list[dict]:
    out = []
    for name, step, index, a in policy.records(pstate_host, upto):
        a = np.asarray(a, np.float64)
        for (r, c), v in np.ndenumerate(a):
            out.append({"name": name, "step": int(step), "index": int(index), "row": r, "col": c, "value": float(v)})
    return out


def _meta(path: Path) -> dict | None:
    """A checkpoint's meta, or None when it is missing or damaged (then it is retrained, with a warning)."""
    try:
        return checkpoint_meta(path)
    except DamagedFileError as e:
        warnings.warn(f"{e}; it will be trained again", stacklevel=3)
        return None


def load_final_params(work_dir: str | Path, run: str, seed: int, cfg: TrainConfig, data: SweepData) -> Any:
    """The final parameters of ``run`` (seed ``seed``), saved by :func:`train_policy` with ``save_final``."""
    from jaxlaws.train.model import init_params

    template = jax.eval_shape(lambda: init_params(cfg.model, jax.random.key(0)))
    template = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), template)
    got = restore_checkpoint(
        Path(work_dir) / "final" / f"{run}__seed{seed}",
        {"params": template},
        config_hash(cfg, data),
        what=f"final parameters of run {run!r} (seed {seed})",
    )
    return got["params"]


def _refuse_older(path: Path, what: str) -> None:
    raise ValueError(
        f"{what} {str(path)!r} was written by an earlier jaxlaws (method run format < {RUN_FORMAT}, before "
        "every run trained through jaxlaws.train.loop); its runs cannot be checked against this version. "
        "Use a new work directory (or delete the old one)."
    )


def train_policy(
    loop: Loop,
    data: SweepData,
    seeds: Sequence[int],
    work_dir: str | Path,
    *,
    run: str,
    method: str,
    extras: Sequence[Any] | None = None,
    stop: int | None = None,
    break_step: int | None = None,
    eval_steps: Sequence[int] = (),
    checkpoint_every: int = 0,
    bar: Any = None,
    save_final: bool = False,
) -> dict[int, dict]:
    """Train ``run`` (one run per seed) under ``loop.policy`` to ``stop`` (default ``total_steps``); see the
    module docstring. ``extras[i]`` is seed ``i``'s per-run input to ``policy.init`` (a graph, reference params,
    a mixture). ``save_final`` keeps each seed's final parameters in ``final/`` (e.g. DoReMi's reference).

    Args:
      loop: the :class:`~jaxlaws.train.loop.Loop` (its ``policy`` the method).
      data: the :class:`~jaxlaws.train.sweep.SweepData`.
      seeds: the training seeds.
      work_dir: the resumable work directory.
      run: the run's id.
      method: the method's name (recorded with the rows).
      extras: per-seed inputs to ``policy.init``.
      stop: the last step (default ``total_steps``).
      break_step: B, where a checkpoint is kept for children.
      eval_steps: the steps with held-out evaluations.
      checkpoint_every: resume checkpoints every N steps (0: never).
      bar: a tqdm bar counting run-steps.
      save_final: keep each seed's final parameters.

    Returns:
      ``{seed: {"rows", "records", "outputs", "seconds", "run_steps"}}``.
    """
    policy, cfg = loop.policy, loop.cfg
    if policy is None:
        raise ValueError(f"{run}: train_policy needs a Loop with a policy (the sweeps train the constant mixer)")
    if loop.m != len(data.names):
        raise ValueError(f"{run}: the loop is for {loop.m} groups, the data has {len(data.names)}")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{run}: seeds must be distinct and non-empty, got {seeds}")
    total = cfg.optim.total_steps
    stop = total if stop is None else int(stop)
    if not 0 < stop <= total:
        raise ValueError(f"{run}: stop={stop} must be in (0, total_steps={total}]")
    if break_step is not None and not 0 < break_step < stop:
        raise ValueError(f"{run}: break step {break_step} must be in (0, {stop}) (past the end of the run)")
    if extras is not None and len(extras) != len(seeds):
        raise ValueError(f"{run}: {len(extras)} extras for {len(seeds)} seeds")
    if data.probe is None or data.val_windows is None:
        raise ValueError("online methods need SweepData from jaxlaws.train.sweep.prepare_data (probe, val windows)")
    extras = [policy.prepare_extra(e) for e in (extras if extras is not None else [None] * len(seeds))]
    if all(e is None for e in extras):
        extras = None
    work = Path(work_dir)
    rhash = run_hash(cfg, data, policy, extras, stop, break_step)

    def finished() -> dict[int, dict] | None:
        out = {}
        for s in seeds:
            f = work / "runs" / f"{run}__seed{s}.json"
            if not f.is_file():
                return None
            try:
                rec = read_verified_json(f, what=f"method run {run!r} (seed {s})")
            except DamagedFileError as e:  # a damaged result is retrained, and said so
                warnings.warn(f"{e}; retraining it", stacklevel=3)
                return None
            if rec.get("format") != RUN_FORMAT:
                _refuse_older(f, f"method run file of {run!r} (seed {s})")
            if rec.get("run_hash") != rhash:
                return None
            for need, sub in ((break_step is not None, "checkpoints"), (save_final, "final")):
                if need and _meta(work / sub / f"{run}__seed{s}") is None:
                    return None
            out[s] = rec
        return out

    with work_lock(work):
        done = finished()
        if done is not None:
            return done
        spec = _MethodRun(run, method, seeds, extras, stop, break_step, tuple(eval_steps), checkpoint_every, rhash)
        return _train(loop, data, work, spec, bar, save_final)


@dataclasses.dataclass(frozen=True)
class _MethodRun:
    run: str
    method: str
    seeds: list[int]
    extras: list[Any] | None
    stop: int
    break_step: int | None
    eval_steps: tuple[int, ...]
    checkpoint_every: int
    rhash: str


def _train(loop: Loop, data: SweepData, work: Path, spec: _MethodRun, bar: Any, save_final: bool) -> dict[int, dict]:
    policy, cfg, seeds, run, stop, brk = loop.policy, loop.cfg, spec.seeds, spec.run, spec.stop, spec.break_step
    chash = config_hash(cfg, data)
    runs = Runs(loop, data, seeds, extras=spec.extras)
    rows: dict[int, list[dict]] = {s: [] for s in seeds}
    break_records: dict[int, list[dict]] = {}
    step = 0
    resume_dir = work / "resume" / run
    meta = _meta(resume_dir)
    if meta is not None and meta.get("format") != RUN_FORMAT:
        _refuse_older(resume_dir, f"resume checkpoint of run {run!r}")
    if meta is not None and meta.get("run_hash") == spec.rhash and meta.get("seeds") == seeds:
        if meta.get("size") == runs.size:
            target = {"train": runs.states, "policy": runs.policy_states}
            got = restore_checkpoint(resume_dir, target, chash, what=f"resume checkpoint of run {run!r}")
            runs.states, runs.policy_states = list(got["train"]), list(got["policy"])
            step = int(meta["step"])
            rows = {int(k): v for k, v in meta["rows"].items()}
            break_records = {int(k): v for k, v in meta["break_records"].items()}

    at_start = step == 0 and 0 in spec.eval_steps  # the untrained model (e.g. the start of a Skill-It graph run)
    evals = {s for s in spec.eval_steps if 0 < s <= stop} | ({0} if at_start else set())
    if cfg.eval_every:
        evals |= set(range(cfg.eval_every, stop + 1, cfg.eval_every))
    evals |= {stop} | ({brk} if brk is not None else set())
    n = spec.checkpoint_every
    schedule = Schedule(
        step,
        stop,
        evals=evals,
        observe=[s for s in policy.observe_steps() if s < stop],
        checkpoints=range(n, stop, n) if n else (),
        marks=({brk} if brk is not None else set()) | ({0} if at_start else set()),
    )

    def record(at: int, split: str, es: Any) -> None:
        """Loss rows of every seed on ``es``, with the method's own mixture in the ``p_<g>`` columns."""
        losses, cur = runs.evaluate(es), runs.current()
        for i, s in enumerate(seeds):
            cols = dict(kind="method", parent="", break_step=brk or -1, steps_run=-1, method=spec.method)
            rows[s] += loss_rows(run, s, tuple(map(float, cur[i])), data.names, at, split, losses[i], **cols)

    def at(b: int, runs: Runs) -> None:
        if b in schedule.evals:
            record(b, "val", runs.val)
        if b == brk:
            for i, s in enumerate(seeds):
                save_checkpoint(
                    work / "checkpoints" / f"{run}__seed{s}",
                    {"train": runs.state(i)},
                    {
                        "config_hash": chash,
                        "run": run,
                        "seed": s,
                        "step": b,
                        "method": spec.method,
                        "model": cfg.model.to_dict(),
                    },
                )
                break_records[s] = _records(policy, jax.device_get(runs.policy_state(i)), b)
        if b in schedule.checkpoints:
            save_checkpoint(
                resume_dir,
                {"train": runs.states, "policy": runs.policy_states},
                {
                    "format": RUN_FORMAT,
                    "config_hash": chash,
                    "run_hash": spec.rhash,
                    "seeds": seeds,
                    "size": runs.size,
                    "step": b,
                    "rows": {str(k): v for k, v in rows.items()},
                    "break_records": {str(k): v for k, v in break_records.items()},
                },
            )

    t0 = time.perf_counter()
    train(runs, schedule, at, bar)
    record(stop, "test", runs.test)
    seconds = time.perf_counter() - t0
    trained = len(seeds) * (stop - step)
    out = {}
    for i, s in enumerate(seeds):
        ps = jax.device_get(runs.policy_state(i))
        recs = break_records.get(s) if brk is not None else _records(policy, ps, stop)
        if save_final:
            save_checkpoint(
                work / "final" / f"{run}__seed{s}",
                {"params": runs.state(i).params},
                {"config_hash": chash, "run": run, "seed": s, "step": stop, "method": spec.method},
            )
        rec = {
            "format": RUN_FORMAT,
            "run_hash": spec.rhash,
            "run": run,
            "seed": s,
            "method": spec.method,
            "policy": policy.config(),
            "rows": rows[s],
            "records": recs,
            "outputs": policy.outputs(ps),
            "seconds": seconds,
            "run_steps": trained,
        }
        write_verified_json(work / "runs" / f"{run}__seed{s}.json", rec)
        out[s] = rec
    if spec.checkpoint_every and resume_dir.exists():
        import shutil

        shutil.rmtree(resume_dir, ignore_errors=True)  # the finished runs/ files supersede it
    return out
