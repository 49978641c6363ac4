"""Fitting straight from a table: :func:`fit_frame` takes a pandas DataFrame and column names.

One problem per value of the ``by`` column(s) (e.g. model size, validation domain, seed), all fitted with
:func:`jaxlaws.fit_batched`; the result, a :class:`FrameFit`, is labelled by those values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxlaws._typing import ArrayLike
from jaxlaws.fitting import fixed as fixing
from jaxlaws.fitting import validate
from jaxlaws.fitting.engine import fit_batched
from jaxlaws.fitting.result import FitResult
from jaxlaws.laws.base import Law

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Columns", "PER_POINT", "FrameFit", "fit_frame"]

Columns = str | Sequence[str]
PER_POINT = ("weights", "validation", "test")  # keyword arguments that may name a column


@dataclasses.dataclass(frozen=True, eq=False)
class FrameFit:
    """The outcome of :func:`fit_frame`: one fit per ``by`` value.

    Attributes:
      result: a batched :class:`FitResult`, problem ``i`` being the rows with ``by`` value ``labels[i]``.
      labels: the ``by`` values of the fitted groups in sorted order: scalars for one ``by`` column, tuples
        for several, ``(None,)`` without ``by``.
      by, x, y: the column names used (``x`` in the order of the law's inputs).
      skipped: ``{label: reason}`` of the groups that could not be fitted (too few points for the free
        parameters, data the law refuses); empty when every group was fitted.

    ``fits[label]`` is that group's single :class:`FitResult`; :meth:`table` one row per group (parameters
    and metrics); :attr:`paper` the parameters in the paper's convention; :meth:`predict` predicts each row
    of a table with its own group's parameters.
    """

    result: FitResult
    labels: tuple
    by: tuple[str, ...]
    x: tuple[str, ...]
    y: str | tuple[str, ...]
    skipped: Mapping = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        return iter(self.labels)

    def index(self, label: Hashable) -> int:
        """Position of ``label`` in :attr:`labels` (a ``KeyError`` naming the known labels otherwise)."""
        for i, lab in enumerate(self.labels):
            if lab == label:
                return i
        shown = ", ".join(repr(v) for v in self.labels[:10]) + (" ..." if len(self.labels) > 10 else "")
        raise KeyError(f"no group {label!r} in this fit (by {list(self.by)}: {shown})")

    def __getitem__(self, label: Hashable) -> FitResult:
        return self.result[self.index(label)]

    def _label_columns(self) -> dict[str, list]:
        if not self.by:
            return {}
        rows = [lab if len(self.by) > 1 else (lab,) for lab in self.labels]
        return {name: [r[j] for r in rows] for j, name in enumerate(self.by)}

    def table(self):
        """A DataFrame, one row per group: the ``by`` columns, the parameters (``law.param_names``), then
        ``objective, mse, r2, n_points, converged, ok, flags``."""
        import pandas as pd

        res = self.result
        cols = self._label_columns()
        cols.update({n: res.params[:, j] for j, n in enumerate(res.param_names)})
        cols.update(
            objective=res.objective,
            mse=res.mse,
            r2=res.r2,
            n_points=res.n_points,
            converged=res.converged,
            ok=res.ok,
            flags=[",".join(f) for f in res.flags],
        )
        return pd.DataFrame(cols)

    @property
    def paper(self):
        """A DataFrame, one row per group: the ``by`` columns and the parameters in the paper's convention
        (:attr:`FitResult.paper`)."""
        import pandas as pd

        cols = self._label_columns()
        cols.update(self.result.paper)
        return pd.DataFrame(cols)

    def predict(self, data: pd.DataFrame | Mapping[str, ArrayLike]) -> np.ndarray:
        """Predictions for every row of ``data`` (a DataFrame with the ``x`` and ``by`` columns), each from
        the fit of its own group; ``(n,)`` or ``(n, k)``, in ``data``'s row order (NaN for the rows of a
        skipped group)."""
        df = _as_frame(data)
        _need_columns(df, self.x + self.by)
        law = self.result.law
        out = np.full((len(df),) + (() if law.n_outputs == 1 else (law.n_outputs,)), np.nan)
        groups = _groups(df, self.by)
        for label, rows in groups:
            if label in self.skipped:
                continue
            out[rows] = self[label].predict(df[list(self.x)].to_numpy()[rows])
        return out

    def __repr__(self) -> str:
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return f"FrameFit(by {list(self.by)}: {len(self)} group(s){skipped}; {self.result!r})"


def fit_frame(
    law: Law,
    data: pd.DataFrame | Mapping[str, ArrayLike],
    x: Columns | Mapping[str, str] | None = None,
    y: Columns | None = None,
    *,
    by: Columns | None = None,
    strict: bool = False,
    **kwargs: Any,
) -> FrameFit:
    """Fit ``law`` to the rows of a table, one problem per value of ``by``.

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      data: a pandas DataFrame (or a mapping of columns).
      x: the input columns. Default: the law's input names (``law.inputs``, e.g. ``N, D`` for Chinchilla),
        matched by name. A list naming exactly the law's inputs is matched by name too, in any order; a list
        of other names is taken in the law's order (e.g. ``["p_a", "p_b", "p_c"]`` for ``p1, p2, p3``; a
        name of one of the law's inputs at another position is refused); ``{input: column}`` maps them.
      y: the target column (or, for a law with ``k`` outputs, ``k`` columns).
      by: optional column(s) whose values split the rows into independent problems (a model size, a
        validation domain, a seed); rows with a missing ``by`` value are refused, not dropped.
      strict: refuse the whole table when a group cannot be fitted. Default: fit every group that can be
        and report the others in ``FrameFit.skipped`` with the reason (too few points for the free
        parameters, data the law refuses).
      **kwargs: passed to :func:`jaxlaws.fit_batched` (``key``, ``objective``, ``solver``, ``inits``,
        ``fixed``, ``normalize``, ``simplex_atol``, ``bounds``, ...). ``weights``, ``validation`` and
        ``test`` are each a column name or one value per row of ``data``. ``inits`` of shape
        ``(B, n_init, P)`` follow the sorted labels of all groups.

    Groups may differ in size (they are padded with masks: one ``fit_batched`` call, one compiled
    program). Bad data is refused (or, unless ``strict``, its group skipped) before anything compiles,
    naming the group.

    Returns:
      A :class:`FrameFit` (``fits[label]``, ``fits.table()``, ``fits.paper``, ``fits.predict(df)``,
      ``fits.skipped``).
    """
    df = _as_frame(data)
    if y is None:
        raise ValueError("fit_frame needs y=, the target column")
    xs, ys = _input_columns(law, x), _names("y", y)
    bys = () if by is None else _names("by", by)
    named = {k: v for k, v in kwargs.items() if k in PER_POINT and isinstance(v, str)}
    _need_columns(df, xs + ys + bys + tuple(named.values()))
    if law.n_outputs == 1 and len(ys) != 1:
        raise ValueError(f"{law.name} has one output: give one y column, got {list(ys)}")
    if law.n_outputs > 1 and len(ys) != law.n_outputs:
        raise ValueError(f"{law.name} has {law.n_outputs} outputs: give {law.n_outputs} y columns, got {list(ys)}")
    groups = _groups(df, bys)
    X = df[list(xs)].to_numpy()
    Y = df[list(ys)].to_numpy() if law.n_outputs > 1 else df[ys[0]].to_numpy()
    cols = {}
    for k in PER_POINT:
        if kwargs.get(k) is not None:
            cols[k] = df[named[k]].to_numpy() if k in named else np.asarray(kwargs[k])
            if cols[k].shape[:1] != (len(df),):
                raise ValueError(
                    f"{k} must be a column name or one value per row ({len(df)}), got shape {cols[k].shape}"
                )
    counted = fixing.fix(law, kwargs["fixed"]) if kwargs.get("fixed") else law  # the count is of free parameters
    objective = kwargs.get("objective") or law.default_objective
    problems, skipped = [], {}
    for g, (label, rows) in enumerate(groups):
        where = f"rows with {_describe(bys, label)}: " if bys else ""
        try:
            validate.check_x(
                law,
                X[rows],
                simplex_atol=kwargs.get("simplex_atol", validate.SIMPLEX_ATOL),
                normalize=kwargs.get("normalize", False),
            )
            validate.check_y(law, Y[rows], len(rows), positive=getattr(objective, "log", False))
            held = sum(int(np.sum(np.asarray(cols[k][rows], bool))) for k in ("validation", "test") if k in cols)
            validate.check_counts(counted, np.array([len(rows) - held]), "fitting points")
        except validate.FitInputError as e:
            if strict or not bys:
                raise validate.FitInputError(where + e.detail) from None
            skipped[label] = e.detail
            continue
        except ValueError as e:
            if strict or not bys:
                raise ValueError(where + str(e)) from None
            skipped[label] = str(e)
            continue
        problems.append(g)
    while True:
        if not problems:
            raise ValueError(
                "no group of the table can be fitted: "
                + "; ".join(f"{_describe(bys, lab)}: {why}" for lab, why in skipped.items())
            )
        per_point = {k: [c[groups[g][1]] for g in problems] for k, c in cols.items()}
        args = dict(kwargs, **per_point)
        inits = args.get("inits")
        if inits is not None and not isinstance(inits, Mapping) and np.ndim(inits) == 3:
            args["inits"] = np.asarray(inits)[problems] if len(inits) == len(groups) else inits
        try:  # ragged groups are padded with masks inside the one compiled program
            result = fit_batched(law, [X[groups[g][1]] for g in problems], [Y[groups[g][1]] for g in problems], **args)
            break
        except validate.FitInputError as e:
            if e.problem is None or not bys:
                raise
            label = groups[problems[e.problem]][0]
            if strict:
                raise validate.FitInputError(f"rows with {_describe(bys, label)}: {e.detail}") from None
            skipped[label] = e.detail
            problems = problems[: e.problem] + problems[e.problem + 1 :]
    labels = tuple(groups[g][0] for g in problems)
    return FrameFit(result, labels, bys, xs, ys[0] if isinstance(y, str) else ys, skipped)


def _input_columns(law: Law, x: Any) -> tuple[str, ...]:
    """The table's columns for the law's inputs, in the law's order (see :func:`fit_frame`'s ``x``)."""
    inputs = law.inputs
    if x is None or isinstance(x, Mapping):
        if inputs is None:
            raise ValueError(
                f"{law.name} does not name its inputs: give x=[columns] in the law's order (or build "
                "the law with Law(..., inputs=(...)))"
            )
        if x is None:
            return inputs
        missing = [n for n in inputs if n not in x]
        unknown = [k for k in x if k not in inputs]
        if missing or unknown:
            raise ValueError(
                f"{law.name}: x={{input: column}} must map exactly the law's inputs {list(inputs)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        return _names("x", [x[n] for n in inputs])
    cols = _names("x", x)
    if len(cols) != law.x_dim:
        raise ValueError(
            f"{law.name} has {law.x_dim} input(s)"
            + (f" {list(inputs)}" if inputs else "")
            + f"; x names {len(cols)} column(s): {list(cols)}"
        )
    if inputs is None:
        return cols
    if set(cols) == set(inputs):
        return inputs  # the law's own names: matched by name, whatever their order
    for i, c in enumerate(cols):
        if c in inputs and inputs.index(c) != i:
            raise ValueError(
                f"{law.name}: column {c!r} has the name of the law's input {inputs.index(c) + 1} "
                f"but is listed as input {i + 1} (the law's inputs are {list(inputs)}); list the "
                f"law's input names (any order) or map them, x={{input: column}}"
            )
    return cols


def _as_frame(data: Any):
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data))
    raise ValueError(f"data must be a pandas DataFrame (or a mapping of columns), got {type(data).__name__}")


def _names(what: str, cols: Columns) -> tuple[str, ...]:
    names = (cols,) if isinstance(cols, str) else tuple(cols) if isinstance(cols, Sequence) else None
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{what} must be a column name or a list of distinct column names, got {cols!r}")
    return names


def _need_columns(df, names: tuple) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {missing}; it has {[str(c) for c in df.columns]}")


def _groups(df, bys: tuple[str, ...]) -> list[tuple[Any, np.ndarray]]:
    """``(label, row positions)`` per distinct ``by`` value, labels sorted; one group of all rows without
    ``by``. Missing ``by`` values are refused (pandas would drop those rows silently)."""
    if not bys:
        return [(None, np.arange(len(df)))]
    if df[list(bys)].isna().to_numpy().any():
        bad = [c for c in bys if df[c].isna().any()]
        raise ValueError(f"by column(s) {bad} have missing values; fill or drop those rows first")
    key = bys[0] if len(bys) == 1 else list(bys)
    out = []
    for label, rows in df.groupby(key, sort=True).indices.items():
        out.append((_plain(label), np.asarray(rows)))
    return out


def _plain(label: Any) -> Any:
    """numpy scalars as Python values, so labels print and compare plainly."""
    if isinstance(label, tuple):
        return tuple(_plain(v) for v in label)
    return label.item() if isinstance(label, np.generic) else label


def _describe(bys: tuple[str, ...], label: Any) -> str:
    vals = label if len(bys) > 1 else (label,)
    return ", ".join(f"{b}={v!r}" for b, v in zip(bys, vals))
