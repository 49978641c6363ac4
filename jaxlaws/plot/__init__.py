"""Figures of mixing-law analyses (the Aioli paper's): fitted static and dynamic laws, predicted against
observed losses, method trajectories and matrices, ``sim`` per method, the predicted optimum and each run's
influence on it, and the
cross-validated error and bootstrap intervals of a fit (from :func:`jaxlaws.cross_validate` and
:func:`jaxlaws.bootstrap` results).

Needs matplotlib (``pip install 'jaxlaws[plot]'``); ``import jaxlaws`` does not import it. Every function
returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global state; PNGs via Agg) and
takes ``label`` (e.g. ``"synthetic"``), written into the title so the figure says what its data are.

>>> import jaxlaws.plot as jp
>>> fig = jp.static_law(analysis.static, sweep, label="synthetic")    # doctest: +SKIP
>>> fig.savefig("static.png")                                          # doctest: +SKIP
"""

try:
    import matplotlib  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("jaxlaws.plot needs matplotlib: pip install 'jaxlaws[plot]'") from e

from jaxlaws.plot._style import png_bytes
from jaxlaws.plot.data import dynamic_points, method_trajectories, static_points
from jaxlaws.plot.fits import dynamic_law, predicted_vs_observed, static_law, static_linearised
from jaxlaws.plot.influence import influence
from jaxlaws.plot.methods import matrices, similarity, trajectories
from jaxlaws.plot.optimum import optimum, simplex_grid, ternary_xy
from jaxlaws.plot.uncertainty import bootstrap_intervals, bootstrap_points, cross_validation, cv_points

__all__ = [
    "bootstrap_intervals",
    "bootstrap_points",
    "cross_validation",
    "cv_points",
    "dynamic_law",
    "dynamic_points",
    "influence",
    "matrices",
    "method_trajectories",
    "optimum",
    "png_bytes",
    "predicted_vs_observed",
    "similarity",
    "simplex_grid",
    "static_law",
    "static_linearised",
    "static_points",
    "ternary_xy",
    "trajectories",
]
