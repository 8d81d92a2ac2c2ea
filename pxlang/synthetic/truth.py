"""What the synthetic night really is: the truth tests score results against.

Units
-----
Images and fluxes of the sky are in the *normalised units of a calibrated master*: ADU / 65535
after subtracting bias and dark and dividing by the flat field normalised to mean 1 (per CFA
channel for OSC). A perfect ``calibrate`` of a light with no dither gives ``sky[group]`` plus
noise. Camera quantities keep their physical units (ADU, e-, e-/s).

Coordinates
-----------
``x`` is the column, ``y`` the row, 0-based; pixel ``[i, j]`` has its centre at ``(x=j, y=i)``.
A light's transform maps a reference (sky) point ``p`` to the frame point
``q = R(rotation) (p - c) + c + (dx, dy)`` with ``c = ((W-1)/2, (H-1)/2)`` and the rotation
counter-clockwise in degrees (from +x towards +y).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

ADC_MAX = 65535
STAR_THRESHOLD_E = 0.02  # star wings are cut below this many electrons per pixel


@dataclass
class LightTruth:
    """One light frame: where it points, how it was taken and what went wrong."""

    group: str  # FILTER for mono, "RGB" for OSC: also the master's file stem
    index: int  # position within its group
    path: str
    exptime: float
    date_obs: str
    dx: float
    dy: float
    rotation: float  # degrees
    fwhm: float  # PSF FWHM (minor axis), pixels
    ellipticity: float = 0.0  # 1 - b/a; > 0 only for the trailed frame
    trail_angle: float = 0.0  # degrees
    transparency: float = 1.0  # star and nebula flux factor
    extra_background: float = 0.0  # added sky (cloud glow), normalised units
    cloudy: bool = False
    trailed: bool = False
    satellite: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 (frame)
    satellite_peak: float = 0.0  # normalised units at the trail's centre line
    cosmic_x: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cosmic_y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    noise: float = 0.0  # expected background noise of this light once calibrated, normalised

    @property
    def bad(self) -> bool:
        """Should a subframe selection reject this light (cloudy or trailed)?"""
        return self.cloudy or self.trailed

    @property
    def eccentricity(self) -> float:
        return float(np.sqrt(1.0 - (1.0 - self.ellipticity) ** 2))


@dataclass
class Truth:
    """Ground truth of a synthetic night made by :func:`pxlang.synthetic.make_night`.

    ``sky[g]`` is the noise-free master a perfect pipeline would make of group ``g`` (a filter;
    ``"RGB"`` for OSC, debayered), at the reference pointing (that of ``lights[0]``) with the
    nominal PSF; bright star cores are kept unclipped there although frames saturate
    (:meth:`saturated`). ``extended[g]`` is the same without stars, on a grid padded by ``pad``
    pixels on each side. :meth:`expected_light` gives any light's noise-free calibrated image;
    :meth:`stack_noise` the noise of an ideal stack.
    """

    outdir: str
    seed: int
    shape: tuple[int, int]  # (H, W)
    groups: tuple[str, ...]  # filters for mono, ("RGB",) for OSC
    osc: bool
    bayer: str | None
    layout: str
    exposure: dict[str, float]  # light exposure per group, s
    flat_exptime: dict[str, float]
    sky: dict[str, np.ndarray]  # per group: (H, W), or (3, H, W) for OSC; normalised units
    extended: dict[str, np.ndarray]  # sky without stars on a grid padded by ``pad`` each side
    pad: int
    star_x: np.ndarray  # reference frame; some stars lie just outside the image
    star_y: np.ndarray
    star_flux: dict[str, np.ndarray]  # per group: (N,) or (3, N) for OSC; normalised units
    fwhm: float  # nominal PSF FWHM, pixels
    beta: float  # Moffat beta
    lights: list[LightTruth]
    gain: float  # e-/ADU
    read_noise: float  # e-
    bias_level: float  # ADU
    bias_columns: np.ndarray  # (W,) ADU: the column pattern on top of bias_level
    dark_current: float  # e-/s per pixel (away from amp glow and hot pixels)
    amp_glow: np.ndarray  # (H, W) e-/s on top of dark_current
    hot_x: np.ndarray
    hot_y: np.ndarray
    hot_rate: np.ndarray  # e-/s on top of dark_current
    cold_x: np.ndarray
    cold_y: np.ndarray
    cold_response: float  # a cold pixel's response relative to its neighbours
    flats: dict[str, np.ndarray]  # flat field per group, mean 1 (per CFA channel for OSC)
    pixel_size: float  # um
    focal_length: float  # mm
    paths: dict[str, Any]  # {"bias": [...], "dark": [...], "flat": {g: [...]}, "light": {g: [...]}}
    dark_cosmics: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    seconds: float = 0.0  # time taken to generate

    # ---- derived quantities -------------------------------------------------------------
    @property
    def read_noise_adu(self) -> float:
        """Read noise in ADU: the standard deviation of a bias frame around its pattern."""
        return self.read_noise / self.gain

    @property
    def pixel_scale(self) -> float:
        """arcsec per pixel: 206.265 * XPIXSZ[um] / FOCALLEN[mm]."""
        return 206.265 * self.pixel_size / self.focal_length

    def bias_map(self) -> np.ndarray:
        """Expected bias frame, ADU (H, W)."""
        return np.broadcast_to(self.bias_level + self.bias_columns[None, :], self.shape).astype(
            np.float32
        )

    def dark_map(self, exptime: float) -> np.ndarray:
        """Expected dark signal above bias for ``exptime`` seconds, ADU (H, W)."""
        rate = self.dark_current + self.amp_glow.astype(np.float64)
        np.add.at(rate, (self.hot_y, self.hot_x), self.hot_rate)
        return (rate * exptime / self.gain).astype(np.float32)

    def expected_light(
        self, light: LightTruth, *, stars: bool = True, mosaic: bool = True
    ) -> np.ndarray:
        """The noise-free calibrated light, normalised units, in the light's own pixel grid.

        Extended emission, stars (with this light's PSF, trail and transparency), cloud glow
        and satellite trail; no camera defects, noise or cosmic rays. For OSC the Bayer mosaic
        (as calibrated raw data is), or ``(3, H, W)`` with ``mosaic=False``.
        """
        from .camera import cfa_index

        g = light.group
        ext = self.extended[g]
        flux = self.star_flux[g]
        if not self.osc:
            ext, flux = ext[None], flux[None]
        cfa = cfa_index(self.shape, self.bayer) if self.osc and mosaic else None
        fluxes = list(flux) if stars else [np.zeros_like(f) for f in flux]
        return scene(
            list(ext),
            fluxes,
            self.star_x,
            self.star_y,
            light,
            self.pad,
            self.shape,
            self.beta,
            cfa,
            threshold=STAR_THRESHOLD_E / (self.gain * ADC_MAX),
        )

    def saturated(self, light: LightTruth) -> np.ndarray:
        """Pixels of this light whose expected raw value reaches the ADC's limit (star cores
        the truth holds unclipped but the frame cannot). ``lights[0]`` is at the reference
        pointing, so ``saturated(lights[0])`` masks ``sky`` too (for its group)."""
        e = self.expected_light(light)
        raw = e * ADC_MAX * self.flats[light.group] + self.bias_map() + self.dark_map(light.exptime)
        return raw >= 0.97 * ADC_MAX

    def lights_of(self, group: str) -> list[LightTruth]:
        return [lt for lt in self.lights if lt.group == group]

    def matrix(self, light: LightTruth) -> np.ndarray:
        """3x3 affine matrix taking reference ``(x, y, 1)`` to frame ``(x, y, 1)``."""
        h, w = self.shape
        c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        t = np.radians(light.rotation)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        m = np.eye(3)
        m[:2, :2] = rot
        m[:2, 2] = c - rot @ c + np.array([light.dx, light.dy])
        return m

    def to_frame(self, light: LightTruth, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Reference coordinates -> this light's pixel coordinates."""
        m = self.matrix(light)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]

    def to_reference(self, light: LightTruth, x, y) -> tuple[np.ndarray, np.ndarray]:
        """This light's pixel coordinates -> reference coordinates."""
        m = np.linalg.inv(self.matrix(light))
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]

    def stack_noise(
        self, group: str, indices=None, weights=None, *, approved_only: bool = True
    ) -> float:
        """Ideal background noise of a weighted average of calibrated lights of ``group``.

        ``sqrt(sum w_i^2 s_i^2) / sum w_i`` over the chosen lights (default: the good ones,
        i.e. not cloudy or trailed; all of them with ``approved_only=False``). Ignores the
        noise of the calibration masters and the smoothing of interpolation during
        registration, so a real stack should come within a few per cent of it.
        """
        lights = self.lights_of(group)
        if indices is None:
            indices = [lt.index for lt in lights if not (approved_only and lt.bad)]
        chosen = [lt for lt in lights if lt.index in set(indices)]
        if not chosen:
            raise ValueError(f"no lights of {group!r} chosen")
        s = np.array([lt.noise for lt in chosen])
        wts = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
        return float(np.sqrt(np.sum(wts**2 * s**2)) / np.sum(wts))

    # ---- saving -------------------------------------------------------------------------
    def to_json(self, path: str | Path) -> Path:
        """Write ``path`` (JSON: scalars, transforms, coordinates, file paths) and beside it
        ``<stem>.npz`` (images: sky, flats, amp glow, column pattern, star catalogue).

        Returns the path of the ``.npz``. :meth:`from_json` reads both back.
        """
        path = Path(path)
        npz_path = path.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {
            "star_x": self.star_x,
            "star_y": self.star_y,
            "bias_columns": self.bias_columns,
            "amp_glow": self.amp_glow,
        }
        for g in self.groups:
            arrays[f"sky/{g}"] = self.sky[g]
            arrays[f"extended/{g}"] = self.extended[g]
            arrays[f"flats/{g}"] = self.flats[g]
            arrays[f"star_flux/{g}"] = self.star_flux[g]
        doc: dict[str, Any] = {"format": "pxlang.synthetic.Truth/1", "arrays": npz_path.name}
        skip = {
            "sky",
            "extended",
            "flats",
            "star_flux",
            "star_x",
            "star_y",
            "bias_columns",
            "amp_glow",
        }
        for f in fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            if f.name == "lights":
                value = [_light_to_dict(lt) for lt in value]
            elif f.name == "dark_cosmics":
                value = [[x.tolist(), y.tolist()] for x, y in value]
            doc[f.name] = _plain(value)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1))
        np.savez_compressed(npz_path, **arrays)
        return npz_path

    @classmethod
    def from_json(cls, path: str | Path) -> Truth:
        """Read a truth written by :meth:`to_json`."""
        path = Path(path)
        doc = json.loads(path.read_text())
        if doc.get("format") != "pxlang.synthetic.Truth/1":
            raise ValueError(f"{path}: not a pxlang.synthetic truth file")
        with np.load(path.parent / doc["arrays"]) as z:
            arrays = {k: z[k] for k in z.files}
        groups = tuple(doc["groups"])
        kw: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("format", "arrays")}
        kw["groups"] = groups
        kw["shape"] = tuple(kw["shape"])
        for name in ("hot_x", "hot_y", "cold_x", "cold_y"):
            kw[name] = np.asarray(kw[name], dtype=np.int64)
        kw["hot_rate"] = np.asarray(kw["hot_rate"], dtype=np.float64)
        kw["lights"] = [_light_from_dict(d) for d in kw["lights"]]
        kw["dark_cosmics"] = [
            (np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64))
            for x, y in kw["dark_cosmics"]
        ]
        for name in ("star_x", "star_y", "bias_columns", "amp_glow"):
            kw[name] = arrays[name]
        kw["sky"] = {g: arrays[f"sky/{g}"] for g in groups}
        kw["extended"] = {g: arrays[f"extended/{g}"] for g in groups}
        kw["flats"] = {g: arrays[f"flats/{g}"] for g in groups}
        kw["star_flux"] = {g: arrays[f"star_flux/{g}"] for g in groups}
        return cls(**kw)


CLOUD_SLOPE = 0.3  # cloud glow rises by this fraction from the left edge to the right


def scene(
    ext: list[np.ndarray],
    star_flux: list[np.ndarray],
    star_x: np.ndarray,
    star_y: np.ndarray,
    light: LightTruth,
    pad: int,
    shape: tuple[int, int],
    beta: float,
    cfa: np.ndarray | None = None,
    *,
    threshold: float,
    scale: float = 1.0,
) -> np.ndarray:
    """What reaches the sensor for one light, before the flat field, in the units of ``ext``.

    ``ext`` (padded extended emission) and ``star_flux`` are per band (one band for mono,
    R, G, B for OSC: mosaicked through ``cfa``, or returned as (3, H, W) when ``cfa`` is
    None). ``light.extra_background`` and ``light.satellite_peak`` are multiplied by
    ``scale`` (their units are normalised; ``scale`` converts them to the units of ``ext``).
    The camera and the truth both call this, so they cannot disagree.
    """
    from .psf import render_stars

    h, w = shape
    c = ((w - 1) / 2.0, (h - 1) / 2.0)
    th = np.radians(light.rotation)
    cos_t, sin_t = np.cos(th), np.sin(th)
    fx = cos_t * (star_x - c[0]) - sin_t * (star_y - c[1]) + c[0] + light.dx
    fy = sin_t * (star_x - c[0]) + cos_t * (star_y - c[1]) + c[1] + light.dy
    t = np.float32(light.transparency)
    bands = []
    for e, f in zip(ext, star_flux):
        img = _warp(e, light, pad, shape) * t
        if np.any(f > 0):
            img += render_stars(
                shape,
                fx,
                fy,
                f * light.transparency,
                light.fwhm,
                beta,
                light.ellipticity,
                light.trail_angle,
                threshold=threshold,
            )
        bands.append(img)
    if cfa is not None:
        out = np.choose(cfa, bands)
    else:
        out = np.stack(bands) if len(bands) > 1 else bands[0]
    if light.extra_background or light.satellite is not None:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if light.extra_background:
        slope = (1.0 + CLOUD_SLOPE * (xx / w - 0.5)).astype(np.float32)
        out = out + np.float32(light.extra_background * scale) * slope
    if light.satellite is not None:
        x0, y0, x1, y1 = light.satellite
        dist = np.abs((y1 - y0) * (xx - x0) - (x1 - x0) * (yy - y0)) / np.hypot(x1 - x0, y1 - y0)
        trail = light.satellite_peak * scale * np.exp(-0.5 * (dist / 0.9) ** 2)
        out = out + trail.astype(np.float32)
    return out.astype(np.float32)


def _warp(ext: np.ndarray, light: LightTruth, pad: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear samples of the padded extended emission at this light's pixels."""
    h, w = shape
    if light.rotation == 0.0:
        # A pure shift: the four bilinear weights are the same for every pixel, so four
        # weighted slices give what map_coordinates(order=1) would, many times faster.
        y0, x0 = pad - light.dy, pad - light.dx
        iy, ix = int(np.floor(y0)), int(np.floor(x0))
        ty, tx = np.float32(y0 - iy), np.float32(x0 - ix)
        if iy >= 0 and iy + h + 1 <= ext.shape[0] and ix >= 0 and ix + w + 1 <= ext.shape[1]:
            one = np.float32(1.0)
            top = (one - tx) * ext[iy : iy + h, ix : ix + w] + tx * ext[
                iy : iy + h, ix + 1 : ix + w + 1
            ]
            bot = (one - tx) * ext[iy + 1 : iy + h + 1, ix : ix + w] + tx * ext[
                iy + 1 : iy + h + 1, ix + 1 : ix + w + 1
            ]
            return ((one - ty) * top + ty * bot).astype(np.float32)
    from scipy import ndimage

    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    th = np.radians(light.rotation)
    cos_t, sin_t = np.cos(th), np.sin(th)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Frame pixel -> reference point: the inverse of q = R (p - c) + c + d.
    qx, qy = xx - cx - light.dx, yy - cy - light.dy
    coords = np.stack([-sin_t * qx + cos_t * qy + cy + pad, cos_t * qx + sin_t * qy + cx + pad])
    return ndimage.map_coordinates(ext, coords, order=1, mode="nearest").astype(np.float32)


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and tuples -> JSON-able Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _light_to_dict(lt: LightTruth) -> dict[str, Any]:
    return _plain(asdict(lt))


def _light_from_dict(d: dict[str, Any]) -> LightTruth:
    d = dict(d)
    d["cosmic_x"] = np.asarray(d["cosmic_x"], dtype=np.int64)
    d["cosmic_y"] = np.asarray(d["cosmic_y"], dtype=np.int64)
    if d.get("satellite") is not None:
        d["satellite"] = tuple(d["satellite"])
    return LightTruth(**d)
