r"""Aioli in jaxlaws' trainer: :func:`jaxlaws.mixing.aioli` on the decoder, with its records.

The held-out losses of LearnParams come from a fixed probe subset of the validation split
(``MethodData.probe``), evaluated on device between segments of the compiled loop. Recorded: ``aioli_A``
(the normalised ``A`` of every round, as the original saves them) and ``mixture`` (``p^t`` of every round),
each at the step its round's LearnParams ended.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jaxlaws import mixing
from jaxlaws.mixing.aioli import AIOLI_DEFAULTS, AioliState, round_starts
from jaxlaws.train.methods.base import Policy, Record

__all__ = ["Aioli", "AioliState", "AIOLI_DEFAULTS"]


@dataclasses.dataclass(frozen=True)
class Aioli(Policy):
    """:func:`jaxlaws.mixing.aioli` as a policy of the trainer.

    Hyper-parameters left ``None`` take the original's values for ``m`` (2, 3, 7; others must be given);
    ``ema="default"`` likewise, ``ema=None`` is the cumulative update.

    Attributes:
      eta, ema, lp_rounds, lp_steps, update_steps, ohf, normalize, diagonal, prior, prior_steps, carry_prior: as
        :func:`jaxlaws.mixing.aioli`.
      m, model, optim, batch_size, seq_len: as every :class:`~jaxlaws.train.methods.base.Policy`.
    """

    eta: float | None = None
    ema: float | str | None = "default"
    lp_rounds: int | None = None
    lp_steps: int | None = None
    update_steps: int | None = None
    ohf: float | None = None
    normalize: bool = True
    diagonal: bool = False
    prior: tuple[float, ...] | None = None
    prior_steps: int = 0
    carry_prior: bool = False

    name = "aioli"

    def __post_init__(self) -> None:
        self.mixer  # noqa: B018  (build it now: bad hyper-parameters raise here)

    @functools.cached_property
    def mixer(self) -> mixing.Mixer:
        return mixing.aioli(
            self.m,
            total_steps=self.optim.total_steps,
            batch_size=self.batch_size,
            eta=self.eta,
            ema=self.ema,
            lp_rounds=self.lp_rounds,
            lp_steps=self.lp_steps,
            update_steps=self.update_steps,
            ohf=self.ohf,
            normalize=self.normalize,
            diagonal=self.diagonal,
            prior=self.prior,
            prior_steps=self.prior_steps,
            carry_prior=self.carry_prior,
        )

    @classmethod
    def defaults(cls, m: int) -> dict:
        """The original's hyper-parameters for ``m`` groups (2, 3 or 7); empty otherwise (give them all)."""
        return dict(AIOLI_DEFAULTS.get(m, {}))

    @property
    def lp_len(self) -> int:
        hp = self.mixer.hparams
        return hp["lp_rounds"] * hp["lp_steps"] * self.m

    def round_starts(self) -> list[int]:
        return round_starts(self.mixer.hparams, self.m)

    def records(self, state: AioliState, upto: int) -> list[Record]:
        out: list[Record] = []
        for t, s in enumerate(self.round_starts()[: int(state.t)]):
            step = s + self.lp_len
            if step <= upto:
                out.append(("aioli_A", step, t, np.asarray(state.A_hist[t], np.float64)))
                out.append(("mixture", step, t, np.asarray(state.p_hist[t], np.float64).reshape(1, self.m)))
        return out
