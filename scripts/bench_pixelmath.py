"""PixelMath speed and memory: a 10-operation expression over three 4096² float32 images,
pxlang vs plain numpy vs numexpr, in one run; and the cold start of `pxlang check`.

    python scripts/bench_pixelmath.py [--size 4096] [--repeat 5]

Each contender runs in its own subprocess (so peak RSS is its own); the figure reported is the
best of --repeat evaluations, and the peak of traced allocations above the inputs, in image
sizes. numexpr is optional (pip install numexpr); it is only a yardstick, not a dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

EXPR = "((A*0.5 + B*0.3) + C*0.2 - A*B) + sqrt(C)*0.1"  # 10 operations + truncation to [0, 1]

WORKER = r"""
import json, sys, time, tracemalloc
import numpy as np
kind, size, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
A, B, C = (rng.random((size, size), dtype=np.float32) for _ in range(3))
EXPR = sys.argv[4]
if kind == "pxlang":
    import pxlang
    run = lambda: pxlang.pixelmath(EXPR, images={"A": A, "B": B, "C": C})
elif kind == "numpy":
    def run():
        r = ((A*0.5 + B*0.3) + C*0.2 - A*B) + np.sqrt(C)*0.1
        return np.clip(r, 0, 1, out=r)
else:
    import numexpr as ne
    def run():
        r = ne.evaluate("((A*0.5 + B*0.3) + C*0.2 - A*B) + sqrt(C)*0.1")
        return np.clip(r, 0, 1, out=r)
out = run()  # warm-up (imports, caches)
times = []
for _ in range(repeat):
    t = time.perf_counter(); out = run(); times.append(time.perf_counter() - t)
del out
tracemalloc.start()
out = run()
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
import resource
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"best": min(times), "median": sorted(times)[len(times)//2], "peak": peak,
                  "image": A.nbytes, "rss_mb": rss, "checksum": float(out.sum(dtype=np.float64))}))
"""


def run_worker(kind: str, size: int, repeat: int) -> dict | None:
    r = subprocess.run(
        [sys.executable, "-c", WORKER, kind, str(size), str(repeat), EXPR],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        if "No module named 'numexpr'" in r.stderr:
            return None
        raise SystemExit(f"{kind} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def cold_check(n: int = 7) -> float:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "small.px")
        with open(path, "w") as fh:
            fh.write(
                'param k = 0.5\nHa = load("Ha.fits")\nOIII = load("OIII.fits")\n'
                'c = { R = Ha; G = (Ha*k)+(OIII*~k); B = OIII }\nsave(c, "c.fits")\n'
            )
        exe = [sys.executable, "-m", "pxlang.cli", "check", path]
        subprocess.run(exe, capture_output=True)  # grammar cache, .pyc
        times = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(exe, capture_output=True, check=True)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"expression: {EXPR}  (3 × {args.size}² float32, truncated to [0, 1])")
    results = {k: run_worker(k, args.size, args.repeat) for k in ("pxlang", "numpy", "numexpr")}
    base = results["pxlang"]
    print(f"{'':8} {'best s':>8} {'median s':>9} {'peak/img':>9} {'RSS MB':>8}  ratio vs pxlang")
    for k, r in results.items():
        if r is None:
            print(f"{k:8} not installed (pip install numexpr to compare)")
            continue
        print(
            f"{k:8} {r['best']:8.3f} {r['median']:9.3f} {r['peak'] / r['image']:9.2f} "
            f"{r['rss_mb']:8.0f}  {r['best'] / base['best']:.2f}x"
        )
        if abs(r["checksum"] - base["checksum"]) > 1e-3 * abs(base["checksum"]):
            print(f"  !! {k} result differs: {r['checksum']} vs {base['checksum']}")
    print(f"pxlang check cold start (median of 7): {cold_check():.3f} s")


if __name__ == "__main__":
    main()
