r"""What a fit can honestly claim: convergence, identifiability and fit-quality flags.

Computed on the host in float64 at the returned parameters of every problem of a batch:

* **Gauss-Newton decrement** :math:`\lambda^2/2 = \tfrac12 g^\top H^{+} g` with :math:`g = J^\top W r` (the
  gradient of the objective), :math:`H = J^\top W J` and the IRLS weights :math:`W` of the objective (exact
  for least squares, the usual majoriser for Huber). Equivalently the squared length of the part of the
  weighted residual :math:`W^{1/2} r` that the linearised law could still explain: the decrease of the
  objective a Gauss-Newton step would still promise. A small decrement is a small gradient measured in the
  metric the problem itself defines, so it does not depend on the units of the parameters.
* **Convergence**: the objective stopped improving (the solver's own test: over the last 10% of its
  iterations the objective fell by at most ``sqrt(eps)`` relative, or by no more than the round-off floor)
  *and* the decrement is at most ``DECREMENT_RTOL`` times the objective plus the round-off floor: the
  objective a residual error of ``ROUNDOFF_FACTOR`` ulps of the fitting precision (times the largest
  target) would give, per point, weighted as the objective weighs it.
* **Rank** of the Jacobian of the residuals at the optimum, with its columns normalised (so the units of a
  parameter do not matter): singular values below ``RANK_RTOL`` times the largest count as zero.
* **Distinct inputs**: the number of distinct rows of ``x`` among the fitting points; with ``k`` outputs a
  fit has ``k`` observations per distinct input.

* **Bounds**: a parameter on a bound is held there only if the objective's gradient points outwards (the
  box's KKT condition). One on a bound whose gradient points *inwards* by more than the convergence
  tolerance -- moving it alone into the box would still lower the objective by
  :math:`\tfrac12 g_j^2 / H_{jj}` -- is an unfinished bounded fit: it is counted in the decrement (so the fit
  is not converged) and flagged ``stuck_at_bound``.

Flags (short strings, in this order): ``failed`` (no finite objective), ``not_converged``,
``stuck_at_bound`` (a parameter on a bound that the objective would still move inwards), ``saturated``
(distinct inputs x outputs <= free parameters: the law interpolates, nothing is left to test it),
``rank_deficient`` (the Jacobian at the optimum has rank < P: some parameter combinations are not
determined by the data), ``constant_target`` (every fitted target equal: nothing to explain),
``nonfinite_r2`` and ``negative_r2`` (worse than predicting the mean, beyond round-off, although a
constant prediction is within the law's reach: the ones vector lies in the span of the Jacobian at the
optimum, as for every law with an intercept-like parameter; a law without one, such as the method scale
fit without intercept, can legitimately explain less than the mean, and its R^2 is reported unflagged).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxlaws.fitting.execute import CodeKey, bucket
from jaxlaws.fitting.objectives import Objective
from jaxlaws.fitting.regularise import bound_side
from jaxlaws.laws.base import Law

__all__ = [
    "evaluate_one",
    "cut_evaluation",
    "FLAGS",
    "DECREMENT_RTOL",
    "ROUNDOFF_FACTOR",
    "RANK_RTOL",
    "CONSTANT_RTOL",
    "NEGATIVE_R2_ATOL",
    "CONSTANT_REACH_RTOL",
    "Diagnostics",
    "diagnose",
    "flags_of",
    "evaluate",
    "Evaluation",
]

FLAGS = (
    "failed",
    "not_converged",
    "stuck_at_bound",
    "saturated",
    "rank_deficient",
    "constant_target",
    "nonfinite_r2",
    "negative_r2",
)
DECREMENT_RTOL = 1e-6
ROUNDOFF_FACTOR = 100.0
RANK_RTOL = 1e-9
CONSTANT_RTOL = 1e-12
NEGATIVE_R2_ATOL = 1e-9  # R^2 of -1e-16 is the mean predicted up to round-off, not a worse fit
CONSTANT_REACH_RTOL = 1e-6


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """Per-problem diagnostics of a batch of fits (every field has a leading batch axis)."""

    decrement: np.ndarray  # (B,) Gauss-Newton decrement (lambda^2 / 2) at the returned parameters
    gradient_small: np.ndarray  # (B,) bool: decrement within tolerance
    rank: np.ndarray  # (B,) int: rank of the column-normalised Jacobian at the optimum
    n_distinct: np.ndarray  # (B,) int: distinct rows of x among the fitting points
    identifiable: np.ndarray  # (B,) bool: rank == P
    saturated: np.ndarray  # (B,) bool: n_distinct * outputs <= P
    constant_target: np.ndarray  # (B,) bool
    constant_reachable: np.ndarray  # (B,) bool: a constant prediction lies in the span of the Jacobian
    floor: np.ndarray  # (B,) the objective's round-off level (absolute tolerance of the tests)
    stuck_at_bound: Any = None  # (B, P) bool: on a bound, yet the objective would still fall inwards


def diagnose(
    law: Law,
    objective: Objective,
    params: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    fdtype: Any,
    weights: Any = None,
    penalty: Any = None,
    active: Any = None,
    box: Any = None,
    evaluated: Evaluation | None = None,
) -> Diagnostics:
    r"""Diagnostics of fits ``params (B, P)`` of ``law`` to ``x (B, n, d)``, ``y (B, n[, k])`` on the points
    marked by ``train (B, n)``; ``fdtype`` is the precision the fit ran in (it sets the round-off floor).

    For a weighted, penalised or bounded fit: ``weights (B, n)`` multiply the objective's terms (and its IRLS
    weights), ``penalty`` (a resolved ``(lam, indices, center)``, :mod:`.regularise`) adds its residuals
    :math:`\sqrt{\lambda W}(\theta_S - c)` as rows of weight 1. With ``box`` (one ``(lo, hi)`` per parameter,
    :mod:`.regularise`) a parameter on a bound is left out of the decrement when the gradient there points
    outwards, and flagged ``stuck_at_bound`` when it points inwards by more than the tolerance (module
    docstring). Without ``box``, the columns of ``active (B, P)`` are left out whatever the gradient.
    ``evaluated``: :func:`evaluate`'s result for these fits, when the caller has it already."""
    params = np.asarray(params, np.float64)
    B, n = x.shape[:2]
    P = law.n_params
    k = law.n_outputs
    finite = np.all(np.isfinite(params), axis=1)
    theta = np.where(finite[:, None], params, 0.0)
    ev = evaluate(law, objective, theta, x, y) if evaluated is None else evaluated
    r, jac, w = ev.residuals, ev.jacobian, ev.weights
    mask = np.broadcast_to(train.reshape(B, n, *([1] * (y.ndim - 2))), y.shape).reshape(B, -1)
    ok_rows = mask & np.isfinite(r) & np.all(np.isfinite(jac), axis=2)
    r = np.where(ok_rows, r, 0.0)
    jac = np.where(ok_rows[..., None], jac, 0.0)
    w = np.where(ok_rows, w, 0.0)
    if weights is not None:
        pw = np.broadcast_to(np.asarray(weights, np.float64).reshape(B, n, *([1] * (y.ndim - 2))), y.shape).reshape(
            B, -1
        )
        w = w * pw
    jac_dec, r_dec, w_dec = jac, r, w
    if penalty is not None:
        lam, idx, center = penalty
        pscale = np.sqrt(lam * np.sum(np.where(mask, pw if weights is not None else 1.0, 0.0), axis=1))
        rows = np.zeros((B, len(idx), P))
        rows[:, np.arange(len(idx)), list(idx)] = pscale[:, None]
        r_dec = np.concatenate([r, pscale[:, None] * (theta[:, list(idx)] - center)], axis=1)
        jac_dec = np.concatenate([jac, rows], axis=1)
        w_dec = np.concatenate([w, np.ones((B, len(idx)))], axis=1)
    grad = np.einsum("bnp,bn->bp", jac_dec, w_dec * r_dec)  # gradient of the objective in theta
    hdiag = np.einsum("bnp,bn->bp", jac_dec**2, w_dec)
    side = bound_side(theta, box) if box is not None else None
    if side is not None:  # held by a bound only where the gradient pushes outwards (KKT)
        active = ((side < 0) & (grad >= 0)) | ((side > 0) & (grad <= 0))
    if active is not None:
        jac_dec = np.where(np.asarray(active, bool)[:, None, :], 0.0, jac_dec)

    rank = _rank(jac)
    ones = mask.astype(np.float64)
    reach = _projected_norm2(jac, ones) >= (1 - CONSTANT_REACH_RTOL) * np.maximum(ones.sum(axis=1), 1.0)
    sw = np.sqrt(w_dec)
    decrement = 0.5 * _projected_norm2(jac_dec * sw[..., None], sw * r_dec)

    f = np.sum(np.where(ok_rows, ev.rho, 0.0) * (1.0 if weights is None else pw), axis=1)
    if penalty is not None:
        f = f + 0.5 * np.sum(r_dec[:, r.shape[1] :] ** 2, axis=1)
    target = (np.log(np.where(y > 0, y, 1.0)) if objective.log else y).reshape(B, -1)
    scale = np.max(np.abs(np.where(mask, target, 0.0)), axis=1)
    eps = np.finfo(fdtype).eps
    # round-off in a residual is ~eps * |target|; in the weighted residual sqrt(w) r it is sqrt(w) times that
    floor = 0.5 * np.sum(w, axis=1) * (ROUNDOFF_FACTOR * eps * scale) ** 2
    gradient_small = finite & np.isfinite(decrement) & (decrement <= DECREMENT_RTOL * f + floor)
    stuck = np.zeros_like(theta, bool)
    if side is not None:  # on a bound, gradient inwards, and moving that parameter alone would still pay
        inward = ((side < 0) & (grad < 0)) | ((side > 0) & (grad > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(hdiag > 0, 0.5 * grad**2 / hdiag, np.where(grad != 0, np.inf, 0.0))
        stuck = finite[:, None] & inward & (gain > (DECREMENT_RTOL * f + floor)[:, None])

    n_distinct = np.array([len(np.unique(x[b][train[b]], axis=0)) for b in range(B)], int)
    saturated = n_distinct * k <= P
    constant = np.zeros(B, bool)
    for b in range(B):
        t = y[b][train[b]].reshape(-1)
        constant[b] = np.ptp(t) <= CONSTANT_RTOL * max(np.max(np.abs(t)), 1e-300) if t.size else True
    return Diagnostics(
        decrement=np.where(finite, decrement, np.nan),
        gradient_small=gradient_small,
        rank=np.where(finite, rank, 0),
        n_distinct=n_distinct,
        identifiable=finite & (rank == P),
        saturated=saturated,
        constant_target=constant,
        constant_reachable=reach,
        floor=floor,
        stuck_at_bound=stuck,
    )


def flags_of(
    success: np.ndarray,
    converged: np.ndarray,
    saturated: np.ndarray,
    identifiable: np.ndarray,
    constant_target: np.ndarray,
    r2: np.ndarray,
    constant_reachable: np.ndarray | None = None,
    stuck_at_bound: np.ndarray | None = None,
) -> np.ndarray:
    """One tuple of flag strings per problem (``()`` when clean), as an object array ``(B,)``.

    ``negative_r2`` is raised only where the law could move towards a constant prediction
    (``constant_reachable``, default everywhere): there R^2 < 0 means the fit missed what it could reach.
    A law that cannot predict a constant (e.g. a method's matrix scaled without intercept) explaining less
    than the mean is a finding about the law, reported in ``r2`` but not flagged."""
    B = len(success)
    out = np.empty(B, dtype=object)
    for b in range(B):
        fl = []
        if not success[b]:
            fl.append("failed")
        else:
            if not converged[b]:
                fl.append("not_converged")
            if stuck_at_bound is not None and np.any(stuck_at_bound[b]):
                fl.append("stuck_at_bound")
            if saturated is not None and saturated[b]:
                fl.append("saturated")
            if identifiable is not None and not identifiable[b]:
                fl.append("rank_deficient")
            if constant_target is not None and constant_target[b]:
                fl.append("constant_target")
            if not np.isfinite(r2[b]):
                fl.append("nonfinite_r2")
            elif r2[b] < -NEGATIVE_R2_ATOL and (constant_reachable is None or constant_reachable[b]):
                fl.append("negative_r2")
        out[b] = tuple(fl)
    return out


def _rank(jac: np.ndarray) -> np.ndarray:
    """Rank of each ``(N, P)`` Jacobian of a batch after normalising its columns."""
    norms = np.linalg.norm(jac, axis=1, keepdims=True)
    scaled = np.where(norms > 0, jac / np.where(norms > 0, norms, 1.0), 0.0)
    s = np.linalg.svd(scaled, compute_uv=False)  # (B, min(N, P))
    top = s[:, :1]
    return np.sum(s > RANK_RTOL * np.maximum(top, 1e-300), axis=1) * (top[:, 0] > 0)


def _projected_norm2(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``||proj_{col(a_b)} v_b||^2`` per problem (the column space, cut off like :func:`_rank`)."""
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    scaled = np.where(norms > 0, a / np.where(norms > 0, norms, 1.0), 0.0)
    u, s, _ = np.linalg.svd(scaled, full_matrices=False)  # u (B, N, r)
    keep = s > RANK_RTOL * np.maximum(s[:, :1], 1e-300)
    coef = np.einsum("bnr,bn->br", u, v)
    return np.sum(np.where(keep, coef, 0.0) ** 2, axis=1)


class Evaluation(NamedTuple):
    """A batch of fits evaluated on their points (float64 NumPy, the points as given, padding cut off)."""

    predictions: np.ndarray  # (B, n[, k])
    residuals: np.ndarray  # (B, n*k) objective.residual(y, predictions), flattened
    jacobian: np.ndarray  # (B, n*k, P) d residuals / d params
    weights: np.ndarray  # (B, n*k) the objective's IRLS weights rho'(r) / r
    rho: np.ndarray  # (B, n*k) the objective's terms rho(r)


def evaluate(law: Law, objective: Objective, params: np.ndarray, x: np.ndarray, y: np.ndarray) -> Evaluation:
    """Predictions, residuals, their Jacobian and the objective's weights and terms for fits ``params (B, P)``
    on ``x (B, n, d)``, ``y (B, n[, k])``, in float64 -- everything the host side of a fit reads (its metrics,
    diagnostics and covariances), from one compiled program, with the points padded as the fit padded them
    (so fits of nearby sizes share it). Non-finite parameters must be replaced by the caller."""
    B, n = np.shape(x)[:2]
    extra = bucket(n) - n  # pad the points as the fit did (repeats of the last, cut off below): one program
    xp, yp = (
        np.concatenate([a, np.repeat(a[:, -1:], extra, axis=1)], axis=1) if extra else a
        for a in (np.asarray(x, np.float64), np.asarray(y, np.float64))
    )
    with jax.enable_x64(True):
        out = _evaluation(CodeKey.of(law.predict), objective)(np.asarray(params, np.float64), xp, yp)
    return cut_evaluation(out, n, law.n_outputs)


def cut_evaluation(out: Any, n: int, k: int) -> Evaluation:
    """:class:`Evaluation` from the ``(B, ...)`` outputs of :func:`evaluate_one` over padded points: float64
    NumPy, cut to the ``n`` real points (``k`` outputs each)."""
    pred, r, jac, w, rho = (np.asarray(o, np.float64) for o in out)
    return Evaluation(pred[:, :n], r[:, : n * k], jac[:, : n * k], w[:, : n * k], rho[:, : n * k])


def evaluate_one(predict: Any, objective: Objective, theta: Any, x: Any, y: Any) -> tuple:
    """Traceable: ``(predictions, residuals, d residuals / d theta, IRLS weights, rho)`` of one fit, what
    :class:`Evaluation` holds (the fitting program computes them at its optimum, :func:`evaluate` apart)."""
    pred = predict(theta, x)
    r = objective.residual(y, pred).reshape(-1)
    jac = jax.jacfwd(lambda t: objective.residual(y, predict(t, x)).reshape(-1))(theta)
    return pred, r, jac, objective.weight(r), objective.rho(r)


@functools.lru_cache(maxsize=64)
def _evaluation(predict: Any, objective: Objective):
    """One compiled ``vmap`` per (prediction function, objective): keyed on the function's code
    (:class:`~jaxlaws.fitting.execute.CodeKey`), so laws sharing one (``log_linear(m, own=i)``) share it."""

    return jax.jit(jax.vmap(functools.partial(evaluate_one, predict, objective)))
