"""Registration + integration of N lights of 2048², pxlang vs Siril 1.0.6, in one run.

Makes N dithered, slightly rotated float32 light frames (Moffat stars, sky, Gaussian noise)
in a temp folder, then runs, each side as a subprocess under ``/usr/bin/time -v``:

- pxlang:  ``pxlang run stack.px``: register(files(...)) → integrate(...,
           rejection="winsorized", low=3, high=3, normalization="additive_scaling")
           (reference: the frame with most stars)
- Siril:   convert → register → stack r_light rej w 3 3 -norm=addscale (reference: first)

and prints wall time, peak RSS and their ratios, and the FWHM (median over fitted stars) and
background noise (star-masked sky, per pixel and over 4×4 blocks) of both stacks, measured
the same way.

    python scripts/bench_lights.py            # 20 and 50 frames
    python scripts/bench_lights.py --frames 20 --size 1024
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _frame(args: tuple[int, int, str, int]) -> None:
    """Write light ``i``: the sky seen through a dither, a small rotation, noise."""
    from astropy.io import fits

    from pxlang.process.stars import render_stars

    i, size, folder, seed = args
    rng = np.random.default_rng(seed)  # the same sky for every frame
    n = int(2500 * (size / 2048) ** 2)
    margin = 40
    sx, sy = rng.uniform(-margin, size + margin, (2, n))
    flux = 10 ** rng.uniform(-0.6, 1.2, n) * 0.5
    fr = np.random.default_rng(seed + 1000 + i)
    dx, dy = fr.uniform(-12, 12, 2)
    th = np.radians(fr.uniform(-0.4, 0.4))
    c = (size - 1) / 2
    x = np.cos(th) * (sx - c) - np.sin(th) * (sy - c) + c + dx
    y = np.sin(th) * (sx - c) + np.cos(th) * (sy - c) + c + dy
    fwhm = 3.0 * fr.uniform(0.95, 1.1)
    img = render_stars((size, size), x, y, flux, fwhm, beta=4.0, oversample=2)
    yy, xx = np.mgrid[0:size, 0:size] / size
    sky = 0.05 + 0.01 * xx + fr.normal(0, 0.004, (size, size))
    data = np.clip(img + sky, 0, 1).astype(np.float32)
    hdr = fits.Header()
    hdr["IMAGETYP"] = "Light"
    hdr["EXPTIME"] = 300.0
    hdr["DATE-OBS"] = f"2026-09-15T21:{i // 60:02d}:{i % 60:02d}"
    fits.writeto(os.path.join(folder, f"light_{i + 1:04d}.fits"), data, hdr, overwrite=True)


PX_SCRIPT = """\
// bench_lights: the same work as the Siril script below
reg = register(files("{lights}"))
m = integrate(reg, rejection="winsorized", low=3, high=3, normalization="additive_scaling")
save(m, "{out}")
"""

SIRIL_SCRIPT = """requires 0.99.4
cd lights
convert light -out=../process
cd ../process
register light
stack r_light rej w 3 3 -norm=addscale -out=../result
close
"""


def timed(cmd: list[str], cwd: str) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, output) of a command under GNU time."""
    os.sync()  # the previous step's dirty pages are not flushed on this one's time
    t = time.perf_counter()
    p = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    if p.returncode != 0:
        raise RuntimeError(
            f"{cmd[0]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        )
    return wall, (int(rss.group(1)) / 1024 if rss else float("nan")), p.stdout


def quality(
    path: str, smooth: float = 0.0
) -> tuple[float, float, float, int, np.ndarray, np.ndarray]:
    """(median FWHM px, background σ per pixel, background σ of 4×4 block means × 4, stars,
    star positions, star aperture fluxes).

    Background only: the smooth sky model is subtracted and stars are masked (3σ, grown by
    6 px). An interpolation that smooths lowers the per-pixel σ (it correlates neighbours);
    the 4×4 block σ (× 4, as for independent pixels) shows the noise at a scale that
    interpolation does not reach. ``smooth``: σ (px) of a Gaussian applied first."""
    from scipy.ndimage import binary_dilation, gaussian_filter

    from pxlang.image import io
    from pxlang.process.stars import background, find_stars
    from pxlang.process.subframes import noise_mrs

    data = io.load(path).data
    data = data.mean(axis=0) if data.ndim == 3 else data
    if smooth > 0:
        data = gaussian_filter(data, smooth)
    h, w = data.shape
    core = np.ascontiguousarray(data[h // 16 : -h // 16, w // 16 : -w // 16])  # no borders
    tab = find_stars(core, max_fit=500)
    back, _, _ = background(core, mesh=64)
    resid = core - back
    mask = binary_dilation(resid > 3 * noise_mrs(core), iterations=6)
    sky = resid[~mask]
    pix = 1.4826 * float(np.median(np.abs(sky - np.median(sky))))
    hh, ww = core.shape[0] // 4 * 4, core.shape[1] // 4 * 4
    blocks = resid[:hh, :ww].reshape(hh // 4, 4, ww // 4, 4).mean(axis=(1, 3))
    free = ~mask[:hh, :ww].reshape(hh // 4, 4, ww // 4, 4).any(axis=(1, 3))
    b = blocks[free]
    binned = 4 * 1.4826 * float(np.median(np.abs(b - np.median(b))))
    import sep

    ok = tab.fitted
    flux, _, _ = sep.sum_circle(resid.astype(np.float32), tab.x[ok], tab.y[ok], 10.0)
    return float(np.nanmedian(tab.fwhm)), pix, binned, len(tab), tab.xy()[ok], flux


def flux_ratio(a: tuple, b: tuple) -> float:
    """Median ratio of the aperture fluxes (r = 10 px) of the stars found in both stacks."""
    from scipy.spatial import cKDTree

    d, i = cKDTree(b[4]).query(a[4])
    ok = d < 1.0
    return float(np.median(a[5][ok] / b[5][i[ok]]))


def run(n: int, size: int, keep: bool) -> dict[str, float]:
    work = tempfile.mkdtemp(prefix=f"bench_lights_{n}_")
    lights = os.path.join(work, "lights")
    os.makedirs(lights)
    t = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_frame, [(i, size, lights, 42) for i in range(n)]))
    print(f"\n{n} lights of {size}² written in {time.perf_counter() - t:.1f} s ({work})")

    out_px = os.path.join(work, "pxlang_stack.fits")
    script = os.path.join(work, "stack.px")
    with open(script, "w") as fh:
        fh.write(PX_SCRIPT.format(lights=lights + "/", out=out_px))
    from bench_end2end import pxlang_cmd, warm_up  # scripts/ is on the path as a script

    warm_up(Path(work))
    cmd = pxlang_cmd("run", script, "--cache", os.path.join(work, "pxcache"), "--quiet")
    wall_px, rss_px, _ = timed(cmd, work)

    with open(os.path.join(work, "siril.ssf"), "w") as fh:
        fh.write(SIRIL_SCRIPT)
    wall_si, rss_si, _ = timed(["siril-cli", "-d", work, "-s", "siril.ssf"], work)
    out_si = next(
        os.path.join(work, f) for f in os.listdir(work) if f.startswith("result") and ".fit" in f
    )

    q_px, q_si = quality(out_px), quality(out_si)
    head = f"{'':10}{'wall s':>9}{'peak RSS MB':>13}{'FWHM px':>10}{'noise':>11}"
    print(head + f"{'noise 4x4':>11}{'stars':>7}")
    for name, wall, rss, q in (("pxlang", wall_px, rss_px, q_px), ("Siril", wall_si, rss_si, q_si)):
        print(f"{name:10}{wall:9.1f}{rss:13.0f}{q[0]:10.3f}{q[1]:11.2e}{q[2]:11.2e}{q[3]:7d}")
    sig = flux_ratio(q_px, q_si)
    print(
        f"ratio pxlang/Siril: time {wall_px / wall_si:.2f}, RAM {rss_px / rss_si:.2f}, "
        f"FWHM {q_px[0] / q_si[0]:.3f}, star flux {sig:.3f}, noise {q_px[1] / q_si[1]:.3f} "
        f"(per unit star flux {q_px[1] / q_si[1] / sig:.3f}), noise 4x4 {q_px[2] / q_si[2]:.3f} "
        f"(per unit star flux {q_px[2] / q_si[2] / sig:.3f})"
    )
    # like for like: the sharper stack blurred to the other's FWHM, then both noises compared
    sharp, soft = ("pxlang", "Siril") if q_px[0] < q_si[0] else ("Siril", "pxlang")
    fw_sharp, fw_soft = sorted((q_px[0], q_si[0]))
    sigma = float(np.sqrt(fw_soft**2 - fw_sharp**2)) / 2.3548
    q_b = quality(out_px if sharp == "pxlang" else out_si, smooth=sigma)
    q_o = q_si if sharp == "pxlang" else q_px
    px_b, si_b = (q_b, q_o) if sharp == "pxlang" else (q_o, q_b)
    print(
        f"at equal FWHM ({sharp} blurred by a σ {sigma:.2f} px Gaussian: {q_b[0]:.3f} px vs "
        f"{soft} {q_o[0]:.3f}): noise pxlang/Siril per unit star flux {px_b[1] / si_b[1] / sig:.3f}"
        f", 4x4 {px_b[2] / si_b[2] / sig:.3f}"
    )
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return {"wall_px": wall_px, "wall_si": wall_si, "rss_px": rss_px, "rss_si": rss_si}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, nargs="*", default=[20, 50])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--keep", action="store_true", help="keep the temp folders")
    args = ap.parse_args()
    if shutil.which("siril-cli") is None:
        sys.exit("siril-cli not found (apt-get install siril)")
    for n in args.frames:
        run(n, args.size, args.keep)


if __name__ == "__main__":
    main()
