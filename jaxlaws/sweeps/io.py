"""Reading and writing sweeps as a directory: ``losses.<ext>``, ``matrices.<ext>`` and ``meta.json``.

``meta.json`` holds ``{"schema_version", "format", "groups", "tables"}``; ``tables`` records, per table, its
file name, row count, size in bytes and the SHA-256 of its bytes, and :func:`read_sweep` checks them: a table
cut short (at a line boundary or mid-line) or edited is reported as ``truncated or modified file <path>:
expected N rows, found M ...`` instead of whatever the damaged rows happen to break. Directories written
before ``tables`` existed read as before (nothing to check). Both formats round-trip exactly: Parquet stores
float64 natively, CSV writes floats with ``%.17g`` (enough digits to recover every double) and is read back
with explicit dtypes and no NA guessing, so a group or run called ``"NA"`` stays a string.

Writes are atomic: the directory is assembled under a temporary name next to ``path`` and moved into place
with :func:`os.replace`, so a reader never sees a half-written sweep. Files and directories get the modes a
plain ``open``/``mkdir`` would give (the user's umask), not :mod:`tempfile`'s private 0600/0700; the helpers
:func:`make_temp_dir` and :func:`atomic_write_bytes` do that for other writers too.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from jaxlaws.sweeps.schema import (
    LOSS_BASE_COLUMNS,
    MATRIX_COLUMNS,
    Sweep,
    SweepError,
    proportion_columns,
)

__all__ = [
    "SCHEMA_VERSION",
    "FORMATS",
    "make_temp_dir",
    "atomic_write_bytes",
    "file_digest",
    "write_sweep",
    "replace_dir",
    "read_sweep",
    "concat_sweeps",
]

SCHEMA_VERSION = 1
FORMATS = ("parquet", "csv")
_INT = ("seed", "step", "break_step", "steps_run", "index", "row", "col")
_STR = ("run", "split", "group", "kind", "parent", "method", "name")


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new, uniquely named directory ``parent/<prefix><random>``, created like :func:`tempfile.mkdtemp`
    (exclusively) but with mode ``0o777 & ~umask``, so that it can be moved into place as a result."""
    parent = Path(parent)
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"could not create a temporary directory {prefix}* in {parent}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder (mode ``0o666 & ~umask``,
    as a plain ``open`` gives), flushed to disk, then :func:`os.replace`. A reader sees the old or the new
    file, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"could not create a temporary file next to {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def file_digest(path: str | os.PathLike) -> tuple[int, str]:
    """``(size in bytes, SHA-256 hex digest)`` of the file at ``path``."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False, float_format="%.17g")


def _read_table(path: Path, fmt: str, columns: Iterable[str]) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    dtypes = {c: ("int64" if c in _INT else str if c in _STR else "float64") for c in columns}
    return pd.read_csv(
        path,
        dtype=dtypes,
        keep_default_na=False,
        na_values={c: ["", "nan", "NaN"] for c in columns if dtypes[c] == "float64"},
    )


def write_sweep(
    sweep: Sweep, path: str | os.PathLike, format: Literal["parquet", "csv"] = "parquet", overwrite: bool = False
) -> Path:
    """Write ``sweep`` to the directory ``path`` atomically (tables, ``meta.json`` with their sizes and SHA-256).

    An existing ``path`` is replaced only with ``overwrite=True`` (the old directory is moved aside first and
    deleted after the new one is in place).

    Args:
      sweep: the sweep to write.
      path: the directory.
      format: ``"parquet"`` or ``"csv"`` tables.
      overwrite: replace an existing ``path``.

    Returns:
      The written directory.
    """
    if format not in FORMATS:
        raise ValueError(f"write_sweep: format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"write_sweep: {path} exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(path.parent, f".{path.name}.tmp-")
    try:
        tables = {}
        for name, df in (("losses", sweep.losses), ("matrices", sweep.matrices)):
            f = tmp / f"{name}.{format}"
            _write_table(df, f, format)
            size, sha = file_digest(f)
            tables[name] = {"file": f.name, "rows": len(df), "bytes": size, "sha256": sha}
        meta = {"schema_version": SCHEMA_VERSION, "format": format, "groups": list(sweep.groups), "tables": tables}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); ``False``
    where the platform or file system cannot (then nothing was changed)."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, f"exchanging {a} and {b}: {os.strerror(err)}")


@functools.lru_cache(maxsize=1)
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing an existing one. Where the OS can, the
    two are swapped in one step (``renameat2(RENAME_EXCHANGE)``), so ``target`` always exists and is the old
    or the new complete directory; elsewhere each of two steps is an ``os.replace`` (``target`` is the old or
    the new directory, with a moment between the steps where it is missing)."""
    if target.is_dir() and not target.is_symlink() and _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # ``tmp`` now holds the old directory
        return
    old = None
    if target.exists():
        old = make_temp_dir(target.parent, f".{target.name}.old-")
        os.replace(target, old / target.name)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_sweep(path: str | os.PathLike, verify: bool = True) -> Sweep:
    """Read a directory written by :func:`write_sweep` and validate it.

    With ``verify=True`` (default) each table's size and SHA-256 are checked against ``meta.json`` first, so a
    truncated or edited table raises :class:`SweepError` ``truncated or modified file <path>: expected N rows,
    found M ...``; ``verify=False`` reads such a table anyway (its rows are still validated). Directories
    without the ``tables`` record (written by older versions) cannot be checked and are read as they are.

    Args:
      path: a directory written by :func:`write_sweep`.
      verify: check each table's size and SHA-256 first.

    Returns:
      The validated :class:`Sweep`.
    """
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise SweepError(f"{path}: not a sweep directory (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
        fmt, groups, version = meta["format"], tuple(meta["groups"]), int(meta["schema_version"])
        records = _table_records(meta)
    except (ValueError, KeyError, TypeError) as e:
        raise SweepError(f"{meta_path}: malformed meta.json ({e})") from e
    if version > SCHEMA_VERSION:
        raise SweepError(f"{meta_path}: schema version {version} is newer than supported ({SCHEMA_VERSION})")
    if fmt not in FORMATS:
        raise SweepError(f"{meta_path}: unknown format {fmt!r}")
    loss_cols = [*LOSS_BASE_COLUMNS, *proportion_columns(groups)]
    specs = (("losses", loss_cols), ("matrices", MATRIX_COLUMNS))
    for name, _ in specs:
        if not (path / f"{name}.{fmt}").is_file():
            raise SweepError(f"{path}: missing {name}.{fmt}")
    tables = {}
    for name, cols in specs:
        f = path / f"{name}.{fmt}"
        rec = records.get(name)
        if verify and rec is not None:
            _verify_table(f, fmt, cols, rec)
        try:
            tables[name] = _read_table(f, fmt, cols)
        except (ValueError, KeyError) as e:
            raise SweepError(f"{f}: unreadable ({e})") from e
        if verify and rec is not None and len(tables[name]) != rec["rows"]:
            raise SweepError(f"truncated or modified file {f}: expected {rec['rows']} rows, found {len(tables[name])}")
    try:
        return Sweep(losses=tables["losses"], groups=groups, matrices=tables["matrices"])
    except SweepError as e:
        raise SweepError(f"{path}: {e}") from e


def _table_records(meta: dict) -> dict[str, dict[str, Any]]:
    """The ``tables`` record of ``meta.json`` (``{}`` when absent); raises ``ValueError`` when malformed."""
    tables = meta.get("tables")
    if tables is None:
        return {}
    if not isinstance(tables, dict):
        raise ValueError("'tables' is not an object")
    out = {}
    for name, rec in tables.items():
        if not isinstance(rec, dict):
            raise ValueError(f"tables[{name!r}] is not an object")
        rows, size, sha = rec.get("rows"), rec.get("bytes"), rec.get("sha256")
        if not (
            type(rows) is int
            and rows >= 0
            and type(size) is int
            and size >= 0
            and isinstance(sha, str)
            and len(sha) == 64
        ):
            raise ValueError(f"tables[{name!r}] needs integer 'rows' and 'bytes' and a 'sha256' hex digest")
        out[name] = {"rows": rows, "bytes": size, "sha256": sha}
    return out


def _verify_table(f: Path, fmt: str, columns: Iterable[str], rec: dict[str, Any]) -> None:
    """Raise :class:`SweepError` naming ``f`` when its size or content hash differs from ``meta.json``."""
    size, sha = file_digest(f)
    if size == rec["bytes"] and sha == rec["sha256"]:
        return
    try:
        found = f"found {len(_read_table(f, fmt, columns))}"
    except Exception:  # noqa: BLE001 -- a damaged file may fail in any parser; the message says so
        found = "found an unreadable table"
    detail = [
        f"{size} bytes, meta.json records {rec['bytes']}"
        if size != rec["bytes"]
        else "same size, but the sha256 differs from meta.json"
    ]
    if size != rec["bytes"]:
        detail.append("sha256 differs")
    if fmt == "csv" and size and not _ends_with_newline(f):
        detail.append("the last line is incomplete")
    raise SweepError(
        f"truncated or modified file {f}: expected {rec['rows']} rows, {found} "
        f"({'; '.join(detail)}); rewrite the sweep, or read_sweep(..., verify=False) to read "
        f"it as it is"
    )


def _ends_with_newline(f: Path) -> bool:
    with open(f, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def concat_sweeps(sweeps: Iterable[Sweep]) -> Sweep:
    """Stack sweeps over the same ordered groups; duplicate (run, seed, step, split, group) rows raise
    :class:`SweepError`.

    Args:
      sweeps: sweeps over the same ordered groups.

    Returns:
      One :class:`Sweep` holding all their rows.
    """
    sweeps = list(sweeps)
    if not sweeps:
        raise ValueError("concat_sweeps: no sweeps given")
    groups = sweeps[0].groups
    for i, s in enumerate(sweeps):
        if s.groups != groups:
            raise SweepError(f"concat_sweeps: sweep {i} has groups {list(s.groups)}, expected {list(groups)}")
    return Sweep(
        losses=pd.concat([s.losses for s in sweeps], ignore_index=True),
        groups=groups,
        matrices=pd.concat([s.matrices for s in sweeps], ignore_index=True),
    )
