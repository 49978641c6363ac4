"""The comparison experiment on real text (issue: online mixing methods), CPU-sized by default.

Trains every method of ``jaxlaws.train.methods.compare`` -- stratified, grid search, the Data Mixing Laws
baseline, Skill-It, DoReMi, DoGE, Aioli and restricted Aioli -- on the bundled text groups with the same
seeds, for an m=2 and an m=3 setting, with break-step children for every analysed method; writes the
tables to ``benchmarks/results/methods_<setting>.md`` and the work directories to ``--work``. Resumable:
re-run the same command after an interruption. The sizes are arguments, so the same command runs
paper-sized on an accelerator, e.g. ``--preset pythia-160m --steps 5000 --seq-len 2048 --break-step 1000``.

    python benchmarks/compare_methods.py --settings m2,m3 --steps 1000 --seeds 0,1,2

``--testbeds`` runs the study of ``jaxlaws.train.testbeds`` instead (settings where the mixture matters: a headroom
check first, then every method with paired seeds on the testbed's objective); the model, batch and schedule come
from ``--size`` (``cpu`` or ``accelerator``), with ``--steps`` overriding the schedule length:

    python benchmarks/compare_methods.py --testbeds noise,scarce,skewed,m7 --size cpu --seeds 0,1,2,3,4 --probe
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

SETTINGS = {"m2": "code,literature", "m3": "code,docs,literature"}


def md(df, digits: int = 4) -> str:
    cols = list(df.columns)

    def fmt(v):
        return f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)

    return "\n".join(
        ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        + ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="m2,m3")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=None, help="default 1000 (settings) or the testbed size's")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--break-step", type=int, default=None, help="default: half the run")
    ap.add_argument("--remaining-steps", type=int, default=None, help="default: a tenth of the run")
    ap.add_argument("--n-static", type=int, default=7, help="static sweep points (grid search, DML)")
    ap.add_argument(
        "--n-children", type=int, default=None, help="break-step children per method run; default max(6, m + 2)"
    )
    ap.add_argument("--skillit-update-steps", type=int, default=None, help="default: a fifth of the run")
    ap.add_argument("--max-eval-chunks", type=int, default=64)
    ap.add_argument("--probe-chunks", type=int, default=32)
    ap.add_argument("--methods", default=None)
    ap.add_argument("--work", default="runs/compare")
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--testbeds", default=None, help="noise,scarce,skewed,m7: testbed study (sizes: --size, --steps)")
    ap.add_argument("--size", default="cpu", help="testbed size: cpu, accelerator (jaxlaws.train.testbeds.SIZES)")
    ap.add_argument("--testbed-seed", type=int, default=0, help="seed the testbeds' data are made from")
    ap.add_argument("--headroom-seeds", default=None, help="seeds of the headroom check (default: first two)")
    ap.add_argument("--headroom-only", action="store_true", help="only the headroom check of each testbed")
    ap.add_argument("--headroom-factor", type=float, default=3.0, help="gap >= FACTOR x sd of the paired diffs")
    ap.add_argument("--allow-no-headroom", action="store_true", help="judge the methods even without headroom")
    ap.add_argument("--probe", action="store_true", help="testbeds: break-step children for every analysed method")
    args = ap.parse_args()
    if args.testbeds:
        return run_testbeds(args)

    from jaxlaws.sweeps.dirichlet import dirichlet_cover
    from jaxlaws.train.cli import load_data
    from jaxlaws.train.methods.compare import DEFAULT_METHODS, compare
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data
    from jaxlaws.train.testbeds import default_children

    S = args.steps or 1000
    B = args.break_step or S // 2
    R = args.remaining_steps or S // 10
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",") if args.methods else list(DEFAULT_METHODS)
    for setting in args.settings.split(","):
        names = SETTINGS[setting]
        m = len(names.split(","))
        groups = load_data("bundled", names, args.seq_len, args.batch_size)
        model = preset(args.preset, vocab_size=groups.vocab_size)
        cfg = TrainConfig(
            model,
            OptimConfig(total_steps=S, warmup_steps=args.warmup or S // 10, lr=args.lr),
            args.batch_size,
            args.seq_len,
            eval_every=S // 4,
            eval_batch_size=64,
        )
        data = prepare_data(groups, cfg, args.max_eval_chunks, probe_chunks=args.probe_chunks)
        n_kids = args.n_children or default_children(m)
        if m == 2:
            grid = np.linspace(0.1, 0.9, args.n_static)
            mixtures = np.stack([grid, 1 - grid], 1)
            kids = np.stack([np.linspace(0.1, 0.9, n_kids), 1 - np.linspace(0.1, 0.9, n_kids)], 1)
        else:
            mixtures = dirichlet_cover(m, args.n_static, 0)
            kids = dirichlet_cover(m, n_kids, 1)
        su = args.skillit_update_steps or S // 5
        hp = {"skillit": {"update_steps": su}}
        t0 = time.perf_counter()
        comp = compare(
            data,
            cfg,
            seeds,
            Path(args.work) / setting,
            methods=methods,
            hparams=hp,
            break_step=B,
            children=kids,
            remaining_steps=R,
            mixtures=mixtures,
            progress=False,
        )
        wall = time.perf_counter() - t0
        head = (
            f"## {setting}: groups {list(data.names)} (bundled text, byte-level), REAL runs\n\n"
            f"Model: preset `{args.preset}` ({model.n_layers} layers, d={model.d_model}), batch "
            f"{args.batch_size} x {args.seq_len} tokens, {S} steps (lr {args.lr}, warm-up {cfg.optim.warmup_steps}, "
            f"cosine to 1e-4), seeds {seeds}; static sweep of {len(mixtures)} mixtures (grid search, DML); "
            f"break step {B}, {len(kids)} children x {R} steps per analysed method and seed; Skill-It "
            f"updates every {su} steps; other hyper-parameters: the original's for m={m}. Test perplexity = "
            f"mean over groups of exp(test loss); `d_ppl` = method - stratified per seed (mean ± std over "
            f"seeds; < 0 is better). `sim` = sim(Ã^t, A^t*) from the children (mean ± std over seeds); "
            f"time per step = wall time per run-step of the method's adaptive run relative to stratified "
            f"(including compilation and evaluations; steady-state costs are in bench_methods); run-steps = "
            f"all training the method needs (static sweep, graph runs, proxy + final run; not the "
            f"children probes) relative to one stratified run per seed. Machine: {platform.machine()} "
            f"{os.cpu_count()}-core CPU, jax {jax.__version__}; wall time {wall / 60:.1f} min (load average "
            f"{os.getloadavg()[0]:.2f} at the end).\n\n"
        )
        text = (
            head
            + comp.to_markdown()
            + "\n\nPer-group test loss (mean over seeds):\n\n"
            + md(comp.table[["method"] + [f"test_{g}" for g in data.names]])
            + "\n"
        )
        if len(comp.similarity):
            text += "\nsim per seed:\n\n" + md(comp.similarity, 3) + "\n"
        info = {k: r.info for k, r in comp.results.items()}
        text += (
            "\nLearned mixtures / choices:\n\n```\n"
            + json.dumps(
                {k: {kk: vv for kk, vv in v.items() if kk != "grid_val_mean"} for k, v in info.items()},
                indent=1,
                default=str,
            )[:4000]
            + "\n```\n"
        )
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / f"methods_{setting}.md").write_text(text)
        print(text, flush=True)


def run_testbeds(args: argparse.Namespace) -> None:
    """``--testbeds``: the study of ``jaxlaws.train.testbeds`` on each named testbed (headroom check, then the
    methods, paired); ``results/testbed_<name>.md`` and ``.csv``, the mixture figure beside them."""
    import shutil

    from jaxlaws.train import testbeds as T

    seeds = [int(s) for s in args.seeds.split(",")]
    hseeds = [int(s) for s in args.headroom_seeds.split(",")] if args.headroom_seeds else seeds[:2]
    methods = args.methods.split(",") if args.methods else list(T.STUDY_METHODS)
    res_dir = Path(args.results)
    res_dir.mkdir(parents=True, exist_ok=True)
    for name in args.testbeds.split(","):
        tb = T.make_testbed(name, args.testbed_seed, args.size, **({"steps": args.steps} if args.steps else {}))
        z, work = tb.size, Path(args.work) / f"testbed_{name}"
        hp = {"skillit": {"update_steps": args.skillit_update_steps or z.steps // 5}}
        t0, suffix = time.perf_counter(), "_headroom" if args.headroom_only else ""
        try:
            if args.headroom_only:  # the study's own static runs (work/grid), so the study reuses them
                hr = T.check_headroom(tb, work / "grid", hseeds, factor=args.headroom_factor)
                body = f"# testbed {name}: headroom only\n\n{tb.description}\n\n{hr.to_markdown(tb.names)}\n"
            else:
                probe = T.default_probe(tb, args.n_children) if args.probe else None
                T.study(
                    tb,
                    seeds,
                    work,
                    methods=methods,
                    headroom_seeds=hseeds,
                    hparams=hp,
                    probe=probe,
                    headroom_factor=args.headroom_factor,
                    allow_no_headroom=args.allow_no_headroom,
                )
                body = (work / "judgement.md").read_text()
        except T.NoHeadroomError as e:
            body = f"# testbed {name}: REFUSED, no headroom\n\n{tb.description}\n\n{e.result.to_markdown(tb.names)}\n"
        wall = time.perf_counter() - t0
        intro = (
            f"Real runs (bundled text and groups made from it, byte-level). Size `{args.size}`: preset `{z.model}`, "
            f"{z.steps} steps, batch {z.batch_size} x {z.seq_len}, lr {z.lr}; seeds {seeds} (paired), headroom "
            f"seeds {hseeds}; Skill-It updates every {hp['skillit']['update_steps']} steps. Machine: "
            f"{platform.machine()} {os.cpu_count()}-core, jax {jax.__version__}; wall {wall / 60:.1f} min, load "
            f"average {os.getloadavg()[0]:.2f} at the end.\n\n"
        )
        (res_dir / f"testbed_{name}{suffix}.md").write_text(intro + body)
        for src in ("judgement.csv", "per_seed.csv", "trajectories.csv", "mixtures.png"):  # the raw tables too
            dst = f"testbed_{name}.csv" if src == "judgement.csv" else f"testbed_{name}_{src}"
            if not args.headroom_only and (work / src).exists():
                shutil.copyfile(work / src, res_dir / dst)
        print(intro + body, flush=True)


if __name__ == "__main__":
    main()
