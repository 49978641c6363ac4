r"""Solvers for one init of a small robust least-squares problem; the engine ``vmap``\ s them over inits.

Every solver is a frozen dataclass called as ``solver(residual_fn, objective, theta0)`` and returns a
:class:`Trace`; its settings are checked when it is built (``steps >= 1``, positive rates), so a solver
that would return its starting point untouched cannot be made.
Each keeps the best parameters seen along its trajectory, so the multi-start selection can
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
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlaws.fitting.objectives import Objective
from jaxlaws.laws.base import Array

__all__ = [
    "ResidualFn",
    "Trace",
    "spd_solve",
    "LevenbergMarquardt",
    "GN_DAMPING",
    "UNROLL_MAX",
    "residual_and_jacobian",
    "run_lanes",
    "LBFGS",
    "Adam",
]

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
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) and value > above
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


def spd_solve(a: Array, b: Array, unroll: bool = True) -> Array:
    """Solve ``a x = b`` for a small symmetric positive-definite ``a``.

    ``unroll``: by an unrolled Cholesky -- XLA's batched LU is slow for thousands of 4x4 systems under
    ``vmap``, while unrolled scalar arithmetic vectorises across the batch; but its ``P^3 / 6`` operations cost
    compile time. Otherwise by Gauss-Jordan elimination in a ``lax.fori_loop`` over the ``P`` pivots (one small
    loop body to compile; without pivoting, stable for a positive-definite ``a`` as Cholesky is). Either way a
    non-positive pivot yields NaN, which the caller treats as a failed step.
    """
    n = a.shape[0]
    if not unroll:
        return _gauss_jordan(a, b)
    if n > 16:  # unrolling grows compile time as n^3 (2.4 s at n = 18); a batched Cholesky is 1.7x faster than LU
        return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b)
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


def _gauss_jordan(a: Array, b: Array) -> Array:
    """``a^{-1} b`` by Gauss-Jordan elimination on ``[a | b]``, pivots in order (``a`` positive definite: no
    pivoting needed); NaN when a pivot is not positive (as the Cholesky's square root would give)."""
    n = a.shape[0]
    m = jnp.concatenate([a, b[:, None]], axis=1)

    def body(k, carry):
        m, lowest = carry
        pivot = m[k, k]
        row = m[k] / pivot
        m = (m - m[:, k][:, None] * row[None, :]).at[k].set(row)
        return m, jnp.minimum(lowest, pivot)

    m, lowest = jax.lax.fori_loop(0, n, body, (m, jnp.asarray(jnp.inf, a.dtype)))
    return jnp.where(lowest > 0, m[:, n], jnp.nan)


def _free(theta: Array, g: Array, lower: Array, upper: Array) -> Array:
    """Parameters free to move: not on a bound with the gradient pushing outwards (the active set)."""
    return ~(((theta <= lower) & (g > 0)) | ((theta >= upper) & (g < 0)))


def _reduced(a: Array, g: Array, free: Array) -> tuple[Array, Array]:
    """The normal equations on the free parameters: active rows and columns replaced by the identity (times
    the diagonal's scale) and their gradient entries by 0, so their step is exactly 0."""
    both = free[:, None] & free[None, :]
    scale = jnp.maximum(jnp.max(jnp.abs(jnp.diag(a))), 1.0)
    a_r = jnp.where(both, a, jnp.where(jnp.eye(a.shape[0], dtype=bool), scale, 0.0))
    return a_r, jnp.where(free, g, 0.0)


@dataclasses.dataclass(frozen=True)
class LevenbergMarquardt:
    r"""IRLS Levenberg-Marquardt, run until converged (the default solver of :func:`jaxlaws.fit`).

    Each iteration solves the damped normal equations :math:`(A + \mu D)\,\delta = -g` of the IRLS-weighted
    residuals (:math:`D = \mathrm{diag}(A)`, Marquardt's scaling); the damping :math:`\mu` starts at ``damping``
    and is divided by ``decrease`` after a step that lowers the objective, multiplied by ``increase`` after one
    that does not.

    **Stopping** (inside the compiled program, a ``lax.while_loop`` per init): an init stops once a nearly
    undamped step (damping <= ``GN_DAMPING``, i.e. a Gauss-Newton step) promises, by the model
    :math:`-(g^\top\delta + \tfrac12\delta^\top A\delta)`, to lower the objective by at most ``rtol`` times
    the objective (``max(rtol, 100 eps)`` of the fitting precision) -- the Gauss-Newton decrement test -- or
    once the damping has grown to its cap ``1e12`` (no step lowers the objective any more: it sits at a
    minimum to round-off), or after ``steps`` iterations. Under ``vmap`` the inits of a batch stop together,
    when the last stops.

    **Abandoning hopeless inits** (a multi-start run of many inits, :func:`run_lanes`): every ``prune_every``
    trips, an init still running is stopped when, at the pace of its last ``prune_every`` trips, it cannot
    reach the lowest objective :math:`f_\star` of an init that has already stopped before the cap:
    :math:`\log(f/f_\star) > \tfrac{R}{W}\log(f_{-W}/f) + 10^{-9}`, with :math:`W` = ``prune_every``,
    :math:`f_{-W}` its objective :math:`W` trips before and :math:`R` the trips left. Such an init (one that
    has run off into a plateau, or crawls towards an asymptote far above the optimum) would otherwise cost
    the whole run its trips up to the cap; it ends strictly above :math:`f_\star`, so it is never the one
    selected. ``prune_every=0`` runs every init to its own end.

    **Bounds** (``lower``, ``upper``; arrays, so their values are not compiled in): a projected active-set
    LM in the parameters themselves, in the manner of Bertsekas' projected Newton method (*SIAM J. Control
    Optim.* 20, 1982) and Kanzow, Yamashita & Fukushima's projected LM (*J. Comput. Appl. Math.* 172, 2004).
    Parameters on a bound whose gradient points outwards are held (their row of the damped normal equations is
    the identity); the others take the damped Gauss-Newton step, and the candidate is projected back into
    the box. As the damping grows the step turns into a diagonally scaled projected gradient step, which
    lowers the objective whenever the point is not stationary for the box, so every kept step descends and the
    fixed points are the box's KKT points -- unlike a reparametrisation, which flattens the objective near a
    bound and can stall there.

    Each iteration makes one residual + Jacobian pass (at the candidate; kept, it is the next iteration's
    linearisation) and carries the ``P x P`` normal equations, not the Jacobian; for a law with a
    :class:`~jaxlaws.laws.base.SingleIndex` (the static mixing laws) the engine passes them in ready-formed by
    matrix products (:mod:`.index_normal`). ``benchmarks/bench_solvers.py`` compares it with optimistix
    (results in ``benchmarks/RESULTS.md``).

    Attributes:
      steps: the iteration cap.
      damping: the initial damping :math:`\mu_0`.
      decrease: the factor dividing :math:`\mu` after a kept step (> 1).
      increase: the factor multiplying :math:`\mu` after a rejected step (> 1).
      rtol: the relative Gauss-Newton decrement below which an init stops.
      prune_every: the window, in trips, of the test that abandons hopeless inits (0: never abandon).
    """

    steps: int = 1000
    damping: float = 1e-3
    decrease: float = 3.0
    increase: float = 4.0
    rtol: float = 1e-10
    prune_every: int = 25

    def __post_init__(self) -> None:
        _check_steps("LevenbergMarquardt", "steps", self.steps)
        _check_positive("LevenbergMarquardt", "damping", self.damping)
        # a factor <= 1 would shrink the damping after a failed step (or grow it after a good one)
        _check_positive("LevenbergMarquardt", "decrease", self.decrease, above=1.0)
        _check_positive("LevenbergMarquardt", "increase", self.increase, above=1.0)
        _check_positive("LevenbergMarquardt", "rtol", self.rtol)
        every = self.prune_every
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 0:
            raise ValueError(f"LevenbergMarquardt: prune_every must be an integer >= 0, got {every!r}")

    def controls(self) -> np.ndarray:
        """``[steps, damping, decrease, increase, rtol, prune_every]`` as a float64 array: what :meth:`__call__`
        takes as ``controls=`` to run these settings as traced values (one compiled program for every setting)."""
        return np.asarray(
            [self.steps, self.damping, self.decrease, self.increase, self.rtol, self.prune_every], np.float64
        )

    def __call__(self, residual_fn: ResidualFn, objective: Objective, theta0: Array, **options: Any) -> Trace:
        """Run from ``theta0``; ``options``: ``normal``, ``lower``, ``upper``, ``steps``, ``controls``, ``unroll``
        as :meth:`machine` takes them."""
        start, body, running, finish, _ = self.machine(residual_fn, objective, theta0, **options)
        return finish(jax.lax.while_loop(running, body, start(theta0)))

    def machine(
        self,
        residual_fn: ResidualFn,
        objective: Objective,
        like: Array,
        normal: Callable[[Array], tuple[Array, Array, Array]] | None = None,
        lower: Array | None = None,
        upper: Array | None = None,
        steps: Array | None = None,
        controls: Array | None = None,
        unroll: bool = True,
    ) -> tuple[Callable, Callable, Callable, Callable, Callable]:
        """One init's run as a loop's parts, ``(start, body, running, finish, prune)``: ``start(theta0) ->
        state``, the loop ``while running(state): state = body(state)``, and ``finish(state) -> Trace``.
        :meth:`__call__` is that loop; :func:`run_lanes` runs many inits' states as one batched loop that drops
        the inits that have stopped, calling ``prune(states, best) -> (states, best)`` on the batched states
        after each trip (it abandons the hopeless inits; ``best``: the lowest objective of a stopped init so far,
        ``inf`` at the start). ``like``: an array of ``theta0``'s shape and dtype.

        ``normal``: optionally, ``theta -> (f, A, g)`` equal to the normal equations of ``residual_fn``
        under ``objective`` but computed faster (the engine passes :mod:`.index_normal`'s for
        :class:`~jaxlaws.laws.base.SingleIndex` laws); by default they are formed from the Jacobian.
        ``lower``, ``upper``: ``(P,)`` box bounds (``-inf`` / ``inf`` for an open side; ``theta0`` is clipped
        into the box). ``steps``: the iteration cap, possibly traced (default ``self.steps``). ``controls``:
        a ``(6,)`` array as :meth:`controls` returns, possibly traced, used instead of this solver's settings
        (so that new settings do not recompile). ``unroll``: form the normal equations and solve them by
        unrolled scalar arithmetic (fastest to run over large init grids) rather than by matrix products and a
        loop (fastest to compile); see :func:`normal_equations` and :func:`spd_solve`."""
        normal = normal_equations(residual_fn, objective, unroll) if normal is None else normal
        dt = like.dtype
        bounded = lower is not None or upper is not None
        lo = jnp.full_like(like, -jnp.inf) if lower is None else jnp.asarray(lower, dt)
        hi = jnp.full_like(like, jnp.inf) if upper is None else jnp.asarray(upper, dt)
        if controls is None:
            controls = self.controls()
        controls = jnp.asarray(controls, dt)
        cap = jnp.asarray(controls[0] if steps is None else steps, jnp.int32)
        damping, decrease, increase = controls[1], controls[2], controls[3]
        mark = jnp.maximum((9 * cap) // 10 - 1, 0)
        rtol = jnp.maximum(controls[4], 100 * float(jnp.finfo(dt).eps))
        every = jnp.asarray(controls[5], jnp.int32)
        lam_max = jnp.asarray(1e12, dt)

        # One residual + Jacobian pass per trip, written once: trip j evaluates the candidate that trip j - 1
        # proposed (trip 0: the start), keeps it if it lowers the objective, then proposes the next -- iteration
        # j - 1 of the textbook loop, whose last evaluation is trip `cap`'s. (A separate evaluation at the start
        # would double the code to compile.)
        def body(state):
            j, theta, f, lam, a, g, f90, _, cand, stop, fw = state
            f_new, a_new, g_new = normal(cand)
            first = j == 0
            ok = first | ((f_new < f) & jnp.all(jnp.isfinite(cand)))
            keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
            lam = jnp.where(first, lam, jnp.clip(jnp.where(ok, lam / decrease, lam * increase), 1e-12, lam_max))
            theta, f, a, g = keep(cand, theta), keep(f_new, f), keep(a_new, a), keep(g_new, g)
            f90 = jnp.where(first | (j - 1 == mark), f, f90)
            fw = jnp.where(first, f, fw)  # the objective at the last pruning check (prune)
            done = ~first & (stop | (lam >= lam_max) | ~jnp.isfinite(f))
            a_r, g_r = _reduced(a, g, _free(theta, g, lo, hi)) if bounded else (a, g)
            # Marquardt scaling by diag(A), floored so flat directions still get damped.
            d = jnp.maximum(jnp.diag(a_r), 1e-12 * (1.0 + jnp.max(jnp.diag(a_r))))
            step = spd_solve(a_r + lam * jnp.diag(d), -g_r, unroll)
            # the decrease the (nearly undamped) model promises: once below rtol * f, the point is converged
            promised = -(jnp.dot(g_r, step) + 0.5 * jnp.dot(step, a_r @ step))
            converged = (lam <= GN_DAMPING) & (promised <= rtol * jnp.abs(f))
            cand = jnp.clip(theta + step, lo, hi) if bounded else theta + step
            return j + 1, theta, f, lam, a, g, f90, done, cand, converged, fw

        p = like.shape[0]

        def start(theta0):
            theta0 = jnp.clip(theta0, lo, hi) if bounded else theta0
            # the start's state made from theta0 and the controls, so that under vmap every part of it is batched
            # like the state the loop body returns: otherwise JAX re-batches the body until the two agree (tracing
            # it again for each part it finds batched)
            zero = jnp.where(jnp.isnan(theta0[0] + controls[0]), 0.0, 0.0).astype(dt)
            no = zero != 0
            return (
                zero.astype(jnp.int32),
                theta0 + zero,
                zero,
                damping + zero,
                jnp.zeros((p, p), dt) + zero,
                jnp.zeros(p, dt) + zero,
                zero,
                no,
                theta0 + zero,
                no,
                zero,
            )

        def running(state):
            return (state[0] <= cap) & ~state[7]

        def finish(state):
            _, theta, f, _, _, _, f90, done = state[:8]
            # stopped by the test: converged, so the objective "at 90%" is the final one (the engine's check)
            return Trace(theta, f, jnp.where(done, f, f90), theta)

        def prune(states, best):
            j, f, done, fw = states[0], states[2], states[7], states[10]  # batched: a leading axis of inits
            best = jnp.minimum(best, jnp.min(jnp.where(done & jnp.isfinite(f), f, jnp.inf)))
            left = cap + 1 - j  # trips left (j: trips made)
            check = ~done & (every > 0) & (left > 0) & (j % jnp.maximum(every, 1) == 0)
            pace = jnp.log(fw / f) * left.astype(dt) / jnp.maximum(every, 1).astype(dt)
            hopeless = check & (jnp.log(f / best) > pace + 1e-9)
            states = states[:7] + (done | hopeless,) + states[8:10] + (jnp.where(check, f, fw),)
            return states, best

        return start, body, running, finish, prune


def run_lanes(
    body: Callable,
    running: Callable,
    states: Any,
    blocks: tuple[int, ...] = (),
    prune: Callable | None = None,
    memo: Any = None,
) -> Any:
    """Run ``while running(s): s = body(s)`` for every lane of the batched ``states`` (a pytree with a leading axis
    of ``L`` lanes; ``body`` and ``running`` act on one lane) as ``vmap``'s loop would -- a lane that stops is left
    as it is -- but in phases: all ``L`` lanes while more than ``blocks[0]`` run, then only a block of
    ``blocks[0]`` lanes (those still running, gathered), while more than ``blocks[1]`` run, and so on; the blocks
    are scattered back at the end. A few slow inits then cost a block's work per trip, not ``L`` lanes'. Each
    lane's trajectory is the one a loop of its own would take.

    ``prune``: optionally, ``(states, memo) -> (states, memo)``, called on the batched states of the lanes in play
    after every trip (every lane outside the block has stopped by then), with ``memo`` (a pytree, its start
    given) carried through the phases: how lanes may stop each other (:meth:`LevenbergMarquardt.machine`)."""
    vbody, vrun = jax.vmap(body), jax.vmap(running)

    def step(c):
        s, m = c
        new, on = vbody(s), vrun(s)
        s = jax.tree_util.tree_map(lambda a, b: jnp.where(on.reshape(on.shape + (1,) * (a.ndim - 1)), a, b), new, s)
        return prune(s, m) if prune is not None else (s, m)

    def phase(c, k):
        nxt = blocks[k] if k < len(blocks) else 0
        c = jax.lax.while_loop(lambda c: jnp.sum(vrun(c[0])) > nxt, step, c)
        if k == len(blocks):
            return c
        s, m = c
        idx = jnp.argsort(~vrun(s), stable=True)[:nxt]  # the lanes still running first
        block, m = phase((jax.tree_util.tree_map(lambda a: a[idx], s), m), k + 1)
        return jax.tree_util.tree_map(lambda a, b: a.at[idx].set(b), s, block), m

    return phase((states, memo), 0)[0]


#: Damping (relative to diag(A)) below which an LM step is a Gauss-Newton step for the stopping test.
GN_DAMPING = 1e-2
UNROLL_MAX = 24  # parameters up to which the normal equations are summed entry by entry


def residual_and_jacobian(residual_fn: ResidualFn, theta: Array) -> tuple[Array, list[Array]]:
    r"""``r(theta)`` and the Jacobian's columns :math:`\partial r / \partial \theta_k`, ``k < P``: one residual
    pass and ``P`` forward-mode tangents (the Jacobian is tall: ``N`` points >> ``P`` parameters).

    Columns, not ``vmap(tangent)(eye)``: under the engine's ``vmap`` over inits the latter turns a linear
    predictor's ``x @ theta`` into a batched matmul with the identity, slower than ``P`` matrix-vector
    tangents (``benchmarks/bench_fit.py --public`` measures it on RegMix, P = 18)."""
    r, tangent = jax.linearize(residual_fn, theta)
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
    return r, [tangent(eye[k]) for k in range(theta.shape[0])]


def normal_equations(residual_fn: ResidualFn, objective: Objective, unroll: bool = True):
    r"""``theta -> (f, A, g)``: the objective :math:`f = \sum_n \rho(r_n)` and the IRLS normal equations
    :math:`A = J^\top W J`, :math:`g = J^\top W r` with :math:`W = \mathrm{diag}(\rho'(r)/r)`.

    ``unroll``: ``A`` is summed entry by entry from the columns (its upper triangle, mirrored): under ``vmap``
    a ``J.T @ (W J)`` becomes thousands of tiny batched dots that XLA's CPU backend runs one by one (many times the
    residual+Jacobian time on small problems such as DML's); the elementwise sums fuse and vectorise across
    the inits. But they are ``P^2 / 2`` reductions to compile, so otherwise (and above
    ``UNROLL_MAX`` parameters) the matrix form, from one ``vmap``\ ped forward-mode Jacobian."""

    def normal(theta):
        p = theta.shape[0]
        if not unroll or p > UNROLL_MAX:
            r, tangent = jax.linearize(residual_fn, theta)
            j = jax.vmap(tangent, out_axes=1)(jnp.eye(p, dtype=theta.dtype))
            jw = j * objective.weight(r)[:, None]
            a, g = j.T @ jw, jw.T @ r
        else:
            r, cols = residual_and_jacobian(residual_fn, theta)
            w = objective.weight(r)
            wcols = [c * w for c in cols]
            upper = {(i, k): jnp.sum(cols[i] * wcols[k]) for i in range(p) for k in range(i, p)}
            a = jnp.stack([jnp.stack([upper[min(i, k), max(i, k)] for k in range(p)]) for i in range(p)])
            g = jnp.stack([jnp.sum(c * r) for c in wcols])
        f = jnp.sum(objective.rho(r))
        return jnp.where(jnp.isfinite(f), f, jnp.inf), a, g

    return normal


_normal_equations = normal_equations  # the earlier private name


def _optax_trace(
    opt: optax.GradientTransformation,
    residual_fn: ResidualFn,
    objective: Objective,
    theta0: Array,
    steps: int,
    linesearch: bool,
) -> Trace:
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
    """``optax.lbfgs`` (memory ``memory_size``, zoom line search satisfying the strong Wolfe conditions) for ``steps``
    iterations. The original ran 100 outer x up to 20 inner PyTorch L-BFGS iterations.

    **Slow under** ``vmap``, by construction: each iteration's zoom line search is a ``while_loop`` whose trip
    count is data-dependent, and a vmapped ``while_loop`` runs until the *slowest* init of the batch has finished
    (its ``cond`` branches become selects that evaluate both sides), so every iteration costs up to
    ``max_linesearch_steps`` (20) value-and-gradient passes over all inits, where :class:`LevenbergMarquardt`
    makes one residual + Jacobian pass per iteration. Per init L-BFGS is reliable, so it suits few inits; for
    init grids use the default :class:`LevenbergMarquardt` (``benchmarks/bench_solvers.py`` measures both;
    results in ``benchmarks/RESULTS.md``).

    Attributes:
      steps: the number of iterations.
      memory_size: the number of past updates kept for the inverse-Hessian estimate.
    """

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
    """``optax.adam(learning_rate)`` on the objective for ``steps`` iterations.

    Attributes:
      steps: the number of iterations.
      learning_rate: Adam's step size.
    """

    steps: int = 2000
    learning_rate: float = 1e-2

    def __post_init__(self) -> None:
        _check_steps("Adam", "steps", self.steps)
        _check_positive("Adam", "learning_rate", self.learning_rate)

    def __call__(self, residual_fn: ResidualFn, objective: Objective, theta0: Array) -> Trace:
        return _optax_trace(
            optax.adam(self.learning_rate), residual_fn, objective, theta0, self.steps, linesearch=False
        )
