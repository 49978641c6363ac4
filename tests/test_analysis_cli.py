"""`jaxlaws analyse` on a sweep directory: prints the analyses and exports CSV + law_results JSON."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from jaxlaws.analysis import cli  # noqa: E402
from jaxlaws.sweeps.io import write_sweep  # noqa: E402
from test_analysis_fits import G2, dynamic_sweep, method_sweep  # noqa: E402


def _run(argv):
    import argparse
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_analyse_exports(tmp_path, capsys):
    write_sweep(method_sweep(G2, seeds=range(2))[0], tmp_path / "sweep", format="csv")
    assert _run(["analyse", str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "aioli at break step 1000" in text and "sim" in text
    opt = json.loads((tmp_path / "out" / "params_aioli_trajectory_opt_1000.json").read_text())
    assert set(opt) == set(G2) and set(opt["arxiv"]["1000"]) == {"0", "1"}
    assert (tmp_path / "out" / "aioli_similarity.csv").exists()


def test_cli_dynamic_and_missing_path(tmp_path, capsys):
    write_sweep(dynamic_sweep(G2)[0], tmp_path / "dyn")
    assert _run(["analyse", str(tmp_path / "dyn"), "--out", str(tmp_path / "o")]) == 0
    assert "dynamic law two_group" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "params_dynamic.json").read_text())["arxiv"]["2000"]["0.1"]
    import pytest
    with pytest.raises(FileNotFoundError, match="does not exist"):   # `jaxlaws` prints it as one line, exit 2
        _run(["analyse", str(tmp_path / "nope")])
