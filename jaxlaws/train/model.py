"""A GPT-NeoX-style decoder (Pythia architecture) in ``flax.linen`` with per-sequence losses.

The architecture follows Pythia/GPT-NeoX (the Aioli paper's models): learned token embeddings, ``n_layers`` blocks with
a **parallel residual** ``x <- x + Attn(LN_1(x)) + MLP(LN_2(x))``, multi-head causal attention with **rotary**
position embeddings on the first ``rotary_pct`` of every head's dimensions (GPT-NeoX "rotate-half" layout),
a GELU (erf) MLP, a final LayerNorm and an **untied** output projection.

Parameters are always float32 ("master" weights); ``dtype="bfloat16"`` runs the matmuls in bfloat16 and the
loss in float32. Linen's pure ``apply`` is used so that K runs can be trained at once by ``jax.vmap`` over
stacked parameter trees.

The loss returned per sequence is the mean next-token cross-entropy over its ``seq_len`` positions:
``l_n = (1/T) sum_t -log softmax(f(x_n)_{t})[x_{n,t+1}]`` for an input row ``x_n`` of length ``T + 1``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

Params = Any

__all__ = ["Params", "ModelConfig", "PRESETS", "preset", "Decoder", "init_params", "per_sample_loss", "n_params"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the decoder (Pythia's GPT-NeoX layout).

    Attributes:
      vocab_size: the vocabulary size.
      n_layers: the number of transformer layers.
      d_model: the width of the residual stream.
      n_heads: the attention heads per layer.
      d_ff: the width of the MLP.
      context: the longest sequence (number of input positions).
      rotary_pct: the fraction of each head's dimensions that get rotary embeddings.
      rotary_base: the rotary embeddings' base.
      parallel_residual: attention and MLP read the same input (GPT-NeoX) rather than one after the other.
      ln_eps: the layer norms' epsilon.
      init_std: the standard deviation of the initial weights.
      dtype: the compute dtype, ``"float32"`` or ``"bfloat16"`` (parameters stay float32).
    """

    vocab_size: int
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    context: int
    rotary_pct: float = 0.25
    rotary_base: float = 10000.0
    parallel_residual: bool = True
    ln_eps: float = 1e-5
    init_std: float = 0.02
    dtype: str = "float32"  # compute dtype: "float32" or "bfloat16"

    def __post_init__(self) -> None:
        for f in ("vocab_size", "n_layers", "d_model", "n_heads", "d_ff", "context"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"ModelConfig.{f} must be a positive integer, got {getattr(self, f)!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"ModelConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.rotary_pct <= 1.0:
            raise ValueError(f"ModelConfig.rotary_pct must be in [0, 1], got {self.rotary_pct}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"ModelConfig.dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def rotary_dim(self) -> int:
        # GPT-NeoX: int(head_dim * rotary_pct), rounded down to an even number of dimensions.
        return (int(self.head_dim * self.rotary_pct) // 2) * 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """A stable digest of the architecture (used to refuse restoring a checkpoint into another model)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# Architecture presets; the vocabulary comes from the data (byte-level groups have a small vocabulary).
PRESETS: dict[str, dict] = {
    # Smoke tests of the command line: one layer of width 32 (compiles and trains in seconds).
    "micro": dict(n_layers=1, d_model=32, n_heads=2, d_ff=64, context=64),
    # CPU tests and demos: ~0.5M parameters with a byte vocabulary.
    "tiny": dict(n_layers=2, d_model=128, n_heads=4, d_ff=512, context=128),
    # A slightly larger CPU/accelerator model.
    "small": dict(n_layers=4, d_model=256, n_heads=4, d_ff=1024, context=256),
    # Pythia-160M (EleutherAI/pythia-160m config.json).
    "pythia-160m": dict(n_layers=12, d_model=768, n_heads=12, d_ff=3072, context=2048, vocab_size=50304),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """Return the :class:`ModelConfig` of preset ``name`` ("micro", "tiny", "small", "pythia-160m") with overrides.

    ``vocab_size`` must be given for the presets that do not fix it (use the data's vocabulary).

    Args:
      name: the preset's name (a key of :data:`PRESETS`).
      **overrides: fields of :class:`ModelConfig` to set.

    Returns:
      The :class:`ModelConfig`.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    kw = {**PRESETS[name], **overrides}
    if "vocab_size" not in kw:
        raise ValueError(f"preset {name!r} needs vocab_size (e.g. the data's TokenGroups.vocab_size)")
    return ModelConfig(**kw)


def _rotary(x: jax.Array, rotary_dim: int, base: float) -> jax.Array:
    """Rotate the first ``rotary_dim`` features of ``x`` [B, T, N, H] by position (GPT-NeoX rotate-half).

    With ``inv_freq_i = base^(-2i/rotary_dim)`` and angle ``theta_{t,i} = t inv_freq_i``, the pair
    ``(x_i, x_{i + rotary_dim/2})`` becomes ``(x_i cos - x_{i+d/2} sin, x_{i+d/2} cos + x_i sin)``.
    """
    if rotary_dim == 0:
        return x
    t = jnp.arange(x.shape[1], dtype=jnp.float32)
    inv_freq = base ** (-jnp.arange(0, rotary_dim, 2, dtype=jnp.float32) / rotary_dim)
    ang = t[:, None] * inv_freq[None, :]  # [T, d/2]
    cos = jnp.concatenate([jnp.cos(ang)] * 2, -1)[None, :, None, :].astype(x.dtype)
    sin = jnp.concatenate([jnp.sin(ang)] * 2, -1)[None, :, None, :].astype(x.dtype)
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    half = rotary_dim // 2
    rotated_half = jnp.concatenate([-rot[..., half:], rot[..., :half]], -1)
    return jnp.concatenate([rot * cos + rotated_half * sin, rest], -1)


class _Block(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.cfg
        dt = jnp.dtype(c.dtype)
        init = nn.initializers.normal(c.init_std)

        def dense(n, name):
            return nn.Dense(n, dtype=dt, param_dtype=jnp.float32, kernel_init=init, name=name)

        def ln(name):
            return nn.LayerNorm(epsilon=c.ln_eps, dtype=dt, param_dtype=jnp.float32, name=name)

        def attn(h: jax.Array) -> jax.Array:
            b, t, _ = h.shape
            qkv = dense(3 * c.d_model, "qkv")(h).reshape(b, t, c.n_heads, 3 * c.head_dim)
            q, k, v = jnp.split(qkv, 3, axis=-1)  # GPT-NeoX packs q, k, v per head
            q = _rotary(q, c.rotary_dim, c.rotary_base)
            k = _rotary(k, c.rotary_dim, c.rotary_base)
            s = jnp.einsum("bqnh,bknh->bnqk", q, k).astype(jnp.float32) / jnp.sqrt(c.head_dim)
            causal = jnp.tril(jnp.ones((t, t), bool))
            s = jnp.where(causal, s, jnp.finfo(jnp.float32).min)
            a = jax.nn.softmax(s, axis=-1).astype(dt)
            o = jnp.einsum("bnqk,bknh->bqnh", a, v).reshape(b, t, c.d_model)
            return dense(c.d_model, "attn_out")(o)

        def mlp(h: jax.Array) -> jax.Array:
            return dense(c.d_model, "mlp_out")(nn.gelu(dense(c.d_ff, "mlp_in")(h), approximate=False))

        if c.parallel_residual:
            return x + attn(ln("ln_attn")(x)) + mlp(ln("ln_mlp")(x))
        x = x + attn(ln("ln_attn")(x))
        return x + mlp(ln("ln_mlp")(x))


class Decoder(nn.Module):
    """Token ids [B, T] -> logits [B, T, vocab] (float32)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        c = self.cfg
        dt = jnp.dtype(c.dtype)
        init = nn.initializers.normal(c.init_std)
        x = nn.Embed(c.vocab_size, c.d_model, embedding_init=init, param_dtype=jnp.float32, dtype=dt, name="embed_in")(
            tokens
        )
        for i in range(c.n_layers):
            x = _Block(c, name=f"block_{i}")(x)
        x = nn.LayerNorm(epsilon=c.ln_eps, dtype=dt, param_dtype=jnp.float32, name="ln_final")(x)
        logits = nn.Dense(
            c.vocab_size, use_bias=False, dtype=dt, param_dtype=jnp.float32, kernel_init=init, name="embed_out"
        )(x)
        return logits.astype(jnp.float32)


def init_params(cfg: ModelConfig, key: jax.Array) -> Params:
    """Initial parameters (float32): N(0, init_std) weights and embeddings, zero biases, unit LayerNorm scales."""
    return Decoder(cfg).init(key, jnp.zeros((1, min(cfg.context, 8)), jnp.int32))["params"]


def per_sample_loss(params: Params, cfg: ModelConfig, inputs: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy of each row of ``inputs`` [B, T+1] (int): returns [B] float32.

    Position ``t`` predicts ``inputs[:, t+1]`` from ``inputs[:, :t+1]``; every position counts.
    """
    if inputs.shape[-1] - 1 > cfg.context:
        raise ValueError(f"sequence length {inputs.shape[-1] - 1} exceeds the model context {cfg.context}")
    x, y = inputs[:, :-1].astype(jnp.int32), inputs[:, 1:].astype(jnp.int32)
    logits = Decoder(cfg).apply({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(axis=-1)


def n_params(params: Params) -> int:
    """Number of scalar parameters in a parameter tree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
