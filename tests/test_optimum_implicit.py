"""The traceable optimum (:func:`jaxlaws.analysis.optimum.optimal_mixture`): values against the closed form and
the host solver, derivatives against the m=2 closed form's hand-derived derivative and central finite
differences in float64 (interior and boundary optima), and jit / vmap / grad."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _refit import central, rel_err

import jaxlaws
from jaxlaws.analysis import optimum as O

LAW_RESULTS = Path(jaxlaws.__file__).parent / "data" / "aioli" / "law_results"
M2 = ("arxiv", "stackexchange")
M3 = ("arxiv", "book", "stackexchange")


def _theta(setting, groups, seed=0):
    d = json.loads((LAW_RESULTS / setting / "params_static.json").read_text())
    return np.stack([np.asarray(d[g]["5000"][str(seed)], np.float64) for g in groups])


def _p(fn, theta, w=None):
    return np.asarray(O.optimal_mixture(fn, jnp.asarray(theta), None if w is None else jnp.asarray(w)).p)


@pytest.mark.slow
def test_two_group_value_and_derivative_match_the_closed_form():
    with jax.enable_x64(True):
        for seed in (0, 2):
            th = _theta("arxiv_stackexchange", M2, seed)
            (c1, k1, b1), (c2, k2, b2) = th
            w = np.array([1.0, 1.7])
            res = O.optimal_mixture(O.two_group_losses, jnp.asarray(th), jnp.asarray(w))
            _, raw = O.two_group_optimum(k1, b1, k2, b2, w[0], w[1])
            assert 0 < raw < 1
            np.testing.assert_allclose(np.asarray(res.p), [raw, 1 - raw], rtol=1e-12)
            assert float(res.kkt_residual) < 1e-12 and not np.asarray(res.active).any()
            # d p1 / d(c, k, b) of each group, from p1 = (k2 + b2 - b1 + log(w2 k2 / (w1 k1))) / (k1 + k2)
            s = k1 + k2
            want = np.array([[0.0, (-1 / k1 - raw) / s, -1 / s], [0.0, (1 + 1 / k2 - raw) / s, 1 / s]])
            jac = jax.jacfwd(lambda t: O.optimal_mixture(O.two_group_losses, t, jnp.asarray(w)).p)(jnp.asarray(th))
            assert rel_err(np.asarray(jac[0]), want) < 1e-10
            np.testing.assert_allclose(np.asarray(jac[1]), -want, atol=1e-12)  # p2 = 1 - p1
            # weights: d p1 / d w = (-1/w1, 1/w2) / (k1 + k2)
            jw = jax.jacrev(lambda ww: O.optimal_mixture(O.two_group_losses, jnp.asarray(th), ww).p)(jnp.asarray(w))
            assert rel_err(np.asarray(jw[0]), np.array([-1 / w[0], 1 / w[1]]) / s) < 1e-10


@pytest.mark.slow
def test_three_group_derivative_matches_finite_differences():
    with jax.enable_x64(True):
        th = _theta("arxiv_books_stackexchange", M3, 0)
        w = np.array([1.0, 0.8, 1.3])
        res = O.optimal_mixture(O.log_linear_losses, jnp.asarray(th), jnp.asarray(w))
        assert not np.asarray(res.active).any() and float(res.kkt_residual) < 1e-12
        f = jax.jit(lambda t, ww: O.optimal_mixture(O.log_linear_losses, t, ww).p)
        fwd = np.asarray(jax.jacfwd(f)(jnp.asarray(th), jnp.asarray(w)))
        rev = np.asarray(jax.jacrev(f)(jnp.asarray(th), jnp.asarray(w)))
        fd = central(lambda t: np.asarray(f(jnp.asarray(t), jnp.asarray(w))), th, 1e-5)
        assert rel_err(fwd, fd) < 1e-6
        np.testing.assert_allclose(rev, fwd, atol=1e-12 * np.abs(fwd).max())
        jw = np.asarray(jax.jacfwd(f, argnums=1)(jnp.asarray(th), jnp.asarray(w)))
        fdw = central(lambda ww: np.asarray(f(jnp.asarray(th), jnp.asarray(ww))), w, 1e-5)
        assert rel_err(jw, fdw) < 1e-6
        np.testing.assert_allclose(fwd.sum(axis=0), 0.0, atol=1e-12)  # the mixture stays on the simplex


@pytest.mark.slow
def test_boundary_optimum_holds_the_active_component_fixed():
    # group 3 hardly benefits from its own data (t small): its share goes to 0 (a strictly positive multiplier)
    th = np.array([[0.9, 0.6, -1.0, 0.1], [1.0, 0.4, 0.1, -1.2], [1.1, -2.0, 0.05, 0.02]])
    with jax.enable_x64(True):
        f = jax.jit(lambda t: O.optimal_mixture(O.log_linear_losses, t).p)
        res = O.optimal_mixture(O.log_linear_losses, jnp.asarray(th))
        assert np.asarray(res.active).tolist() == [False, False, True] and float(res.p[2]) == 0.0
        # strict complementarity: the active component's derivative exceeds the support's by a margin
        g = np.asarray(jax.grad(lambda p: O.log_linear_losses(jnp.asarray(th), p).sum())(res.p))
        assert g[2] - float(res.multiplier) > 1e-2
        # independent check: the minimiser on a fine grid of the simplex
        grid = np.linspace(0, 1, 2001)
        p1, p2 = np.meshgrid(grid, grid, indexing="ij")
        tot = sum(np.exp(th[i, 0]) + np.exp(th[i, 1] + th[i, 2] * p1 + th[i, 3] * p2) for i in range(3))
        tot = np.where(p1 + p2 <= 1 + 1e-12, tot, np.inf)
        assert float(res.value) <= tot.min() + 1e-12
        jac = np.asarray(jax.jacfwd(f)(jnp.asarray(th)))
        fd = central(lambda t: np.asarray(f(jnp.asarray(t))), th, 1e-6)
        assert np.all(jac[2] == 0) and np.all(fd[2] == 0)
        assert rel_err(jac, fd) < 1e-6


@pytest.mark.slow
def test_jit_vmap_grad_and_agreement_with_the_host_solver():
    with jax.enable_x64(True):
        thetas = np.stack([_theta("arxiv_books_stackexchange", M3, s) for s in range(5)])
        batched = jax.jit(jax.vmap(lambda t: O.optimal_mixture(O.log_linear_losses, t)))(jnp.asarray(thetas))
        assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(batched))
        assert batched.p.shape == (5, 3) and batched.value.shape == (5,)
        host, total = O.simplex_minimise(O.log_linear_losses, jnp.asarray(thetas), steps=2000)
        np.testing.assert_allclose(np.asarray(batched.p), np.asarray(host), atol=1e-6)
        assert np.all(np.asarray(batched.value) <= np.asarray(total) + 1e-12)
        # grad of a scalar of the optimum w.r.t. the parameters of every seed, by vmap(grad)
        gr = jax.vmap(jax.grad(lambda t: O.optimal_mixture(O.log_linear_losses, t).p[0]))(jnp.asarray(thetas))
        one = jax.jacrev(lambda t: O.optimal_mixture(O.log_linear_losses, t).p)(jnp.asarray(thetas[3]))[0]
        np.testing.assert_allclose(np.asarray(gr[3]), np.asarray(one), rtol=1e-10, atol=1e-14)
        # the value's derivative is the envelope theorem's: sum_i w_i dL_i/dtheta at the fixed optimum
        p = batched.p[0]
        dv = jax.grad(lambda t: O.optimal_mixture(O.log_linear_losses, t).value)(jnp.asarray(thetas[0]))
        env = jax.grad(lambda t: O.log_linear_losses(t, p).sum())(jnp.asarray(thetas[0]))
        np.testing.assert_allclose(np.asarray(dv), np.asarray(env), rtol=1e-9, atol=1e-12)


def test_bad_inputs():
    th = jnp.ones((3, 4))
    with pytest.raises(ValueError, match="positive"):
        O.optimal_mixture(O.log_linear_losses, th, jnp.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(m,\)"):
        O.optimal_mixture(O.log_linear_losses, th, jnp.ones((3, 1)))
    with pytest.raises(ValueError, match=r"must return \(3,\) losses"):
        O.optimal_mixture(lambda t, p: jnp.sum(O.log_linear_losses(t, p)), th)
    with pytest.raises(ValueError, match="empty"):
        O.optimal_mixture(O.log_linear_losses, {})
