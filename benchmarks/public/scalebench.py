"""The scalebench (PlanarG/active-sl) domain-mixture split: 5-domain mixtures -> 5 domain losses (bundled, MIT).

Per model size (``70M``, ``160M``, ``305M``, ``410M``): 20 train and 6 test mixtures of the Data Mixing Laws
5Mix runs at step 30,000. Its authors fit :math:`L_i = c_i + \\exp(\\sum_j t_{ij} p_j)` per domain with SciPy
(300 inits, Huber 0.02) and report the mean test MAE :data:`REFERENCE_TEST_MAE`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .sources import BUNDLED, SCALEBENCH

SIZES = ("70M", "160M", "305M", "410M")
REFERENCE_TEST_MAE = {"70M": 0.0273, "160M": 0.0296, "305M": 0.0293, "410M": 0.0329}
N_DOMAINS = 5


class SizeSplit(NamedTuple):
    x_train: np.ndarray  # (20, 5) mixtures
    y_train: np.ndarray  # (20, 5) losses, one column per domain
    x_test: np.ndarray  # (6, 5)
    y_test: np.ndarray  # (6, 5)


def load_scalebench_frame(split: str) -> pd.DataFrame:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return pd.read_parquet(BUNDLED / f"scalebench_domain_mixture_{split}.parquet")


def load_scalebench() -> tuple[dict[str, SizeSplit], str]:
    """``({size: SizeSplit}, source line)``."""
    pcols = [f"proportion_domain_{j + 1}" for j in range(N_DOMAINS)]
    lcols = [f"loss_domain_{j + 1}" for j in range(N_DOMAINS)]
    tr, te = load_scalebench_frame("train"), load_scalebench_frame("test")

    def arrays(df: pd.DataFrame, size: str) -> tuple[np.ndarray, np.ndarray]:
        part = df[df["group"] == size]
        return part[pcols].to_numpy(np.float64), part[lcols].to_numpy(np.float64)

    return {s: SizeSplit(*arrays(tr, s), *arrays(te, s)) for s in SIZES}, SCALEBENCH.line()
