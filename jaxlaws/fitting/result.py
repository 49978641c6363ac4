"""The result object of a fit (optimistix-style: one verb returns one value describing the solution)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from jaxlaws.fitting import validate
from jaxlaws.laws.base import Law


class FitError(ValueError):
    """A fit produced no usable parameters (every init diverged)."""


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

    _ARRAY_FIELDS = ("params", "objective", "mse", "r2", "n_points", "converged", "success", "init_objectives",
                     "decrement", "rank", "n_distinct", "identifiable", "saturated", "flags")

    def __post_init__(self) -> None:
        if self.flags is None:  # built without diagnostics: flag what the metrics alone show
            from jaxlaws.fitting.diagnostics import flags_of

            batched = np.ndim(self.objective) == 1
            at = (lambda v: None if v is None else np.atleast_1d(v))  # noqa: E731
            flags = flags_of(at(self.success), at(self.converged), at(self.saturated),
                             at(self.identifiable), None, at(self.r2))
            object.__setattr__(self, "flags", flags if batched else flags[0])

    @property
    def ok(self) -> Any:
        """True where a fit carries no flag (an array when batched)."""
        if self.batched:
            return np.array([len(f) == 0 for f in self.flags], bool)
        return len(self.flags) == 0
    @property
    def param_names(self) -> tuple[str, ...]:
        return self.law.param_names

    @property
    def batched(self) -> bool:
        return np.ndim(self.objective) == 1

    def __len__(self) -> int:
        if not self.batched:
            raise TypeError("a single fit has no length")
        return int(np.shape(self.objective)[0])

    def __getitem__(self, i: Any) -> "FitResult":
        if not self.batched:
            raise TypeError("index a batched FitResult (from fit_batched)")
        return dataclasses.replace(self, **{f: getattr(self, f)[i] for f in self._ARRAY_FIELDS
                                            if getattr(self, f) is not None})

    def predict(self, x: Any) -> np.ndarray:
        """Predictions of the fitted law at ``x`` (single fits only), checked as :func:`jaxlaws.fit` checks
        it: ``(n, d)`` (a 1-D ``x`` is one column), finite, of the law's kind (mixtures on the simplex)."""
        if self.batched:
            raise TypeError("predict on a single fit: result[i].predict(x)")
        x = validate.check_x(self.law, x)
        with jax.enable_x64(True):
            return np.asarray(self.law.predict(np.asarray(self.params, np.float64), x))

    def as_dict(self) -> dict[str, Any]:
        """Parameters by name plus the fit metrics (single fits only)."""
        if self.batched:
            raise TypeError("as_dict on a single fit: result[i].as_dict()")
        out: dict[str, Any] = {n: float(v) for n, v in zip(self.param_names, self.params)}
        out.update(objective=float(self.objective), mse=float(self.mse), r2=float(self.r2),
                   n_points=int(self.n_points), converged=bool(self.converged), success=bool(self.success),
                   flags=",".join(self.flags), ok=bool(self.ok))
        return out

    def __repr__(self) -> str:
        if self.batched:
            return (f"FitResult({self.law.name}, batch of {len(self)}, success {int(np.sum(self.success))}/"
                    f"{len(self)}, flagged {int(np.sum(~self.ok))}, mean R2 {np.nanmean(self.r2):.4f})")
        ps = ", ".join(f"{n}={v:.5g}" for n, v in zip(self.param_names, np.atleast_1d(self.params)))
        return (f"FitResult({self.law.name}: {ps}; objective={float(self.objective):.4g}, "
                f"mse={float(self.mse):.3g}, r2={float(self.r2):.4f}, n={int(self.n_points)}, "
                f"converged={bool(self.converged)}" + (f", flags={','.join(self.flags)}" if self.flags else "")
                + ")")
