"""What a report is made of: one section per sweep, each with its analysis and the data's provenance.

A source is a sweep directory (``meta.json``), a directory holding sweep directories (one section each, named
by the relative path), a :class:`~jaxlaws.sweeps.Sweep`, an :class:`~jaxlaws.analysis.Analysis` with its
sweep, or a mapping ``{name: any of those}``. Provenance comes from the caller and, for a directory, from the
``provenance`` entry of its ``meta.json`` and a ``provenance.json`` next to it or in a folder above (the
nearest wins per key).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxlaws.analysis.pipeline import Analysis, analyse
from jaxlaws.sweeps.io import read_sweep
from jaxlaws.sweeps.schema import Sweep

__all__ = ["Source", "Section", "is_synthetic", "directory_provenance", "sweep_dirs", "collect"]

Source = str | Path | Sweep | Analysis | tuple | Mapping[str, Any]
_MAX_DEPTH = 3


@dataclasses.dataclass
class Section:
    """One sweep of a report.

    A sweep found in a folder that cannot be analysed (e.g. a single check run: too few points for any law) has
    ``analysis=None`` and the reason in ``error``; the report lists it instead of failing.

    Attributes:
      name: the section's name.
      sweep: the :class:`~jaxlaws.sweeps.Sweep`.
      analysis: its :class:`~jaxlaws.analysis.Analysis`, or ``None``.
      provenance: what the data are (as recorded beside the sweep, or given).
      warnings: the warnings the analysis raised, one line each.
      path: where the sweep was read from (``None`` for one passed in).
      error: why the sweep could not be analysed, else ``None``.
    """

    name: str
    sweep: Sweep
    analysis: Analysis | None
    provenance: dict
    warnings: list[str]
    path: Path | None = None
    error: str | None = None


def is_synthetic(provenance: Mapping[str, Any]) -> bool:
    """Whether provenance says the data are synthetic: ``"synthetic": true``, or ``"synthetic"`` as the value
    of ``"data"``, ``"kind"`` or ``"source"``.

    Args:
      provenance: a provenance mapping.

    Returns:
      ``True`` when the data are synthetic.
    """
    if provenance.get("synthetic") is True:
        return True
    return any("synthetic" in str(provenance.get(k, "")).lower() for k in ("data", "kind", "source"))


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable provenance ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: provenance must be a JSON object, got {type(obj).__name__}")
    return obj


def directory_provenance(path: Path, stop: Path | None = None) -> dict:
    """Provenance recorded with the sweep directory ``path``: ``provenance.json`` files from up to
    ``_MAX_DEPTH`` folders above ``stop`` (the folder the report was asked for; default ``path``) down to
    ``path``, then ``meta.json``'s ``provenance`` entry; nearer ones override farther ones key by key. (A
    report of one part of a bundle, e.g. ``bundle/m2/compare``, still finds ``bundle/provenance.json``.)"""
    out: dict = {}
    path = path.resolve()
    stop = path if stop is None else stop.resolve()
    chain = [path]
    p = path
    while p != stop and p.parent != p:
        p = p.parent
        chain.append(p)
    for _ in range(_MAX_DEPTH):
        if p.parent == p:
            break
        p = p.parent
        chain.append(p)
    for d in reversed(chain):
        if (d / "provenance.json").is_file():
            out.update(_read_json(d / "provenance.json"))
    meta = path / "meta.json"
    if meta.is_file():
        try:
            entry = json.loads(meta.read_text()).get("provenance")
        except (OSError, ValueError, AttributeError):
            entry = None
        if isinstance(entry, dict):
            out.update(entry)
    return out


def sweep_dirs(root: Path) -> list[Path]:
    """``root`` if it is a sweep directory, else the sweep directories below it (depth <= 3), sorted."""
    if (root / "meta.json").is_file():
        return [root]
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        for sub in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (sub / "meta.json").is_file():
                found.append(sub)
            elif depth < _MAX_DEPTH:
                walk(sub, depth + 1)

    walk(root, 1)
    return found


def _analysed(
    sweep: Sweep, split: str, seed: int, bootstrap: int = 0, influence: bool = False
) -> tuple[Analysis, list[str]]:
    """The full analysis of ``sweep`` (with ``bootstrap`` resamples of the static fits, if > 0, and each
    static run's influence on the optimum, if ``influence``) and the warnings it raised (flagged fits), one
    line each."""
    extra = {"bootstrap": bootstrap} if bootstrap else {}
    if influence:
        extra["influence"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = analyse(sweep, split=split, seed=seed, **extra)
    return res, [f"{w.category.__name__}: {w.message}" for w in caught]


def collect(
    source: Source,
    *,
    sweep: Sweep | None = None,
    split: str = "val",
    seed: int = 0,
    bootstrap: int = 0,
    influence: bool = False,
) -> list[Section]:
    """The report's sections for ``source`` (module docstring).

    Args:
      source: as :func:`~jaxlaws.report.write_report`.
      sweep: the sweep of an :class:`~jaxlaws.analysis.Analysis` source.
      split, seed, bootstrap, influence: passed to :func:`jaxlaws.analysis.analyse` for sources not yet analysed.

    Returns:
      The :class:`Section` of each sweep, in order.
    """
    if isinstance(source, Mapping):
        if sweep is not None:
            raise ValueError("pass sweep= only with a single Analysis; in a mapping give (analysis, sweep) pairs")
        out = []
        for name, item in source.items():
            for sec in collect(item, split=split, seed=seed, bootstrap=bootstrap, influence=influence):
                sec.name = str(name) if sec.name in ("", ".") else f"{name}/{sec.name}"
                out.append(sec)
        if not out:
            raise ValueError("the report has no sweeps to show (empty mapping)")
        return out
    if isinstance(source, tuple):
        pair = {type(v): v for v in source}
        if len(source) != 2 or set(pair) != {Analysis, Sweep}:
            raise ValueError("a tuple source must be an (Analysis, Sweep) pair")
        return collect(
            pair[Analysis], sweep=pair[Sweep], split=split, seed=seed, bootstrap=bootstrap, influence=influence
        )
    if isinstance(source, Analysis):
        if sweep is None:
            raise ValueError("an Analysis source needs its sweep: write_report(analysis, out, sweep=sweep)")
        return [Section("", sweep, source, {}, [])]
    if isinstance(source, Sweep):
        res, warned = _analysed(source, split, seed, bootstrap, influence)
        return [Section("", source, res, {}, warned)]
    if isinstance(source, (str, Path)):
        root = Path(source)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such sweep directory")
        dirs = sweep_dirs(root)
        if not dirs:
            raise ValueError(f"{root}: no sweep directory (with meta.json) in it or below it")
        out = []
        for d in dirs:
            sw = read_sweep(d)
            name = "" if d == root else d.relative_to(root).as_posix()
            try:
                res, warned = _analysed(sw, split, seed, bootstrap, influence)
            except ValueError as e:
                if len(dirs) == 1:
                    raise
                out.append(Section(name, sw, None, directory_provenance(d, root), [], d, f"{e}"))
                continue
            out.append(Section(name, sw, res, directory_provenance(d, root), warned, d))
        if all(sec.analysis is None for sec in out):
            raise ValueError(
                f"{root}: no sweep below it could be analysed: " + "; ".join(f"{sec.name}: {sec.error}" for sec in out)
            )
        return out
    raise TypeError(
        f"cannot make a report of a {type(source).__name__}: pass a sweep directory, a Sweep, "
        "an Analysis with sweep=, or a mapping of those"
    )
