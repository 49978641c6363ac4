"""Regenerate the real example bundle of ``jaxlaws demo`` (``jaxlaws/data/bundle/``): one command.

Everything in the bundle is trained by jaxlaws on the bundled text groups (byte-level, tiny preset: 2 layers,
width 128; batch 8 x 64 tokens; 1000 steps, lr 2e-3, warm-up 100, cosine to 1e-4; evaluations every 250
steps on up to 64 chunks per group):

* ``compare``: ``benchmarks/compare_methods.py --settings m2,m3 --steps 1000 --seeds 0,1,2`` -- per setting
  (m=2: code/literature, m=3: code/docs/literature) the static grid sweep (7 mixtures x 3 seeds), every
  method's run and, for Skill-It, DoReMi, DoGE and Aioli, 6 break-step children (B=500, R=100) per seed;
* ``dynamic``: a parent/child sweep per setting: 3 parents to B=500, each resumed as the same 6 child
  mixtures for R=100 steps (seeds 0, 1, 2);
* ``optimum``: the mixture the static law fitted on the grid predicts optimal (mean over seeds), trained
  for seeds 0, 1, 2, to compare its loss with the best grid point;
* ``check``: the grid point p=(0.5, 0.5), seed 0 (m=2), retrained, to compare with the comparison's run
  (a provenance check when the comparison was trained by other code).

Then ``export`` writes small Parquet sweep directories (``jaxlaws.sweeps.write_sweep``) under ``--out`` and
``provenance.json`` (command, code commit, configuration hash, wall time, load, model, corpora, steps, seeds
of every part). Training is resumable (work directories under ``--work``); re-run the same command after an
interruption.

    python benchmarks/make_bundle.py                 # everything with the current code
    python benchmarks/make_bundle.py --settings m2 --stages dynamic   # one part only (here m=2's dynamic sweep)
    python benchmarks/make_bundle.py --export-only   # rebuild the bundle from existing work directories

Each part can be regenerated on its own: the export rewrites the parts whose work directories exist and keeps
the others (files and provenance records) as they are. ``optimum`` reads the predicted mixture from the
comparison's work directory when it exists, else from the bundle's ``compare`` part (the same runs).

Measured on the shared 2-core CPU: the comparison ~85 min (50 min m=2, 35 min m=3 at load ~4); at load 9-18
(nice 19) the dynamic sweep 12 min (m=2) / 10.5 min (m=3) and the optimum 7.6 / 5.2 min.
``--compare-work DIR`` reuses a comparison trained before
(``--compare-commit`` / ``--compare-command`` record its provenance, ``--compare-wall-min`` its wall times).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"m2": ("code", "literature"), "m3": ("code", "docs", "literature")}
STEPS, BREAK, REMAINING, SEEDS = 1000, 500, 100, (0, 1, 2)
COMPARE_CMD = "python benchmarks/compare_methods.py --settings m2,m3 --steps 1000 --seeds 0,1,2"
# the parts of a comparison work directory that go into the bundle (methods with break-step children, the
# static grid, and the runs the comparison table rests on)
METHOD_DIRS = ("stratified", "dml", "skillit", "doremi", "doge", "aioli", "aioli_restricted")


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "jaxlaws"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def config(m_names):
    """The comparison's training configuration and data (the same as compare_methods.py's defaults)."""
    from jaxlaws.train.cli import load_data
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    groups = load_data("bundled", ",".join(m_names), 64, 8)
    model = preset("tiny", vocab_size=groups.vocab_size)
    cfg = TrainConfig(
        model,
        OptimConfig(total_steps=STEPS, warmup_steps=STEPS // 10, lr=2e-3),
        8,
        64,
        eval_every=STEPS // 4,
        eval_batch_size=64,
    )
    return cfg, prepare_data(groups, cfg, 64, probe_chunks=32)


def parents_children(setting: str) -> tuple[np.ndarray, np.ndarray]:
    from jaxlaws.sweeps.dirichlet import dirichlet_cover

    if setting == "m2":
        pp = np.array([0.2, 0.5, 0.8])
        kids = np.linspace(0.1, 0.9, 6)
        return np.stack([pp, 1 - pp], 1), np.stack([kids, 1 - kids], 1)
    return dirichlet_cover(3, 3, 2), dirichlet_cover(3, 6, 1)  # children: the comparison's


def predicted_optimum(setting: str, grid_dir: Path | None = None) -> np.ndarray:
    """Mean over seeds of the static law's optimum fitted on the grid's final val losses: from the comparison's
    grid work directory when it exists, else from the bundle's ``compare`` part (the same runs; what
    ``jaxlaws demo`` fits)."""
    from jaxlaws.analysis.pipeline import analyse
    from jaxlaws.sweeps.bundle import load_bundle
    from jaxlaws.sweeps.io import read_sweep

    if grid_dir is not None and (grid_dir / "meta.json").is_file():
        sweep = read_sweep(grid_dir)
    else:
        sweep = load_bundle(setting, ("compare",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = analyse(sweep, seed=0).optimum
    row = opt[opt["seed"].astype(str) == "mean"]
    p = row[[c for c in opt.columns if c.startswith("p_")]].to_numpy(float)[0]
    return p / p.sum()


def _timed(log: dict, key: str, fn, path: Path):
    """Run ``fn``; record its wall time, load and commit under ``log[key]`` and write ``log`` to ``path`` at
    once (a later interruption keeps the finished stages' times)."""
    commit = git_commit()  # the code that trains (HEAD may move while it runs)
    t0, load0 = time.perf_counter(), round(os.getloadavg()[0], 2)
    out = fn()
    log[key] = {
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_avg_start": load0,
        "load_avg_end": round(os.getloadavg()[0], 2),
        "commit": commit,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(log, indent=1))
    return out


def train(args, settings, stages, timing: dict) -> None:
    from jaxlaws.train.sweep import dynamic_sweep, static_sweep

    if "compare" in stages:
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks/compare_methods.py"),
            "--settings",
            ",".join(settings),
            "--steps",
            str(STEPS),
            "--seeds",
            ",".join(map(str, SEEDS)),
            "--work",
            str(args.compare_work),
            "--results",
            str(Path(args.work) / "compare_results"),
        ]
        _timed(timing, "compare", lambda: subprocess.run(cmd, check=True, cwd=ROOT), timing_path(args))
    for setting in settings:
        cfg, data = config(SETTINGS[setting])
        work = Path(args.work) / setting
        kw = dict(progress=False, checkpoint_every=250)
        if "check" in stages and setting == "m2":
            print(f"[{setting}] check: static (0.5, 0.5) seed 0", flush=True)
            _timed(
                timing,
                f"{setting}/check",
                lambda: static_sweep(data, cfg, [[0.5, 0.5]], [0], work / "check", **kw),
                timing_path(args),
            )
        if "optimum" in stages:
            p = predicted_optimum(setting, Path(args.compare_work) / setting / "grid" / "sweep")
            print(f"[{setting}] optimum: training the predicted optimum {p.round(4).tolist()}", flush=True)
            _timed(
                timing,
                f"{setting}/optimum",
                lambda: static_sweep(data, cfg, p[None], list(SEEDS), work / "optimum", **kw),
                timing_path(args),
            )
        if "dynamic" in stages:
            parents, kids = parents_children(setting)
            print(f"[{setting}] dynamic: {len(parents)} parents x {len(kids)} children", flush=True)
            _timed(
                timing,
                f"{setting}/dynamic",
                lambda: dynamic_sweep(data, cfg, parents, kids, list(SEEDS), BREAK, REMAINING, work / "dynamic", **kw),
                timing_path(args),
            )


def timing_path(args) -> Path:
    return Path(args.work) / "timing.json"


def _compare_part(cdir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Static grid + method runs (+ children) of one comparison work directory as loss/matrix tables."""
    from jaxlaws.sweeps.io import read_sweep

    losses, mats, parts = [], [], []
    grid = read_sweep(cdir / "grid" / "sweep")
    losses.append(grid.losses)
    parts.append("grid")
    for name in METHOD_DIRS:
        d = cdir / name / "sweep"
        if not (d / "meta.json").is_file():
            continue
        sw = read_sweep(d)
        df = sw.losses[sw.losses["kind"] != "static"]  # DML's static runs are the grid's
        losses.append(df)
        if len(sw.matrices):
            mats.append(sw.matrices)
        parts.append(name)
    return pd.concat(losses, ignore_index=True), (pd.concat(mats, ignore_index=True) if mats else None), parts


def _config_hash(d: Path) -> str | None:
    f = d / "config.json"
    return json.loads(f.read_text()).get("config_hash") if f.is_file() else None


PART_WHAT = {
    "dynamic": "parents trained to B, each resumed as every child mixture for R steps",
    "optimum": "the static law's predicted optimum (mean over seeds, fitted on the grid's final val losses) "
    "trained from scratch",
    "check": "grid point (0.5, 0.5), seed 0, retrained with the export's code",
}


def _existing_provenance(out: Path) -> dict:
    f = out / "provenance.json"
    return json.loads(f.read_text()) if f.is_file() else {"settings": {}}


def export(args, settings) -> dict:
    """Write every part whose work directory exists under ``--out`` (Parquet sweep directories) and update
    ``provenance.json``; parts without a work directory here keep their files and provenance records, so
    each part can be regenerated on its own."""
    from jaxlaws.sweeps.io import file_digest, read_sweep, write_sweep
    from jaxlaws.sweeps.schema import Sweep

    out = Path(args.out)
    old = _existing_provenance(out)
    timing = json.loads(timing_path(args).read_text()) if timing_path(args).is_file() else {}
    cwall = dict(zip(SETTINGS, map(float, args.compare_wall_min.split(",")))) if args.compare_wall_min else {}
    prov = {
        "description": "Real runs trained by jaxlaws on the bundled text groups (byte-level). Regenerate: "
        "python benchmarks/make_bundle.py (everything, current code), --stages/--settings "
        "for single parts, or --export-only.",
        "model": {"preset": "tiny", "n_layers": 2, "d_model": 128, "n_heads": 4, "d_ff": 512, "vocab_size": 257},
        "training": {
            "steps": STEPS,
            "batch_size": 8,
            "seq_len": 64,
            "lr": 2e-3,
            "warmup_steps": STEPS // 10,
            "schedule": "cosine to 1e-4",
            "eval_every": STEPS // 4,
            "max_eval_chunks": 64,
        },
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "export_commit": git_commit(),
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU",
        "settings": {k: v for k, v in old["settings"].items() if k not in settings},
    }
    for setting in settings:
        groups = SETTINGS[setting]
        cdir = Path(args.compare_work) / setting
        work = Path(args.work) / setting
        kept = old["settings"].get(setting, {}).get("parts", {})
        sprov = {"groups": list(groups), "corpora": "jaxlaws/data/corpora (bundled text groups)", "parts": {}}
        if (cdir / "grid" / "sweep" / "meta.json").is_file():
            losses, mats, parts = _compare_part(cdir)
            sw = Sweep(losses, groups, mats) if mats is not None else Sweep(losses, groups)
            write_sweep(sw, out / setting / "compare", overwrite=True)
            info = json.loads((cdir / "info.json").read_text()) if (cdir / "info.json").is_file() else {}
            sprov["parts"]["compare"] = {
                "what": "static grid sweep (7 mixtures x 3 seeds) and every method's runs with the break-step "
                f"children (B={BREAK}, 6 children x R={REMAINING} steps) of Skill-It, DoReMi, DoGE, Aioli; "
                "stratified, DML and restricted Aioli runs (no children)",
                "methods": parts,
                "seeds": list(SEEDS),
                "steps": STEPS,
                "break_step": BREAK,
                "remaining_steps": REMAINING,
                "command": args.compare_command,
                "commit": args.compare_commit,
                "config_hash": _config_hash(cdir / "grid"),
                "wall_min": cwall.get(setting, timing.get("compare", {}).get("wall_s", float("nan")) / 60),
                "note": args.compare_note,
                "grid_best": info.get("grid", {}).get("grid_best"),
                "dml_optimum": info.get("dml", {}).get("dml_optimum"),
            }
        elif "compare" in kept:
            sprov["parts"]["compare"] = kept["compare"]
        for part, what in PART_WHAT.items():
            d = work / part
            if not (d / "sweep" / "meta.json").is_file():
                if part in kept:
                    sprov["parts"][part] = kept[part]
                continue
            s = read_sweep(d / "sweep")
            write_sweep(s, out / setting / part, overwrite=True)
            t = timing.get(f"{setting}/{part}", {})
            L = s.losses
            rec = {
                "what": what,
                "seeds": sorted(map(int, L["seed"].unique())),
                "runs": int(L[["run", "seed"]].drop_duplicates().shape[0]),
                "steps": STEPS,
                "command": f"python benchmarks/make_bundle.py --settings {setting} --stages {part}",
                "commit": t.get("commit"),
                "config_hash": _config_hash(d),
                "wall_s": t.get("wall_s"),
                "load_avg_start": t.get("load_avg_start"),
                "load_avg_end": t.get("load_avg_end"),
                "finished": t.get("finished"),
            }
            if t.get("note"):
                rec["note"] = t["note"]
            if part == "dynamic":
                parents, kids = parents_children(setting)
                rec.update(
                    break_step=BREAK,
                    remaining_steps=REMAINING,
                    parents=parents.round(6).tolist(),
                    children=kids.round(6).tolist(),
                )
            if part == "optimum":
                pcols = [f"p_{g}" for g in groups]
                rec["mixture"] = L[pcols].iloc[0].round(6).tolist()
            sprov["parts"][part] = rec
        prov["settings"][setting] = sprov
    prov["settings"] = {k: prov["settings"][k] for k in SETTINGS if k in prov["settings"]}
    files = {}
    for f in sorted(out.rglob("*")):
        if f.is_file() and f.name != "provenance.json":
            files[str(f.relative_to(out))] = file_digest(f)[0]
    prov["bytes"] = sum(files.values())
    (out / "provenance.json").write_text(json.dumps(prov, indent=1, default=str) + "\n")
    return prov


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="m2,m3")
    ap.add_argument(
        "--stages",
        default="compare,check,optimum,dynamic",
        help="training stages to run (comma-separated), before the export",
    )
    ap.add_argument("--export-only", action="store_true", help="only rebuild the bundle from the work dirs")
    ap.add_argument("--work", default="runs/bundle")
    ap.add_argument("--compare-work", default=None, help="comparison work dirs (default: WORK/compare)")
    ap.add_argument("--compare-commit", default=None, help="commit that trained the comparison (default: now)")
    ap.add_argument("--compare-command", default=COMPARE_CMD)
    ap.add_argument("--compare-wall-min", default=None, help="comparison wall times, minutes: M2,M3")
    ap.add_argument("--compare-note", default="")
    ap.add_argument("--out", default=str(ROOT / "jaxlaws" / "data" / "bundle"))
    args = ap.parse_args()
    args.compare_work = args.compare_work or str(Path(args.work) / "compare")
    args.compare_commit = args.compare_commit or git_commit()
    settings = args.settings.split(",")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if not args.export_only:
        timing = json.loads(timing_path(args).read_text()) if timing_path(args).is_file() else {}
        train(args, settings, args.stages.split(","), timing)
    prov = export(args, settings)
    print(f"bundle written to {args.out}: {prov['bytes'] / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
