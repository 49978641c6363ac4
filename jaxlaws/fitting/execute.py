"""Where a compiled fitting program runs: placement of the problem batch on devices.

Kept apart from :mod:`.engine` (what is computed) so that how it is executed -- one device, all local
devices, chunks streamed through memory, a multi-process global mesh -- can change on its own.

Compiling costs more than running for a one-off fit, so this module also keeps the number of compilations
down: the points, inits and problems of a fit are padded to a few sizes (:func:`bucket`; padded points carry
weight 0, padded inits and problems repeat real ones and are cut from the results), so fits of 33 or 40
points share one program; and :func:`enable_compilation_cache` turns on JAX's persistent compilation cache
when jaxlaws is imported, so a new process reuses what an earlier one compiled.
"""

from __future__ import annotations

import functools
import os
import types
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "CodeKey",
    "CACHE_MIN_COMPILE_SECS",
    "enable_compilation_cache",
    "bucket",
    "pad_fit_args",
    "memory_budget",
    "bytes_per_problem",
    "chunk_size",
    "run_sharded",
    "run_global",
]

#: Environment variables: ``JAXLAWS_CACHE=0`` leaves JAX's persistent compilation cache off;
#: ``JAXLAWS_CACHE_DIR`` moves it (default ``$XDG_CACHE_HOME/jaxlaws/jax``, i.e. ``~/.cache/jaxlaws/jax``).
CACHE_ENV, CACHE_DIR_ENV = "JAXLAWS_CACHE", "JAXLAWS_CACHE_DIR"
#: Programs that compile faster than this are not written to the persistent cache. JAX's default, 1 s, would
#: leave out most of a fit's programs (its search and its evaluation compile in well under a second on a quiet
#: machine), so every program is written: a new process then compiles none of them.
CACHE_MIN_COMPILE_SECS = 0.0


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache in a per-user directory, unless the user configured one
    (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) or opted out (``JAXLAWS_CACHE=0``). Returns the
    directory used, or ``None`` when jaxlaws left the configuration alone. Called on ``import jaxlaws``."""
    if os.environ.get(CACHE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return None  # the user's own cache: not ours to change
    path = os.environ.get(CACHE_DIR_ENV) or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jaxlaws" / "jax"
    )
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None  # e.g. a read-only home: run without the cache rather than fail the import
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECS)
    return path


def bucket(n: int) -> int:
    """The size ``n`` is padded to: the next power of two up to 8, else the next multiple of ``2^(k-2)`` for
    ``n`` in ``(2^k, 2^(k+1)]`` -- four sizes per octave, so at most a quarter is padding (33 -> 40, 240 -> 256)."""
    if n <= 8:
        return 1 << max(0, (n - 1).bit_length())
    step = 1 << ((n - 1).bit_length() - 3)
    return -(-n // step) * step


def pad_fit_args(args, shared_inits: bool):
    """``args = (inits, x, y, w, wv, *per_problem)`` with the points and the inits padded to :func:`bucket`
    sizes: padded points repeat the last point with weight 0 (they add nothing to any objective), padded inits
    repeat the last init (a duplicate start changes no minimum). Returns the padded args and ``n_init``."""
    inits, x, y, w, wv = (np.asarray(a) for a in args[:5])
    n, n_init = x.shape[1], inits.shape[-2]
    extra_n, extra_i = bucket(n) - n, bucket(n_init) - n_init
    if extra_n:
        rep = lambda a: np.concatenate([a, np.repeat(a[:, -1:], extra_n, axis=1)], axis=1)  # noqa: E731
        x, y, w, wv = rep(x), rep(y), rep(w) * _tail_zero(w, extra_n), rep(wv) * _tail_zero(wv, extra_n)
    if extra_i:
        inits = np.concatenate([inits, np.repeat(inits[..., -1:, :], extra_i, axis=-2)], axis=-2)
    return [inits, x, y, w, wv] + list(args[5:]), n_init


def _tail_zero(w: np.ndarray, extra: int) -> np.ndarray:
    """Ones over ``w``'s points and zeros over the ``extra`` padded ones (axis 1): padding carries weight 0."""
    return np.concatenate([np.ones(w.shape[1], w.dtype), np.zeros(extra, w.dtype)])


def memory_budget() -> int:
    """Default bytes one chunk of a batched fit may use: a quarter of the first local device's memory where
    jax reports it (GPU, TPU: ``memory_stats()["bytes_limit"]``), else a quarter of physical memory (the CPU
    backend), else 4 GiB."""
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 -- backends without memory statistics raise or return None
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) // 4
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (AttributeError, ValueError, OSError):
        return 4 << 30


def bytes_per_problem(args, shared_inits: bool) -> int:
    r"""Working-set estimate of one problem of ``args = (inits, x, y, w, wv)``: every init holds its residuals,
    ``P`` Jacobian columns and tangents over the ``N`` outputs, and ``P x P`` normal equations, so about
    :math:`I\,(N(P + 4) + 3P^2 + 16P)` numbers (``I`` inits). An estimate, for choosing chunk sizes."""
    inits, y = args[0], args[2]
    n_init, p = inits.shape[-2], inits.shape[-1]
    n = int(np.prod(y.shape[1:]))
    return int(n_init * (n * (p + 4) + 3 * p * p + 16 * p) * np.dtype(inits.dtype).itemsize)


def chunk_size(args, shared_inits: bool, budget: int | None = None, multiple: int = 1) -> int:
    """Problems per chunk: as many as fit in ``budget`` bytes (default :func:`memory_budget`), at least one,
    rounded down to a multiple of ``multiple`` (the device count) when that leaves at least one."""
    budget = memory_budget() if budget is None else int(budget)
    c = max(1, budget // max(1, bytes_per_problem(args, shared_inits)))
    return max(multiple, c - c % multiple) if c >= multiple else c


def run_sharded(program, args, shared_inits: bool, budget: int | None = None):
    """Run the batch of problems in chunks that fit in ``budget`` bytes (:func:`chunk_size`), each on all
    local devices (or the global mesh of a multi-process job).

    Every chunk has the same shape -- the last is padded by repeating its last problem -- so one compiled
    program streams through a batch of any size; chunks are dispatched before any result is read back, so
    the host's copies overlap the next chunk's run. The problems are independent: chunked == unchunked.

    ``args = (inits, x, y, w, wv, ...)`` of the fitting program (:func:`pad_fit_args` pads the points and
    the inits; its per-init objectives, the 4th output, are cut back to the real inits)."""
    args, n_init = pad_fit_args(args, shared_inits)
    out = _run_chunks(program, args, shared_inits, budget)
    return tuple(o[:, :n_init] if k == 3 and o.ndim == 2 and o.shape[1] > n_init else o for k, o in enumerate(out))


def _run_chunks(program, args, shared_inits: bool, budget: int | None = None):
    batch = args[1].shape[0]
    size = chunk_size(args, shared_inits, budget, multiple=len(jax.local_devices()))
    if batch <= size:  # one run, the batch padded to a bucket size too (a repeated problem, cut off after)
        extra = min(bucket(batch), size) - batch
        if extra > 0:
            args = [
                a if (i == 0 and shared_inits) else np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])
                for i, a in enumerate(args)
            ]
        return tuple(np.asarray(o)[:batch] for o in _run_once(program, args, shared_inits))
    pending = []
    for start in range(0, batch, size):
        part = [a if (i == 0 and shared_inits) else a[start : start + size] for i, a in enumerate(args)]
        n = part[1].shape[0]
        if n < size:  # pad to the common shape, so the same compiled program runs every chunk
            part = [
                a if (i == 0 and shared_inits) else np.concatenate([a, np.repeat(a[-1:], size - n, axis=0)])
                for i, a in enumerate(part)
            ]
        pending.append((n, _run_once(program, part, shared_inits, block=False)))
    outs = [tuple(np.asarray(o)[:n] for o in out) for n, out in pending]
    return tuple(np.concatenate(parts) for parts in zip(*outs))


def _run_once(program, args, shared_inits: bool, block: bool = True):
    """Run on all local devices (padding the batch to a multiple of the device count) or on one."""
    fn = program[0] if shared_inits else program[1]
    batch = args[1].shape[0]
    if jax.process_count() > 1 and batch >= jax.process_count():  # the same decision on every process
        return run_global(fn, args, shared_inits)
    devices = jax.local_devices()
    if batch == 1 and len(program) > 2:  # one problem: the program without the vmap over problems
        out = program[2](*(a if (i == 0 and shared_inits) else a[0] for i, a in enumerate(args)))
        return tuple(np.asarray(o)[None] if block else o[None] for o in out)
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
        return tuple((np.asarray(o) if block else o)[:batch] for o in out)
    out = fn(*args)
    return tuple(np.asarray(o) for o in out) if block else out


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


# --------------------------------------------------------------------------- keys of compiled programs
class CodeKey:
    """A law's ``predict`` as compiled programs are keyed on: two plain functions with equal code objects, equal
    defaults, the same closure contents and the same values of the globals their code names (a number or string
    by value, anything else by identity) key alike -- so a notebook cell that re-defines the same ``predict``
    reuses the program compiled for the first definition instead of tracing and compiling again (``jax.jit``
    alone keys on the function object). Anything else (a method, a ``functools.partial``) keys by identity.
    Calls go to the wrapped function."""

    __slots__ = ("fn", "_key")

    def __init__(self, fn: Any):
        self.fn = fn
        self._key = _code_key(fn)

    @classmethod
    def of(cls, fn: Any) -> CodeKey:
        return fn if isinstance(fn, cls) else cls(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CodeKey) and self._key == other._key

    def __repr__(self) -> str:
        return f"CodeKey({self.fn!r})"


class _Same:
    """Compares by identity (holding the object, so that its id cannot be reused while a key lives)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


_BY_VALUE = (bool, int, float, complex, str, bytes, type(None))


def _token(v: Any, depth: int) -> Any:
    if type(v) in _BY_VALUE:
        return (type(v).__name__, v)
    if type(v) is tuple:
        return ("tuple",) + tuple(_token(e, depth) for e in v)
    return _code_key(v, depth + 1) if isinstance(v, types.FunctionType) else _Same(v)


def _names(code: types.CodeType) -> set[str]:
    """The global (and attribute) names a code object and the code objects nested in it refer to."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def _code_key(fn: Any, depth: int = 0) -> Any:
    """``fn``'s key; functions it refers to (helpers, nested laws) are keyed by code too, two levels deep."""
    if not isinstance(fn, types.FunctionType) or depth > 2:
        return _Same(fn)
    g, tok = fn.__globals__, functools.partial(_token, depth=depth)
    used = tuple(sorted(((n, tok(g[n])) for n in _names(fn.__code__) if n in g and g[n] is not fn), key=_first))
    cells = tuple(tok(c.cell_contents) if _filled(c) else ("empty",) for c in fn.__closure__ or ())
    kwdefaults = tuple(sorted(((k, tok(v)) for k, v in (fn.__kwdefaults__ or {}).items()), key=_first))
    return ("fn", fn.__code__, tok(fn.__defaults__ or ()), kwdefaults, cells, used)


def _first(pair: tuple) -> Any:
    return pair[0]


def _filled(cell: Any) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:  # an empty cell (a variable not yet assigned)
        return False
    return True
