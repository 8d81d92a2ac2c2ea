"""PixelMath's image generators: convolutions, morphology, geometry and blends over whole
images. Each takes (H, W) or (3, H, W) float32 arrays and returns a new array of the same
shape; colour images are filtered channel by channel."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .filter_names import BLEND_OPS, KERNELS, STRUCTURES  # noqa: F401


def _per_channel(img: np.ndarray, fn) -> np.ndarray:  # noqa: ANN001
    img = np.asarray(img, np.float32)
    if img.ndim == 3:
        return np.stack([fn(c) for c in img]).astype(np.float32, copy=False)
    return np.asarray(fn(img), np.float32)


def _odd(n: float, what: str = "size") -> int:
    k = int(n)
    if k != n or k < 1 or k % 2 == 0:
        raise ValueError(f"the {what} must be an odd whole number ≥ 1, got {n:g}")
    return k


def footprint(n: int, structure: str = "square") -> np.ndarray:
    """A boolean n×n structuring element of PixInsight's shapes."""
    n = _odd(n)
    c = n // 2
    yy, xx = np.mgrid[-c : c + 1, -c : c + 1]
    if structure == "square":
        return np.ones((n, n), bool)
    if structure == "circular":
        return xx**2 + yy**2 <= c * c + c  # the discrete disc PixInsight draws
    if structure == "orthogonal":
        return (xx == 0) | (yy == 0)
    if structure == "diagonal":
        return np.abs(xx) == np.abs(yy)
    if structure == "star":
        return (xx == 0) | (yy == 0) | (np.abs(xx) == np.abs(yy))
    if structure == "threeway":
        return (xx == 0) | (yy == 0) | (xx == yy)
    raise ValueError(f"unknown structuring element '{structure}'; one of {', '.join(STRUCTURES)}")


def gaussian_kernel(
    sigma: float, rho: float = 1.0, theta: float = 0.0, eps: float = 0.01
) -> np.ndarray:
    """Normalised elliptical Gaussian: sigma along the major axis, rho = minor/major ratio,
    theta in degrees, truncated where the profile falls below eps of its peak."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma:g}")
    if not 0 < rho <= 1:
        raise ValueError(f"rho (aspect ratio) must be in (0, 1], got {rho:g}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps:g}")
    half = max(1, int(math.ceil(sigma * math.sqrt(-2 * math.log(eps)))))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    t = math.radians(theta)
    u = xx * math.cos(t) + yy * math.sin(t)
    v = -xx * math.sin(t) + yy * math.cos(t)
    k = np.exp(-0.5 * ((u / sigma) ** 2 + (v / (sigma * rho)) ** 2))
    k[k < eps] = 0
    return (k / k.sum()).astype(np.float32)


def gconv(
    img: np.ndarray, sigma: float = 2, rho: float = 1, theta: float = 0, eps: float = 0.01
) -> np.ndarray:
    if rho == 1:
        if sigma <= 0 or not 0 < eps < 1:
            gaussian_kernel(sigma, rho, theta, eps)  # raises the right message
        trunc = math.sqrt(-2 * math.log(eps))
        return _per_channel(
            img, lambda c: ndimage.gaussian_filter(c, sigma, mode="reflect", truncate=trunc)
        )
    k = gaussian_kernel(sigma, rho, theta, eps)
    return _per_channel(img, lambda c: ndimage.convolve(c, k, mode="reflect"))


def bconv(img: np.ndarray, n: float = 3) -> np.ndarray:
    size = _odd(n)
    return _per_channel(img, lambda c: ndimage.uniform_filter(c, size, mode="reflect"))


def kconv(img: np.ndarray, coefficients: list[float]) -> np.ndarray:
    """Convolution with an odd square kernel given row by row; normalised when its sum ≠ 0."""
    m = len(coefficients)
    n = int(round(math.sqrt(m)))
    if n * n != m or n % 2 == 0:
        raise ValueError(f"kconv needs an odd square number of coefficients (9, 25 …), got {m}")
    k = np.asarray(coefficients, np.float64).reshape(n, n)
    s = k.sum()
    if s != 0:
        k = k / s
    return _per_channel(img, lambda c: ndimage.correlate(c, k.astype(np.float32), mode="reflect"))


def medfilt(img: np.ndarray, n: float = 3, structure: str = "square") -> np.ndarray:
    fp = footprint(_odd(n), structure)
    return _per_channel(img, lambda c: ndimage.median_filter(c, footprint=fp, mode="reflect"))


def erosion(img: np.ndarray, n: float = 3, structure: str = "square") -> np.ndarray:
    fp = footprint(_odd(n), structure)
    return _per_channel(img, lambda c: ndimage.minimum_filter(c, footprint=fp, mode="reflect"))


def dilation(img: np.ndarray, n: float = 3, structure: str = "square") -> np.ndarray:
    fp = footprint(_odd(n), structure)
    return _per_channel(img, lambda c: ndimage.maximum_filter(c, footprint=fp, mode="reflect"))


def translate(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift by (dx, dy) pixels (bilinear; uncovered pixels are 0)."""
    return _per_channel(img, lambda c: ndimage.shift(c, (dy, dx), order=1, mode="constant", cval=0))


def rotate(
    img: np.ndarray, angle: float, cx: float | None = None, cy: float | None = None
) -> np.ndarray:
    """Rotate by ``angle`` degrees (counter-clockwise as displayed) about (cx, cy), default
    the centre; bilinear, uncovered pixels 0."""
    h, w = img.shape[-2:]
    cx = (w - 1) / 2 if cx is None else cx
    cy = (h - 1) / 2 if cy is None else cy
    t = math.radians(angle)
    # output (y, x) -> input coordinates
    m = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    centre = np.array([cy, cx])
    offset = centre - m @ centre
    return _per_channel(
        img,
        lambda c: ndimage.affine_transform(c, m, offset=offset, order=1, mode="constant", cval=0),
    )


def urotate(img: np.ndarray, angle: float) -> np.ndarray:
    """Exact rotation by a multiple of 90 degrees (no interpolation)."""
    q = angle / 90
    if q != int(q):
        raise ValueError(f"urotate turns by multiples of 90 degrees, got {angle:g}")
    return np.ascontiguousarray(np.rot90(img, int(q) % 4, axes=(-2, -1)))


def hmirror(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[..., ::-1])


def vmirror(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[..., ::-1, :])


def normalize(img: np.ndarray, a: float = 0, b: float = 1) -> np.ndarray:
    """Linear map of the image's range (all channels jointly) onto [a, b]."""
    lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    if hi - lo <= 0:
        return np.full_like(img, a, dtype=np.float32)
    return (a + (img - lo) * ((b - a) / (hi - lo))).astype(np.float32)


def truncate(img: np.ndarray, a: float = 0, b: float = 1) -> np.ndarray:
    return np.clip(img, a, b).astype(np.float32)


def binarize(img: np.ndarray, t: float = 0.5) -> np.ndarray:
    return (img > t).astype(np.float32)


def lvar(img: np.ndarray, d: float = 3, kernel: str = "flat") -> np.ndarray:
    """Local variance in a d×d window (flat or Gaussian weights)."""
    size = _odd(d, "window size")

    def one(c: np.ndarray) -> np.ndarray:
        c = c.astype(np.float64)
        if kernel == "gauss":
            s = size / 6
            m = ndimage.gaussian_filter(c, s, truncate=3)
            m2 = ndimage.gaussian_filter(c * c, s, truncate=3)
        elif kernel == "flat":
            m = ndimage.uniform_filter(c, size)
            m2 = ndimage.uniform_filter(c * c, size)
        else:
            raise ValueError(f"unknown kernel '{kernel}'; krn_flat() or krn_gauss()")
        return np.maximum(m2 - m * m, 0)

    return _per_channel(img, one)


def blend(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    """PixInsight's combine(img1, img2, op) blend modes (a = base, b = blend layer)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = _BLEND[op](a, b) if op in _BLEND else None
    if r is None:
        raise ValueError(
            f"unknown combination operator '{op}'; one of op_{', op_'.join(BLEND_OPS)}"
        )
    return np.nan_to_num(np.asarray(r, np.float32), nan=0.0, posinf=1.0, neginf=0.0)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.abs(b) > 1e-12, a / np.where(b == 0, 1, b), 1.0)


_BLEND = {
    "mov": lambda a, b: np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape)),
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: _safe_div(a, b),
    "pow": lambda a, b: np.power(a, b),
    "dif": lambda a, b: np.abs(a - b),
    "min": np.minimum,
    "max": np.maximum,
    "atan2": lambda a, b: np.arctan2(a, b),
    "color_burn": lambda a, b: 1 - _safe_div(1 - a, b),
    "linear_burn": lambda a, b: a + b - 1,
    "screen": lambda a, b: 1 - (1 - a) * (1 - b),
    "color_dodge": lambda a, b: _safe_div(a, 1 - b),
    "overlay": lambda a, b: np.where(a > 0.5, 1 - 2 * (1 - a) * (1 - b), 2 * a * b),
    "soft_light": lambda a, b: np.where(b > 0.5, 1 - (1 - a) * (1 - (b - 0.5)), a * (b + 0.5)),
    "hard_light": lambda a, b: np.where(b > 0.5, 1 - (1 - a) * (1 - 2 * (b - 0.5)), 2 * a * b),
    "vivid_light": lambda a, b: np.where(
        b > 0.5, 1 - _safe_div(1 - a, 2 * (b - 0.5)), _safe_div(a, 1 - 2 * b)
    ),
    "linear_light": lambda a, b: np.where(b > 0.5, a + 2 * (b - 0.5), a + 2 * b - 1),
    "pin_light": lambda a, b: np.where(b > 0.5, np.maximum(a, 2 * (b - 0.5)), np.minimum(a, 2 * b)),
    "exclusion": lambda a, b: 0.5 - 2 * (a - 0.5) * (b - 0.5),
}
