"""Range, star and colour masks against synthetic images with known content."""

import numpy as np
import pytest

from pxlang.process import masks


def test_range_mask_hard_and_fuzzy():
    x = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, -1)
    m = masks.range_mask(x, 0.2, 0.6)
    assert np.array_equal(m[0] == 1, (x[0] >= 0.2) & (x[0] <= 0.6))
    assert set(np.unique(m)) == {0.0, 1.0}
    f = masks.range_mask(x, 0.2, 0.6, fuzziness=0.5)  # ramps 0.1 wide inside each limit
    assert f[0, 25] == pytest.approx(0.5, abs=1e-5)  # x=0.25: halfway up the lower ramp
    assert f[0, 40] == 1.0 and f[0, 55] == pytest.approx(0.5, abs=1e-5) and f[0, 70] == 0.0
    inv = masks.range_mask(x, 0.2, 0.6, invert=True)
    assert np.array_equal(inv, 1 - m)
    smooth = masks.range_mask(np.repeat(x, 20, axis=0), 0.2, 0.6, smoothness=2)
    assert 0 < smooth[10, 19] < 1  # blurred edge


def test_range_mask_of_colour_uses_lightness():
    rgb = np.zeros((3, 4, 4), dtype=np.float32)
    rgb[:, :2] = 0.9  # bright top half
    m = masks.range_mask(rgb, 0.5, 1.0)
    assert m[:2].min() == 1.0 and m[2:].max() == 0.0


def _field(seed=0, n=128):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    nebula = 0.3 * np.exp(-(((xx - 64) ** 2) + (yy - 64) ** 2) / (2 * 30**2))
    img = 0.05 + nebula + rng.normal(0, 0.003, (n, n))
    stars = []
    while len(stars) < 12:
        x, y = rng.uniform(8, n - 8, 2)
        if all((x - a) ** 2 + (y - b) ** 2 > 15**2 for a, b in stars):
            stars.append((x, y))
    for x, y in stars:
        img += rng.uniform(0.1, 0.5) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    return img.astype(np.float32), stars, xx, yy


def test_star_mask_covers_stars_not_nebula():
    img, stars, xx, yy = _field()
    m = masks.star_mask(img)
    for x, y in stars:
        assert m[int(round(y)), int(round(x))] > 0.5
    far = np.ones(img.shape, dtype=bool)
    for x, y in stars:
        far &= (xx - x) ** 2 + (yy - y) ** 2 > 8**2
    assert np.percentile(m[far], 99) < 0.05  # the nebula's core is not a star
    b = masks.star_mask(img, smoothness=0)
    assert set(np.unique(b)) <= {0.0, 1.0}
    grown = masks.star_mask(img, smoothness=0, grow=3)
    assert grown.sum() > b.sum()


def test_color_mask_selects_hue():
    rgb = np.full((3, 8, 12), 0.1, dtype=np.float32)
    rgb[:, :, :4] = np.array([0.9, 0.1, 0.1])[:, None, None]  # red
    rgb[:, :, 4:8] = np.array([0.1, 0.1, 0.9])[:, None, None]  # blue
    red = masks.color_mask(rgb, "red", blur=0)
    assert red[:, :4].min() > 0.5 and red[:, 4:].max() == 0.0
    blue = masks.color_mask(rgb, "blue", blur=0)
    assert blue[:, 4:8].min() > 0.3 and blue[:, :4].max() == 0.0
    custom = masks.color_mask(rgb, (200, 280), blur=0)
    assert np.array_equal(custom > 0, blue > 0)
    blurred = masks.color_mask(rgb, "red", blur=2)
    assert 0 < blurred[4, 5] < blurred[4, 1]  # the edge softens
    with pytest.raises(ValueError, match="colour"):
        masks.color_mask(rgb[0], "red")
    with pytest.raises(ValueError, match="unknown colour"):
        masks.color_mask(rgb, "purple")
