r"""The mixture the fitted static laws predict to be best: the predicted total loss
:math:`\sum_i L_i(p)` along the segment (m=2) or over the simplex (m=3, a ternary plot), with each seed's
optimum and the trained mixtures; bars of the optimal proportions for m >= 4."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jaxlaws.analysis import _common
from jaxlaws.analysis.static import LawFits
from jaxlaws.plot import _style
from jaxlaws.sweeps.schema import Sweep, proportion_columns

__all__ = ["ternary_xy", "simplex_grid", "predicted_total", "optimum"]

_SQRT3_2 = np.sqrt(3.0) / 2.0


def ternary_xy(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Cartesian coordinates of mixtures ``p`` (n, 3) in the triangle with group 1 at (0, 0), group 2 at
    (1, 0) and group 3 at (1/2, :math:`\sqrt3/2`).

    Args:
      p: ``(n, 3)`` mixtures.

    Returns:
      ``(x (n,), y (n,))``.
    """
    p = np.asarray(p, np.float64)
    return p[:, 1] + 0.5 * p[:, 2], _SQRT3_2 * p[:, 2]


def simplex_grid(m: int, n: int) -> np.ndarray:
    r"""All mixtures of ``m`` groups on the lattice with spacing ``1/n`` (including the edges).

    Args:
      m: the number of groups.
      n: the lattice's divisions per side.

    Returns:
      ``(N, m)`` mixtures, :math:`N = \binom{n + m - 1}{m - 1}`.
    """
    if m == 2:
        t = np.linspace(0.0, 1.0, n + 1)
        return np.stack([t, 1 - t], axis=1)
    if m != 3:
        raise ValueError(f"simplex_grid draws m=2 or m=3, got m={m}")
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    i, j = i[keep], j[keep]
    return np.stack([i, j, n - i - j], axis=1) / n  # integer counts first: no -1e-17 corners


def predicted_total(fits: LawFits, groups: tuple[str, ...], p: np.ndarray, seed: int) -> np.ndarray:
    r""":math:`\sum_i L_i(p)` of one seed's fitted static laws at mixtures ``p`` (n, m)."""
    df = fits.params
    total = np.zeros(len(p))
    for i, g in enumerate(groups):
        row = int(np.flatnonzero((df["group"] == g).to_numpy() & (df["seed"] == seed).to_numpy())[0])
        total += fits.predict(row, p[:, i : i + 1] if fits.law.x_dim == 1 else p)
    return total


def optimum(
    fits: LawFits,
    optimum_table: pd.DataFrame,
    sweep: Sweep,
    *,
    split: str = "val",
    label: str | None = None,
    resolution: int = 60,
) -> Figure:
    """The predicted optimum (``optimum_table`` is :attr:`jaxlaws.analysis.Analysis.optimum`).

    * m=2: the predicted total loss against :math:`p_1` per seed, each seed's optimum marked, the observed
      total loss of the trained mixtures as dots;
    * m=3: a ternary plot of the predicted total loss (mean over the seeds of the table) with the trained
      mixtures, each seed's optimum (small stars) and their mean (large star);
    * m>=4: bars of the optimal proportions per seed.

    Args:
      fits: the static :class:`~jaxlaws.analysis.LawFits`.
      optimum_table: the optimum per seed.
      sweep: the sweep.
      split: the loss split.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.
      resolution: grid points per side of the m=2 curve and the m=3 ternary map.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    groups, m = sweep.groups, sweep.m
    pcols = proportion_columns(groups)
    per_seed = optimum_table[optimum_table["seed"] != "mean"]
    if per_seed.empty:
        raise ValueError("the optimum table is empty (every seed has a flagged static fit)")
    seeds = [int(s) for s in per_seed["seed"]]
    wide = _common.wide_losses(sweep, ["static"], split)
    wide = wide[wide["step"] == int(fits.params["step"].iloc[0])]
    observed_total = wide[[f"L_{g}" for g in groups]].sum(axis=1).to_numpy()
    colours = _style.seed_colours(seeds)
    if m == 2:
        fig, axes = _style.new_figure(width=5.2, height=3.8)
        ax = axes[0, 0]
        grid = simplex_grid(2, 200)
        for s, (_, r) in zip(seeds, per_seed.iterrows()):
            ax.plot(grid[:, 0], predicted_total(fits, groups, grid, s), color=colours[s], lw=1, label=f"seed {s}")
            p1 = float(r[pcols[0]])
            ax.scatter(
                [p1],
                predicted_total(fits, groups, np.array([[p1, 1 - p1]]), s),
                marker="*",
                s=90,
                color=colours[s],
                edgecolors="black",
                lw=0.5,
                zorder=4,
            )
        ax.scatter(
            wide[pcols[0]],
            observed_total,
            s=12,
            color="black",
            alpha=0.6,
            label="trained mixtures (observed)",
            zorder=3,
        )
        mean_p = float(optimum_table.loc[optimum_table["seed"] == "mean", pcols[0]].iloc[0])
        ax.axvline(mean_p, color="grey", ls=":", lw=1, label=f"mean optimum p_{groups[0]} = {mean_p:.3f}")
        ax.set_xlabel(f"p_{groups[0]} (p_{groups[1]} = 1 - p_{groups[0]})")
        ax.set_ylabel(f"total {split} loss (sum over groups)")
        lo, hi = float(observed_total.min()), float(observed_total.max())
        ax.set_ylim(lo - 0.2 * (hi - lo or 1), hi + 0.2 * (hi - lo or 1))
        ax.legend(fontsize="x-small")
        return _style.title(fig, "Predicted optimal mixture (stars: per seed)", label)
    if m == 3:
        from matplotlib.tri import Triangulation

        fig, axes = _style.new_figure(width=5.4, height=4.8)
        ax = axes[0, 0]
        grid = simplex_grid(3, resolution)
        z = np.mean([predicted_total(fits, groups, grid, s) for s in seeds], axis=0)
        x, y = ternary_xy(grid)
        # contour levels on the lower part of the range, where the optimum is (the corners are far higher)
        levels = np.quantile(z, np.linspace(0.0, 1.0, 16) ** 2)
        cs = ax.tricontourf(Triangulation(x, y), z, levels=np.unique(levels), cmap="viridis_r")
        fig.colorbar(cs, ax=ax, shrink=0.8, label=f"predicted total {split} loss (mean over seeds)")
        tx, ty = ternary_xy(wide[pcols].to_numpy())
        ax.scatter(tx, ty, s=10, color="white", edgecolors="black", lw=0.4, label="trained mixtures")
        ox, oy = ternary_xy(per_seed[pcols].to_numpy(np.float64))
        ax.scatter(
            ox,
            oy,
            marker="*",
            s=50,
            c=[colours[s] for s in seeds],
            edgecolors="black",
            lw=0.4,
            label="optimum per seed",
            zorder=4,
        )
        mean_p = optimum_table.loc[optimum_table["seed"] == "mean", pcols].to_numpy(np.float64)
        mx, my = ternary_xy(mean_p)
        ax.scatter(
            mx,
            my,
            marker="*",
            s=220,
            color="red",
            edgecolors="black",
            lw=0.6,
            zorder=5,
            label="mean optimum (" + ", ".join(f"{v:.2f}" for v in mean_p[0]) + ")",
        )
        ax.plot([0, 1, 0.5, 0], [0, 0, _SQRT3_2, 0], color="black", lw=0.8)
        for (vx, vy), g, ha, va in zip(
            ((0, 0), (1, 0), (0.5, _SQRT3_2)), groups, ("right", "left", "center"), ("top", "top", "bottom")
        ):
            ax.text(vx, vy, f" {g} ", ha=ha, va=va, fontsize="small")
        ax.set_aspect("equal")
        ax.set_xlim(-0.15, 1.15)
        ax.set_ylim(-0.1, _SQRT3_2 + 0.1)
        ax.axis("off")
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(-0.1, 1.12), framealpha=0.8)
        return _style.title(fig, "Predicted optimal mixture on the simplex", label)
    fig, axes = _style.new_figure(width=max(5.0, 0.6 * m * len(seeds) / 3 + 3), height=3.6)
    ax = axes[0, 0]
    w = 0.8 / len(seeds)
    for k, (s, (_, r)) in enumerate(zip(seeds, per_seed.iterrows())):
        ax.bar(
            np.arange(m) + (k - len(seeds) / 2 + 0.5) * w,
            r[pcols].to_numpy(np.float64),
            w,
            color=colours[s],
            label=f"seed {s}",
        )
    ax.set_xticks(np.arange(m), groups, rotation=30, fontsize="small")
    ax.set_ylabel("optimal proportion")
    ax.legend(fontsize="x-small")
    return _style.title(fig, "Predicted optimal mixture per seed", label)
