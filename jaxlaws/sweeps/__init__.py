"""Sweep results: the tidy representation, its readers and writers, and synthetic sweeps."""

from jaxlaws.sweeps.schema import (
    KINDS, LOSS_BASE_COLUMNS, MATRIX_COLUMNS, Sweep, SweepError, matrix_stack,
    proportion_column, proportion_columns, validate_losses, validate_matrices,
)
