"""The public-data loaders of the benchmark (benchmarks/public): shapes, row counts, sums, and agreement with
independent references (the shared originals, Epoch's published optimum, a third party's processing of the
same Data Mixing Laws runs). Data that may not be bundled are skipped cleanly when absent."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import public as P  # noqa: E402
from public import dml, sources  # noqa: E402
from public import protocol as pt

import jaxlaws as jl  # noqa: E402


def _load_or_skip(fn, *args):
    try:
        return fn(*args)
    except P.DataUnavailable as e:
        pytest.skip(str(e))


def _shared(rel: str) -> Path:
    path = sources.shared_dir() / rel
    if not path.exists():
        pytest.skip(f"shared original {path} absent")
    return path


# ------------------------------------------------------------------------------------------------ bundled (MIT)


def test_regmix_bundled_shapes_sums_and_source():
    r = P.load_regmix()
    assert r.train.x.shape == (512, 17) and r.test.x.shape == (256, 17)
    assert r.train.y.shape == (512,) and r.test.y.shape == (256,)
    assert "pile_cc" in r.domains and len(set(r.domains)) == 17
    sums = np.concatenate([r.train.x.sum(1), r.test.x.sum(1)])
    # Published rounded to 3 decimals: rows are off 1 by at most 0.004, and many are off at all.
    assert 0.995 <= sums.min() and sums.max() <= 1.004 and np.sum(np.abs(sums - 1) > 1e-9) > 100
    assert np.all(np.isfinite(r.train.y)) and 3.0 < r.train.y.min() and r.train.y.max() < 8.0
    assert "MIT" in r.source and "regmix" in r.source


def test_regmix_bundle_equals_the_original_files():
    for split, part in (("train", P.load_regmix().train), ("test", P.load_regmix().test)):
        mix = pd.read_csv(_shared(f"regmix/{split}_mixture_1m.csv"))
        loss = pd.read_csv(_shared(f"regmix/{split}_pile_loss_1m.csv"))
        np.testing.assert_array_equal(part.x, mix.drop(columns="index").to_numpy(np.float64))
        np.testing.assert_array_equal(part.y, loss["metric/the_pile_pile_cc_val_loss"].to_numpy(np.float64))


def test_scalebench_bundled_shapes_sums_and_copy():
    splits, source = P.load_scalebench()
    assert list(splits) == ["70M", "160M", "305M", "410M"] and "MIT" in source
    for s in splits.values():
        assert s.x_train.shape == (20, 5) and s.y_train.shape == (20, 5)
        assert s.x_test.shape == (6, 5) and s.y_test.shape == (6, 5)
        np.testing.assert_allclose(s.x_train.sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(s.x_test.sum(1), 1.0, atol=1e-12)
    for split in ("train", "test"):
        original = _shared(f"scalebench-domain-mixture/{split}-00000-of-00001.parquet").read_bytes()
        assert (sources.BUNDLED / f"scalebench_domain_mixture_{split}.parquet").read_bytes() == original


# ------------------------------------------------------------------------------------------------ not bundled


def test_chinchilla_points_reach_epochs_objective_at_epochs_parameters():
    c = _load_or_skip(P.load_chinchilla)
    raw = pd.read_csv(_shared("chinchilla/svg_extracted_data.csv"))
    assert len(raw) == 245 and c.x.shape == (240, 2) and c.y.shape == (240,)
    assert c.y.max() < np.sort(raw["loss"].to_numpy())[-5]  # the 5 largest losses are the ones dropped
    np.testing.assert_allclose(c.x[:, 1] * 6 * c.x[:, 0], raw["Training FLOP"].to_numpy()[np.isin(raw["loss"], c.y)])
    # Epoch's published optimum (rounded to 4 digits) scores within 0.1% of its published objective.
    e = P.chinchilla.EPOCH_PARAMS
    theta = np.array([np.log(e["E"]), np.log(e["A"]), np.log(e["B"]), e["alpha"], e["beta"]])
    r = np.log(c.y) - np.log(pt.chinchilla_predict(theta, c.x))
    a = np.abs(r)
    obj = np.sum(np.where(a < 1e-3, 0.5 * r * r, 1e-3 * (a - 5e-4)))
    assert obj == pytest.approx(P.chinchilla.EPOCH_OBJECTIVE, rel=1e-3)


def test_dml_counts_sums_and_run_exclusion():
    five = _load_or_skip(P.load_dml, "5Mix")
    rp = P.load_dml("RedPajama")
    assert five.groupby("model_size", sort=False).size().to_dict() == {"70M": 26, "160M": 26, "305M": 26, "410M": 26}
    assert rp.groupby("model_size", sort=False).size().to_dict() == {"70M": 40, "160M": 20, "305M": 20, "410M": 20}
    for df, m in ((five, 5), (rp, 7)):
        p = df.filter(like="p_").to_numpy()
        assert p.shape[1] == m
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)  # the 1.0199 mixture is run 999, excluded
    with_999 = P.load_dml("RedPajama", max_run_id=10**6)
    assert len(with_999) == len(rp) + 3 and with_999.filter(like="p_").sum(axis=1).max() == pytest.approx(
        1.0199, abs=1e-4
    )
    # The total is the coarse groups weighted by the Pile validation weights, which sum to 1.
    w = dml.valid_weights()
    assert sum(w.values()) == pytest.approx(1.0)
    big = np.array([sum(w[d] for d in doms) for doms in dml.GROUPS.values()])
    np.testing.assert_allclose(
        five.filter(like="loss_").drop(columns="loss_total").to_numpy() @ big, five["loss_total"].to_numpy(), rtol=1e-12
    )
    with pytest.raises(ValueError, match="setting"):
        P.load_dml("3Mix")


def test_dml_group_losses_equal_scalebench_processing_of_the_same_runs():
    """scalebench's split was built by a third party from the same 5Mix runs at step 30,000."""
    five = _load_or_skip(P.load_dml, "5Mix")
    splits, _ = P.load_scalebench()
    cols = [f"loss_{g}" for g in dml.GROUPS]
    pcols = [f"p_{d}" for d in dml.DOMAINS["5Mix"]]
    matched = 0
    for size, s in splits.items():
        ours = five[five["model_size"] == size]
        for x, y in zip(np.vstack([s.x_train, s.x_test]), np.vstack([s.y_train, s.y_test])):
            row = ours[np.all(np.isclose(ours[pcols].to_numpy(), x, atol=1e-12), axis=1)]
            assert len(row) == 1
            np.testing.assert_allclose(row[cols].to_numpy()[0], y, rtol=1e-9)
            matched += 1
    assert matched == 104


def test_missing_unlicensed_data_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXLAWS_PUBLIC_DATA", str(tmp_path))
    with pytest.raises(P.DataUnavailable, match="not bundled.*licence"):
        P.load_chinchilla()
    with pytest.raises(P.DataUnavailable, match="JAXLAWS_PUBLIC_DATA"):
        P.load_dml("5Mix")
    assert P.load_regmix().train.x.shape == (512, 17)  # bundled data need no shared folder


# ------------------------------------------------------------------------------------------------ protocol


def test_folds_partition_the_points():
    for folds, n in ((pt.loo(7), 7), (pt.kfold(12, 4, seed=3), 12)):
        for tr, te in zip(folds.train, folds.test):
            assert sorted(np.concatenate([tr, te]).tolist()) == list(range(n))
        assert sorted(folds.test.ravel().tolist()) == list(range(n))  # each point held out exactly once
    assert np.array_equal(pt.kfold(12, 4, seed=3).test, pt.kfold(12, 4, seed=3).test)
    with pytest.raises(ValueError, match="dividing"):
        pt.kfold(10, 4, seed=0)


def test_ols_recovers_a_linear_law_on_the_simplex(rng):
    x = rng.dirichlet(np.ones(4), size=30)
    y = 2.0 + x @ np.array([0.3, -0.5, 0.1, 0.7])  # intercept 2 plus a linear function of p
    coef = pt.ols_fit(x, y)
    np.testing.assert_allclose(pt.ols_predict(coef, x), y, atol=1e-12)
    np.testing.assert_allclose(coef, [2.7, 0.3 - 0.7, -0.5 - 0.7, 0.1 - 0.7], atol=1e-10)  # p_4 = 1 - sum


def test_numpy_predictions_match_the_jax_laws(rng):
    x = rng.dirichlet(np.ones(5), size=8)
    theta = rng.normal(size=(3, 6))
    law = jl.laws.log_linear(5)
    want = np.stack([np.asarray(law.predict(t, x)) for t in theta])
    np.testing.assert_allclose(pt.static_predict(theta, x), want, rtol=1e-5)
    xc = np.column_stack([10 ** rng.uniform(7, 10, 6), 10 ** rng.uniform(9, 11, 6)])
    th = np.array([0.5, 6.0, 7.0, 0.3, 0.28])
    np.testing.assert_allclose(
        pt.chinchilla_predict(th, xc), np.asarray(jl.laws.chinchilla().predict(th, xc)), rtol=1e-5
    )


def test_spearman_and_normalise(rng):
    a, b = rng.normal(size=20), rng.normal(size=20)
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    assert pt.spearman100(a, b) == pytest.approx(100 * np.corrcoef(ra, rb)[0, 1])
    x = np.array([[0.5, 0.502], [0.2, 0.797]])
    xn, off = pt.normalise_rows(x)
    np.testing.assert_allclose(xn.sum(1), 1.0)
    assert off == pytest.approx(0.003)


# ------------------------------------------------------------------------------------------------ the engine on them


@pytest.mark.slow
def test_engine_reproduces_epochs_optimum_in_float64():
    """jaxlaws' Chinchilla law with its default objective (Huber(1e-3) on log L) reaches Epoch's published
    objective 0.0010182740 to its last published digit (|diff| <= 1e-10) and Epoch's parameters to their 4
    published digits. 64 seeded inits of Hoffmann et al.'s grid (the full 4,500 give the same optimum)."""
    c = _load_or_skip(P.load_chinchilla)
    law = jl.laws.chinchilla()
    grid = law.init_grid(None, c.x, c.y)
    inits = grid[np.random.default_rng(0).choice(len(grid), 64, replace=False)]
    res = jl.fit(law, c.x, c.y, inits=inits, dtype="float64")
    assert abs(float(res.objective) - P.chinchilla.EPOCH_OBJECTIVE) <= 1e-10
    # Independent score of the returned parameters (NumPy, float64): the engine reports what it reached.
    r = np.log(c.y) - np.log(pt.chinchilla_predict(res.params, c.x))
    a = np.abs(r)
    assert float(res.objective) == pytest.approx(np.sum(np.where(a < 1e-3, 0.5 * r * r, 1e-3 * (a - 5e-4))), rel=1e-12)
    for name, want in P.chinchilla.EPOCH_PARAMS.items():
        assert float(res.paper[name]) == pytest.approx(want, rel=6e-4), name  # 4 significant digits


def _huber(r, delta):
    a = np.abs(r)
    return float(np.sum(np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


@pytest.mark.slow
def test_cross_validate_on_real_mixtures_agrees_with_a_scipy_fold_loop():
    """scalebench 70M, domain 1 (20 mixtures, 6 parameters), 4 folds, 16 inits, unregularised Huber(0.02):
    every fold fit of jl.cross_validate (one batched call) is checked against SciPy's TRF fold by fold."""
    from baselines import scipy_fit as S

    s = P.load_scalebench()[0]["70M"]
    x, y = s.x_train, s.y_train[:, 0]
    inits = jl.laws.log_linear_inits(5, 0, own=0, n_random=2)[::25]
    ids = np.arange(20) % 4
    cv = jl.cross_validate(
        jl.laws.log_linear(5),
        x,
        y,
        ids,
        inits=inits,
        objective=jl.huber(0.02),
        dtype="float64",
        bounds=None,
        penalty=None,
    )
    assert np.array_equal(cv.folds, ids) and cv.fits.params.shape == (4, 6)
    for k in range(4):
        tr, te = ids != k, ids == k
        theta = cv.fits.params[k]
        # Held-out points take no part in the fit: its objective is that of the training points alone.
        assert float(cv.fits.objective[k]) == pytest.approx(
            _huber(y[tr] - pt.static_predict(theta, x[tr]), 0.02), rel=1e-10
        )
        # Out-of-fold predictions are the fold fit's predictions (NumPy, independent of JAX) of its own fold.
        np.testing.assert_allclose(cv.predictions[te], pt.static_predict(theta, x[te]), rtol=1e-12)
        # As good as SciPy from the same inits, and SciPy started at it finds nothing better (a local minimum).
        # Tolerance 1e-5 relative: on fold 3 jaxlaws stops 2e-6 above SciPy's optimum.
        sp = S.huber_least_squares("static", x[tr], y[tr], inits, 0.02)
        assert float(cv.fits.objective[k]) <= sp.objective * (1 + 1e-5)
        polish = S.huber_least_squares("static", x[tr], y[tr], theta[None], 0.02)
        assert polish.objective >= float(cv.fits.objective[k]) * (1 - 1e-5)
    assert cv.mae == pytest.approx(np.mean(np.abs(cv.predictions - y)), rel=1e-12)
