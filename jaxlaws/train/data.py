"""Training data for the mixing-law sweeps: token groups, mixture samplers and evaluation chunks.

A *group* is one data domain (``code``, ``literature``, ... or one synthetic language). All groups of a
split are stored as one ``uint16`` token array with per-group ``starts`` and ``lengths`` (:class:`TokenSplit`),
so that a jitted sampler only needs three arrays and a mixture ``p``.

Sources (:func:`load_groups`):

* ``"bundled"`` -- the corpora shipped in ``jaxlaws/data/corpora`` (see ``SOURCES.md`` there).
* a directory of per-group text directories ``<dir>/<group>/*.txt|*.py|*.rst|*.md``, split per document.
* a directory of pre-tokenised arrays ``<dir>/<group>/{train,val,test}.bin`` (raw ``uint16``, as the original
  Aioli code stores them).

Tokenisation is byte-level by default: ids ``0..255`` are the UTF-8 bytes and ``EOS_ID = 256`` ends every
text file (or every per-document piece), so ``vocab_size = 257``. No padding id exists: every training
window and evaluation chunk is a full run of real tokens. Any callable ``str -> list[int]`` can be plugged in
instead, with its ``vocab_size``.

Sampling (:func:`sample_batch`): sample ``b`` of a batch draws its group ``g_b ~ Categorical(p)`` and then a
window start uniformly among the ``n_g - L`` positions whose ``L + 1`` tokens lie inside group ``g_b``'s train
tokens. It is pure JAX; the batch at step ``s`` is ``sample_batch(fold_in(run_key, s), ...)``, so the stream
position is the step itself and ``K`` runs ``vmap`` over ``(key, p)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.mixing.base import allocated_ids, categorical_ids  # noqa: F401  (re-exported: the samplers use them)
from jaxlaws.sweeps.schema import SIMPLEX_ATOL

__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "BYTE_VOCAB",
    "EOS_ID",
    "BYTE_VOCAB_SIZE",
    "TEXT_SUFFIXES",
    "BUNDLED_DIR",
    "Tokenizer",
    "TokenSplit",
    "TokenGroups",
    "concat_splits",
    "validate_groups",
    "byte_tokenize",
    "byte_detokenize",
    "split_document",
    "load_groups",
    "save_bin",
    "check_simplex",
    "allocate_exact",
    "gather_windows",
    "sample_batch",
    "sample_allocated_batch",
    "eval_chunks",
    "synthetic_transitions",
    "stationary_distribution",
    "markov_cross_entropy",
    "synthetic_groups",
]

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
BYTE_VOCAB = 256
EOS_ID = 256  # byte tokeniser's end-of-document id
BYTE_VOCAB_SIZE = BYTE_VOCAB + 1
TEXT_SUFFIXES = (".txt", ".py", ".rst", ".md")
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "data" / "corpora"
_UINT16_LIMIT = 1 << 16

Tokenizer = Callable[[str], Sequence[int]]


# ------------------------------------------------------------------------------------------ containers
@dataclasses.dataclass(frozen=True, eq=False)
class TokenSplit:
    """One split of all groups: ``tokens[starts[g] : starts[g] + lengths[g]]`` are group ``g``'s tokens."""

    tokens: np.ndarray  # uint16 (n,)
    starts: np.ndarray  # int64 (m,)
    lengths: np.ndarray  # int64 (m,)

    def group(self, g: int) -> np.ndarray:
        """Group ``g``'s tokens (a view)."""
        return self.tokens[self.starts[g] : self.starts[g] + self.lengths[g]]

    def as_jax(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(tokens uint16, starts int32, lengths int32)`` on the default device, for the samplers."""
        return (jnp.asarray(self.tokens), jnp.asarray(self.starts, jnp.int32), jnp.asarray(self.lengths, jnp.int32))


@dataclasses.dataclass(frozen=True, eq=False)
class TokenGroups:
    """Named token groups with train/val/test splits over a shared vocabulary.

    Attributes:
      names: the group names, in order.
      vocab_size: the shared vocabulary's size.
      train, val, test: the splits (:class:`TokenSplit`: tokens, and each group's start and length).
      eos_id: the end-of-text id appended after each document, or ``None``.
      info: source metadata; for :func:`synthetic_groups` the generating transition matrices, so tests can
        compare against the known languages.
    """

    names: tuple[str, ...]
    vocab_size: int
    train: TokenSplit
    val: TokenSplit
    test: TokenSplit
    eos_id: int | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        m = len(self.names)
        if m == 0 or len(set(self.names)) != m:
            raise ValueError(f"TokenGroups: names must be non-empty and unique, got {self.names}")
        if not 0 < self.vocab_size <= _UINT16_LIMIT:
            raise ValueError(f"TokenGroups: vocab_size={self.vocab_size} must be in [1, 65536] (uint16)")
        for split in SPLITS:
            s = self.split(split)
            ends = np.cumsum(s.lengths)
            if (
                s.tokens.dtype != np.uint16
                or s.starts.shape != (m,)
                or s.lengths.shape != (m,)
                or np.any(s.starts != ends - s.lengths)
                or ends[-1] != s.tokens.size
            ):
                raise ValueError(f"TokenGroups: split {split!r} is not a uint16 concatenation of {m} groups")
            if s.tokens.size and int(s.tokens.max()) >= self.vocab_size:
                raise ValueError(
                    f"TokenGroups: split {split!r} has token id {int(s.tokens.max())} >= vocab_size {self.vocab_size}"
                )

    @property
    def m(self) -> int:
        return len(self.names)

    def split(self, name: str) -> TokenSplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def select(self, names: Sequence[str]) -> TokenGroups:
        """The groups ``names``, in that order (e.g. two of the bundled corpora for an m=2 sweep)."""
        idx = [_index_of(self.names, n) for n in names]
        info = dict(self.info)
        if "transitions" in info:  # synthetic languages: keep the known answers aligned with the groups
            info["transitions"] = info["transitions"][idx]
            info["cross_entropy"] = info["cross_entropy"][np.ix_(idx, idx)]
        return dataclasses.replace(
            self,
            names=tuple(names),
            info=info,
            **{s: concat_splits([self.split(s).group(i) for i in idx]) for s in SPLITS},
        )


def _index_of(names: Sequence[str], name: str) -> int:
    if name not in names:
        raise ValueError(f"unknown group {name!r}; available: {list(names)}")
    return list(names).index(name)


def concat_splits(parts: Sequence[np.ndarray]) -> TokenSplit:
    """One split of the groups' token arrays ``parts``, in order: their concatenation, starts and lengths."""
    lengths = np.array([p.size for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    tokens = np.concatenate(parts).astype(np.uint16) if parts else np.zeros(0, np.uint16)
    return TokenSplit(tokens, starts, lengths)


def validate_groups(groups: TokenGroups, seq_len: int, batch_size: int | None = None) -> None:
    """Raise ``ValueError`` unless every group can feed training windows and evaluation chunks.

    A train split needs at least one window of ``seq_len + 1`` tokens; with ``batch_size`` it needs
    ``batch_size * seq_len + 1`` tokens, i.e. room for a whole batch of windows that do not share targets.
    Each val/test split needs at least one chunk of ``seq_len + 1`` tokens.
    """
    _check_positive_int(seq_len, "seq_len")
    need = {
        "train": seq_len + 1 if batch_size is None else _check_positive_int(batch_size, "batch_size") * seq_len + 1,
        "val": seq_len + 1,
        "test": seq_len + 1,
    }
    for split, n_min in need.items():
        for name, n in zip(groups.names, groups.split(split).lengths):
            if n < n_min:
                what = "one batch" if split == "train" and batch_size is not None else "one window"
                raise ValueError(
                    f"group {name!r}: {split} split has {int(n)} tokens, fewer than the {n_min} "
                    f"that {what} needs (seq_len={seq_len}"
                    + (f", batch_size={batch_size})" if batch_size is not None else ")")
                )


def _check_positive_int(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x <= 0:
        raise ValueError(f"{name} must be a positive int, got {x!r}")
    return int(x)


# ------------------------------------------------------------------------------------------ tokenising
def byte_tokenize(text: str) -> np.ndarray:
    """UTF-8 bytes as ``uint16`` ids ``0..255`` (no EOS; the loader appends it)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)


def byte_detokenize(ids: Sequence[int] | np.ndarray) -> str:
    """Inverse of :func:`byte_tokenize`; EOS becomes a newline, invalid UTF-8 a replacement character."""
    ids = np.asarray(ids)
    return bytes(np.where(ids == EOS_ID, ord("\n"), ids).astype(np.uint8)).decode("utf-8", "replace")


def split_document(text: str, fractions: Sequence[float] = SPLIT_FRACTIONS) -> tuple[str, str, str]:
    """Cut a document into (train, val, test) at the first line break after each cumulative fraction.

    Cutting every document (rather than assigning whole documents to splits) keeps each split
    representative of its group even for groups of a handful of documents.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f < 0) or abs(f.sum() - 1) > 1e-9:
        raise ValueError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")

    def cut(frac: float) -> int:
        i = text.find("\n", int(frac * len(text)))
        return len(text) if i < 0 else i + 1

    a = cut(f[0])
    b = max(a, cut(f[0] + f[1]))
    return text[:a], text[a:b], text[b:]


def _resolve_tokenizer(tokenizer: Tokenizer | None, vocab_size: int | None, eos_id: int | None):
    if tokenizer is None:
        if vocab_size not in (None, BYTE_VOCAB_SIZE) or eos_id not in (None, EOS_ID):
            raise ValueError(
                f"the byte tokeniser has vocab_size={BYTE_VOCAB_SIZE} and eos_id={EOS_ID}; "
                f"got vocab_size={vocab_size}, eos_id={eos_id}"
            )
        return byte_tokenize, BYTE_VOCAB_SIZE, EOS_ID
    vocab_size = vocab_size if vocab_size is not None else getattr(tokenizer, "vocab_size", None)
    if vocab_size is None:
        raise ValueError("a custom tokenizer needs vocab_size (argument or tokenizer.vocab_size)")
    _check_positive_int(vocab_size, "vocab_size")
    if vocab_size > _UINT16_LIMIT:
        raise ValueError(f"vocab_size={vocab_size} does not fit uint16 storage (max 65536)")
    if eos_id is not None and not 0 <= eos_id < vocab_size:
        raise ValueError(f"eos_id={eos_id} is outside the vocabulary [0, {vocab_size})")
    return tokenizer, int(vocab_size), eos_id


def _encode(text: str, tokenize: Tokenizer, vocab_size: int, eos_id: int | None, where: Path) -> np.ndarray:
    ids = np.asarray(tokenize(text), dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{where}: tokenizer produced ids outside [0, {vocab_size})")
    if eos_id is not None:
        ids = np.append(ids, eos_id)
    return ids.astype(np.uint16)


# ------------------------------------------------------------------------------------------ loading
def load_groups(
    source: str | Path,
    names: Sequence[str] | None = None,
    tokenizer: Tokenizer | None = None,
    seq_len: int = 128,
    *,
    batch_size: int | None = None,
    vocab_size: int | None = None,
    eos_id: int | None = None,
    split_fractions: Sequence[float] = SPLIT_FRACTIONS,
    suffixes: Sequence[str] = TEXT_SUFFIXES,
) -> TokenGroups:
    """Load token groups from the bundled corpora, a text directory, or ``.bin`` token arrays.

    Args:
      source: ``"bundled"`` or a directory whose sub-directories are the groups.
      names: groups to load, in this order (group index = position); default all sub-directories, sorted.
      tokenizer: ``str -> list[int]``; default byte-level (vocab 257, ``EOS_ID`` after each file/piece).
      seq_len: context length the groups must support (:func:`validate_groups`).
      batch_size: if given, each train split must hold a batch of windows without shared targets.
      vocab_size: required with a custom tokenizer lacking ``.vocab_size``; for ``.bin`` groups the
        default is ``max id + 1``.
      eos_id: id appended after each text file/piece by a custom tokenizer (default: none).
      split_fractions: per-document (train, val, test) fractions for text groups that are not pre-split.
      suffixes: file endings read in text groups.

    A text group holding ``train.txt``, ``val.txt`` and ``test.txt`` is pre-split (the bundled corpora);
    otherwise every matching file (recursively, sorted by path) is cut by :func:`split_document`.

    Returns:
      The :class:`TokenGroups`.
    """
    root = BUNDLED_DIR if str(source) == "bundled" else Path(source)
    if not root.is_dir():
        raise ValueError(f"data source {str(source)!r} is not 'bundled' or an existing directory")
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if names is None:
        names = available
    names = tuple(names)
    if not names:
        raise ValueError(f"{root}: no group directories found")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate group names in {names}")
    for n in names:
        _index_of(available, n)
    is_bin = [all((root / n / f"{s}.bin").is_file() for s in SPLITS) for n in names]
    if any(is_bin) and not all(is_bin):
        raise ValueError(
            f"{root}: groups {[n for n, b in zip(names, is_bin) if not b]} lack "
            "{train,val,test}.bin while others have them; use one format for all groups"
        )
    if all(is_bin):
        groups = _load_bin(root, names, tokenizer, vocab_size, eos_id)
    else:
        tokenize, vocab_size, eos_id = _resolve_tokenizer(tokenizer, vocab_size, eos_id)
        per_split: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        for n in names:
            for s, ids in zip(
                SPLITS, _load_text_group(root / n, tokenize, vocab_size, eos_id, split_fractions, suffixes)
            ):
                per_split[s].append(ids)
        groups = TokenGroups(
            names,
            vocab_size,
            **{s: concat_splits(per_split[s]) for s in SPLITS},
            eos_id=eos_id,
            info={"source": str(root), "format": "text"},
        )
    validate_groups(groups, seq_len, batch_size)
    return groups


def _load_text_group(gdir: Path, tokenize, vocab_size, eos_id, fractions, suffixes) -> list[np.ndarray]:
    presplit = [gdir / f"{s}.txt" for s in SPLITS]
    if all(p.is_file() for p in presplit):
        return [_encode(p.read_text(encoding="utf-8"), tokenize, vocab_size, eos_id, p) for p in presplit]
    files = sorted(p for p in gdir.rglob("*") if p.is_file() and p.name.endswith(tuple(suffixes)))
    if not files:
        raise ValueError(f"group {gdir.name!r}: no files ending in {tuple(suffixes)} under {gdir}")
    pieces: list[list[np.ndarray]] = [[], [], []]
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{f}: not UTF-8 text ({e})") from None
        for i, piece in enumerate(split_document(text, fractions)):
            if piece:
                pieces[i].append(_encode(piece, tokenize, vocab_size, eos_id, f))
    return [np.concatenate(p) if p else np.zeros(0, np.uint16) for p in pieces]


def _load_bin(root: Path, names, tokenizer, vocab_size, eos_id) -> TokenGroups:
    if tokenizer is not None:
        raise ValueError(f"{root}: .bin groups are already tokenised; do not pass a tokenizer")
    per_split = {}
    for s in SPLITS:
        arrays = []
        for n in names:
            path = root / n / f"{s}.bin"
            if path.stat().st_size % 2:
                raise ValueError(f"{path}: size {path.stat().st_size} bytes is not a whole number of uint16")
            arrays.append(np.fromfile(path, dtype="<u2"))
        per_split[s] = concat_splits(arrays)
    if vocab_size is None:
        vocab_size = 1 + max((int(per_split[s].tokens.max()) for s in SPLITS if per_split[s].tokens.size), default=0)
    return TokenGroups(names, int(vocab_size), **per_split, eos_id=eos_id, info={"source": str(root), "format": "bin"})


def save_bin(groups: TokenGroups, directory: str | Path) -> Path:
    """Write ``<directory>/<group>/{train,val,test}.bin`` (little-endian ``uint16``), the original's layout."""
    root = Path(directory)
    for g, name in enumerate(groups.names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for s in SPLITS:
            groups.split(s).group(g).astype("<u2").tofile(root / name / f"{s}.bin")
    return root


# ------------------------------------------------------------------------------------------ mixtures
def check_simplex(p: Any, m: int, name: str = "p") -> np.ndarray:
    """``p`` as float64, after checking it is a length-``m`` probability vector (to ``SIMPLEX_ATOL``)."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != (m,):
        raise ValueError(f"{name} must have shape ({m},) (one weight per group), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < -SIMPLEX_ATOL) or abs(arr.sum() - 1) > SIMPLEX_ATOL:
        raise ValueError(
            f"{name}={arr.tolist()} is not on the probability simplex (entries >= 0, sum 1 within {SIMPLEX_ATOL})"
        )
    arr = np.clip(arr, 0.0, None)
    return arr / arr.sum()


def allocate_exact(p: Any, batch_size: int) -> np.ndarray:
    """Integer group counts for one batch: largest-remainder (Hamilton) rounding of ``batch_size * p``.

    ``c_j = floor(B p_j)`` plus one for the ``B - sum_j floor(B p_j)`` groups with the largest fractional
    parts (ties to the lower index). Hence ``sum_j c_j = B`` and ``|c_j - B p_j| < 1`` for every ``j``, for
    any ``m``. The original's ``max(1, int(q_j B))`` with the last group taking the remainder can go
    negative (m=7, docs/DEVIATIONS.md); here no group is forced to 1 and none goes below 0.
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    exact = check_simplex(p, p.shape[0]) * batch_size
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: batch_size - counts.sum()]] += 1
    return counts


def _concrete(x: Any) -> np.ndarray | None:
    """Host value of ``x``, or ``None`` when it is traced (then value checks are skipped)."""
    return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


def _check_layout(starts, lengths, seq_len: int) -> int:
    _check_positive_int(seq_len, "seq_len")
    m = np.shape(starts)[0] if np.ndim(starts) == 1 else -1
    if m < 1 or np.shape(lengths) != (m,):
        raise ValueError(
            f"starts and lengths must be 1-D of equal length m >= 1, got shapes "
            f"{np.shape(starts)} and {np.shape(lengths)}"
        )
    lens = _concrete(lengths)
    if lens is not None and np.any(lens < seq_len + 1):
        g = int(np.argmin(lens))
        raise ValueError(
            f"group {g} has {int(lens[g])} train tokens, fewer than one window (seq_len + 1 = {seq_len + 1})"
        )
    return m


def gather_windows(key: jax.Array, tokens, starts, lengths, group_ids: jax.Array, seq_len: int) -> jax.Array:
    """For each ``group_ids[b]``, a uniform random ``(seq_len + 1)``-token window inside that group."""
    starts = jnp.asarray(starts, jnp.int32)
    lengths = jnp.asarray(lengths, jnp.int32)
    # valid first positions are 0 .. n_g - seq_len - 1, so the window's last token stays inside the group
    offsets = jax.random.randint(key, group_ids.shape, 0, lengths[group_ids] - seq_len)
    idx = (starts[group_ids] + offsets)[:, None] + jnp.arange(seq_len + 1, dtype=jnp.int32)
    return jnp.asarray(tokens)[idx].astype(jnp.int32)


def sample_batch(
    key: jax.Array, tokens, starts, lengths, p, batch_size: int, seq_len: int
) -> tuple[jax.Array, jax.Array]:
    """I.i.d. mixture batch: ``g_b ~ Categorical(p)``, then a uniform window of group ``g_b``.

    Returns ``(inputs int32 (B, seq_len + 1), group_ids int32 (B,))``; the model reads ``inputs[:, :-1]``
    and predicts ``inputs[:, 1:]``. Pure JAX (jit/vmap-safe; ``batch_size``/``seq_len`` are static).
    Zero weights are never drawn (their logit is ``-inf``). Shapes are always checked; ``p`` and
    ``lengths`` values are checked when they are concrete.
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    m = _check_layout(starts, lengths, seq_len)
    if np.shape(p) != (m,):
        raise ValueError(f"p must have shape ({m},) (one weight per group), got shape {np.shape(p)}")
    if (p_host := _concrete(p)) is not None:
        check_simplex(p_host, m)
    k_group, k_window = jax.random.split(key)
    group_ids = categorical_ids(k_group, p, batch_size)
    return gather_windows(k_window, tokens, starts, lengths, group_ids, seq_len), group_ids


def sample_allocated_batch(
    key: jax.Array, tokens, starts, lengths, counts, seq_len: int, batch_size: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """Batch with exactly ``counts[j]`` windows of group ``j`` (e.g. from :func:`allocate_exact`), shuffled.

    ``batch_size`` defaults to ``sum(counts)`` and must be given when ``counts`` is traced. Returns
    ``(inputs int32 (B, seq_len + 1), group_ids int32 (B,))``.
    """
    m = _check_layout(starts, lengths, seq_len)
    if np.shape(counts) != (m,):
        raise ValueError(f"counts must have shape ({m},) (one count per group), got shape {np.shape(counts)}")
    c_host = _concrete(counts)
    if c_host is None and batch_size is None:
        raise ValueError("batch_size is required when counts is traced")
    if c_host is not None:
        if np.any(c_host < 0) or np.any(c_host != np.round(c_host)):
            raise ValueError(f"counts={c_host.tolist()} must be non-negative integers")
        total = int(c_host.sum())
        if batch_size is not None and total != batch_size:
            raise ValueError(f"counts sum to {total}, not batch_size={batch_size}")
        batch_size = total
    batch_size = _check_positive_int(batch_size, "batch_size")
    k_perm, k_window = jax.random.split(key)
    group_ids = allocated_ids(k_perm, counts, batch_size)
    return gather_windows(k_window, tokens, starts, lengths, group_ids, seq_len), group_ids


# ------------------------------------------------------------------------------------------ evaluation
def eval_chunks(
    groups: TokenGroups, split: str, seq_len: int, max_chunks_per_group: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All evaluation chunks of a split, grouped by group: ``(inputs int32 (N, seq_len+1), group_ids (N,))``.

    Group ``g`` with ``n`` tokens gives ``N_g = (n - 1) // seq_len`` chunks; chunk ``k`` is
    ``tokens[k L : k L + L + 1]``. Their targets (positions ``1..L`` of each chunk) tile
    ``tokens[1 : N_g L + 1]`` exactly once with no shuffling, like the original's contiguous evaluation;
    consecutive chunks share one boundary token (last target of one, first input of the next), and the
    final ``< L`` tokens are dropped. ``max_chunks_per_group`` keeps only that many chunks per group,
    evenly spaced over the split (indices ``floor(k N_g / cap)``), to make frequent evals cheaper.
    """
    s = groups.split(split)
    L = _check_positive_int(seq_len, "seq_len")
    if max_chunks_per_group is not None:
        _check_positive_int(max_chunks_per_group, "max_chunks_per_group")
    inputs, ids = [], []
    for g, name in enumerate(groups.names):
        n_chunks = (int(s.lengths[g]) - 1) // L
        if n_chunks < 1:
            raise ValueError(
                f"group {name!r}: {split} split has {int(s.lengths[g])} tokens, fewer than one "
                f"chunk (seq_len + 1 = {L + 1})"
            )
        k = np.arange(n_chunks)
        if max_chunks_per_group is not None and max_chunks_per_group < n_chunks:
            k = (np.arange(max_chunks_per_group) * n_chunks) // max_chunks_per_group
        idx = s.starts[g] + k[:, None] * L + np.arange(L + 1)
        inputs.append(s.tokens[idx].astype(np.int32))
        ids.append(np.full(k.size, g, np.int32))
    return np.concatenate(inputs), np.concatenate(ids)


# ------------------------------------------------------------------------------------------ synthetic
def synthetic_transitions(
    m: int,
    overlap: float = 0.5,
    seed: int = 0,
    *,
    vocab_size: int = 64,
    structure: str = "shared",
    concentration: float = 0.1,
    smoothing: float = 0.01,
) -> np.ndarray:
    """Transition matrices ``T`` of shape ``(m, V, V)`` of the synthetic languages (rows sum to 1).

    Components are random row-stochastic matrices with rows ``~ Dirichlet(concentration * 1_V)`` (small
    concentration: peaked, low-entropy rows, so languages are distinct): one private ``P_g`` per group and
    shared ones ``S``. With ``o = overlap`` and ``U`` the uniform matrix,

    * ``structure="shared"``: ``T_g = (1-eps) (o S + (1-o) P_g) + eps U``; every pair of groups shares ``S``.
    * ``structure="chain"``:  ``T_g = (1-eps) (o mean_{k in N(g)} S_k + (1-o) P_g) + eps U`` where ``S_k`` is
      shared by groups ``k`` and ``k+1`` and ``N(g) = {g-1, g} ∩ [0, m-2]``; only neighbours share.

    Hence ``T_g - T_h = (1-eps)(1-o)(P_g - P_h)`` for "shared": the total-variation distance between any
    two languages shrinks linearly to 0 as ``overlap -> 1``. The components depend on ``seed`` only, so
    changing ``overlap`` at a fixed seed moves along that line. ``eps = smoothing`` keeps every transition
    possible, so cross-entropies (:func:`markov_cross_entropy`) are finite.
    """
    m = _check_positive_int(m, "m")
    V = _check_positive_int(vocab_size, "vocab_size")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap}")
    if not 0.0 <= smoothing <= 1.0 or concentration <= 0:
        raise ValueError(f"need smoothing in [0, 1] and concentration > 0, got {smoothing}, {concentration}")
    if structure not in ("shared", "chain"):
        raise ValueError(f"structure must be 'shared' or 'chain', got {structure!r}")
    rng = np.random.default_rng(seed)
    private = rng.dirichlet(np.full(V, concentration), size=(m, V))
    if structure == "shared":
        shared = np.broadcast_to(rng.dirichlet(np.full(V, concentration), size=V), (m, V, V))
    else:
        links = rng.dirichlet(np.full(V, concentration), size=(max(m - 1, 1), V))
        shared = np.stack([links[max(g - 1, 0) : max(min(g, m - 2), 0) + 1].mean(0) for g in range(m)])
    T = (1 - smoothing) * (overlap * shared + (1 - overlap) * private) + smoothing / V
    return T / T.sum(-1, keepdims=True)


def stationary_distribution(T: np.ndarray) -> np.ndarray:
    """Stationary distributions ``pi_g`` (``pi_g T_g = pi_g``) of each chain in a ``(m, V, V)`` stack."""
    T = np.asarray(T, dtype=np.float64)
    pis = []
    for Tg in T:
        w, v = np.linalg.eig(Tg.T)
        pi = np.real(v[:, np.argmin(np.abs(w - 1))])
        pis.append(pi / pi.sum())
    return np.stack(pis)


def markov_cross_entropy(T: np.ndarray) -> np.ndarray:
    """``CE[h, g] = sum_x pi_h(x) sum_y T_h(x, y) (-log T_g(x, y))`` in nats per token.

    The loss on language ``h`` of the ideal bigram model of language ``g``; the diagonal is each
    language's entropy rate (the lowest achievable loss). ``CE[h, g] - CE[h, h]`` (a KL rate) says how
    much training on ``g`` alone leaves on the table for ``h``: small means ``g`` helps ``h``.
    """
    T = np.asarray(T, dtype=np.float64)
    pi = stationary_distribution(T)
    joint = pi[:, :, None] * T  # (h, x, y)
    return -np.einsum("hxy,gxy->hg", joint, np.log(T))


@jax.jit
def _run_chains(cdf: jax.Array, x0: jax.Array, u: jax.Array) -> jax.Array:
    """Inverse-CDF sampling of ``m`` Markov chains in parallel: ``x_{t+1} = #{y : cdf[g, x_t, y] < u_t}``."""
    rows = jnp.arange(cdf.shape[0])

    def step(x, u_t):
        nxt = jnp.sum(cdf[rows, x] < u_t[:, None], axis=-1)
        nxt = jnp.minimum(nxt, cdf.shape[-1] - 1)  # guard cdf[-1] rounding below 1
        return nxt, nxt

    _, xs = jax.lax.scan(step, x0, u)
    return xs.T


def synthetic_groups(
    m: int,
    overlap: float = 0.5,
    seed: int = 0,
    n_tokens: int = 100_000,
    *,
    n_eval_tokens: int | None = None,
    vocab_size: int = 64,
    structure: str = "shared",
    concentration: float = 0.1,
    smoothing: float = 0.01,
) -> TokenGroups:
    """``m`` synthetic first-order Markov "languages" over a shared vocabulary, with controlled overlap.

    Group ``g`` (named ``"syn0"``, ``"syn1"``, ...) is one chain of ``n_tokens + 2 n_eval_tokens`` tokens
    from :func:`synthetic_transitions` (same arguments), started uniformly at random and cut into train,
    val and test (``n_eval_tokens`` defaults to ``n_tokens // 10``). ``info["transitions"]`` holds ``T`` and
    ``info["cross_entropy"]`` the :func:`markov_cross_entropy` matrix, i.e. the known answer to "which
    group helps which": with ``overlap=1`` and "shared" all languages coincide; with "chain" only
    neighbouring groups share structure. Deterministic in ``seed`` (numpy ``default_rng``).

    Args:
      m: the number of groups.
      overlap: how much the languages share, in [0, 1].
      seed: the generator's seed.
      n_tokens: training tokens per group.
      n_eval_tokens: val and test tokens per group.
      vocab_size, structure, concentration, smoothing: as :func:`synthetic_transitions`.

    Returns:
      The :class:`TokenGroups`.
    """
    n_tokens = _check_positive_int(n_tokens, "n_tokens")
    n_eval = n_tokens // 10 if n_eval_tokens is None else _check_positive_int(n_eval_tokens, "n_eval_tokens")
    if n_eval < 1:
        raise ValueError(f"n_tokens={n_tokens} leaves no evaluation tokens; pass n_eval_tokens")
    T = synthetic_transitions(
        m, overlap, seed, vocab_size=vocab_size, structure=structure, concentration=concentration, smoothing=smoothing
    )
    rng = np.random.default_rng([seed, 1])  # a stream independent of the one that drew T
    cdf = np.cumsum(T, axis=-1)
    x0 = rng.integers(0, vocab_size, size=m)
    u = rng.random((n_tokens + 2 * n_eval - 1, m))
    xs = np.asarray(_run_chains(jnp.asarray(cdf, jnp.float32), jnp.asarray(x0, jnp.int32), jnp.asarray(u, jnp.float32)))
    seqs = np.concatenate([x0[:, None], xs], axis=1).astype(np.uint16)
    cuts = (0, n_tokens, n_tokens + n_eval, n_tokens + 2 * n_eval)
    splits = {s: concat_splits([seq[cuts[i] : cuts[i + 1]] for seq in seqs]) for i, s in enumerate(SPLITS)}
    info = {
        "format": "synthetic",
        "structure": structure,
        "overlap": overlap,
        "seed": seed,
        "transitions": T,
        "cross_entropy": markov_cross_entropy(T),
    }
    return TokenGroups(tuple(f"syn{g}" for g in range(m)), vocab_size, **splits, info=info)
