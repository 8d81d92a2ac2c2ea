"""Image file I/O: pxlang vs plain astropy (and Siril's load+save) on 4096x4096 FITS frames.

Each case runs in its own subprocess under GNU time, so the peak RSS is that case's alone.
The time printed is the operation itself (imports excluded), best of 3 runs in the child.

    python scripts/bench_io.py [--size 4096]

Cases: read a float32 FITS, read a uint16 (BZERO) FITS into normalised float32, write a
float32 FITS (pxlang's write is atomic and fsynced; astropy's writeto is neither: an fsynced
astropy variant is shown too), and stream a uint16 frame in 256-row bands with read_rows
(peak RSS should stay near one band, not one frame). XISF and TIFF reads are shown for scale.
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

import numpy as np

CHILD = r"""
import os, sys, time
import numpy as np
case, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
from astropy.io import fits
from pxlang.image import io

def run():
    if case == "read-f32-pxlang" or case == "read-u16-pxlang" or case.startswith("read-other"):
        return io.load(path).data
    if case == "read-f32-astropy":
        with fits.open(path) as h:
            return np.array(h[0].data, dtype=np.float32)
    if case == "read-u16-astropy":
        with fits.open(path) as h:
            return h[0].data.astype(np.float32) / np.float32(65535)
    if case == "write-f32-pxlang":
        io.save(DATA, out)
        return None
    if case == "write-f32-astropy":
        fits.writeto(out, DATA, overwrite=True)
        return None
    if case == "write-f32-astropy-fsync":
        with open(out, "wb") as fh:
            fits.PrimaryHDU(DATA).writeto(fh)
            fh.flush()
            os.fsync(fh.fileno())
        return None
    if case == "rows-u16-pxlang":
        h = io.image_shape(path)[-2]
        total = 0.0
        for r in range(0, h, 256):
            total += float(io.read_rows(path, r, r + 256).sum(dtype=np.float64))
        return total
    raise SystemExit("unknown case " + case)

DATA = None
if case.startswith("write"):
    with fits.open(path) as h:
        DATA = np.array(h[0].data, dtype=np.float32)
best = 1e9
for _ in range(3):
    t = time.perf_counter()
    res = run()
    best = min(best, time.perf_counter() - t)
    del res
print(f"OP_SECONDS {best:.4f}")
"""


def run_case(case: str, path: str, out: str) -> tuple[float, float]:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-c", CHILD, case, path, out]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{case} failed:\n{proc.stdout}\n{proc.stderr}")
    secs = float(re.search(r"OP_SECONDS ([\d.]+)", proc.stdout).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return secs, rss / 1024


def siril_load_save(folder: str, name: str) -> tuple[float, float] | None:
    """Wall time and peak RSS of siril-cli loading a FITS and saving it again (startup incl.)."""
    if shutil.which("siril-cli") is None:
        return None
    script = os.path.join(folder, "io.ssf")
    with open(script, "w") as fh:
        fh.write(f"requires 0.99.4\nload {name}\nsave siril_out\nclose\n")
    t = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", "siril-cli", "-d", folder, "-s", script],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return None
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return wall, rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    n = args.size
    from astropy.io import fits

    from pxlang.image import io

    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmp:
        rng = np.random.default_rng(1)
        f32 = rng.random((n, n), dtype=np.float32)
        u16 = (f32 * 65535).astype(np.uint16)
        p32, p16 = os.path.join(tmp, "f32.fits"), os.path.join(tmp, "u16.fits")
        fits.writeto(p32, f32)
        fits.writeto(p16, u16)
        px, pt = os.path.join(tmp, "f32.xisf"), os.path.join(tmp, "f32.tif")
        io.save(f32, px)
        io.save(f32, pt, bits=32)
        out = os.path.join(tmp, "out.fits")
        mb = f32.nbytes / 2**20
        print(f"frame {n}x{n}: float32 {mb:.0f} MB, uint16 {mb / 2:.0f} MB; best of 3 per case")
        rows = []
        pairs = [
            ("read float32 FITS", "read-f32-pxlang", "read-f32-astropy", p32),
            ("read uint16 FITS -> float32", "read-u16-pxlang", "read-u16-astropy", p16),
            ("write float32 FITS", "write-f32-pxlang", "write-f32-astropy", p32),
            ("write float32 FITS, fsynced", "write-f32-pxlang", "write-f32-astropy-fsync", p32),
        ]
        for label, ours, peer, path in pairs:
            a = run_case(ours, path, out)
            b = run_case(peer, path, out)
            rows.append((label, a, b))
        print(f"{'case':32} {'pxlang s':>9} {'MB':>6} {'astropy s':>10} {'MB':>6} {'ratio':>6}")
        for label, (ta, ra), (tb, rb) in rows:
            print(f"{label:32} {ta:9.3f} {ra:6.0f} {tb:10.3f} {rb:6.0f} {ta / tb:6.2f}")
        t, r = run_case("rows-u16-pxlang", p16, out)
        tl, rl = run_case("read-u16-pxlang", p16, out)
        print(f"stream uint16 in 256-row bands: {t:.3f} s, peak {r:.0f} MB "
              f"(whole-frame load: {tl:.3f} s, peak {rl:.0f} MB)")  # fmt: skip
        for label, path in (("XISF", px), ("TIFF", pt)):
            t, r = run_case("read-other", path, out)
            print(f"read float32 {label} (pxlang): {t:.3f} s, peak {r:.0f} MB")
        sir = siril_load_save(tmp, "u16")
        if sir is not None:
            print(f"siril-cli load + save uint16 FITS (incl. start-up): {sir[0]:.3f} s, "
                  f"peak {sir[1]:.0f} MB")  # fmt: skip
            written = [f for f in os.listdir(tmp) if f.startswith("siril_out")]
            if written:
                got = io.load(os.path.join(tmp, written[0])).data
                ref = io.load(p16).data
                print(f"  pxlang reads Siril's {written[0]}: max |diff| vs the source "
                      f"{float(np.abs(got - ref).max()):.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
