"""Small synthetic sweeps (and their analyses) shared by tests/test_plot.py and tests/test_report.py, built
once per test process: m=3 and m=2, each with a static sweep (2 seeds) and a dynamic sweep (3 parents); m=3 also
with two methods (2 seeds each) whose mixture moves over training."""

from __future__ import annotations

import functools
import warnings

import numpy as np

from jaxlaws.analysis import analyse
from jaxlaws.sweeps import dirichlet
from jaxlaws.sweeps.io import concat_sweeps
from jaxlaws.sweeps.schema import Sweep, proportion_columns
from jaxlaws.sweeps.synthetic import dynamic_sweep, method_sweep, static_sweep

GROUPS3 = ("arxiv", "book", "stackexchange")
GROUPS2 = ("arxiv", "stackexchange")
# [l, b, t1, t2] per group: L_i = e^l + exp(b + t . p_<3), own proportion lowers the own loss
STATIC3 = {"arxiv": [0.9, 0.3, -2.5, 0.2], "book": [1.3, 0.1, 0.3, -2.2], "stackexchange": [1.0, 0.5, 1.2, 1.0]}
STATIC2 = {"arxiv": [2.4, -2.0, -0.4], "stackexchange": [2.9, -2.2, -0.3]}  # [c, k, b]


def _moving_methods(sw: Sweep) -> Sweep:
    """Method runs whose mixture drifts from a skewed start (most weight on the first group) at the first step
    to the recorded one at the break: the recorded mixtures are near uniform, so a drift from uniform would
    barely move."""
    losses = sw.losses.copy()
    pcols = proportion_columns(sw.groups)
    rows = losses["kind"] == "method"
    for (_, _), d in losses[rows].groupby(["run", "seed"]):
        steps = d["step"].to_numpy()
        w = ((steps - steps.min()) / max(steps.max() - steps.min(), 1))[:, None]
        end = d[pcols].to_numpy()
        start = np.linspace(2.0, 1.0, len(pcols)) ** 2
        losses.loc[d.index, pcols] = (1 - w) * (start / start.sum()) + w * end
    return Sweep(losses, sw.groups, sw.matrices)


@functools.cache
def synthetic_sweep(m: int) -> Sweep:
    """The m = 2 or 3 sweep (module docstring), built once per process."""
    groups, table = (GROUPS3, STATIC3) if m == 3 else (GROUPS2, STATIC2)
    seeds = (0, 1)
    params = {g: {s: np.asarray(table[g], float) + 0.02 * s for s in seeds} for g in groups}
    if m == 3:
        mix = {s: dirichlet.load_dirichlet_grid(3, 9, s) for s in seeds}
        st, _ = static_sweep(params, mix, law="log_linear", noise=0.003, seed=1)
        grid = dirichlet.load_dirichlet_grid(3, 9, 0)
        dyn_params = {
            g: {float(p[0]): np.array([3.0 + i, -0.3 * (i + 1), 0.1]) for p in grid[:3]} for i, g in enumerate(groups)
        }
        dy, _ = dynamic_sweep(dyn_params, grid[:3], grid, law="linear", break_step=2000, noise=0.003, seed=2)
    else:
        st, _ = static_sweep(params, dirichlet.two_group_grid(), law="two_group", noise=0.003, seed=1)
        grid = dirichlet.two_group_grid()
        dyn_params = {
            g: {float(p[0]): np.array([-0.4 - 0.1 * i, 3.0 + i]) for p in grid[[1, 4, 7]]} for i, g in enumerate(groups)
        }
        dy, _ = dynamic_sweep(dyn_params, grid[[1, 4, 7]], grid, law="two_group", break_step=2000, noise=0.003, seed=2)
    if m == 2:  # the m=2 case is there for the line plots; methods are drawn from the m=3 case
        return concat_sweeps([st, dy])
    parts = [st, dy] + [
        method_sweep(meth, m, s, noise=0.003, rng_seed=50 + s)[0] for meth in ("aioli", "doremi") for s in seeds
    ]
    return _moving_methods(concat_sweeps(parts))


@functools.cache
def case(m: int):
    """``(sweep, analysis)`` for m = 2 or 3 (analysed once per process; flagged-fit warnings silenced)."""
    sw = synthetic_sweep(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyse(sw, n_random=3, seed=0)
    return sw, res


def two_group_problems():
    """Two noisy static two-group problems (c + exp(k p + b)) on the same 9 proportions: ``x (2, 9, 1)``,
    ``y (2, 9)``."""
    rng = np.random.default_rng(3)
    p = np.linspace(0.1, 0.9, 9)
    y = np.stack([2.4 + np.exp(-2.0 * p - 0.4), 2.9 + np.exp(-2.2 * p - 0.3)]) + 0.004 * rng.standard_normal((2, 9))
    return np.broadcast_to(p[None, :, None], (2, 9, 1)).copy(), y
