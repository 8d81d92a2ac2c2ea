"""Lanczos-3 resampling with clamping (numba), for registration.

Lanczos-3 keeps stars sharp but its negative lobes ring (dark halos) next to bright, compact
sources. Clamping limits the filter's negative part only where it matters: the positive and
negative contributions are summed separately, and when their ratio exceeds a threshold the
negative part is attenuated smoothly (fully removed when it would dominate). This is the
mechanism PixInsight documents for its Lanczos interpolation (threshold 0.3 by default).

The weights come from a table every 1/4096 pixel, interpolated linearly (error < 1e-7),
three times faster than evaluating the sines.

Two kernels. The 2-D one takes the 36 taps of each output pixel and clamps them together
(PixInsight's own scheme). For affine transforms close to the axes — dithers, field rotation
of a few degrees, meridian flips, scale changes — the separable one resamples in two 1-D
passes (Catmull & Smith): each source row along the lines that output columns trace in it,
then each output column; 12 taps a pixel instead of 36, ~1.5× as fast on a 2048² frame.
The row pass keeps the positive and negative products and the weight of the positive ones
apart, from which the column pass rebuilds the 2-D kernel's sums over the 36 products, so
the clamping decision is PixInsight's: for a translation both kernels give the same numbers
(float32 rounding aside), clamped or not; with a rotation θ the effective kernel is sheared
by tan θ (≤ 0.1 here).

Coordinates: 0-based pixel centres, ``x`` = column, ``y`` = row. A source coordinate outside
[-0.5, W-0.5] × [-0.5, H-0.5] gives ``fill``; kernel taps beyond the border repeat the edge.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np

from .jit import njit, prange

DEFAULT_CLAMP = 0.3
MAX_SEPARABLE_SHEAR = 0.1  # |tan θ| up to which the two-pass kernel serves an affine warp
_LUT_RES = 4096  # weights tabulated every 1/4096 px, linearly interpolated (error < 1e-7)


def _lanczos3(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, np.float64)
    out = np.ones_like(t)
    nz = t != 0
    tt = t[nz]
    out[nz] = 3.0 * np.sin(np.pi * tt) * np.sin(np.pi * tt / 3.0) / (np.pi * tt) ** 2
    out[np.abs(t) >= 3] = 0.0
    return out


# LUT[i, k]: weight of tap k (offset k-2) for the fractional position i / _LUT_RES. Each row
# is normalised to sum 1 (so are its linear interpolations): the 2-D kernel divides by the
# weight sum anyway, and the separable one then needs no division.
_LUT = _lanczos3((np.arange(6)[None, :] - 2) - (np.arange(_LUT_RES + 1)[:, None] / _LUT_RES))
_LUT /= _LUT.sum(axis=1, keepdims=True)


@njit(cache=True, inline="always")
def _lut_weights(d: float, lut: np.ndarray, w: np.ndarray) -> None:
    """Tabulated weights (three times faster than evaluating the sines)."""
    t = d * _LUT_RES
    i = int(t)
    f = t - i
    if i >= _LUT_RES:
        i = _LUT_RES - 1
        f = 1.0
    for k in range(6):
        w[k] = lut[i, k] + (lut[i + 1, k] - lut[i, k]) * f


@njit(cache=True, inline="always")
def _clamped(sp, sn, wp, wn, th):
    """Weighted sum from the positive and negative parts, the negative one attenuated when
    its ratio to the positive one passes the threshold ``th`` (no clamping when th < 0)."""
    if th >= 0.0:
        if sp == 0.0:
            return 0.0
        r = sn / sp
        if r >= 1.0:
            c = 0.0  # negative part dropped: sp / wp
        else:
            # c = 1 - ((r - th) / (1 - th))² above the threshold, 1 below: branch-free,
            # because r hovers around the default threshold on a plain sky
            t = max(r - th, 0.0) * (1.0 / (1.0 - th) if th < 1.0 else 0.0)
            c = 1.0 - t * t
        sn *= c
        wn *= c
    den = wp - wn
    return (sp - sn) / den if den != 0.0 else 0.0


@njit(cache=True, inline="always")
def _sample(data, x, y, th, wx, wy, fill, lut):
    h, w = data.shape
    if not (x >= -0.5 and x <= w - 0.5 and y >= -0.5 and y <= h - 0.5):
        return fill
    x0 = int(math.floor(x))
    y0 = int(math.floor(y))
    _lut_weights(x - x0, lut, wx)
    _lut_weights(y - y0, lut, wy)
    sp = 0.0
    sn = 0.0
    wp = 0.0
    wn = 0.0
    for i in range(6):
        yy = min(max(y0 + i - 2, 0), h - 1)
        ly = wy[i]
        if ly == 0.0:
            continue
        for j in range(6):
            lw = wx[j] * ly
            if lw == 0.0:
                continue
            xx = min(max(x0 + j - 2, 0), w - 1)
            s = data[yy, xx] * lw
            if s < 0.0:
                sn -= s
                wn -= lw
            else:
                sp += s
                wp += lw
    return _clamped(sp, sn, wp, wn, th)


# the separable warp's two passes: rows in parallel, without the GIL, and numpy's error model
# (no Python zero-division check on every division: the kernels test their divisors)
_pass_kernel = functools.partial(njit, cache=True, parallel=True, nogil=True, error_model="numpy")


@_pass_kernel(export=["void(f4[:, ::1], f8, f8, f8, f8[:, ::1], f4[:, :, ::1], i8)"])
def _rows_pass(data, al, be, ga, lut, parts, row0):
    """First separable pass: source row ``y`` sampled at x = al·u + be·y + ga for every
    output column u. The positive and negative products are summed apart (``parts[y, u, 0]``
    and ``[1]``) with the weight of the positive ones (``[2]``; the weights sum to 1), so
    that the second pass can clamp as the 2-D kernel does. The three side by side: the
    second pass reads six rows of them, not eighteen. ``parts`` holds the source rows
    ``row0``, ``row0 + 1``…"""
    h, w = data.shape
    out_w = parts.shape[1]
    for r in prange(parts.shape[0]):
        y = row0 + r
        wx = np.empty(6)
        for u in range(out_w):
            x = al * u + be * y + ga
            x0 = int(math.floor(x))
            _lut_weights(x - x0, lut, wx)
            p = 0.0
            n = 0.0
            wp = 0.0
            for j in range(6):
                xx = x0 + j - 2
                if xx < 0 or xx >= w:  # edge repeated
                    xx = min(max(xx, 0), w - 1)
                s = data[y, xx] * wx[j]
                if s < 0.0:
                    n += s
                else:
                    p += s
                    wp += wx[j]
            parts[r, u, 0] = p
            parts[r, u, 1] = n
            parts[r, u, 2] = wp


_CHUNK = 64  # output pixels taken together when their six source rows are the same


@_pass_kernel(
    export=["void(f4[:, :, ::1], i8, i8, f8[:, ::1], i8, i8, f8, f8, f8[:, ::1], f4[:, ::1])"]
)
def _columns_pass(parts, row0, h, m, v0, src_w, th, fill, lut, out):
    """Second separable pass: output pixel (u, v) is column u of the first pass sampled at
    the source row y(u, v). The sums of the positive and negative products and of their
    weights over the 36 taps follow from the row parts: a product is positive where the row
    part and the column weight have the same sign (Lanczos-3 weights have the signs
    + - + + - + at taps -2..3, whatever the fraction). Along an output row y(u) moves
    slowly, so runs of pixels share their six source rows: those are summed without index
    clamps; runs near the frame's edges take the general path. Sources outside the frame
    get ``fill``. ``parts`` holds the source rows ``row0``… of a frame of ``h`` rows (all
    the rows the output rows ``v0``… of ``out`` read)."""
    out_w = parts.shape[1]
    clamp = th >= 0.0
    inv = 1.0 / (1.0 - th) if (clamp and th < 1.0) else 0.0
    m00, m01, m02, m10, m11, m12 = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]
    for vv in prange(out.shape[0]):
        v = v0 + vv
        bx = m01 * v + m02
        by = m11 * v + m12
        orow = out[vv]
        u = 0
        while u < out_w:
            u1 = min(u + _CHUNK, out_w)
            y0 = int(math.floor(m10 * u + by))
            if int(math.floor(m10 * (u1 - 1) + by)) != y0:
                # the run crosses a source row: end it where y(u) leaves [y0, y0 + 1)
                edge = y0 + 1.0 if m10 > 0.0 else float(y0)
                e = min(max(int(math.ceil((edge - by) / m10)), u + 1), u1)
                while e > u + 1 and int(math.floor(m10 * (e - 1) + by)) != y0:
                    e -= 1
                u1 = e
            xa = m00 * u + bx
            xb = m00 * (u1 - 1) + bx
            if y0 >= 2 and y0 + 3 < h and min(xa, xb) >= -0.5 and max(xa, xb) <= src_w - 0.5:
                r0 = parts[y0 - 2 - row0]
                r1 = parts[y0 - 1 - row0]
                r2 = parts[y0 - row0]
                r3 = parts[y0 + 1 - row0]
                r4 = parts[y0 + 2 - row0]
                r5 = parts[y0 + 3 - row0]
                for k in range(u, u1):
                    t = (m10 * k + by - y0) * _LUT_RES
                    i = min(int(t), _LUT_RES - 1)
                    f = t - i
                    w0 = lut[i, 0] + (lut[i + 1, 0] - lut[i, 0]) * f
                    w1 = lut[i, 1] + (lut[i + 1, 1] - lut[i, 1]) * f
                    w2 = lut[i, 2] + (lut[i + 1, 2] - lut[i, 2]) * f
                    w3 = lut[i, 3] + (lut[i + 1, 3] - lut[i, 3]) * f
                    w4 = lut[i, 4] + (lut[i + 1, 4] - lut[i, 4]) * f
                    w5 = lut[i, 5] + (lut[i + 1, 5] - lut[i, 5]) * f
                    sp = (
                        w0 * r0[k, 0] + w1 * r1[k, 1] + w2 * r2[k, 0]
                        + w3 * r3[k, 0] + w4 * r4[k, 1] + w5 * r5[k, 0]
                    )  # fmt: skip
                    sn = -(
                        w0 * r0[k, 1] + w1 * r1[k, 0] + w2 * r2[k, 1]
                        + w3 * r3[k, 1] + w4 * r4[k, 0] + w5 * r5[k, 1]
                    )  # fmt: skip
                    wp = (
                        w0 * r0[k, 2] + w1 * (1.0 - r1[k, 2]) + w2 * r2[k, 2]
                        + w3 * r3[k, 2] + w4 * (1.0 - r4[k, 2]) + w5 * r5[k, 2]
                    )  # fmt: skip
                    wn = wp - (w0 + w1 + w2 + w3 + w4 + w5)
                    c = 1.0
                    if clamp:  # as _clamped, without branches
                        tt = min(max((sn / sp - th) * inv, 0.0), 1.0)
                        c = 1.0 - tt * tt
                    den = wp - c * wn
                    res = (sp - c * sn) / den
                    if den == 0.0 or (clamp and sp == 0.0):
                        res = 0.0
                    orow[k] = res
                u = u1
                continue
            wy = np.empty(6)
            for k in range(u, u1):
                x = m00 * k + bx
                y = m10 * k + by
                if not (x >= -0.5 and x <= src_w - 0.5 and y >= -0.5 and y <= h - 0.5):
                    orow[k] = fill
                    continue
                yi = int(math.floor(y))
                _lut_weights(y - yi, lut, wy)
                sp = 0.0
                sn = 0.0
                wp = 0.0
                wn = 0.0
                for j in range(6):
                    yy = min(max(yi + j - 2, 0), h - 1) - row0
                    ly = wy[j]
                    p = parts[yy, k, 0]
                    n = parts[yy, k, 1]
                    q = parts[yy, k, 2]
                    if j == 1 or j == 4:
                        sp += ly * n
                        sn -= ly * p
                        wp += ly * (1.0 - q)
                        wn -= ly * q
                    else:
                        sp += ly * p
                        sn -= ly * n
                        wp += ly * q
                        wn -= ly * (1.0 - q)
                orow[k] = _clamped(sp, sn, wp, wn, th)
            u = u1


def _separable_shear(m: np.ndarray) -> float | None:
    """The shear tan θ of the two-pass decomposition of ``m``, or None when ``m`` is not
    an affine map the separable kernel can take."""
    if not np.array_equal(m[2], [0.0, 0.0, 1.0]) or m[1, 1] == 0.0:
        return None
    return float(m[0, 1] / m[1, 1])


_BAND_ROWS = 64  # output rows resampled together by the separable kernel


def _band_sources(m: np.ndarray, v0: int, v1: int, out_w: int, h: int) -> tuple[int, int]:
    """The source rows [lo, hi) that output rows v0..v1-1 read: taps -2..+3 around where
    their pixels fall (y is linear: its extremes are at the band's corners), one row more
    each side for rounding, within the frame (whose edge rows repeat)."""
    d, e, f = m[1]
    ys = [d * u + e * v + f for u in (0, out_w - 1) for v in (v0, v1 - 1)]
    lo = min(max(math.floor(min(ys)) - 3, 0), h - 1)
    hi = max(min(math.floor(max(ys)) + 5, h), lo + 1)
    return lo, hi


def _warp_separable(data, m, out_h, out_w, th, fill, lut):
    (a, b, c), (d, e, f) = m[0], m[1]
    # x along output column u, as a function of the source row y (v eliminated)
    al, be, ga = a - b * d / e, b / e, c - b * f / e
    h = data.shape[0]
    # By bands of output rows, the first pass keeping only the source rows a band reads
    # (rows shared with the band before are moved, the others computed): the whole frame's
    # (H, W, 3) parts were 48 MB at 2048², in every worker warping a frame.
    spans = [
        (
            v0,
            min(v0 + _BAND_ROWS, out_h),
            *_band_sources(m, v0, min(v0 + _BAND_ROWS, out_h), out_w, h),
        )
        for v0 in range(0, out_h, _BAND_ROWS)
    ]
    # the output from numpy, not numba: numpy asks for transparent huge pages, and a fresh
    # 2048² frame faults in ~5 times faster so (see pixel_kernels)
    buf = np.empty((max(hi - lo for _, _, lo, hi in spans), out_w, 3), np.float32)
    out = np.empty((out_h, out_w), np.float32)
    held = (0, 0)  # source rows in buf[: held[1] - held[0]]
    for v0, v1, lo, hi in spans:
        keep = (max(lo, held[0]), min(hi, held[1]))
        if keep[0] < keep[1]:  # numpy copies overlapping rows as if through a temporary
            buf[keep[0] - lo : keep[1] - lo] = buf[keep[0] - held[0] : keep[1] - held[0]]
            todo = [(lo, keep[0]), (keep[1], hi)]
        else:
            todo = [(lo, hi)]
        for r0, r1 in todo:
            if r1 > r0:
                _rows_pass(data, al, be, ga, lut, buf[r0 - lo : r1 - lo], r0)
        _columns_pass(buf[: hi - lo], lo, h, m, v0, data.shape[1], th, fill, lut, out[v0:v1])
        held = (lo, hi)
    return out


@njit(
    cache=True,
    parallel=True,
    nogil=True,
    export=["void(f4[:, ::1], f8[:, ::1], f8, f8, f8[:, ::1], f4[:, ::1])"],
)
def _warp_matrix_into(data, m, th, fill, lut, out):
    out_h, out_w = out.shape
    for r in prange(out_h):
        wx = np.empty(6)
        wy = np.empty(6)
        for c in range(out_w):
            den = m[2, 0] * c + m[2, 1] * r + m[2, 2]
            x = (m[0, 0] * c + m[0, 1] * r + m[0, 2]) / den
            y = (m[1, 0] * c + m[1, 1] * r + m[1, 2]) / den
            out[r, c] = _sample(data, x, y, th, wx, wy, fill, lut)


@njit(
    cache=True,
    parallel=True,
    nogil=True,
    export=["void(f4[:, ::1], f8[:, ::1], f8[:, ::1], f8, f8, f8[:, ::1], f4[:, ::1])"],
)
def _warp_coords_into(data, xs, ys, th, fill, lut, out):
    out_h, out_w = xs.shape
    for r in prange(out_h):
        wx = np.empty(6)
        wy = np.empty(6)
        for c in range(out_w):
            out[r, c] = _sample(data, xs[r, c], ys[r, c], th, wx, wy, fill, lut)


def _warp_matrix(data, m, out_h, out_w, th, fill, lut):
    out = np.empty((out_h, out_w), np.float32)
    _warp_matrix_into(data, m, th, fill, lut, out)
    return out


def _warp_coords(data, xs, ys, th, fill, lut):
    out = np.empty(xs.shape, np.float32)
    _warp_coords_into(data, xs, ys, th, fill, lut, out)
    return out


def _channels(data: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim == 3 and arr.shape[0] == 3:
        return arr, True
    raise ValueError(f"image must be (H, W) or (3, H, W); got shape {arr.shape}")


def warp(
    data: np.ndarray,
    matrix: np.ndarray | None = None,
    coords: tuple[np.ndarray, np.ndarray] | None = None,
    out_shape: tuple[int, int] | None = None,
    clamp: float | None = DEFAULT_CLAMP,
    fill: float = 0.0,
    separable: bool | None = None,
) -> np.ndarray:
    """Resample ``data`` with Lanczos-3.

    Parameters
    ----------
    data : (H, W) or (3, H, W) float array.
    matrix : 3×3 homogeneous matrix taking *output* pixel (x, y, 1) to *input* coordinates
        (affine when the last row is [0, 0, 1]).
    coords : instead of ``matrix``, the input coordinates ``(xs, ys)`` of every output pixel,
        two (H', W') arrays (used for thin-plate-spline transforms).
    out_shape : (H', W') of the output; default the input's (ignored with ``coords``).
    clamp : clamping threshold in [0, 1] (lower = stronger deringing); None disables it.
    fill : value of output pixels whose source lies outside the input.
    separable : two 1-D passes (True) or the 2-D kernel (False); None (default) takes the
        two passes for affine matrices whose shear is at most ``MAX_SEPARABLE_SHEAR``.
        Ignored with ``coords``.

    Returns
    -------
    float32 array, (H', W') or (3, H', W').
    """
    chans, colour = _channels(data)
    th = -1.0 if clamp is None else float(clamp)
    if clamp is not None and not 0.0 <= th <= 1.0:
        raise ValueError(f"clamp must be in [0, 1] or None; got {clamp}")
    if (matrix is None) == (coords is None):
        raise ValueError("give exactly one of matrix= or coords=")
    outs = []
    if matrix is not None:
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 3):
            raise ValueError(f"matrix must be 3x3; got shape {m.shape}")
        oh, ow = out_shape if out_shape is not None else chans.shape[1:]
        shear = _separable_shear(m)
        if separable is None:
            separable = shear is not None and abs(shear) <= MAX_SEPARABLE_SHEAR
        elif separable and shear is None:
            raise ValueError("the separable kernel needs an affine matrix with m[1, 1] != 0")
        kernel = _warp_separable if separable else _warp_matrix
        for ch in chans:
            outs.append(
                _on_pedestal(
                    ch, th, fill, lambda src, f: kernel(src, m, int(oh), int(ow), th, f, _LUT)
                )
            )
    else:
        xs = np.ascontiguousarray(coords[0], dtype=np.float64)
        ys = np.ascontiguousarray(coords[1], dtype=np.float64)
        if xs.shape != ys.shape or xs.ndim != 2:
            raise ValueError(f"coords must be two equal 2-D arrays; got {xs.shape}, {ys.shape}")
        for ch in chans:
            outs.append(
                _on_pedestal(ch, th, fill, lambda src, f: _warp_coords(src, xs, ys, th, f, _LUT))
            )
    return np.stack(outs) if colour else outs[0]


def _on_pedestal(ch: np.ndarray, th: float, fill: float, resample: Any) -> np.ndarray:
    """``resample(source, fill)`` of one channel, on a pedestal when it holds negative
    values (``_non_negative``), the pedestal removed from the result in place."""
    src, lo = _non_negative(np.ascontiguousarray(ch), th)
    out = resample(src, fill - lo)
    if lo:
        out += np.float32(lo)
    return out


def _non_negative(ch: np.ndarray, th: float) -> tuple[np.ndarray, float]:
    """The channel and the level ``lo`` it was lowered by (0: as given) so that all its
    values are positive, when clamping is on. The clamping sorts the taps by the sign of their
    product (PixInsight's, whose pixels are never negative), so a negative pixel passes for
    a negative lobe: a calibrated frame with a sky near zero came out with its negatives
    gone, its mean up (zero-mean noise: 0 -> 0.75 σ) and values of 1e14 where a pixel's
    whole neighbourhood was negative. Warped with a pedestal (the ImageCalibration users'
    output pedestal), removed after: the same resampling as PixInsight's of that pedestal."""
    if th < 0 or not ch.size:
        return ch, 0.0  # without clamping the interpolation is linear: any level is fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all NaN
        lo = float(np.nanmin(ch))
    if not lo < 0:
        return ch, 0.0
    lo *= 2.0  # the lowest pixel above zero too: a zero product has no sign to sort by
    return ch - np.float32(lo), lo


def lanczos3_reference(data: np.ndarray, x: float, y: float) -> float:
    """Plain, slow Lanczos-3 value at one point (no clamping, weights normalised to sum 1)
    — a test oracle."""
    h, w = data.shape
    x0, y0 = math.floor(x), math.floor(y)
    total = 0.0
    wsum = 0.0
    for i in range(y0 - 2, y0 + 4):
        for j in range(x0 - 2, x0 + 4):
            tx, ty = x - j, y - i

            def lz(t: float) -> float:
                if t == 0:
                    return 1.0
                if abs(t) >= 3:
                    return 0.0
                return 3 * math.sin(math.pi * t) * math.sin(math.pi * t / 3) / (math.pi * t) ** 2

            v = data[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]
            total += v * lz(tx) * lz(ty)
            wsum += lz(tx) * lz(ty)
    return total / wsum
