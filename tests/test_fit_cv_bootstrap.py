"""Ragged batches, batched predict, cross-validation and the bootstrap, each against a plain reference: separate
single fits, a Python loop of ``jl.fit`` over the folds, NumPy predictions, and coverage of known parameters.
All data are synthetic.
"""

import numpy as np
import pytest
from scipy import stats

import jaxlaws as jl


def exp2_np(theta, p):
    theta = np.asarray(theta, np.float64)
    return np.exp(theta[..., 0:1] * np.asarray(p).reshape(-1) + theta[..., 1:2])


def loglin_np(theta, x):
    return np.exp(theta[0]) + np.exp(theta[1] + x[:, :-1] @ theta[2:])


def synthetic_loglin(rng, n, noise=0.01):
    x = rng.dirichlet(np.ones(3), n)
    truth = np.array([0.7, 0.3, -1.2, 0.4])
    return x, loglin_np(truth, x) + rng.normal(0, noise, n)


INITS = jl.laws.log_linear_inits(3, 0, own=0, n_random=3)[::6]  # 100 inits
KW = dict(inits=INITS, dtype="float64", bounds=None, penalty=None)


# --------------------------------------------------------------------------- ragged batches, batched predict
@pytest.mark.slow
def test_ragged_batch_equals_separate_fits(rng):
    law = jl.laws.log_linear(3)
    (x1, y1), (x2, y2) = (synthetic_loglin(rng, n) for n in (9, 8))
    res = jl.fit_batched(law, [x1, x2], [y1, y2], **KW)
    assert len(res) == 2 and res.n_points.tolist() == [9, 8]
    for b, (x, y) in enumerate([(x1, y1), (x2, y2)]):
        one = jl.fit(law, x, y, **KW)
        np.testing.assert_allclose(res.params[b], one.params, atol=1e-8)
        np.testing.assert_allclose(res.objective[b], one.objective, rtol=1e-10)
        assert res[b].flags == one.flags
    # ragged masks and weights: lists of per-problem arrays (weight 0 drops x1's first point: x1[1:] has 8)
    w = [np.r_[0.0, np.ones(8)], np.ones(8)]
    res_w = jl.fit_batched(law, [x1, x2], [y1, y2], weights=w, **KW)
    np.testing.assert_allclose(res_w.params[0], jl.fit(law, x1[1:], y1[1:], **KW).params, atol=1e-8)
    with pytest.raises(ValueError, match="list of 2 arrays"):
        jl.fit_batched(law, [x1, x2], [y1, y2], weights=np.ones(9), **KW)


def test_batched_predict_equals_per_problem_predict(rng):
    law = jl.laws.log_linear(3)
    xs, ys = zip(*(synthetic_loglin(rng, 9) for _ in range(2)))  # the ragged test's padded shape: no compile
    res = jl.fit_batched(law, np.stack(xs), np.stack(ys), **KW)
    grid = rng.dirichlet(np.ones(3), 7)
    shared = res.predict(grid)  # (n, d) shared by every problem
    per = res.predict(np.stack([grid + 0.0] * 2))  # (B, n, d)
    assert shared.shape == (2, 7)
    for b in range(2):
        np.testing.assert_allclose(shared[b], loglin_np(res.params[b], grid), rtol=1e-12)
        np.testing.assert_allclose(shared[b], res[b].predict(grid), rtol=1e-12)
    np.testing.assert_allclose(per, shared, rtol=1e-12)
    with pytest.raises(ValueError, match="problems"):
        res.predict(np.stack([grid] * 3))  # 3 sets of points for 2 problems


# --------------------------------------------------------------------------- cross-validation
@pytest.mark.slow
@pytest.mark.parametrize("folds", ["loo", 3])
def test_cross_validate_equals_a_loop_of_single_fits(rng, folds):
    law = jl.laws.log_linear(3)
    x, y = synthetic_loglin(rng, 9, noise=0.02)
    cv = jl.cross_validate(law, x, y, folds, key=0, **KW)
    ids = cv.folds
    K = ids.max() + 1
    if folds == "loo":
        np.testing.assert_array_equal(ids, np.arange(9))
    else:
        assert K == 3 and np.bincount(ids).tolist() == [3, 3, 3]
        np.testing.assert_array_equal(ids, jl.fold_ids(9, 3, key=0))  # the split is a function of key
    oof = np.empty(9)
    for k in range(K):
        out = ids == k
        one = jl.fit(law, x[~out], y[~out], **KW)
        np.testing.assert_allclose(cv.fits.params[k], one.params, atol=1e-8)
        oof[out] = loglin_np(one.params, x[out])
        np.testing.assert_allclose(cv.fold_mae[k], np.mean(np.abs(y[out] - oof[out])), rtol=1e-6)
        np.testing.assert_allclose(cv.fold_rmse[k], np.sqrt(np.mean((y[out] - oof[out]) ** 2)), rtol=1e-6)
    np.testing.assert_allclose(cv.predictions, oof, rtol=1e-7)
    np.testing.assert_allclose(cv.mae, np.mean(np.abs(y - oof)), rtol=1e-6)
    np.testing.assert_allclose(cv.rmse, np.sqrt(np.mean((y - oof) ** 2)), rtol=1e-6)
    np.testing.assert_allclose(cv.refit.params, jl.fit(law, x, y, **KW).params, atol=1e-8)


@pytest.mark.slow
def test_cross_validate_batched_and_bad_input(rng):
    law = jl.laws.log_linear(3)
    x, y1 = synthetic_loglin(rng, 9)
    y2 = y1 + rng.normal(0, 0.01, 9)
    cv = jl.cross_validate(law, np.stack([x, x]), np.stack([y1, y2]), "loo", **KW)
    assert cv.predictions.shape == (2, 9) and cv.fold_mae.shape == (2, 9)
    single = jl.cross_validate(law, x, y2, "loo", **KW)
    np.testing.assert_allclose(cv.predictions[1], single.predictions, rtol=1e-7)
    # per-problem init grids (B, n_init, P) go with their problem's folds: problem 1 keeps KW's grid
    kw = {k: v for k, v in KW.items() if k != "inits"}
    own = np.stack([np.asarray(KW["inits"])[::-1] + 0.05, np.asarray(KW["inits"])])
    per = jl.cross_validate(law, np.stack([x, x]), np.stack([y1, y2]), "loo", inits=own, **kw)
    np.testing.assert_allclose(per.predictions[1], single.predictions, rtol=1e-7)
    with pytest.raises(ValueError, match="per-problem inits"):
        jl.cross_validate(law, np.stack([x, x]), np.stack([y1, y2]), "loo", inits=own[:1], **kw)
    with pytest.raises(ValueError, match="key"):
        jl.cross_validate(law, x, y1, 3, **KW)  # k-fold shuffles: needs a key
    with pytest.raises(ValueError, match="does not apply"):
        jl.cross_validate(law, x, y1, "loo", test=np.zeros(9, bool), **KW)
    with pytest.raises(ValueError, match="between 2"):
        jl.fold_ids(9, 10, key=0)


# --------------------------------------------------------------------------- bootstrap
@pytest.mark.slow
def test_bootstrap_resamples_are_weighted_duplicates(rng):
    law = jl.laws.log_linear(3)
    x, y = synthetic_loglin(rng, 9)
    boot = jl.bootstrap(law, x, y, 4, key=3, **KW)
    assert boot.params.shape == (4, 4) and boot.counts.shape == (4, 9) and boot.n_failed == 0
    assert np.all(boot.counts.sum(axis=1) == 9)
    np.testing.assert_allclose(boot.estimate.params, jl.fit(law, x, y, **KW).params, atol=1e-8)
    for r in range(4):  # resample r is the fit to its drawn points, duplicates included
        c = boot.counts[r].astype(int)
        dup = jl.fit(law, np.repeat(x, c, axis=0), np.repeat(y, c), **KW)
        np.testing.assert_allclose(boot.params[r], dup.params, atol=1e-5)
    again = jl.bootstrap(law, x, y, 4, key=3, **KW)
    np.testing.assert_array_equal(again.counts, boot.counts)  # determinism: the key fixes the draws
    est, lo, hi = boot.predict(x[:3])
    assert est.shape == lo.shape == hi.shape == (3,) and np.all(lo <= hi)
    with pytest.raises(ValueError, match="resamples"):
        jl.bootstrap(law, x, y, 1, key=0, **KW)
    with pytest.raises(ValueError, match="level"):
        jl.bootstrap(law, x, y, 4, key=0, level=1.5, **KW)


N_SETS, N_BOOT, LEVEL = 120, 150, 0.9


@pytest.mark.slow
def test_bootstrap_percentile_intervals_cover_the_truth_at_about_the_nominal_rate():
    """Coverage of 90% percentile intervals over many synthetic data sets of y = exp(k p + b) + noise.

    With N_SETS independent data sets, the number of intervals covering the truth is Binomial(N_SETS, q) for
    the true coverage q of the method. We accept q in [0.80, 0.97] (the percentile bootstrap undercovers a
    little at small n): the observed count must lie in the central 99.9% range of Binomial(N_SETS, 0.80) ..
    Binomial(N_SETS, 0.97), i.e. a false alarm has probability < 0.1% if the method is within that band."""
    law = jl.laws.exp_two_group()
    truth = np.array([-2.0, -0.5])
    rng = np.random.default_rng(7)
    p = np.linspace(0.0, 1.0, 25)
    ys = exp2_np(truth, p) + rng.normal(0, 0.02, (N_SETS, 25))
    inits = jl.laws.base.grid(np.linspace(-3, -1, 3), np.linspace(-1, 0, 3))
    boot = jl.bootstrap(
        law,
        np.broadcast_to(p[:, None], (N_SETS, 25, 1)),
        ys,
        N_BOOT,
        key=11,
        level=LEVEL,
        paired=False,
        inits=inits,
        objective=jl.squared(),
        dtype="float64",
    )
    assert boot.params.shape == (N_SETS, N_BOOT, 2) and np.all(boot.n_failed == 0)
    lo, hi = boot.param_intervals()
    covered = (lo <= truth) & (truth <= hi)  # (N_SETS, 2)
    lo_ok = stats.binom.ppf(0.0005, N_SETS, 0.80)
    hi_ok = stats.binom.ppf(0.9995, N_SETS, 0.97)
    for j, name in enumerate(law.param_names):
        assert lo_ok <= covered[:, j].sum() <= hi_ok, (name, covered[:, j].mean())
    # a prediction's interval covers the true curve at about the same rate
    est, plo, phi = boot.predict(np.array([[0.5]]))
    true_mid = exp2_np(truth, [0.5])[0]
    assert lo_ok <= np.sum((plo[:, 0] <= true_mid) & (true_mid <= phi[:, 0])) <= hi_ok
    # wider level, wider intervals
    lo99, hi99 = boot.param_intervals(0.99)
    assert np.all(lo99 <= lo) and np.all(hi99 >= hi)


@pytest.mark.slow
def test_bootstrap_of_the_predicted_optimum_is_paired_across_groups():
    """Two groups' losses from the same runs, each y_i = c + exp(k_i p_i + b_i): the optimum of
    sum_i L_i over p_1 has the closed form of jaxlaws.analysis.two_group_optimum. Resampling must draw the same
    runs for both groups (paired), and the interval of the optimum must cover the true optimum at about the
    nominal rate (tolerance as in the parameter coverage test)."""
    from jaxlaws.analysis import two_group_optimum

    law = jl.laws.exp_two_group()
    k, b = np.array([-2.0, -1.6]), np.array([-0.5, -0.8])
    p_true, _ = two_group_optimum(k[0], b[0], k[1], b[1])
    rng = np.random.default_rng(3)
    n_sets, n = 60, 20
    p1 = np.linspace(0.0, 1.0, n)
    own = np.stack([p1, 1 - p1])  # (2, n): each group's own proportion
    covered = 0
    inits = jl.laws.base.grid(np.linspace(-3, -1, 3), np.linspace(-1, 0, 3))
    for s in range(n_sets):
        y = np.exp(k[:, None] * own + b[:, None]) + rng.normal(0, 0.02, (2, n))
        boot = jl.bootstrap(
            law, own[..., None], y, 100, key=s, paired=True, inits=inits, objective=jl.squared(), dtype="float64"
        )
        np.testing.assert_array_equal(boot.counts[0], boot.counts[1])  # the same runs for both groups

        def optimum(theta):  # theta (..., 2 groups, 2) -> (...,)
            return two_group_optimum(theta[..., 0, 0], theta[..., 0, 1], theta[..., 1, 0], theta[..., 1, 1])[1]

        est, lo, hi = boot.joint_interval(optimum)
        # the same interval by hand: the optimum of each resample's pair of fits, percentiles over resamples
        per_r = optimum(np.swapaxes(boot.params, 0, 1))
        np.testing.assert_allclose([lo, hi], np.quantile(per_r, [0.05, 0.95]), rtol=1e-12)
        np.testing.assert_allclose(est, optimum(boot.estimate.params), rtol=1e-12)
        covered += int(lo <= p_true <= hi)
    lo_ok = stats.binom.ppf(0.0005, n_sets, 0.80)
    hi_ok = stats.binom.ppf(0.9995, n_sets, 0.97)
    assert lo_ok <= covered <= hi_ok, covered / n_sets


@pytest.mark.slow
def test_bootstrap_redraws_resamples_too_small_to_fit():
    """5 points, 3 parameters: about a fifth of plain resamples draw fewer than 3 distinct points, which no fit
    can take; they are drawn again (and counted), so every resample is fittable."""
    law = jl.laws.static_two_group()
    p = np.linspace(0.1, 0.9, 5)
    y = 1.5 + np.exp(-2.0 * p - 0.5) + np.array([0.003, -0.002, 0.001, -0.004, 0.002])  # synthetic
    boot = jl.bootstrap(law, p, y, 40, key=5, dtype="float64")
    assert np.all((boot.counts > 0).sum(axis=1) >= 3)
    assert 0 < boot.n_redrawn < 40 and np.all(boot.counts.sum(axis=1) == 5)
    with pytest.raises(ValueError, match="fewer than 3 points"):
        jl.bootstrap(law, p, y, 10, key=5, weights=np.r_[1.0, 1.0, 0.0, 0.0, 0.0])


@pytest.mark.slow
def test_cross_validate_and_bootstrap_take_rounded_mixtures(rng):
    """Mixtures whose rows sum to 1 +- 0.01 (rounded, as RegMix's and DML's) pass with the fit's own
    simplex_atol (or normalize=True), as jl.fit takes them; without it they are refused."""
    law = jl.laws.log_linear(3)
    x, y = synthetic_loglin(rng, 9)
    off = x * (1 + 0.01 * rng.choice([-1.0, 1.0], (9, 1)))
    with pytest.raises(ValueError, match="sum"):
        jl.cross_validate(law, off, y, "loo", **KW)
    cv = jl.cross_validate(law, off, y, "loo", simplex_atol=0.02, **KW)
    one = jl.fit(law, off[1:], y[1:], simplex_atol=0.02, **KW)
    np.testing.assert_allclose(cv.fits.params[0], one.params, atol=1e-8)
    np.testing.assert_allclose(cv.predictions[0], loglin_np(one.params, off[:1])[0], rtol=1e-9)
    boot = jl.bootstrap(law, off, y, 4, key=0, normalize=True, **KW)
    np.testing.assert_allclose(boot.estimate.params, jl.fit(law, off, y, normalize=True, **KW).params, atol=1e-8)
