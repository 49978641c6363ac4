r"""The mixer interface, the constant mixer and the model-agnostic signal helpers.

A **mixer** is a :class:`Mixer`, a ``NamedTuple`` of pure functions in the style of
``optax.GradientTransformation``; its state is a pytree (stack it over seeds with ``jax.vmap(mixer.init)``)::

    state     = mixer.init(key)                  # a pytree
    p, exact  = mixer.mixture(state)             # the sampling mixture of the next batch (traced)
    state     = mixer.update(state, **signals)   # one call per training step (traced schedules inside)
    wanted    = mixer.observes(step)             # does update(step=step) read held-out losses?
    w         = mixer.weights(state)             # the method's own current mixture (what it reports)

``exact`` says whether the batch is allocated exactly (``allocate_counts(p, B)`` samples per group, in a
random order: :func:`sample_groups` with ``exact=True``) or drawn i.i.d. from ``p``. The signals are plain
arrays or pytrees that any training loop can compute (:mod:`jaxlaws.mixing.signals` computes them from a
``loss_fn(params, batch)``); every schedule is a traced predicate on the ``step`` signal, so a whole run can be
one ``jax.lax.scan``, and with ``step`` shared by the runs (a scan counter) a ``jax.vmap`` over seeds keeps
the schedule's ``lax.cond`` a real branch. ``update`` is ``jax.jit``-ed by its constructor: called eagerly
it compiles once per signal shape, not once per call; inside a jitted loop it is inlined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike, PyTree
from jaxlaws.mixing.rules import allocate_counts

__all__ = [
    "Mixer",
    "constant",
    "group_means",
    "categorical_ids",
    "allocated_ids",
    "sample_groups",
    "tree_dot",
    "clip_by_norm",
    "check_mixture",
    "resolve_hparams",
    "never",
]


class Mixer(NamedTuple):
    """A data-mixing method as pure functions (see the module docstring).

    Attributes:
      init: ``init(key) -> state``.
      mixture: ``mixture(state) -> (p (m,), exact)``, ``exact`` a bool or a traced bool.
      update: ``update(state, **signals) -> state`` (jitted).
      observes: ``observes(step) -> bool`` (traced): whether ``update(..., step=step)`` reads ``losses``.
      weights: ``weights(state) -> (m,)`` the method's current mixture.
      name: the method's name; hparams: its hyper-parameters (a dict, JSON-ready).
    """

    init: Callable[..., PyTree]
    mixture: Callable[[PyTree], tuple[jax.Array, bool | jax.Array]]
    update: Callable[..., PyTree]
    observes: Callable[[ArrayLike], jax.Array]
    weights: Callable[[PyTree], jax.Array]
    name: str
    hparams: dict[str, Any]


def never(step: ArrayLike) -> jax.Array:
    """The ``observes`` of a mixer that reads no held-out losses."""
    return jnp.zeros((), bool)


def check_mixture(p: ArrayLike, m: int | None, what: str) -> np.ndarray:
    """``p`` as a float64 mixture on the simplex (non-negative, finite, summing to 1 within 1e-4), or a
    ``ValueError`` naming ``what``."""
    arr = np.asarray(p, np.float64)
    if arr.ndim != 1 or (m is not None and arr.shape != (m,)) or arr.size < 1:
        raise ValueError(f"{what}: expected one weight per group{f' ({m},)' if m else ''}, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any() or abs(arr.sum() - 1) > 1e-4:
        raise ValueError(f"{what} = {arr.tolist()} is not on the simplex (non-negative, sum 1)")
    return arr / arr.sum()


def resolve_hparams(name: str, m: int, given: dict, defaults: dict[int, dict]) -> dict:
    """``given`` over the original's values for ``m`` groups (``defaults[m]``); for another ``m`` every
    hyper-parameter of the table must be given (``None`` in ``given`` means not given)."""
    if m < 2:
        raise ValueError(f"{name}: needs at least 2 groups, got m={m}")
    keys = next(iter(defaults.values())).keys()
    out = dict(defaults.get(m, {}))
    out.update({k: v for k, v in given.items() if v is not None})
    missing = [k for k in keys if k not in out]
    if missing:
        raise ValueError(
            f"{name}: the original's hyper-parameters are known for m in {sorted(defaults)} only; for "
            f"m={m} give {', '.join(missing)} explicitly"
        )
    return out


def constant(p: ArrayLike, exact: bool = False) -> Mixer:
    """The static mixture ``p`` at every step (``exact``: batches allocated exactly, e.g. stratified).

    The state is ``p`` itself (float32), so a per-run mixture is a different state:
    ``jax.vmap(mixer.init)`` or ``jnp.asarray(p_i)``.

    Args:
      p: ``(m,)`` the mixture, on the simplex.
      exact: whether batches are allocated exactly (:func:`sample_groups`) rather than drawn i.i.d.

    Returns:
      A :class:`Mixer` whose ``update`` leaves the state alone.
    """
    # kept as NumPy: a jax array made while a caller is tracing would be a tracer, and the mixer outlives the trace
    arr = check_mixture(p, None, "constant mixture p")
    p32 = np.asarray(arr, np.float32)

    def init(key: jax.Array | None = None) -> jax.Array:
        return jnp.asarray(p32)

    def update(state: jax.Array, **signals: Any) -> jax.Array:
        return state

    return Mixer(
        init, lambda s: (s, exact), update, never, lambda s: s, "constant", {"p": arr.tolist(), "exact": bool(exact)}
    )


def group_means(
    values: jax.Array, group_ids: jax.Array, m: int, weights: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Per-group means of ``values`` [N] given ``group_ids`` [N].

    ``mean_g = sum_{n: g_n = g} w_n v_n / sum_{n: g_n = g} w_n`` (0 where a group has no weight).

    Args:
      values: ``(N,)`` values.
      group_ids: ``(N,)`` their groups.
      m: the number of groups.
      weights: optional ``(N,)`` weights.

    Returns:
      ``(means (m,), counts (m,))``.
    """
    w = jnp.ones_like(values) if weights is None else weights.astype(values.dtype)
    one_hot = jax.nn.one_hot(group_ids, m, dtype=values.dtype) * w[:, None]
    counts = one_hot.sum(0)
    sums = one_hot.T @ values
    return jnp.where(counts > 0, sums / jnp.maximum(counts, 1e-30), 0.0), counts


def categorical_ids(key: jax.Array, p: ArrayLike, batch_size: int) -> jax.Array:
    """``batch_size`` group ids drawn i.i.d. from ``p`` (int32; zero weights are never drawn).

    Args:
      key: a ``jax.random`` key.
      p: ``(m,)`` the mixture.
      batch_size: ``B``.

    Returns:
      ``(B,)`` int32 group ids.
    """
    return jax.random.categorical(key, jnp.log(jnp.asarray(p, jnp.float32)), shape=(batch_size,)).astype(jnp.int32)


def allocated_ids(key: jax.Array, counts: ArrayLike, batch_size: int) -> jax.Array:
    """Exactly ``counts[j]`` ids of group ``j`` (``sum(counts) == batch_size``), in a random order (int32).

    Args:
      key: a ``jax.random`` key.
      counts: ``(m,)`` ints summing to ``batch_size``.
      batch_size: ``B``.

    Returns:
      ``(B,)`` int32 group ids.
    """
    # slot b belongs to the group whose cumulative count first exceeds b
    ends = jnp.cumsum(jnp.asarray(counts, jnp.int32))
    group_ids = jnp.searchsorted(ends, jnp.arange(batch_size), side="right").astype(jnp.int32)
    return jax.random.permutation(key, group_ids)


def sample_groups(key: jax.Array, p: ArrayLike, batch_size: int, exact: bool | jax.Array = False) -> jax.Array:
    """The group of each of the ``batch_size`` samples of a batch under a mixer's ``(p, exact)``.

    I.i.d. draws from ``p``, or where ``exact`` (a bool or a traced bool) ``allocate_counts(p, B)`` samples
    per group in a random order, ties between equal remainders broken at random (with a key derived from
    ``key``). The i.i.d. ids are ``categorical_ids(key, p, B)`` whatever ``exact`` is.

    Args:
      key: a ``jax.random`` key.
      p: ``(m,)`` the mixture.
      batch_size: ``B``.
      exact: whether the batch is allocated exactly.

    Returns:
      ``(B,)`` int32 group ids.
    """
    if exact is False:
        return categorical_ids(key, p, batch_size)
    counts = allocate_counts(p, batch_size, jax.random.fold_in(key, 0x7135))
    if exact is True:  # no i.i.d. draw to select from
        return allocated_ids(key, counts, batch_size)
    return jnp.where(exact, allocated_ids(key, counts, batch_size), categorical_ids(key, p, batch_size))


def tree_dot(a: PyTree, b: PyTree) -> jax.Array:
    """``<a, b>`` summed over the leaves of two pytrees of the same structure.

    Args:
      a, b: pytrees of the same structure.

    Returns:
      A scalar.
    """
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def clip_by_norm(tree: PyTree, max_norm: float) -> tuple[PyTree, jax.Array]:
    """``(tree * min(1, max_norm / (||tree|| + 1e-6)), norm after clipping)`` -- ``torch.nn.utils.clip_grad_norm_``
    on one gradient (the global norm over all leaves, the same 1e-6).

    Args:
      tree: a pytree (one gradient).
      max_norm: the largest global norm.

    Returns:
      ``(clipped tree, its norm)``.
    """
    norm = jnp.sqrt(tree_dot(tree, tree))
    scale = jnp.minimum(1.0, max_norm / (norm + 1e-6))
    return jax.tree_util.tree_map(lambda x: x * scale.astype(x.dtype), tree), norm * scale
