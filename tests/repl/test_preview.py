"""show(image): an auto-stretched PNG preview, its path, a viewer when there is one;
whos(): the images in scope."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import pxlang
from pxlang.builtins.preview import viewer_command
from pxlang.image import io
from pxlang.repl import Session


def _sky(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # a dark linear sky: background 0.02, noise 0.002, one bright star
    img = (0.02 + 0.002 * rng.standard_normal((60, 80))).astype(np.float32)
    img[30, 40] = 0.9
    return img


def test_show_writes_a_stretched_png_and_returns_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PXLANG_PREVIEW_DIR", str(tmp_path / "previews"))
    monkeypatch.delenv("PXLANG_VIEWER", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    sky = _sky()
    path = pxlang.evaluate("show(Ha)", images={"Ha": sky})
    assert path == str(tmp_path / "previews" / "Ha.png")
    png = io.load(path).pixels
    assert png.shape == sky.shape
    # the STF auto-stretch puts the background median at 0.25 (8-bit: within 1/255)
    assert abs(float(np.median(png)) - 0.25) < 0.01
    assert png[30, 40] == png.max() > 0.95 and png.min() == 0.0
    # the image itself is unchanged
    assert abs(float(np.median(sky)) - 0.02) < 0.001


def test_show_in_a_script_prints_the_path_and_an_explicit_path_is_relative(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("PXLANG_VIEWER", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    script = tmp_path / "s.px"
    out = pxlang.evaluate('show(Ha * 2, path="look")', images={"Ha": _sky()}, path=str(script))
    assert out == str(tmp_path / "look.png") and os.path.isfile(out)
    assert f"preview: {out}" in capsys.readouterr().err


def test_show_opens_a_viewer_without_waiting(tmp_path, monkeypatch):
    marker = tmp_path / "opened.txt"
    # a "viewer" that records what it was asked to open, after a pause: show() must not wait
    monkeypatch.setenv(
        "PXLANG_VIEWER",
        f'{sys.executable} -c "import sys,time; time.sleep(1); '
        f"open(r'{marker}', 'w').write(sys.argv[1])\"",
    )
    monkeypatch.setenv("PXLANG_PREVIEW_DIR", str(tmp_path))
    s = Session()
    s.interp.globals.vars["OIII"] = _sky(4)
    t0 = time.perf_counter()
    path = s.run("show(OIII)")
    assert time.perf_counter() - t0 < 1.0
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == path == str(tmp_path / "OIII.png")


def test_no_viewer_on_a_headless_machine(monkeypatch):
    monkeypatch.delenv("PXLANG_VIEWER", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert viewer_command() is None
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    assert viewer_command() == ["xdg-open"]


def test_whos_lists_images_with_statistics():
    a = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.9]], np.float32)
    table = pxlang.evaluate("k = 2\nprint(whos())\nwhos()", images={"A": a, "C": np.stack([a] * 3)})
    lines = table.splitlines()
    assert len(lines) == 2  # k is not an image
    # median of a: 0.35; MAD: median(|a - 0.35|) = median(.25,.15,.05,.05,.15,.55) = 0.15
    assert lines[0].startswith("A ") and "3x2 mono float32" in lines[0]
    assert "median 0.35" in lines[0] and "MAD 0.15" in lines[0]
    assert lines[1].startswith("C ") and "3x2 RGB" in lines[1]
