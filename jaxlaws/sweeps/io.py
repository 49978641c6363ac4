"""Reading and writing sweeps as a directory: ``losses.<ext>``, ``matrices.<ext>`` and ``meta.json``.

``meta.json`` holds ``{"schema_version", "format", "groups"}``. Both formats round-trip exactly: Parquet
stores float64 natively, CSV writes floats with ``%.17g`` (enough digits to recover every double) and is read
back with explicit dtypes and no NA guessing, so a group or run called ``"NA"`` stays a string.

Writes are atomic: the directory is assembled under a temporary name next to ``path`` and moved into place
with :func:`os.replace`, so a reader never sees a half-written sweep.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Literal

import pandas as pd

from jaxlaws.sweeps.schema import (
    LOSS_BASE_COLUMNS, MATRIX_COLUMNS, Sweep, SweepError, proportion_columns,
)

SCHEMA_VERSION = 1
FORMATS = ("parquet", "csv")
_INT = ("seed", "step", "break_step", "steps_run", "index", "row", "col")
_STR = ("run", "split", "group", "kind", "parent", "method", "name")


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False, float_format="%.17g")


def _read_table(path: Path, fmt: str, columns: Iterable[str]) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    dtypes = {c: ("int64" if c in _INT else str if c in _STR else "float64") for c in columns}
    return pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={
        c: ["", "nan", "NaN"] for c in columns if dtypes[c] == "float64"})


def write_sweep(sweep: Sweep, path: str | os.PathLike, format: Literal["parquet", "csv"] = "parquet",
                overwrite: bool = False) -> Path:
    """Write ``sweep`` to the directory ``path`` atomically; returns the path.

    An existing ``path`` is replaced only with ``overwrite=True`` (the old directory is moved aside first and
    deleted after the new one is in place).
    """
    if format not in FORMATS:
        raise ValueError(f"write_sweep: format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"write_sweep: {path} exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        _write_table(sweep.losses, tmp / f"losses.{format}", format)
        _write_table(sweep.matrices, tmp / f"matrices.{format}", format)
        meta = {"schema_version": SCHEMA_VERSION, "format": format, "groups": list(sweep.groups)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing an existing one: each step is an
    ``os.replace``, so ``target`` is always either the old or the new complete directory."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_sweep(path: str | os.PathLike) -> Sweep:
    """Read a directory written by :func:`write_sweep` and validate it."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise SweepError(f"{path}: not a sweep directory (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
        fmt, groups, version = meta["format"], tuple(meta["groups"]), int(meta["schema_version"])
    except (ValueError, KeyError, TypeError) as e:
        raise SweepError(f"{meta_path}: malformed meta.json ({e})") from e
    if version > SCHEMA_VERSION:
        raise SweepError(f"{meta_path}: schema version {version} is newer than supported ({SCHEMA_VERSION})")
    if fmt not in FORMATS:
        raise SweepError(f"{meta_path}: unknown format {fmt!r}")
    loss_cols = [*LOSS_BASE_COLUMNS, *proportion_columns(groups)]
    tables = {}
    for name, cols in (("losses", loss_cols), ("matrices", MATRIX_COLUMNS)):
        f = path / f"{name}.{fmt}"
        if not f.is_file():
            raise SweepError(f"{path}: missing {f.name}")
        try:
            tables[name] = _read_table(f, fmt, cols)
        except (ValueError, KeyError) as e:
            raise SweepError(f"{f}: unreadable ({e})") from e
    try:
        return Sweep(losses=tables["losses"], groups=groups, matrices=tables["matrices"])
    except SweepError as e:
        raise SweepError(f"{path}: {e}") from e


def concat_sweeps(sweeps: Iterable[Sweep]) -> Sweep:
    """Stack sweeps over the same ordered groups; duplicate (run, seed, step, split, group) rows raise."""
    sweeps = list(sweeps)
    if not sweeps:
        raise ValueError("concat_sweeps: no sweeps given")
    groups = sweeps[0].groups
    for i, s in enumerate(sweeps):
        if s.groups != groups:
            raise SweepError(f"concat_sweeps: sweep {i} has groups {list(s.groups)}, expected {list(groups)}")
    return Sweep(losses=pd.concat([s.losses for s in sweeps], ignore_index=True), groups=groups,
                 matrices=pd.concat([s.matrices for s in sweeps], ignore_index=True))
