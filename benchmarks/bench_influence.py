"""Benchmark and result: the influence of each training run on the predicted optimum, on the bundled REAL sweeps.

For the bundled m=2 (code/literature) and m=3 (code/docs/literature) static grids (``jaxlaws/data/bundle``,
real runs trained by jaxlaws; 7 mixtures x 3 seeds), the analysis' static fits are refitted by ``jl.solve``
and :func:`jaxlaws.analysis.influence.influence` gives, per seed, every d p*/d loss and d p*/d weight by
implicit differentiation. Measured in the same run:

* time of ``influence`` per setting (all seeds, warm: compiled once before timing; it also refits without each
  run) against the baseline, central finite differences with refits: for every loss and every run weight, two
  refits (``jl.solve`` from the fitted laws plus Newton steps to round-off, vmapped over groups, jit-compiled
  and warm) and the optimum;
* agreement of the two Jacobians;
* how well the first-order shift if a run is left out (``-d p*/d w_r``) predicts the exact leave-one-out refit.

Run: ``python benchmarks/bench_influence.py [--settings m2,m3] [--h 1e-5]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np


def _data(setting: str):
    from jaxlaws.analysis import _common
    from jaxlaws.analysis.static import fit_static
    from jaxlaws.sweeps.bundle import load_bundle
    from jaxlaws.sweeps.schema import proportion_columns

    sweep = load_bundle(setting, ("compare",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = fit_static(sweep, include_flagged=True)
    groups = tuple(sweep.groups)
    wide = _common.wide_losses(sweep, ["static"], "val")
    wide = wide[wide["step"] == wide["step"].max()]
    out = []
    for seed, d in wide.groupby("seed", sort=True):
        f = fits.params[fits.params["seed"] == seed].set_index("group").loc[list(groups)]
        out.append(
            (
                int(seed),
                list(d["run"]),
                d[proportion_columns(groups)].to_numpy(np.float64),
                d[[f"L_{g}" for g in groups]].to_numpy(np.float64),
                f[list(fits.param_names)].to_numpy(np.float64),
                bool((f["flags"] != "").any()),
            )
        )
    from jaxlaws.analysis.optimum import optimum_table

    params = {
        g: {int(r["seed"]): r[list(fits.param_names)].to_numpy(float) for _, r in d.iterrows()}
        for g, d in fits.params.groupby("group")
    }
    table = optimum_table(params, groups, "two_group" if len(groups) == 2 else "log_linear")
    analysis_opt = {
        int(r["seed"]): [round(float(r[f"p_{g}"]), 3) for g in groups]
        for _, r in table.iterrows()
        if r["seed"] != "mean"
    }
    return fits.law, groups, out, analysis_opt


def _refit_optimum(law, x, polish: int = 6):
    """``(y, w, theta0) -> p*``: every group refitted by ``jl.solve`` from ``theta0``, then ``polish`` Newton
    steps on the same objective (``jaxlaws.fitting.solve.objective_fn``; the solver stops at a tolerance, which
    a difference quotient would amplify), then the optimum."""
    import jaxlaws as jl
    from jaxlaws.analysis.influence import group_losses_fn
    from jaxlaws.analysis.optimum import optimal_mixture
    from jaxlaws.fitting.solve import objective_fn, prepare

    m = x.shape[1]
    xs = jnp.asarray(x.T[:, :, None] if law.x_dim == 1 else np.broadcast_to(x, (m,) + x.shape))
    losses = group_losses_fn(law, m)
    cfg, _ = prepare(law, xs[0], jnp.ones(x.shape[0]), jnp.zeros((1, law.n_params)))
    assert cfg.box is None  # the static laws have no bounds: u = theta

    def one(xi, yi, th, w):
        th = jl.solve(law, xi, yi, th[None], weights=w).params
        hess, grad = jax.hessian(objective_fn, argnums=1), jax.grad(objective_fn, argnums=1)
        return jax.lax.fori_loop(
            0, polish, lambda _, t: t - jnp.linalg.solve(hess(cfg, t, xi, yi, w), grad(cfg, t, xi, yi, w)), th
        )

    @jax.jit
    def f(y, w, theta0):
        return optimal_mixture(losses, jax.vmap(one, in_axes=(0, 0, 0, None))(xs, y.T, theta0, w)).p

    return lambda y, w, th: np.asarray(f(jnp.asarray(y), jnp.asarray(w), jnp.asarray(th)))


def _fd(f, y, w, th, h):
    n, m = y.shape
    d_loss = np.zeros((m, n, m))
    d_weight = np.zeros((m, n))
    for r in range(n):
        for i in range(m):
            e = np.zeros_like(y)
            e[r, i] = h
            d_loss[:, r, i] = (f(y + e, w, th) - f(y - e, w, th)) / (2 * h)
        e = np.zeros_like(w)
        e[r] = h
        d_weight[:, r] = (f(y, w + e, th) - f(y, w - e, th)) / (2 * h)
    return d_loss, d_weight


def run(setting: str, h: float) -> dict:
    from jaxlaws.analysis.influence import influence

    law, groups, seeds, analysis_opt = _data(setting)
    m = len(groups)
    res, out = {}, {"setting": setting, "law": law.name, "seeds": len(seeds), "runs": len(seeds[0][1])}

    def all_influence():
        return [jax.block_until_ready(influence(law, x, y, th[:, None, :])) for _, _, x, y, th, _ in seeds]

    t0 = time.perf_counter()
    first = all_influence()
    out["influence_first_s"] = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        infl = all_influence()
        times.append(time.perf_counter() - t0)
    out["influence_warm_s"] = float(np.median(times))
    del first
    refit = _refit_optimum(law, seeds[0][2])
    s0 = seeds[0]
    refit(s0[3], np.ones(len(s0[1])), infl[0].params)  # compile before timing
    t0 = time.perf_counter()
    fds = [
        _fd(_refit_optimum(law, x) if k else refit, y, np.ones(len(runs)), np.asarray(r.params), h)
        for k, ((_, runs, x, y, _, _), r) in enumerate(zip(seeds, infl))
    ]
    out["fd_s"] = time.perf_counter() - t0
    out["fd_refits"] = sum(2 * (y.size + len(runs)) * m for _, runs, _, y, _, _ in seeds)
    errs_l = [np.max(np.abs(np.asarray(r.d_loss) - fl)) / np.max(np.abs(fl)) for r, (fl, _) in zip(infl, fds)]
    errs_w = [np.max(np.abs(np.asarray(r.d_weight) - fw)) / np.max(np.abs(fw)) for r, (_, fw) in zip(infl, fds)]
    out["fd_rel_err_loss"], out["fd_rel_err_weight"] = float(max(errs_l)), float(max(errs_w))
    # the exact leave-one-out shift (influence's refits without each run) vs the first-order -d p*/d w_r
    exact = np.concatenate([np.asarray(r.loo) for r in infl])
    first_order = np.concatenate([-np.asarray(r.d_weight).T for r in infl])
    out["loo_max_shift"] = float(np.abs(exact).max())
    out["loo_first_order_max_err"] = float(np.abs(exact - first_order).max())
    out["loo_corr"] = float(np.corrcoef(exact.ravel(), first_order.ravel())[0, 1])
    rows = []
    for (seed, runs, _x, _y, _, flagged), r in zip(seeds, infl):
        norm = np.asarray(r.norm)
        k = int(np.argmax(norm))
        drop = -np.asarray(r.d_weight)
        kd = int(np.argmax(np.abs(np.asarray(r.loo)).max(axis=1)))
        rows.append(
            {
                "seed": seed,
                "p*": np.round(np.asarray(r.p), 3).tolist(),
                "analysis_p*": analysis_opt[seed],
                "results": sorted(set(int(c) for c in np.asarray(r.fit_result))),
                "flagged_fit": flagged,
                "most_influential_run": runs[k],
                "influence": float(norm[k]),
                "median_influence": float(np.median(norm)),
                "largest_loo_run": runs[kd],
                "largest_loo_shift": float(np.abs(np.asarray(r.loo)[kd]).max()),
                "its_loo_results": sorted(set(int(c) for c in np.asarray(r.loo_result)[kd])),
                "its_first_order_shift": float(np.abs(drop[:, kd]).max()),
            }
        )
    res.update(out)
    res["per_seed"] = rows
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="m2,m3", help="bundle settings (m2, m3)")
    ap.add_argument("--h", type=float, default=1e-5, help="finite-difference step of the baseline")
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()}, jax {jax.__version__}, float64"
    )
    for setting in args.settings.split(","):
        r = run(setting, args.h)
        print(f"\n[{setting}, REAL bundle] law {r['law']}, {r['seeds']} seeds x {r['runs']} runs")
        print(
            f"  influence (all seeds): first call {r['influence_first_s']:.2f} s, "
            f"warm {r['influence_warm_s']:.4f} s; finite differences with {r['fd_refits']} group refits (warm): "
            f"{r['fd_s']:.2f} s -> {r['fd_s'] / r['influence_warm_s']:.0f}x"
        )
        print(
            f"  implicit vs finite differences (h={args.h}): max rel. diff d/dloss {r['fd_rel_err_loss']:.1e}, "
            f"d/dweight {r['fd_rel_err_weight']:.1e}"
        )
        print(
            f"  leave-one-out: exact shift up to {r['loo_max_shift']:.4f}; first-order error up to "
            f"{r['loo_first_order_max_err']:.4f}; correlation {r['loo_corr']:.3f}"
        )
        for row in r["per_seed"]:
            print("   ", row)
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
