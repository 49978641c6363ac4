"""Mixing-law analyses of sweeps: static and dynamic fits, method matrices vs the truth, optima."""

from jaxlaws.analysis._common import FlaggedFitWarning, child_table
from jaxlaws.analysis.dynamic import FORMS as DYNAMIC_FORMS
from jaxlaws.analysis.dynamic import dynamic_law, fit_dynamic
from jaxlaws.analysis.export import key_str, nested_params, prune_empty, structure, write_json
from jaxlaws.analysis.influence import Influence, influence, sweep_influence
from jaxlaws.analysis.methods import (
    METHODS,
    MethodAnalysis,
    method_matrix,
    method_parameters,
    two_group_effective,
)
from jaxlaws.analysis.metrics import batched_metrics, mse, r2, r2_swapped_as_original
from jaxlaws.analysis.optimum import (
    OptimumResult,
    optimal_mixture,
    optimum_table,
    project_simplex,
    simplex_minimise,
    two_group_optimum,
)
from jaxlaws.analysis.pipeline import Analysis, analyse
from jaxlaws.analysis.similarity import column_direction, cosine, rankdata, sim, sim_parts, spearman
from jaxlaws.analysis.static import LawFits, fit_static
from jaxlaws.analysis.uncertainty import StaticBootstrap, bootstrap_static

__all__ = [
    "FlaggedFitWarning",
    "child_table",
    "DYNAMIC_FORMS",
    "dynamic_law",
    "fit_dynamic",
    "key_str",
    "nested_params",
    "prune_empty",
    "structure",
    "write_json",
    "Influence",
    "influence",
    "sweep_influence",
    "METHODS",
    "MethodAnalysis",
    "method_matrix",
    "method_parameters",
    "two_group_effective",
    "batched_metrics",
    "mse",
    "r2",
    "r2_swapped_as_original",
    "OptimumResult",
    "optimal_mixture",
    "optimum_table",
    "project_simplex",
    "simplex_minimise",
    "two_group_optimum",
    "Analysis",
    "analyse",
    "column_direction",
    "cosine",
    "rankdata",
    "sim",
    "sim_parts",
    "spearman",
    "LawFits",
    "fit_static",
    "StaticBootstrap",
    "bootstrap_static",
]
