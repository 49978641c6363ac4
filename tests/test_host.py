"""The host run of a fit's first call (``jaxlaws.fitting._host``): the law's jaxpr evaluated by NumPy, checked
against JAX's own evaluation and forward-mode Jacobian (float64), and the host Levenberg-Marquardt against the
compiled program it stands in for (same optimum, same evaluation at it) and against SciPy; the policy (first
call on the host, compiling nothing; the next compiled; ``JAXLAWS_HOST_FIRST=0``) counted with a
``jax.monitoring`` listener on lowerings."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring
from scipy import optimize

import jaxlaws as jl
from jaxlaws.fitting import _host, engine
from jaxlaws.fitting.solve import bound_arrays, make_config

_EVENTS = collections.Counter()
monitoring.register_event_duration_secs_listener(lambda name, secs, **kw: _EVENTS.update([name]))
LOWERED = "/jax/core/compile/jaxpr_to_mlir_module_duration"


def _lowered(fn):
    before = _EVENTS[LOWERED]
    out = fn()
    return out, _EVENTS[LOWERED] - before


# laws that exercise the interpreter's primitives: elementwise math, select/where, max/min/abs, reductions,
# matrix products, concatenation, reshapes, custom-JVP functions (logaddexp, softplus) and pjit-wrapped calls
def _power(t, x):
    return t[0] + t[1] * x[:, 0] ** (-t[2]) + jnp.sqrt(t[3] ** 2 + 1.0) * jnp.log1p(x[:, 1])


def _select(t, x):
    z = t[0] * x[:, 0] - t[1]
    return jnp.where(z > 0, jnp.tanh(z), jax.nn.sigmoid(z)) + jnp.maximum(t[2], 0.1) * jnp.abs(x[:, 1] - t[3])


def _matrix(t, x):
    w = jnp.reshape(t[:4], (2, 2))
    h = x @ w.T  # (n, 2)
    return jnp.sum(jnp.exp(-h) * jnp.stack([t[4], t[5]]), axis=1) + jnp.cumsum(x[:, 0])[-1] * 0.0 + jnp.min(h, 1)


def _custom(t, x):
    return jnp.logaddexp(t[0] * x[:, 0], t[1]) + jax.nn.softplus(t[2] - x[:, 1]) + jnp.expm1(t[3] * 0.1)


def _concat(t, x):
    both = jnp.concatenate([t[:2] * x[:, :1], jnp.clip(t[2:4], -1.0, 1.0) * x[:, 1:]], axis=1)  # (n, 2)
    return jnp.transpose(both).sum(axis=0) ** 2 / (1.0 + t[0] ** 2)


LAWS = {"power": _power, "select": _select, "matrix": _matrix, "custom": _custom, "concat": _concat}
NPARAMS = {"power": 4, "select": 4, "matrix": 6, "custom": 4, "concat": 4}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_the_host_evaluation_equals_jax_and_its_jacobian(name):
    predict, P = LAWS[name], NPARAMS[name]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, (11, 2))
    y = rng.uniform(1.0, 2.0, 11)
    theta = rng.normal(0.5, 0.4, (5, P))
    ev = _host.Evaluator(_host.trace(predict, P, x.shape), jl.squared(), x, y)
    pred, r, jac = ev(theta)
    with jax.enable_x64(True):
        want = np.stack([np.asarray(predict(jnp.asarray(t), jnp.asarray(x))) for t in theta])
        want_j = np.stack(
            [np.asarray(jax.jacfwd(lambda tt: -predict(tt, jnp.asarray(x)))(jnp.asarray(t))) for t in theta]
        )
    np.testing.assert_allclose(pred, want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(r, y - want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(jac, want_j, rtol=1e-12, atol=1e-13)


def test_the_log_residual_and_its_jacobian():
    x = np.linspace(1.0, 3.0, 9)[:, None].repeat(2, 1)
    y = 1.0 + 2.0 * x[:, 0] ** -0.5
    theta = np.array([[1.0, 2.0, 0.4, 0.0], [0.8, 1.5, 0.6, 0.2]])
    ev = _host.Evaluator(_host.trace(_power, 4, x.shape), jl.huber(1e-3, log=True), x, y)
    _, r, jac = ev(theta)
    with jax.enable_x64(True):
        res = lambda t: jnp.log(y) - jnp.log(_power(t, jnp.asarray(x)))  # noqa: E731
        want = np.stack([np.asarray(res(jnp.asarray(t))) for t in theta])
        want_j = np.stack([np.asarray(jax.jacfwd(res)(jnp.asarray(t))) for t in theta])
    np.testing.assert_allclose(r, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jac, want_j, rtol=1e-12, atol=1e-14)


def test_an_unknown_primitive_is_refused():
    def sorted_law(t, x):
        return jnp.sort(t[0] * x[:, 0]) + t[1]

    with pytest.raises(_host.Unsupported):
        _host.Evaluator(_host.trace(sorted_law, 2, (5, 1)), jl.squared(), np.ones((5, 1)), np.ones(5))


# ------------------------------------------------------------------------------------------- against compiled
def _sat_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = np.stack([np.sort(rng.uniform(0.2, 4.0, n)), rng.uniform(0.5, 2.0, n)], axis=1)
    y = 1.0 + 2.0 * np.exp(-0.7 * x[:, 0]) + 0.3 * x[:, 1] + 0.01 * rng.standard_normal(n)
    return x, y


def _sat(t, x):
    return t[0] + t[1] * jnp.exp(-t[2] * x[:, 0]) + t[3] * x[:, 1]


SAT = jl.laws.Law("host_sat", ("c", "a", "k", "s"), _sat, x_dim=2)
SAT_INITS = np.array([[0.5, 1.0, 0.3, 0.0], [2.0, 0.5, 1.0, 1.0], [1.0, 1.0, 1.0, 0.5], [0.0, 3.0, 2.0, -1.0]])


def _both(law, x, y, objective=None, bounds=None, w=None, solver=None, inits=SAT_INITS):
    """The host run and the compiled program on the same arguments (as ``fit_batched`` builds them)."""
    objective = jl.squared() if objective is None else objective
    box = None if bounds is None else jl.fitting.regularise.resolve_bounds(law, bounds)
    cfg = make_config(
        law, objective, jl.LevenbergMarquardt(), "trajectory", False, None, len(inits), box, None, None, True, True
    )
    lo, hi = bound_arrays(box, law.n_params)
    w = np.ones(len(y)) if w is None else w
    ctl = (jl.LevenbergMarquardt() if solver is None else solver).controls()
    args = [inits, x[None], y[None], w[None], np.zeros((1, len(y))), lo[None], hi[None], ctl[None]]
    args = [np.asarray(a, np.float64) for a in args]
    host = _host.run(cfg, args, shared_inits=True)
    with jax.enable_x64(True):
        compiled = engine._run_sharded(engine._program(cfg), args, True)
    return [np.asarray(h) for h in host], [np.asarray(c) for c in compiled]


@pytest.mark.parametrize(
    "case",
    [
        dict(),
        dict(bounds={"k": (0.0, 0.5)}),  # the optimum's k ~ 0.7 lies outside: held on the bound
        dict(bounds={"k": (0.0, 5.0), "s": (-1.0, 1.0)}),  # inside the box
        dict(objective=jl.huber(0.005)),  # IRLS weights
        dict(w=np.r_[np.ones(30), np.zeros(5), np.full(5, 2.0)]),  # weights, some zero
    ],
    ids=["open", "on_bound", "inside", "huber", "weights"],
)
def test_the_host_run_equals_the_compiled_program(case):
    x, y = _sat_data()
    host, compiled = _both(SAT, x, y, **case)
    theta, value, v90, per_init = host[:4]
    np.testing.assert_allclose(value, compiled[1], rtol=1e-10)
    np.testing.assert_allclose(theta, compiled[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(per_init, compiled[3], rtol=1e-8)
    np.testing.assert_allclose(v90, compiled[2], rtol=1e-8)
    for h, c in zip(host[5:], compiled[5:]):  # predictions, residuals, Jacobian, IRLS weights, rho at the optimum
        np.testing.assert_allclose(h, c[:, : h.shape[1]], rtol=1e-6, atol=1e-9)
    if "bounds" in case and case["bounds"]["k"][1] == 0.5:
        assert theta[0, 2] == 0.5


def _kaplan(t, x):  # Kaplan et al. 2020, eq. 1.5: [(Nc/N)^(aN/aD) + Dc/D]^aD, Nc = 10^t0, Dc = 10^t1
    ln10 = np.log(10.0)
    u = jnp.exp(t[2] / t[3] * ln10 * (t[0] - jnp.log10(x[:, 0]))) + jnp.exp(ln10 * (t[1] - jnp.log10(x[:, 1])))
    return jnp.exp(t[3] * jnp.log(u))


KAPLAN = jl.laws.Law("host_kaplan", ("log10_Nc", "log10_Dc", "alpha_N", "alpha_D"), _kaplan, x_dim=2)


def test_hopeless_inits_are_abandoned_alike_on_the_host_and_compiled():
    # Kaplan's law from 32 starts in its published box: some starts run off into a plateau (an exponent
    # grows by orders of magnitude at the first step) or crawl far above the optimum; they are abandoned
    rng = np.random.default_rng(7)
    x = np.stack([10 ** rng.uniform(7, 10, 60), 10 ** rng.uniform(8, 11, 60)], axis=1)
    truth = np.array([13.94, 13.73, 0.076, 0.095])
    y = np.asarray(_kaplan(truth, x)) * np.exp(0.01 * rng.standard_normal(60))
    lo, hi = np.array([12.0, 12.0, 0.03, 0.03]), np.array([15.0, 15.0, 0.2, 0.2])
    inits = lo + (hi - lo) * rng.uniform(size=(32, 4))
    pruned = _both(KAPLAN, x, y, inits=inits)
    full = _both(KAPLAN, x, y, inits=inits, solver=jl.LevenbergMarquardt(prune_every=0))
    for host, compiled in (pruned, full):  # the host stands in for the compiled program, pruning included
        np.testing.assert_allclose(host[1], compiled[1], rtol=1e-10)
        np.testing.assert_allclose(host[0], compiled[0], rtol=1e-6)
        # per init: the same to round-off, but for a crawling init whose thousand trips amplify it
        assert np.mean(np.isclose(host[3], compiled[3], rtol=1e-8, atol=0)) >= 0.9
    (p_theta, p_value, _, p_inits), (f_theta, f_value, _, f_inits) = pruned[0][:4], full[0][:4]
    assert p_value[0] == pytest.approx(f_value[0], rel=1e-12)  # the same optimum
    np.testing.assert_allclose(p_theta, f_theta, rtol=1e-6)
    np.testing.assert_allclose(f_theta[0], truth, rtol=0.05)
    gave_up = p_inits[0] > f_inits[0] * (1 + 1e-6)
    assert gave_up.any()  # some init was abandoned before reaching its own end ...
    assert np.all(p_inits[0][gave_up] > p_value[0] * 1.001)  # ... each far above the optimum
    np.testing.assert_array_equal(gave_up, pruned[1][3][0] > full[1][3][0] * (1 + 1e-6))  # the same ones compiled


def test_the_host_fit_reaches_scipys_optimum_and_its_bounded_one(monkeypatch):
    monkeypatch.setattr(_host, "_SEEN", set())
    x, y = _sat_data(seed=3)

    def res(t):
        return y - t[0] - t[1] * np.exp(-t[2] * x[:, 0]) - t[3] * x[:, 1]

    ref = min((optimize.least_squares(res, t0, method="lm", xtol=1e-15) for t0 in SAT_INITS), key=lambda o: o.cost)
    box = optimize.least_squares(
        res, [1.0, 1.0, 0.3, 0.0], bounds=([-np.inf] * 2 + [0.0, -np.inf], [np.inf] * 2 + [0.5, np.inf])
    )
    law = jl.laws.Law("host_sat_scipy", SAT.param_names, _sat, x_dim=2)
    free, n = _lowered(lambda: jl.fit(law, x, y, inits=SAT_INITS))
    assert n == 0  # on the host: nothing compiled
    np.testing.assert_allclose(free.params, ref.x, rtol=1e-7)
    held, n = _lowered(lambda: jl.fit(law, x, y, inits=SAT_INITS, bounds={"k": (0.0, 0.5)}))
    assert n == 0
    np.testing.assert_allclose(held.params, box.x, rtol=1e-6)
    assert held.at_bound[2] and held.ok


def test_first_call_on_the_host_the_next_compiled_and_the_results_agree(monkeypatch):
    monkeypatch.setattr(_host, "_SEEN", set())  # the configurations other tests ran count as seen

    def sat_policy(t, x):  # code no other test compiles
        return t[0] + t[1] * jnp.exp(-t[2] * x[:, 0]) + x[:, 1] * t[3]

    x, y = _sat_data(seed=5)
    law = jl.laws.Law("host_sat_policy", SAT.param_names, sat_policy, x_dim=2)
    first, n1 = _lowered(lambda: jl.fit(law, x, y, inits=SAT_INITS))
    second, n2 = _lowered(lambda: jl.fit(law, x, y, inits=SAT_INITS))
    third, n3 = _lowered(lambda: jl.fit(law, x, y, inits=SAT_INITS))
    assert (n1, n2, n3) == (0, 1, 0)
    np.testing.assert_array_equal(third.params, second.params)
    np.testing.assert_allclose(first.params, second.params, rtol=1e-7)
    assert first.objective == pytest.approx(second.objective, rel=1e-10)
    assert first.flags == second.flags and first.ok
    np.testing.assert_allclose(first.stderr, second.stderr, rtol=1e-5)
    np.testing.assert_allclose(first.init_objectives, second.init_objectives, rtol=1e-8)
    # turned off: the first call of a new configuration compiles
    monkeypatch.setenv(_host.HOST_ENV, "0")
    _, n = _lowered(lambda: jl.fit(law, x[:-9], y[:-9], inits=SAT_INITS))  # another bucket of points
    assert n == 1


def test_a_host_fit_traces_the_law_once(monkeypatch):
    monkeypatch.setattr(_host, "_SEEN", set())
    traces = []

    def counted(t, x):  # a Python side effect runs once per trace
        traces.append(1)
        return t[0] + t[1] * jnp.exp(-t[2] * x[:, 0]) + x[:, 1] * t[3]

    x, y = _sat_data(seed=6)
    law = jl.laws.Law("host_traced_once", SAT.param_names, counted, x_dim=2)
    res, lowered = _lowered(lambda: jl.fit(law, x, y, inits=SAT_INITS))
    assert res.ok and lowered == 0
    assert len(traces) == 1  # the shape check's trace is the one the host run evaluates


def test_a_host_fit_in_a_fresh_process_starts_no_xla_backend():
    """On a machine with no accelerator plugin, the dtype's choice (float64 on the CPU) does not start JAX's
    backends, and a first fit on the host never needs them."""
    import importlib.util
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, jax, jaxlaws as jl\n"
        "from jax._src import xla_bridge as xb\n"
        "from jaxlaws.fitting import engine\n"
        "law = jl.laws.Law('pw', ('E', 'A', 'a'), lambda p, x: p[0] + p[1] * x[:, 0] ** (-p[2]), x_dim=1,"
        " x_kind='positive')\n"
        "x = np.linspace(1, 10, 30)[:, None]; y = 1 + 2 * x[:, 0] ** -0.5 + 0.01 * np.sin(7 * x[:, 0])\n"
        "r = jl.fit(law, x, y, inits=np.array([[0.5, 1.0, 0.2], [2.0, 3.0, 1.0]]))\n"
        "print(r.ok, xb.backends_are_initialized(), engine.default_dtype())\n"
        "print(jax.default_backend(), engine.default_dtype())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "JAXLAWS_HOST_FIRST")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    first, second = out.stdout.split("\n")[:2]
    if engine._backend() != "cpu" or any(importlib.util.find_spec(m) is not None for m in engine._ACCELERATOR_MODULES):
        pytest.skip("an accelerator plugin is installed: JAX is asked which backend it has")
    assert first == "True False float64"
    assert second == "cpu float64"  # the same answer once the backend runs


def test_a_law_the_host_cannot_run_is_compiled():
    def sorted_law(t, x):
        return t[0] + t[1] * jnp.sort(x[:, 0])

    x = np.linspace(0, 1, 12)[:, None]
    y = 0.5 + 2.0 * x[:, 0]
    law = jl.laws.Law("host_sorted", ("a", "b"), sorted_law, x_dim=1)
    res, n = _lowered(lambda: jl.fit(law, x, y, inits=np.array([[0.0, 1.0]])))
    assert n == 1
    np.testing.assert_allclose(res.params, [0.5, 2.0], atol=1e-10)


def test_several_problems_fixed_parameters_and_multi_output_laws(monkeypatch):
    monkeypatch.setattr(_host, "_SEEN", set())
    x, y = _sat_data(seed=7)
    law = jl.laws.Law("host_sat_batch", SAT.param_names, _sat, x_dim=2)
    xs, ys = [x[:30], x[5:], x], [y[:30], y[5:], y]  # ragged problems
    batch, n = _lowered(lambda: jl.fit_batched(law, xs, ys, inits=SAT_INITS))
    assert n == 0
    for b in range(3):
        one = jl.fit(law, xs[b], ys[b], inits=SAT_INITS)  # compiled or host: the same optimum
        np.testing.assert_allclose(batch[b].params, one.params, rtol=1e-6)
    fixed, n = _lowered(lambda: jl.fit(law, x, y, inits=SAT_INITS, fixed={"s": 0.3}))
    assert n == 0 and fixed.params[3] == 0.3

    def two(t, x):  # two outputs per point
        return jnp.stack([_sat(t, x), t[0] + 0.5 * t[1] * jnp.exp(-t[2] * x[:, 0])], axis=-1)

    law2 = jl.laws.Law("host_two", SAT.param_names, two, x_dim=2, n_outputs=2)
    y2 = np.stack([y, 1.0 + 1.0 * np.exp(-0.7 * x[:, 0])], axis=1)
    host2 = jl.fit(law2, x, y2, inits=SAT_INITS)
    compiled2 = jl.fit(law2, x, y2, inits=SAT_INITS)
    np.testing.assert_allclose(host2.params, compiled2.params, rtol=1e-7)
    assert host2.objective == pytest.approx(compiled2.objective, rel=1e-10)


def test_a_primitive_without_a_tangent_rule_is_refused_and_the_fit_compiles():
    def prod_law(t, x):  # reduce_prod: evaluated, but no tangent rule in the writer
        return jnp.prod(t[0] * x, axis=1) + t[1]

    rng = np.random.default_rng(4)
    x = rng.uniform(0.5, 2.0, (12, 2))
    y = 1.3**2 * x[:, 0] * x[:, 1] + 0.2
    with pytest.raises(_host.Unsupported, match="reduce_prod"):
        _host.compile_forward(_host.trace(prod_law, 2, x.shape), x, 2)
    law = jl.laws.Law("host_prod", ("a", "c"), prod_law, x_dim=2)
    res, n = _lowered(lambda: jl.fit(law, x, y, inits=np.array([[1.0, 0.0], [2.0, 1.0]])))
    assert n == 1 and res.ok
    np.testing.assert_allclose(res.params, [1.3, 0.2], rtol=1e-8)
