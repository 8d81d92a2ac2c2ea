"""The REPL driven through prompt_toolkit's pipe input, as a person would type."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from pxlang.repl import Session, run_repl
from pxlang.run.repl.loop import history_path


class _Capture(DummyOutput):
    """Keeps what the REPL writes (the screen's text; escape sequences are dropped)."""

    def __init__(self):
        super().__init__()
        self.text = ""

    def write(self, data: str) -> None:
        self.text += data


def drive(keys: str, session: Session | None = None, history: str | None = None) -> str:
    """Type ``keys`` at once (the REPL reads them as fast as a paste)."""
    with create_pipe_input() as inp:
        inp.send_text(keys)
        out = _Capture()
        assert run_repl(input=inp, output=out, session=session, history=history) == 0
    return out.text


def drive_slowly(
    chunks: list[str], pause: float = 0.4, wait_for: dict[int, str] | None = None, **kw
) -> str:
    """Type ``chunks`` one after another with pauses, so the screen is drawn in between;
    ``wait_for[k]``: text the screen must show before chunk k is typed (up to 20 s: on a
    loaded machine a fixed pause can come before the redraw)."""
    out = _Capture()
    with create_pipe_input() as inp:

        def typist() -> None:
            for k, c in enumerate(chunks):
                time.sleep(pause)
                deadline = time.monotonic() + 20
                while (wait_for or {}).get(k, "") not in out.text:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                inp.send_text(c)

        threading.Thread(target=typist, daemon=True).start()
        assert run_repl(input=inp, output=out, **kw) == 0
    return out.text


def printed(text: str) -> list[str]:
    """The REPL's own output lines (the echo of the input and the screen redraws left out)."""
    return [ln.strip() for ln in text.replace("\r", "\n").split("\n") if ln.strip()]


def test_values_persist_and_blocks_continue_over_lines():
    text = drive("x = 2\nx * 21\ndef f(a) {\n  a + 1\n}\nf(x)\n\x04")
    assert "42" in printed(text) and "3" in printed(text)


def test_unbalanced_brackets_continue_on_the_next_line():
    s = Session()
    text = drive("x = max(1,\n7,\n2)\nx\nl = [1,\n2]\nl\n\x04", session=s)
    assert "7" in printed(text) and "[1, 2]" in printed(text)
    assert s.value("x") == 7.0


def test_a_syntax_error_keeps_the_input_and_enter_again_shows_the_caret():
    s = Session()
    # first Enter: the validator refuses (the input stays); second Enter runs it anyway
    text = drive("y = (0.4*x)_(0.6*x)\n\nz = 1 + 1\nz\n\x04", session=s)
    assert "<repl>:1:12: error: unexpected '_'" in text
    lines = text.split("\n")
    i = next(k for k, ln in enumerate(lines) if "error: unexpected '_'" in ln)
    assert lines[i + 2].strip() == "^" and lines[i + 2].index("^") == lines[i + 1].index("_")
    assert "hint:" in lines[i + 3]
    assert s.value("z") == 2.0  # the prompt came back and the next input ran
    assert "y" not in s.names()


def test_check_errors_show_caret_and_hint_then_the_prompt_returns():
    s = Session()
    text = drive("OIII = 0.5\nOIll * 2\nOIII * 4\n\x04", session=s)
    assert "error:" in text and "did you mean 'OIII'" in text and "  ^~~~\n" in text
    assert "2" in printed(text)


def test_runtime_error_is_reported_and_the_session_survives():
    s = Session()
    text = drive('a = 1\nload("no/such/file.fits")\na + 1\n\x04', session=s)
    assert "no/such/file.fits" in text and "error" in text
    assert "2" in printed(text)


def test_ctrl_c_at_the_prompt_drops_the_input():
    s = Session()
    text = drive("q = (1 +\n\x03r = 5\nr\n\x04", session=s)
    assert "q" not in s.names() and "5" in printed(text)


_CTRL_C_SCRIPT = r"""
import signal, sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_repl import drive, printed
from pxlang.image.store import Image
from pxlang.repl import Session

s = Session()
s.interp.globals.vars["big"] = Image(np.random.default_rng(1).random((900, 900), dtype=np.float32))
# 300 chained median filters in ONE input: far more than a few seconds of work
loop = "y = big; for i in [" + ", ".join(["1"] * 300) + "] { y = medfilt(y, 5) }\n"
main = threading.main_thread().ident

def interrupter():
    deadline = time.monotonic() + 20
    while not s.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    # what Ctrl-C in a terminal sends; again while the evaluation has not stopped (a signal
    # that lands inside one long C call is seen only when it returns)
    while s.busy and time.monotonic() < deadline:
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(0.5)

t0 = time.perf_counter()
threading.Thread(target=interrupter, daemon=True).start()
text = drive(loop + "n = 6 * 7\nn\n\x04", session=s)
print("ELAPSED", time.perf_counter() - t0)
print("CANCELLED", "cancelled" in printed(text))
print("N", s.value("n"), "42" in printed(text))
print("DEPTH", s.interp.depth)
"""


def test_ctrl_c_cancels_a_slow_evaluation_and_the_prompt_returns():
    # in its own process: signals and threads of other tests cannot interfere
    import subprocess
    import sys
    from pathlib import Path

    r = subprocess.run(
        [sys.executable, "-c", _CTRL_C_SCRIPT, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    assert out["CANCELLED"] == "True", r.stdout
    assert out["N"] == "42.0 True", r.stdout
    assert float(out["ELAPSED"]) < 6, f"the evaluation was not cancelled ({out['ELAPSED']} s)"
    assert out["DEPTH"] == "0"


def test_history_persists_and_ctrl_r_finds_an_old_input(tmp_path):
    h = str(tmp_path / "history")
    drive("6*7\n1+1\n\x04", history=h)
    assert "+6*7" in (tmp_path / "history").read_text()
    # a new session: Ctrl-R, type "6*", Enter ends the search, Enter runs the found line
    text = drive_slowly(["\x12", "6*", "\r", "\r", "\x04"], history=h)
    assert "42" in printed(text)
    # Up recalls the last line (6*7 again, run by the search)
    text = drive("\x1b[A\n\x04", history=h)
    assert "42" in printed(text)


def test_history_file_lives_in_the_override_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PXLANG_HISTORY_DIR", str(tmp_path / "h"))
    assert history_path() == str(tmp_path / "h" / "history")
    assert (tmp_path / "h").is_dir()
    monkeypatch.delenv("PXLANG_HISTORY_DIR")
    from platformdirs import user_data_dir

    monkeypatch.setattr("platformdirs.user_data_dir", lambda app: str(tmp_path / "u" / app))
    assert history_path() == str(tmp_path / "u" / "pxlang" / "history")
    assert user_data_dir  # the real one exists


def test_signature_help_is_drawn_while_typing_a_call():
    text = drive_slowly(["gconv(1, ", "\x03", "\x04"], wait_for={1: "Gaussian convolution"})
    assert "gconv(img, sigma=2, rho=1" in text and "Gaussian convolution" in text
    # and the keys reminder when not in a call
    assert "Ctrl-R searches history" in text


def test_help_and_images_commands():
    s = Session()
    assert "mtf(m, x)" in s.run("help(mtf)")
    s.interp.globals.vars["Ha"] = np.full((4, 5), 0.25, np.float32)
    assert "Ha" in s.run(":images") and "5x4 mono" in s.run(":images")
    assert "median 0.25  MAD 0" in s.run(":images")
    assert "s)" in s.run(":time max(Ha)")
    s.run("def hoo(ha, o3, k=0.5) = ha*k + o3*~k")
    assert s.run("help(hoo)").startswith("hoo(ha, o3, k=0.5)")
    assert ":images" in s.run("help()")


def test_undefined_name_hint_uses_session_names():
    s = Session()
    s.run("OIII = 0.5")
    with pytest.raises(Exception) as e:
        s.run("OIll * 2")
    assert "'OIII'" in e.value.hint


def test_help_and_commands_through_the_loop():
    text = drive("help(gconv)\n:help\n:nope\n\x04")
    assert "gconv(img, sigma=2" in text and ":images" in text
    assert "unknown command ':nope'" in text


def test_the_loop_survives_an_unexpected_python_exception(monkeypatch):
    s = Session()
    real_run = Session.run

    def flaky(self, text):
        if "boom" in text:
            raise ZeroDivisionError("deep inside a process")
        return real_run(self, text)

    monkeypatch.setattr(Session, "run", flaky)
    text = drive("boom = 1\nv = 5\nv\n\x04", session=s)
    assert "internal error: ZeroDivisionError: deep inside a process" in text
    assert s.value("v") == 5.0 and "5" in printed(text)


def test_without_a_terminal_inputs_run_line_by_line(tmp_path):
    # `echo … | pxlang repl`: no prompt_toolkit screen in the pipe, each input run when
    # complete (blocks and open brackets wait), errors shown, the exit status says so
    import os
    import subprocess
    import sys

    def repl(text: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pxlang", "repl"],
            input=text,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PXLANG_HISTORY_DIR": str(tmp_path)},
        )

    r = repl("x = 1 + 2\nif x > 2 {\n    y = x * 10\n}\nz = (y +\n 1)\nz\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "30", "31", "31"]
    assert "\x1b" not in r.stdout + r.stderr and "not a terminal" not in r.stdout + r.stderr
    r = repl("a = 2\nb = nope + a\na * 2\n")
    assert r.returncode == 1
    assert "unknown name 'nope'" in r.stdout and r.stdout.split()[-1] == "4"
    r = repl("a = (1 +\n")
    assert r.returncode == 1 and "'(' is never closed" in r.stdout
