"""The bundled real example sweeps: runs trained by jaxlaws on the bundled text groups.

``jaxlaws/data/bundle/<setting>/<part>/`` are sweep directories (:func:`~jaxlaws.sweeps.read_sweep`) and
``provenance.json`` records, for every part, the generating command, the code commit, the configuration
hash, the wall time, the model, corpora, steps and seeds. Settings: ``m2`` (code, literature) and ``m3``
(code, docs, literature). Parts:

* ``compare``: the static grid sweep (kind ``static``) and every method's runs (kind ``method``) with the
  break-step children (kind ``child``) of Skill-It, DoReMi, DoGE and Aioli;
* ``dynamic``: parents (kind ``parent``) trained to the break step and their children (kind ``child``), every
  parent resumed as every child mixture;
* ``optimum``: the static law's predicted optimal mixture trained from scratch (kind ``static``: kept apart
  from the grid so it does not enter the fit);
* ``check``: one grid point retrained with later code (a provenance check).

Regenerate with ``python benchmarks/make_bundle.py``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

from jaxlaws.sweeps.io import concat_sweeps, read_sweep
from jaxlaws.sweeps.schema import Sweep

BUNDLE_SETTINGS = ("m2", "m3")
BUNDLE_PARTS = ("compare", "dynamic", "optimum", "check")
ANALYSIS_PARTS = ("compare", "dynamic")  # what the laws are fitted on


def bundle_dir() -> Path:
    """The directory of the bundled sweeps (package data)."""
    return Path(__file__).resolve().parent.parent / "data" / "bundle"


@functools.lru_cache(maxsize=1)
def _provenance_cached() -> str:
    f = bundle_dir() / "provenance.json"
    if not f.is_file():
        raise FileNotFoundError(
            f"the real example bundle is missing ({f}); regenerate it with `python benchmarks/make_bundle.py`"
        )
    return f.read_text()


def bundle_provenance() -> dict:
    """``provenance.json`` of the bundle (a fresh dict)."""
    return json.loads(_provenance_cached())


def _check_setting(setting: str) -> None:
    if setting not in BUNDLE_SETTINGS:
        raise ValueError(f"bundle setting must be one of {BUNDLE_SETTINGS}, got {setting!r}")


def bundle_parts(setting: str) -> tuple[str, ...]:
    """The parts the bundle holds for ``setting`` (in :data:`BUNDLE_PARTS` order)."""
    _check_setting(setting)
    have = bundle_provenance()["settings"].get(setting, {}).get("parts", {})
    return tuple(p for p in BUNDLE_PARTS if p in have)


def load_bundle(setting: str = "m2", parts: Sequence[str] | None = None) -> Sweep:
    """The bundled real sweep of ``setting`` (``"m2"`` or ``"m3"``): the named ``parts`` stacked into one
    :class:`~jaxlaws.sweeps.Sweep` (default: those of the comparison and the dynamic sweep the bundle has,
    what :func:`~jaxlaws.analysis.analyse` fits). Every table's size and SHA-256 are verified on reading."""
    _check_setting(setting)
    if parts is None:
        parts = [p for p in bundle_parts(setting) if p in ANALYSIS_PARTS]
    parts = tuple(parts)
    bad = [p for p in parts if p not in BUNDLE_PARTS]
    if bad or not parts:
        raise ValueError(f"bundle parts must be a non-empty subset of {BUNDLE_PARTS}, got {list(parts)}")
    have = bundle_parts(setting)
    missing = [p for p in parts if p not in have]
    if missing:
        raise ValueError(f"the bundle has no {missing} part for {setting} (it has {list(have)})")
    return concat_sweeps(read_sweep(bundle_dir() / setting / p) for p in parts)


def _short(commit) -> str:
    """``sha[+dirty]`` with the sha cut to 12 characters; ``"not recorded"`` for a missing commit."""
    if not commit:
        return "not recorded"
    sha, plus, rest = str(commit).partition("+")
    return sha[:12] + plus + rest


def describe_bundle(setting: str) -> str:
    """A few lines saying what the bundled data of ``setting`` are (model, corpora, steps, seeds, source)."""
    prov = bundle_provenance()
    s = prov["settings"][setting]
    mdl, tr = prov["model"], prov["training"]
    lines = [
        f"REAL runs trained by jaxlaws on the bundled text groups {s['groups']} (byte-level): model "
        f"preset '{mdl['preset']}' ({mdl['n_layers']} layers, width {mdl['d_model']}), batch "
        f"{tr['batch_size']} x {tr['seq_len']} tokens, {tr['steps']} steps, lr {tr['lr']}."
    ]
    for part, rec in s["parts"].items():
        extra = (
            f", break step {rec['break_step']}, children run {rec['remaining_steps']} steps"
            if "break_step" in rec
            else ""
        )
        when = f"commit {_short(rec.get('commit'))}"
        lines.append(f"  {part}: {rec['what']}; seeds {rec['seeds']}{extra}; {when}")
    return "\n".join(lines)


__all__ = [
    "BUNDLE_SETTINGS",
    "BUNDLE_PARTS",
    "bundle_dir",
    "bundle_provenance",
    "bundle_parts",
    "load_bundle",
    "describe_bundle",
]
