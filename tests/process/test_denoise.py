"""TGVDenoise against the noiseless truth of a synthetic nebula with stars."""

import numpy as np
import pytest
from scipy import ndimage

from pxlang.process import denoise, psf

SIGMA = 0.02


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(1)
    n = 160
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    truth = 0.05 + 0.15 * np.exp(-((xx - 80) ** 2 / (2 * 35**2) + (yy - 85) ** 2 / (2 * 22**2)))
    truth += 0.6 * ndimage.gaussian_filter(rng.random((n, n)), 8)  # filaments, soft structure
    pos = []
    while len(pos) < 12:
        x, y = rng.uniform(12, n - 12, 2)
        if all((x - a) ** 2 + (y - b) ** 2 > 20**2 for a, b in pos):
            pos.append((x, y))
    for x, y in pos:
        truth += rng.uniform(0.3, 0.6) * psf.moffat(xx - x, yy - y, 3.0, 3.0)
    obs = (truth + rng.normal(0, SIGMA, truth.shape)).astype(np.float32)
    return {"truth": truth, "obs": obs, "pos": pos}


def _psnr(img, truth):
    return 10 * np.log10(1.0 / np.mean((img - truth) ** 2))


def _centroids(img, pos, r=3):
    out = []
    for x, y in pos:
        ix, iy = int(round(x)), int(round(y))
        s = img[iy - r : iy + r + 1, ix - r : ix + r + 1].astype(np.float64)
        s = np.clip(
            s - np.median(img[iy - 3 * r : iy + 3 * r + 1, ix - 3 * r : ix + 3 * r + 1]), 0, None
        )
        gy, gx = np.mgrid[-r : r + 1, -r : r + 1]
        out.append((ix + (s * gx).sum() / s.sum(), iy + (s * gy).sum() / s.sum()))
    return np.array(out)


def test_tgv_raises_psnr_by_3db_and_keeps_stars(scene):
    out = denoise.tgv_denoise(scene["obs"])
    gain = _psnr(out, scene["truth"]) - _psnr(scene["obs"], scene["truth"])
    assert gain >= 3.0, gain
    c_truth = _centroids(scene["truth"], scene["pos"])
    c_out = _centroids(out, scene["pos"])
    assert np.abs(c_out - c_truth).max() < 0.2
    # stars keep their peaks (edge protection): no more than 15 % lost on average
    peaks_t = [scene["truth"][int(round(y)), int(round(x))] for x, y in scene["pos"]]
    peaks_o = [out[int(round(y)), int(round(x))] for x, y in scene["pos"]]
    assert np.mean(peaks_o) > 0.85 * np.mean(peaks_t)


def test_affine_images_are_fixed_points():
    # TGV² costs nothing on an affine image: the solver must return it (up to the boundary)
    yy, xx = np.mgrid[0:48, 0:64]
    ramp = (0.1 + 0.004 * xx + 0.002 * yy).astype(np.float32)
    u, _ = denoise.tgv(ramp, 0.05, 2.0, iterations=200, convergence=None)
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(u - ramp)[inner].max() < 2e-3  # (plain TV would flatten the slope)
    assert np.polyfit(xx[inner].ravel(), u[inner].ravel(), 1)[0] == pytest.approx(0.004, rel=0.02)
    flat = np.full((32, 32), 0.3, dtype=np.float32)
    assert np.abs(denoise.tgv(flat, 0.1, 2.0, 50)[0] - flat).max() < 1e-6


def test_convergence_stops_early_and_strength_zero_is_identity(scene):
    obs = scene["obs"]
    _, n = denoise.tgv(obs, 0.02, 2.0, iterations=500, convergence=1e-4)
    assert 10 <= n < 500
    assert np.abs(denoise.tgv_denoise(obs, strength=0.0) - obs).max() < 1e-4


def test_colour_modes(scene):
    rng = np.random.default_rng(2)
    t = scene["truth"].astype(np.float32)
    truth = np.stack([t, 0.8 * t, 0.6 * t])
    noisy = truth + rng.normal(0, SIGMA, truth.shape).astype(np.float32)
    for mode in ("rgbk", "lab"):
        out = denoise.tgv_denoise(noisy, mode=mode)
        assert out.shape == truth.shape
        assert _psnr(out, truth) - _psnr(noisy, truth) >= 3.0, mode
    with pytest.raises(ValueError, match="mode"):
        denoise.tgv_denoise(noisy, mode="hsv")
