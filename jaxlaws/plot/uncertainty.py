r"""Figures of how far a fit can be trusted: cross-validated error (:func:`jaxlaws.cross_validate`) and
bootstrap intervals (:func:`jaxlaws.bootstrap`), drawn from their result objects directly.

* :func:`cross_validation`: each point's observed value against the refit's in-sample prediction (filled)
  and its out-of-fold prediction (open diamonds, the fit that did not see it), and each fold's held-out
  RMSE next to the out-of-fold RMSE over all points.
* :func:`bootstrap_intervals`: per parameter, each problem's estimate with its percentile interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jaxlaws._typing import ArrayLike
from jaxlaws.fitting.bootstrap import BootstrapResult
from jaxlaws.fitting.cv import CVResult
from jaxlaws.plot import _style
from jaxlaws.plot.fits import draw_predicted_vs_observed

__all__ = ["cv_points", "cross_validation", "bootstrap_points", "bootstrap_intervals"]


def _problem_names(n_problems: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [f"problem {b}" for b in range(n_problems)] if n_problems > 1 else ["fit"]
    names = [str(v) for v in names]
    if len(names) != n_problems:
        raise ValueError(f"names: {len(names)} given for {n_problems} problem(s)")
    return names


def cv_points(
    cv: CVResult,
    x: ArrayLike,
    y: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    problem_labels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The numbers behind :func:`cross_validation`: one row per (problem, point[, output]) with ``group``
    (the problem's name), ``problem`` (its label, default its index), ``point``, ``fold``, ``observed``,
    ``predicted`` (the refit on all points,
    in-sample) and ``held_out`` (the out-of-fold prediction).

    ``x`` and ``y`` are the arrays ``cv`` was computed from (one problem, or a batch).

    Args:
      cv, x, y, names, problem_labels: as :func:`cross_validation`.

    Returns:
      A DataFrame, one row per (problem, point[, output]).
    """
    y = np.asarray(y, np.float64)
    batched = np.ndim(cv.mae) == 1
    yb, oof, folds = (
        (y, np.asarray(cv.predictions), np.asarray(cv.folds))
        if batched
        else (y[None], np.asarray(cv.predictions)[None], np.asarray(cv.folds)[None])
    )
    if yb.shape != oof.shape:
        raise ValueError(
            f"y has shape {y.shape} but the cross-validation predicted {np.shape(cv.predictions)}: "
            "pass the x and y it was computed from"
        )
    fitted = np.asarray(cv.refit.predict(x), np.float64).reshape(yb.shape)
    labels = _problem_names(len(yb), names)
    n = yb.shape[1]
    k = int(np.prod(yb.shape[2:], dtype=int))
    per = list(range(len(yb))) if problem_labels is None else _problem_names(len(yb), problem_labels)
    rows = {
        "group": np.repeat(labels, n * k),
        "problem": np.repeat(per, n * k),
        "point": np.tile(np.repeat(np.arange(n), k), len(yb)),
        "fold": np.repeat(folds, k, axis=1).ravel(),
        "observed": yb.ravel(),
        "predicted": fitted.ravel(),
        "held_out": oof.ravel(),
    }
    if k > 1:
        rows["output"] = np.tile(np.arange(k), len(yb) * n)
    return pd.DataFrame(rows)


def cross_validation(
    cv: CVResult,
    x: ArrayLike,
    y: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    problem_labels: Sequence[str] | None = None,
    quantity: str = "loss",
    title: str | None = None,
    label: str | None = None,
) -> Figure:
    r"""Cross-validated error of a fit (one problem or a batch; ``names`` labels the problems and sets
    their colours, e.g. the group, repeated over seeds; ``problem_labels`` names each problem's bar).

    Left: observed against predicted, the refit's in-sample predictions filled and the out-of-fold ones
    (:math:`\hat y_n` from the fit of the folds without :math:`n`) as open diamonds, each with its RMSE.
    Right: each fold's held-out RMSE (dots) and the out-of-fold RMSE over all points (bar) per problem.

    Args:
      cv: a :class:`jaxlaws.CVResult`.
      x, y: the data ``cv`` was computed from (one problem, or a batch).
      names: the problems' names (colours).
      problem_labels: each problem's bar label.
      quantity: what ``y`` is, for the axis labels.
      title: the figure's title.
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    pts = cv_points(cv, x, y, names=names)
    groups = list(dict.fromkeys(pts["group"]))
    fig, axes = _style.new_figure(1, 2, width=4.6, height=4.2)
    held = pts.drop(columns="predicted").rename(columns={"held_out": "predicted"})
    draw_predicted_vs_observed(axes[0, 0], pts, held, quantity)
    axes[0, 0].set_title("in-sample (refit) and out-of-fold", fontsize="small")
    ax = axes[0, 1]
    colours = _style.group_colours(groups)
    fold_rmse = np.atleast_2d(np.asarray(cv.fold_rmse, np.float64))
    rmse = np.atleast_1d(np.asarray(cv.rmse, np.float64))
    problems = _problem_names(len(rmse), names)  # one bar per problem; names may repeat (seeds)
    ticks = (
        _problem_names(len(rmse), problem_labels)
        if problem_labels is not None
        else [f"{g} #{b}" if problems.count(g) > 1 else g for b, g in enumerate(problems)]
    )
    for b, g in enumerate(problems):
        ax.bar(b, rmse[b], 0.6, color=colours[g], alpha=0.45, label="out-of-fold RMSE" if b == 0 else None)
        ax.scatter(
            np.full(fold_rmse.shape[1], b) + np.linspace(-0.2, 0.2, fold_rmse.shape[1]),
            fold_rmse[b],
            s=10,
            color="black",
            zorder=3,
            label="each fold's RMSE" if b == 0 else None,
        )
    ax.set_xticks(range(len(ticks)), ticks, rotation=30 if len(ticks) > 3 else 0, fontsize="small")
    ax.set_xlabel("fit")
    ax.set_ylabel(f"held-out RMSE of {quantity}")
    ax.set_title(f"{fold_rmse.shape[1]} folds", fontsize="small")
    ax.legend(fontsize="x-small")
    name = title or f"Cross-validated error of {cv.refit.law.name}"
    return _style.title(fig, name, label)


def bootstrap_points(
    boot: BootstrapResult | Mapping[str, BootstrapResult],
    *,
    names: Sequence[str] | None = None,
    level: float | None = None,
) -> pd.DataFrame:
    """The numbers behind :func:`bootstrap_intervals`: one row per (result, problem, parameter) with ``row``
    (the label drawn: the problem's name, followed by the result's key when several are given), ``param``,
    ``estimate``, ``lo``, ``hi``, ``level``, ``n_resamples``, ``n_failed``.

    Args:
      boot, names, level: as :func:`bootstrap_intervals`.

    Returns:
      A DataFrame, one row per (result, problem, parameter).
    """
    items = list(boot.items()) if isinstance(boot, Mapping) else [("", boot)]
    if not items:
        raise ValueError("no bootstrap results to draw")
    params = items[0][1].law.param_names
    out = []
    for key, b in items:
        if b.law.param_names != params:
            raise ValueError(f"bootstrap results of different laws: {b.law.name} next to {items[0][1].law.name}")
        t = b.table(level)
        if "problem" not in t:
            t.insert(0, "problem", 0)
        n_problems = int(t["problem"].max()) + 1
        labels = _problem_names(n_problems, names)
        t.insert(0, "row", [labels[p] + (f" ({key})" if key != "" else "") for p in t["problem"]])
        t["n_resamples"] = int(np.shape(b.params)[-2])
        out.append(t.drop(columns="problem"))
    return pd.concat(out, ignore_index=True)


def bootstrap_intervals(
    boot: BootstrapResult | Mapping[str, BootstrapResult],
    *,
    names: Sequence[str] | None = None,
    level: float | None = None,
    label: str | None = None,
) -> Figure:
    r"""Bootstrap percentile intervals of the parameters: one panel per parameter, one row per problem
    (``names``; with a mapping ``{key: result}``, e.g. one result per training seed, the rows of every
    result, labelled ``name (key)``), the estimate on all points as a dot and
    :math:`[Q_{\alpha/2}, Q_{1-\alpha/2}]` of the resamples as a bar (a skewed bootstrap may leave the
    estimate outside it). The title gives the level, the resamples and how many failed.

    Args:
      boot: a :class:`jaxlaws.BootstrapResult`, or ``{key: result}``.
      names: the problems' names (default their indices).
      level: the interval level (default the result's).
      label: a word for the title saying what the data are, e.g. ``"synthetic"``.

    Returns:
      A matplotlib ``Figure`` (no pyplot state).
    """
    table = bootstrap_points(boot, names=names, level=level)
    first = next(iter(boot.values())) if isinstance(boot, Mapping) else boot
    labels = list(dict.fromkeys(table["row"]))
    params = list(first.law.param_names)
    rows_, cols = _style.grid_shape(len(params), 4)
    fig, axes = _style.new_figure(rows_, cols, width=3.0, height=0.3 * len(labels) + 1.6)
    y = np.arange(len(labels))
    lvl = float(table["level"].iloc[0])
    for ax, p in zip(axes.ravel(), params):
        d = table[table["param"] == p].set_index("row").loc[labels]
        e, lo, hi = (d[c].to_numpy(np.float64) for c in ("estimate", "lo", "hi"))
        ax.hlines(y, lo, hi, color="#555555", lw=1.5, label=f"{100 * lvl:.0f}% interval")
        ax.plot(e, y, "o", ms=4, color="#0072B2", ls="", label="estimate (all points)")
        ax.set_yticks(y, labels, fontsize="x-small")
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel(p)
        ax.set_ylabel("fit")
        ax.set_title(p, fontsize="small")
    _style.hide_unused(axes, len(params))
    n_res = sorted(set(table["n_resamples"]))
    failed = int(table.drop_duplicates("row")["n_failed"].sum())
    axes.ravel()[0].legend(fontsize="xx-small")
    return _style.title(
        fig,
        f"Bootstrap {100 * lvl:.0f}% intervals of {first.law.name} "
        f"({'/'.join(map(str, n_res))} resamples" + (f", {failed} failed" if failed else "") + ")",
        label,
    )
