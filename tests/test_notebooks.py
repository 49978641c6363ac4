"""Execute every analysis notebook top to bottom (nbclient, Agg backend) on its small synthetic sweep, then
check the numbers it computed.

The notebooks run concurrently (each in its own kernel) because most of their time is kernel start-up and
JAX compilation, which overlap well on two cores.

Each notebook ends with a cell (built by ``notebooks/_build.py``, under "Numbers the test suite checks") that
prints one line ``CHECK <json>``: the numbers below, most of them the notebook's fits against the parameters
that generated its synthetic sweep (``truth``). The data are seeded, so every number is deterministic. The
bounds come from the notebook's noise level: "seen" is this notebook's value and, after it, the largest (or
smallest) value over 10-20 other noise draws of the same sweep (``seed=``/``rng_seed=``, run once when the
bounds were set); each bound leaves a margin of about 1.5-2x beyond that, so it does not rest on a lucky draw,
and each sits far from what a broken fit gives (parameters left at an init, slopes set to zero or scaled by
a few percent: errors of order the parameters themselves).
"""

import asyncio
import json
import operator
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
FAMILIES = {"static_m2", "static_m3", "dynamic_m2", "dynamic_m3", "instruction_static", "instruction_dynamic",
            "method_parameters", "measurements"}

EQ, LE, GE, LT = operator.eq, operator.le, operator.ge, operator.lt
# notebook -> {key: (comparison, bound)}; the line comments give what was seen (see the module docstring).
EXPECTED = {
    # m=2 static law c + exp(k p + b), 5 seeds x 2 groups x 9 mixtures, noise sd 0.003.
    "static_m2": {
        "n_fits": (EQ, 10), "n_flagged": (EQ, 0),
        "r2_min": (GE, 0.995),                    # 0.9986; 0.9981
        "c_err_max": (LE, 0.05),                  # 0.015; 0.028 (c ~ 2.5-3)
        "k_err_max": (LE, 0.7),                   # 0.29; 0.44 (k ~ -2..-3.3, traded against c on 9 points)
        "b_err_max": (LE, 0.06),                  # 0.019; 0.031
        "loss_err_max": (LE, 0.015),              # 0.0066; 0.009 (3 sd); the fitted curve on p 0.1..0.9
        "p_opt_err_max": (LE, 0.025),             # 0.0049; 0.012: optimal p_arxiv vs the true law's optimum
        "closed_form_vs_solver_max": (LE, 1e-6),  # 2e-8: closed form == projected gradient
    },
    # m=3 reduced log-linear law, 2 seeds x 3 groups x 9 mixtures, noise sd 0.003.
    "static_m3": {
        "n_fits": (EQ, 6), "n_flagged": (EQ, 0),
        "r2_min": (GE, 0.999),                    # 0.99993; 0.99948
        "l_err_max": (LE, 0.01),                  # 0.0027; 0.0032
        "b_err_max": (LE, 0.2),                   # 0.058; 0.090
        "t_err_max": (LE, 0.3),                   # 0.077; 0.153 (|t| up to 4.4)
        "loss_err_max": (LE, 0.012),              # 0.0055; 0.0072 (2.4 sd)
        "p_opt_err_max": (LE, 0.01),              # 0.0053; 0.0045
        "opt_regret_max": (LE, 2e-4),             # 6.5e-5; 4.2e-5 (the uniform mixture's regret is 0.04)
        # jaxlaws' solver on the true parameters against a 0.005 grid on the simplex (independent of it)
        "true_opt_vs_grid_max": (LE, 1e-7),       # -8.3e-6: at least as good as the grid's best point
        "true_opt_grid_dist_max": (LE, 0.01),     # 0.0029: within two grid steps of it
    },
    # m=2 dynamic law k p + b, 9 parents x 2 groups, 9 children each, noise sd 0.003 (sd of k ~ 0.004).
    "dynamic_m2": {
        "n_fits": (EQ, 18), "n_flagged": (EQ, 0),
        "r2_min": (GE, 0.98),                     # 0.9934; 0.9867
        "k_err_max": (LE, 0.025),                 # 0.010; 0.013 (k ~ -0.13..-0.5)
        "b_err_max": (LE, 0.012),                 # 0.0058; 0.0066
    },
    # m=3 linear law c + t.p_<m and the full law on the change a.p, 9 parents x 3 groups, noise sd 0.003.
    "dynamic_m3": {
        "n_fits_linear": (EQ, 27), "n_fits_full": (EQ, 27), "n_flagged": (EQ, 0),
        "r2_min_linear": (GE, 0.94),              # 0.9726; 0.9563
        "r2_min_full": (GE, 0.94),                # as linear: the same fit, reparametrised
        "c_err_max": (LE, 0.02),                  # 0.0084; 0.0097
        "t_err_max": (LE, 0.035),                 # 0.015; 0.017
        "loss_err_max_linear": (LE, 0.012),       # 0.0055; 0.0074 (2.5 sd)
        "loss_err_max_full": (LE, 0.012),         # as linear
    },
    # 9 tasks, 1 seed, 50 Dirichlet mixtures, 10 parameters per task, noise sd 0.01. The slopes are weakly
    # determined (the proportions vary by ~0.1), so parameter bounds are loose and the fitted losses carry
    # the check: their RMS error against the true law is sd * sqrt(10/50) = 0.0045 for a least-squares fit.
    "instruction_static": {
        "n_fits": (EQ, 9), "n_flagged": (EQ, 0),
        "r2_min": (GE, 0.96),                     # 0.9796; 0.9706
        "l_err_max": (LE, 0.015),                 # 0.0049; 0.0080
        "b_err_max": (LE, 2.0),                   # 0.60; 1.27 (b from -10.3 to 0.5)
        "t_rel_err_max": (LE, 0.25),              # 0.12; 0.16, relative to the task's largest |t| (up to 80)
        "loss_err_max": (LE, 0.05),               # 0.031; 0.033
        "loss_err_rms": (LE, 0.0065),             # 0.0050; 0.0049 (expected 0.0045)
    },
    # 10 parents x 9 tasks, 50 children each, 9 parameters: linear law (noise sd 0.01; RMS prediction error
    # expected sd * sqrt(9/50) = 0.0042) and log-ratio law (noise sd 0.005 on losses near 1-3, plus the
    # parent's own noise, which shifts c). Per-fit R^2 is low where a task's loss barely moves with p.
    "instruction_dynamic": {
        "n_fits_linear": (EQ, 90), "n_flagged_linear": (EQ, 0),
        "r2_mean_linear": (GE, 0.86),             # 0.8866; 0.8826
        "r2_min_linear": (GE, 0.1),               # 0.27; 0.15
        "c_err_max_linear": (LE, 0.07),           # 0.046; 0.040
        "t_err_max_linear": (LE, 0.13),           # 0.087; 0.071
        "pred_err_max_linear": (LE, 0.035),       # 0.021; 0.022
        "pred_err_rms_linear": (LE, 0.006),       # 0.0044; 0.0045
        "n_fits_log_ratio": (EQ, 90), "n_flagged_log_ratio": (EQ, 0),
        "r2_mean_log_ratio": (GE, 0.94),          # 0.9612; 0.9594
        "r2_min_log_ratio": (GE, 0.4),            # 0.68; 0.53
        "c_err_max_log_ratio": (LE, 0.08),        # 0.046; 0.050
        "t_err_max_log_ratio": (LE, 0.15),        # 0.097; 0.102
        "pred_err_max_log_ratio": (LE, 0.055),    # 0.025; 0.038
        "pred_err_rms_log_ratio": (LE, 0.0075),   # 0.0037; 0.0052
    },
    # Aioli and Skill-It probes, m=2 and 3, seeds 0 and 1, 9 children each, noise sd 0.005.
    "method_parameters": {
        "n_a_star_fits": (EQ, 20), "n_scale_fits": (EQ, 8), "n_flagged": (EQ, 0),
        "a_star_r2_min": (GE, 0.97),              # 0.989; 0.985
        "a_star_err_max": (LE, 0.035),            # 0.015; 0.021 (entries up to 0.87)
        "intercept_err_max": (LE, 0.02),          # 0.0079; 0.010 (m=2 A* intercepts)
        "a_method_err_max_aioli": (LE, 1e-9),     # 0: A^t is computed from the recorded matrices, no noise
        "a_method_err_max_skillit": (LE, 0.025),  # 0.0074; 0.012: diag(L^B) G^T with the noisy L^B
        "scale_r2_min_aioli": (GE, 0.95),         # 0.980; 0.981
        # The probe's Skill-It graph is not made from A*, so b A^t fits the m=3 children poorly.
        "scale_r2_min_skillit": (GE, 0.05),       # 0.113; 0.102
        "b_max": (LT, 0.0),                       # -0.032; -0.030: the method matrices point the method's way
    },
    # All four methods, m=2 and 3, seeds 0 and 1; and the Aioli m=3 probe with its truth flipped.
    "measurements": {
        "n_rows": (EQ, 8), "n_seeds_min": (EQ, 2), "n_flagged": (EQ, 0), "flip_n_flagged": (EQ, 0),
        "cosine_err_max": (LE, 0.03),             # 0.0041; 0.015 against the true matrices' cosine
        # sim halves Spearman's rho of the column sums, a rank statistic: where the true A*'s column sums are
        # nearly tied (Skill-It, Aioli m=3), another noise draw can swap their fitted order and move a seed's
        # sim by 1 (the mean over 2 seeds by 0.5; seen in 3 of 5 other draws). In this notebook's draw every
        # fitted order is the true one, and the rest of sim is the cosine.
        "sim_err_max": (LE, 0.02),                # 0.0021
        "b_max": (LT, 0.0),                       # -0.034; -0.031
        "flip_sim_min": (GE, 0.999),              # 0.999997: the free scale b hides the flipped sign from sim
        "flip_sim_method_sign_max": (LE, -0.999),  # -0.999997: ... but not from sim_method_sign (must be < 0)
        "flip_b_rel_err_max": (LE, 0.02),         # 0.0006; 0.0056: fitted b vs the true b in A* = b A^t
    },
}
SYMBOL = {EQ: "==", LE: "<=", GE: ">=", LT: "<"}


def test_notebooks_exist():
    assert FAMILIES <= {p.stem for p in NOTEBOOKS}
    assert set(EXPECTED) == {p.stem for p in NOTEBOOKS}, "every notebook needs its checked numbers here"


async def _run_all(paths, parallel=3):
    gate = asyncio.Semaphore(parallel)

    async def one(path):
        async with gate:
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(nb, timeout=300, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                await client.async_execute()
            except Exception as e:  # report every failing notebook, not just the first
                return path.stem, f"{type(e).__name__}: {str(e)[-2000:]}", nb
            return path.stem, None, nb

    return await asyncio.gather(*(one(p) for p in paths))


def check_numbers(nb) -> dict:
    """The JSON of the notebook's one ``CHECK`` line (stdout of its last code cell)."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    lines = [line for o in cells[-1].get("outputs", []) if o.output_type == "stream" and o.name == "stdout"
             for line in o.text.splitlines() if line.startswith("CHECK ")]
    assert len(lines) == 1, f"the last code cell printed {len(lines)} CHECK lines, expected 1"
    return json.loads(lines[0][len("CHECK "):])


def failed_checks(numbers: dict, expected: dict) -> list[str]:
    """Every bound of ``expected`` that ``numbers`` misses (a missing or non-finite number misses)."""
    bad = [f"{k} missing" for k in expected if k not in numbers]
    bad += [f"{k} not checked here" for k in numbers if k not in expected]
    for k, (op, bound) in expected.items():
        if k in numbers and not op(numbers[k], bound):  # NaN fails every comparison
            bad.append(f"{k} = {numbers[k]!r}, expected {SYMBOL[op]} {bound}")
    return bad


def test_failed_checks_catch_bad_numbers():
    good = {"n": 3, "err": 0.01, "r2": 0.99}
    expected = {"n": (EQ, 3), "err": (LE, 0.02), "r2": (GE, 0.95)}
    assert failed_checks(good, expected) == []
    assert len(failed_checks({**good, "err": 0.5, "r2": float("nan")}, expected)) == 2
    assert failed_checks({"n": 3, "err": 0.01}, expected) == ["r2 missing"]
    assert failed_checks({**good, "extra": 1.0}, expected) == ["extra not checked here"]


def test_notebooks_run(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    results = asyncio.run(_run_all(NOTEBOOKS))
    failed = {name: err for name, err, _ in results if err}
    assert not failed, failed
    wrong = {}
    for name, _, nb in results:  # every problem of every notebook, not just the first
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        bad = [f"error output: {o.ename}" for o in outputs if o.output_type == "error"]
        kinds = {k for o in outputs for k in o.get("data", {})}
        if not {"image/png", "text/html"} & kinds:
            bad.append("shows neither a figure nor a table")
        flagged = [o.text for o in outputs if o.output_type == "stream" and "FlaggedFitWarning" in o.text]
        if flagged:
            bad.append(f"rests on flagged fits ({len(flagged)} outputs), e.g. {flagged[0].splitlines()[0][:300]}")
        bad += failed_checks(check_numbers(nb), EXPECTED[name])
        if bad:
            wrong[name] = bad
    assert not wrong, "\n" + "\n".join(f"{name}: {b}" for name, bad in wrong.items() for b in bad)
