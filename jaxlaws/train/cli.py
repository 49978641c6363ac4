"""``jaxlaws sweep static|dynamic|method``: train a sweep and write it as a sweep directory.

Examples::

    jaxlaws sweep static --data bundled --groups code,literature --preset tiny --steps 400 \\
        --mixtures grid --seeds 0,1,2 --out runs/static_code_lit
    jaxlaws sweep dynamic --data synthetic:3 --steps 300 --break-step 200 --remaining-steps 100 \\
        --parents dirichlet:3:0 --children dirichlet:9:1 --out runs/dyn

The work directory ``--out`` holds ``config.json``, ``runs/`` (finished runs), ``checkpoints/`` (parents) and
the result ``sweep/`` (readable with ``jaxlaws.sweeps.read_sweep``). Re-running the same command resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["register", "parse_mixtures", "load_data"]


def parse_mixtures(text: str, m: int) -> np.ndarray:
    """Mixtures from a command-line string.

    * ``grid`` -- m=2 only: ``(a/10, 1 - a/10)`` for a = 1..9;
    * ``dirichlet:N[:SEED[:ALPHA]]`` -- the original's Dirichlet cover of N points (seed 0 by default);
    * ``0.2,0.8;0.5,0.5`` -- literal rows separated by ``;``;
    * a path to a text file with one comma-separated mixture per line.
    """
    from jaxlaws.sweeps.dirichlet import dirichlet_cover, two_group_grid

    if text == "grid":
        if m != 2:
            raise ValueError(f"--mixtures grid is the m=2 grid; there are {m} groups (use dirichlet:N)")
        return two_group_grid()
    if text.startswith("dirichlet:"):
        parts = text.split(":")[1:]
        n, seed = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        alpha = float(parts[2]) if len(parts) > 2 else None
        return dirichlet_cover(m, n, seed, alpha)
    path = Path(text)
    if path.is_file():
        return np.loadtxt(path, delimiter=",", ndmin=2)
    try:
        return np.array([[float(v) for v in row.split(",")] for row in text.split(";") if row.strip()])
    except ValueError:
        raise ValueError(f"cannot read mixtures {text!r}: use 'grid', 'dirichlet:N[:SEED[:ALPHA]]', "
                         "'0.2,0.8;0.5,0.5' or a file") from None


def load_data(source: str, groups: str | None, seq_len: int, batch_size: int, seed: int = 0):
    """``data.TokenGroups`` from ``bundled``, a directory, or ``synthetic:M[:OVERLAP]``."""
    from jaxlaws.train import data as D

    names = [g for g in groups.split(",") if g] if groups else None
    if source.startswith("synthetic:"):
        parts = source.split(":")[1:]
        m = int(parts[0])
        overlap = float(parts[1]) if len(parts) > 1 else 0.5
        g = D.synthetic_groups(m, overlap=overlap, seed=seed, n_tokens=max(50_000, 20 * batch_size * seq_len))
        if names is not None and tuple(names) != g.names:
            raise ValueError(f"synthetic data has groups {list(g.names)}; --groups {names} does not match")
        return g
    return D.load_groups(source, names=names, seq_len=seq_len, batch_size=batch_size)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds is empty")
    return seeds


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="bundled", help="'bundled', a directory of groups, or synthetic:M[:OVERLAP]")
    p.add_argument("--groups", default=None, help="comma-separated group names (default: all)")
    p.add_argument("--preset", default="tiny", help="model preset: tiny, small, pythia-160m")
    p.add_argument("--steps", type=int, required=True, help="schedule length S (total steps of a full run)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: S/10)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lr-end", type=float, default=1e-4, help="cosine floor (the original: 1e-4)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=None, help="default: the preset's context")
    p.add_argument("--eval-every", type=int, default=0, help="val loss every N steps (0: only at the end)")
    p.add_argument("--max-eval-chunks", type=int, default=None, help="cap on eval chunks per group")
    p.add_argument("--bf16", action="store_true", help="bfloat16 compute (fp32 master parameters)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--runs-per-program", type=int, default=9, help="runs vmapped into one program")
    p.add_argument("--out", required=True, help="work directory (resumable); result in OUT/sweep")
    p.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    p.add_argument("--no-progress", action="store_true")


def _setup(args: argparse.Namespace):
    from jaxlaws.train.model import PRESETS, preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    if args.preset not in PRESETS:
        raise ValueError(f"unknown --preset {args.preset!r}; choose one of {sorted(PRESETS)}")
    seq_len = args.seq_len or PRESETS[args.preset]["context"]
    groups = load_data(args.data, args.groups, seq_len, args.batch_size)
    model = preset(args.preset, vocab_size=groups.vocab_size, dtype="bfloat16" if args.bf16 else "float32")
    warmup = args.steps // 10 if args.warmup is None else args.warmup
    optim = OptimConfig(total_steps=args.steps, warmup_steps=warmup, lr=args.lr, lr_end=args.lr_end)
    cfg = TrainConfig(model, optim, args.batch_size, args.seq_len, args.eval_every)
    data = prepare_data(groups, cfg, args.max_eval_chunks, probe_chunks=getattr(args, "probe_chunks", 16))
    kw = dict(runs_per_program=args.runs_per_program, progress=not args.no_progress, fmt=args.format)
    return cfg, data, _seeds(args.seeds), kw


def _static(args: argparse.Namespace) -> int:
    from jaxlaws.train.sweep import static_sweep

    cfg, data, seeds, kw = _setup(args)
    mixtures = parse_mixtures(args.mixtures, len(data.names))
    sweep = static_sweep(data, cfg, mixtures, seeds, args.out, **kw)
    print(f"static sweep: {len(sweep.runs())} runs -> {Path(args.out) / 'sweep'}")
    return 0


def _dynamic(args: argparse.Namespace) -> int:
    from jaxlaws.train.sweep import dynamic_sweep

    cfg, data, seeds, kw = _setup(args)
    m = len(data.names)
    sweep = dynamic_sweep(data, cfg, parse_mixtures(args.parents, m), parse_mixtures(args.children, m), seeds,
                          args.break_step, args.remaining_steps, args.out, **kw)
    print(f"dynamic sweep: {len(sweep.runs())} runs -> {Path(args.out) / 'sweep'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep static`` and ``sweep dynamic`` to the ``jaxlaws`` command."""
    sweep = subparsers.add_parser("sweep", help="train static, dynamic or method sweeps")
    sub = sweep.add_subparsers(dest="sweep_kind", metavar="KIND", required=True)
    st = sub.add_parser("static", help="every mixture x seed trained for --steps steps", allow_abbrev=False)
    _common(st)
    st.add_argument("--mixtures", default="grid", help="grid | dirichlet:N[:SEED[:ALPHA]] | 'a,b;c,d' | file")
    st.set_defaults(func=_static)
    dy = sub.add_parser("dynamic", help="parents to --break-step, then children for --remaining-steps",
                        allow_abbrev=False)
    _common(dy)
    dy.add_argument("--parents", default="grid", help="parent mixtures (same syntax as --mixtures)")
    dy.add_argument("--children", default="grid", help="child mixtures (same syntax as --mixtures)")
    dy.add_argument("--break-step", type=int, required=True)
    dy.add_argument("--remaining-steps", type=int, required=True)
    dy.set_defaults(func=_dynamic)
    from jaxlaws.train.methods.cli import add_method_args, method_command
    from jaxlaws.train.methods.sweep import METHODS
    me = sub.add_parser("method", help="train a data-mixing method (and its break-step children)",
                        allow_abbrev=False)
    _common(me)
    me.add_argument("--method", required=True, help=" | ".join(METHODS))
    add_method_args(me)
    me.set_defaults(func=method_command)
