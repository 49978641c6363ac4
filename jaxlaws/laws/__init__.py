"""The law zoo: pure JAX prediction functions with their parameter names and init grids."""

from jaxlaws.laws.base import Law, SingleIndex, grid
from jaxlaws.laws.chinchilla import chinchilla
from jaxlaws.laws.dml import dml, dml_inits, dml_to_paper, dml_to_reduced, paper_to_dml, reduced_to_dml
from jaxlaws.laws.dynamic import (
    dynamic_full,
    dynamic_linear,
    dynamic_two_group,
    log_ratio,
    method_features,
    scaled_method,
)
from jaxlaws.laws.static import (
    auto_own,
    exp_two_group,
    log_linear,
    log_linear_inits,
    log_linear_paper,
    paper_to_reduced,
    reduced_to_paper,
    static_two_group,
)

__all__ = [
    "Law",
    "SingleIndex",
    "grid",
    "chinchilla",
    "dml",
    "dml_inits",
    "dml_to_paper",
    "dml_to_reduced",
    "paper_to_dml",
    "reduced_to_dml",
    "auto_own",
    "dynamic_full",
    "dynamic_linear",
    "dynamic_two_group",
    "log_ratio",
    "method_features",
    "scaled_method",
    "exp_two_group",
    "log_linear",
    "log_linear_inits",
    "log_linear_paper",
    "paper_to_reduced",
    "reduced_to_paper",
    "static_two_group",
]
