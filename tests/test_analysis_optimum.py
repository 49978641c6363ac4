"""Optimal mixtures from the bundled original static fits (the original analysis README) and the simplex solver."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlaws
from jaxlaws.analysis import optimum

LAW_RESULTS = Path(jaxlaws.__file__).parent / "data" / "aioli" / "law_results"


def _static(setting):
    d = json.loads((LAW_RESULTS / setting / "params_static.json").read_text())
    return {g: {int(s): np.array(v) for s, v in d[g]["5000"].items() if v} for g in d}


def test_two_group_reference_optimum():
    table = optimum.optimum_table(_static("arxiv_stackexchange"), ("arxiv", "stackexchange"), "two_group")
    per_seed = table[table.seed != "mean"]
    # the original analysis README: closed form per seed, and its mean 0.389
    np.testing.assert_allclose(per_seed["p1_closed_form"].astype(float), [0.404, 0.407, 0.357, 0.385, 0.390], atol=6e-4)
    assert table.iloc[-1]["p1_closed_form"] == pytest.approx(0.389, abs=5e-4)
    # numerical solver agrees with the closed form
    np.testing.assert_allclose(per_seed["p_arxiv"].astype(float), per_seed["p1_closed_form"].astype(float), atol=1e-6)
    assert not per_seed["clipped"].any()
    # seed 0: predicted L1 + L2 at the optimum vs 50/50 (the original analysis README: 6.011 vs 6.023)
    assert per_seed.iloc[0]["total_loss"] == pytest.approx(6.011, abs=6e-4)
    assert per_seed.iloc[0]["uniform_loss"] == pytest.approx(6.023, abs=6e-4)


@pytest.mark.slow
def test_three_group_reference_optimum():
    groups = ("arxiv", "book", "stackexchange")
    table = optimum.optimum_table(_static("arxiv_books_stackexchange"), groups)
    per_seed = table[table.seed != "mean"][[f"p_{g}" for g in groups]].to_numpy(float)
    expected = np.array(
        [
            (0.246, 0.277, 0.477),
            (0.276, 0.268, 0.456),
            (0.229, 0.273, 0.498),
            (0.249, 0.291, 0.460),
            (0.276, 0.270, 0.454),
        ]
    )
    np.testing.assert_allclose(per_seed, expected, atol=1.5e-3)  # spec used a 1e-3 grid
    np.testing.assert_allclose(per_seed.mean(0), (0.255, 0.276, 0.469), atol=1e-3)
    assert table.iloc[0]["total_loss"] == pytest.approx(10.48, abs=6e-3)
    assert table.iloc[0]["uniform_loss"] == pytest.approx(10.52, abs=6e-3)


@pytest.mark.slow
def test_solver_matches_dense_grid_and_eg():
    params = _static("arxiv_books_stackexchange")
    theta = np.stack([params[g][0] for g in ("arxiv", "book", "stackexchange")])
    # brute force on a fine grid (float64 numpy, independent of the solver)
    g = np.linspace(0, 1, 801)
    p1, p2 = np.meshgrid(g, g, indexing="ij")
    ok = p1 + p2 <= 1
    tot = sum(np.exp(theta[i, 0]) + np.exp(theta[i, 1] + theta[i, 2] * p1 + theta[i, 3] * p2) for i in range(3))
    tot = np.where(ok, tot, np.inf)
    i, j = np.unravel_index(np.argmin(tot), tot.shape)
    with jax.enable_x64(True):
        for method in ("projected", "eg"):
            p, val = optimum.simplex_minimise(
                optimum.log_linear_losses, jnp.asarray(theta[None]), method=method, steps=2000, lr=0.2
            )
            np.testing.assert_allclose(np.asarray(p)[0, :2], [g[i], g[j]], atol=2e-3)
            assert float(val[0]) <= tot[i, j] + 1e-9


def test_projection_is_euclidean():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        for _ in range(20):
            v = rng.normal(size=4) * 2
            p = np.asarray(optimum.project_simplex(jnp.asarray(v)))
            assert p.min() >= 0 and p.sum() == pytest.approx(1.0)
            # KKT of min ||p - v||^2 on the simplex: v - p = theta on the support, <= theta off it
            theta = (v - p)[p > 0]
            np.testing.assert_allclose(theta, theta[0], atol=1e-12)
            assert np.all((v - p)[p == 0] <= theta[0] + 1e-12)


def test_boundary_optimum_and_clipping():
    # group 1 benefits hugely from its own data: the closed form leaves [0, 1] and is clipped
    clipped, raw = optimum.two_group_optimum(-8.0, 2.0, -0.1, -3.0)
    assert raw > 1 and clipped == 1.0
    theta = np.array([[[2.5, -8.0, 2.0], [3.0, -0.1, -3.0]]])
    with jax.enable_x64(True):
        p, _ = optimum.simplex_minimise(optimum.two_group_losses, jnp.asarray(theta))
    np.testing.assert_allclose(np.asarray(p)[0], [1.0, 0.0], atol=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same sign"):
        optimum.two_group_optimum(-1.0, 0.0, 0.5, 0.0)
    with pytest.raises(ValueError, match=r"\(S, m, P\)"):
        optimum.simplex_minimise(optimum.log_linear_losses, jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="positive"):
        optimum.simplex_minimise(optimum.log_linear_losses, jnp.ones((1, 3, 4)), weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="form"):
        optimum.optimum_table({}, ("a", "b"), "bogus")
