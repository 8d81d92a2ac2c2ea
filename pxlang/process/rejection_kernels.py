"""Numba kernels of pixel rejection and combination; the public API is ``rejection.py``.

:func:`_band_kernel` processes a ``(N, rows, W)`` float32 band of N frames. Each row is
sorted along the frame axis by a Batcher odd-even merge sorting network applied across all
columns at once (branch-free min/max over whole rows, which the compiler vectorises: ~15x
faster than sorting each pixel stack on its own). After sorting, every method except linear
fit rejects from the two ends of the sorted stack, so the kept pixels are one contiguous
range ``[lo, hi)`` and means/variances come from prefix sums.

``_reject`` finds what to drop, ``_combine`` averages (or takes the median, min, max of) what
is kept. Method codes are indices into ``rejection.METHODS``; ``GAIN_PASS`` is the first
pass of averaged sigma clipping (per-pixel variance / median, no rejection).
"""

from __future__ import annotations

import numpy as np

from .jit import njit, prange

_TINY = 2.220446049250313e-16  # PixInsight's "1 + x == 1" test
_BLOCK = 1024  # columns sorted together: long SIMD rows, buffers still small
GAIN_PASS = 8


@njit(cache=True, inline="always")
def _stats(P1, P2, lo, hi):
    """Mean and sample standard deviation of shifted values [lo, hi) from prefix sums."""
    n = hi - lo
    s1 = P1[hi] - P1[lo]
    s2 = P2[hi] - P2[lo]
    mean = s1 / n
    var = (s2 - s1 * s1 / n) / (n - 1) if n > 1 else 0.0
    return mean, np.sqrt(var) if var > 0.0 else 0.0


@njit(cache=True, inline="always")
def _median(v, lo, hi):
    n = hi - lo
    h = lo + n // 2
    return v[h] if n % 2 == 1 else 0.5 * (v[h] + v[h - 1])


@njit(cache=True, inline="always")
def _clip_range(v, lo, hi, m, s, lowp, highp):
    """One sigma-clipping pass over sorted v[lo:hi] about m with scale s; whether it moved."""
    lo0 = lo
    hi0 = hi
    while lo < hi and (m - v[lo]) / s > lowp:
        lo += 1
    while hi > lo and (v[hi - 1] - m) / s > highp:
        hi -= 1
    return lo, hi, lo != lo0 or hi != hi0


@njit(cache=True)
def _winsorized_sigma(v, P1, P2, lo, hi, m):
    """Huber's Winsorized sigma of sorted shifted values [lo, hi) about centre m.

    Repeated clamping at m +- 1.5 s is cumulative (as PixInsight clamps a working copy in
    place): the effective bounds are the running max/min of the thresholds, so the clamped
    sums come from prefix sums and two index scans.
    """
    n = hi - lo
    _, sigma = _stats(P1, P2, lo, hi)
    cl = -np.inf
    ch = np.inf
    j0 = lo  # first index with v >= cl
    j1 = hi  # one past the last index with v <= ch
    it = 0
    while it < 100:
        if sigma < _TINY:
            break
        t0 = m - 1.5 * sigma
        t1 = m + 1.5 * sigma
        if t0 > cl:
            cl = t0
        if t1 < ch:
            ch = t1
        while j0 < hi and v[j0] < cl:
            j0 += 1
        while j1 > lo and v[j1 - 1] > ch:
            j1 -= 1
        kl = j0 - lo
        kh = hi - j1
        if j1 >= j0:
            s1 = kl * cl + (P1[j1] - P1[j0]) + kh * ch
            s2 = kl * cl * cl + (P2[j1] - P2[j0]) + kh * ch * ch
        else:  # degenerate bounds: everything is clamped to one side or the other
            s1 = kl * cl + kh * ch
            s2 = kl * cl * cl + kh * ch * ch
        var = (s2 - s1 * s1 / n) / (n - 1)
        s0 = sigma
        sigma = 1.134 * (np.sqrt(var) if var > 0.0 else 0.0)
        it += 1
        if it > 1 and abs(s0 - sigma) / s0 < 0.0005:
            break
    return sigma


@njit(cache=True)
def _select(a, n, k):
    """k-th smallest of a[0:n] (quickselect; a is reordered)."""
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit(cache=True)
def _lad_offset(v, n, keep, nk, b, tmp):
    """a minimising sum |v - a - b*rank| over kept values: the median of v - b*rank."""
    r = 0
    for j in range(n):
        if keep[j]:
            tmp[r] = v[j] - b * r
            r += 1
    h = nk // 2
    m = _select(tmp, nk, h)
    if nk % 2 == 0:
        m2 = tmp[0]
        for q in range(1, h):
            if tmp[q] > m2:
                m2 = tmp[q]
        m = 0.5 * (m + m2)
    return m


@njit(cache=True)
def _weighted_median(s, w, ix, m):
    """Smallest s[k] whose cumulative weight (in sorted order) reaches half the total, and
    its ix[k]. Quickselect with a three-way partition; s, w, ix[0:m] are reordered."""
    total = 0.0
    for k in range(m):
        total += w[k]
    half = 0.5 * total
    lo = 0
    hi = m  # working range [lo, hi)
    wl = 0.0  # weight of everything below the working range
    while True:
        pivot = s[(lo + hi - 1) // 2]
        # Dutch-flag partition: [lo, lt) < pivot, [lt, i) == pivot, (gt, hi) > pivot
        lt = lo
        i = lo
        gt = hi - 1
        while i <= gt:
            if s[i] < pivot:
                s[lt], s[i] = s[i], s[lt]
                w[lt], w[i] = w[i], w[lt]
                ix[lt], ix[i] = ix[i], ix[lt]
                lt += 1
                i += 1
            elif s[i] > pivot:
                s[gt], s[i] = s[i], s[gt]
                w[gt], w[i] = w[i], w[gt]
                ix[gt], ix[i] = ix[i], ix[gt]
                gt -= 1
            else:
                i += 1
        w_less = 0.0
        for k in range(lo, lt):
            w_less += w[k]
        w_eq = 0.0
        for k in range(lt, gt + 1):
            w_eq += w[k]
        if lt > lo and wl + w_less >= half:
            hi = lt
        elif wl + w_less + w_eq >= half or gt + 1 >= hi:
            return pivot, ix[lt]
        else:
            wl += w_less + w_eq
            lo = gt + 1


@njit(cache=True)
def _lad_line(v, n, keep, nk, tmp):
    """Least absolute deviation line (value vs rank) through the kept sorted values.

    The optimum passes through two of the points. Pivoting (Edgeworth's method, as in
    Sadovski's algorithm AS 74): the best line through a pivot point has the weighted median
    of the slopes to the other points (weights: rank distances); move the pivot to the point
    that slope came from, until it comes back. A few pivots suffice. The offset is then the
    median of the residuals (even counts: the mean of the middle two).
    """
    y = tmp[0]
    sl = tmp[1]
    wt = tmp[2]
    ix = tmp[3]
    r = 0
    for j in range(n):
        if keep[j]:
            y[r] = v[j]
            r += 1
    p = nk // 2
    prev = -1
    b = 0.0
    for _ in range(100):
        m = 0
        for j in range(nk):
            if j != p:
                sl[m] = (y[j] - y[p]) / (j - p)
                wt[m] = abs(j - p)
                ix[m] = j
                m += 1
        b, q = _weighted_median(sl, wt, ix, m)
        q = int(q)
        if q == prev:
            break
        prev = p
        p = q
    return _lad_offset(v, n, keep, nk, b, tmp[4]), b


@njit(cache=True)
def _reject(v, n, method, lowp, highp, relax, pk, lam, P1, P2, keep, tmp, shift):
    """Reject from sorted, shifted values v[0:n]. Returns (lo, hi, n_low, n_high).

    For linear fit the kept set is ``keep[0:n]`` (lo = -1); otherwise it is [lo, hi).
    """
    lo = 0
    hi = n
    if method == 1:  # minmax
        nl = min(int(lowp), n)
        nh = min(int(highp), n)
        lo = nl
        hi = max(lo, n - nh)
        return lo, hi, lo, n - hi
    if method == 2:  # percentile: shift-free values needed for relative distances
        if n < 2:
            return lo, hi, 0, 0
        c = shift
        m = _median(v, lo, hi) + c
        if abs(m) < _TINY:
            return lo, hi, 0, 0
        while lo < hi and (m - (v[lo] + c)) / m > lowp:
            lo += 1
        while hi > lo and ((v[hi - 1] + c) - m) / m > highp:
            hi -= 1
        return lo, hi, lo, n - hi
    if method == 3 or method == 5:  # sigma, winsorized
        if n < 3:
            return lo, hi, 0, 0
        while True:
            m = _median(v, lo, hi)
            if method == 3:
                _, s = _stats(P1, P2, lo, hi)
            else:
                s = _winsorized_sigma(v, P1, P2, lo, hi, m)
            if s < _TINY:
                break
            lo, hi, moved = _clip_range(v, lo, hi, m, s, lowp, highp)
            if not moved or hi - lo < 3:
                break
        return lo, hi, lo, n - hi
    if method == 4:  # averaged sigma: s = sqrt(k * median), k one constant for the image
        if n < 3:
            return lo, hi, 0, 0
        while True:
            m = _median(v, lo, hi)
            ma = m + shift
            # no Poisson sigma where the signal is not positive (PixInsight: sqrt < 0)
            s = np.sqrt(pk * ma) if ma > 0.0 else 0.0
            if not s >= _TINY:
                break
            lo, hi, moved = _clip_range(v, lo, hi, m, s, lowp, highp)
            if not moved or hi - lo < 3:
                break
        return lo, hi, lo, n - hi
    if method == 7:  # generalised ESD
        if n < 3:
            return lo, hi, 0, 0
        frac = lowp
        k = int(frac * n)
        k = min(max(k, 1), n - 2)
        a = 0
        b = n
        # record each removal: +1 high end, -1 low end; test statistics in keep as floats
        n_l = 0
        n_h = 0
        nc = 0
        for i in range(k):
            nn = b - a
            th = max(1, int(frac * nn) - i)
            tl = max(1, int(frac / relax * nn) - i)
            if th + tl < nn - 2:
                mc = (P1[b - th] - P1[a + tl]) / (nn - th - tl)
            else:
                mc = _median(v, a, b)
            ss = (P2[b] - P2[a]) - 2.0 * mc * (P1[b] - P1[a]) + nn * mc * mc
            sh = np.sqrt(max(ss, 0.0) / (nn - 1))
            sl = relax * sh
            if sh < _TINY:
                break
            rl = (mc - v[a]) / sl
            rh = (v[b - 1] - mc) / sh
            # ties go to the lower value, as a left-to-right scan for the maximum does
            if rl >= rh:
                t = rl
                a += 1
                side = -1
            else:
                t = rh
                b -= 1
                side = 1
            if t < lam[n, i]:
                break
            nc = i + 1
            if side < 0:
                n_l += 1
            else:
                n_h += 1
        # the outliers are the first nc removed; they came off the two ends in order
        lo = n_l
        hi = n - n_h
        return lo, hi, n_l, n_h
    if method == 6:  # linear fit
        for j in range(n):
            keep[j] = True
        if n < 5:
            return -1, n, 0, 0
        nk = n
        n_l = 0
        n_h = 0
        while True:
            aa, bb = _lad_line(v, n, keep, nk, tmp)
            adev = 0.0
            r = 0
            for j in range(n):
                if keep[j]:
                    adev += abs(v[j] - (aa + bb * r))
                    r += 1
            adev /= nk
            s = 2.0 * adev * np.sqrt(1.0 + bb * bb)
            if s < _TINY:
                break
            nc = 0
            r = 0
            for j in range(n):
                if keep[j]:
                    y = aa + bb * r
                    r += 1
                    if v[j] < y:
                        if (y - v[j]) / s >= lowp:
                            keep[j] = False
                            nc += 1
                            n_l += 1
                    elif (v[j] - y) / s >= highp:
                        keep[j] = False
                        nc += 1
                        n_h += 1
            if nc == 0:
                break
            nk -= nc
            if nk < 3:
                break
        return -1, n, n_l, n_h
    return lo, hi, 0, 0


@njit(cache=True)
def _combine(v, w, n, lo, hi, keep, combine, weighted, shift, P1):
    """Combine kept sorted values (shifted by -shift) into one output value."""
    if lo >= 0:
        if hi <= lo:
            return np.nan
        if combine == 1:
            return _median(v, lo, hi) + shift
        if combine == 2:
            return v[lo] + shift
        if combine == 3:
            return v[hi - 1] + shift
        if not weighted:
            return (P1[hi] - P1[lo]) / (hi - lo) + shift
        s = 0.0
        sw = 0.0
        for j in range(lo, hi):
            s += w[j] * v[j]
            sw += w[j]
        return s / sw + shift if sw > 0.0 else np.nan
    # mask form (linear fit)
    cnt = 0
    for j in range(n):
        if keep[j]:
            cnt += 1
    if cnt == 0:
        return np.nan
    if combine == 1:
        h = cnt // 2
        r = 0
        prev = 0.0
        for j in range(n):
            if keep[j]:
                if r == h:
                    return (v[j] if cnt % 2 == 1 else 0.5 * (v[j] + prev)) + shift
                prev = v[j]
                r += 1
    if combine == 2:
        for j in range(n):
            if keep[j]:
                return v[j] + shift
    if combine == 3:
        for j in range(n - 1, -1, -1):
            if keep[j]:
                return v[j] + shift
    s = 0.0
    sw = 0.0
    for j in range(n):
        if keep[j]:
            wj = w[j] if weighted else 1.0
            s += wj * v[j]
            sw += wj
    return s / sw + shift if sw > 0.0 else np.nan


@njit(cache=True)
def _sort_rows(buf, pay, pairs, use_payload):
    """Sort buf (N, W) along axis 0 with a comparator network, carrying pay along."""
    W = buf.shape[1]
    for q in range(pairs.shape[0]):
        ra = buf[pairs[q, 0]]
        rb = buf[pairs[q, 1]]
        if use_payload:
            pa = pay[pairs[q, 0]]
            pb = pay[pairs[q, 1]]
            for c in range(W):
                x = ra[c]
                y = rb[c]
                sw = y < x
                ra[c] = y if sw else x
                rb[c] = x if sw else y
                u = pa[c]
                z = pb[c]
                pa[c] = z if sw else u
                pb[c] = u if sw else z
        else:
            for c in range(W):
                x = ra[c]
                y = rb[c]
                ra[c] = x if x < y else y
                rb[c] = y if x < y else x


@njit(
    parallel=True,
    cache=True,
    nogil=True,
    export=[
        "void(f4[:, :, ::1], f4[::1], f4[::1], f4[::1], b1, b1, i8[:, ::1], i8, f8, f8, f8, f8,"
        " f8[:, ::1], i8, f4[:, ::1], i4[:, ::1], i4[:, ::1], i4[:, ::1], b1[:, :, ::1],"
        " b1[:, :, ::1], b1, i8, i8, i8)"
    ],
)
def _band_kernel(
    band, scale, offset, weights, weighted, payload_index, pairs, method, lowp, highp,
    relax, pk, lam, combine, out, nlow, nhigh, nvalid, low_mask, high_mask, want_masks,
    t0, t1, nthreads,
):  # fmt: skip
    N, R, W = band.shape
    BW = _BLOCK if W > _BLOCK else W
    nb = (W + BW - 1) // BW
    tasks = R * nb
    # the band's tasks in nthreads slices; this call computes the slices t0 ≤ t < t1
    # (jit.split: all of them over numba's threads, or one a Python thread)
    # A weighted average over a kept *range* of values (methods that reject by value:
    # none, percentile, sigma, averaged sigma, winsorized) needs no weights carried through
    # the sort (which doubles its cost): every value in the range is kept, so a second pass
    # over the frames in their order sums w * x of the values inside it. Minmax, ESD (by
    # rank) and linear fit (a set) keep the payload.
    range_weights = weighted and not payload_index and combine == 0 and method in (0, 2, 3, 4, 5)
    use_payload = (weighted and not range_weights) or payload_index
    for t in prange(t0, t1):
        # buffers once per thread: sorted values, payload (weights or frame index),
        # prefix sums of shifted values, per-pixel scratch
        buf = np.empty((N, BW), np.float32)
        pay = np.empty((N, BW), np.float32)
        P1 = np.empty((N + 1, BW), np.float64)
        P2 = np.empty((N + 1, BW), np.float64)
        cnt = np.empty(BW, np.int64)
        sh = np.empty(BW, np.float64)
        keep = np.empty(N, np.bool_)
        tmp = np.empty((5, N), np.float64)
        # weights of one pixel's sorted stack when the payload carries frame indices
        wcol = np.empty(N, np.float32)
        # masks without a payload: each column's kept range, as shifted values
        cut_lo = np.empty(BW, np.float32)
        cut_hi = np.empty(BW, np.float32)
        # range weights: the columns whose weighted sums come from the second pass
        pending = np.zeros(BW, np.bool_)
        ws = np.empty(BW, np.float64)
        ww = np.empty(BW, np.float64)
        for task in range((tasks * t) // nthreads, (tasks * (t + 1)) // nthreads):
            r = task // nb
            c0 = (task % nb) * BW
            bw = min(BW, W - c0)
            for i in range(N):
                a = scale[i]
                b = offset[i]
                src = band[i, r]
                dst = buf[i]
                for c in range(bw):
                    x = src[c0 + c] * a + b
                    # missing data (NaN/inf) sorts last as +inf
                    dst[c] = x if np.isfinite(x) else np.inf
                for c in range(bw, BW):
                    dst[c] = np.inf
                if use_payload:
                    pv = np.float32(i) if payload_index else weights[i]
                    for c in range(BW):
                        pay[i, c] = pv
            _sort_rows(buf, pay, pairs, use_payload)
            for c in range(BW):
                cnt[c] = 0
            for j in range(N):
                row = buf[j]
                for c in range(BW):
                    cnt[c] += row[c] < np.inf
            for c in range(bw):
                sh[c] = buf[cnt[c] // 2, c] if cnt[c] > 0 else 0.0
            # values shifted by the (upper) median, in place, and their prefix sums: no
            # cancellation in the variance of tightly clustered values
            for c in range(BW):
                P1[0, c] = 0.0
                P2[0, c] = 0.0
            for j in range(N):
                row = buf[j]
                for c in range(bw):
                    x = row[c] - np.float32(sh[c])
                    row[c] = x
                    xd = np.float64(x)
                    P1[j + 1, c] = P1[j, c] + xd
                    P2[j + 1, c] = P2[j, c] + xd * xd
            for c in range(bw):
                n = cnt[c]
                cc = c0 + c
                nvalid[r, cc] = n
                cut_lo[c] = -np.inf
                cut_hi[c] = np.inf
                if n == 0:
                    out[r, cc] = np.nan
                    nlow[r, cc] = 0
                    nhigh[r, cc] = 0
                    continue
                shift = sh[c]
                v = buf[:, c]
                wc = pay[:, c]
                p1 = P1[:, c]
                p2 = P2[:, c]
                if method == GAIN_PASS:
                    # averaged sigma, first pass: sample variance over median of the stack
                    nlow[r, cc] = 0
                    nhigh[r, cc] = 0
                    ma = _median(v, 0, n) + shift
                    if n < 3 or not ma > _TINY:
                        out[r, cc] = np.nan
                    else:
                        var = (p2[n] - p1[n] * p1[n] / n) / (n - 1)
                        out[r, cc] = var / ma
                    continue
                lo, hi, kl, kh = _reject(
                    v, n, method, lowp, highp, relax, pk, lam, p1, p2, keep, tmp, shift
                )
                if weighted and payload_index:
                    # the payload is the frame index (for the masks): weights by index
                    for j in range(n):
                        wcol[j] = weights[int(pay[j, c])]
                    wc = wcol
                pending[c] = range_weights and lo >= 0 and hi > lo
                if pending[c]:
                    cut_lo[c] = v[lo]
                    cut_hi[c] = v[hi - 1]
                    nlow[r, cc] = kl
                    nhigh[r, cc] = kh
                    continue
                val = _combine(v, wc, n, lo, hi, keep, combine, weighted, shift, p1)
                if not np.isfinite(val):
                    # everything rejected: fall back to the median of all valid values
                    val = _median(v, 0, n) + shift
                out[r, cc] = val
                nlow[r, cc] = kl
                nhigh[r, cc] = kh
                if want_masks and not payload_index:
                    # values outside the kept range [v[lo], v[hi - 1]] are the rejected
                    # ones (a rejected value equal to a kept one is not flagged); nothing
                    # kept: the median of all values was used, nothing is flagged
                    if hi > lo:
                        cut_lo[c] = v[lo]
                        cut_hi[c] = v[hi - 1]
                elif want_masks:
                    for j in range(n):
                        fi = int(pay[j, c])
                        if lo >= 0:
                            low_mask[fi, r, cc] = j < lo
                            high_mask[fi, r, cc] = j >= hi
                        else:
                            rej = not keep[j]
                            low_mask[fi, r, cc] = rej and j < n // 2
                            high_mask[fi, r, cc] = rej and j >= n // 2
            if range_weights:
                for c in range(bw):
                    ws[c] = 0.0
                    ww[c] = 0.0
                for i in range(N):
                    a = scale[i]
                    b = offset[i]
                    wi = np.float64(weights[i])
                    src = band[i, r]
                    for c in range(bw):
                        # the same float32 operations as above: a value compares with itself
                        xs = (src[c0 + c] * a + b) - np.float32(sh[c])
                        if pending[c] and xs >= cut_lo[c] and xs <= cut_hi[c]:
                            ws[c] += wi * xs
                            ww[c] += wi
                for c in range(bw):
                    if pending[c]:
                        cc = c0 + c
                        if ww[c] > 0.0:
                            out[r, cc] = ws[c] / ww[c] + sh[c]
                        else:  # zero weights: the median of all valid values
                            out[r, cc] = _median(buf[:, c], 0, cnt[c]) + sh[c]
                        pending[c] = False
            if want_masks and not payload_index:
                # frame by frame against the kept ranges: contiguous writes, and no payload
                # carried through the sort (which doubles its cost); the same float32
                # operations as above, so a value compares with itself exactly
                for i in range(N):
                    a = scale[i]
                    b = offset[i]
                    src = band[i, r]
                    lm = low_mask[i, r]
                    hm = high_mask[i, r]
                    for c in range(bw):
                        x = src[c0 + c] * a + b
                        if np.isfinite(x):
                            xs = x - np.float32(sh[c])
                            lm[c0 + c] = xs < cut_lo[c]
                            hm[c0 + c] = xs > cut_hi[c]
