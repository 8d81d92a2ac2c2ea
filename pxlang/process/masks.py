"""Masks: RangeSelection, StarMask and ColorMask equivalents; each mask is float32 (H, W), [0, 1].

- ``range_mask``: 1 inside [low, high] (of CIE L* for a colour image), with linear ramps of
  width ``fuzziness·(high − low)/2`` inside each limit, then a Gaussian blur of σ = smoothness.
- ``star_mask``: stars detected by ``sep`` above ``threshold`` × the noise σ on the sum of
  the first three starlet layers (nebulosity and gradients are larger); objects larger than
  2^scale pixels are dropped; each star's ellipse (``size`` × its RMS radii) is set to 1,
  grown by ``grow`` pixels and softened by a Gaussian of σ = ``smoothness``.
- ``color_mask``: the ColorMask script (R. Stevenson): HSV hue within the colour's range
  (red 300°–60°, yellow 0°–120°, green 60°–180°, cyan 120°–240°, blue 180°–300°, magenta
  240°–360°, or any (h0, h1) in degrees), weighted by a triangle peaking mid-range
  (``strength`` 1 gives a flat top), times CIE c* (chrominance), then blurred by removing the
  first ``blur`` starlet layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from . import color, wavelets

HUES = {
    "red": (300.0, 60.0),
    "yellow": (0.0, 120.0),
    "green": (60.0, 180.0),
    "cyan": (120.0, 240.0),
    "blue": (180.0, 300.0),
    "magenta": (240.0, 360.0),
}


def _gray(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[0] == 3:
        return color.lightness(arr)
    raise ValueError(f"an image is (H, W) or (3, H, W); got shape {arr.shape}")


def range_mask(
    image: np.ndarray,
    low: float = 0.0,
    high: float = 1.0,
    fuzziness: float = 0.0,
    smoothness: float = 0.0,
    invert: bool = False,
) -> np.ndarray:
    """RangeSelection (see module doc)."""
    if not 0 <= low <= high <= 1:
        raise ValueError(f"need 0 ≤ low ≤ high ≤ 1, got low={low:g}, high={high:g}")
    if not 0 <= fuzziness <= 1:
        raise ValueError(f"fuzziness must be in [0, 1], got {fuzziness:g}")
    if smoothness < 0:
        raise ValueError(f"smoothness must be ≥ 0, got {smoothness:g}")
    x = _gray(image)
    inside = (x >= low) & (x <= high)
    m = inside.astype(np.float32)
    ramp = fuzziness * (high - low) / 2
    if ramp > 0:
        m = np.minimum(np.clip((x - low) / ramp, 0, 1), np.clip((high - x) / ramp, 0, 1)).astype(
            np.float32
        )
        m[~inside] = 0
    if smoothness > 0:
        m = ndimage.gaussian_filter(m, smoothness, mode="mirror")
    if invert:
        m = 1 - m
    return np.clip(m, 0, 1).astype(np.float32)


def star_mask(
    image: np.ndarray,
    scale: int = 5,
    threshold: float = 3.0,
    smoothness: float = 2.0,
    grow: int = 1,
    size: float = 3.0,
) -> np.ndarray:
    """StarMask (see module doc). ``threshold`` is the detection threshold in units of the
    background noise σ; ``scale``: objects larger than 2^scale pixels (nebulae, galaxies) are
    not stars; ``size``: each star's ellipse is drawn out to ``size`` × its RMS radii."""
    import sep

    if scale < 1 or scale > 10:
        raise ValueError(f"scale must be in 1..10 (stars up to 2^scale pixels), got {scale}")
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0 (units of noise σ), got {threshold:g}")
    x = np.ascontiguousarray(_gray(image), dtype=np.float64)
    # Detect on the small-scale starlet layers (structures up to 8 pixels): nebulosity and
    # gradients live in the larger scales and the residual, and stay out of the mask.
    ws = wavelets.starlet(x.astype(np.float32), min(scale, 3))
    sub = np.ascontiguousarray(sum(ws[:-1]), dtype=np.float64)
    rms = float(np.median(np.abs(sub - np.median(sub)))) / 0.6745 or float(np.std(sub)) or 1e-6
    old = sep.get_extract_pixstack()
    sep.set_extract_pixstack(max(old, x.size // 4))
    try:
        objs = sep.extract(sub, threshold, err=rms, minarea=3)
    finally:
        sep.set_extract_pixstack(old)
    m = np.zeros(x.shape, dtype=bool)
    if len(objs):
        compact = (objs["a"] * size <= 2**scale) & (objs["b"] > 0)
        objs = objs[compact]
        if len(objs):
            sep.mask_ellipse(m, objs["x"], objs["y"], objs["a"], objs["b"], objs["theta"], r=size)
    if grow > 0:
        m = ndimage.binary_dilation(m, iterations=int(grow))
    out = m.astype(np.float32)
    if smoothness > 0:
        out = ndimage.gaussian_filter(out, smoothness, mode="mirror")
    return np.clip(out, 0, 1).astype(np.float32)


def color_mask(
    image: np.ndarray,
    hue: str | Sequence[float] = "red",
    blur: int = 3,
    strength: float = 1.0,
    mode: str = "chrominance",
) -> np.ndarray:
    """ColorMask (see module doc). ``mode``: "chrominance" (× CIE c*), "lightness" (× CIE L*)
    or "linear" (hue weight only)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"color_mask needs a colour (3, H, W) image, got shape {arr.shape}")
    if isinstance(hue, str):
        key = hue.strip().lower()
        if key not in HUES:
            raise ValueError(
                f"unknown colour {hue!r}: use {', '.join(HUES)} or (h0, h1) in degrees"
            )
        h0, h1 = HUES[key]
    else:
        vals = [float(v) for v in hue]
        if len(vals) != 2:
            raise ValueError(f"a hue range is (h0, h1) in degrees, got {len(vals)} values")
        h0, h1 = vals
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength:g}")
    lo = (h0 % 360) / 360
    hi = 1.0 if h1 == 360 else (h1 % 360) / 360
    H = color.rgb_to_hsv(arr)[0].astype(np.float64)
    width = (hi - lo) % 1.0 or 1.0
    t = ((H - lo) % 1.0) / width  # 0..1 across the range, >1 outside
    inside = t <= 1
    tri = 1 - np.abs(2 * t - 1)  # 0 at the edges, 1 mid-range
    # strength 1: flat top (the script's ~mtf(x, 0)); 0.5: the plain triangle.
    bal = 1 - strength
    w = np.where(inside, _mtf_swapped(tri, bal), 0.0)
    m = mode.lower()
    if m == "chrominance":
        w = w * color.rgb_to_lch(arr)[1]
    elif m == "lightness":
        w = w * color.lightness(arr)
    elif m != "linear":
        raise ValueError(f"unknown mode {mode!r}: use chrominance, lightness or linear")
    w = w.astype(np.float32)
    if blur > 0:
        w = wavelets.starlet(w, int(blur))[-1]
    return np.clip(w, 0, 1).astype(np.float32)


def _mtf_swapped(x: np.ndarray, bal: float) -> np.ndarray:
    """``~mtf(x, bal)`` as the ColorMask script writes it, i.e. 1 − mtf(m=x, value=bal)."""
    from .stretch import mtf

    return 1 - mtf(x, bal)
