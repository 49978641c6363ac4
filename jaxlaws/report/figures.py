"""Every figure a section's data support, in reading order, with the table behind each."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jaxlaws import plot
from jaxlaws.report.sources import Section

__all__ = ["ReportFigure", "static_cross_validation", "section_figures"]


@dataclasses.dataclass
class ReportFigure:
    """A drawn figure (``figure``), the file stem it is saved under (``name``), a caption, and the table
    of the numbers it shows (``data``, written as ``<name>.csv``; ``None`` when the numbers are an
    analysis table already written)."""

    name: str
    caption: str
    figure: Figure
    data: pd.DataFrame | None = None


def _try(
    out: list, problems: list, name: str, caption: str, draw: Callable[[], Figure], data: pd.DataFrame | None = None
) -> None:
    """Draw one figure; a figure the data cannot support (ValueError) is reported, not fatal."""
    try:
        out.append(ReportFigure(name, caption, draw(), data))
    except ValueError as e:
        problems.append(f"{name}: not drawn ({e})")


def static_cross_validation(a, pts: pd.DataFrame):
    """Leave-one-mixture-out :func:`jaxlaws.cross_validate` of the static law per (group, seed), batched over
    the fits that share the most common number of mixtures: ``(cv, x, y, names, labels, n_left_out)``, or
    ``None`` when fewer than 3 mixtures per fit (nothing to hold out)."""
    from jaxlaws.fitting.cv import cross_validate

    pcols = [c for c in pts.columns if c.startswith("p_")]
    probs = [(g, s, d) for (g, s), d in pts.groupby(["group", "seed"], sort=False)]
    sizes = [len(d) for _, _, d in probs]
    n = max(set(sizes), key=lambda v: (sizes.count(v), v))  # a tie: the fits with more mixtures
    if n < 3:
        return None
    keep = [(g, s, d) for g, s, d in probs if len(d) == n]
    own_only = a.static.law.x_dim == 1
    x = np.stack([d[["own_p"]].to_numpy(np.float64) if own_only else d[pcols].to_numpy(np.float64) for _, _, d in keep])
    y = np.stack([d["observed"].to_numpy(np.float64) for _, _, d in keep])
    cv = cross_validate(a.static.law, x, y, folds="loo", key=0)
    return cv, x, y, [g for g, _, _ in keep], [f"{g} s{s}" for g, s, _ in keep], len(probs) - len(keep)


def section_figures(sec: Section, label: str | None, split: str = "val") -> tuple[list[ReportFigure], list[str]]:
    """The figures of one section and the reasons any could not be drawn."""
    a, sw = sec.analysis, sec.sweep
    out: list[ReportFigure] = []
    problems: list[str] = []
    if a.static is not None:
        pts = plot.static_points(a.static, sw, split=split)
        _try(
            out,
            problems,
            "static_law",
            "Static law per group: loss against the group's own proportion, one colour per seed, with the fitted law.",
            lambda: plot.static_law(a.static, sw, split=split, label=label, points=pts),
            pts,
        )
        _try(
            out,
            problems,
            "static_linearised",
            "The static law made linear (log of the loss above its floor); "
            "a straight line means the exponential form holds.",
            lambda: plot.static_linearised(a.static, sw, split=split, label=label, points=pts),
        )
        _try(
            out,
            problems,
            "static_predicted_vs_observed",
            "Static law: observed against predicted loss (in-sample fits of all trained mixtures).",
            lambda: plot.predicted_vs_observed(
                pts, title=f"Static law {a.static.law.name}: predicted vs observed", label=label
            ),
        )
        cv = static_cross_validation(a, pts)
        if cv is not None:
            cvr, x, y, names, labels, left_out = cv
            _try(
                out,
                problems,
                "static_cross_validation",
                "Static law, held-out error: each mixture predicted "
                "by the law fitted without it (leave one mixture out, jaxlaws.cross_validate, the engine's "
                "default fit of the same law per group and seed); filled: the refit on all mixtures."
                + (f" Left out: {left_out} fit(s) with another number of mixtures." if left_out else ""),
                lambda: plot.cross_validation(
                    cvr,
                    x,
                    y,
                    names=names,
                    problem_labels=labels,
                    title=f"Static law {a.static.law.name}: leave-one-mixture-out cross-validation",
                    label=label,
                ),
                plot.cv_points(cvr, x, y, names=names, problem_labels=labels),
            )
        boot = getattr(a, "bootstrap", None)  # analyse(..., bootstrap=N): percentile intervals per seed
        if boot is not None and getattr(boot, "results", None):
            _try(
                out,
                problems,
                "static_bootstrap",
                f"Static law: bootstrap percentile intervals of each fit's "
                f"parameters ({boot.n} paired resamples of the runs per seed; the optimum's intervals are in "
                "the static_optimum_ci table).",
                lambda: plot.bootstrap_intervals(
                    {f"seed {s}": r for s, r in sorted(boot.results.items())}, names=list(boot.groups), label=label
                ),
                plot.bootstrap_points(
                    {f"seed {s}": r for s, r in sorted(boot.results.items())}, names=list(boot.groups)
                ),
            )
        if a.optimum is not None and not a.optimum.empty:
            _try(
                out,
                problems,
                "optimum",
                "The mixture the fitted static laws predict to minimise the total "
                "loss, per seed and on average, with the trained mixtures.",
                lambda: plot.optimum(a.static, a.optimum, sw, split=split, label=label),
            )
        infl = getattr(a, "influence", None)  # analyse(..., influence=True)
        if infl is not None and not infl.empty:
            _try(
                out,
                problems,
                "influence",
                "Influence of each static run on the predicted optimum: left, how far "
                "the optimum moves per unit change of the run's measured losses (norm of d p*/d L, by implicit "
                "differentiation through the refit); right, how far it moves when the run is left out, exactly "
                "(refit) against the first-order estimate -d p*/d w. Every derivative is in static_influence.csv.",
                lambda: plot.influence(infl, sw.groups, label=label),
            )
    for form, fits in a.dynamic.items():
        pts = plot.dynamic_points(fits, sw, split=split)
        _try(
            out,
            problems,
            f"dynamic_{form}",
            f"Dynamic law ({form}) per parent run: the children's target "
            "against their own proportion, with the fitted law.",
            lambda fits=fits, pts=pts: plot.dynamic_law(fits, sw, split=split, label=label, points=pts),
            pts,
        )
        _try(
            out,
            problems,
            f"dynamic_{form}_predicted_vs_observed",
            f"Dynamic law ({form}): observed against predicted target over all parents.",
            lambda fits=fits, pts=pts, form=form: plot.predicted_vs_observed(
                pts,
                title=f"Dynamic law {fits.law.name}: predicted vs observed",
                quantity=plot.data.target_label(form),
                label=label,
            ),
        )
    traj = plot.method_trajectories(sw, split=split)
    if not traj.empty:
        _try(
            out,
            problems,
            "method_trajectories",
            "Each method's mixture over training (one line per run and "
            "seed); dotted: the break step where children were resumed.",
            lambda: plot.trajectories(traj, sw.groups, label=label),
            traj,
        )
    if a.methods:
        _try(
            out,
            problems,
            "method_matrices",
            "Each method's scaled matrix Ã = b·A^t against the true A* fitted "
            "on its children, and the normalised column sums that sim compares.",
            lambda: plot.matrices(a.methods, label=label),
        )
        _try(
            out,
            problems,
            "method_similarity",
            "sim(Ã, A*) per method: each seed, and the mean ± sd over the "
            "seeds without flagged fits; open markers: the method's own sign.",
            lambda: plot.similarity(a.methods, label=label),
        )
    return out, problems
