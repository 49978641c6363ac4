"""Fit-quality metrics, computed in float64 on the host side of a fit."""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from jaxlaws._typing import ArrayLike
from jaxlaws.laws.base import Law

__all__ = ["mse", "r2", "mse_r2", "batched_predict"]


def mse(y: ArrayLike, pred: ArrayLike) -> float:
    r"""Mean squared error :math:`\frac1n \sum_n (y_n - \hat y_n)^2`.

    Args:
      y: ``(n,)`` observations.
      pred: ``(n,)`` predictions.

    Returns:
      The MSE, a float.
    """
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if y.shape != pred.shape:
        raise ValueError(f"y and pred must have the same shape, got {y.shape} and {pred.shape}")
    return float(np.mean((y - pred) ** 2))


def r2(y: ArrayLike, pred: ArrayLike) -> float:
    r"""Coefficient of determination with the observations as truth.

    .. math:: R^2 = 1 - \sum_n (y_n - \hat y_n)^2 \Big/ \sum_n (y_n - \bar y)^2

    Args:
      y: ``(n,)`` observations.
      pred: ``(n,)`` predictions.

    Returns:
      :math:`R^2`, a float (NaN when ``y`` is constant).
    """
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if y.shape != pred.shape:
        raise ValueError(f"y and pred must have the same shape, got {y.shape} and {pred.shape}")
    ss_tot = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - pred) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def mse_r2(
    law: Law,
    params: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    dtype: Any,
    pred: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem MSE and R^2 of a batch of fits on their fitting points (NaN for failed fits); ``pred``: the
    fits' predictions at ``x``, when the caller has them."""
    if pred is None:
        with jax.enable_x64(True):
            pred = np.asarray(batched_predict(law.predict)(np.nan_to_num(params), x))
    out_mse = np.full(len(params), np.nan)
    out_r2 = np.full(len(params), np.nan)
    for b in range(len(params)):
        if np.all(np.isfinite(params[b])):
            t = train[b]
            out_mse[b] = mse(y[b][t], pred[b][t])
            out_r2[b] = r2(y[b][t], pred[b][t])
    return out_mse, out_r2


@functools.lru_cache(maxsize=64)
def batched_predict(predict: Any):
    """One compiled ``vmap(predict)`` per prediction function (laws sharing one share it), reused across fits."""
    return jax.jit(jax.vmap(predict))
