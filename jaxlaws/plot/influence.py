r"""The influence of each training run on the predicted optimum (:func:`jaxlaws.analysis.influence.sweep_influence`):
per run, how strongly its measured losses steer the optimum, :math:`\lVert\partial p^\star/\partial y_r\rVert_F`,
and how far the optimum moves when the run is left out -- exactly (refit) against the first-order estimate
:math:`-\partial p^\star/\partial w_r`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jaxlaws.plot import _style

__all__ = ["influence"]


def _run_label(row: pd.Series, pcols: Sequence[str]) -> str:
    return "/".join(f"{row[c]:.2f}" for c in pcols)


def influence(table: pd.DataFrame, groups: Sequence[str], *, label: str | None = None) -> Figure:
    """Left: the influence of each run's losses on the optimum (bars per seed, runs labelled by their mixture).
    Right (when the table has ``loo_dp_*``): each run's exact leave-one-out shift of every share of the optimum
    against the first-order one (``drop_dp_*``); on the diagonal the first-order estimate is exact.

    ``table`` is :attr:`jaxlaws.analysis.Analysis.influence` (one row per seed and run); rows of seeds whose
    refit was not regular (``fit_result`` not ``"successful"``, NaN derivatives) are left out.

    Args:
      table: the influence table.
      groups: the group names, in order.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    groups = list(groups)
    pcols = [f"p_{g}" for g in groups]
    need = {"seed", "run", "influence", *pcols, *(f"drop_dp_{g}" for g in groups)}
    missing = sorted(need - set(table.columns))
    if missing:
        raise ValueError(f"the influence table lacks columns {missing}")
    ok = table[np.isfinite(table["influence"].to_numpy(np.float64))]
    if ok.empty:
        raise ValueError("the influence table has no seed with a regular refit (every influence is NaN)")
    loo = all(f"loo_dp_{g}" in ok.columns for g in groups)
    fig, axes = _style.new_figure(1, 2 if loo else 1, width=5.2, height=3.6)
    ax = axes[0, 0]
    runs = ok.drop_duplicates("run")[["run", *pcols]].sort_values(pcols, ascending=False).reset_index(drop=True)
    seeds = sorted(ok["seed"].unique())
    colours = _style.seed_colours(seeds)
    width = 0.8 / len(seeds)
    pos = {r: i for i, r in enumerate(runs["run"])}
    for k, s in enumerate(seeds):
        d = ok[ok["seed"] == s]
        x = np.array([pos[r] for r in d["run"]]) - 0.4 + (k + 0.5) * width
        ax.bar(x, d["influence"].to_numpy(np.float64), width=width, color=colours[s], label=f"seed {s}")
    ax.set_xticks(
        range(len(runs)), [_run_label(r, pcols) for _, r in runs.iterrows()], rotation=45, ha="right", fontsize="small"
    )
    ax.set_xlabel("run (mixture " + "/".join(groups) + ")")
    ax.set_ylabel(r"$\|\partial p^\star/\partial L_{run}\|_F$")
    ax.legend(fontsize="small")
    if loo:
        ax2 = axes[0, 1]
        gc = _style.group_colours(groups)
        first = ok[[f"drop_dp_{g}" for g in groups]].to_numpy(np.float64)
        exact = ok[[f"loo_dp_{g}" for g in groups]].to_numpy(np.float64)
        for j, g in enumerate(groups):
            ax2.scatter(first[:, j], exact[:, j], s=18, color=gc[g], label=f"share of {g}")
        lim = float(np.nanmax(np.abs(np.concatenate([first.ravel(), exact.ravel()])))) * 1.1 or 1.0
        ax2.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8, ls=":")
        ax2.set_xlim(-lim, lim)
        ax2.set_ylim(-lim, lim)
        ax2.set_xlabel(r"first-order shift $-\partial p^\star/\partial w_{run}$")
        ax2.set_ylabel("exact shift (refit without the run)")
        ax2.legend(fontsize="small")
    return _style.title(fig, "Influence of each run on the predicted optimum", label)
