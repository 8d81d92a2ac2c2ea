"""Star detection and PSF fitting against synthetic truth."""

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from pxlang.process.stars import StarTable, find_stars, fit_psf, render_stars, stamps_at


def field(rng, n=120, size=384, fwhm=3.5, beta=None, ratio=1.0, angle=0.0, noise=0.002):
    # stars kept apart so blends do not enter the truth comparison
    pts = []
    while len(pts) < n:
        p = rng.uniform(15, size - 15, 2)
        if all(np.hypot(*(p - q)) > 14 for q in pts):
            pts.append(p)
    xy = np.array(pts)
    flux = 10 ** rng.uniform(-0.5, 0.5, n)  # peaks 0.02..0.2 over a 0.1 sky
    img = render_stars(
        (size, size), xy[:, 0], xy[:, 1], flux, fwhm, beta=beta, ratio=ratio, angle=angle
    )
    img = img + 0.1 + rng.normal(0, noise, img.shape).astype(np.float32)
    return img.astype(np.float32), xy, flux


@pytest.mark.parametrize(("beta", "model"), [(None, "gaussian"), (3.0, "moffat"), (2.5, "moffat")])
def test_fwhm_within_5_percent(beta, model):
    rng = np.random.default_rng(1)
    img, xy, _ = field(rng, fwhm=3.5, beta=beta)
    tab = find_stars(img, model=model)
    assert isinstance(tab, StarTable)
    assert tab.fitted.sum() > 80
    fwhm = np.median(tab.fwhm[tab.fitted])
    assert abs(fwhm - 3.5) / 3.5 < 0.05
    ecc = np.median(tab.eccentricity[tab.fitted])
    assert ecc < 0.3  # round stars


def test_positions_and_count():
    rng = np.random.default_rng(2)
    img, xy, _ = field(rng)
    tab = find_stars(img, model="gaussian")
    d, _ = cKDTree(xy).query(tab.xy())
    assert len(tab) >= 110 and np.all(d < 0.5)
    ok = tab.fitted
    assert np.sqrt(np.mean(d[ok] ** 2)) < 0.05
    assert np.all(
        np.diff(tab.flux[~np.isnan(tab.flux)][:5]) <= 1e9
    )  # brightest first (flux sorted at detection)


def test_eccentricity_of_elongated_stars():
    rng = np.random.default_rng(3)
    img, _, _ = field(rng, fwhm=4.5, beta=3.0, ratio=0.6, angle=0.4)
    tab = find_stars(img)
    ok = tab.fitted
    expected = np.sqrt(1 - 0.6**2)  # 0.8
    assert abs(np.median(tab.eccentricity[ok]) - expected) < 0.05
    assert abs(np.median(tab.fwhm_minor[ok] / tab.fwhm_major[ok]) - 0.6) < 0.06
    theta = np.median(np.mod(tab.theta[ok], np.pi))
    assert abs(theta - 0.4) < 0.05


def test_saturated_stars_flagged_and_not_fitted():
    rng = np.random.default_rng(4)
    img, xy, flux = field(rng, n=40)
    img = img.copy()
    big = render_stars(img.shape, [200.0], [200.0], [40.0], 3.5)
    img = np.minimum(img + big, 1.0).astype(np.float32)
    tab = find_stars(img, saturation=1.0)
    i = np.argmin(np.hypot(tab.x - 200, tab.y - 200))
    assert tab.saturated[i]
    assert np.isnan(tab.fwhm[i])
    assert tab.saturated.sum() == 1


def test_noise_only_gives_empty_table():
    rng = np.random.default_rng(5)
    img = (0.1 + rng.normal(0, 0.002, (128, 128))).astype(np.float32)
    tab = find_stars(img)
    assert len(tab) == 0
    assert "0 stars" in tab.describe()


def test_batched_fit_matches_scipy_least_squares():
    rng = np.random.default_rng(6)
    img, xy, _ = field(rng, n=5, size=96, beta=3.0, fwhm=3.0, noise=0.0003)
    stamps, inside, cx, cy = stamps_at(img - 0.1, xy[:, 0], xy[:, 1], 8)
    init = np.column_stack(
        [
            np.zeros(len(cx)),
            stamps.max(axis=(1, 2)),
            xy[inside, 0] - cx,
            xy[inside, 1] - cy,
            np.full(len(cx), 0.2),
            np.full(len(cx), 0.2),
            np.zeros(len(cx)),
            np.full(len(cx), 2.0),
        ]
    )
    params, ok = fit_psf(stamps, init, "moffat")
    assert ok.all()
    yy, xx = np.mgrid[-8:9, -8:9]
    for k in range(len(cx)):

        def resid(p, k=k):
            q = p[4] * (xx - p[2]) ** 2 + p[5] * (yy - p[3]) ** 2 + p[6] * (xx - p[2]) * (yy - p[3])
            return (p[0] + p[1] * (1 + q) ** -p[7] - stamps[k]).ravel()

        lo = [-np.inf, 0, -3, -3, 1e-4, 1e-4, -1, 1.0]
        hi = [np.inf, np.inf, 3, 3, 10, 10, 1, 20]
        ref = least_squares(resid, init[k], bounds=(lo, hi), x_scale="jac").x
        assert np.allclose(params[k, 2:4], ref[2:4], atol=2e-3)
        assert np.allclose(params[k, 7], ref[7], rtol=2e-2)
        assert np.allclose(params[k, 4:7], ref[4:7], rtol=2e-2, atol=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        find_stars(np.zeros((3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="moffat"):
        find_stars(np.zeros((64, 64), np.float32), model="airy")


@pytest.mark.parametrize("kind", ["gaussian", "moffat"])
def test_analytic_jacobian_matches_finite_differences(kind):
    from pxlang.process.stars import _model_jac

    rng = np.random.default_rng(8)
    n = 6
    params = np.column_stack(
        [
            rng.normal(0, 0.01, n),
            rng.uniform(0.05, 0.2, n),
            rng.uniform(-0.5, 0.5, (n, 2)),
            rng.uniform(0.15, 0.3, (n, 2)),
            rng.uniform(-0.05, 0.05, n),
            rng.uniform(2.0, 4.0, n),
        ]
    )
    if kind == "gaussian":
        params = params[:, :7]
    yy, xx = np.mgrid[-6:7, -6:7]
    dx, dy = xx.ravel().astype(float), yy.ravel().astype(float)
    model, jac = _model_jac(params, dx, dy, kind)
    for j in range(params.shape[1]):
        h = 1e-6
        up, down = params.copy(), params.copy()
        up[:, j] += h
        down[:, j] -= h
        numeric = (
            _model_jac(up, dx, dy, kind, False)[0] - _model_jac(down, dx, dy, kind, False)[0]
        ) / (2 * h)
        np.testing.assert_allclose(jac[..., j], numeric, rtol=1e-5, atol=1e-8)


def test_star_table_round_trip_through_plain_arrays(tmp_path):
    rng = np.random.default_rng(9)
    img, _, _ = field(rng, n=30, size=160)
    tab = find_stars(img)
    np.savez(tmp_path / "t.npz", **tab.to_arrays())
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:
        back = StarTable.from_arrays(z)
    for name in ("x", "y", "flux", "fwhm", "eccentricity", "peak", "saturated", "beta", "theta"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tab, name))
    assert back.saturated.dtype == bool
    assert (back.background, back.noise, back.model) == (tab.background, tab.noise, tab.model)
