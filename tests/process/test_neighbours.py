"""Neighbour queries on a grid (pxlang.process.neighbours) against every distance computed:
the same pairs, nearest points and k nearest as a brute-force search (and scipy's cKDTree)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from pxlang.process.neighbours import k_nearest, nearest_within, pairs_within


def brute(a, b):
    return np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("r", [0.006, 0.05, 1.5, 40.0])
@pytest.mark.parametrize("sizes", [(150, 170), (40, 50)])  # on the grid; every distance
def test_pairs_within_equal_brute_force(seed, r, sizes):
    rng = np.random.default_rng(seed)
    scale = 1.0 if r < 0.1 else 500.0
    a = rng.uniform(-0.2, 1, (sizes[0], 2)) * scale
    b = rng.uniform(0, 1.2, (sizes[1], 2)) * scale
    b[:5] = a[:5] + [r, 0]  # exactly at the radius: in with <=, out with <
    d = brute(a, b)
    for inclusive in (True, False):
        i, j, dist = pairs_within(a, b, r, inclusive)
        want = np.argwhere(d <= r if inclusive else d < r)
        np.testing.assert_array_equal(np.column_stack([i, j]), want)
        np.testing.assert_array_equal(dist, d[want[:, 0], want[:, 1]])
    # scipy's sparse distance matrix gives the same pairs (inclusive)
    pairs = cKDTree(a).sparse_distance_matrix(cKDTree(b), r, output_type="ndarray")
    got = set(zip(*pairs_within(a, b, r)[:2]))
    assert got == set(zip(pairs["i"].tolist(), pairs["j"].tolist()))


def test_nearest_within_equals_kdtree_query():
    rng = np.random.default_rng(9)
    pts = rng.uniform(0, 1000, (400, 2))
    q = np.concatenate([pts[:100] + rng.normal(0, 1, (100, 2)), rng.uniform(0, 1000, (50, 2))])
    for r in (1.5, 4.0, 8.0):
        d, j = nearest_within(pts, q, r)
        kd, kj = cKDTree(pts).query(q, distance_upper_bound=r)
        np.testing.assert_array_equal(j, kj)
        np.testing.assert_allclose(d, kd, rtol=1e-12)
        assert np.isinf(d).any() and np.isfinite(d).any()
    # nothing at all, and an empty set
    d, j = nearest_within(pts, [[5000.0, 5000.0]], 2.0)
    assert np.isinf(d[0]) and j[0] == len(pts)
    d, j = nearest_within(np.empty((0, 2)), q[:3], 2.0)
    assert np.isinf(d).all() and (j == 0).all()


def test_k_nearest_equals_kdtree():
    xy = np.random.default_rng(10).uniform(0, 2048, (300, 2))
    for k in (1, 5, 13):
        _, want = cKDTree(xy).query(xy, k=k)
        np.testing.assert_array_equal(k_nearest(xy, k), np.asarray(want).reshape(len(xy), k))
    assert k_nearest(xy[:3], 9).shape == (3, 3)  # no more than there are points
