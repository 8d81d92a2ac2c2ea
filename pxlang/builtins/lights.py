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

register, normalize, drizzle and debayer are in ``align.py``, which shares the helpers here.
"""

from __future__ import annotations

import os
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
    verdicts = []  # per frame, for the report: approved or the condition that failed
    for i, row in enumerate(rows):
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
        median_signal = stats.get("PSFSignalWeightMedian", 0.0)
        if ok and min_signal > 0 and not row["PSFSignalWeight"] >= min_signal * median_signal:
            ok = False
            fails_signal.append(_short(fs, i))
            failed.append(f"PSFSignalWeight < {min_signal:g} × median (cloud or haze?)")
        verdicts.append(
            {
                "path": fs.name(i),
                "approved": ok,
                "reason": None if ok else "; ".join(_explain(c, row) for c in failed),
            }
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
    out.selection = verdicts
    best = int(np.argmax(weights))
    for j, (f, w) in enumerate(zip(out.frames, weights)):
        f.meta["weight"] = w
        f.meta["best"] = j == best
    return out
