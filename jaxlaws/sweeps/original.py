"""Reader and writer for the original code's output directories (run names from ``evaluator``'s
``Evaluator._set_results_path``, loss pickles as its ``evaluate`` saves them).

Layout read by :func:`read_original`: ``root/[<MMDDYYYY>/]<run name>/`` with

* ``val_seed_{s}_checkpoint-{t}.pkl`` / ``test_seed_{s}_checkpoint-{t}.pkl``: pickled pandas DataFrames with
  columns ``task_idx`` (group name) and ``task_loss`` (mean CE), one row per group;
* ``val_seed_{s}_proportions_checkpoint-{t}.pkl``: a method's current mixture ``{group index: weight}``;
* ``seed_{s}_aioli_matrices.npy`` ``[rounds, m, m]`` -> matrix ``"aioli_A"``,
  ``seed_{s}_avg_{n}_doge_matrices.npy`` -> ``"doge_M"``, ``seed_{s}_avg_{n}_drm_matrices.npy`` ->
  ``"doremi_excess"`` (each recorded at the run's break step, ``index`` = position in the stack);
  ``seed_{s}_matrix_{name}.npy`` is this package's extension for any other matrix (e.g. ``skillit_graph``).
* The original keeps Skill-It's graph outside the run directories, in ``skillit_graphs/`` (passed to the
  trainer as ``--graph_path``); ``read_original(..., skillit_graphs=DIR)`` attaches
  ``DIR/{task}_{groups}_normalized_seed_{s}.npy`` (or a ``.json`` copy, as bundled in
  ``jaxlaws/data/aioli/skillit_graphs``) to every Skill-It method run and seed as matrix ``"skillit_graph"``.

Run names (``Evaluator._set_results_path``) are parsed by :func:`parse_run_name`:
``{task}_{model}_{from_scratch|checkpoint_n}_{max_steps}[_break_{B}][_resume_{parent}_{B}[_remaining_{R}]]``
``_{mixture|stratified}_{slice list}[_weights_{w}]_{method tag}...``. The run id in the resulting
:class:`~jaxlaws.sweeps.Sweep` is the run directory's name.

* ``weights_`` concatenates the proportions, each ``int`` if integral else ``str(float)`` (which drops
  trailing zeros): ``37`` = (3, 7), ``010`` = (0, 10), ``100`` = (10, 0), ``0.2909910.3057860.403223``.
  :func:`decode_weights` tokenises such strings for a known number of groups (see there). Integer weights
  are normalised by their sum; float weights are kept as written when they sum to 1 within 1e-5 (the
  notebooks fitted the raw Dirichlet values) and normalised otherwise.
* Kinds: a ``resume_`` run is a ``"child"`` (``steps_run`` = R, default 100; ``break_step`` = B), whose
  parent is the run with ``break_{B}`` and the same task / slices / max_steps and either the same weights
  (``resume_{weights}_{B}``) or the same method (``resume_{aioli|doge|doremi|skillit|bandit}_{B}``; ``bandit``
  is Aioli's legacy name). A ``break_`` run with a method tag is a ``"method"`` run, without one a ``"parent"``;
  anything else with a method tag is ``"method"``, the rest ``"static"``.
* Method tags: ``greedy_``/``skillit`` -> skillit, ``doge_trainer``/``doge`` -> doge, ``doremi_trainer`` -> doremi,
  ``aioli``/``bandit`` -> aioli, ``static`` -> none.
* Steps are read **as named** in the file. The original's static, Skill-It, DoGE and DoReMi trainers evaluate
  before incrementing the step counter, so their ``checkpoint-t`` (t < final) is really after t+1 steps
  (``trainer/static_trainer.py`` and the baselines' trainers; ``docs/DEVIATIONS.md``); Aioli's are exact. We
  do not shift steps: the final checkpoints, the break step ``B`` and the child's ``B+R`` -- the only ones the
  analyses use -- are exact.

Pickles can execute code: read only directories you trust.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
import re
import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from jaxlaws.sweeps.io import make_temp_dir, replace_dir
from jaxlaws.sweeps.schema import Sweep, SweepError, proportion_columns

__all__ = [
    "SLICE_CHARS",
    "DEFAULT_REMAINING",
    "METHOD_MATRIX_FILES",
    "RunName",
    "parse_run_name",
    "decode_weights",
    "weights_to_mixture",
    "encode_weights",
    "format_run_name",
    "LoadReport",
    "read_original",
    "skillit_graph_path",
    "write_original",
]

SLICE_CHARS = 50
DEFAULT_REMAINING = 100
METHOD_MATRIX_FILES = {"aioli_A": "aioli", "doge_M": "doge", "doremi_excess": "drm"}
_MATRIX_NAME = {"aioli": "aioli_A", "doge": "doge_M", "drm": "doremi_excess"}
_RESUME_METHODS = {"aioli": "aioli", "bandit": "aioli", "doge": "doge", "doremi": "doremi", "skillit": "skillit"}
_TAG_METHODS = (
    ("greedy", "skillit"),
    ("skillit", "skillit"),
    ("doge", "doge"),
    ("doremi", "doremi"),
    ("aioli", "aioli"),
    ("bandit", "aioli"),
    ("static", ""),
)
_WRITE_TAGS = {
    "": "static",
    "aioli": "aioli_eta_0.2_update_250_rounds_4_steps_250",
    "doge": "doge_trainer_mu_0.01",
    "doremi": "doremi_trainer_mu_0.01",
    "skillit": "greedy_nothing_eta_0.5_lookback_3",
}

_NAME = re.compile(
    r"^(?P<task>[^_]+)_(?P<model>[^_]+)(?:_(?P<init>from_scratch|checkpoint_[^_]+))?_(?P<max_steps>\d+)"
    r"(?:_break_(?P<brk>\d+))?"
    r"(?:_resume_(?P<rtag>[^_]+)_(?P<rstep>\d+)(?:_remaining_(?P<rem>\d+))?)?"
    r"_(?P<rule>mixture|stratified)_(?P<rest>.+)$"
)
_WEIGHTS = re.compile(r"^(?P<slices>.*?)_weights_(?P<w>[^_]+)(?:_(?P<tail>.*))?$")
_TAIL = re.compile(r"(?:^|_)(?P<tag>(?:greedy|skillit|doge|doremi|aioli|bandit|static)(?:_.*)?)$")
_LOSS_FILE = re.compile(r"^(val|test)_seed_(\d+)_checkpoint-(\d+)\.pkl$")
_PROP_FILE = re.compile(r"^val_seed_(\d+)_proportions_checkpoint-(\d+)\.pkl$")
_MAT_FILE = re.compile(r"^seed_(\d+)_(?:(aioli)|avg_(\d+)_(doge|drm))_matrices\.npy$")
_EXT_MAT_FILE = re.compile(r"^seed_(\d+)_matrix_(\w+)\.npy$")
_FLOATS = re.compile(r"0\.\d*?[1-9](?=0\.|$)")
_TOKEN = re.compile(r"0\.\d*[1-9](?:e-\d+)?|[1-9](?:\.\d*[1-9])?e-\d+|0|[1-9]\d*")


@dataclasses.dataclass(frozen=True)
class RunName:
    """The parts of an original run-directory name (``Evaluator._set_results_path`` in HazyResearch/aioli).

    Attributes:
      name: the whole name.
      task, model, init: the task, the model and its initialisation as written.
      max_steps: the run's step budget.
      break_step: B of a parent or child, else ``None``.
      resume_tag: the parent's weights string, or a method name.
      resume_step: the step a child resumed from, else ``None``.
      remaining: R for a child (100 when not written).
      sample_rule: the sampling rule as written.
      slices: the slice list as written (truncated to 50 characters).
      weights: the weights string as written.
      method: the method name, ``""`` for static runs.
      tail: the method tag and everything after it.
    """

    name: str
    task: str
    model: str
    init: str
    max_steps: int
    break_step: int | None
    resume_tag: str | None  # the parent's weights string, or a method name
    resume_step: int | None
    remaining: int | None  # R for a child (100 when not written)
    sample_rule: str
    slices: str  # the slice list as written (truncated to 50 characters)
    weights: str | None  # the weights string as written
    method: str  # "" for static runs
    tail: str  # method tag and everything after it

    @property
    def resume_method(self) -> str | None:
        return _RESUME_METHODS.get(self.resume_tag) if self.resume_tag is not None else None

    @property
    def kind(self) -> str:
        if self.resume_tag is not None:
            return "child"
        if self.method:
            return "method"
        return "parent" if self.break_step is not None else "static"


def parse_run_name(name: str) -> RunName:
    """Parse an original run-directory name; raises :class:`SweepError` naming the run when it cannot.

    Args:
      name: a run-directory name.

    Returns:
      Its :class:`RunName`.
    """
    mt = _NAME.match(name)
    if mt is None:
        raise SweepError(
            f"run {name!r}: not an original run name "
            "({task}_{model}_[from_scratch_]{max_steps}_..._{mixture|stratified}_{slices}_...)"
        )
    rest = mt["rest"]
    mw = _WEIGHTS.match(rest)
    if mw is not None:
        slices, weights, tail = mw["slices"], mw["w"], mw["tail"] or ""
    else:
        mtail = _TAIL.search(rest)
        if mtail is None:
            raise SweepError(f"run {name!r}: no method tag (static, greedy_, doge_trainer, ...) after the slices")
        slices, weights, tail = rest[: mtail.start()], None, mtail["tag"]
    mtag = _TAIL.search("_" + tail) if tail else None
    if mtag is None:
        raise SweepError(f"run {name!r}: no method tag (static, greedy_, doge_trainer, ...) in {tail!r}")
    tag = mtag["tag"]
    method = next(m for prefix, m in _TAG_METHODS if tag.startswith(prefix))
    opt = lambda k: int(mt[k]) if mt[k] is not None else None  # noqa: E731
    rtag = mt["rtag"]
    return RunName(
        name=name,
        task=mt["task"],
        model=mt["model"],
        init=mt["init"] or "",
        max_steps=int(mt["max_steps"]),
        break_step=opt("brk"),
        resume_tag=rtag,
        resume_step=opt("rstep"),
        remaining=(opt("rem") or DEFAULT_REMAINING) if rtag is not None else None,
        sample_rule=mt["rule"],
        slices=slices,
        weights=weights,
        method=method,
        tail=tail,
    )


def _tokenisations(s: str, m: int, limit: int = 64) -> list[tuple[str, ...]]:
    """All ways to cut ``s`` into ``m`` number tokens (ints without leading zeros, floats without trailing
    zeros -- how ``str`` writes them), at most ``limit``."""
    memo: dict[tuple[int, int], list[tuple[str, ...]]] = {}

    def go(pos: int, k: int) -> list[tuple[str, ...]]:
        if (pos, k) in memo:
            return memo[pos, k]
        if k == 0:
            return [()] if pos == len(s) else []
        out: list[tuple[str, ...]] = []
        for end in range(len(s), pos, -1):
            tok = s[pos:end]
            if _TOKEN.fullmatch(tok) is None:
                continue
            for t in go(end, k - 1):
                out.append((tok, *t))
                if len(out) >= limit:
                    break
        memo[pos, k] = out
        return out

    return go(0, m)


def decode_weights(s: str, m: int) -> np.ndarray:
    """Decode a ``weights_`` string into ``m`` raw (unnormalised) values.

    Each value was written as ``int`` if integral, else ``str(float)``; there is no separator. The string is
    cut into ``m`` tokens, ints without leading zeros and floats ``0.ddd`` without trailing zeros; among the
    cuts, one summing to 10 (the m=2 ``37`` convention) or 1 is preferred. ``37`` -> (3, 7); ``010`` ->
    (0, 10); ``100`` -> (10, 0) for m=2 but (1, 0, 0) for m=3; ``0.2909910.3057860.403223`` -> three floats.
    Raises ``ValueError`` if no cut or more than one equally good cut exists.

    Args:
      s: the ``weights_`` string.
      m: the number of groups.

    Returns:
      ``(m,)`` raw values.
    """
    floats = _FLOATS.findall(s)
    if len(floats) == m and "".join(floats) == s:
        # fast path: only floats; each ends in a non-zero digit right before the next "0.", so the cut is unique
        return np.array([float(t) for t in floats])
    cands = _tokenisations(s, m)
    if not cands:
        raise ValueError(f"weights {s!r} cannot be read as {m} proportions")
    vals = [np.array([float(t) for t in c]) for c in cands]
    if len(vals) > 1:
        good = [v for v in vals if abs(v.sum() - 10) < 1e-9 or abs(v.sum() - 1) < 1e-4]
        vals = good or vals
    if len(vals) > 1:
        raise ValueError(
            f"weights {s!r} are ambiguous for {m} groups: " + " or ".join(str(tuple(v.tolist())) for v in vals[:3])
        )
    return vals[0]


@functools.lru_cache(maxsize=65536)
def _cached_mixture(s: str, m: int) -> np.ndarray:
    out = weights_to_mixture(s, m)
    out.flags.writeable = False
    return out


def weights_to_mixture(s: str, m: int) -> np.ndarray:
    """The mixture a ``weights_`` string encodes (see the module docstring for the normalisation rule)."""
    v = decode_weights(s, m)
    total = v.sum()
    if not total > 0 or (v < 0).any():
        raise ValueError(f"weights {s!r} do not define a mixture")
    if all(float(x).is_integer() for x in v) or abs(total - 1) > 1e-5:
        return v / total
    return v


def encode_weights(p: Sequence[float]) -> str:
    """The ``weights_`` string for mixture ``p``: tenths as ints when exact (``(0.3, 0.7)`` -> ``37``),
    else each value as ``int`` if integral or ``repr(float)``.

    Args:
      p: the mixture.

    Returns:
      The string.
    """
    p = np.asarray(p, dtype=np.float64)
    tenths = p * 10
    if np.all(np.abs(tenths - np.round(tenths)) < 1e-9) and abs(p.sum() - 1) < 1e-12:
        return "".join(str(int(round(t))) for t in tenths)
    return "".join(str(int(x)) if float(x).is_integer() else repr(float(x)) for x in p)


def format_run_name(
    groups: Sequence[str],
    *,
    kind: str,
    mixture: Sequence[float] | None = None,
    method: str = "",
    max_steps: int = 5000,
    break_step: int | None = None,
    parent_mixture: Sequence[float] | None = None,
    steps_run: int | None = None,
    task: str = "slimpj",
    model: str = "pythia-160m",
) -> str:
    """Compose a run-directory name the way the original's ``Evaluator`` does (a minimal method tag).

    Args:
      groups: the run's groups.
      kind: ``"static"``, ``"parent"``, ``"child"`` or ``"method"``.
      mixture: the run's mixture (or a child's).
      method: the method name of a method run (or its child).
      max_steps: the run's step budget.
      break_step: B of a parent or child.
      parent_mixture: a child's parent's mixture.
      steps_run: R of a child.
      task, model: the name's task and model parts.

    Returns:
      The directory name.
    """
    parts = [task, model, "from_scratch", str(max_steps)]
    if kind in ("parent", "method") and break_step is not None and break_step >= 0:
        parts += ["break", str(break_step)]
    if kind == "child":
        tag = method if method else encode_weights(parent_mixture)
        parts += ["resume", tag, str(break_step)]
        if steps_run is not None and steps_run != DEFAULT_REMAINING:
            parts += ["remaining", str(steps_run)]
    parts += ["mixture" if mixture is not None else "stratified", "_".join(groups)[:SLICE_CHARS].rstrip("_")]
    if mixture is not None:
        parts += ["weights", encode_weights(mixture)]
    parts.append(_WRITE_TAGS[method if kind == "method" else ""])
    return "_".join(parts)


@dataclasses.dataclass
class LoadReport:
    """What :func:`read_original` did.

    Attributes:
      skipped: ``(what, why)`` of data left out -- a loss, proportions or matrix file (or a whole run) that could
        not be used. Non-empty means the sweep lacks data that is on disk.
      notes: ``(what, why)`` of data used with a fallback (e.g. a method step without its proportions file).
      runs: one row per run (parsed name, kind, parent, mixtures).
      n_files: the loss files used.
      ignored: ``(path, why)`` of files that are not data (traces, logs, ``*_avg_dw.pkl``, sub-folders of a run).
    """

    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    notes: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    runs: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    n_files: int = 0
    ignored: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"read {len(self.runs)} run(s), {self.n_files} file(s); skipped {len(self.skipped)}, "
            f"ignored {len(self.ignored)} non-data file(s)"
        ]
        lines += [f"  skipped {p}: {r}" for p, r in self.skipped]
        lines += [f"  note {p}: {r}" for p, r in self.notes]
        return "\n".join(lines)


@dataclasses.dataclass
class _RunData:
    path: str
    name: RunName | None = None
    losses: list = dataclasses.field(default_factory=list)  # (split, seed, step, names, values, file)
    props: dict = dataclasses.field(default_factory=dict)  # (seed, step) -> (dict, file)
    mats: list = dataclasses.field(default_factory=list)  # (seed, name, array, file)
    ignored: list = dataclasses.field(default_factory=list)  # (file, reason): not a data file
    errors: list = dataclasses.field(default_factory=list)  # (file, reason): bad content


def _load_pickle(path: str):
    with open(path, "rb") as f:
        return pickle.load(f)


def _read_run_dir(path: str) -> _RunData:
    """Read every recognised file of one run directory (no cross-run logic; runs in a thread)."""
    rd = _RunData(path=path)
    for entry in os.scandir(path):
        fname, fpath = entry.name, entry.path
        if not entry.is_file():
            rd.ignored.append((fpath, "not a file"))
            continue
        try:
            if (mt := _LOSS_FILE.match(fname)) is not None:
                df = _load_pickle(fpath)
                if not isinstance(df, pd.DataFrame) or not {"task_idx", "task_loss"} <= set(df.columns):
                    raise ValueError("not a DataFrame with columns task_idx, task_loss")
                rd.losses.append(
                    (
                        mt[1],
                        int(mt[2]),
                        int(mt[3]),
                        df["task_idx"].astype(str).to_numpy(),
                        pd.to_numeric(df["task_loss"]).to_numpy(np.float64),
                        fpath,
                    )
                )
            elif (mt := _PROP_FILE.match(fname)) is not None:
                d = _load_pickle(fpath)
                if not isinstance(d, dict):
                    raise ValueError("proportions file is not a dict {group index: weight}")
                rd.props[int(mt[1]), int(mt[2])] = (d, fpath)
            elif (mt := _MAT_FILE.match(fname)) is not None:
                rd.mats.append((int(mt[1]), _MATRIX_NAME[mt[2] or mt[4]], np.load(fpath), fpath))
            elif (mt := _EXT_MAT_FILE.match(fname)) is not None:
                rd.mats.append((int(mt[1]), mt[2], np.load(fpath), fpath))
            else:
                rd.ignored.append((fpath, "not a loss, proportions or matrix file"))
        except Exception as e:  # noqa: BLE001 -- reported with the file name, raised in strict mode
            rd.errors.append((fpath, f"unreadable: {type(e).__name__}: {e}"))
    return rd


def _find_run_dirs(root: Path, max_depth: int = 3) -> tuple[list[str], list[tuple[str, str]]]:
    """Directories under ``root`` holding original loss files (``root`` itself, dated folders, ...)."""
    found, other = [], []
    stack = [(str(root), 0)]
    while stack:
        d, depth = stack.pop()
        subdirs, has_files = [], False
        for e in os.scandir(d):
            if e.is_dir():
                subdirs.append(e.path)
            elif _LOSS_FILE.match(e.name) or _MAT_FILE.match(e.name):
                has_files = True
        if has_files:
            found.append(d)
        elif depth >= max_depth and subdirs:
            other.append(
                (
                    d,
                    f"sub-folders not searched (original run folders are looked for at most "
                    f"{max_depth} levels below the root; point at a deeper folder to read them)",
                )
            )
        if not has_files and depth < max_depth:
            stack += [(s, depth + 1) for s in subdirs]
    return sorted(found), other


class _Problems:
    def __init__(self, strict: bool, report: LoadReport):
        self.strict, self.report = strict, report

    def __call__(self, where: str, reason: str) -> None:
        if self.strict:
            raise SweepError(f"{where}: {reason}")
        self.report.skipped.append((where, reason))


def _decide_groups(names: Iterable[RunName], groups: Sequence[str] | None) -> tuple[str, ...]:
    if groups is not None:
        return tuple(groups)
    slices = sorted({n.slices for n in names})
    if len(slices) != 1:
        raise SweepError(f"runs have different slice lists {slices}; pass groups=... to choose")
    if len(slices[0]) >= SLICE_CHARS:
        raise SweepError(f"slice list {slices[0]!r} may be truncated to {SLICE_CHARS} characters; pass groups=...")
    return tuple(slices[0].split("_"))


def _check_losses(names: np.ndarray, values: np.ndarray, gindex: dict, m: int) -> str | None:
    if len(set(names.tolist())) != len(names):
        return "duplicate group rows"
    unknown = sorted(set(names.tolist()) - set(gindex))
    if unknown:
        return f"unknown group(s) {unknown}; expected {list(gindex)}"
    if len(names) != m:
        return f"missing group(s) {sorted(set(gindex) - set(names.tolist()))}"
    if not np.isfinite(values).all():
        return "NaN or infinite loss"
    return None


def _mixture_from_props(d: dict, m: int) -> np.ndarray:
    p = np.zeros(m)
    for k, v in d.items():
        i = int(k)
        if not 0 <= i < m:
            raise ValueError(f"group index {k} out of range for {m} groups")
        p[i] = float(np.asarray(v, dtype=np.float64))
    if not np.isfinite(p).all() or abs(p.sum() - 1) > 1e-4:
        raise ValueError(f"proportions sum to {p.sum():.6g}, not 1")
    return p


def read_original(
    root: str | os.PathLike,
    groups: Sequence[str] | None = None,
    strict: bool = False,
    workers: int | None = None,
    skillit_graphs: str | os.PathLike | None = None,
) -> tuple[Sweep, LoadReport]:
    """Read the original's output tree under ``root`` into one validated :class:`Sweep`.

    ``groups`` defaults to the runs' (common, untruncated) slice list. With ``strict=False`` every run or file
    that cannot be used is left out and listed in ``report.skipped`` with the reason; with ``strict=True`` the
    first such problem raises :class:`SweepError` naming the run or file. Files that are not loss, proportions
    or matrix files (traces, logs, ...) are listed in ``report.ignored``. ``report.runs`` has one row per run
    with its parsed name, kind, parent and the parent's mixture (``parent_p_<group>``). Files are read by a
    thread pool of ``workers`` threads (default: min(8, CPUs + 2)).

    ``skillit_graphs``: the original's ``skillit_graphs/`` folder. Each Skill-It method run gets, for each of
    its seeds, ``{task}_{groups joined by _}_normalized_seed_{s}.npy`` (or ``.json``) from there as its
    ``"skillit_graph"`` matrix at the run's break step (what the Skill-It analysis reads); a seed without a
    graph file is a skipped problem naming the expected path. A run that already records its own
    ``seed_{s}_matrix_skillit_graph.npy`` keeps it (noted).

    Args:
      root: the original's output folder.
      groups: the group names; default the runs' slice list.
      strict: raise on the first unusable run or file instead of skipping it.
      workers: reader threads (default min(8, CPUs + 2)).
      skillit_graphs: the original's ``skillit_graphs/`` folder, for Skill-It runs (above).

    Returns:
      ``(sweep, report)``: the validated :class:`Sweep` and a :class:`LoadReport`.
    """
    root = Path(root)
    if not root.is_dir():
        raise SweepError(f"{root}: not a directory")
    if skillit_graphs is not None and not Path(skillit_graphs).is_dir():
        raise SweepError(f"skillit_graphs {str(skillit_graphs)!r}: not a directory")
    report = LoadReport()
    problem = _Problems(strict, report)
    dirs, too_deep = _find_run_dirs(root)
    report.notes += too_deep
    if not dirs:
        raise SweepError(f"{root}: no run directories with val_/test_ loss files found")
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(workers) as pool:
        data = list(pool.map(_read_run_dir, dirs))

    parsed = []
    for rd in data:
        report.ignored += rd.ignored
        try:
            rd.name = parse_run_name(os.path.basename(rd.path))
        except SweepError as e:
            problem(rd.path, str(e))
            continue
        parsed.append(rd)
    if not parsed:
        raise SweepError(f"{root}: no run directory has a parseable name ({len(report.skipped)} skipped)")
    groups = _decide_groups((rd.name for rd in parsed), groups)
    m, gindex = len(groups), {g: i for i, g in enumerate(groups)}
    slice_str = "_".join(groups)[:SLICE_CHARS].rstrip("_")

    runs: dict[str, tuple[_RunData, np.ndarray | None]] = {}
    for rd in parsed:
        n = rd.name
        if n.slices.rstrip("_") != slice_str:
            problem(rd.path, f"slice list {n.slices!r} does not match groups {list(groups)}")
            continue
        if n.name in runs:
            problem(rd.path, f"run name also at {runs[n.name][0].path}")
            continue
        mix = None
        if n.weights is not None:
            try:
                mix = _cached_mixture(n.weights, m)
            except ValueError as e:
                problem(rd.path, str(e))
                continue
        elif n.sample_rule == "stratified":
            mix = np.full(m, 1 / m)
        elif not n.method:
            problem(rd.path, "no weights_ in the name of a non-method mixture run")
            continue
        runs[n.name] = (rd, mix)

    parents = _match_parents(runs, m, problem)
    pcols = proportion_columns(groups)
    cols: dict[str, list] = {
        c: []
        for c in ("run", "seed", "step", "split", "gi", "loss", "kind", "parent", "break_step", "steps_run", "method")
    }
    mix_rows: list[np.ndarray] = []
    mat_rows: list[pd.DataFrame] = []
    run_rows = []
    for name, (rd, mix) in runs.items():
        n = rd.name
        if n.kind == "child" and name not in parents:
            continue
        parent = parents.get(name, "")
        kind = n.kind
        brk = n.resume_step if kind == "child" else (n.break_step if n.break_step is not None else -1)
        method = (n.resume_method or n.method) if kind == "child" else n.method
        steps_run = n.remaining if kind == "child" else -1
        for f, reason in rd.errors:
            problem(f, reason)
        n_ok, run_props = 0, _props_by_seed(rd, m, problem)
        used_fallback, seeds_ok = False, set()
        for split, seed, step, gnames, values, f in rd.losses:
            bad = _check_losses(gnames, values, gindex, m)
            if bad:
                problem(f, bad)
                continue
            seeds_ok.add(seed)
            p = mix
            if kind == "method":
                p, fell_back = _method_mixture(run_props.get(seed, []), step, mix, m)
                used_fallback |= fell_back
            k = len(gnames)
            cols["run"].append(np.repeat(name, k))
            cols["seed"].append(np.full(k, seed))
            cols["step"].append(np.full(k, step))
            cols["split"].append(np.repeat(split, k))
            cols["gi"].append(np.fromiter((gindex[g] for g in gnames), np.int64, k))
            cols["loss"].append(values)
            for c, v in (
                ("kind", kind),
                ("parent", parent),
                ("break_step", brk),
                ("steps_run", steps_run),
                ("method", method),
            ):
                cols[c].append(np.repeat(np.asarray(v), k))
            mix_rows.append(np.broadcast_to(p, (k, m)))
            n_ok += 1
        if used_fallback:
            report.notes.append(
                (
                    rd.path,
                    "some steps have no proportions file: used the latest earlier one, "
                    "else the name's weights, else uniform",
                )
            )
        report.n_files += n_ok
        if skillit_graphs is not None and kind == "method" and method == "skillit":
            _attach_skillit_graphs(rd, Path(skillit_graphs), groups, sorted(seeds_ok), problem, report)
        mat_rows += _matrices(rd, name, brk, m, problem)
        if n_ok == 0:
            problem(rd.path, "no usable loss files")
        run_rows.append(_run_row(n, name, kind, parent, brk, steps_run, method, mix, runs, groups))

    if skillit_graphs is not None and not any(
        rd.name.kind == "method" and rd.name.method == "skillit" for rd, _ in runs.values()
    ):
        report.notes.append((str(skillit_graphs), "no Skill-It method runs: the graphs were not used"))
    if not cols["run"]:
        raise SweepError(
            f"{root}: no usable loss rows ({len(report.skipped)} problem(s)): "
            + "; ".join(f"{p}: {r}" for p, r in report.skipped[:3])
        )
    cat = {c: np.concatenate(v) for c, v in cols.items()}
    losses = pd.DataFrame(
        {
            "run": cat["run"],
            "seed": cat["seed"],
            "step": cat["step"],
            "split": cat["split"],
            "group": np.asarray(groups, dtype=object)[cat["gi"]],
            "loss": cat["loss"],
            "kind": cat["kind"],
            "parent": cat["parent"],
            "break_step": cat["break_step"],
            "steps_run": cat["steps_run"],
            "method": cat["method"],
        }
    )
    mixes = np.concatenate(mix_rows)
    for j, c in enumerate(pcols):
        losses[c] = mixes[:, j]
    dup = losses.duplicated(["run", "seed", "step", "split", "group"])
    if dup.any():  # only possible through two files naming the same checkpoint
        r = losses.loc[dup].iloc[0]
        raise SweepError(f"run {r['run']!r} seed {r['seed']} step {r['step']}: duplicate loss rows")
    matrices = pd.concat(mat_rows, ignore_index=True) if mat_rows else None
    report.runs = pd.DataFrame(run_rows)
    kwargs = {} if matrices is None else {"matrices": matrices}
    return Sweep(losses=losses, groups=groups, **kwargs), report


def _match_parents(runs: dict, m: int, problem) -> dict[str, str]:
    """child run name -> parent run name (same task, slices, max_steps and break step; same weights/method)."""
    by_key: dict[tuple, list[tuple[str, np.ndarray | None, str]]] = {}
    for name, (rd, mix) in runs.items():
        n = rd.name
        if n.break_step is not None and n.resume_tag is None:
            by_key.setdefault((n.task, n.slices, n.max_steps, n.break_step), []).append((name, mix, n.method))
    out = {}
    for name, (rd, _) in runs.items():
        n = rd.name
        if n.resume_tag is None:
            continue
        cands = by_key.get((n.task, n.slices, n.max_steps, n.resume_step), [])
        if n.resume_method is not None:
            hits = [c for c, _, meth in cands if meth == n.resume_method]
        else:
            try:
                pm = _cached_mixture(n.resume_tag, m)
            except ValueError as e:
                problem(rd.path, f"parent weights: {e}")
                continue
            hits = [c for c, mix, meth in cands if not meth and mix is not None and np.abs(mix - pm).max() < 1e-5]
        if len(hits) == 1:
            out[name] = hits[0]
        else:
            problem(
                rd.path,
                f"{'no' if not hits else 'ambiguous'} parent run with break_{n.resume_step} "
                f"for resume_{n.resume_tag}" + (f": {hits}" if hits else ""),
            )
    return out


def _props_by_seed(rd: _RunData, m: int, problem) -> dict[int, list[tuple[int, np.ndarray]]]:
    out: dict[int, list] = {}
    for (seed, step), (d, f) in sorted(rd.props.items()):
        try:
            out.setdefault(seed, []).append((step, _mixture_from_props(d, m)))
        except (ValueError, TypeError) as e:
            problem(f, str(e))
    return out


def _method_mixture(props: list, step: int, name_mix, m: int) -> tuple[np.ndarray, bool]:
    """A method's mixture at ``step``: its proportions file there, else the latest earlier one, else the
    name's weights, else uniform. The flag says whether a fallback was used."""
    earlier = [(s, p) for s, p in props if s <= step]
    if earlier:
        return earlier[-1][1], earlier[-1][0] != step
    return (name_mix if name_mix is not None else np.full(m, 1 / m)), True


def skillit_graph_path(graphs: str | os.PathLike, task: str, groups: Sequence[str], seed: int) -> Path:
    """The original's graph file for ``task``, ``groups`` and ``seed`` in ``graphs``: the ``.npy``
    (``{task}_{g1}_{g2}..._normalized_seed_{seed}.npy``) if present, else its ``.json`` copy, else the
    ``.npy`` path (which does not exist)."""
    stem = Path(graphs) / f"{task}_{'_'.join(groups)}_normalized_seed_{seed}"
    npy, js = stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")
    return js if not npy.is_file() and js.is_file() else npy


def _load_graph(path: Path) -> np.ndarray:
    if path.suffix == ".json":
        return np.asarray(json.loads(path.read_text()), dtype=np.float64)
    return np.load(path, allow_pickle=False)


def _attach_skillit_graphs(
    rd: _RunData, graphs: Path, groups: Sequence[str], seeds: list[int], problem, report: LoadReport
) -> None:
    """Add the Skill-It graph of each seed of the method run ``rd`` to ``rd.mats`` (see :func:`read_original`)."""
    own = {seed for seed, mname, _, _ in rd.mats if mname == "skillit_graph"}
    for seed in seeds:
        if seed in own:
            report.notes.append(
                (rd.path, f"seed {seed}: the run records its own skillit_graph; not replaced by the one in {graphs}")
            )
            continue
        path = skillit_graph_path(graphs, rd.name.task, groups, seed)
        if not path.is_file():
            problem(rd.path, f"no Skill-It graph for seed {seed}: {path} not found")
            continue
        try:
            rd.mats.append((seed, "skillit_graph", _load_graph(path), str(path)))
        except Exception as e:  # noqa: BLE001 -- reported with the file name, raised in strict mode
            problem(str(path), f"unreadable Skill-It graph: {type(e).__name__}: {e}")


def _matrices(rd: _RunData, name: str, brk: int, m: int, problem) -> list[pd.DataFrame]:
    out = []
    for seed, mname, arr, f in rd.mats:
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != (m, m):
            problem(f, f"matrix stack has shape {arr.shape}, expected [n, {m}, {m}]")
            continue
        if not np.isfinite(arr).all():
            problem(f, "matrix has NaN or infinite entries")
            continue
        n_idx = arr.shape[0]
        idx, row, col = np.meshgrid(np.arange(n_idx), np.arange(m), np.arange(m), indexing="ij")
        out.append(
            pd.DataFrame(
                {
                    "run": name,
                    "seed": seed,
                    "step": max(brk, 0),
                    "name": mname,
                    "index": idx.ravel(),
                    "row": row.ravel(),
                    "col": col.ravel(),
                    "value": arr.ravel(),
                }
            )
        )
    return out


def _run_row(n: RunName, name, kind, parent, brk, steps_run, method, mix, runs, groups) -> dict:
    row = {
        "run": name,
        "kind": kind,
        "parent": parent,
        "break_step": brk,
        "steps_run": steps_run,
        "method": method,
        "task": n.task,
        "max_steps": n.max_steps,
        "sample_rule": n.sample_rule,
        "weights": n.weights,
        "tag": n.tail,
    }
    pmix = runs[parent][1] if parent else None
    for j, g in enumerate(groups):
        row[f"p_{g}"] = mix[j] if mix is not None else np.nan
        row[f"parent_p_{g}"] = pmix[j] if pmix is not None else np.nan
    return row


# ---------------------------------------------------------------------------------------------- writer


def _dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def write_original(
    sweep: Sweep,
    root: str | os.PathLike,
    *,
    date: str = "01012025",
    task: str = "slimpj",
    model: str = "pythia-160m",
    max_steps: int | None = None,
    overwrite: bool = False,
) -> dict[str, str]:
    """Write ``sweep`` in the original's layout under ``root/<date>/``.

    Directory names come from each run's kind, mixture (first row), break step, steps run, method and (for a
    child) its parent's mixture. Method runs also get a proportions file per val step. Matrices are written as
    ``.npy`` stacks at the run's break step (``aioli_A``, ``doge_M``, ``doremi_excess`` under their original
    names; others as ``seed_{s}_matrix_{name}``). Raises :class:`SweepError` when two runs would get the same
    directory name or a matrix is recorded at a step other than the run's break step. The date folder is
    assembled in a temporary directory and moved into place atomically.

    Args:
      sweep: the sweep to write.
      root: the output folder.
      date: the date folder's name.
      task, model: the name parts of every run.
      max_steps: default the sweep's largest step.
      overwrite: replace an existing date folder.

    Returns:
      ``{run id: directory name}``.
    """
    root = Path(root)
    target = root / date
    if target.exists() and not overwrite:
        raise FileExistsError(f"write_original: {target} exists (pass overwrite=True)")
    losses, groups, m = sweep.losses, sweep.groups, sweep.m
    max_steps = int(losses["step"].max()) if max_steps is None else max_steps
    pcols = proportion_columns(groups)
    info = sweep.runs().drop_duplicates("run").set_index("run")
    names: dict[str, str] = {}
    for run, r in info.iterrows():
        kind = r["kind"]
        mix = None if kind == "method" else r[pcols].to_numpy(np.float64)
        pmix = info.loc[r["parent"], pcols].to_numpy(np.float64) if kind == "child" and not r["method"] else None
        if kind == "child" and not r["method"] and r["parent"] not in info.index:
            raise SweepError(f"run {run!r}: parent {r['parent']!r} is not in the sweep")
        names[run] = format_run_name(
            groups,
            kind=kind,
            mixture=mix,
            method=r["method"],
            max_steps=max_steps,
            break_step=int(r["break_step"]),
            parent_mixture=pmix,
            steps_run=int(r["steps_run"]),
            task=task,
            model=model,
        )
    seen: dict[str, str] = {}
    for run, nm in names.items():
        if nm in seen:
            raise SweepError(f"runs {seen[nm]!r} and {run!r} map to the same original run name {nm!r}")
        seen[nm] = run
    root.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(root, f".{date}.tmp-")
    try:
        for (run, seed, step, split), g in losses.groupby(["run", "seed", "step", "split"], sort=False):
            d = tmp / names[run]
            d.mkdir(exist_ok=True)
            _dump(
                pd.DataFrame({"task_idx": g["group"].to_numpy(dtype=object), "task_loss": g["loss"].to_numpy()}),
                d / f"{split}_seed_{seed}_checkpoint-{step}.pkl",
            )
            if info.loc[run, "kind"] == "method" and split == "val":
                p = g[pcols].iloc[0].to_numpy(np.float64)
                _dump({i: float(p[i]) for i in range(m)}, d / f"val_seed_{seed}_proportions_checkpoint-{step}.pkl")
        for (run, seed, mname), g in sweep.matrices.groupby(["run", "seed", "name"], sort=False):
            if run not in names:
                raise SweepError(f"matrix {mname!r}: run {run!r} has no losses")
            brk = max(int(info.loc[run, "break_step"]), 0)
            if (g["step"] != brk).any():
                raise SweepError(
                    f"run {run!r}: matrix {mname!r} is recorded at step(s) "
                    f"{sorted(set(g['step']))}, the original format stores it at the break {brk}"
                )
            n_idx = int(g["index"].max()) + 1
            arr = np.zeros((n_idx, m, m))
            arr[g["index"].to_numpy(), g["row"].to_numpy(), g["col"].to_numpy()] = g["value"].to_numpy()
            tag = METHOD_MATRIX_FILES.get(mname)
            fname = (
                f"seed_{seed}_aioli_matrices.npy"
                if tag == "aioli"
                else f"seed_{seed}_avg_{n_idx}_{tag}_matrices.npy"
                if tag
                else f"seed_{seed}_matrix_{mname}.npy"
            )
            np.save(tmp / names[run] / fname, arr)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names
