"""Training substrate: a Pythia-style decoder, the original's optimiser, one training loop, vmapped sweeps.

Modules: ``model`` (decoder + presets), ``optim`` (AdamW, clipping, warm-up/cosine-to-floor), ``step`` (train
state, run keys), ``loop`` (the one training loop of every run), ``methods`` (the mixing methods of
:mod:`jaxlaws.mixing` as policies of that loop), ``evaluate`` (per-group held-out loss), ``checkpoint`` (orbax,
atomic files), ``sweep`` (static/dynamic sweeps, resumable), ``data`` (token groups and samplers), ``testbeds``
(settings where the mixture matters), ``options`` and ``cli`` (``jaxlaws sweep``).

The configurations and entry points are importable from here; each loads its module on first use, so that
``import jaxlaws`` and the ``jaxlaws`` command stay light:

* configurations: :class:`ModelConfig` (:func:`preset`), :class:`OptimConfig`, :class:`TrainConfig` (the
  trajectory: model, optimiser, batch, sequence length, evaluation) and :class:`Loop` (how runs are trained);
* data: :func:`load_groups`, :func:`synthetic_groups`, :class:`TokenGroups`, :func:`prepare_data`;
* entry points: :func:`static_sweep`, :func:`dynamic_sweep`, :func:`run_sweep`, :func:`train` (the loop),
  :func:`train_policy`, :func:`method_sweep` and :func:`compare` (the mixing methods).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxlaws._lazy import lazy_exports

if TYPE_CHECKING:
    from jaxlaws.train.data import TokenGroups, load_groups, synthetic_groups
    from jaxlaws.train.loop import Loop, Runs, train
    from jaxlaws.train.methods.compare import compare
    from jaxlaws.train.methods.run import train_policy
    from jaxlaws.train.methods.sweep import method_sweep
    from jaxlaws.train.model import ModelConfig, preset
    from jaxlaws.train.optim import OptimConfig
    from jaxlaws.train.sweep import TrainConfig, dynamic_sweep, prepare_data, run_sweep, static_sweep

_LAZY = {
    "ModelConfig": "model",
    "preset": "model",
    "OptimConfig": "optim",
    "TrainConfig": "sweep",
    "Loop": "loop",
    "Runs": "loop",
    "train": "loop",
    "TokenGroups": "data",
    "load_groups": "data",
    "synthetic_groups": "data",
    "prepare_data": "sweep",
    "static_sweep": "sweep",
    "dynamic_sweep": "sweep",
    "run_sweep": "sweep",
    "train_policy": "methods.run",
    "method_sweep": "methods.sweep",
    "compare": "methods.compare",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
