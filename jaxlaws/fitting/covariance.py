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

**Singular bread** (unidentifiable combinations, a saturated fit, fewer observations than parameters): the
covariance is all NaN and ``info.singular`` is True -- nothing raises, so the function runs under
``jax.jit`` / ``jax.vmap``. The test is on the bread scaled to unit diagonal: an eigenvalue below
:data:`SINGULAR_RTOL` times the largest counts as zero.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from jaxlaws.fitting.objectives import Objective
from jaxlaws.fitting.regularise import BoxSpec, PenaltySpec, penalty_residuals
from jaxlaws.laws.base import Array

KINDS = ("auto", "classical", "sandwich")
SINGULAR_RTOL = 1e-12   # eigenvalue of the unit-diagonal bread below which it counts as singular
BOUND_RTOL = 1e-6       # as regularise.at_bound: within this fraction of the box's scale of a bound


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


def covariance(predict: Callable[[Array, Array], Array], theta: Array, x: Array, y: Array,
               weights: Optional[Array] = None, objective: Optional[Objective] = None,
               penalty_spec: Optional[PenaltySpec] = None, box: Optional[BoxSpec] = None,
               kind: str = "auto", bandwidth: Any = "silverman") -> tuple[Array, CovarianceInfo]:
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
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(bandwidth, str) and bandwidth != "silverman":
        raise ValueError(f"bandwidth must be 'silverman' or a number >= 0, got {bandwidth!r}")
    obj = objective if objective is not None else Objective("squared")
    sandwich = kind == "sandwich" or (kind == "auto" and obj.delta is not None)
    theta = jnp.asarray(theta)
    dtype = theta.dtype
    P = theta.shape[-1]
    y = jnp.asarray(y, dtype)
    w = jnp.ones(y.shape[:1], dtype) if weights is None else jnp.asarray(weights, dtype)
    wf = jnp.broadcast_to(w.reshape(w.shape + (1,) * (y.ndim - 1)), y.shape).reshape(-1)
    use = wf > 0

    def residual(t):
        return jnp.where(use, obj.residual(y, predict(t, x)).reshape(-1), 0.0)

    r, jac = residual(theta), jax.jacfwd(residual)(theta)            # (N,), (N, P)
    r = jnp.where(use, r, 0.0)
    jac = jnp.where(use[:, None], jac, 0.0)
    n_obs = jnp.sum(use)
    psi, dpsi = _psi(obj, r, use, n_obs, bandwidth)
    fixed = _at_bound(theta, box)
    jac = jnp.where(fixed[None, :], 0.0, jac)                        # bound parameters held fixed
    total = jnp.sum(wf)

    pen_jac = jax.jacfwd(lambda t: penalty_residuals(t, penalty_spec, total))(theta)   # (K, P)
    bread = jac.T @ ((wf * dpsi)[:, None] * jac) + pen_jac.T @ pen_jac
    dof = (n_obs - jnp.sum(~fixed)).astype(dtype)
    if sandwich:
        score = (wf * psi)[:, None] * jac
        meat = score.T @ score * (n_obs / dof)
        sigma2 = jnp.asarray(jnp.nan, dtype)
    else:
        sigma2 = jnp.sum(wf * psi * psi) / dof
        meat = sigma2 * (jac.T @ (wf[:, None] * jac))
    inv, singular, cond = _inverse(bread, fixed)
    cov = inv @ meat @ inv
    cov = 0.5 * (cov + cov.T)
    bad = singular | ~(dof > 0)
    cov = jnp.where(bad | fixed[:, None] | fixed[None, :], jnp.nan, cov)
    return cov, CovarianceInfo(singular=singular, at_bound=fixed, sigma2=sigma2, dof=dof, condition=cond)


def _psi(obj: Objective, r: Array, use: Array, n_obs: Array, bandwidth: Any) -> tuple[Array, Array]:
    r""":math:`\psi(r) = \rho'(r)` (``r`` times the IRLS weight) and the bread's :math:`\psi'`: 1 for least
    squares; for Huber the kernel-smoothed :math:`\Phi((\delta - r)/h) - \Phi((-\delta - r)/h)` (module
    docstring; ``h = 0``: the indicator :math:`\mathbb 1[|r| < \delta]`)."""
    psi = r * obj.weight(r)
    if obj.delta is None:
        return psi, jnp.ones_like(r)
    h = silverman(r, use, n_obs) if isinstance(bandwidth, str) else jnp.asarray(bandwidth, r.dtype)
    hs = jnp.where(h > 0, h, 1.0)
    smooth = norm.cdf((obj.delta - r) / hs) - norm.cdf((-obj.delta - r) / hs)
    return psi, jnp.where(h > 0, smooth, (jnp.abs(r) < obj.delta).astype(r.dtype))


def silverman(r: Array, use: Array, n_obs: Array) -> Array:
    r"""Silverman's rule-of-thumb bandwidth of the residuals ``r`` marked by ``use``:
    :math:`0.9\,\min(\hat\sigma, \mathrm{IQR}/1.34)\,n^{-1/5}` (Silverman 1986, *Density Estimation*, eq. 3.31)."""
    mean = jnp.sum(jnp.where(use, r, 0.0)) / n_obs
    sd = jnp.sqrt(jnp.sum(jnp.where(use, (r - mean) ** 2, 0.0)) / jnp.maximum(n_obs - 1, 1))
    q75, q25 = jnp.nanpercentile(jnp.where(use, r, jnp.nan), jnp.array([75.0, 25.0]))
    spread = jnp.minimum(sd, (q75 - q25) / 1.34)
    return 0.9 * jnp.where(spread > 0, spread, sd) * n_obs.astype(r.dtype) ** -0.2


def _at_bound(theta: Array, box: Optional[BoxSpec]) -> Array:
    """``(P,)`` which parameters sit on a bound, the rule of :func:`jaxlaws.fitting.regularise.at_bound`
    written in ``jnp`` so that it traces."""
    P = theta.shape[-1]
    if box is None:
        return jnp.zeros((P,), bool)
    out = []
    for j, (lo, hi) in enumerate(box):
        if not (math.isfinite(lo) or math.isfinite(hi)):
            out.append(jnp.asarray(False))
            continue
        scale = (hi - lo) if math.isfinite(hi - lo) else 1.0 + abs(lo if math.isfinite(lo) else hi)
        out.append(((theta[j] - lo) <= BOUND_RTOL * scale) | ((hi - theta[j]) <= BOUND_RTOL * scale))
    return jnp.stack(out)


def _inverse(a: Array, fixed: Array) -> tuple[Array, Array, Array]:
    """Inverse of the symmetric bread ``a`` on the free parameters (rows and columns of ``fixed`` replaced by
    the identity, then zeroed), through the eigendecomposition of ``a`` scaled to unit diagonal; with a
    singularity flag and the scaled matrix's condition number."""
    eye = jnp.eye(a.shape[0], dtype=a.dtype)
    keep = ~fixed[:, None] & ~fixed[None, :]
    a = jnp.where(keep, a, eye)
    d = jnp.sqrt(jnp.diag(a))
    dpos = d > 0
    dinv = jnp.where(dpos, 1.0 / jnp.where(dpos, d, 1.0), 0.0)
    s = a * dinv[:, None] * dinv[None, :]
    s = jnp.where(dpos[:, None] & dpos[None, :], s, eye)  # a zero column: singular below, no NaN in eigh
    evals, evecs = jnp.linalg.eigh(0.5 * (s + s.T))
    top = jnp.max(evals)
    singular = ~jnp.all(dpos) | ~(jnp.min(evals) > SINGULAR_RTOL * top) | ~jnp.all(jnp.isfinite(evals))
    safe = jnp.where(evals > 0, evals, 1.0)
    inv = (evecs / safe[None, :]) @ evecs.T * dinv[:, None] * dinv[None, :]
    inv = jnp.where(keep, inv, 0.0)
    cond = jnp.where(singular, jnp.inf, top / jnp.where(singular, 1.0, jnp.min(evals)))
    return inv, singular, cond


def delta_method(fn: Callable[[Any], Any], theta: Any, cov: Any) -> tuple[Any, Any]:
    r"""``(value, covariance)`` of ``fn(theta) -> (q,)`` by the delta method, :math:`G\,\Sigma\,G^\top` with
    :math:`G = \partial\,\mathrm{fn}/\partial\theta` (``jax.jacobian``; ``fn`` must be traceable). NaN
    entries of ``cov`` (parameters on a bound) make NaN only the outputs that depend on them."""
    theta = jnp.asarray(theta)
    value = fn(theta)
    g = jax.jacobian(fn)(theta)
    return value, propagate(g, cov)


def normal_quantile(p: float) -> float:
    """The standard normal quantile :math:`\\Phi^{-1}(p)` (e.g. 1.959964 for ``p = 0.975``)."""
    from scipy.special import ndtri

    return float(ndtri(p))


def propagate(g: Any, cov: Any) -> Array:
    """:math:`G\\Sigma G^\\top` for ``g ([B,] q, P)``, ``cov ([B,] P, P)``, NaN only in the outputs that depend on a
    parameter whose variance is NaN."""
    g, cov = jnp.asarray(g), jnp.asarray(cov)
    unknown = jnp.isnan(jnp.diagonal(cov, axis1=-2, axis2=-1))           # ([B,] P)
    out = g @ jnp.where(jnp.isnan(cov), 0.0, cov) @ jnp.swapaxes(g, -1, -2)
    hit = jnp.any((g != 0) & unknown[..., None, :], axis=-1)              # ([B,] q)
    return jnp.where(hit[..., :, None] | hit[..., None, :], jnp.nan, out)
