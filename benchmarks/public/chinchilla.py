"""Epoch's 245 Chinchilla points (Hoffmann et al. 2022, Fig. 4), as Epoch fit them: 240 after the 5 largest losses.

Epoch's fit of :math:`L = E + A/N^\\alpha + B/D^\\beta` (Huber(1e-3) on :math:`\\log L`, summed, 4,500-init grid)
reaches the objective :data:`EPOCH_OBJECTIVE` at :data:`EPOCH_PARAMS`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .sources import CHINCHILLA, shared_file

EPOCH_OBJECTIVE = 0.0010182740
EPOCH_PARAMS = {"A": 477.8, "B": 2143.0, "E": 1.8172, "alpha": 0.3473, "beta": 0.3672}
N_DROPPED = 5


class Chinchilla(NamedTuple):
    x: np.ndarray  # (n, 2): model size N, training tokens D = C / (6 N)
    y: np.ndarray  # (n,) final loss
    source: str


def load_chinchilla(drop_largest: int = N_DROPPED) -> Chinchilla:
    """The points sorted as in the file, less the ``drop_largest`` largest losses (Epoch: 5, leaving 240).

    Raises :class:`~.sources.DataUnavailable` where the shared originals are absent (not bundled: no licence).
    """
    df = pd.read_csv(shared_file(CHINCHILLA, "chinchilla/svg_extracted_data.csv"))
    if drop_largest < 0 or drop_largest >= len(df):
        raise ValueError(f"drop_largest must be in [0, {len(df)}), got {drop_largest}")
    keep = np.sort(np.argsort(df["loss"].to_numpy(), kind="stable")[: len(df) - drop_largest])
    df = df.iloc[keep]
    n = df["Model Size"].to_numpy(np.float64)
    d = df["Training FLOP"].to_numpy(np.float64) / (6.0 * n)
    return Chinchilla(np.column_stack([n, d]), df["loss"].to_numpy(np.float64), CHINCHILLA.line())
