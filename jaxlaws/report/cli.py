"""``jaxlaws report DIR --out OUT``: analyse the sweep(s) in DIR and write the HTML report folder OUT."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write an HTML report (figures, tables, provenance, fit diagnostics) of a sweep",
        allow_abbrev=False,
        description=__doc__ + "\n\nDIR is a jaxlaws sweep directory (with meta.json) or a "
        "folder of them (one section each). OUT gets report.html (self-contained) with the PNGs and CSVs; an "
        "existing OUT is replaced only if it is an earlier report.",
    )
    p.add_argument("path", type=Path, metavar="DIR", help="sweep directory, or a folder holding sweep directories")
    p.add_argument("--out", type=Path, required=True, metavar="OUT", help="report folder to write")
    p.add_argument("--title", default="jaxlaws report", help="page title")
    p.add_argument(
        "--provenance",
        type=Path,
        default=None,
        metavar="JSON",
        help="a JSON object describing the data (model, corpora, steps, command), shown in the report",
    )
    p.add_argument(
        "--label",
        default=None,
        help="word for every figure title, e.g. synthetic (default: 'synthetic' when the provenance says so)",
    )
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--seed", type=int, default=0, help="seed of the random init draws of the m>=3 static fits")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="also N bootstrap resamples of the static fits: percentile intervals of their "
        "parameters and of the predicted optimum (default 0: none)",
    )
    p.add_argument(
        "--influence",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each static run's influence on the predicted optimum, as a figure and a table (default on)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from jaxlaws.report import write_report

    prov = None
    if args.provenance is not None:
        try:
            prov = json.loads(args.provenance.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"--provenance {args.provenance}: not a readable JSON file ({e})") from None
        if not isinstance(prov, dict):
            raise ValueError(f"--provenance {args.provenance}: must hold a JSON object")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = write_report(
            args.path,
            args.out,
            title=args.title,
            provenance=prov,
            label=args.label,
            split=args.split,
            seed=args.seed,
            bootstrap=args.bootstrap,
            influence=args.influence,
        )
    for w in caught:  # one clean line each, not the source line warnings.warn would print
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"report written to {page} in {time.perf_counter() - t0:.1f} s")
    return 0
