r"""The traceable fit: :func:`solve` minimises a law's objective from many starts inside the caller's program.

:func:`solve` is a pure JAX function: it runs under ``jax.jit``, ``jax.vmap`` (over problems, data sets,
seeds) and ``jax.grad``, with no host synchronisation inside. It is the core of :func:`jaxlaws.fit_batched`,
which adds the host-side checks, diagnostics and sharding around ``vmap(solve)``.

Gradients flow *through* the fit by implicit differentiation (as optimistix's ``ImplicitAdjoint``), not by
unrolling the solver. At the optimum :math:`u^\star` of the penalised objective :math:`F(u; x, y, w)` (``u``
the unconstrained coordinates of the bounds' reparametrisation, :mod:`.regularise`) the gradient vanishes,
:math:`\nabla_u F(u^\star(a); a) = 0` for the data :math:`a = (x, y, w)`, so by the implicit function theorem

.. math:: \frac{\partial u^\star}{\partial a} = -\big[\nabla^2_{uu} F\big]^{-1}\,\nabla^2_{ua} F,
          \qquad \theta^\star = T(u^\star).

The Hessian is the objective's full second derivative (for Huber, piecewise: exact away from the kink).
Where it is singular (a parameter the data do not determine, or one pushed to a bound) the derivatives are
meaningless and :attr:`Solution.result` says ``RESULTS.singular_hessian``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlaws._typing import ArrayLike, BoundsLike, PenaltyLike, ScreenLike, SolverLike, Table
from jaxlaws.fitting import index_normal, regularise
from jaxlaws.fitting.covariance import covariance
from jaxlaws.fitting.execute import CodeKey
from jaxlaws.fitting.objectives import Objective, squared
from jaxlaws.fitting.regularise import LAW
from jaxlaws.fitting.solvers import LevenbergMarquardt, run_lanes
from jaxlaws.laws.base import Law, SingleIndex

__all__ = [
    "check_options",
    "make_config",
    "keyed_solver",
    "solver_controls",
    "SELECTIONS",
    "Screen",
    "AUTO",
    "AUTO_SCREEN",
    "AUTO_MIN_INITS",
    "SCREEN_CACHE",
    "SCREEN_BLOCK_RANGE",
    "screen_block",
    "resolve_screen",
    "RESULTS",
    "Solution",
    "HESSIAN_RTOL",
    "DECREMENT_RTOL",
    "Config",
    "objective_fn",
    "search",
    "solve",
    "prepare",
    "theta_bounds",
    "bound_arrays",
    "Weighted",
]

SELECTIONS = ("trajectory", "final")


# --------------------------------------------------------------------------- screening of large grids
@dataclasses.dataclass(frozen=True)
class Screen:
    """Successive halving for large init grids (``screen=`` of :func:`jaxlaws.fit` and :func:`solve`).

    Runs every init for ``steps`` solver iterations, then continues the best ``max(min_keep, round(keep * n_init))``
    of them (all, if the grid is smaller) with the full solver, from where the screening left them -- inside the
    same compiled program; pruned inits report their screening objective in ``init_objectives``. The cost is
    ``steps * n_init + solver.steps * kept`` solver iterations instead of ``solver.steps * n_init``: with
    ``"auto"``'s :data:`AUTO_SCREEN` (10 steps, 2%, at least 64) about 4.5x fewer on a 6,000-init grid.

    Attributes:
      steps: solver iterations every init runs before the cut.
      keep: the fraction of the inits that continue, in (0, 1].
      min_keep: the fewest inits that continue.
    """

    steps: int = 10
    keep: float = 0.1
    min_keep: int = 1

    def __post_init__(self) -> None:
        ok_int = lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0  # noqa: E731
        if not (
            ok_int(self.steps) and ok_int(self.min_keep) and isinstance(self.keep, numbers.Real) and 0 < self.keep <= 1
        ):
            raise ValueError(f"Screen needs steps > 0, 0 < keep <= 1 and min_keep >= 1, got {self}")

    def kept(self, n_init: int) -> int:
        """How many of ``n_init`` inits continue past the screening."""
        return max(1, min(n_init, max(self.min_keep, int(round(self.keep * n_init)))))


AUTO = "auto"  # sentinel: screen=AUTO screens large grids with AUTO_SCREEN (the default)
#: The default screening of a grid of at least ``AUTO_MIN_INITS`` inits. Checked against the full grid on
#: every public problem and the paper's reference fits by ``benchmarks/bench_fit.py --public``.
AUTO_SCREEN = Screen(steps=10, keep=0.02, min_keep=64)
AUTO_MIN_INITS = 1024
#: The screening runs over the whole grid in blocks of inits (``lax.map``), so that a block's residuals and
#: Jacobian columns stay in cache across the solver's sums over points: as many inits as keep about
#: ``SCREEN_CACHE`` bytes of them (``N (P + 4)`` numbers each), a power of two in ``SCREEN_BLOCK_RANGE``
#: (the measured choice is in ``benchmarks/RESULTS.md``). The full-grid run stays one ``vmap``.
SCREEN_CACHE = 8 << 20
SCREEN_BLOCK_RANGE = (32, 256)


def screen_block(n_out: int, n_params: int, itemsize: int = 8) -> int:
    """Inits per screening block for ``n_out`` residuals and ``n_params`` parameters (see ``SCREEN_CACHE``)."""
    lo, hi = SCREEN_BLOCK_RANGE
    fit = SCREEN_CACHE // max(1, n_out * (n_params + 4) * itemsize)
    return int(min(hi, max(lo, 1 << max(0, int(fit).bit_length() - 1))))


def resolve_screen(screen: Any, n_init: int) -> Screen | None:
    """``screen`` as given (a :class:`Screen`), ``None`` for the full grid (``None`` or ``False``), or for
    ``"auto"``: :data:`AUTO_SCREEN` when the grid has at least :data:`AUTO_MIN_INITS` inits, else ``None``."""
    if isinstance(screen, str) and screen == AUTO:
        screen = AUTO_SCREEN if n_init >= AUTO_MIN_INITS else None
    if screen is None or screen is False:
        return None
    if not isinstance(screen, Screen):
        raise ValueError(f"screen must be a jaxlaws.Screen, 'auto', None or False, got {screen!r}")
    return None if screen.kept(n_init) >= n_init else screen


# --------------------------------------------------------------------------- result codes and the result
class RESULTS:
    """Integer result codes of a :class:`Solution` (an ``int32`` array, so they survive ``jit`` and ``vmap``).

    Attributes:
      successful: a finite optimum whose gradient is small and whose Hessian is regular.
      nonfinite: no init reached a finite objective.
      singular_hessian: the objective's Hessian at the optimum is singular or indefinite (relative to its
        scale): some parameter combination is not determined there, and derivatives through the fit are not
        defined.
      not_converged: the Gauss-Newton decrement at the optimum is still large (the solver stopped early).
      names: the codes' names in code order; ``RESULTS.name(code)`` reads a code (or an array of them).
    """

    successful = 0
    nonfinite = 1
    singular_hessian = 2
    not_converged = 3
    names = ("successful", "nonfinite", "singular_hessian", "not_converged")

    @classmethod
    def name(cls, code: Any) -> Any:
        """The name of a code (a string; an array of strings for an array of codes)."""
        codes = np.asarray(code)
        if codes.ndim == 0:
            return cls.names[int(codes)]
        return np.asarray([cls.names[int(c)] for c in codes.reshape(-1)], dtype=object).reshape(codes.shape)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "params",
        "objective",
        "init_objectives",
        "value_at_90",
        "score",
        "result",
        "decrement",
        "grad_norm",
        "hessian_min_eig",
        "covariance",
    ],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Solution:
    r"""What :func:`solve` returns: a pytree of arrays (``jax.tree_util.tree_leaves`` gives them all).

    Attributes:
      params: ``(P,)`` the best parameters in ``law.param_names`` order (inside the bounds); differentiable
        w.r.t. ``x``, ``y`` and ``weights`` by implicit differentiation (module docstring).
      objective: ``()`` the penalised objective :math:`\sum_n w_n\rho(r_n) + \text{penalty}` at ``params``.
      init_objectives: ``(n_init,)`` every init's objective (a screened-out init: its screening objective).
      value_at_90: ``()`` the chosen init's best objective at 90% of its run (how much it still moved).
      score: ``()`` what chose the init: the objective, or the validation objective with ``validation=``.
      result: ``()`` int32, a :class:`RESULTS` code; ``RESULTS.name(sol.result)`` reads it.
      decrement: ``()`` the Newton decrement :math:`\tfrac12 g^\top H^{-1} g` at the optimum in the
        unconstrained coordinates (the decrease one more Newton step would promise).
      grad_norm: ``()`` :math:`\lVert\nabla_u F\rVert_2` at the optimum.
      hessian_min_eig: ``()`` the smallest eigenvalue of :math:`\nabla^2_{uu}F` divided by the largest
        absolute one (<= ``1e-10`` or negative: singular / indefinite).
      covariance: ``(P, P)`` the covariance of ``params`` at the optimum (:func:`jaxlaws.covariance`:
        Gauss-Newton for least squares, the sandwich for Huber); NaN rows and columns for parameters on a
        bound, all NaN where it is undefined (singular, too few points).
    """

    params: jax.Array
    objective: jax.Array
    init_objectives: jax.Array
    value_at_90: jax.Array
    score: jax.Array
    result: jax.Array
    decrement: jax.Array
    grad_norm: jax.Array
    hessian_min_eig: jax.Array
    covariance: jax.Array

    @property
    def successful(self) -> jax.Array:
        """``result == RESULTS.successful`` (an array, traceable)."""
        return self.result == RESULTS.successful


#: relative size of the smallest Hessian eigenvalue below which the Hessian counts as singular
HESSIAN_RTOL = 1e-10
#: decrement relative to the objective above which the optimum counts as not converged
DECREMENT_RTOL = 1e-6


# --------------------------------------------------------------------------- the objective the solvers see
class Weighted:
    r"""The objective a solver sees: :math:`\sum_n w_n\rho(r_n) + \tfrac12\sum_k s_k^2` over the residual
    vector ``[r (N,), s (K,)]`` -- per-point weights on the data terms, the penalty's residuals ``s`` under a
    squared loss. Built inside the traced program (``w`` is traced); exposes what the solvers call."""

    def __init__(self, base: Objective, w: jax.Array):
        self.base, self.w = base, w
        self.name, self.delta, self.log = base.name, base.delta, base.log

    def _split(self, r):
        n = self.w.shape[0]
        return r[..., :n], r[..., n:]

    def residual(self, y, pred):
        return self.base.residual(y, pred)

    def rho(self, r):
        d, s = self._split(r)
        return jnp.concatenate([self.w * self.base.rho(d), 0.5 * s * s], axis=-1)

    def weight(self, r):
        d, s = self._split(r)
        return jnp.concatenate([self.w * self.base.weight(d), jnp.ones_like(s)], axis=-1)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything static about a fit (hashable: it keys the compiled program). Laws sharing a ``predict``
    (``log_linear(m, own=i)`` for every ``i``) share the program."""

    predict: Any
    objective: Objective
    solver: Any
    select: str = "trajectory"
    use_val: bool = False
    screen: tuple[int, int] | None = None  # (steps, kept)
    box: Any = None
    pen: Any = None
    early: int | None = None
    index: SingleIndex | None = None
    keep_inits: bool = True
    # bounds held by the solver in theta itself (LevenbergMarquardt's projected steps), their values passed at
    # run time as ``bounds=(lo, hi)`` arrays (so new values do not recompile); then ``box`` is None
    bounded: bool = False
    # LevenbergMarquardt: unrolled normal equations and solves (large init grids) or the compact loop form
    unroll: bool = True
    # the fitting program also evaluates the fit at its optimum (diagnostics.evaluate_one): no second program
    evaluate: bool = False


#: Init grids from this size on run the unrolled form of the normal equations (fastest to run over many inits);
#: smaller ones, as a one-off fit from a few dozen starts, the compact form (a fraction of the code to compile).
UNROLL_MIN_INITS = 256


def keyed_solver(solver: Any, early: int | None = None) -> Any:
    """The solver as the compiled program is keyed on: a :class:`LevenbergMarquardt`'s settings are passed at run
    time (``LevenbergMarquardt.controls``), so every one keys as the default -- new steps or tolerances do not
    recompile -- except under early stopping, whose segments are counted from the static step count."""
    return LevenbergMarquardt() if isinstance(solver, LevenbergMarquardt) and early is None else solver


def solver_controls(solver: Any, dtype: Any = np.float64) -> np.ndarray:
    """The run-time settings of ``solver`` that :func:`keyed_solver` leaves out of the program's key (an empty
    array for the other solvers, whose settings stay static)."""
    return solver.controls().astype(dtype) if isinstance(solver, LevenbergMarquardt) else np.zeros(0, dtype)


def _flat_weights(w: jax.Array, y: jax.Array) -> jax.Array:
    """Per-point weights ``(n,)`` broadcast over a multi-output ``y (n, k)`` and flattened like it."""
    return jnp.broadcast_to(w.reshape(w.shape + (1,) * (y.ndim - 1)), y.shape).reshape(-1)


def objective_fn(cfg: Config, u: jax.Array, x: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    r"""The penalised objective :math:`F(u; x, y, w) = \sum_n w_n\rho(r_n(T(u))) + \tfrac12\lVert s(T(u))\rVert^2`
    that the solver minimises, as a smooth function of the data (points with ``w = 0`` contribute nothing)."""
    wf = _flat_weights(w, y)
    theta = regularise.to_box(u, cfg.box)
    r = cfg.objective.residual(y, cfg.predict(theta, x)).reshape(-1)
    r = jnp.where(wf > 0, r, 0.0)
    s = regularise.penalty_residuals(theta, cfg.pen, jnp.sum(wf))
    return jnp.sum(wf * cfg.objective.rho(r)) + 0.5 * jnp.sum(s * s)


class _Problem:
    """One problem's functions of the unconstrained parameters ``u``, shared by every init's run: the residual
    vector the solver sees, its objective (``value_of``), the validation score and the single-index normal
    equations (``structured``, when the law has them)."""

    def __init__(self, cfg: Config, x, y, w, wv):
        self.cfg, self.x, self.y = cfg, x, y
        self.wf, self.wvf = _flat_weights(w, y), _flat_weights(wv, y)
        self.total = jnp.sum(self.wf)
        self.wobj = Weighted(cfg.objective, self.wf)
        self.structured = (
            None
            if cfg.index is None
            else index_normal.normal_equations(
                cfg.index, cfg.objective, cfg.box, cfg.pen, x, y.reshape(-1), self.wf, self.total
            )
        )

    def data_res(self, theta):
        return self.cfg.objective.residual(self.y, self.cfg.predict(theta, self.x)).reshape(-1)

    def res(self, u):
        theta = regularise.to_box(u, self.cfg.box)
        r = jnp.where(self.wf > 0, self.data_res(theta), 0.0)
        return jnp.concatenate([r, regularise.penalty_residuals(theta, self.cfg.pen, self.total)])

    def value_of(self, u):
        v = jnp.sum(self.wobj.rho(self.res(u)))
        return jnp.where(jnp.isfinite(v), v, jnp.inf)

    def val_score(self, u):
        rv = jnp.where(self.wvf > 0, self.data_res(regularise.to_box(u, self.cfg.box)), 0.0)
        v = jnp.sum(self.wvf * self.cfg.objective.rho(rv))
        return jnp.where(jnp.isfinite(v), v, jnp.inf)

    def solver_kw(self, solver: Any, bounds, controls) -> dict:
        """The keyword arguments of a run of ``solver`` on this problem (bounds, run-time controls, form)."""
        kw = {} if self.structured is None else dict(normal=self.structured)
        if self.cfg.bounded:
            kw.update(lower=bounds[0], upper=bounds[1])
        if isinstance(solver, LevenbergMarquardt):
            kw.update(unroll=self.cfg.unroll)
            if controls is not None and controls.shape[0] and self.cfg.early is None:  # early stopping: static
                kw.update(controls=controls)
        return kw


def _one_init(cfg: Config, solver: Any, u0, x, y, w, wv, bounds=None, controls=None):
    """One init's run: its best point ``u``, objective there, the objective at 90% and the selection score.
    ``bounds``: ``(lo, hi)`` arrays ``(P,)`` the solver holds ``theta`` in (``cfg.bounded``); ``controls``: a
    :class:`LevenbergMarquardt`'s run-time settings (:func:`solver_controls`; none for the other solvers)."""
    pr = _Problem(cfg, x, y, w, wv)

    def call(solver, u):
        return solver(pr.res, pr.wobj, u, **pr.solver_kw(solver, bounds, controls))

    if cfg.early is None:
        tr = call(solver, u0)
        u = tr.final_params if cfg.select == "final" else tr.params
        v90 = tr.value_at_90
    else:  # segments of `early` iterations; keep the iterate with the lowest validation objective
        seg = dataclasses.replace(solver, steps=cfg.early)

        def body(carry, _):
            cur, best_u, best_s = carry
            tr = call(seg, cur)
            s = pr.val_score(tr.final_params)
            better = s < best_s
            return (tr.final_params, jnp.where(better, tr.final_params, best_u), jnp.where(better, s, best_s)), None

        n_seg = max(1, solver.steps // cfg.early)
        (_, u, _), _ = jax.lax.scan(body, (u0, u0, pr.val_score(u0)), None, length=n_seg)
        v90 = pr.value_of(u)
    value = pr.value_of(u)
    score = jnp.where(jnp.isfinite(value), pr.val_score(u), jnp.inf) if cfg.use_val else value
    return u, value, v90, score


#: The blocks of inits the compact LM keeps running as they stop (:func:`run_lanes`): a quarter, a sixteenth.
LANE_BLOCKS = (4, 16)


def _lm_lanes(cfg: Config, solver: Any, inits, x, y, w, wv, bounds=None, controls=None, compact: bool = True):
    """Every init's LM run as one batched loop (:func:`jaxlaws.fitting.solvers.run_lanes`) that abandons the
    hopeless inits (unless the inits are selected by a validation score, which a hopeless init may still win);
    ``compact``: it continues with a block of the inits still running once most have stopped (else it is
    ``vmap``'s loop: a smaller program). Per init, what :func:`_one_init` returns."""
    pr = _Problem(cfg, x, y, w, wv)
    start, body, running, finish, prune = solver.machine(
        pr.res, pr.wobj, inits[0], **pr.solver_kw(solver, bounds, controls)
    )
    n = inits.shape[0]
    blocks = tuple(sorted({-(-n // k) for k in LANE_BLOCKS if -(-n // k) < n}, reverse=True)) if compact else ()
    prune = None if cfg.use_val else prune
    memo = jnp.asarray(jnp.inf, inits.dtype)
    states = run_lanes(body, running, jax.vmap(start)(inits), blocks, prune, memo)
    tr = jax.vmap(finish)(states)
    u = tr.final_params if cfg.select == "final" else tr.params
    value = jax.vmap(pr.value_of)(u)
    score = jnp.where(jnp.isfinite(value), jax.vmap(pr.val_score)(u), jnp.inf) if cfg.use_val else value
    return u, value, tr.value_at_90, score


def search(cfg: Config, inits_u, x, y, w, wv, bounds=None, controls=None, lanes: bool = False):
    """The multi-start search of one problem (no derivatives): ``inits_u (n_init, P)`` in unconstrained
    coordinates -> ``(u_best, objective, value_at_90, init_objectives, score)``. ``bounds``: with
    ``cfg.bounded``, the ``(lo, hi)`` arrays of the box; ``controls``: the solver's run-time settings
    (:func:`solver_controls`).
    ``lanes``: run a plain (compact) LM's inits in blocks that drop the stopped ones
    (:func:`jaxlaws.fitting.solvers.run_lanes`); the engine's one-problem program does, the traced ``solve`` and
    the programs over many problems keep one loop over all inits (a smaller program under an outer ``vmap``).
    Either way an LM run abandons the hopeless inits (:class:`LevenbergMarquardt`)."""
    has_controls = controls is not None and controls.shape[0] > 0

    def run(inits, solver, block=None, steps=None):  # steps: the screening's cap, in place of the controls' one
        ctl = controls.at[0].set(steps) if has_controls and steps is not None else controls
        if isinstance(solver, LevenbergMarquardt) and cfg.early is None and not block:
            compact = lanes and not cfg.unroll
            return _lm_lanes(cfg, solver, inits, x, y, w, wv, bounds=bounds, controls=ctl, compact=compact)
        f = functools.partial(_one_init, cfg, solver, bounds=bounds, controls=ctl)
        if block and inits.shape[0] > block:  # blocks of inits, one after the other: each block's arrays stay
            return jax.lax.map(lambda u: f(u, x, y, w, wv), inits, batch_size=block)  # in cache
        return jax.vmap(f, in_axes=(0, None, None, None, None))(inits, x, y, w, wv)

    if cfg.screen is None:
        u, value, v90, score = run(inits_u, cfg.solver)
        all_values = value
    else:
        steps, keep = cfg.screen
        block = screen_block(y.size, inits_u.shape[-1], inits_u.dtype.itemsize)
        u, value, _, _ = run(inits_u, dataclasses.replace(cfg.solver, steps=steps), block, steps)
        _, idx = jax.lax.top_k(-value, keep)
        u, value2, v90, score = run(u[idx], cfg.solver)
        all_values = value.at[idx].set(value2)
        value = value2
    best = jnp.argmin(score)
    if not cfg.keep_inits:  # nothing per init leaves the program (B x n_init can outgrow the result)
        all_values = jnp.zeros((0,), value.dtype)
    return u[best], value[best], v90[best], all_values, score[best]


def _held_out(held: jax.Array | None, h: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Hessian and gradient with the parameters ``held`` on a bound taken out: their rows and columns become
    the identity (scaled like ``h``) and their gradient entries 0, so a Newton step or an implicit derivative
    leaves them where they are (strict complementarity: a small change of the data keeps them on the bound)."""
    if held is None:
        return h, g
    eye = jnp.eye(h.shape[0], dtype=h.dtype) * jnp.maximum(jnp.max(jnp.abs(h)), 1.0)
    return jnp.where(held[:, None] | held[None, :], eye, h), jnp.where(held, 0.0, g)


def _implicit(cfg: Config):
    """``(u_star, held, x, y, w) -> u_star`` whose derivative w.r.t. the data is the implicit function
    theorem's on the free parameters (those marked ``held``, a 0/1 mask of parameters on a bound, get 0).
    The mask is an argument, not a closure: a custom derivative rule may not close over traced values."""

    grad_u = jax.grad(functools.partial(objective_fn, cfg))

    @jax.custom_jvp
    def at_optimum(u_star, held, x, y, w):
        return u_star

    @at_optimum.defjvp
    def _jvp(primals, tangents):
        u_star, held, x, y, w = primals
        _, _, dx, dy, dw = tangents
        _, b = jax.jvp(lambda xx, yy, ww: grad_u(u_star, xx, yy, ww), (x, y, w), (dx, dy, dw))
        h, b = _held_out(held > 0.5, jax.hessian(objective_fn, argnums=1)(cfg, u_star, x, y, w), b)
        return u_star, -jnp.linalg.solve(h, b)

    return at_optimum


def _core(cfg: Config, inits_u, x, y, w, wv, bounds=None, controls=None) -> Solution:
    """Search, then attach implicit derivatives and the checks at the optimum: one problem, traceable."""
    u_best, value, v90, all_values, score = search(
        cfg,
        jax.lax.stop_gradient(inits_u),
        *(jax.lax.stop_gradient(a) for a in (x, y, w, wv)),
        bounds=bounds,
        controls=controls,
    )
    finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(u_best))
    u_safe = jnp.where(finite, u_best, jnp.zeros_like(u_best))
    # checks at the optimum (on the primal values only)
    sx, sy, sw = (jax.lax.stop_gradient(a) for a in (x, y, w))
    g = jax.grad(objective_fn, argnums=1)(cfg, u_safe, sx, sy, sw)
    h = jax.hessian(objective_fn, argnums=1)(cfg, u_safe, sx, sy, sw)
    h = 0.5 * (h + h.T)
    held = jnp.zeros(u_safe.shape, bool)
    if cfg.bounded:  # held on a bound (gradient outwards, the box's KKT condition): out of the checks
        held = ((u_safe <= bounds[0]) & (g > 0)) | ((u_safe >= bounds[1]) & (g < 0))
        h, g = _held_out(held, h, g)
    u = _implicit(cfg)(u_safe, held.astype(u_safe.dtype), x, y, w)
    eig = jnp.linalg.eigvalsh(h)
    scale = jnp.maximum(jnp.max(jnp.abs(eig)), jnp.finfo(h.dtype).tiny)
    min_eig = eig[0] / scale
    singular = ~(min_eig > HESSIAN_RTOL)
    step = jnp.linalg.solve(h, g)
    decrement = 0.5 * jnp.dot(g, step)
    target = jnp.log(jnp.where(sy > 0, sy, 1.0)) if cfg.objective.log else sy
    used = _flat_weights(sw, sy) > 0
    # the objective's round-off level: a residual error of 100 ulps of the largest target at every point
    floor = (
        0.5
        * jnp.sum(sw)
        * (100 * jnp.finfo(h.dtype).eps * jnp.max(jnp.where(used, jnp.abs(target.reshape(-1)), 0.0))) ** 2
    )
    unconverged = ~(jnp.abs(decrement) <= DECREMENT_RTOL * jnp.abs(value) + floor)
    result = jnp.where(
        ~finite,
        RESULTS.nonfinite,
        jnp.where(
            singular, RESULTS.singular_hessian, jnp.where(unconverged, RESULTS.not_converged, RESULTS.successful)
        ),
    )
    theta = jnp.where(finite, regularise.to_box(u, cfg.box), jnp.nan)
    cov, _ = covariance(cfg.predict, regularise.to_box(u_safe, cfg.box), sx, sy, sw, cfg.objective, cfg.pen, cfg.box)
    cov = jnp.where(finite & ~(held[:, None] | held[None, :]), cov, jnp.nan)  # held on a bound: no variance
    return Solution(
        params=theta,
        objective=value,
        init_objectives=all_values,
        value_at_90=v90,
        score=score,
        result=jnp.asarray(result, jnp.int32),
        decrement=decrement,
        grad_norm=jnp.linalg.norm(g),
        hessian_min_eig=min_eig,
        covariance=cov,
    )


# --------------------------------------------------------------------------- the public verb
def _shape_error(law: Law, what: str, got: tuple, want: str) -> ValueError:
    return ValueError(f"jaxlaws.solve({law.name}): {what} has shape {got}; expected {want}")


def solve(
    law: Law,
    x: Table,
    y: ArrayLike,
    inits: Table,
    *,
    objective: Objective | None = None,
    solver: SolverLike | None = None,
    weights: ArrayLike | None = None,
    validation: ArrayLike | None = None,
    penalty: PenaltyLike = LAW,
    bounds: BoundsLike = LAW,
    screen: ScreenLike = AUTO,
    select: Literal["trajectory", "final"] = "trajectory",
    early_stopping: int | None = None,
) -> Solution:
    r"""Fit ``law`` to ``(x, y)`` from the starts ``inits``: a pure function, traceable and differentiable.

    Minimises, over the starts' solver trajectories, the weighted robust objective plus the ridge penalty
    inside the box (the objective :func:`jaxlaws.fit` minimises),

    .. math:: \min_\theta \sum_n w_n\,\rho\big(r_n(\theta)\big) + \tfrac{\lambda}{2} W \sum_{j\in S}
              (\theta_j - c)^2, \qquad \theta\in[lo, hi],

    and returns the best start's optimum. Unlike :func:`jaxlaws.fit` it checks shapes only (values may be
    tracers): give finite data, mixtures on the simplex, targets inside ``law.output_range``. Use it inside
    ``jax.jit``, ``jax.vmap`` (over problems, data sets or inits) and ``jax.grad``: the fitted parameters
    are differentiable w.r.t. ``x``, ``y`` and ``weights`` by the implicit function theorem (module
    docstring), so predictions and anything computed from them (e.g. a predicted optimal mixture) are too.

    Args:
      law: a :class:`jaxlaws.laws.Law`.
      x: ``(n, d)`` inputs.
      y: ``(n,)`` targets, or ``(n, k)`` for a law with ``k`` outputs.
      inits: ``(n_init, P)`` starting parameters in ``law.param_names`` order (clipped into the bounds),
        e.g. ``law.init_grid(key, x, y)``.
      objective: default ``law.default_objective``, else least squares (:func:`jaxlaws.squared`).
      solver: default :class:`jaxlaws.LevenbergMarquardt` ().
      weights: ``(n,)`` non-negative point weights (default 1). Zero leaves a point out: pad ragged data
        with zero-weight points to keep shapes fixed under ``vmap``.
      validation: ``(n,)`` boolean select-by mask: those points leave the objective and choose the start.
      penalty, bounds, screen, select, early_stopping: as in :func:`jaxlaws.fit` (static: Python values).

    Returns:
      a :class:`Solution` pytree; check ``sol.result`` (:class:`RESULTS`) before trusting it.
    """
    if not isinstance(law, Law):
        raise ValueError(f"solve needs a jaxlaws.laws.Law, got {type(law).__name__}")
    if law.is_linear:
        raise ValueError(f"{law.name} is linear in its parameters: fit it with jaxlaws.lstsq or jaxlaws.fit")
    cfg, args = prepare(
        law,
        x,
        y,
        inits,
        objective=objective,
        solver=solver,
        weights=weights,
        validation=validation,
        penalty=penalty,
        bounds=bounds,
        screen=screen,
        select=select,
        early_stopping=early_stopping,
    )
    return _solve_jit(cfg, *args)


@functools.partial(jax.jit, static_argnums=0)
def _solve_jit(cfg: Config, inits, x, y, w, wv, bounds=None, controls=None) -> Solution:
    return _core(cfg, regularise.from_box(inits, cfg.box), x, y, w, wv, bounds, controls)


def prepare(
    law: Law,
    x: Any,
    y: Any,
    inits: Any,
    *,
    objective=None,
    solver=None,
    weights=None,
    validation=None,
    penalty=LAW,
    bounds=LAW,
    screen=AUTO,
    select="trajectory",
    early_stopping=None,
    keep_inits: bool = True,
    batched: bool = False,
):
    """Check shapes and resolve the static configuration: ``(Config, (inits, x, y, w, wv))`` as arrays of one
    floating dtype (that of the data, or the default float type). With ``batched`` the data carry a leading
    problem axis (``fit_batched``'s layout); nothing here reads array values, so tracers are welcome."""
    objective, solver = check_options(law, objective, solver, select, early_stopping, validation is not None)
    box = regularise.resolve_bounds(law, bounds)
    pen = regularise.resolve_penalty(law, penalty)
    lead = 1 if batched else 0
    x = jnp.asarray(x)
    if x.ndim == lead + 1:
        x = x[..., None]
    dtype = jnp.result_type(*(a for a in (x, y, inits) if hasattr(a, "dtype")), float)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    x = x.astype(dtype)
    y = jnp.asarray(y, dtype)
    inits = jnp.asarray(inits, dtype)
    if x.ndim != lead + 2 or x.shape[-1] != law.x_dim:
        raise _shape_error(law, "x", tuple(x.shape), f"({'B, ' if batched else ''}n, {law.x_dim})")
    want_y = x.shape[: lead + 1] + ((law.n_outputs,) if law.n_outputs > 1 else ())
    if tuple(y.shape) != tuple(want_y):
        raise _shape_error(law, "y", tuple(y.shape), str(tuple(want_y)))
    if inits.ndim != 2 or inits.shape[-1] != law.n_params or inits.shape[0] == 0:
        raise _shape_error(law, "inits", tuple(inits.shape), f"(n_init, {law.n_params}) for {law.param_names}")
    w = jnp.ones(x.shape[: lead + 1], dtype) if weights is None else jnp.asarray(weights, dtype)
    if tuple(w.shape) != tuple(x.shape[: lead + 1]):
        raise _shape_error(law, "weights", tuple(w.shape), str(tuple(x.shape[: lead + 1])))
    if validation is None:
        wv = jnp.zeros_like(w)
    else:
        v = jnp.asarray(validation)
        if tuple(v.shape) != tuple(w.shape):
            raise _shape_error(law, "validation", tuple(v.shape), str(tuple(w.shape)))
        wv = jnp.where(v, w, 0.0).astype(dtype)
        w = jnp.where(v, 0.0, w)
    cfg = make_config(
        law,
        objective,
        solver,
        select,
        validation is not None,
        screen,
        inits.shape[0],
        box,
        pen,
        early_stopping,
        keep_inits,
    )
    bounds_arr = tuple(jnp.asarray(b) for b in bound_arrays(box, law.n_params, dtype)) if cfg.bounded else None
    return cfg, (inits, x, y, w, wv, bounds_arr, jnp.asarray(solver_controls(solver, dtype)))


def check_options(
    law: Law, objective: Any, solver: Any, select: str, early_stopping: Any, use_val: bool
) -> tuple[Objective, Any]:
    """The checks on a fit's static options that :func:`prepare` and :func:`jaxlaws.fit_batched` share; returns the
    objective (default the law's, else least squares) and the solver (default :class:`LevenbergMarquardt`)."""
    if objective is None:
        objective = law.default_objective if law.default_objective is not None else squared()
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must come from jaxlaws.huber(...) or jaxlaws.squared(), got {objective!r}")
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
    if early_stopping is not None:
        if not use_val:
            raise ValueError("early_stopping needs a validation mask (the iterate is chosen on it)")
        if isinstance(early_stopping, bool) or not isinstance(early_stopping, numbers.Integral) or early_stopping < 1:
            raise ValueError(f"early_stopping must be an int >= 1 (iterations between checks), got {early_stopping!r}")
    return objective, LevenbergMarquardt() if solver is None else solver


def make_config(
    law: Law,
    objective: Objective,
    solver: Any,
    select: str,
    use_val: bool,
    screen: Any,
    n_init: int,
    box: Any,
    pen: Any,
    early: int | None,
    keep_inits: bool = True,
    evaluate: bool = False,
) -> Config:
    """The static configuration of a fit of ``n_init`` starts, as the compiled program is keyed on: the law's
    ``predict`` by its code (:class:`CodeKey`), the solver without its run-time settings (:func:`keyed_solver`),
    the box held by the solver or imposed by reparametrisation (:func:`theta_bounds`)."""
    scr = resolve_screen(screen, n_init)
    bounded = theta_bounds(solver, box)
    return Config(
        CodeKey.of(law.predict),
        objective,
        keyed_solver(solver, early),
        select,
        use_val,
        None if scr is None else (scr.steps, scr.kept(n_init)),
        None if bounded else box,
        pen,
        early,
        law.index if isinstance(solver, LevenbergMarquardt) else None,
        bool(keep_inits),
        bounded,
        n_init >= UNROLL_MIN_INITS,
        evaluate,
    )


def theta_bounds(solver: Any, box: Any) -> bool:
    """Whether the solver holds the box itself, in theta (:class:`LevenbergMarquardt`'s projected steps), rather
    than the box being imposed by reparametrisation (:mod:`.regularise`; the other solvers)."""
    return box is not None and isinstance(solver, LevenbergMarquardt)


def bound_arrays(box: Any, n_params: int, dtype: Any = float) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` NumPy arrays ``(P,)`` of a resolved box (``-inf`` / ``inf`` for an open side, and without a
    box); NumPy, so that the host side of a fit runs no JAX operation (each would compile a small program)."""
    box = box if box is not None else ((-math.inf, math.inf),) * n_params
    return tuple(np.asarray([b[k] for b in box], dtype) for k in (0, 1))
