r"""Solvers for one init of a small robust least-squares problem; the engine ``vmap``\ s them over inits.

Every solver is a frozen dataclass called as ``solver(residual_fn, objective, theta0)`` and returns a
:class:`Trace`; its settings are checked when it is built (``steps >= 1``, positive rates), so a solver
that would return its starting point untouched cannot be made. Each keeps the best parameters seen along its trajectory, so the multi-start selection can
use the original's "best over the trajectory" rule.

* :class:`LevenbergMarquardt` (default): Gauss-Newton steps on the IRLS-weighted residuals with adaptive
  Marquardt damping; a step is kept only if it lowers the true (Huber) objective, so it descends
  monotonically and its fixed points are the objective's stationary points. For these tiny problems
  (a handful of parameters, tens of points) it converges in tens of iterations.
* :class:`LBFGS`: ``optax.lbfgs`` with its zoom (strong-Wolfe) line search — the original's optimiser.
* :class:`Adam`: ``optax.adam`` — first-order baseline.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlaws.fitting.objectives import Objective
from jaxlaws.laws.base import Array

ResidualFn = Callable[[Array], Array]


class Trace(NamedTuple):
    """What one init's run left: best point and value, the value at 90% of the run (for convergence)."""

    params: Array
    value: Array
    value_at_90: Array
    final_params: Array


def _check_steps(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def _check_positive(owner: str, name: str, value, above: float = 0.0) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
          and value > above)
    if not ok:
        what = "a positive finite number" if above == 0 else f"a finite number > {above:g}"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")


def _value_fn(residual_fn: ResidualFn, objective: Objective) -> Callable[[Array], Array]:
    def value(theta: Array) -> Array:
        f = jnp.sum(objective.rho(residual_fn(theta)))
        return jnp.where(jnp.isfinite(f), f, jnp.inf)

    return value


def _scan_best(step, carry0, theta0, f0, steps: int):
    """Run ``step`` for ``steps`` iterations keeping the best (theta, f) and the best at 90%."""
    mark = max(int(0.9 * steps) - 1, 0)

    def body(state, i):
        carry, best_t, best_f, f90, _ = state
        carry, theta, f = step(carry)
        better = f <= best_f  # later ties win, as in the original
        best_t = jnp.where(better, theta, best_t)
        best_f = jnp.where(better, f, best_f)
        f90 = jnp.where(i == mark, best_f, f90)
        return (carry, best_t, best_f, f90, theta), None

    init = (carry0, theta0, f0, f0, theta0)
    (_, best_t, best_f, f90, last), _ = jax.lax.scan(body, init, jnp.arange(steps))
    return Trace(best_t, best_f, f90, last)


def spd_solve(a: Array, b: Array) -> Array:
    """Solve ``a x = b`` for a small symmetric positive-definite ``a`` by an unrolled Cholesky.

    XLA's batched LU is slow for thousands of 4x4 systems under ``vmap``; unrolled scalar arithmetic
    vectorises across the batch. A non-positive pivot yields NaN, which the caller treats as a failed step.
    """
    n = a.shape[0]
    if n > 16:
        return jnp.linalg.solve(a, b)
    L = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j] - sum(L[i][k] * L[j][k] for k in range(j))
            if i == j:
                L[i][i] = jnp.sqrt(s)
            else:
                L[i][j] = s / L[j][j]
    z = [None] * n
    for i in range(n):
        z[i] = (b[i] - sum(L[i][k] * z[k] for k in range(i))) / L[i][i]
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (z[i] - sum(L[k][i] * x[k] for k in range(i + 1, n))) / L[i][i]
    return jnp.stack(x)


@dataclasses.dataclass(frozen=True)
class LevenbergMarquardt:
    """IRLS Levenberg-Marquardt. ``steps`` iterations; damping starts at ``damping`` and is divided by
    ``decrease`` on success, multiplied by ``increase`` on failure."""

    steps: int = 50
    damping: float = 1e-3
    decrease: float = 3.0
    increase: float = 4.0

    def __post_init__(self) -> None:
        _check_steps("LevenbergMarquardt", "steps", self.steps)
        _check_positive("LevenbergMarquardt", "damping", self.damping)
        # a factor <= 1 would shrink the damping after a failed step (or grow it after a good one)
        _check_positive("LevenbergMarquardt", "decrease", self.decrease, above=1.0)
        _check_positive("LevenbergMarquardt", "increase", self.increase, above=1.0)

    def __call__(self, residual_fn: ResidualFn, objective: Objective, theta0: Array) -> Trace:
        eye = jnp.eye(theta0.shape[0], dtype=theta0.dtype)

        def evaluate(theta):
            r = residual_fn(theta)
            f = jnp.sum(objective.rho(r))
            return r, jnp.where(jnp.isfinite(f), f, jnp.inf)

        def step(carry):
            theta, r, f, lam = carry
            _, tangent = jax.linearize(residual_fn, theta)
            j = jax.vmap(tangent, out_axes=1)(eye)           # d r / d theta, (N, P)
            w = objective.weight(r)
            jw = j * w[:, None]
            a = j.T @ jw
            g = jw.T @ r
            # Marquardt scaling by diag(A), floored so flat directions still get damped.
            d = jnp.maximum(jnp.diag(a), 1e-12 * (1.0 + jnp.max(jnp.diag(a))))
            cand = theta + spd_solve(a + lam * jnp.diag(d), -g)
            r_new, f_new = evaluate(cand)
            ok = (f_new < f) & jnp.all(jnp.isfinite(cand))
            theta = jnp.where(ok, cand, theta)
            r = jnp.where(ok, r_new, r)
            f = jnp.where(ok, f_new, f)
            lam = jnp.clip(jnp.where(ok, lam / self.decrease, lam * self.increase), 1e-12, 1e12)
            return (theta, r, f, lam), theta, f

        r0, f0 = evaluate(theta0)
        lam0 = jnp.asarray(self.damping, theta0.dtype)
        return _scan_best(step, (theta0, r0, f0, lam0), theta0, f0, self.steps)


def _optax_trace(opt: optax.GradientTransformation, residual_fn: ResidualFn, objective: Objective,
                 theta0: Array, steps: int, linesearch: bool) -> Trace:
    value = _value_fn(residual_fn, objective)
    raw = lambda t: jnp.sum(objective.rho(residual_fn(t)))  # noqa: E731  (finite-or-NaN, for gradients)
    value_and_grad = optax.value_and_grad_from_state(raw) if linesearch else jax.value_and_grad(raw)

    def step(carry):
        theta, state = carry
        if linesearch:
            v, g = value_and_grad(theta, state=state)
            updates, state = opt.update(g, state, theta, value=v, grad=g, value_fn=raw)
        else:
            v, g = value_and_grad(theta)
            updates, state = opt.update(g, state, theta)
        theta = optax.apply_updates(theta, updates)
        return (theta, state), theta, value(theta)

    return _scan_best(step, (theta0, opt.init(theta0)), theta0, value(theta0), steps)


@dataclasses.dataclass(frozen=True)
class LBFGS:
    """``optax.lbfgs`` (memory 10, zoom line search satisfying the strong Wolfe conditions), ``steps``
    iterations. The original ran 100 outer x up to 20 inner PyTorch L-BFGS iterations."""

    steps: int = 200
    memory_size: int = 10

    def __post_init__(self) -> None:
        _check_steps("LBFGS", "steps", self.steps)
        _check_steps("LBFGS", "memory_size", self.memory_size)

    def __call__(self, residual_fn: ResidualFn, objective: Objective, theta0: Array) -> Trace:
        opt = optax.lbfgs(memory_size=self.memory_size)
        return _optax_trace(opt, residual_fn, objective, theta0, self.steps, linesearch=True)


@dataclasses.dataclass(frozen=True)
class Adam:
    """``optax.adam(learning_rate)`` for ``steps`` iterations."""

    steps: int = 2000
    learning_rate: float = 1e-2

    def __post_init__(self) -> None:
        _check_steps("Adam", "steps", self.steps)
        _check_positive("Adam", "learning_rate", self.learning_rate)

    def __call__(self, residual_fn: ResidualFn, objective: Objective, theta0: Array) -> Trace:
        return _optax_trace(optax.adam(self.learning_rate), residual_fn, objective, theta0, self.steps,
                            linesearch=False)
