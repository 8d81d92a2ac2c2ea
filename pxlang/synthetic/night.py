"""A whole night: bias, darks, flats and dithered lights written as 16-bit FITS, with truth."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np

from .camera import ADC_MAX, Camera, cfa_index, make_camera, make_cosmics, make_flat
from .sky import band_key, make_sky
from .truth import STAR_THRESHOLD_E, LightTruth, Truth, scene

# Spellings of IMAGETYP differ between capture programs (MaxIm/SGP, NINA, APT...); the
# default mixes them across frame types so that readers must match tolerantly.
DEFAULT_IMAGETYP = {"bias": "Bias Frame", "dark": "DARK", "flat": "Flat Field", "light": "Light"}
LAYOUTS = ("flat", "siril", "nested")
# Flat exposures (s) per filter; others get 1 s. The panel brightness is set so flats reach
# about 45 % of the ADC range whatever the exposure.
_FLAT_EXPTIME = {"Ha": 4.0, "OIII": 5.0, "SII": 6.0, "RGB": 2.0}
_OSC_FLAT_CAST = (0.8, 1.0, 0.65)  # an LED panel's colour through the R, G, B filters
_OSC_BANDS = ("R", "G", "B")
_T_BIAS = datetime(2026, 9, 14, 10, 0, 0)
_T_LIGHTS = datetime(2026, 9, 15, 20, 30, 0)
_T_FLATS = datetime(2026, 9, 16, 6, 0, 0)
_PIXEL_SIZE, _FOCAL_LENGTH = 3.76, 530.0  # um, mm: 1.46 arcsec/px


def make_night(
    outdir: str | Path,
    *,
    size: tuple[int, int] = (256, 384),
    filters: tuple[str, ...] = ("Ha", "OIII"),
    lights_per_filter: int = 8,
    n_bias: int = 5,
    n_darks: int = 5,
    n_flats: int = 5,
    exposure: float | Mapping[str, float] = 300.0,
    osc: bool = False,
    bayer: str = "RGGB",
    seed: int = 0,
    layout: str = "flat",
    cloudy: bool = True,
    trailed: bool = True,
    satellite: bool = False,
    meridian_flip: bool = False,
    fwhm: float = 3.0,
    beta: float = 4.0,
    dither: float = 6.0,
    gain: float = 0.8,
    read_noise: float = 3.0,
    bias_level: float = 600.0,
    dark_current: float = 0.02,
    amp_glow: float = 0.3,
    star_density: float = 4000.0,
    nebula: float = 1.0,
    cosmic_rate: float = 15.0,
    flat_level: float = 0.45,
    imagetyp: Mapping[str, str] | None = None,
    object_name: str = "SYNTH-1",
    workers: int | None = None,
) -> Truth:
    """Write a synthetic night of raw frames under ``outdir`` and return its :class:`Truth`.

    Deterministic for a seed: the same arguments write byte-identical files. Each frame draws
    its noise from its own seed (``seed``, kind, filter, index) and its DATE-OBS from its slot
    (filters alternate light by light), so adding lights leaves every frame already made
    unchanged (without ``meridian_flip``, whose halves depend on the count).

    Parameters
    ----------
    outdir : folder to write into (created).
    size : (H, W) in pixels.
    filters : mono filter names (``FILTER`` header; masters are ``<FILTER>.fits``). Known:
        Ha, OIII, SII, L, R, G, B (others get a generic broadband sky). Ignored with ``osc``.
    lights_per_filter, n_bias, n_flats : frame counts; ``n_flats`` per filter.
    n_darks : darks per distinct light exposure.
    exposure : light exposure in s, or a mapping filter -> s.
    osc : one-shot colour: an RGGB (``bayer``) mosaic, ``BAYERPAT`` in every header, one
        group ``"RGB"`` whose truth is (3, H, W).
    layout : ``"flat"`` (one folder, meaningful names), ``"siril"`` (``biases/ darks/
        flats/<F>/ lights/<F>/``) or ``"nested"`` (date folders; all flats in one folder).
    cloudy, trailed, satellite : the first filter's third light is cloudy (transparency 0.35,
        background raised); the last filter's sixth light (fourth with one filter) has
        trailed stars (eccentricity ~0.89); the first filter's fifth light a satellite trail.
        A slot beyond ``lights_per_filter`` is left out; :attr:`LightTruth.bad` tells.
    meridian_flip : the second half of each filter's lights is rotated by 180 degrees.
    fwhm, beta : nominal Moffat PSF (pixels); lights vary by -3..+8 % in FWHM.
    dither : maximum dither offset in pixels (uniform in +-dither on each axis).
    gain, read_noise, bias_level, dark_current, amp_glow : camera (e-/ADU, e-, ADU, e-/s,
        e-/s at the right edge).
    star_density : stars per megapixel; ``nebula`` scales nebular emission.
    cosmic_rate : cosmic-ray hits per megapixel per 100 s (at least one per light).
    flat_level : mean flat level as a fraction of the ADC range.
    imagetyp : IMAGETYP spelling per kind (``bias``, ``dark``, ``flat``, ``light``).
    object_name : OBJECT header and light file-name prefix.
    workers : threads making frames (default: up to 2, the cores CI has); the files do not
        depend on it.
    """
    from astropy.io import fits

    t_start = time.perf_counter()
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise ValueError(f"size must be at least 32x32; got {size}")
    if lights_per_filter < 1:
        raise ValueError("lights_per_filter must be at least 1")
    groups = ("RGB",) if osc else tuple(filters)
    if not groups or len(set(groups)) != len(groups):
        raise ValueError(f"filters must be distinct and not empty; got {filters}")
    for g in groups:
        if not re.fullmatch(r"[A-Za-z0-9_+-]+", g):
            raise ValueError(f"filter names become file names; {g!r} is not a safe one")
    bands = _OSC_BANDS if osc else groups
    if isinstance(exposure, Mapping):
        missing = [g for g in groups if g not in exposure]
        if missing:
            raise ValueError(f"exposure has no value for {missing}")
        exp = {g: float(exposure[g]) for g in groups}
    else:
        exp = {g: float(exposure) for g in groups}
    types = {**DEFAULT_IMAGETYP, **(imagetyp or {})}
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)

    n = lights_per_filter
    max_rot = 1.0  # degrees, beyond any meridian flip
    pad = int(np.ceil(dither + np.radians(max_rot) * 0.5 * np.hypot(h, w))) + 8
    sky = make_sky(seed, (h, w), pad, bands, star_density=star_density, nebula=nebula)
    cam = make_camera(
        seed,
        (h, w),
        gain=gain,
        read_noise=read_noise,
        bias_level=bias_level,
        dark_current=dark_current,
        amp_glow=amp_glow,
        bayer=bayer if osc else None,
    )
    for g in groups:
        cam.flats[g] = make_flat(seed, (h, w), g, cam)
    cfa = cfa_index((h, w), bayer) if osc else None
    scale = 1.0 / (cam.gain * ADC_MAX)  # electrons -> normalised units

    def header(kind: str, exptime: float, when: datetime, group: str | None, rng) -> fits.Header:
        hdr = fits.Header()
        hdr["IMAGETYP"] = (types[kind], "type of frame")
        hdr["EXPTIME"] = (float(exptime), "[s] exposure time")
        hdr["DATE-OBS"] = (when.isoformat(timespec="milliseconds"), "UTC start of exposure")
        if group is not None and not osc:
            hdr["FILTER"] = (group, "filter")
        if kind == "light":
            hdr["OBJECT"] = (object_name, "target")
        hdr["INSTRUME"] = ("SimCam 26M", "camera (synthetic)")
        hdr["TELESCOP"] = ("SimScope 106/530", "telescope (synthetic)")
        hdr["FOCALLEN"] = (_FOCAL_LENGTH, "[mm] focal length")
        hdr["XPIXSZ"] = (_PIXEL_SIZE, "[um] pixel width")
        hdr["YPIXSZ"] = (_PIXEL_SIZE, "[um] pixel height")
        hdr["XBINNING"] = (1, "binning")
        hdr["YBINNING"] = (1, "binning")
        hdr["GAIN"] = (100, "camera gain setting")
        hdr["EGAIN"] = (round(cam.gain, 4), "[e-/ADU] electrons per ADU")
        hdr["OFFSET"] = (50, "camera offset setting")
        hdr["CCD-TEMP"] = (round(-10.0 + float(rng.uniform(-0.2, 0.2)), 1), "[C] sensor")
        hdr["SET-TEMP"] = (-10.0, "[C] cooler set point")
        if osc:
            hdr["BAYERPAT"] = (bayer, "Bayer pattern from pixel [0,0], top-down")
            hdr["XBAYROFF"] = (0, "Bayer X offset")
            hdr["YBAYROFF"] = (0, "Bayer Y offset")
            hdr["ROWORDER"] = ("TOP-DOWN", "first row is the top of the image")
        hdr["SWCREATE"] = ("pxlang.synthetic", "synthetic frame")
        hdr["PXSEED"] = (seed, "pxlang.synthetic seed")
        return hdr

    def write(path: Path, data: np.ndarray, hdr) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fits.PrimaryHDU(data=data, header=hdr).writeto(path, overwrite=True)
        return str(path)

    paths: dict = {"bias": [], "dark": [], "flat": {g: [] for g in groups}, "light": {}}

    paths["light"] = {g: [] for g in groups}
    cam.bias_map(), cam.dark_rate_map()  # fill the caches before threads share the camera
    jobs: list = []

    # --- bias ------------------------------------------------------------------------------
    def bias_job(i: int):
        rng = np.random.default_rng([seed, 400, i])
        raw = cam.readout(rng, None, 0.0)
        when = _T_BIAS + timedelta(seconds=2 * i)
        p = out / _place(layout, "bias", None, f"Bias_{i + 1:04d}.fits", when)
        return "bias", write(p, raw, header("bias", 0.0, when, None, rng)), None

    jobs += [partial(bias_job, i) for i in range(n_bias)]

    # --- darks, one set per light exposure --------------------------------------------------
    dark_exps = sorted(set(exp.values()))
    dark_cosmics: list = []

    def dark_job(t: float, i: int, when: datetime):
        rng = np.random.default_rng([seed, 500, int(round(t * 1000)), i])
        cx, cy, ce = make_cosmics(rng, (h, w), _n_cosmics(rng, cosmic_rate, h, w, t))
        raw = cam.readout(rng, None, t, deposits=(cx, cy, ce))
        sub = f"Dark_{t:g}s" if len(dark_exps) > 1 else None
        p = out / _place(layout, "dark", sub, f"Dark_{t:g}s_{i + 1:04d}.fits", when)
        return "dark", write(p, raw, header("dark", t, when, None, rng)), (cx, cy)

    when = _T_BIAS + timedelta(minutes=10)
    for t in dark_exps:
        for i in range(n_darks):
            jobs.append(partial(dark_job, t, i, when))
            when += timedelta(seconds=t + 2)

    # --- lights ----------------------------------------------------------------------------
    special = _special_frames(groups, n, cloudy, trailed, satellite)
    lights: list[LightTruth] = []
    safe_obj = re.sub(r"[^A-Za-z0-9_+-]", "", object_name) or "Light"
    slot = max(exp.values()) + 8.0  # filters alternate: light i of every filter, then i + 1

    def light_job(gi: int, g: str, i: int):
        t = exp[g]
        gbands = _OSC_BANDS if osc else (g,)
        rng = np.random.default_rng([seed, 300, band_key(g), i])
        when = _T_LIGHTS + timedelta(seconds=(i * len(groups) + gi) * slot)
        first = gi == 0 and i == 0
        dx, dy = (0.0, 0.0) if first else tuple(rng.uniform(-dither, dither, 2))
        rot = special.get(("rot", g, i), 0.0)
        if meridian_flip and i >= (n + 1) // 2:
            rot += 180.0
        lt = LightTruth(
            group=g,
            index=i,
            path="",
            exptime=t,
            date_obs=when.isoformat(timespec="milliseconds"),
            dx=float(dx),
            dy=float(dy),
            rotation=float(rot),
            fwhm=fwhm if first else float(fwhm * rng.uniform(0.97, 1.08)),
        )
        bkg_e = float(np.mean([sky.background[b] for b in gbands])) * t
        if special.get(("cloudy", g, i)):
            # Cloud: stars and nebula dimmed, a raised sloped background (lit by light
            # pollution) on top.
            lt.cloudy, lt.transparency = True, 0.35
            lt.extra_background = 3.0 * bkg_e * scale
        if special.get(("trailed", g, i)):
            lt.trailed, lt.ellipticity = True, 0.55
            lt.trail_angle = float(rng.uniform(0.0, 180.0))
        if special.get(("satellite", g, i)):
            lt.satellite = _satellite(rng, (h, w))
            lt.satellite_peak = (300.0 + 5.0 * bkg_e) * scale
        signal = scene(
            [sky.ext[b] * np.float32(t) for b in gbands],
            [sky.star_flux(b) * t for b in gbands],
            sky.star_x,
            sky.star_y,
            lt,
            pad,
            (h, w),
            beta,
            cfa,
            threshold=STAR_THRESHOLD_E,
            scale=1.0 / scale,
        )
        cx, cy, ce = make_cosmics(rng, (h, w), _n_cosmics(rng, cosmic_rate, h, w, t))
        lt.cosmic_x, lt.cosmic_y = cx, cy
        flat = cam.flats[g]
        raw = cam.readout(rng, signal * flat, t, deposits=(cx, cy, ce))
        lt.noise = _expected_noise(cam, signal, flat, cam.dark_rate_map(), t)
        name = f"{safe_obj}_{g}_{t:g}s_{i + 1:04d}.fits"
        p = out / _place(layout, "light", g, name, _T_LIGHTS, safe_obj)
        lt.path = write(p, raw, header("light", t, when, g, rng))
        return lt

    light_jobs = [partial(light_job, gi, g, i) for gi, g in enumerate(groups) for i in range(n)]
    last_light = _T_LIGHTS + timedelta(seconds=n * len(groups) * slot)

    # --- flats -----------------------------------------------------------------------------
    flat_t: dict[str, float] = {g: _FLAT_EXPTIME.get(g, 1.0) for g in groups}
    illum = np.full((h, w), flat_level * ADC_MAX * cam.gain, dtype=np.float32)
    if osc:
        illum *= np.asarray(_OSC_FLAT_CAST, dtype=np.float32)[cfa]

    def flat_job(g: str, i: int, when: datetime):
        rng = np.random.default_rng([seed, 600, band_key(g), i])
        panel = np.float32(rng.uniform(0.99, 1.01))  # the panel flickers a little
        raw = cam.readout(rng, illum * panel * cam.flats[g], flat_t[g])
        p = out / _place(layout, "flat", g, f"Flat_{g}_{i + 1:04d}.fits", when)
        return "flat", write(p, raw, header("flat", flat_t[g], when, g, rng)), g

    when = max(_T_FLATS, last_light + timedelta(minutes=10))
    for g in groups:
        for i in range(n_flats):
            jobs.append(partial(flat_job, g, i, when))
            when += timedelta(seconds=flat_t[g] + 2)
        when += timedelta(minutes=2)  # filter change

    # Every frame draws from its own generator, so threads change the speed, never the data;
    # results come back in submission order.
    lights = _run(light_jobs, workers)
    for lt in lights:
        paths["light"][lt.group].append(lt.path)
    for kind, path, extra in _run(jobs, workers):
        if kind == "flat":
            paths["flat"][extra].append(path)
        else:
            paths[kind].append(path)
        if kind == "dark":
            dark_cosmics.append(extra)

    # --- truth: the reference pointing, nominal PSF, no defects ---------------------------
    truth_sky, extended, star_flux = {}, {}, {}
    ref = LightTruth(
        group="",
        index=-1,
        path="",
        exptime=0.0,
        date_obs="",
        dx=0.0,
        dy=0.0,
        rotation=0.0,
        fwhm=fwhm,
    )
    for g in groups:
        t = exp[g]
        gbands = _OSC_BANDS if osc else (g,)
        ext_n = [sky.ext[b] * np.float32(t * scale) for b in gbands]
        flux_n = [sky.star_flux(b) * (t * scale) for b in gbands]
        truth_sky[g] = scene(
            ext_n,
            flux_n,
            sky.star_x,
            sky.star_y,
            ref,
            pad,
            (h, w),
            beta,
            None,
            threshold=STAR_THRESHOLD_E * scale,
        )
        extended[g] = np.stack(ext_n) if osc else ext_n[0]
        star_flux[g] = np.stack(flux_n) if osc else flux_n[0]

    return Truth(
        outdir=str(out),
        seed=int(seed),
        shape=(h, w),
        groups=groups,
        osc=bool(osc),
        bayer=bayer if osc else None,
        layout=layout,
        exposure=exp,
        flat_exptime=flat_t,
        sky=truth_sky,
        extended=extended,
        pad=pad,
        star_x=sky.star_x,
        star_y=sky.star_y,
        star_flux=star_flux,
        fwhm=float(fwhm),
        beta=float(beta),
        lights=lights,
        gain=cam.gain,
        read_noise=cam.read_noise,
        bias_level=cam.bias_level,
        bias_columns=cam.bias_columns,
        dark_current=cam.dark_current,
        amp_glow=cam.amp_glow,
        hot_x=cam.hot_x,
        hot_y=cam.hot_y,
        hot_rate=cam.hot_rate,
        cold_x=cam.cold_x,
        cold_y=cam.cold_y,
        cold_response=cam.cold_response,
        flats=dict(cam.flats),
        pixel_size=_PIXEL_SIZE,
        focal_length=_FOCAL_LENGTH,
        paths=paths,
        dark_cosmics=dark_cosmics,
        seconds=time.perf_counter() - t_start,
    )


def _run(jobs: list, workers: int) -> list:
    """Run jobs (on ``workers`` threads: numpy releases the GIL for most of a frame's work)."""
    if workers <= 1 or len(jobs) < 2:
        return [job() for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


def _place(layout, kind, sub, name, when, obj="Light") -> Path:
    """Relative path of a file in the chosen layout."""
    if layout == "flat":
        return Path(name)
    if layout == "siril":
        folder = {"bias": "biases", "dark": "darks", "flat": "flats", "light": "lights"}[kind]
        return Path(folder, sub, name) if sub else Path(folder, name)
    day = when.date().isoformat()
    if kind in ("bias", "dark"):
        return Path("calibration", day, sub or kind.capitalize(), name)
    if kind == "flat":  # every filter's flats in one folder: only headers tell them apart
        return Path(day, "flats", name)
    return Path(day, obj, sub, name)


def _special_frames(groups, n, cloudy, trailed, satellite) -> dict:
    """Which lights get a defect or a rotation: fixed slots (present when the filter has that
    many lights), so adding lights never moves them."""
    wanted = [
        ("cloudy", groups[0], 2, cloudy),
        ("trailed", groups[-1], 3 if len(groups) == 1 else 5, trailed),
        ("satellite", groups[0], 4, satellite),
    ]
    special: dict = {}
    for kind, g, k, on in wanted:
        if on and k < n:
            special[(kind, g, k)] = True
    # "A small rotation for one or two": a slightly loose camera, not a flip.
    for g, k, angle in ((groups[0], 1, 0.5), (groups[-1], 6, -0.7)):
        if k < n:
            special[("rot", g, k)] = angle
    return special


def _satellite(rng, shape):
    """A straight trail from the left edge to the right edge."""
    h, w = shape
    return (0.0, float(rng.uniform(0.1, 0.9) * h), float(w - 1), float(rng.uniform(0.1, 0.9) * h))


def _n_cosmics(rng, rate, h, w, t) -> int:
    return max(1, int(rng.poisson(rate * h * w / 1e6 * t / 100.0)))


def _expected_noise(cam: Camera, bkg_e, flat, rate_map, t) -> float:
    """Median background noise of the calibrated light (perfect masters), normalised."""
    var_adu = (bkg_e * flat + rate_map * t) / cam.gain**2 + cam.read_noise_adu**2 + 1.0 / 12.0
    sigma = np.sqrt(var_adu) / np.maximum(flat, 1e-6) / ADC_MAX
    return float(np.median(sigma))
