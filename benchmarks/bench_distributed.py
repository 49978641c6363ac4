"""Weak scaling of a multi-process sweep on this machine, and an estimate of the paper's full study.

1. **Measured** (``python benchmarks/bench_distributed.py``): a static sweep of ``R`` runs per process, each
   process pinned to its own core (``taskset``), with

   * ``1 proc, R runs``     -- the baseline: one plain process, no ``jax.distributed``;
   * ``1 proc, 2R runs``    -- the same process with twice the work (what 2 processes should halve);
   * ``2 procs, 2R runs``   -- ``jax.distributed`` over 2 local processes (gloo), R runs each.

   Weak-scaling efficiency = T(1 proc, R) / T(2 procs, 2R) (1.0 is ideal); speed-up = T(1 proc, 2R) /
   T(2 procs, 2R). Times are the sweep call (training, evaluation, run files, assembly) and the whole job
   (start-up, compilation) in seconds. The load average is recorded before and after.

2. **Estimated** (``--estimate``): the wall time of the paper's study at Pythia-160M on a named accelerator slice,
   from the run list of the study (the original's ``scripts/``: models, steps, sweeps, methods), the per-step
   cost ratios of the methods measured by ``benchmarks/bench_methods.py`` (RESULTS.md) and a FLOP model of a
   160M step. Labelled as an estimate; its assumptions are printed with it.

Results go to ``benchmarks/results/distributed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "distributed.md"


# ----------------------------------------------------------------------------------------------------------------
# 1. measured weak scaling


def worker(pid: int, n: int, port: int, runs: int, steps: int, work: str) -> None:
    t_start = time.perf_counter()
    import numpy as np

    if n > 1:
        from jaxlaws.distributed import barrier, initialize

        initialize(f"127.0.0.1:{port}", n, pid, timeout_s=120)
    from jaxlaws.train import data as D
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data, static_sweep

    groups = D.synthetic_groups(2, overlap=0.3, seed=0, n_tokens=50_000)
    model = preset("tiny", vocab_size=groups.vocab_size, context=64)
    cfg = TrainConfig(model, OptimConfig(total_steps=steps, warmup_steps=steps // 10, lr=1e-3), batch_size=8)
    data = prepare_data(groups, cfg, max_eval_chunks=8)
    total = runs * n
    a = (np.arange(total) + 1) / (total + 1)
    mix = np.stack([a, 1 - a], 1)
    if n > 1:
        barrier("bench start", 300)
    t0 = time.perf_counter()
    sweep = static_sweep(data, cfg, mix, [0], work, runs_per_program=runs, progress=False)
    t1 = time.perf_counter()
    if pid == 0:
        loss = sweep.losses[sweep.losses.split == "test"].sort_values(["run", "group"])["loss"].tolist()
        print(json.dumps({"sweep_s": t1 - t0, "job_s": t1 - t_start, "runs": len(sweep.runs()), "loss": loss}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(n: int, runs: int, steps: int) -> dict:
    port, work = _free_port(), tempfile.mkdtemp(prefix="bench_dist_")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "taskset",
                "-c",
                str(i),
                sys.executable,
                __file__,
                "--worker",
                str(i),
                str(n),
                str(port),
                str(runs),
                str(steps),
                work,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    outs = [p.communicate(timeout=1800) for p in procs]
    wall = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(f"worker failed: {err[-2000:]}")
    res = json.loads(outs[0][0].strip().splitlines()[-1])
    return {**res, "wall_s": wall}


def measure(runs: int, steps: int) -> str:
    import numpy as np

    load0 = os.getloadavg()
    one = _job(1, runs, steps)
    one2 = _job(1, 2 * runs, steps)
    two = _job(2, runs, steps)
    load1 = os.getloadavg()
    diff = float(np.max(np.abs(np.asarray(two["loss"]) - np.asarray(one2["loss"]))))
    rows = [("1 proc, R runs (baseline)", one), ("1 proc, 2R runs", one2), ("2 procs, 2R runs (R each)", two)]
    lines = [
        f"Machine: {os.cpu_count()}-core x86_64 CPU, jax backend cpu, one core per process (taskset); preset "
        f"tiny (context 64), batch 8, {steps} steps per run, R = {runs} runs per process, synthetic data "
        f"(2 groups). Load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; after: "
        f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (other engineers' jobs share the 2 cores).",
        "",
        "| job | runs | sweep call s | whole job s (start-up + compile) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {r['runs']} | {r['sweep_s']:.2f} | {r['wall_s']:.2f} |" for name, r in rows]
    lines += [
        "",
        f"Weak-scaling efficiency T(1 proc, R) / T(2 procs, 2R): sweep call "
        f"{one['sweep_s'] / two['sweep_s']:.2f}, whole job {one['wall_s'] / two['wall_s']:.2f} (ideal 1.00).",
        f"Speed-up of 2 processes on 2R runs over 1 process: sweep call {one2['sweep_s'] / two['sweep_s']:.2f}x, "
        f"whole job {one2['wall_s'] / two['wall_s']:.2f}x (ideal 2.00x).",
        f"Max |test-loss difference| 2 procs vs 1 proc, same 2R runs: {diff:.1e} (synthetic data).",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# 2. estimate of the paper's study

# Per-step cost of each method relative to a static run, measured by benchmarks/bench_methods.py (RESULTS.md,
# "Training cost per step", tiny preset on CPU), for m=2 and m=3; m=7 uses the m=3 ratios (DoGE's grows with m).
COST = {
    2: {"static": 1.0, "stratified": 1.0, "skillit": 1.06, "doremi": 1.30, "doge": 2.08, "aioli": 1.07},
    3: {"static": 1.0, "stratified": 1.0, "skillit": 1.06, "doremi": 1.48, "doge": 3.85, "aioli": 1.15},
}
# Break step B / child length R of each method's A^{t*} children (the original's ``scripts/``).
BREAK = {
    2: {"aioli": (1000, 100), "doge": (500, 100), "doremi": (500, 100), "skillit": (1000, 100)},
    3: {"aioli": (1500, 500), "doge": (1000, 100), "doremi": (1000, 500), "skillit": (1000, 100)},
}
SLICES = {
    "TPU v5e-8 (8 chips x 197 bf16 TFLOP/s)": 8 * 197e12,
    "8 x NVIDIA H100 SXM (8 x 989 dense bf16 TFLOP/s)": 8 * 989e12,
}
MFU = 0.35  # assumed model-FLOP utilisation (several 160M runs vmapped per chip to fill it)
EVAL_OVERHEAD = 0.05  # assumed: val evaluation every 250 steps


def study_steps() -> dict[str, float]:
    """Static-run-equivalent training steps (batch 8 x 2048) of the study, per setting."""
    out = {}
    seeds = 5
    for m in (2, 3):
        s = 0.0
        s += 9 * seeds * 5000  # static sweep: 9 mixtures per seed, 5000 steps
        s += 9 * 2000 + 9 * 9 * 100  # dynamic law: 9 parents to B=2000, 9 children each, R=100
        c = COST[m]
        per_seed = (
            5000 * c["stratified"]
            + 5000 * c["skillit"]
            + 5000 * c["aioli"]
            + 10000 * c["doremi"]
            + 5000  # DoReMi proxy (batch 4 x 2 accumulation) + its static run
            + 5000 * c["doge"]
            + 5000  # DoGE + its static run
            + 2 * 5000
        )  # grid search and DML: one static run each at their mixture
        per_seed += sum(9 * r for _, r in BREAK[m].values())  # A^{t*}: 9 children of each method run
        out[f"m={m}"] = s + seeds * per_seed
    c = COST[3]
    out["m=7"] = seeds * 40000 * (c["stratified"] + c["skillit"] + c["aioli"] + c["doremi"] + 1 + c["doge"] + 1)
    return out


def study_estimate() -> str:
    import jax

    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig, make_optimizer
    from jaxlaws.train.step import init_state

    mc = preset("pythia-160m")
    shapes = jax.eval_shape(
        lambda k: init_state(mc, make_optimizer(OptimConfig(total_steps=5000)), k), jax.random.key(0)
    ).params
    n_params = sum(int(x.size) for x in jax.tree_util.tree_leaves(shapes))
    T, B = 2048, 8
    flops_token = 6 * n_params + 12 * mc.n_layers * T * mc.d_model  # weights + attention (fwd + bwd)
    flops_step = flops_token * T * B
    steps = study_steps()
    total = sum(steps.values())
    lines = [
        "**ESTIMATE, not a measurement** (no accelerator was available to this session).",
        "",
        f"Assumptions: Pythia-160M as jaxlaws' `pythia-160m` preset ({n_params / 1e6:.0f}M parameters), batch "
        f"8 x 2048; {flops_token / 1e9:.2f} GFLOP per token (6 N + 12 L T d), {flops_step / 1e12:.1f} TFLOP "
        f"per step; {MFU:.0%} model-FLOP utilisation; +{EVAL_OVERHEAD:.0%} for evaluations; the methods' "
        "per-step cost ratios measured on CPU (RESULTS.md: DoGE 2.08x/3.85x, DoReMi 1.30x/1.48x, Aioli "
        "1.07x/1.15x, Skill-It 1.06x) hold on the accelerator; 5 seeds everywhere; m=7 is the five methods "
        "plus the DoReMi/DoGE static runs at 40,000 steps (no law sweeps); Skill-It's graph runs and "
        "DoReMi's reference model (the stratified run) add nothing. Runs are independent, so the slice is "
        "used as P independent workers (`--distributed`; load imbalance ignored).",
        "",
        "| setting | static-equivalent steps | PFLOP |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v:,.0f} | {v * flops_step / 1e15:,.0f} |" for k, v in steps.items()]
    lines += [
        f"| total | {total:,.0f} | {total * flops_step / 1e15:,.0f} |",
        "",
        "| slice | estimated wall time |",
        "|---|---|",
    ]
    for name, peak in SLICES.items():
        hours = total * flops_step * (1 + EVAL_OVERHEAD) / (peak * MFU) / 3600
        lines.append(f"| {name} | {hours:,.0f} h ({hours / 24:.1f} days) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=6, metavar=("PID", "N", "PORT", "RUNS", "STEPS", "WORK"))
    ap.add_argument("--runs", type=int, default=4, help="runs per process (R)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--estimate", action="store_true", help="only print the study estimate")
    a = ap.parse_args()
    if a.worker:
        pid, n, port, runs, steps, work = a.worker
        return worker(int(pid), int(n), int(port), int(runs), int(steps), work)
    est = study_estimate()
    print(est)
    if a.estimate:
        return
    meas = measure(a.runs, a.steps)
    print(meas)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        "# Multi-process sweeps (`python benchmarks/bench_distributed.py`)\n\n## Weak scaling, measured\n\n"
        + meas
        + "\n\n## The paper's full study at Pythia-160M\n\n"
        + est
        + "\n"
    )


if __name__ == "__main__":
    main()
