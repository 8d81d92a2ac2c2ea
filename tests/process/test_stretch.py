"""Stretches against PixInsight's published formulas, on hand-computed cases."""

import numpy as np
import pytest

from pxlang.process.stretch import (
    auto_stretch,
    curve,
    curves_transform,
    histogram_transform,
    mtf,
    stf_params,
)


def test_mtf_hand_values_and_identities():
    # mtf(m, x) = (m-1)x / ((2m-1)x - m): m=0.25, x=0.1 -> (-0.075)/(-0.05-0.25) = 0.25
    assert float(mtf(0.25, 0.1)) == pytest.approx(0.25)
    # m=0.2, x=0.5 -> (-0.4)/(-0.3-0.2) = 0.8
    assert float(mtf(0.2, 0.5)) == pytest.approx(0.8)
    x = np.linspace(0, 1, 101)
    assert np.allclose(mtf(0.5, x), x)
    for m in (0.01, 0.2, 0.7):
        assert float(mtf(m, m)) == pytest.approx(0.5)
        assert np.allclose(mtf(1 - m, mtf(m, x)), x, atol=1e-12)
    assert float(mtf(0.3, -0.2)) == 0.0 and float(mtf(0.3, 1.5)) == 1.0


def test_ht_hand_computed():
    data = np.array([[0.0, 0.1, 0.3, 0.6, 0.9]], dtype=np.float32)
    out = histogram_transform(data, shadows=0.1, midtones=0.2, highlights=0.6)
    # clip to [0.1, 0.6], rescale: [0, 0, 0.4, 1, 1]; mtf(0.2, 0.4) = (-0.32)/(-0.24-0.2)
    assert np.allclose(out, [[0, 0, 0.32 / 0.44, 1, 1]], atol=1e-6)
    # output range expansion
    out2 = histogram_transform(data, 0.1, 0.5, 0.6, low=0.2, high=0.8)
    assert np.allclose(out2, [[0.2, 0.2, 0.2 + 0.6 * 0.4, 0.8, 0.8]], atol=1e-6)


def test_stf_mono_hand_computed():
    # median 0.10; |x - med| = 0.02, 0.01, 0, 0.01, 0.02 -> MAD 0.01; sigma = 0.014826
    data = np.array([[0.08, 0.09, 0.10, 0.11, 0.12]], dtype=np.float32)
    ((c0, m, c1),) = stf_params(data)
    c0_hand = 0.10 - 2.8 * 0.014826  # 0.0584872
    x = 0.10 - c0_hand  # 0.0415128
    m_hand = (0.25 - 1) * x / ((2 * 0.25 - 1) * x - 0.25)  # mtf(0.25, x)
    assert c0 == pytest.approx(c0_hand, abs=1e-6)
    assert m == pytest.approx(m_hand, abs=1e-6)
    assert m == pytest.approx(0.114992, abs=1e-5)
    assert c1 == 1.0
    stretched = auto_stretch(data)
    expected = mtf(m_hand, (np.clip(data, c0_hand, 1) - c0_hand) / (1 - c0_hand))
    assert np.allclose(stretched, expected, atol=1e-5)


def test_stf_colour_linked_and_unlinked():
    r = [0.08, 0.09, 0.10, 0.11, 0.12]  # med 0.10, MAD 0.01
    g = [0.16, 0.18, 0.20, 0.22, 0.24]  # med 0.20, MAD 0.02
    b = [0.76, 0.78, 0.80, 0.82, 0.84]  # med 0.80, MAD 0.02: "inverted" channel
    data = np.array([[r], [g], [b]], dtype=np.float32)
    linked = stf_params(data, linked=True)
    # 2 of 3 channels non-inverted -> non-inverted branch averaged over all three
    c0 = ((0.10 - 2.8 * 0.014826) + (0.20 - 2.8 * 0.029652) + (0.80 - 2.8 * 0.029652)) / 3
    x = (0.10 + 0.20 + 0.80) / 3 - c0
    m = (0.25 - 1) * x / ((2 * 0.25 - 1) * x - 0.25)
    for p in linked:
        assert (
            p[0] == pytest.approx(c0, abs=1e-6)
            and p[1] == pytest.approx(m, abs=1e-6)
            and p[2] == 1.0
        )
    unl = stf_params(data, linked=False)
    assert unl[1][0] == pytest.approx(0.20 - 2.8 * 0.029652, abs=1e-6)
    # inverted channel: c1 = med - C*sigma, m = mtf(c1 - med, target) with mtf(m, x) args
    c1 = 0.80 + 2.8 * 0.029652
    xm, tb = c1 - 0.80, 0.25
    m_inv = (xm - 1) * tb / ((2 * xm - 1) * tb - xm)
    assert unl[2][0] == 0.0 and unl[2][2] == pytest.approx(c1, abs=1e-6)
    assert unl[2][1] == pytest.approx(m_inv, abs=1e-6)


def test_stf_zero_mad_keeps_shadows_at_zero():
    data = np.full((4, 4), 0.2, dtype=np.float32)
    ((c0, m, _),) = stf_params(data)
    assert c0 == 0.0
    assert float(mtf(m, 0.2)) == pytest.approx(0.25)


def test_curves_identity_and_monotone_points():
    x = np.linspace(0, 1, 257, dtype=np.float32).reshape(1, -1)
    assert np.allclose(curves_transform(x, [[0.5, 0.5]]), x, atol=1e-6)
    f = curve([[0.25, 0.4], [0.75, 0.9]])
    assert float(f(np.array(0.25))) == pytest.approx(0.4)
    assert float(f(np.array(0.75))) == pytest.approx(0.9)
    y = f(x.ravel())
    assert np.all(np.diff(y) >= -1e-9)  # Akima does not overshoot on monotone data


def test_curves_on_colour_channels():
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0.1, 0.9, (3, 8, 8)).astype(np.float32)
    out = curves_transform(rgb, [[0.5, 0.7]], channel="R")
    assert np.array_equal(out[1:], rgb[1:]) and np.all(out[0] >= rgb[0] - 1e-6)
    from pxlang.process.color import rgb_to_lab

    lout = curves_transform(rgb, [[0.5, 0.5]], channel="L")
    assert np.allclose(lout, rgb, atol=1e-4)
    with pytest.raises(ValueError, match="colour image"):
        curves_transform(rgb[0], [[0.5, 0.6]], channel="L")
    assert (
        rgb_to_lab(curves_transform(rgb, [[0.5, 0.6]], channel="L"))[0].mean()
        > rgb_to_lab(rgb)[0].mean()
    )


def test_bad_parameters():
    with pytest.raises(ValueError, match="shadows < highlights"):
        histogram_transform(np.zeros((2, 2)), shadows=0.5, highlights=0.4)
    with pytest.raises(ValueError, match="one per channel"):
        histogram_transform(np.zeros((3, 2, 2)), midtones=[0.5, 0.5])
