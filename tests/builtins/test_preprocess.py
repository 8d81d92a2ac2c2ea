"""The preprocessing built-ins, called through the registry as the language calls them."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

import pxlang.builtins  # noqa: F401  (fills the registry)
from pxlang.builtins.registry import lookup
from pxlang.image.frameset import FrameSet
from pxlang.image.store import Image
from pxlang.lang.errors import PxError, PxIOError, PxProcessError
from pxlang.lang.functions import CallContext

H, W = 40, 48


def night(tmp_path, seed=0):
    """bias/, darks/ (raw, 60 s), flats/, lights/ (60 s) under tmp_path; returns the sky."""
    rng = np.random.default_rng(seed)
    bias = 0.05 + 0.001 * rng.standard_normal(W)[None, :]
    current = np.full((H, W), 1e-4)
    flat = 0.8 + 0.2 * np.linspace(0, 1, W)[None, :] + np.zeros((H, 1))
    sky = 0.2 + np.zeros((H, W))
    sky[20, 20] += 0.3
    sets = {
        "bias": (bias, 9, "Bias Frame", 0.0),
        "darks": (bias + 60 * current, 9, "Dark Frame", 60.0),
        "flats": (bias + 0.5 * flat, 9, "Flat Field", 1.0),
        "lights": (bias + 60 * current + sky * flat, 5, "Light Frame", 60.0),
    }
    for folder, (level, n, kind, exp) in sets.items():
        (tmp_path / folder).mkdir()
        for i in range(n):
            data = (level + rng.normal(0, 0.001, (H, W))).astype(np.float32)
            hdu = fits.PrimaryHDU(data)
            hdu.header["IMAGETYP"] = kind
            hdu.header["EXPTIME"] = exp
            hdu.header["FILTER"] = "Ha"
            hdu.header["DATE-OBS"] = f"2026-03-0{i + 1}T22:00:00"
            hdu.writeto(tmp_path / folder / f"{folder}_{i}.fits")
    return sky * flat.mean()


def call(name, ctx, *args, **kwargs):
    return lookup(name).call(ctx, list(args), kwargs)


def test_a_whole_night(tmp_path):
    expected = night(tmp_path)
    ctx = CallContext(base_dir=str(tmp_path))
    bias = call("integrate", ctx, call("files", ctx, "bias/", IMAGETYP="Bias"))
    assert isinstance(bias, Image) and bias.header["IMAGETYP"] == "Master Bias"
    sb = call("superbias", ctx, bias)
    # not the bias's noise figure: the random noise is what superbias removes
    assert "NOISEEST" in bias.header and "NOISEEST" not in sb.header
    dark = call("integrate", ctx, call("files", ctx, "darks/"))
    flats = call("calibrate", ctx, call("files", ctx, "flats/"), bias=sb)
    flat = call("integrate", ctx, flats)
    assert flat.header["PXNORM"] == "multiplicative"  # auto for flats
    lights = call("calibrate", ctx, call("files", ctx, "lights/"), bias=sb, dark=dark, flat=flat)
    assert isinstance(lights, FrameSet) and len(lights) == 5
    master = call("integrate", ctx, lights, rejection="percentile")
    assert np.std(master.data - expected) < 0.002
    assert master.header["NCOMBINE"] == 5 and master.header["IMAGETYP"] == "Master Light"
    # derived frames were cached next to the script, not in the user's folders
    assert os.listdir(tmp_path / ".pxlang-cache" / "frames")
    assert len(call("files", ctx, ".")) == 32  # ... which files() does not pick up
    both = call("integrate", ctx, lights, maps=True)
    assert isinstance(both, list) and len(both) == 3
    fixed = call("cosmetic", ctx, lights, sigma=6)
    assert isinstance(fixed, FrameSet) and fixed.read(0).header["COSMHOT"] >= 0


def test_files_filters_and_messages(tmp_path):
    night(tmp_path)
    ctx = CallContext(base_dir=str(tmp_path))
    everything = call("files", ctx, ".")
    assert len(everything) == 32
    assert len(call("files", ctx, ".", IMAGETYP="DARK")) == 9
    assert len(call("files", ctx, "*/*.fits", IMAGETYP="flat")) == 9
    assert len(call("files", ctx, ".", EXPTIME=60)) == 14
    with pytest.raises(PxIOError, match="IMAGETYP: bias \\(9\\), dark \\(9\\), flat \\(9\\)"):
        call("files", ctx, ".", IMAGETYP="Dark Flat")
    with pytest.raises(PxIOError, match="no image files match 'nowhere/\\*.fits'"):
        call("files", ctx, "nowhere/*.fits")


def test_files_exclude_leaves_a_folder_out(tmp_path):
    """A workflow's output folder inside its input folder: its masters (IMAGETYP 'Master
    Bias' is a bias) are not frames of the next run."""
    night(tmp_path)
    ctx = CallContext(base_dir=str(tmp_path))
    out = tmp_path / "out" / "masters"
    out.mkdir(parents=True)
    master = call("integrate", ctx, call("files", ctx, "bias/"))
    call("save", ctx, master, str(out / "bias.fits"))
    assert len(call("files", ctx, ".", IMAGETYP="Bias")) == 10  # the master is found…
    assert len(call("files", ctx, ".", IMAGETYP="Bias", exclude="out")) == 9  # …not here
    assert len(call("files", ctx, ".", exclude="out/")) == 32
    assert len(call("files", ctx, ".", exclude="bias")) == 24  # bias/ only, not out/…/bias.fits


def test_errors_become_process_errors(tmp_path):
    night(tmp_path)
    ctx = CallContext(base_dir=str(tmp_path))
    lights = call("files", ctx, "lights/")
    with pytest.raises(PxProcessError, match="integrate\\(\\): unknown rejection 'sigmaclip'"):
        call("integrate", ctx, lights, rejection="sigmaclip")
    osc = Image(np.ones((H, W), np.float32), fits.Header({"BAYERPAT": "RGGB"}), path="osc.fits")
    with pytest.raises(PxProcessError, match="osc.fits' is a colour"):
        call("calibrate", ctx, lights, flat=osc)
    warnings = []
    ctx2 = CallContext(base_dir=str(tmp_path), warn=warnings.append)
    dark = Image(np.zeros((H, W), np.float32), fits.Header({"EXPTIME": 60.0, "CCD-TEMP": 10.0}))
    lights2 = call("files", ctx2, "lights/")
    for i in range(len(lights2)):
        lights2.header(i)["CCD-TEMP"] = -5.0
    call("calibrate", ctx2, lights2, dark=dark)
    assert any("more than 5 C apart" in w for w in warnings)


def test_every_builtin_has_help_and_example():
    for name in ("files", "integrate", "superbias", "calibrate", "cosmetic"):
        spec = lookup(name)
        assert spec.doc and spec.example and spec.category == "preprocess"


def test_calibrate_with_a_library(tmp_path):
    from pxlang.image import io
    from pxlang.run import library

    expected = night(tmp_path)
    ctx = CallContext(base_dir=str(tmp_path))
    bias = call("integrate", ctx, call("files", ctx, "bias/"))
    dark = call("integrate", ctx, call("files", ctx, "darks/"))
    flat = call("integrate", ctx, call("calibrate", ctx, call("files", ctx, "flats/"), bias=bias))
    for name, img in (("bias", bias), ("dark", dark), ("flat", flat)):
        io.save(img, str(tmp_path / "masters" / f"{name}.fits"))
    assert library.main(["--library", str(tmp_path / "lib"), "add", str(tmp_path / "masters")]) == 0
    lights = call("calibrate", ctx, call("files", ctx, "lights/"), library="lib")
    direct = call("calibrate", ctx, call("files", ctx, "lights/"), bias=bias, dark=dark, flat=flat)
    np.testing.assert_allclose(lights.read(0).data, direct.read(0).data, atol=1e-6)
    assert np.std(lights.read(0).data - expected) < 0.003
    with pytest.raises(PxError, match="no master dark"):
        call("calibrate", ctx, call("files", ctx, "lights/"), library="empty")


def test_frameset_grouping_and_order(tmp_path):
    night(tmp_path)
    ctx = CallContext(base_dir=str(tmp_path))
    fs = call("files", ctx, ".")
    groups = fs.group_by("IMAGETYP")
    assert {k: len(v) for k, v in groups.items()} == {"bias": 9, "dark": 9, "flat": 9, "light": 5}
    assert groups["light"].describe() == "a frame set of 5 frames from '.'"
    dates = [fs.header(i)["DATE-OBS"] for i in range(len(fs))]
    assert dates == sorted(dates)  # sorted by DATE-OBS
    assert len(fs.filter(FILTER="ha", EXPTIME=60.0)) == 14
    assert fs[0:3].shape == (H, W) and len(fs[0:3]) == 3
