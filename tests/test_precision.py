"""Accelerator-ready defaults: the dtype follows the backend (float32 + float64 polish off the CPU), and the
memory budget of a batched fit follows the device's memory where jax reports it."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlaws as jl
from jaxlaws.fitting import engine, execute


def _data(seed=0, n=30):
    law = jl.laws.log_linear(3, own=0)
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3), n)
    with jax.enable_x64(True):
        y = np.asarray(law.predict(jnp.asarray([np.log(1.5), np.log(0.8), -2.0, -0.5]), jnp.asarray(p)))
    y = y + 0.005 * rng.normal(size=n)
    return law, p, y, law.init_grid(jax.random.key(seed), p, y)[:256]


def test_default_dtype_follows_the_backend(monkeypatch):
    assert engine.default_dtype() == ("float64" if jax.default_backend() == "cpu" else "float32")
    for backend, want in (("cpu", "float64"), ("gpu", "float32"), ("tpu", "float32")):
        monkeypatch.setattr(jax, "default_backend", lambda b=backend: b)
        assert engine.default_dtype() == want


@pytest.mark.slow
def test_float32_fit_polished_in_float64_reaches_the_float64_optimum():
    law, p, y, inits = _data()
    r64 = jl.fit(law, p, y, inits=inits, dtype="float64")
    r32 = jl.fit(law, p, y, inits=inits, dtype="float32", polish=0)
    pol = jl.fit(law, p, y, inits=inits, dtype="float32", polish=20)
    # unpolished float32 stops ~1e-6 away in the parameters; the polish lands on the float64 optimum
    assert np.max(np.abs(r32.params - r64.params)) > 1e-8
    np.testing.assert_allclose(pol.objective, r64.objective, rtol=1e-9)
    # parameters to the precision the objective pins them (l and b trade off along a flat valley)
    np.testing.assert_allclose(pol.params, r64.params, rtol=1e-5, atol=1e-8)
    assert pol.ok and r64.ok


@pytest.mark.slow
def test_accelerator_default_is_float32_then_polished(monkeypatch):
    """With the backend reported as a TPU, the default fit runs in float32 and is polished (same optimum)."""
    law, p, y, inits = _data(seed=1)
    r64 = jl.fit(law, p, y, inits=inits)
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    seen = []
    real = engine._polish
    monkeypatch.setattr(engine, "_polish", lambda *a, **k: seen.append(a[1]) or real(*a, **k))
    acc = jl.fit(law, p, y, inits=inits)
    assert seen == [engine.POLISH_STEPS]
    np.testing.assert_allclose(acc.objective, r64.objective, rtol=1e-9)
    np.testing.assert_allclose(acc.params, r64.params, rtol=1e-5, atol=1e-8)


def test_memory_budget_from_device_memory(monkeypatch):
    dev = types.SimpleNamespace(memory_stats=lambda: {"bytes_limit": 80 << 30, "bytes_in_use": 0})
    monkeypatch.setattr(jax, "local_devices", lambda: [dev])
    assert execute.memory_budget() == 20 << 30
    cpu = types.SimpleNamespace(memory_stats=lambda: None)
    monkeypatch.setattr(jax, "local_devices", lambda: [cpu])
    import os

    assert execute.memory_budget() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


@pytest.mark.parametrize("dtype", ["float16", "int32"])
def test_bad_dtype_is_refused(dtype):
    law, p, y, inits = _data()
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        jl.fit(law, p, y, inits=inits, dtype=dtype)


@pytest.mark.slow
def test_fit_and_standard_errors_without_scipy():
    """SciPy is not a dependency of jaxlaws (only of the dev/bench extras): a fit with its covariance and
    intervals runs in a process where importing scipy fails."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "import numpy as np, jaxlaws as jl\n"
        "rng = np.random.default_rng(0); p = rng.dirichlet([1, 1], 14)\n"
        "y = 1 + np.exp(-p[:, 0]) + 0.001 * rng.normal(size=14)\n"
        "r = jl.fit(jl.laws.log_linear(2, own=0), p, y, key=0)\n"
        "assert np.all(np.isfinite(r.stderr)); r.intervals(0.9)\n"
        "assert 'scipy' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
