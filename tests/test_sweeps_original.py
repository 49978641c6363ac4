"""The original's output layout: run-name parsing, weight encodings, reading, writing, bad input."""

import pickle

import numpy as np
import pandas as pd
import pytest

from jaxlaws.sweeps import SweepError, validate_losses, validate_matrices
from jaxlaws.sweeps.dirichlet import load_dirichlet_grid
from jaxlaws.sweeps.original import (
    decode_weights,
    encode_weights,
    parse_run_name,
    read_original,
    weights_to_mixture,
    write_original,
)
from jaxlaws.sweeps.synthetic import method_sweep, reference_static_sweep, reference_sweep_bundle

PARENT = (
    "slimpj_pythia-160m_from_scratch_5000_break_2000_mixture_arxiv_stackexchange_weights_37_static_lr_0.0005"
    "_linear_warmup_cosine"
)
CHILD = (
    "slimpj_pythia-160m_from_scratch_5000_resume_37_2000_mixture_arxiv_stackexchange_weights_55_static_lr"
    "_0.0005_linear_warmup_cosine"
)
AIOLI = "slimpj_pythia-160m_from_scratch_5000_break_1000_stratified_arxiv_stackexchange_aioli_eta_0.2_update_250"
AIOLI_CHILD = (
    "slimpj_pythia-160m_from_scratch_5000_resume_bandit_1000_remaining_500_mixture_arxiv_stackexchange"
    "_weights_010_static"
)


def test_parse_names():
    p, c = parse_run_name(PARENT), parse_run_name(CHILD)
    assert (p.kind, p.break_step, p.weights, p.slices, p.method) == ("parent", 2000, "37", "arxiv_stackexchange", "")
    assert (c.kind, c.resume_tag, c.resume_step, c.remaining, c.weights) == ("child", "37", 2000, 100, "55")
    a, ac = parse_run_name(AIOLI), parse_run_name(AIOLI_CHILD)
    assert (a.kind, a.method, a.sample_rule, a.weights) == ("method", "aioli", "stratified", None)
    assert (ac.kind, ac.resume_method, ac.remaining) == ("child", "aioli", 500)  # legacy resume_bandit_
    for tag, meth in [
        ("greedy_nothing_eta_0.5_lookback_3", "skillit"),
        ("doge_trainer_mu_0.01", "doge"),
        ("doremi_trainer_mu_0.01", "doremi"),
        ("static", ""),
    ]:
        n = parse_run_name(f"slimpj_pythia-160m_from_scratch_5000_mixture_arxiv_stackexchange_weights_55_{tag}")
        assert n.method == meth and n.kind == ("method" if meth else "static")
    with pytest.raises(SweepError, match="not an original run name"):
        parse_run_name("my_run")


@pytest.mark.parametrize(
    "s,m,expected",
    [
        ("37", 2, (3, 7)),
        ("010", 2, (0, 10)),
        ("100", 2, (10, 0)),
        ("100", 3, (1, 0, 0)),
        ("0.2909910.3057860.403223", 3, (0.290991, 0.305786, 0.403223)),
        ("00.50.5", 3, (0, 0.5, 0.5)),
        ("0.50.50", 3, (0.5, 0.5, 0)),
        ("0.10.05", 2, (0.1, 0.05)),
        ("1e-050.99999", 2, (1e-05, 0.99999)),
    ],
)
def test_decode_weights(s, m, expected):
    np.testing.assert_array_equal(decode_weights(s, m), expected)


def test_weights_nine_groups_and_round_trip():
    for seed in range(5):
        for row in load_dirichlet_grid(9, 50, seed):
            # the %.6f values lose trailing zeros under str(float); raw values come back exactly
            np.testing.assert_array_equal(weights_to_mixture(encode_weights(row), 9), row)
    rng = np.random.default_rng(0)
    for p in rng.dirichlet(np.ones(4), 50):
        np.testing.assert_array_equal(weights_to_mixture(encode_weights(p), 4), p)
    np.testing.assert_array_equal(weights_to_mixture("37", 2), [0.3, 0.7])
    assert encode_weights([0.3, 0.7]) == "37" and encode_weights([0.0, 1.0]) == "010"
    with pytest.raises(ValueError, match="ambiguous"):
        decode_weights("111", 2)
    with pytest.raises(ValueError, match="cannot be read"):
        decode_weights("0.5x", 2)


def _renamed(sweep, names):
    losses = sweep.losses.assign(
        run=sweep.losses["run"].map(names), parent=sweep.losses["parent"].map(lambda r: names.get(r, ""))
    )
    mats = sweep.matrices.assign(run=sweep.matrices["run"].map(names))
    return validate_losses(losses, sweep.groups), validate_matrices(mats, sweep.m)


@pytest.fixture(scope="module")
def bundle():
    return reference_sweep_bundle(seeds=range(2))


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["arxiv_stackexchange", "arxiv_books_stackexchange"])
def test_write_read_round_trip(tmp_path, bundle, setting):
    sweep = bundle[setting][0]
    names = write_original(sweep, tmp_path)
    back, report = read_original(tmp_path, strict=True)
    losses, mats = _renamed(sweep, names)
    pd.testing.assert_frame_equal(back.losses, losses)
    pd.testing.assert_frame_equal(back.matrices, mats)
    assert report.skipped == [] and back.groups == sweep.groups
    kids = report.runs[report.runs["kind"] == "child"]
    assert (kids["parent"] != "").all()
    # fixed point: reading what we wrote and writing it again gives identical directories
    names2 = write_original(back, tmp_path / "again")
    assert set(names2.values()) == set(names.values())
    back2, _ = read_original(tmp_path / "again", strict=True)
    pd.testing.assert_frame_equal(back2.losses, back.losses)


def test_instruction_needs_groups_for_truncated_slices(tmp_path):
    sweep, _ = reference_static_sweep("instruction", extra_steps=())
    sub = sweep.losses[sweep.losses["seed"] == 0]
    from jaxlaws.sweeps import Sweep

    sweep = Sweep(sub, sweep.groups)
    names = write_original(sweep, tmp_path, task="instruction", max_steps=1000)
    with pytest.raises(SweepError, match="truncated"):
        read_original(tmp_path)
    back, _ = read_original(tmp_path, groups=sweep.groups, strict=True)
    pd.testing.assert_frame_equal(back.losses, _renamed(sweep, names)[0])


def _loss_pkl(path, groups, losses):
    with open(path, "wb") as f:
        pickle.dump(pd.DataFrame({"task_idx": list(groups), "task_loss": list(losses)}), f)


def _hand_tree(root):
    """The spec's parent/child example plus an Aioli break run and a legacy bandit child, built by hand."""
    g = ("arxiv", "stackexchange")
    d = root / "01022025"
    for name, files in {
        PARENT: {"val_seed_0_checkpoint-2000.pkl": (3.1, 3.4), "val_seed_0_trace.pkl": None},
        CHILD: {"val_seed_0_checkpoint-2250.pkl": (3.0, 3.3), "val_seed_0_checkpoint-2100.pkl": (3.05, 3.35)},
        AIOLI: {"val_seed_0_checkpoint-1000.pkl": (3.5, 3.6), "val_seed_0_checkpoint-750.pkl": (3.6, 3.7)},
        AIOLI_CHILD: {"val_seed_0_checkpoint-1500.pkl": (3.2, 3.1), "test_seed_0_checkpoint-1500.pkl": (3.25, 3.15)},
    }.items():
        (d / name).mkdir(parents=True)
        for fname, vals in files.items():
            if vals is None:
                (d / name / fname).write_bytes(pickle.dumps([1, 2]))
            else:
                _loss_pkl(d / name / fname, g, vals)
    with open(d / AIOLI / "val_seed_0_proportions_checkpoint-1000.pkl", "wb") as f:
        pickle.dump({0: 0.25, 1: 0.75}, f)
    np.save(d / AIOLI / "seed_0_aioli_matrices.npy", np.full((4, 2, 2), 0.25))
    (d / "output.log").write_text("log")
    return d


def test_read_hand_built_tree(tmp_path):
    _hand_tree(tmp_path)
    sweep, report = read_original(tmp_path)
    runs = report.runs.set_index("run")
    assert runs.loc[CHILD, "parent"] == PARENT and runs.loc[CHILD, "parent_p_arxiv"] == pytest.approx(0.3)
    assert runs.loc[AIOLI_CHILD, "parent"] == AIOLI and runs.loc[AIOLI_CHILD, "method"] == "aioli"
    child = sweep.losses[sweep.losses["run"] == CHILD]
    assert sorted(child["step"].unique()) == [2100, 2250]  # steps as named
    assert (child["steps_run"] == 100).all() and (child["break_step"] == 2000).all()
    np.testing.assert_allclose(child["p_arxiv"], 0.5)
    ac = sweep.losses[sweep.losses["run"] == AIOLI_CHILD]
    assert set(ac["split"]) == {"val", "test"} and (ac["steps_run"] == 500).all() and (ac["p_arxiv"] == 0).all()
    meth = sweep.losses[(sweep.losses["run"] == AIOLI) & (sweep.losses["step"] == 1000)]
    np.testing.assert_allclose(meth["p_arxiv"], 0.25)
    m750 = sweep.losses[(sweep.losses["run"] == AIOLI) & (sweep.losses["step"] == 750)]
    np.testing.assert_allclose(m750["p_arxiv"], 0.5)  # no proportions yet: uniform, and noted
    assert any(AIOLI in p for p, _ in report.notes)
    assert len(sweep.matrices) == 16 and (sweep.matrices["step"] == 1000).all()
    # a trace is not data: listed as ignored, not as skipped data (which makes `jaxlaws analyse` fail)
    assert any(p.endswith("val_seed_0_trace.pkl") for p, _ in report.ignored)
    assert report.skipped == []


@pytest.mark.parametrize(
    "corrupt,match",
    [
        (lambda d: _loss_pkl(d / PARENT / "val_seed_0_checkpoint-2000.pkl", ("arxiv",), (3.0,)), "missing group"),
        (
            lambda d: _loss_pkl(
                d / PARENT / "val_seed_0_checkpoint-2000.pkl", ("arxiv", "arxiv", "stackexchange"), (3.0, 3.0, 3.1)
            ),
            "duplicate group",
        ),
        (
            lambda d: _loss_pkl(
                d / PARENT / "val_seed_0_checkpoint-2000.pkl", ("arxiv", "stackexchange"), (np.nan, 3.1)
            ),
            "NaN",
        ),
        (
            lambda d: (d / AIOLI / "val_seed_0_proportions_checkpoint-1000.pkl").write_bytes(
                pickle.dumps({0: 0.5, 1: 0.7})
            ),
            "sum to 1.2",
        ),
        (
            lambda d: (
                (d / "slimpj_weird_run").mkdir()
                or _loss_pkl(d / "slimpj_weird_run" / "val_seed_0_checkpoint-1.pkl", ("arxiv", "stackexchange"), (1, 2))
            ),
            "slimpj_weird_run",
        ),
        (lambda d: (d / PARENT).rename(d / PARENT.replace("weights_37", "weights_46")), "no parent run"),
        (lambda d: (d / PARENT / "val_seed_0_checkpoint-2000.pkl").write_bytes(b"garbage"), "unreadable"),
    ],
)
def test_bad_input_strict_raises_and_lenient_reports(tmp_path, corrupt, match):
    d = _hand_tree(tmp_path)
    corrupt(d)
    with pytest.raises(SweepError, match=match):
        read_original(tmp_path, strict=True)
    try:
        _, report = read_original(tmp_path)
    except SweepError as e:  # lenient mode may still fail later if the dropped parent leaves a child orphaned
        assert "parent" in str(e)
        return
    assert any(match in reason or match in path for path, reason in report.skipped), report


def test_duplicate_run_in_two_date_folders(tmp_path):
    _hand_tree(tmp_path)
    d2 = tmp_path / "01032025" / PARENT
    d2.mkdir(parents=True)
    _loss_pkl(d2 / "val_seed_0_checkpoint-2000.pkl", ("arxiv", "stackexchange"), (3.0, 3.0))
    with pytest.raises(SweepError, match="run name also at"):
        read_original(tmp_path, strict=True)


def test_writer_rejects_collisions(tmp_path):
    a = method_sweep("aioli", 2, 0)[0]
    b_losses = a.losses.assign(
        run=a.losses["run"] + "_copy",
        parent=a.losses["parent"].where(a.losses["parent"] == "", a.losses["parent"] + "_copy"),
    )
    from jaxlaws.sweeps import Sweep

    both = Sweep(pd.concat([a.losses, b_losses]), a.groups)
    with pytest.raises(SweepError, match="same original run name"):
        write_original(both, tmp_path)
