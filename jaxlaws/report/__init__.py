"""The analysis of sweeps as a report: one self-contained HTML page with the paper's figures, the data's
provenance, every fit's diagnostics and flags, plus the PNGs and CSVs (``jaxlaws report DIR --out OUT``).

Needs matplotlib (``pip install 'jaxlaws[plot]'``).
"""

from jaxlaws.report.build import fit_overview, write_report
from jaxlaws.report.sources import Section, collect, is_synthetic

__all__ = ["Section", "collect", "fit_overview", "is_synthetic", "write_report"]
