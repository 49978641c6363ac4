"""The console command: subcommands are listed and the main job runs on its bundled default."""

import subprocess
import sys

from jaxlaws.cli import main


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "jaxlaws.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for cmd in ("demo", "analyse", "sweep"):
        assert cmd in out


def test_demo_runs_and_recovers_the_reference_optimum(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "static law static_two_group" in out and "log_linear(3)" in out and "sim" in out
    # The m=2 optimum of the paper's parameters is about 0.389 arxiv (spec section 8); noise moves it a little.
    import pandas as pd
    opt = pd.read_csv(tmp_path / "arxiv_stackexchange" / "analysis" / "static_optimum.csv")
    assert abs(opt["p_arxiv"].mean() - 0.389) < 0.03
    assert (tmp_path / "arxiv_books_stackexchange" / "sweep" / "meta.json").exists()
