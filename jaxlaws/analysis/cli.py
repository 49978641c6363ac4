"""``jaxlaws analyse``: run the mixing-law analyses on a sweep directory and print / export the results.

Nothing is dropped quietly: on the original layout every file or run left out is printed with its path and
reason, and the command fails (exit code 2) unless ``--allow-skipped``; fits the analysis flags (when it
reports them, ``Analysis.flagged()``) are printed and fail the command unless ``--allow-flagged``. User errors
are raised as ``ValueError`` (``SweepError``), which the ``jaxlaws`` command prints as one line with exit
code 2; an error inside the analysis is completed with the (group, seed) whose data look unfit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["register", "load_any", "print_report", "influence_summary", "fit_data_problems"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``jaxlaws analyse`` to the ``jaxlaws`` command's ``subparsers``."""
    p = subparsers.add_parser(
        "analyse",
        help="fit the mixing laws of a sweep and judge its methods",
        allow_abbrev=False,
        description="Read a sweep (jaxlaws format: a directory with meta.json; or the original code's output "
        "directories) and run the static, dynamic and method analyses it supports.",
    )
    p.add_argument("path", type=Path, help="sweep directory (jaxlaws format or original layout)")
    p.add_argument("--groups", nargs="+", help="group order for the original layout (default: from run names)")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--step", type=int, default=None, help="static-law step (default: the last)")
    p.add_argument(
        "--dynamic-form",
        nargs="+",
        choices=("two_group", "linear", "full", "log_ratio"),
        help="dynamic laws to fit (default: two_group for m=2, linear and full for m>=3)",
    )
    p.add_argument(
        "--method",
        nargs="+",
        choices=("aioli", "doge", "doremi", "skillit"),
        help="methods to analyse (default: all present)",
    )
    p.add_argument("--n-random", type=int, default=30, help="random t draws in the m>=3 static init grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the random init draws (and of --bootstrap's)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="percentile intervals for the static law's parameters and predicted optimum from N "
        "paired resamples of the runs per seed (exported as static_params_ci.csv and "
        "static_optimum_ci.csv)",
    )
    p.add_argument("--level", type=float, default=0.9, help="interval level of --bootstrap (default 0.9)")
    p.add_argument(
        "--influence",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each static run's influence on the predicted optimum: d p*/d loss and the first-order "
        "shift of p* if the run is left out, by implicit differentiation through the refit "
        "(exported as static_influence.csv; default on)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write CSV tables and law_results JSON here (atomically; files of an earlier export "
        "that this one does not write are removed, other files are never touched)",
    )
    p.add_argument(
        "--skillit-graphs",
        type=Path,
        default=None,
        metavar="DIR",
        help="original layout: the original's skillit_graphs/ folder "
        "({task}_{groups}_normalized_seed_{s}.npy or .json), loaded as each Skill-It run's graph",
    )
    p.add_argument(
        "--allow-skipped",
        action="store_true",
        help="original layout: analyse even if some files or runs could not be read (they are listed either way)",
    )
    p.add_argument(
        "--allow-flagged",
        action="store_true",
        help="accept results that rest on fits the analysis flags (they are listed either way)",
    )
    from jaxlaws.distributed import add_arguments

    add_arguments(p)  # --distributed: the fits sharded over every process' devices; process 0 prints and exports
    p.set_defaults(func=_run)


def load_any(path: Path, groups=None, *, skillit_graphs: Path | None = None):
    """``(sweep, report)`` from a jaxlaws sweep directory (``report`` is ``None``) or the original layout
    (``report`` is :func:`~jaxlaws.sweeps.original.read_original`'s :class:`LoadReport`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if (path / "meta.json").exists():
        if skillit_graphs is not None:
            raise ValueError(
                f"--skillit-graphs applies to the original layout only; {path} is a jaxlaws sweep "
                "(its Skill-It runs record their graph)"
            )
        from jaxlaws.sweeps.io import read_sweep

        return read_sweep(path), None
    from jaxlaws.sweeps.original import read_original

    return read_original(path, groups=groups, skillit_graphs=skillit_graphs)


def print_report(report, allow_skipped: bool, file=None) -> None:
    """Print a load report's skipped data (every entry), notes and a count of ignored non-data files to
    ``file`` (default stderr); raise :class:`~jaxlaws.sweeps.SweepError` when data was skipped and
    ``allow_skipped`` is false."""
    from jaxlaws.sweeps.schema import SweepError

    file = sys.stderr if file is None else file
    for where, reason in report.skipped:
        print(f"skipped {where}: {reason}", file=file)
    for where, reason in report.notes:
        print(f"note {where}: {reason}", file=file)
    if report.ignored:
        print(
            f"ignored {len(report.ignored)} file(s) that are not loss, proportions or matrix files "
            f"(e.g. {report.ignored[0][0]})",
            file=file,
        )
    if report.skipped:
        msg = f"{len(report.skipped)} file(s) or run(s) skipped (listed above): the sweep lacks their data"
        if not allow_skipped:
            raise SweepError(f"{msg}; fix them, or pass --allow-skipped to analyse without them")
        print(f"warning: {msg}; analysing without them (--allow-skipped)", file=file)


def _validate(args: argparse.Namespace) -> None:
    if args.n_random < 1:
        raise ValueError(f"--n-random must be >= 1, got {args.n_random}")
    if args.bootstrap != 0 and args.bootstrap < 2:
        raise ValueError(f"--bootstrap must be 0 (off) or >= 2 resamples, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")
    if args.step is not None and args.step < 0:
        raise ValueError(f"--step must be >= 0, got {args.step}")
    if args.groups is not None and len(set(args.groups)) != len(args.groups):
        raise ValueError(f"--groups has duplicates: {args.groups}")
    if args.skillit_graphs is not None and not args.skillit_graphs.is_dir():
        raise FileNotFoundError(f"--skillit-graphs {args.skillit_graphs}: not a directory")


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from jaxlaws.analysis.pipeline import analyse

    _validate(args)
    from jaxlaws.distributed import from_arguments

    if not from_arguments(args).is_main:  # every fit is collective: the same analysis, printed and exported once
        sys.stdout = open(os.devnull, "w")
        args.out = None
    sweep, report = load_any(args.path, args.groups, skillit_graphs=args.skillit_graphs)
    if report is not None:
        print_report(report, args.allow_skipped)
    try:
        result = analyse(
            sweep,
            split=args.split,
            static_step=args.step,
            dynamic_forms=tuple(args.dynamic_form) if args.dynamic_form else None,
            methods=tuple(args.method) if args.method else None,
            n_random=args.n_random,
            seed=args.seed,
            bootstrap=args.bootstrap,
            level=args.level,
            influence=args.influence,
        )
    except ValueError as e:
        raise _with_suspects(e, sweep, args.split, args.step) from e
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        print(f"sweep {args.path}: groups {list(sweep.groups)}")
        if result.static is not None:
            print(f"\n== static law ({result.static.law.name}) ==\n{result.static.summary.to_string(index=False)}")
            print(f"\n== predicted optimal mixture ==\n{result.optimum.to_string(index=False)}")
        if getattr(result, "influence", None) is not None:
            print(
                "\n== influence of each static run on the predicted optimum ==\n" + influence_summary(result.influence)
            )
        if result.bootstrap is not None:
            bs = result.bootstrap
            head = f"{bs.level:.0%} bootstrap intervals, {bs.n} paired resamples of the runs per seed"
            print(
                f"\n== static parameters: {head} ==\n"
                f"{bs.params.drop(columns=['level', 'n_resamples']).to_string(index=False)}"
            )
            print(
                f"\n== predicted optimal mixture: {head} ==\n"
                f"{bs.optimum.drop(columns=['level', 'n_resamples']).to_string(index=False)}"
            )
        for form, fits in result.dynamic.items():
            print(f"\n== dynamic law {form} ({fits.law.name}) ==\n{fits.summary.to_string(index=False)}")
        for name, ma in result.methods.items():
            print(f"\n== {name} at break step {ma.break_step}: sim per seed ==")
            print(ma.similarity.to_string(index=False))
            print(ma.averages.to_string())
        flagged = _flagged(result)
        if flagged is not None and len(flagged):
            print(f"\n== flagged fits ({len(flagged)}) ==\n{flagged.to_string(index=False)}")
    if flagged is not None and len(flagged):
        if not args.allow_flagged:
            raise ValueError(
                f"{len(flagged)} fit(s) flagged (listed above; left out of the means and optima, "
                "kept in the per-fit tables): nothing was exported; pass --allow-flagged to export"
            )
        print(
            f"warning: {len(flagged)} fit(s) flagged; exported anyway (--allow-flagged): left out of the means "
            "and optima, kept with their flags in the per-fit tables",
            file=sys.stderr,
        )
    if args.out is not None:
        from jaxlaws.analysis.export import export_atomically

        done = export_atomically(args.out, result.export)
        print(f"\nwrote {len(done.written)} files to {args.out}")
        if done.removed:
            print(
                f"removed {len(done.removed)} file(s) of an earlier export that this one does not write: "
                + ", ".join(p.name for p in done.removed)
            )
        for p in done.kept:
            print(f"kept {p}: written by an earlier export but changed since (not removed)")
    return 0


def influence_summary(table) -> str:
    """The per-run influence table in short: seed, run, ``influence`` (the Frobenius norm of d p*/d losses),
    ``drop_dp_<g>`` / ``loo_dp_<g>`` (the first-order / exact shift of p* if the run is left out) and the
    refit's result, with a key."""
    if table.empty:
        return "(no seed with unflagged static fits)"
    cols = ["seed", "run", "influence"] + [c for c in table.columns if c.startswith(("drop_dp_", "loo_dp_"))]
    cols += [c for c in ("loo_fit", "fit_result") if c in table.columns]
    return (
        table[cols].to_string(index=False) + "\ninfluence: |d p*/d (the run's losses)| "
        "(Frobenius norm; a loss 0.01 higher moves p* by up to 0.01 x influence); drop_dp_<g>: how p*_<g> "
        "moves, to first order, if the run is left out; loo_dp_<g>: the same by refitting without the run "
        "(loo_fit names refits that are not regular); "
        "every d p*_<g>/d L_<h> is in static_influence.csv"
    )


def _flagged(result):
    """``result.flagged()`` (one row per flagged fit) when the analysis provides it, else ``None``."""
    fn = getattr(result, "flagged", None)
    return fn() if callable(fn) else None


def _with_suspects(err: ValueError, sweep, split: str, step: int | None) -> ValueError:
    """``err`` completed with the (table, group, seed) whose data no law can be fitted to, if any."""
    from jaxlaws.sweeps.schema import SweepError

    try:
        suspects = fit_data_problems(sweep, split, step)
    except Exception:  # noqa: BLE001 -- the hint must never hide the analysis' own error
        suspects = []
    if not suspects:
        return err
    more = f" (and {len(suspects) - 5} more)" if len(suspects) > 5 else ""
    msg = f"{err} [suspect data: {'; '.join(suspects[:5])}{more}]"
    return SweepError(msg) if isinstance(err, SweepError) else ValueError(msg)


def fit_data_problems(sweep, split: str = "val", step: int | None = None) -> list[str]:
    """Data the laws cannot be fitted to, per fit: ``"static runs at step S, group 'g' seed s: ..."`` and the
    same for the children of each parent or method run. Looks for non-positive losses, losses that are all
    equal, and fewer than 2 distinct mixtures."""
    import numpy as np

    from jaxlaws.sweeps.schema import proportion_columns

    df = sweep.losses[sweep.losses["split"] == split]
    pcols = proportion_columns(sweep.groups)
    out: list[str] = []

    def check(d, where: str) -> None:
        for seed, ds in d.groupby("seed", sort=True):
            n_mix = len(np.unique(np.round(ds[pcols].to_numpy(np.float64), 9), axis=0))
            if n_mix < 2:
                out.append(f"{where}, seed {seed}: only {n_mix} distinct mixture(s)")
            for g, dg in ds.groupby("group", sort=False):
                loss = dg["loss"].to_numpy(np.float64)
                if (loss <= 0).any():
                    out.append(f"{where}, group {g!r} seed {seed}: losses not positive (min {loss.min():.6g})")
                elif len(loss) > 1 and np.ptp(loss) == 0:
                    out.append(f"{where}, group {g!r} seed {seed}: all {len(loss)} losses equal ({loss[0]:.6g})")

    static = df[df["kind"] == "static"]
    if len(static):
        s = int(static["step"].max()) if step is None else step
        check(static[static["step"] == s], f"static runs at step {s}")
    kids = df[df["kind"] == "child"]
    for parent, d in kids.groupby("parent", sort=True):
        check(d, f"children of run {parent!r}")
    return out
