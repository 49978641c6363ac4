"""Model, optimiser and schedule of jaxlaws.train against closed forms and float64 numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlaws.train import model as M
from jaxlaws.train.evaluate import make_eval_set, make_evaluate
from jaxlaws.train.model import Decoder, ModelConfig, n_params, preset
from jaxlaws.train.optim import OptimConfig, decay_mask, lr_schedule, make_optimizer
from jaxlaws.train.step import group_means, per_group_grads

# jitted (eager flax is slow on a busy CPU); the configuration is static
init_params = jax.jit(M.init_params, static_argnums=0)
per_sample_loss = jax.jit(M.per_sample_loss, static_argnums=1)
CFG = preset("tiny", vocab_size=24, context=12, n_layers=1, d_model=32, n_heads=2, d_ff=64)


def _np_schedule(s, lr0, w, tot, start=1e-7, end=1e-4):
    s = np.asarray(s, np.float64)
    warm = start + (lr0 - start) * s / w
    cos = end + (lr0 - end) * 0.5 * (1 + np.cos(np.pi * (np.minimum(s, tot) - w) / (tot - w)))
    return np.where(s < w, warm, cos)


def test_schedule_closed_form():
    cfg = OptimConfig(total_steps=1000, warmup_steps=100, lr=5e-4)
    s = np.array([0, 1, 50, 99, 100, 101, 550, 999, 1000, 1001, 5000])
    got = np.asarray(jax.vmap(lr_schedule(cfg))(jnp.asarray(s)))
    np.testing.assert_allclose(got, _np_schedule(s, 5e-4, 100, 1000), rtol=2e-6)
    assert got[0] == pytest.approx(1e-7) and got[4] == pytest.approx(5e-4) and got[-1] == pytest.approx(1e-4)


@pytest.mark.slow
def test_optimizer_applies_schedule_and_decay_mask():
    """Constant gradient 1 => Adam's bias-corrected direction is exactly 1, so update_s = -lr(s) (+ decay)."""
    cfg = OptimConfig(total_steps=20, warmup_steps=5, lr=1e-2, weight_decay=0.1, clip=1e9, eps=0.0)
    opt = make_optimizer(cfg)
    params = {"dense": {"kernel": jnp.full((2,), 3.0), "bias": jnp.full((2,), 3.0)}}
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    state = opt.init(params)
    lrs = _np_schedule(np.arange(20), 1e-2, 5, 20)
    for s in range(20):
        upd, state = opt.update(grads, state, params)
        np.testing.assert_allclose(upd["dense"]["bias"], -lrs[s], rtol=5e-5)
        np.testing.assert_allclose(upd["dense"]["kernel"], -lrs[s] * (1 + 0.1 * params["dense"]["kernel"]), rtol=5e-5)
        params = optax.apply_updates(params, upd)


def test_clipping_to_global_norm():
    opt = make_optimizer(OptimConfig(total_steps=10, warmup_steps=0, lr=1.0, weight_decay=0.0))
    params = {"kernel": jnp.zeros(4)}
    big = {"kernel": jnp.array([30.0, 40.0, 0.0, 0.0])}  # norm 50 -> clipped to norm 1
    _, st = opt.update(big, opt.init(params), params)
    mu = st[1][0].mu["kernel"]  # first Adam moment = (1 - b1) * clipped gradient
    np.testing.assert_allclose(mu, 0.1 * np.array([0.6, 0.8, 0, 0]), rtol=1e-6)


@pytest.mark.slow
def test_decay_mask_excludes_biases_and_norms():
    mask = decay_mask(init_params(CFG, jax.random.key(0)))
    flat = {"/".join(str(k.key) for k in path): v for path, v in jax.tree_util.tree_leaves_with_path(mask)}
    assert flat["embed_in/embedding"] and flat["embed_out/kernel"] and flat["block_0/qkv/kernel"]
    assert not flat["block_0/qkv/bias"] and not flat["block_0/ln_attn/scale"]
    assert not flat["ln_final/bias"] and not flat["ln_final/scale"]


def test_pythia_parameter_count():
    """Pythia-160M has 162,322,944 parameters (12 layers, d 768, FFN 3072, vocab 50304, untied)."""
    cfg = preset("pythia-160m")
    shapes = jax.eval_shape(lambda k: M.init_params(cfg, k), jax.random.key(0))
    d, f, v, n = 768, 3072, 50304, 12
    per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    assert n_params(shapes) == 2 * v * d + n * per_layer + 2 * d == 162_322_944
    assert cfg.rotary_dim == 16  # 25% of the 64 head dimensions


@pytest.mark.slow
def test_per_sample_loss_matches_numpy_and_is_causal():
    params = init_params(CFG, jax.random.key(1))
    x = jax.random.randint(jax.random.key(2), (3, 13), 0, 24)
    apply = jax.jit(lambda p, t: Decoder(CFG).apply({"params": p}, t))
    logits = np.asarray(apply(params, x[:, :-1]), np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    y = np.asarray(x[:, 1:])
    ref = -np.take_along_axis(logp, y[..., None], -1)[..., 0].mean(-1)
    np.testing.assert_allclose(per_sample_loss(params, CFG, x), ref, rtol=1e-5)
    x2 = x.at[:, 8].set((x[:, 8] + 1) % 24)  # changing token 8 must not change predictions before it
    l2 = np.asarray(apply(params, x2[:, :-1]), np.float64)
    np.testing.assert_allclose(l2[:, :8], logits[:, :8], atol=1e-5)
    assert np.abs(l2[:, 8:] - logits[:, 8:]).max() > 1e-4


@pytest.mark.slow
def test_bfloat16_compute_keeps_fp32_params():
    cfg = preset("tiny", vocab_size=24, context=12, n_layers=1, d_model=32, n_heads=2, d_ff=64, dtype="bfloat16")
    params = init_params(cfg, jax.random.key(1))
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    x = jax.random.randint(jax.random.key(2), (2, 13), 0, 24)
    np.testing.assert_allclose(per_sample_loss(params, cfg, x), per_sample_loss(params, CFG, x), rtol=2e-2)


@pytest.mark.slow
def test_group_means_and_evaluate_match_numpy():
    rng = np.random.default_rng(0)
    v, g = rng.normal(size=50), rng.integers(0, 3, 50)
    means, counts = group_means(jnp.asarray(v, jnp.float32), jnp.asarray(g), 4)
    ref = [v[g == j].mean() for j in range(3)]
    np.testing.assert_allclose(means[:3], ref, rtol=1e-5)
    assert means[3] == 0 and counts.tolist() == [np.sum(g == j) for j in range(3)] + [0]

    params = init_params(CFG, jax.random.key(3))
    x = rng.integers(0, 24, (23, 13)).astype(np.int32)
    gid = rng.integers(0, 2, 23)
    es = make_eval_set(x, gid, 2, batch_size=5)  # 23 chunks: the last batch is padded
    per = np.asarray(per_sample_loss(params, CFG, jnp.asarray(x)), np.float64)
    np.testing.assert_allclose(
        jax.jit(make_evaluate(CFG, 2))(params, es), [per[gid == j].mean() for j in (0, 1)], rtol=1e-5
    )


@pytest.mark.slow
def test_per_group_grads_match_separate_grads():
    params = init_params(CFG, jax.random.key(4))
    x = jax.random.randint(jax.random.key(5), (6, 13), 0, 24)
    gid = jnp.array([0, 1, 0, 2, 1, 0])
    grads = jax.jit(per_group_grads, static_argnums=(1, 4))(params, CFG, x, gid, 3)
    ref_grad = jax.jit(jax.grad(lambda p, xj: M.per_sample_loss(p, CFG, xj).mean()))
    for j in range(3):
        ref = ref_grad(params, x[gid == j])
        for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref)):
            np.testing.assert_allclose(a[j], b, rtol=1e-4, atol=1e-7)


def test_bad_configs():
    with pytest.raises(ValueError, match="preset"):
        preset("huge", vocab_size=10)
    with pytest.raises(ValueError, match="vocab_size"):
        preset("tiny")
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(vocab_size=10, n_layers=1, d_model=30, n_heads=4, d_ff=8, context=8)
    with pytest.raises(ValueError, match="warmup"):
        OptimConfig(total_steps=10, warmup_steps=20)
    with pytest.raises(ValueError, match="exceeds the model context"):
        M.per_sample_loss(init_params(CFG, jax.random.key(0)), CFG, jnp.zeros((1, 20), jnp.int32))
    with pytest.raises(ValueError, match="no evaluation chunk"):
        make_eval_set(np.zeros((3, 5), np.int32), np.zeros(3, np.int32), 2, names=("a", "b"))
