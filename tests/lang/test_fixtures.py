"""Golden fixtures: each tests/lang/fixtures/*.px starts with '# expect: VALUE' (the value of
its last statement) or '# error: LINE:COL: message' (the first diagnostic). Header lines are
counted: line numbers refer to the script below the header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pxlang
from pxlang.lang.errors import PxCheckErrors, PxError

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.px"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture(path):
    header, _, body = path.read_text(encoding="utf-8").partition("\n")
    kind, _, want = header.removeprefix("# ").partition(": ")
    if kind == "expect":
        got = pxlang.evaluate(body)
        expected = json.loads(want)
        if isinstance(expected, list):
            assert [round(float(v), 6) for v in got] == expected
        else:
            assert got == pytest.approx(expected)
    else:
        assert kind == "error", header
        with pytest.raises(PxError) as exc:
            pxlang.evaluate(body, path=path.name)
        err = exc.value.errors[0] if isinstance(exc.value, PxCheckErrors) else exc.value
        where, _, message = want.partition(": ")
        line, col = map(int, where.split(":"))
        assert (err.line, err.column, err.message) == (line, col, message)
