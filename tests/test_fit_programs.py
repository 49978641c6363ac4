"""How many programs a fit compiles: counted with a jax.monitoring listener on lowerings (a program traced and
lowered to XLA; a persistent-cache hit still lowers, so the count does not depend on the cache), never timed.

A one-off fit lowers one program (the multi-start search, with the evaluation at the optimum that the metrics,
diagnostics and covariance read); a notebook cell that re-defines the same predict, new solver settings
(steps, tolerances, damping) and new bound values lower none; the results match SciPy's least squares."""

import collections
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring
from scipy import optimize

import jaxlaws as jl
from jaxlaws.fitting import solvers

solve_module = sys.modules["jaxlaws.fitting.solve"]  # jaxlaws.fitting.solve is also the function's name

_EVENTS = collections.Counter()
monitoring.register_event_duration_secs_listener(lambda name, secs, **kw: _EVENTS.update([name]))
LOWERED = "/jax/core/compile/jaxpr_to_mlir_module_duration"

SOURCE = """
def predict(t, x):
    return t[0] + t[1] * jnp.exp(-t[2] * x[:, 0]) * SCALE
"""


def _define(scale: float):
    """A fresh function object from the same source, as a re-run notebook cell makes."""
    ns = {"jnp": jnp, "SCALE": scale}
    exec(compile(SOURCE, "<cell>", "exec"), ns)
    return jl.laws.Law("sat", ("c", "a", "k"), ns["predict"], x_dim=1)


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 4, n))
    return x, 1.0 + 2.0 * np.exp(-0.7 * x) + 0.01 * rng.standard_normal(n)


INITS = np.array([[0.5, 1.0, 0.3], [2.0, 0.5, 1.0], [1.0, 1.0, 1.0]])


def _scipy(x, y, scale=1.0):
    """SciPy's least_squares (lm) from the same starts: the reference optimum."""
    fits = [
        optimize.least_squares(lambda t: y - t[0] - t[1] * scale * np.exp(-t[2] * x), t0, method="lm", xtol=1e-15)
        for t0 in INITS
    ]
    return min(fits, key=lambda o: o.cost).x


def _lowered(fn):
    before = _EVENTS[LOWERED]
    out = fn()
    return out, _EVENTS[LOWERED] - before


@pytest.fixture(autouse=True)
def _compiled_path(monkeypatch):
    """These tests are about the compiled program: the host run of a configuration's first fit is off
    (``tests/test_host.py`` covers it), here and in the processes they start (which inherit the variable)."""
    monkeypatch.setenv("JAXLAWS_HOST_FIRST", "0")


def test_one_off_fit_lowers_one_program_and_a_redefined_predict_none():
    x, y = _data(29)
    first, n_first = _lowered(lambda: jl.fit(_define(1.25), x, y, inits=INITS))  # a law no other test fits
    assert n_first == 1, n_first  # the search and the evaluation at the optimum in one program
    np.testing.assert_allclose(first.params, _scipy(x, y, scale=1.25), rtol=1e-7)
    again, n_again = _lowered(lambda: jl.fit(_define(1.25), x, y, inits=INITS))  # the cell run again
    assert n_again == 0
    np.testing.assert_array_equal(again.params, first.params)
    # a changed global the code reads is a different law: compiled anew, and fitted as that law
    other, n_other = _lowered(lambda: jl.fit(_define(2.5), x, y, inits=INITS))
    assert n_other == 1
    np.testing.assert_allclose(other.params, _scipy(x, y, scale=2.5), rtol=1e-7)
    assert other.params[1] == pytest.approx(first.params[1] / 2, rel=1e-7)


def test_new_solver_settings_and_bounds_do_not_recompile():
    law = _define(1.0)
    x, y = _data(30, seed=1)
    ref = _scipy(x, y)
    jl.fit(law, x, y, inits=INITS, solver=jl.LevenbergMarquardt(steps=200))
    res, n = _lowered(
        lambda: jl.fit(
            law, x, y, inits=INITS, solver=jl.LevenbergMarquardt(steps=500, rtol=1e-12, damping=1e-2, increase=5.0)
        )
    )
    assert n == 0
    np.testing.assert_allclose(res.params, ref, rtol=1e-7)
    # the settings are used, not just accepted: one iteration from the starts does not reach the optimum
    short, n = _lowered(lambda: jl.fit(law, x, y, inits=INITS, solver=jl.LevenbergMarquardt(steps=1), throw=False))
    assert n == 0
    assert short.objective > res.objective * (1 + 1e-3) and "not_converged" in short.flags
    bounded, _ = _lowered(lambda: jl.fit(law, x, y, inits=INITS, bounds={"k": (0.0, 5.0)}))
    moved, n = _lowered(lambda: jl.fit(law, x, y, inits=INITS, bounds={"k": (0.0, 0.5)}))
    assert n == 0
    np.testing.assert_allclose(bounded.params, ref, rtol=1e-7)
    assert moved.params[2] == pytest.approx(0.5)  # the optimum's k = 0.7 lies outside: held on the bound
    box = optimize.least_squares(
        lambda t: y - t[0] - t[1] * np.exp(-t[2] * x),
        [1.0, 1.0, 0.3],
        bounds=([-np.inf] * 2 + [0.0], [np.inf] * 2 + [0.5]),
    )
    np.testing.assert_allclose(moved.params, box.x, rtol=1e-6)


def test_code_key_equal_only_for_the_same_code_closure_and_globals():
    key = solve_module.CodeKey
    assert key(_define(1.0).predict) == key(_define(1.0).predict)
    assert hash(key(_define(1.0).predict)) == hash(key(_define(1.0).predict))
    assert key(_define(1.0).predict) != key(_define(3.0).predict)

    def closure(k):
        return lambda t, x: t[0] * x[:, 0] ** k

    assert key(closure(2)) == key(closure(2)) and key(closure(2)) != key(closure(3))
    arr1, arr2 = np.ones(2), np.ones(2)
    assert key(closure(arr1)) != key(closure(arr2))  # arrays by identity: never assumed equal
    assert key(closure(arr1)) == key(closure(arr1))
    assert key(np.add) == key(np.add) and key(np.add) != key(np.multiply)  # not a Python function: identity


def test_compact_and_unrolled_levenberg_marquardt_reach_the_same_optimum():
    x, y = _data(40, seed=2)
    xj, yj = jnp.asarray(x[:, None]), jnp.asarray(y)
    with jax.enable_x64(True):
        res = lambda t: yj - t[0] - t[1] * jnp.exp(-t[2] * xj[:, 0])  # noqa: E731
        lm = jl.LevenbergMarquardt()
        out = [lm(res, jl.squared(), jnp.asarray(INITS[0]), unroll=u) for u in (True, False)]
    ref = _scipy(x, y)
    for tr in out:
        np.testing.assert_allclose(np.asarray(tr.params), ref, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(out[0].params), np.asarray(out[1].params), rtol=1e-10)


def test_gauss_jordan_solve_against_numpy():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        for p in (1, 2, 5, 9):
            m = rng.standard_normal((p + 3, p))
            a, b = m.T @ m + 1e-3 * np.eye(p), rng.standard_normal(p)
            got = np.asarray(solvers.spd_solve(jnp.asarray(a), jnp.asarray(b), unroll=False))
            np.testing.assert_allclose(got, np.linalg.solve(a, b), rtol=1e-9)
        indefinite = np.diag([1.0, -1.0, 2.0])
        assert np.all(np.isnan(np.asarray(solvers.spd_solve(jnp.asarray(indefinite), jnp.ones(3), unroll=False))))


def test_the_programs_evaluation_equals_the_host_evaluation():
    """The metrics, diagnostics and covariance a fit reports from its own program's evaluation equal those from
    :func:`diagnostics.evaluate` (the separate program) and from finite differences of NumPy residuals."""
    from jaxlaws.fitting import diagnostics

    law = _define(1.0)
    x, y = _data(27, seed=4)
    res = jl.fit(law, x, y, inits=INITS)
    ev = diagnostics.evaluate(law, jl.squared(), res.params[None], x[None, :, None], y[None])
    t = np.asarray(res.params)
    model = lambda t: t[0] + t[1] * np.exp(-t[2] * x)  # noqa: E731
    np.testing.assert_allclose(ev.predictions[0], model(t), rtol=1e-13)
    h = 1e-6
    fd = np.stack([(model(t - h * e) - model(t + h * e)) / (2 * h) for e in np.eye(3)], axis=1)  # d(y - f)/dt
    np.testing.assert_allclose(ev.jacobian[0], fd, rtol=1e-6, atol=1e-9)
    mse = np.mean((y - model(t)) ** 2)
    assert res.mse == pytest.approx(mse, rel=1e-12)
    sigma2 = np.sum((y - model(t)) ** 2) / (len(x) - 3)
    np.testing.assert_allclose(res.covariance, sigma2 * np.linalg.inv(fd.T @ fd), rtol=1e-5)


def test_from_box_is_the_same_on_the_host_and_traced():
    """regularise.from_box: float64 NumPy on the host, traceable for JAX arrays; both invert to_box inside the box."""
    from jaxlaws.fitting import regularise

    box = ((0.0, 1.0), (-np.inf, np.inf), (2.0, np.inf), (-np.inf, 3.0))
    theta = np.array([[0.3, 5.0, 2.5, -1.0], [0.9, -2.0, 40.0, 2.99]])
    host = regularise.from_box(theta, box)
    with jax.enable_x64(True):
        traced = np.asarray(jax.jit(lambda t: regularise.from_box(t, box))(jnp.asarray(theta)))
        back = np.asarray(regularise.to_box(jnp.asarray(host), box))
    assert isinstance(host, np.ndarray) and host.dtype == np.float64
    np.testing.assert_allclose(traced, host, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(back, theta, rtol=1e-12)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(bounds={"zz": (0.0, 1.0)}), "bounds name unknown parameters \\['zz'\\]"),
        (dict(fixed={"zz": 1.0}), "fixed names unknown parameters \\['zz'\\]"),
        (dict(penalty=jl.ridge(1.0, params=["zz"])), "the penalty names unknown parameters \\['zz'\\]"),
    ],
)
def test_unknown_parameter_names_are_refused_alike(kw, message):
    x, y = _data(12)
    with pytest.raises(ValueError, match=message):
        jl.fit(_define(1.0), x, y, inits=INITS, **kw)


def test_run_lanes_gives_each_lane_its_own_loops_result():
    # Newton's iteration for sqrt(c) from different starts, stopping at different trips (some never before the
    # cap): the phased loop with blocks must end every lane where its own loop ends, bit for bit
    c = np.r_[np.geomspace(1e-3, 1e6, 29), 4.0, 9.0, 2.0]
    x0 = np.r_[np.ones(29), 1e8, 2.0, 1.0]  # a far start: many trips
    cap = np.r_[np.full(31, 60), 3]  # one lane stopped by its own cap

    def body(s):
        x, k, c_, cap_ = s
        return 0.5 * (x + c_ / x), k + 1, c_, cap_

    def running(s):
        x, k, c_, cap_ = s
        return (k < cap_) & (jnp.abs(x * x - c_) > 1e-10 * c_)

    with jax.enable_x64(True):
        states = tuple(jnp.asarray(a) for a in (x0, np.zeros(32, np.int32), c, cap))
        alone = jax.vmap(lambda s: jax.lax.while_loop(running, body, s))(states)
        for blocks in [(), (8,), (8, 2), (1,)]:
            phased = jax.jit(lambda s, b=blocks: solvers.run_lanes(body, running, s, b))(states)
            for a, b in zip(alone, phased):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(alone[1].max()) > int(np.median(np.asarray(alone[1]))) + 10  # a slow lane exists: the block matters
