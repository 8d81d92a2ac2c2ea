"""Calibration against known truth: frames built from a bias, dark current, flat and sky."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits import Header

from pxlang.image.frameset import FrameSet
from pxlang.image.store import Image
from pxlang.process import calibration as cal
from pxlang.process import integration as ig

H, W = 64, 72
NOISE = 0.002


def hdr(**kw):
    h = Header()
    for k, v in kw.items():
        h[k.replace("_", "-")] = v
    return h


def truth(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    bias = 0.05 + 0.002 * rng.standard_normal(W)[None, :] + np.zeros((H, W))
    current = np.full((H, W), 2e-5)  # per second
    hot = rng.integers(0, H * W, 20)
    current.flat[hot] = 2e-3
    r2 = ((yy - H / 2) ** 2 + (xx - W / 2) ** 2) / (H / 2) ** 2
    flat = 1.0 - 0.3 * r2
    flat[10:14, 20:24] *= 0.8  # a dust mote
    sky = 0.1 + 0.02 * xx / W
    return [a.astype(np.float32) for a in (bias, current, flat, sky)]


def frames_of(data, **keywords):
    return FrameSet.from_arrays(list(data), headers=[hdr(**keywords) for _ in data])


def test_sky_comes_back_within_the_noise(tmp_path):
    bias, current, flat, sky = truth()
    rng = np.random.default_rng(1)

    def noisy(x, n):
        return (x[None] + rng.normal(0, NOISE, (n, H, W))).astype(np.float32)

    biases = noisy(bias, 30)
    darks = noisy(bias + 300 * current, 20)  # raw darks: they contain the bias
    flats = noisy(bias + 0.5 * flat, 20)
    lights = noisy(bias + 120 * current + sky * flat, 4)
    master_bias = ig.integrate(frames_of(biases, IMAGETYP="Bias"))
    master_dark = ig.integrate(frames_of(darks, IMAGETYP="Dark", EXPTIME=300.0))
    assert cal.contains_bias(master_dark.header)
    flat_cal = cal.calibrate(frames_of(flats, IMAGETYP="Flat"), bias=master_bias,
                             cache_dir=str(tmp_path / "c"))  # fmt: skip
    master_flat = ig.integrate(flat_cal, normalization="multiplicative")
    assert master_flat.header["BIASSUB"] is True
    out = cal.calibrate(
        frames_of(lights, IMAGETYP="Light", EXPTIME=120.0),
        bias=master_bias,
        dark=master_dark,
        flat=master_flat,
        cache_dir=str(tmp_path / "c2"),
    )
    assert isinstance(out, FrameSet) and len(out) == 4
    assert len(os.listdir(tmp_path / "c")) == 20  # the flats were streamed from the cache
    assert not (tmp_path / "c2").exists()  # lazy: nothing computed yet
    expected = sky * flat.mean()  # the flat is normalised to its mean
    for i in range(4):
        img = out.read(i)
        resid = img.data - expected
        # noise of one light plus the masters', amplified a little by the flat
        assert np.std(resid) < 1.6 * NOISE
        assert abs(np.mean(resid)) < 3 * NOISE / np.sqrt(H * W) + 2e-4
        assert img.header["CALSTAT"] == "BDF"
        assert img.header["DARKSCAL"] == pytest.approx(0.4)
    # hot pixels are gone with the dark: their residuals look like the rest
    assert np.abs(out.read(0).data - expected).max() < 8 * NOISE


def test_dark_scaling_is_exact():
    bias, current, _, _ = truth()
    lights = np.stack([bias + t * current for t in (60.0, 120.0, 600.0)])
    headers = [hdr(EXPTIME=t) for t in (60.0, 120.0, 600.0)]
    fs = FrameSet.from_arrays(list(lights), headers=headers)
    dark = Image(bias + 300 * current, hdr(EXPTIME=300.0, IMAGETYP="Master Dark"))
    out = cal.calibrate(fs, bias=Image(bias, hdr(IMAGETYP="Master Bias")), dark=dark)
    for i in range(3):
        np.testing.assert_allclose(out.read(i).data, 0.0, atol=2e-7)
    # a bias-subtracted dark (BIASSUB) is scaled as it is
    dark_c = Image(300 * current, hdr(EXPTIME=300.0, BIASSUB=True))
    out = cal.calibrate(fs, bias=Image(bias, hdr()), dark=dark_c)
    for i in range(3):
        np.testing.assert_allclose(out.read(i).data, 0.0, atol=2e-7)


def test_bias_is_not_subtracted_twice():
    bias, current, _, sky = truth()
    light = bias + 120 * current + sky
    fs = frames_of([light], EXPTIME=120.0)
    dark = Image(bias + 120 * current, hdr(EXPTIME=120.0))  # contains the bias
    for b in (None, Image(bias, hdr())):
        out = cal.calibrate(fs, bias=b, dark=dark).read(0)
        np.testing.assert_allclose(out.data, sky, atol=1e-6)
    # another exposure: the dark must lose its bias to scale, which needs the bias
    fs2 = frames_of([light], EXPTIME=60.0)
    with pytest.raises(cal.CalibrationError, match="still contains the bias.*give bias="):
        cal.calibrate(fs2, dark=dark)


def test_dark_optimisation_finds_the_scale():
    rng = np.random.default_rng(3)
    dark_signal = rng.gamma(2.0, 0.01, (H, W)).astype(np.float32)  # a strong fixed pattern
    light = 0.2 + 0.7 * dark_signal + rng.normal(0, 0.0005, (H, W)).astype(np.float32)
    fs = frames_of([light], EXPTIME=100.0)
    dark = Image(dark_signal, hdr(EXPTIME=100.0, BIASSUB=True))
    out = cal.calibrate(fs, dark=dark, dark_optimize=True).read(0)
    assert out.header["DARKSCAL"] == pytest.approx(0.7, abs=0.02)
    plain = cal.calibrate(fs, dark=dark).read(0)
    assert plain.header["DARKSCAL"] == 1.0


def test_cfa_flat_is_normalised_per_colour():
    flat = np.empty((8, 8), np.float32)
    flat[0::2, 0::2] = 0.6  # R of RGGB
    flat[0::2, 1::2] = 0.9  # G
    flat[1::2, 0::2] = 0.9  # G
    flat[1::2, 1::2] = 0.3  # B
    flat[2, 2] = 0.5  # a darker R site
    n = cal.normalise_flat(flat, "RGGB")
    r = n[0::2, 0::2]
    assert r.mean() == pytest.approx(1.0) and n[1::2, 1::2].mean() == pytest.approx(1.0)
    assert n[0::2, 1::2].mean() == pytest.approx(1.0)
    assert n[2, 2] < 1.0
    mono = cal.normalise_flat(flat)
    assert mono.mean() == pytest.approx(1.0)


def test_bad_masters_are_refused(tmp_path):
    bias, current, flat, sky = truth()
    fs = frames_of([sky], EXPTIME=60.0)
    small = Image(np.zeros((10, 10), np.float32), hdr(), path=str(tmp_path / "small.fits"))
    with pytest.raises(cal.CalibrationError, match=r"small\.fits' is 10x10 but the frames"):
        cal.calibrate(fs, dark=small)
    osc = Image(flat, hdr(BAYERPAT="RGGB"), path=str(tmp_path / "oscflat.fits"))
    with pytest.raises(cal.CalibrationError, match=r"oscflat\.fits' is a colour .*mono"):
        cal.calibrate(fs, flat=osc)
    nan = Image(np.full((H, W), np.nan, np.float32), hdr(), path="nan.fits")
    with pytest.raises(cal.CalibrationError, match="nan.fits' holds no data"):
        cal.calibrate(fs, bias=nan)
    warnings = []
    cold_dark = Image(
        current * 60, hdr(EXPTIME=60.0, CCD_TEMP=-10.0, GAIN=100, BIASSUB=True), path="d.fits"
    )
    warm = FrameSet.from_arrays([sky], headers=[hdr(EXPTIME=60.0, CCD_TEMP=2.0, GAIN=120)])
    cal.calibrate(warm, bias=Image(bias, hdr()), dark=cold_dark, warn=warnings.append)
    text = " ".join(warnings)
    assert "GAIN=100 but the frames have GAIN=120" in text
    assert "-10 C but the frames at 2 C" in text


def test_output_is_written_only_when_asked_and_atomically(tmp_path, monkeypatch):
    bias, _, _, sky = truth()
    src = tmp_path / "lights"
    src.mkdir()
    for i in range(3):
        fits.PrimaryHDU(sky + bias, header=hdr(EXPTIME=10.0, IMAGETYP="LIGHT")).writeto(
            src / f"l{i}.fits"
        )
    fs = FrameSet.from_paths([str(src / f"l{i}.fits") for i in range(3)])
    cache = tmp_path / "cache"
    lazy = cal.calibrate(fs, bias=Image(bias, hdr()), cache_dir=str(cache))
    assert not cache.exists()  # nothing computed yet
    np.testing.assert_allclose(lazy.read_rows(1, 5, 9), sky[5:9], atol=1e-6)
    assert len(os.listdir(cache)) == 1  # only the frame read through bands is cached
    out_dir = tmp_path / "cal"
    done = cal.calibrate(fs, bias=Image(bias, hdr()), output=str(out_dir))
    assert sorted(os.listdir(out_dir)) == ["l0_c.fits", "l1_c.fits", "l2_c.fits"]
    np.testing.assert_allclose(done.read(2).data, sky, atol=1e-6)
    # an error part way (here: the third write fails) leaves nothing behind
    from pxlang.image import io

    real_save = io.save
    calls = []

    def failing_save(img, path, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_save(img, path, **kw)

    monkeypatch.setattr(io, "save", failing_save)
    bad = tmp_path / "bad"
    with pytest.raises(OSError, match="disk full"):
        cal.calibrate(fs, bias=Image(bias, hdr()), output=str(bad))
    assert len(calls) == 3 and os.listdir(bad) == []
    # a truncated frame is caught when its header is read, before anything is computed
    raw = (src / "l2.fits").read_bytes()
    (src / "l2.fits").write_bytes(raw[: 2880 + 100])
    with pytest.raises(Exception, match=r"l2\.fits.*truncated"):
        cal.calibrate(FrameSet.from_paths([str(src / "l2.fits")]), bias=Image(bias, hdr()))


def test_colour_flat_is_normalised_per_channel():
    flat = np.stack([np.full((4, 4), v, np.float32) for v in (0.2, 0.5, 0.8)])
    flat[1, 0, 0] = 0.25
    n = cal.normalise_flat(flat)
    assert n.shape == (3, 4, 4)
    for c in range(3):
        assert n[c].mean() == pytest.approx(1.0)
    assert n[1, 0, 0] < 0.6


def test_frames_and_masters_on_different_scales_are_refused():
    # float frames in camera units (0–65535) with masters read from integer files ([0, 1]):
    # the bias would be ~65535× too small and change nothing; the other way round, the
    # frames would go far below zero. Either is refused, naming the frame and the master.
    bias, current, flat, sky = truth()
    adu = frames_of([(sky + bias) * 65535.0], EXPTIME=60.0)
    master = Image(bias, hdr(IMAGETYP="Master Bias"), path="bias.fits")
    with pytest.raises(cal.CalibrationError, match=r"is in camera units \(0–65535\) \(median "):
        cal.calibrate(adu, bias=master).read(0)
    with pytest.raises(cal.CalibrationError, match=r"but master bias 'bias.fits' is in \[0, 1\]"):
        cal.calibrate(adu, bias=master).read(0)
    unit = frames_of([sky + bias], EXPTIME=60.0)
    big_dark = Image((bias + current * 60) * 65535.0, hdr(EXPTIME=60.0), path="dark.fits")
    with pytest.raises(cal.CalibrationError, match=r"is in \[0, 1\] .* master dark 'dark.fits'"):
        cal.calibrate(unit, dark=big_dark).read(0)
    # the same scale on both sides calibrates, in either unit; a bias-free dark (median ~0)
    # says nothing of its scale and is not checked
    ok = cal.calibrate(adu, bias=Image(bias * 65535.0, hdr())).read(0).data
    np.testing.assert_allclose(ok, sky * 65535.0, rtol=1e-5)
    cal.calibrate(unit, bias=master).read(0)
    free = Image(current * 60 * 65535.0, hdr(EXPTIME=60.0, BIASSUB=True), path="d.fits")
    cal.calibrate(frames_of([sky * 65535.0], EXPTIME=60.0), dark=free).read(0)


@pytest.mark.parametrize("shape", [(300, 41), (3, 300, 41)])
def test_calibrate_array_by_row_blocks_is_the_formula(shape):
    # 300 rows: blocks of 128 with a short last one; every pixel as the whole-frame formula
    rng = np.random.default_rng(len(shape))
    frame = rng.random(shape).astype(np.float32)
    bias = (0.1 * rng.random(shape[-2:])).astype(np.float32)
    dark = (0.05 * rng.random(shape)).astype(np.float32)
    flat = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    flat[..., 7, 3] = 0.0
    flat[..., 250, 40] = 0.0
    got = cal.calibrate_array(frame, bias, dark, flat, k=1.7, pedestal=0.003)
    bad = flat <= 1e-6
    want = (frame - bias - np.float32(1.7) * dark) / np.where(bad, 1, flat) + np.float32(0.003)
    want[bad] = 0.003
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert got.dtype == np.float32 and got.shape == shape


@pytest.mark.parametrize(
    "shape, bayer", [((301, 257), None), ((301, 257), "GBRG"), ((3, 120, 90), None)]
)
def test_flat_and_dark_computed_by_blocks_are_the_whole_ones(shape, bayer):
    """The flat normalised and the dark bias-subtracted for the rows asked for (what the
    calibration holds instead of whole copies) are the whole arrays' values, whatever row
    and column a block starts at (odd ones too: the CFA parity is the block's own)."""
    rng = np.random.default_rng(11)
    flat = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    flat[..., ::2, 1::2] *= 2.0  # one CFA colour brighter: its own mean
    whole = cal.normalise_flat(flat, bayer)
    # the whole normalisation, written out: each colour / channel over its own mean
    ref = np.empty_like(flat)
    if flat.ndim == 3:
        for c in range(3):
            ref[c] = flat[c] / np.float32(np.nanmean(flat[c]))
    elif bayer is None:
        ref = flat / np.float32(np.nanmean(flat))
    else:
        for sites in cal.cfa_sites(bayer).values():
            vals = np.concatenate([flat[r::2, c::2].ravel() for r, c in sites])
            for r, c in sites:
                ref[r::2, c::2] = flat[r::2, c::2] / np.float32(np.nanmean(vals))
    np.testing.assert_array_equal(whole, ref)
    lazy = cal.NormalisedFlat(flat, bayer)
    dark = rng.random(shape).astype(np.float32)
    bias = rng.random(shape[-2:]).astype(np.float32)
    free = cal.BiasFreeDark(dark, bias)
    assert lazy.shape == flat.shape and free.shape == dark.shape
    for r0, r1, c0, c1 in ((0, 128, 0, None), (128, 256, 0, None), (7, 60, 3, 81), (1, 2, 1, 2)):
        index = (..., slice(r0, r1), slice(c0, c1))
        np.testing.assert_array_equal(lazy[index], whole[index])
        np.testing.assert_array_equal(free[index], (dark - bias)[index])
