r"""Closed-form fits of laws that are linear in their parameters.

Weighted least squares :math:`\min_\theta \sum_n w_n (y_n - X_n\theta)^2` is solved by an SVD-based
``lstsq`` on :math:`\sqrt{w}X, \sqrt{w}y`. The Huber objective is minimised exactly by iteratively
reweighted least squares, with weights :math:`w_n = \min(1, \delta/|r_n|)`; each iteration cannot raise
the Huber objective, and the fixed point is its minimiser.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike, DTypeLike
from jaxlaws.fitting import validate
from jaxlaws.fitting.metrics import r2 as _r2
from jaxlaws.fitting.objectives import huber as _huber
from jaxlaws.fitting.objectives import squared as _squared
from jaxlaws.laws.base import Law

__all__ = ["IRLS_MAX_ITER", "LinearFit", "lstsq", "solve_law"]

IRLS_MAX_ITER = 500


@dataclasses.dataclass(frozen=True)
class LinearFit:
    r"""Result of :func:`lstsq`.

    Attributes:
      coef: ``(P,)`` fitted coefficients :math:`\theta`.
      residuals: ``(n,)`` residuals :math:`y - X\theta`.
      objective: :math:`\sum_n w_n \rho(r_n)` at ``coef``.
      mse: mean squared error of the fit.
      r2: coefficient of determination.
      iterations: IRLS iterations used (0 for least squares).
    """

    coef: np.ndarray
    residuals: np.ndarray
    objective: float
    mse: float
    r2: float
    iterations: int


def lstsq(
    X: ArrayLike,
    y: ArrayLike,
    weights: ArrayLike | None = None,
    huber_delta: float | None = None,
    dtype: DTypeLike = "float64",
) -> LinearFit:
    r"""Solve :math:`\min_\theta \sum_n w_n \rho(y_n - X_n \theta)` in closed form (IRLS for Huber).

    Args:
      X: ``(n, P)`` design matrix.
      y: ``(n,)`` targets.
      weights: optional non-negative ``(n,)`` weights :math:`w_n` (default 1).
      huber_delta: ``None`` for least squares, else the Huber threshold :math:`\delta`.
      dtype: computation precision (float64 by default: this is the reference path).

    Returns:
      A :class:`LinearFit`: ``coef (P,)``, ``residuals (n,)``, the objective, MSE, R^2 and the IRLS iterations.
    """
    X = validate.as_float_array("X", X)
    y = validate.as_float_array("y", y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, P) and y (n,), got {X.shape} and {y.shape}")
    w = np.ones(len(y)) if weights is None else validate.as_float_array("weights", weights)
    if w.shape != y.shape or np.any(w < 0):
        raise ValueError("weights must be a non-negative (n,) array")
    for name, a in (("X", X), ("y", y), ("weights", w)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
    if np.count_nonzero(w) < X.shape[1]:
        raise ValueError(f"{X.shape[1]} parameters need at least as many weighted points, got {np.count_nonzero(w)}")
    objective = _squared() if huber_delta is None else _huber(huber_delta)
    dt = np.dtype(dtype).type
    with jax.enable_x64(dt == np.float64):
        coef, iters = _solve(X.astype(dt)[None], y.astype(dt)[None], w.astype(dt)[None], objective.delta)
    coef = np.asarray(coef[0], np.float64)
    res = y - X @ coef
    with jax.enable_x64(True):
        obj = float(np.sum(w * np.asarray(objective.rho(jnp.asarray(res)))))
    used = w > 0
    return LinearFit(coef, res, obj, float(np.mean(res[used] ** 2)), _r2(y[used], (X @ coef)[used]), int(iters[0]))


@functools.partial(jax.jit, static_argnums=(3,))
def _solve(X: jax.Array, y: jax.Array, w: jax.Array, delta: float | None):
    """Batched weighted LS / Huber IRLS: X (B, N, P), y (B, N), w (B, N) -> coef (B, P), iterations (B,)."""

    def wls(Xb, yb, wb):
        s = jnp.sqrt(wb)
        return jnp.linalg.lstsq(Xb * s[:, None], yb * s)[0]

    def one(Xb, yb, wb):
        coef = wls(Xb, yb, wb)
        if delta is None:
            return coef, jnp.asarray(0)
        tol = 10 * jnp.finfo(Xb.dtype).eps ** 0.5

        def cond(state):
            _, change, i = state
            return (change > tol) & (i < IRLS_MAX_ITER)

        def body(state):
            c, _, i = state
            r = yb - Xb @ c
            hw = jnp.minimum(1.0, delta / jnp.maximum(jnp.abs(r), 1e-30))
            new = wls(Xb, yb, wb * hw)
            change = jnp.max(jnp.abs(new - c)) / (1.0 + jnp.max(jnp.abs(c)))
            return new, change, i + 1

        coef, _, iters = jax.lax.while_loop(cond, body, (coef, jnp.asarray(jnp.inf, Xb.dtype), 0))
        return coef, iters

    return jax.vmap(one)(X, y, w)


def solve_law(
    law: Law, x: np.ndarray, y: np.ndarray, train: np.ndarray, delta: float | None, dtype: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form fit of a linear ``law`` on a batch: x (B, n, d), y (B, n[, k]), ``train`` (B, n): a boolean
    mask of the fitting points or their non-negative weights (0 leaves a point out).
    Returns coefficients (B, P), objectives (B,) and IRLS iterations used (B,; 0 for least squares)."""
    with jax.enable_x64(True):
        design = np.asarray(jax.vmap(law.design)(x))  # (B, n, P) or (B, n, k, P)
    batch, n = x.shape[:2]
    P = law.n_params
    X = design.reshape(batch, -1, P)
    yy = y.reshape(batch, -1)
    w = np.broadcast_to(train.reshape(batch, n, *([1] * (y.ndim - 2))), y.shape).reshape(batch, -1)
    coef, iters = _solve(X.astype(dtype), yy.astype(dtype), w.astype(dtype), delta)
    coef = np.asarray(coef, np.float64)
    res = yy - np.einsum("bnp,bp->bn", X, coef)
    objective = _squared() if delta is None else _huber(delta)
    with jax.enable_x64(True):
        obj = np.sum(w * np.asarray(objective.rho(jnp.asarray(res))), axis=1)
    return coef, obj, np.asarray(iters)
