"""Everything a sweep supports, in one call: static fits and optimum, dynamic fits, each method's analysis."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import pandas as pd

from jaxlaws.analysis.dynamic import fit_dynamic
from jaxlaws.analysis.export import write_json
from jaxlaws.analysis.methods import METHODS, MethodAnalysis, method_parameters
from jaxlaws.analysis.optimum import optimum_table
from jaxlaws.analysis.static import LawFits, fit_static
from jaxlaws.sweeps.schema import Sweep


@dataclasses.dataclass
class Analysis:
    """All results of :func:`analyse`; any part the sweep does not support is ``None`` / empty."""

    static: Optional[LawFits] = None
    optimum: Optional[pd.DataFrame] = None
    dynamic: dict[str, LawFits] = dataclasses.field(default_factory=dict)
    methods: dict[str, MethodAnalysis] = dataclasses.field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by a file-friendly name."""
        out: dict[str, pd.DataFrame] = {}
        if self.static is not None:
            out["static_params"], out["static_summary"] = self.static.params, self.static.summary
        if self.optimum is not None:
            out["static_optimum"] = self.optimum
        for form, fits in self.dynamic.items():
            out[f"dynamic_{form}_params"], out[f"dynamic_{form}_summary"] = fits.params, fits.summary
        for name, ma in self.methods.items():
            out[f"{name}_a_star_fits"], out[f"{name}_scale_fits"] = ma.a_star_fits, ma.scale_fits
            out[f"{name}_similarity"], out[f"{name}_matrices"] = ma.similarity, ma.matrices
        return out

    def export(self, out_dir: str | Path) -> list[Path]:
        """Write every table as CSV and the fitted parameters as law_results-style JSON under ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, df in self.tables().items():
            path = out_dir / f"{name}.csv"
            df.to_csv(path, index=False, float_format="%.17g")
            written.append(path)
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


def analyse(sweep: Sweep, *, split: str = "val", static_step: Optional[int] = None,
            dynamic_forms: Optional[tuple[str, ...]] = None, methods: Optional[tuple[str, ...]] = None,
            n_random: int = 30, seed: int = 0) -> Analysis:
    """Run every analysis the sweep's runs support.

    * static runs: :func:`fit_static` at ``static_step`` (default last) and the predicted optimum;
    * parent/child runs: :func:`fit_dynamic` for each of ``dynamic_forms`` (default: ``two_group`` for
      m=2, ``linear`` and ``full`` for m>=3);
    * method runs with children: :func:`method_parameters` for each method whose runs have break-step
      children (or ``methods``).
    """
    kinds = set(sweep.losses["kind"].unique())
    result = Analysis()
    if "static" in kinds:
        result.static = fit_static(sweep, static_step, split=split, seed=seed, n_random=n_random)
        form = "two_group" if sweep.m == 2 else "log_linear"
        params = {g: {int(r["seed"]): r[list(result.static.param_names)].to_numpy(float)
                      for _, r in d.iterrows()} for g, d in result.static.params.groupby("group")}
        result.optimum = optimum_table(params, sweep.groups, form)
    if "parent" in kinds:
        forms = dynamic_forms or (("two_group",) if sweep.m == 2 else ("linear", "full"))
        result.dynamic = {f: fit_dynamic(sweep, f, split=split) for f in forms}
    if "method" in kinds:
        # a method is analysed where it has break-step children (a method run alone has no A^{t*} to fit)
        kids = sweep.losses[sweep.losses["kind"] == "child"]
        present = [mth for mth in METHODS if mth in set(kids["method"])]
        for mth in methods or present:
            result.methods[mth] = method_parameters(sweep, mth, split=split)
    return result
