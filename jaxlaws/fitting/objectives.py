r"""Robust objectives for law fitting, each a sum :math:`\sum_n \rho(r_n)` over residuals :math:`r = y - f(x)`.

Each objective also supplies the iteratively-reweighted-least-squares weight :math:`w(r) = \rho'(r)/r`,
which lets Gauss-Newton / Levenberg-Marquardt and the closed-form linear solver minimise it exactly.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxlaws.laws.base import Array

__all__ = ["Objective", "huber", "squared"]


@dataclasses.dataclass(frozen=True)
class Objective:
    r"""A fitting objective :math:`\sum_n w_n \rho(r_n)`: build it with :func:`huber` or :func:`squared`.

    Attributes:
      name: ``"huber"`` or ``"squared"``.
      delta: the Huber threshold, ``None`` for least squares.
      log: whether residuals are :math:`\log y - \log f(x)`.

    ``residual(y, pred)`` gives :math:`r`, ``rho(r)`` the elementwise loss and ``weight(r)`` the IRLS weight
    :math:`\min(1, \delta / |r|)` (1 for least squares).
    """

    name: str
    delta: float | None = None
    log: bool = False

    def residual(self, y: Array, pred: Array) -> Array:
        return jnp.log(y) - jnp.log(pred) if self.log else y - pred

    def rho(self, r: Array) -> Array:
        if self.delta is None:
            return 0.5 * r * r
        a = jnp.abs(r)
        return jnp.where(a < self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))

    def weight(self, r: Array) -> Array:
        if self.delta is None:
            return jnp.ones_like(r)
        return jnp.minimum(1.0, self.delta / jnp.maximum(jnp.abs(r), 1e-30))


def huber(delta: float = 0.02, log: bool = False) -> Objective:
    r"""Huber loss with sum reduction (as PyTorch's ``HuberLoss(delta, reduction="sum")``).

    .. math:: \rho_\delta(r) = \tfrac12 r^2 \text{ if } |r| < \delta, \text{ else } \delta(|r| - \tfrac12\delta).

    Args:
      delta: the threshold :math:`\delta > 0` between the quadratic and the linear part.
      log: take residuals :math:`\log y - \log f(x)` (Chinchilla's objective, Hoffmann et al., 2022) instead of
        :math:`y - f(x)`.

    Returns:
      An :class:`Objective` for ``objective=`` of :func:`jaxlaws.fit`.
    """
    if not (isinstance(delta, (int, float)) and delta > 0 and delta == delta and delta != float("inf")):
        raise ValueError(f"Huber delta must be a positive finite number, got {delta!r}")
    return Objective("huber", float(delta), log)


def squared(log: bool = False) -> Objective:
    r"""Least squares, :math:`\rho(r) = \tfrac12 r^2` summed (the original's ``loss_type="mse"`` up to the ½).

    Args:
      log: take residuals :math:`\log y - \log f(x)` instead of :math:`y - f(x)`.

    Returns:
      An :class:`Objective` for ``objective=`` of :func:`jaxlaws.fit`.
    """
    return Objective("squared", None, log)
