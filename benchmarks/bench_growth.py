r"""Benchmark: how the fitting engine's cost grows with inits, points, parameters and batched problems.

All problems are **synthetic**: the static law :math:`L = e^{\ell} + \exp(b + t\cdot p_{<m})` on Dirichlet
mixtures with ``l = log 2.5, b = -0.5``, ``t_1 = -2``, the other ``t_j ~ U(-0.3, 0.3)`` (seeded), plus
N(0, 0.003^2) noise; inits are a seeded uniform subset of (or seeded draws like) the original's grid. Each
axis varies one size from a base of **1 problem x 300 inits x 30 points x m = 3 (4 parameters)**:

* inits: 100 .. 30,000 (one problem);
* points: 9 .. 3,000;
* parameters: m = 3 .. 33 groups (4 .. 34 parameters), 100 points;
* problems: 10 .. 100,000 problems of 9 points x 8 inits in one ``fit_batched`` call with a memory budget
  of 64 MiB (``memory_budget=``), so the larger batches stream through the same compiled program in chunks
  (``jaxlaws.fitting.execute``); the table shows the chunks.

Every fit is the full grid in float64 (``screen=None, dtype="float64"``, 50 LM steps), so each point costs
``inits x points x steps`` work and the curve shows the engine's scaling, not the screening's. Times are
warm (the second call; the first compiles) and include the host-side checks and diagnostics.

Run: ``python benchmarks/bench_growth.py [--quick] [--out benchmarks/results/growth.md]`` (writes a PNG beside).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

AXES = {
    "inits": [100, 1000, 10000, 30000],
    "points": [9, 100, 1000, 3000],
    "params": [3, 9, 17, 33],  # groups m; P = m + 1
    "problems": [10, 1000, 10000, 100000],
}
QUICK = {"inits": [100, 1000], "points": [9, 100], "params": [3, 9], "problems": [10, 1000]}
BASE = dict(problems=1, inits=300, points=30, m=3)
PROBLEMS_BUDGET = 64 << 20  # bytes: small enough that the problems axis shows the chunked streaming


def synthetic(problems: int, points: int, m: int, inits: int, seed: int = 0):
    """``x (B, n, m)``, ``y (B, n)``, shared ``inits (I, m + 1)``; synthetic (module docstring)."""
    import jaxlaws as jl

    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(m), (problems, points))
    t = rng.uniform(-0.3, 0.3, (problems, m - 1))
    t[:, 0] = -2.0
    y = 2.5 + np.exp(-0.5 + np.einsum("bnj,bj->bn", x[..., :-1], t)) + rng.normal(0, 0.003, (problems, points))
    grid = jl.laws.log_linear_inits(m, seed, own=0, n_random=max(1, -(-inits // 200)))
    idx = np.random.default_rng(seed).permutation(len(grid))[:inits]
    return x, y, grid[idx]


def measure(axis: str, value: int) -> dict:
    import jaxlaws as jl
    from jaxlaws.fitting import execute

    size = dict(BASE)
    if axis == "params":
        size["m"], size["points"] = value, 100
    elif axis == "problems":
        size.update(problems=value, points=9, inits=8)
    else:
        size[axis] = value
    x, y, inits = synthetic(size["problems"], size["points"], size["m"], size["inits"])
    law = jl.laws.log_linear(size["m"])
    budget = PROBLEMS_BUDGET if axis == "problems" else None

    def fit():
        return jl.fit_batched(
            law,
            x,
            y,
            inits=inits,
            objective=jl.huber(0.02),
            screen=None,
            dtype="float64",
            throw=False,
            memory_budget=budget,
        )

    t0 = time.perf_counter()
    fit()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = fit()
    warm = time.perf_counter() - t0
    args = (inits, x, y)
    chunk = execute.chunk_size(args, True, budget)
    work = size["problems"] * size["inits"] * size["points"] * (size["m"] + 1)
    out = dict(
        axis=axis,
        value=value,
        **size,
        first_s=first,
        warm_s=warm,
        work=work,
        chunks=-(-size["problems"] // chunk),
        ok=float(np.mean(res.success)),
    )
    print(
        f"  {axis}={value}: warm {warm:.2f} s (first {first:.1f} s), chunks {out['chunks']}",
        file=sys.stderr,
        flush=True,
    )
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "inits": "inits (1 problem, 30 points, 4 params)",
        "points": "points (300 inits, 4 params)",
        "params": "parameters P = m + 1 (300 inits, 100 points)",
        "problems": "batched problems (8 inits, 9 points, 4 params)",
    }
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, axis in zip(axes, AXES):
        rs = [r for r in rows if r["axis"] == axis]
        if not rs:
            continue
        v = np.array([r["m"] + 1 if axis == "params" else r["value"] for r in rs], float)
        t = np.array([r["warm_s"] for r in rs])
        ax.loglog(v, t, "o-", label="warm time")
        ax.loglog(v, t[0] * v / v[0], "k--", lw=0.8, label="linear from the first point")
        ax.set_xlabel(labels[axis])
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "jaxlaws fit_batched cost growth (synthetic static-law problems, full grid, float64, 50 LM steps)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(rows: list[dict], load: tuple, wall: float, png: Path) -> str:
    from bench_fit import _versions

    from jaxlaws.fitting import execute

    lines = [
        "# Growth of the fitting cost (synthetic problems)",
        "",
        f"Machine: {_versions()}. Load average (1 min) {load[0][0]:.2f} before, {load[1][0]:.2f} after; "
        f"wall {wall:.0f} s. Memory budget per chunk {execute.memory_budget() / 2**30:.1f} GiB (a quarter "
        "of RAM; 64 MiB on the problems axis).",
        "",
        f"![growth]({png.name})",
        "",
        "| axis | value | problems x inits x points x params | warm | first (compile) | ns per "
        "init-point-param | chunks |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['axis']} | {r['value']:,} | {r['problems']:,} x {r['inits']:,} x {r['points']:,} x "
            f"{r['m'] + 1} | {r['warm_s']:.2f} s | {r['first_s']:.1f} s | "
            f"{1e9 * r['warm_s'] / r['work']:.1f} | {r['chunks']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two sizes per axis (smoke run)")
    ap.add_argument("--axes", nargs="+", default=list(AXES), choices=list(AXES))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "growth.md")
    a = ap.parse_args()
    sizes = QUICK if a.quick else AXES
    load0, t0 = os.getloadavg(), time.perf_counter()
    rows = [measure(axis, v) for axis in a.axes for v in sizes[axis]]
    png = a.out.with_suffix(".png")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, png)
    text = report(rows, (load0, os.getloadavg()), time.perf_counter() - t0, png)
    print(text)
    a.out.write_text(text)
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {a.out} and {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
