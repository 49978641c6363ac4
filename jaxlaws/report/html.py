"""The report page: one self-contained HTML file (inline CSS, figures as base64 PNG, no script, nothing
fetched). Every piece of text from data or callers goes through :func:`html.escape`."""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["esc", "fmt", "table", "flatten", "kv_table", "figure", "bullet_list", "page"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}
.badge{display:inline-block;background:#b3261e;color:#fff;border-radius:4px;padding:.1em .5em;font-size:.8em;
vertical-align:middle}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em;margin:1em 0}
.ok{color:#1b5e20}.bad{color:#b3261e}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td.t{text-align:left}tr.flagged td{background:#fdecea}
.scroll{overflow-x:auto;max-width:100%}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
code{background:#f3f3f3;padding:0 .2em}
nav ul{columns:2}
table.kv th{text-align:left;vertical-align:top}table.kv td{white-space:normal;overflow-wrap:anywhere;max-width:60em}
"""


def esc(v: Any) -> str:
    """``v`` as escaped text."""
    return html.escape(str(v), quote=True)


def fmt(v: Any) -> str:
    """A table cell: floats to 4 significant digits, NaN as an empty cell, the rest as text."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        f = float(v)
        if math.isnan(f):
            return ""
        return f"{f:.4g}"
    return str(v)


def table(df: pd.DataFrame, max_rows: int = 500) -> str:
    """An escaped HTML table of ``df`` (rows with non-empty ``flags`` highlighted); long tables are cut at
    ``max_rows`` with a note (the CSV holds them all)."""
    if df.empty:
        return "<p><em>(empty table)</em></p>"
    shown = df.iloc[:max_rows]
    flagged = (shown["flags"].astype(str) != "").to_numpy() if "flags" in shown else np.zeros(len(shown), bool)
    text_cols = {c for c in shown.columns if shown[c].dtype == object}
    head = "".join(f"<th>{esc(c)}</th>" for c in shown.columns)
    rows = []
    for bad, rec in zip(flagged, shown.itertuples(index=False)):
        cells = "".join(
            f"<td{' class=t' if c in text_cols else ''}>{esc(fmt(v))}</td>" for c, v in zip(shown.columns, rec)
        )
        rows.append(f"<tr{' class=flagged' if bad else ''}>{cells}</tr>")
    more = f"<p><em>first {max_rows} of {len(df)} rows; the CSV has all</em></p>" if len(df) > max_rows else ""
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}"


def flatten(items: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as dotted keys (``model.preset``), lists as comma-separated text."""
    out: dict[str, str] = {}
    for k, v in items.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ", ".join(str(x) for x in v)
        else:
            out[key] = str(v)
    return out


def kv_table(items: Mapping[str, Any], fold_over: int = 8) -> str:
    """A two-column table of keys and values (nested mappings flattened to dotted keys; long values wrap). A
    nested entry with more than ``fold_over`` values is folded into its own closed ``<details>`` below the
    table, so that a long provenance does not push the figures off the page."""
    if not items:
        return "<p><em>nothing recorded</em></p>"
    flat = flatten(items)
    by_head: dict[str, dict[str, str]] = {}
    for k, v in flat.items():
        by_head.setdefault(k.split(".", 1)[0], {})[k] = v
    rows, folded = [], []
    for head, entries in by_head.items():
        body = "".join(f"<tr><th>{esc(k)}</th><td class=t>{esc(v)}</td></tr>" for k, v in entries.items())
        if len(entries) > fold_over:
            folded.append(
                f"<details><summary>{esc(head)} ({len(entries)} entries)</summary>"
                f"<table class=kv>{body}</table></details>"
            )
        else:
            rows.append(body)
    return (f"<table class=kv>{''.join(rows)}</table>" if rows else "") + "".join(folded)


def figure(png: bytes, caption: str, alt: str, href: str) -> str:
    """A figure with its PNG inlined as base64 and a caption linking the PNG file next to the page."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">'
        f'<figcaption>{esc(caption)} <a href="{esc(href)}">PNG</a></figcaption></figure>'
    )


def bullet_list(items: Iterable[str], cls: str | None = None) -> str:
    items = list(items)
    if not items:
        return ""
    c = f" class={cls}" if cls else ""
    return f"<ul{c}>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def page(title: str, body: str, label: str | None) -> str:
    """The whole document."""
    badge = f" <span class=badge>{esc(label)}</span>" if label else ""
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(title + (f' [{label}]' if label else ''))}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}{badge}</h1>{body}</body></html>\n"
    )
