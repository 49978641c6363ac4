"""Law predictions against independent numpy formulas, conversions, and linear designs."""

import jax
import numpy as np
import pytest
from conftest import dirichlet

import jaxlaws as jl


def _pred(law, params, x):
    with jax.enable_x64(True):
        return np.asarray(law.predict(np.asarray(params, np.float64), np.asarray(x, np.float64)))


def test_static_laws_match_numpy(rng):
    p = rng.uniform(0, 1, 7)
    c, k, b = 2.6, -2.7, -0.66
    np.testing.assert_allclose(
        _pred(jl.laws.static_two_group(), [c, k, b], p[:, None]), c + np.exp(k * p + b), rtol=1e-12
    )
    np.testing.assert_allclose(_pred(jl.laws.exp_two_group(), [k, b], p[:, None]), np.exp(k * p + b), rtol=1e-12)
    x = dirichlet(3, 9, 0)
    th = np.array([0.98, -0.82, -3.27, 0.83])
    np.testing.assert_allclose(
        _pred(jl.laws.log_linear(3), th, x),
        np.exp(th[0]) + np.exp(th[1] + th[2] * x[:, 0] + th[3] * x[:, 1]),
        rtol=1e-12,
    )


@pytest.mark.parametrize("m", [2, 3, 9])
def test_reduced_and_paper_forms_agree_on_simplex(rng, m):
    x = rng.dirichlet(np.ones(m), 20)
    red = np.concatenate([[0.9, -0.7], rng.normal(0, 1, m - 1)])
    paper = jl.laws.reduced_to_paper(red)
    np.testing.assert_allclose(
        _pred(jl.laws.log_linear_paper(m), paper, x), _pred(jl.laws.log_linear(m), red, x), rtol=1e-12
    )
    np.testing.assert_allclose(jl.laws.paper_to_reduced(paper), red, atol=1e-12)
    # The flat direction: shifting every A_j by delta and scaling b by exp(delta) changes nothing.
    shifted = paper.copy()
    shifted[2:] += 0.37
    shifted[1] *= np.exp(0.37)
    np.testing.assert_allclose(
        _pred(jl.laws.log_linear_paper(m), shifted, x), _pred(jl.laws.log_linear_paper(m), paper, x), rtol=1e-12
    )
    np.testing.assert_allclose(jl.laws.paper_to_reduced(shifted), red, atol=1e-12)


def test_paper_to_reduced_rejects_nonpositive():
    with pytest.raises(ValueError, match="c > 0"):
        jl.laws.paper_to_reduced([-1.0, 1.0, 0.1, 0.2])


@pytest.mark.slow
def test_linear_designs_reproduce_predict(rng):
    x = rng.dirichlet(np.ones(3), 11)
    for law in (
        jl.laws.dynamic_linear(3),
        jl.laws.dynamic_full(3),
        jl.laws.log_ratio(3),
        jl.laws.scaled_method(3),
        jl.laws.scaled_method(3, intercept=False),
    ):
        th = rng.normal(0, 1, law.n_params)
        with jax.enable_x64(True):
            d = np.asarray(law.design(x))
        np.testing.assert_allclose(d @ th, _pred(law, th, x), rtol=1e-12)
    a, c, t = 3.1, -0.2, 0.05
    np.testing.assert_allclose(_pred(jl.laws.dynamic_linear(3), [a, c, t], x), a + c * x[:, 0] + t * x[:, 1])
    p = x[:, :1]
    np.testing.assert_allclose(_pred(jl.laws.dynamic_two_group(), [-0.3, 3.2], p), -0.3 * p[:, 0] + 3.2)


def test_scaled_method_features(rng):
    a = rng.uniform(0, 1, (3, 3))
    p = rng.dirichlet(np.ones(3), 5)
    f = np.asarray(jl.laws.method_features(a, p))
    np.testing.assert_allclose(f, np.einsum("ij,nj->ni", a, p), rtol=1e-6)
    pred = _pred(jl.laws.scaled_method(3), [-0.5, 1.0, 2.0, 3.0], f)
    np.testing.assert_allclose(pred, np.array([1.0, 2.0, 3.0]) - 0.5 * f, rtol=1e-12)


@pytest.mark.slow
def test_chinchilla_matches_formula():
    x = np.array([[1e8, 1e10], [5e9, 2e11]])
    e, a, b, al, be = np.log(1.69), np.log(406.4), np.log(410.7), 0.34, 0.28
    want = 1.69 + 406.4 / x[:, 0] ** al + 410.7 / x[:, 1] ** be
    np.testing.assert_allclose(_pred(jl.laws.chinchilla(), [e, a, b, al, be], x), want, rtol=1e-10)


def test_default_grids_have_the_right_width_and_size():
    key = jax.random.key(0)
    g = jl.laws.log_linear(3, own=0).init_grid(key, None, None)
    assert g.shape == (6000, 4)
    assert np.all(g[:, 2] <= 0) and np.all(g[:, 3] >= 0)  # own t negative, other small positive
    assert jl.laws.exp_two_group().init_grid(None, None, None).shape == (121, 2)
    assert jl.laws.chinchilla().init_grid(None, None, None).shape == (4500, 5)
    g9 = jl.laws.log_linear(9, own=8).init_grid(key, None, None)
    assert g9.shape == (6000, 10) and np.all(g9[:, 2:] >= 0)  # the eliminated group has no own t


def test_law_factories_are_cached():
    assert jl.laws.log_linear(3) is jl.laws.log_linear(3)
    with pytest.raises(ValueError, match="m >= 2"):
        jl.laws.log_linear(1)
