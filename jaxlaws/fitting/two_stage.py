r"""The original two-stage fit of the two-group static law :math:`L_i = c + \exp(k p_i + b)`.

Stage one picks :math:`c` on the grid ``linspace(0, min L, C)`` (last point dropped, where the log is
undefined) maximising :math:`|\mathrm{corr}(p_i, \log(L_i - c))|` — the :math:`c` that makes the data most
log-linear. Stage two fits :math:`(k, b)` to :math:`L_i - c` with :func:`jaxlaws.laws.exp_two_group`.
"""

from __future__ import annotations

import numpy as np

from jaxlaws._typing import ArrayLike, DTypeLike, SolverLike
from jaxlaws.fitting import validate
from jaxlaws.fitting.diagnostics import diagnose, flags_of
from jaxlaws.fitting.engine import fit_batched
from jaxlaws.fitting.metrics import mse_r2
from jaxlaws.fitting.objectives import Objective, huber
from jaxlaws.fitting.result import FitResult
from jaxlaws.laws import exp_two_group, static_two_group

__all__ = ["choose_c", "fit_static_two_stage"]


def choose_c(p: ArrayLike, y: ArrayLike, grid_size: int = 1000) -> np.ndarray:
    r"""Stage one of the original's m=2 fit: the offset ``c`` that makes :math:`\log(L - c)` most linear in ``p``.

    Searches ``c`` on ``grid_size - 1`` points of :math:`[0, \min L)` for the largest absolute Pearson
    correlation between ``p`` and :math:`\log(L - c)` (HazyResearch/aioli, the m=2 analysis notebooks), vectorised
    over a batch. Ties and an all-NaN correlation keep the smallest ``c`` (the original starts from ``c = 0``).

    Args:
      p: ``(n,)`` or ``(B, n)`` own proportions of the group.
      y: losses of the same shape, all positive.
      grid_size: number of grid points (at least 2).

    Returns:
      ``c``, shape ``()`` for one problem or ``(B,)``.

    Raises:
      ValueError: for NaN/inf, non-positive losses (naming the problem of a batch), fewer than 2 points or a
        ``grid_size`` below 2.
    """
    p = validate.as_float_array("p", p)
    y = validate.as_float_array("y", y)
    if p.ndim not in (1, 2):
        raise ValueError(f"choose_c: p and y must be (n,) or (B, n), got shape {p.shape}")
    single = p.ndim == 1
    p, y = np.atleast_2d(p), np.atleast_2d(y)
    if p.shape != y.shape:
        raise ValueError(f"p and y must have the same shape, got {p.shape} and {y.shape}")
    if p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"choose_c needs at least 2 points per problem to correlate, got shape {p.shape}")
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 2:
        raise ValueError(f"choose_c: grid_size must be an integer >= 2, got {grid_size!r}")
    validate.check_finite("p", p)
    validate.check_finite("y", y)
    if np.any(y <= 0):
        bad = int(np.flatnonzero(np.any(y <= 0, axis=1))[0])
        msg = "the two-stage fit needs positive losses (c is searched in [0, min L))"
        raise validate.FitInputError(
            msg + ("" if single else f"; problem {bad} of the batch has a loss <= 0"),
            problem=None if single else bad,
            detail=msg,
        )
    frac = np.linspace(0.0, 1.0, grid_size)[:-1]  # (C,)
    c = y.min(axis=1, keepdims=True) * frac[None]  # (B, C)
    logs = np.log(y[:, None, :] - c[:, :, None])  # (B, C, n)
    pc = p - p.mean(axis=1, keepdims=True)
    lc = logs - logs.mean(axis=2, keepdims=True)
    num = np.einsum("bn,bcn->bc", pc, lc)
    den = np.sqrt(np.sum(pc**2, axis=1))[:, None] * np.sqrt(np.sum(lc**2, axis=2))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(num / den)
    corr = np.where(np.isfinite(corr), corr, -1.0)
    best = c[np.arange(len(c)), np.argmax(corr, axis=1)]
    return best[0] if single else best


def fit_static_two_stage(
    p: ArrayLike,
    y: ArrayLike,
    *,
    grid_size: int = 1000,
    inits: ArrayLike | None = None,
    objective: Objective | None = None,
    solver: SolverLike | None = None,
    dtype: DTypeLike | None = None,
    throw: bool = True,
) -> FitResult:
    r"""Fit :math:`L_i = c + \exp(k p_i + b)` the original's way: :func:`choose_c`, then ``k, b`` with ``c`` held.

    Stage two fits ``[k, b]`` of :math:`L - c = \exp(k p + b)` from the original's init grid (or ``inits``) with the
    law's objective, as HazyResearch/aioli's m=2 notebooks do.

    Args:
      p: ``(n,)`` own proportions of the group, or ``(B, n)`` for a batch of problems.
      y: ``(n,)`` or ``(B, n)`` losses, all positive.
      grid_size: grid points of the search for ``c`` (:func:`choose_c`).
      inits: optional ``(n_init, 2)`` (or ``(B, n_init, 2)``) initial ``[k, b]``; default the grid of
        :func:`jaxlaws.laws.exp_two_group`.
      objective: default that law's, the original's Huber(0.02).
      solver: as in :func:`jaxlaws.fit`.
      dtype: as in :func:`jaxlaws.fit`.
      throw: raise :class:`FitError` when every init diverged; otherwise return ``success=False``.

    Returns:
      A :class:`FitResult` for :func:`jaxlaws.laws.static_two_group` (params ``([B,] 3)``, ``[c, k, b]``); its
      MSE and R^2 are in loss space (the MSE equals the original's, which is shift-invariant; R^2 is the correct
      one).
    """
    p = validate.as_float_array("p", p)
    y = validate.as_float_array("y", y)
    if p.ndim not in (1, 2) or p.shape != y.shape:
        raise ValueError(f"fit_static_two_stage: p and y must both be (n,) or (B, n), got {p.shape} and {y.shape}")
    single = p.ndim == 1
    p2, y2 = np.atleast_2d(p), np.atleast_2d(y)
    law3 = static_two_group()
    if p2.shape[0] == 0:
        raise ValueError("fit_static_two_stage: the batch holds no problems")
    validate.check_counts(law3, np.full(p2.shape[0], p2.shape[1]), "points")
    x = validate.check_x(law3, p2[..., None], batched=True)
    y2 = validate.check_y(law3, y2, x.shape[1], batched=True)
    c = choose_c(p2, y2, grid_size)
    stage2 = fit_batched(
        exp_two_group(), x, y2 - c[:, None], inits=inits, objective=objective, solver=solver, dtype=dtype, throw=throw
    )
    params = np.concatenate([c[:, None], stage2.params], axis=1)
    train = np.ones(y2.shape, bool)
    mse, r2 = mse_r2(law3, params, x, y2, train, np.float64)
    # c is chosen by correlation, not by the objective: convergence is stage two's; identifiability and
    # saturation are judged for the three-parameter law at the returned point.
    diag = diagnose(law3, huber(0.02) if objective is None else objective, params, x, y2, train, np.float64)
    res = FitResult(
        law=law3,
        params=params,
        objective=stage2.objective,
        mse=mse,
        r2=r2,
        n_points=stage2.n_points,
        converged=stage2.converged,
        success=stage2.success,
        init_objectives=stage2.init_objectives,
        selection=stage2.selection,
        decrement=stage2.decrement,
        rank=diag.rank,
        n_distinct=diag.n_distinct,
        identifiable=diag.identifiable,
        saturated=diag.saturated,
        flags=flags_of(
            stage2.success,
            stage2.converged,
            diag.saturated,
            diag.identifiable,
            diag.constant_target,
            r2,
            diag.constant_reachable,
        ),
    )
    return res[0] if single else res
