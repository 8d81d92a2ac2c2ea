"""Superbias (PixInsight's Superbias process): a master bias without its random noise.

A CMOS/CCD bias is a smooth large-scale pedestal, plus a column (and sometimes row) pattern
fixed in the sensor, plus random read noise. A master of N frames keeps 1/sqrt(N) of the
noise. Superbias keeps only the structure:

1. the large-scale component L: the smooth residual of a multiscale (starlet, a trous B3
   spline) transform with ``layers`` layers, i.e. structures larger than ~2^layers pixels;
2. the column pattern: a trimmed mean down each column of ``bias - L`` (trimming
   ``trim`` of the values at each end, so that hot pixels and cosmic rays do not leak in);
3. optionally the row pattern, likewise along rows of what is left.

``superbias = L + columns (+ rows)``: each column value averages H pixels, so the noise left
is ~sigma/sqrt(N*H): a 20-frame superbias behaves like a master of thousands of frames.
"""

from __future__ import annotations

import numpy as np

_B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _smooth_axis(x: np.ndarray, axis: int, step: int) -> np.ndarray:
    """One a trous B3-spline pass along ``axis`` with holes of ``step`` (mirrored edges)."""
    n = x.shape[axis]
    pad = 2 * step
    if pad >= n:  # mirror padding needs pad < n: clamp the scale to the image
        pad = n - 1
        step = max(1, pad // 2)
        pad = 2 * step
    if x.ndim == 2 and x.dtype == np.float64:
        from .pixel_kernels import atrous_b3

        # the same sums without the padded copy (~5x faster: 2 s of a 2048² superbias)
        return atrous_b3(np.ascontiguousarray(x), axis % 2, step)
    widths = [(0, 0)] * x.ndim
    widths[axis] = (pad, pad)
    xp = np.pad(x, widths, mode="symmetric")
    out = np.zeros_like(x)
    for k, h in zip(range(-2, 3), _B3):
        start = pad + k * step
        sl = [slice(None)] * x.ndim
        sl[axis] = slice(start, start + n)
        out += h * xp[tuple(sl)]
    return out


def large_scale(image: np.ndarray, layers: int) -> np.ndarray:
    """The smooth residual of a starlet transform with ``layers`` layers."""
    c = np.asarray(image, dtype=np.float64)
    for j in range(layers):
        step = 2**j
        c = _smooth_axis(_smooth_axis(c, -1, step), -2, step)
    return c


def _trimmed_mean(x: np.ndarray, axis: int, trim: float) -> np.ndarray:
    n = x.shape[axis]
    k = int(trim * n)
    if k == 0 or n - 2 * k < 1:
        return np.nanmean(x, axis=axis)
    # the values between the k-th and the (n-k)-th, unordered: all a mean needs
    s = np.partition(x, (k, n - k - 1), axis=axis)
    sl = [slice(None)] * x.ndim
    sl[axis] = slice(k, n - k)
    return np.nanmean(s[tuple(sl)], axis=axis)


def superbias(
    master_bias: np.ndarray,
    layers: int = 7,
    columns: bool = True,
    rows: bool = False,
    trim: float = 0.2,
) -> np.ndarray:
    """A superbias from a master bias (module docstring). Mono (H, W) or colour (3, H, W)."""
    bias = np.asarray(master_bias, dtype=np.float32)
    if bias.ndim == 3:
        return np.stack([superbias(c, layers, columns, rows, trim) for c in bias])
    if bias.ndim != 2:
        raise ValueError(f"superbias takes an image (H, W) or (3, H, W); got shape {bias.shape}")
    if not 1 <= int(layers) <= 12:
        raise ValueError(f"layers must be 1-12; got {layers}")
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5); got {trim}")
    if not columns and not rows:
        raise ValueError("superbias needs columns=True or rows=True")
    if not np.isfinite(bias).any():
        raise ValueError("the master bias holds no data: every pixel is NaN")
    filled = np.where(np.isfinite(bias), bias, np.nanmedian(bias)).astype(np.float64)
    # The large scale comes from the bias without its column/row pattern, so that a strong
    # pattern does not blur into it; the pattern is estimated against a first smooth guess.
    ls = large_scale(filled, int(layers))
    out = ls.copy()
    if columns:
        col = _trimmed_mean(filled - ls, 0, trim)
        ls = large_scale(filled - col[None, :], int(layers))
        col = _trimmed_mean(filled - ls, 0, trim)
        out = ls + col[None, :]
    if rows:
        row = _trimmed_mean(filled - out, 1, trim)
        out = out + row[:, None]
    return out.astype(np.float32)
