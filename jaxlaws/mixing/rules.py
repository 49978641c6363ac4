r"""The update rules of the online mixing methods as small pure ``jax.numpy`` functions.

Every function here is jit- and vmap-safe and holds one formula; the mixers of :mod:`jaxlaws.mixing`
(``aioli``, ``skillit``, ``doremi``, ``doge``) compose them. ``tests/test_methods_rules.py`` checks each
against a plain NumPy transcription of the original code (HazyResearch/aioli, ``trainer/*.py``).

Conventions: ``m`` groups; a method matrix ``A[i, j] >= 0`` means "training on group ``j`` lowers the loss
of group ``i``" (the LMO convention of Aioli's internal matrix); exponentiated-gradient updates move
``p_j`` by ``eta * sum_i A_ij`` (the column sums).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "allocate_counts",
    "expected_counts",
    "realised_mixtures",
    "one_hotish",
    "aioli_solve",
    "aioli_normalize",
    "aioli_weights",
    "skillit_weights",
    "doremi_update",
    "doge_scores",
    "softmax_weights",
]


def allocate_counts(p: jax.Array, batch_size: int, key: jax.Array | None = None) -> jax.Array:
    r"""Largest-remainder (Hamilton) integer allocation of ``batch_size`` samples to the groups of ``p``.

    :math:`c_j = \lfloor B p_j \rfloor` plus one for the :math:`B - \sum_j \lfloor B p_j\rfloor` groups with
    the largest fractional parts, so :math:`\sum_j c_j = B` and :math:`|c_j - B p_j| < 1`. Ties between equal
    fractional parts go to the lower index when ``key`` is None, and to a uniformly random one of the tied
    groups with a ``key`` (then every tied group gets the seat with the same probability, and the expected
    counts are :func:`expected_counts`). The original (``dataset/slimpj_dataset.py``,
    ``interleave_per_batch_mapped``) takes ``max(1, int(B p_j))`` for every group but the last, which gets the
    remainder (negative at m=7, B=8, ``one_hot_factor=0.75``); see docs/DEVIATIONS.md.
    """
    exact = jnp.asarray(p, jnp.float32) * batch_size
    base = jnp.floor(exact + 1e-6)  # + 1e-6: 0.625 * 8 is exactly 5, not 4.9999995
    frac = exact - base
    short = batch_size - base.sum()
    if key is None:  # rank of each fractional part (descending, stable: lower index first among ties)
        order = jnp.argsort(-frac, stable=True)
    else:  # fractional parts equal to 1e-5 of a seat are ties (float32 noise); ties in random order
        level = jnp.round(frac * 1e5)
        order = jnp.lexsort((jax.random.uniform(key, frac.shape), -level))
    rank = jnp.empty_like(order).at[order].set(jnp.arange(p.shape[0]))
    return (base + (rank < short)).astype(jnp.int32)


def expected_counts(p: np.ndarray, batch_size: int) -> np.ndarray:
    """The expected counts of :func:`allocate_counts` with random tie-breaking (host NumPy, float64): the
    seats left after the floors go to the largest fractional parts, and tied groups share the seats that
    fall to their level equally."""
    exact = np.asarray(p, np.float64) * batch_size
    base = np.floor(exact + 1e-6)
    level = np.round((exact - base) * 1e5)
    out, short = base.copy(), int(round(batch_size - base.sum()))
    for lv in sorted(set(level.tolist()), reverse=True):
        if short <= 0:
            break
        tied = np.flatnonzero(level == lv)
        take = min(short, len(tied))
        out[tied] += take / len(tied)
        short -= take
    return out


def realised_mixtures(q: jax.Array, batch_size: int) -> jax.Array:
    """Row ``j``: the mixture a batch of ``batch_size`` actually holds when ``q[j]`` is allocated exactly with
    ties to the lower index (:func:`allocate_counts` / ``batch_size``); with random ties Aioli's ``W`` is
    :func:`expected_counts` / ``batch_size`` instead (the nominal ``q`` where the tied groups can share)."""
    return jax.vmap(lambda r: allocate_counts(r, batch_size))(q).astype(jnp.float32) / batch_size


def one_hotish(m: int, ohf: float) -> jax.Array:
    """The LearnParams mixtures ``q_j`` as rows: ``ohf`` on group ``j``, ``(1 - ohf)/(m - 1)`` elsewhere."""
    off = (1.0 - ohf) / (m - 1)
    return jnp.full((m, m), off, jnp.float32) + (ohf - off) * jnp.eye(m, dtype=jnp.float32)


def aioli_solve(G: jax.Array, W: jax.Array, diagonal: bool = False) -> jax.Array:
    r"""Aioli's ``A`` from the LearnParams loss decreases ``G`` (``trainer/aioli_trainer.py``,
    ``learn_params_subroutine``).

    ``G[i, j]`` is the (round-averaged) decrease of group ``i``'s loss after training on the mixture
    ``W[j]``. Under the linear law the decrease is :math:`G_{ij} = \sum_l A_{il} W_{jl}`, i.e.
    :math:`G = A W^\top`, so :math:`A = G W^{-\top}` -- row ``i`` of ``A`` solves ``W a = G[i]`` (the
    original's ``solve(W, G[i,:])``), which undoes the smoothing of the one-hot-ish mixtures. With
    ``diagonal`` only the own effect is kept: :math:`A = \mathrm{diag}(G_{ii} / W_{ii})`.
    """
    if diagonal:
        return jnp.diag(jnp.diagonal(G) / jnp.diagonal(W))
    return jnp.linalg.solve(W, G.T).T


def aioli_normalize(A: jax.Array) -> jax.Array:
    """Shift ``A`` to be non-negative (subtract its minimum when negative), then scale it to total mass 1.

    A matrix that is all zeros after the shift (every entry equal) is returned as zeros, not NaN.
    """
    A = A - jnp.minimum(A.min(), 0.0)
    total = A.sum()
    return jnp.where(total > 0, A / jnp.where(total > 0, total, 1.0), 0.0)


def aioli_weights(
    A: jax.Array, A_bar: jax.Array, w: jax.Array, first: jax.Array, eta: float, ema: float | None, base: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""One exponentiated-gradient step of Aioli: returns ``(p, A_bar)`` (``p`` is also the next ``w``).

    * ``ema`` set: :math:`\bar A \leftarrow A` on the first round, else :math:`(1-\text{ema})A +
      \text{ema}\,\bar A`; then :math:`w = \text{base}\odot\exp(\eta\,\mathbf 1^\top \bar A)` -- not
      cumulative: the EMA graph carries the memory (``base`` is uniform in the original);
    * ``ema`` None: cumulative EG, :math:`w \leftarrow w\odot\exp(\eta\,\mathbf 1^\top A)` with
      :math:`w = \text{base}` before the first round.

    ``p = w / sum(w)``. Exponents are shifted by their maximum before ``exp`` (same ``p``, no overflow).

    Bound: with a normalised ``A`` (non-negative, total mass 1, :func:`aioli_normalize`) every column sum of
    ``A`` and of its EMA lies in [0, 1], so with a uniform base :math:`p_{max}/p_{min} \le e^{\eta}` holds for
    the *whole run*, not only per round (m=2, eta=0.2: p stays in [0.45, 0.55]). The cumulative update
    (``ema`` None) has no such bound: its odds grow by up to :math:`e^{\eta}` per round.
    """
    if ema is None:
        prev = jnp.where(first, base, w)
        logits = jnp.log(prev) + eta * A.sum(0)
        A_bar = A
    else:
        A_bar = jnp.where(first, A, (1.0 - ema) * A + ema * A_bar)
        logits = jnp.log(base) + eta * A_bar.sum(0)
    w = jnp.exp(logits - logits.max())
    return w / w.sum(), A_bar


def skillit_weights(G: jax.Array, losses: jax.Array, eta: float) -> jax.Array:
    r"""Skill-It's mixture :math:`p \propto \exp(\eta\, G\,\ell)` (``trainer/skillit_trainer.py``).

    ``G[i, j]`` = relative loss decrease on ``j`` after training on ``i``; ``losses`` is the sum of the last
    recorded val-loss vectors (all ones before the first update). Not cumulative: recomputed from scratch
    every round."""
    logits = eta * (G @ losses)
    return jax.nn.softmax(logits)


def softmax_weights(log_w: jax.Array) -> jax.Array:
    r"""The weights :math:`w = \mathrm{softmax}(\log w)` of log-weights (DoGE's parametrisation)."""
    return jax.nn.softmax(log_w)


def doremi_update(
    w: jax.Array, excess: jax.Array, prev_excess: jax.Array, present: jax.Array, mu: float, smoothing: float
) -> tuple[jax.Array, jax.Array]:
    r"""DoReMi's domain-weight step (``trainer/doremi_trainer.py``): returns ``(w_new, excess_used)``.

    ``excess_i = L_i(theta) - L_i(ref)`` on domain ``i``'s samples of the batch; a domain absent from the
    batch (``present`` False) reuses its previous score. Then
    :math:`w' \propto w \odot \exp(\mu \max(e, 0))` and :math:`w \leftarrow (1 - c) w' + c/m` with
    ``c = smoothing``.
    """
    e = jnp.where(present, excess, prev_excess)
    logits = jnp.log(w) + mu * jnp.maximum(e, 0.0)
    w_new = jax.nn.softmax(logits)
    m = w.shape[0]
    return (1.0 - smoothing) * w_new + smoothing / m, e


def doge_scores(dots: jax.Array, norms: jax.Array, lr: jax.Array) -> jax.Array:
    r"""DoGE's alignment scores (``trainer/doge_trainer.py``, ``update_domain_weights``):
    :math:`s_i = \mathrm{lr}_t\,\langle g_i, g_{val}\rangle / (\mathrm{mean}_i \|g_i\| + 10^{-6})`,
    clipped to :math:`[0, 5\,\mathrm{lr}_t]`. ``dots[i]`` are the inner products of the (clipped) per-domain
    train gradients with the (clipped) validation gradient, ``norms`` the norms of the clipped train
    gradients."""
    s = lr * dots / (norms.mean() + 1e-6)
    return jnp.clip(s, 0.0, 5.0 * lr)
