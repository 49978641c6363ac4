"""The Data Mixing Laws runs (Ye et al. 2024): final validation losses of Pythia-style models per mixture.

``5Mix``: mixtures of 5 Pile domain groups (academic, prose, dialogue, symbolic, internet); ``RedPajama``:
mixtures of the 7 RedPajama sources (named ``rp1..rp7`` here in the file's order; the data do not name them).
Both are validated on the 22 Pile domains, which :func:`load_dml` merges into the 5 coarse groups with the
Pile's validation weights, as the original notebook does:
:math:`L_g = \\sum_{d \\in g} w_d L_d / \\sum_{d \\in g} w_d` (over the domains present for the run), and the
total :math:`L = \\sum_g W_g L_g` with :math:`W_g = \\sum_{d \\in g} w_d`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .sources import DML, shared_file

GROUPS = {
    "academic": (
        "ArXiv",
        "PubMed_Abstracts",
        "PhilPapers",
        "NIH_ExPorter",
        "FreeLaw",
        "USPTO_Backgrounds",
        "PubMed_Central",
    ),
    "prose": ("PG19", "Books3", "BookCorpus2"),
    "dialogue": ("Ubuntu_IRC", "OpenSubtitles", "EuroParl", "Enron_Emails", "HackerNews", "YoutubeSubtitles"),
    "symbolic": ("DM_Mathematics", "Github"),
    "internet": ("Pile-CC", "OpenWebText2", "StackExchange", "Wikipedia_en"),
}
DOMAINS = {"5Mix": tuple(GROUPS), "RedPajama": tuple(f"rp{j + 1}" for j in range(7))}
STEP = 30000  # the last step every run of the 70M-410M models reached (the scalebench split uses it too)
SIZES = ("70M", "160M", "305M", "410M")  # 1B has 2-6 runs: too few to fit 7-8 parameters


def _runs() -> pd.DataFrame:
    return _read(shared_file(DML, "data-mixing-laws/runs_5mix_redpajama.csv.gz"))


@functools.lru_cache(maxsize=2)  # keyed by path: 56,805 rows, read once per process; callers filter copies
def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def valid_weights() -> dict[str, float]:
    """The 22 Pile validation domains' weights (sum 1)."""
    return json.loads(shared_file(DML, "data-mixing-laws/pile_valid_weights.json").read_text())


def load_dml(setting: str, step: int = STEP, sizes: tuple[str, ...] = SIZES, max_run_id: int = 900) -> pd.DataFrame:
    """One row per run at ``step``: ``model_size``, ``run``, the mixture ``p_<domain>`` (as published, not
    renormalised), ``loss_<group>`` for the 5 coarse groups and ``loss_total``.

    Runs whose id exceeds ``max_run_id`` are left out, as in the original analysis. Raises
    :class:`~.sources.DataUnavailable` where the shared originals are absent (not bundled: no licence).
    """
    if setting not in DOMAINS:
        raise ValueError(f"setting must be one of {sorted(DOMAINS)}, got {setting!r}")
    df = _runs()
    df = df[(df["setting"] == setting) & (df["step"] == step) & df["model_size"].isin(sizes)]
    run_id = df["run_prefix"].str.rsplit("_", n=1).str[-1].astype(int)
    df = df[run_id <= max_run_id]
    if df.empty:
        raise ValueError(f"no {setting} runs at step {step} for sizes {sizes}")
    w = valid_weights()
    wide = df.pivot_table(
        index=["model_size", "run", "mixture"], columns="valid_domain", values="loss", aggfunc="first"
    )
    out = wide.index.to_frame(index=False)
    for g, doms in GROUPS.items():
        vals = wide.reindex(columns=list(doms)).to_numpy(np.float64)
        wts = np.array([w[d] for d in doms])
        have = np.isfinite(vals)
        out[f"loss_{g}"] = np.nansum(vals * wts, axis=1) / np.sum(have * wts, axis=1)
    big = np.array([sum(w[d] for d in doms) for doms in GROUPS.values()])
    out["loss_total"] = out[[f"loss_{g}" for g in GROUPS]].to_numpy() @ big
    mix = out["mixture"].str.split("-", expand=True).astype(np.float64).to_numpy()
    for j, name in enumerate(DOMAINS[setting]):
        out[f"p_{name}"] = mix[:, j]
    order = {s: i for i, s in enumerate(sizes)}
    out = out.sort_values(["model_size", "run"], key=lambda c: c.map(order) if c.name == "model_size" else c)
    cols = ["model_size", "run"] + [f"p_{n}" for n in DOMAINS[setting]] + [f"loss_{g}" for g in GROUPS]
    return out[cols + ["loss_total"]].reset_index(drop=True).assign(setting=setting)


def problems(df: pd.DataFrame, setting: str, target: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per model size, ``(x (n, m) mixtures, y (n,) losses of column 'loss_<target>')``."""
    pcols = [f"p_{n}" for n in DOMAINS[setting]]
    return {
        size: (g[pcols].to_numpy(np.float64), g[f"loss_{target}"].to_numpy(np.float64))
        for size, g in df.groupby("model_size", sort=False)
    }
