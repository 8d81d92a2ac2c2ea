"""Whole-set results (integrate, superbias) are cached by a hash of their inputs and
parameters: an unchanged call loads the result, a changed frame, meta or parameter
recomputes it."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from pxlang.builtins.preprocess import integrate, superbias
from pxlang.image.frameset import FrameSet, files
from pxlang.image.store import Image
from pxlang.lang.functions import CallContext
from pxlang.process import integration as ig
from pxlang.process import normalization as nz
from pxlang.process import superbias as sb

H, W, N = 32, 40, 7


def write_frames(d, n=N, seed=0, kind="Light"):
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        data = (0.2 + rng.normal(0, 0.01, (H, W))).astype(np.float32)
        h = fits.Header()
        h["IMAGETYP"], h["EXPTIME"] = kind, 60.0
        h["DATE-OBS"] = f"2026-03-01T22:{i:02d}:00"
        fits.PrimaryHDU(data, h).writeto(d / f"f{i:02d}.fits", overwrite=True)


class Calls:
    def __init__(self, monkeypatch, module, name):
        self.n = 0
        real = getattr(module, name)

        def counted(*args, **kwargs):
            self.n += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def ctx_for(tmp_path, **options):
    return CallContext(
        base_dir=str(tmp_path),
        warn=lambda m: None,
        options={"cache_dir": str(tmp_path / "cache"), **options},
    )


def test_integrate_is_cached_by_frames_and_parameters(tmp_path, monkeypatch):
    write_frames(tmp_path / "lights")
    calls = Calls(monkeypatch, ig, "integrate")
    ctx = ctx_for(tmp_path)
    first = integrate(ctx, files(str(tmp_path / "lights")))
    assert calls.n == 1
    again = integrate(ctx, files(str(tmp_path / "lights")))
    assert calls.n == 1  # a hit
    assert np.array_equal(first.data, again.data)
    for key in ("NCOMBINE", "PXREJECT", "PXNORM", "REJHIPCT", "IMAGETYP", "TOTALEXP"):
        assert first.header[key] == again.header[key]
    assert list(first.header["HISTORY"]) == list(again.header["HISTORY"])
    assert "PXVERSN" not in again.header  # the cache file's stamp is not the result's
    # maps come back too
    maps = integrate(ctx, files(str(tmp_path / "lights")), maps=True)
    maps2 = integrate(ctx, files(str(tmp_path / "lights")), maps=True)
    assert calls.n == 2 and len(maps2) == 3
    assert all(np.array_equal(a.data, b.data) for a, b in zip(maps, maps2))
    # any parameter changes the result
    integrate(ctx, files(str(tmp_path / "lights")), rejection="sigma")
    integrate(ctx, files(str(tmp_path / "lights")), high=2.5)
    integrate(ctx, files(str(tmp_path / "lights")), normalization="none")
    assert calls.n == 5
    # one frame changed, or one added: recomputed
    p = tmp_path / "lights" / "f03.fits"
    with fits.open(p) as hdul:
        data, hdr = hdul[0].data + 0.05, hdul[0].header
    fits.PrimaryHDU(data, hdr).writeto(p, overwrite=True)
    os.utime(p, ns=(1, 1_000_000_000))  # a new modification time whatever the clock
    changed = integrate(ctx, files(str(tmp_path / "lights")))
    assert calls.n == 6 and not np.array_equal(changed.data, first.data)
    write_frames(tmp_path / "more", n=N + 1)
    integrate(ctx, files(str(tmp_path / "more")))
    integrate(ctx, files(str(tmp_path / "more")))
    assert calls.n == 7


def test_meta_that_the_integration_reads_is_part_of_the_key(tmp_path, monkeypatch):
    write_frames(tmp_path / "lights")
    calls = Calls(monkeypatch, ig, "integrate")
    ctx = ctx_for(tmp_path)

    def with_meta(weights, offset):
        fs = files(str(tmp_path / "lights"))
        for i, f in enumerate(fs.frames):
            f.meta["weight"] = weights[i]
            grid = np.full((2, 2), offset + 0.001 * i, np.float32)
            f.meta["normalize"] = nz.NormalizationModel(1.0, grid, 64, (H, W))
        return fs

    w = [1.0] * N
    integrate(ctx, with_meta(w, 0.0), normalization="local", weights="meta")
    integrate(ctx, with_meta(w, 0.0), normalization="local", weights="meta")
    assert calls.n == 1
    integrate(ctx, with_meta([2.0] + w[1:], 0.0), normalization="local", weights="meta")
    assert calls.n == 2
    integrate(ctx, with_meta(w, 0.01), normalization="local", weights="meta")
    assert calls.n == 3
    # weights not used: their change does not matter
    integrate(ctx, with_meta([3.0] + w[1:], 0.0), normalization="local")
    integrate(ctx, with_meta([4.0] + w[1:], 0.0), normalization="local")
    assert calls.n == 4


def test_no_cache_for_memory_frames_or_when_off(tmp_path, monkeypatch):
    write_frames(tmp_path / "lights")
    calls = Calls(monkeypatch, ig, "integrate")
    off = ctx_for(tmp_path, cache=False)
    integrate(off, files(str(tmp_path / "lights")))
    integrate(off, files(str(tmp_path / "lights")))
    assert calls.n == 2
    assert not os.path.exists(tmp_path / "cache")
    ctx = ctx_for(tmp_path)
    frames = [Image(np.full((H, W), 0.1 * k, np.float32)) for k in range(1, 4)]
    integrate(ctx, FrameSet.from_arrays(frames))
    integrate(ctx, FrameSet.from_arrays(frames))
    assert calls.n == 4


def test_superbias_is_cached_by_the_master(tmp_path, monkeypatch):
    write_frames(tmp_path / "bias", kind="Bias")
    calls = Calls(monkeypatch, sb, "superbias")
    ctx = ctx_for(tmp_path)
    bias = integrate(ctx, files(str(tmp_path / "bias")))
    a = superbias(ctx, bias)
    b = superbias(ctx, integrate(ctx, files(str(tmp_path / "bias"))))
    assert calls.n == 1 and np.array_equal(a.data, b.data)
    assert b.header["IMAGETYP"] == "Master Bias"
    superbias(ctx, bias, layers=5)
    superbias(ctx, bias.with_data(bias.data + 0.01))
    assert calls.n == 3


@pytest.mark.parametrize("broken", ["truncated", "garbage"])
def test_a_damaged_cache_file_is_recomputed(tmp_path, monkeypatch, broken):
    write_frames(tmp_path / "lights")
    calls = Calls(monkeypatch, ig, "integrate")
    ctx = ctx_for(tmp_path)
    first = integrate(ctx, files(str(tmp_path / "lights")))
    (cached,) = [p for p in (tmp_path / "cache" / "frames").iterdir() if p.suffix == ".fits"]
    raw = cached.read_bytes()
    cached.write_bytes(raw[: len(raw) // 2] if broken == "truncated" else b"x" * 100)
    again = integrate(ctx, files(str(tmp_path / "lights")))
    assert calls.n == 2 and np.array_equal(first.data, again.data)
