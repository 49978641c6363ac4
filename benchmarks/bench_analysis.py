"""Benchmark: the complete mixing-law analysis of a paper-sized synthetic sweep, against baselines.

Sweep (per setting m=2 and m=3): 5 seeds x 9 static mixtures; 9 parents x 9 children (seed 0); 4 methods x
5 seeds x 9 children. Everything is analysed by :func:`jaxlaws.analysis.pipeline.analyse` (static law with
the original's init grids -- 121 for m=2, 6,000 for m=3 --, optimum, dynamic laws, the four methods).

Baselines, measured in the same run on a subset and scaled by the problem counts:
  * ``one-at-a-time``: the same jaxlaws fits, one problem per call (the notebooks' loop), compiled once;
  * ``original-style``: the notebooks' fitter -- PyTorch L-BFGS (lr 0.01, history 10, max_iter 20, strong
    Wolfe), 100 outer steps per init, Huber(0.02), best over the trajectory -- on a few inits, scaled to the
    original's init counts (121 for m=2 static and dynamic, 6,000 for m=3 static, 300 for m=3 dynamic,
    30 for the m=3 A* fits, 1,331 / 5 for the scale fits). The original spread inits over a process pool;
    on this 2-core machine that is at best a 2x gain, reported as such.

Run: ``python benchmarks/bench_analysis.py [--quick]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np
import pandas as pd

import jaxlaws as jl
from jaxlaws.analysis._common import child_table
from jaxlaws.analysis.dynamic import dynamic_law
from jaxlaws.analysis.pipeline import analyse
from jaxlaws.sweeps import synthetic
from jaxlaws.sweeps.schema import Sweep


def build_sweeps(noise: float = 0.005) -> dict[int, Sweep]:
    """The library's paper-sized synthetic sweeps (static, dynamic 9 x 9, 4 methods x 5 seeds) for m=2, 3."""
    bundle = synthetic.reference_sweep_bundle(noise=noise)
    return {2: bundle["arxiv_stackexchange"][0], 3: bundle["arxiv_books_stackexchange"][0]}


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def one_at_a_time(sweep: Sweep, n_problems: int) -> dict[str, float]:
    """Seconds per problem when each fit is its own call (the notebooks' loop), after a warm-up call:
    the static law (original inits) and a linear dynamic law (closed form)."""
    groups, m = sweep.groups, sweep.m
    final = sweep.losses[(sweep.losses["kind"] == "static") & (sweep.losses["split"] == "val")]
    final = final[final["step"] == final["step"].max()]
    law = jl.laws.log_linear(m) if m > 2 else None  # laws are cached per signature: one compiled program
    kids = child_table(sweep, "val", ["parent"])
    dyn = dynamic_law("two_group" if m == 2 else "linear", m)
    t_static, t_linear = [], []
    for i in range(n_problems + 1):
        g, s = groups[i % m], (i // m) % 5
        d = final[(final["group"] == g) & (final["seed"] == s)]
        p, y = d[[f"p_{h}" for h in groups]].to_numpy(), d["loss"].to_numpy()
        t = time.perf_counter()
        if m == 2:
            jl.fit_static_two_stage(p[:, groups.index(g)], y, dtype="float64")
        else:
            inits = jl.laws.log_linear_inits(m, jax.random.key(i), own=groups.index(g))
            jl.fit(law, p, y, inits=inits, dtype="float64")
        t_static.append(time.perf_counter() - t)
        c = kids[kids["parent"] == kids["parent"].unique()[i % kids["parent"].nunique()]]
        x = c[[f"p_{h}" for h in groups]].to_numpy()
        t = time.perf_counter()
        jl.fit(dyn, x[:, :1] if m == 2 else x, c[f"L_{g}"].to_numpy(), dtype="float64")
        t_linear.append(time.perf_counter() - t)
    return {"static": float(np.median(t_static[1:])), "linear": float(np.median(t_linear[1:]))}


def torch_lbfgs_per_init(law: str, n_inits: int) -> float:
    """Seconds per init of the original's fitter on a 9-point problem (one process)."""
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    p = torch.tensor(rng.dirichlet(np.ones(3), size=9), dtype=torch.float32)
    if law == "m2_static":
        x = p[:, 0]
        f = lambda th: torch.exp(th[0] * x + th[1])  # noqa: E731
        y = f(torch.tensor([-2.5, -0.7])) + 0.003 * torch.randn(9)
        inits = [np.array([-2.4 + 0.1 * i, -0.5]) for i in range(n_inits)]
    elif law == "m3_static":
        f = lambda th: torch.exp(th[0]) + torch.exp(th[1] + p[:, :2] @ th[2:])  # noqa: E731
        y = f(torch.tensor([0.98, -0.82, -3.27, 0.84])) + 0.003 * torch.randn(9)
        inits = [np.array([-2 + 0.3 * i, -1.0, -0.5, 0.05]) for i in range(n_inits)]
    else:  # linear laws (dynamic, A*, scale)
        f = lambda th: th[0] + p[:, :2] @ th[1:]  # noqa: E731
        y = f(torch.tensor([3.4, -0.16, 0.03])) + 0.002 * torch.randn(9)
        inits = [np.array([0.5 + 0.5 * i, -0.1, 0.05]) for i in range(n_inits)]
    huber = torch.nn.HuberLoss(delta=0.02, reduction="sum")
    t = time.perf_counter()
    for init in inits:
        th = torch.tensor(init, dtype=torch.float32, requires_grad=True)
        opt = torch.optim.LBFGS([th], lr=0.01, history_size=10, max_iter=20, line_search_fn="strong_wolfe")
        best = float("inf")

        def closure():
            opt.zero_grad()
            loss = huber(f(th), y)
            loss.backward()
            return loss

        for _ in range(100):
            opt.step(closure)
            with torch.no_grad():
                best = min(best, float(huber(f(th), y)) / 9)
    return (time.perf_counter() - t) / len(inits)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer baseline samples")
    args = ap.parse_args()
    n_base = 2 if args.quick else 4
    lines = [
        f"machine: {platform.machine()} {jax.device_count()} device(s) ({jax.devices()[0].platform}), "
        f"{__import__('os').cpu_count()} CPU cores; jax {jax.__version__}, numpy {np.__version__}, "
        f"pandas {pd.__version__}"
    ]
    sweeps = build_sweeps()
    for m, sw in sweeps.items():
        lines.append(f"m={m} sweep: {len(sw.losses)} loss rows, {len(sw.matrices)} matrix entries")
    first, second = {}, {}
    for m, sw in sweeps.items():
        first[m], _ = timed(analyse, sw)
    for m, sw in sweeps.items():
        second[m], res = timed(analyse, sw)
        sims = {k: round(float(v.averages.loc["mean", "sim"]), 3) for k, v in res.methods.items()}
        lines.append(
            f"m={m}: first call (compile + run) {first[m]:.2f} s, warm {second[m]:.2f} s; "
            f"static R2 {res.static.summary['r2_mean'].iloc[0]:.4f}; mean sim {sims}"
        )
    warm = sum(second.values())
    lines.append(f"complete analysis (m=2 + m=3), warm: {warm:.2f} s; first call: {sum(first.values()):.2f} s")

    # baseline 1: the same jaxlaws fits, one problem per call (the notebooks' loop), scaled to the counts
    for m, sw in sweeps.items():
        per = one_at_a_time(sw, n_base)
        n_static = m * 5
        # dynamic (two_group for m=2; linear and full for m=3) + A* (4 methods x m groups x 5 seeds) + scale
        n_linear = m * 9 * (1 if m == 2 else 2) + 4 * m * 5 + 4 * 5
        est = per["static"] * n_static + per["linear"] * n_linear
        lines.append(
            f"one-at-a-time m={m}: static {per['static']:.3f} s/problem x {n_static}, linear "
            f"{per['linear'] * 1e3:.1f} ms/problem x {n_linear} = ~{est:.2f} s vs batched warm "
            f"{second[m]:.2f} s -> {est / second[m]:.1f}x"
        )

    # baseline 2: the original's fitter (torch L-BFGS per init), scaled to the original's init counts
    per_init = {k: torch_lbfgs_per_init(k, n_base) for k in ("m2_static", "m3_static", "linear")}
    counts = {  # (law, problems, inits per problem) of the whole analysis in the original notebooks
        2: [("m2_static", 10, 121), ("linear", 18, 121), ("linear", 4 * 10, 121), ("linear", 4 * 5, 1331)],
        3: [
            ("m3_static", 15, 6000),
            ("linear", 27, 300),
            ("linear", 27, 30),
            ("linear", 4 * 15, 30),
            ("linear", 4 * 5, 5),
        ],
    }
    orig_total = 0.0
    for m in (2, 3):
        est = sum(per_init[k] * p * i for k, p, i in counts[m])
        orig_total += est
        lines.append(
            f"original-style m={m}: ~{est:.0f} s single process (~{est / 2:.0f} s on a 2-process pool) "
            f"vs jaxlaws warm {second[m]:.2f} s -> {est / second[m]:.0f}x ({est / 2 / second[m]:.0f}x pooled)"
        )
    lines.append(
        "torch L-BFGS seconds per init (100 outer steps): "
        + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in per_init.items())
    )
    lines.append(
        f"whole analysis: jaxlaws warm {warm:.2f} s vs original-style ~{orig_total:.0f} s "
        f"({orig_total / warm:.0f}x; {orig_total / 2 / warm:.0f}x against a 2-process pool)"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
