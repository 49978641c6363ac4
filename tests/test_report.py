"""jaxlaws.report: the page is self-contained (figures inlined, nothing fetched), says what its data are (real
bundle provenance; synthetic sweeps labelled synthetic everywhere), shows every fit's flags, writes its files
atomically, and renders in a real headless browser (Debian's chromium) with every figure drawn and no console
error. JAXLAWS_REQUIRE_CHROMIUM=1 (set by .ci/run) turns a missing browser into a failure."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from _plot_cases import case, synthetic_sweep, two_group_problems  # noqa: E402

from jaxlaws.analysis import analyse  # noqa: E402
from jaxlaws.cli import main  # noqa: E402
from jaxlaws.report import write_report  # noqa: E402
from jaxlaws.sweeps.bundle import bundle_provenance  # noqa: E402
from jaxlaws.sweeps.schema import Sweep  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[1] / "jaxlaws" / "data" / "bundle"
PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Every tag with its attributes, the flagged table rows' text, and the h2/h3 headings."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.flagged_rows: list[list[str]] = []
        self.headings: list[str] = []
        self._row, self._cell, self._heading = None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and a.get("class") == "flagged":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag in ("h2", "h3"):
            self._heading = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.flagged_rows.append(self._row)
            self._row = None
        elif tag in ("h2", "h3") and self._heading is not None:
            self.headings.append(self._heading)
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._heading is not None:
            self._heading += data


def _parse(page: Path) -> _Page:
    p = _Page()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def _check_self_contained(page: Path) -> list[dict]:
    """Every image inlined (a PNG equal to the file beside the page), no script/stylesheet/frame, no link
    that leaves the folder; returns the <img> attributes."""
    parsed = _parse(page)
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.sub(r"data:[^\"]*", "", text)), "external URL"
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert imgs
    for t, a in parsed.tags:
        assert t not in ("script", "link", "iframe", "object", "embed"), t
        if t == "a":
            href = a["href"]
            assert href.startswith("#") or (page.parent / href).is_file(), href
            if not href.startswith("#"):
                assert ".." not in Path(href).parts
    for a in imgs:
        src = a["src"]
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == PNG
    # each inlined figure is the PNG the caption links
    links = [a["href"] for t, a in parsed.tags if t == "a" and a["href"].endswith(".png")]
    assert len(links) == len(imgs)
    for a, href in zip(imgs, links):
        assert base64.b64decode(a["src"].split(",", 1)[1]) == (page.parent / href).read_bytes()
    return imgs


def _no_temp_files(out: Path) -> None:
    left = [p for p in out.parent.rglob("*") if ".tmp" in p.name]
    assert not left, left


def _flagged_sweep() -> Sweep:
    """The static runs of the m=2 synthetic sweep with seed 1's grid cut to 3 mixtures: its static fits (3
    parameters, 3 points) are saturated, so the analysis flags them."""
    sw = synthetic_sweep(2)  # the sweep only: write_report analyses it
    L = sw.losses[sw.losses["kind"] == "static"]  # the dynamic runs would only add fits and figures
    cut = L["seed"] == 1
    keep = sorted(L.loc[cut, "run"].unique())[:3]
    return Sweep(L[~cut | L["run"].isin(keep)].reset_index(drop=True), sw.groups, sw.matrices)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A report of two synthetic sections: m=3 from its analysis, and the flagged m=2 sweep analysed by
    write_report itself."""
    out = tmp_path_factory.mktemp("synthetic") / "report"
    sw3, res3 = case(3)
    flagged = _flagged_sweep()
    extra = pd.DataFrame({"mixture": ["best grid point", "predicted optimum"], "val_loss": [2.5, 2.25]})
    page = write_report(
        {"m3": (res3, sw3), "m2 flagged": flagged},
        out,
        title="test report",
        dpi=50,
        provenance={"data": "synthetic sweeps drawn from known law parameters"},
        tables={"m3": {"best mixture check": extra}},
    )
    return page, res3, flagged


@pytest.mark.slow
def test_every_figure_of_a_synthetic_section_says_synthetic_in_its_title():
    # (so does every copy of its PNG); it runs before the report fixture, whose m=3 analysis it shares
    from jaxlaws.report.figures import section_figures
    from jaxlaws.report.sources import Section

    sw3, res3 = case(3)
    figs, problems = section_figures(Section("m3", sw3, res3, {}, []), "synthetic")
    assert not problems
    assert {f.name for f in figs} >= {
        "static_law",
        "static_linearised",
        "static_predicted_vs_observed",
        "optimum",
        "method_trajectories",
        "method_matrices",
        "method_similarity",
    }
    for f in figs:
        assert "[synthetic]" in f.figure._suptitle.get_text().replace("\n", " "), f.name


@pytest.mark.slow
def test_synthetic_report_is_self_contained_and_labelled_synthetic_everywhere(synthetic):
    page = synthetic[0]
    imgs = _check_self_contained(page)
    text = page.read_text(encoding="utf-8")
    assert "<title>test report [synthetic]</title>" in text and "<strong>Synthetic data.</strong>" in text
    for a in imgs:  # alt text names the section, whose heading carries the label
        assert "[synthetic]" in a["alt"], a["alt"]
    sections = [h for h in _parse(page).headings if h.startswith(("m3", "m2 flagged"))]
    assert sections == ["m3 [synthetic]", "m2 flagged [synthetic]"]
    for folder in ("m3", "m2_flagged"):  # the CSV folders say what their tables are
        about = json.loads((page.parent / folder / "provenance.json").read_text())
        assert about["label"] == "synthetic" and "synthetic" in about["provenance"]["data"]
    _no_temp_files(page.parent)


@pytest.mark.slow
def test_report_shows_every_flagged_fit_and_the_tables_as_csv(synthetic):
    page, res3, flagged = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res2 = analyse(flagged, seed=0)  # what write_report computed, recomputed here
    want = res2.flagged()
    assert len(want) >= 2 and set(want["seed"]) == {1}
    assert all("saturated" in f for f in want["flags"])
    parsed = _parse(page)
    rows = parsed.flagged_rows
    # each flagged fit is a highlighted row of the "Flagged fits" table (table, group, seed, flags first)
    shown = {tuple(r[:4]) for r in rows}
    for r in want.itertuples(index=False):
        assert (r.table, str(r.group), str(r.seed), r.flags) in shown, r
    text = page.read_text(encoding="utf-8")
    assert f"{len(want)} fit(s) carry diagnostic flags" in text
    # CSVs: the analysis' tables, complete, at full precision
    folder = page.parent / "m2_flagged"
    pd.testing.assert_frame_equal(
        pd.read_csv(folder / "flagged.csv", keep_default_na=False),
        want.reset_index(drop=True).astype({"seed": "int64"}),
        check_dtype=False,
    )
    got = pd.read_csv(page.parent / "m3" / "static_params.csv", keep_default_na=False)
    names = list(res3.static.param_names)
    np.testing.assert_array_equal(got[names].to_numpy(), res3.static.params[names].to_numpy(np.float64))
    pts = pd.read_csv(page.parent / "m3" / "static_law_points.csv")
    assert len(pts) == len(res3.static.params) * 9  # one row per (group, seed, mixture)
    # a caller's further table: shown and written
    more = pd.read_csv(page.parent / "m3" / "more_best_mixture_check.csv")
    assert list(more["val_loss"]) == [2.5, 2.25] and "<h4>best mixture check</h4>" in text
    with pytest.raises(ValueError, match="names no section"):
        write_report((res3, case(3)[0]), page.parent.parent / "x", tables={"m9": {"t": more}})


@pytest.mark.slow
def test_report_folder_is_replaced_atomically(synthetic, tmp_path, monkeypatch):
    sw3, res3 = case(3)  # computed for the fixture already, as is the law's cross-validation program
    out = tmp_path / "rep"
    shutil.copytree(synthetic[0].parent, out)  # an earlier report
    page = out / "report.html"
    before = page.read_bytes()
    import jaxlaws.report.build as build

    calls = {"n": 0}
    real = build.png_bytes

    def failing(fig, dpi=110):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full (simulated)")
        return real(fig, dpi=dpi)

    monkeypatch.setattr(build, "png_bytes", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        write_report((res3, sw3), out, dpi=30, label="synthetic", title="second")
    assert page.read_bytes() == before  # the old report, whole
    _no_temp_files(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    # a folder that is not a report is never replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    monkeypatch.setattr(build, "png_bytes", real)
    with pytest.raises(FileExistsError, match="not a jaxlaws report"):
        write_report((res3, sw3), mine)
    assert (mine / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_report_draws_a_static_bootstrap_when_the_analysis_has_one(synthetic, tmp_path):
    """An analysis carrying bootstrap results (``analyse(..., bootstrap=N)``: ``.bootstrap.results`` per seed,
    each a jl.bootstrap over the groups) gets the interval figure and its numbers as CSV."""
    import copy
    import types

    import jaxlaws as jl
    import jaxlaws.plot as jp

    sw2, res2 = case(2)
    x, y = two_group_problems()
    results = {s: jl.bootstrap(jl.laws.static_two_group(), x, y + 0.01 * s, n=20, key=s) for s in (0, 1)}
    res = copy.copy(res2)
    tables = {
        k: pd.DataFrame({"seed": [0], "estimate": [0.0], "lo": [0.0], "hi": [0.0]}) for k in ("params", "optimum")
    }
    res.bootstrap = types.SimpleNamespace(results=results, groups=sw2.groups, n=20, level=0.9, **tables)
    page = write_report((res, sw2), tmp_path / "rep", dpi=30, label="synthetic")
    folder = page.parent / "sweep"  # a single unnamed section
    assert (folder / "static_bootstrap.png").read_bytes()[:8] == PNG
    got = pd.read_csv(folder / "static_bootstrap_points.csv")
    want = jp.bootstrap_points({f"seed {s}": r for s, r in results.items()}, names=list(sw2.groups))
    assert list(got["row"]) == list(want["row"]) and "arxiv (seed 1)" in set(got["row"])
    np.testing.assert_allclose(
        got[["estimate", "lo", "hi"]].to_numpy(), want[["estimate", "lo", "hi"]].to_numpy(), rtol=1e-12
    )
    assert "bootstrap percentile intervals" in page.read_text(encoding="utf-8")
    # without one, no such figure (the synthetic report's analyses have none)
    for plain in ("m3", "m2_flagged"):
        folder = synthetic[0].parent / plain
        assert (folder / "static_law.png").is_file() and not (folder / "static_bootstrap.png").exists()


def _bundle_report(out: Path, *flags: str) -> Path:
    """``jaxlaws report`` on the bundled real m=2 runs (the comparison sweep and the one-run check)."""
    assert main(["report", str(BUNDLE / "m2"), "--out", str(out), "--title", "bundle m2", *flags]) == 0
    return out / "report.html"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real bundle's report without the influence refits (their compile is most of the report's cost; one
    test below runs the default, with them)."""
    return _bundle_report(tmp_path_factory.mktemp("real") / "report", "--no-influence")


@pytest.mark.slow
def test_real_bundle_report_has_provenance_and_no_synthetic_label(real, capsys):
    imgs = _check_self_contained(real)
    text = real.read_text(encoding="utf-8")
    assert "synthetic" not in text.lower()
    assert len(imgs) >= 7  # static law, linearised, predicted vs observed, held-out, optimum, methods
    prov = bundle_provenance()
    part = prov["settings"]["m2"]["parts"]["compare"]
    for value in (part["command"], part["config_hash"], str(part["commit"]), prov["model"]["preset"]):
        assert value in text, value
    assert "settings.m2.parts.compare.config_hash" in text  # nested provenance as dotted keys
    # the one-run check sweep cannot be fitted: listed as not analysed, the rest of the report stands
    assert re.search(r">check</a> \(not analysed\)", text) and "Not analysed:" in text
    assert "compare" in [h for h in _parse(real).headings if h in ("check", "compare")]
    _no_temp_files(real.parent)


@pytest.mark.slow
def test_real_report_held_out_error_is_a_refit_without_the_point(real):
    """The static law's leave-one-mixture-out predictions in the report equal jaxlaws.fit on the other
    mixtures (an independent refit), and the in-sample column the fit on all of them."""
    import jaxlaws as jl

    pts = pd.read_csv(real.parent / "compare" / "static_cross_validation_points.csv")
    d = pts[pts["problem"] == "code s0"].sort_values("point")
    sec = pd.read_csv(real.parent / "compare" / "static_law_points.csv")
    ref = sec[(sec["group"] == "code") & (sec["seed"] == 0)]
    np.testing.assert_array_equal(d["observed"], ref["observed"])
    x, y = ref[["own_p"]].to_numpy(), ref["observed"].to_numpy()
    law = jl.laws.static_two_group()
    for k in (0, len(y) // 2, len(y) - 1):
        keep = np.arange(len(y)) != k
        fit = jl.fit(law, x[keep], y[keep], key=0)
        np.testing.assert_allclose(d["held_out"].iloc[k], fit.predict(x[k : k + 1])[0], rtol=1e-6)
    np.testing.assert_allclose(d["predicted"], jl.fit(law, x, y, key=0).predict(x), rtol=1e-6)


# ---------------------------------------------------------------------------------------------- browser

_PROBE = """<script>
window.__jl_errors = [];
window.addEventListener("error", e => __jl_errors.push("error: " + (e.message || (e.target && e.target.src
  || "").slice(0, 80))), true);
for (const k of ["error", "warn"]) { const f = console[k]; console[k] = (...a) => { __jl_errors.push(k + ": "
  + a.join(" ")); f.apply(console, a); }; }
window.addEventListener("load", () => { const r = document.createElement("pre"); r.id = "jl-probe";
  r.textContent = JSON.stringify({images: [...document.images].map(i => [i.complete, i.naturalWidth,
  i.naturalHeight, i.alt]), errors: __jl_errors}); document.body.appendChild(r); });
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("JAXLAWS_REQUIRE_CHROMIUM") == "1":
        pytest.fail("JAXLAWS_REQUIRE_CHROMIUM=1 but no chromium on PATH (Debian: apt-get install chromium)")
    pytest.skip("no headless chromium (apt-get install chromium; JAXLAWS_REQUIRE_CHROMIUM=1 makes this fail)")


def _browse(page: Path, tmp: Path, shot: Path | None = None) -> tuple[dict, str]:
    """Load ``page`` (a copy with a probe script first in <head>) in headless chromium; return the probe's
    findings (each image's load state and size, errors and console errors/warnings) and chromium's log."""
    browser = _chromium()
    probed = page.parent / "_probe.html"  # beside the page: the same relative links
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    try:
        base = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--mute-audio",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ]
        run = subprocess.run(base + ["--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=180)
        found = re.search(r'<pre id="jl-probe">(.*?)</pre>', run.stdout, re.S)
        assert found, f"no probe output (rc {run.returncode}): {run.stderr[-2000:]}"
        import html as _html

        probe = json.loads(_html.unescape(found.group(1)))
        if shot is not None:
            subprocess.run(
                base + ["--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()],
                capture_output=True,
                timeout=180,
                check=True,
            )
        return probe, run.stderr
    finally:
        probed.unlink(missing_ok=True)


def _check_rendered(page: Path, tmp: Path, shot: Path) -> None:
    probe, log = _browse(page, tmp, shot)
    n_img = len(_check_self_contained(page))
    assert len(probe["images"]) == n_img
    for complete, w, h, alt in probe["images"]:
        assert complete and w > 0 and h > 0, alt
    assert probe["errors"] == []
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.read_bytes()[:8] == PNG and shot.stat().st_size > 20_000  # a page, not a blank


def test_real_report_renders_in_headless_chromium(real, tmp_path):
    _check_rendered(real, tmp_path, Path(os.environ.get("JAXLAWS_SHOTS", tmp_path)) / "report_real.png")


@pytest.mark.slow
def test_synthetic_report_renders_in_headless_chromium(synthetic, tmp_path):
    _check_rendered(synthetic[0], tmp_path, Path(os.environ.get("JAXLAWS_SHOTS", tmp_path)) / "report_synthetic.png")


def test_probe_catches_a_broken_figure(real, tmp_path):
    """The browser check can fail: a page whose image does not decode is caught."""
    page = tmp_path / "broken" / "report.html"
    page.parent.mkdir()
    text = real.read_text(encoding="utf-8")
    page.write_text(
        re.sub(r'src="data:image/png;base64,[^"]{40}', 'src="data:image/png;base64,AAAA', text, count=1),
        encoding="utf-8",
    )
    probe, _ = _browse(page, tmp_path)
    assert any(w == 0 for _, w, _, _ in probe["images"])
    assert any(e.startswith("error") for e in probe["errors"])


@pytest.mark.slow
def test_real_bundle_report_shows_each_runs_influence(real, tmp_path):
    assert "Influence of each run" not in real.read_text(encoding="utf-8")  # --no-influence leaves it out
    real = _bundle_report(tmp_path / "report")  # the CLI's default computes it
    text = real.read_text(encoding="utf-8")
    assert "Influence of each run on the predicted optimum" in text
    table = pd.read_csv(real.parent / "compare" / "static_influence.csv")
    assert (table["fit_result"] == "successful").all() and np.isfinite(table["influence"]).all()
    assert {"drop_dp_code", "loo_dp_code", "dp_code/dL_literature"} <= set(table.columns)
    assert (real.parent / "compare" / "influence.png").is_file()
