"""Gradients through ``jl.solve`` (implicit differentiation at the optimum) against central finite differences
in float64: the fitted parameters and the prediction at new points, w.r.t. the targets ``y``, the point
weights and the inputs ``x``, for the m=2 static law, ``log_linear(3)``, ``dml(5)`` and Chinchilla, on
synthetic data from known parameters (seeded noise). The finite differences refit by Newton on the objective
written out independently (``tests/_refit.py``), from the fit under test, to round-off. Where the Hessian is
singular the result code says so."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _refit import central, newton, objective, rel_err

import jaxlaws
import jaxlaws as jl
from jaxlaws.laws import chinchilla, dml, log_linear, log_linear_paper, static_two_group
from jaxlaws.laws.dml import DML_RIDGE
from jaxlaws.laws.static import DEFAULT_RIDGE

LAW_RESULTS = Path(jaxlaws.__file__).parent / "data" / "aioli" / "law_results"


def _aioli(setting, group):
    d = json.loads((LAW_RESULTS / setting / "params_static.json").read_text())
    return np.asarray(d[group]["5000"]["0"], np.float64)


def _case(name):
    """``(law, theta_true, x, y, x_new, (delta, log, lam))``: synthetic data with seeded noise."""
    rng = np.random.default_rng(7)
    if name == "static_two_group":
        law, theta = static_two_group(), _aioli("arxiv_stackexchange", "arxiv")
        x = np.linspace(0.05, 0.95, 9)[:, None]
        x_new, ref, noise = np.array([[0.2], [0.6]]), (0.02, False, 0.0), 0.003
    elif name == "log_linear3":
        law, theta = log_linear(3), _aioli("arxiv_books_stackexchange", "book")
        x = rng.dirichlet(np.full(3, 2.0), size=10)
        x_new, ref, noise = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]), (0.02, False, DEFAULT_RIDGE), 0.003
    elif name == "dml5":
        law, theta = dml(5), np.array([1.6, 0.9, 0.4, 0.6, 0.2, 0.5])
        x = rng.dirichlet(np.full(5, 2.0), size=16)
        x_new, ref, noise = (
            np.full((2, 5), 0.2) + np.array([[0.1, -0.1, 0, 0, 0], [0, 0, 0.2, -0.1, -0.1]]),
            (0.02, False, DML_RIDGE),
            0.003,
        )
    else:  # Chinchilla with Epoch's parameters (Besiroglu et al., 2024): E 1.82, A 482, B 2085, 0.3478, 0.3658
        law, theta = chinchilla(), np.array([np.log(1.8172), np.log(482.01), np.log(2085.43), 0.3478, 0.3658])
        n = np.geomspace(5e7, 5e9, 5)
        d = np.geomspace(2e9, 2e11, 4)
        x = np.stack(np.meshgrid(n, d, indexing="ij"), -1).reshape(-1, 2)
        x_new, ref, noise = np.array([[1e10, 2e11], [7e10, 1.4e12]]), (1e-3, True, 0.0), 0.0
    y = np.asarray(law.predict(jnp.asarray(theta), jnp.asarray(x)))
    # Chinchilla's Huber(1e-3) on log L: multiplicative noise well inside the quadratic zone
    y = y * np.exp(2e-4 * rng.normal(size=y.shape)) if name == "chinchilla" else y + noise * rng.normal(size=y.shape)
    return law, theta, x, y, x_new, ref


LAWS = ["static_two_group", "log_linear3", "dml5", "chinchilla"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LAWS)
def test_derivatives_through_solve_match_finite_differences(name):
    law, theta, x, y, x_new, (delta, log, lam) = _case(name)
    pen = [law.param_names.index(e) for e in law.exponents] if lam else []
    with jax.enable_x64(True):
        inits = jnp.asarray(theta[None] * np.array([[1.0], [1.02], [0.98]]))  # three starts near the truth
        w0 = np.ones(len(y))

        def fit(xx, yy, ww):
            return jl.solve(law, xx, yy, inits, weights=ww)

        sol = jax.jit(fit)(jnp.asarray(x), jnp.asarray(y), jnp.asarray(w0))
        assert int(sol.result) == jl.RESULTS.successful, jl.RESULTS.name(sol.result)
        theta_hat = np.asarray(sol.params)

        @jax.jit
        def ref(xx, yy, ww):  # the independent refit, from the fit under test
            th = newton(objective(law.predict, xx, yy, ww, delta, log, lam, pen), jnp.asarray(theta_hat))
            return th, law.predict(th, jnp.asarray(x_new))

        th_ref, _ = ref(jnp.asarray(x), jnp.asarray(y), jnp.asarray(w0))
        np.testing.assert_allclose(np.asarray(th_ref), theta_hat, rtol=1e-5, atol=1e-8)  # same optimum

        def params_and_pred(xx, yy, ww):
            th = fit(xx, yy, ww).params
            return th, law.predict(th, jnp.asarray(x_new))

        args = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(w0))
        jac = jax.jit(jax.jacfwd(params_and_pred, argnums=(0, 1, 2)))(*args)
        for k, what in enumerate(("x", "y", "weights")):
            base = [np.asarray(a) for a in args]

            def f(v, k=k, base=base):
                a = list(base)
                a[k] = v
                th, pred = ref(*(jnp.asarray(b) for b in a))
                return np.concatenate([np.asarray(th), np.asarray(pred)])

            fd = central(f, base[k], 1e-6 if what == "x" else 1e-5)
            got = np.concatenate([np.asarray(jac[0][k]), np.asarray(jac[1][k])])
            P = law.n_params
            assert rel_err(got[:P], fd[:P]) < 1e-4, (what, "params", rel_err(got[:P], fd[:P]))
            assert rel_err(got[P:], fd[P:]) < 1e-4, (what, "predict", rel_err(got[P:], fd[P:]))
        # reverse mode agrees with forward mode (grad of a scalar of the prediction)
        g = jax.grad(lambda yy: jnp.sum(params_and_pred(args[0], yy, args[2])[1]))(args[1])
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(jac[1][1]).sum(axis=0), rtol=1e-8, atol=1e-12 * float(np.abs(np.asarray(g)).max())
        )


@pytest.mark.slow
def test_singular_hessian_has_its_result_code():
    # the paper's form c + b exp(-A.p) is flat on the simplex along (b, A) -> (b e^d, A + d): no unique optimum
    law = log_linear_paper(3)
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x = rng.dirichlet(np.ones(3), size=8)
        theta = np.array([1.5, 2.0, 0.5, 1.0, 0.2])
        y = np.asarray(law.predict(jnp.asarray(theta), jnp.asarray(x))) + 0.002 * rng.normal(size=8)
        sol = jl.solve(law, x, y, jnp.asarray(theta[None] * 1.01), penalty=None)
        assert int(sol.result) == jl.RESULTS.singular_hessian
        assert float(sol.hessian_min_eig) <= 1e-10
        # the same data under the identifiable reduced form: a regular Hessian
        red = jl.solve(log_linear(3), x, y, jnp.asarray([[np.log(1.5), np.log(2.0) - 0.2, -0.3, 0.8]]))
        assert int(red.result) == jl.RESULTS.successful
