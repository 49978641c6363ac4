r"""Benchmark: the traceable ``jl.solve`` against ``jl.fit_batched``, and ``fit_batched`` against a previous commit.

On the public speed cases (``speed_cases.py``: Chinchilla 240 points x 4,500 inits, DML 20 problems x 6,000
inits, RegMix 512 points x 6,000 inits x 18 parameters), all with the default path (screening on):

* **now**: ``jl.fit_batched(law, x, y, inits=..., objective=...)``, warm, best of ``--repeats``;
* **solve**: ``jax.jit(jax.vmap(lambda i, x, y: jl.solve(law, x, y, i, objective=...)))`` over the same
  problems and inits (``jl.solve`` adds the Hessian checks and the implicit-derivative wiring at the optimum),
  warm, best of ``--repeats``; same optimum checked;
* **before**: the same ``fit_batched`` call from the commit ``--base`` (a ``git worktree`` in a temporary folder,
  run in a subprocess, interleaved with the others so the machine's load drifts across all of them alike);
* **implicit gradients**: ``jax.jacobian`` of the fitted parameters w.r.t. ``y`` through ``jl.solve`` (one
  program: search + implicit derivatives, all ``n`` columns), against central differences of warm refits for
  ``FD_COLUMNS`` of the columns (2 refits each), for Chinchilla with least squares on log L (smooth).

Prints a table of ratios and writes ``--out`` (markdown) and its ``.json``.

Run: ``python benchmarks/bench_solve.py [--repeats 3] [--base a9cdbe9] [--cases chinchilla,dml,regmix]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parent
FD_COLUMNS = 24  # columns of the Jacobian taken by central differences (the implicit one computes all)
CASES = {"chinchilla": "chinchilla_case", "dml": "dml_case", "regmix": "regmix_case"}


def _best(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # compile
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def _case(name: str):
    import speed_cases

    return getattr(speed_cases, CASES[name])()


def time_fit_batched(name: str, repeats: int) -> dict:
    """Warm time of the default fit_batched on a case (runs under whichever jaxlaws is importable)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jaxlaws as jl

    c = _case(name)
    t, res = _best(lambda: jl.fit_batched(c.law, c.x, c.y, inits=c.inits, objective=c.objective), repeats)
    return {"time_s": t, "objective": np.asarray(res.objective).tolist()}


def time_solve(name: str, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import jaxlaws as jl

    c = _case(name)
    shared = c.inits.ndim == 2
    inits = jnp.asarray(c.inits)
    one = lambda i, x, y: jl.solve(c.law, x, y, i, objective=c.objective)  # noqa: E731
    fn = jax.jit(jax.vmap(one, in_axes=(None if shared else 0, 0, 0)))
    x, y = jnp.asarray(c.x), jnp.asarray(c.y)

    def run():
        sol = fn(inits, x, y)
        jax.block_until_ready(sol)
        return sol

    t, sol = _best(run, repeats)
    return {
        "time_s": t,
        "objective": np.asarray(sol.objective).tolist(),
        "results": [jl.RESULTS.name(int(r)) for r in np.asarray(sol.result)],
    }


def time_gradients(repeats: int) -> dict:
    """d params / d y through solve (implicit) vs central differences of warm refits, Chinchilla."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import jaxlaws as jl

    c = _case("chinchilla")
    x, y, inits = jnp.asarray(c.x[0]), jnp.asarray(c.y[0]), jnp.asarray(c.inits)
    # least squares on log L: smooth, so differences are a fair reference (Huber(1e-3)'s kink sits among the
    # residuals, and a difference step moves points across it; its derivative is the almost-everywhere one)
    obj = jl.squared(log=True)
    fit = jax.jit(lambda yy: jl.solve(c.law, x, yy, inits, objective=obj).params)
    jac = jax.jit(jax.jacobian(lambda yy: jl.solve(c.law, x, yy, inits, objective=obj).params))
    t_imp, j_imp = _best(lambda: jax.block_until_ready(jac(y)), repeats)
    eps = 1e-4  # relative step: larger than the solver's stopping error (~1e-7 relative), small for curvature

    cols_at = np.linspace(0, y.shape[0] - 1, FD_COLUMNS).astype(int)  # a subset: each column is 2 full refits

    def fd():
        cols = []
        for i in cols_at:
            e = jnp.zeros_like(y).at[i].set(eps * y[i])
            cols.append((fit(y + e) - fit(y - e)) / (2 * eps * y[i]))
        return jax.block_until_ready(jnp.stack(cols, axis=1))

    t_fd, j_fd = _best(fd, 1)
    j_imp, j_fd = np.asarray(j_imp)[:, cols_at], np.asarray(j_fd)
    big = np.abs(j_fd) > 1e-3 * np.max(np.abs(j_fd))
    rel = float(np.max(np.abs(j_imp - j_fd)[big] / np.abs(j_fd)[big]))
    return {
        "implicit_s": t_imp,
        "fd_refits_s": t_fd,
        "fd_columns": FD_COLUMNS,
        "n_points": int(y.shape[0]),
        "fd_all_columns_s": t_fd * y.shape[0] / FD_COLUMNS,
        "max_rel_diff": rel,
    }


def _worktree(base: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="jaxlaws-base-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), base], check=True, capture_output=True
    )
    return path


def _sub(what: str, name: str, repeats: int, pythonpath: Path | None = None) -> dict:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--phase", what, "--case", name, "--repeats", str(repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(HERE))
    if out.returncode:
        raise RuntimeError(f"{what} {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of before / now / solve")
    ap.add_argument(
        "--base",
        default="a9cdbe9",
        help="the commit to compare fit_batched against ('none': skip, e.g. on a machine without the git history)",
    )
    ap.add_argument("--cases", default="chinchilla,dml,regmix")
    ap.add_argument("--out", default=str(HERE / "results" / "solve.md"))
    ap.add_argument("--only-gradients", action="store_true", help="time the implicit gradients only")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:
        fn = {"fit_batched": time_fit_batched, "solve": time_solve}.get(a.phase)
        print(json.dumps(fn(a.case, a.repeats) if fn else time_gradients(a.repeats)))
        return
    load0 = os.getloadavg()
    base = None if a.base == "none" else _worktree(a.base)
    rows, t0 = {}, time.perf_counter()
    try:
        for name in [] if a.only_gradients else a.cases.split(","):
            runs = {"before": [], "now": [], "solve": []}
            for _ in range(a.rounds):
                if base is not None:
                    runs["before"].append(_sub("fit_batched", name, a.repeats, base))
                runs["now"].append(_sub("fit_batched", name, a.repeats))
                runs["solve"].append(_sub("solve", name, a.repeats))
            if base is None:  # no previous commit to compare: "before" stands for "now"
                runs["before"] = runs["now"]
            best = {k: min(v, key=lambda r: r["time_s"]) for k, v in runs.items()}
            gap = max(abs(o - b) / abs(b) for o, b in zip(best["solve"]["objective"], best["now"]["objective"]))
            gap_before = max(abs(o - b) / abs(b) for o, b in zip(best["now"]["objective"], best["before"]["objective"]))
            rows[name] = dict(
                before=best["before"]["time_s"],
                now=best["now"]["time_s"],
                solve=best["solve"]["time_s"],
                solve_vs_fit_obj_gap=gap,
                now_vs_before_obj_gap=gap_before,
                solve_results=sorted(set(best["solve"]["results"])),
            )
            r = rows[name]
            print(
                f"{name:11s} before {r['before']:.3f} s  now {r['now']:.3f} s ({r['now'] / r['before']:.2f}x)  "
                f"jit(vmap(solve)) {r['solve']:.3f} s ({r['solve'] / r['now']:.2f}x fit_batched)  "
                f"objective gaps {gap:.1e} / {gap_before:.1e}",
                flush=True,
            )
        grads = _sub("gradients", "chinchilla", a.repeats)
        print(
            f"implicit d params/d y (Chinchilla, all {grads['n_points']} columns): {grads['implicit_s']:.3f} s; "
            f"central differences of refits, {grads['fd_columns']} columns: {grads['fd_refits_s']:.2f} s "
            f"(all columns would take {grads['fd_all_columns_s']:.0f} s at that rate, "
            f"{grads['fd_all_columns_s'] / grads['implicit_s']:.0f}x); max rel. diff {grads['max_rel_diff']:.1e}"
        )
    finally:
        if base is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    load1 = os.getloadavg()
    wall = time.perf_counter() - t0
    lines = [
        f"# jl.solve vs fit_batched, and fit_batched vs {a.base}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; load average {load0[0]:.1f} at the start, "
        f"{load1[0]:.1f} at the end; {wall:.0f} s in all. Warm, best of {a.repeats} x {a.rounds} interleaved "
        "rounds; public data (Chinchilla: Epoch's extraction; DML: Ye et al.; RegMix: Liu et al.).",
        "",
        "| case | before (s) | now (s) | now / before | jit(vmap(solve)) (s) | solve / fit_batched | "
        "objective gap solve vs fit | gap now vs before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['before']:.3f} | {r['now']:.3f} | {r['now'] / r['before']:.2f} | "
            f"{r['solve']:.3f} | {r['solve'] / r['now']:.2f} | {r['solve_vs_fit_obj_gap']:.1e} | "
            f"{r['now_vs_before_obj_gap']:.1e} |"
        )
    lines += [
        "",
        f"Implicit derivatives d params / d y through `jl.solve` (Chinchilla, all {grads['n_points']} "
        f"columns, one program: search + derivatives): {grads['implicit_s']:.3f} s; central differences of "
        f"warm refits for {grads['fd_columns']} columns: {grads['fd_refits_s']:.2f} s (all columns at that "
        f"rate: {grads['fd_all_columns_s']:.0f} s); largest relative difference on those columns "
        f"{grads['max_rel_diff']:.1e}.",
    ]
    Path(a.out).write_text("\n".join(lines) + "\n")
    Path(a.out).with_suffix(".json").write_text(
        json.dumps(dict(rows=rows, gradients=grads, load=[load0, load1], base=a.base), indent=1)
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
