"""Moffat point-spread functions and fast star rendering by stamps.

Coordinates follow numpy and ``sep``: ``x`` is the column, ``y`` the row, 0-based, and the
centre of pixel ``[i, j]`` is at ``(x=j, y=i)``. Fluxes are totals over the infinite plane;
a rendered star holds its flux minus the wing beyond its stamp (below ``threshold`` per pixel).
"""

from __future__ import annotations

import numpy as np

# Stamp half-sizes; stars are grouped by the first one that holds their wings, so each group
# is one vectorised evaluation.
_RADII = (3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128)
# Elements evaluated per vectorised chunk (stars x subsampled stamp pixels): bounds memory.
_CHUNK_ELEMENTS = 4_000_000


def moffat_fwhm_to_alpha(fwhm: float, beta: float) -> float:
    """The Moffat core width ``alpha`` giving this FWHM: ``fwhm / (2 sqrt(2^(1/beta) - 1))``.

    The profile is ``I(r) = (beta - 1) / (pi alpha^2) * (1 + r^2/alpha^2)^-beta`` (unit total).
    """
    if fwhm <= 0 or beta <= 1:
        raise ValueError(f"Moffat needs fwhm > 0 and beta > 1; got fwhm={fwhm}, beta={beta}")
    return float(fwhm) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_alpha_to_fwhm(alpha: float, beta: float) -> float:
    """Inverse of :func:`moffat_fwhm_to_alpha`."""
    return 2.0 * float(alpha) * np.sqrt(2.0 ** (1.0 / beta) - 1.0)


def moffat_peak(fwhm: float, beta: float, ellipticity: float = 0.0) -> float:
    """Peak value of a unit-flux Moffat (continuous profile, not pixel-integrated)."""
    a_minor = moffat_fwhm_to_alpha(fwhm, beta)
    a_major = a_minor / (1.0 - ellipticity)
    return (beta - 1.0) / (np.pi * a_major * a_minor)


def ellipticity_to_eccentricity(ellipticity: float) -> float:
    """Eccentricity ``sqrt(1 - (b/a)^2)`` of a PSF with ellipticity ``1 - b/a``."""
    return float(np.sqrt(1.0 - (1.0 - ellipticity) ** 2))


def _moffat_power(q: np.ndarray, beta: float) -> np.ndarray:
    """``(1 + q) ** -beta`` in float32 (vectorised exp/log1p: faster than ``power``, and than
    repeated multiplication for integer beta)."""
    return np.exp(np.float32(-beta) * np.log1p(q))


def render_stars(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float,
    beta: float = 4.0,
    ellipticity: float = 0.0,
    angle: float = 0.0,
    *,
    oversample: int = 3,
    threshold: float | None = None,
    max_radius: int = 128,
) -> np.ndarray:
    """Render Moffat stars into a new float32 image of ``shape`` (H, W).

    Parameters
    ----------
    shape : (H, W) of the output.
    x, y : star centres in pixels (column, row; pixel centres at integers). Stars off the
        image still add their wings to it.
    flux : total flux of each star (any unit; the image is in that unit per pixel).
    fwhm : full width at half maximum along the PSF's minor axis, in pixels.
    beta : Moffat exponent (> 1); larger is closer to a Gaussian.
    ellipticity : ``1 - b/a``; the major axis has FWHM ``fwhm / (1 - ellipticity)`` (a trail).
    angle : direction of the major axis in degrees, counter-clockwise from +x towards +y.
    oversample : sub-samples per pixel side; the profile is averaged over the pixel area,
        so centroids and fluxes are unbiased for any sub-pixel position.
    threshold : per-pixel value below which wings are cut; default ``1e-5`` of the brightest
        star's peak. A stamp's half-size is where the profile falls below it (at most
        ``max_radius``).

    Returns
    -------
    np.ndarray
        float32 (H, W) image.
    """
    h, w = (int(shape[0]), int(shape[1]))
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    flux = np.broadcast_to(np.asarray(flux, dtype=np.float64), x.shape)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length; got {x.shape} and {y.shape}")
    if not 0.0 <= ellipticity < 1.0:
        raise ValueError(f"ellipticity must be in [0, 1); got {ellipticity}")
    if oversample < 1:
        raise ValueError(f"oversample must be >= 1; got {oversample}")
    out = np.zeros(h * w, dtype=np.float64)
    keep = flux > 0
    if not keep.any():
        return out.reshape(h, w).astype(np.float32)

    a_minor = moffat_fwhm_to_alpha(fwhm, beta)
    a_major = a_minor / (1.0 - ellipticity)
    norm = (beta - 1.0) / (np.pi * a_major * a_minor)
    peak = flux * norm
    if threshold is None:
        threshold = 1e-5 * float(peak[keep].max())
    # Half-size where the profile along the major axis drops to the threshold.
    ratio = np.maximum(peak / max(threshold, 1e-300), 1.0)
    need = a_major * np.sqrt(np.maximum(ratio ** (1.0 / beta) - 1.0, 0.0))
    need = np.maximum(need, 1.5 * fwhm / (1.0 - ellipticity))
    radii = np.array([r for r in _RADII if r <= max_radius] or [max_radius])
    bucket = np.minimum(np.searchsorted(radii, np.minimum(need, radii[-1])), len(radii) - 1)
    cos_t, sin_t = np.float32(np.cos(np.radians(angle))), np.float32(np.sin(np.radians(angle)))
    inv_major = np.float32(1.0 / a_major)
    inv_minor = np.float32(1.0 / a_minor)

    for b in np.unique(bucket[keep]):
        r = int(radii[b])
        sel = keep & (bucket == b)
        # Drop stars whose whole stamp misses the image.
        sel &= (x > -r - 1) & (x < w + r) & (y > -r - 1) & (y < h + r)
        idx = np.flatnonzero(sel)
        if idx.size == 0:
            continue
        side = 2 * r + 1
        step = max(1, _CHUNK_ELEMENTS // (side * oversample) ** 2)
        offs = np.arange(-r, r + 1)
        sub = (np.arange(oversample) + 0.5) / oversample - 0.5
        # Sub-sample positions in pixel units, float32: the profile needs no more precision.
        grid = (offs[:, None] + sub[None, :]).ravel().astype(np.float32)
        for start in range(0, idx.size, step):
            chunk = idx[start : start + step]
            ix = np.rint(x[chunk]).astype(np.int64)
            iy = np.rint(y[chunk]).astype(np.int64)
            fx = (x[chunk] - ix).astype(np.float32)[:, None, None]
            fy = (y[chunk] - iy).astype(np.float32)[:, None, None]
            dx = grid[None, None, :] - fx
            dy = grid[None, :, None] - fy
            if ellipticity > 0.0:
                u = (dx * cos_t + dy * sin_t) * inv_major
                v = (dy * cos_t - dx * sin_t) * inv_minor
                q = u * u + v * v
            else:
                q = (dx * dx + dy * dy) * (inv_minor * inv_minor)
            prof = _moffat_power(q, beta)
            if oversample > 1:  # sum the sub-samples of each pixel (strided adds are fastest)
                prof = sum(prof[:, k::oversample] for k in range(oversample))
                prof = sum(prof[:, :, k::oversample] for k in range(oversample))
            weight = (flux[chunk] * (norm / oversample**2)).astype(np.float32)
            vals = prof * weight[:, None, None]
            rows = iy[:, None] + offs[None, :]
            cols = ix[:, None] + offs[None, :]
            row_ok = (rows >= 0) & (rows < h)
            col_ok = (cols >= 0) & (cols < w)
            flat = rows[:, :, None] * w + cols[:, None, :]
            if row_ok.all() and col_ok.all():
                out += np.bincount(flat.ravel(), weights=vals.ravel(), minlength=h * w)
            else:
                ok = row_ok[:, :, None] & col_ok[:, None, :]
                out += np.bincount(flat[ok], weights=vals[ok], minlength=h * w)
    return out.reshape(h, w).astype(np.float32)
