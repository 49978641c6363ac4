r"""Benchmark: standard errors from the covariance at the optimum against the bootstrap, timed in the same run.

Cases:

* **Chinchilla** (Epoch's 240 points, Besiroglu et al. 2024): the law's default fit (Huber(1e-3) on
  :math:`\log L`, 4,500-init grid). Standard errors from :func:`jaxlaws.fitting.covariance.covariance`
  (the sandwich, the default for Huber, with its bread's kernel-smoothed :math:`\psi'`; also unsmoothed,
  ``bandwidth=0``; its equal-noise form; and the least-squares formula at the same optimum), from
  :func:`jaxlaws.bootstrap` (``--resamples`` pairs resamples, each started at the estimate as
  Epoch did) and Epoch's published bootstrap (4,000 resamples, BFGS from their estimate;
  ``epoch-research/analyzing-chinchilla``, ``data_analysis.ipynb``: "Parameter estimates and their standard
  errors" and "95% Confidence Intervals"). Intervals also in Epoch's ``E, A, B`` by the delta method and for
  the allocation exponent :math:`a = \beta/(\alpha+\beta)`.
* **Chinchilla, synthetic calibration**: ``--sims`` data sets drawn from the fitted law at the same 240
  ``(N, D)`` with noise resampled from the fit's log residuals; each fitted (from the truth) and its
  sandwich standard errors computed. Their spread is the estimator's true sampling spread at this design.
* **log_linear(3), least squares, synthetic**: one data set of 30 mixtures; covariance vs bootstrap vs the
  Monte-Carlo spread over ``--sims`` data sets, and interval coverage.

Timing: the covariance (jit-compiled, first call and warm median of 50) against the bootstrap
(``jaxlaws.bootstrap``, first call and a second, warm call), same process, ratio printed.

Run: ``nice -n 19 python benchmarks/bench_stderr.py`` (about 2-3 minutes on 2 cores). Writes
``benchmarks/results/stderr.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from public import DataUnavailable, load_chinchilla  # noqa: E402

import jaxlaws as jl  # noqa: E402

# Epoch's bootstrap (4,000 resamples), data_analysis.ipynb; log-space and untransformed standard errors
EPOCH_LOG = {
    "e": (0.597, 0.014),
    "a": (6.178, 0.258),
    "b": (7.643, 0.421),
    "alpha": (0.348, 0.015),
    "beta": (0.366, 0.021),
}
EPOCH_PAPER_SE = {
    "E": (1.81686, 0.02566),
    "A": (482.00572, 124.52232),
    "B": (2085.43420, 1293.28410),
    "alpha": (0.34781, 0.01540),
    "beta": (0.36585, 0.02060),
}
EPOCH_PAPER_95 = {
    "E": (1.769, 1.871),
    "A": (285.214, 743.626),
    "B": (1042.357, 5810.344),
    "alpha": (0.317, 0.373),
    "beta": (0.331, 0.415),
}
EPOCH_ALLOC = (0.513, 0.020)  # a = beta / (alpha + beta), its bootstrap standard deviation


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def timed(fn, repeat: int = 1):
    """``(value, first seconds, median of the next `repeat` calls)`` (warm = None when repeat is 0)."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        warm.append(time.perf_counter() - t)
    return out, first, (float(np.median(warm)) if warm else None)


def _cov_fn(law, x, y, objective, kind="auto", bandwidth="silverman"):
    import jax

    from jaxlaws.fitting.covariance import covariance

    def one(theta, x, y):
        cov, info = covariance(law.predict, theta, x, y, objective=objective, kind=kind, bandwidth=bandwidth)
        return cov, info.singular

    return jax.jit(one), jax.jit(jax.vmap(one))


def _block(out):
    import jax

    return jax.block_until_ready(out)


def chinchilla(a) -> list[str]:
    import jax
    import jax.numpy as jnp

    data = load_chinchilla()
    x, y = data.x, data.y
    law = jl.laws.chinchilla()
    obj = law.default_objective
    res = jl.fit(law, x, y)
    theta = np.asarray(res.params)
    names = law.param_names
    with jax.enable_x64(True):
        one, _ = _cov_fn(law, x, y, obj)
        (cov, sing), t_first, t_warm = timed(lambda: _block(one(jnp.asarray(theta), x, y)), repeat=50)
        cov = np.asarray(cov)
        cov_h0 = np.asarray(_cov_fn(law, x, y, obj, bandwidth=0.0)[0](theta, x, y)[0])
        cov_eq = np.asarray(_cov_fn(law, x, y, obj, "classical")[0](theta, x, y)[0])
        cov_ls = np.asarray(_cov_fn(law, x, y, jl.squared(log=True), "classical")[0](theta, x, y)[0])
        r = np.log(y) - np.log(np.asarray(law.predict(jnp.asarray(theta), x)))
    if res.covariance is None:  # until the engine fills it
        res = dataclasses.replace(res, covariance=cov)
    else:
        np.testing.assert_allclose(res.covariance, cov, rtol=1e-6)
    boot_kw = dict(inits=theta[None], solver=jl.LevenbergMarquardt(steps=300), level=0.95)
    boot, b_first, _ = timed(lambda: jl.bootstrap(law, x, y, n=a.resamples, key=0, **boot_kw))
    t = time.perf_counter()
    jl.bootstrap(law, x, y, n=a.resamples, key=1, **boot_kw)
    b_warm = time.perf_counter() - t
    se = np.sqrt(np.diag(cov))
    bsd = np.nanstd(boot.params, axis=0, ddof=1)
    L = [
        f"### Chinchilla (Epoch's 240 points), Huber({obj.delta:g}) on log L",
        "",
        f"Fit: objective {float(res.objective):.10f}, flags {res.flags or 'none'}; "
        f"{int(np.sum(np.abs(r) < obj.delta))} of {len(r)} log residuals lie within delta (the Huber bread "
        "rests on them); residual SD "
        f"{np.std(r):.4f} (by quartile of N, smallest first: "
        f"{', '.join(f'{np.std(r[q]):.4f}' for q in np.array_split(np.argsort(x[:, 0]), 4))})."
        f" Bootstrap: {a.resamples} pairs resamples, each fitted from the estimate "
        f"(LM, 300 steps), {int(boot.n_failed)} failed.",
        "",
        "Standard errors, log-space parameters (Epoch's printed order A, B, E is a, b, e here):",
        "",
        "| param | estimate | sandwich (default) | sandwich, h = 0 | Huber, equal noise | LS formula | "
        "jl.bootstrap SD | Epoch bootstrap SE (est.) | sandwich / jl.bootstrap |",
        "|---" * 9 + "|",
    ]
    for i, n in enumerate(names):
        L.append(
            f"| {n} | {theta[i]:.4f} | {se[i]:.4f} | {np.sqrt(cov_h0[i, i]):.4f} | {np.sqrt(cov_eq[i, i]):.4f} | "
            f"{np.sqrt(cov_ls[i, i]):.4f} | "
            f"{bsd[i]:.4f} | {EPOCH_LOG[n][1]:.3f} ({EPOCH_LOG[n][0]:.3f}) | {se[i] / bsd[i]:.2f} |"
        )
    iv = res.intervals(0.95, paper=True)
    paper_boot = law.to_paper(boot.params)
    L += [
        "",
        "95% intervals in Epoch's convention (normal: the sandwich carried to E, A, B by the delta method; "
        "bootstrap: percentile):",
        "",
        "| param | estimate | normal (sandwich, delta) | exp of the log-space normal | jl.bootstrap percentile | "
        "Epoch percentile | sandwich SE | jl.bootstrap SD | Epoch SE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    z = 1.959963984540054
    own = res.intervals(0.95)
    for n in ("E", "A", "B", "alpha", "beta"):
        lo, hi = iv[n]
        log_iv = own[n.lower()] if n in ("E", "A", "B") else None
        log_txt = "-" if log_iv is None else f"({np.exp(float(log_iv[0])):.4g}, {np.exp(float(log_iv[1])):.4g})"
        pb = np.asarray(paper_boot[n])
        blo, bhi = np.nanquantile(pb, [0.025, 0.975])
        est = float(res.paper[n])
        L.append(
            f"| {n} | {est:.4g} | ({float(lo):.4g}, {float(hi):.4g}) | {log_txt} | ({blo:.4g}, {bhi:.4g}) | "
            f"({EPOCH_PAPER_95[n][0]:.4g}, {EPOCH_PAPER_95[n][1]:.4g}) | "
            f"{(float(hi) - float(lo)) / (2 * z):.4g} | "
            f"{np.nanstd(pb, ddof=1):.4g} | {EPOCH_PAPER_SE[n][1]:.4g} |"
        )
    # the allocation exponent a = beta / (alpha + beta), delta method with jax.grad
    from jaxlaws.fitting.covariance import delta_method

    with jax.enable_x64(True):
        alloc = lambda t: jnp.atleast_1d(t[4] / (t[3] + t[4]))  # noqa: E731
        av, acov = delta_method(alloc, theta, cov)
    ab = boot.params[:, 4] / (boot.params[:, 3] + boot.params[:, 4])
    L += [
        "",
        f"Allocation exponent a = beta/(alpha+beta): {float(av[0]):.3f}, SE sandwich (delta) "
        f"{float(np.sqrt(acov[0, 0])):.4f}, jl.bootstrap SD {np.nanstd(ab, ddof=1):.4f}, Epoch "
        f"{EPOCH_ALLOC[0]:.3f} ({EPOCH_ALLOC[1]:.3f}).",
        "",
        f"Time: covariance {t_warm * 1e3:.2f} ms warm ({t_first:.2f} s first call, compiling); jl.bootstrap "
        f"({a.resamples} resamples) {b_warm:.2f} s warm ({b_first:.2f} s first call): the covariance is "
        f"{b_warm / t_warm:,.0f}x faster warm, {b_first / t_first:,.0f}x first call to first call.",
        "",
    ]
    L += chinchilla_calibration(a, law, obj, x, theta, r)
    return L


def chinchilla_calibration(a, law, obj, x, theta, r) -> list[str]:
    """Synthetic: the fitted law at the same design, noise resampled (iid) from the fit's log residuals."""
    import jax

    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        logl = np.log(np.asarray(law.predict(theta, x)))
    ys = np.exp(logl[None] + rng.choice(r, size=(a.sims, len(r)), replace=True))
    xs = np.broadcast_to(x, (a.sims,) + x.shape)
    fits = jl.fit_batched(law, xs, ys, inits=theta[None], solver=jl.LevenbergMarquardt(steps=300), throw=False)
    ok = np.asarray(fits.success)
    est = np.asarray(fits.params)[ok]
    with jax.enable_x64(True):
        _, many = _cov_fn(law, x, ys[0], obj)
        cov, sing = many(est, xs[ok], ys[ok])
    se = np.sqrt(np.diagonal(np.asarray(cov), axis1=1, axis2=2))
    sd = np.std(est, axis=0, ddof=1)
    cover = np.mean(np.abs(est - theta) <= 1.959963984540054 * se, axis=0)
    with jax.enable_x64(True):
        cov0, _ = _cov_fn(law, x, ys[0], obj, bandwidth=0.0)[1](est, xs[ok], ys[ok])
    se0 = np.sqrt(np.diagonal(np.asarray(cov0), axis1=1, axis2=2))
    cover0 = np.mean(np.abs(est - theta) <= 1.959963984540054 * se0, axis=0)
    L = [
        f"#### Synthetic calibration at Chinchilla's design ({int(ok.sum())} simulated data sets, noise resampled "
        "from the fit's log residuals; synthetic)",
        "",
        "| param | Monte-Carlo SD of the estimate | mean sandwich SE (ratio) | 95% coverage | "
        "mean sandwich SE, h = 0 (ratio) | 95% coverage, h = 0 |",
        "|---|---|---|---|---|---|",
    ]
    for i, n in enumerate(law.param_names):
        L.append(
            f"| {n} | {sd[i]:.4f} | {np.nanmean(se[:, i]):.4f} ({np.nanmean(se[:, i]) / sd[i]:.2f}) | "
            f"{cover[i]:.3f} | {np.nanmean(se0[:, i]):.4f} ({np.nanmean(se0[:, i]) / sd[i]:.2f}) | "
            f"{cover0[i]:.3f} |"
        )
    L += [
        "",
        f"Binomial SD of a coverage from {int(ok.sum())} sets: "
        f"{np.sqrt(0.95 * 0.05 / max(int(ok.sum()), 1)):.3f}; singular: {int(np.sum(np.asarray(sing)))}.",
        "",
    ]
    return L


def log_linear3(a) -> list[str]:
    import jax

    law = jl.laws.log_linear(3)
    truth = np.array([np.log(2.0), 0.2, -1.0, 0.8])
    rng = np.random.default_rng(1)
    n, sd = 30, 0.01
    obj = jl.squared()

    def draw(k):
        p = rng.dirichlet(np.ones(3), size=(k, n))
        clean = np.exp(truth[0]) + np.exp(truth[1] + p[..., 0] * truth[2] + p[..., 1] * truth[3])
        return p, clean + sd * rng.standard_normal((k, n))

    xs, ys = draw(a.sims)
    fit_kw = dict(objective=obj, penalty=None, inits=truth[None], solver=jl.LevenbergMarquardt(steps=200))
    res = jl.fit(law, xs[0], ys[0], **fit_kw)
    theta = np.asarray(res.params)
    with jax.enable_x64(True):
        one, many = _cov_fn(law, xs[0], ys[0], obj)
        (cov, _), t_first, t_warm = timed(lambda: _block(one(theta, xs[0], ys[0])), repeat=50)
    boot_kw = dict(objective=obj, penalty=None, inits=theta[None], solver=jl.LevenbergMarquardt(steps=200), level=0.95)
    boot, b_first, _ = timed(lambda: jl.bootstrap(law, xs[0], ys[0], n=a.resamples, key=0, **boot_kw))
    t = time.perf_counter()
    jl.bootstrap(law, xs[0], ys[0], n=a.resamples, key=1, **boot_kw)
    b_warm = time.perf_counter() - t
    fits = jl.fit_batched(law, xs, ys, **fit_kw, throw=False)
    est = np.asarray(fits.params)[np.asarray(fits.success)]
    with jax.enable_x64(True):
        covs, _ = many(est, xs[np.asarray(fits.success)], ys[np.asarray(fits.success)])
    ses = np.sqrt(np.diagonal(np.asarray(covs), axis1=1, axis2=2))
    cover = np.mean(np.abs(est - truth) <= 1.959963984540054 * ses, axis=0)
    se = np.sqrt(np.diag(np.asarray(cov)))
    bsd = np.nanstd(boot.params, axis=0, ddof=1)
    mc = np.std(est, axis=0, ddof=1)
    L = [
        f"### log_linear(3), least squares, {n} mixtures, noise SD {sd} (synthetic)",
        "",
        f"One data set: covariance vs jl.bootstrap ({a.resamples} resamples from the estimate); the Monte-Carlo SD"
        f" and the coverage over {len(est)} simulated data sets.",
        "",
        "| param | truth | estimate | covariance SE | jl.bootstrap SD | jl.bootstrap IQR/1.349 | Monte-Carlo SD | "
        "95% coverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    q75, q25 = np.nanquantile(boot.params, [0.75, 0.25], axis=0)
    for i, nm in enumerate(law.param_names):
        L.append(
            f"| {nm} | {truth[i]:.3f} | {theta[i]:.4f} | {se[i]:.4f} | {bsd[i]:.4f} | "
            f"{(q75[i] - q25[i]) / 1.349:.4f} | "
            f"{mc[i]:.4f} | {cover[i]:.3f} |"
        )
    L += [
        "",
        f"Time: covariance {t_warm * 1e3:.2f} ms warm ({t_first:.2f} s first call); jl.bootstrap "
        f"{b_warm:.2f} s warm ({b_first:.2f} s first call): {b_warm / t_warm:,.0f}x warm.",
        "",
    ]
    return L


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (Epoch: 4,000)")
    ap.add_argument("--sims", type=int, default=200, help="simulated data sets of the calibration checks")
    ap.add_argument("--out", default=str(HERE / "results" / "stderr.md"))
    a = ap.parse_args(argv)
    import jax

    git = (
        subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "?"
    )
    head = [
        "## Standard errors vs bootstrap (`benchmarks/bench_stderr.py`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, git {git}, jax {jax.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load at start {load()}.",
        "",
    ]
    t0 = time.perf_counter()
    body = []
    try:
        body += chinchilla(a)
    except DataUnavailable as e:
        body += [f"Chinchilla skipped: {e}", ""]
    body += log_linear3(a)
    body += [f"Load at end {load()}; whole run {time.perf_counter() - t0:.0f} s.", ""]
    text = "\n".join(head + body)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
