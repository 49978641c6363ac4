"""The result object of a fit (optimistix-style: one verb returns one value describing the solution)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

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
        iterations below the solver's tolerance; always True for closed-form fits).
      success: a finite objective was reached.
      init_objectives: every init's final (selected-over-trajectory) objective, ``([B,] n_init)``; ``inf``
        marks a diverged init.
      selection: how the best init was chosen: ``"trajectory"``, ``"final"``, ``"holdout"`` or
        ``"closed_form"``.
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

    _ARRAY_FIELDS = ("params", "objective", "mse", "r2", "n_points", "converged", "success", "init_objectives")

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
        return dataclasses.replace(self, **{f: getattr(self, f)[i] for f in self._ARRAY_FIELDS})

    def predict(self, x: Any) -> np.ndarray:
        """Predictions of the fitted law at ``x`` (single fits only)."""
        if self.batched:
            raise TypeError("predict on a single fit: result[i].predict(x)")
        x = np.asarray(x, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        with jax.enable_x64(True):
            return np.asarray(self.law.predict(np.asarray(self.params, np.float64), x))

    def as_dict(self) -> dict[str, Any]:
        """Parameters by name plus the fit metrics (single fits only)."""
        if self.batched:
            raise TypeError("as_dict on a single fit: result[i].as_dict()")
        out: dict[str, Any] = {n: float(v) for n, v in zip(self.param_names, self.params)}
        out.update(objective=float(self.objective), mse=float(self.mse), r2=float(self.r2),
                   n_points=int(self.n_points), converged=bool(self.converged), success=bool(self.success))
        return out

    def __repr__(self) -> str:
        if self.batched:
            return (f"FitResult({self.law.name}, batch of {len(self)}, success {int(np.sum(self.success))}/"
                    f"{len(self)}, mean R2 {np.nanmean(self.r2):.4f})")
        ps = ", ".join(f"{n}={v:.5g}" for n, v in zip(self.param_names, np.atleast_1d(self.params)))
        return (f"FitResult({self.law.name}: {ps}; objective={float(self.objective):.4g}, "
                f"mse={float(self.mse):.3g}, r2={float(self.r2):.4f}, n={int(self.n_points)}, "
                f"converged={bool(self.converged)})")
