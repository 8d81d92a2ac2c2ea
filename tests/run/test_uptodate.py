"""An unchanged re-run is skipped, as make does (run/uptodate.py): only when nothing the run
read, listed or wrote has changed; anything else runs the script again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pxlang.api import run_workflow

SCRIPT = """
param input
param output
param k = 2
frames = files(input)
print("frames:", count(frames))
img = load(path(input, "a.fits")) * k
if exists(path(input, "extra.txt")) {
    img = img * 0.5
}
save(img, output)
"""


def _frame(path: Path, value: float) -> None:
    hdr = fits.Header({"IMAGETYP": "Light"})
    fits.writeto(path, np.full((8, 10), value, np.float32), hdr, overwrite=True)


@pytest.fixture
def night(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _frame(raw / "a.fits", 0.1)
    _frame(raw / "b.fits", 0.2)
    script = tmp_path / "double.px"
    script.write_text(SCRIPT, encoding="utf-8")
    return tmp_path


def _run(night: Path, force: bool = False, **params: str) -> bool:
    p = {"input": str(night / "raw"), "output": str(night / "out.fits"), **params}
    script = night / "double.px"
    return run_workflow(
        script.read_text(encoding="utf-8"),
        params=p,
        path=str(script),
        options={"cache_dir": str(night / "cache")},
        force=force,
    )


def _value(night: Path) -> float:
    return float(fits.getdata(night / "out.fits")[0, 0])


def test_second_run_is_skipped_and_says_what_the_first_said(night, capsys):
    assert _run(night) is True
    first = capsys.readouterr().err
    mtime = (night / "out.fits").stat().st_mtime_ns
    assert _run(night) is False
    again = capsys.readouterr().err
    assert "frames: 2" in first and "frames: 2" in again
    assert "up to date" in again and "up to date" not in first
    assert (night / "out.fits").stat().st_mtime_ns == mtime  # not written again
    assert _value(night) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "change",
    ["input touched", "input rewritten", "file added", "output deleted", "output changed",
     "exists() changes", "parameter", "script text"],
)  # fmt: skip
def test_any_change_runs_again(night, change):
    assert _run(night) is True
    params = {}
    expect = 0.2
    if change == "input touched":
        st = (night / "raw" / "a.fits").stat()
        os.utime(night / "raw" / "a.fits", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    elif change == "input rewritten":
        _frame(night / "raw" / "a.fits", 0.3)
        expect = 0.6
    elif change == "file added":
        _frame(night / "raw" / "c.fits", 0.3)
    elif change == "output deleted":
        (night / "out.fits").unlink()
    elif change == "output changed":
        _frame(night / "out.fits", 0.9)
    elif change == "exists() changes":
        (night / "raw" / "extra.txt").write_text("x")
        expect = 0.1
    elif change == "parameter":
        params["k"] = "3"
        expect = 0.3
    elif change == "script text":
        script = night / "double.px"
        script.write_text(SCRIPT.replace("* k\n", "* k * 2\n"), encoding="utf-8")
        expect = 0.4
    assert _run(night, **params) is True
    assert _value(night) == pytest.approx(expect, rel=1e-6)
    assert _run(night, **params) is False  # and the run after that has nothing to do


def test_force_runs_anyway(night):
    assert _run(night) is True
    assert _run(night, force=True) is True


def test_a_failed_run_is_not_recorded(night):
    from pxlang.lang.errors import PxError

    (night / "raw" / "a.fits").rename(night / "raw" / "z.fits")
    with pytest.raises(PxError):
        _run(night)
    with pytest.raises(PxError):  # not skipped: it fails again, naming the file
        _run(night)


def test_a_module_next_to_the_script_shadowing_the_stdlib_runs_again(night):
    script = night / "double.px"
    script.write_text("import palettes\n" + SCRIPT, encoding="utf-8")
    assert _run(night) is True
    assert _run(night) is False
    (night / "palettes.px").write_text("def hoo2(a, b) = a\n", encoding="utf-8")
    assert _run(night) is True


def test_random_numbers_without_a_seed_are_never_skipped(night):
    a, out = night / "raw" / "a.fits", night / "noise.fits"
    text = f'img = load("{a}")\nsave(img * 0 + random(), "{out}")\n'

    def run(seed):
        options = {"cache_dir": str(night / "c"), "seed": seed}
        return run_workflow(text, path=str(night / "n.px"), options=options)

    assert run(None) is True
    assert run(None) is True
    assert run(7) is True
    assert run(7) is False


def test_the_same_params_from_another_folder_run_there(night, tmp_path_factory):
    """Relative paths start elsewhere: another run, even with the same cache folder."""
    other = tmp_path_factory.mktemp("other")
    (other / "raw").mkdir()
    _frame(other / "raw" / "a.fits", 0.25)
    script = night / "double.px"

    def run(base):
        return run_workflow(
            script.read_text(encoding="utf-8"),
            params={"input": "raw", "output": "out.fits"},
            path=str(script),
            options={"cache_dir": str(night / "cache"), "base_dir": str(base)},
        )

    assert run(night) is True
    assert run(other) is True
    assert run(other) is False
    assert float(fits.getdata(other / "out.fits")[0, 0]) == pytest.approx(0.5)


def test_pxlang_run_twice_from_the_command_line(night):
    cmd = [
        sys.executable, "-m", "pxlang.cli", "run", str(night / "double.px"),
        f"input={night / 'raw'}", f"output={night / 'out.fits'}", "--cache", str(night / "c"),
    ]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "up to date" in second.stderr and "frames: 2" in second.stderr
    quiet = subprocess.run(cmd + ["--quiet"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == ""
    forced = subprocess.run(cmd + ["--force"], capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0 and "up to date" not in forced.stderr


def test_warnings_are_shown_again_when_skipped(night, capsys):
    (night / "raw" / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    assert _run(night) is True
    first = capsys.readouterr().err
    assert _run(night) is False
    again = capsys.readouterr().err
    assert "broken.fits" in first
    assert "broken.fits" in again and "up to date" in again


def test_a_run_removes_the_temporary_files_a_killed_run_left(night):
    # a run killed (SIGKILL) while writing leaves *.tmp files in the cache; the next run
    # removes those no one has written to for an hour, never a live run's
    frames = night / "cache" / "frames"
    frames.mkdir(parents=True)
    old = [frames / "a_1234.rejection.npy.4321.tmp", frames / ".b_5678.fits.9f8e.tmp"]
    fresh = frames / "c_1234.rejection.npy.4322.tmp"
    kept = frames / "d_1234.fits"  # a finished file, however old
    for p in [*old, fresh, kept]:
        p.write_bytes(b"x")
    hour_ago = os.path.getmtime(fresh) - 3700
    for p in [*old, kept]:
        os.utime(p, (hour_ago, hour_ago))
    assert _run(night)
    assert not any(p.exists() for p in old)
    assert fresh.exists() and kept.exists()
