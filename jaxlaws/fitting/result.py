"""The result object of a fit (optimistix-style: one verb returns one value describing the solution)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from jaxlaws._typing import Table
from jaxlaws.fitting import validate
from jaxlaws.laws.base import Law

__all__ = ["FitError", "FitResult"]


class FitError(ValueError):
    """A fit produced no usable parameters (every init diverged); raised by :func:`jaxlaws.fit` with ``throw=True``."""


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """Outcome of :func:`jaxlaws.fit` (scalar fields) or :func:`jaxlaws.fit_batched` (leading batch axis).

    Attributes:
      law: the fitted law.
      params: best parameters, ``([B,] P)``, in ``law.param_names`` order; NaN only where ``success`` is False.
      objective: the objective (e.g. summed Huber) at ``params`` on the fitting points.
      mse: mean squared error of the predictions in loss space on the fitting points.
      r2: coefficient of determination ``1 - SS_res / SS_tot`` (``SS_tot`` of the observations).
      n_points: number of points fitted.
      converged: the selected init's objective stopped improving (relative change over the last 10% of
        iterations below the solver's tolerance; for closed-form Huber fits: IRLS reached its fixed point)
        *and* the gradient at ``params`` is small (the Gauss-Newton decrement, ``decrement``, is at most
        1e-6 of the objective plus a round-off floor; :mod:`jaxlaws.fitting.diagnostics`).
      success: a finite objective was reached.
      init_objectives: every init's final (selected-over-trajectory) objective, ``([B,] n_init)``; ``inf``
        marks a diverged init.
      selection: how the best init was chosen: ``"trajectory"``, ``"final"``, ``"holdout"`` or
        ``"closed_form"``.
      decrement: the Gauss-Newton decrement at ``params`` (the decrease of the objective one more
        Gauss-Newton step still promises); NaN for a failed fit.
      rank: rank of the (column-normalised) Jacobian of the residuals at ``params``.
      n_distinct: distinct inputs (rows of ``x``) among the fitting points.
      identifiable: ``rank == P``: every parameter combination is determined by the data.
      saturated: distinct inputs x outputs <= free parameters: the law interpolates the data (R^2 = 1
        says nothing) and no degree of freedom is left to test it.
      flags: short strings naming what is wrong with a fit, ``()`` when nothing is (one tuple per
        problem when batched): ``failed``, ``not_converged``, ``saturated``, ``rank_deficient``,
        ``constant_target``, ``nonfinite_r2``, ``negative_r2``.
      ok: no flags (a property).
      row_sum_error: for a law whose ``x`` is a mixture, each input row's sum minus 1 *as given*
        (``([B,] n)``), before any ``normalize=True``; ``None`` for other laws. ``max_row_sum_error`` is
        the worst per problem; with ``normalized`` the rows were divided by their sums before fitting, and
        ``n_renormalized`` counts those whose sum differed from 1 (by more than 1e-12).
      normalized: whether the fit ran with ``normalize=True``; ``simplex_atol`` the row-sum tolerance it used.
      paper: the parameters by name in the paper's convention (a property; see ``Law.to_paper``).
      validation_objective: with ``validation=``: the (weighted, unpenalised) objective on the validation
        points at ``params``, which chose the init; else ``None``.
      test_mae, test_rmse, n_test: with ``test=``: mean absolute and root-mean-square error of the
        predictions on the score-only test points, and their number; else ``None``.
      bounds: the box the fit was held in, one ``(lo, hi)`` per parameter (``None``: unbounded);
        ``at_bound`` (a property) marks the parameters that ended on it.
      penalty: the ridge penalty ``(lam, indices, center)`` that was added (``None``: none).
      covariance: ``([B,] P, P)`` covariance of ``params`` at the optimum (:mod:`jaxlaws.fitting.covariance`:
        Gauss-Newton for least squares, the sandwich for Huber, in log residuals for log-space objectives),
        NaN where it is not defined (a singular Hessian, parameters on a bound); ``None`` when not computed.
        ``stderr`` and ``intervals`` read it.
    """

    law: Law
    params: np.ndarray
    objective: np.ndarray
    mse: np.ndarray
    r2: np.ndarray
    n_points: np.ndarray
    converged: np.ndarray
    success: np.ndarray
    init_objectives: np.ndarray
    selection: str
    decrement: Any = None
    rank: Any = None
    n_distinct: Any = None
    identifiable: Any = None
    saturated: Any = None
    flags: Any = None
    row_sum_error: Any = None
    normalized: bool = False
    validation_objective: Any = None
    test_mae: Any = None
    test_rmse: Any = None
    n_test: Any = None
    bounds: Any = None
    penalty: Any = None
    covariance: Any = None
    simplex_atol: float = validate.SIMPLEX_ATOL

    _ARRAY_FIELDS = (
        "params",
        "objective",
        "mse",
        "r2",
        "n_points",
        "converged",
        "success",
        "init_objectives",
        "decrement",
        "rank",
        "n_distinct",
        "identifiable",
        "saturated",
        "flags",
        "row_sum_error",
        "validation_objective",
        "test_mae",
        "test_rmse",
        "n_test",
        "covariance",
    )

    def __post_init__(self) -> None:
        if self.flags is None:  # built without diagnostics: flag what the metrics alone show
            from jaxlaws.fitting.diagnostics import flags_of

            batched = np.ndim(self.objective) == 1
            at = lambda v: None if v is None else np.atleast_1d(v)  # noqa: E731
            flags = flags_of(
                at(self.success), at(self.converged), at(self.saturated), at(self.identifiable), None, at(self.r2)
            )
            object.__setattr__(self, "flags", flags if batched else flags[0])

    @property
    def ok(self) -> Any:
        """True where a fit carries no flag (an array when batched)."""
        if self.batched:
            return np.array([len(f) == 0 for f in self.flags], bool)
        return len(self.flags) == 0

    @property
    def at_bound(self) -> np.ndarray:
        """``([B,] P)`` booleans: which parameters sit on a bound of ``bounds`` (within 1e-6 of the box's
        scale), where the solution is the constrained one and the gradient need not vanish (all False
        without bounds). A parameter on a *default* bound (``Law.default_bounds``) means the data alone
        would have taken it further: widen the box (``bounds=``) to see where."""
        from jaxlaws.fitting.regularise import at_bound

        p = np.asarray(self.params, np.float64)
        return at_bound(p, self.bounds) & np.isfinite(p)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.law.param_names

    @property
    def paper(self) -> dict[str, np.ndarray]:
        """Parameters by name in the paper's convention: ``law.to_paper(params)`` (e.g. Chinchilla's
        ``E, A, B, alpha, beta``; the static law's ``c, b, A_1..A_m`` with ``A_m = 0``), or the law's own
        names when it has no converter. Values are arrays with the batch shape (``()`` for a single fit)."""
        if self.law.to_paper is not None:
            paper = self.law.to_paper(np.asarray(self.params, np.float64))
            return {k: np.asarray(v, np.float64) for k, v in paper.items()}
        return self.params_dict

    @property
    def params_dict(self) -> dict[str, np.ndarray]:
        """Parameters by name, ``{name: value}`` in ``law.param_names`` order (values with the batch shape)."""
        p = np.asarray(self.params, np.float64)
        return {n: p[..., i] for i, n in enumerate(self.param_names)}

    @property
    def stderr(self) -> Any:
        """``([B,] P)`` standard errors of ``params``: the square roots of the diagonal of ``covariance`` (NaN
        where it is undefined), or ``None`` when the fit computed no covariance."""
        if self.covariance is None:
            return None
        var = np.diagonal(np.asarray(self.covariance, np.float64), axis1=-2, axis2=-1)
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.where(var >= 0, var, np.nan))

    def intervals(self, level: float = 0.95, paper: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        r"""Normal-approximation intervals :math:`\hat\theta_j \pm z_{(1+\text{level})/2}\,\mathrm{se}_j`, as
        ``{name: (lo, hi)}`` (values with the batch shape; NaN where the standard error is undefined). Each is
        marginal (one parameter at a time), from the local curvature at the optimum: for a strongly nonlinear
        law or few points prefer :func:`jaxlaws.bootstrap`.

        ``paper=True``: intervals of the parameters in the paper's convention (``law.to_paper``, as
        :attr:`paper`) by the delta method, :math:`\mathrm{se}(g) = \sqrt{\nabla g^\top\Sigma\nabla g}`,
        with :math:`\nabla g` from ``jax.jacobian`` when ``to_paper`` traces, else central differences
        (float64, step :math:`10^{-6}(1 + |\theta_j|)`). A paper parameter that is a fixed convention (the
        static law's :math:`A_m = 0`) gets a zero-width interval. For a positive scale fitted as its log
        (Chinchilla's ``a = log A``) the exponentiated log-space interval, ``np.exp(res.intervals()["a"])``, is
        asymmetric like the bootstrap's and usually closer to it than the symmetric delta-method one.
        """
        from jaxlaws.fitting.covariance import normal_quantile

        if self.covariance is None:
            raise ValueError("this fit carries no covariance (fit it with jaxlaws.fit / fit_batched, which compute it)")
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        z = normal_quantile(0.5 + 0.5 * float(level))
        if not paper or self.law.to_paper is None:  # no converter: the paper's names are the law's own
            est, se = self.params_dict, self.stderr
            return {n: (est[n] - z * se[..., i], est[n] + z * se[..., i]) for i, n in enumerate(self.param_names)}
        names, value, cov = self._paper_covariance()
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        return {n: (value[..., i] - z * se[..., i], value[..., i] + z * se[..., i]) for i, n in enumerate(names)}

    def _paper_covariance(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """``(names, values ([B,] q), covariance ([B,] q, q))`` of ``law.to_paper`` by the delta method."""
        from jaxlaws.fitting.covariance import propagate

        p = np.asarray(self.params, np.float64)
        flat = p.reshape(-1, p.shape[-1])
        names = tuple(self.law.to_paper(flat[:1]).keys())

        def vec(theta):
            d = self.law.to_paper(theta)
            return np.stack([np.asarray(d[n], np.float64) for n in names], axis=-1)

        ok = np.all(np.isfinite(flat), axis=1)
        safe = np.where(ok[:, None], flat, 0.0)
        try:  # a traceable converter: exact derivatives, one vmapped jacobian for the batch
            with jax.enable_x64(True):
                g = np.asarray(
                    jax.vmap(
                        jax.jacobian(
                            lambda t: jax.numpy.stack(
                                [jax.numpy.asarray(v) for v in self.law.to_paper(t).values()], axis=-1
                            )
                        )
                    )(safe),
                    np.float64,
                )
        except Exception:  # a NumPy converter does not trace: central differences on the host, batched
            h = 1e-6 * (1.0 + np.abs(safe))
            g = np.stack(
                [
                    (vec(safe + h[:, j, None] * e) - vec(safe - h[:, j, None] * e)) / (2 * h[:, j, None])
                    for j, e in enumerate(np.eye(flat.shape[1]))
                ],
                axis=-1,
            )  # (B, q, P)
        g = np.where(ok[:, None, None], g, np.nan)
        cov = np.asarray(self.covariance, np.float64).reshape(-1, flat.shape[1], flat.shape[1])
        with jax.enable_x64(True):
            out = np.asarray(propagate(g, cov), np.float64)
        value = np.where(ok[:, None], vec(safe), np.nan)
        q = len(names)
        return names, value.reshape(p.shape[:-1] + (q,)), out.reshape(p.shape[:-1] + (q, q))

    @property
    def max_row_sum_error(self) -> Any:
        """Largest ``|row sum - 1|`` of the input mixtures as given, per problem (``None`` if not mixtures)."""
        if self.row_sum_error is None:
            return None
        return np.max(np.abs(np.nan_to_num(self.row_sum_error)), axis=-1)  # NaN: padding of a ragged batch

    @property
    def n_renormalized(self) -> Any:
        """Rows divided by a sum other than 1 (0 unless ``normalized``), per problem."""
        if self.row_sum_error is None:
            return None
        return np.sum(np.abs(self.row_sum_error) > 1e-12, axis=-1) * int(self.normalized)

    @property
    def batched(self) -> bool:
        return np.ndim(self.objective) == 1

    def __len__(self) -> int:
        if not self.batched:
            raise TypeError("a single fit has no length")
        return int(np.shape(self.objective)[0])

    def __getitem__(self, i: Any) -> FitResult:
        if not self.batched:
            raise TypeError("index a batched FitResult (from fit_batched)")
        return dataclasses.replace(
            self, **{f: getattr(self, f)[i] for f in self._ARRAY_FIELDS if getattr(self, f) is not None}
        )

    def predict(self, x: Table, *, normalize: bool | None = None, simplex_atol: float | None = None) -> np.ndarray:
        """Predictions of the fitted law at ``x``, checked as :func:`jaxlaws.fit` checks it: finite, of the
        law's kind (mixtures on the simplex, with the fit's ``normalize`` / ``simplex_atol`` unless given;
        a table or dict of columns by the law's input names). A single fit takes ``(n, d)`` (a 1-D ``x`` is one
        column) and returns ``(n[, k])``; a batched result takes ``(B, n, d)`` (one set of points per problem) or
        ``(n, d)`` shared by all, and returns ``(B, n[, k])`` (NaN for a failed fit), in one vmapped call."""
        opts = validate.predict_options(self, normalize, simplex_atol)
        if not self.batched:
            x = validate.check_x(self.law, x, **opts)
            with jax.enable_x64(True):
                return np.asarray(self.law.predict(np.asarray(self.params, np.float64), x))
        from jaxlaws.fitting.metrics import batched_predict

        per_problem = np.ndim(x) == 3
        x = validate.check_x(self.law, x, batched=per_problem, **opts)
        if per_problem and x.shape[0] != len(self):
            raise ValueError(f"x holds {x.shape[0]} problems but the result holds {len(self)}")
        if not per_problem:
            x = np.broadcast_to(x, (len(self),) + x.shape)
        theta = np.asarray(self.params, np.float64)
        bad = ~np.all(np.isfinite(theta), axis=1)
        with jax.enable_x64(True):
            pred = np.asarray(batched_predict(self.law.predict)(np.where(bad[:, None], 0.0, theta), x))
        return np.where(bad.reshape((-1,) + (1,) * (pred.ndim - 1)), np.nan, pred)

    def as_dict(self) -> dict[str, Any]:
        """Parameters by name plus the fit metrics (single fits only)."""
        if self.batched:
            raise TypeError("as_dict on a single fit: result[i].as_dict()")
        out: dict[str, Any] = {n: float(v) for n, v in zip(self.param_names, self.params)}
        out.update(
            objective=float(self.objective),
            mse=float(self.mse),
            r2=float(self.r2),
            n_points=int(self.n_points),
            converged=bool(self.converged),
            success=bool(self.success),
            flags=",".join(self.flags),
            ok=bool(self.ok),
        )
        return out

    def __repr__(self) -> str:
        if self.batched:
            return (
                f"FitResult({self.law.name}, batch of {len(self)}, success {int(np.sum(self.success))}/"
                f"{len(self)}, flagged {int(np.sum(~self.ok))}, mean R2 {np.nanmean(self.r2):.4f})"
            )
        ps = ", ".join(f"{n}={v:.5g}" for n, v in zip(self.param_names, np.atleast_1d(self.params)))
        return (
            f"FitResult({self.law.name}: {ps}; objective={float(self.objective):.4g}, "
            f"mse={float(self.mse):.3g}, r2={float(self.r2):.4f}, n={int(self.n_points)}, "
            f"converged={bool(self.converged)}" + (f", flags={','.join(self.flags)}" if self.flags else "") + ")"
        )


# FitResult is a pytree: its numeric arrays are the leaves (``None`` fields are empty subtrees), the law, the
# flags and the fit's options ride along as static data -- so ``jax.tree.map(jnp.asarray, res)`` puts a result
# on a device and ``jax.tree_util.tree_leaves(res)`` lists its arrays.
_LEAF_FIELDS = tuple(f for f in FitResult._ARRAY_FIELDS if f != "flags")
_AUX_FIELDS = ("law", "selection", "flags", "normalized", "bounds", "penalty", "simplex_atol")


def _flatten_fit_result(res: FitResult):
    flags = res.flags
    if isinstance(flags, np.ndarray):  # one tuple per problem: hashable as a tuple of tuples
        flags = ("batched",) + tuple(tuple(f) for f in flags)
    aux = tuple(flags if f == "flags" else getattr(res, f) for f in _AUX_FIELDS)
    keys = tuple((jax.tree_util.GetAttrKey(f), getattr(res, f)) for f in _LEAF_FIELDS)
    return keys, aux


def _unflatten_fit_result(aux, children) -> FitResult:
    kw = dict(zip(_AUX_FIELDS, aux))
    flags = kw["flags"]
    if isinstance(flags, tuple) and flags[:1] == ("batched",):
        arr = np.empty(len(flags) - 1, dtype=object)
        arr[:] = list(flags[1:])
        kw["flags"] = arr
    kw.update(zip(_LEAF_FIELDS, children))
    return FitResult(**kw)


jax.tree_util.register_pytree_with_keys(FitResult, _flatten_fit_result, _unflatten_fit_result)
