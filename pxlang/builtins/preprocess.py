"""Built-ins for calibration and integration: files, integrate, superbias, calibrate, cosmetic.

Thin adapters over ``pxlang.process`` (integration, calibration, superbias, cosmetic) and
``pxlang.image.frameset``; the process modules (numba, scipy, astropy) load on first call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxError, PxIOError
from ..lang.functions import CallContext
from .common import as_frames, process_error, stage_label
from .registry import builtin


def _cache_dir(ctx: CallContext) -> str:
    """Where derived frames go: the run's cache folder, else $PXLANG_CACHE, else a hidden
    folder next to the script."""
    from ..run.uptodate import cache_root

    return os.path.join(cache_root(ctx.options, ctx.base_dir), "frames")


# ---------------------------------------------------------------------------- cached results
#
# Whole-set results (integrate, superbias, drizzle) are cached as FITS files in the cache
# folder, named by a hash of everything they depend on: each frame's content key
# (FrameSet.content_key: the file, or a derived frame's inputs and operation), the per-frame
# meta the result reads (weights, local-normalization models), every parameter and the
# pxlang version. An unchanged re-run loads them (memory-mapped) instead of recomputing; a
# changed frame or parameter gives another name. Frames held only in memory, and runs with
# the option cache=false, are not cached.

_RESULT_VERSION = "1"  # bump when what a cached result means changes


def _results_on(ctx: CallContext) -> bool:
    return ctx.options.get("cache", True) is not False


def _digest_value(h: Any, value: Any) -> None:
    """Feed a meta value into a hash: arrays by their bytes, models and transforms by their
    arrays, anything else by its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        h.update(repr(value).encode())
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _digest_value(h, v)
        h.update(b"]")
    elif hasattr(value, "to_arrays"):  # registration Transform
        _digest_value(h, sorted(value.to_arrays().items()))
    elif hasattr(value, "grid") or hasattr(value, "models"):  # normalization model
        from ..process.normalization import model_to_arrays

        _digest_value(h, sorted(model_to_arrays(value).items()))
    else:
        h.update(repr(value).encode())


def _result_key(
    kind: str, fs: FrameSet | None, params: dict[str, Any], meta: Callable[[int], Any] | None
) -> str:
    """The cache key of a result of ``kind`` over ``fs`` (see above)."""
    from .._version import __version__

    h = hashlib.sha256(f"{kind}|{_RESULT_VERSION}|{__version__}".encode())
    _digest_value(h, sorted((k, v) for k, v in params.items()))
    if fs is not None:
        for i in range(len(fs)):
            h.update(f"|{fs.content_key(i)}".encode())
            if meta is not None:
                _digest_value(h, meta(i))
    return h.hexdigest()[:40]  # 160 bits: fits a FITS card (PXREJKEY) with its comment


def _result_path(ctx: CallContext, kind: str, key: str, suffix: str = ".fits") -> str:
    return os.path.join(_cache_dir(ctx), f"{kind}_{key[:24]}{suffix}")


def _cacheable(ctx: CallContext, fs: FrameSet) -> bool:
    return _results_on(ctx) and all(fs.is_persistent(i) for i in range(len(fs)))


def _load_cached(path: str) -> Image | None:
    """A cached result, with the header it had before it was written (the writer's version
    stamp removed); None when absent or unreadable (then it is recomputed)."""
    from ..image import io
    from ..image.provenance import provenance_lines

    if not os.path.exists(path):
        return None
    try:
        img = io.load(path)
    except PxError:
        return None
    img.shown_path = None  # a cache file means nothing to the user: messages say "the master…"
    hdr = img.header
    if hdr is not None:
        hdr.remove("PXVERSN", ignore_missing=True, remove_all=True)
        stamp = provenance_lines(None)
        hist = list(hdr.get("HISTORY", []))
        if stamp and hist[-len(stamp) :] == stamp:
            del hdr["HISTORY"]
            for line in hist[: -len(stamp)]:
                hdr.add_history(line)
    return img


def _save_cached(path: str, img: Image) -> Image:
    """Write a result to the cache (atomically) and give it back as a later run will load
    it (memory-mapped, the same header), so that what follows sees the same values and
    keys whether this run computed it or not. A cache that cannot be written only costs
    time: then the image itself."""
    from ..image import io

    hdr = img.header.copy() if img.header is not None else None
    try:
        io.save(img, path, header=hdr)
    except (PxError, OSError):
        return img
    out = _load_cached(path)
    if out is None:
        return img
    out.name = img.name
    return out


def _frame_map_path(ctx: CallContext, fs: FrameSet, i: int, key: str) -> str:
    """Frame i's rejection map of the integration ``key`` (see ``integrate``)."""
    stem = os.path.basename(fs.name(i)).split(".")[0] or f"frame{i + 1}"
    digest = hashlib.sha256(f"{fs.content_key(i)}|{key}".encode()).hexdigest()[:20]
    return os.path.join(_cache_dir(ctx), f"{stem}_{digest}.rejection.npy")


def drizzle_data(ctx: CallContext, integration: Image) -> dict[str, Any] | None:
    """What an integration recorded for drizzle(): ``{"key", "frames" (content key -> index),
    "scale", "offset" (channels, N), "weights" (N,)}``, or None when it recorded nothing or
    its files are gone from the cache."""
    hdr = integration.header
    key = str(hdr.get("PXREJKEY", "")) if hdr is not None else ""
    if not key:
        return None
    path = _result_path(ctx, "integrate", key, ".drizzle.npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = [str(k) for k in z["keys"]]
            return {
                "key": key,
                "frames": {k: j for j, k in enumerate(keys)},
                "scale": z["scale"],
                "offset": z["offset"],
                "weights": z["weights"],
            }
    except (OSError, ValueError, KeyError):
        return None


_DASHED = {"CCD_TEMP", "SET_TEMP", "DATE_OBS"}  # FITS keywords with a '-' in their name


@builtin(
    "files",
    category="preprocess",
    pixinsight="ImageIntegration / ImageCalibration: Add Files",
    siril="convert / link",
    example='files("bias/", IMAGETYP="Bias")',
)
def files(
    ctx: CallContext,
    pattern: str,
    required: bool = True,
    exclude: str | None = None,
    **header: Any,
) -> FrameSet:
    """A lazy frame set from a glob pattern or a folder (searched recursively for FITS and
    XISF), sorted by DATE-OBS; only headers are read, pixels when a process needs them.
    Keywords filter by any header keyword: IMAGETYP is tolerant of spelling ('Bias', 'BIAS',
    'Bias Frame', 'Master Bias' are all bias; likewise dark, flat, light), other keywords
    (FILTER, EXPTIME, GAIN, OFFSET, XBINNING, CCD-TEMP as CCD_TEMP, …) compare
    case-insensitively and numbers numerically. An empty result is an error saying what the
    folder holds, unless ``required=false`` (then an empty set: ``count(…) == 0``).
    ``exclude``: a folder left out of the search (e.g. a workflow's output folder inside
    its input folder); the run's cache folder always is."""
    from ..image.frameset import files as _files
    from ..run.uptodate import cache_root

    filters = {k.replace("_", "-") if k.upper() in _DASHED else k: v for k, v in header.items()}
    try:
        return _files(
            ctx.resolve_path(pattern),
            display=pattern,
            warn=ctx.warning,
            # the run's own cache is never input (its masters would be found as frames)
            exclude=[cache_root(ctx.options, ctx.base_dir)]
            + ([ctx.resolve_path(exclude)] if exclude else []),
            **filters,
        )
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

    fs = as_frames(frames, "integrate")
    n = len(fs)
    norm = normalization
    if norm == "auto":
        kind = normalise_imagetyp(header_value(fs.header(0), "IMAGETYP") or "")
        norm = {"flat": "multiplicative", "light": "additive_scaling"}.get(kind, "none")
    key = None
    # registered frames (which carry their transforms for drizzle) get each frame's rejected
    # pixels recorded, as ImageIntegration writes them into the .xdrz drizzle files
    record = False
    if n and _cacheable(ctx, fs):
        record = all("transform" in f.meta for f in fs.frames)
        params = {
            "combine": combine,
            "rejection": rejection,
            "low": low,
            "high": high,
            "normalization": norm,
            "weights": weights if isinstance(weights, str) else list(weights),
            "maps": maps,
            "drizzle": record,
        }
        key = _result_key(
            "integrate", fs, params, lambda i: _integration_meta(fs, i, norm, weights)
        )
        hit = _cached_integration(ctx, fs, key, maps, record)
        if hit is not None:
            master = hit[0] if maps else hit
            for reason in _left_out(master.header):  # said again, as the first run said it
                ctx.warning(f"integrate(): left out of the {stage_label('master', fs)}: {reason}")
            return hit
    from ..process import integration  # numba and scipy: only when something is computed
    from ..run.executor import executor_for
    from ..run.progress import stage

    left: list[str] = []  # why frames were left out, kept in the master's header
    while True:
        frame_maps = [_frame_map_path(ctx, fs, i, key) for i in range(len(fs))] if record else None
        label = stage_label("integrate", fs)
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
                frame_maps=frame_maps,
                executor=executor_for(ctx.options),  # bands as tasks on the run's cluster
                progress=lambda total, _label=label: stage(ctx.options, _label, total),
                frame_errors=(PxIOError,),
            )
            break
        except (PxError, ValueError) as exc:
            for p in frame_maps or ():
                with contextlib.suppress(OSError):
                    os.remove(f"{p}.{os.getpid()}.tmp")
            if isinstance(exc, integration.FrameError) and len(fs) > 1:
                # one damaged frame (all NaN, unreadable) costs that frame, not the master;
                # the warning names it, NCOMBINE counts the others
                ctx.warning(f"integrate(): left out of the {stage_label('master', fs)}: {exc}")
                left.append(str(exc))
                keep = [j for j in range(len(fs)) if j != exc.index]
                fs = fs._subset(keep)
                if isinstance(weights, (list, tuple)):
                    weights = [weights[j] for j in keep]
                continue
            if isinstance(exc, PxError):
                raise
            raise process_error(ctx, "integrate", exc) from exc
    images = list(result) if isinstance(result, tuple) else [result]
    for k, reason in enumerate(left, 1):
        # astropy (8.0) misreads single quotes in a long string continued over CONTINUE cards
        text = reason.replace("'", '"')
        images[0].header[f"{LEFT_OUT}{k}"] = (text, "frame left out of this master")
    if key is not None:
        if record:
            _save_drizzle_data(ctx, fs, key, norm, weights, images[0])
        images = [
            _save_cached(_result_path(ctx, "integrate", key, suffix), img)
            for img, suffix in zip(images, (".fits", ".low.fits", ".high.fits"))
        ]
        for img in images[1:]:
            img.header = None
    return images if maps else images[0]


LEFT_OUT = "PXLEFT"  # PXLEFT1, PXLEFT2…: a frame left out of a master, and why


def _left_out(header: Any) -> list[str]:
    """The reasons recorded under PXLEFT1, PXLEFT2… (frames left out of a master)."""
    out = []
    for k in range(1, 1000):
        reason = None if header is None else header.get(f"{LEFT_OUT}{k}")
        if reason is None:
            break
        out.append(str(reason).replace('"', "'"))
    return out


def _integration_meta(fs: FrameSet, i: int, norm: str, weights: Any) -> Any:
    """The per-frame meta an integration reads besides the pixels: the local-normalization
    model, and the weight when it is a measured property or a header keyword."""
    from ..image.frameset import header_value

    meta = fs.frames[i].meta
    out: list[Any] = [meta.get("normalize") if norm == "local" else None]
    if isinstance(weights, str) and weights.lower() not in ("none", "", "noise", "exposure"):
        name = "weight" if weights.lower() == "meta" else weights
        value = meta.get(name)
        out.append(value if value is not None else header_value(fs.header(i), name))
    return out


def _cached_integration(
    ctx: CallContext, fs: FrameSet, key: str, maps: bool, record: bool
) -> Image | list | None:
    """The integration ``key`` from the cache, or None (then it is recomputed)."""
    if record:
        if not os.path.exists(_result_path(ctx, "integrate", key, ".drizzle.npz")):
            return None
        if not all(os.path.exists(_frame_map_path(ctx, fs, i, key)) for i in range(len(fs))):
            return None
    suffixes = (".fits", ".low.fits", ".high.fits") if maps else (".fits",)
    images = [_load_cached(_result_path(ctx, "integrate", key, s)) for s in suffixes]
    if any(img is None for img in images):
        return None
    images[0].name = "integration"
    for img, name in zip(images[1:], ("rejection_low", "rejection_high")):
        img.name, img.header = name, None
    return images if maps else images[0]


def _save_drizzle_data(
    ctx: CallContext, fs: FrameSet, key: str, norm: str, weights: Any, master: Image
) -> None:
    """Beside the per-frame rejection maps: each frame's normalization (a, b per channel)
    and weight as the integration used them, for drizzle(..., integration=)."""
    from ..process import integration

    channels = 3 if len(fs.shape) == 3 else 1
    scale, offset = integration._normalisation(fs, norm, channels)
    w = integration._weights(fs, weights)
    if w is None:
        w = np.ones(len(fs))
    from ..image import io

    arrays = {
        "keys": np.array([fs.content_key(i) for i in range(len(fs))]),
        "scale": scale,
        "offset": offset,
        "weights": np.asarray(w, np.float64),
    }
    if not io.save_arrays(_result_path(ctx, "integrate", key, ".drizzle.npz"), arrays):
        return
    master.header["PXREJKEY"] = (key, "drizzle data of this integration")


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

    path = None
    if _results_on(ctx):
        # keyed by the master's pixels (and header): hashing 16 MB costs ~20 ms, the
        # multiscale transform seconds
        h = hashlib.sha256()
        _digest_value(h, np.asarray(master_bias.data))
        if master_bias.header is not None:
            h.update(master_bias.header.tostring().encode())
        params = {"layers": layers, "columns": columns, "rows": rows, "master": h.hexdigest()}
        path = _result_path(ctx, "superbias", _result_key("superbias", None, params, None))
        hit = _load_cached(path)
        if hit is not None:
            hit.name = "superbias"
            return hit
    try:
        data = sb.superbias(master_bias.data, layers=layers, columns=columns, rows=rows)
    except ValueError as exc:
        raise process_error(ctx, "superbias", exc) from exc
    out = master_bias.with_data(data, name="superbias")
    if out.header is not None:
        out.header["IMAGETYP"] = "Master Bias"
        # the bias's noise figure describes the noise superbias removes; a first-difference
        # estimate of the superbias would measure its column pattern: neither is its noise
        out.header.remove("NOISEEST", ignore_missing=True, remove_all=True)
        out.header.add_history(
            f"Superbias: layers={layers} columns={columns} rows={rows}".replace("True", "T")
        )
    if path is not None:
        out = _save_cached(path, out)
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
    dark: Image | list | None = None,
    flat: Image | None = None,
    dark_optimize: bool = False,
    pedestal: float = 0.0,
    output: str | None = None,
    library: str | None = None,
) -> FrameSet | Image:
    """Calibrate frames: subtract bias and dark (the dark scaled by EXPTIME when exposures
    differ; a dark that still holds the bias is not made to remove it twice), divide by the
    flat normalised to its mean (per CFA colour for Bayer frames). dark may be a list of
    master darks, one per exposure: each frame gets the one of its EXPTIME (to 0.01 s), else
    the nearest, scaled, with a warning naming the exposures. Lazy: frames are computed
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
    "exposure_label",
    category="preprocess",
    example='path("masters", "dark_" + exposure_label(300) + ".fits")',
)
def exposure_label(seconds: float) -> str:
    """An exposure time as text for file names, to 0.01 s: 300 gives "300s", 0.5 "0.5s"
    (one master dark per exposure: ``"dark_" + exposure_label(e) + ".fits"``)."""
    return f"{float(seconds):.2f}".rstrip("0").rstrip(".") + "s"


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
    master_dark: Image | list | None = None,
    cfa: str | bool = "auto",
) -> FrameSet | Image:
    """Cosmetic correction: find hot (and with cold=true, cold) pixels in the master dark, or
    else in the median of the frames (dithered stars blur out, defects stay), and replace them
    by the median of their same-colour neighbours (CFA-aware: cfa="auto" follows BAYERPAT).
    A pixel is a defect when it stands `sigma` robust sigmas above its neighbours' median and
    above all of them, unlike a star. master_dark may be a list of master darks (one per
    exposure): the one of the first frame's EXPTIME, else the nearest, is used. The number
    fixed is in each frame's header (COSMHOT, COSMCOLD)."""
    from ..process import calibration
    from ..process import cosmetic as cc

    single = isinstance(frames, Image)
    fs = as_frames(frames, "cosmetic")
    if isinstance(master_dark, list):
        # hot pixels sit where they sit at any exposure; the frames' own dark shows them best
        j, _ = calibration.choose_dark(master_dark, calibration.exposure(fs.header(0)))
        master_dark = master_dark[j] if master_dark else None
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
