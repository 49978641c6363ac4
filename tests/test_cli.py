"""The console command: subcommands are listed and the main job runs on its bundled default."""

import subprocess
import sys

import pytest

from jaxlaws.cli import main


@pytest.mark.slow
def test_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "jaxlaws.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("demo", "analyse", "sweep"):
        assert cmd in out


@pytest.mark.slow
def test_demo_runs_and_recovers_the_reference_optimum(capsys, tmp_path):
    assert main(["demo", "--synthetic", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out.upper()
    assert "static law static_two_group" in out and "log_linear(3)" in out and "sim" in out
    # The m=2 optimum of the original's stored fits is about 0.389 arxiv (closed form); noise moves it a little.
    import pandas as pd

    opt = pd.read_csv(tmp_path / "synthetic_arxiv_stackexchange" / "analysis" / "static_optimum.csv")
    assert abs(opt["p_arxiv"].mean() - 0.389) < 0.03
    assert (tmp_path / "synthetic_arxiv_books_stackexchange" / "sweep" / "meta.json").exists()


@pytest.mark.slow
def test_demo_defaults_to_the_real_bundle(capsys, tmp_path):
    """No arguments: the bundled real runs, said so at the top; the exported sweep is the bundle's, and the static
    law predicts left-out mixtures better than their mean does (per group, the LOO RMSE below the observed loss'
    standard deviation over the runs)."""
    import numpy as np
    import pandas as pd

    from jaxlaws.sweeps.bundle import load_bundle
    from jaxlaws.sweeps.io import read_sweep

    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "REAL" in out.splitlines()[0] and "--synthetic" in out.splitlines()[0]
    for setting in ("m2", "m3"):
        got = read_sweep(tmp_path / setting / "sweep").losses
        want = load_bundle(setting, ("compare",)).losses
        key = ["run", "seed", "step", "split", "group"]
        both = want.merge(got, on=key, suffixes=("_bundle", "_out"))
        assert len(both) == len(want) and np.allclose(both["loss_bundle"], both["loss_out"])
        loo = pd.read_csv(tmp_path / setting / "analysis" / "static_loo.csv")
        assert loo["group"].nunique() == int(setting[1])
        assert len(loo) == len(loo[["run", "seed", "group"]].drop_duplicates())
        np.testing.assert_allclose(loo["error"], loo["predicted"] - loo["observed"], atol=1e-6)
        for _, g in loo.groupby("group"):
            assert np.sqrt(np.mean(g["error"] ** 2)) < g["observed"].std()
