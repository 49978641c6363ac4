"""``influence``: the implicit Jacobian of the predicted optimum w.r.t. each run's losses and weight, against
central finite differences of (refit + optimum) in float64 (the refit: Newton on the written-out objective,
``tests/_refit.py``) on synthetic sweeps drawn from Aioli's published static fits
(``jaxlaws/data/aioli/law_results``), m=2 (own-share law) and m=3 (reduced log-linear law)."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _refit import central, newton, objective, rel_err

import jaxlaws
from jaxlaws.analysis.influence import group_losses_fn, influence
from jaxlaws.analysis.optimum import optimal_mixture, two_group_optimum
from jaxlaws.fitting.solve import RESULTS
from jaxlaws.laws import log_linear, static_two_group
from jaxlaws.laws.static import DEFAULT_RIDGE

LAW_RESULTS = Path(jaxlaws.__file__).parent / "data" / "aioli" / "law_results"


def _truth(setting, groups, seed=0):
    d = json.loads((LAW_RESULTS / setting / "params_static.json").read_text())
    return np.stack([np.asarray(d[g]["5000"][str(seed)], np.float64) for g in groups])


def _sweep(law, theta, n, seed, noise=0.003):
    """``n`` Dirichlet mixtures and every group's loss under ``theta`` plus Gaussian noise (seeded)."""
    rng = np.random.default_rng(seed)
    m = theta.shape[0]
    x = rng.dirichlet(np.full(m, 2.0), size=n)
    losses = group_losses_fn(law, m)
    y = np.stack([np.asarray(losses(jnp.asarray(theta), jnp.asarray(p))) for p in x])
    return x, y + noise * rng.normal(size=y.shape)


def _refit_optimum(law, x, theta0):
    """``(y, w) -> p*``: every group refitted from ``theta0 (m, P)`` by Newton on the written-out objective
    (Huber(0.02) plus the law's default ridge, :mod:`_refit`), then the optimum (forward only)."""
    m = x.shape[1]
    xs = jnp.asarray(x.T[:, :, None] if law.x_dim == 1 else np.broadcast_to(x, (m,) + x.shape))
    losses = group_losses_fn(law, m)
    pen = [law.param_names.index(e) for e in law.exponents] if law.default_penalty is not None else []
    lam = DEFAULT_RIDGE if pen else 0.0

    @jax.jit
    def f(y, w):
        def one(xi, yi, th):
            return newton(objective(law.predict, xi, yi, w, 0.02, False, lam, pen), th)

        return optimal_mixture(losses, jax.vmap(one)(xs, y.T, theta0)).p

    return lambda y, w: np.asarray(f(jnp.asarray(y), jnp.asarray(w)))


def _check_against_finite_differences(law, x, y, inits):
    n, m = y.shape
    res = influence(law, x, y, inits)
    assert np.all(np.asarray(res.fit_result) == RESULTS.successful)
    assert not np.asarray(res.optimum.active).any() and float(res.optimum.kkt_residual) < 1e-10
    # the finite differences refit from the fitted laws (the same optimum, reached to round-off)
    f = _refit_optimum(law, x, jnp.asarray(res.params))
    w = np.ones(n)
    np.testing.assert_allclose(f(y, w), np.asarray(res.p), atol=1e-10)
    fd_y = central(lambda yy: f(yy, w), y, 1e-5)
    fd_w = central(lambda ww: f(y, ww), w, 1e-5)
    d_loss, d_weight = np.asarray(res.d_loss), np.asarray(res.d_weight)
    assert d_loss.shape == (m, n, m) and d_weight.shape == (m, n)
    assert rel_err(d_loss, fd_y) < 1e-4 and rel_err(d_weight, fd_w) < 1e-4
    # leaving each run out: the exact refit, against the reference refit with that run's weight 0
    loo = np.stack([f(y, np.where(np.arange(n) == r, 0.0, 1.0)) for r in range(n)]) - np.asarray(res.p)
    np.testing.assert_allclose(np.asarray(res.loo), loo, atol=1e-6)  # the solver stops at its tolerance
    assert np.all(np.asarray(res.loo_result) == RESULTS.successful)
    np.testing.assert_allclose(d_loss.sum(axis=0), 0.0, atol=1e-10)  # the optimum stays on the simplex
    return res


@pytest.mark.slow
def test_influence_m3_matches_finite_differences_of_refit_and_optimum():
    groups = ("arxiv", "book", "stackexchange")
    law = log_linear(3)
    with jax.enable_x64(True):
        theta = _truth("arxiv_books_stackexchange", groups)
        x, y = _sweep(law, theta, 10, seed=1)
        res = _check_against_finite_differences(law, x, y, jnp.asarray(theta + 0.02)[:, None, :])
        table = res.to_frame(groups, runs=[f"r{i}" for i in range(10)])
        assert list(table.columns[:2]) == ["run", "dp_arxiv/dL_arxiv"] and len(table) == 10
        np.testing.assert_allclose(table["influence"], np.sqrt((np.asarray(res.d_loss) ** 2).sum(axis=(0, 2))))
        np.testing.assert_allclose(table["drop_dp_book"], -np.asarray(res.d_weight)[1])
        np.testing.assert_allclose(table["loo_dp_book"], np.asarray(res.loo)[:, 1])
        assert (table["loo_fit"] == "").all()


@pytest.mark.slow
def test_influence_m2_own_share_law_matches_finite_differences_and_closed_form():
    law = static_two_group()
    with jax.enable_x64(True):
        theta = _truth("arxiv_stackexchange", ("arxiv", "stackexchange"))
        x, y = _sweep(law, theta, 8, seed=2)
        res = _check_against_finite_differences(law, x, y, jnp.asarray(theta * 1.01)[:, None, :])
        (_, k1, b1), (_, k2, b2) = np.asarray(res.params)
        np.testing.assert_allclose(float(res.p[0]), two_group_optimum(k1, b1, k2, b2)[1], atol=1e-12)


@pytest.mark.slow
def test_influence_vmaps_over_seeds_and_checks_inputs():
    law = log_linear(3)
    groups = ("arxiv", "book", "stackexchange")
    with jax.enable_x64(True):
        theta = _truth("arxiv_books_stackexchange", groups)
        data = [_sweep(law, theta, 6, seed=s) for s in (3, 4)]
        xs, ys = (jnp.asarray(np.stack(a)) for a in zip(*data))
        inits = jnp.asarray(theta)[:, None, :]
        both = jax.vmap(lambda x, y: influence(law, x, y, inits))(xs, ys)
        assert both.d_loss.shape == (2, 3, 6, 3)
        one = influence(law, data[1][0], data[1][1], inits)
        np.testing.assert_allclose(np.asarray(both.d_loss[1]), np.asarray(one.d_loss), rtol=1e-8, atol=1e-12)
        with pytest.raises(ValueError, match="index a batched result"):
            both.to_frame(groups)
        x, y = data[0]
        with pytest.raises(ValueError, match=r"y must be \(n, m\)"):
            influence(law, x, y[:, :2], inits)
        with pytest.raises(ValueError, match="inits must be"):
            influence(law, x, y, jnp.ones((3, 1, 5)))
        with pytest.raises(ValueError, match="x_dim"):
            influence(log_linear(4), x, y, inits)
        with pytest.raises(ValueError, match="weights must be"):
            influence(law, x, y, inits, weights=np.ones(5))


@pytest.mark.slow
def test_leave_one_out_refit_that_loses_identifiability_is_named():
    # three mixtures for the three parameters of the own-share law: without any one run a group's law is not
    # determined (two points, three parameters), its refit has a singular Hessian, and the table says so
    law = static_two_group()
    with jax.enable_x64(True):
        theta = _truth("arxiv_stackexchange", ("arxiv", "stackexchange"))
        x = np.array([[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]])
        losses = group_losses_fn(law, 2)
        y = np.stack([np.asarray(losses(jnp.asarray(theta), jnp.asarray(p))) for p in x])
        res = influence(law, x, y, jnp.asarray(theta)[:, None, :])
        assert np.all(np.asarray(res.fit_result) == RESULTS.successful)
        assert np.all(np.asarray(res.loo_result) == RESULTS.singular_hessian)
        table = res.to_frame(("arxiv", "stackexchange"))
        assert table["loo_fit"].str.contains("arxiv: singular_hessian").all()
