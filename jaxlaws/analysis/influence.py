r"""The influence of each training run of a static sweep on the predicted optimal mixture.

A static sweep trains runs :math:`r = 1..n` at mixtures :math:`p_r` and records each group's loss
:math:`y_{ri} = L_i(p_r)`. The analysis fits one static law per group, :math:`\hat\theta_i(y_{\cdot i}, w)`
(the weighted robust objective of :func:`jaxlaws.solve`, run weights :math:`w_r = 1`), and predicts the
optimal mixture :math:`p^\star(\hat\theta) = \arg\min_{p\in\Delta^m}\sum_i v_i L_i(p;\hat\theta_i)`. Both maps
are differentiated implicitly -- the fit through the implicit function theorem at its optimum
(:func:`jaxlaws.solve`), the mixture through the KKT conditions on the simplex
(:func:`jaxlaws.analysis.optimum.optimal_mixture`) -- so by the chain rule

.. math:: \frac{\partial p^\star_j}{\partial y_{ri}} = \sum_k \frac{\partial p^\star_j}{\partial\theta_{ik}}
          \frac{\partial\hat\theta_{ik}}{\partial y_{ri}},\qquad
          \frac{\partial p^\star_j}{\partial w_r} = \sum_{i,k}\frac{\partial p^\star_j}{\partial\theta_{ik}}
          \frac{\partial\hat\theta_{ik}}{\partial w_r},

the first: how far the optimum moves per unit change of one measured loss; the second (the classical
influence function of robust statistics, Hampel 1974; Koh & Liang 2017 for models): leaving run ``r`` out
(:math:`w_r: 1\to 0`) moves the optimum by about :math:`-\partial p^\star/\partial w_r`. One reverse-mode
Jacobian gives all of them; no refit per run. The static law and its optimum are those of Aioli's
analysis (Chen et al., 2025; HazyResearch/aioli ``notebooks/``' static fits and optimal proportions).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxlaws._typing import ArrayLike, BoundsLike, PenaltyLike, ScreenLike, SolverLike, Table
from jaxlaws.analysis.optimum import OptimumResult, optimal_mixture
from jaxlaws.fitting.objectives import Objective
from jaxlaws.fitting.regularise import LAW
from jaxlaws.laws.base import Law

if TYPE_CHECKING:
    from jaxlaws.analysis.static import LawFits
    from jaxlaws.sweeps.schema import Sweep

__all__ = ["Influence", "group_losses_fn", "influence", "sweep_influence"]

Array = jax.Array


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["p", "d_loss", "d_weight", "loo", "loo_result", "params", "fit_result", "optimum"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Influence:
    r"""What :func:`influence` returns: a pytree of arrays (leading axes added by ``vmap``, e.g. seeds).

    Attributes:
      p: ``(m,)`` the optimal mixture predicted from the refitted laws.
      d_loss: ``(m, n, m)``, ``d_loss[j, r, i]`` = :math:`\partial p^\star_j / \partial y_{ri}`, the optimum's
        ``j``-th share per unit of group ``i``'s loss in run ``r``.
      d_weight: ``(m, n)``, :math:`\partial p^\star_j / \partial w_r` for run ``r``'s weight in every group's fit;
        :math:`-` it is the first-order shift of the optimum when run ``r`` is left out.
      loo: ``(n, m)`` the exact shift of the optimum when run ``r`` is left out (every group refitted with
        :math:`w_r = 0` from the same starts; forward only), or ``(0, m)`` with ``leave_one_out=False``. With
        few runs per parameter, leaving one out is no small perturbation and the first-order shift can be far
        off: compare the two.
      loo_result: ``(n, m)`` int32 :class:`jaxlaws.RESULTS` code of each group's refit without run ``r``
        (e.g. ``singular_hessian`` where the remaining runs no longer determine the law).
      params: ``(m, P)`` the refitted law per group.
      fit_result: ``(m,)`` int32 :class:`jaxlaws.RESULTS` code of each group's fit (the derivatives need
        ``successful``: a regular Hessian).
      optimum: the :class:`~jaxlaws.analysis.optimum.OptimumResult` (active set, KKT residual).
    """

    p: Array
    d_loss: Array
    d_weight: Array
    loo: Array
    loo_result: Array
    params: Array
    fit_result: Array
    optimum: OptimumResult

    @property
    def norm(self) -> Array:
        r"""``(n,)`` :math:`\lVert\partial p^\star/\partial y_{r\cdot}\rVert_F` per run: one number for how
        strongly the run's measured losses steer the predicted optimum."""
        return jnp.sqrt(jnp.sum(self.d_loss**2, axis=(0, 2)))

    def to_frame(self, groups: Sequence[str], runs: Sequence[Any] | None = None) -> pd.DataFrame:
        """One row per run (unbatched results only): ``run``, ``dp_<g>/dL_<h>`` for every pair of groups
        (share of ``g`` in the optimum per unit of group ``h``'s loss in the run), ``drop_dp_<g>`` (the
        first-order shift of the optimum's share of ``g`` when the run is left out), ``loo_dp_<g>`` (the exact
        shift, when computed, and ``loo_fit``: ``""`` or the groups whose refit without the run is not
        ``successful``) and ``influence`` (the Frobenius norm over the ``dp/dL`` entries)."""
        d_loss, d_weight = np.asarray(self.d_loss, np.float64), np.asarray(self.d_weight, np.float64)
        if d_loss.ndim != 3:
            raise ValueError(
                f"to_frame needs one result (d_loss (m, n, m)), got d_loss of shape {d_loss.shape}; "
                "index a batched result first"
            )
        m, n, _ = d_loss.shape
        groups = list(groups)
        if len(groups) != m:
            raise ValueError(f"to_frame: {len(groups)} group names for an optimum over {m} groups")
        runs = list(range(n)) if runs is None else list(runs)
        if len(runs) != n:
            raise ValueError(f"to_frame: {len(runs)} run labels for {n} runs")
        out = pd.DataFrame({"run": runs})
        for j, g in enumerate(groups):
            for i, h in enumerate(groups):
                out[f"dp_{g}/dL_{h}"] = d_loss[j, :, i]
        for j, g in enumerate(groups):
            out[f"drop_dp_{g}"] = -d_weight[j]
        loo = np.asarray(self.loo, np.float64)
        if loo.shape == (n, m):
            for j, g in enumerate(groups):
                out[f"loo_dp_{g}"] = loo[:, j]
            from jaxlaws.fitting.solve import RESULTS

            codes = np.asarray(self.loo_result)
            out["loo_fit"] = [
                "; ".join(f"{g}: {RESULTS.name(c)}" for g, c in zip(groups, row) if c != RESULTS.successful)
                for row in codes
            ]
        out["influence"] = np.asarray(self.norm, np.float64)
        return out


def group_losses_fn(law: Law, m: int):
    """``(params (m, P), p (m,)) -> (m,)``: each group's law at the mixture ``p`` -- of the whole mixture for a
    law with ``x_dim == m`` (e.g. ``log_linear(m)``), of the group's own share for ``x_dim == 1`` (e.g.
    ``static_two_group``)."""
    own = law.x_dim == 1

    def losses(params: Array, p: Array) -> Array:
        xs = p[:, None, None] if own else jnp.broadcast_to(p, (m, m))[:, None, :]
        return jax.vmap(lambda th, x: law.predict(th, x)[0])(params, xs)

    return losses


@functools.cache  # one losses function per (law, m): optimal_mixture's compiled program is keyed on it
def _cached_losses(law: Law, m: int):
    return group_losses_fn(law, m)


def _freeze(v: Any) -> Any:
    """A hashable stand-in for a static option (a bounds mapping becomes a tagged tuple of items)."""
    return ("__mapping__", tuple(sorted(v.items()))) if isinstance(v, dict) else v


def _thaw(v: Any) -> Any:
    return dict(v[1]) if isinstance(v, tuple) and len(v) == 2 and v[0] == "__mapping__" else v


def influence(
    law: Law,
    x: Table,
    y: ArrayLike,
    inits: Table,
    *,
    weights: ArrayLike | None = None,
    group_weights: ArrayLike | None = None,
    objective: Objective | None = None,
    solver: SolverLike | None = None,
    penalty: PenaltyLike = LAW,
    bounds: BoundsLike = LAW,
    screen: ScreenLike = "auto",
    steps: int = 300,
    newton: int = 8,
    leave_one_out: bool = True,
) -> Influence:
    r"""How each run's losses (and its presence) move the predicted optimal mixture (module docstring).

    Fits ``law`` to every group's losses with :func:`jaxlaws.solve`, predicts the optimum with
    :func:`~jaxlaws.analysis.optimum.optimal_mixture` and returns the reverse-mode Jacobian of the optimum
    w.r.t. the losses ``y`` and the run weights, all by implicit differentiation (no refit per run). Pure and
    traceable: ``jax.vmap`` it over seeds or ``jax.jit`` it inside a larger program.

    Args:
      law: the static law of one group, of the whole mixture (``x_dim == m``, e.g.
        ``jaxlaws.laws.log_linear(m)``) or of the group's own share (``x_dim == 1``, e.g.
        ``jaxlaws.laws.static_two_group()``: group ``i`` is fitted on ``x[:, i]``).
      x: ``(n, m)`` the runs' mixtures.
      y: ``(n, m)`` the runs' loss per group.
      inits: ``(m, n_init, P)`` starts per group, or ``(n_init, P)`` shared (e.g. the analysis' fits).
      weights: ``(n,)`` run weights (default 1; 0 leaves a run out).
      group_weights: ``(m,)`` positive weights :math:`v_i` of the groups' losses in the optimum (default 1).
      objective, solver, penalty, bounds, screen: as in :func:`jaxlaws.solve` (static).
      steps, newton: as in :func:`~jaxlaws.analysis.optimum.optimal_mixture`.
      leave_one_out: also refit without each run in turn (``Influence.loo``; ``n`` more fits per group, vmapped).
    Returns:
      :class:`Influence`; check ``fit_result`` (all ``RESULTS.successful``) before reading the derivatives.
    """
    if not isinstance(law, Law):
        raise ValueError(f"influence needs a jaxlaws.laws.Law, got {type(law).__name__}")
    x, y, inits = jnp.asarray(x), jnp.asarray(y), jnp.asarray(inits)
    dtype = jnp.result_type(x, y, inits, float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"influence: x must be (n, m) mixtures with m >= 2, got shape {x.shape}")
    n, m = x.shape
    if law.x_dim not in (1, m) or law.n_outputs != 1:
        raise ValueError(
            f"influence: {law.name} must be a one-output law of the whole mixture (x_dim = m = {m}) "
            f"or of the group's own share (x_dim = 1); it has x_dim {law.x_dim}"
        )
    if y.shape != (n, m):
        raise ValueError(f"influence: y must be (n, m) = ({n}, {m}) losses (one column per group), got {y.shape}")
    if inits.ndim == 2:
        inits = jnp.broadcast_to(inits, (m,) + inits.shape)
    if inits.ndim != 3 or inits.shape[0] != m or inits.shape[2] != law.n_params:
        raise ValueError(
            f"influence: inits must be (m, n_init, P) or (n_init, P) with P = {law.n_params} "
            f"({', '.join(law.param_names)}), got shape {inits.shape}"
        )
    w = jnp.ones((n,), dtype) if weights is None else jnp.asarray(weights, dtype)
    v = jnp.ones((m,), dtype) if group_weights is None else jnp.asarray(group_weights, dtype)
    if w.shape != (n,) or v.shape != (m,):
        raise ValueError(f"influence: weights must be ({n},) and group_weights ({m},), got {w.shape} and {v.shape}")
    opts = tuple(
        (k, _freeze(val))
        for k, val in (
            ("objective", objective),
            ("solver", solver),
            ("penalty", penalty),
            ("bounds", bounds),
            ("screen", screen),
        )
    )
    return _influence(
        law,
        opts,
        int(steps),
        int(newton),
        bool(leave_one_out),
        x.astype(dtype),
        y.astype(dtype),
        inits.astype(dtype),
        w,
        v,
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _influence(law, opts, steps, newton, leave_one_out, x, y, inits, w, v) -> Influence:
    from jaxlaws.fitting.solve import solve  # here: jaxlaws.fitting imports the analysis' laws

    kw = {k: _thaw(val) for k, val in opts}
    m = x.shape[1]
    xs = x.T[:, :, None] if law.x_dim == 1 else jnp.broadcast_to(x, (m,) + x.shape)
    losses = _cached_losses(law, m)

    def optimum(yy, ww):
        sol = jax.vmap(lambda xi, yi, ii: solve(law, xi, yi, ii, weights=ww, **kw))(xs, yy.T, inits)
        opt = optimal_mixture(losses, sol.params, v, steps=steps, newton=newton)
        return opt.p, (sol.params, sol.result, opt)

    # one forward pass (the fits' search runs once), then one reverse pass per share of the optimum
    p, pullback, (params, result, opt) = jax.vjp(optimum, y, w, has_aux=True)
    d_loss, d_weight = jax.vmap(pullback)(jnp.eye(m, dtype=p.dtype))
    n = y.shape[0]
    if leave_one_out:  # each run's weight set to 0 in turn, all refits in one vmap (no derivatives)
        drop = jax.lax.stop_gradient(w[None, :] * (1.0 - jnp.eye(n, dtype=w.dtype)))
        p_loo, (_, loo_result, _) = jax.vmap(lambda ww: optimum(jax.lax.stop_gradient(y), ww))(drop)
        loo = p_loo - p
    else:
        loo, loo_result = jnp.zeros((0, m), p.dtype), jnp.zeros((0, m), result.dtype)
    return Influence(
        p=p,
        d_loss=d_loss,
        d_weight=d_weight,
        loo=loo,
        loo_result=loo_result,
        params=params,
        fit_result=result,
        optimum=opt,
    )


def sweep_influence(
    sweep: Sweep,
    fits: LawFits,
    *,
    split: str = "val",
    include_flagged: bool = False,
    group_weights: ArrayLike | None = None,
) -> pd.DataFrame:
    """:func:`influence` for every seed of a static sweep, started from the analysis' static fits ``fits``.

    Each (group, seed) is refitted jointly by :func:`jaxlaws.solve` from its fitted parameters (the same law; for
    the m=2 two-stage fit the refit also moves ``c``, which the two-stage fit picks on a grid), in float64.

    Args:
      sweep: the static sweep.
      fits: :func:`jaxlaws.analysis.fit_static`'s :class:`~jaxlaws.analysis.LawFits` on it.
      split: the loss split, as in the fits.
      include_flagged: also seeds with a flagged static fit (left out by default).
      group_weights: ``(m,)`` weights of the groups' losses in the optimum (default 1).

    Returns:
      One row per (seed, run) (:meth:`Influence.to_frame`'s columns after ``seed``, ``run``, the run's
      ``p_<g>``), plus the refit's optimum ``opt_<g>`` and ``fit_result`` per seed (``"successful"`` where every
      group's Hessian is regular; otherwise the derivatives of that seed are NaN).
    """
    from jaxlaws.analysis import _common
    from jaxlaws.fitting.solve import RESULTS
    from jaxlaws.sweeps.schema import proportion_columns

    groups = tuple(sweep.groups)
    pcols = proportion_columns(groups)
    step = int(fits.params["step"].iloc[0])
    wide = _common.wide_losses(sweep, ["static"], split)
    wide = wide[wide["step"] == step]
    names = list(fits.param_names)
    parts = []
    for seed, d in wide.groupby("seed", sort=True):
        f = fits.params[fits.params["seed"] == seed].set_index("group")
        if not set(groups) <= set(f.index) or (not include_flagged and (f.loc[list(groups), "flags"] != "").any()):
            continue
        theta = f.loc[list(groups), names].to_numpy(np.float64)
        x = d[pcols].to_numpy(np.float64)
        y = d[[f"L_{g}" for g in groups]].to_numpy(np.float64)
        with jax.enable_x64(True):
            res = influence(fits.law, x, y, theta[:, None, :], group_weights=group_weights)
            res = jax.tree_util.tree_map(np.asarray, res)
        codes = [str(RESULTS.name(c)) for c in res.fit_result]
        ok = all(c == "successful" for c in codes)
        table = res.to_frame(groups, runs=list(d["run"]))
        if not ok:
            deriv = [c for c in table.columns if c.startswith(("dp_", "drop_dp_")) or c == "influence"]
            table[deriv] = np.nan
        table.insert(0, "seed", int(seed))
        for k, c in enumerate(pcols):
            table.insert(2 + k, c, x[:, k])
        for j, g in enumerate(groups):
            table[f"opt_{g}"] = float(res.p[j])
        table["fit_result"] = (
            "successful" if ok else "; ".join(f"{g}: {c}" for g, c in zip(groups, codes) if c != "successful")
        )
        parts.append(table)
    if not parts:
        return pd.DataFrame(columns=["seed", "run", *pcols, "influence", "fit_result"])
    return pd.concat(parts, ignore_index=True)
