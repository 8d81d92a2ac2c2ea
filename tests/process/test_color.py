"""Colour spaces (PixInsight's RGB working space), LRGB, SCNR, saturation, and the background
processes of the colour chapter (gradient removal, neutralisation, calibration)."""

import numpy as np
import pytest

from pxlang.process import background, color


def test_lab_round_trip_exact():
    rng = np.random.default_rng(0)
    rgb = rng.random((3, 64, 64)).astype(np.float32)
    rgb[:, 0, :10] = rng.random((3, 10)) * 0.003  # the linear branch of sRGB and of f(t)
    back = color.lab_to_rgb(color.rgb_to_lab(rgb))
    assert np.abs(back - rgb).max() < 1e-5
    assert np.abs(color.xyz_to_rgb(color.rgb_to_xyz(rgb)) - rgb).max() < 1e-5
    assert np.abs(color.lch_to_rgb(color.rgb_to_lch(rgb)) - rgb).max() < 1e-5
    assert np.abs(color.hsv_to_rgb(color.rgb_to_hsv(rgb)) - rgb).max() < 1e-6


def test_known_cie_values_d50():
    # sRGB mid grey 0.5 -> L* 53.39; white -> L* 100, a* = b* = 0; sRGB red in D50 (Bradford)
    # -> L* 54.29, a* 80.80, b* 69.89 (Lindbloom's tables). a*, b* normalised by the PCL rule.
    cs = color.color_system()
    grey = color.rgb_to_lab(np.array([0.5, 0.5, 0.5]))
    assert grey[0] == pytest.approx(0.5339, abs=2e-4)
    white = color.rgb_to_lab(np.array([1.0, 1.0, 1.0]))
    assert white[0] == pytest.approx(1.0, abs=1e-6)
    neutral = cs.ab_offset / cs.ab_delta
    assert white[1] == pytest.approx(neutral, abs=1e-5) and grey[2] == pytest.approx(
        neutral, abs=1e-5
    )
    red = color.rgb_to_lab(np.array([1.0, 0.0, 0.0]))
    a = red[1] * cs.ab_delta - cs.ab_offset
    b = red[2] * cs.ab_delta - cs.ab_offset
    assert (red[0] * 100, a * 100, b * 100) == pytest.approx((54.29, 80.80, 69.89), abs=0.2)
    # normalised components stay in [0, 1] over the whole cube
    g = np.linspace(0, 1, 11)
    cube = np.stack(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1)
    for arr in (color.rgb_to_lab(cube), color.rgb_to_lch(cube), color.rgb_to_xyz(cube)):
        assert arr.min() >= -1e-6 and arr.max() <= 1 + 1e-6


def test_luminance_weights_sum_to_one():
    for w in ("D50", "equal", (2, 1, 1), [0.3, 0.59, 0.11]):
        assert sum(color.parse_weights(w)) == pytest.approx(1.0)
    assert color.parse_weights("D50") == pytest.approx((0.222491, 0.716888, 0.060621))
    rgb = np.array([0.2, 0.4, 0.6])[:, None]
    assert color.luminance(rgb, "equal")[0] == pytest.approx(0.4)
    assert color.luminance(rgb)[0] == pytest.approx(
        0.222491 * 0.2 + 0.716888 * 0.4 + 0.060621 * 0.6, abs=1e-6
    )
    # CIE L* with equal weights (the guide's RGBWorkingSpace step) differs from D50's
    assert color.lightness(rgb, "equal")[0] != pytest.approx(color.lightness(rgb)[0], abs=1e-3)
    with pytest.raises(ValueError, match="three numbers"):
        color.parse_weights((1, 2))


def test_hsv_hsi_hand_values():
    h, s, v = color.rgb_to_hsv(np.array([1.0, 0.5, 0.0]))
    assert (h, s, v) == pytest.approx((0.5 / 6, 1.0, 1.0))
    h, s, i = color.rgb_to_hsi(np.array([0.2, 0.4, 0.6]))
    assert (h, s, i) == pytest.approx(((4 - 0.5) / 6, 0.5, 0.4))
    assert color.rgb_to_hsv(np.array([0.3, 0.3, 0.3]))[:2] == pytest.approx((0.0, 0.0))


def test_extract_and_mono_error():
    rng = np.random.default_rng(1)
    rgb = rng.random((3, 8, 8)).astype(np.float32)
    assert np.array_equal(color.extract_channel(rgb, "G"), rgb[1])
    assert np.allclose(color.extract_channel(rgb, "L"), color.lightness(rgb), atol=1e-6)
    with pytest.raises(ValueError, match="colour image"):
        color.rgb_to_lab(rgb[0])
    with pytest.raises(ValueError, match="unknown channel"):
        color.extract_channel(rgb, "Q")


def test_lrgb_with_own_lightness_is_identity_and_replaces_lightness():
    rng = np.random.default_rng(2)
    rgb = rng.uniform(0.05, 0.95, (3, 16, 16)).astype(np.float32)
    L = color.lightness(rgb)
    assert np.abs(color.lrgb_combine(L, rgb) - rgb).max() < 1e-4
    # in-gamut colours (greys plus a little colour): L* is replaced exactly; colours pushed out
    # of gamut are clipped, as in PixInsight
    soft = (0.5 + 0.3 * (rgb - 0.5)).astype(np.float32)
    newL = color.lightness(soft) * 0.8
    out = color.lrgb_combine(newL, soft)
    assert np.abs(color.lightness(out) - newL).max() < 2e-3


def test_saturation_and_scnr():
    rng = np.random.default_rng(4)
    rgb = rng.uniform(0.2, 0.8, (3, 16, 16)).astype(np.float32)
    assert np.array_equal(color.saturate(rgb, 0.0), rgb)
    grey = color.saturate(rgb, -1.0)
    assert np.abs(grey - grey.mean(axis=0)).max() < 2e-3
    soft = (0.5 + 0.3 * (rgb - 0.5)).astype(np.float32)  # in gamut after +30 % chroma
    more = color.saturate(soft, 0.3)
    assert color.rgb_to_lch(more)[1] == pytest.approx(1.3 * color.rgb_to_lch(soft)[1], rel=1e-3)
    assert np.abs(color.lightness(more) - color.lightness(soft)).max() < 2e-3
    px = np.array([0.2, 0.6, 0.4], dtype=np.float32)[:, None, None]
    out = color.scnr(px, 1.0, preserve_lightness=False)
    assert out[:, 0, 0] == pytest.approx([0.2, 0.3, 0.4])  # G' = min(G, (R+B)/2)
    out = color.scnr(px, 0.5, "maximum_neutral", preserve_lightness=False)
    assert out[1, 0, 0] == pytest.approx(0.5 * 0.6 + 0.5 * 0.4)
    kept = color.scnr(px, 1.0)
    assert color.lightness(kept)[0, 0] == pytest.approx(color.lightness(px)[0, 0], abs=1e-3)


def _sky(seed=5, n=128):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / n
    return rng, yy, xx


def test_background_gradient_removed():
    rng, yy, xx = _sky()
    gradient = 0.02 + 0.05 * xx + 0.03 * yy**2 - 0.02 * xx * yy
    img = 0.1 + gradient + rng.normal(0, 0.002, xx.shape)
    # a bright "galaxy" the sampler must ignore
    img += 0.3 * np.exp(-(((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / (2 * 0.05**2)))
    out = background.subtract_background(img.astype(np.float32), degree=2, samples=12)
    sky = ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) > 0.2**2
    resid = out[sky]
    assert resid.std() < 0.003  # the gradient (peak-to-peak 0.07) is gone to the noise level
    assert np.median(resid) == pytest.approx(np.median(img[sky]), abs=0.02)
    model = background.background_model(img.astype(np.float32), degree=2, samples=12)
    assert np.abs(model - (0.1 + gradient)).max() < 0.004
    # DBE: thin-plate spline through chosen points
    pts = [
        [x, y]
        for x in range(8, 128, 24)
        for y in range(8, 128, 24)
        if abs(x - 64) + abs(y - 64) > 40
    ]
    dbe = background.background_model(img.astype(np.float32), points=pts)
    assert np.abs(dbe - (0.1 + gradient))[sky].max() < 0.01
    with pytest.raises(ValueError, match="lower degree"):
        background.background_model(img, degree=6, samples=3)


def test_neutralize_and_calibrate():
    rng = np.random.default_rng(6)
    base = rng.uniform(0, 0.02, (64, 64)).astype(np.float32)
    rgb = np.stack([base + 0.05, base + 0.08, base + 0.03])
    out = background.neutralize_background(rgb)
    med = [np.median(c) for c in out]
    assert max(med) - min(med) < 1e-6 and np.mean(med) == pytest.approx(
        np.mean([np.median(c) for c in rgb])
    )
    # a star field whose "white" stars are 1.0 : 1.5 : 0.8 in R : G : B over a neutral background
    img = np.full((3, 64, 64), 0.05, dtype=np.float32)
    star = np.zeros((64, 64), dtype=np.float32)
    star[20:24, 20:24] = 0.3
    star[40:44, 30:34] = 0.2
    img += star[None] * np.array([1.0, 1.5, 0.8], dtype=np.float32)[:, None, None]
    white_mask = (star > 0).astype(np.float32)
    cal = background.color_calibrate(img, white_mask=white_mask)
    stars = cal[:, star > 0] - 0.05
    ratios = stars.mean(axis=1)
    assert ratios / ratios.mean() == pytest.approx([1, 1, 1], abs=1e-4)
    assert cal.max() <= img.max() + 1e-6
    with pytest.raises(ValueError, match="colour"):
        background.neutralize_background(base)
