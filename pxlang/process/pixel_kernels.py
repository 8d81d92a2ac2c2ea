"""Small numba kernels of per-pixel work on light frames (``jit``: from the kernel library,
else numba), kept apart so that modules using them load compiled code only when they
compute: an unchanged re-run, which loads every result from the cache, does not pay for it.

Frame-sized outputs are allocated by numpy in the Python wrappers and filled by the kernels:
numpy asks the kernel for transparent huge pages on big arrays, numba's allocator does not,
and faulting in a fresh 2048² float32 frame page by page costs ~7 ms on this VM (~1.5 ms
in huge pages).
"""

from __future__ import annotations

import numpy as np

from .jit import njit, prange, split


def first_starlet_layer(a: np.ndarray) -> np.ndarray:
    """``a`` minus its B3-spline smoothing, mirrored edges (``subframes.noise_mrs``)."""
    out = np.empty(a.shape, np.float32)
    _first_starlet_layer(a, np.empty(a.shape, np.float32), out)
    return out


@njit(cache=True, nogil=True, export=["void(f4[:, ::1], f4[:, ::1], f4[:, ::1])"])
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


def first_starlet_layer_sampled(a: np.ndarray, stride: int) -> np.ndarray:
    """``first_starlet_layer(a).ravel()[::stride]`` (the same float32 values) without the
    whole layer: the noise estimate clips a strided sample, and the whole layer and its
    row-pass plane were two frame-sized planes (32 MB at 2048²) for a 17th of their values."""
    if a.ndim != 2 or min(a.shape) < 3 or stride < 1:
        raise ValueError("a 2-D array of at least 3x3 and a stride of 1 or more")
    out = np.empty((a.size + stride - 1) // stride, np.float32)
    _first_starlet_layer_at(np.ascontiguousarray(a, dtype=np.float32), int(stride), out)
    return out


@njit(cache=True, inline="always")
def _mirror(i, n):  # pragma: no cover - compiled
    """Index ``i`` (less than ``n`` beyond an edge) mirrored without repeating the edge
    sample (numpy's ``reflect``), as the starlet and neighbour kernels mirror it."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * n - 2 - i
    return i


@njit(cache=True, nogil=True, export=["void(f4[:, ::1], i8, f4[::1])"])
def _first_starlet_layer_at(a, stride, out):  # pragma: no cover - compiled
    h, w = a.shape
    t = np.empty(5, np.float32)  # the row pass at the five columns, stored as float32
    for k in range(out.size):
        idx = k * stride
        i = idx // w
        j = idx - i * w
        i0 = _mirror(i - 2, h)
        i1 = _mirror(i - 1, h)
        i3 = _mirror(i + 1, h)
        i4 = _mirror(i + 2, h)
        for c in range(5):
            jj = _mirror(j + c - 2, w)
            t[c] = (
                0.375 * a[i, jj] + 0.25 * (a[i1, jj] + a[i3, jj]) + 0.0625 * (a[i0, jj] + a[i4, jj])
            )
        out[k] = a[i, j] - (0.375 * t[2] + 0.25 * (t[1] + t[3]) + 0.0625 * (t[0] + t[4]))


def neighbour_stats(x: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, max and min of the 8 same-colour neighbours of every pixel (mirrored at the
    edges, as ``neighbours``; NaN where a neighbour is NaN): what ``np.median`` over the
    (8, H, W) stack gives, without building the stack (about 5× faster)."""
    med, top, bottom = (np.empty(x.shape, np.float32) for _ in range(3))
    _neighbour_stats(x, step, med, top, bottom)
    return med, top, bottom


@njit(cache=True, inline="always")
def _ce(a, b):  # pragma: no cover - compiled
    """A compare-exchange of a sorting network: (min, max), without a branch."""
    return min(a, b), max(a, b)


@njit(cache=True, nogil=True)
def _mirrored_columns(w, step):  # pragma: no cover - compiled
    """Left and right same-colour neighbour columns of every column, mirrored at the edges."""
    left = np.empty(w, np.int64)
    right = np.empty(w, np.int64)
    for j in range(w):
        left[j] = _mirror(j - step, w)
        right[j] = _mirror(j + step, w)
    return left, right


@njit(cache=True, inline="always")
def _mirrored_rows(i, h, step):  # pragma: no cover - compiled
    return _mirror(i - step, h), _mirror(i + step, h)


@njit(cache=True, inline="always")
def _stats_at(x, i, j, up, dn, jl, jr):  # pragma: no cover - compiled
    """(median, max, min) of the 8 neighbours of (i, j); NaN when one is NaN."""
    v0 = x[up, jl]
    v1 = x[up, j]
    v2 = x[up, jr]
    v3 = x[i, jl]
    v4 = x[i, jr]
    v5 = x[dn, jl]
    v6 = x[dn, j]
    v7 = x[dn, jr]
    if (v0 != v0 or v1 != v1 or v2 != v2 or v3 != v3
            or v4 != v4 or v5 != v5 or v6 != v6 or v7 != v7):  # fmt: skip
        nan = np.float32(np.nan)
        return nan, nan, nan
    # Batcher's 19-comparator network for 8 values (checked on every 0/1 input in
    # tests/process/test_cosmetic.py), less the two exchanges that only order positions
    # 1-2 and 5-6: ~4x as fast as an insertion sort, whose branches the processor cannot
    # guess on noise
    v0, v2 = _ce(v0, v2)
    v1, v3 = _ce(v1, v3)
    v4, v6 = _ce(v4, v6)
    v5, v7 = _ce(v5, v7)
    v0, v4 = _ce(v0, v4)
    v1, v5 = _ce(v1, v5)
    v2, v6 = _ce(v2, v6)
    v3, v7 = _ce(v3, v7)
    v0, v1 = _ce(v0, v1)
    v2, v3 = _ce(v2, v3)
    v4, v5 = _ce(v4, v5)
    v6, v7 = _ce(v6, v7)
    v2, v4 = _ce(v2, v4)
    v3, v5 = _ce(v3, v5)
    v1, v4 = _ce(v1, v4)
    v3, v6 = _ce(v3, v6)
    v3, v4 = _ce(v3, v4)
    return np.float32(0.5 * (v3 + v4)), v7, v0


@njit(cache=True, parallel=True, nogil=True)
def _neighbour_stats(x, step, med, top, bottom):  # pragma: no cover - compiled
    h, w = x.shape
    left, right = _mirrored_columns(w, step)  # once, not eight times a pixel
    for i in prange(h):
        up, dn = _mirrored_rows(i, h, step)
        for j in range(w):
            med[i, j], top[i, j], bottom[i, j] = _stats_at(x, i, j, up, dn, left[j], right[j])


def neighbour_deviation(x: np.ndarray, step: int) -> np.ndarray:
    """``x`` minus the median of its 8 same-colour neighbours (``neighbour_stats``), float32:
    one plane where the three statistics are three."""
    d = np.empty(x.shape, np.float32)
    split(_neighbour_deviation, np.ascontiguousarray(x, dtype=np.float32), step, d)
    return d


@njit(
    cache=True, parallel=True, nogil=True, export=["void(f4[:, ::1], i8, f4[:, ::1], i8, i8, i8)"]
)
def _neighbour_deviation(x, step, d, t0, t1, nt):  # pragma: no cover - compiled
    h, w = x.shape
    left, right = _mirrored_columns(w, step)
    for t in prange(t0, t1):  # slices of rows: jit.split
        for i in range(h * t // nt, h * (t + 1) // nt):
            up, dn = _mirrored_rows(i, h, step)
            for j in range(w):
                d[i, j] = x[i, j] - _stats_at(x, i, j, up, dn, left[j], right[j])[0]


def defect_masks(
    x: np.ndarray, step: int, threshold: float, ratio: float, hot: bool, cold: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Hot and cold pixel masks (``cosmetic.detect_defects``) from the neighbour statistics
    recomputed pixel by pixel, in float32 as numpy compares them: a pixel is hot when its
    deviation d from the median exceeds ``threshold``, it is above its brightest neighbour
    and d exceeds ``ratio`` times that neighbour's height above the median; cold likewise
    below. No frame-sized statistics are kept."""
    hot_mask = np.zeros(x.shape, bool)
    cold_mask = np.zeros(x.shape, bool)
    split(
        _defect_masks,
        np.ascontiguousarray(x, dtype=np.float32), step, np.float32(threshold),
        np.float32(ratio), bool(hot), bool(cold), hot_mask, cold_mask,
    )  # fmt: skip
    return hot_mask, cold_mask


@njit(
    cache=True,
    parallel=True,
    nogil=True,
    export=["void(f4[:, ::1], i8, f4, f4, b1, b1, b1[:, ::1], b1[:, ::1], i8, i8, i8)"],
)
def _defect_masks(x, step, thr, ratio, hot, cold, hot_mask, cold_mask, t0, t1, nt):  # noqa: E501 # pragma: no cover
    h, w = x.shape
    left, right = _mirrored_columns(w, step)
    for t in prange(t0, t1):  # slices of rows: jit.split
        for i in range(h * t // nt, h * (t + 1) // nt):
            up, dn = _mirrored_rows(i, h, step)
            for j in range(w):
                med, top, bottom = _stats_at(x, i, j, up, dn, left[j], right[j])
                v = x[i, j]
                d = v - med  # NaN fails every test below
                if hot:
                    hot_mask[i, j] = d > thr and v > top and d > ratio * (top - med)
                if cold:
                    cold_mask[i, j] = d < -thr and v < bottom and d < -ratio * (med - bottom)


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
    if not (1 <= step and 2 * step < x.shape[axis]):  # one mirroring reaches every tap
        raise ValueError(f"step must be 1 to {(x.shape[axis] - 1) // 2} here; got {step}")
    split(_atrous_b3, x, axis, step, out)
    return out


@njit(cache=True, inline="always")
def _symmetric(i, n):  # pragma: no cover - compiled
    """Index ``i`` (less than ``n`` beyond an edge) mirrored with the edge sample repeated
    (numpy's ``symmetric``), as the à trous pass of the superbias mirrors it."""
    if i < 0:
        return -i - 1
    if i >= n:
        return 2 * n - 1 - i
    return i


@njit(cache=True, inline="always")
def _b3_row_edge(x, i, j, step, n):  # pragma: no cover - compiled
    """The B3 tap sum of row ``i`` at a column ``j`` whose taps reach past an edge."""
    a = 0.0
    a += 1.0 / 16.0 * x[i, _symmetric(j - 2 * step, n)]
    a += 4.0 / 16.0 * x[i, _symmetric(j - step, n)]
    a += 6.0 / 16.0 * x[i, j]
    a += 4.0 / 16.0 * x[i, _symmetric(j + step, n)]
    a += 1.0 / 16.0 * x[i, _symmetric(j + 2 * step, n)]
    return a


@njit(
    cache=True,
    parallel=True,
    nogil=True,
    export=["void(f8[:, ::1], i8, i8, f8[:, ::1], i8, i8, i8)"],
)
def _atrous_b3(x, axis, step, out, t0, t1, nt):  # pragma: no cover - compiled
    # Each output sums its five taps in a register, in the padded oracle's order (0 + the
    # tap at -2 steps, + the tap at -1, ...): the same bits as five passes over the row,
    # with loops the compiler vectorises (2-3x faster); only the mirrored edges branch.
    h, w = x.shape
    n = h if axis == 0 else w
    c0, c1, c2 = 1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0
    s2 = 2 * step
    for t in prange(t0, t1):  # slices of rows: jit.split
        for i in range(h * t // nt, h * (t + 1) // nt):
            if axis == 0:
                r0 = _symmetric(i - s2, n)
                r1 = _symmetric(i - step, n)
                r3 = _symmetric(i + step, n)
                r4 = _symmetric(i + s2, n)
                for j in range(w):
                    a = 0.0
                    a += c0 * x[r0, j]
                    a += c1 * x[r1, j]
                    a += c2 * x[i, j]
                    a += c1 * x[r3, j]
                    a += c0 * x[r4, j]
                    out[i, j] = a
            else:
                lo = min(s2, w)
                hi = max(w - s2, lo)
                for j in range(lo, hi):
                    a = 0.0
                    a += c0 * x[i, j - s2]
                    a += c1 * x[i, j - step]
                    a += c2 * x[i, j]
                    a += c1 * x[i, j + step]
                    a += c0 * x[i, j + s2]
                    out[i, j] = a
                for j in range(lo):
                    out[i, j] = _b3_row_edge(x, i, j, step, n)
                for j in range(hi, w):
                    out[i, j] = _b3_row_edge(x, i, j, step, n)
