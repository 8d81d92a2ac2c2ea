"""Benchmark: integration of N float32 FITS frames, winsorized sigma clipping 3/3, no
normalisation: pxlang vs Siril 1.0.6 (``stack ... rej w 3 3 -nonorm``) vs ccdproc (sigma
clipping 3/3: it has no winsorized clipping) when installed. Same files, one run; each side
runs as a subprocess under ``/usr/bin/time -v`` (wall time and peak RSS).

    python scripts/bench_integrate.py                 # 50 x 2048^2
    python scripts/bench_integrate.py --size 4096     # 50 x 4096^2
    python scripts/bench_integrate.py --ram-sweep     # pxlang RSS for 50, 100, 300 x 2048^2

Data are made in a temporary folder (removed afterwards). The machine is shared: compare the
ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_frames(folder: str, n: int, size: int, seed: int = 0) -> list[str]:
    """n float32 FITS frames: a sky with stars, Gaussian noise, cosmic rays."""
    from astropy.io import fits

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    sky = (0.1 + 0.02 * xx + 0.01 * yy).astype(np.float32)
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"frame_{i:04d}.fits")
        paths.append(p)
        if os.path.exists(p):
            continue
        data = sky + rng.normal(0, 0.01, (size, size)).astype(np.float32)
        hits = rng.integers(0, size, (2, 200))
        data[hits[0], hits[1]] += 0.5
        hdu = fits.PrimaryHDU(data.astype(np.float32))
        hdu.header["DATE-OBS"] = f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}"
        hdu.writeto(p)
    return paths


def timed(cmd: list[str], cwd: str | None = None, env: dict | None = None) -> dict:
    """Run under /usr/bin/time -v; wall seconds and peak RSS (MB)."""
    full = ["/usr/bin/time", "-v", *cmd]
    proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True)
    err = proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout}\n{err[-3000:]}")
    m = re.search(
        r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", err
    )
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
    return {"wall": wall, "rss": rss, "stdout": proc.stdout}


PXLANG_RUN = textwrap.dedent(
    """
    import glob, sys
    from pxlang.process.integration import integrate_paths
    paths = sorted(glob.glob(sys.argv[1] + "/*.fits"))
    integrate_paths(paths, sys.argv[2], rejection="winsorized", low=3, high=3,
                    normalization="none")
    """
)

CCDPROC_RUN = textwrap.dedent(
    """
    import glob, sys, numpy as np
    from astropy.stats import mad_std
    import ccdproc
    paths = sorted(glob.glob(sys.argv[1] + "/*.fits"))
    out = ccdproc.combine(paths, method="average", sigma_clip=True, sigma_clip_low_thresh=3,
                          sigma_clip_high_thresh=3, sigma_clip_func=np.ma.median,
                          sigma_clip_dev_func=mad_std, mem_limit=1e9, unit="adu")
    out.write(sys.argv[2], overwrite=True)
    """
)


def run_pxlang(frames_dir: str, out: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return timed([sys.executable, "-c", PXLANG_RUN, frames_dir, out], env=env)


def run_siril(frames_dir: str, work: str) -> dict:
    # Siril 1.0.6: link the files into a sequence, then stack (see ../shared/peers/siril.md)
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "frames")
    os.makedirs(src, exist_ok=True)
    for name in sorted(os.listdir(frames_dir)):
        dst = os.path.join(src, name)
        if not os.path.exists(dst):
            os.symlink(os.path.join(frames_dir, name), dst)
    script = os.path.join(work, "stack.ssf")
    with open(script, "w") as fh:
        fh.write(
            "requires 0.99.4\ncd frames\nlink frame -out=../seq\ncd ../seq\n"
            "stack frame rej w 3 3 -nonorm -out=../result\nclose\n"
        )
    res = timed(["siril-cli", "-d", work, "-s", script])
    res["output"] = next(
        (os.path.join(work, f) for f in os.listdir(work) if f.startswith("result")), None
    )
    return res


def compare(a: str, b: str) -> tuple[float, float]:
    """(fraction of pixels differing by more than 1e-6, largest difference)."""
    from astropy.io import fits

    x = fits.getdata(a).astype(np.float64)
    y = fits.getdata(b).astype(np.float64)
    d = np.abs(x - y)
    return float(np.mean(d > 1e-6)), float(d.max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--ram-sweep", action="store_true", help="pxlang RSS for 50/100/300 frames")
    ap.add_argument("--keep", help="folder for the data (kept), instead of a temp folder")
    args = ap.parse_args(argv)

    base = args.keep or tempfile.mkdtemp(prefix="pxbench-")
    try:
        # warm the numba cache so that the timed run measures work, not compilation
        warm = make_frames(os.path.join(base, "warm"), 5, 64)
        run_pxlang(os.path.dirname(warm[0]), os.path.join(base, "warm.fits"))

        if args.ram_sweep:
            print(f"pxlang bounded-RAM sweep, {args.size}^2 float32, winsorized 3/3")
            print(f"{'frames':>7} {'wall s':>8} {'peak RSS MB':>12}")
            for n in (50, 100, 300):
                d = os.path.join(base, f"sweep{args.size}")
                make_frames(d, n, args.size)
                sub = os.path.join(base, f"sweep{args.size}_{n}")
                os.makedirs(sub, exist_ok=True)
                for name in sorted(os.listdir(d))[:n]:
                    if not os.path.exists(os.path.join(sub, name)):
                        os.symlink(os.path.join(d, name), os.path.join(sub, name))
                r = run_pxlang(sub, os.path.join(base, f"sweep_{n}.fits"))
                print(f"{n:>7} {r['wall']:>8.2f} {r['rss']:>12.0f}", flush=True)
            return 0

        d = os.path.join(base, f"f{args.frames}_{args.size}")
        print(f"making {args.frames} float32 frames of {args.size}^2 ...", flush=True)
        make_frames(d, args.frames, args.size)
        rows = []
        px = run_pxlang(d, os.path.join(base, "pxlang.fits"))
        rows.append(("pxlang", px))
        have_siril = shutil.which("siril-cli") is not None
        if have_siril:
            si = run_siril(d, os.path.join(base, "siril"))
            rows.append(("siril 1.0.6", si))
        try:
            import ccdproc  # noqa: F401

            cp = timed([sys.executable, "-c", CCDPROC_RUN, d, os.path.join(base, "ccdproc.fits")])
            rows.append(("ccdproc (sigma 3/3)", cp))
        except ImportError:
            print("ccdproc not installed: skipped")
        print(f"\n{args.frames} x {args.size}^2 float32, winsorized 3/3, no normalisation")
        print(f"{'':<22}{'wall s':>8}{'peak RSS MB':>13}{'time ratio':>12}{'RSS ratio':>11}")
        for name, r in rows:
            print(
                f"{name:<22}{r['wall']:>8.2f}{r['rss']:>13.0f}"
                f"{px['wall'] / r['wall']:>12.2f}{px['rss'] / r['rss']:>11.2f}"
            )
        print("(ratios are pxlang / peer: below 1 means pxlang is faster / smaller)")
        if have_siril and si.get("output"):
            frac, worst = compare(os.path.join(base, "pxlang.fits"), si["output"])
            print(
                f"pxlang vs siril: {100 * frac:.3f}% of pixels differ by > 1e-6, "
                f"at most {worst:.2e} (frame noise 1e-2)"
            )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
