"""Post-processing built-ins through the language: masks, errors, and the adapters' wiring."""

import numpy as np
import pytest

import pxlang
from pxlang.process import color, psf, stretch


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(9)
    n = 128
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    neb = 0.04 + 0.1 * np.exp(-((xx - 60) ** 2 + (yy - 70) ** 2) / (2 * 25**2))
    stars = np.zeros((n, n))
    pos = []
    while len(pos) < 10:
        x, y = rng.uniform(12, n - 12, 2)
        if all((x - a) ** 2 + (y - b) ** 2 > 25**2 for a, b in pos):
            pos.append((x, y))
    for x, y in pos:
        stars += rng.uniform(0.2, 0.6) * psf.moffat(xx - x, yy - y, 3.5, 3.0)
    ha = (neb + stars + rng.normal(0, 0.002, (n, n))).astype(np.float32)
    o3 = (0.5 * neb + stars + rng.normal(0, 0.002, (n, n))).astype(np.float32)
    s2 = (0.3 * neb + stars + rng.normal(0, 0.002, (n, n))).astype(np.float32)
    return {"Ha": ha, "OIII": o3, "SII": s2, "RGB": np.stack([ha, o3, s2])}


def ev(src, images, **extra):
    return pxlang.evaluate(src, images={**images, **extra})


def test_stf_and_autostretch_agree(images):
    p = ev("stf(Ha)", images)
    c0, m, c1 = stretch.stf_params(images["Ha"])[0]
    assert p == pytest.approx([c0, m, c1])
    auto = ev("autostretch(Ha)", images).data
    manual = ev(f"ht(Ha, shadows={p[0]!r}, midtones={p[1]!r}, highlights={p[2]!r})", images).data
    assert np.allclose(auto, manual, atol=1e-6)
    per_channel = ev("stf(RGB, linked=false)", images)
    assert len(per_channel) == 3 and all(len(t) == 3 for t in per_channel)


def test_mask_blends_processed_and_original(images):
    ha = images["Ha"]
    m = np.zeros_like(ha)
    m[:, 64:] = 1.0
    m[:10] = 0.5
    out = ev("ht(Ha, midtones=0.1, mask=M)", images, M=m).data
    full = stretch.histogram_transform(ha, midtones=0.1)
    assert np.allclose(out, m * full + (1 - m) * ha, atol=1e-6)
    inv = ev("ht(Ha, midtones=0.1, mask=M, invert_mask=true)", images, M=m).data
    assert np.allclose(inv, (1 - m) * full + m * ha, atol=1e-6)
    # a mono mask applies to all three channels of a colour image
    rgb = ev("saturation(RGB, 0.5, mask=M)", images, M=m).data
    assert np.array_equal(rgb[:, 20:, :64], images["RGB"][:, 20:, :64])


def test_wrong_mask_shape_is_a_clear_error(images):
    with pytest.raises(pxlang.PxTypeError, match="mask is 32x32 but the image is 128x128") as e:
        ev("tgv_denoise(Ha, mask=M)", images, M=np.ones((32, 32), np.float32))
    assert "range_mask" in e.value.hint


def test_colour_only_process_on_mono_says_what_to_do(images):
    for src in ("scnr(Ha)", "saturation(Ha, 0.2)", 'color_mask(Ha, "red")', "lab(Ha)"):
        with pytest.raises(pxlang.PxTypeError, match="needs a colour image") as e:
            ev(src, images)
        assert "channel_combine" in e.value.hint


def test_psf_header_and_no_star_error(images):
    k = ev("psf(Ha)", images)
    assert k.header["PSFFWHM"] == pytest.approx(3.5, rel=0.05)
    assert k.header["PSFBETA"] == pytest.approx(3.0, rel=0.08)
    assert k.header["PSFNSTAR"] >= 5 and k.data.max() == pytest.approx(1.0)
    flat = (0.1 + np.random.default_rng(1).normal(0, 0.002, (64, 64))).astype(np.float32)
    with pytest.raises(pxlang.PxProcessError, match="stars") as e:
        ev("psf(F)", images, F=flat)
    assert "unsaturated" in e.value.hint


def test_deconvolve_with_deringing_support_form(images):
    out = ev("deconvolve(Ha, psf(Ha), iterations=15, deringing=star_mask(Ha, grow=3))", images).data
    before = psf.fit_psf(images["Ha"]).fwhm
    assert psf.fit_psf(out).fwhm < 0.9 * before
    with pytest.raises(pxlang.PxTypeError, match="PSF must be a mono"):
        ev("deconvolve(Ha, RGB)", images)


def test_colour_adapters(images):
    rgb = images["RGB"]
    back = ev("from_lab(lab(RGB))", images).data
    assert np.abs(back - np.clip(rgb, 0, 1)).max() < 1e-5
    parts = ev('from_lab(extract(RGB, "L"), extract(RGB, "a"), extract(RGB, "b"))', images).data
    assert np.abs(parts - back).max() < 1e-5
    lin = ev('luminance(RGB, weights=[1, 1, 1], mode="linear")', images).data
    assert np.allclose(lin, rgb.mean(axis=0), atol=1e-6)
    assert np.allclose(
        ev('luminance(RGB, weights="equal")', images).data, color.lightness(rgb, "equal")
    )
    cc = ev("channel_combine(R=Ha, G=OIII, B=SII)", images).data
    assert np.array_equal(cc, rgb)
    with pytest.raises(pxlang.PxTypeError, match="differ in size"):
        ev("channel_combine(R=Ha, G=OIII, B=S)", images, S=np.zeros((8, 8), np.float32))
    same = ev('lrgb(L=extract(RGB, "L"), rgb=RGB)', images).data
    assert np.abs(same - np.clip(rgb, 0, 1)).max() < 1e-3


def test_mlt_identity_and_masks_through_language(images):
    out = ev("mlt(RGB, bias=[0, 0, 0, 0])", images).data
    assert np.abs(out - images["RGB"]).max() < 1e-5
    rm = ev("range_mask(autostretch(Ha), 0.5, 1)", images).data
    assert rm.shape == images["Ha"].shape and set(np.unique(rm)) <= {0.0, 1.0}
    sm = ev("star_mask(Ha)", images).data
    assert 0 < sm.mean() < 0.2
    model = ev("background(Ha, degree=2, model=true)", images).data
    assert model.shape == images["Ha"].shape


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("bicolour(Ha, OIII, k=0.3)", lambda h, o, s: [h, 0.3 * h + 0.7 * o, o]),
        ("bicolour_001(Ha, OIII)", lambda h, o, s: [h, 0.01 * h + 0.99 * o, o]),
        ("bicolour_05(Ha, OIII)", lambda h, o, s: [h, 0.5 * h + 0.5 * o, o]),
        ("bicolour_10(Ha, OIII)", lambda h, o, s: [h, h, o]),
        ("blended(Ha, OIII)", lambda h, o, s: [h, 0.4 * h + 0.6 * o, o]),
        ("blended_sii(Ha, OIII, SII)", lambda h, o, s: [0.5 * s + 0.5 * h, 0.2 * h + 0.8 * o, o]),
        ("sho(SII, Ha, OIII)", lambda h, o, s: [s, h, o]),
        ("sho(SII, Ha, OIII, g=0.8)", lambda h, o, s: [s, 0.8 * h, o]),
        ("hoo(Ha, OIII)", lambda h, o, s: [h, o, o]),
        ("hoo(Ha, OIII, k=0.7)", lambda h, o, s: [h, 0.7 * o + 0.3 * h, o]),
        ("hso(Ha, SII, OIII)", lambda h, o, s: [h, s, o]),
    ],
)
def test_palettes(call, expected):
    rng = np.random.default_rng(5)
    h, o, s = (rng.uniform(0, 1, (8, 8)).astype(np.float32) for _ in range(3))
    value = pxlang.evaluate(f"import palettes\n{call}", images={"Ha": h, "OIII": o, "SII": s})
    out = np.asarray(value.data)  # an Image, or an ndarray (whose .data is its buffer)
    want = np.clip(np.stack(expected(h, o, s)), 0, 1)
    assert out.shape == (3, 8, 8)
    assert np.abs(out - want).max() < 1e-6
