"""Sweeps of jaxlaws.train: vmapped == separate, parent+child == uninterrupted, kill-and-resume, bad input.

A one-layer width-32 decoder on two synthetic Markov languages keeps every sweep to a few seconds on CPU.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from _faults import kill_after_runs
from conftest import xla_flags

from jaxlaws.sweeps.io import read_sweep
from jaxlaws.train import data as D
from jaxlaws.train.evaluate import make_evaluate
from jaxlaws.train.methods.base import Constant, MethodData, make_policy_run
from jaxlaws.train.model import preset
from jaxlaws.train.optim import OptimConfig, make_optimizer
from jaxlaws.train.step import init_state, run_keys
from jaxlaws.train.sweep import TrainConfig, dynamic_specs, dynamic_sweep, prepare_data, run_sweep, static_sweep

GROUPS = D.synthetic_groups(2, overlap=0.3, seed=0, n_tokens=20_000, vocab_size=32)
MODEL = preset("tiny", vocab_size=GROUPS.vocab_size, context=16, n_layers=1, d_model=32, n_heads=2, d_ff=64)
CFG = TrainConfig(
    MODEL, OptimConfig(total_steps=30, warmup_steps=3, lr=1e-2), batch_size=8, eval_every=10, eval_batch_size=64
)
DATA = prepare_data(GROUPS, CFG, max_eval_chunks=40)
MIX = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
KEY = ["run", "seed", "step", "split", "group"]


def _losses(sweep, kind=None):
    df = sweep.losses if kind is None else sweep.losses[sweep.losses.kind == kind]
    return df.sort_values(KEY).set_index(KEY)["loss"]


@pytest.fixture(scope="module")
def vmapped(tmp_path_factory):
    """The reference static sweep: 3 mixtures x 2 seeds, all 6 runs in one vmapped program."""
    work = tmp_path_factory.mktemp("vmapped")
    return static_sweep(DATA, CFG, MIX, [0, 1], work, runs_per_program=6, progress=False), work


@pytest.mark.slow
def test_training_reduces_loss_on_each_group():
    opt = make_optimizer(CFG.optim)
    init_key, data_key = run_keys(0)
    state = jax.jit(init_state, static_argnums=(0, 1))(MODEL, opt, init_key)
    evaluate = jax.jit(make_evaluate(MODEL, 2))
    before = np.asarray(evaluate(state.params, DATA.val))
    policy = Constant(2, MODEL, CFG.optim, 8, 16, (0.5, 0.5))
    run = jax.jit(make_policy_run(policy, opt, D.sample_batch))
    state, p = run(state, policy.init(None), data_key, MethodData(DATA.train), jnp.int32(30))
    after = np.asarray(evaluate(state.params, DATA.val))
    assert int(state.step) == 30
    np.testing.assert_array_equal(np.asarray(p), np.float32([0.5, 0.5]))  # the constant mixer's state
    assert (after < before - 0.3).all(), (before, after)


@pytest.mark.slow
def test_per_group_losses_use_the_right_group(vmapped):
    """Training mostly on a group lowers that group's loss more: p_syn0 = 0.9 beats 0.2 on syn0, and vice versa."""
    sweep, _ = vmapped
    t = sweep.losses[(sweep.losses.split == "test")].pivot_table(
        index=["p_syn0"], columns="group", values="loss", aggfunc="mean"
    )
    assert t.loc[0.9, "syn0"] < t.loc[0.2, "syn0"] and t.loc[0.2, "syn1"] < t.loc[0.9, "syn1"]


@pytest.mark.slow
def test_sweep_layout_and_round_trip(vmapped):
    sweep, work = vmapped
    assert len(sweep.runs()) == 6 and set(sweep.losses.kind) == {"static"}
    assert sorted(sweep.losses[sweep.losses.split == "val"].step.unique()) == [10, 20, 30]
    assert sorted(sweep.losses[sweep.losses.split == "test"].step.unique()) == [30]
    back = read_sweep(work / "sweep")
    pd.testing.assert_series_equal(_losses(back), _losses(sweep))


@pytest.mark.slow
def test_vmapped_equals_separate_runs(vmapped, tmp_path):
    sweep, _ = vmapped
    separate = static_sweep(DATA, CFG, MIX, [0, 1], tmp_path, runs_per_program=1, progress=False)
    np.testing.assert_allclose(_losses(separate), _losses(sweep), rtol=2e-5)


@pytest.mark.slow
def test_grouped_vmap_equals_full_vmap(vmapped, tmp_path):
    """5 runs per chunk, 2 vmapped at a time: 3 calls (one padded run), then a chunk of 1 run."""
    sweep, _ = vmapped
    grouped = static_sweep(DATA, CFG, MIX, [0, 1], tmp_path, runs_per_program=5, vmap_width=2, progress=False)
    np.testing.assert_allclose(_losses(grouped), _losses(sweep), rtol=2e-5)


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(vmapped, tmp_path, monkeypatch):
    sweep, _ = vmapped
    with monkeypatch.context() as mp, pytest.raises(RuntimeError, match="test hook"):
        kill_after_runs(mp, 3)
        static_sweep(DATA, CFG, MIX, [0, 1], tmp_path, runs_per_program=1, progress=False)
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    assert len(done) == 3 and not (tmp_path / "sweep").exists()
    resumed = static_sweep(DATA, CFG, MIX, [0, 1], tmp_path, runs_per_program=1, progress=False)
    assert all((tmp_path / "runs" / n).stat().st_mtime_ns == t for n, t in done.items())  # not recomputed
    np.testing.assert_allclose(_losses(resumed), _losses(sweep), rtol=2e-5)


@pytest.mark.slow
def test_parent_child_reproduces_uninterrupted_run(vmapped, tmp_path, monkeypatch):
    sweep, _ = vmapped
    dyn = dynamic_sweep(DATA, CFG, MIX[1:2], MIX[1:], [0], 20, 10, tmp_path, runs_per_program=1, progress=False)
    runs = dyn.runs()
    assert set(runs.kind) == {"parent", "child"} and len(runs) == 3
    child = dyn.losses[(dyn.losses.kind == "child") & (dyn.losses.p_syn0 == 0.5)]
    assert set(child.step) == {30} and (child.break_step == 20).all() and (child.steps_run == 10).all()
    assert (child.parent == "parent_B20_0.5-0.5").all()
    static = sweep.losses[(sweep.losses.run == "static_0.5-0.5") & (sweep.losses.seed == 0)]
    for split, step in (("val", 30), ("test", 30)):
        a = child[child.split == split].sort_values("group").loss.to_numpy()
        b = static[(static.split == split) & (static.step == step)].sort_values("group").loss.to_numpy()
        np.testing.assert_allclose(a, b, rtol=2e-5)
    parent = dyn.losses[(dyn.losses.kind == "parent") & (dyn.losses.step == 20)].sort_values("group")
    np.testing.assert_allclose(
        parent.loss, static[(static.split == "val") & (static.step == 20)].sort_values("group").loss, rtol=2e-5
    )
    other = dyn.losses[(dyn.losses.kind == "child") & (dyn.losses.p_syn0 == 0.9) & (dyn.losses.split == "val")]
    assert (
        np.abs(
            other.sort_values("group").loss.to_numpy()
            - child[child.split == "val"].sort_values("group").loss.to_numpy()
        ).max()
        > 1e-3
    )  # the child mixture matters

    # kill after the parent, resume: same result
    work2 = tmp_path / "again"
    with monkeypatch.context() as mp, pytest.raises(RuntimeError, match="test hook"):
        kill_after_runs(mp, 1)
        dynamic_sweep(DATA, CFG, MIX[1:2], MIX[1:], [0], 20, 10, work2, runs_per_program=1, progress=False)
    again = dynamic_sweep(DATA, CFG, MIX[1:2], MIX[1:], [0], 20, 10, work2, runs_per_program=1, progress=False)
    np.testing.assert_allclose(_losses(again), _losses(dyn), rtol=2e-5)


@pytest.mark.slow
def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        static_sweep(DATA, CFG, [[0.2, 0.3, 0.5]], [0], tmp_path / "a")
    with pytest.raises(ValueError, match=r"mixtures\[1\].*simplex"):
        static_sweep(DATA, CFG, [[0.2, 0.8], [0.6, 0.6]], [0], tmp_path / "a")
    with pytest.raises(ValueError, match="simplex"):
        static_sweep(DATA, CFG, [[1.2, -0.2]], [0], tmp_path / "a")
    with pytest.raises(ValueError, match="break_step=30"):
        dynamic_sweep(DATA, CFG, MIX[:1], MIX, [0], 30, 5, tmp_path / "a")
    with pytest.raises(ValueError, match="remaining_steps"):
        dynamic_sweep(DATA, CFG, MIX[:1], MIX, [0], 20, 20, tmp_path / "a")
    with pytest.raises(ValueError, match="unknown|not found|group"):
        D.load_groups("bundled", names=["code", "no_such_group"], seq_len=16)
    tiny = D.synthetic_groups(2, seed=0, n_tokens=100, n_eval_tokens=40, vocab_size=32)
    with pytest.raises(ValueError, match="syn"):
        prepare_data(tiny, CFG)  # too small for a batch of 8 windows of 16 tokens

    # a child whose parent checkpoint is missing
    children = [s for s in dynamic_specs(MIX[:1], MIX[:1], [0], 10, 5, 30) if s.kind == "child"]
    with pytest.raises(ValueError, match="parent checkpoint.*missing"):
        run_sweep(children, DATA, CFG, tmp_path / "b", progress=False)
    # a parent trained with another model: its checkpoint's configuration hash does not match
    dynamic_sweep(DATA, CFG, MIX[:1], MIX[:1], [0], 10, 5, tmp_path / "c", runs_per_program=1, progress=False)
    other = TrainConfig(
        preset("tiny", vocab_size=GROUPS.vocab_size, context=16, n_layers=1, d_model=32, n_heads=4, d_ff=64),
        CFG.optim,
        batch_size=8,
        eval_every=10,
        eval_batch_size=64,
    )
    with pytest.raises(ValueError, match="another configuration"):
        run_sweep(children, DATA, other, tmp_path / "c", progress=False)  # the work dir's config differs
    os.remove(tmp_path / "c" / "config.json")
    with pytest.raises(ValueError, match="parent checkpoint.*another configuration"):
        run_sweep(children, DATA, other, tmp_path / "c", progress=False)


@pytest.mark.slow
def test_cli_static_sweep(tmp_path, capsys):
    from jaxlaws.cli import main

    out = tmp_path / "cli"
    args = [
        "sweep",
        "static",
        "--data",
        "synthetic:2",
        "--preset",
        "micro",
        "--steps",
        "4",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        "--mixtures",
        "0.3,0.7;0.6,0.4",
        "--seeds",
        "0",
        "--max-eval-chunks",
        "4",
        "--runs-per-program",
        "1",  # as test_sweep_reliability.py's CLI test: one compiled program serves both files
        "--out",
        str(out),
        "--no-progress",
        "--format",
        "csv",
    ]
    assert main(args) == 0
    sweep = read_sweep(out / "sweep")
    assert len(sweep.runs()) == 2 and sweep.groups == ("syn0", "syn1")
    assert main(args) == 0  # resuming a finished sweep recomputes nothing and succeeds
    # a user error is one line with exit code 2 (the traceback only with --debug)
    bad = [
        "sweep",
        "static",
        "--data",
        "synthetic:3",
        "--steps",
        "4",
        "--seq-len",
        "16",
        "--out",
        str(tmp_path / "x"),
        "--mixtures",
        "grid",
    ]
    assert main(bad) == 2
    assert "m=2 grid" in capsys.readouterr().err
    with pytest.raises(ValueError, match="m=2 grid"):
        main(["--debug", *bad])


_MULTI = textwrap.dedent("""
    import json, sys
    import jax
    sys.path.insert(0, {tests!r})
    import test_train_sweep as t
    assert len(jax.devices()) == 4
    sweep = t.static_sweep(t.DATA, t.CFG, t.MIX, [0, 1], {work!r}, runs_per_program=3, progress=False)
    print(json.dumps(t._losses(sweep).tolist()))
""")


@pytest.mark.slow
def test_sharded_over_four_devices_equals_single_device(vmapped, tmp_path):
    """3 runs per program padded to 4 and sharded over 4 (forced host) devices give the same losses."""
    sweep, _ = vmapped
    env = {**os.environ, "XLA_FLAGS": xla_flags(4), "JAX_PLATFORMS": "cpu"}
    code = _MULTI.format(tests=os.path.dirname(__file__), work=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    np.testing.assert_allclose(json.loads(res.stdout.strip().splitlines()[-1]), _losses(sweep), rtol=2e-5)


def test_the_loop_stops_at_every_boundary_after_its_start_once():
    from jaxlaws.train.loop import Schedule

    s = Schedule(5, 30, evals=[5, 10, 20, 30], observe=[0, 3, 6], checkpoints=range(10, 30, 10), marks=[25, 40])
    assert s.boundaries() == [6, 10, 20, 25, 30]  # sorted, deduplicated, in (start, stop], stop always included
    assert Schedule(0, 7).boundaries() == [7]
