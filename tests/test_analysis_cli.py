"""`jaxlaws analyse` on a sweep directory: prints the analyses and exports CSV + law_results JSON."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_analysis_fits import G2, dynamic_sweep, method_sweep  # noqa: E402

from jaxlaws.analysis import cli  # noqa: E402
from jaxlaws.sweeps.io import write_sweep  # noqa: E402


def _run(argv):
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
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
    with pytest.raises(FileNotFoundError, match="does not exist"):  # `jaxlaws` prints it as one line, exit 2
        _run(["analyse", str(tmp_path / "nope")])


@pytest.mark.slow
def test_cli_prints_and_exports_each_runs_influence(tmp_path, capsys):
    import jax
    import numpy as np
    import pandas as pd
    from test_analysis_fits import static_sweep

    from jaxlaws.analysis.influence import influence
    from jaxlaws.sweeps.io import read_sweep

    write_sweep(static_sweep(G2, seeds=range(2))[0], tmp_path / "sweep", format="csv")
    assert _run(["analyse", str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "influence of each static run on the predicted optimum" in text and "drop_dp_arxiv" in text
    table = pd.read_csv(tmp_path / "out" / "static_influence.csv")
    assert set(table["seed"]) == {0, 1} and (table["fit_result"] == "successful").all()
    # the exported numbers are influence() of the exported static fits on the exported losses
    sweep = read_sweep(tmp_path / "sweep")
    fits = pd.read_csv(tmp_path / "out" / "static_params.csv")
    st = sweep.losses[
        (sweep.losses["kind"] == "static") & (sweep.losses["split"] == "val") & (sweep.losses["seed"] == 1)
    ]
    wide = st.pivot_table(index=["run", "p_arxiv", "p_stackexchange"], columns="group", values="loss").reset_index()
    wide = wide.set_index("run").loc[table[table["seed"] == 1]["run"]]
    theta = fits[fits["seed"] == 1].set_index("group").loc[list(G2), ["c", "k", "b"]].to_numpy(float)
    from jaxlaws.laws import static_two_group

    with jax.enable_x64(True):
        res = influence(
            static_two_group(),
            wide[["p_arxiv", "p_stackexchange"]].to_numpy(float),
            wide[list(G2)].to_numpy(float),
            theta[:, None, :],
        )
    np.testing.assert_allclose(
        table[table["seed"] == 1]["dp_arxiv/dL_stackexchange"], np.asarray(res.d_loss)[0, :, 1], rtol=1e-6, atol=1e-9
    )
    assert _run(["analyse", str(tmp_path / "sweep"), "--no-influence", "--out", str(tmp_path / "o2")]) == 0
    assert "influence of each" not in capsys.readouterr().out
    assert not (tmp_path / "o2" / "static_influence.csv").exists()
