r"""The mixture a fitted static law predicts to be optimal (spec 8).

We minimise the (optionally weighted) sum of predicted losses over the simplex,

.. math:: p^\star = \arg\min_{p\in\Delta^m} \sum_i w_i L_i(p).

* m=2, :math:`L_i = c_i + \exp(k_i p_i + b_i)` with :math:`p_2 = 1 - p_1`: setting the derivative to
  zero gives the closed form (the objective is convex, so the stationary point is the minimum)

  .. math:: p_1^\star = \frac{k_2 + b_2 - b_1 + \ln\big(w_2 k_2 / (w_1 k_1)\big)}{k_1 + k_2}.

  The original notebook reports it unclipped; we report both and clip to [0, 1] (the minimiser over the
  segment when the stationary point lies outside it, by convexity).
* any m: projected gradient descent with the exact Euclidean projection onto the simplex (sort-based)
  and a backtracking line search, or exponentiated gradient. Both are jit-compiled and vmapped over a
  batch of parameter sets (e.g. seeds), so all seeds are solved by one compiled program. (The original
  used Adam with clamp-and-rescale, which is not a projection.)
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

Array = jax.Array
# (params (m, P), p (m,)) -> predicted losses (m,)
LossesFn = Callable[[Array, Array], Array]


# --------------------------------------------------------------------------- m = 2, closed form
def two_group_optimum(k1, b1, k2, b2, w1: float = 1.0, w2: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Closed-form minimiser of :math:`w_1 e^{k_1 p + b_1} + w_2 e^{k_2 (1-p) + b_2}` (module docstring).

    Broadcasts over arrays (e.g. seeds). Returns ``(p1_clipped, p1_raw)``. ``k1`` and ``k2`` must be
    non-zero with the same sign (otherwise the logarithm is undefined: one loss rises with its own share).
    """
    k1, b1, k2, b2 = (np.asarray(v, dtype=np.float64) for v in (k1, b1, k2, b2))
    if np.any(k1 * k2 <= 0):
        raise ValueError("two_group_optimum needs k1 and k2 non-zero and of the same sign, "
                         f"got k1={k1}, k2={k2}")
    if w1 <= 0 or w2 <= 0:
        raise ValueError(f"weights must be positive, got w1={w1}, w2={w2}")
    raw = (k2 + b2 - b1 + np.log((w2 * k2) / (w1 * k1))) / (k1 + k2)
    return np.clip(raw, 0.0, 1.0), raw


# --------------------------------------------------------------------------- simplex solvers
def project_simplex(v: Array) -> Array:
    r"""Euclidean projection of ``v`` (m,) onto :math:`\{p \ge 0, \sum p = 1\}` (sort-based, exact).

    With :math:`u` sorted decreasingly, :math:`\rho = \max\{j : u_j - (\sum_{r\le j} u_r - 1)/j > 0\}` and
    :math:`\theta = (\sum_{r\le\rho} u_r - 1)/\rho`, the projection is :math:`\max(v - \theta, 0)`.
    """
    u = jnp.sort(v)[::-1]
    css = jnp.cumsum(u) - 1.0
    j = jnp.arange(1, v.shape[0] + 1, dtype=v.dtype)
    rho = jnp.max(jnp.where(u - css / j > 0, j, 0.0))
    theta = jnp.take(css, rho.astype(jnp.int32) - 1) / rho
    return jnp.maximum(v - theta, 0.0)


def _projected_gradient(obj: Callable[[Array], Array], p0: Array, steps: int) -> Array:
    """Projected gradient with backtracking (sufficient decrease for the projected step), step grows 2x."""
    vg = jax.value_and_grad(obj)

    def body(_, state):
        p, s = state
        f, g = vg(p)

        def shrink(carry):
            s_, _ = carry
            return s_ * 0.5, project_simplex(p - 0.5 * s_ * g)

        def not_enough(carry):
            s_, q = carry
            d = q - p
            return (obj(q) > f + g @ d + 0.5 / s_ * (d @ d) + 1e-15) & (s_ > 1e-12)

        s, q = jax.lax.while_loop(not_enough, shrink, (s, project_simplex(p - s * g)))
        return q, 2.0 * s

    p, _ = jax.lax.fori_loop(0, steps, body, (p0, jnp.asarray(1.0, p0.dtype)))
    return p


def _exponentiated_gradient(obj: Callable[[Array], Array], p0: Array, steps: int, lr: float) -> Array:
    r"""Mirror descent with the entropy: :math:`p \leftarrow p \odot e^{-\eta g} / Z` (stays interior)."""
    grad = jax.grad(obj)

    def body(_, p):
        logits = jnp.log(p) - lr * grad(p)
        return jax.nn.softmax(logits)

    return jax.lax.fori_loop(0, steps, body, p0)


def simplex_minimise(losses_fn: LossesFn, params: Array, weights: Optional[Array] = None,
                     method: str = "projected", steps: int = 500, lr: float = 1.0) -> tuple[Array, Array]:
    r"""Minimise :math:`\sum_i w_i L_i(p)` over the simplex for a batch of parameter sets.

    Args:
      losses_fn: ``(params (m, P), p (m,)) -> (m,)`` predicted losses; pure and jit-safe.
      params: ``(S, m, P)``: S independent problems (e.g. seeds) solved in one compiled, vmapped call.
      weights: ``(m,)`` positive weights, default ones.
      method: ``"projected"`` (projected gradient, Euclidean projection, backtracking) or ``"eg"``
        (exponentiated gradient with step ``lr``; never reaches the boundary exactly).
      steps: iterations (fixed, so the program is one compiled loop).
    Returns:
      ``(p (S, m), total (S,))``: the minimisers and the weighted predicted loss there.
    """
    params = jnp.asarray(params)
    if params.ndim != 3:
        raise ValueError(f"params must be (S, m, P), got shape {params.shape}")
    m = params.shape[1]
    w = jnp.ones(m, params.dtype) if weights is None else jnp.asarray(weights, params.dtype)
    if w.shape != (m,) or bool(jnp.any(w <= 0)):
        raise ValueError(f"weights must be {m} positive numbers, got {weights!r}")
    if method not in ("projected", "eg"):
        raise ValueError(f"method must be 'projected' or 'eg', got {method!r}")
    return _solve(losses_fn, params, w, method, int(steps), float(lr))


@jax.jit(static_argnums=(0, 3, 4, 5))
def _solve(losses_fn, params, w, method, steps, lr):
    m = params.shape[1]
    p0 = jnp.full((m,), 1.0 / m, params.dtype)

    def one(theta):
        obj = lambda p: w @ losses_fn(theta, p)
        if method == "projected":
            p = _projected_gradient(obj, p0, steps)
        else:
            p = _exponentiated_gradient(obj, p0, steps, lr)
        return p, obj(p)

    return jax.vmap(one)(params)


# --------------------------------------------------------------------------- law-specific losses
def log_linear_losses(params: Array, p: Array) -> Array:
    r"""Reduced static law per group, ``params (m, m+1) = [l, b, t_1..t_{m-1}]``:
    :math:`L_i = e^{\ell_i} + \exp(b_i + \sum_{j<m} t_{ij} p_j)`."""
    m = p.shape[0]
    return jnp.exp(params[:, 0]) + jnp.exp(params[:, 1] + params[:, 2:] @ p[: m - 1])


def two_group_losses(params: Array, p: Array) -> Array:
    r"""m=2 static law per group, ``params (2, 3) = [c, k, b]``: :math:`L_i = c_i + \exp(k_i p_i + b_i)`."""
    return params[:, 0] + jnp.exp(params[:, 1] * p + params[:, 2])


def paper_losses(params: Array, p: Array) -> Array:
    r"""Paper form per group, ``params (m, m+2) = [c, b, A_1..A_m]``: :math:`L_i = c_i + b_i e^{-A_i\cdot p}`."""
    return params[:, 0] + params[:, 1] * jnp.exp(-(params[:, 2:] @ p))


_FORMS = {"log_linear": log_linear_losses, "two_group": two_group_losses, "paper": paper_losses}


def optimum_table(params: dict, groups: tuple[str, ...], form: str = "log_linear",
                  weights: Optional[np.ndarray] = None, steps: int = 500) -> pd.DataFrame:
    """Optimal mixture per seed from fitted static parameters ``params[group][seed] -> (P,)``.

    ``form`` is ``"log_linear"`` ([l, b, t...]), ``"two_group"`` ([c, k, b]) or ``"paper"``. For
    ``"two_group"`` the closed form is used as well (columns ``p1_closed_form_raw``, ``clipped``; NaN for a
    seed whose slopes ``k1, k2`` do not share a sign, where it does not exist) and cross-checked against the
    numerical solver. Returns one row per seed: ``p_<group>`` (numerical
    optimum), ``total_loss`` at the optimum and ``uniform_loss`` at the uniform mixture, plus a ``mean``
    row.
    """
    if form not in _FORMS:
        raise ValueError(f"form must be one of {sorted(_FORMS)}, got {form!r}")
    groups = tuple(groups)
    m = len(groups)
    seeds = sorted(set.intersection(*(set(params[g]) for g in groups)))
    if not seeds:
        raise ValueError(f"no seed has fitted parameters for every group of {list(groups)}")
    theta = np.stack([np.stack([np.asarray(params[g][s], np.float64) for g in groups]) for s in seeds])
    fn = _FORMS[form]
    with jax.enable_x64(True):
        p, total = simplex_minimise(fn, jnp.asarray(theta), weights, steps=steps)
        uniform = jax.vmap(lambda th: (jnp.ones(m) if weights is None else jnp.asarray(weights))
                           @ fn(th, jnp.full(m, 1.0 / m)))(jnp.asarray(theta))
        p, total, uniform = np.asarray(p), np.asarray(total), np.asarray(uniform)
    df = pd.DataFrame(p, columns=[f"p_{g}" for g in groups])
    df.insert(0, "seed", seeds)
    df["total_loss"], df["uniform_loss"] = total, uniform
    if form == "two_group":
        w1, w2 = (1.0, 1.0) if weights is None else (float(weights[0]), float(weights[1]))
        # the closed form needs k1, k2 of one sign; a seed without (e.g. a flat, flagged fit) gets NaN there
        ok = theta[:, 0, 1] * theta[:, 1, 1] > 0
        raw, clipped = np.full(len(seeds), np.nan), np.full(len(seeds), np.nan)
        if ok.any():
            clipped[ok], raw[ok] = two_group_optimum(theta[ok, 0, 1], theta[ok, 0, 2], theta[ok, 1, 1],
                                                     theta[ok, 1, 2], w1, w2)
        df["p1_closed_form_raw"], df["p1_closed_form"] = raw, clipped
        df["clipped"] = ok & (raw != clipped)
    mean = df.drop(columns=["seed", "clipped"], errors="ignore").mean().to_frame().T
    mean.insert(0, "seed", "mean")
    if "clipped" in df:
        mean["clipped"] = bool(df["clipped"].any())
    return pd.concat([df.astype({"seed": object}), mean], ignore_index=True)
