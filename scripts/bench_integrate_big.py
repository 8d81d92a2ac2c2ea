"""Bounded RAM with many big frames: N uint16 FITS frames of 6248×4176 (24 MP, the guide's
"needs 64 GB" case) integrated with winsorized clipping; prints wall time and peak RSS.

    python scripts/bench_integrate_big.py --frames 1000 [--width 6248 --height 4176] [--dir D]

The frames are written fast (16-bit, as cameras write them: 1000 frames = 52 GB): a few noise
patterns with a moving star field and a cosmic ray per frame, raw FITS written directly.
Needs free disk for N × W × H × 2 bytes; the data is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

RUN = r"""
import sys, time, glob
from pxlang.image.frameset import FrameSet
from pxlang.process.integration import integrate
paths = sorted(glob.glob(sys.argv[1] + "/*.fits"))
t = time.perf_counter()
img = integrate(FrameSet.from_paths(paths, sort=False), rejection="winsorized", low=3, high=3)
print(f"integrated {len(paths)} frames in {time.perf_counter() - t:.1f} s; "
      f"median {float(__import__('numpy').median(img.data[::16, ::16])):.5f}")
"""


def _card(key: str, value: str) -> bytes:
    return f"{key:<8}= {value:>20}".ljust(80).encode()


def write_frames(folder: str, n: int, w: int, h: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    header = b"".join(
        [
            _card("SIMPLE", "T"),
            _card("BITPIX", "16"),
            _card("NAXIS", "2"),
            _card("NAXIS1", str(w)),
            _card("NAXIS2", str(h)),
            _card("BZERO", "32768"),
            _card("BSCALE", "1"),
            "END".ljust(80).encode(),
        ]
    )
    header = header.ljust(((len(header) + 2879) // 2880) * 2880, b" ")
    base = np.full((h, w), 2000, np.int32)
    ys, xs = rng.integers(0, h, 3000), rng.integers(0, w, 3000)
    base[ys, xs] += rng.integers(500, 20000, 3000)
    noise = [rng.normal(0, 30, (h, w)).astype(np.int32) for _ in range(4)]
    nbytes = w * h * 2
    pad = (-nbytes) % 2880
    for i in range(n):
        frame = np.roll(base, (i % 7, i % 5), axis=(0, 1)) + noise[i % 4]
        frame[rng.integers(0, h), rng.integers(0, w)] = 60000  # a cosmic ray
        raw = (np.clip(frame, 0, 65535) - 32768).astype(">i2")
        with open(os.path.join(folder, f"f{i:05d}.fits"), "wb") as fh:
            fh.write(header)
            raw.tofile(fh)
            fh.write(b"\0" * pad)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--width", type=int, default=6248)
    ap.add_argument("--height", type=int, default=4176)
    ap.add_argument("--dir", help="where to write the frames (default: a temp dir)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    need = args.frames * args.width * args.height * 2
    folder = args.dir or tempfile.mkdtemp(prefix="pxbig")
    os.makedirs(folder, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need * 1.05:
        print(f"needs {need / 1e9:.0f} GB free in {folder}, has {free / 1e9:.0f} GB")
        return 1
    try:
        t = time.perf_counter()
        print(
            f"writing {args.frames} uint16 frames of {args.width}x{args.height} "
            f"({need / 1e9:.0f} GB) …",
            flush=True,
        )
        write_frames(folder, args.frames, args.width, args.height)
        print(f"  written in {time.perf_counter() - t:.0f} s", flush=True)
        r = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, "-c", RUN, folder],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            print(r.stderr[:3000])
            return 1
        print(r.stdout.strip())
        stats = dict(
            line.strip().split(": ", 1)
            for line in r.stderr.splitlines()
            if ": " in line and line.startswith("\t")
        )
        rss = int(stats.get("Maximum resident set size (kbytes)", "0")) / 1024
        wall = stats.get("Elapsed (wall clock) time (h:mm:ss or m:ss)")
        print(f"pxlang winsorized 3/3: wall {wall}, peak RSS {rss:.0f} MB for {args.frames} frames")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
