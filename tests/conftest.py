import json
from pathlib import Path

import numpy as np
import pytest

import jaxlaws

REF = Path(jaxlaws.__file__).parent / "data" / "aioli"


def law_results(rel: str) -> dict:
    return json.loads((REF / "law_results" / rel).read_text())


def dirichlet(k: int, n: int, seed: int) -> np.ndarray:
    return np.loadtxt(REF / "dirichlet_weights" / f"k_{k}_n_{n}_seed_{seed}.txt", delimiter=",")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
