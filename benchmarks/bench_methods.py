"""Training cost per step of each online mixing method, relative to stratified, measured in one run.

For each policy the runs go through the one training loop (``jaxlaws.train.loop``: a ``Loop`` and its
``Runs``, whose ``advance`` is the segment call of every sweep and method run): compiled once (warm-up segment),
then timed on ``--steps`` steady-state steps (best of ``--repeats``), for ``--seeds`` runs trained together.
Two baselines in the same run: the static sweeps' loop (the constant mixer with the sweeps' sampler) and
``Constant`` as a method's policy.
Aioli's and Skill-It's held-out probe evaluations are timed per call and amortised over their schedule.

    python benchmarks/bench_methods.py --groups code,literature --steps 40
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", default="code,literature")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--total-steps", type=int, default=1000)
    ap.add_argument("--out", default=None, help="append the markdown table to this file")
    ap.add_argument("--methods", default="stratified,skillit,doremi,doge,aioli")
    args = ap.parse_args()

    from jaxlaws.train import data as D
    from jaxlaws.train.cli import load_data
    from jaxlaws.train.loop import Loop, Runs
    from jaxlaws.train.methods.run import load_final_params  # noqa: F401  (import cost outside timing)
    from jaxlaws.train.methods.sweep import make_policy
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.step import run_keys
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    groups = load_data("bundled", args.groups, args.seq_len, args.batch_size)
    model = preset(args.preset, vocab_size=groups.vocab_size)
    cfg = TrainConfig(
        model,
        OptimConfig(total_steps=args.total_steps, warmup_steps=args.total_steps // 10, lr=2e-3),
        args.batch_size,
        args.seq_len,
        eval_batch_size=64,
    )
    data = prepare_data(groups, cfg, 64)
    m = len(data.names)
    seeds = list(range(args.seeds))

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            jax.block_until_ready(fn())
            best = min(best, time.perf_counter() - t)
        return best

    rows = []
    # the static sweeps' loop (the constant mixer, the sweeps' sampler), through the one loop's Runs
    static = Runs(
        Loop(cfg, m, sampler=D.sample_batch), data, seeds, policy_states=[np.full(m, 1 / m, np.float32)] * len(seeds)
    )
    static.advance(args.steps)  # compile + warm-up

    def static_step():
        static.advance(args.steps)
        return static.states[0].params

    t_static = timed(static_step) / args.steps
    rows.append(("static loop (sweeps)", t_static, None))

    ref = static.progs.init(jnp.stack([run_keys(s)[0] for s in seeds])).params
    extras = {
        "skillit": np.full((m, m), 0.1) + 0.3 * np.eye(m),
        "doremi": [jax.tree_util.tree_map(lambda x: x[i], ref) for i in range(len(seeds))],
    }
    for method in args.methods.split(","):
        pol = make_policy(method, m, cfg)
        ex = extras.get(method)
        if method == "skillit":
            ex = [pol.prepare_extra(ex)] * len(seeds)
        runs = Runs(Loop(cfg, m, pol), data, seeds, extras=ex)
        runs.advance(args.steps)  # compile + warm-up

        def step():
            runs.advance(args.steps)
            return runs.states[0].params

        t = timed(step) / args.steps
        obs = len(pol.observe_steps())
        t_obs = 0.0
        if obs:
            s0 = pol.observe_steps()[0]
            runs.observe(s0)

            def ob():
                runs.observe(s0)
                return runs.policy_states[0]

            t_obs = timed(ob) * obs / args.total_steps
        rows.append((method, t + t_obs, t_obs))

    # the static loop again at the end (best of both): the first timing of a run can catch start-up noise
    rows[0] = ("static loop (sweeps)", min(t_static, timed(static_step) / args.steps), None)
    base = rows[1][1]
    lines = [
        f"Machine: {platform.machine()} CPU ({os.cpu_count()} cores), jax {jax.__version__}, backend "
        f"{jax.default_backend()}; preset {args.preset}, batch {args.batch_size} x {args.seq_len}, m={m} "
        f"({args.groups}), {len(seeds)} run(s) per program, best of {args.repeats} x {args.steps} steps; "
        f"load average {os.getloadavg()[0]:.2f}.",
        "",
        "| loop | ms per run-step | of which probe evals (amortised) | vs stratified (policy loop) |",
        "|---|---|---|---|",
    ]
    for name, t, t_obs in rows:
        lines.append(
            f"| {name} | {1e3 * t / len(seeds):.2f} | "
            f"{'' if not t_obs else f'{1e3 * t_obs / len(seeds):.2f}'} | {t / base:.2f}x |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
