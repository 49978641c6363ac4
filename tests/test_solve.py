"""jl.solve: a fit that composes with JAX (jit, vmap, grad), returns a pytree, and agrees with fit_batched."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlaws as jl
from jaxlaws.laws.base import Law

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _static3(n=24, seed=0, noise=0.004):
    """Synthetic static m=3 sweep from known reduced parameters (l, b, t1, t2) of log_linear(3, own=0)."""
    law = jl.laws.log_linear(3, own=0)
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3), n)
    truth = np.array([np.log(1.4), np.log(0.9), -2.2, -0.6])
    y = np.asarray(law.predict(jnp.asarray(truth), jnp.asarray(p))) + noise * rng.normal(size=n)
    inits = law.init_grid(jax.random.key(seed), p, y)[:96]
    return law, p, y, inits, truth


def _chinchilla(n=40, seed=1):
    law = jl.laws.chinchilla()
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7.5, 10, n)
    D = 10 ** rng.uniform(9, 11.5, n)
    truth = {"e": np.log(1.8), "a": np.log(400.0), "b": np.log(1200.0), "alpha": 0.33, "beta": 0.29}
    th = np.array([truth[k] for k in law.param_names])
    x = np.stack([N, D], axis=1)
    y = np.asarray(law.predict(jnp.asarray(th), jnp.asarray(x))) * np.exp(0.01 * rng.normal(size=n))
    inits = law.init_grid(None, x, y)[::40]
    return law, x, y, inits, th


@pytest.mark.slow
def test_solution_is_a_pytree_of_arrays():
    law, p, y, inits, _ = _static3()
    sol = jl.solve(law, p, y, inits)
    leaves = jax.tree_util.tree_leaves(sol)
    assert len(leaves) == 10 and all(isinstance(v, jax.Array) for v in leaves)
    assert sol.params.shape == (4,) and sol.init_objectives.shape == (96,)
    assert jl.RESULTS.name(sol.result) == "successful"
    # the same optimum as the host-side fit from the same inits (its objective: same penalised function)
    res = jl.fit(law, p, y, inits=inits)
    np.testing.assert_allclose(np.asarray(sol.params), res.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(float(sol.objective), float(res.objective), rtol=1e-9)
    # the same standard errors as the host-side fit's covariance (Huber sandwich at the optimum)
    np.testing.assert_allclose(np.sqrt(np.diag(np.asarray(sol.covariance))), res.stderr, rtol=1e-5)


@pytest.mark.slow
def test_jit_vmap_over_data_sets_equals_separate_fits():
    law, p, y, inits, _ = _static3()
    ys = np.stack([y, y * 1.02, y + 0.01])
    batched = jax.jit(jax.vmap(lambda yy: jl.solve(law, p, yy, inits)))(jnp.asarray(ys))
    assert batched.params.shape == (3, 4) and batched.result.shape == (3,)
    fb = jl.fit_batched(law, np.broadcast_to(p, (3,) + p.shape), ys, inits=inits)
    np.testing.assert_allclose(np.asarray(batched.params), fb.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(batched.objective), fb.objective, rtol=1e-9)


@pytest.mark.slow
def test_vmap_over_problems_with_padding_weights():
    """Ragged data under vmap: padded points carry weight 0 and leave the fit unchanged."""
    law, p, y, inits, _ = _static3(n=20)
    pad_p = np.concatenate([p, np.tile(p[:1], (4, 1))])
    pad_y = np.concatenate([y, np.full(4, 9.0)])  # garbage targets at the padded points
    w = np.concatenate([np.ones(20), np.zeros(4)])
    full = jl.solve(law, p, y, inits)
    padded = jax.jit(lambda yy, ww: jl.solve(law, pad_p, yy, inits, weights=ww))(pad_y, w)
    # same optimum up to the solver's stopping point (the padded sums round differently along the path)
    np.testing.assert_allclose(np.asarray(padded.params), np.asarray(full.params), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(float(padded.objective), float(full.objective), rtol=1e-9)


@pytest.mark.slow
def test_grad_through_the_fit_matches_finite_differences():
    """d(sum of predictions at new mixtures)/d(weights), by implicit differentiation vs central differences."""
    law, p, y, inits, _ = _static3()
    q = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])

    lm = jl.LevenbergMarquardt(steps=1000, rtol=1e-14)  # converged far below the differences' resolution

    def pred_sum(w):
        sol = jl.solve(law, p, y, inits, weights=w, solver=lm)
        return jnp.sum(law.predict(sol.params, jnp.asarray(q)))

    w0 = np.ones(len(y))
    g = np.asarray(jax.grad(pred_sum)(jnp.asarray(w0)))
    eps = 1e-2  # the derivatives are small (1e-4): a larger step keeps the solver's round-off out of them
    for i in (0, 5, 11):
        e = np.zeros_like(w0)
        e[i] = eps
        fd = (float(pred_sum(w0 + e)) - float(pred_sum(w0 - e))) / (2 * eps)
        assert abs(g[i] - fd) <= 1e-4 * max(abs(fd), 1e-3 * np.max(np.abs(g))), (i, g[i], fd)


@pytest.mark.slow
def test_grad_under_jit_and_vmap_chinchilla():
    """Chinchilla (least squares on log L, smooth): jit(vmap(grad)) over data sets; d e / d y by differences."""
    law, x, y, inits, _ = _chinchilla()
    lm = jl.LevenbergMarquardt(steps=1000, rtol=1e-14)
    e_of = lambda yy: jl.solve(law, x, yy, inits, objective=jl.squared(log=True), solver=lm).params[0]  # noqa: E731
    ys = np.stack([y, y * 1.01])
    g = np.asarray(jax.jit(jax.vmap(jax.grad(e_of)))(jnp.asarray(ys)))
    assert g.shape == (2, len(y)) and np.all(np.isfinite(g))
    eps = 1e-4
    for i in (3, 17):
        e = np.zeros_like(y)
        e[i] = eps * y[i]
        fd = (float(e_of(y + e)) - float(e_of(y - e))) / (2 * eps * y[i])
        assert abs(g[0, i] - fd) <= 1e-4 * max(abs(fd), 1e-2 * np.max(np.abs(g[0]))), (i, g[0, i], fd)


@pytest.mark.slow
def test_user_law_and_result_codes():
    """A user's own law; a redundant parameter makes the Hessian singular, and the code says so."""
    good = Law(
        "line", ("a", "b"), lambda th, x: th[0] + th[1] * x[:, 0], x_dim=1, init_grid=lambda k, x, y: np.zeros((1, 2))
    )
    redundant = Law(
        "product",
        ("a", "b", "c"),
        lambda th, x: th[0] + th[1] * th[2] * x[:, 0],
        x_dim=1,
        init_grid=lambda k, x, y: np.ones((1, 3)),
    )
    x = np.linspace(0, 1, 12)[:, None]
    y = 0.5 + 2.0 * x[:, 0] + 0.01 * np.sin(7 * x[:, 0])
    sol = jl.solve(good, x, y, np.array([[0.0, 0.0], [1.0, 1.0]]), objective=jl.squared())
    assert jl.RESULTS.name(sol.result) == "successful"
    coef = np.polyfit(x[:, 0], y, 1)
    np.testing.assert_allclose(np.asarray(sol.params), coef[::-1], rtol=1e-8)
    bad = jl.solve(redundant, x, y, np.array([[0.0, 1.0, 1.5]]), objective=jl.squared())
    assert int(bad.result) == jl.RESULTS.singular_hessian
    assert float(bad.hessian_min_eig) <= 1e-10
    nan = jl.solve(good, x, np.full(12, np.nan), np.array([[0.0, 0.0]]), objective=jl.squared())
    assert int(nan.result) == jl.RESULTS.nonfinite and np.all(np.isnan(np.asarray(nan.params)))


@pytest.mark.parametrize("what", ["x", "y", "inits", "weights"])
def test_shape_errors_name_the_argument(what):
    law, p, y, inits, _ = _static3()
    args = {"x": p, "y": y, "inits": inits, "weights": None}
    bad = {"x": p[:, :2], "y": y[:-1], "inits": inits[:, :3], "weights": np.ones(len(y) + 1)}
    args[what] = bad[what]
    with pytest.raises(ValueError, match=f"{what} has shape"):
        jl.solve(law, args["x"], args["y"], args["inits"], weights=args["weights"])


@pytest.mark.slow
def test_fit_batched_is_vmap_of_solve_on_bundled_regmix():
    """The RegMix benchmark case (bundled CSV: 17 Pile groups, 512 runs, Pile-CC loss): jit(vmap(solve)) and
    fit_batched reach the same optimum from the same inits (64 of the default grid, to keep the test small)."""
    from pathlib import Path

    import pandas as pd

    df = pd.read_csv(Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "public" / "regmix_1m_pile_cc.csv")
    df = df[df["split"] == "train"]
    cols = [c for c in df.columns if c.startswith("p_")]
    own = next(c for c in cols if "pile_cc" in c)
    x = df[[own] + [c for c in cols if c != own]].to_numpy(np.float64)
    x = x / x.sum(axis=1, keepdims=True)  # published rounded to 3 decimals
    y = df["loss_pile_cc"].to_numpy(np.float64)
    law = jl.laws.log_linear(17)
    inits = jl.laws.log_linear_inits(17, jax.random.key(0), own=0)[:64]
    sol = jax.jit(jax.vmap(lambda yy: jl.solve(law, x, yy, inits)))(jnp.asarray(y)[None])
    fb = jl.fit_batched(law, x[None], y[None], inits=inits)
    np.testing.assert_allclose(np.asarray(sol.objective), fb.objective, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(sol.params), fb.params, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_fit_result_is_a_pytree():
    """FitResult's numeric fields are leaves (flags, law and options are static): tree_map round-trips it."""
    law, p, y, inits, _ = _static3()
    res = jl.fit(law, p, y, inits=inits)
    leaves = jax.tree_util.tree_leaves(res)
    assert leaves and all(isinstance(v, (np.ndarray, np.generic)) for v in leaves)
    assert any(np.shape(v) == (4,) and np.array_equal(v, res.params) for v in leaves)
    back = jax.tree.map(lambda a: np.asarray(a) * 1, res)
    np.testing.assert_array_equal(back.params, res.params)
    assert back.flags == res.flags and back.law is res.law
    batch = jl.fit_batched(law, np.stack([p, p]), np.stack([y, y * 1.01]), inits=inits)
    again = jax.tree.map(np.asarray, batch)
    assert list(again.ok) == list(batch.ok) and again[1].objective == batch[1].objective


@pytest.mark.slow
def test_implicit_derivative_with_a_parameter_held_on_a_bound():
    """y = a + b x with b <= 1 while the data's slope is 2: b stays on its bound (derivative 0) and
    a = mean(y - x), so d a / d y_i = 1 / n exactly (the free block's implicit derivative)."""
    line = Law(
        "line", ("a", "b"), lambda th, x: th[0] + th[1] * x[:, 0], x_dim=1, init_grid=lambda k, x, y: np.zeros((1, 2))
    )
    x = np.linspace(0, 1, 10)[:, None]
    y = 0.3 + 2.0 * x[:, 0] + 0.01 * np.cos(5 * x[:, 0])
    starts = np.array([[0.0, 0.0], [1.0, 0.5]])
    fit = lambda yy: jl.solve(line, x, yy, starts, objective=jl.squared(), bounds={"b": (None, 1.0)})  # noqa: E731
    sol = fit(y)
    np.testing.assert_allclose(float(sol.params[1]), 1.0, atol=1e-12)
    np.testing.assert_allclose(float(sol.params[0]), np.mean(y - x[:, 0]), rtol=1e-6)  # the solver's tolerance
    assert jl.RESULTS.name(sol.result) == "successful"
    jac = np.asarray(jax.jacobian(lambda yy: fit(yy).params)(jnp.asarray(y)))
    np.testing.assert_allclose(jac[0], np.full(10, 0.1), rtol=1e-9)
    np.testing.assert_allclose(jac[1], 0.0, atol=1e-12)
