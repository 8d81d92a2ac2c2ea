"""psf(): the average Moffat PSF of a synthetic star field with known β and FWHM."""

import numpy as np
import pytest

from pxlang.process import psf


def star_field(
    fwhm, beta, n=256, stars=30, noise=0.002, seed=0, fwhm_y=None, angle=0.0, spacing=30
):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    img = np.full((n, n), 0.05)
    pos = []
    tries = 0
    while len(pos) < stars and tries < 5000:
        tries += 1
        x, y = rng.uniform(20, n - 20, 2)
        if all((x - a) ** 2 + (y - b) ** 2 > spacing**2 for a, b in pos):
            pos.append((x, y))
    for x, y in pos:
        img += rng.uniform(0.1, 0.7) * psf.moffat(xx - x, yy - y, fwhm, beta, fwhm_y, angle)
    img += rng.normal(0, noise, img.shape)
    return img.astype(np.float32), pos


@pytest.mark.parametrize(("fwhm", "beta"), [(4.0, 3.0), (3.0, 2.2), (5.5, 4.5)])
def test_recovers_fwhm_and_beta_within_5_percent(fwhm, beta):
    img, pos = star_field(fwhm, beta, seed=int(fwhm * 10))
    m = psf.fit_psf(img)
    assert m.n_stars >= 10
    assert m.fwhm == pytest.approx(fwhm, rel=0.05)
    assert m.beta == pytest.approx(beta, rel=0.05)
    k = m.image()
    assert k.shape[0] % 2 == 1 and k.max() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(k), k.shape) == (k.shape[0] // 2, k.shape[1] // 2)


def test_elongated_psf_axes_and_angle():
    img, _ = star_field(5.0, 3.0, fwhm_y=3.5, angle=30.0, seed=7)
    m = psf.fit_psf(img)
    assert m.fwhm_x == pytest.approx(5.0, rel=0.05)
    assert m.fwhm_y == pytest.approx(3.5, rel=0.05)
    assert m.ellipticity == pytest.approx(1 - 3.5 / 5.0, abs=0.03)
    assert m.angle == pytest.approx(30.0, abs=3.0)


def test_saturated_stars_are_avoided():
    img, _ = star_field(4.0, 3.0, seed=11)
    rng = np.random.default_rng(12)
    yy, xx = np.mgrid[0:256, 0:256]
    # a few very bright stars, clipped at 1.0 like a saturated sensor: flat tops, wrong profile
    for _ in range(6):
        x, y = rng.uniform(30, 226, 2)
        img = img + 5.0 * psf.moffat(xx - x, yy - y, 4.0, 3.0).astype(np.float32)
    img = np.minimum(img, 1.0)
    m = psf.fit_psf(img)
    assert m.fwhm == pytest.approx(4.0, rel=0.05) and m.beta == pytest.approx(3.0, rel=0.05)


def test_no_usable_stars_is_a_clear_error():
    rng = np.random.default_rng(3)
    flat = (0.1 + rng.normal(0, 0.002, (128, 128))).astype(np.float32)
    with pytest.raises(ValueError, match="star"):
        psf.fit_psf(flat)
    with pytest.raises(ValueError, match="mono"):
        psf.fit_psf(np.zeros((3, 16, 16)))
