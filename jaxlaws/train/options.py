"""Command-line options shared by the training commands (``jaxlaws sweep static|dynamic|method``,
``jaxlaws compare``): the data, model, schedule and seed options, their checks, and the training set-up they
describe.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["parse_mixtures", "load_data", "parse_seeds", "add_training_arguments", "check_arguments", "setup"]


def _int(text: str, what: str, lo: int = 0) -> int:
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer >= {lo}, got {text!r}") from None
    if v < lo:
        raise ValueError(f"{what} must be an integer >= {lo}, got {text!r}")
    return v


def parse_mixtures(text: str, m: int, flag: str = "--mixtures") -> np.ndarray:
    """Mixtures from a command-line string, checked (on the simplex, each given once); ``flag`` names the option
    in error messages.

    * ``grid`` -- m=2 only: ``(a/10, 1 - a/10)`` for a = 1..9;
    * ``dirichlet:N[:SEED[:ALPHA]]`` -- the original's Dirichlet cover of N points (seed 0 by default);
    * ``0.2,0.8;0.5,0.5`` -- literal rows separated by ``;``;
    * a path to a text file with one comma-separated mixture per line.
    """
    from jaxlaws.sweeps.dirichlet import dirichlet_cover, two_group_grid
    from jaxlaws.train.sweep import SEED_LIMIT, check_mixtures

    if text == "grid":
        if m != 2:
            raise ValueError(f"{flag} grid is the m=2 grid; there are {m} groups (use dirichlet:N)")
        mix = two_group_grid()
    elif text.startswith("dirichlet:"):
        parts = text.split(":")[1:]
        form = f"{flag} {text!r}: use dirichlet:N[:SEED[:ALPHA]]"
        if not 1 <= len(parts) <= 3:
            raise ValueError(form)
        n = _int(parts[0], f"{form}; N", 1)
        seed = _int(parts[1], f"{form}; SEED", 0) if len(parts) > 1 else 0
        if seed >= SEED_LIMIT:
            raise ValueError(f"{form}; SEED must be below 2^32, got {seed}")
        alpha = None
        if len(parts) > 2:
            try:
                alpha = float(parts[2])
            except ValueError:
                alpha = float("nan")
            if not (np.isfinite(alpha) and alpha > 0):
                raise ValueError(f"{form}; ALPHA must be a positive number, got {parts[2]!r}")
        mix = dirichlet_cover(m, n, seed, alpha)
    elif Path(text).is_file():
        try:
            mix = np.loadtxt(text, delimiter=",", ndmin=2)
        except ValueError as e:
            raise ValueError(f"{flag}: cannot read mixtures from file {text!r} ({e})") from None
    else:
        try:
            mix = np.array([[float(v) for v in row.split(",")] for row in text.split(";") if row.strip()])
        except ValueError:
            raise ValueError(
                f"{flag}: cannot read mixtures {text!r}: use 'grid', 'dirichlet:N[:SEED[:ALPHA]]', "
                "'0.2,0.8;0.5,0.5' or a file"
            ) from None
    mix = check_mixtures(mix, m, flag)
    for i in range(len(mix)):
        for j in range(i):
            if np.abs(mix[i] - mix[j]).max() <= 1e-12:
                raise ValueError(f"{flag}: mixture {mix[i].tolist()} is given twice (rows {j} and {i})")
    return mix


def load_data(source: str, groups: str | None, seq_len: int, batch_size: int, seed: int = 0):
    """``data.TokenGroups`` from ``bundled``, a directory, or ``synthetic:M[:OVERLAP]``."""
    from jaxlaws.train import data as D

    names = _group_names(groups)
    if source.startswith("synthetic:"):
        m, overlap = _synthetic(source)
        g = D.synthetic_groups(m, overlap=overlap, seed=seed, n_tokens=max(50_000, 20 * batch_size * seq_len))
        if names is not None and tuple(names) != g.names:
            raise ValueError(f"synthetic data has groups {list(g.names)}; --groups {names} does not match")
        return g
    return D.load_groups(source, names=names, seq_len=seq_len, batch_size=batch_size)


def _group_names(groups: str | None) -> list[str] | None:
    if groups is None:
        return None
    names = [g.strip() for g in groups.split(",") if g.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"--groups {groups!r}: duplicate group names")
    if len(names) < 2:
        raise ValueError(f"--groups {groups!r}: a sweep needs at least 2 groups")
    return names


def _synthetic(source: str) -> tuple[int, float]:
    parts = source.split(":")[1:]
    form = f"--data {source!r}: use synthetic:M[:OVERLAP]"
    if not 1 <= len(parts) <= 2:
        raise ValueError(form)
    try:
        m = int(parts[0])
    except ValueError:
        raise ValueError(f"{form} with M the number of groups, got {parts[0]!r}") from None
    if m < 2:
        raise ValueError(f"{form}: a sweep needs at least 2 groups, got M={m}")
    overlap = 0.5
    if len(parts) > 1:
        try:
            overlap = float(parts[1])
        except ValueError:
            overlap = float("nan")
        if not 0 <= overlap <= 1:
            raise ValueError(f"{form}; OVERLAP must be a number in [0, 1], got {parts[1]!r}")
    return m, overlap


def parse_seeds(text: str) -> list[int]:
    """Training seeds from a comma-separated string (``--seeds``), checked.

    Args:
      text: e.g. ``"0,1,2"``.

    Returns:
      The seeds, each in [0, 2^32).
    """
    from jaxlaws.train.sweep import check_seeds

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds is empty")
    return check_seeds(seeds, "--seeds")


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """Add the data, model, schedule, seed and output options of the training commands to ``p``."""
    p.add_argument("--data", default="bundled", help="'bundled', a directory of groups, or synthetic:M[:OVERLAP]")
    p.add_argument("--groups", default=None, help="comma-separated group names (default: all)")
    p.add_argument("--preset", default="tiny", help="model preset: micro, tiny, small, pythia-160m")
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


def check_arguments(args: argparse.Namespace) -> None:
    """Check every option's range before any data is loaded or anything trained (``ValueError`` naming it)."""
    from jaxlaws.train.model import PRESETS

    if args.preset not in PRESETS:
        raise ValueError(f"unknown --preset {args.preset!r}; choose one of {sorted(PRESETS)}")

    def need(ok: bool, flag: str, rule: str, value) -> None:
        if not ok:
            raise ValueError(f"{flag} must be {rule}, got {value}")

    finite = lambda x: x == x and abs(x) != float("inf")  # noqa: E731
    need(args.steps >= 1, "--steps", ">= 1", args.steps)
    if args.warmup is not None:
        need(0 <= args.warmup <= args.steps, "--warmup", f"in [0, --steps={args.steps}]", args.warmup)
    need(finite(args.lr) and args.lr > 0, "--lr", "a positive number", args.lr)
    need(finite(args.lr_end) and args.lr_end >= 0, "--lr-end", "a number >= 0", args.lr_end)
    need(args.batch_size >= 1, "--batch-size", ">= 1", args.batch_size)
    context = PRESETS[args.preset]["context"]
    if args.seq_len is not None:
        need(1 <= args.seq_len <= context, "--seq-len", f"in [1, {context}] (the {args.preset} context)", args.seq_len)
    need(args.eval_every >= 0, "--eval-every", ">= 0 (0: only at the end)", args.eval_every)
    if args.max_eval_chunks is not None:
        need(args.max_eval_chunks >= 1, "--max-eval-chunks", ">= 1", args.max_eval_chunks)
    need(args.runs_per_program >= 1, "--runs-per-program", ">= 1", args.runs_per_program)
    if getattr(args, "checkpoint_every", None) is not None:
        need(args.checkpoint_every >= 0, "--checkpoint-every", ">= 0 (0: never)", args.checkpoint_every)
    if getattr(args, "probe_chunks", None) is not None:
        need(args.probe_chunks >= 1, "--probe-chunks", ">= 1", args.probe_chunks)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {args.out!r} is not a directory")
    parse_seeds(args.seeds)
    _group_names(args.groups)
    if args.data.startswith("synthetic:"):
        _synthetic(args.data)


def setup(args: argparse.Namespace):
    """The training set-up the parsed options describe: the data loaded and prepared, the configuration and seeds.

    Args:
      args: the parsed options of :func:`add_training_arguments`.

    Returns:
      ``(cfg, data, seeds, kw)``: the :class:`~jaxlaws.train.sweep.TrainConfig`, the
      :class:`~jaxlaws.train.sweep.SweepData`, the seeds and the sweep options (``runs_per_program``,
      ``progress``, ``fmt``).
    """
    from jaxlaws.train.model import PRESETS, preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    check_arguments(args)
    seq_len = args.seq_len or PRESETS[args.preset]["context"]
    groups = load_data(args.data, args.groups, seq_len, args.batch_size)
    if len(groups.names) < 2:
        raise ValueError(f"--data {args.data!r} holds the groups {list(groups.names)}: a sweep needs at least 2 groups")
    model = preset(args.preset, vocab_size=groups.vocab_size, dtype="bfloat16" if args.bf16 else "float32")
    warmup = args.steps // 10 if args.warmup is None else args.warmup
    optim = OptimConfig(total_steps=args.steps, warmup_steps=warmup, lr=args.lr, lr_end=args.lr_end)
    cfg = TrainConfig(model, optim, args.batch_size, args.seq_len, args.eval_every)
    data = prepare_data(groups, cfg, args.max_eval_chunks, probe_chunks=getattr(args, "probe_chunks", 16))
    kw = dict(runs_per_program=args.runs_per_program, progress=not args.no_progress, fmt=args.format)
    return cfg, data, parse_seeds(args.seeds), kw
