"""Small numba kernels of per-pixel work on light frames, kept apart so that modules using
them import numba (~0.35 s) only when they compute: an unchanged re-run, which loads every
result from the cache, does not pay for it.

Frame-sized outputs are allocated by numpy in the Python wrappers and filled by the kernels:
numpy asks the kernel for transparent huge pages on big arrays, numba's allocator does not,
and faulting in a fresh 2048² float32 frame page by page costs ~7 ms on this VM (~1.5 ms
in huge pages).
"""

from __future__ import annotations

import numba
import numpy as np


def first_starlet_layer(a: np.ndarray) -> np.ndarray:
    """``a`` minus its B3-spline smoothing, mirrored edges (``subframes.noise_mrs``)."""
    out = np.empty(a.shape, np.float32)
    _first_starlet_layer(a, np.empty(a.shape, np.float32), out)
    return out


@numba.njit(cache=True, nogil=True)
def _first_starlet_layer(a, tmp, out):  # pragma: no cover - compiled
    h, w = a.shape
    for i in range(h):
        i0 = abs(i - 2)
        i1 = abs(i - 1)
        i3 = i + 1 if i + 1 < h else 2 * h - 3 - i
        i4 = i + 2 if i + 2 < h else 2 * h - 4 - i
        for j in range(w):
            tmp[i, j] = (
                0.375 * a[i, j] + 0.25 * (a[i1, j] + a[i3, j]) + 0.0625 * (a[i0, j] + a[i4, j])
            )
    for i in range(h):
        for j in range(w):
            j0 = abs(j - 2)
            j1 = abs(j - 1)
            j3 = j + 1 if j + 1 < w else 2 * w - 3 - j
            j4 = j + 2 if j + 2 < w else 2 * w - 4 - j
            t = tmp[i]
            out[i, j] = a[i, j] - (0.375 * t[j] + 0.25 * (t[j1] + t[j3]) + 0.0625 * (t[j0] + t[j4]))


def neighbour_stats(x: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, max and min of the 8 same-colour neighbours of every pixel (mirrored at the
    edges, as ``neighbours``; NaN where a neighbour is NaN): what ``np.median`` over the
    (8, H, W) stack gives, without building the stack (about 5× faster)."""
    med, top, bottom = (np.empty(x.shape, np.float32) for _ in range(3))
    _neighbour_stats(x, step, med, top, bottom)
    return med, top, bottom


@numba.njit(cache=True, parallel=True, nogil=True)
def _neighbour_stats(x, step, med, top, bottom):  # pragma: no cover - compiled
    h, w = x.shape
    for i in numba.prange(h):
        v = np.empty(8, np.float32)
        for j in range(w):
            k = 0
            bad = False
            for dy in (-1, 0, 1):
                yy = abs(i + dy * step)
                if yy > h - 1:
                    yy = 2 * (h - 1) - yy
                for dx in (-1, 0, 1):
                    if dy == 0 and dx == 0:
                        continue
                    xx = abs(j + dx * step)
                    if xx > w - 1:
                        xx = 2 * (w - 1) - xx
                    val = x[yy, xx]
                    if val != val:
                        bad = True
                    v[k] = val
                    k += 1
            if bad:
                med[i, j] = np.nan
                top[i, j] = np.nan
                bottom[i, j] = np.nan
                continue
            for a in range(1, 8):  # insertion sort of 8 values
                t = v[a]
                b = a - 1
                while b >= 0 and v[b] > t:
                    v[b + 1] = v[b]
                    b -= 1
                v[b + 1] = t
            med[i, j] = 0.5 * (v[3] + v[4])
            top[i, j] = v[7]
            bottom[i, j] = v[0]


def atrous_b3(x: np.ndarray, axis: int, step: int, out: np.ndarray | None = None) -> np.ndarray:
    """One à trous B3-spline pass (1, 4, 6, 4, 1)/16 along ``axis`` (0 or 1) of a 2-D float64
    array with holes of ``step``, edges mirrored with the edge sample repeated (numpy's
    ``symmetric`` padding), summed in the order of a padded copy and five shifted sums (the
    oracle in tests/process/test_superbias.py): the same values to the last bit. ``out``, a
    float64 array of ``x``'s shape that is not ``x``, takes the result."""
    if out is None:
        out = np.empty(x.shape, np.float64)
    elif out.shape != x.shape or out.dtype != np.float64 or np.shares_memory(out, x):
        raise ValueError("out must be a float64 array of x's shape, apart from x")
    _atrous_b3(x, axis, step, out)
    return out


@numba.njit(cache=True, parallel=True, nogil=True)
def _atrous_b3(x, axis, step, out):  # pragma: no cover - compiled
    h, w = x.shape
    n = h if axis == 0 else w
    for i in numba.prange(h):
        for j in range(w):
            out[i, j] = 0.0
        for k in range(5):
            c = (1.0, 4.0, 6.0, 4.0, 1.0)[k] / 16.0
            if axis == 0:
                ii = i + (k - 2) * step
                if ii < 0:
                    ii = -ii - 1
                elif ii >= n:
                    ii = 2 * n - 1 - ii
                for j in range(w):
                    out[i, j] += c * x[ii, j]
            else:
                for j in range(w):
                    jj = j + (k - 2) * step
                    if jj < 0:
                        jj = -jj - 1
                    elif jj >= n:
                        jj = 2 * n - 1 - jj
                    out[i, j] += c * x[i, jj]
