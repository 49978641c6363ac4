"""Mixture grids: the original's Dirichlet cover (``dirichlet_cover.py``) and the two-group grid.

The Dirichlet cover spreads ``n`` mixtures over the simplex :math:`\\Delta^k`:

1. ``np.random.seed(seed)`` (legacy global generator -- needed to reproduce the released files);
2. draw ``16 n`` points :math:`x_i \\sim \\mathrm{Dir}(\\alpha \\mathbf{1}_k)` with ``np.random.dirichlet``;
3. while more than ``n`` points remain, take the closest pair :math:`(i, j)` in Euclidean distance, delete
   both and append their midpoint :math:`(x_i + x_j) / 2` at the end of the list.

The result's row order is the original's: surviving raw draws in draw order, then the midpoints in the order
they were created. The released files use ``alpha=1.0`` for ``k=3`` and ``alpha=1.5`` for ``k=9`` and are
stored with ``%.6f``; :func:`dirichlet_cover` reproduces all ten of them exactly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["OVERSAMPLE", "DEFAULT_ALPHA", "dirichlet_cover", "format_grid", "load_dirichlet_grid", "two_group_grid"]

OVERSAMPLE = 16
DEFAULT_ALPHA = {3: 1.0, 9: 1.5}


def _data_dir() -> Path:
    return Path(str(resources.files("jaxlaws") / "data" / "aioli" / "dirichlet_weights"))


def _merge_closest(points: np.ndarray, n: int) -> np.ndarray:
    """Merge the closest pair into its midpoint until ``n`` points remain (original row order kept).

    Works in place on fixed slots: the midpoint of (i, j) reuses slot ``i`` and slot ``j`` dies. An ``order``
    key (draw index, or ``len(points) + merge index`` for midpoints) restores the original list order, which
    also decides argmin ties exactly as the original's "first pair in list order" would. Each merge costs
    O(size) except for rows whose nearest neighbour was i or j, which are rescanned.
    """
    size, _ = points.shape
    x = points.astype(np.float64).copy()
    order = np.arange(size, dtype=np.int64)
    alive = np.ones(size, dtype=bool)
    diff = x[:, None, :] - x[None, :, :]
    d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    np.fill_diagonal(d, np.inf)

    def nearest(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # ties broken by list order (the smallest order key), like a row-major argmin over the list
        sub = d[rows]
        best = sub.min(axis=1, keepdims=True)
        key = np.where(sub == best, order[None, :], np.iinfo(np.int64).max)
        return best[:, 0], np.argmin(key, axis=1)

    all_rows = np.arange(size)
    nn_d, nn_j = nearest(all_rows)
    for t in range(size - n):
        # global closest pair; tie -> earliest (row order, then column order) in list order
        best = nn_d.min()
        cand = np.flatnonzero(nn_d == best)
        i = cand[np.argmin(order[cand])]
        j = nn_j[i]
        if order[j] < order[i]:
            i, j = j, i
        mid = (x[i] + x[j]) / 2
        alive[j] = False
        d[j, :] = np.inf
        d[:, j] = np.inf
        nn_d[j] = np.inf
        x[i] = mid
        order[i] = size + t
        # distances from the new point; dead slots stay at inf
        new = np.sqrt(((x - mid) ** 2).sum(axis=1))
        new[~alive] = np.inf
        new[i] = np.inf
        d[i, :] = new
        d[:, i] = new
        stale = alive & ((nn_j == i) | (nn_j == j))
        stale[i] = True
        rows = np.flatnonzero(stale)
        if rows.size:
            nn_d[rows], nn_j[rows] = nearest(rows)
        # other rows may now have the new point as nearest neighbour (strictly closer, or tied and earlier)
        others = alive & ~stale
        closer = others & ((new < nn_d) | ((new == nn_d) & (order[i] < order[nn_j])))
        nn_d[closer] = new[closer]
        nn_j[closer] = i
    keep = np.flatnonzero(alive)
    return x[keep[np.argsort(order[keep])]]


def dirichlet_cover(k: int, n: int, seed: int, alpha: float | None = None) -> np.ndarray:
    """The original's Dirichlet cover: ``n`` mixtures over ``k`` groups, shape ``(n, k)``, float64.

    ``alpha`` defaults to the value the released files used (1.0 for k=3, 1.5 for k=9; else 1.0).
    Seeds the legacy global ``np.random`` state (as the original did) and restores it afterwards.

    Args:
      k: the number of groups.
      n: the number of mixtures.
      seed: the legacy ``np.random`` seed.
      alpha: the Dirichlet concentration (default as above).

    Returns:
      ``(n, k)`` float64 mixtures.
    """
    if k < 2 or n < 1:
        raise ValueError(f"dirichlet_cover needs k >= 2 and n >= 1, got k={k}, n={n}")
    if alpha is None:
        alpha = DEFAULT_ALPHA.get(k, 1.0)
    if not alpha > 0:
        raise ValueError(f"dirichlet_cover: alpha must be positive, got {alpha}")
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        draws = np.random.dirichlet([alpha] * k, n * OVERSAMPLE)
    finally:
        np.random.set_state(state)
    return _merge_closest(draws, n)


def format_grid(grid: np.ndarray) -> str:
    """The file text the original wrote (``np.savetxt(..., fmt="%.6f", delimiter=",")``)."""
    return "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in np.asarray(grid))


def load_dirichlet_grid(k: int, n: int, seed: int) -> np.ndarray:
    """A bundled grid ``dirichlet_weights/k_{k}_n_{n}_seed_{seed}.txt`` as an ``(n, k)`` float64 array.

    Available: (k=3, n=9) and (k=9, n=50) for seeds 0-4. Values are the ``%.6f`` text, so rows sum to 1
    only to about 1e-6.

    Args:
      k: the number of groups.
      n: the number of mixtures.
      seed: the grid's seed.

    Returns:
      ``(n, k)`` float64 mixtures.
    """
    path = _data_dir() / f"k_{k}_n_{n}_seed_{seed}.txt"
    if not path.exists():
        have = sorted(p.name for p in _data_dir().glob("*.txt"))
        raise ValueError(f"no bundled Dirichlet grid {path.name}; available: {have}")
    grid = np.loadtxt(path, delimiter=",", ndmin=2)
    if grid.shape != (n, k):
        raise ValueError(f"{path}: expected shape {(n, k)}, got {grid.shape}")
    return grid


def two_group_grid() -> np.ndarray:
    """The m=2 sweep grid: rows ``(a/10, 1 - a/10)`` for ``a = 1..9``, shape (9, 2).

    Returns:
      ``(9, 2)`` float64 mixtures.
    """
    a = np.arange(1, 10) / 10
    return np.stack([a, (10 - np.arange(1, 10)) / 10], axis=1)
