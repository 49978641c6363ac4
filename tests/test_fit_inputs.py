"""Inputs as users have them: rounded mixtures (tolerance / normalise), tables by column name, parameters in the
paper's names, and log_linear's data-chosen init grid. Every fit here is dml(3) on 3 problems of <= 12 points,
so the tests share one compiled program."""

import jax
import numpy as np
import pandas as pd
import pytest

import jaxlaws as jl
from jaxlaws.fitting.result import FitResult

TRUTH = np.array([[2.0, -0.8, 0.3, 0.2], [2.4, 0.2, -0.9, 0.1], [1.7, 0.4, 0.1, -1.1]])  # dml [c, t1..t3]


def data(seed=0, noise=0.002):
    """Synthetic: 3 problems x 12 mixtures, losses c_i + exp(t_i . r) plus noise."""
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.ones(3), (3, 12))
    y = TRUTH[:, :1] + np.exp(np.einsum("bnj,bj->bn", r, TRUTH[:, 1:])) + rng.normal(0, noise, (3, 12))
    return r, y


def test_rounded_mixtures_are_refused_with_the_way_out():
    r, y = data()
    rounded = np.round(r, 2)
    with pytest.raises(ValueError, match=r"simplex_atol=0\.0\d.*normalize=True"):
        jl.fit_batched(jl.laws.dml(3), rounded, y)
    with pytest.raises(ValueError, match="simplex_atol must be"):
        jl.fit_batched(jl.laws.dml(3), r, y, simplex_atol=-1)
    with pytest.raises(ValueError, match="not a mixture"):
        jl.fit(jl.laws.chinchilla(), np.ones((6, 2)), np.ones(6), normalize=True)
    with pytest.raises(ValueError, match="entries >= 0"):
        jl.fit_batched(jl.laws.dml(3), np.where(r > 0.5, -r, r), y, normalize=True)
    with pytest.raises(ValueError, match="sums to 1.3"):  # single fits say it without a batch index
        jl.fit(jl.laws.dml(3), np.r_[r[0, :11], [[0.5, 0.5, 0.3]]], y[0])


@pytest.mark.slow
def test_normalize_equals_fitting_the_normalised_rows_and_reports_the_offsets():
    r, y = data()
    rounded = np.round(r, 2)
    want = rounded / rounded.sum(axis=-1, keepdims=True)
    ref = jl.fit_batched(jl.laws.dml(3), want, y, dtype="float64")
    res = jl.fit_batched(jl.laws.dml(3), rounded, y, normalize=True, dtype="float64")
    np.testing.assert_array_equal(res.params, ref.params)
    np.testing.assert_allclose(res.row_sum_error, rounded.sum(axis=-1) - 1, atol=1e-15)
    np.testing.assert_allclose(res.max_row_sum_error, np.abs(rounded.sum(axis=-1) - 1).max(axis=-1), atol=1e-15)
    assert res.normalized and not ref.normalized
    np.testing.assert_array_equal(res.n_renormalized, (np.abs(rounded.sum(axis=-1) - 1) > 1e-12).sum(axis=-1))
    assert res.n_renormalized.sum() > 0 and ref.n_renormalized.sum() == 0
    # percentages work too: the same rows up to round-off
    pct = jl.fit_batched(jl.laws.dml(3), rounded * 100, y, normalize=True, dtype="float64")
    np.testing.assert_allclose(pct.params, ref.params, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(pct.max_row_sum_error, np.abs(100 * rounded.sum(axis=-1) - 1).max(axis=-1))
    # a tolerance fits the rows as given: the fit sees the rounded rows, nothing is renormalised
    tol = jl.fit_batched(jl.laws.dml(3), rounded, y, simplex_atol=0.05, dtype="float64")
    assert not tol.normalized and tol.n_renormalized.sum() == 0
    np.testing.assert_allclose(tol.max_row_sum_error, res.max_row_sum_error)
    for b in range(3):  # its reported MSE is that of the rounded rows, computed here in numpy
        pred = tol.params[b, 0] + np.exp(rounded[b] @ tol.params[b, 1:])
        np.testing.assert_allclose(tol.mse[b], np.mean((pred - y[b]) ** 2), rtol=1e-9)


def frame():
    r, y = data()
    rows = []
    for b, name in enumerate(["beta", "alpha", "gamma"]):
        keep = 12 if b < 2 else 10  # ragged: one group has fewer runs
        for n in range(keep):
            rows.append({"size": name, "p_a": r[b, n, 0], "p_b": r[b, n, 1], "p_c": r[b, n, 2], "loss": y[b, n]})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True), r, y


@pytest.mark.slow
def test_fit_frame_by_column_names_matches_fit_batched():
    df, r, y = frame()
    fits = jl.fit_frame(jl.laws.dml(3), df, x=["p_a", "p_b", "p_c"], y="loss", by="size", dtype="float64")
    assert fits.labels == ("alpha", "beta", "gamma") and len(fits) == 3
    ref = jl.fit_batched(jl.laws.dml(3), r, y, dtype="float64")  # problem 0 is 'beta', 1 is 'alpha'
    np.testing.assert_allclose(fits["beta"].params, ref.params[0], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fits["alpha"].params, ref.params[1], rtol=1e-7, atol=1e-9)
    assert int(fits["gamma"].n_points) == 10
    table = fits.table()
    assert list(table["size"]) == ["alpha", "beta", "gamma"]
    np.testing.assert_allclose(table[["c", "t1", "t2", "t3"]].to_numpy(), fits.result.params)
    assert list(fits.paper.columns) == ["size", "c", "k", "t1", "t2", "t3"]
    # predict routes each row to its own group's parameters (checked with the law's formula in numpy)
    pred = fits.predict(df)
    p = np.stack([fits[s].params for s in df["size"]])
    want = p[:, 0] + np.exp(np.sum(df[["p_a", "p_b", "p_c"]].to_numpy() * p[:, 1:], axis=1))
    np.testing.assert_allclose(pred, want, rtol=1e-12)
    with pytest.raises(KeyError, match="no group 'delta'"):
        fits["delta"]
    # several by columns give tuple labels; per-row splits may name a column (score-only test points here)
    df2 = df.assign(domain="web", held=df.index % 6 == 0)
    two = jl.fit_frame(
        jl.laws.dml(3), df2, x=["p_a", "p_b", "p_c"], y="loss", by=["size", "domain"], test="held", dtype="float64"
    )
    assert two.labels == (("alpha", "web"), ("beta", "web"), ("gamma", "web"))
    held = df.index % 6 == 0
    np.testing.assert_array_equal(two.result.n_test, [held[df["size"] == s].sum() for s in ("alpha", "beta", "gamma")])
    err = np.abs(two.predict(df2) - df["loss"].to_numpy())
    for i, s in enumerate(("alpha", "beta", "gamma")):
        np.testing.assert_allclose(two.result.test_mae[i], err[held & (df["size"] == s)].mean(), rtol=1e-9)


def test_fit_frame_refuses_bad_tables_naming_the_group():
    df, _, _ = frame()
    law = jl.laws.dml(3)
    with pytest.raises(ValueError, match=r"no column\(s\) \['p_d'\]"):
        jl.fit_frame(law, df, x=["p_a", "p_b", "p_d"], y="loss", by="size")
    with pytest.raises(ValueError, match="missing values"):
        jl.fit_frame(law, df.assign(size=df["size"].where(df.index != 3)), x=["p_a", "p_b", "p_c"], y="loss", by="size")
    bad = df.copy()
    bad.loc[bad["size"] == "gamma", "p_a"] += 0.01
    with pytest.raises(ValueError, match="size='gamma'.*simplex_atol"):  # strict: a bad group refuses the table
        jl.fit_frame(law, bad, x=["p_a", "p_b", "p_c"], y="loss", by="size", strict=True)
    with pytest.raises(ValueError, match="size='alpha'.*4 free parameters"):
        jl.fit_frame(
            law, df[(df["size"] != "alpha") | (df.index < 5)], x=["p_a", "p_b", "p_c"], y="loss", by="size", strict=True
        )
    with pytest.raises(ValueError, match="one y column"):
        jl.fit_frame(law, df.assign(loss2=df["loss"]), x=["p_a", "p_b", "p_c"], y=["loss", "loss2"], by="size")
    with pytest.raises(ValueError, match="DataFrame"):
        jl.fit_frame(law, np.zeros((3, 4)), x=["p_a"], y="loss")


def _result(law, params):
    params = np.asarray(params, np.float64)
    z = np.zeros(params.shape[:-1])
    return FitResult(
        law=law,
        params=params,
        objective=z,
        mse=z,
        r2=z + 1,
        n_points=z + 9,
        converged=z == 0,
        success=z == 0,
        init_objectives=z[..., None],
        selection="trajectory",
    )


def test_paper_names_against_hand_conversions():
    chin = _result(jl.laws.chinchilla(), [[0.5974, 6.1693, 7.6700, 0.3473, 0.3672], [0.0, 5.0, 6.0, 0.3, 0.4]])
    paper = chin.paper
    assert list(paper) == ["E", "A", "B", "alpha", "beta"]
    np.testing.assert_allclose(paper["E"], [np.exp(0.5974), 1.0])
    np.testing.assert_allclose(paper["A"], [np.exp(6.1693), np.exp(5.0)])
    np.testing.assert_allclose(paper["B"], [np.exp(7.67), np.exp(6.0)])
    np.testing.assert_allclose(paper["beta"], [0.3672, 0.4])
    one = chin[0].paper
    assert one["A"].shape == () and abs(float(one["A"]) - 477.8) < 0.1  # Epoch's A
    # the static law: c = e^l, b = e^b, A_j = -t_j and A_m = 0; same predictions as Aioli's formula
    red = np.array([0.7, -0.4, -1.3, 0.6])
    static = _result(jl.laws.log_linear(3), red).paper
    assert list(static) == ["c", "b", "A1", "A2", "A3"]
    np.testing.assert_allclose([static[k] for k in static], [np.exp(0.7), np.exp(-0.4), 1.3, -0.6, 0.0])
    p = np.random.default_rng(3).dirichlet(np.ones(3), 8)
    aioli = static["c"] + static["b"] * np.exp(-(p @ np.array([static["A1"], static["A2"], static["A3"]])))
    with jax.enable_x64(True):
        np.testing.assert_allclose(aioli, np.asarray(jl.laws.log_linear(3).predict(red, p)), rtol=1e-12)
    # a law without a converter keeps its own names
    assert list(_result(jl.laws.static_two_group(), [2.0, -1.0, 0.5]).paper) == ["c", "k", "b"]


def test_log_linear_shares_one_predict_and_picks_its_own_group_from_data():
    m = 4
    laws = [jl.laws.log_linear(m, own=i) for i in range(m)] + [jl.laws.log_linear(m), jl.laws.log_linear(m, None)]
    assert all(law.predict is laws[0].predict for law in laws) and laws[0].predict is jl.laws.log_linear(3).predict
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(m), 15)
    key = jax.random.key(2)
    for own in range(m):
        loss = 2.0 + np.exp(0.3 - 1.5 * p[:, own] + 0.1 * p[:, (own + 1) % m])
        assert jl.laws.auto_own(p, loss) == own
        auto = jl.laws.log_linear(m).init_grid(key, p, loss)
        np.testing.assert_array_equal(auto, jl.laws.log_linear_inits(m, key, own=own))
        # explicit own is what it was: the original's grid for that index, whatever the data
        np.testing.assert_array_equal(
            jl.laws.log_linear(m, own=1).init_grid(key, p, loss), jl.laws.log_linear_inits(m, key, own=1)
        )
    # a constant loss correlates with nothing: no index is started negative
    assert jl.laws.auto_own(p, np.full(15, 3.0)) is None
    for bad in (m, -1, 1.5, "first", True):
        with pytest.raises(ValueError, match="own must be"):
            jl.laws.log_linear(m, own=bad)


@pytest.mark.slow
def test_predict_accepts_what_the_fit_accepted_with_a_wider_simplex_atol():
    """A fit given rounded mixtures with simplex_atol=0.05 predicts at those same rows (its own tolerance),
    while a result from a default-tolerance fit still refuses them."""
    r, y = data()
    rounded = np.round(r[0], 2)
    res = jl.fit(jl.laws.dml(3), rounded, y[0], simplex_atol=0.05)
    assert res.simplex_atol == 0.05
    pred = res.predict(rounded)
    assert pred.shape == (12,) and np.all(np.isfinite(pred))
    strict = jl.fit(jl.laws.dml(3), r[0], y[0])
    with pytest.raises(ValueError, match="simplex_atol"):
        strict.predict(rounded)
