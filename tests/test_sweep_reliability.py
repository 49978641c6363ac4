"""Sweeps that survive damage, concurrency and configuration drift, and a command line that checks
every argument before it trains.

Each test damages, races or mis-configures a small sweep (the one-layer width-32 decoder on two synthetic
languages of ``tests/test_train_sweep.py``, 30 steps) and checks that jaxlaws names the problem, or repairs
exactly what is damaged, or resumes to the bit-identical result. The table of faults is
``docs/RELIABILITY_sweeps.md``.
"""

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _faults import kill_at_step

from jaxlaws.train import checkpoint as C
from jaxlaws.train import data as D
from jaxlaws.train import sweep as S
from jaxlaws.train.loop import Loop
from jaxlaws.train.model import preset
from jaxlaws.train.optim import OptimConfig
from jaxlaws.train.sweep import TrainConfig, dynamic_sweep, prepare_data, static_sweep

GROUPS = D.synthetic_groups(2, overlap=0.3, seed=0, n_tokens=20_000, vocab_size=32)
MODEL = preset("tiny", vocab_size=GROUPS.vocab_size, context=16, n_layers=1, d_model=32, n_heads=2, d_ff=64)
CFG = TrainConfig(
    MODEL, OptimConfig(total_steps=30, warmup_steps=3, lr=1e-2), batch_size=8, eval_every=10, eval_batch_size=64
)
DATA = prepare_data(GROUPS, CFG, max_eval_chunks=40)
MIX = np.array([[0.2, 0.8], [0.5, 0.5]])
KEY = ["run", "seed", "step", "split", "group"]
# one run per program: every sweep here then reuses the two training programs its first sweep compiled (fresh and
# restored states); vmapped runs are test_train_sweep.py's subject
KW = dict(runs_per_program=1, progress=False)


def _losses(sweep):
    return sweep.losses.sort_values(KEY).set_index(KEY)["loss"]


def _mtimes(work):
    return {p.name: p.stat().st_mtime_ns for p in (work / "runs").iterdir()}


def _dyn(work, **kw):
    """One parent (0.2, 0.8) broken at step 20, two children of 10 steps."""
    return dynamic_sweep(DATA, CFG, MIX[:1], MIX, [0], 20, 10, work, **{**KW, **kw})


@pytest.fixture(scope="module")
def dyn(tmp_path_factory):
    work = tmp_path_factory.mktemp("dyn") / "work"
    return _dyn(work), work


@pytest.fixture
def copy(dyn, tmp_path):
    """A private copy of the finished dynamic work directory (to damage)."""
    shutil.copytree(dyn[1], tmp_path / "work")
    return tmp_path / "work"


def _parent_ckpt(work):
    (ck,) = (work / "checkpoints").iterdir()
    return ck


def _child_file(work, p0):
    tag = S.mixture_tag((p0, 1 - p0))
    (f,) = [f for f in (work / "runs").iterdir() if f.name.startswith("child_") and f"_to_{tag}__" in f.name]
    return f


# ----------------------------------------------------------------------------------------------------------------
# damaged bookkeeping files: named, and --repair retrains exactly what is damaged


@pytest.mark.slow
def test_damaged_config_json_is_named_and_repaired(dyn, copy):
    before = _mtimes(copy)
    (copy / "config.json").write_text('{"config_hash": "ab')  # cut mid-write (not possible with jaxlaws' writes)
    with pytest.raises(ValueError, match=r"config\.json.*damaged.*repair"):
        _dyn(copy)
    got = _dyn(copy, repair=True)
    assert _mtimes(copy) == before  # nothing retrained: every run file is verified on its own
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))
    assert json.loads((copy / "config.json").read_text())["config_hash"] == S.config_hash(CFG, DATA)


@pytest.mark.slow
def test_damaged_run_file_is_named_and_only_it_retrained(dyn, copy):
    f = _child_file(copy, 0.5)
    good = f.read_text()
    f.write_text(good[: len(good) // 2])  # truncated
    with pytest.raises(ValueError, match=rf"{re.escape(f.name)}.*damaged"):
        _dyn(copy)
    rec = json.loads(good)  # valid JSON, one loss changed: only a checksum sees it
    rec["rows"][0]["loss"] += 0.25
    f.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=rf"{re.escape(f.name)}.*checksum"):
        _dyn(copy)
    before = {k: v for k, v in _mtimes(copy).items() if k != f.name}
    got = _dyn(copy, repair=True)
    after = _mtimes(copy)
    assert {k: after[k] for k in before} == before  # the other runs are untouched
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))  # retrained alone, as before: bit for bit


@pytest.mark.slow
def test_every_damaged_file_is_named_at_once(copy):
    a, b = _child_file(copy, 0.2), _child_file(copy, 0.5)
    rec = json.loads(a.read_text())
    rec.pop("sha256")
    C.write_verified_json(a, {**rec, "rows": rec["rows"][:-1]})  # a valid checksum, but a row is missing
    b.write_text("[1, 2]")
    with pytest.raises(
        ValueError,
        match=rf"{re.escape(a.name)}.*damaged \(its rows do not match.*"
        rf"{re.escape(b.name)}.*damaged too",
    ):
        _dyn(copy)


@pytest.mark.slow
def test_damaged_checkpoint_meta_is_named_and_the_parent_retrained(dyn, copy):
    ck = _parent_ckpt(copy)
    (ck / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"meta\.json.*damaged"):
        C.checkpoint_meta(ck)
    with pytest.raises(ValueError, match=rf"{ck.name}.*meta\.json.*damaged"):
        _dyn(copy)
    before = _mtimes(copy)
    got = _dyn(copy, repair=True)
    after = _mtimes(copy)
    assert all(after[k] == t for k, t in before.items() if k.startswith("child_"))  # children not retrained
    assert C.checkpoint_meta(ck)["step"] == 20
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))


@pytest.mark.slow
@pytest.mark.parametrize("what", ["_METADATA", "data file"])
def test_damaged_parent_state_is_detected_named_and_retrained(dyn, copy, what):
    ck = _parent_ckpt(copy)
    if what == "_METADATA":
        bad = ck / "state" / "_METADATA"
        bad.write_text("{garbage")
    else:  # flip bytes of the largest array file, same size
        bad = max(
            (p for p in (ck / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
            key=lambda p: p.stat().st_size,
        )
        raw = bytearray(bad.read_bytes())
        raw[len(raw) // 2 : len(raw) // 2 + 8] = bytes(8)
        bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"{bad.name}.*damaged"):
        _dyn(copy)  # the skip check reads the state, not only meta.json
    # a child that has to restore the damaged parent: named, not a TensorStore traceback
    progs = Loop(CFG, 2, sampler=D.sample_batch, vmap_width=S.default_vmap_width(CFG)).programs
    template = {"train": jax.tree_util.tree_map(lambda x: x[0], progs.init(jnp.stack([S.run_keys(0)[0]])))}
    with pytest.raises(ValueError, match=rf"{ck.name}.*damaged"):
        C.restore_checkpoint(ck, template, S.config_hash(CFG, DATA))
    before = _mtimes(copy)
    got = _dyn(copy, repair=True)
    assert all(_mtimes(copy)[k] == t for k, t in before.items() if k.startswith("child_"))
    C.verify_checkpoint(ck)  # whole again
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))


# ----------------------------------------------------------------------------------------------------------------
# configuration drift


@pytest.mark.slow
def test_everything_that_changes_results_is_hashed(dyn, copy):
    base = S.config_hash(CFG, DATA)
    for change in (dict(eval_every=15), dict(eval_batch_size=16)):
        assert S.config_hash(dataclasses.replace(CFG, **change), DATA) != base, change
    other = dataclasses.replace(CFG, eval_every=15)
    with pytest.raises(ValueError, match=r"eval_every \(10 -> 15\)"):
        dynamic_sweep(DATA, other, MIX[:1], MIX, [0], 20, 10, copy, **KW)

    # a custom sampler changes every batch
    def sampler(*a, **k):
        return D.sample_batch(*a, **k)

    assert S.config_hash(CFG, DATA, sampler=sampler) != base
    assert S.config_hash(CFG, DATA, sampler=D.sample_batch) == base


def test_seeds_that_alias_the_same_keys_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        static_sweep(DATA, CFG, MIX, [0, 2**32], tmp_path, **KW)  # jax.random.key(2**32) aliases key(0)
    with pytest.raises(ValueError, match="seed"):
        static_sweep(DATA, CFG, MIX, [-1], tmp_path, **KW)


def test_one_group_is_rejected_before_training(tmp_path):
    one = D.synthetic_groups(1, seed=0, n_tokens=20_000, vocab_size=32)
    data1 = prepare_data(one, CFG, max_eval_chunks=8)
    with pytest.raises(ValueError, match="at least 2 groups"):
        static_sweep(data1, CFG, [[1.0]], [0], tmp_path, **KW)
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------------------------------------------
# run names that cannot collide


def test_run_names_cannot_collide():
    assert S.mixture_tag((0.2, 0.8)) == "0.2-0.8"  # readable where the short form is exact
    close = [(0.2, 0.8), (0.2000004, 0.7999996), (0.12345671, 0.87654329), (0.12345674, 0.87654326)]
    tags = [S.mixture_tag(p) for p in close]
    assert len(set(tags)) == len(tags), tags
    assert tags[1].startswith("0.2-0.8")  # still readable
    specs = S.static_specs(np.array(close), [0], 30)
    assert len({s.key for s in specs}) == len(close)


@pytest.mark.slow
def test_a_new_close_mixture_does_not_reuse_an_old_run(dyn, tmp_path):
    work = tmp_path / "st"
    static_sweep(DATA, CFG, MIX[:1], [0], work, **KW)
    got = static_sweep(DATA, CFG, [[0.2000004, 0.7999996]], [0], work, **KW)
    assert len(list((work / "runs").iterdir())) == 2
    np.testing.assert_allclose(got.losses["p_syn0"], 0.2000004, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_a_run_file_of_another_mixture_is_an_error(tmp_path):
    work = tmp_path / "st"
    static_sweep(DATA, CFG, MIX, [0], work, **KW)
    a, b = sorted((work / "runs").iterdir())
    shutil.copy(a, b)  # b's name now holds a's rows (e.g. a name collision of an older jaxlaws)
    with pytest.raises(ValueError, match=rf"{re.escape(b.name)}.*mixture"):
        static_sweep(DATA, CFG, MIX, [0], work, **KW)


# ----------------------------------------------------------------------------------------------------------------
# the work-directory lock

_HOLD = textwrap.dedent("""
    import sys, time
    from jaxlaws.train.sweep import work_lock
    with work_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_work_lock_is_reentrant_and_names_a_live_holder(dyn, copy):
    with S.work_lock(copy):
        with S.work_lock(copy):  # the same process may take it again (methods call run_sweep many times)
            got = _dyn(copy)  # run_sweep inside the caller's lock
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))
    proc = _holder(copy)
    try:
        with pytest.raises(ValueError, match=rf"in use by process {proc.pid}"):
            _dyn(copy)
        with pytest.raises(ValueError, match=str(proc.pid)):
            with S.work_lock(copy):
                pass
    finally:
        proc.kill()
        proc.wait()
    got = _dyn(copy)  # released when the holder dies
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))


@pytest.mark.parametrize("flock", [True, False])
def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, monkeypatch, flock):
    if not flock:  # a file system without flock: the lock falls back to the PID written in the lock file

        def no_flock(*a):
            raise OSError(37, "No locks available")

        monkeypatch.setattr(C.fcntl, "flock", no_flock)
    lock = tmp_path / C.LOCK_NAME
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    with S.work_lock(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    if not flock:  # and a live holder is still refused
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            lock.write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
            with pytest.raises(ValueError, match=str(sleeper.pid)):
                with S.work_lock(tmp_path):
                    pass
        finally:
            sleeper.kill()
            sleeper.wait()


@pytest.mark.slow
def test_leftovers_of_killed_writers_are_cleaned(dyn, copy):
    (copy / ".sweep.old-x1" / "sweep").mkdir(parents=True)
    (copy / ".sweep.tmp-x2").mkdir()
    (copy / "runs" / ".a.json.x3.tmp").write_text("{")
    (copy / "checkpoints" / ".parent.tmp-x4").mkdir()
    got = _dyn(copy)
    left = [p.name for p in copy.rglob(".*") if p.name != C.LOCK_NAME]
    assert left == []
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))


# ----------------------------------------------------------------------------------------------------------------
# mid-run checkpoints: a killed long run resumes from its last checkpoint, bit for bit


@pytest.mark.slow
def test_killed_static_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path, caplog, monkeypatch):
    plain = static_sweep(DATA, CFG, MIX, [0], tmp_path / "plain", **KW)  # no checkpoints at all
    work = tmp_path / "killed"
    with monkeypatch.context() as mp, pytest.raises(RuntimeError, match="test hook"):
        kill_at_step(mp, 15)
        static_sweep(DATA, CFG, MIX, [0], work, checkpoint_every=15, **KW)
    assert not (work / "runs").exists() or not list((work / "runs").iterdir())
    metas = [C.checkpoint_meta(p) for p in (work / "resume").iterdir()]
    assert len(metas) == 1 and metas[0]["step"] == 15  # one run per program: the first is killed, the second waits
    with caplog.at_level(logging.INFO, logger="jaxlaws.train.sweep"):
        got = static_sweep(DATA, CFG, MIX, [0], work, checkpoint_every=15, **KW)
    assert "from step 15" in caplog.text
    np.testing.assert_array_equal(_losses(got), _losses(plain))
    assert not (work / "resume").exists() or not list((work / "resume").iterdir())  # finished: cleaned


@pytest.mark.slow
def test_killed_dynamic_parent_and_child_resume_bit_for_bit(dyn, tmp_path, caplog, monkeypatch):
    work = tmp_path / "killed"
    for step in (10, 25):  # inside the parent, then inside the children
        with monkeypatch.context() as mp, pytest.raises(RuntimeError, match="test hook"):
            kill_at_step(mp, step)
            _dyn(work, checkpoint_every=5)
    assert {C.checkpoint_meta(p)["step"] for p in (work / "resume").iterdir()} == {25}
    with caplog.at_level(logging.INFO, logger="jaxlaws.train.sweep"):
        got = _dyn(work, checkpoint_every=5)
    assert "from step 25" in caplog.text
    np.testing.assert_array_equal(_losses(got), _losses(dyn[0]))


@pytest.mark.slow
def test_damaged_resume_checkpoint_is_named_and_repaired(tmp_path, monkeypatch):
    plain = static_sweep(DATA, CFG, MIX, [0], tmp_path / "plain", **KW)
    work = tmp_path / "killed"
    with monkeypatch.context() as mp, pytest.raises(RuntimeError, match="test hook"):
        kill_at_step(mp, 10)
        static_sweep(DATA, CFG, MIX, [0], work, checkpoint_every=10, **KW)
    bad = sorted((work / "resume").iterdir())[0] / "meta.json"
    bad.write_text(bad.read_text()[:40])
    with pytest.raises(ValueError, match=r"meta\.json.*damaged"):
        static_sweep(DATA, CFG, MIX, [0], work, checkpoint_every=10, **KW)
    got = static_sweep(DATA, CFG, MIX, [0], work, checkpoint_every=10, repair=True, **KW)
    np.testing.assert_allclose(_losses(got), _losses(plain), rtol=2e-5)


# ----------------------------------------------------------------------------------------------------------------
# files follow the user's umask


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        C.atomic_write_json(tmp_path / "a.json", {"x": 1})
        C.save_checkpoint(tmp_path / "ck", {"a": np.arange(3.0)}, {"config_hash": "h"})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "ck" / "meta.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o777 & ~mask


@pytest.mark.slow
def test_sweep_files_follow_the_umask(dyn):
    mask = os.umask(0)
    os.umask(mask)
    work = dyn[1]
    for f in [work / "config.json", *(work / "runs").iterdir(), _parent_ckpt(work) / "meta.json"]:
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f


# ----------------------------------------------------------------------------------------------------------------
# the command line: every argument checked before any training

CLI = [
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
    "--seeds",
    "0",
    "--max-eval-chunks",
    "4",
    "--no-progress",
    "--format",
    "csv",
]


@pytest.fixture
def no_training(monkeypatch):
    def trained(*a, **k):
        raise AssertionError("trained before checking the arguments")

    monkeypatch.setattr(S, "_train_chunk", trained)


def _err(capsys, args):
    from jaxlaws.cli import main

    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "bundled", "--groups", "code"], "at least 2 groups"),
        (["--groups", "syn0,syn0"], "duplicate"),
        (["--mixtures", "dirichlet:abc"], r"dirichlet:N.*'abc'"),
        (["--mixtures", "dirichlet:0"], "dirichlet"),
        (["--mixtures", "dirichlet:3:x"], r"SEED.*'x'"),
        (["--mixtures", "dirichlet:3:0:-1"], "ALPHA"),
        (["--mixtures", "dirichlet:3:0:1:7"], "dirichlet:N"),
        (["--mixtures", "0.2,0.8;abc"], "cannot read mixtures"),
        (["--mixtures", "0.2,0.8;0.2,0.8"], "twice"),
        (["--data", "synthetic:abc"], "synthetic:M"),
        (["--data", "synthetic:1"], "at least 2 groups"),
        (["--data", "synthetic:2:1.5"], "OVERLAP"),
        (["--seeds", "0,0"], "duplicate"),
        (["--seeds", "-1"], r"\[0, 2\^32\)"),
        (["--checkpoint-every", "-5"], "--checkpoint-every"),
        (["--eval-every", "-1"], "--eval-every"),
        (["--batch-size", "0"], "--batch-size"),
        (["--max-eval-chunks", "0"], "--max-eval-chunks"),
        (["--runs-per-program", "0"], "--runs-per-program"),
        (["--steps", "0"], "--steps"),
        (["--seq-len", "0"], "--seq-len"),
    ],
)
def test_cli_static_rejects_bad_arguments_before_training(tmp_path, capsys, no_training, extra, message):
    code, err = _err(capsys, ["sweep", "static", *CLI, "--mixtures", "0.3,0.7", *extra, "--out", str(tmp_path)])
    assert code == 2, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("jaxlaws: error:"), err
    assert re.search(message, err), err


def test_cli_mixture_file_and_out_are_checked(tmp_path, capsys, no_training):
    bad = tmp_path / "mix.txt"
    bad.write_text("0.2,0.8\n0.5,zero\n")
    code, err = _err(capsys, ["sweep", "static", *CLI, "--mixtures", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2 and "mix.txt" in err, err
    (tmp_path / "file").write_text("")
    code, err = _err(capsys, ["sweep", "static", *CLI, "--mixtures", "0.3,0.7", "--out", str(tmp_path / "file")])
    assert code == 2 and "not a directory" in err, err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--break-step", "4", "--remaining-steps", "1"], "break_step=4"),
        (["--break-step", "2", "--remaining-steps", "5"], "remaining_steps=5"),
        (["--break-step", "2", "--remaining-steps", "1", "--children", "dirichlet:x"], "dirichlet:N"),
    ],
)
def test_cli_dynamic_rejects_bad_arguments_before_training(tmp_path, capsys, no_training, extra, message):
    code, err = _err(
        capsys,
        ["sweep", "dynamic", *CLI, "--parents", "0.5,0.5", "--children", "0.3,0.7", *extra, "--out", str(tmp_path)],
    )
    assert code == 2 and re.search(message, err), err


@pytest.mark.slow
def test_cli_repair_and_checkpoint_every(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["sweep", "static", *CLI, "--mixtures", "0.3,0.7;0.6,0.4", "--checkpoint-every", "2", "--out", str(out)]
    args += ["--runs-per-program", "1"]  # the repair retrains its one run with the program that trained both
    assert _err(capsys, args)[0] == 0
    f = sorted((out / "runs").iterdir())[0]
    f.write_text(f.read_text()[:-10])
    code, err = _err(capsys, args)
    assert code == 2 and f.name in err and "--repair" in err, err
    assert _err(capsys, [*args, "--repair"])[0] == 0
    assert json.loads(f.read_text())["rows"]


def test_work_directory_of_an_older_jaxlaws_is_refused_with_the_reason(tmp_path):
    C.atomic_write_json(
        tmp_path / "config.json",
        {"config_hash": S._legacy_config_hash(CFG, DATA), **CFG.trajectory_dict(), "groups": DATA.names},
    )
    with pytest.raises(
        ValueError,
        match=r"earlier jaxlaws.*eval_every \(unset -> 10\)|eval_every \(unset -> 10\)"
        r".*earlier jaxlaws",
    ):
        static_sweep(DATA, CFG, MIX, [0], tmp_path, **KW)


def test_overwriting_a_checkpoint_leaves_no_moment_without_a_complete_one(tmp_path, monkeypatch):
    """The old checkpoint stays complete until the new one, complete, replaces it in one step."""
    ck = tmp_path / "ck"
    C.save_checkpoint(ck, {"a": np.arange(3.0)}, {"config_hash": "h", "step": 0})
    whole = []

    def spy(real):
        def call(*a, **k):  # after every rename or removal: is there a complete checkpoint at ck?
            out = real(*a, **k)
            whole.append((ck / "meta.json").is_file() and (ck / "state" / "_METADATA").is_file())
            return out

        return call

    for name in ("replace", "rename", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, spy(getattr(os, name)))
    for step in (1, 2):
        C.save_checkpoint(ck, {"a": np.arange(3.0) + step}, {"config_hash": "h", "step": step})
    assert whole and all(whole), whole
    assert C.verify_checkpoint(ck)["step"] == 2
    np.testing.assert_array_equal(C.restore_checkpoint(ck, {"a": np.zeros(3)}, "h")["a"], np.arange(3.0) + 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no .ck.tmp-* / .ck.old-* left


def test_a_multi_process_checkpoint_restores_anywhere_and_refuses_the_wrong_structure(tmp_path, monkeypatch):
    """A process of a multi-process job saves its own runs as one msgpack file (orbax would write host arrays from
    process 0 only: process 1's checkpoint held no data). It restores in a single process -- a job restarted with
    another number of processes -- and a target of another shape is refused as damaged, naming the file."""
    tree = {"train": {"w": np.arange(6.0).reshape(2, 3), "opt": (np.float32(0.5), np.ones(4, np.int32))}}
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    C.save_checkpoint(tmp_path / "ck", tree, {"config_hash": "h"})
    monkeypatch.undo()
    assert (tmp_path / "ck" / "state" / C.MSGPACK).is_file()
    target = jax.tree_util.tree_map(np.zeros_like, tree)
    got = C.restore_checkpoint(tmp_path / "ck", target, "h")
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(tree)):
        np.testing.assert_array_equal(a, b)
        assert np.result_type(a) == np.result_type(b)
    wrong = {"train": {"w": np.zeros((3, 2)), "opt": (np.float32(0), np.zeros(4, np.int32))}}
    with pytest.raises(C.DamagedFileError, match=r"state\.msgpack.*expected float64 \(3, 2\)"):
        C.restore_checkpoint(tmp_path / "ck", wrong, "h")
