"""One job over several processes (hosts): ``jax.distributed`` set-up and the coordination jaxlaws needs.

JAX's multi-controller model: every process runs the same program; :func:`initialize` connects them to the
coordination service that process 0 hosts, which gives a key-value store, barriers and heartbeats (a process
that dies is detected by the others within ``heartbeat_timeout_s`` and they stop). On top of it:

* :func:`barrier` -- a named barrier with a timeout;
* :func:`agree` -- every process publishes a digest of what it was asked to do (the sweep's configuration,
  the runs left to train, ...) and all raise :class:`DistributedError` naming the processes that differ;
* :func:`share_outcome` -- process 0 does something alone (take the work-directory lock, check
  ``config.json``) and the others learn whether it succeeded (its error is raised on every process);
* :func:`wait_all` -- wait for every process to finish a phase, raising promptly when one reports an error;
* :func:`owned` -- the items a process owns: item ``i`` of a list every process computed alike goes to
  process ``i mod P``.

Every wait is bounded: a bad configuration (wrong ``process_id``, unreachable coordinator, a process missing,
different arguments on different processes) raises :class:`DistributedError` (a ``ValueError``: the ``jaxlaws``
command prints it as one line, exit code 2) or exits with code 2 after ``timeout_s``, never hangs.

All calls are collective: every process makes them in the same order (keys and barrier ids are numbered
by a per-process counter that therefore agrees).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax

__all__ = [
    "Cluster",
    "DistributedError",
    "initialize",
    "cluster",
    "barrier",
    "agree",
    "share_outcome",
    "wait_all",
    "owned",
    "digest",
    "DEFAULT_TIMEOUT_S",
    "add_arguments",
    "from_arguments",
]

DEFAULT_TIMEOUT_S = 120.0  # start-up waits: connecting, agreeing on the configuration
EXIT_CODE = 2  # the jaxlaws command's exit code for user errors
T = TypeVar("T")


class DistributedError(ValueError):
    """A multi-process job is misconfigured or a process failed; the message says which and what to check."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process' place in the job: ``index`` in ``[0, count)``; process 0 is the main one."""

    index: int = 0
    count: int = 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def is_multi(self) -> bool:
        return self.count > 1


def cluster() -> Cluster:
    """The current process' :class:`Cluster` (``Cluster(0, 1)`` unless :func:`initialize` ran)."""
    return Cluster(jax.process_index(), jax.process_count())


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"coordinator address {address!r} must be HOST:PORT (e.g. 10.0.0.1:1234)")
    return host.strip("[]"), int(port)


def _wait_reachable(address: str, timeout_s: float) -> None:
    """Raise unless a TCP connection to the coordinator succeeds within ``timeout_s`` (it may start later)."""
    host, port = _parse_address(address)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, timeout_s)):
                return
        except OSError as e:
            last = e
            time.sleep(0.2)
    raise DistributedError(
        f"cannot reach the coordinator {address} within {timeout_s:g} s ({last}): is process 0 "
        "running, and are --coordinator and the network right?"
    )


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: int | Sequence[int] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    heartbeat_timeout_s: int = 100,
) -> Cluster:
    """Connect this process to the job (``jax.distributed.initialize``); returns its :class:`Cluster`.

    Without arguments JAX detects the cluster (TPU pod slices, SLURM, Open MPI); otherwise give all of
    ``coordinator`` (``HOST:PORT`` of process 0), ``num_processes`` and ``process_id``. On the CPU backend the
    processes talk through gloo (``jax_cpu_collectives_implementation``). Checked here, with a
    :class:`DistributedError`: a ``process_id`` outside ``[0, num_processes)``, a malformed or (for processes
    other than 0) unreachable coordinator. If the processes have not all connected after ``timeout_s``, this
    process prints which wait timed out and exits with code 2 (JAX itself would abort). Idempotent: a second
    call returns the current cluster.
    """
    if jax.distributed.is_initialized():
        return cluster()
    given = [a is not None for a in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise DistributedError(
            "give all of --coordinator, --num-processes and --process-id, or none of them "
            "(to let JAX detect a TPU pod slice or SLURM job)"
        )
    if timeout_s <= 0 or heartbeat_timeout_s <= 0:
        raise DistributedError(
            f"timeouts must be positive, got timeout_s={timeout_s}, heartbeat_timeout_s={heartbeat_timeout_s}"
        )
    if all(given):
        _parse_address(coordinator)
        if not (isinstance(num_processes, int) and num_processes >= 1):
            raise DistributedError(f"--num-processes must be an integer >= 1, got {num_processes!r}")
        if not (isinstance(process_id, int) and 0 <= process_id < num_processes):
            raise DistributedError(
                f"--process-id must be in [0, {num_processes}) for --num-processes {num_processes}, got {process_id!r}"
            )
        if process_id != 0:
            _wait_reachable(coordinator, timeout_s)
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")

    def give_up() -> None:  # JAX would abort with a C++ stack trace: say what went wrong instead
        print(
            f"jaxlaws: error: the {num_processes or '?'} processes did not all connect to the coordinator "
            f"{coordinator or '(auto-detected)'} within {timeout_s:g} s: check that every process was started "
            "with the same --coordinator and --num-processes and a distinct --process-id",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_CODE)

    watchdog = threading.Timer(timeout_s, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator,
            num_processes,
            process_id,
            local_device_ids=local_device_ids,
            initialization_timeout=int(timeout_s) + 30,
            heartbeat_timeout_seconds=int(heartbeat_timeout_s),
        )
    finally:
        watchdog.cancel()
    return cluster()


# --------------------------------------------------------------------------------------------------------------
# coordination (no-ops on one process)

_counter = [0]


def _next(name: str) -> str:
    _counter[0] += 1
    return f"jaxlaws/{_counter[0]}/{name}"


def _client():
    from jax._src import distributed  # the coordination client jax.distributed connected (no public handle)

    client = distributed.global_state.client
    if client is None:
        raise DistributedError("jax.distributed is not initialised: call jaxlaws.distributed.initialize() first")
    return client


def _ms(timeout_s: float) -> int:
    return max(1, int(timeout_s * 1000))


def barrier(name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Wait until every process reaches the barrier ``name``; :class:`DistributedError` after ``timeout_s``."""
    if not cluster().is_multi:
        return
    bid = _next(name)
    try:
        _client().wait_at_barrier(bid, _ms(timeout_s))
    except jax.errors.JaxRuntimeError as e:
        raise DistributedError(
            f"process {jax.process_index()}: not every process reached {name!r} within "
            f"{timeout_s:g} s ({str(e).splitlines()[0][:200]})"
        ) from None


def digest(obj: Any) -> str:
    """A short SHA-256 of ``obj``'s canonical JSON (what :func:`agree` compares)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _gather(key: str, value: str, timeout_s: float, what: str) -> list[str]:
    """Publish ``value`` under ``key/<index>`` and return every process' value (in index order)."""
    c, me = cluster(), jax.process_index()
    client = _client()
    client.key_value_set(f"{key}/{me}", value)
    deadline = time.monotonic() + timeout_s
    out = []
    for i in range(c.count):
        left = deadline - time.monotonic()
        try:
            out.append(client.blocking_key_value_get(f"{key}/{i}", _ms(max(left, 0.001))))
        except jax.errors.JaxRuntimeError:
            raise DistributedError(
                f"process {me}: process {i} did not reach {what!r} within {timeout_s:g} s "
                "(did it fail earlier, or was it started with other arguments?)"
            ) from None
    return out


def agree(name: str, value: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Check that every process holds the same ``value`` (compared by :func:`digest`).

    Raises :class:`DistributedError` on every process, naming the processes whose value differs from
    process 0's, or if one does not arrive within ``timeout_s``.
    """
    if not cluster().is_multi:
        return
    values = _gather(_next(name), digest(value), timeout_s, name)
    odd = [i for i, v in enumerate(values) if v != values[0]]
    if odd:
        raise DistributedError(
            f"the processes disagree on {name}: process(es) {odd} differ from process 0 "
            f"(digests {[values[i] for i in odd]} != {values[0]}); start every process with "
            "the same arguments and data"
        )


def _encode(err: BaseException | None) -> str:
    return "ok" if err is None else json.dumps([type(err).__name__, str(err)])


def share_outcome(name: str, fn: Callable[[], T], timeout_s: float = DEFAULT_TIMEOUT_S) -> T | None:
    """Process 0 calls ``fn()``; every process learns whether it succeeded.

    Returns ``fn()``'s value on process 0 and ``None`` elsewhere. If ``fn`` raises, process 0 re-raises it and
    every other process raises :class:`DistributedError` with its message.
    """
    c = cluster()
    if not c.is_multi:
        return fn()
    key = _next(name)
    if c.is_main:
        try:
            out = fn()
        except BaseException as e:
            _client().key_value_set(key, _encode(e))
            raise
        _client().key_value_set(key, "ok")
        return out
    try:
        got = _client().blocking_key_value_get(key, _ms(timeout_s))
    except jax.errors.JaxRuntimeError:
        raise DistributedError(f"process {c.index}: process 0 did not finish {name!r} within {timeout_s:g} s") from None
    if got != "ok":
        kind, msg = json.loads(got)
        raise DistributedError(f"process 0 failed in {name!r}: {kind}: {msg}")
    return None


def wait_all(name: str, fn: Callable[[], T], timeout_s: float | None = None, poll_s: float = 0.5) -> T:
    """Every process calls ``fn()``, then waits until all have finished; returns ``fn()``'s value.

    A process whose ``fn`` raises tells the others (they raise :class:`DistributedError` naming it at their next
    poll) and re-raises. ``timeout_s=None`` waits as long as the slowest process needs (a process that dies is
    caught by JAX's heartbeat instead).
    """
    c = cluster()
    if not c.is_multi:
        return fn()
    key, client = _next(name), _client()
    try:
        out = fn()
    except BaseException as e:
        client.key_value_set(f"{key}/{c.index}", _encode(e))
        raise
    client.key_value_set(f"{key}/{c.index}", "ok")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        got = dict(client.key_value_dir_get(f"{key}/"))
        for k, v in sorted(got.items()):
            if v != "ok":
                kind, msg = json.loads(v)
                raise DistributedError(f"process {k.rsplit('/', 1)[-1]} failed in {name!r}: {kind}: {msg}")
        if len(got) == c.count:
            return out
        if deadline is not None and time.monotonic() > deadline:
            missing = sorted(set(range(c.count)) - {int(k.rsplit("/", 1)[-1]) for k in got})
            raise DistributedError(f"process(es) {missing} did not finish {name!r} within {timeout_s:g} s")
        time.sleep(poll_s)


def owned(items: Sequence[T], c: Cluster | None = None) -> list[T]:
    """The items process ``c.index`` owns: ``items[i]`` for ``i = index, index + P, ...`` (round robin, so a
    list sorted by cost spreads the cost evenly)."""
    c = cluster() if c is None else c
    return list(items[c.index :: c.count])


# --------------------------------------------------------------------------------------------------------------
# command-line options shared by `jaxlaws sweep` and `jaxlaws analyse`


def add_arguments(p: Any) -> None:
    """Add ``--distributed``, ``--coordinator``, ``--num-processes``, ``--process-id`` and ``--dist-timeout``."""
    g = p.add_argument_group("several processes (jax.distributed)")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="one process of a multi-process job: run every process with the same arguments; without "
        "--coordinator JAX detects a TPU pod slice or SLURM job",
    )
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="process 0's address and a free port")
    g.add_argument("--num-processes", type=int, default=None)
    g.add_argument("--process-id", type=int, default=None)
    g.add_argument(
        "--dist-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="how long start-up waits for the other processes before giving up with an error",
    )


def from_arguments(args: Any) -> Cluster:
    """:func:`initialize` as the options of :func:`add_arguments` ask (nothing without ``--distributed``)."""
    explicit = [args.coordinator, args.num_processes, args.process_id]
    if not args.distributed:
        if any(a is not None for a in explicit):
            raise DistributedError("--coordinator, --num-processes and --process-id need --distributed")
        return cluster()
    return initialize(*explicit, timeout_s=args.dist_timeout)
