r"""The public-data fitting problems the speed benchmarks time (``bench_fit.py``, ``bench_solvers.py``,
``bench_growth.py``), read from ``../shared/data/public`` (sources and licences in its README).

* **Chinchilla** (Hoffmann et al. 2022 Fig. 4, extracted by Epoch / Besiroglu et al. 2024): 245 points
  ``(N, C, L)``, ``D = C / (6N)``; Epoch's filtering drops the 5 largest losses, leaving 240. Law
  :func:`jaxlaws.laws.chinchilla`, Huber(1e-3) on log L, Hoffmann's 4,500-init grid. Epoch's optimum
  objective: 0.0010182740.
* **DML** (Ye et al. 2024, the scalebench domain-mixture split): 4 model sizes x 5 Pile domain groups = 20
  problems of 20 mixtures each; law ``log_linear(5)`` on each domain's loss, the original's 6,000-init grid
  (``own`` = the domain, seed = problem index).
* **DML RedPajama** (Ye et al. 2024): 7 RedPajama sources, 5 coarse Pile groups per model size; ``redpajama``
  the 15 problems of 160M-410M (20 runs each), ``redpajama70`` the 5 of 70M (40 runs): the problems on which
  the default screening was once seen to lose the full grid's optimum.
* **RegMix** (Liu et al. 2024): 512 training mixtures of 17 Pile domains, target the Pile-CC validation loss;
  law ``log_linear(17)``, 6,000 inits. The mixtures are rounded to 3 decimals, so each row is divided by its
  sum here (rows sum to 0.996-1.003).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from public.sources import shared_dir  # the benchmarks folder is on the path (every script puts it there)

PUBLIC = shared_dir()  # $JAXLAWS_PUBLIC_DATA, else ../shared/data/public, as the public-data loaders
if "JAXLAWS_PUBLIC_DATA" not in os.environ and not PUBLIC.exists():  # a checkout elsewhere: beside /work/main
    PUBLIC = Path("/work/shared/data/public")

EPOCH_OPTIMUM = 0.0010182740
DML_SIZES = ("70M", "160M", "305M", "410M")
REGMIX_TARGET = "metric/the_pile_pile_cc_val_loss"


class Case(NamedTuple):
    """``B`` problems sharing one law: ``x (B, n, d)``, ``y (B, n)``, ``inits (B, n_init, P)`` or ``(n_init, P)``."""

    name: str
    law: object
    objective: object
    x: np.ndarray
    y: np.ndarray
    inits: np.ndarray


def chinchilla_data() -> tuple[np.ndarray, np.ndarray]:
    """Epoch's 240 points: ``x = (N, D)``, ``y = L``."""
    import pandas as pd

    d = pd.read_csv(PUBLIC / "chinchilla" / "svg_extracted_data.csv")
    n = d["Model Size"].to_numpy(np.float64)
    dd = d["Training FLOP"].to_numpy(np.float64) / (6 * n)
    loss = d["loss"].to_numpy(np.float64)
    keep = np.sort(np.argsort(loss)[:-5])  # Epoch drops the 5 largest losses
    return np.stack([n[keep], dd[keep]], axis=1), loss[keep]


def chinchilla_case() -> Case:
    import jaxlaws as jl

    law = jl.laws.chinchilla()
    x, y = chinchilla_data()
    return Case(
        "Chinchilla (Epoch, 240 pts)", law, jl.huber(1e-3, log=True), x[None], y[None], law.init_grid(None, x, y)
    )


def dml_case() -> Case:
    """20 problems (size-major: 70M domains 1..5, then 160M ...), 20 points each, per-problem grids."""
    import jax
    import pandas as pd

    import jaxlaws as jl

    d = pd.read_parquet(PUBLIC / "scalebench-domain-mixture" / "train-00000-of-00001.parquet")
    xs, ys, grids = [], [], []
    for s in DML_SIZES:
        g = d[d["group"] == s]
        p = g[[f"proportion_domain_{j}" for j in range(1, 6)]].to_numpy(np.float64)
        p = p / p.sum(axis=1, keepdims=True)
        for i in range(5):
            xs.append(p)
            ys.append(g[f"loss_domain_{i + 1}"].to_numpy(np.float64))
            grids.append(jl.laws.log_linear_inits(5, jax.random.key(len(grids)), own=i))
    return Case(
        "DML (20 x 20 pts, m=5)", jl.laws.log_linear(5), jl.huber(0.02), np.stack(xs), np.stack(ys), np.stack(grids)
    )


def regmix_case() -> Case:
    import jax
    import pandas as pd

    import jaxlaws as jl

    mix = pd.read_csv(PUBLIC / "regmix" / "train_mixture_1m.csv").set_index("index")
    loss = pd.read_csv(PUBLIC / "regmix" / "train_pile_loss_1m.csv").set_index("index")
    mix = mix.loc[loss.index]
    p = mix.to_numpy(np.float64)
    p = p / p.sum(axis=1, keepdims=True)  # rounded to 3 decimals: renormalise
    own = list(mix.columns).index("train_the_pile_pile_cc")
    # log_linear eliminates the last group: put Pile-CC first so ``own`` indexes a free exponent
    order = [own] + [j for j in range(p.shape[1]) if j != own]
    p = p[:, order]
    y = loss[REGMIX_TARGET].to_numpy(np.float64)
    inits = jl.laws.log_linear_inits(17, jax.random.key(0), own=0)
    return Case("RegMix (512 pts, m=17, Pile-CC)", jl.laws.log_linear(17), jl.huber(0.02), p[None], y[None], inits)


def redpajama_case(sizes: tuple[str, ...] = ("160M", "305M", "410M")) -> Case:
    """Data Mixing Laws' RedPajama runs (Ye et al. 2024; 7 sources): ``5 x len(sizes)`` problems, the 5 coarse
    Pile validation groups of each model size at step 30,000, law ``log_linear(7)`` with the original's
    6,000-init grid (``own`` chosen from the data, seed = problem index). Rows divided by their sums (one
    published mixture sums to 1.0199). The sizes must have equal run counts (160M-410M: 20; 70M: 40)."""
    from public import dml as dml_mod
    from public import load_dml

    import jaxlaws as jl

    df = load_dml("RedPajama", sizes=sizes)
    per_group = {g: dml_mod.problems(df, "RedPajama", g) for g in dml_mod.GROUPS}  # {group: {size: (x, y)}}
    xs, ys, grids = [], [], []
    for size in sizes:
        for g in dml_mod.GROUPS:
            p, y = per_group[g][size]
            p = p / p.sum(axis=1, keepdims=True)
            xs.append(p)
            ys.append(y)
            grids.append(jl.laws.log_linear_inits(7, len(grids), own=jl.laws.auto_own(p, y)))
    label = "+".join(sizes)
    return Case(
        f"DML RedPajama {label} ({len(ys)} x {len(ys[0])} pts, m=7)",
        jl.laws.log_linear(7),
        jl.huber(0.02),
        np.stack(xs),
        np.stack(ys),
        np.stack(grids),
    )


def reference_case() -> Case:
    """The paper's reference fits (synthetic noise): the 15 static m=3 problems of ``bench_fit.py`` -- 3
    groups x 5 seeds of the bundled original fits' parameters on the original's 9 mixtures, plus N(0, 0.005^2)
    noise -- each with its own 6,000-init grid."""
    from baselines import problems as P

    import jaxlaws as jl

    pr = P.static_problems()
    return Case(
        "Paper reference (15 x 9 pts, m=3, synthetic noise)",
        jl.laws.log_linear(3),
        jl.huber(P.STATIC_DELTA),
        pr.x,
        pr.y,
        P.static_init_grids(pr),
    )


def np_objective(case: Case, params: np.ndarray) -> np.ndarray:
    """Each problem's summed Huber objective (no penalty) at ``params (B, P)``, in float64 NumPy."""
    out = []
    for b, th in enumerate(np.asarray(params, np.float64)):
        x, y = case.x[b], case.y[b]
        with np.errstate(all="ignore"):
            if case.law.name == "chinchilla":
                e, a, bb, al, be = th
                pred = np.logaddexp(np.logaddexp(e, a - al * np.log(x[:, 0])), bb - be * np.log(x[:, 1]))
                r = np.log(y) - pred
            else:
                r = y - (np.exp(th[0]) + np.exp(th[1] + x[:, :-1] @ th[2:]))
        d = case.objective.delta
        a = np.abs(r)
        out.append(float(np.sum(np.where(a < d, 0.5 * r * r, d * (a - 0.5 * d)))))
    return np.asarray(out)


CASES = {
    "chinchilla": chinchilla_case,
    "dml": dml_case,
    "regmix": regmix_case,
    "reference": reference_case,
    "redpajama": redpajama_case,
    "redpajama70": lambda: redpajama_case(("70M",)),
}


def lower_bound_fn(case: Case, steps: int, dtype: str = "float64"):
    """A jitted ``inits (B, I, P) -> ...`` running ``steps`` vmapped residual + Jacobian evaluations of every
    init of every problem (one residual pass and ``P`` forward-mode tangents, the solver's own code), chained
    through a ``scan`` so none is skipped: the floor under any ``steps``-iteration Gauss-Newton-type fit."""
    import jax
    import jax.numpy as jnp

    from jaxlaws.fitting.solvers import residual_and_jacobian

    law, obj = case.law, case.objective
    x, y = (jnp.asarray(a, dtype) for a in (case.x, case.y))

    def res_jac(theta, x, y):  # the engine's own residual + Jacobian code (forward-mode columns)
        r, cols = residual_and_jacobian(lambda t: obj.residual(y, law.predict(t, x)).reshape(-1), theta)
        # every entry is used, column by column, so nothing is skipped and no (inits, N, P) array is built
        # (stacking J first made the bound memory-bound: 440 MB per pass on RegMix)
        return jnp.sum(r), jnp.stack([jnp.sum(c) for c in cols])

    def one_problem(th, x, y):
        def body(th, _):
            sr, sj = jax.vmap(res_jac, in_axes=(0, None, None))(th, x, y)
            # a data dependence on (r, J) that moves theta by ~0, so each pass needs the previous one
            return th + 1e-30 * (sj + sr[:, None]), None

        return jax.lax.scan(body, th, None, length=steps)[0]

    fn = jax.jit(jax.vmap(one_problem))
    return lambda inits: fn(inits, x, y)


def batched_inits(case: Case) -> np.ndarray:
    """``(B, I, P)`` inits, broadcasting a shared grid over the problems."""
    b = case.x.shape[0]
    return case.inits if case.inits.ndim == 3 else np.broadcast_to(case.inits, (b,) + case.inits.shape)
