"""Bounded fits reach the constrained optimum: the optimum inside, near and on the box, against SciPy's bounded
solvers (least_squares trf, L-BFGS-B) from the same starts; a fit left on a bound with the objective still
falling inwards is flagged. All data are synthetic (seeded)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import jaxlaws as jl
from jaxlaws.fitting import diagnostics, regularise

NAMES = ("bias", "A", "a", "B", "g", "b")
TRUTH = np.array([1.5, 1.2, 0.3, 2.0, 0.7, 0.4])
WIDE = {"bias": (0.0, 5.0), "A": (0.0, 10.0), "a": (0.0, 2.0), "B": (0.0, 10.0), "g": (0.0, 3.0), "b": (0.0, 2.0)}
# unconstrained least-squares optimum of the data below (SciPy lm, 16 starts): B = 1.8016, g = 1.1725
BOXES = {
    "inside": WIDE,
    "near_upper": {**WIDE, "B": (0.0, 1.85)},  # the optimum's B within 3% of the upper bound
    "on_upper": {**WIDE, "B": (0.0, 1.0)},  # the constrained optimum has B on its upper bound
    "on_lower": {**WIDE, "g": (1.5, 3.0)},  # ... and g on its lower bound
}


def issue_np(t, x):
    """The 6-parameter law ``bias + A (N/1e9)^-a ((1 + B E^g)/(1 + B))^-b`` in float64 NumPy."""
    bias, A, a, B, g, b = t
    with np.errstate(all="ignore"):
        return bias + A * (x[:, 0] / 1e9) ** (-a) * ((1 + B * x[:, 1] ** g) / (1 + B)) ** (-b)


def issue_law():
    def predict(t, x):
        bias, A, a, B, g, b = (t[j] for j in range(6))
        return bias + A * jnp.exp(-a * jnp.log(x[:, 0] / 1e9) - b * (jnp.log1p(B * x[:, 1] ** g) - jnp.log1p(B)))

    return jl.laws.Law("issue6", NAMES, predict, x_dim=2, x_kind="positive")


LAW = issue_law()


def data():
    rng = np.random.default_rng(0)
    n = 40
    x = np.column_stack([np.exp(rng.uniform(np.log(1e8), np.log(3e10), n)), rng.choice([1, 2, 4, 8, 16, 32, 64], n)])
    return x, issue_np(TRUTH, x) + 0.005 * rng.standard_normal(n)


def starts(box, n=16, seed=1):
    lo, hi = (np.array([box[k][i] for k in NAMES]) for i in (0, 1))
    u = np.random.default_rng(seed).uniform(size=(n, 6))
    return lo + (hi - lo) * (0.02 + 0.96 * u)  # strictly inside: SciPy's trf wants feasible starts


def sse(t, x, y):
    r = y - issue_np(t, x)
    return 0.5 * float(r @ r)


def scipy_best(x, y, inits, box):
    """Best 1/2 SSE over the starts of least_squares(trf, bounds) and L-BFGS-B (exact gradient by NumPy)."""
    lo, hi = (np.array([box[k][i] for k in NAMES]) for i in (0, 1))
    best_f, best_t = np.inf, None
    res = lambda t: y - issue_np(t, x)  # noqa: E731
    for t0 in inits:
        for out in (
            optimize.least_squares(res, t0, method="trf", bounds=(lo, hi), xtol=1e-15, ftol=1e-15, gtol=1e-15),
            optimize.minimize(
                lambda t: sse(t, x, y) if np.all(np.isfinite(res(t))) else 1e10,
                t0,
                method="L-BFGS-B",
                bounds=list(zip(lo, hi)),
                options=dict(ftol=1e-15, gtol=1e-12, maxiter=5000),
            ),
        ):
            f = sse(out.x, x, y)
            if f < best_f:
                best_f, best_t = f, out.x
    return best_f, best_t


@pytest.mark.slow
@pytest.mark.parametrize("where", list(BOXES))
def test_bounded_fit_reaches_scipys_constrained_optimum(where):
    box = BOXES[where]
    x, y = data()
    inits = starts(box)
    ref_f, ref_t = scipy_best(x, y, inits, box)
    res = jl.fit(LAW, x, y, inits=inits, bounds=box)
    lo, hi = (np.array([box[k][i] for k in NAMES]) for i in (0, 1))
    assert np.all(res.params >= lo) and np.all(res.params <= hi)
    f = sse(res.params, x, y)
    assert f <= ref_f * (1 + 1e-9) + 1e-15, (f, ref_f)
    np.testing.assert_allclose(res.params, ref_t, rtol=2e-4, atol=1e-6)
    assert res.ok, res.flags
    on = {"inside": [], "near_upper": [], "on_upper": ["B"], "on_lower": ["g"]}[where]
    assert [NAMES[j] for j in np.flatnonzero(res.at_bound)] == on
    if on:  # on the bound exactly, with the gradient pointing outwards (the box's KKT condition)
        j = NAMES.index(on[0])
        assert res.params[j] == (hi[j] if where == "on_upper" else lo[j])


@pytest.mark.slow
def test_bounded_fit_through_solve_matches_fit():
    """jl.solve (traceable) holds the same box the same way and reports success on the bound."""
    box = BOXES["on_upper"]
    x, y = data()
    inits = starts(box, n=8)
    with jax.enable_x64(True):
        sol = jl.solve(LAW, jnp.asarray(x), jnp.asarray(y), jnp.asarray(inits), bounds=box)
    res = jl.fit(LAW, x, y, inits=inits, bounds=box)
    np.testing.assert_allclose(np.asarray(sol.params), res.params, rtol=1e-6)
    assert int(sol.result) == jl.RESULTS.successful


def line_law():
    return jl.laws.Law(
        "line",
        ("a", "b"),
        lambda t, x: t[0] + t[1] * x[:, 0],
        x_dim=1,
        init_grid=lambda key, x, y: np.array([[0.0, 0.0]]),
    )


def test_diagnostic_flags_a_parameter_stuck_on_a_bound():
    """y = 1 + 2x, b held in [0, 10], parameters at (a*, 0) with a* the best intercept for b = 0: b sits on its
    lower bound while the objective falls for b > 0 -- flagged, and the fit is not converged. At the constrained
    optimum of data whose slope is negative the same bound is legitimately active: no flag."""
    x = np.linspace(0.0, 1.0, 9)[:, None]
    box = regularise.resolve_bounds(line_law(), {"b": (0.0, 10.0)})
    for slope, stuck in ((2.0, True), (-2.0, False)):
        y = 1.0 + slope * x[:, 0]
        params = np.array([[y.mean(), 0.0]])  # the least-squares intercept with b = 0
        d = diagnostics.diagnose(
            line_law(), jl.squared(), params, x[None], y[None], np.ones((1, 9), bool), np.float64, box=box
        )
        assert d.stuck_at_bound[0].tolist() == [False, stuck]
        assert bool(d.gradient_small[0]) is (not stuck)
        flags = diagnostics.flags_of(
            np.array([True]),
            d.gradient_small,
            d.saturated,
            d.identifiable,
            d.constant_target,
            np.array([0.5]),
            d.constant_reachable,
            d.stuck_at_bound,
        )
        assert ("stuck_at_bound" in flags[0]) is stuck and ("not_converged" in flags[0]) is stuck


@pytest.mark.slow
def test_unfinished_bounded_fit_is_not_ok():
    """A solver stopped at once next to a bound the objective wants to leave (Adam, one tiny step, bounds by
    reparametrisation): the fit must not look finished."""
    x = np.linspace(0.0, 1.0, 9)
    y = 1.0 + 2.0 * x
    law = jl.laws.Law(
        "line",
        ("a", "b"),
        lambda t, x: t[0] + t[1] * x[:, 0],
        x_dim=1,
        init_grid=lambda key, x, y: np.array([[1.0, 0.0]]),
    )
    res = jl.fit(law, x, y, bounds={"b": (0.0, 10.0)}, solver=jl.Adam(steps=1, learning_rate=1e-12))
    assert res.at_bound.tolist() == [False, True]
    assert not res.ok and "stuck_at_bound" in res.flags and "not_converged" in res.flags
    # the default (projected LM) leaves the bound and reaches the least-squares line
    ok = jl.fit(law, x, y, bounds={"b": (0.0, 10.0)})
    np.testing.assert_allclose(ok.params, [1.0, 2.0], atol=1e-8)
    assert ok.ok and not ok.at_bound.any()
