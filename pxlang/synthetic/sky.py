"""The sky: a star catalogue, nebulae per band, a background with a linear gradient.

Everything is in electrons per second per pixel as the camera would collect it through each
filter (band), in the *reference frame* (sky coordinates = pixel coordinates of a light with
no dither). Extended emission is computed once on a grid padded by ``pad`` pixels on every
side, so that dithered and rotated lights can sample it anywhere they look.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

# band: background e/s, nebula weights (H-alpha-like, OIII-like, SII-like structures) in e/s
# at their brightest, star throughput (relative to H-alpha), colour weight (how a star's
# colour index changes its flux in this band: red positive, blue negative).
BANDS: dict[str, tuple[float, float, float, float, float, float]] = {
    "Ha": (0.45, 1.60, 0.00, 0.00, 1.0, 0.7),
    "OIII": (0.35, 0.00, 0.90, 0.00, 0.8, -0.5),
    "SII": (0.30, 0.00, 0.00, 0.55, 0.9, 0.8),
    "L": (6.00, 1.00, 0.60, 0.20, 20.0, 0.0),
    "R": (2.00, 1.00, 0.00, 0.20, 7.0, 1.0),
    "G": (2.20, 0.05, 0.45, 0.00, 7.0, 0.0),
    "B": (1.80, 0.00, 0.55, 0.00, 6.0, -1.0),
}
_GENERIC = (1.00, 0.50, 0.30, 0.10, 5.0, 0.0)

# Star counts: power law N(>F) ~ F^-0.6 between these H-alpha fluxes (e/s); the brightest
# stars of a 300 s H-alpha light saturate, the faintest are below the noise.
_FLUX_MIN, _FLUX_MAX, _SLOPE = 0.6, 3000.0, 0.6


def band_key(name: str) -> int:
    """A stable integer for a band or filter name (seeds do not depend on list order)."""
    return zlib.crc32(name.encode("utf-8"))


def band_params(name: str) -> tuple[float, float, float, float, float, float]:
    """The :data:`BANDS` row for ``name`` (case-insensitive), or a generic broadband row."""
    for key, row in BANDS.items():
        if key.lower() == name.lower():
            return row
    return _GENERIC


@dataclass
class Sky:
    """Sky truth in e/s per pixel. ``ext[band]`` is padded by ``pad`` pixels on each side."""

    shape: tuple[int, int]
    pad: int
    star_x: np.ndarray
    star_y: np.ndarray
    star_base: np.ndarray  # H-alpha-equivalent flux, e/s
    star_color: np.ndarray  # colour index, ~N(0, 1)
    gradient: tuple[float, float]  # fractional change of the background across x and y
    ext: dict[str, np.ndarray] = field(default_factory=dict)
    background: dict[str, float] = field(default_factory=dict)

    def star_flux(self, band: str) -> np.ndarray:
        """Each star's flux in ``band``, e/s."""
        throughput, cw = band_params(band)[4:6]
        return self.star_base * throughput * np.exp(0.35 * cw * self.star_color)

    def ext_at_reference(self, band: str) -> np.ndarray:
        """Extended emission (background + gradient + nebula) on the unpadded reference grid."""
        p = self.pad
        h, w = self.shape
        return self.ext[band][p : p + h, p : p + w]


def _smooth_field(rng: np.random.Generator, out_shape: tuple[int, int], cells: int, sigma: float):
    """Unit-variance smooth random field: filtered noise on a coarse grid, zoomed up cubically.

    Filtering at full resolution would cost O(sigma) per pixel; the coarse grid keeps it cheap
    at any image size.
    """
    from scipy import ndimage

    hp, wp = out_shape
    scale = max(hp, wp) / cells
    ch, cw = max(8, int(np.ceil(hp / scale)) + 4), max(8, int(np.ceil(wp / scale)) + 4)
    coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), sigma, mode="wrap")
    coarse /= coarse.std() + 1e-12
    yy = (np.arange(hp) + 0.5) / scale + 1.5
    xx = (np.arange(wp) + 0.5) / scale + 1.5
    rows = ndimage.map_coordinates(
        coarse, np.meshgrid(yy, np.arange(cw), indexing="ij"), order=3, mode="nearest"
    )
    return ndimage.map_coordinates(
        rows, np.meshgrid(np.arange(hp), xx, indexing="ij"), order=3, mode="nearest"
    ).astype(np.float32)


def _envelope(shape, centre, sigma, axis_ratio, angle):
    hp, wp = shape
    yy, xx = np.mgrid[0:hp, 0:wp].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - centre[0]) * c + (yy - centre[1]) * s
    v = (yy - centre[1]) * c - (xx - centre[0]) * s
    return np.exp(-0.5 * ((u / sigma) ** 2 + (v / (sigma * axis_ratio)) ** 2))


def make_sky(
    seed: int,
    shape: tuple[int, int],
    pad: int,
    bands: tuple[str, ...],
    *,
    star_density: float = 4000.0,
    nebula: float = 1.0,
    gradient: float = 0.25,
) -> Sky:
    """Draw the sky for these bands. Same seed and shape: same sky whatever the band list.

    ``star_density`` is stars per megapixel (down to a faint limit near the noise), ``nebula``
    scales all nebular emission, ``gradient`` is the background's fractional change across
    the frame.
    """
    h, w = shape
    hp, wp = h + 2 * pad, w + 2 * pad
    rng = np.random.default_rng([seed, 101])
    n_stars = int(rng.poisson(star_density * hp * wp / 1e6))
    sx = rng.uniform(-pad - 0.5, w + pad - 0.5, n_stars)
    sy = rng.uniform(-pad - 0.5, h + pad - 0.5, n_stars)
    u_min = (_FLUX_MAX / _FLUX_MIN) ** -_SLOPE
    base = _FLUX_MIN * rng.uniform(u_min, 1.0, n_stars) ** (-1.0 / _SLOPE)
    color = np.clip(rng.standard_normal(n_stars), -2.5, 2.5)
    gx, gy = rng.normal(0.0, gradient / np.sqrt(2), 2) if gradient else (0.0, 0.0)

    # Nebular structures in padded-grid coordinates; sizes scale with the frame.
    rng_n = np.random.default_rng([seed, 102])
    m = min(h, w)
    ctr = (pad + w / 2 + rng_n.uniform(-0.1, 0.1) * w, pad + h / 2 + rng_n.uniform(-0.1, 0.1) * h)
    ang = rng_n.uniform(0, np.pi)
    env_h = _envelope((hp, wp), ctr, 0.38 * m, 0.65, ang)
    ctr_o = (ctr[0] + rng_n.uniform(-0.05, 0.05) * w, ctr[1] + rng_n.uniform(-0.05, 0.05) * h)
    env_o = _envelope((hp, wp), ctr_o, 0.2 * m, 0.8, ang + 0.4)
    t1 = _smooth_field(rng_n, (hp, wp), 24, 1.5)
    t2 = _smooth_field(rng_n, (hp, wp), 48, 1.2)
    t3 = _smooth_field(rng_n, (hp, wp), 24, 1.5)
    tex_h = np.clip(1.0 + 0.55 * t1 + 0.35 * t2, 0.0, None) ** 1.5
    tex_o = np.clip(1.0 + 0.5 * t3, 0.0, None)
    neb = {
        "H": env_h * (0.3 + tex_h),
        "O": env_o * (0.4 + tex_o),
        "S": env_h * np.clip(0.6 * t1 + 0.4 * t3 + 0.3, 0.0, None) ** 2,
    }
    for k, v in neb.items():
        neb[k] = (v / max(float(v.max()), 1e-12)).astype(np.float32)

    yy = (np.arange(hp, dtype=np.float32) - pad - (h - 1) / 2) / h
    xx = (np.arange(wp, dtype=np.float32) - pad - (w - 1) / 2) / w
    grad = 1.0 + gx * xx[None, :] + gy * yy[:, None]
    sky = Sky(
        shape=(h, w),
        pad=pad,
        star_x=sx,
        star_y=sy,
        star_base=base,
        star_color=color,
        gradient=(float(gx), float(gy)),
    )
    for band in bands:
        bkg, a_h, a_o, a_s = band_params(band)[:4]
        ext = bkg * grad + nebula * (a_h * neb["H"] + a_o * neb["O"] + a_s * neb["S"])
        sky.ext[band] = ext.astype(np.float32)
        sky.background[band] = float(bkg)
    return sky
