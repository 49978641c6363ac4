"""Data-mixing methods for any JAX training loop: Aioli, Skill-It, DoReMi, DoGE and the constant mixture.

Each method is a :class:`Mixer`, a ``NamedTuple`` of pure functions in the style of
``optax.GradientTransformation`` (``init``, ``mixture``, ``update``, ``observes``, ``weights``); its state is
a pytree, every schedule is a traced predicate, and the signals are plain arrays or pytrees that
:mod:`jaxlaws.mixing.signals` computes from any ``loss_fn(params, batch)``. Nothing here depends on a model::

    mixer = aioli(m=3, total_steps=1000, batch_size=8)
    state = mixer.init(key)
    # at the start of step s:
    state = mixer.update(state, step=s, losses=heldout_losses(params))   # read only when mixer.observes(s)
    p, exact = mixer.mixture(state)
    group_ids = sample_groups(key_s, p, batch_size, exact)

* :mod:`~jaxlaws.mixing.rules` -- the update rules as small pure functions;
* :func:`aioli`, :func:`skillit`, :func:`doremi`, :func:`doge`, :func:`constant` -- the mixers;
* :func:`sample_groups` -- the groups of a batch under ``(p, exact)``;
* :mod:`~jaxlaws.mixing.signals` -- per-group losses and gradients, DoReMi and DoGE proxy steps.
"""

from jaxlaws.mixing.aioli import AIOLI_DEFAULTS, AioliState, aioli
from jaxlaws.mixing.base import (
    Mixer,
    allocated_ids,
    categorical_ids,
    clip_by_norm,
    constant,
    group_means,
    sample_groups,
    tree_dot,
)
from jaxlaws.mixing.doge import DOGE_DEFAULTS, DoGEState, combine, doge, score_matrix
from jaxlaws.mixing.doremi import DOREMI_DEFAULTS, DoReMiState, average_weights, doremi, weighted_loss
from jaxlaws.mixing.signals import doge_step, doremi_step, group_losses, per_group_grads
from jaxlaws.mixing.skillit import (
    SKILLIT_DEFAULTS,
    SkillItState,
    load_graph,
    original_graph_rule,
    skillit,
    skills_graph,
)

__all__ = [
    "Mixer",
    "aioli",
    "skillit",
    "doremi",
    "doge",
    "constant",
    "sample_groups",
    "categorical_ids",
    "allocated_ids",
    "group_means",
    "group_losses",
    "per_group_grads",
    "doremi_step",
    "doge_step",
    "combine",
    "score_matrix",
    "weighted_loss",
    "average_weights",
    "clip_by_norm",
    "tree_dot",
    "load_graph",
    "skills_graph",
    "original_graph_rule",
    "AioliState",
    "SkillItState",
    "DoReMiState",
    "DoGEState",
    "AIOLI_DEFAULTS",
    "SKILLIT_DEFAULTS",
    "DOREMI_DEFAULTS",
    "DOGE_DEFAULTS",
]
