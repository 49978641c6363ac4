"""``jaxlaws analyse``: run the mixing-law analyses on a sweep directory and print / export the results."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyse", help="fit the mixing laws of a sweep and judge its methods",
        description="Read a sweep (jaxlaws format: a directory with meta.json; or the original code's output "
                    "directories) and run the static, dynamic and method analyses it supports.")
    p.add_argument("path", type=Path, help="sweep directory (jaxlaws format or original layout)")
    p.add_argument("--groups", nargs="+", help="group order for the original layout (default: from run names)")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--step", type=int, default=None, help="static-law step (default: the last)")
    p.add_argument("--dynamic-form", nargs="+", choices=("two_group", "linear", "full", "log_ratio"),
                   help="dynamic laws to fit (default: two_group for m=2, linear and full for m>=3)")
    p.add_argument("--method", nargs="+", choices=("aioli", "doge", "doremi", "skillit"),
                   help="methods to analyse (default: all present)")
    p.add_argument("--n-random", type=int, default=30, help="random t draws in the m>=3 static init grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the random init draws")
    p.add_argument("--out", type=Path, default=None, help="write CSV tables and law_results JSON here")
    p.set_defaults(func=_run)


def load_any(path: Path, groups=None):
    """A :class:`~jaxlaws.sweeps.Sweep` from a jaxlaws sweep directory or the original layout."""
    if not path.exists():
        raise SystemExit(f"jaxlaws analyse: {path} does not exist")
    if (path / "meta.json").exists():
        from jaxlaws.sweeps.io import read_sweep
        return read_sweep(path)
    from jaxlaws.sweeps.original import read_original
    sweep, _report = read_original(path, groups=groups)
    return sweep


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from jaxlaws.analysis.pipeline import analyse

    sweep = load_any(args.path, args.groups)
    result = analyse(sweep, split=args.split, static_step=args.step,
                     dynamic_forms=tuple(args.dynamic_form) if args.dynamic_form else None,
                     methods=tuple(args.method) if args.method else None, n_random=args.n_random,
                     seed=args.seed)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        print(f"sweep {args.path}: groups {list(sweep.groups)}")
        if result.static is not None:
            print(f"\n== static law ({result.static.law.name}) ==\n{result.static.summary.to_string(index=False)}")
            print(f"\n== predicted optimal mixture ==\n{result.optimum.to_string(index=False)}")
        for form, fits in result.dynamic.items():
            print(f"\n== dynamic law {form} ({fits.law.name}) ==\n{fits.summary.to_string(index=False)}")
        for name, ma in result.methods.items():
            print(f"\n== {name} at break step {ma.break_step}: sim per seed ==")
            print(ma.similarity.to_string(index=False))
            print(ma.averages.to_string())
    if args.out is not None:
        written = result.export(args.out)
        print(f"\nwrote {len(written)} files to {args.out}")
    return 0
