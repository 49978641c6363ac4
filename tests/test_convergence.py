"""Convergence-driven defaults: Levenberg-Marquardt runs until its tolerance (inside the compiled program), a
law that declares no objective is fitted by least squares, and the mixing laws keep the original's Huber.
References are SciPy's least_squares (lm / trf) in float64; all data are synthetic (seeded)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import jaxlaws as jl
from jaxlaws.fitting.solvers import LevenbergMarquardt

# Krajewski et al. (2024) fine-grained MoE law, 7 parameters: c + (g / G^gamma + a) / N^alpha + b / D^beta
TRUTH = np.array([18.1, 0.115, 30.8, 0.147, 2.1, 0.58, 0.47])
STARTS = np.array(
    [
        [10.0, 0.2, 20.0, 0.2, 1.0, 0.4, 0.5],
        [30.0, 0.1, 50.0, 0.1, 3.0, 0.8, 0.2],
        [5.0, 0.3, 10.0, 0.3, 0.5, 0.2, 1.0],
        [20.0, 0.15, 40.0, 0.25, 4.0, 1.0, 0.0],
    ]
)


def moe_np(t, x):
    a, alpha, b, beta, g, gamma, c = t
    with np.errstate(all="ignore"):
        return c + (g * x[:, 2] ** -gamma + a) * x[:, 0] ** -alpha + b * x[:, 1] ** -beta


def moe_law():
    def predict(t, x):
        a, alpha, b, beta, g, gamma, c = (t[j] for j in range(7))
        return (
            c
            + (g * jnp.exp(-gamma * jnp.log(x[:, 2])) + a) * jnp.exp(-alpha * jnp.log(x[:, 0]))
            + b * jnp.exp(-beta * jnp.log(x[:, 1]))
        )

    return jl.laws.Law("krajewski", ("a", "alpha", "b", "beta", "g", "gamma", "c"), predict, x_dim=3, x_kind="positive")


def moe_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e8), np.log(1e10), n))
    x = np.column_stack([N, N * np.exp(rng.uniform(np.log(5), np.log(200), n)), rng.choice([1, 2, 4, 8, 16, 32], n)])
    return x, moe_np(TRUTH, x) + 0.01 * rng.standard_normal(n)


def scipy_lm(x, y, starts):
    best = min(
        (
            optimize.least_squares(lambda t: y - moe_np(t, x), t0, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
            for t0 in starts
        ),
        key=lambda o: o.cost,
    )
    return best.x, best.cost


@pytest.mark.slow
def test_default_fit_of_a_scaling_law_is_least_squares_and_converged():
    """The issue's complaint: a 7-parameter scaling law fitted with every default ended flagged not_converged
    (50 fixed LM steps) under a Huber objective meant for mixing laws. Now: least squares, run to convergence,
    the same optimum as SciPy's LM from the same starts, and no flag."""
    x, y = moe_data()
    res = jl.fit(moe_law(), x, y, inits=STARTS)
    ref_x, ref_cost = scipy_lm(x, y, STARTS)
    r = y - moe_np(res.params, x)
    np.testing.assert_allclose(res.objective, 0.5 * r @ r, rtol=1e-10)  # the objective is 1/2 SSE
    assert 0.5 * r @ r <= ref_cost * (1 + 1e-9)
    np.testing.assert_allclose(res.params, ref_x, rtol=1e-4)
    assert res.ok, res.flags


@pytest.mark.slow
def test_objectives_by_law():
    """Least squares unless a law declares its objective: the mixing laws keep the original's Huber(0.02),
    Chinchilla Hoffmann et al.'s Huber(1e-3) on log L."""
    assert moe_law().default_objective is None
    assert jl.laws.log_linear(3).default_objective == jl.huber(0.02)
    assert jl.laws.dml(3).default_objective == jl.huber(0.02)
    assert jl.laws.chinchilla().default_objective == jl.huber(1e-3, log=True)
    x = np.linspace(0.0, 1.0, 12)
    law = jl.laws.Law("exp", ("a", "k"), lambda t, x: t[0] * jnp.exp(t[1] * x[:, 0]), x_dim=1)
    y = 2.0 * np.exp(-1.5 * x) + np.where(np.arange(12) == 5, 0.3, 0.0)  # one outlier: Huber would discount it
    res = jl.fit(law, x, y, inits=np.array([[1.0, -1.0]]))
    ref = optimize.least_squares(lambda t: y - t[0] * np.exp(t[1] * x), [1.0, -1.0], method="lm", xtol=1e-15)
    np.testing.assert_allclose(res.params, ref.x, rtol=1e-5)
    robust = jl.fit(law, x, y, inits=np.array([[1.0, -1.0]]), objective=jl.huber(0.02))
    assert np.max(np.abs(robust.params - ref.x) / np.abs(ref.x)) > 1e-3  # Huber's fit is another one


def _exp_problem():
    x = jnp.linspace(0.0, 2.0, 16)
    y = 1.0 + 2.0 * jnp.exp(-1.3 * x) + 0.01 * jnp.sin(7 * x)
    return lambda t: y - (t[0] + t[1] * jnp.exp(-t[2] * x))


def test_lm_stops_at_its_tolerance_and_the_cap_is_a_traced_argument():
    """Run to convergence the solver reports value_at_90 == value (it stopped by its test); capped at 2 steps
    it has not converged; the cap can be a traced argument (one program for every cap) and gives the same
    answer as a static one."""
    with jax.enable_x64(True):
        res = _exp_problem()
        t0 = jnp.array([0.0, 1.0, 0.5])
        lm = LevenbergMarquardt()
        tr = lm(res, jl.squared(), t0)
        ref = optimize.least_squares(
            lambda t: np.asarray(res(jnp.asarray(t))), np.asarray(t0), method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15
        )
        np.testing.assert_allclose(float(tr.value), ref.cost, rtol=1e-10)
        assert float(tr.value_at_90) == float(tr.value)
        capped = jax.jit(lambda n: lm(res, jl.squared(), t0, steps=n))
        short = capped(jnp.int32(2))
        assert float(short.value) > float(tr.value) * (1 + 1e-6) and float(short.value_at_90) != float(short.value)
        np.testing.assert_allclose(np.asarray(capped(jnp.int32(1000)).params), np.asarray(tr.params), rtol=1e-12)
        static_short = LevenbergMarquardt(steps=2)(res, jl.squared(), t0)
        np.testing.assert_allclose(np.asarray(short.params), np.asarray(static_short.params), rtol=1e-12)


@pytest.mark.slow
def test_engine_reports_a_capped_fit_as_not_converged():
    x = np.linspace(0.0, 2.0, 16)
    y = 1.0 + 2.0 * np.exp(-1.3 * x) + 0.01 * np.sin(7 * x)
    law = jl.laws.Law("sat", ("c", "a", "k"), lambda t, x: t[0] + t[1] * jnp.exp(-t[2] * x[:, 0]), x_dim=1)
    inits = np.array([[0.0, 1.0, 0.5]])
    assert jl.fit(law, x, y, inits=inits).ok
    capped = jl.fit(law, x, y, inits=inits, solver=LevenbergMarquardt(steps=2))
    assert "not_converged" in capped.flags
