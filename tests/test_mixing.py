"""``jaxlaws.mixing`` in a training loop of the user's own: the README example, every method under ``jit`` and
``vmap`` over seeds on a toy whose answer is known, eager ``update`` without retracing, the original's
hyper-parameters per m, DoGE against a transcription of the original's ``update_domain_weights``, and bad
input.

The toy (the README's): a linear flax regressor on three groups -- groups 0 and 1 the same noiseless linear
task, group 2 pure noise on features of its own. Nothing can be learned from group 2, training on it only
fits noise, and training on groups 0/1 lowers both their losses, so each method's own rule moves weight away
from group 2: Aioli's column sums of ``A`` (LearnParams decreases) are largest for groups 0/1, Skill-It's
graph rows (relative loss decreases of one-hot runs) likewise, DoReMi's excess loss over a reference is
positive on the learnable groups and ~0 on the noise, and DoGE's alignment of a group's gradient with the
validation gradient is largest for the groups whose gradients agree. The tests assert the sign only.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlaws import mixing

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Mixing methods in your own training loop") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def toy():
    """The README example, executed: its namespace (data, model, loss, the Aioli result of four seeds)."""
    ns: dict = {"__name__": "readme_example"}
    exec(compile(readme_example(), str(README), "exec"), ns)
    return ns


@pytest.mark.slow
def test_readme_example_runs_and_aioli_leaves_the_noise_group(toy):
    final, mixtures = np.asarray(toy["final"]), np.asarray(toy["mixtures"])
    assert final.shape == (4, 3) and mixtures.shape == (4, toy["steps"], 3)
    np.testing.assert_allclose(final.sum(1), 1.0, atol=1e-5)
    assert (final[:, 2] < 1 / 3).all() and (final[:, 2] < final[:, :2].min(1)).all(), final
    # normalised A with an EMA: p_max / p_min <= e^eta for the whole run (eta = 0.1 at m = 3)
    assert (final.max(1) / final.min(1) <= np.exp(0.1) + 1e-5).all()
    # LearnParams segments are one-hot-ish (0.5 on one group), the rest of the run Aioli's mixture
    assert np.isclose(mixtures[:, :72].max(-1), 0.5).all()
    assert not np.isclose(mixtures[:, 72:250].max(-1), 0.5).any()


def _train_fn(ns: dict, mixer: mixing.Mixer, kind: str, steps: int, full_matrix=True):
    """``train(seed, ref_params) -> (params, mixer state)``: the README loop with ``kind``'s signals
    (``full_matrix``: DoGE's, a bool or a function of the step)."""
    model, opt, loss_fn, make_batch = ns["model"], ns["opt"], ns["loss_fn"], ns["make_batch"]
    held_out, held_ids, m, B = ns["held_out"], ns["held_ids"], 3, ns["B"]
    optax = ns["optax"]

    def train(seed, ref_params):
        key = jax.random.key(seed)
        params = model.init(key, jnp.zeros((1, 16)))

        def step(carry, s):
            params, opt_state, ms = carry
            if kind in ("aioli", "skillit"):
                losses = jax.lax.cond(
                    mixer.observes(s),
                    lambda: mixing.group_losses(loss_fn, params, held_out, held_ids, m)[0],
                    lambda: jnp.zeros(m),
                )
                ms = mixer.update(ms, step=s, losses=losses)
            p, exact = mixer.mixture(ms)
            kg, kb, kv = jax.random.split(jax.random.fold_in(key, s), 3)
            gids = mixing.sample_groups(kg, p, B, exact)
            batch = make_batch(kb, gids)
            if kind == "doremi":
                _, grads, ms = mixing.doremi_step(mixer, ms, loss_fn, params, ref_params, batch, gids)
            elif kind == "doge":  # a random validation batch each step, i.i.d. over the pooled groups
                vg = mixing.sample_groups(kv, jnp.full(m, 1 / m), mixer.hparams["val_batch"])
                vb = make_batch(jax.random.fold_in(kv, 1), vg)
                full = full_matrix(s) if callable(full_matrix) else full_matrix
                _, grads, ms = mixing.doge_step(mixer, ms, loss_fn, params, batch, gids, vb, vg, 0.002, full)
            else:
                grads = jax.grad(lambda q: loss_fn(q, batch).mean())(params)
            updates, opt_state = opt.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state, ms), None

        (params, _, ms), _ = jax.lax.scan(step, (params, opt.init(params), mixer.init(key)), jnp.arange(steps))
        return params, ms

    return jax.jit(jax.vmap(train))


SEEDS = jnp.arange(2)


@pytest.mark.slow
def test_skillit_on_the_toy_leaves_the_noise_group(toy):
    """The graph from one-hot runs of each group (``skills_graph``), then Skill-It, both vmapped over seeds."""
    steps = 200
    held = lambda params: np.asarray(
        jax.vmap(  # noqa: E731
            lambda q: mixing.group_losses(toy["loss_fn"], q, toy["held_out"], toy["held_ids"], 3)[0]
        )(params)
    )
    start, end = np.zeros((2, 3, 3)), np.zeros((2, 3, 3))
    for i in range(3):
        params, _ = _train_fn(toy, mixing.constant(np.eye(3)[i]), "constant", steps)(SEEDS, None)
        init = jax.vmap(lambda s: toy["model"].init(jax.random.key(s), jnp.zeros((1, 16))))(SEEDS)
        start[:, i], end[:, i] = held(init), held(params)
    graphs = [mixing.skills_graph(start[s], end[s]) for s in range(2)]
    for G in graphs:  # training on noise lowers no loss; training on 0 or 1 lowers both
        assert G[0, :2].min() > 0.1 and G[1, :2].min() > 0.1 and G[2, :2].max() < 0.01 and G[:2, 2].max() < 0.01
    mixer = mixing.skillit(np.mean(graphs, 0), total_steps=400, update_steps=100)
    _, ms = _train_fn(toy, mixer, "skillit", 400)(SEEDS, None)
    p = np.asarray(ms.p_hist)
    assert p.shape == (2, 3, 3) and (p[..., 2] < 1 / 3).all() and (p[..., 2] < p[..., :2].min(-1)).all(), p


@pytest.mark.slow
def test_doremi_and_doge_on_the_toy_leave_the_noise_group(toy):
    steps = 200
    ref, _ = _train_fn(toy, mixing.constant(np.full(3, 1 / 3)), "constant", steps)(SEEDS, None)
    _, ms = _train_fn(toy, mixing.doremi(3), "doremi", steps)(SEEDS, ref)
    avg = np.asarray(jax.vmap(mixing.average_weights)(ms))
    assert (avg[:, 2] < 1 / 3).all() and (avg[:, 2] < avg[:, :2].min(1)).all(), avg
    assert (np.asarray(ms.n) == steps).all()
    _, ms = _train_fn(toy, mixing.doge(3), "doge", steps)(SEEDS, None)
    avg = np.asarray(jax.vmap(mixing.average_weights)(ms))
    assert (avg[:, 2] < 1 / 3).all() and (avg[:, 2] < avg[:, :2].min(1)).all(), avg
    assert (np.asarray(ms.m_steps)[:, -1] == steps).all()  # M recorded (full matrix) every step


@pytest.mark.slow
def test_doge_matrix_only_on_the_steps_that_record_it_equals_every_step(toy):
    """``M`` costs ``m`` more backward passes per step; with a traced ``full_matrix`` they run under a
    ``lax.cond`` on the steps where it holds (here every 7th) and only those steps enter the ring, each equal
    to the ``M`` of computing it on every step; the weights and parameters do not depend on ``full_matrix``."""
    steps, mixer = 30, mixing.doge(3, record=30)  # a ring as long as the run: every step's M kept
    (p_every, every), (p_some, some), (p_never, never) = (
        _train_fn(toy, mixer, "doge", steps, full_matrix=f)(SEEDS, None) for f in (True, lambda s: s % 7 == 3, False)
    )
    assert (np.asarray(every.m_steps) == np.arange(1, steps + 1)).all()
    picked = np.arange(3, steps, 7) + 1  # the update counts after steps 3, 10, 17, 24
    assert (np.asarray(some.m_steps)[:, -4:] == picked).all() and (np.asarray(some.m_steps)[:, :-4] == -1).all()
    assert (np.asarray(never.m_steps) == -1).all() and not np.asarray(never.m_hist).any()
    assert np.abs(np.asarray(every.m_hist)).max() > 1e-3  # a real matrix, not zeros
    want = np.asarray(every.m_hist)[:, picked - 1]
    np.testing.assert_allclose(np.asarray(some.m_hist)[:, -4:], want, rtol=1e-6, atol=1e-9)
    for st, params in ((some, p_some), (never, p_never)):
        np.testing.assert_allclose(np.asarray(st.log_w), np.asarray(every.log_w), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(np.asarray(st.w_sum), np.asarray(every.w_sum), rtol=1e-6)
        for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(p_every)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_trainer_doge_records_m_of_the_last_steps_before_every_boundary():
    """jaxlaws' trainer computes DoGE's ``M`` only on the last ``record`` updates of each segment of its loop
    (``StepContext.left``). At every boundary -- here after segments of 5, 2 (shorter than ``record``) and 5
    updates -- the records equal those of a policy that computes ``M`` on every update, and so do the
    parameters."""
    from jaxlaws.train import data as D
    from jaxlaws.train.loop import Loop, Runs, Schedule, train
    from jaxlaws.train.methods import DoGE, StepContext
    from jaxlaws.train.methods.base import MethodData
    from jaxlaws.train.model import preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, prepare_data

    class EveryStep(DoGE):  # M on every update: every update is "the last before a boundary"
        def gradient(self, state, ctx):
            return super().gradient(state, ctx._replace(left=1))

    model = preset("tiny", vocab_size=32, context=16, n_layers=1, d_model=32, n_heads=2, d_ff=64)
    cfg = TrainConfig(model, OptimConfig(total_steps=20, warmup_steps=2, lr=1e-2), batch_size=8, eval_batch_size=16)
    groups = D.synthetic_groups(2, overlap=0.3, seed=0, n_tokens=5_000, vocab_size=32)
    data = prepare_data(groups, cfg, max_eval_chunks=8, probe_chunks=4)
    got = {}
    for cls in (DoGE, EveryStep):
        pol = cls(m=2, model=model, optim=cfg.optim, batch_size=8, seq_len=16)
        recs: dict = {}

        def at(b, runs, pol=pol, recs=recs):
            recs[b] = pol.records(jax.device_get(runs.policy_state(0)), b)

        runs = train(Runs(Loop(cfg, 2, pol), data, [0]), Schedule(0, 12, evals=(5, 7)), at)
        got[cls] = recs, jax.device_get(runs.state(0).params)
    (lazy, p_lazy), (every, p_every) = got[DoGE], got[EveryStep]
    assert sorted(lazy) == sorted(every) == [5, 7, 12]
    for b in (5, 7, 12):
        assert [r[1] for r in lazy[b]] == [r[1] for r in every[b]] == list(range(b - 3, b + 1))
        for x, y in zip(lazy[b], every[b]):
            assert np.abs(y[3]).max() > 0
            np.testing.assert_allclose(x[3], y[3], rtol=1e-6, atol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(p_lazy), jax.tree_util.tree_leaves(p_every)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    # the per-domain validation passes sit in a branch of the step (a cond on `left`), not on every update
    pol = DoGE(m=2, model=model, optim=cfg.optim, batch_size=8, seq_len=16)
    ctx = lambda left: StepContext(  # noqa: E731
        p_lazy, jnp.zeros((8, 17), jnp.int32), jnp.arange(8) % 2, jnp.int32(0), jax.random.key(0), md, left
    )
    md = MethodData(data.train, data.val_windows, data.probe)
    assert "cond[" in str(jax.make_jaxpr(lambda n: pol.gradient(pol.init(jax.random.key(0)), ctx(n)))(3))


@pytest.mark.slow
def test_eager_update_does_not_retrace():
    """``update`` is jitted by its constructor: eager calls with new values (and new steps) reuse one trace."""
    m = 3
    cases = [
        (mixing.aioli(m, total_steps=400, batch_size=8), lambda s: dict(losses=jnp.full(m, 3.0 - s / 100))),
        (mixing.skillit(np.eye(m), total_steps=400), lambda s: dict(losses=jnp.full(m, 3.0 - s / 100))),
        (
            mixing.doremi(m),
            lambda s: dict(train_losses=jnp.full(m, 3.0 + s), ref_losses=jnp.full(m, 3.0), counts=jnp.ones(m)),
        ),
        (mixing.doge(m), lambda s: dict(grads={"w": jnp.ones((m, 4)) * s}, val_grad={"w": jnp.ones(4)}, lr=1e-3)),
    ]
    for mixer, signals in cases:
        st = mixer.init(jax.random.key(0))
        for s in range(30):
            st = mixer.update(st, step=s, **signals(s))
        assert mixer.update._cache_size() == 1, mixer.name


def test_the_original_hyperparameters_per_m_and_explicit_ones_otherwise():
    for m in (2, 3, 7):
        hp = mixing.aioli(m, total_steps=5000, batch_size=8).hparams
        assert {k: hp[k] for k in mixing.AIOLI_DEFAULTS[m]} == mixing.AIOLI_DEFAULTS[m]
        assert mixing.doge(m).hparams["mu"] == mixing.DOGE_DEFAULTS[m]["mu"]
        assert (
            mixing.skillit(np.eye(m), total_steps=5000).hparams["update_steps"]
            == mixing.SKILLIT_DEFAULTS[m]["update_steps"]
        )
    assert mixing.aioli(3, total_steps=5000, batch_size=8).hparams["eta"] == 0.1  # not m=2's 0.2
    with pytest.raises(ValueError, match=r"m=4 give eta, ema, lp_rounds, lp_steps, update_steps, ohf"):
        mixing.aioli(4, total_steps=5000, batch_size=8)
    with pytest.raises(ValueError, match=r"m=4 give ema"):
        mixing.aioli(4, total_steps=5000, batch_size=8, eta=0.1, lp_rounds=2, lp_steps=2, update_steps=100, ohf=0.5)
    cum = mixing.aioli(
        4, total_steps=5000, batch_size=8, eta=0.1, ema=None, lp_rounds=2, lp_steps=2, update_steps=100, ohf=0.5
    )
    assert cum.hparams["ema"] is None  # ema=None: the cumulative update
    assert mixing.aioli(2, total_steps=5000, batch_size=8, ema=None).hparams["ema"] is None
    with pytest.raises(ValueError, match=r"m=5 give eta, update_steps, window"):
        mixing.skillit(np.eye(5), total_steps=1000)
    with pytest.raises(ValueError, match=r"m=4 give mu, smoothing"):
        mixing.doremi(4)
    with pytest.raises(ValueError, match=r"m=5 give mu, val_batch"):
        mixing.doge(5)


def np_doge_original(train_grads, val_grads, val_ids, lr, mu, w_prev, max_norm=1.0):
    """``DogeTrainer.update_domain_weights`` with ``compute_full_matrix`` off and on, on flat gradients: every
    backward pass followed by ``clip_grad_norm_(max_norm)``; the mixed validation loss is the mean over the
    validation batch, so its gradient is the count-weighted mean of the per-domain ones (then clipped)."""

    def clip(g):
        n = np.linalg.norm(g)
        return g * min(1.0, max_norm / (n + 1e-6)) if n > 0 else g

    k = len(train_grads)
    flat = np.stack([clip(g) for g in train_grads])
    counts = np.array([(val_ids == j).sum() for j in range(k)], np.float64)
    mix = clip(sum(counts[j] / counts.sum() * val_grads[j] for j in range(k)))
    scores = lr * (flat @ mix)
    scores = np.clip(scores / (np.linalg.norm(flat, axis=1).mean() + 1e-6), 0, 5 * lr)
    log_w = np.log(w_prev) + scores / mu
    w = np.exp(log_w - log_w.max())
    M = flat @ np.stack([clip(v) if counts[j] else v for j, v in enumerate(val_grads)]).T
    return w / w.sum(), M


def test_doge_update_matches_the_original_clipping():
    """Made-up gradients with norms 0.4-3 (so some are clipped, some not): the weights and ``M`` equal the
    transcription; without the clipping of the validation gradient the scores would differ."""
    rng = np.random.default_rng(3)
    m, d, lr, mu = 3, 10, 1e-3, 0.01
    g = rng.normal(size=(m, d)) * np.array([[0.15], [1.0], [0.4]])
    v = rng.normal(size=(m, d)) * np.array([[0.8], [0.2], [0.5]]) + 0.3 * g
    val_ids = np.array([0, 0, 1, 2])
    w0 = np.array([0.5, 0.3, 0.2])
    w_want, M_want = np_doge_original(list(g), list(v), val_ids, lr, mu, w0)
    mixer = mixing.doge(m, mu=mu)
    st = mixer.init()._replace(log_w=jnp.log(jnp.asarray(w0, jnp.float32)))
    tree = lambda x: {"a": jnp.asarray(x[..., :4], jnp.float32), "b": jnp.asarray(x[..., 4:], jnp.float32)}  # noqa
    counts = np.bincount(val_ids, minlength=m)
    g_val = (counts / counts.sum()) @ v
    assert np.linalg.norm(g_val) > 1.0 and np.linalg.norm(g, axis=1).max() > 1.0  # the clipping matters
    new = mixer.update(st, grads=tree(g), val_grad=tree(g_val), lr=lr, val_grads=tree(v))
    np.testing.assert_allclose(np.asarray(mixer.weights(new)), w_want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(new.m_hist[-1]), M_want, rtol=1e-5, atol=1e-6)
    direction = mixing.combine(tree(g), mixer.weights(new))
    want_dir = sum(w_want[i] * g[i] * min(1.0, 1.0 / np.linalg.norm(g[i])) for i in range(m))
    np.testing.assert_allclose(np.concatenate([direction["a"], direction["b"]]), want_dir, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_sample_groups_exact_counts_and_iid_draws():
    p = jnp.asarray([0.5, 0.3, 0.2])
    ids = np.asarray(mixing.sample_groups(jax.random.key(0), p, 10, True))
    assert np.bincount(ids, minlength=3).tolist() == [5, 3, 2]
    keys = jax.random.split(jax.random.key(1), 500)
    iid = np.asarray(jax.vmap(lambda k: mixing.sample_groups(k, p, 10, False))(keys))
    freq = np.bincount(iid.ravel(), minlength=3) / iid.size
    assert np.abs(freq - np.asarray(p)).max() < 5 * np.sqrt(0.25 / iid.size)  # 5 standard errors
    traced = jax.jit(lambda k, e: mixing.sample_groups(k, p, 10, e))
    assert np.bincount(np.asarray(traced(jax.random.key(0), True)), minlength=3).tolist() == [5, 3, 2]


@pytest.mark.parametrize(
    "make, signals, match",
    [
        (
            lambda: mixing.aioli(3, total_steps=400, batch_size=8),
            dict(step=0, losses=jnp.ones(4)),
            r"losses must have shape \(3,\)",
        ),
        (
            lambda: mixing.skillit(np.eye(3), total_steps=400),
            dict(step=0, losses=jnp.ones((3, 1))),
            r"losses must have shape \(3,\)",
        ),
        (
            lambda: mixing.doremi(3),
            dict(train_losses=jnp.ones(2), ref_losses=jnp.ones(3), counts=jnp.ones(3)),
            r"train_losses must have shape \(3,\)",
        ),
        (
            lambda: mixing.doge(3),
            dict(grads={"w": jnp.ones((2, 4))}, val_grad={"w": jnp.ones(4)}, lr=1e-3),
            r"leading axis of size 3",
        ),
    ],
)
def test_bad_signals_are_a_clear_error(make, signals, match):
    mixer = make()
    with pytest.raises(ValueError, match=match):
        mixer.update(mixer.init(jax.random.key(0)), **signals)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: mixing.constant([0.5, 0.6]), "not on the simplex"),
        (lambda: mixing.constant([[0.5, 0.5]]), "one weight per group"),
        (lambda: mixing.aioli(3, total_steps=400, batch_size=8, prior=[0.5, 0.5]), r"aioli prior: expected .* \(3,\)"),
        (lambda: mixing.aioli(3, total_steps=50, batch_size=8), "no round fits"),
        (lambda: mixing.aioli(3, total_steps=400, batch_size=8, ema=1.5), r"ema must be in \[0, 1\) or None"),
        (lambda: mixing.skillit(np.ones((2, 3)), total_steps=100), "skills graph must have shape"),
        (lambda: mixing.skillit(np.eye(3), total_steps=1000, align="late"), "align must be"),
        (lambda: mixing.doge(3, clip=0.0), "clip must be > 0"),
    ],
)
def test_bad_constructor_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.slow
def test_mixing_is_model_agnostic():
    """``jaxlaws.mixing`` imports neither jaxlaws' trainer nor flax (it works with any model)."""
    import subprocess
    import sys

    code = (
        "import sys, jaxlaws.mixing; bad = [m for m in sys.modules if m.startswith(('flax', 'jaxlaws.train'))]; "
        "print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=README.parent)
