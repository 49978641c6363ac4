r"""Dynamic mixing laws fitted to parent/child sweeps (the original's ``2_dynamic_law.ipynb``,
``3_dynamic_law.ipynb``, ``instruction_dynamic_law.ipynb``).

A parent run trained with mixture :math:`p^{par}` is broken at step :math:`B`; children resume from it with
mixtures :math:`p` for :math:`R` steps. Per (group :math:`i`, break step, parent, seed) one of these laws
(all linear in the parameters, solved in closed form; Huber(0.02) by default as in the original):

========== ================================================================ =======================
form       law                                                              params
========== ================================================================ =======================
two_group  :math:`L_i^{B+R} = k\,p_i + b` (m=2, own proportion)              ``[k, b]``
linear     :math:`L_i^{B+R} = c + \sum_{j<m} t_j p_j` (reduced)              ``[c, t_1..t_{m-1}]``
full       :math:`L_i^{B+R} - L_i^B = \sum_j a_j p_j` (no intercept)         ``[a_1..a_m]``
log_ratio  :math:`\log(L_i^{B+R}/L_i^B) = c + \sum_{j<m} t_j p_j`            ``[c, t_1..t_{m-1}]``
========== ================================================================ =======================

All problems of one form are solved by one batched call. Every fit carries its diagnostic ``flags``
(``""`` when clean); flagged fits are named in a :class:`FlaggedFitWarning` and left out of the summary
unless ``include_flagged=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from jaxlaws._typing import DTypeLike
from jaxlaws.analysis import _common
from jaxlaws.analysis.static import LawFits
from jaxlaws.fitting import fit_batched
from jaxlaws.fitting.objectives import Objective
from jaxlaws.laws import Law, dynamic_full, dynamic_linear, dynamic_two_group, log_ratio
from jaxlaws.sweeps.schema import Sweep, proportion_columns

__all__ = ["FORMS", "dynamic_law", "child_problem", "fit_children", "fit_dynamic"]

FORMS = ("two_group", "linear", "full", "log_ratio")


def dynamic_law(form: str, m: int) -> Law:
    """The :class:`~jaxlaws.laws.Law` of a dynamic ``form`` (table in the module docstring).

    Args:
      form: one of :data:`FORMS`.
      m: the number of groups.

    Returns:
      The :class:`~jaxlaws.laws.Law`.
    """
    if form == "two_group":
        if m != 2:
            raise ValueError(f"the two_group dynamic law needs m=2 groups, the sweep has m={m}")
        return dynamic_two_group()
    makers = {"linear": dynamic_linear, "full": dynamic_full, "log_ratio": log_ratio}
    if form not in makers:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return makers[form](m)


def child_problem(children: pd.DataFrame, groups: Sequence[str], i: int, form: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of group ``i`` for one set of children (rows of :func:`_common.child_table`)."""
    p = children[proportion_columns(groups)].to_numpy()
    g = groups[i]
    after, before = children[f"L_{g}"].to_numpy(), children[f"LB_{g}"].to_numpy()
    if form == "two_group":
        return p[:, i : i + 1], after
    if form == "linear":
        return p, after
    if form == "full":
        return p, after - before
    if np.any(after <= 0) or np.any(before <= 0):
        raise ValueError("the log_ratio law needs positive losses")
    return p, np.log(after / before)


def fit_children(
    children: pd.DataFrame,
    groups: Sequence[str],
    form: str,
    keys: Sequence[str],
    objective: Any = None,
    dtype: str = "float64",
    what: str = "dynamic fit",
) -> tuple[Law, pd.DataFrame]:
    """Fit ``form`` per (group, ``keys``-combination) of the child table in one batched call per size;
    the table has a ``flags`` column. Data the law cannot fit raises naming the group and keys."""
    law = dynamic_law(form, len(groups))
    rows, problems = [], []
    for i, g in enumerate(groups):
        for kv, d in children.groupby(list(keys), sort=True):
            row = {"group": g, **dict(zip(keys, kv))}
            try:
                problems.append(child_problem(d, groups, i, form))
            except ValueError as e:
                raise ValueError(f"{what} of {_common.describe(row)}: {e}") from None
            rows.append(row)

    def fit(idx, X, Y):
        res = fit_batched(law, X, Y, objective=objective, dtype=dtype)
        return res.params, _common.fit_fields(res, law, res.params, X, Y)

    params, fields = _common.bucketed(problems, fit, rows, what)
    return law, _common.param_frame(rows, law.param_names, params, fields)


def fit_dynamic(
    sweep: Sweep,
    form: str | None = None,
    *,
    split: str = "val",
    objective: Objective | None = None,
    dtype: DTypeLike = "float64",
    include_flagged: bool = False,
) -> LawFits:
    """Fit a dynamic law per (group, break step, parent, seed) of a parent/child sweep.

    Args:
      sweep: a sweep with ``kind == "parent"`` runs and their ``kind == "child"`` runs.
      form: ``"two_group"`` (default for m=2), ``"linear"`` (default for m>=3), ``"full"`` or ``"log_ratio"``.
      split: ``"val"`` or ``"test"``.
      objective: default Huber(0.02), as in the original.
      dtype: precision of the closed-form solves (float64 by default).
      include_flagged: keep flagged fits in the summary (default: left out, with a warning per fit).
    Returns:
      :class:`LawFits` with columns group, break_step, parent, parent_p_<g>..., seed, the parameters,
      MSE / R^2 (correct, and the m=2 notebook's swapped one) and ``flags``. Export keys: (group, break_step,
      parent_p_<first group>) -- select one seed first when the sweep has several.
    """
    form = form or ("two_group" if sweep.m == 2 else "linear")
    children = _common.child_table(sweep, split, ["parent"])
    pcol = f"parent_p_{sweep.groups[0]}"
    parent_cols = [f"parent_p_{g}" for g in sweep.groups]
    law, df = fit_children(children, sweep.groups, form, ["break_step", "parent", "seed"], objective, dtype)
    mix = children.drop_duplicates(["parent", "seed"])[["parent", "seed"] + parent_cols]
    df = df.merge(mix, on=["parent", "seed"], how="left")
    front = ["group", "break_step", "parent", *parent_cols, "seed"]
    df = df[front + [c for c in df.columns if c not in front]]
    _common.warn_flagged(df.drop(columns=parent_cols), f"dynamic law {law.name}", law.param_names, include_flagged)
    return LawFits(
        law,
        law.param_names,
        df,
        _common.summary(df, include_flagged=include_flagged),
        ("group", "break_step", pcol),
        include_flagged,
    )
