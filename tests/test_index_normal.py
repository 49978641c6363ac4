"""The single-index fast path: the law structure it relies on, and normal equations / fits equal to the
generic path's (which differentiates the engine's full residual vector)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlaws as jl
from jaxlaws.fitting import engine, index_normal, regularise, solvers
from jaxlaws.laws.base import SingleIndex

INDEX_LAWS = [jl.laws.log_linear(5), jl.laws.log_linear(3, own=None), jl.laws.dml(4), jl.laws.log_linear_paper(3)]


@pytest.mark.parametrize("law", INDEX_LAWS, ids=lambda l: l.name)
def test_index_reproduces_predict(law):
    rng = np.random.default_rng(1)
    x = rng.dirichlet(np.ones(law.x_dim), 11)
    th = rng.normal(size=(4, law.n_params))
    with jax.enable_x64(True):
        for t in th:
            np.testing.assert_allclose(
                np.asarray(law.index.predict(jnp.asarray(t), jnp.asarray(x))),
                np.asarray(law.predict(jnp.asarray(t), jnp.asarray(x))),
                rtol=1e-13,
            )


def _problem(law, seed, n=30):
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(law.x_dim), n)
    th = rng.normal(size=law.n_params) * 0.5
    y = np.asarray(law.predict(jnp.asarray(th), jnp.asarray(x))) + 0.3 + rng.normal(size=n) * 0.05
    w = np.where(rng.random(n) < 0.8, rng.random(n) + 0.5, 0.0)  # weights, and masked points
    return rng, x, y, w


CASES = [  # law, objective, bounds, ridge parameters
    (jl.laws.log_linear(5), jl.huber(0.02), None, None),
    (jl.laws.log_linear(4), jl.squared(), {"l": (-3.0, 1.0), "t1": (None, 0.5)}, ("t1", "t3")),
    (jl.laws.dml(4), jl.huber(0.01, log=True), {"c": (0.0, 3.0), "t2": (None, 1.0)}, None),
    (jl.laws.log_linear_paper(3), jl.squared(), {"b": (0.0, None)}, ("A1", "A2")),
]


@pytest.mark.slow
@pytest.mark.parametrize("kr_max", [index_normal.KR_MAX, 0], ids=["pairs", "no-pairs"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0].name)
def test_normal_equations_equal_generic(case, kr_max, monkeypatch):
    """(f, A, g) of the structured path == the generic Jacobian-column path to 1e-12 relative, with
    weights, masked points, bounds (reparametrised) and a ridge: float64."""
    monkeypatch.setattr(index_normal, "KR_MAX", kr_max)
    law, obj, bounds, ridge_params = case
    rng, x, y, w = _problem(law, 3)
    if obj.log:
        y = np.abs(y) + 0.1
    with jax.enable_x64(True):
        x, y, w = (jnp.asarray(a) for a in (x, y, w))
        box = regularise.resolve_bounds(law, bounds)
        pen = regularise.resolve_penalty(law, jl.ridge(0.01, params=ridge_params) if ridge_params else "law")
        total = jnp.sum(w)

        def res(u):
            t = regularise.to_box(u, box)
            r = jnp.where(w > 0, obj.residual(y, law.predict(t, x)), 0.0)
            return jnp.concatenate([r, regularise.penalty_residuals(t, pen, total)])

        generic = solvers._normal_equations(res, engine.Weighted(obj, w))
        fast = index_normal.normal_equations(law.index, obj, box, pen, x, y, w, total)
        for _ in range(3):
            u = jnp.asarray(rng.normal(size=law.n_params) * 0.5)
            for a, b in zip(generic(u), fast(u)):
                a, b = np.asarray(a), np.asarray(b)
                assert np.all(np.isfinite(a))
                np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.max(np.abs(a)))


@pytest.mark.slow
@pytest.mark.parametrize("law", [jl.laws.log_linear(4), jl.laws.dml(3)], ids=lambda l: l.name)
def test_fit_same_with_and_without_index(law):
    """A whole fit (LM, selection over inits) through the fast path lands where the generic path does (no
    screen: it would only compile a second program per path)."""
    rng = np.random.default_rng(7)
    x = rng.dirichlet(np.ones(law.x_dim), (3, 25))
    th = np.r_[0.5, rng.normal(size=law.n_params - 1) * 0.5]
    y = np.stack([np.asarray(law.predict(jnp.asarray(th), jnp.asarray(xb))) for xb in x]) + 0.01 * rng.normal(
        size=(3, 25)
    )
    plain = dataclasses.replace(law, index=None)
    inits = np.asarray(law.init_grid(jax.random.key(0), x[0], y[0]))[:120]
    fast = jl.fit_batched(law, x, y, inits=inits, screen=None)
    slow = jl.fit_batched(plain, x, y, inits=inits, screen=None)
    np.testing.assert_allclose(fast.objective, slow.objective, rtol=1e-8)
    np.testing.assert_allclose(fast.params, slow.params, rtol=1e-5, atol=1e-6)


def test_bad_index_refused():
    idx = jl.laws.log_linear(3).index
    with pytest.raises(ValueError, match="SingleIndex"):
        jl.laws.Law(
            "bad",
            ("a", "b"),
            lambda p, x: x[:, 0],
            x_dim=1,
            init_grid=lambda k, x, y: np.zeros((1, 2)),
            index=(1, None, None),
        )
    with pytest.raises(ValueError, match="start"):
        jl.laws.Law(
            "bad",
            ("a", "b"),
            lambda p, x: x[:, 0],
            x_dim=1,
            init_grid=lambda k, x, y: np.zeros((1, 2)),
            index=SingleIndex(2, idx.features, idx.head),
        )


def _custom(index):
    base = jl.laws.log_linear(3)
    return jl.laws.Law(
        "custom",
        base.param_names,
        base.predict,
        x_dim=3,
        x_kind="simplex",
        init_grid=lambda k, x, y: np.asarray(base.init_grid(0, x, y))[:50],
        index=index,
    )


@pytest.mark.slow
def test_a_wrong_index_is_refused_before_fitting():
    """A user's SingleIndex that does not describe predict, mixes points in h, or has the wrong feature width is
    a clear error, not silently wrong normal equations."""
    rng = np.random.default_rng(2)
    x = rng.dirichlet(np.ones(3), 12)
    y = 2 + np.exp(-0.5 - x[:, 0]) + 0.01 * rng.normal(size=12)
    good = jl.laws.log_linear(3).index
    assert np.isfinite(jl.fit(_custom(good), x, y).objective)
    wrong_head = SingleIndex(1, good.features, lambda h, z, x: jnp.exp(h[0]) + 2 * jnp.exp(z))
    with pytest.raises(ValueError, match="does not reproduce predict"):
        jl.fit(_custom(wrong_head), x, y)
    # the same values as predict, but each point's derivative depends on the others' z
    leak = lambda z: jnp.cumsum(z) - jax.lax.stop_gradient(jnp.cumsum(z))  # noqa: E731  (0, with a mixing tangent)
    mixing = SingleIndex(1, good.features, lambda h, z, x: jnp.exp(h[0]) + jnp.exp(z + leak(z)))
    with pytest.raises(ValueError, match="point by point"):
        jl.fit(_custom(mixing), x, y)
    narrow = SingleIndex(1, lambda x: x[:, :2], good.head)
    with pytest.raises(ValueError, match="expected"):
        jl.fit(_custom(narrow), x, y)
