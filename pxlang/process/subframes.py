"""Subframe measurement, after PixInsight's SubframeSelector.

Per frame (names as SubframeSelector shows them):

- ``FWHM``, ``Eccentricity``: medians over the fitted stars (Moffat by default); FWHM in
  arcsec when the pixel scale is known, else pixels (``FWHMPixels`` always in pixels).
- ``Stars``: stars detected; ``StarsFitted``: stars whose PSF fit converged.
- ``Median``, ``MeanDeviation`` (mean |x − median|), ``Noise`` (Gaussian noise σ from the
  first starlet layer, k-sigma clipped: ``noise_mrs``), all in image units (×``gain`` for
  ``NoiseElectrons`` when the gain is known).
- ``SNRWeight`` = (MeanDeviation / Noise)², SubframeSelector's classic weight.
- ``PSFSignalWeight`` — our documented equivalent of PixInsight's PSF signal weight:
  ``(PSFFlux / Noise)² / 1e6`` where ``PSFFlux`` is the sum of the fitted stars' fluxes
  (the 1e6 only keeps the numbers readable). It falls with transparency (cloud,
  haze: less flux, fewer stars) and with noise, and does not reward a brighter sky.
- ``PSFFlux``, ``PSFSNR`` = PSFFlux / Noise.

``statistics(rows)`` gives SubframeSelector's set statistics: ``<Name>Min``, ``Max``,
``Median``, ``Mean``, ``Sigma`` for every numeric property; ``transparency(fluxes)`` each
frame's starlight against the set's, star by star in order of brightness (select()'s cloud
rule).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .stars import StarTable

PROPERTIES = (
    "FWHM",
    "FWHMPixels",
    "Eccentricity",
    "Stars",
    "StarsFitted",
    "Median",
    "MeanDeviation",
    "Noise",
    "SNRWeight",
    "PSFFlux",
    "PSFSNR",
    "PSFSignalWeight",
)

NOISE_SAMPLE = 1 << 18  # values the noise estimate clips (see noise_mrs)
# stars given windowed centroids (of those the PSF fit does not place): as many as
# registration.solve() takes (its max_stars); fainter ones were centred for nothing (~10 ms)
CENTROIDS = 300
MIN_FITTED = 3  # fewer fitted stars than this: FWHM and Eccentricity are unknown (NaN)
_B3 = np.array([1, 4, 6, 4, 1], np.float32) / 16.0
_B3_LAYER1 = 0.8907  # σ of the first starlet layer of unit white noise


def noise_mrs(data: np.ndarray, iterations: int = 5, k: float = 3.0) -> float:
    """Gaussian noise σ from the first starlet (B3-spline à trous) layer, k-sigma clipped.

    The first wavelet layer holds pixel-scale structure only: noise, plus stars that the
    clipping removes. Nebulae and gradients, which inflate a plain background RMS, do not
    enter it — the idea of PixInsight's multiresolution-support noise estimate.
    """
    arr = np.ascontiguousarray(data, np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        arr = np.where(finite, arr, np.nanmedian(arr))
    # the clipped σ of ~2.6e5 values is within ~0.2 % of the whole frame's: clip a strided
    # sample (a prime stride, so that it does not follow rows or Bayer cells)
    stride = 1
    if arr.size > NOISE_SAMPLE * 2:
        stride = next(p for p in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)
                      if arr.size // p <= NOISE_SAMPLE or p == 47)  # fmt: skip
    if min(arr.shape) >= 5:
        from .pixel_kernels import first_starlet_layer, first_starlet_layer_sampled

        # the layer where it is sampled only (a third of the arithmetic a pixel more, for
        # a 5th to a 47th of the pixels); a small frame's whole layer in two passes
        if stride > 1:
            w1 = first_starlet_layer_sampled(arr, stride)
        else:
            w1 = first_starlet_layer(arr).ravel()
    else:
        from scipy.ndimage import convolve1d

        smooth = convolve1d(convolve1d(arr, _B3, axis=0, mode="mirror"), _B3, axis=1, mode="mirror")
        w1 = (arr - smooth).ravel()[::stride]
    sigma = float(np.std(w1))
    for _ in range(iterations):
        keep = np.abs(w1) < k * sigma
        new = float(np.std(w1[keep]))
        if new == 0 or abs(new - sigma) < 1e-4 * sigma:
            sigma = new
            break
        sigma = new
    # a clipped Gaussian's σ is smaller by this factor at k = 3
    return sigma / 0.9866 / _B3_LAYER1


def pixel_scale(header: Any) -> float | None:
    """Arcsec per pixel from XPIXSZ (µm) and FOCALLEN (mm): 206.265 × XPIXSZ / FOCALLEN.

    Falls back to PIXSCALE / SECPIX / SCALE when present; None when nothing is known.
    """
    if header is None:
        return None
    for key in ("PIXSCALE", "SECPIX", "SCALE"):
        v = header.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    px = header.get("XPIXSZ") or header.get("PIXSIZE1") or header.get("PIXSIZE")
    fl = header.get("FOCALLEN")
    if isinstance(px, (int, float)) and isinstance(fl, (int, float)) and px > 0 and fl > 0:
        return 206.265 * float(px) / float(fl)
    return None


def camera_gain(header: Any) -> float | None:
    """Electrons per ADU from EGAIN (preferred) or GAIN; None when absent."""
    if header is None:
        return None
    for key in ("EGAIN", "GAIN"):
        v = header.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    return None


def measure_frame(
    data: np.ndarray,
    scale: float | None = None,
    gain: float | None = None,
    model: str = "moffat",
    threshold: float = 5.0,
    max_fit: int = 300,
    stars: StarTable | None = None,
) -> dict[str, float]:
    """Measure one mono frame (colour frames: pass the luminance or the green channel).

    ``stars``: the frame's star table when already found (``find_stars`` with the same
    threshold and model), so that stars are not detected again."""
    return measure_frame_stars(data, scale, gain, model, threshold, max_fit, stars)[0]


# transparency: the brightest fitted stars compared rank by rank (fainter ones are biased
# bright in a cloudy frame: they are found only where the noise lifts them), the rank
# offsets tried (the plain ranks first), and how much better a shifted comparison must
# agree to be taken (with few stars one often agrees a little better by chance)
TRANSPARENCY_RANKS = 25
TRANSPARENCY_SHIFTS = (0, -1, 1, -2, 2)
TRANSPARENCY_SHIFT_GAIN = 0.6


def transparency(fluxes: list[np.ndarray], ranks: int = TRANSPARENCY_RANKS) -> np.ndarray:
    """Each frame's starlight against the set's, star by star without matching positions:
    the frame's fitted stars, brightest first, over the median star of the set at the same
    rank (the first ``ranks``); a frame's value is the median of those ratios (1: as the
    set; 0.35: a third of the light, cloud). The brightest stars keep their ranks from
    frame to frame, so this follows transparency as a sum of fluxes does, but one bright
    star fitted in some frames only (at an edge, saturated) shifts a frame's ranks by one
    where it takes its whole flux off a sum (40 % of a 192² frame's): the ranks are also
    compared shifted by one or two, and a shift whose ratios agree clearly better (spread
    of their logarithms under 0.6 of the plain ranks') is taken. ``fluxes``: each frame's
    fitted stars' fluxes, any order; a frame without any gets 0."""
    from .statistics import mdev

    ordered = []
    for f in fluxes:
        f = np.asarray(f, np.float64)
        ordered.append(np.sort(f[np.isfinite(f) & (f > 0)])[::-1][: int(ranks)])
    out = np.zeros(len(ordered))
    counts = [len(f) for f in ordered if len(f)]
    if not counts:
        return out
    k = max(counts)
    table = np.full((len(ordered), k), np.nan)
    for i, f in enumerate(ordered):
        table[i, : len(f)] = f
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ranks only some frames reach
        ref = np.log(np.nanmedian(table, axis=0))
    for i, f in enumerate(ordered):
        if not len(f):
            continue
        best = None
        for shift in TRANSPARENCY_SHIFTS:
            # the frame's star of rank j against the set's of rank j + shift
            lo, hi = max(0, -shift), min(len(f), k - shift)
            if hi - lo < min(3, len(f)):
                continue
            r = np.log(f[lo:hi]) - ref[lo + shift : hi + shift]
            r = r[np.isfinite(r)]
            if not r.size:
                continue
            mid = float(np.median(r))
            spread = mdev(r)  # of the logarithms: relative, only compared between shifts
            if best is None or spread < TRANSPARENCY_SHIFT_GAIN * best[0]:
                best = (spread, mid)
        out[i] = math.exp(best[1]) if best is not None else 0.0
    return out


def measure_frame_stars(
    data: np.ndarray,
    scale: float | None = None,
    gain: float | None = None,
    model: str = "moffat",
    threshold: float = 5.0,
    max_fit: int = 300,
    stars: StarTable | None = None,
) -> tuple[dict[str, float], StarTable]:
    """``measure_frame`` that also returns the star table it measured (to keep and reuse:
    registration needs the same stars)."""
    from .stars import find_stars

    arr = np.asarray(data, np.float32)
    if arr.ndim != 2:
        raise ValueError(f"measure works on mono (H, W) frames; got shape {arr.shape}")
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        raise ValueError("frame has no finite pixels")
    if stars is None:
        # windowed centroids for the unfitted among the brightest 300, the stars registration
        # matches and refines its transform on
        table = find_stars(
            arr, threshold=threshold, model=model, max_fit=max_fit, centroids=CENTROIDS
        )
    else:
        table = stars
    ok = table.fitted
    nfit = int(ok.sum())
    fwhm_px = float(np.median(table.fwhm[ok])) if nfit >= MIN_FITTED else math.nan
    ecc = float(np.median(table.eccentricity[ok])) if nfit >= MIN_FITTED else math.nan
    med = float(np.median(finite, overwrite_input=True))  # our copy: its order is free
    meandev = float(np.mean(np.abs(np.subtract(finite, med, out=finite), out=finite)))
    del finite
    noise = noise_mrs(arr)
    if not noise > 0:
        noise = float(table.noise) if table.noise > 0 else float(np.std(arr[np.isfinite(arr)]))
    psf_flux = float(np.nansum(table.flux[ok])) if nfit else 0.0
    out = {
        "FWHM": fwhm_px * scale if scale else fwhm_px,
        "FWHMPixels": fwhm_px,
        "Eccentricity": ecc,
        "Stars": float(len(table)),
        "StarsFitted": float(nfit),
        "Median": med,
        "MeanDeviation": meandev,
        "Noise": noise,
        "SNRWeight": (meandev / noise) ** 2 if noise > 0 else math.nan,
        "PSFFlux": psf_flux,
        "PSFSNR": psf_flux / noise if noise > 0 else math.nan,
        "PSFSignalWeight": (psf_flux / noise) ** 2 / 1e6 if noise > 0 else math.nan,
    }
    if gain:
        out["NoiseElectrons"] = noise * gain
    if scale:
        out["Scale"] = float(scale)
    return out, table


def statistics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Set statistics: for every numeric property P, PMin, PMax, PMedian, PMean, PSigma
    (NaN values ignored; all NaN gives NaN)."""
    out: dict[str, float] = {}
    if not rows:
        return out
    names = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
    for name in names:
        vals = np.array([r.get(name, math.nan) for r in rows], np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            stats = dict.fromkeys(("Min", "Max", "Median", "Mean", "Sigma"), math.nan)
        else:
            stats = {
                "Min": float(vals.min()),
                "Max": float(vals.max()),
                "Median": float(np.median(vals)),
                "Mean": float(vals.mean()),
                "Sigma": float(vals.std()),
            }
        for k, v in stats.items():
            out[name + k] = v
    return out
