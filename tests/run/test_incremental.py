"""`pxlang run preprocess` is incremental and resumable (issue 7): adding a light recomputes
that light's per-frame work only; a run killed part-way is finished by the next run, which
reuses what was done and makes the same masters as an uninterrupted run.

Observed from outside, as a user would: the plain progress lines (stderr is not a terminal),
the cache folder and the output files. One shared set of runs for the whole module."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pxlang.synthetic import make_night

SIZE = (128, 160)
EXTRA = "SYNTH-1_Ha_300s_0005.fits"  # the light added between two runs


def _cmd(raw: Path, out: Path, cache: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pxlang.cli",
        "run",
        "preprocess",
        f"input={raw}",
        f"output={out}",
        "--cache",
        str(cache),
    ]


def _run(raw: Path, out: Path, cache: Path) -> str:
    r = subprocess.run(_cmd(raw, out, cache), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stderr


def _todo(log: str, stage: str) -> list[int]:
    """The 'N to do' counts of a stage's plain progress lines ("measure light Ha: 5 to
    do"), in order."""
    return [int(n) for n in re.findall(rf"^{stage}(?: [^:]+)?: (\d+) to do$", log, re.M)]


def _masters(out: Path) -> dict[str, np.ndarray]:
    return {g: fits.getdata(out / f"{g}.fits").astype(np.float64) for g in ("Ha", "OIII")}


def _cache_files(cache: Path) -> set[str]:
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    full = root / "full"
    make_night(
        full, size=SIZE, lights_per_filter=5, n_bias=3, n_darks=3, n_flats=3, seed=21,
        cloudy=False, trailed=False,
    )  # fmt: skip
    for name in ("a", "b"):
        (root / name / "raw").mkdir(parents=True)
        for p in full.glob("*.fits"):
            if p.name != EXTRA:
                shutil.copy2(p, root / name / "raw" / p.name)
    a, b = root / "a", root / "b"
    res: dict = {"root": root}

    # 1. a first run, then the same night with one more Ha light
    t0 = time.perf_counter()
    res["log1"] = _run(a / "raw", a / "out", a / "cache")
    res["t1"] = time.perf_counter() - t0
    res["masters1"] = _masters(a / "out")
    res["cache1"] = _cache_files(a / "cache")
    shutil.copy2(full / EXTRA, a / "raw" / EXTRA)
    res["log2"] = _run(a / "raw", a / "out", a / "cache")
    res["masters2"] = _masters(a / "out")
    res["cache2"] = _cache_files(a / "cache")

    # 2. the first night again, killed once registration has started, then run again
    proc = subprocess.Popen(
        _cmd(b / "raw", b / "out", b / "cache"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("register"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stderr.close()
    res["killed_rc"] = proc.returncode
    res["killed_log"] = "".join(seen)
    res["after_kill"] = sorted(p for p in (b / "out").rglob("*") if p.is_file())
    res["log3"] = _run(b / "raw", b / "out", b / "cache")
    res["masters3"] = _masters(b / "out")
    return res


def test_adding_a_light_recomputes_only_that_light(runs):
    assert _todo(runs["log1"], "measure") == [4, 5]  # Ha without its fifth light
    # the re-run measures the new Ha light only; OIII has nothing to do (no line at all)
    assert _todo(runs["log2"], "measure") == [1], runs["log2"]
    new = runs["cache2"] - runs["cache1"]
    stems = {re.sub(r"_[0-9a-f]{16,20}(\..*)?$", "", os.path.basename(n)) for n in new}
    stems.discard("SYNTH-1_Ha_300s_0005")
    # other lights get no new calibrated/cosmetic/measured files (registration of the others
    # is kept too while the reference stays the same)
    assert not {s for s in stems if s.startswith("SYNTH-1_OIII")}, sorted(new)
    assert not any(s.startswith(("Bias", "Dark", "Flat")) for s in stems), sorted(new)


def test_adding_a_light_changes_its_master(runs):
    h1, h2 = runs["masters1"]["Ha"], runs["masters2"]["Ha"]
    assert not np.array_equal(h1, h2)
    hdr = fits.getheader(runs["root"] / "a" / "out" / "Ha.fits")
    assert int(hdr["NCOMBINE"]) == 5


def test_killed_run_leaves_no_partial_files_under_final_names(runs):
    assert runs["killed_rc"] == -signal.SIGKILL, runs["killed_log"]
    for p in runs["after_kill"]:
        if p.name.startswith("."):  # temp files of writes cut short: hidden, never final
            continue
        if p.suffix == ".fits":
            fits.getdata(p)  # a complete file
        assert p.stat().st_size > 0


def test_rerun_after_kill_reuses_finished_work_and_matches(runs):
    assert _todo(runs["killed_log"], "measure") == [4, 5]
    assert _todo(runs["log3"], "measure") == []  # every frame measured before the kill
    for g in ("Ha", "OIII"):
        np.testing.assert_allclose(runs["masters3"][g], runs["masters1"][g], rtol=0, atol=1e-6)
