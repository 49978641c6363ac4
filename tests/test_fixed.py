"""Fixed parameters (``jaxlaws.fitting.fixed``): the free law predicts as the full law with the values inserted,
fits of it reach SciPy's least-squares optimum over the free parameters, and results map back to the full vector.
Small problems (dml(3), 14 points, a few inits) so that compiles stay short."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import least_squares

import jaxlaws as jl
from jaxlaws.fitting import fixed as fixing
from jaxlaws.fitting import index_normal

TRUTH = np.array([2.0, -0.8, 0.3, 0.2])  # dml(3): c, t1, t2, t3


def dml_data(seed=0, n=14, noise=0.01):
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.ones(3), n)
    return r, TRUTH[0] + np.exp(r @ TRUTH[1:]) + rng.normal(0, noise, n)


def _predict(law, theta, x):
    with jax.enable_x64(True):
        return np.asarray(law.predict(jnp.asarray(theta, jnp.float64), jnp.asarray(x, jnp.float64)))


@pytest.mark.parametrize(
    "law, fixed",
    [
        (jl.laws.dml(3), {"c": 2.0}),  # a head parameter
        (jl.laws.dml(3), {"t2": 0.3}),  # an index coefficient: an offset in the head
        (jl.laws.log_linear_paper(3), {"b": 1.5, "A2": -0.4}),
        (jl.laws.chinchilla(), {"alpha": 0.34}),
        (jl.laws.dynamic_linear(3), {"c": 0.1}),  # linear law -> affine free law
    ],
    ids=lambda v: v.name if hasattr(v, "name") else ",".join(v),
)
def test_free_law_predicts_as_the_full_law_with_the_values_inserted(law, fixed):
    fx = fixing.fixing(law, fixed)
    free = fx.free
    assert free.param_names == tuple(n for n in law.param_names if n not in fixed)
    assert free.inputs == law.inputs and free.x_kind == law.x_kind and not free.is_linear
    rng = np.random.default_rng(2)
    x = rng.dirichlet(np.ones(law.x_dim), 9) if law.x_kind == "simplex" else rng.uniform(1e8, 1e10, (9, 2))
    theta = rng.normal(size=(3, free.n_params)) * 0.3
    full = fx.insert(theta)  # numpy in, numpy out
    for j, n in enumerate(law.param_names):  # by hand: the fixed values where they belong
        want = fixed[n] if n in fixed else theta[:, free.param_names.index(n)]
        np.testing.assert_array_equal(full[:, j], want)
    for t, f in zip(theta, full):
        np.testing.assert_allclose(_predict(free, t, x), _predict(law, f, x), rtol=1e-13)
    if law.index is not None:  # the re-mapped single-index structure still describes predict
        assert free.index is not None
        index_normal.check_index(free, x[None], theta)
    if law.to_paper is not None:
        got, want = free.to_paper(theta), law.to_paper(full)
        assert list(got) == list(want) and all(np.allclose(got[k], want[k]) for k in got)
    if law.init_grid is not None:  # the grid's free columns, each distinct row once
        g = free.init_grid(jax.random.key(0), x, np.ones(9))
        base = law.init_grid(jax.random.key(0), x, np.ones(9))[:, [law.param_names.index(n) for n in free.param_names]]
        assert len(np.unique(g, axis=0)) == len(g) == len(np.unique(base, axis=0))
    assert fixing.fix(law, dict(fixed)) is free  # the same fixing is the same law (one compiled program)


@pytest.mark.slow
def test_fit_with_fixed_c_reaches_scipys_least_squares_optimum():
    """dml(3) with c fixed at 2.1 (off the truth, so the fit is a real compromise), squared loss, no penalty:
    the free parameters equal SciPy's least_squares (trf, tight tolerances) from the truth's t to 1e-6."""
    x, y = dml_data()
    law = jl.laws.dml(3)
    fx = fixing.fixing(law, {"c": 2.1})
    res = fx.result(jl.fit_batched(fx.free, x[None], y[None], objective=jl.squared(), penalty=None, dtype="float64"))[0]
    ref = least_squares(lambda t: 2.1 + np.exp(x @ t) - y, TRUTH[1:], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert res.law is law and res.params.shape == (4,)
    assert res.params[0] == 2.1
    np.testing.assert_allclose(res.params[1:], ref.x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(res.objective, 0.5 * np.sum(ref.fun**2), rtol=1e-8)
    # the full law's predict at the full vector is what was fitted
    np.testing.assert_allclose(res.predict(x), 2.1 + np.exp(x @ ref.x), rtol=1e-8)


@pytest.mark.slow
def test_fixed_index_coefficient_fits_the_same_with_and_without_the_structure():
    x, y = dml_data(1)
    fx = fixing.fixing(jl.laws.dml(3), {"t2": 0.25})
    plain = dataclasses.replace(fx.free, index=None)
    kw = dict(objective=jl.squared(), penalty=None, dtype="float64", inits=fx.free.init_grid(None, x, y)[::4])
    a = jl.fit_batched(fx.free, x[None], y[None], **kw)
    b = jl.fit_batched(plain, x[None], y[None], **kw)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-7, atol=1e-9)
    ref = least_squares(
        lambda p: p[0] + np.exp(x @ np.r_[p[1], 0.25, p[2]]) - y,
        np.r_[2.0, -0.8, 0.2],
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    np.testing.assert_allclose(a.params[0], ref.x, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_fixed_linear_law_is_least_squares_of_the_rest():
    """dynamic_linear(3) (c + t1 p1 + t2 p2) with t1 fixed: the fit equals numpy's lstsq of y - t1 p1 on
    [1, p2]."""
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(3), 12)
    y = 0.5 - 0.7 * p[:, 0] + 0.2 * p[:, 1] + rng.normal(0, 0.01, 12)
    law = jl.laws.dynamic_linear(3)
    fx = fixing.fixing(law, {"t1": -0.6})
    res = fx.result(jl.fit_batched(fx.free, p[None], y[None], objective=jl.squared(), dtype="float64"))[0]
    want = np.linalg.lstsq(np.c_[np.ones(12), p[:, 1]], y + 0.6 * p[:, 0], rcond=None)[0]
    np.testing.assert_allclose(res.params, [want[0], -0.6, want[1]], rtol=1e-7, atol=1e-9)


@pytest.mark.slow
def test_bounds_penalty_and_inits_are_restricted_and_mapped_back():
    x, y = dml_data(2)
    law = jl.laws.dml(3)
    fx = fixing.fixing(law, {"t1": -0.8})
    assert fx.bounds({"t1": (-1.0, 0.0), "c": (0.0, 5.0)}) == {"c": (0.0, 5.0)}
    assert fx.bounds({"t1": (-0.8, -0.8)}) == {}  # a degenerate box at the fixed value is fine
    with pytest.raises(ValueError, match="t1 is fixed at -0.8, outside its bounds"):
        fx.bounds({"t1": (0.0, 1.0)})
    assert fx.penalty(jl.ridge(1e-3, params=["t1", "t2"])).params == ("t2",)
    assert fx.penalty(jl.ridge(1e-3, params=["t1"])) is None
    assert fx.free.exponents == ("t2", "t3") and fx.free.default_penalty.params is None
    full_inits = np.array([[2.0, -0.8, 0.3, 0.2], [1.5, -0.8, 0.0, 0.0]])
    np.testing.assert_array_equal(fx.inits(full_inits), full_inits[:, [0, 2, 3]])
    named = fx.inits({"c": [2.0], "t1": [-0.8], "t2": [0.3], "t3": [0.2]})
    assert list(named) == ["c", "t2", "t3"]
    res = fx.result(
        jl.fit_batched(
            fx.free,
            x[None],
            y[None],
            bounds=fx.bounds({"c": (0.0, 1.9), "t1": (-1, 0)}),
            penalty=fx.penalty(jl.ridge(1e-4, params=["t1", "t3"])),
            inits=fx.inits(full_inits),
            dtype="float64",
        )
    )
    assert res.bounds[1] == (-np.inf, np.inf) and res.bounds[0] == (0.0, 1.9)
    assert res.penalty[1] == (3,)  # t3, in the full vector
    assert res.at_bound[0].tolist() == [True, False, False, False]  # c pressed on 1.9; t1 is not "at a bound"
    np.testing.assert_allclose(res.params[0, 0], 1.9, atol=1e-5)
    assert res.params[0, 1] == -0.8


@pytest.mark.slow
def test_refusals():
    law = jl.laws.dml(3)
    with pytest.raises(ValueError, match=r"unknown parameters \['k'\]"):
        fixing.fix(law, {"k": 1.0})
    with pytest.raises(ValueError, match="nothing to fit"):
        fixing.fix(law, {"c": 1.0, "t1": 0.0, "t2": 0.0, "t3": 0.0})
    with pytest.raises(ValueError, match="one finite number"):
        fixing.fix(law, {"c": np.nan})
    with pytest.raises(ValueError, match="one finite number"):
        fixing.fix(law, {"c": [1.0, 2.0]})
    with pytest.raises(ValueError, match="mapping"):
        fixing.fix(law, [("c", 1.0)])
    # the count check counts free parameters: 3 points fit dml(3) only with a parameter fixed
    x, y = dml_data(n=3)
    with pytest.raises(ValueError, match="4 free parameters but a fit has only 3"):
        jl.fit_batched(law, x[None], y[None], dtype="float64")
    free = fixing.fix(law, {"c": 2.0})
    res = jl.fit_batched(free, x[None], y[None], objective=jl.squared(), penalty=None, dtype="float64")
    assert np.all(res.success)


FIXED_KW = dict(objective=jl.squared(), penalty=None, dtype="float64")


def _fixed_c_fit():
    """dml(3) on 8 points and the fit of it with c fixed at 2.1 (``fixed=`` in every entry point below)."""
    x, y = dml_data(3, n=8)
    law = jl.laws.dml(3)
    return law, x, y, jl.fit(law, x, y, fixed={"c": 2.1}, **FIXED_KW)


# ``fixed=`` everywhere gives what fitting the free law gives, mapped back to the full vector (one test per
# entry point: each compiles its own programs)
@pytest.mark.slow
def test_fixed_in_fit_is_the_free_laws_batched_fit():
    law, x, y, res = _fixed_c_fit()
    fx = fixing.fixing(law, {"c": 2.1})
    free_fit = jl.fit_batched(fx.free, x[None], y[None], **FIXED_KW)
    np.testing.assert_array_equal(res.params, fx.result(free_fit)[0].params)
    assert res.law is law and res.params[0] == 2.1
    # standard errors: the free block as fitted, zero for the fixed c (it is not estimated)
    assert res.covariance.shape == (4, 4) and np.all(res.covariance[0] == 0) and np.all(res.covariance[:, 0] == 0)
    np.testing.assert_array_equal(res.covariance[1:, 1:], free_fit[0].covariance)
    assert res.stderr[0] == 0 and np.all(res.stderr[1:] > 0)
    # three points: too few for dml(3)'s 4 parameters, enough for 3 free ones
    three = jl.fit(law, x[:3], y[:3], fixed={"c": 2.1}, **FIXED_KW)
    assert three.success and int(three.n_points) == 3


@pytest.mark.slow
def test_fixed_in_cross_validate_and_bootstrap():
    law, x, y, res = _fixed_c_fit()
    # cross-validation: each fold's fit is the fixed fit on the points outside the fold
    cv = jl.cross_validate(law, x, y, "loo", fixed={"c": 2.1}, **FIXED_KW)
    for k in (0, 5):
        keep = np.arange(8) != k
        np.testing.assert_allclose(
            cv.fits[k].params, jl.fit(law, x[keep], y[keep], fixed={"c": 2.1}, **FIXED_KW).params, rtol=1e-7, atol=1e-9
        )
    np.testing.assert_array_equal(cv.refit.params, res.params)
    # bootstrap: the estimate is the fixed fit; every resample keeps c at its value
    boot = jl.bootstrap(law, x, y, 4, key=0, fixed={"c": 2.1}, **FIXED_KW)
    np.testing.assert_array_equal(boot.estimate.params, res.params)
    assert boot.params.shape == (4, 4) and np.all(boot.params[:, 0] == 2.1)


@pytest.mark.slow
def test_fixed_in_fit_frame_fits_a_group_too_small_for_the_full_law():
    import pandas as pd

    law, x, y, res = _fixed_c_fit()
    df = pd.DataFrame(
        {
            "g": ["a"] * 8 + ["b"] * 3,
            "p1": np.r_[x[:, 0], x[:3, 0]],
            "p2": np.r_[x[:, 1], x[:3, 1]],
            "p3": np.r_[x[:, 2], x[:3, 2]],
            "loss": np.r_[y, y[:3]],
        }
    )
    assert list(jl.fit_frame(law, df, y="loss", by="g", **FIXED_KW).skipped) == ["b"]
    frame = jl.fit_frame(law, df, y="loss", by="g", fixed={"c": 2.1}, **FIXED_KW)
    assert frame.labels == ("a", "b") and not frame.skipped
    three = jl.fit(law, x[:3], y[:3], fixed={"c": 2.1}, **FIXED_KW)
    np.testing.assert_allclose(frame["a"].params, res.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(frame["b"].params, three.params, rtol=1e-7, atol=1e-9)


@pytest.mark.slow
def test_bootstrap_counts_only_the_free_parameters():
    """3 points, dml(3) with c fixed: 3 free parameters, so a resample is fittable when it draws all 3 points
    (it is redrawn until then); the 4-parameter law could not be bootstrapped at all."""
    x, y = dml_data(5, n=3)
    law = jl.laws.dml(3)
    with pytest.raises(ValueError, match="fewer than 4 points"):
        jl.bootstrap(law, x, y, 3, key=0)
    boot = jl.bootstrap(law, x, y, 3, key=0, fixed={"c": 2.1}, objective=jl.squared(), penalty=None)
    assert np.all(boot.counts == 1) and boot.n_redrawn > 0  # each kept resample is a permutation
    assert np.all(boot.params[:, 0] == 2.1)
    np.testing.assert_allclose(boot.params, np.broadcast_to(boot.estimate.params, (3, 4)), rtol=1e-6, atol=1e-8)
