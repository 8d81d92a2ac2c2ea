"""Light frames: stars, measure/select (SubframeSelector), register (StarAlignment), normalize
(LocalNormalization), drizzle (DrizzleIntegration), debayer. Thin adapters over
``pxlang.process``; per-frame work (star detection, measurement, matching) runs in two
forked worker processes, resampling in numba's threads.

What travels in each frame's ``meta``:

- ``measure``: the SubframeSelector properties (also copied as top-level keys, so that
  ``integrate(weights="SNRWeight")`` finds them); ``weight`` and ``best`` from ``select``;
- ``transform``: the registration ``Transform`` (frame → reference), kept for ``drizzle``;
- ``normalize``: the local-normalization model, a callable ``(band, r0, r1) -> band`` in the
  registered geometry, applied by ``integrate(normalization="local")`` and by ``drizzle``;
- ``rejected`` (read, if an integration put it there): a bool (H, W) map of rejected pixels
  in the registered geometry, honoured by ``drizzle``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxError, PxProcessError
from ..lang.functions import CallContext
from .registry import builtin, describe

WORKERS = 2  # per-frame work on both cores


# ---------------------------------------------------------------------------- helpers


def _frameset(value: Any, name: str) -> FrameSet:
    if isinstance(value, FrameSet):
        return value
    if isinstance(value, Image):
        return FrameSet.from_arrays([value])
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Image) for v in value):
        return FrameSet.from_arrays(list(value))
    raise PxProcessError(
        f"{name}(): expected a frame set (files(...)) or a list of images, got {describe(value)}"
    )


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


_TASK: dict[str, Callable[[int], Any]] = {}


def _run_task(i: int) -> Any:
    return _TASK["fn"](i)


def _parallel(fn: Callable[[int], Any], n: int) -> list[Any]:
    """``[fn(i) for i in range(n)]`` on WORKERS processes (forked: ``fn`` and the frames it
    reads are inherited, only results travel back). SEP holds the GIL, so threads would not
    overlap star detection; without fork (Windows, macOS spawn) threads are used."""
    if n <= 1 or WORKERS <= 1:
        return [fn(i) for i in range(n)]
    import multiprocessing

    try:
        mp = multiprocessing.get_context("fork")
    except ValueError:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            return list(pool.map(fn, range(n)))
    import warnings
    from concurrent.futures import ProcessPoolExecutor

    _TASK["fn"] = fn
    try:
        with warnings.catch_warnings():
            # Python ≥ 3.12 warns when forking with threads alive (numba's idle pool after a
            # resampling); the children never use those threads.
            warnings.simplefilter("ignore", DeprecationWarning)
            with ProcessPoolExecutor(max_workers=WORKERS, mp_context=mp) as pool:
                return list(pool.map(_run_task, range(n)))
    finally:
        _TASK.pop("fn", None)


def _error(ctx: CallContext, name: str, exc: Exception) -> PxError:
    return PxProcessError(f"{name}(): {exc}", span=ctx.span)


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
        raise _error(ctx, "stars", exc) from exc


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
    Returns the same frames carrying their measurements, for select() and
    integrate(weights="SNRWeight")."""
    from ..process.subframes import camera_gain, measure_frame, pixel_scale

    fs = _copy(_frameset(frames, "measure"))
    n = len(fs)

    def one(i: int) -> dict[str, float]:
        img = _read(fs, i)
        hdr = fs.header(i)
        sc = scale if scale is not None else pixel_scale(hdr)
        gn = gain if gain is not None else camera_gain(hdr)
        lum, factor = _luminance_for_stars(fs, i, img.data)
        try:
            m = measure_frame(
                lum, scale=sc * factor if sc else None, gain=gn, model=model, threshold=threshold
            )
        except ValueError as exc:
            raise PxProcessError(f"measure(): {_short(fs, i)}: {exc}", span=ctx.span) from exc
        if factor != 1.0:
            m["FWHMPixels"] *= factor
        return m

    rows = _parallel(one, n)
    starless = []
    for i, (f, row) in enumerate(zip(fs.frames, rows)):
        f.meta["measure"] = row
        f.meta.update(row)
        if row["Stars"] == 0:
            starless.append(_short(fs, i))
    if starless:
        ctx.warning(
            f"measure(): no stars found in {len(starless)} of {n} frames: "
            + ", ".join(starless[:10])
            + (" …" if len(starless) > 10 else "")
        )
    return fs


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
    Mean, Sigma: FWHMMedian, SNRWeightMax…). A frame whose PSFSignalWeight (star flux over
    noise) is below `min_signal` × the set's median is rejected too: cloud, haze, dew
    (0 disables). Returns the
    approved frames, each with its weight (meta "weight", used by integrate(weights="meta"));
    the highest weight is the best frame, the registration reference. Frames are measured
    first if they were not. When most frames fail, a warning says which condition failed."""
    from ..process.subframes import statistics

    fs = _frameset(measured, "select")
    if any("measure" not in f.meta for f in fs.frames):
        fs = measure(ctx, fs)
    else:
        fs = _copy(fs)
    n = len(fs)
    rows = [f.meta["measure"] for f in fs.frames]
    stats = statistics(rows)
    clauses = _clauses(approve)
    fails: dict[str, list[str]] = {c: [] for c in clauses}
    fails_signal: list[str] = []
    approved, weights = [], []
    for i, row in enumerate(rows):
        symbols = {**stats, **{k: float(v) for k, v in row.items()}}
        ok = _evaluate(ctx, approve, symbols, "approval") != 0.0
        if not ok and len(clauses) > 1:
            for c in clauses:
                if _evaluate(ctx, c, symbols, "approval") == 0.0:
                    fails[c].append(_short(fs, i))
        elif not ok:
            fails[clauses[0]].append(_short(fs, i))
        median_signal = stats.get("PSFSignalWeightMedian", 0.0)
        if ok and min_signal > 0 and not row["PSFSignalWeight"] >= min_signal * median_signal:
            ok = False
            fails_signal.append(_short(fs, i))
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
    if fails_signal:
        reasons.append(
            f"PSFSignalWeight below {min_signal:g} × the median (cloud or haze?) for "
            f"{len(fails_signal)}"
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
        names = sorted({x for v in fails.values() for x in v} | set(fails_signal))
        msg = (
            f"select(): {rejected} of {n} frames rejected ({'; '.join(reasons)}): "
            + ", ".join(names[:10])
            + (" …" if len(names) > 10 else "")
        )
        if rejected > n / 2:
            msg += " — most frames rejected: the data is poor; make the most of it (approve=)"
        ctx.warning(msg)
    out = fs._subset(approved)
    best = int(np.argmax(weights))
    for j, (f, w) in enumerate(zip(out.frames, weights)):
        f.meta["weight"] = w
        f.meta["best"] = j == best
    return out


# ---------------------------------------------------------------------------- register


def _ref_index(ctx: CallContext, fs: FrameSet, reference: Any, counts: list[int]) -> int | Image:
    if isinstance(reference, Image):
        return reference
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        k = int(reference)
        if not 1 <= k <= len(fs):
            raise PxProcessError(
                f"register(): reference={k} but there are {len(fs)} frames (1-based)",
                span=ctx.span,
            )
        return k - 1
    if isinstance(reference, str) and reference != "best":
        from ..image import io

        path = ctx.resolve_path(reference)
        for i in range(len(fs)):
            p = fs.parent.name(i) if fs.parent is not None else fs.name(i)
            if p and os.path.abspath(p) == os.path.abspath(path):
                return i
        return io.load(path)
    best = _best_index(fs)
    return best if best is not None else int(np.argmax(counts))


def _stars_of(data: np.ndarray, factor: float, threshold: float) -> np.ndarray:
    from ..process.stars import find_stars

    # Windowed centroids, no PSF fit: over a few hundred stars the fitted transform is as
    # accurate (≈ 0.001 px on synthetic 2048² frames) at half the cost.
    tab = find_stars(data, threshold=threshold, max_stars=1000, fit=False)
    xy = tab.xy()
    if factor != 1.0:  # binned CFA cell centres back to sensor pixels
        xy = xy * factor + (factor - 1.0) / 2.0
    return xy


@builtin(
    "register",
    category="lights",
    aliases=("align", "staralignment"),
    pixinsight="StarAlignment",
    siril="register",
    example='reg = register(files("lights/"), model="affine")',
)
def register(
    ctx: CallContext,
    frames: FrameSet | list,
    reference: str | int | Image = "best",
    model: str = "similarity",
    interpolation: str = "lanczos3",
    distortion: bool = False,
    drizzle: bool = True,
    clamp: float = 0.3,
    threshold: float = 5.0,
) -> FrameSet | list:
    """Align frames on a reference by their stars (StarAlignment). reference: "best" (the
    frame select() found best, else the one with most stars), a 1-based frame number, a
    file or an image. model: similarity (rotation, scale, shift; mirror images handled) |
    affine | homography | tps (thin-plate splines: images from two different optical
    systems); distortion=true adds the spline correction to any model. interpolation:
    lanczos3 (clamped at `clamp` against ringing; 0 strongest) | bicubic | bilinear.
    drizzle=true keeps each frame's transform for drizzle(). Frames without stars or that
    cannot be matched are left out and named in a warning. A list of images (masters of
    different filters) gives back a list of aligned images. Frames are resampled lazily,
    when something reads them. One-shot-colour frames: register the debayered frames;
    drizzle() then drops the raw mosaics (bayer drizzle)."""
    from ..process import registration as rg

    as_list = isinstance(frames, (list, tuple))
    fs = _copy(_frameset(frames, "register"))
    n = len(fs)
    if model not in rg.MODELS:
        raise PxProcessError(
            f"register(): model must be one of {', '.join(rg.MODELS)}; got {model!r}",
            span=ctx.span,
        )
    if not as_list:
        fs.shape  # mixed sizes are an error, naming the frame  # noqa: B018

    def detect(i: int) -> np.ndarray:
        img = _read(fs, i)
        lum, factor = _luminance_for_stars(fs, i, img.data)
        return _stars_of(lum, factor, threshold)

    star_lists = _parallel(detect, n)
    ref = _ref_index(ctx, fs, reference, [len(s) for s in star_lists])
    if isinstance(ref, Image):
        lum = _mono(ref.data)
        ref_xy, ref_shape = _stars_of(lum, 1.0, threshold), ref.shape[-2:]
        ref_i = None
    else:
        ref_i = ref
        ref_xy = star_lists[ref_i]
        ref_shape = (fs.shape if not as_list else fs.frames[ref_i].data.shape)[-2:]
    if len(ref_xy) < 4:
        raise PxProcessError(
            f"register(): the reference has {len(ref_xy)} stars; it needs a good star field",
            span=ctx.span,
            hint="choose another reference, or lower threshold=",
        )

    def solve(i: int) -> Any:
        if ref_i is not None and i == ref_i:
            return rg.Transform.identity()
        if len(star_lists[i]) < 4:
            return f"{len(star_lists[i])} stars found"
        try:
            return rg.solve(ref_xy, star_lists[i], model=model, distortion=distortion)
        except rg.RegistrationError as exc:
            return str(exc)

    results = _parallel(solve, n)
    ok = [i for i, r in enumerate(results) if isinstance(r, rg.Transform)]
    failed = [(i, r) for i, r in enumerate(results) if not isinstance(r, rg.Transform)]
    if failed:
        ctx.warning(
            f"register(): {len(failed)} of {n} frames left out: "
            + "; ".join(f"{_short(fs, i)} ({why})" for i, why in failed[:10])
            + (" …" if len(failed) > 10 else "")
        )
    if not ok:
        raise PxProcessError(f"register(): no frame could be aligned ({n} tried)", span=ctx.span)
    for i in ok:
        tr = results[i]
        fs.frames[i].meta["registration"] = {
            "matched": tr.matched,
            "rms": tr.rms,
            "model": tr.model,
        }
        if drizzle:
            fs.frames[i].meta["transform"] = tr
    if as_list:
        out = []
        for i in ok:
            img = fs.read(i)
            data = rg.apply(img.data, results[i], ref_shape, interpolation, clamp)
            res = Image(data, img.header.copy() if img.header is not None else None, name=img.name)
            _history(res, results[i], model, interpolation)
            out.append(res)
        return out
    sub = fs._subset(ok)
    transforms = [results[i] for i in ok]
    digest = hashlib.sha256()
    for tr in transforms:
        digest.update(np.round(tr.matrix, 9).tobytes())
        if tr.fwd_spline is not None:
            digest.update(np.round(tr.inv_spline.disp, 6).tobytes())
    digest.update(f"{ref_shape}|{interpolation}|{clamp}|register/1".encode())

    def op(img: Image, j: int, _t=transforms) -> Image:
        data = rg.apply(img.data, _t[j], ref_shape, interpolation, clamp)
        res = Image(data, img.header.copy() if img.header is not None else None, name=img.name)
        _history(res, _t[j], model, interpolation)
        return res

    from .preprocess import _cache_dir

    out = sub.derive(op, digest.hexdigest(), "registered", cache_dir=_cache_dir(ctx))
    for f, g in zip(out.frames, sub.frames):
        f.meta = dict(g.meta)
        f.meta["reference_shape"] = tuple(ref_shape)
    if tuple(fs.shape[-2:]) != tuple(ref_shape):  # an outside reference of another size
        out._shape = (*fs.shape[:-2], *ref_shape)
    return out


def _history(img: Image, tr: Any, model: str, interpolation: str) -> None:
    if img.header is None:
        return
    img.header.add_history(
        f"StarAlignment: model={model} interpolation={interpolation} "
        f"matched={tr.matched} rms={tr.rms:.3f}px"
    )


# ---------------------------------------------------------------------------- normalize


@builtin(
    # The contract name is `normalize`, but pixelmath.py registers normalize(img)
    # (a range rescale) under the same name; see the report to the lead.
    "localnormalization",
    category="lights",
    aliases=("local_normalization",),
    pixinsight="LocalNormalization",
    example='n = localnormalization(register(files("lights/")), scale=64)',
)
def normalize(
    ctx: CallContext,
    frames: FrameSet | list,
    reference: str | int | Image = "best",
    method: str = "local",
    scale: int = 128,
) -> FrameSet:
    """LocalNormalization: for each registered frame find f' = a·f + O(x, y) that matches the
    reference (a from the same stars' fluxes, O the smooth background, at `scale` pixels, of
    reference − a·frame). Pixels are left as they are (as PixInsight's .xnml files):
    integrate(..., normalization="local") and drizzle() apply it. reference: "best", a
    1-based frame number, a file or an image (an integration of the best frames is best)."""
    from ..process.normalization import local_normalization

    if method != "local":
        raise PxProcessError(
            f'normalize(): only method="local" is available; got {method!r}',
            span=ctx.span,
            hint="integrate() does the global normalizations itself (normalization=)",
        )
    fs = _copy(_frameset(frames, "normalize"))
    n = len(fs)
    if isinstance(reference, Image):
        ref = reference.data
    else:
        if isinstance(reference, str) and reference != "best":
            from ..image import io

            ref = io.load(ctx.resolve_path(reference)).data
        else:
            idx = _best_index(fs) if reference == "best" else int(reference) - 1
            if idx is None:
                idx = 0
            ref = _read(fs, idx).data
    if tuple(ref.shape) != tuple(fs.shape):
        raise PxProcessError(
            f"normalize(): the reference is {ref.shape[-1]}x{ref.shape[-2]} but the frames are "
            f"{fs.shape[-1]}x{fs.shape[-2]}",
            span=ctx.span,
            hint="normalize registered frames against a registered reference",
        )

    def one(i: int) -> Any:
        data = _read(fs, i).data
        from ..process.normalization import ColourNormalization

        if data.ndim == 3:
            return ColourNormalization(
                [local_normalization(r, d, scale) for r, d in zip(ref, data)]
            )
        return local_normalization(ref, data, scale)

    try:
        models = _parallel(one, n)
    except ValueError as exc:
        raise _error(ctx, "normalize", exc) from exc
    for f, m in zip(fs.frames, models):
        f.meta["normalize"] = m
    return fs


# ---------------------------------------------------------------------------- drizzle


@builtin(
    "drizzle",
    category="lights",
    aliases=("drizzleintegration",),
    pixinsight="DrizzleIntegration",
    siril="register -drizzle / stack",
    example='d = drizzle(register(files("lights/")), scale=2, pixfrac=0.9)',
)
def drizzle(
    ctx: CallContext,
    frames: FrameSet,
    scale: float = 2.0,
    pixfrac: float = 0.9,
    kernel: str = "square",
    cfa: str = "auto",
) -> Image:
    """DrizzleIntegration: drop each calibrated (unregistered) frame's pixels, shrunk by
    `pixfrac`, onto a grid `scale` times finer than the reference, through its registration
    transform (register(..., drizzle=true)); frame weights (select), local normalization
    (normalize) and pixels rejected by a preceding integration are applied. kernel: square |
    point | turbo | gaussian | lanczos3. cfa: "auto" (raw one-shot-colour frames with
    BAYERPAT are drizzled per colour: colour without debayering), a pattern such as "RGGB", or
    "none". Values keep the frames' surface brightness."""
    from ..process.debayer import PATTERNS, pattern_from_header
    from ..process.drizzle import DrizzleStack

    fs = _frameset(frames, "drizzle")
    n = len(fs)
    missing = [_short(fs, i) for i in range(n) if "transform" not in fs.frames[i].meta]
    if missing:
        raise PxProcessError(
            f"drizzle(): {len(missing)} of {n} frames have no registration transform "
            f"({', '.join(missing[:5])})",
            span=ctx.span,
            hint="drizzle the output of register(frames) (with drizzle=true, the default)",
        )
    source = fs.parent if fs.parent is not None else fs  # the unregistered frames
    ref_shape = fs.frames[0].meta.get("reference_shape") or tuple(fs.shape[-2:])
    # registered after debayering: drizzle the raw mosaics (bayer drizzle) instead
    while source.op_name == "debayered" and source.parent is not None:
        source = source.parent
    first = _read(source, 0)
    if first.data.ndim == 3:
        raise PxProcessError(
            "drizzle(): frames are colour (debayered); drizzle the raw CFA frames with cfa=",
            span=ctx.span,
        )
    pattern = None
    if cfa == "auto":
        pattern = pattern_from_header(source.header(0))
    elif cfa.lower() not in ("none", "", "false"):
        if cfa.upper() not in PATTERNS:
            raise PxProcessError(
                f"drizzle(): cfa must be auto, none or one of {', '.join(PATTERNS)}; got {cfa!r}",
                span=ctx.span,
            )
        pattern = cfa.upper()
    try:
        stack = DrizzleStack(ref_shape, scale=scale, pixfrac=pixfrac, kernel=kernel, cfa=pattern)
    except ValueError as exc:
        raise _error(ctx, "drizzle", exc) from exc
    for i in range(n):
        meta = fs.frames[i].meta
        tr = meta["transform"]
        data = (first if i == 0 else _read(source, i)).data
        pm = tr.pixmap(data.shape)
        norm = meta.get("normalize")
        if norm is not None and hasattr(norm, "offset_at"):
            # the model lives in the registered geometry: evaluate its offset where each
            # frame pixel lands
            data = norm.scale * data + norm.offset_at(pm[..., 0], pm[..., 1])
        mask = None
        rej = meta.get("rejected")
        if isinstance(rej, np.ndarray) and rej.shape == tuple(ref_shape):
            xi = np.clip(np.rint(pm[..., 0]).astype(int), 0, ref_shape[1] - 1)
            yi = np.clip(np.rint(pm[..., 1]).astype(int), 0, ref_shape[0] - 1)
            mask = rej[yi, xi]
        weight = float(meta.get("weight", 1.0))
        try:
            stack.add(data, pm, weight=weight, mask=mask)
        except ValueError as exc:
            raise PxProcessError(f"drizzle(): {_short(fs, i)}: {exc}", span=ctx.span) from exc
    img, wht = stack.result()
    header = source.header(0)
    header = header.copy() if header is not None else None
    out = Image(img, header, name="drizzle")
    if header is not None:
        header["DRIZSCAL"] = (float(scale), "drizzle scale")
        header["DRIZPIXF"] = (float(pixfrac), "drizzle pixfrac")
        header["NCOMBINE"] = (n, "frames drizzled")
        header.add_history(
            f"DrizzleIntegration: {n} frames scale={scale:g} pixfrac={pixfrac:g} kernel={kernel}"
            + (f" cfa={pattern}" if pattern else "")
        )
        for key in ("BAYERPAT", "XBAYROFF", "YBAYROFF"):
            if pattern and key in header:
                del header[key]
    return out


# ---------------------------------------------------------------------------- debayer


_RAW_EXT = re.compile(r"\.(cr2|cr3|nef|arw|dng|orf|raf|rw2|pef|srw)$", re.IGNORECASE)


@builtin(
    "debayer",
    category="lights",
    aliases=("demosaic",),
    pixinsight="Debayer",
    siril="debayer",
    example='rgb = debayer(L, pattern="RGGB", method="bilinear")',
)
def debayer(
    ctx: CallContext,
    frames: FrameSet | Image | str,
    pattern: str = "auto",
    method: str = "vng",
) -> FrameSet | Image | list:
    """Demosaic one-shot-colour frames into RGB. pattern: "auto" (BAYERPAT with XBAYROFF /
    YBAYROFF from the header) or RGGB | BGGR | GRBG | GBRG. method: vng (variable number of
    gradients: no colour fringes on stars) | bilinear | superpixel (2×2 cell → one pixel,
    half size). A camera raw file or pattern (.CR2, .NEF, .ARW, .DNG…) is read through rawpy
    (pip install 'pxlang[raw]')."""
    from ..process import debayer as db

    if method not in db.METHODS:
        raise PxProcessError(
            f"debayer(): method must be one of {', '.join(db.METHODS)}; got {method!r}",
            span=ctx.span,
        )

    def pat_for(header: Any, what: str) -> str:
        if pattern != "auto":
            try:
                return db.shift_pattern(pattern)
            except ValueError as exc:
                raise _error(ctx, "debayer", exc) from exc
        found = db.pattern_from_header(header)
        if found is None:
            raise PxProcessError(
                f"debayer(): {what} has no BAYERPAT in its header",
                span=ctx.span,
                hint='give the pattern: debayer(..., pattern="RGGB")',
            )
        return found

    def one(img: Image, what: str) -> Image:
        if img.data.ndim != 2:
            raise PxProcessError(f"debayer(): {what} is already colour", span=ctx.span)
        pat = pat_for(img.header, what)
        data = db.debayer(img.data, pat, method)
        header = img.header.copy() if img.header is not None else None
        if header is not None:
            for key in ("BAYERPAT", "XBAYROFF", "YBAYROFF"):
                if key in header:
                    del header[key]
            header.add_history(f"Debayer: pattern={pat} method={method}")
        return Image(data, header, name=img.name)

    if isinstance(frames, str):
        import glob

        paths = sorted(glob.glob(ctx.resolve_path(frames))) or [ctx.resolve_path(frames)]
        out = []
        for p in paths:
            if not _RAW_EXT.search(p):
                raise PxProcessError(
                    f"debayer(): {p} is not a camera raw file; load FITS with files() or load()",
                    span=ctx.span,
                )
            try:
                cfa_data, letters, meta = db.read_raw(p)
            except ImportError as exc:
                raise PxProcessError(f"debayer(): {exc}", span=ctx.span) from exc
            img = Image(
                db.debayer(cfa_data, pattern if pattern != "auto" else letters, method),
                name=os.path.basename(p),
                path=p,
            )
            out.append(img)
        return out[0] if len(out) == 1 else out
    if isinstance(frames, Image):
        return one(frames, frames.name or "the image")
    fs = _frameset(frames, "debayer")

    def op(img: Image, i: int) -> Image:
        return one(img, _short(fs, i))

    from .preprocess import _cache_dir

    key = hashlib.sha256(f"{pattern}|{method}|debayer/1".encode()).hexdigest()
    return fs.derive(op, key, "debayered", cache_dir=_cache_dir(ctx))
