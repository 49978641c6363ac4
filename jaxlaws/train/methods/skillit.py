r"""Skill-It (spec 5.3): a fixed skills graph ``G`` turns recent held-out losses into a mixture.

``G[i, j]`` is the relative decrease of group ``j``'s loss after training only on group ``i``
(:func:`skills_graph`). The mixture starts at :math:`p \propto \exp(\eta\,G\mathbf 1)`; the held-out losses
are recorded every ``eval_steps`` steps and every ``update_steps`` steps
:math:`p \propto \exp(\eta\,G\,\ell)` with :math:`\ell` the sum of the last ``window`` recorded loss vectors
(not cumulative: recomputed from scratch each time).

LMO reading: :math:`A^t = \mathrm{diag}(L^t)\,G^\top` (the analysis builds it from ``skillit_graph`` and the
loss at the break). Recorded: ``skillit_graph`` (step 0) and ``mixture`` at every update.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train.methods.base import Policy, Record
from jaxlaws.train.methods.rules import skillit_weights

__all__ = ["SkillIt", "SkillItState", "skills_graph", "load_graph", "check_graph"]


class SkillItState(NamedTuple):
    G: jax.Array       # (m, m) the skills graph of this run
    p: jax.Array       # (m,)
    hist: jax.Array    # (window, m) last recorded held-out losses (most recent last)
    n_obs: jax.Array   # observations so far
    p_hist: jax.Array  # (U, m) mixture after each update


@dataclasses.dataclass(frozen=True)
class SkillIt(Policy):
    eta: float = 0.2
    update_steps: int = 500
    window: int = 3
    eval_steps: int = 0   # 0: update_steps // 2 (the original: a checkpoint every 250 steps, updates every 500)

    name = "skillit"

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"skillit: eta must be > 0, got {self.eta}")
        if self.update_steps < 1 or self.window < 1:
            raise ValueError(f"skillit: update_steps and window must be >= 1, got {self.update_steps}, "
                             f"{self.window}")
        ev = self.every
        if ev < 1 or self.update_steps % ev:
            raise ValueError(f"skillit: eval_steps={ev} must be >= 1 and divide update_steps={self.update_steps}")

    @classmethod
    def defaults(cls, m: int) -> dict:
        return dict(eta=0.2, update_steps=400 if m >= 7 else 500, window=3)

    @property
    def every(self) -> int:
        return self.eval_steps or max(1, self.update_steps // 2)

    def observe_steps(self) -> tuple[int, ...]:
        return tuple(range(self.every, self.optim.total_steps, self.every))

    def _n_updates(self) -> int:
        return len([s for s in self.observe_steps() if s % self.update_steps == 0])

    def prepare_extra(self, extra: Any) -> np.ndarray:
        if extra is None:
            raise ValueError("skillit: the policy needs its skills graph (extra=G, shape (m, m))")
        return check_graph(extra, self.m).astype(np.float32)

    def init(self, key: jax.Array, extra: Any = None) -> SkillItState:
        G = jnp.asarray(extra, jnp.float32)
        p = skillit_weights(G, jnp.ones(self.m, jnp.float32), self.eta)
        return SkillItState(G, p, jnp.zeros((self.window, self.m), jnp.float32), jnp.zeros((), jnp.int32),
                            jnp.zeros((max(self._n_updates(), 1), self.m), jnp.float32))

    def mixture(self, state: SkillItState) -> tuple[jax.Array, Any]:
        return state.p, False

    def observe(self, state: SkillItState, losses: jax.Array) -> SkillItState:
        hist = jnp.concatenate([state.hist[1:], losses[None]])
        n = state.n_obs + 1
        per_update = self.update_steps // self.every
        update = n % per_update == 0
        p = jnp.where(update, skillit_weights(state.G, hist.sum(0), self.eta), state.p)
        u = jnp.minimum(n // per_update - 1, state.p_hist.shape[0] - 1)
        p_hist = jnp.where(update, state.p_hist.at[u].set(p), state.p_hist)
        return SkillItState(state.G, p, hist, n, p_hist)

    def records(self, state: SkillItState, upto: int) -> list[Record]:
        out: list[Record] = [("skillit_graph", 0, 0, np.asarray(state.G, np.float64))]
        n_up = int(state.n_obs) // (self.update_steps // self.every)
        for u in range(min(n_up, self._n_updates())):
            step = (u + 1) * self.update_steps
            if step <= upto:
                out.append(("mixture", step, u, np.asarray(state.p_hist[u], np.float64).reshape(1, -1)))
        return out


def check_graph(G: Any, m: int) -> np.ndarray:
    """``G`` as a finite ``(m, m)`` float64 array, or a ``ValueError`` saying what is wrong."""
    arr = np.asarray(G, np.float64)
    if arr.shape != (m, m):
        raise ValueError(f"skills graph must have shape ({m}, {m}) for {m} groups, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("skills graph has NaN or infinite entries")
    return arr


def skills_graph(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    r"""The Skill-It graph from one-hot runs (spec 6, ``mixing_law_fitting.skills_graph``).

    ``start[i]`` and ``end[i]`` are the held-out losses (all groups) of the run trained only on group ``i``,
    before and after its training: :math:`G_{ij} = (L_j^{start} - L_j^{end}) / L_j^{start}`. Off-diagonal
    entries exactly equal to 1 become 0.5, as in the original.
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    if start.shape != end.shape or start.ndim != 2 or start.shape[0] != start.shape[1]:
        raise ValueError(f"start and end must both be (m, m) (run i, group j), got {start.shape}, {end.shape}")
    if not (np.isfinite(start).all() and np.isfinite(end).all()) or (start <= 0).any():
        raise ValueError("skills graph: losses must be finite and the start losses positive")
    G = (start - end) / start
    off = ~np.eye(len(G), dtype=bool)
    G[off & (G == 1.0)] = 0.5
    return G


def load_graph(path: str, m: int) -> np.ndarray:
    """A skills graph from ``.npy`` (the original's ``skillit_graphs/``), ``.json`` (a nested list or
    ``{"graph": ...}``) or a comma-separated text file; checked to be ``(m, m)``."""
    import json
    from pathlib import Path

    f = Path(path)
    if not f.is_file():
        raise ValueError(f"skills graph file {str(f)!r} does not exist")
    try:
        if f.suffix == ".npy":
            G = np.load(f, allow_pickle=False)
        elif f.suffix == ".json":
            obj = json.loads(f.read_text())
            G = obj.get("graph", obj.get("data")) if isinstance(obj, dict) else obj
        else:
            G = np.loadtxt(f, delimiter=",", ndmin=2)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read skills graph {str(f)!r}: {e}") from None
    return check_graph(G, m)
