"""Integration against known truth: synthetic Gaussian frames with injected outliers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from pxlang.image.frameset import FrameSet, files
from pxlang.lang.errors import PxIOError
from pxlang.process import integration as ig
from pxlang.process import rejection as rj

SIGMA = 0.01
SKY = 0.2


def sky_truth(h=96, w=80):
    yy, xx = np.mgrid[0:h, 0:w]
    truth = SKY + 0.05 * xx / w + 0.02 * yy / h
    truth[40:44, 30:34] += 0.3  # a "star"
    return truth.astype(np.float32)


def noisy_frames(n, truth, seed=0):
    rng = np.random.default_rng(seed)
    return (truth[None] + rng.normal(0, SIGMA, (n,) + truth.shape)).astype(np.float32)


def inject_outliers(frames, seed=1):
    """Cosmic rays, (dithered) hot pixels and a satellite trail, at most one per pixel stack
    (as in real data); returns their mask."""
    rng = np.random.default_rng(seed)
    n, h, w = frames.shape
    mask = np.zeros((h, w), bool)
    t = n // 2
    for x in range(w):  # a satellite trail, 2 pixels wide, in one frame
        y = int(10 + 0.6 * x)
        if y + 1 < h:
            frames[t, y : y + 2, x] += 0.4
            mask[y : y + 2, x] = True
    # free pixels (with a free pixel below, for elongated cosmic rays), shuffled
    free = np.flatnonzero(~mask[:-1] & ~mask[1:])
    picks = iter(rng.permutation(free))
    for i in range(n):
        for _ in range(6):  # cosmic rays, a little elongated
            y, x = divmod(int(next(picks)), w)
            while mask[y, x] or mask[y + 1, x]:
                y, x = divmod(int(next(picks)), w)
            frames[i, y, x] += rng.uniform(0.2, 0.8)
            frames[i, y + 1, x] += 0.1
            mask[y, x] = mask[y + 1, x] = True
        for _ in range(3):  # hot pixels, elsewhere in each dithered frame
            y, x = divmod(int(next(picks)), w)
            while mask[y, x]:
                y, x = divmod(int(next(picks)), w)
            frames[i, y, x] = 1.0
            mask[y, x] = True
    return mask


def write_frames(folder, frames, **keywords):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        hdu = fits.PrimaryHDU(f)
        hdu.header["DATE-OBS"] = f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}"
        for k, v in keywords.items():
            hdu.header[k] = v
        p = os.path.join(folder, f"f{i:03d}.fits")
        hdu.writeto(p)
        paths.append(p)
    return paths


@pytest.mark.parametrize(
    "method", ["sigma", "averaged_sigma", "winsorized", "linear_fit", "esd", "percentile"]
)
def test_outliers_are_rejected(method):
    truth = sky_truth()
    n = 5 if method == "percentile" else 20
    frames = noisy_frames(n, truth)
    mask = inject_outliers(frames)
    master = ig.integrate(frames, rejection=method)
    err = master.data - truth
    # every injected outlier is gone: the error there is like anywhere else
    assert np.abs(err[mask]).max() < 5 * SIGMA / np.sqrt(n - 2)
    plain = frames.mean(axis=0) - truth
    assert np.abs(plain[mask]).max() > 10 * SIGMA / np.sqrt(n)  # (they were there)


@pytest.mark.parametrize("method", ["none", "sigma", "winsorized"])
def test_noise_of_average_is_sigma_over_sqrt_n(method):
    truth = np.full((160, 160), SKY, np.float32)
    n = 20
    frames = noisy_frames(n, truth, seed=4)
    master = ig.integrate(frames, rejection=method)
    measured = float(np.std(master.data - truth))
    expected = SIGMA / np.sqrt(n)
    assert abs(measured / expected - 1) < 0.05
    assert master.header["NOISEEST"] == pytest.approx(expected, rel=0.1)


@pytest.mark.parametrize("method", ["winsorized", "averaged_sigma"])
def test_streaming_bands_equal_one_band(tmp_path, method):
    truth = sky_truth()
    frames = noisy_frames(12, truth, seed=2)
    inject_outliers(frames)
    paths = write_frames(str(tmp_path / "f"), frames, IMAGETYP="LIGHT")
    fs = FrameSet.from_paths(paths)
    whole = ig.integrate(fs, rejection=method, memory=1 << 30)
    tiny = ig.integrate(fs, rejection=method, memory=2 * 12 * 80 * 4 * 7)  # 7 rows
    assert ig.band_rows(12, truth.shape, 2 * 12 * 80 * 4 * 7) == 7
    # by default bands also stop at BAND_ROWS: 19 frames of 1024² in 64-row bands (10 MB)
    # instead of the 431 rows a 64 MB budget holds
    assert ig.band_rows(19, (1024, 1024), 64 << 20) == 431
    assert ig.band_rows(19, (1024, 1024), 64 << 20, ig.BAND_ROWS) == 64
    assert ig.band_rows(19, (40, 1000), 64 << 20, ig.BAND_ROWS) == 40  # no more than the frame
    np.testing.assert_array_equal(whole.data, tiny.data)
    direct = ig.integrate(frames, rejection=method)
    np.testing.assert_allclose(whole.data, direct.data, atol=1e-7)
    if method == "averaged_sigma":
        # one noise constant for the image, whatever the bands: the whole-stack estimate
        k = rj.estimate_poisson_k(frames)
        assert whole.header["PXPOISK"] == tiny.header["PXPOISK"] == pytest.approx(k, 1e-5)
        single, *_ = rj.integrate_band(frames, method=method, poisson_k=k)
        np.testing.assert_allclose(whole.data, single, atol=1e-7)


def test_averaged_sigma_samples_rows_of_big_images(monkeypatch):
    rows = ig.sample_rows(1000, 100, 5000)  # 50 rows: four blocks of 16 consecutive rows
    blocks = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    assert [b.size for b in blocks] == [16] * 4
    assert [b[0] for b in blocks] == [123, 369, 615, 861]  # evenly spread, centred
    assert ig._runs(rows) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert ig._runs(np.array([3, 4, 5, 9, 11, 12])) == [(0, 3), (3, 4), (4, 6)]
    assert np.array_equal(ig.sample_rows(40, 100, 5000), np.arange(40))  # small: all rows
    assert np.array_equal(ig.sample_rows(40, 100, 300), np.array([18, 19, 20]))
    truth = sky_truth(h=200)
    frames = noisy_frames(8, truth, seed=6)
    mask = inject_outliers(frames)
    monkeypatch.setattr(ig, "POISSON_SAMPLE", 80 * 20)  # 20 of the 200 rows
    master = ig.integrate(frames, rejection="averaged_sigma", memory=2 * 8 * 80 * 4 * 6)
    k_all = rj.estimate_poisson_k(frames)
    assert master.header["PXPOISK"] == pytest.approx(k_all, rel=0.05)
    assert master.header["PXPOISK"] != pytest.approx(k_all, rel=1e-6)  # (a sample)
    assert np.abs(master.data - truth)[mask].max() < 5 * SIGMA / np.sqrt(7)


def test_header_records_the_integration(tmp_path):
    frames = noisy_frames(8, sky_truth(), seed=3)
    inject_outliers(frames)
    paths = write_frames(str(tmp_path / "b"), frames, IMAGETYP="Bias Frame", EXPTIME=0.001)
    master = ig.integrate(files(str(tmp_path / "b")))
    h = master.header
    assert h["IMAGETYP"] == "Master Bias"
    assert h["NCOMBINE"] == 8 and h["PXREJECT"] == "averaged_sigma"  # 7-14 frames
    assert (h["PXREJLO"], h["PXREJHI"]) == (4.0, 3.0)
    assert h["PXCOMB"] == "average" and h["PXNORM"] == "none"
    assert h["REJHIPCT"] >= 0 and h["REJLOPCT"] >= 0
    assert any("ImageIntegration" in str(v) for v in h["HISTORY"])
    assert len(paths) == 8
    # percentages are those of the rejection counts
    frames = noisy_frames(16, sky_truth(), seed=3)
    inject_outliers(frames)
    h = ig.integrate(frames).header
    _, nl, nh, nv = rj.integrate_band(frames, method="winsorized")
    assert h["PXREJECT"] == "winsorized"
    assert h["REJHIPCT"] == pytest.approx(100 * nh.sum() / nv.sum(), abs=1e-4)
    assert h["REJLOPCT"] == pytest.approx(100 * nl.sum() / nv.sum(), abs=1e-4)
    assert h["REJHIPCT"] > 0.5


def test_rejection_maps():
    truth = sky_truth()
    frames = noisy_frames(16, truth, seed=5)
    frames[3, 5, 7] = 0.9
    frames[6, 8, 9] = -0.5
    master, low, high = ig.integrate(frames, rejection="sigma", low=3, maps=True)
    assert high.data[5, 7] == low.data[8, 9] == pytest.approx(1 / 16)
    _, nl, nh, _ = rj.integrate_band(frames, method="sigma", low=3)
    np.testing.assert_allclose(high.data, nh / 16.0)
    np.testing.assert_allclose(low.data, nl / 16.0)


def test_normalizations_bring_frames_to_the_reference():
    rng = np.random.default_rng(9)
    base = rng.normal(0.3, 0.02, (64, 64)).astype(np.float32)
    gains = np.array([1.0, 1.2, 0.8, 1.1])
    offs = np.array([0.0, 0.05, -0.02, 0.1])
    frames = np.stack([base * g + o for g, o in zip(gains, offs)]).astype(np.float32)
    # frames are exact affine copies: additive+scaling maps each onto frame 0
    out = ig.integrate(frames, rejection="none", normalization="additive_scaling")
    np.testing.assert_allclose(out.data, base, atol=2e-5)
    # multiplicative: exact when the offsets are zero
    frames_m = np.stack([base * g for g in gains]).astype(np.float32)
    out = ig.integrate(frames_m, rejection="none", normalization="multiplicative")
    np.testing.assert_allclose(out.data, base, rtol=1e-5)
    # additive: exact for offsets only
    frames_a = np.stack([base + o for o in offs]).astype(np.float32)
    out = ig.integrate(frames_a, rejection="none", normalization="additive")
    np.testing.assert_allclose(out.data, base, atol=1e-6)
    with pytest.raises(ValueError, match="local normalisation"):
        ig.integrate(frames, normalization="local")
    # additive and multiplicative need only the frames' medians (no dispersion or noise);
    # the same set normalized with scaling afterwards gets the rest, the median unchanged
    fs = FrameSet.from_arrays(list(frames_m))
    ig.integrate(fs, rejection="none", normalization="multiplicative")
    assert "location" in fs.frames[1].meta and "scale" not in fs.frames[1].meta
    location = fs.frames[1].meta["location"]
    ig.integrate(fs, rejection="none", normalization="multiplicative_scaling")
    assert fs.frames[1].meta["location"] == location and fs.frames[1].meta["scale"] > 0
    assert location == pytest.approx(float(np.median(frames_m[1])), rel=1e-6)


def test_weights(tmp_path):
    truth = np.full((32, 32), SKY, np.float32)
    frames = noisy_frames(6, truth, seed=11)
    exps = [60, 60, 120, 120, 300, 300]
    paths = []
    for i, f in enumerate(frames):
        hdu = fits.PrimaryHDU(f)
        hdu.header["EXPTIME"] = exps[i]
        hdu.header["MYWEIGHT"] = i + 1
        hdu.header["DATE-OBS"] = f"2026-01-0{i + 1}T00:00:00"
        paths.append(str(tmp_path / f"w{i}.fits"))
        hdu.writeto(paths[-1])
    fs = FrameSet.from_paths(paths)
    for weights, w in (("exposure", exps), ("MYWEIGHT", range(1, 7))):
        out = ig.integrate(fs, rejection="none", weights=weights)
        w = np.asarray(w, float)
        np.testing.assert_allclose(out.data, (frames * w[:, None, None]).sum(0) / w.sum(), 1e-5)
    for i, f in enumerate(fs.frames):
        f.meta["weight"] = 2.0**i
    out = ig.integrate(fs, rejection="none", weights="meta")
    w = 2.0 ** np.arange(6)
    np.testing.assert_allclose(out.data, (frames * w[:, None, None]).sum(0) / w.sum(), 1e-5)
    # noise weights favour the quieter frame
    quiet_noisy = np.stack([truth + 0.001 * frames[0], truth + 10 * (frames[1] - truth)])
    out = ig.integrate(quiet_noisy.astype(np.float32), rejection="none", weights="noise")
    assert np.std(out.data - truth) < 0.2 * np.std(quiet_noisy[1] - truth)
    with pytest.raises(ValueError, match="SNRWeight"):
        ig.integrate(fs, weights="SNRWeight")


def test_colour_frames():
    rng = np.random.default_rng(1)
    truth = np.stack([np.full((20, 24), v, np.float32) for v in (0.1, 0.2, 0.3)])
    frames = (truth[None] + rng.normal(0, SIGMA, (9, 3, 20, 24))).astype(np.float32)
    frames[4, 1, 3, 3] = 1.0
    out = ig.integrate(list(frames), rejection="sigma")
    assert out.shape == (3, 20, 24)
    assert abs(out.data[1, 3, 3] - 0.2) < 4 * SIGMA / np.sqrt(8)


def test_bad_inputs(tmp_path):
    good = np.full((16, 16), 0.1, np.float32)
    d = tmp_path / "mixed"
    d.mkdir()
    fits.PrimaryHDU(good).writeto(d / "a.fits")
    fits.PrimaryHDU(np.zeros((16, 20), np.float32)).writeto(d / "b.fits")
    with pytest.raises(PxIOError, match=r"b\.fits' is 20x16"):
        ig.integrate(files(str(d)))
    d2 = tmp_path / "bits"
    d2.mkdir()
    fits.PrimaryHDU(good).writeto(d2 / "a.fits")
    fits.PrimaryHDU(np.zeros((16, 16), np.uint8)).writeto(d2 / "b.fits")
    with pytest.raises(PxIOError, match=r"b\.fits' has BITPIX 8"):
        ig.integrate(files(str(d2)))
    d3 = tmp_path / "nan"
    d3.mkdir()
    fits.PrimaryHDU(good).writeto(d3 / "a.fits")
    fits.PrimaryHDU(np.full((16, 16), np.nan, np.float32)).writeto(d3 / "b.fits")
    with pytest.raises(ValueError, match=r"b\.fits' holds no data"):
        ig.integrate(files(str(d3)))
    d4 = tmp_path / "trunc"
    d4.mkdir()
    fits.PrimaryHDU(good).writeto(d4 / "a.fits")
    fits.PrimaryHDU(good).writeto(d4 / "b.fits")
    raw = (d4 / "b.fits").read_bytes()
    (d4 / "b.fits").write_bytes(raw[: 2880 + 500])  # header + half the pixels
    # a truncated file is left out of the set, named in a warning (one bad file of a night)
    warned = []
    fs = files(str(d4), warn=warned.append)
    assert [os.path.basename(fs.name(i)) for i in range(len(fs))] == ["a.fits"]
    assert len(warned) == 1 and "b.fits" in warned[0] and "truncated" in warned[0]
    np.testing.assert_allclose(ig.integrate(fs).data, good)
    (d4 / "a.fits").write_bytes(raw[:3000])  # every file unreadable: the error names one
    with pytest.raises(PxIOError, match=r"fits.*truncated"):
        files(str(d4), warn=warned.append)
    with pytest.raises(PxIOError, match="no image files match"):
        files(str(tmp_path / "nothing*.fits"))
    with pytest.raises(ValueError, match="unknown combine"):
        ig.integrate([good, good], combine="mean")
