"""Everything a sweep supports, in one call: static fits and optimum, dynamic fits, each method's analysis."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pandas as pd

from jaxlaws.analysis import _common
from jaxlaws.analysis.dynamic import fit_dynamic
from jaxlaws.analysis.export import write_csv, write_json
from jaxlaws.analysis.influence import sweep_influence
from jaxlaws.analysis.methods import METHODS, MethodAnalysis, method_parameters
from jaxlaws.analysis.optimum import optimum_table
from jaxlaws.analysis.static import LawFits, fit_static
from jaxlaws.analysis.uncertainty import StaticBootstrap, bootstrap_static
from jaxlaws.sweeps.schema import Sweep, proportion_columns

__all__ = ["FLAGGED_COLUMNS", "Analysis", "analyse"]

FLAGGED_COLUMNS = ("table", "group", "seed", "flags")


@dataclasses.dataclass
class Analysis:
    """All results of :func:`analyse`; any part the sweep does not support is ``None`` / empty.

    Attributes:
      static: the static law fits (:class:`LawFits`).
      optimum: the predicted optimal mixture per seed (:func:`~jaxlaws.analysis.optimum_table`).
      dynamic: ``{form: LawFits}`` of the dynamic laws.
      methods: ``{method: MethodAnalysis}``.
      include_flagged: whether flagged fits were kept in means and the optimum (:meth:`flagged` lists them
        either way).
      bootstrap: the static bootstrap intervals (with ``analyse(..., bootstrap=N)``).
      influence: :func:`~jaxlaws.analysis.influence.sweep_influence`'s table, each static run's influence on the
        optimum (with ``analyse(..., influence=True)``).
    """

    static: LawFits | None = None
    optimum: pd.DataFrame | None = None
    dynamic: dict[str, LawFits] = dataclasses.field(default_factory=dict)
    methods: dict[str, MethodAnalysis] = dataclasses.field(default_factory=dict)
    include_flagged: bool = False
    bootstrap: StaticBootstrap | None = None
    influence: pd.DataFrame | None = None

    def flagged(self) -> pd.DataFrame:
        """Every flagged fit of the analysis, one row each: ``table`` (the name :meth:`tables` gives its
        params table), ``group`` (``"*"`` for a method's scale fit, which spans all groups), ``seed``,
        ``flags`` (comma-separated), then the table's other key columns (``step``, ``break_step``,
        ``parent``, ...; empty where a table has no such key). Empty (with those first four columns) when no
        fit is flagged."""
        parts = []

        def add(table: str, df: pd.DataFrame, names) -> None:
            bad = _common.flagged_rows(df)
            if bad.empty:
                return
            keys = _common.key_columns(df, names)
            out = bad[keys + ["flags"]].copy()
            if "group" not in out:
                out["group"] = "*"
            out.insert(0, "table", table)
            parts.append(out)

        if self.static is not None:
            add("static_params", self.static.params, self.static.param_names)
        for form, fits in self.dynamic.items():
            add(f"dynamic_{form}_params", fits.params, fits.param_names)
        for name, ma in self.methods.items():
            add(f"{name}_a_star_fits", ma.a_star_fits, ma.a_star_names)
            add(f"{name}_scale_fits", ma.scale_fits, ma.scale_names)
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in FLAGGED_COLUMNS})
        out = pd.concat(parts, ignore_index=True)
        rest = [c for c in out.columns if c not in FLAGGED_COLUMNS]
        return out[list(FLAGGED_COLUMNS) + rest]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by a file-friendly name."""
        out: dict[str, pd.DataFrame] = {}
        if self.static is not None:
            out["static_params"], out["static_summary"] = self.static.params, self.static.summary
        if self.optimum is not None:
            out["static_optimum"] = self.optimum
        if self.influence is not None:
            out["static_influence"] = self.influence
        if self.bootstrap is not None:
            out["static_params_ci"], out["static_optimum_ci"] = self.bootstrap.params, self.bootstrap.optimum
        for form, fits in self.dynamic.items():
            out[f"dynamic_{form}_params"], out[f"dynamic_{form}_summary"] = fits.params, fits.summary
        for name, ma in self.methods.items():
            out[f"{name}_a_star_fits"], out[f"{name}_scale_fits"] = ma.a_star_fits, ma.scale_fits
            out[f"{name}_similarity"], out[f"{name}_matrices"] = ma.similarity, ma.matrices
        return out

    def export(self, out_dir: str | Path) -> list[Path]:
        """Write every table as CSV and the fitted parameters as law_results-style JSON under ``out_dir``, each
        file atomically (a reader never sees half a file). For the whole folder at once, with stale files
        of an earlier export removed, use ``jaxlaws.analysis.export.export_atomically(out_dir, res.export)``
        (what ``jaxlaws analyse --out`` does)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, df in self.tables().items():
            written.append(write_csv(df, out_dir / f"{name}.csv"))
        if self.static is not None:
            written.append(write_json(self.static.to_law_results(), out_dir / "params_static.json"))
        for form, fits in self.dynamic.items():
            suffix = {"two_group": "", "linear": "", "log_ratio": "_log"}.get(form, f"_{form}")
            for seed in sorted(fits.params["seed"].unique()):
                name = f"params{suffix}_dynamic" + ("" if fits.params["seed"].nunique() == 1 else f"_seed_{seed}")
                written.append(write_json(fits.to_law_results(seed=seed), out_dir / f"{name}.json"))
        for ma in self.methods.values():
            for name, obj in ma.to_law_results().items():
                written.append(write_json(obj, out_dir / f"{name}.json"))
        return written


def analyse(
    sweep: Sweep,
    *,
    split: str = "val",
    static_step: int | None = None,
    dynamic_forms: tuple[str, ...] | None = None,
    methods: tuple[str, ...] | None = None,
    n_random: int = 30,
    seed: int = 0,
    include_flagged: bool = False,
    bootstrap: int = 0,
    level: float = 0.9,
    influence: bool = False,
) -> Analysis:
    """Run every analysis the sweep's runs support.

    * static runs: :func:`fit_static` at ``static_step`` (default last) and the predicted optimum; with
      ``bootstrap=N`` also percentile intervals at ``level`` for the static parameters and the predicted
      optimum from ``N`` paired resamples of the runs per seed (:func:`~jaxlaws.analysis.bootstrap_static`);
      with ``influence=True`` also each run's influence on the predicted optimum (the derivatives of the
      optimum w.r.t. the run's losses and weight, by implicit differentiation through the refit;
      :func:`~jaxlaws.analysis.influence.sweep_influence`);
    * parent/child runs: :func:`fit_dynamic` for each of ``dynamic_forms`` (default: ``two_group`` for
      m=2, ``linear`` and ``full`` for m>=3);
    * method runs with children: :func:`method_parameters` for each method whose runs have break-step
      children (or ``methods``).

    Every fit carries diagnostic ``flags`` (a column of each params table); each flagged fit raises a
    :class:`~jaxlaws.analysis.FlaggedFitWarning` naming its group and seed. Unless ``include_flagged``,
    flagged fits are left out of the summaries and method averages, and a seed with a flagged static fit
    gets no optimum (the optimum table is empty when every seed has one). :meth:`Analysis.flagged` lists
    them.

    Args:
      sweep: the :class:`~jaxlaws.sweeps.Sweep` to analyse.
      split: the loss split the laws are fitted to (``"val"`` by default).
      static_step: the step of the static runs' losses; default their last.
      dynamic_forms: the dynamic law forms to fit (:data:`~jaxlaws.analysis.DYNAMIC_FORMS`); default by ``m``.
      methods: the methods to analyse; default every method with break-step children.
      n_random: random ``t`` draws per grid point of the static law's init grid.
      seed: seeds the random init draws (and the bootstrap's draws).
      include_flagged: keep flagged fits in the means and the optimum.
      bootstrap: the number of bootstrap resamples per seed (0: none).
      level: the bootstrap intervals' level.
      influence: also compute each static run's influence on the predicted optimum.

    Returns:
      An :class:`Analysis`; the parts the sweep does not support are ``None`` / empty.
    """
    kinds = set(sweep.losses["kind"].unique())
    result = Analysis(include_flagged=include_flagged)
    if "static" in kinds:
        result.static = fit_static(
            sweep, static_step, split=split, seed=seed, n_random=n_random, include_flagged=include_flagged
        )
        result.optimum = _optimum(
            result.static, sweep.groups, "two_group" if sweep.m == 2 else "log_linear", include_flagged
        )
        if influence:
            try:
                result.influence = sweep_influence(sweep, result.static, split=split, include_flagged=include_flagged)
            except ValueError as e:  # the influence is an extra: it must not cost the user the analysis
                warnings.warn(f"no influence table: {e}", stacklevel=2)
        if bootstrap:
            result.bootstrap = bootstrap_static(sweep, result.static, bootstrap, level=level, seed=seed, split=split)
    if "parent" in kinds:
        forms = dynamic_forms or (("two_group",) if sweep.m == 2 else ("linear", "full"))
        result.dynamic = {f: fit_dynamic(sweep, f, split=split, include_flagged=include_flagged) for f in forms}
    if "method" in kinds:
        # a method is analysed where it has break-step children (a method run alone has no A^{t*} to fit)
        kids = sweep.losses[sweep.losses["kind"] == "child"]
        present = [mth for mth in METHODS if mth in set(kids["method"])]
        for mth in methods or present:
            result.methods[mth] = method_parameters(sweep, mth, split=split, include_flagged=include_flagged)
    return result


def _optimum(fits: LawFits, groups: tuple[str, ...], form: str, include_flagged: bool) -> pd.DataFrame:
    """:func:`optimum_table` of the static fits, from the unflagged ones unless ``include_flagged``; a
    ``flags`` column names the flagged fits a row rests on (``group: flags; ...``)."""
    df = fits.params
    flagged = df["flags"] != ""
    use = df if include_flagged else df[~flagged]
    params = {
        g: {int(r["seed"]): r[list(fits.param_names)].to_numpy(float) for _, r in d.iterrows()}
        for g, d in use.groupby("group")
    }
    notes = {
        int(s): "; ".join(f"{r['group']}: {r['flags']}" for _, r in d.iterrows())
        for s, d in df[flagged].groupby("seed")
    }
    seeds = set.intersection(*(set(params.get(g, {})) for g in groups))
    if not seeds:
        warnings.warn(
            "no optimal mixture: every seed has a flagged static fit (analyse(..., "
            "include_flagged=True) computes it anyway)",
            _common.FlaggedFitWarning,
            stacklevel=3,
        )
        cols = ["seed", *proportion_columns(groups), "total_loss", "uniform_loss"]
        if form == "two_group":
            cols += ["p1_closed_form_raw", "p1_closed_form", "clipped"]
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols + ["flags"]})
    table = optimum_table(params, groups, form)
    per_seed = [notes.get(s, "") if s != "mean" else "" for s in table["seed"]]
    if include_flagged and any(per_seed):
        per_seed[-1] = "mean over seeds with flagged fits"
    table["flags"] = per_seed
    return table
