r"""The mixture a fitted static law predicts to be optimal (Aioli, Chen et al. 2025; HazyResearch/aioli notebooks).

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
* traceable and differentiable (:func:`optimal_mixture`): projected gradient, then Newton steps on the
  support; a pure function of the law's parameters, usable under ``jit``/``vmap``/``grad``. Its derivative
  is not the unrolled iteration's but that of the KKT conditions at the optimum (implicit function theorem),
  with the components at 0 (the active set :math:`A`) held fixed. On the support :math:`F` the optimum
  satisfies :math:`\nabla_F f(p^\star;\theta) = \lambda\mathbf 1` and :math:`\mathbf 1^\top p_F = 1`, so

  .. math:: \begin{pmatrix} \nabla^2_{FF} f & \mathbf 1 \\ \mathbf 1^\top & 0 \end{pmatrix}
            \begin{pmatrix} \dot p_F \\ -\dot\lambda \end{pmatrix}
            = \begin{pmatrix} -\partial_\theta \nabla_F f\,\dot\theta \\ 0 \end{pmatrix},
            \qquad \dot p_A = 0,

  valid where the optimum is unique and strictly complementary (a component at 0 has a positive multiplier).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxlaws._typing import ArrayLike, PyTree

__all__ = [
    "LossesFn",
    "two_group_optimum",
    "project_simplex",
    "simplex_minimise",
    "OptimumResult",
    "optimal_mixture",
    "log_linear_losses",
    "two_group_losses",
    "paper_losses",
    "optimum_table",
]

Array = jax.Array
# (params (m, P), p (m,)) -> predicted losses (m,)
LossesFn = Callable[[Array, Array], Array]


# --------------------------------------------------------------------------- m = 2, closed form
def two_group_optimum(
    k1: ArrayLike, b1: ArrayLike, k2: ArrayLike, b2: ArrayLike, w1: float = 1.0, w2: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form minimiser of :math:`w_1 e^{k_1 p + b_1} + w_2 e^{k_2 (1-p) + b_2}` over ``p`` (module docstring).

    ``k1`` and ``k2`` must be non-zero with the same sign (otherwise the logarithm is undefined: one loss rises
    with its own share).

    Args:
      k1, b1: group 1's slope and intercept (arrays broadcast, e.g. over seeds).
      k2, b2: group 2's.
      w1, w2: the groups' weights.

    Returns:
      ``(p1_clipped, p1_raw)``: group 1's optimal proportion clipped to [0, 1], and unclipped.
    """
    k1, b1, k2, b2 = (np.asarray(v, dtype=np.float64) for v in (k1, b1, k2, b2))
    if np.any(k1 * k2 <= 0):
        raise ValueError(f"two_group_optimum needs k1 and k2 non-zero and of the same sign, got k1={k1}, k2={k2}")
    if w1 <= 0 or w2 <= 0:
        raise ValueError(f"weights must be positive, got w1={w1}, w2={w2}")
    raw = (k2 + b2 - b1 + np.log((w2 * k2) / (w1 * k1))) / (k1 + k2)
    return np.clip(raw, 0.0, 1.0), raw


# --------------------------------------------------------------------------- simplex solvers
def project_simplex(v: Array) -> Array:
    r"""Euclidean projection of ``v`` onto the simplex :math:`\{p \ge 0, \sum p = 1\}` (sort-based, exact).

    With :math:`u` sorted decreasingly, :math:`\rho = \max\{j : u_j - (\sum_{r\le j} u_r - 1)/j > 0\}` and
    :math:`\theta = (\sum_{r\le\rho} u_r - 1)/\rho`, the projection is :math:`\max(v - \theta, 0)`.

    Args:
      v: ``(m,)`` vector.

    Returns:
      ``(m,)`` the nearest point of the simplex.
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


def simplex_minimise(
    losses_fn: LossesFn,
    params: PyTree,
    weights: ArrayLike | None = None,
    method: Literal["projected", "eg"] = "projected",
    steps: int = 500,
    lr: float = 1.0,
) -> tuple[Array, Array]:
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
        def obj(p):
            return w @ losses_fn(theta, p)

        if method == "projected":
            p = _projected_gradient(obj, p0, steps)
        else:
            p = _exponentiated_gradient(obj, p0, steps, lr)
        return p, obj(p)

    return jax.vmap(one)(params)


# --------------------------------------------------------------------------- traceable, differentiable optimum
@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["p", "value", "active", "multiplier", "kkt_residual"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class OptimumResult:
    r"""What :func:`optimal_mixture` returns: a pytree of arrays (leading axes added by ``vmap``).

    Attributes:
      p: ``(m,)`` the optimal mixture; differentiable w.r.t. the law's parameters and the weights (module
        docstring: implicit differentiation of the KKT conditions, the active set held fixed).
      value: ``()`` :math:`\sum_i w_i L_i(p^\star)` (differentiable too; by the envelope theorem its
        derivative is :math:`\sum_i w_i \partial_\theta L_i`).
      active: ``(m,)`` bool, the components at exactly 0 (held fixed by the derivative).
      multiplier: ``()`` :math:`\lambda`, the common value of :math:`\partial f/\partial p_i` on the support.
      kkt_residual: ``()`` :math:`\lVert p - \Pi_\Delta(p - \nabla f)\rVert_\infty`, the projected-gradient
        residual: 0 exactly at a KKT point (a check of convergence, in units of the objective).
    """

    p: Array
    value: Array
    active: Array
    multiplier: Array
    kkt_residual: Array


def _total(losses_fn: LossesFn, params: Any, w: Array, p: Array) -> Array:
    return jnp.dot(w, losses_fn(params, p))


def _bordered(h: Array, free: Array) -> Array:
    r"""The KKT matrix :math:`\begin{pmatrix} H_{FF} & 1_F \\ 1_F^\top & 0 \end{pmatrix}` padded to ``(m+1, m+1)``
    with unit rows/columns for the active components (so that their step is 0) -- fixed shapes for ``vmap``."""
    h.shape[0]
    ff = free[:, None] & free[None, :]
    top = jnp.where(ff, h, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
    col = jnp.where(free, 1.0, 0.0).astype(h.dtype)
    return jnp.block([[top, col[:, None]], [col[None, :], jnp.zeros((1, 1), h.dtype)]])


def _newton_polish(obj: Callable[[Array], Array], p: Array, steps: int) -> Array:
    """Newton steps on the support (equality-constrained, active components fixed), each cut back to stay in
    the simplex (a component reaching 0 joins the active set) and kept unless it raises ``obj`` beyond
    round-off (near the optimum the decrease, quadratic in the gradient, is below round-off of ``obj``)."""
    grad, hess = jax.grad(obj), jax.hessian(obj)
    m = p.shape[0]

    def body(_, p):
        free = p > 0
        g = grad(p)
        rhs = jnp.concatenate([-jnp.where(free, g, 0.0), jnp.zeros((1,), p.dtype)])
        d = jnp.linalg.solve(_bordered(hess(p), free), rhs)[:m]
        d = jnp.where(free, d, 0.0)
        # the longest step in [0, 1] that keeps every component >= 0
        ratio = jnp.where(d < 0, -p / jnp.where(d < 0, d, -1.0), jnp.inf)
        t = jnp.minimum(1.0, jnp.min(ratio))
        hit = (d < 0) & (ratio <= t)
        q = jnp.where(hit, 0.0, jnp.maximum(p + t * d, 0.0))
        q = q / jnp.sum(q)
        f = obj(p)
        ok = jnp.all(jnp.isfinite(q)) & (obj(q) <= f + 64 * jnp.finfo(p.dtype).eps * jnp.abs(f))
        return jnp.where(ok, q, p)

    return jax.lax.fori_loop(0, steps, body, p)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _argmin(losses_fn: LossesFn, steps: int, newton: int, params: Any, w: Array) -> Array:
    obj = functools.partial(_total, losses_fn, params, w)
    m = w.shape[0]
    p = _projected_gradient(obj, jnp.full((m,), 1.0 / m, w.dtype), steps)
    return _newton_polish(obj, p, newton)


@_argmin.defjvp
def _argmin_jvp(losses_fn, steps, newton, primals, tangents):
    params, w = primals
    p = _argmin(losses_fn, steps, newton, params, w)
    m = p.shape[0]
    free = p > 0
    grad_p = jax.grad(_total, argnums=3)
    # the KKT system's right-hand side: how the gradient on the support moves with (params, w)
    _, b = jax.jvp(lambda th, ww: grad_p(losses_fn, th, ww, p), (params, w), tangents)
    h = jax.hessian(_total, argnums=3)(losses_fn, params, w, p)
    rhs = jnp.concatenate([-jnp.where(free, b, 0.0), jnp.zeros((1,), p.dtype)])
    dp = jnp.linalg.solve(_bordered(h, free), rhs)[:m]
    return p, jnp.where(free, dp, 0.0)


def optimal_mixture(
    losses_fn: LossesFn, params: PyTree, weights: ArrayLike | None = None, *, steps: int = 300, newton: int = 8
) -> OptimumResult:
    r"""The mixture minimising :math:`\sum_i w_i L_i(p;\theta)` over the simplex, as a pure JAX function.

    Traceable (``jit``, ``vmap`` over parameter sets, ``grad``/``jacfwd``/``jacrev``): ``result.p`` is
    differentiable w.r.t. ``params`` and ``weights`` by the implicit function theorem on the KKT conditions
    with the active set fixed (module docstring), not by unrolling the iterations. The forward solve is
    ``steps`` projected-gradient iterations from the uniform mixture (:func:`simplex_minimise`'s), then
    ``newton`` Newton steps on the support, which bring a smooth, strongly convex problem (the static laws'
    sums of exponentials) to round-off. Where the optimum is not unique (a flat direction on the support)
    or a component sits at 0 with a zero multiplier, the derivative is not defined.

    Args:
      losses_fn: ``(params, p (m,)) -> (m,)`` predicted losses per group, pure (e.g.
        :func:`log_linear_losses`); it must be the same Python object across calls to reuse the compilation.
      params: the law's parameters, any pytree (e.g. an ``(m, P)`` array); its first leaf's leading axis is
        ``m`` unless ``weights`` give it.
      weights: ``(m,)`` positive group weights, default ones.
      steps, newton: iterations of the two stages (static).
    Returns:
      :class:`OptimumResult`.
    """
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("optimal_mixture: params is empty")
    dtype = jnp.result_type(*leaves, float)
    if weights is None:
        if jnp.ndim(leaves[0]) < 1:
            raise ValueError("optimal_mixture: pass weights (m,) when params' first leaf has no group axis")
        w = jnp.ones(jnp.shape(leaves[0])[0], dtype)
    else:
        w = jnp.asarray(weights, dtype)
        if w.ndim != 1 or w.shape[0] < 2:
            raise ValueError(f"optimal_mixture: weights must be (m,) with m >= 2, got shape {w.shape}")
        if not isinstance(w, jax.core.Tracer) and not bool(jnp.all(w > 0)):
            raise ValueError(f"optimal_mixture: weights must be positive, got {weights!r}")
    m = w.shape[0]
    out = jax.eval_shape(losses_fn, params, jax.ShapeDtypeStruct((m,), dtype))
    if getattr(out, "shape", None) != (m,):
        raise ValueError(
            f"optimal_mixture: losses_fn(params, p (m={m},)) must return ({m},) losses, "
            f"got {getattr(out, 'shape', out)}"
        )
    return _optimal_mixture(losses_fn, int(steps), int(newton), params, w)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _optimal_mixture(losses_fn, steps, newton, params, w) -> OptimumResult:
    p = _argmin(losses_fn, steps, newton, params, w)
    ps, ws = jax.lax.stop_gradient(p), jax.lax.stop_gradient(w)
    g = jax.grad(_total, argnums=3)(losses_fn, jax.lax.stop_gradient(params), ws, ps)
    free = ps > 0
    lam = jnp.sum(jnp.where(free, g, 0.0)) / jnp.maximum(jnp.sum(free), 1)
    kkt = jnp.max(jnp.abs(ps - project_simplex(ps - g)))
    return OptimumResult(p=p, value=_total(losses_fn, params, w, p), active=~free, multiplier=lam, kkt_residual=kkt)


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


def optimum_table(
    params: dict, groups: tuple[str, ...], form: str = "log_linear", weights: np.ndarray | None = None, steps: int = 500
) -> pd.DataFrame:
    """Optimal mixture per seed from fitted static parameters ``params[group][seed] -> (P,)``.

    For ``"two_group"`` the closed form is used as well (columns ``p1_closed_form_raw``, ``clipped``; NaN for a
    seed whose slopes ``k1, k2`` do not share a sign, where it does not exist) and cross-checked against the
    numerical solver.

    Args:
      params: ``{group: {seed: (P,)}}`` fitted parameters.
      groups: the group names, in order.
      form: ``"log_linear"`` (``[l, b, t...]``), ``"two_group"`` (``[c, k, b]``) or ``"paper"``.
      weights: ``(m,)`` group weights of the total loss; default ones.
      steps: iterations of the simplex solver.

    Returns:
      One row per seed: ``p_<group>`` (numerical optimum), ``total_loss`` at the optimum and ``uniform_loss`` at
      the uniform mixture, plus a ``mean`` row.
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
        uniform = jax.vmap(
            lambda th: (jnp.ones(m) if weights is None else jnp.asarray(weights)) @ fn(th, jnp.full(m, 1.0 / m))
        )(jnp.asarray(theta))
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
            clipped[ok], raw[ok] = two_group_optimum(
                theta[ok, 0, 1], theta[ok, 0, 2], theta[ok, 1, 1], theta[ok, 1, 2], w1, w2
            )
        df["p1_closed_form_raw"], df["p1_closed_form"] = raw, clipped
        df["clipped"] = ok & (raw != clipped)
    mean = df.drop(columns=["seed", "clipped"], errors="ignore").mean().to_frame().T
    mean.insert(0, "seed", "mean")
    if "clipped" in df:
        mean["clipped"] = bool(df["clipped"].any())
    return pd.concat([df.astype({"seed": object}), mean], ignore_index=True)
