r"""Benchmark: jaxlaws on public data no one on this project produced, against SciPy in the same run.

Held-out error is the figure of merit; every held-out number is a prediction of points the fit did not see.

Cases (loaders and sources in ``benchmarks/public``; licences in ``benchmarks/data/public/SOURCE.md``):

* **Chinchilla** (Epoch's 240 points): :math:`L = E + A/N^\alpha + B/D^\beta`, the law's default objective
  (Huber(1e-3) on :math:`\log L`, summed) from its default 4,500-init grid. Objective against Epoch's
  0.0010182740; held-out: k-fold :func:`jaxlaws.cross_validate`; baseline OLS of log L on log N, log D.
* **Data Mixing Laws** 5Mix (5 domains) and RedPajama (7 sources), per model size 70M-410M at step 30,000:
  the static law :math:`L_g = e^\ell + \exp(b + \sum_{j<m} t_j p_j)` per coarse validation group (5 groups);
  held-out: leave-one-mixture-out (``--full``) or 5-fold, one :func:`jaxlaws.cross_validate` call per size.
* **RegMix** (512 train + 256 test 1M runs, 17 domains, Pile-CC loss): the same law with :math:`m = 17`; rows
  divided by their sums (published rounded); held-out: the authors' train -> test split (MAE, Spearman x100
  against RegMix LightGBM's published 98.92) and 4-fold CV on train.
* **scalebench** domain mixture: per size, 5 domain losses, 20 train -> 6 test mixtures; test MAE against the
  split authors' SciPy reference (0.0273 / 0.0296 / 0.0293 / 0.0329).

Fitters: ``jaxlaws defaults`` (the engine's defaults: the law's objective, bounds and penalty), ``jaxlaws
unregularised`` (``bounds=None, penalty=None``), SciPy ``least_squares(loss="huber")`` (TRF, float64) fold by
fold from a seeded subset of the same init grid, ordinary least squares on the proportions + intercept, and
the training mean. All-data objectives compare jaxlaws unregularised with SciPy (same objective), also from
SciPy's own inits.

Run: ``nice -n 19 python benchmarks/bench_public.py`` (default: 400-init static grids, 5-fold DML, few SciPy
inits; 3-4 min on 2 idle cores, about 10 at load 10); ``--full`` for the authors' protocol (the original
6,000-init grids, leave-one-out DML, 10-fold Chinchilla, more SciPy inits; hours on 2 busy cores); ``--n-random``
and ``--dml-folds`` override one setting (e.g. ``--cases dml_redpajama --dml-folds loo``). Writes
``benchmarks/results/public.md`` (``--json`` also every number); ``--cases`` picks cases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from baselines import scipy_fit as S  # noqa: E402
from public import DataUnavailable, load_chinchilla, load_dml, load_regmix, load_scalebench  # noqa: E402
from public import chinchilla as chin_mod  # noqa: E402
from public import dml as dml_mod
from public import protocol as pt
from public import regmix as regmix_mod
from public import scalebench as sb_mod  # noqa: E402

import jaxlaws as jl  # noqa: E402

STATIC_DELTA, CHIN_DELTA = 0.02, 1e-3
SEED = 0
UNREG = dict(bounds=None, penalty=None)
FITTERS = ("jaxlaws defaults", "jaxlaws unregularised", "SciPy TRF", "OLS", "mean")
PRESETS = {  # default run (minutes) / --full (the data's authors' protocol, the original grids)
    "quick": dict(n_random=2, dml_folds=5, chin_folds=5, scipy_inits=10, chin_scipy_inits=30, scipy_cv_inits=2),
    "full": dict(n_random=30, dml_folds="loo", chin_folds=10, scipy_inits=30, chin_scipy_inits=100, scipy_cv_inits=5),
}


# ------------------------------------------------------------------------------------------------ helpers


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def huber_sum(r: np.ndarray, delta: float) -> np.ndarray:
    """Summed Huber over the last axis, float64: the score every fitter's objective is judged by."""
    a = np.abs(r)
    return np.sum(np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta)), axis=-1)


def subset(grid: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` inits of ``grid`` (seeded, without replacement): SciPy's share of the same grid."""
    return grid[np.random.default_rng(seed).choice(len(grid), size=min(k, len(grid)), replace=False)]


def regularisation_configs(law) -> dict[str, dict]:
    """The engine's defaults and the explicitly unregularised fit; one entry when the law has no defaults."""
    if law.default_bounds is None and law.default_penalty is None:
        return {"jaxlaws unregularised": UNREG}  # the defaults ARE unregularised: one run serves both rows
    return {"jaxlaws defaults": {}, "jaxlaws unregularised": UNREG}


def both_rows(preds: dict) -> dict:
    if "jaxlaws defaults" not in preds and "jaxlaws unregularised" in preds:
        preds["jaxlaws defaults"] = preds["jaxlaws unregularised"]
    return preds


def scores(preds: dict, y: np.ndarray, spearman: bool = False) -> dict:
    """MAE, largest error (where a fold explodes) and optionally Spearman x100 of each fitter's predictions."""
    out = {}
    for k, v in preds.items():
        out[k] = dict(mae=pt.mae(v, y), max=pt.max_err(v, y))
        if spearman:
            out[k]["spearman100"] = pt.spearman100(v, y)
    return out


def oof_scipy(kind: str, x, y, ids, inits, delta, predict) -> np.ndarray:
    """Out-of-fold predictions of SciPy TRF, fold by fold (the Python loop cross_validate replaces)."""
    return pt.oof_predictions(
        lambda xt, yt: S.huber_least_squares(kind, xt, yt, inits, delta).params, predict, x, y, ids
    )


# ------------------------------------------------------------------------------------------------ static law


def static_grid(m: int, x: np.ndarray, y: np.ndarray, n_random: int) -> np.ndarray:
    """The law's default grid (the original's 6,000 at ``n_random=30``), its own index chosen from the data."""
    return jl.laws.log_linear_inits(m, SEED, jl.laws.auto_own(x, y), n_random=n_random)


def static_objectives(law, xs, ys, grids, a) -> dict:
    """All-data fits of ``B`` problems, all unregularised: jaxlaws on the grid (timed twice: first call and
    warm) and on SciPy's subset, SciPy TRF on the subset; objectives scored in float64 NumPy."""

    def jl_fit(inits):
        return jl.fit_batched(
            law, xs, ys, inits=inits, objective=jl.huber(STATIC_DELTA), dtype="float64", throw=False, **UNREG
        )

    res, t_first = timed(lambda: jl_fit(grids))
    res, t_warm = timed(lambda: jl_fit(grids))
    subs = np.stack([subset(g, a.scipy_inits, SEED + b) for b, g in enumerate(grids)])
    res_sub = jl_fit(subs)
    sp, t_sp = timed(lambda: [S.huber_least_squares("static", x, y, s, STATIC_DELTA) for x, y, s in zip(xs, ys, subs)])

    def obj(th):
        return huber_sum(ys - np.stack([pt.static_predict(t, x) for t, x in zip(th, xs)]), STATIC_DELTA)

    o_jl, o_sub, o_sp = obj(res.params), obj(res_sub.params), obj(np.stack([f.params for f in sp]))
    tol = lambda o: o <= o_sp * (1 + 1e-9) + 1e-15  # noqa: E731
    return dict(
        obj_jl=float(o_jl.sum()),
        obj_jl_sub=float(o_sub.sum()),
        obj_scipy=float(o_sp.sum()),
        n_problems=len(o_jl),
        jl_le_scipy=int(tol(o_jl).sum()),
        sub_le_scipy=int(tol(o_sub).sum()),
        max_abs_t=float(np.nanmax(np.abs(res.params[:, 2:]))),
        t_jl_first=t_first,
        t_jl_warm=t_warm,
        t_scipy=t_sp,
        grid_inits=grids.shape[1],
        scipy_inits=subs.shape[1],
    )


def static_cv(law, x, ys, grids, folds, a) -> dict:
    """Cross-validate ``G`` targets sharing ``x`` (``ys (G, n)``, ``grids (G, I, P)``): each jaxlaws config in one
    :func:`jaxlaws.cross_validate` call over all targets and folds; SciPy, OLS and the mean on the same folds."""
    g, n = ys.shape
    xs = np.broadcast_to(x, (g,) + x.shape)
    preds, times, folds_used = {}, {}, None
    for name, kw in regularisation_configs(law).items():
        k = n if folds == "loo" else folds  # per-target grids (g, I, P): cross_validate gives each its folds
        cv, times[name] = timed(
            lambda: jl.cross_validate(
                law,
                xs,
                ys,
                folds,
                key=SEED,
                inits=grids,
                dtype="float64",
                objective=jl.huber(STATIC_DELTA),
                throw=False,
                **kw,
            )
        )
        preds[name], folds_used = cv.predictions, cv.folds[0]
        times[name] = dict(t=times[name], fits=g * (k + 1) * grids.shape[1])
        if name == "jaxlaws unregularised":
            max_t = float(np.nanmax(np.abs(cv.fits.params[:, 2:])))
    ids = folds_used
    sp, times["SciPy TRF"] = timed(
        lambda: np.stack(
            [
                oof_scipy(
                    "static",
                    x,
                    ys[i],
                    ids,
                    subset(grids[i], a.scipy_cv_inits, SEED + i),
                    STATIC_DELTA,
                    pt.static_predict,
                )
                for i in range(g)
            ]
        )
    )
    preds["SciPy TRF"] = sp
    times["SciPy TRF"] = dict(t=times["SciPy TRF"], fits=g * int(ids.max() + 1) * min(a.scipy_cv_inits, grids.shape[1]))
    preds["OLS"] = np.stack([pt.oof_predictions(pt.ols_fit, pt.ols_predict, x, y, ids) for y in ys])
    preds["mean"] = np.stack(
        [pt.oof_predictions(lambda _, y: y.mean(), lambda c, x: np.full(len(x), c), x, y, ids) for y in ys]
    )
    return dict(scores=scores(both_rows(preds), ys), times=times, n_folds=int(ids.max() + 1), max_abs_t_unreg=max_t)


def static_split(law, xs, ys, test, grids) -> dict:
    """Fixed train -> test splits (``test (B, n)`` score-only masks) for every jaxlaws config: test predictions."""
    out = {}
    for name, kw in regularisation_configs(law).items():
        res, t = timed(
            lambda: jl.fit_batched(
                law,
                xs,
                ys,
                inits=grids,
                test=test,
                objective=jl.huber(STATIC_DELTA),
                dtype="float64",
                throw=False,
                **kw,
            )
        )
        pred = np.stack([pt.static_predict(th, x) for th, x in zip(res.params, xs)])
        out[name] = dict(
            pred=pred, time=dict(t=t, fits=grids.shape[0] * grids.shape[1]), test_mae=np.asarray(res.test_mae)
        )
    return out


# ------------------------------------------------------------------------------------------------ cases


def case_chinchilla(a) -> dict:
    c = load_chinchilla()
    law = jl.laws.chinchilla()
    grid = law.init_grid(None, c.x, c.y)
    res, t_first = timed(lambda: jl.fit(law, c.x, c.y, dtype="float64"))
    res, t_warm = timed(lambda: jl.fit(law, c.x, c.y, dtype="float64"))
    sub = subset(grid, a.chin_scipy_inits, SEED)
    res_sub = jl.fit(law, c.x, c.y, inits=sub, dtype="float64")
    lsq, t_lsq = timed(lambda: S.huber_least_squares("chinchilla_log", c.x, c.y, sub, CHIN_DELTA))
    lbf, t_lbf = timed(lambda: S.lbfgsb("chinchilla_log", c.x, c.y, sub, CHIN_DELTA))

    def obj(th):
        return float(huber_sum(np.log(c.y) - np.log(pt.chinchilla_predict(th, c.x)), CHIN_DELTA))

    full = dict(
        obj_epoch=chin_mod.EPOCH_OBJECTIVE,
        obj_jl=obj(res.params),
        obj_jl_reported=float(res.objective),
        obj_jl_sub=obj(res_sub.params),
        obj_scipy_lsq=obj(lsq.params),
        obj_scipy_lbfgsb=obj(lbf.params),
        paper={k: float(v) for k, v in res.paper.items()},
        t_jl_first=t_first,
        t_jl_warm=t_warm,
        t_scipy_lsq=t_lsq,
        t_scipy_lbfgsb=t_lbf,
        scipy_inits=len(sub),
        grid_inits=len(grid),
    )
    preds, times, ids = {}, {}, None
    for name, kw in regularisation_configs(law).items():
        cv, times[name] = timed(
            lambda: jl.cross_validate(law, c.x, c.y, a.chin_folds, key=SEED, dtype="float64", throw=False, **kw)
        )
        preds[name], ids = cv.predictions, cv.folds
        times[name] = dict(t=times[name], fits=(ids.max() + 2) * len(grid))
    sub_cv = subset(grid, a.scipy_cv_inits * 10, SEED)  # 5-param law, cheap: 10x the static laws' share
    preds["SciPy TRF"], times["SciPy TRF"] = timed(
        lambda: oof_scipy("chinchilla_log", c.x, c.y, ids, sub_cv, CHIN_DELTA, pt.chinchilla_predict)
    )

    def loglog_fit(x, y):
        return np.linalg.lstsq(np.column_stack([np.ones(len(x)), np.log(x)]), np.log(y), rcond=None)[0]

    times["SciPy TRF"] = dict(t=times["SciPy TRF"], fits=(ids.max() + 1) * len(sub_cv))
    preds["OLS"] = pt.oof_predictions(loglog_fit, lambda c_, x: np.exp(c_[0] + np.log(x) @ c_[1:]), c.x, c.y, ids)
    preds["mean"] = pt.oof_predictions(lambda _, y: y.mean(), lambda m, x: np.full(len(x), m), c.x, c.y, ids)
    return dict(
        source=c.source,
        n=len(c.y),
        full=full,
        cv=dict(scores=scores(both_rows(preds), c.y), times=times, n_folds=int(ids.max() + 1), scipy_inits=len(sub_cv)),
    )


def case_dml(setting: str, a, folds=None) -> dict:
    df = load_dml(setting)
    m = len(dml_mod.DOMAINS[setting])
    law = jl.laws.log_linear(m)
    out = dict(source=dml_mod.DML.line(), step=dml_mod.STEP, m=m, sizes={})
    for size, part in df.groupby("model_size", sort=False):
        x = part[[f"p_{d}" for d in dml_mod.DOMAINS[setting]]].to_numpy(np.float64)
        ys = np.stack([part[f"loss_{g}"].to_numpy(np.float64) for g in dml_mod.GROUPS])
        grids = np.stack([static_grid(m, x, y, a.n_random) for y in ys])
        full = static_objectives(law, np.broadcast_to(x, (len(ys),) + x.shape), ys, grids, a)
        cv = static_cv(law, x, ys, grids, a.dml_folds if folds is None else folds, a)
        out["sizes"][size] = dict(n=len(x), full=full, cv=cv)
        print(f"  {setting} {size}: n={len(x)} ({load()})", flush=True)
    return out


def case_regmix(a) -> dict:
    r = load_regmix()
    xtr, off_tr = pt.normalise_rows(r.train.x)
    xte, off_te = pt.normalise_rows(r.test.x)
    m = xtr.shape[1]
    law = jl.laws.log_linear(m)
    grid = static_grid(m, xtr, r.train.y, a.n_random)
    full = static_objectives(law, xtr[None], r.train.y[None], grid[None], a)
    # The authors' split: fit the 512 train runs, score the 256 test runs (score-only test= mask).
    x_all, y_all = np.vstack([xtr, xte]), np.concatenate([r.train.y, r.test.y])
    test = np.arange(len(y_all)) >= len(xtr)
    split = static_split(law, x_all[None], y_all[None], test[None], grid[None])
    preds = {k: v["pred"][0][test] for k, v in split.items()}
    sp = S.huber_least_squares("static", xtr, r.train.y, subset(grid, a.scipy_inits, SEED), STATIC_DELTA)
    preds["SciPy TRF"] = pt.static_predict(sp.params, xte)
    preds["OLS"] = pt.ols_predict(pt.ols_fit(xtr, r.train.y), xte)
    preds["mean"] = np.full(len(xte), r.train.y.mean())
    cv = static_cv(law, xtr, r.train.y[None], grid[None], 4, a)
    return dict(
        source=r.source,
        n_train=len(xtr),
        n_test=len(xte),
        row_sum_off=max(off_tr, off_te),
        full=full,
        test=scores(both_rows(preds), r.test.y, spearman=True),
        test_times={k: v["time"] for k, v in split.items()},
        lightgbm_spearman100=regmix_mod.LIGHTGBM_SPEARMAN,
        cv=cv,
    )


def case_scalebench(a) -> dict:
    splits, source = load_scalebench()
    k = sb_mod.N_DOMAINS
    law = jl.laws.log_linear(k)
    sizes = list(splits)
    # 20 problems (size x domain), each on its size's 26 mixtures with the 6 test ones score-only.
    xs = np.concatenate([np.broadcast_to(np.vstack([s.x_train, s.x_test]), (k, 26, k)) for s in splits.values()])
    ys = np.concatenate([np.vstack([s.y_train, s.y_test]).T for s in splits.values()])
    test = np.broadcast_to(np.arange(26) >= 20, ys.shape).copy()
    grids = np.stack([static_grid(k, x[:20], y[:20], a.n_random) for x, y in zip(xs, ys)])
    full = static_objectives(law, xs[:, :20], ys[:, :20], grids, a)
    split = static_split(law, xs, ys, test, grids)
    sp = [
        S.huber_least_squares("static", x[:20], y[:20], subset(g, a.scipy_inits, SEED + b), STATIC_DELTA)
        for b, (x, y, g) in enumerate(zip(xs, ys, grids))
    ]
    per_size = {}
    for si, s in enumerate(sizes):
        rows = slice(si * k, (si + 1) * k)
        y_te = ys[rows, 20:]
        preds = {name: v["pred"][rows, 20:] for name, v in split.items()}
        preds["SciPy TRF"] = np.stack([pt.static_predict(f.params, x[20:]) for f, x in zip(sp[rows], xs[rows])])
        preds["OLS"] = np.stack(
            [pt.ols_predict(pt.ols_fit(x[:20], y[:20]), x[20:]) for x, y in zip(xs[rows], ys[rows])]
        )
        preds["mean"] = np.repeat(ys[rows, :20].mean(axis=1, keepdims=True), 6, axis=1)
        per_size[s] = scores(both_rows(preds), y_te)
        per_size[s]["reference"] = dict(mae=sb_mod.REFERENCE_TEST_MAE[s], max=None)
    return dict(source=source, full=full, test=per_size, test_times={k: v["time"] for k, v in split.items()})


CASES = {
    "chinchilla": case_chinchilla,
    "dml_5mix": lambda a: case_dml("5Mix", a),
    "dml_redpajama": lambda a: case_dml("RedPajama", a),
    "regmix": case_regmix,
    "scalebench": case_scalebench,
    "dml_redpajama_loo": lambda a: case_dml("RedPajama", a, folds="loo"),
}  # the case; not by default
DEFAULT_CASES = [c for c in CASES if c != "dml_redpajama_loo"]


# ------------------------------------------------------------------------------------------------ report


def _f(v, nd=4):
    if v is None:
        return "-"
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    return f"{v:.3g}" if (abs(v) >= 1e3 or (abs(v) < 1e-3 and v != 0)) else f"{v:.{nd}f}"


def _cells(sc: dict, keys=FITTERS) -> str:
    return " | ".join(
        f"{_f(sc[k]['mae'])} ({_f(sc[k]['max'], 3)})"
        if sc.get(k) and sc[k]["max"] is not None
        else (_f(sc[k]["mae"]) if sc.get(k) else "-")
        for k in keys
    )


def verdict(sc: dict) -> str:
    """Plain words: the law (engine defaults) against the best simple baseline, by held-out MAE."""
    law = sc["jaxlaws defaults"]["mae"]
    base, bmae = min((("OLS", sc["OLS"]["mae"]), ("mean", sc["mean"]["mae"])), key=lambda kv: kv[1])
    if law < bmae:
        return f"law wins ({_f(law)} vs {base} {_f(bmae)}, {100 * (1 - law / bmae):.0f}% lower)"
    return f"law LOSES ({_f(law)} vs {base} {_f(bmae)}, {_f(law / bmae, 1)}x)"


def _times(t: dict) -> str:
    """Wall time of each fitter's held-out fits, with the init-fits it ran (jaxlaws: first call, compile
    included) and the time per 1,000 init-fits, the comparable rate."""
    return ", ".join(
        f"{k} {v['t']:.1f} s for {v['fits']:,} init-fits ({1e3 * v['t'] / v['fits']:.3g} s/1k)" for k, v in t.items()
    )


def report(results: dict, meta: dict) -> str:
    hdr = "| " + " | ".join(FITTERS) + " |"
    L = [
        "# Public data benchmark (`benchmarks/bench_public.py`)",
        "",
        f"Machine: {meta['machine']}. {meta['when']}. Load average (1/5/15 min): {meta['load_start']} at start, "
        f"{meta['load_end']} at end (2 cores shared with other jobs: times are noisy; compare within one run).",
        f"jaxlaws git {meta['git']}, jax {meta['jax']}, scipy {meta['scipy']}; float64 throughout. "
        f"Preset `{meta['preset']}`: {meta['settings']}. Command: `{meta['command']}`.",
        "",
        "Held-out cells: `MAE (largest absolute error)` over every held-out prediction. `jaxlaws defaults` = the "
        "engine's defaults (the law's objective, bounds, penalty); `jaxlaws unregularised` = `bounds=None, "
        "penalty=None` (identical to defaults where the law has none: then one run fills both). SciPy = "
        "`least_squares(loss='huber')` (TRF) fold by fold from a seeded subset of the same init grid. OLS = "
        "least squares on the proportions + intercept (Chinchilla: log L on log N, log D). Verdict = jaxlaws "
        "defaults against the better of OLS and the mean.",
        "",
    ]
    if "chinchilla" in results:
        r = results["chinchilla"]
        f = r["full"]
        ext = f["grid_inits"] / f["scipy_inits"]
        L += [
            "## Chinchilla (Epoch's 240 points)",
            "",
            f"Source: {r['source']}.",
            "",
            "| fitter | objective (summed Huber(1e-3) on log L) | time |",
            "|---|---|---|",
            f"| Epoch (published) | {f['obj_epoch']:.10f} | - |",
            f"| jaxlaws defaults, {f['grid_inits']} inits | {f['obj_jl']:.10f} | {f['t_jl_warm']:.2f} s warm, "
            f"{f['t_jl_first']:.2f} s first call |",
            f"| jaxlaws, SciPy's {f['scipy_inits']} inits | {f['obj_jl_sub']:.10f} | - |",
            f"| SciPy least_squares TRF, {f['scipy_inits']} inits | {f['obj_scipy_lsq']:.10f} | "
            f"{f['t_scipy_lsq']:.2f} s ({f['t_scipy_lsq'] * ext:.0f} s extrapolated to {f['grid_inits']}) |",
            f"| SciPy L-BFGS-B, {f['scipy_inits']} inits | {f['obj_scipy_lbfgsb']:.10f} | {f['t_scipy_lbfgsb']:.2f} s "
            f"({f['t_scipy_lbfgsb'] * ext:.0f} s extrapolated) |",
            "",
            "jaxlaws (`.paper`): "
            + ", ".join(f"{k}={v:.4g}" for k, v in f["paper"].items())
            + "; Epoch: "
            + ", ".join(f"{k}={v:g}" for k, v in chin_mod.EPOCH_PARAMS.items())
            + ".",
            "",
            f"Held-out, {r['cv']['n_folds']}-fold `jl.cross_validate` (key 0), MAE of L (SciPy per fold: "
            f"{r['cv']['scipy_inits']} inits):",
            "",
            "| case | " + hdr[2:],
            "|---" * (len(FITTERS) + 1) + "|",
            f"| Chinchilla | {_cells(r['cv']['scores'])} |",
            "",
            f"Verdict: {verdict(r['cv']['scores'])}. Held-out fit time: {_times(r['cv']['times'])}.",
            "",
        ]
    for key, title in (
        ("dml_5mix", "Data Mixing Laws, 5Mix (m=5)"),
        ("dml_redpajama", "Data Mixing Laws, RedPajama (m=7)"),
        ("dml_redpajama_loo", "Data Mixing Laws, RedPajama (m=7), leave-one-out"),
    ):
        if key not in results:
            continue
        r = results[key]
        L += [
            f"## {title}: static law per coarse validation group, step {r['step']}",
            "",
            f"Source: {r['source']}.",
            "",
            "All-data fits, 5 groups per size, unregularised (objective summed over groups, float64 scores):",
            "",
            "| size | runs | jaxlaws (grid) | jaxlaws (SciPy's inits) | SciPy TRF | jaxlaws <= SciPy | max abs t | "
            "jaxlaws warm / first | SciPy |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for size, s in r["sizes"].items():
            f = s["full"]
            L.append(
                f"| {size} | {s['n']} | {f['obj_jl']:.8g} | {f['obj_jl_sub']:.8g} | {f['obj_scipy']:.8g} | "
                f"{f['jl_le_scipy']}/{f['n_problems']} | {_f(f['max_abs_t'], 3)} | {f['t_jl_warm']:.2f} / "
                f"{f['t_jl_first']:.2f} s ({f['grid_inits']} inits) | {f['t_scipy']:.1f} s ({f['scipy_inits']} inits; "
                f"{f['t_scipy'] * f['grid_inits'] / f['scipy_inits']:.0f} s extrapolated to {f['grid_inits']}) |"
            )
        folds = next(iter(r["sizes"].values()))["cv"]["n_folds"]
        L += [
            "",
            f"Held-out ({'leave-one-mixture-out' if folds == next(iter(r['sizes'].values()))['n'] else f'{folds}-fold'}"
            ", `jl.cross_validate`, all 5 groups pooled): `MAE (largest error)`:",
            "",
            "| size | " + hdr[2:] + " verdict |",
            "|---" * (len(FITTERS) + 2) + "|",
        ]
        for size, s in r["sizes"].items():
            L.append(f"| {size} (n={s['n']}) | {_cells(s['cv']['scores'])} | {verdict(s['cv']['scores'])} |")
        L += [
            "",
            "Largest |t| among the unregularised fold fits: "
            + ", ".join(f"{size} {_f(s['cv']['max_abs_t_unreg'], 3)}" for size, s in r["sizes"].items())
            + ".",
            "Held-out fit time: " + "; ".join(f"{size}: {_times(s['cv']['times'])}" for size, s in r["sizes"].items()),
            "",
        ]
    if "regmix" in results:
        r = results["regmix"]
        f = r["full"]
        L += [
            "## RegMix (17 domains, Pile-CC loss, 1M models)",
            "",
            f"Source: {r['source']}.",
            "",
            f"Mixtures are published rounded (rows off 1 by up to {r['row_sum_off']:.3f}); every fitter gets the rows "
            "divided by their sums.",
            "",
            f"All-data fit (512 train runs, unregularised): jaxlaws {f['obj_jl']:.8g} ({f['grid_inits']} inits; "
            f"{f['obj_jl_sub']:.8g} from SciPy's {f['scipy_inits']}), SciPy TRF {f['obj_scipy']:.8g}; time jaxlaws "
            f"{f['t_jl_warm']:.2f} s warm / {f['t_jl_first']:.2f} s first, SciPy {f['t_scipy']:.1f} s "
            f"({f['t_scipy'] * f['grid_inits'] / f['scipy_inits']:.0f} s extrapolated to {f['grid_inits']} inits).",
            "",
            "The authors' split, train 512 -> test 256 (`test=` score-only mask):",
            "",
            "| method | MAE | largest error | Spearman x100 |",
            "|---|---|---|---|",
        ]
        for k in FITTERS:
            v = r["test"][k]
            rho = "undefined (constant)" if not np.isfinite(v["spearman100"]) else f"{v['spearman100']:.2f}"
            L.append(f"| {k} | {_f(v['mae'])} | {_f(v['max'], 3)} | {rho} |")
        L += [
            f"| RegMix LightGBM (published) | - | - | {r['lightgbm_spearman100']:.2f} |",
            "",
            f"Verdict (test MAE): {verdict(r['test'])}; "
            f"Spearman: law {r['test']['jaxlaws defaults']['spearman100']:.2f} "
            f"vs LightGBM {r['lightgbm_spearman100']:.2f} and OLS {r['test']['OLS']['spearman100']:.2f}.",
            "",
            "4-fold `jl.cross_validate` on the 512 train runs (key 0):",
            "",
            "| case | " + hdr[2:],
            "|---" * (len(FITTERS) + 1) + "|",
            f"| RegMix Pile-CC | {_cells(r['cv']['scores'])} |",
            "",
            f"Verdict: {verdict(r['cv']['scores'])}. Held-out fit time: {_times(r['cv']['times'])}.",
            "",
        ]
    if "scalebench" in results:
        r = results["scalebench"]
        f = r["full"]
        keys = FITTERS + ("reference",)
        L += [
            "## scalebench domain mixture (5 domains, train 20 -> test 6 per size)",
            "",
            f"Source: {r['source']}.",
            "",
            f"All-data fits (20 problems on the train mixtures, unregularised): jaxlaws {f['obj_jl']:.8g}, SciPy TRF "
            f"({f['scipy_inits']} inits) {f['obj_scipy']:.8g}; "
            f"jaxlaws <= SciPy on {f['jl_le_scipy']}/{f['n_problems']}; "
            f"time jaxlaws {f['t_jl_warm']:.2f} s warm / {f['t_jl_first']:.2f} s first, SciPy {f['t_scipy']:.1f} s "
            f"({f['t_scipy'] * f['grid_inits'] / f['scipy_inits']:.0f} s extrapolated to {f['grid_inits']} inits).",
            "",
            "Test `MAE (largest error)` over 5 domains x 6 test mixtures; `reference` = the split authors' SciPy "
            "(300 inits, Huber 0.02):",
            "",
            "| size | " + " | ".join(keys) + " | verdict |",
            "|---" * (len(keys) + 2) + "|",
        ]
        for s, v in r["test"].items():
            L.append(f"| {s} | {_cells(v, keys)} | {verdict(v)} |")
        L += ["", f"jaxlaws fit time (20 problems, train -> test): {_times(r['test_times'])}.", ""]
    for name, why in meta.get("skipped", {}).items():
        L.append(f"Skipped {name}: {why}")
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------------------------ main


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return o


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="the authors' protocol and the original grids (about an hour)")
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--n-random", type=int, help="override: t draws of the static grid (30 = the original 6,000)")
    ap.add_argument("--dml-folds", help="override: DML folds, an int or 'loo'")
    ap.add_argument("--out", default=str(HERE / "results" / "public.md"))
    ap.add_argument("--json", help="also write every number (per case, as it finishes) to this JSON file")
    a = ap.parse_args(argv)
    preset = "full" if a.full else "quick"
    settings = dict(PRESETS[preset])
    if a.n_random is not None:
        settings["n_random"] = a.n_random
    if a.dml_folds is not None:
        settings["dml_folds"] = a.dml_folds if a.dml_folds == "loo" else int(a.dml_folds)
    for k, v in settings.items():
        setattr(a, k, v)
    import jax
    import scipy

    git = (
        subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "?"
    )
    if subprocess.run(["git", "-C", str(HERE), "diff", "--quiet", "HEAD", "--", "../jaxlaws"]).returncode:
        git += " + uncommitted jaxlaws changes"
    meta = dict(
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        load_start=load(),
        git=git,
        jax=jax.__version__,
        scipy=scipy.__version__,
        preset=preset,
        command="nice -n 19 python benchmarks/bench_public.py " + " ".join(sys.argv[1:] if argv is None else argv),
        settings=", ".join(f"{k}={v}" for k, v in settings.items()),
        skipped={},
    )
    results = {}
    t_all = time.perf_counter()
    for name in [c for c in a.cases.split(",") if c]:
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; choose from {','.join(CASES)}")
        print(f"{name}: running (load {load()})", flush=True)
        try:
            res, t = timed(lambda: CASES[name](a))
        except DataUnavailable as e:
            meta["skipped"][name] = str(e)
            print(f"{name}: SKIPPED -- {e}", flush=True)
            continue
        results[name] = _jsonable(res) | {"case_seconds": t}
        print(f"{name}: {t:.1f} s", flush=True)
        if a.json:
            _atomic_write(Path(a.json), json.dumps(dict(meta=meta, results=results), indent=1))
    meta["load_end"] = load()
    text = report(results, meta) + f"\nWhole run: {time.perf_counter() - t_all:.0f} s.\n"
    _atomic_write(Path(a.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
