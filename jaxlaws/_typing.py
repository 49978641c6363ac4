"""Type aliases of jaxlaws' public signatures.

Every jaxlaws module postpones the evaluation of its annotations (``from __future__ import annotations``),
so the names below cost nothing at run time; the forward references (pandas, the solver classes) are only
resolved by a type checker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, Union

import jax
from jax.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:
    import pandas as pd

    from jaxlaws.fitting.regularise import Penalty
    from jaxlaws.fitting.solve import Screen
    from jaxlaws.fitting.solvers import LBFGS, Adam, LevenbergMarquardt

__all__ = [
    "ArrayLike",
    "DTypeLike",
    "Table",
    "KeyLike",
    "SolverLike",
    "BoundsLike",
    "PenaltyLike",
    "ScreenLike",
    "PyTree",
]

# Forward references need typing.Union: ``X | "name"`` fails at run time.
# Points or parameters given as an array ``(n, d)``, a mapping ``{name: (n,)}`` or a DataFrame (matched by name).
Table: TypeAlias = Union[ArrayLike, Mapping[str, ArrayLike], "pd.DataFrame"]
# An int seed or a ``jax.random`` key (typed ``jax.random.key`` or raw ``PRNGKey``).
KeyLike: TypeAlias = int | jax.Array
SolverLike: TypeAlias = Union["LevenbergMarquardt", "LBFGS", "Adam"]
# ``{name: (lo, hi)}`` box bounds (``None`` for an open side), ``"law"`` (the law's own) or ``None`` (unbounded).
BoundsLike: TypeAlias = Mapping[str, tuple[float | None, float | None]] | Literal["law"] | None
# A :func:`jaxlaws.ridge` penalty, ``"law"`` (the law's default) or ``None`` (no penalty).
PenaltyLike: TypeAlias = Union["Penalty", Literal["law"], None]
# Successive halving of the inits: a :class:`jaxlaws.Screen`, ``"auto"``, or ``None`` / ``False`` (off).
ScreenLike: TypeAlias = Union["Screen", Literal["auto"], bool, None]
# Any pytree of arrays (nested tuples, lists, dicts, dataclasses registered with JAX) -- as optax's ``Params``.
PyTree: TypeAlias = Any
