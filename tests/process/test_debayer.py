"""Bayer patterns, header offsets, demosaicing methods, camera raw without rawpy."""

import sys

import numpy as np
import pytest
from astropy.io.fits import Header

from pxlang.process.debayer import (
    cfa_masks,
    debayer,
    pattern_from_header,
    read_raw,
    shift_pattern,
)
from pxlang.process.stars import render_stars


def mosaic(rgb, pattern):
    return (rgb * cfa_masks(rgb.shape[1:], pattern)).sum(axis=0).astype(np.float32)


def test_pattern_shifts_and_header():
    assert shift_pattern("RGGB", 1, 0) == "GRBG"
    assert shift_pattern("RGGB", 0, 1) == "GBRG"
    assert shift_pattern("RGGB", 1, 1) == "BGGR"
    assert shift_pattern("gbrg", 2, 2) == "GBRG"
    h = Header()
    assert pattern_from_header(h) is None
    h["BAYERPAT"] = "RGGB"
    h["XBAYROFF"] = 1
    assert pattern_from_header(h) == "GRBG"
    with pytest.raises(ValueError, match="Bayer pattern"):
        shift_pattern("RGBW")


def test_masks_partition_the_sensor():
    m = cfa_masks((6, 8), "BGGR")
    assert np.all(m.sum(axis=0) == 1)
    assert m[2, 0, 0] == 1 and m[0, 1, 1] == 1 and m[1].sum() == 24


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_flat_colour_recovered_by_every_method(pattern):
    rgb = np.stack([np.full((16, 16), v, np.float32) for v in (0.6, 0.3, 0.1)])
    cfa = mosaic(rgb, pattern)
    for method in ("bilinear", "vng"):
        out = debayer(cfa, pattern, method)
        assert out.shape == (3, 16, 16)
        assert np.allclose(out, rgb, atol=1e-6), method
    sp = debayer(cfa, pattern, "superpixel")
    assert sp.shape == (3, 8, 8) and np.allclose(sp, rgb[:, ::2, ::2])


def test_vng_has_fewer_colour_artefacts_than_bilinear_on_stars():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(6, 122, (2, 60))
    flux = 10 ** rng.uniform(0, 1, 60)
    lum = render_stars((128, 128), x, y, flux, 2.5)
    rgb = np.stack([lum * k + 0.1 for k in (1.0, 0.8, 0.6)])
    cfa = mosaic(rgb, "RGGB")
    err = {
        m: np.sqrt(np.mean((debayer(cfa, "RGGB", m) - rgb)[:, 4:-4, 4:-4] ** 2))
        for m in ("bilinear", "vng")
    }
    assert err["vng"] < 0.8 * err["bilinear"]


def test_bad_input_and_raw_without_rawpy(monkeypatch):
    with pytest.raises(ValueError, match="2-D"):
        debayer(np.zeros((3, 8, 8), np.float32), "RGGB")
    with pytest.raises(ValueError, match="method"):
        debayer(np.zeros((8, 8), np.float32), "RGGB", "ahd")
    monkeypatch.setitem(sys.modules, "rawpy", None)  # as if the [raw] extra were missing
    with pytest.raises(ImportError, match=r"pxlang\[raw\]"):
        read_raw("IMG_0001.CR2")


def _write_dng(path, mosaic, black=64, white=4095):
    """A minimal DNG (the tags LibRaw needs): a RGGB mosaic of uint16, black and white level."""
    import tifffile

    extratags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout
        (50714, "H", 1, black, True),  # BlackLevel
        (50717, "H", 1, white, True),  # WhiteLevel
        (50708, "s", 0, "pxlang synthetic", True),  # UniqueCameraModel
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1), True),
    ]
    tifffile.imwrite(path, mosaic, photometric=32803, extratags=extratags, subfiletype=0)


def test_camera_raw_through_rawpy(tmp_path):
    """The [raw] extra: a DNG is read through rawpy, black level removed, scaled to [0, 1] by
    the white level, the Bayer pattern taken from the file; an unreadable raw is named."""
    rng = np.random.default_rng(3)
    mosaic = rng.integers(64, 4095, (32, 48)).astype(np.uint16)
    path = tmp_path / "IMG_0001.DNG"
    _write_dng(path, mosaic)
    data, letters, meta = read_raw(str(path))
    assert letters == "RGGB"
    assert meta == {"BLACK": 64.0, "WHITE": 4095.0}
    np.testing.assert_allclose(data, (mosaic - 64.0) / (4095.0 - 64.0), atol=1e-6)
    rgb = debayer(data, letters, "bilinear")
    # bilinear keeps each site's own colour: red at the R sites, blue at the B sites
    np.testing.assert_allclose(rgb[0, 0::2, 0::2], data[0::2, 0::2], atol=1e-6)
    np.testing.assert_allclose(rgb[2, 1::2, 1::2], data[1::2, 1::2], atol=1e-6)
    bad = tmp_path / "IMG_0002.CR2"
    bad.write_bytes(b"not a raw file" * 100)
    with pytest.raises(ValueError, match="IMG_0002.CR2"):
        read_raw(str(bad))
    with pytest.raises(ValueError, match="IMG_0003.NEF"):
        read_raw(str(tmp_path / "IMG_0003.NEF"))
