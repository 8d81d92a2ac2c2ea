"""The command line as a user meets it: exit codes, output, error format, no tracebacks."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits


def pxlang(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pxlang.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def night(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    ha = (rng.random((20, 30)) * 60000).astype(np.uint16)
    o3 = rng.random((20, 30)).astype(np.float32)
    fits.PrimaryHDU(ha).writeto(tmp_path / "Ha.fits")
    fits.PrimaryHDU(o3).writeto(tmp_path / "OIII.fits")
    np.save(tmp_path / "ha.npy", ha.astype(np.float64) / 65535)
    np.save(tmp_path / "o3.npy", o3)
    return tmp_path


def sha(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_eval_per_channel_bicolour_writes_rgb_with_provenance(night):
    before = sha(night / "Ha.fits"), sha(night / "OIII.fits")
    r = pxlang(
        "eval",
        "Ha",
        "--g",
        "(Ha*0.5)+(OIII*~0.5)",
        "--b",
        "OIII",
        "Ha.fits",
        "OIII.fits",
        "-o",
        "bicolour.fits",
        cwd=night,
    )
    assert r.returncode == 0, r.stderr
    assert "wrote bicolour.fits (30x20 RGB)" in r.stdout
    d = fits.getdata(night / "bicolour.fits").astype(np.float64)
    ha, o3 = np.load(night / "ha.npy"), np.load(night / "o3.npy")
    np.testing.assert_allclose(d, np.stack([ha, 0.5 * ha + 0.5 * o3, o3]), atol=1e-6)
    h = fits.getheader(night / "bicolour.fits")
    assert h["PXVERSN"] and any("(Ha*0.5)+(OIII*~0.5)" in str(x) for x in h["HISTORY"])
    assert (sha(night / "Ha.fits"), sha(night / "OIII.fits")) == before


def test_eval_inline_channel_form(night):
    r = pxlang(
        "eval",
        "R=Ha; G=(Ha*0.5)+(OIII*~0.5); B=OIII",
        "Ha.fits",
        "OIII.fits",
        "-o",
        "c.fits",
        cwd=night,
    )
    assert r.returncode == 0, r.stderr
    assert fits.getdata(night / "c.fits").shape == (3, 20, 30)


def test_eval_scalar_and_image_statistics(night):
    r = pxlang("eval", "2^3^2", "--no-truncate", cwd=night)
    assert r.returncode == 0 and r.stdout.strip() == "64"
    r = pxlang("eval", "2^3^2", cwd=night)
    assert r.stdout.strip() == "1"  # truncated to [0, 1] by default
    r = pxlang("eval", "mean(A) > 0", "--image", "A=OIII.fits", cwd=night)
    assert r.returncode == 0 and r.stdout.strip() == "1"
    r = pxlang("eval", "mean(OIII)", "OIII.fits", cwd=night)  # a constant image: its value
    assert r.returncode == 0
    assert abs(float(r.stdout) - np.load(night / "o3.npy").mean()) < 1e-6
    r = pxlang("eval", "OIII*0.5", "OIII.fits", cwd=night)
    assert r.returncode == 0 and r.stdout.startswith("image 30x20 mono") and "median" in r.stdout


def test_eval_globals_are_printed(night):
    r = pxlang("eval", "s += OIII; OIII", "OIII.fits", "--symbols", "s = global(+)", cwd=night)
    o3 = np.load(night / "o3.npy")
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("s = ")][0]
    assert abs(float(line.split("=")[1]) - o3.sum()) < 1e-3


@pytest.mark.parametrize(
    "args, needle",
    [
        (["Ha", "missing.fits", "-o", "m.fits"], "missing.fits"),
        (["Ha+", "Ha.fits", "-o", "p.fits"], "<expr>:1:"),
        (["Hx", "Ha.fits", "-o", "h.fits"], "did you mean 'Ha'"),
        (["Ha", "corrupt.fits", "-o", "c.fits"], "corrupt.fits"),
        (["2*3", "Ha.fits", "-o", "s.fits"], "not an image"),
    ],
)
def test_eval_errors_exit_1_without_traceback_or_output(night, args, needle):
    (night / "corrupt.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    r = pxlang("eval", *args, cwd=night)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert needle in r.stderr
    assert not (night / args[-1]).exists()


def test_usage_errors_exit_2(night):
    assert pxlang("eval", cwd=night).returncode == 2
    assert pxlang("eval", "Ha", "--g", "Ha", cwd=night).returncode == 2
    assert pxlang("nosuchcommand", cwd=night).returncode == 2
    assert pxlang("run", "x.px", "notaparam", cwd=night).returncode == 2


def test_a_closed_output_pipe_is_no_internal_error(night):
    # `pxlang eval … | head -0`: the reader is gone before pxlang prints
    proc = subprocess.Popen(
        [sys.executable, "-m", "pxlang.cli", "eval", "1 + 1"],
        cwd=night,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert err == ""


def test_version_and_help(night):
    r = pxlang("--version", cwd=night)
    assert r.returncode == 0 and r.stdout.startswith("pxlang ")
    r = pxlang("help", "mtf", cwd=night)
    assert r.returncode == 0 and "mtf(m, x)" in r.stdout and "example:" in r.stdout
    r = pxlang("help", "mtff", cwd=night)
    assert r.returncode == 2 and "did you mean 'mtf'" in r.stderr
    r = pxlang("help", cwd=night)
    assert r.returncode == 0 and "PixelMath functions" in r.stdout
    # `python -m pxlang`: the same command, for a venv whose scripts are not on PATH
    r = subprocess.run(
        [sys.executable, "-m", "pxlang", "help", "mtf"], cwd=night, capture_output=True, text=True
    )
    assert r.returncode == 0 and "mtf(m, x)" in r.stdout and "usage" not in r.stderr


def test_help_and_check_know_the_stdlib_workflows(night):
    r = pxlang("help", "preprocess", cwd=night)
    assert r.returncode == 0, r.stderr
    assert "workflow preprocess" in r.stdout and "IMAGETYP" in r.stdout  # its opening comment
    assert "    input\n" in r.stdout and 'approve = "FWHM < 6' in r.stdout  # its parameters
    r = pxlang("help", "combine", cwd=night)  # both a built-in and a workflow: both shown
    assert r.returncode == 0 and "combine(" in r.stdout and "workflow combine" in r.stdout
    assert 'palette = "auto"' in r.stdout
    r = pxlang("help", cwd=night)
    assert "Workflows" in r.stdout and "preprocess" in r.stdout.split("Workflows")[1]
    r = pxlang("help", "preprocss", cwd=night)
    assert r.returncode == 2 and "did you mean the workflow 'preprocess'" in r.stderr
    r = pxlang("run", "preproces", "input=.", "output=o", cwd=night)
    assert r.returncode == 2 and "did you mean the workflow 'preprocess'" in r.stderr
    r = pxlang("check", "preprocess", "combine", cwd=night)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": ok") == 2


def test_combine_palette_names_as_users_type_them(night):
    rng = np.random.default_rng(5)
    for name in ("Ha", "OIII"):  # linear masters: dark sky, a little noise, a bright patch
        sky = 0.02 + 0.002 * rng.standard_normal((40, 50))
        sky[15:25, 20:30] += 0.3
        fits.PrimaryHDU(sky.astype(np.float32)).writeto(night / f"{name}.fits", overwrite=True)
    r = pxlang("run", "combine", "input=.", "palette=hoo", cwd=night)
    assert r.returncode == 0, r.stderr
    assert fits.getdata(night / "colour_HOO.fits").shape == (3, 40, 50)
    r = pxlang("run", "combine", "input=.", "palette=XYZ", cwd=night)
    assert r.returncode == 1 and "unknown palette XYZ" in r.stderr, r.stderr
    # a palette whose masters are not all there: named up front, with what is missing
    r = pxlang("run", "combine", "input=.", "palette=sho", cwd=night)
    assert r.returncode == 1 and "palette SHO needs SII.fits in ." in r.stderr, r.stderr
    (night / "OIII.fits").unlink()  # auto finds no palette for Ha alone: an error, not exit 0
    r = pxlang("run", "combine", "input=.", cwd=night)
    assert r.returncode == 1 and "no palette for the masters" in r.stderr, r.stderr
    r = pxlang("run", "combine", "input=nowhere", cwd=night)
    assert r.returncode == 1 and "no such input folder: nowhere" in r.stderr, r.stderr


def test_check_reports_file_line_col_caret_and_hint(night):
    (night / "ok.px").write_text("x = 0.5\ny = x * 2\n")
    (night / "bad.px").write_text("x = 0.5\ny = (0.4*Ha)_(0.6*OIII)\n")
    (night / "typo.px").write_text("OIII = 0.5\nz = OIll * 2\nw = mtf(0.5)\n")
    assert pxlang("check", "ok.px", cwd=night).returncode == 0
    r = pxlang("check", "bad.px", cwd=night)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "bad.px:2:13: error: unexpected '_'"
    assert lines[2].strip() == "^" and "did you mean '+'" in lines[3]
    r = pxlang("check", "typo.px", cwd=night)
    assert r.returncode == 1
    assert "typo.px:2:5: error: unknown name 'OIll'" in r.stderr and "'OIII'" in r.stderr
    assert "typo.px:3:5: error: mtf() needs at least 2 arguments" in r.stderr  # all reported


def test_run_script_with_params(night):
    (night / "s.px").write_text(
        'param k = 0.5\nparam out = "o.fits"\nsave(load("OIII.fits") * k, out)\n'
    )
    r = pxlang("run", "s.px", "k=0.25", "out=q.fits", cwd=night)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(
        fits.getdata(night / "q.fits"), np.load(night / "o3.npy") * 0.25, rtol=1e-6
    )
    # parameters after options too (argparse alone refuses them there)
    r = pxlang("run", "s.px", "--quiet", "k=0.5", "--cache", "c", "out=h.fits", cwd=night)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(
        fits.getdata(night / "h.fits"), np.load(night / "o3.npy") * 0.5, rtol=1e-6
    )
    r = pxlang("run", "s.px", "--quiet", "stray", cwd=night)
    assert r.returncode == 2 and "unrecognized arguments: stray" in r.stderr
    # the script called wrongly is bad usage too (exit 2, as the README says), not bad data
    r = pxlang("run", "s.px", "kk=1", cwd=night)
    assert r.returncode == 2 and "no parameter 'kk'" in r.stderr and "'k'" in r.stderr
    r = pxlang("run", "nosuch.px", cwd=night)
    assert r.returncode == 2 and "nosuch.px" in r.stderr and "Traceback" not in r.stderr
    r = pxlang("run", "preprocess", cwd=night)
    assert r.returncode == 2 and "parameter 'input' has no default" in r.stderr
    r = pxlang("help", "integrat", cwd=night)
    assert r.returncode == 2 and "did you mean 'integrate'" in r.stderr
    r = pxlang("run", cwd=night)
    assert r.returncode == 2 and "required: script\n" in r.stderr  # parameters are optional
