"""Stretches: the midtones transfer function, HistogramTransformation, the STF auto-stretch and
CurvesTransformation.

Formulas (PixInsight):

- ``mtf(m, x) = (m − 1)·x / ((2m − 1)·x − m)``, 0 for x ≤ 0, 1 for x ≥ 1.
- HistogramTransformation with shadows c0, highlights c1, midtones m (and output range r0, r1):
  ``y = r0 + (r1 − r0)·mtf(m, (clip(x, c0, c1) − c0) / (c1 − c0))``.
- ScreenTransferFunction auto-stretch (the AutoSTF script by J. Conejero): with per-channel
  median ``med`` and normalised MAD ``σ = 1.4826·MAD``, shadows clipping ``C = −2.8`` and
  target background ``B = 0.25``: ``c0 = clip(med + C·σ, 0, 1)`` (0 when σ = 0),
  ``m = mtf(B, med − c0)``, ``c1 = 1``. Linked: c0 is the mean of the channels' c0 and m uses
  the mean median. Channels whose median is above 0.5 are treated as inverted:
  ``c1 = clip(med − C·σ, 0, 1)``, ``m = mtf(c1 − med, B)``, ``c0 = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

StfParams = list[tuple[float, float, float]]  # per channel: (shadows c0, midtones m, highlights c1)


def mtf(m: float | np.ndarray, x: float | np.ndarray) -> np.ndarray:
    """PixInsight's midtones transfer function, vectorised over ``m`` and ``x``.

    float32 images give float32 (scalars and other arrays float64), with two temporaries of
    the image's size: the float64 temporaries of a master preview (~30 MB for a million
    pixels) had become the peak RAM of a 1024² workflow run."""
    m, x = np.asarray(m), np.asarray(x)
    arrays = [a for a in (m, x) if a.ndim > 0]
    single = bool(arrays) and all(a.dtype == np.float32 for a in arrays)
    dt = np.float32 if single else np.float64
    m, x = m.astype(dt, copy=False), x.astype(dt, copy=False)
    den = np.asarray((2 * m - 1) * x - m)
    y = np.asarray((m - 1) * x)
    zero = den == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(y, den, out=y, where=~zero)
    y[zero] = 0.5  # only where m = 0 and x = 0, or m = 1 and x = 1: replaced just below
    del den, zero
    np.copyto(y, dt(0.0), where=x <= 0)
    np.copyto(y, dt(1.0), where=x >= 1)
    return y


def _channels(data: np.ndarray) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3 and arr.shape[0] == 3:
        return arr
    raise ValueError(f"an image is (H, W) or (3, H, W); got shape {arr.shape}")


def median_mad(channel: np.ndarray) -> tuple[float, float]:
    """Median and median absolute deviation (raw, not normalised) of finite pixels."""
    v = np.asarray(channel, dtype=np.float32).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("the image has no finite pixels")
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    return med, mad


def stf_params(
    data: np.ndarray, shadows_clip: float = -2.8, target_bg: float = 0.25, linked: bool = True
) -> StfParams:
    """The STF auto-stretch parameters, one ``(c0, m, c1)`` per channel (see module doc)."""
    if not 0 < target_bg < 1:
        raise ValueError(f"target_bg must be in (0, 1), got {target_bg}")
    chans = _channels(data)
    stats = [median_mad(c) for c in chans]
    med = [s[0] for s in stats]
    sig = [1.4826 * s[1] for s in stats]
    n = len(chans)
    if linked:
        if sum(1 for v in med if v > 0.5) < n:
            c0 = sum(med[c] + shadows_clip * sig[c] for c in range(n) if 1 + sig[c] != 1)
            c0 = min(max(c0 / n, 0.0), 1.0)
            m = float(mtf(target_bg, sum(med) / n - c0))
            return [(c0, m, 1.0)] * n
        c1 = sum((med[c] - shadows_clip * sig[c]) if 1 + sig[c] != 1 else 1.0 for c in range(n))
        c1 = min(max(c1 / n, 0.0), 1.0)
        m = float(mtf(c1 - sum(med) / n, target_bg))
        return [(0.0, m, c1)] * n
    out: StfParams = []
    for c in range(n):
        if med[c] < 0.5:
            c0 = min(max(med[c] + shadows_clip * sig[c], 0.0), 1.0) if 1 + sig[c] != 1 else 0.0
            out.append((c0, float(mtf(target_bg, med[c] - c0)), 1.0))
        else:
            c1 = min(max(med[c] - shadows_clip * sig[c], 0.0), 1.0) if 1 + sig[c] != 1 else 1.0
            out.append((0.0, float(mtf(c1 - med[c], target_bg)), c1))
    return out


def _per_channel(value: float | Sequence[float], n: int, name: str) -> list[float]:
    if np.ndim(value) == 0:
        return [float(value)] * n  # type: ignore[arg-type]
    vals = [float(v) for v in value]  # type: ignore[union-attr]
    if len(vals) == n:
        return vals
    if len(vals) == 1:
        return vals * n
    raise ValueError(f"{name} needs one value or one per channel ({n}), got {len(vals)}")


def histogram_transform(
    data: np.ndarray,
    shadows: float | Sequence[float] = 0.0,
    midtones: float | Sequence[float] = 0.5,
    highlights: float | Sequence[float] = 1.0,
    low: float = 0.0,
    high: float = 1.0,
) -> np.ndarray:
    """HistogramTransformation: clip to [shadows, highlights], rescale, apply ``mtf(midtones)``,
    expand to [low, high]. Parameters are scalars or one per channel."""
    arr = np.asarray(data)
    chans = _channels(arr)
    n = len(chans)
    c0 = _per_channel(shadows, n, "shadows")
    m = _per_channel(midtones, n, "midtones")
    c1 = _per_channel(highlights, n, "highlights")
    out = np.empty(chans.shape, dtype=np.float32)
    for c in range(n):
        if not 0 <= c0[c] < c1[c] <= 1:
            raise ValueError(
                f"need 0 ≤ shadows < highlights ≤ 1, got shadows={c0[c]:g}, highlights={c1[c]:g}"
            )
        if not 0 <= m[c] <= 1:
            raise ValueError(f"midtones must be in [0, 1], got {m[c]:g}")
        x = (np.clip(chans[c], c0[c], c1[c]) - c0[c]) / (c1[c] - c0[c])
        out[c] = low + (high - low) * mtf(m[c], x)
    return out if arr.ndim == 3 else out[0]


def auto_stretch(
    data: np.ndarray, shadows_clip: float = -2.8, target_bg: float = 0.25, linked: bool = True
) -> np.ndarray:
    """HistogramTransformation with the STF auto-stretch parameters (the guide's "drag the
    STF to HT")."""
    p = stf_params(data, shadows_clip, target_bg, linked)
    return histogram_transform(data, [q[0] for q in p], [q[1] for q in p], [q[2] for q in p])


def curve(points: Sequence[Sequence[float]], interpolation: str = "akima"):
    """A transfer curve through ``points`` [(x, y), ...] in [0, 1]; (0, 0) and (1, 1) are added
    when missing, as in CurvesTransformation. Akima subsplines by default (PixInsight's default),
    or "cubic" (natural cubic spline) or "linear". Returns a function of an array, clipped to
    [0, 1]."""
    from scipy.interpolate import Akima1DInterpolator, CubicSpline

    pts = sorted((float(p[0]), float(p[1])) for p in points)
    for x, y in pts:
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError(f"curve points must lie in [0, 1]², got ({x:g}, {y:g})")
    if not pts or pts[0][0] > 0:
        pts.insert(0, (0.0, 0.0))
    if pts[-1][0] < 1:
        pts.append((1.0, 1.0))
    xs = np.array([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    if np.any(np.diff(xs) <= 0):
        raise ValueError("curve points need distinct x values")
    kind = interpolation.lower()
    if kind == "linear" or len(xs) == 2:
        return lambda v: np.clip(np.interp(v, xs, ys), 0, 1)
    if kind == "akima":
        f = Akima1DInterpolator(xs, ys) if len(xs) > 2 else None
        # Akima needs ≥ 3 points: scipy extrapolates linearly outside; we clip anyway.
        return lambda v: np.clip(f(np.clip(v, 0, 1)), 0, 1)
    if kind == "cubic":
        g = CubicSpline(xs, ys, bc_type="natural")
        return lambda v: np.clip(g(np.clip(v, 0, 1)), 0, 1)
    raise ValueError(f"unknown interpolation {interpolation!r}: use akima, cubic or linear")


def curves_transform(
    data: np.ndarray,
    points: Sequence[Sequence[float]],
    channel: str = "K",
    interpolation: str = "akima",
) -> np.ndarray:
    """CurvesTransformation on one component: K (all channels), R, G, B, L (CIE L*), a, b,
    c (CIE c*), S (HSV saturation, with CIE L* kept)."""
    from . import color

    arr = np.asarray(data, dtype=np.float32)
    f = curve(points, interpolation)
    ch = channel.strip()
    if ch.upper() in ("K", "RGB", "RGB/K"):
        return f(arr).astype(np.float32)
    if arr.ndim != 3:
        raise ValueError(
            f'channel {channel!r} needs a colour image; on a mono image use channel="K"'
        )
    if ch in ("R", "G", "B"):
        out = arr.copy()
        i = "RGB".index(ch)
        out[i] = f(arr[i])
        return out
    cs = color.color_system()
    if ch in ("L", "a", "b"):
        lab = cs.rgb_to_lab(arr.astype(np.float64))
        i = "Lab".index(ch)
        lab[i] = f(lab[i])
        return cs.lab_to_rgb(lab).astype(np.float32)
    if ch == "c":
        lch = cs.rgb_to_lch(arr.astype(np.float64))
        lch[1] = f(lch[1])
        return cs.lch_to_rgb(lch).astype(np.float32)
    if ch == "S":
        hsv = color.rgb_to_hsv(arr)
        L = cs.rgb_to_lab(arr.astype(np.float64))[0]
        hsv[1] = f(hsv[1])
        rgb = color.hsv_to_rgb(hsv).astype(np.float64)
        lab = cs.rgb_to_lab(rgb)
        lab[0] = L
        return cs.lab_to_rgb(lab).astype(np.float32)
    raise ValueError(f"unknown curve channel {channel!r}: use K, R, G, B, L, a, b, c or S")
