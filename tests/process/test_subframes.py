"""SubframeSelector-style measurements on synthetic frames with known seeing, cloud, trails."""

import math

import numpy as np
import pytest
from astropy.io.fits import Header

from pxlang.process.stars import render_stars
from pxlang.process.subframes import camera_gain, measure_frame, pixel_scale, statistics

S = 256


def frame(seed, fwhm=3.2, transparency=1.0, sky=0.1, trail=0.0, noise=0.002):
    rng = np.random.default_rng(seed)
    sky_rng = np.random.default_rng(100)  # same stars in every frame
    x, y = sky_rng.uniform(8, S - 8, (2, 150))
    flux = 10 ** sky_rng.uniform(-0.7, 0.4, 150) * transparency
    if trail:
        # a trailed exposure: the star moves along x during the exposure
        img = sum(render_stars((S, S), x + t, y, flux / 9, fwhm) for t in np.linspace(0, trail, 9))
    else:
        img = render_stars((S, S), x, y, flux, fwhm, beta=3.0)
    return (img + sky + rng.normal(0, noise, img.shape)).astype(np.float32)


def test_fwhm_eccentricity_and_units():
    m = measure_frame(frame(1, fwhm=3.2))
    assert abs(m["FWHM"] - 3.2) / 3.2 < 0.05 and m["FWHM"] == m["FWHMPixels"]
    assert m["Eccentricity"] < 0.35
    assert m["Stars"] > 100
    assert abs(m["Noise"] - 0.002) / 0.002 < 0.1
    assert abs(m["Median"] - 0.1) < 0.005
    assert m["SNRWeight"] == pytest.approx((m["MeanDeviation"] / m["Noise"]) ** 2)
    scaled = measure_frame(frame(1, fwhm=3.2), scale=1.5, gain=0.8)
    assert scaled["FWHM"] == pytest.approx(1.5 * scaled["FWHMPixels"])
    assert scaled["NoiseElectrons"] == pytest.approx(0.8 * scaled["Noise"])


def test_scale_and_gain_from_header():
    h = Header()
    assert pixel_scale(h) is None and camera_gain(h) is None
    h["XPIXSZ"] = 3.76
    h["FOCALLEN"] = 530.0
    assert pixel_scale(h) == pytest.approx(206.265 * 3.76 / 530.0)
    h["GAIN"] = 100  # ZWO's gain setting, not e-/ADU: EGAIN wins when present
    h["EGAIN"] = 0.25
    assert camera_gain(h) == 0.25


def test_cloud_and_trails_show_in_the_right_properties():
    good = measure_frame(frame(2))
    cloud = measure_frame(frame(3, transparency=0.25, sky=0.16))
    trailed = measure_frame(frame(4, trail=8.0))
    assert cloud["Stars"] < 0.6 * good["Stars"]
    assert cloud["SNRWeight"] < 0.5 * good["SNRWeight"]
    assert cloud["PSFSignalWeight"] < 0.2 * good["PSFSignalWeight"]
    assert trailed["Eccentricity"] > 0.7 > good["Eccentricity"]


def test_starless_frame_has_unknown_fwhm():
    rng = np.random.default_rng(5)
    m = measure_frame((0.1 + rng.normal(0, 0.002, (128, 128))).astype(np.float32))
    assert m["Stars"] == 0 and math.isnan(m["FWHM"]) and math.isnan(m["Eccentricity"])
    with pytest.raises(ValueError, match="mono"):
        measure_frame(np.zeros((3, 64, 64), np.float32))


def test_statistics():
    rows = [
        {"FWHM": 2.0, "Stars": 10.0},
        {"FWHM": 4.0, "Stars": 30.0},
        {"FWHM": math.nan, "Stars": 20.0},
    ]
    st = statistics(rows)
    assert st["FWHMMin"] == 2 and st["FWHMMax"] == 4 and st["FWHMMedian"] == 3
    assert st["FWHMSigma"] == pytest.approx(1.0) and st["StarsMean"] == 20


def test_transparency_follows_the_light_not_one_bright_star():
    from pxlang.process.subframes import transparency

    rng = np.random.default_rng(5)
    # a small field: 25 fitted stars, the brightest half the light
    stars = np.concatenate([[1500.0], np.sort(10 ** rng.uniform(0, 2.5, 24))[::-1]])
    frames = [stars * rng.normal(1, 0.03, stars.size) for _ in range(6)]
    frames[1] = frames[1][1:]  # the brightest star not fitted in this one (at an edge)
    frames[4] = frames[4] * 0.35  # cloud: a third of the light
    rng.shuffle(frames[2])  # any order
    t = transparency(frames)
    assert abs(t[4] - 0.35) < 0.03
    assert abs(t[1] - 1) < 0.05  # its flux sum fell by half
    assert np.sum(frames[1]) < 0.6 * np.sum(frames[0])
    assert all(abs(v - 1) < 0.05 for k, v in enumerate(t) if k not in (1, 4))
    assert list(transparency([frames[0], np.array([])])) == [1.0, 0.0]


@pytest.mark.parametrize("shape, stride", [((37, 53), 1), ((64, 48), 5), ((129, 200), 17)])
def test_the_sampled_first_starlet_layer_is_the_whole_layers_sample(shape, stride):
    # the noise estimate computes the layer only where it samples it: the same float32
    # values as the whole layer's, edges (mirrored rows and columns) included
    from pxlang.process.pixel_kernels import first_starlet_layer, first_starlet_layer_sampled

    a = np.random.default_rng(stride).normal(0.1, 0.01, shape).astype(np.float32)
    a[3, 4] = 2.0  # a star-like spike
    whole = first_starlet_layer(a).ravel()
    np.testing.assert_array_equal(first_starlet_layer_sampled(a, stride), whole[::stride])
    assert first_starlet_layer_sampled(a, 1).size == a.size


def test_noise_mrs_finds_the_noise_of_a_large_frame():
    # a 1024² frame: the estimate clips every 5th value of the first layer
    from pxlang.process.subframes import noise_mrs

    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:1024, 0:1024]
    sky = 0.1 + 0.05 * np.exp(-((xx - 500) ** 2 + (yy - 400) ** 2) / 2e4)  # a nebula
    frame = (sky + rng.normal(0, 0.004, sky.shape)).astype(np.float32)
    assert noise_mrs(frame) == pytest.approx(0.004, rel=0.02)
