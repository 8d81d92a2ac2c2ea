"""Neighbours among 2-D points (star positions, triangle invariants) with numpy alone.

Star matching needs three questions answered: which points of ``b`` lie within ``r`` of each
point of ``a``, the nearest of them, and a star's k nearest stars. scipy's cKDTree answers
them, but importing scipy.spatial (with scipy.linalg and scipy.sparse) costs ~10 MB in every
process of a run and 0.14 s; star lists are a few hundred points, and a grid of cells of
side ``r`` answers the same questions exactly: two points within ``r`` lie in the same or
adjacent cells.
"""

from __future__ import annotations

import numpy as np

# up to this many point pairs, every distance is computed (quicker than the grid then)
_BRUTE_FORCE = 1 << 12


def pairs_within(
    a: np.ndarray, b: np.ndarray, r: float, inclusive: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``(i, j)`` with ``|a[i] - b[j]| <= r`` (``< r`` when not ``inclusive``):
    index arrays (int64) and the distances, ordered by i then j."""
    a = np.asarray(a, np.float64).reshape(-1, 2)
    b = np.asarray(b, np.float64).reshape(-1, 2)
    empty = np.empty(0, np.int64)
    if len(a) == 0 or len(b) == 0 or not r > 0:
        return empty, empty, np.empty(0)
    if len(a) * len(b) <= _BRUTE_FORCE:
        # a few hundred points each: every distance at once is quicker than the grid
        d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
        i, j = np.nonzero(d <= r if inclusive else d < r)  # row-major: by i, then j
        return i.astype(np.int64), j.astype(np.int64), d[i, j]
    # cells of side r, numbered row by row over the common bounding box plus a margin
    lo = np.minimum(a.min(axis=0), b.min(axis=0))
    ca = np.floor((a - lo) / r).astype(np.int64) + 1
    cb = np.floor((b - lo) / r).astype(np.int64) + 1
    width = int(max(ca[:, 0].max(), cb[:, 0].max())) + 2
    kb = cb[:, 1] * width + cb[:, 0]
    order = np.argsort(kb, kind="stable")
    kb_sorted = kb[order]
    ka = ca[:, 1] * width + ca[:, 0]
    ii, jj = [], []
    for dy in (-1, 0, 1):
        # the three cells (x - 1, x, x + 1) of a row are consecutive numbers
        k = ka + dy * width
        first = np.searchsorted(kb_sorted, k - 1, side="left")
        last = np.searchsorted(kb_sorted, k + 1, side="right")
        n = last - first
        if not n.any():
            continue
        i = np.repeat(np.arange(len(a)), n)
        # positions first[i] .. last[i] - 1 in the sorted cells, flattened
        starts = np.repeat(first - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
        ii.append(i)
        jj.append(order[starts + np.arange(len(i))])
    if not ii:
        return empty, empty, np.empty(0)
    i = np.concatenate(ii)
    j = np.concatenate(jj)
    d = np.hypot(a[i, 0] - b[j, 0], a[i, 1] - b[j, 1])
    keep = d <= r if inclusive else d < r
    i, j, d = i[keep], j[keep], d[keep]
    s = np.lexsort((j, i))
    return i[s], j[s], d[s]


def nearest_within(
    points: np.ndarray, queries: np.ndarray, r: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the nearest point closer than ``r``: ``(distance, index)``, with
    ``inf`` and ``len(points)`` where there is none (cKDTree.query's answer with
    ``distance_upper_bound=r``). Of equally near points, the lowest index."""
    q = np.asarray(queries, np.float64).reshape(-1, 2)
    dist = np.full(len(q), np.inf)
    idx = np.full(len(q), len(points), np.int64)
    i, j, d = pairs_within(q, points, r, inclusive=False)
    if len(i):
        s = np.lexsort((j, d, i))  # by query, then distance, then index
        i, j, d = i[s], j[s], d[s]
        first = np.ones(len(i), bool)
        first[1:] = i[1:] != i[:-1]
        dist[i[first]] = d[first]
        idx[i[first]] = j[first]
    return dist, idx


def k_nearest(xy: np.ndarray, k: int) -> np.ndarray:
    """Indices of each point's ``k`` nearest points (itself first), nearest first: (n, k).
    Every distance is computed: for the few hundred stars of a triangle match."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    k = min(k, len(xy))
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    if k < len(xy):  # the k smallest of each row, then only those sorted
        near = np.argpartition(d2, k - 1, axis=1)[:, :k]
    else:
        near = np.broadcast_to(np.arange(len(xy)), d2.shape)
    d = np.take_along_axis(d2, near, axis=1)
    # nearest first (a point's own distance, 0, comes first); equal distances by index
    order = np.lexsort((near, d), axis=1)
    return np.take_along_axis(near, order, axis=1)
