"""Each rejection method against a plain, literal reference implementation of its definition
(PixInsight ImageIntegration), pixel stack by pixel stack, on small random inputs."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from scipy.stats import chi2
from scipy.stats import t as student_t

from pxlang.process import rejection as rj

# ---------------------------------------------------------------- reference implementations
# Each takes one pixel stack (1-D, float64) and returns boolean arrays (low, high) of the
# values rejected, in the stack's own order.


def _median(s):
    return float(np.median(s))


def _sd(s):
    return float(np.std(s, ddof=1))


def ref_minmax(x, lo, hi):
    order = np.argsort(x, kind="stable")
    low = np.zeros(x.size, bool)
    high = np.zeros(x.size, bool)
    nl, nh = min(int(lo), x.size), min(int(hi), x.size)
    low[order[:nl]] = True
    high[order[x.size - nh :]] = True
    high &= ~low
    return low, high


def ref_percentile(x, lo, hi):
    m = _median(x)
    return (m - x) / m > lo, (x - m) / m > hi


def _iterate(x, lo, hi, centre_scale):
    keep = np.ones(x.size, bool)
    low = np.zeros(x.size, bool)
    high = np.zeros(x.size, bool)
    state = {}
    while keep.sum() >= 3:
        k = x[keep]
        m, s = centre_scale(k, state)
        if s < 2.2e-16:
            break
        rl = keep & ((m - x) / s > lo)
        rh = keep & ((x - m) / s > hi)
        if not (rl.any() or rh.any()):
            break
        low |= rl
        high |= rh
        keep &= ~(rl | rh)
    return low, high


def ref_sigma(x, lo, hi):
    return _iterate(x, lo, hi, lambda k, st: (_median(k), _sd(k)))


def ref_poisson_k(stack):
    """Averaged sigma's noise constant k (sigma^2 = k * signal) of a whole (N, H, W) stack:
    the median over pixels of sample variance / median / median(chi2(n-1)/(n-1))."""
    est = []
    for s in stack.reshape(stack.shape[0], -1).T.astype(np.float64):
        s = s[np.isfinite(s)]
        if s.size >= 3 and np.median(s) > 0:
            c = chi2.median(s.size - 1) / (s.size - 1)
            est.append(np.var(s, ddof=1) / np.median(s) / c)
    return float(np.median(est))


def ref_averaged_sigma(x, lo, hi, k):
    return _iterate(x, lo, hi, lambda kept, st: (_median(kept), np.sqrt(k * _median(kept))))


def winsorized_sigma(k):
    """PixInsight's RejectionWinsorization, literally: clamp a working copy in place."""
    m = _median(k)
    sigma = _sd(k)
    v = k.copy()
    it = 0
    while True:
        if sigma < 2.2e-16:
            break
        t0, t1 = m - 1.5 * sigma, m + 1.5 * sigma
        v = np.where(v < t0, t0, np.where(v > t1, t1, v))
        s0 = sigma
        sigma = 1.134 * _sd(v)
        it += 1
        if it > 1 and abs(s0 - sigma) / s0 < 0.0005:
            break
    return m, sigma


def ref_winsorized(x, lo, hi):
    return _iterate(x, lo, hi, lambda k, st: winsorized_sigma(k))


def lad_line(y):
    """Least absolute deviation line through (rank, y), by brute force: the cost, minimised
    over the offset (the median of the residuals), is convex and piecewise linear in the
    slope, so its minimum is at one of the slopes between two points. The offset is that
    median (even counts: the mean of the middle two)."""
    r = np.arange(y.size, dtype=np.float64)

    def cost(b):
        a = np.median(y - b * r)
        return np.abs(y - a - b * r).sum(), a

    slopes = {(y[j] - y[i]) / (j - i) for i, j in itertools.combinations(range(y.size), 2)}
    b = min(sorted(slopes), key=lambda b: cost(b)[0])
    return cost(b)[1], b


def ref_linear_fit(x, lo, hi):
    order = np.argsort(x, kind="stable")
    y = x[order]
    keep = np.ones(y.size, bool)
    low = np.zeros(y.size, bool)
    high = np.zeros(y.size, bool)
    if y.size < 5:
        return low, high
    while True:
        yk = y[keep]
        a, b = lad_line(yk)
        fit = a + b * np.arange(yk.size)
        s = 2 * np.mean(np.abs(yk - fit)) * np.sqrt(1 + b * b)
        if s < 2.2e-16:
            break
        idx = np.nonzero(keep)[0]
        rl = (fit - yk) / s >= lo
        rh = ((yk - fit) / s >= hi) & (yk >= fit)
        rl &= yk < fit
        if not (rl.any() or rh.any()):
            break
        low[idx[rl]] = True
        high[idx[rh]] = True
        keep[idx[rl | rh]] = False
        if keep.sum() < 3:
            break
    # back to the stack's order; a rejected value counts low in the lower half of the sort
    out_l = np.zeros(x.size, bool)
    out_h = np.zeros(x.size, bool)
    rej = low | high
    half = np.arange(y.size) < y.size // 2
    out_l[order] = rej & half
    out_h[order] = rej & ~half
    return out_l, out_h


def ref_esd(x, frac, alpha, relax=1.0):
    """Generalised ESD as PixInsight: trimmed-mean centre, asymmetric relaxation."""
    n = x.size
    order = np.argsort(x, kind="stable")
    xs = list(x[order])
    ids = list(range(n))
    k = min(max(int(frac * n), 1), n - 2)
    stats = []
    for i in range(k):
        nn = len(xs)
        th = max(1, int(frac * nn) - i)
        tl = max(1, int(frac / relax * nn) - i)
        arr = np.array(xs)
        m = arr[tl : nn - th].mean() if th + tl < nn - 2 else np.median(arr)
        sh = np.sqrt(np.sum((arr - m) ** 2) / (nn - 1))
        sl = relax * sh
        r = np.where(arr - m >= 0, (arr - m) / sh, (m - arr) / sl)
        imax = int(np.argmax(r))
        stats.append((r[imax], ids[imax]))
        del xs[imax]
        del ids[imax]
    nc = 0
    for i, (t, _) in enumerate(stats):
        p = alpha / 2 / (n - i)
        tq = student_t.isf(p, n - i - 2)
        lam = tq * (n - i - 1) / np.sqrt((n - i - 2 + tq * tq) * (n - i))
        if t < lam:
            break
        nc += 1
    low = np.zeros(n, bool)
    high = np.zeros(n, bool)
    med = np.median(x)
    for _, j in stats[:nc]:
        if x[order][j] > med:
            high[order[j]] = True
        else:
            low[order[j]] = True
    return low, high


REFERENCES = {
    "minmax": ref_minmax,
    "percentile": ref_percentile,
    "sigma": ref_sigma,
    "averaged_sigma": ref_averaged_sigma,
    "winsorized": ref_winsorized,
    "linear_fit": ref_linear_fit,
    "esd": ref_esd,
}


def _stack(n, seed, h=5, w=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 0.01, (n, h, w))
    # outliers of both signs and sizes, to exercise several iterations
    k = rng.integers(0, n, size=(h, w))
    x[k, np.arange(h)[:, None], np.arange(w)[None, :]] += rng.choice([-0.1, 0.05, 0.2], (h, w))
    x[rng.integers(0, n), 0, :] += 0.5
    return x.astype(np.float32)


@pytest.mark.parametrize("method", sorted(REFERENCES))
@pytest.mark.parametrize("n", [6, 11, 20, 31])
def test_method_matches_reference(method, n):
    x = _stack(n, seed=n)
    lowp, highp = rj.DEFAULTS[method]
    if method in ("sigma", "averaged_sigma", "winsorized"):
        lowp, highp = 2.5, 2.0  # tighter than the defaults: more values rejected, more iterations
    if method == "linear_fit":
        lowp, highp = 3.0, 2.5
    lmask, hmask = rj.rejection_masks(x, method, lowp, highp)
    ref = REFERENCES[method]
    if method == "averaged_sigma":  # one noise constant for the whole stack
        k = ref_poisson_k(x)
        assert rj.estimate_poisson_k(x) == pytest.approx(k, rel=1e-6)
        ref = functools.partial(ref_averaged_sigma, k=k)
    total = 0
    for r in range(x.shape[1]):
        for c in range(x.shape[2]):
            s = x[:, r, c].astype(np.float64)
            el, eh = ref(s, lowp, highp)
            if method == "linear_fit":
                # compare which values are rejected, and the low/high split
                assert np.array_equal(lmask[:, r, c] | hmask[:, r, c], el | eh), (r, c)
            else:
                assert np.array_equal(lmask[:, r, c], el), (method, r, c, s)
                assert np.array_equal(hmask[:, r, c], eh), (method, r, c, s)
            total += int(el.sum() + eh.sum())
    # the inputs carry outliers: a method that rejects nothing would pass vacuously
    assert total > 0


@pytest.mark.parametrize("combine", ["average", "median", "min", "max"])
def test_combine_of_kept_values(combine):
    x = _stack(15, seed=3)
    out, nl, nh, nv = rj.integrate_band(x, method="sigma", low=2.5, high=2.0, combine=combine)
    lmask, hmask = rj.rejection_masks(x, "sigma", 2.5, 2.0)
    keep = ~(lmask | hmask)
    fn = {"average": np.mean, "median": np.median, "min": np.min, "max": np.max}[combine]
    for r in range(x.shape[1]):
        for c in range(x.shape[2]):
            expect = fn(x[keep[:, r, c], r, c].astype(np.float64))
            assert out[r, c] == pytest.approx(expect, rel=1e-6, abs=1e-7)
    assert np.array_equal(nl, lmask.sum(0)) and np.array_equal(nh, hmask.sum(0))
    assert (nv == 15).all()


def test_weighted_average_and_normalisation():
    rng = np.random.default_rng(7)
    x = rng.normal(0.2, 0.01, (8, 4, 5)).astype(np.float32)
    w = np.arange(1, 9, dtype=np.float32)
    a = np.linspace(0.9, 1.1, 8).astype(np.float32)
    b = np.linspace(-0.01, 0.01, 8).astype(np.float32)
    out, *_ = rj.integrate_band(x, method="none", weights=w, scale=a, offset=b)
    y = x.astype(np.float64) * a[:, None, None] + b[:, None, None]
    expect = (y * w[:, None, None]).sum(0) / w.sum()
    np.testing.assert_allclose(out, expect, rtol=1e-5)


def test_missing_values_are_ignored():
    x = np.full((6, 2, 3), 0.5, np.float32)
    x[:, 0, 0] = [0.1, 0.2, np.nan, 0.3, np.inf, np.nan]
    x[:, 1, 2] = np.nan
    out, nl, nh, nv = rj.integrate_band(x, method="none")
    assert out[0, 0] == pytest.approx(0.2)
    assert nv[0, 0] == 3 and nv[1, 2] == 0 and np.isnan(out[1, 2])


def test_sorting_network_sorts():
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 5, 8, 13, 50, 101]:
        x = rng.normal(size=(n, 1, 9)).astype(np.float32)
        out, *_ = rj.integrate_band(x, method="none", combine="median")
        np.testing.assert_allclose(out[0], np.median(x[:, 0], axis=0), rtol=1e-6)


def test_auto_rule_and_bad_arguments():
    assert [rj.auto_rejection(n) for n in (3, 6, 7, 14, 15, 24, 25, 500)] == [
        "percentile",
        "percentile",
        "averaged_sigma",
        "averaged_sigma",
        "winsorized",
        "winsorized",
        "linear_fit",
        "linear_fit",
    ]
    x = np.zeros((3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown rejection 'sigmaclip'"):
        rj.integrate_band(x, method="sigmaclip")
    with pytest.raises(ValueError, match="clipping points"):
        rj.integrate_band(x, method="sigma", low=-1)
    with pytest.raises(ValueError, match=r"\(N, rows, W\)"):
        rj.integrate_band(np.zeros((3, 4), np.float32))


# ------------------------------------------------ averaged sigma clipping on a few frames

GAIN = 0.8  # e-/DN
READ_NOISE = 3.0  # e-
FULL_SCALE = 65535.0


def poisson_frames(n, h=160, w=160, seed=0):
    """n frames of a sky that varies across the image (150-500 e-), Poisson + read noise,
    in [0, 1] units; returns (frames, truth, sigma of one frame)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    sky = 150 + 250 * xx / w + 100 * np.sin(3 * yy / h)
    frames = rng.poisson(sky, (n, h, w)) + rng.normal(0, READ_NOISE, (n, h, w))
    scale = GAIN * FULL_SCALE
    sigma = np.sqrt(sky + READ_NOISE**2) / scale
    return (frames / scale).astype(np.float32), sky / scale, sigma


def inject_cosmics(frames, sigma, seed=1):
    """Single-pixel cosmic rays, 2-3 pixel streaks and one hot pixel that dithering moves
    from frame to frame, all 8-200 sigma; returns the (N, H, W) mask of injected values."""
    rng = np.random.default_rng(seed)
    n, h, w = frames.shape
    mask = np.zeros(frames.shape, bool)

    def put(i, y, x, amplitude):
        frames[i, y, x] += amplitude * sigma[y, x]
        mask[i, y, x] = True

    for i in range(n):
        for _ in range(12):
            y, x = rng.integers(0, (h, w))
            put(i, y, x, rng.uniform(8, 200))
        for _ in range(6):
            y, x = rng.integers(0, (h - 3, w - 3))
            dy, dx = ((0, 1), (1, 0), (1, 1))[rng.integers(3)]
            for t in range(rng.integers(2, 4)):
                put(i, y + t * dy, x + t * dx, rng.uniform(8, 100))
        put(i, 80 + 3 * i - 9, 80 + 2 * i - 6, 150)  # the hot pixel, dithered
    return mask


def test_poisson_k_is_unbiased_whatever_the_frame_count():
    for n in (3, 7, 20):
        frames, truth, sigma = poisson_frames(n, seed=n)
        # the true k of a Poisson + read noise sky, where it is measured (median sky)
        k_true = float(np.median(sigma**2 / truth))
        assert rj.estimate_poisson_k(frames) == pytest.approx(k_true, rel=0.03), n
    # missing values: stacks of different lengths are each judged against their own n
    frames, truth, sigma = poisson_frames(9, seed=4)
    frames[:4, :80] = np.nan
    k_true = float(np.median(sigma**2 / truth))
    assert rj.estimate_poisson_k(frames) == pytest.approx(k_true, rel=0.03)


def test_averaged_sigma_cleans_seven_frames():
    n = 7
    frames, truth, sigma = poisson_frames(n)
    mask = inject_cosmics(frames, sigma)
    lmask, hmask = rj.rejection_masks(frames, "averaged_sigma")  # 4, 3
    rejected = lmask | hmask
    assert rejected[mask].all()  # every cosmic ray and hot pixel
    assert rejected[~mask].mean() < 0.005  # <= 0.5 % of the clean values
    out, *_ = rj.integrate_band(frames, method="averaged_sigma")
    clean = ~mask.any(axis=0)
    z = (out - truth) / (sigma / np.sqrt(n))
    assert abs(np.std(z[clean]) - 1) < 0.05
    assert np.abs(z).max() < 6  # nothing left where the outliers were
    # PixInsight's sigma clipping (s from the pixel's own 7 values) cannot do this: a lone
    # outlier among 7 values is at most 6/sqrt(7) = 2.27 standard deviations from the mean
    _, hs = rj.rejection_masks(frames, "sigma")
    assert not hs[mask].any()


def test_averaged_sigma_uses_one_constant_for_the_image():
    frames, truth, sigma = poisson_frames(7, h=40, w=40, seed=5)
    k = rj.estimate_poisson_k(frames)
    given = rj.integrate_band(frames[:, :10], method="averaged_sigma", poisson_k=k)
    whole = rj.integrate_band(frames, method="averaged_sigma")
    for a, b in zip(given, whole):
        np.testing.assert_array_equal(a, b[:10])
    assert whole[2].sum() > 0  # (some values are clipped)
    # the given k is the one used: with sigma 10x larger nothing is 3 sigma away
    _, nl, nh, _ = rj.integrate_band(frames, method="averaged_sigma", poisson_k=100 * k)
    assert nl.sum() == nh.sum() == 0
    # an impossible model (k = 0 or no positive signal) clips nothing
    _, nl, nh, _ = rj.integrate_band(-frames, method="averaged_sigma")
    assert nl.sum() == nh.sum() == 0


def test_rejection_does_not_import_scipy_stats(modules_after):
    # scipy.stats takes ~0.75 s to import, in a run's serial part: averaged sigma clipping
    # (chi2 medians) and ESD (Student t quantiles) get them from scipy.special
    code = (
        "import numpy as np\n"
        "from pxlang.process import rejection as rj\n"
        "x = np.random.default_rng(1).normal(1.0, 0.01, (9, 8, 16)).astype(np.float32)\n"
        "for m in ('averaged_sigma', 'esd'):\n"
        "    rj.integrate_band(x, method=m)\n"
    )
    assert "scipy.stats" not in modules_after(code)
