r"""Nonparametric bootstrap of a fit: every resample is a weighted problem of one batched program.

A resample draws :math:`n` of the :math:`n` fitting points with replacement; point :math:`i` drawn
:math:`c_i` times enters the objective with weight :math:`c_i w_i` (the same objective as fitting the
duplicated points), so the ``R`` resamples are ``R`` problems of equal shape that run as one compiled
``fit_batched`` call. The percentile interval at level :math:`1-\alpha` of a quantity :math:`g(\theta)` is

.. math:: \big[\,Q_{\alpha/2}\{g(\hat\theta^{*}_r)\},\; Q_{1-\alpha/2}\{g(\hat\theta^{*}_r)\}\,\big]

over the resamples :math:`r` whose fit succeeded (failed resamples are counted in ``n_failed``). A resample
that draws fewer distinct points than the law has parameters (per output) cannot be fitted at all; it is
drawn again (a bootstrap conditional on a fittable resample; counted in ``n_redrawn``). With many points
this practically never happens; with a handful (7 runs, 3 parameters) it does, and the intervals are then
conditional on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxlaws._typing import ArrayLike, KeyLike, Table
from jaxlaws.fitting import fixed as fixing
from jaxlaws.fitting import validate
from jaxlaws.fitting.cv import batch_inputs
from jaxlaws.fitting.engine import fit_batched
from jaxlaws.fitting.result import FitResult
from jaxlaws.laws.base import Law, as_key

__all__ = ["BootstrapResult", "resample_counts", "bootstrap", "interval_of"]


@dataclasses.dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Outcome of :func:`bootstrap`.

    Attributes:
      estimate: the fit on all points (single, or batched over ``B`` problems).
      params: ``([B,] R, P)`` resample parameters (NaN where a resample's fit failed).
      counts: ``([B,] R, n)`` how often each point was drawn.
      level: the default interval level (e.g. 0.9).
      n_failed: ``([B,])`` resamples whose fit failed.
      n_redrawn: ``([B,])`` resamples drawn again because they held too few distinct points to fit.
    """

    estimate: FitResult
    params: np.ndarray
    counts: np.ndarray
    level: float
    n_failed: Any
    n_redrawn: Any = 0

    @property
    def law(self) -> Law:
        return self.estimate.law

    def interval(self, values: np.ndarray, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of ``values`` ``([B,] R, ...)`` over the resample axis, ignoring NaN."""
        a = 1.0 - (self.level if level is None else _check_level(level))
        axis = 1 if self.estimate.batched else 0
        with np.errstate(all="ignore"):
            lo, hi = np.nanquantile(values, [a / 2, 1 - a / 2], axis=axis)
        return lo, hi

    def joint_interval(
        self, fn: Callable[[np.ndarray], ArrayLike], level: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""``(estimate, lo, hi)`` of a quantity that combines the ``B`` problems of a batched bootstrap, e.g.
        the optimal mixture of several groups' laws: ``fn(params (..., B, P)) -> (...[, q])`` is evaluated on
        the estimate and on every resample (all problems of resample ``r`` together -- with ``paired=True``
        they were fitted to the same drawn points), and the percentile interval is taken over resamples.
        Resamples with a failed fit in any problem are left out."""
        if not self.estimate.batched:
            raise ValueError(
                "joint_interval combines the problems of a batched bootstrap; for one problem use interval_of(boot, fn)"
            )
        a = 1.0 - (self.level if level is None else _check_level(level))
        per = np.swapaxes(self.params, 0, 1)  # (R, B, P)
        ok = np.all(np.isfinite(per), axis=(1, 2))
        # one call for the estimate and the resamples (fn may compile per input shape)
        both = np.concatenate([np.asarray(self.estimate.params, np.float64)[None], per[ok]])
        allv = np.asarray(fn(both), np.float64)
        est, vals = allv[0], allv[1:]  # ([q]), (R_ok[, q])
        with np.errstate(all="ignore"):
            lo, hi = np.nanquantile(vals, [a / 2, 1 - a / 2], axis=0)
        return est, lo, hi

    def param_intervals(self, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)``, each ``([B,] P)``: percentile intervals of every parameter."""
        return self.interval(self.params, level)

    def predict(self, x: Table, level: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(estimate, lo, hi)`` of the predictions at ``x`` (``(n, d)``; each ``([B,] n[, k])``)."""
        from jaxlaws.fitting.metrics import batched_predict

        est = self.estimate.predict(x)
        xv = validate.check_x(self.law, x)
        flat = self.params.reshape(-1, self.params.shape[-1])
        bad = ~np.all(np.isfinite(flat), axis=1)
        with jax.enable_x64(True):
            pred = np.asarray(
                batched_predict(self.law.predict)(
                    np.where(bad[:, None], 0.0, flat), np.broadcast_to(xv, (len(flat),) + xv.shape)
                )
            )
        pred = np.where(bad.reshape((-1,) + (1,) * (pred.ndim - 1)), np.nan, pred)
        lo, hi = self.interval(pred.reshape(self.params.shape[:-1] + pred.shape[1:]), level)
        return est, lo, hi

    def table(self, level: float | None = None) -> Any:
        """A DataFrame, one row per (problem, parameter): ``problem`` (batched only), ``param``,
        ``estimate``, ``lo``, ``hi``, ``level``, ``n_failed``."""
        import pandas as pd

        lo, hi = self.param_intervals(level)
        names = self.law.param_names
        est = np.atleast_2d(self.estimate.params)
        lo, hi = np.atleast_2d(lo), np.atleast_2d(hi)
        rows = []
        for b in range(len(est)):
            for j, name in enumerate(names):
                rows.append(
                    {
                        "problem": b,
                        "param": name,
                        "estimate": est[b, j],
                        "lo": lo[b, j],
                        "hi": hi[b, j],
                        "level": self.level if level is None else level,
                        "n_failed": int(np.atleast_1d(self.n_failed)[b]),
                    }
                )
        df = pd.DataFrame(rows)
        return df if self.estimate.batched else df.drop(columns="problem")


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def resample_counts(key: Any, n_resamples: int, fitting: np.ndarray) -> np.ndarray:
    """``(B, R, n)`` draw counts for masks ``fitting (B, n)``: resample ``r`` of problem ``b`` draws
    ``fitting[b].sum()`` of its marked points uniformly with replacement (one random call for all)."""
    fitting = np.asarray(fitting, bool)
    B, n = fitting.shape
    sizes = fitting.sum(axis=1)
    u = np.asarray(jax.random.uniform(as_key(key), (B, n_resamples, n), dtype=np.float32), np.float64)
    counts = np.zeros((B, n_resamples, n))
    for b in range(B):
        pool = np.flatnonzero(fitting[b])
        pick = pool[np.minimum((u[b, :, : sizes[b]] * sizes[b]).astype(int), sizes[b] - 1)]  # (R, size)
        np.add.at(counts[b], (np.repeat(np.arange(n_resamples), sizes[b]), pick.reshape(-1)), 1.0)
    return counts


def bootstrap(
    law: Law,
    x: Table,
    y: ArrayLike,
    n: int = 200,
    *,
    key: KeyLike,
    level: float = 0.9,
    weights: ArrayLike | None = None,
    paired: bool = True,
    inits: Table | None = None,
    **fit_kwargs: Any,
) -> BootstrapResult:
    r"""Bootstrap ``law`` fitted to ``(x, y)``: ``n`` resamples, all fitted in one compiled call.

    Args:
      law, x, y: as :func:`jaxlaws.fit` (one problem) or :func:`jaxlaws.fit_batched` (``B`` problems of the
        same size).
      n: number of resamples ``R``.
      key: int seed or ``jax.random`` key for the draws (and the law's default init grid).
      level: default interval level.
      weights: optional per-point weights (multiplied by the draw counts).
      paired: with a batch, draw the *same* points for every problem (e.g. the groups' losses of one set of
        runs, so that quantities combining the problems -- an optimal mixture -- get a valid interval);
        ``False`` draws independently per problem.
      inits: as in :func:`jaxlaws.fit`; default the law's grid on each problem's full data, shared by its
        resamples (drawn once, not once per resample).
      fit_kwargs: passed to :func:`jaxlaws.fit_batched` (``objective``, ``bounds``, ``penalty``, ...).

    Returns:
      A :class:`BootstrapResult`: the fit on all points, the ``([B,] R, P)`` resample parameters and the
      ``([B,] R, n)`` draw counts.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n (resamples) must be an int >= 2, got {n!r}")
    _check_level(level)
    xb, yb, batched = batch_inputs(law, x, y, fit_kwargs, "bootstrap resamples every point")
    B, npts = xb.shape[:2]
    w = (
        np.ones((B, npts))
        if weights is None
        else np.broadcast_to(validate.as_float_array("weights", weights), (B, npts))
    )
    k = as_key(key)
    free = fixing.fix(law, fit_kwargs["fixed"]) if fit_kwargs.get("fixed") else law  # fixed ones are not fitted
    need = -(-free.n_params // law.n_outputs)  # distinct points a resample needs to be fittable
    if paired:
        common = np.all(w > 0, axis=0)[None]
        counts, redrawn = _fittable(
            jax.random.fold_in(k, 1), resample_counts(jax.random.fold_in(k, 1), n, common), common, need
        )
        counts, redrawn = np.broadcast_to(counts, (B, n, npts)), np.broadcast_to(redrawn, (B,))
    else:
        counts, redrawn = _fittable(
            jax.random.fold_in(k, 1), resample_counts(jax.random.fold_in(k, 1), n, w > 0), w > 0, need
        )
    if inits is None and law.init_grid is not None:
        grids = [law.init_grid(k if law.needs_key else key, xb[b], yb[b]) for b in range(B)]
        inits = np.stack(grids) if B > 1 else grids[0]
    rep = lambda a: np.repeat(a, n + 1, axis=0)  # noqa: E731  problem-major: estimate, then its resamples
    allw = np.concatenate([w[:, None], w[:, None] * counts], axis=1).reshape(B * (n + 1), npts)
    if inits is not None:
        inits = np.asarray(inits, np.float64)
        inits = rep(inits) if inits.ndim == 3 else inits
    res = fit_batched(law, rep(xb), rep(yb), key=key, weights=allw, inits=inits, throw=False, **fit_kwargs)
    idx = np.arange(B * (n + 1)).reshape(B, n + 1)
    est = res[idx[:, 0]]
    if not np.all(est.success):
        raise ValueError(
            f"{law.name}: the fit on all points failed for problem(s) "
            f"{np.flatnonzero(~est.success).tolist()}; nothing to bootstrap"
        )
    params = res.params[idx[:, 1:]]  # (B, R, P)
    n_failed = np.sum(~res.success[idx[:, 1:]], axis=1)
    if not batched:
        return BootstrapResult(est[0], params[0], counts[0], level, int(n_failed[0]), int(redrawn[0]))
    return BootstrapResult(est, params, np.asarray(counts), level, n_failed, np.asarray(redrawn))


def _fittable(
    key: Any, counts: np.ndarray, fitting: np.ndarray, need: int, tries: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Redraw the resamples of ``counts (B, R, n)`` that hold fewer than ``need`` distinct points; returns the
    counts and, per problem, how many resamples were redrawn. Raises when a problem cannot give ``need``."""
    counts = np.array(counts)
    if np.any(np.asarray(fitting).sum(axis=1) < need):
        raise ValueError(f"bootstrap: a problem has fewer than {need} points with positive weight; nothing to resample")
    redrawn = np.zeros(counts.shape[:2], bool)
    for attempt in range(1, tries + 1):
        short = (counts > 0).sum(axis=2) < need
        if not short.any():
            return counts, redrawn.sum(axis=1)
        redrawn |= short
        fresh = resample_counts(jax.random.fold_in(key, attempt), counts.shape[1], fitting)
        counts = np.where(short[..., None], fresh, counts)
    raise ValueError(
        f"bootstrap: {tries} redraws still gave resamples with fewer than {need} distinct points; "
        "too few points to bootstrap"
    )


def interval_of(
    boot: BootstrapResult, fn: Callable[[np.ndarray], np.ndarray], level: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(estimate, lo, hi)`` of any function ``fn(params (..., P)) -> (..., q)`` of the parameters."""
    est = fn(np.asarray(boot.estimate.params))
    lo, hi = boot.interval(fn(boot.params), level)
    return est, lo, hi
