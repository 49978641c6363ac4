"""Training throughput on this machine, and a 9-run static sweep in one program vs one run after another.

1. tokens/s of one run (the jitted training loop, constant mixer) for the ``tiny`` and ``small`` presets;
2. steady-state (compiled) time per run-step of one run, of 9 runs in one fully vmapped program, and of 9 runs
   the way a sweep now trains them (``default_vmap_width`` runs vmapped per call, successive calls);
   evaluation time per run; compile time -- for two regimes: ``tiny`` at batch 8 x 128
   (one run already keeps the 2 cores busy) and ``micro`` (1 layer, width 32, context 16, batch 8:
   the test-suite model, where one run leaves a core idle);
3. the whole 9-mixture static sweep (m=2 grid, one seed; compile + train + eval, each mode in a fresh
   process): ``runs_per_program=1`` vs ``runs_per_program=9`` (fully vmapped, and with the automatic vmap
   width), also with the run axis sharded over the two cores exposed as two XLA host devices, and the largest
   loss difference to the one-after-another sweep.

Usage: ``python benchmarks/bench_train.py [--steps 20] [--sweep-steps 60] [--micro-steps 1000]``; prints
markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REGIMES = {"tiny": {}, "micro": dict(n_layers=1, d_model=32, n_heads=2, d_ff=64, context=16)}
K = 9


def _setup(regime: str, steps: int):
    from jaxlaws.train import data as D
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    model = preset("tiny", vocab_size=D.BYTE_VOCAB_SIZE, **REGIMES[regime])
    cfg = TrainConfig(model, OptimConfig(total_steps=steps, warmup_steps=max(1, steps // 10), lr=2e-3), batch_size=8)
    groups = D.load_groups("bundled", names=["code", "literature"], seq_len=model.context, batch_size=8)
    return cfg, prepare_data(groups, cfg, max_eval_chunks=16)


def throughput(name: str, steps: int, batch_size: int) -> tuple[float, float]:
    import jax
    import jax.numpy as jnp

    from jaxlaws.train import data as D
    from jaxlaws.train.methods.base import Constant, MethodData, make_policy_run
    from jaxlaws.train.model import n_params, preset
    from jaxlaws.train.optim import OptimConfig, make_optimizer
    from jaxlaws.train.step import TrainData, init_state, run_keys

    model = preset(name, vocab_size=D.BYTE_VOCAB_SIZE)
    groups = D.load_groups("bundled", names=["code", "literature"], seq_len=model.context)
    tr = groups.split("train")
    data = TrainData(jnp.asarray(tr.tokens.astype(np.int32)), jnp.asarray(tr.starts), jnp.asarray(tr.lengths))
    opt = make_optimizer(OptimConfig(total_steps=1000, warmup_steps=10))
    ik, dk = run_keys(0)
    state = jax.jit(init_state, static_argnums=(0, 1))(model, opt, ik)
    policy = Constant(2, model, OptimConfig(total_steps=1000, warmup_steps=10), batch_size, model.context, (0.5, 0.5))
    run = jax.jit(make_policy_run(policy, opt, D.sample_batch))
    p, data, n = policy.init(None), MethodData(data), jnp.int32(steps)
    jax.block_until_ready(run(state, p, dk, data, n))  # compile
    t = time.perf_counter()
    jax.block_until_ready(run(state, p, dk, data, n))
    dt = time.perf_counter() - t
    return steps * batch_size * model.context / dt, n_params(state.params) / 1e6


def steady_state(regime: str, steps: int, reps: int = 3) -> dict:
    """ms per run-step and per run-evaluation (compiled), and compile seconds, for K=1 and K=9 layouts."""
    import jax
    import jax.numpy as jnp

    from jaxlaws.train import data as D
    from jaxlaws.train.loop import Loop
    from jaxlaws.train.methods.base import MethodData
    from jaxlaws.train.step import run_keys
    from jaxlaws.train.sweep import default_vmap_width

    cfg, data = _setup(regime, 10 * steps)
    mdata = MethodData(data.train)
    out = {"auto_width": default_vmap_width(cfg)}
    for label, k, width in (
        ("one run", 1, None),
        ("9 runs, full vmap", K, None),
        ("9 runs, auto vmap width", K, out["auto_width"]),
    ):
        progs = Loop(cfg, 2, sampler=D.sample_batch, vmap_width=width).programs
        n, size = progs.layout(k)
        calls = range(0, n, size)

        def fresh():
            return [
                (
                    progs.init(jnp.stack([run_keys(s)[0] for s in range(i, i + size)])),  # noqa: E731
                    jnp.full((size, 2), 0.5, jnp.float32),
                )
                for i in calls
            ]

        dks = [jnp.stack([run_keys(s)[1] for s in range(i, i + size)]) for i in calls]
        nj = jnp.int32(steps)
        train = lambda args: [progs.train(*a, dk, mdata, nj) for a, dk in zip(args, dks)]  # noqa: E731
        args = fresh()
        t = time.perf_counter()
        jax.block_until_ready(progs.train.lower(*args[0], dks[0], mdata, nj).compile())
        compile_s = time.perf_counter() - t
        jax.block_until_ready(train(args))  # warm-up
        best = np.inf
        for _ in range(reps):
            args = fresh()  # the states are donated
            jax.block_until_ready(args)
            t = time.perf_counter()
            jax.block_until_ready(train(args))
            best = min(best, time.perf_counter() - t)
        params = [a[0].params for a in fresh()]
        evaluate = lambda: [progs.evaluate(p, data.val) for p in params]  # noqa: E731
        jax.block_until_ready(evaluate())
        ev = np.inf
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(evaluate())
            ev = min(ev, time.perf_counter() - t)
        out[label] = {
            "ms_per_run_step": 1e3 * best / (steps * n),
            "eval_ms_per_run": 1e3 * ev / n,
            "compile_s": compile_s,
            "width": size,
            "n": n,
        }
    return out


def _sweep_once(regime: str, steps: int, runs_per_program: int, vmap_width: str) -> None:
    """(Subprocess) time one whole static sweep; print its wall time and losses as JSON."""
    import jax

    from jaxlaws.sweeps.dirichlet import two_group_grid
    from jaxlaws.train.sweep import static_sweep

    cfg, data = _setup(regime, steps)
    width = None if vmap_width == "all" else vmap_width if vmap_width == "auto" else int(vmap_width)
    with tempfile.TemporaryDirectory() as work:
        t = time.perf_counter()
        sw = static_sweep(
            data,
            cfg,
            two_group_grid(),
            [0],
            work,
            runs_per_program=runs_per_program,
            vmap_width=width,
            progress=False,
            write=False,
        )
        wall = time.perf_counter() - t
    loss = sw.losses.sort_values(["run", "split", "group"]).loss.to_numpy()
    print(json.dumps({"wall_s": wall, "loss": loss.tolist(), "devices": jax.local_device_count()}))


def sweep_compare(regime: str, steps: int) -> list[tuple[str, float, float]]:
    """Wall time of each mode (fresh process each) and max |loss - loss of the one-after-another sweep|."""
    modes = [
        ("9 runs one after another (runs_per_program=1)", 1, "auto", 1, False),
        ("runs_per_program=9, fully vmapped", 9, "all", 1, False),
        ("runs_per_program=9, auto vmap width", 9, "auto", 1, False),
        ("runs_per_program=9, auto width, run axis sharded over 2 XLA host devices", 9, "auto", 2, False),
    ]
    if shutil.which("taskset"):
        modes.insert(1, ("9 runs one after another, pinned to ONE core (taskset -c 0)", 1, "auto", 1, True))
    rows, ref = [], None
    for label, rpp, width, n_dev, pin in modes:
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        if n_dev > 1:
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n_dev}"
        cmd = (["taskset", "-c", "0"] if pin else []) + [
            sys.executable,
            __file__,
            "--_sweep",
            regime,
            str(steps),
            str(rpp),
            width,
        ]
        res = json.loads(
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        )
        loss = np.asarray(res["loss"])
        ref = loss if ref is None else ref
        rows.append((label, res["wall_s"], float(np.abs(loss - ref).max())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20, help="timed steps per throughput measurement")
    ap.add_argument("--sweep-steps", type=int, default=60, help="steps per run of the tiny sweep")
    ap.add_argument("--micro-steps", type=int, default=3000, help="steps per run of the micro sweep")
    ap.add_argument("--_sweep", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._sweep:
        regime, steps, rpp, width = args._sweep
        return _sweep_once(regime, int(steps), int(rpp), width)
    import jax

    from jaxlaws.train.model import PRESETS

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| preset | params (M) | batch x context | tokens/s |\n|---|---|---|---|")
    for name in ("tiny", "small"):
        tps, npar = throughput(name, args.steps, 8)
        print(f"| {name} | {npar:.2f} | 8 x {PRESETS[name]['context']} | {tps:,.0f} |", flush=True)
    for regime, steps in (("tiny", args.sweep_steps), ("micro", args.micro_steps)):
        ctx = PRESETS["tiny"]["context"] if regime == "tiny" else REGIMES[regime]["context"]
        ss = steady_state(regime, steps=20 if regime == "tiny" else 200)
        base = ss["one run"]["ms_per_run_step"]
        print(
            f"\n### {regime} (batch 8 x {ctx}): compiled programs, steady state (load average "
            f"{os.getloadavg()[0]:.2f})\n"
        )
        print(
            "| layout | runs vmapped per call | ms per run-step | speed-up | eval ms per run | compile s |\n"
            "|---|---|---|---|---|---|"
        )
        for label in ("one run", "9 runs, full vmap", "9 runs, auto vmap width"):
            r = ss[label]
            print(
                f"| {label} | {r['width']} | {r['ms_per_run_step']:.3f} | "
                f"{base / r['ms_per_run_step']:.2f}x | {r['eval_ms_per_run']:.2f} | {r['compile_s']:.2f} |",
                flush=True,
            )
        rows = sweep_compare(regime, steps)
        print(
            f"\n{regime}: whole 9-run static sweep, {steps} steps per run (compile + train + eval; fresh "
            f"process per mode; load average {os.getloadavg()[0]:.2f}):\n"
        )
        print("| mode | wall s | speed-up vs one after another | max abs loss diff |\n|---|---|---|---|")
        for label, wall, diff in rows:
            print(f"| {label} | {wall:.1f} | {rows[0][1] / wall:.2f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
