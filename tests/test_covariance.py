"""Standard errors at the optimum (jaxlaws.fitting.covariance) against float64 NumPy / SciPy references.

Every reference fit here is made by NumPy or SciPy (not by jaxlaws' engine), and every reference covariance
is written out in NumPy with analytic Jacobians, so the checks do not share code with the module under test.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.stats import norm

import jaxlaws as jl
from jaxlaws.fitting import covariance as cov_module
from jaxlaws.fitting.covariance import normal_quantile, propagate
from jaxlaws.fitting.regularise import resolve_bounds, resolve_penalty

# one compiled program per (law, objective, penalty, box, kind), as the engine calls it (eager is 10-50x slower)
covariance = jax.jit(
    cov_module.covariance, static_argnames=("predict", "objective", "penalty_spec", "box", "kind", "bandwidth")
)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def quad(theta, x):  # linear in its parameters: theta0 + theta1 x + theta2 x^2
    return theta[0] + theta[1] * x[:, 0] + theta[2] * x[:, 0] ** 2


def design(x):
    return np.column_stack([np.ones(len(x)), x[:, 0], x[:, 0] ** 2])


def _linear_data(seed, n=40):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 2, (n, 1))
    y = design(x) @ np.array([1.0, -0.5, 0.3]) + 0.1 * rng.standard_normal(n)
    return x, y


def test_ols_matches_numpy():
    x, y = _linear_data(0)
    X = design(x)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    s2 = np.sum((y - X @ beta) ** 2) / (len(y) - 3)
    ref = s2 * np.linalg.inv(X.T @ X)
    cov, info = covariance(quad, beta, x, y)
    np.testing.assert_allclose(cov, ref, rtol=1e-10, atol=0)
    assert not info.singular and float(info.dof) == len(y) - 3
    np.testing.assert_allclose(float(info.sigma2), s2, rtol=1e-12)


def test_weighted_least_squares_and_dropped_points():
    x, y = _linear_data(1)
    w = np.random.default_rng(2).uniform(0.2, 3.0, len(y))
    w[:5] = 0.0  # weight 0: the point is not there
    X = design(x)
    sw = np.sqrt(w)
    beta, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    n = np.sum(w > 0)
    s2 = np.sum(w * (y - X @ beta) ** 2) / (n - 3)
    ref = s2 * np.linalg.inv(X.T @ (w[:, None] * X))
    cov, info = covariance(quad, beta, x, y, weights=w)
    np.testing.assert_allclose(cov, ref, rtol=1e-10)
    assert float(info.dof) == n - 3
    # precision weights: a common factor changes nothing; the dropped points could as well be absent
    np.testing.assert_allclose(covariance(quad, beta, x, y, weights=7.0 * w)[0], ref, rtol=1e-10)
    np.testing.assert_allclose(covariance(quad, beta, x[5:], y[5:], weights=w[5:])[0], ref, rtol=1e-10)


def test_ridge_penalty_enters_the_bread():
    x, y = _linear_data(3)
    X = design(x)
    lam, idx = 0.05, (1, 2)
    law = jl.laws.Law("quad", ("c0", "c1", "c2"), quad, x_dim=1, x_kind="free", init_grid=lambda k, x, y: None)
    spec = resolve_penalty(law, jl.ridge(lam, params=["c1", "c2"]))
    assert spec == (lam, idx, 0.0)
    W = len(y)
    D = np.diag([0.0, 1.0, 1.0]) * lam * W
    beta = np.linalg.solve(X.T @ X + D, X.T @ y)  # the penalised optimum
    s2 = np.sum((y - X @ beta) ** 2) / (len(y) - 3)
    Hi = np.linalg.inv(X.T @ X + D)
    ref = s2 * Hi @ (X.T @ X) @ Hi
    cov, _ = covariance(quad, beta, x, y, penalty_spec=spec)
    np.testing.assert_allclose(cov, ref, rtol=1e-10)
    assert np.all(np.diag(cov) < np.diag(s2 * np.linalg.inv(X.T @ X)))


# --------------------------------------------------------------------------- a nonlinear law (Chinchilla)
def _chinchilla_jacobian(theta, x):
    """Analytic d log L / d theta of L = exp(LSE(e, a - alpha log N, b - beta log D))."""
    e, a, b, al, be = theta
    ln, ld = np.log(x[:, 0]), np.log(x[:, 1])
    t = np.stack([np.full_like(ln, e), a - al * ln, b - be * ld], axis=1)
    s = np.exp(t - t.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    return np.column_stack([s[:, 0], s[:, 1], s[:, 2], -s[:, 1] * ln, -s[:, 2] * ld]), np.log(np.exp(t).sum(axis=1))


TRUE_CHIN = np.array([np.log(1.8), np.log(480.0), np.log(2100.0), 0.35, 0.37])


def _chinchilla_data(seed, n=60, sd=0.02):
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7.5, 10, n)
    D = 10 ** rng.uniform(9, 11.5, n)
    x = np.column_stack([N, D])
    _, logl = _chinchilla_jacobian(TRUE_CHIN, x)
    return x, np.exp(logl + sd * rng.standard_normal(n))


def test_nonlinear_log_space_matches_scipy_least_squares():
    x, y = _chinchilla_data(4)

    def res(t):
        return np.log(y) - _chinchilla_jacobian(t, x)[1]

    fit = least_squares(
        res, TRUE_CHIN, jac=lambda t: -_chinchilla_jacobian(t, x)[0], xtol=1e-15, ftol=1e-15, gtol=1e-15, method="lm"
    )
    J = fit.jac
    s2 = 2 * fit.cost / (len(y) - 5)
    ref = s2 * np.linalg.inv(J.T @ J)  # curve_fit's pcov
    cov, info = covariance(jl.laws.chinchilla().predict, fit.x, x, y, objective=jl.squared(log=True))
    np.testing.assert_allclose(cov, ref, rtol=1e-7)
    assert not info.singular


def _huber_sandwich_numpy(J, r, delta, h, w=None):
    """The sandwich with the bread's psi' smoothed by a Gaussian kernel of bandwidth h (h = 0: indicator)."""
    w = np.ones_like(r) if w is None else w
    psi = np.clip(r, -delta, delta)
    dpsi = norm.cdf((delta - r) / h) - norm.cdf((-delta - r) / h) if h > 0 else 1.0 * (np.abs(r) < delta)
    bread = J.T @ ((w * dpsi)[:, None] * J)
    n, P = J.shape
    meat = (w * psi)[:, None] * J
    Hi = np.linalg.inv(bread)
    return Hi @ (meat.T @ meat) @ Hi * n / (n - P)


def test_huber_log_sandwich_matches_numpy():
    x, y = _chinchilla_data(5, n=120, sd=0.03)
    delta = 0.01
    obj = jl.huber(delta, log=True)

    def res(t):
        return np.log(y) - _chinchilla_jacobian(t, x)[1]

    # scipy's 'huber' loss with f_scale=delta is rho_delta exactly (0.5 r^2 inside, delta(|r| - delta/2) out)
    fit = least_squares(
        res,
        TRUE_CHIN,
        loss="huber",
        f_scale=delta,
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
        jac=lambda t: -_chinchilla_jacobian(t, x)[0],
    )
    r = res(fit.x)
    J = -_chinchilla_jacobian(fit.x, x)[0]
    assert 10 < np.sum(np.abs(r) < delta) < len(r) - 10  # both Huber regimes are present
    predict = jl.laws.chinchilla().predict
    # Silverman (1986) eq. 3.31
    h = 0.9 * min(np.std(r, ddof=1), np.subtract(*np.percentile(r, [75, 25])) / 1.34) * len(r) ** -0.2
    cov, info = covariance(predict, fit.x, x, y, objective=obj)
    np.testing.assert_allclose(cov, _huber_sandwich_numpy(J, r, delta, h), rtol=1e-8)
    assert np.isnan(float(info.sigma2))
    np.testing.assert_allclose(
        covariance(predict, fit.x, x, y, objective=obj, bandwidth=0.0)[0],
        _huber_sandwich_numpy(J, r, delta, 0.0),
        rtol=1e-8,
    )


# --------------------------------------------------------------------------- Huber: sandwich vs naive
def line(theta, x):
    return theta[0] + theta[1] * x[:, 0]


def test_huber_sandwich_matches_monte_carlo_where_the_naive_estimate_does_not():
    """Contaminated noise (10% of points 10x noisier): the spread of the Huber estimate over 300 simulated
    data sets is what the sandwich predicts (within 15%, the Monte-Carlo error of a standard deviation from
    300 draws being ~4%), while the least-squares formula at the same optimum is off by more than 30%."""
    rng = np.random.default_rng(6)
    n, reps, delta = 80, 300, 0.15
    x = np.linspace(0, 1, n)[:, None]
    truth = np.array([1.0, 2.0])
    obj = jl.huber(delta)
    sandwich = jax.jit(lambda t, y: cov_module.covariance(line, t, x, y, objective=obj)[0])
    naive_ls = jax.jit(lambda t, y: cov_module.covariance(line, t, x, y, objective=jl.squared())[0])
    est, sand, naive = [], [], []
    for _ in range(reps):
        noise = 0.1 * rng.standard_normal(n) * np.where(rng.uniform(size=n) < 0.1, 10.0, 1.0)
        y = line(truth, x) + noise
        X = np.column_stack([np.ones(n), x[:, 0]])
        fit = least_squares(
            lambda t: y - X @ t,
            truth,
            loss="huber",
            f_scale=delta,
            jac=lambda t: -X,
            xtol=1e-14,
            ftol=1e-14,
            gtol=1e-14,
        )
        est.append(fit.x)
        sand.append(np.sqrt(np.diag(sandwich(fit.x, y))))
        naive.append(np.sqrt(np.diag(naive_ls(fit.x, y))))
    sd = np.std(est, axis=0, ddof=1)
    np.testing.assert_allclose(np.mean(sand, axis=0), sd, rtol=0.15)
    assert np.all(np.abs(np.mean(naive, axis=0) / sd - 1) > 0.3)


# --------------------------------------------------------------------------- coverage
def test_intervals_cover_the_truth_95_percent_log_linear():
    """m = 2 static law, least squares, 40 mixtures: over 200 simulated data sets each parameter's 95%
    interval covers the truth in 95% +- 3 binomial standard deviations (sd = sqrt(.95 * .05 / 200) = 1.5%,
    so 90.4%-99.6%; the z-interval on 37 degrees of freedom has nominal coverage 94.3%)."""
    law = jl.laws.log_linear(2)
    truth = np.array([np.log(2.0), 0.0, -1.5])
    rng = np.random.default_rng(7)
    reps, n, sd = 200, 40, 0.01
    p1 = rng.uniform(0, 1, (reps, n))
    xs = np.stack([p1, 1 - p1], axis=-1)
    clean = np.exp(truth[0]) + np.exp(truth[1] + truth[2] * p1)
    ys = clean + sd * rng.standard_normal((reps, n))
    thetas = []
    for x, y in zip(xs, ys):

        def res(t):
            return y - (np.exp(t[0]) + np.exp(t[1] + t[2] * x[:, 0]))

        thetas.append(least_squares(res, truth, method="lm", xtol=1e-14, ftol=1e-14).x)
    thetas = np.array(thetas)
    cov, info = jax.jit(jax.vmap(lambda t, x, y: cov_module.covariance(law.predict, t, x, y)))(thetas, xs, ys)
    se = np.sqrt(np.diagonal(np.asarray(cov), axis1=1, axis2=2))
    z = normal_quantile(0.975)
    covered = np.abs(thetas - truth) <= z * se
    rate = covered.mean(axis=0)
    assert not np.any(info.singular)
    assert np.all((rate >= 0.904) & (rate <= 0.996)), rate


# --------------------------------------------------------------------------- edge cases
def test_singular_bread_gives_nan_and_a_flag_under_jit():
    def redundant(theta, x):  # only theta0 + theta1 is identified
        return (theta[0] + theta[1]) * x[:, 0] + theta[2]

    x, y = _linear_data(8)
    cov, info = covariance(redundant, jnp.array([0.2, 0.3, 1.0]), x, y)
    assert bool(info.singular) and np.all(np.isnan(cov)) and np.isinf(float(info.condition))


def test_too_few_points_gives_nan():
    x, y = _linear_data(9, n=3)  # saturated: 3 points, 3 parameters
    cov, info = covariance(quad, np.zeros(3), x, y)
    assert float(info.dof) == 0 and np.all(np.isnan(cov))


def test_parameter_on_a_bound_is_nan_and_the_rest_held_fixed():
    x, y = _linear_data(10)
    X = design(x)
    law = jl.laws.Law("quad", ("c0", "c1", "c2"), quad, x_dim=1, x_kind="free", init_grid=lambda k, x, y: None)
    box = resolve_bounds(law, {"c2": (0.5, None)})  # the data want c2 = 0.3: it ends on the bound
    c2 = 0.5
    beta, *_ = np.linalg.lstsq(X[:, :2], y - c2 * X[:, 2], rcond=None)
    theta = np.array([beta[0], beta[1], c2])
    s2 = np.sum((y - X @ theta) ** 2) / (len(y) - 2)
    ref = s2 * np.linalg.inv(X[:, :2].T @ X[:, :2])
    cov, info = covariance(quad, theta, x, y, box=box)
    assert list(np.asarray(info.at_bound)) == [False, False, True]
    np.testing.assert_allclose(cov[:2, :2], ref, rtol=1e-10)
    assert np.all(np.isnan(cov[2])) and np.all(np.isnan(cov[:, 2]))
    # inside the box nothing changes
    free = np.linalg.lstsq(X, y, rcond=None)[0]
    wide = resolve_bounds(law, {"c2": (-5.0, None), "c0": (-10.0, 10.0)})
    cov_in, info_in = covariance(quad, free, x, y, box=wide)
    assert not np.any(info_in.at_bound)
    np.testing.assert_allclose(cov_in, covariance(quad, free, x, y)[0], rtol=1e-12)


def test_vmap_equals_one_by_one_and_outputs_are_arrays():
    data = [_linear_data(s) for s in range(11, 14)]
    xs, ys = np.stack([d[0] for d in data]), np.stack([d[1] for d in data])
    th = np.stack([np.linalg.lstsq(design(x), y, rcond=None)[0] for x, y in data])
    cov, info = jax.jit(jax.vmap(lambda t, x, y: cov_module.covariance(quad, t, x, y)))(th, xs, ys)
    for b in range(3):
        np.testing.assert_allclose(cov[b], covariance(quad, th[b], xs[b], ys[b])[0], rtol=1e-12)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves((cov, info)))


def test_bad_kind_is_a_value_error():
    x, y = _linear_data(14)
    with pytest.raises(ValueError, match="kind must be one of"):
        cov_module.covariance(quad, np.zeros(3), x, y, kind="hc3")
    with pytest.raises(ValueError, match="bandwidth must be"):
        cov_module.covariance(quad, np.zeros(3), x, y, bandwidth="scott")


def test_propagate_leaves_nan_only_where_it_depends():
    cov = np.array([[1.0, 0.2, np.nan], [0.2, 2.0, np.nan], [np.nan, np.nan, np.nan]])
    g = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    out = np.asarray(propagate(g, cov))
    assert out[0, 0] == pytest.approx(1.0 + 2.0 + 0.4) and np.isnan(out[1, 1]) and np.isnan(out[0, 1])


# --------------------------------------------------------------------------- FitResult
def _result_with_covariance():
    """A FitResult of log_linear(2) at a SciPy optimum, carrying the covariance (built directly, so the test
    does not depend on the fitting engine)."""
    law = jl.laws.log_linear(2)
    rng = np.random.default_rng(15)
    p1 = rng.uniform(0, 1, 30)
    x = np.column_stack([p1, 1 - p1])
    y = 2.0 + np.exp(-1.5 * p1) + 0.01 * rng.standard_normal(30)
    t = least_squares(lambda t: y - (np.exp(t[0]) + np.exp(t[1] + t[2] * p1)), [0.7, 0.0, -1.5], method="lm").x
    cov, _ = covariance(law.predict, t, x, y)
    z = lambda v: np.asarray(v, np.float64)  # noqa: E731
    res = jl.FitResult(
        law=law,
        params=t,
        objective=z(0.0),
        mse=z(0.0),
        r2=z(1.0),
        n_points=np.asarray(30),
        converged=np.asarray(True),
        success=np.asarray(True),
        init_objectives=np.zeros(1),
        selection="final",
        covariance=np.asarray(cov),
    )
    return res, t, np.asarray(cov)


def test_fitresult_stderr_intervals_and_params_dict():
    res, t, cov = _result_with_covariance()
    se = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(res.stderr, se)
    assert res.params_dict == {"l": t[0], "b": t[1], "t1": t[2]}
    iv = res.intervals(0.9)
    z = norm.ppf(0.95)
    for i, name in enumerate(("l", "b", "t1")):
        np.testing.assert_allclose(iv[name], (t[i] - z * se[i], t[i] + z * se[i]), rtol=1e-12)
    with pytest.raises(ValueError, match="level"):
        res.intervals(1.5)
    batched = dataclasses.replace(
        res,
        params=np.stack([t, t]),
        objective=np.zeros(2),
        covariance=np.stack([cov, cov]),
        flags=None,
        mse=np.zeros(2),
        r2=np.ones(2),
        converged=np.ones(2, bool),
        success=np.ones(2, bool),
        n_points=np.full(2, 30),
        init_objectives=np.zeros((2, 1)),
    )
    assert batched.stderr.shape == (2, 3) and batched[1].covariance.shape == (3, 3)
    np.testing.assert_allclose(batched.intervals()["b"][0], np.full(2, res.intervals()["b"][0]))


def test_fitresult_paper_intervals_by_the_delta_method():
    """Aioli's c = e^l, b' = e^b, A1 = -t1, A2 = 0: se(c) = c se(l), se(A1) = se(t1), A2 exact."""
    res, t, cov = _result_with_covariance()
    se = np.sqrt(np.diag(cov))
    iv = res.intervals(0.95, paper=True)
    z = norm.ppf(0.975)
    c = np.exp(t[0])
    np.testing.assert_allclose(iv["c"], (c - z * c * se[0], c + z * c * se[0]), rtol=1e-6)
    np.testing.assert_allclose(iv["A1"], (-t[2] - z * se[2], -t[2] + z * se[2]), rtol=1e-6)
    assert iv["A2"] == (0.0, 0.0)
    assert np.all(np.isfinite(np.asarray(iv["b"])))


def test_fitresult_without_covariance():
    res, _, _ = _result_with_covariance()
    res = dataclasses.replace(res, covariance=None)
    assert res.stderr is None
    with pytest.raises(ValueError, match="no covariance"):
        res.intervals()


@pytest.mark.slow
def test_host_numpy_path_equals_the_traced_one_batched_huber_ridge_bounds():
    """from_jacobian with xp=numpy over a batch (what the engine runs on the host) == vmap of the jnp path."""
    xs, ys = zip(*[_chinchilla_data(s, n=50, sd=0.03) for s in (16, 17, 18)])
    xs, ys = np.stack(xs), np.stack(ys)
    law = jl.laws.chinchilla()
    th = np.stack([TRUE_CHIN + 0.01 * k for k in range(3)])
    th[2, 3] = 0.0  # on the lower bound of alpha below
    box = resolve_bounds(law, {"alpha": (0.0, 2.0)})
    pen = (1e-4, (3, 4), 0.0)
    w = np.random.default_rng(19).uniform(0.5, 2.0, ys.shape)
    obj = jl.huber(0.01, log=True)
    ref = jax.jit(jax.vmap(lambda t, x, y, w: cov_module.covariance(law.predict, t, x, y, w, obj, pen, box)[0]))(
        th, xs, ys, w
    )
    host = cov_module.of_fits(law, obj, th, xs, ys, w, pen, box)
    np.testing.assert_allclose(host, np.asarray(ref), rtol=1e-9)
    assert np.all(np.isnan(host[2, 3])) and np.all(np.isfinite(host[0]))
    bad = th.copy()
    bad[1, 0] = np.nan  # a failed fit: NaN, the others unchanged
    out = cov_module.of_fits(law, obj, bad, xs, ys, w, pen, box)
    assert np.all(np.isnan(out[1])) and np.allclose(out[0], host[0], rtol=1e-12)


@pytest.mark.slow
def test_fit_carries_the_covariance_at_its_optimum():
    """jaxlaws.fit fills FitResult.covariance: equal to covariance() at the returned parameters with the fit's
    objective, weights (validation points weigh 0) and penalty."""
    law = jl.laws.log_linear(2)
    rng = np.random.default_rng(20)
    p1 = rng.uniform(0, 1, 25)
    x = np.column_stack([p1, 1 - p1])
    y = 2.0 + np.exp(-1.5 * p1) + 0.01 * rng.standard_normal(25)
    val = np.zeros(25, bool)
    val[:4] = True
    inits = np.array([[0.7, 0.0, -1.5], [0.5, 0.2, -1.0]])
    obj = jl.huber(0.005)
    res = jl.fit(law, x, y, inits=inits, objective=obj, validation=val, penalty=jl.ridge(1e-3))
    w = np.where(val, 0.0, 1.0)
    ref, _ = covariance(law.predict, np.asarray(res.params), x, y, w, obj, res.penalty, res.bounds)
    assert res.covariance.shape == (3, 3) and res.stderr.shape == (3,)
    np.testing.assert_allclose(res.covariance, ref, rtol=1e-8)


@pytest.mark.slow
def test_paper_intervals_of_a_traceable_converter_batched():
    """A law whose to_paper traces (jnp): exact jacobians, vmapped over a batch; a failed fit gives NaN."""
    to_paper = lambda p: {"E": jnp.exp(p[..., 0]), "slope": 2.0 * p[..., 1]}  # noqa: E731
    law = jl.laws.Law(
        "line", ("e", "s"), line, x_dim=1, x_kind="free", init_grid=lambda k, x, y: None, to_paper=to_paper
    )
    th = np.array([[0.1, 1.0], [0.3, -2.0], [np.nan, np.nan]])
    cov = np.array([[[0.04, 0.01], [0.01, 0.09]]] * 3)
    B = 3
    res = jl.FitResult(
        law=law,
        params=th,
        objective=np.zeros(B),
        mse=np.zeros(B),
        r2=np.ones(B),
        n_points=np.full(B, 9),
        converged=np.ones(B, bool),
        success=np.array([True, True, False]),
        init_objectives=np.zeros((B, 1)),
        selection="final",
        covariance=cov,
    )
    lo, hi = res.intervals(0.95, paper=True)["E"]
    z = norm.ppf(0.975)
    e = np.exp(th[:2, 0])
    np.testing.assert_allclose(lo[:2], e - z * e * 0.2, rtol=1e-12)
    np.testing.assert_allclose(hi[:2], e + z * e * 0.2, rtol=1e-12)
    slo, shi = res.intervals(0.95, paper=True)["slope"]
    np.testing.assert_allclose(shi[:2] - slo[:2], 2 * z * 2 * 0.3, rtol=1e-12)
    assert np.isnan(lo[2]) and np.isnan(shi[2])


def test_fit_of_a_multi_output_weighted_law_matches_stacked_wls():
    """k = 2 outputs per point, weights per point: the covariance is stacked weighted least squares' (NumPy)."""
    law = jl.laws.scaled_method(2)
    rng = np.random.default_rng(21)
    n = 15
    F = rng.normal(size=(n, 2))
    y = 0.5 * F + np.array([1.0, 2.0]) + 0.05 * rng.normal(size=(n, 2))
    w = rng.uniform(0.5, 2, n)
    res = jl.fit(law, F, y, objective=jl.squared(), weights=w)
    X = np.zeros((2 * n, 3))
    X[:, 0] = F.reshape(-1)
    X[0::2, 1] = 1
    X[1::2, 2] = 1
    ww, yy = np.repeat(w, 2), y.reshape(-1)
    beta = np.linalg.solve(X.T @ (ww[:, None] * X), X.T @ (ww * yy))
    s2 = np.sum(ww * (yy - X @ beta) ** 2) / (2 * n - 3)
    np.testing.assert_allclose(res.params, beta, rtol=1e-10)
    np.testing.assert_allclose(res.covariance, s2 * np.linalg.inv(X.T @ (ww[:, None] * X)), rtol=1e-10)
