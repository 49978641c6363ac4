import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

# One JAX compilation cache for the whole run -- the xdist workers and every subprocess a test starts (CLI,
# notebooks, multi-process jobs) inherit this variable -- so a program compiled once is loaded, not recompiled,
# elsewhere in the run. Compiled programs are keyed on the computation, devices and flags: results are the
# same, only the compile time is saved. Set before jax is imported (it reads the variables then); removed
# when the process that made it exits. A cache dir given by the caller is used as is.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxlaws-tests-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    atexit.register(shutil.rmtree, _cache, True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jaxlaws  # noqa: E402

REF = Path(jaxlaws.__file__).parent / "data" / "aioli"


def law_results(rel: str) -> dict:
    return json.loads((REF / "law_results" / rel).read_text())


def dirichlet(k: int, n: int, seed: int) -> np.ndarray:
    return np.loadtxt(REF / "dirichlet_weights" / f"k_{k}_n_{n}_seed_{seed}.txt", delimiter=",")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
