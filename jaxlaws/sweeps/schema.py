"""The tidy sweep representation shared by the trainer, the loaders and the analyses.

A sweep is two pandas DataFrames plus the ordered group names (:class:`Sweep`).

``losses`` -- one row per (run, seed, step, split, group):

=============  =======  ==========================================================================
column         dtype    meaning
=============  =======  ==========================================================================
run            str      run identifier (a configuration; several seeds share one run id)
seed           int64    training seed
step           int64    optimisation steps completed when the loss was measured
split          str      ``"val"`` or ``"test"``
group          str      data group whose loss this is
loss           float64  mean per-token cross-entropy on that group's split
kind           str      ``"static"``, ``"parent"``, ``"child"`` or ``"method"``
parent         str      for a child: the parent's run id (same seed); otherwise ``""``
break_step     int64    for a parent or child: the break step B; otherwise -1
steps_run      int64    for a child: steps trained after the break (R); otherwise -1
method         str      for a method run (or a child of one): the method name; otherwise ``""``
p_<group>      float64  one column per group: the mixture in force when this row's step was reached
                        (a static/parent/child run's own mixture; a method run's current mixture)
=============  =======  ==========================================================================

``matrices`` -- method-internal matrices, long form, one row per entry:

=============  =======  ==========================================================================
run, seed      str/int  the method run they belong to
step           int64    step at which the matrix was recorded
name           str      ``"aioli_A"``, ``"doge_M"``, ``"doremi_excess"``, ``"skillit_graph"``, ...
index          int64    position within a stack recorded at one step (round / sub-step), else 0
row, col       int64    matrix entry (row i, column j), 0-based in ``groups`` order
value          float64  the entry
=============  =======  ==========================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "KINDS",
    "SPLITS",
    "LOSS_BASE_COLUMNS",
    "MATRIX_COLUMNS",
    "SIMPLEX_ATOL",
    "SweepError",
    "proportion_column",
    "proportion_columns",
    "Sweep",
    "empty_matrices",
    "validate_losses",
    "validate_matrices",
    "matrix_stack",
]

KINDS = ("static", "parent", "child", "method")
SPLITS = ("val", "test")
LOSS_BASE_COLUMNS = (
    "run",
    "seed",
    "step",
    "split",
    "group",
    "loss",
    "kind",
    "parent",
    "break_step",
    "steps_run",
    "method",
)
MATRIX_COLUMNS = ("run", "seed", "step", "name", "index", "row", "col", "value")
_INT_COLUMNS = ("seed", "step", "break_step", "steps_run")
_STR_COLUMNS = ("run", "split", "group", "kind", "parent", "method")
SIMPLEX_ATOL = 1e-4


class SweepError(ValueError):
    """Raised for sweep data that is malformed; the message names the offending run or file."""


def proportion_column(group: str) -> str:
    """The name of ``group``'s mixture column in a losses table, ``p_<group>``.

    Args:
      group: a group name.

    Returns:
      The column name.
    """
    return f"p_{group}"


def proportion_columns(groups: Sequence[str]) -> list[str]:
    """The mixture columns of ``groups``, in order (:func:`proportion_column` of each).

    Args:
      groups: group names.

    Returns:
      The column names.
    """
    return [proportion_column(g) for g in groups]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Validated sweep results (the schema is in the module docstring).

    Attributes:
      losses: one row per (run, seed, step, split, group), with the runs' kinds and mixtures.
      groups: the group names, in order (the order of every mixture and matrix).
      matrices: the method-internal matrices, long form (empty when there are none).
    """

    losses: pd.DataFrame
    groups: tuple[str, ...]
    matrices: pd.DataFrame = dataclasses.field(default_factory=lambda: empty_matrices())

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "losses", validate_losses(self.losses, self.groups))
        object.__setattr__(self, "matrices", validate_matrices(self.matrices, len(self.groups)))

    @property
    def m(self) -> int:
        return len(self.groups)

    def runs(self) -> pd.DataFrame:
        """One row per (run, seed) with its kind, parent, break step, method and (first) mixture."""
        cols = ["run", "seed", "kind", "parent", "break_step", "steps_run", "method"]
        cols += proportion_columns(self.groups)
        df = self.losses.sort_values(["run", "seed", "step"])
        return df.drop_duplicates(["run", "seed"])[cols].reset_index(drop=True)


def empty_matrices() -> pd.DataFrame:
    """An empty matrices table with the schema's columns and dtypes."""
    return pd.DataFrame(
        {
            c: pd.Series(
                dtype="int64" if c in ("seed", "step", "index", "row", "col") else "float64" if c == "value" else "str"
            )
            for c in MATRIX_COLUMNS
        }
    )


def validate_losses(df: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """Check ``df`` against the losses schema and return a copy with canonical dtypes and order.

    Raises :class:`SweepError` naming the run for: missing columns, unknown kinds/splits/groups, NaN or
    infinite losses, duplicate rows, proportions outside [0, 1] or not summing to 1, and a run that lacks
    a group at some (seed, step, split).

    Args:
      df: a losses table.
      groups: the sweep's groups, in order.

    Returns:
      A validated copy of ``df`` with canonical dtypes and column order.
    """
    groups = tuple(groups)
    if len(groups) < 2:
        raise SweepError(f"a sweep needs at least 2 groups, got {list(groups)}")
    if len(set(groups)) != len(groups):
        raise SweepError(f"duplicate group names: {list(groups)}")
    pcols = proportion_columns(groups)
    missing = [c for c in (*LOSS_BASE_COLUMNS, *pcols) if c not in df.columns]
    if missing:
        raise SweepError(f"losses table lacks columns {missing}")
    out = df[list(LOSS_BASE_COLUMNS) + pcols].copy()
    for c in _STR_COLUMNS:
        out[c] = out[c].fillna("").astype(str)
    for c in _INT_COLUMNS:
        if out[c].isna().any():
            bad = out.loc[out[c].isna(), "run"].iloc[0]
            raise SweepError(f"run {bad!r}: column {c!r} is missing a value")
        out[c] = out[c].astype("int64")
    for c in ("loss", *pcols):
        out[c] = pd.to_numeric(out[c], errors="raise").astype("float64")

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            row = out.loc[mask].iloc[0]
            raise SweepError(
                f"run {row['run']!r} (seed {row['seed']}, step {row['step']}): {what} [{int(mask.sum())} row(s)]"
            )

    fail(~out["kind"].isin(KINDS), f"kind must be one of {KINDS}")
    fail(~out["split"].isin(SPLITS), f"split must be one of {SPLITS}")
    fail(~out["group"].isin(groups), f"group not in the sweep's groups {list(groups)}")
    fail(~np.isfinite(out["loss"].to_numpy()), "loss is NaN or infinite")
    fail(out["step"] < 0, "negative step")
    p = out[pcols].to_numpy()
    fail(pd.Series(~np.isfinite(p).all(axis=1), index=out.index), "proportion is NaN or infinite")
    fail(
        pd.Series(((p < -SIMPLEX_ATOL) | (p > 1 + SIMPLEX_ATOL)).any(axis=1), index=out.index),
        "proportion outside [0, 1]",
    )
    fail(pd.Series(np.abs(p.sum(axis=1) - 1) > SIMPLEX_ATOL, index=out.index), "proportions do not sum to 1")
    fail((out["kind"] == "child") & (out["parent"] == ""), "a child run needs its parent's run id")
    fail((out["kind"].isin(("parent", "child"))) & (out["break_step"] < 0), "a parent or child run needs a break step")
    key = ["run", "seed", "step", "split", "group"]
    fail(out.duplicated(key, keep=False), "duplicate (run, seed, step, split, group) row")
    counts = out.groupby(["run", "seed", "step", "split"], sort=False)["group"].transform("size")
    fail(counts != len(groups), f"not every group of {list(groups)} has a loss")
    return out.sort_values(key, kind="stable").reset_index(drop=True)


def validate_matrices(df: pd.DataFrame, m: int) -> pd.DataFrame:
    """Check the method-matrix table (schema above); entries must be finite and inside an m x m matrix.

    Args:
      df: a matrices table.
      m: the number of groups.

    Returns:
      A validated copy of ``df`` with canonical dtypes and column order.
    """
    missing = [c for c in MATRIX_COLUMNS if c not in df.columns]
    if missing:
        raise SweepError(f"matrices table lacks columns {missing}")
    out = df[list(MATRIX_COLUMNS)].copy()
    for c in ("run", "name"):
        out[c] = out[c].fillna("").astype(str)
    for c in ("seed", "step", "index", "row", "col"):
        out[c] = out[c].astype("int64")
    out["value"] = out["value"].astype("float64")
    if len(out):
        bad = (
            ~np.isfinite(out["value"].to_numpy())
            | ~out["row"].between(0, m - 1).to_numpy()
            | ~out["col"].between(0, m - 1).to_numpy()
        )
        if bad.any():
            row = out.loc[bad].iloc[0]
            raise SweepError(
                f"run {row['run']!r}: matrix {row['name']!r} has a non-finite or "
                f"out-of-range entry ({row['row']}, {row['col']})"
            )
        key = ["run", "seed", "step", "name", "index", "row", "col"]
        if out.duplicated(key).any():
            row = out.loc[out.duplicated(key)].iloc[0]
            raise SweepError(f"run {row['run']!r}: duplicate entry in matrix {row['name']!r}")
        out = out.sort_values(key, kind="stable")
    return out.reset_index(drop=True)


def matrix_stack(matrices: pd.DataFrame, run: str, seed: int, name: str, m: int, step: int | None = None) -> np.ndarray:
    """The matrices ``name`` recorded by one method run and seed, stacked.

    Args:
      matrices: a sweep's matrices table.
      run, seed: the method run.
      name: the matrix name (e.g. ``"aioli_A"``).
      m: the number of groups.
      step: only the matrices recorded at this step (default all).

    Returns:
      ``(n, m, m)`` the matrices, ordered by (step, index).
    """
    sel = matrices[(matrices["run"] == run) & (matrices["seed"] == seed) & (matrices["name"] == name)]
    if step is not None:
        sel = sel[sel["step"] == step]
    if sel.empty:
        raise SweepError(
            f"run {run!r} seed {seed}: no matrix {name!r}" + (f" at step {step}" if step is not None else "")
        )
    out = []
    for _, g in sel.groupby(["step", "index"], sort=True):
        a = np.full((m, m), np.nan)
        a[g["row"].to_numpy(), g["col"].to_numpy()] = g["value"].to_numpy()
        out.append(a)
    return np.stack(out)
