"""A data-mixing method end to end: its stages, its final run, its break-step children, one sweep directory.

=====================  ==========================================================  ======================
method                 stages (each resumable, in ``work_dir``)                    the run that counts
=====================  ==========================================================  ======================
``stratified``         uniform mixture                                             ``stratified``
``static``             the fixed mixture ``hparams["p"]``                          ``static``
``grid``               a static sweep (``mixtures``); the mixture with the         best static run
                       lowest mean validation loss over seeds (grid search)
``dml``                the same static sweep, the static law fitted per seed       ``dml_final``
                       (``jaxlaws.analysis``), each seed's predicted optimum
                       trained (the Data Mixing Laws baseline)
``skillit``            one one-hot run per group for ``graph_steps`` (the          ``skillit``
                       skills graph, unless ``graph`` is given), then Skill-It
``doremi``             a reference (stratified run from ``reference_dir`` or       ``doremi_final``
                       trained here), the DoReMi proxy, then its averaged
                       weights trained statically
``doge``               the DoGE proxy, then its averaged weights statically        ``doge_final``
``aioli``              Aioli (``aioli_restricted``: a ``prior`` for                ``aioli``
                       ``prior_steps`` first; ``aioli_diagonal`` /
                       ``aioli_once``: the two ablations)
=====================  ==========================================================  ======================

With ``break_step`` B and ``children`` mixtures, the analysed run of the method (Aioli, Skill-It, the DoReMi
and DoGE proxies) saves its state at B and each child mixture is trained from it for ``remaining_steps``
(``kind="child"``, ``parent`` = the method run, ``method`` = the method): ``jaxlaws analyse`` then fits
:math:`A^{t*}` on the children and compares it with the method's recorded matrix (Aioli paper, Sec. 4). The
sweep is written to ``work_dir/sweep``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxlaws._typing import ArrayLike
from jaxlaws.sweeps.schema import Sweep, proportion_columns
from jaxlaws.train.checkpoint import work_lock
from jaxlaws.train.loop import Loop
from jaxlaws.train.methods.aioli import Aioli
from jaxlaws.train.methods.base import Constant, Policy
from jaxlaws.train.methods.doge import DoGE
from jaxlaws.train.methods.doremi import DoReMi
from jaxlaws.train.methods.run import load_final_params, train_policy
from jaxlaws.train.methods.skillit import SkillIt, load_graph, skills_graph
from jaxlaws.train.sweep import (
    RunSpec,
    SweepData,
    TrainConfig,
    check_mixtures,
    default_vmap_width,
    mixture_tag,
    run_sweep,
    static_specs,
)

__all__ = ["METHODS", "ANALYSED", "make_policy", "method_sweep", "MethodResult", "validate_method_args"]

METHODS = (
    "stratified",
    "static",
    "grid",
    "dml",
    "skillit",
    "doremi",
    "doge",
    "aioli",
    "aioli_restricted",
    "aioli_diagonal",
    "aioli_once",
)
ANALYSED = {
    "skillit": "skillit",
    "doremi": "doremi",
    "doge": "doge",
    "aioli": "aioli",
    "aioli_restricted": "aioli",
    "aioli_diagonal": "aioli",
    "aioli_once": "aioli",
}
_POLICIES = {"aioli": Aioli, "skillit": SkillIt, "doremi": DoReMi, "doge": DoGE}


def _base(method: str) -> str:
    return ANALYSED.get(method, method)


def make_policy(method: str, m: int, cfg: TrainConfig, **hparams: Any) -> Policy:
    """The policy of ``method`` for ``m`` groups: the original's defaults for ``m`` (``Policy.defaults``)
    overridden by ``hparams``. Unknown hyper-parameters and out-of-range values raise ``ValueError``."""
    common = dict(m=m, model=cfg.model, optim=cfg.optim, batch_size=cfg.batch_size, seq_len=cfg.length)
    if method in ("stratified", "static"):
        p = hparams.pop("p", None)
        if hparams:
            raise ValueError(f"{method}: unknown hyper-parameters {sorted(hparams)}")
        if method == "static":
            if p is None:
                raise ValueError("static: needs a mixture p")
            p = tuple(float(x) for x in check_mixtures(p, m, "static mixture p")[0])
        return Constant(**common, p=p)
    base = _base(method)
    if base not in _POLICIES:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    cls = _POLICIES[base]
    hp = cls.defaults(m)
    if method == "aioli_diagonal":  # the original's ablation: ohf 1, A = diag(G), updates every 2000 steps
        hp.update(diagonal=True, ohf=1.0, update_steps=min(2000, cfg.optim.total_steps))
    if method == "aioli_once":  # A estimated once: one round for the whole run
        hp.update(update_steps=cfg.optim.total_steps)
    names = {f.name for f in dataclasses.fields(cls)} - set(common)
    unknown = sorted(set(hparams) - names)
    if unknown:
        raise ValueError(f"{method}: unknown hyper-parameters {unknown}; valid: {sorted(names)}")
    hp.update(hparams)
    if method == "aioli_restricted" and hp.get("prior") is None:
        raise ValueError("aioli_restricted: needs a prior mixture (hparams prior=..., prior_steps=...)")
    if hp.get("prior") is not None:
        hp["prior"] = tuple(float(x) for x in check_mixtures(hp["prior"], m, "aioli prior")[0])
    return cls(**common, **hp)


@dataclasses.dataclass
class MethodResult:
    """What :func:`method_sweep` trained.

    Attributes:
      method: the method's name; final_run: the run whose test loss is the method's result.
      sweep: everything trained (loss rows of all stages, recorded matrices, children).
      final: one row per seed: ``test_<g>`` losses, ``test_mean``, ``test_ppl`` (mean over groups of
        ``exp(test loss)``) and ``p_<g>`` (the final run's mixture).
      seconds, run_steps: training wall time and run-steps of each stage (as recorded when it was trained).
      info: stage outputs (learned weights, the skills graph, the grid choice, the DML optimum).
    """

    method: str
    final_run: str
    sweep: Sweep
    final: pd.DataFrame
    seconds: dict[str, float]
    run_steps: dict[str, int]
    info: dict[str, Any]


def validate_method_args(
    method: str,
    m: int,
    cfg: TrainConfig,
    *,
    break_step: int | None,
    children: Any,
    remaining_steps: int | None,
    hparams: dict | None,
) -> Policy | None:
    """Check everything before any training; returns the method's policy (``None`` for grid/dml)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    total = cfg.optim.total_steps
    if break_step is not None:
        if method not in ANALYSED:
            raise ValueError(f"{method}: only {sorted(ANALYSED)} record a matrix to judge at a break step")
        if not 0 < break_step < total:
            raise ValueError(f"break step {break_step} must be in (0, total_steps={total}) (past the end)")
        if children is None or remaining_steps is None:
            raise ValueError("a break step needs child mixtures and remaining_steps")
        if remaining_steps < 1 or break_step + remaining_steps > total:
            raise ValueError(
                f"remaining_steps={remaining_steps}: children must train >= 1 step and end by total_steps={total}"
            )
        check_mixtures(children, m, "child mixtures")
    if method in ("grid", "dml"):
        if hparams:
            raise ValueError(f"{method}: takes no hyper-parameters (give the static sweep's mixtures)")
        return None
    return make_policy(method, m, cfg, **dict(hparams or {}))


def _result_row(seed: int, run: str, test: pd.DataFrame, names: Sequence[str]) -> dict:
    """A run's result from its test loss rows (one per group): the losses, their mean, the average test
    perplexity (mean over groups of exp(loss)) and the run's mixture."""
    loss = test.set_index("group")["loss"]
    row = {"seed": seed, "run": run, **{f"test_{g}": float(loss[g]) for g in names}}
    row["test_mean"] = float(np.mean([row[f"test_{g}"] for g in names]))
    row["test_ppl"] = float(np.mean([np.exp(row[f"test_{g}"]) for g in names]))
    row.update({c: float(test[c].iloc[0]) for c in proportion_columns(names)})
    return row


def _final_table(rows: dict[int, dict], names: Sequence[str], run: str) -> pd.DataFrame:
    out = []
    for s, rec in sorted(rows.items()):
        df = pd.DataFrame(rec["rows"])
        out.append(_result_row(s, run, df[df["split"] == "test"], names))
    return pd.DataFrame(out)


def _matrix_frame(run: str, recs: dict[int, dict]) -> pd.DataFrame:
    parts = [pd.DataFrame(r["records"]).assign(run=run, seed=s) for s, r in recs.items() if r["records"]]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def method_sweep(
    method: str,
    data: SweepData,
    cfg: TrainConfig,
    seeds: Sequence[int],
    work_dir: str | Path,
    *,
    hparams: dict | None = None,
    break_step: int | None = None,
    children: ArrayLike | None = None,
    remaining_steps: int | None = None,
    graph: ArrayLike | str | Path | Sequence[ArrayLike] | None = None,
    graph_steps: int | None = None,
    reference_dir: str | Path | None = None,
    mixtures: ArrayLike | None = None,
    static_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    progress: bool = True,
    fmt: str = "parquet",
    write: bool = True,
) -> MethodResult:
    """Train ``method`` for every seed in ``work_dir`` (resumable).

    Args:
      data: the :class:`~jaxlaws.train.sweep.SweepData`.
      cfg: the :class:`~jaxlaws.train.sweep.TrainConfig`.
      seeds: the training seeds.
      work_dir: the resumable work directory.
      method: one of :data:`METHODS` (table in the module docstring).
      hparams: the policy's hyper-parameters over the defaults for ``m`` (``make_policy``).
      break_step, children, remaining_steps: the method-analysis probe (B, child mixtures, R).
      graph: Skill-It's graph, an (m, m) array, a file (``load_graph``) or a list with one per seed; default
        learned here from one-hot runs of ``graph_steps`` (default ``total_steps // (2m)``) steps.
      reference_dir: a work directory holding a finished ``stratified`` run of the same seeds and
        configuration (DoReMi's reference); default: trained here.
      mixtures: the static sweep of ``grid`` / ``dml`` (default: the m=2 grid, or a Dirichlet cover of 9).
      static_dir: where that static sweep is trained (default ``work_dir``; ``dml`` can reuse ``grid``'s).
      checkpoint_every: resume checkpoints every N steps inside a run (0: resume at stage granularity).
      progress: show a progress bar.
      fmt: ``"parquet"`` or ``"csv"`` tables.
      write: write the sweep to the work directory.

    Returns:
      A :class:`MethodResult`: the runs' sweep, the analysis table, per-stage seconds and run-steps.
    """
    policy = validate_method_args(
        method,
        len(data.names),
        cfg,
        break_step=break_step,
        children=children,
        remaining_steps=remaining_steps,
        hparams=hparams,
    )
    with work_lock(work_dir):  # one process per work directory (re-entrant for the stages below)
        return _method_sweep(
            method,
            policy,
            data,
            cfg,
            seeds,
            Path(work_dir),
            hparams,
            break_step,
            children,
            remaining_steps,
            graph,
            graph_steps,
            reference_dir,
            mixtures,
            static_dir,
            checkpoint_every,
            progress,
            fmt,
            write,
        )


def _method_sweep(
    method,
    policy,
    data,
    cfg,
    seeds,
    work,
    hparams,
    break_step,
    children,
    remaining_steps,
    graph,
    graph_steps,
    reference_dir,
    mixtures,
    static_dir,
    checkpoint_every,
    progress,
    fmt,
    write,
) -> MethodResult:
    names, m = data.names, len(data.names)
    seeds = [int(s) for s in seeds]
    total = cfg.optim.total_steps
    from tqdm.auto import tqdm

    vmap_width = default_vmap_width(cfg)
    seconds: dict[str, float] = {}
    run_steps: dict[str, int] = {}
    info: dict[str, Any] = {}
    losses: list[pd.DataFrame] = []
    mats: list[pd.DataFrame] = []
    bar = tqdm(total=0, disable=not progress, unit="run-step", desc=f"{method}")

    def stage(
        run: str, pol: Policy, label: str, *, extras=None, stop=None, brk=None, eval_steps=(), save_final: bool = False
    ) -> dict:
        t = time.perf_counter()
        bar.total += len(seeds) * (stop or total)
        bar.refresh()
        recs = train_policy(
            Loop(cfg, m, pol, vmap_width=vmap_width),
            data,
            seeds,
            work,
            run=run,
            method=label,
            extras=extras,
            stop=stop,
            break_step=brk,
            eval_steps=eval_steps,
            checkpoint_every=checkpoint_every,
            bar=bar,
            save_final=save_final,
        )
        seconds[run] = float(next(iter(recs.values())).get("seconds", time.perf_counter() - t))
        run_steps[run] = int(next(iter(recs.values())).get("run_steps", 0))  # all seeds together
        losses.append(pd.concat([pd.DataFrame(r["rows"]) for r in recs.values()], ignore_index=True))
        mats.append(_matrix_frame(run, recs))
        return recs

    def const(p=None) -> Policy:
        return make_policy("stratified", m, cfg) if p is None else make_policy("static", m, cfg, p=p)

    child_label = _base(method)
    probe_run = None
    if method in ("stratified", "static"):
        final_run = method
        final = stage(method, policy, method, save_final=method == "stratified")  # DoReMi's reference
    elif method in ("grid", "dml"):
        mix = _default_mixtures(m) if mixtures is None else check_mixtures(mixtures, m)
        t = time.perf_counter()
        st = run_sweep(static_specs(mix, seeds, total), data, cfg, static_dir or work, progress=progress, write=False)
        seconds["static_sweep"] = time.perf_counter() - t
        run_steps["static_sweep"] = len(mix) * len(seeds) * total
        losses.append(st.losses)
        if method == "grid":
            final_run, final = _grid_choice(st, seeds, info)
        else:
            opt = _dml_optimum(st, seeds)
            info["dml_optimum"] = {int(s): list(map(float, p)) for s, p in zip(seeds, opt)}
            final_run = "dml_final"
            final = stage(final_run, const(), "dml", extras=list(opt))
    elif method == "skillit":
        if graph is None:
            gsteps = graph_steps or max(1, total // (2 * m))
            start, end = {s: np.zeros((m, m)) for s in seeds}, {s: np.zeros((m, m)) for s in seeds}
            for i, g in enumerate(names):
                recs = stage(f"skillit_graph_{g}", const(np.eye(m)[i]), "skillit_graph", stop=gsteps, eval_steps=(0,))
                for s, r in recs.items():
                    df = pd.DataFrame(r["rows"])
                    df = df[df["split"] == "val"].set_index(["step", "group"])["loss"]
                    start[s][i] = [df[(0, h)] for h in names]
                    end[s][i] = [df[(gsteps, h)] for h in names]
            graphs = [skills_graph(start[s], end[s]) for s in seeds]
        elif isinstance(graph, (list, tuple)) and len(graph) == len(seeds) and np.ndim(graph[0]) == 2:
            graphs = [np.asarray(g) for g in graph]
        else:
            graphs = [load_graph(graph, m) if isinstance(graph, (str, Path)) else np.asarray(graph)] * len(seeds)
        info["graph"] = {int(s): np.asarray(g).tolist() for s, g in zip(seeds, graphs)}
        final_run = probe_run = "skillit"
        final = stage("skillit", policy, "skillit", extras=graphs, brk=break_step)
    elif method == "doremi":
        if reference_dir is None:
            stage("stratified", const(), "stratified", save_final=True)
            reference_dir = work
        refs = [load_final_params(reference_dir, "stratified", s, cfg, data) for s in seeds]
        proxy = stage("doremi", policy, "doremi", extras=refs, brk=break_step)
        w = [np.asarray(proxy[s]["outputs"]["avg_weights"]) for s in seeds]
        info["avg_weights"] = {int(s): x.tolist() for s, x in zip(seeds, w)}
        probe_run, final_run = "doremi", "doremi_final"
        final = stage(final_run, const(), "doremi", extras=w)
    elif method == "doge":
        proxy = stage("doge", policy, "doge", brk=break_step)
        w = [np.asarray(proxy[s]["outputs"]["avg_weights"]) for s in seeds]
        info["avg_weights"] = {int(s): x.tolist() for s, x in zip(seeds, w)}
        probe_run, final_run = "doge", "doge_final"
        final = stage(final_run, const(), "doge", extras=w)
    else:  # aioli and its variants
        final_run = probe_run = method
        final = stage(method, policy, "aioli", brk=break_step)
    bar.close()

    if break_step is not None and probe_run is not None:
        kids = check_mixtures(children, m, "child mixtures")
        specs = [
            RunSpec(
                f"{probe_run}_child_B{break_step}_R{remaining_steps}_{mixture_tag(p)}",
                s,
                tuple(map(float, p)),
                "child",
                break_step,
                break_step + remaining_steps,
                parent=probe_run,
                break_step=break_step,
                steps_run=remaining_steps,
                method=child_label,
            )
            for s in seeds
            for p in kids
        ]
        t = time.perf_counter()
        ch = run_sweep(specs, data, cfg, work, progress=progress, write=False)
        seconds["children"] = time.perf_counter() - t
        losses.append(ch.losses)
    matrices = pd.concat([x for x in mats if len(x)], ignore_index=True) if any(len(x) for x in mats) else None
    sweep = Sweep(
        pd.concat(losses, ignore_index=True), names, **({"matrices": matrices} if matrices is not None else {})
    )
    if write:
        from jaxlaws.sweeps.io import write_sweep

        write_sweep(sweep, work / "sweep", fmt, overwrite=True)
    table = final if isinstance(final, pd.DataFrame) else _final_table(final, names, final_run)
    return MethodResult(method, final_run, sweep, table, seconds, run_steps, info)


def _default_mixtures(m: int) -> np.ndarray:
    from jaxlaws.sweeps.dirichlet import dirichlet_cover, two_group_grid

    return two_group_grid() if m == 2 else dirichlet_cover(m, 9, 0)


def _static_table(st: Sweep, split: str) -> pd.DataFrame:
    df = st.losses[(st.losses["kind"] == "static") & (st.losses["split"] == split)]
    df = df[df["step"] == df.groupby(["run", "seed"])["step"].transform("max")]
    return df


def _grid_choice(st: Sweep, seeds: list[int], info: dict) -> tuple[str, pd.DataFrame]:
    """Grid search: the static mixture with the lowest validation loss (mean over groups, then seeds)."""
    val = _static_table(st, "val").groupby(["run", "seed"])["loss"].mean().groupby("run").mean()
    best = str(val.idxmin())
    info["grid_val_mean"] = {k: float(v) for k, v in val.items()}
    info["grid_best"] = best
    test = _static_table(st, "test")
    test = test[test["run"] == best]
    return best, pd.DataFrame([_result_row(s, best, test[test["seed"] == s], st.groups) for s in seeds])


def _dml_optimum(st: Sweep, seeds: list[int]) -> np.ndarray:
    """Each seed's predicted optimal mixture from the static law fitted on its static runs (validation)."""
    import warnings

    from jaxlaws.analysis.optimum import optimum_table
    from jaxlaws.analysis.static import fit_static

    fits = fit_static(st, split="val")
    form = "two_group" if st.m == 2 else "log_linear"
    clean = fits.params[fits.params["flags"] == ""] if "flags" in fits.params else fits.params
    params = {
        g: {int(r["seed"]): r[list(fits.param_names)].to_numpy(float) for _, r in d.iterrows()}
        for g, d in clean.groupby("group")
    }
    good = [s for s in seeds if all(s in params.get(g, {}) for g in st.groups)]
    if not good:
        raise ValueError(
            "dml: every seed's static-law fit is flagged (see the static fits' flags); no optimum to train"
        )
    opt = optimum_table({g: {s: params[g][s] for s in good} for g in st.groups}, st.groups, form)
    opt = opt[opt["seed"].isin(good)].set_index("seed")
    p = np.clip(opt.loc[good, proportion_columns(st.groups)].to_numpy(float), 0, None)
    p = dict(zip(good, p / p.sum(1, keepdims=True)))
    missing = [s for s in seeds if s not in p]
    if missing:  # a seed whose own law fit is flagged trains the mean optimum of the others
        warnings.warn(
            f"dml: static-law fits of seed(s) {missing} are flagged; they train the mean optimum of seeds {good}",
            stacklevel=3,
        )
    mean = np.mean(list(p.values()), 0)
    return np.stack([p.get(s, mean / mean.sum()) for s in seeds])
