"""``jaxlaws sweep static|dynamic|method``: train a sweep and write it as a sweep directory.

Examples::

    jaxlaws sweep static --data bundled --groups code,literature --preset tiny --steps 400 \\
        --mixtures grid --seeds 0,1,2 --out runs/static_code_lit
    jaxlaws sweep dynamic --data synthetic:3 --steps 300 --break-step 200 --remaining-steps 100 \\
        --parents dirichlet:3:0 --children dirichlet:9:1 --out runs/dyn

The work directory ``--out`` holds ``config.json``, ``runs/`` (finished runs), ``checkpoints/`` (parents),
``resume/`` (running runs, with ``--checkpoint-every N``) and the result ``sweep/`` (readable with
``jaxlaws.sweeps.read_sweep``). Re-running the same command resumes; a damaged file is named, and ``--repair``
retrains exactly what it held. Every argument is checked before anything is trained, and another process
working in ``--out`` is refused (naming its PID).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxlaws.train.options import add_training_arguments, load_data, parse_mixtures, setup

__all__ = ["register", "parse_mixtures", "load_data"]


def _sweep_options(p: argparse.ArgumentParser) -> None:
    """Options of ``sweep static`` and ``sweep dynamic`` (the method commands have their own)."""
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="save each running run every N steps; a killed run resumes from there (0: never)",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="retrain exactly the runs whose files in --out are damaged (default: name them and stop)",
    )
    from jaxlaws.distributed import add_arguments

    add_arguments(p)


def _static(args: argparse.Namespace) -> int:
    from jaxlaws.distributed import from_arguments
    from jaxlaws.train.sweep import static_sweep

    main = from_arguments(args).is_main  # before anything else: every process must call the same things
    cfg, data, seeds, kw = setup(args)
    kw["timeout_s"] = args.dist_timeout
    mixtures = parse_mixtures(args.mixtures, len(data.names))
    sweep = static_sweep(
        data, cfg, mixtures, seeds, args.out, checkpoint_every=args.checkpoint_every, repair=args.repair, **kw
    )
    if main:
        print(f"static sweep: {len(sweep.runs())} runs -> {Path(args.out) / 'sweep'}")
    return 0


def _dynamic(args: argparse.Namespace) -> int:
    from jaxlaws.distributed import from_arguments
    from jaxlaws.train.sweep import dynamic_sweep

    main = from_arguments(args).is_main  # before anything else: every process must call the same things
    cfg, data, seeds, kw = setup(args)
    kw["timeout_s"] = args.dist_timeout
    m = len(data.names)
    sweep = dynamic_sweep(
        data,
        cfg,
        parse_mixtures(args.parents, m, "--parents"),
        parse_mixtures(args.children, m, "--children"),
        seeds,
        args.break_step,
        args.remaining_steps,
        args.out,
        checkpoint_every=args.checkpoint_every,
        repair=args.repair,
        **kw,
    )
    if main:
        print(f"dynamic sweep: {len(sweep.runs())} runs -> {Path(args.out) / 'sweep'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep static`` and ``sweep dynamic`` to the ``jaxlaws`` command."""
    sweep = subparsers.add_parser("sweep", help="train static, dynamic or method sweeps")
    sub = sweep.add_subparsers(dest="sweep_kind", metavar="KIND", required=True)
    st = sub.add_parser("static", help="every mixture x seed trained for --steps steps", allow_abbrev=False)
    add_training_arguments(st)
    _sweep_options(st)
    st.add_argument("--mixtures", default="grid", help="grid | dirichlet:N[:SEED[:ALPHA]] | 'a,b;c,d' | file")
    st.set_defaults(func=_static)
    dy = sub.add_parser(
        "dynamic", help="parents to --break-step, then children for --remaining-steps", allow_abbrev=False
    )
    add_training_arguments(dy)
    _sweep_options(dy)
    dy.add_argument("--parents", default="grid", help="parent mixtures (same syntax as --mixtures)")
    dy.add_argument("--children", default="grid", help="child mixtures (same syntax as --mixtures)")
    dy.add_argument("--break-step", type=int, required=True)
    dy.add_argument("--remaining-steps", type=int, required=True)
    dy.set_defaults(func=_dynamic)
    from jaxlaws.train.methods.cli import add_method_args, method_command
    from jaxlaws.train.methods.sweep import METHODS

    me = sub.add_parser("method", help="train a data-mixing method (and its break-step children)", allow_abbrev=False)
    add_training_arguments(me)
    me.add_argument("--method", required=True, help=" | ".join(METHODS))
    add_method_args(me)
    me.set_defaults(func=method_command)
