r"""Generative models of the online methods' recorded matrices, for synthetic method probes.

A synthetic method probe needs what the method would have recorded before its break. Copying the true
:math:`A^\star` (plus jitter) builds the answer into the input: ``sim`` comes out near 1 whatever the method
does. Here each method's *own update rule* (:mod:`jaxlaws.mixing.rules`, the functions the trainer
runs) is applied to synthetic observations drawn from the true laws, and whatever it records is the matrix:

* **Aioli** (LearnParams): each round, ``lp_rounds`` passes over the one-hot-ish mixtures :math:`q_j`; a
  segment of ``lp_steps`` steps on :math:`q_j` changes the held-out losses by the dynamic law's change
  :math:`\Delta L(q_j)` scaled to ``lp_steps / R`` steps, observed with evaluation noise
  :math:`\mathcal N(0, 2\sigma^2)` (two noisy evaluations); :math:`G` accumulates the decreases, ``A`` =
  :func:`aioli_solve` then :func:`aioli_normalize`; the mixture follows :func:`aioli_weights`. Records the
  normalised ``A`` of every round (``aioli_A``).
* **DoReMi**: excess losses :math:`e_i = L_i(w_t) - L_i(\text{uniform}) + \varepsilon` with :math:`L` the
  static law (proxy at the current weights, reference trained stratified) and per-batch noise
  :math:`\varepsilon \sim \mathcal N(0, \sigma_b^2)`; weights by :func:`doremi_update`. Records
  ``diag(e)`` of the last ``record`` steps (``doremi_excess``); the method's mixture is the average weight.
* **DoGE**: first-order gradients. The true dynamic law says a step on group ``j`` changes the loss of
  group ``i`` by :math:`\propto A^\star_{ij}`; with random train-gradient means :math:`\mu_j \in \mathbb
  R^d` and validation-gradient means :math:`\nu_i` solving :math:`\langle \nu_i, \mu_j\rangle = -A^\star_{ij}`
  (the first-order reading of the law), each step draws minibatch gradients :math:`g_j = \mu_j + \xi`,
  :math:`v_i = \nu_i + \zeta` (isotropic noise, sd ``grad_noise`` per coordinate relative to the mean
  norm), scores by :func:`doge_scores`, updates :math:`\log w \mathrel{+}= s/\mu`. Records
  :math:`M_{ij} = \langle g_i, v_j\rangle` -- **the trainer's orientation** (rows = train domain), i.e. the
  transpose of the LMO reading -- for the last ``record`` steps (``doge_M``).

Skill-It's graph is the original's stored one (:func:`jaxlaws.sweeps.reference.skillit_graph`), which is
measured, not derived from :math:`A^\star`.

How close the recorded matrices come to :math:`A^\star` is whatever these simulations give: noise,
normalisation, orientation and the rules' own approximations all count (``tests/test_sweeps_synthetic.py``
checks that ``sim`` is not built in: random positive matrices give low ``sim``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

LossChange = Callable[[np.ndarray], np.ndarray]  # mixtures (n, m) -> loss change over R steps (n, m)
StaticLoss = Callable[[np.ndarray], np.ndarray]  # mixtures (n, m) -> static-law losses (n, m)


@functools.lru_cache(maxsize=1)
def _rules() -> SimpleNamespace:
    """The trainer's rules, jitted (imported on use: the rules live with the trainer, whose package pulls
    flax); static arguments are the hyper-parameters."""
    import jax

    from jaxlaws.mixing import rules as r

    return SimpleNamespace(
        one_hotish=r.one_hotish,
        aioli_learn=jax.jit(lambda G, W: r.aioli_normalize(r.aioli_solve(G, W))),
        aioli_weights=jax.jit(r.aioli_weights, static_argnames=("eta", "ema")),
        doremi_update=jax.jit(r.doremi_update, static_argnames=("mu", "smoothing")),
        doge_scores=jax.jit(r.doge_scores),
        softmax_weights=jax.jit(r.softmax_weights),
    )


def simulate_aioli(
    delta: LossChange,
    m: int,
    rng: np.random.Generator,
    *,
    rounds: int,
    steps_run: int,
    noise: float,
    eta: float = 0.2,
    ema: float | None = 0.1,
    lp_rounds: int = 4,
    lp_steps: int = 4,
    ohf: float = 0.625,
) -> tuple[np.ndarray, np.ndarray]:
    """Aioli's LearnParams + EG on losses drawn from ``delta`` (module docstring).

    Returns ``(A_stack (rounds, m, m), p)``: the normalised ``A`` of every round and the final mixture.
    """
    import jax.numpy as jnp

    r = _rules()
    W = np.asarray(r.one_hotish(m, ohf), np.float64)
    change = delta(W) * (lp_steps / steps_run)  # row j: loss change of a segment on q_j
    w, a_bar = np.full(m, 1.0 / m), np.zeros((m, m))
    base = jnp.full(m, 1.0 / m, jnp.float32)
    stack = []
    for t in range(rounds):
        G = np.zeros((m, m))
        for _ in range(lp_rounds):
            for j in rng.permutation(m):
                G[:, j] += -change[j] + np.sqrt(2.0) * noise * rng.standard_normal(m)
        A = r.aioli_learn(jnp.asarray(G / lp_rounds, jnp.float32), jnp.asarray(W, jnp.float32))
        p, a_bar = r.aioli_weights(
            A,
            jnp.asarray(a_bar, jnp.float32),
            jnp.asarray(w, jnp.float32),
            jnp.asarray(t == 0),
            eta=eta,
            ema=ema,
            base=base,
        )
        w, a_bar = np.asarray(p, np.float64), np.asarray(a_bar, np.float64)
        stack.append(np.asarray(A, np.float64))
    return np.stack(stack), w / w.sum()


def simulate_doremi(
    static_loss: StaticLoss,
    m: int,
    rng: np.random.Generator,
    *,
    steps: int,
    batch_noise: float,
    mu: float = 0.01,
    smoothing: float = 1e-3,
    record: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """DoReMi's proxy updates on excess losses drawn from the static law (module docstring).

    Returns ``(diag(e) stack (record, m, m), average weights)``.
    """
    import jax.numpy as jnp

    r = _rules()
    ref = static_loss(np.full((1, m), 1.0 / m))[0]
    w, prev = jnp.full(m, 1.0 / m, jnp.float32), jnp.zeros(m, jnp.float32)
    present = jnp.ones(m, bool)
    w_sum, hist = np.zeros(m), []
    for _ in range(steps):
        wn = np.asarray(w, np.float64)
        e = static_loss((wn / wn.sum())[None])[0] - ref + batch_noise * rng.standard_normal(m)
        w_sum += wn
        w, prev = r.doremi_update(w, jnp.asarray(e, jnp.float32), prev, present, mu=mu, smoothing=smoothing)
        hist.append(np.diag(np.asarray(prev, np.float64)))
    return np.stack(hist[-record:]), w_sum / w_sum.sum()


def simulate_doge(
    a_star: np.ndarray,
    rng: np.random.Generator,
    *,
    steps: int,
    grad_noise: float,
    dim: int = 64,
    mu: float = 0.01,
    lr: float = 1e-3,
    record: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """DoGE's alignment scores on first-order gradients consistent with ``a_star`` (module docstring).

    Returns ``(M stack (record, m, m)`` in the trainer's orientation ``M[i, j] = <g_i, v_j>``, average
    weights).
    """
    import jax.numpy as jnp

    r = _rules()
    m = a_star.shape[0]
    train_mean = rng.standard_normal((m, dim)) / np.sqrt(dim)  # mu_j: unit-ish random directions
    # nu_i with <nu_i, mu_j> = -a_star[i, j]: the least-norm solution of nu @ mu.T = -a_star
    val_mean = np.linalg.lstsq(train_mean, -a_star.T, rcond=None)[0].T
    scale = grad_noise * np.linalg.norm(train_mean, axis=1).mean() / np.sqrt(dim)
    log_w, w_sum, hist = jnp.zeros(m, jnp.float32), np.zeros(m), []
    for _ in range(steps):
        g = train_mean + scale * rng.standard_normal((m, dim))
        v = val_mean + scale * rng.standard_normal((m, dim))
        w = np.asarray(r.softmax_weights(log_w), np.float64)
        w_sum += w
        M = g @ v.T  # rows: train domain, columns: val domain
        dots = M @ w  # <g_i, g_val>, g_val = sum_j w_j v_j
        s = r.doge_scores(
            jnp.asarray(dots, jnp.float32), jnp.asarray(np.linalg.norm(g, axis=1), jnp.float32), jnp.float32(lr)
        )
        log_w = log_w + s / mu
        hist.append(M)
    return np.stack(hist[-record:]), w_sum / w_sum.sum()


__all__ = ["simulate_aioli", "simulate_doremi", "simulate_doge"]
