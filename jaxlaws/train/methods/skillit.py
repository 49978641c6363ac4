r"""Skill-It in jaxlaws' trainer: :func:`jaxlaws.mixing.skillit` on the decoder, one graph per run.

The per-run input (``extra``) is the run's skills graph. Recorded: ``skillit_graph`` (step 0) and ``mixture``
at every update. The graph helpers live in :mod:`jaxlaws.mixing.skillit`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from jaxlaws import mixing
from jaxlaws.mixing.skillit import SKILLIT_DEFAULTS, SkillItState, check_graph, load_graph, skills_graph
from jaxlaws.train.methods.base import Policy, Record

__all__ = ["SkillIt", "SkillItState", "skills_graph", "load_graph", "check_graph"]


@dataclasses.dataclass(frozen=True)
class SkillIt(Policy):
    """:func:`jaxlaws.mixing.skillit` as a policy of the trainer (its graph is each run's ``extras``).

    Hyper-parameters left ``None`` take the original's values for ``m`` (2, 3, 7; others must be given).

    Attributes:
      eta, update_steps, window, eval_steps, align: as :func:`jaxlaws.mixing.skillit`.
      m, model, optim, batch_size, seq_len: as every :class:`~jaxlaws.train.methods.base.Policy`.
    """

    eta: float | None = None
    update_steps: int | None = None
    window: int | None = None
    eval_steps: int | None = None
    align: str = "original"

    name = "skillit"

    def __post_init__(self) -> None:
        self.mixer  # noqa: B018  (build it now: bad hyper-parameters raise here)

    @functools.cached_property
    def mixer(self) -> mixing.Mixer:
        return mixing.skillit(
            np.eye(self.m),
            total_steps=self.optim.total_steps,
            eta=self.eta,
            update_steps=self.update_steps,
            window=self.window,
            eval_steps=self.eval_steps,
            align=self.align,
        )

    @classmethod
    def defaults(cls, m: int) -> dict:
        return dict(SKILLIT_DEFAULTS.get(m, {}))

    def prepare_extra(self, extra: Any) -> np.ndarray:
        if extra is None:
            raise ValueError("skillit: the policy needs its skills graph (extra=G, shape (m, m))")
        return check_graph(extra, self.m).astype(np.float32)

    def init(self, key: Any, extra: Any = None) -> SkillItState:
        return self.mixer.init(key, graph=extra)

    def records(self, state: SkillItState, upto: int) -> list[Record]:
        out: list[Record] = [("skillit_graph", 0, 0, np.asarray(state.G, np.float64))]
        every = self.mixer.hparams["update_steps"]
        for u in range(min(int(state.n_up), state.p_hist.shape[0])):
            step = (u + 1) * every
            if step <= upto:
                out.append(("mixture", step, u, np.asarray(state.p_hist[u], np.float64).reshape(1, -1)))
        return out
