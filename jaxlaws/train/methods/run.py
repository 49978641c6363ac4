"""Train a policy's runs (one per seed, vmapped), resumably; break them for the method-analysis children.

:func:`train_policy` trains the runs ``run`` x ``seeds`` of one policy from step 0 to ``stop``:

* the host walks a static schedule of boundaries (the policy's ``observe_steps``, the evaluation steps, the
  break step ``B``, the resume checkpoints and ``stop``); between two boundaries one compiled, vmapped program
  trains the segment (``base.make_policy_run``), and at a boundary a second one evaluates the probe set and
  lets the policy observe it (``base.make_observe``) -- the losses never leave the device;
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
per-seed inputs, schedule) is not retrained.
"""

from __future__ import annotations

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
from jaxlaws.train.methods.base import MethodData, Policy
from jaxlaws.train.step import run_keys
from jaxlaws.train.sweep import (
    RunSpec,
    SweepData,
    TrainConfig,
    _config_hash,
    _fingerprint,
    _programs,
    _rows,
    _stack,
    default_vmap_width,
)

__all__ = ["train_policy", "load_final_params", "run_hash"]


def run_hash(cfg: TrainConfig, data: SweepData, policy: Policy, extras: Any, stop: int, break_step: int | None) -> str:
    blob = json.dumps(
        {
            "sweep": _config_hash(cfg, data),
            "policy": policy.config(),
            "stop": stop,
            "break": break_step,
            "probe": data.probe.n,
            "extras": _fingerprint(*map(np.asarray, jax.tree_util.tree_leaves(extras))) if extras is not None else None,
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
        _config_hash(cfg, data),
        what=f"final parameters of run {run!r} (seed {seed})",
    )
    return got["params"]


def train_policy(
    policy: Policy,
    data: SweepData,
    cfg: TrainConfig,
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
    vmap_width: int | str | None = "auto",
    bar: Any = None,
    save_final: bool = False,
    _fail_at: int | None = None,
) -> dict[int, dict]:
    """Train ``run`` (one run per seed) under ``policy`` to ``stop`` (default ``total_steps``); see the module
    docstring. ``extras[i]`` is seed ``i``'s per-run input to ``policy.init`` (a graph, reference params, a
    mixture). ``save_final`` keeps each seed's final parameters in ``final/`` (e.g. DoReMi's reference).
    Returns ``{seed: {"rows", "records", "outputs", "seconds", "run_steps"}}``. ``_fail_at``
    (tests only) raises once training has passed that step, after the boundary's checkpoint.
    """
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
    chash = _config_hash(cfg, data)
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
        return _train(
            policy,
            data,
            cfg,
            seeds,
            work,
            run,
            method,
            extras,
            stop,
            break_step,
            eval_steps,
            checkpoint_every,
            vmap_width,
            bar,
            save_final,
            _fail_at,
            chash,
            rhash,
        )


def _train(
    policy,
    data,
    cfg,
    seeds,
    work,
    run,
    method,
    extras,
    stop,
    break_step,
    eval_steps,
    checkpoint_every,
    vmap_width,
    bar,
    save_final,
    _fail_at,
    chash,
    rhash,
) -> dict[int, dict]:
    m = len(data.names)

    if vmap_width == "auto":
        vmap_width = default_vmap_width(cfg)
    progs = _programs(cfg, m, None, vmap_width, policy)
    n_pad, size = progs.layout(len(seeds))
    padded = seeds + [seeds[-1]] * (n_pad - len(seeds))
    ex = list(extras) if extras is not None else [None] * len(seeds)
    ex = ex + [ex[-1]] * (n_pad - len(seeds))
    calls = [list(range(i, i + size)) for i in range(0, n_pad, size)]

    def fresh(idx: list[int]):
        st = progs.init(jnp.stack([run_keys(padded[i])[0] for i in idx]))
        pkeys = jnp.stack([jax.random.fold_in(run_keys(padded[i])[0], 0xA101) for i in idx])
        extra = None if ex[0] is None else _stack([jax.tree_util.tree_map(jnp.asarray, ex[i]) for i in idx])
        return st, progs.policy_init(pkeys, extra)

    states, pstates = [], []
    for c in calls:
        st, ps = fresh(c)
        states.append(st)
        pstates.append(ps)
    rows: dict[int, list[dict]] = {s: [] for s in seeds}
    break_records: dict[int, list[dict]] = {}
    step = 0
    resume_dir = work / "resume" / run
    meta = _meta(resume_dir)
    if meta is not None and meta.get("run_hash") == rhash and meta.get("seeds") == seeds and meta.get("size") == size:
        target = {"train": states, "policy": pstates}
        got = restore_checkpoint(resume_dir, target, chash, what=f"resume checkpoint of run {run!r}")
        states, pstates = list(got["train"]), list(got["policy"])
        step = int(meta["step"])
        rows = {int(k): v for k, v in meta["rows"].items()}
        break_records = {int(k): v for k, v in meta["break_records"].items()}
    states = [progs.shard(s) for s in states]
    pstates = [progs.shard(p) for p in pstates]
    dkeys = [progs.shard(jnp.stack([run_keys(padded[i])[1] for i in c])) for c in calls]
    mdata = progs.replicate(MethodData(data.train, data.val_windows, data.probe))
    val, test = progs.replicate((data.val, data.test))

    observe = {s for s in policy.observe_steps() if s < stop}
    evals = {s for s in eval_steps if 0 < s <= stop}
    if cfg.eval_every:
        evals |= set(range(cfg.eval_every, stop + 1, cfg.eval_every))
    evals |= {stop} | ({break_step} if break_step is not None else set())
    ckpts = set(range(checkpoint_every, stop, checkpoint_every)) if checkpoint_every else set()
    boundaries = sorted(b for b in observe | evals | ckpts | {stop} if b > step)

    def per_seed(arrs: list) -> np.ndarray:
        return np.concatenate([np.asarray(a) for a in arrs])[: len(seeds)]

    def one(trees: list, i: int) -> Any:
        """Seed ``i``'s slice of per-call stacked trees."""
        c, j = divmod(i, size)
        return jax.tree_util.tree_map(lambda x: x[j], trees[c])

    def observe_all() -> None:
        for k in range(len(calls)):
            pstates[k], _ = progs.observe(states[k].params, pstates[k], mdata.probe, jnp.int32(step))

    def record(at: int, split: str, es: Any) -> None:
        """Loss rows of every seed on ``es``, with the method's own mixture in the ``p_<g>`` columns."""
        losses = per_seed([progs.evaluate(st.params, es) for st in states])
        cur = per_seed([progs.current(ps) for ps in pstates])
        for i, s in enumerate(seeds):
            spec = RunSpec(
                run, s, tuple(map(float, cur[i])), "method", 0, stop, break_step=break_step or -1, method=method
            )
            rows[s] += _rows(spec, data.names, at, split, losses[i])

    t0, trained = time.perf_counter(), 0
    if step == 0 and 0 in observe:
        observe_all()
    if step == 0 and 0 in eval_steps:  # the untrained model (e.g. the start of a Skill-It graph run)
        record(0, "val", val)
    for b in boundaries:
        n = jnp.int32(b - step)
        for k in range(len(calls)):
            states[k], pstates[k] = progs.train(states[k], pstates[k], dkeys[k], mdata, n)
        if bar is not None:
            bar.update(len(seeds) * (b - step))
        trained += len(seeds) * (b - step)
        step = b
        if b in observe:
            observe_all()
        if b in evals:
            record(b, "val", val)
        if b == break_step:
            for i, s in enumerate(seeds):
                save_checkpoint(
                    work / "checkpoints" / f"{run}__seed{s}",
                    {"train": one(states, i)},
                    {
                        "config_hash": chash,
                        "run": run,
                        "seed": s,
                        "step": b,
                        "method": method,
                        "model": cfg.model.to_dict(),
                    },
                )
                break_records[s] = _records(policy, jax.device_get(one(pstates, i)), b)
        if b in ckpts:
            save_checkpoint(
                resume_dir,
                {"train": states, "policy": pstates},
                {
                    "config_hash": chash,
                    "run_hash": rhash,
                    "seeds": seeds,
                    "size": size,
                    "step": b,
                    "rows": {str(k): v for k, v in rows.items()},
                    "break_records": {str(k): v for k, v in break_records.items()},
                },
            )
        if _fail_at is not None and b >= _fail_at:
            raise RuntimeError(f"test hook: stopping {run!r} at step {b}")
    record(stop, "test", test)
    seconds = time.perf_counter() - t0
    out = {}
    for i, s in enumerate(seeds):
        ps = jax.device_get(one(pstates, i))
        recs = break_records.get(s) if break_step is not None else _records(policy, ps, stop)
        if save_final:
            save_checkpoint(
                work / "final" / f"{run}__seed{s}",
                {"params": one(states, i).params},
                {"config_hash": chash, "run": run, "seed": s, "step": stop, "method": method},
            )
        rec = {
            "run_hash": rhash,
            "run": run,
            "seed": s,
            "method": method,
            "policy": policy.config(),
            "rows": rows[s],
            "records": recs,
            "outputs": policy.outputs(ps),
            "seconds": seconds,
            "run_steps": trained,
        }
        write_verified_json(work / "runs" / f"{run}__seed{s}.json", rec)
        out[s] = rec
    if checkpoint_every and resume_dir.exists():
        import shutil

        shutil.rmtree(resume_dir, ignore_errors=True)  # the finished runs/ files supersede it
    return out
