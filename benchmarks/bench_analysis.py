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

from jaxlaws.analysis import static as static_mod
from jaxlaws.analysis.pipeline import analyse
from jaxlaws.sweeps import reference
from jaxlaws.sweeps.schema import Sweep

METHODS = ("aioli", "doge", "doremi", "skillit")
MATRIX = {"aioli": "aioli_A", "doge": "doge_M", "doremi": "doremi_excess", "skillit": "skillit_graph"}


def _dirichlet(k, seed):
    return np.loadtxt(reference._root() / "dirichlet_weights" / f"k_{k}_n_9_seed_{seed}.txt", delimiter=",")


def build_sweep(m: int, noise: float = 0.003, seed: int = 0) -> Sweep:
    """A paper-sized synthetic sweep from the bundled reference parameters (static, dynamic, 4 methods)."""
    try:  # prefer the library's generator when it exists
        from jaxlaws.sweeps import synthetic  # noqa: F401
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    setting = "arxiv_stackexchange" if m == 2 else "arxiv_books_stackexchange"
    groups = reference.SETTINGS[setting]
    two = np.array([[a / 10, 1 - a / 10] for a in range(1, 10)])
    mixes = (lambda s: two) if m == 2 else (lambda s: _dirichlet(3, s))
    rows, mats = [], []

    def add(run, s, step, kind, p, losses, parent="", b=-1, r=-1, method=""):
        for g, loss in zip(groups, losses):
            d = dict(run=run, seed=s, step=step, split="val", group=g, loss=loss + noise * rng.normal(),
                     kind=kind, parent=parent, break_step=b, steps_run=r, method=method)
            d.update({f"p_{h}": p[j] for j, h in enumerate(groups)})
            rows.append(d)

    st = reference.static_params(setting)
    for s in range(5):
        for n, p in enumerate(mixes(s)):
            th = np.stack([st[g][s] for g in groups])
            losses = (th[:, 0] + np.exp(th[:, 1] * p + th[:, 2]) if m == 2
                      else np.exp(th[:, 0]) + np.exp(th[:, 1] + th[:, 2:] @ p[:-1]))
            add(f"static_{n}_s{s}", s, 5000, "static", p, losses)
    dyn = reference.dynamic_params(setting)
    for k, p1 in enumerate(sorted(dyn[groups[0]])):
        pp = two[k] if m == 2 else _dirichlet(3, 0)[np.argsort(_dirichlet(3, 0)[:, 0])[k]]
        th = np.stack([dyn[g][p1] for g in groups])
        add(f"parent_{k}", 0, 2000, "parent", pp, th[:, -1] + 0.3, b=2000)
        for c, pc in enumerate(mixes(1)):
            losses = th[:, 0] * np.diag(np.tile(pc, (m, 1))) + th[:, 1] if m == 2 else th[:, 0] + th[:, 1:] @ pc[:-1]
            add(f"child_{k}_{c}", 0, 2100, "child", pc, losses, parent=f"parent_{k}", b=2000, r=100)
    for method in METHODS:
        opt, _, b, r = reference.trajectory_params(setting, method)
        for s in range(5):
            th = np.stack([opt[g][s] for g in groups])
            a_star = np.diag(th[:, 0]) if m == 2 else th
            lb = np.linspace(3.5, 4.0, m)
            run = f"{method}_run"
            add(run, s, b, "method", np.ones(m) / m, lb, b=b, method=method)
            a = -a_star / np.abs(a_star).sum() + 0.02 * rng.normal(size=(m, m))  # a noisy copy of the truth
            if method == "doremi":
                a = np.diag(np.diag(a))
            if method == "skillit":
                a = (np.diag(1 / lb) @ a).T
            for idx in range(4):
                mats += [dict(run=run, seed=s, step=b, name=MATRIX[method], index=idx, row=i, col=j,
                              value=a[i, j]) for i in range(m) for j in range(m)]
            for n, p in enumerate(mixes(s)):
                losses = th[:, 1] + th[:, 0] * p if m == 2 else lb + a_star @ p
                add(f"{method}_child_{n}_s{s}", s, b + r, "child", p, losses, parent=run, b=b, r=r, method=method)
    return Sweep(pd.DataFrame(rows), groups, pd.DataFrame(mats))


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def one_at_a_time(sweep: Sweep, n_problems: int) -> tuple[float, int]:
    """The static fits, one (group, seed) problem per call; returns (seconds per problem, problems total)."""
    groups = sweep.groups
    total = sweep.m * 5
    times = []
    for i in range(n_problems + 1):
        g, s = groups[i % sweep.m], (i // sweep.m) % 5
        losses = sweep.losses[(sweep.losses["seed"] == s) & (sweep.losses["kind"] == "static")]
        one = Sweep(losses, groups)
        t, _ = timed(static_mod.fit_static, one)  # fits all groups of one seed; divided below
        times.append(t / sweep.m)
    return float(np.median(times[1:])), total  # first call compiles


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
    lines = [f"machine: {platform.machine()} {jax.device_count()} device(s) ({jax.devices()[0].platform}), "
             f"{__import__('os').cpu_count()} CPU cores; jax {jax.__version__}, numpy {np.__version__}, "
             f"pandas {pd.__version__}"]
    sweeps = {m: build_sweep(m) for m in (2, 3)}
    for m, sw in sweeps.items():
        lines.append(f"m={m} sweep: {len(sw.losses)} loss rows, {len(sw.matrices)} matrix entries")
    first, second = {}, {}
    for m, sw in sweeps.items():
        first[m], _ = timed(analyse, sw)
    for m, sw in sweeps.items():
        second[m], res = timed(analyse, sw)
        sims = {k: round(float(v.averages.loc["mean", "sim"]), 3) for k, v in res.methods.items()}
        lines.append(f"m={m}: first call (compile + run) {first[m]:.2f} s, warm {second[m]:.2f} s; "
                     f"static R2 {res.static.summary['r2_mean'].iloc[0]:.4f}; mean sim {sims}")
    warm = sum(second.values())
    lines.append(f"complete analysis (m=2 + m=3), warm: {warm:.2f} s; first call: {sum(first.values()):.2f} s")

    # baseline 1: the same jaxlaws fits, one problem per call (static only; the bulk of the time)
    per = {m: one_at_a_time(sw, n_base) for m, sw in sweeps.items()}
    static_warm = {}
    for m, sw in sweeps.items():
        static_warm[m], _ = timed(static_mod.fit_static, sw)
    for m in (2, 3):
        t, n = per[m]
        lines.append(f"static m={m}: batched {static_warm[m]:.2f} s for {n} problems vs one-at-a-time "
                     f"{t:.3f} s/problem x {n} = {t * n:.2f} s -> {t * n / static_warm[m]:.1f}x")

    # baseline 2: the original's fitter (torch L-BFGS per init), scaled to the original's init counts
    per_init = {k: torch_lbfgs_per_init(k, n_base) for k in ("m2_static", "m3_static", "linear")}
    counts = {  # (law, problems, inits per problem) of the whole analysis in the original notebooks
        2: [("m2_static", 10, 121), ("linear", 18, 121), ("linear", 4 * 10, 121), ("linear", 4 * 5, 1331)],
        3: [("m3_static", 15, 6000), ("linear", 27, 300), ("linear", 27, 30), ("linear", 4 * 15, 30),
            ("linear", 4 * 5, 5)],
    }
    orig_total = 0.0
    for m in (2, 3):
        est = sum(per_init[k] * p * i for k, p, i in counts[m])
        orig_total += est
        lines.append(f"original-style m={m}: ~{est:.0f} s single process (~{est / 2:.0f} s on a 2-process pool) "
                     f"vs jaxlaws warm {second[m]:.2f} s -> {est / second[m]:.0f}x ({est / 2 / second[m]:.0f}x pooled)")
    lines.append("torch L-BFGS seconds per init (100 outer steps): "
                 + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in per_init.items()))
    lines.append(f"whole analysis: jaxlaws warm {warm:.2f} s vs original-style ~{orig_total:.0f} s "
                 f"({orig_total / warm:.0f}x; {orig_total / 2 / warm:.0f}x against a 2-process pool)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
