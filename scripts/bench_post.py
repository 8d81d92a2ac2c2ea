"""Post-processing speed: deconvolution, TGV denoise and MLT on a 4096² mono and a 2048² colour
image, pxlang against peers, each case in its own subprocess under GNU time.

    python scripts/bench_post.py [--mono 4096] [--colour 2048] [--iterations 20] [--quick]
                                 [--only deconv,tgv,mlt] [--sizes mono,colour]

Peers: scikit-image's ``richardson_lucy`` (same PSF and iterations, no deringing) for
deconvolution, scikit-image's ``denoise_tv_chambolle`` (plain TV, not TGV; the closest
available) for noise reduction, and Siril 1.0.6's ``wavelet 4 2`` + ``wrecons`` (starlet B3,
4 layers, per-layer weights) for MLT sharpening. Printed: the operation's own time (imports,
file reading and a 96² warm-up call that loads the numba kernels excluded, measured in the
child; Siril's is its script total, load and save included), wall time of the whole child,
peak RSS, and time ratios pxlang/peer. The machine is shared: compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import sys, time
import numpy as np
case, path, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = np.load(path)
kernel = np.load(path.replace(".npy", "_psf.npy"))
def run(data):
    if case == "deconv-pxlang":
        from pxlang.process.deconvolution import deconvolve
        if data.ndim == 3:
            out = np.stack([deconvolve(c, kernel, iterations=iters) for c in data])
        else:
            out = deconvolve(data, kernel, iterations=iters)
    elif case == "deconv-pxlang-noderinging":
        from pxlang.process.deconvolution import deconvolve
        chans = data if data.ndim == 3 else data[None]
        out = np.stack([deconvolve(c, kernel, iterations=iters, deringing=False) for c in chans])
    elif case == "deconv-skimage":
        from skimage.restoration import richardson_lucy
        k = kernel / kernel.sum()
        chans = data if data.ndim == 3 else data[None]
        out = np.stack([richardson_lucy(c, k, num_iter=iters, clip=False) for c in chans])
    elif case == "tgv-pxlang":
        from pxlang.process.denoise import tgv_denoise
        out = tgv_denoise(data)
    elif case == "tv-skimage":
        from skimage.restoration import denoise_tv_chambolle
        out = denoise_tv_chambolle(data, weight=0.02, channel_axis=0 if data.ndim == 3 else None)
    elif case == "mlt-pxlang":
        from pxlang.process.wavelets import mlt_sharpen
        out = mlt_sharpen(data, target="RGBK" if data.ndim == 3 else "L")
    elif case == "mlt-pxlang-L":
        from pxlang.process.wavelets import mlt_sharpen
        out = mlt_sharpen(data, target="L")
    else:
        raise SystemExit("unknown case " + case)
    return out

run(data[..., :96, :96])  # warm-up: numba kernels load from their cache (or compile) here
t0 = time.perf_counter()
run(data)
dt = time.perf_counter() - t0
print(f"OPTIME {dt:.3f}")
"""


def make_data(folder: str, n: int, colour: bool, seed: int = 0) -> tuple[str, str]:
    """A linear star field on a nebula with noise; saved as .npy (Python) and FITS (Siril)."""
    from astropy.io import fits

    from pxlang.process.psf import moffat, moffat_kernel

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    neb = 0.05 + 0.1 * np.exp(-((xx - 0.4 * n) ** 2 + (yy - 0.55 * n) ** 2) / (2 * (0.2 * n) ** 2))
    img = neb.astype(np.float32)
    for _ in range(n * n // 20000):
        x, y = rng.uniform(8, n - 8, 2)
        x0, y0 = int(x) - 12, int(y) - 12
        sl = (slice(max(y0, 0), y0 + 25), slice(max(x0, 0), x0 + 25))
        img[sl] += rng.uniform(0.02, 0.6) * moffat(xx[sl] - x, yy[sl] - y, 4.0, 3.0).astype(
            np.float32
        )
    img = img + rng.normal(0, 0.003, img.shape).astype(np.float32)
    if colour:
        img = np.stack([img, 0.8 * img + 0.01, 0.6 * img + 0.02])
    img = np.clip(img, 0, 1).astype(np.float32)
    name = os.path.join(folder, f"{'rgb' if colour else 'mono'}{n}")
    np.save(name + ".npy", img)
    np.save(name + "_psf.npy", moffat_kernel(4.0, 3.0))
    fits.writeto(name + ".fit", img, overwrite=True)
    return name + ".npy", name + ".fit"


def timed(cmd: list[str], cwd: str | None = None) -> dict[str, float]:
    """Run under GNU time -v: wall seconds, peak RSS (MB) and the child's OPTIME if printed."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    err = proc.stderr
    rss = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    out = {"wall": secs, "rss": rss}
    m = re.search(r"OPTIME ([\d.]+)", proc.stdout)
    if m:
        out["op"] = float(m.group(1))
    m = re.search(r"Total execution time: ([\d.]+) (ms|s)", proc.stdout + proc.stderr)
    if m:
        out["op"] = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    return out


def py_case(case: str, npy: str, iterations: int) -> dict[str, float]:
    return timed([sys.executable, "-c", CHILD, case, npy, str(iterations)])


def siril_mlt(fit: str, folder: str) -> dict[str, float] | None:
    if shutil.which("siril-cli") is None:
        return None
    base = os.path.splitext(os.path.basename(fit))[0]
    script = os.path.join(folder, f"mlt_{base}.ssf")
    with open(script, "w") as fh:
        fh.write(f"requires 0.99.4\nload {base}\nwavelet 4 2\nwrecons 1 1.012 1.05 1.075 1\n")
        fh.write(f"save {base}_mlt\nclose\n")
    return timed(["siril-cli", "-d", folder, "-s", script])


def report(label: str, r: dict[str, float] | None, ref: dict[str, float] | None = None) -> None:
    if r is None:
        print(f"  {label:<34} (not available)")
        return
    ratio = ""
    if ref is not None and "op" in r and "op" in ref and ref["op"] > 0:
        ratio = f"   time pxlang/peer {ref['op'] / r['op']:.2f}"
    op = f"{r['op']:7.2f} s" if "op" in r else "      - "
    print(f"  {label:<34} op {op}   wall {r['wall']:7.2f} s   peak RSS {r['rss']:7.0f} MB{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mono", type=int, default=4096)
    ap.add_argument("--colour", type=int, default=2048)
    ap.add_argument(
        "--iterations", type=int, default=20, help="Richardson-Lucy iterations (both sides)"
    )
    ap.add_argument("--quick", action="store_true", help="1024² / 512² for a smoke run")
    ap.add_argument("--only", default="deconv,tgv,mlt", help="comma list of deconv, tgv, mlt")
    ap.add_argument("--sizes", default="mono,colour", help="comma list of mono, colour")
    args = ap.parse_args()
    if args.quick:
        args.mono, args.colour = 1024, 512
    folder = tempfile.mkdtemp(prefix="bench_post_")
    try:
        only = set(args.only.split(","))
        sizes = [(args.mono, False), (args.colour, True)]
        sizes = [sz for sz in sizes if ("colour" if sz[1] else "mono") in args.sizes.split(",")]
        for n, colour in sizes:
            npy, fit = make_data(folder, n, colour)
            kind = f"{n}² {'colour' if colour else 'mono'}"
            print(f"\n{kind} (deconvolution: {args.iterations} iterations, Moffat FWHM 4 β 3)")
            if "deconv" in only:
                px = py_case("deconv-pxlang", npy, args.iterations)
                report("deconvolve (pxlang, deringing)", px)
                px0 = py_case("deconv-pxlang-noderinging", npy, args.iterations)
                sk = py_case("deconv-skimage", npy, args.iterations)
                report("deconvolve (pxlang, no deringing)", px0)
                report("richardson_lucy (scikit-image)", sk, px0)
            if "tgv" in only:
                tg = py_case("tgv-pxlang", npy, args.iterations)
                tv = py_case("tv-skimage", npy, args.iterations)
                report("tgv_denoise (pxlang, TGV)", tg)
                report("denoise_tv_chambolle (skimage, TV)", tv, tg)
            if "mlt" in only:
                ml = py_case("mlt-pxlang", npy, args.iterations)
                report("mlt (pxlang, 4 layers)", ml)
                if colour:
                    report(
                        "mlt (pxlang, target CIE L*)", py_case("mlt-pxlang-L", npy, args.iterations)
                    )
                report("wavelet+wrecons (Siril 1.0.6)", siril_mlt(fit, folder), ml)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
