"""The average PSF of a star field, as the guide's DynamicPSF recipe makes it.

Stars are detected with ``sep`` on the background-subtracted image; we keep those that are
unsaturated, away from the edges, isolated, on a flat background (not in nebulosity) and
unflagged, take the ``stars`` brightest, fit each with an elliptical Moffat

    I(x, y) = B + A·(1 + (x'/αx)² + (y'/αy)²)^(−β),   FWHM = 2α·sqrt(2^(1/β) − 1)

(x', y' rotated by θ), drop outlier fits, and take the medians of β, FWHM along both axes and
the (axial) mean of θ. The PSF image is that Moffat rendered on an odd grid out to where it
falls below 1e-3 of its peak, peak-normalised to 1 (as DynamicPSF's PSF image).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PSFModel:
    """An average Moffat PSF. Angles in degrees (counter-clockwise from +x), FWHM in pixels."""

    beta: float
    fwhm_x: float  # along the major axis
    fwhm_y: float  # along the minor axis
    angle: float
    n_stars: int
    positions: list[tuple[float, float]] = field(default_factory=list)  # (x, y) of the fitted stars

    @property
    def fwhm(self) -> float:
        return float(np.sqrt(self.fwhm_x * self.fwhm_y))

    @property
    def ellipticity(self) -> float:
        return 1.0 - self.fwhm_y / self.fwhm_x

    def image(self, radius: int | None = None) -> np.ndarray:
        return moffat_kernel(self.fwhm_x, self.beta, self.fwhm_y, self.angle, radius)


def _alpha(fwhm: float, beta: float) -> float:
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat(
    x: np.ndarray,
    y: np.ndarray,
    fwhm_x: float,
    beta: float,
    fwhm_y: float | None = None,
    angle: float = 0.0,
) -> np.ndarray:
    """A unit-peak elliptical Moffat evaluated at offsets (x, y) from its centre."""
    fy = fwhm_x if fwhm_y is None else fwhm_y
    th = np.deg2rad(angle)
    xr = x * np.cos(th) + y * np.sin(th)
    yr = -x * np.sin(th) + y * np.cos(th)
    r2 = (xr / _alpha(fwhm_x, beta)) ** 2 + (yr / _alpha(fy, beta)) ** 2
    return (1.0 + r2) ** (-beta)


def moffat_kernel(
    fwhm_x: float,
    beta: float,
    fwhm_y: float | None = None,
    angle: float = 0.0,
    radius: int | None = None,
) -> np.ndarray:
    """A peak-normalised Moffat PSF image, odd-sized, sampled at pixel centres."""
    if fwhm_x <= 0 or beta <= 0:
        raise ValueError(f"a Moffat PSF needs FWHM > 0 and β > 0, got FWHM={fwhm_x:g}, β={beta:g}")
    if radius is None:
        a = _alpha(max(fwhm_x, fwhm_y or fwhm_x), beta)
        radius = int(np.ceil(min(a * np.sqrt(1000.0 ** (1.0 / beta) - 1.0), 64.0)))
        radius = max(radius, 2)
    g = np.arange(-radius, radius + 1, dtype=np.float64)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    k = moffat(xx, yy, fwhm_x, beta, fwhm_y, angle)
    return (k / k.max()).astype(np.float32)


def _fit_star(stamp: np.ndarray, x0: float, y0: float, fwhm0: float):
    from scipy.optimize import least_squares

    h, w = stamp.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    bg0 = float(np.median(np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]])))
    amp0 = float(stamp.max() - bg0)
    a0 = _alpha(max(fwhm0, 1.0), 2.5)

    def model(p):
        amp, cx, cy, ax, ay, th, beta, bg = p
        dx, dy = xx - cx, yy - cy
        c, s = np.cos(th), np.sin(th)
        xr, yr = dx * c + dy * s, -dx * s + dy * c
        return bg + amp * (1.0 + (xr / ax) ** 2 + (yr / ay) ** 2) ** (-beta)

    p0 = [amp0, x0, y0, a0, a0 * 0.95, 0.1, 2.5, bg0]
    lo = [0.0, x0 - 3, y0 - 3, 0.2, 0.2, -np.pi, 0.6, -np.inf]
    hi = [np.inf, x0 + 3, y0 + 3, 50.0, 50.0, np.pi, 20.0, np.inf]
    res = least_squares(
        lambda p: (model(p) - stamp).ravel(), p0, bounds=(lo, hi), x_scale="jac", max_nfev=400
    )
    if not res.success:
        return None
    amp, cx, cy, ax, ay, th, beta, bg = res.x
    if ay > ax:  # keep x as the major axis
        ax, ay, th = ay, ax, th + np.pi / 2
    f = 2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0)
    return {
        "x": cx,
        "y": cy,
        "fwhm_x": ax * f,
        "fwhm_y": ay * f,
        "theta": th,
        "beta": beta,
        "amp": amp,
    }


def fit_psf(
    image: np.ndarray,
    stars: int = 40,
    avoid_saturated: bool = True,
    avoid_edges: int | None = None,
    saturation: float = 0.95,
    threshold: float = 5.0,
    min_stars: int = 1,
) -> PSFModel:
    """Fit the average PSF of a mono image (see module doc).

    ``avoid_edges``: margin in pixels (default: none beyond fitting a stamp of at least 1.5×FWHM
    radius; stamps are 2×FWHM where room allows); ``saturation``: a star
    whose raw peak reaches this level, or with a flat top, is saturated; ``threshold``:
    detection threshold in background σ. Raises ``ValueError`` when fewer than ``min_stars``
    usable stars remain.
    """
    import sep

    data = np.ascontiguousarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"psf needs a mono (H, W) image, got shape {data.shape}")
    if stars < 1:
        raise ValueError(f"stars must be ≥ 1, got {stars}")
    bkg = sep.Background(data)
    back = bkg.back()
    sub = data - back
    from .wavelets import noise_sigma

    # sep's mesh rms collapses on processed backgrounds (clipped, deconvolved): take the larger
    # of it and the wavelet noise estimate
    rms = (
        max(float(bkg.globalrms), noise_sigma(data.astype(np.float32)))
        or float(np.std(sub))
        or 1e-6
    )
    old = sep.get_extract_pixstack()
    sep.set_extract_pixstack(max(old, data.size // 4))
    try:
        objs = sep.extract(sub, threshold, err=rms, minarea=5)
    finally:
        sep.set_extract_pixstack(old)
    if len(objs) == 0:
        raise ValueError(f"no stars detected above {threshold:g}× the background noise")
    fwhm_guess = 2.355 * np.sqrt(np.clip(objs["a"] * objs["b"], 0.25, None))
    fwhm0 = float(np.median(fwhm_guess))
    R = int(np.clip(np.ceil(2.0 * fwhm0), 5, 25))
    r_min = int(max(4, np.ceil(1.5 * fwhm0)))  # smallest stamp radius we fit (stars near edges)
    H, W = data.shape
    xs, ys = objs["x"], objs["y"]
    back_level = float(np.median(back))
    order = np.argsort(-objs["flux"])
    chosen: list[tuple[int, int]] = []  # (object index, stamp radius)
    for i in order:
        x, y = float(xs[i]), float(ys[i])
        if objs["flag"][i] != 0:
            continue
        ix, iy = int(round(x)), int(round(y))
        edge = min(ix, iy, W - 1 - ix, H - 1 - iy)
        if avoid_edges is not None and edge < avoid_edges:
            continue
        r = min(R, edge)
        if r < r_min:
            continue
        # isolated: no other detection within 1.5 stamp radii
        d2 = (xs - x) ** 2 + (ys - y) ** 2
        if np.count_nonzero(d2 < (1.5 * r) ** 2) > 1:
            continue
        stamp = data[iy - r : iy + r + 1, ix - r : ix + r + 1]
        peak = float(stamp.max())
        if avoid_saturated and (
            peak >= saturation or np.count_nonzero(stamp >= peak - 1e-6 * max(peak, 1)) >= 3
        ):
            continue
        # nebulosity: the local background must not stand out from the image's
        if back[iy, ix] - back_level > 5 * rms:
            continue
        chosen.append((int(i), r))
        if len(chosen) >= 3 * stars:
            break
    fits = []
    for i, r in chosen:
        if len(fits) >= stars:
            break
        ix, iy = int(round(float(xs[i]))), int(round(float(ys[i])))
        stamp = data[iy - r : iy + r + 1, ix - r : ix + r + 1]
        f = _fit_star(stamp, float(xs[i]) - (ix - r), float(ys[i]) - (iy - r), float(fwhm_guess[i]))
        if f is None or f["amp"] < threshold * rms:
            continue
        f["x"] += ix - r
        f["y"] += iy - r
        fits.append(f)
    if len(fits) < min_stars:
        raise ValueError(
            f"only {len(fits)} usable star(s) (need {min_stars}): the image has too few "
            "unsaturated, isolated stars away from the edges"
        )
    fx = np.array([f["fwhm_x"] for f in fits])
    med = np.median(fx)
    mad = np.median(np.abs(fx - med)) * 1.4826 or med * 0.05
    keep = [f for f in fits if abs(f["fwhm_x"] - med) <= 3 * mad]
    if len(keep) < min_stars:
        keep = fits
    th = np.array([f["theta"] for f in keep])
    angle = 0.5 * np.degrees(np.arctan2(np.mean(np.sin(2 * th)), np.mean(np.cos(2 * th))))
    return PSFModel(
        beta=float(np.median([f["beta"] for f in keep])),
        fwhm_x=float(np.median([f["fwhm_x"] for f in keep])),
        fwhm_y=float(np.median([f["fwhm_y"] for f in keep])),
        angle=float(angle),
        n_stars=len(keep),
        positions=[(float(f["x"]), float(f["y"])) for f in keep],
    )
