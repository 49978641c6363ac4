"""Sweeps and fits over several processes (jax.distributed on the CPU backend, gloo collectives).

Two and three local processes, one CPU device each, run the tiny static and dynamic sweeps of
``tests/test_train_sweep.py`` (a one-layer width-32 decoder, 30 steps) and (two) a batched fit; the results must equal
one process' (losses to rtol 2e-5, the tolerance of the single-process sharded sweep test; fitted parameters to
rtol 1e-7, float64: see FIT_RTOL). A process killed mid-sweep and the job restarted with another
number of processes finishes the same sweep. Bad configurations end with a clear error in bounded time.

This file is also the worker: ``python tests/test_distributed.py MODE PROCESS_ID N PORT WORK``.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import xla_flags

TESTS = Path(__file__).resolve().parent
KEY = ["run", "seed", "step", "split", "group"]
# One CPU device per process, but this run's XLA flags otherwise: the workers compile as this process does
# (conftest's optimisation level), so their programs match the reference's.
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1", "XLA_FLAGS": xla_flags()}
# Fitted parameters (float64): another split of the problems over devices compiles another program (padding,
# reduction order), which moves weakly determined parameters by ~1e-9 relative (measured 1.5e-9 with 3 processes).
FIT_RTOL = 1e-7
TIMEOUT = 240  # seconds for any one job of processes (a hang fails the test, never the suite)


def _losses(sweep) -> dict:
    s = sweep.losses.sort_values(KEY)
    return {"keys": [list(map(str, k)) for k in s[KEY].itertuples(index=False)], "loss": s["loss"].tolist()}


def _fit_problem():
    """7 synthetic 3-group problems (the sharded-fit test's) and a thinned init grid: ``(x, y, inits)``."""
    import jax

    import jaxlaws as jl

    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(3), (7, 9))
    y = 2.5 + np.exp(-0.5 - 2.0 * x[..., 0] + 0.3 * x[..., 1]) + rng.normal(0, 0.003, (7, 9))
    return x, y, jl.laws.log_linear_inits(3, jax.random.key(0), own=0)[::50]


def _fit():
    import jaxlaws as jl

    x, y, inits = _fit_problem()
    return jl.fit_batched(jl.laws.log_linear(3), x, y, inits=inits, dtype="float64")


# ----------------------------------------------------------------------------------------------------------------
# the worker


def _static(t, work, **kw):
    return t.static_sweep(t.DATA, t.CFG, t.MIX, [0, 1], work, progress=False, **kw)


def _dynamic(t, work, **kw):
    return t.dynamic_sweep(t.DATA, t.CFG, t.MIX[1:2], t.MIX[1:], [0], 20, 10, work, progress=False, **kw)


def _kill_on(module, name: str, nth: int) -> None:
    """SIGKILL this process right after its ``nth`` call of ``module.name`` (a crash, not an exception)."""
    fn, calls = getattr(module, name), [0]

    def wrapped(*a, **k):
        out = fn(*a, **k)
        calls[0] += 1
        if calls[0] >= nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(module, name, wrapped)


def worker(mode: str, pid: int, n: int, port: int, work: Path) -> None:
    import jaxlaws.distributed as dist

    c = dist.initialize(f"127.0.0.1:{port}", n, pid, timeout_s=60, heartbeat_timeout_s=5)
    assert (c.index, c.count) == (pid, n)
    sys.path.insert(0, str(TESTS))
    import test_train_sweep as t

    from jaxlaws.train import sweep as S

    out = {}
    if mode == "sweeps":
        out["static"] = _losses(_static(t, work / "static", runs_per_program=1))
        out["dynamic"] = _losses(_dynamic(t, work / "dynamic", runs_per_program=1))
        res = _fit()
        out["fit"] = res.params.tolist()
    elif mode == "kill":  # the last process dies while saving its second run's first mid-run checkpoint
        if pid == n - 1:
            _kill_on(S, "save_checkpoint", 3)
        _static(t, work / "static", runs_per_program=1, checkpoint_every=10)
        raise AssertionError("not killed")
    elif mode == "resume":  # and, on 3 processes, the dynamic sweep (2 children: one process owns none)
        out["static"] = _losses(_static(t, work / "static", runs_per_program=1, checkpoint_every=10))
        out["dynamic"] = _losses(_dynamic(t, work / "dynamic", runs_per_program=1))
    (work / f"out{pid}.json").write_text(json.dumps(out))


# ----------------------------------------------------------------------------------------------------------------
# helpers of the tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(argv_of, n: int, timeout: float = TIMEOUT) -> list[subprocess.CompletedProcess]:
    """Start ``n`` processes (``argv_of(i)``), wait for all (killing them all after ``timeout`` s)."""
    procs = [
        subprocess.Popen(argv_of(i), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    deadline, out = time.monotonic() + timeout, []
    try:
        for p in procs:
            so, se = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out.append(subprocess.CompletedProcess(p.args, p.returncode, so, se))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def _job(mode: str, n: int, work: Path) -> list[subprocess.CompletedProcess]:
    port = _free_port()
    return _launch(lambda i: [sys.executable, __file__, mode, str(i), str(n), str(port), str(work)], n)


def _ok(results) -> None:
    for i, r in enumerate(results):
        assert r.returncode == 0, f"process {i}: {r.stderr[-3000:]}"


def _read(work: Path, n: int) -> list[dict]:
    return [json.loads((work / f"out{i}.json").read_text()) for i in range(n)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same sweeps and fit in this (single) process. Every sweep of this file trains one run per program: each
    process compiles two training programs (fresh and restored states), not one per layout."""
    sys.path.insert(0, str(TESTS))
    import test_train_sweep as t

    work = tmp_path_factory.mktemp("one")
    return {
        "static": _losses(_static(t, work / "static", runs_per_program=1)),
        "dynamic": _losses(_dynamic(t, work / "dynamic", runs_per_program=1)),
        "fit": _fit().params,
    }


def _same(got: dict, want: dict) -> None:
    assert got["keys"] == want["keys"]
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=2e-5)


# ----------------------------------------------------------------------------------------------------------------
# tests


@pytest.mark.slow
def test_two_processes_equal_one(reference, tmp_path):
    """A static sweep (6 runs, 3 per process), a dynamic sweep (the parent on one process, its children on both)
    and a batched fit (7 problems over 2 devices of 2 processes) give one process' results on every process."""
    _ok(_job("sweeps", 2, tmp_path))
    for out in _read(tmp_path, 2):
        _same(out["static"], reference["static"])
        _same(out["dynamic"], reference["dynamic"])
        np.testing.assert_allclose(out["fit"], reference["fit"], rtol=FIT_RTOL)
    from jaxlaws.sweeps.io import read_sweep

    _same(_losses(read_sweep(tmp_path / "static" / "sweep")), reference["static"])  # process 0 assembled it
    assert len(list((tmp_path / "dynamic" / "checkpoints").iterdir())) == 1


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Process 1 of 2 SIGKILLed mid-run (JAX's heartbeat stops process 0): the work folder it leaves, the two
    processes' results and the finished runs' files with their modification times."""
    work = tmp_path_factory.mktemp("killed")
    res = _job("kill", 2, work)
    finished = {p.name: p.stat().st_mtime_ns for p in (work / "static" / "runs").iterdir()}
    left = dict(swept=(work / "static" / "sweep").exists(), resume=list((work / "static" / "resume").iterdir()))
    return work, res, finished, left  # what the kill left, read before any test restarts the job


@pytest.mark.slow
def test_a_killed_process_stops_the_job_and_leaves_its_checkpoint(killed):
    _, res, finished, left = killed
    assert res[1].returncode == -signal.SIGKILL
    assert res[0].returncode != 0  # stopped by the heartbeat (or finished its runs and failed waiting)
    assert 1 <= len(finished) < 6 and not left["swept"]
    assert left["resume"]  # the killed run's checkpoint at step 10


@pytest.mark.slow
def test_killed_job_restarted_with_three_processes_equals_one(reference, killed):
    """Restarted with 3 processes, the job skips the finished runs (their files untouched), resumes the interrupted
    one and equals one process; the 3 processes then run the dynamic sweep (a process that owns no child still
    joins), equal to one process too. (The batched fit over processes is checked with 2 processes above: the same
    padding and gathering.)"""
    work, _, finished, _ = killed
    _ok(_job("resume", 3, work))
    for out in _read(work, 3):
        _same(out["static"], reference["static"])
        _same(out["dynamic"], reference["dynamic"])
    assert all((work / "static" / "runs" / k).stat().st_mtime_ns == v for k, v in finished.items())
    assert not any((work / "static" / "resume").iterdir())


def _cli(i: int, n: int, port: int, work: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxlaws.cli",
        "sweep",
        "static",
        "--data",
        "synthetic:2",
        "--steps",
        "2",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        "--max-eval-chunks",
        "2",
        "--no-progress",
        "--out",
        str(work),
        "--distributed",
        "--coordinator",
        f"127.0.0.1:{port}",
        "--num-processes",
        str(n),
        "--process-id",
        str(i),
        "--dist-timeout",
        "30",
        *extra,
    ]


@pytest.mark.slow
def test_mismatched_arguments_fail_fast(tmp_path):
    """Processes given different mixtures stop before training, each with a one-line error naming process 1."""
    port = _free_port()
    t0 = time.monotonic()
    res = _launch(lambda i: _cli(i, 2, port, tmp_path, "--mixtures", ["0.3,0.7", "0.6,0.4"][i]), 2, 120)
    for r in res:
        assert r.returncode == 2, r.stderr[-2000:]
        assert "disagree on the sweep configuration" in r.stderr and "process(es) [1]" in r.stderr
    assert time.monotonic() - t0 < 120
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_missing_process_times_out_with_a_message(tmp_path):
    """Process 0 of 2 started alone: after --dist-timeout it exits with code 2 and says what to check."""
    res = _launch(lambda i: _cli(0, 2, _free_port(), tmp_path, "--dist-timeout", "3"), 1, 120)
    assert res[0].returncode == 2, res[0].stderr[-2000:]
    assert "did not all connect" in res[0].stderr


def test_bad_settings_are_refused_before_connecting():
    import jaxlaws.distributed as dist

    with pytest.raises(dist.DistributedError, match=r"--process-id must be in \[0, 2\)"):
        dist.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(dist.DistributedError, match="HOST:PORT"):
        dist.initialize("localhost", 2, 0)
    with pytest.raises(dist.DistributedError, match="give all of"):
        dist.initialize("127.0.0.1:1234")
    t0 = time.monotonic()
    with pytest.raises(dist.DistributedError, match="cannot reach the coordinator"):
        dist.initialize(f"127.0.0.1:{_free_port()}", 2, 1, timeout_s=1.0)  # nobody listens there
    assert time.monotonic() - t0 < 10
    import jax

    assert not jax.distributed.is_initialized()


def test_ownership_is_round_robin_and_covers_every_item():
    from jaxlaws.distributed import Cluster, owned

    items = list(range(11))
    parts = [owned(items, Cluster(i, 3)) for i in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(parts, [])) == items
    assert owned(items, Cluster(0, 1)) == items


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
