"""Where a compiled fitting program runs: placement of the problem batch on devices.

Kept apart from :mod:`.engine` (what is computed) so that how it is executed -- one device, all local
devices, chunks streamed through memory, a multi-process global mesh -- can change on its own.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def run_sharded(program, args, shared_inits: bool):
    """Run on all local devices (padding the batch to a multiple of the device count) or on one."""
    fn = program[0] if shared_inits else program[1]
    batch = args[1].shape[0]
    if jax.process_count() > 1 and batch >= jax.process_count():  # the same decision on every process
        return run_global(fn, args, shared_inits)
    devices = jax.local_devices()
    if len(devices) > 1 and batch > 1:
        pad = (-batch) % len(devices)
        mesh = Mesh(np.asarray(devices), ("problems",))
        sharded = NamedSharding(mesh, PartitionSpec("problems"))
        replicated = NamedSharding(mesh, PartitionSpec())
        placed = []
        for i, a in enumerate(args):
            if i == 0 and shared_inits:
                placed.append(jax.device_put(a, replicated))
                continue
            if pad:
                a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
            placed.append(jax.device_put(a, sharded))
        out = fn(*placed)
        return tuple(np.asarray(o)[:batch] for o in out)
    return tuple(np.asarray(o) for o in fn(*args))


def run_global(fn, args, shared_inits: bool):
    """Shard the problems over the devices of every process (a global mesh); every process gets all results.

    For a job of several processes (``jaxlaws.distributed.initialize``) that all call ``fit_batched`` with the
    same inputs, as JAX's multi-controller model has them do: each process places only its own block of the
    (padded) problem axis, runs its share, and ``process_allgather`` brings the results to every process.
    The problems are independent, so the only communication is that final gather.
    """
    from jax.experimental import multihost_utils

    devices = jax.devices()
    batch = args[1].shape[0]
    pad = (-batch) % len(devices)
    mesh = Mesh(np.asarray(devices), ("problems",))
    placed = []
    for i, a in enumerate(args):
        a = np.asarray(a)
        spec = PartitionSpec() if i == 0 and shared_inits else PartitionSpec("problems")
        if pad and spec != PartitionSpec():
            a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
        placed.append(jax.make_array_from_callback(a.shape, NamedSharding(mesh, spec), lambda idx, a=a: a[idx]))
    out = fn(*placed)
    return tuple(np.asarray(multihost_utils.process_allgather(o, tiled=True))[:batch] for o in out)
