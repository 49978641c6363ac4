"""Memory chunking of batched fits (``jaxlaws.fitting.execute``): a batch larger than the memory budget streams
through the same compiled program in equal chunks, and the result is the unchunked one."""

import numpy as np
import pytest

import jaxlaws as jl
from jaxlaws.fitting import execute


def _batch(n_problems: int, seed: int = 0):
    """Synthetic static-law problems (9 Dirichlet mixtures of 3 groups each), noise N(0, 0.003^2)."""
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(3), (n_problems, 9))
    t1 = rng.uniform(-2.5, -0.5, (n_problems, 1))
    y = 2.5 + np.exp(-0.5 + t1 * x[..., 0] + 0.3 * x[..., 1]) + rng.normal(0, 0.003, (n_problems, 9))
    return x, y


@pytest.fixture
def counted(monkeypatch):
    """Count the programs ``run_sharded`` launches (one per chunk) and record their batch shapes."""
    calls = []
    once = execute._run_once

    def spy(program, args, shared_inits, block=True):
        calls.append(args[1].shape[0])
        return once(program, args, shared_inits, block=block)

    monkeypatch.setattr(execute, "_run_once", spy)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False])
def test_chunked_equals_unchunked(counted, shared):
    x, y = _batch(7)
    grid = jl.laws.log_linear_inits(3, 0, own=0)[::60]  # 100 inits
    inits = grid if shared else np.stack([grid + 0.01 * b for b in range(7)])  # per-problem grids
    kw = dict(inits=inits, objective=jl.huber(0.02), dtype="float64")
    whole = jl.fit_batched(jl.laws.log_linear(3), x, y, **kw)
    assert counted == [8]  # one program; 7 problems padded to the bucket size 8 (execute.bucket)
    args = (inits, x, y)
    per = execute.bytes_per_problem(args, shared_inits=shared)
    counted.clear()
    parts = jl.fit_batched(jl.laws.log_linear(3), x, y, memory_budget=2 * per + per // 2, **kw)
    assert counted == [2, 2, 2, 2]  # 7 problems in chunks of 2, the last padded to the same shape
    # the same per-problem arithmetic in each chunk: equal up to the vector lanes' rounding
    # (the solver stops at a tolerance, and rounding can move the stop by an iteration: 1e-10 of the objective)
    np.testing.assert_allclose(parts.objective, whole.objective, rtol=1e-10, atol=0)
    # the parameters along the valley's flat direction are set only to ~sqrt(rounding): the normal equations'
    # matrix products block differently for another batch size, and 3.4e-8 relative was seen
    np.testing.assert_allclose(parts.params, whole.params, rtol=1e-6, atol=1e-10)
    # every init's own 50-step value: a rounding difference can steer a flat trajectory a little (4.5e-8 seen)
    np.testing.assert_allclose(parts.init_objectives, whole.init_objectives, rtol=1e-6)
    assert parts.params.shape == (7, 4) and parts.init_objectives.shape == (7, 100)


def test_chunk_size_follows_the_budget():
    args = (np.zeros((100, 4)), np.zeros((10, 9, 3)), np.zeros((10, 9)))
    per = execute.bytes_per_problem(args, shared_inits=True)
    assert per == 100 * (9 * (4 + 4) + 3 * 16 + 16 * 4) * 8
    assert execute.chunk_size(args, True, budget=5 * per) == 5
    assert execute.chunk_size(args, True, budget=5 * per, multiple=2) == 4
    assert execute.chunk_size(args, True, budget=per // 2) == 1  # never zero: one problem at a time
    assert execute.memory_budget() > 0


@pytest.mark.slow
def test_init_objectives_can_be_left_out(counted):
    """``init_objectives=False``: the same fits, no per-init table (chunked too), and for a linear law."""
    x, y = _batch(5)
    grid = jl.laws.log_linear_inits(3, 0, own=0)[::60]
    kw = dict(inits=grid, objective=jl.huber(0.02), dtype="float64")
    whole = jl.fit_batched(jl.laws.log_linear(3), x, y, **kw)
    padded = (np.zeros((execute.bucket(len(grid)), 4)), None, np.zeros((5, execute.bucket(x.shape[1]))))
    per = execute.bytes_per_problem(padded, shared_inits=True)  # of the padded arrays the program runs on
    lean = jl.fit_batched(jl.laws.log_linear(3), x, y, init_objectives=False, memory_budget=2 * per, **kw)
    assert lean.init_objectives.shape == (5, 0) and whole.init_objectives.shape == (5, 100)
    assert counted[-3:] == [2, 2, 2]
    np.testing.assert_allclose(lean.objective, whole.objective, rtol=1e-10)  # the stop can move an iteration
    np.testing.assert_array_equal(lean.flags, whole.flags)
    lin = jl.fit_batched(jl.laws.dynamic_linear(3), x, y, init_objectives=False)
    assert lin.init_objectives.shape == (5, 0) and np.all(np.isfinite(lin.objective))
