"""Dirichlet cover (the original's mixture grids): exact reproduction of the released grids and agreement with a
naive merge."""

import numpy as np
import pytest

from jaxlaws.sweeps import dirichlet


def _naive_cover(k, n, seed, alpha):
    """Straightforward transcription of the procedure: full distance matrix every merge, list delete/append."""
    np.random.seed(seed)
    pts = list(np.random.dirichlet([alpha] * k, 16 * n))
    while len(pts) > n:
        x = np.array(pts)
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        d[np.arange(len(x)), np.arange(len(x))] = np.inf
        i, j = np.unravel_index(np.argmin(d), d.shape)
        mid = (pts[i] + pts[j]) / 2
        for t in sorted((i, j), reverse=True):
            del pts[t]
        pts.append(mid)
    return np.array(pts)


@pytest.mark.parametrize("k,n", [(3, 9), (9, 50)])
@pytest.mark.parametrize("seed", range(5))
def test_reproduces_bundled_files_exactly(k, n, seed):
    text = (dirichlet._data_dir() / f"k_{k}_n_{n}_seed_{seed}.txt").read_text()
    assert dirichlet.format_grid(dirichlet.dirichlet_cover(k, n, seed)) == text


@pytest.mark.parametrize("k,n,seed,alpha", [(2, 5, 3, 1.0), (4, 7, 11, 0.7), (3, 12, 5, 2.0), (5, 3, 0, 1.5)])
def test_matches_naive_merge(k, n, seed, alpha):
    fast = dirichlet.dirichlet_cover(k, n, seed, alpha)
    np.testing.assert_array_equal(fast, _naive_cover(k, n, seed, alpha))
    np.testing.assert_allclose(fast.sum(1), 1, atol=1e-12)


def test_global_random_state_is_restored():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    dirichlet.dirichlet_cover(3, 4, 0)
    assert np.random.rand() == expected


def test_bundled_loader_and_two_group_grid():
    g = dirichlet.load_dirichlet_grid(3, 9, 0)
    assert g.shape == (9, 3) and g[0, 0] == 0.290991
    np.testing.assert_allclose(g.sum(1), 1, atol=5e-6)
    two = dirichlet.two_group_grid()
    np.testing.assert_allclose(two[:, 0], np.arange(1, 10) / 10)
    np.testing.assert_allclose(two.sum(1), 1)
    with pytest.raises(ValueError, match="k_3_n_10_seed_0"):
        dirichlet.load_dirichlet_grid(3, 10, 0)
    with pytest.raises(ValueError, match="k >= 2"):
        dirichlet.dirichlet_cover(1, 3, 0)
