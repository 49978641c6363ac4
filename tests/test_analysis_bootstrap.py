"""Bootstrap intervals of the static analysis (parameters, predictions, predicted optimum) and the CLI's
``--bootstrap N``. Synthetic sweeps drawn from the bundled reference fits (tests/test_analysis_fits.py)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_analysis_cli import _run  # noqa: E402
from test_analysis_fits import G2, G3, static_sweep  # noqa: E402

from jaxlaws.analysis import bootstrap_static, optimum_table  # noqa: E402
from jaxlaws.analysis.pipeline import analyse  # noqa: E402
from jaxlaws.sweeps.io import write_sweep  # noqa: E402


@pytest.mark.slow
def test_static_bootstrap_m3_paired_and_optimum_matches_a_per_resample_recomputation():
    sweep, _ = static_sweep(G3, seeds=range(2))
    res = analyse(sweep, n_random=2, bootstrap=12, level=0.8)  # 12 resamples: the checks hold for any n
    bs = res.bootstrap
    assert bs.n == 12 and bs.level == 0.8 and sorted(bs.results) == [0, 1]
    params = bs.params
    assert len(params) == 3 * 2 * 4 and set(params["param"]) == {"l", "b", "t1", "t2"}
    assert np.all(params["lo"] <= params["hi"]) and np.all(params["n_failed"] == 0)
    for s, boot in bs.results.items():
        # paired: every group refitted to the same drawn runs
        assert np.all(boot.counts == boot.counts[0])
        # the estimate is at least as good as the analysis' own fit (it starts from it)
        fit = res.static.params[res.static.params["seed"] == s]
        assert np.all(boot.estimate.objective <= fit["objective"].to_numpy() * (1 + 1e-9))
        # the optimum's interval: optimum_table (the analysis' own optimum code) on every resample, percentiles
        per_r = optimum_table({g: {r: boot.params[i, r] for r in range(12)} for i, g in enumerate(G3)}, G3)
        per_r = per_r[per_r["seed"] != "mean"]
        opt = bs.optimum[bs.optimum["seed"] == s].set_index("quantity")
        for q in [f"p_{g}" for g in G3] + ["total_loss"]:
            lo, hi = np.quantile(per_r[q].to_numpy(float), [0.1, 0.9])
            np.testing.assert_allclose([opt.loc[q, "lo"], opt.loc[q, "hi"]], [lo, hi], atol=1e-6)
        assert abs(opt.loc[[f"p_{g}" for g in G3], "estimate"].sum() - 1) < 1e-9
        # predictions: the estimate's prediction inside its own interval at the sweep's mixtures
        x = sweep.losses[(sweep.losses["seed"] == s) & (sweep.losses["group"] == "book")][
            [f"p_{g}" for g in G3]
        ].to_numpy()
        est, lo, hi = bs.predict("book", s, x)
        np.testing.assert_allclose(est, boot.estimate[1].predict(x), rtol=1e-12)
        assert np.all(lo <= hi) and np.mean((lo <= est) & (est <= hi)) > 0.8
    tables = res.tables()
    assert {"static_params_ci", "static_optimum_ci"} <= set(tables)
    with pytest.raises(ValueError, match="unknown group"):
        bs.predict("nope", 0, x)


@pytest.mark.slow
def test_static_bootstrap_m2():
    sweep, _ = static_sweep(G2, seeds=range(2))
    res = analyse(sweep, bootstrap=20)
    bs = res.bootstrap
    assert set(bs.params["param"]) == {"c", "k", "b"}
    opt = bs.optimum
    assert set(opt["quantity"]) == {"p_arxiv", "p_stackexchange", "total_loss"}
    assert np.all(opt["lo"] <= opt["hi"])
    # the joint (c, k, b) refit starts from the two-stage estimate: its optimum is close to the analysis' one
    p_est = opt[opt["quantity"] == "p_arxiv"].set_index("seed")["estimate"]
    p_an = res.optimum[res.optimum["seed"] != "mean"].set_index("seed")["p_arxiv"].astype(float)
    np.testing.assert_allclose(p_est.to_numpy(), p_an.loc[p_est.index].to_numpy(), atol=0.05)
    with pytest.raises(ValueError, match="n \\(resamples\\)"):
        bootstrap_static(sweep, res.static, 1)


@pytest.mark.slow
def test_cli_bootstrap_prints_and_exports(tmp_path, capsys):
    sweep, _ = static_sweep(G3, seeds=range(2))
    write_sweep(sweep, tmp_path / "sweep", format="csv")
    assert (
        _run(
            [
                "analyse",
                str(tmp_path / "sweep"),
                "--n-random",
                "2",
                "--bootstrap",
                "12",  # as the test above: the same compiled programs
                "--level",
                "0.8",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "80% bootstrap intervals, 12 paired resamples" in text and "predicted optimal mixture" in text
    ci = pd.read_csv(tmp_path / "out" / "static_optimum_ci.csv")
    assert set(ci.columns) >= {"seed", "quantity", "estimate", "lo", "hi", "level"}
    assert len(pd.read_csv(tmp_path / "out" / "static_params_ci.csv")) == 3 * 2 * 4
    with pytest.raises(ValueError, match="--bootstrap"):
        _run(["analyse", str(tmp_path / "sweep"), "--bootstrap", "1"])
    with pytest.raises(ValueError, match="--level"):
        _run(["analyse", str(tmp_path / "sweep"), "--bootstrap", "5", "--level", "1.5"])
