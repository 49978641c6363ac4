"""``jaxlaws demo``: the main job on a bundled default, no arguments needed.

It builds the bundled example sweeps — synthetic sweeps drawn (with a fixed seed and realistic noise)
from the Aioli paper's own fitted parameters for arxiv/stackexchange (m=2) and arxiv/book/stackexchange
(m=3): static sweeps over 5 seeds, 9 parents x 9 children, and the four methods' probes — then fits the
static and dynamic laws, judges the methods, predicts the optimal mixture, and prints the tables.
``--out DIR`` also writes the sweeps and every table (CSV, law_results-style JSON).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="fit the laws of the bundled example sweeps and print the results (the main job)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--out", type=Path, default=None, help="also write the sweeps and all tables here")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic noise and random inits")
    p.add_argument("--noise", type=float, default=0.005, help="sd of the Gaussian noise on the losses")
    p.set_defaults(func=run)


def _law_table(setting: str, fits, truth_params=None) -> pd.DataFrame:
    """Mean fitted parameters over (seed/parent) and mean MSE / R^2 per group."""
    names = list(fits.param_names)
    df = fits.params
    rows = []
    for g, d in df.groupby("group", sort=False):
        row = {"setting": setting, "law": fits.law.name, "group": g, "fits": len(d)}
        row.update({n: float(d[n].mean()) for n in names})
        row.update(mse=float(d["mse"].mean()), r2=float(d["r2"].mean()))
        rows.append(row)
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    from jaxlaws.analysis.pipeline import analyse
    from jaxlaws.sweeps.io import write_sweep
    from jaxlaws.sweeps.synthetic import reference_sweep_bundle

    t0 = time.perf_counter()
    bundle = reference_sweep_bundle(noise=args.noise, seed=args.seed)
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.precision", 4,
                           "display.float_format", lambda v: f"{v:.4g}"):
        for setting, (sweep, _truth) in bundle.items():
            res = analyse(sweep, seed=args.seed)
            print(f"\n### {setting}: groups {list(sweep.groups)}, {sweep.losses[['run', 'seed']].drop_duplicates().shape[0]} runs")
            print(f"\n-- static law {res.static.law.name} (per group, mean over seeds) --")
            print(_law_table(setting, res.static).to_string(index=False))
            print("\n-- predicted optimal mixture (mean over seeds) --")
            opt = res.optimum
            pcols = [c for c in opt.columns if c.startswith("p_")]
            print(opt[pcols].mean().to_frame("mean").T.to_string(index=False))
            for form, fits in res.dynamic.items():
                print(f"\n-- dynamic law {form}: {fits.law.name} (per group, mean over parents) --")
                print(_law_table(setting, fits).to_string(index=False))
            print("\n-- methods: sim(A~, A*) averaged over seeds --")
            rows = [{"method": name, "break_step": ma.break_step, "seeds": len(ma.similarity),
                     **ma.averages.loc["mean"].to_dict(), "sim_std": float(ma.averages.loc["std", "sim"])}
                    for name, ma in res.methods.items()]
            print(pd.DataFrame(rows).to_string(index=False))
            if args.out is not None:
                write_sweep(sweep, args.out / setting / "sweep")
                res.export(args.out / setting / "analysis")
    print(f"\ndone in {time.perf_counter() - t0:.1f} s" + (f"; results in {args.out}" if args.out else ""))
    return 0
