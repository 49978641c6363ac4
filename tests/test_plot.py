"""jaxlaws.plot: the figures draw the analysis' numbers (checked against independent float64 numpy), say
what the data are, and label their axes; ``import jaxlaws`` stays free of matplotlib."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from _plot_cases import case, two_group_problems  # noqa: E402

import jaxlaws.plot as jp  # noqa: E402
from jaxlaws.plot.methods import _seeds_used  # noqa: E402


def _numpy_static(names, theta, p, i):
    """The static laws in plain numpy: [c, k, b] on the own proportion, or [l, b, t...] on the mixture."""
    if list(names) == ["c", "k", "b"]:
        c, k, b = theta
        return c + np.exp(k * p[:, i] + b)
    return np.exp(theta[0]) + np.exp(theta[1] + p[:, :-1] @ theta[2:])


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def _check_labels(fig, label="synthetic"):
    title = fig._suptitle.get_text()
    assert f"[{label}]" in title.replace("\n", " ")
    for ax in _visible_axes(fig):
        if ax.axison:
            assert ax.get_xlabel() and ax.get_ylabel(), (title, ax.get_title())


@pytest.mark.slow
def test_import_jaxlaws_and_cli_do_not_import_matplotlib():
    code = (
        "import sys, jaxlaws, jaxlaws.cli, jaxlaws.report; jaxlaws.cli.build_parser(); "
        "bad = [m for m in sys.modules if m.split('.')[0] == 'matplotlib']; assert not bad, bad[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("m", [2, 3])
def test_static_points_are_the_sweep_and_the_fitted_law(m):
    sw, res = case(m)
    pts = jp.static_points(res.static, sw)
    fits = res.static.params
    pcols = [f"p_{g}" for g in sw.groups]
    step = int(fits["step"].iloc[0])
    raw = sw.losses[(sw.losses["kind"] == "static") & (sw.losses["split"] == "val") & (sw.losses["step"] == step)]
    assert len(pts) == len(raw)  # every (group, seed, mixture) once
    for _, row in fits.iterrows():
        d = pts[(pts["group"] == row["group"]) & (pts["seed"] == row["seed"])]
        i = sw.groups.index(row["group"])
        theta = row[list(res.static.param_names)].to_numpy(float)
        np.testing.assert_allclose(
            d["predicted"], _numpy_static(res.static.param_names, theta, d[pcols].to_numpy(), i), rtol=1e-10
        )
        obs = raw[(raw["group"] == row["group"]) & (raw["seed"] == row["seed"])]
        merged = d.merge(obs, on=pcols, suffixes=("", "_raw"))
        assert len(merged) == len(d)
        np.testing.assert_array_equal(merged["observed"], merged["loss"])


@pytest.mark.slow
def test_dynamic_points_full_form_is_the_loss_change():
    sw, res = case(3)
    pts = jp.dynamic_points(res.dynamic["full"], sw)
    L = sw.losses[sw.losses["split"] == "val"]
    for (parent, seed, g), d in pts.groupby(["parent", "seed", "group"]):
        before = L[(L["run"] == parent) & (L["seed"] == seed) & (L["group"] == g)]["loss"].to_numpy()
        assert before.shape == (1,)
        kids = L[(L["parent"] == parent) & (L["seed"] == seed) & (L["group"] == g)]
        merged = d.merge(kids, on=[f"p_{h}" for h in sw.groups])
        np.testing.assert_allclose(merged["observed"], merged["loss"] - before[0], rtol=0, atol=1e-12)
        fit = res.dynamic["full"].params
        a = fit[(fit["parent"] == parent) & (fit["seed"] == seed) & (fit["group"] == g)][["a1", "a2", "a3"]]
        np.testing.assert_allclose(
            d["predicted"], d[[f"p_{h}" for h in sw.groups]].to_numpy() @ a.to_numpy()[0], rtol=1e-10
        )


@pytest.mark.slow
def test_static_law_draws_each_fitted_curve_and_is_labelled():
    sw, res = case(2)
    fig = jp.static_law(res.static, sw, label="synthetic")
    _check_labels(fig)
    names = list(res.static.param_names)
    for ax, g in zip(fig.axes, sw.groups):
        lines = ax.get_lines()
        fits = res.static.params[res.static.params["group"] == g]
        assert len(lines) == len(fits)
        i = sw.groups.index(g)
        for line, (_, row) in zip(lines, fits.iterrows()):
            x = np.asarray(line.get_xdata())
            p = np.stack([x, 1 - x], 1) if i == 0 else np.stack([1 - x, x], 1)
            np.testing.assert_allclose(
                line.get_ydata(), _numpy_static(names, row[names].to_numpy(float), p, i), rtol=1e-10
            )
    assert "[" not in jp.static_law(res.static, sw)._suptitle.get_text()  # no label: nothing claimed


@pytest.mark.slow
def test_optimum_ternary_and_line_put_the_stars_at_the_analysis_optimum():
    np.testing.assert_allclose(np.stack(jp.ternary_xy(np.eye(3)), 1), [[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]])
    grid = jp.simplex_grid(3, 10)
    assert len(grid) == 66 and np.allclose(grid.sum(1), 1) and grid.min() >= 0
    sw, res = case(3)
    fig = jp.optimum(res.static, res.optimum, sw, label="synthetic")
    _check_labels(fig)
    pcols = [f"p_{g}" for g in sw.groups]
    mean = res.optimum.loc[res.optimum["seed"] == "mean", pcols].to_numpy(float)
    stars = [c for c in fig.axes[0].collections if str(c.get_label()).startswith("mean optimum")]
    assert len(stars) == 1
    np.testing.assert_allclose(stars[0].get_offsets(), np.stack(jp.ternary_xy(mean), 1))
    # m=2: each seed's star sits on its own drawn curve, at that curve's minimum (to the grid's spacing)
    sw2, res2 = case(2)
    ax = jp.optimum(res2.static, res2.optimum, sw2, label="synthetic").axes[0]
    curves = [line for line in ax.get_lines() if str(line.get_label()).startswith("seed")]
    per_seed = res2.optimum[res2.optimum["seed"] != "mean"]
    star_sets = [c for c in ax.collections if c.get_offsets().shape[0] == 1]
    assert len(curves) == len(per_seed) == len(star_sets)
    for line, star, (_, row) in zip(curves, star_sets, per_seed.iterrows()):
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        ((sx, sy),) = star.get_offsets()
        assert sx == pytest.approx(row[pcols_2 := f"p_{sw2.groups[0]}"], abs=1e-12)
        assert abs(x[np.argmin(y)] - sx) <= 1 / 200 + 1e-9, pcols_2
        assert sy == pytest.approx(np.interp(sx, x, y), abs=1e-4)


@pytest.mark.slow
def test_method_matrices_show_the_mean_matrices_and_column_directions():
    sw, res = case(3)
    fig = jp.matrices(res.methods, label="synthetic")
    _check_labels(fig)
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    for r, (_name, ma) in enumerate(res.methods.items()):
        seeds = _seeds_used(ma)
        star = np.mean([ma.matrix("A_star", s) for s in seeds], 0)
        tilde = np.mean([ma.matrix("A_tilde", s) for s in seeds], 0)
        np.testing.assert_allclose(axes[3 * r].images[0].get_array(), star)
        np.testing.assert_allclose(axes[3 * r + 1].images[0].get_array(), tilde)
        # bars: mean over seeds of s(A)/||s(A)||, here from the long matrices table
        mats = ma.matrices[ma.matrices["seed"].isin(seeds)]

        def direction(which):
            s = mats[mats["matrix"] == which].groupby(["seed", "col"])["value"].sum().unstack()
            return (s.to_numpy() / np.linalg.norm(s.to_numpy(), axis=1, keepdims=True)).mean(0)

        heights = [b.get_height() for b in axes[3 * r + 2].patches]
        np.testing.assert_allclose(heights, np.concatenate([direction("A_star"), direction("A_tilde")]), rtol=1e-12)


@pytest.mark.slow
def test_similarity_plots_every_seed_and_the_mean():
    sw, res = case(3)
    fig = jp.similarity(res.methods, label="synthetic")
    _check_labels(fig)
    ax = fig.axes[0]
    filled = [c for c in ax.collections if c.get_offsets().shape[0] > 1 or len(res.methods) == 1]
    ys = np.concatenate([c.get_offsets()[:, 1] for c in filled])
    want = np.concatenate(
        [np.concatenate([ma.similarity["sim"], ma.similarity["sim_method_sign"]]) for ma in res.methods.values()]
    )
    np.testing.assert_allclose(np.sort(ys), np.sort(want))


@pytest.mark.slow
def test_trajectories_follow_the_method_runs_mixtures():
    sw, res = case(3)
    traj = jp.method_trajectories(sw)
    assert set(traj["method"]) == {"aioli", "doremi"}
    fig = jp.trajectories(traj, sw.groups, label="synthetic")
    _check_labels(fig)
    ax = fig.axes[0]
    d = traj[traj["method"] == "aioli"]
    first = d.groupby(["run", "seed"], sort=True).get_group(next(iter(d.groupby(["run", "seed"], sort=True).groups)))
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), first["step"])
    np.testing.assert_allclose(line.get_ydata(), first[f"p_{sw.groups[0]}"])
    assert np.ptp(first[f"p_{sw.groups[0]}"]) > 0.01  # the mixture moves, and is drawn moving
    with pytest.raises(ValueError, match="no method runs"):
        jp.trajectories(traj.iloc[:0], sw.groups)


def test_predicted_vs_observed_marks_held_out_points_with_their_own_error():
    pts = pd.DataFrame({"group": ["a"] * 4, "observed": [1.0, 2.0, 3.0, 4.0], "predicted": [1.1, 2.0, 2.9, 4.0]})
    held = pd.DataFrame({"group": ["a"] * 2, "observed": [1.0, 3.0], "predicted": [1.3, 2.5]})
    fig = jp.predicted_vs_observed(pts, held_out=held, label="synthetic")
    _check_labels(fig)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"a (fit, RMSE {np.sqrt(0.02 / 4):.2g})" in labels
    assert f"a held out (RMSE {np.sqrt((0.09 + 0.25) / 2):.2g})" in labels


@pytest.mark.slow
def test_every_figure_of_both_cases_is_labelled_and_renders():
    for m in (2, 3):
        sw, res = case(m)
        figs = [jp.static_linearised(res.static, sw, label="synthetic")]
        figs += [jp.dynamic_law(f, sw, label="synthetic") for f in res.dynamic.values()]
        for fig in figs:
            _check_labels(fig)
            png = jp.png_bytes(fig, dpi=40)
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        jp.optimum(res.static, res.optimum.iloc[:0], sw)


@pytest.mark.slow
def test_cross_validation_figure_draws_the_out_of_fold_predictions_and_fold_errors():
    import jaxlaws as jl

    x, y = two_group_problems()
    law = jl.laws.static_two_group()
    cv = jl.cross_validate(law, x, y, folds=3, key=0)
    fig = jp.cross_validation(cv, x, y, names=["code", "prose"], label="synthetic")
    _check_labels(fig)
    pts = jp.cv_points(cv, x, y, names=["code", "prose"])
    # in-sample: the refit's law in numpy; held out: each point predicted by the fit of the other folds
    for b, g in enumerate(["code", "prose"]):
        d = pts[pts["group"] == g]
        c, k, bb = np.asarray(cv.refit.params)[b]
        np.testing.assert_allclose(d["predicted"], c + np.exp(k * x[b, :, 0] + bb), rtol=1e-10)
        fold_params = np.asarray(cv.fits.params).reshape(2, 3, 3)[b]
        own = fold_params[np.asarray(cv.folds)[b]]
        np.testing.assert_allclose(d["held_out"], own[:, 0] + np.exp(own[:, 1] * x[b, :, 0] + own[:, 2]), rtol=1e-10)
    left, right = fig.axes[:2]
    diamonds = [c for c in left.collections if "held out" in str(c.get_label())]
    assert len(diamonds) == 2
    np.testing.assert_allclose(
        np.concatenate([c.get_offsets() for c in diamonds]), pts[["held_out", "observed"]].to_numpy()
    )
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    d = pts[pts["group"] == "code"]
    assert f"code held out (RMSE {np.sqrt(np.mean((d['observed'] - d['held_out']) ** 2)):.2g})" in labels
    # right: bars = out-of-fold RMSE over all points, dots = each fold's RMSE on its own points (numpy)
    np.testing.assert_allclose(
        [bar.get_height() for bar in right.patches],
        [
            np.sqrt(np.mean((pts[pts["group"] == g]["observed"] - pts[pts["group"] == g]["held_out"]) ** 2))
            for g in ("code", "prose")
        ],
        rtol=1e-10,
    )
    dots = np.concatenate([c.get_offsets()[:, 1] for c in right.collections])
    want = [np.sqrt(np.mean((f["observed"] - f["held_out"]) ** 2)) for _, f in pts.groupby(["group", "fold"])]
    np.testing.assert_allclose(np.sort(dots), np.sort(want), rtol=1e-8)
    with pytest.raises(ValueError, match="names"):
        jp.cross_validation(cv, x, y, names=["only one"])
    with pytest.raises(ValueError, match="computed from"):
        jp.cv_points(cv, x, y[:, :5])


@pytest.mark.slow
def test_bootstrap_figure_shows_the_percentile_intervals():
    import jaxlaws as jl

    x, y = two_group_problems()
    boot = jl.bootstrap(jl.laws.static_two_group(), x, y, n=40, key=1, level=0.8)
    fig = jp.bootstrap_intervals(boot, names=["code", "prose"], label="synthetic")
    _check_labels(fig)
    assert "80% intervals" in fig._suptitle.get_text() and "40 resamples" in fig._suptitle.get_text()
    params = np.asarray(boot.params)  # (2, 40, 3)
    lo, hi = np.nanpercentile(params, [10, 90], axis=1)  # numpy, not the result's own method
    est = np.asarray(boot.estimate.params)
    for j, ax in enumerate(fig.axes[:3]):
        line = ax.get_lines()[0]
        np.testing.assert_allclose(line.get_xdata(), est[:, j], rtol=1e-12)
        segs = ax.collections[0].get_segments()  # the error bars, one per problem
        np.testing.assert_allclose(
            [[s[0, 0], s[1, 0]] for s in segs], np.stack([lo[:, j], hi[:, j]], 1), rtol=1e-9, atol=1e-12
        )
    single = jl.bootstrap(jl.laws.static_two_group(), x[0], y[0], n=10, key=2)
    fig = jp.bootstrap_intervals(single)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["fit"]
    assert jp.png_bytes(fig, dpi=40)[:4] == b"\x89PNG"
    # several results (e.g. one per training seed): every problem of each, labelled "name (key)"
    fig = jp.bootstrap_intervals({"seed 0": boot, "seed 1": single}, names=None, label="synthetic")
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["problem 0 (seed 0)", "problem 1 (seed 0)", "fit (seed 1)"]
    np.testing.assert_allclose(
        fig.axes[0].get_lines()[0].get_xdata(), [est[0, 0], est[1, 0], float(np.asarray(single.estimate.params)[0])]
    )
    with pytest.raises(ValueError, match="no bootstrap"):
        jp.bootstrap_intervals({})


def test_influence_figure_draws_the_table():
    rng = np.random.default_rng(0)
    rows = []
    for seed in (0, 1):
        for k, p in enumerate((0.1, 0.5, 0.9)):
            d1, d2 = rng.normal(size=2) * 0.01
            rows.append(
                {
                    "seed": seed,
                    "run": f"r{k}",
                    "p_a": p,
                    "p_b": 1 - p,
                    "influence": rng.uniform(0.1, 2),
                    "drop_dp_a": d1,
                    "drop_dp_b": -d1,
                    "loo_dp_a": d2,
                    "loo_dp_b": -d2,
                }
            )
    table = pd.DataFrame(rows)
    fig = jp.influence(table, ("a", "b"), label="synthetic")
    assert "synthetic" in fig._suptitle.get_text()
    left, right = fig.axes[:2]
    heights = sorted(round(p.get_height(), 12) for p in left.patches)
    assert heights == sorted(round(v, 12) for v in table["influence"])
    assert left.get_ylabel() and left.get_xlabel() and right.get_xlabel() and right.get_ylabel()
    pts = np.concatenate([c.get_offsets() for c in right.collections])
    want = np.concatenate([table[["drop_dp_a", "loo_dp_a"]].to_numpy(), table[["drop_dp_b", "loo_dp_b"]].to_numpy()])
    np.testing.assert_allclose(pts, want)
    with pytest.raises(ValueError, match="lacks columns"):
        jp.influence(table.drop(columns=["influence"]), ("a", "b"))
    with pytest.raises(ValueError, match="no seed with a regular refit"):
        jp.influence(table.assign(influence=np.nan), ("a", "b"))
