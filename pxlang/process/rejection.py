"""Pixel rejection for image integration, with PixInsight's meanings (ImageIntegration).

The hot path is :func:`integrate_band`, a numba kernel (``rejection_kernels.py``) over a
``(N, rows, W)`` float32 band of N frames: each pixel stack is sorted, rejected from (the
kept values are a contiguous range of the sorted stack, statistics come from prefix sums)
and combined.

Methods (defaults are PixInsight's ImageIntegration defaults):

``minmax``           drop the ``low`` lowest and ``high`` highest values (1, 1).
``percentile``       drop x with (m - x)/m > low or (x - m)/m > high, m the median; one pass
                     (0.2, 0.1).
``sigma``            iterate: m median, s standard deviation of the kept values; drop
                     (m - x)/s > low, (x - m)/s > high (4, 3). s includes the outliers: a
                     lone outlier among n values is at most ~(n - 1)/sqrt(n) s away, so
                     below ~11 frames a clipping point of 3 cannot reject it (PixInsight's
                     definition, meant for larger sets).
``averaged_sigma``   as sigma, but s = sqrt(k * m): a Poisson noise model whose constant k
                     (variance / signal, an inverse gain) is one number for the whole image,
                     so that a lone outlier among a few frames stands out (4, 3). As IRAF's
                     AVSIGCLIP (the origin PixInsight cites), k is an average over many
                     pixels (IRAF pools it per image line); here it is the median, over the
                     image or a sample of its rows (``integration.py``), of each stack's
                     sample variance / median divided by the median of chi2(n-1)/(n-1):
                     robust to outliers, unbiased for Gaussian noise. m is recomputed after
                     each rejection, k is not. Pixels with a median <= 0 are not clipped.
                     PixInsight's own code (PCL IntegrationRejectionEngine) takes k per pixel
                     from that pixel's stack alone, outliers included, which cannot reject a
                     lone outlier among fewer than ~11 frames at a high point of 3.
``winsorized``       as sigma, but s is the Winsorized standard deviation: values beyond
                     m +- 1.5 s are clamped, s = 1.134 * stdev(clamped), repeated until s
                     changes by < 0.05 % (Huber's method) (4, 3). PixInsight's variant up to
                     2020; since 2021 it starts from s = 1.1926 * Sn, first sets values
                     beyond 5 s to the centre, and centres on the Winsorized mean.
``linear_fit``       fit a straight line to the sorted stack (value vs rank) by least absolute
                     deviation; drop values below the line by >= low * s or above by
                     >= high * s, s = 2 * mean absolute deviation * sqrt(1 + slope^2); repeat
                     (5, 4). The slowest method (~20x winsorized): one exact L1 fit per
                     iteration and pixel. When several lines fit equally well, the one found
                     by pivoting is used.
``esd``              generalised extreme studentized deviate test (Rosner 1983) with
                     PixInsight's trimmed-mean centre: at most ``low`` (fraction, 0.3) of the
                     stack are outliers at significance ``high`` (0.05); low values are judged
                     with a relaxation factor (1: none).

NaN and infinite values are missing data: they sort last and are ignored.
"""

from __future__ import annotations

import functools

import numpy as np

from .jit import split
from .rejection_kernels import GAIN_PASS, _band_kernel

METHODS = (
    "none",
    "minmax",
    "percentile",
    "sigma",
    "averaged_sigma",
    "winsorized",
    "linear_fit",
    "esd",
)
COMBINES = ("average", "median", "min", "max")

# PixInsight ImageIntegration defaults (ImageIntegrationParameters: minMaxLow/High,
# pcClipLow/High, sigmaLow/High, linearFitLow/High, esdOutliersFraction/esdAlpha).
DEFAULTS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "minmax": (1.0, 1.0),
    "percentile": (0.2, 0.1),
    "sigma": (4.0, 3.0),
    "averaged_sigma": (4.0, 3.0),
    "winsorized": (4.0, 3.0),
    "linear_fit": (5.0, 4.0),
    "esd": (0.3, 0.05),
}
ESD_LOW_RELAXATION = 1.0


def auto_rejection(n_frames: int) -> str:
    """The guide's rule: < 7 frames percentile, 7-14 averaged sigma, 15-24 winsorized,
    25 or more linear fit."""
    if n_frames < 7:
        return "percentile"
    if n_frames < 15:
        return "averaged_sigma"
    if n_frames < 25:
        return "winsorized"
    return "linear_fit"


@functools.lru_cache(maxsize=64)
def sorting_network(n: int) -> np.ndarray:
    """Comparator pairs (a, b), a < b, of Batcher's odd-even merge sort for ``n`` inputs.

    Built for the next power of two and pruned of comparators touching padding (padding
    would be +inf and never moves), so it sorts exactly ``n`` values.
    """
    pairs = []
    t = 1
    while t < n:
        t *= 2
    p = 1
    while p < t:
        k = p
        while k >= 1:
            j = k % p
            while j + k < t:
                for i in range(min(k, t - j - k)):
                    a, b = i + j, i + j + k
                    if a // (2 * p) == b // (2 * p) and b < n:
                        pairs.append((a, b))
                j += 2 * k
            k //= 2
        p *= 2
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


@functools.lru_cache(maxsize=16)
def esd_lambda_table(n_max: int, alpha: float) -> np.ndarray:
    """Critical values lambda[n, i] of the generalised ESD test (two-sided, level alpha)."""
    # scipy.special, not scipy.stats (~0.75 s to import, in the run's serial part):
    # Student's t.isf(p, df) is -stdtrit(df, p), to the last bit
    from scipy.special import stdtrit

    lam = np.full((n_max + 1, n_max + 1), np.inf)
    for n in range(3, n_max + 1):
        i = np.arange(0, n - 2)
        p = alpha / 2.0 / (n - i)
        tq = -stdtrit(n - i - 2, p)
        lam[n, : n - 2] = tq * (n - i - 1) / np.sqrt((n - i - 2 + tq * tq) * (n - i))
    return lam


@functools.lru_cache(maxsize=16)
def chi2_median_ratio(n_max: int) -> np.ndarray:
    """c[n] = median of chi2(n - 1) / (n - 1), for n up to ``n_max``: the median of the
    sample variance of n Gaussian values in units of their variance (c[0] = c[1] = nan)."""
    # the median of chi2(k) is 2 * gammaincinv(k / 2, 1/2): scipy.stats' chi2.ppf without
    # importing scipy.stats (see esd_lambda_table)
    from scipy.special import gammaincinv

    c = np.full(n_max + 1, np.nan)
    n = np.arange(2, n_max + 1)
    c[2:] = 2.0 * gammaincinv((n - 1) / 2.0, 0.5) / (n - 1)
    return c


def poisson_k_samples(
    band: np.ndarray, scale: np.ndarray | None = None, offset: np.ndarray | None = None
) -> np.ndarray:
    """Per-pixel estimates of k in sigma^2 = k * signal, for averaged sigma clipping.

    For each pixel stack of the normalised band (``x * scale[i] + offset[i]``) with at
    least 3 valid values and a positive median m: its sample variance / m / c[n] (see
    :func:`chi2_median_ratio`), so that the median of the estimates is k for Gaussian
    noise whatever the frame count. Returns the finite estimates, float64, 1-D.
    """
    band = _check_band(band)
    N, R, W = band.shape
    scale_a, offset_a, ones, _ = _frame_vectors(N, scale, offset, None)
    ratio = np.empty((R, W), np.float32)
    nvalid = np.empty((R, W), np.int32)
    counts = [np.empty((R, W), np.int32) for _ in range(2)]
    dummy = np.zeros((1, 1, 1), np.bool_)
    split(
        _band_kernel,
        band, scale_a, offset_a, ones, False, False, sorting_network(N), GAIN_PASS,
        0.0, 0.0, 1.0, 0.0, np.zeros((1, 1)), 0, ratio, *counts, nvalid,
        dummy, dummy, False,
    )  # fmt: skip
    ok = np.isfinite(ratio)
    return ratio[ok].astype(np.float64) / chi2_median_ratio(N)[nvalid[ok]]


def estimate_poisson_k(
    band: np.ndarray, scale: np.ndarray | None = None, offset: np.ndarray | None = None
) -> float:
    """k of averaged sigma clipping (sigma^2 = k * median) from one band: the median of
    :func:`poisson_k_samples`; nan when no pixel qualifies (then nothing is clipped)."""
    s = poisson_k_samples(band, scale, offset)
    return float(np.median(s)) if s.size else float("nan")


def _method_code(method: str) -> int:
    try:
        return METHODS.index(method)
    except ValueError:
        raise ValueError(
            f"unknown rejection {method!r}; expected one of {', '.join(METHODS)} or 'auto'"
        ) from None


def integrate_band(
    band: np.ndarray,
    *,
    method: str = "winsorized",
    low: float | None = None,
    high: float | None = None,
    combine: str = "average",
    scale: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    esd_relaxation: float = ESD_LOW_RELAXATION,
    poisson_k: float | None = None,
    frame_masks: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reject and combine a band of N frames, ``(N, rows, W)`` float32.

    Each frame is first normalised as ``x * scale[i] + offset[i]``. Returns
    ``(combined, n_low, n_high, n_valid)``: float32 (rows, W) and per-pixel int32 counts of
    values rejected low/high and of valid (finite) values. ``poisson_k``: k of averaged
    sigma clipping for the whole image; None estimates it from this band alone.
    ``frame_masks``: two C-contiguous bool ``(N, rows, W)`` arrays, filled with which value
    of which frame was rejected low and high (the drizzle rejection data); the kernel then
    compares each value with the kept range (linear fit: carries frame indices through the
    sort). A rejected value equal to a kept one is not flagged.
    """
    band = _check_band(band)
    N, R, W = band.shape
    code = _method_code(method)
    if combine not in COMBINES:
        raise ValueError(f"unknown combine {combine!r}; expected one of {', '.join(COMBINES)}")
    lowp, highp = _clip_points(method, low, high)
    scale_a, offset_a, weights_a, weighted = _frame_vectors(N, scale, offset, weights)
    lam = esd_lambda_table(N, float(highp)) if method == "esd" else np.zeros((1, 1))
    pk = _poisson_k(method, poisson_k, band, scale_a, offset_a)
    out = np.empty((R, W), np.float32)
    nlow = np.empty((R, W), np.int32)
    nhigh = np.empty((R, W), np.int32)
    nvalid = np.empty((R, W), np.int32)
    want = frame_masks is not None
    # the kept values of every method but linear fit are a contiguous range of the sorted
    # stack: the masks come from comparing each value with it; linear fit keeps a set, so
    # frame indices travel through the sort
    index_payload = want and method == "linear_fit"
    if want:
        lmask, hmask = frame_masks
        for m in (lmask, hmask):
            if m.shape != (N, R, W) or m.dtype != np.bool_ or not m.flags.c_contiguous:
                raise ValueError(f"frame_masks must be C-contiguous bool {(N, R, W)} arrays")
            m[...] = False  # values that are missing (NaN) are never written
    else:
        lmask = hmask = np.zeros((1, 1, 1), np.bool_)
    split(
        _band_kernel,
        band, scale_a, offset_a, weights_a, weighted, index_payload, sorting_network(N), code,
        float(lowp), float(highp), float(esd_relaxation), pk, lam, COMBINES.index(combine),
        out, nlow, nhigh, nvalid, lmask, hmask, want,
    )  # fmt: skip
    return out, nlow, nhigh, nvalid


def rejection_masks(
    stack: np.ndarray,
    method: str,
    low: float | None = None,
    high: float | None = None,
    esd_relaxation: float = ESD_LOW_RELAXATION,
    poisson_k: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which values of a ``(N, H, W)`` stack each method rejects: boolean masks (low, high).

    The same kernel as integration, carrying frame indices through the sort. For linear fit,
    a rejected value counts as low when it lies in the lower half of the sorted stack.
    ``poisson_k`` as in :func:`integrate_band` (None: estimated from this stack).
    """
    stack = _check_band(stack)
    N, R, W = stack.shape
    code = _method_code(method)
    lowp, highp = _clip_points(method, low, high)
    lam = esd_lambda_table(N, float(highp)) if method == "esd" else np.zeros((1, 1))
    pk = _poisson_k(method, poisson_k, stack, None, None)
    lmask = np.zeros((N, R, W), np.bool_)
    hmask = np.zeros((N, R, W), np.bool_)
    out = np.empty((R, W), np.float32)
    counts = [np.empty((R, W), np.int32) for _ in range(3)]
    ones = np.ones(N, np.float32)
    split(
        _band_kernel,
        stack, ones, np.zeros(N, np.float32), ones, False, True, sorting_network(N), code,
        float(lowp), float(highp), float(esd_relaxation), pk, lam, 0, out, *counts,
        lmask, hmask, True,
    )  # fmt: skip
    return lmask, hmask


def _poisson_k(method, poisson_k, band, scale, offset) -> float:
    if method != "averaged_sigma":
        return 0.0
    if poisson_k is None:
        return estimate_poisson_k(band, scale, offset)
    return float(poisson_k)


def _check_band(band: np.ndarray) -> np.ndarray:
    band = np.asarray(band)
    if band.ndim != 3:
        raise ValueError(f"a band of frames is (N, rows, W); got shape {band.shape}")
    if band.shape[0] < 1:
        raise ValueError("no frames to integrate")
    if band.dtype != np.float32 or not band.flags.c_contiguous:
        band = np.ascontiguousarray(band, dtype=np.float32)
    return band


def _clip_points(method: str, low: float | None, high: float | None) -> tuple[float, float]:
    if method not in DEFAULTS:
        _method_code(method)
    dl, dh = DEFAULTS[method]
    lowp = dl if low is None else float(low)
    highp = dh if high is None else float(high)
    if lowp < 0 or highp < 0:
        raise ValueError(f"clipping points must be >= 0; got low={lowp:g}, high={highp:g}")
    if method == "esd" and not (0 < lowp < 1 and 0 < highp < 1):
        raise ValueError(
            "esd takes low = the largest fraction of outliers (0-1, default 0.3) and "
            f"high = the significance level (0-1, default 0.05); got {lowp:g}, {highp:g}"
        )
    return lowp, highp


def _frame_vectors(n, scale, offset, weights):
    def vec(x, default, name):
        if x is None:
            return np.full(n, default, np.float32)
        a = np.asarray(x, dtype=np.float32).ravel()
        if a.shape != (n,):
            raise ValueError(f"{name} needs one value per frame ({n}); got {a.shape[0]}")
        return a

    w = vec(weights, 1.0, "weights")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("weights must be finite, >= 0 and not all zero")
    weighted = weights is not None and not np.all(w == w[0])
    return vec(scale, 1.0, "scale"), vec(offset, 0.0, "offset"), w, bool(weighted)
