"""Registered frames hold no data outside their footprint: integrate() must not average the
empty border in (PixInsight's masters keep their full brightness up to the edge), and the
scale and noise of a registered frame are measured before interpolation smoothed it."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from pxlang.builtins import align as A
from pxlang.builtins.preprocess import integrate
from pxlang.image.frameset import files
from pxlang.lang.functions import CallContext
from pxlang.process.normalize_global import noise_estimate
from pxlang.process.stars import render_stars

S, SKY, NOISE = 128, 0.1, 0.004
# (dx, dy) of each frame: whole pixels to uncover borders, halves to smooth the noise
SHIFTS = [(0.0, 0.0), (5.5, 0.0), (-4.5, 3.5), (0.5, -6.5), (6.5, 5.5), (-5.5, -4.5)]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    d = tmp_path_factory.mktemp("footprint") / "lights"
    d.mkdir()
    rng = np.random.default_rng(11)
    xs, ys = rng.uniform(12, S - 12, (2, 25))
    flux = 10 ** rng.uniform(0.5, 1.3, 25)
    for i, (dx, dy) in enumerate(SHIFTS):
        img = render_stars((S, S), xs + dx, ys + dy, flux, 2.5, oversample=5) + SKY
        data = (img + rng.normal(0, NOISE, img.shape)).astype(np.float32)
        h = fits.Header()
        h["IMAGETYP"], h["EXPTIME"] = "Light", 60.0
        fits.PrimaryHDU(data, h).writeto(d / f"f{i}.fits")
    return d


def ctx_for(d):
    return CallContext(
        base_dir=str(d), warn=print, options={"cache_dir": str(d.parent / "cache"), "quiet": True}
    )


def test_master_keeps_its_brightness_to_the_edge(night):
    ctx = ctx_for(night)
    reg = A.register(ctx, files(str(night)), reference=1)
    assert len(reg) == len(SHIFTS)
    # outside its footprint a registered frame holds no value (NaN), not a dark 0
    f1 = reg.read(1).data
    assert np.isnan(f1[:, -4:]).all() and np.isfinite(f1[:, :-10]).all()  # moved 5.5 px left
    master = integrate(ctx, reg, rejection="none")
    data = master.data
    assert np.isfinite(data).all()
    # the 7 columns and rows at each border are covered by fewer frames: the sky there is
    # the sky (an average with empty pixels would be 1/6 to 1/2 darker)
    for edge in (data[:, :7], data[:, -7:], data[:7], data[-7:]):
        assert abs(np.median(edge) - SKY) < 3 * NOISE / np.sqrt(len(edge.ravel()) / 2) + 0.001
    assert abs(np.median(data[20:-20, 20:-20]) - SKY) < 0.001
    # empty pixels are not counted as rejected
    clipped = integrate(ctx, reg)
    assert clipped.header["REJLOPCT"] < 1.0


def test_registered_frames_are_scaled_by_their_signal_not_their_dither(night):
    ctx = ctx_for(night)
    reg = A.register(ctx, files(str(night)), reference=1)
    assert len(reg) == len(SHIFTS)
    integrate(ctx, reg, normalization="additive_scaling", weights="noise", rejection="none")
    scale = np.array([f.meta["scale"] for f in reg.frames])
    noise = np.array([f.meta["noise"] for f in reg.frames])
    # every frame has the same noise before registration; a half-pixel Lanczos shift
    # lowers the measured one by ~20 %, so measured afterwards these would spread as much
    assert np.ptp(noise) / noise.mean() < 0.05
    assert np.ptp(scale) / scale.mean() < 0.05
    # the effect avoided is there: measured on the registered pixels, frame 2 (a half-pixel
    # shift both ways) shows less noise than the reference
    smoothed = [noise_estimate(reg.read(i).data[20:-20, 20:-20]) for i in (0, 2)]
    assert smoothed[1] < 0.85 * smoothed[0]


def test_pixels_no_frame_covers_are_zero():
    from pxlang.process.integration import integrate as integrate_frames

    rng = np.random.default_rng(2)
    frames = rng.normal(1.0, 0.01, (5, 16, 16)).astype(np.float32)
    frames[:, :2, :3] = np.nan  # outside every footprint
    frames[1:, 5, 5] = np.nan  # covered by one frame only
    master = integrate_frames(frames, rejection="none").data
    assert (master[:2, :3] == 0).all()
    assert master[5, 5] == frames[0, 5, 5]
    assert abs(master[8:, 8:].mean() - 1.0) < 0.005
