"""The REPL driven through prompt_toolkit's pipe input, as a person would type."""

from __future__ import annotations

import numpy as np
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from pxlang.repl import Session, run_repl


class _Capture(DummyOutput):
    def __init__(self):
        super().__init__()
        self.text = ""

    def write(self, data: str) -> None:
        self.text += data


def drive(keys: str) -> str:
    with create_pipe_input() as inp:
        inp.send_text(keys)
        out = _Capture()
        assert run_repl(input=inp, output=out) == 0
    return out.text


def test_values_persist_and_blocks_continue_over_lines():
    text = drive("x = 2\nx * 21\ndef f(a) {\n  a + 1\n}\nf(x)\n\x04")
    assert "42" in text and "\n3" in text


def test_errors_show_caret_and_the_prompt_returns():
    text = drive("y = (0.4*x)_(0.6*x)\nz = 1 + 1\nz\n\x04")
    assert "<repl>:1:12: error: unexpected '_'" in text and "^" in text
    assert "2" in text.splitlines()[-1] or "\n2" in text


def test_help_and_images_commands():
    s = Session()
    assert "mtf(m, x)" in s.run("help(mtf)")
    s.interp.globals.vars["Ha"] = np.full((4, 5), 0.25, np.float32)
    assert "Ha" in s.run(":images") and "5x4 mono" in s.run(":images")
    assert "s)" in s.run(":time max(Ha)")


def test_undefined_name_hint_uses_session_names():
    s = Session()
    s.run("OIII = 0.5")
    try:
        s.run("OIll * 2")
    except Exception as e:  # noqa: BLE001
        assert "'OIII'" in e.hint
    else:
        raise AssertionError("no error")
