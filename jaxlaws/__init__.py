"""jaxlaws: data-mixing laws in JAX.

Fit the static log-linear and dynamic linear mixing laws of Aioli (Chen et al., 2025) to sweeps of
training runs, judge data-mixing methods against them, find optimal mixtures, and run the sweeps.

>>> import jax, jaxlaws as jl
>>> law = jl.laws.log_linear(3)
>>> res = jl.fit(law, p, loss, key=jax.random.key(0))      # doctest: +SKIP
"""

import importlib
from typing import Any

from jaxlaws import laws
from jaxlaws.fitting import (
    LBFGS,
    RESULTS,
    Adam,
    BootstrapResult,
    CVResult,
    FitError,
    FitInputError,
    FitResult,
    FrameFit,
    LevenbergMarquardt,
    LinearFit,
    Objective,
    Penalty,
    Screen,
    Solution,
    bootstrap,
    choose_c,
    cross_validate,
    fit,
    fit_batched,
    fit_frame,
    fit_static_two_stage,
    fix,
    fold_ids,
    huber,
    lstsq,
    mse,
    r2,
    ridge,
    solve,
    squared,
)
from jaxlaws.fitting.covariance import CovarianceInfo, covariance, delta_method

__version__ = "0.1.0"

# JAX's persistent compilation cache in ~/.cache/jaxlaws/jax, so a new process reuses compiled fits; left alone
# when the user configured a cache, off with JAXLAWS_CACHE=0 (jaxlaws.fitting.execute.enable_compilation_cache).
from jaxlaws.fitting.execute import enable_compilation_cache as _enable_cache  # noqa: E402

COMPILATION_CACHE = _enable_cache()

__all__ = [
    "analysis",
    "laws",
    "sweeps",
    "LBFGS",
    "Adam",
    "FitError",
    "FitInputError",
    "FitResult",
    "LevenbergMarquardt",
    "LinearFit",
    "Objective",
    "Screen",
    "choose_c",
    "fit",
    "fit_batched",
    "fit_static_two_stage",
    "huber",
    "lstsq",
    "mse",
    "r2",
    "squared",
    "FrameFit",
    "fit_frame",
    "RESULTS",
    "Solution",
    "solve",
    "CovarianceInfo",
    "covariance",
    "delta_method",
    "fix",
    "influence",
    "Influence",
    "optimal_mixture",
    "BootstrapResult",
    "CVResult",
    "Penalty",
    "bootstrap",
    "cross_validate",
    "fold_ids",
    "ridge",
]

# Imported on first use: jaxlaws.analysis and jaxlaws.sweeps work on pandas tables (pandas and pyarrow take
# longer to import than the fitting engine); jaxlaws.train needs flax.
_LAZY = ("analysis", "sweeps", "train", "mixing")
# names of lazily imported modules, re-exported at the top level
_LAZY_NAMES = {
    "influence": "jaxlaws.analysis.influence",
    "Influence": "jaxlaws.analysis.influence",
    "optimal_mixture": "jaxlaws.analysis.optimum",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"jaxlaws.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'jaxlaws' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_NAMES))
