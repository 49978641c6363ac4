r"""Skill-It (Chen et al. 2023; ``trainer/skillit_trainer.py`` of HazyResearch/aioli): a fixed skills graph
turns recent held-out losses into a mixture.

``G[i, j]`` is the relative decrease of group ``j``'s loss after training only on group ``i``
(:func:`skills_graph`). The mixture starts at :math:`p \propto \exp(\eta\,G\mathbf 1)`; held-out losses are
recorded every ``eval_steps`` steps and every ``update_steps`` steps :math:`p \propto \exp(\eta\,G\,\ell)`
with :math:`\ell` the sum of the last ``window`` recorded loss vectors (recomputed from scratch each time).

Cadence (``align``): ``"original"`` records at steps 0, ``eval_steps``, ``2 eval_steps``, ... and the update
at step ``s`` sums the records made *before* ``s`` (the original evaluates at its checkpoints, the first after
one step, and updates before the checkpoint of that step); ``"latest"`` records at ``eval_steps``,
``2 eval_steps``, ... and the update at ``s`` includes the record at ``s`` (jaxlaws before this option).

Signals: ``update(state, step=s, losses=L)`` once per training step, at the start of step ``s``, with the
held-out losses of the current parameters whenever ``observes(s)``.

LMO reading: :math:`A^t = \mathrm{diag}(L^t)\,G^\top`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike
from jaxlaws.mixing.base import Mixer, resolve_hparams
from jaxlaws.mixing.rules import skillit_weights

__all__ = [
    "skillit",
    "SkillItState",
    "SKILLIT_DEFAULTS",
    "skills_graph",
    "load_graph",
    "check_graph",
    "original_graph_rule",
]

# The original's settings (scripts/*/skillit/run.sh); its checkpoints (the loss records) every half round.
SKILLIT_DEFAULTS = {
    2: dict(eta=0.2, update_steps=500, window=3),
    3: dict(eta=0.2, update_steps=500, window=3),
    7: dict(eta=0.2, update_steps=400, window=3),
}


class SkillItState(NamedTuple):
    """The state of a :func:`skillit` mixer (a pytree).

    Attributes:
      G: ``(m, m)`` the skills graph of this run.
      p: ``(m,)`` the current mixture.
      hist: ``(window, m)`` the last recorded held-out losses (most recent last).
      n_obs: the records so far.
      n_up: the mixture updates so far.
      p_hist: ``(U, m)`` the mixture after each update.
    """

    G: jax.Array  # (m, m) the skills graph of this run
    p: jax.Array  # (m,)
    hist: jax.Array  # (window, m) last recorded held-out losses (most recent last)
    n_obs: jax.Array  # records so far
    n_up: jax.Array  # mixture updates so far
    p_hist: jax.Array  # (U, m) mixture after each update


def skillit(
    graph: ArrayLike,
    *,
    total_steps: int,
    eta: float | None = None,
    update_steps: int | None = None,
    window: int | None = None,
    eval_steps: int | None = None,
    align: Literal["original", "latest"] = "original",
) -> Mixer:
    """Skill-It with skills graph ``graph`` ``(m, m)`` over ``total_steps`` steps (module docstring).

    For m in (2, 3, 7) the hyper-parameters default to the original's (:data:`SKILLIT_DEFAULTS`); for other
    ``m`` give ``eta, update_steps, window``. ``eval_steps`` defaults to ``update_steps // 2`` (the original's
    checkpoints every half round). ``init(key, graph=None)`` takes an optional per-run
    graph (e.g. one learned per seed) in place of ``graph``.

    Args:
      graph: ``(m, m)`` the skills graph (rows: trained group, columns: evaluated group).
      total_steps: the training steps of the run.
      eta: the exponentiated-gradient step size.
      update_steps: the steps between mixture updates.
      window: the number of last recorded loss vectors an update sums.
      eval_steps: the steps between recorded held-out losses.
      align: the recording cadence, ``"original"`` or ``"latest"`` (module docstring).

    Returns:
      A :class:`~jaxlaws.mixing.Mixer` over :class:`SkillItState`; ``update(state, step=, losses=)`` records
      the ``(m,)`` held-out losses when ``observes(step)``.
    """
    G0 = check_graph(graph, None)
    m = G0.shape[0]
    hp = resolve_hparams("skillit", m, dict(eta=eta, update_steps=update_steps, window=window), SKILLIT_DEFAULTS)
    eta, update_steps, window = float(hp["eta"]), int(hp["update_steps"]), int(hp["window"])
    every = max(1, update_steps // 2) if eval_steps is None else int(eval_steps)
    total_steps = int(total_steps)
    if not eta > 0:
        raise ValueError(f"skillit: eta must be > 0, got {eta}")
    if update_steps < 1 or window < 1 or total_steps < 1:
        raise ValueError(
            f"skillit: update_steps, window and total_steps must be >= 1, got {update_steps}, {window}, {total_steps}"
        )
    if every < 1 or update_steps % every:
        raise ValueError(f"skillit: eval_steps={every} must be >= 1 and divide update_steps={update_steps}")
    if align not in ("original", "latest"):
        raise ValueError(f"skillit: align must be 'original' or 'latest', got {align!r}")
    n_updates = max(1, len(range(update_steps, total_steps, update_steps)))
    first = 0 if align == "original" else 1

    def observes(step: ArrayLike) -> jax.Array:
        s = jnp.asarray(step)
        return (s >= first) & (s < total_steps) & (s % every == 0)

    def init(key: jax.Array | None = None, graph: ArrayLike | None = None) -> SkillItState:
        G = jnp.asarray(G0 if graph is None else graph, jnp.float32)
        p = skillit_weights(G, jnp.ones(m, jnp.float32), eta)
        return SkillItState(
            G,
            p,
            jnp.zeros((window, m), jnp.float32),
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
            jnp.zeros((n_updates, m), jnp.float32),
        )

    def record(state: SkillItState, losses: jax.Array) -> SkillItState:
        return state._replace(hist=jnp.concatenate([state.hist[1:], losses[None]]), n_obs=state.n_obs + 1)

    def new_mixture(state: SkillItState) -> SkillItState:
        p = skillit_weights(state.G, state.hist.sum(0), eta)
        u = jnp.minimum(state.n_up, n_updates - 1)
        return state._replace(p=p, n_up=state.n_up + 1, p_hist=state.p_hist.at[u].set(p))

    @jax.jit
    def update(state: SkillItState, *, step: ArrayLike, losses: jax.Array) -> SkillItState:
        losses = jnp.asarray(losses, jnp.float32)
        if losses.shape != (m,):
            raise ValueError(f"skillit: losses must have shape ({m},), got {losses.shape}")
        s = jnp.asarray(step)
        due = (s > 0) & (s < total_steps) & (s % update_steps == 0)
        if align == "original":  # update from the records before s, then record the losses at s
            state = jax.lax.cond(due, new_mixture, lambda x: x, state)
            return jax.lax.cond(observes(s), record, lambda x, _: x, state, losses)
        state = jax.lax.cond(observes(s), record, lambda x, _: x, state, losses)
        return jax.lax.cond(due, new_mixture, lambda x: x, state)

    hparams = dict(
        eta=eta, update_steps=update_steps, window=window, eval_steps=every, align=align, total_steps=total_steps
    )
    return Mixer(init, lambda s: (s.p, False), update, observes, lambda s: s.p, "skillit", hparams)


def check_graph(G: ArrayLike, m: int | None) -> np.ndarray:
    """``G`` as a finite square float64 array (``(m, m)`` when ``m`` is given), or a ``ValueError``."""
    arr = np.asarray(G, np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2 or (m is not None and arr.shape != (m, m)):
        want = f"({m}, {m}) for {m} groups" if m is not None else "(m, m) with m >= 2"
        raise ValueError(f"skills graph must have shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("skills graph has NaN or infinite entries")
    return arr


def original_graph_rule(G: ArrayLike) -> np.ndarray:
    """The original's rule on a loaded graph (``SkillitTrainer.train``): off-diagonal entries equal to 1
    become 0.5.

    Args:
      G: ``(m, m)`` a graph.

    Returns:
      ``(m, m)`` float64 copy with the rule applied.
    """
    G = np.array(G, np.float64)
    G[~np.eye(len(G), dtype=bool) & (G == 1.0)] = 0.5
    return G


def skills_graph(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The Skill-It graph from one-hot runs (``mixing_law_fitting.py`` of the original).

    ``start[i]`` and ``end[i]`` are the held-out losses (all groups) of the run trained only on group ``i``,
    before and after its training: :math:`G_{ij} = (L_j^{start} - L_j^{end}) / L_j^{start}`, then
    :func:`original_graph_rule`.

    Args:
      start: ``(m, m)`` losses before training, row ``i`` the run on group ``i``.
      end: ``(m, m)`` losses after.

    Returns:
      ``(m, m)`` the graph.
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    if start.shape != end.shape or start.ndim != 2 or start.shape[0] != start.shape[1]:
        raise ValueError(f"start and end must both be (m, m) (run i, group j), got {start.shape}, {end.shape}")
    if not (np.isfinite(start).all() and np.isfinite(end).all()) or (start <= 0).any():
        raise ValueError("skills graph: losses must be finite and the start losses positive")
    return original_graph_rule((start - end) / start)


def load_graph(path: str | Path, m: int) -> np.ndarray:
    """A skills graph from ``.npy`` (the original's ``skillit_graphs/``), ``.json`` (a nested list or
    ``{"graph": ...}``) or a comma-separated text file; checked to be ``(m, m)``, then
    :func:`original_graph_rule` as the original applies it when it loads a graph.

    Args:
      path: the file.
      m: the number of groups.

    Returns:
      ``(m, m)`` the graph.
    """
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
    return original_graph_rule(check_graph(G, m))
