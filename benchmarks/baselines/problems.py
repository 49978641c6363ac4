r"""The benchmark problems, their init grids and a float64 NumPy reference objective.

Static m=3 law (spec 7.2), per group ``i`` and seed ``s``:

.. math:: L_i(p) = e^{\ell} + \exp(b + t_1 p_\text{arxiv} + t_2 p_\text{book}),

on the 9 Dirichlet mixtures of ``k_3_n_9_seed_{s}.txt``, with losses generated from the bundled original
fits (``params_static.json``, step 5000) plus Gaussian noise. Objective: summed Huber,
:math:`\sum_n \rho_\delta(y_n - f(x_n))`, :math:`\delta = 0.02`.

Chinchilla (Hoffmann et al., 2022): :math:`L = E + A/N^\alpha + B/D^\beta` on 240 synthetic points, Huber on
:math:`\log L` with :math:`\delta = 10^{-3}`, parameters ``[e, a, b, alpha, beta]`` with ``E = exp(e)`` etc.

Every random draw takes an explicit seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

import jaxlaws

GROUPS = ("arxiv", "book", "stackexchange")
SEEDS = (0, 1, 2, 3, 4)
STEP = "5000"
STATIC_DELTA = 0.02
CHINCHILLA_DELTA = 1e-3
# Hoffmann et al. (2022), Approach 3.
CHINCHILLA_TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}

_REF = Path(jaxlaws.__file__).parent / "data" / "aioli"


class Problems(NamedTuple):
    """``B`` independent fitting problems sharing one law."""

    labels: list[str]  # "group/seed"
    x: np.ndarray  # (B, n, d)
    y: np.ndarray  # (B, n)
    true_params: np.ndarray  # (B, P) generating parameters
    own: list[int | None]  # group's own index among the free t's (None for stackexchange)


def mixtures(seed: int) -> np.ndarray:
    """The 9 three-group Dirichlet mixtures the original ran with ``seed`` (rows sum to 1)."""
    return np.loadtxt(_REF / "dirichlet_weights" / f"k_3_n_9_seed_{seed}.txt", delimiter=",")


def static_predict(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``exp(l) + exp(b + t . p_{<m})`` in float64; ``theta`` ``(..., 4)``, ``x`` ``(n, 3)`` -> ``(..., n)``."""
    theta = np.asarray(theta, np.float64)
    lin = theta[..., 1:2] + theta[..., 2:] @ np.asarray(x, np.float64)[:, :2].T
    return np.exp(theta[..., :1]) + np.exp(lin)


def huber_sum(r: np.ndarray, delta: float) -> np.ndarray:
    r"""Summed Huber over the last axis: :math:`\tfrac12 r^2` if :math:`|r| < \delta`, else
    :math:`\delta(|r| - \tfrac12\delta)` (PyTorch's ``HuberLoss(delta, reduction="sum")``)."""
    a = np.abs(r)
    return np.sum(np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta)), axis=-1)


def static_objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The reference objective every method is scored with: float64 summed Huber(0.02); inf if not finite."""
    v = float(huber_sum(np.asarray(y, np.float64) - static_predict(theta, x), STATIC_DELTA))
    return v if np.isfinite(v) else float("inf")


def static_problems(noise_sd: float = 0.005, seed: int = 0) -> Problems:
    """3 groups x 5 seeds = 15 problems, in group-major order (arxiv/0 .. stackexchange/4)."""
    ref = json.loads((_REF / "law_results" / "arxiv_books_stackexchange" / "params_static.json").read_text())
    rng = np.random.default_rng(seed)
    labels, xs, ys, thetas, own = [], [], [], [], []
    for gi, g in enumerate(GROUPS):
        for s in SEEDS:
            theta = np.asarray(ref[g][STEP][str(s)], np.float64)
            x = mixtures(s)
            y = static_predict(theta, x) + noise_sd * rng.standard_normal(len(x))
            labels.append(f"{g}/{s}")
            xs.append(x)
            ys.append(y)
            thetas.append(theta)
            own.append(gi if gi < len(GROUPS) - 1 else None)
    return Problems(labels, np.stack(xs), np.stack(ys), np.stack(thetas), own)


def static_inits(own: int | None, seed: int, n_random: int = 30) -> np.ndarray:
    r"""The original's 6,000 inits (spec 7.2) as ``(6000, 4)`` rows ``[l, b, t1, t2]``.

    ``l in linspace(-2, 1.5, 10)`` x ``b in linspace(-10, 1, 20)`` x ``n_random`` draws of ``t``:
    :math:`t_j = -U(0,1)` on the group's own index, else :math:`0.1\,U(0,1)`. As in
    :func:`jaxlaws.laws.static.log_linear_inits`, the same ``n_random`` draws are crossed with every
    ``(l, b)`` pair (l slowest, then b, then the draw), here from ``np.random.default_rng(seed)``.
    """
    u = np.random.default_rng(seed).uniform(size=(n_random, 2))
    t = 0.1 * u
    if own is not None:
        t[:, own] = -u[:, own]
    lb = np.stack(np.meshgrid(np.linspace(-2.0, 1.5, 10), np.linspace(-10.0, 1.0, 20), indexing="ij"), axis=-1).reshape(
        -1, 2
    )
    return np.concatenate([np.repeat(lb, n_random, axis=0), np.tile(t, (len(lb), 1))], axis=1)


def static_init_grids(problems: Problems, seed: int = 0) -> np.ndarray:
    """One 6,000-init grid per problem, ``(B, 6000, 4)``; problem ``k`` draws its t's with seed ``seed + k``."""
    return np.stack([static_inits(o, seed + k) for k, o in enumerate(problems.own)])


def subset(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """The first ``n`` of a seeded permutation of the init indices: a uniform draw over the whole grid, and
    nested (``subset(N, n)`` is a prefix of ``subset(N, n')`` for ``n < n'``) so larger runs extend smaller."""
    if not 0 < n:
        raise ValueError(f"subset size must be positive, got {n}")
    return np.random.default_rng(seed).permutation(n_total)[: min(n, n_total)]


# ----------------------------------------------------------------------------------------------- Chinchilla


def chinchilla_predict(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``exp(e) + exp(a) N^-alpha + exp(b) D^-beta`` in float64 via log-sum-exp, ``theta`` ``(5,)``."""
    e, a, b, alpha, beta = np.asarray(theta, np.float64)
    logn, logd = np.log(x[:, 0]), np.log(x[:, 1])
    terms = np.stack([np.full_like(logn, e), a - alpha * logn, b - beta * logd])
    hi = np.max(terms, axis=0)
    return np.exp(hi) * np.sum(np.exp(terms - hi), axis=0)


def chinchilla_objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Float64 summed Huber(1e-3) of ``log y - log f(x)``; inf if not finite."""
    with np.errstate(all="ignore"):
        v = float(huber_sum(np.log(y) - np.log(chinchilla_predict(theta, x)), CHINCHILLA_DELTA))
    return v if np.isfinite(v) else float("inf")


def chinchilla_problem(n: int = 240, noise_sd: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points with N log-uniform in [1e7, 1e10], D in [1e9, 1e12]; ``L`` times ``exp(noise_sd * eps)``."""
    rng = np.random.default_rng(seed)
    x = np.stack([10.0 ** rng.uniform(7, 10, n), 10.0 ** rng.uniform(9, 12, n)], axis=1)
    y = chinchilla_predict(chinchilla_true_params(), x) * np.exp(noise_sd * rng.standard_normal(n))
    return x, y


def chinchilla_true_params() -> np.ndarray:
    c = CHINCHILLA_TRUE
    return np.array([np.log(c["E"]), np.log(c["A"]), np.log(c["B"]), c["alpha"], c["beta"]])


def chinchilla_inits() -> np.ndarray:
    """Hoffmann et al.'s grid: ``e in {-1,-.5,..,1}`` x ``a, b in {0,5,..,25}`` x ``alpha, beta in
    {0,.5,..,2}`` = 4,500 rows (the same grid as ``jaxlaws.laws.chinchilla().init_grid``)."""
    axes = [
        np.linspace(-1.0, 1.0, 5),
        np.arange(0.0, 26.0, 5.0),
        np.arange(0.0, 26.0, 5.0),
        np.arange(0.0, 2.01, 0.5),
        np.arange(0.0, 2.01, 0.5),
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 5)
