"""The :class:`Law` value: a pure prediction function plus what the fitting engine needs to know about it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike, KeyLike

if TYPE_CHECKING:
    from jaxlaws.fitting.objectives import Objective
    from jaxlaws.fitting.regularise import Penalty

__all__ = ["Array", "InitGrid", "Design", "X_KINDS", "POSITIVE", "SingleIndex", "Law", "grid", "as_key"]

Array = jax.Array
# init_grid(key, x, y) -> (n_init, P) numpy array; x, y are the (validated) data, so a grid may adapt to them.
InitGrid = Callable[[Array | None, np.ndarray, np.ndarray], np.ndarray]
# design(x) -> features X with predict(params, x) == X @ params; (n, P) or (n, k, P) for k outputs.
Design = Callable[[Array], Array]

X_KINDS = ("simplex", "unit", "positive", "free")
POSITIVE = (0.0, math.inf)


@dataclasses.dataclass(frozen=True)
class SingleIndex:
    r"""Structure of a law whose trailing parameters enter only through one linear index per point:

    .. math:: f(x_n; \theta) = h\big(\theta_{<s},\ z_n,\ x_n\big), \qquad z = \Phi(x)\,\theta_{\ge s},

    with ``h`` acting point by point (prediction ``n`` depends on ``z_n`` alone). The static mixing laws are
    of this form (:math:`z = b + t\cdot p`). It lets the engine form the Gauss-Newton matrix of every init
    by matrix products with the data's fixed features: the index block is
    :math:`\Phi^\top \mathrm{diag}(v)\,\Phi = v^\top (\Phi \odot \Phi)` for a per-point :math:`v`, one
    ``(inits x N) @ (N x Q)`` product over all inits, where summing ``P^2 / 2`` products of Jacobian columns
    per init is memory-bound (``jaxlaws.fitting.index_normal``).

    Attributes:
      start: ``s``, the number of head parameters; ``theta[s:]`` are the index coefficients.
      features: ``x (n, d) -> Phi (n, P - s)``.
      head: ``(theta[:s], z (n,), x (n, d)) -> prediction (n,)``, point by point in ``z``.
    """

    start: int
    features: Callable[[Array], Array]
    head: Callable[[Array, Array, Array], Array]

    def predict(self, params: Array, x: Array) -> Array:
        r""":math:`h(\theta_{<s}, \Phi(x)\theta_{\ge s}, x)`: must equal the law's ``predict``."""
        return self.head(params[: self.start], self.features(x) @ params[self.start :], x)


@dataclasses.dataclass(frozen=True, eq=False)
class Law:
    """A mixing (or scaling) law ``y = predict(params, x)``.

    Attributes:
      name: short identifier, e.g. ``"log_linear(3)"``.
      param_names: names of the entries of the flat parameter vector ``params`` (shape ``(P,)``).
      predict: pure function ``(params (P,), x (n, d)) -> (n,)`` or ``(n, k)``; jit- and vmap-safe.
      x_dim: required width ``d`` of ``x``.
      x_kind: what ``x`` holds, checked at the boundary: ``"simplex"`` (rows are mixtures: in [0, 1],
        summing to 1), ``"unit"`` (entries in [0, 1]), ``"positive"`` or ``"free"``.
      n_outputs: ``k``; 1 means ``y`` has shape ``(n,)``, otherwise ``(n, k)``.
      init_grid: default initial parameters ``(key, x, y) -> (n_init, P)``; ``None`` for linear laws, or for a
        law whose every fit passes ``inits=`` (a fit without them is then refused, saying so).
      needs_key: whether ``init_grid`` draws random numbers (then :func:`jaxlaws.fit` needs a key).
      design: for laws linear in their parameters, ``x -> X`` with ``predict == X @ params``; such laws
        are solved in closed form.
      default_objective: the :class:`jaxlaws.Objective` :func:`jaxlaws.fit` uses when none is given
        (``None``: least squares, ``jaxlaws.squared()``), e.g. Huber(1e-3) on log L for Chinchilla, the
        original's Huber(0.02) for the mixing laws.
      output_range: the open interval ``(lo, hi)`` every prediction lies in, whatever the parameters
        (e.g. ``(0, inf)`` for a law that is a sum of exponentials). The fitting engine refuses targets
        outside it: no parameters could fit them.
      exponents: names of the parameters that are exponents (rates), which a :func:`jaxlaws.ridge` penalty
        without explicit names shrinks towards 0.
      default_bounds: ``{name: (lo, hi)}`` box bounds the engine imposes unless ``bounds=`` overrides them
        (``None`` for an open side; :mod:`jaxlaws.fitting.regularise`).
      default_penalty: a :func:`jaxlaws.ridge` penalty the engine adds unless ``penalty=`` overrides it.
      to_paper: optional ``params ([B,] P) -> {name: ([B,])}``, the parameters by name in the convention of
        the law's paper (what ``FitResult.paper`` returns), e.g. Chinchilla's ``E, A, B, alpha, beta``.
      index: optional :class:`SingleIndex` structure of ``predict`` (single-output laws only), which the
        default solver uses to form its normal equations fast; the fit is the same with or without it.
      inputs: optional names of the ``d`` columns of ``x`` (e.g. ``("N", "D")``). A DataFrame or a mapping of
        columns given as ``x`` (to :func:`jaxlaws.fit`, :func:`jaxlaws.fit_frame`, ``FitResult.predict``) is
        matched to them by name, in any column order; a plain array is taken by position.
    """

    name: str
    param_names: tuple[str, ...]
    predict: Callable[[Array, Array], Array]
    x_dim: int
    x_kind: Literal["simplex", "unit", "positive", "free"] = "free"
    n_outputs: int = 1
    init_grid: InitGrid | None = None
    needs_key: bool = False
    design: Design | None = None
    output_range: tuple[float, float] = (-math.inf, math.inf)
    default_objective: Objective | None = None
    exponents: tuple[str, ...] = ()  # parameters a default jaxlaws.ridge() penalises (e.g. the static law's t_j)
    default_bounds: Mapping[str, tuple[float | None, float | None]] | None = None  # {name: (lo, hi)}
    default_penalty: Penalty | None = None  # used unless a fit's penalty= overrides it
    to_paper: Callable[[np.ndarray], dict] | None = None  # params -> {paper name: values}
    index: SingleIndex | None = None  # predict's single-index structure, for fast normal equations
    inputs: tuple[str, ...] | None = None  # names of x's columns, matched by name in DataFrames and dicts

    def __post_init__(self) -> None:
        if self.x_kind not in X_KINDS:
            raise ValueError(f"x_kind must be one of {X_KINDS}, got {self.x_kind!r}")
        lo, hi = (float(v) for v in self.output_range)
        if not lo < hi or math.isnan(lo) or math.isnan(hi):
            raise ValueError(
                f"law {self.name}: output_range must be an interval (lo, hi) with lo < hi, got {self.output_range!r}"
            )
        object.__setattr__(self, "output_range", (lo, hi))
        object.__setattr__(self, "exponents", tuple(self.exponents))
        for name in tuple(self.exponents) + tuple(self.default_bounds or ()):
            if name not in self.param_names:
                raise ValueError(f"law {self.name}: {name!r} (in exponents or default_bounds) is not a parameter")
        if self.index is not None:
            if not isinstance(self.index, SingleIndex):
                raise ValueError(f"law {self.name}: index must be a SingleIndex, got {self.index!r}")
            if self.n_outputs != 1 or not 0 <= self.index.start < len(self.param_names):
                raise ValueError(
                    f"law {self.name}: a SingleIndex needs one output and 0 <= start < P "
                    f"(start {self.index.start}, P {len(self.param_names)})"
                )
        if len(set(self.param_names)) != len(self.param_names):
            raise ValueError(f"law {self.name}: parameter names must be distinct, got {self.param_names}")
        if self.inputs is not None:
            names = (self.inputs,) if isinstance(self.inputs, str) else tuple(self.inputs)
            if (
                len(names) != self.x_dim
                or len(set(names)) != len(names)
                or not all(isinstance(n, str) and n for n in names)
            ):
                raise ValueError(
                    f"law {self.name}: inputs must be {self.x_dim} distinct column names (one per "
                    f"column of x), got {self.inputs!r}"
                )
            object.__setattr__(self, "inputs", names)

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def positive(self) -> bool:
        """Whether the law can only predict strictly positive values (``output_range[0] >= 0``)."""
        return self.output_range[0] >= 0

    @property
    def is_linear(self) -> bool:
        return self.design is not None

    def unflatten(self, params: ArrayLike) -> dict[str, ArrayLike]:
        """The parameter vector ``([...,] P)`` by name: ``{name: params[..., i]}`` (traceable; batch axes kept)."""
        if np.shape(params)[-1:] != (self.n_params,):
            raise ValueError(
                f"{self.name} has {self.n_params} parameters {self.param_names}; got an array of "
                f"shape {np.shape(params)}"
            )
        return {n: params[..., i] for i, n in enumerate(self.param_names)}

    def flatten(self, params: Mapping[str, ArrayLike]) -> jax.Array | np.ndarray:
        """``{name: value}`` -> the vector ``([...,] P)`` in ``param_names`` order (the inverse of
        :meth:`unflatten`). Traceable: JAX values give a JAX array, anything else a float64 NumPy array."""
        if not isinstance(params, Mapping):
            raise ValueError(f"{self.name}: flatten takes a mapping {{name: value}}, got {type(params).__name__}")
        missing = [n for n in self.param_names if n not in params]
        unknown = [k for k in params if k not in self.param_names]
        if missing or unknown:
            raise ValueError(
                f"{self.name}: parameters by name must name exactly {list(self.param_names)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        vals = [params[n] for n in self.param_names]
        if any(isinstance(v, jax.Array) for v in vals):
            return jnp.stack(jnp.broadcast_arrays(*[jnp.asarray(v) for v in vals]), axis=-1)
        return np.stack(np.broadcast_arrays(*[np.asarray(v, np.float64) for v in vals]), axis=-1)

    def __repr__(self) -> str:
        return f"Law({self.name}: {', '.join(self.param_names)})"


def grid(*axes: ArrayLike) -> np.ndarray:
    """Cartesian product of 1-D axes as an ``(prod(len), len(axes))`` array (first axis slowest).

    Args:
      *axes: 1-D arrays, one per parameter.

    Returns:
      ``(prod(len(a) for a in axes), len(axes))`` float64 array.
    """
    mesh = np.meshgrid(*[np.asarray(a, dtype=np.float64) for a in axes], indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=-1)


def as_key(key: KeyLike | None) -> Array:
    """A ``jax.random`` key from a key (new-style or raw ``uint32[2]``) or an int seed."""
    if key is None:
        raise ValueError(
            "this law's default init grid has random draws: pass key=0 (an int seed) or "
            "key=jax.random.key(seed) (or explicit inits)"
        )
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, bool) or not hasattr(key, "dtype"):
        raise ValueError(f"key must be an int seed or a jax.random key, got {key!r}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single jax.random key, got shape {key.shape}")
        return key
    if key.dtype == np.uint32 and key.shape == (2,):
        return key
    raise ValueError(f"key must be an int seed or a jax.random key, got an array of {key.dtype} {key.shape}")
