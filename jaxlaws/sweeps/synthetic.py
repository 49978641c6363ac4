r"""Synthetic sweeps drawn from known mixing-law parameters (by default the original's fitted ones).

Every generator returns ``(sweep, truth)``: a validated :class:`~jaxlaws.sweeps.Sweep` and a dict with the
parameters that generated it, so tests and benchmarks can check recovery.

**Noise.** Losses get i.i.d. Gaussian noise :math:`\varepsilon \sim \mathcal N(0, \sigma^2)` from
``np.random.default_rng(seed)``. Real sweeps scatter about that much around the fitted laws: the original's
fits have MSE ~ 2.5e-5 -- 4e-4 (sd 0.005 -- 0.02). Defaults: ``noise=0.005`` (SlimPajama settings),
``0.01`` (instruction). ``noise=0`` gives exact laws.

**Laws** (:math:`p_{<m}` drops the last group; slopes in the fitted, mostly negative, convention):

* static two-group ``[c, k, b]``: :math:`L_i = c_i + \exp(k_i p_i + b_i)`;
* static log-linear ``[l, b, t_1..t_{m-1}]``: :math:`L_i = e^{l_i} + \exp(b_i + t_i \cdot p_{<m})`;
* dynamic two-group ``[k, b]``: :math:`L_i^{B+R} = k_i p_i + b_i`;
* dynamic linear ``[c, t..]``: :math:`L_i^{B+R} = c_i + t_i \cdot p_{<m}`;
* dynamic log-ratio ``[c, t..]``: :math:`L_i^{B+R} = L_i^B \exp(c_i + t_i \cdot p_{<m})`;
* method probes: m=2 :math:`L_i^{B+R} = k_i p_i + b_i` (``A* = diag(k)``), m>=3
  :math:`L_i^{B+R} = L_i^B + (A^\star p)_i`; the methods' recorded matrices are simulated by each method's own
  update rule on observations drawn from these laws (:mod:`jaxlaws.sweeps.method_models`), not copied from
  :math:`A^\star`.

Everything here is a *synthetic parameter-recovery check*; the real example sweeps trained by jaxlaws are
in :mod:`jaxlaws.sweeps.bundle`.

Only the final step of a static run follows the static law; earlier steps (``extra_steps``) add
:math:`0.3 \log(T/t)` so curves decrease, with independent noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxlaws._typing import ArrayLike
from jaxlaws.sweeps import dirichlet, reference
from jaxlaws.sweeps.io import concat_sweeps
from jaxlaws.sweeps.original import encode_weights
from jaxlaws.sweeps.schema import Sweep, empty_matrices, proportion_columns

STATIC_LAWS = ("two_group", "log_linear")
DYNAMIC_LAWS = ("two_group", "linear", "log_ratio")
TRUTH_MODES = ("reference", "equal", "flip")


def static_law(law: str, params: np.ndarray, p: np.ndarray, i: int) -> np.ndarray:
    """Loss of group ``i`` at mixtures ``p`` (n, m) under a static law (module docstring)."""
    p = np.atleast_2d(p)
    if law == "two_group":
        c, k, b = params
        return c + np.exp(k * p[:, i] + b)
    if law == "log_linear":
        return np.exp(params[0]) + np.exp(params[1] + p[:, :-1] @ params[2:])
    raise ValueError(f"static law must be one of {STATIC_LAWS}, got {law!r}")


def dynamic_law(law: str, params: np.ndarray, p: np.ndarray, i: int, loss_at_break: float | None = None):
    """Loss of group ``i`` after the break at child mixtures ``p`` (n, m) under a dynamic law."""
    p = np.atleast_2d(p)
    if law == "two_group":
        return params[0] * p[:, i] + params[1]
    lin = params[0] + p[:, :-1] @ params[1:]
    if law == "linear":
        return lin
    if law == "log_ratio":
        if loss_at_break is None:
            raise ValueError("the log-ratio law needs the loss at the break")
        return loss_at_break * np.exp(lin)
    raise ValueError(f"dynamic law must be one of {DYNAMIC_LAWS}, got {law!r}")


def _rows(
    run, seed, step, groups, losses, p, kind="static", parent="", break_step=-1, steps_run=-1, method="", split="val"
) -> dict:
    m = len(groups)
    d = {
        "run": [run] * m,
        "seed": [seed] * m,
        "step": [step] * m,
        "split": [split] * m,
        "group": list(groups),
        "loss": list(np.asarray(losses, np.float64)),
        "kind": [kind] * m,
        "parent": [parent] * m,
        "break_step": [break_step] * m,
        "steps_run": [steps_run] * m,
        "method": [method] * m,
    }
    for j, c in enumerate(proportion_columns(groups)):
        d[c] = [float(p[j])] * m
    return d


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({c: [v for r in rows for v in r[c]] for c in rows[0]})


def _run_id(prefix: str, *mixtures: np.ndarray) -> str:
    return "_".join([prefix, *(encode_weights(p) for p in mixtures)])


def _check_mixtures(mix: np.ndarray, m: int, what: str) -> np.ndarray:
    mix = np.asarray(mix, np.float64)
    if mix.ndim != 2 or mix.shape[1] != m:
        raise ValueError(f"{what}: mixtures must have shape (n, {m}), got {mix.shape}")
    if (mix < 0).any() or np.abs(mix.sum(1) - 1).max() > 1e-4:
        raise ValueError(f"{what}: every mixture must be non-negative and sum to 1")
    return mix


def static_sweep(
    params: Mapping[str, Mapping[int, np.ndarray]],
    mixtures: ArrayLike | Mapping[int, ArrayLike],
    *,
    law: str = "log_linear",
    final_step: int = 5000,
    extra_steps: Sequence[int] = (),
    noise: float = 0.005,
    seed: int = 0,
    test_split: bool = False,
) -> tuple[Sweep, dict]:
    """A static sweep: for every seed in ``params[group]`` and every mixture, losses at ``final_step``.

    Args:
      params: ``[group][seed] -> law parameters``; the groups (in this order) are the sweep's groups.
      mixtures: ``(n, m)`` mixtures run by every seed, or ``{seed: (n, m)}`` (e.g. per-seed Dirichlet grids).
      law: ``"two_group"`` or ``"log_linear"`` (module docstring).
      extra_steps: earlier evaluation steps (losses above the law, see module docstring).
      noise: sd of the Gaussian loss noise; seed: its generator seed.
      test_split: also write ``"test"`` losses at the final step (independent noise).

    Returns:
      ``(sweep, truth)`` with ``truth = {"law", "params", "mixtures", "noise", "final_step"}``.
    """
    groups = tuple(params)
    m = len(groups)
    seeds = sorted(params[groups[0]])
    if any(sorted(params[g]) != seeds for g in groups):
        raise ValueError("static_sweep: every group needs parameters for the same seeds")
    if law not in STATIC_LAWS or (law == "two_group" and m != 2):
        raise ValueError(f"static_sweep: law must be one of {STATIC_LAWS} ('two_group' needs m=2), got {law!r}")
    mix = {
        s: _check_mixtures(mixtures[s] if isinstance(mixtures, Mapping) else mixtures, m, "static_sweep") for s in seeds
    }
    rng = np.random.default_rng(seed)
    rows = []
    for s in seeds:
        clean = np.stack([static_law(law, np.asarray(params[g][s]), mix[s], i) for i, g in enumerate(groups)], 1)
        for n, p in enumerate(mix[s]):
            run = _run_id("static", p)
            splits = ("val", "test") if test_split else ("val",)
            for split in splits:
                rows.append(
                    _rows(run, s, final_step, groups, clean[n] + noise * rng.standard_normal(m), p, split=split)
                )
            for t in extra_steps:
                early = clean[n] + 0.3 * np.log(final_step / t) + noise * rng.standard_normal(m)
                rows.append(_rows(run, s, t, groups, early, p))
    truth = {
        "law": law,
        "params": {g: {s: np.asarray(params[g][s]) for s in seeds} for g in groups},
        "mixtures": mix,
        "noise": noise,
        "final_step": final_step,
    }
    return Sweep(_frame(rows), groups), truth


def reference_static_sweep(
    setting: str,
    *,
    seed: int = 0,
    noise: float | None = None,
    extra_steps: Sequence[int] | None = None,
    test_split: bool = False,
) -> tuple[Sweep, dict]:
    """The paper's static sweep for ``setting`` from the stored fits: m=2 ``two_group`` law on p_arxiv
    0.1..0.9, seeds 0-4, step 5000; m=3 log-linear on each seed's ``k_3_n_9`` grid; instruction (m=9)
    log-linear on each seed's ``k_9_n_50`` grid, seeds 0-3, step 1000. ``seed`` seeds the noise.

    Args:
      setting: ``"arxiv_stackexchange"`` (m=2), ``"arxiv_books_stackexchange"`` (m=3) or ``"instruction"``
        (a key of ``reference.SETTINGS``).
      seed: seeds the noise.
      noise: sd of the loss noise; default the setting's.
      extra_steps: earlier evaluation steps.
      test_split: also write test losses.

    Returns:
      ``(sweep, truth)`` as :func:`static_sweep`.
    """
    groups = reference.check_setting(setting)
    params = reference.static_params(setting)
    params = {g: params[g] for g in groups}
    seeds = sorted(params[groups[0]])
    if setting == "arxiv_stackexchange":
        mixtures, law = dirichlet.two_group_grid(), "two_group"
    else:
        k, n = (3, 9) if setting == "arxiv_books_stackexchange" else (9, 50)
        mixtures, law = {s: dirichlet.load_dirichlet_grid(k, n, s) for s in seeds}, "log_linear"
    final = reference.STATIC_STEP[setting]
    if extra_steps is None:
        extra_steps = (final // 5, final // 2)
    noise = (0.01 if setting == "instruction" else 0.005) if noise is None else noise
    return static_sweep(
        params,
        mixtures,
        law=law,
        final_step=final,
        extra_steps=extra_steps,
        noise=noise,
        seed=seed,
        test_split=test_split,
    )


def dynamic_sweep(
    params: Mapping[str, Mapping[float, np.ndarray]],
    parents: ArrayLike,
    children: ArrayLike,
    *,
    law: str,
    break_step: int,
    steps_run: int = 100,
    parent_loss: ArrayLike | None = None,
    noise: float = 0.005,
    seed: int = 0,
    seeds: Sequence[int] = (0,),
) -> tuple[Sweep, dict]:
    """Parents (kind ``"parent"``) with a loss at ``break_step`` and, for each, every child mixture resumed for
    ``steps_run`` steps (kind ``"child"``) with its loss at ``break_step + steps_run`` from the dynamic law.

    Args:
      params: ``[group][key] -> parameters``; parent ``n`` uses the key closest to ``parents[n, 0]`` (the
        original keyed fits by the parent's first proportion; must match within 1e-6).
      parents, children: ``(P, m)`` and ``(C, m)`` mixtures.
      law: ``"two_group"``, ``"linear"`` or ``"log_ratio"``.
      parent_loss: ``(P, m)`` losses at the break; default: the mean child prediction + 0.05 (linear laws).
        Required for ``"log_ratio"``.
      seeds: training seeds to emit (the original ran seed 0); all share the parameters.

    Returns:
      ``(sweep, truth)``: the :class:`Sweep` and the parameters, mixtures and losses it was drawn from.
    """
    groups = tuple(params)
    m = len(groups)
    parents, children = _check_mixtures(parents, m, "parents"), _check_mixtures(children, m, "children")
    if law not in DYNAMIC_LAWS:
        raise ValueError(f"dynamic_sweep: law must be one of {DYNAMIC_LAWS}, got {law!r}")
    if law == "log_ratio" and parent_loss is None:
        raise ValueError("dynamic_sweep: the log-ratio law needs parent_loss")
    keys = np.array(sorted(params[groups[0]]), dtype=np.float64)
    rng = np.random.default_rng(seed)
    rows, used = [], {}
    for n, pp in enumerate(parents):
        key = keys[np.argmin(np.abs(keys - pp[0]))]
        if abs(key - pp[0]) > 1e-6:
            raise ValueError(f"dynamic_sweep: no parameters for parent with first proportion {pp[0]}")
        theta = [np.asarray(params[g][key]) for g in groups]
        used[float(key)] = {g: theta[i] for i, g in enumerate(groups)}
        if parent_loss is not None:
            lb = np.asarray(parent_loss, np.float64)[n]
        else:
            lb = np.array([dynamic_law(law, theta[i], children, i).mean() for i in range(m)]) + 0.05
        after = np.stack([dynamic_law(law, theta[i], children, i, lb[i]) for i in range(m)], 1)
        prun = _run_id(f"parent_{break_step}", pp)
        for s in seeds:
            rows.append(
                _rows(
                    prun,
                    s,
                    break_step,
                    groups,
                    lb + noise * rng.standard_normal(m),
                    pp,
                    kind="parent",
                    break_step=break_step,
                )
            )
            for c, pc in enumerate(children):
                rows.append(
                    _rows(
                        _run_id(f"child_{break_step}", pp, pc),
                        s,
                        break_step + steps_run,
                        groups,
                        after[c] + noise * rng.standard_normal(m),
                        pc,
                        kind="child",
                        parent=prun,
                        break_step=break_step,
                        steps_run=steps_run,
                    )
                )
    truth = {
        "law": law,
        "params": used,
        "parents": parents,
        "children": children,
        "break_step": break_step,
        "steps_run": steps_run,
        "noise": noise,
    }
    return Sweep(_frame(rows), groups), truth


def reference_dynamic_sweep(
    setting: str, *, seed: int = 0, noise: float | None = None, log_ratio: bool = False, seeds: Sequence[int] = (0,)
) -> tuple[Sweep, dict]:
    """The paper's dynamic sweep from the stored fits: m=2 parents/children p_arxiv 0.1..0.9 at B=2000,
    R=100 (9 x 9); m=3 parents and children the 9 ``k_3_n_9_seed_0`` points (9 x 9); instruction parents the
    first 10 ``k_9_n_50_seed_0`` points at B=500 and all 50 as children (10 x 50), linear or log-ratio law.

    Args:
      setting: a key of ``reference.SETTINGS``.
      seed: seeds the noise.
      noise: sd of the loss noise; default the setting's.
      log_ratio: (instruction) the log-ratio law instead of the linear one.
      seeds: training seeds to emit.

    Returns:
      ``(sweep, truth)`` as :func:`dynamic_sweep`.
    """
    groups = reference.check_setting(setting)
    params = reference.dynamic_params(setting, log_ratio=log_ratio)
    params = {g: params[g] for g in groups}
    if setting == "arxiv_stackexchange":
        parents = children = dirichlet.two_group_grid()
        law = "two_group"
    elif setting == "arxiv_books_stackexchange":
        parents = children = dirichlet.load_dirichlet_grid(3, 9, 0)
        law = "linear"
    else:
        children = dirichlet.load_dirichlet_grid(9, 50, 0)
        parents, law = children[:10], "log_ratio" if log_ratio else "linear"
    noise = (0.01 if setting == "instruction" else 0.005) if noise is None else noise
    parent_loss = None
    if log_ratio:
        lin = reference.dynamic_params(setting)
        parent_loss = np.array(
            [
                [dynamic_law("linear", lin[g][_nearest(lin[g], pp[0])], pp, i)[0] + 0.05 for i, g in enumerate(groups)]
                for pp in parents
            ]
        )
    return dynamic_sweep(
        params,
        parents,
        children,
        law=law,
        break_step=reference.DYNAMIC_STEP[setting],
        parent_loss=parent_loss,
        noise=noise,
        seed=seed,
        seeds=seeds,
    )


def _nearest(d: Mapping[float, np.ndarray], x: float) -> float:
    keys = np.array(sorted(d), dtype=np.float64)
    return float(keys[np.argmin(np.abs(keys - x))])


def effective_method_matrix(method: str, stack: np.ndarray, loss_at_break: np.ndarray, m: int) -> np.ndarray:
    """The analysis' :math:`A^t` from a recorded stack (Aioli: all rounds for m=2, last 4 for m>=3; DoGE,
    DoReMi: the mean; Skill-It: :math:`\\mathrm{diag}(L^B) G^\\top`), diagonalised for m=2
    (:math:`\\mathrm{diag}(A_{11}-A_{12}, A_{22}-A_{21})`), as the original's
    ``{2,3}_{aioli,doge,doremi,skillit}_parameters.ipynb`` and ``{2,3}_measurements.ipynb`` do."""
    if method == "aioli":
        a = stack.mean(0) if m == 2 else stack[-4:].mean(0)
    elif method in ("doge", "doremi"):
        a = stack.mean(0)
    elif method == "skillit":
        a = np.diag(loss_at_break) @ stack[-1].T
    else:
        raise ValueError(f"unknown method {method!r}")
    if m == 2:
        a = np.diag([a[0, 0] - a[0, 1], a[1, 1] - a[1, 0]])
    return a


def _method_stack(
    method: str, world: dict, rng: np.random.Generator, rounds: int, groups, seed: int, sim: dict
) -> tuple[np.ndarray, np.ndarray | None]:
    """What ``method`` records before the break, simulated by its own update rule on observations drawn from
    the true laws (:mod:`jaxlaws.sweeps.method_models`); returns ``(stack, the method's mixture or None)``."""
    from jaxlaws.sweeps import method_models as mm

    m = world["a_star"].shape[0]
    if method == "skillit":
        return reference.skillit_graph(groups, seed)[None], None
    if method == "aioli":
        hp = (
            dict(eta=0.2, ema=0.1, lp_rounds=4, lp_steps=4, ohf=0.625)
            if m == 2
            else dict(eta=0.1, ema=0.5, lp_rounds=4, lp_steps=6, ohf=0.5)
        )
        return mm.simulate_aioli(
            world["delta"], m, rng, rounds=rounds, steps_run=world["steps_run"], noise=sim["eval_noise"], **hp
        )
    if method == "doremi":
        return mm.simulate_doremi(
            world["static_loss"], m, rng, steps=world["break_step"], batch_noise=sim["batch_noise"]
        )
    return mm.simulate_doge(world["a_star"], rng, steps=world["break_step"], grad_noise=sim["grad_noise"])


def method_sweep(
    method: str,
    m: int,
    seed: int,
    *,
    truth_mode: str = "reference",
    noise: float = 0.005,
    rounds: int | None = None,
    batch_noise: float = 0.05,
    grad_noise: float = 2.0,
    rng_seed: int | None = None,
) -> tuple[Sweep, dict]:
    """One synthetic method probe (the original's break-and-resume protocol for ``A^{t*}``): a ``kind="method"``
    run broken at B with its internal matrices, plus the 9 children resumed from it (m=2: p_arxiv 0.1..0.9;
    m=3: the seed's ``k_3_n_9`` grid) for R steps.

    The children follow the true dynamic law (``A*``: the paper's stored fit of this method's trajectory).
    The recorded matrices and the method's mixture come from simulating the method's own update rule on
    observations drawn from the true laws (:mod:`jaxlaws.sweeps.method_models`: Aioli's LearnParams on
    noisy loss decreases, DoReMi's excess losses from the static law, DoGE's gradient alignments in the
    trainer's orientation ``M[i, j] = <g_i, v_j>``); Skill-It records the original's measured graph. None of
    them is built from ``A*`` plus jitter, so how well a method's matrix matches ``A*`` (``sim``) is what the
    simulation gives.

    Args:
      method: ``aioli``, ``doge``, ``doremi`` or ``skillit``; B and R are the paper's (reference.TRAJECTORY).
      m: 2 (arxiv, stackexchange) or 3 (arxiv, book, stackexchange).
      seed: the training seed (its reference ``A*`` and static fits are used).
      truth_mode: ``"reference"``: the children follow the stored ``A*`` fit; ``"equal"``: the children follow
        ``A* = b Ã_unit`` exactly (the method's own simulated matrix, with the stored negative scale ``b``), so
        ``sim == 1`` and the fitted scale is ``b`` -- a recovery check of the scale fit, ``sim`` built in by
        construction; ``"flip"``: the same with ``-b`` (the fitted scale comes out positive).
      noise: sd of the loss noise (children, evaluations inside Aioli's LearnParams).
      rounds: Aioli's rounds before the break (default B/250).
      batch_noise: sd of DoReMi's per-batch excess-loss noise; grad_noise: DoGE's minibatch-gradient noise
        norm relative to the mean gradient's.
      rng_seed: noise generator seed (default ``1000 * m + seed``).

    Returns:
      ``(sweep, truth)`` with ``truth = {"A_star", "intercept" (m=2), "A_method", "loss_at_break",
      "break_step", "steps_run", "mixture", "children", "method_run", "scale", "truth_mode"}``.
    """
    if m not in (2, 3):
        raise ValueError(f"method_sweep: m must be 2 or 3, got {m}")
    if truth_mode not in TRUTH_MODES:
        raise ValueError(f"method_sweep: truth_mode must be one of {TRUTH_MODES}, got {truth_mode!r}")
    if method not in reference.METHODS:
        raise ValueError(f"method_sweep: method must be one of {reference.METHODS}, got {method!r}")
    setting = "arxiv_stackexchange" if m == 2 else "arxiv_books_stackexchange"
    groups = reference.SETTINGS[setting]
    opt, scale_fit, B, R = reference.trajectory_params(setting, method)
    rng = np.random.default_rng(1000 * m + seed if rng_seed is None else rng_seed)
    static = reference.static_params(setting)
    law = "two_group" if m == 2 else "log_linear"

    def static_loss(p):
        return np.stack([static_law(law, static[g][seed], p, i) for i, g in enumerate(groups)], 1)

    if m == 2:
        a_ref = np.diag([opt[g][seed][0] for g in groups])
        intercept = np.array([opt[g][seed][1] for g in groups])
        lb_uniform = intercept + np.diag(a_ref) * 0.5 + 0.02

        def delta(p):  # loss change over R steps from a break at the uniform mixture
            return np.atleast_2d(p) * np.diag(a_ref)[None] + (intercept - lb_uniform)[None]
    else:
        a_ref = np.stack([opt[g][seed] for g in groups])
        intercept = None

        def delta(p):
            return np.atleast_2d(p) @ a_ref.T

    children = dirichlet.two_group_grid() if m == 2 else dirichlet.load_dirichlet_grid(3, 9, seed)
    world = {"a_star": a_ref, "delta": delta, "static_loss": static_loss, "break_step": B, "steps_run": R}
    rounds = rounds or B // 250
    stack, p_method = _method_stack(
        method,
        world,
        rng,
        rounds,
        groups,
        seed,
        {"eval_noise": noise, "batch_noise": batch_noise, "grad_noise": grad_noise},
    )
    if p_method is None:  # Skill-It: its mixture is not simulated here
        p_method = rng.dirichlet(np.full(m, 8.0))
    lb = intercept + np.diag(a_ref) * p_method + 0.02 if m == 2 else static_loss(p_method)[0] + 0.3
    a_eff = effective_method_matrix(method, stack, lb, m)
    b_ref = float(scale_fit[seed][0])
    if truth_mode == "reference":
        a_star = a_ref
    else:
        unit = a_eff / np.abs(a_eff).sum()
        a_star = (1 if truth_mode == "equal" else -1) * b_ref * unit * np.abs(a_ref).sum()
    if m == 2:
        clean = np.diag(a_star)[None] * children + intercept[None]
    else:
        clean = lb[None] + children @ a_star.T
    run = f"{method}_break_{B}"
    rows = [
        _rows(
            run,
            seed,
            t,
            groups,
            lb + 0.1 * np.log(B / t) + noise * rng.standard_normal(m),
            p_method,
            kind="method",
            break_step=B,
            method=method,
        )
        for t in range(250, B + 1, 250)
    ]
    for c, pc in enumerate(children):
        rows.append(
            _rows(
                _run_id(f"{method}_child_{B}", pc),
                seed,
                B + R,
                groups,
                clean[c] + noise * rng.standard_normal(m),
                pc,
                kind="child",
                parent=run,
                break_step=B,
                steps_run=R,
                method=method,
            )
        )
    name = {"aioli": "aioli_A", "doge": "doge_M", "doremi": "doremi_excess", "skillit": "skillit_graph"}[method]
    idx, row, col = np.meshgrid(np.arange(len(stack)), np.arange(m), np.arange(m), indexing="ij")
    mats = pd.DataFrame(
        {
            "run": run,
            "seed": seed,
            "step": B,
            "name": name,
            "index": idx.ravel(),
            "row": row.ravel(),
            "col": col.ravel(),
            "value": stack.ravel(),
        }
    )
    truth = {
        "A_star": a_star,
        "intercept": intercept,
        "A_method": a_eff,
        "loss_at_break": lb,
        "break_step": B,
        "steps_run": R,
        "mixture": p_method,
        "children": children,
        "method_run": run,
        "scale": b_ref,
        "truth_mode": truth_mode,
    }
    return Sweep(_frame(rows), groups, mats), truth


def reference_sweep_bundle(
    *, seeds: Sequence[int] = range(5), noise: float = 0.005, seed: int = 0, truth_mode: str = "reference"
) -> dict[str, tuple[Sweep, dict]]:
    """Paper-sized synthetic sweeps for m=2 and m=3: ``{setting: (sweep, truth)}``.

    Each sweep holds the static sweep (5 seeds), the dynamic 9 parents x 9 children (seed 0) and the four
    method probes for every seed; ``truth = {"static", "dynamic", "methods": {method: {seed: truth}}}``.

    Args:
      seeds: the training seeds.
      noise: sd of the loss noise.
      seed: seeds the noise.
      truth_mode: as :func:`method_sweep`.

    Returns:
      ``{setting: (sweep, truth)}`` for ``"arxiv_stackexchange"`` and ``"arxiv_books_stackexchange"``.
    """
    out = {}
    for setting, m in (("arxiv_stackexchange", 2), ("arxiv_books_stackexchange", 3)):
        st, st_truth = reference_static_sweep(setting, seed=seed, noise=noise)
        dy, dy_truth = reference_dynamic_sweep(setting, seed=seed + 1, noise=noise)
        parts, mtruth = [st, dy], {}
        for meth in reference.METHODS:
            for s in seeds:
                sw, tr = method_sweep(
                    meth, m, s, truth_mode=truth_mode, noise=noise, rng_seed=10_000 * (seed + 1) + 100 * m + s
                )
                parts.append(sw)
                mtruth.setdefault(meth, {})[s] = tr
        out[setting] = (concat_sweeps(parts), {"static": st_truth, "dynamic": dy_truth, "methods": mtruth})
    return out


__all__ = [
    "static_sweep",
    "reference_static_sweep",
    "dynamic_sweep",
    "reference_dynamic_sweep",
    "method_sweep",
    "reference_sweep_bundle",
    "static_law",
    "dynamic_law",
    "effective_method_matrix",
    "empty_matrices",
]
