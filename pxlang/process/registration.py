"""Star alignment: match star lists, fit a geometric model, resample with Lanczos-3.

1. Initial match: triangle invariants (side ratios) of the brightest stars, matched in a k-d
   tree; every matched triangle pair votes for a similarity (scale, angle, translation, mirror)
   and the best-supported candidate wins if far more stars agree than chance allows. This is
   astroalign's idea, vectorised and widened: astroalign 2.6 (nearest-neighbour asterisms of
   50 stars, no mirror) failed here on frames overlapping by a quarter with 30 % of the stars
   missing, taking up to 17 s to give up. Cheaper matches come first, for a night's frames:
   a vote on star-to-star offsets (a dither); when that shift explains too few stars, it (or
   the vote repeated on the frame turned by ±1–3°) refined by iterated nearest-neighbour
   pairing (a small field rotation, ~2 ms instead of ~45).
2. Refinement: every star of the frame is mapped by the initial transform, paired with its
   nearest reference star, and the chosen model is fitted by least squares on all pairs, with
   outlier clipping, a few rounds.
3. Models: ``similarity`` (rotation, uniform scale, translation, and mirror if needed),
   ``affine``, ``homography``, ``tps`` (thin-plate splines over an affine base: distortion
   correction between different optical systems).

A ``Transform`` maps *frame* pixel coordinates to *reference* coordinates (``forward``) and
back (``inverse``); 0-based pixel centres, ``x`` = column. It pickles small (TPS keeps its
control points and rebuilds its splines), so it can travel in frame metadata to drizzle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .neighbours import k_nearest, nearest_within, pairs_within

MODELS = ("similarity", "affine", "homography", "tps")
_MATCH_TOL = 1.5  # pixels: a star "agrees" with a candidate transform within this distance
# Thin-plate-spline regularisation (normalised coordinates): lets the spline follow optical
# distortion (pixels over hundreds of pixels) but not the 0.05–0.1 px centroid noise.
DEFAULT_TPS_SMOOTHING = 0.01


class RegistrationError(ValueError):
    """A frame could not be matched to the reference (too few stars or no consistent match)."""


def _h(xy: np.ndarray) -> np.ndarray:
    return np.column_stack([xy, np.ones(len(xy))])


def _apply_matrix(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = _h(np.asarray(xy, np.float64)) @ m.T
    return p[:, :2] / p[:, 2:3]


def fit_similarity(src: np.ndarray, dst: np.ndarray, allow_mirror: bool = True) -> np.ndarray:
    """Least-squares similarity (Umeyama) taking ``src`` to ``dst``; 3×3 matrix.

    With ``allow_mirror`` the best of the proper and the mirrored solution is returned.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    cov = b.T @ a / len(src)
    u, s, vt = np.linalg.svd(cov)
    var = (a * a).sum() / len(src)
    best = None
    for sign in (1.0, -1.0) if allow_mirror else (np.sign(np.linalg.det(u @ vt)) or 1.0,):
        d = np.diag([1.0, sign])
        r = u @ d @ vt
        scale = np.trace(np.diag(s) @ d) / var
        t = md - scale * r @ ms
        m = np.eye(3)
        m[:2, :2] = scale * r
        m[:2, 2] = t
        err = np.sum((_apply_matrix(m, src) - dst) ** 2)
        if best is None or err < best[0]:
            best = (err, m)
    return best[1]


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine transform taking ``src`` to ``dst``; 3×3 matrix."""
    a = _h(np.asarray(src, np.float64))
    coef, *_ = np.linalg.lstsq(a, np.asarray(dst, np.float64), rcond=None)
    m = np.eye(3)
    m[:2, :] = coef.T
    return m


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Homography taking ``src`` to ``dst``: normalised DLT, then least squares on the
    reprojection error (Gauss–Newton through scipy)."""
    from scipy.optimize import least_squares

    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)

    def norm(p):
        c = p.mean(0)
        s = np.sqrt(2) / max(np.sqrt(((p - c) ** 2).sum(1)).mean(), 1e-12)
        return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])

    ts, td = norm(src), norm(dst)
    ps, pd = _apply_matrix(ts, src), _apply_matrix(td, dst)
    rows = []
    for (x, y), (u, v) in zip(ps, pd):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    hn = vt[-1].reshape(3, 3)
    m = np.linalg.inv(td) @ hn @ ts
    m /= m[2, 2]

    def resid(p):
        mm = np.append(p, 1.0).reshape(3, 3)
        return (_apply_matrix(mm, src) - dst).ravel()

    sol = least_squares(resid, m.ravel()[:8], method="lm")
    return np.append(sol.x, 1.0).reshape(3, 3)


def _fit(model: str, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    if model == "similarity":
        return fit_similarity(src, dst)
    if model == "homography" and len(src) >= 6:
        return fit_homography(src, dst)
    return fit_affine(src, dst)  # affine, and the base of tps


@dataclass
class _Spline:
    """Residual displacement field (thin-plate spline) on top of a 3×3 base transform."""

    src: np.ndarray  # control points in the input space of this direction
    disp: np.ndarray  # displacement to add after the base transform
    smoothing: float  # in units of the normalised coordinates (extent of the points = 1)
    _rbf: Any = field(default=None, repr=False, compare=False)

    def _norm(self) -> tuple[np.ndarray, float]:
        lo = self.src.min(0)
        return lo, float(max(np.ptp(self.src, axis=0).max(), 1.0))

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        lo, size = self._norm()
        if self._rbf is None:
            from scipy.interpolate import RBFInterpolator

            # normalised coordinates make the smoothing independent of the image size
            self._rbf = RBFInterpolator(
                (self.src - lo) / size,
                self.disp,
                kernel="thin_plate_spline",
                smoothing=self.smoothing,
            )
        return self._rbf((np.asarray(xy, np.float64) - lo) / size)

    def __getstate__(self):
        return {"src": self.src, "disp": self.disp, "smoothing": self.smoothing, "_rbf": None}


@dataclass
class Transform:
    """Frame → reference mapping. ``matrix``: 3×3 (frame → reference); for ``tps`` also
    spline corrections in both directions. ``matched``/``rms``: stars used and residual RMS
    (pixels) of the fit; ``mirrored``: the frame is a mirror image of the reference."""

    model: str
    matrix: np.ndarray
    fwd_spline: _Spline | None = None
    inv_spline: _Spline | None = None
    matched: int = 0
    rms: float = float("nan")
    mirrored: bool = False

    @classmethod
    def identity(cls) -> Transform:
        return cls("similarity", np.eye(3), matched=0, rms=0.0)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The transform as plain arrays (``np.savez``-able, no pickling); see
        ``from_arrays``. Splines keep their control points only."""
        out = {
            "model": np.array(self.model),
            "matrix": np.asarray(self.matrix, np.float64),
            "numbers": np.array([self.matched, self.rms, float(self.mirrored)], np.float64),
        }
        for name in ("fwd_spline", "inv_spline"):
            sp = getattr(self, name)
            if sp is not None:
                out[f"{name}_src"] = sp.src
                out[f"{name}_disp"] = sp.disp
                out[f"{name}_smoothing"] = np.array(sp.smoothing, np.float64)
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> Transform:
        """The transform ``to_arrays`` gave (any mapping of name -> array)."""
        matched, rms, mirrored = np.asarray(arrays["numbers"]).tolist()
        splines = {}
        for name in ("fwd_spline", "inv_spline"):
            if f"{name}_src" in arrays:
                splines[name] = _Spline(
                    np.asarray(arrays[f"{name}_src"], np.float64),
                    np.asarray(arrays[f"{name}_disp"], np.float64),
                    float(arrays[f"{name}_smoothing"]),
                )
        return cls(
            str(arrays["model"]),
            np.asarray(arrays["matrix"], np.float64),
            matched=int(matched),
            rms=float(rms),
            mirrored=bool(mirrored),
            **splines,
        )

    @property
    def inverse_matrix(self) -> np.ndarray:
        return np.linalg.inv(self.matrix)

    def forward(self, xy: np.ndarray) -> np.ndarray:
        """Frame (x, y) → reference (x, y); ``xy`` is (N, 2)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        out = _apply_matrix(self.matrix, xy)
        if self.fwd_spline is not None:
            out = out + self.fwd_spline(xy)
        return out

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        """Reference (x, y) → frame (x, y)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        out = _apply_matrix(self.inverse_matrix, xy)
        if self.inv_spline is not None:
            out = out + self.inv_spline(xy)
        return out

    def _grid(self, shape: tuple[int, int], direction: str, step: int = 16) -> np.ndarray:
        """Evaluate a mapping on every pixel of ``shape``: exact for matrices; splines are
        evaluated on a coarse grid and interpolated (cubic), being smooth by construction."""
        from scipy.ndimage import map_coordinates

        h, w = int(shape[0]), int(shape[1])
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        m = self.matrix if direction == "forward" else self.inverse_matrix
        den = m[2, 0] * xx + m[2, 1] * yy + m[2, 2]
        gx = (m[0, 0] * xx + m[0, 1] * yy + m[0, 2]) / den
        gy = (m[1, 0] * xx + m[1, 1] * yy + m[1, 2]) / den
        spline = self.fwd_spline if direction == "forward" else self.inv_spline
        if spline is not None:
            ys = np.unique(np.r_[np.arange(0, h, step), h - 1]).astype(np.float64)
            xs = np.unique(np.r_[np.arange(0, w, step), w - 1]).astype(np.float64)
            cy, cx = np.meshgrid(ys, xs, indexing="ij")
            d = spline(np.column_stack([cx.ravel(), cy.ravel()])).reshape(len(ys), len(xs), 2)
            # fractional grid indices of every pixel
            iy = np.interp(np.arange(h), ys, np.arange(len(ys)))
            ix = np.interp(np.arange(w), xs, np.arange(len(xs)))
            ii, jj = np.meshgrid(iy, ix, indexing="ij")
            for k, g in ((0, gx), (1, gy)):
                g += map_coordinates(d[..., k], [ii, jj], order=3, mode="nearest")
        return np.stack([gx, gy])

    def source_coords(self, out_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """For each pixel of the reference grid ``out_shape``, its (x, y) in the frame."""
        g = self._grid(out_shape, "inverse")
        return g[0], g[1]

    def pixmap(self, in_shape: tuple[int, int]) -> np.ndarray:
        """For each frame pixel, its reference (x, y): (H, W, 2), drizzle's pixmap layout."""
        g = self._grid(in_shape, "forward")
        return np.dstack([g[0], g[1]])


def _pairs(
    m: np.ndarray, frm: np.ndarray, ref: np.ndarray, radius: float, spline: _Spline | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours within ``radius`` after mapping frame stars by ``m``."""
    mapped = _apply_matrix(m, frm)
    if spline is not None:
        mapped = mapped + spline(frm)
    d, j = nearest_within(ref, mapped, radius)
    ok = np.isfinite(d)
    fi = np.nonzero(ok)[0]
    rj = j[ok]
    # keep mutual pairs only (one reference star claimed by one frame star): the frame star
    # nearest each claimed reference star, which is within radius of it
    _, back_i = nearest_within(mapped, ref[rj], radius)
    mutual = back_i == fi
    return fi[mutual], rj[mutual]


def _triangles(
    xy: np.ndarray, min_side: float, neighbours: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Well-shaped triangles of ``xy``: invariants (a/c, b/c), vertex indices in canonical
    order (opposite the shortest, middle, longest side) and orientation sign.

    ``neighbours=None``: every triangle; else only triangles of each star with pairs of its
    ``neighbours`` nearest stars (keeps the count linear in the number of stars).
    """
    from itertools import combinations

    n = len(xy)
    if n < 3:
        return np.empty((0, 2)), np.empty((0, 3), int), np.empty(0)
    if neighbours is None:
        tri = np.array(list(combinations(range(n), 3)), dtype=np.int64)
    else:
        k = min(neighbours + 1, n)
        nn = k_nearest(xy, k)
        pairs = np.array(list(combinations(range(1, k), 2)), dtype=np.int64)
        tri = np.concatenate(
            [np.repeat(nn[:, :1], len(pairs), axis=0), nn[:, pairs].reshape(-1, 2)], axis=1
        )
        tri = np.unique(np.sort(tri, axis=1), axis=0)
    p = xy[tri]  # (T, 3, 2)
    # side i is opposite vertex i
    sides = np.stack(
        [
            np.hypot(*(p[:, 1] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 1]).T),
        ],
        axis=1,
    )
    order = np.argsort(sides, axis=1)
    ss = np.take_along_axis(sides, order, axis=1)
    a, b, c = ss[:, 0], ss[:, 1], ss[:, 2]
    # drop small triangles and near-isosceles ones (their vertex order is ambiguous)
    ok = (c >= min_side) & ((b - a) / c > 0.03) & ((c - b) / c > 0.03) & (a / c > 0.1)
    tri = np.take_along_axis(tri, order, axis=1)[ok]
    inv = np.column_stack([a / c, b / c])[ok]
    q = xy[tri]
    cross = (q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1]) - (q[:, 1, 1] - q[:, 0, 1]) * (
        q[:, 2, 0] - q[:, 0, 0]
    )
    return inv, tri, np.sign(cross)


def _count_inliers(m: np.ndarray, frm: np.ndarray, ref: np.ndarray, tol: float) -> int:
    """Frame stars mapped by ``m`` that have a reference star closer than ``tol``."""
    d, _ = nearest_within(ref, _apply_matrix(m, frm), tol)
    return int(np.isfinite(d).sum())


def _triangle_match(
    frm: np.ndarray, ref: np.ndarray, control: int, neighbours: int | None
) -> tuple[int, np.ndarray, bool] | None:
    """Similarity (with mirror) from voting over matched triangles of the brightest stars.

    Returns ``(inliers, matrix, mirrored)`` of the best-supported candidate, or None.
    """
    size = max(np.ptp(ref[:, 0]), np.ptp(ref[:, 1]), 1.0)
    min_side = 0.03 * size if neighbours is None else 4.0
    fi, ft, fs = _triangles(frm[:control], min_side, neighbours)
    ri, rt, rs = _triangles(ref[:control], min_side, neighbours)
    if len(fi) == 0 or len(ri) == 0:
        return None
    # every (frame, reference) triangle pair with close invariants, as index arrays
    f_idx, r_idx, _ = pairs_within(fi, ri, 0.006)
    if f_idx.size == 0:
        return None
    mirror = fs[f_idx] != rs[r_idx]
    # complex least squares z_ref = a * z_frm + b (z_frm conjugated for mirrored pairs)
    zf = frm[ft[f_idx], 0] + 1j * frm[ft[f_idx], 1]
    zf = np.where(mirror[:, None], np.conj(zf), zf)
    zr = ref[rt[r_idx], 0] + 1j * ref[rt[r_idx], 1]
    # (sums over the 3 vertices written out: numpy's reductions over a length-3 axis of
    # ~10⁵ rows are several times slower)
    mf = (zf[:, 0] + zf[:, 1] + zf[:, 2]) / 3.0
    mr = (zr[:, 0] + zr[:, 1] + zr[:, 2]) / 3.0
    zf0 = zf - mf[:, None]
    zr0 = zr - mr[:, None]
    cross = zr0 * np.conj(zf0)
    norm = zf0.real**2 + zf0.imag**2
    a = (cross[:, 0] + cross[:, 1] + cross[:, 2]) / (norm[:, 0] + norm[:, 1] + norm[:, 2])
    b = mr - a * mf
    # vote in (mirror, log scale, angle, translation) bins
    # one int64 per bin: mirror | log scale | angle | translation x | translation y
    ls = np.clip(np.round(np.log(np.abs(a)) / 0.01), -511, 511).astype(np.int64) + 512
    an = np.round(np.angle(a) / 0.02).astype(np.int64) + 512
    bx = np.clip(np.round(b.real / 4.0), -32767, 32767).astype(np.int64) + 32768
    by = np.clip(np.round(b.imag / 4.0), -32767, 32767).astype(np.int64) + 32768
    key = (((mirror.astype(np.int64) * 1024 + ls) * 1024 + an) * 65536 + bx) * 65536 + by
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    best = None
    for u in np.argsort(-counts)[:8]:
        sel = inverse.ravel() == u
        am, bm, mi = np.median(a[sel].real) + 1j * np.median(a[sel].imag), b[sel], mirror[sel][0]
        bm = np.median(bm.real) + 1j * np.median(bm.imag)
        m = np.array([[am.real, -am.imag, bm.real], [am.imag, am.real, bm.imag], [0, 0, 1.0]])
        if mi:
            m = m @ np.diag([1.0, -1.0, 1.0])  # z̄ = (x, -y)
        n_in = _count_inliers(m, frm, ref, _MATCH_TOL)
        if best is None or n_in > best[0]:
            best = (n_in, m, bool(mi))
    return best


def _translation_match(
    frm: np.ndarray, ref: np.ndarray, control: int
) -> tuple[int, np.ndarray, bool] | None:
    """A pure shift from the mode of the star-to-star offsets of the brightest stars.

    Frames of one night differ mostly by dithering: this finds them in ~1 ms where the
    triangle vote takes ~50; a rotated, scaled or mirrored frame finds too few inliers here
    and goes on to the triangles."""
    k = min(len(frm), len(ref), max(control, 60))
    d = (ref[:k, None, :] - frm[None, :k, :]).reshape(-1, 2)
    cell = 2.0 * _MATCH_TOL
    key = np.round(d / cell).astype(np.int64)
    span = int(np.abs(key).max()) + 2
    codes = (key[:, 0] + span) * (2 * span + 1) + (key[:, 1] + span)
    uniq, counts = np.unique(codes, return_counts=True)
    if counts.max() < 3:
        return None
    best = None
    for u in uniq[np.argsort(-counts)[:3]]:
        shift = np.median(d[codes == u], axis=0)
        m = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]], [0.0, 0.0, 1.0]])
        n_in = _count_inliers(m, frm, ref, _MATCH_TOL)
        if best is None or n_in > best[0]:
            best = (n_in, m, False)
    return best


_ICP_STARS = 300  # brightest stars paired by _icp_similarity


def _icp_similarity(
    frm: np.ndarray, ref: np.ndarray, m: np.ndarray, need: int
) -> tuple[int, np.ndarray, bool] | None:
    """Refine a rough proper similarity ``m`` (e.g. a shift that matches only near the centre
    of a small field rotation) by alternating nearest-neighbour pairing and a least-squares
    fit, with a tolerance shrinking to ``_MATCH_TOL``. ``(inliers, matrix, False)``, or None
    when the pairs dwindle below ``need``. ~1 ms for a few hundred stars."""
    prev = None
    # a few hundred stars pin a similarity down: pairing more only costs time (the
    # acceptance below still counts every star)
    f, r = frm[:_ICP_STARS], ref[:_ICP_STARS]
    # generous first: a shift off by 1° still pairs stars 450 px from where it fits, and the
    # first fit on them already gets the rotation nearly right
    for tol in (8.0, 4.0, 2.5, _MATCH_TOL, _MATCH_TOL, _MATCH_TOL, _MATCH_TOL):
        fi, rj = _pairs(m, f, r, tol)
        if len(fi) < max(need, 3):
            return None
        m = fit_similarity(f[fi], r[rj], allow_mirror=False)
        if tol == _MATCH_TOL:
            if prev is not None and np.array_equal(prev, fi):
                break  # the inlier set has settled
            prev = fi
    return _count_inliers(m, frm, ref, _MATCH_TOL), m, False


# Field rotations (degrees) at which the shift vote is repeated: a step of 1° leaves at most
# 0.5° to the refinement, where the vote still finds a few dozen stars agreeing.
_SMALL_ROTATIONS = (1.0, -1.0, 2.0, -2.0, 3.0, -3.0)


def _small_rotation_match(
    frm: np.ndarray,
    ref: np.ndarray,
    control: int,
    need: int,
    enough: float,
    shift: tuple[int, np.ndarray, bool] | None,
) -> tuple[int, np.ndarray, bool] | None:
    """A frame rotated by up to ~3° (field rotation, or a rotated reference): the shift vote
    still finds where the frames agree (near the centre of rotation) and ``_icp_similarity``
    grows that into the full similarity. From ~1° at 1024² the vote at 0° finds too few
    stars (2°: none), so it is repeated on the frame turned by ±1°, ±2°, ±3°.
    Returns the first refined candidate with at least ``enough`` inliers, or None (~1–3 ms
    when nothing fits: the frame then goes to the triangles)."""
    if shift is not None and shift[0] >= need:
        found = _icp_similarity(frm, ref, shift[1], need)
        if found is not None and found[0] >= enough:
            return found
    c = frm.mean(0)
    for deg in _SMALL_ROTATIONS:
        t = np.radians(deg)
        rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0, 0, 1.0]])
        rot[:2, 2] = c - rot[:2, :2] @ c  # about the stars' centroid
        got = _translation_match(_apply_matrix(rot, frm), ref, control)
        if got is None or got[0] < need:
            continue
        found = _icp_similarity(frm, ref, got[1] @ rot, need)
        if found is not None and found[0] >= enough:
            return found
    return None


def _initial(
    frm: np.ndarray, ref: np.ndarray, control: int, min_matches: int = 6
) -> tuple[np.ndarray, bool]:
    # Triangle vote (fast, handles mirror images and small overlaps): all triangles
    # of the brightest stars, then local triangles of many stars. A candidate
    # is accepted when its inliers clearly exceed chance coincidences.
    area = max(np.ptp(ref[:, 0]) * np.ptp(ref[:, 1]), 1.0)
    chance = len(frm) * len(ref) / area * np.pi * _MATCH_TOL**2
    # well above the chance count (Poisson mean + 5 sigma + 3), never below min_matches
    need = max(min_matches, int(np.ceil(chance + 5.0 * np.sqrt(chance) + 3.0)))
    enough = max(need, 0.5 * min(len(frm), len(ref)))
    best = _translation_match(frm, ref, control)
    # a shift must explain most stars: a slightly rotated frame matches only near the
    # centre of rotation...
    if best is not None and best[0] >= enough:
        return best[1], best[2]
    # ...and is refined from there (a few ms), which spares the triangles (~50 ms) every
    # frame of a night whose reference is slightly rotated; same acceptance as a shift
    found = _small_rotation_match(frm, ref, control, need, enough, best)
    if found is not None:
        return found[1], found[2]
    for n, nb in ((control, None), (400, 8), (400, 12)):
        found = _triangle_match(frm, ref, n, nb)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
        if best is not None and best[0] >= need:
            return best[1], best[2]
    found = "none" if best is None else f"{best[0]} (need {need})"
    raise RegistrationError(f"no consistent star pattern match: stars agreeing {found}")


def solve(
    ref_xy: np.ndarray,
    frame_xy: np.ndarray,
    model: str = "similarity",
    distortion: bool = False,
    control_points: int = 40,
    max_stars: int = 300,
    min_matches: int = 6,
    smoothing: float | None = None,
    max_rms: float = 1.0,
) -> Transform:
    """Find the transform taking a frame's stars onto the reference's.

    Parameters
    ----------
    ref_xy, frame_xy : (N, 2) star positions (x, y), brightest first.
    model : "similarity", "affine", "homography" or "tps".
    distortion : add a thin-plate-spline correction (same as ``model="tps"``).
    control_points : brightest stars used for the triangle match.
    max_stars : brightest stars used in the least-squares refinement.
    min_matches : fewer matched stars than this is a failure.
    smoothing : TPS smoothing in normalised coordinates (default ``DEFAULT_TPS_SMOOTHING``).
    max_rms : a fit whose residual RMS (pixels) exceeds this is a failed match.

    Raises
    ------
    RegistrationError when the frame cannot be matched.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    ref = np.asarray(ref_xy, np.float64).reshape(-1, 2)[:max_stars]
    frm = np.asarray(frame_xy, np.float64).reshape(-1, 2)[:max_stars]
    if len(ref) < 4 or len(frm) < 4:
        raise RegistrationError(
            f"too few stars to match: {len(frm)} in the frame, {len(ref)} in the reference"
        )
    m, mirrored = _initial(frm, ref, control_points, min_matches)
    base = "affine" if model == "tps" else model
    radius = 4.0
    fi = rj = np.empty(0, int)
    for radius in (4.0, 2.0, 1.5, 1.0):
        fi, rj = _pairs(m, frm, ref, radius)
        if len(fi) < min_matches:
            break
        m = _fit(base, frm[fi], ref[rj])
    if len(fi) < min_matches:
        raise RegistrationError(f"only {len(fi)} stars matched (need {min_matches})")
    # final clip at 3 sigma of the residuals (at least 0.3 px)
    res = np.hypot(*(_apply_matrix(m, frm[fi]) - ref[rj]).T)
    keep = res <= max(3.0 * np.sqrt(np.mean(res**2)), 0.3)
    fi, rj = fi[keep], rj[keep]
    if len(fi) < min_matches:
        raise RegistrationError(f"only {len(fi)} stars matched (need {min_matches})")
    m = _fit(base, frm[fi], ref[rj])
    tr = Transform(model, m, mirrored=mirrored)
    if model == "tps" or distortion:
        tr.model = "tps"
        sm = float(smoothing) if smoothing is not None else DEFAULT_TPS_SMOOTHING
        for _ in range(3):
            tr.fwd_spline = _Spline(frm[fi], ref[rj] - _apply_matrix(m, frm[fi]), sm)
            # widen the net now that distortion is modelled, then refit
            fi2, rj2 = _pairs(m, frm, ref, 1.0, tr.fwd_spline)
            if len(fi2) < len(fi) or len(fi2) < min_matches:
                break
            fi, rj = fi2, rj2
        tr.fwd_spline = _Spline(frm[fi], ref[rj] - _apply_matrix(m, frm[fi]), sm)
        im = np.linalg.inv(m)
        tr.inv_spline = _Spline(ref[rj], frm[fi] - _apply_matrix(im, ref[rj]), sm)
    tr.matched = int(len(fi))
    tr.rms = float(np.sqrt(np.mean(np.sum((tr.forward(frm[fi]) - ref[rj]) ** 2, axis=1))))
    if tr.rms > max_rms:
        raise RegistrationError(
            f"star match too loose: {tr.matched} stars with {tr.rms:.2f} px RMS (> {max_rms} px)"
        )
    tr.mirrored = bool(np.linalg.det(m[:2, :2]) < 0)
    return tr


def apply(
    data: np.ndarray,
    transform: Transform,
    out_shape: tuple[int, int] | None = None,
    interpolation: str = "lanczos3",
    clamp: float | None = 0.3,
    fill: float = 0.0,
) -> np.ndarray:
    """Resample a frame onto the reference grid (``out_shape``, default the frame's).

    ``interpolation``: "lanczos3" (clamped, default), "bicubic" (cubic spline) or "bilinear".
    """
    from .interpolation import warp

    arr = np.asarray(data, np.float32)
    if arr.ndim not in (2, 3):
        raise ValueError(f"frame must be (H, W) or (3, H, W); got shape {arr.shape}")
    shape = tuple(out_shape) if out_shape is not None else arr.shape[-2:]
    if interpolation == "lanczos3":
        if transform.fwd_spline is None:
            return warp(
                arr, matrix=transform.inverse_matrix, out_shape=shape, clamp=clamp, fill=fill
            )
        return warp(arr, coords=transform.source_coords(shape), clamp=clamp, fill=fill)
    orders = {"bicubic": 3, "bilinear": 1, "nearest": 0}
    if interpolation not in orders:
        raise ValueError(
            f"interpolation must be lanczos3, bicubic, bilinear or nearest; got {interpolation!r}"
        )
    from scipy.ndimage import map_coordinates

    xs, ys = transform.source_coords(shape)
    chans = arr[None] if arr.ndim == 2 else arr
    out = np.stack(
        [
            map_coordinates(c, [ys, xs], order=orders[interpolation], mode="constant", cval=fill)
            for c in chans
        ]
    ).astype(np.float32)
    return out[0] if arr.ndim == 2 else out
