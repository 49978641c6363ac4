"""Mixing-law analyses of sweeps: static and dynamic fits, method matrices vs the truth, optima."""

from jaxlaws.analysis.metrics import batched_metrics, mse, r2, r2_swapped_as_original, summarise
from jaxlaws.analysis.optimum import (
    optimum_table, project_simplex, simplex_minimise, two_group_optimum,
)
from jaxlaws.analysis.similarity import column_direction, cosine, rankdata, sim, sim_parts, spearman
