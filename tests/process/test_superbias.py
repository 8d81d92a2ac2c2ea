"""Superbias against a known column pattern."""

from __future__ import annotations

import numpy as np
import pytest

from pxlang.process import integration as ig
from pxlang.process.superbias import large_scale, superbias


def bias_truth(h=128, w=160, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    columns = 0.0008 * rng.standard_normal(w)
    columns[37] += 0.004  # a bright column
    smooth = 0.03 + 0.002 * (xx / w) + 0.001 * np.exp(-((xx - w) ** 2 + yy**2) / 2000.0)
    return (smooth + columns[None, :]).astype(np.float32)


def test_superbias_beats_the_master_it_comes_from():
    truth = bias_truth()
    rng = np.random.default_rng(1)
    frames = (truth[None] + rng.normal(0, 0.004, (20,) + truth.shape)).astype(np.float32)
    master = ig.integrate(frames, rejection="winsorized").data
    sb = superbias(master)
    err_master = np.sqrt(np.mean((master - truth) ** 2))
    err_super = np.sqrt(np.mean((sb - truth) ** 2))
    assert err_master == pytest.approx(0.004 / np.sqrt(20), rel=0.1)
    assert err_super < 0.35 * err_master
    # the column pattern itself, bright column included, is kept
    col_truth = truth.mean(0) - truth.mean()
    col_super = sb.mean(0) - sb.mean()
    assert np.corrcoef(col_truth, col_super)[0, 1] > 0.99
    assert sb[:, 37].mean() - sb[:, 36].mean() > 0.003


def test_rows_and_shapes():
    rng = np.random.default_rng(2)
    rows = 0.001 * rng.standard_normal(64)
    img = (0.02 + rows[:, None] + np.zeros((64, 48))).astype(np.float32)
    sb = superbias(img, columns=False, rows=True)
    np.testing.assert_allclose(sb, img, atol=2e-4)
    colour = np.stack([img, img, img])
    assert superbias(colour, rows=True).shape == (3, 64, 48)
    with pytest.raises(ValueError, match="layers"):
        superbias(img, layers=0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        superbias(np.zeros(5, np.float32))


def test_large_scale_of_a_plane_is_the_plane():
    # away from the mirrored edges (the B3 kernels of 3 layers reach 2*(1+2+4) = 14 pixels)
    yy, xx = np.mgrid[0:80, 0:90]
    plane = 0.1 + 0.001 * xx + 0.002 * yy
    ls = large_scale(plane, 3)
    np.testing.assert_allclose(ls[14:-14, 14:-14], plane[14:-14, 14:-14], atol=1e-9)


def _smooth_axis_reference(x, axis, step):
    """The à trous pass as numpy does it (padded copy, five shifted sums): the kernel's oracle."""
    n = x.shape[axis]
    pad = 2 * step
    widths = [(0, 0)] * x.ndim
    widths[axis] = (pad, pad)
    xp = np.pad(x, widths, mode="symmetric")
    out = np.zeros_like(x)
    for k, h in zip(range(-2, 3), np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0):
        sl = [slice(None)] * x.ndim
        sl[axis] = slice(pad + k * step, pad + k * step + n)
        out += h * xp[tuple(sl)]
    return out


@pytest.mark.parametrize("axis", [-1, -2])
@pytest.mark.parametrize("step", [1, 2, 8, 32])
def test_the_smoothing_kernel_gives_numpys_sums_to_the_last_bit(axis, step):
    from pxlang.process.superbias import _smooth_axis

    x = np.random.default_rng(step).standard_normal((70, 90))
    assert np.array_equal(_smooth_axis(x, axis, step), _smooth_axis_reference(x, axis, step))


def test_large_scale_in_two_planes_is_the_layered_smoothing():
    # large_scale passes back and forth between two planes: the same values as a new array
    # for every pass (numpy's oracle), the input untouched
    x = np.random.default_rng(5).standard_normal((60, 75))
    before = x.copy()
    want = x
    for j in range(4):
        want = _smooth_axis_reference(_smooth_axis_reference(want, -1, 2**j), -2, 2**j)
    out, work = np.empty_like(x), np.empty_like(x)
    got = large_scale(x, 4, out=out, work=work)
    assert got is out
    assert np.array_equal(got, want)
    assert np.array_equal(x, before)


def test_the_smoothing_kernel_refuses_to_write_over_its_input():
    from pxlang.process.pixel_kernels import atrous_b3

    x = np.ones((20, 20))
    with pytest.raises(ValueError, match="apart from x"):
        atrous_b3(x, 0, 1, out=x)
    with pytest.raises(ValueError, match="apart from x"):
        atrous_b3(x, 0, 1, out=np.empty((20, 20), np.float32))
    with pytest.raises(ValueError, match="step"):
        atrous_b3(np.zeros((20, 9)), 1, 5)  # a tap would be mirrored twice
