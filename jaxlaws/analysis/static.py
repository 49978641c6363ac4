r"""Static mixing laws fitted to the end-of-training losses of a static sweep (the original's
``2_static_law.ipynb``, ``3_static_law.ipynb``, ``instruction_static_law.ipynb``).

For every (group :math:`i`, seed) the losses :math:`L_i(p_n)` of the seed's mixtures :math:`p_n` at one step
are fitted with

* m=2: :math:`L_i = c_i + \exp(k_i p_i + b_i)` (own proportion), the original's two-stage fit: ``c`` on a
  grid maximising :math:`|\mathrm{corr}(p_i, \log(L_i - c))|`, then ``(k, b)`` from the 121-point grid;
* m>=3 (m=9 for instruction tuning): the reduced log-linear law
  :math:`L_i = e^{\ell_i} + \exp(b_i + \sum_{j<m} t_{ij} p_j)` from the original's 6,000-init grid
  (``n_random`` random ``t`` draws, seeded per problem from ``seed``).

All (group, seed) problems go to the fitting engine in one batched, compiled call. Every fit carries its
diagnostic ``flags`` (:attr:`jaxlaws.FitResult.flags`, ``""`` when clean); a flagged fit raises a
:class:`FlaggedFitWarning` naming its group and seed and is left out of the summary unless
``include_flagged=True``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
import pandas as pd

from jaxlaws._typing import DTypeLike, SolverLike
from jaxlaws.analysis import _common
from jaxlaws.analysis._common import FlaggedFitWarning  # noqa: F401  (re-exported)
from jaxlaws.analysis.export import nested_params
from jaxlaws.fitting import fit_batched, fit_static_two_stage, validate
from jaxlaws.fitting.objectives import Objective
from jaxlaws.laws import Law, log_linear, log_linear_inits, static_two_group
from jaxlaws.sweeps.schema import Sweep, proportion_columns

__all__ = ["LawFits", "fit_static"]


@dataclasses.dataclass(frozen=True)
class LawFits:
    """Fitted parameters of one law family.

    Attributes:
      law: the fitted :class:`~jaxlaws.laws.Law`.
      param_names: the law's parameter names.
      params: one row per fit: keys, parameters, metrics and the fit's ``flags`` (``""`` when clean).
      summary: mean/std of MSE and R^2 over the unflagged fits (all fits when ``include_flagged``).
      keys: the key columns used to nest the parameters for export, e.g. ``("group", "step", "seed")``.
      include_flagged: whether flagged fits count in ``summary``.
    """

    law: Law
    param_names: tuple[str, ...]
    params: pd.DataFrame
    summary: pd.DataFrame
    keys: tuple[str, ...]
    include_flagged: bool = False

    @property
    def flagged(self) -> pd.DataFrame:
        """The rows of ``params`` whose fit carries flags."""
        return _common.flagged_rows(self.params)

    def to_law_results(self, **fixed: Any) -> dict:
        """Nested dict in the layout of ``jaxlaws/data/aioli/law_results`` (see :mod:`.export`)."""
        df = self.params
        for k, v in fixed.items():
            df = df[df[k] == v]
        return nested_params(df, self.keys, self.param_names)

    def predict(self, row: int, x: np.ndarray) -> np.ndarray:
        """Predictions of the fit in row ``row`` (position in ``params``) at the law's inputs ``x``."""
        theta = self.params.iloc[row][list(self.param_names)].to_numpy(np.float64)
        x = validate.check_x(self.law, x)
        with jax.enable_x64(True):
            return np.asarray(self.law.predict(theta, x))


def fit_static(
    sweep: Sweep,
    step: int | None = None,
    *,
    split: str = "val",
    seed: int = 0,
    n_random: int = 30,
    objective: Objective | None = None,
    solver: SolverLike | None = None,
    dtype: DTypeLike = "float64",
    include_flagged: bool = False,
) -> LawFits:
    """Fit the static law per (group, training seed) at ``step`` (default: the last step).

    Args:
      sweep: a sweep with ``kind == "static"`` runs.
      step: the step whose losses are fitted; default the largest.
      split: ``"val"`` (as the notebooks) or ``"test"``.
      seed: seeds the random part of the m>=3 init grid (the original's draws were unseeded).
      n_random: random ``t`` draws per (l, b) grid point for m>=3 (30 in the original: 6,000 inits).
      objective, solver: passed to the fitting engine (default Huber(0.02), Levenberg-Marquardt).
      dtype: fitting precision, float64 by default (float32 is faster and usually as good).
      include_flagged: keep flagged fits in the summary (default: left out, with a warning per fit).
    Returns:
      :class:`LawFits` with keys (group, step, seed); MSE in loss space, R^2 correct and, for
      comparison with the m=2 notebook, ``r2_swapped_as_original``; ``flags`` per fit.
    Raises:
      ValueError naming the group and seed whose losses the law cannot fit (e.g. a loss <= 0).
    """
    wide = _common.wide_losses(sweep, ["static"], split)
    step = _common.pick_step(wide["step"].to_numpy(), step, "static sweep")
    wide = wide[wide["step"] == step]
    groups, m = sweep.groups, sweep.m
    pcols = proportion_columns(groups)
    keys, problems = [], []
    for i, g in enumerate(groups):
        for s, d in wide.groupby("seed", sort=True):
            p = d[pcols].to_numpy()
            problems.append((p[:, i : i + 1] if m == 2 else p, d[f"L_{g}"].to_numpy()))
            keys.append({"group": g, "step": step, "seed": int(s)})
    if m == 2:
        law = static_two_group()

        def fit(idx, X, Y):  # the original's two stages: c from the correlation grid, then (k, b)
            res = fit_static_two_stage(X[..., 0], Y, objective=objective, solver=solver, dtype=dtype)
            return res.params, _common.fit_fields(res, law, res.params, X, Y)
    else:
        law = log_linear(m)
        base = jax.random.key(seed)

        def fit(idx, X, Y):
            inits = np.stack(
                [
                    log_linear_inits(
                        m, jax.random.fold_in(base, int(i)), own=groups.index(keys[i]["group"]), n_random=n_random
                    )
                    for i in idx
                ]
            )
            res = fit_batched(law, X, Y, inits=inits, objective=objective, solver=solver, dtype=dtype)
            return res.params, _common.fit_fields(res, law, res.params, X, Y)

    params, fields = _common.bucketed(problems, fit, keys, "static fit")
    df = _common.param_frame(keys, law.param_names, params, fields)
    _common.warn_flagged(df, f"static law {law.name}", law.param_names, include_flagged)
    return LawFits(
        law,
        law.param_names,
        df,
        _common.summary(df, include_flagged=include_flagged),
        ("group", "step", "seed"),
        include_flagged,
    )
