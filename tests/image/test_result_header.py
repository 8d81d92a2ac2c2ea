"""PixelMath results keep their first operand's header, made true of the result."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

import pxlang


def master(filt, n, exptime, noise):
    h = fits.Header()
    h["IMAGETYP"], h["FILTER"], h["NCOMBINE"] = "Master Light", filt, n
    h["EXPTIME"], h["TOTALEXP"], h["NOISEEST"], h["REJLOPCT"] = exptime, n * exptime, noise, 0.5
    return pxlang.Image(np.full((4, 5), 0.25, np.float32), h)


def test_one_filter_keeps_its_figures_but_not_the_noise():
    ha = master("Ha", 10, 300.0, 0.01)
    out = pxlang.evaluate("Ha * 2", images={"Ha": ha})
    h = out.header
    assert h["FILTER"] == "Ha" and h["NCOMBINE"] == 10 and h["EXPTIME"] == 300.0
    assert h["REJLOPCT"] == 0.5
    assert "NOISEEST" not in h  # it described Ha's pixels, not twice them
    assert ha.header["NOISEEST"] == 0.01  # the operand itself is untouched


def test_filters_combined_sum_their_frames_and_exposure():
    images = {"Ha": master("Ha", 10, 300.0, 0.01), "OIII": master("OIII", 6, 600.0, 0.02)}
    images["O2"] = master("oiii", 6, 600.0, 0.02)  # the same filter's master loaded again
    out = pxlang.evaluate("{ R = Ha; G = (Ha*0.5)+(OIII*~0.5); B = O2 }", images=images)
    assert out.data.shape == (3, 4, 5)
    h = out.header
    assert "FILTER" not in h and "EXPTIME" not in h and "REJLOPCT" not in h
    assert h["NCOMBINE"] == 16 and h["TOTALEXP"] == 10 * 300.0 + 6 * 600.0
    assert h["IMAGETYP"] == "Master Light"
    assert "combined from filters Ha, OIII" in str(h["HISTORY"])
