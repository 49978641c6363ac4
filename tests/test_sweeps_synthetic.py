"""Synthetic sweeps obey their generating laws (checked against the raw JSON parameters, float64 numpy)."""

import json

import numpy as np
import pytest

from jaxlaws.sweeps import matrix_stack, reference
from jaxlaws.sweeps.synthetic import (
    method_sweep,
    reference_dynamic_sweep,
    reference_static_sweep,
    reference_sweep_bundle,
)

RAW = reference._root() / "law_results"


def _raw(rel):
    return json.loads((RAW / rel).read_text())


def _wide(sweep, step, split="val"):
    d = sweep.losses[(sweep.losses["step"] == step) & (sweep.losses["split"] == split)]
    return d.pivot_table(index=["run", "seed"], columns="group", values="loss").join(
        d.drop_duplicates(["run", "seed"]).set_index(["run", "seed"])[[f"p_{g}" for g in sweep.groups]]
    )


def test_static_two_group_exact_and_noise_level():
    sweep, truth = reference_static_sweep("arxiv_stackexchange", noise=0)
    raw = _raw("arxiv_stackexchange/params_static.json")
    w = _wide(sweep, 5000)
    assert len(w) == 45
    for g, own in (("arxiv", "p_arxiv"), ("stackexchange", "p_stackexchange")):
        for (_run, s), r in w.iterrows():
            c, k, b = raw[g]["5000"][str(s)]
            assert r[g] == pytest.approx(c + np.exp(k * r[own] + b), rel=1e-12)
    noisy, _ = reference_static_sweep("arxiv_stackexchange", noise=0.01, seed=3)
    resid = (_wide(noisy, 5000)[["arxiv", "stackexchange"]] - w[["arxiv", "stackexchange"]]).to_numpy()
    assert resid.std() == pytest.approx(0.01, rel=0.25)  # 90 draws: sd of the sd estimate ~7.5%


@pytest.mark.parametrize(
    "setting,n,seeds,step", [("arxiv_books_stackexchange", 9, 5, 5000), ("instruction", 50, 4, 1000)]
)
def test_static_log_linear(setting, n, seeds, step):
    sweep, _ = reference_static_sweep(setting, noise=0)
    raw = _raw(f"{setting}/{'params' if setting == 'instruction' else 'params_static'}.json")
    w = _wide(sweep, step)
    assert len(w) == n * seeds
    groups = sweep.groups
    for (_run, s), r in w.iloc[:: max(1, len(w) // 40)].iterrows():
        p = r[[f"p_{g}" for g in groups]].to_numpy(float)
        for g in groups:
            l, b, *t = raw[g][str(step)][str(s)]
            assert r[g] == pytest.approx(np.exp(l) + np.exp(b + p[:-1] @ np.array(t)), rel=1e-12)
    grid = np.loadtxt(reference._root() / "dirichlet_weights" / f"k_{len(groups)}_n_{n}_seed_1.txt", delimiter=",")
    np.testing.assert_array_equal(np.sort(w.xs(1, level="seed")[f"p_{groups[0]}"].to_numpy()), np.sort(grid[:, 0]))


@pytest.mark.parametrize(
    "setting,n_par,n_child",
    [("arxiv_stackexchange", 9, 9), ("arxiv_books_stackexchange", 9, 9), ("instruction", 10, 50)],
)
def test_dynamic_linear_laws(setting, n_par, n_child):
    sweep, truth = reference_dynamic_sweep(setting, noise=0)
    raw = _raw(f"{setting}/params_dynamic.json")
    B = truth["break_step"]
    kids = sweep.losses[sweep.losses["kind"] == "child"]
    assert kids["run"].nunique() == n_par * n_child and (kids["step"] == B + 100).all()
    assert (sweep.losses[sweep.losses["kind"] == "parent"]["step"] == B).all()
    par = sweep.losses[sweep.losses["kind"] == "parent"].drop_duplicates("run").set_index("run")
    g0 = sweep.groups[0]
    for _, r in kids.iloc[:: max(1, len(kids) // 60)].iterrows():
        pkey = par.loc[r["parent"], f"p_{g0}"]
        key = min(raw[r["group"]][str(B)], key=lambda k: abs(float(k) - pkey))
        theta = np.array(raw[r["group"]][str(B)][key])
        p = r[[f"p_{g}" for g in sweep.groups]].to_numpy(float)
        if setting == "arxiv_stackexchange":
            want = theta[0] * r[f"p_{r['group']}"] + theta[1]
        else:
            want = theta[0] + p[:-1] @ theta[1:]
        assert r["loss"] == pytest.approx(want, rel=1e-12)


def test_dynamic_log_ratio():
    sweep, truth = reference_dynamic_sweep("instruction", noise=0, log_ratio=True)
    raw = _raw("instruction/params_log_dynamic.json")
    losses = sweep.losses
    kid = losses[losses["kind"] == "child"].iloc[7]
    lb = losses[(losses["run"] == kid["parent"]) & (losses["group"] == kid["group"])]["loss"].iloc[0]
    pkey = losses[losses["run"] == kid["parent"]]["p_abductivenli"].iloc[0]
    theta = np.array(raw[kid["group"]]["500"][min(raw[kid["group"]]["500"], key=lambda k: abs(float(k) - pkey))])
    p = kid[[f"p_{g}" for g in sweep.groups]].to_numpy(float)
    assert kid["loss"] == pytest.approx(lb * np.exp(theta[0] + p[:-1] @ theta[1:]), rel=1e-12)


@pytest.mark.parametrize("method", ["aioli", "doge", "doremi", "skillit"])
@pytest.mark.parametrize("m", [2, 3])
def test_method_sweep_matrices_and_children(method, m):
    sweep, truth = method_sweep(method, m, 2, noise=0)
    setting = "arxiv_stackexchange" if m == 2 else "arxiv_books_stackexchange"
    B, R = truth["break_step"], truth["steps_run"]
    name = {"aioli": "aioli_A", "doge": "doge_M", "doremi": "doremi_excess", "skillit": "skillit_graph"}[method]
    stack = matrix_stack(sweep.matrices, truth["method_run"], 2, name, m)
    if method == "aioli":
        assert len(stack) == B // 250 and (stack >= 0).all()
        np.testing.assert_allclose(stack.sum(axis=(1, 2)), 1, atol=1e-12)
    if method == "doremi":
        assert np.all(stack[:, ~np.eye(m, dtype=bool)] == 0) and np.isfinite(stack).all()
    if method == "skillit":
        np.testing.assert_array_equal(stack[0], reference.skillit_graph(sweep.groups, 2))
    # children follow the reference A* fit: recover it with an independent least-squares solve
    kids = sweep.losses[sweep.losses["kind"] == "child"]
    assert (kids["step"] == B + R).all() and (kids["parent"] == truth["method_run"]).all()
    lb = truth["loss_at_break"]
    opt = _raw(
        f"{setting}/"
        + {
            "arxiv_stackexchange": {
                "aioli": "params_aioli_trajectory_opt_1000",
                "doge": "params_doge_trajectory_opt_500",
                "doremi": "params_doremi_trajectory_opt_500",
                "skillit": "params_skillit_trajectory_opt",
            },
            "arxiv_books_stackexchange": {
                "aioli": "params_aioli_trajectory_opt_1500_steps_500",
                "doge": "params_doge_trajectory_opt_1000",
                "doremi": "params_doremi_trajectory_opt_1000_steps_500",
                "skillit": "params_skillit_trajectory_opt_1000",
            },
        }[setting][method]
        + ".json"
    )
    for i, g in enumerate(sweep.groups):
        d = kids[kids["group"] == g]
        p = d[[f"p_{h}" for h in sweep.groups]].to_numpy(float)
        if m == 2:
            coef = np.linalg.lstsq(np.c_[p[:, i], np.ones(len(p))], d["loss"].to_numpy(), rcond=None)[0]
        else:
            coef = np.linalg.lstsq(p, d["loss"].to_numpy() - lb[i], rcond=None)[0]
        np.testing.assert_allclose(coef, opt[g][str(B)]["2"], atol=1e-9)


@pytest.mark.parametrize("mode,sign", [("equal", 1), ("flip", -1)])
def test_method_truth_modes(mode, sign):
    sweep, truth = method_sweep("doge", 3, 0, truth_mode=mode, noise=0)
    a_star, a_method = truth["A_star"], truth["A_method"]
    ratio = a_star / a_method
    np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-12)  # A* is exactly a multiple of A^t
    assert np.sign(ratio[0, 0]) == sign * np.sign(truth["scale"])
    # the recorded doge stack's mean is the analysis' A^t
    np.testing.assert_allclose(matrix_stack(sweep.matrices, truth["method_run"], 0, "doge_M", 3).mean(0), a_method)


@pytest.mark.slow
def test_bundle_shape():
    bundle = reference_sweep_bundle(seeds=range(2))
    sweep, truth = bundle["arxiv_books_stackexchange"]
    runs = sweep.runs()
    assert (runs["kind"] == "parent").sum() == 9 and (runs["kind"] == "static").sum() == 45
    assert (runs["kind"] == "method").sum() == 8 and set(runs["method"]) == {"", "aioli", "doge", "doremi", "skillit"}
    assert (runs[runs["kind"] == "child"]["parent"].str.startswith("parent")).sum() == 81
    assert set(truth["methods"]["aioli"]) == set(range(2))


# -- the method matrices come from each method's own rule, not from A* -----------------------------------


def _aioli_reference(delta_w, W):
    """Aioli's A from the noiseless LearnParams decreases, float64 numpy: A = G W^-T, shift, normalise."""
    A = np.linalg.solve(W, -delta_w).T  # G[:, j] = -delta(q_j): G^T = -delta
    A = A - min(A.min(), 0.0)
    return A / A.sum()


@pytest.mark.parametrize("m", [2, 3])
def test_aioli_matrices_are_learnparams_on_the_true_law(m):
    """noise=0: every round's recorded A is LearnParams' solve of the law's loss decreases (independent
    numpy transcription), whatever that gives."""
    sweep, truth = method_sweep("aioli", m, 1, noise=0)
    stack = matrix_stack(sweep.matrices, truth["method_run"], 1, "aioli_A", m)
    ohf, lp_steps = (0.625, 4) if m == 2 else (0.5, 6)
    W = np.full((m, m), (1 - ohf) / (m - 1)) + (ohf - (1 - ohf) / (m - 1)) * np.eye(m)
    a = truth["A_star"]
    if m == 2:  # law: L^{B+R}_i = k_i p_i + b_i, measured from a break at the uniform mixture (+0.02)
        k, b = np.diag(a), truth["intercept"]
        delta = W * k[None] + (b - (b + k * 0.5 + 0.02))[None]
    else:  # law: L^{B+R} = L^B + A* p
        delta = W @ a.T
    want = _aioli_reference(delta * lp_steps / truth["steps_run"], W)
    for A in stack:
        np.testing.assert_allclose(A, want, atol=2e-6)
    # (m=3, no noise: LearnParams inverts the linear law exactly, so A is -A* shifted and rescaled -- Aioli
    # being right by design; with evaluation noise it is not)


def test_doge_matrices_in_the_trainers_orientation():
    """No gradient noise: M[i, j] = <g_i, v_j> = -A*[j, i] (first-order reading; rows = train domain)."""
    from jaxlaws.sweeps.method_models import simulate_doge

    a = np.array([[-0.5, -0.1, 0.05], [-0.3, -0.8, -0.2], [0.0, -0.05, -0.4]])
    stack, w = simulate_doge(a, np.random.default_rng(0), steps=20, grad_noise=0.0)
    for M in stack:
        np.testing.assert_allclose(M, -a.T, atol=1e-9)
    assert w.shape == (3,) and abs(w.sum() - 1) < 1e-12


def test_doremi_without_noise_never_leaves_uniform():
    """DoReMi's excess at the uniform start is 0 (proxy = reference mixture): without batch noise its rule
    never moves, whatever A* is -- its matrix carries no copy of A*."""
    from jaxlaws.sweeps.method_models import simulate_doremi

    law = lambda p: 2.0 + np.exp(-np.atleast_2d(p))  # any static law
    stack, w = simulate_doremi(law, 3, np.random.default_rng(0), steps=50, batch_noise=0.0)
    np.testing.assert_array_equal(stack, 0.0)
    np.testing.assert_allclose(w, 1 / 3, atol=1e-6)


@pytest.mark.slow
def test_sim_is_not_built_in():
    """Random positive method matrices with the same children give low sim; the simulated ones give what the
    simulation gives (m=3: not ~1 for every method and seed, as the copied-A* matrices did)."""
    import warnings

    from jaxlaws.analysis.methods import method_parameters
    from jaxlaws.sweeps import Sweep

    rng = np.random.default_rng(0)
    rand, sims = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(3):
            sweep, truth = method_sweep("doge", 3, s)
            sims.append(float(method_parameters(sweep, "doge").similarity["sim"].iloc[0]))
            mats = sweep.matrices.copy()
            mats["value"] = rng.uniform(0.0, 1.0, len(mats))
            rsw = Sweep(sweep.losses, sweep.groups, mats)
            rand.append(float(method_parameters(rsw, "doge").similarity["sim"].iloc[0]))
    assert np.mean(rand) < 0.5, rand
    assert min(sims) < 0.9, sims  # the old construction gave sim ~0.94 or more for every seed
    assert all(-1 <= x <= 1 for x in sims + rand)
