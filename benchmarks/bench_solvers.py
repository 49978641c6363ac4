r"""Benchmark: jaxlaws' hand-written solvers against optimistix's on the same problems, ``vmap``\ ped over inits.

Every solver minimises the same summed Huber objective :math:`F(\theta) = \sum_n \rho_\delta(r_n(\theta))` of a
public problem (``speed_cases.py``), from the same uniform subset of the problem's init grid, inside one
``jit(vmap(vmap(solve)))`` over problems and inits, in float64:

* **jaxlaws LM**: :class:`jaxlaws.LevenbergMarquardt` (IRLS Gauss-Newton with Marquardt damping, 50 steps),
  as the engine runs it: for a law with a :class:`~jaxlaws.laws.base.SingleIndex` (the static laws) its normal
  equations come from :mod:`jaxlaws.fitting.index_normal`; "generic normal equations" is the same solver
  forming them from the Jacobian's columns (what every other law uses).
* **optimistix LM**: ``optx.least_squares(fn, optx.LevenbergMarquardt(rtol, atol), ...)`` on the residuals
  :math:`s(r) = r` for :math:`|r| < \delta`, :math:`\operatorname{sign}(r)\sqrt{2\delta(|r| - \delta/2)}` else, whose
  half sum of squares is exactly :math:`F` (and :math:`s` is :math:`C^1`), so it minimises the same objective;
  ``max_steps`` 50 (as jaxlaws) and 256 (optimistix's default).
* **optimistix BFGS**: ``optx.minimise(F, optx.BFGS(rtol, atol), ...)``, ``max_steps`` 256.
* **jaxlaws LBFGS**: :class:`jaxlaws.LBFGS` (``optax.lbfgs`` with its zoom line search, 200 steps).

``rtol = 1e-10, atol = 1e-12`` for optimistix (tighter than any of these objectives needs), ``throw=False`` so a
non-converged init returns its last iterate. Reported: warm time (fastest of the repeats after a compile call),
the best objective over the inits (float64 NumPy, no penalty), and the share of inits that reach the best
to 1e-6 relative (how often one run finds the optimum).

Run: ``python benchmarks/bench_solvers.py [--inits 300] [--out benchmarks/results/solvers.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RTOL, ATOL = 1e-10, 1e-12
HIT = 1e-6  # an init "finds the optimum" when its objective is within this relative distance of the best


def _huber_as_squares(r, delta):
    import jax.numpy as jnp

    a = jnp.abs(r)
    big = jnp.sign(r) * jnp.sqrt(2 * delta * jnp.maximum(a - 0.5 * delta, 0.5 * delta))
    return jnp.where(a < delta, r, big)


def solvers(delta: float):
    """``name -> solve(residual_fn, theta0) -> theta`` for one init (to be vmapped)."""
    import jax.numpy as jnp
    import optimistix as optx

    import jaxlaws as jl

    huber = jl.huber(delta)

    def ours(solver, structured=False):
        def solve(res, t0, normal=None):
            if structured:  # the engine's path for SingleIndex laws: normal equations by matrix products
                return solver(res, huber, t0, normal=normal).params
            return solver(res, huber, t0).params

        return solve

    def optx_lm(steps):
        def solve(res, t0, normal=None):
            return optx.least_squares(
                lambda t, _: _huber_as_squares(res(t), delta),
                optx.LevenbergMarquardt(rtol=RTOL, atol=ATOL),
                t0,
                max_steps=steps,
                throw=False,
            ).value

        return solve

    def optx_bfgs(steps):
        def solve(res, t0, normal=None):
            f = lambda t, _: jnp.sum(huber.rho(res(t)))  # noqa: E731
            return optx.minimise(f, optx.BFGS(rtol=RTOL, atol=ATOL), t0, max_steps=steps, throw=False).value

        return solve

    return {
        "jaxlaws LM (50 steps)": ours(jl.LevenbergMarquardt(), structured=True),
        "jaxlaws LM, generic normal equations (50 steps)": ours(jl.LevenbergMarquardt()),
        "optimistix LM (max 50 steps)": optx_lm(50),
        "optimistix LM (max 256 steps)": optx_lm(256),
        "optimistix BFGS (max 256 steps)": optx_bfgs(256),
        "jaxlaws LBFGS (optax, 200 steps)": ours(jl.LBFGS()),
    }


def run_case(name: str, n_inits: int, repeats: int, only: list[str] | None) -> dict:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import speed_cases as sc
    from baselines import problems as P

    from jaxlaws.fitting import index_normal

    case = sc.CASES[name]()
    ini = sc.batched_inits(case)
    idx = P.subset(ini.shape[1], min(n_inits, ini.shape[1]))
    inits = jnp.asarray(ini[:, idx], jnp.float64)
    x, y = jnp.asarray(case.x), jnp.asarray(case.y)
    law, obj = case.law, case.objective
    out = {
        "name": case.name,
        "shape": [int(x.shape[0]), len(idx), int(x.shape[1]), int(inits.shape[-1])],
        "solvers": {},
    }
    for label, solve in solvers(obj.delta).items():
        if only and not any(o.lower() in label.lower() for o in only):
            continue

        structured = law.index is not None and "generic" not in label
        if "generic" in label and law.index is None:
            continue  # the same as "jaxlaws LM" for a law without the single-index structure

        def one(t0, x, y, solve=solve, structured=structured):
            normal = None
            if structured:
                n = x.shape[0]
                normal = index_normal.normal_equations(
                    law.index, obj, None, None, x, y, jnp.ones(n, x.dtype), jnp.asarray(n, x.dtype)
                )
            return solve(lambda t: obj.residual(y, law.predict(t, x)), t0, normal=normal)

        fn = jax.jit(jax.vmap(jax.vmap(one, in_axes=(0, None, None))))
        t0 = time.perf_counter()
        theta = np.asarray(fn(inits, x, y))
        first = time.perf_counter() - t0
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(inits, x, y))
            ts.append(time.perf_counter() - t0)
        objs = np.stack(
            [sc.np_objective(case._replace(x=case.x, y=case.y), theta[:, i]) for i in range(theta.shape[1])], axis=1
        )  # (B, I)
        objs = np.where(np.isfinite(objs), objs, np.inf)
        out["solvers"][label] = dict(
            first_s=first, steady_s=min(ts), best=objs.min(axis=1).tolist(), objs=objs.tolist()
        )
        print(f"  {name} {label}: {min(ts):.2f} s, best {objs.min(axis=1)[:3]}", file=sys.stderr, flush=True)
    best = np.min([np.asarray(s["best"]) for s in out["solvers"].values()], axis=0)  # (B,) best of all
    for s in out["solvers"].values():
        o = np.asarray(s.pop("objs"))
        s["hit_rate"] = float(np.mean(o <= best[:, None] * (1 + HIT)))
        s["max_rel_gap"] = float(np.max((np.asarray(s["best"]) - best) / np.abs(best)))
    return out


def report(results: dict, load: tuple, wall: float, n_inits: int) -> str:
    from bench_fit import _versions

    lines = [
        "# Solvers: jaxlaws' hand-written ones vs optimistix",
        "",
        f"Machine: {_versions()}, optimistix {__import__('optimistix').__version__}. Load average (1 min) "
        f"{load[0][0]:.2f} before, {load[1][0]:.2f} after; wall {wall:.0f} s.",
        "",
        f"Each solver runs from the same uniform subset of {n_inits} inits of each problem's grid, float64, "
        "in one `jit(vmap(vmap(solve)))` (see the module docstring). *time*: warm; *gap*: the worst "
        "problem's best objective above the best any solver reached, relative; *hit*: share of inits "
        f"within {HIT:g} of that best.",
        "",
    ]
    for _name, r in results.items():
        b, i, n, p = r["shape"]
        lines += [
            f"## {r['name']}: {b} problem(s) x {i} inits x {n} points x {p} params",
            "",
            "| solver | warm time | vs jaxlaws LM | best-objective gap | hit rate |",
            "|---|---|---|---|---|",
        ]
        ref = r["solvers"].get("jaxlaws LM (50 steps)", {}).get("steady_s")
        for label, s in r["solvers"].items():
            rel = f"{s['steady_s'] / ref:.1f}x" if ref else "-"
            lines.append(f"| {label} | {s['steady_s']:.2f} s | {rel} | {s['max_rel_gap']:.1e} | {s['hit_rate']:.0%} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inits", type=int, default=300, help="inits per problem (a uniform subset of the grid)")
    ap.add_argument("--cases", nargs="+", default=["chinchilla", "dml", "regmix"])
    ap.add_argument("--only", nargs="*", help="solvers whose label contains one of these")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "solvers.md")
    a = ap.parse_args()
    load0, t0 = os.getloadavg(), time.perf_counter()
    results = {c: run_case(c, a.inits, a.repeats, a.only) for c in a.cases}
    text = report(results, (load0, os.getloadavg()), time.perf_counter() - t0, a.inits)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    a.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
