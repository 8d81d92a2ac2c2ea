"""The light-frame built-ins on a synthetic night (with known cloudy and trailed frames)."""

import os

import numpy as np
import pytest

import pxlang
from pxlang.builtins import align as A
from pxlang.builtins import lights as L
from pxlang.builtins.registry import lookup
from pxlang.image.frameset import FrameSet, files
from pxlang.image.store import Image
from pxlang.lang.errors import PxProcessError
from pxlang.lang.functions import CallContext
from pxlang.process.stars import StarTable
from pxlang.synthetic.night import make_night


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    d = tmp_path_factory.mktemp("night")
    truth = make_night(
        d,
        size=(256, 256),
        filters=("Ha",),
        lights_per_filter=8,
        n_bias=1,
        n_darks=1,
        n_flats=1,
        meridian_flip=True,
    )
    return d, truth


def ctx_for(d, warnings):
    return CallContext(
        base_dir=str(d), warn=warnings.append, options={"cache_dir": str(d / "cache")}
    )


def lights(d):
    return files(os.path.join(d, "*.fits"), IMAGETYP="light")


def test_measure_select_rejects_cloud_and_trails(night):
    d, truth = night
    warns = []
    ctx = ctx_for(d, warns)
    measured = L.measure(ctx, lights(d))
    assert len(measured) == 8
    m0 = measured.frames[0].meta
    assert {
        "FWHM",
        "Eccentricity",
        "SNRWeight",
        "Noise",
        "Stars",
        "Median",
        "PSFSignalWeight",
    } <= set(m0["measure"])
    # the headers give 206.265 × 3.76 µm / 530 mm = 1.46 "/px: FWHM is in arcsec
    assert m0["FWHM"] == pytest.approx(m0["FWHMPixels"] * 206.265 * 3.76 / 530.0)
    good = L.select(ctx, measured)  # the stock approval: FWHM < 6 && Eccentricity <= 0.7
    bad = {i for i, lt in enumerate(truth.lights) if lt.bad}
    assert bad  # the night has a cloudy and a trailed frame
    names = {os.path.basename(p) for p in good.paths}
    expected = {os.path.basename(p) for i, p in enumerate(measured.paths) if i not in bad}
    assert names == expected
    assert any("2 of 8 frames rejected" in w for w in warns)
    assert any("Eccentricity <= 0.7" in w and "cloud" in w for w in warns)
    weights = [f.meta["weight"] for f in good.frames]
    assert all(w > 0 for w in weights)
    best = [f.meta["best"] for f in good.frames]
    assert sum(best) == 1 and best[int(np.argmax(weights))]
    assert "measure" not in lights(d).frames[0].meta  # inputs untouched


def test_select_expressions_and_failures(night):
    d, _ = night
    warns = []
    ctx = ctx_for(d, warns)
    measured = L.measure(ctx, lights(d))
    sel = L.select(
        ctx,
        measured,
        approve="Eccentricity < EccentricityMedian + 3*EccentricitySigma",
        weight="PSFSignalWeight/PSFSignalWeightMax",
        min_signal=0,
    )
    assert all(0 < f.meta["weight"] <= 1 for f in sel.frames)
    with pytest.raises(PxProcessError, match="no frame approved"):
        L.select(ctx, measured, approve="FWHM < 0.1")
    warns.clear()
    L.select(ctx, measured, approve="Stars >= StarsMax", min_signal=0)
    assert any("most frames rejected" in w for w in warns)
    with pytest.raises(PxProcessError, match="approval expression"):
        L.select(ctx, measured, approve="FWHM <")


def test_register_meridian_flip_and_bad_frames(night):
    d, truth = night
    warns = []
    ctx = ctx_for(d, warns)
    fs = lights(d)
    blank = Image(np.full(fs.shape, 0.1, np.float32), name="blank")
    frames = FrameSet.from_arrays([fs.read(i) for i in range(len(fs))] + [blank])
    reg = A.register(ctx, frames, reference=1)
    assert len(reg) == 8  # the blank frame left out, by name
    assert any("1 of 9 frames left out" in w and "frame 9" in w for w in warns)
    flips = [abs(f.meta["transform"].matrix[0, 0] + 1) < 0.05 for f in reg.frames]
    assert any(flips) and not all(flips)  # the second half is rotated by 180°
    # against the truth: frame = R(rotation)·(sky − c) + c + (dx, dy)
    c = np.array([127.5, 127.5])

    def to_frame(lt, p):
        t = np.radians(lt.rotation)
        r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        return (p - c) @ r.T + c + [lt.dx, lt.dy]

    sky = np.random.default_rng(0).uniform(40, 216, (50, 2))
    for j in range(8):
        tr = reg.frames[j].meta["transform"]
        err = tr.forward(to_frame(truth.lights[j], sky)) - to_frame(truth.lights[0], sky)
        assert np.sqrt(np.mean(np.sum(err**2, axis=1))) < 0.1, j
    assert "StarAlignment" in str(reg.read(1).header["HISTORY"])


def test_register_finds_all_star_lists_one_way(night, tmp_path):
    # the quick detection (no deblending) only when every list is found by register itself
    # and the reference is one of the frames; an outside reference: the full one for all
    import inspect

    d, _ = night
    fs = lights(d)
    thr = inspect.signature(A.register).parameters["threshold"].default
    keys = [fs.content_key(i) for i in range(len(fs))]

    def lists(ctx, fast):
        return [L._known_xy(ctx, fs, i, keys[i], thr, fast) is not None for i in range(len(fs))]

    ctx = CallContext(base_dir=str(d), warn=print, options={"cache_dir": str(tmp_path / "a")})
    A.register(ctx, fs, reference=2)
    assert all(lists(ctx, True)) and not any(lists(ctx, False))
    ctx = CallContext(base_dir=str(d), warn=print, options={"cache_dir": str(tmp_path / "b")})
    A.register(ctx, fs, reference=fs.frames[2].path)
    assert all(lists(ctx, False)) and not any(lists(ctx, True))


def test_register_list_of_masters_and_stars(night):
    d, _ = night
    ctx = ctx_for(d, [])
    fs = lights(d)
    a, b = fs.read(0), fs.read(5)
    out = A.register(ctx, [a, b], reference=1, model="affine")
    assert isinstance(out, list) and len(out) == 2 and out[1].shape == a.shape
    tab = L.stars(ctx, out[1])
    assert isinstance(tab, StarTable) and len(tab) > 20
    with pytest.raises(PxProcessError, match="model"):
        A.register(ctx, [a, b], model="rigid")


def test_normalize_feeds_integrate_and_drizzle(night):
    d, _ = night
    warns = []
    ctx = ctx_for(d, warns)
    good = L.select(ctx, L.measure(ctx, lights(d)))
    reg = A.register(ctx, good)
    normed = A.normalize(ctx, reg, scale=64)
    model = normed.frames[0].meta["normalize"]
    band = reg.read(0).data[10:20]
    assert model(band, 10, 20).shape == band.shape
    from pxlang.builtins.preprocess import integrate

    master = integrate(ctx, normed, normalization="local", weights="meta")
    assert master.shape == (256, 256)
    drz = A.drizzle(ctx, normed, scale=2, pixfrac=0.8)
    assert drz.shape == (512, 512)
    assert drz.header["DRIZSCAL"] == 2.0 and drz.header["NCOMBINE"] == len(good)
    # a master, with the frames' exposure, its own noise and pixels half the size
    raw = good.header(0)
    assert drz.header["IMAGETYP"] == "Master Light"
    assert drz.header["TOTALEXP"] == pytest.approx(
        sum(good.header(i)["EXPTIME"] for i in range(len(good)))
    )
    assert drz.header["XPIXSZ"] == pytest.approx(raw["XPIXSZ"] / 2)
    assert 0 < drz.header["NOISEEST"] < master.header["NOISEEST"] * 2
    # same sky level as the normal integration (surface brightness kept)
    assert abs(np.median(drz.data) - np.median(master.data)) < 0.1 * np.median(master.data)
    with pytest.raises(PxProcessError, match="register"):
        A.drizzle(ctx, lights(d))


def test_osc_debayer_and_bayer_drizzle(tmp_path):
    make_night(
        tmp_path,
        size=(128, 128),
        osc=True,
        lights_per_filter=4,
        n_bias=1,
        n_darks=1,
        n_flats=1,
        cloudy=False,
        trailed=False,
    )
    ctx = ctx_for(tmp_path, [])
    fs = lights(tmp_path)
    rgb = A.debayer(ctx, fs, method="vng")
    assert rgb.read(0).shape == (3, 128, 128)
    assert "BAYERPAT" not in rgb.read(0).header
    reg = A.register(ctx, fs)  # raw mosaics: stars found on 2×2-binned CFA cells
    drz = A.drizzle(ctx, reg, scale=1, pixfrac=1.0)
    assert drz.shape == (3, 128, 128)
    # the PixInsight way: register the debayered frames, bayer-drizzle the raw ones
    reg_rgb = A.register(ctx, rgb)
    assert reg_rgb.read(1).shape == (3, 128, 128)
    drz2 = A.drizzle(ctx, reg_rgb, scale=1, pixfrac=1.0)
    assert drz2.shape == (3, 128, 128)
    assert "BAYERPAT" not in drz2.header
    assert np.all(np.isfinite(drz2.data))
    with pytest.raises(PxProcessError, match="BAYERPAT"):
        A.debayer(ctx, Image(np.zeros((16, 16), np.float32)))
    with pytest.raises(PxProcessError, match="raw"):
        A.debayer(ctx, str(tmp_path / "IMG_0001.CR2"))


def test_in_the_language(night):
    d, _ = night
    script = (
        f'good = select(measure(files("{d}/*Ha*.fits")),\n'
        '              approve="FWHM < 6 && Eccentricity <= 0.7")\n'
        'reg = register(good, model="affine")\n'
        "drizzle(reg, scale=2)\n"
    )
    out = pxlang.evaluate(script, options={"cache_dir": str(d / "cache")})
    assert out.shape == (512, 512)


def test_registry_entries_have_docs_and_examples():
    for name in (
        "stars",
        "measure",
        "select",
        "register",
        "localnormalization",
        "drizzle",
        "debayer",
    ):
        spec = lookup(name)
        assert spec is not None and spec.doc and spec.example and spec.category == "lights"


# ---------------------------------------------------------------------------- unusable frames


@pytest.fixture(scope="module")
def odd_night(tmp_path_factory):
    """Six good lights plus three that cannot be used: noise only (no stars), a dark frame
    labelled Light (hot pixels and cosmic rays, no star) and another field (stars that do
    not match the reference)."""
    from astropy.io import fits

    d = tmp_path_factory.mktemp("odd_night")
    make_night(
        d,
        size=(128, 128),
        filters=("Ha",),
        lights_per_filter=6,
        n_bias=1,
        n_darks=1,
        n_flats=1,
        cloudy=False,
        trailed=False,
    )
    good = sorted(p for p in os.listdir(d) if p.startswith("SYNTH-1_Ha_"))
    with fits.open(d / good[0]) as h:
        hdr, data = h[0].header.copy(), h[0].data.astype(np.float32)
    with fits.open(d / sorted(p for p in os.listdir(d) if p.startswith("Dark"))[0]) as h:
        dark = h[0].data.copy()
    rng = np.random.default_rng(1)
    noise = (np.median(data) + rng.normal(0, 20, data.shape)).clip(0, 65535)
    other = np.roll(data[::-1, :].T, 37, axis=0)  # transposed, flipped and shifted
    for name, pixels, minute in (("noise", noise, 57), ("dark", dark, 58), ("other", other, 59)):
        h = hdr.copy()
        h["DATE-OBS"] = f"2026-09-15T23:{minute}:00"
        fits.PrimaryHDU(pixels.astype(np.uint16), h).writeto(d / f"SYNTH-1_Ha_{name}.fits")
    return d


def test_frames_without_stars_or_unmatched_are_left_out_by_name(odd_night):
    d = odd_night
    warns = []
    ctx = ctx_for(d, warns)
    fs = lights(d)
    assert len(fs) == 9
    measured = L.measure(ctx, fs)
    assert len(measured) == 7  # the noise frame and the dark left out ...
    left = [w for w in warns if w.startswith("measure(): 2 of 9 frames left out")]
    assert left and "SYNTH-1_Ha_noise.fits (no stars found)" in left[0]
    assert "SYNTH-1_Ha_dark.fits (no stars found" in left[0]
    reasons = dict(measured.skipped)  # ... and travel with the set, for the report
    assert reasons[str(d / "SYNTH-1_Ha_dark.fits")].startswith("measure: no stars found")
    selected = L.select(ctx, measured)
    assert len(selected) == 7  # the other field has good stars: select approves it
    warns.clear()
    reg = A.register(ctx, selected)
    assert len(reg) == 6  # ... register cannot match it
    assert len(warns) == 1 and warns[0].startswith("register(): 1 of 7 frames left out")
    assert "SYNTH-1_Ha_other.fits (no consistent star pattern match" in warns[0]
    assert sorted(os.path.basename(p) for p, _ in reg.skipped) == [
        "SYNTH-1_Ha_dark.fits",
        "SYNTH-1_Ha_noise.fits",
        "SYNTH-1_Ha_other.fits",
    ]
    # the rest of the chain runs on what is left
    from pxlang.builtins.preprocess import integrate

    assert integrate(ctx, reg).header["NCOMBINE"] == 6
    # a measured set given by hand with a starless row: select rejects it, saying why
    fake = L._copy(measured)
    fake.frames[0].meta["measure"] = dict(fake.frames[0].meta["measure"], Stars=0)
    warns.clear()
    assert len(L.select(ctx, fake)) == 6
    assert any("no stars found in 1" in w for w in warns)


def test_no_usable_frame_and_mixed_sizes_are_errors(odd_night, tmp_path):
    d = odd_night
    ctx = ctx_for(d, [])
    only_bad = files(os.path.join(d, "SYNTH-1_Ha_[nd]*.fits"))
    with pytest.raises(PxProcessError, match=r"measure\(\): no frame can be used \(2 tried\)"):
        L.measure(ctx, only_bad)
    with pytest.raises(
        PxProcessError, match=r"register\(\): the reference \(SYNTH-1_Ha_noise.fits\) has 0 stars"
    ):
        A.register(ctx, files(str(d / "SYNTH-1_Ha_noise.fits")))
    # a frame of another size: the error names it, even when it comes first
    from astropy.io import fits

    for p in sorted(d.glob("SYNTH-1_Ha_300s_000[1-4].fits")):
        os.symlink(p, tmp_path / p.name)
    with fits.open(d / "SYNTH-1_Ha_300s_0001.fits") as h:
        hdr = h[0].header.copy()
    hdr["DATE-OBS"] = "2026-09-15T19:00:00"  # sorts first
    fits.PrimaryHDU(np.zeros((64, 96), np.uint16), hdr).writeto(tmp_path / "binned.fits")
    mixed = files(str(tmp_path / "*.fits"))
    assert os.path.basename(mixed.name(0)) == "binned.fits"
    for stage in (L.measure, A.register):
        with pytest.raises(
            PxProcessError, match=r"binned\.fits' is 96x64.*, the other 4 of 5 frames are 128x128"
        ):
            stage(ctx, mixed)


def test_register_on_best_uses_the_stars_measure_found(night, monkeypatch):
    # another filter registered on best(selection) aligns on the very star list the
    # reference's own filter was registered with: nothing detected again
    import inspect

    from pxlang.builtins.workflow import best

    d, _ = night
    ctx = ctx_for(d, [])
    good = L.select(ctx, L.measure(ctx, lights(d)), approve="FWHM < 6 && Eccentricity <= 0.7")
    ref = best(good)
    thr = inspect.signature(A.register).parameters["threshold"].default
    i = next(k for k, f in enumerate(good.frames) if f.meta["best"])
    own = L._known_xy(ctx, good, i, good.content_key(i), thr)
    assert own is not None and np.array_equal(A._reference_xy(ctx, ref, thr), own)

    def detect(*args, **kwargs):
        raise AssertionError("the reference's stars were detected again")

    monkeypatch.setattr(A, "_image_stars", detect)
    others = L._copy(good)._subset([k for k in range(len(good)) if k != i])
    reg = A.register(ctx, others, reference=ref)
    assert len(reg) == len(others)
    # pixels without measure()'s table (a copy, a file): detected as before
    with pytest.raises(AssertionError, match="detected again"):
        A.register(ctx, others, reference=ref.with_data(ref.data))


def test_select_cloud_rule_compares_stars_rank_by_rank():
    # one frame lost its brightest star (fitted in the others only: 45 % of the flux sum):
    # PSFSignalWeight falls to 0.3 of the median, the star signal does not; a frame with a
    # third of the light is rejected, with its transparency in the reason
    from pxlang.image.frameset import Frame

    rng = np.random.default_rng(2)
    stars = np.concatenate([[400.0], np.sort(10 ** rng.uniform(0, 1.8, 15))[::-1]])
    frames = []
    for k in range(6):
        flux = stars * rng.normal(1, 0.02, stars.size) * (0.35 if k == 4 else 1.0)
        if k == 1:
            flux = flux[1:]
        n = flux.size
        table = StarTable(
            x=rng.uniform(0, 99, n), y=rng.uniform(0, 99, n), flux=flux, fwhm=np.full(n, 3.0),
            eccentricity=np.full(n, 0.3), peak=flux / 10, saturated=np.zeros(n, bool),
        )  # fmt: skip
        noise = 0.01
        row = {"FWHM": 3.0, "Eccentricity": 0.3, "Stars": float(n), "Noise": noise,
               "SNRWeight": 5.0, "PSFSignalWeight": (flux.sum() / noise) ** 2 / 1e6}  # fmt: skip
        meta = {"measure": row, "star_table": {"key": "k", "threshold": 5.0, "table": table}}
        frames.append(Frame(f"light_{k}.fits", header={}, data=np.zeros((8, 8)), meta=meta))
    psfsw = [f.meta["measure"]["PSFSignalWeight"] for f in frames]
    assert psfsw[1] < 0.4 * np.median(psfsw)  # the old rule would reject it
    ctx = CallContext(base_dir=".", warn=lambda m: None)
    good = L.select(ctx, FrameSet(frames), approve="FWHM < 6")
    assert [f.path for f in good.frames] == [f"light_{k}.fits" for k in (0, 1, 2, 3, 5)]
    (why,) = [v["reason"] for v in good.selection if not v["approved"]]
    assert "transparency 0.3" in why and "cloud or haze" in why


def test_the_workers_warm_imports_leave_scipy_out(modules_after):
    """What the main process imports before forking the per-frame workers is in the run's
    serial part; scipy.ndimage (~0.4 s) is used by none of the mono path's per-frame work."""
    code = "import pxlang.builtins.lights as L\nL._warm_imports()\n"
    modules = modules_after(code)
    assert "pxlang.process.debayer" in modules
    assert not [m for m in modules if m.startswith("scipy")]
