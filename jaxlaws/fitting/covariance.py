r"""Standard errors at the optimum of a fit: the Gauss-Newton covariance and, for Huber, the sandwich.

For a fit :math:`\hat\theta = \arg\min_\theta \sum_n w_n\rho(r_n(\theta)) + \tfrac{\lambda}{2}W\sum_{j\in S}
(\theta_j - c)^2` (:mod:`.regularise`), with residuals :math:`r = y - f(x;\theta)` (or :math:`\log y - \log f`
for a log-space objective, e.g. Chinchilla's Huber on :math:`\log L`; then everything below is in the log
residuals), Jacobian :math:`J = \partial r/\partial\theta` and :math:`\psi = \rho'`:

* **bread** :math:`H = J^\top \operatorname{diag}(w\,\psi'(r))\,J + \lambda W\,I_S`, the Gauss-Newton
  Hessian of the penalised objective (the exact Hessian less the terms :math:`\psi(r_n)\nabla^2 r_n`, whose
  expectation vanishes at the truth). For least squares :math:`\psi' = 1`. For Huber :math:`\psi'(r) =
  \mathbb 1[|r| < \delta]`, whose sum estimates :math:`E\,\psi'(e) = P(|e| < \delta)` from the few points
  inside a small :math:`\delta` (Chinchilla's Huber(1e-3): 39 of 240), a noisy estimate of the bread's
  shape; by default it is kernel-smoothed, :math:`\Phi((\delta - r_n)/h) - \Phi((-\delta - r_n)/h)` (the
  probability that :math:`|r_n + hZ| < \delta`, Gaussian :math:`Z`), with Silverman's bandwidth :math:`h` of
  the residuals -- as the kernel sandwich of quantile regression (Powell 1991). ``bandwidth=0`` gives the
  indicator (Huber 1981, *Robust Statistics*, sec. 7.6).
* ``kind="classical"`` (the default for least squares): the meat :math:`M = s^2 J^\top W J` with
  :math:`s^2 = \sum_n w_n \psi(r_n)^2 / (n - P)` over the :math:`n` observations of positive weight; for least
  squares (:math:`\psi(r) = r`) and without a penalty :math:`\operatorname{cov} = H^{-1} M H^{-1} =
  s^2 (J^\top W J)^{-1}`, the usual nonlinear least-squares covariance (as ``scipy.optimize.curve_fit``'s
  ``pcov``; Seber & Wild 1989, sec. 2.1); for Huber, the M-estimator's covariance under equal noise at every
  point, :math:`s^2 (\overline{\psi'})^{-2} (J^\top J)^{-1}` unweighted (Huber 1981, sec. 7.6).
* ``kind="sandwich"`` (the default for Huber): :math:`M = \frac{n}{n-P}\sum_n w_n^2\psi(r_n)^2 J_n J_n^\top`,
  the M-estimator's robust covariance :math:`H^{-1} M H^{-1}` (Huber 1967; White 1980 for least squares,
  HC1's :math:`n/(n-P)`), which holds whatever the noise distribution, outliers and unequal variances
  included.

The weights are precision weights (inverse variances up to one common factor): multiplying them all by a
constant leaves the covariance unchanged, and a point of weight 2 is *not* the same as that point twice
(the bootstrap's draw counts are frequency weights; do not read the covariance of a resample's fit).

A ridge penalty enters the bread only, so the reported covariance is the sampling variance of the
penalised estimator around its own mean (:math:`H^{-1}MH^{-1}`; smaller than the unpenalised one, and blind
to the penalty's bias).

**Parameters on a bound** (of a box given to the fit): there the fitted value is the constrained one and no
normal approximation holds. Their rows and columns of the covariance are NaN; the other parameters'
covariance is the one with the bound parameters held fixed at their values (their Jacobian columns dropped),
so ``info.at_bound`` says which.

**Against the bootstrap** (``benchmarks/bench_stderr.py``): on Chinchilla (Epoch's 240 points) the sandwich is
within about 10% of :func:`jaxlaws.bootstrap` and of Epoch's published bootstrap for :math:`E, A, \alpha`, but
about 0.7x for :math:`B, \beta`, whose spread there comes from residuals that are not iid around the law; on
data simulated from the fitted law it is calibrated. Where the two disagree, the bootstrap is the safer choice.

**Singular bread** (unidentifiable combinations, a saturated fit, fewer observations than parameters): the
covariance is all NaN and ``info.singular`` is True -- nothing raises, so the function runs under
``jax.jit`` / ``jax.vmap``. The test is on the bread scaled to unit diagonal: an eigenvalue below
:data:`SINGULAR_RTOL` times the largest counts as zero.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr as jax_ndtr

from jaxlaws._typing import ArrayLike
from jaxlaws.fitting.objectives import Objective
from jaxlaws.fitting.regularise import BoxSpec, PenaltySpec
from jaxlaws.laws.base import Array

__all__ = [
    "KINDS",
    "SINGULAR_RTOL",
    "BOUND_RTOL",
    "CovarianceInfo",
    "covariance",
    "from_jacobian",
    "of_fits",
    "silverman",
    "delta_method",
    "normal_quantile",
    "propagate",
]

KINDS = ("auto", "classical", "sandwich")
SINGULAR_RTOL = 1e-12  # eigenvalue of the unit-diagonal bread below which it counts as singular
BOUND_RTOL = 1e-6  # as regularise.at_bound: within this fraction of the box's scale of a bound


# the standard normal CDF on the host, float64, without SciPy (not a dependency of jaxlaws)
_np_ndtr = np.vectorize(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)), otypes=[np.float64])


class CovarianceInfo(NamedTuple):
    """What the covariance rests on (a pytree of arrays).

    Attributes:
      singular: the bread was singular (the covariance is NaN).
      at_bound: ``(P,)`` parameters on a bound (their rows and columns are NaN).
      sigma2: the residual variance :math:`s^2` of ``kind="classical"`` (NaN for the sandwich).
      dof: residual degrees of freedom :math:`n - P_{free}` (observations of positive weight less free
        parameters); at or below 0 the covariance is NaN.
      condition: condition number of the unit-diagonal bread of the free parameters (inf when singular).
    """

    singular: Array
    at_bound: Array
    sigma2: Array
    dof: Array
    condition: Array


def covariance(
    predict: Callable[[Array, Array], Array],
    theta: Array,
    x: Array,
    y: Array,
    weights: Array | None = None,
    objective: Objective | None = None,
    penalty_spec: PenaltySpec | None = None,
    box: BoxSpec | None = None,
    kind: str = "auto",
    bandwidth: float | Literal["silverman"] = "silverman",
) -> tuple[Array, CovarianceInfo]:
    r"""Covariance ``(P, P)`` of the fitted parameters ``theta (P,)`` of ``predict`` on ``(x, y)`` (module
    docstring for the formulas), and a :class:`CovarianceInfo`. Pure JAX: works under ``jit``, ``vmap`` and
    with traced data; computes in the dtype of ``theta``.

    Args:
      predict: the law's ``predict(params (P,), x (n, d)) -> (n,)`` or ``(n, k)``.
      theta: the fitted parameters (in the law's own coordinates, not a bounds reparametrisation).
      x, y: the fitting points (``y (n,)`` or ``(n, k)``).
      weights: ``(n,)`` non-negative weights of the points (0 leaves a point out: padding of ragged data);
        default all 1.
      objective: the fit's :class:`~jaxlaws.fitting.objectives.Objective`; default least squares.
      penalty_spec: a resolved ridge ``(lam, indices, center)`` (``regularise.resolve_penalty``) or ``None``.
      box: resolved bounds (``regularise.resolve_bounds``) or ``None``.
      kind: ``"classical"``, ``"sandwich"`` or ``"auto"`` (classical for least squares, sandwich for any
        other objective).
      bandwidth: for Huber, the kernel bandwidth :math:`h` of the bread's :math:`\psi'` in residual units,
        ``0`` for the unsmoothed indicator, or ``"silverman"`` (default; :func:`silverman`).

    Returns:
      ``(cov, info)``: the ``(P, P)`` covariance (NaN rows and columns for parameters on a bound, all NaN when
      undefined) and a :class:`CovarianceInfo`.
    """
    _check(kind, bandwidth)
    obj = objective if objective is not None else Objective("squared")
    theta = jnp.asarray(theta)
    y = jnp.asarray(y, theta.dtype)
    w = jnp.ones(y.shape[:1], theta.dtype) if weights is None else jnp.asarray(weights, theta.dtype)
    wf = jnp.broadcast_to(w.reshape(w.shape + (1,) * (y.ndim - 1)), y.shape).reshape(-1)

    def residual(t):
        return jnp.where(wf > 0, obj.residual(y, predict(t, x)).reshape(-1), 0.0)

    return from_jacobian(
        residual(theta), jax.jacfwd(residual)(theta), wf, theta, obj, penalty_spec, box, kind, bandwidth
    )


def _check(kind: str, bandwidth: Any) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(bandwidth, str) and bandwidth != "silverman":
        raise ValueError(f"bandwidth must be 'silverman' or a number >= 0, got {bandwidth!r}")


def from_jacobian(
    r: Any,
    jac: Any,
    weights: Any,
    theta: Any,
    objective: Objective | None = None,
    penalty_spec: PenaltySpec | None = None,
    box: BoxSpec | None = None,
    kind: str = "auto",
    bandwidth: float | Literal["silverman"] = "silverman",
    xp: Any = jnp,
) -> tuple[Any, CovarianceInfo]:
    """:func:`covariance` from the residuals ``r ([B,] N)`` and their Jacobian ``jac ([B,] N, P)`` at ``theta
    ([B,] P)``, with ``weights ([B,] N)`` flattened like ``r``; any leading batch axes. ``xp``: ``jax.numpy``
    (traceable) or ``numpy`` (on the host, nothing to compile). Rows with a non-finite residual or Jacobian
    entry are left out, as points of weight 0."""
    _check(kind, bandwidth)
    obj = objective if objective is not None else Objective("squared")
    sandwich = kind == "sandwich" or (kind == "auto" and obj.delta is not None)
    use = (weights > 0) & xp.isfinite(r) & xp.all(xp.isfinite(jac), axis=-1)
    r = xp.where(use, r, 0.0)
    w = xp.where(use, weights, 0.0)
    n_obs = xp.sum(use, axis=-1)
    psi, dpsi = _psi(obj, r, use, n_obs, bandwidth, xp)
    fixed = _at_bound(theta, box, xp)
    jac = xp.where(use[..., None] & ~fixed[..., None, :], jac, 0.0)  # bound parameters held fixed
    jt = xp.swapaxes(jac, -1, -2)
    bread = jt @ ((w * dpsi)[..., None] * jac)
    if penalty_spec is not None:  # the ridge residuals sqrt(lam W)(theta_S - c): lam W on the diagonal at S
        lam, idx, _ = penalty_spec
        on = xp.asarray([j in idx for j in range(jac.shape[-1])], bool)
        bread = (
            bread
            + xp.where(on & (xp.arange(jac.shape[-1])[:, None] == xp.arange(jac.shape[-1])), 1.0, 0.0)
            * (lam * xp.sum(w, axis=-1))[..., None, None]
        )
    dof = (n_obs - xp.sum(~fixed, axis=-1)).astype(r.dtype)
    safe_dof = xp.where(dof > 0, dof, 1.0)
    if sandwich:
        score = (w * psi)[..., None] * jac
        meat = xp.swapaxes(score, -1, -2) @ score * (n_obs / safe_dof)[..., None, None]
        sigma2 = xp.full(dof.shape, xp.nan, r.dtype)
    else:
        sigma2 = xp.sum(w * psi * psi, axis=-1) / safe_dof
        meat = sigma2[..., None, None] * (jt @ (w[..., None] * jac))
    inv, singular, cond = _inverse(bread, fixed, xp)
    cov = inv @ meat @ inv
    cov = 0.5 * (cov + xp.swapaxes(cov, -1, -2))
    bad = (singular | ~(dof > 0))[..., None, None]
    cov = xp.where(bad | fixed[..., :, None] | fixed[..., None, :], xp.nan, cov)
    sigma2 = xp.where(dof > 0, sigma2, xp.nan)
    return cov, CovarianceInfo(singular=singular, at_bound=fixed, sigma2=sigma2, dof=dof, condition=cond)


def of_fits(
    law: Any,
    objective: Objective,
    params: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    penalty_spec: PenaltySpec | None = None,
    box: BoxSpec | None = None,
    evaluated: Any = None,
) -> np.ndarray:
    """``(B, P, P)`` covariances of a batch of fits ``params (B, P)`` on ``x (B, n, d)``, ``y (B, n[, k])`` with
    fitting weights ``(B, n)`` (0 off the fitting points), on the host in float64 (NaN for a failed fit).
    The residuals and Jacobian come from :func:`~jaxlaws.fitting.diagnostics.evaluate`, the program the fit's
    diagnostics run (or its result ``evaluated``, when the caller has it), so this compiles nothing new."""
    from jaxlaws.fitting.diagnostics import evaluate

    params = np.asarray(params, np.float64)
    finite = np.all(np.isfinite(params), axis=1)
    theta = np.where(finite[:, None], params, 0.0)
    ev = evaluate(law, objective, theta, x, y) if evaluated is None else evaluated
    r, jac = ev.residuals, ev.jacobian
    w = np.asarray(weights, np.float64)
    wf = np.broadcast_to(w.reshape(w.shape + (1,) * (np.ndim(y) - 2)), np.shape(y)).reshape(len(theta), -1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN / inf rows are masked below
        cov, _ = from_jacobian(
            np.asarray(r, np.float64), np.asarray(jac, np.float64), wf, theta, objective, penalty_spec, box, xp=np
        )
    return np.where(finite[:, None, None], cov, np.nan)


def _psi(obj: Objective, r: Any, use: Any, n_obs: Any, bandwidth: Any, xp: Any) -> tuple[Any, Any]:
    r""":math:`\psi(r) = \rho'(r)` and the bread's :math:`\psi'`: 1 for least squares; for Huber
    (:math:`\psi(r) = \operatorname{clip}(r, -\delta, \delta)`) the kernel-smoothed
    :math:`\Phi((\delta - r)/h) - \Phi((-\delta - r)/h)` (module docstring; ``h = 0``: the indicator
    :math:`\mathbb 1[|r| < \delta]`)."""
    if obj.delta is None:
        return r, xp.ones_like(r)
    psi = xp.clip(r, -obj.delta, obj.delta)
    h = silverman(r, use, n_obs, xp) if isinstance(bandwidth, str) else xp.asarray(bandwidth, r.dtype)
    h = h[..., None] if xp.ndim(h) else h
    hs = xp.where(h > 0, h, 1.0)
    ndtr = _np_ndtr if xp is np else jax_ndtr
    smooth = ndtr((obj.delta - r) / hs) - ndtr((-obj.delta - r) / hs)
    return psi, xp.where(h > 0, smooth, (xp.abs(r) < obj.delta).astype(r.dtype))


def silverman(r: Any, use: Any, n_obs: Any, xp: Any = jnp) -> Any:
    r"""Silverman's rule-of-thumb bandwidth of the residuals ``r ([B,] N)`` marked by ``use``:
    :math:`0.9\,\min(\hat\sigma, \mathrm{IQR}/1.34)\,n^{-1/5}` (Silverman 1986, *Density Estimation*, eq. 3.31)."""
    n = xp.maximum(n_obs, 1).astype(r.dtype)
    mean = xp.sum(xp.where(use, r, 0.0), axis=-1) / n
    sd = xp.sqrt(xp.sum(xp.where(use, (r - mean[..., None]) ** 2, 0.0), axis=-1) / xp.maximum(n - 1, 1))
    q75, q25 = xp.nanpercentile(xp.where(use, r, xp.nan), xp.asarray([75.0, 25.0]), axis=-1)
    spread = xp.minimum(sd, (q75 - q25) / 1.34)
    return 0.9 * xp.where(spread > 0, spread, sd) * n**-0.2


def _at_bound(theta: Any, box: BoxSpec | None, xp: Any) -> Any:
    """``([B,] P)`` which parameters sit on a bound: the rule of :func:`jaxlaws.fitting.regularise.at_bound`,
    written for either array namespace so that it also traces."""
    if box is None:
        return xp.zeros(theta.shape, bool)
    out = []
    for j, (lo, hi) in enumerate(box):
        if not (math.isfinite(lo) or math.isfinite(hi)):
            out.append(xp.zeros(theta.shape[:-1], bool))
            continue
        scale = (hi - lo) if math.isfinite(hi - lo) else 1.0 + abs(lo if math.isfinite(lo) else hi)
        t = theta[..., j]
        out.append(((t - lo) <= BOUND_RTOL * scale) | ((hi - t) <= BOUND_RTOL * scale))
    return xp.stack(out, axis=-1)


def _inverse(a: Any, fixed: Any, xp: Any) -> tuple[Any, Any, Any]:
    """Inverse of the symmetric bread ``a ([B,] P, P)`` on the free parameters (rows and columns of ``fixed``
    replaced by the identity, then zeroed), through the eigendecomposition of ``a`` scaled to unit diagonal;
    with a singularity flag and the scaled matrix's condition number."""
    eye = xp.eye(a.shape[-1], dtype=a.dtype)
    keep = ~fixed[..., :, None] & ~fixed[..., None, :]
    a = xp.where(keep, a, eye)
    d = xp.sqrt(xp.maximum(xp.diagonal(a, axis1=-2, axis2=-1), 0.0))
    dpos = d > 0
    dinv = xp.where(dpos, 1.0 / xp.where(dpos, d, 1.0), 0.0)
    s = a * dinv[..., :, None] * dinv[..., None, :]
    s = xp.where(dpos[..., :, None] & dpos[..., None, :], s, eye)  # a zero column: singular below, no NaN in eigh
    s = 0.5 * (s + xp.swapaxes(s, -1, -2))
    s = xp.where(xp.isfinite(s), s, 0.0)
    evals, evecs = xp.linalg.eigh(s)
    top, low = evals[..., -1], evals[..., 0]
    singular = ~xp.all(dpos, axis=-1) | ~(low > SINGULAR_RTOL * top) | ~xp.all(xp.isfinite(a), axis=(-2, -1))
    safe = xp.where(evals > 0, evals, 1.0)
    inv = (evecs / safe[..., None, :]) @ xp.swapaxes(evecs, -1, -2) * dinv[..., :, None] * dinv[..., None, :]
    inv = xp.where(keep, inv, 0.0)
    cond = xp.where(singular, xp.inf, top / xp.where(singular, 1.0, low))
    return inv, singular, cond


def delta_method(fn: Callable[[jax.Array], jax.Array], theta: ArrayLike, cov: ArrayLike) -> tuple[jax.Array, jax.Array]:
    r"""Value and covariance of ``fn(theta)`` by the delta method, :math:`G\,\Sigma\,G^\top`.

    :math:`G = \partial\,\mathrm{fn}/\partial\theta` by ``jax.jacobian`` (``fn`` must be traceable). NaN entries
    of ``cov`` (parameters on a bound) make NaN only the outputs that depend on them.

    Args:
      fn: ``theta (P,) -> (q,)``, traceable.
      theta: ``(P,)`` fitted parameters.
      cov: ``(P, P)`` their covariance (e.g. ``FitResult.cov``).

    Returns:
      ``(value (q,), covariance (q, q))``.
    """
    theta = jnp.asarray(theta)
    value = fn(theta)
    g = jax.jacobian(fn)(theta)
    return value, propagate(g, cov)


def normal_quantile(p: float) -> float:
    """The standard normal quantile :math:`\\Phi^{-1}(p)` (e.g. 1.959964 for ``p = 0.975``)."""
    return statistics.NormalDist().inv_cdf(p)  # the standard library's: SciPy is not a dependency


def propagate(g: Any, cov: Any) -> Array:
    """:math:`G\\Sigma G^\\top` for ``g ([B,] q, P)``, ``cov ([B,] P, P)``, NaN only in the outputs that depend on a
    parameter whose variance is NaN."""
    g, cov = jnp.asarray(g), jnp.asarray(cov)
    unknown = jnp.isnan(jnp.diagonal(cov, axis1=-2, axis2=-1))  # ([B,] P)
    out = g @ jnp.where(jnp.isnan(cov), 0.0, cov) @ jnp.swapaxes(g, -1, -2)
    hit = jnp.any((g != 0) & unknown[..., None, :], axis=-1)  # ([B,] q)
    return jnp.where(hit[..., :, None] | hit[..., None, :], jnp.nan, out)
