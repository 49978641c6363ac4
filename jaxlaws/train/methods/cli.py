"""``jaxlaws sweep method`` and ``jaxlaws compare``: train mixing methods from the command line.

Examples::

    jaxlaws sweep method --method aioli --groups code,literature --steps 1000 --seeds 0,1,2 \\
        --break-step 500 --children grid --remaining-steps 100 --out runs/aioli
    jaxlaws compare --groups code,literature --steps 1000 --seeds 0,1,2 --break-step 500 \\
        --children grid --remaining-steps 100 --out runs/compare_m2

Hyper-parameters default to the original's values for the number of groups (``Policy.defaults(m)``); the
flags below override them, and a flag that does not belong to the chosen method is an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_method_args", "hparams_from_args", "register_compare", "method_command"]


def _ema(text: str) -> float | str:
    """``--ema``: a float, or ``none`` for the cumulative update."""
    return "cumulative" if text.strip().lower() == "none" else float(text)


# flag -> (hyper-parameter, type, methods it applies to)
_HP_FLAGS = {
    "eta": ("eta", float, ("aioli", "skillit")),
    "ema": ("ema", _ema, ("aioli",)),
    "lp_rounds": ("lp_rounds", int, ("aioli",)),
    "lp_steps": ("lp_steps", int, ("aioli",)),
    "update_steps": ("update_steps", int, ("aioli", "skillit")),
    "one_hot_factor": ("ohf", float, ("aioli",)),
    "prior": ("prior", str, ("aioli",)),
    "prior_steps": ("prior_steps", int, ("aioli",)),
    "window": ("window", int, ("skillit",)),
    "skillit_eval_steps": ("eval_steps", int, ("skillit",)),
    "mu": ("mu", float, ("doremi", "doge")),
    "smoothing": ("smoothing", float, ("doremi",)),
    "val_batch": ("val_batch", int, ("doge",)),
    "mixture": ("p", str, ("static",)),
}


def add_method_args(p: argparse.ArgumentParser, compare: bool = False) -> None:
    p.add_argument("--break-step", type=int, default=None, help="break the analysed run here for children")
    p.add_argument("--children", default=None, help="child mixtures (grid | dirichlet:N[:SEED] | 'a,b;c,d' | file)")
    p.add_argument("--remaining-steps", type=int, default=None, help="steps each child trains after the break")
    p.add_argument("--mixtures", default=None, help="static sweep of grid search / DML (default grid or dirichlet:9)")
    p.add_argument("--checkpoint-every", type=int, default=0, help="resume checkpoints every N steps inside a run")
    p.add_argument("--probe-chunks", type=int, default=16, help="val chunks per group of the methods' probe set")
    if not compare:
        p.add_argument("--graph", default=None, help="Skill-It graph file (.npy/.json/.csv); default: learned")
        p.add_argument("--graph-steps", type=int, default=None, help="steps of each one-hot graph run")
        p.add_argument("--reference-dir", default=None, help="DoReMi: work dir with a finished stratified run")
    for flag, (_, typ, which) in _HP_FLAGS.items():
        extra = (
            " comma-separated weights"
            if typ is str
            else " a float, or none: the cumulative update"
            if flag == "ema"
            else ""
        )
        p.add_argument(
            "--" + flag.replace("_", "-"), type=typ, default=None, dest=flag, help=f"({'/'.join(which)})" + extra
        )


def _base(method: str) -> str:
    from jaxlaws.train.methods.sweep import ANALYSED

    return ANALYSED.get(method, method)


def hparams_from_args(args: argparse.Namespace, method: str, m: int, strict: bool = True) -> dict:
    """The hyper-parameter flags given on the command line that apply to ``method``; a flag that does not
    apply is an error when ``strict`` and skipped otherwise (``compare``: it belongs to another method)."""
    hp = {}
    for flag, (name, typ, which) in _HP_FLAGS.items():
        v = getattr(args, flag, None)
        if v is None:
            continue
        if _base(method) not in which:
            if not strict:
                continue
            raise ValueError(
                f"--{flag.replace('_', '-')} does not apply to method {method!r} "
                f"(it is a {'/'.join(which)} hyper-parameter)"
            )
        if typ is str:
            try:
                v = [float(x) for x in v.split(",")]
            except ValueError:
                raise ValueError(f"--{flag.replace('_', '-')} must be {m} comma-separated numbers, got {v!r}") from None
        hp[name] = None if v == "cumulative" else v  # --ema none: Aioli's cumulative update (ema=None)
    return hp


def _probe(args: argparse.Namespace, m: int):
    from jaxlaws.train.options import parse_mixtures

    if args.break_step is None:
        if args.children or args.remaining_steps:
            raise ValueError("--children / --remaining-steps need --break-step")
        return None, None
    if args.children is None or args.remaining_steps is None:
        raise ValueError("--break-step needs --children and --remaining-steps")
    return parse_mixtures(args.children, m), args.remaining_steps


def method_command(args: argparse.Namespace) -> int:
    from jaxlaws.train.methods.sweep import METHODS, method_sweep
    from jaxlaws.train.options import parse_mixtures, setup

    if args.method not in METHODS:
        raise ValueError(f"unknown --method {args.method!r}; choose one of {', '.join(METHODS)}")
    cfg, data, seeds, kw = setup(args)
    m = len(data.names)
    hp = hparams_from_args(args, args.method, m)
    kids, rem = _probe(args, m)
    mixtures = parse_mixtures(args.mixtures, m) if args.mixtures else None
    # method_sweep validates every argument before training
    res = method_sweep(
        args.method,
        data,
        cfg,
        seeds,
        args.out,
        hparams=hp,
        break_step=args.break_step,
        children=kids,
        remaining_steps=rem,
        graph=args.graph,
        graph_steps=args.graph_steps,
        reference_dir=args.reference_dir,
        mixtures=mixtures,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
        fmt=args.format,
    )
    print(f"{args.method}: final run {res.final_run!r} -> {Path(args.out) / 'sweep'}")
    print(res.final.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0


def _compare(args: argparse.Namespace) -> int:
    if args.testbed:  # a named testbed: headroom check, then the methods judged on its objective
        from jaxlaws.train.testbeds import cli_study

        return cli_study(args, lambda mth, m: hparams_from_args(args, mth, m, strict=False))
    from jaxlaws.train.methods.compare import compare
    from jaxlaws.train.options import parse_mixtures, setup

    cfg, data, seeds, kw = setup(args)
    m = len(data.names)
    methods = [x for x in args.methods.split(",") if x]
    hp = {mth: hparams_from_args(args, mth, m, strict=False) for mth in methods}
    used = {flag for flag in _HP_FLAGS if getattr(args, flag, None) is not None}
    for flag in used:
        if not any(_base(mth) in _HP_FLAGS[flag][2] for mth in methods):
            raise ValueError(f"--{flag.replace('_', '-')} applies to none of the compared methods {methods}")
    kids, rem = _probe(args, m)
    mixtures = parse_mixtures(args.mixtures, m) if args.mixtures else None
    comp = compare(
        data,
        cfg,
        seeds,
        args.out,
        methods=methods,
        hparams=hp,
        break_step=args.break_step,
        children=kids,
        remaining_steps=rem,
        mixtures=mixtures,
        restricted_prior_steps=args.restricted_prior_steps,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    print(
        f"groups {list(data.names)}, seeds {seeds}, {cfg.optim.total_steps} steps ({cfg.model.n_layers}-layer "
        f"d={cfg.model.d_model} model, batch {cfg.batch_size} x {cfg.length}); test perplexity = mean over "
        "groups of exp(test loss); d_ppl < 0 is better than stratified"
    )
    print(comp.to_markdown())
    print(
        f"tables: {Path(args.out) / 'comparison.csv'}, per_seed.csv, each method's sweep in {args.out}/<method>/sweep"
    )
    return 0


def register_compare(subparsers: argparse._SubParsersAction) -> None:
    from jaxlaws.train.methods.compare import DEFAULT_METHODS
    from jaxlaws.train.options import add_training_arguments
    from jaxlaws.train.testbeds import add_testbed_args

    p = subparsers.add_parser(
        "compare", help="train mixing methods on the same groups and seeds; compare them", allow_abbrev=False
    )
    add_training_arguments(p)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated methods")
    p.add_argument(
        "--restricted-prior-steps",
        type=int,
        default=None,
        help="restricted Aioli: steps on the grid-search mixture first (default: half the run)",
    )
    add_method_args(p, compare=True)
    add_testbed_args(p)
    p.set_defaults(func=_compare)
