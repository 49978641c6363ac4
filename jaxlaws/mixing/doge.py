r"""DoGE (Fan et al. 2024; ``trainer/doge_trainer.py`` of HazyResearch/aioli): domain weights from the alignment
of per-domain train gradients with a validation gradient.

Each step: a stratified train batch (``mixture`` is uniform and exact) and a *random* validation batch
(the original draws ``val_batch`` samples with replacement from the pooled validation set). With
:math:`g_i` the gradient of domain ``i``'s mean train loss and :math:`g_{val}` the gradient of the
validation batch's mean loss, each clipped to norm ``clip`` (the original's ``clip_grad_norm_(max_norm=1)``
after every backward pass):

* scores :math:`s_i = \mathrm{lr}_t\langle g_i, g_{val}\rangle / (\mathrm{mean}_i\|g_i\| + 10^{-6})`, clipped to
  :math:`[0, 5\,\mathrm{lr}_t]` (:func:`~jaxlaws.mixing.rules.doge_scores`);
* :math:`\log w \mathrel{+}= s/\mu`, :math:`w = \mathrm{softmax}(\log w)`;
* the model steps along :math:`\sum_i w_i g_i` (:func:`combine`); :math:`\sum_t w_t` accumulates and its
  average is the final static mixture (:func:`~jaxlaws.mixing.doremi.average_weights`).

Signals: ``update(state, grads=g, val_grad=g_val, lr=lr_t)`` once per step, ``g`` a parameter pytree with a
leading axis of size ``m`` (zeros for a domain absent from the batch), unclipped: ``update`` clips. With
``val_grads`` (per-domain validation gradients, leading axis ``m``) or ``matrix`` (:func:`score_matrix` of
them) the state also records :math:`M_{ij} = \langle g_i, v_j\rangle` (``v_j`` clipped; rows = train domain;
the original computes it in the steps before its break, and switches its scores to ``M.mean(0)`` there, which
jaxlaws does not); ``record_now`` (a traced bool) pushes ``M`` into the ring only where true, so a loop can
compute the ``m`` per-domain validation gradients only on the steps it records (a ``lax.cond``).
:func:`jaxlaws.mixing.signals.doge_step` computes everything from a ``loss_fn``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxlaws._typing import ArrayLike, PyTree
from jaxlaws.mixing.base import Mixer, clip_by_norm, never, resolve_hparams, tree_dot
from jaxlaws.mixing.rules import doge_scores

__all__ = ["doge", "DoGEState", "DOGE_DEFAULTS", "combine", "score_matrix"]

# The original's settings (scripts/*/doge/run_proxy.sh).
DOGE_DEFAULTS = {
    2: dict(mu=0.01, val_batch=2),
    3: dict(mu=0.01, val_batch=4),
    7: dict(mu=0.1, val_batch=4),
}


class DoGEState(NamedTuple):
    """The state of a :func:`doge` mixer (a pytree).

    Attributes:
      log_w: ``(m,)`` the log domain weights.
      w_sum: ``(m,)`` the sum of the weights over the updates.
      n: the updates so far.
      m_hist: ``(record, m, m)`` the last score matrices :math:`M` (with per-domain validation gradients).
      m_steps: ``(record,)`` the update count after each (-1: empty).
    """

    log_w: jax.Array
    w_sum: jax.Array
    n: jax.Array
    m_hist: jax.Array  # (record, m, m)
    m_steps: jax.Array  # (record,) the update count after each (-1: empty)


def _clip_each(grads: Any, max_norm: float) -> tuple[Any, jax.Array]:
    return jax.vmap(lambda g: clip_by_norm(g, max_norm))(grads)


def combine(grads: PyTree, w: jax.Array, clip: float = 1.0) -> PyTree:
    r"""The update direction :math:`\sum_i w_i\,\mathrm{clip}(g_i)` of stacked per-domain gradients.

    Args:
      grads: per-domain gradients, a pytree with a leading axis ``m``.
      w: ``(m,)`` domain weights.
      clip: the norm each :math:`g_i` is clipped to.

    Returns:
      A pytree like one domain's gradient.
    """
    clipped, _ = _clip_each(grads, clip)
    return jax.tree_util.tree_map(lambda x: jnp.tensordot(w.astype(x.dtype), x, 1), clipped)


def score_matrix(grads: PyTree, val_grads: PyTree, clip: float = 1.0) -> jax.Array:
    r""":math:`M_{ij} = \langle \mathrm{clip}(g_i), \mathrm{clip}(v_j)\rangle` (rows = train domain), the
    matrix ``DogeTrainer`` computes with ``compute_full_matrix``.

    Args:
      grads: per-domain train gradients, a pytree with a leading axis ``m`` (unclipped).
      val_grads: per-domain validation gradients, leading axis ``m`` (unclipped).
      clip: the norm each gradient is clipped to.

    Returns:
      ``(m, m)`` float32.
    """
    g, _ = _clip_each(grads, clip)
    v, _ = _clip_each(val_grads, clip)
    return jax.vmap(lambda gi: jax.vmap(lambda vj: tree_dot(gi, vj))(v))(g).astype(jnp.float32)


def doge(m: int, *, mu: float | None = None, val_batch: int | None = None, clip: float = 1.0, record: int = 4) -> Mixer:
    r"""DoGE's proxy for ``m`` domains (module docstring).

    Args:
      m: the number of domains.
      mu: the temperature of the weights' update, :math:`\log w \mathrel{+}= s/\mu` (default the original's
        for m in (2, 3, 7)).
      val_batch: the validation batch size a loop should draw (default the original's for m in (2, 3, 7)).
      clip: the norm each per-domain gradient is clipped to.
      record: how many of the last score matrices the state keeps.

    Returns:
      A :class:`~jaxlaws.mixing.Mixer` over :class:`DoGEState`; ``update(state, grads=, val_grad=, lr=)`` takes
      the ``(m, ...)`` stacked per-domain gradients, the validation gradient and the learning rate
      (:func:`~jaxlaws.mixing.doge_step` computes them), and optionally ``val_grads=`` or ``matrix=`` with
      ``record_now=`` (module docstring).
    """
    hp = resolve_hparams("doge", m, dict(mu=mu, val_batch=val_batch), DOGE_DEFAULTS)
    mu, val_batch, clip, record = float(hp["mu"]), int(hp["val_batch"]), float(clip), int(record)
    if not mu > 0:
        raise ValueError(f"doge: mu must be > 0, got {mu}")
    if val_batch < 1 or record < 1:
        raise ValueError(f"doge: val_batch and record must be >= 1, got {val_batch}, {record}")
    if not clip > 0:
        raise ValueError(f"doge: clip must be > 0, got {clip}")
    uniform = jnp.full((m,), 1.0 / m, jnp.float32)

    def init(key: jax.Array | None = None) -> DoGEState:
        return DoGEState(
            jnp.zeros(m, jnp.float32),
            jnp.zeros(m, jnp.float32),
            jnp.zeros((), jnp.int32),
            jnp.zeros((record, m, m), jnp.float32),
            jnp.full((record,), -1, jnp.int32),
        )

    @jax.jit
    def update(
        state: DoGEState,
        *,
        grads: PyTree,
        val_grad: PyTree,
        lr: ArrayLike,
        val_grads: PyTree | None = None,
        matrix: jax.Array | None = None,
        record_now: ArrayLike = True,
        **_: Any,
    ) -> DoGEState:
        lead = {jnp.shape(x)[:1] for x in jax.tree_util.tree_leaves(grads)}
        if lead != {(m,)}:
            raise ValueError(
                f"doge: grads must be a pytree whose leaves have a leading axis of size {m} (one "
                f"gradient per domain), got leading shapes {sorted(lead)}"
            )
        g, norms = _clip_each(grads, clip)
        gv, _ = clip_by_norm(val_grad, clip)
        dots = jax.vmap(lambda gi: tree_dot(gi, gv))(g)
        s = doge_scores(dots, norms, jnp.asarray(lr, jnp.float32))
        log_w = state.log_w + s / mu
        w = jax.nn.softmax(log_w)
        n = state.n + 1
        m_hist, m_steps = state.m_hist, state.m_steps
        if matrix is None and val_grads is not None:
            matrix = score_matrix(grads, val_grads, clip)
        if matrix is not None:
            if jnp.shape(matrix) != (m, m):
                raise ValueError(f"doge: matrix must have shape ({m}, {m}), got {jnp.shape(matrix)}")
            keep = jnp.asarray(record_now, bool)
            m_hist = jnp.where(keep, jnp.concatenate([m_hist[1:], matrix[None].astype(jnp.float32)]), m_hist)
            m_steps = jnp.where(keep, jnp.concatenate([m_steps[1:], n[None]]), m_steps)
        return DoGEState(log_w - log_w.max(), state.w_sum + w, n, m_hist, m_steps)

    return Mixer(
        init,
        lambda s: (uniform, True),
        update,
        never,
        lambda s: jax.nn.softmax(s.log_w),
        "doge",
        dict(mu=mu, val_batch=val_batch, clip=clip, record=record),
    )
