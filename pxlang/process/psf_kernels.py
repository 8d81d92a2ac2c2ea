"""Numba kernel of the star PSF fit (``stars.fit_psf``), kept apart as ``pixel_kernels`` is so
that importing ``stars`` loads no compiled code: an unchanged re-run, which loads its star
tables from the cache, does not pay for it.

The fit is a Levenberg–Marquardt loop run star by star (not in parallel: callers already run
one frame per process on every core). Per star it keeps the profile, ∂f/∂Q and log(1 + Q) of
the last accepted trial, so the Jacobian of the next iteration needs no transcendental
function: a trial costs one ``log`` + ``exp`` per pixel (Moffat), where the vectorised numpy
loop took five, and nothing is allocated per iteration. Same model, analytic Jacobian, damping
schedule, validity checks and stopping rule as the numpy loop it replaced (the reference in
``tests/process/test_stars.py``): fits agree to rounding (~1e-12 relative).
"""

from __future__ import annotations

import numpy as np

from .jit import njit


@njit(cache=True, nogil=True)
def _evaluate(p, z, dx, dy, moffat, res, shp, dq, lu):  # pragma: no cover - compiled
    """Residuals ``model - z`` at ``p`` into ``res``, and per pixel what the Jacobian needs:
    the profile ``shp``, ∂f/∂Q ``dq`` and (Moffat) log(1 + Q) ``lu``. Returns Σ res²."""
    b, a, x0, y0, cxx, cyy, cxy = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    beta = p[7] if moffat else 0.0
    cost = 0.0
    for k in range(z.size):
        ddx = dx[k] - x0
        ddy = dy[k] - y0
        q = cxx * ddx * ddx + cyy * ddy * ddy + cxy * ddx * ddy
        if moffat:
            # np.maximum(q, 0) as the numpy reference had it: a NaN stays NaN
            u = 1.0 + (0.0 if q < 0.0 else q)
            lg = np.log(u)
            s = np.exp(-beta * lg)  # u ** -beta, reusing the log the Jacobian needs
            lu[k] = lg
            dq[k] = -a * beta * s / u if q > 0.0 else 0.0
        else:
            s = np.exp(-0.5 * q)
            dq[k] = -0.5 * a * s
        shp[k] = s
        r = b + a * s - z[k]
        res[k] = r
        cost += r * r
    return cost


@njit(cache=True, nogil=True)
def _jacobian(p, dx, dy, moffat, shp, dq, lu, jac):  # pragma: no cover - compiled
    """Analytic derivatives (P, K) of the model w.r.t. ``B, A, x0, y0, cxx, cyy, cxy[, beta]``
    from the per-pixel terms ``_evaluate`` left: columns by parameter, for ``_normal``."""
    a, x0, y0, cxx, cyy, cxy = p[1], p[2], p[3], p[4], p[5], p[6]
    for k in range(dx.size):
        ddx = dx[k] - x0
        ddy = dy[k] - y0
        d = dq[k]
        jac[0, k] = 1.0
        jac[1, k] = shp[k]
        jac[2, k] = -d * (2.0 * cxx * ddx + cxy * ddy)
        jac[3, k] = -d * (2.0 * cyy * ddy + cxy * ddx)
        jac[4, k] = d * ddx * ddx
        jac[5, k] = d * ddy * ddy
        jac[6, k] = d * ddx * ddy
        if moffat:
            jac[7, k] = -a * shp[k] * lu[k]


# Reassociation lets LLVM vectorise the dot products (only the summation order, hence the last
# bits, change); no nnan/ninf, so NaNs still propagate to the validity checks.
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _normal(jac, res, jtj, jtr):  # pragma: no cover - compiled
    """JᵀJ and Jᵀr."""
    npar, k = jac.shape
    for i in range(npar):
        ji = jac[i]
        acc = 0.0
        for m in range(k):
            acc += ji[m] * res[m]
        jtr[i] = acc
        for j in range(i, npar):
            jj = jac[j]
            acc = 0.0
            for m in range(k):
                acc += ji[m] * jj[m]
            jtj[i, j] = acc
            jtj[j, i] = acc


@njit(cache=True, nogil=True)
def _solve(a, b):  # pragma: no cover - compiled
    """Solve ``a x = b`` in place (``b`` becomes x) by LU with partial pivoting, as LAPACK's
    gesv behind ``np.linalg.solve``. False when a pivot is exactly zero (singular)."""
    n = b.size
    for c in range(n):
        piv = c
        big = abs(a[c, c])
        for r in range(c + 1, n):
            if abs(a[r, c]) > big:
                big = abs(a[r, c])
                piv = r
        if big == 0.0:
            return False
        if piv != c:
            for j in range(n):
                a[c, j], a[piv, j] = a[piv, j], a[c, j]
            b[c], b[piv] = b[piv], b[c]
        inv = 1.0 / a[c, c]
        for r in range(c + 1, n):
            f = a[r, c] * inv
            for j in range(c + 1, n):
                a[r, j] -= f * a[c, j]
            b[r] -= f * b[c]
    for c in range(n - 1, -1, -1):
        acc = b[c]
        for j in range(c + 1, n):
            acc -= a[c, j] * b[j]
        b[c] = acc / a[c, c]
    return True


@njit(cache=True, nogil=True)
def _valid(p, moffat, half):  # pragma: no cover - compiled
    """``stars._valid`` for one parameter vector: a positive-definite shape, a positive
    amplitude, the centre inside the stamp, a sane Moffat beta, all finite."""
    for v in p:
        if not np.isfinite(v):
            return False
    cxx, cyy, cxy = p[4], p[5], p[6]
    if not (cxx > 0 and cyy > 0 and 4 * cxx * cyy - cxy * cxy > 0 and p[1] > 0):
        return False
    if not (abs(p[2]) < half and abs(p[3]) < half):
        return False
    return not moffat or (p[7] > 0.6 and p[7] < 30)


@njit(
    cache=True,
    nogil=True,
    export=["void(f8[:, ::1], f8[::1], f8[::1], f8[:, ::1], b1, i8, i8)"],
)
def fit_lm(z, dx, dy, p, moffat, half, iterations):  # pragma: no cover - compiled
    """Fit every row of ``z`` (N, K) (stamp pixels at offsets ``dx``, ``dy``) in place in
    ``p`` (N, P), starting from its values: Levenberg–Marquardt with Marquardt's diagonal
    scaling, damping ×0.3 on an accepted step and ×10 on a rejected (or invalid) one, stopping
    at a relative cost decrease under 1e-9, damping over 1e8 or ``iterations`` trials."""
    n, k = z.shape
    npar = p.shape[1]
    res, shp, dq, lu = np.empty(k), np.empty(k), np.empty(k), np.zeros(k)
    tres, tshp, tdq, tlu = np.empty(k), np.empty(k), np.empty(k), np.zeros(k)
    jtj = np.empty((npar, npar))
    jtr = np.empty(npar)
    amat = np.empty((npar, npar))
    step = np.empty(npar)
    trial = np.empty(npar)
    jac = np.empty((npar, k))
    for i in range(n):
        pi = p[i]
        zi = z[i]
        cost = _evaluate(pi, zi, dx, dy, moffat, res, shp, dq, lu)
        lam = 1e-3
        for _ in range(iterations):
            _jacobian(pi, dx, dy, moffat, shp, dq, lu, jac)
            _normal(jac, res, jtj, jtr)
            for r in range(npar):
                for c in range(npar):
                    amat[r, c] = jtj[r, c]
                d = jtj[r, r]
                amat[r, r] += lam * (1e-12 if d < 1e-12 else d)
                step[r] = -jtr[r]
            better = False
            tcost = cost
            if _solve(amat, step):
                for r in range(npar):
                    trial[r] = pi[r] + step[r]
                if _valid(trial, moffat, half):
                    tcost = _evaluate(trial, zi, dx, dy, moffat, tres, tshp, tdq, tlu)
                    better = tcost < cost
            if better:
                rel = (cost - tcost) / max(cost, 1e-30)
                pi[:] = trial
                # the trial's per-pixel terms become the current ones
                res, tres = tres, res
                shp, tshp = tshp, shp
                dq, tdq = tdq, dq
                lu, tlu = tlu, lu
                cost = tcost
                lam = max(lam * 0.3, 1e-7)
                if rel < 1e-9:
                    break
            else:
                lam *= 10.0
                if lam > 1e8:
                    break


@njit(cache=True, nogil=True)
def model_jac(params, dx, dy, moffat):  # pragma: no cover - compiled
    """Model (N, K) and analytic Jacobian (N, K, P) of N PSFs, from the same code the fit
    runs (for tests against finite differences)."""
    n, npar = params.shape
    k = dx.size
    model = np.empty((n, k))
    jac = np.empty((n, k, npar))
    z = np.zeros(k)
    res, shp, dq, lu = np.empty(k), np.empty(k), np.empty(k), np.zeros(k)
    cols = np.empty((npar, k))
    for i in range(n):
        p = params[i]
        _evaluate(p, z, dx, dy, moffat, res, shp, dq, lu)
        _jacobian(p, dx, dy, moffat, shp, dq, lu, cols)
        model[i] = res
        jac[i] = cols.T
    return model, jac
