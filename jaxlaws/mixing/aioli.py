r"""Aioli (Chen et al. 2024; ``trainer/aioli_trainer.py`` of HazyResearch/aioli): learn the mixing matrix online
with LearnParams, then an exponentiated-gradient step.

Every ``update_steps`` steps a round starts (after ``prior_steps`` of a static ``prior`` in the restricted
setting):

1. **LearnParams.** ``L0`` = held-out losses. For ``lp_rounds`` random permutations of the groups, for
   each group ``j``: train ``lp_steps`` steps on batches allocated *exactly* to the one-hot-ish mixture
   :math:`q_j` (``ohf`` on ``j``, the rest spread evenly), measure the held-out losses ``L`` and add the
   decrease to column ``j``: :math:`G_{:,j} \mathrel{+}= L_{prev} - L`. Then :math:`G \mathrel{/}= `
   ``lp_rounds`` and :math:`A = G W^{-\top}` (``W``'s rows the expected batch mixtures of the exact
   allocation, :func:`~jaxlaws.mixing.rules.expected_counts`; the nominal :math:`q_j` whenever the tied groups
   can share their seats), or :math:`\mathrm{diag}(G_{ii}/W_{ii})` for the diagonal ablation. These steps
   count toward the budget.
2. **Normalise** (``normalize``): shift ``A`` to be non-negative, scale to total mass 1.
3. **EG** (:func:`~jaxlaws.mixing.rules.aioli_weights`): with ``ema``,
   :math:`\bar A \leftarrow (1-\text{ema})A + \text{ema}\,\bar A` and :math:`p \propto \exp(\eta\,\mathbf
   1^\top\bar A)`; with ``ema=None``, the cumulative update :math:`p \propto p\odot\exp(\eta\,\mathbf 1^\top A)`
   (the original's README suggests trying it first). With a normalised ``A`` and an EMA,
   :math:`p_{max}/p_{min}\le e^{\eta}` for the whole run; the cumulative update has no such bound.
4. Train on ``p`` until the next round.

The EG base is uniform, also after a restricted prior (as the original: ``weights_init`` is reset to ones
after the prior); ``carry_prior=True`` keeps the prior as the base instead, which confines ``p`` to an
:math:`e^{\pm\eta}` odds band around the prior (a jaxlaws variant, off by default).

Signals: ``update(state, step=s, losses=L)`` once per training step, at the start of step ``s`` (``s``
updates done), with the held-out losses ``L`` (m,) of the current parameters whenever ``observes(s)`` (any
array otherwise: it is not read). A final round that could not finish its LearnParams phase before
``total_steps`` is not started.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike
from jaxlaws.mixing.base import Mixer, check_mixture, resolve_hparams
from jaxlaws.mixing.rules import aioli_normalize, aioli_solve, aioli_weights, expected_counts, one_hotish

__all__ = ["round_starts", "aioli", "AioliState", "AIOLI_DEFAULTS"]

# The original's settings (scripts/*/aioli/run.sh): m=2 (arxiv/stackexchange), m=3 (+books), m=7 (full SlimPajama).
AIOLI_DEFAULTS = {
    2: dict(eta=0.2, ema=0.1, lp_rounds=4, lp_steps=4, update_steps=250, ohf=0.625),
    3: dict(eta=0.1, ema=0.5, lp_rounds=4, lp_steps=6, update_steps=250, ohf=0.5),
    7: dict(eta=1.0, ema=0.1, lp_rounds=2, lp_steps=10, update_steps=200, ohf=0.75),
}

_UNSET: Any = "default"


class AioliState(NamedTuple):
    """The state of an :func:`aioli` mixer (a pytree).

    Attributes:
      p: ``(m,)`` the current mixture (the prior before the first round).
      base: ``(m,)`` the EG base weights.
      A_bar: ``(m, m)`` the EMA of the normalised ``A``.
      G: ``(m, m)`` the LearnParams loss-decrease accumulator.
      prev: ``(m,)`` the last held-out losses.
      order: ``(K,)`` the groups trained in this round's LearnParams, ``K = lp_rounds * m``.
      phase: the LearnParams segments done in this round.
      in_lp: whether the run is inside LearnParams.
      t: the rounds completed.
      key: the key of the LearnParams permutations.
      A_hist: ``(T, m, m)`` the normalised ``A`` of each round.
      p_hist: ``(T, m)`` the mixture after each round.
    """

    p: jax.Array  # (m,) the current mixture (the prior before the first round)
    base: jax.Array  # (m,) EG base weights
    A_bar: jax.Array  # (m, m) EMA of the normalised A
    G: jax.Array  # (m, m) LearnParams loss-decrease accumulator
    prev: jax.Array  # (m,) last held-out losses
    order: jax.Array  # (K,) groups trained in this round's LearnParams, K = lp_rounds * m
    phase: jax.Array  # LearnParams segments done in this round
    in_lp: jax.Array  # bool: inside LearnParams
    t: jax.Array  # rounds completed
    key: jax.Array
    A_hist: jax.Array  # (T, m, m) normalised A of each round
    p_hist: jax.Array  # (T, m) mixture after each round


def aioli(
    m: int,
    *,
    total_steps: int,
    batch_size: int,
    eta: float | None = None,
    ema: float | Literal["default"] | None = _UNSET,
    lp_rounds: int | None = None,
    lp_steps: int | None = None,
    update_steps: int | None = None,
    ohf: float | None = None,
    normalize: bool = True,
    diagonal: bool = False,
    prior: ArrayLike | None = None,
    prior_steps: int = 0,
    carry_prior: bool = False,
) -> Mixer:
    r"""Aioli for ``m`` groups over ``total_steps`` training steps of ``batch_size`` samples (module docstring).

    For m in (2, 3, 7) the hyper-parameters default to the original's (:data:`AIOLI_DEFAULTS`); for other
    ``m`` give ``eta, ema, lp_rounds, lp_steps, update_steps, ohf`` (``one_hot_factor``) explicitly.
    ``ema=None`` is the cumulative EG update. ``prior``/``prior_steps``: the restricted setting (train the
    static ``prior`` first). ``batch_size`` must be the batch size of the loop that samples the batches, and
    LearnParams batches (``exact`` True) must be allocated as :func:`~jaxlaws.mixing.sample_groups` does
    (exact counts, allocation ties broken at random), since ``W`` is their expected mixture.

    Args:
      m: the number of groups.
      total_steps: the training steps of the run.
      batch_size: the batch size of the training loop.
      eta: the exponentiated-gradient step size.
      ema: the EMA factor of :math:`\bar A`, ``None`` for the cumulative update, ``"default"`` the original's.
      lp_rounds, lp_steps: LearnParams' rounds and steps per group per round.
      update_steps: the steps of a round (LearnParams plus training at the round's mixture).
      ohf: the one-hot factor of the LearnParams mixtures, in (1/m, 1].
      normalize: shift ``A`` to be non-negative and scale it to total mass 1 (step 2 above).
      diagonal: the diagonal ablation, :math:`A = \mathrm{diag}(G_{ii}/W_{ii})`.
      prior: ``(m,)`` the static mixture of the first ``prior_steps`` (the restricted setting).
      prior_steps: steps trained at ``prior`` before the first round.
      carry_prior: keep ``prior`` as the EG base instead of the uniform mixture (a jaxlaws variant).

    Returns:
      A :class:`~jaxlaws.mixing.Mixer` over :class:`AioliState`; ``update(state, step=, losses=)`` reads the
      ``(m,)`` held-out losses when ``observes(step)``.
    """
    given_ema = None if ema is _UNSET else ("cumulative" if ema is None else ema)  # None given: cumulative EG
    hp = resolve_hparams(
        "aioli",
        m,
        dict(eta=eta, ema=given_ema, lp_rounds=lp_rounds, lp_steps=lp_steps, update_steps=update_steps, ohf=ohf),
        AIOLI_DEFAULTS,
    )
    if hp["ema"] == "cumulative":
        hp["ema"] = None
    eta, ema, ohf = float(hp["eta"]), hp["ema"], float(hp["ohf"])
    lp_rounds, lp_steps, update_steps = int(hp["lp_rounds"]), int(hp["lp_steps"]), int(hp["update_steps"])
    total_steps, batch_size, prior_steps = int(total_steps), int(batch_size), int(prior_steps)
    if not eta > 0:
        raise ValueError(f"aioli: eta must be > 0, got {eta}")
    if ema is not None and not 0 <= ema < 1:
        raise ValueError(f"aioli: ema must be in [0, 1) or None, got {ema}")
    if not (1.0 / m < ohf <= 1.0):
        raise ValueError(
            f"aioli: one_hot_factor (ohf) must be in (1/m, 1] = ({1 / m:.4g}, 1], got {ohf}"
            " (at 1/m every LearnParams mixture is uniform and W is singular)"
        )
    for name, v in (
        ("lp_rounds", lp_rounds),
        ("lp_steps", lp_steps),
        ("update_steps", update_steps),
        ("batch_size", batch_size),
        ("total_steps", total_steps),
    ):
        if v < 1:
            raise ValueError(f"aioli: {name} must be >= 1, got {v}")
    lp_len = lp_rounds * lp_steps * m
    if update_steps <= lp_len:
        raise ValueError(
            f"aioli: update_steps={update_steps} must exceed the LearnParams steps of a round, "
            f"lp_rounds * lp_steps * m = {lp_len}"
        )
    if not 0 <= prior_steps < total_steps:
        raise ValueError(f"aioli: prior_steps={prior_steps} must be in [0, total_steps={total_steps})")
    if prior is not None:
        prior = check_mixture(prior, m, "aioli prior")
    elif prior_steps:
        raise ValueError("aioli: prior_steps > 0 needs a prior mixture")
    starts = [s for s in range(prior_steps, total_steps, update_steps) if s + lp_len <= total_steps]
    if not starts:
        raise ValueError(
            f"aioli: no round fits in {total_steps} steps (prior_steps {prior_steps}, LearnParams "
            f"{lp_len} steps per round)"
        )
    n_rounds, K = len(starts), lp_rounds * m
    q = one_hotish(m, ohf)
    W = jnp.asarray(np.stack([expected_counts(r, batch_size) for r in np.asarray(q)]) / batch_size, jnp.float32)
    uniform = np.full(m, 1.0 / m)

    def observes(step: ArrayLike) -> jax.Array:
        rel = jnp.asarray(step) - prior_steps
        off = rel % update_steps
        return (rel >= 0) & (rel // update_steps < n_rounds) & (off <= lp_len) & (off % lp_steps == 0)

    def init(key: jax.Array) -> AioliState:
        p = uniform if prior is None else prior
        base = p if carry_prior else uniform
        z = jnp.zeros((m, m), jnp.float32)
        return AioliState(
            jnp.asarray(p, jnp.float32),
            jnp.asarray(base, jnp.float32),
            z,
            z,
            jnp.zeros(m, jnp.float32),
            jnp.zeros(K, jnp.int32),
            jnp.zeros((), jnp.int32),
            jnp.zeros((), bool),
            jnp.zeros((), jnp.int32),
            key,
            jnp.zeros((n_rounds, m, m), jnp.float32),
            jnp.zeros((n_rounds, m), jnp.float32),
        )

    def mixture(state: AioliState) -> tuple[jax.Array, jax.Array]:
        lp_q = q[state.order[jnp.minimum(state.phase, K - 1)]]
        return jnp.where(state.in_lp, lp_q, state.p), state.in_lp

    def round_start(state: AioliState, losses: jax.Array) -> AioliState:
        k = jax.random.fold_in(state.key, state.t)
        order = jnp.concatenate([jax.random.permutation(jax.random.fold_in(k, r), m) for r in range(lp_rounds)]).astype(
            jnp.int32
        )
        return state._replace(
            G=jnp.zeros_like(state.G),
            prev=losses,
            order=order,
            phase=jnp.zeros((), jnp.int32),
            in_lp=jnp.ones((), bool),
        )

    def finish(state: AioliState) -> AioliState:
        A = aioli_solve(state.G / lp_rounds, W, diagonal)
        if normalize:
            A = aioli_normalize(A)
        p, A_bar = aioli_weights(A, state.A_bar, state.p, state.t == 0, eta, ema, state.base)
        return state._replace(
            p=p,
            A_bar=A_bar,
            in_lp=jnp.zeros((), bool),
            t=state.t + 1,
            A_hist=state.A_hist.at[state.t].set(A),
            p_hist=state.p_hist.at[state.t].set(p),
        )

    def lp_observe(state: AioliState, losses: jax.Array) -> AioliState:
        j = state.order[state.phase]
        state = state._replace(G=state.G.at[:, j].add(state.prev - losses), prev=losses, phase=state.phase + 1)
        return jax.lax.cond(state.phase == K, finish, lambda s: s, state)

    def observe(state: AioliState, losses: jax.Array) -> AioliState:
        return jax.lax.cond(state.in_lp, lp_observe, round_start, state, losses)

    @jax.jit
    def update(state: AioliState, *, step: ArrayLike, losses: jax.Array) -> AioliState:
        losses = jnp.asarray(losses, jnp.float32)
        if losses.shape != (m,):
            raise ValueError(f"aioli: losses must have shape ({m},), got {losses.shape}")
        return jax.lax.cond(observes(step), observe, lambda s, _: s, state, losses)

    hparams = dict(
        eta=eta,
        ema=ema,
        lp_rounds=lp_rounds,
        lp_steps=lp_steps,
        update_steps=update_steps,
        ohf=ohf,
        normalize=normalize,
        diagonal=diagonal,
        prior=None if prior is None else prior.tolist(),
        prior_steps=prior_steps,
        carry_prior=carry_prior,
        total_steps=total_steps,
        batch_size=batch_size,
    )
    return Mixer(init, mixture, update, observes, lambda s: s.p, "aioli", hparams)


def round_starts(hparams: dict, m: int) -> list[int]:
    """The steps at which an Aioli mixer with these ``hparams`` starts its rounds (host side)."""
    lp_len = hparams["lp_rounds"] * hparams["lp_steps"] * m
    return [
        s
        for s in range(hparams["prior_steps"], hparams["total_steps"], hparams["update_steps"])
        if s + lp_len <= hparams["total_steps"]
    ]
