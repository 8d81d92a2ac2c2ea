"""pxlang.synthetic: the frames it writes contain what its Truth says they contain."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pxlang.synthetic import (
    DEFAULT_IMAGETYP,
    Truth,
    cfa_index,
    ellipticity_to_eccentricity,
    make_night,
    moffat_alpha_to_fwhm,
    moffat_fwhm_to_alpha,
    render_stars,
)

ADC = 65535.0


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Truth:
    """The default night (what the demo uses), timed."""
    out = tmp_path_factory.mktemp("night")
    t0 = time.perf_counter()
    truth = make_night(out, seed=3)
    truth.seconds = time.perf_counter() - t0
    return truth


@pytest.fixture(scope="module")
def osc_night(tmp_path_factory) -> Truth:
    out = tmp_path_factory.mktemp("osc")
    return make_night(
        out,
        size=(128, 160),
        osc=True,
        lights_per_filter=3,
        n_bias=2,
        n_darks=2,
        n_flats=2,
        seed=5,
        layout="siril",
    )


def _read(path) -> np.ndarray:
    return fits.getdata(path).astype(np.float64)


def _calibrate(truth: Truth, light) -> np.ndarray:
    """A light calibrated with the true bias, dark and flat, in normalised units."""
    raw = _read(light.path)
    flat = truth.flats[light.group]
    return (raw - truth.bias_map() - truth.dark_map(light.exptime)) / flat / ADC


def _defect_mask(truth: Truth, light, grow: int = 2) -> np.ndarray:
    """True where a hot, cold or cosmic-ray pixel (or its neighbours) sits."""
    from scipy import ndimage

    m = np.zeros(truth.shape, dtype=bool)
    m[truth.hot_y, truth.hot_x] = True
    m[truth.cold_y, truth.cold_x] = True
    m[light.cosmic_y, light.cosmic_x] = True
    return ndimage.binary_dilation(m, iterations=grow)


def _windowed_centroid(img, x, y, fwhm, iterations=30):
    """SExtractor-style XWIN/YWIN: Gaussian-weighted centroid iterated to convergence."""
    s = fwhm / 2.3548
    r = int(np.ceil(5 * s)) + 3
    for _ in range(iterations):
        ix, iy = int(round(x)), int(round(y))
        yy, xx = np.mgrid[iy - r : iy + r + 1, ix - r : ix + r + 1]
        cut = img[iy - r : iy + r + 1, ix - r : ix + r + 1]
        wgt = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s)) * cut
        nx, ny = (wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()
        # XWIN's update doubles the step so that it converges to the weighted-mean fixed point.
        nx, ny = x + 2 * (nx - x), y + 2 * (ny - y)
        if abs(nx - x) < 1e-5 and abs(ny - y) < 1e-5:
            return nx, ny
        x, y = nx, ny
    return x, y


def _isolated_bright_stars(truth: Truth, light, k=4, margin=20, min_e=30000.0):
    """Indices of up to k of the brightest stars of this light that are unsaturated, at least
    ``min_e`` electrons (x transparency: bright enough for a centroid to ~0.01 px), away from
    edges, defects and brighter-than-30 % neighbours within 6 px. Fainter neighbours do not
    matter: :func:`_one_star` subtracts them."""
    flux = truth.star_flux[light.group]
    flux = flux.sum(axis=0) if flux.ndim == 2 else flux
    fx, fy = truth.to_frame(light, truth.star_x, truth.star_y)
    h, w = truth.shape
    defects = _defect_mask(truth, light, grow=6)
    saturated = _dilate(truth.saturated(light), 4)
    electrons = flux * light.transparency * ADC * truth.gain
    chosen = []
    for i in np.argsort(flux)[::-1]:
        if electrons[i] < min_e or len(chosen) == k:
            break
        if not (margin < fx[i] < w - margin and margin < fy[i] < h - margin):
            continue
        iy, ix = int(round(fy[i])), int(round(fx[i]))
        if saturated[iy, ix] or defects[iy, ix]:
            continue
        d = np.hypot(truth.star_x - truth.star_x[i], truth.star_y - truth.star_y[i])
        if np.any((d > 0) & (d < 6) & (flux > 0.3 * flux[i])):
            continue
        chosen.append(i)
    return np.array(chosen, dtype=np.int64), fx, fy


def _one_star(truth: Truth, light, cal, i):
    """The data minus the truth's model of everything but star ``i`` (sky, other stars): the
    star as the frame recorded it, with the frame's noise."""
    flux = truth.star_flux[light.group]
    f = (flux.sum(axis=0) if flux.ndim == 2 else flux)[i] * light.transparency
    x, y = truth.to_frame(light, truth.star_x[i], truth.star_y[i])
    model_i = render_stars(
        truth.shape,
        [x],
        [y],
        [f],
        light.fwhm,
        truth.beta,
        light.ellipticity,
        light.trail_angle,
        threshold=1e-12,
    )
    return cal - (truth.expected_light(light) - model_i)


def _aperture_flux(img, x, y, r):
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return float(img[np.hypot(xx - x, yy - y) < r].sum())


# ---- headers, shapes, layout ---------------------------------------------------------------


def test_frames_have_requested_headers_and_shapes(night: Truth):
    kinds = {"bias": night.paths["bias"], "dark": night.paths["dark"]}
    kinds["flat"] = [p for g in night.groups for p in night.paths["flat"][g]]
    kinds["light"] = [p for g in night.groups for p in night.paths["light"][g]]
    assert [len(kinds[k]) for k in ("bias", "dark", "flat", "light")] == [5, 5, 10, 16]
    needed = (
        "EXPTIME",
        "GAIN",
        "EGAIN",
        "OFFSET",
        "CCD-TEMP",
        "XPIXSZ",
        "YPIXSZ",
        "FOCALLEN",
        "XBINNING",
        "YBINNING",
        "DATE-OBS",
        "INSTRUME",
        "TELESCOP",
    )
    spellings = set()
    for kind, paths in kinds.items():
        dates = []
        for p in paths:
            with fits.open(p) as hdul:
                hdr = hdul[0].header
                assert hdr["BITPIX"] == 16 and hdr["BZERO"] == 32768
                data = hdul[0].data
            assert data.dtype == np.uint16 and data.shape == night.shape
            assert hdr["IMAGETYP"] == DEFAULT_IMAGETYP[kind]
            for key in needed:
                assert key in hdr, f"{key} missing from {p}"
            assert "BAYERPAT" not in hdr
            if kind in ("flat", "light"):
                assert hdr["FILTER"] in night.groups
            if kind == "light":
                assert hdr["OBJECT"] and hdr["EXPTIME"] == 300.0
            if kind == "bias":
                assert hdr["EXPTIME"] == 0.0
            dates.append(datetime.fromisoformat(hdr["DATE-OBS"]))
            spellings.add(hdr["IMAGETYP"])
        assert len(set(dates)) == len(dates)
        per_group = len(paths) // (1 if kind in ("bias", "dark") else len(night.groups))
        for k in range(0, len(paths), per_group):  # increasing within each filter
            assert dates[k : k + per_group] == sorted(dates[k : k + per_group])
    assert len(spellings) == 4
    for g in night.groups:  # FILTER agrees with the truth's grouping
        assert {fits.getheader(p)["FILTER"] for p in night.paths["light"][g]} == {g}
        assert {fits.getheader(p)["FILTER"] for p in night.paths["flat"][g]} == {g}
    assert night.pixel_scale == pytest.approx(206.265 * 3.76 / 530.0)


def test_layouts(tmp_path):
    kw = dict(
        size=(48, 64),
        filters=("Ha", "OIII"),
        lights_per_filter=2,
        n_bias=1,
        n_darks=1,
        n_flats=1,
        star_density=500,
    )
    siril = make_night(tmp_path / "s", layout="siril", **kw)
    rel = {str(Path(p).relative_to(tmp_path / "s").parent) for p in _all_paths(siril)}
    assert rel == {"biases", "darks", "flats/Ha", "flats/OIII", "lights/Ha", "lights/OIII"}
    nested = make_night(tmp_path / "n", layout="nested", **kw)
    flat_dirs = {Path(p).parent for g in nested.groups for p in nested.paths["flat"][g]}
    assert len(flat_dirs) == 1  # every filter's flats together: only headers tell them apart
    flat = make_night(tmp_path / "f", layout="flat", **kw)
    assert {Path(p).parent for p in _all_paths(flat)} == {tmp_path / "f"}


def test_exposures_per_filter_get_their_own_darks(tmp_path):
    t = make_night(
        tmp_path,
        size=(40, 48),
        filters=("Ha", "OIII"),
        exposure={"Ha": 300.0, "OIII": 120.0},
        lights_per_filter=1,
        n_bias=1,
        n_darks=2,
        n_flats=1,
        layout="siril",
        imagetyp={"light": "LIGHT", "bias": "BIAS"},
    )
    dark_exp = sorted(fits.getheader(p)["EXPTIME"] for p in t.paths["dark"])
    assert dark_exp == [120.0, 120.0, 300.0, 300.0]
    assert {Path(p).parent.name for p in t.paths["dark"]} == {"Dark_120s", "Dark_300s"}
    assert [fits.getheader(p)["EXPTIME"] for g in t.groups for p in t.paths["light"][g]] == [
        300.0,
        120.0,
    ]
    assert fits.getheader(t.paths["light"]["Ha"][0])["IMAGETYP"] == "LIGHT"
    assert fits.getheader(t.paths["bias"][0])["IMAGETYP"] == "BIAS"
    assert fits.getheader(t.paths["dark"][0])["IMAGETYP"] == DEFAULT_IMAGETYP["dark"]
    # The truth of each filter is for its own exposure.
    assert t.stack_noise("OIII") > 0 and t.exposure == {"Ha": 300.0, "OIII": 120.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": "bogus"}, "layout"),
        ({"size": (16, 64)}, "size"),
        ({"lights_per_filter": 0}, "lights_per_filter"),
        ({"filters": ("Ha", "Ha")}, "distinct"),
        ({"filters": ("H/a",)}, "file names"),
        ({"exposure": {"Ha": 300.0}}, "OIII"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_night(tmp_path, **kwargs)
    assert not any(tmp_path.rglob("*.fits"))


def _all_paths(truth: Truth) -> list[str]:
    out = list(truth.paths["bias"]) + list(truth.paths["dark"])
    for g in truth.groups:
        out += truth.paths["flat"][g] + truth.paths["light"][g]
    return out


# ---- camera --------------------------------------------------------------------------------


def test_bias_noise_is_read_noise_and_pattern_is_known(night: Truth):
    b = np.stack([_read(p) for p in night.paths["bias"]])
    sigma = np.std(b[0] - b[1]) / np.sqrt(2)
    # Read noise plus the ADC's quantisation (1/12 ADU^2).
    assert sigma == pytest.approx(np.sqrt(night.read_noise_adu**2 + 1 / 12), rel=0.02)
    col = b.mean(axis=(0, 1)) - night.bias_level
    err = night.read_noise_adu / np.sqrt(b.shape[0] * b.shape[1])
    assert np.max(np.abs(col - night.bias_columns)) < 5 * err
    assert np.std(night.bias_columns) > 5 * err  # the pattern is there to be found


def test_hot_pixels_are_hot_in_every_dark(night: Truth):
    floor = night.bias_level + night.bias_columns.max() + 20 * night.read_noise_adu
    for p in night.paths["dark"]:
        d = _read(p)
        assert np.all(d[night.hot_y, night.hot_x] > floor)
    # And in the lights, on the same pixels: the reference light minus everything but them.
    lt = night.lights[0]
    sky_e = night.sky[lt.group] * ADC * night.gain * night.flats[lt.group]
    glow_e = (night.dark_current + night.amp_glow) * lt.exptime
    excess = (_read(lt.path) - night.bias_map()) * night.gain - sky_e - glow_e
    hot_e = night.hot_rate * lt.exptime
    noise_e = np.sqrt(hot_e + (sky_e + glow_e)[night.hot_y, night.hot_x] + night.read_noise**2)
    assert np.all(np.abs(excess[night.hot_y, night.hot_x] - hot_e) < 5 * noise_e)


def test_cold_pixels_are_cold_in_flats(night: Truth):
    for g in night.groups:
        f = _read(night.paths["flat"][g][0]) - night.bias_map()
        assert np.all(f[night.cold_y, night.cold_x] < 0.2 * np.median(f))


def test_dark_minus_bias_is_dark_current_times_exposure(night: Truth):
    darks = np.median([_read(p) for p in night.paths["dark"]], axis=0)
    bias = np.mean([_read(p) for p in night.paths["bias"]], axis=0)
    signal_adu = darks - bias
    w = night.shape[1]
    quiet = np.ones(night.shape, dtype=bool)
    quiet[:, w - w // 4 :] = False  # amp glow
    quiet[night.hot_y, night.hot_x] = False
    for cx, cy in night.dark_cosmics:
        quiet[cy, cx] = False
    expected = night.dark_current * 300.0 / night.gain
    # The median of a Poisson count is biased low by up to 1/3 e- for small means: use means.
    mean_dark = np.mean([_read(p) for p in night.paths["dark"]], axis=0)
    assert np.mean(mean_dark[quiet] - bias[quiet]) == pytest.approx(expected, rel=0.02)
    # Amp glow and hot pixels as the dark map says, pixel by pixel.
    glow = ~quiet
    glow[night.hot_y, night.hot_x] = False
    resid = signal_adu - night.dark_map(300.0)
    assert abs(np.mean(resid[glow])) < 0.5
    hot = signal_adu[night.hot_y, night.hot_x] / night.dark_map(300.0)[night.hot_y, night.hot_x]
    assert np.all(np.abs(hot - 1) < 0.15)


def test_master_flat_matches_truth_flat(night: Truth):
    bias = np.mean([_read(p) for p in night.paths["bias"]], axis=0)
    for g in night.groups:
        master = np.mean([_read(p) for p in night.paths["flat"][g]], axis=0) - bias
        master /= master.mean()
        ok = night.flats[g] > 0.5
        assert np.std(master[ok] / night.flats[g][ok] - 1) < 0.01
        assert night.flats[g].mean() == pytest.approx(1.0, abs=1e-5)
        assert night.flats[g].min() < 0.85  # vignetting and dust are there


def test_cosmic_rays_where_truth_says(night: Truth):
    for lt in night.lights[:6]:
        raw = _read(lt.path)
        expected = night.expected_light(lt) * ADC * night.flats[lt.group]
        expected += night.bias_map() + night.dark_map(lt.exptime)
        hit = ~night.saturated(lt)[lt.cosmic_y, lt.cosmic_x]
        assert lt.cosmic_x.size > 0 and hit.sum() > 0
        # Every deposit is at least 800 e- (1000 ADU): far above the noise of any pixel.
        excess = (raw - expected)[lt.cosmic_y, lt.cosmic_x][hit]
        assert np.all(excess > 800 / night.gain - 200)


# ---- sky and lights ------------------------------------------------------------------------


def _zscores(truth: Truth, light) -> np.ndarray:
    """(calibrated light - expected light) / expected noise, on pixels without defects."""
    e = truth.expected_light(light)
    flat = truth.flats[light.group]
    var_adu = (
        (e * ADC * truth.gain * flat + truth.dark_map(light.exptime) * truth.gain) / (truth.gain**2)
        + truth.read_noise_adu**2
        + 1 / 12
    )
    z = (_calibrate(truth, light) - e) / (np.sqrt(var_adu) / flat / ADC)
    sat = truth.saturated(light)
    # Saturated star cores are clipped by the ADC: the truth keeps them unclipped.
    assert np.all(_read(light.path)[sat] >= ADC - 3000)
    return z[~_defect_mask(truth, light) & ~_dilate(sat, 2)]


def _dilate(mask, n):
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=n)


def test_every_light_is_its_expected_image_plus_noise(night: Truth, osc_night: Truth):
    """The strongest check of the truth: each light, calibrated with the true masters, is the
    truth's noise-free image of it (dither, rotation, PSF, trail, cloud, Bayer mosaic) plus
    Poisson and read noise of exactly the predicted size."""
    for lt in night.lights + osc_night.lights:
        z = _zscores(osc_night if lt.group == "RGB" else night, lt)
        assert abs(z.mean()) < 0.02, (lt.group, lt.index)
        assert z.std() == pytest.approx(1.0, abs=0.02), (lt.group, lt.index)


def test_calibrated_reference_light_is_truth_sky(night: Truth):
    lt = night.lights[0]
    assert (lt.dx, lt.dy, lt.rotation, lt.fwhm) == (0.0, 0.0, 0.0, night.fwhm)
    assert np.allclose(night.expected_light(lt), night.sky[lt.group], rtol=0, atol=1e-8)
    resid = _calibrate(night, lt) - night.sky[lt.group]
    ok = ~_defect_mask(night, lt)
    ok &= night.sky[lt.group] < np.percentile(night.sky[lt.group], 90)  # background, no stars
    r = resid[ok]
    # The per-light noise figure is the median noise of the frame's background.
    assert 1.4826 * np.median(np.abs(r - np.median(r))) == pytest.approx(lt.noise, rel=0.05)
    assert abs(r.mean()) < 5 * lt.noise / np.sqrt(r.size)


def test_calibrated_osc_light_is_mosaic_of_truth(osc_night: Truth):
    lt = osc_night.lights[0]
    assert osc_night.sky["RGB"].shape == (3, 128, 160)
    hdr = fits.getheader(lt.path)
    assert hdr["BAYERPAT"] == "RGGB" and "FILTER" not in hdr
    cfa = cfa_index(osc_night.shape, "RGGB")
    truth_mosaic = np.choose(cfa, osc_night.sky["RGB"])
    resid = _calibrate(osc_night, lt) - truth_mosaic
    ok = ~_defect_mask(osc_night, lt) & (truth_mosaic < np.percentile(truth_mosaic, 90))
    assert abs(resid[ok].mean()) < 5 * lt.noise / np.sqrt(ok.sum())
    # Colour is real: R and B backgrounds differ as the truth says.
    cal = _calibrate(osc_night, lt)
    assert np.median(cal[cfa == 0]) == pytest.approx(np.median(osc_night.sky["RGB"][0]), rel=0.05)
    assert np.median(cal[cfa == 2]) == pytest.approx(np.median(osc_night.sky["RGB"][2]), rel=0.05)
    assert {Path(p).parent.name for p in osc_night.paths["light"]["RGB"]} == {"RGB"}


def test_star_positions_match_truth_transform(night: Truth):
    rotated = [lt for lt in night.lights if lt.rotation != 0]
    assert len(rotated) == 2
    checked = 0
    for lt in night.lights:
        if lt.trailed:
            continue
        cal = _calibrate(night, lt)
        # A cloudy frame's stars are a third as bright: take fainter ones, allow more error.
        idx, fx, fy = _isolated_bright_stars(night, lt, min_e=10000 if lt.cloudy else 30000)
        assert idx.size >= 1
        tol = 0.15 if lt.cloudy else 0.05
        for i in idx:
            cx, cy = _windowed_centroid(_one_star(night, lt, cal, i), fx[i], fy[i], lt.fwhm)
            assert np.hypot(cx - fx[i], cy - fy[i]) < tol, (lt.group, lt.index, i)
            checked += 1
    assert checked >= 2 * (len(night.lights) - 1)


def test_cloudy_frame_has_fainter_stars_and_brighter_sky(night: Truth):
    cloudy = [lt for lt in night.lights if lt.cloudy]
    assert len(cloudy) == 1
    bad = cloudy[0]
    good = night.lights_of(bad.group)[0]
    cal = {id(lt): _calibrate(night, lt) for lt in (good, bad)}
    idx, _, _ = _isolated_bright_stars(night, bad, k=5, min_e=5000)
    ratios = []
    for i in idx:
        f = []
        for lt in (good, bad):
            x, y = night.to_frame(lt, night.star_x[i], night.star_y[i])
            f.append(_aperture_flux(_one_star(night, lt, cal[id(lt)], i), x, y, 5 * night.fwhm))
        ratios.append(f[1] / f[0])
    assert np.median(ratios) == pytest.approx(bad.transparency, abs=0.05)
    assert np.median(cal[id(bad)]) > 2 * np.median(cal[id(good)])
    assert bad.noise > 1.2 * good.noise


def test_trailed_frame_has_elongated_stars(night: Truth):
    trailed = [lt for lt in night.lights if lt.trailed]
    assert len(trailed) == 1 and trailed[0].eccentricity > 0.8
    for lt, lo, hi in ((trailed[0], 0.75, 0.95), (night.lights_of(trailed[0].group)[0], 0.0, 0.3)):
        cal = _calibrate(night, lt)
        idx, fx, fy = _isolated_bright_stars(night, lt, k=2)
        for i in idx:  # second moments: noisy, so only the two brightest stars
            ecc = _eccentricity(_one_star(night, lt, cal, i), fx[i], fy[i], 8)
            assert lo < ecc < hi, (lt.index, i, ecc)


def _eccentricity(img, x, y, r):
    ix, iy = int(round(x)), int(round(y))
    cut = img[iy - r : iy + r + 1, ix - r : ix + r + 1]
    cut = np.clip(cut, 0, None)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1] + 0.0
    xx, yy = xx - (x - ix), yy - (y - iy)
    m = cut.sum()
    cxx, cyy, cxy = (cut * xx * xx).sum() / m, (cut * yy * yy).sum() / m, (cut * xx * yy).sum() / m
    lam = np.linalg.eigvalsh([[cxx, cxy], [cxy, cyy]])
    return float(np.sqrt(1 - lam[0] / lam[1]))


def test_satellite_and_meridian_flip(tmp_path):
    t = make_night(
        tmp_path,
        size=(64, 96),
        filters=("L",),
        lights_per_filter=6,
        n_bias=1,
        n_darks=1,
        n_flats=1,
        satellite=True,
        meridian_flip=True,
        star_density=800,
    )
    sat = [lt for lt in t.lights if lt.satellite]
    assert len(sat) == 1
    x0, y0, x1, y1 = sat[0].satellite
    cal = _calibrate(t, sat[0])
    xs = np.arange(10, 86)
    ys = np.rint(y0 + (y1 - y0) * (xs - x0) / (x1 - x0)).astype(int)
    assert np.median(cal[ys, xs]) > np.median(cal) + 10 * sat[0].noise
    assert [lt.rotation >= 179 for lt in t.lights] == [False] * 3 + [True] * 3


# ---- determinism and saving ----------------------------------------------------------------


def _digests(truth: Truth) -> dict[str, str]:
    root = Path(truth.outdir)
    return {
        str(Path(p).relative_to(root)): hashlib.sha256(Path(p).read_bytes()).hexdigest()
        for p in _all_paths(truth)
    }


def test_deterministic_for_a_seed(tmp_path):
    kw = dict(size=(64, 80), lights_per_filter=3, n_bias=2, n_darks=2, n_flats=2)
    a = _digests(make_night(tmp_path / "a", seed=11, **kw))
    b = _digests(make_night(tmp_path / "b", seed=11, workers=1, **kw))  # threads: same bytes
    c = _digests(make_night(tmp_path / "c", seed=12, **kw))
    assert a == b
    assert set(a) == set(c) and all(a[k] != c[k] for k in a)
    # Adding a light leaves every frame already made unchanged (incremental re-runs rely on it).
    d = _digests(make_night(tmp_path / "d", seed=11, **{**kw, "lights_per_filter": 4}))
    assert {k: d[k] for k in a} == a and len(d) == len(a) + 2


def test_truth_json_round_trip(night: Truth, tmp_path):
    npz = night.to_json(tmp_path / "truth.json")
    assert npz.exists()
    back = Truth.from_json(tmp_path / "truth.json")
    assert back.shape == night.shape and back.groups == night.groups
    assert np.array_equal(back.sky["Ha"], night.sky["Ha"])
    assert np.array_equal(back.lights[3].cosmic_x, night.lights[3].cosmic_x)
    assert back.lights[2].cloudy == night.lights[2].cloudy
    assert np.allclose(back.matrix(back.lights[1]), night.matrix(night.lights[1]))
    assert back.stack_noise("Ha") == pytest.approx(night.stack_noise("Ha"))
    x, y = night.to_reference(night.lights[1], *night.to_frame(night.lights[1], 10.0, 20.0))
    assert (float(x), float(y)) == pytest.approx((10.0, 20.0))


def test_stack_noise_is_root_n(night: Truth):
    good = [lt for lt in night.lights_of("Ha") if not lt.bad]
    s = np.array([lt.noise for lt in good])
    assert night.stack_noise("Ha") == pytest.approx(np.sqrt((s**2).sum()) / len(s))
    assert night.stack_noise("Ha") < s.mean() / np.sqrt(len(s)) * 1.01


def test_cli_writes_night_and_truth(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_night_cli", Path(__file__).parents[1] / "scripts" / "make_night.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(
        [
            str(tmp_path),
            "--size",
            "80x48",
            "--lights",
            "2",
            "--filters",
            "Ha,SII",
            "--bias",
            "1",
            "--darks",
            "1",
            "--flats",
            "1",
            "--seed",
            "2",
        ]
    )
    assert rc == 0
    t = Truth.from_json(tmp_path / "truth.json")
    assert t.shape == (48, 80) and t.groups == ("Ha", "SII") and t.seed == 2
    assert "wrote 8 frames of 80x48" in capsys.readouterr().out
    assert mod.main([str(tmp_path / "bad"), "--filters", "Ha/x"]) == 2


def test_default_night_is_fast(night: Truth):
    # The demo makes and processes a night in under 90 s: making it must be a small part.
    assert night.seconds < 20


# ---- PSF -----------------------------------------------------------------------------------


def test_moffat_alpha_fwhm_round_trip_and_profile():
    for fwhm, beta in ((2.5, 2.5), (3.0, 4.0), (7.0, 10.0)):
        alpha = moffat_fwhm_to_alpha(fwhm, beta)
        assert moffat_alpha_to_fwhm(alpha, beta) == pytest.approx(fwhm)
        # Definition: the profile at r = fwhm/2 is half the peak.
        assert (1 + (fwhm / 2 / alpha) ** 2) ** -beta == pytest.approx(0.5)
    with pytest.raises(ValueError):
        moffat_fwhm_to_alpha(3.0, 1.0)


def test_render_stars_conserves_flux_and_centre():
    x, y = np.array([40.3, 20.0, 70.71]), np.array([30.6, 60.0, 75.25])
    img = render_stars((100, 110), x, y, np.array([1000.0, 500.0, 2000.0]), 3.0, beta=3.0)
    assert img.dtype == np.float32
    assert img.sum() == pytest.approx(3500.0, rel=2e-3)
    yy, xx = np.mgrid[0:100, 0:110]
    for i in range(3):
        win = np.hypot(xx - x[i], yy - y[i]) < 12
        cx = (img * xx)[win].sum() / img[win].sum()
        cy = (img * yy)[win].sum() / img[win].sum()
        assert (cx, cy) == pytest.approx((x[i], y[i]), abs=0.01)
    # Half maximum at fwhm/2 from the centre (pixel-averaged, so only approximately).
    one = render_stars((61, 61), [30.0], [30.0], [1.0], 6.0, beta=4.0, oversample=5)
    assert one[30, 33] / one[30, 30] == pytest.approx(0.5, abs=0.03)
    # Stars off the image still add their wings; the image edge cuts, it does not wrap.
    edge = render_stars((20, 20), [-2.0], [10.0], [100.0], 3.0)
    assert edge[:, 0].sum() > 0 and edge[:, -1].sum() < 1e-3


def test_render_stars_ellipticity():
    e = 0.5
    img = render_stars((81, 81), [40.0], [40.0], [1.0], 3.0, beta=4.0, ellipticity=e, angle=30.0)
    ecc = _eccentricity(img, 40.0, 40.0, 30)
    assert ecc == pytest.approx(ellipticity_to_eccentricity(e), abs=0.03)
    # Major axis along 30 degrees: the profile falls slower along it than across it.
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    along = img[int(round(40 + 4 * s)), int(round(40 + 4 * c))]
    across = img[int(round(40 + 4 * c)), int(round(40 - 4 * s))]
    assert along > 3 * across
