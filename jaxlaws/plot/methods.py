r"""Figures of the data-mixing methods: each method's mixture :math:`p^t` over training, the scaled method
matrix :math:`\tilde A^t = bA^t` against the true :math:`A^{t\star}` (heat maps and the normalised column
sums that ``sim`` compares), and ``sim`` per method with its spread over seeds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jaxlaws.analysis.methods import MethodAnalysis
from jaxlaws.analysis.similarity import column_direction
from jaxlaws.plot import _style

__all__ = ["trajectories", "matrices", "similarity"]


def trajectories(traj: pd.DataFrame, groups: tuple[str, ...], *, label: str | None = None) -> Figure:
    """Each method's mixture :math:`p^t_g` against the training step, one panel per method, one colour per
    group, one line per (run, seed); a dotted vertical line marks the break step of runs that have one.

    ``traj`` is :func:`jaxlaws.plot.data.method_trajectories` (columns ``method, run, seed, step,
    break_step, p_<g>``).

    Args:
      traj: the trajectories table.
      groups: the group names, in order.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    if traj.empty:
        raise ValueError("no method runs to draw (the sweep has no kind='method' rows)")
    methods = list(dict.fromkeys(traj["method"]))
    colours = _style.group_colours(groups)
    fig, axes = _style.new_figure(*_style.grid_shape(len(methods), 2), width=4.4, height=3.0, sharey=True)
    for ax, mth in zip(axes.ravel(), methods):
        d = traj[traj["method"] == mth]
        n_runs = 0
        for (_, _), r in d.groupby(["run", "seed"], sort=True):
            n_runs += 1
            for g in groups:
                ax.plot(
                    r["step"],
                    r[f"p_{g}"],
                    color=colours[g],
                    lw=1,
                    alpha=0.6,
                    marker="." if len(r) < 30 else None,
                    ms=3,
                    label=g if n_runs == 1 else None,
                )
        for b in sorted(set(d["break_step"]) - {-1}):
            ax.axvline(b, color="grey", ls=":", lw=0.8)
        ax.set_title(f"{mth} ({n_runs} run(s))", fontsize="small")
        ax.set_xlabel("step")
        ax.set_ylabel("proportion $p^t$")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize="x-small")
    _style.hide_unused(axes, len(methods))
    return _style.title(fig, "Mixture trajectories of the methods", label)


def _seeds_used(ma: MethodAnalysis) -> list[int]:
    sim = ma.similarity
    used = sim if ma.include_flagged else sim[sim["flags"] == ""]
    return [int(s) for s in (used if not used.empty else sim)["seed"]]


def matrices(methods: Mapping[str, MethodAnalysis], *, label: str | None = None) -> Figure:
    r"""Per method (one row each): heat maps of :math:`A^{t\star}` and :math:`\tilde A^t` (means over the
    seeds the averages use), on one colour scale centred at 0, and bars of their normalised column sums
    :math:`u = s(A^\star)/\|s(A^\star)\|`, :math:`v = s(\tilde A)/\|s(\tilde A)\|` (means, with each seed as
    a dot) -- the two vectors whose agreement ``sim`` measures.

    Args:
      methods: ``{method: MethodAnalysis}`` (:attr:`jaxlaws.analysis.Analysis.methods`).
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    if not methods:
        raise ValueError("no method analyses to draw")
    names = list(methods)
    fig, axes = _style.new_figure(len(names), 3, width=3.4, height=2.9)
    for r, name in enumerate(names):
        ma = methods[name]
        groups, m = ma.groups, len(ma.groups)
        seeds = _seeds_used(ma)
        star = np.mean([ma.matrix("A_star", s) for s in seeds], axis=0)
        tilde = np.mean([ma.matrix("A_tilde", s) for s in seeds], axis=0)
        vmax = float(np.max(np.abs(np.concatenate([star.ravel(), tilde.ravel()])))) or 1.0
        for ax, a, what in ((axes[r, 0], star, r"$A^{\star}$"), (axes[r, 1], tilde, r"$\tilde{A} = b A^t$")):
            im = ax.imshow(a, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks(range(m), groups, fontsize="x-small", rotation=30)
            ax.set_yticks(range(m), groups, fontsize="x-small")
            ax.set_xlabel("column j (trained group)", fontsize="x-small")
            ax.set_ylabel("row i (loss of group)", fontsize="x-small")
            ax.set_title(f"{name} (B={ma.break_step}): {what}", fontsize="small")
            for (i, j), v in np.ndenumerate(a):
                ax.text(
                    j,
                    i,
                    f"{v:.2g}",
                    ha="center",
                    va="center",
                    fontsize="x-small",
                    color="white" if abs(v) > 0.6 * vmax else "black",
                )
        fig.colorbar(im, ax=axes[r, :2], shrink=0.8)
        ax = axes[r, 2]
        u = np.array([column_direction(ma.matrix("A_star", s), "A_star") for s in seeds])
        v = np.array([column_direction(ma.matrix("A_tilde", s), "A_tilde") for s in seeds])
        x = np.arange(m)
        ax.bar(x - 0.2, u.mean(0), 0.4, color="#444444", label="A* (u)")
        ax.bar(x + 0.2, v.mean(0), 0.4, color="#E69F00", label="Ã (v)")
        for k in range(len(seeds)):
            ax.scatter(x - 0.2, u[k], s=8, color="black", zorder=3)
            ax.scatter(x + 0.2, v[k], s=8, color="#8a5a00", zorder=3)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(x, groups, fontsize="x-small", rotation=30)
        ax.set_xlabel("column j (trained group)", fontsize="x-small")
        ax.set_ylabel("normalised column sum", fontsize="x-small")
        s = ma.similarity.set_index("seed").loc[seeds, "sim"]
        ax.set_title(f"{name}: sim {s.mean():.2f} over {len(seeds)} seed(s)", fontsize="small")
        ax.legend(fontsize="xx-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars fill the box
    return _style.title(fig, "Method matrices against the true A* at each method's break step B", label)


def similarity(methods: Mapping[str, MethodAnalysis], *, label: str | None = None) -> Figure:
    """``sim`` (filled) and ``sim_method_sign`` (the method's own sign, open) per method: each seed a dot,
    flagged seeds grey, the mean over the used seeds with its standard deviation as an error bar.

    Args:
      methods: ``{method: MethodAnalysis}``.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    if not methods:
        raise ValueError("no method analyses to draw")
    names = list(methods)
    fig, axes = _style.new_figure(width=1.3 * len(names) + 2.5, height=3.4)
    ax = axes[0, 0]
    for k, name in enumerate(names):
        ma = methods[name]
        sim = ma.similarity
        used = sim["seed"].isin(_seeds_used(ma))
        for off, col, filled in ((-0.12, "sim", True), (0.12, "sim_method_sign", False)):
            x = np.full(len(sim), k + off) + np.linspace(-0.04, 0.04, len(sim))
            colour = np.where(used, "#0072B2" if filled else "#D55E00", "#999999")
            if filled:
                ax.scatter(x, sim[col], s=16, c=colour, zorder=3)
            else:
                ax.scatter(x, sim[col], s=16, facecolors="none", edgecolors=colour, zorder=3)
            vals = sim.loc[used, col]
            ax.errorbar(k + off, vals.mean(), yerr=vals.std(ddof=0), fmt="_", ms=14, color="black", capsize=3, zorder=4)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("method")
    ax.set_ylim(-1.08, 1.08)
    ax.set_ylabel(r"sim$(\tilde{A}, A^{\star})$")
    from matplotlib.lines import Line2D

    ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="", color="#0072B2", label="sim (fitted scale b)"),
            Line2D([], [], marker="o", ls="", mfc="none", color="#D55E00", label="sim_method_sign (method's own sign)"),
            Line2D([], [], marker="o", ls="", color="#999999", label="seed with a flagged fit"),
            Line2D([], [], marker="_", ls="", ms=14, color="black", label="mean ± sd over seeds"),
        ],
        fontsize="x-small",
        loc="lower left",
    )
    return _style.title(fig, "Similarity of each method's matrix to A*", label)
