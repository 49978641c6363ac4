"""Run checkpoints (orbax), verified small files, atomic directory replacement and the work-directory lock.

A checkpoint is a directory ``<path>/`` holding ``state/`` (an orbax ``StandardCheckpointer`` tree: the train
state and, for online methods, the policy state) and ``meta.json`` (the configuration hash, step, run id, ...,
plus ``files``: the size and SHA-256 of every file of ``state/``, and ``meta_sha256``, a checksum of meta.json
itself). A checkpoint is written complete into a hidden sibling directory and then swapped into place
(:func:`replace_dir`), so ``<path>`` is always either the old or the new complete checkpoint; a checkpoint
without ``meta.json`` is incomplete and treated as missing.

Every read is verified: a ``meta.json`` that does not parse or whose checksum fails, a state file that is
missing, cut or altered, or an orbax restore that fails raise :class:`DamagedFileError` (a ``ValueError``)
naming the file, never a bare ``JSONDecodeError`` or TensorStore traceback. Restoring also checks the stored
configuration hash against the caller's so that a child is never resumed from a parent trained with another
model or optimiser.

Files and directories are created with the user's umask (``jaxlaws.sweeps.io.atomic_write_bytes`` and
``make_temp_dir``; ``tempfile`` would create them 0600 and 0700), and a checkpoint replaces the old one with
``jaxlaws.sweeps.io.replace_dir`` (one atomic swap where the OS can).

:func:`work_lock` is an exclusive, per-process re-entrant lock on a work directory (``<dir>/.jaxlaws.lock``,
``flock`` plus the holder's PID and host for the error message).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from jaxlaws.sweeps.io import atomic_write_bytes, file_digest, make_temp_dir, replace_dir

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "save_checkpoint",
    "restore_checkpoint",
    "checkpoint_meta",
    "verify_checkpoint",
    "DamagedFileError",
    "read_json",
    "write_verified_json",
    "read_verified_json",
    "remove_leftovers",
    "work_lock",
    "WorkDirLockedError",
    "LOCK_NAME",
]

REPAIR_HINT = "rerun with --repair (run_sweep(..., repair=True)) to retrain what it held"


class DamagedFileError(ValueError):
    """A bookkeeping file (``config.json``, ``runs/*.json``, a checkpoint's ``meta.json`` or state) is damaged.

    ``path`` is the damaged file; the message names it and says how to repair.
    """

    def __init__(self, path: str | os.PathLike, reason: str, what: str = "", hint: str = REPAIR_HINT):
        self.path, self.reason, self.what, self.hint = Path(path), reason, what, hint
        super().__init__(f"{what + ' ' if what else ''}{str(path)!r} is damaged ({reason}); {hint}")


# --------------------------------------------------------------------------------------------------------------
# files


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def _canonical_sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def read_json(path: str | os.PathLike, what: str = "", hint: str = REPAIR_HINT) -> dict:
    """The JSON object in ``path``; :class:`DamagedFileError` naming it if it cannot be read or parsed."""
    try:
        obj = json.loads(Path(path).read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DamagedFileError(path, f"{type(e).__name__}: {e}", what, hint) from None
    if not isinstance(obj, dict):
        raise DamagedFileError(path, f"expected a JSON object, found {type(obj).__name__}", what, hint)
    return obj


def write_verified_json(path: str | os.PathLike, obj: dict, key: str = "sha256") -> None:
    """:func:`atomic_write_json` of ``obj`` plus ``key``: the SHA-256 of its canonical JSON."""
    atomic_write_json(path, {**obj, key: _canonical_sha256(obj)})


def read_verified_json(
    path: str | os.PathLike, what: str = "", key: str = "sha256", required: bool = True, hint: str = REPAIR_HINT
) -> dict:
    """Read a file written by :func:`write_verified_json` and check its checksum (raises
    :class:`DamagedFileError`). Without the checksum the file is damaged when ``required``, else accepted."""
    obj = read_json(path, what, hint)
    if key not in obj:
        if required:
            raise DamagedFileError(path, f"no checksum {key!r}", what, hint)
        return obj
    stored = obj.pop(key)
    if stored != _canonical_sha256(obj):
        raise DamagedFileError(path, "checksum mismatch: its content was altered", what, hint)
    return obj


def _manifest(root: Path) -> dict[str, list]:
    """``{relative path: [size, sha256]}`` of every file under ``root``."""
    return {p.relative_to(root).as_posix(): list(file_digest(p)) for p in sorted(root.rglob("*")) if p.is_file()}


def remove_leftovers(directory: str | os.PathLike) -> list[Path]:
    """Delete hidden leftovers of killed writers in ``directory`` (``.*.tmp-*``/``.*.old-*`` directories of
    :func:`save_checkpoint` and ``write_sweep``, ``.*.tmp`` files of ``atomic_write_bytes``). Call it only while
    holding the directory's :func:`work_lock`. Returns what was removed."""
    directory = Path(directory)
    gone = []
    if not directory.is_dir():
        return gone
    for p in directory.iterdir():
        n = p.name
        if not n.startswith(".") or n == LOCK_NAME:
            continue
        if p.is_dir() and (".tmp-" in n or ".old-" in n):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
        elif p.is_file() and n.endswith(".tmp"):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


# --------------------------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_meta(path: str | os.PathLike) -> dict | None:
    """The ``meta.json`` of a complete checkpoint at ``path``, or ``None`` if there is none.

    Raises :class:`DamagedFileError` naming the file if it does not parse or its checksum fails.
    """
    meta = Path(path) / "meta.json"
    if not meta.is_file():
        return None
    return read_verified_json(meta, f"checkpoint {Path(path).name!r}:", key="meta_sha256", required=False)


def verify_checkpoint(path: str | os.PathLike, meta: dict | None = None) -> dict:
    """Check a complete checkpoint's state files against the sizes and SHA-256 sums in its ``meta.json``.

    Returns the meta. Raises ``ValueError`` if the checkpoint is missing or incomplete and
    :class:`DamagedFileError` naming the first missing, cut or altered file (checkpoints written before the
    file list existed are accepted as they are).
    """
    path = Path(path).absolute()
    meta = checkpoint_meta(path) if meta is None else meta
    if meta is None:
        raise ValueError(f"checkpoint {str(path)!r} is missing or incomplete (no meta.json)")
    files = meta.get("files")
    if files is None:
        return meta
    what = f"checkpoint {path.name!r}:"
    state = path / "state"
    for rel, (size, digest) in sorted(files.items()):
        f = state / rel
        if not f.is_file():
            raise DamagedFileError(f, "missing", what)
        if f.stat().st_size != size:
            raise DamagedFileError(f, f"{f.stat().st_size} bytes, saved with {size}", what)
        if file_digest(f)[1] != digest:
            raise DamagedFileError(f, "checksum mismatch: its content was altered", what)
    return meta


def _checkpointer() -> ocp.StandardCheckpointer:
    """An orbax checkpointer for this process' own files. With several processes (``jax.distributed``) orbax
    would otherwise make every process take part in every call, but in a multi-process sweep each process
    restores only the runs it trains (it saves them as msgpack: see :func:`save_checkpoint`)."""
    if jax.process_count() == 1:
        return ocp.StandardCheckpointer()
    me = jax.process_index()
    return ocp.StandardCheckpointer(
        multiprocessing_options=ocp.options.MultiprocessingOptions(
            primary_host=None, active_processes={me}, barrier_sync_key_prefix=f"jaxlaws-process{me}"
        )
    )


MSGPACK = "state.msgpack"  # the state of a checkpoint saved by a process of a multi-process job


def _restore_msgpack(file: Path, target: Any, what: str) -> Any:
    """The tree saved in ``file`` in the structure of ``target``; shapes and dtypes must match the target's."""
    try:
        got = serialization.from_state_dict(target, serialization.msgpack_restore(file.read_bytes()))
    except Exception as e:  # a structure that does not fit the target, or bytes msgpack cannot read
        raise DamagedFileError(file, f"cannot restore it: {type(e).__name__}: {str(e)[:300]}", what) from None
    for (kp, want), have in zip(jax.tree_util.tree_leaves_with_path(target), jax.tree_util.tree_leaves(got)):
        if np.shape(have) != np.shape(want) or np.result_type(have) != np.result_type(want):
            raise DamagedFileError(
                file,
                f"{jax.tree_util.keystr(kp)} saved as {np.result_type(have)} "
                f"{np.shape(have)}, expected {np.result_type(want)} {np.shape(want)}",
                what,
            )
    return got


def save_checkpoint(path: str | os.PathLike, tree: Any, meta: dict) -> None:
    """Save the pytree ``tree`` with orbax and ``meta`` (must hold ``config_hash``), then swap it into ``path``.

    The checkpoint is written complete (state, file list, meta.json) into a hidden sibling directory first, so
    an interrupted save leaves the previous checkpoint (or none) in place, never a half-written one.
    """
    if "config_hash" not in meta:
        raise ValueError("checkpoint meta must include 'config_hash'")
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(path.parent, f".{path.name}.tmp-")
    try:
        tree = jax.device_get(tree)
        if jax.process_count() > 1:
            # orbax writes host (numpy) arrays from process 0 only, so another process' save would hold no data;
            # in a multi-process sweep each process saves its own runs whole, as one msgpack file.
            (tmp / "state").mkdir()
            (tmp / "state" / MSGPACK).write_bytes(serialization.msgpack_serialize(serialization.to_state_dict(tree)))
        else:
            with _checkpointer() as ckptr:
                ckptr.save(tmp / "state", tree)
                ckptr.wait_until_finished()
        meta = {**meta, "files": _manifest(tmp / "state")}
        write_verified_json(tmp / "meta.json", meta, key="meta_sha256")
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def restore_checkpoint(path: str | os.PathLike, target: Any, config_hash: str, what: str = "checkpoint") -> Any:
    """Restore the tree saved at ``path`` into the structure of ``target``.

    Raises ``ValueError`` naming ``path`` if the checkpoint is missing/incomplete or was written with another
    configuration (``config_hash`` differs), and :class:`DamagedFileError` naming the file if its meta.json or
    state is damaged (checked against the saved file list before orbax reads it).
    """
    path = Path(path).absolute()
    meta = checkpoint_meta(path)
    if meta is None:
        raise ValueError(f"{what} {str(path)!r} is missing or incomplete (no meta.json)")
    if meta.get("config_hash") != config_hash:
        raise ValueError(
            f"{what} {str(path)!r} was trained with another configuration (hash "
            f"{meta.get('config_hash')} != {config_hash}); model: {meta.get('model')}"
        )
    verify_checkpoint(path, meta)
    if (path / "state" / MSGPACK).is_file():
        return _restore_msgpack(path / "state" / MSGPACK, target, what)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    try:
        with _checkpointer() as ckptr:
            return ckptr.restore(path / "state", abstract)
    except Exception as e:  # orbax / TensorStore errors: one line naming the checkpoint
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise DamagedFileError(path / "state", f"orbax cannot restore it: {type(e).__name__}: {msg}", what) from None


# --------------------------------------------------------------------------------------------------------------
# the work-directory lock

LOCK_NAME = ".jaxlaws.lock"


class WorkDirLockedError(ValueError):
    """Another live process holds the work directory's lock (a ``ValueError``: the command line reports it as
    a one-line user error)."""


_held: dict[str, list] = {}  # realpath -> [pid, fd, count]
_held_guard = threading.Lock()


def _holder(lock: Path) -> dict:
    try:
        obj = json.loads(lock.read_text() or "{}")
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if holder.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process: cannot be checked, assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(work: Path, holder: dict) -> WorkDirLockedError:
    who = f"process {holder['pid']}" if "pid" in holder else "another process"
    host = f" on {holder['host']}" if holder.get("host") and holder["host"] != socket.gethostname() else ""
    since = f" since {holder['since']}" if holder.get("since") else ""
    return WorkDirLockedError(
        f"work directory {str(work)!r} is in use by {who}{host}{since} (lock "
        f"{LOCK_NAME}); wait for it to finish or stop it, or use another directory"
    )


def _acquire(work: Path) -> int:
    lock = work / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(work, _holder(lock)) from None
        except OSError:  # no flock on this file system: trust the PID in the lock file
            holder = _holder(lock)
            if holder.get("pid") != os.getpid() and _alive(holder):
                raise _busy(work, holder) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def work_lock(work_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of the work directory ``work_dir`` (created if needed) for the ``with`` block.

    Re-entrant within a process: a process that holds it may take it again (nested ``with`` blocks, or
    ``run_sweep`` called inside the caller's lock). Another live process gets :class:`WorkDirLockedError`
    naming its PID. The lock is a ``flock`` on ``<work_dir>/.jaxlaws.lock``, released by the kernel when its
    holder dies, so a lock left by a killed process is taken over; where the file system has no ``flock``,
    the PID written in the lock file is checked instead (a dead PID's lock is taken over).
    """
    work = Path(work_dir)
    if work.exists() and not work.is_dir():
        raise ValueError(f"work directory {str(work)!r} is not a directory")
    work.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(work)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None and entry[0] == os.getpid():
            entry[2] += 1
        else:
            entry = _held[key] = [os.getpid(), _acquire(work), 1]
    try:
        yield work
    finally:
        with _held_guard:
            entry[2] -= 1
            if entry[2] == 0:
                _held.pop(key, None)
                with contextlib.suppress(OSError):
                    os.ftruncate(entry[1], 0)  # no holder recorded (matters where flock is missing)
                with contextlib.suppress(OSError):
                    fcntl.flock(entry[1], fcntl.LOCK_UN)
                os.close(entry[1])
