"""Boundary checks: every bad input becomes a clear ``ValueError`` before anything is compiled."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from jaxlaws.laws.base import Law

SIMPLEX_ATOL = 1e-4


def as_float_array(name: str, a: Any) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric: {e}") from None
    return arr


def _finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def check_x(law: Law, x: Any, batched: bool = False) -> np.ndarray:
    """Return ``x`` as float64 of shape ``([B,] n, d)``; a 1-D ``x`` is taken as one column."""
    x = as_float_array("x", x)
    core = x.ndim - (1 if batched else 0)
    if core == 1:
        x = x[..., None]
    elif core != 2:
        raise ValueError(f"x must have shape {'(B, ' if batched else '('}n, {law.x_dim}), got {x.shape}")
    if x.shape[-1] != law.x_dim:
        raise ValueError(f"{law.name} expects x with {law.x_dim} column(s), got shape {x.shape}")
    _finite("x", x)
    if law.x_kind in ("simplex", "unit"):
        if np.any(x < -SIMPLEX_ATOL) or np.any(x > 1 + SIMPLEX_ATOL):
            raise ValueError(f"{law.name}: proportions in x must lie in [0, 1] "
                             f"(min {x.min():.4g}, max {x.max():.4g})")
    if law.x_kind == "simplex":
        s = x.sum(axis=-1)
        if np.any(np.abs(s - 1) > SIMPLEX_ATOL):
            i = np.unravel_index(np.argmax(np.abs(s - 1)), s.shape)
            raise ValueError(f"{law.name}: each row of x must be a mixture summing to 1; row "
                             f"{tuple(int(v) for v in i)} sums to {s[i]:.6g}")
    if law.x_kind == "positive" and np.any(x <= 0):
        raise ValueError(f"{law.name}: x must be strictly positive")
    return x


def check_y(law: Law, y: Any, n: int, batched: bool = False, positive: bool = False) -> np.ndarray:
    y = as_float_array("y", y)
    lead = 1 if batched else 0
    want = (n,) if law.n_outputs == 1 else (n, law.n_outputs)
    if y.shape[lead:] != want:
        raise ValueError(f"{law.name}: y must have shape {('(B, ' if batched else '(') + str(want)[1:]}"
                         f" to match x's {n} points, got {y.shape}")
    _finite("y", y)
    if positive and np.any(y <= 0):
        raise ValueError("a log-space objective needs strictly positive y")
    return y


def check_mask(mask: Optional[Any], shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != shape:
        raise ValueError(f"mask must be a boolean array of shape {shape}, got {m.dtype} {m.shape}")
    return m


def check_counts(law: Law, n_used: np.ndarray, what: str = "points") -> None:
    need = law.n_params
    per_point = law.n_outputs
    short = np.asarray(n_used) * per_point < need
    if np.any(short):
        got = int(np.min(n_used))
        raise ValueError(f"{law.name} has {need} free parameters but a fit has only {got} {what}"
                         + (f" x {per_point} outputs" if per_point > 1 else "")
                         + "; give more points or fix parameters")


def check_inits(law: Law, inits: Any, batch: Optional[int] = None) -> np.ndarray:
    inits = as_float_array("inits", inits)
    if inits.ndim == 1:
        inits = inits[None]
    if inits.shape[-1] != law.n_params:
        raise ValueError(f"{law.name} has {law.n_params} parameters {law.param_names}; the init grid has "
                         f"width {inits.shape[-1]}")
    if inits.ndim == 3 and (batch is None or inits.shape[0] != batch):
        raise ValueError(f"a per-problem init grid must have shape (B={batch}, n_init, {law.n_params}), "
                         f"got {inits.shape}")
    if inits.ndim not in (2, 3) or inits.shape[-2] == 0:
        raise ValueError(f"inits must have shape (n_init, {law.n_params}), got {inits.shape}")
    _finite("inits", inits)
    return inits
