"""Recovery of known parameters: synthetic sweeps drawn from the original fitted parameters.

Noise is Gaussian at the level of real sweeps (sd 0.005 on the loss, about the residual scale of the
original fits); noise-free data must give the generating parameters back almost exactly.
"""

import jax
import numpy as np
import pytest
from conftest import dirichlet, law_results

import jaxlaws as jl

NOISE = 0.005
GROUPS3 = ("arxiv", "book", "stackexchange")
TASKS9 = ("abductivenli", "boolq", "hellaswag", "mathqa", "piqa", "semeval", "squad", "sst2", "xsum")


def _static3(noise, rng):
    params = law_results("arxiv_books_stackexchange/params_static.json")
    xs, ys, truth, inits = [], [], [], []
    for gi, g in enumerate(GROUPS3):
        for s in range(5):
            th = np.array(params[g]["5000"][str(s)])
            x = dirichlet(3, 9, s)
            y = np.exp(th[0]) + np.exp(th[1] + x[:, :2] @ th[2:])
            xs.append(x)
            ys.append(y + rng.normal(0, noise, 9))
            truth.append(th)
            inits.append(jl.laws.log_linear_inits(3, jax.random.key(s), own=gi))
    return np.stack(xs), np.stack(ys), np.stack(truth), np.stack(inits)


def test_two_group_static_two_stage_recovers_reference(rng):
    params = law_results("arxiv_stackexchange/params_static.json")
    p = np.arange(1, 10) / 10
    own = {"arxiv": p, "stackexchange": 1 - p}
    ps, ys, truth = [], [], []
    for g in ("arxiv", "stackexchange"):
        for s in range(5):
            c, k, b = params[g]["5000"][str(s)]
            ps.append(own[g])
            ys.append(c + np.exp(k * own[g] + b))
            truth.append([c, k, b])
    ps, ys, truth = np.array(ps), np.array(ys), np.array(truth)
    exact = jl.fit_static_two_stage(ps, ys, dtype="float64")
    # Stage one's c grid has spacing min(L)/999, so c is known to ~3e-3 and k, b follow it closely.
    np.testing.assert_allclose(exact.params[:, 0], truth[:, 0], atol=4e-3)
    np.testing.assert_allclose(exact.params[:, 1:], truth[:, 1:], atol=0.05)
    assert np.all(exact.r2 > 0.9999)
    noisy = jl.fit_static_two_stage(ps, ys + rng.normal(0, NOISE, ys.shape), dtype="float64")
    grid = np.linspace(0.1, 0.9, 50)
    for i in range(len(ps)):
        pred = noisy[i].predict(grid if i < 5 else 1 - grid)
        c, k, b = truth[i]
        true = c + np.exp(k * (grid if i < 5 else 1 - grid) + b)
        assert np.sqrt(np.mean((pred - true) ** 2)) < 2 * NOISE  # the curve, not the raw params


@pytest.mark.slow
@pytest.mark.parametrize("solver", [jl.LevenbergMarquardt(), jl.LBFGS(steps=60)])
def test_three_group_static_recovers_reference(rng, solver):
    xs, ys, truth, inits = _static3(0.0, rng)
    sel = slice(None) if isinstance(solver, jl.LevenbergMarquardt) else slice(0, 15, 7)
    sub_inits = inits if isinstance(solver, jl.LevenbergMarquardt) else inits[:, ::20]
    res = jl.fit_batched(jl.laws.log_linear(3), xs[sel], ys[sel], inits=sub_inits[sel], solver=solver, dtype="float64")
    assert res.success.all()
    # Noise-free: the reduced form is identifiable, so predictions and parameters come back.
    assert np.all(res.mse < 1e-9)
    np.testing.assert_allclose(res.params, truth[sel], atol=0.05)


@pytest.mark.slow
def test_three_group_static_noisy_predictions(rng):
    xs, ys, truth, inits = _static3(NOISE, rng)
    res = jl.fit_batched(jl.laws.log_linear(3), xs, ys, inits=inits, dtype="float64")
    assert res.converged.all() and res.ok.all() and np.all(res.r2 > 0.99)
    test_p = np.random.default_rng(0).dirichlet(np.ones(3), 200)

    def truth_law(th, p):  # the generating law written out in numpy, independent of jaxlaws' predict
        return np.exp(th[0]) + np.exp(th[1] + p[:, :2] @ th[2:])

    for b in range(len(xs)):
        # Nine points, four parameters: inside the hull of the sweep the fit tracks the truth.
        inside = test_p[(test_p.min(axis=1) > 0.05)]
        err = res[b].predict(inside) - truth_law(truth[b], inside)
        assert np.sqrt(np.mean(err**2)) < 5 * NOISE, b
        # Over the whole simplex, corners included (extrapolation), it stays within a few noise sd.
        everywhere = res[b].predict(test_p) - truth_law(truth[b], test_p)
        assert np.sqrt(np.mean(everywhere**2)) < 3 * NOISE and np.abs(everywhere).max() < 10 * NOISE, b


@pytest.mark.slow
def test_instruction_static_nine_groups(rng):
    params = law_results("instruction/params.json")
    x = dirichlet(9, 50, 0)
    truth, ys, inits = [], [], []
    for i, task in enumerate(TASKS9):
        th = np.array(params[task]["1000"]["0"])
        truth.append(th)
        y = np.asarray(jax.jit(jl.laws.log_linear(9).predict)(th, x), np.float64)
        ys.append(y + rng.normal(0, NOISE, len(y)))
        inits.append(jl.laws.log_linear_inits(9, jax.random.key(0), own=i))
    res = jl.fit_batched(
        jl.laws.log_linear(9), np.repeat(x[None], 9, 0), np.stack(ys), inits=np.stack(inits), dtype="float64"
    )
    assert res.success.all()
    # Fit at least as well as the truth does (objective), and track the truth at the sweep's points.
    for b in range(9):
        true_pred = np.asarray(jax.jit(jl.laws.log_linear(9).predict)(truth[b], x))
        r = ys[b] - true_pred
        true_obj = np.sum(np.where(np.abs(r) < 0.02, 0.5 * r**2, 0.02 * (np.abs(r) - 0.01)))
        # the objective minimised includes the law's default ridge (lam/2) * n * sum t_j^2: charge the truth too
        true_obj += 0.5 * jl.laws.log_linear(9).default_penalty.lam * len(x) * np.sum(truth[b][2:] ** 2)
        assert res.objective[b] <= true_obj * (1 + 1e-6), TASKS9[b]
        assert np.sqrt(np.mean((res[b].predict(x) - true_pred) ** 2)) < 2 * NOISE


@pytest.mark.slow
def test_dynamic_laws_recover_reference(rng):
    dyn2 = law_results("arxiv_stackexchange/params_dynamic.json")
    p = np.arange(1, 10) / 10
    for _parent, (k, b) in dyn2["arxiv"]["2000"].items():
        y = k * p + b
        res = jl.fit(jl.laws.dynamic_two_group(), p, y + rng.normal(0, 1e-4, 9), dtype="float64")
        np.testing.assert_allclose(res.params, [k, b], atol=2e-3)
    dyn3 = law_results("arxiv_books_stackexchange/params_dynamic.json")
    x = dirichlet(3, 9, 1)
    for _parent, th in dyn3["book"]["2000"].items():
        y = th[0] + x[:, :2] @ np.array(th[1:])
        res = jl.fit(jl.laws.dynamic_linear(3), x, y, dtype="float64")
        np.testing.assert_allclose(res.params, th, atol=1e-8)
        # The full law on the change: L^{t+1} - L^t = a . p, with L^t the parent's loss.
        lt = 3.9
        full = jl.fit(jl.laws.dynamic_full(3), x, y - lt, dtype="float64")
        # (the grid's rows are rounded to 6 decimals, so they sum to 1 only within ~1e-6)
        np.testing.assert_allclose(full.params, [th[0] - lt + th[1], th[0] - lt + th[2], th[0] - lt], atol=1e-5)
    logd = law_results("instruction/params_log_dynamic.json")
    x9 = dirichlet(9, 50, 0)
    th = np.array(next(iter(logd["squad"]["500"].values())))
    y = th[0] + x9[:, :8] @ th[1:]
    res = jl.fit(jl.laws.log_ratio(9), x9, y + rng.normal(0, 1e-4, 50), dtype="float64")
    np.testing.assert_allclose(res.params, th, atol=0.01)
