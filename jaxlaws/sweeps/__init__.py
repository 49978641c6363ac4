"""Sweep results: the tidy representation, its readers and writers, and synthetic sweeps."""

from jaxlaws.sweeps.dirichlet import dirichlet_cover, load_dirichlet_grid, two_group_grid
from jaxlaws.sweeps.io import concat_sweeps, read_sweep, write_sweep
from jaxlaws.sweeps.original import (
    LoadReport,
    RunName,
    decode_weights,
    encode_weights,
    format_run_name,
    parse_run_name,
    read_original,
    write_original,
)
from jaxlaws.sweeps.reference import (
    dynamic_params,
    load_law_results,
    skillit_graph,
    static_params,
    trajectory_params,
)
from jaxlaws.sweeps.schema import (
    KINDS,
    LOSS_BASE_COLUMNS,
    MATRIX_COLUMNS,
    Sweep,
    SweepError,
    matrix_stack,
    proportion_column,
    proportion_columns,
    validate_losses,
    validate_matrices,
)
from jaxlaws.sweeps.synthetic import (
    dynamic_sweep,
    method_sweep,
    reference_dynamic_sweep,
    reference_static_sweep,
    reference_sweep_bundle,
    static_sweep,
)

__all__ = [
    "dirichlet_cover",
    "load_dirichlet_grid",
    "two_group_grid",
    "concat_sweeps",
    "read_sweep",
    "write_sweep",
    "LoadReport",
    "RunName",
    "decode_weights",
    "encode_weights",
    "format_run_name",
    "parse_run_name",
    "read_original",
    "write_original",
    "dynamic_params",
    "load_law_results",
    "skillit_graph",
    "static_params",
    "trajectory_params",
    "KINDS",
    "LOSS_BASE_COLUMNS",
    "MATRIX_COLUMNS",
    "Sweep",
    "SweepError",
    "matrix_stack",
    "proportion_column",
    "proportion_columns",
    "validate_losses",
    "validate_matrices",
    "dynamic_sweep",
    "method_sweep",
    "reference_dynamic_sweep",
    "reference_static_sweep",
    "reference_sweep_bundle",
    "static_sweep",
]
