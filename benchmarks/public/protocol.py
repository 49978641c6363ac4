"""The held-out protocol of the public-data benchmark: folds, the baselines it is scored against, and metrics.

* Folds: leave-one-out, or ``k`` equal folds of a seeded permutation (``n`` divisible by ``k``, so every fold
  problem has the same size and all folds run as one batched fit).
* Baselines: ordinary least squares on the mixture proportions plus an intercept (one proportion dropped: on the
  simplex it is the intercept minus the others), and the mean of the training losses.
* Metrics: mean absolute error, the largest absolute error (where a fold explodes), Spearman's rank correlation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import stats


class Folds(NamedTuple):
    train: np.ndarray  # (F, n - n_test) indices of each fold's fitting points
    test: np.ndarray  # (F, n_test) indices of its held-out points


def loo(n: int) -> Folds:
    """Leave-one-out: fold ``i`` holds out point ``i``."""
    if n < 3:
        raise ValueError(f"leave-one-out needs at least 3 points, got {n}")
    idx = np.arange(n)
    return Folds(np.stack([np.delete(idx, i) for i in range(n)]), idx[:, None])


def kfold(n: int, k: int, seed: int) -> Folds:
    """``k`` equal folds of ``np.random.default_rng(seed).permutation(n)``; ``n`` must be divisible by ``k``."""
    if k < 2 or n % k:
        raise ValueError(f"kfold needs k >= 2 dividing n, got n={n}, k={k}")
    test = np.random.default_rng(seed).permutation(n).reshape(k, n // k)
    train = np.stack([np.sort(np.setdiff1d(np.arange(n), t)) for t in test])
    return Folds(train, np.sort(test, axis=1))


def ols_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares ``y ~ c + sum_{j<m} w_j p_j`` (last proportion dropped); returns ``[c, w_1..w_{m-1}]``."""
    design = np.column_stack([np.ones(len(x)), np.asarray(x, np.float64)[:, :-1]])
    return np.linalg.lstsq(design, np.asarray(y, np.float64), rcond=None)[0]


def ols_predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return coef[0] + np.asarray(x, np.float64)[:, :-1] @ coef[1:]


def cv_baselines(x: np.ndarray, y: np.ndarray, folds: Folds) -> dict[str, np.ndarray]:
    """Held-out predictions ``(F, n_test)`` of OLS and of the training mean, fold by fold."""
    ols = np.stack([ols_predict(ols_fit(x[tr], y[tr]), x[te]) for tr, te in zip(folds.train, folds.test)])
    mean = np.stack([np.full(len(te), y[tr].mean()) for tr, te in zip(folds.train, folds.test)])
    return {"ols": ols, "mean": mean}


def oof_predictions(fit: Callable, predict: Callable, x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions ``(n,)``: the points of fold ``k`` predicted by ``predict(fit(x_tr, y_tr), x_te)``
    fitted on the points outside fold ``k`` (``ids``: fold id per point, as :func:`jaxlaws.cross_validate` gives)."""
    ids = np.asarray(ids)
    out = np.empty(len(y))
    for k in np.unique(ids):
        tr, te = ids != k, ids == k
        out[te] = predict(fit(x[tr], y[tr]), x[te])
    return out


def normalise_rows(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows divided by their sums, and the largest ``|sum - 1|`` as given (rounded mixtures)."""
    s = np.asarray(x, np.float64).sum(axis=1)
    return x / s[:, None], float(np.max(np.abs(s - 1.0)))


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(y))))


def max_err(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(pred) - np.asarray(y))))


def spearman100(pred: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation x100 (RegMix's convention)."""
    return float(100.0 * stats.spearmanr(np.ravel(pred), np.ravel(y)).statistic)


def static_predict(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The reduced static law ``exp(l) + exp(b + sum_{j<m} t_j p_j)`` in float64 NumPy (independent of JAX);
    ``theta`` ``(..., m + 1)``, ``x`` ``(n, m)`` -> ``(..., n)``."""
    theta, x = np.asarray(theta, np.float64), np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
        return np.exp(theta[..., :1]) + np.exp(theta[..., 1:2] + theta[..., 2:] @ x[:, : theta.shape[-1] - 2].T)


def chinchilla_predict(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``E + A / N^alpha + B / D^beta`` from ``[e, a, b, alpha, beta]`` (``E = exp(e)`` ...), float64 NumPy."""
    e, a, b, alpha, beta = np.moveaxis(np.asarray(theta, np.float64)[..., None], -2, 0)
    n, d = np.asarray(x, np.float64).T
    return np.exp(e) + np.exp(a - alpha * np.log(n)) + np.exp(b - beta * np.log(d))
