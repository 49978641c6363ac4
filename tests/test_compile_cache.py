"""Fewer compilations for one-off fits: sizes padded to buckets, bound values not compiled in, and JAX's persistent
compilation cache on by default in a per-user directory (off with JAXLAWS_CACHE=0, never over a user's own)."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlaws as jl
from jaxlaws.fitting import execute


@pytest.fixture(autouse=True)
def _compiled_path(monkeypatch):
    """These tests are about the compiled program: the host run of a configuration's first fit is off
    (``tests/test_host.py`` covers it), here and in the processes they start (which inherit the variable)."""
    monkeypatch.setenv("JAXLAWS_HOST_FIRST", "0")


def test_bucket_sizes():
    assert [execute.bucket(n) for n in (1, 3, 5, 8, 9, 10, 16, 17, 33, 40, 41, 100, 240, 256, 257, 6000)] == [
        1,
        4,
        8,
        8,
        10,
        10,
        16,
        20,
        40,
        40,
        48,
        112,
        256,
        256,
        320,
        6144,
    ]
    for n in range(1, 3000):
        b = execute.bucket(n)
        assert n <= b < (1.25 * n + 1 if n > 8 else 2 * n)
        assert execute.bucket(b) == b  # a bucket size is its own bucket


def test_padding_adds_nothing_to_the_fit():
    """Padded points carry weight 0 and repeat a real point; padded inits repeat the last init."""
    inits = np.arange(2 * 9 * 3, dtype=float).reshape(2, 9, 3)
    x = np.random.default_rng(0).uniform(size=(2, 11, 2))
    y, w = x[..., 0] * 2, np.ones((2, 11))
    args, n_init = execute.pad_fit_args([inits, x, y, w, w.copy(), np.zeros((2, 3))], shared_inits=False)
    pi, px, py, pw, pwv, lo = args
    assert n_init == 9 and pi.shape == (2, 10, 3) and px.shape == (2, 12, 2) and lo.shape == (2, 3)
    np.testing.assert_array_equal(pi[:, 9], inits[:, 8])
    np.testing.assert_array_equal(px[:, 11], x[:, 10])
    assert np.all(pw[:, 11] == 0) and np.all(pwv[:, 11] == 0) and np.all(pw[:, :11] == 1)


def _law():
    return jl.laws.Law("sat", ("c", "a", "k"), lambda t, x: t[0] + t[1] * jnp.exp(-t[2] * x[:, 0]), x_dim=1)


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 4, n))
    return x, 1.0 + 2.0 * np.exp(-0.7 * x) + 0.01 * rng.standard_normal(n)


@pytest.mark.slow
def test_new_sizes_and_bound_values_reuse_the_compiled_fit(caplog):
    """Fits of 33 and 35 points (one bucket), with other bound values and 4 inits instead of 3 (one
    bucket), run the program the first fit compiled; every fit still matches SciPy's least squares."""
    from scipy import optimize

    law = _law()
    inits = np.array([[0.5, 1.0, 0.3], [2.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
    more = np.vstack([inits, [[1.5, 1.5, 0.5]]])  # 4 inits: the bucket of 3
    calls = [(33, inits, {"k": (0.0, 5.0)}), (35, inits, {"k": (0.1, 3.0)}), (35, more, {"k": (0.1, 3.0)})]
    jax.config.update("jax_log_compiles", True)
    try:
        for i, (n, ini, box) in enumerate(calls):
            caplog.clear()
            with caplog.at_level(logging.DEBUG):
                res = jl.fit(law, *_data(n), inits=ini, bounds=box)
            compiled = [r.getMessage() for r in caplog.records if "Compiling jit(one_problem" in r.getMessage()]
            assert len(compiled) == (1 if i == 0 else 0), compiled
            x, y = _data(n)
            ref = min(
                (optimize.least_squares(lambda t: y - t[0] - t[1] * np.exp(-t[2] * x), t0, method="lm") for t0 in ini),
                key=lambda o: o.cost,
            )
            assert box["k"][0] < ref.x[2] < box["k"][1]
            np.testing.assert_allclose(res.params, ref.x, rtol=1e-6)
            assert res.ok and res.init_objectives.shape == (len(ini),)
    finally:
        jax.config.update("jax_log_compiles", False)


_PROBE = textwrap.dedent("""
    import json, jax, numpy as np, jax.numpy as jnp
    from jax import monitoring
    hits = []
    monitoring.register_event_listener(lambda name, **kw: hits.append(name))
    import jaxlaws as jl
    law = jl.laws.Law("sat", ("c", "a", "k"), lambda t, x: t[0] + t[1] * jnp.exp(-t[2] * x[:, 0]), x_dim=1)
    x = np.linspace(0, 4, 12)
    res = jl.fit(law, x, 1 + 2 * np.exp(-0.7 * x), inits=np.array([[0.5, 1.0, 0.3]]))
    print(json.dumps(dict(cache=jl.COMPILATION_CACHE, config=jax.config.jax_compilation_cache_dir,
                          hits=hits.count("/jax/compilation_cache/cache_hits"), ok=bool(res.ok))))
""")


def _probe(env_update: dict) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAX_COMPILATION_CACHE_DIR", "JAXLAWS_CACHE", "JAXLAWS_CACHE_DIR")
    }
    env.update(env_update)
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_persistent_cache_on_by_default_and_reused_by_a_new_process(tmp_path):
    cache = str(tmp_path / "jaxlaws-cache")
    first = _probe({"JAXLAWS_CACHE_DIR": cache})
    assert first["cache"] == cache and first["config"] == cache and first["ok"]
    assert os.listdir(cache), "nothing was written to the persistent cache"
    second = _probe({"JAXLAWS_CACHE_DIR": cache})
    assert second["hits"] > first["hits"] and second["ok"]


@pytest.mark.slow
def test_persistent_cache_opt_out_and_users_own_config_left_alone(tmp_path):
    off = _probe({"JAXLAWS_CACHE": "0", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert off["cache"] is None and off["config"] is None
    assert not (tmp_path / "xdg").exists()
    mine = str(tmp_path / "users-own")
    own = _probe({"JAX_COMPILATION_CACHE_DIR": mine, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert own["cache"] is None and own["config"] == mine and not (tmp_path / "xdg").exists()
    default = _probe({"XDG_CACHE_HOME": str(tmp_path / "xdg")})  # the per-user default location
    assert default["cache"] == str(tmp_path / "xdg" / "jaxlaws" / "jax") == default["config"]
