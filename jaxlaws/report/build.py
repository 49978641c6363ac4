"""``write_report``: the analysis of one or more sweeps as a folder holding one self-contained HTML page, the
figures as PNG and every table as CSV, written atomically."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from jaxlaws.analysis.export import write_csv
from jaxlaws.plot import png_bytes
from jaxlaws.report import html as H
from jaxlaws.report.figures import ReportFigure, section_figures
from jaxlaws.report.sources import Section, Source, collect, is_synthetic
from jaxlaws.sweeps.io import atomic_write_bytes, make_temp_dir, replace_dir
from jaxlaws.sweeps.schema import Sweep

__all__ = ["PAGE", "MARKER", "fit_overview", "write_report"]

PAGE = "report.html"
MARKER = ".jaxlaws-report"


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.replace("/", "__")).strip("._") or "sweep"
    slug, k = base, 2
    while slug in taken:
        slug, k = f"{base}_{k}", k + 1
    taken.add(slug)
    return slug


def _check_target(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier report (a user's files must not be swept away)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} exists, is not empty and is not a jaxlaws report; choose another --out")


def _data_summary(sw: Sweep) -> dict[str, Any]:
    runs = sw.runs()
    steps = sw.losses["step"]
    kinds = runs.groupby("kind").size()
    return {
        "groups": ", ".join(sw.groups),
        "runs (run, seed) by kind": ", ".join(f"{k}: {n}" for k, n in kinds.items()),
        "seeds": ", ".join(str(s) for s in sorted(runs["seed"].unique())),
        "steps": f"{int(steps.min())} to {int(steps.max())}",
        "splits": ", ".join(sorted(sw.losses["split"].unique())),
        "methods": ", ".join(sorted(set(runs["method"]) - {""})) or "none",
    }


def fit_overview(sec: Section) -> pd.DataFrame:
    """One row per fitted family: how many fits, how many flagged, mean R^2 and MSE of the unflagged ones
    (or all, with ``include_flagged``), and for methods the mean ``sim``.

    Args:
      sec: a report :class:`~jaxlaws.report.Section`.

    Returns:
      A DataFrame, one row per fitted family.
    """
    a, rows = sec.analysis, []

    def add(what: str, law: str, summary: pd.DataFrame, **extra: Any) -> None:
        s = summary.iloc[0]
        rows.append(
            {
                "fit": what,
                "law": law,
                "fits used": int(s["n_fits"]),
                "flagged": int(s["n_flagged"]),
                "R² mean": s.get("r2_mean"),
                "R² sd": s.get("r2_std"),
                "MSE mean": s.get("mse_mean"),
                **extra,
            }
        )

    if a.static is not None:
        add("static", a.static.law.name, a.static.summary)
    for form, fits in a.dynamic.items():
        add(f"dynamic ({form})", fits.law.name, fits.summary)
    for name, ma in a.methods.items():
        st = ma.a_star_fits
        used = st if ma.include_flagged else st[st["flags"] == ""]
        rows.append(
            {
                "fit": f"method {name}: A* (B={ma.break_step})",
                "law": "",
                "fits used": len(used),
                "flagged": int((st["flags"] != "").sum()),
                "R² mean": used["r2"].mean(),
                "R² sd": used["r2"].std(ddof=0),
                "MSE mean": used["mse"].mean(),
                "sim mean": ma.averages.loc["mean", "sim"],
                "sim sd": ma.averages.loc["std", "sim"],
            }
        )
    return pd.DataFrame(rows)


def _section_html(
    sec: Section,
    slug: str,
    figs: list[ReportFigure],
    pngs: dict[str, bytes],
    problems: list[str],
    csvs: list[str],
    provenance: Mapping[str, Any],
    title: str,
    common: Mapping[str, str],
    more: str = "",
) -> str:
    """One section of the page; ``common`` is the (flattened) provenance every section shares, shown once at
    the top, so a section lists only its own."""
    a = sec.analysis
    parts = [
        f'<h2 id="{H.esc(slug)}">{H.esc(title)}</h2>',
        "<h3>Data</h3>",
        H.kv_table(_data_summary(sec.sweep) | ({"read from": str(sec.path)} if sec.path else {})),
        "<h3>Provenance</h3>",
    ]
    own = {k: v for k, v in H.flatten(provenance).items() if common.get(k) != v}
    if own:
        parts.append(
            H.kv_table(own)
            + (
                "<p><small>and the provenance under <em>About this report</em>, shared by every section</small></p>"
                if common
                else ""
            )
        )
    elif common:
        parts.append("<p>As under <em>About this report</em> (shared by every section).</p>")
    else:
        parts.append(
            '<p class="note">Provenance not recorded: this report cannot say where these data come from '
            "(model, corpora, steps). A <code>provenance.json</code> next to the sweep, or "
            "<code>write_report(..., provenance=...)</code>, records it.</p>"
        )
    if a is None:
        parts.append(f"<p class=bad><strong>Not analysed:</strong> {H.esc(sec.error)}</p>")
        return "\n".join(parts)
    parts += ["<h3>Fits at a glance</h3>", H.table(fit_overview(sec))]
    flagged = a.flagged()
    parts.append("<h3>Flagged fits</h3>")
    if flagged.empty:
        parts.append("<p class=ok>No fit is flagged.</p>")
    else:
        kept = "kept in" if a.include_flagged else "left out of"
        parts.append(
            f"<p class=bad>{len(flagged)} fit(s) carry diagnostic flags; they are {kept} means, "
            "method averages and the optimum.</p>" + H.table(flagged)
        )
    if sec.warnings:
        parts.append(
            "<details><summary>Warnings raised by the analysis "
            f"({len(sec.warnings)})</summary>{H.bullet_list(sec.warnings)}</details>"
        )
    parts.append("<h3>Figures</h3>")
    for f in figs:
        parts.append(H.figure(pngs[f.name], f.caption, f"{title}: {f.name}", f"{slug}/{f.name}.png"))
    if problems:
        parts.append('<div class="note"><strong>Figures not drawn</strong>' + H.bullet_list(problems) + "</div>")
    if a.optimum is not None:
        parts += ["<h3>Predicted optimal mixture</h3>", H.table(a.optimum)]
    if getattr(a, "influence", None) is not None and not a.influence.empty:
        cols = ["seed", "run", "influence"] + [c for c in a.influence.columns if c.startswith(("drop_dp_", "loo_dp_"))]
        cols += [c for c in ("loo_fit", "fit_result") if c in a.influence.columns]
        parts += [
            "<h3>Influence of each run on the predicted optimum</h3>",
            "<p>influence: the norm of d p*/d (the run's losses); drop_dp: the first-order shift of the optimum "
            "if the run is left out, loo_dp: the same by refitting without it (all derivatives in "
            "static_influence.csv).</p>",
            H.table(a.influence[cols]),
        ]
    for name, ma in a.methods.items():
        parts += [
            f"<h3>Method {H.esc(name)}: similarity per seed (break step {ma.break_step})</h3>",
            H.table(ma.similarity),
            H.table(ma.averages.reset_index(names="over seeds")),
        ]
    if more:  # the caller's further results, before the long diagnostics
        parts += ["<h3>More results</h3>", more]
    parts.append("<h3>Every fit's diagnostics</h3>")
    for name, df in a.tables().items():
        if name.endswith("_matrices"):
            continue
        n_bad = int((df["flags"].astype(str) != "").sum()) if "flags" in df else 0
        badge = f", {n_bad} flagged" if n_bad else ""
        parts.append(
            f"<details{' open' if n_bad else ''}><summary>{H.esc(name)} ({len(df)} rows{badge})</summary>"
            f"{H.table(df)}</details>"
        )
    parts.append(
        "<h3>Files</h3><p>" + " · ".join(f'<a href="{H.esc(c)}">{H.esc(Path(c).name)}</a>' for c in csvs) + "</p>"
    )
    return "\n".join(parts)


def write_report(
    source: Source,
    out_dir: str | Path,
    *,
    sweep: Sweep | None = None,
    title: str = "jaxlaws report",
    provenance: Mapping[str, Any] | None = None,
    label: str | None = None,
    split: str = "val",
    seed: int = 0,
    bootstrap: int = 0,
    influence: bool = False,
    tables: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
    dpi: int = 110,
) -> Path:
    """Analyse ``source`` and write the report folder ``out_dir``.

    Args:
      source: a sweep directory (or a folder of them), a :class:`~jaxlaws.sweeps.Sweep`, an
        :class:`~jaxlaws.analysis.Analysis` (with ``sweep=``), or a mapping ``{section name: any of those or
        (analysis, sweep)}``; see :mod:`jaxlaws.report.sources`.
      out_dir: the folder to write: ``report.html`` (self-contained: figures inlined as base64 PNG), and per
        section the figures (``*.png``), every analysis table and each figure's numbers (``*.csv``). It is
        built in a temporary folder beside it and moved into place at the end, so a reader sees the old or
        the new report; an existing folder is replaced only if it is an earlier report (or empty).
      title: the page's title.
      provenance: what the data are (model, corpora, steps, command, ...), shown at the top and in each
        section (a section's own recorded provenance overrides it key by key).
      label: a word every figure title and the page carry, e.g. ``"synthetic"``; by default ``"synthetic"``
        when the provenance says so, else none.
      split, seed, bootstrap: passed to :func:`jaxlaws.analysis.analyse` for sources not yet analysed
        (``bootstrap=N``: N resamples of the static fits, drawn as intervals; an analysis passed in is drawn
        with its own ``bootstrap``, if any).
      influence: for sources not yet analysed, also each static run's influence on the predicted optimum
        (``analyse(..., influence=True)``), drawn as a figure; an analysis passed in is drawn with its own.
      tables: further results to show per section, ``{section name: {title: DataFrame}}`` (e.g. the demo's
        predicted vs realised best mixture); each is shown under "More results" and written as CSV.
      dpi: resolution of the PNGs.

    Returns:
      The path of the report's HTML page, ``out_dir / "report.html"``.

    Raises:
      FileExistsError if ``out_dir`` is a non-empty folder that is not a report; FileNotFoundError / ValueError
      for a source that holds no sweep.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    _check_target(out)
    sections = collect(source, sweep=sweep, split=split, seed=seed, bootstrap=bootstrap, influence=influence)
    tables = dict(tables or {})
    unknown = set(tables) - {sec.name for sec in sections}
    if unknown:
        raise ValueError(
            f"tables= names no section: {sorted(unknown)}; the sections are {[sec.name for sec in sections]}"
        )
    for sec in sections:
        if sec.analysis is None:
            warnings.warn(f"{sec.name}: not analysed ({sec.error}); the report lists it", stacklevel=2)
    provenance = dict(provenance or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out.parent, f".{out.name}.tmp-")
    try:
        taken: set[str] = set()
        flat = [H.flatten({**provenance, **sec.provenance}) for sec in sections]
        common = {k: v for k, v in flat[0].items() if all(f.get(k) == v for f in flat[1:])}
        bodies, toc, labels = [], [], set()
        for sec in sections:
            prov = {**provenance, **sec.provenance}
            sec_label = label if label is not None else ("synthetic" if is_synthetic(prov) else None)
            labels.add(sec_label)
            slug = _slug(sec.name, taken)
            heading = (sec.name or "Sweep") + (f" [{sec_label}]" if sec_label else "")
            toc.append(
                f'<li><a href="#{H.esc(slug)}">{H.esc(heading)}</a>'
                + (" (not analysed)" if sec.analysis is None else "")
                + "</li>"
            )
            if sec.analysis is None:
                bodies.append(_section_html(sec, slug, [], {}, [], [], prov, heading, common))
                continue
            folder = tmp / slug
            folder.mkdir()
            # what the CSVs and PNGs of this folder are, for a copy read without the page
            atomic_write_bytes(
                folder / "provenance.json",
                json.dumps(
                    {"section": sec.name, "label": sec_label, "provenance": prov}, indent=1, default=str
                ).encode(),
            )
            figs, problems = section_figures(sec, sec_label, split)
            pngs = {}
            csvs = [f"{slug}/provenance.json"]
            for f in figs:
                pngs[f.name] = png_bytes(f.figure, dpi=dpi)
                atomic_write_bytes(folder / f"{f.name}.png", pngs[f.name])
                if f.data is not None:
                    write_csv(f.data, folder / f"{f.name}_points.csv")
                    csvs.append(f"{slug}/{f.name}_points.csv")
            for name, df in {**sec.analysis.tables(), "flagged": sec.analysis.flagged()}.items():
                write_csv(df, folder / f"{name}.csv")
                csvs.append(f"{slug}/{name}.csv")
            more = []
            for t, df in tables.get(sec.name, {}).items():
                stem = _slug("more_" + t, set())[:80]
                write_csv(df, folder / f"{stem}.csv")
                csvs.append(f"{slug}/{stem}.csv")
                more.append(f"<h4>{H.esc(t)}</h4>" + H.table(df))
            bodies.append(
                _section_html(sec, slug, figs, pngs, problems, sorted(csvs), prov, heading, common, "".join(more))
            )
        page_label = (
            "synthetic"
            if labels == {"synthetic"}
            else ("partly synthetic" if "synthetic" in labels else (label if label is not None else None))
        )
        head = []
        if "synthetic" in labels:
            head.append(
                '<p class="note"><strong>Synthetic data.</strong> Sections marked synthetic were drawn '
                "from known law parameters: their fits are parameter-recovery checks, not measurements "
                "of training runs.</p>"
            )
        head.append(
            "<h2>About this report</h2>"
            + H.kv_table(
                {
                    **common,
                    "generated (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    "by": _version(),
                    "sections": len(sections),
                }
            )
        )
        if len(sections) > 1:
            head.append("<nav><strong>Sections</strong><ul>" + "".join(toc) + "</ul></nav>")
        html_text = H.page(
            title,
            "\n".join(head + bodies) + f"<p><small>written in {time.perf_counter() - t0:.1f} s</small></p>",
            page_label,
        )
        (tmp / PAGE).write_text(html_text, encoding="utf-8")
        (tmp / MARKER).write_text(json.dumps({"jaxlaws_report": 1, "sections": sorted(taken)}) + "\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / PAGE


def _version() -> str:
    import jaxlaws

    return f"jaxlaws {jaxlaws.__version__}"
