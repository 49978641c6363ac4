import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

# One JAX compilation cache for the whole run -- the xdist workers and every subprocess a test starts (CLI,
# notebooks, multi-process jobs) inherit this variable -- so a program compiled once is loaded, not recompiled,
# elsewhere in the run. It is kept in the checkout (.pytest_cache/, ignored by git) for the next run: most of
# the tests' time is compilation, and a run after a small change recompiles only the programs it changed (a
# clean clone starts cold). Compiled programs are keyed on the computation, the jax/jaxlib versions, devices
# and flags: results are the same, only the compile time is saved. JAXLAWS_TESTS_COLD=1 uses a fresh folder,
# removed at exit (to time a cold run); a cache dir given by the caller is used as is. Set before jax is
# imported (it reads the variables then).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    if os.environ.get("JAXLAWS_TESTS_COLD") == "1":
        _cache = tempfile.mkdtemp(prefix="jaxlaws-tests-xla-cache-")
        atexit.register(shutil.rmtree, _cache, True)
    else:
        _cache = str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache")
        os.makedirs(_cache, exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # small ones too: a read beats a compile

# XLA's LLVM backend at optimisation level 0 (set before jax is imported; inherited by the workers and every
# subprocess): most of a cold run is XLA compiling small programs, and the tests' programs run briefly, so the
# unoptimised machine code costs less than the optimisation passes it skips (measured: 0.66-0.73x the CPU time
# of the training and fitting test files). Numerics stay IEEE float arithmetic; every tolerance and
# bit-for-bit check (a resumed run against an uninterrupted one) compares programs built with the same flags.
# JAXLAWS_TESTS_XLA_OPT=1 keeps XLA's default optimisation (as users get it).
if os.environ.get("JAXLAWS_TESTS_XLA_OPT") != "1" and "xla_backend_optimization_level" not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxlaws  # noqa: E402

REF = Path(jaxlaws.__file__).parent / "data" / "aioli"


def xla_flags(devices: int | None = None) -> str:
    """This run's ``XLA_FLAGS`` (conftest's optimisation level among them) for a subprocess, with its forced host
    device count set to ``devices`` (``None``: no forced count, i.e. one CPU device)."""
    keep = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    if devices is not None:
        keep.append(f"--xla_force_host_platform_device_count={devices}")
    return " ".join(keep)


def law_results(rel: str) -> dict:
    return json.loads((REF / "law_results" / rel).read_text())


def dirichlet(k: int, n: int, seed: int) -> np.ndarray:
    return np.loadtxt(REF / "dirichlet_weights" / f"k_{k}_n_{n}_seed_{seed}.txt", delimiter=",")


# Files that take longest (full suite, then fast tier), run first: xdist hands a worker the next file whenever it
# is nearly done (--dist loadfile, --no-loadscope-reorder in pyproject.toml: collection order, not xdist's
# most-tests-first), so a long file started last would run alone while the other workers idle.
LONGEST_FIRST = (  # the full suite's per-file test time, longest first (2 workers, cold cache, load 3-7), scaled by
    # the cold single-process (-n 0) CPU time of the files cut since (distributed 0.60x, sweep_reliability 0.60x,
    # methods_train 0.73x); test_distributed.py's processes run in parallel, so it starts early
    "test_methods_train.py",
    "test_notebooks.py",
    "test_distributed.py",
    "test_report.py",
    "test_sweep_reliability.py",
    "test_analysis_bootstrap.py",
    "test_fit_diagnostics.py",
    "test_train_sweep.py",
    "test_mixing.py",
    "test_fixed.py",
    "test_implicit.py",
    "test_fit_engine.py",
    "test_covariance.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
