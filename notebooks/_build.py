"""Build the analysis notebooks (one per family of the original's notebooks) with nbformat.

The static, dynamic, method-parameter and measurement notebooks run on the
bundled REAL example sweeps (``jaxlaws.sweeps.bundle``: runs trained by jaxlaws on the bundled text groups);
the instruction-task notebooks (no such runs are bundled) and the flipped-sign probe of ``measurements`` are
SYNTHETIC parameter-recovery checks (``jaxlaws.sweeps.synthetic``, from the original's stored parameters) and
say so in their first cell. ``custom_law`` fits a law of the reader's own with ``jaxlaws.fit``; ``mixing_loop``
runs a data-mixing method (``jaxlaws.mixing``) in the reader's own training loop, on synthetic data.

Run ``python notebooks/_build.py [NAME ...]``: each notebook is built, executed (nbclient, on the CPU, in a
temporary folder) and written with its outputs, so that it reads on the web. ``tests/test_notebooks.py`` checks
that the stored notebooks are what this file builds, and executes each with its own checks of the numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

# The first code cell of every notebook: on a fresh Colab or TPU runtime it installs what the notebook imports
# (jaxlaws and its plotting extra); where they are installed it does nothing. The data come with the package.
INSTALL = """\
# Setup: install jaxlaws (with matplotlib) when it is missing, e.g. on a fresh Colab or TPU runtime.
# JAXLAWS_PIP may name another source, e.g. 'jaxlaws[plot] @ git+https://github.com/<owner>/jaxlaws'.
import importlib.util, os, subprocess, sys
if any(importlib.util.find_spec(m) is None for m in ('jaxlaws', 'matplotlib')):
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', os.environ.get('JAXLAWS_PIP', 'jaxlaws[plot]')],
                   check=True)"""

SETUP = """\
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


def notebook(title: str, intro: str, cells: list[str], imports: str = SETUP) -> nbformat.NotebookNode:
    """Title and intro (markdown), the install cell, ``imports``, then ``cells``: code, or a one-line
    ``"# ..."`` markdown cell. The numbers the notebook computes are checked by ``tests/test_notebooks.py``,
    which runs it with its own checks appended (they are not part of the notebook)."""
    nb = new_notebook()
    nb.cells = [new_markdown_cell(f"# {title}\n\n{intro}"), new_code_cell(INSTALL), new_code_cell(imports)]
    for c in cells:
        nb.cells.append(new_markdown_cell(c[2:].strip()) if c.startswith("# ") and "\n" not in c else new_code_cell(c))
    for i, cell in enumerate(nb.cells):  # fixed ids: rebuilding an unchanged notebook leaves its file unchanged
        cell.id = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


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
        "rows = []\nfor label, L in (('best grid point', static[static.run == best]), "
        "('predicted optimum, trained', trained)):\n"
        "    v, t = per_run(L, 'val'), per_run(L, 'test')\n"
        "    rows.append({'mixture': label, **v[pcols].iloc[0].round(4).to_dict(), 'seeds': len(v),\n"
        "                 'val_loss': v.loss.mean(), 'val_sd': v.loss.std(ddof=0),\n"
        "                 'test_loss': t.loss.mean(), 'test_sd': t.loss.std(ddof=0)})\n"
        "realised = pd.DataFrame(rows)\n"
        "# the fitted laws' mean loss over groups at their optimum (mean over seeds)\n"
        "realised['law_predicted_val'] = [np.nan, opt.total_loss.iloc[-1] / sweep.m]\n"
        "realised",
    ]


def dynamic_real_cells(setting: str) -> list[str]:
    fit = (
        "fits = ja.fit_dynamic(sweep)   # per (group, parent, seed): L_i^{B+R} = k p_i + b\nfits.params.round(4)"
        if setting == "m2"
        else "fits = ja.fit_dynamic(sweep, 'linear')   # L_i^{B+R} = c + t.p_<m\n"
        "full = ja.fit_dynamic(sweep, 'full')      # L_i^{B+R} - L_i^B = a.p\n"
        "pd.concat({'linear': fits.summary, 'full': full.summary})"
    )
    cells = [
        f"setting = {setting!r}\n"
        "sweep = load_bundle(setting, ('dynamic',))   # parents to B, then every child mixture for R steps\n"
        "print(describe_bundle(setting))\n"
        "runs = sweep.losses.drop_duplicates(['run', 'seed'])\nruns.groupby(['kind', 'seed']).size().unstack()",
        fit,
    ]
    if setting == "m2":
        cells.append("fits.summary")
    cells += [
        DYNAMIC_PLOT,
        "# R² per group and parent (mean over seeds).",
        "fits.params.groupby(['group', 'parent']).r2.mean().unstack().round(3)",
    ]
    return cells


METHOD_SETUP = """\
sweeps = {s: load_bundle(s, ('compare',)) for s in ('m2', 'm3')}   # method runs + their break-step children
res = {(s, meth): ja.method_parameters(sweeps[s], meth) for s in sweeps for meth in ja.METHODS}"""

REAL = (
    "**Real data**: the bundled example sweeps, runs trained by jaxlaws on the bundled text groups "
    "(`jaxlaws/data/bundle`, regenerated by `python benchmarks/make_bundle.py`). "
)
SYNTH = "**Synthetic: a parameter-recovery check** (no runs of this setting are bundled), on sweeps drawn from "
CUSTOM_IMPORTS = """\
%matplotlib inline
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import jaxlaws as jl"""

CUSTOM_CELLS = [
    "# A law is a value: its parameter names, a pure `predict(params, x)` in `jax.numpy`, and what the engine "
    "should know about `x` and the predictions. Here a power law in model size, `L(N) = E + A N^-alpha`, with "
    "`E = exp(e)` and `A = exp(a)` so that both stay positive whatever the solver tries.",
    "def predict(params, x):\n"
    "    e, a, alpha = params                  # params: (3,); x: (n, 1) model sizes\n"
    "    return jnp.exp(e) + jnp.exp(a - alpha * jnp.log(x[:, 0]))\n\n"
    "def init_grid(key, x, y):\n"
    "    # every combination of: E a little below the smallest loss, A over many orders, alpha in (0, 1]\n"
    "    return jl.laws.grid(np.log(y.min()) + np.linspace(-1.0, -0.05, 4), np.linspace(0.0, 12.0, 7),\n"
    "                        np.linspace(0.05, 1.0, 8))\n\n"
    "def paper_names(params):                  # what res.paper shows: the law's own convention\n"
    "    return {'E': np.exp(params[..., 0]), 'A': np.exp(params[..., 1]), 'alpha': params[..., 2]}\n\n"
    "law = jl.laws.Law('power_law', ('e', 'a', 'alpha'), predict, x_dim=1, x_kind='positive', inputs=('N',),\n"
    "                  init_grid=init_grid, output_range=(0.0, np.inf), to_paper=paper_names)\n"
    "law",
    "# Synthetic data from known parameters (1 % multiplicative noise); the four largest models are held out "
    "(`test=`: left out of the fit and of every choice, only scored) to see how far the law extrapolates.",
    "truth = {'E': 1.8, 'A': 400.0, 'alpha': 0.34}\n"
    "rng = np.random.default_rng(0)\n"
    "N = np.logspace(6, 9, 24)\n"
    "clean = truth['E'] + truth['A'] * N ** -truth['alpha']\n"
    "data = pd.DataFrame({'N': N, 'loss': clean * np.exp(0.01 * rng.standard_normal(N.size))})\n"
    "far = (data.N > 4e8).to_numpy()\n"
    "# x by column name; least squares (jl.huber(delta) would down-weight outliers)\n"
    "res = jl.fit(law, data[['N']], data['loss'], objective=jl.squared(), test=far)\n"
    "res",
    "pd.DataFrame({'fitted': {k: float(v) for k, v in res.paper.items()}, 'truth': truth}).assign(\n"
    "    rel_error=lambda t: t.fitted / t.truth - 1)",
    "print(f'R^2 {float(res.r2):.4f}, flags {res.flags}, held-out RMSE {float(res.test_rmse):.4f}')\n"
    "grid = np.logspace(6, 9.5, 100)\n"
    "fig, ax = plt.subplots(figsize=(5, 3.2))\n"
    "ax.scatter(data.N[~far], data.loss[~far], s=14, label='fitted points')\n"
    "ax.scatter(data.N[far], data.loss[far], s=14, marker='x', label='held out')\n"
    "ax.plot(grid, res.predict(grid[:, None]), label='fitted law')\n"
    "ax.plot(grid, truth['E'] + truth['A'] * grid ** -truth['alpha'], 'k:', label='true law')\n"
    "ax.set(xscale='log', xlabel='model size N', ylabel='loss', title='synthetic data'); ax.legend(fontsize=7)\n"
    "fig.tight_layout()",
    "# Many problems in one compiled program: the same law on 64 independent noise draws with `fit_batched` "
    "(`xs` is `(B, n, 1)`, `ys` is `(B, n)`); the spread of the estimates is the sampling error of one fit.",
    "draws = clean * np.exp(0.01 * np.random.default_rng(1).standard_normal((64, N.size)))\n"
    "batch = jl.fit_batched(law, np.broadcast_to(N[:, None], (64, N.size, 1)), draws, objective=jl.squared())\n"
    "est = pd.DataFrame({k: np.asarray(v) for k, v in batch.paper.items()})\n"
    "est.describe().loc[['mean', 'std', 'min', 'max']]",
    "fig, axes = plt.subplots(1, 3, figsize=(9, 2.6))\n"
    "for ax, name in zip(axes, est):\n"
    "    ax.hist(est[name], bins=16)\n"
    "    ax.axvline(truth[name], color='k', ls=':')\n"
    "    ax.set(xlabel=name, ylabel='fits', title=f'{name} over 64 draws (synthetic)')\n"
    "fig.tight_layout()",
]

MIXING_IMPORTS = """\
%matplotlib inline
import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import pandas as pd
from jaxlaws import mixing"""

MIXING_CELLS = [
    "# Your data and your model. Three groups of examples: in groups 0 and 1 the target is a fixed linear "
    "function of the features, in group 2 it is pure noise (its features sit in other columns, so it only "
    "wastes the batch). A one-layer flax regressor, SGD, and one loss per example.",
    "m, steps, B = 3, 600, 16                    # groups, training steps, batch size\n"
    "w_true = jax.random.normal(jax.random.key(42), (8,))\n\n"
    "def make_batch(key, group_ids):             # features x (B, 16), targets y (B,)\n"
    "    kx, ky = jax.random.split(key)\n"
    "    x = jax.random.normal(kx, (group_ids.shape[0], 8))\n"
    "    noise = (group_ids == 2)[:, None]\n"
    "    y = jnp.where(noise[:, 0], jax.random.normal(ky, group_ids.shape), x @ w_true)\n"
    "    return jnp.concatenate([jnp.where(noise, 0.0, x), jnp.where(noise, x, 0.0)], -1), y\n\n"
    "class Regressor(nn.Module):\n"
    "    @nn.compact\n"
    "    def __call__(self, x):\n"
    "        return nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros)(x)[:, 0]\n\n"
    "model, opt = Regressor(), optax.sgd(0.002)\n\n"
    "def loss_fn(params, batch):                 # one loss per example, shape (B,)\n"
    "    x, y = batch\n"
    "    return (model.apply(params, x) - y) ** 2\n\n"
    "held_ids = jnp.repeat(jnp.arange(m), 256)  # a fixed held-out set, 256 examples per group\n"
    "held_out = make_batch(jax.random.key(7), held_ids)",
    "# The training loop is yours; the mixer is a few pure functions in it (`init`, `mixture`, `update`, "
    "`observes`, `weights`, like an `optax` transformation). Aioli reads the held-out per-group losses at the "
    "steps where `observes(step)` is true, and the mixture it returns draws each batch's groups. The whole run "
    "is one `lax.scan`; `vmap` trains several seeds in one program.",
    "def train(mixer, seed):\n"
    "    key = jax.random.key(seed)\n"
    "    params = model.init(key, jnp.zeros((1, 16)))\n\n"
    "    def step(carry, s):\n"
    "        params, opt_state, mstate = carry\n"
    "        losses = jax.lax.cond(mixer.observes(s),   # held-out losses only where the mixer reads them\n"
    "                              lambda: mixing.group_losses(loss_fn, params, held_out, held_ids, m)[0],\n"
    "                              lambda: jnp.zeros(m))\n"
    "        mstate = mixer.update(mstate, step=s, losses=losses)\n"
    "        p, exact = mixer.mixture(mstate)          # exact: batches allocated exactly (LearnParams rounds)\n"
    "        k_groups, k_batch = jax.random.split(jax.random.fold_in(key, s))\n"
    "        batch = make_batch(k_batch, mixing.sample_groups(k_groups, p, B, exact))\n"
    "        grads = jax.grad(lambda q: loss_fn(q, batch).mean())(params)\n"
    "        updates, opt_state = opt.update(grads, opt_state)\n"
    "        return (optax.apply_updates(params, updates), opt_state, mstate), p\n\n"
    "    carry = (params, opt.init(params), mixer.init(key))\n"
    "    (params, _, mstate), mixtures = jax.lax.scan(step, carry, jnp.arange(steps))\n"
    "    return params, mixer.weights(mstate), mixtures",
    "# Aioli (the original's hyper-parameters for m = 3) against the uniform mixture, four seeds each: the "
    "final weights and each group's held-out loss after training.",
    "seeds = jnp.arange(4)\n"
    "mixers = {'aioli': mixing.aioli(m, total_steps=steps, batch_size=B),\n"
    "          'uniform': mixing.constant(np.ones(m) / m)}\n"
    "out = {name: jax.jit(jax.vmap(lambda s, mx=mx: train(mx, s)))(seeds) for name, mx in mixers.items()}\n"
    "held = {name: jax.vmap(lambda q: mixing.group_losses(loss_fn, q, held_out, held_ids, m)[0])(o[0])\n"
    "        for name, o in out.items()}\n"
    "table = pd.concat({name: pd.DataFrame({'seed': np.asarray(seeds),\n"
    "                                       **{f'w_{g}': np.asarray(o[1])[:, g] for g in range(m)},\n"
    "                                       **{f'loss_{g}': np.asarray(held[name])[:, g] for g in range(m)}})\n"
    "                   for name, o in out.items()}, names=['mixer', None]).droplevel(1)\n"
    "table.round(4)",
    "# Aioli moves weight off the noise group (2) as training goes on; the two clean groups get more of each "
    "batch and end with a lower held-out loss than under the uniform mixture.",
    "fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))\n"
    "mix = np.asarray(out['aioli'][2])                 # (seeds, steps, m)\n"
    "for g in range(m):\n"
    "    axes[0].plot(mix[:, :, g].mean(0), label=f'group {g}' + (' (noise)' if g == 2 else ''))\n"
    "axes[0].axhline(1 / m, color='k', ls=':', lw=1)\n"
    "axes[0].set(xlabel='step', ylabel='mixture (mean over seeds)', title='Aioli (synthetic)')\n"
    "axes[0].legend(fontsize=7)\n"
    "clean = table.assign(clean=(table.loss_0 + table.loss_1) / 2).groupby(level=0).clean\n"
    "axes[1].bar(list(clean.mean().index), clean.mean(), yerr=clean.std())\n"
    "axes[1].set(ylabel='held-out loss, groups 0 and 1', title='after training (synthetic)')\n"
    "fig.tight_layout()",
]


NOTEBOOKS = {
    "static_m2": notebook(
        "Static law, two groups (code / literature)",
        REAL + "The original's `2_static_law.ipynb`: per (group, seed), `L_i = c_i + exp(k_i p_i + b_i)` fitted "
        "the two-stage way at the final step on the 7-mixture grid; R², the leave-one-out error, the "
        "closed-form optimal mixture, and that mixture trained from scratch against the best grid point.",
        static_real_cells("m2"),
    ),
    "static_m3": notebook(
        "Static law, three groups (code / docs / literature)",
        REAL + "The original's `3_static_law.ipynb`: the reduced log-linear law `L_i = exp(l_i) + exp(b_i + "
        "t_i·p_<m)` per (group, seed) on the 7 mixtures of the grid (a small init grid here: the fits equal the "
        "default's), the optimal mixture by projected gradient on the simplex, and that mixture trained.",
        static_real_cells("m3"),
    ),
    "dynamic_m2": notebook(
        "Dynamic law, two groups (code / literature)",
        REAL + "The original's `2_dynamic_law.ipynb`: parents broken at step B=500 of 1000, children resumed with "
        "6 mixtures for R=100 steps; per (group, parent, seed) `L_i^{B+R} = k p_i + b` (closed form, Huber 0.02).",
        dynamic_real_cells("m2"),
    ),
    "dynamic_m3": notebook(
        "Dynamic law, three groups (code / docs / literature)",
        REAL + "The original's `3_dynamic_law.ipynb`: the reduced linear law `L_i^{B+R} = c + t·p_<m` and the "
        "full law on the change `L^{B+R} - L^B = a·p`, per (group, parent, seed).",
        dynamic_real_cells("m3"),
    ),
    "instruction_static": notebook(
        "Static law, nine instruction tasks",
        SYNTH + "the paper's stored parameters. The original's `instruction_static_law.ipynb`: the 9-task reduced "
        "log-linear law (xsum's proportion "
        "eliminated) on 50 Dirichlet mixtures per seed; one seed and a small init grid here.",
        [
            "sweep, truth = synthetic.reference_static_sweep('instruction', noise=0.01)\n"
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
            "ax.set(xlabel='observed loss', ylabel='fitted loss'); ax.legend(fontsize=6)",
        ],
    ),
    "instruction_dynamic": notebook(
        "Dynamic laws, nine instruction tasks",
        SYNTH + "the paper's stored parameters. The original's `instruction_dynamic_law.ipynb`: 10 parents at step "
        "500, 50 children each; the linear "
        "law and the log-ratio law `log(L^{B+100}/L^B) = c + t·p_<m`, per task and parent.",
        [
            "sweep, truth = synthetic.reference_dynamic_sweep('instruction', noise=0.01)\n"
            "fits = ja.fit_dynamic(sweep, 'linear')\nfits.summary",
            "logs, log_truth = synthetic.reference_dynamic_sweep('instruction', noise=0.005, log_ratio=True)\n"
            "log_fits = ja.fit_dynamic(logs, 'log_ratio')\nlog_fits.summary",
            "# R² per task (correct formula), as the original printed.",
            "fits.params.groupby('group')[['mse', 'r2']].mean().round(4)",
            "fig, ax = plt.subplots(figsize=(6, 3))\n"
            "fits.params.groupby('group')['r2'].mean().plot.bar(ax=ax)\nax.set(ylabel='mean R²'); fig.tight_layout()",
        ],
    ),
    "method_parameters": notebook(
        "Method parameters: A*, the method's A^t and its scale",
        REAL + "The original's `{2,3}_{aioli,doge,doremi,skillit}_parameters.ipynb`: each method run is broken "
        "at B=500 and 6 children resume from it for R=100 steps; `A*` is fitted on the children, `A^t` comes "
        "from the method's recorded matrices, and one scalar `b` maps it onto the children (`Ã = b A^t`).",
        [
            METHOD_SETUP + "\nres[('m3', 'aioli')].a_star_fits.round(3)",
            "res[('m3', 'aioli')].scale_fits.round(4)",
            "np.set_printoptions(precision=3, suppress=True)\n"
            "r = res[('m3', 'aioli')]\nprint('A*\\n', r.matrix('A_star', 0)); "
            "print('A_tilde\\n', r.matrix('A_tilde', 0))",
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
            "    ax.set(title=g, xlabel=f'child p_{g}', ylabel='loss at B+R')\n"
            "axes[0].legend(fontsize=7); fig.tight_layout()",
        ],
    ),
    "measurements": notebook(
        "Measurements: how well each method's A^t matches A*",
        REAL + "The original's `{2,3}_measurements.ipynb`: `sim = ½ cos(u, v) + ½ Spearman(u, v)` of the "
        "normalised column sums of `A*` and `Ã`, per seed and averaged; `sim_method_sign` uses the method's own "
        "sign (a flipped matrix scores -1 there while the free scale `b` hides it from `sim`). The last part is "
        + SYNTH.lower().replace("**", "").replace(" (no runs of this setting are bundled)", "")
        + "the paper's stored `A*` with Aioli's matrix flipped (`truth_mode='flip'`), the one case with a known "
        "answer.",
        [
            METHOD_SETUP + "\nrows = []\nfor (s, meth), r in res.items():\n"
            "    rows.append({'setting': s, 'method': meth, **r.averages.loc['mean'].to_dict(),\n"
            "                 'sim_sd': r.averages.loc['std', 'sim'], "
            "'sim_per_seed': ' '.join(f'{v:.2f}' for v in r.similarity.sim),\n"
            "                 'n_seeds': len(r.similarity), 'n_flagged': int((r.similarity['flags'] != '').sum())})\n"
            "table = pd.DataFrame(rows)\ntable.round(3)",
            "fig, ax = plt.subplots(figsize=(6, 3))\n"
            "table.pivot(index='method', columns='setting', values='sim').plot.bar(ax=ax, yerr=table.pivot(\n"
            "    index='method', columns='setting', values='sim_sd'))\n"
            "ax.set(ylabel='mean sim (sd over seeds)', ylim=(-1, 1.05)); fig.tight_layout()",
            "# Synthetic: the flipped probe (Aioli, m=3, seeds 0 and 1), where sim must be 1 and sim_method_sign -1.",
            "flip_probes = [synthetic.method_sweep('aioli', 3, s, truth_mode='flip') for s in range(2)]\n"
            "flip_res = ja.method_parameters(concat_sweeps([sw for sw, _ in flip_probes]), 'aioli')\n"
            "flip_res.similarity.round(3)",
        ],
    ),
    "custom_law": notebook(
        "Fitting your own law",
        "**Synthetic data** drawn from known parameters. `jaxlaws.fit` takes any law written as a "
        "`jaxlaws.laws.Law`: a small scaling law with named parameters, fitted from a table, checked against the "
        "parameters that made the data, extrapolated to held-out sizes, and fitted to many draws at once.",
        CUSTOM_CELLS,
        imports=CUSTOM_IMPORTS,
    ),
    "mixing_loop": notebook(
        "A mixing method in your own training loop",
        "**Synthetic data** (a regression task of three groups, one pure noise). `jaxlaws.mixing` has Aioli, "
        "Skill-It, DoReMi, DoGE and the constant mixture as small pure functions for any model and any training "
        "loop; here Aioli picks the mixture of a small flax model inside `lax.scan`, for four seeds at once, "
        "and is compared with the uniform mixture.",
        MIXING_CELLS,
        imports=MIXING_IMPORTS,
    ),
}


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh ``python3`` kernel started in ``cwd`` (on the CPU, so that the stored
    outputs do not depend on the machine's accelerator); returns it with its outputs."""
    from nbclient import NotebookClient

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def main() -> None:
    ap = argparse.ArgumentParser(description="Build (and execute, storing the outputs) the notebooks.")
    ap.add_argument("names", nargs="*", help=f"notebooks to build (default: all of {sorted(NOTEBOOKS)})")
    ap.add_argument("--no-execute", action="store_true", help="write them without outputs")
    args = ap.parse_args()
    for name in args.names or NOTEBOOKS:
        nb = NOTEBOOKS[name]
        if not args.no_execute:
            with tempfile.TemporaryDirectory() as tmp:  # outside the checkout: the notebooks need none of its files
                execute(nb, Path(tmp))
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(f"wrote notebooks/{name}.ipynb" + ("" if args.no_execute else " (executed)"))


if __name__ == "__main__":
    main()
