"""The analysis of sweeps as a report: one self-contained HTML page with the paper's figures, the data's
provenance, every fit's diagnostics and flags, plus the PNGs and CSVs (``jaxlaws report DIR --out OUT``).

Needs matplotlib (``pip install 'jaxlaws[plot]'``), imported only when a report is made: the names below
load on first use, so the ``jaxlaws`` command (which registers ``jaxlaws report``) stays free of it.
"""

from __future__ import annotations

from jaxlaws._lazy import lazy_exports

_LAZY = {
    "write_report": "build",
    "fit_overview": "build",
    "Section": "sources",
    "collect": "sources",
    "is_synthetic": "sources",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
