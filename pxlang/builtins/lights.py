"""Light frames: stars, measure/select (SubframeSelector), register (StarAlignment), normalize
(LocalNormalization), drizzle (DrizzleIntegration), debayer. Thin adapters over
``pxlang.process``; per-frame work (star detection, measurement, matching, normalization)
runs in two forked worker processes (SEP holds the GIL: threads do not overlap; processes
measured 1.3× faster on the whole workflow), resampling in numba's threads. Stars are
detected once per frame (by measure; register reuses them) and every per-frame result is
cached on disk by the frame's content key (see "per-frame results" below).

What travels in each frame's ``meta``:

- ``measure``: the SubframeSelector properties (also copied as top-level keys, so that
  ``integrate(weights="SNRWeight")`` finds them); ``weight`` and ``best`` from ``select``;
- ``star_table``: ``{"key", "threshold", "model", "factor", "table"}``: the ``StarTable``
  measure() found (in the pixels of the frame with content key ``key``, × ``factor`` for
  binned CFA frames), reused by register() while the frame is the same;
- ``transform``: the registration ``Transform`` (frame → reference), kept for ``drizzle``;
- ``normalize``: the local-normalization model, a callable ``(band, r0, r1) -> band`` in the
  registered geometry, applied by ``integrate(normalization="local")`` and by ``drizzle``;
- the integration's rejection reaches ``drizzle`` through the master, not the frames:
  ``integrate`` of registered frames streams each frame's rejection map into the cache and
  names them in the master's header (PXREJKEY); ``drizzle(frames, integration=master)``
  finds each frame's map by its content key (PixInsight keeps them in the .xdrz files).

register, normalize, drizzle and debayer are in ``align.py``, which shares the helpers here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxError, PxIOError, PxProcessError
from ..lang.functions import CallContext
from .common import as_frames, process_error, stage_label
from .registry import builtin, describe

WORKERS = 2  # per-frame work on both cores


# ---------------------------------------------------------------------------- helpers


def _copy(fs: FrameSet) -> FrameSet:
    """The same frames with their own meta dicts (values stay immutable for the user)."""
    out = fs[:]
    out.frames = [f.copy() for f in out.frames]
    return out


def _read(fs: FrameSet, i: int) -> Image:
    """Frame i; a derived frame is written to the cache once, so later stages reuse it."""
    if fs.parent is not None and fs.frames[i].data is None:
        from ..image import io

        return io.load(fs.materialize_frame(i))
    return fs.read(i)


def _mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=0) if data.ndim == 3 else data


def _cfa_pattern(fs: FrameSet, i: int, data: np.ndarray) -> str | None:
    if data.ndim != 2:
        return None
    from ..process.debayer import pattern_from_header

    return pattern_from_header(fs.header(i))


def _luminance_for_stars(fs: FrameSet, i: int, data: np.ndarray) -> tuple[np.ndarray, float]:
    """A mono image to find stars in and the factor from its pixels to the frame's: raw CFA
    frames are binned 2×2 (one value per Bayer cell) so that stars are not a checkerboard."""
    if _cfa_pattern(fs, i, data) is not None:
        h, w = data.shape[0] // 2 * 2, data.shape[1] // 2 * 2
        d = data[:h, :w]
        return (d[0::2, 0::2] + d[0::2, 1::2] + d[1::2, 0::2] + d[1::2, 1::2]) / 4.0, 2.0
    return _mono(data), 1.0


def _parallel(
    fn: Callable[[int], Any], n: int, advance: Callable[..., None] | None = None
) -> list[Any]:
    """``[fn(i) for i in range(n)]`` on the run's executor (``pxlang.run.executor``): WORKERS
    forked processes of this machine, or tasks on the run's dask cluster (``--scheduler``,
    ``cluster()``; then ``fn`` is pickled, frames are read from the shared cache folder).
    ``advance()`` is called as each result arrives (progress)."""
    from ..run.executor import executor_for

    if n > 1:
        _warm_imports()
    return executor_for(local_workers=WORKERS).map(fn, n, advance)


# What per-frame work imports. Imported once here, before the workers fork, they are
# inherited; otherwise every worker of every stage imports them again (measured ~2 s of CPU
# per run at 1024², the debayer module's scipy imports above all). Not scipy.ndimage: the
# mono path uses none of it (debayer's bilinear and registration's distortion import it when
# they run), and importing it (~0.4 s) in the run's serial part kept a core idle.
_WARM = (
    "sep",
    "pxlang.process.stars",
    "pxlang.process.subframes",
    "pxlang.process.pixel_kernels",
    "pxlang.process.psf_kernels",
    "pxlang.process.registration",
    "pxlang.process.interpolation",
    "pxlang.process.normalization",
    "pxlang.process.debayer",
    "pxlang.process.background",
)


def _warm_imports() -> None:
    import importlib

    for name in _WARM:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


# ---------------------------------------------------------------------------- per-frame results
#
# Results of per-frame work (star tables, measurements, transforms, normalization models) are
# kept as small .npz files (plain arrays, no pickles) in the run's cache folder, beside the
# derived frames, named by a hash of the frame's content key (FrameSet.content_key) and the
# parameters: an unchanged re-run finds them all and recomputes nothing per frame; a changed
# frame or parameter gives another name. Frames held only in memory are not cached on disk.

_RESULTS_VERSION = "1"  # bump when what a cached result means changes


def _result_path(ctx: CallContext, stem: str, kind: str, key: str) -> str:
    from .preprocess import _cache_dir

    digest = hashlib.sha256(f"{key}|{kind}|{_RESULTS_VERSION}".encode()).hexdigest()[:20]
    return os.path.join(_cache_dir(ctx), f"{stem}_{digest}.{kind}.npz")


def _frame_result_path(
    ctx: CallContext, fs: FrameSet, i: int, kind: str, params: str, key: str | None = None
) -> str | None:
    """Where frame i's result of ``kind`` with ``params`` is cached (None: in memory)."""
    if not fs.is_persistent(i):
        return None
    stem = os.path.basename(fs.name(i)).split(".")[0] or f"frame{i + 1}"
    return _result_path(ctx, stem, kind, f"{key or fs.content_key(i)}|{params}")


def _load_result(path: str | None) -> dict[str, np.ndarray] | None:
    if path is None or not os.path.exists(path):
        return None
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # unreadable (interrupted write, other version): recompute


def _save_result(path: str | None, arrays: dict[str, Any]) -> None:
    """Write atomically: an interrupted run leaves no half file under the final name."""
    if path is not None:
        from ..image import io

        io.save_arrays(path, arrays)


def _known_stars(
    fs: FrameSet, i: int, key: str, threshold: float, model: str | None = None
) -> tuple[Any, float] | None:
    """The star table a previous stage found in frame i (meta "star_table", valid while the
    frame's content key is the same) and its factor to frame pixels; with ``model``, only a
    table fitted with that PSF model."""
    entry = fs.frames[i].meta.get("star_table")
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    if entry.get("threshold") != threshold:
        return None
    if model is not None and entry.get("model") != model:
        return None
    return entry["table"], float(entry.get("factor", 1.0))


# ---------------------------------------------------------------------------- stars for register


def _stars_of(data: np.ndarray, factor: float, threshold: float, fast: bool = False) -> np.ndarray:
    from ..process.stars import find_stars

    # Windowed centroids, no PSF fit: over a few hundred stars the fitted transform is as
    # accurate (≈ 0.001 px on synthetic 2048² frames) at half the cost. ``fast``: no
    # deblending and a 128 px background mesh (a 2048² frame in ~0.12 s instead of ~0.19 s)
    # when every star list of the registration is found so: blends then keep one position,
    # the same in every frame — mixed with measure()'s deblended lists they would not.
    if fast:
        tab = find_stars(
            data, threshold, max_stars=_REGISTER_STARS, fit=False, mesh=128, deblend=False
        )
    else:
        tab = find_stars(data, threshold=threshold, max_stars=_REGISTER_STARS, fit=False)
    return _sensor_xy(tab, factor)


_REGISTER_STARS = 1000  # brightest stars kept for matching


def _sensor_xy(table: Any, factor: float) -> np.ndarray:
    xy = table.xy()[:_REGISTER_STARS]
    if factor != 1.0:  # binned CFA cell centres back to sensor pixels
        xy = xy * factor + (factor - 1.0) / 2.0
    return xy


def _stars_path(
    ctx: CallContext, fs: FrameSet, i: int, key: str, threshold: float, fast: bool = False
) -> Any:
    variant = "nofit|fast" if fast else "nofit"
    return _frame_result_path(ctx, fs, i, "stars", f"{threshold}|{variant}", key)


def _known_xy(
    ctx: CallContext, fs: FrameSet, i: int, key: str, threshold: float, fast: bool = False
) -> np.ndarray | None:
    """Frame i's star positions (brightest first) without detecting: those measure() found
    when the frame is the one it measured, else a cached list; None when neither exists."""
    if not fast:
        known = _known_stars(fs, i, key, threshold)
        if known is not None:
            return _sensor_xy(*known)
    got = _load_result(_stars_path(ctx, fs, i, key, threshold, fast))
    return None if got is None else got["xy"]


def _detect_xy(
    ctx: CallContext, fs: FrameSet, i: int, key: str, threshold: float, fast: bool = False
) -> np.ndarray:
    """Detect frame i's stars (positions, brightest first) and cache them."""
    img = _read(fs, i)
    lum, factor = _luminance_for_stars(fs, i, img.data)
    xy = _stars_of(lum, factor, threshold, fast)
    _save_result(_stars_path(ctx, fs, i, key, threshold, fast), {"xy": xy})
    return xy


def _image_stars(ctx: CallContext, img: Image, threshold: float) -> np.ndarray:
    """Star positions of a reference image read from a file, cached by a hash of its
    pixels (an image made in memory is not cached on disk, as in-memory frames)."""
    if not img.path:
        return _stars_of(_mono(img.data), 1.0, threshold)
    data = np.ascontiguousarray(img.data)
    key = hashlib.sha256(f"{data.shape}|{data.dtype}".encode() + data.tobytes()).hexdigest()
    path = _result_path(ctx, "reference", "stars", f"{key}|{threshold}|nofit")
    got = _load_result(path)
    if got is not None:
        return got["xy"]
    xy = _stars_of(_mono(img.data), 1.0, threshold)
    _save_result(path, {"xy": xy})
    return xy


def _solve_cached(
    ctx: CallContext,
    stem: str,
    ref_xy: np.ndarray,
    xy: np.ndarray,
    model: str,
    distortion: bool,
    compute: bool = True,
) -> Any:
    """rg.solve, cached by its inputs (both star lists and the model): a Transform, or the
    reason the frame could not be matched; with ``compute=False`` None when not cached."""
    from ..process import registration as rg

    digest = hashlib.sha256()
    for arr in (ref_xy, xy):
        a = np.ascontiguousarray(arr, np.float64)
        digest.update(f"{a.shape}".encode())
        digest.update(a.tobytes())
    path = _result_path(ctx, stem, "transform", f"{digest.hexdigest()}|{model}|{distortion}")
    got = _load_result(path)
    if got is not None:
        return str(got["failed"]) if "failed" in got else rg.Transform.from_arrays(got)
    if not compute:
        return None
    if len(xy) < 4:
        result: Any = f"{len(xy)} stars found"
    else:
        try:
            result = rg.solve(ref_xy, xy, model=model, distortion=distortion)
        except rg.RegistrationError as exc:
            result = str(exc)
    _save_result(
        path,
        result.to_arrays() if isinstance(result, rg.Transform) else {"failed": np.array(result)},
    )
    return result


def _best_index(fs: FrameSet) -> int | None:
    for i, f in enumerate(fs.frames):
        if f.meta.get("best"):
            return i
    weights = [f.meta.get("weight") for f in fs.frames]
    if all(isinstance(w, (int, float)) for w in weights) and weights:
        return int(np.argmax(weights))
    return None


def _short(fs: FrameSet, i: int) -> str:
    return os.path.basename(fs.name(i))


# ---------------------------------------------------------------------------- stars


@builtin(
    "stars",
    category="lights",
    aliases=("findstars",),
    pixinsight="DynamicPSF / StarDetector",
    siril="findstar",
    example='s = stars(Ha, model="gaussian")',
)
def stars(
    ctx: CallContext,
    image: Image,
    threshold: float = 5.0,
    model: str = "moffat",
    max_stars: int = 2000,
    saturation: float | None = None,
) -> Any:
    """Detect stars (SEP: background mesh, then sources `threshold` sigmas above it) and fit
    each with an elliptical Moffat or Gaussian PSF (model="moffat" | "gaussian"). Returns a
    star table, brightest first: x, y (0-based pixel centres), flux, FWHM (pixels),
    eccentricity, peak and saturated (a star reaching `saturation`, default 98 % of the image
    maximum on several pixels, is not fitted). Colour images are measured on their mean."""
    from ..process.stars import find_stars

    try:
        return find_stars(
            _mono(image.data),
            threshold=threshold,
            model=model,
            max_stars=max_stars,
            saturation=saturation,
        )
    except ValueError as exc:
        raise process_error(ctx, "stars", exc) from exc


# ---------------------------------------------------------------------------- measure / select


@builtin(
    "measure",
    category="lights",
    aliases=("subframeselector",),
    pixinsight="SubframeSelector (Measure)",
    siril="seqpsf / register -2pass (FWHM, roundness)",
    example='m = measure(files("lights/"))',
)
def measure(
    ctx: CallContext,
    frames: FrameSet | list,
    scale: float | None = None,
    gain: float | None = None,
    model: str = "moffat",
    threshold: float = 5.0,
) -> FrameSet:
    """Measure every frame as PixInsight's SubframeSelector: FWHM (arcsec when the scale is
    known, else pixels), Eccentricity, SNRWeight = (MeanDeviation/Noise)², Noise, Stars,
    Median, MeanDeviation, PSFSignalWeight (our equivalent: (PSF flux / Noise)² / 1e6),
    PSFFlux, PSFSNR, FWHMPixels. scale (arcsec/pixel) defaults to
    206.265 × XPIXSZ[µm] / FOCALLEN[mm] from each header; gain (e-/ADU) to EGAIN or GAIN.
    Returns the frames carrying their measurements, for select() and
    integrate(weights="SNRWeight"); frames where no star is found (a dark frame labelled
    Light, clouds) are left out and named in a warning. Mixed image sizes are an error
    naming the odd files."""
    from ..process.stars import StarTable
    from ..process.subframes import camera_gain, measure_frame_stars, pixel_scale
    from ..run.progress import stage

    fs = _copy(as_frames(frames, "measure"))
    n = len(fs)
    keys = [fs.content_key(i) for i in range(n)]

    def settings(i: int) -> tuple[float | None, float | None, str | None]:
        hdr = fs.header(i)
        sc = scale if scale is not None else pixel_scale(hdr)
        gn = gain if gain is not None else camera_gain(hdr)
        path = _frame_result_path(ctx, fs, i, "measure", f"{sc}|{gn}|{model}|{threshold}", keys[i])
        return sc, gn, path

    _check_sizes(ctx, fs, "measure")

    def cached(i: int) -> tuple[dict[str, float], Any, float] | str | None:
        got = _load_result(settings(i)[2])
        if got is None:
            return None
        if "failed" in got:
            return str(got["failed"])
        return json.loads(str(got["row"])), StarTable.from_arrays(got), float(got["factor"])

    def one(i: int) -> tuple[dict[str, float], Any, float] | str:
        """The measurement, or why the frame cannot be measured (it is then left out)."""
        sc, gn, path = settings(i)
        try:
            img = _read(fs, i)
        except PxIOError as exc:
            # a damaged frame (pixels all NaN, unreadable data) is left out as a cloudy one
            # is, not the night; not remembered, as the file may be mended
            return exc.message
        lum, factor = _luminance_for_stars(fs, i, img.data)
        known = _known_stars(fs, i, keys[i], threshold, model)
        try:
            m, table = measure_frame_stars(
                lum,
                scale=sc * factor if sc else None,
                gain=gn,
                model=model,
                threshold=threshold,
                stars=known[0] if known is not None and known[1] == factor else None,
            )
        except ValueError as exc:
            _save_result(path, {"failed": np.array(str(exc))})
            return str(exc)
        if factor != 1.0:
            m["FWHMPixels"] *= factor
        _save_result(
            path, {"row": np.array(json.dumps(m)), "factor": np.array(factor), **table.to_arrays()}
        )
        return m, table, factor

    results = [cached(i) for i in range(n)]  # an unchanged re-run stops here
    todo = [i for i in range(n) if results[i] is None]
    if todo:
        with stage(ctx.options, stage_label("measure", fs), len(todo)) as advance:
            for i, r in zip(todo, _parallel(lambda k: one(todo[k]), len(todo), advance)):
                results[i] = r
    # frames that cannot be used (nothing measurable, no stars: a dark labelled Light,
    # clouds) are left out, by name; whatever follows (select, register) needs stars
    left: list[tuple[int, str]] = []
    for i, (f, res) in enumerate(zip(fs.frames, results)):
        if isinstance(res, str):
            left.append((i, res))
            continue
        row, table, factor = res
        f.meta["star_table"] = {
            "key": keys[i],
            "threshold": threshold,
            "model": model,
            "factor": factor,
            "table": table,
        }
        f.meta["measure"] = row
        # FWHM as measured: arcseconds when the measurement had a pixel scale (its row
        # then records it as Scale)
        f.meta["fwhm_unit"] = "arcsec" if row.get("Scale") else "px"
        f.meta.update(row)
        if row["Stars"] == 0:
            left.append((i, "no stars found"))
        elif not np.isfinite(row.get("FWHMPixels", np.nan)):  # hot pixels, cosmic rays
            left.append((i, f"no stars found ({int(row['Stars'])} sources, none star-like)"))
    # every frame is in the cache now: what follows reads those files, and the
    # calibration behind them (its masters) need not stay in memory for the rest of the run
    return _leave_out(
        ctx, fs.detached(), left, "measure", hint="a dark frame labelled Light, or clouds?"
    )


def _check_sizes(ctx: CallContext, fs: FrameSet, stage_name: str) -> None:
    """Mixed image sizes are an error naming the odd frames (``FrameSet.shape``, asked of
    the files the set derives from: derived sets change all their frames alike)."""
    root = fs
    while root.parent is not None:
        root = root.parent
    try:
        root.shape  # noqa: B018
    except PxIOError as exc:
        raise PxProcessError(
            f"{stage_name}(): {exc.message}", span=ctx.span, hint=exc.hint
        ) from exc


def _leave_out(
    ctx: CallContext, fs: FrameSet, left: list[tuple[int, str]], stage_name: str, hint: str = ""
) -> FrameSet:
    """``fs`` without the frames of ``left`` ((index, reason)): a warning names them and
    counts them, and they join ``fs.skipped`` (path, reason) for the report. None left: an
    error."""
    if not left:
        return fs
    n = len(fs)
    reasons = dict(left)
    shown = "; ".join(f"{_short(fs, i)} ({why})" for i, why in left[:10])
    if len(left) == n:
        raise PxProcessError(
            f"{stage_name}(): no frame can be used ({n} tried): {shown}"
            + (" …" if len(left) > 10 else ""),
            span=ctx.span,
            hint=hint or None,
        )
    ctx.warning(
        f"{stage_name}(): {len(left)} of {n} frames left out: {shown}"
        + (" …" if len(left) > 10 else "")
    )
    out = fs._subset([i for i in range(n) if i not in reasons])
    if hasattr(fs, "selection"):
        out.selection = fs.selection
    out.skipped = [
        *getattr(fs, "skipped", []),
        *((fs.name(i), f"{stage_name}: {why}") for i, why in left),
    ]
    return out


def _clauses(expr: str) -> list[str]:
    """Top-level '&&' terms of an expression (so a warning can say which one failed)."""
    out, depth, start = [], 0, 0
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif expr.startswith("&&", i) and depth == 0:
            out.append(expr[start:i].strip())
            start = i + 2
            i += 1
        i += 1
    out.append(expr[start:].strip())
    return [c for c in out if c]


def _evaluate(ctx: CallContext, expr: str, symbols: dict[str, float], what: str) -> float:
    import pxlang

    try:
        value = pxlang.pixelmath(expr, images=symbols, truncate=False)
    except PxError as exc:
        raise PxProcessError(
            f"select(): the {what} expression {expr!r} failed: {exc.message}",
            span=ctx.span,
            hint="it may use the measured properties ("
            + ", ".join(k for k in symbols if not k.endswith(("Min", "Max", "Mean", "Sigma")))[:200]
            + ") and their set statistics (FWHMMin, FWHMMax, FWHMMedian, FWHMMean, FWHMSigma…)",
        ) from exc
    if not isinstance(value, (int, float)):
        raise PxProcessError(
            f"select(): the {what} expression {expr!r} must give a number, got {describe(value)}",
            span=ctx.span,
        )
    return float(value)


def _star_signal(
    fs: FrameSet, rows: list[dict], starless: set[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's star signal, (transparency / Noise)², over the median of the frames with
    stars, and its transparency (``subframes.transparency``); NaN for a frame without
    stars. Frames without measure()'s star tables (measured elsewhere) use PSFSignalWeight
    (transparency NaN)."""
    from ..process.subframes import transparency

    n = len(rows)
    tables = [fs.frames[i].meta.get("star_table") for i in range(n)]
    withstars = [i for i in range(n) if i not in starless]
    clear = np.full(n, np.nan)
    if all(isinstance(tables[i], dict) for i in withstars):
        fluxes = []
        for i in withstars:
            tab = tables[i]["table"]
            fluxes.append(np.asarray(tab.flux)[np.asarray(tab.fitted, bool)])
        clear[withstars] = transparency(fluxes)
        raw = np.array([(clear[i] / rows[i]["Noise"]) ** 2 for i in range(n)])
    else:
        raw = np.array([float(row.get("PSFSignalWeight", np.nan)) for row in rows])
    raw[list(starless)] = np.nan
    med = float(np.nanmedian(raw[withstars])) if withstars else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        return raw / med, clear


def _explain(clause: str, row: dict) -> str:
    """'FWHM < 6' -> 'FWHM 7.12 (FWHM < 6)': the measured value beside the failed condition."""
    import re

    names = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", clause) if n in row]
    if not names:
        return clause
    values = ", ".join(f"{n} {float(row[n]):.3g}" for n in dict.fromkeys(names))
    return f"{values} (fails {clause})"


@builtin(
    "select",
    category="lights",
    pixinsight="SubframeSelector (Approval / Weighting expressions)",
    example='good = select(measure(files("lights/")), approve="FWHM < 8 && Eccentricity <= 0.8")',
)
def select(
    ctx: CallContext,
    measured: FrameSet | list,
    approve: str = "FWHM < 6 && Eccentricity <= 0.7",
    weight: str = "SNRWeight",
    min_signal: float = 0.4,
) -> FrameSet:
    """Approve and weight frames as SubframeSelector does. `approve` and `weight` are
    PixelMath expressions over the measured properties (FWHM, Eccentricity, SNRWeight, Noise,
    Stars, Median, PSFSignalWeight, …) and their set statistics (<Property>Min, Max, Median,
    Mean, Sigma: FWHMMedian, SNRWeightMax…). A frame whose starlight is below
    `min_signal` × the set's median by two measures is rejected too: cloud, haze, dew (0
    disables). The two: PSFSignalWeight, (star flux / noise)² with the fluxes summed, and
    the star signal, the same with the fluxes compared rank by rank, brightest star against
    brightest (the frame's transparency); a bright star fitted in some frames only moves one
    of them, a cloud both. Returns the approved frames, each with its weight (meta
    "weight", used by integrate(weights="meta")); the highest weight is the best frame, the
    registration reference. Frames are measured first if they were not. When most frames
    fail, a warning says which condition failed."""
    from ..process.subframes import statistics

    fs = as_frames(measured, "select")
    if any("measure" not in f.meta for f in fs.frames):
        fs = measure(ctx, fs)
    else:
        fs = _copy(fs)
    n = len(fs)
    rows = [f.meta["measure"] for f in fs.frames]
    # a frame without stars (measured elsewhere: measure() leaves them out) has no FWHM,
    # no PSF signal: rejected as such, and kept out of the set statistics
    starless = {i for i, row in enumerate(rows) if not row.get("Stars", 0) > 0}
    stats = statistics([row for i, row in enumerate(rows) if i not in starless])
    signal, clear = _star_signal(fs, rows, starless)
    clauses = _clauses(approve)
    fails: dict[str, list[str]] = {c: [] for c in clauses}
    fails_signal: list[str] = []
    fails_stars: list[str] = []
    approved, weights = [], []
    verdicts = []  # per frame, for the report: approved or the condition that failed
    for i, row in enumerate(rows):
        if i in starless:
            fails_stars.append(_short(fs, i))
            verdicts.append({"path": fs.name(i), "approved": False, "reason": "no stars found"})
            continue
        symbols = {**stats, **{k: float(v) for k, v in row.items()}}
        ok = _evaluate(ctx, approve, symbols, "approval") != 0.0
        failed: list[str] = []
        if not ok and len(clauses) > 1:
            for c in clauses:
                if _evaluate(ctx, c, symbols, "approval") == 0.0:
                    fails[c].append(_short(fs, i))
                    failed.append(c)
        elif not ok:
            fails[clauses[0]].append(_short(fs, i))
            failed.append(clauses[0])
        why = [_explain(c, row) for c in failed]
        # starlight below the limit by both measures: one bright star fitted in some frames
        # only moves one of them (the sum, or the ranks of the others), a cloud both
        summed = row["PSFSignalWeight"] / stats.get("PSFSignalWeightMedian", np.nan)
        if ok and min_signal > 0 and not (signal[i] >= min_signal or summed >= min_signal):
            ok = False
            fails_signal.append(_short(fs, i))
            why.append(
                f"PSFSignalWeight {summed:.2g} × the median, star signal {signal[i]:.2g} × "
                f"(transparency {clear[i]:.2f}) (fail >= {min_signal:g} × median: cloud or "
                "haze?)"
            )
        verdicts.append(
            {"path": fs.name(i), "approved": ok, "reason": None if ok else "; ".join(why)}
        )
        if ok:
            w = _evaluate(ctx, weight, symbols, "weight")
            if not np.isfinite(w) or w < 0:
                raise PxProcessError(
                    f"select(): weight {weight!r} is {w} for '{_short(fs, i)}' "
                    "(weights must be finite and not negative)",
                    span=ctx.span,
                )
            approved.append(i)
            weights.append(w)
    reasons = [f"{c} failed for {len(v)}" for c, v in fails.items() if v]
    if fails_stars:
        reasons.append(f"no stars found in {len(fails_stars)}")
    if fails_signal:
        reasons.append(
            f"starlight below {min_signal:g} × the median (cloud or haze?) for {len(fails_signal)}"
        )
    if not approved:
        raise PxProcessError(
            f"select(): no frame approved of {n}: " + "; ".join(reasons),
            span=ctx.span,
            hint=f"the set has FWHM {stats.get('FWHMMin', float('nan')):.2f}–"
            f"{stats.get('FWHMMax', float('nan')):.2f} and eccentricity "
            f"{stats.get('EccentricityMin', float('nan')):.2f}–"
            f"{stats.get('EccentricityMax', float('nan')):.2f}; loosen approve=",
        )
    rejected = n - len(approved)
    if rejected:
        names = sorted({x for v in fails.values() for x in v} | set(fails_signal + fails_stars))
        msg = (
            f"select(): {rejected} of {n} frames rejected ({'; '.join(reasons)}): "
            + ", ".join(names[:10])
            + (" …" if len(names) > 10 else "")
        )
        if rejected > n / 2:
            msg += " — most frames rejected: the data is poor; make the most of it (approve=)"
        ctx.warning(msg)
    out = fs._subset(approved)
    out.selection = verdicts
    best = int(np.argmax(weights))
    for j, (f, w) in enumerate(zip(out.frames, weights)):
        f.meta["weight"] = w
        f.meta["best"] = j == best
    from .workflow import report_ahead

    report_ahead(fs, out, approve)  # the report's plot of these frames, drawn meanwhile
    return out
