"""Star alignment and Lanczos-3 resampling against synthetic truth."""

import pickle

import numpy as np
import pytest

from pxlang.process import registration as rg
from pxlang.process.interpolation import lanczos3_reference, warp
from pxlang.process.registration import (
    RegistrationError,
    Transform,
    _translation_match,
    apply,
    solve,
)
from pxlang.process.stars import find_stars, render_stars

S = 384  # frame size
C = S / 2 - 0.5


class Sky:
    """A star catalogue larger than the frames; frames are views through known transforms."""

    def __init__(self, seed, n=2200):
        self.rng = np.random.default_rng(seed)
        self.xy = self.rng.uniform(-450, S + 450, (n, 2))
        self.flux = 10 ** self.rng.uniform(-0.3, 0.7, n)

    def frame(self, m, drop=0.0, distort=None):
        p = np.c_[self.xy, np.ones(len(self.xy))] @ m.T
        x, y = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
        if distort is not None:
            x, y = distort(x, y)
        keep = (
            (self.rng.random(len(x)) >= drop) & (x > -12) & (x < S + 12) & (y > -12) & (y < S + 12)
        )
        img = render_stars((S, S), x[keep], y[keep], self.flux[keep], 3.0, oversample=3)
        img += 0.1 + self.rng.normal(0, 0.003, img.shape).astype(np.float32)
        return img.astype(np.float32), np.c_[x, y], keep


def about_centre(theta, scale=1.0, dx=0.0, dy=0.0, mirror=False, centre=C):
    """Rotation (radians), scale and mirror about ``centre`` (both axes), then a shift."""
    c, s = np.cos(theta) * scale, np.sin(theta) * scale
    r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    if mirror:
        r = r @ np.diag([-1.0, 1.0, 1.0])
    t = np.array([[1, 0, centre + dx], [0, 1, centre + dy], [0, 0, 1.0]])
    ti = np.array([[1, 0, -centre], [0, 1, -centre], [0, 0, 1.0]])
    return t @ r @ ti


def star_rms(tr, frame_xy, ref_xy):
    """RMS error of the recovered transform at the true positions of stars in both frames."""
    inside = np.all((ref_xy > 0) & (ref_xy < S - 1), axis=1) & np.all(
        (frame_xy > 0) & (frame_xy < S - 1), axis=1
    )
    err = tr.forward(frame_xy[inside]) - ref_xy[inside]
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1)))), int(inside.sum())


@pytest.fixture(scope="module")
def sky():
    s = Sky(11)
    ref_img, ref_xy, _ = s.frame(np.eye(3))
    return s, find_stars(ref_img), ref_xy


CASES = {
    "meridian flip + 200 px": dict(theta=np.pi, dx=200, dy=-200),
    "rotation -180° + shift": dict(theta=-np.pi + 0.02, dx=-180, dy=150),
    "30° + 10 % scale": dict(theta=np.radians(30), scale=1.1, dx=-150, dy=120),
    "mirror + 115° + 0.9 scale": dict(theta=np.radians(115), scale=0.9, dx=60, dy=-80, mirror=True),
    # a night's dithers: found by the shift vote before the triangles
    "dither": dict(theta=0.0, dx=7.3, dy=-4.6),
    "dither + 1° field rotation": dict(theta=np.radians(1.0), dx=-12.2, dy=5.5),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("model", ["similarity", "affine"])
def test_known_transforms_recovered(sky, case, model):
    s, ref_tab, ref_xy = sky
    m = about_centre(**CASES[case])
    img, frame_xy, _ = s.frame(m, drop=0.3)  # 30 % of the stars missing
    tab = find_stars(img)
    tr = solve(ref_tab.xy(), tab.xy(), model=model)
    rms, n = star_rms(tr, frame_xy, ref_xy)
    assert n > 20
    assert rms <= 0.05, (case, model, rms, tr.matched)
    assert tr.mirrored == CASES[case].get("mirror", False)


def test_homography_recovers_a_perspective(sky):
    s, ref_tab, ref_xy = sky
    m = about_centre(np.radians(-40), dx=30, dy=25)
    m = m @ np.array([[1, 0, 0], [0, 1, 0], [2e-5, -1.5e-5, 1.0]])
    img, frame_xy, _ = s.frame(m, drop=0.3)
    tr = solve(ref_tab.xy(), find_stars(img).xy(), model="homography")
    assert star_rms(tr, frame_xy, ref_xy)[0] <= 0.05
    assert (
        star_rms(solve(ref_tab.xy(), find_stars(img).xy(), model="similarity"), frame_xy, ref_xy)[0]
        > 0.3
    )


def test_barrel_distortion_corrected_by_tps(sky):
    s, ref_tab, ref_xy = sky
    k = 2.0e-7  # about 8 px at the corners

    def barrel(x, y):
        dx, dy = x - C, y - C
        f = 1 + k * (dx * dx + dy * dy)
        return C + dx * f, C + dy * f

    img, frame_xy, keep = s.frame(about_centre(0.2, dx=15, dy=-10), drop=0.1, distort=barrel)
    tab = find_stars(img)
    # score on the stars actually present and detected in both images
    from scipy.spatial import cKDTree

    d, i = cKDTree(frame_xy[keep]).query(tab.xy())
    idx = np.nonzero(keep)[0][i[d < 0.5]]
    affine = solve(ref_tab.xy(), tab.xy(), model="affine")
    tps = solve(ref_tab.xy(), tab.xy(), model="tps")
    rms_aff, _ = star_rms(affine, frame_xy[idx], ref_xy[idx])
    rms_tps, n = star_rms(tps, frame_xy[idx], ref_xy[idx])
    assert n > 100
    assert rms_aff > 0.3  # the distortion is real
    assert rms_tps <= 0.1, rms_tps
    # distortion=True is the same correction on top of the chosen model
    again = solve(ref_tab.xy(), tab.xy(), model="affine", distortion=True)
    assert again.model == "tps" and star_rms(again, frame_xy[idx], ref_xy[idx])[0] <= 0.1
    # inverse direction (used for resampling) is as good
    inside = np.all((ref_xy[idx] > 0) & (ref_xy[idx] < S - 1), axis=1)
    inv = tps.inverse(ref_xy[idx][inside]) - frame_xy[idx][inside]
    assert np.sqrt(np.mean(np.sum(inv**2, axis=1))) <= 0.1
    # pickles small and evaluates the same after a round trip (frames carry it in meta)
    back = pickle.loads(pickle.dumps(tps))
    assert np.allclose(back.forward(frame_xy[idx][:5]), tps.forward(frame_xy[idx][:5]))
    # and through plain arrays (the per-frame results cache: no pickles)
    again = Transform.from_arrays(tps.to_arrays())
    assert np.allclose(again.forward(frame_xy[idx][:5]), tps.forward(frame_xy[idx][:5]))
    assert np.allclose(again.inverse(ref_xy[idx][:5]), tps.inverse(ref_xy[idx][:5]))
    assert (again.model, again.matched, again.rms) == (tps.model, tps.matched, tps.rms)
    xs, ys = tps.source_coords((S, S))
    probe = np.array([[100.0, 50.0], [300.0, 333.0]])
    exact = tps.inverse(probe)
    assert np.allclose([xs[50, 100], xs[333, 300]], exact[:, 0], atol=0.01)
    assert np.allclose([ys[50, 100], ys[333, 300]], exact[:, 1], atol=0.01)


def test_registered_frame_matches_reference(sky):
    s, ref_tab, _ = sky
    ref_img, _, _ = s.frame(np.eye(3))
    img, _, _ = s.frame(about_centre(0.3, dx=12.3, dy=-7.6))
    tr = solve(ref_tab.xy(), find_stars(img).xy())
    out = apply(img, tr)
    valid = out != 0
    diff = (out - ref_img)[valid]
    assert valid.mean() > 0.8
    assert np.std(diff) < 0.003 * np.sqrt(2) * 1.5  # noise of two frames, no misalignment left


def test_unmatched_and_starless_frames_raise(sky):
    s, ref_tab, _ = sky
    other = Sky(99)
    img, _, _ = other.frame(np.eye(3))
    with pytest.raises(RegistrationError):
        solve(ref_tab.xy(), find_stars(img).xy())
    with pytest.raises(RegistrationError, match="too few stars"):
        solve(ref_tab.xy(), np.array([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(ValueError, match="model"):
        solve(ref_tab.xy(), ref_tab.xy(), model="projective")


def test_lanczos_matches_reference_implementation():
    rng = np.random.default_rng(0)
    d = rng.random((48, 48)).astype(np.float32)
    m = np.array([[0.9, -0.3, 8.2], [0.25, 0.95, -3.7], [0, 0, 1.0]])
    out = warp(d, matrix=m, clamp=None)
    for r, c in [(10, 12), (20, 30), (35, 20), (5, 40)]:
        x, y = m[0, 0] * c + m[0, 1] * r + m[0, 2], m[1, 0] * c + m[1, 1] * r + m[1, 2]
        if 0 <= x <= 47 and 0 <= y <= 47:
            assert abs(out[r, c] - lanczos3_reference(d, x, y)) < 1e-5
    # identity is exact; colour images go channel by channel
    assert np.allclose(warp(d, matrix=np.eye(3)), d, atol=1e-6)
    col = np.stack([d, 2 * d, 3 * d])
    assert np.allclose(warp(col, matrix=m, clamp=None)[2], 3 * out, atol=1e-5)


@pytest.mark.parametrize("separable", [False, True])
def test_clamping_removes_ringing(separable):
    # a compact star (FWHM 1.5 px) on a flat sky, moved by half a pixel: Lanczos rings
    img = render_stars((32, 32), [16.0], [16.0], [3.0], 1.5) + np.float32(0.1)
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    raw = warp(img, matrix=shift, clamp=None, separable=separable)
    default = warp(img, matrix=shift, separable=separable)  # clamp 0.3, PixInsight's default
    strict = warp(img, matrix=shift, clamp=0.0, separable=separable)
    under = [0.1 - a.min() for a in (raw, default, strict)]
    assert under[0] > 0.005  # dark ring without clamping
    assert under[1] < 0.5 * under[0]
    assert under[2] < 1e-4  # no dark ring at all
    for a in (raw, default, strict):
        assert abs(a.sum() - img.sum()) / img.sum() < 0.01  # flux kept
        assert a.max() > 0.6  # the star stays sharp


def _starfield(shape=(96, 112), seed=3):
    rng = np.random.default_rng(seed)
    n = 40
    ys, xs = rng.uniform(4, shape[0] - 4, n), rng.uniform(4, shape[1] - 4, n)
    img = render_stars(shape, xs, ys, 10 ** rng.uniform(-1, 1.5, n), 1.6)
    return (img + rng.normal(0.2, 0.01, shape)).astype(np.float32)


@pytest.mark.parametrize("clamp", [None, 0.3, 0.0])
def test_separable_equals_2d_kernel_on_translations(clamp):
    # for a translation the two 1-D passes hold the very sums of the 36 products, so the
    # clamping decisions and the results are the 2-D kernel's (float32 rounding aside)
    img = _starfield()
    img[40:44, 50:53] = -0.05  # negative values: the product signs are not the weights'
    m = np.array([[1, 0, 7.37], [0, 1, -4.81], [0, 0, 1.0]])
    two_d = warp(img, matrix=m, clamp=clamp, separable=False)
    sep = warp(img, matrix=m, clamp=clamp, separable=True)
    assert np.abs(sep - two_d).max() < 2e-5 * np.abs(img).max()
    flip = np.array([[-1, 0, 110.6], [0, -1, 95.3], [0, 0, 1.0]])  # meridian flip
    two_d = warp(img, matrix=flip, clamp=clamp, separable=False)
    assert np.abs(warp(img, matrix=flip, clamp=clamp) - two_d).max() < 2e-5 * img.max()


@pytest.mark.parametrize("deg", [0.5, 3.0, -5.0])
def test_separable_kernel_on_small_rotations(deg):
    # the kernel is sheared by tan θ: values stay within a small fraction of the stars'
    # peaks of the 2-D kernel's, and the sky's differences well inside its noise
    img = _starfield()
    m = about_centre(np.deg2rad(deg), dx=3.3, dy=-2.2, centre=50.0)
    inner = (slice(8, -8), slice(8, -8))
    sep = warp(img, matrix=m, separable=True)[inner]
    two_d = warp(img, matrix=m, separable=False)[inner]
    assert np.abs(sep - two_d).max() < 0.01 * img.max()
    assert np.std(sep - two_d) < 0.2 * 0.01  # well inside the sky noise


def test_kernel_choice(monkeypatch):
    from pxlang.process import interpolation

    img = _starfield()
    small = about_centre(np.deg2rad(2.0), centre=50.0)
    large = about_centre(np.deg2rad(20.0), centre=50.0)
    persp = np.array([[1, 0, 0], [0, 1, 0], [1e-4, 0, 1.0]])
    with pytest.raises(ValueError, match="affine"):
        warp(img, matrix=persp, separable=True)
    calls = []
    real_2d = interpolation._warp_matrix
    monkeypatch.setattr(interpolation, "_warp_matrix", lambda *a: calls.append("2d") or real_2d(*a))
    warp(img, matrix=small)
    assert calls == []  # small rotation: two passes
    for m in (large, persp):
        warp(img, matrix=m)
    assert calls == ["2d", "2d"]
    warp(img, matrix=small, separable=False)
    assert len(calls) == 3


def test_transform_identity_and_pixmap():
    t = Transform.identity()
    pm = t.pixmap((4, 5))
    assert pm.shape == (4, 5, 2)
    assert np.allclose(pm[2, 3], [3, 2])
    with pytest.raises(ValueError, match="exactly one"):
        warp(np.zeros((8, 8), np.float32))


def test_shift_vote_finds_dithers_and_declines_rotations(sky):
    s, ref_tab, _ = sky
    img, _, _ = s.frame(about_centre(0.0, dx=7.3, dy=-4.6), drop=0.3)
    n_in, m, mirrored = _translation_match(find_stars(img).xy(), ref_tab.xy(), 40)
    # frame → reference: the opposite of the dither, within a pixel (refined afterwards)
    assert abs(m[0, 2] + 7.3) < 1.0 and abs(m[1, 2] - 4.6) < 1.0 and not mirrored
    assert n_in > 0.5 * len(ref_tab)
    img, _, _ = s.frame(about_centre(np.radians(30), dx=10), drop=0.3)
    found = _translation_match(find_stars(img).xy(), ref_tab.xy(), 40)
    assert found is None or found[0] < 0.2 * len(ref_tab)


# Star lists without images (fast): ~800 stars over 1024², 0.05 px centroid noise, 10–30 % of
# the stars missing independently in each list, brightest first.
W = 1024
WC = W / 2 - 0.5


def _similarity(deg, **kw):
    """Catalogue → view: about the field centre, then shifted."""
    return about_centre(np.radians(deg), centre=WC, **kw)


def _star_list(rng, cat, flux, m):
    """The catalogue seen through ``m``: noisy positions (brightest first) and true ones."""
    p = rg._apply_matrix(m, cat)
    keep = np.all((p >= 0) & (p < W), axis=1) & (rng.random(len(p)) >= rng.uniform(0.1, 0.3))
    idx = np.nonzero(keep)[0]
    idx = idx[np.argsort(-flux[idx] * (1 + 0.1 * rng.normal(size=len(idx))))]
    return p[idx] + rng.normal(0, 0.05, (len(idx), 2)), p[idx]


def _night_pair(seed, deg, ref_deg=0.0, **kw):
    """(reference list, frame list, true frame positions, true frame → reference matrix)."""
    rng = np.random.default_rng(seed)
    pad = 300  # the catalogue overfills the field so rotated views stay full
    n = int(1000 * (W + 2 * pad) ** 2 / W**2)
    cat = rng.uniform(-pad, W + pad, (n, 2))
    flux = 10 ** rng.uniform(-0.5, 1.0, n)
    m_ref = _similarity(ref_deg)
    m_frm = _similarity(ref_deg + deg, dx=rng.uniform(-10, 10), dy=rng.uniform(-10, 10), **kw)
    ref, _ = _star_list(rng, cat, flux, m_ref)
    frm, frm_true = _star_list(rng, cat, flux, m_frm)
    return ref, frm, frm_true, m_ref @ np.linalg.inv(m_frm)


def _truth_rms(tr, frm_true, truth):
    err = tr.forward(frm_true) - rg._apply_matrix(truth, frm_true)
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


@pytest.mark.parametrize("deg", [0.3, -0.5, 1.0, -2.0, 2.0])
def test_small_rotations_skip_the_triangles(monkeypatch, deg):
    # a night whose reference is itself slightly rotated: the shift vote finds the stars near
    # the centre of rotation, and the refinement from there has to do the rest
    ref, frm, frm_true, truth = _night_pair(int(abs(deg) * 10) + (deg < 0), deg, ref_deg=0.4)
    assert 600 <= min(len(ref), len(frm)) and max(len(ref), len(frm)) <= 950
    shift = _translation_match(frm, ref, 40)
    assert shift is None or shift[0] < 0.5 * len(ref)  # a shift alone won't do

    def no_triangles(*args, **kwargs):
        raise AssertionError("the triangle vote ran")

    monkeypatch.setattr(rg, "_triangle_match", no_triangles)
    for max_stars in (300, 1000):
        tr = solve(ref, frm, max_stars=max_stars)
        assert _truth_rms(tr, frm_true, truth) <= 0.05, (deg, max_stars)
        assert tr.matched > 0.5 * min(len(ref), len(frm), max_stars) and not tr.mirrored


def test_small_rotation_result_is_the_triangles_result(monkeypatch):
    # the final refinement starts from either match and converges on the same pairs
    ref, frm, _, _ = _night_pair(5, 0.5)
    fast = solve(ref, frm, model="affine")
    monkeypatch.setattr(rg, "_small_rotation_match", lambda *args: None)
    slow = solve(ref, frm, model="affine")
    assert np.allclose(fast.matrix, slow.matrix, rtol=0, atol=1e-9)
    assert (fast.matched, fast.rms) == (slow.matched, pytest.approx(slow.rms, abs=1e-12))


@pytest.mark.parametrize(
    "kw",
    [dict(deg=20.0), dict(deg=180.0), dict(deg=35.0, mirror=True), dict(deg=0.0, scale=1.1)],
    ids=["20°", "meridian flip", "mirror", "10 % scale"],
)
def test_large_transforms_still_go_to_the_triangles(monkeypatch, kw):
    ref, frm, frm_true, truth = _night_pair(7, **kw)
    calls = []
    triangles = rg._triangle_match

    def spy(*args, **kwargs):
        calls.append(1)
        return triangles(*args, **kwargs)

    monkeypatch.setattr(rg, "_triangle_match", spy)
    tr = solve(ref, frm)
    assert calls
    assert _truth_rms(tr, frm_true, truth) <= 0.05
    assert tr.mirrored == kw.get("mirror", False)


@pytest.mark.parametrize("separable", [True, False])
def test_warp_keeps_negative_pixels_of_a_calibrated_frame(separable):
    # a sky near zero after calibration: half the pixels negative. The identity warp gives
    # the frame back, a shift keeps its level; before, negatives read as negative lobes:
    # the level rose by ~0.75 sigma and values of 1e14 appeared
    rng = np.random.default_rng(0)
    sky = rng.normal(0.0, 0.01, (128, 128)).astype(np.float32)
    same = warp(sky, np.eye(3), separable=separable)
    assert np.allclose(same, sky, rtol=0, atol=1e-7)
    moved = warp(sky, np.array([[1, 0, 0.3], [0, 1, 0.7], [0, 0, 1.0]]), separable=separable)
    inner = moved[8:-8, 8:-8]
    assert abs(float(inner.mean())) < 0.001  # 0.1 sigma
    assert float(np.abs(inner).max()) < 0.1
    # a positive frame is resampled as before (no pedestal), outside pixels take the fill
    pos = sky + np.float32(0.1)
    out = warp(pos, np.array([[1, 0, 20.5], [0, 1, 0], [0, 0, 1.0]]), fill=np.nan)
    assert np.isnan(out[:, -15:]).all() and np.isfinite(out[:, :100]).all()
    lifted = warp(sky, np.array([[1, 0, 20.5], [0, 1, 0], [0, 0, 1.0]]), fill=-1.0)
    assert (lifted[:, -15:] == -1.0).all()


def _rotation(deg, tx, ty, scale=1.0, flip=None):
    t = np.deg2rad(deg)
    c, s = scale * np.cos(t), scale * np.sin(t)
    m = np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])
    if flip is not None:  # a meridian flip: y falls as the output row rises
        h, w = flip
        m = m @ np.array([[-1.0, 0.0, w - 1.0], [0.0, -1.0, h - 1.0], [0.0, 0.0, 1.0]])
    return m


@pytest.mark.parametrize(
    "m",
    [
        _rotation(0.3, 3.3, -2.7),
        _rotation(-5.0, 10.2, 40.7, 1.02),
        _rotation(0.2, 1.5, 0.5, flip=(150, 170)),
        _rotation(1.0, 60.0, 120.0),  # the lower bands read no source row at all
        _rotation(-1.0, -150.0, 10.0),
    ],
)
def test_the_separable_warp_by_bands_is_the_whole_frame_warp(m, monkeypatch):
    # bands of 16 output rows (rows shared with the band before moved, the rest computed)
    # against one band holding every source row: the same values to the last bit
    from pxlang.process import interpolation as ip

    rng = np.random.default_rng(4)
    data = (0.1 + rng.normal(0, 0.01, (150, 170))).astype(np.float32)
    data[40:44, 60:64] += 3.0  # a star: clamping at work
    monkeypatch.setattr(ip, "_BAND_ROWS", 16)
    banded = ip.warp(data, m, out_shape=(140, 180), separable=True)
    monkeypatch.setattr(ip, "_BAND_ROWS", 10_000)
    whole = ip.warp(data, m, out_shape=(140, 180), separable=True)
    assert np.array_equal(banded, whole)
    assert np.isfinite(banded).all() and (banded != 0).any()
