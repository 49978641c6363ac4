"""Fitting straight from a table: :func:`fit_frame` takes a pandas DataFrame and column names.

One problem per value of the ``by`` column(s) (e.g. model size, validation domain, seed), all fitted with
:func:`jaxlaws.fit_batched`; the result, a :class:`FrameFit`, is labelled by those values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

from jaxlaws.fitting import validate
from jaxlaws.fitting.engine import fit_batched
from jaxlaws.fitting.result import FitResult
from jaxlaws.laws.base import Law

Columns = Union[str, Sequence[str]]
PER_POINT = ("weights", "validation", "test")  # keyword arguments that may name a column


@dataclasses.dataclass(frozen=True, eq=False)
class FrameFit:
    """The outcome of :func:`fit_frame`: one fit per ``by`` value.

    Attributes:
      result: a batched :class:`FitResult`, problem ``i`` being the rows with ``by`` value ``labels[i]``.
      labels: the ``by`` values in sorted order: scalars for one ``by`` column, tuples for several,
        ``(None,)`` without ``by``.
      by, x, y: the column names used.

    ``fits[label]`` is that group's single :class:`FitResult`; :meth:`table` one row per group (parameters
    and metrics); :attr:`paper` the parameters in the paper's convention; :meth:`predict` predicts each row
    of a table with its own group's parameters.
    """

    result: FitResult
    labels: tuple
    by: tuple[str, ...]
    x: tuple[str, ...]
    y: Union[str, tuple[str, ...]]

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
        cols.update(objective=res.objective, mse=res.mse, r2=res.r2, n_points=res.n_points,
                    converged=res.converged, ok=res.ok, flags=[",".join(f) for f in res.flags])
        return pd.DataFrame(cols)

    @property
    def paper(self):
        """A DataFrame, one row per group: the ``by`` columns and the parameters in the paper's convention
        (:attr:`FitResult.paper`)."""
        import pandas as pd

        cols = self._label_columns()
        cols.update(self.result.paper)
        return pd.DataFrame(cols)

    def predict(self, data: Any) -> np.ndarray:
        """Predictions for every row of ``data`` (a DataFrame with the ``x`` and ``by`` columns), each from
        the fit of its own group; ``(n,)`` or ``(n, k)``, in ``data``'s row order."""
        df = _as_frame(data)
        _need_columns(df, self.x + self.by)
        law = self.result.law
        out = np.full((len(df),) + (() if law.n_outputs == 1 else (law.n_outputs,)), np.nan)
        groups = _groups(df, self.by)
        for label, rows in groups:
            out[rows] = self[label].predict(df[list(self.x)].to_numpy()[rows])
        return out

    def __repr__(self) -> str:
        return f"FrameFit(by {list(self.by)}: {len(self)} group(s); {self.result!r})"


def fit_frame(law: Law, data: Any, x: Columns, y: Columns, *, by: Optional[Columns] = None,
              **kwargs: Any) -> FrameFit:
    """Fit ``law`` to the rows of a table, one problem per value of ``by``.

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      data: a pandas DataFrame (or a mapping of columns).
      x: the input column(s), in the law's order (e.g. the mixture's proportion columns).
      y: the target column (or, for a law with ``k`` outputs, ``k`` columns).
      by: optional column(s) whose values split the rows into independent problems (a model size, a
        validation domain, a seed); rows with a missing ``by`` value are refused, not dropped.
      **kwargs: passed to :func:`jaxlaws.fit_batched` (``key``, ``objective``, ``solver``, ``inits``,
        ``normalize``, ``simplex_atol``, ``bounds``, ...). ``weights``, ``validation`` and ``test`` are
        each a column name or one value per row of ``data``. ``inits`` of shape ``(B, n_init, P)`` follow
        the sorted labels.

    Groups may differ in size (they are padded with masks: one ``fit_batched`` call, one compiled
    program). Bad data is refused before anything compiles, naming the group.

    Returns a :class:`FrameFit` (``fits[label]``, ``fits.table()``, ``fits.paper``, ``fits.predict(df)``).
    """
    df = _as_frame(data)
    xs, ys = _names("x", x), _names("y", y)
    bys = () if by is None else _names("by", by)
    named = {k: v for k, v in kwargs.items() if k in PER_POINT and isinstance(v, str)}
    _need_columns(df, xs + ys + bys + tuple(named.values()))
    if law.n_outputs == 1 and len(ys) != 1:
        raise ValueError(f"{law.name} has one output: give one y column, got {list(ys)}")
    if law.n_outputs > 1 and len(ys) != law.n_outputs:
        raise ValueError(f"{law.name} has {law.n_outputs} outputs: give {law.n_outputs} y columns, got {list(ys)}")
    groups = _groups(df, bys)
    labels = tuple(lab for lab, _ in groups)
    X = df[list(xs)].to_numpy()
    Y = df[list(ys)].to_numpy() if law.n_outputs > 1 else df[ys[0]].to_numpy()
    cols = {}
    for k in PER_POINT:
        if kwargs.get(k) is not None:
            cols[k] = df[named[k]].to_numpy() if k in named else np.asarray(kwargs[k])
            if cols[k].shape[:1] != (len(df),):
                raise ValueError(f"{k} must be a column name or one value per row ({len(df)}), "
                                 f"got shape {cols[k].shape}")
    objective = kwargs.get("objective") or law.default_objective
    problems = []
    for label, rows in groups:
        where = (f"rows with {_describe(bys, label)}: " if bys else "")
        try:
            validate.check_x(law, X[rows], simplex_atol=kwargs.get("simplex_atol", validate.SIMPLEX_ATOL),
                             normalize=kwargs.get("normalize", False))
            validate.check_y(law, Y[rows], len(rows), positive=getattr(objective, "log", False))
            held = sum(int(np.sum(np.asarray(cols[k][rows], bool))) for k in ("validation", "test") if k in cols)
            validate.check_counts(law, np.array([len(rows) - held]), "fitting points")
        except validate.FitInputError as e:
            raise validate.FitInputError(where + e.detail) from None
        except ValueError as e:
            raise ValueError(where + str(e)) from None
        problems.append(rows)

    per_point = {k: [c[rows] for rows in problems] for k, c in cols.items()}
    try:  # ragged groups are padded with masks inside the one compiled program
        result = fit_batched(law, [X[rows] for rows in problems], [Y[rows] for rows in problems],
                             **dict(kwargs, **per_point))
    except validate.FitInputError as e:
        if e.problem is None or not bys:
            raise
        raise validate.FitInputError(f"rows with {_describe(bys, labels[e.problem])}: {e.detail}") from None
    return FrameFit(result, labels, bys, xs, ys[0] if isinstance(y, str) else ys)


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
