"""Export fitted parameters as JSON in the layout of the bundled ``jaxlaws/data/aioli/law_results``.

The layout (the original's law_results JSON) nests string keys down to a list of parameters in the law's order, e.g.
``params_static.json``: ``{group: {step: {seed: [c, k, b]}}}``; ``params_dynamic.json``:
``{group: {break_step: {parent_p1: [k, b]}}}``; a method's scale fit: ``{break_step: {seed: [b, ...]}}``.
Integer keys are written as ``"5000"``, proportions as the shortest decimal of the value rounded to 6
places (``"0.1"``, ``"0.084589"``), as in the original files.

Writing an export directory (:func:`export_atomically`): every file is written under a private staging
folder, then moved into place with :func:`os.replace` (a reader sees an old or a new file, never a part; a
failed export leaves the previous one as it was). A manifest, ``.jaxlaws-export.json``, lists the files the
last export wrote with their SHA-256, so the next export into the same directory removes the CSV/JSON files
that it no longer writes -- and nothing else: files it did not write, and files edited since, are kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxlaws.sweeps.io import atomic_write_bytes, file_digest, make_temp_dir

__all__ = [
    "MANIFEST",
    "key_str",
    "nested_params",
    "structure",
    "prune_empty",
    "write_json",
    "write_csv",
    "ExportResult",
    "read_manifest",
    "export_atomically",
]

MANIFEST = ".jaxlaws-export.json"
_STAGING = ".jaxlaws-export.tmp-"
_REMOVABLE = (".csv", ".json")


def key_str(v: Any) -> str:
    """The original files' key spelling: ints as ``"500"``, floats rounded to 6 places (``"0.084589"``).

    Args:
      v: an int or float key.

    Returns:
      The key as a string.
    """
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"a law_results key cannot be a boolean, got {v!r}")
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = round(float(v), 6)
        return str(int(f)) if f.is_integer() and abs(f) >= 1 else repr(f)
    return str(v)


def nested_params(df: pd.DataFrame, keys: Sequence[str], param_names: Sequence[str]) -> dict:
    """``{key_1: {key_2: ... [params]}}`` from a tidy table; raises on duplicate key tuples.

    Args:
      df: one row per fit.
      keys: the key columns, outermost first.
      param_names: the parameter columns.

    Returns:
      The nested dict, each leaf the list of parameters.
    """
    missing = [c for c in (*keys, *param_names) if c not in df.columns]
    if missing:
        raise ValueError(f"nested_params: the table lacks columns {missing}")
    if df.duplicated(list(keys)).any():
        dup = df.loc[df.duplicated(list(keys)), list(keys)].iloc[0].to_dict()
        raise ValueError(f"nested_params: several fits share the keys {dup}; select one (e.g. a seed) first")
    out: dict = {}
    for _, row in df.iterrows():
        node = out
        for k in keys[:-1]:
            node = node.setdefault(key_str(row[k]), {})
        node[key_str(row[keys[-1]])] = [float(row[n]) for n in param_names]
    return out


def structure(obj: Any, depth: int = 0) -> Any:
    """The shape of a law_results object: per level, whether keys are group names / ints / floats, and the
    leaf length. Used to compare an export with a bundled file without comparing values. Skeleton slots
    (``{}``, or dicts holding only such slots) are ignored, as the original's unfilled steps.

    Args:
      obj: a law_results object (nested dicts of lists).
      depth: the current depth (for the recursion).

    Returns:
      A nested description of key kinds and leaf lengths, comparable with ``==``.
    """
    obj = prune_empty(obj)
    if isinstance(obj, dict):
        leaves = list(obj.values())
        kinds = sorted({_key_kind(k) for k in obj})
        children = {repr(structure(v, depth + 1)) for v in leaves}
        return {"keys": kinds, "children": sorted(children)}
    if isinstance(obj, list):
        return f"list[{len(obj)}]"
    raise ValueError(f"unexpected {type(obj).__name__} in a law_results object")


def prune_empty(obj: Any) -> Any:
    """``obj`` without empty dicts (recursively): the fitted content of a law_results object.

    Args:
      obj: a nested dict.

    Returns:
      The same nesting without empty dicts.
    """
    if not isinstance(obj, dict):
        return obj
    out = {k: prune_empty(v) for k, v in obj.items()}
    return {k: v for k, v in out.items() if v != {}}


def _key_kind(k: str) -> str:
    try:
        int(k)
        return "int"
    except ValueError:
        pass
    try:
        float(k)
        return "float"
    except ValueError:
        return "name"


def write_json(obj: dict, path: str | os.PathLike) -> Path:
    """Write ``obj`` atomically (temporary file in the same folder, then ``os.replace``; umask modes).

    Args:
      obj: a JSON-serialisable dict.
      path: the file to write.

    Returns:
      The written path.
    """
    return atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as CSV (``%.17g`` floats, no index) atomically, as :func:`write_json`."""
    return atomic_write_bytes(path, df.to_csv(index=False, float_format="%.17g").encode())


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_atomically` did: files ``written``, stale files ``removed`` (of an earlier export),
    and stale files ``kept`` because they were changed after that export wrote them."""

    written: list[Path]
    removed: list[Path]
    kept: list[Path]


def read_manifest(out_dir: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of the files the last export into ``out_dir`` wrote (``{}`` if none or
    unreadable: then nothing is treated as stale)."""
    try:
        obj = json.loads((Path(out_dir) / MANIFEST).read_text())
        files = obj["files"]
        if isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            return dict(files)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {}


def _write_manifest(out_dir: Path, files: dict[str, str]) -> None:
    atomic_write_bytes(
        out_dir / MANIFEST, json.dumps({"jaxlaws_export": 1, "files": dict(sorted(files.items()))}, indent=1).encode()
    )


def _removable(out_dir: Path, rel: str) -> Path | None:
    """The file ``rel`` of a manifest if an export may delete it: a CSV/JSON path inside ``out_dir``."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts or Path(rel).suffix not in _REMOVABLE or rel == MANIFEST:
        return None
    path = out_dir / rel
    return path if path.is_file() and not path.is_symlink() else None


def export_atomically(out_dir: str | os.PathLike, produce: Callable[[Path], Any]) -> ExportResult:
    """Run ``produce(staging)``, which writes an export's files into the empty folder ``staging``; then move
    each file into ``out_dir`` with :func:`os.replace` and remove the stale files of the previous export.

    ``staging`` is a hidden folder inside ``out_dir`` (same file system), deleted afterwards whatever
    happens; if ``produce`` raises, ``out_dir`` is left as it was. Stale files are the CSV/JSON files listed
    in the previous manifest that this export did not write; one whose content changed since it was written
    is kept (and listed in ``kept``). Files never written by an export are never touched.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(out_dir, _STAGING)
    try:
        produce(staging)
        new = sorted(
            p
            for p in staging.rglob("*")
            if p.is_file()
            and p.name != MANIFEST
            and not any(part.startswith(_STAGING) for part in p.relative_to(staging).parts)
        )
        digests = {p.relative_to(staging).as_posix(): file_digest(p)[1] for p in new}
        old = read_manifest(out_dir)
        # track the union first: a crash below leaves every file an export wrote listed in the manifest
        _write_manifest(out_dir, {**old, **digests})
        written = []
        for p in new:
            rel = p.relative_to(staging)
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, out_dir / rel)
            written.append(out_dir / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    removed, kept = [], []
    for rel, sha in old.items():
        if rel in digests or (path := _removable(out_dir, rel)) is None:
            continue
        if file_digest(path)[1] == sha:
            path.unlink()
            removed.append(path)
        else:
            kept.append(path)
    _write_manifest(out_dir, digests)
    return ExportResult(written, removed, kept)
