"""The starlet (à trous B3-spline) transform, MultiscaleLinearTransform sharpening and its noise
reduction, and a wavelet noise estimate.

The starlet transform: ``c₀ = image``, ``c_{j+1} = c_j ⊛ h_j`` with the B3 kernel
``[1, 4, 6, 4, 1]/16`` (separable) dilated by 2^j ("holes"), ``w_j = c_j − c_{j+1}``. The image is
exactly ``Σ w_j + c_n``. Boundaries are mirrored, as in PixInsight.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / 16.0


def _smooth_1d(arr: np.ndarray, axis: int, step: int) -> np.ndarray:
    n = arr.shape[axis]
    pad = 2 * step
    widths = [(0, 0)] * arr.ndim
    widths[axis] = (pad, pad)
    mode = "reflect" if n > 1 else "edge"
    p = np.pad(arr, widths, mode=mode)
    out = np.zeros_like(arr)
    for k, h in enumerate(B3):
        sl = [slice(None)] * arr.ndim
        sl[axis] = slice(k * step, k * step + n)
        out += h * p[tuple(sl)]
    return out


def smooth(arr: np.ndarray, scale: int) -> np.ndarray:
    """One à trous B3 smoothing step at dilation 2**scale (both image axes)."""
    step = 2**scale
    return _smooth_1d(_smooth_1d(arr, -1, step), -2, step)


def starlet(image: np.ndarray, layers: int) -> list[np.ndarray]:
    """Starlet transform of a 2-D image: ``[w_0, ..., w_{layers−1}, residual]`` (float32)."""
    c = np.asarray(image, dtype=np.float32)
    if c.ndim != 2:
        raise ValueError(f"starlet works on one 2-D channel, got shape {c.shape}")
    if layers < 1:
        raise ValueError(f"layers must be ≥ 1, got {layers}")
    out = []
    for j in range(layers):
        nxt = smooth(c, j)
        out.append(c - nxt)
        c = nxt
    out.append(c)
    return out


@lru_cache(maxsize=1)
def _noise_factors() -> tuple[float, ...]:
    # Standard deviation of each starlet layer for unit white Gaussian noise: the L2 norm of the
    # layer's impulse response (exact, computed once on a delta large enough for 8 layers).
    n = 1025
    delta = np.zeros((n, n), dtype=np.float32)
    delta[n // 2, n // 2] = 1.0
    ws = starlet(delta, 8)
    return tuple(float(np.sqrt(np.sum(w.astype(np.float64) ** 2))) for w in ws[:-1])


def noise_factor(layer: int) -> float:
    """σ of starlet layer ``layer`` for unit-σ white noise (0.8907, 0.2007, 0.0856, ...)."""
    f = _noise_factors()
    return f[layer] if layer < len(f) else f[-1] / 2 ** (layer - len(f) + 1)


def noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise σ estimated from the first starlet layer: MAD / 0.6745 / 0.8907.
    For a colour image, the mean over the channels."""
    arr = np.asarray(image, dtype=np.float32)
    chans = arr if arr.ndim == 3 else arr[None]
    sig = []
    for ch in chans:
        w0 = ch - smooth(ch, 0)
        sig.append(float(np.median(np.abs(w0 - np.median(w0)))) / 0.6745 / noise_factor(0))
    return float(np.mean(sig))


def _layer_values(
    values: float | Sequence[float] | None, layers: int, name: str, default: float
) -> list[float]:
    if values is None:
        return [default] * layers
    if np.ndim(values) == 0:
        return [float(values)] * layers  # type: ignore[arg-type]
    vals = [float(v) for v in values]  # type: ignore[union-attr]
    if len(vals) > layers:
        raise ValueError(f"{name} has {len(vals)} values but there are only {layers} layers")
    return vals + [default] * (layers - len(vals))


def _apply_target(image: np.ndarray, target: str, fn) -> np.ndarray:
    """Run ``fn`` on each channel (target "RGBK") or on CIE L* only (target "L")."""
    from . import color

    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        return fn(arr)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"an image is (H, W) or (3, H, W); got shape {arr.shape}")
    t = target.upper()
    if t in ("L", "L*", "CIEL"):
        cs = color.color_system()
        lab = cs.rgb_to_lab(arr.astype(np.float64))
        lab[0] = fn(lab[0].astype(np.float32))
        return cs.lab_to_rgb(lab).astype(np.float32)
    if t in ("RGBK", "RGB", "K"):
        return np.stack([fn(c) for c in arr])
    raise ValueError(f'unknown target {target!r}: use "L" (CIE L*) or "RGBK" (each channel)')


def mlt_sharpen(
    image: np.ndarray,
    layers: int = 4,
    bias: float | Sequence[float] | None = (0.0, 0.012, 0.05, 0.075),
    deringing: bool = True,
    dark: float = 0.01,
    bright: float = 0.0,
    target: str = "L",
) -> np.ndarray:
    """MultiscaleLinearTransform sharpening: layer j is multiplied by (1 + bias_j), the
    residual kept. Bias 0 on every layer is the identity.

    Deringing (our definition, simpler than PixInsight's): the change a pixel receives is
    limited to ``−dark`` (how much darker it may become, in data units) and, when ``bright`` > 0,
    to ``+bright``. This stops black halos around stars while letting detail brighten.
    """
    b = _layer_values(bias, layers, "bias", 0.0)
    if any(v < -1 for v in b):
        raise ValueError(f"bias values must be ≥ −1 (−1 removes a layer), got {b}")
    if dark < 0 or bright < 0:
        raise ValueError("dark and bright deringing amounts must be ≥ 0")

    def run(ch: np.ndarray) -> np.ndarray:
        if all(v == 0 for v in b):
            return ch.copy()
        ws = starlet(ch, layers)
        out = ws[-1].copy()
        for j in range(layers):
            out += np.float32(1.0 + b[j]) * ws[j]
        if deringing:
            delta = out - ch
            if dark > 0:
                np.maximum(delta, np.float32(-dark), out=delta)
            if bright > 0:
                np.minimum(delta, np.float32(bright), out=delta)
            out = ch + delta
        return out

    return _apply_target(image, target, run)


def mlt_denoise(
    image: np.ndarray,
    layers: int = 4,
    thresholds: float | Sequence[float] | None = (3.0, 2.0, 1.0, 0.5),
    amounts: float | Sequence[float] | None = (1.0, 1.0, 1.0, 1.0),
    target: str = "RGBK",
) -> np.ndarray:
    """MultiscaleLinearTransform noise reduction: soft thresholding of each layer at
    ``threshold_j · σ · k_j`` (σ the image noise, k_j the layer's noise factor), blended with
    the original coefficients by ``amount_j`` (0 = untouched, 1 = fully thresholded)."""
    t = _layer_values(thresholds, layers, "thresholds", 0.0)
    a = _layer_values(amounts, layers, "amounts", 0.0)
    if any(not 0 <= v <= 1 for v in a):
        raise ValueError(f"amounts must be in [0, 1], got {a}")

    def run(ch: np.ndarray) -> np.ndarray:
        sigma = noise_sigma(ch)
        ws = starlet(ch, layers)
        out = ws[-1].copy()
        for j in range(layers):
            w = ws[j]
            k = np.float32(t[j] * sigma * noise_factor(j))
            shrunk = np.sign(w) * np.maximum(np.abs(w) - k, 0)
            out += (1 - np.float32(a[j])) * w + np.float32(a[j]) * shrunk
        return out

    return _apply_target(image, target, run)
