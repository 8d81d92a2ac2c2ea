"""Errors PixelMath users meet, and how pxlang reports them.

Every mistake must raise a ``pxlang.PxError`` subclass (never another exception), carry a
span (line/column) where a position makes sense, a hint where one helps, and ``render()``
must show the offending line with a caret under the right column.
"""

from __future__ import annotations

import numpy as np
import pytest

import pxlang
from pxlang.lang.errors import PxCheckError, PxSyntaxError

A = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 0.0, 0.25]], np.float32)
C = np.stack([A, A * 0.5, np.full((3, 4), 0.2, np.float32)])
SMALL = np.zeros((2, 2), np.float32)
IMAGES = {"Ha": A, "OIII": A * 0.5, "RGB": C, "Small": SMALL}


def fail(expr: str, *channels: str, **kw) -> pxlang.PxError:
    kw.setdefault("images", IMAGES)
    with pytest.raises(pxlang.PxError) as info:
        pxlang.pixelmath(expr, *channels, **kw)
    return info.value


def caret_column(err: pxlang.PxError) -> int:
    """The 1-based column of the caret in ``render()``'s source/caret lines."""
    lines = err.render().splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip().startswith("^"))
    return lines[caret].index("^") - 2 + 1  # render indents the source line by two spaces


def assert_points_at(err: pxlang.PxError, line: int, column: int, text: str | None = None) -> None:
    assert err.span is not None, f"no position for: {err}"
    assert (err.line, err.column) == (line, column), err.render()
    rendered = err.render()
    assert f":{line}:{column}: error: " in rendered
    assert caret_column(err) == column, rendered
    if text is not None:
        source_line = rendered.splitlines()[1]
        assert source_line.strip() == text.strip()


# ------------------------------------------------------------------ unknown names
@pytest.mark.parametrize(
    "expr,name,suggestion,column",
    [
        pytest.param("sqrtt(Ha)", "sqrtt", "sqrt", 1, id="typo"),
        pytest.param("Ha*0.5 + Sqrt(OIII)", "Sqrt", "sqrt", 10, id="case-sensitive"),
        pytest.param("iff(Ha > 0.5, Ha, 0)", "iff", "iif", 1, id="iff"),
        pytest.param("mtf(0.25, Ha) + medain(Ha, OIII, 0)", "medain", "median", 17, id="medain"),
    ],
)
def test_unknown_function_has_a_hint(expr: str, name: str, suggestion: str, column: int) -> None:
    err = fail(expr)
    assert isinstance(err, PxCheckError)
    assert f"unknown function '{name}'" in err.message
    assert err.hint and f"'{suggestion}'" in err.hint
    assert_points_at(err, 1, column, expr)


def test_unknown_function_on_a_later_line() -> None:
    err = fail("Ha +\n  sqrtt(OIII)")
    assert_points_at(err, 2, 3)
    assert "sqrtt" in err.render().splitlines()[1]


def test_pow_hint_points_to_the_caret_operator() -> None:
    # reference §6: there is no pow(): use ^ (not the combine() token op_pow())
    err = fail("pow(Ha, 2)")
    assert err.hint and "^" in err.hint


def test_atan2_hint_points_to_atan() -> None:
    err = fail("atan2(Ha, OIII)")
    assert err.hint and "atan(y, x)" in err.hint


def test_unknown_image_has_a_look_alike_hint() -> None:
    err = fail("0.5*Ha + 0.5*OIll")
    assert isinstance(err, PxCheckError)
    assert "OIll" in err.message
    assert err.hint and "'OIII'" in err.hint
    assert_points_at(err, 1, 14)


def test_unknown_image_lists_the_images() -> None:
    err = fail("Lum*2")  # nothing looks like it: the hint lists what there is
    assert err.hint and "Ha" in err.hint and "OIII" in err.hint and "RGB" in err.hint


def test_unknown_metasymbol() -> None:
    err = fail("$Q*2")
    assert "Unknown metasymbol identifier" in err.message
    assert_points_at(err, 1, 1)


# ------------------------------------------------------------------ arity
@pytest.mark.parametrize(
    "expr,words",
    [
        pytest.param("mtf(0.5)", ["mtf()", "at least 2", "got 1"], id="mtf-too-few"),
        pytest.param("mtf(0.5, Ha, 1)", ["mtf()", "at most 2", "got 3"], id="mtf-too-many"),
        pytest.param("iif(Ha > 0.5, Ha)", ["iif()", "3 arguments", "got 2"], id="iif-2"),
        pytest.param("iswitch(Ha, 1, 2, 3)", ["iswitch(", "got 4"], id="iswitch-even"),
        pytest.param("rescale(Ha, 0.2)", ["rescale()", "got 2"], id="rescale-2"),
        pytest.param("sqrt(Ha, 2)", ["sqrt()", "at most 1", "got 2"], id="sqrt-2"),
        pytest.param("pi(1)", ["pi()", "got 1"], id="pi-1"),
    ],
)
def test_wrong_arity(expr: str, words: list[str]) -> None:
    err = fail(expr)
    for w in words:
        assert w in err.message, err.message
    assert_points_at(err, 1, 1, expr)


def test_wrong_arity_gives_usage() -> None:
    err = fail("mtf(0.5)")
    assert err.hint and "mtf(m, x)" in err.hint


def test_median_of_values_needs_three() -> None:
    err = fail("med(Ha, 0.5)")
    assert "med()" in err.message and "3" in err.message
    assert err.span is not None


# ------------------------------------------------------------------ target, symbols, assignment
def test_target_without_target() -> None:
    err = fail("$T*0.5 + Ha*0.5")
    assert isinstance(err, PxCheckError)
    assert "$T" in err.message and "target" in err.message
    assert err.hint
    assert_points_at(err, 1, 1)


def test_target_metasymbol_alias_without_target() -> None:
    err = fail("Ha + $target")
    assert "target" in err.message
    assert_points_at(err, 1, 6)


def test_assignment_to_undeclared_symbol() -> None:
    err = fail("v = Ha*2; v - OIII")
    assert isinstance(err, PxCheckError)
    assert "'v'" in err.message and "not declared in Symbols" in err.message
    assert err.hint and 'symbols="v"' in err.hint
    assert_points_at(err, 1, 1)


def test_assignment_to_a_constant() -> None:
    err = fail("k = Ha; k", symbols="k = 0.5")
    assert "constant" in err.message
    assert_points_at(err, 1, 1)


@pytest.mark.parametrize(
    "expr,symbols,allowed",
    [
        pytest.param("s = Ha; Ha", "s = global(+)", "+=", id="add-global-with-="),
        pytest.param("s *= Ha; Ha", "s = global(+)", "+=", id="add-global-with-*="),
        pytest.param("p += Ha; Ha", "p = global(*)", "*=", id="mul-global-with-+="),
        pytest.param("p = Ha; Ha", "p = global(*)", "*=", id="mul-global-with-="),
    ],
)
def test_global_accumulator_with_the_wrong_operator(expr: str, symbols: str, allowed: str) -> None:
    err = fail(expr, symbols=symbols)
    assert isinstance(err, PxCheckError)
    assert "global" in err.message and allowed in err.message
    assert err.hint and allowed in err.hint
    assert_points_at(err, 1, 1)


def test_global_accumulator_allowed_operators() -> None:
    for expr, symbols in [
        ("s += Ha; Ha", "s = global(+)"),
        ("s -= Ha; Ha", "s = global(+)"),
        ("s --= Ha; Ha", "s = global(+)"),
        ("p *= Ha; Ha", "p = global(*)"),
        ("p /= 2; Ha", "p = global(*)"),
    ]:
        pxlang.pixelmath(expr, images=IMAGES, symbols=symbols)  # no error


@pytest.mark.parametrize(
    "symbols,words,column",
    [
        pytest.param("k = 0.1:0.2", ["'k'", "1 or 3 values", "not 2"], 1, id="two-values"),
        pytest.param("k = 0.1:0.2:0.3:0.4", ["1 or 3 values", "not 4"], 1, id="four-values"),
        pytest.param("k = 0.5, k = 0.2", ["'k'", "twice"], 10, id="duplicate"),
        pytest.param("k = sqrtt(2)", ["sqrtt"], 5, id="unknown-symbol-function"),
    ],
)
def test_bad_symbols(symbols: str, words: list[str], column: int) -> None:
    err = fail("Ha*k", symbols=symbols)
    for w in words:
        assert w in err.message, err.message
    assert err.file == "<symbols>"
    assert_points_at(err, 1, column, symbols)


def test_per_channel_constant_with_two_values_has_a_hint() -> None:
    err = fail("RGB*k", symbols="k = 0.9:1.0")
    assert isinstance(err, PxSyntaxError)
    assert err.hint and "0.9:1.0:0.95" in err.hint


# ------------------------------------------------------------------ channels and geometry
@pytest.mark.parametrize(
    "expr,column",
    [
        pytest.param("RGB[3]", 1, id="rgb-3"),
        pytest.param("0.5*RGB[7]", 5, id="rgb-7"),
        pytest.param("Ha[1]", 1, id="mono-1"),
        pytest.param("pixel(Ha, 0, 0, 3)", 1, id="pixel-channel"),
    ],
)
def test_channel_index_out_of_range(expr: str, column: int) -> None:
    err = fail(expr)
    assert "Channel index out of range" in err.message
    assert_points_at(err, 1, column, expr)


def test_channel_index_must_be_a_whole_number() -> None:
    err = fail("RGB[1.5]")
    assert "whole number" in err.message
    assert err.span is not None


def test_second_channel_index_is_an_error() -> None:
    # reference §2: [ ] only right after an image or variable identifier; a second index errs
    err = fail("RGB[0][0]")
    assert "second channel index" in err.message
    assert err.line == 1 and err.column >= 7
    assert "^" in err.render()


def test_images_of_different_sizes() -> None:
    err = fail("Ha + Small")
    assert "different sizes" in err.message and "4x3" in err.message and "2x2" in err.message
    assert err.hint and "same width and height" in err.hint
    assert_points_at(err, 1, 6)


def test_image_and_target_of_different_sizes() -> None:
    err = fail("Ha*0.5", target=SMALL)
    assert "target" in err.message and "4x3" in err.message
    assert err.span is not None


def test_per_channel_form_with_images_of_different_sizes() -> None:
    err = fail("Ha", "OIII", "Small")
    assert "different sizes" in err.message or "cannot combine" in err.message


def test_roi_outside_the_image() -> None:
    err = fail("mean(Ha, 2, 1, 5, 5)")
    assert "outside" in err.message and "4x3" in err.message
    assert_points_at(err, 1, 1)


def test_statistic_of_a_single_image_expression() -> None:
    # pxlang extension (PixInsight rejects it): the statistic of the whole expression
    got = pxlang.pixelmath("max(Ha*2)", images=IMAGES, truncate=False)
    assert float(np.max(got)) == pytest.approx(2 * float(np.max(IMAGES["Ha"])), rel=1e-6)
    err = fail("a = Ha; max(a)", symbols="a")
    assert "per-pixel variable" in err.message


@pytest.mark.parametrize(
    "expr,expected",
    [
        # Ha*2 > 1.5  <=>  Ha > 0.75
        pytest.param(
            "binarize(Ha*2, 1.5)", [[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0]], id="binarize"
        ),
        # Ha*2+1 spans [1, 3]: normalised back to Ha
        pytest.param("normalize(Ha*2+1)", A, id="normalize"),
    ],
)
def test_generator_of_an_expression_is_not_silently_clamped(expr: str, expected) -> None:
    try:
        got = pxlang.pixelmath(expr, images=IMAGES)
    except pxlang.PxError:
        return  # PixInsight's behaviour: an image reference is required
    np.testing.assert_allclose(got, expected, atol=1e-6)


# ------------------------------------------------------------------ syntax
def test_seed_typo_underscore_between_groups() -> None:
    err = fail("(0.4*Ha)_(0.6*OIII)")
    assert isinstance(err, PxSyntaxError)
    assert "_" in err.message
    assert err.hint and "+" in err.hint
    assert_points_at(err, 1, 9, "(0.4*Ha)_(0.6*OIII)")


def test_tilde_between_two_values() -> None:
    err = fail("Ha ~ OIII")
    assert isinstance(err, PxSyntaxError)
    assert err.hint and "1-x" in err.hint
    assert_points_at(err, 1, 4)


def test_unclosed_parenthesis() -> None:
    err = fail("(Ha + OIII*0.5")
    assert isinstance(err, PxSyntaxError)
    assert "never closed" in err.message
    assert err.span is not None and err.line == 1


def test_dangling_operator() -> None:
    err = fail("Ha*")
    assert isinstance(err, PxSyntaxError)
    assert err.span is not None


def test_two_operators_in_a_row() -> None:
    err = fail("Ha +* 2")
    assert isinstance(err, PxSyntaxError)
    assert_points_at(err, 1, 5)


def test_unknown_pragma() -> None:
    err = fail(".pragma fast; Ha")
    assert "pragma" in err.message and "fast" in err.message
    assert err.span is not None


def test_error_in_green_expression_names_its_field() -> None:
    err = fail("Ha", "sqrtt(OIII)", "OIII")
    assert "sqrtt" in err.message
    assert err.file == "<G>"
    assert_points_at(err, 1, 1)


# ------------------------------------------------------------------ every error is a PxError
@pytest.mark.parametrize(
    "expr,kw",
    [
        ("", {}),
        (";", {}),
        ("Ha[", {}),
        ("((((", {}),
        ("$", {}),
        ("Ha @ OIII", {}),
        ("'text' * Ha", {}),
        ("Ha + 'x'", {}),
        ("x()", {"images": {}}),
        ("Ha*k", {"symbols": "k = global(/)"}),
        ("Ha*k", {"symbols": "k = init()"}),
        ("Ha*k", {"symbols": "= 1"}),
    ],
)
def test_bad_input_raises_only_pxerror(expr: str, kw: dict) -> None:
    kw.setdefault("images", IMAGES)
    try:
        pxlang.pixelmath(expr, **kw)
    except pxlang.PxError as e:
        assert e.message
        e.render()  # renders without raising, with or without a span
    # an expression may also be accepted (e.g. 1e400 overflows to inf, then truncates): the
    # point is that nothing other than PxError escapes


def test_overflow_times_zero_does_not_leak_numpy_warnings() -> None:
    # inf * 0 is NaN silently, as in C; no numpy RuntimeWarning reaches the user
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pxlang.pixelmath("exp(1000)*Ha", images=IMAGES)
    assert got[0, 0] == 1.0  # inf * 0.1 truncated


def test_render_without_span_still_has_message() -> None:
    err = pxlang.PxError("something failed", None, "try again")
    assert err.render() == "error: something failed\nhint: try again"
