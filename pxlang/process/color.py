"""Colour spaces as PixInsight's RGB working space (RGBWS) defines them, plus LRGB and saturation.

PixInsight's default RGBWS (``RGBColorSystem::sRGB`` in the PCL) is sRGB with primaries and
luminance coefficients adapted to the D50 white by Bradford:

    x = (0.648431, 0.321152, 0.155886), y = (0.330856, 0.597871, 0.066044),
    Y = (0.222491, 0.716888, 0.060621)   (normalised to sum one),

and the sRGB transfer curve (linear below 0.04045, exponent 2.4 above): pixel values are read
as gamma-encoded sRGB, even for linear astronomical data, exactly as PixInsight does.

Normalisation (what PixelMath's CIEL, CIEa, CIEb, CIEc, CIEh, CIEX... return):

- X and Z are divided by the white's X and Z (``mX``, ``mZ``) so that X, Y, Z lie in [0, 1].
- L* is ``1.16 f(Y) - 0.16`` (CIE L*/100), in [0, 1].
- a* = 5 (f(X) - f(Y)) and b* = 2 (f(Y) - f(Z)) (CIE a*/100, b*/100) are mapped to [0, 1] by
  ``(v + abOffset) / abDelta``; c* = sqrt(a*² + b*²) / cDelta; h* = atan2(b*, a*) / 2π in [0, 1).
  ``abOffset``, ``abDelta`` and ``cDelta`` are found as the PCL finds them: the extremes of a*,
  b*, c* over a 10×10×10 grid of the RGB cube, refined in 0.01 steps around the extreme cell,
  with margins of 0.05 (offset, c) and 0.1 (delta). For default sRGB this gives a*, b* ≈ 0.5
  for neutral greys.

Departures: intermediate XYZ values are not clipped to [0, 1] (PCL clips them) so that
``lab_to_rgb(rgb_to_lab(x)) == x`` holds exactly for any input; RGB values returned from Lab or
XYZ are clipped to [0, 1] before the transfer curve, as in PCL, because out-of-gamut colours
have no RGB value. HSV and HSI follow ``RGBColorSystem::RGBToHSV`` / ``RGBToHSI``.

All functions take arrays of shape (3, ...) (any trailing shape) and return new float32 arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# PixInsight's sRGB (D50) working space.
SRGB_X = (0.648431, 0.321152, 0.155886)
SRGB_Y = (0.330856, 0.597871, 0.066044)
D50_WEIGHTS = (0.222491, 0.716888, 0.060621)

_EPS = 216.0 / 24389.0  # CIE epsilon
_KAPPA116 = (24389.0 / 27.0) / 116.0
_16_116 = 16.0 / 116.0

Weights = str | Sequence[float]


def parse_weights(weights: Weights = "D50") -> tuple[float, float, float]:
    """Luminance coefficients: "D50" (PixInsight's sRGB), "equal" (1/3 each, the guide's
    "sliders to the far right") or three numbers; returned normalised to sum one."""
    if isinstance(weights, str):
        key = weights.strip().lower()
        if key in ("d50", "srgb", "default"):
            w = D50_WEIGHTS
        elif key in ("equal", "uniform", "1/3"):
            w = (1.0, 1.0, 1.0)
        else:
            raise ValueError(
                f'unknown luminance weights {weights!r}: use "D50", "equal" or three numbers'
            )
    else:
        w = tuple(float(v) for v in weights)
        if len(w) != 3:
            raise ValueError(f"luminance weights need three numbers (r, g, b), got {len(w)}")
    if min(w) < 0 or sum(w) <= 0:
        raise ValueError(f"luminance weights must be non-negative with a positive sum, got {w}")
    s = float(sum(w))
    return (w[0] / s, w[1] / s, w[2] / s)


class ColorSystem:
    """An RGB working space: matrices, transfer curve and a*, b*, c* normalisation."""

    def __init__(
        self, weights: tuple[float, float, float] = D50_WEIGHTS, gamma: str | float = "sRGB"
    ):
        x = np.array(SRGB_X)
        y = np.array(SRGB_Y)
        Y = np.array(parse_weights(weights))
        self.weights = tuple(float(v) for v in Y)
        self.gamma = gamma
        self.M = np.array([Y * x / y, Y, Y * (1 - x - y) / y])
        self.mX = float(self.M[0].sum())
        self.mZ = float(self.M[2].sum())
        self.Minv = np.linalg.inv(self.M)
        self._find_ab_normalisation()

    # transfer curves ---------------------------------------------------------------
    def linear(self, v: np.ndarray) -> np.ndarray:
        if self.gamma == "sRGB":
            return np.where(
                v > 0.04045, ((np.maximum(v, 0.04045) + 0.055) / 1.055) ** 2.4, v / 12.92
            )
        g = float(self.gamma)
        return v if g == 1.0 else np.sign(v) * np.abs(v) ** g

    def encode(self, v: np.ndarray) -> np.ndarray:
        if self.gamma == "sRGB":
            return np.where(
                v > 0.0031308, 1.055 * np.maximum(v, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * v
            )
        g = float(self.gamma)
        return v if g == 1.0 else np.sign(v) * np.abs(v) ** (1.0 / g)

    # XYZ ---------------------------------------------------------------------------
    def rgb_to_xyz(self, rgb: np.ndarray) -> np.ndarray:
        lin = self.linear(rgb)
        xyz = np.tensordot(self.M, lin, axes=(1, 0))
        xyz[0] /= self.mX
        xyz[2] /= self.mZ
        return xyz

    def xyz_to_rgb(self, xyz: np.ndarray) -> np.ndarray:
        xyz = np.array(xyz, dtype=np.float64)
        xyz[0] *= self.mX
        xyz[2] *= self.mZ
        lin = np.clip(np.tensordot(self.Minv, xyz, axes=(1, 0)), 0.0, 1.0)
        return self.encode(lin)

    # Lab ---------------------------------------------------------------------------
    def _ab(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = _f(xyz)
        return f[1], 5 * (f[0] - f[1]), 2 * (f[1] - f[2])

    def _find_ab_normalisation(self) -> None:
        # The PCL's search: a coarse 10-level grid of the RGB cube, then 0.01 steps around the
        # cell holding each extreme (its loops stop short of the upper bound).
        g = np.arange(10) / 9.0
        cube = np.stack(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1)
        _, a, b = self._ab(self.rgb_to_xyz(cube))
        c = np.hypot(a, b)
        idx = [
            int(np.argmin(np.minimum(a, b))),
            int(np.argmax(np.maximum(a, b))),
            int(np.argmax(c)),
        ]
        minab, maxab, maxc = (
            float(np.minimum(a, b).min()),
            float(np.maximum(a, b).max()),
            float(c.max()),
        )
        for which, i in enumerate(idx):
            ri, gi, bi = np.unravel_index(i, (10, 10, 10))
            axes = [
                np.arange(max(0, k - 1) / 9.0, min(9, k + 1) / 9.0 - 1e-12, 0.01)
                for k in (ri, gi, bi)
            ]
            pts = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
            _, a2, b2 = self._ab(self.rgb_to_xyz(pts))
            if which == 0:
                minab = min(minab, float(np.minimum(a2, b2).min()))
            elif which == 1:
                maxab = max(maxab, float(np.maximum(a2, b2).max()))
            else:
                maxc = max(maxc, float(np.hypot(a2, b2).max()))
        self.ab_offset = -minab + 0.05
        self.ab_delta = maxab - minab + 0.1
        self.c_delta = maxc + 0.05

    def rgb_to_lab(self, rgb: np.ndarray) -> np.ndarray:
        L, a, b = self._ab(self.rgb_to_xyz(rgb))
        return np.stack(
            [
                1.16 * L - 0.16,
                (a + self.ab_offset) / self.ab_delta,
                (b + self.ab_offset) / self.ab_delta,
            ]
        )

    def lab_to_xyz(self, lab: np.ndarray) -> np.ndarray:
        fy = (lab[0] + 0.16) / 1.16
        fx = (self.ab_delta * lab[1] - self.ab_offset) / 5 + fy
        fz = fy - (self.ab_delta * lab[2] - self.ab_offset) / 2
        return _finv(np.stack([fx, fy, fz]))

    def lab_to_rgb(self, lab: np.ndarray) -> np.ndarray:
        return self.xyz_to_rgb(self.lab_to_xyz(lab))

    def rgb_to_lch(self, rgb: np.ndarray) -> np.ndarray:
        L, a, b = self._ab(self.rgb_to_xyz(rgb))
        h = np.arctan2(b, a)
        h = np.where(h < 0, h + 2 * np.pi, h) / (2 * np.pi)
        return np.stack(
            [1.16 * L - 0.16, np.hypot(a, b) / self.c_delta, np.where(h >= 1.0, 0.0, h)]
        )

    def lch_to_rgb(self, lch: np.ndarray) -> np.ndarray:
        c = lch[1] * self.c_delta
        ang = lch[2] * 2 * np.pi
        a = (c * np.cos(ang) + self.ab_offset) / self.ab_delta
        b = (c * np.sin(ang) + self.ab_offset) / self.ab_delta
        return self.lab_to_rgb(np.stack([lch[0], a, b]))


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _EPS, np.cbrt(t), _KAPPA116 * t + _16_116)


def _finv(f: np.ndarray) -> np.ndarray:
    # Inverse of _f: the branch point is f = cbrt(eps) = 6/29.
    return np.where(f > 6.0 / 29.0, f**3, (f - _16_116) / _KAPPA116)


@lru_cache(maxsize=16)
def color_system(
    weights: tuple[float, float, float] = D50_WEIGHTS, gamma: str | float = "sRGB"
) -> ColorSystem:
    """The (cached) working space with these luminance coefficients and transfer curve."""
    return ColorSystem(weights, gamma)


def _cs(weights: Weights) -> ColorSystem:
    return color_system(parse_weights(weights))


def _check3(rgb: np.ndarray, what: str = "rgb") -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim < 1 or arr.shape[0] != 3:
        raise ValueError(
            f"{what} must have 3 channels first, shape (3, ...); got shape {arr.shape}"
            + (" (a mono image: this needs a colour image)" if arr.ndim == 2 else "")
        )
    return arr.astype(np.float64)


def _out(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


# ----------------------------------------------------------------------------------------
# The contract the PixelMath colour functions use: (3, ...) in, (3, ...) or (...) out.
# ----------------------------------------------------------------------------------------


def rgb_to_xyz(rgb: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """RGB (gamma-encoded, PixInsight's RGBWS) → normalised CIE XYZ (X/mX, Y, Z/mZ), (3, ...)."""
    return _out(_cs(weights).rgb_to_xyz(_check3(rgb)))


def xyz_to_rgb(xyz: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """Normalised CIE XYZ → RGB, clipped to [0, 1] (the inverse of ``rgb_to_xyz`` in gamut)."""
    return _out(_cs(weights).xyz_to_rgb(_check3(xyz, "xyz")))


def rgb_to_lab(rgb: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """RGB → normalised CIE L*a*b* (D50): L* in [0, 1], a*, b* in [0, 1] (0.5-ish is neutral)."""
    return _out(_cs(weights).rgb_to_lab(_check3(rgb)))


def lab_to_rgb(lab: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """Normalised CIE L*a*b* → RGB; exact inverse of ``rgb_to_lab`` for RGB in [0, 1]."""
    return _out(_cs(weights).lab_to_rgb(_check3(lab, "lab")))


def rgb_to_lch(rgb: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """RGB → CIE L*c*h*: L* as ``rgb_to_lab``, c*/cDelta, h*/2π in [0, 1) (PixelMath CIEc, CIEh)."""
    return _out(_cs(weights).rgb_to_lch(_check3(rgb)))


def lch_to_rgb(lch: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """Normalised CIE L*c*h* → RGB (inverse of ``rgb_to_lch``)."""
    return _out(_cs(weights).lch_to_rgb(_check3(lch, "lch")))


def _hue(rgb: np.ndarray, mx: np.ndarray, delta: np.ndarray) -> np.ndarray:
    r, g, b = rgb
    safe = np.where(delta != 0, delta, 1.0)
    h = (
        np.where(r == mx, (g - b) / safe, np.where(g == mx, 2 + (b - r) / safe, 4 + (r - g) / safe))
        / 6
    )
    h = np.where(h < 0, h + 1, h)
    return np.where(delta != 0, h, 0.0)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB → (H, Sv, V): H normalised to [0, 1), Sv = Δ/max, V = max (PixInsight's HSV)."""
    arr = _check3(rgb)
    mx = arr.max(axis=0)
    delta = mx - arr.min(axis=0)
    s = np.where(delta != 0, delta / np.where(mx != 0, mx, 1.0), 0.0)
    return _out(np.stack([_hue(arr, mx, delta), s, mx]))


def rgb_to_hsi(rgb: np.ndarray) -> np.ndarray:
    """RGB → (H, Si, I): I = (min+max)/2, Si = Δ/(sum if sum ≤ 1 else 2 − sum) (PixInsight)."""
    arr = _check3(rgb)
    mx = arr.max(axis=0)
    mn = arr.min(axis=0)
    delta = mx - mn
    ssum = mx + mn
    den = np.where(ssum <= 1, ssum, 2 - ssum)
    s = np.where(delta != 0, delta / np.where(den != 0, den, 1.0), 0.0)
    return _out(np.stack([_hue(arr, mx, delta), s, 0.5 * ssum]))


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(H, Sv, V) → RGB (inverse of ``rgb_to_hsv``)."""
    h, s, v = _check3(hsv, "hsv")
    h6 = (h % 1.0) * 6
    i = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return _out(np.stack([r, g, b]))


def luminance(rgb: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """The weighted sum Σ wᵢ·cᵢ of the channels with the RGBWS luminance coefficients
    (normalised to sum one; "D50" = PixInsight's sRGB, "equal" = 1/3 each). No transfer
    curve: on linear data this is the linear luminance. Returns shape (...)."""
    arr = _check3(rgb)
    w = parse_weights(weights)
    return _out(w[0] * arr[0] + w[1] * arr[1] + w[2] * arr[2])


def lightness(rgb: np.ndarray, weights: Weights = "D50") -> np.ndarray:
    """CIE L* (normalised, [0, 1]) in the RGBWS with these luminance coefficients: what
    PixInsight's ChannelExtraction (CIE L*a*b*, L) gives after RGBWorkingSpace. Shape (...)."""
    cs = _cs(weights)
    xyz = cs.rgb_to_xyz(_check3(rgb))
    return _out(1.16 * _f(xyz[1]) - 0.16)


# ----------------------------------------------------------------------------------------
# Processes on colour images
# ----------------------------------------------------------------------------------------


def lrgb_combine(
    L: np.ndarray,
    rgb: np.ndarray,
    lightness: float = 0.5,
    saturation: float = 0.5,
    weights: Weights = "D50",
) -> np.ndarray:
    """LRGBCombination: replace the CIE L* of ``rgb`` by ``L`` (through ``mtf(lightness, L)``)
    and scale chroma through ``mtf(saturation, c*)``; 0.5 leaves either unchanged."""
    from .stretch import mtf

    arr = _check3(rgb)
    L = np.asarray(L, dtype=np.float64)
    if L.shape != arr.shape[1:]:
        raise ValueError(
            f"L is {L.shape} but the colour image is {arr.shape[1:]}: give images of the same size"
        )
    cs = _cs(weights)
    lch = cs.rgb_to_lch(arr)
    lch[0] = mtf(lightness, np.clip(L, 0, 1))
    if saturation != 0.5:
        lch[1] = mtf(saturation, np.clip(lch[1], 0, 1))
    return _out(cs.lch_to_rgb(lch))


def saturate(rgb: np.ndarray, amount: float, weights: Weights = "D50") -> np.ndarray:
    """Scale CIE chroma by (1 + amount) keeping L* and hue: amount 0 is the identity,
    −1 removes colour, 0.5 is 50 % more saturated. Out-of-gamut results are clipped."""
    if amount < -1:
        raise ValueError(f"saturation amount must be ≥ −1 (−1 removes all colour), got {amount}")
    arr = _check3(rgb)
    if amount == 0:
        return _out(arr)
    cs = _cs(weights)
    lch = cs.rgb_to_lch(arr)
    lch[1] *= 1.0 + amount
    return _out(cs.lch_to_rgb(lch))


def scnr(
    rgb: np.ndarray,
    amount: float = 1.0,
    method: str = "average_neutral",
    preserve_lightness: bool = True,
) -> np.ndarray:
    """SCNR green removal (PixInsight's four methods, green channel only).

    average_neutral: G' = min(G, (R+B)/2); maximum_neutral: G' = min(G, max(R, B));
    maximum_mask: m = max(R, B), G' = G(1−a)(1−m) + mG; additive_mask: m = min(1, R+B), same.
    For the neutral methods ``amount`` blends: G' = (1−a)G + a·G'. With ``preserve_lightness``
    the original CIE L* is restored afterwards.
    """
    arr = _check3(rgb)
    if not 0 <= amount <= 1:
        raise ValueError(f"scnr amount must be in [0, 1], got {amount}")
    r, g, b = arr
    key = method.lower().replace(" ", "_")
    if key == "average_neutral":
        g2 = (1 - amount) * g + amount * np.minimum(g, 0.5 * (r + b))
    elif key == "maximum_neutral":
        g2 = (1 - amount) * g + amount * np.minimum(g, np.maximum(r, b))
    elif key in ("maximum_mask", "additive_mask"):
        m = np.maximum(r, b) if key == "maximum_mask" else np.minimum(1.0, r + b)
        g2 = g * (1 - amount) * (1 - m) + m * g
    else:
        raise ValueError(
            f"unknown SCNR method {method!r}: use average_neutral, maximum_neutral, "
            "maximum_mask or additive_mask"
        )
    out = np.stack([r, g2, b])
    if preserve_lightness:
        cs = color_system()
        lab = cs.rgb_to_lab(np.clip(out, 0, 1))
        lab[0] = cs.rgb_to_lab(np.clip(arr, 0, 1))[0]
        out = cs.lab_to_rgb(lab)
    return _out(out)


_EXTRACT = ("R", "G", "B", "L", "a", "b", "c", "h", "X", "Y", "Z", "H", "Sv", "Si", "V", "I", "K")


def extract_channel(rgb: np.ndarray, channel: str, weights: Weights = "D50") -> np.ndarray:
    """One component: R, G, B; CIE L, a, b, c, h; CIE X, Y, Z; H, Sv, Si, V, I; K (= luminance)."""
    arr = _check3(rgb)
    ch = channel.strip()
    if ch in ("R", "G", "B"):
        return _out(arr["RGB".index(ch)])
    if ch in ("L", "a", "b"):
        return _out(_cs(weights).rgb_to_lab(arr)["Lab".index(ch)])
    if ch in ("c", "h"):
        return _out(_cs(weights).rgb_to_lch(arr)[1 if ch == "c" else 2])
    if ch in ("X", "Y", "Z"):
        return _out(_cs(weights).rgb_to_xyz(arr)["XYZ".index(ch)])
    if ch in ("H", "Sv", "V"):
        return rgb_to_hsv(arr)[("H", "Sv", "V").index(ch)]
    if ch in ("Si", "I"):
        return rgb_to_hsi(arr)[1 if ch == "Si" else 2]
    if ch == "K":
        return luminance(arr, weights)
    raise ValueError(f"unknown channel {channel!r}: use one of {', '.join(_EXTRACT)}")
