"""The whole preprocessing of one synthetic night, pxlang vs Siril 1.0.6, in one run.

Generates a night once with ``pxlang.synthetic.make_night(layout="siril")`` (biases/,
darks/, flats/<F>/, lights/<F>/; the first filter has a cloudy light, the last a trailed one)
in a temp folder, then runs, each side as subprocesses under ``/usr/bin/time -v``:

- pxlang: ``pxlang run preprocess input=NIGHT output=OUT`` (frames found by headers; bad
  frames rejected by the SubframeSelector rule; every filter registered to one reference).
- Siril:  the standard script, one ``siril-cli`` call per step (times summed, peak RSS the
  largest of the steps): master bias (rej w 3 3 -nonorm), master dark, then per filter
  flats calibrated with the bias and stacked (-norm=mul), lights calibrated (-dark -flat,
  which also applies Siril's cosmetic correction), registered to the filter's first light,
  stacked (rej w 3 3 -norm=addscale -output_norm). Siril cannot reject the cloudy or trailed
  frames by itself, so they go into its stacks; its two filters are not aligned to each other.

Each stack is scored against the generator's truth, the same way for both sides: the light
it is aligned to is found by matching its stars to the truth catalogue; ``stack = a * truth
+ b`` is fitted on star-free sky (Siril's output is rescaled to [0, 1]); noise is the robust
sigma of the star-free residual in truth units, per pixel and of 4x4 and 8x8 block means (x 4,
x 8: the interpolation of registration correlates neighbours and lowers the per-pixel figure,
Siril's much more than pxlang's Lanczos-3, and the 4x4 one by a few per cent), compared
with the ideal stack noise (``Truth.stack_noise``) of the approved lights and of all lights;
SNR is the nebula's contrast (99th - 1st percentile of the star-free truth) over the 4x4
noise; FWHM is the median Moffat FWHM of bright unsaturated stars
(``pxlang.process.stars.find_stars``). As a blurring interpolation trades sharpness for
noise, the sharper stack of each filter is also scored blurred by a Gaussian to the other's
FWHM: the two SNRs at equal resolution. Memory: GNU time's peak RSS
(largest single process: pxlang's forked per-frame workers are not added up) and the peak
PSS of the whole process tree sampled with psutil.

Times are of runs nobody watches: sampling the tree's PSS every 0.2 s costs ~1.2 s of CPU
per run here (~10 % of a 1024² run on two cores, for both sides), so the PSS comes from one
more run of each side made only for it. ``--repeat N`` times each side N times, alternating
(the machine's own drift falls on both), and prints every time and the medians.

    python scripts/bench_end2end.py                      # 1024², 20 lights per filter
    python scripts/bench_end2end.py --big                # 2048², 25 lights per filter
    python scripts/bench_end2end.py --repeat 3           # medians of three timed runs a side
    python scripts/bench_end2end.py --size 512 --lights 10 --keep
    python scripts/bench_end2end.py --score /tmp/bench_end2end_1024_xxxx   # re-score a kept run
    python scripts/bench_end2end.py --src /tmp/pxhead    # pxlang from a `git archive HEAD` copy
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT  # where pxlang is imported from (--src: e.g. a `git archive HEAD` snapshot)

BORDER = 24  # px left out of scoring: dither (6 px) + rotation at the corners + stack edges


def timed(cmd: list[str], cwd: str | Path, pss: bool = False) -> tuple[float, float, float, str]:
    """(wall s, peak RSS MB, peak tree PSS MB, stdout) of a command run under GNU time.

    GNU time's peak RSS is that of the largest single process: forked workers running at
    the same time are not added up. With ``pss`` the tree PSS (proportional set size, so
    pages shared after a fork count once) is sampled every 0.2 s with psutil, summing the
    whole tree; the sampling slows the run (module docstring), so its wall time is not the
    one to quote. Without, the PSS is nan."""
    import psutil

    os.sync()  # the previous step's dirty pages are not flushed on this one's time
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(["/usr/bin/time", "-v", *cmd], cwd=cwd, stdout=out, stderr=err)
        peak = 0.0 if pss else float("nan")
        root = psutil.Process(p.pid)
        if not pss:
            p.wait()
        while p.poll() is None:
            total = 0.0
            try:
                procs = root.children(recursive=True)
            except psutil.Error:
                procs = []
            for q in procs:
                try:
                    total += q.memory_full_info().pss
                except psutil.Error:
                    pass
            peak = max(peak, total / 2**20)
            time.sleep(0.2)
        wall = time.perf_counter() - t
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if p.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({p.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}"
        )
    return wall, (int(rss.group(1)) / 1024 if rss else float("nan")), peak, stdout


# ---- Siril ---------------------------------------------------------------------------------


def _link_files(src: Path, dst: Path) -> int:
    """Link the FITS files of ``src`` one by one into a new real folder ``dst`` (Siril's
    ``convert -out=../x`` resolves ``..`` through a symlinked folder, so never link folders)."""
    dst.mkdir(parents=True)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".fits", ".fit", ".fts"))
    for p in files:
        (dst / p.name).symlink_to(p)
    return len(files)


def siril_steps(filters: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, script) of each siril-cli call of the standard preprocessing script."""
    steps = [
        (
            "bias",
            "cd biases\nconvert bias -out=../process\ncd ../process\n"
            "stack bias rej w 3 3 -nonorm -out=master_bias\n",
        ),
        (
            "dark",
            "cd darks\nconvert dark -out=../process\ncd ../process\n"
            "stack dark rej w 3 3 -nonorm -out=master_dark\n",
        ),
    ]
    for f in filters:
        steps += [
            (
                f"flat {f}",
                f"cd flats_{f}\nconvert flat{f} -out=../process\ncd ../process\n"
                f"preprocess flat{f} -bias=master_bias\n"
                f"stack pp_flat{f} rej w 3 3 -norm=mul -out=master_flat{f}\n",
            ),
            (
                f"calibrate {f}",
                f"cd lights_{f}\nconvert light{f} -out=../process\ncd ../process\n"
                f"preprocess light{f} -dark=master_dark -flat=master_flat{f}\n",
            ),
            (f"register {f}", f"cd process\nregister pp_light{f}\n"),
            (
                f"stack {f}",
                f"cd process\nstack r_pp_light{f} rej w 3 3 -norm=addscale -output_norm "
                f"-out=../result_{f}\n",
            ),
        ]
    return [(name, "requires 0.99.4\n" + body + "close\n") for name, body in steps]


def run_siril(
    night: Path, work: Path, filters: tuple[str, ...], pss: bool = False
) -> tuple[float, float, float, dict]:
    """Run Siril's steps in a new folder ``work``: (summed wall s, max peak RSS MB, max tree
    PSS MB (nan without ``pss``), {step: (s, RSS MB)})."""
    shutil.rmtree(work, ignore_errors=True)
    _link_files(night / "biases", work / "biases")
    _link_files(night / "darks", work / "darks")
    for f in filters:
        _link_files(night / "flats" / f, work / f"flats_{f}")
        _link_files(night / "lights" / f, work / f"lights_{f}")
    per: dict[str, tuple[float, float]] = {}
    peak = 0.0 if pss else float("nan")
    for k, (name, script) in enumerate(siril_steps(filters)):
        ssf = work / f"step{k:02d}.ssf"
        ssf.write_text(script)
        cmd = ["siril-cli", "-d", str(work), "-s", str(ssf)]
        wall, rss, step_pss, log = timed(cmd, work, pss)
        ssf.with_suffix(".log").write_text(log)
        per[name] = (wall, rss)
        peak = max(peak, step_pss)
    return sum(w for w, _ in per.values()), max(r for _, r in per.values()), peak, per


# ---- scoring -------------------------------------------------------------------------------


def _which_light(truth, stars_xy: np.ndarray):
    """The truth light whose pixel grid the stack is in (its stars land on the catalogue
    projected into that light), and the median residual offset (dx, dy) in pixels.

    ``stars_xy`` are well-measured stars of the stack. Lights a dither apart can both match
    within a pixel or two, so the light with the smallest median distance wins among those
    matching nearly as many stars as the best."""
    from scipy.spatial import cKDTree

    found = []
    for lt in truth.lights:
        x, y = truth.to_frame(lt, truth.star_x, truth.star_y)
        d, i = cKDTree(np.c_[x, y]).query(stars_xy, distance_upper_bound=1.5)
        ok = np.isfinite(d)
        if ok.sum() >= 3:
            off = np.median(stars_xy[ok] - np.c_[x, y][i[ok]], axis=0)
            found.append((int(ok.sum()), float(np.median(d[ok])), lt, off))
    if not found:
        raise RuntimeError("no truth light matches the stars of this stack (flipped?)")
    most = max(f[0] for f in found)
    _, _, lt, off = min((f for f in found if f[0] >= 0.8 * most), key=lambda f: f[1])
    return lt, off


def score(path: Path, truth, group: str) -> dict:
    """Noise, SNR, FWHM of a stack against the truth of ``group``."""
    from pxlang.image import io
    from pxlang.process.stars import find_stars

    data = io.load(str(path)).data.astype(np.float64)
    tab = find_stars(data.astype(np.float32), max_fit=400)
    good = tab.fitted & ~tab.saturated
    good &= (
        (tab.x > BORDER)
        & (tab.x < data.shape[1] - BORDER)
        & (tab.y > BORDER)
        & (tab.y < data.shape[0] - BORDER)
    )
    # bright but well below the brightest (no flattened cores): 50..2000 sigma peaks
    good &= (tab.peak > 50 * tab.noise) & (tab.peak < 0.5 * np.nanmax(tab.peak))
    ref, off = _which_light(truth, tab.xy()[tab.fitted & ~tab.saturated])
    lt = copy.copy(ref)
    lt.group, lt.transparency, lt.extra_background = group, 1.0, 0.0
    lt.cloudy = lt.trailed = False
    lt.ellipticity, lt.satellite = 0.0, None
    expected = truth.expected_light(lt, stars=True).astype(np.float64)
    no_stars = truth.expected_light(lt, stars=False).astype(np.float64)
    clean = (expected - no_stars) < 2e-5
    clean[:BORDER], clean[-BORDER:], clean[:, :BORDER], clean[:, -BORDER:] = (False,) * 4
    x, y = no_stars[clean], data[clean]
    keep = np.ones(x.size, bool)
    for _ in range(3):  # stack = a * truth + b, refitted without > 5 sigma outliers
        a, b = np.polyfit(x[keep], y[keep], 1)
        r = y - (a * x + b)
        s = 1.4826 * np.median(np.abs(r[keep] - np.median(r[keep])))
        keep = np.abs(r) < 5 * s
    noise = s / a
    # Interpolation during registration correlates neighbouring pixels and lowers the
    # per-pixel sigma; the sigma of k x k block means (x k, as for independent pixels) is the
    # noise at a scale interpolation hardly reaches. A blurring interpolation still lowers
    # the 4x4 figure a little (pxlang with bilinear: 4x4 noise -6 %, FWHM +6 %, as Siril's),
    # hardly the 8x8 one.
    resid = data - (a * no_stars + b)

    def block_noise(k: int) -> float:
        hh, ww = data.shape[0] // k * k, data.shape[1] // k * k
        blocks = resid[:hh, :ww].reshape(hh // k, k, ww // k, k).mean(axis=(1, 3))
        free = clean[:hh, :ww].reshape(hh // k, k, ww // k, k).all(axis=(1, 3))
        bl = blocks[free]
        bl = bl[np.abs(bl - np.median(bl)) < 5 * s]
        return k * 1.4826 * float(np.median(np.abs(bl - np.median(bl)))) / a

    noise4, noise8 = block_noise(4), block_noise(8)
    contrast = float(np.percentile(x, 99) - np.percentile(x, 1))
    good_lights = [t for t in truth.lights_of(group) if not t.bad]
    return {
        "ref": Path(ref.path).name,
        "ref_group": ref.group,
        "offset": off,
        "a": a,
        "b": b,
        "noise": noise,
        "ideal": truth.stack_noise(group),
        "ideal_all": truth.stack_noise(group, approved_only=False),
        "noise4": noise4,
        "noise8": noise8,
        "snr": contrast / noise4,
        "fwhm": float(np.nanmedian(tab.fwhm[good])) if good.any() else float("nan"),
        "n_stars": int(good.sum()),
        "fwhm_truth": float(np.mean([t.fwhm for t in good_lights])),
    }


def score_at_fwhm(path: Path, truth, group: str, fwhm: float, q: dict) -> dict:
    """``score`` of the stack at ``path`` (scored ``q``) blurred by a Gaussian until its
    stars' FWHM is ``fwhm`` (within 0.01 px): the sharper of two stacks compared with the
    other at the same resolution (a blurring interpolation lowers the noise it measures)."""
    from astropy.io import fits
    from scipy.ndimage import gaussian_filter

    from pxlang.image import io

    data = io.load(str(path)).data.astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="bench_fwhm_"))
    try:
        # FWHMs add in quadrature for Gaussians: the first guess; then secant steps on the
        # measured FWHM (the stars are Moffat-like, the measure a Moffat fit)
        pts = [(0.0, q["fwhm"])]
        sig = math.sqrt(max(fwhm**2 - q["fwhm"] ** 2, 0.0)) / 2.3548
        got = q
        for _ in range(5):
            blurred = tmp / f"blurred_{sig:.4f}.fits"
            fits.writeto(blurred, gaussian_filter(data, sig), overwrite=True)
            got = score(blurred, truth, group)
            got["sigma"] = sig
            if abs(got["fwhm"] - fwhm) < 0.01:
                break
            pts.append((sig, got["fwhm"]))
            (s0, f0), (s1, f1) = pts[-2], pts[-1]
            sig = s1 + (fwhm - f1) * (s1 - s0) / (f1 - f0) if f1 != f0 else s1 * 1.1
            sig = max(sig, 0.0)
        return got
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- main ----------------------------------------------------------------------------------


def run(
    size: int, lights: int, filters: tuple[str, ...], keep: bool, seed: int, repeat: int = 1
) -> None:

    work = Path(tempfile.mkdtemp(prefix=f"bench_end2end_{size}_"))
    try:
        _run_in(work, size, lights, filters, seed, repeat)
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def pxlang_cmd(*args: str) -> list[str]:
    """``pxlang ARGS`` run with this interpreter, pxlang imported from SRC (--src)."""
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(SRC)!r}); from pxlang.cli import entry; entry()",
        *args,
    ]


def warm_up(work: Path) -> None:
    """``pxlang demo`` once before the timed run: the first run after an install compiles the
    kernels into their library (``pxlang.process.jit``, ~40 s here; numba's on-disk cache
    with ``PXLANG_AOT=0``), every later run loads them. The comparison is of runs as a user
    has them after that first one; the compile time is printed apart."""
    wall, _, _, _ = timed(pxlang_cmd("demo", "--quiet", str(work / "warm-up")), work)
    shutil.rmtree(work / "warm-up", ignore_errors=True)
    print(f"warm-up: pxlang demo {wall:.1f} s (includes compiling the kernels on a first run)")


def _run_in(
    work: Path, size: int, lights: int, filters: tuple[str, ...], seed: int, repeat: int
) -> None:
    from pxlang.synthetic import make_night

    night = work / "night"
    t = time.perf_counter()
    truth = make_night(
        night,
        size=(size, size),
        filters=filters,
        lights_per_filter=lights,
        seed=seed,
        layout="siril",
    )
    print(
        f"night of {size}², {lights} lights x {filters}, 5 bias/dark/flat each, written in "
        f"{time.perf_counter() - t:.0f} s ({work})"
    )
    bad = [
        f"{Path(lt.path).name} ({'cloudy' if lt.cloudy else 'trailed'})"
        for lt in truth.lights
        if lt.bad
    ]
    print("bad lights:", ", ".join(bad) or "none")
    truth.to_json(work / "truth.json")  # for --score WORK (with --keep)

    # pxlang first: Siril works in its own folder of links, never inside the night
    out_px = work / "out_px"
    cmd = pxlang_cmd(
        "run",
        "--quiet",
        "--cache",
        str(work / "pxcache"),
        "preprocess",
        f"input={night}",
        f"output={out_px}",
    )
    warm_up(work)
    siril = work / "siril"

    def pxlang_run(pss: bool) -> tuple[float, float, float]:
        shutil.rmtree(work / "pxcache", ignore_errors=True)  # every run from scratch
        shutil.rmtree(out_px, ignore_errors=True)
        wall, rss, peak, _ = timed(cmd, work, pss)
        return wall, rss, peak

    px, si = [], []
    for k in range(repeat):  # alternating: the machine's drift falls on both sides
        px.append(pxlang_run(False))
        wall, rss, _, per = run_siril(night, siril, filters)
        si.append((wall, rss))
        steps = ", ".join(f"{n} {w:.1f} s/{r:.0f} MB" for n, (w, r) in per.items())
        print(
            f"run {k + 1}: pxlang {px[-1][0]:.1f} s, peak RSS {px[-1][1]:.0f} MB | Siril "
            f"{wall:.1f} s, peak RSS {rss:.0f} MB ({steps})",
            flush=True,
        )
    # the tree PSS from one more run a side, sampled (slower: not a time to quote)
    pss_px = pxlang_run(True)[2]
    pss_si = run_siril(night, siril, filters, pss=True)[2]
    wall_px, rss_px = float(np.median([r[0] for r in px])), max(r[1] for r in px)
    wall_si, rss_si = float(np.median([r[0] for r in si])), max(r[1] for r in si)
    what = f"median of {repeat}" if repeat > 1 else "one run"
    print(f"pxlang: {wall_px:.1f} s ({what}), peak RSS {rss_px:.0f} MB, tree PSS {pss_px:.0f} MB")
    print(f"Siril: {wall_si:.1f} s ({what}), peak RSS {rss_si:.0f} MB, PSS {pss_si:.0f} MB")
    times = {"px": (wall_px, rss_px, pss_px), "si": (wall_si, rss_si, pss_si)}
    (work / "times.json").write_text(json.dumps(times))
    print_scores(work, truth, filters, times)


def print_scores(work: Path, truth, filters: tuple[str, ...], times: dict) -> None:
    """Score both sides' stacks against the truth; print the table and the ratios."""
    out_px, siril = work / "out_px", work / "siril"
    (wall_px, rss_px, pss_px), (wall_si, rss_si, pss_si) = times["px"], times["si"]
    report = json.loads((out_px / "report.json").read_text())
    approved = {Path(f["path"]).name: f["approved"] for f in report["frames"]}
    rejected = sorted(k for k, v in approved.items() if not v)
    print(
        "pxlang rejected:",
        ", ".join(rejected) or "none",
        "| Siril stacks every light (it cannot reject cloudy/trailed frames by itself)",
    )

    rows = []
    for f in filters:
        si_path = next(siril.glob(f"result_{f}.fit*"), None)
        if si_path is None:
            raise RuntimeError(f"Siril wrote no result_{f}.fit; see the step*.log in {siril}")
        q_px, q_si = score(out_px / f"{f}.fits", truth, f), score(si_path, truth, f)
        rows.append((f, q_px, q_si))

    print(
        "\nnoise: robust sigma of star-free sky, truth units; 4x4, 8x8: of block means x 4, "
        "x 8 (scales interpolation hardly reaches; a blurring one still lowers 4x4 a few %); "
        "ideal: Truth.stack_noise of the approved lights, all: of every light (Siril stacks "
        "every light: /all is its own stack's efficiency); SNR: nebula contrast / noise 4x4"
    )
    print(
        f"{'filter':7}{'side':7}{'aligned to':>28}{'gain a':>7}{'noise':>10}{'/ideal':>7}"
        f"{'4x4':>10}{'/ideal':>7}{'/all':>6}{'8x8/ideal':>10}{'/all':>6}{'SNR':>7}{'FWHM':>7}{'stars':>6}"
    )
    for f, q_px, q_si in rows:
        for side, q in (("pxlang", q_px), ("Siril", q_si)):
            print(
                f"{f:7}{side:7}{q['ref']:>28}{q['a']:7.3g}{q['noise']:10.3e}"
                f"{q['noise'] / q['ideal']:7.3f}{q['noise4']:10.3e}"
                f"{q['noise4'] / q['ideal']:7.3f}{q['noise4'] / q['ideal_all']:6.3f}"
                f"{q['noise8'] / q['ideal']:10.3f}{q['noise8'] / q['ideal_all']:6.3f}"
                f"{q['snr']:7.1f}{q['fwhm']:7.3f}{q['n_stars']:6d}"
            )
        print(
            f"{f:7}{'ratio':7}{'pxlang/Siril':>28}{'':7}{q_px['noise'] / q_si['noise']:10.3f}"
            f"{'':7}{q_px['noise4'] / q_si['noise4']:10.3f}{'':7}{'':6}"
            f"{q_px['noise8'] / q_si['noise8']:10.3f}{'':6}"
            f"{q_px['snr'] / q_si['snr']:7.3f}{q_px['fwhm'] / q_si['fwhm']:7.3f}"
            f"   (truth FWHM of the good lights {q_px['fwhm_truth']:.3f})"
        )
    refs_px = {q_px["ref"] for _, q_px, _ in rows}
    refs_si = {q_si["ref"] for _, _, q_si in rows}
    print(
        f"\nalignment: pxlang masters of all filters on one reference ({', '.join(refs_px)}); "
        f"Siril registers each filter to its own first light ({', '.join(sorted(refs_si))}), "
        "so its masters are not aligned with each other"
    )
    for f, q_px, q_si in rows:
        print(
            f"  {f}: residual offset vs reference pxlang ({q_px['offset'][0]:+.3f}, "
            f"{q_px['offset'][1]:+.3f}) px, Siril ({q_si['offset'][0]:+.3f}, "
            f"{q_si['offset'][1]:+.3f}) px"
        )
    print(
        "\nat equal resolution: the sharper stack blurred (Gaussian) to the other's FWHM, "
        "then scored the same way (noise 4x4 / ideal of the lights it stacked, SNR)"
    )
    for f, q_px, q_si in rows:
        if q_px["fwhm"] < q_si["fwhm"]:
            sharp, path, other, names = q_px, out_px / f"{f}.fits", q_si, ("pxlang", "Siril")
        else:
            si_path = next(siril.glob(f"result_{f}.fit*"))
            sharp, path, other, names = q_si, si_path, q_px, ("Siril", "pxlang")
        b = score_at_fwhm(path, truth, f, other["fwhm"], sharp)
        ideal_sharp = sharp["ideal"] if names[0] == "pxlang" else sharp["ideal_all"]
        ideal_other = other["ideal"] if names[1] == "pxlang" else other["ideal_all"]
        print(
            f"  {f}: {names[0]} blurred by sigma {b['sigma']:.2f} px to FWHM {b['fwhm']:.3f}: "
            f"4x4 {b['noise4'] / ideal_sharp:.3f}, SNR {b['snr']:.1f} | {names[1]}: FWHM "
            f"{other['fwhm']:.3f}, 4x4 {other['noise4'] / ideal_other:.3f}, SNR "
            f"{other['snr']:.1f} | SNR {names[0]}/{names[1]} {b['snr'] / other['snr']:.3f}"
        )
    print(
        f"\nwall s: pxlang {wall_px:.1f}, Siril {wall_si:.1f} (sum of its steps); "
        f"peak RSS MB (GNU time): pxlang {rss_px:.0f}, Siril {rss_si:.0f} (largest step); "
        f"peak PSS MB of the process tree: pxlang {pss_px:.0f}, Siril {pss_si:.0f}"
    )
    print(
        f"pxlang/Siril time {wall_px / wall_si:.2f}x, RAM {rss_px / rss_si:.2f}x "
        f"(tree PSS {pss_px / pss_si:.2f}x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--lights", type=int, default=20, help="lights per filter")
    ap.add_argument("--big", action="store_true", help="2048² with 25 lights per filter")
    ap.add_argument("--filters", nargs="+", default=["Ha", "OIII"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs a side (medians)")
    ap.add_argument("--src", default=str(ROOT), help="folder to import pxlang from")
    ap.add_argument("--score", metavar="WORK", help="only score a folder kept by --keep")
    args = ap.parse_args()
    global SRC
    SRC = Path(args.src).resolve()
    sys.path.insert(0, str(SRC))
    # pxlang's modules as an install has them, compiled to bytecode (pip compiles at install;
    # an editable install's first run writes them): with PYTHONDONTWRITEBYTECODE set, a
    # checkout's modules were compiled anew by every timed run (~0.15 s of its serial start)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(SRC / "pxlang")], check=True)
    if shutil.which("siril-cli") is None:
        sys.exit("siril-cli not found (apt-get install siril)")
    if not os.path.exists("/usr/bin/time"):
        sys.exit("GNU time not found (apt-get install time)")
    if args.score:
        from pxlang.synthetic import Truth

        work = Path(args.score)
        truth = Truth.from_json(work / "truth.json")
        times = json.loads((work / "times.json").read_text())
        print_scores(work, truth, truth.groups, times)
        return
    size, lights = (2048, 25) if args.big else (args.size, args.lights)
    run(size, lights, tuple(args.filters), args.keep, args.seed, max(1, args.repeat))


if __name__ == "__main__":
    main()
