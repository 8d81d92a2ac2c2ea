"""drizzle(..., integration=master): the rejection of the preceding integration (per-frame
maps recorded by integrate() of registered frames) keeps a satellite trail and cosmic rays
out of the drizzled image, as PixInsight's DrizzleIntegration reads the .xdrz files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from pxlang.builtins import align as A
from pxlang.builtins.preprocess import _frame_map_path, integrate
from pxlang.image.frameset import files
from pxlang.lang.errors import PxProcessError
from pxlang.lang.functions import CallContext
from pxlang.process.integration import read_frame_map
from pxlang.process.stars import render_stars
from pxlang.synthetic.night import make_night

S, N, SKY = 128, 8, 0.1
TRAIL_FRAME, COSMIC_FRAME = 3, 5
COSMICS = [(50, 70), (90, 20), (30, 100)]  # (y, x) in the frame


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Dithered frames of a known star field written twice: clean, and with a satellite
    trail in one frame and cosmic rays in another. Returns (folder, stars, trail)."""
    d = tmp_path_factory.mktemp("drizzle_rejection")
    rng = np.random.default_rng(5)
    xs, ys = rng.uniform(10, S - 10, (2, 60))
    flux = 10 ** rng.uniform(0.3, 1.3, 60)
    yy, xx = np.mgrid[0:S, 0:S]
    trail = (0.5 * np.exp(-0.5 * ((yy - (0.3 * xx + 30)) / 0.8) ** 2)).astype(np.float32)
    for i in range(N):
        dx, dy = (0.0, 0.0) if i == 0 else rng.uniform(-3, 3, 2)
        img = render_stars((S, S), xs + dx, ys + dy, flux, 1.6, oversample=9) + SKY
        clean = (img + rng.normal(0, 0.002, img.shape)).astype(np.float32)
        bad = clean.copy()
        if i == TRAIL_FRAME:
            bad += trail
        if i == COSMIC_FRAME:
            for y, x in COSMICS:
                bad[y, x] += 3.0
        for folder, data in (("clean", clean), ("bad", bad)):
            (d / folder).mkdir(exist_ok=True)
            h = fits.Header()
            h["IMAGETYP"], h["EXPTIME"] = "Light", 60.0
            h["DATE-OBS"] = f"2026-03-01T22:{i:02d}:00"
            fits.PrimaryHDU(data, h).writeto(d / folder / f"f{i:02d}.fits")
    return d, (xs, ys, flux), trail


def ctx_for(d, warns):
    return CallContext(
        base_dir=str(d), warn=warns.append, options={"cache_dir": str(d / "cache"), "quiet": True}
    )


def background(shape_out, stars, margin=8):
    """Output pixels well away from every star and the borders."""
    from scipy.ndimage import binary_dilation

    xs, ys, flux = stars
    model = render_stars(shape_out, xs * 2 + 0.5, ys * 2 + 0.5, flux, 3.2, oversample=3)
    bg = ~binary_dilation(model > 0.01, iterations=3)
    bg[:margin] = bg[-margin:] = False
    bg[:, :margin] = bg[:, -margin:] = False
    return bg


def test_drizzle_applies_the_integration_rejection(stack):
    d, stars, trail = stack
    warns: list[str] = []
    ctx = ctx_for(d, warns)
    reference = A.drizzle(ctx, A.register(ctx, files(str(d / "clean")), reference=1), scale=2)
    reg = A.register(ctx, files(str(d / "bad")), reference=1)
    master = integrate(ctx, reg)  # averaged sigma clipping (8 frames)
    assert master.header["PXREJECT"] == "averaged_sigma" and master.header["PXREJKEY"]
    plain = A.drizzle(ctx, reg, scale=2, pixfrac=0.9)
    cleaned = A.drizzle(ctx, reg, scale=2, pixfrac=0.9, integration=master)
    assert not warns
    assert "the integration's rejection applied to 8 frames" in str(cleaned.header["HISTORY"])
    # the drizzled master carries the integration's figures
    assert cleaned.header["IMAGETYP"] == "Master Light" and cleaned.header["TOTALEXP"] == 8 * 60
    assert cleaned.header["REJHIPCT"] == master.header["REJHIPCT"]
    assert cleaned.header["NOISEEST"] != master.header["NOISEEST"]  # the drizzled image's own

    bg = background(plain.shape, stars)
    # the trail, where it lands in the output grid (the trail frame's dither is small)
    tr = reg.frames[TRAIL_FRAME].meta["transform"]
    ty, tx = np.nonzero(trail > 0.25)
    rx, ry = tr.forward(np.column_stack([tx, ty]).astype(float)).T
    oy = np.clip(np.rint(ry * 2 + 0.5).astype(int), 0, 2 * S - 1)
    ox = np.clip(np.rint(rx * 2 + 0.5).astype(int), 0, 2 * S - 1)
    on_trail = np.zeros(plain.shape, bool)
    on_trail[oy, ox] = True
    on_trail &= bg
    assert on_trail.sum() > 50
    err_plain = np.abs(plain.data - reference.data)
    err_clean = np.abs(cleaned.data - reference.data)
    assert err_plain[on_trail].max() > 0.05  # without rejection the trail is there
    assert err_clean[on_trail].max() < 0.01  # with it, gone: the clean stack's values
    assert abs(np.median(cleaned.data[on_trail]) - SKY) < 0.003  # ... and the true sky
    # cosmic rays
    tr = reg.frames[COSMIC_FRAME].meta["transform"]
    for y, x in COSMICS:
        (cx, cy) = tr.forward(np.array([[x, y]], float))[0] * 2 + 0.5
        box = (slice(int(cy) - 2, int(cy) + 3), slice(int(cx) - 2, int(cx) + 3))
        assert err_plain[box].max() > 0.1
        assert err_clean[box].max() < 0.01
    # the background everywhere is the clean stack's; flux is conserved
    assert err_clean[bg].max() < 0.01
    assert abs(cleaned.data.sum() - reference.data.sum()) / reference.data.sum() < 0.005

    # the maps themselves: in the trail frame, the trail is rejected high
    low, high = read_frame_map(_frame_map_path(ctx, reg, TRAIL_FRAME, master.header["PXREJKEY"]))
    assert low.shape == high.shape == (S, S)
    assert (
        high[np.rint(ry).astype(int).clip(0, S - 1), np.rint(rx).astype(int).clip(0, S - 1)].mean()
        > 0.8
    )
    # a frame that was not integrated is named and drizzled without rejection
    warns.clear()
    part = integrate(ctx, reg[: N - 1])
    A.drizzle(ctx, reg, scale=2, integration=part)
    assert any("1 of 8 frames are not in the integration" in w and "f07" in w for w in warns)


def test_drizzle_integration_bad_input(stack):
    d, _, _ = stack
    warns: list[str] = []
    ctx = ctx_for(d, warns)
    reg = A.register(ctx, files(str(d / "bad")), reference=1)
    unregistered = integrate(ctx, files(str(d / "bad")))  # no transforms: no drizzle data
    assert "PXREJKEY" not in unregistered.header
    out = A.drizzle(ctx, reg, scale=1, integration=unregistered)
    assert out.shape == (S, S)
    assert any("no drizzle data" in w for w in warns)
    with pytest.raises(PxProcessError, match="integration="):
        A.drizzle(ctx, reg, integration=3.0)
    # the master saved and given by file name works as the image does
    master = integrate(ctx, reg)
    path = str(d / "master.fits")
    from pxlang.image import io

    io.save(master, path)
    warns.clear()
    A.drizzle(ctx, reg, scale=1, integration=path)
    assert not warns


def test_drizzle_result_is_cached(stack, monkeypatch):
    from pxlang.process import drizzle as dz

    d, _, _ = stack
    ctx = ctx_for(d, [])
    reg = A.register(ctx, files(str(d / "bad")), reference=1)
    master = integrate(ctx, reg)
    added = []
    real = dz.DrizzleStack.add
    monkeypatch.setattr(
        dz.DrizzleStack, "add", lambda self, *a, **k: (added.append(1), real(self, *a, **k))
    )
    first = A.drizzle(ctx, reg, scale=1.5, integration=master)
    assert len(added) == N
    again = A.drizzle(ctx, reg, scale=1.5, integration=master)
    assert len(added) == N and np.array_equal(first.data, again.data)  # a hit
    A.drizzle(ctx, reg, scale=1.5)  # without the rejection: another result
    A.drizzle(ctx, reg, scale=1.5, pixfrac=0.7, integration=master)
    assert len(added) == 3 * N


def test_bayer_drizzle_with_rejection(tmp_path):
    make_night(
        tmp_path,
        size=(96, 96),
        osc=True,
        lights_per_filter=4,
        n_bias=1,
        n_darks=1,
        n_flats=1,
        cloudy=False,
        trailed=False,
    )
    warns: list[str] = []
    ctx = ctx_for(tmp_path, warns)
    raw = files(os.path.join(tmp_path, "*.fits"), IMAGETYP="light")
    reg = A.register(ctx, A.debayer(ctx, raw, method="bilinear"))
    master = integrate(ctx, reg)  # colour: a map per channel
    low, _ = read_frame_map(_frame_map_path(ctx, reg, 0, master.header["PXREJKEY"]))
    assert low.shape == (3, 96, 96)
    out = A.drizzle(ctx, reg, scale=1, pixfrac=1.0, integration=master)
    assert out.shape == (3, 96, 96) and np.isfinite(out.data).all()
    assert not warns
