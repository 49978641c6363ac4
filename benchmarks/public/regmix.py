"""RegMix's 512 train + 256 test runs of 1M-parameter models on 17-domain Pile mixtures (bundled, MIT).

The mixtures are published rounded to 3 decimals, so rows sum to 0.996-1.003; :func:`load_regmix` returns them
as published. RegMix's LightGBM regressor reaches Spearman :data:`LIGHTGBM_SPEARMAN` (x100) between predicted
and observed Pile-CC loss on the test runs (train 1M -> test 1M).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .sources import BUNDLED, REGMIX

LIGHTGBM_SPEARMAN = 98.92
FILE = BUNDLED / "regmix_1m_pile_cc.csv"


class Split(NamedTuple):
    x: np.ndarray  # (n, 17) mixtures as published (rounded)
    y: np.ndarray  # (n,) Pile-CC validation loss


class RegMix(NamedTuple):
    train: Split
    test: Split
    domains: tuple[str, ...]
    source: str


def load_regmix_frame() -> pd.DataFrame:
    """The bundled table: ``split``, ``index``, ``p_<domain>`` (17), ``loss_pile_cc``."""
    return pd.read_csv(FILE)


def load_regmix() -> RegMix:
    df = load_regmix_frame()
    pcols = [c for c in df.columns if c.startswith("p_")]

    def split(name: str) -> Split:
        part = df[df["split"] == name]
        return Split(part[pcols].to_numpy(np.float64), part["loss_pile_cc"].to_numpy(np.float64))

    return RegMix(split("train"), split("test"), tuple(c[2:] for c in pcols), REGMIX.line())
