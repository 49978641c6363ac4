"""Training throughput on this machine, and a 9-run static sweep vmapped vs one run after another.

1. tokens/s of one run (jitted ``lax.scan`` of train steps) for the ``tiny`` and ``small`` presets;
2. a 9-mixture static sweep (m=2 grid, one seed) trained as ONE vmapped program (``runs_per_program=9``) vs the
   same 9 runs as 9 programs one after another (``runs_per_program=1``): wall time of each (compilation
   included, since a sweep pays it) and the largest difference between their losses.

Usage: ``python benchmarks/bench_train.py [--steps 60] [--sweep-steps 100]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np


def throughput(name: str, steps: int, batch_size: int) -> tuple[float, float]:
    from jaxlaws.train import data as D
    from jaxlaws.train.model import n_params, preset
    from jaxlaws.train.optim import OptimConfig, make_optimizer
    from jaxlaws.train.step import ConstantPolicy, TrainData, init_state, make_run_steps, run_keys

    model = preset(name, vocab_size=D.BYTE_VOCAB_SIZE)
    groups = D.load_groups("bundled", names=["code", "literature"], seq_len=model.context)
    tr = groups.split("train")
    data = TrainData(jnp.asarray(tr.tokens.astype(np.int32)), jnp.asarray(tr.starts), jnp.asarray(tr.lengths))
    opt = make_optimizer(OptimConfig(total_steps=1000, warmup_steps=10))
    ik, dk = run_keys(0)
    state = jax.jit(init_state, static_argnums=(0, 1))(model, opt, ik)
    run = jax.jit(make_run_steps(model, opt, 2, batch_size, model.context, D.sample_batch), static_argnums=4)
    p = ConstantPolicy().init(None, jnp.array([0.5, 0.5]))
    jax.block_until_ready(run(state, p, dk, data, steps))  # compile
    t = time.perf_counter()
    jax.block_until_ready(run(state, p, dk, data, steps))
    dt = time.perf_counter() - t
    return steps * batch_size * model.context / dt, n_params(state.params) / 1e6


def sweep_compare(steps: int) -> dict:
    from jaxlaws.sweeps.dirichlet import two_group_grid
    from jaxlaws.train import data as D
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data, static_sweep

    model = preset("tiny", vocab_size=D.BYTE_VOCAB_SIZE)
    cfg = TrainConfig(model, OptimConfig(total_steps=steps, warmup_steps=steps // 10, lr=2e-3), batch_size=8)
    groups = D.load_groups("bundled", names=["code", "literature"], seq_len=model.context, batch_size=8)
    data = prepare_data(groups, cfg, max_eval_chunks=16)
    out = {}
    for k in (9, 1):
        with tempfile.TemporaryDirectory() as work:
            t = time.perf_counter()
            sw = static_sweep(data, cfg, two_group_grid(), [0], work, runs_per_program=k, progress=False,
                              write=False)
            out[k] = (time.perf_counter() - t, sw.losses.sort_values(["run", "split", "group"]).loss.to_numpy())
    return {"vmapped_s": out[9][0], "sequential_s": out[1][0],
            "max_abs_diff": float(np.abs(out[9][1] - out[1][1]).max())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40, help="timed steps per throughput measurement")
    ap.add_argument("--sweep-steps", type=int, default=100)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {len(jax.devices())} CPU device(s), jax {jax.__version__}\n")
    print("| preset | params (M) | batch x context | tokens/s |\n|---|---|---|---|")
    for name in ("tiny", "small"):
        tps, npar = throughput(name, args.steps, 8)
        from jaxlaws.train.model import PRESETS
        print(f"| {name} | {npar:.2f} | 8 x {PRESETS[name]['context']} | {tps:,.0f} |", flush=True)
    r = sweep_compare(args.sweep_steps)
    print(f"\n9-run static sweep, tiny, {args.sweep_steps} steps, batch 8 x 128 (compile + train + eval):\n")
    print("| mode | wall s | ratio |\n|---|---|---|")
    print(f"| 9 runs one after another (runs_per_program=1) | {r['sequential_s']:.1f} | 1.00 |")
    print(f"| 9 runs in one vmapped program (runs_per_program=9) | {r['vmapped_s']:.1f} | "
          f"{r['sequential_s'] / r['vmapped_s']:.2f}x faster |")
    print(f"\nlargest |loss difference| between the two: {r['max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
