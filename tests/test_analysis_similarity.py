"""sim(), Spearman and the metrics against scipy / closed-form references."""

import numpy as np
import pytest
import scipy.stats

from jaxlaws.analysis import metrics
from jaxlaws.analysis.similarity import column_direction, cosine, rankdata, sim, sim_parts, spearman


@pytest.mark.parametrize("seed", range(5))
def test_rank_and_spearman_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 4, size=9).astype(float)  # many ties
    v = rng.normal(size=9)
    np.testing.assert_allclose(rankdata(u), scipy.stats.rankdata(u))
    assert spearman(u, v) == pytest.approx(scipy.stats.spearmanr(u, v).statistic, abs=1e-12)


def test_spearman_two_entries_is_plus_minus_one():
    assert spearman([1.0, 2.0], [3.0, 5.0]) == 1.0
    assert spearman([1.0, 2.0], [5.0, 3.0]) == -1.0


def test_spearman_constant_vector_raises():
    with pytest.raises(ValueError, match="constant"):
        spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])


def test_sim_matches_independent_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    u = a.sum(0) / np.linalg.norm(a.sum(0))
    v = b.sum(0) / np.linalg.norm(b.sum(0))
    expected = 0.5 * (u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)) + 0.5 * scipy.stats.spearmanr(u, v).statistic
    assert sim(b, a) == pytest.approx(expected, abs=1e-12)
    parts = sim_parts(b, a)
    assert parts["cosine"] == pytest.approx(cosine(u, v))


def test_sim_identity_scale_and_sign():
    a = np.array([[-0.6, -0.1, 0.05], [-0.2, -0.5, 0.0], [0.01, -0.3, -0.8]])
    assert sim(a, a) == pytest.approx(1.0)
    assert sim(3.7 * a, a) == pytest.approx(1.0)  # |b| cancels
    assert sim(-a, a) == pytest.approx(-1.0)  # sign(b) does not
    # m=2: Spearman is +-1, so sim = cos/2 +- 1/2
    d = np.diag([-0.2, -0.26])
    parts = sim_parts(np.diag([-0.3, -0.1]), d)
    assert abs(parts["spearman"]) == 1.0
    assert parts["sim"] == pytest.approx(0.5 * parts["cosine"] + 0.5 * parts["spearman"])


def test_sim_errors():
    with pytest.raises(ValueError, match="shape"):
        sim(np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="column sums are all zero"):
        sim(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.eye(2))
    with pytest.raises(ValueError, match="square"):
        column_direction(np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        sim(np.array([[np.nan, 0.0], [0.0, 1.0]]), np.eye(2))


def test_r2_correct_and_swapped():
    rng = np.random.default_rng(1)
    y = rng.normal(size=20)
    pred = 0.5 * y + rng.normal(scale=0.3, size=20)
    ss_res = np.sum((y - pred) ** 2)
    assert metrics.r2(y, pred) == pytest.approx(1 - ss_res / np.sum((y - y.mean()) ** 2))
    assert metrics.r2_swapped_as_original(y, pred) == pytest.approx(1 - ss_res / np.sum((pred - pred.mean()) ** 2))
    assert metrics.r2(y, pred) != pytest.approx(metrics.r2_swapped_as_original(y, pred))
    b = metrics.batched_metrics(np.stack([y, y]), np.stack([pred, y]))
    np.testing.assert_allclose(b["r2"], [metrics.r2(y, pred), 1.0])
    np.testing.assert_allclose(b["mse"], [metrics.mse(y, pred), 0.0])
    with pytest.raises(ValueError, match="shape"):
        metrics.r2(y, pred[:3])
