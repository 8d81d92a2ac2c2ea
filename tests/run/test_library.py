"""The calibration library: indexing masters and choosing the right one."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from astropy.io import fits

from pxlang.lang.errors import PxError
from pxlang.run import library as lib


def master(path, kind, date, **kw):
    hdu = fits.PrimaryHDU(np.zeros((8, 10), np.float32))
    hdu.header["IMAGETYP"] = kind
    hdu.header["DATE-OBS"] = date
    for k, v in kw.items():
        hdu.header[k.replace("_", "-")] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path)
    return str(path)


def light_header(**kw):
    h = fits.Header()
    h["NAXIS1"], h["NAXIS2"] = 10, 8
    h["IMAGETYP"] = "Light Frame"
    for k, v in kw.items():
        h[k.replace("_", "-")] = v
    return h


@pytest.fixture
def masters(tmp_path):
    root = tmp_path / "masters"
    m = {
        "bias": master(root / "b.fits", "Master Bias", "2026-01-10", GAIN=100, OFFSET=50),
        "dark300": master(
            root / "d300.fits",
            "Master Dark",
            "2026-01-10",
            GAIN=100,
            OFFSET=50,
            EXPTIME=300.0,
            CCD_TEMP=-10.0,
        ),  # fmt: skip
        "dark120": master(
            root / "d120.fits",
            "MASTER DARK",
            "2026-01-12",
            GAIN=100,
            OFFSET=50,
            EXPTIME=120.0,
            CCD_TEMP=-10.0,
        ),  # fmt: skip
        "dark_g0": master(
            root / "g0" / "d.fits", "Master Dark", "2026-01-12", GAIN=0, OFFSET=50, EXPTIME=120.0
        ),  # fmt: skip
        "flat_ha": master(
            root / "f_ha.fits", "Master Flat", "2026-02-20", GAIN=100, OFFSET=50, FILTER="Ha"
        ),  # fmt: skip
        "flat_o3": master(
            root / "f_o3.fits", "Flat Field", "2026-02-21", GAIN=100, OFFSET=50, FILTER="OIII"
        ),  # fmt: skip
    }
    master(root / "light.fits", "Light Frame", "2026-02-01")  # not a master: ignored
    return root, m


def test_add_list_and_choose(tmp_path, masters):
    root, m = masters
    index = str(tmp_path / "lib.json")
    added = lib.add([str(root)], index)
    assert len(added) == 6 and len(lib.list_masters(index)) == 6
    lib.add([str(root)], index)  # adding again replaces, does not duplicate
    assert len(lib.list_masters(index)) == 6
    with open(index) as fh:
        assert json.load(fh)["version"] == 1
    now = dt.datetime(2026, 3, 1)
    h = light_header(GAIN=100, OFFSET=50, EXPTIME=120.0, FILTER="OIII", CCD_TEMP=-10.0)
    assert lib.choose("dark", h, index, now=now) == m["dark120"]
    assert lib.choose("flat", h, index, now=now) == m["flat_o3"]
    assert lib.choose("bias", h, index, now=now) == m["bias"]
    h300 = light_header(GAIN=100, OFFSET=50, EXPTIME=280.0, FILTER="Ha")
    assert lib.choose("dark", h300, index, now=now) == m["dark300"]  # closest exposure
    h0 = light_header(GAIN=0, OFFSET=50, EXPTIME=120.0)
    assert lib.choose("dark", h0, index, now=now) == m["dark_g0"]


def test_staleness_warnings_and_no_match(tmp_path, masters):
    root, m = masters
    index = str(tmp_path)  # a folder: library.json inside
    lib.add([str(root)], index)
    warnings = []
    h = light_header(GAIN=100, OFFSET=50, EXPTIME=120.0, FILTER="Ha", CCD_TEMP=2.0)
    late = dt.datetime(2026, 9, 1)
    lib.choose("dark", h, index, warn=warnings.append, now=late)
    lib.choose("flat", h, index, warn=warnings.append, now=late)
    text = " ".join(warnings)
    assert "months old: bias and darks keep 4-6 months" in text
    assert "taken at -10 C, the lights at 2 C" in text
    assert "flats should be replaced every 1-2 months" in text
    warnings.clear()
    lib.choose("dark", h, index, warn=warnings.append, now=dt.datetime(2026, 2, 1))
    assert not any("months old" in w for w in warnings)
    with pytest.raises(PxError, match="no master flat .* GAIN=100.0.*FILTER=SII; it holds"):
        lib.choose("flat", light_header(GAIN=100, OFFSET=50, FILTER="SII"), index)
    assert lib.choose("flat", light_header(GAIN=7), index, need=False) is None


def test_main_and_env(tmp_path, masters, monkeypatch, capsys):
    root, _ = masters
    monkeypatch.setenv("PXLANG_LIBRARY", str(tmp_path / "env.json"))
    assert lib.main(["add", str(root)]) == 0
    assert "added 6 master(s)" in capsys.readouterr().out
    assert lib.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "6 master(s)" in out and "d120.fits" in out
    assert lib.main(["add", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_age_counts_from_the_lights_night_not_today(masters, tmp_path):
    root, _ = masters
    index = str(tmp_path)
    lib.add([str(root)], index)
    warnings: list[str] = []
    # re-processing January's night long after: January's masters are not stale
    lib.choose(
        "dark",
        light_header(
            GAIN=100, OFFSET=50, EXPTIME=120.0, CCD_TEMP=-10.0, DATE_OBS="2026-01-20T22:00:00"
        ),
        index,
        warn=warnings.append,
    )
    assert not any("months old" in w for w in warnings)
    # the same masters for lights taken in September are
    lib.choose(
        "dark",
        light_header(
            GAIN=100, OFFSET=50, EXPTIME=120.0, CCD_TEMP=-10.0, DATE_OBS="2026-09-20T22:00:00"
        ),
        index,
        warn=warnings.append,
    )
    assert any("months old" in w for w in warnings)
