r"""Figures of fitted mixing laws: static law per group, its linearised form, dynamic law per parent, and
predicted against observed losses.

Each function takes the analysis objects (a :class:`~jaxlaws.analysis.LawFits` and the sweep it was fitted
on), draws one :class:`~matplotlib.figure.Figure` and returns it. Flagged fits are drawn dashed and named in
the legend with their flags; ``label`` (e.g. ``"synthetic"``) goes into the title.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jaxlaws.analysis.static import LawFits
from jaxlaws.plot import _style
from jaxlaws.plot.data import along_own, dynamic_form, dynamic_points, static_points, target_label
from jaxlaws.sweeps.schema import Sweep

__all__ = ["static_law", "static_linearised", "predicted_vs_observed", "draw_predicted_vs_observed", "dynamic_law"]

_GRID = np.linspace(0.0, 1.0, 101)


def static_law(
    fits: LawFits, sweep: Sweep, *, split: str = "val", label: str | None = None, points: pd.DataFrame | None = None
) -> Figure:
    """Loss of each group against its own proportion :math:`p_i`, one panel per group, one colour per seed,
    with the fitted static law drawn through the points (for m >= 3 along the mixtures whose other groups
    share :math:`1 - p_i` equally; crosses mark the law's prediction at each trained mixture).

    Args:
      fits: the analysis' :class:`~jaxlaws.analysis.LawFits`.
      sweep: the sweep they were fitted to.
      split: the loss split, as in the fits.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.
      points: :func:`~jaxlaws.plot.data.static_points` when already computed.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    pts = static_points(fits, sweep, split=split) if points is None else points
    groups, m = sweep.groups, sweep.m
    seeds = sorted(pts["seed"].unique())
    colours = _style.seed_colours(seeds)
    fig, axes = _style.new_figure(*_style.grid_shape(len(groups)))
    for ax, g in zip(axes.ravel(), groups):
        for s in seeds:
            d = pts[(pts["group"] == g) & (pts["seed"] == s)]
            row, flags = int(d["fit_row"].iloc[0]), d["flags"].iloc[0]
            ax.scatter(
                d["own_p"], d["observed"], s=14, color=colours[s], alpha=0.8, label=f"seed {s}{_style.flag_note(flags)}"
            )
            curve = along_own(fits, row, m, groups.index(g), _GRID)
            ax.plot(_GRID, curve, color=colours[s], lw=1, ls="--" if flags else "-")
            if m > 2:
                ax.scatter(d["own_p"], d["predicted"], marker="x", s=12, color=colours[s], lw=0.8)
        ax.set_xlabel(f"p_{g} (own proportion)")
        ax.set_ylabel(f"{split} loss on {g}")
        ax.set_title(g, fontsize="small")
        _clip_to_points(ax, pts.loc[pts["group"] == g, ["observed", "predicted"]].to_numpy())
    axes.ravel()[0].legend(fontsize="x-small")
    _style.hide_unused(axes, len(groups))
    note = "" if m == 2 else "; curve: other groups share the rest equally, x: law at each mixture"
    return _style.title(fig, f"Static law {fits.law.name} at step {int(fits.params['step'].iloc[0])}{note}", label)


def static_linearised(
    fits: LawFits, sweep: Sweep, *, split: str = "val", label: str | None = None, points: pd.DataFrame | None = None
) -> Figure:
    r"""The static law made linear: :math:`\log(L_i - c_i)` against :math:`p_i` with the line
    :math:`k_i p_i + b_i` (m=2), or :math:`\log(L_i - e^{\ell_i})` against the fitted exponent
    :math:`b_i + \sum_{j<m} t_{ij} p_j` with the identity line (m >= 3). Points with :math:`L \le c` have no
    logarithm and are counted in the panel title.

    Args:
      fits: the analysis' :class:`~jaxlaws.analysis.LawFits`.
      sweep: the sweep they were fitted to.
      split: the loss split, as in the fits.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.
      points: :func:`~jaxlaws.plot.data.static_points` when already computed.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    pts = static_points(fits, sweep, split=split) if points is None else points
    groups, m = sweep.groups, sweep.m
    names = list(fits.param_names)
    seeds = sorted(pts["seed"].unique())
    colours = _style.seed_colours(seeds)
    pcols = [f"p_{g}" for g in groups]
    fig, axes = _style.new_figure(*_style.grid_shape(len(groups)))
    for ax, g in zip(axes.ravel(), groups):
        dropped = 0
        for s in seeds:
            d = pts[(pts["group"] == g) & (pts["seed"] == s)]
            theta = fits.params.iloc[int(d["fit_row"].iloc[0])][names].to_numpy(np.float64)
            flags = d["flags"].iloc[0]
            if m == 2:
                c, k, b = theta
                x, x_line, y_line = d["own_p"].to_numpy(), _GRID, k * _GRID + b
            else:
                c = np.exp(theta[0])
                x = theta[1] + d[pcols[:-1]].to_numpy() @ theta[2:]
                x_line = np.array([x.min(), x.max()])
                y_line = x_line
            gap = d["observed"].to_numpy() - c
            ok = gap > 0
            dropped += int((~ok).sum())
            ax.scatter(
                x[ok], np.log(gap[ok]), s=14, color=colours[s], alpha=0.8, label=f"seed {s}{_style.flag_note(flags)}"
            )
            ax.plot(x_line, y_line, color=colours[s], lw=1, ls="--" if flags else "-")
        ax.set_xlabel(f"p_{g}" if m == 2 else "fitted exponent b + t . p")
        ax.set_ylabel(f"log(L_{g} - c)" if m == 2 else f"log(L_{g} - exp(l))")
        ax.set_title(g + (f" ({dropped} point(s) with L <= c not shown)" if dropped else ""), fontsize="small")
    axes.ravel()[0].legend(fontsize="x-small")
    _style.hide_unused(axes, len(groups))
    return _style.title(fig, f"Static law {fits.law.name}, linearised", label)


def predicted_vs_observed(
    points: pd.DataFrame,
    *,
    title: str = "Predicted vs observed",
    held_out: pd.DataFrame | None = None,
    quantity: str = "loss",
    label: str | None = None,
) -> Figure:
    """Observed against predicted values, one colour per group, with the identity line.

    ``points`` has columns ``group``, ``observed``, ``predicted`` (e.g. :func:`~jaxlaws.plot.data.static_points`,
    the in-sample fits). ``held_out``, with the same columns, holds predictions for points the fit did not
    see (cross-validation); they are drawn as open diamonds and their RMSE is given separately.

    Args:
      points: columns ``group``, ``observed``, ``predicted``.
      title: the figure's title.
      held_out: out-of-sample predictions, same columns.
      quantity: what the values are, for the axis labels.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    fig, axes = _style.new_figure(width=4.6, height=4.2)
    draw_predicted_vs_observed(axes[0, 0], points, held_out, quantity)
    return _style.title(fig, title, label)


def draw_predicted_vs_observed(
    ax, points: pd.DataFrame, held_out: pd.DataFrame | None = None, quantity: str = "loss"
) -> None:
    """Draw :func:`predicted_vs_observed`'s panel into ``ax`` (also used by the cross-validation figure)."""
    groups = list(dict.fromkeys(points["group"]))
    colours = _style.group_colours(groups)
    for g in groups:
        d = points[points["group"] == g]
        rmse = float(np.sqrt(np.mean((d["observed"] - d["predicted"]) ** 2)))
        ax.scatter(
            d["predicted"], d["observed"], s=12, color=colours[g], alpha=0.75, label=f"{g} (fit, RMSE {rmse:.2g})"
        )
        if held_out is not None and not held_out[held_out["group"] == g].empty:
            h = held_out[held_out["group"] == g]
            rmse_h = float(np.sqrt(np.mean((h["observed"] - h["predicted"]) ** 2)))
            ax.scatter(
                h["predicted"],
                h["observed"],
                s=34,
                marker="D",
                facecolors="none",
                edgecolors=colours[g],
                lw=1.1,
                label=f"{g} held out (RMSE {rmse_h:.2g})",
            )
    every = [points[["observed", "predicted"]].to_numpy().ravel()]
    if held_out is not None:
        every.append(held_out[["observed", "predicted"]].to_numpy().ravel())
    v = np.concatenate(every)
    v = v[np.isfinite(v)]
    lo, hi = float(v.min()), float(v.max())
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=0.8, ls=":", label="y = x")
    ax.set_xlabel(f"predicted {quantity}")
    ax.set_ylabel(f"observed {quantity}")
    ax.legend(fontsize="x-small")


def dynamic_law(
    fits: LawFits,
    sweep: Sweep,
    *,
    split: str = "val",
    label: str | None = None,
    points: pd.DataFrame | None = None,
    max_parents: int = 9,
) -> Figure:
    """One panel per parent (break step, parent mixture, seed; at most ``max_parents``): each group's fitted
    target (:math:`L^{B+R}`, :math:`L^{B+R} - L^B` or the log ratio, by form) against the child's own
    proportion, with the fitted dynamic law (for m >= 3 along equal shares of the other groups, crosses at
    each child's mixture).

    Args:
      fits: the analysis' :class:`~jaxlaws.analysis.LawFits`.
      sweep: the sweep they were fitted to.
      split: the loss split, as in the fits.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.
      points: :func:`~jaxlaws.plot.data.dynamic_points` when already computed.
      max_parents: the most panels drawn.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    pts = dynamic_points(fits, sweep, split=split) if points is None else points
    form = dynamic_form(fits)
    groups, m = sweep.groups, sweep.m
    colours = _style.group_colours(groups)
    keys = pts[["break_step", "parent", "seed"]].drop_duplicates().to_numpy().tolist()
    shown = keys[:max_parents]
    fig, axes = _style.new_figure(*_style.grid_shape(len(shown)), width=3.6, height=3.0)
    pmix = fits.params.drop_duplicates(["break_step", "parent", "seed"]).set_index(["break_step", "parent", "seed"])
    for ax, (bstep, parent, seed) in zip(axes.ravel(), shown):
        sel = pts[(pts["break_step"] == bstep) & (pts["parent"] == parent) & (pts["seed"] == seed)]
        for g in groups:
            d = sel[sel["group"] == g]
            row, flags = int(d["fit_row"].iloc[0]), d["flags"].iloc[0]
            ax.scatter(d["own_p"], d["observed"], s=14, color=colours[g], label=f"{g}{_style.flag_note(flags)}")
            ax.plot(
                _GRID,
                along_own(fits, row, m, groups.index(g), _GRID),
                color=colours[g],
                lw=1,
                ls="--" if flags else "-",
            )
            if m > 2:
                ax.scatter(d["own_p"], d["predicted"], marker="x", s=12, color=colours[g], lw=0.8)
        mix = pmix.loc[(bstep, parent, seed), [f"parent_p_{g}" for g in groups]].to_numpy(np.float64)
        ax.set_title(f"B={bstep}, parent p=({', '.join(f'{v:.2f}' for v in mix)}), seed {seed}", fontsize="x-small")
        ax.set_xlabel("child's own proportion $p_i$")
        ax.set_ylabel(target_label(form))
        _clip_to_points(ax, sel[["observed", "predicted"]].to_numpy())
        ax.legend(fontsize="xx-small")
    _style.hide_unused(axes, len(shown))
    more = f" (first {len(shown)} of {len(keys)} parents)" if len(keys) > len(shown) else ""
    return _style.title(fig, f"Dynamic law {fits.law.name} per parent{more}", label)


def _clip_to_points(ax, values: np.ndarray) -> None:
    """Keep the y-range on the data: a curve drawn over all of [0, 1] may run far outside it."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        pad = 0.15 * (hi - lo or abs(hi) or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
