"""Boundary checks: every bad input becomes a clear ``ValueError`` before anything is compiled."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxlaws.laws.base import Law

__all__ = [
    "SIMPLEX_ATOL",
    "FitInputError",
    "as_float_array",
    "check_x",
    "named_x",
    "check_x_rows",
    "mixtures",
    "predict_options",
    "check_y",
    "check_mask",
    "check_counts",
    "named_inits",
    "check_inits",
    "check_predict",
    "check_finite",
]

SIMPLEX_ATOL = 1e-4


class FitInputError(ValueError):
    """Data a fit refuses (a ``ValueError``).

    Attributes:
      problem: the index of the offending problem in a batch, else ``None``.
      detail: the message without the problem's index, so callers that built the batch (``jaxlaws.analysis``)
        can name the problem in their own terms.
    """

    def __init__(self, message: str, problem: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.problem = problem
        self.detail = message if detail is None else detail


def as_float_array(name: str, a: Any) -> np.ndarray:
    """``a`` as a float64 NumPy array, or ``ValueError`` naming ``name`` when it is not numeric."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric: {e}") from None
    return arr


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise ``ValueError`` naming ``name`` and the first index where ``a`` is NaN or inf."""
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def check_x(
    law: Law, x: Any, batched: bool = False, simplex_atol: float = SIMPLEX_ATOL, normalize: bool = False
) -> np.ndarray:
    """Return ``x`` as float64 of shape ``([B,] n, d)``; a 1-D ``x`` is taken as one column.

    For a law whose ``x`` is a mixture, rows must sum to 1 within ``simplex_atol`` (entries in [0, 1] within
    it too), unless ``normalize``: then each row is divided by its sum (entries need only be >= 0, so
    rounded mixtures, percentages or token counts all work; see :func:`check_x_rows`).
    """
    return check_x_rows(law, x, batched, simplex_atol, normalize)[0]


def _frame_like(x: Any) -> bool:
    return hasattr(x, "columns") and hasattr(x, "to_numpy")


def named_x(law: Law, x: Any, batched: bool = False) -> Any:
    r"""``x`` given by column name -- a pandas DataFrame or a mapping ``{name: column}`` (columns ``(n,)``, or
    ``(B, n)`` for a batch), or a list of those for ragged problems -- as an array ``([B,] n, d)`` in the order
    of ``law.inputs``; extra columns are ignored, a missing one is refused by name. Anything else (a plain
    array: columns by position) is returned as is."""
    if batched and isinstance(x, (list, tuple)) and any(isinstance(v, Mapping) or _frame_like(v) for v in x):
        return [named_x(law, v) for v in x]
    if isinstance(x, Mapping):
        have = list(x.keys())
        get = lambda k: x[k]  # noqa: E731
    elif _frame_like(x):
        have = list(x.columns)
        get = lambda k: x[k].to_numpy()  # noqa: E731
    else:
        return x
    kind = "mapping" if isinstance(x, Mapping) else "DataFrame"
    if law.inputs is None:
        raise ValueError(
            f"{law.name} does not name its inputs, so x given as a {kind} cannot be matched to them: "
            f"build the law with Law(..., inputs=({law.x_dim} column names)) or pass a plain array "
            "with the columns in the law's order"
        )
    missing = [n for n in law.inputs if n not in have]
    if missing:
        raise ValueError(
            f"{law.name}: x (a {kind}) has no column(s) {missing}; the law's inputs are "
            f"{list(law.inputs)} and x has {[str(c) for c in have]}"
        )
    cols = [as_float_array(f"x[{n!r}]", get(n)) for n in law.inputs]
    if any(c.shape != cols[0].shape for c in cols) or cols[0].ndim not in ((1, 2) if batched else (1,)):
        raise ValueError(
            f"{law.name}: the columns {list(law.inputs)} of x must be 1-D arrays "
            + ("(or (B, n) for a batch) " if batched else "")
            + f"of one shape, got {[c.shape for c in cols]}"
        )
    return np.stack(cols, axis=-1)


def check_x_rows(
    law: Law, x: Any, batched: bool = False, simplex_atol: float = SIMPLEX_ATOL, normalize: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`check_x`, plus each row's sum minus 1 *as given* (``([B,] n)``; ``None`` unless the law's
    ``x`` is a mixture), which a fit reports as ``FitResult.row_sum_error``. A DataFrame or a mapping of
    columns is matched to ``law.inputs`` by name (:func:`named_x`)."""
    x = as_float_array("x", named_x(law, x, batched))
    given = x.shape
    want = f"{'(B, ' if batched else '('}n, {law.x_dim})"
    core = x.ndim - (1 if batched else 0)
    if core == 1 and (law.x_dim == 1 or not batched):
        x = x[..., None]
    elif core != 2:
        more = (
            "; for one problem use jaxlaws.fit, or x[None]"
            if batched and core == 1
            else "; ragged problems go as a list of (n_b, d) arrays"
            if batched and x.ndim == 1
            else ""
        )
        raise ValueError(f"{law.name}: x must have shape {want}, got {given}{more}")
    if x.shape[-1] != law.x_dim:
        raise ValueError(f"{law.name} expects x with {law.x_dim} column(s), i.e. shape {want}, got shape {given}")
    check_finite("x", x)
    atol = _check_atol(simplex_atol)
    if normalize and law.x_kind != "simplex":
        raise ValueError(
            f"normalize=True divides mixtures by their row sums, but {law.name}'s x is {law.x_kind!r}, not a mixture"
        )
    row_err = None
    if law.x_kind == "simplex":
        s = x.sum(axis=-1)
        row_err = s - 1.0
        if normalize:
            if np.any(x < -atol) or np.any(s <= 0):
                raise ValueError(
                    f"{law.name}: normalize=True needs entries >= 0 and rows with a positive sum "
                    f"(min entry {x.min():.4g}, min row sum {s.min():.4g})"
                )
            x = np.clip(x, 0.0, None)
            x = x / x.sum(axis=-1, keepdims=True)
    if law.x_kind in ("simplex", "unit") and (np.any(x < -atol) or np.any(x > 1 + atol)):
        raise ValueError(
            f"{law.name}: proportions in x must lie in [0, 1] within simplex_atol={atol:g} "
            f"(min {x.min():.4g}, max {x.max():.4g})"
            + ("; pass normalize=True if rows are percentages or counts" if law.x_kind == "simplex" else "")
        )
    if law.x_kind == "simplex" and not normalize:
        off = np.abs(row_err) > atol
        if np.any(off):
            i = np.unravel_index(np.argmax(np.abs(row_err)), row_err.shape)
            worst = float(np.abs(row_err[i]))
            fix = (
                f"For rounded mixtures pass simplex_atol={_suggest_atol(worst)} to fit them as they are, or "
                "normalize=True"
                if worst < 0.1
                else "Pass normalize=True"
            )
            raise ValueError(
                f"{law.name}: each row of x must be a mixture summing to 1 within simplex_atol={atol:g}; "
                f"{int(off.sum())} row(s) do not (row {tuple(int(v) for v in i)} sums to {s[i]:.6g}). {fix} "
                "to divide each row by its sum (the result's row_sum_error keeps how far each row was off)"
            )
    if law.x_kind == "positive" and np.any(x <= 0):
        raise ValueError(f"{law.name}: x must be strictly positive")
    return x, row_err


def mixtures(
    law: Law, x: Any, simplex_atol: float = SIMPLEX_ATOL, normalize: bool = False
) -> tuple[Any, np.ndarray | None]:
    """A batch's mixtures before the engine pads it: ``x`` (``(B, n, d)`` or a list of per-problem
    ``(n_b, d)`` arrays) with each row divided by its sum when ``normalize``, and each row's sum minus 1
    as given, ``(B, n_max)`` (NaN past a short problem's end); ``(x, None)`` unless the law's ``x`` is a
    mixture. Rows off by more than ``simplex_atol`` (without ``normalize``) are refused, naming the problem."""
    if (law.x_kind != "simplex" and not normalize) or (isinstance(x, (list, tuple)) and len(x) == 0):
        return x, None
    if not isinstance(x, (list, tuple)):
        return check_x_rows(law, x, True, simplex_atol, normalize)
    xs, errs = [], []
    for b, xb in enumerate(x):
        try:
            xb, eb = check_x_rows(law, xb, False, simplex_atol, normalize)
        except ValueError as e:
            raise FitInputError(f"problem {b} of the batch: {e}", problem=b, detail=str(e)) from None
        xs.append(xb)
        errs.append(eb)
    n = max(len(e) for e in errs)
    return xs, np.stack([np.concatenate([e, np.full(n - len(e), np.nan)]) for e in errs])


def predict_options(result: Any, normalize: bool | None = None, simplex_atol: float | None = None) -> dict[str, Any]:
    """The mixture options that check the inputs of ``result.predict``: those given, else those the fit used
    (``result.normalized``, ``result.simplex_atol``), so a result predicts any rows its fit accepted (rounded
    mixtures fitted with ``normalize=True`` or a wider ``simplex_atol``)."""
    if normalize is None:
        normalize = bool(getattr(result, "normalized", False))
    if simplex_atol is None:
        simplex_atol = getattr(result, "simplex_atol", SIMPLEX_ATOL)
    return {"normalize": bool(normalize), "simplex_atol": _check_atol(simplex_atol)}


def _check_atol(atol: Any) -> float:
    try:
        a = float(atol)
    except (TypeError, ValueError):
        a = math.nan
    if isinstance(atol, bool) or not (0 <= a < 1):
        raise ValueError(f"simplex_atol must be a number in [0, 1), got {atol!r}")
    return a


def _suggest_atol(worst: float) -> str:
    """A round tolerance just above the largest offset, e.g. 0.003 -> '0.005', 0.0199 -> '0.02'."""
    exp = math.floor(math.log10(worst))
    for mant in (1, 2, 5, 10):
        if mant * 10.0**exp >= worst * (1 + 1e-9):
            return f"{mant * 10.0**exp:.1g}"
    return f"{worst:.2g}"


def check_y(law: Law, y: Any, n: int, batched: bool = False, positive: bool = False) -> np.ndarray:
    """``y`` of shape ``([B,] n[, k])``, finite and strictly inside the law's ``output_range`` (a
    :class:`FitInputError` naming the first offending problem of a batch otherwise); ``positive`` for
    log-space objectives."""
    y = as_float_array("y", y)
    lead = 1 if batched else 0
    want = (n,) if law.n_outputs == 1 else (n, law.n_outputs)
    if y.shape[lead:] != want:
        raise ValueError(
            f"{law.name}: y must have shape {('(B, ' if batched else '(') + str(want)[1:]}"
            f" to match x's {n} points, got {y.shape}"
        )
    check_finite("y", y)
    if positive and np.any(y <= 0):
        raise ValueError("a log-space objective needs strictly positive y")
    lo, hi = law.output_range
    if lo > -np.inf or hi < np.inf:
        bad = (y <= lo) | (y >= hi)
        if np.any(bad):
            yb = y if batched else y[None]
            badb = bad if batched else bad[None]
            per = badb.reshape(len(yb), -1).sum(axis=1)
            first = int(np.flatnonzero(per)[0])
            vals = yb[first][badb[first]]
            rng = (
                "strictly positive values"
                if lo == 0 and hi == np.inf
                else f"values in the open interval ({lo:g}, {hi:g})"
            )
            more = f" ({int((per > 0).sum())} problems affected)" if batched and (per > 0).sum() > 1 else ""

            def say(where: str) -> str:
                return (
                    f"{law.name} can only predict {rng}, but {where} has {int(per[first])} value(s) outside "
                    f"(min {vals.min():.6g}, max {vals.max():.6g}){more}; no parameters can fit that. "
                    "Check the data (sign, units, an offset) or use a law without this restriction"
                )

            raise FitInputError(
                say(f"problem {first} of the batch" if batched else "y"),
                problem=first if batched else None,
                detail=say("y"),
            )
    return y


def check_mask(mask: Any | None, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as a boolean array of ``shape`` (all True when ``None``), or ``ValueError``."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != shape:
        raise ValueError(f"mask must be a boolean array of shape {shape}, got {m.dtype} {m.shape}")
    return m


def check_counts(law: Law, n_used: np.ndarray, what: str = "points") -> None:
    """Raise ``ValueError`` when a problem has fewer observations (``n_used`` points x outputs) than ``law`` has
    free parameters."""
    need = law.n_params
    per_point = law.n_outputs
    short = np.asarray(n_used) * per_point < need
    if np.any(short):
        got = int(np.min(n_used))
        raise ValueError(
            f"{law.name} has {need} free parameters but a fit has only {got} {what}"
            + (f" x {per_point} outputs" if per_point > 1 else "")
            + "; give more points or fix parameters"
        )


def named_inits(law: Law, inits: Any) -> Any:
    """Inits given by name (a mapping ``{name: values}``, a pandas DataFrame or a structured array) as an
    array in ``law.param_names`` order; names must match the law's exactly. Anything else is returned as
    is (a plain array is taken to be in ``law.param_names`` order)."""
    names = None
    if isinstance(inits, Mapping):
        names = list(inits.keys())
        get = lambda k: inits[k]  # noqa: E731
    elif hasattr(inits, "columns") and hasattr(inits, "to_numpy"):  # a DataFrame
        names = [str(c) for c in inits.columns]
        get = lambda k: inits[k].to_numpy()  # noqa: E731
    elif isinstance(inits, np.ndarray) and inits.dtype.names is not None:
        names = list(inits.dtype.names)
        get = lambda k: inits[k]  # noqa: E731
    if names is None:
        return inits
    want = list(law.param_names)
    if sorted(names) != sorted(want) or len(set(names)) != len(names):
        missing = [n for n in want if n not in names]
        extra = [n for n in names if n not in want]
        raise ValueError(
            f"{law.name}: the init grid names {names} do not match the law's parameters {want}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unknown {extra})" if extra else "")
        )
    cols = [as_float_array(f"inits[{n!r}]", get(n)) for n in want]
    if any(c.shape != cols[0].shape for c in cols):
        raise ValueError(f"{law.name}: every column of the init grid must have the same shape")
    return np.stack(cols, axis=-1)


def check_inits(law: Law, inits: Any, batch: int | None = None) -> np.ndarray:
    """Inits as ``(n_init, P)`` or ``(B, n_init, P)`` in ``law.param_names`` order; named inits (see
    :func:`named_inits`) are checked against the law's names and reordered."""
    inits = as_float_array("inits", named_inits(law, inits))
    if inits.ndim == 1:
        inits = inits[None]
    if inits.shape[-1] != law.n_params:
        raise ValueError(
            f"{law.name} has {law.n_params} parameters {law.param_names}; the init grid has width {inits.shape[-1]}"
        )
    if inits.ndim == 3 and (batch is None or inits.shape[0] != batch):
        raise ValueError(
            f"a per-problem init grid must have shape (B={batch}, n_init, {law.n_params}), got {inits.shape}"
        )
    if inits.ndim not in (2, 3) or inits.shape[-2] == 0:
        raise ValueError(f"inits must have shape (n_init, {law.n_params}), got {inits.shape}")
    check_finite("inits", inits)
    return inits


def check_predict(law: Law, x_shape: tuple[int, ...], dtype: Any = np.float64) -> None:
    """Trace ``law.predict`` abstractly (``jax.eval_shape``, nothing compiled or run) on parameters
    ``(P,)`` and ``x`` of shape ``x_shape = (n, d)`` in ``dtype``: it must return one array of shape ``(n,)``
    (``(n, k)`` for a law with ``k`` outputs) in ``dtype``. A wrong shape, dtype or signature is one
    ``ValueError`` naming the law and the shapes expected and got, before any fit compiles."""
    dtype = np.dtype(dtype)
    x_shape = tuple(int(v) for v in x_shape)
    try:
        hash(law.predict)
        check = _predict_problem
    except TypeError:  # an unhashable callable: checked every time
        check = _predict_problem.__wrapped__
    problem = check(law.predict, law.n_params, law.n_outputs, x_shape, dtype.name)
    if problem is not None:
        raise ValueError(f"law {law.name}: predict(params, x) {problem}")


def predict_jaxpr(predict: Any, n_params: int, x_shape: tuple[int, ...], dtype: str) -> tuple[Any, Any]:
    """``(closed jaxpr, output shape)`` of ``predict(params (n_params,), x x_shape)`` in ``dtype``, traced
    (nothing compiled or run); cached per hashable ``predict``, so the shape check and a host run trace once."""
    try:
        hash(predict)
    except TypeError:  # an unhashable callable: traced every time (a TypeError of the trace itself propagates)
        return _predict_jaxpr.__wrapped__(predict, n_params, tuple(x_shape), str(dtype))
    return _predict_jaxpr(predict, n_params, tuple(x_shape), str(dtype))


@functools.lru_cache(maxsize=256)
def _predict_jaxpr(predict: Any, n_params: int, x_shape: tuple[int, ...], dtype: str) -> tuple[Any, Any]:
    args = (jax.ShapeDtypeStruct((n_params,), dtype), jax.ShapeDtypeStruct(x_shape, dtype))
    with jax.enable_x64(dtype == "float64"):
        return jax.make_jaxpr(predict, return_shape=True)(*args)


@functools.lru_cache(maxsize=256)
def _predict_problem(predict: Any, n_params: int, n_outputs: int, x_shape: tuple[int, ...], dtype: str) -> str | None:
    """What is wrong with ``predict`` on these shapes (``None``: nothing); cached per predict function."""
    n = x_shape[0]
    want = (n,) if n_outputs == 1 else (n, n_outputs)
    call = f"with params ({n_params},) and x {x_shape} {dtype}"
    with jax.enable_x64(dtype == "float64"):
        try:
            inspect.signature(predict).bind(None, None)
        except TypeError as e:
            return f"must take two arguments, params and x: {e}"
        except ValueError:  # no signature to inspect (some builtins): let the call say
            pass
        try:
            _, out = predict_jaxpr(predict, n_params, x_shape, dtype)
        except Exception as e:  # noqa: BLE001 -- the user's function: say what it was called with
            return f"failed {call}: {type(e).__name__}: {e}"
    if not isinstance(out, jax.ShapeDtypeStruct):
        return f"must return one array of shape {want}; {call} it returned {jax.tree_util.tree_structure(out)}"
    if out.shape != want:
        hint = (
            " (one prediction per point: drop the trailing axis, e.g. out[:, 0] or out.reshape(-1))"
            if n_outputs == 1 and out.shape == (n, 1)
            else " (one prediction per point is needed, not a scalar)"
            if out.shape == ()
            else ""
        )
        return f"must return shape {want}; {call} it returned shape {out.shape}{hint}"
    if out.dtype != np.dtype(dtype):
        return (
            f"must return {dtype} (the fit's dtype); {call} it returned {out.dtype} of shape {out.shape} "
            "(compute in the dtype of params and x)"
        )
    return None
