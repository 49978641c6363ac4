r"""The Chinchilla scaling law (Hoffmann et al., 2022), here to show the fitting engine is general.

.. math:: L(N, D) = E + \frac{A}{N^\alpha} + \frac{B}{D^\beta}
          = \exp\big(\mathrm{LSE}(e,\; a - \alpha \log N,\; b - \beta \log D)\big),

with parameters ``[e, a, b, alpha, beta]`` (:math:`E = e^e`, :math:`A = e^a`, :math:`B = e^b`), fitted with a
Huber loss on :math:`\log L` (``jaxlaws.huber(1e-3, log=True)``), as in the paper. ``FitResult.paper`` gives
Epoch's ``E, A, B, alpha, beta``.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jaxlaws.laws.base import POSITIVE, Array, Law, grid

__all__ = ["chinchilla"]


@functools.cache  # one Law per signature, so compiled fits are reused
def chinchilla() -> Law:
    r"""The Chinchilla scaling law :math:`L(N, D) = E + A/N^\alpha + B/D^\beta` (Hoffmann et al., 2022).

    Parameters ``[e, a, b, alpha, beta]`` with :math:`E = e^e`, :math:`A = e^a`, :math:`B = e^b`; ``x`` is ``(n, 2)``,
    model size ``N`` and training tokens ``D`` (both > 0). Default objective Huber(1e-3) on :math:`\log L`; default
    grid Hoffmann et al.'s 4,500 inits, ``e in {-1,-.5,0,.5,1}``, ``a, b in {0,5,...,25}``,
    ``alpha, beta in {0,.5,...,2}``.

    Returns:
      The :class:`Law` (one object per process, so compiled fits are reused).
    """

    def predict(params: Array, x: Array) -> Array:
        e, a, b, alpha, beta = params
        logn, logd = jnp.log(x[:, 0]), jnp.log(x[:, 1])
        terms = jnp.stack([jnp.broadcast_to(e, logn.shape), a - alpha * logn, b - beta * logd])
        return jnp.exp(logsumexp(terms, axis=0))

    def init_grid(key, x, y) -> np.ndarray:
        return grid(
            np.linspace(-1.0, 1.0, 5),
            np.arange(0.0, 26.0, 5.0),
            np.arange(0.0, 26.0, 5.0),
            np.arange(0.0, 2.01, 0.5),
            np.arange(0.0, 2.01, 0.5),
        )

    from jaxlaws.fitting.objectives import huber  # here, not at import: jaxlaws.fitting imports the laws

    return Law(
        "chinchilla",
        ("e", "a", "b", "alpha", "beta"),
        predict,
        x_dim=2,
        x_kind="positive",
        init_grid=init_grid,
        output_range=POSITIVE,
        default_objective=huber(1e-3, log=True),
        to_paper=_epoch_names,
        inputs=("N", "D"),
    )


def _epoch_names(params: np.ndarray) -> dict[str, np.ndarray]:
    """Epoch's (and Hoffmann et al.'s) ``E, A, B, alpha, beta``: the fitted logs exponentiated."""
    p = np.asarray(params, np.float64)
    return {
        "E": np.exp(p[..., 0]),
        "A": np.exp(p[..., 1]),
        "B": np.exp(p[..., 2]),
        "alpha": p[..., 3],
        "beta": p[..., 4],
    }
