r"""Fit-quality metrics, and the original notebooks' R^2 for comparison.

* :func:`r2` is the coefficient of determination with the observations as truth,
  :math:`R^2 = 1 - \sum_n (y_n - \hat y_n)^2 / \sum_n (y_n - \bar y)^2`.
* :func:`r2_swapped_as_original` reproduces the m=2 notebooks' ``sklearn.r2_score(pred, y)``: the
  *predictions* act as truth, so the denominator is the spread of the predictions. It is only here to
  compare with numbers printed by those notebooks; do not use it to judge a fit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mse", "r2", "r2_swapped_as_original", "batched_metrics"]


def _pair(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if y.shape != pred.shape:
        raise ValueError(f"y has shape {y.shape} but the predictions have shape {pred.shape}")
    if y.size < 2:
        raise ValueError("a fit metric needs at least 2 points")
    return y, pred


def mse(y: np.ndarray, pred: np.ndarray) -> float:
    r""":math:`\frac1n\sum_n (y_n - \hat y_n)^2`.

    Args:
      y: ``(n,)`` observations.
      pred: ``(n,)`` predictions.

    Returns:
      The MSE, a float.
    """
    y, pred = _pair(y, pred)
    return float(np.mean((y - pred) ** 2))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Correct :math:`R^2 = 1 - SS_{res}/SS_{tot}(y)`; NaN if ``y`` is constant (no variance to explain).

    Args:
      y: ``(n,)`` observations.
      pred: ``(n,)`` predictions.

    Returns:
      The correct :math:`R^2`, a float.
    """
    y, pred = _pair(y, pred)
    ss_tot = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - pred) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def r2_swapped_as_original(y: np.ndarray, pred: np.ndarray) -> float:
    r"""The m=2 notebooks' ``r2_score(pred, y)``: :math:`1 - SS_{res}/SS_{tot}(\hat y)` (``docs/DEVIATIONS.md``).

    Args:
      y: ``(n,)`` observations.
      pred: ``(n,)`` predictions.

    Returns:
      The swapped :math:`R^2`, a float.
    """
    y, pred = _pair(y, pred)
    return r2(pred, y)


def batched_metrics(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-problem ``mse``, ``r2`` and ``r2_swapped_as_original`` for stacked problems ``(B, n)``.

    ``mask`` (B, n) marks real points (problems padded to a common ``n``); default all.

    Args:
      y: ``(B, n)`` observations.
      pred: ``(B, n)`` predictions.
      mask: ``(B, n)`` real points (default all).

    Returns:
      ``{"mse", "r2", "r2_swapped_as_original"}``, each ``(B,)``.
    """
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if y.shape != pred.shape or y.ndim != 2:
        raise ValueError(f"need y and pred of the same shape (B, n), got {y.shape} and {pred.shape}")
    w = np.ones_like(y) if mask is None else np.asarray(mask, np.float64)
    n = w.sum(axis=1)
    res = np.sum(w * (y - pred) ** 2, axis=1)

    def ss_tot(v: np.ndarray) -> np.ndarray:
        mean = np.sum(w * v, axis=1) / n
        return np.sum(w * (v - mean[:, None]) ** 2, axis=1)

    with np.errstate(divide="ignore", invalid="ignore"):
        tot_y, tot_p = ss_tot(y), ss_tot(pred)
        return {
            "mse": res / n,
            "r2": np.where(tot_y > 0, 1 - res / tot_y, np.nan),
            "r2_swapped_as_original": np.where(tot_p > 0, 1 - res / tot_p, np.nan),
        }
