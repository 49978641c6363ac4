"""The Data Mixing Laws law (Ye et al. 2024): converters against the paper's formula in numpy, and recovery of
synthetic data generated in the paper's parametrisation."""

import jax
import numpy as np
import pytest

import jaxlaws as jl


def _pred(law, params, x):
    with jax.enable_x64(True):
        return np.asarray(law.predict(np.asarray(params, np.float64), np.asarray(x, np.float64)))


def ye(params, r):
    """The paper's form in numpy: L(r) = c + k exp(sum_j t_j r_j), params [c, k, t_1..t_m]."""
    c, k, t = params[0], params[1], np.asarray(params[2:])
    return c + k * np.exp(r @ t)


@pytest.mark.parametrize("m", [2, 3, 7])
def test_converters_round_trip_and_agree_on_simplex(rng, m):
    r = rng.dirichlet(np.ones(m), 25)
    paper = np.r_[1.9, 0.6, rng.normal(0, 1.5, m)]
    fitted = jl.laws.paper_to_dml(paper)
    np.testing.assert_allclose(_pred(jl.laws.dml(m), fitted, r), ye(paper, r), rtol=1e-12)
    # k = 1 convention back to the paper's form: the same function, not the same numbers (flat direction)
    back = jl.laws.dml_to_paper(fitted)
    assert back[1] == 1.0
    np.testing.assert_allclose(ye(back, r), ye(paper, r), rtol=1e-12)
    # the flat direction: scaling k by e^d and shifting every t_j by -d changes nothing on the simplex
    moved = paper.copy()
    moved[1] *= np.exp(0.8)
    moved[2:] -= 0.8
    np.testing.assert_allclose(ye(moved, r), ye(paper, r), rtol=1e-12)
    np.testing.assert_allclose(jl.laws.paper_to_dml(moved), fitted, atol=1e-12)
    # to and from log_linear's reduced form, which eliminates r_m
    red = jl.laws.dml_to_reduced(fitted)
    np.testing.assert_allclose(_pred(jl.laws.log_linear(m), red, r), ye(paper, r), rtol=1e-12)
    np.testing.assert_allclose(jl.laws.reduced_to_dml(red), fitted, atol=1e-12)
    # and on to Aioli's form c + b exp(-A.p)
    aioli = jl.laws.reduced_to_paper(red)
    np.testing.assert_allclose(_pred(jl.laws.log_linear_paper(m), aioli, r), ye(paper, r), rtol=1e-12)
    # batches of parameter vectors convert row by row
    two = np.stack([fitted, fitted + 0.1])
    np.testing.assert_allclose(jl.laws.reduced_to_dml(jl.laws.dml_to_reduced(two)), two, atol=1e-12)


def test_converters_refuse_what_they_cannot_convert():
    with pytest.raises(ValueError, match="k > 0"):
        jl.laws.paper_to_dml([1.0, -0.5, 0.1, 0.2])
    with pytest.raises(ValueError, match="c > 0"):
        jl.laws.dml_to_reduced([-1.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="m >= 2"):
        jl.laws.dml_to_reduced([1.0, 0.1])
    with pytest.raises(ValueError, match="m >= 2"):
        jl.laws.dml(1)


def test_dml_law_shape_and_names():
    law = jl.laws.dml(4)
    assert law.param_names == ("c", "t1", "t2", "t3", "t4") and law.x_kind == "simplex"
    assert law.predict is jl.laws.dml(7).predict  # one predict for every m: compiled programs are shared
    assert law.to_paper(np.array([2.0, 0.1, 0.2, 0.3, 0.4])) == pytest.approx(
        {"c": 2.0, "k": 1.0, "t1": 0.1, "t2": 0.2, "t3": 0.3, "t4": 0.4}
    )


@pytest.mark.slow
def test_fit_recovers_synthetic_ye_parameters():
    """Synthetic: three validation domains with their own (c_i, k_i, t_ij) in the paper's form, noise 0.002;
    the fit (default, data-adapted init grid) predicts unseen mixtures within a few noise levels."""
    rng = np.random.default_rng(7)
    truth = np.array([[2.1, 0.9, -1.2, 0.3, 0.1], [2.6, 0.4, 0.5, -0.9, 0.2], [1.5, 1.3, 0.2, 0.1, -1.4]])
    r = rng.dirichlet(np.ones(3), (3, 12))
    y = np.stack([ye(truth[i], r[i]) for i in range(3)]) + rng.normal(0, 0.002, (3, 12))
    res = jl.fit_batched(jl.laws.dml(3), r, y, dtype="float64")
    assert res.ok.all()
    new = rng.dirichlet(np.ones(3), 200)
    for i in range(3):
        err = res[i].predict(new) - ye(truth[i], new)
        assert np.mean(np.abs(err)) < 0.005 and np.max(np.abs(err)) < 0.03, (i, np.abs(err).max())
    # .paper in Ye et al.'s names reproduces the fitted predictions through the paper's formula
    paper = res.paper
    assert set(paper) == {"c", "k", "t1", "t2", "t3"} and paper["c"].shape == (3,)
    np.testing.assert_array_equal(paper["k"], 1.0)
    for i in range(3):
        vec = [paper[n][i] for n in ("c", "k", "t1", "t2", "t3")]
        np.testing.assert_allclose(ye(vec, new), res[i].predict(new), rtol=1e-12)
