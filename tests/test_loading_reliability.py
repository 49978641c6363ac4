"""Loading never drops data quietly: damaged sweep tables, skipped original files, the Skill-It graphs
of an original tree, umask-respecting result files, atomic and stale-free ``analyse --out`` exports, and the
``jaxlaws analyse`` command line (exit code 2 with a one-line error naming file, group and seed)."""

import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_analysis_fits import G2, dynamic_sweep, static_sweep  # noqa: E402
from test_analysis_fits import method_sweep as fits_method_sweep  # noqa: E402

import jaxlaws  # noqa: E402
from jaxlaws.analysis import export as export_mod  # noqa: E402
from jaxlaws.analysis import pipeline  # noqa: E402
from jaxlaws.analysis.pipeline import analyse  # noqa: E402
from jaxlaws.cli import main  # noqa: E402
from jaxlaws.sweeps import Sweep, SweepError, concat_sweeps, read_sweep, reference, write_sweep  # noqa: E402
from jaxlaws.sweeps.original import read_original, write_original  # noqa: E402
from jaxlaws.sweeps.synthetic import method_sweep  # noqa: E402

BUNDLED_GRAPHS = Path(jaxlaws.__file__).parent / "data" / "aioli" / "skillit_graphs"


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


# ------------------------------------------------------------------------ sweep tables: row counts + hash


@pytest.fixture(scope="module")
def small_sweep():
    return method_sweep("aioli", 2, 0)[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_meta_records_rows_and_content_hash(tmp_path, small_sweep, fmt):
    path = write_sweep(small_sweep, tmp_path / "s", format=fmt)
    meta = json.loads((path / "meta.json").read_text())
    tables = meta["tables"]
    for name, df in (("losses", small_sweep.losses), ("matrices", small_sweep.matrices)):
        f = path / f"{name}.{fmt}"
        assert tables[name]["file"] == f.name
        assert tables[name]["rows"] == len(df) > 0
        assert tables[name]["bytes"] == f.stat().st_size
        assert tables[name]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert meta["schema_version"] == 1  # optional fields: older readers still read it


def _cut_lines(f: Path, n: int) -> None:
    lines = f.read_bytes().splitlines(keepends=True)
    f.write_bytes(b"".join(lines[:-n]))


def test_csv_cut_at_a_line_boundary_is_named(tmp_path, small_sweep):
    path = write_sweep(small_sweep, tmp_path / "s", format="csv")
    n = len(small_sweep.losses)
    _cut_lines(path / "losses.csv", 3)
    with pytest.raises(
        SweepError,
        match=rf"truncated or modified file .*losses\.csv: expected {n} rows, "
        rf"found {n - 3}",
    ):
        read_sweep(path)


def test_csv_cut_mid_line_is_a_truncated_file_not_a_nan(tmp_path, small_sweep):
    path = write_sweep(small_sweep, tmp_path / "s", format="csv")
    f = path / "matrices.csv"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(SweepError, match=r"truncated or modified file .*matrices\.csv: expected \d+ rows") as e:
        read_sweep(path)
    assert "NaN" not in str(e.value) and "last line is incomplete" in str(e.value)


def test_parquet_cut_is_named(tmp_path, small_sweep):
    path = write_sweep(small_sweep, tmp_path / "s", format="parquet")
    f = path / "losses.parquet"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(SweepError, match=r"truncated or modified file .*losses\.parquet: expected \d+ rows"):
        read_sweep(path)


def test_modified_value_is_detected_and_verify_false_reads_it(tmp_path, small_sweep):
    path = write_sweep(small_sweep, tmp_path / "s", format="csv")
    df = pd.read_csv(path / "losses.csv", keep_default_na=False)
    df.loc[0, "loss"] = df.loc[0, "loss"] + 1.0
    df.to_csv(path / "losses.csv", index=False, float_format="%.17g")
    n = len(small_sweep.losses)
    with pytest.raises(SweepError, match=rf"modified file .*losses\.csv: expected {n} rows, found {n}.*sha256"):
        read_sweep(path)
    back = read_sweep(path, verify=False)
    assert len(back.losses) == n


def test_old_sweep_without_counts_still_reads(tmp_path, small_sweep):
    path = write_sweep(small_sweep, tmp_path / "s", format="csv")
    meta = json.loads((path / "meta.json").read_text())
    del meta["tables"]
    (path / "meta.json").write_text(json.dumps(meta))
    pd.testing.assert_frame_equal(read_sweep(path).losses, small_sweep.losses)


def test_malformed_table_record_is_named(tmp_path, small_sweep):
    path = write_sweep(small_sweep, tmp_path / "s", format="csv")
    meta = json.loads((path / "meta.json").read_text())
    meta["tables"]["losses"]["rows"] = "many"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SweepError, match=r"meta\.json: malformed"):
        read_sweep(path)


# ------------------------------------------------------------------------ umask


def test_result_files_follow_the_umask(tmp_path, small_sweep, umask):
    for mask, dmode, fmode in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
        umask(mask)
        d = tmp_path / f"m{mask:o}"
        s = write_sweep(small_sweep, d / "sweep", format="csv")
        assert _mode(s) == dmode
        assert {_mode(f) for f in s.iterdir()} == {fmode}
        assert _mode(export_mod.write_json({"a": [1.0]}, d / "x.json")) == fmode
        write_original(small_sweep, d / "orig")
        date = d / "orig" / "01012025"
        assert _mode(date) == dmode
        assert {_mode(p) for p in date.rglob("*") if p.is_file()} == {fmode}


# ------------------------------------------------------------------------ original layout: skipped files


@pytest.fixture(scope="module")
def original_static(tmp_path_factory):
    """A small m=2 static sweep in the original layout (2 seeds x 9 mixtures)."""
    root = tmp_path_factory.mktemp("orig")
    sweep = static_sweep(G2, seeds=range(2))[0]
    names = write_original(sweep, root)
    return root, sorted(set(names.values()))


def _copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_load_report_separates_ignored_files_from_skipped_data(tmp_path, original_static):
    root = _copy_tree(original_static[0], tmp_path / "o")
    run = root / "01012025" / original_static[1][0]
    (run / "val_seed_0_trace.pkl").write_bytes(pickle.dumps([1, 2]))
    (run / "val_seed_0_checkpoint-5000.pkl").write_bytes(b"garbage")
    _, report = read_original(root)
    assert [Path(p).name for p, _ in report.skipped] == ["val_seed_0_checkpoint-5000.pkl"]
    assert [Path(p).name for p, _ in report.ignored] == ["val_seed_0_trace.pkl"]


def _damage(root: Path, runs: list[str]) -> tuple[Path, Path]:
    corrupt = root / "01012025" / runs[0] / "val_seed_0_checkpoint-5000.pkl"
    corrupt.write_bytes(b"\x80garbage")
    nan = root / "01012025" / runs[1] / "val_seed_1_checkpoint-5000.pkl"
    df = pickle.loads(nan.read_bytes())
    df.loc[0, "task_loss"] = np.nan
    nan.write_bytes(pickle.dumps(df))
    return corrupt, nan


def test_cli_skipped_files_are_printed_and_exit_2(tmp_path, original_static, capsys):
    root = _copy_tree(original_static[0], tmp_path / "o")
    corrupt, nan = _damage(root, original_static[1])
    assert main(["analyse", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{corrupt}: unreadable" in err and f"{nan}: NaN or infinite loss" in err
    assert err.strip().splitlines()[-1].startswith("jaxlaws: error: 2 file(s) or run(s) skipped")
    assert "--allow-skipped" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_allow_skipped_analyses_the_rest_and_still_lists_them(tmp_path, original_static, capsys):
    root = _copy_tree(original_static[0], tmp_path / "o")
    corrupt, nan = _damage(root, original_static[1])
    assert main(["analyse", str(root), "--allow-skipped"]) == 0
    out = capsys.readouterr()
    assert str(corrupt) in out.err and str(nan) in out.err
    assert "static law" in out.out


# ------------------------------------------------------------------------ Skill-It graphs of an original tree


@pytest.fixture(scope="module")
def skillit_tree(tmp_path_factory):
    """Skill-It probes for seeds 0, 1 in the original layout, without the graph (as the original writes them),
    and a ``skillit_graphs/`` folder of .npy files named as the original's."""
    base = tmp_path_factory.mktemp("skillit")
    sweep = concat_sweeps([method_sweep("skillit", 2, s)[0] for s in (0, 1)])
    write_original(sweep, base / "tree")
    removed = [p for p in (base / "tree").rglob("seed_*_matrix_skillit_graph.npy")]
    assert len(removed) == 2
    for p in removed:
        p.unlink()
    graphs = base / "skillit_graphs"
    graphs.mkdir()
    for s in range(5):
        np.save(graphs / f"slimpj_arxiv_stackexchange_normalized_seed_{s}.npy", reference.skillit_graph(G2, s))
    return sweep, base / "tree", graphs


@pytest.mark.slow
def test_skillit_analysis_of_an_original_tree_needs_the_graphs(skillit_tree):
    _, tree, _ = skillit_tree
    sweep, _ = read_original(tree)
    with pytest.raises(SweepError, match="no matrix 'skillit_graph'"):
        analyse(sweep)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["npy", "bundled_json"])
def test_skillit_graphs_are_loaded_per_method_run_and_seed(skillit_tree, which):
    original, tree, graphs = skillit_tree
    sweep, report = read_original(tree, skillit_graphs=graphs if which == "npy" else BUNDLED_GRAPHS)
    assert report.skipped == []
    g = sweep.matrices[sweep.matrices["name"] == "skillit_graph"]
    assert sorted(g["seed"].unique()) == [0, 1] and (g["step"] == 1000).all()
    for s in (0, 1):
        got = g[g["seed"] == s].sort_values(["row", "col"])["value"].to_numpy().reshape(2, 2)
        np.testing.assert_array_equal(got, reference.skillit_graph(G2, s))
    want = analyse(original).methods["skillit"].similarity
    got = analyse(sweep).methods["skillit"].similarity
    pd.testing.assert_frame_equal(got, want, rtol=1e-6)


def test_missing_skillit_graph_is_reported_with_its_expected_path(tmp_path, skillit_tree):
    _, tree, graphs = skillit_tree
    partial = tmp_path / "g"
    partial.mkdir()
    (partial / "slimpj_arxiv_stackexchange_normalized_seed_0.npy").write_bytes(
        (graphs / "slimpj_arxiv_stackexchange_normalized_seed_0.npy").read_bytes()
    )
    _, report = read_original(tree, skillit_graphs=partial)
    assert len(report.skipped) == 1
    where, reason = report.skipped[0]
    assert "seed 1" in reason and "slimpj_arxiv_stackexchange_normalized_seed_1.npy" in reason
    with pytest.raises(SweepError, match="seed 1"):
        read_original(tree, skillit_graphs=partial, strict=True)
    with pytest.raises(SweepError, match="not a directory"):
        read_original(tree, skillit_graphs=tmp_path / "nope")


@pytest.mark.slow
def test_cli_skillit_graphs_option(skillit_tree, capsys):
    _, tree, graphs = skillit_tree
    assert main(["analyse", str(tree), "--skillit-graphs", str(graphs)]) == 0
    assert "skillit at break step 1000" in capsys.readouterr().out
    assert main(["analyse", str(tree)]) == 2
    assert "no matrix 'skillit_graph'" in capsys.readouterr().err


# ------------------------------------------------------------------------ analyse --out


def _export_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


@pytest.mark.slow
def test_export_removes_stale_files_but_never_user_files(tmp_path, capsys):
    write_sweep(fits_method_sweep(G2, seeds=range(2))[0], tmp_path / "meth")
    write_sweep(dynamic_sweep(G2)[0], tmp_path / "dyn")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "my_table.csv").write_text("a\n1\n")
    assert main(["analyse", str(tmp_path / "meth"), "--out", str(out)]) == 0
    first = set(_export_files(out))
    assert "aioli_similarity.csv" in first and "params_aioli_trajectory_opt_1000.json" in first
    (out / "aioli_scale_fits.csv").write_text("edited by hand\n")  # a user edit survives as well
    assert main(["analyse", str(tmp_path / "dyn"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    now = set(_export_files(out))
    assert "params_dynamic.json" in now and "dynamic_two_group_params.csv" in now
    assert {"notes.txt", "my_table.csv", "aioli_scale_fits.csv"} <= now
    assert not any(n.startswith("aioli_") and n != "aioli_scale_fits.csv" for n in now)
    assert "params_aioli_trajectory_opt_1000.json" not in now
    assert "removed" in text and "aioli_scale_fits.csv" in text  # the kept, edited file is named
    manifest = json.loads((out / export_mod.MANIFEST).read_text())
    assert set(manifest["files"]) == now - {"notes.txt", "my_table.csv", "aioli_scale_fits.csv", export_mod.MANIFEST}
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != export_mod.MANIFEST]


def test_failed_export_leaves_the_previous_one_intact(tmp_path, monkeypatch, capsys):
    write_sweep(dynamic_sweep(G2)[0], tmp_path / "dyn")
    out = tmp_path / "out"
    assert main(["analyse", str(tmp_path / "dyn"), "--out", str(out)]) == 0
    before = _export_files(out)

    def half_then_fail(self, out_dir):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "dynamic_two_group_params.csv").write_text("group,k\narx")  # cut short
        raise OSError("disk full")

    monkeypatch.setattr(pipeline.Analysis, "export", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        main(["analyse", str(tmp_path / "dyn"), "--out", str(out)])
    assert _export_files(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporary leftovers either


def test_export_files_follow_the_umask(tmp_path, umask, capsys):
    write_sweep(dynamic_sweep(G2)[0], tmp_path / "dyn")
    umask(0o022)
    assert main(["analyse", str(tmp_path / "dyn"), "--out", str(tmp_path / "out")]) == 0
    assert {_mode(p) for p in (tmp_path / "out").iterdir()} == {0o644}


# ------------------------------------------------------------------------ the command line


def test_cli_one_line_errors(tmp_path, small_sweep, capsys):
    assert main(["analyse", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    write_sweep(small_sweep, tmp_path / "s")
    assert main(["analyse", str(tmp_path / "s"), "--skillit-graphs", str(tmp_path)]) == 2
    assert "original layout" in capsys.readouterr().err
    assert main(["analyse", str(tmp_path / "s"), "--n-random", "0"]) == 2
    assert "--n-random" in capsys.readouterr().err


def test_cli_no_prefix_matching(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["analyse", str(tmp_path), "--dyn", "linear"])
    assert e.value.code == 2 and "unrecognized arguments: --dyn" in capsys.readouterr().err


def _bad_static(kind: str) -> Sweep:
    sweep = static_sweep(G2, seeds=range(2))[0]
    df = sweep.losses.copy()
    m = (df["group"] == "arxiv") & (df["seed"] == 1)
    if kind == "negative":
        df.loc[m, "loss"] = -df.loc[m, "loss"]
    elif kind == "one_mixture":
        df = df[(df["seed"] == 0) | (df["run"] == "static_0")]
    return Sweep(df, G2)


@pytest.mark.slow
@pytest.mark.parametrize("kind,what", [("negative", "not positive"), ("one_mixture", "1 distinct mixture")])
def test_cli_analysis_errors_name_group_and_seed(tmp_path, capsys, kind, what):
    write_sweep(_bad_static(kind), tmp_path / "s")
    assert main(["analyse", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert line.startswith("jaxlaws: error:") and "seed 1" in line and what in line
    if kind == "negative":
        assert "group 'arxiv'" in line


# ------------------------------------------------------------------------ --allow-flagged (defensive wiring)


def _flagged(self):
    return pd.DataFrame({"table": ["static"], "group": ["arxiv"], "seed": [1], "flags": ["r2<0"]})


def test_cli_flagged_fits_exit_2_unless_allowed(tmp_path, monkeypatch, capsys):
    write_sweep(dynamic_sweep(G2)[0], tmp_path / "dyn")
    monkeypatch.setattr(pipeline.Analysis, "flagged", _flagged, raising=False)
    assert main(["analyse", str(tmp_path / "dyn"), "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr()
    assert "flagged" in out.out and "r2<0" in out.out and "--allow-flagged" in out.err
    assert not (tmp_path / "o").exists()  # nothing exported that rests on a flagged fit
    assert main(["analyse", str(tmp_path / "dyn"), "--allow-flagged", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr()
    assert "r2<0" in out.out and (tmp_path / "o" / "params_dynamic.json").exists()
    assert "exported anyway" in out.err and "left out of the means" in out.err  # says what became of them


def test_cli_no_flagged_fits_is_fine(tmp_path, monkeypatch, capsys):
    write_sweep(dynamic_sweep(G2)[0], tmp_path / "dyn")
    monkeypatch.setattr(pipeline.Analysis, "flagged", lambda self: _flagged(self).iloc[:0], raising=False)
    assert main(["analyse", str(tmp_path / "dyn")]) == 0


@pytest.mark.slow
def test_run_folders_below_the_search_depth_are_noted(tmp_path, original_static, capsys):
    root = tmp_path / "o"
    _copy_tree(original_static[0], root / "a")  # runs at depth 3: read
    _copy_tree(original_static[0] / "01012025", root / "c" / "d" / "deep")  # runs at depth 4: not searched
    sweep, report = read_original(root)
    assert len(report.runs) == len(original_static[1])
    assert any("not searched" in reason and path.endswith("deep") for path, reason in report.notes), report.notes
    assert main(["analyse", str(root)]) == 0
    assert "not searched" in capsys.readouterr().err
