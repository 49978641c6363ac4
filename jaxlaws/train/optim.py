"""The original's optimiser (Aioli paper, training set-up): AdamW + global-norm clipping + warm-up/cosine-to-floor.

Schedule (``S`` = ``total_steps``, ``W`` = ``warmup_steps``, ``s`` = number of updates already applied)::

    lr(s) = lr_start + (lr_peak - lr_start) * s / W                                  for s < W
    lr(s) = lr_end + (lr_peak - lr_end) * (1 + cos(pi * (min(s, S) - W) / (S - W))) / 2   for s >= W

so it rises linearly from ``lr_start = 1e-7``, decays along a cosine to the floor ``lr_end`` (1e-4 in the original,
whose ``--end_lr`` flag is ignored) and is held at the floor after ``S`` steps. The schedule position lives in the
optimiser state (optax's step counts), so restoring ``opt_state`` continues it across a parent/child break.

AdamW uses decoupled weight decay ``theta <- theta - lr * (adam_update + wd * theta)`` (as ``torch.optim.AdamW``)
with ``wd = 0`` on biases and LayerNorm parameters. Gradients are clipped to global norm ``clip`` first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ["OptimConfig", "lr_schedule", "decay_mask", "make_optimizer"]


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimiser hyper-parameters (AdamW, global-norm clipping, linear warm-up then cosine decay to a floor); the
    defaults are the original's SlimPajama runs except the step counts.

    Attributes:
      total_steps: the schedule's length ``S``.
      lr: the peak learning rate.
      warmup_steps: the linear warm-up's steps.
      lr_start: the learning rate at step 0.
      lr_end: the cosine's floor, reached at ``total_steps``.
      b1, b2, eps: Adam's moment decays and epsilon.
      weight_decay: AdamW's decoupled weight decay (not on biases and norms).
      clip: the global gradient norm clipped to.
    """

    total_steps: int
    lr: float = 5e-4
    warmup_steps: int = 500
    lr_start: float = 1e-7
    lr_end: float = 1e-4
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip: float = 1.0

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"OptimConfig.total_steps must be >= 1, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(
                f"OptimConfig.warmup_steps={self.warmup_steps} must be in [0, total_steps={self.total_steps}]"
            )
        if self.lr <= 0 or self.lr_end < 0 or self.lr_start < 0:
            raise ValueError("OptimConfig: learning rates must be positive (lr) / non-negative (lr_start, lr_end)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def lr_schedule(cfg: OptimConfig) -> optax.Schedule:
    """The warm-up + cosine-to-floor schedule of the module docstring, as a jit-safe function of the step."""
    w, s_tot = cfg.warmup_steps, cfg.total_steps

    def schedule(count: jax.Array) -> jax.Array:
        s = jnp.asarray(count, jnp.float32)
        warm = cfg.lr_start + (cfg.lr - cfg.lr_start) * s / max(w, 1)
        frac = (jnp.minimum(s, s_tot) - w) / max(s_tot - w, 1)
        cosine = cfg.lr_end + (cfg.lr - cfg.lr_end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
        return jnp.where(s < w, warm, cosine)

    return schedule


def decay_mask(params: Any) -> Any:
    """``True`` where weight decay applies: every leaf except biases and LayerNorm scales/biases."""

    def keep(path: tuple, _: Any) -> bool:
        names = [str(getattr(k, "key", k)) for k in path]
        return not (names[-1] == "bias" or any(n.startswith("ln") for n in names))

    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """Clip to global norm ``cfg.clip``, then AdamW with the schedule and the decay mask."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip),
        optax.adamw(
            lr_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=decay_mask
        ),
    )
