r"""Normal equations of a :class:`~jaxlaws.laws.base.SingleIndex` law by matrix products over the inits.

For :math:`f(x_n;\theta) = h(\theta_{<s}, z_n, x_n)` with :math:`z = \Phi\beta`, :math:`\beta = \theta_{\ge s}`,
the Jacobian of the residuals is :math:`J = [\,H,\ \mathrm{diag}(d)\,\Phi\,]` with :math:`H = \partial r/\partial
\theta_{<s}` (``s`` columns) and :math:`d_n = \partial r_n/\partial z_n`. With IRLS weights :math:`W` the
Gauss-Newton blocks are

.. math::
    A_{hh} = H^\top W H,\quad A_{h\beta} = (W d \odot H)^\top \Phi,\quad
    A_{\beta\beta} = \Phi^\top \mathrm{diag}(W d^2)\,\Phi = (W d^2)^\top (\Phi \odot \Phi)_{\text{upper}},

and :math:`g = J^\top W r`. Under ``vmap`` over inits the per-point vectors stack into ``(inits, N)``
matrices and each block is one matrix product with the problem's fixed features (``Phi`` and its
pairwise products, computed once per problem). The generic path sums ``P^2/2`` Jacobian-column products
per init, which streams the Jacobian through memory ``P/2`` times (``benchmarks/bench_fit.py --public``
measures the whole fit both ways; the timings are in ``benchmarks/RESULTS.md``).

The result is the same ``(f, A, g)`` as differentiating the engine's full residual vector (bounds by
reparametrisation, masked points, ridge residuals), to round-off: ``tests/test_index_normal.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.fitting import regularise
from jaxlaws.fitting.objectives import Objective
from jaxlaws.laws.base import Array, SingleIndex

__all__ = ["KR_MAX", "normal_equations", "check_index"]

#: Largest ``N * Q`` (points x index pairs) for which the pairwise feature products are stored; above it
#: the index block is formed as ``(Phi * v)^T Phi`` (twice the arithmetic, no ``N x Q`` table).
KR_MAX = 1 << 22


def normal_equations(
    index: SingleIndex, objective: Objective, box: Any, pen: Any, x: Array, y: Array, w: Array, total: Array
) -> Callable[[Array], tuple[Array, Array, Array]]:
    r"""``u -> (f, A, g)`` for the engine's objective
    :math:`\sum_n w_n \rho(r_n(\theta)) + \tfrac12\lVert s(\theta)\rVert^2`, :math:`\theta = T(u)` (the box's
    elementwise transform), :math:`s` the ridge residuals; ``w (N,)`` is zero at points not fitted."""
    s = index.start
    phi = index.features(x)  # (N, q): the problem's data, shared by every init
    n, q = phi.shape
    iu, ju = np.triu_indices(q)
    pos = np.zeros((q, q), np.int32)
    pos[iu, ju] = pos[ju, iu] = np.arange(len(iu))
    pairs = phi[:, iu] * phi[:, ju] if n * len(iu) <= KR_MAX else None
    keep = w > 0

    def residual(h, z):
        return objective.residual(y, index.head(h, z, x))

    def normal(u: Array):
        theta, dtheta = jax.jvp(lambda v: regularise.to_box(v, box), (u,), (jnp.ones_like(u),))
        h, beta = theta[:s], theta[s:]
        r, lin = jax.linearize(residual, h, phi @ beta)
        zero_h, zero_z = jnp.zeros_like(h), jnp.zeros_like(r)
        eye = jnp.eye(s, dtype=h.dtype)
        mask = lambda a: jnp.where(keep, a, 0.0)  # noqa: E731  (padded or held-out points: no NaN leaks in)
        r = mask(r)
        cols = [mask(lin(eye[a], zero_z)) for a in range(s)]
        d = mask(lin(zero_h, jnp.ones_like(r)))
        wt = w * objective.weight(r)
        wd = wt * d
        if pairs is not None:
            a_bb = ((wd * d) @ pairs)[pos]
        else:
            a_bb = (phi * (wd * d)[:, None]).T @ phi
        g_b = (wd * r) @ phi
        if s == 0:  # a pure exp(linear)-type law: the index block is the whole matrix
            a, g = a_bb, g_b
        else:
            a_hh = jnp.stack([jnp.stack([jnp.sum(wt * ca * cb) for cb in cols]) for ca in cols])
            a_hb = jnp.stack([(wd * ca) @ phi for ca in cols])  # (s, q)
            a = jnp.concatenate(
                [jnp.concatenate([a_hh, a_hb], axis=1), jnp.concatenate([a_hb.T, a_bb], axis=1)], axis=0
            )
            g = jnp.concatenate([jnp.stack([jnp.sum(wt * ca * r) for ca in cols]), g_b])
        f = jnp.sum(w * objective.rho(r))
        a, g, f = _add_penalty(a, g, f, theta, pen, total)
        a = dtheta[:, None] * a * dtheta[None, :]
        return jnp.where(jnp.isfinite(f), f, jnp.inf), a, dtheta * g

    return normal


def check_index(law: Any, x: np.ndarray, inits: np.ndarray, n_points: int = 64, n_params: int = 2) -> None:
    """Refuse a :class:`SingleIndex` that does not describe ``law.predict`` on these data, before any fit:
    ``index.predict`` must equal ``predict`` and ``h`` must act point by point in ``z`` (else the structured
    normal equations would be silently wrong). Checked on the first problem's first ``n_points`` points at
    ``n_params`` of the inits, in float64 (a few milliseconds)."""
    index = law.index
    with jax.enable_x64(True):
        xs = jnp.asarray(np.asarray(x, np.float64).reshape((-1,) + np.shape(x)[-2:])[0][:n_points])
        thetas = np.asarray(inits, np.float64).reshape(-1, law.n_params)
        thetas = thetas[np.linspace(0, len(thetas) - 1, min(n_params, len(thetas))).astype(int)]
        try:
            phi = index.features(xs)
            ok_shape = phi.shape == (xs.shape[0], law.n_params - index.start)
        except Exception as e:  # noqa: BLE001 -- a user's features function: say whose it is
            raise ValueError(f"law {law.name}: its SingleIndex.features failed on x of shape {xs.shape}: {e}") from e
        if not ok_shape:
            raise ValueError(
                f"law {law.name}: SingleIndex.features gave shape {phi.shape}; expected "
                f"({xs.shape[0]}, {law.n_params - index.start}) = (points, P - start)"
            )
        v = jnp.asarray(np.random.default_rng(0).normal(size=xs.shape[0]))
        for th in thetas:
            th = jnp.asarray(th)
            want, got = np.asarray(law.predict(th, xs)), np.asarray(index.predict(th, xs))
            both = np.isfinite(want) & np.isfinite(got)
            if not np.allclose(got[both], want[both], rtol=1e-9, atol=1e-12) or np.any(
                np.isfinite(want) != np.isfinite(got)
            ):
                raise ValueError(
                    f"law {law.name}: its SingleIndex does not reproduce predict "
                    f"(at params {np.asarray(th).tolist()}: max difference "
                    f"{np.max(np.abs(got[both] - want[both])) if both.any() else np.nan:.3g})"
                )
            h, z = th[: index.start], phi @ th[index.start :]

            def head(zz, h=h):
                return index.head(h, zz, xs)

            d = jax.jvp(head, (z,), (jnp.ones_like(z),))[1]
            dv = jax.jvp(head, (z,), (v,))[1]
            if not np.allclose(np.asarray(dv), np.asarray(d * v), rtol=1e-9, atol=1e-12, equal_nan=True):
                raise ValueError(
                    f"law {law.name}: SingleIndex.head must act point by point in z (prediction n "
                    "may depend on z_n only); it mixes points"
                )


def _add_penalty(a: Array, g: Array, f: Array, theta: Array, pen: tuple | None, total: Array):
    r"""The ridge residuals :math:`s = \sqrt{\lambda W}(\theta_S - c)`: Jacobian :math:`\sqrt{\lambda W}` on
    ``S``, so :math:`A_{SS} \mathrel{+}= \lambda W`, :math:`g_S \mathrel{+}= \sqrt{\lambda W}\,s`."""
    if pen is None:
        return a, g, f
    lam, idx, _ = pen
    idx = np.asarray(idx)
    sres = regularise.penalty_residuals(theta, pen, total)
    scale = lam * total
    a = a.at[idx, idx].add(scale)
    g = g.at[idx].add(jnp.sqrt(scale) * sres)
    return a, g, f + 0.5 * jnp.sum(sres * sres)
