"""Richardson–Lucy deconvolution of a synthetic star field blurred by a known Moffat PSF."""

import numpy as np
import pytest
from scipy import ndimage

from pxlang.process import deconvolution, psf

BG = 0.05
SIGMA = 0.001


@pytest.fixture(scope="module")
def field():
    rng = np.random.default_rng(42)
    n = 256
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    pos = []
    while len(pos) < 18:
        x, y = rng.uniform(24, n - 24, 2)
        if all((x - a) ** 2 + (y - b) ** 2 > 40**2 for a, b in pos):
            pos.append((x, y))
    truth = np.full((n, n), BG)
    for x, y in pos:
        truth += rng.uniform(0.2, 0.8) * psf.moffat(xx - x, yy - y, 2.0, 3.0)
    kernel = psf.moffat_kernel(4.0, 3.0)
    blurred = ndimage.convolve(truth, kernel / kernel.sum(), mode="mirror")
    obs = (blurred + rng.normal(0, SIGMA, truth.shape)).astype(np.float32)
    return {"obs": obs, "truth": truth, "pos": pos, "kernel": kernel, "xx": xx, "yy": yy}


def _flux(img, f):
    out = []
    for x, y in f["pos"]:
        r2 = (f["xx"] - x) ** 2 + (f["yy"] - y) ** 2
        ap = r2 < 14**2
        out.append(float((img[ap] - BG).sum()))
    return np.array(out)


def _worst_ring(img, f):
    """Most negative azimuthal mean (1-px annuli, r = 2..14) below the true background."""
    worst = 0.0
    for x, y in f["pos"]:
        r = np.sqrt((f["xx"] - x) ** 2 + (f["yy"] - y) ** 2)
        for k in range(2, 14):
            worst = min(worst, float(img[(r >= k) & (r < k + 1)].mean()) - BG)
    return worst


def test_sharper_flux_conserved_no_rings(field):
    obs = field["obs"]
    before = psf.fit_psf(obs).fwhm
    out = deconvolution.deconvolve(obs, field["kernel"])  # defaults: 20 iterations, dark 0.5
    after = psf.fit_psf(out).fwhm
    assert after <= 0.75 * before, (before, after)
    # the same apertures on the observed frame: deconvolution must move flux, not make it
    f0, f1 = _flux(obs, field), _flux(out, field)
    assert np.abs(f1 / f0 - 1).max() < 0.02
    assert _worst_ring(out, field) > -SIGMA


def test_deringing_reduces_rings(field):
    plain = deconvolution.deconvolve(field["obs"], field["kernel"], iterations=40, deringing=False)
    dering = deconvolution.deconvolve(field["obs"], field["kernel"], iterations=40, dark=0.3)
    assert _worst_ring(dering, field) > _worst_ring(plain, field)
    # the total flux is conserved by plain RL (mirror-padded FFT convolution)
    assert float(plain.sum()) == pytest.approx(float(field["obs"].sum()), rel=1e-3)


def test_regularized_and_local_support(field):
    from pxlang.process.masks import star_mask

    obs = field["obs"]
    reg = deconvolution.deconvolve(obs, field["kernel"], iterations=40, algorithm="regularized_rl")
    plain = deconvolution.deconvolve(obs, field["kernel"], iterations=40, deringing=False)
    sky = np.ones(obs.shape, dtype=bool)
    for x, y in field["pos"]:
        sky &= (field["xx"] - x) ** 2 + (field["yy"] - y) ** 2 > 16**2
    # regularisation does not amplify background noise as plain RL does
    assert reg[sky].std() < plain[sky].std()
    assert psf.fit_psf(reg).fwhm < 0.8 * psf.fit_psf(obs).fwhm
    support = star_mask(obs, grow=4)
    loc = deconvolution.deconvolve(
        obs, field["kernel"], iterations=40, dark=0.0, local_support=support
    )
    assert _worst_ring(loc, field) > _worst_ring(plain, field)


def test_bad_input(field):
    obs = field["obs"]
    with pytest.raises(ValueError, match="mono"):
        deconvolution.deconvolve(np.stack([obs] * 3), field["kernel"])
    with pytest.raises(ValueError, match="non-negative"):
        deconvolution.deconvolve(obs, -field["kernel"])
    with pytest.raises(ValueError, match="unknown algorithm"):
        deconvolution.deconvolve(obs, field["kernel"], algorithm="wiener")
    with pytest.raises(ValueError, match="local_support"):
        deconvolution.deconvolve(obs, field["kernel"], local_support=np.zeros((5, 5)))
