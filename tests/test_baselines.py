"""The benchmark baselines (benchmarks/baselines) minimise the stated objective on the stated problems."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import approx_fprime

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from baselines import problems as P
from baselines import scipy_fit, torch_lbfgs


def test_static_problems_follow_the_generating_law():
    noiseless = P.static_problems(noise_sd=0.0)
    assert noiseless.x.shape == (15, 9, 3) and noiseless.y.shape == (15, 9)
    assert noiseless.labels[0] == "arxiv/0" and noiseless.labels[-1] == "stackexchange/4"
    np.testing.assert_allclose(noiseless.x.sum(-1), 1.0, atol=1e-5)
    # Independent evaluation of exp(l) + exp(b + t1 p_arxiv + t2 p_book) from the reference parameters.
    th, x = noiseless.true_params[7], noiseless.x[7]
    want = np.exp(th[0]) + np.exp(th[1] + th[2] * x[:, 0] + th[3] * x[:, 1])
    np.testing.assert_allclose(noiseless.y[7], want, rtol=1e-12)
    noisy = P.static_problems()
    resid = (noisy.y - noiseless.y).ravel()
    assert 0.003 < resid.std() < 0.007  # sd 0.005 on 135 draws


def test_static_inits_are_the_original_grid():
    g = P.static_inits(own=1, seed=3)
    assert g.shape == (6000, 4)
    np.testing.assert_allclose(np.unique(g[:, 0]), np.linspace(-2, 1.5, 10))
    np.testing.assert_allclose(np.unique(g[:, 1]), np.linspace(-10, 1, 20))
    assert np.all((g[:, 3] <= 0) & (g[:, 3] >= -1))  # own index: -U(0, 1)
    assert np.all((g[:, 2] >= 0) & (g[:, 2] <= 0.1))  # other: 0.1 U(0, 1)
    se = P.static_inits(own=None, seed=3)
    assert np.all((se[:, 2:] >= 0) & (se[:, 2:] <= 0.1))
    np.testing.assert_array_equal(g, P.static_inits(own=1, seed=3))  # seeded
    assert len(np.unique(g[:, 2:], axis=0)) == 30


def test_subsets_are_nested_and_distinct():
    small, large = P.subset(6000, 32), P.subset(6000, 128)
    np.testing.assert_array_equal(small, large[:32])
    assert len(np.unique(large)) == 128
    with pytest.raises(ValueError, match="positive"):
        P.subset(6000, 0)


def test_huber_matches_closed_form():
    r = np.array([0.001, -0.019, 0.05, -0.3])
    want = 0.5 * 0.001**2 + 0.5 * 0.019**2 + 0.02 * (0.05 - 0.01) + 0.02 * (0.3 - 0.01)
    assert P.huber_sum(r, 0.02) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("law", ["static", "chinchilla_log"])
def test_scipy_jacobians_match_finite_differences(law):
    if law == "static":
        pr = P.static_problems()
        x, y, theta = pr.x[4], pr.y[4], pr.true_params[4] + 0.05
    else:
        x, y = P.chinchilla_problem(n=40)
        theta = P.chinchilla_true_params() + 0.05
    res = scipy_fit.RESIDUALS[law]
    _, jac = res(theta, x, y)
    num = np.stack([approx_fprime(theta, lambda t, n=n: res(t, x, y)[0][n], 1e-7) for n in range(len(y))])
    np.testing.assert_allclose(jac, num, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_scipy_methods_reach_the_same_minimum():
    pr = P.static_problems()
    k = 11
    inits = P.static_init_grids(pr)[k][P.subset(6000, 12)]
    a = scipy_fit.lbfgsb("static", pr.x[k], pr.y[k], inits, 0.02)
    b = scipy_fit.huber_least_squares("static", pr.x[k], pr.y[k], inits, 0.02)
    # least_squares(loss="huber", f_scale=delta) minimises exactly the summed Huber objective.
    assert b.objective == pytest.approx(P.static_objective(b.params, pr.x[k], pr.y[k]), rel=1e-12)
    assert a.objective == pytest.approx(b.objective, rel=1e-6)
    # 9 noisy points, 4 parameters: the minimum lies below the generating parameters' objective.
    assert b.objective < P.static_objective(pr.true_params[k], pr.x[k], pr.y[k])


@pytest.mark.slow
def test_torch_original_fitter_matches_scipy_float64():
    pr = P.static_problems()
    k = 0
    inits = P.static_init_grids(pr)[k][P.subset(6000, 4)]
    # a good start so that 4 inits suffice: the generating parameters
    inits = np.concatenate([inits, pr.true_params[k][None]])
    t = torch_lbfgs.fit("static", pr.x[k], pr.y[k], inits, 0.02, max_step=30, processes=0)
    ref = scipy_fit.huber_least_squares("static", pr.x[k], pr.y[k], pr.true_params[k][None], 0.02)
    # float32 L-BFGS vs float64 TRF on the same objective
    assert P.static_objective(t.params, pr.x[k], pr.y[k]) == pytest.approx(ref.objective, rel=1e-3)
    assert t.metric == pytest.approx(ref.objective / 9, rel=1e-3)  # selection metric is the mean
    assert t.init_metrics.shape == (5,) and t.metric == np.nanmin(t.init_metrics)


def test_baselines_reject_bad_input():
    with pytest.raises(ValueError, match="law must be one of"):
        torch_lbfgs.fit("nope", np.zeros((3, 3)), np.zeros(3), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="inits must be"):
        scipy_fit.lbfgsb("static", np.zeros((3, 3)), np.zeros(3), np.zeros(4), 0.02)


@pytest.mark.slow
def test_every_benchmark_script_imports_and_parses_its_arguments(tmp_path):
    """Each script under benchmarks/ runs as its docstring says (``python benchmarks/NAME.py``: the script's
    folder first on the path, not the repository root) as far as answering --help, in one fresh process: a
    renamed or removed jaxlaws name used at module level, an import that only works from the repository root,
    or a broken argument parser fails here instead of at the next benchmark run."""
    import subprocess

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = sorted(str(p) for p in bench.glob("*.py") if "argparse" in p.read_text())
    assert len(scripts) >= 10
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(bench)!r})\n"
        f"for s in {scripts!r}:\n"
        "    sys.argv = [s, '--help']\n"
        "    try:\n"
        "        runpy.run_path(s, run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (s, e.code)\n"
        "    else:\n"
        "        raise AssertionError(s + ': --help did not exit')\n"
        "    print('BENCH-OK', s)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("BENCH-OK ") == len(scripts)
