"""Fits must not call garbage a success: solver settings, output ranges, convergence that means a small
gradient, identifiability / saturation flags, input checks of predict and the two-stage fit, named init
grids, and how jaxlaws.analysis surfaces flagged fits (column, warning, excluded from means and optima).

Numbers are checked against independent references: finite-difference Jacobians, numpy's rank and
least squares, R^2 computed here from the predictions.
"""

import math
import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import dirichlet, law_results

import jaxlaws as jl
from jaxlaws.analysis import dynamic, methods, static
from jaxlaws.analysis.pipeline import analyse
from jaxlaws.sweeps import reference, synthetic
from jaxlaws.sweeps.io import concat_sweeps
from jaxlaws.sweeps.schema import Sweep

X3 = dirichlet(3, 9, 0)
TH3 = np.array(law_results("arxiv_books_stackexchange/params_static.json")["arxiv"]["5000"]["0"])
INITS = jl.laws.log_linear_inits(3, jax.random.key(0), own=0)[::30]  # 200 of the 6,000 inits
LAW3 = jl.laws.log_linear(3)


def ll3(th, x):
    return np.exp(th[0]) + np.exp(th[1] + x[:, :2] @ th[2:])


def y3(noise=0.005, seed=0):
    return ll3(TH3, X3) + np.random.default_rng(seed).normal(0, noise, 9)


def r2_ref(y, pred):
    return 1 - np.sum((y - pred) ** 2) / np.sum((y - np.mean(y)) ** 2)


def fd_jacobian(f, th, h=1e-6):
    """Central finite differences of f: R^P -> R^N, in numpy."""
    cols = []
    for j in range(len(th)):
        e = np.zeros(len(th))
        e[j] = h * max(1.0, abs(th[j]))
        cols.append((f(th + e) - f(th - e)) / (2 * e[j]))
    return np.stack(cols, axis=1)


def decrement_ref(x, y, th, delta=0.02):
    """0.5 * || projection of sqrt(w) r onto the columns of sqrt(w) J ||^2 with Huber IRLS weights w, by
    numpy's least squares on a finite-difference Jacobian (independent of jaxlaws' SVD path)."""
    r = y - ll3(th, x)
    jac = fd_jacobian(lambda t: y - ll3(t, x), th)
    sw = np.sqrt(np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-30)))
    a, s = jac * sw[:, None], r * sw
    z = np.linalg.lstsq(a, s, rcond=None)[0]
    return 0.5 * float(np.sum((a @ z) ** 2))


def huber_sum(r, delta=0.02):
    a = np.abs(r)
    return float(np.sum(np.where(a < delta, 0.5 * r**2, delta * (a - 0.5 * delta))))


# --------------------------------------------------------------------------- solver settings
@pytest.mark.parametrize(
    "make, msg",
    [
        (lambda: jl.LevenbergMarquardt(steps=0), "steps must be an integer >= 1"),
        (lambda: jl.LevenbergMarquardt(steps=-5), "steps must be an integer >= 1"),
        (lambda: jl.LevenbergMarquardt(steps=2.5), "steps must be an integer >= 1"),
        (lambda: jl.LevenbergMarquardt(steps=True), "steps must be an integer >= 1"),
        (lambda: jl.LevenbergMarquardt(damping=0.0), "damping must be a positive"),
        (lambda: jl.LevenbergMarquardt(damping=float("nan")), "damping must be a positive"),
        (lambda: jl.LevenbergMarquardt(decrease=1.0), "decrease must be a finite number > 1"),
        (lambda: jl.LevenbergMarquardt(prune_every=-1), "prune_every must be an integer >= 0"),
        (lambda: jl.LevenbergMarquardt(prune_every=2.5), "prune_every must be an integer >= 0"),
        (lambda: jl.LevenbergMarquardt(increase=0.5), "increase must be a finite number > 1"),
        (lambda: jl.LBFGS(steps=0), "steps must be an integer >= 1"),
        (lambda: jl.LBFGS(memory_size=0), "memory_size must be an integer >= 1"),
        (lambda: jl.Adam(steps=-5), "steps must be an integer >= 1"),
        (lambda: jl.Adam(learning_rate=0.0), "learning_rate must be a positive"),
        (lambda: jl.Adam(learning_rate=-1e-3), "learning_rate must be a positive"),
        (lambda: jl.Adam(learning_rate=float("inf")), "learning_rate must be a positive"),
        (lambda: jl.Screen(steps=True), "Screen needs"),
    ],
)
def test_solver_settings_checked_at_construction(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_default_solvers_still_build():
    assert jl.LevenbergMarquardt().steps == 1000 and jl.LBFGS().steps == 200 and jl.Adam().learning_rate == 1e-2
    assert jl.Adam(steps=np.int64(3)).steps == 3


# --------------------------------------------------------------------------- output ranges
def test_laws_declare_their_output_range():
    for law in (jl.laws.log_linear(3), jl.laws.log_linear(9, own=2), jl.laws.chinchilla(), jl.laws.exp_two_group()):
        assert law.output_range == (0.0, math.inf) and law.positive, law
    for law in (
        jl.laws.static_two_group(),
        jl.laws.log_linear_paper(3),
        jl.laws.dynamic_linear(3),
        jl.laws.dynamic_full(3),
        jl.laws.log_ratio(3),
        jl.laws.scaled_method(2),
    ):
        assert law.output_range == (-math.inf, math.inf) and not law.positive, law
    with pytest.raises(ValueError, match="output_range"):
        jl.laws.Law("bad", ("a",), lambda p, x: x[:, 0] * p[0], 1, design=lambda x: x, output_range=(1.0, 0.0))


def test_positive_law_rejects_losses_it_cannot_fit():
    with pytest.raises(ValueError, match=r"log_linear\(3\) can only predict strictly positive values.*y has 9"):
        jl.fit(LAW3, X3, y3() - 10.0, inits=INITS)
    with pytest.raises(ValueError, match="strictly positive.*y has 1 value"):
        jl.fit(LAW3, X3, np.r_[y3()[:8], 0.0], inits=INITS)
    ys = np.stack([y3(), y3(seed=1), np.r_[y3()[:8], -1.0], y3(seed=2)])
    with pytest.raises(jl.FitInputError, match="problem 2 of the batch") as err:
        jl.fit_batched(LAW3, np.stack([X3] * 4), ys, inits=INITS)
    assert err.value.problem == 2
    with pytest.raises(ValueError, match="exp_two_group can only predict strictly positive"):
        jl.fit(jl.laws.exp_two_group(), np.linspace(0.1, 0.9, 9), -np.ones(9))
    with pytest.raises(ValueError, match="chinchilla can only predict strictly positive"):
        jl.fit(
            jl.laws.chinchilla(),
            np.c_[np.full(6, 1e8), np.geomspace(1e9, 1e11, 6)],
            -np.ones(6),
            objective=jl.squared(),
        )
    # a law without the restriction fits negative targets (here: a loss change)
    res = jl.fit(
        jl.laws.dynamic_full(3), X3, -0.1 * X3 @ np.array([1.0, 0.5, 0.2]), objective=jl.squared(), dtype="float64"
    )
    np.testing.assert_allclose(res.params, [-0.1, -0.05, -0.02], atol=1e-10)


# --------------------------------------------------------------------------- convergence
@pytest.mark.slow
def test_decrement_matches_an_independent_reference():
    y = y3()
    # one Levenberg-Marquardt step from one init: far from the optimum, a large decrement
    one = jl.fit(
        LAW3, X3, y, inits=INITS[:1], solver=jl.LevenbergMarquardt(steps=1), dtype="float64", penalty=None
    )  # the reference is the plain (unpenalised) objective
    ref = decrement_ref(X3, y, one.params)
    assert ref > 1e-3 * one.objective
    np.testing.assert_allclose(one.decrement, ref, rtol=1e-5)
    assert not one.converged and "not_converged" in one.flags and not one.ok
    # the full fit: the gradient is small in the problem's own metric
    full = jl.fit(LAW3, X3, y, inits=INITS, dtype="float64", penalty=None)
    assert np.isclose(full.objective, huber_sum(y - ll3(full.params, X3)), rtol=1e-10)
    assert decrement_ref(X3, y, full.params) <= 1e-6 * full.objective
    assert full.decrement <= 1e-6 * full.objective
    assert full.converged and full.flags == () and full.ok


@pytest.mark.slow
def test_diverged_adam_is_not_converged():
    """Adam with lr=1e3 diverges from every init and returns a starting point; it used to say converged."""
    y = y3()
    res = jl.fit(LAW3, X3, y, inits=INITS, solver=jl.Adam(steps=200, learning_rate=1e3), dtype="float64", penalty=None)
    start_obj = [huber_sum(y - ll3(t, X3)) for t in INITS]
    assert np.isclose(res.objective, min(start_obj), rtol=1e-9)  # it is the best starting point
    assert decrement_ref(X3, y, res.params) > 0.1 * res.objective  # where the gradient is large
    assert not res.converged and "not_converged" in res.flags and not res.ok


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", [jl.LevenbergMarquardt(), jl.LBFGS(steps=100)])
def test_good_fits_stay_converged_and_clean(dtype, solver):
    res = jl.fit(LAW3, X3, y3(), inits=INITS, solver=solver, dtype=dtype)
    assert res.converged and res.ok and res.flags == (), res
    assert res.identifiable and not res.saturated and res.rank == 4 and res.n_distinct == 9
    assert res.as_dict()["flags"] == "" and res.as_dict()["ok"] is True


@pytest.mark.slow
def test_closed_form_fit_diagnostics():
    x = np.random.default_rng(0).dirichlet(np.ones(3), 20)
    y = 3.0 - 0.2 * x[:, 0] + 0.05 * x[:, 1] + np.random.default_rng(1).normal(0, 0.01, 20)
    res = jl.fit(jl.laws.dynamic_linear(3), x, y, dtype="float64")
    assert res.converged and res.ok and res.rank == 3
    # one mixture repeated: the slopes are arbitrary (numpy's rank of the design says 1)
    same = np.tile(x[:1], (20, 1))
    bad = jl.fit(jl.laws.dynamic_linear(3), same, y, dtype="float64")
    design = np.c_[np.ones(20), same[:, :2]]
    assert bad.rank == np.linalg.matrix_rank(design) == 1
    assert {"saturated", "rank_deficient"} <= set(bad.flags) and not bad.ok


# --------------------------------------------------------------------------- identifiability, saturation, R^2
@pytest.mark.slow
def test_constant_losses_flagged():
    res = jl.fit(LAW3, X3, np.full(9, 3.2), inits=INITS, dtype="float64")
    assert np.isnan(res.r2)
    assert {"constant_target", "nonfinite_r2"} <= set(res.flags) and not res.ok


def test_identical_mixtures_flagged():
    x = np.tile(X3[4], (9, 1))
    y = y3()
    res = jl.fit(LAW3, x, y, inits=INITS, dtype="float64")
    jac = fd_jacobian(lambda t: ll3(t, x), res.params)
    assert res.n_distinct == 1
    assert res.rank == np.linalg.matrix_rank(jac / np.linalg.norm(jac, axis=0)) == 1
    assert {"saturated", "rank_deficient"} <= set(res.flags) and not res.identifiable and not res.ok


def test_full_rank_agrees_with_numpy():
    res = jl.fit(LAW3, X3, y3(), inits=INITS, dtype="float64")
    jac = fd_jacobian(lambda t: ll3(t, X3), res.params)
    assert res.rank == np.linalg.matrix_rank(jac / np.linalg.norm(jac, axis=0)) == 4


@pytest.mark.slow
def test_saturated_fits_flagged():
    # m=2, three mixtures: the two-stage law has three parameters; R^2 = 1 says nothing
    p = np.array([0.2, 0.5, 0.8])
    y = 3.0 + np.exp(-2.0 * p - 0.5) + np.array([0.003, -0.002, 0.001])
    two = jl.fit_static_two_stage(p, y, dtype="float64")
    assert two.saturated and "saturated" in two.flags and not two.ok
    assert r2_ref(y, two.predict(p)) > 0.999
    # four mixtures for the four-parameter m=3 law; in a batch, only that problem is flagged
    res = jl.fit_batched(
        LAW3,
        np.stack([X3, X3[[0, 1, 2, 3] * 2 + [4]]]),
        np.stack([y3(), y3()[[0, 1, 2, 3] * 2 + [4]]]),
        inits=INITS,
        dtype="float64",
    )
    assert res.flags[0] == () and res.n_distinct.tolist() == [9, 5]
    res4 = jl.fit(LAW3, X3[:4], y3()[:4], inits=INITS, dtype="float64")
    assert res4.saturated and "saturated" in res4.flags and res4.n_distinct == 4


@pytest.mark.slow
def test_negative_r2_flagged_in_a_batch():
    """One problem of a batch scaled by 1e30: the law's grid cannot reach it; it must not look like a success."""
    y = y3()
    res = jl.fit_batched(LAW3, np.stack([X3, X3]), np.stack([y, y * 1e30]), inits=INITS, dtype="float32")
    assert res.flags[0] == () and res.ok.tolist() == [True, False]
    r2 = r2_ref(y * 1e30, res[1].predict(X3))
    assert r2 < 0 and np.isclose(res.r2[1], r2, rtol=1e-6)
    assert "negative_r2" in res.flags[1] and "not_converged" in res.flags[1] and not res.converged[1]
    # float64 cannot reach it either (the grid starts 30 orders of magnitude away): flagged, not converged
    r64 = jl.fit_batched(LAW3, np.stack([X3, X3]), np.stack([y, y * 1e30]), inits=INITS, dtype="float64")
    assert r64.ok.tolist() == [True, False] and "not_converged" in r64.flags[1]


def test_negative_r2_of_a_law_that_cannot_predict_a_constant_is_a_finding():
    """A method's matrix scaled without intercept (m=3 scale fit) can explain less than the mean: that is
    what it says about the matrix, not a failed fit; it is reported in r2 but not flagged."""
    rng = np.random.default_rng(3)
    a = np.array([[0.5, 0.0, 0.1], [0.0, 0.1, 0.6], [0.3, 0.4, 0.0]])
    p = rng.dirichlet(np.ones(3), 9)
    f = p @ a.T
    y = -0.05 + 0.02 * p[:, ::-1] + rng.normal(0, 0.002, (9, 3))  # a uniform decrease the matrix misses
    res = jl.fit(jl.laws.scaled_method(3, intercept=False), f, y, dtype="float64")
    r2 = r2_ref(y.ravel(), (res.params[0] * f).ravel())
    assert r2 < 0 and np.isclose(res.r2, r2, rtol=1e-10)
    assert "negative_r2" not in res.flags and res.ok
    # with an intercept the law can predict the mean, so the same R^2 would be a failed fit: its fit is >= 0
    with_c = jl.fit(jl.laws.scaled_method(3), f, y, dtype="float64")
    assert with_c.r2 > 0 and with_c.ok


def test_fitresult_without_diagnostics_still_builds():
    res = jl.FitResult(
        law=LAW3,
        params=np.zeros(4),
        objective=np.float64(1.0),
        mse=np.float64(0.1),
        r2=np.float64(-0.5),
        n_points=np.int64(9),
        converged=np.bool_(False),
        success=np.bool_(True),
        init_objectives=np.ones(3),
        selection="final",
    )
    assert res.flags == ("not_converged", "negative_r2") and not res.ok


# --------------------------------------------------------------------------- inputs
@pytest.mark.slow
def test_predict_validates_its_input_like_fit():
    res = jl.fit(LAW3, X3, y3(), inits=INITS, dtype="float64")
    with pytest.raises(ValueError, match="expects x with 3 column"):
        res.predict(np.full((5, 2), 0.5))
    with pytest.raises(ValueError, match="sum"):
        res.predict(X3 * 0.9)
    with pytest.raises(ValueError, match="NaN"):
        res.predict(np.where(np.arange(27).reshape(9, 3) == 3, np.nan, X3))
    two = jl.fit_static_two_stage(np.linspace(0.1, 0.9, 9), 3 + np.exp(-2 * np.linspace(0.1, 0.9, 9)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        two.predict(np.array([0.5, 1.5]))
    np.testing.assert_allclose(res.predict(X3[:2]), ll3(res.params, X3[:2]), rtol=1e-12)


def test_choose_c_and_two_stage_refuse_bad_input():
    p = np.linspace(0.1, 0.9, 9)
    y = 3 + np.exp(-2 * p)
    with pytest.raises(ValueError, match="NaN"):
        jl.choose_c(p, np.r_[y[:8], np.nan])
    with pytest.raises(ValueError, match="at least 2 points"):
        jl.choose_c([], [])
    with pytest.raises(ValueError, match="3 free parameters but a fit has only 0"):
        jl.fit_static_two_stage([], [])
    with pytest.raises(ValueError, match="3 free parameters but a fit has only 2"):
        jl.fit_static_two_stage(p[:2], y[:2])
    with pytest.raises(ValueError, match="problem 1 of the batch"):
        jl.fit_static_two_stage(np.stack([p, p]), np.stack([y, -y]))
    with pytest.raises(ValueError, match="grid_size"):
        jl.choose_c(p, y, grid_size=1)


def test_init_grids_by_name_are_checked_and_reordered():
    y = y3()
    names = list(LAW3.param_names)
    shuffled = pd.DataFrame(INITS, columns=names)[["t2", "l", "t1", "b"]]
    by_array = jl.fit(LAW3, X3, y, inits=INITS, dtype="float64")
    by_frame = jl.fit(LAW3, X3, y, inits=shuffled, dtype="float64")
    by_dict = jl.fit(LAW3, X3, y, inits={n: INITS[:, j] for j, n in enumerate(names)}, dtype="float64")
    np.testing.assert_array_equal(by_frame.params, by_array.params)
    np.testing.assert_array_equal(by_dict.params, by_array.params)
    with pytest.raises(ValueError, match=r"do not match the law's parameters.*missing \['t2'\].*unknown \['t3'\]"):
        jl.fit(LAW3, X3, y, inits=shuffled.rename(columns={"t2": "t3"}))
    with pytest.raises(ValueError, match="width 3"):
        jl.fit(LAW3, X3, y, inits=INITS[:, :3])


# --------------------------------------------------------------------------- jaxlaws.analysis
G2 = ("arxiv", "stackexchange")


def test_two_group_optimum_table_survives_a_flat_seed():
    """A flat (flagged) fit has no closed-form optimum; the other seeds keep theirs (it used to raise)."""
    from jaxlaws.analysis.optimum import optimum_table

    params = {
        "a": {0: np.array([3.0, -2.0, -0.5]), 1: np.array([3.0, -2.0, -0.5])},
        "b": {0: np.array([3.2, -1.5, -0.4]), 1: np.array([3.2, 0.0, -0.4])},
    }
    table = optimum_table(params, ("a", "b"), "two_group")
    k1, b1, k2, b2 = -2.0, -0.5, -1.5, -0.4
    raw = (k2 + b2 - b1 + np.log(k2 / k1)) / (k1 + k2)  # d/dp [e^(k1 p + b1) + e^(k2 (1-p) + b2)] = 0
    assert np.isclose(table.loc[0, "p1_closed_form_raw"], raw) and np.isclose(table.loc[0, "p_a"], raw, atol=1e-6)
    assert np.isnan(table.loc[1, "p1_closed_form_raw"]) and not table.loc[1, "clipped"]
    assert 0 <= table.loc[1, "p_a"] <= 1  # the numerical optimum still exists


def _static2(mixtures=None, seeds=range(3), noise=0.003):
    params = reference.static_params("arxiv_stackexchange")
    params = {g: {s: params[g][s] for s in seeds} for g in G2}
    mix = np.array([[a / 10, 1 - a / 10] for a in range(1, 10)]) if mixtures is None else mixtures
    return synthetic.static_sweep(params, mix, law="two_group", noise=noise, seed=0)[0]


def _set_losses(sweep, value, **where):
    """A copy of ``sweep`` whose losses matching ``where`` (column == value) are replaced by ``value``."""
    df = sweep.losses.copy()
    sel = np.ones(len(df), bool)
    for k, v in where.items():
        sel &= (df[k] == v).to_numpy()
    df.loc[sel, "loss"] = value(df.loc[sel]) if callable(value) else value
    return Sweep(df, sweep.groups, sweep.matrices)


@pytest.mark.slow
def test_static_analysis_flags_warns_and_excludes():
    sweep = _set_losses(_static2(), 3.2, group="stackexchange", seed=1, kind="static")
    with pytest.warns(static.FlaggedFitWarning, match=r"group 'stackexchange', seed 1.*constant_target"):
        fits = static.fit_static(sweep)
    flagged = fits.params[fits.params["flags"] != ""]
    assert list(zip(flagged["group"], flagged["seed"])) == [("stackexchange", 1)]
    assert "constant_target" in flagged["flags"].iloc[0]
    clean = fits.params[fits.params["flags"] == ""]
    assert len(clean) == 5 and clean["r2"].notna().all()
    s = fits.summary.iloc[0]
    assert s["n_fits"] == 5 and s["n_flagged"] == 1
    assert np.isclose(s["r2_mean"], np.mean(clean["r2"].to_numpy()))
    with pytest.warns(static.FlaggedFitWarning):
        kept = static.fit_static(sweep, include_flagged=True).summary.iloc[0]
    assert kept["n_fits"] == 6 and kept["n_flagged"] == 1
    assert np.isclose(kept["mse_mean"], fits.params["mse"].mean()) and kept["mse_mean"] != s["mse_mean"]

    with pytest.warns(static.FlaggedFitWarning):
        res = analyse(sweep)
    assert res.optimum["seed"].tolist() == [0, 2, "mean"]
    table = res.flagged()
    assert table[["table", "group", "seed"]].values.tolist() == [["static_params", "stackexchange", 1]]
    assert "constant_target" in table["flags"].iloc[0] and "step" in table.columns
    with pytest.warns(static.FlaggedFitWarning):
        everything = analyse(sweep, include_flagged=True)
    assert everything.optimum["seed"].tolist() == [0, 1, 2, "mean"]
    assert everything.optimum["flags"].tolist()[1] != "" and everything.optimum["flags"].tolist()[0] == ""
    assert len(everything.flagged()) == 1


@pytest.mark.slow
def test_three_mixture_sweep_gives_no_optimum_without_a_warning():
    """m=2 with three mixtures: every fit interpolates (R^2 = 1); the 'optimal mixture' rests on nothing."""
    sweep = _static2(mixtures=np.array([[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]]))
    with pytest.warns(static.FlaggedFitWarning) as caught:
        res = analyse(sweep)
    said = [str(w.message) for w in caught]
    assert sum("saturated" in m for m in said) == 6 and any("no optimal mixture" in m for m in said)
    assert (res.static.params["flags"].str.contains("saturated")).all()
    assert res.optimum[res.optimum["seed"] != "mean"].empty
    assert len(res.flagged()) == 6 and set(res.flagged()["table"]) == {"static_params"}
    with pytest.warns(static.FlaggedFitWarning):
        kept = analyse(sweep, include_flagged=True)
    assert kept.optimum["seed"].tolist() == [0, 1, 2, "mean"]


def test_clean_analysis_has_empty_flags_and_no_warning():
    sweep = _static2()
    with warnings.catch_warnings():
        warnings.simplefilter("error", static.FlaggedFitWarning)
        res = analyse(sweep)
    assert (res.static.params["flags"] == "").all() and res.flagged().empty
    assert list(res.flagged().columns[:4]) == ["table", "group", "seed", "flags"]
    assert res.optimum["seed"].tolist() == [0, 1, 2, "mean"]


def test_dynamic_analysis_flags():
    sweep, _ = synthetic.reference_dynamic_sweep("arxiv_stackexchange")
    parent = sorted(sweep.losses.loc[sweep.losses["kind"] == "parent", "run"].unique())[3]
    bad = _set_losses(sweep, 3.0, group="arxiv", parent=parent, kind="child")
    with pytest.warns(static.FlaggedFitWarning, match=rf"group 'arxiv', seed 0.*parent '{parent}'"):
        fits = dynamic.fit_dynamic(bad)
    flagged = fits.params[fits.params["flags"] != ""]
    assert flagged[["group", "parent"]].values.tolist() == [["arxiv", parent]]
    assert "constant_target" in flagged["flags"].iloc[0]
    s = fits.summary.iloc[0]
    clean = fits.params[fits.params["flags"] == ""]
    assert s["n_fits"] == len(clean) == len(fits.params) - 1
    assert np.isclose(s["r2_mean"], clean["r2"].mean())


@pytest.mark.slow
def test_method_analysis_flags_and_averages():
    parts = [synthetic.method_sweep("doremi", 2, s, truth_mode="equal") for s in range(3)]
    sweep = concat_sweeps([p[0] for p in parts])
    bad = _set_losses(sweep, 3.1, group="stackexchange", seed=1, kind="child")
    with pytest.warns(static.FlaggedFitWarning, match=r"doremi.*group 'stackexchange', seed 1"):
        ma = methods.method_parameters(bad, "doremi", transpose_doge=False)
    assert {"sim", "b", "sim_method_sign", "flags"} <= set(ma.similarity.columns)
    assert "flags" in ma.a_star_fits.columns and "flags" in ma.scale_fits.columns
    assert ma.a_star_fits.loc[ma.a_star_fits["flags"] != "", ["group", "seed"]].values.tolist() == [
        ["stackexchange", 1]
    ]
    sims = ma.similarity.set_index("seed")
    assert sims.loc[1, "flags"] != "" and sims.loc[0, "flags"] == "" and sims.loc[2, "flags"] == ""
    np.testing.assert_allclose(ma.averages.loc["mean", "sim"], sims.loc[[0, 2], "sim"].mean(), rtol=1e-12)
    with pytest.warns(static.FlaggedFitWarning):
        every = methods.method_parameters(bad, "doremi", include_flagged=True)
    np.testing.assert_allclose(every.averages.loc["mean", "sim"], sims["sim"].mean(), rtol=1e-12)
    with pytest.warns(static.FlaggedFitWarning):
        res = analyse(bad)
    t = res.flagged()
    assert ["doremi_a_star_fits", "stackexchange", 1] in t[["table", "group", "seed"]].values.tolist()


@pytest.mark.parametrize("m", [2, 3])
def test_static_analysis_errors_name_group_and_seed(m):
    if m == 2:
        sweep = _static2()
        group = "stackexchange"
    else:
        sweep = synthetic.reference_static_sweep("arxiv_books_stackexchange", extra_steps=())[0]
        group = "book"
    bad = _set_losses(sweep, lambda d: -d["loss"], group=group, seed=2, kind="static")
    with pytest.raises(ValueError, match=rf"group '{group}', seed 2.*positive"):
        static.fit_static(bad, n_random=2)
