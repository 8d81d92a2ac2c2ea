"""Once through a real terminal, as a person would use it: `pxlang repl` in tmux, keys sent
with send-keys, the screen read with capture-pane. Skips only when tmux is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, tmp: Path):
        self.sock = f"pxtest-{os.getpid()}"
        self.tmp = tmp

    def tmux(self, *args: str) -> str:
        res = subprocess.run(
            ["tmux", "-L", self.sock, *args], capture_output=True, text=True, timeout=20
        )
        return res.stdout

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "px", "-x", "110", "-y", "40", command)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "px", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "px", "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "px", "-S", "-200")

    def wait_for(self, what: str, timeout: float = 20, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if screen.count(what) >= count:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{what!r} never appeared; the screen:\n{self.screen()}")

    def close(self) -> None:
        self.tmux("kill-server")


def test_a_session_in_a_real_terminal(tmp_path):
    from pxlang.image import io

    rng = np.random.default_rng(2)
    io.save(rng.random((900, 900), dtype=np.float32), str(tmp_path / "big.fits"))
    env = (
        f"PXLANG_HISTORY_DIR={tmp_path / 'hist'} PYTHONPATH={ROOT} "
        f"PXLANG_PREVIEW_DIR={tmp_path / 'previews'} DISPLAY= PXLANG_VIEWER="
    )
    term = Terminal(tmp_path)
    term.start(f"cd {tmp_path} && env {env} {sys.executable} -m pxlang.cli repl; sleep 30")
    try:
        term.wait_for("px>")
        term.type("x = 6*7")
        term.keys("Enter")
        term.type("x")
        term.keys("Enter")
        term.wait_for("\n42")

        # signature help while typing a call, then Ctrl-C drops the input
        term.type("gconv(x, ")
        term.wait_for("gconv(img, sigma=2, rho=1, theta=0, eps=0.01)")
        term.keys("C-c")

        # Tab completes a built-in
        term.type("integ")
        term.keys("Tab")
        term.wait_for("px> integrate")
        term.keys("C-c")

        # a block over several lines
        term.type("def f(a) {")
        term.keys("Enter")
        term.type("a + 1")
        term.keys("Enter")
        term.type("}")
        term.keys("Enter")
        term.type("f(x)")
        term.keys("Enter")
        term.wait_for("\n43")

        # an error with its caret and hint, then the prompt again
        term.type("y = xx + 1")
        term.keys("Enter")
        screen = term.wait_for("hint: did you mean 'x'?")
        assert "      ^~" in screen

        # Ctrl-C during a slow evaluation cancels it and the session goes on
        term.type('b = load("big.fits")')
        term.keys("Enter")
        term.type("for i in [" + ", ".join(["1"] * 60) + "] { b = medfilt(b, 5) }")
        term.keys("Enter")
        time.sleep(1.0)
        term.keys("C-c")
        term.wait_for("cancelled", timeout=10)
        term.type("x + 1")
        term.keys("Enter")
        term.wait_for("\n43", count=2)

        # a preview
        term.type("show(b)")
        term.keys("Enter")
        term.wait_for("b.png'")
        assert (tmp_path / "previews" / "b.png").is_file()

        term.keys("C-d")
        deadline = time.monotonic() + 10
        history = tmp_path / "hist" / "history"
        while time.monotonic() < deadline and "show(b)" not in (
            history.read_text() if history.exists() else ""
        ):
            time.sleep(0.1)
        assert "+x = 6*7" in history.read_text() and "+show(b)" in history.read_text()
    finally:
        term.close()
