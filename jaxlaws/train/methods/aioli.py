r"""Aioli (spec 5.6): estimate the mixing matrix online with LearnParams, then an exponentiated-gradient step.

Every ``update_steps`` steps a round starts (after ``prior_steps`` of a static ``prior`` in the restricted
setting):

1. **LearnParams.** ``L0`` = held-out losses. For ``lp_rounds`` random permutations of the groups, for
   each group ``j``: train ``lp_steps`` steps on batches allocated *exactly* to the one-hot-ish mixture
   :math:`q_j` (``ohf`` on ``j``, the rest spread evenly), measure the held-out losses ``L`` and add the
   decrease to column ``j``: :math:`G_{:,j} \mathrel{+}= L_{prev} - L`. Then :math:`G \mathrel{/}= `
   ``lp_rounds`` and :math:`A = G W^{-\top}` with ``W``'s rows the *realised* batch mixtures (spec 13.5),
   or :math:`\mathrm{diag}(G_{ii}/W_{ii})` for the diagonal ablation. These steps count toward the budget.
2. **Normalise** (``normalize``): shift ``A`` to be non-negative, scale to total mass 1.
3. **EG** (:func:`~jaxlaws.train.methods.rules.aioli_weights`): with ``ema``,
   :math:`\bar A \leftarrow (1-\text{ema})A + \text{ema}\,\bar A` and :math:`p \propto \text{base}\odot
   \exp(\eta\,\mathbf 1^\top\bar A)`; without, cumulative :math:`p \propto p\odot\exp(\eta\,\mathbf 1^\top A)`.
4. Train on ``p`` until the next round.

Departures from the original code (``docs/DEVIATIONS.md``): exact allocation that always sums to the batch
and ``W`` from the realised mixtures (13.5); ``prior_steps = 0`` simply skips the prior (13.6); the prior is
carried into the EG state as ``base`` (13.7; ``carry_prior=False`` restores the original's uniform reset).
The held-out losses of LearnParams come from a fixed probe subset of the validation split
(``MethodData.probe``), evaluated on device between segments of the compiled loop. A final round that could
not finish its LearnParams phase before the end of training is not started (the run keeps its mixture).

Recorded: ``aioli_A`` (the normalised ``A`` of every round, as the original saves them) and ``mixture``
(``p^t`` of every round), each at the step its round's LearnParams ended.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train.methods.base import Policy, Record
from jaxlaws.train.methods.rules import (aioli_normalize, aioli_solve, aioli_weights, one_hotish,
                                         realised_mixtures)

__all__ = ["Aioli", "AioliState", "AIOLI_DEFAULTS"]

# Per setting (spec 5.6 table): m=2 (arxiv/stackexchange), m=3, m=7 ("full", prior 1^7 with 0 steps).
AIOLI_DEFAULTS = {
    2: dict(eta=0.2, ema=0.1, lp_rounds=4, lp_steps=4, update_steps=250, ohf=0.625),
    3: dict(eta=0.1, ema=0.5, lp_rounds=4, lp_steps=6, update_steps=250, ohf=0.5),
    7: dict(eta=1.0, ema=0.1, lp_rounds=2, lp_steps=10, update_steps=200, ohf=0.75),
}


class AioliState(NamedTuple):
    p: jax.Array          # (m,) the current mixture (the prior before the first round)
    base: jax.Array       # (m,) EG base weights (uniform, or the prior when carried)
    A_bar: jax.Array      # (m, m) EMA of the normalised A
    G: jax.Array          # (m, m) LearnParams loss-decrease accumulator
    prev: jax.Array       # (m,) last held-out losses
    order: jax.Array      # (K,) groups trained in this round's LearnParams, K = lp_rounds * m
    phase: jax.Array      # LearnParams segments done in this round
    in_lp: jax.Array      # bool: inside LearnParams
    t: jax.Array          # rounds completed
    key: jax.Array
    A_hist: jax.Array     # (T, m, m) normalised A of each round
    p_hist: jax.Array     # (T, m) mixture after each round


@dataclasses.dataclass(frozen=True)
class Aioli(Policy):
    eta: float = 0.2
    ema: float | None = 0.1
    lp_rounds: int = 4
    lp_steps: int = 4
    update_steps: int = 250
    ohf: float = 0.625
    normalize: bool = True
    diagonal: bool = False
    prior: tuple[float, ...] | None = None
    prior_steps: int = 0
    carry_prior: bool = True

    name = "aioli"

    def __post_init__(self) -> None:
        m = self.m
        if m < 2:
            raise ValueError(f"aioli needs at least 2 groups, got {m}")
        if not self.eta > 0:
            raise ValueError(f"aioli: eta must be > 0, got {self.eta}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise ValueError(f"aioli: ema must be in [0, 1) or None, got {self.ema}")
        if not (1.0 / m < self.ohf <= 1.0):
            raise ValueError(f"aioli: one_hot_factor (ohf) must be in (1/m, 1] = ({1 / m:.4g}, 1], got {self.ohf}"
                             " (at 1/m every LearnParams mixture is uniform and W is singular)")
        for f in ("lp_rounds", "lp_steps", "update_steps"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"aioli: {f} must be >= 1, got {getattr(self, f)}")
        if self.update_steps <= self.lp_len:
            raise ValueError(f"aioli: update_steps={self.update_steps} must exceed the LearnParams steps of a "
                             f"round, lp_rounds * lp_steps * m = {self.lp_len}")
        if not 0 <= self.prior_steps < self.optim.total_steps:
            raise ValueError(f"aioli: prior_steps={self.prior_steps} must be in [0, total_steps="
                             f"{self.optim.total_steps})")
        if self.prior is not None:
            p = np.asarray(self.prior, np.float64)
            if p.shape != (m,) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
                raise ValueError(f"aioli: prior must be {m} non-negative weights, got {self.prior}")
        elif self.prior_steps:
            raise ValueError("aioli: prior_steps > 0 needs a prior mixture")
        if not self.round_starts():
            raise ValueError(f"aioli: no round fits in {self.optim.total_steps} steps (prior_steps "
                             f"{self.prior_steps}, LearnParams {self.lp_len} steps per round)")

    @classmethod
    def defaults(cls, m: int) -> dict:
        """The original's hyper-parameters for ``m`` groups (2, 3 or 7; others take the m=3 values)."""
        return dict(AIOLI_DEFAULTS.get(m, AIOLI_DEFAULTS[3]))

    @property
    def lp_len(self) -> int:
        return self.lp_rounds * self.lp_steps * self.m

    def round_starts(self) -> list[int]:
        total = self.optim.total_steps
        return [s for s in range(self.prior_steps, total, self.update_steps) if s + self.lp_len <= total]

    def observe_steps(self) -> tuple[int, ...]:
        out = []
        for s in self.round_starts():
            out += [s + i * self.lp_steps for i in range(self.lp_len // self.lp_steps + 1)]
        return tuple(out)

    # ------------------------------------------------------------------ state
    def init(self, key: jax.Array, extra: Any = None) -> AioliState:
        m, T, K = self.m, len(self.round_starts()), self.lp_rounds * self.m
        uniform = jnp.full((m,), 1.0 / m, jnp.float32)
        if self.prior is None:
            p = base = uniform
        else:
            pr = np.asarray(self.prior, np.float64)
            p = jnp.asarray(pr / pr.sum(), jnp.float32)
            base = p if self.carry_prior else uniform
        z = jnp.zeros((m, m), jnp.float32)
        return AioliState(p, base, z, z, jnp.zeros(m, jnp.float32), jnp.zeros(K, jnp.int32),
                          jnp.zeros((), jnp.int32), jnp.zeros((), bool), jnp.zeros((), jnp.int32), key,
                          jnp.zeros((T, m, m), jnp.float32), jnp.zeros((T, m), jnp.float32))

    def _q(self) -> jax.Array:
        return one_hotish(self.m, self.ohf)

    def mixture(self, state: AioliState) -> tuple[jax.Array, Any]:
        q = self._q()[state.order[jnp.minimum(state.phase, state.order.shape[0] - 1)]]
        return jnp.where(state.in_lp, q, state.p), state.in_lp

    def current(self, state: AioliState) -> jax.Array:
        return state.p

    def observe(self, state: AioliState, losses: jax.Array) -> AioliState:
        return jax.lax.cond(state.in_lp, self._lp_observe, self._round_start, state, losses)

    def _round_start(self, state: AioliState, losses: jax.Array) -> AioliState:
        k = jax.random.fold_in(state.key, state.t)
        order = jnp.concatenate([jax.random.permutation(jax.random.fold_in(k, r), self.m)
                                 for r in range(self.lp_rounds)]).astype(jnp.int32)
        return state._replace(G=jnp.zeros_like(state.G), prev=losses, order=order,
                              phase=jnp.zeros((), jnp.int32), in_lp=jnp.ones((), bool))

    def _lp_observe(self, state: AioliState, losses: jax.Array) -> AioliState:
        j = state.order[state.phase]
        G = state.G.at[:, j].add(state.prev - losses)
        state = state._replace(G=G, prev=losses, phase=state.phase + 1)
        return jax.lax.cond(state.phase == state.order.shape[0], self._finish, lambda s: s, state)

    def _finish(self, state: AioliState) -> AioliState:
        W = realised_mixtures(self._q(), self.batch_size)
        A = aioli_solve(state.G / self.lp_rounds, W, self.diagonal)
        if self.normalize:
            A = aioli_normalize(A)
        p, A_bar = aioli_weights(A, state.A_bar, state.p, state.t == 0, self.eta, self.ema, state.base)
        return state._replace(p=p, A_bar=A_bar, in_lp=jnp.zeros((), bool), t=state.t + 1,
                              A_hist=state.A_hist.at[state.t].set(A), p_hist=state.p_hist.at[state.t].set(p))

    # ------------------------------------------------------------------ host side
    def records(self, state: AioliState, upto: int) -> list[Record]:
        out: list[Record] = []
        n = int(state.t)
        for t, s in enumerate(self.round_starts()[:n]):
            step = s + self.lp_len
            if step <= upto:
                out.append(("aioli_A", step, t, np.asarray(state.A_hist[t], np.float64)))
                out.append(("mixture", step, t, _vector(np.asarray(state.p_hist[t]), self.m)))
        return out


def _vector(v: np.ndarray, m: int) -> np.ndarray:
    """A mixture as a one-row matrix (the matrices table stores vectors as row 0)."""
    return np.asarray(v, np.float64).reshape(1, m)
