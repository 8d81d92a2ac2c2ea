"""Local normalization removes gradients and level/scale differences."""

import numpy as np
import pytest

from pxlang.process.normalization import local_normalization, normalize
from pxlang.process.stars import render_stars

S = 320
SIGMA = 0.003


def scene(rng):
    x, y = rng.uniform(6, S - 6, (2, 250))
    stars = render_stars((S, S), x, y, 10 ** rng.uniform(-0.5, 0.7, 250), 3.0)
    yy, xx = np.mgrid[0:S, 0:S] / S
    nebula = 0.02 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.02)  # extended signal
    return stars + nebula.astype(np.float32), xx, yy


def block_means(d, b=32):
    return d.reshape(S // b, b, S // b, b).mean(axis=(1, 3))


def test_gradient_and_levels_removed_within_noise():
    rng = np.random.default_rng(7)
    sig, xx, yy = scene(rng)
    ref = (sig + 0.10 + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    gradient = 0.03 * xx + 0.02 * yy**2  # light pollution, a different sky
    tgt = (0.7 * sig + 0.05 + gradient + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    out, model = normalize(ref, tgt, scale=64)
    assert abs(model.scale - 1 / 0.7) / (1 / 0.7) < 0.02  # transparency recovered from stars
    assert model.stars_used > 50
    before = block_means(tgt - ref)
    after = block_means(out - ref)
    noise_per_block = np.std(out - ref) / 32  # the noise of a 32×32 block mean
    assert np.sqrt(np.mean(before**2)) > 100 * noise_per_block
    # what is left is of the order of the noise (background-model error included)
    assert np.sqrt(np.mean(after**2)) < 3 * noise_per_block
    # no residual slope across the field
    assert abs(after[:, -1].mean() - after[:, 0].mean()) < 3 * noise_per_block


def test_scale_of_a_registered_frame_and_of_a_starless_one():
    """A registered frame is NaN outside its footprint, with a steep gradient: the star
    fluxes (local annuli, no background model of the frame) still give its scale; without
    stars the dispersions above the background do."""
    rng = np.random.default_rng(10)
    sig, xx, yy = scene(rng)
    ref = (sig + 0.10 + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    tgt = (0.7 * sig + 0.05 + 0.2 * xx + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    tgt[:, :9] = np.nan  # the dither left these columns uncovered
    tgt[-5:] = np.nan
    model = local_normalization(ref, tgt, scale=64)
    assert abs(model.scale - 1 / 0.7) / (1 / 0.7) < 0.02 and model.stars_used > 50
    # stars whose annuli reach into the uncovered columns: those read as sky, not as 0
    y = np.linspace(20, 300, 30)
    edge = render_stars((S, S), rng.uniform(13, 16, 30), y, np.full(30, 3.0), 3.0)
    ref = (edge + 0.1 + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    tgt = (0.7 * edge + 0.3 + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    tgt[:, :9] = np.nan
    model = local_normalization(ref, tgt, scale=64)
    assert abs(model.scale - 1 / 0.7) / (1 / 0.7) < 0.02 and model.stars_used >= 10
    # no stars: a smooth nebula only, scaled by 0.5
    nebula = 0.02 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.02)
    ref = (nebula + 0.1 + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    tgt = (0.5 * nebula + 0.05 + rng.normal(0, SIGMA / 2, sig.shape)).astype(np.float32)
    tgt[:, :9] = np.nan
    model = local_normalization(ref, tgt, scale=64)
    assert model.stars_used < 5 and abs(model.scale - 2.0) < 0.1


def test_identical_frames_unchanged_and_band_apply():
    rng = np.random.default_rng(8)
    sig, _, _ = scene(rng)
    ref = (sig + 0.1 + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    model = local_normalization(ref, ref, scale=64)
    assert abs(model.scale - 1) < 1e-3
    assert np.allclose(model.apply(ref), ref, atol=1e-5)
    band = model(ref[100:150], 100, 150)  # row bands for streamed integration
    assert np.allclose(band, model.apply(ref)[100:150])
    # in place, as integration applies it: the same values to the last bit
    tgt = (ref * 1.3 + 0.02).astype(np.float32)
    other = local_normalization(ref, tgt, scale=64)
    inplace = tgt[37:101].copy()
    other.apply_into(inplace, 37)
    assert np.array_equal(inplace, other(tgt[37:101], 37, 101))
    # the compact offset grid reproduces the map it was sampled from, anywhere
    full = model.offset
    assert full.shape == (S, S)
    assert np.allclose(
        model.offset_at(np.array([0.0, 317.0, 123.5]), np.array([319.0, 0.0, 77.25])),
        [
            full[319, 0],
            full[0, 317],
            0.5 * (full[77, 123] + full[77, 124]) * 0.75
            + 0.5 * (full[78, 123] + full[78, 124]) * 0.25,
        ],
        atol=1e-6,
    )


def test_colour_and_bad_input():
    rng = np.random.default_rng(9)
    sig, xx, _ = scene(rng)
    ref = np.stack([sig + 0.1 + c * 0.01 for c in range(3)]).astype(np.float32)
    tgt = np.stack([sig * 0.9 + 0.05 + 0.02 * xx for _ in range(3)]).astype(np.float32)
    out, models = normalize(ref, tgt, scale=64)
    assert out.shape == (3, S, S) and len(models.models) == 3
    assert np.allclose(models(tgt[:, 10:20], 10, 20), out[:, 10:20], atol=1e-6)
    inplace = tgt[:, 10:20].copy()
    models.apply_into(inplace, 10)
    assert np.array_equal(inplace, models(tgt[:, 10:20], 10, 20))
    assert np.abs(block_means(out[2] - ref[2])).max() < 0.002
    with pytest.raises(ValueError, match="differ"):
        normalize(ref[0], ref[0][:, :100])
    with pytest.raises(ValueError, match="at least 16"):
        local_normalization(ref[0], ref[0], scale=4)


def test_prepared_reference_and_plain_array_round_trip():
    from pxlang.process.normalization import (
        ColourNormalization,
        model_from_arrays,
        model_to_arrays,
        prepare_reference,
    )

    rng = np.random.default_rng(10)
    sig, xx, yy = scene(rng)
    ref = (sig + 0.1 + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
    targets = [
        (k * sig + 0.05 + 0.02 * xx + rng.normal(0, SIGMA, sig.shape)).astype(np.float32)
        for k in (0.6, 0.8)
    ]
    prepared = prepare_reference(ref, scale=64)
    for tgt in targets:
        direct = local_normalization(ref, tgt, scale=64)
        shared = local_normalization(prepared, tgt, scale=64)
        assert shared.scale == direct.scale and shared.stars_used == direct.stars_used > 20
        np.testing.assert_array_equal(shared.grid, direct.grid)
    # a prepared reference at another scale is not used blindly
    other = local_normalization(prepared, targets[0], scale=32)
    assert other.step == local_normalization(ref, targets[0], scale=32).step
    # models travel through plain arrays (the per-frame cache), mono and colour
    mono = local_normalization(prepared, targets[0], scale=64)
    back = model_from_arrays(model_to_arrays(mono))
    assert (back.scale, back.step, back.shape, back.stars_used) == (
        mono.scale,
        mono.step,
        mono.shape,
        mono.stars_used,
    )
    np.testing.assert_array_equal(back(targets[0]), mono(targets[0]))
    colour = ColourNormalization([mono, local_normalization(prepared, targets[1], scale=64)])
    back = model_from_arrays(model_to_arrays(colour))
    assert isinstance(back, ColourNormalization) and len(back.models) == 2
    pair = np.stack(targets)
    np.testing.assert_array_equal(back(pair[:, 5:30], 5, 30), colour(pair[:, 5:30], 5, 30))
