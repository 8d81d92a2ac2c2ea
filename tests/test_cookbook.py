"""Every script of docs/cookbook.md runs, in order, on a small synthetic night laid out as the
cookbook names its folders; then what they made is checked against the night's truth and
against the PixelMath the guide's table spells out."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import pxlang
from pxlang import cli
from pxlang.image import io

ROOT = Path(__file__).resolve().parents[1]
COOKBOOK = ROOT / "docs" / "cookbook.md"


def blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(px|sh)\n(.*?)```", COOKBOOK.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def cooked(tmp_path_factory):
    """Run the whole cookbook once in a folder holding a synthetic night."""
    from pxlang.synthetic import make_night

    root = tmp_path_factory.mktemp("cookbook")
    truth = make_night(
        root,
        size=(128, 160),
        filters=("Ha", "OIII", "SII"),
        lights_per_filter=5,
        n_bias=4,
        n_darks=3,
        n_flats=3,
        layout="siril",
        seed=5,
        cloudy=False,
        trailed=False,
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("PXLANG_LIBRARY", str(root / "library.json"))
    mp.chdir(root)
    ran = []
    try:
        for lang, block in blocks():
            if lang == "sh":
                for line in block.splitlines():
                    line = line.split("#")[0].strip()
                    if line.startswith("pxlang "):
                        assert cli.main(shlex.split(line)[1:]) == 0, line
                        ran.append(line)
            else:
                pxlang.evaluate(block, path=str(root / "cookbook.px"), options={"quiet": True})
                ran.append(block)
    finally:
        mp.undo()
    return root, truth, ran


def img(root: Path, name: str) -> np.ndarray:
    return np.asarray(io.load(str(root / name)).pixels, dtype=np.float32)


def test_every_script_ran(cooked):
    _, _, ran = cooked
    n_px = sum(1 for lang, _ in blocks() if lang == "px")
    assert n_px >= 15 and len([r for r in ran if "\n" in r]) == n_px
    assert "pxlang library add library/" in ran


def test_chapter_titles_follow_the_guide():
    text = COOKBOOK.read_text(encoding="utf-8")
    for words in (
        "superbias",
        "calibration library",
        "FWHM < 6 && Eccentricity <= 0.7",
        "drizzle",
        "Range mask",
        "Star mask",
        "Colour mask",
        "DynamicPSF",
        "bicolour palette",
        "TGVDenoise",
        "MultiscaleLinearTransform",
    ):
        assert words.lower() in text.lower(), words


def test_superbias_is_closer_to_the_true_bias_than_the_master(cooked):
    root, truth, _ = cooked
    true_bias = truth.bias_map() / 65535.0
    master = img(root, "masters/MasterBias.fits")
    superbias = img(root, "library/MasterSuperBias.fits")
    err_master = float(np.sqrt(np.mean((master - true_bias) ** 2)))
    err_super = float(np.sqrt(np.mean((superbias - true_bias) ** 2)))
    assert err_super < 0.8 * err_master


def test_library_holds_the_masters_and_lights_were_calibrated(cooked):
    root, _, _ = cooked
    import json

    index = json.loads((root / "library.json").read_text())
    kinds = sorted(m["imagetyp"] for m in index["masters"])
    assert kinds == ["bias", "dark", "flat", "flat", "flat"]
    assert len(list((root / "Lights_Cal" / "Ha").glob("*.fits"))) == 5


def test_master_lights_and_drizzle(cooked):
    root, _, _ = cooked
    for f in ("Ha", "OIII", "SII"):
        master = img(root, f"{f}.fits")
        driz = img(root, f"{f}_drizzle.fits")
        assert master.shape == (128, 160) and driz.shape == (256, 320)
        assert np.isfinite(master).all()
    # the master's background noise is below a single calibrated light's
    first = sorted((root / "Lights_Cal" / "Ha").glob("*.fits"))[0]
    light = img(root, str(first.relative_to(root)))
    ha = img(root, "Ha.fits")

    def noise(a: np.ndarray) -> float:
        d = a[:, 1:] - a[:, :-1]
        return float(np.median(np.abs(d - np.median(d)))) * 1.4826 / np.sqrt(2)

    assert noise(ha) < 0.75 * noise(light)


def test_palette_table_is_the_guides_pixelmath(cooked):
    root, _, _ = cooked
    ha, o3, s2 = (img(root, f"aligned/{f}.fits") for f in ("Ha", "OIII", "SII"))
    for k, name in ((0.01, "001"), (0.5, "05"), (1.0, "10")):
        rgb = img(root, f"palette/synthetic_{name}.fits")
        np.testing.assert_allclose(rgb[0], np.clip(ha, 0, 1), atol=1e-6)
        np.testing.assert_allclose(rgb[1], np.clip(ha * k + o3 * (1 - k), 0, 1), atol=1e-5)
        np.testing.assert_allclose(rgb[2], np.clip(o3, 0, 1), atol=1e-6)
    blended = img(root, "palette/blended_sii.fits")
    np.testing.assert_allclose(blended[0], np.clip(0.5 * s2 + 0.5 * ha, 0, 1), atol=1e-5)
    np.testing.assert_allclose(blended[1], np.clip(0.2 * ha + 0.8 * o3, 0, 1), atol=1e-5)
    # three routes to the same image: the table, the stdlib function, pasted PixelMath
    table_row = img(root, "palette/synthetic_05.fits")
    np.testing.assert_allclose(img(root, "palette/bicolour.fits"), table_row, atol=1e-6)
    np.testing.assert_allclose(img(root, "palette/bicolour_pm.fits"), table_row, atol=1e-6)
    np.testing.assert_allclose(img(root, "palette/blended_sii_lib.fits"), blended, atol=1e-6)


def test_masks_and_post_processing_outputs(cooked):
    root, _, _ = cooked
    for name in ("Range_Mask", "Range_Mask_RGB", "Star_Mask_Deconvolution"):
        m = img(root, f"masks/{name}.fits")
        assert m.shape == (128, 160) and m.min() >= 0 and m.max() <= 1
        assert 0.01 < float(np.mean(m > 0.5)) < 0.5, name  # the signal, not the background
    # colour masks (weighted by chroma, so faint): red and cyan are opposite hues
    red, cyan = img(root, "masks/Red_Mask.fits"), img(root, "masks/Cyan_Mask.fits")
    assert red.max() > 0.05 and cyan.max() > 0.05
    assert float(np.mean(cyan[red > np.percentile(red, 95)])) < float(np.mean(cyan))
    assert float(np.mean(red[cyan > np.percentile(cyan, 95)])) < float(np.mean(red))
    L = img(root, "aligned/Ha.fits")
    sharp = img(root, "L_deconvolved.fits")
    assert sharp.shape == L.shape and not np.allclose(sharp, L)
    # the star mask marks the stars: their pixels are brighter than the rest
    stars = img(root, "masks/Star_Mask_Deconvolution.fits") > 0.5
    assert np.median(L[stars]) > np.median(L[~stars])
    for name in ("rgb_denoised", "sho_denoised", "final"):
        assert img(root, f"{name}.fits").shape == (3, 128, 160)
    png = img(root, "final.png")
    assert png.shape == (3, 128, 160) and 0.1 < float(np.median(png)) < 0.5
