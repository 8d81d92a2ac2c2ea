"""Drizzle: resolution gain on undersampled dithered frames, flux conservation, CFA drizzle."""

import numpy as np
import pytest

from pxlang.process.debayer import bilinear, cfa_masks
from pxlang.process.drizzle import DrizzleStack
from pxlang.process.registration import Transform, apply
from pxlang.process.stars import find_stars, render_stars

S = 128


def shift(dx, dy):
    """Frame → reference transform of a frame whose content moved by (dx, dy)."""
    return Transform("similarity", np.array([[1, 0, -dx], [0, 1, -dy], [0, 0, 1.0]]))


def dithered(rng, n_frames, fwhm, noise=0.002, sky=0.1, colours=None):
    xs, ys = rng.uniform(12, S - 12, (2, 40))
    flux = 10 ** rng.uniform(0.3, 1.0, 40)
    frames = []
    for _ in range(n_frames):
        dx, dy = rng.uniform(-3, 3, 2)
        if colours is None:
            img = render_stars((S, S), xs + dx, ys + dy, flux, fwhm, oversample=9) + sky
        else:  # a CFA mosaic of coloured stars
            planes = [
                render_stars((S, S), xs + dx, ys + dy, flux * colours[c], fwhm, oversample=9) + sky
                for c in range(3)
            ]
            img = (np.stack(planes) * cfa_masks((S, S), "RGGB")).sum(axis=0)
        img = img + rng.normal(0, noise, img.shape) if noise else img
        frames.append((img.astype(np.float32), shift(dx, dy)))
    return frames, (xs, ys, flux)


def test_drizzle_sharper_than_plain_integration():
    rng = np.random.default_rng(0)
    frames, _ = dithered(rng, 20, fwhm=1.0)  # undersampled: FWHM 1 px
    plain = np.mean([apply(f, t) for f, t in frames], axis=0)
    stack = DrizzleStack((S, S), scale=2, pixfrac=0.5)
    for f, t in frames:
        stack.add(f, t.pixmap(f.shape))
    out, wht = stack.result()
    assert out.shape == (2 * S, 2 * S) and wht.min() > 0
    fwhm_plain = np.nanmedian(find_stars(plain, model="gaussian").fwhm)
    fwhm_driz = np.nanmedian(find_stars(out, model="gaussian").fwhm) / 2  # in input pixels
    assert fwhm_driz < 0.96 * fwhm_plain, (fwhm_driz, fwhm_plain)


def test_flux_conserved_and_levels_kept():
    rng = np.random.default_rng(1)
    frames, (_, _, flux) = dithered(rng, 8, fwhm=2.0, noise=0.0, sky=0.0)
    stack = DrizzleStack((S, S), scale=2, pixfrac=0.9)
    for f, t in frames:
        stack.add(f, t.pixmap(f.shape))
    out, _ = stack.result()
    assert abs(out.sum() / 4 - flux.sum()) / flux.sum() < 0.005
    # surface brightness kept: a flat sky stays at its level
    flat = DrizzleStack((S, S), scale=2, pixfrac=0.9)
    flat.add(np.full((S, S), 0.25, np.float32), shift(0.3, -0.2).pixmap((S, S)))
    img, wht = flat.result()
    assert np.allclose(img[10:-10, 10:-10], 0.25, atol=1e-5)


def test_rejected_pixels_and_weights():
    rng = np.random.default_rng(2)
    frames, _ = dithered(rng, 6, fwhm=2.0, noise=0.0, sky=0.1)

    def run(hit, flag, weights=None):
        stack = DrizzleStack((S, S), scale=2, pixfrac=0.9)
        for i, (f, t) in enumerate(frames):
            f = f.copy()
            mask = np.zeros(f.shape, bool)
            if i == 0 and hit:
                f[60:64, 60:64] += 5.0  # a cosmic ray flagged by the previous integration
                mask[60:64, 60:64] = flag
            w = 1.0 if weights is None else weights[i]
            stack.add(f, t.pixmap(f.shape), weight=w, mask=mask)
        return stack.result()[0]

    box = (slice(100, 140), slice(100, 140))  # around the hit, in output pixels
    clean = run(False, False)[box]
    assert (run(True, False)[box] - clean).max() > 0.5  # unflagged, the hit shows
    assert (
        np.abs(run(True, True)[box] - clean).max() < 0.15
    )  # flagged, it is gone (a star edge, sampled by 5 frames)
    # weights: a frame with zero weight contributes nothing
    assert np.abs(run(True, False, weights=[0, 1, 1, 1, 1, 1])[box] - clean).max() < 0.15
    stack = DrizzleStack((S, S))
    with pytest.raises(ValueError, match="pixmap"):
        stack.add(frames[0][0], np.zeros((4, 4, 2)))


def test_bayer_drizzle_gives_colour_without_debayer_artefacts():
    rng = np.random.default_rng(3)
    colours = np.array([1.0, 1.0, 1.0])  # white stars: any colour at their edges is an artefact
    frames, (xs, ys, flux) = dithered(rng, 24, fwhm=1.6, noise=0.0, sky=0.05, colours=colours)
    stack = DrizzleStack((S, S), scale=1, pixfrac=0.8, cfa="RGGB")
    for f, t in frames:
        stack.add(f, t.pixmap(f.shape))
    rgb, wht = stack.result()
    assert rgb.shape == (3, S, S) and (wht > 0).all()
    # the usual path: debayer each frame (bilinear), register, average
    debayered = np.mean([apply(bilinear(f, "RGGB"), t) for f, t in frames], axis=0)

    def fringe(img):
        """Worst and RMS colour deviation from grey, relative to the brightest star."""
        core = img[:, 15:-15, 15:-15]
        lum = core.mean(axis=0)
        dev = np.abs(core - lum) / (lum.max() - 0.05)
        return dev.max(), np.sqrt(np.mean(dev**2))

    (worst, rms), (worst_db, rms_db) = fringe(rgb), fringe(debayered)
    assert worst < 0.6 * worst_db and rms < 0.75 * rms_db
    # colour is right: a red star comes out red
    red = np.array([1.0, 0.3, 0.1])
    frames, _ = dithered(np.random.default_rng(4), 16, fwhm=1.6, noise=0.0, sky=0.0, colours=red)
    stack = DrizzleStack((S, S), scale=1, pixfrac=0.8, cfa="RGGB")
    for f, t in frames:
        stack.add(f, t.pixmap(f.shape))
    rgb, _ = stack.result()
    sums = rgb[:, 15:-15, 15:-15].sum(axis=(1, 2))
    assert np.allclose(sums / sums[0], red, atol=0.03)


def test_bad_parameters():
    with pytest.raises(ValueError, match="kernel"):
        DrizzleStack((8, 8), kernel="box")
    with pytest.raises(ValueError, match="pixfrac"):
        DrizzleStack((8, 8), pixfrac=0)
    with pytest.raises(ValueError, match="no frame"):
        DrizzleStack((8, 8)).result()


def test_scale_header_keeps_the_sky_geometry():
    from astropy.io import fits
    from astropy.wcs import WCS

    from pxlang.process.drizzle import scale_header

    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, 100, 80
    h["XPIXSZ"], h["YPIXSZ"] = 3.76, 3.76
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 83.8, -5.4
    h["CRPIX1"], h["CRPIX2"] = 50.5, 40.5
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -2e-4, 1e-5, 1e-5, 2e-4
    before = WCS(h)
    g = h.copy()
    scale_header(g, 2.0)
    g["NAXIS1"], g["NAXIS2"] = 200, 160
    after = WCS(g)
    assert g["XPIXSZ"] == g["YPIXSZ"] == 1.88
    # a reference pixel and its drizzled position ((x + 0.5) * 2 - 0.5, 0-based) see the
    # same sky
    for x, y in ((0.0, 0.0), (37.3, 61.9), (99.0, 79.0)):
        a = before.pixel_to_world_values(x, y)
        b = after.pixel_to_world_values((x + 0.5) * 2 - 0.5, (y + 0.5) * 2 - 0.5)
        assert np.allclose(a, b, atol=1e-9)
