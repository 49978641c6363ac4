r"""The original's fitter (spec 6, ``analysis/law.py: ScalingLaw.fit``), re-written faithfully in PyTorch.

Per init :math:`\theta_0` (float32):

* ``torch.optim.LBFGS([θ], lr=0.01, history_size=10, max_iter=20, line_search_fn="strong_wolfe")``;
* closure: :math:`\sum_n \rho_\delta(y_n - f(x_n;\theta))` (Huber, sum reduction);
* ``max_step = 100`` outer ``step(closure)`` calls; after each, the selection metric
  :math:`\tfrac1n\sum_n \rho_\delta` on the fitting points; keep the best-so-far θ (``<=``: later ties win).

Inits are spread over ``multiprocessing.Pool(os.cpu_count())`` (fork, ``imap_unordered``, ``chunksize=2``),
one pool per fit as in the original; the θ with the smallest best-so-far metric over all inits is returned.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

# A law in torch: predict(theta (P,), x (n, d)) -> (n,).
TorchLaw = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TorchFit(NamedTuple):
    params: np.ndarray  # (P,) best parameters (float32 values, returned as float64)
    metric: float  # best mean Huber (the original's selection metric)
    init_metrics: np.ndarray  # (n_init,) every init's best-so-far metric, in init order


def static_law(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``exp(l) + exp(b + t1 p1 + t2 p2)`` (spec 7.2), ``theta = [l, b, t1, t2]``."""
    return torch.exp(theta[0]) + torch.exp(theta[1] + x[:, :2] @ theta[2:])


LAWS: dict[str, TorchLaw] = {"static": static_law}


def fit_one_init(
    law: TorchLaw, theta0: np.ndarray, x: torch.Tensor, y: torch.Tensor, delta: float, max_step: int = 100
) -> tuple[np.ndarray, float]:
    """One init: ``max_step`` outer L-BFGS steps, best-over-trajectory by the mean Huber metric."""
    theta = torch.tensor(np.asarray(theta0), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=0.01, history_size=10, max_iter=20, line_search_fn="strong_wolfe")
    loss_sum = torch.nn.HuberLoss(reduction="sum", delta=delta)
    loss_mean = torch.nn.HuberLoss(reduction="mean", delta=delta)

    def closure():
        opt.zero_grad()
        loss = loss_sum(law(theta, x), y)
        loss.backward()
        return loss

    best_metric, best_theta = float("inf"), theta.detach().clone()
    for _ in range(max_step):
        opt.step(closure)
        with torch.no_grad():
            metric = float(loss_mean(law(theta, x), y))
        if metric <= best_metric:  # NaN compares False: a diverged step is never kept
            best_metric, best_theta = metric, theta.detach().clone()
    return best_theta.numpy().astype(np.float64), best_metric


# Set in the parent before forking, so workers inherit the problem without pickling it per task.
_JOB: dict = {}


def _worker_init() -> None:
    torch.set_num_threads(1)


def _work(item: tuple[int, np.ndarray]) -> tuple[int, np.ndarray, float]:
    i, theta0 = item
    theta, metric = fit_one_init(LAWS[_JOB["law"]], theta0, _JOB["x"], _JOB["y"], _JOB["delta"], _JOB["max_step"])
    return i, theta, metric


def fit(
    law: str,
    x: np.ndarray,
    y: np.ndarray,
    inits: np.ndarray,
    delta: float = 0.02,
    max_step: int = 100,
    processes: int | None = None,
) -> TorchFit:
    """Fit ``LAWS[law]`` to ``(x, y)`` from every row of ``inits`` (the original's ``ScalingLaw.fit``).

    ``processes`` defaults to ``os.cpu_count()``; 0 runs serially in this process (for tests).
    """
    if law not in LAWS:
        raise ValueError(f"law must be one of {sorted(LAWS)}, got {law!r}")
    inits = np.asarray(inits, np.float64)
    if inits.ndim != 2 or len(inits) == 0:
        raise ValueError(f"inits must be a non-empty (n_init, P) array, got shape {inits.shape}")
    _JOB.update(
        law=law,
        x=torch.tensor(np.asarray(x), dtype=torch.float32),
        y=torch.tensor(np.asarray(y), dtype=torch.float32),
        delta=delta,
        max_step=max_step,
    )
    items = list(enumerate(inits))
    if processes == 0:
        out = [_work(it) for it in items]
    else:
        with mp.get_context("fork").Pool(processes or os.cpu_count(), initializer=_worker_init) as pool:
            out = list(pool.imap_unordered(_work, items, chunksize=2))
    out.sort(key=lambda r: r[0])
    metrics = np.array([m for _, _, m in out])
    best = int(np.argmin(np.where(np.isnan(metrics), np.inf, metrics)))
    return TorchFit(out[best][1], float(metrics[best]), metrics)
