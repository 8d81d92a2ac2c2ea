"""Image integration (stacking) out of core: frames are read in bands of rows, each band is
normalised, rejected and combined by the numba kernel of ``rejection.py``, and only the
output image stays in memory. Peak RAM is (frames x band rows x width x 4 bytes) twice (one
band is read while the previous one is combined) plus the output, whatever the frame count.

Averaged sigma clipping first reads a sample of whole rows (about ``POISSON_SAMPLE`` pixels,
every row of a small image), band by band, to fit its image-wide noise model.

Meanings follow PixInsight's ImageIntegration; see ``rejection.py`` for the rejection
algorithms and ``normalize_global.py`` for normalisation and the noise estimate.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pxlang.image.frameset import FrameSet, header_value, normalise_imagetyp
from pxlang.image.store import Image

from . import normalize_global as ng
from . import rejection as rj

WEIGHTS = ("none", "noise", "exposure", "meta")
# pixels sampled (in whole rows) to fit averaged sigma clipping's noise model: the median
# of ~2.6e5 estimates is within ~0.5 % of the image's, for the price of a few rows
POISSON_SAMPLE = 1 << 18
_MASTER_NAMES = {"bias": "Master Bias", "dark": "Master Dark", "flat": "Master Flat"}
_MASTER_NAMES["darkflat"] = "Master Dark Flat"
_MASTER_NAMES["light"] = "Master Light"


def default_memory() -> int:
    """Default memory budget for bands: an eighth of the RAM available, 32 MB to 256 MB.

    Bands of a few hundred rows already keep the kernel busy; bigger ones only cost RAM.
    """
    import psutil

    avail = psutil.virtual_memory().available
    return int(min(max(avail // 8, 32 << 20), 256 << 20))


def band_rows(n_frames: int, shape: tuple[int, ...], memory: int) -> int:
    """Rows per band so that two bands of all frames fit in ``memory`` bytes."""
    channels = 3 if len(shape) == 3 else 1
    h, w = shape[-2], shape[-1]
    per_row = 2 * n_frames * channels * w * 4
    return int(max(1, min(h, memory // per_row)))


def as_frameset(frames: Any) -> FrameSet:
    """A FrameSet from a FrameSet, a list of arrays/Images, or an (N, H, W) array."""
    if isinstance(frames, FrameSet):
        return frames
    if isinstance(frames, np.ndarray):
        if frames.ndim not in (3, 4):
            raise ValueError(f"a stack of frames is (N, H, W) or (N, 3, H, W); got {frames.shape}")
        return FrameSet.from_arrays(list(frames))
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("no frames to integrate")
        return FrameSet.from_arrays(list(frames))
    raise TypeError(f"integrate takes a frame set or a list of images, not {type(frames).__name__}")


def _frame_stats(fs: FrameSet, i: int) -> dict:
    meta = fs.frames[i].meta
    if "location" not in meta:
        meta.update(ng.frame_stats(lambda r0, r1: fs.read_rows(i, r0, r1), fs.shape))
    return meta


def _weights(fs: FrameSet, weights: Any) -> np.ndarray | None:
    """Per-frame weights, or None for equal weights."""
    n = len(fs)
    if weights is None or (isinstance(weights, str) and weights.lower() in ("none", "")):
        return None
    if isinstance(weights, (list, tuple, np.ndarray)):
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"weights: {w.shape[0]} values for {n} frames")
        return w
    if not isinstance(weights, str):
        raise ValueError(f"weights must be a name or a list of numbers, not {weights!r}")
    key = weights
    if key.lower() == "noise":
        out = []
        for i in range(n):
            noise = np.mean(np.atleast_1d(_frame_stats(fs, i)["noise"]))
            if not np.isfinite(noise) or noise <= 0:
                raise ValueError(f"cannot weight by noise: '{fs.name(i)}' has no measurable noise")
            out.append(1.0 / noise**2)
        return np.asarray(out)
    if key.lower() == "exposure":
        key = "EXPTIME"
    if key.lower() == "meta":
        key = "weight"
    out = []
    for i in range(n):
        meta = fs.frames[i].meta
        value = meta.get(key)
        if value is None:
            value = header_value(fs.header(i), key)
        if value is None:
            raise ValueError(
                f"cannot weight by {weights!r}: '{fs.name(i)}' has no {key} "
                "(neither a header keyword nor a measured property)"
            )
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            raise ValueError(
                f"cannot weight by {weights!r}: '{fs.name(i)}' has {key} = {value!r}, not a number"
            ) from None
    return np.asarray(out)


def _normalisation(fs: FrameSet, method: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) per channel and frame: shape (channels, N)."""
    n = len(fs)
    if method in ("none", "local"):
        return np.ones((channels, n)), np.zeros((channels, n))
    stats = [_frame_stats(fs, i) for i in range(n)]
    a = np.empty((channels, n))
    b = np.empty((channels, n))
    for c in range(channels):
        loc = [np.atleast_1d(s["location"])[c] for s in stats]
        sc = [np.atleast_1d(s["scale"])[c] for s in stats]
        a[c], b[c] = ng.affine_coefficients(method, np.asarray(loc), np.asarray(sc))
    return a, b


def sample_rows(h: int, w: int, pixels: int) -> np.ndarray:
    """Rows evenly spread over the image, about ``pixels`` pixels in all (every row of a
    small image): where averaged sigma clipping measures its noise model."""
    k = min(h, max(1, -(-pixels // w)))
    if k == h:
        return np.arange(h)
    return np.unique(np.round((np.arange(k) + 0.5) * h / k - 0.5).astype(int))


def _poisson_k(fs, buf, rows, local, scale, offset) -> list[float]:
    """k of averaged sigma clipping per channel (sigma^2 = k * median), the median of the
    per-pixel estimates over sampled rows, read ``rows`` at a time into ``buf``."""
    channels, n, _, w = buf.shape
    picks = sample_rows(fs.shape[-2], w, POISSON_SAMPLE)
    samples: list[list[np.ndarray]] = [[] for _ in range(channels)]
    for j0 in range(0, picks.size, rows):
        chunk = picks[j0 : j0 + rows]
        band = buf[:, :, : chunk.size]
        for i in range(n):
            for j, r in enumerate(chunk):
                dst = band[0, i, j : j + 1] if channels == 1 else band[:, i, j : j + 1]
                fs.read_rows_into(i, int(r), int(r) + 1, dst)
                if local is not None:
                    dst[...] = local[i](dst, int(r), int(r) + 1)
        for c in range(channels):
            samples[c].append(rj.poisson_k_samples(band[c], scale=scale[c], offset=offset[c]))
    out = []
    for c in range(channels):
        s = np.concatenate(samples[c])
        out.append(float(np.median(s)) if s.size else float("nan"))
    return out


def integrate(
    frames: Any,
    combine: str = "average",
    rejection: str = "auto",
    low: float | None = None,
    high: float | None = None,
    normalization: str = "none",
    weights: Any = "none",
    memory: int | None = None,
    maps: bool = False,
    esd_relaxation: float = rj.ESD_LOW_RELAXATION,
) -> Image | tuple[Image, Image, Image]:
    """Integrate frames into one image, out of core.

    Parameters
    ----------
    frames : FrameSet, list of arrays/Images, or (N, H, W) array
    combine : "average" | "median" | "min" | "max"
    rejection : "auto" | "none" | "minmax" | "percentile" | "sigma" | "averaged_sigma" |
        "winsorized" | "linear_fit" | "esd". "auto": the guide's rule by frame count.
    low, high : clipping points; None gives PixInsight's defaults for the method.
    normalization : "none" | "additive" | "multiplicative" | "additive_scaling" |
        "multiplicative_scaling" | "local" (frames carry ``meta["normalize"]``, a callable
        ``(band, r0, r1) -> band`` attached by local normalisation).
    weights : "none" | "noise" (inverse variance) | "exposure" (EXPTIME) | "meta"
        (``meta["weight"]``) | a header keyword or measured-property name | a list.
    memory : bytes for the bands (default: an eighth of the available RAM, at most 256 MB).
    maps : also return the low and high rejection maps (fraction of values rejected).

    Returns
    -------
    The master Image (header: method, rejection, clipping points, frame count, rejected
    percentages, noise), or (master, low_map, high_map) when ``maps``.
    """
    fs = as_frameset(frames)
    n = len(fs)
    if n == 0:
        raise ValueError("no frames to integrate")
    if combine not in rj.COMBINES:
        raise ValueError(f"unknown combine {combine!r}; expected one of {', '.join(rj.COMBINES)}")
    method = rj.auto_rejection(n) if rejection == "auto" else rejection
    rj._method_code(method)
    lowp, highp = rj._clip_points(method, low, high)
    if normalization not in ng.NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {normalization!r}; expected one of "
            f"{', '.join(ng.NORMALIZATIONS)}"
        )
    local = None
    if normalization == "local":
        local = [f.meta.get("normalize") for f in fs.frames]
        if any(fn is None for fn in local):
            raise ValueError(
                "normalization='local' needs local normalisation data on every frame "
                "(from normalize(...)); use a global normalization meanwhile"
            )
    shape = fs.shape
    if fs.parent is not None:
        # derived frames (calibrated...): compute and cache them two at a time first
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(fs.materialize_frame, range(n)))
    channels = 3 if len(shape) == 3 else 1
    h, w = shape[-2], shape[-1]
    wts = _weights(fs, weights)
    scale, offset = _normalisation(fs, normalization, channels)
    rows = band_rows(n, shape, memory or default_memory())

    out = np.empty((channels, h, w), np.float32)
    # per-pixel counts for the maps and percentages: 16 bits suffice below 65535 frames
    count_type = np.uint16 if n < 65535 else np.int32
    nlow = np.empty((channels, h, w), count_type)
    nhigh = np.empty((channels, h, w), count_type)
    nvalid = np.empty((channels, h, w), count_type)
    seen = np.zeros(n, bool)
    bufs = [np.empty((channels, n, rows, w), np.float32) for _ in range(2)]

    def fill(k: int, r0: int, r1: int) -> None:
        band = bufs[k][:, :, : r1 - r0]
        for i in range(n):
            dst = band[0, i] if channels == 1 else band[:, i]
            fs.read_rows_into(i, r0, r1, dst)
            if local is not None:
                dst[...] = local[i](dst, r0, r1)
            if not seen[i]:
                seen[i] = bool(np.isfinite(dst[..., :: max(1, w // 64)]).any())

    poisson_k = [None] * channels
    if method == "averaged_sigma":
        poisson_k = _poisson_k(fs, bufs[0], rows, local, scale, offset)

    starts = list(range(0, h, rows))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(fill, 0, starts[0], min(h, starts[0] + rows))
        for k, r0 in enumerate(starts):
            r1 = min(h, r0 + rows)
            pending.result()
            if k + 1 < len(starts):
                nr0 = starts[k + 1]
                pending = pool.submit(fill, (k + 1) % 2, nr0, min(h, nr0 + rows))
            band = bufs[k % 2]
            for c in range(channels):
                res = rj.integrate_band(
                    band[c, :, : r1 - r0],
                    method=method,
                    low=lowp,
                    high=highp,
                    combine=combine,
                    scale=scale[c],
                    offset=offset[c],
                    weights=wts,
                    esd_relaxation=esd_relaxation,
                    poisson_k=poisson_k[c],
                )
                out[c, r0:r1], nlow[c, r0:r1], nhigh[c, r0:r1], nvalid[c, r0:r1] = res
    bufs.clear()
    if not seen.all():
        bad = int(np.argmin(seen))
        raise ValueError(f"'{fs.name(bad)}' holds no data: every pixel is NaN")

    data = out[0] if channels == 1 else out
    total = max(int(nvalid.sum(dtype=np.int64)), 1)
    pct_low = 100.0 * float(nlow.sum(dtype=np.int64)) / total
    pct_high = 100.0 * float(nhigh.sum(dtype=np.int64)) / total
    noise = ng.noise_estimate(data)
    header = _result_header(
        fs, combine, method, lowp, highp, normalization, weights, pct_low, pct_high, noise
    )
    if method == "averaged_sigma":
        for c, k in enumerate(poisson_k):
            key = "PXPOISK" if channels == 1 else f"PXPOISK{c}"
            if math.isfinite(k):
                header[key] = (float(f"{k:.6g}"), "averaged sigma: sigma^2 = k * median")
    master = Image(data, header, name="integration")
    if not maps:
        return master
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.maximum(nvalid, 1).astype(np.float32)
        lmap = (nlow.astype(np.float32) / denom).astype(np.float32)
        hmap = (nhigh.astype(np.float32) / denom).astype(np.float32)
    sq = (lambda a: a[0]) if channels == 1 else (lambda a: a)
    return (
        master,
        Image(sq(lmap), None, name="rejection_low"),
        Image(sq(hmap), None, name="rejection_high"),
    )


def _result_header(fs, combine, method, lowp, highp, normalization, weights, plow, phigh, noise):
    from astropy.io.fits import Header

    first = fs.header(0)
    header = Header() if first is None else first.copy()
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True, remove_all=True)
    kind = normalise_imagetyp(header_value(first, "IMAGETYP") or "") if first is not None else ""
    if kind in _MASTER_NAMES:
        header["IMAGETYP"] = _MASTER_NAMES[kind]
    n = len(fs)
    total_exp = 0.0
    have_exp = True
    for i in range(n):
        e = header_value(fs.header(i), "EXPTIME")
        try:
            total_exp += float(e)
        except (TypeError, ValueError):
            have_exp = False
    if have_exp and n:
        header["EXPTIME"] = (total_exp / n, "[s] mean exposure of the integrated frames")
        header["TOTALEXP"] = (total_exp, "[s] total exposure integrated")
    wname = weights if isinstance(weights, str) else "list"
    header["NCOMBINE"] = (n, "number of frames integrated")
    header["PXCOMB"] = (combine, "pixel combination")
    header["PXREJECT"] = (method, "pixel rejection")
    header["PXREJLO"] = (float(lowp), "low clipping point")
    header["PXREJHI"] = (float(highp), "high clipping point")
    header["PXNORM"] = (normalization, "normalization")
    header["PXWEIGHT"] = (str(wname), "weights")
    header["REJLOPCT"] = (round(plow, 4), "[%] pixels rejected low")
    header["REJHIPCT"] = (round(phigh, 4), "[%] pixels rejected high")
    if math.isfinite(noise):
        header["NOISEEST"] = (float(f"{noise:.6g}"), "noise estimate (sigma, first differences)")
    header.add_history(
        f"ImageIntegration: {n} frames, combine={combine}, rejection={method} "
        f"low={lowp:g} high={highp:g}, normalization={normalization}, weights={wname}"
    )
    header.add_history(f"ImageIntegration: rejected low {plow:.3f}%, high {phigh:.3f}%")
    return header


def integrate_paths(paths: list[str], output: str, **kwargs: Any) -> str:
    """Integrate files and save the master (used by the benchmark and the CLI)."""
    from pxlang.image import io

    fs = FrameSet.from_paths(paths, source=os.path.dirname(paths[0]) if paths else "")
    master = integrate(fs, **kwargs)
    assert isinstance(master, Image)
    return io.save(master, output)
