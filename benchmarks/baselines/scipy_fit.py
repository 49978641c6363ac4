r"""SciPy baselines for the same multi-start robust fits, in float64 with analytic Jacobians.

For residuals :math:`r(\theta)` (``y - f(x)`` for the static law, ``log y - log f`` for Chinchilla) and
Huber :math:`\rho_\delta`, the objective is :math:`F(\theta) = \sum_n \rho_\delta(r_n)` with gradient
:math:`\nabla F = J^\top \psi(r)`,
:math:`\psi(r) = \mathrm{clip}(r, -\delta, \delta)`, :math:`J = \partial r/\partial\theta`.

* :func:`lbfgsb`: ``scipy.optimize.minimize(method="L-BFGS-B")`` per init. SciPy's default ``gtol=1e-5``
  would stop early on these tiny objectives (values ~1e-5), so we pass ``gtol=1e-8`` (``ftol`` stays at
  its default 2.2e-9, which already reaches the optimum to ~1e-10 relative here) and
  ``maxiter=2000`` (the original's 100 outer x 20 inner L-BFGS iterations).
* :func:`huber_least_squares`: ``scipy.optimize.least_squares(loss="huber", f_scale=delta)`` (trust-region
  reflective). Its cost :math:`\tfrac12\delta^2\sum\rho(r^2/\delta^2)` with SciPy's
  :math:`\rho(z) = z` (:math:`z \le 1`), :math:`2\sqrt z - 1` (else) equals :math:`F` exactly.

Inits run one after the other in this process (SciPy has no batched solver); the best final objective
over inits wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import optimize

# residuals(theta, x, y) -> (r (n,), J (n, P)) with J = d r / d theta.
Residuals = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class ScipyFit(NamedTuple):
    params: np.ndarray  # (P,) best parameters
    objective: float  # summed Huber at params
    init_objectives: np.ndarray  # (n_init,) final objective per init (inf where it failed)


def static_residuals(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``r = y - exp(l) - exp(b + t . p_{<m})`` and its Jacobian, for any ``m = len(theta) - 1`` groups."""
    l, b, t = theta[0], theta[1], theta[2:]  # noqa: E741 (the paper's names)
    p = x[:, : t.size]
    ez = np.exp(b + p @ t)
    el = np.exp(l)
    jac = -np.column_stack([np.full_like(ez, el), ez, ez[:, None] * p])
    return y - el - ez, jac


def chinchilla_residuals(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``r = log y - LSE(e, a - alpha log N, b - beta log D)`` and its Jacobian (softmax weights)."""
    e, a, b, alpha, beta = theta
    logn, logd = np.log(x[:, 0]), np.log(x[:, 1])
    terms = np.stack([np.full_like(logn, e), a - alpha * logn, b - beta * logd])
    hi = np.max(terms, axis=0)
    w = np.exp(terms - hi)
    s = np.sum(w, axis=0)
    w /= s
    g = hi + np.log(s)
    jac = -np.column_stack([w[0], w[1], w[2], -w[1] * logn, -w[2] * logd])
    return np.log(y) - g, jac


RESIDUALS: dict[str, Residuals] = {"static": static_residuals, "chinchilla_log": chinchilla_residuals}


def _huber(r: np.ndarray, delta: float) -> float:
    a = np.abs(r)
    return float(np.sum(np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def _value_and_grad(residuals: Residuals, x, y, delta: float):
    def f(theta):
        with np.errstate(all="ignore"):
            r, jac = residuals(theta, x, y)
            v = _huber(r, delta)
            g = jac.T @ np.clip(r, -delta, delta)
        if not (np.isfinite(v) and np.all(np.isfinite(g))):
            return np.inf, np.zeros_like(theta)  # L-BFGS-B's line search backs off from inf
        return v, g

    return f


def _best(results: list[tuple[np.ndarray, float]]) -> ScipyFit:
    objs = np.array([v if np.isfinite(v) else np.inf for _, v in results])
    k = int(np.argmin(objs))
    return ScipyFit(np.asarray(results[k][0], np.float64), float(objs[k]), objs)


def _check(law: str, inits: np.ndarray) -> np.ndarray:
    if law not in RESIDUALS:
        raise ValueError(f"law must be one of {sorted(RESIDUALS)}, got {law!r}")
    inits = np.asarray(inits, np.float64)
    if inits.ndim != 2 or len(inits) == 0:
        raise ValueError(f"inits must be a non-empty (n_init, P) array, got shape {inits.shape}")
    return inits


def lbfgsb(law: str, x: np.ndarray, y: np.ndarray, inits: np.ndarray, delta: float, maxiter: int = 2000) -> ScipyFit:
    """Multi-start ``minimize(method="L-BFGS-B")`` of the summed Huber objective, float64."""
    inits = _check(law, inits)
    fg = _value_and_grad(RESIDUALS[law], np.asarray(x, np.float64), np.asarray(y, np.float64), delta)
    out = []
    for theta0 in inits:
        res = optimize.minimize(
            fg,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options=dict(maxiter=maxiter, maxfun=4 * maxiter, ftol=2.2e-9, gtol=1e-8),
        )
        out.append((res.x, fg(res.x)[0]))
    return _best(out)


def huber_least_squares(
    law: str, x: np.ndarray, y: np.ndarray, inits: np.ndarray, delta: float, max_nfev: int = 2000
) -> ScipyFit:
    """Multi-start ``least_squares(loss="huber", f_scale=delta)`` (TRF), float64."""
    inits = _check(law, inits)
    residuals = RESIDUALS[law]
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out = []
    for theta0 in inits:
        with np.errstate(all="ignore"):
            r0 = residuals(theta0, x, y)[0]
            if not np.all(np.isfinite(r0)):  # least_squares refuses a non-finite start
                out.append((theta0, np.inf))
                continue
            res = optimize.least_squares(
                lambda t: residuals(t, x, y)[0],
                theta0,
                jac=lambda t: residuals(t, x, y)[1],
                loss="huber",
                f_scale=delta,
                method="trf",
                max_nfev=max_nfev,
                xtol=1e-12,
                ftol=1e-12,
                gtol=1e-12,
            )
            out.append((res.x, _huber(residuals(res.x, x, y)[0], delta)))
    return _best(out)
