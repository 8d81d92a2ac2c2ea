"""Background: ABE/DBE-style gradient models, BackgroundNeutralization and ColorCalibration.

Gradient model (``background_model``): the image is cut into a grid of ``samples`` × ``samples``
boxes; each box's median is a sample unless the box is bright (median above the median of
all boxes by more than ``tolerance`` × their robust σ — nebulosity, galaxies) or holds too
many bright pixels (stars). Then either a 2-D polynomial of ``degree`` is least-squares
fitted with iterative 3σ rejection of samples (ABE), or — when ``points`` are given — the
boxes centred at those (x, y) pixels are sampled and a thin-plate-spline is interpolated
through them (DBE). Correction is "subtract" (additive gradients: light pollution) or
"divide" (multiplicative: vignetting); the result keeps the image's background level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _chans(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3 and arr.shape[0] == 3:
        return arr
    raise ValueError(f"an image is (H, W) or (3, H, W); got shape {arr.shape}")


def _poly_terms(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    return np.stack(
        [x**i * y**j for i in range(degree + 1) for j in range(degree + 1 - i)], axis=-1
    )


def _grid_samples(ch: np.ndarray, samples: int, tolerance: float):
    H, W = ch.shape
    ys = np.linspace(0, H, samples + 1).astype(int)
    xs = np.linspace(0, W, samples + 1).astype(int)
    cx, cy, val, bright = [], [], [], []
    for a, b in zip(ys[:-1], ys[1:], strict=True):
        for c, d in zip(xs[:-1], xs[1:], strict=True):
            box = ch[a:b, c:d]
            if box.size == 0:
                continue
            med = float(np.median(box))
            cx.append(0.5 * (c + d - 1))
            cy.append(0.5 * (a + b - 1))
            val.append(med)
            bright.append(
                float(np.mean(box > med + 3 * 1.4826 * np.median(np.abs(box - med)) + 1e-12))
            )
    val = np.array(val)
    med = np.median(val)
    sig = 1.4826 * np.median(np.abs(val - med)) or 1e-6
    ok = (val <= med + tolerance * sig * 3) & (np.array(bright) < 0.2)
    return np.array(cx)[ok], np.array(cy)[ok], val[ok]


def background_model(
    image: np.ndarray,
    degree: int = 4,
    samples: int = 16,
    tolerance: float = 1.0,
    points: Sequence[Sequence[float]] | None = None,
    box: int = 9,
) -> np.ndarray:
    """The background model (same shape as the image); see module doc."""
    chans = _chans(image)
    if not 0 <= degree <= 8:
        raise ValueError(f"degree must be in 0..8, got {degree}")
    if samples < 2:
        raise ValueError(f"samples must be ≥ 2 per side, got {samples}")
    H, W = chans.shape[1:]
    out = np.empty(chans.shape, dtype=np.float32)
    for k, ch in enumerate(chans):
        if points is not None:
            from scipy.interpolate import RBFInterpolator

            pts = np.array([[float(p[0]), float(p[1])] for p in points])
            if len(pts) < 3:
                raise ValueError(f"a DBE model needs at least 3 sample points, got {len(pts)}")
            r = box // 2
            vals = []
            for x, y in pts:
                if not (0 <= x < W and 0 <= y < H):
                    raise ValueError(f"sample point ({x:g}, {y:g}) is outside the {W}x{H} image")
                ix, iy = int(round(x)), int(round(y))
                vals.append(
                    float(np.median(ch[max(0, iy - r) : iy + r + 1, max(0, ix - r) : ix + r + 1]))
                )
            rbf = RBFInterpolator(
                pts / max(H, W), np.array(vals), kernel="thin_plate_spline", smoothing=1e-3
            )
            # evaluate on a coarse grid and interpolate up: the model is smooth by construction
            from scipy.interpolate import RectBivariateSpline

            ys = np.unique(np.r_[np.arange(0, H, max(1, H // 64)), H - 1])
            xs = np.unique(np.r_[np.arange(0, W, max(1, W // 64)), W - 1])
            gy, gx = np.meshgrid(ys, xs, indexing="ij")
            coarse = rbf(np.column_stack([gx.ravel(), gy.ravel()]) / max(H, W)).reshape(gy.shape)
            kx, ky = min(3, len(xs) - 1), min(3, len(ys) - 1)
            spline = RectBivariateSpline(ys, xs, coarse, kx=ky, ky=kx)
            out[k] = spline(np.arange(H), np.arange(W))
            continue
        cx, cy, val = _grid_samples(ch, samples, tolerance)
        nterms = (degree + 1) * (degree + 2) // 2
        if len(val) < nterms:
            raise ValueError(
                f"only {len(val)} background samples for a degree-{degree} model ({nterms} terms): "
                "lower degree, raise samples or raise tolerance"
            )
        s = 2.0 / max(H, W)
        A = _poly_terms(cx * s - 1, cy * s - 1, degree)
        keep = np.ones(len(val), dtype=bool)
        coef = np.zeros(nterms)
        for _ in range(5):
            coef, *_ = np.linalg.lstsq(A[keep], val[keep], rcond=None)
            res = val - A @ coef
            sig = 1.4826 * np.median(np.abs(res[keep])) or 1e-9
            new = np.abs(res) <= 3 * sig
            if new.sum() < nterms or np.array_equal(new, keep):
                break
            keep = new
        # Σ c_ab x^a y^b = Σ_b y^b · (Σ_a c_ab x^a): one outer product per power of y
        x = np.arange(W) * s - 1
        y = np.arange(H) * s - 1
        model = np.zeros((H, W))
        i = 0
        rows = [np.zeros(W) for _ in range(degree + 1)]
        for a in range(degree + 1):
            for b in range(degree + 1 - a):
                rows[b] += coef[i] * x**a
                i += 1
        for b in range(degree + 1):
            model += np.outer(y**b, rows[b])
        out[k] = model
    return out if np.asarray(image).ndim == 3 else out[0]


def subtract_background(
    image: np.ndarray,
    degree: int = 4,
    samples: int = 16,
    tolerance: float = 1.0,
    points: Sequence[Sequence[float]] | None = None,
    correction: str = "subtract",
) -> np.ndarray:
    """Remove the gradient: ``x − model + median(model)`` or ``x / model · median(model)``."""
    arr = np.asarray(image, dtype=np.float32)
    model = background_model(arr, degree, samples, tolerance, points)
    chans, mchans = _chans(arr), _chans(model)
    out = np.empty(chans.shape, dtype=np.float32)
    for k in range(len(chans)):
        level = float(np.median(mchans[k]))
        if correction == "subtract":
            out[k] = chans[k] - mchans[k] + level
        elif correction == "divide":
            if np.any(mchans[k] <= 0):
                raise ValueError('the background model reaches zero: use correction="subtract"')
            out[k] = chans[k] / mchans[k] * level
        else:
            raise ValueError(f'unknown correction {correction!r}: use "subtract" or "divide"')
    return out if arr.ndim == 3 else out[0]


def _reference_pixels(
    ref: np.ndarray, low: float, high: float, mask: np.ndarray | None
) -> np.ndarray:
    """Per channel, the reference pixels inside [low, high] on all channels (and the mask > 0.5)."""
    sel = np.all((ref >= low) & (ref <= high), axis=0)
    if mask is not None:
        sel &= mask > 0.5
    if np.count_nonzero(sel) < 16:
        raise ValueError(
            f"fewer than 16 reference pixels within [{low:g}, {high:g}]: "
            "widen the limits or choose another reference"
        )
    return sel


def neutralize_background(
    image: np.ndarray,
    reference: np.ndarray | None = None,
    low: float = 0.0,
    high: float = 0.1,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """BackgroundNeutralization: shift each channel so the reference background (median of
    reference pixels within [low, high], optionally inside ``mask``) is the same grey — the
    mean of the channels' backgrounds."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError("neutralize_background needs a colour (3, H, W) image")
    ref = arr if reference is None else np.asarray(reference, dtype=np.float32)
    if ref.shape != arr.shape:
        raise ValueError(f"the reference is {ref.shape} but the image is {arr.shape}")
    sel = _reference_pixels(ref, low, high, mask)
    bg = np.array([np.median(ref[c][sel]) for c in range(3)])
    target = bg.mean()
    return (arr + (target - bg)[:, None, None]).astype(np.float32)


def color_calibrate(
    image: np.ndarray,
    white: np.ndarray | None = None,
    background: np.ndarray | None = None,
    white_low: float = 0.0,
    white_high: float = 0.9,
    background_low: float = 0.0,
    background_high: float = 0.1,
    white_mask: np.ndarray | None = None,
    background_mask: np.ndarray | None = None,
) -> np.ndarray:
    """ColorCalibration: background b_c = median of the background reference; white w_c = mean
    of (white reference − b_c) over pixels within [white_low, white_high] (saturated pixels
    excluded); each channel becomes ``(x − b_c)·k_c + mean(b)`` with ``k_c = min(w)/w_c`` — the
    white reference turns neutral and no channel is scaled up (nothing new clips)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError("color_calibrate needs a colour (3, H, W) image")
    bref = arr if background is None else np.asarray(background, dtype=np.float32)
    wref = arr if white is None else np.asarray(white, dtype=np.float32)
    for name, r in (("background", bref), ("white", wref)):
        if r.shape != arr.shape:
            raise ValueError(f"the {name} reference is {r.shape} but the image is {arr.shape}")
    bsel = _reference_pixels(bref, background_low, background_high, background_mask)
    b = np.array([np.median(bref[c][bsel]) for c in range(3)])
    wsel = _reference_pixels(wref, white_low, white_high, white_mask)
    w = np.array([np.mean(wref[c][wsel] - b[c]) for c in range(3)])
    if np.any(w <= 0):
        raise ValueError("the white reference is not brighter than the background in every channel")
    k = w.min() / w
    return ((arr - b[:, None, None]) * k[:, None, None] + b.mean()).astype(np.float32)
