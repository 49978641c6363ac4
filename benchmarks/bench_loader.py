"""Loading 10,000 original-format runs: ``read_original`` vs the notebooks' per-file pandas loop.

Builds (in a temp dir) 10,000 m=3 static run directories in the original layout -- each with val losses at
two checkpoints and a test loss (30,000 pickled DataFrames) plus one unrelated trace file -- then times:

* baseline: the original notebooks' loop (``analysis/*.ipynb``): walk the runs, ``pd.read_pickle`` each loss
  file, parse seed and checkpoint with regexes, rename columns, attach run/seed/mixture columns, ``pd.concat`` at
  the end;
* ``jaxlaws.sweeps.read_original``: thread-pooled reads, columnar assembly, one validated ``Sweep``.

Usage: ``python benchmarks/bench_loader.py [--runs 10000] [--out benchmarks/results/loader.md]``
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jaxlaws.sweeps.original import encode_weights, read_original

GROUPS = ("arxiv", "book", "stackexchange")


def build_tree(root: Path, n_runs: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    date = root / "01012025"
    for r in range(n_runs):
        # %.6f-style values like the Dirichlet files; >= 0.001 so the notebooks' "0."-split can parse them
        # (it breaks on str(float)'s scientific notation, e.g. 2.4e-05, which read_original handles)
        p = np.round(np.maximum(rng.dirichlet(np.ones(3)), 0.001), 6)
        s = r % 5
        name = (
            f"slimpj_pythia-160m_from_scratch_5000_mixture_arxiv_book_stackexchange_weights_{encode_weights(p)}"
            f"_static_lr_0.0005_linear_warmup_cosine"
        )
        d = date / name
        d.mkdir(parents=True, exist_ok=True)
        for split, step in (("val", 2500), ("val", 5000), ("test", 5000)):
            df = pd.DataFrame({"task_idx": list(GROUPS), "task_loss": 3 + rng.random(3)})
            with open(d / f"{split}_seed_{s}_checkpoint-{step}.pkl", "wb") as f:
                pickle.dump(df, f)
        (d / f"val_seed_{s}_trace.pkl").write_bytes(pickle.dumps([0.0]))


SKIP = ("trace", "val_inputs", "labels", "proportions", "emb", "rouge", "generations", "gradient", "acc")


def naive_load(root: Path) -> pd.DataFrame:
    """The notebooks' pattern: one DataFrame per file, concatenated at the end."""
    dfs = []
    for date in sorted(os.listdir(root)):
        for run in sorted(os.listdir(root / date)):
            for fname in os.listdir(root / date / run):
                if any(s in fname for s in SKIP) or fname.startswith("test_"):
                    continue
                df = pd.read_pickle(root / date / run / fname)
                df = df.rename(columns={"task_idx": "skill", "task_loss": "loss"})
                df["checkpoint"] = int(re.search(r"-(\d+)\.pkl", fname).group(1))
                df["seed"] = int(re.search(r"seed_(\d+)_", fname).group(1))
                df["method"] = run
                w = run.split("weights_")[1].split("_")[0]
                ps = [float("0." + x) for x in w.split("0.") if x]
                for i, p in enumerate(ps):
                    df[f"p{i + 1}"] = p
                dfs.append(df.set_index("checkpoint"))
    return pd.concat(dfs)


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        build_tree(root, args.runs)
        t_build = time.perf_counter() - t
        best_of(lambda: naive_load(root), 1)  # warm the page cache for both contenders
        t_naive, naive = best_of(lambda: naive_load(root), args.repeats)
        t_ours, (sweep, report) = best_of(lambda: read_original(root), args.repeats)
        t_one, _ = best_of(lambda: read_original(root, workers=1), args.repeats)
    val = sweep.losses[sweep.losses["split"] == "val"]
    assert len(naive) == len(val), (len(naive), len(val))
    np.testing.assert_allclose(np.sort(naive["loss"].to_numpy()), np.sort(val["loss"].to_numpy()))
    n_files = report.n_files
    lines = [
        "# Loader benchmark (`benchmarks/bench_loader.py`)",
        "",
        f"Machine: {os.cpu_count()}-core CPU, Python {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pd.__version__}. Tree: {args.runs} m=3 run directories, {n_files} loss pickles "
        f"(+{args.runs} trace files); build {t_build:.1f} s. Best of {args.repeats}, warm page cache.",
        "",
        "| loader | time (s) | runs/s | vs baseline |",
        "|---|---|---|---|",
        f"| notebook loop (`pd.read_pickle` per file, val only, no validation) | {t_naive:.2f} | "
        f"{args.runs / t_naive:,.0f} | 1.00x |",
        f"| `read_original` (val + test, validated `Sweep`, default threads) | {t_ours:.2f} | "
        f"{args.runs / t_ours:,.0f} | {t_naive / t_ours:.2f}x |",
        f"| `read_original(workers=1)` | {t_one:.2f} | {args.runs / t_one:,.0f} | {t_naive / t_one:.2f}x |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
