r"""Bootstrap confidence intervals for the static law: its parameters, its predictions and the predicted optimum.

For every training seed, the static sweep's runs :math:`n = 1..N` give one loss per group; a resample draws
:math:`N` runs with replacement and refits *every* group's law to the same drawn runs (paired resampling,
:func:`jaxlaws.bootstrap` with ``paired=True``), so a quantity that combines the groups -- the optimal mixture

.. math:: p^\star = \arg\min_{p\in\Delta^m} \sum_i L_i(p)

-- is recomputed per resample from a consistent set of fits. Intervals are percentile intervals at ``level``
over the resamples (:mod:`jaxlaws.fitting.bootstrap`).

Resample fits start from the analysis' own estimate plus a small default grid (``n_random`` draws for
m>=3; the law's grid for m=2), not the full 6,000-init grid, so R resamples cost about R/30 full fits. For
m=2 the resamples refit :math:`(c, k, b)` jointly with the engine (started from the two-stage estimate),
not with the original's two-stage grid; the ``estimate`` columns are that joint fit on all runs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxlaws.analysis import _common
from jaxlaws.analysis.optimum import log_linear_losses, simplex_minimise, two_group_losses
from jaxlaws.analysis.static import LawFits
from jaxlaws.fitting.bootstrap import BootstrapResult, bootstrap
from jaxlaws.laws import log_linear_inits, static_two_group
from jaxlaws.sweeps.schema import Sweep, proportion_columns


@dataclasses.dataclass(frozen=True)
class StaticBootstrap:
    """Bootstrap intervals of a static analysis.

    Attributes:
      params: one row per (group, step, seed, param): ``estimate``, ``lo``, ``hi``, ``level``, ``n_resamples``,
        ``n_failed``, ``n_redrawn`` (resamples drawn again: too few distinct runs to fit, see
        :mod:`jaxlaws.fitting.bootstrap`) and the analysis fit's ``flags``.
      optimum: one row per (seed, quantity): the predicted optimal proportion ``p_<group>`` of each group and
        ``total_loss`` (the summed predicted loss there), with ``estimate``, ``lo``, ``hi``; ``flags`` names the
        groups whose analysis fit is flagged (every seed is bootstrapped, flagged or not: read them with care).
      level: interval level; ``n``: resamples per seed.
      results: the :class:`jaxlaws.BootstrapResult` of each seed (its problems are the groups, in order), for
        intervals of other quantities, e.g. ``results[seed].predict(x)``.
    """

    params: pd.DataFrame
    optimum: pd.DataFrame
    level: float
    n: int
    groups: tuple[str, ...]
    results: dict

    def predict(
        self, group: str, seed: int, x: np.ndarray, level: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(estimate, lo, hi)`` of group ``group``'s predicted loss at inputs ``x`` (the law's ``x``: mixtures
        ``(n, m)`` for m>=3, the group's own proportion ``(n, 1)`` for m=2), from seed ``seed``'s resamples."""
        if group not in self.groups:
            raise ValueError(f"unknown group {group!r}; the groups are {list(self.groups)}")
        if seed not in self.results:
            raise ValueError(f"no bootstrap for seed {seed!r}; seeds {sorted(self.results)}")
        est, lo, hi = self.results[seed].predict(x, level)
        g = self.groups.index(group)
        return est[g], lo[g], hi[g]


def bootstrap_static(
    sweep: Sweep,
    fits: LawFits,
    n: int = 200,
    *,
    level: float = 0.9,
    seed: int = 0,
    split: str = "val",
    n_random: int = 1,
    optimum_steps: int = 500,
) -> StaticBootstrap:
    """Paired bootstrap of the static fits ``fits``: ``n`` resamples of the runs per training seed (module docstring).

    Args:
      sweep: the sweep ``fits`` were fitted to.
      fits: :func:`~jaxlaws.analysis.fit_static`'s result on ``sweep``.
      n: resamples per seed.
      level: the intervals' level.
      seed: seeds the draws (seed ``s`` of the sweep uses ``fold_in(key(seed), s)``) and the resamples' init grid.
      split: the loss split, as in the fits.
      n_random: random ``t`` draws per grid point for m>=3 (1: 200 inits plus the estimate).
      optimum_steps: iterations of the optimum's simplex solver.

    Returns:
      A :class:`StaticBootstrap`: percentile intervals of the parameters and of the predicted optimum per seed.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"bootstrap: n (resamples) must be an int >= 2, got {n!r}")
    step = int(fits.params["step"].iloc[0])
    wide = _common.wide_losses(sweep, ["static"], split)
    wide = wide[wide["step"] == step]
    groups, m = sweep.groups, sweep.m
    pcols = proportion_columns(groups)
    law = fits.law
    base = jax.random.key(seed)
    prow, orow, results = [], [], {}
    for s, d in wide.groupby("seed", sort=True):
        s = int(s)
        p = d[pcols].to_numpy(np.float64)
        x = np.stack([p[:, i : i + 1] for i in range(m)]) if m == 2 else np.broadcast_to(p, (m,) + p.shape)
        y = np.stack([d[f"L_{g}"].to_numpy(np.float64) for g in groups])
        est = np.stack([_estimate(fits, g, s) for g in groups])  # (G, P)
        if m == 2:
            law = static_two_group()
            grids = [law.init_grid(None, x[i], y[i]) for i in range(m)]
        else:
            grids = [
                log_linear_inits(m, jax.random.fold_in(base, 1000 + i), own=i, n_random=n_random) for i in range(m)
            ]
        inits = np.stack([np.concatenate([est[i][None], grids[i]]) for i in range(m)])
        boot = bootstrap(
            law, x, y, n, key=jax.random.fold_in(base, s), level=level, paired=True, inits=inits, dtype="float64"
        )
        results[s] = boot
        lo, hi = boot.param_intervals()
        for i, g in enumerate(groups):
            for j, name in enumerate(law.param_names):
                prow.append(
                    {
                        "group": g,
                        "step": step,
                        "seed": s,
                        "param": name,
                        "estimate": boot.estimate.params[i, j],
                        "lo": lo[i, j],
                        "hi": hi[i, j],
                        "level": level,
                        "n_resamples": n,
                        "n_failed": int(boot.n_failed[i]),
                        "n_redrawn": int(np.atleast_1d(boot.n_redrawn)[i]),
                    }
                )
        flags = {g: _flags(fits, g, s) for g in groups}
        for r in prow[-len(groups) * law.n_params :]:
            r["flags"] = flags[r["group"]]
        seed_flags = "; ".join(f"{g}: {f}" for g, f in flags.items() if f)
        fn = _optimum_fn(m, optimum_steps)
        e, olo, ohi = boot.joint_interval(fn)
        for q, name in enumerate([f"p_{g}" for g in groups] + ["total_loss"]):
            orow.append(
                {
                    "seed": s,
                    "quantity": name,
                    "estimate": e[q],
                    "lo": olo[q],
                    "hi": ohi[q],
                    "level": level,
                    "n_resamples": n,
                    "flags": seed_flags,
                }
            )
    return StaticBootstrap(pd.DataFrame(prow), pd.DataFrame(orow), level, n, tuple(groups), results)


def _estimate(fits: LawFits, group: str, seed: int) -> np.ndarray:
    row = fits.params[(fits.params["group"] == group) & (fits.params["seed"] == seed)]
    if len(row) != 1:
        raise ValueError(f"the static fits hold {len(row)} rows for group {group!r} seed {seed}")
    return row[list(fits.param_names)].to_numpy(np.float64)[0]


def _flags(fits: LawFits, group: str, seed: int) -> str:
    row = fits.params[(fits.params["group"] == group) & (fits.params["seed"] == seed)]
    return str(row["flags"].iloc[0]) if "flags" in row else ""


def _optimum_fn(m: int, steps: int):
    """``params (..., m, P) -> (..., m + 1)``: the optimal mixture of the summed predicted losses and that sum
    (projected gradient over the simplex, :func:`~jaxlaws.analysis.simplex_minimise`)."""
    losses = two_group_losses if m == 2 else log_linear_losses

    def fn(theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, np.float64)
        flat = theta.reshape((-1,) + theta.shape[-2:])
        with jax.enable_x64(True):
            p, total = simplex_minimise(losses, jnp.asarray(flat), steps=steps)
        out = np.concatenate([np.asarray(p), np.asarray(total)[:, None]], axis=1)
        return out.reshape(theta.shape[:-2] + (m + 1,))

    return fn


__all__ = ["StaticBootstrap", "bootstrap_static", "BootstrapResult"]
