"""The checker finds names, arity and keyword mistakes before anything runs, all at once."""

from __future__ import annotations

import pytest

import pxlang
from pxlang.lang.errors import PxCheckErrors


def diagnostics(text: str, images=()):
    with pytest.raises(PxCheckErrors) as exc:
        pxlang.check(text, names=list(images))
    return exc.value.errors


def test_undefined_name_did_you_mean_lookalike():
    (err,) = diagnostics("OIII = 0.5\nz = OIll * 2\n")
    assert err.message == "unknown name 'OIll'"
    assert "'OIII'" in err.hint
    assert (err.line, err.column) == (2, 5)


def test_undefined_name_case_hint():
    (err,) = diagnostics("ha = 1\ny = Ha + 1\n")
    assert "case-sensitive" in err.hint and "'ha'" in err.hint


def test_unknown_function_did_you_mean():
    (err,) = diagnostics("x = medfilr(1)\n")
    assert err.message == "unknown function 'medfilr'" and "'medfilt'" in err.hint


def test_arity_and_keywords():
    errs = diagnostics("x = mtf(0.5)\ny = gconv(1, sigma=2, sigmaa=3)\nz = iif(1, 2)\n")
    msgs = [e.message for e in errs]
    assert any("mtf() needs at least 2 arguments" in m for m in msgs)
    assert any("gconv() has no keyword 'sigmaa'" in m for m in msgs)
    assert any("iif() takes 3 arguments" in m for m in msgs)
    kw = next(e for e in errs if "sigmaa" in e.message)
    assert "'sigma'" in (kw.hint or "")


def test_equals_used_for_comparison_in_a_call():
    from pxlang.lang.errors import PxSyntaxError

    with pytest.raises(PxSyntaxError) as exc:
        pxlang.check("Ha = 0.3\nx = iif(Ha = 0.5, 1, 0)\n")
    assert "keyword argument 'Ha'" in exc.value.message and "'=='" in exc.value.hint
    assert (exc.value.line, exc.value.column) == (2, 9)
    err = diagnostics("Ha = 0.3\nx = max(Ha = 0.5)\n")[0]
    assert "no keyword 'Ha'" in err.message and "'=='" in err.hint


def test_all_errors_reported_together_and_capped_rendering():
    text = "\n".join(f"x{i} = y{i}" for i in range(30))
    errs = diagnostics(text)
    assert len(errs) == 30
    rendered = PxCheckErrors(errs).render()
    assert "… and 10 more" in rendered


def test_user_function_arity_and_keywords():
    errs = diagnostics("def f(a, b=1) = a*b\nx = f()\ny = f(1, 2, 3)\nz = f(1, c=2)\n")
    msgs = [e.message for e in errs]
    assert "f() needs 'a'" in msgs
    assert "f() takes at most 2 arguments, got 3" in msgs
    assert "f() has no parameter 'c'" in msgs


def test_function_bodies_see_later_module_names():
    pxlang.check("def f(a) = a * k\nk = 2\nx = f(1)\n")


def test_use_before_assignment_is_an_error():
    (err,) = diagnostics("y = q + 1\nq = 2\n")
    assert err.message == "unknown name 'q'"


def test_calling_a_variable_and_using_a_function_as_value():
    errs = diagnostics("v = 1\nx = v(2)\ny = gconv\n")
    msgs = [e.message for e in errs]
    assert "'v' is a variable, not a function" in msgs
    assert "'gconv' is a function: call it with ( )" in msgs


def test_unknown_module():
    (err,) = diagnostics("import nosuchmodule\n")
    assert "no module named 'nosuchmodule'" in err.message


def test_pixelmath_symbols_checks():
    import numpy as np

    ha = np.zeros((2, 2), np.float32)
    with pytest.raises(PxCheckErrors) as exc:
        pxlang.pixelmath("a = Ha; a", images={"Ha": ha})
    assert "not declared in Symbols" in exc.value.message
    with pytest.raises(PxCheckErrors) as exc:
        pxlang.pixelmath("s = Ha; Ha", images={"Ha": ha}, symbols="s = global(+)")
    assert "global(+) accumulator" in exc.value.message and "+=" in exc.value.hint
    with pytest.raises(PxCheckErrors) as exc:
        pxlang.pixelmath("k = 1; Ha", images={"Ha": ha}, symbols="k = 0.5")
    assert "constant" in exc.value.message
    with pytest.raises(PxCheckErrors) as exc:
        pxlang.pixelmath("OIll*2", images={"OIII": ha})
    assert "'OIII'" in exc.value.hint
