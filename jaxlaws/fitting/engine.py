r"""The multi-start fitting engine: one jit-compiled program, ``vmap``\ ped over inits and over problems.

:func:`fit` fits one law to one data set; :func:`fit_batched` fits ``B`` independent problems with the same
law (all groups x seeds x steps of a sweep) in one call, sharded over local devices when there are several.
Laws that are linear in their parameters skip the search and are solved in closed form (:mod:`.linear`).
Bounds and ridge penalties (:mod:`.regularise`), per-point weights, validation / test splits and ragged
batches (:mod:`.batch`) are all part of the same program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import os
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike, BoundsLike, DTypeLike, KeyLike, PenaltyLike, ScreenLike, SolverLike, Table
from jaxlaws.fitting import _host, index_normal, linear, regularise, validate
from jaxlaws.fitting import batch as batching
from jaxlaws.fitting import fixed as fixing
from jaxlaws.fitting.covariance import of_fits
from jaxlaws.fitting.diagnostics import cut_evaluation, diagnose, evaluate, evaluate_one, flags_of
from jaxlaws.fitting.execute import run_sharded as _run_sharded
from jaxlaws.fitting.metrics import batched_predict, mse_r2
from jaxlaws.fitting.objectives import Objective
from jaxlaws.fitting.regularise import LAW
from jaxlaws.fitting.result import FitError, FitResult
from jaxlaws.fitting.solve import (  # noqa: F401  (re-exported: the screening lives with the search)
    AUTO,
    AUTO_MIN_INITS,
    AUTO_SCREEN,
    SCREEN_BLOCK_RANGE,
    SCREEN_CACHE,
    SELECTIONS,
    Config,
    Screen,
    Weighted,
    bound_arrays,
    check_options,
    keyed_solver,
    make_config,
    resolve_screen,
    screen_block,
    search,
    solver_controls,
    theta_bounds,
)
from jaxlaws.laws.base import Law, as_key

__all__ = ["fit", "fit_batched", "POLISH_STEPS", "default_dtype"]


def fit(
    law: Law,
    x: Table,
    y: ArrayLike,
    *,
    inits: Table | None = None,
    key: KeyLike | None = None,
    objective: Objective | None = None,
    solver: SolverLike | None = None,
    select: Literal["trajectory", "final"] = "trajectory",
    weights: ArrayLike | None = None,
    validation: ArrayLike | None = None,
    test: ArrayLike | None = None,
    bounds: BoundsLike = LAW,
    penalty: PenaltyLike = LAW,
    early_stopping: int | None = None,
    screen: ScreenLike = AUTO,
    dtype: DTypeLike | None = None,
    throw: bool = True,
    simplex_atol: float = validate.SIMPLEX_ATOL,
    normalize: bool = False,
    fixed: Mapping[str, float] | None = None,
    polish: int | None = None,
) -> FitResult:
    r"""Fit ``law`` to points ``(x, y)`` from many initial parameters at once and keep the best.

    Minimises the weighted robust objective plus an optional ridge penalty,

    .. math:: \min_\theta \sum_{n\in\text{fit}} w_n\,\rho\big(r_n(\theta)\big)
              + \tfrac{\lambda}{2} W \sum_{j\in S}(\theta_j - c)^2, \qquad \theta \in [lo, hi],

    with :math:`r_n = y_n - f(x_n; \theta)` (or the log residual), the box imposed by reparametrisation
    (:mod:`jaxlaws.fitting.regularise`) and :math:`W = \sum_n w_n`.

    The first fit of a configuration in a process (law, objective, solver, padded sizes) with the default
    :class:`LevenbergMarquardt` in float64, no penalty, screening or validation, runs the same solver on the host
    in NumPy over the law's jaxpr and compiles nothing; the next call compiles (``JAXLAWS_HOST_FIRST=0``: every
    call compiles). The two agree to round-off.

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      x: ``(n, d)`` inputs (a 1-D ``x`` is one column); checked against ``law.x_kind``. A DataFrame or a
        mapping of columns is matched to ``law.inputs`` by name (any column order); an array by position.
      y: ``(n,)`` observations, or ``(n, k)`` for a law with ``k`` outputs; must lie inside
        ``law.output_range`` (e.g. strictly positive for the static log-linear laws and Chinchilla).
      inits: ``(n_init, P)`` initial parameters in ``law.param_names`` order, or by name (a mapping
        ``{name: (n_init,)}`` or a DataFrame, checked against the law's names); default
        ``law.init_grid(key, x_fit, y_fit)`` on the fitting points. Inits outside ``bounds`` are clipped in.
      key: an int seed or a ``jax.random`` key, needed when the default grid draws random numbers.
      objective: :func:`jaxlaws.huber` or :func:`jaxlaws.squared`; default ``law.default_objective``
        (Huber(1e-3) on log L for Chinchilla, the original's Huber(0.02) for the mixing laws), else least
        squares (a law that declares no objective).
      solver: :class:`LevenbergMarquardt` (default), :class:`LBFGS` or :class:`Adam`.
      select: ``"trajectory"`` keeps each init's best point along its run (the original's rule);
        ``"final"`` its last point. The best init is the one with the lowest objective on the fitting
        points, or on the ``validation`` points when given.
      weights: optional non-negative ``(n,)`` weights :math:`w_n` of the points (default 1; 0 drops a point).
      validation: optional boolean ``(n,)`` mask of *select-by* points: excluded from fitting, their
        (unpenalised, weighted) objective chooses the init and, with ``early_stopping``, the iterate.
      test: optional boolean ``(n,)`` mask of *score-only* points: excluded from fitting and from every
        choice; ``res.test_mae``, ``res.test_rmse`` report the error of the predictions there.
      bounds: ``{name: (lo, hi)}`` box bounds (``None`` for an open side); default ``"law"``: the law's
        ``default_bounds``; ``None``: unbounded.
      penalty: :func:`jaxlaws.ridge`; default ``"law"``: the law's ``default_penalty``; ``None``: none.
      early_stopping: with ``validation``, check the validation objective every ``early_stopping`` solver
        iterations and keep the iterate where it was lowest (the solver restarts its state each segment).
      screen: successive halving (:class:`Screen`), which spends the solver's iterations on the promising
        inits of a large grid. Default ``"auto"``: ``Screen(10, 0.02, min_keep=64)`` on grids of 1,024 inits
        or more (its optimum matches the full grid's to 1e-7 on the Chinchilla, DML-scalebench, DML
        RedPajama (20 problems), RegMix and paper-reference problems: ``benchmarks/bench_fit.py --public``,
        whose timings are in ``benchmarks/RESULTS.md``), none on smaller ones. ``None`` (or ``False``): run
        every init with the full solver -- do so when the optimum matters more than time. Known miss:
        unpenalised (``penalty=None``) on RedPajama 410M, one of 5 problems stops 9% above the full grid, at
        a slowly reached degenerate minimum no 5-20-step screen
        ranks first (5 steps, the former default, also missed one penalised 70M problem by 2.3e-5).
      dtype: ``"float32"`` or ``"float64"``. Default (``None``): :func:`default_dtype`, float64 on CPU
        (where it is native and no slower than float32 for these fits, and float32 objectives are off at 1e-9
        relative), float32 on GPU and TPU (where float64 is slow or emulated), then polished.
      polish: Levenberg-Marquardt iterations run in float64 from each problem's float32 optimum (one start
        per problem: cheap next to the search), so a float32 search ends at the float64 optimum. Default
        (``None``): :data:`POLISH_STEPS` when the dtype was left to :func:`default_dtype` and came out float32,
        else 0. Not applied with ``validation=`` (the validation objective chose the iterate).
      throw: raise :class:`FitError` when every init diverged; otherwise return ``success=False``.
      simplex_atol: for mixture inputs, how far a row's sum may be from 1 (default 1e-4); e.g. 0.005 for
        mixtures rounded to 3 decimals. Rows are fitted as given.
      normalize: divide each mixture row by its sum first (entries need only be >= 0: rounded mixtures,
        percentages and token counts all work). Either way ``res.row_sum_error`` keeps each row's sum
        minus 1 as given and ``res.max_row_sum_error`` the worst.
      fixed: ``{name: value}`` parameters held at those values (:func:`jaxlaws.fitting.fixed.fix`): only the
        others are fitted (and counted against the points); ``res.params`` is the full vector.

    Returns:
      A :class:`FitResult` (``res.params``: ``(P,)``); check ``res.ok`` / ``res.flags`` before trusting it (a
      fit can end without converging, interpolate its data, leave parameters undetermined or explain less than
      the mean). ``res.objective`` is the minimised (penalised) objective on the fitting points.
    """
    x = validate.named_x(law, x)  # a table or dict of columns: by the law's input names
    xs = validate.check_x(law, x, simplex_atol=simplex_atol, normalize=normalize)  # errors without a batch index
    x = validate.as_float_array("x", x).reshape(xs.shape[0], -1)  # as given: fit_batched reports row sums
    obj = law.default_objective if objective is None else objective
    validate.check_y(law, y, x.shape[0], positive=getattr(obj, "log", False))  # errors without a batch index
    one = lambda a: None if a is None else np.asarray(a)[None]  # noqa: E731
    res = fit_batched(
        law,
        x[None],
        np.asarray(y)[None],
        inits=inits,
        key=key,
        objective=objective,
        solver=solver,
        select=select,
        weights=one(weights),
        validation=one(validation),
        test=one(test),
        bounds=bounds,
        penalty=penalty,
        early_stopping=early_stopping,
        screen=screen,
        dtype=dtype,
        throw=throw,
        simplex_atol=simplex_atol,
        normalize=normalize,
        fixed=fixed,
        polish=polish,
    )
    return res[0]


def fit_batched(
    law: Law,
    x: Table,
    y: ArrayLike,
    *,
    inits: Table | None = None,
    key: KeyLike | None = None,
    objective: Objective | None = None,
    solver: SolverLike | None = None,
    select: Literal["trajectory", "final"] = "trajectory",
    weights: ArrayLike | None = None,
    validation: ArrayLike | None = None,
    test: ArrayLike | None = None,
    bounds: BoundsLike = LAW,
    penalty: PenaltyLike = LAW,
    early_stopping: int | None = None,
    screen: ScreenLike = AUTO,
    dtype: DTypeLike | None = None,
    throw: bool = True,
    simplex_atol: float = validate.SIMPLEX_ATOL,
    normalize: bool = False,
    memory_budget: int | None = None,
    init_objectives: bool = True,
    fixed: Mapping[str, float] | None = None,
    polish: int | None = None,
) -> FitResult:
    """Fit ``B`` independent problems ``(x[b], y[b])`` with the same law in one compiled program.

    Each problem is fitted as :func:`fit` would fit it alone; with several local devices the problems are sharded
    across them, and batches larger than ``memory_budget`` stream through the same compiled program in chunks.

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      x: ``(B, n, d)`` inputs -- or a list of ``B`` arrays of different lengths (ragged problems, padded with
        masks inside the one program), or a table / mapping of columns with a leading batch axis.
      y: ``(B, n)`` or ``(B, n, k)`` observations (a list of ``B`` arrays for ragged problems).
      inits: ``(n_init, P)`` shared by all problems, or ``(B, n_init, P)``; default the law's grid per problem.
      weights, validation, test: ``(B, n)`` (or ``(n,)`` shared; lists of per-problem arrays for ragged
        problems), as in :func:`fit`.
      memory_budget: bytes one chunk of problems may use (default a quarter of RAM).
      init_objectives: ``False`` returns ``res.init_objectives`` as an empty ``(B, 0)`` array instead of every
        init's objective: that table is ``B x n_init`` float64 (100,000 problems x 6,000 inits: 4.8 GB), more
        than the rest of the result for large batches.
      key, objective, solver, select, bounds, penalty, early_stopping, screen, dtype, throw, simplex_atol,
        normalize, fixed, polish: as in :func:`fit`.

    Returns:
      A :class:`FitResult` whose every field has a leading batch axis ``B`` (``res.params``: ``(B, P)``);
      ``res[b]`` is problem ``b``'s result.
    """
    if fixed:  # fit the law over its free parameters; the result is mapped back to the full vector at the end
        fix = fixing.fixing(law, fixed)
        law, inits, bounds, penalty = fix.free, fix.inits(inits), fix.bounds(bounds), fix.penalty(penalty)
    x = validate.named_x(law, x, batched=True)
    use_val = validation is not None
    user_solver = solver
    objective, solver = check_options(law, objective, solver, select, early_stopping, use_val)
    box = regularise.resolve_bounds(law, bounds)
    pen = regularise.resolve_penalty(law, penalty)
    x, row_err = validate.mixtures(law, x, simplex_atol, normalize)
    data = batching.build(law, x, y, weights, validation, test, positive=objective.log, simplex_atol=simplex_atol)
    x, y = data.x, data.y
    batch = x.shape[0]
    train = data.fitting
    validate.check_counts(law, train.sum(axis=1), "fitting points")
    if use_val and np.any(data.validation.sum(axis=1) == 0):
        raise ValueError("every problem needs at least one validation point when validation is given")
    w_fit = np.where(train, data.weights, 0.0)

    with _precision(dtype) as fdtype:
        evaluated = []
        validate.check_predict(law, x.shape[1:], fdtype)  # a wrong output shape or dtype: one clear error
        val_obj = None
        if law.is_linear:
            if objective.log:
                raise ValueError(f"{law.name} is linear: fit the log target directly with objective.log=False")
            if (
                inits is not None
                or user_solver is not None
                or use_val
                or screen not in (AUTO, None, False)
                or box is not None
                or pen is not None
            ):
                raise ValueError(
                    f"{law.name} is linear and solved in closed form: inits, solver, validation, "
                    "bounds and penalty do not apply"
                )
            params, obj, iters = linear.solve_law(law, x, y, w_fit, objective.delta, fdtype)
            init_obj = obj[:, None] if init_objectives else np.zeros((len(obj), 0))
            conv = iters < linear.IRLS_MAX_ITER  # least squares: 0 iterations; Huber: IRLS reached its fixed point
            selection = "closed_form"
        else:
            if inits is None:
                if law.init_grid is None:
                    raise ValueError(
                        f"{law.name} has no init_grid: pass inits=(n_init, {law.n_params}) initial "
                        f"parameters {law.param_names} (or give the law an init_grid)"
                    )
                grids = [
                    law.init_grid(as_key(key) if law.needs_key else key, x[b][train[b]], y[b][train[b]])
                    for b in range(batch)
                ]
                inits = (
                    np.stack(grids)
                    if any(g.shape != grids[0].shape or not np.array_equal(g, grids[0]) for g in grids[1:])
                    else grids[0]
                )
            inits = validate.check_inits(law, inits, batch)
            n_init = inits.shape[-2]
            cfg = make_config(
                law,
                objective,
                solver,
                select,
                use_val,
                screen,
                n_init,
                box,
                pen,
                early_stopping,
                init_objectives,
                evaluate=fdtype == np.float64,  # float64: what the diagnostics read, from this program
            )
            if cfg.index is not None:
                index_normal.check_index(law, x, inits)
            reparam = cfg.box  # the box by reparametrisation (solvers other than LM), else held by the solver
            program = _program(cfg)
            w_val = np.where(data.validation, data.weights, 0.0)
            lo, hi = (
                np.broadcast_to(np.asarray(b, fdtype), (batch, law.n_params))  # per problem: chunked like x
                for b in bound_arrays(box, law.n_params, fdtype)
            )
            ctl = np.broadcast_to(solver_controls(solver, fdtype), (batch, solver_controls(solver).shape[0]))
            raw = [regularise.from_box(inits, reparam), x, y, w_fit, w_val, lo, hi, ctl]  # float64: the polish reads
            args = [np.asarray(a, fdtype) for a in raw]
            shared_inits = inits.ndim == 2
            host = _host.first_run(cfg, args, shared_inits) if fdtype == np.float64 else None
            out = host if host is not None else _run_sharded(program, args, shared_inits, memory_budget)
            params, obj, v90, init_obj, score, *evaluated = out
            steps = (POLISH_STEPS if dtype is None and fdtype == np.float32 else 0) if polish is None else polish
            if steps and not use_val:
                params, obj, v90 = _polish(cfg, steps, params, obj, v90, raw, memory_budget)
                fdtype, evaluated = np.float64, []
            conv = None  # the objective's improvement is judged against the round-off floor below
            selection = "validation" if use_val else select
            val_obj = np.asarray(score, np.float64) if use_val else None
        params = np.asarray(params, np.float64)
        obj = np.asarray(obj, np.float64)
        success = np.isfinite(obj) & np.all(np.isfinite(params), axis=1)
        params = np.where(success[:, None], params, np.nan)
        ev = (  # at the optimum, for the metrics, diagnostics and covariance: from the fitting program, or one more
            cut_evaluation(evaluated, x.shape[1], law.n_outputs)
            if evaluated  # the program's, in float64 (no polish after it)
            else evaluate(law, objective, np.where(success[:, None], params, 0.0), x, y)
        )
        mse, r2 = mse_r2(law, params, x, y, train, fdtype, pred=ev.predictions)
        diag = diagnose(law, objective, params, x, y, train, fdtype, weights=w_fit, penalty=pen, box=box, evaluated=ev)
        if conv is None:  # stopped improving: over the last 10% of the run, by sqrt(eps) relative or round-off
            tol = np.sqrt(np.finfo(fdtype).eps)
            with np.errstate(invalid="ignore"):  # inf - inf for a problem whose every init diverged
                conv = np.isfinite(obj) & ((v90 - obj) <= tol * np.abs(obj) + np.maximum(diag.floor, 1e-12))
        cov = of_fits(law, objective, params, x, y, w_fit, pen, box, evaluated=ev)  # standard errors there
        test_mae, test_rmse, n_test = _test_errors(law, params, data) if test is not None else (None,) * 3

    if throw and not np.all(success):
        bad = np.flatnonzero(~success)
        raise FitError(
            f"{law.name}: every init diverged for problem(s) {bad[:10].tolist()}"
            f"{' ...' if len(bad) > 10 else ''}; try other inits or a smaller step"
        )
    converged = conv & success & diag.gradient_small
    res = FitResult(
        law=law,
        params=params,
        objective=obj,
        mse=mse,
        r2=r2,
        n_points=train.sum(axis=1),
        converged=converged,
        success=success,
        init_objectives=np.asarray(init_obj, np.float64),
        selection=selection,
        decrement=diag.decrement,
        rank=diag.rank,
        n_distinct=diag.n_distinct,
        identifiable=diag.identifiable,
        saturated=diag.saturated,
        flags=flags_of(
            success,
            converged,
            diag.saturated,
            diag.identifiable,
            diag.constant_target,
            r2,
            diag.constant_reachable,
            diag.stuck_at_bound,
        ),
        validation_objective=val_obj,
        test_mae=test_mae,
        test_rmse=test_rmse,
        n_test=n_test,
        bounds=box,
        penalty=pen,
        row_sum_error=row_err,
        normalized=bool(normalize),
        covariance=cov,
        simplex_atol=float(simplex_atol),
    )
    return fix.result(res) if fixed else res


def _test_errors(law: Law, params: np.ndarray, data: batching.Batch):
    """Mean absolute and root-mean-square error of the predictions on each problem's test points."""
    with jax.enable_x64(True):
        pred = np.asarray(batched_predict(law.predict)(np.nan_to_num(params), data.x))
    err = np.abs(data.y - pred).reshape(len(params), data.x.shape[1], -1)
    t = data.test[..., None] & np.ones_like(err, bool)
    n_test = data.test.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.where(t, err, 0.0).sum(axis=(1, 2)) / t.sum(axis=(1, 2))
        rmse = np.sqrt(np.where(t, err**2, 0.0).sum(axis=(1, 2)) / t.sum(axis=(1, 2)))
    bad = ~np.all(np.isfinite(params), axis=1)
    return np.where(bad, np.nan, mae), np.where(bad, np.nan, rmse), n_test


#: float64 Levenberg-Marquardt iterations that polish a float32 fit (see ``polish`` in :func:`fit`)
POLISH_STEPS = 20


def default_dtype() -> str:
    """The floating type a fit runs in when none is given: ``"float64"`` on the CPU backend (native there, and
    no slower than float32 for these small problems), ``"float32"`` on GPU and TPU (where float64 runs at a
    fraction of the speed or is emulated); :func:`fit` then polishes the float32 optimum in float64."""
    return "float64" if _backend() == "cpu" else "float32"


#: modules whose presence means JAX may start an accelerator backend (PJRT plugins, libtpu)
_ACCELERATOR_MODULES = ("jax_plugins", "jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "libtpu")


def _backend() -> str:
    """``jax.default_backend()``, without starting JAX's backends when they cannot be anything but the CPU: a
    one-off fit that runs on the host (NumPy) then never pays for the XLA client's start. The CPU is certain when
    ``jax_platforms`` names it first, or when no PJRT plugin or libtpu is installed."""
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # a JAX without this private helper: ask JAX
        started = True
    if not started:
        platforms = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")
        if platforms:
            if platforms.split(",")[0].strip().lower() == "cpu":
                return "cpu"
        elif not any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_MODULES):
            return "cpu"
    return jax.default_backend()


@contextlib.contextmanager
def _precision(dtype: Any):
    dtype = np.dtype(default_dtype() if dtype is None else dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    with jax.enable_x64(dtype == np.float64):
        yield dtype.type


def _polish(
    cfg: Config, steps: int, params: np.ndarray, obj: np.ndarray, v90: np.ndarray, args: list, budget: int | None
):
    """Continue each problem's optimum for ``steps`` solver iterations in float64, from it alone (one start
    per problem); returns ``(params, objective, value_at_90)`` of the polished fits (a diverged one is kept
    as it was: the polish starts at the optimum and keeps the best point of its run, so it cannot lose)."""
    cfg = dataclasses.replace(
        cfg,
        solver=keyed_solver(dataclasses.replace(cfg.solver, steps=int(steps)), cfg.early),
        screen=None,
        select="trajectory",
        keep_inits=False,
    )
    ctl = np.array(args[7], np.float64)
    if ctl.shape[1]:  # the LM's run-time settings: the polish's step count
        ctl[:, 0] = steps
    with jax.enable_x64(True):
        start = regularise.from_box(np.where(np.isfinite(params), params, 0.0), cfg.box)[:, None, :]
        out = _run_sharded(
            _program(cfg),
            [np.asarray(a, np.float64) for a in [start] + list(args[1:7]) + [ctl]],
            shared_inits=False,
            budget=budget,
        )
    p2, obj2, v2 = (np.asarray(o, np.float64) for o in out[:3])
    ok = np.isfinite(obj2) & np.all(np.isfinite(params), axis=1)
    return (
        np.where(ok[:, None], p2, params),
        np.where(ok, obj2, np.asarray(obj, np.float64)),
        np.where(ok, v2, np.asarray(v90, np.float64)),
    )


@functools.lru_cache(maxsize=64)
def _program(cfg: Config):
    """``vmap`` of :func:`jaxlaws.fitting.solve.search` (the multi-start search :func:`jaxlaws.solve` runs) over
    problems, compiled once per static configuration: problems -> inits -> solver run. Variants: inits shared
    by every problem, one grid per problem, and one problem alone."""

    def one_problem(inits, x, y, w, wv, lo, hi, controls, lanes=False):
        u, value, v90, all_values, score = search(
            cfg, inits, x, y, w, wv, bounds=(lo, hi), controls=controls, lanes=lanes
        )
        theta = regularise.to_box(u, cfg.box)
        if not cfg.evaluate:
            return theta, value, v90, all_values, score
        ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(theta))  # a failed fit: evaluated at 0, as evaluate does
        return (theta, value, v90, all_values, score) + evaluate_one(
            cfg.predict, cfg.objective, jnp.where(ok, theta, 0.0), x, y
        )

    # a third variant for a batch of one problem: no vmap over problems (one level of batching less to trace)
    return (
        jax.jit(jax.vmap(one_problem, in_axes=(None,) + (0,) * 7)),
        jax.jit(jax.vmap(one_problem)),
        # one problem alone (a one-off fit): the inits' loop in blocks that drop the stopped ones (run_lanes)
        jax.jit(functools.partial(one_problem, lanes=True)),
    )
