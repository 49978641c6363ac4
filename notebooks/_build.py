"""Build the analysis notebooks (one per family of the original's notebooks) with nbformat.

Run ``python notebooks/_build.py``. The static, dynamic, method-parameter and measurement notebooks run on the
bundled REAL example sweeps (``jaxlaws.sweeps.bundle``: runs trained by jaxlaws on the bundled text groups);
the instruction-task notebooks (no such runs are bundled) and the flipped-sign probe of ``measurements`` are
SYNTHETIC parameter-recovery checks (``jaxlaws.sweeps.synthetic``, from the original's stored parameters) and
say so in their first cell. ``tests/test_notebooks.py`` executes them and checks the numbers they print.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SETUP = """\
import json
%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import jaxlaws as jl
import jaxlaws.analysis as ja
from jaxlaws.sweeps import synthetic
from jaxlaws.sweeps.bundle import describe_bundle, load_bundle
from jaxlaws.sweeps.io import concat_sweeps
from jaxlaws.sweeps.schema import Sweep

def final_rows(losses, split="val"):
    \"\"\"Each (run, seed)'s losses at its last recorded step.\"\"\"
    d = losses[losses.split == split]
    return d[d.step == d.groupby(["run", "seed"]).step.transform("max")]

def seeds_only(sweep, seeds):
    \"\"\"A smaller sweep with only the given training seeds (keeps the notebooks fast).\"\"\"
    keep = sweep.losses[sweep.losses["seed"].isin(seeds)]
    return Sweep(keep, sweep.groups, sweep.matrices[sweep.matrices["seed"].isin(seeds)])"""

STATIC_PLOT = """\
# Paper-style figure: log(L_i - c_i) against the group's own proportion; fitted law as a line.
groups, m = sweep.groups, sweep.m
final = sweep.losses[(sweep.losses.kind == "static") & (sweep.losses.step == fits.params.step.iloc[0])
                     & (sweep.losses.split == "val")]
fig, axes = plt.subplots(1, m, figsize=(4 * m, 3.2))
for ax, (i, g) in zip(axes, enumerate(groups)):
    for s, d in final[final.group == g].groupby("seed"):
        row = fits.params[(fits.params.group == g) & (fits.params.seed == s)].index[0]
        c = fits.params.loc[row, "c"] if "c" in fits.params else np.exp(fits.params.loc[row, "l"])
        own = d[f"p_{g}"].to_numpy()
        pts = ax.scatter(own, np.log(d["loss"] - c), s=14)
        if m == 2:
            grid = np.linspace(0.05, 0.95, 50)
            ax.plot(grid, np.log(fits.predict(row, grid) - c), color=pts.get_facecolor()[0], lw=1)
        else:  # m >= 3: the fitted values at the observed mixtures, joined along the own proportion
            p = d[[f"p_{h}" for h in groups]].to_numpy()
            order = np.argsort(own)
            ax.plot(own[order], np.log(fits.predict(row, p)[order] - c), color=pts.get_facecolor()[0], lw=1)
    ax.set(title=g, xlabel=f"p_{g}", ylabel=f"log(L - c)")
fig.tight_layout()"""

DYNAMIC_PLOT = """\
# Paper-style figure: loss after R steps against the child's own proportion, one colour per parent (seed 0).
groups, m = sweep.groups, sweep.m
kids = ja.child_table(sweep, "val", ["parent"])
seed0 = kids.seed.min()
kids = kids[kids.seed == seed0]
fig, axes = plt.subplots(1, m, figsize=(4 * m, 3.2))
for ax, (i, g) in zip(axes, enumerate(groups)):
    for parent, d in list(kids.groupby("parent"))[:4]:
        row = np.flatnonzero((fits.params.group == g) & (fits.params.parent == parent)
                             & (fits.params.seed == seed0))[0]
        own = d[f"p_{g}"].to_numpy()
        order = np.argsort(own)
        x = own[:, None] if fits.law.x_dim == 1 else d[[f"p_{h}" for h in groups]].to_numpy()
        y = d[f"L_{g}"].to_numpy()
        pts = ax.scatter(own, y, s=12, label="parent " + ", ".join(
            f"{d[f'parent_p_{h}'].iloc[0]:.2f}" for h in groups))
        pred = fits.predict(row, x)
        if "full" in fits.law.name:  # the full law is on the change L^{B+R} - L^B
            pred = d[f"LB_{g}"].to_numpy() + pred
        ax.plot(own[order], pred[order], color=pts.get_facecolor()[0], lw=1)
    ax.set(title=g, xlabel=f"child p_{g}", ylabel="loss after R steps")
axes[0].legend(fontsize=7)
fig.tight_layout()"""


CHECK_INTRO = """\
## Numbers the test suite checks

`tests/test_notebooks.py` runs this notebook and reads the one `CHECK {json}` line the next cell prints: {what}
Change them only together with the test's tolerances."""

CHECK_PRINT = ("\nprint('CHECK', json.dumps({k: int(v) if isinstance(v, (int, np.integer)) else float(v)\n"
               "                          for k, v in check.items()}))")


def notebook(title: str, intro: str, cells: list[str], check: str, what: str) -> nbformat.NotebookNode:
    """``cells``: code, or a one-line ``"# ..."`` markdown cell; ``check``: the last code cell, which builds the
    dict ``check`` of numbers that ``tests/test_notebooks.py`` asserts (printed as one ``CHECK <json>`` line)."""
    nb = new_notebook()
    nb.cells = [new_markdown_cell(f"# {title}\n\n{intro}"), new_code_cell(SETUP)]
    for c in cells:
        nb.cells.append(new_markdown_cell(c[2:].strip()) if c.startswith("# ") and "\n" not in c else new_code_cell(c))
    nb.cells += [new_markdown_cell(CHECK_INTRO.replace("{what}", what)), new_code_cell(check + CHECK_PRINT)]
    for i, cell in enumerate(nb.cells):  # fixed ids: rebuilding an unchanged notebook leaves its file unchanged
        cell.id = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


INSTRUCTION_STATIC_CHECK = """\
p = truth['mixtures'][0]                     # seed 0's 50 mixtures; truth['params'][group][0] = [l, b, t1..t8]
err, loss_err = [], []
for row, (_, r) in enumerate(fits.params.iterrows()):
    t = truth['params'][r.group][0]
    e = np.abs(r[list(fits.param_names)].to_numpy(float) - t)
    err.append([e[0], e[1], e[2:].max() / np.abs(t[2:]).max()])   # slopes relative to the task's largest one
    loss_err.append(np.abs(fits.predict(row, p) - synthetic.static_law('log_linear', t, p, 0)))
err, loss_err = np.max(err, axis=0), np.array(loss_err)
check = {'n_fits': len(fits.params), 'n_flagged': len(fits.flagged), 'r2_min': fits.params.r2.min(),
         'l_err_max': err[0], 'b_err_max': err[1], 't_rel_err_max': err[2],
         'loss_err_max': loss_err.max(), 'loss_err_rms': np.sqrt((loss_err ** 2).mean())}"""

INSTRUCTION_DYNAMIC_CHECK = """\
kids = {'linear': ja.child_table(sweep, 'val', ['parent']), 'log_ratio': ja.child_table(logs, 'val', ['parent'])}
pcols = [f'p_{g}' for g in sweep.groups]
res = {}
for name, f, tr in (('linear', fits, truth), ('log_ratio', log_fits, log_truth)):
    c_err, t_err, pred_err = [], [], []
    for row, (_, r) in enumerate(f.params.iterrows()):   # truth: {parent p_abductivenli: {task: [c, t1..t8]}}
        t = tr['params'][min(tr['params'], key=lambda q: abs(q - r[f'parent_{pcols[0]}']))][r.group]
        p = kids[name][kids[name].parent == r.parent][pcols].to_numpy()
        theta = r[list(f.param_names)].to_numpy(float)
        c_err.append(abs(theta[0] - t[0])); t_err.append(np.abs(theta[1:] - t[1:]).max())
        pred_err.append(np.abs(f.predict(row, p) - (t[0] + p[:, :-1] @ t[1:])))   # loss / log ratio
    pred_err = np.array(pred_err)
    res.update({f'n_fits_{name}': len(f.params), f'n_flagged_{name}': len(f.flagged),
                f'r2_mean_{name}': f.params.r2.mean(), f'r2_min_{name}': f.params.r2.min(),
                f'c_err_max_{name}': max(c_err), f't_err_max_{name}': max(t_err),
                f'pred_err_max_{name}': pred_err.max(), f'pred_err_rms_{name}': np.sqrt((pred_err ** 2).mean())})
check = res"""

LAW_NP = """\
def law_np(theta, p, i):
    \"\"\"The fitted static law written out in numpy (independent of jaxlaws' predict): group i's loss at p.\"\"\"
    if p.shape[1] == 2:
        c, k, b = theta
        return c + np.exp(k * p[:, i] + b)
    l, b, *t = theta
    return np.exp(l) + np.exp(b + p[:, :-1] @ np.asarray(t))"""


def static_real_cells(setting: str) -> list[str]:
    form = "'two_group'" if setting == "m2" else "'log_linear'"
    fit = "ja.fit_static(sweep)" if setting == "m2" else "ja.fit_static(sweep, n_random=3)"
    law = "jl.laws.static_two_group()" if setting == "m2" else "jl.laws.log_linear(3)"
    return [
        f"setting = {setting!r}\n"
        "sweep = load_bundle(setting, ('compare',))   # the static grid (kind 'static') + the method runs\n"
        "print(describe_bundle(setting))\n"
        "static = sweep.losses[sweep.losses.kind == 'static']\n"
        "static.drop_duplicates(['run', 'seed']).groupby('seed').size().rename('grid mixtures').to_frame().T",
        f"fits = {fit}   # per (group, seed), final step's val losses\nfits.params.round(4)",
        "fits.summary",
        STATIC_PLOT,
        "# The predicted optimum per seed, and their mean: the mixture the bundle's `optimum` part trained.",
        "params = {g: {int(r.seed): r[list(fits.param_names)].to_numpy(float) for _, r in d.iterrows()}\n"
        "          for g, d in fits.params.groupby('group')}\n"
        f"opt = ja.optimum_table(params, sweep.groups, {form})\nopt",
        "# Held-out error: leave one mixture out (`jl.cross_validate`: every fold's fit and the refit of every "
        "(group, seed) in one compiled program), against the spread of the losses over the mixtures.",
        "pcols = [f'p_{g}' for g in sweep.groups]\nfinal = final_rows(static)\nxs, ys, keys = [], [], []\n"
        "for (g, s), d in final.groupby(['group', 'seed']):\n"
        "    d = d.sort_values('run')\n    p = d[pcols].to_numpy()\n"
        "    xs.append(p[:, [sweep.groups.index(g)]] if sweep.m == 2 else p)\n"
        "    ys.append(d.loss.to_numpy())\n    keys.append((g, s))\n"
        f"cv = jl.cross_validate({law}, np.stack(xs), np.stack(ys), folds='loo', key=0)\n"
        "loo = pd.DataFrame(keys, columns=['group', 'seed']).assign(\n"
        "    loo_rmse=np.asarray(cv.rmse), loo_mae=np.asarray(cv.mae), loss_sd=np.std(ys, axis=1))\n"
        "loo.groupby('group')[['loo_rmse', 'loo_mae', 'loss_sd']].mean()",
        "# Predicted vs realised: the best grid point (lowest final val loss, mean over groups and seeds) "
        "against the predicted optimum trained from scratch with the same configuration and seeds.",
        "trained = load_bundle(setting, ('optimum',)).losses\n"
        "def per_run(losses, split):   # mean over groups of each (run, seed)'s final loss\n"
        "    f = final_rows(losses, split)\n"
        "    return f.groupby(['run', 'seed']).agg(loss=('loss', 'mean'), **{c: (c, 'first') for c in pcols})\n"
        "val = per_run(static, 'val')\nbest = val.groupby('run').loss.mean().idxmin()\n"
        "rows = []\nfor label, L in (('best grid point', static[static.run == best]), ('predicted optimum, trained', trained)):\n"
        "    v, t = per_run(L, 'val'), per_run(L, 'test')\n"
        "    rows.append({'mixture': label, **v[pcols].iloc[0].round(4).to_dict(), 'seeds': len(v),\n"
        "                 'val_loss': v.loss.mean(), 'val_sd': v.loss.std(ddof=0),\n"
        "                 'test_loss': t.loss.mean(), 'test_sd': t.loss.std(ddof=0)})\n"
        "realised = pd.DataFrame(rows)\n"
        "# the fitted laws' mean loss over groups at their optimum (mean over seeds)\n"
        "realised['law_predicted_val'] = [np.nan, opt.total_loss.iloc[-1] / sweep.m]\n"
        "realised",
        LAW_NP,
    ]


STATIC_REAL_CHECK = """\
r2_err, r2_own = [], []                  # R^2 recomputed from the observed losses and the numpy law
for _, r in fits.params.iterrows():
    d = final[(final.group == r.group) & (final.seed == r.seed)]
    y = d.loss.to_numpy()
    pred = law_np(r[list(fits.param_names)].to_numpy(float), d[pcols].to_numpy(), sweep.groups.index(r.group))
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    r2_own.append(r2); r2_err.append(abs(r2 - r.r2))
# the optimum against a brute-force grid on the simplex (step 0.001 for m=2, 0.005 for m=3), per seed
if sweep.m == 2:
    q = np.linspace(0, 1, 1001); simplex = np.c_[q, 1 - q]
else:
    a, b = np.meshgrid(np.arange(201) / 200, np.arange(201) / 200, indexing='ij')
    keep = a.ravel() + b.ravel() <= 1 + 1e-12
    simplex = np.c_[a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()][keep].clip(0, 1)
gap, p_opt = [], opt[pcols].to_numpy(float)
for j, s in enumerate(opt.seed[opt.seed != 'mean']):
    total = lambda p: sum(law_np(params[g][int(s)], p, i) for i, g in enumerate(sweep.groups))
    gap.append(total(p_opt[j:j + 1])[0] - total(simplex).min())
trained_p = trained[pcols].drop_duplicates().to_numpy(float)
check = {'n_grid_runs': len(static.drop_duplicates(['run', 'seed'])), 'n_fits': len(fits.params),
         'n_flagged': len(fits.flagged), 'r2_min': min(r2_own), 'r2_mean': np.mean(r2_own),
         'r2_recompute_err_max': max(r2_err),
         'opt_outside_simplex': max(-p_opt.min(), p_opt.max() - 1, np.abs(p_opt.sum(1) - 1).max()),
         'opt_minus_grid_best_max': max(gap),
         'n_trained_mixtures': len(trained_p), 'n_trained_runs': len(trained.drop_duplicates(['run', 'seed'])),
         'trained_vs_predicted_mixture': np.abs(trained_p[0] - p_opt[-1]).max(),
         'loo_rmse_max': loo.loo_rmse.max(), 'loo_rmse_mean': loo.loo_rmse.mean(),
         'realised_gap_val': realised.val_loss[1] - realised.val_loss[0],
         'realised_gap_test': realised.test_loss[1] - realised.test_loss[0]}"""

STATIC_REAL_WHAT = (
    "the number of grid runs, fits and flagged fits; the R² of every fit recomputed here from the observed "
    "losses and the law written out in numpy (its smallest and mean value, and its largest difference from "
    "the analysis' R²); the optimum inside the simplex and no worse than the best point of a brute-force grid "
    "of the fitted law; the trained optimum's mixture equal to the mean predicted one; the leave-one-out "
    "RMSE; and the realised val/test loss of the trained optimum minus the best grid point's (a real result: "
    "the bound only pins the bundled number).")


def dynamic_real_cells(setting: str) -> list[str]:
    fit = ("fits = ja.fit_dynamic(sweep)   # per (group, parent, seed): L_i^{B+R} = k p_i + b\nfits.params.round(4)"
           if setting == "m2" else
           "fits = ja.fit_dynamic(sweep, 'linear')   # L_i^{B+R} = c + t.p_<m\n"
           "full = ja.fit_dynamic(sweep, 'full')      # L_i^{B+R} - L_i^B = a.p\n"
           "pd.concat({'linear': fits.summary, 'full': full.summary})")
    cells = [
        f"setting = {setting!r}\n"
        "sweep = load_bundle(setting, ('dynamic',))   # parents to B, then every child mixture for R steps\n"
        "print(describe_bundle(setting))\n"
        "runs = sweep.losses.drop_duplicates(['run', 'seed'])\nruns.groupby(['kind', 'seed']).size().unstack()",
        fit]
    if setting == "m2":
        cells.append("fits.summary")
    cells += [DYNAMIC_PLOT,
              "# R² per group and parent (mean over seeds).",
              "fits.params.groupby(['group', 'parent']).r2.mean().unstack().round(3)"]
    return cells


DYNAMIC_REAL_CHECK = """\
kids = ja.child_table(sweep, 'val', ['parent'])
pcols = [f'p_{g}' for g in sweep.groups]
laws = {'two_group': fits} if sweep.m == 2 else {'linear': fits, 'full': full}
r2_own, r2_err, ols_err = {}, [], []
for name, f in laws.items():
    r2_own[name] = []
    for _, r in f.params.iterrows():   # the law in numpy; least squares on the same design, independently
        d = kids[(kids.parent == r.parent) & (kids.seed == r.seed)]
        p, y = d[pcols].to_numpy(), d[f'L_{r.group}'].to_numpy()
        theta = r[list(f.param_names)].to_numpy(float)
        if sweep.m == 2:
            X = np.c_[p[:, sweep.groups.index(r.group)], np.ones(len(p))]
        elif name == 'linear':
            X, theta = np.c_[np.ones(len(p)), p[:, :-1]], theta
        else:
            X, y = p, y - d[f'LB_{r.group}'].to_numpy()
        pred = X @ theta
        r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        r2_own[name].append(r2); r2_err.append(abs(r2 - r.r2))
        ols_err.append(np.abs(np.linalg.lstsq(X, y, rcond=None)[0] - theta).max())
first = next(iter(laws.values()))
check = {'n_parent_runs': int((runs.kind == 'parent').sum()), 'n_child_runs': int((runs.kind == 'child').sum()),
         **{f'n_fits_{k}': len(f.params) for k, f in laws.items()},
         'n_flagged': sum(len(f.flagged) for f in laws.values()),
         **{f'r2_min_{k}': min(v) for k, v in r2_own.items()}, **{f'r2_mean_{k}': np.mean(v) for k, v in r2_own.items()},
         'r2_recompute_err_max': max(r2_err), 'params_vs_least_squares_max': max(ols_err)}
if sweep.m == 2:   # more of a group in the child mixture lowers that group's loss: every slope k < 0
    check['k_max'] = fits.params.k.max()"""

DYNAMIC_REAL_WHAT = (
    "the numbers of parent and child runs, fits and flagged fits; the R² of every fit recomputed here from the "
    "children's losses and the law written out in numpy (smallest, mean, largest difference from the "
    "analysis' R²); the largest difference between the fitted parameters (Huber 0.02) and plain least squares "
    "on the same design (equal when no residual exceeds the Huber threshold)" + "; for m=2 the largest "
    "slope k (negative: more of a group lowers its own loss).")


METHOD_SETUP = """\
from scipy.stats import spearmanr
sweeps = {s: load_bundle(s, ('compare',)) for s in ('m2', 'm3')}   # method runs + their break-step children
res = {(s, meth): ja.method_parameters(sweeps[s], meth) for s in sweeps for meth in ja.METHODS}"""

METHOD_PARAMETERS_REAL_CHECK = """\
star_r2_err, star_ols_err, tilde_err = [], [], []
for (s, meth), r in res.items():
    sw = sweeps[s]; pcols = [f'p_{g}' for g in sw.groups]
    kids = ja.child_table(sw, 'val', ['method'], meth)
    for _, f in r.a_star_fits.iterrows():   # A* rows refitted by least squares, R^2 recomputed, in numpy
        d = kids[kids.seed == f.seed]
        p = d[pcols].to_numpy()
        if sw.m == 2:
            X, y = np.c_[p[:, sw.groups.index(f.group)], np.ones(len(p))], d[f'L_{f.group}'].to_numpy()
        else:
            X, y = p, (d[f'L_{f.group}'] - d[f'LB_{f.group}']).to_numpy()
        theta = f[list(r.a_star_names)].to_numpy(float)
        pred = X @ theta
        star_r2_err.append(abs(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum() - f.r2))
        star_ols_err.append(np.abs(np.linalg.lstsq(X, y, rcond=None)[0] - theta).max())
    for _, row in r.similarity.iterrows():   # A~ = b A^t (m=2: its identifiable diagonal)
        a = r.matrix('A_method', row.seed)
        a = ja.two_group_effective(a) if sw.m == 2 else a
        tilde_err.append(np.abs(r.matrix('A_tilde', row.seed) - row.b * a).max())
stars = pd.concat([r.a_star_fits for r in res.values()])
scales = pd.concat([r.scale_fits for r in res.values()])
check = {'n_a_star_fits': len(stars), 'n_scale_fits': len(scales),
         'n_flagged': int((stars['flags'] != '').sum() + (scales['flags'] != '').sum()),
         'a_star_r2_min': stars.r2.min(), 'a_star_r2_recompute_err_max': max(star_r2_err),
         'a_star_vs_least_squares_max': max(star_ols_err), 'a_tilde_err_max': max(tilde_err),
         'scale_r2_min': scales.r2.min(), 'b_max': scales.b.max()}"""

MEASUREMENTS_REAL_CHECK = """\
sim_err, sign_err = [], []
for (s, meth), r in res.items():   # sim recomputed from the matrices: column sums, cosine, scipy's Spearman
    for _, row in r.similarity.iterrows():
        u, v = (r.matrix(w, row.seed).sum(0) for w in ('A_star', 'A_tilde'))
        u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        sim_err.append(abs(0.5 * u @ v + 0.5 * spearmanr(u, v)[0] - row.sim))
        a = r.matrix('A_method', row.seed)
        w = -(ja.two_group_effective(a) if len(a) == 2 else a).sum(0)
        w = w / np.linalg.norm(w)
        sign_err.append(abs(0.5 * u @ w + 0.5 * spearmanr(u, w)[0] - row.sim_method_sign))
b_true = [(t['A_star'] * t['A_method']).sum() / (t['A_method'] ** 2).sum() for _, t in flip_probes]  # A* = b_true A^t
check = {'n_rows': len(table), 'n_seeds_min': int(table.n_seeds.min()), 'n_flagged': int(table.n_flagged.sum()),
         'sim_recompute_err_max': max(sim_err), 'sim_method_sign_recompute_err_max': max(sign_err),
         'sim_min': table.sim.min(), 'sim_max': table.sim.max(),
         'flip_sim_min': flip_res.similarity.sim.min(),
         'flip_sim_method_sign_max': flip_res.similarity.sim_method_sign.max(),
         'flip_b_rel_err_max': np.max(np.abs(flip_res.similarity.b.to_numpy() / b_true - 1)),
         'flip_n_flagged': int((flip_res.similarity['flags'] != '').sum())}"""

REAL = ("**Real data**: the bundled example sweeps, runs trained by jaxlaws on the bundled text groups "
        "(`jaxlaws/data/bundle`, regenerated by `python benchmarks/make_bundle.py`). ")
SYNTH = "**Synthetic: a parameter-recovery check** (no runs of this setting are bundled), on sweeps drawn from "



NOTEBOOKS = {
    "static_m2": notebook(
        "Static law, two groups (code / literature)",
        REAL + "The original's `2_static_law.ipynb`: per (group, seed), `L_i = c_i + exp(k_i p_i + b_i)` fitted "
        "the two-stage way at the final step on the 7-mixture grid; R², the leave-one-out error, the "
        "closed-form optimal mixture, and that mixture trained from scratch against the best grid point.",
        static_real_cells("m2"), STATIC_REAL_CHECK, STATIC_REAL_WHAT),
    "static_m3": notebook(
        "Static law, three groups (code / docs / literature)",
        REAL + "The original's `3_static_law.ipynb`: the reduced log-linear law `L_i = exp(l_i) + exp(b_i + "
        "t_i·p_<m)` per (group, seed) on the 7 mixtures of the grid (a small init grid here: the fits equal the "
        "default's), the optimal mixture by projected gradient on the simplex, and that mixture trained.",
        static_real_cells("m3"), STATIC_REAL_CHECK, STATIC_REAL_WHAT),
    "dynamic_m2": notebook(
        "Dynamic law, two groups (code / literature)",
        REAL + "The original's `2_dynamic_law.ipynb`: parents broken at step B=500 of 1000, children resumed with "
        "6 mixtures for R=100 steps; per (group, parent, seed) `L_i^{B+R} = k p_i + b` (closed form, Huber 0.02).",
        dynamic_real_cells("m2"), DYNAMIC_REAL_CHECK, DYNAMIC_REAL_WHAT),
    "dynamic_m3": notebook(
        "Dynamic law, three groups (code / docs / literature)",
        REAL + "The original's `3_dynamic_law.ipynb`: the reduced linear law `L_i^{B+R} = c + t·p_<m` and the "
        "full law on the change `L^{B+R} - L^B = a·p`, per (group, parent, seed).",
        dynamic_real_cells("m3"), DYNAMIC_REAL_CHECK, DYNAMIC_REAL_WHAT),
    "instruction_static": notebook(
        "Static law, nine instruction tasks",
        SYNTH + "the paper's stored parameters. The original's `instruction_static_law.ipynb`: the 9-task reduced log-linear law (xsum's proportion "
        "eliminated) on 50 Dirichlet mixtures per seed; two seeds and a small init grid here.",
        ["sweep, truth = synthetic.reference_static_sweep('instruction', noise=0.01)\n"
         "sweep = seeds_only(sweep, [0])\n"
         "fits = ja.fit_static(sweep, n_random=1)\nfits.params[['group', 'seed', 'l', 'b', 'mse', 'r2']].round(4)",
         "fits.summary",
         "# Observed against fitted losses (all tasks).",
         "final = sweep.losses[(sweep.losses.kind == 'static') & (sweep.losses.step == 1000)]\n"
         "fig, ax = plt.subplots(figsize=(4, 4))\n"
         "for k, r in fits.params.iterrows():\n"
         "    d = final[(final.group == r.group) & (final.seed == r.seed)]\n"
         "    p = d[[f'p_{g}' for g in sweep.groups]].to_numpy()\n"
         "    ax.scatter(d['loss'], fits.predict(k, p), s=6, label=r.group)\n"
         "lims = [final.loss.min(), final.loss.max()]\nax.plot(lims, lims, 'k--', lw=1)\n"
         "ax.set(xlabel='observed loss', ylabel='fitted loss'); ax.legend(fontsize=6)"],
        INSTRUCTION_STATIC_CHECK,
        "the number of fits and of flagged fits, the smallest R², the largest errors of `l`, `b` and (relative "
        "to the task's largest slope) `t` against the parameters that generated the sweep (`truth`), and the "
        "largest and RMS error of the fitted losses against the true law at the 50 mixtures."),
    "instruction_dynamic": notebook(
        "Dynamic laws, nine instruction tasks",
        SYNTH + "the paper's stored parameters. The original's `instruction_dynamic_law.ipynb`: 10 parents at step 500, 50 children each; the linear "
        "law and the log-ratio law `log(L^{B+100}/L^B) = c + t·p_<m`, per task and parent.",
        ["sweep, truth = synthetic.reference_dynamic_sweep('instruction', noise=0.01)\n"
         "fits = ja.fit_dynamic(sweep, 'linear')\nfits.summary",
         "logs, log_truth = synthetic.reference_dynamic_sweep('instruction', noise=0.005, log_ratio=True)\n"
         "log_fits = ja.fit_dynamic(logs, 'log_ratio')\nlog_fits.summary",
         "# R² per task (correct formula), as the original printed.",
         "fits.params.groupby('group')[['mse', 'r2']].mean().round(4)",
         "fig, ax = plt.subplots(figsize=(6, 3))\n"
         "fits.params.groupby('group')['r2'].mean().plot.bar(ax=ax)\nax.set(ylabel='mean R²'); fig.tight_layout()"],
        INSTRUCTION_DYNAMIC_CHECK,
        "for each law, the number of fits and of flagged fits, the mean and smallest R², the largest error of "
        "`c` and of `t` against the parameters that generated the sweep (`truth`), and the largest and RMS "
        "error of the prediction (loss, or log ratio) at the children against the true law."),
    "method_parameters": notebook(
        "Method parameters: A*, the method's A^t and its scale",
        REAL + "The original's `{2,3}_{aioli,doge,doremi,skillit}_parameters.ipynb`: each method run is broken "
        "at B=500 and 6 children resume from it for R=100 steps; `A*` is fitted on the children, `A^t` comes "
        "from the method's recorded matrices, and one scalar `b` maps it onto the children (`Ã = b A^t`).",
        [METHOD_SETUP + "\nres[('m3', 'aioli')].a_star_fits.round(3)",
         "res[('m3', 'aioli')].scale_fits.round(4)",
         "np.set_printoptions(precision=3, suppress=True)\n"
         "r = res[('m3', 'aioli')]\nprint('A*\\n', r.matrix('A_star', 0)); print('A_tilde\\n', r.matrix('A_tilde', 0))",
         "# Children against the A* law and the scaled method law (m=2, Aioli, seed 0).",
         "r, sw = res[('m2', 'aioli')], sweeps['m2']\nkids = ja.child_table(sw, 'val', ['method'], 'aioli')\n"
         "kids = kids[kids.seed == 0]\nfig, axes = plt.subplots(1, 2, figsize=(8, 3.2))\n"
         "c = r.scale_fits[r.scale_fits.seed == 0].iloc[0]\n"
         "for i, (ax, g) in enumerate(zip(axes, sw.groups)):\n"
         "    own = kids[f'p_{g}'].to_numpy(); o = np.argsort(own)\n"
         "    ax.scatter(own, kids[f'L_{g}'], s=14, label='children')\n"
         "    k = r.a_star_fits[(r.a_star_fits.group == g) & (r.a_star_fits.seed == 0)].iloc[0]\n"
         "    ax.plot(own[o], (k.k * own + k.b)[o], label='A* law')\n"
         "    p = kids[[f'p_{h}' for h in sw.groups]].to_numpy()\n"
         "    feat = p @ r.matrix('A_method', 0).T\n"
         "    ax.plot(own[o], (c[f'c{i + 1}'] + c.b * feat[:, i])[o], '--', label='b A^t law')\n"
         "    ax.set(title=g, xlabel=f'child p_{g}', ylabel='loss at B+R')\naxes[0].legend(fontsize=7); fig.tight_layout()"],
        METHOD_PARAMETERS_REAL_CHECK,
        "the number of `A*` and scale fits (2 and 3 groups x 3 seeds x 4 methods; 3 seeds x 8) and of flagged "
        "fits, the smallest R² of the `A*` fits and its recomputation here in numpy, the largest difference "
        "between the `A*` fits (Huber 0.02) and plain least squares on the same children, `Ã = b A^t` "
        "recomputed from the analysis' `A^t` and `b`, the smallest scale-fit R² and the largest fitted `b`."),
    "measurements": notebook(
        "Measurements: how well each method's A^t matches A*",
        REAL + "The original's `{2,3}_measurements.ipynb`: `sim = ½ cos(u, v) + ½ Spearman(u, v)` of the "
        "normalised column sums of `A*` and `Ã`, per seed and averaged; `sim_method_sign` uses the method's own "
        "sign (a flipped matrix scores -1 there while the free scale `b` hides it from `sim`). The last part is "
        + SYNTH.lower().replace("**", "").replace(" (no runs of this setting are bundled)", "") +
        "the paper's stored `A*` with Aioli's matrix flipped (`truth_mode='flip'`), the one case with a known answer.",
        [METHOD_SETUP + "\nrows = []\nfor (s, meth), r in res.items():\n"
         "    rows.append({'setting': s, 'method': meth, **r.averages.loc['mean'].to_dict(),\n"
         "                 'sim_sd': r.averages.loc['std', 'sim'], 'sim_per_seed': ' '.join(f'{v:.2f}' for v in r.similarity.sim),\n"
         "                 'n_seeds': len(r.similarity), 'n_flagged': int((r.similarity['flags'] != '').sum())})\n"
         "table = pd.DataFrame(rows)\ntable.round(3)",
         "fig, ax = plt.subplots(figsize=(6, 3))\n"
         "table.pivot(index='method', columns='setting', values='sim').plot.bar(ax=ax, yerr=table.pivot(\n"
         "    index='method', columns='setting', values='sim_sd'))\n"
         "ax.set(ylabel='mean sim (sd over seeds)', ylim=(-1, 1.05)); fig.tight_layout()",
         "# Synthetic: the flipped probe (Aioli, m=3, seeds 0 and 1), where sim must be 1 and sim_method_sign -1.",
         "flip_probes = [synthetic.method_sweep('aioli', 3, s, truth_mode='flip') for s in range(2)]\n"
         "flip_res = ja.method_parameters(concat_sweeps([sw for sw, _ in flip_probes]), 'aioli')\n"
         "flip_res.similarity.round(3)"],
        MEASUREMENTS_REAL_CHECK,
        "the number of (setting, method) rows, seeds and flagged seeds, every seed's `sim` and "
        "`sim_method_sign` recomputed here from the analysis' `A*`, `Ã` and `A^t` (column sums, cosine, "
        "scipy's Spearman), the range of the mean `sim` (real results: the bounds pin the bundled numbers), and "
        "for the synthetic flipped probe: `sim` (1), `sim_method_sign` (-1) and the fitted scale `b` against "
        "the true one (`A* = b A^t`)."),
}

def main() -> None:
    for name, nb in NOTEBOOKS.items():
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(f"wrote notebooks/{name}.ipynb")


if __name__ == "__main__":
    main()
