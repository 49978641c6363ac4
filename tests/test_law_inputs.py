"""Laws without friction: inputs matched by name (DataFrames, dicts, fit_frame), parameters by name
(``Law.flatten`` / ``unflatten``), ``predict`` checked by ``jax.eval_shape`` before compiling, shape errors
in the user's terms, ``SingleIndex(start=0)``, groups that cannot be fitted skipped, laws without an init grid.
Fits are small (a few inits, <= 40 points)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxlaws as jl
from jaxlaws.fitting import validate

EPOCH = np.array([np.log(1.8172), np.log(482.01), np.log(2085.43), 0.3478, 0.3658])  # chinchilla e, a, b, alpha, beta


def chinchilla_table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    N, D = 10 ** rng.uniform(7.5, 10, n), 10 ** rng.uniform(9, 11.5, n)
    loss = np.exp(EPOCH[0]) + np.exp(EPOCH[1]) / N ** EPOCH[3] + np.exp(EPOCH[2]) / D ** EPOCH[4]
    return pd.DataFrame({"D": D, "loss": loss * np.exp(rng.normal(0, 0.01, n)), "N": N})


def test_bundled_laws_name_their_inputs():
    assert jl.laws.chinchilla().inputs == ("N", "D")
    assert jl.laws.dml(3).inputs == jl.laws.log_linear(3).inputs == ("p1", "p2", "p3")
    assert jl.laws.dynamic_linear(4).inputs == ("p1", "p2", "p3", "p4")
    assert jl.laws.static_two_group().inputs == ("p",) and jl.laws.scaled_method(2).inputs == ("F1", "F2")
    for bad in (("N",), ("N", "N"), ("N", "")):
        with pytest.raises(ValueError, match="inputs must be 2 distinct column names"):
            jl.laws.Law("mine", ("a",), lambda p, x: p[0] * x[:, 0], x_dim=2, design=lambda x: x[:, :1], inputs=bad)


def test_x_by_name_in_any_column_order():
    law = jl.laws.chinchilla()
    df = chinchilla_table()
    want = df[["N", "D"]].to_numpy()
    for x in (df, df[["D", "N"]], df[["N", "D"]], {"D": df["D"].to_numpy(), "N": df["N"].to_numpy()}):
        np.testing.assert_array_equal(validate.check_x(law, x), want)
    # a batch: a list of tables (ragged allowed), or a dict of (B, n) columns
    got = validate.check_x(law, {"N": np.stack([df["N"]] * 2), "D": np.stack([df["D"]] * 2)}, batched=True)
    np.testing.assert_array_equal(got, np.stack([want] * 2))
    assert isinstance(validate.named_x(law, [df, df[["D", "N"]]], batched=True), list)
    with pytest.raises(ValueError, match=r"no column\(s\) \['N'\]; the law's inputs are \['N', 'D'\]"):
        validate.check_x(law, df[["D", "loss"]])
    mine = jl.laws.Law("mine", ("a", "b"), lambda p, x: p[0] + p[1] * x[:, 0], x_dim=1, design=lambda x: x)
    with pytest.raises(ValueError, match="mine does not name its inputs.*inputs="):
        validate.check_x(mine, df[["N"]])
    np.testing.assert_array_equal(validate.check_x(mine, df[["N"]].to_numpy()), want[:, :1])  # arrays: by position


@pytest.mark.slow
def test_fit_frame_matches_columns_by_name():
    law = jl.laws.chinchilla()
    df = chinchilla_table()
    inits = law.init_grid(None, None, None)[::300]
    kw = dict(y="loss", inits=inits, dtype="float64")
    # the first fit of a configuration runs on the host, the next ones compiled: equal to round-off
    same = functools.partial(np.testing.assert_allclose, rtol=1e-10, atol=0)
    ref = jl.fit_frame(law, df, **kw)  # x defaults to the law's inputs
    assert ref.x == ("N", "D")
    for x in (["D", "N"], ["N", "D"], {"N": "N", "D": "D"}):
        same(jl.fit_frame(law, df, x, **kw).result.params, ref.result.params)
    renamed = df.rename(columns={"N": "params", "D": "tokens"})
    same(
        jl.fit_frame(law, renamed, ["params", "tokens"], **kw).result.params, ref.result.params
    )  # other names: in the law's order
    same(jl.fit_frame(law, renamed, {"D": "tokens", "N": "params"}, **kw).result.params, ref.result.params)
    # the columns went to N and D: the same as the plain array in the law's order, not as the swapped one
    arrays = dict(inits=inits, dtype="float64")
    want = jl.fit_batched(law, [df[["N", "D"]].to_numpy()], [df["loss"].to_numpy()], **arrays)
    same(ref.result.params, want.params)
    swapped = jl.fit_batched(law, [df[["D", "N"]].to_numpy()], [df["loss"].to_numpy()], **arrays)
    assert np.max(np.abs(swapped.params - want.params)) > 0.1
    with pytest.raises(ValueError, match="'D' has the name of the law's input 2 but is listed as input 1"):
        jl.fit_frame(law, renamed.assign(D=renamed["tokens"]), ["D", "params"], **kw)
    with pytest.raises(ValueError, match=r"missing \['D'\]"):
        jl.fit_frame(law, df, {"N": "N"}, **kw)
    with pytest.raises(ValueError, match="2 input"):
        jl.fit_frame(law, df, ["N"], **kw)
    with pytest.raises(ValueError, match="needs y="):
        jl.fit_frame(law, df)


def test_parameters_by_name_round_trip_and_trace():
    law = jl.laws.dml(3)
    theta = np.array([[2.0, -0.8, 0.3, 0.2], [1.0, 0.0, 0.1, 0.2]])
    d = law.unflatten(theta)
    assert list(d) == ["c", "t1", "t2", "t3"]
    np.testing.assert_array_equal(d["t2"], [0.3, 0.1])
    np.testing.assert_array_equal(law.flatten(d), theta)
    np.testing.assert_array_equal(law.flatten({"t3": 0.2, "c": 2.0, "t1": -0.8, "t2": 0.3}), theta[0])
    x = np.random.default_rng(0).dirichlet(np.ones(3), 5)

    def loss(named):  # a user's function of named parameters, through predict: jit and grad go through
        return jnp.sum(law.predict(law.flatten(named), x))

    with jax.enable_x64(True):
        named = {k: jnp.asarray(v) for k, v in law.unflatten(theta[0]).items()}
        g = jax.jit(jax.grad(loss))(named)
        np.testing.assert_allclose(g["c"], 5.0, rtol=1e-12)  # d/dc sum(c + ...) = n
        np.testing.assert_allclose(g["t1"], np.sum(x[:, 0] * np.exp(x @ theta[0, 1:])), rtol=1e-12)
        assert isinstance(jax.jit(law.flatten)(named), jax.Array)
    with pytest.raises(ValueError, match=r"missing \['t3'\]; unknown \['k'\]"):
        law.flatten({"c": 1.0, "t1": 0.0, "t2": 0.0, "k": 1.0})
    with pytest.raises(ValueError, match=r"4 parameters .* shape \(3,\)"):
        law.unflatten(np.zeros(3))


def _law(predict):
    return jl.laws.Law("mine", ("a", "b"), predict, x_dim=1, init_grid=lambda k, x, y: np.zeros((1, 2)))


@pytest.mark.parametrize(
    "predict, match",
    [
        (lambda p, x: p[0] + p[1] * x, r"must return shape \(7,\).*x \(7, 1\) float64 it returned shape \(7, 1\)"),
        (lambda p, x: jnp.sum(p[0] * x), r"must return shape \(7,\).*returned shape \(\)"),
        (lambda p, x: (p[0] * x[:, 0]).astype(jnp.float32), "must return float64.*returned float32"),
        (lambda p, x: x[:, 0] > p[0], "must return float64.*returned bool"),
        (lambda p: p, "must take two arguments, params and x"),
        (lambda p, x: (p[0] * x[:, 0], x[:, 0]), r"must return one array of shape \(7,\)"),
        (lambda p, x: p[0] * x[:, 0] + jnp.ones(3), r"failed with params \(2,\) and x \(7, 1\) float64"),
    ],
)
def test_check_predict_is_one_error_naming_law_and_shapes(predict, match):
    with pytest.raises(ValueError, match="law mine: predict" + ".*" + match):
        validate.check_predict(_law(predict), (7, 1), np.float64)


def test_check_predict_passes_the_bundled_laws():
    for law in (
        jl.laws.chinchilla(),
        jl.laws.dml(4),
        jl.laws.log_linear(3),
        jl.laws.scaled_method(3),
        jl.laws.static_two_group(),
    ):
        for dtype in (np.float32, np.float64):
            validate.check_predict(law, (6, law.x_dim), dtype)
    validate.check_predict(_law(lambda p, x: p[0] + p[1] * x[:, 0]), (7, 1))


def test_fit_batched_errors_report_the_shapes_given():
    law = jl.laws.dml(3)
    x = np.random.default_rng(0).dirichlet(np.ones(3), 8)
    with pytest.raises(ValueError, match=r"x must have shape \(B, n, 3\), got \(8, 3\); for one problem use"):
        jl.fit_batched(law, x, np.ones(8))
    with pytest.raises(
        ValueError, match=r"expects x with 3 column\(s\), i.e. shape \(B, n, 3\), got shape \(1, 8, 2\)"
    ):
        jl.fit_batched(law, x[None, :, :2], np.ones((1, 8)))
    with pytest.raises(ValueError, match=r"expects x with 3 column\(s\), i.e. shape \(n, 3\), got shape \(8,\)"):
        jl.fit(law, x[:, 0], np.ones(8))
    with pytest.raises(jl.FitInputError, match=r"problem 1 of the batch: .*got shape \(5, 2\)"):  # ragged
        jl.fit_batched(law, [x, x[:5, :2]], [np.ones(8), np.ones(5)])
    with pytest.raises(jl.FitInputError, match=r"problem 1 of the batch: .*y must have shape \(5,\).*got \(4,\)"):
        jl.fit_batched(law, [x, x[:5]], [np.ones(8), np.ones(4)])


@pytest.mark.slow
def test_single_index_with_no_head_fits_as_without_the_index():
    """A pure exp(linear) law, SingleIndex(start=0): the same optimum as the generic path (and as SciPy)."""
    from scipy.optimize import least_squares

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (20, 2))
    y = np.exp(0.3 + x @ np.array([-1.0, 0.5])) + rng.normal(0, 0.01, 20)
    feats = lambda x: jnp.concatenate([jnp.ones_like(x[:, :1]), x], axis=1)  # noqa: E731
    index = jl.laws.SingleIndex(0, feats, lambda h, z, x: jnp.exp(z))
    kw = dict(x_dim=2, init_grid=lambda k, x, y: jl.laws.grid([0.0, 1.0], [-1.0, 0.0], [0.0, 1.0]))
    with_index = jl.laws.Law("expl", ("b", "t1", "t2"), lambda p, x: jnp.exp(feats(x) @ p), index=index, **kw)
    plain = jl.laws.Law("expl", ("b", "t1", "t2"), lambda p, x: jnp.exp(feats(x) @ p), **kw)
    a = jl.fit(with_index, x, y, objective=jl.squared(), dtype="float64")
    b = jl.fit(plain, x, y, objective=jl.squared(), dtype="float64")
    np.testing.assert_allclose(a.params, b.params, rtol=1e-8, atol=1e-10)
    ref = least_squares(lambda p: np.exp(p[0] + x @ p[1:]) - y, np.zeros(3), xtol=1e-15, ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(a.params, ref.x, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_fit_frame_skips_groups_it_cannot_fit():
    rng = np.random.default_rng(1)
    rows = []
    for size, n in (("70M", 10), ("160M", 3), ("410M", 9)):  # 160M: 3 runs for dml(3)'s 4 parameters
        r = rng.dirichlet(np.ones(3), n)
        loss = 2.0 + np.exp(r @ np.array([-0.8, 0.3, 0.2])) + rng.normal(0, 0.005, n)
        rows += [{"size": size, "p1": a, "p2": b, "p3": c, "loss": v} for (a, b, c), v in zip(r, loss)]
    df = pd.DataFrame(rows)
    law = jl.laws.dml(3)
    fits = jl.fit_frame(law, df, y="loss", by="size", dtype="float64")
    assert fits.labels == ("410M", "70M") and list(fits.skipped) == ["160M"]
    assert "4 free parameters but a fit has only 3" in fits.skipped["160M"]
    assert "1 skipped" in repr(fits)
    alone = jl.fit_frame(law, df[df["size"] == "70M"], y="loss", dtype="float64")  # the same fit on its own
    np.testing.assert_allclose(fits["70M"].params, alone.result.params[0], rtol=1e-7, atol=1e-9)
    pred = fits.predict(df)
    assert np.all(np.isnan(pred[df["size"] == "160M"])) and np.all(np.isfinite(pred[df["size"] != "160M"]))
    with pytest.raises(KeyError, match="no group '160M'"):
        fits["160M"]
    with pytest.raises(ValueError, match="size='160M'.*4 free parameters"):
        jl.fit_frame(law, df, y="loss", by="size", strict=True)
    with pytest.raises(ValueError, match="no group of the table can be fitted: size='160M'"):
        jl.fit_frame(law, df[df["size"] == "160M"], y="loss", by="size")


def test_a_law_without_init_grid_needs_inits():
    law = jl.laws.Law("expl2", ("b", "t"), lambda p, x: jnp.exp(p[0] + p[1] * x[:, 0]), x_dim=1)
    assert law.init_grid is None
    x = np.linspace(0, 1, 8)
    y = np.exp(0.2 - 0.5 * x)
    res = jl.fit(law, x, y, inits=np.array([[0.0, 0.0], [1.0, -1.0]]), objective=jl.squared(), dtype="float64")
    np.testing.assert_allclose(res.params, [0.2, -0.5], atol=1e-6)
    with pytest.raises(ValueError, match=r"expl2 has no init_grid: pass inits=\(n_init, 2\)"):
        jl.fit(law, x, y)


@pytest.mark.slow
def test_fit_takes_a_table_by_column_name():
    law = jl.laws.dml(3)
    rng = np.random.default_rng(3)
    r = rng.dirichlet(np.ones(3), 10)
    y = 2.0 + np.exp(r @ np.array([-0.8, 0.3, 0.2]))
    df = pd.DataFrame({"p3": r[:, 2], "loss": y, "p1": r[:, 0], "p2": r[:, 1]})
    a = jl.fit(law, df, df["loss"], dtype="float64")
    b = jl.fit(law, r, y, dtype="float64")
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_allclose(a.predict(df), b.predict(r), rtol=1e-14)  # predict matches by name too
    with pytest.raises(ValueError, match="predict.*must return shape"):  # checked before compiling
        jl.fit(jl.laws.Law("wrong", ("a",), lambda p, x: p[0] * x, x_dim=3), r, y, inits=np.ones((1, 1)))


@pytest.mark.slow
def test_predict_uses_the_fits_mixture_options():
    """Rounded mixtures a normalize=True fit accepted are predicted (as the normalised rows), not refused."""
    law = jl.laws.dml(3)
    rng = np.random.default_rng(7)
    r = rng.dirichlet(np.ones(3), 12)
    y = 2.0 + np.exp(r @ np.array([-0.8, 0.3, 0.2])) + rng.normal(0, 0.005, 12)
    rounded = np.round(r, 2)
    assert np.max(np.abs(rounded.sum(axis=1) - 1)) > 1e-3
    res = jl.fit(law, rounded, y, normalize=True, dtype="float64")
    c, t = res.params[0], res.params[1:]
    unit = rounded / rounded.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(res.predict(rounded), c + np.exp(unit @ t), rtol=1e-13)
    with pytest.raises(ValueError, match="simplex_atol"):
        res.predict(rounded, normalize=False)
    np.testing.assert_allclose(
        res.predict(rounded, normalize=False, simplex_atol=0.05), c + np.exp(rounded @ t), rtol=1e-13
    )
    batch = jl.fit_batched(law, rounded[None], y[None], normalize=True, dtype="float64")
    np.testing.assert_allclose(batch.predict(rounded)[0], res.predict(rounded), rtol=1e-13)
