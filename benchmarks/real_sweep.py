"""A real (small) mixing-law experiment on this CPU: train sweeps on two bundled groups, then fit the laws.

* static: m=2 grid p = 0.1..0.9 x 3 seeds, ``--steps`` steps each (tiny preset, byte-level);
* dynamic: parents at p in {0.2, 0.5, 0.8} trained to B = ``--break-step``, each resumed as 9 children
  (p = 0.1..0.9) for ``--remaining-steps`` steps on the same schedule;
* fits: the static law ``L_i = c_i + exp(k_i p_i + b_i)`` (the original's two-stage fit) per group and seed on
  the final test losses; the dynamic law ``L_i^{B+R} = k_i p_i + b_i`` per group and parent on the children's
  val losses. MSE and R^2 (1 - SS_res/SS_tot) are written to ``--report`` as markdown.

Resumable: re-running with the same arguments reuses finished runs in ``--work``.
Usage: ``python benchmarks/real_sweep.py [--steps 400] [--work /tmp/jaxlaws_real_sweep]``
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import jax
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", default="code,literature")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--break-step", type=int, default=300)
    ap.add_argument("--remaining-steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-eval-chunks", type=int, default=64)
    ap.add_argument("--work", default="/tmp/jaxlaws_real_sweep")
    ap.add_argument(
        "--report",
        default=str(Path(__file__).parent / "results" / "train_real_sweep.md"),
        help="markdown output (merged by hand into results/train.md)",
    )
    args = ap.parse_args()

    import jaxlaws as jl
    from jaxlaws.sweeps.dirichlet import two_group_grid
    from jaxlaws.train import data as D
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, dynamic_sweep, mixture_tag, prepare_data, static_sweep

    names = args.groups.split(",")
    model = preset("tiny", vocab_size=D.BYTE_VOCAB_SIZE)
    cfg = TrainConfig(
        model,
        OptimConfig(total_steps=args.steps, warmup_steps=args.steps // 10, lr=args.lr),
        batch_size=args.batch_size,
        eval_every=args.steps // 4,
    )
    groups = D.load_groups("bundled", names=names, seq_len=model.context, batch_size=args.batch_size)
    data = prepare_data(groups, cfg, max_eval_chunks=args.max_eval_chunks)
    grid = two_group_grid()
    t0 = time.perf_counter()
    static = static_sweep(data, cfg, grid, [0, 1, 2], Path(args.work) / "static", runs_per_program=9)
    t_static = time.perf_counter() - t0
    t0 = time.perf_counter()
    parents = grid[[1, 4, 7]]
    dyn = dynamic_sweep(
        data,
        cfg,
        parents,
        grid,
        [0],
        args.break_step,
        args.remaining_steps,
        Path(args.work) / "dynamic",
        runs_per_program=9,
    )
    t_dyn = time.perf_counter() - t0

    lines = [
        f"## Real sweep: groups {names}, tiny preset ({model.n_layers} layers, width {model.d_model}, "
        f"context {model.context}), byte-level",
        "",
        f"Machine: {platform.machine()} CPU, {len(jax.devices())} device(s); jax {jax.__version__}. "
        f"Batch {args.batch_size} x {model.context} tokens, lr {args.lr} (warm-up {args.steps // 10}, cosine "
        f"to 1e-4), {args.steps} steps ({args.steps * args.batch_size * model.context / 1e6:.2f}M tokens "
        f"per run); eval on up to {args.max_eval_chunks} chunks per group.",
        "",
        f"Training time: static sweep (27 runs) {t_static:.0f} s, dynamic sweep (3 parents + 27 children) "
        f"{t_dyn:.0f} s (0 s means it was resumed from finished runs).",
        "",
        "### Static law `L_i = c_i + exp(k_i p_i + b_i)` (two-stage fit, final test loss, 9 mixtures)",
        "",
        "| group | seed | c | k | b | MSE | R² | loss range |",
        "|---|---|---|---|---|---|---|---|",
    ]
    te = static.losses[static.losses.split == "test"]
    for g in names:
        for s in (0, 1, 2):
            d = te[(te.group == g) & (te.seed == s)].sort_values(f"p_{g}")
            x, y = d[f"p_{g}"].to_numpy(np.float64), d.loss.to_numpy(np.float64)
            with jax.enable_x64(True):
                r = jl.fit_static_two_stage(x, y, throw=False)
            c, k, b = np.asarray(r.params)
            lines.append(
                f"| {g} | {s} | {c:.4f} | {k:.3f} | {b:.3f} | {float(r.mse):.2e} | {float(r.r2):.4f} | "
                f"{y.min():.3f}-{y.max():.3f} |"
            )
    lines += [
        "",
        f"### Dynamic law `L_i^(B+R) = k_i p_i + b_i` (B={args.break_step}, R={args.remaining_steps}, "
        "children's val loss, 9 child mixtures per parent)",
        "",
        "| group | parent p_0 | k | b | MSE | R² | loss range |",
        "|---|---|---|---|---|---|---|",
    ]
    law = jl.laws.dynamic_two_group()
    ch = dyn.losses[(dyn.losses.kind == "child") & (dyn.losses.split == "val")]
    for g in names:
        for pp in parents:
            d = ch[(ch.group == g) & (ch.parent == f"parent_B{args.break_step}_{mixture_tag(pp)}")]
            d = d.sort_values(f"p_{g}")
            x, y = d[f"p_{g}"].to_numpy(np.float64), d.loss.to_numpy(np.float64)
            with jax.enable_x64(True):
                r = jl.fit(law, x[:, None], y, throw=False)
            k, b = np.asarray(r.params)
            lines.append(
                f"| {g} | {pp[0]:.1f} | {k:.4f} | {b:.4f} | {float(r.mse):.2e} | {float(r.r2):.4f} | "
                f"{y.min():.4f}-{y.max():.4f} |"
            )
    text = "\n".join(lines) + "\n"
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
