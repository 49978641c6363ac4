"""Testbeds where the data mixture matters: named settings made on the fly from the bundled corpora.

On two or three ordinary text groups a small model gains little from any mixture: the best static mixture of a
grid beats stratified sampling by less than the spread over seeds, so no mixing method can be told apart from
stratified. Each testbed below builds a setting in which the mixture does matter, reproducibly from a seed:

* ``noise`` -- ``code`` and ``literature`` plus a group of uniform random bytes (useless data). Objective: the
  two real groups (weight 1/2 each, 0 on the noise).
* ``scarce`` -- ``code``, ``docs`` and a ``literature`` train split cut to a short contiguous piece that a
  stratified run repeats ``epochs`` times (its value falls as it is memorised). Objective: the three groups
  equally (``literature``'s val/test splits are kept whole).
* ``skewed`` -- ``code``, ``literature`` and ``qa``; the held-out objective weights the downstream group
  ``qa`` 0.8 and the others 0.1 each, while stratified trains it on a third of the budget.
* ``m7`` -- seven groups (the methods' m=7 hyper-parameters run on real text): the four real groups, uniform
  random bytes, and byte-shuffled copies of ``code`` and ``literature`` (right byte frequencies, no structure).
  Objective: the four real groups equally.

The objective of a testbed is the weighted test perplexity ``sum_g w_g exp(L_g)`` (``w`` = ``eval_weights``,
summing to 1) and, beside it, the weighted loss ``sum_g w_g L_g``. The online methods themselves still weigh
every group's held-out loss equally, as in the original code (HazyResearch/aioli, ``trainer``): a testbed
changes the data and the judge, not the methods.

A comparison on a testbed is only informative if there is room to improve on stratified: :func:`check_headroom`
trains stratified and a small grid of static mixtures with two seeds and asks that the best static mixture
(chosen on validation) beats stratified on test by at least ``3x`` the standard deviation over seeds (ddof 1) of
the paired differences; :func:`require_headroom` refuses to go on otherwise (unless told to). :func:`study` runs the
headroom check, the methods, the paired judgement (:func:`judge`) and the mixture-over-time figure.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxlaws.train import data as D

__all__ = [
    "TESTBEDS",
    "SIZES",
    "STUDY_METHODS",
    "Size",
    "Testbed",
    "HeadroomResult",
    "Judgement",
    "NoHeadroomError",
    "make_testbed",
    "default_grid",
    "headroom_from_losses",
    "check_headroom",
    "require_headroom",
    "judge",
    "grid_on_objective",
    "mixture_trajectories",
    "plot_trajectories",
    "default_children",
    "default_probe",
    "study",
    "add_testbed_args",
    "cli_study",
]

TESTBEDS = ("noise", "scarce", "skewed", "m7")
HEADROOM_FACTOR = 3.0  # the best static mixture must beat stratified by this many paired seed spreads
NOISE_TOKENS = (1 << 18, 1 << 14, 1 << 14)  # train (at least) / val / test tokens of a random-bytes group
# The comparison's methods: compare's, plus Aioli's cumulative update (ema=None), a departure from the original's
# default that its README suggests trying first.
STUDY_METHODS = (
    "stratified",
    "grid",
    "dml",
    "aioli",
    "aioli_cumulative",
    "aioli_restricted",
    "skillit",
    "doremi",
    "doge",
)
_ADAPTIVE_RUN = {"doremi": "doremi", "doge": "doge"}  # the proxy run whose mixture moves; others: the final run


@dataclasses.dataclass(frozen=True)
class Size:
    """How big a testbed's runs are: model preset, schedule, batch, evaluation and method-probe settings."""

    model: str = "tiny"
    steps: int = 1000
    batch_size: int = 8
    seq_len: int = 64
    lr: float = 2e-3
    warmup: int | None = None  # default: a tenth of the run
    eval_every: int | None = None  # default: a tenth of the run (the mixture-over-time figure's resolution)
    eval_batch_size: int = 64
    max_eval_chunks: int = 64
    probe_chunks: int = 32

    def __post_init__(self) -> None:
        for f in ("steps", "batch_size", "seq_len", "eval_batch_size", "max_eval_chunks", "probe_chunks"):
            if not isinstance(getattr(self, f), (int, np.integer)) or getattr(self, f) < 1:
                raise ValueError(f"Size.{f} must be a positive int, got {getattr(self, f)!r}")
        if not self.lr > 0:
            raise ValueError(f"Size.lr must be > 0, got {self.lr}")

    @property
    def tokens_per_run(self) -> int:
        return self.steps * self.batch_size * self.seq_len


SIZES = {
    # For tests: a few steps of the tiny model.
    "smoke": Size(steps=8, batch_size=2, seq_len=16, eval_batch_size=8, max_eval_chunks=4, probe_chunks=2),
    # The 2-core CPU: ~0.5M-parameter byte-level decoder, 0.5M tokens per run.
    "cpu": Size(),
    # An accelerator: the 4-layer width-256 decoder, 8.2M tokens per run (about 3 passes over each ~1 MB bundled
    # group under stratified: the corpora, not the machine, bound the size).
    "accelerator": Size(model="small", steps=2000, batch_size=16, seq_len=256, lr=1e-3, eval_batch_size=256),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Testbed:
    """A named setting: its token groups, its objective's weights, its size and the static grid it is checked on.

    Attributes:
      name: one of :data:`TESTBEDS`; seed: the seed its data were made from.
      groups: the token groups (``data.TokenGroups``), train/val/test.
      eval_weights: ``(m,)`` weights of the held-out objective (sum 1; 0 for groups that do not matter).
      size: the :class:`Size` its runs use (the ``scarce`` group is cut for this budget).
      grid: ``(n, m)`` static mixtures of the headroom check and of grid search (stratified not included).
      description: what the testbed is, for README/RESULTS.
      info: how the data were made (sizes, offsets, epochs).
    """

    name: str
    seed: int
    groups: D.TokenGroups
    eval_weights: np.ndarray
    size: Size
    grid: np.ndarray
    description: str
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return self.groups.names

    @property
    def m(self) -> int:
        return self.groups.m

    def train_config(self) -> Any:
        """The ``TrainConfig`` of this testbed's runs (the original's AdamW, warm-up then cosine to 1e-4)."""
        from jaxlaws.train.model import preset
        from jaxlaws.train.optim import OptimConfig
        from jaxlaws.train.sweep import TrainConfig

        z = self.size
        warmup = z.steps // 10 if z.warmup is None else z.warmup
        every = max(1, z.steps // 10) if z.eval_every is None else z.eval_every
        optim = OptimConfig(total_steps=z.steps, warmup_steps=warmup, lr=z.lr)
        model = preset(z.model, vocab_size=self.groups.vocab_size)
        return TrainConfig(model, optim, z.batch_size, z.seq_len, every, z.eval_batch_size)

    def sweep_data(self, cfg: Any = None) -> Any:
        """The device-ready ``SweepData`` of the groups (for ``cfg``, default :meth:`train_config`)."""
        from jaxlaws.train.sweep import prepare_data

        cfg = self.train_config() if cfg is None else cfg
        return prepare_data(self.groups, cfg, self.size.max_eval_chunks, probe_chunks=self.size.probe_chunks)


class NoHeadroomError(ValueError):
    """The best static mixture does not beat stratified by enough to tell mixing methods apart (``result``: the
    :class:`HeadroomResult`)."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


# ------------------------------------------------------------------------------------------ building
def _rng(seed: int, what: str) -> np.random.Generator:
    """A stream per (seed, purpose), so that adding a testbed never changes another's data."""
    return np.random.default_rng([int(seed), *what.encode()])


def _random_bytes(rng: np.random.Generator, size: Size, m: int) -> list[np.ndarray]:
    sizes = (max(NOISE_TOKENS[0], size.tokens_per_run // m), *NOISE_TOKENS[1:])
    return [rng.integers(0, D.BYTE_VOCAB, size=n).astype(np.uint16) for n in sizes]


def _shuffled(groups: D.TokenGroups, name: str, rng: np.random.Generator) -> list[np.ndarray]:
    g = groups.names.index(name)
    return [rng.permutation(groups.split(s).group(g)) for s in D.SPLITS]


def _cut(tokens: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``n`` contiguous tokens starting at a random line start (or anywhere when no line break fits)."""
    if n >= tokens.size:
        return tokens, 0
    starts = np.flatnonzero(tokens[: tokens.size - n] == ord("\n")) + 1
    at = int(rng.choice(starts)) if starts.size else int(rng.integers(0, tokens.size - n + 1))
    return tokens[at : at + n], at


def _with_groups(base: D.TokenGroups, extra: Mapping[str, list[np.ndarray]]) -> D.TokenGroups:
    """``base``'s groups (any replaced by ``extra[name]``), then the new groups of ``extra``, in order."""
    names = list(base.names) + [n for n in extra if n not in base.names]
    splits = {}
    for i, s in enumerate(D.SPLITS):
        parts = [extra[n][i] if n in extra else base.split(s).group(base.names.index(n)) for n in names]
        lengths = np.array([x.size for x in parts], np.int64)
        splits[s] = D.TokenSplit(np.concatenate(parts).astype(np.uint16), np.cumsum(lengths) - lengths, lengths)
    info = {**base.info, "format": "testbed"}
    return D.TokenGroups(tuple(names), base.vocab_size, **splits, eos_id=base.eos_id, info=info)


def default_grid(m: int) -> np.ndarray:
    """A small static grid that needs no knowledge of which group matters, ``(2m, m)``: for each group ``j``,
    the mixture without it (uniform on the others), then for each ``j`` the one that doubles it (``2 / (m + 1)``
    on ``j``, ``1 / (m + 1)`` elsewhere). Stratified is not included. ``2m`` points are enough for the static
    log-linear law of Data Mixing Laws (``m + 2`` parameters per group) that the DML baseline fits on them."""
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2:
        raise ValueError(f"m must be an int >= 2, got {m!r}")
    return np.concatenate([(1.0 - np.eye(m)) / (m - 1), (1.0 + np.eye(m)) / (m + 1)])


def make_testbed(
    name: str, seed: int = 0, size: str | Size = "cpu", *, epochs: float = 30.0, **overrides: Any
) -> Testbed:
    """Build testbed ``name`` (:data:`TESTBEDS`) from the bundled corpora, deterministically in ``seed``.

    ``size`` is a key of :data:`SIZES` or a :class:`Size`; ``overrides`` replace its fields (e.g.
    ``steps=500``). ``epochs`` (``scarce`` only): how many times a stratified run of this size passes over
    the cut group, so the group keeps ``tokens_per_run / (m * epochs)`` train tokens (at least one batch).
    The random-bytes groups hold ids ``0..255``: ``max(2^18, tokens_per_run / m)`` train tokens (a stratified run
    does not repeat them, so they cannot be memorised) and ``2^14`` val and test tokens.
    """
    if name not in TESTBEDS:
        raise ValueError(f"unknown testbed {name!r}; choose one of {list(TESTBEDS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2^32), got {seed!r}")
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; choose one of {list(SIZES)}")
        size = SIZES[size]
    size = dataclasses.replace(size, **overrides) if overrides else size
    if not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")
    load = lambda names: D.load_groups("bundled", names, seq_len=size.seq_len)  # noqa: E731
    info: dict[str, Any] = {"seed": int(seed)}
    if name == "noise":
        groups = _with_groups(load(["code", "literature"]), {"noise": _random_bytes(_rng(seed, name), size, 3)})
        w = [0.5, 0.5, 0.0]
        desc = (
            f"`code` + `literature` + `noise` (uniform random bytes 0-255, {groups.train.lengths[2]:,} train tokens); "
            "objective: the two "
            "real groups, 1/2 each. Stratified spends a third of the budget on data that cannot be learned."
        )
    elif name == "scarce":
        base = load(["code", "docs", "literature"])
        n = max(int(round(size.tokens_per_run / (3 * epochs))), size.batch_size * size.seq_len + 1)
        piece, at = _cut(base.train.group(2), n, _rng(seed, name))
        groups = _with_groups(base, {"literature": [piece, base.val.group(2), base.test.group(2)]})
        info.update(scarce_group="literature", scarce_tokens=int(piece.size), offset=at)
        info["epochs_at_stratified"] = size.tokens_per_run / 3 / piece.size
        w = [1 / 3] * 3
        desc = (
            f"`code` + `docs` + `literature` cut to {piece.size:,} contiguous train tokens (a stratified run of "
            f"{size.tokens_per_run:,} tokens passes over it {info['epochs_at_stratified']:.0f} times; its "
            "val/test splits are whole); objective: the three groups equally. The cut group's value falls "
            "as it is repeated, which is where an online method could gain over any static mixture."
        )
    elif name == "skewed":
        groups = load(["code", "literature", "qa"])
        w = [0.1, 0.1, 0.8]
        desc = (
            "`code` + `literature` + `qa`; objective weights the downstream group `qa` 0.8 and the others 0.1, "
            "while stratified trains it on a third of the budget. The methods still weigh the groups' "
            "held-out losses equally."
        )
    else:  # m7
        base = load(["code", "docs", "literature", "qa"])
        rng = _rng(seed, name)
        extra = {
            "noise": _random_bytes(rng, size, 7),
            "shuffled_code": _shuffled(base, "code", rng),
            "shuffled_literature": _shuffled(base, "literature", rng),
        }
        groups = _with_groups(base, extra)
        w = [0.25] * 4 + [0.0] * 3
        desc = (
            "m=7: `code`, `docs`, `literature`, `qa` + `noise` (uniform random bytes) + byte-shuffled `code` and "
            "`literature` (each split permuted: the right byte frequencies, no structure); objective: the four "
            "real groups equally. Runs the methods' m=7 hyper-parameters on real text; stratified spends 3/7 "
            "of the budget on useless groups."
        )
    D.validate_groups(groups, size.seq_len, size.batch_size)
    info["train_tokens"] = {g: int(x) for g, x in zip(groups.names, groups.train.lengths)}
    return Testbed(
        name,
        int(seed),
        groups,
        np.asarray(w, np.float64),
        size,
        default_grid(groups.m),
        desc,
        info,
    )


# ------------------------------------------------------------------------------------------ objective
def _check_weights(w: Any, m: int) -> np.ndarray:
    w = np.asarray(w, np.float64)
    if w.shape != (m,) or not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
        raise ValueError(f"eval weights must be {m} non-negative numbers summing to 1, got {np.asarray(w).tolist()}")
    return w


def objective(losses: np.ndarray, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(sum_g w_g exp(L_g), sum_g w_g L_g)`` over the last axis of per-group losses ``(..., m)``."""
    losses = np.asarray(losses, np.float64)
    w = _check_weights(weights, losses.shape[-1])
    return np.exp(losses) @ w, losses @ w


# ------------------------------------------------------------------------------------------ headroom
@dataclasses.dataclass(frozen=True)
class HeadroomResult:
    """Whether a setting leaves room for a mixing method to beat stratified.

    ``best`` is the static mixture with the lowest mean validation objective (weighted perplexity) over seeds;
    ``diffs[s]`` is its test objective minus stratified's for seed ``s`` (paired: same seed, same data order and
    initialisation); ``gap = -mean(diffs)``; ``spread`` = standard deviation of ``diffs`` over seeds (ddof 1).
    ``passed`` iff ``gap > 0`` and ``gap >= factor * spread``.
    """

    mixtures: np.ndarray  # (n, m), row 0 is stratified
    seeds: tuple[int, ...]
    val_objective: np.ndarray  # (n, seeds)
    test_objective: np.ndarray  # (n, seeds)
    best: int
    diffs: np.ndarray  # (seeds,)
    gap: float
    spread: float
    factor: float
    passed: bool

    @property
    def ratio(self) -> float:
        """``gap / spread`` (inf when the paired differences agree exactly)."""
        return float("inf") if self.spread == 0 else self.gap / self.spread

    def to_markdown(self, names: Sequence[str] = (), digits: int = 3) -> str:
        names = list(names) or [f"g{i}" for i in range(self.mixtures.shape[1])]
        head = ["mixture (" + "/".join(names) + ")"] + [f"val seed {s}" for s in self.seeds]
        head += [f"test seed {s}" for s in self.seeds]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, p in enumerate(self.mixtures):
            tag = (
                "/".join(f"{x:.3f}" for x in p)
                + (" (stratified)" if i == 0 else "")
                + (" **best**" if i == self.best else "")
            )
            cells = [tag] + [f"{v:.{digits}f}" for v in (*self.val_objective[i], *self.test_objective[i])]
            lines.append("| " + " | ".join(cells) + " |")
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(
            f"\nheadroom {verdict}: best static beats stratified by {self.gap:.{digits}f} test perplexity "
            f"(paired differences {', '.join(f'{d:+.{digits}f}' for d in self.diffs)}; "
            f"spread {self.spread:.{digits}f}, "
            f"gap/spread {self.ratio:.1f}, needed >= {self.factor:g})"
        )
        return "\n".join(lines)


def headroom_from_losses(
    mixtures: Any,
    val_losses: Any,
    test_losses: Any,
    weights: Any,
    seeds: Sequence[int],
    factor: float = HEADROOM_FACTOR,
) -> HeadroomResult:
    """The headroom verdict from per-group losses of static runs: ``val_losses``/``test_losses`` are
    ``(n, seeds, m)`` for the ``(n, m)`` ``mixtures``, whose row 0 must be stratified (uniform). Needs >= 2 seeds."""
    mix = np.asarray(mixtures, np.float64)
    val, test = np.asarray(val_losses, np.float64), np.asarray(test_losses, np.float64)
    n, m = mix.shape if mix.ndim == 2 else (0, 0)
    k = len(seeds)
    if n < 2 or val.shape != (n, k, m) or test.shape != (n, k, m):
        raise ValueError(
            f"need mixtures (n >= 2, m) and losses (n, seeds, m); got {mix.shape}, {val.shape}, {test.shape} "
            f"for {k} seeds"
        )
    if k < 2:
        raise ValueError(f"the headroom check needs at least 2 seeds (a spread), got {list(seeds)}")
    if not np.allclose(mix[0], 1.0 / m, atol=1e-9):
        raise ValueError(f"mixtures[0] must be stratified (1/{m} each), got {mix[0].tolist()}")
    if not (np.all(np.isfinite(val)) and np.all(np.isfinite(test))):
        raise ValueError("losses contain NaN or inf")
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    v_obj, t_obj = objective(val, weights)[0], objective(test, weights)[0]
    best = int(np.argmin(v_obj.mean(1)))
    diffs = t_obj[best] - t_obj[0]
    gap, spread = float(-diffs.mean()), float(diffs.std(ddof=1))
    return HeadroomResult(
        mix,
        tuple(int(s) for s in seeds),
        v_obj,
        t_obj,
        best,
        diffs,
        gap,
        spread,
        float(factor),
        bool(gap > 0 and gap >= factor * spread),
    )


def _final_losses(losses: pd.DataFrame, split: str, runs: Sequence[str], seeds: Sequence[int], names) -> np.ndarray:
    """``(runs, seeds, m)`` last-step losses of ``split`` from a sweep's loss table."""
    df = losses[losses["split"] == split]
    df = df[df["step"] == df.groupby(["run", "seed"])["step"].transform("max")]
    table = df.set_index(["run", "seed", "group"])["loss"]
    return np.array([[[table[(r, s, g)] for g in names] for s in seeds] for r in runs], np.float64)


def grid_on_objective(losses: pd.DataFrame, names: Sequence[str], weights: Any, seeds: Sequence[int]) -> pd.DataFrame:
    """Grid search on a testbed's objective: of the static runs in a sweep's loss table, the mixture with the
    lowest mean validation objective over ``seeds``; per seed its ``test_<g>`` losses and ``p_<g>``
    (``method = "grid_objective"``). ``compare``'s ``grid`` chooses on the mean loss of all groups instead."""
    static = losses[losses["kind"] == "static"]
    runs = list(dict.fromkeys(static["run"]))
    val = objective(_final_losses(static, "val", runs, seeds, names), weights)[0].mean(1)
    best = runs[int(np.argmin(val))]
    test = _final_losses(static, "test", [best], seeds, names)[0]
    p = static[static["run"] == best].iloc[0]
    rows = [
        {"method": "grid_objective", "seed": int(s), "run": best, **{f"test_{g}": float(x) for g, x in zip(names, t)}}
        | {f"p_{g}": float(p[f"p_{g}"]) for g in names}
        for s, t in zip(seeds, test)
    ]
    return pd.DataFrame(rows)


def _run_of(losses: pd.DataFrame, mixtures: np.ndarray, names: Sequence[str]) -> list[str]:
    """The run of each mixture in a static sweep's loss table, matched on its ``p_<g>`` columns (the sweep
    renormalises mixtures, so a name rebuilt from the caller's floats can differ in the last bit)."""
    table = losses.drop_duplicates("run")
    p = table[[f"p_{g}" for g in names]].to_numpy(float)
    out = []
    for q in mixtures:
        err = np.abs(p - q).max(1)
        if err.min() > 1e-9:
            raise ValueError(f"no run of mixture {q.tolist()} in the sweep")
        out.append(str(table["run"].iloc[int(err.argmin())]))
    return out


def check_headroom(
    testbed: Testbed,
    work_dir: str | Path,
    seeds: Sequence[int] = (0, 1),
    *,
    grid: Any = None,
    factor: float = HEADROOM_FACTOR,
    cfg: Any = None,
    data: Any = None,
    progress: bool = False,
) -> HeadroomResult:
    """Train stratified and the static ``grid`` (default ``testbed.grid``) for ``seeds`` in ``work_dir``
    (resumable) and return the :class:`HeadroomResult` on the testbed's objective."""
    from jaxlaws.train.sweep import check_mixtures, static_sweep

    m = testbed.m
    grid = testbed.grid if grid is None else grid
    mix = np.concatenate([np.full((1, m), 1.0 / m), check_mixtures(grid, m, "grid")])
    cfg = testbed.train_config() if cfg is None else cfg
    data = testbed.sweep_data(cfg) if data is None else data
    sweep = static_sweep(data, cfg, mix, list(seeds), work_dir, progress=progress)
    runs = _run_of(sweep.losses, mix, testbed.names)
    val = _final_losses(sweep.losses, "val", runs, seeds, testbed.names)
    test = _final_losses(sweep.losses, "test", runs, seeds, testbed.names)
    return headroom_from_losses(mix, val, test, testbed.eval_weights, seeds, factor)


def require_headroom(result: HeadroomResult, testbed: str = "this setting", allow: bool = False) -> None:
    """Raise :class:`NoHeadroomError` unless ``result.passed`` (or ``allow``: then only a warning)."""
    if result.passed:
        return
    msg = (
        f"{testbed}: no headroom -- the best static mixture beats stratified by {result.gap:.4f} test perplexity, "
        f"less than {result.factor:g} x the paired seed spread {result.spread:.4f}; a comparison of mixing "
        "methods here could not tell them apart from stratified."
    )
    if not allow:
        raise NoHeadroomError(msg + " Pass allow_no_headroom=True (--allow-no-headroom) to run it anyway.", result)
    import warnings

    warnings.warn(msg + " Judging the methods anyway (allowed).", stacklevel=2)


# ------------------------------------------------------------------------------------------ judging
@dataclasses.dataclass(frozen=True)
class Judgement:
    """``table``: one row per method (objective, paired difference to stratified with its 95 % interval, cost,
    mixture); ``per_seed``: every method x seed with the testbed's objective."""

    table: pd.DataFrame
    per_seed: pd.DataFrame

    def to_markdown(self, digits: int = 3) -> str:
        cols = "method|obj_ppl|d_ppl vs stratified [95% CI]|obj_loss|mixture|p_max/p_min|run_steps_vs_stratified|wall_s"
        cols = cols.split("|")
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        f = lambda x: "" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"  # noqa: E731
        for _, r in self.table.iterrows():
            d = f"{f(r['d_ppl_mean'])} [{f(r['d_ppl_lo'])}, {f(r['d_ppl_hi'])}]" if r["method"] != "stratified" else "0"
            cells = [
                r["label"],
                f"{f(r['ppl_mean'])} ± {f(r['ppl_std'])}",
                d,
                f(r["loss_mean"]),
                r["mixture"],
                ("inf" if np.isinf(r["ratio_max"]) else f(r["ratio_max"]))  # inf: a group at weight 0
                + (f" (bound {f(r['ratio_bound'])})" if np.isfinite(r["ratio_bound"]) else ""),
                f(r["run_steps_ratio"]),
                f"{r['wall_s']:.0f}",
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return "\n".join(lines)


def judge(
    per_seed: pd.DataFrame,
    names: Sequence[str],
    weights: Any,
    *,
    costs: Mapping[str, tuple[int, float]] | None = None,
    ratios: Mapping[str, float] | None = None,
    bounds: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    level: float = 0.95,
) -> Judgement:
    """Paired comparison of methods on a testbed's objective.

    ``per_seed`` has one row per method x seed with ``method``, ``seed``, ``test_<g>`` and ``p_<g>`` columns (as
    ``compare``'s per-seed table). Per method: the weighted test perplexity (mean ± std over seeds), the paired
    difference ``d_s = obj(method, s) - obj(stratified, s)`` with its ``level`` interval
    ``mean(d) ± t_{(1+level)/2, n-1} sd(d) / sqrt(n)`` (Student t over the seeds both have), the weighted loss,
    the final mixture (mean over seeds), ``costs[method] = (run_steps, wall seconds)`` (run-steps relative to
    stratified's), ``ratios[method]`` (the largest ``p_max / p_min`` of its run) and ``bounds[method]`` (what that
    ratio cannot exceed by construction, e.g. ``e^eta`` for Aioli with the original's normalised ``A`` and EMA).
    """
    from scipy import stats

    w = _check_weights(weights, len(names))
    df = per_seed.copy()
    if "stratified" not in set(df["method"]):
        raise ValueError("judge: per_seed has no stratified rows (the paired baseline)")
    df["obj_ppl"], df["obj_loss"] = objective(df[[f"test_{g}" for g in names]].to_numpy(float), w)
    base = df[df["method"] == "stratified"].set_index("seed")["obj_ppl"]
    df["d_ppl"] = df["obj_ppl"] - df["seed"].map(base)
    costs, ratios, labels = dict(costs or {}), dict(ratios or {}), dict(labels or {})
    base_steps = costs.get("stratified", (np.nan, np.nan))[0]
    rows = []
    for mth, d in df.groupby("method", sort=False):
        dd = d["d_ppl"].dropna().to_numpy(float)
        n = dd.size
        half = stats.t.ppf((1 + level) / 2, n - 1) * dd.std(ddof=1) / np.sqrt(n) if n >= 2 else np.nan
        steps, wall = costs.get(mth, (np.nan, np.nan))
        rows.append(
            {
                "method": mth,
                "label": labels.get(mth, mth),
                "ppl_mean": d["obj_ppl"].mean(),
                "ppl_std": d["obj_ppl"].std(ddof=1) if len(d) > 1 else np.nan,
                "d_ppl_mean": dd.mean() if n else np.nan,
                "d_ppl_lo": dd.mean() - half if n else np.nan,
                "d_ppl_hi": dd.mean() + half if n else np.nan,
                "loss_mean": d["obj_loss"].mean(),
                **{f"test_{g}": d[f"test_{g}"].mean() for g in names},
                "mixture": "/".join(f"{x:.3f}" for x in d[[f"p_{g}" for g in names]].mean()),
                "ratio_max": ratios.get(mth, np.nan),
                "ratio_bound": dict(bounds or {}).get(mth, np.nan),
                "run_steps": steps,
                "run_steps_ratio": steps / base_steps,
                "wall_s": wall,
                "n_seeds": len(d),
            }
        )
    return Judgement(pd.DataFrame(rows), df)


def mixture_trajectories(results: Mapping[str, Any], names: Sequence[str]) -> pd.DataFrame:
    """Each method's mixture at its evaluation steps (``method, seed, step, p_<g>``), from the ``p_<g>`` columns
    of its adaptive run's validation rows (DoReMi and DoGE: the proxy run; others: the final run)."""
    parts = []
    cols = [f"p_{g}" for g in names]
    for mth, r in results.items():
        run = _ADAPTIVE_RUN.get(getattr(r, "method", mth), r.final_run)
        df = r.sweep.losses
        df = df[(df["run"] == run) & (df["split"] == "val")]
        if len(df):
            parts.append(df.drop_duplicates(["seed", "step"])[["seed", "step", *cols]].assign(method=mth))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["method", "seed", "step", *cols])


def _aioli_bound(m: int, hp: Mapping[str, Any]) -> float:
    """``e^eta``: with the original's normalised ``A`` (total mass 1) and EMA update every column sum of the
    averaged ``A`` lies in ``[0, 1]``, so Aioli's ``p_max / p_min`` stays below ``e^eta`` for the whole run
    (HazyResearch/aioli ``trainer/aioli_trainer.py``); the cumulative update (``ema=None``) has no such bound."""
    from jaxlaws.mixing.aioli import AIOLI_DEFAULTS

    hp = {**AIOLI_DEFAULTS.get(m, {}), **hp}
    if "eta" not in hp or hp.get("ema", 0.1) is None:
        return float("nan")
    return float(np.exp(hp["eta"]))


def _ratio_max(traj: pd.DataFrame, names: Sequence[str]) -> dict[str, float]:
    p = traj[[f"p_{g}" for g in names]].to_numpy(float)
    with np.errstate(divide="ignore"):
        r = p.max(1) / p.min(1)
    return pd.Series(r, index=traj["method"].to_numpy()).groupby(level=0).max().to_dict()


def plot_trajectories(traj: pd.DataFrame, names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """One panel per method: each group's weight (mean over seeds) against the step; saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(traj["method"]))
    cols = min(3, max(1, len(methods)))
    rows = -(-len(methods) // cols) if methods else 1
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, mth in zip(axes.flat, methods):
        d = traj[traj["method"] == mth].groupby("step")[[f"p_{g}" for g in names]].mean()
        for g in names:
            ax.plot(d.index, d[f"p_{g}"], marker=".", label=g)
        ax.set_title(mth, fontsize=9)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(methods) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("mixture weight")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ the study
def default_children(m: int) -> int:
    """Break-step children per method run for ``sim``: ``max(6, m + 2)``, since the dynamic law that ``sim``
    fits has ``m`` parameters per group."""
    return max(6, m + 2)


def default_probe(testbed: Testbed, n_children: int | None = None) -> tuple[int, np.ndarray, int]:
    """``(break_step, children, remaining_steps)``: half-way, ``n_children`` mixtures of the original's Dirichlet
    cover (seed 1), a tenth of the run -- the method analysis of the Aioli paper (Sec. 4) at this size.
    ``n_children`` defaults to :func:`default_children`."""
    from jaxlaws.sweeps.dirichlet import dirichlet_cover

    S = testbed.size.steps
    n = default_children(testbed.m) if n_children is None else n_children
    return S // 2, dirichlet_cover(testbed.m, n, 1), max(1, S // 10)


def study(
    testbed: Testbed,
    seeds: Sequence[int],
    out: str | Path,
    *,
    methods: Sequence[str] = STUDY_METHODS,
    headroom_seeds: Sequence[int] | None = None,
    headroom_factor: float = HEADROOM_FACTOR,
    allow_no_headroom: bool = False,
    hparams: dict[str, dict] | None = None,
    probe: tuple[int, Any, int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Headroom check, then every method on ``testbed`` with paired ``seeds``, judged on its objective.

    In ``out``: the headroom check's static runs (stratified + the grid, ``headroom_seeds``, default the first two
    seeds) in ``grid/``, where grid search and DML then find those seeds' runs of the grid already trained; the
    comparison (``compare``'s work directories), ``aioli_cumulative/`` (Aioli with ``ema=None``: a departure from
    the original's default), ``judgement.md/.csv``, ``per_seed.csv``, ``trajectories.csv``, ``mixtures.png`` and
    ``study.json`` (``headroom.md`` as soon as the check is done). Raises :class:`NoHeadroomError` before any
    method runs when the check fails, unless ``allow_no_headroom``. ``probe = (break_step, children,
    remaining_steps)`` (e.g. :func:`default_probe`): every analysed method's break-step children, for its ``sim``.
    Resumable: run it again after an interruption.
    """
    from jaxlaws.train.methods.compare import compare
    from jaxlaws.train.methods.sweep import method_sweep

    unknown = [x for x in methods if x not in STUDY_METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(STUDY_METHODS)}")
    seeds = [int(s) for s in seeds]
    out = Path(out)
    cfg = testbed.train_config()
    data = testbed.sweep_data(cfg)
    t0 = time.perf_counter()
    hseeds = headroom_seeds or seeds[:2]
    head = check_headroom(testbed, out / "grid", hseeds, factor=headroom_factor, cfg=cfg, data=data, progress=progress)
    headroom_s = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "headroom.md").write_text(head.to_markdown(testbed.names) + "\n")
    require_headroom(head, testbed.name, allow_no_headroom)
    hparams = {k: dict(v) for k, v in (hparams or {}).items()}
    cmp_methods = [x for x in methods if x != "aioli_cumulative"]
    kw = dict(zip(("break_step", "children", "remaining_steps"), probe)) if probe is not None else {}
    comp = compare(
        data, cfg, seeds, out, methods=cmp_methods, hparams=hparams, mixtures=testbed.grid, progress=progress, **kw
    )
    results = dict(comp.results)
    per_seed = [comp.per_seed]
    if "aioli_cumulative" in methods:
        hp = {**hparams.get("aioli", {}), **hparams.get("aioli_cumulative", {}), "ema": None}
        r = method_sweep("aioli", data, cfg, seeds, out / "aioli_cumulative", hparams=hp, progress=progress)
        results["aioli_cumulative"] = r
        per_seed.append(r.final.assign(method="aioli_cumulative"))
    if "grid" in results:  # grid search on the testbed's objective, from the same static runs
        per_seed.append(grid_on_objective(results["grid"].sweep.losses, testbed.names, testbed.eval_weights, seeds))
    per_seed_df = pd.concat(per_seed, ignore_index=True)
    traj = mixture_trajectories(results, testbed.names)
    costs = {k: (sum(r.run_steps.values()), sum(r.seconds.values())) for k, r in results.items()}
    if "grid" in costs:
        costs["grid_objective"] = costs["grid"]
    labels = {
        "aioli_cumulative": "aioli_cumulative (ema=None, departure)",
        "aioli": "aioli (original hparams)",
        "grid": "grid (mean val loss of all groups)",
        "grid_objective": "grid (val objective)",
    }
    jd = judge(
        per_seed_df,
        testbed.names,
        testbed.eval_weights,
        costs=costs,
        ratios=_ratio_max(traj, testbed.names),
        bounds={"aioli": _aioli_bound(testbed.m, hparams.get("aioli", {}))},
        labels=labels,
    )
    _write_study(out, testbed, head, jd, traj, comp.to_markdown(), headroom_s, time.perf_counter() - t0, seeds)
    return {"headroom": head, "judgement": jd, "trajectories": traj, "results": results, "comparison": comp}


def _write_study(out: Path, tb: Testbed, head, jd: Judgement, traj, comp_md: str, headroom_s, wall, seeds) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "judgement.md").write_text(
        f"# testbed {tb.name} (seed {tb.seed})\n\n{tb.description}\n\n## headroom\n\n"
        + head.to_markdown(tb.names)
        + f"\n\n## methods on the testbed's objective (seeds {seeds}, paired)\n\n"
        + jd.to_markdown()
        + "\n\n## compare's table (unweighted mean over all groups; sim from the break-step children)\n\n"
        + comp_md
        + "\n"
    )
    jd.table.to_csv(out / "judgement.csv", index=False)
    jd.per_seed.to_csv(out / "per_seed.csv", index=False)
    traj.to_csv(out / "trajectories.csv", index=False)
    try:
        plot_trajectories(traj, tb.names, out / "mixtures.png", f"testbed {tb.name}: mixture over training")
    except ImportError:  # matplotlib is the plot extra; trajectories.csv holds the same numbers
        pass
    summary = {
        "testbed": tb.name,
        "seed": tb.seed,
        "size": dataclasses.asdict(tb.size),
        "eval_weights": tb.eval_weights.tolist(),
        "info": tb.info,
        "headroom": {
            "gap": head.gap,
            "spread": head.spread,
            "passed": head.passed,
            "best": head.mixtures[head.best].tolist(),
        },
        "headroom_seconds": headroom_s,
        "wall_seconds": wall,
    }
    (out / "study.json").write_text(json.dumps(summary, indent=1, default=str))


# ------------------------------------------------------------------------------------------ command line
def add_testbed_args(p: Any) -> None:
    """``--testbed``, ``--testbed-seed``, ``--headroom-seeds``, ``--headroom-factor`` and ``--allow-no-headroom``
    on ``jaxlaws compare``."""
    p.add_argument("--testbed", default=None, choices=TESTBEDS, help="judge the methods on a testbed (study)")
    p.add_argument("--testbed-seed", type=int, default=0, help="seed the testbed's data are made from")
    p.add_argument("--headroom-seeds", default=None, help="seeds of the headroom check (default: the first two)")
    p.add_argument("--headroom-factor", type=float, default=HEADROOM_FACTOR, help="gap >= FACTOR x sd of the diffs")
    p.add_argument("--allow-no-headroom", action="store_true", help="judge the methods even without headroom")


def cli_study(args: Any, hparams_of: Any) -> int:
    """``jaxlaws compare --testbed NAME``: :func:`study` on a testbed sized by the command's flags (model preset,
    steps, batch, sequence length, lr, warm-up, evaluation); the testbed fixes the data and the objective.
    ``hparams_of(method, m)`` reads a method's hyper-parameter flags (the command-line module passes its own
    reader: it imports this module, so this one cannot import it)."""
    from jaxlaws.train.methods.compare import DEFAULT_METHODS
    from jaxlaws.train.options import parse_mixtures, parse_seeds

    for flag, value, default in (("--data", args.data, "bundled"), ("--groups", args.groups, None)):
        if value != default:
            raise ValueError(f"{flag} does not go with --testbed: the testbed makes its own groups")
    if args.bf16:
        raise ValueError("--bf16 does not go with --testbed (its runs are float32)")
    seeds = parse_seeds(args.seeds)
    head_seeds = parse_seeds(args.headroom_seeds) if args.headroom_seeds else None
    cpu = SIZES["cpu"]
    tb = make_testbed(
        args.testbed,
        args.testbed_seed,
        cpu,
        model=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len or cpu.seq_len,
        lr=args.lr,
        warmup=args.warmup,
        eval_every=args.eval_every or None,
        max_eval_chunks=args.max_eval_chunks or cpu.max_eval_chunks,
        probe_chunks=args.probe_chunks,
    )
    methods = [x for x in args.methods.split(",") if x]
    methods = list(STUDY_METHODS) if methods == list(DEFAULT_METHODS) else methods
    hp = {mth: hparams_of(mth, tb.m) for mth in methods}
    probe = None
    if args.break_step is not None:
        if args.children is None or args.remaining_steps is None:
            raise ValueError("--break-step needs --children and --remaining-steps")
        probe = (args.break_step, parse_mixtures(args.children, tb.m, "--children"), args.remaining_steps)
    study(
        tb,
        seeds,
        args.out,
        methods=methods,
        headroom_seeds=head_seeds,
        headroom_factor=args.headroom_factor,
        allow_no_headroom=args.allow_no_headroom,
        hparams=hp,
        probe=probe,
        progress=not args.no_progress,
    )
    print((Path(args.out) / "judgement.md").read_text())
    print(f"tables and figure: {args.out}/judgement.csv, per_seed.csv, trajectories.csv, mixtures.png")
    return 0
