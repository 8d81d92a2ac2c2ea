"""Built-ins for calibration and integration: files, integrate, superbias, calibrate, cosmetic.

Thin adapters over ``pxlang.process`` (integration, calibration, superbias, cosmetic) and
``pxlang.image.frameset``; the process modules (numba, scipy, astropy) load on first call.
"""

from __future__ import annotations

import os
from typing import Any

from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxError
from ..lang.functions import CallContext
from .common import as_frames, process_error
from .registry import builtin


def _cache_dir(ctx: CallContext) -> str:
    """Where derived frames go: the run's cache folder, else $PXLANG_CACHE, else a hidden
    folder next to the script."""
    opt = ctx.options.get("cache_dir")
    if opt:
        return os.path.join(str(opt), "frames")
    env = os.environ.get("PXLANG_CACHE")
    if env:
        return os.path.join(env, "frames")
    return os.path.join(ctx.base_dir, ".pxlang-cache", "frames")


_DASHED = {"CCD_TEMP", "SET_TEMP", "DATE_OBS"}  # FITS keywords with a '-' in their name


@builtin(
    "files",
    category="preprocess",
    pixinsight="ImageIntegration / ImageCalibration: Add Files",
    siril="convert / link",
    example='files("bias/", IMAGETYP="Bias")',
)
def files(ctx: CallContext, pattern: str, required: bool = True, **header: Any) -> FrameSet:
    """A lazy frame set from a glob pattern or a folder (searched recursively for FITS and
    XISF), sorted by DATE-OBS; only headers are read, pixels when a process needs them.
    Keywords filter by any header keyword: IMAGETYP is tolerant of spelling ('Bias', 'BIAS',
    'Bias Frame', 'Master Bias' are all bias; likewise dark, flat, light), other keywords
    (FILTER, EXPTIME, GAIN, OFFSET, XBINNING, CCD-TEMP as CCD_TEMP, …) compare
    case-insensitively and numbers numerically. An empty result is an error saying what the
    folder holds, unless ``required=false`` (then an empty set: ``count(…) == 0``)."""
    from ..image.frameset import files as _files

    filters = {k.replace("_", "-") if k.upper() in _DASHED else k: v for k, v in header.items()}
    try:
        return _files(ctx.resolve_path(pattern), display=pattern, **filters)
    except PxError:
        if required:
            raise
        return FrameSet([], source=pattern)


@builtin(
    "integrate",
    category="preprocess",
    aliases=("stack",),
    pixinsight="ImageIntegration",
    siril="stack",
    example='integrate(files("bias/"), rejection="winsorized", high=3)',
)
def integrate(
    ctx: CallContext,
    frames: FrameSet | list,
    combine: str = "average",
    rejection: str = "auto",
    low: float | None = None,
    high: float | None = None,
    normalization: str = "auto",
    weights: str = "none",
    memory: int = 0,
    maps: bool = False,
) -> Image | list:
    """Integrate (stack) frames into a master, streaming bands of rows so that RAM does not
    grow with the number of frames. combine: average | median | min | max. rejection: auto
    (by frame count, as the guide: < 7 percentile, 7-14 averaged_sigma, 15-24 winsorized,
    >= 25 linear_fit) | none | minmax | percentile | sigma | averaged_sigma | winsorized |
    linear_fit | esd; low/high default to PixInsight's clipping points for the method
    (sigma-type 4/3, linear fit 5/4, percentile 0.2/0.1, minmax 1/1, esd outliers 0.3 /
    significance 0.05). normalization: auto (flats multiplicative, lights additive_scaling,
    bias/darks none) | none | additive | multiplicative | additive_scaling |
    multiplicative_scaling | local. weights: none | noise | exposure | meta | a header
    keyword. memory: MB for bands (0: automatic). maps=true returns [master, low map, high
    map] (fraction of values rejected per pixel). The master's header records all of it."""
    from ..image.frameset import header_value, normalise_imagetyp
    from ..process import integration

    fs = as_frames(frames, "integrate")
    norm = normalization
    if norm == "auto":
        kind = normalise_imagetyp(header_value(fs.header(0), "IMAGETYP") or "")
        norm = {"flat": "multiplicative", "light": "additive_scaling"}.get(kind, "none")
    try:
        result = integration.integrate(
            fs,
            combine=combine,
            rejection=rejection,
            low=low,
            high=high,
            normalization=norm,
            weights=weights,
            memory=memory * (1 << 20) if memory else None,
            maps=maps,
        )
    except PxError:
        raise
    except ValueError as exc:
        raise process_error(ctx, "integrate", exc) from exc
    return list(result) if isinstance(result, tuple) else result


@builtin(
    "superbias",
    category="preprocess",
    pixinsight="Superbias",
    example='superbias(integrate(files("bias/")))',
)
def superbias(
    ctx: CallContext,
    master_bias: Image,
    layers: int = 7,
    columns: bool = True,
    rows: bool = False,
) -> Image:
    """PixInsight's Superbias: keep the large-scale structure (a multiscale transform with
    `layers` layers) and the column (and, with rows=true, row) pattern of a master bias, and
    drop its random noise, so that a master of a few frames calibrates like one of hundreds."""
    from ..process import superbias as sb

    try:
        data = sb.superbias(master_bias.data, layers=layers, columns=columns, rows=rows)
    except ValueError as exc:
        raise process_error(ctx, "superbias", exc) from exc
    out = master_bias.with_data(data, name="superbias")
    if out.header is not None:
        out.header["IMAGETYP"] = "Master Bias"
        out.header.add_history(
            f"Superbias: layers={layers} columns={columns} rows={rows}".replace("True", "T")
        )
    return out


@builtin(
    "calibrate",
    category="preprocess",
    pixinsight="ImageCalibration",
    siril="preprocess",
    example='calibrate(files("lights/"), bias=integrate(files("bias/")), '
    'dark=integrate(files("darks/")), flat=integrate(files("flats/")))',
)
def calibrate(
    ctx: CallContext,
    frames: FrameSet | Image,
    bias: Image | None = None,
    dark: Image | None = None,
    flat: Image | None = None,
    dark_optimize: bool = False,
    pedestal: float = 0.0,
    output: str | None = None,
    library: str | None = None,
) -> FrameSet | Image:
    """Calibrate frames: subtract bias and dark (the dark scaled by EXPTIME when exposures
    differ; a dark that still holds the bias is not made to remove it twice), divide by the
    flat normalised to its mean (per CFA colour for Bayer frames). Lazy: frames are computed
    when used, written to `output` (a folder) only when given. dark_optimize (off by default)
    scales the dark to minimise noise, as PixInsight does for CCDs; leave it off for CMOS and
    DSLR cameras, whose amp glow does not scale. pedestal: DN (16-bit) added afterwards.
    library: a calibration library (index file or folder; "default" for the user's) from
    which missing masters are chosen by IMAGETYP, EXPTIME, GAIN, OFFSET, binning, FILTER,
    temperature and age."""
    from ..process import calibration

    single = isinstance(frames, Image)
    fs = as_frames(frames, "calibrate")
    if library is not None:
        from ..run import library as lib

        path = None if library == "default" else ctx.resolve_path(library)
        header = fs.header(0)
        if bias is None:
            bias = lib.load_master(lib.choose("bias", header, path, warn=ctx.warning, need=False))
        if dark is None:
            dark = lib.load_master(lib.choose("dark", header, path, warn=ctx.warning, need=False))
        if flat is None:
            flat = lib.load_master(lib.choose("flat", header, path, warn=ctx.warning, need=False))
        if bias is None and dark is None and flat is None:
            lib.choose("dark", header, path, warn=ctx.warning, need=True)  # raises, explaining
    try:
        out = calibration.calibrate(
            fs,
            bias=bias,
            dark=dark,
            flat=flat,
            dark_optimize=dark_optimize,
            pedestal=pedestal,
            output=None if output is None else ctx.resolve_path(output),
            warn=ctx.warning,
            cache_dir=_cache_dir(ctx),
        )
        return out.read(0) if single else out
    except PxError:
        raise
    except ValueError as exc:
        raise process_error(ctx, "calibrate", exc) from exc


@builtin(
    "cosmetic",
    category="preprocess",
    aliases=("cosmetic_correction",),
    pixinsight="CosmeticCorrection",
    siril="find_hot / cosme",
    example='cosmetic(files("lights/"), sigma=4)',
)
def cosmetic(
    ctx: CallContext,
    frames: FrameSet | Image,
    hot: str | bool = "auto",
    cold: bool = False,
    sigma: float = 5.0,
    master_dark: Image | None = None,
    cfa: str | bool = "auto",
) -> FrameSet | Image:
    """Cosmetic correction: find hot (and with cold=true, cold) pixels in the master dark, or
    else in the median of the frames (dithered stars blur out, defects stay), and replace them
    by the median of their same-colour neighbours (CFA-aware: cfa="auto" follows BAYERPAT).
    A pixel is a defect when it stands `sigma` robust sigmas above its neighbours' median and
    above all of them, unlike a star. The number fixed is in each frame's header (COSMHOT,
    COSMCOLD)."""
    from ..process import cosmetic as cc

    single = isinstance(frames, Image)
    fs = as_frames(frames, "cosmetic")
    try:
        out = cc.cosmetic(
            fs,
            hot=hot,
            cold=cold,
            sigma=sigma,
            master_dark=master_dark,
            cfa=cfa,
            cache_dir=_cache_dir(ctx),
        )
        return out.read(0) if single else out
    except PxError:
        raise
    except ValueError as exc:
        raise process_error(ctx, "cosmetic", exc) from exc
