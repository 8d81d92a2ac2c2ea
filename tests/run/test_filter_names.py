"""FILTER values as cameras write them: a dual-band "Ha/OIII" (a path separator) and the same
filter spelt in two cases by two capture sessions. The workflow makes one master per filter,
under a file name (not a subfolder), and the report shows one group."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from astropy.io import fits

import pxlang
from pxlang.api import stdlib_dir
from pxlang.synthetic import make_night


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("filters")
    make_night(
        root / "raw",
        size=(96, 128),
        filters=("Dual",),
        lights_per_filter=4,
        n_bias=2,
        n_darks=2,
        n_flats=2,
        seed=9,
        cloudy=False,
        trailed=False,
    )
    lights = 0
    for p in sorted((root / "raw").rglob("*.fits")):
        with fits.open(p, mode="update") as hdul:
            h = hdul[0].header
            if h.get("FILTER") == "Dual":
                kind = str(h.get("IMAGETYP")).lower()
                if "light" in kind:
                    lights += 1
                # a second session's frames spell the filter in capitals
                h["FILTER"] = "HA/OIII" if "light" in kind and lights % 2 else "Ha/OIII"
    assert lights == 4
    script = stdlib_dir() / "preprocess.px"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        pxlang.evaluate(
            script.read_text(),
            path=str(script),
            params={"input": str(root / "raw"), "output": str(root / "out")},
            options={"quiet": True, "cache_dir": str(root / "cache")},
        )
    return root / "out", err.getvalue()


def test_one_master_per_filter_under_a_file_name(run):
    out, _ = run
    masters = sorted(p.name for p in out.glob("*.fits"))
    assert len(masters) == 1 and masters[0].lower() == "ha_oiii.fits"
    assert not [p for p in out.iterdir() if p.is_dir() and p.name.lower() == "ha"]
    flats = [p.name.lower() for p in (out / "masters").glob("flat_*.fits")]
    assert flats == ["flat_ha_oiii.fits"]
    with fits.open(out / masters[0]) as hdul:
        assert hdul[0].header["NCOMBINE"] == 4  # both spellings in one stack


def test_report_shows_one_group(run):
    out, _ = run
    report = json.loads((out / "report.json").read_text())
    assert len(report["summary"]) == 1
    (row,) = report["summary"].values()
    assert row["frames"] == 4
    assert len(list((out / "report").glob("subframes_*.png"))) == 1
