"""Progress of the workflow stages: rich bars on a terminal, plain lines otherwise, nothing
with --quiet (warnings still shown)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from pxlang.run.progress import current_options, running, stage


def _work(options, label="calibrate", n=3):
    with stage(options, label, n) as advance:
        for _ in range(n):
            advance()


def test_plain_lines_when_not_a_terminal(capsys):
    _work({})
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "calibrate: 3 to do"
    assert err[-1].startswith("calibrate: 3/3 done in ") and err[-1].endswith(" s")


def test_quiet_and_empty_stages_print_nothing(capsys):
    _work({"quiet": True})
    _work({}, n=0)
    assert capsys.readouterr().err == ""


def test_code_without_a_call_context_follows_the_running_options(capsys):
    _work(current_options(), "files")  # no run in progress: a library call, silent
    assert capsys.readouterr().err == ""
    with running({"quiet": False}):
        _work(current_options(), "files")
    assert "files: 3 to do" in capsys.readouterr().err
    with running({"quiet": True}):
        _work(current_options(), "files")
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_count_and_eta(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    _work({}, "register", 4)
    text = term.getvalue()
    assert "register" in text and "4/4" in text and "eta" in text
    assert "to do" not in text  # a bar, not the plain lines


def test_bars_render_on_a_real_pty():
    """As under tmux or `script`: stderr is a pseudo-terminal; the bar is drawn there with
    ANSI sequences (and not on stdout)."""
    import pty  # POSIX only, as the CI

    master, slave = pty.openpty()
    code = (
        "from pxlang.run.progress import stage\n"
        "with stage({}, 'normalize', 5) as advance:\n"
        "    [advance() for _ in range(5)]\n"
    )
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=slave, stdout=subprocess.PIPE, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "normalize" in shown and "5/5" in shown and "\x1b[" in shown
    assert out == b""


def test_integration_reports_its_bands(capsys):
    """integrate() in a script: one 'integrate' stage, one step per band of rows (1 MB for
    two bands of 8 frames 2048 wide: 8 rows a band, 5 bands for 40 rows)."""
    import numpy as np

    from pxlang.api import evaluate

    rng = np.random.default_rng(3)
    frames = {f"f{i}": rng.normal(0.5, 0.01, (40, 2048)).astype(np.float32) for i in range(8)}
    names = ", ".join(frames)
    evaluate(f"m = integrate([{names}], memory=1)", frames, options={})
    err = capsys.readouterr().err.splitlines()
    assert "integrate: 5 to do" in err
    assert any(line.startswith("integrate: 5/5 done in ") for line in err)
