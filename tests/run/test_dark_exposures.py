"""Darks per exposure: a night with lights of two exposures gets one master dark per exposure,
and each frame is calibrated with the dark of its own exposure (as PixInsight and Siril users
do), not with one master stacked from darks of every exposure."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest
from astropy.io import fits

import pxlang
import pxlang.builtins  # noqa: F401  (fills the registry)
from pxlang.api import stdlib_dir
from pxlang.builtins.registry import lookup
from pxlang.image.frameset import FrameSet
from pxlang.image.store import Image
from pxlang.lang.functions import CallContext
from pxlang.synthetic import make_night

EXPOSURE = {"Ha": 300.0, "OIII": 120.0}


def call(name, ctx, *args, **kwargs):
    return lookup(name).call(ctx, list(args), kwargs)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("darks")
    make_night(
        root / "raw",
        size=(128, 160),
        lights_per_filter=4,
        n_bias=3,
        n_darks=3,
        n_flats=3,
        exposure=EXPOSURE,
        seed=4,
        cloudy=False,
        trailed=False,
    )
    script = stdlib_dir() / "preprocess.px"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # the run's warnings
        pxlang.evaluate(
            script.read_text(),
            path=str(script),
            params={"input": str(root / "raw"), "output": str(root / "out")},
            options={"quiet": True, "cache_dir": str(root / "cache")},
        )
    return root, err.getvalue()


def test_one_master_dark_per_exposure(night):
    root, _ = night
    masters = root / "out" / "masters"
    assert not (masters / "dark.fits").exists()
    for name, t in (("dark_300s.fits", 300.0), ("dark_120s.fits", 120.0)):
        h = fits.getheader(masters / name)
        assert (h["EXPTIME"], h["NCOMBINE"]) == (t, 3), name
    names = [m["name"] for m in json.loads((root / "out" / "report.json").read_text())["masters"]]
    assert {"dark_300s", "dark_120s"} <= set(names)


def _history(h) -> str:
    return "".join(str(line) for line in h.get("HISTORY", []))  # long lines span cards


def test_each_light_is_calibrated_with_the_dark_of_its_exposure(night):
    root, _ = night
    frames = root / "cache" / "frames"
    seen = set()
    for p in sorted(frames.glob("SYNTH-1_*.fits")):
        h = fits.getheader(p)
        used = re.search(r"ImageCalibration: .*?dark=(\S+) k=", _history(h))
        assert used, p.name
        # HISTORY names the master the user has (not a cache file)
        dark = fits.getheader(root / "out" / "masters" / used.group(1))
        assert dark["EXPTIME"] == h["EXPTIME"] == EXPOSURE[h["FILTER"]], p.name
        assert h["DARKSCAL"] == 1.0, p.name  # not a dark of another exposure scaled
        seen.add(h["FILTER"])
    assert seen == {"Ha", "OIII"}


def test_flats_take_the_nearest_dark_with_a_warning(night):
    _, text = night
    assert re.search(r"no master dark of 4 s for '.*Flat_Ha_0001\.fits'", text), text
    assert "the darks are 120 s, 300 s" in text and "the 120 s one is used" in text


def test_calibrate_picks_each_frames_dark(tmp_path):
    """calibrate(dark=[…]): each frame gets the dark of its exposure (to 0.01 s), else the
    nearest, scaled by EXPTIME, with a warning; the result is the sky either way."""
    rng = np.random.default_rng(1)
    shape = (16, 20)
    current = rng.uniform(0.001, 0.002, shape).astype(np.float32)  # per second
    darks = [
        Image(t * current, fits.Header({"IMAGETYP": "Master Dark", "EXPTIME": t, "BIASSUB": True}))
        for t in (120.0, 300.0)
    ]
    times = [300.0, 120.004, 250.0]
    frames = FrameSet.from_arrays(
        [0.1 + t * current for t in times],
        headers=[fits.Header({"IMAGETYP": "Light", "EXPTIME": t}) for t in times],
    )
    warnings: list[str] = []
    ctx = CallContext(base_dir=str(tmp_path), warn=warnings.append)
    bias = Image(np.zeros(shape, np.float32), fits.Header({"IMAGETYP": "Master Bias"}))
    out = call("calibrate", ctx, frames, bias=bias, dark=darks)
    for i, k in enumerate((1.0, 120.004 / 120.0, 250.0 / 300.0)):
        img = out.read(i)
        assert img.header["DARKSCAL"] == pytest.approx(k, abs=1e-6), times[i]
        np.testing.assert_allclose(img.data, 0.1, atol=1e-5)
    assert len(warnings) == 1, warnings
    assert "no master dark of 250 s for 'frame 3" in warnings[0]
    assert "(the darks are 120 s, 300 s): the 300 s one is used" in warnings[0]


def test_exposure_label():
    ctx = CallContext()
    labels = [call("exposure_label", ctx, t) for t in (300.0, 120, 0.5, 2.25, 59.999)]
    assert labels == ["300s", "120s", "0.5s", "2.25s", "60s"]
