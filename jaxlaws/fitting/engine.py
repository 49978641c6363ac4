r"""The multi-start fitting engine: one jit-compiled program, ``vmap``\ ped over inits and over problems.

:func:`fit` fits one law to one data set; :func:`fit_batched` fits ``B`` independent problems with the same
law (all groups x seeds x steps of a sweep) in one call, sharded over local devices when there are several.
Laws that are linear in their parameters skip the search and are solved in closed form (:mod:`.linear`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import numbers
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws.fitting import linear, validate
from jaxlaws.fitting.execute import run_sharded as _run_sharded
from jaxlaws.fitting.diagnostics import diagnose, flags_of
from jaxlaws.fitting.metrics import mse_r2
from jaxlaws.fitting.objectives import Objective, huber
from jaxlaws.fitting.result import FitError, FitResult
from jaxlaws.fitting.solvers import LevenbergMarquardt
from jaxlaws.laws.base import Law, as_key

SELECTIONS = ("trajectory", "final")


@dataclasses.dataclass(frozen=True)
class Screen:
    """Successive halving for large init grids: run every init for ``steps`` solver iterations, then
    continue only the best ``keep`` fraction (at least one init) with the full solver. Inside the same
    compiled program; pruned inits report their screening objective in ``init_objectives``."""

    steps: int = 10
    keep: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, numbers.Integral) and not isinstance(self.steps, bool) and self.steps > 0
                and isinstance(self.keep, numbers.Real) and 0 < self.keep <= 1):
            raise ValueError(f"Screen needs steps > 0 and 0 < keep <= 1, got {self}")


def fit(law: Law, x: Any, y: Any, *, inits: Any = None, key: Optional[jax.Array] = None,
        objective: Optional[Objective] = None, solver: Any = None, select: str = "trajectory",
        holdout: Any = None, screen: Optional[Screen] = None, dtype: Any = None,
        throw: bool = True) -> FitResult:
    """Fit ``law`` to points ``(x, y)`` from many initial parameters at once and keep the best.

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      x: ``(n, d)`` inputs (a 1-D ``x`` is one column); checked against ``law.x_kind``.
      y: ``(n,)`` observations, or ``(n, k)`` for a law with ``k`` outputs; must lie inside
        ``law.output_range`` (e.g. strictly positive for the static log-linear laws and Chinchilla).
      inits: ``(n_init, P)`` initial parameters in ``law.param_names`` order, or by name (a mapping
        ``{name: (n_init,)}`` or a DataFrame, checked against the law's names); default
        ``law.init_grid(key, x, y)``.
      key: an int seed or a ``jax.random`` key, needed when the default grid draws random numbers.
      objective: :func:`jaxlaws.huber` or :func:`jaxlaws.squared`; default ``law.default_objective``
        (Huber(1e-3) on log L for Chinchilla), else Huber(0.02) with sum reduction (the original's).
      solver: :class:`LevenbergMarquardt` (default), :class:`LBFGS` or :class:`Adam`.
      select: ``"trajectory"`` keeps each init's best point along its run (the original's rule);
        ``"final"`` its last point. The best init is the one with the lowest objective on the fitting
        points, or on the ``holdout`` points when given.
      holdout: optional boolean mask ``(n,)`` of points excluded from fitting and used to choose the init.
      screen: optional :class:`Screen` (successive halving) to spend the solver's iterations on the
        promising inits of a large grid.
      dtype: ``"float32"`` or ``"float64"``; default float64 when ``jax_enable_x64`` is on, else float32.
      throw: raise :class:`FitError` when every init diverged; otherwise return ``success=False``.

    Returns a :class:`FitResult`; check ``res.ok`` / ``res.flags`` before trusting it (a fit can end
    without converging, interpolate its data, leave parameters undetermined or explain less than the mean).
    """
    x = validate.check_x(law, x)
    obj = law.default_objective if objective is None else objective
    validate.check_y(law, y, x.shape[0], positive=getattr(obj, "log", False))  # errors without a batch index
    hold = None if holdout is None else np.asarray(holdout)[None]
    res = fit_batched(law, x[None], np.asarray(y)[None], inits=inits, key=key, objective=objective,
                      solver=solver, select=select, holdout=hold, screen=screen, dtype=dtype, throw=throw)
    return res[0]


def fit_batched(law: Law, x: Any, y: Any, *, inits: Any = None, key: Optional[jax.Array] = None,
                objective: Optional[Objective] = None, solver: Any = None, select: str = "trajectory",
                holdout: Any = None, screen: Optional[Screen] = None, dtype: Any = None,
                throw: bool = True) -> FitResult:
    """Fit ``B`` independent problems ``(x[b], y[b])`` with the same law in one compiled program.

    ``x`` is ``(B, n, d)``, ``y`` ``(B, n[, k])``; ``inits`` is ``(n_init, P)`` shared by all problems or
    ``(B, n_init, P)``; ``holdout`` a boolean ``(B, n)`` mask. Other arguments as in :func:`fit`; every
    field of the result has a leading batch axis. With several local devices the problems are sharded
    across them.
    """
    if objective is None:
        objective = law.default_objective if law.default_objective is not None else huber(0.02)
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must come from jaxlaws.huber(...) or jaxlaws.squared(), got {objective!r}")
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
    x = validate.check_x(law, x, batched=True)
    batch, n = x.shape[0], x.shape[1]
    y = validate.check_y(law, y, n, batched=True, positive=objective.log)
    if y.shape[0] != batch:
        raise ValueError(f"x holds {batch} problems but y holds {y.shape[0]}")
    hold = validate.check_mask(holdout, (batch, n)) if holdout is not None else np.zeros((batch, n), bool)
    train = ~hold
    validate.check_counts(law, train.sum(axis=1), "fitting points")
    if holdout is not None and np.any(hold.sum(axis=1) == 0):
        raise ValueError("every problem needs at least one held-out point when holdout is given")

    with _precision(dtype) as fdtype:
        if law.is_linear:
            if objective.log:
                raise ValueError(f"{law.name} is linear: fit the log target directly with objective.log=False")
            if inits is not None or solver is not None or holdout is not None or screen is not None:
                raise ValueError(f"{law.name} is linear and solved in closed form: inits, solver and holdout "
                                 "do not apply")
            params, obj, iters = linear.solve_law(law, x, y, train, objective.delta, fdtype)
            init_obj = obj[:, None]
            conv = iters < linear.IRLS_MAX_ITER  # least squares: 0 iterations; Huber: IRLS reached its fixed point
            selection = "closed_form"
        else:
            if inits is None:
                grids = [law.init_grid(as_key(key) if law.needs_key else key, x[b], y[b])
                         for b in range(batch)]
                inits = np.stack(grids) if any(g.shape != grids[0].shape or not np.array_equal(g, grids[0])
                                                for g in grids[1:]) else grids[0]
            inits = validate.check_inits(law, inits, batch)
            solver = LevenbergMarquardt() if solver is None else solver
            if screen is not None and not isinstance(screen, Screen):
                raise ValueError(f"screen must be a jaxlaws.Screen, got {screen!r}")
            n_init = inits.shape[-2]
            keep = None if screen is None else max(1, min(n_init, int(round(screen.keep * n_init))))
            program = _program(law, objective, solver, select, holdout is not None,
                               None if screen is None else (screen.steps, keep))
            args = [np.asarray(a, fdtype) for a in (inits, x, y)] + [train, hold]
            shared_inits = inits.ndim == 2
            params, obj, v90, init_obj = _run_sharded(program, args, shared_inits)
            conv = None  # the objective's improvement is judged against the round-off floor below
            selection = "holdout" if holdout is not None else select
        params = np.asarray(params, np.float64)
        obj = np.asarray(obj, np.float64)
        success = np.isfinite(obj) & np.all(np.isfinite(params), axis=1)
        params = np.where(success[:, None], params, np.nan)
        mse, r2 = mse_r2(law, params, x, y, train, fdtype)
        diag = diagnose(law, objective, params, x, y, train, fdtype)
        if conv is None:  # stopped improving: over the last 10% of the run, by sqrt(eps) relative or round-off
            tol = np.sqrt(np.finfo(fdtype).eps)
            with np.errstate(invalid="ignore"):  # inf - inf for a problem whose every init diverged
                conv = np.isfinite(obj) & ((v90 - obj) <= tol * np.abs(obj) + np.maximum(diag.floor, 1e-12))

    if throw and not np.all(success):
        bad = np.flatnonzero(~success)
        raise FitError(f"{law.name}: every init diverged for problem(s) {bad[:10].tolist()}"
                       f"{' ...' if len(bad) > 10 else ''}; try other inits or a smaller step")
    converged = conv & success & diag.gradient_small
    return FitResult(law=law, params=params, objective=obj, mse=mse, r2=r2,
                     n_points=train.sum(axis=1), converged=converged, success=success,
                     init_objectives=np.asarray(init_obj, np.float64), selection=selection,
                     decrement=diag.decrement, rank=diag.rank, n_distinct=diag.n_distinct,
                     identifiable=diag.identifiable, saturated=diag.saturated,
                     flags=flags_of(success, converged, diag.saturated, diag.identifiable,
                                    diag.constant_target, r2, diag.constant_reachable))


@contextlib.contextmanager
def _precision(dtype: Any):
    if dtype is None:
        dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    with jax.enable_x64(dtype == np.float64):
        yield dtype.type


@functools.lru_cache(maxsize=64)
def _program(law: Law, objective: Objective, solver: Any, select: str, use_holdout: bool,
             screen: Optional[tuple[int, int]]):
    """Compile once per (law, objective, solver, rule): problems -> inits -> solver run."""

    def residuals(theta, x, y):
        return objective.residual(y, law.predict(theta, x))

    def one_init(theta0, x, y, train, hold, solver=solver):
        mask = jnp.broadcast_to(train.reshape(train.shape + (1,) * (y.ndim - 1)), y.shape).reshape(-1)
        res = lambda t: jnp.where(mask, residuals(t, x, y).reshape(-1), 0.0)  # noqa: E731
        tr = solver(res, objective, theta0)
        theta = tr.params
        if select == "final":
            theta = tr.final_params
        value = jnp.sum(objective.rho(res(theta)))
        value = jnp.where(jnp.isfinite(value), value, jnp.inf)
        v90 = tr.value_at_90
        if use_holdout:
            hmask = jnp.broadcast_to(hold.reshape(hold.shape + (1,) * (y.ndim - 1)), y.shape).reshape(-1)
            rh = jnp.where(hmask, residuals(theta, x, y).reshape(-1), 0.0)
            score = jnp.sum(objective.rho(rh))
            score = jnp.where(jnp.isfinite(score) & jnp.isfinite(value), score, jnp.inf)
        else:
            score = value
        return theta, value, v90, score

    def run(inits, x, y, train, hold, solver):
        return jax.vmap(functools.partial(one_init, solver=solver), in_axes=(0, None, None, None, None))(
            inits, x, y, train, hold)

    def one_problem(inits, x, y, train, hold):
        if screen is None:
            theta, value, v90, score = run(inits, x, y, train, hold, solver)
            all_values = value
        else:
            steps, keep = screen
            theta, value, _, _ = run(inits, x, y, train, hold, dataclasses.replace(solver, steps=steps))
            _, idx = jax.lax.top_k(-value, keep)
            theta, value2, v90, score = run(theta[idx], x, y, train, hold, solver)
            all_values = value.at[idx].set(value2)
            value = value2
        best = jnp.argmin(score)
        return theta[best], value[best], v90[best], all_values

    def shared(inits, x, y, train, hold):
        return jax.vmap(one_problem, in_axes=(None, 0, 0, 0, 0))(inits, x, y, train, hold)

    def per_problem(inits, x, y, train, hold):
        return jax.vmap(one_problem)(inits, x, y, train, hold)

    return jax.jit(shared), jax.jit(per_problem)
