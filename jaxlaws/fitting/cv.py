r"""Cross-validation as one batched program: the folds become a batch of problems with test masks.

For folds :math:`F_1..F_K` partitioning the points, fold :math:`k`'s fit sees every point outside
:math:`F_k` and predicts the points in it; the out-of-fold prediction of point :math:`n` comes from the fit
whose fold holds it. Reported per fold (:math:`\mathrm{MAE}_k = \frac1{|F_k|}\sum_{n\in F_k}|y_n - \hat y_n|`,
:math:`\mathrm{RMSE}_k`) and over all points; the refit on all data is the same program's last problem.
The test points of a fold take no part in its fit *or* in choosing its init (``test=`` masks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import jax
import numpy as np

from jaxlaws._typing import ArrayLike, KeyLike, Table
from jaxlaws.fitting import validate
from jaxlaws.fitting.engine import fit_batched
from jaxlaws.fitting.metrics import batched_predict
from jaxlaws.fitting.result import FitResult
from jaxlaws.laws.base import Law, as_key

__all__ = ["CVResult", "fold_ids", "cross_validate", "batch_inputs"]


@dataclasses.dataclass(frozen=True, eq=False)
class CVResult:
    """Outcome of :func:`cross_validate` (a leading batch axis ``B`` on every array when ``x`` was batched).

    Attributes:
      folds: ``([B,] n)`` fold index of every point.
      predictions: ``([B,] n[, k])`` out-of-fold predictions.
      fold_mae, fold_rmse: ``([B,] K)`` held-out error of each fold's fit on its fold.
      mae, rmse: ``([B,])`` held-out error over all points (out-of-fold predictions).
      fits: the ``K`` fold fits (batched :class:`FitResult`, ``B * K`` problems, problem-major).
      refit: the fit on all points (single, or batched over ``B``).
    """

    folds: np.ndarray
    predictions: np.ndarray
    fold_mae: np.ndarray
    fold_rmse: np.ndarray
    mae: Any
    rmse: Any
    fits: FitResult
    refit: FitResult

    def __repr__(self) -> str:
        k = np.shape(self.fold_mae)[-1]
        return (
            f"CVResult({self.refit.law.name}, {k} folds, out-of-fold MAE {np.mean(self.mae):.4g}, "
            f"RMSE {np.mean(self.rmse):.4g})"
        )


def fold_ids(n: int, folds: int | Literal["loo"] | ArrayLike, key: KeyLike | None = None) -> np.ndarray:
    """The fold of each of ``n`` points.

    Args:
      n: number of points.
      folds: ``"loo"`` (point ``i`` alone in fold ``i``), an int ``k`` (a random balanced split into ``k`` folds,
        drawn from ``key``) or explicit ids ``(n,)`` (non-negative ints; each id used is a fold).
      key: an int seed or ``jax.random`` key, needed for ``k`` folds.

    Returns:
      ``(n,)`` int array of fold ids.
    """
    if isinstance(folds, str):
        if folds != "loo":
            raise ValueError(f"folds must be an int k >= 2, 'loo' or an (n,) array of fold ids, got {folds!r}")
        return np.arange(n)
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        if not 2 <= folds <= n:
            raise ValueError(f"folds must be between 2 and the number of points ({n}), got {folds}")
        if key is None:
            raise ValueError(
                "k-fold cross-validation shuffles the points: pass key=0 (an int seed) or a "
                "jax.random key (or folds='loo', or explicit fold ids)"
            )
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(as_key(key), 0x0CF), n))
        ids = np.empty(n, int)
        ids[perm] = np.arange(n) % folds
        return ids
    ids = np.asarray(folds)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 0):
        raise ValueError(f"fold ids must be {n} non-negative integers, got {ids.dtype} {ids.shape}")
    _, ids = np.unique(ids, return_inverse=True)
    if ids.max() < 1:
        raise ValueError("fold ids name a single fold: nothing would be left to fit")
    return ids


def cross_validate(
    law: Law,
    x: Table,
    y: ArrayLike,
    folds: int | Literal["loo"] | ArrayLike = 5,
    *,
    key: KeyLike | None = None,
    weights: ArrayLike | None = None,
    **fit_kwargs: Any,
) -> CVResult:
    r"""Cross-validate ``law`` on ``(x, y)``: every fold's fit and the refit on all data in one compiled call.

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      x, y: one problem (``(n, d)``, ``(n[, k])``) or a batch (``(B, n, d)``, ``(B, n[, k])``; the same folds
        for every problem).
      folds: ``"loo"`` (leave one out), ``k`` (random balanced folds drawn from ``key``) or explicit fold
        ids ``(n,)``.
      key: int seed or ``jax.random`` key: the fold split (k-fold) and the law's default init grid.
      weights: optional per-point weights, as in :func:`jaxlaws.fit`.
      fit_kwargs: passed to :func:`jaxlaws.fit_batched` (``inits``, ``objective``, ``bounds``, ``penalty``,
        ``solver``, ...); ``test`` and ``validation`` are set by the folds.

    Returns:
      A :class:`CVResult`; each fold's fit equals :func:`jaxlaws.fit` on the points outside the fold with the
      same inits.
    """
    xb, yb, batched = batch_inputs(law, x, y, fit_kwargs, "cross_validate sets the held-out points from folds")
    B, n = xb.shape[:2]
    ids = fold_ids(n, folds, key)
    K = int(ids.max()) + 1
    test = np.concatenate([ids[None] == np.arange(K)[:, None], np.zeros((1, n), bool)])  # (K + 1, n)
    rep = lambda a: np.repeat(a, K + 1, axis=0)  # noqa: E731  problem-major: b0 folds, b0 refit, b1 ...
    w = None
    if weights is not None:
        w = np.asarray(weights, np.float64)
        w = rep(np.broadcast_to(w, (B, n)) if w.shape == (n,) else w)
    inits = fit_kwargs.pop("inits", None)
    if inits is not None and not isinstance(inits, Mapping) and np.ndim(inits) == 3:
        if not batched or np.shape(inits)[0] != B:
            raise ValueError(
                f"per-problem inits must have shape (B={B}, n_init, P) for {B} problem(s), got {np.shape(inits)}"
            )
        inits = rep(np.asarray(inits))  # each problem's grid for each of its folds and its refit
    res = fit_batched(law, rep(xb), rep(yb), key=key, weights=w, test=np.tile(test, (B, 1)), inits=inits, **fit_kwargs)
    idx = np.arange(B * (K + 1)).reshape(B, K + 1)
    fits, refit = res[idx[:, :K].reshape(-1)], res[idx[:, K]]
    # predicted directly: x passed the fit's own simplex_atol / normalize, not predict's default check
    with jax.enable_x64(True):
        pred_all = np.asarray(batched_predict(law.predict)(np.nan_to_num(fits.params), np.repeat(xb, K, axis=0)))
    pred_all = np.where(fits.success.reshape((-1,) + (1,) * (pred_all.ndim - 1)), pred_all, np.nan)
    pred_all = pred_all.reshape((B, K, n) + yb.shape[2:])
    oof = np.take_along_axis(pred_all, ids[None, None, :].reshape((1, 1, n) + (1,) * (yb.ndim - 2)), axis=1)[:, 0]
    err = np.abs(yb - oof).reshape(B, n, -1)
    mae, rmse = err.mean(axis=(1, 2)), np.sqrt((err**2).mean(axis=(1, 2)))
    fold_mae = fits.test_mae.reshape(B, K)
    fold_rmse = fits.test_rmse.reshape(B, K)
    if not batched:
        return CVResult(ids, oof[0], fold_mae[0], fold_rmse[0], float(mae[0]), float(rmse[0]), fits, refit[0])
    return CVResult(np.broadcast_to(ids, (B, n)), oof, fold_mae, fold_rmse, mae, rmse, fits, refit)


def batch_inputs(law: Law, x: Any, y: Any, fit_kwargs: dict, why: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(x (B, n, d), y (B, n[, k]), batched)`` for :func:`cross_validate` and :func:`jaxlaws.bootstrap`, which set
    every point's role themselves (``why``: the error for a ``test=`` / ``validation=`` they were given). ``x`` is
    checked with the fit's own ``simplex_atol`` / ``normalize`` (rounded mixtures)."""
    for bad in ("test", "validation"):
        if bad in fit_kwargs:
            raise ValueError(f"{why}; {bad}= does not apply")
    arr = validate.as_float_array("x", validate.named_x(law, x, batched=True))  # a table: by the law's input names
    batched = arr.ndim == 3
    kw = dict(
        simplex_atol=fit_kwargs.get("simplex_atol", validate.SIMPLEX_ATOL), normalize=fit_kwargs.get("normalize", False)
    )
    xb = validate.check_x(law, arr, batched=True, **kw) if batched else validate.check_x(law, arr, **kw)[None]
    yb = validate.as_float_array("y", y)
    return xb, (yb if batched else yb[None]), batched
