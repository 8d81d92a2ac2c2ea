"""Image statistics as PixInsight defines them: location and (robust) scale estimators.

Each ``*_of`` function reduces along axis 0 of a stack (per-pixel statistics of a few
values); each image function reduces a whole 2-D array. Scale estimators are normalised to
be consistent with the standard deviation of a normal distribution where PixInsight does so
(MAD ×1.4826, average absolute deviation ×1.2533, Sn ×1.1926, Qn ×2.2191).
"""

from __future__ import annotations

import numpy as np

MAD_K = 1.4826
ADEV_K = 1.2533
SN_K = 1.1926
QN_K = 2.2191
EXACT_PAIRWISE_LIMIT = 2048  # Sn/Qn above this many values use a regular subsample


def _flat(a: np.ndarray) -> np.ndarray:
    v = np.asarray(a, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("the image has no finite pixels")
    return v


def mean(a: np.ndarray) -> float:
    return float(_flat(a).mean())


def median(a: np.ndarray) -> float:
    return float(np.median(_flat(a)))


def minimum(a: np.ndarray) -> float:
    return float(_flat(a).min())


def maximum(a: np.ndarray) -> float:
    return float(_flat(a).max())


def sdev(a: np.ndarray) -> float:
    v = _flat(a)
    return float(v.std(ddof=1)) if v.size > 1 else 0.0


def variance(a: np.ndarray) -> float:
    v = _flat(a)
    return float(v.var(ddof=1)) if v.size > 1 else 0.0


def adev(a: np.ndarray) -> float:
    """Average absolute deviation from the median, ×1.2533."""
    v = _flat(a)
    return float(ADEV_K * np.abs(v - np.median(v)).mean())


def mdev(a: np.ndarray) -> float:
    """Median absolute deviation from the median, ×1.4826."""
    v = _flat(a)
    return float(MAD_K * np.median(np.abs(v - np.median(v))))


def bwmv(a: np.ndarray, c: float = 9.0) -> float:
    """Biweight midvariance (Tukey), tuning constant 9 as PixInsight."""
    v = _flat(a)
    m = np.median(v)
    mad = np.median(np.abs(v - m))
    if mad == 0:
        return 0.0
    u = (v - m) / (c * mad)
    w = np.abs(u) < 1
    d = v[w] - m
    u2 = u[w] ** 2
    num = v.size * np.sum(d**2 * (1 - u2) ** 4)
    den = np.sum((1 - u2) * (1 - 5 * u2)) ** 2
    return float(num / den) if den else 0.0


def pbmv(a: np.ndarray, beta: float = 0.2) -> float:
    """Percentage bend midvariance, beta = 0.2."""
    v = _flat(a)
    n = v.size
    m = np.median(v)
    w = np.sort(np.abs(v - m))
    k = min(n - 1, max(0, int(np.floor((1 - beta) * n + 0.5)) - 1))
    omega = w[k]
    if omega == 0:
        return 0.0
    y = (v - m) / omega
    inside = np.abs(y) < 1
    psi = np.clip(y, -1, 1)
    den = np.sum(inside) ** 2
    return float(n * omega**2 * np.sum(psi**2) / den) if den else 0.0


def _subsample(v: np.ndarray) -> np.ndarray:
    if v.size <= EXACT_PAIRWISE_LIMIT:
        return v
    step = v.size / EXACT_PAIRWISE_LIMIT
    return v[(np.arange(EXACT_PAIRWISE_LIMIT) * step).astype(np.int64)]


def sn(a: np.ndarray) -> float:
    """Rousseeuw–Croux Sn ×1.1926 (exact up to 2048 values, else on a regular subsample)."""
    v = _subsample(_flat(a))
    d = np.abs(v[:, None] - v[None, :])
    return float(SN_K * np.median(np.median(d, axis=1)))


def qn(a: np.ndarray) -> float:
    """Rousseeuw–Croux Qn ×2.2191 (exact up to 2048 values, else on a regular subsample)."""
    v = _subsample(_flat(a))
    n = v.size
    if n < 2:
        return 0.0
    i, j = np.triu_indices(n, k=1)
    d = np.abs(v[i] - v[j])
    h = n // 2 + 1
    k = h * (h - 1) // 2
    return float(QN_K * np.partition(d, k - 1)[k - 1])


def modulus(a: np.ndarray) -> float:
    """Sum of absolute values (PixInsight's `mod`, not a remainder)."""
    return float(np.abs(_flat(a)).sum())


def norm(a: np.ndarray) -> float:
    return float(_flat(a).sum())


def ssqr(a: np.ndarray) -> float:
    return float((_flat(a) ** 2).sum())


def asqr(a: np.ndarray) -> float:
    return float((_flat(a) ** 2).mean())


IMAGE_STATS = {
    "mean": mean,
    "med": median,
    "min": minimum,
    "max": maximum,
    "sdev": sdev,
    "var": variance,
    "adev": adev,
    "mdev": mdev,
    "bwmv": bwmv,
    "pbmv": pbmv,
    "Sn": sn,
    "Qn": qn,
    "mod": modulus,
    "norm": norm,
    "ssqr": ssqr,
    "asqr": asqr,
}


# ---------------------------------------------------------------- per-pixel forms (axis 0)
def _stack(values: list) -> np.ndarray:
    # float64: statistics of close values (var(1e4, 1e4+0.01, …)) need the precision
    shape = np.broadcast_shapes(*(np.shape(v) for v in values))
    return np.stack([np.broadcast_to(np.asarray(v, np.float64), shape) for v in values])


def stack_mean(values: list) -> np.ndarray:
    return _stack(values).mean(axis=0)


def stack_median(values: list) -> np.ndarray:
    return np.median(_stack(values), axis=0)


def stack_sdev(values: list) -> np.ndarray:
    return _stack(values).std(axis=0, ddof=1)


def stack_var(values: list) -> np.ndarray:
    return _stack(values).var(axis=0, ddof=1)


def stack_adev(values: list) -> np.ndarray:
    s = _stack(values)
    return ADEV_K * np.abs(s - np.median(s, axis=0)).mean(axis=0)


def stack_mdev(values: list) -> np.ndarray:
    s = _stack(values)
    return MAD_K * np.median(np.abs(s - np.median(s, axis=0)), axis=0)


def stack_bwmv(values: list, c: float = 9.0) -> np.ndarray:
    s = _stack(values).astype(np.float64)
    m = np.median(s, axis=0)
    mad = np.median(np.abs(s - m), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (s - m) / (c * mad)
        w = np.abs(u) < 1
        u2 = np.where(w, u**2, 0)
        num = s.shape[0] * np.sum(np.where(w, (s - m) ** 2 * (1 - u2) ** 4, 0), axis=0)
        den = np.sum(np.where(w, (1 - u2) * (1 - 5 * u2), 0), axis=0) ** 2
        r = np.where((mad > 0) & (den > 0), num / den, 0)
    return r.astype(np.float32)


def stack_pbmv(values: list, beta: float = 0.2) -> np.ndarray:
    s = _stack(values).astype(np.float64)
    n = s.shape[0]
    m = np.median(s, axis=0)
    w = np.sort(np.abs(s - m), axis=0)
    k = min(n - 1, max(0, int(np.floor((1 - beta) * n + 0.5)) - 1))
    omega = w[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (s - m) / omega
        psi = np.clip(y, -1, 1)
        den = np.sum(np.abs(y) < 1, axis=0) ** 2
        r = np.where((omega > 0) & (den > 0), n * omega**2 * np.sum(psi**2, axis=0) / den, 0)
    return r.astype(np.float32)


def stack_sn(values: list) -> np.ndarray:
    s = _stack(values)
    d = np.abs(s[:, None] - s[None, :])
    return SN_K * np.median(np.median(d, axis=1), axis=0)


def stack_qn(values: list) -> np.ndarray:
    s = _stack(values)
    n = s.shape[0]
    i, j = np.triu_indices(n, k=1)
    d = np.sort(np.abs(s[i] - s[j]), axis=0)
    h = n // 2 + 1
    k = h * (h - 1) // 2
    return QN_K * d[k - 1]


def stack_ostat(k: float, values: list) -> np.ndarray:
    s = np.sort(_stack(values), axis=0)
    idx = int(round(min(max(k, 0.0), 1.0) * (s.shape[0] - 1)))
    return s[idx]


def stack_maxdev(values: list) -> np.ndarray:
    """Largest absolute deviation from the median of the values."""
    s = _stack(values)
    return np.abs(s - np.median(s, axis=0)).max(axis=0)
