"""Cosmetic correction: every injected hot pixel found, stars left alone."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io.fits import Header

from pxlang.image.frameset import FrameSet
from pxlang.image.store import Image
from pxlang.process.cosmetic import cosmetic, detect_defects, fix_defects


def star_field(h=160, w=160, n_stars=60, seed=0, shift=(0.0, 0.0)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), 0.1)
    stars = np.random.default_rng(99)  # the same sky in every frame
    ys, xs = stars.uniform(5, h - 5, n_stars), stars.uniform(5, w - 5, n_stars)
    flux = stars.uniform(0.05, 0.9, n_stars)
    fwhm = 2.2  # well sampled stars
    s = fwhm / 2.355
    for y, x, f in zip(ys + shift[0], xs + shift[1], flux):
        img += f * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s))
    img += rng.normal(0, 0.003, (h, w))
    return img.astype(np.float32)


def inject(img_list, n_hot=25, n_cold=10, seed=5, allowed=None):
    rng = np.random.default_rng(seed)
    h, w = img_list[0].shape
    pool = np.flatnonzero(np.ones((h, w), bool) if allowed is None else allowed)
    idx = rng.choice(pool, n_hot + n_cold, replace=False)
    hot, cold = idx[:n_hot], idx[n_hot:]
    amp = rng.uniform(0.05, 0.5, n_hot)
    for img in img_list:
        img.flat[hot] += amp
        img.flat[cold] = 0.0
    return set(hot.tolist()), set(cold.tolist())


def test_finds_every_hot_pixel_and_few_stars():
    frames = [star_field(seed=i, shift=(1.3 * i, -0.7 * i)) for i in range(8)]
    hot, cold = inject(frames)
    fs = FrameSet.from_arrays(frames, headers=[Header() for _ in frames])
    out = cosmetic(fs, cold=True)
    found = set(np.flatnonzero(out.defects).tolist())
    assert hot <= found and cold <= found
    assert len(found - hot - cold) <= 3
    fixed = out.read(0)
    assert fixed.header["COSMHOT"] >= 25
    for p in hot:
        y, x = divmod(p, 160)
        assert abs(fixed.data[y, x] - np.median(frames[0][y - 1 : y + 2, x - 1 : x + 2])) < 0.05


def test_single_frame_star_field_has_few_false_positives():
    img = star_field(seed=3)
    # in one frame a hot pixel on a star's wing is not isolated (its neighbour is brighter):
    # put them on the background; with several dithered frames they may go anywhere (above)
    from scipy.ndimage import maximum_filter

    background = maximum_filter(img, 5) < 0.12
    hot, _ = inject([img], n_cold=0, allowed=background)
    hot_mask, _ = detect_defects(img)
    found = set(np.flatnonzero(hot_mask).tolist())
    assert hot <= found and len(found - hot) <= 5


def test_master_dark_and_cfa():
    rng = np.random.default_rng(4)
    dark = rng.normal(0.01, 0.0005, (64, 64)).astype(np.float32)
    dark[10, 11] = dark[30, 40] = 0.2
    light = np.full((64, 64), 0.3, np.float32)
    light[0::2, 0::2] = 0.5  # an R plane brighter than G: CFA neighbours must be used
    light[10, 11] = 0.9  # a G site
    light[30, 40] = 0.9  # an R site
    h = Header()
    h["BAYERPAT"] = "RGGB"
    fs = FrameSet.from_arrays([light], headers=[h])
    out = cosmetic(fs, master_dark=Image(dark, Header()))
    fixed = out.read(0).data
    assert fixed[10, 11] == pytest.approx(0.3) and fixed[30, 40] == pytest.approx(0.5)
    assert out.defects.sum() == 2
    np.testing.assert_array_equal(fixed[out.defects == 0], light[out.defects == 0])


def test_fix_and_bad_arguments():
    img = np.arange(25, dtype=np.float32).reshape(5, 5)
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    assert fix_defects(img, mask)[2, 2] == pytest.approx(12.0)
    assert img[2, 2] == 12.0  # input untouched
    fs = FrameSet.from_arrays([img], headers=[Header()])
    with pytest.raises(ValueError, match="nothing to correct"):
        cosmetic(fs, hot=False)
    with pytest.raises(ValueError, match="does not match"):
        fix_defects(img, np.zeros((3, 3), bool))


def test_defect_map_of_a_master_dark_is_found_once(tmp_path, monkeypatch):
    import pxlang.process.cosmetic as cc

    rng = np.random.default_rng(5)
    dark = rng.normal(0.01, 0.0005, (48, 48)).astype(np.float32)
    dark[5, 7] = dark[20, 30] = 0.2
    fs = FrameSet.from_arrays([np.full((48, 48), 0.3, np.float32)])
    first = cosmetic(fs, master_dark=Image(dark, Header()), cache_dir=str(tmp_path))
    calls = []
    monkeypatch.setattr(cc, "detect_defects", lambda *a, **k: calls.append(1))
    again = cosmetic(fs, master_dark=Image(dark, Header()), cache_dir=str(tmp_path))
    assert calls == []  # loaded from the cache
    np.testing.assert_array_equal(again.defects, first.defects)
    assert again.defects.sum() == 2
    other = dark.copy()
    other[40, 40] = 0.2  # another dark: found afresh
    monkeypatch.undo()
    third = cosmetic(fs, master_dark=Image(other, Header()), cache_dir=str(tmp_path))
    assert third.defects.sum() == 3


@pytest.mark.parametrize("step", [1, 2])
def test_neighbour_stats_are_numpys_median_max_min_of_the_eight_neighbours(step):
    from pxlang.process.cosmetic import neighbours
    from pxlang.process.pixel_kernels import neighbour_stats

    rng = np.random.default_rng(step)
    # 0/1 pixels: every one of the 256 neighbourhoods occurs, so the sorting network is
    # checked on all 0/1 inputs (which proves it sorts any 8 values); then noise, ties, NaN
    bits = (rng.random((300, 300)) < 0.5).astype(np.float32)
    nb = neighbours(bits, step)
    codes = (nb.astype(np.int64) * (1 << np.arange(8))[:, None, None]).sum(axis=0)
    assert np.unique(codes).size == 256
    noise = rng.normal(0, 1, (61, 47)).astype(np.float32)
    noise[::7, ::5] = 0.25  # ties
    noise[13, 20] = np.nan
    for img in (bits, noise):
        nb = neighbours(img, step)
        med, top, bottom = neighbour_stats(img, step)
        np.testing.assert_array_equal(med, np.median(nb, axis=0))
        np.testing.assert_array_equal(top, nb.max(axis=0))
        np.testing.assert_array_equal(bottom, nb.min(axis=0))
    assert np.isnan(med[13 + step, 20]) and not np.isnan(med[30, 30])


@pytest.mark.parametrize("cfa", [False, True])
def test_defect_masks_by_the_kernels_are_numpys(cfa):
    # the kernels (deviation plane, then the masks pixel by pixel) against the same rule
    # written with numpy over the (8, H, W) neighbour stack: the same pixels, NaN and inf
    # included
    from pxlang.process.cosmetic import MAD_TO_SIGMA, neighbours

    rng = np.random.default_rng(7)
    x = rng.normal(0.01, 0.001, (90, 77)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] += 0.03
    x[rng.random(x.shape) < 0.01] -= 0.03
    x[30, 40] = np.nan
    x[50, 20] = np.inf
    step = 2 if cfa else 1
    nb = neighbours(x, step)
    med, top, bottom = np.median(nb, axis=0), nb.max(axis=0), nb.min(axis=0)
    d = x - med
    finite = np.isfinite(d)
    spread = np.median(np.abs(d[finite] - np.median(d[finite]))) * MAD_TO_SIGMA
    want_hot = (d > 5 * spread) & (x > top) & (d > 3 * (top - med)) & finite
    want_cold = (-d > 5 * spread) & (x < bottom) & (-d > 3 * (med - bottom)) & finite
    hot, cold = detect_defects(x, sigma=5, hot=True, cold=True, cfa=cfa, ratio=3)
    assert want_hot.sum() > 10 and want_cold.sum() > 10
    np.testing.assert_array_equal(hot, want_hot)
    np.testing.assert_array_equal(cold, want_cold)
