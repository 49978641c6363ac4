r"""Bounded and penalised fits: box bounds by reparametrisation and an L2 (ridge) penalty on chosen parameters.

**Bounds.** A parameter :math:`\theta_j` with bounds :math:`[lo_j, hi_j]` is written as a smooth bijection of
an unconstrained :math:`u_j`, so every solver stays unconstrained:

.. math::
   \theta = u \;\;(\text{no bounds}),\quad lo + \operatorname{softplus}(u) \;\;(lo \text{ only}),\quad
   hi - \operatorname{softplus}(-u) \;\;(hi \text{ only}),\quad lo + (hi - lo)\,\sigma(u) \;\;(\text{both}).

Inits are clipped into the open box (a relative margin of ``1e-7``, inside :func:`at_bound`'s tolerance, so an
init on a bound that does not move is reported on it) and mapped to :math:`u` by the inverse.

:class:`~jaxlaws.fitting.solvers.LevenbergMarquardt` (the default solver) does not reparametrise: it holds
the box itself, by projected steps in :math:`\theta`, so the objective keeps its shape up to the bound.

**Penalty.** :func:`ridge` adds :math:`\tfrac{\lambda}{2}\,W \sum_{j\in S} (\theta_j - c)^2` to the (weighted)
robust objective :math:`\sum_n w_n \rho(r_n)`, where :math:`W = \sum_n w_n` is the total weight of the fitting
points -- so :math:`\lambda` is a penalty per unit of data, the same for a fold, a bootstrap resample or the
full fit. ``S`` defaults to the law's ``exponents`` (e.g. the static law's :math:`t_j`). For the
Gauss-Newton solvers it enters as extra residuals :math:`\sqrt{\lambda W}(\theta_S - c)` under a squared loss.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.laws.base import Array, Law

__all__ = [
    "LAW",
    "Penalty",
    "ridge",
    "BoxSpec",
    "PenaltySpec",
    "resolve_bounds",
    "resolve_penalty",
    "to_box",
    "from_box",
    "known_names",
    "bound_side",
    "at_bound",
    "penalty_residuals",
    "BOX_MARGIN",
]

LAW = "law"  # sentinel: use the law's default bounds / penalty
BOX_MARGIN = 1e-7


@dataclasses.dataclass(frozen=True)
class Penalty:
    r"""An L2 penalty :math:`\tfrac{\lambda}{2} W \sum_{j\in S}(\theta_j - c)^2` (see the module docstring); build it
    with :func:`ridge`.

    Attributes:
      lam: :math:`\lambda \ge 0`.
      params: names :math:`S` of the penalised parameters; ``None`` means the law's ``exponents``.
      center: :math:`c`.
    """

    lam: float
    params: tuple[str, ...] | None = None
    center: float = 0.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.lam, bool)
            or not isinstance(self.lam, numbers.Real)
            or not (math.isfinite(self.lam) and self.lam >= 0)
        ):
            raise ValueError(f"ridge: lam must be a non-negative finite number, got {self.lam!r}")
        if not isinstance(self.center, numbers.Real) or not math.isfinite(self.center):
            raise ValueError(f"ridge: center must be a finite number, got {self.center!r}")
        if self.params is not None:
            object.__setattr__(self, "params", tuple(str(p) for p in self.params))


def ridge(lam: float, params: Sequence[str] | None = None, center: float = 0.0) -> Penalty:
    r"""An L2 penalty :math:`\tfrac{\lambda}{2} W \sum_{j\in S}(\theta_j - c)^2`, :math:`W` the total weight of the
    fitting points.

    Args:
      lam: :math:`\lambda \ge 0`; ``ridge(0)`` disables the law's default penalty.
      params: names :math:`S` of the penalised parameters; default the law's ``exponents``.
      center: :math:`c`, the value the parameters are shrunk towards.

    Returns:
      A :class:`Penalty` for ``penalty=`` of :func:`jaxlaws.fit`.
    """
    return Penalty(
        float(lam) if isinstance(lam, numbers.Real) and not isinstance(lam, bool) else lam,
        None if params is None else tuple(params),
        center,
    )


# --------------------------------------------------------------------------- resolving against a law
BoxSpec = tuple[tuple[float, float], ...]  # per parameter, (lo, hi) with +-inf for none
PenaltySpec = tuple[float, tuple[int, ...], float]  # (lam, indices, center)


def _or_law_default(law: Law, value: Any, field: str, expected: str) -> Any:
    """``value``, or the law's ``field`` when ``value`` is the ``"law"`` sentinel (any other string: an error)."""
    if isinstance(value, str):
        if value != LAW:
            raise ValueError(f"{expected}, got {value!r}")
        return getattr(law, field, None)
    return value


def resolve_bounds(law: Law, bounds: Any) -> BoxSpec | None:
    """``bounds`` (``"law"``: the law's ``default_bounds``; ``None``: none; a mapping ``{name: (lo, hi)}``
    with ``None`` or +-inf for an open side) as one static ``(lo, hi)`` pair per parameter, or ``None``."""
    bounds = _or_law_default(law, bounds, "default_bounds", "bounds must be 'law', None or a mapping {name: (lo, hi)}")
    if bounds is None:
        return None
    if not isinstance(bounds, Mapping):
        raise ValueError(f"bounds must be a mapping {{name: (lo, hi)}}, got {type(bounds).__name__}")
    known_names(law, bounds, "bounds name")
    out = []
    for name in law.param_names:
        lo, hi = bounds.get(name, (None, None))
        lo = -math.inf if lo is None else float(lo)
        hi = math.inf if hi is None else float(hi)
        if math.isnan(lo) or math.isnan(hi) or not lo < hi:
            raise ValueError(f"{law.name}: bounds for {name} must satisfy lo < hi, got ({lo}, {hi})")
        out.append((lo, hi))
    if all(lo == -math.inf and hi == math.inf for lo, hi in out):
        return None
    return tuple(out)


def resolve_penalty(law: Law, penalty: Any) -> PenaltySpec | None:
    """``penalty`` (``"law"``: the law's ``default_penalty``; ``None``; a :class:`Penalty`) as a static
    ``(lam, indices, center)``, or ``None`` when there is nothing to penalise."""
    penalty = _or_law_default(law, penalty, "default_penalty", "penalty must be 'law', None or jaxlaws.ridge(...)")
    if penalty is None:
        return None
    if not isinstance(penalty, Penalty):
        raise ValueError(f"penalty must be jaxlaws.ridge(...), 'law' or None, got {penalty!r}")
    names = penalty.params if penalty.params is not None else tuple(getattr(law, "exponents", ()) or ())
    if penalty.params is None and not names:
        raise ValueError(f"{law.name} names no exponents: give ridge(lam, params=[...])")
    known_names(law, names, "the penalty names")
    if penalty.lam == 0 or not names:
        return None
    return float(penalty.lam), tuple(law.param_names.index(n) for n in names), float(penalty.center)


# --------------------------------------------------------------------------- the reparametrisation
def to_box(u: Array, box: BoxSpec | None) -> Array:
    """:math:`\\theta = T(u)` (module docstring); identity without bounds."""
    if box is None:
        return u
    out = []
    for j, (lo, hi) in enumerate(box):
        uj = u[..., j]
        if lo > -math.inf and hi < math.inf:
            out.append(lo + (hi - lo) * jax.nn.sigmoid(uj))
        elif lo > -math.inf:
            out.append(lo + jax.nn.softplus(uj))
        elif hi < math.inf:
            out.append(hi - jax.nn.softplus(-uj))
        else:
            out.append(uj)
    return jnp.stack(out, axis=-1)


def from_box(theta: Any, box: BoxSpec | None) -> Any:
    """:math:`u = T^{-1}(\theta)` after clipping ``theta`` into the open box: on the host in float64 for NumPy
    input, traceably (in ``theta``'s dtype) for a JAX array or tracer."""
    xp = jnp if isinstance(theta, jax.Array) else np
    theta = theta if xp is jnp else np.asarray(theta, np.float64)
    if box is None:
        return theta
    cols = []
    for j, (lo, hi) in enumerate(box):
        t = theta[..., j]
        if lo > -math.inf and hi < math.inf:
            f = xp.clip((t - lo) / (hi - lo), BOX_MARGIN, 1 - BOX_MARGIN)
            cols.append(xp.log(f) - xp.log1p(-f))
        elif lo > -math.inf:
            cols.append(_inv_softplus(xp.maximum(t - lo, BOX_MARGIN * (1 + abs(lo))), xp))
        elif hi < math.inf:
            cols.append(-_inv_softplus(xp.maximum(hi - t, BOX_MARGIN * (1 + abs(hi))), xp))
        else:
            cols.append(t)
    return xp.stack(cols, axis=-1)


def _inv_softplus(d: Any, xp: Any = np) -> Any:
    # softplus(u) = d  <=>  u = d + log(1 - exp(-d)), stable for large and small d
    return d + xp.log(-xp.expm1(-d))


def known_names(law: Law, names: Any, what: str) -> None:
    """A clear error when ``names`` (of ``bounds``, ``fixed``, a penalty) include parameters ``law`` lacks."""
    unknown = [k for k in names if k not in law.param_names]
    if unknown:
        raise ValueError(f"{law.name}: {what} unknown parameters {unknown}; the law's are {list(law.param_names)}")


def bound_side(theta: np.ndarray, box: BoxSpec | None, rtol: float = 1e-6) -> np.ndarray:
    """``(..., P)`` ints: -1 where an entry of ``theta`` sits on its lower bound, +1 on its upper bound, 0
    elsewhere (within ``rtol`` of the box's scale: the width of a finite box, else ``1 + |bound|``)."""
    theta = np.asarray(theta, np.float64)
    out = np.zeros(theta.shape, np.int8)
    if box is None:
        return out
    for j, (lo, hi) in enumerate(box):
        if not (math.isfinite(lo) or math.isfinite(hi)):
            continue  # unbounded: never on a bound (inf <= rtol * inf would say it is)
        scale = (hi - lo) if math.isfinite(hi - lo) else 1.0 + abs(lo if math.isfinite(lo) else hi)
        t = theta[..., j]
        out[..., j] = np.where((t - lo) <= rtol * scale, -1, np.where((hi - t) <= rtol * scale, 1, 0))
    return out


def at_bound(theta: np.ndarray, box: BoxSpec | None, rtol: float = 1e-6) -> np.ndarray:
    """Which entries of ``theta (..., P)`` sit on a bound (:func:`bound_side`): there the objective's
    gradient need not vanish, only point outwards."""
    return bound_side(theta, box, rtol) != 0


def penalty_residuals(theta: Array, spec: PenaltySpec | None, total_weight: Array) -> Array:
    r""":math:`\sqrt{\lambda W}(\theta_S - c)`: half their sum of squares is the penalty."""
    if spec is None:
        return jnp.zeros(theta.shape[:-1] + (0,), theta.dtype)
    lam, idx, center = spec
    return jnp.sqrt(lam * total_weight) * (theta[..., list(idx)] - center)
