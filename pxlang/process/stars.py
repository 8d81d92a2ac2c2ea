"""Star detection (sep) and PSF fitting (elliptical Gaussian / Moffat).

Detection uses SEP (Source Extractor as a library): a meshed background, then thresholded
extraction at ``threshold`` × the background RMS. Positions are refined with SEP's windowed
centroids. Each star is then fitted on a small stamp by a Levenberg–Marquardt loop with an
analytic Jacobian (a numba kernel in ``psf_kernels``, imported only when fitting).

Coordinates are 0-based pixel centres: ``x`` is the column, ``y`` the row, as in numpy
indexing ``data[y, x]``. FWHM is in pixels (callers convert to arcsec).

The PSF models share one shape term, a quadratic form ``Q = cxx dx² + cyy dy² + cxy dx dy``,
which has no angle degeneracy for round stars:

- Gaussian: ``B + A exp(-Q / 2)``  (``cxx`` = 1/σ² on a round star)
- Moffat:   ``B + A (1 + Q) ** (-beta)``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

_FWHM_GAUSS = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.3548 σ

COLUMNS = ("x", "y", "flux", "fwhm", "eccentricity", "peak", "saturated")
_ALL_COLUMNS = (*COLUMNS, "fwhm_major", "fwhm_minor", "theta", "beta")


@dataclass
class StarTable:
    """Stars of one image; every column is a 1-D array of the same length.

    ``x``, ``y`` (pixels, 0-based centres), ``flux`` (background-subtracted, from the fitted
    PSF when fitted, else SEP's isophotal flux), ``fwhm`` (pixels, geometric mean of the two
    axes; NaN when not fitted), ``eccentricity`` (sqrt(1 - (b/a)²); NaN when not fitted),
    ``peak`` (background-subtracted maximum), ``saturated`` (bool), plus ``fwhm_x``/``fwhm_y``
    (major/minor axis FWHM), ``theta`` (major-axis angle, radians), ``beta`` (Moffat only).
    ``background`` and ``noise`` describe the image (global background level and RMS).
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    fwhm: np.ndarray
    eccentricity: np.ndarray
    peak: np.ndarray
    saturated: np.ndarray
    fwhm_major: np.ndarray = field(default_factory=lambda: np.empty(0))
    fwhm_minor: np.ndarray = field(default_factory=lambda: np.empty(0))
    theta: np.ndarray = field(default_factory=lambda: np.empty(0))
    beta: np.ndarray = field(default_factory=lambda: np.empty(0))
    background: float = 0.0
    noise: float = 0.0
    model: str = "moffat"

    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def fitted(self) -> np.ndarray:
        """Mask of stars whose PSF fit converged."""
        return np.isfinite(self.fwhm)

    def xy(self) -> np.ndarray:
        """(N, 2) array of (x, y) positions."""
        return np.column_stack([self.x, self.y])

    def select(self, mask: np.ndarray) -> StarTable:
        """A table with the rows where ``mask`` is true (or the given indices)."""
        cols = {}
        for name in _ALL_COLUMNS:
            arr = getattr(self, name)
            cols[name] = arr[mask] if arr.size == self.x.size else arr
        return StarTable(**cols, background=self.background, noise=self.noise, model=self.model)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The table as plain arrays (``np.savez``-able, no pickling); see ``from_arrays``."""
        out = {name: np.asarray(getattr(self, name)) for name in _ALL_COLUMNS}
        out["background_noise"] = np.array([self.background, self.noise], np.float64)
        out["model"] = np.array(self.model)
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> StarTable:
        """The table ``to_arrays`` gave (any mapping of name -> array, e.g. an ``np.load``)."""
        cols = {name: np.asarray(arrays[name]) for name in _ALL_COLUMNS}
        cols["saturated"] = cols["saturated"].astype(bool)
        bg, noise = (float(v) for v in np.asarray(arrays["background_noise"]))
        return cls(**cols, background=bg, noise=noise, model=str(arrays["model"]))

    def rows(self) -> list[dict[str, float]]:
        """The table as a list of dicts (for printing / JSON)."""
        out = []
        for i in range(len(self)):
            out.append(
                {c: (bool if c == "saturated" else float)(getattr(self, c)[i]) for c in COLUMNS}
            )
        return out

    def describe(self) -> str:
        n = len(self)
        ok = self.fitted
        if ok.any():
            return (
                f"a star table of {n} stars (median FWHM {np.median(self.fwhm[ok]):.2f} px, "
                f"eccentricity {np.median(self.eccentricity[ok]):.2f})"
            )
        return f"a star table of {n} stars"


# SEP's deblending sub-thresholds (SExtractor's DEBLEND_NTHRESH). 16, not SEP's 32: the
# cost is in the large objects (nebulosity above the threshold: thousands of pixels, split
# at every level), and 16 levels take a quarter to a third off the extraction of a nebula
# field (81-97 -> 48-74 ms a 1024² frame) while parting the same close pairs (1.4-2 FWHM
# apart, up to 2:1 in flux: tests/process/test_stars.py; 8 levels miss some).
DEBLEND_LEVELS = 16


def _check_mono(data: np.ndarray, what: str = "image") -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (H, W) mono array; got shape {arr.shape}")
    if arr.shape[0] < 16 or arr.shape[1] < 16:
        raise ValueError(f"{what} is too small for star detection: {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def background(data: np.ndarray, mesh: int = 64, mask: np.ndarray | None = None):
    """SEP background model: ``(back_map, global_level, global_rms)``; the map is float32."""
    import sep

    arr = _check_mono(data)
    mesh = int(max(8, min(mesh, arr.shape[0] // 2, arr.shape[1] // 2)))
    bkg = sep.Background(arr, mask=mask, bw=mesh, bh=mesh, fw=3, fh=3)
    back = bkg.back().astype(np.float32, copy=False)  # float32 already: no second plane
    return back, float(bkg.globalback), float(bkg.globalrms)


def detect(
    data: np.ndarray,
    threshold: float = 5.0,
    minarea: int = 5,
    max_stars: int | None = None,
    mesh: int = 64,
    mask: np.ndarray | None = None,
    centroids: bool = True,
    deblend: bool = True,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Detect stars with SEP.

    Returns ``(objects, subtracted, background_level, rms)``: SEP's structured array (brightest
    first, with windowed centroids in ``x``/``y``; isophotal barycentres with
    ``centroids=False``), the background-subtracted image, the global background level and RMS.
    ``deblend=False`` leaves touching stars as one object (SEP's 32 deblending levels are
    half of its time on a 2048² star field).
    """

    arr = _check_mono(data)
    finite = np.isfinite(arr)
    if not finite.all():
        arr = np.where(finite, arr, np.float32(np.nanmedian(arr) if finite.any() else 0.0))
        mask = ~finite if mask is None else (mask | ~finite)
    back, level, rms = background(arr, mesh=mesh, mask=mask)
    sub = np.subtract(arr, back, out=back)  # the background's plane, not a new one
    del back
    if not np.isfinite(rms) or rms <= 0:
        rms = float(np.std(sub)) or 1e-6
    levels = DEBLEND_LEVELS if deblend else 1
    objs = _extract(sub, float(threshold), rms, int(minarea), mask, levels)
    objs = objs[(objs["a"] > 0) & (objs["b"] > 0) & np.isfinite(objs["x"])]
    order = np.argsort(-objs["flux"])
    objs = objs[order]
    if max_stars is not None:
        objs = objs[: int(max_stars)]
    if objs.size and centroids:
        objs = objs.copy()
        objs["x"], objs["y"] = windowed_centroids(sub, objs)
    return objs, sub, level, rms


def _extract(
    sub: np.ndarray,
    threshold: float,
    rms: float,
    minarea: int,
    mask: np.ndarray | None,
    levels: int = 32,
) -> np.ndarray:
    """``sep.extract`` with SEP's own pixel stack (300 000 pixels) first: SEP initialises
    the whole stack at every call, and the stack of a quarter of a 2048² frame (32 MB) was
    faulted in afresh for each star field. A frame with so much above the threshold
    (nebulosity) that the stack fills goes again with a stack of half the frame (at least a
    million pixels), then at twice the threshold."""
    import sep

    sep.set_sub_object_limit(4096)
    big = max(1_000_000, sub.size // 2)
    tries = [(300_000, threshold), (big, threshold), (big, threshold * 2.0)]
    for k, (stack, thr) in enumerate(tries):
        sep.set_extract_pixstack(stack)
        try:
            return sep.extract(
                sub, thr, err=rms, minarea=minarea, mask=mask, deblend_nthresh=levels
            )
        except Exception as exc:  # sep raises bare Exception when a buffer overflows
            text = str(exc).lower()
            if k == len(tries) - 1 or not any(w in text for w in ("overflow", "limit", "full")):
                raise
    raise AssertionError("unreachable")


def windowed_centroids(sub: np.ndarray, objs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SEP's windowed centroids of detected objects (their isophotal barycentre where the
    window fails): several times more precise than the barycentres."""
    import sep

    if objs.size == 0:
        return np.asarray(objs["x"], np.float64), np.asarray(objs["y"], np.float64)
    sig = np.clip(2.0 / 2.3548 * np.sqrt(objs["a"] * objs["b"]) * 1.5, 0.5, 10.0)
    # subpix=0: exact pixel/window overlap, twice as fast as the default 11×11
    # sub-sampling and as precise (positions agree to 0.001 px)
    wx, wy, wflag = sep.winpos(sub, objs["x"], objs["y"], sig, subpix=0)
    good = (wflag == 0) & np.isfinite(wx) & (np.hypot(wx - objs["x"], wy - objs["y"]) < 2.0)
    return np.where(good, wx, objs["x"]), np.where(good, wy, objs["y"])


def _valid(params: np.ndarray, kind: str, half: int) -> np.ndarray:
    cxx, cyy, cxy = params[:, 4], params[:, 5], params[:, 6]
    ok = (cxx > 0) & (cyy > 0) & (4 * cxx * cyy - cxy * cxy > 0) & (params[:, 1] > 0)
    ok &= (np.abs(params[:, 2]) < half) & (np.abs(params[:, 3]) < half)
    if kind == "moffat":
        ok &= (params[:, 7] > 0.6) & (params[:, 7] < 30)
    return ok & np.all(np.isfinite(params), axis=1)


def fit_psf(
    stamps: np.ndarray,
    init: np.ndarray,
    kind: str = "moffat",
    iterations: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit N stamps with Levenberg–Marquardt (a numba kernel, star by star: ``psf_kernels``).

    Parameters
    ----------
    stamps : (N, S, S) array, star centred near the middle pixel.
    init : (N, P) initial parameters ``B, A, x0, y0, cxx, cyy, cxy[, beta]`` with x0/y0
        relative to the stamp centre.
    kind : "moffat" or "gaussian".

    Returns
    -------
    params : (N, P) fitted parameters; ok : (N,) bool, fit converged to a valid PSF.
    """
    if kind not in ("moffat", "gaussian"):
        raise ValueError(f"PSF model must be 'moffat' or 'gaussian'; got {kind!r}")
    n, s, s2 = stamps.shape
    if s != s2:
        raise ValueError(f"stamps must be square; got {stamps.shape}")
    npar = 8 if kind == "moffat" else 7
    if np.shape(init) != (n, npar):
        raise ValueError(f"init must be ({n}, {npar}) for a {kind} fit; got {np.shape(init)}")
    from .psf_kernels import fit_lm  # numba only when fitting (see psf_kernels)

    half = s // 2
    yy, xx = np.mgrid[-half : s - half, -half : s - half]
    dx = xx.ravel().astype(np.float64)
    dy = yy.ravel().astype(np.float64)
    z = np.ascontiguousarray(stamps.reshape(n, -1), dtype=np.float64)
    p = np.array(init, dtype=np.float64, order="C")  # a copy: the kernel fits in place
    fit_lm(z, dx, dy, p, kind == "moffat", half, int(iterations))
    return p, _valid(p, kind, half)


def shape_from_params(params: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """FWHM (major, minor, mean), eccentricity and angle from fitted parameters."""
    cxx, cyy, cxy = params[:, 4], params[:, 5], params[:, 6]
    # Eigenvalues of [[cxx, cxy/2], [cxy/2, cyy]]: the small one is the major axis.
    tr = cxx + cyy
    disc = np.sqrt(np.maximum((cxx - cyy) ** 2 + cxy**2, 0.0))
    lam_small = np.maximum((tr - disc) / 2.0, 1e-12)
    lam_big = np.maximum((tr + disc) / 2.0, 1e-12)
    if kind == "gaussian":
        k = np.full(params.shape[0], _FWHM_GAUSS)
    else:
        beta = params[:, 7]
        k = 2.0 * np.sqrt(np.power(2.0, 1.0 / beta) - 1.0)
    major = k / np.sqrt(lam_small)
    minor = k / np.sqrt(lam_big)
    ecc = np.sqrt(np.clip(1.0 - (minor / major) ** 2, 0.0, 1.0))
    theta = 0.5 * np.arctan2(-cxy, cyy - cxx)  # direction of the major axis
    return {
        "fwhm_major": major,
        "fwhm_minor": minor,
        "fwhm": np.sqrt(major * minor),
        "eccentricity": ecc,
        "theta": theta,
    }


def _psf_flux(params: np.ndarray, kind: str) -> np.ndarray:
    """Analytic integral of the fitted PSF (without background)."""
    a = params[:, 1]
    det = np.maximum(params[:, 4] * params[:, 5] - params[:, 6] ** 2 / 4.0, 1e-24)
    if kind == "gaussian":
        return a * 2.0 * np.pi / np.sqrt(det)
    beta = params[:, 7]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(beta > 1.0, a * np.pi / ((beta - 1.0) * np.sqrt(det)), np.nan)


def stamps_at(
    data: np.ndarray, x: np.ndarray, y: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut (2·half+1)² stamps centred on the nearest pixels of (x, y).

    Returns ``(stamps, inside, cx, cy)``; stars whose stamp leaves the image are dropped
    (``inside`` marks the kept ones, ``cx``/``cy`` are the integer centres of the kept ones).
    """
    h, w = data.shape
    cx = np.rint(x).astype(np.int64)
    cy = np.rint(y).astype(np.int64)
    inside = (cx - half >= 0) & (cy - half >= 0) & (cx + half < w) & (cy + half < h)
    cx, cy = cx[inside], cy[inside]
    off = np.arange(-half, half + 1)
    rows = cy[:, None, None] + off[None, :, None]
    cols = cx[:, None, None] + off[None, None, :]
    return data[rows, cols], inside, cx, cy


def find_stars(
    data: np.ndarray,
    threshold: float = 5.0,
    model: str = "moffat",
    max_stars: int | None = 2000,
    max_fit: int | None = 300,
    saturation: float | None = None,
    minarea: int = 5,
    mesh: int = 64,
    fit: bool = True,
    centroids: int | None = None,
    deblend: bool = True,
) -> StarTable:
    """Detect stars and fit their PSF.

    Parameters
    ----------
    data : (H, W) float image.
    threshold : detection threshold in units of the background RMS.
    model : "moffat" or "gaussian" PSF model.
    max_stars : keep at most this many detections (the brightest).
    max_fit : fit at most this many stars (the brightest unsaturated); the others keep
        SEP's measurements with NaN FWHM/eccentricity.
    saturation : pixel level at or above which a star counts as saturated (default: 98 % of
        the image maximum, used only when several pixels of a star reach it).
    fit : False skips the PSF fit (detection and centroids only; much faster).
    centroids : the stars not placed by a PSF fit get SEP's windowed centroid among the
        brightest ``centroids`` (default: all), the others their isophotal barycentre
        (~0.1 px worse; enough to match star patterns, and the centroids cost ~0.04 ms a star).
    mesh : background mesh size in pixels.
    deblend : False leaves blended stars as one detection (faster; see ``detect``).

    Returns
    -------
    StarTable, brightest first.
    """
    if model not in ("moffat", "gaussian"):
        raise ValueError(f"PSF model must be 'moffat' or 'gaussian'; got {model!r}")
    arr = _check_mono(data)
    objs, sub, level, rms = detect(
        arr, threshold, minarea, max_stars, mesh, centroids=False, deblend=deblend
    )
    table = _fitted_table(arr, objs, sub, level, rms, model, max_fit, saturation, fit)
    # windowed centroids where the fit did not place the star (it is more precise still)
    todo = np.nonzero(~table.fitted[: len(table) if centroids is None else int(centroids)])[0]
    if todo.size:
        table.x[todo], table.y[todo] = windowed_centroids(sub, objs[todo])
    return table


def _fitted_table(
    arr: np.ndarray,
    objs: np.ndarray,
    sub: np.ndarray,
    level: float,
    rms: float,
    model: str,
    max_fit: int | None,
    saturation: float | None,
    fit: bool,
) -> StarTable:
    """The star table of SEP's detections, with the PSF fits of the brightest unsaturated."""
    n = objs.size
    x = np.asarray(objs["x"], np.float64)
    y = np.asarray(objs["y"], np.float64)
    peak = np.asarray(objs["peak"], np.float64)
    flux = np.asarray(objs["flux"], np.float64)
    nan = np.full(n, np.nan)
    table = StarTable(
        x=x,
        y=y,
        flux=flux,
        fwhm=nan.copy(),
        eccentricity=nan.copy(),
        peak=peak,
        saturated=np.zeros(n, bool),
        fwhm_major=nan.copy(),
        fwhm_minor=nan.copy(),
        theta=nan.copy(),
        beta=nan.copy(),
        background=level,
        noise=rms,
        model=model,
    )
    if n == 0:
        return table
    finite_max = float(np.nanmax(arr))
    sat_level = float(saturation) if saturation is not None else 0.98 * finite_max
    s_sat, inside, cx, cy = stamps_at(arr, x, y, 1)
    sat = np.zeros(n, bool)
    nsat = (s_sat >= sat_level).reshape(s_sat.shape[0], -1).sum(axis=1)
    sat[np.nonzero(inside)[0]] = nsat >= (1 if saturation is not None else 3)
    table.saturated = sat
    if not fit:
        return table
    # Stamp size from the median detected size: about 3 FWHM across, 9..31 pixels.
    sigma0 = float(np.median(np.sqrt(objs["a"] * objs["b"])))
    half = int(np.clip(np.ceil(3.0 * _FWHM_GAUSS * sigma0 / 2.0) + 1, 4, 15))
    cand = np.nonzero(~sat & ((objs["flag"] & 2) == 0))[0]  # 2: truncated at the image edge
    if max_fit is not None:
        cand = cand[: int(max_fit)]
    stamps, inside, cx, cy = stamps_at(sub, x[cand], y[cand], half)
    cand = cand[inside]
    if cand.size == 0:
        return table
    o = objs[cand]
    init = np.column_stack(
        [
            np.zeros(cand.size),
            np.maximum(peak[cand], 1e-6),
            x[cand] - cx,
            y[cand] - cy,
            np.asarray(o["cxx"], np.float64),
            np.asarray(o["cyy"], np.float64),
            np.asarray(o["cxy"], np.float64),
        ]
    )
    if model == "moffat":
        init[:, 4:7] *= 0.19  # α ≈ 2.3 σ for beta = 3 (same half-width as the Gaussian)
        init = np.column_stack([init, np.full(cand.size, 3.0)])
    params, ok = fit_psf(stamps, init, model)
    shape = shape_from_params(params, model)
    # Reject fits that drifted or exploded: centre kept within 2 px, FWHM within the stamp.
    ok &= np.hypot(params[:, 2] - init[:, 2], params[:, 3] - init[:, 3]) < 2.0
    ok &= (shape["fwhm_major"] < 2 * half) & (shape["fwhm_minor"] > 0.3)
    idx = cand[ok]
    table.x[idx] = cx[ok] + params[ok, 2]
    table.y[idx] = cy[ok] + params[ok, 3]
    for name in ("fwhm", "eccentricity", "fwhm_major", "fwhm_minor", "theta"):
        getattr(table, name)[idx] = shape[name][ok]
    pflux = _psf_flux(params[ok], model)
    table.flux[idx] = np.where(np.isfinite(pflux), pflux, table.flux[idx])
    table.peak[idx] = params[ok, 1]
    if model == "moffat":
        table.beta[idx] = params[ok, 7]
    return table


def render_stars(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float | np.ndarray,
    beta: float | None = None,
    ratio: float = 1.0,
    angle: float = 0.0,
    oversample: int = 5,
    radius: float | None = None,
) -> np.ndarray:
    """Render stars (pixel-integrated by oversampling) onto a zero float32 image.

    ``beta=None`` gives Gaussian stars, else Moffat with that beta. ``fwhm`` is the major-axis
    FWHM in pixels; ``ratio`` = minor/major axis ratio; ``angle`` (radians) the major-axis
    direction. ``flux`` is each star's total flux (before truncation at ``radius``, default
    4 FWHM). Used for synthetic truth in tests and benchmarks.
    """
    h, w = int(shape[0]), int(shape[1])
    x = np.atleast_1d(np.asarray(x, np.float64))
    y = np.atleast_1d(np.asarray(y, np.float64))
    flux = np.broadcast_to(np.asarray(flux, np.float64), x.shape)
    fw = np.broadcast_to(np.asarray(fwhm, np.float64), x.shape)
    out = np.zeros((h, w), np.float64)
    if x.size == 0:
        return out.astype(np.float32)
    rad = int(np.ceil(radius if radius is not None else 4.0 * float(fw.max()))) + 1
    os_ = int(oversample)
    sub = (np.arange(os_) + 0.5) / os_ - 0.5
    off = np.arange(-rad, rad + 1)
    fine = (off[:, None] + sub[None, :]).ravel()  # sub-pixel sample offsets from a centre pixel
    cos, sin = np.cos(angle), np.sin(angle)
    for start in range(0, x.size, 256):  # chunks keep memory small
        sl = slice(start, start + 256)
        cx = np.rint(x[sl]).astype(np.int64)
        cy = np.rint(y[sl]).astype(np.int64)
        dx = fine[None, None, :] + (cx - x[sl])[:, None, None]
        dy = fine[None, :, None] + (cy - y[sl])[:, None, None]
        u = dx * cos + dy * sin
        v = -dx * sin + dy * cos
        f = fw[sl][:, None, None]
        if beta is None:
            sa = f / _FWHM_GAUSS
            sb = sa * ratio
            prof = np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))
            norm = 2 * np.pi * sa * sb
        else:
            al = f / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
            bl = al * ratio
            prof = (1.0 + (u / al) ** 2 + (v / bl) ** 2) ** (-beta)
            norm = np.pi * al * bl / (beta - 1.0)
        prof = prof * (flux[sl][:, None, None] / norm) / os_**2
        k = off.size
        pix = prof.reshape(-1, k, os_, k, os_).sum(axis=(2, 4))
        rows = cy[:, None, None] + off[None, :, None]
        cols = cx[:, None, None] + off[None, None, :]
        inb = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        rr = np.broadcast_to(rows, pix.shape)[inb]
        cc = np.broadcast_to(cols, pix.shape)[inb]
        np.add.at(out, (rr, cc), pix[inb])
    return out.astype(np.float32)
