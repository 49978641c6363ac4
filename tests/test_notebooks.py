"""Execute every analysis notebook top to bottom (nbclient, Agg backend), then check the numbers it computed.

The notebooks run concurrently (each in its own kernel) because most of their time is kernel start-up and
JAX compilation, which overlap well on two cores.

Each notebook ends with a cell (built by ``notebooks/_build.py``, under "Numbers the test suite checks") that
prints one line ``CHECK <json>``. Two kinds of notebook:

* REAL (static_m2/m3, dynamic_m2/m3, method_parameters, measurements): the bundled example sweeps
  (``jaxlaws/data/bundle``). The notebook recomputes what it can independently of the analysis (R^2 from the
  observed losses and the law written out in numpy, plain least squares on the same design, ``Ã = b A^t``,
  ``sim`` from the matrices with scipy's Spearman, the optimum against a brute-force simplex grid): those
  must agree to round-off. Counts (runs, fits, seeds) are exact. The fit-quality numbers (R^2, held-out
  error, ``sim``) are real results on fixed data, so their bounds pin the bundled values ("seen") with a
  small margin: a change of the bundle or of the analysis that moves them fails here and must be looked at.
* SYNTHETIC parameter-recovery checks (instruction_static, instruction_dynamic, and the flipped probe of
  measurements): the fits against the parameters that generated the sweep (``truth``). "seen" is this
  notebook's value and, after it, the largest (or smallest) value over 10-20 other noise draws of the same
  sweep (run once when the bounds were set); each bound leaves a margin of about 1.5-2x beyond that and sits
  far from what a broken fit gives.
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
    # REAL m=2 (code/literature): 7 grid mixtures x 3 seeds, two-stage static fits; the optimum trained.
    "static_m2": {
        "n_grid_runs": (EQ, 21), "n_fits": (EQ, 6), "n_flagged": (EQ, 0),
        "n_trained_mixtures": (EQ, 1), "n_trained_runs": (EQ, 3),
        "r2_min": (GE, 0.98),                     # 0.9851
        "r2_mean": (GE, 0.99),                    # 0.9936
        "r2_recompute_err_max": (LE, 1e-9),       # 1e-16: numpy R^2 == the analysis' R^2
        "opt_outside_simplex": (LE, 1e-9),        # 2e-16
        "opt_minus_grid_best_max": (LE, 1e-7),    # -4.6e-9: as good as a 0.001 grid of the fitted law
        "trained_vs_predicted_mixture": (LE, 1e-3),  # 1e-16: the trained mixture is the predicted optimum
        "loo_rmse_max": (LE, 0.06),               # 0.052 (losses vary by sd 0.16 over the mixtures)
        "loo_rmse_mean": (LE, 0.035),             # 0.028
        # realised val/test loss of the trained optimum minus the best grid point's (sd over seeds ~0.008)
        "realised_gap_val": (LE, 0.01),           # 0.0059
        "realised_gap_test": (LE, 0.01),          # 0.0052
    },
    # REAL m=3 (code/docs/literature): 7 Dirichlet mixtures x 3 seeds, reduced log-linear law; the optimum trained.
    "static_m3": {
        "n_grid_runs": (EQ, 21), "n_fits": (EQ, 9), "n_flagged": (EQ, 0),
        "n_trained_mixtures": (EQ, 1), "n_trained_runs": (EQ, 3),
        "r2_min": (GE, 0.95),                     # 0.958 (4 parameters on 7 mixtures)
        "r2_mean": (GE, 0.98),                    # 0.988
        "r2_recompute_err_max": (LE, 1e-9),       # 4e-16
        "opt_outside_simplex": (LE, 1e-9),        # 0
        "opt_minus_grid_best_max": (LE, 1e-7),    # -2.8e-6: better than a 0.005 simplex grid of the fitted law
        # 5e-9 at e927265, 1.5e-5 with later solver changes: fit round-off, far below a different optimum
        "trained_vs_predicted_mixture": (LE, 1e-3),
        "loo_rmse_max": (LE, 0.1),                # 0.084 (losses vary by sd 0.12-0.16 over the mixtures)
        "loo_rmse_mean": (LE, 0.06),              # 0.047
        # the trained optimum beats the best grid point (sd over seeds 0.002-0.017)
        "realised_gap_val": (LE, 0.0),            # -0.0063
        "realised_gap_test": (LE, 0.0),           # -0.0059
    },
    # REAL m=2: 3 parents x 3 seeds broken at B=500, 6 children each resumed for R=100 steps.
    "dynamic_m2": {
        "n_parent_runs": (EQ, 9), "n_child_runs": (EQ, 54), "n_fits_two_group": (EQ, 18), "n_flagged": (EQ, 0),
        "r2_min_two_group": (GE, 0.78),           # 0.800
        "r2_mean_two_group": (GE, 0.89),          # 0.909
        "r2_recompute_err_max": (LE, 1e-9),       # 2e-16
        "params_vs_least_squares_max": (LE, 0.1),  # 0.072: Huber(0.02) vs least squares on 6 children
        "k_max": (LT, 0.0),                       # -0.235: more of a group always lowers its own loss
    },
    # REAL m=3: 3 Dirichlet parents x 3 seeds broken at B=500, 6 children each; linear and full laws.
    "dynamic_m3": {
        "n_parent_runs": (EQ, 9), "n_child_runs": (EQ, 54), "n_fits_linear": (EQ, 27), "n_fits_full": (EQ, 27),
        "n_flagged": (EQ, 0),
        "r2_min_linear": (GE, 0.88),              # 0.894 (3 parameters on 6 children)
        "r2_min_full": (GE, 0.88),                # 0.894: the same fit, reparametrised
        "r2_mean_linear": (GE, 0.95),             # 0.964
        "r2_mean_full": (GE, 0.95),               # 0.964
        "r2_recompute_err_max": (LE, 1e-9),       # 1e-15
        "params_vs_least_squares_max": (LE, 0.07),  # 0.048: Huber(0.02) vs least squares
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
    # REAL: all four methods, m=2 and m=3, 3 seeds, 6 children each (the bundle's compare part).
    "method_parameters": {
        "n_a_star_fits": (EQ, 60), "n_scale_fits": (EQ, 24), "n_flagged": (EQ, 0),
        "a_star_r2_min": (GE, 0.78),              # 0.807
        "a_star_r2_recompute_err_max": (LE, 1e-9),  # 4e-16
        "a_star_vs_least_squares_max": (LE, 0.1),   # 0.073: Huber(0.02) vs least squares on 6 children
        "a_tilde_err_max": (LE, 1e-12),           # 0: A~ == b A^t
        "scale_r2_min": (GE, 0.05),               # 0.061
        "b_max": (LT, 0.0),                       # -0.030: every method matrix points the method's way
    },
    # REAL sim per (setting, method) and the SYNTHETIC Aioli m=3 probe with its truth flipped.
    "measurements": {
        "n_rows": (EQ, 8), "n_seeds_min": (EQ, 3), "n_flagged": (EQ, 0), "flip_n_flagged": (EQ, 0),
        "sim_recompute_err_max": (LE, 1e-9),      # 1e-16: cosine + scipy Spearman of the column sums
        "sim_method_sign_recompute_err_max": (LE, 1e-9),  # 1e-16
        "sim_min": (GE, 0.15),                    # 0.159 (mean over seeds; DoGE m=2)
        "sim_max": (LE, 0.94),                    # 0.930
        "flip_sim_min": (GE, 0.999),              # 0.999996: the free scale b hides the flipped sign from sim
        "flip_sim_method_sign_max": (LE, -0.999),  # -0.999996: ... but not from sim_method_sign (must be < 0)
        "flip_b_rel_err_max": (LE, 0.02),         # 0.0009: fitted b vs the true b in A* = b A^t
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
        bad += [f"shows no {what}" for what, kind in (("figure", "image/png"), ("table", "text/html"))
                if kind not in kinds]
        flagged = [o.text for o in outputs if o.output_type == "stream" and "FlaggedFitWarning" in o.text]
        if flagged:
            bad.append(f"rests on flagged fits ({len(flagged)} outputs), e.g. {flagged[0].splitlines()[0][:300]}")
        bad += failed_checks(check_numbers(nb), EXPECTED[name])
        if bad:
            wrong[name] = bad
    assert not wrong, "\n" + "\n".join(f"{name}: {b}" for name, bad in wrong.items() for b in bad)
