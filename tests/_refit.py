"""An independent reference refit for finite-difference checks of derivatives through a fit.

The objective is written out here from its definition (Huber or squared loss on ``y - f`` or
``log y - log f``, plus the ridge :math:`\\tfrac{\\lambda}{2} W \\sum_{j\\in S}\\theta_j^2`), not taken from the
engine, and minimised by plain Newton steps in float64 from a nearby start (e.g. the fit under test). Newton
reaches round-off where the Hessian is regular, which the finite differences need: a solver stopped at a
gradient tolerance leaves noise of order tolerance / h in a difference quotient.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def objective(predict, x, y, w, delta: float | None, log: bool, lam: float = 0.0, penalised: Sequence[int] = ()):
    """``theta -> F(theta)``, the weighted robust objective plus the ridge (the engine's documented one)."""
    idx = jnp.asarray(list(penalised), dtype=jnp.int32)

    def f(theta):
        pred = predict(theta, x)
        r = jnp.log(y) - jnp.log(pred) if log else y - pred
        if delta is None:
            rho = 0.5 * r * r
        else:
            a = jnp.abs(r)
            rho = jnp.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))
        wr = w.reshape(w.shape + (1,) * (r.ndim - 1))
        pen = 0.5 * lam * jnp.sum(w) * jnp.sum(theta[idx] ** 2) if len(penalised) else 0.0
        return jnp.sum(wr * rho) + pen

    return f


def newton(f, theta0, steps: int = 8):
    """``steps`` Newton steps on ``f`` from ``theta0`` (traceable; jit it)."""
    g, h = jax.grad(f), jax.hessian(f)

    def body(_, th):
        return th - jnp.linalg.solve(h(th), g(th))

    return jax.lax.fori_loop(0, steps, body, theta0)


def central(f, x: np.ndarray, h: float) -> np.ndarray:
    """Central differences of ``f`` (array -> array) at ``x``, step ``h * max(1, |x_i|)`` per entry: shape
    ``f(x).shape + x.shape``."""
    x = np.asarray(x, np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h * max(1.0, abs(x.reshape(-1)[i]))
        cols.append((np.asarray(f(x + e.reshape(x.shape))) - np.asarray(f(x - e.reshape(x.shape)))) / (2 * e[i]))
    return np.stack(cols, axis=-1).reshape(np.shape(cols[0]) + x.shape)


def rel_err(a, b) -> float:
    """Largest absolute difference relative to the largest reference entry."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
