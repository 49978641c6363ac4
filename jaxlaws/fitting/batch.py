r"""A batch of fitting problems as padded arrays with masks: ragged problems, per-point weights and splits.

Problems of unequal size (``fit_batched(law, [x16, x15], [y16, y15])``) are padded to the longest one -- a
padded point repeats the problem's first point and gets weight 0 -- so they run as one compiled program.
Every point then belongs to exactly one role:

* **fitting** (``present & ~validation & ~test``, weighted by ``weights``): enters the objective
  :math:`\sum_n w_n \rho(r_n)`;
* **validation** (select-by): excluded from fitting, used to choose the init (and to stop early);
* **test** (score-only): excluded from fitting and from every choice; its error is reported.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jaxlaws.fitting import validate
from jaxlaws.laws.base import Law

__all__ = ["Batch", "build"]


@dataclasses.dataclass(frozen=True)
class Batch:
    """Padded problems: ``x (B, n, d)``, ``y (B, n[, k])``, ``present (B, n)`` (False on padding),
    ``weights (B, n)`` (0 on padding), ``validation`` and ``test`` ``(B, n)`` boolean."""

    x: np.ndarray
    y: np.ndarray
    present: np.ndarray
    weights: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def fitting(self) -> np.ndarray:
        """Points that enter the objective: present, in neither split, with positive weight."""
        return self.present & ~self.validation & ~self.test & (self.weights > 0)

    @property
    def sizes(self) -> np.ndarray:
        return self.present.sum(axis=1)


def _ragged(a: Any) -> bool:
    return isinstance(a, (list, tuple)) and len(a) > 0 and any(np.shape(v)[:1] != np.shape(a[0])[:1] for v in a[1:])


def build(
    law: Law,
    x: Any,
    y: Any,
    weights: Any = None,
    validation: Any = None,
    test: Any = None,
    positive: bool = False,
    simplex_atol: float = validate.SIMPLEX_ATOL,
) -> Batch:
    """Check and pad a (possibly ragged) batch; masks and weights follow the layout of ``x``."""
    if _ragged(x) or _ragged(y):
        if not (isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)) and len(x) == len(y)):
            raise ValueError("ragged problems: give x and y as lists of the same length, one array per problem")
        xs, ys = [], []
        for b, (xb, yb) in enumerate(zip(x, y)):
            try:
                xs.append(validate.check_x(law, xb, simplex_atol=simplex_atol))
                ys.append(validate.check_y(law, yb, len(xs[-1]), positive=positive))
            except validate.FitInputError as e:
                raise validate.FitInputError(
                    f"problem {b} of the batch: {e.detail}", problem=b, detail=e.detail
                ) from None
            except ValueError as e:  # the shapes as given, with the problem they belong to
                raise validate.FitInputError(f"problem {b} of the batch: {e}", problem=b, detail=str(e)) from None
        sizes = [len(xb) for xb in xs]
        n = max(sizes)
        present = np.arange(n)[None, :] < np.asarray(sizes)[:, None]
        xp = np.stack([_pad(xb, n) for xb in xs])
        yp = np.stack([_pad(yb, n) for yb in ys])
        ragged_sizes = sizes
    else:
        xp = validate.check_x(law, x, batched=True, simplex_atol=simplex_atol)
        yp = validate.check_y(law, y, xp.shape[1], batched=True, positive=positive)
        if yp.shape[0] != xp.shape[0]:
            raise ValueError(f"x holds {xp.shape[0]} problems but y holds {yp.shape[0]}")
        present = np.ones(xp.shape[:2], bool)
        ragged_sizes = None
    shape = present.shape
    w = _per_point("weights", weights, shape, ragged_sizes, float)
    if w is None:
        w = np.ones(shape)
    elif np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    val = _per_point("validation", validation, shape, ragged_sizes, bool)
    tst = _per_point("test", test, shape, ragged_sizes, bool)
    val = np.zeros(shape, bool) if val is None else val & present
    tst = np.zeros(shape, bool) if tst is None else tst & present
    if np.any(val & tst):
        raise ValueError("a point cannot be in both validation and test")
    return Batch(xp, yp, present, np.where(present, w, 0.0), val, tst)


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([a, np.repeat(a[:1], n - len(a), axis=0)]) if len(a) < n else a


def _per_point(name: str, a: Any, shape: tuple[int, int], sizes: list[int] | None, kind: type) -> np.ndarray | None:
    """A per-point array as ``(B, n)``: ``(n,)`` is shared by every problem, ``(B, n)`` per problem; for ragged
    problems a list of ``(n_b,)`` arrays (padded with zeros / False)."""
    if a is None:
        return None
    if sizes is not None:
        if not isinstance(a, (list, tuple)) or len(a) != len(sizes):
            raise ValueError(f"{name} for ragged problems must be a list of {len(sizes)} arrays, one per problem")
        rows = [_as(name, v, (s,), kind) for v, s in zip(a, sizes)]
        return np.stack([np.concatenate([r, np.zeros(shape[1] - len(r), r.dtype)]) for r in rows])
    arr = np.asarray(a)
    if arr.shape == shape[1:]:
        arr = np.broadcast_to(arr, shape)
    return _as(name, arr, shape, kind)


def _as(name: str, a: Any, shape: tuple[int, ...], kind: type) -> np.ndarray:
    arr = np.asarray(a)
    if kind is bool:
        if arr.dtype != bool or arr.shape != shape:
            raise ValueError(f"{name} must be a boolean mask of shape {shape}, got {arr.dtype} {arr.shape}")
        return np.array(arr)
    arr = validate.as_float_array(name, arr)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return np.array(arr)
