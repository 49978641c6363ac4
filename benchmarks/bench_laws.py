r"""Benchmark: published scaling laws (4-15 parameters) fitted by jaxlaws' defaults and by SciPy, same starts.

Each law is written once, backend-agnostically (``predict(p, x, xp)`` with ``xp`` NumPy or ``jax.numpy``), and
becomes a plain :class:`jaxlaws.laws.Law` (what a user writes from the README) and a SciPy residual. Data: the
public Chinchilla points (Hoffmann et al. 2022, Fig. 4, as extracted by Epoch) where a law was fitted to them;
every other law is **synthetic**: points drawn from the law at published (or, where marked ``approx.``,
published-magnitude) parameters, plus Gaussian noise from a per-law seed. The points at the largest scale
(top 20% of the first input column) are held out: the held-out error is their RMSE.

Compared from the **same 32 starts** (seeded uniform draws in a per-law box, inside the bounds of a bounded
law), all minimising least squares :math:`\tfrac12\sum_n r_n^2`, :math:`r = y - f(x)`:

* jaxlaws: ``jl.fit(law, x, y, inits=starts)`` -- the defaults (objective, solver, bounds = the law's
  ``default_bounds``); the law declares no objective.
* SciPy ``minimize(method="L-BFGS-B")`` (with the bounds, if any) and ``least_squares`` (``trf`` with the
  bounds, ``lm`` without), each at SciPy's default tolerances, over the 32 starts one after the other.
  SciPy gets an exact Jacobian at the cost of one vectorised complex-step evaluation
  (:math:`J_{:k} = \operatorname{Im} r(\theta + i h e_k)/h`), stronger than its default finite differences.

Every objective and held-out error is recomputed here in float64 NumPy from the returned parameters.
Times: **warm** (jaxlaws' third and fourth calls in this process, the best: the first runs on the host, the
second compiles; SciPy's run) and **cold**: the fit call in a fresh process (``--worker``), for jaxlaws without
the persistent compilation cache, with it empty (first process) and with it warm (a second process, same cache
directory) -- all three the host run of a first fit -- and, as before that existed, compiling its first fit
(``JAXLAWS_HOST_FIRST=0``, no cache); imports are timed apart. Without the cache, with it warm, and SciPy's
``least_squares``: the median of :data:`COLD_REPEATS` fresh processes each.

Run: ``python benchmarks/bench_laws.py [--laws a,b] [--no-cold] [--out benchmarks/results/laws.md]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_STARTS = 32
HOLD_FRACTION = 0.2
LN10 = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class Case:
    """One scaling law, its data and its starts."""

    name: str
    source: str  # the paper the form (and parameters) come from
    params: tuple[str, ...]
    predict: Callable  # (p: list of P arrays, x (n, d), xp) -> (n,) (broadcasts over p)
    truth: tuple[float, ...] | None  # generating parameters (synthetic data); None for public data
    sample: Callable | None  # rng -> x (n, d)
    noise: float  # noise sd (synthetic)
    start_box: tuple[tuple[float, float], ...]
    bounds: dict | None = None  # {name: (lo, hi)}: the law's default_bounds
    x_kind: str = "positive"
    data: str = "synthetic"
    seed: int = 0


def _col(x, j):
    return x[..., j]


def chinchilla(p, x, xp):
    E, a, alpha, b, beta = p
    return E + xp.exp(a - alpha * xp.log(_col(x, 0))) + xp.exp(b - beta * xp.log(_col(x, 1)))


def kaplan(p, x, xp):  # Kaplan et al. 2020 eq. 1.5: [(Nc/N)^(aN/aD) + Dc/D]^aD, Nc = 10^lnc, Dc = 10^ldc
    lnc, ldc, an, ad = p
    u = xp.exp((an / ad) * LN10 * (lnc - xp.log10(_col(x, 0)))) + xp.exp(LN10 * (ldc - xp.log10(_col(x, 1))))
    return xp.exp(ad * xp.log(u))


def muennighoff(p, x, xp):  # Muennighoff et al. 2023 (data-constrained): x = (U_N, R_N, U_D, R_D)
    E, A, alpha, B, beta, rd, rn = p
    un, rn_x, ud, rd_x = (_col(x, j) for j in range(4))
    d_eff = ud + ud * rd * (1 - xp.exp(-rd_x / rd))
    n_eff = un + un * rn * (1 - xp.exp(-rn_x / rn))
    return E + A * xp.exp(-alpha * xp.log(n_eff)) + B * xp.exp(-beta * xp.log(d_eff))


def broken_power(p, x, xp):  # Caballero et al. 2023, two breaks; d_i = 10^ld_i
    a, b, c0, c1, ld1, f1, c2, ld2, f2 = p
    lx = xp.log(_col(x, 0))
    br = lambda c, ld, f: -c * f * xp.log1p(xp.exp((lx - LN10 * ld) / f))  # noqa: E731
    return a + b * xp.exp(-c0 * lx + br(c1, ld1, f1) + br(c2, ld2, f2))


def lr_law(p, x, xp):  # Chinchilla + C (ln lr - ln lr*(N))^2 with ln lr* = k0 - k1 ln N
    E, A, alpha, B, beta, C, k0, k1 = p
    ln_n, ln_d, ln_lr = xp.log(_col(x, 0)), xp.log(_col(x, 1)), xp.log(_col(x, 2))
    return E + A * xp.exp(-alpha * ln_n) + B * xp.exp(-beta * ln_d) + C * (ln_lr - k0 + k1 * ln_n) ** 2


def clark_moe(p, x, xp):  # Clark et al. 2022: log L = a log N + b log E^ + c log N log E^ + d, saturating E^
    a, b, c, d, es, em = p
    n, e = _col(x, 0), _col(x, 1)
    e_hat = 1.0 / (1.0 / (e - 1 + 1.0 / (1.0 / es - 1.0 / em)) + 1.0 / em)
    ln_n, ln_e = xp.log(n), xp.log(e_hat)
    return xp.exp(a * ln_n + b * ln_e + c * ln_n * ln_e + d)


def krajewski(p, x, xp):  # Krajewski et al. 2024 (fine-grained MoE): c + (g / G^gamma + a) / N^alpha + b / D^beta
    a, alpha, b, beta, g, gamma, c = p
    n, d, gr = _col(x, 0), _col(x, 1), _col(x, 2)
    return c + (g * xp.exp(-gamma * xp.log(gr)) + a) * xp.exp(-alpha * xp.log(n)) + b * xp.exp(-beta * xp.log(d))


def parscale(p, x, xp):  # Chen et al. 2025 (ParScale): (A / (N (k ln P + 1)))^alpha + E, A = 10^la
    la, k, alpha, E = p
    n, par = _col(x, 0), _col(x, 1)
    return xp.exp(alpha * (LN10 * la - xp.log(n) - xp.log(k * xp.log(par) + 1))) + E


def precision(p, x, xp):  # Kumar et al. 2024: A N_eff^-alpha + B D^-beta + E, N_eff = N prod (1 - e^(-P_i/gamma_i))
    A, alpha, B, beta, E, gw, ga, gkv = p
    n, d, pw, pa, pkv = (_col(x, j) for j in range(5))
    ln_eff = xp.log(n) + xp.log(1 - xp.exp(-pw / gw)) + xp.log(1 - xp.exp(-pa / ga)) + xp.log(1 - xp.exp(-pkv / gkv))
    return A * xp.exp(-alpha * ln_eff) + B * xp.exp(-beta * xp.log(d)) + E


def sparsity(p, x, xp):  # Frantar et al. 2023: (aS (1-S)^bS + cS) N^-bN + (aD / D)^bD + c, aD = 10^laD
    a_s, b_s, c_s, b_n, la_d, b_d, c = p
    s, n, d = _col(x, 0), _col(x, 1), _col(x, 2)
    return (
        (a_s * xp.exp(b_s * xp.log(1 - s)) + c_s) * xp.exp(-b_n * xp.log(n))
        + xp.exp(b_d * (LN10 * la_d - xp.log(d)))
        + c
    )


def vocabulary(p, x, xp):  # Tao et al. 2024: -E + A1 / Nnv^a1 + A2 / Nv^a2 + B / D^b (N, D in millions here)
    E, A1, a1, A2, a2, B, b = p
    nnv, nv, d = _col(x, 0), _col(x, 1), _col(x, 2)
    return -E + A1 * xp.exp(-a1 * xp.log(nnv)) + A2 * xp.exp(-a2 * xp.log(nv)) + B * xp.exp(-b * xp.log(d))


def issue_law(p, x, xp):  # bias + A (N/1e9)^-a ((1 + B E^g) / (1 + B))^-b
    bias, A, a, B, g, b = p
    n, e = _col(x, 0), _col(x, 1)
    return bias + A * xp.exp(-a * xp.log(n / 1e9) - b * (xp.log1p(B * xp.exp(g * xp.log(e))) - xp.log1p(B)))


def multidomain(p, x, xp):  # per domain k (one-hot x[:, 2:6]): E_k + e^(a_k - alpha ln N) + e^(b_k - beta ln D)
    E, a, b = p[0:4], p[4:8], p[8:12]
    alpha, beta = p[12], p[13]
    oh = [_col(x, 2 + k) for k in range(4)]
    pick = lambda v: sum(o * vk for o, vk in zip(oh, v))  # noqa: E731
    ln_n, ln_d = xp.log(_col(x, 0)), xp.log(_col(x, 1))
    return pick(E) + pick([xp.exp(ak - alpha * ln_n) for ak in a]) + pick([xp.exp(bk - beta * ln_d) for bk in b])


def annealing(p, x, xp):  # Tissue et al. 2024: L0 + A S1^-alpha - C S2 (S1: LR area, S2: annealing area)
    L0, A, alpha, C = p
    return L0 + A * xp.exp(-alpha * xp.log(_col(x, 0))) - C * _col(x, 1)


# ------------------------------------------------------------------------------------------------ samplers
def _log_uniform(rng, lo, hi, n):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def _sample_nd(n, nlo=1e7, nhi=1e10, tok=(5, 200)):
    def f(rng):
        N = _log_uniform(rng, nlo, nhi, n)
        return np.column_stack([N, N * _log_uniform(rng, *tok, n)])

    return f


def _sample_muennighoff(rng):
    n = 120
    N = _log_uniform(rng, 1e7, 9e9, n)
    U_D = _log_uniform(rng, 1e8, 1e11, n)
    D = U_D * rng.choice([1, 2, 4, 8, 16, 32, 60], n)
    U_N = np.minimum(N, U_D / 20.0)  # parameters a compute-optimal model of U_D would use
    return np.column_stack([U_N, N / U_N - 1.0, U_D, D / U_D - 1.0])


def _sample_lr(rng):
    x = _sample_nd(120, 1e7, 3e9)(rng)
    return np.column_stack([x, _log_uniform(rng, 1e-4, 3e-2, len(x))])


def _sample_moe(rng):
    n = 90
    return np.column_stack([_log_uniform(rng, 0.015, 1.3, n), rng.choice([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], n)])


def _sample_krajewski(rng):
    x = _sample_nd(100, 1e8, 1e10)(rng)
    return np.column_stack([x, rng.choice([1, 2, 4, 8, 16, 32], len(x))])


def _sample_parscale(rng):
    n = 48
    return np.column_stack([_log_uniform(rng, 5e8, 5e9, n), rng.choice([1, 2, 4, 8], n)])


def _sample_precision(rng):
    x = _sample_nd(150, 3e7, 3e9)(rng)
    bits = lambda: rng.choice(np.arange(3, 17), len(x)).astype(float)  # noqa: E731
    return np.column_stack([x, bits(), bits(), bits()])


def _sample_sparsity(rng):
    x = _sample_nd(100, 1e7, 1e9)(rng)
    return np.column_stack([rng.choice([0.0, 0.5, 0.75, 0.875], len(x)), x])


def _sample_vocab(rng):
    n = 100
    nnv = _log_uniform(rng, 30, 3000, n)
    return np.column_stack([nnv, _log_uniform(rng, 3, 300, n), nnv * _log_uniform(rng, 5, 100, n)])


def _sample_issue(rng):
    n = 80
    return np.column_stack([_log_uniform(rng, 1e8, 3e10, n), rng.choice([1, 2, 4, 8, 16, 32, 64], n)])


def _sample_multidomain(rng):
    x = _sample_nd(160, 1e7, 1e10)(rng)
    k = rng.integers(0, 4, len(x))
    return np.column_stack([x, np.eye(4)[k]])


def _sample_annealing(rng):
    """(S1, S2) of cosine / WSD / constant schedules at many steps (peak LR 1, so S1 is in steps), lambda 0.999."""
    rows = []
    for kind in ("cosine", "wsd", "constant"):
        total = 20000
        t = np.arange(total)
        lr = {
            "cosine": 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / total)),
            "wsd": np.where(t < 0.8 * total, 1.0, 1.0 - 0.9 * (t - 0.8 * total) / (0.2 * total)),
            "constant": np.ones(total),
        }[kind]
        drop = np.concatenate([[0.0], lr[:-1] - lr[1:]])  # eta_{k-1} - eta_k
        m = np.zeros(total)  # momentum of the drops, decay 0.999
        acc = 0.0
        for i in range(total):
            acc = 0.999 * acc + drop[i]
            m[i] = acc
        s1, s2 = np.cumsum(lr), np.cumsum(m)
        for s in rng.choice(np.arange(500, total), 30, replace=False):
            rows.append((s1[s], s2[s]))
    return np.asarray(rows)


CASES = [
    Case(
        "chinchilla",
        "Hoffmann et al. 2022 (public points)",
        ("E", "a", "alpha", "b", "beta"),
        chinchilla,
        None,
        None,
        0.0,
        ((1.0, 2.5), (2.0, 9.0), (0.1, 0.6), (2.0, 9.0), (0.1, 0.6)),
        data="public",
    ),
    Case(
        "kaplan",
        "Kaplan et al. 2020, eq. 1.5",
        ("log10_Nc", "log10_Dc", "alpha_N", "alpha_D"),
        kaplan,
        (13.94, 13.73, 0.076, 0.095),
        _sample_nd(80),
        0.01,
        ((12.0, 15.0), (12.0, 15.0), (0.03, 0.2), (0.03, 0.2)),
        seed=1,
    ),
    Case(
        "muennighoff",
        "Muennighoff et al. 2023 (data-constrained)",
        ("E", "A", "alpha", "B", "beta", "R_D", "R_N"),
        muennighoff,
        (1.87, 406.4, 0.34, 410.7, 0.28, 15.4, 5.3),
        _sample_muennighoff,
        0.01,
        ((1.0, 3.0), (50.0, 1000.0), (0.1, 0.6), (50.0, 1000.0), (0.1, 0.6), (1.0, 50.0), (1.0, 50.0)),
        bounds={"R_D": (0.1, 100.0), "R_N": (0.1, 100.0), "alpha": (0.0, 1.0), "beta": (0.0, 1.0)},
        x_kind="free",
        seed=2,
    ),
    Case(
        "broken_power",
        "Caballero et al. 2023 (two breaks)",
        ("a", "b", "c0", "c1", "log10_d1", "f1", "c2", "log10_d2", "f2"),
        broken_power,
        (0.5, 2.0, 0.1, 0.4, 2.0, 0.3, -0.3, 4.0, 0.5),
        lambda rng: _log_uniform(rng, 1.0, 1e6, 120)[:, None],
        0.005,
        ((0.0, 1.0), (0.5, 4.0), (0.0, 0.5), (0.0, 1.0), (0.5, 3.0), (0.1, 1.0), (-1.0, 0.5), (3.0, 5.5), (0.1, 1.0)),
        bounds={
            "c0": (-2.0, 2.0),
            "c1": (-2.0, 2.0),
            "c2": (-2.0, 2.0),
            "log10_d1": (0.0, 6.0),
            "log10_d2": (0.0, 6.0),
            "f1": (0.05, 2.0),
            "f2": (0.05, 2.0),
        },
        seed=3,
    ),
    Case(
        "lr_law",
        "Chinchilla + quadratic in log LR (approx.; LR optimum as in DeepSeek LLM 2024)",
        ("E", "A", "alpha", "B", "beta", "C", "k0", "k1"),
        lr_law,
        (1.69, 406.4, 0.34, 410.7, 0.28, 0.02, -1.72, 0.25),
        _sample_lr,
        0.01,
        ((1.0, 3.0), (50.0, 1000.0), (0.1, 0.6), (50.0, 1000.0), (0.1, 0.6), (0.001, 0.1), (-4.0, 0.0), (0.0, 0.5)),
        seed=4,
    ),
    Case(
        "clark_moe",
        "Clark et al. 2022 (routed LMs, S-BASE; approx.)",
        ("a", "b", "c", "d", "E_start", "E_max"),
        clark_moe,
        (-0.082, -0.108, 0.009, 1.104, 1.847, 314.1),
        _sample_moe,
        0.01,
        ((-0.2, 0.0), (-0.3, 0.0), (-0.05, 0.05), (0.5, 1.5), (1.0, 10.0), (50.0, 1000.0)),
        bounds={"E_start": (1.0, 20.0), "E_max": (30.0, 3000.0)},
        seed=5,
    ),
    Case(
        "krajewski",
        "Krajewski et al. 2024 (fine-grained MoE)",
        ("a", "alpha", "b", "beta", "g", "gamma", "c"),
        krajewski,
        (18.1, 0.115, 30.8, 0.147, 2.1, 0.58, 0.47),
        _sample_krajewski,
        0.01,
        ((5.0, 40.0), (0.05, 0.3), (5.0, 60.0), (0.05, 0.3), (0.5, 5.0), (0.2, 1.0), (0.0, 1.0)),
        seed=6,
    ),
    Case(
        "parscale",
        "Chen et al. 2025 (ParScale; approx.)",
        ("log10_A", "k", "alpha", "E"),
        parscale,
        (8.2, 0.39, 0.19, 1.0),
        _sample_parscale,
        0.005,
        ((7.0, 9.5), (0.1, 1.0), (0.05, 0.4), (0.5, 1.5)),
        bounds={"k": (0.0, 5.0)},
        seed=7,
    ),
    Case(
        "precision",
        "Kumar et al. 2024 (precision; gammas as reported, Chinchilla part from Hoffmann et al.)",
        ("A", "alpha", "B", "beta", "E", "gamma_w", "gamma_a", "gamma_kv"),
        precision,
        (406.4, 0.34, 410.7, 0.28, 1.69, 2.67, 2.2, 0.96),
        _sample_precision,
        0.01,
        ((50.0, 1000.0), (0.1, 0.6), (50.0, 1000.0), (0.1, 0.6), (1.0, 3.0), (0.5, 5.0), (0.5, 5.0), (0.5, 5.0)),
        bounds={"gamma_w": (0.1, 10.0), "gamma_a": (0.1, 10.0), "gamma_kv": (0.1, 10.0)},
        seed=8,
    ),
    Case(
        "sparsity",
        "Frantar et al. 2023 (sparsely-connected; approx.)",
        ("a_S", "b_S", "c_S", "b_N", "log10_a_D", "b_D", "c"),
        sparsity,
        (60.0, 0.4, 20.0, 0.2, 6.0, 0.3, 1.5),
        _sample_sparsity,
        0.01,
        ((10.0, 100.0), (0.1, 1.0), (5.0, 50.0), (0.1, 0.4), (4.0, 8.0), (0.1, 0.6), (0.5, 2.5)),
        x_kind="free",
        seed=9,
    ),
    Case(
        "vocabulary",
        "Tao et al. 2024 (vocabulary; N, D in millions)",
        ("E", "A1", "a1", "A2", "a2", "B", "b"),
        vocabulary,
        (5.533, 1.831, 0.447, 0.196, 0.671, 2.124, 0.372),
        _sample_vocab,
        0.005,
        ((4.0, 7.0), (0.5, 4.0), (0.2, 0.8), (0.05, 1.0), (0.2, 1.0), (0.5, 4.0), (0.1, 0.8)),
        seed=10,
    ),
    Case(
        "issue_bounded",
        "bias + A (N/1e9)^-a ((1 + B E^g)/(1 + B))^-b",
        ("bias", "A", "a", "B", "g", "b"),
        issue_law,
        (1.5, 1.2, 0.3, 2.5, 0.7, 0.25),
        _sample_issue,
        0.02,
        ((0.5, 2.5), (0.2, 3.0), (0.05, 1.0), (0.1, 5.0), (0.1, 1.5), (0.05, 1.0)),
        bounds={
            "bias": (0.0, 5.0),
            "A": (0.0, 10.0),
            "a": (0.0, 2.0),
            "B": (0.0, 5.0),
            "g": (0.0, 2.0),
            "b": (0.0, 2.0),
        },
        seed=11,
    ),
    Case(
        "multidomain",
        "Chinchilla per domain, shared exponents (4 domains)",
        tuple(f"E{k}" for k in range(4))
        + tuple(f"a{k}" for k in range(4))
        + tuple(f"b{k}" for k in range(4))
        + ("alpha", "beta"),
        multidomain,
        (1.7, 1.9, 2.1, 1.5, 6.0, 6.3, 5.8, 6.1, 6.0, 6.2, 5.9, 6.4, 0.34, 0.28),
        _sample_multidomain,
        0.01,
        ((1.0, 3.0),) * 4 + ((3.0, 9.0),) * 8 + ((0.1, 0.6), (0.1, 0.6)),
        x_kind="free",
        seed=12,
    ),
    Case(
        "annealing",
        "Tissue et al. 2024 (LR annealing; approx.)",
        ("L0", "A", "alpha", "C"),
        annealing,
        (2.8, 4.0, 0.5, 2e-4),
        _sample_annealing,
        0.005,
        ((2.0, 4.0), (0.5, 10.0), (0.2, 0.9), (0.0, 1e-3)),
        x_kind="free",
        seed=13,
    ),
]
BY_NAME = {c.name: c for c in CASES}


# ------------------------------------------------------------------------------------------------ problems
@dataclasses.dataclass
class Problem:
    case: Case
    x: np.ndarray
    y: np.ndarray
    fit: np.ndarray  # bool mask of fitting points
    starts: np.ndarray  # (32, P)


def problem(case: Case) -> Problem:
    rng = np.random.default_rng(case.seed)
    if case.data == "public":
        sys.path.insert(0, str(HERE))
        from public.chinchilla import load_chinchilla

        ch = load_chinchilla()
        x, y = ch.x, ch.y
    else:
        x = np.asarray(case.sample(rng), np.float64)
        clean = case.predict(list(case.truth), x, np)
        y = clean + case.noise * rng.standard_normal(len(x))
    cut = np.quantile(x[:, 0 if case.name != "sparsity" else 1], 1 - HOLD_FRACTION)
    scale_col = x[:, 0 if case.name != "sparsity" else 1]
    fit = scale_col < cut if np.any(scale_col < cut) else np.ones(len(x), bool)
    lo, hi = np.array(case.start_box).T
    starts = lo + (hi - lo) * np.random.default_rng(1000 + case.seed).uniform(size=(N_STARTS, len(lo)))
    return Problem(case, x, y, fit, starts)


def bounds_arrays(case: Case):
    lo = np.full(len(case.params), -np.inf)
    hi = np.full(len(case.params), np.inf)
    for k, (a, b) in (case.bounds or {}).items():
        j = case.params.index(k)
        lo[j], hi[j] = a, b
    return lo, hi


def sse_half(case: Case, theta, x, y) -> float:
    with np.errstate(all="ignore"):
        r = y - case.predict(list(np.asarray(theta, np.float64)), x, np)
    v = 0.5 * float(np.sum(r * r))
    return v if np.isfinite(v) else math.inf


def heldout_rmse(case: Case, theta, pr: Problem) -> float:
    test = ~pr.fit
    if not test.any():
        return math.nan
    with np.errstate(all="ignore"):
        r = pr.y[test] - case.predict(list(np.asarray(theta, np.float64)), pr.x[test], np)
    return float(np.sqrt(np.mean(r * r)))


# ------------------------------------------------------------------------------------------------ engines
def jax_law(case: Case, starts: np.ndarray):
    import jax.numpy as jnp

    import jaxlaws as jl

    def predict(params, x):
        return case.predict([params[..., j] for j in range(len(case.params))], x, jnp)

    return jl.laws.Law(
        name=case.name,
        param_names=case.params,
        predict=predict,
        x_dim=starts_x_dim(case),
        x_kind=case.x_kind,
        init_grid=lambda key, x, y: starts,
        default_bounds=case.bounds,
    )


def starts_x_dim(case: Case) -> int:
    return problem(case).x.shape[1]


_LAWS: dict = {}


def run_jax(pr: Problem):
    import jaxlaws as jl

    if pr.case.name not in _LAWS:  # one Law per case: a warm call reuses its compiled program
        _LAWS[pr.case.name] = jax_law(pr.case, pr.starts)
    law = _LAWS[pr.case.name]
    xf, yf = pr.x[pr.fit], pr.y[pr.fit]
    t0 = time.perf_counter()
    res = jl.fit(law, xf, yf, inits=pr.starts, throw=False)
    return res, time.perf_counter() - t0


def _residual_and_jac(case: Case, x, y):
    P = len(case.params)
    h = 1e-30

    def res(theta):
        with np.errstate(all="ignore"):
            return y - case.predict(list(theta), x, np)

    def jac(theta):
        t = theta[None, :] + 1j * h * np.eye(P)  # (P, P): row k perturbs parameter k
        with np.errstate(all="ignore"):
            r = y[None, :] - case.predict([t[:, j : j + 1] for j in range(P)], x[None], np)
        return np.imag(r).T / h  # (n, P)

    return res, jac


def run_scipy(pr: Problem, method: str):
    """Multi-start SciPy over the 32 starts: ``"lbfgsb"`` or ``"least_squares"`` (trf bounded, lm unbounded)."""
    from scipy import optimize

    case = pr.case
    x, y = pr.x[pr.fit], pr.y[pr.fit]
    res_fn, jac_fn = _residual_and_jac(case, x, y)
    lo, hi = bounds_arrays(case)
    bounded = case.bounds is not None
    best_t, best_f = None, math.inf
    t0 = time.perf_counter()
    for theta0 in pr.starts:
        try:
            if method == "lbfgsb":

                def fg(t):
                    r = res_fn(t)
                    v = 0.5 * float(r @ r)
                    if not np.isfinite(v):
                        return np.inf, np.zeros_like(t)
                    return v, jac_fn(t).T @ r

                out = optimize.minimize(
                    fg, theta0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)) if bounded else None
                )
            else:
                if not np.all(np.isfinite(res_fn(theta0))):
                    continue
                out = optimize.least_squares(
                    res_fn,
                    theta0,
                    jac=jac_fn,
                    method="trf" if bounded else "lm",
                    bounds=(lo, hi) if bounded else (-np.inf, np.inf),
                )
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            continue
        f = sse_half(case, out.x, x, y)
        if f < best_f:
            best_t, best_f = out.x, f
    return best_t, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ worker
def worker(name: str, engine: str) -> dict:
    """One cold fit in this (fresh) process: import times and the first fit call's time."""
    t0 = time.perf_counter()
    if engine == "jax":
        import jax  # noqa: F401

        import jaxlaws  # noqa: F401
    else:
        from scipy import optimize  # noqa: F401
    t_import = time.perf_counter() - t0
    pr = problem(BY_NAME[name])
    if engine == "jax":
        res, dt = run_jax(pr)
        theta = res.params
    else:
        theta, dt = run_scipy(pr, engine)
    return dict(
        import_s=t_import,
        fit_s=dt,
        objective=sse_half(pr.case, theta, pr.x[pr.fit], pr.y[pr.fit]) if theta is not None else math.inf,
    )


def spawn(name: str, engine: str, cache: str | None, host: bool = True) -> dict:
    """``worker`` in a fresh interpreter. ``cache``: None = persistent cache off (``JAXLAWS_CACHE=0``), else its
    directory (``JAXLAWS_CACHE_DIR``); ``host=False``: the first fit compiles (``JAXLAWS_HOST_FIRST=0``)."""
    env = dict(os.environ)
    env["JAXLAWS_HOST_FIRST"] = "1" if host else "0"
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if cache is None:
        env["JAXLAWS_CACHE"] = "0"
    else:
        env["JAXLAWS_CACHE_DIR"] = cache
        env.pop("JAXLAWS_CACHE", None)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--engine", engine],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ main
#: fresh processes per cold timing (jaxlaws without and with the cache warm, SciPy's least_squares): the median
#: is reported, as one process's time of a 20-200 ms call moves by +-30 % on a shared machine
COLD_REPEATS = 3


def _median_of(run: Callable[[], dict], n: int) -> dict:
    """The run (a fresh process's ``worker`` result) whose fit time is the median of ``n``, its times listed."""
    runs = sorted((run() for _ in range(n)), key=lambda r: r["fit_s"])
    return {**runs[len(runs) // 2], "fit_s_all": [r["fit_s"] for r in runs]}


def measure(case: Case, cold: bool, cache_root: str) -> dict:
    pr = problem(case)
    row = dict(
        law=case.name,
        source=case.source,
        data=case.data,
        P=len(case.params),
        n_fit=int(pr.fit.sum()),
        n_heldout=int((~pr.fit).sum()),
        bounded=case.bounds is not None,
    )
    xf, yf = pr.x[pr.fit], pr.y[pr.fit]
    _, first = run_jax(pr)  # the first fit of this configuration in the process: on the host, nothing compiled
    _, compiling = run_jax(pr)  # the next one compiles
    res, warm = run_jax(pr)
    _, warm2 = run_jax(pr)
    row["jax"] = dict(
        objective=sse_half(case, res.params, xf, yf),
        heldout=heldout_rmse(case, res.params, pr),
        warm_s=min(warm, warm2),
        first_in_process_s=first,
        compiling_s=compiling,
        flags=list(res.flags),
        at_bound=[case.params[j] for j in np.flatnonzero(np.asarray(res.at_bound))] if res.bounds is not None else [],
        params=np.asarray(res.params).tolist(),
    )
    for m in ("lbfgsb", "least_squares"):
        theta, dt = run_scipy(pr, m)
        row[m] = dict(
            objective=sse_half(case, theta, xf, yf) if theta is not None else math.inf,
            heldout=heldout_rmse(case, theta, pr) if theta is not None else math.nan,
            warm_s=dt,
            params=None if theta is None else np.asarray(theta).tolist(),
        )
    if cold:
        d = tempfile.mkdtemp(dir=cache_root)
        row["cold"] = dict(
            jax_nocache=_median_of(lambda: spawn(case.name, "jax", None), COLD_REPEATS),
            jax_compiled_nocache=spawn(case.name, "jax", None, host=False),
            jax_cache_empty=spawn(case.name, "jax", d),
            jax_cache_warm=_median_of(lambda: spawn(case.name, "jax", d), COLD_REPEATS),
            least_squares=_median_of(lambda: spawn(case.name, "least_squares", None), COLD_REPEATS),
        )
    return row


def _fmt_t(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def report(rows: list[dict], load: tuple, total_s: float) -> str:
    lines = [
        "# Published scaling laws: jaxlaws' default fit vs SciPy from the same 32 starts",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load[0][0]:.2f} at start, {load[1][0]:.2f} at end "
        f"(other agents share the machine: times are noisy, ratios are taken in the same run); "
        f"{total_s:.0f} s in all. Generated by `benchmarks/bench_laws.py`.",
        "",
        "Objective: 1/2 sum of squared residuals on the fitting points (float64 NumPy, recomputed here); "
        "rel. gap = (jaxlaws - best SciPy) / best SciPy (negative: jaxlaws lower). Held-out: RMSE on the "
        "largest-scale 20% of points. Data: `synthetic` = drawn from the law at the listed parameters plus "
        "seeded Gaussian noise.",
        "",
        "| law | P | data | bounded | jaxlaws obj | L-BFGS-B obj | least_sq obj | rel. gap | "
        "held-out jl / L-BFGS-B / lsq | flags | at bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        best = min(r["lbfgsb"]["objective"], r["least_squares"]["objective"])
        gap = (r["jax"]["objective"] - best) / best if best > 0 and math.isfinite(best) else math.nan
        lines.append(
            f"| {r['law']} | {r['P']} | {r['data']} | {'yes' if r['bounded'] else 'no'} | "
            f"{r['jax']['objective']:.6g} | {r['lbfgsb']['objective']:.6g} | "
            f"{r['least_squares']['objective']:.6g} | {gap:+.1e} | {r['jax']['heldout']:.4g} / "
            f"{r['lbfgsb']['heldout']:.4g} / {r['least_squares']['heldout']:.4g} | "
            f"{','.join(r['jax']['flags']) or '-'} | {','.join(r['jax']['at_bound']) or '-'} |"
        )
    lines += [
        "",
        "## Time (warm: in-process, compiled; SciPy has no compile step)",
        "",
        "| law | jaxlaws warm | L-BFGS-B | least_sq | faster SciPy / jaxlaws |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        s = min(r["lbfgsb"]["warm_s"], r["least_squares"]["warm_s"])
        lines.append(
            f"| {r['law']} | {_fmt_t(r['jax']['warm_s'])} | {_fmt_t(r['lbfgsb']['warm_s'])} | "
            f"{_fmt_t(r['least_squares']['warm_s'])} | {s / r['jax']['warm_s']:.1f}x |"
        )
    if all("cold" in r for r in rows):
        lines += [
            "",
            "## Cold: the fit call in a fresh process (imports apart)",
            "",
            "The first fit of a configuration in a process runs on the host (NumPy over the law's jaxpr, nothing "
            "compiled); `compiled first` is the same call with that turned off (`JAXLAWS_HOST_FIRST=0`): one XLA "
            f"compile, as before. No cache, cache warm and least_sq: the median of {COLD_REPEATS} fresh processes "
            "each (one process each for the others).",
            "",
            "| law | jaxlaws no cache | cache empty | cache warm | compiled first (no cache) | L-BFGS-B (in-process) "
            "| least_sq | faster SciPy / jl (no cache, cache warm) | imports jl / SciPy |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            c = r["cold"]
            s = _scipy_cold(r)
            lines.append(
                f"| {r['law']} | {_fmt_t(c['jax_nocache']['fit_s'])} | {_fmt_t(c['jax_cache_empty']['fit_s'])}"
                f" | {_fmt_t(c['jax_cache_warm']['fit_s'])} | {_fmt_t(c['jax_compiled_nocache']['fit_s'])} | "
                f"{_fmt_t(r['lbfgsb']['warm_s'])} | "
                f"{_fmt_t(c['least_squares']['fit_s'])} | {s / c['jax_nocache']['fit_s']:.2f}x, "
                f"{s / c['jax_cache_warm']['fit_s']:.2f}x | {_fmt_t(c['jax_nocache']['import_s'])} / "
                f"{_fmt_t(c['least_squares']['import_s'])} |"
            )
    lines += ["", "## Targets", ""] + targets(rows)
    lines += ["", "## Laws", ""] + [
        f"- **{c.name}** ({len(c.params)} parameters): {c.source}; "
        f"{'public data' if c.data == 'public' else 'synthetic, truth ' + str(c.truth)}"
        f"{'; bounds ' + str(c.bounds) if c.bounds else ''}"
        for c in CASES
        if any(r["law"] == c.name for r in rows)
    ]
    return "\n".join(lines) + "\n"


def _scipy_cold(r: dict) -> float:
    """The faster SciPy's one-off time: least_squares in a fresh process, or L-BFGS-B's in-process run (SciPy
    compiles nothing, so a fresh process only adds its import, timed apart)."""
    return min(r["cold"]["least_squares"]["fit_s"], r["lbfgsb"]["warm_s"])


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, met or not, from this run."""
    best = lambda r: min(r["lbfgsb"]["objective"], r["least_squares"]["objective"])  # noqa: E731
    obj_ok = [r["law"] for r in rows if r["jax"]["objective"] <= best(r) * (1 + 1e-6) + 1e-12]
    fast = lambda r: min(r["lbfgsb"]["warm_s"], r["least_squares"]["warm_s"])  # noqa: E731
    warm_ok = [r["law"] for r in rows if fast(r) >= 5 * r["jax"]["warm_s"]]

    def missed(ok):
        return (
            ""
            if len(ok) == len(rows)
            else " (not: "
            + ", ".join(  # noqa: E731
                r["law"] for r in rows if r["law"] not in ok
            )
            + ")"
        )

    out = [
        f"- objective no worse than the best SciPy (within 1e-6 relative): {len(obj_ok)} of {len(rows)}"
        f"{missed(obj_ok)}",
        f"- warm >= 5x faster than the faster SciPy: {len(warm_ok)} of {len(rows)}{missed(warm_ok)}",
    ]
    if all("cold" in r for r in rows):
        nc = sum(r["cold"]["jax_nocache"]["fit_s"] <= _scipy_cold(r) for r in rows)
        wc = sum(r["cold"]["jax_cache_warm"]["fit_s"] <= _scipy_cold(r) for r in rows)
        out += [
            f"- cold fit call no slower than the faster SciPy's 32-start run, no persistent cache: {nc} of "
            f"{len(rows)} (target: 8 of 10)",
            f"- the same with the persistent cache warm: {wc} of {len(rows)} (target: all)",
        ]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--laws", default=",".join(BY_NAME), help="comma-separated subset of: " + ",".join(BY_NAME))
    ap.add_argument("--no-cold", action="store_true", help="skip the fresh-process (cold) timings")
    ap.add_argument("--out", default=str(HERE / "results" / "laws.md"))
    ap.add_argument(
        "--render", action="store_true", help="only write the report from the --out .json of an earlier (partial) run"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="jax", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, a.engine)))
        return
    out = Path(a.out)
    if a.render:  # e.g. a run stopped part-way: its .json holds every law measured so far
        saved = json.loads(out.with_suffix(".json").read_text())
        text = report(saved["rows"], saved["load"], saved.get("total_s", math.nan))
        out.write_text(text)
        print(text)
        return
    names = [n for n in a.laws.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown laws {unknown}; choose from {list(BY_NAME)}")
    load0, t0 = os.getloadavg(), time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as cache_root:
        for n in names:
            rows.append(measure(BY_NAME[n], not a.no_cold, cache_root))
            r = rows[-1]
            _save(out, rows, load0, t0)  # after every law: a stopped run keeps what it measured (--render)
            print(
                f"{n}: jax {r['jax']['objective']:.6g} ({r['jax']['warm_s'] * 1e3:.0f} ms, "
                f"flags {r['jax']['flags']}), lbfgsb {r['lbfgsb']['objective']:.6g} "
                f"({r['lbfgsb']['warm_s'] * 1e3:.0f} ms), lsq {r['least_squares']['objective']:.6g} "
                f"({r['least_squares']['warm_s'] * 1e3:.0f} ms)",
                file=sys.stderr,
                flush=True,
            )
    text = report(rows, (load0, os.getloadavg()), time.perf_counter() - t0)
    print(text)
    _save(out, rows, load0, t0)
    out.write_text(text)


def _save(out: Path, rows: list[dict], load0: tuple, t0: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    data = dict(rows=rows, load=[load0, os.getloadavg()], total_s=time.perf_counter() - t0)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1, default=float))


if __name__ == "__main__":
    main()
