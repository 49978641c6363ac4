"""Benchmark: the data pipeline of ``jaxlaws.train.data`` against a numpy baseline, in the same run.

* loading the bundled corpora (byte tokenisation of ~3.4 MB) and building synthetic languages;
* one mixture batch (B=16, L=128, m=4 bundled groups): jitted ``sample_batch`` vs the original's host-side
  recipe (``rng.choice(m, B, p=p)`` then a random window per sample, gathered with numpy);
* K=8 runs at once: ``vmap`` over (key, p) vs 8 numpy batches;
* all val chunks (``eval_chunks``) vs a Python loop over chunks.

Run: ``python benchmarks/bench_data.py``. Prints the medians and the ratios.
"""

from __future__ import annotations

import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.train import data as D

B, L, K = 16, 128, 8


def median_time(fn, reps: int = 50) -> float:
    fn()  # warm-up / compile
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def numpy_batch(rng, tokens, starts, lengths, p):
    g = rng.choice(len(p), B, p=p)
    off = rng.integers(0, lengths[g] - L)
    return tokens[(starts[g] + off)[:, None] + np.arange(L + 1)].astype(np.int32), g


def numpy_eval_chunks(groups, split):
    s, out = groups.split(split), []
    for g in range(groups.m):
        toks = s.group(g)
        for k in range((toks.size - 1) // L):
            out.append(toks[k * L : k * L + L + 1].astype(np.int32))
    return np.stack(out)


def main() -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__}, numpy {np.__version__}, "
        f"devices {jax.devices()}"
    )
    t = time.perf_counter()
    groups = D.load_groups("bundled", seq_len=L)
    print(f"load_groups('bundled'): {time.perf_counter() - t:.3f} s for {groups.train.tokens.size:,} train tokens")
    t = time.perf_counter()
    D.synthetic_groups(4, 0.5, seed=0, n_tokens=250_000)
    print(f"synthetic_groups(4, n_tokens=250k): {time.perf_counter() - t:.3f} s (incl. compile)")

    tok, st, ln = groups.train.as_jax()
    p = np.array([0.1, 0.2, 0.3, 0.4])
    one = jax.jit(D.sample_batch, static_argnums=(5, 6))
    key = jax.random.key(0)
    pj = jnp.asarray(p)
    t_jax = median_time(lambda: one(key, tok, st, ln, pj, B, L)[0].block_until_ready())
    rng = np.random.default_rng(0)
    ntok, nst, nln = groups.train.tokens, groups.train.starts, groups.train.lengths
    t_np = median_time(lambda: numpy_batch(rng, ntok, nst, nln, p))
    print(f"one batch B={B} L={L}: jax {t_jax * 1e6:.0f} us, numpy {t_np * 1e6:.0f} us, numpy/jax {t_np / t_jax:.2f}")

    P = jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(4), K))
    keys = jax.random.split(key, K)
    many = jax.jit(jax.vmap(lambda k, q: D.sample_batch(k, tok, st, ln, q, B, L)))
    t_vj = median_time(lambda: many(keys, P)[0].block_until_ready())
    Pn = np.asarray(P, np.float64)
    Pn /= Pn.sum(1, keepdims=True)
    t_vn = median_time(lambda: [numpy_batch(rng, ntok, nst, nln, q) for q in Pn])
    print(f"K={K} runs: jax vmap {t_vj * 1e6:.0f} us, numpy loop {t_vn * 1e6:.0f} us, numpy/jax {t_vn / t_vj:.2f}")

    t_e = median_time(lambda: D.eval_chunks(groups, "val", L), reps=10)
    t_en = median_time(lambda: numpy_eval_chunks(groups, "val"), reps=10)
    np.testing.assert_array_equal(D.eval_chunks(groups, "val", L)[0], numpy_eval_chunks(groups, "val"))
    print(
        f"eval_chunks(val, L={L}): {t_e * 1e3:.2f} ms, python loop {t_en * 1e3:.2f} ms, "
        f"loop/vectorised {t_en / t_e:.1f}"
    )


if __name__ == "__main__":
    main()
