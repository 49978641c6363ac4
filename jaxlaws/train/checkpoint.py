"""Run checkpoints (orbax) and atomic small files.

A checkpoint is a directory ``<path>/`` holding ``state/`` (an orbax ``StandardCheckpointer`` tree: the train
state and, for online methods, the policy state) and ``meta.json`` (the configuration hash, step, run id, ...).
``meta.json`` is written last with an atomic replace, so a checkpoint without it is incomplete and is treated as
missing -- a process killed mid-save leaves nothing that can be mistaken for a finished checkpoint.
Restoring checks the stored configuration hash against the caller's so that a child is never resumed from a
parent trained with another model or optimiser.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["atomic_write_bytes", "atomic_write_json", "save_checkpoint", "restore_checkpoint",
           "checkpoint_meta"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def checkpoint_meta(path: str | os.PathLike) -> dict | None:
    """The ``meta.json`` of a complete checkpoint at ``path``, or ``None`` if there is none."""
    meta = Path(path) / "meta.json"
    if not meta.is_file():
        return None
    return json.loads(meta.read_text())


def save_checkpoint(path: str | os.PathLike, tree: Any, meta: dict) -> None:
    """Save the pytree ``tree`` with orbax and then ``meta`` (must hold ``config_hash``) atomically."""
    if "config_hash" not in meta:
        raise ValueError("checkpoint meta must include 'config_hash'")
    path = Path(path).absolute()
    if (path / "meta.json").exists():
        (path / "meta.json").unlink()  # invalidate first: an interrupted overwrite must not look complete
    if (path / "state").exists():
        shutil.rmtree(path / "state")
    path.mkdir(parents=True, exist_ok=True)
    tree = jax.device_get(tree)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / "state", tree)
        ckptr.wait_until_finished()
    atomic_write_json(path / "meta.json", meta)


def restore_checkpoint(path: str | os.PathLike, target: Any, config_hash: str, what: str = "checkpoint") -> Any:
    """Restore the tree saved at ``path`` into the structure of ``target``.

    Raises ``ValueError`` naming ``path`` if the checkpoint is missing/incomplete or was written with another
    configuration (``config_hash`` differs).
    """
    path = Path(path).absolute()
    meta = checkpoint_meta(path)
    if meta is None:
        raise ValueError(f"{what} {str(path)!r} is missing or incomplete (no meta.json)")
    if meta["config_hash"] != config_hash:
        raise ValueError(f"{what} {str(path)!r} was trained with another configuration (hash "
                         f"{meta['config_hash']} != {config_hash}); model: {meta.get('model')}")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(path / "state", abstract)
