"""The comparison experiment: train several mixing methods on the same groups and seeds, and compare them.

:func:`compare` runs :func:`~jaxlaws.train.methods.sweep.method_sweep` for each method in its own work
directory under ``out`` (``stratified`` first: it is DoReMi's reference and every method's baseline; ``dml``
reuses ``grid``'s static sweep; ``aioli_restricted`` starts from the grid-search mixture), then tabulates per
method: the final test loss per group, the average test perplexity (mean over groups of ``exp(loss)``), its
difference to stratified (per seed, then mean and std over seeds), the method's ``sim(Ã^t, A^{t*})`` from
its break-step children (``jaxlaws.analysis.method_parameters``; seeds whose fits are flagged are left out of
the mean and counted in ``sim_flagged_seeds``) and its training cost per run-step relative to stratified.
Everything is resumable: run the same call again after an interruption.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxlaws._typing import ArrayLike
from jaxlaws.sweeps.schema import SweepError
from jaxlaws.train.checkpoint import work_lock
from jaxlaws.train.methods.sweep import ANALYSED, METHODS, MethodResult, method_sweep, validate_method_args
from jaxlaws.train.sweep import SweepData, TrainConfig

__all__ = ["compare", "Comparison", "DEFAULT_METHODS"]

DEFAULT_METHODS = ("stratified", "grid", "dml", "skillit", "doremi", "doge", "aioli", "aioli_restricted")
# Methods given break-step children. Restricted Aioli is not probed: its first matrix comes after the prior
# phase, which usually ends after the shared break step.
_PROBED = ("skillit", "doremi", "doge", "aioli", "aioli_diagonal", "aioli_once")


@dataclasses.dataclass
class Comparison:
    """``table``: one row per method (means/stds over seeds); ``per_seed``: every method x seed;
    ``similarity``: per method x seed ``sim`` rows; ``results``: each method's :class:`MethodResult`."""

    table: pd.DataFrame
    per_seed: pd.DataFrame
    similarity: pd.DataFrame
    results: dict[str, MethodResult]

    def to_markdown(self, digits: int = 3) -> str:
        cols = [
            "method",
            "test_ppl",
            "d_ppl_vs_stratified",
            "test_loss",
            "sim",
            "sim_method_sign",
            "time_per_step_vs_stratified",
            "run_steps_vs_stratified",
            "mixture",
        ]
        df = self.table
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

        def f(x):
            return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"

        for _, r in df.iterrows():
            cells = [
                r["method"],
                f"{f(r['ppl_mean'])} ± {f(r['ppl_std'])}",
                f"{f(r['d_ppl_mean'])} ± {f(r['d_ppl_std'])}",
                f"{f(r['loss_mean'])}",
                "" if np.isnan(r["sim_mean"]) else f"{f(r['sim_mean'])} ± {f(r['sim_std'])}",
                f(r["sim_method_sign_mean"]),
                f(r["time_per_step_ratio"]),
                f(r["compute_ratio"]),
                r["mixture"],
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        sim = self.similarity
        for label in ("doge (M^T)", "doge (M)"):
            if len(sim) and (sim["method"] == label).any():
                d = sim[sim["method"] == label]
                lines.append(
                    f"\n{label}, the other orientation of DoGE's matrix: sim {f(d['sim'].mean())} ± "
                    f"{f(d['sim'].std(ddof=0))}, sim_method_sign {f(d['sim_method_sign'].mean())}"
                )
        return "\n".join(lines)


def compare(
    data: SweepData,
    cfg: TrainConfig,
    seeds: Sequence[int],
    out: str | Path,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    hparams: dict[str, dict] | None = None,
    break_step: int | None = None,
    children: ArrayLike | None = None,
    remaining_steps: int | None = None,
    mixtures: ArrayLike | None = None,
    restricted_prior_steps: int | None = None,
    checkpoint_every: int = 0,
    progress: bool = True,
    transpose_doge: bool = False,
) -> Comparison:
    """Train ``methods`` (see :data:`~jaxlaws.train.methods.sweep.METHODS`) and compare them.

    ``hparams[method]`` overrides that method's defaults; ``break_step`` / ``children`` /
    ``remaining_steps`` give every analysed method its break-step children (``sim``); ``mixtures`` is the
    static sweep of grid search and DML; ``restricted_prior_steps`` (default half the run) is how long
    restricted Aioli trains the grid-search mixture before adapting. All arguments are validated before
    anything is trained.

    Args:
      data: the :class:`~jaxlaws.train.sweep.SweepData`.
      cfg: the :class:`~jaxlaws.train.sweep.TrainConfig`.
      seeds: the training seeds.
      out: the work directory.
      methods: the methods to train.
      hparams: per-method hyper-parameters.
      break_step, children, remaining_steps: the break-step probe.
      mixtures: the static sweep of grid search and DML.
      restricted_prior_steps: restricted Aioli's prior phase.
      checkpoint_every: resume checkpoints every N steps (0: never).
      progress: show a progress bar.
      transpose_doge: the DoGE matrix's LMO reading in the analysis.

    Returns:
      A :class:`Comparison`: one row per method and one per method x seed.
    """
    methods = list(dict.fromkeys(methods))
    unknown = [mth for mth in methods if mth not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    if not methods:
        raise ValueError("no methods to compare")
    if "stratified" not in methods:
        methods.insert(0, "stratified")
    if "aioli_restricted" in methods and "grid" not in methods:
        methods.insert(methods.index("aioli_restricted"), "grid")
    if "dml" in methods and "grid" in methods and methods.index("dml") < methods.index("grid"):
        methods.remove("dml")
        methods.insert(methods.index("grid") + 1, "dml")
    methods.remove("stratified")
    methods.insert(0, "stratified")
    hparams = {k: dict(v) for k, v in (hparams or {}).items()}
    m, total = len(data.names), cfg.optim.total_steps
    prior_steps = total // 2 if restricted_prior_steps is None else int(restricted_prior_steps)
    for mth in methods:  # validate everything first
        hp = dict(hparams.get(mth, {}))
        if mth == "aioli_restricted":
            hp.setdefault("prior", [1.0 / m] * m)
            hp.setdefault("prior_steps", prior_steps)
        brk = break_step if mth in _PROBED else None
        validate_method_args(
            mth,
            m,
            cfg,
            break_step=brk,
            children=children if brk else None,
            remaining_steps=remaining_steps if brk else None,
            hparams=hp,
        )
    out = Path(out)
    with work_lock(out):
        results = _train_all(
            methods,
            data,
            cfg,
            seeds,
            out,
            hparams,
            break_step,
            children,
            remaining_steps,
            mixtures,
            prior_steps,
            checkpoint_every,
            progress,
        )
        comp = _tabulate(results, data.names, transpose_doge)
        _write(comp, results, out)
    return comp


def _train_all(
    methods,
    data,
    cfg,
    seeds,
    out,
    hparams,
    break_step,
    children,
    remaining_steps,
    mixtures,
    prior_steps,
    checkpoint_every,
    progress,
) -> dict[str, MethodResult]:
    results: dict[str, MethodResult] = {}
    for mth in methods:
        hp = dict(hparams.get(mth, {}))
        kw: dict[str, Any] = {}
        if mth == "doremi" and "stratified" in results:
            kw["reference_dir"] = out / "stratified"
        if mth in ("grid", "dml"):
            kw["mixtures"] = mixtures
            if mth == "dml" and "grid" in methods:
                kw["static_dir"] = out / "grid"
        if mth == "aioli_restricted":
            g = results["grid"].final
            hp.setdefault("prior", [float(g[f"p_{n}"].iloc[0]) for n in data.names])
            hp.setdefault("prior_steps", prior_steps)
        brk = break_step if mth in _PROBED else None
        results[mth] = method_sweep(
            mth,
            data,
            cfg,
            seeds,
            out / mth,
            hparams=hp,
            break_step=brk,
            children=children if brk else None,
            remaining_steps=remaining_steps if brk else None,
            checkpoint_every=checkpoint_every,
            progress=progress,
            **kw,
        )
    return results


def _write(comp: Comparison, results: dict[str, MethodResult], out: Path) -> None:
    from jaxlaws.sweeps.io import atomic_write_bytes

    atomic_write_bytes(out / "comparison.md", (comp.to_markdown() + "\n").encode())
    atomic_write_bytes(out / "comparison.csv", comp.table.to_csv(index=False).encode())
    atomic_write_bytes(out / "per_seed.csv", comp.per_seed.to_csv(index=False).encode())
    atomic_write_bytes(
        out / "info.json", json.dumps({k: r.info for k, r in results.items()}, indent=1, default=str).encode()
    )


def _tabulate(results: dict[str, MethodResult], names: Sequence[str], transpose_doge: bool) -> Comparison:
    from jaxlaws.analysis.methods import method_parameters

    per_seed = pd.concat([r.final.assign(method=k) for k, r in results.items()], ignore_index=True)
    strat = per_seed[per_seed["method"] == "stratified"].set_index("seed")
    per_seed["d_ppl_vs_stratified"] = per_seed["test_ppl"] - per_seed["seed"].map(strat["test_ppl"])
    per_seed["d_loss_vs_stratified"] = per_seed["test_mean"] - per_seed["seed"].map(strat["test_mean"])

    def per_step(r: MethodResult) -> float:
        """Wall seconds per run-step of the method's own run (the one that adapts the mixture)."""
        run = {"doremi": "doremi", "doge": "doge"}.get(r.method, r.final_run)
        if run not in r.run_steps or not r.run_steps[run]:
            return float("nan")
        return r.seconds[run] / r.run_steps[run]

    base_time = per_step(results["stratified"])
    base_steps = sum(results["stratified"].run_steps.values())
    sims, rows = [], []
    for k, r in results.items():
        d = per_seed[per_seed["method"] == k]
        sim = pd.DataFrame()
        if k in ANALYSED and (r.sweep.losses["kind"] == "child").any():
            try:
                ma = method_parameters(r.sweep, ANALYSED[k], transpose_doge=transpose_doge and k == "doge")
            except SweepError as e:  # e.g. no matrix recorded before the break: say so, keep the table
                warnings.warn(f"{k}: no sim ({e})", stacklevel=2)
            else:
                sim = ma.similarity.assign(method=k)
                sims.append(sim)
                if k == "doge":  # the LMO reading of DoGE's matrix is M^T (docs/DEVIATIONS.md): report it beside
                    alt = method_parameters(r.sweep, "doge", transpose_doge=not transpose_doge).similarity
                    sims.append(alt.assign(method="doge (M^T)" if not transpose_doge else "doge (M)"))
        flagged = int((sim["flags"] != "").sum()) if len(sim) and "flags" in sim else 0
        if flagged:  # a seed whose A* or scale fit is flagged does not count in the mean sim
            sim = sim[sim["flags"] == ""]
        mix = d[[f"p_{g}" for g in names]].mean()
        rows.append(
            {
                "method": k,
                "ppl_mean": d["test_ppl"].mean(),
                "ppl_std": d["test_ppl"].std(ddof=0),
                "d_ppl_mean": d["d_ppl_vs_stratified"].mean(),
                "d_ppl_std": d["d_ppl_vs_stratified"].std(ddof=0),
                "loss_mean": d["test_mean"].mean(),
                **{f"test_{g}": d[f"test_{g}"].mean() for g in names},
                "sim_mean": sim["sim"].mean() if len(sim) else float("nan"),
                "sim_std": sim["sim"].std(ddof=0) if len(sim) else float("nan"),
                "sim_method_sign_mean": sim["sim_method_sign"].mean() if len(sim) else float("nan"),
                "b_mean": sim["b"].mean() if len(sim) else float("nan"),
                "sim_seeds": len(sim),
                "sim_flagged_seeds": flagged,
                "time_per_step_ratio": per_step(r) / base_time,
                "compute_ratio": sum(r.run_steps.values()) / base_steps,
                "run_steps": sum(r.run_steps.values()),
                "mixture": "/".join(f"{x:.3f}" for x in mix),
                "n_seeds": len(d),
            }
        )
    similarity = pd.concat(sims, ignore_index=True) if sims else pd.DataFrame()
    return Comparison(pd.DataFrame(rows), per_seed, similarity, results)
