"""Helpers shared by the analyses: selecting sweep rows, batching problems, predictions and metrics."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd

from jaxlaws.analysis.metrics import batched_metrics
from jaxlaws.fitting.validate import FitInputError
from jaxlaws.laws.base import Law
from jaxlaws.sweeps.schema import Sweep, SweepError, proportion_columns

METRIC_COLUMNS = ("objective", "mse", "r2", "r2_swapped_as_original", "n_points", "converged", "flags")


class FlaggedFitWarning(UserWarning):
    """A fit of an analysis carries diagnostic flags (see :attr:`jaxlaws.FitResult.flags`); the message names
    the fit (group, seed and the other keys) and its flags."""


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, (numbers.Number, np.generic)) and hasattr(v, "item"):
        v = v.item()
    return str(v)


def describe(key: dict) -> str:
    """``group 'arxiv', seed 1 (step 5000)``: a fit's keys, group and seed first."""
    head = [f"{k} {_fmt(key[k])}" for k in ("group", "seed") if k in key]
    rest = [f"{k} {_fmt(v)}" for k, v in key.items() if k not in ("group", "seed")]
    return ", ".join(head) + (f" ({', '.join(rest)})" if rest else "")


def key_columns(df: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """The columns of a params table that identify a fit (neither parameters nor metrics)."""
    return [c for c in df.columns if c not in set(names) and c not in METRIC_COLUMNS]


def flagged_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a params table whose ``flags`` are not empty."""
    if "flags" not in df:
        return df.iloc[:0]
    return df[df["flags"].astype(str) != ""]


def warn_flagged(df: pd.DataFrame, what: str, names: Sequence[str], include_flagged: bool, stacklevel: int = 3) -> None:
    """One :class:`FlaggedFitWarning` per flagged fit of ``df``, naming its group, seed and other keys."""
    keys = key_columns(df, names)
    fate = (
        "kept in means and optima (include_flagged=True)"
        if include_flagged
        else "excluded from means and optima (include_flagged=True keeps it)"
    )
    for _, row in flagged_rows(df).iterrows():
        warnings.warn(
            f"{what}: flagged fit for {describe({k: row[k] for k in keys})}: {row['flags']}; {fate}",
            FlaggedFitWarning,
            stacklevel=stacklevel,
        )


def wide_losses(sweep: Sweep, kinds: Sequence[str], split: str) -> pd.DataFrame:
    """One row per (run, seed, step) of the given kinds: the run's metadata, ``p_<g>`` and ``L_<g>``."""
    df = sweep.losses
    df = df[df["kind"].isin(kinds) & (df["split"] == split)]
    if df.empty:
        raise SweepError(f"the sweep has no {'/'.join(kinds)} runs with {split!r} losses")
    meta = ["run", "seed", "step", "kind", "parent", "break_step", "steps_run", "method"]
    pcols = proportion_columns(sweep.groups)
    wide = df.pivot_table(index=meta + pcols, columns="group", values="loss", sort=True).reset_index()
    wide = wide.rename(columns={g: f"L_{g}" for g in sweep.groups})
    wide.columns.name = None
    return wide


def bucketed(
    problems: list[tuple[np.ndarray, np.ndarray]],
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, dict]],
    keys: Sequence[dict] | None = None,
    what: str = "fit",
) -> tuple[np.ndarray, list[dict]]:
    """Fit problems ``(x_i, y_i)`` in as few batched calls as possible (one per distinct point count).

    ``fit(idx, X (B, n, d), Y (B, n[, k])) -> (params (B, P), fields)`` where ``fields`` maps names to (B,)
    arrays; returns params (N, P) in the input order and one dict of fields per problem. With ``keys`` (one
    dict per problem) data a fit refuses is reported with the problem's group, seed and other keys.
    """
    sizes: dict[int, list[int]] = {}
    for i, (x, _) in enumerate(problems):
        sizes.setdefault(len(x), []).append(i)
    params: list = [None] * len(problems)
    rows: list = [None] * len(problems)
    for idx in sizes.values():
        X = np.stack([problems[i][0] for i in idx])
        Y = np.stack([problems[i][1] for i in idx])
        try:
            p, fields = fit(np.asarray(idx), X, Y)
        except FitInputError as e:
            if keys is None or e.problem is None:
                raise
            raise FitInputError(f"{what} of {describe(keys[idx[e.problem]])}: {e.detail}") from None
        for j, i in enumerate(idx):
            params[i] = np.asarray(p[j], np.float64)
            rows[i] = {k: v[j] for k, v in fields.items()}
    return np.stack(params), rows


def predict_batched(law: Law, params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``law.predict`` over a batch in float64: params (B, P), x (B, n, d) -> (B, n[, k])."""
    with jax.enable_x64(True):
        return np.asarray(jax.vmap(law.predict)(np.asarray(params, np.float64), np.asarray(x, np.float64)))


def fit_fields(res, law: Law, params: np.ndarray, X: np.ndarray, Y: np.ndarray) -> dict:
    """Per-problem metrics of a batched fit: the engine's objective/convergence plus MSE, R^2 (correct and
    the m=2 notebooks' swapped one), computed from float64 predictions over all output entries."""
    pred = predict_batched(law, params, X)
    B = len(params)
    met = batched_metrics(Y.reshape(B, -1), pred.reshape(B, -1))
    return {
        "objective": np.asarray(res.objective),
        "mse": met["mse"],
        "r2": met["r2"],
        "r2_swapped_as_original": met["r2_swapped_as_original"],
        "n_points": np.full(B, X.shape[1]),
        "converged": np.asarray(res.converged),
        "flags": np.array([",".join(f) for f in res.flags], dtype=object),
    }


def param_frame(keys: list[dict], names: Sequence[str], params: np.ndarray, fields: list[dict]) -> pd.DataFrame:
    """Tidy table: key columns, one column per parameter name, then the metric columns."""
    df = pd.DataFrame(keys)
    for j, n in enumerate(names):
        df[n] = params[:, j]
    met = pd.DataFrame(fields)
    return pd.concat([df.reset_index(drop=True), met.reset_index(drop=True)], axis=1)


def summary(df: pd.DataFrame, by: Sequence[str] = (), include_flagged: bool = False) -> pd.DataFrame:
    """Mean and std (ddof=0, as the notebooks' ``np.std``) of MSE and both R^2 over the fits.

    Flagged fits (non-empty ``flags``) are left out unless ``include_flagged``; ``n_fits`` counts the fits
    in the means, ``n_flagged`` the flagged ones (left out or not).
    """
    cols = [c for c in ("mse", "r2", "r2_swapped_as_original") if c in df]
    flagged = (df["flags"].astype(str) != "") if "flags" in df else pd.Series(False, index=df.index)
    used = df if include_flagged else df[~flagged]
    if by:
        g = used.groupby(list(by))[cols]
        out = g.mean().add_suffix("_mean").join(g.std(ddof=0).add_suffix("_std"))
        out["n_fits"] = g.size()
        every = df.assign(_flagged=flagged).groupby(list(by))["_flagged"].sum().rename("n_flagged")
        out = out.join(every, how="outer")
        out["n_fits"] = out["n_fits"].fillna(0).astype(int)
        out["n_flagged"] = out["n_flagged"].astype(int)
        return out.reset_index()
    out = {f"{c}_mean": [used[c].mean()] for c in cols}
    out.update({f"{c}_std": [used[c].std(ddof=0)] for c in cols})
    out["n_fits"] = [len(used)]
    out["n_flagged"] = [int(flagged.sum())]
    return pd.DataFrame(out)


def pick_step(available: np.ndarray, step: int | None, what: str) -> int:
    """The requested step (must exist) or, by default, the largest one."""
    available = np.unique(available)
    if step is None:
        return int(available.max())
    if step not in available:
        raise ValueError(f"{what}: no losses at step {step}; available steps {available.tolist()}")
    return int(step)


def child_table(sweep: Sweep, split: str, parent_kinds: Sequence[str], method: str | None = None) -> pd.DataFrame:
    """One row per (child run, seed): its mixture ``p_<g>``, its loss ``L_<g>`` at its last step (B+R), the
    parent's loss ``LB_<g>`` at the break step B and the parent's mixture ``parent_p_<g>`` there.

    Children are ``kind == "child"`` runs whose parent (same seed) has a kind in ``parent_kinds``; with
    ``method`` only that method's children. Raises :class:`SweepError` naming a child whose parent or
    break-step loss is missing.

    Args:
      sweep: the sweep.
      split: the loss split.
      parent_kinds: the kinds a child's parent may have (e.g. ``("parent",)`` or ``("method",)``).
      method: only this method's children.

    Returns:
      A DataFrame, one row per (child run, seed).
    """
    wide = wide_losses(sweep, ["child", *parent_kinds], split)
    groups = sweep.groups
    kids = wide[wide["kind"] == "child"]
    if method is not None:
        kids = kids[kids["method"] == method]
    parents = wide[wide["kind"].isin(parent_kinds)]
    kids = kids[kids["parent"].isin(parents["run"])]
    if kids.empty:
        raise SweepError(
            f"the sweep has no child runs of {'/'.join(parent_kinds)} runs"
            + (f" of method {method!r}" if method else "")
            + f" with {split!r} losses"
        )
    last = kids.loc[kids.groupby(["run", "seed"])["step"].idxmax()]
    pcols = proportion_columns(groups)
    par = parents[["run", "seed", "step"] + pcols + [f"L_{g}" for g in groups]].rename(
        columns={
            "run": "parent",
            "step": "break_step",
            **{f"L_{g}": f"LB_{g}" for g in groups},
            **{c: f"parent_{c}" for c in pcols},
        }
    )
    out = last.merge(par, on=["parent", "seed", "break_step"], how="left", validate="many_to_one")
    miss = out[f"LB_{groups[0]}"].isna()
    if miss.any():
        r = out.loc[miss].iloc[0]
        raise SweepError(
            f"child run {r['run']!r} (seed {r['seed']}): its parent {r['parent']!r} has no "
            f"{split!r} loss at the break step {r['break_step']}"
        )
    return out.sort_values(["parent", "seed", "run"], kind="stable").reset_index(drop=True)
