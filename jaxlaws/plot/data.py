"""The tidy tables the figures draw: observed losses next to the fitted laws' predictions.

These hold no matplotlib and are the numbers behind each figure (the report writes them as CSVs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlaws.analysis import _common
from jaxlaws.analysis.dynamic import child_problem
from jaxlaws.analysis.static import LawFits
from jaxlaws.sweeps.schema import Sweep, proportion_columns

__all__ = [
    "dynamic_form",
    "target_name",
    "target_label",
    "static_points",
    "dynamic_points",
    "method_trajectories",
    "along_own",
]

_DYNAMIC_FORMS = {
    "dynamic_two_group": "two_group",
    "dynamic_linear": "linear",
    "dynamic_full": "full",
    "log_ratio": "log_ratio",
}
_TARGETS = {"two_group": "L^{B+R}", "linear": "L^{B+R}", "full": "L^{B+R} - L^B", "log_ratio": "log(L^{B+R}/L^B)"}


def dynamic_form(fits: LawFits) -> str:
    """The dynamic form (``two_group``, ``linear``, ``full``, ``log_ratio``) of a dynamic fit."""
    base = fits.law.name.split("(")[0]
    if base not in _DYNAMIC_FORMS:
        raise ValueError(f"not a dynamic law fit: {fits.law.name!r}")
    return _DYNAMIC_FORMS[base]


def target_name(form: str) -> str:
    """What a dynamic form fits, e.g. ``L^{B+R} - L^B`` for ``full``."""
    return _TARGETS[form]


def target_label(form: str) -> str:
    """:func:`target_name` as matplotlib mathtext, for axis labels (``$L^{B+R} - L^B$``)."""
    return "$" + _TARGETS[form].replace("log", r"\log") + "$"


def _law_input(p: np.ndarray, i: int, own_only: bool) -> np.ndarray:
    """The law's ``x``: the own proportion (n, 1) for the two-group laws, else the whole mixture."""
    return p[:, i : i + 1] if own_only else p


def static_points(fits: LawFits, sweep: Sweep, *, split: str = "val") -> pd.DataFrame:
    """One row per (group, seed, trained mixture) at the fitted step: ``p_<g>``, ``own_p`` (the group's own
    proportion), ``observed`` loss, ``predicted`` by that (group, seed)'s fitted static law, ``flags`` of the
    fit and ``fit_row`` (its position in ``fits.params``).

    Args:
      fits: the analysis' :class:`~jaxlaws.analysis.LawFits`.
      sweep: the sweep they were fitted to.
      split: the loss split, as in the fits.

    Returns:
      A DataFrame, one row per (group, seed, trained mixture).
    """
    step = int(fits.params["step"].iloc[0])
    wide = _common.wide_losses(sweep, ["static"], split)
    wide = wide[wide["step"] == step]
    groups, pcols = sweep.groups, proportion_columns(sweep.groups)
    out = []
    for row, fit in enumerate(fits.params.itertuples(index=False)):
        i = groups.index(fit.group)
        d = wide[wide["seed"] == fit.seed]
        p = d[pcols].to_numpy()
        pred = fits.predict(row, _law_input(p, i, fits.law.x_dim == 1))
        part = d[pcols].reset_index(drop=True)
        part.insert(0, "seed", int(fit.seed))
        part.insert(0, "group", fit.group)
        part["own_p"] = p[:, i]
        part["observed"] = d[f"L_{fit.group}"].to_numpy()
        part["predicted"] = pred
        part["flags"], part["fit_row"] = fit.flags, row
        out.append(part)
    return pd.concat(out, ignore_index=True)


def dynamic_points(fits: LawFits, sweep: Sweep, *, split: str = "val") -> pd.DataFrame:
    """One row per (group, parent, seed, child): ``p_<g>`` of the child, ``own_p``, the ``observed`` target of
    the fit (see :func:`target_name`), ``predicted`` by the fitted dynamic law, ``flags``, ``fit_row``.

    Args:
      fits: the analysis' :class:`~jaxlaws.analysis.LawFits`.
      sweep: the sweep they were fitted to.
      split: the loss split, as in the fits.

    Returns:
      A DataFrame, one row per (group, parent, seed, child).
    """
    form = dynamic_form(fits)
    children = _common.child_table(sweep, split, ["parent"])
    groups, pcols = sweep.groups, proportion_columns(sweep.groups)
    out = []
    for row, fit in enumerate(fits.params.itertuples(index=False)):
        i = groups.index(fit.group)
        d = children[
            (children["parent"] == fit.parent)
            & (children["seed"] == fit.seed)
            & (children["break_step"] == fit.break_step)
        ]
        x, y = child_problem(d, groups, i, form)
        part = d[pcols].reset_index(drop=True)
        for c, v in (
            ("group", fit.group),
            ("parent", fit.parent),
            ("break_step", int(fit.break_step)),
            ("seed", int(fit.seed)),
        ):
            part[c] = v
        part["own_p"] = d[pcols[i]].to_numpy()
        part["observed"], part["predicted"] = y, fits.predict(row, x)
        part["flags"], part["fit_row"] = fit.flags, row
        out.append(part)
    df = pd.concat(out, ignore_index=True)
    return df[["group", "parent", "break_step", "seed", *pcols, "own_p", "observed", "predicted", "flags", "fit_row"]]


def method_trajectories(sweep: Sweep, *, split: str = "val") -> pd.DataFrame:
    """Each method run's mixture ``p^t`` over training: one row per (method, run, seed, step) with
    ``p_<g>``; empty (same columns) when the sweep has no method runs.

    Args:
      sweep: a sweep with method runs.
      split: the loss split whose rows carry the mixtures.

    Returns:
      A DataFrame, one row per (method, run, seed, step).
    """
    pcols = proportion_columns(sweep.groups)
    df = sweep.losses
    df = df[(df["kind"] == "method") & (df["split"] == split)]
    cols = ["method", "run", "seed", "step", "break_step", *pcols]
    return (
        df.drop_duplicates(["run", "seed", "step"])[cols]
        .sort_values(["method", "run", "seed", "step"], kind="stable")
        .reset_index(drop=True)
    )


def along_own(
    law_fits: LawFits, row: int, m: int, i: int, own: np.ndarray, rest: np.ndarray | None = None
) -> np.ndarray:
    """Predictions of fit ``row`` for group ``i`` as its own proportion runs over ``own`` and the other groups
    share the rest in the proportions ``rest`` (m-1 weights, default equal): the curve drawn through the
    points of a law with m >= 3 inputs (for m = 2 it is the law itself)."""
    own = np.asarray(own, np.float64)
    if law_fits.law.x_dim == 1:
        return law_fits.predict(row, own[:, None])
    rest = np.full(m - 1, 1.0 / (m - 1)) if rest is None else np.asarray(rest, np.float64) / np.sum(rest)
    p = np.empty((len(own), m))
    p[:, i] = own
    p[:, [j for j in range(m) if j != i]] = (1.0 - own)[:, None] * rest[None]
    return law_fits.predict(row, p)
