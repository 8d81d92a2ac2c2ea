"""Starlet transform, MLT sharpening and MLT noise reduction."""

import numpy as np
import pytest

from pxlang.process import color, wavelets


def _nebula(seed=0, n=96):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    img = 0.1 + 0.3 * np.exp(-(((xx - 40) ** 2) / 500 + ((yy - 50) ** 2) / 300))
    for _ in range(8):
        x, y = rng.uniform(5, n - 5, 2)
        img += rng.uniform(0.2, 0.5) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.3**2))
    return rng, img.astype(np.float32)


def test_starlet_reconstructs_exactly_and_layers_have_zero_mean():
    _, img = _nebula()
    ws = wavelets.starlet(img, 5)
    assert len(ws) == 6
    assert np.abs(sum(ws) - img).max() < 1e-5
    # the B3 kernel preserves the mean (mirror boundaries): every detail layer averages ~0
    for w in ws[:-1]:
        assert abs(float(w.mean())) < 1e-3


def test_noise_factors_and_sigma_estimate():
    assert wavelets.noise_factor(0) == pytest.approx(0.8907, abs=2e-3)
    assert wavelets.noise_factor(1) == pytest.approx(0.2007, abs=2e-3)
    assert wavelets.noise_factor(2) == pytest.approx(0.0856, abs=2e-3)
    rng, img = _nebula(1)
    noisy = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    assert wavelets.noise_sigma(noisy) == pytest.approx(0.01, rel=0.08)


def test_mlt_bias_zero_is_identity():
    _, img = _nebula(2)
    assert np.array_equal(wavelets.mlt_sharpen(img, bias=[0, 0, 0, 0]), img)
    rgb = np.stack([img, img * 0.8, img * 0.6])
    assert np.abs(wavelets.mlt_sharpen(rgb, bias=0.0, target="L") - rgb).max() < 1e-5
    assert (
        np.abs(wavelets.mlt_sharpen(rgb, bias=0.0, target="RGBK", deringing=False) - rgb).max()
        < 1e-6
    )


def test_mlt_sharpens_and_dark_deringing_limits_darkening():
    _, img = _nebula(3)
    out = wavelets.mlt_sharpen(img, bias=[0, 0.5, 0.5, 0.5], deringing=False)
    # contrast of small-scale structure goes up: first starlet layers carry more energy
    assert np.std(wavelets.starlet(out, 3)[1]) > 1.3 * np.std(wavelets.starlet(img, 3)[1])
    assert (out - img).min() < -0.01  # undamped: dark halos around the stars
    der = wavelets.mlt_sharpen(img, bias=[0, 0.5, 0.5, 0.5], deringing=True, dark=0.005)
    assert (der - img).min() >= -0.005 - 1e-6
    assert (der - img).max() == pytest.approx((out - img).max(), abs=1e-6)
    # on colour images the default target is CIE L*: hue is kept
    rgb = np.stack([img, img * 0.7, img * 0.5])
    s = wavelets.mlt_sharpen(rgb)
    h0, h1 = color.rgb_to_lch(rgb)[2], color.rgb_to_lch(s)[2]
    assert np.median(np.abs(h1 - h0)) < 0.01


def test_mlt_denoise_improves_psnr():
    rng, img = _nebula(4)
    noisy = img + rng.normal(0, 0.02, img.shape).astype(np.float32)
    out = wavelets.mlt_denoise(noisy)
    mse0 = np.mean((noisy - img) ** 2)
    mse1 = np.mean((out - img) ** 2)
    assert 10 * np.log10(mse0 / mse1) > 3.0
    assert np.abs(wavelets.mlt_denoise(noisy, amounts=0.0) - noisy).max() < 1e-5


def test_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        wavelets.starlet(np.zeros((3, 8, 8)), 2)
    with pytest.raises(ValueError, match="only 4 layers"):
        wavelets.mlt_sharpen(np.zeros((8, 8)), layers=4, bias=[0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="target"):
        wavelets.mlt_sharpen(np.zeros((3, 8, 8)), target="Q")
