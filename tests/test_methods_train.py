"""Online mixing methods trained for real (jaxlaws.train.methods): equivalences, resumption, known structure,
the gradient hooks against hand-built references, end-to-end sweeps with children, the CLI, bad input.

A one-layer width-32 decoder on synthetic Markov languages keeps every run to seconds on a CPU.
"""

import json
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from _faults import kill_at_step

from jaxlaws.analysis import analyse
from jaxlaws.sweeps.io import read_sweep
from jaxlaws.train import data as D
from jaxlaws.train.loop import Loop
from jaxlaws.train.methods import DoGE, DoReMi, StepContext, load_graph, skills_graph
from jaxlaws.train.methods.base import MethodData, sample_mixture
from jaxlaws.train.methods.run import train_policy
from jaxlaws.train.methods.sweep import make_policy, method_sweep
from jaxlaws.train.model import init_params, per_sample_loss, preset
from jaxlaws.train.optim import OptimConfig
from jaxlaws.train.step import per_group_grads
from jaxlaws.train.sweep import TrainConfig, default_vmap_width, prepare_data, static_sweep

GROUPS = D.synthetic_groups(2, overlap=0.3, seed=0, n_tokens=20_000, vocab_size=32)
MODEL = preset("tiny", vocab_size=32, context=16, n_layers=1, d_model=32, n_heads=2, d_ff=64)
CFG = TrainConfig(
    MODEL, OptimConfig(total_steps=60, warmup_steps=5, lr=1e-2), batch_size=8, eval_every=20, eval_batch_size=64
)
DATA = prepare_data(GROUPS, CFG, max_eval_chunks=32, probe_chunks=16)
AIOLI_HP = dict(update_steps=20, lp_steps=2, lp_rounds=2)
KIDS = np.array([[0.2, 0.8], [0.4, 0.6], [0.6, 0.4], [0.8, 0.2]])


def _loop(pol, width="auto"):
    """The trainer's configuration for ``pol`` on CFG (``"auto"``: the sweeps' default vmap width)."""
    return Loop(CFG, pol.m, pol, vmap_width=default_vmap_width(CFG) if width == "auto" else width)


def _frame(recs):
    return (
        pd.concat([pd.DataFrame(r["rows"]) for r in recs.values()])
        .sort_values(["seed", "step", "split", "group"])
        .reset_index(drop=True)
    )


def _records(recs):
    return (
        pd.concat([pd.DataFrame(r["records"]).assign(seed=s) for s, r in recs.items()])
        .sort_values(["seed", "name", "step", "index", "row", "col"])
        .reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def stratified(tmp_path_factory):
    """The stratified policy run of seed 0 (final parameters kept: DoReMi's reference below) and the boundaries
    the one loop stopped at."""
    from jaxlaws.train import loop as L

    work = tmp_path_factory.mktemp("stratified")
    stops: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(L, "_crash_point", stops.append)  # called at every boundary of loop.train
        pol = make_policy("stratified", 2, CFG)
        recs = train_policy(_loop(pol), DATA, [0], work, run="stratified", method="stratified", save_final=True)
    return recs, work, stops


@pytest.mark.slow
def test_stratified_policy_run_equals_the_static_sweep(stratified, tmp_path, monkeypatch):
    """The policy loop with a constant mixture trains the same batches and updates as the static loop, and
    both walk their boundaries through the one loop (jaxlaws.train.loop.train)."""
    from jaxlaws.train import loop as L

    recs, _, policy_stops = stratified
    assert policy_stops == [20, 40, 60]
    stops: list[int] = []
    monkeypatch.setattr(L, "_crash_point", stops.append)
    sw = static_sweep(DATA, CFG, [[0.5, 0.5]], [0], tmp_path / "s", progress=False)
    assert stops == [20, 40, 60]
    ours = _frame(recs)
    ref = sw.losses.sort_values(["seed", "step", "split", "group"]).reset_index(drop=True)
    assert len(ours) == len(ref) == (3 + 1) * 2
    np.testing.assert_allclose(ours["loss"], ref["loss"], rtol=0, atol=2e-6)


@pytest.mark.slow
def test_vmapped_seeds_equal_separate_runs(tmp_path):
    pol = make_policy("aioli", 2, CFG, **AIOLI_HP)
    together = train_policy(_loop(pol, None), DATA, [0, 1], tmp_path / "t", run="a", method="aioli")
    alone = {s: train_policy(_loop(pol), DATA, [s], tmp_path / f"a{s}", run="a", method="aioli")[s] for s in (0, 1)}
    np.testing.assert_allclose(_frame(together)["loss"], _frame(alone)["loss"], rtol=0, atol=2e-6)
    a, b = _records(together), _records(alone)
    assert len(a) == len(b) > 0 and (a["name"] == b["name"]).all()
    # A is a normalised solve of differences of probe losses (G ~ 1e-2): a 1e-6 float-reassociation
    # difference in the losses moves its entries by up to ~1e-4
    np.testing.assert_allclose(a["value"], b["value"], rtol=0, atol=2e-4)


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, monkeypatch):
    """A run killed after a mid-run checkpoint resumes (train + policy state) to the identical trajectory.

    Aioli: its policy state (the probe observations, the LearnParams rounds, the EMA mixture) is the richest of
    the methods; every method's state goes through the same checkpoint of ``train_policy``."""
    method = "aioli"
    pol = make_policy(method, 2, CFG, **AIOLI_HP)
    kw = dict(run=method, method=method, break_step=30, checkpoint_every=20)
    full = train_policy(_loop(pol), DATA, [0, 1], tmp_path / "full", **kw)
    with monkeypatch.context() as mp, pytest.raises(RuntimeError, match="test hook"):
        kill_at_step(mp, 40)
        train_policy(_loop(pol), DATA, [0, 1], tmp_path / "killed", **kw)
    assert not (tmp_path / "killed" / "runs").exists()
    meta = json.loads((tmp_path / "killed" / "resume" / method / "meta.json").read_text())
    assert meta["step"] == 40
    resumed = train_policy(_loop(pol), DATA, [0, 1], tmp_path / "killed", **kw)
    np.testing.assert_array_equal(_frame(resumed)["loss"], _frame(full)["loss"])
    np.testing.assert_array_equal(_records(resumed)["value"], _records(full)["value"])
    assert resumed[0]["outputs"] == full[0]["outputs"]


def _with_noise_group(seed=0, n=20_000, V=32):
    """Two Markov languages and a third group of i.i.d. uniform tokens (it helps nobody, itself hardly)."""
    g = D.synthetic_groups(2, overlap=0.5, seed=seed, n_tokens=n, vocab_size=V)
    rng = np.random.default_rng([seed, 7])
    splits = {}
    for sp in ("train", "val", "test"):
        s = g.split(sp)
        noise = rng.integers(0, V, size=int(s.lengths[0])).astype(np.uint16)
        splits[sp] = D.concat_splits([s.group(0), s.group(1), noise])
    return D.TokenGroups(("syn0", "syn1", "noise"), V, **splits)


@pytest.mark.slow
def test_aioli_learns_the_known_sign_structure_and_leaves_the_noise_group(tmp_path):
    cfg = TrainConfig(MODEL, OptimConfig(total_steps=300, warmup_steps=20, lr=1e-2), batch_size=12, eval_batch_size=64)
    data = prepare_data(_with_noise_group(), cfg, max_eval_chunks=32, probe_chunks=32)
    pol = make_policy("aioli", 3, cfg, update_steps=100, lp_steps=8, lp_rounds=3, normalize=False, eta=2.0, ema=None)
    recs = train_policy(Loop(cfg, 3, pol), data, [0, 1], tmp_path, run="aioli", method="aioli")
    for s, r in recs.items():
        df = pd.DataFrame(r["records"])
        a = df[(df["name"] == "aioli_A") & (df["index"] == 0)]
        A = np.zeros((3, 3))
        A[a["row"], a["col"]] = a["value"]
        # first round (raw A): training on a language lowers its own loss; training on noise raises the
        # languages' losses, and training on the languages raises the noise group's loss
        assert A[0, 0] > 0 and A[1, 1] > 0, A
        assert A[0, 2] < 0 and A[1, 2] < 0, A
        assert A[2, 0] < 0 and A[2, 1] < 0, A
        p = df[(df["name"] == "mixture")].sort_values("index").groupby("index")
        final = np.array([d.sort_values("col")["value"].to_numpy() for _, d in p][-1])
        assert final[2] < 1 / 3 and final[2] < final[:2].min(), (s, final)


# jitted once for the gradient tests: run eagerly, every operation of them would compile on its own
_init = jax.jit(init_params, static_argnums=0)
_sample = jax.jit(sample_mixture, static_argnums=(3, 4, 5))
_loss = jax.jit(per_sample_loss, static_argnums=1)


def _ctx(key=0):
    params = _init(MODEL, jax.random.key(key))
    inputs, gids = _sample(jax.random.key(1), DATA.train, jnp.array([0.5, 0.5]), True, 8, 16)
    return StepContext(
        params, inputs, gids, jnp.int32(10), jax.random.key(2), MethodData(DATA.train, DATA.val_windows, DATA.probe)
    )


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


@pytest.mark.slow
def test_doremi_gradient_is_the_excess_weighted_sum_of_group_gradients():
    ctx = _ctx()
    ref = _init(MODEL, jax.random.key(5))
    pol = DoReMi(m=2, model=MODEL, optim=CFG.optim, batch_size=8, seq_len=16, mu=0.5, smoothing=0.1)
    state = pol.init(jax.random.key(0), ref)
    _, grads, new = jax.jit(pol.gradient)(state, ctx)
    # reference: per-group mean losses and gradients, the DoReMi step written out in NumPy
    g = np.asarray(ctx.group_ids)
    lp = np.asarray(_loss(ctx.params, MODEL, ctx.inputs), np.float64)
    lr_ = np.asarray(_loss(ref, MODEL, ctx.inputs), np.float64)
    e = np.array([lp[g == i].mean() - lr_[g == i].mean() for i in range(2)])
    w = 0.5 * np.exp(0.5 * np.maximum(e, 0))
    w = 0.9 * w / w.sum() + 0.1 / 2
    gg = jax.jit(per_group_grads, static_argnums=(1, 4))(ctx.params, MODEL, ctx.inputs, ctx.group_ids, 2)
    want = sum(w[i] * _flat(jax.tree_util.tree_map(lambda x: x[i], gg)) for i in range(2))
    new = new.mix
    np.testing.assert_allclose(np.asarray(new.w), w, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new.e_hist[-1]), e, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_flat(grads), want, rtol=2e-4, atol=1e-7)
    assert int(new.e_steps[-1]) == 1 and np.allclose(np.asarray(new.w_sum), w, rtol=1e-5)


@pytest.mark.slow
def test_doge_scores_weights_and_gradient_match_a_reference():
    """As ``DogeTrainer.update_domain_weights``: every per-domain train gradient and the mixed validation
    gradient clipped (``clip_grad_norm_``), the per-domain validation gradients of M clipped too; the validation
    batch drawn i.i.d. from the pooled validation split (a group in proportion to its tokens)."""
    ctx = _ctx()
    pol = DoGE(m=2, model=MODEL, optim=CFG.optim, batch_size=8, seq_len=16, mu=0.01, val_batch=4, clip=0.05)
    state = pol.init(jax.random.key(0))
    _, grads, new = jax.jit(pol.gradient)(state, ctx)
    gg = jax.jit(per_group_grads, static_argnums=(1, 4))(ctx.params, MODEL, ctx.inputs, ctx.group_ids, 2)
    g = [_flat(jax.tree_util.tree_map(lambda x: x[i], gg)).astype(np.float64) for i in range(2)]
    g = [x * min(1.0, 0.05 / np.linalg.norm(x)) for x in g]  # clipped in place
    lengths = np.asarray(DATA.val_windows.lengths, np.float64)
    vin, vid = _sample(ctx.key, DATA.val_windows, jnp.asarray(lengths / lengths.sum(), jnp.float32), False, 4, 16)
    vv = jax.jit(per_group_grads, static_argnums=(1, 4))(ctx.params, MODEL, vin, vid, 2)
    v = [_flat(jax.tree_util.tree_map(lambda x: x[j], vv)).astype(np.float64) for j in range(2)]
    g_val = sum(np.mean(np.asarray(vid) == j) * v[j] for j in range(2))  # mean val-batch loss gradient
    g_val = g_val * min(1.0, 0.05 / np.linalg.norm(g_val))  # clipped like every backward pass
    v = [x * min(1.0, 0.05 / np.linalg.norm(x)) if np.linalg.norm(x) > 0 else x for x in v]
    lr = float(pol.lr(jnp.int32(10)))
    s = np.array([lr * gi @ g_val for gi in g]) / (np.mean([np.linalg.norm(x) for x in g]) + 1e-6)
    s = np.clip(s, 0, 5 * lr)
    w = np.exp(s / 0.01) / np.exp(s / 0.01).sum()
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(new.log_w)), w, rtol=1e-4)
    np.testing.assert_allclose(_flat(grads), w[0] * g[0] + w[1] * g[1], rtol=1e-3, atol=1e-8)
    M = np.array([[gi @ vj for vj in v] for gi in g])
    np.testing.assert_allclose(np.asarray(new.m_hist[-1]), M, rtol=1e-3, atol=1e-9)


@pytest.mark.slow
def test_doge_validation_batches_are_random_draws():
    """The original samples DoGE's validation batch at random from its pooled validation set; jaxlaws drew a
    fixed exact allocation ([2, 1, 1] at m=3, val batch 4). Over 400 steps' keys the group of a window is drawn
    with the split's token shares (frequencies within 5 standard errors) and the batch composition varies."""
    pol = DoGE(m=2, model=MODEL, optim=CFG.optim, batch_size=8, seq_len=16, val_batch=4)
    ctx = _ctx()
    draw = jax.jit(jax.vmap(lambda k: pol.validation_batch(ctx._replace(key=k))[1]))
    ids = np.asarray(draw(jax.random.split(jax.random.key(9), 400)))
    lengths = np.asarray(DATA.val_windows.lengths, np.float64)
    share = lengths / lengths.sum()
    freq = np.bincount(ids.ravel(), minlength=2) / ids.size
    assert np.abs(freq - share).max() < 5 * np.sqrt(share[0] * share[1] / ids.size), (freq, share)
    assert len({tuple(np.bincount(r, minlength=2)) for r in ids}) >= 4  # not one fixed composition


def test_original_skillit_graphs_load_and_wrong_shapes_are_refused(tmp_path):
    from tests.conftest import REF

    f = REF / "skillit_graphs" / "slimpj_arxiv_stackexchange_normalized_seed_0.json"
    G = load_graph(str(f), 2)
    raw = np.array(json.loads(f.read_text()))
    raw[~np.eye(2, dtype=bool) & (raw == 1.0)] = 0.5  # the original's rule on loading
    np.testing.assert_array_equal(G, raw)
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        load_graph(str(f), 3)
    np.save(tmp_path / "g.npy", G)
    np.testing.assert_array_equal(load_graph(str(tmp_path / "g.npy"), 2), G)
    with pytest.raises(ValueError, match="does not exist"):
        load_graph(str(tmp_path / "missing.npy"), 2)
    start = np.array([[4.0, 5.0], [4.0, 5.0]])
    end = np.array([[3.0, 4.5], [3.5, 4.0]])
    np.testing.assert_allclose(skills_graph(start, end), [[0.25, 0.1], [0.125, 0.2]])


@pytest.fixture(scope="module")
def aioli_sweep(tmp_path_factory):
    work = tmp_path_factory.mktemp("aioli_sweep")
    res = method_sweep(
        "aioli",
        DATA,
        CFG,
        [0, 1],
        work,
        hparams=AIOLI_HP,
        break_step=30,
        children=KIDS,
        remaining_steps=10,
        progress=False,
    )
    return res, work


@pytest.mark.slow
def test_method_sweep_writes_runs_matrices_and_children_that_analyse_reads(aioli_sweep):
    res, work = aioli_sweep
    sw = read_sweep(work / "sweep")
    kinds = sw.losses.drop_duplicates(["run", "seed"])["kind"].value_counts().to_dict()
    assert kinds == {"method": 2, "child": 2 * len(KIDS)}
    steps = sorted(sw.matrices[sw.matrices["name"] == "aioli_A"]["step"].unique())
    assert steps and max(steps) <= 30  # only rounds before the break feed the children's analysis
    ma = analyse(sw).methods["aioli"]
    assert set(ma.similarity["seed"]) == {0, 1}
    assert np.isfinite(ma.similarity[["sim", "b", "sim_method_sign"]].to_numpy()).all()
    # the children start from the method run's state at the break: the method run's own loss there
    lb = sw.losses[(sw.losses["run"] == "aioli") & (sw.losses["step"] == 30) & (sw.losses["split"] == "val")]
    assert len(lb) == 2 * 2
    assert list(res.final.columns[:2]) == ["seed", "run"] and (res.final["run"] == "aioli").all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["doremi", "doge"])
def test_two_stage_methods_train_their_averaged_weights(stratified, tmp_path, method):
    # DoReMi's reference is the stratified run of its work directory: the finished one there is reused, not retrained
    work = stratified[1] if method == "doremi" else tmp_path
    ref = work / "runs" / "stratified__seed0.json"
    before = ref.stat().st_mtime_ns if method == "doremi" else None
    res = method_sweep(method, DATA, CFG, [0], work, progress=False)
    if method == "doremi":
        assert ref.stat().st_mtime_ns == before
    w = np.asarray(res.info["avg_weights"][0])
    assert np.isclose(w.sum(), 1) and (w > 0).all()
    final = res.sweep.losses[res.sweep.losses["run"] == f"{method}_final"]
    np.testing.assert_allclose(final[["p_syn0", "p_syn1"]].to_numpy()[0], w, rtol=1e-6)
    assert res.final_run == f"{method}_final"


@pytest.mark.slow
def test_skillit_learns_its_graph_from_one_hot_runs(tmp_path):
    res = method_sweep(
        "skillit", DATA, CFG, [0], tmp_path, hparams={"update_steps": 20}, graph_steps=15, progress=False
    )
    L = res.sweep.losses[(res.sweep.losses["method"] == "skillit_graph") & (res.sweep.losses["split"] == "val")]
    start = np.zeros((2, 2))
    end = np.zeros((2, 2))
    for i, g in enumerate(("syn0", "syn1")):
        d = L[L["run"] == f"skillit_graph_{g}"].set_index(["step", "group"])["loss"]
        start[i] = [d[(0, h)] for h in ("syn0", "syn1")]
        end[i] = [d[(15, h)] for h in ("syn0", "syn1")]
    want = (start - end) / start
    np.testing.assert_allclose(res.info["graph"][0], want, rtol=1e-12)
    rec = res.sweep.matrices[res.sweep.matrices["name"] == "skillit_graph"]
    got = np.zeros((2, 2))
    got[rec["row"], rec["col"]] = rec["value"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert (want[np.arange(2), np.arange(2)] > 0).all()  # training on a group lowers its own loss


@pytest.mark.parametrize(
    "method, kw, match",
    [
        ("bogus", {}, "unknown method"),
        ("aioli", {"hparams": {"eta": 0.0}}, "eta must be > 0"),
        ("aioli", {"hparams": {"ohf": 0.5}}, r"ohf\) must be in \(1/m, 1\]"),
        ("aioli", {"hparams": {"ohf": 1.2}}, r"ohf\) must be in \(1/m, 1\]"),
        ("aioli", {"hparams": {"update_steps": 10, "lp_steps": 4}}, "must exceed the LearnParams steps"),
        ("aioli", {"hparams": {"temperature": 1}}, "unknown hyper-parameters"),
        ("skillit", {"hparams": {"eta": -1}}, "eta must be > 0"),
        ("doremi", {"hparams": {"mu": 0}}, "mu"),
        ("aioli", {"break_step": 60, "children": KIDS, "remaining_steps": 5}, "past the end"),
        ("aioli", {"break_step": 30}, "needs child mixtures"),
        ("stratified", {"break_step": 30, "children": KIDS, "remaining_steps": 5}, "record a matrix"),
        ("skillit", {"graph": np.eye(3)}, r"shape \(2, 2\)"),
    ],
)
def test_bad_input_is_refused_before_any_training(tmp_path, method, kw, match):
    with pytest.raises(ValueError, match=match):
        method_sweep(method, DATA, CFG, [0], tmp_path / "w", progress=False, **kw)
    assert not (tmp_path / "w" / "runs").exists() and not (tmp_path / "w" / "checkpoints").exists()


def _jaxlaws(*args):
    """``jaxlaws ARGS`` in process (``jaxlaws.cli.main``; compiled programs are shared with the other tests):
    ``(exit code, stdout, stderr)``."""
    import contextlib
    import io

    from jaxlaws.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


SMALL = [
    "--data",
    "synthetic:2",
    "--preset",
    "micro",
    "--steps",
    "40",
    "--warmup",
    "4",
    "--lr",
    "0.01",
    "--seq-len",
    "16",
    "--max-eval-chunks",
    "16",
    "--no-progress",
]


@pytest.fixture(scope="module")
def cli_aioli(tmp_path_factory):
    """``jaxlaws sweep method --method aioli`` with a break step and children: ``(result, out)``."""
    out = tmp_path_factory.mktemp("cli") / "aioli"
    r = _jaxlaws(
        "sweep",
        "method",
        "--method",
        "aioli",
        *SMALL,
        "--seeds",
        "0",
        "--update-steps",
        "18",
        "--lp-steps",
        "2",
        "--lp-rounds",
        "2",
        "--break-step",
        "20",
        "--children",
        "0.2,0.8;0.5,0.5;0.8,0.2",
        "--remaining-steps",
        "5",
        "--out",
        str(out),
    )
    return r, out


@pytest.mark.slow
def test_cli_sweep_method(cli_aioli):
    r, out = cli_aioli
    assert r.returncode == 0, r.stderr
    assert "final run 'aioli'" in r.stdout and (out / "sweep").is_dir()


@pytest.mark.slow
def test_cli_analyse_reads_the_method_sweep(cli_aioli):
    r, out = cli_aioli
    assert r.returncode == 0, r.stderr
    r = _jaxlaws("analyse", str(out / "sweep"))
    assert r.returncode == 0, r.stderr
    assert "aioli" in r.stdout and "sim" in r.stdout


@pytest.mark.slow
def test_cli_compare_prints_the_table(tmp_path):
    # the seed and Aioli settings of the cli_aioli fixture: its compiled Aioli programs are reused
    r = _jaxlaws(
        "compare",
        *SMALL,
        "--methods",
        "stratified,aioli",
        "--update-steps",
        "18",
        "--lp-steps",
        "2",
        "--lp-rounds",
        "2",
        "--out",
        str(tmp_path / "cmp"),
    )
    assert r.returncode == 0, r.stderr
    assert "| stratified |" in r.stdout and "| aioli |" in r.stdout
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert list(table["method"]) == ["stratified", "aioli"]
    assert table.loc[0, "d_ppl_mean"] == 0.0 and np.isfinite(table.loc[1, "d_ppl_mean"])


@pytest.mark.parametrize(
    "args, match",
    [
        (["sweep", "method", "--method", "nope", *SMALL, "--out", "x"], "unknown --method 'nope'"),
        (["sweep", "method", "--method", "aioli", *SMALL, "--mu", "0.1", "--out", "x"], "--mu does not apply"),
        (["sweep", "method", "--method", "aioli", *SMALL, "--one-hot-factor", "0.3", "--out", "x"], "ohf"),
        (["sweep", "method", "--method", "aioli", *SMALL, "--break-step", "10", "--out", "x"], "--children"),
        (["sweep", "method", "--method", "aioli", *SMALL, "--step", "10", "--out", "x"], "unrecognized"),
        (
            ["compare", *SMALL, "--methods", "stratified,aioli", "--prior", "0.5,x", "--out", "x"],
            "--prior must be 2 comma-separated numbers",
        ),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, monkeypatch, capsys, args, match):
    """In process (``jaxlaws.cli.main``): an exception escaping ``main`` would fail the test with its traceback."""
    from jaxlaws.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "x" / "runs").exists()


@pytest.mark.slow
def test_a_damaged_method_result_is_named_and_trained_again(tmp_path):
    pol = make_policy("stratified", 2, CFG)
    first = train_policy(_loop(pol), DATA, [0], tmp_path, run="s", method="stratified")
    f = tmp_path / "runs" / "s__seed0.json"
    f.write_text(f.read_text()[:-40])  # cut short
    with pytest.warns(UserWarning, match=r"s__seed0\.json"):
        again = train_policy(_loop(pol), DATA, [0], tmp_path, run="s", method="stratified")
    np.testing.assert_array_equal(_frame(again)["loss"], _frame(first)["loss"])


def test_cli_ema_none_is_aiolis_cumulative_update():
    import argparse

    from jaxlaws.train.methods.cli import add_method_args, hparams_from_args

    p = argparse.ArgumentParser()
    add_method_args(p)
    for flag, want in (("none", None), ("0.3", 0.3)):
        hp = hparams_from_args(p.parse_args(["--ema", flag]), "aioli", 2)
        assert hp == {"ema": want}
        assert make_policy("aioli", 2, CFG, **hp).mixer.hparams["ema"] == want
    assert make_policy("aioli", 2, CFG).mixer.hparams["ema"] == 0.1  # the original's m=2 value


def test_a_method_directory_of_an_earlier_jaxlaws_is_refused_not_retrained(tmp_path):
    """Run files and resume checkpoints without the loop's format marker are refused before any training."""
    from jaxlaws.train.checkpoint import write_verified_json
    from jaxlaws.train.methods.run import RUN_FORMAT

    pol = make_policy("stratified", 2, CFG)
    old = {"run_hash": "0" * 16, "run": "s", "seed": 0, "rows": [], "records": [], "outputs": {}}
    write_verified_json(tmp_path / "runs" / "s__seed0.json", old)
    with pytest.raises(ValueError, match=rf"earlier jaxlaws \(method run format < {RUN_FORMAT}.*new work directory"):
        train_policy(_loop(pol), DATA, [0], tmp_path, run="s", method="stratified")
    assert not (tmp_path / "resume").exists() and not (tmp_path / "final").exists()
