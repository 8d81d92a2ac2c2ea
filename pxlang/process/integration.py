"""Image integration (stacking) out of core: frames are read in bands of rows, each band is
normalised, rejected and combined by the numba kernel of ``rejection.py``, and only the
output image stays in memory. Peak RAM is (frames x band rows x width x 4 bytes) twice (one
band is read while the previous one is combined) plus the output, whatever the frame count.

Averaged sigma clipping first reads a sample of whole rows (about ``POISSON_SAMPLE`` pixels in
blocks of consecutive rows, every row of a small image), band by band, to fit its image-wide
noise model.

Meanings follow PixInsight's ImageIntegration; see ``rejection.py`` for the rejection
algorithms and ``normalize_global.py`` for normalisation and the noise estimate.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pxlang.image.frameset import FrameSet, header_value, normalise_imagetyp
from pxlang.image.store import Image

from . import jit
from . import normalize_global as ng
from . import rejection as rj

WEIGHTS = ("none", "noise", "exposure", "meta")


class FrameError(ValueError):
    """Frame ``index`` of the set cannot be integrated (its pixels are all NaN, or it cannot
    be read or computed): the caller may leave it out and integrate the rest."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:  # raised on a cluster worker, read here
        return (FrameError, (self.index, str(self)))


# pixels sampled (in whole rows) to fit averaged sigma clipping's noise model: the median
# of ~2.6e5 estimates is within ~0.5 % of the image's, for the price of a few rows
POISSON_SAMPLE = 1 << 18
SAMPLE_BLOCK = 16  # consecutive rows a block of that sample
_MASTER_NAMES = {"bias": "Master Bias", "dark": "Master Dark", "flat": "Master Flat"}
_MASTER_NAMES["darkflat"] = "Master Dark Flat"
_MASTER_NAMES["light"] = "Master Light"


def default_memory() -> int:
    """Default memory budget for bands: an eighth of the RAM available, 32 MB to 64 MB.

    Bands of a few hundred rows already keep the kernel busy; bigger ones only cost RAM.
    Smaller ones cost time: 50 frames of 2048² with 16 MB bands (20 rows) took 2.6–3.1 s
    against 2.2–2.6 s with 64 MB bands (80 rows), for 218 against 277 MB.
    """
    import psutil

    avail = psutil.virtual_memory().available
    return int(min(max(avail // 8, 32 << 20), 64 << 20))


# Rows of each frame a band holds when no memory is given. Each band has a cost of its own
# (reads of every frame, the kernel's start): measured on 25 frames of 2048², 163-row bands
# 1.38–1.54 s, 66 rows 1.53–1.66 s, 33 rows 1.67–1.75 s; on 19 frames of 1024², 64-row
# bands as fast as 128-row ones, the run's peak RSS 15–19 MB lower (2026-12-03).
BAND_ROWS = 64


def band_rows(n_frames: int, shape: tuple[int, ...], memory: int, rows: int | None = None) -> int:
    """Rows per band so that two bands of all frames fit in ``memory`` bytes, and no more than
    ``rows`` (bigger bands only cost RAM)."""
    channels = 3 if len(shape) == 3 else 1
    h, w = shape[-2], shape[-1]
    per_row = 2 * n_frames * channels * w * 4
    fit = memory // per_row
    if rows is not None:
        fit = min(fit, rows)
    return int(max(1, min(h, fit)))


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


def _frame_stats(fs: FrameSet, i: int, location_only: bool = False) -> dict:
    """Location, scale and noise of frame i (only the location when ``location_only``),
    measured once (kept in its meta).

    A registered frame's location is its own (the median of the sky it covers on the
    reference grid), but its scale and noise come from the frame before registration:
    interpolation smooths pixel noise by an amount that depends on the sub-pixel shift (a
    Lanczos-3 half-pixel shift lowers it ~20 %), so measured after it they would scale and
    weight frames by their dither instead of their signal.
    """
    meta = fs.frames[i].meta
    if location_only and "location" in meta:
        return meta
    if location_only:
        meta.update(ng.frame_stats(lambda r0, r1: fs.read_rows(i, r0, r1), fs.shape, True))
    elif "scale" not in meta:
        stats = ng.frame_stats(lambda r0, r1: fs.read_rows(i, r0, r1), fs.shape)
        parent = fs.parent
        if "registration" in meta and parent is not None:
            before = ng.frame_stats(lambda r0, r1: parent.read_rows(i, r0, r1), parent.shape)
            stats["scale"], stats["noise"] = before["scale"], before["noise"]
        meta.update(stats)
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
    # medians of ~0.5 M pixels a frame, two at a time (numpy's partition releases the GIL)
    only = method in ("additive", "multiplicative")  # no scale: flats, as the workflow does
    with ThreadPoolExecutor(max_workers=2) as pool:
        stats = list(pool.map(lambda i: _frame_stats(fs, i, only), range(n)))
    a = np.empty((channels, n))
    b = np.empty((channels, n))
    for c in range(channels):
        loc = [np.atleast_1d(s["location"])[c] for s in stats]
        sc = [np.atleast_1d(s["scale"])[c] if "scale" in s else 1.0 for s in stats]
        a[c], b[c] = ng.affine_coefficients(method, np.asarray(loc), np.asarray(sc))
    return a, b


def sample_rows(h: int, w: int, pixels: int, block: int = SAMPLE_BLOCK) -> np.ndarray:
    """Rows where averaged sigma clipping measures its noise model: about ``pixels`` pixels
    in blocks of ``block`` consecutive rows evenly spread over the image (every row of a
    small image). Blocks, not single rows: each frame is read once a block (single rows
    spread over a 1024² image were 256 reads a frame, ~1 s of a 9-frame master)."""
    k = min(h, max(1, -(-pixels // w)))
    if k == h:
        return np.arange(h)
    b = min(block, k)
    nb = -(-k // b)
    starts = np.round((np.arange(nb) + 0.5) * (h - b) / nb).astype(int)  # centred, as rows were
    return np.unique((starts[:, None] + np.arange(b)).ravel())


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) positions in ``rows`` of its runs of consecutive values."""
    cuts = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1).tolist(), rows.size]
    return [(cuts[k], cuts[k + 1]) for k in range(len(cuts) - 1) if cuts[k] < cuts[k + 1]]


def _poisson_k(fs, buf, rows, local, scale, offset) -> list[float]:
    """k of averaged sigma clipping per channel (sigma^2 = k * median), the median of the
    per-pixel estimates over sampled rows, read ``rows`` at a time into ``buf``, each run of
    consecutive rows with one read."""
    channels, n, _, w = buf.shape
    picks = sample_rows(fs.shape[-2], w, POISSON_SAMPLE)
    samples: list[list[np.ndarray]] = [[] for _ in range(channels)]
    for j0 in range(0, picks.size, rows):
        chunk = picks[j0 : j0 + rows]
        band = buf[:, :, : chunk.size]
        for i in range(n):
            for p, q in _runs(chunk):
                r0, r1 = int(chunk[p]), int(chunk[q - 1]) + 1
                dst = band[0, i, p:q] if channels == 1 else band[:, i, p:q]
                fs.read_rows_into(i, r0, r1, dst)
                if local is not None:
                    local[i].apply_into(dst, r0)
        for c in range(channels):
            samples[c].append(rj.poisson_k_samples(band[c], scale=scale[c], offset=offset[c]))
    out = []
    for c in range(channels):
        s = np.concatenate(samples[c])
        out.append(float(np.median(s)) if s.size else float("nan"))
    return out


def _numba_threads_from_here() -> None:
    """numba's thread pool started by this thread, before a pool thread computing a frame
    runs a parallel kernel first: TBB, started by another thread than the one forking, warns
    at every later fork ("the TBB library may be in an invalid state in the child
    process") — the run's workers and report are forked from this thread. Not when the
    kernels come from the library: numba is then not used at all."""
    if jit.loaded():
        return
    import numba

    numba.get_num_threads()


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
    frame_maps: Sequence[str] | None = None,
    executor: Any = None,
    progress: Callable[[int], contextlib.AbstractContextManager[Callable[..., None]]] | None = None,
    frame_errors: tuple[type[BaseException], ...] = (),
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
    memory : bytes for the bands (default: ``default_memory``, at most 64 MB, and bands
        of no more than ``BAND_ROWS`` rows).
    maps : also return the low and high rejection maps (fraction of values rejected).
    frame_maps : one file path per frame: each frame's own rejected pixels (which of its
        values were rejected low and high, in its own geometry) are written there, band by
        band (RAM does not grow with the frame count), 2 bits per pixel and channel; read
        back with :func:`read_frame_map`. The drizzle data of ImageIntegration (.xdrz).
    executor : where to run (``pxlang.run.executor``); a distributed one (a dask cluster)
        gets derived frames written to files and one task per band of rows (``_band_task``),
        the same results as here. None or a local one: the double-buffered loop below.
    progress : ``progress(total)`` gives a context whose value, ``advance()``, is called
        once per band of rows done (``pxlang.run.progress.stage`` fits); None: silent.
    frame_errors : exception types that mean a derived frame's source cannot be read; they
        become a ``FrameError`` naming the frame, as a frame holding only NaN does, so that
        the caller can leave that frame out.

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
    on_cluster = bool(getattr(executor, "distributed", False))
    if fs.parent is not None and on_cluster:
        # by the workers, into the shared cache folder
        executor.map(functools.partial(_materialize, fs, frame_errors=frame_errors), n)
    elif fs.parent is not None:
        # derived frames (calibrated...): compute and cache them two at a time first
        _numba_threads_from_here()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda i: _materialize(fs, i, frame_errors), range(n)))
    channels = 3 if len(shape) == 3 else 1
    h, w = shape[-2], shape[-1]
    wts = _weights(fs, weights)
    scale, offset = _normalisation(fs, normalization, channels)
    rows = band_rows(n, shape, memory or default_memory(), None if memory else BAND_ROWS)

    out = np.empty((channels, h, w), np.float32)
    # per-pixel counts for the maps (16 bits suffice below 65535 frames); without maps on
    # this machine the percentages need only their sums (24 MB less for a 2048² master)
    count_type = np.uint16 if n < 65535 else np.int32
    per_pixel = bool(maps or on_cluster)
    counts_shape = (channels, h, w) if per_pixel else (channels, 0, w)
    nlow = np.empty(counts_shape, count_type)
    nhigh = np.empty(counts_shape, count_type)
    nvalid = np.empty(counts_shape, count_type)
    sums = np.zeros(3, np.int64)  # rejected low, high, valid values (without the maps)
    seen = np.zeros(n, bool)
    bufs = [np.empty((channels, n, rows, w), np.float32) for _ in range(2)]

    def fill(k: int, r0: int, r1: int) -> None:
        _read_band(fs, local, r0, r1, bufs[k][:, :, : r1 - r0], seen)

    writer = None
    if frame_maps is not None:
        writer = FrameMapWriter(list(frame_maps), n, channels, h, w, rows)

    poisson_k = [None] * channels
    if method == "averaged_sigma":
        poisson_k = _poisson_k(fs, bufs[0], rows, local, scale, offset)

    starts = list(range(0, h, rows))
    if progress is None:
        progress = _silent
    if on_cluster:
        # one task per band on the cluster; nothing is left for the local loop below
        kernel = {
            "method": method,
            "low": lowp,
            "high": highp,
            "combine": combine,
            "scale": scale,
            "offset": offset,
            "weights": wts,
            "esd_relaxation": esd_relaxation,
            "poisson_k": poisson_k,
        }
        arrays = (out, nlow, nhigh, nvalid)
        seen |= _integrate_on_cluster(executor, fs, local, rows, kernel, arrays, writer, progress)
        starts = []
    with ThreadPoolExecutor(max_workers=1) as pool, progress(len(starts)) as advance:
        pending = pool.submit(fill, 0, starts[0], min(h, starts[0] + rows)) if starts else None
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
                    frame_masks=None if writer is None else writer.masks(r1 - r0),
                )
                out[c, r0:r1] = res[0]
                if per_pixel:
                    nlow[c, r0:r1], nhigh[c, r0:r1], nvalid[c, r0:r1] = res[1:]
                else:
                    sums += [int(a.sum(dtype=np.int64)) for a in res[1:]]
                if writer is not None:
                    writer.pack(c, r1 - r0)
            if writer is not None:
                writer.write(r1 - r0)
            advance()
    bufs.clear()
    if writer is not None:
        writer.close()
    if not seen.all():
        bad = int(np.argmin(seen))
        raise FrameError(bad, f"'{fs.name(bad)}' holds no data: every pixel is NaN")

    # pixels no frame covers (registered frames are NaN outside their footprint): 0, as
    # PixInsight leaves them
    np.nan_to_num(out, copy=False, nan=0.0, posinf=np.inf, neginf=-np.inf)
    data = out[0] if channels == 1 else out
    if per_pixel:
        sums = np.array([a.sum(dtype=np.int64) for a in (nlow, nhigh, nvalid)])
    total = max(int(sums[2]), 1)
    pct_low = 100.0 * float(sums[0]) / total
    pct_high = 100.0 * float(sums[1]) / total
    noise = ng.noise_estimate(data)
    header = _result_header(
        fs, combine, method, lowp, highp, normalization, weights, pct_low, pct_high, noise
    )
    if channels == 3:  # debayered frames: their raw headers' CFA keywords no longer apply
        for key in ("BAYERPAT", "XBAYROFF", "YBAYROFF", "COLORTYP"):
            header.remove(key, ignore_missing=True, remove_all=True)
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


def _materialize(fs: FrameSet, i: int, frame_errors: tuple[type[BaseException], ...]) -> str:
    """Derived frame i computed into the cache; an error of ``frame_errors`` (the caller's
    "this file cannot be read") becomes a ``FrameError`` naming the frame."""
    try:
        return fs.materialize_frame(i)
    except frame_errors as exc:
        raise FrameError(i, str(getattr(exc, "message", exc))) from exc


@contextlib.contextmanager
def _silent(total: int) -> Any:
    yield lambda n=1: None


def _read_band(
    fs: FrameSet, local: list | None, r0: int, r1: int, band: np.ndarray, seen: np.ndarray
) -> None:
    """Rows r0:r1 of every frame into ``band`` (channels, n, rows, W), through each frame's
    local normalisation when given; ``seen[i]`` becomes True once frame i shows a finite
    value (a sample of the row suffices)."""
    w = band.shape[-1]
    for i in range(len(fs)):
        dst = band[0, i] if band.shape[0] == 1 else band[:, i]
        fs.read_rows_into(i, r0, r1, dst)
        if local is not None:
            local[i].apply_into(dst, r0)
        if not seen[i]:
            seen[i] = bool(np.isfinite(dst[..., :: max(1, w // 64)]).any())


class FrameMapWriter:
    """Per-frame rejection bits streamed to ``.npy`` files band by band (bands come in row
    order, so each band is appended). A file holds uint8 ``(H, 2 * channels, ceil(W / 8))``:
    for each row, the low and high bits of each channel packed along the row. Written under
    temporary names and renamed by :meth:`close`, so an interrupted integration leaves no
    half map under a final name."""

    def __init__(self, paths: list[str], n: int, channels: int, h: int, w: int, rows: int):
        if len(paths) != n:
            raise ValueError(f"frame_maps: {len(paths)} paths for {n} frames")
        self.paths = paths
        self.tmp = [f"{p}.{os.getpid()}.tmp" for p in paths]
        self.n, self.channels, self.w = n, channels, w
        self._lm = np.empty(n * rows * w, np.bool_)
        self._hm = np.empty(n * rows * w, np.bool_)
        self._packed = np.empty((n, rows, 2 * channels, (w + 7) // 8), np.uint8)
        header = {"descr": "|u1", "fortran_order": False, "shape": (h, 2 * channels, (w + 7) // 8)}
        for t in self.tmp:
            os.makedirs(os.path.dirname(t) or ".", exist_ok=True)
            with open(t, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, header)

    def masks(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        size = self.n * r * self.w
        shape = (self.n, r, self.w)
        return self._lm[:size].reshape(shape), self._hm[:size].reshape(shape)

    def pack(self, c: int, r: int) -> None:
        lm, hm = self.masks(r)
        self._packed[:, :r, 2 * c] = np.packbits(lm, axis=-1)
        self._packed[:, :r, 2 * c + 1] = np.packbits(hm, axis=-1)

    def write(self, r: int, packed: np.ndarray | None = None) -> None:
        """Append the next ``r`` rows: those ``pack`` filled, or ``packed`` (n, r, …) as a
        cluster task returned them."""
        bits = self._packed[:, :r] if packed is None else packed
        for i, t in enumerate(self.tmp):
            with open(t, "ab") as fh:
                fh.write(np.ascontiguousarray(bits[i]).tobytes())

    def close(self) -> None:
        for t, p in zip(self.tmp, self.paths):
            os.replace(t, p)

    def discard(self) -> None:
        for t in self.tmp:
            with contextlib.suppress(OSError):
                os.remove(t)


def read_frame_map(path: str, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A frame's rejected pixels written by ``integrate(..., frame_maps=...)``: bool
    ``(low, high)``, each (H, W) or (channels, H, W). ``width``: the image width (default:
    the packed width, a multiple of 8)."""
    packed = np.load(path, mmap_mode="r")
    if packed.ndim != 3 or packed.shape[1] % 2:
        raise ValueError(f"{path} is not a rejection map")
    w = width or packed.shape[2] * 8
    bits = np.unpackbits(np.asarray(packed), axis=-1, count=w).astype(bool)
    low = np.moveaxis(bits[:, 0::2], 1, 0)
    high = np.moveaxis(bits[:, 1::2], 1, 0)
    if low.shape[0] == 1:
        return low[0], high[0]
    return low, high


def set_exposure(header: Any, fs: FrameSet, verb: str) -> None:
    """EXPTIME (the mean) and TOTALEXP (the sum) of a master from its frames' EXPTIME, when
    every frame has one."""
    n = len(fs)
    try:
        total = sum(float(header_value(fs.header(i), "EXPTIME")) for i in range(n))
    except (TypeError, ValueError):
        return
    if n:
        header["EXPTIME"] = (total / n, f"[s] mean exposure of the {verb} frames")
        header["TOTALEXP"] = (total, f"[s] total exposure {verb}")


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
    set_exposure(header, fs, "integrated")
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


# ---------------------------------------------------------------------------- on a cluster


def _band_task(spec: dict[str, Any], k: int) -> tuple[Any, ...]:
    """Band k of an integration, as a task on a cluster worker: rows r0:r1 of every frame
    read from its file (memory-mapped), normalised locally if asked, rejected and combined
    by the same kernel as the local loop. Returns (out, nlow, nhigh, nvalid) of the band,
    (channels, rows, W); which frames held finite values; the per-frame rejection bits
    packed as ``FrameMapWriter`` stores them (None when not asked)."""
    fs: FrameSet = spec["frames"]
    r0, r1 = spec["bands"][k]
    n, channels, w, r = len(fs), spec["channels"], spec["width"], r1 - r0
    kernel, local = spec["kernel"], spec["local"]
    band = np.empty((channels, n, r, w), np.float32)
    seen = np.zeros(n, bool)
    _read_band(fs, local, r0, r1, band, seen)
    out = np.empty((channels, r, w), np.float32)
    counts = [np.empty((channels, r, w), spec["count_type"]) for _ in range(3)]
    packed = masks = None
    if spec["frame_maps"]:
        packed = np.empty((n, r, 2 * channels, (w + 7) // 8), np.uint8)
        masks = (np.empty((n, r, w), np.bool_), np.empty((n, r, w), np.bool_))
    for c in range(channels):
        res = rj.integrate_band(
            band[c],
            method=kernel["method"],
            low=kernel["low"],
            high=kernel["high"],
            combine=kernel["combine"],
            scale=kernel["scale"][c],
            offset=kernel["offset"][c],
            weights=kernel["weights"],
            esd_relaxation=kernel["esd_relaxation"],
            poisson_k=kernel["poisson_k"][c],
            frame_masks=masks,
        )
        out[c], counts[0][c], counts[1][c], counts[2][c] = res
        if packed is not None and masks is not None:
            packed[:, :, 2 * c] = np.packbits(masks[0], axis=-1)
            packed[:, :, 2 * c + 1] = np.packbits(masks[1], axis=-1)
    return out, counts[0], counts[1], counts[2], seen, packed


def _integrate_on_cluster(
    executor: Any,
    fs: FrameSet,
    local: list | None,
    rows: int,
    kernel: dict[str, Any],
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    writer: FrameMapWriter | None,
    progress: Callable[[int], contextlib.AbstractContextManager[Callable[..., None]]],
) -> np.ndarray:
    """The band loop of ``integrate`` as tasks (``executor.map``): the workers get the
    frames as file paths (derived frames are already in the cache folder; frames held in
    memory travel with the task); their bands fill ``arrays`` (out, nlow, nhigh, nvalid)
    here, and the per-frame rejection bits go to ``writer`` in row order. Returns which
    frames held finite values."""
    from pxlang.image.frameset import Frame

    out, nlow, nhigh, nvalid = arrays
    n, channels = len(fs), out.shape[0]
    h, w = out.shape[-2:]
    frames = []
    for i, f in enumerate(fs.frames):
        path = fs._cached_path(i) if fs.parent is not None else f.path
        frames.append(Frame(path, None, f.data if path is None else None))
    # at least two bands per worker so that all are busy; never more rows than locally
    step = max(1, min(rows, -(-h // (2 * max(1, executor.workers)))))
    bands = [(r0, min(h, r0 + step)) for r0 in range(0, h, step)]
    spec = {
        "frames": FrameSet(frames, source=fs.source),
        "bands": bands,
        "local": local,
        "channels": channels,
        "width": w,
        "count_type": nlow.dtype,
        "frame_maps": writer is not None,
        "kernel": kernel,
    }
    seen = np.zeros(n, bool)
    with progress(len(bands)) as advance:
        results = executor.map(functools.partial(_band_task, spec), len(bands), advance)
    for (r0, r1), (o, lo, hi, va, s, packed) in zip(bands, results):
        out[:, r0:r1], nlow[:, r0:r1], nhigh[:, r0:r1], nvalid[:, r0:r1] = o, lo, hi, va
        seen |= s
        if writer is not None:
            writer.write(r1 - r0, packed)
    return seen
