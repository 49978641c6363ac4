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
    devices = jax.local_devices()
    batch = args[1].shape[0]
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
