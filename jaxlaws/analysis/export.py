"""Export fitted parameters as JSON in the layout of the bundled ``jaxlaws/data/aioli/law_results``.

The layout (spec 9) nests string keys down to a list of parameters in the law's order, e.g.
``params_static.json``: ``{group: {step: {seed: [c, k, b]}}}``; ``params_dynamic.json``:
``{group: {break_step: {parent_p1: [k, b]}}}``; a method's scale fit: ``{break_step: {seed: [b, ...]}}``.
Integer keys are written as ``"5000"``, proportions as the shortest decimal of the value rounded to 6
places (``"0.1"``, ``"0.084589"``), as in the original files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd


def key_str(v: Any) -> str:
    """The original files' key spelling: ints as ``"500"``, floats rounded to 6 places (``"0.084589"``)."""
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"a law_results key cannot be a boolean, got {v!r}")
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = round(float(v), 6)
        return str(int(f)) if f.is_integer() and abs(f) >= 1 else repr(f)
    return str(v)


def nested_params(df: pd.DataFrame, keys: Sequence[str], param_names: Sequence[str]) -> dict:
    """``{key_1: {key_2: ... [params]}}`` from a tidy table; raises on duplicate key tuples."""
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
    (``{}``, or dicts holding only such slots) are ignored, as the original's unfilled steps."""
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
    """``obj`` without empty dicts (recursively): the fitted content of a law_results object."""
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
    """Write ``obj`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
