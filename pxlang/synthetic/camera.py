"""The camera: bias with a column pattern, read noise, dark current with amp glow, hot and cold
pixels, flat fields (vignetting, dust donuts, pixel response), gain and a 16-bit ADC.

A frame is read out as::

    electrons = Poisson(photo_e * F + dark_rate_map * exptime) + cosmic-ray deposits
    ADU       = rint(electrons / gain + bias_level + bias_columns + Normal(0, read_noise / gain))
              clipped to [0, 65535]

where ``F`` is the flat field of the frame's filter (mean 1, per CFA channel for OSC) and
``dark_rate_map`` = dark current + amp glow + hot pixels (e/s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sky import band_key

ADC_MAX = 65535
CFA_CHANNELS = ("R", "G", "B")


def cfa_index(shape: tuple[int, int], pattern: str = "RGGB") -> np.ndarray:
    """Channel index (0=R, 1=G, 2=B) of each pixel of a Bayer mosaic; ``pattern`` reads the
    2x2 cell row by row from pixel ``[0, 0]`` (FITS ``ROWORDER = 'TOP-DOWN'``)."""
    if len(pattern) != 4 or set(pattern.upper()) - set("RGB"):
        raise ValueError(f"Bayer pattern must be 4 letters of R, G, B; got {pattern!r}")
    cell = np.array([CFA_CHANNELS.index(c) for c in pattern.upper()], dtype=np.int8).reshape(2, 2)
    h, w = shape
    return np.tile(cell, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


@dataclass
class Camera:
    """A camera with known defects. Maps are (H, W); coordinates are (x=column, y=row)."""

    shape: tuple[int, int]
    gain: float  # e-/ADU
    read_noise: float  # e- rms
    bias_level: float  # ADU
    bias_columns: np.ndarray  # (W,) ADU added to every row
    dark_current: float  # e-/s per pixel
    amp_glow: np.ndarray  # (H, W) e-/s, on the right edge
    hot_x: np.ndarray
    hot_y: np.ndarray
    hot_rate: np.ndarray  # e-/s
    cold_x: np.ndarray
    cold_y: np.ndarray
    cold_response: float
    bayer: str | None = None
    flats: dict[str, np.ndarray] = field(default_factory=dict)
    _bias: np.ndarray | None = field(default=None, repr=False)
    _dark: np.ndarray | None = field(default=None, repr=False)

    @property
    def read_noise_adu(self) -> float:
        return self.read_noise / self.gain

    def bias_map(self) -> np.ndarray:
        """Expected bias frame, ADU (H, W). Cached: do not modify."""
        if self._bias is None:
            self._bias = np.broadcast_to(
                self.bias_level + self.bias_columns[None, :], self.shape
            ).astype(np.float32)
        return self._bias

    def dark_rate_map(self) -> np.ndarray:
        """Dark current + amp glow + hot pixels, e-/s (H, W). Cached: do not modify."""
        if self._dark is None:
            rate = self.dark_current + self.amp_glow.astype(np.float64)
            rate[self.hot_y, self.hot_x] += self.hot_rate
            self._dark = rate
        return self._dark

    def readout(
        self,
        rng: np.random.Generator,
        photo_e: np.ndarray | None,
        exptime: float,
        deposits: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """One raw uint16 frame from expected photo-electrons (already times the flat field)."""
        lam = self.dark_rate_map() * exptime
        if photo_e is not None:
            lam = lam + photo_e
        electrons = rng.poisson(lam).astype(np.float32)
        if deposits is not None:
            x, y, e = deposits
            np.add.at(electrons, (y, x), e.astype(np.float32))
        noise = rng.standard_normal(self.shape, dtype=np.float32) * np.float32(self.read_noise_adu)
        adu = electrons / np.float32(self.gain) + self.bias_map() + noise
        return np.clip(np.rint(adu), 0, ADC_MAX).astype(np.uint16)


def _dust_donut(shape, cx, cy, radius, depth):
    h, w = shape
    y0, y1 = max(0, int(cy - radius - 3)), min(h, int(cy + radius + 4))
    x0, x1 = max(0, int(cx - radius - 3)), min(w, int(cx + radius + 4))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    r = np.hypot(xx - cx, yy - cy) / radius
    # Soft-edged disc, darker at its rim than at its centre: the shadow of an out-of-focus mote.
    disc = 1.0 / (1.0 + np.exp((r - 1.0) * 12.0))
    att = np.ones(shape, dtype=np.float64)
    att[y0:y1, x0:x1] -= depth * disc * (0.45 + 0.55 * np.clip(r, 0, 1) ** 2)
    return att


def make_flat(
    seed: int, shape: tuple[int, int], group: str, camera: Camera, *, vignetting: float = 0.25
) -> np.ndarray:
    """The flat field F of one filter (or the OSC mosaic): mean 1 (per CFA channel for OSC)."""
    h, w = shape
    rng_common = np.random.default_rng([seed, 201])  # sensor window: same for every filter
    rng_f = np.random.default_rng([seed, 202, band_key(group)])
    m = min(h, w)
    cx = (w - 1) / 2 + rng_common.uniform(-0.05, 0.05) * w
    cy = (h - 1) / 2 + rng_common.uniform(-0.05, 0.05) * h
    prnu = 1.0 + 0.005 * rng_common.standard_normal(shape)
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    vig = vignetting * (1.0 + 0.15 * rng_f.uniform(-1, 1))
    flat = (1.0 - vig * r2) * prnu
    donuts = [(rng_common, 2), (rng_f, 1)]
    for rng, count in donuts:
        for _ in range(count):
            rad = rng.uniform(0.04, 0.08) * m
            dcx = rng.uniform(rad + 2, w - rad - 2)
            dcy = rng.uniform(rad + 2, h - rad - 2)
            flat *= _dust_donut(shape, dcx, dcy, rad, rng.uniform(0.04, 0.10))
    flat[camera.cold_y, camera.cold_x] *= camera.cold_response
    if camera.bayer:
        idx = cfa_index(shape, camera.bayer)
        for c in range(3):
            sel = idx == c
            flat[sel] /= flat[sel].mean()
    else:
        flat /= flat.mean()
    return flat.astype(np.float32)


def _unique_pixels(rng, shape, n):
    h, w = shape
    flat = rng.choice(h * w, size=min(n, h * w), replace=False)
    return (flat % w).astype(np.int64), (flat // w).astype(np.int64)


def make_camera(
    seed: int,
    shape: tuple[int, int],
    *,
    gain: float = 0.8,
    read_noise: float = 3.0,
    bias_level: float = 600.0,
    column_sigma: float = 1.5,
    dark_current: float = 0.02,
    amp_glow: float = 0.3,
    hot_density: float = 400.0,
    cold_density: float = 60.0,
    cold_response: float = 0.05,
    bayer: str | None = None,
) -> Camera:
    """A camera drawn from ``seed``; densities are per megapixel (at least 3 of each)."""
    h, w = shape
    rng = np.random.default_rng([seed, 200])
    cols = rng.normal(0.0, column_sigma, w)
    strong = rng.choice(w, size=max(1, w // 100), replace=False)
    cols[strong] += rng.uniform(4.0, 10.0, strong.size) * column_sigma
    n_hot = max(3, int(round(hot_density * h * w / 1e6)))
    n_cold = max(3, int(round(cold_density * h * w / 1e6)))
    px, py = _unique_pixels(rng, shape, n_hot + n_cold)
    hot_rate = np.exp(rng.uniform(np.log(0.5), np.log(50.0), n_hot))
    yy = np.arange(h, dtype=np.float64)[:, None]
    xx = np.arange(w, dtype=np.float64)[None, :]
    glow = amp_glow * np.exp(-(w - 1 - xx) / (0.06 * w))
    glow = glow * (0.4 + 0.6 * np.exp(-0.5 * ((yy - 0.8 * h) / (0.25 * h)) ** 2))
    return Camera(
        shape=shape,
        gain=float(gain),
        read_noise=float(read_noise),
        bias_level=float(bias_level),
        bias_columns=cols.astype(np.float32),
        dark_current=float(dark_current),
        amp_glow=glow.astype(np.float32),
        hot_x=px[:n_hot],
        hot_y=py[:n_hot],
        hot_rate=hot_rate,
        cold_x=px[n_hot:],
        cold_y=py[n_hot:],
        cold_response=float(cold_response),
        bayer=bayer,
    )


def make_cosmics(
    rng: np.random.Generator, shape: tuple[int, int], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` cosmic-ray hits: single pixels, small blobs and short tracks.

    Returns unique pixel coordinates ``x, y`` and deposited electrons ``e`` (800-15000 e- per
    pixel, so each is well above any sky noise).
    """
    h, w = shape
    xs, ys = [], []
    for _ in range(n):
        x0, y0 = rng.uniform(2, w - 3), rng.uniform(2, h - 3)
        kind = rng.uniform()
        if kind < 0.5:
            length = 1
        elif kind < 0.8:
            length = int(rng.integers(2, 4))
        else:
            length = int(rng.integers(4, 11))
        ang = rng.uniform(0, np.pi)
        t = np.arange(length) * 0.9
        xs.append(np.clip(np.rint(x0 + t * np.cos(ang)), 0, w - 1).astype(np.int64))
        ys.append(np.clip(np.rint(y0 + t * np.sin(ang)), 0, h - 1).astype(np.int64))
    if not xs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    flat = np.unique(np.concatenate(ys) * w + np.concatenate(xs))
    e = np.exp(rng.uniform(np.log(800.0), np.log(15000.0), flat.size)).astype(np.float32)
    return flat % w, flat // w, e
