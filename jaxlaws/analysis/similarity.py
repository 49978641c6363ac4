r"""The similarity between a method's scaled matrix and the true one (Chen et al., 2025;
the original's ``{2,3}_measurements.ipynb``).

For matrices :math:`A^\star` (fitted on the method's own children) and :math:`\tilde A = b A^t` (the
method's matrix, scaled), with column sums :math:`s_j(A) = \sum_i A_{ij}` (the direction of the
exponentiated-gradient update :math:`p_j \propto p_j e^{\eta s_j}`):

.. math::
    u = s(A^\star)/\|s(A^\star)\|_2,\quad v = s(\tilde A)/\|s(\tilde A)\|_2,\qquad
    \mathrm{sim} = \tfrac12 \cos(u, v) + \tfrac12 \rho_{\mathrm{Spearman}}(u, v).

Only the direction of the column sums matters: :math:`|b|` cancels, :math:`\mathrm{sign}(b)` does not.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rankdata", "spearman", "cosine", "column_direction", "sim_parts", "sim"]


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array; tied values share the average of the ranks they span.

    Args:
      x: ``(n,)`` values.

    Returns:
      ``(n,)`` float ranks.
    """
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    # Each run of equal values [start, end) gets rank (start + end + 1) / 2 (1-based average).
    new_run = np.concatenate([[True], xs[1:] != xs[:-1]])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], len(xs))
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(u: np.ndarray, v: np.ndarray) -> float:
    r"""Spearman's :math:`\rho`: the Pearson correlation of the (average-tie) ranks.

    For two entries without ties it is :math:`\pm 1`. If either vector is constant the correlation is
    undefined and ``ValueError`` is raised (a silent NaN would poison the averages over seeds).

    Args:
      u, v: ``(n,)`` vectors.

    Returns:
      :math:`\rho_S`, a float in [-1, 1].
    """
    u, v = _vectors(u, v, "spearman")
    ru, rv = rankdata(u) - (len(u) + 1) / 2, rankdata(v) - (len(v) + 1) / 2
    den = np.sqrt(np.sum(ru * ru) * np.sum(rv * rv))
    if den == 0:
        raise ValueError("spearman: a constant vector has no ranking (all entries tie)")
    return float(np.sum(ru * rv) / den)


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    r""":math:`\cos(u, v) = u\cdot v / (\|u\|\|v\|)`; raises ``ValueError`` for a zero vector.

    Args:
      u, v: ``(n,)`` vectors.

    Returns:
      The cosine, a float in [-1, 1].
    """
    u, v = _vectors(u, v, "cosine")
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        raise ValueError("cosine: a zero vector has no direction")
    return float(u @ v / (nu * nv))


def column_direction(a: np.ndarray, name: str = "A") -> np.ndarray:
    r"""The L2-normalised column sums :math:`s(A)/\|s(A)\|_2` of a square matrix ``a``.

    Args:
      a: ``(m, m)`` matrix.
      name: how error messages call it.

    Returns:
      ``(m,)`` unit vector.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise ValueError(f"{name} must be a square m x m matrix with m >= 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")
    s = a.sum(axis=0)
    n = np.linalg.norm(s)
    if n == 0:
        raise ValueError(f"{name}: its column sums are all zero, so they have no direction")
    return s / n


def sim_parts(a_tilde: np.ndarray, a_star: np.ndarray) -> dict[str, float]:
    """``{"cosine", "spearman", "sim"}`` for ``sim(a_tilde, a_star)``; see the module docstring.

    Args:
      a_tilde, a_star: ``(m, m)`` matrices, as :func:`sim`.

    Returns:
      ``{"cosine", "spearman", "sim"}`` floats.
    """
    a_tilde, a_star = np.asarray(a_tilde), np.asarray(a_star)
    if a_tilde.shape != a_star.shape:
        raise ValueError(f"sim: A_tilde has shape {a_tilde.shape} but A_star has shape {a_star.shape}")
    v = column_direction(a_tilde, "A_tilde")
    u = column_direction(a_star, "A_star")
    cos = float(u @ v)  # both unit vectors
    rho = spearman(u, v)
    return {"cosine": cos, "spearman": rho, "sim": 0.5 * cos + 0.5 * rho}


def sim(a_tilde: np.ndarray, a_star: np.ndarray) -> float:
    r""":math:`\mathrm{sim} = \tfrac12\cos(u,v) + \tfrac12\rho_S(u,v)` of the normalised column sums
    (:func:`column_direction`) of two matrices (Chen et al., 2025).

    Args:
      a_tilde: ``(m, m)`` the method's scaled matrix :math:`\tilde A`.
      a_star: ``(m, m)`` the fitted true matrix :math:`A^{t\star}`.

    Returns:
      The similarity, a float in [-1, 1].
    """
    return sim_parts(a_tilde, a_star)["sim"]


def _vectors(u: np.ndarray, v: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if u.ndim != 1 or u.shape != v.shape or len(u) < 2:
        raise ValueError(f"{who}: need two 1-D vectors of the same length >= 2, got {u.shape} and {v.shape}")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
        raise ValueError(f"{who}: non-finite entries")
    return u, v
