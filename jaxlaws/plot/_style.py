"""Figure scaffolding shared by the plots: pyplot-free figures, titles that say what the data are, colours.

Figures are built as :class:`matplotlib.figure.Figure` objects directly (no ``pyplot``): no global state, no
GUI backend, nothing left open; PNGs are rendered with Agg. A figure shows in a notebook like any other.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

# colour-blind-safe (Okabe-Ito) cycle for groups, tab10 beyond
_GROUP_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float = 4.0,
    height: float = 3.2,
    sharex: bool | str = False,
    sharey: bool | str = False,
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with an ``(nrows, ncols)`` array of axes (always 2-D)."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """Rows and columns for ``n`` panels, at most ``max_cols`` wide."""
    cols = max(1, min(n, max_cols))
    return -(-n // cols), cols


def hide_unused(axes: np.ndarray, n: int) -> None:
    """Switch off the panels after the first ``n``."""
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)


def title(fig: Figure, text: str, label: str | None) -> Figure:
    """Set the figure's title; ``label`` (e.g. ``"synthetic"``) is shown in brackets so it travels with
    every copy of the figure."""
    text = f"{text} [{label}]" if label else text
    width_chars = max(30, int(fig.get_figwidth() * 11))  # ~11 characters per inch at this font size
    fig.suptitle(textwrap.fill(text, width_chars), fontsize="medium")
    return fig


def group_colours(groups: Sequence[str]) -> dict[str, str]:
    """A stable colour per group name, in the sweep's group order."""
    return {g: _GROUP_COLOURS[i % len(_GROUP_COLOURS)] for i, g in enumerate(groups)}


def seed_colours(seeds: Sequence) -> dict:
    """A colour per seed from viridis (distinct, ordered)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    n = max(len(seeds), 1)
    return {s: cmap(0.85 * i / max(n - 1, 1)) for i, s in enumerate(seeds)}


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (Agg).

    Args:
      fig: the figure.
      dpi: its resolution.

    Returns:
      The PNG file's bytes.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def flag_note(flags: str) -> str:
    """Legend suffix for a flagged fit."""
    return f" (flagged: {flags})" if flags else ""
