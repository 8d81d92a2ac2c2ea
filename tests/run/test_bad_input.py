"""Bad input at the workflow level, through the command line (`pxlang run preprocess`): a
clear message naming the file or what is missing, no traceback, a non-zero exit where it is
an error, and nothing half-written under a final name.

Decisions: a file that cannot be read (truncated, corrupt, not FITS) is left out with a
warning naming it and counted in report.json, and the run goes on (one bad file must not
cost a night of hundreds); a frame whose pixels are all NaN is found only when its pixels are
read, part-way through, and stops the run with a message naming it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pxlang.cli import main
from pxlang.image.io import load
from pxlang.synthetic import make_night


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("badinput") / "raw"
    make_night(
        raw, size=(128, 160), lights_per_filter=4, n_bias=3, n_darks=3, n_flats=3, seed=11,
        cloudy=False, trailed=False,
    )  # fmt: skip
    return raw


def _copy(night: Path, dest: Path, drop=lambda h: False) -> Path:
    dest.mkdir(parents=True)
    for p in night.glob("*.fits"):
        if not drop(fits.getheader(p)):
            shutil.copy2(p, dest / p.name)
    return dest


def _run(capsys, raw: Path, out: Path, *extra: str) -> tuple[int, str]:
    rc = main(["run", "preprocess", f"input={raw}", f"output={out}", "--cache",
               str(out.parent / "cache"), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def _kind(h) -> str:
    return str(h.get("IMAGETYP", "")).lower()


def test_no_such_input_folder_and_negative_settings(night, tmp_path, capsys):
    rc, err = _run(capsys, tmp_path / "nope", tmp_path / "out")
    assert rc == 1 and f"no such input folder: {tmp_path / 'nope'}" in err
    assert "warning" not in err  # not "no bias frames in …" first
    rc, err = _run(capsys, night, tmp_path / "out", "workers=-1")
    assert rc == 1 and "number of dask workers; got -1" in err and "drizzle" not in err
    rc, err = _run(capsys, night, tmp_path / "out", "drizzle=-2")
    assert rc == 1 and "drizzle is 0 (off) or a scale (2, 3…); got -2" in err
    assert not (tmp_path / "out").exists()


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, err = _run(capsys, tmp_path / "empty", tmp_path / "out")
    assert rc == 1
    assert f"error: no image files in {tmp_path / 'empty'} (FITS or XISF" in err
    assert "warning" not in err  # not "no bias frames in …" first
    # the user's folder is at fault, not a line of the stdlib workflow: no source shown
    assert "preprocess.px" not in err and "^" not in err
    assert not (tmp_path / "out").exists()


def test_lights_without_any_calibration_frames_run_with_warnings(night, tmp_path, capsys):
    raw = _copy(night, tmp_path / "raw", drop=lambda h: "light" not in _kind(h))
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet")
    assert rc == 0, err
    assert "no bias frames" in err and "no dark frames" in err  # warnings survive --quiet
    assert "no calibration frames for Ha" in err and "no calibration frames for OIII" in err
    assert "to do" not in err and "done in" not in err  # --quiet: no progress lines
    assert (tmp_path / "out" / "Ha.fits").is_file() and (tmp_path / "out" / "OIII.fits").is_file()


def test_flats_missing_for_one_filter_name_the_filter(night, tmp_path, capsys):
    def no_oiii_flats(h):
        return "flat" in _kind(h) and h.get("FILTER") == "OIII"

    raw = _copy(night, tmp_path / "raw", drop=no_oiii_flats)
    rc, err = _run(capsys, raw, tmp_path / "out")
    assert rc == 0, err
    for label in ("measure", "register", "normalize", "report"):  # plain progress lines
        # "measure light OIII: 4 to do": what is processed, then the count
        what = rf"{label}( light (Ha|OIII))?"
        assert re.search(rf"^{what}: \d+ to do$", err, re.M), (label, err)
        assert re.search(rf"^{what}: (\d+)/\3 done in [\d.]+ s$", err, re.M), (label, err)
    assert "no flats for filter OIII" in err and "no flats for filter Ha" not in err
    assert (tmp_path / "out" / "masters" / "flat_Ha.fits").is_file()
    assert not (tmp_path / "out" / "masters" / "flat_OIII.fits").exists()


def test_mixed_sizes_name_the_odd_file_and_both_sizes(night, tmp_path, capsys):
    raw = _copy(night, tmp_path / "raw")
    odd = raw / "SYNTH-1_OIII_300s_0003.fits"
    h = fits.getheader(odd)
    h["XBINNING"], h["YBINNING"] = 2, 2
    fits.writeto(odd, fits.getdata(odd)[::2, ::2], h, overwrite=True)
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet")
    assert rc == 1
    assert odd.name in err and "80x64" in err and "160x128" in err and "binning 2x2" in err
    # nothing half-written: no master of that filter, no stray temp file under a final name
    assert not (tmp_path / "out" / "OIII.fits").exists()
    assert not (tmp_path / "out" / "report.json").exists()
    for p in (tmp_path / "out").rglob("*.fits"):
        fits.getdata(p)


def test_mixed_binning_at_one_size_is_named(night, tmp_path, capsys):
    raw = _copy(night, tmp_path / "raw")
    odd = raw / "SYNTH-1_Ha_300s_0003.fits"
    with fits.open(odd, mode="update") as hdul:  # same pixel count, another set-up
        hdul[0].header["XBINNING"] = hdul[0].header["YBINNING"] = 2
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet")
    assert rc == 1
    assert re.search(rf"frames differ in binning: '[^']*{odd.name}' \(binning 2x2\)", err), err
    assert "the other 3 of 4 frames (binning 1x1)" in err
    assert not (tmp_path / "out" / "Ha.fits").exists()


def test_a_master_of_another_size_is_named_by_its_saved_file(night, tmp_path, capsys):
    raw = _copy(night, tmp_path / "raw")
    for p in raw.glob("*Flat_Ha*.fits"):  # flats binned 2x2: half the lights' size
        h = fits.getheader(p)
        h["XBINNING"], h["YBINNING"] = 2, 2
        fits.writeto(p, fits.getdata(p)[::2, ::2], h, overwrite=True)
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet")
    assert rc == 1
    # the master the user can open, not the cache file it was loaded from
    assert re.search(r"master \w+ '[^']*out[/\\]masters[/\\]\w+\.fits' is 160x128", err), err
    assert "80x64" in err and "cache" not in err


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_file_in_the_night_is_left_out_and_counted(night, tmp_path, capsys, damage):
    raw = _copy(night, tmp_path / "raw")
    bad = raw / "SYNTH-1_Ha_300s_0002.fits"
    data = bad.read_bytes()
    bad.write_bytes(data[:5000] if damage == "truncated" else b"\x00garbage" * 4000)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet")
    assert rc == 0, err
    warnings = [ln for ln in err.splitlines() if bad.name in ln]
    assert len(warnings) == 1 and warnings[0].startswith("warning: left out"), err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"]["unreadable"] == 1
    assert [Path(s["path"]).name for s in report["skipped"]] == [bad.name]
    assert report["summary"]["Ha"]["frames"] == 3 and report["summary"]["OIII"]["frames"] == 4
    assert int(fits.getheader(tmp_path / "out" / "Ha.fits")["NCOMBINE"]) == 3
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before  # inputs untouched


def test_nan_filled_frame_is_left_out_by_name(night, tmp_path, capsys):
    raw = _copy(night, tmp_path / "raw")
    for p in raw.glob("SYNTH-1_Ha_*.fits"):  # float lights (as some capture software writes)
        h = fits.getheader(p)
        data = fits.getdata(p).astype(np.float32) / 65535
        if p.name.endswith("0002.fits"):
            data[:] = np.nan
        for k in ("BZERO", "BSCALE"):
            h.remove(k, ignore_missing=True)
        fits.writeto(p, data, h, overwrite=True)
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet")
    # one damaged frame costs that frame, not the night (as a truncated file does)
    assert rc == 0, err
    named = [ln for ln in err.splitlines() if "SYNTH-1_Ha_300s_0002.fits" in ln]
    assert len(named) == 1 and "every pixel is NaN" in named[0], err
    assert int(fits.getheader(tmp_path / "out" / "Ha.fits")["NCOMBINE"]) == 3
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any(
        Path(s["path"]).name == "SYNTH-1_Ha_300s_0002.fits" and "NaN" in s["reason"]
        for s in report["skipped"]
    ), report["skipped"]


def test_nan_filled_calibration_frames_are_left_out_of_their_masters(night, tmp_path, capsys):
    raw = _copy(night, tmp_path / "raw")
    damaged = []
    for kind in ("Bias", "Flat_Ha"):  # a raw frame stacked as it is, and one calibrated first
        frames = sorted(raw.glob(f"{kind}_*.fits"))
        for p in frames:  # float frames, as some capture software writes; the second all NaN
            h = fits.getheader(p)
            data = fits.getdata(p).astype(np.float32) / 65535
            if p == frames[1]:
                data[:] = np.nan
            for k in ("BZERO", "BSCALE"):
                h.remove(k, ignore_missing=True)
            fits.writeto(p, data, h, overwrite=True)
        damaged.append(frames[1].name)
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet")
    assert rc == 0, err
    for name, master in zip(damaged, ("master bias", "master flat Ha")):
        named = [ln for ln in err.splitlines() if name in ln]
        assert len(named) == 1 and f"left out of the {master}" in named[0], err
        assert "every pixel is NaN" in named[0]
    assert fits.getheader(tmp_path / "out" / "masters" / "bias.fits")["NCOMBINE"] == 2
    assert fits.getheader(tmp_path / "out" / "masters" / "flat_Ha.fits")["NCOMBINE"] == 2
    assert fits.getheader(tmp_path / "out" / "masters" / "flat_OIII.fits")["NCOMBINE"] == 3
    assert (tmp_path / "out" / "Ha.fits").exists()
    bias_header = fits.getheader(tmp_path / "out" / "masters" / "bias.fits")
    assert damaged[0] in bias_header["PXLEFT1"] and "PXLEFT2" not in bias_header
    # a forced re-run takes the masters from the cache and says again what they left out
    rc, err = _run(capsys, raw, tmp_path / "out", "--quiet", "--force")
    assert rc == 0, err
    for name, master in zip(damaged, ("master bias", "master flat Ha")):
        named = [ln for ln in err.splitlines() if name in ln]
        assert len(named) == 1 and f"left out of the {master}" in named[0], err


def test_output_folder_inside_the_input_folder(night, tmp_path, capsys):
    """The second run must not take the first run's masters (IMAGETYP 'Master Bias'…) for
    frames of the night: before, it failed on 'frames differ in bit depth'."""
    raw = _copy(night, tmp_path / "raw")
    out = raw / "out"
    rc, err = _run(capsys, raw, out)
    assert rc == 0, err
    assert (out / "masters" / "bias.fits").is_file()
    first = fits.getdata(out / "Ha.fits")
    rc, err = _run(capsys, raw, out, "--force")
    assert rc == 0, err
    assert fits.getheader(out / "masters" / "bias.fits")["NCOMBINE"] == 3
    np.testing.assert_array_equal(fits.getdata(out / "Ha.fits"), first)


def test_a_night_without_bias_frames(night, tmp_path, capsys):
    """CMOS imagers often take no bias: the master dark (of the lights' exposure) holds the
    bias and cannot be scaled to the flats'. Flat darks calibrate the flats; without them
    the run goes on with a warning (before: it stopped on 'give bias=')."""
    raw = _copy(night, tmp_path / "nobias", drop=lambda h: "bias" in _kind(h))
    rc, err = _run(capsys, raw, tmp_path / "out")
    assert rc == 0, err
    assert "no bias and no flat darks" in err
    assert (tmp_path / "out" / "Ha.fits").is_file()
    # flat darks: the biases relabelled (a flat's exposure is short: bias is its dark)
    raw2 = _copy(night, tmp_path / "flatdarks", drop=lambda h: "bias" in _kind(h))
    flat_exps = {  # one per filter here
        fits.getheader(p)["EXPTIME"]
        for p in night.glob("*.fits")
        if "flat" in _kind(fits.getheader(p))
    }
    for p in night.glob("*.fits"):
        with fits.open(p) as hdul:
            if "bias" in _kind(hdul[0].header):
                for e in flat_exps:
                    hdul[0].header["IMAGETYP"] = "DARKFLAT"
                    hdul[0].header["EXPTIME"] = e
                    hdul.writeto(raw2 / f"flatdark_{e:g}s_{p.name}")
    rc, err = _run(capsys, raw2, tmp_path / "out2")
    assert rc == 0, err
    assert "no bias and no flat darks" not in err
    for e in flat_exps:
        name = f"flatdark_{e:g}s.fits"
        assert fits.getheader(tmp_path / "out2" / "masters" / name)["NCOMBINE"] == 3
    # the flat darks took the bias pedestal out of the flats; without them it stays in
    flat = fits.getdata(tmp_path / "out2" / "masters" / "flat_Ha.fits")
    flat_raw = fits.getdata(tmp_path / "out" / "masters" / "flat_Ha.fits")
    pedestal = np.median(  # in pxlang's [0, 1] units (16-bit ADU / 65535)
        [
            np.median(load(str(p)).data)
            for p in night.glob("*.fits")
            if "bias" in _kind(fits.getheader(p))
        ]
    )
    assert np.median(flat_raw) - np.median(flat) == pytest.approx(pedestal, rel=0.1)


def test_flats_of_two_exposures_take_the_flat_dark_of_their_own(night, tmp_path, capsys):
    """One filter's flats in two exposures (a sky-flat session that changed its exposure),
    flat darks of both: each flat is calibrated with the flat dark of its own exposure."""
    raw = _copy(night, tmp_path / "raw", drop=lambda h: "bias" in _kind(h))
    ha_flats = sorted(raw.glob("Flat_Ha_*.fits"))
    exposure = {p.name: (2.0 if k == 0 else 4.0) for k, p in enumerate(ha_flats)}
    for p in ha_flats:
        with fits.open(p, mode="update") as hdul:
            hdul[0].header["EXPTIME"] = exposure[p.name]
    flat_exps = {2.0, 4.0} | {
        fits.getheader(p)["EXPTIME"]
        for p in raw.glob("*.fits")
        if "flat" in _kind(fits.getheader(p))
    }
    for p in night.glob("*.fits"):
        if "bias" not in _kind(fits.getheader(p)):
            continue
        for e in flat_exps:
            with fits.open(p) as hdul:
                h = hdul[0].header
                h["IMAGETYP"], h["EXPTIME"] = "DARKFLAT", e
                # the 4 s flat darks hold more signal: the wrong one would show
                data = hdul[0].data.astype(np.int32) + (400 if e == 4.0 else 0)
                fits.PrimaryHDU(data.astype(np.uint16), h).writeto(raw / f"fd_{e:g}s_{p.name}")
    rc, err = _run(capsys, raw, tmp_path / "out")
    assert rc == 0, err
    assert "no master dark of" not in err, err
    seen = set()
    for p in (tmp_path / "cache" / "frames").glob("Flat_Ha_*.fits"):
        h = fits.getheader(p)
        history = "".join(str(line) for line in h.get("HISTORY", []))
        used = re.search(r"ImageCalibration: .*?dark=(\S+) k=", history)
        assert used, p.name
        t = h["EXPTIME"]
        assert used.group(1) == f"flatdark_{t:g}s.fits" and h["DARKSCAL"] == 1.0, p.name
        seen.add(t)
    assert seen == {2.0, 4.0}


def test_a_frame_without_imagetyp_is_named(night, tmp_path, capsys):
    """Before, a light without IMAGETYP vanished from every set without a word."""
    raw = _copy(night, tmp_path / "raw")
    odd = sorted(raw.glob("SYNTH-1_Ha_*_0002.fits"))[0]
    with fits.open(odd, mode="update") as hdul:
        del hdul[0].header["IMAGETYP"]
    rc, err = _run(capsys, raw, tmp_path / "out")
    assert rc == 0, err
    lines = [x for x in err.splitlines() if "has no IMAGETYP" in x]
    assert len(lines) == 1 and odd.name in lines[0], err  # once, naming the file
    assert fits.getheader(tmp_path / "out" / "Ha.fits")["NCOMBINE"] == 3
