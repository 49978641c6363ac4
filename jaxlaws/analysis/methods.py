r"""Each method's own matrix :math:`A^t`, the true :math:`A^{t\star}` on its trajectory, and their similarity
(Chen et al., 2025, Section 3; the original's ``{2,3}_{aioli,doge,doremi,skillit}_parameters.ipynb``
and ``{2,3}_measurements.ipynb``).

A method run is broken at step :math:`B`; children resume from it with mixtures :math:`p_n` for :math:`R`
steps.

**The true matrix** :math:`A^{t\star}`, fitted on the children (Huber 0.02, closed form, batched):

* m=2: per group :math:`L_i^{B+R} = k_i p_i + b_i`, so :math:`A^{t\star} = \mathrm{diag}(k_1, k_2)`;
* m>=3: per group the full law :math:`L_i^{B+R} - L_i^B = \sum_j a_{ij} p_j`; the rows :math:`a_i` stack.

**The method's matrix** :math:`A^t` from its recorded internals (``matrices`` table of the sweep):

========  ================  =====================================================================
method    matrix name       :math:`A^t`
========  ================  =====================================================================
aioli     ``aioli_A``       mean of the LearnParams rounds up to B: all of them, or the last ``k``
                            (the original used all for m=2 and the last 4 for m=3: ``aioli_rounds``)
doge      ``doge_M``        mean of :math:`M_{ij} = \langle g^{train}_i, g^{val}_j\rangle`. The original
                            analysis used M as is although the LMO reading gives :math:`M^\top`
                            (``docs/DEVIATIONS.md``); ``transpose_doge=True`` uses :math:`M^\top`
doremi    ``doremi_excess`` mean of :math:`\mathrm{diag}(L_i(\theta) - L_i(\mathrm{ref}))`
skillit   ``skillit_graph`` :math:`\mathrm{diag}(L^B)\,G^\top` (graph rows are the trained group)
========  ================  =====================================================================

**The scale** :math:`\tilde A = b\,A^t` shares one scalar across groups (:func:`jaxlaws.laws.scaled_method`,
features :math:`F_{ni} = (A^t p_n)_i`): m=2 :math:`L_i^{B+R} = c_i + b F_i` (Huber 0.02; Skill-It least
squares, as the original); m>=3 :math:`L_i^{B+R} - L_i^B = b F_i`.

**A sign the scale hides.** The scale :math:`b` is fitted freely, so a method matrix that points the
wrong way (its update would raise the losses) gets :math:`b > 0` and still scores ``sim = 1``. The table
therefore also reports ``sim_method_sign`` = ``sim(-A^t, A*)``: the matrix with the sign the method itself
uses (:math:`A^t \ge 0` means "training on j lowers L_i", i.e. :math:`b = -1`), which is -1 for a flipped
matrix. ``b > 0`` flags the same problem.

**Flagged fits.** The :math:`A^{t\star}` and scale fits carry their diagnostic ``flags`` (``""`` when
clean; :attr:`jaxlaws.FitResult.flags`), each flagged fit raises a :class:`FlaggedFitWarning` naming its
group and seed, the ``similarity`` row of a seed lists the flags its numbers rest on, and ``averages`` are
over the seeds without flags unless ``include_flagged=True``.

**m=2 diagonalisation.** With two groups only the slope in the own proportion is identifiable:
:math:`(A p)_i = (A_{ii} - A_{ij}) p_i + A_{ij}`, so :math:`\tilde A = b\,\mathrm{diag}(A_{11} - A_{12},
A_{22} - A_{21})` is compared with :math:`\mathrm{diag}(k_1, k_2)` (for DoReMi's diagonal matrix this is
:math:`b\,\mathrm{diag}(e)`, for Skill-It :math:`b\,\mathrm{diag}(L_1^B(G_{11} - G_{21}), L_2^B(G_{22} - G_{12}))`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pandas as pd

from jaxlaws._typing import DTypeLike
from jaxlaws.analysis import _common
from jaxlaws.analysis._common import FlaggedFitWarning  # noqa: F401  (re-exported)
from jaxlaws.analysis.dynamic import dynamic_law, fit_children
from jaxlaws.analysis.export import nested_params
from jaxlaws.analysis.similarity import sim_parts
from jaxlaws.fitting import fit_batched, huber, squared
from jaxlaws.fitting.objectives import Objective
from jaxlaws.laws import scaled_method
from jaxlaws.sweeps.schema import Sweep, SweepError, matrix_stack, proportion_columns

__all__ = ["METHODS", "MATRIX_NAMES", "method_matrix", "two_group_effective", "MethodAnalysis", "method_parameters"]

METHODS = ("aioli", "doge", "doremi", "skillit")
MATRIX_NAMES = {"aioli": "aioli_A", "doge": "doge_M", "doremi": "doremi_excess", "skillit": "skillit_graph"}


def method_matrix(
    method: str,
    stack: np.ndarray,
    *,
    rounds: str | int = "all",
    transpose_doge: bool = False,
    loss_at_break: np.ndarray | None = None,
) -> np.ndarray:
    r""":math:`A^t` of ``method`` from its recorded matrices (table in the module docstring).

    Args:
      method: ``"aioli"``, ``"doge"``, ``"doremi"`` or ``"skillit"``.
      stack: ``(n, m, m)`` the method's recorded matrices.
      rounds: (Aioli only) ``"all"`` or the number of last rounds to average.
      transpose_doge: use :math:`M^\top` for DoGE (the LMO reading) instead of the original's ``M``.
      loss_at_break: (Skill-It only) :math:`L^B`, shape ``(m,)``.

    Returns:
      ``(m, m)`` the matrix :math:`A^t`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    stack = np.asarray(stack, np.float64)
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2] or len(stack) == 0:
        raise ValueError(f"{method}: recorded matrices must be a non-empty (n, m, m) stack, got {stack.shape}")
    if not np.all(np.isfinite(stack)):
        raise ValueError(f"{method}: recorded matrices have missing or non-finite entries")
    if method == "aioli":
        if rounds != "all":
            if not isinstance(rounds, (int, np.integer)) or not 1 <= rounds <= len(stack):
                raise ValueError(f"aioli rounds must be 'all' or an int in 1..{len(stack)}, got {rounds!r}")
            stack = stack[-rounds:]
        return stack.mean(0)
    if method == "doge":
        a = stack.mean(0)
        return a.T if transpose_doge else a
    if method == "doremi":
        return stack.mean(0)
    if loss_at_break is None:
        raise ValueError("skillit: A^t = diag(L^B) G^T needs loss_at_break")
    g = stack[-1]
    return np.diag(np.asarray(loss_at_break, np.float64)) @ g.T


def two_group_effective(a: np.ndarray) -> np.ndarray:
    r""":math:`\mathrm{diag}(A_{11} - A_{12}, A_{22} - A_{21})`: the identifiable own-proportion slopes (m=2).

    Args:
      a: ``(2, 2)`` matrix.

    Returns:
      ``(2, 2)`` diagonal matrix.
    """
    a = np.asarray(a, np.float64)
    if a.shape != (2, 2):
        raise ValueError(f"two_group_effective needs a 2 x 2 matrix, got {a.shape}")
    return np.diag([a[0, 0] - a[0, 1], a[1, 1] - a[1, 0]])


@dataclasses.dataclass(frozen=True)
class MethodAnalysis:
    """Result of :func:`method_parameters` for one method and break step.

    Attributes:
      method, break_step, groups: what was analysed.
      a_star_fits: the per-(group, seed) fits giving :math:`A^{t\\star}` (params, metrics, ``flags``).
      scale_fits: the per-seed scale fit (``b`` and, for m=2, ``c_i``; metrics, ``flags``).
      matrices: long table (seed, matrix in ``A_star``/``A_method``/``A_tilde``, row, col, value).
      similarity: per seed ``cosine``, ``spearman``, ``sim``, ``sim_method_sign``, ``b`` and ``flags`` (the
        flags of the fits the seed's numbers rest on, e.g. ``"A*[arxiv]: negative_r2"``; ``""`` when clean).
      averages: the means (and std, ddof=0) of those over the seeds without flags (all seeds when
        ``include_flagged``).
    """

    method: str
    break_step: int
    groups: tuple[str, ...]
    a_star_fits: pd.DataFrame
    scale_fits: pd.DataFrame
    matrices: pd.DataFrame
    similarity: pd.DataFrame
    averages: pd.DataFrame
    a_star_names: tuple[str, ...]
    scale_names: tuple[str, ...]
    include_flagged: bool = False

    def matrix(self, which: str, seed: int) -> np.ndarray:
        """``"A_star"``, ``"A_method"`` or ``"A_tilde"`` of ``seed`` as an (m, m) array."""
        d = self.matrices[(self.matrices["matrix"] == which) & (self.matrices["seed"] == seed)]
        if d.empty:
            raise ValueError(f"no matrix {which!r} for seed {seed}")
        m = len(self.groups)
        out = np.zeros((m, m))
        out[d["row"].to_numpy(), d["col"].to_numpy()] = d["value"].to_numpy()
        return out

    def to_law_results(self) -> dict[str, dict]:
        """The two original files: ``params_{method}_trajectory_opt_{B}`` ({group: {B: {seed: params}}})
        and ``params_{method}_trajectory_{method}_matrix_{B}`` ({B: {seed: [b, ...]}})."""
        b = self.break_step
        return {
            f"params_{self.method}_trajectory_opt_{b}": nested_params(
                self.a_star_fits, ("group", "break_step", "seed"), self.a_star_names
            ),
            f"params_{self.method}_trajectory_{self.method}_matrix_{b}": nested_params(
                self.scale_fits, ("break_step", "seed"), self.scale_names
            ),
        }


def method_parameters(
    sweep: Sweep,
    method: str,
    break_step: int | None = None,
    *,
    split: str = "val",
    aioli_rounds: Literal["all"] | int | None = None,
    transpose_doge: bool = False,
    objective: Objective | None = None,
    scale_objective: Objective | None = None,
    dtype: DTypeLike = "float64",
    include_flagged: bool = False,
) -> MethodAnalysis:
    r"""Fit :math:`A^{t\star}`, build :math:`A^t`, fit :math:`\tilde A = bA^t` and compute ``sim`` per seed.

    Args:
      sweep: holds ``kind == "method"`` runs of ``method`` (with their matrices) and their children.
      method: ``"aioli"``, ``"doge"``, ``"doremi"`` or ``"skillit"``.
      break_step: B; default the only one present (an error lists them if there are several).
      aioli_rounds: ``"all"`` or the number of last rounds; default as the original (all for m=2, the
        last 4 for m>=3; fewer if fewer were recorded).
      transpose_doge: use :math:`M^\top` for DoGE (the LMO reading) instead of the original's ``M``.
      objective: for the :math:`A^{t\star}` fits (default Huber 0.02).
      scale_objective: for the scale fit (default Huber 0.02; least squares for Skill-It at m=2).
      dtype: precision of the closed-form solves (float64 by default).
      include_flagged: average over every seed, also those whose numbers rest on a flagged fit (default:
        only the unflagged seeds; each flagged fit is named in a warning either way).

    Returns:
      A :class:`MethodAnalysis`: the fits, the matrices and ``sim`` per seed, and their averages.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    groups, m = sweep.groups, sweep.m
    children = _common.child_table(sweep, split, ["method"], method)
    steps = sorted(children["break_step"].unique())
    if break_step is None:
        if len(steps) > 1:
            raise ValueError(f"{method}: children break at several steps {steps}; pass break_step")
        break_step = int(steps[0])
    elif break_step not in steps:
        raise ValueError(f"{method}: no children break at step {break_step}; available {steps}")
    children = children[children["break_step"] == break_step]
    per_seed = children.groupby("seed")["parent"].nunique()
    if (per_seed > 1).any():
        raise SweepError(
            f"{method}: seed {int(per_seed.idxmax())} has several method runs broken at "
            f"{break_step}; analyse one sweep per run"
        )

    # A*: one batched closed-form solve over (group, seed)
    form = "two_group" if m == 2 else "full"
    need = dynamic_law(form, m).n_params
    kids = children.groupby("seed").size()
    if (kids < need).any():  # a clear refusal here, not the fit's point count deep inside the batched solve
        raise SweepError(
            f"{method}: seed {int(kids.idxmin())} has {int(kids.min())} children at step {break_step}, but A*'s "
            f"dynamic law has {need} parameters per group (m={m}); run at least {need} children (better m + 2)"
        )
    star_law, star = fit_children(
        children, groups, form, ["break_step", "seed"], objective, dtype, what=f"{method}: A* fit"
    )
    seeds = sorted(int(s) for s in children["seed"].unique())

    # A^t per seed, then the scale fit over all seeds in one batched call
    if aioli_rounds is None:
        aioli_rounds = "all" if m == 2 else 4
    pcols = proportion_columns(groups)
    name = MATRIX_NAMES[method]
    a_method, feats, targets = {}, [], []
    for s in seeds:
        d = children[children["seed"] == s]
        run = d["parent"].iloc[0]
        stack = matrix_stack(sweep.matrices, run, s, name, m)
        steps_rec = sweep.matrices.loc[
            (sweep.matrices["run"] == run) & (sweep.matrices["seed"] == s) & (sweep.matrices["name"] == name)
        ]
        keep = np.sort(steps_rec.drop_duplicates(["step", "index"])["step"].to_numpy()) <= break_step
        if not keep.any():
            raise SweepError(
                f"{method} run {run!r} seed {s}: no {name!r} matrix recorded at or before step {break_step}"
            )
        rounds = aioli_rounds
        if method == "aioli" and rounds != "all":
            rounds = min(int(rounds), int(keep.sum()))
        lb = d[[f"LB_{g}" for g in groups]].iloc[0].to_numpy()
        a = method_matrix(method, stack[keep], rounds=rounds, transpose_doge=transpose_doge, loss_at_break=lb)
        a_method[s] = a
        p = d[pcols].to_numpy()
        after = d[[f"L_{g}" for g in groups]].to_numpy()
        feats.append(p @ a.T)
        targets.append(after if m == 2 else after - d[[f"LB_{g}" for g in groups]].to_numpy())
    scale_law = scaled_method(m, m == 2)
    if scale_objective is None:
        scale_objective = squared() if (method == "skillit" and m == 2) else huber(0.02)

    def fit(idx, X, Y):
        res = fit_batched(scale_law, X, Y, objective=scale_objective, dtype=dtype)
        return res.params, _common.fit_fields(res, scale_law, res.params, X, Y)

    scale_keys = [{"break_step": break_step, "seed": s} for s in seeds]
    scale_params, fields = _common.bucketed(list(zip(feats, targets)), fit, scale_keys, f"{method}: scale fit")
    scale = _common.param_frame(scale_keys, scale_law.param_names, scale_params, fields)
    _common.warn_flagged(star, f"method {method}: A* fit ({star_law.name})", star_law.param_names, include_flagged)
    _common.warn_flagged(
        scale, f"method {method}: scale fit ({scale_law.name}, all groups)", scale_law.param_names, include_flagged
    )

    # matrices and similarity per seed
    mats, sims = [], []
    for j, s in enumerate(seeds):
        rows = star[star["seed"] == s].set_index("group").loc[list(groups)]
        a_star = np.diag(rows["k"].to_numpy()) if m == 2 else rows[list(star_law.param_names)].to_numpy()
        b = float(scale_params[j, 0])
        a_tilde = b * (two_group_effective(a_method[s]) if m == 2 else a_method[s])
        for label, a in (("A_star", a_star), ("A_method", a_method[s]), ("A_tilde", a_tilde)):
            r, c = np.indices(a.shape)
            mats.append(
                pd.DataFrame({"seed": s, "matrix": label, "row": r.ravel(), "col": c.ravel(), "value": a.ravel()})
            )
        own = -(two_group_effective(a_method[s]) if m == 2 else a_method[s])
        rests_on = [f"A*[{g}]: {f}" for g, f in zip(rows.index, rows["flags"]) if f]
        if scale["flags"].iloc[j]:
            rests_on.append(f"scale: {scale['flags'].iloc[j]}")
        sims.append(
            {
                "seed": s,
                "b": b,
                **sim_parts(a_tilde, a_star),
                "sim_method_sign": sim_parts(own, a_star)["sim"],
                "flags": "; ".join(rests_on),
            }
        )
    similarity = pd.DataFrame(sims)
    cols = ["cosine", "spearman", "sim", "sim_method_sign", "b"]
    used = similarity if include_flagged else similarity[similarity["flags"] == ""]
    averages = pd.DataFrame({"mean": used[cols].mean(), "std": used[cols].std(ddof=0)}).T
    return MethodAnalysis(
        method,
        int(break_step),
        groups,
        star,
        scale,
        pd.concat(mats, ignore_index=True),
        similarity,
        averages,
        star_law.param_names,
        scale_law.param_names,
        include_flagged,
    )
