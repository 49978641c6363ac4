r"""Fixed parameters: a law over its free parameters only, and the way back to the full parameter vector.

Fixing the parameters :math:`\theta_K = v` of a law :math:`f(x; \theta)` gives the law

.. math:: g(x; \theta_F) = f\big(x; \iota(\theta_F)\big), \qquad \iota(\theta_F)_j =
          \begin{cases} (\theta_F)_j & j \in F \\ v_j & j \in K \end{cases}

over the free parameters :math:`F` alone -- an ordinary :class:`~jaxlaws.laws.Law`, so every fit, count
check and diagnostic sees only what is estimated. :func:`fix` builds it; :class:`Fixing` also restricts
what a fit is given in terms of the full law (inits, bounds, penalty) and maps a fit of ``g`` back to
the full vector (:meth:`Fixing.result`).

The free law keeps what it can of the full one: its init grid (the free columns, duplicate rows
dropped), default bounds, penalty and exponents on the free parameters, the paper converter (through
:math:`\iota`) and a :class:`~jaxlaws.laws.SingleIndex`: fixed head parameters are constants of the
head; fixed index coefficients :math:`\beta_K` move into it as a per-point offset,
:math:`z = \Phi_F\beta_F + \Phi_K\beta_K`. A law linear in its parameters becomes affine (the fixed
columns' contribution is an offset), and is fitted by the Gauss-Newton solver from zero (one step is
exact for least squares).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxlaws.fitting import regularise
from jaxlaws.laws.base import Array, Law, SingleIndex

__all__ = ["Fixing", "fixing", "fix"]


def _as_values(law: Law, fixed: Any) -> tuple[tuple[str, float], ...]:
    """``{name: value}`` checked against the law: known names, finite numbers, at least one left free."""
    if not isinstance(fixed, Mapping):
        raise ValueError(f"fixed must be a mapping {{name: value}}, got {type(fixed).__name__}")
    regularise.known_names(law, fixed, "fixed names")
    out = []
    for name in law.param_names:
        if name not in fixed:
            continue
        v = fixed[name]
        try:
            val = float(np.asarray(v, np.float64).reshape(()))
        except (TypeError, ValueError):
            val = math.nan
        if isinstance(v, bool) or not math.isfinite(val):
            raise ValueError(f"{law.name}: fixed value of {name} must be one finite number, got {v!r}")
        out.append((name, val))
    if len(out) == law.n_params:
        raise ValueError(f"{law.name}: every parameter is fixed ({list(law.param_names)}); nothing to fit")
    return tuple(out)


def _xp(a: Any):
    return np if isinstance(a, (np.ndarray, np.generic, numbers.Number, list, tuple)) else jnp


@dataclasses.dataclass(frozen=True)
class _Insert:
    """:math:`\\iota`: free parameters ``(..., F)`` -> the full vector ``(..., P)`` (NumPy in, NumPy out;
    traceable for JAX values). A dataclass, so equal fixings compare equal (the engine caches on them)."""

    n: int
    free: tuple[int, ...]
    fixed: tuple[int, ...]
    values: tuple[float, ...]

    def __call__(self, theta: Any) -> Any:
        xp = _xp(theta)
        theta = xp.asarray(theta)
        if theta.shape[-1:] != (len(self.free),):
            raise ValueError(f"expected {len(self.free)} free parameters, got an array of shape {theta.shape}")
        vals = xp.broadcast_to(xp.asarray(self.values, dtype=theta.dtype), theta.shape[:-1] + (len(self.fixed),))
        # slices and one concatenation (no gather): what every evaluator of a law, the host run's included, reads
        parts = [
            theta[..., self.free.index(j) : self.free.index(j) + 1]
            if j in self.free
            else vals[..., self.fixed.index(j) : self.fixed.index(j) + 1]
            for j in range(self.n)
        ]
        return xp.concatenate(parts, axis=-1)


@dataclasses.dataclass(frozen=True)
class _Predict:
    base: Callable[[Array, Array], Array]
    insert: _Insert

    def __call__(self, params: Array, x: Array) -> Array:
        return self.base(self.insert(params), x)


@dataclasses.dataclass(frozen=True)
class _Features:
    base: Callable[[Array], Array]
    cols: tuple[int, ...]

    def __call__(self, x: Array) -> Array:
        return self.base(x)[:, list(self.cols)]


@dataclasses.dataclass(frozen=True)
class _Head:
    """The head with its fixed parameters filled in and the fixed index coefficients' offset added to ``z``."""

    base: Callable[[Array, Array, Array], Array]
    features: Callable[[Array], Array]
    insert: _Insert  # over the head's parameters only
    fixed_cols: tuple[int, ...]
    fixed_beta: tuple[float, ...]

    def __call__(self, h: Array, z: Array, x: Array) -> Array:
        if self.fixed_cols:
            z = z + self.features(x)[:, list(self.fixed_cols)] @ jnp.asarray(self.fixed_beta, z.dtype)
        return self.base(self.insert(h), z, x)


@dataclasses.dataclass(frozen=True)
class _Grid:
    base: Callable
    free: tuple[int, ...]

    def __call__(self, key: Any, x: Any, y: Any) -> np.ndarray:
        g = np.asarray(self.base(key, x, y), np.float64)[:, list(self.free)]
        _, first = np.unique(g, axis=0, return_index=True)  # dropping columns repeats rows: run each once
        return g[np.sort(first)]


@dataclasses.dataclass(frozen=True)
class _Zeros:
    n: int

    def __call__(self, key: Any, x: Any, y: Any) -> np.ndarray:
        return np.zeros((1, self.n))


@dataclasses.dataclass(frozen=True)
class _Paper:
    base: Callable
    insert: _Insert

    def __call__(self, params: Any) -> dict:
        return self.base(self.insert(params))


def _index(index: SingleIndex, fixed: dict[str, float], names: tuple[str, ...]) -> SingleIndex | None:
    s = index.start
    head_names, beta_names = names[:s], names[s:]
    free_cols = tuple(j for j, n in enumerate(beta_names) if n not in fixed)
    if not free_cols:  # every index coefficient fixed: nothing left for the structure to speed up
        return None
    fixed_cols = tuple(j for j, n in enumerate(beta_names) if n in fixed)
    head_free = tuple(j for j, n in enumerate(head_names) if n not in fixed)
    head_fixed = tuple(j for j, n in enumerate(head_names) if n in fixed)
    ins = _Insert(s, head_free, head_fixed, tuple(fixed[head_names[j]] for j in head_fixed))
    head = _Head(index.head, index.features, ins, fixed_cols, tuple(fixed[beta_names[j]] for j in fixed_cols))
    return SingleIndex(len(head_free), _Features(index.features, free_cols), head)


def _penalty_of(penalty: Any, free: tuple[str, ...], exponents: tuple[str, ...]) -> Any:
    """A ridge restricted to the free parameters (``None`` when it names none of them)."""
    if penalty is None or not hasattr(penalty, "lam"):
        return penalty
    names = penalty.params
    if names is None:
        return penalty if exponents else None
    kept = tuple(n for n in names if n in free)
    return dataclasses.replace(penalty, params=kept) if kept else None


@dataclasses.dataclass(frozen=True, eq=False)
class Fixing:
    """A law with some parameters fixed: the free law (``free``), the full law (``law``) and the maps between.

    Attributes:
      law: the full law.
      values: ``((name, value), ...)`` of the fixed parameters, in the law's order.
      free: the law over the free parameters (:func:`fix`).
      insert: free parameters ``(..., F)`` -> full ``(..., P)``.
    """

    law: Law
    values: tuple[tuple[str, float], ...]
    free: Law
    insert: _Insert

    @property
    def fixed_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.values)

    def inits(self, inits: Any) -> Any:
        """Inits for the free law from inits given for the full law (``(..., P)``, or by name with or without
        the fixed names) or already for the free law (``(..., F)``)."""
        if inits is None:
            return None
        if isinstance(inits, Mapping) or (hasattr(inits, "columns") and hasattr(inits, "to_numpy")):
            cols = list(inits.keys()) if isinstance(inits, Mapping) else list(inits.columns)
            keep = [c for c in cols if c not in self.fixed_names]
            return {c: inits[c] for c in keep} if isinstance(inits, Mapping) else inits[keep]
        arr = np.asarray(inits)
        if arr.ndim >= 1 and arr.shape[-1] == self.law.n_params:
            return arr[..., list(self.insert.free)]
        return inits

    def bounds(self, bounds: Any) -> Any:
        """``bounds`` without the fixed parameters (each fixed value must lie inside its bounds, if any)."""
        if not isinstance(bounds, Mapping):
            return bounds  # "law" (the free law's defaults), None, or an error for resolve_bounds to report
        for name, v in self.values:
            if name in bounds:
                lo, hi = bounds[name]
                if (lo is not None and v < float(lo)) or (hi is not None and v > float(hi)):
                    raise ValueError(f"{self.law.name}: {name} is fixed at {v:g}, outside its bounds ({lo}, {hi})")
        return {k: b for k, b in bounds.items() if k not in self.fixed_names}

    def penalty(self, penalty: Any) -> Any:
        """``penalty`` restricted to the free parameters (a fixed parameter's penalty is a constant)."""
        if isinstance(penalty, str):
            return penalty  # "law": the free law's default (already restricted)
        return _penalty_of(penalty, self.free.param_names, self.free.exponents)

    def result(self, res: Any) -> Any:
        """A fit of the free law as a result of the full law: the fixed values inserted into ``params`` (NaN
        rows stay NaN), ``bounds`` and ``penalty`` re-indexed, ``covariance`` zero in the fixed rows and
        columns (a fixed parameter is not estimated)."""
        p = np.asarray(res.params, np.float64)
        full = self.insert(np.nan_to_num(p))
        full = np.where(np.all(np.isfinite(p), axis=-1, keepdims=True), full, np.nan)
        changes: dict[str, Any] = {"law": self.law, "params": full}
        free = list(self.insert.free)
        if res.bounds is not None:
            box = [(-math.inf, math.inf)] * self.law.n_params
            for j, b in zip(free, res.bounds):
                box[j] = tuple(b)
            changes["bounds"] = tuple(box)
        if res.penalty is not None:
            lam, idx, center = res.penalty
            changes["penalty"] = (lam, tuple(free[i] for i in idx), center)
        cov = getattr(res, "covariance", None)
        if cov is not None:
            cov = np.asarray(cov, np.float64)
            big = np.zeros(cov.shape[:-2] + (self.law.n_params, self.law.n_params))
            big[..., np.ix_(free, free)[0], np.ix_(free, free)[1]] = cov
            changes["covariance"] = big
        return dataclasses.replace(res, **changes)


def fixing(law: Law, fixed: Mapping[str, Any]) -> Fixing:
    """The :class:`Fixing` of ``law`` with ``fixed = {name: value}`` (see the module docstring)."""
    return _fixing(law, _as_values(law, fixed))


@functools.lru_cache(maxsize=64)  # the same fixing gives the same free law (and so the same compiled program)
def _fixing(law: Law, values: tuple[tuple[str, float], ...]) -> Fixing:
    fixed = dict(values)
    names = law.param_names
    free = tuple(j for j, n in enumerate(names) if n not in fixed)
    kept = tuple(j for j, n in enumerate(names) if n in fixed)
    insert = _Insert(law.n_params, free, kept, tuple(fixed[names[j]] for j in kept))
    free_names = tuple(names[j] for j in free)
    exponents = tuple(n for n in law.exponents if n in free_names)
    grid = _Zeros(len(free)) if law.is_linear else None if law.init_grid is None else _Grid(law.init_grid, free)
    bounds = (
        None if law.default_bounds is None else {k: v for k, v in law.default_bounds.items() if k in free_names} or None
    )
    shown = ", ".join(f"{n}={v:g}" for n, v in values)
    sub = Law(
        f"{law.name}[{shown}]",
        free_names,
        _Predict(law.predict, insert),
        x_dim=law.x_dim,
        x_kind=law.x_kind,
        n_outputs=law.n_outputs,
        init_grid=grid,
        needs_key=law.needs_key and not law.is_linear,
        output_range=law.output_range,
        default_objective=law.default_objective,
        exponents=exponents,
        default_bounds=bounds,
        default_penalty=_penalty_of(law.default_penalty, free_names, exponents),
        to_paper=None if law.to_paper is None else _Paper(law.to_paper, insert),
        index=None if law.index is None else _index(law.index, fixed, names),
        inputs=law.inputs,
    )
    return Fixing(law, values, sub, insert)


def fix(law: Law, fixed: Mapping[str, float]) -> Law:
    """``law`` with some parameters held at fixed values: a :class:`Law` over the free parameters only.

    E.g. ``fix(chinchilla(), {"alpha": 0.34})``. The free parameters keep the law's order; fitting the returned
    law fits them alone (:func:`jaxlaws.fit` with ``fixed=`` does that and returns the full vector).

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      fixed: ``{name: value}`` of the parameters to hold.

    Returns:
      The :class:`Law` of the free parameters (``P - len(fixed)`` of them).
    """
    return fixing(law, fixed).free
